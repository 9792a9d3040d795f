//! Writing a simulation out: NDJSON per feed, the labels as JSON, and the ids
//! of malicious records so that an evaluation can join labels to decoded
//! events by `Event::id`.
//!
//! This is the only module that does I/O; it writes what it is given and
//! decides nothing about the traffic.

use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::config::SimFormat;
use crate::sim::{SimRecord, Simulation};

/// Writes each record's line followed by `\n`; returns how many were written.
pub fn write_ndjson<W: Write>(
    records: impl IntoIterator<Item = SimRecord>,
    mut out: W,
) -> io::Result<u64> {
    let mut n = 0;
    for r in records {
        out.write_all(r.line.as_bytes())?;
        out.write_all(b"\n")?;
        n += 1;
    }
    out.flush()?;
    Ok(n)
}

/// What [`write_dir`] wrote.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ExportSummary {
    /// `(feed, file, records)` for each enabled feed.
    pub files: Vec<(SimFormat, PathBuf, u64)>,
    pub labels: PathBuf,
    pub malicious: PathBuf,
    pub malicious_records: u64,
}

#[derive(Serialize)]
struct MaliciousLine<'a> {
    id: &'a str,
    format: SimFormat,
    tenant: &'a str,
    incident: &'a str,
}

/// Writes into `dir` (created if missing):
/// - `<feed>.ndjson` for every enabled feed (`apigw.ndjson`, `zscaler_web.ndjson`, …);
/// - `labels.json`: [`crate::Labels`], pretty-printed;
/// - `malicious.ndjson`: `{"id","format","tenant","incident"}` per malicious record.
pub fn write_dir(sim: Simulation, dir: &Path) -> io::Result<ExportSummary> {
    std::fs::create_dir_all(dir)?;
    let labels = sim.labels();
    let labels_path = dir.join("labels.json");
    std::fs::write(
        &labels_path,
        serde_json::to_vec_pretty(&labels).map_err(io::Error::other)?,
    )?;

    let mut writers: Vec<Option<(PathBuf, BufWriter<File>, u64)>> = Vec::new();
    for f in SimFormat::ALL {
        if sim.config().sources.contains(&f) {
            let path = dir.join(format!("{}.ndjson", f.as_str()));
            let w = BufWriter::with_capacity(1 << 20, File::create(&path)?);
            writers.push(Some((path, w, 0)));
        } else {
            writers.push(None);
        }
    }
    let malicious_path = dir.join("malicious.ndjson");
    let mut malicious = BufWriter::new(File::create(&malicious_path)?);
    let mut malicious_records = 0;
    for r in sim {
        if let Some((_, w, n)) = writers[r.format.index()].as_mut() {
            w.write_all(r.line.as_bytes())?;
            w.write_all(b"\n")?;
            *n += 1;
        }
        if let Some(i) = r.incident {
            let line = MaliciousLine {
                id: &r.id,
                format: r.format,
                tenant: r.tenant.as_str(),
                incident: &labels.incidents[i as usize].id,
            };
            serde_json::to_writer(&mut malicious, &line).map_err(io::Error::other)?;
            malicious.write_all(b"\n")?;
            malicious_records += 1;
        }
    }
    malicious.flush()?;
    let mut files = Vec::new();
    for (f, w) in SimFormat::ALL.into_iter().zip(writers) {
        if let Some((path, mut w, n)) = w {
            w.flush()?;
            files.push((f, path, n));
        }
    }
    Ok(ExportSummary {
        files,
        labels: labels_path,
        malicious: malicious_path,
        malicious_records,
    })
}
