//! The NAB corpus as shipped in `shared/data/nab`, read from beside the
//! repository (`../shared/data/nab` from its root; the data are never copied
//! in): the counts SCOREBOARD.md states, and the scorer's anchors on the real
//! windows — a perfect detector scores 100 and the null detector 0 under
//! every profile, and the null detector's raw score is −fn_weight per window.

use std::path::PathBuf;

use tollgate_eval::nab::{score, Corpus, Layout};

fn data() -> PathBuf {
    tollgate_eval::shared_data("nab").expect(
        "NAB data not found: set TOLLGATE_SHARED_DATA or keep shared/ beside the repository",
    )
}

#[test]
fn corpus_counts_match_the_scoreboard() {
    let c = Corpus::load(&data(), |_| true).unwrap();
    assert_eq!(c.series.len(), 58);
    let rows: usize = c.series.iter().map(|s| s.values.len()).sum();
    assert_eq!(rows, 365_558);
    let windows: usize = c.series.iter().map(|s| s.layout.windows().len()).sum();
    assert_eq!(windows, 116);
    let without: Vec<&str> = c
        .series
        .iter()
        .filter(|s| s.layout.windows().is_empty())
        .map(|s| s.key.as_str())
        .collect();
    assert_eq!(without.len(), 6, "{without:?}");
    assert!(without.contains(&"realAWSCloudwatch/ec2_cpu_utilization_c6585a.csv"));
    // every window starts after probation, so all 116 are scored
    assert!(c.series.iter().all(|s| s
        .layout
        .windows()
        .iter()
        .all(|w| w.0 >= s.layout.probation())));
    let names: Vec<&str> = c.profiles.iter().map(|p| p.name.as_str()).collect();
    assert_eq!(
        names,
        ["standard", "reward_low_FP_rate", "reward_low_FN_rate"]
    );
    // the windows cut off at the end of their file (SCOREBOARD "Oddities")
    let speed = c
        .series
        .iter()
        .find(|s| s.key.ends_with("speed_6005.csv"))
        .unwrap();
    let w = speed.layout.windows()[0];
    assert_eq!((w.1 - w.0 + 1, w.1 + 1), (239, speed.values.len()));
}

#[test]
fn perfect_scores_100_and_null_0_on_the_real_windows() {
    let c = Corpus::load(&data(), |_| true).unwrap();
    let perfect: Vec<Vec<f64>> = c
        .series
        .iter()
        .map(|s| score::perfect_scores(&s.layout))
        .collect();
    let null: Vec<Vec<f64>> = c.series.iter().map(|s| vec![0.5; s.values.len()]).collect();
    let input = |v: &[Vec<f64>]| -> Vec<(&Layout, Vec<f64>)> {
        c.series
            .iter()
            .zip(v)
            .map(|(s, x)| (&s.layout, x.clone()))
            .collect()
    };
    for p in &c.profiles {
        for (scores, want) in [(&perfect, 100.0), (&null, 0.0)] {
            let owned = input(scores);
            let v: Vec<(&Layout, &[f64])> = owned.iter().map(|(l, s)| (*l, s.as_slice())).collect();
            let r = score::score_corpus(&v, p).unwrap();
            assert!(
                (r.score - want).abs() < 1e-9,
                "{}: {} not {want}",
                p.name,
                r.score
            );
            assert!((r.null + p.fn_weight * 116.0).abs() < 1e-9);
            assert!((r.perfect - 116.0).abs() < 1e-9);
        }
    }
}
