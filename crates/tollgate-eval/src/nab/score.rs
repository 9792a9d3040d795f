//! NAB's scoring rules, re-implemented from the description in
//! `shared/data/nab/SCOREBOARD.md` (checked there against NAB's
//! `sweeper.py`, `scorer.py` and `runner.py`): probation, windows, the scaled
//! sigmoid, per-profile weights, the corpus-wide threshold sweep and the
//! normalisation between the null and the perfect detector.
//!
//! Everything here works on row indices and scores; it knows nothing of
//! files, timestamps or detectors. A [`Layout`] turns a series' length and
//! windows into one [`Term`] per scorable row (what a detection there is
//! worth, before the profile's weights), so the sweep over every threshold
//! is a single pass over the rows sorted by score.

use std::fmt;

/// A profile's weights (`config/profiles.json`'s `CostMatrix`; `tnWeight`
/// is never used by the scorer and so is not kept).
#[derive(Debug, Clone, PartialEq)]
pub struct CostProfile {
    pub name: String,
    pub tp_weight: f64,
    pub fn_weight: f64,
    pub fp_weight: f64,
}

impl CostProfile {
    /// NAB's three profiles as shipped, in NAB's order.
    pub fn nab() -> Vec<CostProfile> {
        let p = |name: &str, tp, fnw, fp| CostProfile {
            name: name.to_string(),
            tp_weight: tp,
            fn_weight: fnw,
            fp_weight: fp,
        };
        vec![
            p("standard", 1.0, 1.0, 0.11),
            p("reward_low_FP_rate", 1.0, 1.0, 0.22),
            p("reward_low_FN_rate", 1.0, 2.0, 0.11),
        ]
    }
}

/// Why a series cannot be scored.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ScoreError {
    #[error(
        "window {0}..={1} is empty, out of order, overlapping or past the last row ({2} rows)"
    )]
    BadWindow(usize, usize, usize),
    #[error("{got} scores for {rows} rows")]
    Length { rows: usize, got: usize },
    #[error("score {score} at row {row} is outside [0, 1]")]
    OutOfRange { row: usize, score: f64 },
}

/// The probation length for a series of `rows` rows:
/// `min(floor(0.15 · rows), 0.15 · 5000)`.
pub fn probation_len(rows: usize) -> usize {
    ((0.15 * rows as f64).floor() as usize).min(750)
}

/// NAB's scaled sigmoid: `2 / (1 + e^{5y}) − 1`, and −1 past `y = 3`.
pub fn scaled_sigmoid(y: f64) -> f64 {
    if y > 3.0 {
        -1.0
    } else {
        2.0 / (1.0 + (5.0 * y).exp()) - 1.0
    }
}

/// What a detection at one scorable row is worth, before weights.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Term {
    /// Inside window `window` (index within the series): the window's term
    /// becomes `tp_weight × value` if this is its earliest detection.
    Window { window: u32, value: f64 },
    /// Outside every window: adds `fp_weight × value` (value ≤ 0).
    Outside { value: f64 },
}

/// A series' scoring layout: its length, probation and windows (inclusive
/// row ranges, sorted, disjoint).
#[derive(Debug, Clone, PartialEq)]
pub struct Layout {
    rows: usize,
    probation: usize,
    windows: Vec<(usize, usize)>,
    /// One term per row from `probation` on.
    terms: Vec<Term>,
    /// Whether each window has a scorable row (and so a term of its own).
    scored: Vec<bool>,
}

