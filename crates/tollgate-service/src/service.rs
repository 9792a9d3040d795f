//! `tollgate run`: the whole service from a checked [`ServiceConfig`].
//!
//! Start-up: metrics, the pipeline (workers, alert and dead-letter
//! writers), the admin endpoint, then every input. Shutdown (the given
//! future resolves — SIGTERM/SIGINT in the binary — or every input ended by
//! itself): inputs stop fetching and wait for their records in flight,
//! commit offsets; then the workers drain their queues and snapshot every
//! model, the writers flush; all within `service.shutdown_deadline`.

use std::collections::HashSet;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use tollgate_events::Decoder;
use tollgate_kafka::KafkaMonitor;

use crate::admin::{self, Readiness};
use crate::api::AuditLog;
use crate::config::{ServiceConfig, SourceKind};
use crate::file_input;
use crate::lanes::DecodeLanes;
use crate::metrics::Metrics;
use crate::pipeline::{AlertObserver, PartitionTenants, Pipeline, WorkerReport};

/// Optional hooks for embedding the service (the demo, tests).
#[derive(Default)]
pub struct Hooks {
    /// Sees every alert update as it is written.
    pub observer: Option<AlertObserver>,
    /// Told the admin endpoint's bound address once it listens.
    pub admin_bound: Option<tokio::sync::oneshot::Sender<SocketAddr>>,
    /// Shared with the caller to read metrics while running.
    pub metrics: Option<Metrics>,
}

/// What a run did.
#[derive(Debug, Default)]
pub struct RunReport {
    pub workers: Vec<WorkerReport>,
    /// Records read per input.
    pub records: Vec<(String, u64)>,
    /// The admin endpoint's address, if it ran.
    pub admin_addr: Option<SocketAddr>,
}

impl RunReport {
    pub fn events_scored(&self) -> u64 {
        self.workers.iter().map(|w| w.stats.events).sum()
    }
}

/// Makes a panic anywhere abort the process instead of unwinding: an
/// unwinding worker would drop the `Ack`s it holds and so acknowledge
/// records it never finished. The supervisor restarts the process; the
/// records are re-read from the last checkpoint.
pub fn abort_on_panic() {
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        default(info);
        eprintln!("tollgate: aborting after a panic (records in flight will be re-read)");
        std::process::abort();
    }));
}

