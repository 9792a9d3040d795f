//! Reading the NAB corpus as shipped in `shared/data/nab`: the series
//! (`data/<category>/<file>.csv`, header `timestamp,value`), the scoring
//! windows (`labels/combined_windows.json`) and the cost profiles
//! (`config/profiles.json`).
//!
//! Window edges carry a `.000000` suffix the data's timestamps lack, so both
//! are parsed as datetimes and matched exactly; an edge that matches no row
//! is an error, never a silent shift. The anomaly points
//! (`combined_labels.json`) are not read: NAB scores against the windows.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use chrono::NaiveDateTime;
use serde::Deserialize;

use super::score::{CostProfile, Layout, ScoreError};

/// Why the corpus could not be read.
#[derive(Debug, thiserror::Error)]
pub enum DataError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}:{line}: {msg}")]
    Parse {
        path: PathBuf,
        line: usize,
        msg: String,
    },
    #[error("{key}: window edge {edge} matches no row")]
    WindowEdge { key: String, edge: String },
    #[error("{key}: {source}")]
    Layout { key: String, source: ScoreError },
    #[error("no series selected")]
    Empty,
}

/// One NAB series with its scoring layout.
#[derive(Debug, Clone)]
pub struct Series {
    /// `category/file.csv`, as in `combined_windows.json`.
    pub key: String,
    pub timestamps: Vec<NaiveDateTime>,
    pub values: Vec<f64>,
    pub layout: Layout,
}

impl Series {
    pub fn category(&self) -> &str {
        self.key.split_once('/').map_or("", |(c, _)| c)
    }

    pub fn file_name(&self) -> &str {
        self.key.rsplit_once('/').map_or(&self.key, |(_, f)| f)
    }
}

/// The selected series (sorted by key, as NAB lists them) and the profiles.
#[derive(Debug, Clone)]
pub struct Corpus {
    pub series: Vec<Series>,
    pub profiles: Vec<CostProfile>,
}

const TIME_FORMAT: &str = "%Y-%m-%d %H:%M:%S%.f";

fn parse_time(s: &str) -> Option<NaiveDateTime> {
    NaiveDateTime::parse_from_str(s.trim(), TIME_FORMAT).ok()
}

fn read(path: &Path) -> Result<String, DataError> {
    std::fs::read_to_string(path).map_err(|source| DataError::Io {
        path: path.to_path_buf(),
        source,
    })
}