impl Layout {
    pub fn new(rows: usize, windows: Vec<(usize, usize)>) -> Result<Layout, ScoreError> {
        let mut prev_end: Option<usize> = None;
        for &(l, r) in &windows {
            if l > r || r >= rows || prev_end.is_some_and(|p| l <= p) {
                return Err(ScoreError::BadWindow(l, r, rows));
            }
            prev_end = Some(r);
        }
        let probation = probation_len(rows);
        let mut terms = Vec::with_capacity(rows - probation.min(rows));
        let mut scored = vec![false; windows.len()];
        // the window containing row i, or the last one that ended before it
        let mut next = 0usize;
        let mut last_ended: Option<usize> = None;
        for i in 0..rows {
            while next < windows.len() && windows[next].1 < i {
                last_ended = Some(next);
                next += 1;
            }
            let inside = next < windows.len() && windows[next].0 <= i;
            if i < probation {
                continue;
            }
            let term = if inside {
                let (l, r) = windows[next];
                let w = (r - l + 1) as f64;
                let y = -((r - i + 1) as f64) / w;
                scored[next] = true;
                Term::Window {
                    window: next as u32,
                    value: scaled_sigmoid(y) / scaled_sigmoid(-1.0),
                }
            } else {
                let value = match last_ended {
                    None => -1.0,
                    Some(k) => {
                        let (l, r) = windows[k];
                        let w = (r - l + 1) as f64;
                        // a one-row window divides by zero in NAB (an
                        // infinite position: −1); none exists in the corpus
                        let y = (i - r) as f64 / (w - 1.0);
                        if y.is_finite() {
                            scaled_sigmoid(y)
                        } else {
                            -1.0
                        }
                    }
                };
                Term::Outside { value }
            };
            terms.push(term);
        }
        Ok(Layout {
            rows,
            probation,
            windows,
            terms,
            scored,
        })
    }

    pub fn rows(&self) -> usize {
        self.rows
    }

    pub fn probation(&self) -> usize {
        self.probation
    }

    pub fn windows(&self) -> &[(usize, usize)] {
        &self.windows
    }

    /// Windows that carry a term (all of NAB's: none starts in probation).
    pub fn scored_windows(&self) -> usize {
        self.scored.iter().filter(|&&s| s).count()
    }

    /// The term of row `i`, `None` in probation.
    pub fn term(&self, i: usize) -> Option<Term> {
        i.checked_sub(self.probation)
            .and_then(|k| self.terms.get(k))
            .copied()
    }

    fn check(&self, scores: &[f64]) -> Result<(), ScoreError> {
        if scores.len() != self.rows {
            return Err(ScoreError::Length {
                rows: self.rows,
                got: scores.len(),
            });
        }
        if let Some((row, &score)) = scores
            .iter()
            .enumerate()
            .find(|(_, s)| !(0.0..=1.0).contains(*s))
        {
            return Err(ScoreError::OutOfRange { row, score });
        }
        Ok(())
    }
}

/// One series' result at one threshold.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct SeriesScore {
    /// The series' raw score: window terms plus false-positive terms.
    pub raw: f64,
    /// Windows with a detection.
    pub detected: usize,
    /// Windows without one.
    pub missed: usize,
    /// Detections outside every window (after probation).
    pub false_positives: usize,
}

impl fmt::Display for SeriesScore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "raw {:.3}: {} windows detected, {} missed, {} false positives",
            self.raw, self.detected, self.missed, self.false_positives
        )
    }
}

/// Score one series at threshold `theta` (a row is a detection when its
/// score is ≥ `theta`).
pub fn score_series(
    layout: &Layout,
    scores: &[f64],
    profile: &CostProfile,
    theta: f64,
) -> Result<SeriesScore, ScoreError> {
    layout.check(scores)?;
    let mut best: Vec<Option<f64>> = vec![None; layout.windows.len()];
    let mut out = SeriesScore::default();
    for (k, term) in layout.terms.iter().enumerate() {
        if scores[layout.probation + k] < theta {
            continue;
        }
        match *term {
            Term::Window { window, value } => {
                let b = &mut best[window as usize];
                *b = Some(b.map_or(value, |x: f64| x.max(value)));
            }
            Term::Outside { value } => {
                out.raw += profile.fp_weight * value;
                out.false_positives += 1;
            }
        }
    }
    for (w, b) in best.iter().enumerate() {
        if !layout.scored[w] {
            continue;
        }
        match b {
            Some(v) => {
                out.raw += profile.tp_weight * v;
                out.detected += 1;
            }
            None => {
                out.raw -= profile.fn_weight;
                out.missed += 1;
            }
        }
    }
    Ok(out)
}

/// The corpus raw score at one threshold of the sweep.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ThresholdScore {
    pub threshold: f64,
    pub raw: f64,
}

