//! `tollgate demo`: Tollgate's main job on an embedded Kafka. Starts
//! librdkafka's in-process mock cluster, produces the simulator's labelled
//! multi-tenant traffic to a partitioned topic (key = tenant) from a producer
//! thread, and runs the real Kafka input (`tollgate-kafka`) through decode →
//! detect, printing each alert as it fires. It stops by itself once every
//! produced record was consumed (unless `--keep-running`) and prints a
//! scorecard: records, events, rejections, alerts by detector, and incidents
//! injected vs detected.
//!
//! The incident labels travel out of band, in a `tollgate-demo-incident`
//! header the decoder and engine never read; only the scorecard does.
//! Attribution is the scenario suite's (see `eval.rs`): an alert counts for an
//! incident when its triggering event is one of the incident's records, or —
//! for volume alerts, which have no event — when it is for the incident's
//! tenant within the incident's window plus two volume intervals.
//!
//! Not here: metrics and the admin endpoint, alert sinks, model persistence
//! (models live in memory for the run), a real broker.

use std::collections::BTreeMap;
use std::io::{IsTerminal, Write};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use chrono::{DateTime, Utc};
use tollgate_detect::{AlertUpdate, DetectConfig, Engine, MemStore};
use tollgate_events::{DecodeConfig, Decoded, Decoder, Format, Tally, TenantRule};
use tollgate_kafka::rdkafka::consumer::Consumer;
use tollgate_kafka::rdkafka::message::{Header, OwnedHeaders};
use tollgate_kafka::rdkafka::mocking::MockCluster;
use tollgate_kafka::rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use tollgate_kafka::rdkafka::{ClientConfig, Offset, TopicPartitionList};
use tollgate_kafka::{Flow, KafkaInputConfig};
use tollgate_sim::{Incident, SimConfig, SimConfigError, Simulation};

pub struct Options {
    pub events: u64,
    pub seed: u64,
    pub tenants: usize,
    pub days: u64,
    pub partitions: i32,
    /// Keep consuming after the generated traffic, until Ctrl-C.
    pub keep_running: bool,
}

const TOPIC: &str = "tollgate-records";
const GROUP: &str = "tollgate-demo";
const INCIDENT_HEADER: &str = "tollgate-demo-incident";
/// Records the producer may be ahead of the consumer (≈ 2 MB of simulated
/// records, well under the mock cluster's 5 MB per partition).
const MAX_LAG: u64 = 2_000;

/// The scenario suite's labelled traffic, without scenarios whose incidents
/// do not fit the post-warm-up window (named in the returned list).
fn simulation(opts: &Options) -> anyhow::Result<(Simulation, Vec<String>)> {
    let mut cfg = SimConfig {
        seed: opts.seed,
        tenants: opts.tenants,
        events: opts.events,
        duration: Duration::from_secs(opts.days * 86_400),
        incidents_per_scenario: 1,
        ..SimConfig::default()
    };
    let mut dropped = Vec::new();
    for p in cfg.problems() {
        if let SimConfigError::WindowTooShort { scenario, .. } = p {
            cfg.scenarios.retain(|s| *s != scenario);
            dropped.push(scenario.as_str().to_owned());
        }
    }
    let sim = Simulation::new(cfg).map_err(|e| anyhow::anyhow!("simulation: {e}"))?;
    Ok((sim, dropped))
}

