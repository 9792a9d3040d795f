//! The golden corpus: every input under `tests/data/` is decoded and the
//! result compared with its `<name>.expected.ndjson`, through one `check`
//! helper. Run with `TOLLGATE_BLESS=1` to rewrite the expectations (then read
//! the diff: an expectation is a claim about what a security engineer should
//! see, not a snapshot of whatever the decoder does).
//!
//! How a case is read, by the input file's name:
//! - `<name>.ndjson`: one record per line, as `tollgate decode` reads a file
//!   (a last line without `\n` is a record; an empty line is a `blank` skip;
//!   a file whose first line opens a multi-line JSON array is one record);
//! - `<name>.json`: the whole file is one record (a Kinesis record's data, a
//!   Cloud NSS POST body);
//! - `<name>.gzip.json`: the same, gzip-compressed by the test first (how
//!   CloudWatch subscription records arrive), so fixtures stay readable;
//! - `<name>.gz`: the file's bytes, as they are, are one record (for
//!   deliberately broken gzip).
//!
//! `<name>.config.json`, if present, is the input's `DecodeConfig`. Without
//! it the config is what `tollgate decode` uses with no flags: format `auto`,
//! default limits, the built-in subject key and the CLI's default tenant rule
//! (the first of `/tenant`, `/authorizer/claims/custom:tenant_id`,
//! `/custom:tenant_id`, `/company`, `/Customer`, else `default`); the CLI test
//! in `tests/decode_cli.rs` holds the two to the same output.
//!
//! Each expected line is one decoded item: the event as JSON,
//! `{"skipped":"<reason>"}`, or `{"rejected":"<reason>","line":L,"index":I}`
//! (`index`: position inside a batch, or null). A last line
//! `{"quirks":{"time_disagreements":N}}` appears when N > 0.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use tollgate_events::{DecodeConfig, Decoded, Decoder, Event, Format, RecordMeta, TenantRule};

fn data_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data")
}

/// How a case's input file is turned into records.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Shape {
    Lines,
    Whole,
    GzipWhole,
    Raw,
}

/// `(name, shape)` for an input file, or `None` for sidecars.
fn case_of(file: &str) -> Option<(&str, Shape)> {
    if file.ends_with(".expected.ndjson") || file.ends_with(".config.json") {
        return None;
    }
    if let Some(n) = file.strip_suffix(".gzip.json") {
        Some((n, Shape::GzipWhole))
    } else if let Some(n) = file.strip_suffix(".ndjson") {
        Some((n, Shape::Lines))
    } else if let Some(n) = file.strip_suffix(".json") {
        Some((n, Shape::Whole))
    } else {
        file.strip_suffix(".gz").map(|n| (n, Shape::Raw))
    }
}

fn config_for(name: &str) -> DecodeConfig {
    let path = data_dir().join(format!("{name}.config.json"));
    match fs::read_to_string(&path) {
        Ok(s) => serde_json::from_str(&s)
            .unwrap_or_else(|e| panic!("{}: not a DecodeConfig: {e}", path.display())),
        Err(_) => DecodeConfig::new(Format::Auto, TenantRule::common_fields()),
    }
}

fn gzip(b: &[u8]) -> Vec<u8> {
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    enc.write_all(b).unwrap();
    enc.finish().unwrap()
}

/// Whether the first line opens a JSON array that it does not close (the CLI
/// then reads the whole file as one batch record).
fn opens_multiline_array(first: &[u8]) -> bool {
    let t = first.trim_ascii();
    t.starts_with(b"[") && serde_json::from_slice::<serde::de::IgnoredAny>(t).is_err()
}

/// The records of a case, each with the line number a rejection reports.
fn records(bytes: &[u8], shape: Shape) -> Vec<(usize, Vec<u8>)> {
    match shape {
        Shape::Whole | Shape::Raw => vec![(1, bytes.to_vec())],
        Shape::GzipWhole => vec![(1, gzip(bytes))],
        Shape::Lines => {
            let mut lines: Vec<&[u8]> = bytes.split(|&b| b == b'\n').collect();
            if lines.last().is_some_and(|l| l.is_empty()) {
                lines.pop();
            }
            if lines.first().is_some_and(|l| opens_multiline_array(l)) {
                return vec![(1, bytes.to_vec())];
            }
            lines
                .iter()
                .enumerate()
                .map(|(i, l)| (i + 1, l.strip_suffix(b"\r").unwrap_or(l).to_vec()))
                .collect()
        }
    }
}

