//! `tollgate demo` end to end on a small run: the embedded Kafka starts,
//! every produced record is consumed and committed, and the scorecard is
//! printed. (The offset invariants themselves are tested in
//! `crates/tollgate-kafka/tests/mock_cluster.rs`.)

use std::process::Command;

#[test]
fn a_small_demo_consumes_everything_and_prints_a_scorecard() {
    let out = Command::new(env!("CARGO_BIN_EXE_tollgate"))
        .args(["demo", "--events", "3000", "--tenants", "3", "--seed", "2"])
        .output()
        .expect("run tollgate demo");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let records = stdout
        .lines()
        .find(|l| l.trim_start().starts_with("records"))
        .unwrap_or_else(|| panic!("no records line:\n{stdout}"));
    let n: Vec<&str> = records.split_whitespace().collect();
    // "records produced P consumed C end offsets E committed = end offsets: yes ..."
    assert_eq!(n[2], n[4], "produced vs consumed: {records}");
    assert_eq!(n[2], n[7], "produced vs end offsets: {records}");
    assert!(
        records.contains("committed = end offsets: yes"),
        "{records}"
    );
    assert!(stdout.contains("events    scored"), "{stdout}");
    assert!(stdout.contains("incidents injected"), "{stdout}");
}
