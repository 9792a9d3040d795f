//! `tollgate replay` end to end, as a user backtests with it: the scenario
//! generator's four feeds written to files (one gzip'd, one with a broken
//! line, one with neighbouring records swapped out of time order), replayed
//! with a tenant rule like a deployment's. Every record is accounted for
//! (scored or rejected with its reason), the swapped records come out in
//! event-time order, the alerts file holds well-formed alerts that name the
//! injected incidents' records, the same input gives byte-identical alerts,
//! and `--model-dir` leaves a snapshot per tenant.

use std::collections::{HashMap, HashSet};
use std::io::Write;
use std::path::Path;
use std::process::Command;

use serde_json::Value;
use tollgate_sim::{write_dir, SimConfig, Simulation};

/// Runs `tollgate replay` with `args`; returns its stderr (the summary).
fn replay(args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_tollgate"))
        .arg("replay")
        .args(args)
        .output()
        .expect("run tollgate");
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(
        out.status.success(),
        "tollgate replay {args:?} failed:\n{stderr}"
    );
    stderr
}

/// The `key=value` figure in the summary.
fn figure(summary: &str, key: &str) -> u64 {
    let at = summary
        .find(&format!(" {key}="))
        .unwrap_or_else(|| panic!("no {key}= in {summary}"));
    summary[at + key.len() + 2..]
        .split(|c: char| !c.is_ascii_digit())
        .next()
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("{key}= is not a number in {summary}"))
}

/// The decode settings of a deployment that reads all four feeds: the
/// tenant from the token's tenant claim, else Zscaler's company, else the
/// API id's owner (from the generator's labels).
fn config(labels: &Path) -> String {
    let labels: Value = serde_json::from_str(&std::fs::read_to_string(labels).unwrap()).unwrap();
    let mut table = Vec::new();
    for t in labels["tenants"].as_array().unwrap() {
        for id in t["api_ids"].as_array().unwrap() {
            table.push(format!("{id} = {}", t["tenant"]));
        }
    }
    format!(
        r#"[decode]
format = "auto"
tenant = {{ type = "first_of", rules = [ {{ type = "pointer", pointer = "/authorizer/claims/custom:tenant_id" }}, {{ type = "pointer", pointer = "/company" }}, {{ type = "lookup", key = {{ type = "pointer", pointer = "/apiId" }}, table = {{ {} }} }} ] }}
"#,
        table.join(", ")
    )
}