/// Decodes one case and renders the expectation text.
fn render(name: &str, shape: Shape, input: &[u8]) -> String {
    let cfg = config_for(name);
    let mut dec = Decoder::new(&cfg).unwrap_or_else(|e| panic!("{name}: bad config: {e}"));
    let recs = records(input, shape);
    let mut out = String::new();
    let mut items = Vec::new();
    for (line, rec) in recs {
        // A whole-file batch: the CLI lifts the record limit to the file size.
        let mut d = if shape == Shape::Lines && line == 1 && opens_multiline_array(first_line(&rec))
        {
            let mut l = cfg.limits.clone();
            l.max_record_bytes = l.max_record_bytes.max(rec.len());
            dec.clone().with_limits(l)
        } else {
            dec.clone()
        };
        d.decode(&rec, &RecordMeta::default(), &mut items);
        dec.quirks = d.quirks.clone();
        for item in items.drain(..) {
            // Events exactly as `tollgate decode` prints them (struct order).
            let text = match item {
                Decoded::Event(ev) => serde_json::to_string(&ev).unwrap(),
                Decoded::Skipped(s) => format!(r#"{{"skipped":"{}"}}"#, s.as_str()),
                Decoded::Rejected(r) => format!(
                    r#"{{"rejected":"{}","line":{line},"index":{}}}"#,
                    r.reason.as_str(),
                    r.index.map_or("null".to_owned(), |i| i.to_string())
                ),
            };
            out.push_str(&text);
            out.push('\n');
        }
    }
    if dec.quirks.time_disagreements > 0 {
        out.push_str(&format!(
            "{{\"quirks\":{{\"time_disagreements\":{}}}}}\n",
            dec.quirks.time_disagreements
        ));
    }
    out
}

fn first_line(b: &[u8]) -> &[u8] {
    b.split(|&c| c == b'\n').next().unwrap_or(b)
}

/// Secrets a case's input carries that must never reach its output: the
/// segments of every JWT and the text of every `Bearer` token.
fn secrets_in(input: &[u8]) -> Vec<String> {
    let text = String::from_utf8_lossy(input);
    let mut out = Vec::new();
    for word in text.split(|c: char| !(c.is_ascii_alphanumeric() || "-_.".contains(c))) {
        if word.starts_with("eyJ") && word.matches('.').count() >= 2 {
            out.extend(word.split('.').filter(|s| s.len() >= 6).map(str::to_owned));
        }
    }
    for (i, _) in text.match_indices("Bearer ") {
        let tok: String = text[i + 7..]
            .chars()
            .take_while(|c| !matches!(c, '"' | ' ' | '\\'))
            .collect();
        if tok.len() >= 6 {
            out.push(tok);
        }
    }
    out
}

/// Checks one case against its expectation (or rewrites it when blessing).
fn check(name: &str, shape: Shape, input_path: &Path) -> Result<(), String> {
    let input = fs::read(input_path).unwrap();
    let actual = render(name, shape, &input);
    let again = render(name, shape, &input);
    if actual != again {
        return Err(format!("{name}: decoding twice gave different output"));
    }
    for secret in secrets_in(&input) {
        if actual.contains(&secret) {
            return Err(format!("{name}: token text leaked into the output"));
        }
    }
    for line in actual.lines() {
        let v: serde_json::Value = serde_json::from_str(line).unwrap();
        if v.get("tenant").is_some() {
            let ev: Event = serde_json::from_value(v.clone())
                .map_err(|e| format!("{name}: event does not read back: {e}"))?;
            if serde_json::to_value(&ev).unwrap() != v {
                return Err(format!("{name}: event does not round-trip"));
            }
        }
    }
    let exp_path = data_dir().join(format!("{name}.expected.ndjson"));
    if std::env::var_os("TOLLGATE_BLESS").is_some_and(|v| v == "1") {
        fs::write(&exp_path, &actual).unwrap();
        return Ok(());
    }
    let expected = fs::read_to_string(&exp_path).map_err(|_| {
        format!(
            "{name}: no {} (run with TOLLGATE_BLESS=1, then read it)",
            exp_path.display()
        )
    })?;
    if expected == actual {
        return Ok(());
    }
    let (e, a): (Vec<_>, Vec<_>) = (expected.lines().collect(), actual.lines().collect());
    let mut msg = format!("{name}: output differs from {}\n", exp_path.display());
    for i in 0..e.len().max(a.len()) {
        let (x, y) = (e.get(i), a.get(i));
        if x != y {
            msg.push_str(&format!(
                "  item {}:\n    expected {}\n    actual   {}\n",
                i + 1,
                x.unwrap_or(&"<none>"),
                y.unwrap_or(&"<none>")
            ));
        }
    }
    Err(msg)
}

#[test]
fn corpus() {
    let mut files: Vec<String> = fs::read_dir(data_dir())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    files.sort();
    let mut failures = Vec::new();
    let mut cases = 0;
    for file in &files {
        let Some((name, shape)) = case_of(file) else {
            continue;
        };
        cases += 1;
        if let Err(e) = check(name, shape, &data_dir().join(file)) {
            failures.push(e);
        }
    }
    // Every sidecar belongs to a case.
    for file in &files {
        let stem = file
            .strip_suffix(".expected.ndjson")
            .or_else(|| file.strip_suffix(".config.json"));
        if let Some(stem) = stem {
            if !files
                .iter()
                .any(|f| case_of(f).is_some_and(|(n, _)| n == stem))
            {
                failures.push(format!("{file}: no input file for this sidecar"));
            }
        }
    }
    assert!(cases >= 70, "the corpus shrank to {cases} cases");
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// A gzip bomb (megabytes of zeros in a few kilobytes) stops inflating at
/// the limit and is rejected, not decoded.
#[test]
fn gzip_bomb_is_rejected_at_the_inflate_limit() {
    let bomb = gzip(&vec![b'0'; 8 << 20]);
    assert!(bomb.len() < 64 << 10);
    let mut cfg = DecodeConfig::new(Format::Auto, TenantRule::common_fields());
    cfg.limits.max_decompressed_bytes = 1 << 20;
    let mut dec = Decoder::new(&cfg).unwrap();
    let mut out = Vec::new();
    dec.decode(&bomb, &RecordMeta::default(), &mut out);
    assert_eq!(out.len(), 1);
    let Decoded::Rejected(r) = &out[0] else {
        panic!("{out:?}")
    };
    assert_eq!(r.reason.as_str(), "decompressed_too_large");
}
