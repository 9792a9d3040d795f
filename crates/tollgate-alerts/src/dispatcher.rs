//! The dispatcher: routes each alert update to its sinks' lanes (one lane
//! per sink target, each a thread with a bounded queue), in `send` order,
//! and stops them within a deadline. `send` blocks while a lane's queue is
//! full — that is how a slow or failing sink without a spool pushes back on
//! the pipeline — so call it from a thread that may block (the service's
//! workers are OS threads), or use [`Dispatcher::send_async`] from a task.
//! It holds no alert state itself: episodes and spools are per lane.

use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::{Arc, OnceLock};
use std::thread::JoinHandle;
use std::time::Instant;

use tollgate_detect::{AlertUpdate, Severity};
use tollgate_events::{Ack, Closed};

use crate::config::{AlertsConfig, CheckedAlerts, CheckedRoute, ConfigErrors, SinkConfig};
use crate::lane::{Lane, LaneMsg, LaneParts, LaneReport};
use crate::metrics::AlertsMetrics;
use crate::sinks::alertmanager::AlertmanagerSink;
use crate::sinks::file::FileSink;
use crate::sinks::kafka::KafkaSink;
use crate::sinks::pagerduty::PagerDutySink;
use crate::sinks::webhook::WebhookSink;
use crate::sinks::Deliver;

/// Why the dispatcher did not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("{0}")]
    Config(#[from] ConfigErrors),
    /// A sink could not be set up (spool directory, file, client).
    #[error("alert sink {sink} (target {target}): {problem}")]
    Sink {
        sink: String,
        target: usize,
        problem: String,
    },
}

/// How the lanes ended, from [`Dispatcher::shutdown`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShutdownReport {
    pub lanes: Vec<LaneReport>,
}

impl ShutdownReport {
    /// Every lane finished in time with nothing left unacknowledged.
    pub fn is_clean(&self) -> bool {
        self.lanes.iter().all(|l| l.finished && l.abandoned == 0)
    }
}

struct SinkLanes {
    lanes: Vec<flume::Sender<LaneMsg>>,
}

struct LaneThread {
    sink: String,
    target: usize,
    done: flume::Receiver<LaneReport>,
    thread: JoinHandle<()>,
}

/// The alert output. See the module docs.
pub struct Dispatcher {
    routes: Vec<CheckedRoute>,
    default_sinks: Vec<usize>,
    /// Queue senders by sink (configuration order) and target.
    sinks: Vec<SinkLanes>,
    threads: Vec<LaneThread>,
    /// Dropped to start shutdown (wakes lanes not reading their queue).
    stop: flume::Sender<()>,
    deadline: Arc<OnceLock<Instant>>,
    metrics: AlertsMetrics,
}

/// The spool directory of one sink target: `<spool_dir>/<sink>/<key>`,
/// where the key of an Alertmanager target is a hash of its URL (so
/// reordering `urls` keeps each spool with its Alertmanager) and `0`
/// otherwise.
fn lane_dir(root: &std::path::Path, sink: &str, cfg: &SinkConfig, target: usize) -> PathBuf {
    let key = match cfg {
        SinkConfig::Alertmanager(c) => {
            let h = blake3::hash(c.urls[target].trim_end_matches('/').as_bytes());
            h.to_hex()[..12].to_string()
        }
        _ => "0".to_string(),
    };
    root.join(sink).join(key)
}

impl Dispatcher {
    /// Checks `cfg`, opens every sink target's spool and sink on its own
    /// thread, and returns once all are ready (or the first error).
    pub fn start(cfg: AlertsConfig, metrics: AlertsMetrics) -> Result<Dispatcher, StartError> {
        Dispatcher::start_checked(cfg.check()?, metrics)
    }