#[test]
fn replay_accounts_for_every_record_orders_them_and_writes_alerts_for_the_incidents() {
    let dir = tempfile::tempdir().unwrap();
    let sim = Simulation::new(SimConfig {
        seed: 2,
        events: 60_000,
        tenants: 3,
        ..SimConfig::default()
    })
    .unwrap();
    let summary = write_dir(sim, dir.path()).unwrap();
    let records: u64 = summary.files.iter().map(|f| f.2).sum();
    let cfg = dir.path().join("replay.toml");
    std::fs::write(&cfg, config(&summary.labels)).unwrap();

    let mut inputs = Vec::new();
    let mut swapped = 0u64;
    for (i, (_, path, _)) in summary.files.iter().enumerate() {
        let text = std::fs::read_to_string(path).unwrap();
        let mut lines: Vec<&str> = text.lines().collect();
        match i {
            // gzip'd, as logs are archived
            0 => {
                let gz = path.with_extension("ndjson.gz");
                let mut enc = flate2::write::GzEncoder::new(
                    std::fs::File::create(&gz).unwrap(),
                    flate2::Compression::fast(),
                );
                enc.write_all(text.as_bytes()).unwrap();
                enc.finish().unwrap();
                inputs.push(gz);
            }
            // a truncated record in the middle
            1 => {
                lines.insert(lines.len() / 2, r#"{"datetime":"Mon Oct 16 22:5"#);
                let p = path.with_extension("broken.ndjson");
                std::fs::write(&p, lines.join("\n") + "\n").unwrap();
                inputs.push(p);
            }
            // every tenth pair of neighbours swapped: out of time order
            2 => {
                for k in (0..lines.len() - 1).step_by(10) {
                    lines.swap(k, k + 1);
                    swapped += 1;
                }
                let p = path.with_extension("swapped.ndjson");
                std::fs::write(&p, lines.join("\n") + "\n").unwrap();
                inputs.push(p);
            }
            _ => inputs.push(path.clone()),
        }
    }
    assert!(swapped > 100, "{swapped}");
    let inputs: Vec<&str> = inputs.iter().map(|p| p.to_str().unwrap()).collect();
    let alerts = dir.path().join("alerts.ndjson");
    let models = dir.path().join("models");
    let mut args = vec![
        "--config",
        cfg.to_str().unwrap(),
        "--alerts-out",
        alerts.to_str().unwrap(),
        "--model-dir",
        models.to_str().unwrap(),
    ];
    args.extend(&inputs);
    let out = replay(&args);

    // every record: scored, or rejected with its reason
    assert!(
        out.contains(&format!("replay: {records} events from 4 input(s)")),
        "{records} records generated:\n{out}"
    );
    assert_eq!(figure(&out, "decoded"), records, "{out}");
    assert_eq!(figure(&out, "rejected"), 1, "{out}");
    assert_eq!(figure(&out, "rejected.not_json"), 1, "{out}");
    // the swapped neighbours were put back in order
    assert_eq!(figure(&out, "late_events"), 0, "{out}");
    assert!(out.contains(" 3 tenants;"), "{out}");

    // well-formed alerts, for the generated tenants, naming the incidents' records
    let labels: Value =
        serde_json::from_str(&std::fs::read_to_string(&summary.labels).unwrap()).unwrap();
    let tenants: HashSet<&str> = labels["tenants"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["tenant"].as_str().unwrap())
        .collect();
    // incident record id -> its incident
    let malicious: HashMap<String, String> = std::fs::read_to_string(&summary.malicious)
        .unwrap()
        .lines()
        .map(|l| {
            let v: Value = serde_json::from_str(l).unwrap();
            (
                v["id"].as_str().unwrap().to_owned(),
                v["incident"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    let injected: HashSet<&String> = malicious.values().collect();
    let text = std::fs::read_to_string(&alerts).unwrap();
    let fired: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .collect();
    assert!(fired.len() >= 5, "{} alerts:\n{text}", fired.len());
    assert_eq!(
        figure(&out, "fired"),
        fired.len() as u64,
        "the summary counts what the file holds:\n{out}"
    );
    let mut found = HashSet::new();
    for a in &fired {
        for k in [
            "id", "tenant", "source", "detector", "severity", "score", "grade", "ts", "entity",
            "episode", "summary",
        ] {
            assert!(!a[k].is_null(), "{k} missing in {a}");
        }
        assert!(tenants.contains(a["tenant"].as_str().unwrap()), "{a}");
        let ts = a["ts"].as_str().unwrap();
        assert!(
            chrono::DateTime::parse_from_rfc3339(ts).is_ok(),
            "ts {ts} is not RFC 3339"
        );
        let ex = a["explanation"].as_array().expect("explanation array");
        assert!(!ex.is_empty(), "{a}");
        for c in ex {
            for k in ["feature", "value", "typical", "reason"] {
                assert!(c[k].is_string(), "{k} in {c}");
            }
        }
        if let Some(inc) = a["event_id"].as_str().and_then(|id| malicious.get(id)) {
            found.insert(inc);
        }
    }
    // (the scenario suite holds the detectors to their bars; here the
    // alerts must reach the file and name the records that raised them)
    assert!(
        found.len() * 3 >= injected.len() * 2,
        "alerts on the records of {} of {} incidents",
        found.len(),
        injected.len()
    );

    // a snapshot per tenant
    let snapshots = std::fs::read_dir(&models).unwrap().count();
    assert!(
        snapshots >= tenants.len(),
        "{snapshots} files in the model dir"
    );

    // the same input, the same alerts, byte for byte
    let again = dir.path().join("again.ndjson");
    let mut args = vec![
        "--config",
        cfg.to_str().unwrap(),
        "--alerts-out",
        again.to_str().unwrap(),
    ];
    args.extend(&inputs);
    replay(&args);
    assert_eq!(std::fs::read_to_string(&again).unwrap(), text);
}
