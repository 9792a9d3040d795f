//! `tollgate demo`: Tollgate's main job on an embedded Kafka. Starts
//! librdkafka's in-process mock cluster, produces the simulator's labelled
//! multi-tenant traffic to a partitioned topic (key = tenant) from a producer
//! thread, and runs the real service (`tollgate_service::run`: the Kafka
//! input, the tenant-sharded workers, the alert and dead-letter writers and
//! the admin endpoint) against it, printing each alert as it fires. It stops
//! by itself — a graceful shutdown, as on SIGTERM — once every produced
//! record was consumed (unless `--keep-running`), and prints a scorecard:
//! records, events, rejections, alerts by detector, and incidents injected
//! vs detected.
//!
//! The incident labels never reach the service: the producer notes the ids
//! of malicious records, and the scorecard attributes an alert to an
//! incident by its triggering event's id, as the scenario suite does (see
//! `eval.rs`); a volume alert (no triggering event) counts for an incident
//! of its tenant when it falls within the incident's window plus two volume
//! intervals.

use std::collections::{BTreeMap, HashMap};
use std::io::{IsTerminal, Write};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context;
use tollgate_detect::{AlertUpdate, DetectConfig};
use tollgate_events::{DecodeConfig, Format, TenantRule};
use tollgate_kafka::rdkafka::consumer::{BaseConsumer, Consumer};
use tollgate_kafka::rdkafka::mocking::MockCluster;
use tollgate_kafka::rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use tollgate_kafka::rdkafka::{ClientConfig, Offset, TopicPartitionList};
use tollgate_service::config::{
    AdminConfig, AlertOutputConfig, DeadLetterConfig, InputConfig, KafkaSection, PipelineConfig,
    SourceKind,
};
use tollgate_service::{Hooks, Metrics, ServiceConfig};
use tollgate_sim::{Incident, SimConfig, SimConfigError, Simulation};

pub struct Options {
    pub events: u64,
    pub seed: u64,
    pub tenants: usize,
    pub days: u64,
    pub partitions: i32,
    /// Keep consuming after the generated traffic, until Ctrl-C.
    pub keep_running: bool,
    /// The admin endpoint (metrics, health).
    pub admin_addr: std::net::SocketAddr,
}

const TOPIC: &str = "tollgate-records";
const GROUP: &str = "tollgate-demo";
const INPUT: &str = "demo";
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