/// Runs the service until `shutdown` resolves or every input has ended.
pub async fn run(
    cfg: ServiceConfig,
    shutdown: impl std::future::Future<Output = ()> + Send,
    hooks: Hooks,
) -> anyhow::Result<RunReport> {
    let detect = cfg
        .detect
        .clone()
        .check()
        .map_err(|e| anyhow::anyhow!("detect: {e}"))?;
    let metrics = hooks.metrics.unwrap_or_default();
    metrics
        .tenant_labels
        .configure(&cfg.metrics.tenants, cfg.metrics.top_tenants);
    let token = cfg.admin.bearer()?;
    let audit = match cfg.audit_log() {
        Some(p) => Some(Arc::new(AuditLog::open(&p)?)),
        None => None,
    };
    let pipeline = Pipeline::start(&cfg, detect, metrics.clone(), hooks.observer)?;
    let ready = Arc::new(Readiness::default());
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let deadline = cfg.service.shutdown_deadline.0;

    let mut admin_task = None;
    let mut admin_addr = None;
    if let Some(addr) = cfg.admin.addr {
        let mut rx = stop_rx.clone();
        let state = admin::AdminState {
            metrics: metrics.clone(),
            ready: ready.clone(),
            book: pipeline.alert_book(),
            controls: pipeline.controls(),
            audit: audit.clone(),
            token: token.map(Arc::from),
        };
        let (bound, task) = admin::serve(addr, state, async move {
            let _ = rx.wait_for(|s| *s).await;
        })
        .await?;
        admin_addr = Some(bound);
        admin_task = Some(task);
        if let Some(tx) = hooks.admin_bound {
            let _ = tx.send(bound);
        }
    }

    let file_stop = Arc::new(AtomicBool::new(false));
    let mut tasks: Vec<tokio::task::JoinHandle<anyhow::Result<(String, u64)>>> = Vec::new();
    let mut monitors: Vec<(String, KafkaMonitor)> = Vec::new();
    let mut kinesis_monitors: Vec<(String, Arc<tollgate_kinesis::InputMetrics>)> = Vec::new();
    for input in &cfg.inputs {
        let dec = Decoder::new(&input.decode)
            .map_err(|e| anyhow::anyhow!("input {:?}: {e}", input.name))?;
        let name = input.name.clone();
        let flag = ready.input(&name);
        match input.source {
            SourceKind::Kafka => {
                let k = input.kafka.as_ref().expect("checked: kafka section");
                let tracker: Arc<PartitionTenants> = Default::default();
                let hook = {
                    let tracker = tracker.clone();
                    let release = pipeline.releaser();
                    Box::new(move |parts: &[(String, i32)], lost: bool| {
                        release(tracker.take(parts), !lost);
                    })
                };
                let mut kcfg = k.input_config(deadline);
                kcfg.end_to_end = Some(metrics.kafka_end_to_end.with_label_values(&[&name]));
                kcfg.read_headers = input.decode.tenant.reads_headers();
                let mut kin = kcfg
                    .build(hook)
                    .with_context(|| format!("input {name:?}"))?;
                monitors.push((name.clone(), kin.monitor()));
                let proto = pipeline.router(&name, dec, Some(tracker));
                let mut router =
                    DecodeLanes::start(&name, cfg.service.decode_thread_count(), &metrics, || {
                        proto.fresh()
                    })?;
                drop(proto);
                let mut rx = stop_rx.clone();
                let monitor = kin.monitor();
                tasks.push(tokio::spawn(async move {
                    // Ready once the group gave this member its partitions.
                    let readiness = async {
                        while monitor.counters().assignments.load(Ordering::Relaxed) == 0 {
                            tokio::time::sleep(Duration::from_millis(100)).await;
                        }
                        flag.store(true, Ordering::Relaxed);
                        std::future::pending::<()>().await
                    };
                    let stop = async move {
                        let _ = rx.wait_for(|s| *s).await;
                    };
                    tokio::select! {
                        r = kin.run(&name, stop, deadline, &mut router) => {
                            r.with_context(|| format!("input {name:?}"))?;
                        }
                        () = readiness => unreachable!("readiness never completes"),
                    }
                    let n = kin.counters().records.load(Ordering::Relaxed);
                    Ok((name, n))
                }));
            }
            SourceKind::File | SourceKind::Stdin => {
                let (paths, follow, poll) = match &input.file {
                    Some(f) => (f.paths.clone(), f.follow, f.poll_interval.0),
                    None => (vec!["-".into()], false, Duration::from_millis(200)),
                };
                let limit = input.decode.limits.max_record_bytes;
                let mut router = pipeline.router(&name, dec, None);
                let stop = file_stop.clone();
                tasks.push(tokio::task::spawn_blocking(move || {
                    flag.store(true, Ordering::Relaxed);
                    let n = file_input::run(&name, &paths, follow, poll, limit, &mut router, &stop)
                        .with_context(|| format!("input {name:?}"))?;
                    Ok((name, n))
                }));
            }
            SourceKind::Kinesis => {
                let k = input.kinesis.as_ref().expect("checked: kinesis section");
                let kin = k
                    .build(&name)
                    .await
                    .with_context(|| format!("input {name:?}"))?;
                kinesis_monitors.push((name.clone(), kin.metrics()));
                let mut make = pipeline.router_factory(&name, dec);
                let mut rx = stop_rx.clone();
                flag.store(true, Ordering::Relaxed);
                tasks.push(tokio::spawn(async move {
                    let stop = async move {
                        let _ = rx.wait_for(|s| *s).await;
                    };
                    let stats = kin
                        .run(stop, move |_shard| make())
                        .await
                        .with_context(|| format!("input {name:?}"))?;
                    Ok((name, stats.records))
                }));
            }
        }
    }

    // Kafka lag and rebalances, Kinesis shard positions into the metrics,
    // every few seconds. A partition that was revoked loses its lag series
    // (another instance reports it now).
    let lag_task = {
        let m = metrics.clone();
        let publish_sinks = pipeline.sink_publisher();
        let mut rx = stop_rx.clone();
        tokio::spawn(async move {
            let mut shown: HashSet<[String; 3]> = HashSet::new();
            loop {
                publish_sinks();
                let mut now_shown = HashSet::new();
                for (name, mon) in &monitors {
                    for ((topic, p), lag) in mon.lag() {
                        let labels = [name.clone(), topic, p.to_string()];
                        m.kafka_lag
                            .with_label_values(&[&labels[0], &labels[1], &labels[2]])
                            .set(lag);
                        now_shown.insert(labels);
                    }
                    let c = mon.counters();
                    for (kind, v) in [
                        ("assign", &c.assignments),
                        ("revoke", &c.revocations),
                        ("lost", &c.lost_assignments),
                    ] {
                        m.kafka_rebalances
                            .with_label_values(&[name, kind])
                            .set(v.load(Ordering::Relaxed) as i64);
                    }
                }
                for [input, topic, p] in shown.difference(&now_shown) {
                    let _ = m.kafka_lag.remove_label_values(&[input, topic, p]);
                }
                shown = now_shown;
                for (name, mon) in &kinesis_monitors {
                    for (shard, snap) in mon.shards() {
                        let l = [name.as_str(), shard.as_str()];
                        m.kinesis_behind
                            .with_label_values(&l)
                            .set(snap.millis_behind_latest);
                        m.kinesis_throttles
                            .with_label_values(&l)
                            .set(snap.throttles as i64);
                        m.kinesis_kpl_fallbacks
                            .with_label_values(&l)
                            .set(snap.kpl_fallbacks as i64);
                    }
                }
                tokio::select! {
                    _ = rx.wait_for(|s| *s) => break,
                    () = tokio::time::sleep(Duration::from_secs(2)) => {}
                }
            }
        })
    };

    // Run until told to stop or every input ended by itself.
    let all_done = async {
        let mut results = Vec::new();
        for t in tasks.iter_mut() {
            results.push(t.await);
        }
        results
    };
    tokio::pin!(all_done);
    let mut shutdown = std::pin::pin!(shutdown);
    let results = tokio::select! {
        r = &mut all_done => r,
        () = &mut shutdown => {
            file_stop.store(true, Ordering::Relaxed);
            let _ = stop_tx.send(true);
            match tokio::time::timeout(deadline, &mut all_done).await {
                Ok(r) => r,
                Err(_) => anyhow::bail!(
                    "shutdown: inputs did not drain within {deadline:?}; offsets of unfinished records were not committed (they will be re-read)"
                ),
            }
        }
    };
    file_stop.store(true, Ordering::Relaxed);
    let _ = stop_tx.send(true);
    let mut records = Vec::new();
    let mut first_err = None;
    for r in results {
        match r {
            Ok(Ok(x)) => records.push(x),
            Ok(Err(e)) => {
                first_err.get_or_insert(e);
            }
            Err(e) => {
                first_err.get_or_insert(anyhow::anyhow!("an input task failed: {e}"));
            }
        }
    }
    let workers = tokio::time::timeout(
        deadline,
        tokio::task::spawn_blocking(move || pipeline.finish()),
    )
    .await
    .map_err(|_| anyhow::anyhow!("shutdown: workers did not drain within {deadline:?}"))?
    .context("pipeline")??;
    let _ = lag_task.await;
    if let Some(t) = admin_task {
        let _ = t.await;
    }
    if let Some(e) = first_err {
        return Err(e);
    }
    Ok(RunReport {
        workers,
        records,
        admin_addr,
    })
}