/// NAB's sweep: pool the scorable rows of every series, walk them from the
/// highest score down, and record the corpus raw score at `1.1` (nothing
/// detected) and at every distinct score (every row at or above it
/// detected). In sweep order, i.e. by decreasing threshold.
pub fn sweep(
    series: &[(&Layout, &[f64])],
    profile: &CostProfile,
) -> Result<Vec<ThresholdScore>, ScoreError> {
    let mut rows: Vec<(f64, u32, u32)> = Vec::new();
    let mut window_base = Vec::with_capacity(series.len());
    let mut n_windows = 0usize;
    let mut raw = 0.0;
    for (s, (layout, scores)) in series.iter().enumerate() {
        layout.check(scores)?;
        window_base.push(n_windows);
        n_windows += layout.windows.len();
        raw -= profile.fn_weight * layout.scored_windows() as f64;
        for k in 0..layout.terms.len() {
            rows.push((scores[layout.probation + k], s as u32, k as u32));
        }
    }
    rows.sort_by(|a, b| b.0.total_cmp(&a.0));
    // the current term of each window: None until detected
    let mut best: Vec<Option<f64>> = vec![None; n_windows];
    let mut out = vec![ThresholdScore {
        threshold: 1.1,
        raw,
    }];
    let mut i = 0;
    while i < rows.len() {
        let theta = rows[i].0;
        while i < rows.len() && rows[i].0 == theta {
            let (_, s, k) = rows[i];
            let layout = series[s as usize].0;
            match layout.terms[k as usize] {
                Term::Window { window, value } => {
                    let b = &mut best[window_base[s as usize] + window as usize];
                    let v = profile.tp_weight * value;
                    match *b {
                        None => {
                            raw += profile.fn_weight + v;
                            *b = Some(v);
                        }
                        Some(old) if v > old => {
                            raw += v - old;
                            *b = Some(v);
                        }
                        Some(_) => {}
                    }
                }
                Term::Outside { value } => raw += profile.fp_weight * value,
            }
            i += 1;
        }
        out.push(ThresholdScore {
            threshold: theta,
            raw,
        });
    }
    Ok(out)
}

/// The threshold with the highest corpus raw score; on a tie the higher
/// threshold (the one met first in the sweep) wins.
pub fn best_threshold(sweep: &[ThresholdScore]) -> ThresholdScore {
    let mut best = sweep[0];
    for t in &sweep[1..] {
        if t.raw > best.raw {
            best = *t;
        }
    }
    best
}

/// `100 · (raw − null) / (perfect − null)`.
pub fn normalise(raw: f64, null: f64, perfect: f64) -> f64 {
    100.0 * (raw - null) / (perfect - null)
}

/// One profile's result over a corpus.
#[derive(Debug, Clone, PartialEq)]
pub struct ProfileResult {
    pub profile: CostProfile,
    pub threshold: f64,
    pub raw: f64,
    pub null: f64,
    pub perfect: f64,
    /// The normalised score (100 = perfect, 0 = null).
    pub score: f64,
    /// Per series, in input order, at `threshold`.
    pub per_series: Vec<SeriesScore>,
}

/// Score a corpus under one profile the way NAB does: optimise the
/// threshold over the corpus, score every series at it, and normalise
/// against the null detector (a constant 0.5, scored by the same rules) and
/// the perfect one (`tp_weight` per window).
pub fn score_corpus(
    series: &[(&Layout, &[f64])],
    profile: &CostProfile,
) -> Result<ProfileResult, ScoreError> {
    let best = best_threshold(&sweep(series, profile)?);
    let mut per_series = Vec::with_capacity(series.len());
    let mut raw = 0.0;
    for (layout, scores) in series {
        let s = score_series(layout, scores, profile, best.threshold)?;
        raw += s.raw;
        per_series.push(s);
    }
    let halves: Vec<Vec<f64>> = series.iter().map(|(l, _)| vec![0.5; l.rows]).collect();
    let null_input: Vec<(&Layout, &[f64])> = series
        .iter()
        .zip(&halves)
        .map(|((l, _), h)| (*l, h.as_slice()))
        .collect();
    let null = best_threshold(&sweep(&null_input, profile)?).raw;
    let windows: usize = series.iter().map(|(l, _)| l.windows.len()).sum();
    let perfect = profile.tp_weight * windows as f64;
    Ok(ProfileResult {
        profile: profile.clone(),
        threshold: best.threshold,
        raw,
        null,
        perfect,
        score: normalise(raw, null, perfect),
        per_series,
    })
}

