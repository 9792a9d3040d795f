//! `tollgate eval scenarios`: the labelled scenario suite. Generates seeded
//! multi-tenant traffic with injected incidents (`tollgate-sim`), runs every
//! record through the real decoder and engine, and scores the result: per
//! scenario recall and detection delay, false alerts per 100k benign events,
//! and event-level AUROC/AUPRC — against the bars in the detection issue.
//!
//! Attribution: an alert belongs to an incident when the event that triggered
//! it is one of the incident's records, or — for interval alerts with no
//! triggering event (volume) — when it is for the incident's tenant and falls
//! inside the incident's window (plus two volume intervals). Every other alert
//! is a false alert.
//!
//! Fairness, reviewed: an event-triggered alert counts for an incident only
//! when the triggering record is malicious, so a burst alert that happens to
//! fire on a benign 404 in the middle of an enumeration is counted false
//! (strict, never lenient); an episode's later repeats emit nothing, so one
//! incident cannot earn several detections. Volume alerts are the lenient
//! case: any incident of the tenant whose window covers them takes them,
//! because every scenario adds traffic to its interval.
//!
//! `--explain` lists each missed incident with the best raw score and grade
//! every detector gave its records, each categorical incident found later
//! than its fifth malicious event (the detector that found it, and the best
//! scores over its first five), and the false alerts by detector with
//! example summaries: the first place to look when a bar is missed.
//!
//! The public benchmarks (`tollgate eval nab`, `tollgate eval odds`) and the
//! HTML report live in `tollgate-eval`; this module reads their options,
//! prints their tables beside the published figures, writes `--results-out`
//! and `--report`, and turns the scenario suite into report plots (per
//! tenant: events per volume interval, the highest grade, incidents shaded,
//! alerts marked).

use std::collections::{BTreeMap, HashMap};
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::Context;
use tollgate_eval::metrics::{auprc, auroc};
use tollgate_eval::report::{self, SeriesPlot, Table};
use tollgate_eval::{nab, odds};

use tollgate_detect::{AlertUpdate, DetectConfig, Detector, Engine, MemStore};
use tollgate_events::{DecodeConfig, Decoded, Decoder, Format, RecordMeta, TenantId, TenantRule};
use tollgate_sim::{Scenario, SimConfig, Simulation};

pub struct Options {
    pub seeds: Vec<u64>,
    pub events: u64,
    pub tenants: usize,
    pub days: u64,
    pub incidents_per_scenario: usize,
    pub detect: DetectConfig,
    /// Exit non-zero when a bar is missed.
    pub check: bool,
    /// Print missed incidents and the false alerts by detector (`--explain`).
    pub explain: bool,
    /// Write `DIR/scenarios.html` (per-tenant plots of the first seed).
    pub report: Option<PathBuf>,
}

/// Scenarios whose signal is a first-seen fact; the bar is detection within
/// their first five malicious events.
fn categorical(s: Scenario) -> bool {
    matches!(
        s,
        Scenario::NewIssuer
            | Scenario::StolenToken
            | Scenario::Exfiltration
            | Scenario::OffHoursAdmin
    )
}

#[derive(Default, Clone)]
struct IncidentResult {
    detected: bool,
    delay_events: u64,
    delay_secs: f64,
    seen: u64,
    /// Highest raw score (and its grade) per detector over the incident's
    /// events, for `--explain` on a miss.
    best: [(f64, f64); Detector::COUNT],
    /// The same over its first five events, for `--explain` on a late
    /// detection of a categorical incident.
    early: [(f64, f64); Detector::COUNT],
    /// The detector of the first alert attributed to it.
    found_by: Option<Detector>,
    /// Whether the tenant was warm at the incident's first event.
    warm: bool,
}

/// The figures of one seed.
pub struct SeedReport {
    pub seed: u64,
    pub rows: Vec<ScenarioRow>,
    pub false_alerts: u64,
    pub benign_events: u64,
    pub worst_tenant_fa_per_100k: f64,
    pub auroc: f64,
    pub auprc: f64,
    pub events: u64,
    pub secs: f64,
    /// Incidents no alert was attributed to: (id, tenant, entity, records).
    pub missed: Vec<String>,
    /// Categorical incidents detected after their fifth malicious event.
    pub late: Vec<String>,
    /// False alerts per detector, most first, with up to three example summaries.
    pub false_by_detector: Vec<(String, u64, Vec<String>)>,
    /// One line per resident tenant model: events, budget hits, size.
    pub models: Vec<String>,
    /// What the report plots (only when `trace` was asked for).
    pub trace: Option<Trace>,
}

