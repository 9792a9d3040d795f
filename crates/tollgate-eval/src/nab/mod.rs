//! The Numenta Anomaly Benchmark: the corpus ([`corpus`]), NAB's scoring
//! rules ([`score`]) and the runner that streams each series through
//! Tollgate's volume detector ([`run`]); [`evaluate`] ties them together and
//! [`section`] turns the result into the report's tables and plots.

pub mod corpus;
pub mod run;
pub mod score;

use std::io::Write as _;
use std::path::Path;

pub use corpus::{Corpus, DataError, Series};
pub use run::{Runner, SeriesRun};
pub use score::{CostProfile, Layout, ProfileResult, ScoreError, SeriesScore};

use crate::report::{SeriesPlot, Table};

/// Everything one NAB run produced.
#[derive(Debug, Clone)]
pub struct Evaluation {
    /// One run per corpus series, in corpus order.
    pub runs: Vec<SeriesRun>,
    /// One result per profile, in the corpus' profile order.
    pub profiles: Vec<ProfileResult>,
}

/// Run every series of the corpus (each its own detector, i.e. its own
/// tenant, fed in row order) and score the outputs under every profile.
pub fn evaluate(corpus: &Corpus, runner: &Runner) -> Result<Evaluation, ScoreError> {
    let runs: Vec<SeriesRun> = corpus
        .series
        .iter()
        .map(|s| runner.run(&s.timestamps, &s.values))
        .collect();
    let input: Vec<(&Layout, &[f64])> = corpus
        .series
        .iter()
        .zip(&runs)
        .map(|(s, r)| (&s.layout, r.score.as_slice()))
        .collect();
    let profiles = corpus
        .profiles
        .iter()
        .map(|p| score::score_corpus(&input, p))
        .collect::<Result<_, _>>()?;
    Ok(Evaluation { runs, profiles })
}

/// Write `DIR/<category>/<file name>` per series with the columns
/// `timestamp,value,anomaly_score`, one row per input row in order — the
/// shape NAB's own scorer reads (it takes the score column by name).
pub fn write_results(dir: &Path, corpus: &Corpus, eval: &Evaluation) -> std::io::Result<()> {
    for (s, r) in corpus.series.iter().zip(&eval.runs) {
        let d = dir.join(s.category());
        std::fs::create_dir_all(&d)?;
        let mut f = std::io::BufWriter::new(std::fs::File::create(d.join(s.file_name()))?);
        writeln!(f, "timestamp,value,anomaly_score")?;
        for ((t, v), a) in s.timestamps.iter().zip(&s.values).zip(&r.score) {
            writeln!(f, "{},{v},{a}", t.format("%Y-%m-%d %H:%M:%S"))?;
        }
        f.flush()?;
    }
    Ok(())
}

/// NAB's published scoreboard (`SCOREBOARD.md`): detector, standard,
/// reward-low-FP, reward-low-FN.
pub const PUBLISHED: &[(&str, f64, f64, f64)] = &[
    ("Perfect", 100.0, 100.0, 100.0),
    ("ARTime", 74.9, 65.1, 80.4),
    ("Numenta HTM (NuPIC 1.0)", 70.5, 62.6, 75.2),
    ("CAD OSE", 69.9, 67.0, 73.2),
    ("earthgecko Skyline", 58.2, 46.2, 63.9),
    ("KNN CAD", 58.0, 43.4, 64.8),
    ("Relative Entropy", 54.6, 47.6, 58.8),
    ("Random Cut Forest (AWS)", 51.7, 38.4, 59.7),
    ("Twitter ADVec v1.0.0", 47.1, 33.6, 53.5),
    ("Windowed Gaussian", 39.6, 20.9, 47.4),
    ("Etsy Skyline", 35.7, 27.1, 44.5),
    ("Bayesian Changepoint", 17.7, 3.2, 32.2),
    ("EXPoSE", 16.4, 3.2, 26.9),
    ("Random (mean over seeds)", 11.0, 1.2, 19.5),
    ("Null", 0.0, 0.0, 0.0),
];

/// The bar on the standard profile.
pub const BAR_STANDARD: f64 = 75.0;

/// A scoreboard row: name and the three profiles' scores.
type BoardRow = (String, Option<f64>, Option<f64>, Option<f64>);

fn profile_score(eval: &Evaluation, name: &str) -> Option<f64> {
    eval.profiles
        .iter()
        .find(|p| p.profile.name == name)
        .map(|p| p.score)
}