/// Produces every simulated record (key = tenant, incident index as a
/// header); `produced` counts delivered-to-librdkafka records, `done` is set
/// after the final flush.
fn produce(
    bootstrap: String,
    sim: Simulation,
    produced: Arc<AtomicU64>,
    consumed: Arc<AtomicU64>,
    done: Arc<AtomicBool>,
) -> anyhow::Result<()> {
    let producer: BaseProducer = ClientConfig::new()
        .set("bootstrap.servers", &bootstrap)
        .set("linger.ms", "5")
        .create()
        .context("creating the producer")?;
    let mut idx = itoa::Buffer::new();
    for rec in sim {
        let mut r = BaseRecord::to(TOPIC)
            .key(rec.tenant.as_str())
            .payload(&rec.line);
        if let Some(i) = rec.incident {
            r = r.headers(OwnedHeaders::new().insert(Header {
                key: INCIDENT_HEADER,
                value: Some(idx.format(i)),
            }));
        }
        // Flow control: the mock cluster keeps only the newest 5 MB of each
        // partition (librdkafka's mock log limit) and drops older records, so
        // the producer stays at most MAX_LAG records ahead of the consumer.
        while produced.load(Ordering::Relaxed) > consumed.load(Ordering::Relaxed) + MAX_LAG {
            producer.poll(Duration::from_millis(1));
        }
        loop {
            match producer.send(r) {
                Ok(()) => break,
                Err((e, back)) => {
                    if e.rdkafka_error_code()
                        != Some(tollgate_kafka::rdkafka::types::RDKafkaErrorCode::QueueFull)
                    {
                        return Err(e).context("producing a record");
                    }
                    producer.poll(Duration::from_millis(5));
                    r = back;
                }
            }
        }
        if produced
            .fetch_add(1, Ordering::Relaxed)
            .is_multiple_of(1024)
        {
            producer.poll(Duration::ZERO);
        }
    }
    producer
        .flush(Duration::from_secs(60))
        .context("flushing the producer")?;
    done.store(true, Ordering::Release);
    Ok(())
}

#[derive(Default, Clone)]
struct IncidentResult {
    /// Malicious events seen before the first attributed alert (or in all).
    seen: u64,
    /// Malicious events seen when the first alert came.
    detected_after: Option<u64>,
}

/// Everything the handler counts, for the scorecard.
struct Pipeline {
    dec: Decoder,
    engine: Engine,
    incidents: Vec<Incident>,
    results: Vec<IncidentResult>,
    interval_ms: i64,
    tally: Tally,
    events: u64,
    records: Arc<AtomicU64>,
    fired: BTreeMap<&'static str, u64>,
    resolved: u64,
    false_alerts: u64,
    last_ts: Option<DateTime<Utc>>,
    items: Vec<Decoded>,
    updates: Vec<AlertUpdate>,
}

impl Pipeline {
    /// One record: decode, score every event, print and attribute its alerts.
    /// Returns only when all of it is done (the input then stores its offset).
    fn record(&mut self, bytes: &[u8], meta: &tollgate_events::RecordMeta<'_>) {
        let incident: Option<u32> = meta
            .headers
            .iter()
            .find(|(k, _)| *k == INCIDENT_HEADER)
            .and_then(|(_, v)| std::str::from_utf8(v).ok()?.parse().ok());
        self.dec.decode(bytes, meta, &mut self.items);
        let mut items = std::mem::take(&mut self.items);
        for d in items.drain(..) {
            self.tally.add(&d);
            let Decoded::Event(ev) = d else { continue };
            self.events += 1;
            self.engine.process(&ev, &mut self.updates);
            if let Some(i) = incident {
                self.results[i as usize].seen += 1;
            }
            self.last_ts = Some(self.last_ts.map_or(ev.ts, |t| t.max(ev.ts)));
            self.alerts(incident);
        }
        self.items = items;
        self.records.fetch_add(1, Ordering::Relaxed);
    }

