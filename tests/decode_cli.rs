//! `tollgate decode` end to end: the built binary over the decoder's golden
//! corpus (`crates/tollgate-events/tests/data`).
//!
//! Every NDJSON case without a `.config.json` sidecar was blessed with the
//! config `tollgate decode` uses with no flags, so the binary must print
//! exactly the expected events on stdout, one stderr line per expected
//! rejection carrying file name and line number (in order), and a summary
//! line last, and exit 0. A missing input exits 2 after the others ran.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn data_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../tollgate-events/tests/data")
}

fn tollgate(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_tollgate"))
        .args(args)
        // The corpus was blessed with the built-in subject key.
        .env_remove("TOLLGATE_SUBJECT_KEY")
        .output()
        .expect("run tollgate")
}

/// What the expectation file says the CLI should show.
#[derive(Default)]
struct Expected {
    events: String,
    /// (line, reason, batch index)
    rejections: Vec<(u64, String, Option<u64>)>,
    skipped: usize,
    time_disagreements: u64,
}

fn expected(name: &str) -> Expected {
    let text = fs::read_to_string(data_dir().join(format!("{name}.expected.ndjson")))
        .unwrap_or_else(|e| panic!("{name}: {e}"));
    let mut exp = Expected::default();
    for line in text.lines() {
        let v: serde_json::Value = serde_json::from_str(line).unwrap();
        if let Some(r) = v.get("rejected") {
            exp.rejections.push((
                v["line"].as_u64().unwrap(),
                r.as_str().unwrap().to_owned(),
                v["index"].as_u64(),
            ));
        } else if v.get("skipped").is_some() {
            exp.skipped += 1;
        } else if let Some(q) = v.get("quirks") {
            exp.time_disagreements = q["time_disagreements"].as_u64().unwrap();
        } else {
            exp.events.push_str(line);
            exp.events.push('\n');
        }
    }
    exp
}

/// Corpus cases the CLI reads the way the corpus test does: NDJSON files
/// decoded with the default configuration.
fn default_config_cases() -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(data_dir())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter_map(|f| {
            let name = f.strip_suffix(".ndjson")?;
            if name.ends_with(".expected") {
                return None;
            }
            let has_config = data_dir().join(format!("{name}.config.json")).exists();
            (!has_config).then(|| name.to_owned())
        })
        .collect();
    names.sort();
    names
}

fn check(name: &str) -> Result<(), String> {
    let path = data_dir().join(format!("{name}.ndjson"));
    let path = path.to_str().unwrap();
    let out = tollgate(&["decode", "--format", "auto", path]);
    let exp = expected(name);
    let stdout = String::from_utf8(out.stdout).unwrap();
    let stderr = String::from_utf8(out.stderr).unwrap();
    if out.status.code() != Some(0) {
        return Err(format!("{name}: exit status {:?}\n{stderr}", out.status));
    }
    if stdout != exp.events {
        return Err(format!(
            "{name}: stdout differs from the expected events\n--- expected\n{}--- actual\n{stdout}",
            exp.events
        ));
    }
    let mut lines: Vec<&str> = stderr.lines().collect();
    let summary = lines.pop().unwrap_or_default();
    let decoded = exp.events.lines().count();
    let want = format!(
        "summary: decoded={decoded} skipped={} rejected={}",
        exp.skipped,
        exp.rejections.len()
    );
    if !summary.starts_with(&want)
        || !summary.ends_with(&format!(" time_disagreements={}", exp.time_disagreements))
    {
        return Err(format!(
            "{name}: last stderr line {summary:?}, want {want:?} … time_disagreements={}",
            exp.time_disagreements
        ));
    }
    if lines.len() != exp.rejections.len() {
        return Err(format!(
            "{name}: {} rejection lines on stderr, want {}:\n{stderr}",
            lines.len(),
            exp.rejections.len()
        ));
    }
    for (got, (line, reason, index)) in lines.iter().zip(&exp.rejections) {
        let mut want = format!("{path}:{line}: rejected: {reason}");
        if let Some(i) = index {
            want.push_str(&format!(" [element {i}]"));
        }
        if !got.starts_with(&want) {
            return Err(format!(
                "{name}: stderr line {got:?}, want it to start {want:?}"
            ));
        }
    }
    Ok(())
}

#[test]
fn decode_matches_the_golden_corpus() {
    let names = default_config_cases();
    assert!(
        names.len() >= 40,
        "only {} default-config cases found",
        names.len()
    );
    let failures: Vec<String> = names.iter().filter_map(|n| check(n).err()).collect();
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn a_missing_file_exits_2_after_decoding_the_others() {
    let good = data_dir().join("apigw-v1-console-default-template.ndjson");
    let missing = data_dir().join("no-such-file.ndjson");
    let out = tollgate(&["decode", missing.to_str().unwrap(), good.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert_eq!(stdout, expected("apigw-v1-console-default-template").events);
    let stderr = String::from_utf8(out.stderr).unwrap();
    let lines: Vec<&str> = stderr.lines().collect();
    assert_eq!(lines.len(), 2, "{stderr}");
    assert!(
        lines[0].starts_with("error: cannot open") && lines[0].contains("no-such-file.ndjson"),
        "{stderr}"
    );
    assert!(
        lines[1].starts_with("summary: decoded=2 skipped=0 rejected=0"),
        "{stderr}"
    );
}