/// Tollgate's normalised scores beside the published ones, best first.
pub fn scoreboard(eval: &Evaluation, label: &str) -> Table {
    let f = |x: Option<f64>| x.map_or("-".into(), |v| format!("{v:.1}"));
    let ours = (
        label.to_string(),
        profile_score(eval, "standard"),
        profile_score(eval, "reward_low_FP_rate"),
        profile_score(eval, "reward_low_FN_rate"),
    );
    let mut rows: Vec<BoardRow> = PUBLISHED
        .iter()
        .map(|(n, a, b, c)| (n.to_string(), Some(*a), Some(*b), Some(*c)))
        .collect();
    let at = rows.iter().position(|r| r.1 < ours.1).unwrap_or(rows.len());
    rows.insert(at, ours);
    Table {
        caption:
            "NAB normalised scores (100 = perfect, 0 = null; published figures from NAB's README)"
                .into(),
        header: vec![
            "detector".into(),
            "standard".into(),
            "reward low FP".into(),
            "reward low FN".into(),
        ],
        rows: rows
            .into_iter()
            .map(|(n, a, b, c)| vec![n, f(a), f(b), f(c)])
            .collect(),
        highlight: vec![at],
    }
}

/// Threshold, raw score and counts per profile.
pub fn profile_table(eval: &Evaluation) -> Table {
    Table {
        caption: "Per profile: the corpus-optimised threshold and what it detects".into(),
        header: vec![
            "profile".into(),
            "threshold".into(),
            "raw".into(),
            "null raw".into(),
            "windows detected".into(),
            "missed".into(),
            "false positives".into(),
            "score".into(),
        ],
        rows: eval
            .profiles
            .iter()
            .map(|p| {
                let sum = |f: fn(&SeriesScore) -> usize| p.per_series.iter().map(f).sum::<usize>();
                vec![
                    p.profile.name.clone(),
                    format!("{:.4}", p.threshold),
                    format!("{:.2}", p.raw),
                    format!("{:.0}", p.null),
                    sum(|s| s.detected).to_string(),
                    sum(|s| s.missed).to_string(),
                    sum(|s| s.false_positives).to_string(),
                    format!("{:.1}", p.score),
                ]
            })
            .collect(),
        highlight: vec![],
    }
}

/// The standard profile's result per series.
pub fn series_table(corpus: &Corpus, eval: &Evaluation) -> Table {
    let std = &eval.profiles[0];
    Table {
        caption: format!("Per series under the {} profile", std.profile.name),
        header: vec![
            "series".into(),
            "rows".into(),
            "windows".into(),
            "detected".into(),
            "false positives".into(),
            "raw".into(),
        ],
        rows: corpus
            .series
            .iter()
            .zip(&std.per_series)
            .map(|(s, r)| {
                vec![
                    s.key.clone(),
                    s.values.len().to_string(),
                    s.layout.windows().len().to_string(),
                    r.detected.to_string(),
                    r.false_positives.to_string(),
                    format!("{:.3}", r.raw),
                ]
            })
            .collect(),
        highlight: vec![],
    }
}

/// How the score is drawn: its tail on a log scale, `−log10(1 − score)`,
/// since the scores that matter are the graded ones a hair under 1.
pub fn rarity(score: f64) -> f64 {
    -(1.0 - score).max(1e-6).log10()
}

/// The picture of one series at the first profile's threshold.
pub fn plot(s: &Series, r: &SeriesRun, eval: &Evaluation, i: usize) -> SeriesPlot {
    let p = &eval.profiles[0];
    let n = s.values.len();
    let x: Vec<f64> = (0..n).map(|i| i as f64).collect();
    let alerts: Vec<(f64, bool)> = r
        .score
        .iter()
        .enumerate()
        .filter(|(k, v)| *k >= s.layout.probation() && **v >= p.threshold)
        .map(|(k, _)| {
            let hit = s.layout.windows().iter().any(|&(a, b)| k >= a && k <= b);
            (k as f64, hit)
        })
        .collect();
    SeriesPlot {
        title: s.key.clone(),
        caption: format!(
            "{} rows from {} to {}; {}",
            n,
            s.timestamps
                .first()
                .map(|t| t.to_string())
                .unwrap_or_default(),
            s.timestamps
                .last()
                .map(|t| t.to_string())
                .unwrap_or_default(),
            p.per_series[i]
        ),
        x_label: "row".into(),
        signal_label: "value".into(),
        score_label: "-log10(1 - score)".into(),
        x,
        signal: s.values.clone(),
        expected: Some(r.expected.clone()),
        score: r.score.iter().map(|&s| rarity(s)).collect(),
        threshold: Some(rarity(p.threshold)),
        windows: s
            .layout
            .windows()
            .iter()
            .map(|&(a, b)| (a as f64, b as f64, String::new()))
            .collect(),
        warmup_until: Some(s.layout.probation() as f64),
        alerts,
    }
}