    fn alerts(&mut self, current: Option<u32>) {
        if self.updates.is_empty() {
            return;
        }
        let mut out = std::io::stdout().lock();
        for u in self.updates.drain(..) {
            let a = match u {
                AlertUpdate::Fired(a) => a,
                AlertUpdate::Resolved { .. } => {
                    self.resolved += 1;
                    continue;
                }
            };
            *self.fired.entry(a.detector.as_str()).or_default() += 1;
            let hit = crate::eval::incident_of(&a, current, &self.incidents, self.interval_ms);
            match hit {
                Some(i) => {
                    let r = &mut self.results[i];
                    r.detected_after.get_or_insert(r.seen);
                }
                None => self.false_alerts += 1,
            }
            let label = hit.map_or(String::new(), |i| format!("  <- {}", self.incidents[i].id));
            // A closed stdout (`| head`) must not stop the pipeline.
            let _ = writeln!(
                out,
                "{}  {:<10} {:<9} {:<8} {}{label}",
                a.ts.format("%Y-%m-%d %H:%M:%S"),
                a.tenant.as_str(),
                a.detector.as_str(),
                format!("{:?}", a.severity).to_lowercase(),
                a.summary,
            );
        }
    }
}

pub fn run(opts: Options) -> anyhow::Result<i32> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .context("starting the runtime")?;
    rt.block_on(run_async(opts))
}

