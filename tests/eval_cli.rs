//! Smoke test of `tollgate eval nab` and `tollgate eval odds` on a small
//! subset of the shared benchmark data (read from beside the repository,
//! never copied in): both run, print Tollgate's figures beside the
//! published ones, and write well-formed `--results-out` files and a
//! self-contained `--report` page.

use std::path::PathBuf;
use std::process::Command;

fn shared(sub: &str) -> PathBuf {
    tollgate_eval::shared_data(sub).unwrap_or_else(|| {
        panic!("benchmark data {sub} not found: set TOLLGATE_SHARED_DATA or keep shared/ beside the repository")
    })
}

fn tollgate(args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_tollgate"))
        .args(args)
        .output()
        .expect("run tollgate");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "tollgate {args:?} failed: {}\n{stdout}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

#[test]
fn nab_subset_runs_scores_and_writes_results_and_report() {
    let dir = tempfile::tempdir().unwrap();
    let res = dir.path().join("results");
    let rep = dir.path().join("report");
    let data = shared("nab");
    let out = tollgate(&[
        "eval",
        "nab",
        "--data",
        data.to_str().unwrap(),
        "--series",
        "art_daily_jumpsup",
        "--series",
        "ec2_cpu_utilization_825cc2",
        "--series",
        "art_noisy",
        "--results-out",
        res.to_str().unwrap(),
        "--report",
        rep.to_str().unwrap(),
    ]);
    assert!(out.contains("NAB: 3 series"), "{out}");
    assert!(
        out.contains("> Tollgate (volume detector)") && out.contains("ARTime"),
        "{out}"
    );
    assert!(out.contains("reward_low_FN_rate"), "{out}");
    let csv =
        std::fs::read_to_string(res.join("artificialWithAnomaly/art_daily_jumpsup.csv")).unwrap();
    let input =
        std::fs::read_to_string(data.join("data/artificialWithAnomaly/art_daily_jumpsup.csv"))
            .unwrap();
    let mut lines = csv.lines();
    assert_eq!(lines.next(), Some("timestamp,value,anomaly_score"));
    let rows: Vec<&str> = lines.collect();
    assert_eq!(
        rows.len(),
        input.lines().count() - 1,
        "one row per input row"
    );
    for (r, i) in rows.iter().zip(input.lines().skip(1)) {
        let f: Vec<&str> = r.split(',').collect();
        let g: Vec<&str> = i.split(',').collect();
        assert_eq!(f[0], g[0], "same order and timestamps");
        assert_eq!(f[1].parse::<f64>().unwrap(), g[1].parse::<f64>().unwrap());
        let s: f64 = f[2].parse().unwrap();
        assert!((0.0..=1.0).contains(&s), "{r}");
    }
    let page = std::fs::read_to_string(rep.join("nab.html")).unwrap();
    assert!(page.contains("<svg") && page.contains("art_daily_jumpsup"));
    assert!(!page.contains("<script"));
}

#[test]
fn odds_subset_runs_and_writes_scores_in_row_order() {
    let dir = tempfile::tempdir().unwrap();
    let res = dir.path().join("results");
    let rep = dir.path().join("report");
    let data = shared("odds");
    let out = tollgate(&[
        "eval",
        "odds",
        "--data",
        data.to_str().unwrap(),
        "--set",
        "shuttle",
        "--set",
        "smtp",
        "--max-rows",
        "16000",
        "--results-out",
        res.to_str().unwrap(),
        "--report",
        rep.to_str().unwrap(),
    ]);
    assert!(
        out.contains("Tollgate (numeric model)") && out.contains("Isolation Forest"),
        "{out}"
    );
    let csv = std::fs::read_to_string(res.join("shuttle.csv")).unwrap();
    let input = std::fs::read_to_string(data.join("shuttle.csv")).unwrap();
    let mut lines = csv.lines();
    assert_eq!(lines.next(), Some("score,label"));
    let rows: Vec<&str> = lines.collect();
    assert_eq!(rows.len(), 16_000);
    for (r, i) in rows.iter().zip(input.lines().skip(1)) {
        let (s, l) = r.split_once(',').unwrap();
        assert!(s.parse::<f64>().unwrap().is_finite());
        assert_eq!(Some(l), i.rsplit(',').next(), "labels in input order");
    }
    // shuttle's first 16,000 rows hold anomalies: the AUROC is a number
    let line = out
        .lines()
        .find(|l| l.contains("shuttle") && l.contains("Tollgate"))
        .unwrap();
    let auroc: f64 = line
        .split_whitespace()
        .rev()
        .nth(3)
        .unwrap()
        .parse()
        .unwrap();
    assert!(auroc > 0.5, "{line}");
    let page = std::fs::read_to_string(rep.join("odds.html")).unwrap();
    assert!(page.contains("<svg") && page.contains("ROC curve"));
}