/// Per tenant and volume interval: events and the highest grade; every
/// alert; every incident. For the report's plots.
#[derive(Default)]
pub struct Trace {
    pub start_ms: i64,
    pub interval_ms: i64,
    pub tenants: BTreeMap<TenantId, (Vec<u32>, Vec<f64>)>,
    /// (tenant, time, attributed to an incident)
    pub alerts: Vec<(TenantId, i64, bool)>,
    /// (tenant, start, end, scenario)
    pub incidents: Vec<(TenantId, i64, i64, &'static str)>,
}

impl Trace {
    fn record(&mut self, tenant: &TenantId, ms: i64, grade: f64) {
        if self.start_ms == i64::MIN {
            self.start_ms = ms;
        }
        let i = ((ms - self.start_ms).max(0) / self.interval_ms) as usize;
        let (n, g) = self.tenants.entry(tenant.clone()).or_default();
        if n.len() <= i {
            n.resize(i + 1, 0);
            g.resize(i + 1, 0.0);
        }
        n[i] += 1;
        g[i] = g[i].max(grade);
    }
}

pub struct ScenarioRow {
    pub scenario: Scenario,
    pub injected: usize,
    pub detected: usize,
    pub median_delay_events: f64,
    pub median_delay_secs: f64,
    pub max_delay_events: u64,
}

impl SeedReport {
    pub fn fa_per_100k(&self) -> f64 {
        self.false_alerts as f64 * 1e5 / (self.benign_events.max(1)) as f64
    }