async fn run_async(opts: Options) -> anyhow::Result<i32> {
    let started = Instant::now();
    let (sim, dropped) = simulation(&opts)?;
    let incidents = sim.incidents().to_vec();
    let cluster = MockCluster::new(1).context("starting the mock Kafka cluster")?;
    cluster
        .create_topic(TOPIC, opts.partitions, 1)
        .context("creating the topic")?;
    let bootstrap = cluster.bootstrap_servers();
    println!(
        "tollgate demo: mock Kafka at {bootstrap}, topic {TOPIC} ({} partitions, key = tenant); \
         {} events, {} tenants, {} days, seed {}; {} incidents injected{}",
        opts.partitions,
        opts.events,
        opts.tenants,
        opts.days,
        opts.seed,
        incidents.len(),
        if dropped.is_empty() {
            String::new()
        } else {
            format!(" ({} left out: window too short)", dropped.join(", "))
        }
    );
    println!("alerts as they fire (event time, tenant, detector, severity, summary):");

    let produced = Arc::new(AtomicU64::new(0));
    let done = Arc::new(AtomicBool::new(false));

    let cfg = DetectConfig::default()
        .check()
        .map_err(|e| anyhow::anyhow!("invalid detect configuration: {e}"))?;
    let interval_ms = cfg.config().volume_interval.as_millis_i64();
    let records = Arc::new(AtomicU64::new(0));
    let mut pipe = Pipeline {
        dec: Decoder::new(&DecodeConfig::new(Format::Auto, TenantRule::KafkaKey {}))
            .map_err(|e| anyhow::anyhow!("{e}"))?,
        engine: Engine::new(cfg, Box::new(MemStore::new())),
        results: vec![IncidentResult::default(); incidents.len()],
        incidents,
        interval_ms,
        tally: Tally::default(),
        events: 0,
        records: records.clone(),
        fired: BTreeMap::new(),
        resolved: 0,
        false_alerts: 0,
        last_ts: None,
        items: Vec::new(),
        updates: Vec::new(),
    };

    let producer = {
        let (b, p, c, d) = (
            bootstrap.clone(),
            produced.clone(),
            records.clone(),
            done.clone(),
        );
        std::thread::spawn(move || produce(b, sim, p, c, d))
    };
    let mut kcfg = KafkaInputConfig::new(&bootstrap, &[TOPIC], GROUP);
    kcfg.properties
        .insert("session.timeout.ms".into(), "6000".into());
    kcfg.properties
        .insert("heartbeat.interval.ms".into(), "1000".into());
    // The mock broker answers a fetch that finds no new data only after the
    // full wait, without waking on a produce: with librdkafka's 500 ms
    // default the consumer idles each time it catches up with the producer.
    kcfg.properties
        .insert("fetch.wait.max.ms".into(), "10".into());
    let mut input = kcfg.build().context("starting the Kafka input")?;
    let keep_running = opts.keep_running;
    let all_consumed = {
        let (records, produced, done) = (records.clone(), produced.clone(), done.clone());
        let progress = std::io::stderr().is_terminal();
        async move {
            let mut ticks = 0u64;
            if keep_running {
                let _ = tokio::signal::ctrl_c().await;
                return;
            }
            loop {
                if done.load(Ordering::Acquire)
                    && records.load(Ordering::Relaxed) >= produced.load(Ordering::Relaxed)
                {
                    if progress {
                        eprintln!();
                    }
                    return;
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
                ticks += 1;
                if progress && ticks.is_multiple_of(50) {
                    eprint!(
                        "\r{} records produced, {} consumed   ",
                        produced.load(Ordering::Relaxed),
                        records.load(Ordering::Relaxed)
                    );
                }
            }
        }
    };
    if keep_running {
        eprintln!("--keep-running: consuming until Ctrl-C; produce more records keyed by tenant to {bootstrap} topic {TOPIC}");
    }
    input
        .run(all_consumed, |bytes, meta| {
            pipe.record(bytes, meta);
            Flow::Continue
        })
        .await
        .context("Kafka input")?;
    producer
        .join()
        .map_err(|_| anyhow::anyhow!("the producer thread panicked"))??;

    // End of input: let every open episode and volume interval close.
    if let Some(t) = pipe.last_ts {
        pipe.engine
            .advance(t + chrono::Duration::days(1), &mut pipe.updates);
        pipe.alerts(None);
    }
    let secs = started.elapsed().as_secs_f64();

    // The committed offsets, as the group coordinator has them.
    let consumer = input.consumer();
    let mut tpl = TopicPartitionList::new();
    for p in 0..opts.partitions {
        tpl.add_partition(TOPIC, p);
    }
    let committed = consumer
        .committed_offsets(tpl, Duration::from_secs(10))
        .context("reading committed offsets")?;
    let mut end_total = 0i64;
    let mut all_committed = true;
    for p in 0..opts.partitions {
        let (_, high) = consumer
            .fetch_watermarks(TOPIC, p, Duration::from_secs(10))
            .context("reading end offsets")?;
        end_total += high;
        let c = committed
            .find_partition(TOPIC, p)
            .map(|e| e.offset())
            .unwrap_or(Offset::Invalid);
        all_committed &= c == Offset::Offset(high) || (high == 0 && c == Offset::Invalid);
    }

    let fired: u64 = pipe.fired.values().sum();
    let detected = pipe
        .results
        .iter()
        .filter(|r| r.detected_after.is_some())
        .count();
    let counters = input.counters();
    println!();
    println!("scorecard ({secs:.1} s)");
    println!(
        "  records   produced {}  consumed {}  end offsets {}  committed = end offsets: {}  (rebalances {}, commit errors {})",
        produced.load(Ordering::Relaxed),
        records.load(Ordering::Relaxed),
        end_total,
        if all_committed { "yes" } else { "NO" },
        counters.assignments.load(Ordering::Relaxed),
        counters.commit_errors.load(Ordering::Relaxed),
    );
    println!(
        "  events    scored {} ({:.0}/s end to end)  rejections {}  skipped {}",
        pipe.events,
        pipe.events as f64 / secs.max(1e-9),
        pipe.tally.rejected_total(),
        pipe.tally.skipped_total(),
    );
    let per: Vec<String> = pipe.fired.iter().map(|(k, v)| format!("{k} {v}")).collect();
    println!(
        "  alerts    fired {fired} ({})  resolved {}  not attributed to an incident {}",
        if per.is_empty() {
            "none".to_owned()
        } else {
            per.join(", ")
        },
        pipe.resolved,
        pipe.false_alerts
    );
    println!(
        "  incidents injected {}  detected {detected}",
        pipe.incidents.len()
    );
    for (inc, r) in pipe.incidents.iter().zip(&pipe.results) {
        let verdict = match r.detected_after {
            Some(n) => format!("detected after {n} malicious event(s)"),
            None => format!("missed ({} malicious events)", r.seen),
        };
        println!("    {:<34} {:<10} {verdict}", inc.id, inc.tenant.as_str());
    }
    Ok(0)
}
