//! `tollgate replay`: recorded logs through decode → detect, as fast as the
//! core goes, alerts out as NDJSON. The backtest a user runs before trusting
//! Tollgate with a pager.
//!
//! Inputs are merged in event time (each through a bounded reorder buffer,
//! see [`crate::events_in`]); event time drives the engine (`advance` closes
//! volume intervals and resolves quiet episodes), so a replay of the same
//! files with the same configuration gives the same alerts, byte for byte.

use std::collections::BTreeMap;
use std::io::{self, IsTerminal, Write};
use std::time::Instant;

use anyhow::Context;
use chrono::{DateTime, Utc};
use serde::Deserialize;
use tollgate_detect::{AlertUpdate, DetectConfig, DirStore, Engine, MemStore, ModelStore};
use tollgate_events::{DecodeConfig, Decoder};

use crate::events_in::{EventStream, Merged};

/// The replay configuration file (TOML): how records are decoded and how the
/// engine is tuned. Command-line flags override `decode.format` and the
/// tenant rule.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReplayConfig {
    pub decode: Option<DecodeConfig>,
    #[serde(default)]
    pub detect: DetectConfig,
}

impl ReplayConfig {
    pub fn load(path: &str) -> anyhow::Result<Self> {
        let text = std::fs::read_to_string(path).with_context(|| format!("cannot read {path}"))?;
        toml::from_str(&text).with_context(|| format!("invalid configuration {path}"))
    }
}

pub struct Options {
    pub inputs: Vec<String>,
    pub alerts_out: Option<String>,
    pub model_dir: Option<String>,
    pub reorder_window: usize,
    pub detect: DetectConfig,
}

/// How often (in event time) the engine is advanced between events.
const ADVANCE_EVERY_MS: i64 = 10_000;

pub fn run(dec: Decoder, opts: Options) -> anyhow::Result<i32> {
    let cfg = opts
        .detect
        .check()
        .map_err(|e| anyhow::anyhow!("invalid detect configuration: {e}"))?;
    let store: Box<dyn ModelStore> = match &opts.model_dir {
        Some(d) => Box::new(DirStore::open(d).with_context(|| format!("model dir {d}"))?),
        None => Box::new(MemStore::new()),
    };
    let _refits = tollgate_detect::refits_on_this_thread();
    let mut engine = Engine::new(cfg, store);
    let mut streams = Vec::new();
    for p in &opts.inputs {
        streams.push(EventStream::open(p, dec.clone(), opts.reorder_window)?);
    }
    let mut merged = Merged { streams };
    let mut out: Box<dyn Write> = match opts.alerts_out.as_deref() {
        None | Some("-") => Box::new(io::BufWriter::new(io::stdout().lock())),
        Some(p) => Box::new(io::BufWriter::new(
            std::fs::File::create(p).with_context(|| format!("cannot create {p}"))?,
        )),
    };
    let progress = io::stderr().is_terminal();
    let started = Instant::now();
    let mut last_print = Instant::now();
    let mut updates = Vec::new();
    let mut by_detector: BTreeMap<&'static str, u64> = BTreeMap::new();
    let mut resolved = 0u64;
    // (the engine's fixed-seed hasher: std's SipHash cost 126 instructions
    // an event more here, 0.7 % of the 1 M-event replay under callgrind)
    let mut tenants = std::collections::HashSet::with_hasher(tollgate_detect::hash::StableBuild);
    let mut events = 0u64;
    let mut last_advance = i64::MIN;
    let mut last_ts: Option<DateTime<Utc>> = None;
    while let Some(ev) = merged.next_event()? {
        events += 1;
        if !tenants.contains(&ev.tenant) {
            tenants.insert(ev.tenant.clone());
        }
        engine.process(ev, &mut updates);
        let ms = ev.ts.timestamp_millis();
        if ms >= last_advance.saturating_add(ADVANCE_EVERY_MS) {
            engine.advance(ev.ts, &mut updates);
            last_advance = ms;
        }
        last_ts = Some(last_ts.map_or(ev.ts, |t| t.max(ev.ts)));
        write_updates(&mut out, &mut updates, &mut by_detector, &mut resolved)?;
        if progress && events.is_multiple_of(65_536) && last_print.elapsed().as_millis() >= 250 {
            last_print = Instant::now();
            eprint!(
                "\r{events} events, {} alerts, {:.0} events/s   ",
                by_detector.values().sum::<u64>(),
                events as f64 / started.elapsed().as_secs_f64()
            );
        }
    }
    // End of input: let every open episode and volume interval close.
    if let Some(t) = last_ts {
        engine.advance(t + chrono::Duration::days(1), &mut updates);
        write_updates(&mut out, &mut updates, &mut by_detector, &mut resolved)?;
    }
    out.flush()?;
    engine.flush().context("saving models")?;
    let secs = started.elapsed().as_secs_f64();
    if progress {
        eprintln!();
    }
    let tally = merged.tally();
    let late: u64 = merged.streams.iter().map(|s| s.late).sum();
    let disagreements: u64 = merged
        .streams
        .iter()
        .map(|s| s.quirks().time_disagreements)
        .sum();
    let st = engine.stats();
    eprintln!(
        "replay: {events} events from {} input(s) in {secs:.2} s ({:.0} events/s); {} tenants; {tally}; late_events={late} time_disagreements={disagreements}",
        merged.streams.len(),
        events as f64 / secs.max(1e-9),
        tenants.len(),
    );
    let fired: u64 = by_detector.values().sum();
    let per: Vec<String> = by_detector
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect();
    eprintln!(
        "alerts: fired={fired} resolved={resolved} {}; budget_hits={} evictions={} snapshot_errors={}",
        per.join(" "),
        st.budget_hits,
        st.evictions_lru + st.evictions_idle,
        st.snapshot_errors
    );
    Ok(0)
}

fn write_updates(
    out: &mut dyn Write,
    updates: &mut Vec<AlertUpdate>,
    by_detector: &mut BTreeMap<&'static str, u64>,
    resolved: &mut u64,
) -> anyhow::Result<()> {
    for u in updates.drain(..) {
        match u {
            AlertUpdate::Fired(a) => {
                *by_detector.entry(a.detector.as_str()).or_default() += 1;
                serde_json::to_writer(&mut *out, &a)?;
                out.write_all(b"\n")?;
            }
            AlertUpdate::Resolved { .. } => *resolved += 1,
        }
    }
    Ok(())
}