#[derive(Deserialize)]
struct ProfileEntry {
    #[serde(rename = "CostMatrix")]
    cost_matrix: CostMatrix,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct CostMatrix {
    tp_weight: f64,
    fn_weight: f64,
    fp_weight: f64,
}

/// Parse `profiles.json`; NAB's three come first in NAB's order, any others
/// after them by name.
pub fn parse_profiles(text: &str, path: &Path) -> Result<Vec<CostProfile>, DataError> {
    let map: BTreeMap<String, ProfileEntry> =
        serde_json::from_str(text).map_err(|e| DataError::Parse {
            path: path.to_path_buf(),
            line: e.line(),
            msg: e.to_string(),
        })?;
    let order = |n: &str| {
        CostProfile::nab()
            .iter()
            .position(|p| p.name == n)
            .unwrap_or(usize::MAX)
    };
    let mut v: Vec<CostProfile> = map
        .into_iter()
        .map(|(name, e)| CostProfile {
            name,
            tp_weight: e.cost_matrix.tp_weight,
            fn_weight: e.cost_matrix.fn_weight,
            fp_weight: e.cost_matrix.fp_weight,
        })
        .collect();
    v.sort_by_key(|p| order(&p.name));
    Ok(v)
}

/// Parse one series' CSV (`timestamp,value` header, one row per line).
pub fn parse_series(text: &str, path: &Path) -> Result<(Vec<NaiveDateTime>, Vec<f64>), DataError> {
    let err = |line: usize, msg: String| DataError::Parse {
        path: path.to_path_buf(),
        line,
        msg,
    };
    let mut lines = text.lines().enumerate();
    match lines.next() {
        Some((_, h)) if h.trim() == "timestamp,value" => {}
        other => {
            return Err(err(
                1,
                format!("expected header timestamp,value, got {other:?}"),
            ))
        }
    }
    let mut ts = Vec::new();
    let mut vs = Vec::new();
    for (i, line) in lines {
        if line.trim().is_empty() {
            continue;
        }
        let (t, v) = line
            .split_once(',')
            .ok_or_else(|| err(i + 1, "expected two columns".into()))?;
        let t = parse_time(t).ok_or_else(|| err(i + 1, format!("bad timestamp {t:?}")))?;
        let v: f64 = v
            .trim()
            .parse()
            .map_err(|_| err(i + 1, format!("bad value {v:?}")))?;
        ts.push(t);
        vs.push(v);
    }
    Ok((ts, vs))
}

impl Corpus {
    /// Read the corpus under `dir`, keeping the series whose key `select`
    /// accepts.
    pub fn load(dir: &Path, select: impl Fn(&str) -> bool) -> Result<Corpus, DataError> {
        let pp = dir.join("config/profiles.json");
        let profiles = parse_profiles(&read(&pp)?, &pp)?;
        let wp = dir.join("labels/combined_windows.json");
        let windows: BTreeMap<String, Vec<[String; 2]>> = serde_json::from_str(&read(&wp)?)
            .map_err(|e| DataError::Parse {
                path: wp.clone(),
                line: e.line(),
                msg: e.to_string(),
            })?;
        let mut series = Vec::new();
        for (key, wins) in windows {
            if !select(&key) {
                continue;
            }
            let path = dir.join("data").join(&key);
            let (timestamps, values) = parse_series(&read(&path)?, &path)?;
            let index: HashMap<NaiveDateTime, usize> = timestamps
                .iter()
                .enumerate()
                .map(|(i, t)| (*t, i))
                .collect();
            let row = |edge: &String| {
                parse_time(edge)
                    .and_then(|t| index.get(&t).copied())
                    .ok_or_else(|| DataError::WindowEdge {
                        key: key.clone(),
                        edge: edge.clone(),
                    })
            };
            let mut rows = Vec::with_capacity(wins.len());
            for [a, b] in &wins {
                rows.push((row(a)?, row(b)?));
            }
            let layout =
                Layout::new(timestamps.len(), rows).map_err(|source| DataError::Layout {
                    key: key.clone(),
                    source,
                })?;
            series.push(Series {
                key,
                timestamps,
                values,
                layout,
            });
        }
        if series.is_empty() {
            return Err(DataError::Empty);
        }
        Ok(Corpus { series, profiles })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_series_and_profiles() {
        let p = Path::new("x.csv");
        let (t, v) = parse_series(
            "timestamp,value\n2014-04-01 00:00:00,1.5\n2014-04-01 00:05:00,-2\n",
            p,
        )
        .unwrap();
        assert_eq!(v, vec![1.5, -2.0]);
        assert_eq!(t[1], parse_time("2014-04-01 00:05:00.000000").unwrap());
        assert!(parse_series("time,value\n", p).is_err());
        assert!(parse_series("timestamp,value\n2014-04-01,1\n", p).is_err());
        let profiles = parse_profiles(
            r#"{"reward_low_FN_rate": {"CostMatrix": {"tpWeight": 1.0, "fnWeight": 2.0, "fpWeight": 0.11, "tnWeight": 1.0}},
                "standard": {"CostMatrix": {"tpWeight": 1.0, "fnWeight": 1.0, "fpWeight": 0.11, "tnWeight": 1.0}}}"#,
            p,
        )
        .unwrap();
        assert_eq!(profiles[0], CostProfile::nab()[0]);
        assert_eq!(profiles[1], CostProfile::nab()[2]);
    }
}