/// Produces every simulated record (key = tenant), noting the ids of
/// malicious ones in `labels` before they are sent; `produced` counts
/// records handed to librdkafka, `done` is set after the final flush.
fn produce(
    bootstrap: String,
    sim: Simulation,
    labels: Arc<Mutex<HashMap<String, u32>>>,
    produced: Arc<AtomicU64>,
    consumed: impl Fn() -> u64,
    done: Arc<AtomicBool>,
) -> anyhow::Result<()> {
    let producer: BaseProducer = ClientConfig::new()
        .set("bootstrap.servers", &bootstrap)
        .set("linger.ms", "5")
        .create()
        .context("creating the producer")?;
    for rec in sim {
        if let Some(i) = rec.incident {
            labels
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .insert(rec.id.to_string(), i);
        }
        let mut r = BaseRecord::to(TOPIC)
            .key(rec.tenant.as_str())
            .payload(&rec.line);
        // Flow control: the mock cluster keeps only the newest 5 MB of each
        // partition (librdkafka's mock log limit) and drops older records, so
        // the producer stays at most MAX_LAG records ahead of the consumer.
        while produced.load(Ordering::Relaxed) > consumed() + MAX_LAG {
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

/// What the alert observer tallies for the scorecard.
struct Score {
    incidents: Vec<Incident>,
    labels: Arc<Mutex<HashMap<String, u32>>>,
    interval_ms: i64,
    /// Per incident: (first attributed alert's detector, its delay after
    /// the incident's start in event time).
    detected: Vec<Option<(&'static str, chrono::Duration)>>,
    fired: BTreeMap<&'static str, u64>,
    resolved: u64,
    false_alerts: u64,
}

impl Score {
    fn observe(&mut self, u: &AlertUpdate) {
        let a = match u {
            AlertUpdate::Fired(a) => a,
            AlertUpdate::Resolved { .. } => {
                self.resolved += 1;
                return;
            }
        };
        *self.fired.entry(a.detector.as_str()).or_default() += 1;
        let current = a.event_id.as_ref().and_then(|id| {
            self.labels
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .get(id)
                .copied()
        });
        let hit = crate::eval::incident_of(a, current, &self.incidents, self.interval_ms);
        match hit {
            Some(i) => {
                let inc = &self.incidents[i];
                self.detected[i].get_or_insert((a.detector.as_str(), a.ts - inc.start));
            }
            None => self.false_alerts += 1,
        }
        let label = hit.map_or(String::new(), |i| format!("  <- {}", self.incidents[i].id));
        // A closed stdout (`| head`) must not stop the pipeline.
        let _ = writeln!(
            std::io::stdout().lock(),
            "{}  {:<10} {:<9} {:<8} {}{label}",
            a.ts.format("%Y-%m-%d %H:%M:%S"),
            a.tenant.as_str(),
            a.detector.as_str(),
            a.severity.as_str(),
            a.summary,
        );
    }
}

pub fn run(opts: Options) -> anyhow::Result<i32> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
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

    let detect = DetectConfig::default();
    let interval_ms = detect
        .clone()
        .check()
        .map_err(|e| anyhow::anyhow!("invalid detect configuration: {e}"))?
        .config()
        .volume_interval
        .as_millis_i64();
    let dead_path = std::env::temp_dir().join(format!(
        "tollgate-demo-{}-dead-letters.ndjson",
        std::process::id()
    ));
    let mut properties = BTreeMap::new();
    for (k, v) in [
        ("session.timeout.ms", "6000"),
        ("heartbeat.interval.ms", "1000"),
        // The mock broker answers a fetch that finds no new data only after
        // the full wait, without waking on a produce: with librdkafka's
        // 500 ms default the consumer idles each time it catches up.
        ("fetch.wait.max.ms", "10"),
    ] {
        properties.insert(k.to_owned(), v.to_owned());
    }
    let cfg = ServiceConfig {
        service: PipelineConfig::default(),
        admission: Default::default(),
        dead_letter: DeadLetterConfig {
            path: Some(dead_path.clone()),
            ..DeadLetterConfig::default()
        },
        // Alerts are printed by the scorecard's observer instead.
        alerts: AlertOutputConfig {
            path: None,
            ..AlertOutputConfig::default()
        },
        admin: AdminConfig {
            addr: Some(opts.admin_addr),
            ..AdminConfig::default()
        },
        metrics: Default::default(),
        detect,
        inputs: vec![InputConfig {
            name: INPUT.to_owned(),
            source: SourceKind::Kafka,
            decode: DecodeConfig::new(Format::Auto, TenantRule::KafkaKey {}),
            kafka: Some(KafkaSection {
                bootstrap_servers: bootstrap.clone(),
                topics: vec![TOPIC.to_owned()],
                group_id: GROUP.to_owned(),
                queued_max_messages_kbytes: 16 * 1024,
                properties,
            }),
            kinesis: None,
            file: None,
        }],
    };

    let metrics = Metrics::new();
    let records = metrics.records.with_label_values(&[INPUT]);
    let produced = Arc::new(AtomicU64::new(0));
    let done = Arc::new(AtomicBool::new(false));
    let labels = Arc::new(Mutex::new(HashMap::new()));
    let score = Arc::new(Mutex::new(Score {
        detected: vec![None; incidents.len()],
        incidents,
        labels: labels.clone(),
        interval_ms,
        fired: BTreeMap::new(),
        resolved: 0,
        false_alerts: 0,
    }));
    let producer = {
        let (b, p, d, l) = (bootstrap.clone(), produced.clone(), done.clone(), labels);
        let records = records.clone();
        std::thread::spawn(move || produce(b, sim, l, p, move || records.get(), d))
    };
    let (bound_tx, bound_rx) = tokio::sync::oneshot::channel();
    let keep_running = opts.keep_running;
    let all_consumed = {
        let (records, produced, done) = (records.clone(), produced.clone(), done.clone());
        let bootstrap = bootstrap.clone();
        let progress = std::io::stderr().is_terminal();
        async move {
            if let Ok(addr) = bound_rx.await {
                println!("metrics and health: http://{addr}/metrics  http://{addr}/readyz");
                println!(
                    "tenants and alerts: http://{addr}/api/v1/tenants  http://{addr}/api/v1/alerts"
                );
            }
            println!("alerts as they fire (event time, tenant, detector, severity, summary):");
            if keep_running {
                eprintln!("--keep-running: consuming until Ctrl-C; produce more records keyed by tenant to {bootstrap} topic {TOPIC}");
                let _ = tokio::signal::ctrl_c().await;
                return;
            }
            let mut ticks = 0u64;
            loop {
                if done.load(Ordering::Acquire) && records.get() >= produced.load(Ordering::Relaxed)
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
                        records.get()
                    );
                }
            }
        }
    };
    let observer = {
        let score = score.clone();
        Box::new(move |u: &AlertUpdate| score.lock().unwrap_or_else(|e| e.into_inner()).observe(u))
    };
    let report = tollgate_service::run(
        cfg,
        all_consumed,
        Hooks {
            observer: Some(observer),
            admin_bound: Some(bound_tx),
            metrics: Some(metrics.clone()),
        },
    )
    .await
    .context("the service")?;
    producer
        .join()
        .map_err(|_| anyhow::anyhow!("the producer thread panicked"))??;
    let secs = started.elapsed().as_secs_f64();

    // The committed offsets, as the group coordinator has them.
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", &bootstrap)
        .set("group.id", GROUP)
        .create()
        .context("creating the offset observer")?;
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

    let score = score.lock().unwrap_or_else(|e| e.into_inner());
    let fired: u64 = score.fired.values().sum();
    let detected = score.detected.iter().filter(|d| d.is_some()).count();
    let rejected: u64 = metrics
        .registry
        .gather()
        .iter()
        .filter(|f| f.name() == "tollgate_decode_rejections_total")
        .flat_map(|f| f.get_metric())
        .map(|m| m.get_counter().get_value() as u64)
        .sum();
    let events = report.events_scored();
    println!();
    println!("scorecard ({secs:.1} s)");
    println!(
        "  records   produced {}  consumed {}  end offsets {}  committed = end offsets: {}",
        produced.load(Ordering::Relaxed),
        records.get(),
        end_total,
        if all_committed { "yes" } else { "NO" },
    );
    println!(
        "  events    scored {events} ({:.0}/s end to end, {} workers)  rejections {rejected}{}",
        events as f64 / secs.max(1e-9),
        report.workers.len(),
        if rejected > 0 {
            format!(" (dead letters in {})", dead_path.display())
        } else {
            String::new()
        }
    );
    let per: Vec<String> = score
        .fired
        .iter()
        .map(|(k, v)| format!("{k} {v}"))
        .collect();
    println!(
        "  alerts    fired {fired} ({})  resolved {}  not attributed to an incident {}",
        if per.is_empty() {
            "none".to_owned()
        } else {
            per.join(", ")
        },
        score.resolved,
        score.false_alerts
    );
    println!(
        "  incidents injected {}  detected {detected}",
        score.incidents.len()
    );
    for (inc, d) in score.incidents.iter().zip(&score.detected) {
        let verdict = match d {
            Some((det, delay)) => format!("detected by {det} {} after it began", humanize(*delay)),
            None => format!("missed ({} malicious records)", inc.malicious_records),
        };
        println!("    {:<34} {:<10} {verdict}", inc.id, inc.tenant.as_str());
    }
    if rejected == 0 {
        let _ = std::fs::remove_file(&dead_path);
    }
    Ok(0)
}

fn humanize(d: chrono::Duration) -> String {
    let s = d.num_seconds().max(0);
    if s < 120 {
        format!("{s} s")
    } else if s < 7200 {
        format!("{} min", s / 60)
    } else {
        format!("{:.1} h", s as f64 / 3600.0)
    }
}