    /// The bars, as (name, passed).
    pub fn bars(&self) -> Vec<(String, bool)> {
        let mut b = Vec::new();
        for r in &self.rows {
            let recall = r.detected as f64 / r.injected.max(1) as f64;
            b.push((
                format!("recall {} >= 0.95", r.scenario.as_str()),
                recall >= 0.95,
            ));
            if categorical(r.scenario) {
                b.push((
                    format!("{} detected within 5 malicious events", r.scenario.as_str()),
                    r.detected == r.injected && r.max_delay_events <= 5,
                ));
            }
        }
        b.push((
            "false alerts <= 1 per 100k benign events per tenant".into(),
            self.worst_tenant_fa_per_100k <= 1.0,
        ));
        b
    }
}

pub fn run_seed(opts: &Options, seed: u64) -> anyhow::Result<SeedReport> {
    let sim_cfg = SimConfig {
        seed,
        tenants: opts.tenants,
        events: opts.events,
        duration: std::time::Duration::from_secs(opts.days * 86_400),
        incidents_per_scenario: opts.incidents_per_scenario,
        ..SimConfig::default()
    };
    let sim = Simulation::new(sim_cfg).map_err(|e| anyhow::anyhow!("simulation: {e}"))?;
    let incidents = sim.incidents().to_vec();
    // In a deployment the tenant comes from the transport (a Kafka key here);
    // the records' own tenant markers are covered by the decoder's tests.
    let mut dec = Decoder::new(&DecodeConfig::new(Format::Auto, TenantRule::KafkaKey {}))
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let cfg = opts
        .detect
        .clone()
        .check()
        .map_err(|e| anyhow::anyhow!("invalid detect configuration: {e}"))?;
    let interval_ms = cfg.config().volume_interval.as_millis_i64();
    let mut engine = Engine::new(cfg, Box::new(MemStore::new()));
    let mut results = vec![IncidentResult::default(); incidents.len()];
    let mut benign: HashMap<TenantId, u64> = HashMap::new();
    let mut false_by_tenant: HashMap<TenantId, u64> = HashMap::new();
    let mut fa = FalseAlerts::default();
    let mut scores: Vec<(f64, bool)> = Vec::with_capacity(opts.events as usize + 10_000);
    let mut items = Vec::new();
    let mut updates = Vec::new();
    let mut last_advance = i64::MIN;
    let started = Instant::now();
    let mut events = 0u64;
    let mut last_ts = None;
    let mut trace = opts.report.as_ref().map(|_| Trace {
        start_ms: i64::MIN,
        interval_ms,
        ..Trace::default()
    });
    for rec in sim {
        let meta = RecordMeta {
            key: Some(rec.tenant.as_str().as_bytes()),
            ..RecordMeta::default()
        };
        dec.decode(rec.line.as_bytes(), &meta, &mut items);
        for d in items.drain(..) {
            let ev = match d {
                Decoded::Event(ev) => ev,
                other => anyhow::bail!("simulated record {} did not decode: {other:?}", rec.id),
            };
            events += 1;
            let score = engine.process(&ev, &mut updates);
            let ms = ev.ts.timestamp_millis();
            last_ts = Some(ev.ts);
            if let Some(t) = trace.as_mut() {
                t.record(&ev.tenant, ms, score.max_grade);
            }
            match rec.incident {
                Some(i) => {
                    let r = &mut results[i as usize];
                    if r.seen == 0 {
                        r.warm = score.warm;
                    }
                    r.seen += 1;
                    for d in Detector::ALL {
                        let x = score.per_detector[d.index()];
                        if x.raw > r.best[d.index()].0 {
                            r.best[d.index()] = (x.raw, x.grade);
                        }
                        if r.seen <= 5 && x.raw > r.early[d.index()].0 {
                            r.early[d.index()] = (x.raw, x.grade);
                        }
                    }
                    scores.push((score.max_grade, true));
                }
                None => {
                    *benign.entry(ev.tenant.clone()).or_default() += 1;
                    scores.push((score.max_grade, false));
                }
            }
            if ms >= last_advance.saturating_add(10_000) {
                engine.advance(ev.ts, &mut updates);
                last_advance = ms;
            }
            attribute(
                &mut updates,
                rec.incident,
                &incidents,
                &mut results,
                &mut false_by_tenant,
                &mut fa,
                interval_ms,
            );
        }
    }
    let mut models = Vec::new();
    let mut tenants: Vec<&TenantId> = benign.keys().collect();
    tenants.sort();
    for t in tenants {
        if let Some(m) = engine.tenant(t) {
            models.push(format!(
                "{t}: {} events, {} budget hits {:?}, {} bytes, {:?}",
                m.events(),
                m.budget_hits(),
                m.budget_hits_by_structure(),
                m.resident_bytes(),
                m.counters()
            ));
        }
    }
    if let Some(t) = last_ts {
        engine.advance(t + chrono::Duration::days(1), &mut updates);
        attribute(
            &mut updates,
            None,
            &incidents,
            &mut results,
            &mut false_by_tenant,
            &mut fa,
            interval_ms,
        );
    }
    if let Some(t) = trace.as_mut() {
        t.alerts = std::mem::take(&mut fa.fired);
        t.incidents = incidents
            .iter()
            .map(|i| {
                (
                    i.tenant.clone(),
                    i.start.timestamp_millis(),
                    i.end.timestamp_millis(),
                    i.scenario.as_str(),
                )
            })
            .collect();
    }
    let secs = started.elapsed().as_secs_f64();
    let rows = Scenario::ALL
        .iter()
        .filter_map(|&s| {
            let idx: Vec<usize> = (0..incidents.len())
                .filter(|&i| incidents[i].scenario == s)
                .collect();
            if idx.is_empty() {
                return None;
            }
            let det: Vec<&IncidentResult> = idx
                .iter()
                .map(|&i| &results[i])
                .filter(|r| r.detected)
                .collect();
            let mut de: Vec<f64> = det.iter().map(|r| r.delay_events as f64).collect();
            let mut ds: Vec<f64> = det.iter().map(|r| r.delay_secs).collect();
            Some(ScenarioRow {
                scenario: s,
                injected: idx.len(),
                detected: det.len(),
                median_delay_events: median(&mut de),
                median_delay_secs: median(&mut ds),
                max_delay_events: det.iter().map(|r| r.delay_events).max().unwrap_or(0),
            })
        })
        .collect();
    let benign_events: u64 = benign.values().sum();
    let false_alerts: u64 = false_by_tenant.values().sum();
    // Per-tenant rate, over tenants with enough traffic for the rate to mean
    // anything at this scale (≥ 10k benign events); one false alert in a
    // tenant with fewer events is reported in the totals.
    let worst = benign
        .iter()
        .filter(|(_, &n)| n >= 10_000)
        .map(|(t, &n)| false_by_tenant.get(t).copied().unwrap_or(0) as f64 * 1e5 / n as f64)
        .fold(0.0, f64::max);
    let (auroc, auprc) = (auroc(&scores), auprc(&scores));
    let missed = incidents
        .iter()
        .zip(&results)
        .filter(|(_, r)| !r.detected)
        .map(|(inc, r)| {
            format!(
                "{} tenant {} entity {} ({} records, {} .. {}, warm: {}); best raw scores: {}",
                inc.id,
                inc.tenant,
                inc.entity,
                inc.malicious_records,
                inc.start,
                inc.end,
                r.warm,
                best_scores(&r.best)
            )
        })
        .collect();
    let late = incidents
        .iter()
        .zip(&results)
        .filter(|(inc, r)| categorical(inc.scenario) && r.detected && r.delay_events > 5)
        .map(|(inc, r)| {
            format!(
                "{} tenant {} entity {}: found by {} at malicious event {} ({:.0} s after its start); best raw scores over its first five: {}",
                inc.id,
                inc.tenant,
                inc.entity,
                r.found_by.map_or("?", |d| d.as_str()),
                r.delay_events,
                r.delay_secs,
                best_scores(&r.early)
            )
        })
        .collect();
    let mut false_by_detector: Vec<(String, u64, Vec<String>)> = fa
        .by_detector
        .into_iter()
        .map(|(d, (n, e))| (d, n, e))
        .collect();
    false_by_detector.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
    Ok(SeedReport {
        seed,
        rows,
        false_alerts,
        benign_events,
        worst_tenant_fa_per_100k: worst,
        auroc,
        auprc,
        events,
        secs,
        missed,
        late,
        false_by_detector,
        models,
        trace,
    })
}

/// False alerts by detector, with a few example summaries (for
/// `--explain`), and the log of every alert (for the report).
#[derive(Default)]
struct FalseAlerts {
    by_detector: BTreeMap<String, (u64, Vec<String>)>,
    /// Every alert: (tenant, time, attributed to an incident), for the report.
    fired: Vec<(TenantId, i64, bool)>,
}

impl FalseAlerts {
    fn add(&mut self, a: &tollgate_detect::Alert) {
        let e = self
            .by_detector
            .entry(a.detector.as_str().to_string())
            .or_default();
        e.0 += 1;
        if e.1.len() < 5 {
            e.1.push(format!("[{} {}] {}", a.tenant, a.ts, a.summary));
        }
    }
}

fn attribute(
    updates: &mut Vec<AlertUpdate>,
    current: Option<u32>,
    incidents: &[tollgate_sim::Incident],
    results: &mut [IncidentResult],
    false_by_tenant: &mut HashMap<TenantId, u64>,
    fa: &mut FalseAlerts,
    interval_ms: i64,
) {
    for u in updates.drain(..) {
        let AlertUpdate::Fired(a) = u else { continue };
        let inc = incident_of(&a, current, incidents, interval_ms);
        fa.fired
            .push((a.tenant.clone(), a.ts.timestamp_millis(), inc.is_some()));
        match inc {
            Some(i) => {
                let r = &mut results[i];
                if !r.detected {
                    r.detected = true;
                    r.delay_events = r.seen;
                    r.found_by = Some(a.detector);
                    r.delay_secs = (a.ts - incidents[i].start).num_milliseconds() as f64 / 1e3;
                }
            }
            None => {
                *false_by_tenant.entry(a.tenant.clone()).or_default() += 1;
                fa.add(&a);
            }
        }
    }
}

/// The incident an alert belongs to (see the module docs): the one whose
/// record triggered it, or — for an interval alert with no triggering event —
/// one of the same tenant whose window (plus two volume intervals) covers it.
/// `current` is the incident of the record being processed, if any. Shared by
/// `eval scenarios` and `demo`, so both score alike.
pub fn incident_of(
    a: &tollgate_detect::Alert,
    current: Option<u32>,
    incidents: &[tollgate_sim::Incident],
    interval_ms: i64,
) -> Option<usize> {
    match (&a.event_id, current) {
        (Some(_), Some(i)) if incidents[i as usize].tenant == a.tenant => Some(i as usize),
        (None, _) => incidents.iter().position(|inc| {
            inc.tenant == a.tenant
                && a.ts >= inc.start
                && a.ts.timestamp_millis() <= inc.end.timestamp_millis() + 2 * interval_ms
        }),
        _ => None,
    }
}

/// "detector raw (grade g)" for each detector that scored above zero.
fn best_scores(best: &[(f64, f64); Detector::COUNT]) -> String {
    Detector::ALL
        .iter()
        .filter(|d| best[d.index()].0 > 0.0)
        .map(|d| {
            let (raw, g) = best[d.index()];
            format!("{} {raw:.2} (grade {g:.3})", d.as_str())
        })
        .collect::<Vec<_>>()
        .join(", ")
}

fn median(v: &mut [f64]) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

pub fn run(opts: Options) -> anyhow::Result<i32> {
    let (code, section) = run_scenarios(&opts)?;
    if let Some(dir) = &opts.report {
        write_report(dir, "scenarios", &[section])?;
    }
    Ok(code)
}

/// Run and print the scenario suite; the report section comes back with the
/// exit code.
pub fn run_scenarios(opts: &Options) -> anyhow::Result<(i32, report::Section)> {
    let mut all_pass = true;
    let mut reports = Vec::new();
    for &seed in &opts.seeds {
        let r = run_seed(opts, seed)?;
        println!(
            "seed {}: {} events in {:.1} s ({:.0} events/s through decode + detect)",
            r.seed,
            r.events,
            r.secs,
            r.events as f64 / r.secs.max(1e-9)
        );
        println!(
            "{:<22} {:>9} {:>9} {:>7} {:>14} {:>12}",
            "scenario", "injected", "detected", "recall", "median_delay", "median_secs"
        );
        for row in &r.rows {
            println!(
                "{:<22} {:>9} {:>9} {:>7.2} {:>14.1} {:>12.1}",
                row.scenario.as_str(),
                row.injected,
                row.detected,
                row.detected as f64 / row.injected.max(1) as f64,
                row.median_delay_events,
                row.median_delay_secs
            );
        }
        println!(
            "false alerts: {} over {} benign events = {:.2} per 100k (worst tenant with >= 10k events: {:.2} per 100k)",
            r.false_alerts,
            r.benign_events,
            r.fa_per_100k(),
            r.worst_tenant_fa_per_100k
        );
        println!("event level: AUROC {:.4}  AUPRC {:.4}", r.auroc, r.auprc);
        if opts.explain {
            for m in &r.models {
                println!("  model {m}");
            }
            for m in &r.missed {
                println!("  missed: {m}");
            }
            for m in &r.late {
                println!("  late: {m}");
            }
            for (d, (n, ex)) in r.false_by_detector.iter().map(|(d, n, e)| (d, (n, e))) {
                println!("  false alerts by {d}: {n}");
                for e in ex {
                    println!("      e.g. {e}");
                }
            }
        }
        for (name, ok) in r.bars() {
            println!("  [{}] {name}", if ok { "pass" } else { "FAIL" });
            all_pass &= ok;
        }
        println!();
        reports.push(r);
    }
    let section = scenario_section(opts, &reports);
    Ok((if opts.check && !all_pass { 1 } else { 0 }, section))
}

/// The scenario suite as a report section: a table per seed and, for the
/// first seed, one plot per tenant.
fn scenario_section(opts: &Options, reports: &[SeedReport]) -> report::Section {
    let mut sec = report::Section {
        title: "Scenario suite (tollgate-sim)".into(),
        notes: vec![format!(
            "{} benign events per seed, {} tenants, {} days, {} incidents per scenario; every record through the real decoder and engine. Recall counts an incident detected when an alert is attributed to it (see crates/tollgate/src/eval.rs).",
            opts.events, opts.tenants, opts.days, opts.incidents_per_scenario
        )],
        ..Default::default()
    };
    for r in reports {
        let mut rows: Vec<Vec<String>> = r
            .rows
            .iter()
            .map(|row| {
                vec![
                    row.scenario.as_str().to_string(),
                    row.injected.to_string(),
                    row.detected.to_string(),
                    format!("{:.2}", row.detected as f64 / row.injected.max(1) as f64),
                    format!("{:.1}", row.median_delay_events),
                    format!("{:.1}", row.median_delay_secs),
                ]
            })
            .collect();
        rows.push(vec![
            format!(
                "false alerts: {:.1} per 100k benign events (worst tenant {:.1}); event-level AUROC {:.4}, AUPRC {:.4}",
                r.fa_per_100k(),
                r.worst_tenant_fa_per_100k,
                r.auroc,
                r.auprc
            ),
            String::new(),
            String::new(),
            String::new(),
            String::new(),
            String::new(),
        ]);
        sec.tables.push(Table {
            caption: format!("Seed {}: {} events", r.seed, r.events),
            header: [
                "scenario",
                "injected",
                "detected",
                "recall",
                "median delay (events)",
                "median delay (s)",
            ]
            .map(String::from)
            .to_vec(),
            rows,
            highlight: vec![],
        });
    }
    if let Some(t) = reports.first().and_then(|r| r.trace.as_ref()) {
        let hours = |ms: i64| (ms - t.start_ms) as f64 / 3_600_000.0;
        for (tenant, (events, grades)) in &t.tenants {
            let x: Vec<f64> = (0..events.len())
                .map(|i| hours(t.start_ms + i as i64 * t.interval_ms))
                .collect();
            let windows: Vec<(f64, f64, String)> = t
                .incidents
                .iter()
                .filter(|i| &i.0 == tenant)
                .map(|i| {
                    (
                        hours(i.1),
                        hours(i.2.max(i.1 + t.interval_ms)),
                        i.3.to_string(),
                    )
                })
                .collect();
            let alerts: Vec<(f64, bool)> = t
                .alerts
                .iter()
                .filter(|a| &a.0 == tenant)
                .map(|a| (hours(a.1), a.2))
                .collect();
            let names: Vec<&str> = windows.iter().map(|w| w.2.as_str()).collect();
            sec.plots.push(SeriesPlot {
                title: format!("seed {} tenant {tenant}", reports[0].seed),
                caption: format!(
                    "incidents: {}; {} alerts, {} attributed to an incident",
                    if names.is_empty() {
                        "none".into()
                    } else {
                        names.join(", ")
                    },
                    alerts.len(),
                    alerts.iter().filter(|a| a.1).count()
                ),
                x_label: "hours since the first event".into(),
                signal_label: "events / interval".into(),
                score_label: "highest grade".into(),
                x,
                signal: events.iter().map(|&n| f64::from(n)).collect(),
                expected: None,
                score: grades.clone(),
                threshold: Some(opts.detect.grade_threshold),
                windows,
                warmup_until: Some(opts.detect.warmup.as_millis_i64() as f64 / 3_600_000.0),
                alerts,
            });
        }
    }
    sec
}

/// Write `DIR/<name>.html` and each plot as `DIR/plots/<name>/<title>.svg`.
pub fn write_report(dir: &Path, name: &str, sections: &[report::Section]) -> anyhow::Result<()> {
    let plots = dir.join("plots").join(name);
    std::fs::create_dir_all(&plots)
        .with_context(|| format!("cannot create {}", plots.display()))?;
    for p in sections.iter().flat_map(|s| &s.plots) {
        let file: String = p
            .title
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                    c
                } else {
                    '_'
                }
            })
            .collect();
        std::fs::write(plots.join(format!("{file}.svg")), report::series_svg(p))?;
    }
    let page = report::html(
        "Tollgate detection quality",
        &[format!(
            "Generated by tollgate {} ({}).",
            env!("CARGO_PKG_VERSION"),
            std::env::args().collect::<Vec<_>>().join(" ")
        )],
        sections,
    );
    let path = dir.join(format!("{name}.html"));
    std::fs::write(&path, page).with_context(|| format!("cannot write {}", path.display()))?;
    eprintln!("report: {}", path.display());
    Ok(())
}