    pub fn start_checked(
        cfg: CheckedAlerts,
        metrics: AlertsMetrics,
    ) -> Result<Dispatcher, StartError> {
        let (stop_tx, stop_rx) = flume::bounded::<()>(1);
        let deadline = Arc::new(OnceLock::new());
        let mut sinks = Vec::new();
        let mut threads = Vec::new();
        let mut ready = Vec::new();
        for s in &cfg.sinks {
            let targets = match &s.config {
                SinkConfig::Alertmanager(c) => c.urls.len(),
                _ => 1,
            };
            let mut lanes = Vec::new();
            for target in 0..targets {
                let (tx, rx) = flume::bounded(s.delivery.queue_capacity);
                lanes.push(tx);
                let lane_metrics = metrics.register(&s.name, s.config.kind(), target);
                let parts = LaneParts {
                    sink_name: s.name.clone(),
                    target,
                    rx,
                    stop: stop_rx.clone(),
                    deadline: deadline.clone(),
                    dir: cfg
                        .spool_dir
                        .as_ref()
                        .map(|root| lane_dir(root, &s.name, &s.config, target)),
                    cfg: s.delivery.clone(),
                    metrics: lane_metrics,
                };
                let config = s.config.clone();
                let admin = cfg.admin_base_url.clone();
                let (ready_tx, ready_rx) = flume::bounded::<Result<(), String>>(1);
                let (done_tx, done_rx) = flume::bounded(1);
                let thread = std::thread::Builder::new()
                    .name(format!("alerts-{}-{target}", s.name))
                    .spawn(move || {
                        let built = build_sink(&config, target, &parts.cfg, admin)
                            .and_then(|sink| Lane::open(parts, sink).map_err(|e| e.to_string()));
                        match built {
                            Ok(lane) => {
                                let _ = ready_tx.send(Ok(()));
                                let _ = done_tx.send(lane.run());
                            }
                            Err(e) => {
                                let _ = ready_tx.send(Err(e));
                            }
                        }
                    })
                    .map_err(|e| StartError::Sink {
                        sink: s.name.clone(),
                        target,
                        problem: format!("cannot spawn thread: {e}"),
                    })?;
                ready.push((s.name.clone(), target, ready_rx));
                threads.push(LaneThread {
                    sink: s.name.clone(),
                    target,
                    done: done_rx,
                    thread,
                });
            }
            sinks.push(SinkLanes { lanes });
        }
        let mut first_err = None;
        for (sink, target, rx) in ready {
            let r = rx
                .recv()
                .unwrap_or_else(|_| Err("lane thread ended during start-up".into()));
            if let Err(problem) = r {
                first_err.get_or_insert(StartError::Sink {
                    sink,
                    target,
                    problem,
                });
            }
        }
        let d = Dispatcher {
            routes: cfg.routes,
            default_sinks: cfg.default_sinks,
            sinks,
            threads,
            stop: stop_tx,
            deadline,
            metrics,
        };
        match first_err {
            None => Ok(d),
            Some(e) => {
                d.shutdown(Instant::now());
                Err(e)
            }
        }
    }

    /// The metrics handle given to `start`.
    pub fn metrics(&self) -> &AlertsMetrics {
        &self.metrics
    }

    /// Which sinks an update for `tenant` goes to (`severity` is `None` for
    /// a `Resolved`, which matches on the tenant alone).
    fn route(&self, tenant: &str, severity: Option<Severity>) -> Vec<bool> {
        let mut to = vec![false; self.sinks.len()];
        let mut matched = false;
        for r in &self.routes {
            if severity.is_some_and(|s| s < r.min_severity) {
                continue;
            }
            if r.tenants.iter().any(|p| p.matches(tenant)) {
                matched = true;
                for &i in &r.sinks {
                    to[i] = true;
                }
            }
        }
        if !matched {
            for &i in &self.default_sinks {
                to[i] = true;
            }
        }
        to
    }