/// Scores that a perfect detector gives: 1 on each window's left edge, 0
/// elsewhere.
pub fn perfect_scores(layout: &Layout) -> Vec<f64> {
    let mut s = vec![0.0; layout.rows];
    for &(l, _) in &layout.windows {
        s[l] = 1.0;
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn std() -> CostProfile {
        CostProfile::nab().remove(0)
    }

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() < 1e-9
    }

    #[test]
    fn probation_and_sigmoid_match_the_scoreboard() {
        assert_eq!(probation_len(1000), 150);
        assert_eq!(probation_len(4032), 604);
        assert_eq!(probation_len(5000), 750);
        assert_eq!(probation_len(22695), 750);
        assert!((scaled_sigmoid(-1.0) - 0.98661).abs() < 1e-5);
        assert!((scaled_sigmoid(-0.5) - 0.84828).abs() < 1e-5);
        assert_eq!(scaled_sigmoid(0.0), 0.0);
        assert!((scaled_sigmoid(1.0) + 0.98661).abs() < 1e-5);
        assert_eq!(scaled_sigmoid(3.5), -1.0);
    }

    /// 100 rows (probation 15), one window 40..=59 (W = 20).
    fn one_window() -> Layout {
        Layout::new(100, vec![(40, 59)]).unwrap()
    }

    #[test]
    fn hand_made_series_scores_as_computed_by_hand() {
        let l = one_window();
        let p = std();
        // a detection at the window's centre row 50: y = -(59 - 50 + 1)/20
        // = -0.5, worth σ(-0.5)/σ(-1) = 0.84828/0.98661
        let mut s = vec![0.0; 100];
        s[50] = 0.9;
        let r = score_series(&l, &s, &p, 0.5).unwrap();
        let tp = scaled_sigmoid(-0.5) / scaled_sigmoid(-1.0);
        assert!(close(r.raw, tp), "{r}");
        assert!((tp - 0.85979).abs() < 1e-4);
        assert_eq!((r.detected, r.missed, r.false_positives), (1, 0, 0));

        // a false positive before any window costs the full fp weight; one
        // in probation costs nothing; a later detection in the same window
        // adds nothing
        s[20] = 0.9;
        s[5] = 0.9;
        s[55] = 0.9;
        let r = score_series(&l, &s, &p, 0.5).unwrap();
        assert!(close(r.raw, tp - 0.11), "{r}");
        assert_eq!(r.false_positives, 1);

        // a false positive one window-width after the window: y = 19/19 = 1
        s[59 + 19] = 0.9;
        let r = score_series(&l, &s, &p, 0.5).unwrap();
        assert!(close(r.raw, tp - 0.11 + 0.11 * scaled_sigmoid(1.0)), "{r}");
        // just after the window it costs almost nothing: y = 1/19
        let mut s2 = vec![0.0; 100];
        s2[60] = 0.9;
        let r = score_series(&l, &s2, &p, 0.5).unwrap();
        assert!(close(r.raw, -1.0 + 0.11 * scaled_sigmoid(1.0 / 19.0)));
        assert!((0.11 * scaled_sigmoid(1.0 / 19.0)).abs() < 0.015);

        // a detection on the left edge earns exactly tp_weight; the last
        // row of the window earns σ(-1/20)/σ(-1)
        let mut s3 = vec![0.0; 100];
        s3[40] = 1.0;
        assert!(close(score_series(&l, &s3, &p, 1.0).unwrap().raw, 1.0));
        let mut s4 = vec![0.0; 100];
        s4[59] = 1.0;
        let want = scaled_sigmoid(-1.0 / 20.0) / scaled_sigmoid(-1.0);
        assert!(close(score_series(&l, &s4, &p, 1.0).unwrap().raw, want));

        // missing the window costs fn_weight under the low-FN profile: 2
        let fnp = &CostProfile::nab()[2];
        let r = score_series(&l, &vec![0.0; 100], fnp, 0.5).unwrap();
        assert!(close(r.raw, -2.0));
    }

    #[test]
    fn false_positive_cost_uses_the_latest_ended_window() {
        // two windows; a detection between them is measured from the first
        let l = Layout::new(200, vec![(50, 59), (120, 139)]).unwrap();
        assert_eq!(l.probation(), 30);
        match l.term(100) {
            Some(Term::Outside { value }) => {
                assert!(close(value, scaled_sigmoid(41.0 / 9.0)));
                assert_eq!(value, -1.0, "past 3 widths");
            }
            t => panic!("{t:?}"),
        }
        match l.term(61) {
            Some(Term::Outside { value }) => assert!(close(value, scaled_sigmoid(2.0 / 9.0))),
            t => panic!("{t:?}"),
        }
        match l.term(150) {
            Some(Term::Outside { value }) => assert!(close(value, scaled_sigmoid(11.0 / 19.0))),
            t => panic!("{t:?}"),
        }
        assert_eq!(l.term(10), None);
    }

    #[test]
    fn sweep_agrees_with_scoring_at_each_threshold() {
        let a = Layout::new(120, vec![(40, 49), (90, 109)]).unwrap();
        let b = Layout::new(80, vec![]).unwrap();
        let sa: Vec<f64> = (0..120).map(|i| ((i * 37) % 101) as f64 / 100.0).collect();
        let sb: Vec<f64> = (0..80).map(|i| ((i * 53) % 97) as f64 / 96.0).collect();
        let series = [(&a, sa.as_slice()), (&b, sb.as_slice())];
        for p in CostProfile::nab() {
            let sw = sweep(&series, &p).unwrap();
            assert_eq!(sw[0].threshold, 1.1);
            assert!(close(sw[0].raw, -2.0 * p.fn_weight));
            for t in &sw {
                let direct: f64 = series
                    .iter()
                    .map(|(l, s)| score_series(l, s, &p, t.threshold).unwrap().raw)
                    .sum();
                assert!(close(direct, t.raw), "{} {} {}", t.threshold, direct, t.raw);
            }
            let best = best_threshold(&sw);
            assert!(sw.iter().all(|t| t.raw <= best.raw));
        }
    }

    #[test]
    fn ties_go_to_the_higher_threshold() {
        let sw = [
            ThresholdScore {
                threshold: 1.1,
                raw: -1.0,
            },
            ThresholdScore {
                threshold: 0.8,
                raw: 2.0,
            },
            ThresholdScore {
                threshold: 0.5,
                raw: 2.0,
            },
        ];
        assert_eq!(best_threshold(&sw).threshold, 0.8);
    }

    #[test]
    fn null_scores_0_and_perfect_100_under_every_profile() {
        let layouts = [
            Layout::new(1000, vec![(300, 399), (700, 749)]).unwrap(),
            Layout::new(600, vec![]).unwrap(),
            Layout::new(5000, vec![(1000, 1200), (4900, 4999)]).unwrap(),
        ];
        let perfect: Vec<Vec<f64>> = layouts.iter().map(perfect_scores).collect();
        let null: Vec<Vec<f64>> = layouts.iter().map(|l| vec![0.5; l.rows()]).collect();
        let zero: Vec<Vec<f64>> = layouts.iter().map(|l| vec![0.0; l.rows()]).collect();
        for p in CostProfile::nab() {
            let run = |s: &[Vec<f64>]| {
                let v: Vec<(&Layout, &[f64])> = layouts
                    .iter()
                    .zip(s)
                    .map(|(l, s)| (l, s.as_slice()))
                    .collect();
                score_corpus(&v, &p).unwrap()
            };
            let r = run(&perfect);
            assert!(close(r.score, 100.0), "{}: perfect {}", p.name, r.score);
            assert!(close(r.null, -4.0 * p.fn_weight));
            assert!(close(r.perfect, 4.0));
            assert_eq!(r.threshold, 1.0);
            let r = run(&null);
            assert!(close(r.score, 0.0), "{}: null {}", p.name, r.score);
            assert_eq!(r.threshold, 1.1);
            assert!(close(run(&zero).score, 0.0));
        }
    }

    #[test]
    fn normalisation_reproduces_the_scoreboard_example() {
        // ARTime's raw standard score 57.6608 over 116 windows → 74.85
        let s = normalise(57.6608, -116.0, 116.0);
        assert!((s - 74.85).abs() < 0.005, "{s}");
    }

    #[test]
    fn bad_input_is_an_error() {
        assert!(Layout::new(10, vec![(5, 4)]).is_err());
        assert!(Layout::new(10, vec![(2, 5), (5, 8)]).is_err());
        assert!(Layout::new(10, vec![(2, 10)]).is_err());
        let l = Layout::new(10, vec![]).unwrap();
        let p = std();
        assert!(matches!(
            score_series(&l, &[0.0; 9], &p, 0.5),
            Err(ScoreError::Length { .. })
        ));
        let mut s = [0.0; 10];
        s[3] = 1.5;
        assert!(matches!(
            score_series(&l, &s, &p, 0.5),
            Err(ScoreError::OutOfRange { row: 3, .. })
        ));
    }
}