/// `tollgate eval nab`.
pub struct NabOptions {
    pub data: PathBuf,
    /// Keep only series whose key contains one of these (all when empty).
    pub series: Vec<String>,
    pub results_out: Option<PathBuf>,
    pub report: Option<PathBuf>,
    pub check: bool,
}

pub fn run_nab(o: &NabOptions) -> anyhow::Result<(i32, report::Section)> {
    let started = Instant::now();
    let corpus = nab::Corpus::load(&o.data, |k| {
        o.series.is_empty() || o.series.iter().any(|s| k.contains(s.as_str()))
    })
    .with_context(|| format!("cannot read the NAB corpus in {}", o.data.display()))?;
    let runner = nab::Runner::default();
    let eval = nab::evaluate(&corpus, &runner).context("NAB scoring")?;
    let rows: usize = corpus.series.iter().map(|s| s.values.len()).sum();
    let windows: usize = corpus.series.iter().map(|s| s.layout.windows().len()).sum();
    println!(
        "NAB: {} series, {rows} rows, {windows} windows; Tollgate's volume detector, one tenant per series, rows in order ({:.1} s)",
        corpus.series.len(),
        started.elapsed().as_secs_f64()
    );
    let board = nab::scoreboard(&eval, "Tollgate (volume detector)");
    let profiles = nab::profile_table(&eval);
    print!("{}", report::text_table(&board));
    println!();
    print!("{}", report::text_table(&profiles));
    let std = eval.profiles.first().map_or(f64::NAN, |p| p.score);
    let full = corpus.series.len() == 58;
    let pass = std >= nab::BAR_STANDARD;
    println!(
        "  [{}] standard profile >= {:.0}: {std:.1}{}",
        if pass { "pass" } else { "FAIL" },
        nab::BAR_STANDARD,
        if full {
            ""
        } else {
            " (a subset: not comparable with the published scores)"
        }
    );
    if let Some(dir) = &o.results_out {
        nab::write_results(dir, &corpus, &eval)
            .with_context(|| format!("cannot write results to {}", dir.display()))?;
        eprintln!("results: {}/<category>/<file>.csv", dir.display());
    }
    let mut sec = report::Section {
        title: "NAB (Numenta Anomaly Benchmark)".into(),
        notes: vec![
            format!("{}", runner),
            "Scored with NAB's rules as described in shared/data/nab/SCOREBOARD.md: probation (15 % of a file, at most 750 rows), windows, the scaled sigmoid, one corpus-wide threshold per profile (NAB's oracle sweep), normalised between the null and the perfect detector. Plots show the standard profile's threshold and detections.".into(),
        ],
        tables: vec![board, profiles, nab::series_table(&corpus, &eval)],
        ..Default::default()
    };
    for (i, (s, r)) in corpus.series.iter().zip(&eval.runs).enumerate() {
        sec.plots.push(nab::plot(s, r, &eval, i));
    }
    if let Some(dir) = &o.report {
        write_report(dir, "nab", std::slice::from_ref(&sec))?;
    }
    Ok((if o.check && !pass { 1 } else { 0 }, sec))
}