    /// The messages for one update: (sink, target, message).
    fn fan_out(&self, update: AlertUpdate, ack: Option<Ack>) -> Vec<(usize, usize, LaneMsg)> {
        self.metrics
            .dispatch()
            .accepted
            .fetch_add(1, Ordering::Relaxed);
        let (tenant, severity) = match &update {
            AlertUpdate::Fired(a) => (a.tenant.as_str(), Some(a.severity)),
            AlertUpdate::Resolved { tenant, .. } => (tenant.as_str(), None),
        };
        let to = self.route(tenant, severity);
        let update = Arc::new(update);
        let mut out = Vec::new();
        for (i, s) in self.sinks.iter().enumerate() {
            // A Resolved goes to every lane: each knows whether it fired
            // the episode (routes may have changed since).
            if !to[i] && severity.is_some() {
                continue;
            }
            for target in 0..s.lanes.len() {
                out.push((
                    i,
                    target,
                    LaneMsg {
                        update: update.clone(),
                        routed: to[i],
                        ack: ack.clone(),
                    },
                ));
            }
        }
        if out.is_empty() {
            self.metrics
                .dispatch()
                .unrouted
                .fetch_add(1, Ordering::Relaxed);
        }
        out
    }

    /// Hands an update to its sinks, blocking while a queue is full. The
    /// `Ack` is released when every target has delivered or spooled it.
    /// `Err(Closed)` only if a lane has stopped (its ack is then kept
    /// unreleased).
    pub fn send(&self, update: AlertUpdate, ack: Option<Ack>) -> Result<(), Closed> {
        let mut res = Ok(());
        for (i, t, m) in self.fan_out(update, ack) {
            if let Err(flume::SendError(m)) = self.sinks[i].lanes[t].send(m) {
                std::mem::forget(m.ack);
                res = Err(Closed);
            }
        }
        res
    }

    /// [`Dispatcher::send`] for async callers: waits without blocking the
    /// runtime thread.
    pub async fn send_async(&self, update: AlertUpdate, ack: Option<Ack>) -> Result<(), Closed> {
        let mut res = Ok(());
        for (i, t, m) in self.fan_out(update, ack) {
            if let Err(flume::SendError(m)) = self.sinks[i].lanes[t].send_async(m).await {
                std::mem::forget(m.ack);
                res = Err(Closed);
            }
        }
        res
    }

    /// Stops taking updates; each lane delivers or spools what it holds
    /// and stops. Lanes still busy at `deadline` are left behind (their
    /// unfinished updates' acks are never released) and reported as not
    /// finished.
    pub fn shutdown(self, deadline: Instant) -> ShutdownReport {
        // Lanes stop starting new attempts a little before the deadline, so
        // that one in flight can still end (and be reported) in time.
        let margin = (deadline.saturating_duration_since(Instant::now()) / 5)
            .min(std::time::Duration::from_secs(1));
        let _ = self
            .deadline
            .set(deadline.checked_sub(margin).unwrap_or(deadline));
        drop(self.sinks);
        drop(self.stop);
        let mut lanes = Vec::new();
        for t in self.threads {
            match t.done.recv_deadline(deadline) {
                Ok(r) => {
                    let _ = t.thread.join();
                    lanes.push(r);
                }
                Err(_) => {
                    if t.thread.is_finished() {
                        let _ = t.thread.join();
                    }
                    lanes.push(LaneReport {
                        sink: t.sink,
                        target: t.target,
                        spooled: 0,
                        abandoned: 0,
                        finished: false,
                    });
                }
            }
        }
        ShutdownReport { lanes }
    }
}

impl std::fmt::Debug for Dispatcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Dispatcher")
            .field("lanes", &self.threads.len())
            .finish_non_exhaustive()
    }
}

fn build_sink(
    cfg: &SinkConfig,
    target: usize,
    d: &crate::config::DeliveryConfig,
    admin: Option<String>,
) -> Result<Box<dyn Deliver>, String> {
    Ok(match cfg {
        SinkConfig::Alertmanager(c) => Box::new(AlertmanagerSink::new(
            &c.urls[target],
            c.resend_interval.0,
            d.timeout.0,
            admin,
        )?),
        SinkConfig::Pagerduty(c) => Box::new(PagerDutySink::new(c, d.timeout.0, admin)?),
        SinkConfig::Webhook(c) => Box::new(WebhookSink::new(c, d.timeout.0)?),
        SinkConfig::File(c) => Box::new(FileSink::open(&c.path, d.batch_max)?),
        SinkConfig::Kafka(c) => Box::new(KafkaSink::new(c, d.timeout.0, d.batch_max)?),
    })
}