/// `tollgate eval odds`.
pub struct OddsOptions {
    pub data: PathBuf,
    pub sets: Vec<String>,
    /// Read only the first rows of each table (smoke tests).
    pub max_rows: Option<usize>,
    pub results_out: Option<PathBuf>,
    pub report: Option<PathBuf>,
    pub check: bool,
}

pub fn run_odds(o: &OddsOptions) -> anyhow::Result<(i32, report::Section)> {
    let mut runs = Vec::new();
    for name in &o.sets {
        let started = Instant::now();
        let t = odds::Table::load(&o.data, name, o.max_rows)
            .with_context(|| format!("cannot read ODDS table {name}"))?;
        let r = odds::run(&t)?;
        println!(
            "{name}: {} rows, {} anomalies, {} columns, {} mixture fits ({} fallbacks), {:.1} s",
            r.rows,
            r.anomalies,
            t.columns,
            r.fits.0,
            r.fits.1,
            started.elapsed().as_secs_f64()
        );
        runs.push(r);
    }
    let f = |x: Option<f64>, d: usize| x.map_or("-".into(), |v| format!("{v:.d$}"));
    let mut table = Table {
        caption: "ODDS: AUROC and AUPRC, Tollgate's numeric model (streamed, score-then-learn) beside published figures".into(),
        header: ["data set", "detector", "AUROC", "AUPRC", "bar (AUROC)"]
            .map(String::from)
            .to_vec(),
        ..Default::default()
    };
    let mut pass = true;
    for r in &runs {
        table.highlight.push(table.rows.len());
        let bar = odds::bar(&r.name);
        table.rows.push(vec![
            r.name.clone(),
            "Tollgate (numeric model)".into(),
            // five places: four would print 0.99499 as 0.9950 beside "FAIL"
            format!("{:.5}", r.auroc),
            format!("{:.4}", r.auprc),
            match bar {
                Some(b) => format!("{b} {}", if r.auroc >= b { "pass" } else { "FAIL" }),
                None => "-".into(),
            },
        ]);
        if let Some(b) = bar {
            pass &= r.auroc >= b;
        }
        for p in odds::published(&r.name) {
            table.rows.push(vec![
                r.name.clone(),
                p.who.into(),
                f(p.auroc, 4),
                f(p.auprc, 4),
                String::new(),
            ]);
        }
    }
    print!("{}", report::text_table(&table));
    if o.max_rows.is_some() {
        println!(
            "  (first {} rows only: not comparable with the published figures)",
            o.max_rows.unwrap_or(0)
        );
    }
    if let Some(dir) = &o.results_out {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
        for r in &runs {
            let path = dir.join(format!("{}.csv", r.name));
            let mut w = std::io::BufWriter::new(
                std::fs::File::create(&path)
                    .with_context(|| format!("cannot write {}", path.display()))?,
            );
            writeln!(w, "score,label")?;
            for (s, l) in r.scores.iter().zip(&r.labels) {
                writeln!(w, "{s},{}", u8::from(*l))?;
            }
            w.flush()?;
        }
        eprintln!("results: {}/<data set>.csv", dir.display());
    }
    let mut sec = report::Section {
        title: "ODDS (http, smtp, shuttle)".into(),
        notes: vec![odds::DESCRIPTION.into()],
        tables: vec![table],
        ..Default::default()
    };
    for r in &runs {
        let pairs: Vec<(f64, bool)> = r
            .scores
            .iter()
            .copied()
            .zip(r.labels.iter().copied())
            .collect();
        sec.figures.push((
            format!("{}: ROC curve (AUROC {:.4})", r.name, r.auroc),
            report::curve_svg(
                &r.name,
                "false-positive rate",
                "true-positive rate",
                &[(r.name.clone(), tollgate_eval::metrics::roc_curve(&pairs))],
            ),
        ));
        sec.plots.push(odds::plot(r));
    }
    if let Some(dir) = &o.report {
        write_report(dir, "odds", std::slice::from_ref(&sec))?;
    }
    Ok((if o.check && !pass { 1 } else { 0 }, sec))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The scenario suite at CI size (150k events, 6 tenants, seed 1)
    /// meets every bar of the issue, as `--check` judges them: recall
    /// ≥ 0.95 for each scenario, the categorical ones within their first 5
    /// malicious events, ≤ 1 false alert per 100k benign events in the
    /// worst tenant (measured 2026-11-28: every recall 1.00, no false
    /// alert, AUROC 0.7768).
    #[test]
    fn scenario_suite_meets_its_bars_at_ci_size() {
        let opts = Options {
            seeds: vec![1],
            events: 150_000,
            tenants: 6,
            days: 7,
            incidents_per_scenario: 4,
            detect: DetectConfig::default(),
            check: false,
            explain: false,
            report: None,
        };
        let r = run_seed(&opts, 1).unwrap();
        let bars = r.bars();
        assert_eq!(bars.len(), 14, "{bars:?}");
        let missed: Vec<&String> = bars.iter().filter(|b| !b.1).map(|b| &b.0).collect();
        assert!(
            missed.is_empty(),
            "bars missed: {missed:?}; late: {:?}; missed incidents: {:?}",
            r.late,
            r.missed
        );
        assert!(r.auroc >= 0.75, "AUROC {}", r.auroc);
    }
}
