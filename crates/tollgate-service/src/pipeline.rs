//! The tenant-sharded pipeline: inputs decode on their side ([`Router`]),
//! route every event by hash(tenant) to one of N worker threads that own
//! their tenants' models outright (no locks on the hot path), and the
//! workers hand alert updates to the alert output. Rejected and shed
//! records go to the dead-letter writer.
//!
//! ```text
//! input ─▶ Router (decode, admission) ─┬▶ worker 0 (Engine) ─┐
//!              │                        ├▶ worker 1 (Engine) ─┼▶ alert output (NDJSON)
//!              └▶ dead letters          └▶ …                  ┘
//! ```
//!
//! A Kafka input has several routers, one per decode lane
//! ([`crate::lanes`]); a Kinesis input one per shard. An input's routers
//! share its admission buckets.
//!
//! Queues are bounded (flume channels), so a slow stage makes `submit`
//! wait and the wait reaches the source. Completion flows back through the
//! record's [`Ack`]: each event and dead letter carries a clone, a worker
//! hands its events' alert updates (with the clone) to the alert output,
//! and the writers drop their clones only after writing — so an input's
//! checkpoint passes a record only once everything it turned into is out.
//! With `service.scored_log` set, a worker also appends one line per scored
//! event, once per batch, before it drops the batch's clones.
//!
//! Event time drives the engines: each worker advances its engine to its
//! low watermark less `allowed_lateness`, every ten seconds of event time.
//! The low watermark is the oldest of the newest event times of the lanes
//! (an input's partition or shard) that delivered to the worker in the
//! last `5 × idle_tick` of wall time ([`Lanes`]): partitions hours apart in
//! event time (catching up after an outage) must not close a lagging
//! tenant's volume intervals before its events arrive. When idle for
//! `idle_tick` of wall time a worker moves its (newest) watermark on by
//! the wall time that passed, so episodes resolve and intervals close when
//! traffic stops.

use std::collections::{HashMap, HashSet};
use std::hash::BuildHasher;
use std::io::Write;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use base64::Engine as _;
use chrono::{DateTime, Utc};
use tollgate_detect::{
    AlertUpdate, CheckedConfig, Detector, DirStore, Engine, EngineStats, FeedbackEffect,
    FeedbackTarget, MemStore, ModelStore, TenantDetail, TenantSummary, Verdict,
};
use tollgate_events::{Ack, Closed, Decoded, Decoder, Event, RecordMeta, RecordSink, TenantId};

use crate::admission::Admission;
use crate::api::{AlertBook, Controls};
use crate::config::{AdmissionConfig, ServiceConfig};
use crate::metrics::Metrics;

/// One event on its way to a worker.
pub struct Work {
    pub ev: Event,
    pub ack: Ack,
    pub arrived: Instant,
    /// The record's lane: a hash of its input, topic and partition (or
    /// shard), for the worker's low watermark.
    pub lane: u64,
}

/// The newest event time per lane a worker has seen, and when (wall time)
/// each lane last delivered.
#[derive(Debug, Default)]
struct Lanes {
    lanes: Vec<Lane>,
    /// The lane of the last event (a batch's events mostly share one).
    last: usize,
}

#[derive(Debug)]
struct Lane {
    id: u64,
    newest: DateTime<Utc>,
    seen: Instant,
}

/// A lane that delivered nothing for this long is forgotten (its partition
/// went to another instance, or its input ended).
const LANE_FORGET: Duration = Duration::from_secs(600);

impl Lanes {
    fn observe(&mut self, id: u64, ts: DateTime<Utc>, at: Instant) {
        let i = match self.lanes.get(self.last) {
            Some(l) if l.id == id => self.last,
            _ => match self.lanes.iter().position(|l| l.id == id) {
                Some(i) => i,
                None => {
                    self.lanes.push(Lane {
                        id,
                        newest: ts,
                        seen: at,
                    });
                    self.lanes.len() - 1
                }
            },
        };
        let l = &mut self.lanes[i];
        if ts > l.newest {
            l.newest = ts;
        }
        if at > l.seen {
            l.seen = at;
        }
        self.last = i;
    }

    /// The oldest newest-event-time among the lanes that delivered within
    /// `active` before `now`; `None` if none did.
    fn low(&mut self, now: Instant, active: Duration) -> Option<DateTime<Utc>> {
        self.lanes
            .retain(|l| now.saturating_duration_since(l.seen) < LANE_FORGET);
        self.last = 0;
        self.lanes
            .iter()
            .filter(|l| now.saturating_duration_since(l.seen) < active)
            .map(|l| l.newest)
            .min()
    }
}

/// Requests to a worker outside the event stream.
pub enum Control {
    /// Snapshot (when `save`) and drop these tenants: their partitions went
    /// to another instance. Replies when done.
    Release {
        tenants: Vec<TenantId>,
        save: bool,
        done: std::sync::mpsc::Sender<()>,
    },
    /// Apply on-call's verdict on one of the tenant's alerts and save the
    /// tenant's model.
    Feedback {
        tenant: TenantId,
        target: FeedbackTarget,
        verdict: Verdict,
        reply: tokio::sync::oneshot::Sender<Result<FeedbackEffect, String>>,
    },
    /// Summaries of the worker's resident tenants.
    Tenants {
        reply: tokio::sync::oneshot::Sender<Vec<TenantSummary>>,
    },
    /// One tenant's page.
    Tenant {
        tenant: TenantId,
        reply: tokio::sync::oneshot::Sender<Option<TenantDetail>>,
    },
}

/// An alert update on its way out, holding its record's `Ack` (none for
/// updates made by the passing of time).
pub struct AlertMsg {
    pub update: AlertUpdate,
    pub ack: Option<Ack>,
}

/// A record (or batch element, or event) that was not scored.
pub struct DeadLetter {
    pub input: Arc<str>,
    /// A `RejectReason` name, or `admission_limit`.
    pub reason: &'static str,
    pub detail: String,
    pub index: Option<usize>,
    pub tenant: Option<TenantId>,
    pub topic: Option<String>,
    pub partition: Option<String>,
    pub offset: Option<String>,
    pub payload: Vec<u8>,
    pub truncated: bool,
    pub ack: Ack,
}

/// Stable hash of a tenant id → worker index (the same in every instance
/// and release, so a tenant's worker never depends on process state).
pub fn worker_of(tenant: &TenantId, workers: usize) -> usize {
    (tollgate_detect::hash::StableBuild.hash_one(tenant.as_str()) % workers as u64) as usize
}

/// Tenants seen per (topic, partition), so a revocation can hand exactly
/// those tenants' models over. Routers record into it and keep a memo of
/// what they recorded, so a record whose tenant is already known for its
/// partition takes no lock; [`PartitionTenants::take`] (a revocation) bumps
/// an epoch that makes every memo stale.
#[derive(Default)]
pub struct PartitionTenants {
    map: Mutex<HashMap<(String, i32), HashSet<TenantId>>>,
    epoch: std::sync::atomic::AtomicU64,
}

impl PartitionTenants {
    /// Removes and returns the tenants seen on `parts` (sorted, distinct).
    pub fn take(&self, parts: &[(String, i32)]) -> Vec<TenantId> {
        let mut tenants = Vec::new();
        {
            let mut t = self.map.lock().unwrap_or_else(|e| e.into_inner());
            for p in parts {
                if let Some(set) = t.remove(p) {
                    tenants.extend(set);
                }
            }
            self.epoch.fetch_add(1, std::sync::atomic::Ordering::AcqRel);
        }
        tenants.sort();
        tenants.dedup();
        tenants
    }

    fn epoch(&self) -> u64 {
        self.epoch.load(std::sync::atomic::Ordering::Acquire)
    }

    fn record(&self, topic: &str, partition: i32, tenants: &[TenantId]) {
        let mut t = self.map.lock().unwrap_or_else(|e| e.into_inner());
        let set = t.entry((topic.to_owned(), partition)).or_default();
        for tenant in tenants {
            if !set.contains(tenant) {
                set.insert(tenant.clone());
            }
        }
    }
}

/// The running pipeline's shared ends; inputs get [`Router`]s from it.
pub struct Pipeline {
    workers: Vec<flume::Sender<Vec<Work>>>,
    controls: Vec<flume::Sender<Control>>,
    dead: flume::Sender<DeadLetter>,
    pub metrics: Metrics,
    admission: AdmissionConfig,
    max_payload: usize,
    worker_threads: Vec<JoinHandle<WorkerReport>>,
    alert_thread: Option<JoinHandle<anyhow::Result<u64>>>,
    /// The alert dispatcher's per-sink counters, when it runs.
    dispatch_metrics: Option<tollgate_alerts::AlertsMetrics>,
    dead_thread: Option<JoinHandle<anyhow::Result<u64>>>,
    started: Instant,
    /// Recent alerts for the admin API.
    book: Arc<AlertBook>,
}

/// What a worker did, returned when it stops.
#[derive(Debug, Default, Clone)]
pub struct WorkerReport {
    pub stats: EngineStats,
    pub snapshot_errors: u64,
}

/// Where alert updates go besides the NDJSON output (the demo's scorecard).
pub type AlertObserver = Box<dyn FnMut(&AlertUpdate) + Send>;

impl Pipeline {
    /// Starts the workers and the writers.
    pub fn start(
        cfg: &ServiceConfig,
        detect: CheckedConfig,
        metrics: Metrics,
        observer: Option<AlertObserver>,
    ) -> anyhow::Result<Self> {
        let n = cfg.service.worker_count();
        let (alert_tx, alert_rx) = flume::bounded::<AlertMsg>(cfg.alerts.queue_capacity);
        let dispatcher = match &cfg.alerts.dispatch {
            Some(d) => Some(
                tollgate_alerts::Dispatcher::start(
                    d.clone(),
                    tollgate_alerts::AlertsMetrics::new(),
                )
                .map_err(|e| anyhow::anyhow!("alert dispatch: {e}"))?,
            ),
            None => None,
        };
        let dispatch_metrics = dispatcher.as_ref().map(|d| d.metrics().clone());
        let book = Arc::new(AlertBook::new(cfg.admin.recent_alerts));
        let alert_thread = {
            let out = open_output(cfg.alerts.path.as_deref(), false)?;
            let m = metrics.clone();
            let deadline = cfg.service.shutdown_deadline.0;
            let book = book.clone();
            std::thread::Builder::new()
                .name("tollgate-alerts".into())
                .spawn(move || {
                    alert_writer(alert_rx, out, dispatcher, deadline, m, observer, book)
                })?
        };
        let (dead_tx, dead_rx) = flume::bounded::<DeadLetter>(cfg.dead_letter.queue_capacity);
        let dead_thread = {
            let out = open_output(cfg.dead_letter.path.as_deref(), true)?;
            let kafka = match &cfg.dead_letter.kafka {
                Some(k) => Some(DeadLetterTopic::new(k)?),
                None => None,
            };
            let m = metrics.clone();
            std::thread::Builder::new()
                .name("tollgate-dead-letters".into())
                .spawn(move || dead_letter_writer(dead_rx, out, kafka, m))?
        };
        let mut workers = Vec::new();
        let mut controls = Vec::new();
        let mut worker_threads = Vec::new();
        for i in 0..n {
            let (tx, rx) = flume::bounded::<Vec<Work>>(cfg.service.queue_capacity);
            let (ctx, crx) = flume::unbounded::<Control>();
            let store: Box<dyn ModelStore> = match &cfg.service.model_dir {
                Some(d) => Box::new(
                    DirStore::open(d)
                        .map_err(|e| anyhow::anyhow!("model directory {}: {e}", d.display()))?,
                ),
                None => Box::new(MemStore::new()),
            };
            let scored_log = match &cfg.service.scored_log {
                Some(p) => Some(ScoredLog::open(p)?),
                None => None,
            };
            let w = Worker {
                index: i,
                engine: Engine::new(detect.clone(), store),
                rx,
                control: crx,
                alerts: alert_tx.clone(),
                metrics: metrics.clone(),
                idle_tick: cfg.service.idle_tick.0,
                lateness: chrono::Duration::from_std(cfg.service.allowed_lateness.0)
                    .unwrap_or_default(),
                lanes: Lanes::default(),
                snapshot_every: cfg.service.snapshot_interval.0,
                round: Vec::new(),
                round_failed: false,
                seen_stats: EngineStats::default(),
                scored_log,
                scores: Detector::ALL
                    .map(|d| metrics.scores.with_label_values(&[d.as_str()]).local()),
                latency: metrics.latency.local(),
                tenant_runs: Vec::new(),
                census_every: CENSUS_EVERY.min(cfg.metrics.rerank_interval.0),
                rerank_every: cfg.metrics.rerank_interval.0,
                seen_census: (0, 0),
            };
            worker_threads.push(
                std::thread::Builder::new()
                    .name(format!("tollgate-worker-{i}"))
                    .spawn(move || {
                        let _refits = tollgate_detect::refits_on_this_thread();
                        w.run()
                    })?,
            );
            workers.push(tx);
            controls.push(ctx);
        }
        Ok(Pipeline {
            workers,
            controls,
            dead: dead_tx,
            metrics,
            admission: cfg.admission.clone(),
            max_payload: cfg.dead_letter.max_payload_bytes,
            worker_threads,
            alert_thread: Some(alert_thread),
            dispatch_metrics,
            dead_thread: Some(dead_thread),
            started: Instant::now(),
            book,
        })
    }

    /// The recent-alerts ring buffer the admin API reads.
    pub fn alert_book(&self) -> Arc<AlertBook> {
        self.book.clone()
    }

    /// A handle for the admin API's requests to the workers.
    pub fn controls(&self) -> Controls {
        Controls {
            senders: self.controls.clone(),
        }
    }

    /// A router for one input: its own decoder and admission buckets, the
    /// shared queues. (Routers made from it by [`Router::fresh`] share its
    /// buckets.)
    pub fn router(
        &self,
        input: &str,
        dec: Decoder,
        track: Option<Arc<PartitionTenants>>,
    ) -> Router {
        let m = &self.metrics;
        Router {
            input: Arc::from(input),
            dec,
            items: Vec::new(),
            admission: (self.admission.events_per_second > 0.0).then(|| {
                Arc::new(Mutex::new(Admission::new(
                    self.admission.events_per_second,
                    self.admission.burst,
                    self.admission.max_tenants,
                )))
            }),
            workers: self.workers.clone(),
            batches: (0..self.workers.len())
                .map(|_| Vec::with_capacity(BATCH_EVENTS))
                .collect(),
            dead: self.dead.clone(),
            dead_batch: Vec::new(),
            max_payload: self.max_payload,
            track,
            known: HashMap::new(),
            known_epoch: 0,
            seen_here: Vec::new(),
            started: self.started,
            records: m.records.with_label_values(&[input]),
            events: m.events_decoded.with_label_values(&[input]),
            shed: m.admission_shed.with_label_values(&[input]),
            over_rate: m.admission_over_rate.with_label_values(&[input]),
            metrics: m.clone(),
        }
    }

    /// Makes routers for one input on demand (one per Kinesis shard task).
    pub fn router_factory(
        &self,
        input: &str,
        dec: Decoder,
    ) -> impl FnMut() -> Router + Send + 'static {
        let proto = self.router(input, dec, None);
        move || proto.fresh()
    }

    /// Asks every worker to snapshot (when `save`) and drop `tenants`;
    /// blocks until all have. Safe to call from any thread, including
    /// librdkafka's rebalance callback.
    pub fn release_tenants(&self, tenants: Vec<TenantId>, save: bool) {
        release(&self.controls, self.workers.len(), tenants, save);
    }

    /// A cloneable handle for [`Pipeline::release_tenants`].
    pub fn releaser(&self) -> impl Fn(Vec<TenantId>, bool) + Send + Sync + 'static {
        let controls = self.controls.clone();
        let n = self.workers.len();
        move |tenants, save| release(&controls, n, tenants, save)
    }

    /// Copies the alert sinks' counters into the metrics (called periodically).
    pub fn publish_sink_metrics(&self) {
        publish_sinks(self.dispatch_metrics.as_ref(), &self.metrics);
    }

    /// A handle that publishes the sinks' counters, for a periodic task.
    pub fn sink_publisher(&self) -> impl Fn() + Send + Sync + 'static {
        let (d, m) = (self.dispatch_metrics.clone(), self.metrics.clone());
        move || publish_sinks(d.as_ref(), &m)
    }

    /// Events waiting per worker (for metrics).
    pub fn queue_depths(&self) -> Vec<usize> {
        self.workers.iter().map(|w| w.len()).collect()
    }

    /// Drains and stops: call after every router was dropped. Workers finish
    /// their queues and snapshot every model; the writers flush. Returns the
    /// workers' reports.
    pub fn finish(mut self) -> anyhow::Result<Vec<WorkerReport>> {
        self.workers.clear();
        self.controls.clear();
        let mut reports = Vec::new();
        for t in self.worker_threads.drain(..) {
            reports.push(
                t.join()
                    .map_err(|_| anyhow::anyhow!("a worker thread panicked"))?,
            );
        }
        // The workers held the last alert senders; the routers the dead ones.
        drop(self.dead);
        if let Some(t) = self.alert_thread.take() {
            t.join()
                .map_err(|_| anyhow::anyhow!("the alert writer panicked"))??;
        }
        if let Some(t) = self.dead_thread.take() {
            t.join()
                .map_err(|_| anyhow::anyhow!("the dead-letter writer panicked"))??;
        }
        Ok(reports)
    }
}

fn publish_sinks(d: Option<&tollgate_alerts::AlertsMetrics>, m: &Metrics) {
    let Some(d) = d else { return };
    for lane in d.lanes() {
        let t = lane.target.to_string();
        let l = [lane.sink.as_str(), t.as_str()];
        let x = &lane.metrics;
        let get =
            |a: &std::sync::atomic::AtomicU64| a.load(std::sync::atomic::Ordering::Relaxed) as i64;
        // Counters follow the dispatcher's own monotonic counts.
        let follow = |c: prometheus::IntCounter, now: i64| {
            let now = now.max(0) as u64;
            if now > c.get() {
                c.inc_by(now - c.get());
            }
        };
        follow(m.sink_delivered.with_label_values(&l), get(&x.delivered));
        follow(
            m.sink_failures.with_label_values(&l),
            get(&x.failed_attempts),
        );
        m.spool_depth
            .with_label_values(&l)
            .set(get(&x.spool_entries));
        follow(
            m.spool_dropped.with_label_values(&l),
            get(&x.dropped_by_cap),
        );
    }
}

fn release(controls: &[flume::Sender<Control>], n: usize, tenants: Vec<TenantId>, save: bool) {
    let mut per: Vec<Vec<TenantId>> = vec![Vec::new(); n];
    for t in tenants {
        per[worker_of(&t, n)].push(t);
    }
    let (done_tx, done_rx) = std::sync::mpsc::channel();
    let mut waiting = 0;
    for (i, tenants) in per.into_iter().enumerate() {
        if tenants.is_empty() {
            continue;
        }
        let msg = Control::Release {
            tenants,
            save,
            done: done_tx.clone(),
        };
        if controls[i].send(msg).is_ok() {
            waiting += 1;
        }
    }
    drop(done_tx);
    for _ in 0..waiting {
        if done_rx.recv().is_err() {
            break;
        }
    }
}

/// Why a dead letter was not scored.
struct Why {
    reason: &'static str,
    detail: String,
    index: Option<usize>,
    tenant: Option<TenantId>,
}

/// One input's entry to the pipeline; see the module docs.
pub struct Router {
    input: Arc<str>,
    dec: Decoder,
    items: Vec<Decoded>,
    /// The input's token buckets, shared by all its routers (so a tenant's
    /// limit is per input, whichever partition, shard or decode lane its
    /// events come through); `None` when admission is off.
    admission: Option<Arc<Mutex<Admission>>>,
    workers: Vec<flume::Sender<Vec<Work>>>,
    batches: Vec<Vec<Work>>,
    dead: flume::Sender<DeadLetter>,
    dead_batch: Vec<DeadLetter>,
    max_payload: usize,
    track: Option<Arc<PartitionTenants>>,
    /// Per topic, the (partition, tenant) pairs this router recorded in
    /// `track` as of its epoch `known_epoch`.
    known: HashMap<String, HashSet<(i32, TenantId)>>,
    known_epoch: u64,
    /// The current record's tenants not yet in `known` (reused buffer).
    seen_here: Vec<TenantId>,
    started: Instant,
    records: prometheus::IntCounter,
    events: prometheus::IntCounter,
    shed: prometheus::IntCounter,
    over_rate: prometheus::IntCounter,
    metrics: Metrics,
}

impl Router {
    /// Another router for the same input: same queues, decoder and
    /// admission buckets, its own buffers.
    pub(crate) fn fresh(&self) -> Router {
        Router {
            input: self.input.clone(),
            dec: self.dec.clone(),
            items: Vec::new(),
            admission: self.admission.clone(),
            workers: self.workers.clone(),
            batches: (0..self.workers.len())
                .map(|_| Vec::with_capacity(BATCH_EVENTS))
                .collect(),
            dead: self.dead.clone(),
            dead_batch: Vec::new(),
            max_payload: self.max_payload,
            track: self.track.clone(),
            known: HashMap::new(),
            known_epoch: 0,
            seen_here: Vec::new(),
            started: self.started,
            records: self.records.clone(),
            events: self.events.clone(),
            shed: self.shed.clone(),
            over_rate: self.over_rate.clone(),
            metrics: self.metrics.clone(),
        }
    }

    fn dead_letter(
        &self,
        payload: &[u8],
        meta: &RecordMeta<'_>,
        why: Why,
        ack: &Ack,
    ) -> DeadLetter {
        let Why {
            reason,
            detail,
            index,
            tenant,
        } = why;
        let keep = payload.len().min(self.max_payload);
        DeadLetter {
            input: self.input.clone(),
            reason,
            detail,
            index,
            tenant,
            topic: meta.topic.map(str::to_owned),
            partition: meta.partition.map(str::to_owned),
            offset: meta.offset.map(str::to_owned),
            payload: payload[..keep].to_vec(),
            truncated: keep < payload.len(),
            ack: ack.clone(),
        }
    }

    /// Decodes and sorts one record into per-worker batches and dead letters.
    fn prepare(&mut self, payload: &[u8], meta: &RecordMeta<'_>, ack: &Ack) {
        self.records.inc();
        let arrived = Instant::now();
        let now = arrived.duration_since(self.started).as_secs_f64();
        self.dec.decode(payload, meta, &mut self.items);
        let mut items = std::mem::take(&mut self.items);
        let partition = meta
            .topic
            .zip(meta.partition.and_then(|p| p.parse::<i32>().ok()));
        let track = partition.and(self.track.as_deref());
        let lane =
            tollgate_detect::hash::StableBuild.hash_one((&*self.input, meta.topic, meta.partition));
        if let Some(t) = track {
            let epoch = t.epoch();
            if epoch != self.known_epoch {
                self.known.clear();
                self.known_epoch = epoch;
            }
        }
        let mut seen_here = std::mem::take(&mut self.seen_here);
        seen_here.clear();
        for d in items.drain(..) {
            match d {
                Decoded::Event(ev) => {
                    self.events.inc();
                    let w = worker_of(&ev.tenant, self.workers.len());
                    let admitted = self.admission.as_ref().is_none_or(|a| {
                        a.lock()
                            .unwrap_or_else(std::sync::PoisonError::into_inner)
                            .take(&ev.tenant, now)
                    });
                    if !admitted {
                        let cap = self.workers[w].capacity().unwrap_or(usize::MAX);
                        if self.workers[w].len() * 2 >= cap {
                            self.shed.inc();
                            let why = Why {
                                reason: "admission_limit",
                                detail: format!(
                                    "tenant over its admission rate while worker {w} was busy"
                                ),
                                index: None,
                                tenant: Some(ev.tenant.clone()),
                            };
                            let dl = self.dead_letter(payload, meta, why, ack);
                            self.dead_batch.push(dl);
                            continue;
                        }
                        self.over_rate.inc();
                    }
                    if let (Some((topic, p)), Some(_)) = (partition, track) {
                        let known = self
                            .known
                            .get(topic)
                            .is_some_and(|k| k.contains(&(p, ev.tenant.clone())));
                        if !known && !seen_here.contains(&ev.tenant) {
                            seen_here.push(ev.tenant.clone());
                        }
                    }
                    self.batches[w].push(Work {
                        ev,
                        ack: ack.clone(),
                        arrived,
                        lane,
                    });
                }
                Decoded::Rejected(r) => {
                    let reason = r.reason.as_str();
                    self.metrics
                        .rejections
                        .with_label_values(&[&self.input, reason])
                        .inc();
                    let why = Why {
                        reason,
                        detail: r.detail,
                        index: r.index,
                        tenant: None,
                    };
                    let dl = self.dead_letter(payload, meta, why, ack);
                    self.dead_batch.push(dl);
                }
                Decoded::Skipped(s) => {
                    self.metrics
                        .skips
                        .with_label_values(&[&self.input, s.as_str()])
                        .inc();
                }
            }
        }
        self.items = items;
        if let (Some((topic, p)), Some(track)) = (partition, track) {
            if !seen_here.is_empty() {
                track.record(topic, p, &seen_here);
                let known = match self.known.get_mut(topic) {
                    Some(k) => k,
                    None => self.known.entry(topic.to_owned()).or_default(),
                };
                known.extend(seen_here.drain(..).map(|t| (p, t)));
            }
        }
        self.seen_here = seen_here;
    }

    /// Hands one record over (sync callers: file and stdin inputs on their
    /// own threads); waits only for queue space. Events are sent on in
    /// batches of up to [`BATCH_EVENTS`] per worker; call
    /// [`Router::flush_blocking`] before waiting for input.
    pub fn submit_blocking(
        &mut self,
        payload: &[u8],
        meta: &RecordMeta<'_>,
        ack: Ack,
    ) -> Result<(), Closed> {
        self.prepare(payload, meta, &ack);
        drop(ack);
        for (w, b) in self.batches.iter_mut().enumerate() {
            if b.len() >= BATCH_EVENTS {
                if let Err(flume::SendError(batch)) = self.workers[w].send(take_batch(b)) {
                    abandon(batch);
                    return Err(Closed);
                }
            }
        }
        let mut dead = std::mem::take(&mut self.dead_batch).into_iter();
        while let Some(dl) = dead.next() {
            if let Err(flume::SendError(dl)) = self.dead.send(dl) {
                abandon_dead(std::iter::once(dl).chain(dead));
                return Err(Closed);
            }
        }
        Ok(())
    }

    /// Sends every partial batch on.
    pub fn flush_blocking(&mut self) -> Result<(), Closed> {
        for (w, b) in self.batches.iter_mut().enumerate() {
            if !b.is_empty() {
                if let Err(flume::SendError(batch)) = self.workers[w].send(take_batch(b)) {
                    abandon(batch);
                    return Err(Closed);
                }
            }
        }
        Ok(())
    }

    /// Points this router at worker queues whose receiving ends are gone
    /// (tests of what happens when the workers are).
    #[cfg(test)]
    pub(crate) fn lose_workers(&mut self) {
        let (closed, _) = flume::bounded::<Vec<Work>>(1);
        self.workers = vec![closed];
        self.batches = vec![Vec::new()];
    }

    async fn send_batches(&mut self, min: usize) -> Result<(), Closed> {
        for w in 0..self.batches.len() {
            if !self.batches[w].is_empty() && self.batches[w].len() >= min {
                let b = take_batch(&mut self.batches[w]);
                if let Err(flume::SendError(batch)) = self.workers[w].send_async(b).await {
                    abandon(batch);
                    return Err(Closed);
                }
            }
        }
        let mut dead = std::mem::take(&mut self.dead_batch).into_iter();
        while let Some(dl) = dead.next() {
            if let Err(flume::SendError(dl)) = self.dead.send_async(dl).await {
                abandon_dead(std::iter::once(dl).chain(dead));
                return Err(Closed);
            }
        }
        Ok(())
    }
}

impl Drop for Router {
    /// A router dropped with events still batched sends them on, so their
    /// records are scored before they are acknowledged. If the workers are
    /// gone, the events' `Ack`s are leaked rather than dropped: their
    /// records stay unacknowledged and are read again after a restart.
    fn drop(&mut self) {
        for (w, b) in self.batches.iter_mut().enumerate() {
            if b.is_empty() {
                continue;
            }
            if let Err(flume::SendError(batch)) = self.workers[w].send(std::mem::take(b)) {
                abandon(batch);
            }
        }
        for dl in self.dead_batch.drain(..) {
            if let Err(flume::SendError(dl)) = self.dead.send(dl) {
                abandon_dead([dl]);
            }
        }
    }
}

/// Events whose worker is gone: their acknowledgements are leaked rather
/// than dropped (a dropped `Ack` reports its record done), so the records
/// stay unacknowledged and are read again after a restart.
fn abandon(batch: Vec<Work>) {
    for work in batch {
        std::mem::forget(work.ack);
    }
}

/// Dead letters whose writer is gone, likewise.
fn abandon_dead(letters: impl IntoIterator<Item = DeadLetter>) {
    for dl in letters {
        std::mem::forget(dl.ack);
    }
}

/// Events a router collects per worker before it sends them on (one channel
/// operation and at most one wake-up per batch instead of per event).
pub const BATCH_EVENTS: usize = 128;

/// A batch to send, leaving room for a whole next one in its place: a batch
/// grown from empty was reallocated five times on its way to 128 events
/// (672 bytes each), copying them each time it could not grow in place.
fn take_batch(b: &mut Vec<Work>) -> Vec<Work> {
    std::mem::replace(b, Vec::with_capacity(BATCH_EVENTS))
}

impl RecordSink for Router {
    fn submit(
        &mut self,
        payload: &[u8],
        meta: &RecordMeta<'_>,
        ack: Ack,
    ) -> impl std::future::Future<Output = Result<(), Closed>> + Send {
        self.prepare(payload, meta, &ack);
        drop(ack);
        self.send_batches(BATCH_EVENTS)
    }

    fn flush(&mut self) -> impl std::future::Future<Output = Result<(), Closed>> + Send {
        self.send_batches(1)
    }
}

/// A worker thread: owns an engine (its tenants' models).
struct Worker {
    index: usize,
    engine: Engine,
    rx: flume::Receiver<Vec<Work>>,
    control: flume::Receiver<Control>,
    alerts: flume::Sender<AlertMsg>,
    metrics: Metrics,
    idle_tick: Duration,
    /// The engine's clock trails the watermark by this much.
    lateness: chrono::Duration,
    /// Newest event time per lane, for the low watermark.
    lanes: Lanes,
    snapshot_every: Duration,
    /// The current snapshot round's tenants still to be written, last
    /// first (see [`Worker::write_round`]).
    round: Vec<TenantId>,
    /// A write of the current round failed.
    round_failed: bool,
    /// Engine stats already added to the (process-wide) gauges.
    seen_stats: EngineStats,
    /// `service.scored_log`, when configured.
    scored_log: Option<ScoredLog>,
    /// `tollgate_detector_score` per detector, resolved once (a labelled
    /// lookup per event would take a lock on the hot path), and
    /// `tollgate_processing_latency_seconds`: this worker's own copies,
    /// added to the shared histograms at the end of each batch (an
    /// observation of a shared one is three atomic updates, and an event
    /// makes up to ten).
    scores: [prometheus::local::LocalHistogram; Detector::COUNT],
    latency: prometheus::local::LocalHistogram,
    /// Events per tenant in the current batch, as runs (consecutive events
    /// of one tenant add to the last run), for `tollgate_tenant_events_total`.
    tenant_runs: Vec<(TenantId, u64)>,
    /// How often (wall time) memory, warm-up and tenant ranking are taken.
    census_every: Duration,
    rerank_every: Duration,
    /// (model bytes, warming) already added to the process-wide gauges.
    seen_census: (i64, i64),
}

/// A snapshot round is written between batches, a slice at a time: while
/// events wait, a slice ends after the write that passes this much wall
/// time (one write, temp file + fsync + rename + directory fsync, took
/// 1.65 ms on this project's machine) ...
const SNAPSHOT_SLICE: Duration = Duration::from_millis(2);
/// ... and with nothing waiting, after this much, or as soon as a batch or
/// a control message arrives.
const SNAPSHOT_SLICE_IDLE: Duration = Duration::from_millis(100);

/// How often a worker takes its census (model memory, tenants warming up).
const CENSUS_EVERY: Duration = Duration::from_secs(5);

/// The scored-events audit log of one worker (`service.scored_log`): lines
/// are gathered per batch and appended with one `write` (the file is opened
/// with `O_APPEND`, so the workers' batches never interleave mid-line)
/// before the batch's acknowledgements are released.
struct ScoredLog {
    file: std::fs::File,
    buf: Vec<u8>,
}

/// One line of the scored log.
#[derive(serde::Serialize)]
struct ScoredLine<'a> {
    tenant: &'a str,
    id: Option<&'a str>,
    input: Option<&'a str>,
    partition: Option<&'a str>,
    offset: Option<&'a str>,
    at_ms: i64,
}

impl ScoredLog {
    fn open(path: &std::path::Path) -> anyhow::Result<Self> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)?;
        }
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .read(true) // for the torn-tail check below
            .open(path)
            .map_err(|e| anyhow::anyhow!("scored log {}: {e}", path.display()))?;
        // An instance killed mid-write leaves a torn last line: end it, so
        // that this instance's first line is not glued onto it.
        let torn = torn_tail(&file).and_then(|torn| {
            if torn {
                (&file).write_all(b"\n")
            } else {
                Ok(())
            }
        });
        torn.map_err(|e| anyhow::anyhow!("scored log {}: {e}", path.display()))?;
        Ok(ScoredLog {
            file,
            buf: Vec::with_capacity(4096),
        })
    }

    fn push(&mut self, ev: &Event, at_ms: i64) {
        let line = ScoredLine {
            tenant: ev.tenant.as_str(),
            id: ev.id.as_deref(),
            input: ev.input.as_deref(),
            partition: ev.partition.as_deref(),
            offset: ev.offset.as_deref(),
            at_ms,
        };
        // Serializing borrowed strings into a Vec cannot fail.
        let _ = serde_json::to_writer(&mut self.buf, &line);
        self.buf.push(b'\n');
    }

    /// Appends the gathered lines; the caller releases the batch's acks after.
    fn write(&mut self) -> std::io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let r = self.file.write_all(&self.buf);
        self.buf.clear();
        r
    }
}

/// Whether a non-empty file's last byte is not a newline.
fn torn_tail(file: &std::fs::File) -> std::io::Result<bool> {
    use std::os::unix::fs::FileExt;
    let len = file.metadata()?.len();
    if len == 0 {
        return Ok(false);
    }
    let mut last = [0u8];
    file.read_exact_at(&mut last, len - 1)?;
    Ok(last[0] != b'\n')
}

/// How often, in event time, the engine is advanced while events flow.
const ADVANCE_EVERY_MS: i64 = 10_000;

enum Next {
    Work(Vec<Work>),
    Control(Control),
    Idle,
    Closed,
}

impl Worker {
    fn run(mut self) -> WorkerReport {
        let mut updates: Vec<AlertUpdate> = Vec::new();
        let mut watermark: Option<DateTime<Utc>> = None;
        let mut last_advance_ms = i64::MIN;
        let mut last_activity = Instant::now();
        let mut last_snapshot = Instant::now();
        let mut last_census = Instant::now();
        let mut last_rerank = Instant::now();
        let mut snapshot_errors = 0u64;
        let depth = self
            .metrics
            .queue_depth
            .with_label_values(&[&self.index.to_string()]);
        loop {
            // (a round in progress goes on as soon as nothing is waiting)
            let wait = if self.round.is_empty() {
                self.idle_tick
            } else {
                Duration::ZERO
            };
            let next = flume::Selector::new()
                .recv(&self.control, |r| r.map_or(Next::Closed, Next::Control))
                .recv(&self.rx, |r| r.map_or(Next::Closed, Next::Work))
                .wait_timeout(wait)
                .unwrap_or(Next::Idle);
            match next {
                Next::Work(batch) => {
                    depth.set(self.rx.len() as i64);
                    self.score_batch(batch, &mut updates, &mut watermark, &mut last_advance_ms);
                    last_activity = Instant::now();
                }
                Next::Control(Control::Release {
                    tenants,
                    save,
                    done,
                }) => {
                    for t in &tenants {
                        if self.engine.release(t, save).is_err() {
                            snapshot_errors += 1;
                            self.metrics.snapshot_failures.inc();
                        }
                    }
                    let _ = done.send(());
                }
                Next::Control(Control::Feedback {
                    tenant,
                    target,
                    verdict,
                    reply,
                }) => {
                    let r = self
                        .engine
                        .feedback(&tenant, &target, verdict, &mut updates);
                    self.send_updates(&mut updates, None);
                    if r.is_ok() {
                        self.metrics
                            .feedback
                            .with_label_values(&[verdict.as_str()])
                            .inc();
                    }
                    let _ = reply.send(r.map_err(|e| e.to_string()));
                }
                Next::Control(Control::Tenants { reply }) => {
                    let _ = reply.send(self.engine.summaries());
                }
                Next::Control(Control::Tenant { tenant, reply }) => {
                    let _ = reply.send(self.engine.detail(&tenant));
                }
                Next::Idle => {
                    let idle = last_activity.elapsed();
                    if let Some(wm) = watermark.as_mut() {
                        if idle >= self.idle_tick {
                            *wm += chrono::Duration::from_std(idle).unwrap_or_default();
                            last_activity = Instant::now();
                            self.engine.advance(*wm - self.lateness, &mut updates);
                            last_advance_ms = wm.timestamp_millis();
                            self.send_updates(&mut updates, None);
                        }
                    }
                }
                Next::Closed => {
                    if self.rx.is_disconnected() && self.rx.is_empty() {
                        break;
                    }
                    // Only the control side closed: keep serving events.
                    if let Ok(batch) = self.rx.recv() {
                        self.score_batch(batch, &mut updates, &mut watermark, &mut last_advance_ms);
                        continue;
                    }
                    break;
                }
            }
            let due = self.round.is_empty() && last_snapshot.elapsed() >= self.snapshot_every;
            if due {
                last_snapshot = Instant::now();
                self.start_round();
            }
            if due || !self.round.is_empty() {
                self.write_round(&mut snapshot_errors, true);
            }
            self.publish_stats();
            if last_census.elapsed() >= self.census_every {
                let rerank = last_rerank.elapsed() >= self.rerank_every;
                self.census(rerank);
                last_census = Instant::now();
                if rerank {
                    last_rerank = last_census;
                }
            }
        }
        self.snapshot(&mut snapshot_errors);
        self.publish_stats();
        self.census(true);
        WorkerReport {
            stats: self.engine.stats().clone(),
            snapshot_errors,
        }
    }

    /// Scores a batch, hands its alert updates on, advances the engine's
    /// clock, and releases each event's `Ack` — after the batch's lines
    /// were appended to the scored log, when there is one.
    fn score_batch(
        &mut self,
        batch: Vec<Work>,
        updates: &mut Vec<AlertUpdate>,
        watermark: &mut Option<DateTime<Utc>>,
        last_advance_ms: &mut i64,
    ) {
        let at_ms = self
            .scored_log
            .as_ref()
            .map(|_| Utc::now().timestamp_millis());
        let mut held: Vec<Ack> = Vec::new();
        for w in batch {
            match self.tenant_runs.last_mut() {
                Some((t, n)) if *t == w.ev.tenant => *n += 1,
                _ => self.tenant_runs.push((w.ev.tenant.clone(), 1)),
            }
            let score = self.engine.process(&w.ev, updates);
            for (h, d) in self.scores.iter().zip(&score.per_detector) {
                if d.raw > 0.0 {
                    h.observe(d.raw);
                }
            }
            let ts = w.ev.ts;
            self.lanes.observe(w.lane, ts, w.arrived);
            if watermark.is_none_or(|m| ts > m) {
                *watermark = Some(ts);
            }
            let wm = watermark.expect("set above");
            if wm.timestamp_millis() >= last_advance_ms.saturating_add(ADVANCE_EVERY_MS) {
                let low = self.lanes.low(w.arrived, self.idle_tick * 5).unwrap_or(wm);
                self.engine.advance(low - self.lateness, updates);
                *last_advance_ms = wm.timestamp_millis();
            }
            self.latency.observe(w.arrived.elapsed().as_secs_f64());
            self.send_updates(updates, Some(&w.ack));
            match (&mut self.scored_log, at_ms) {
                (Some(log), Some(at)) => {
                    log.push(&w.ev, at);
                    held.push(w.ack);
                }
                _ => drop(w),
            }
        }
        for h in &self.scores {
            h.flush();
        }
        self.latency.flush();
        if let Some(log) = &mut self.scored_log {
            if log.write().is_err() {
                self.metrics.scored_log_failures.inc();
            }
        }
        drop(held);
        let labels = &self.metrics.tenant_labels;
        for (t, n) in self.tenant_runs.drain(..) {
            self.metrics
                .tenant_events
                .with_label_values(&[labels.label(&t)])
                .inc_by(n);
        }
    }

    /// Model memory and warm-up gauges (as deltas, so the workers add up);
    /// with `rerank`, this worker's busiest tenants go to the tenant
    /// labeller and the series of tenants that lost their label are removed.
    fn census(&mut self, rerank: bool) {
        let labels = self.metrics.tenant_labels.clone();
        let c = self.engine.census(if rerank { labels.top() } else { 0 });
        let (bytes, warming) = (c.resident_bytes as i64, c.warming as i64);
        self.metrics.model_bytes.add(bytes - self.seen_census.0);
        self.metrics
            .tenants_warming
            .add(warming - self.seen_census.1);
        self.seen_census = (bytes, warming);
        if rerank {
            let busiest = c
                .busiest
                .into_iter()
                .map(|(n, t)| (n, t.as_str().to_owned()))
                .collect();
            for t in labels.report(busiest) {
                self.metrics.forget_tenant(&t);
            }
            self.metrics.tenants_labelled.set(labels.labelled() as i64);
        }
    }

    /// Writes every changed model at once (shutdown); the round in
    /// progress, if any, is part of it.
    fn snapshot(&mut self, errors: &mut u64) {
        self.start_round();
        self.write_round(errors, false);
    }

    /// A snapshot round of the models changed since their last write.
    fn start_round(&mut self) {
        self.round = self.engine.changed_tenants();
        self.round.reverse();
        self.round_failed = false;
    }

    /// Writes the round's next tenants; all of them, or with `sliced` one
    /// slice between batches: a round written at once stalled the worker
    /// for one write per changed tenant (5,000 tenants: ≈ 8 s at 1.65 ms
    /// a write, every `snapshot_interval`), with every event behind it waiting. A slice
    /// ends at [`SNAPSHOT_SLICE`] while events wait, else at
    /// [`SNAPSHOT_SLICE_IDLE`] or when something arrives. A tenant evicted
    /// or handed over in the meantime was saved then, and a model that
    /// changes after its write is written again next round.
    fn write_round(&mut self, errors: &mut u64, sliced: bool) {
        let start = Instant::now();
        while let Some(t) = self.round.pop() {
            if self.engine.save(&t).is_err() {
                self.round_failed = true;
                *errors += 1;
                self.metrics.snapshot_failures.inc();
            }
            let spent = start.elapsed();
            let waiting = !self.rx.is_empty() || !self.control.is_empty();
            if sliced && (spent >= SNAPSHOT_SLICE_IDLE || waiting && spent >= SNAPSHOT_SLICE) {
                break;
            }
        }
        if sliced {
            self.metrics
                .snapshot_pause
                .observe(start.elapsed().as_secs_f64());
        }
        if self.round.is_empty() && !self.round_failed {
            self.metrics.snapshot_writes.inc();
        }
    }

    fn send_updates(&mut self, updates: &mut Vec<AlertUpdate>, ack: Option<&Ack>) {
        for u in updates.drain(..) {
            match &u {
                AlertUpdate::Fired(a) => {
                    let (d, s) = (a.detector.as_str(), a.severity.as_str());
                    self.metrics.alerts_fired.with_label_values(&[d, s]).inc();
                    let t = self.metrics.tenant_labels.label(&a.tenant);
                    self.metrics
                        .tenant_alerts
                        .with_label_values(&[t, d, s])
                        .inc();
                }
                AlertUpdate::Resolved { .. } => self.metrics.alerts_resolved.inc(),
            }
            // A closed alert output means the service is failing: the
            // update is lost only if the process exits, and then the record
            // was never acknowledged (its ack is dropped unsent below only
            // after `send` failed, which ends the worker's usefulness).
            let _ = self.alerts.send(AlertMsg {
                update: u,
                ack: ack.cloned(),
            });
        }
    }

    /// Moves the engine's counters into the process-wide gauges (deltas,
    /// so several workers add up).
    fn publish_stats(&mut self) {
        let s = self.engine.stats();
        let m = &self.metrics;
        let d = |now: u64, before: u64| now as i64 - before as i64;
        m.events_scored
            .inc_by(s.events.saturating_sub(self.seen_stats.events));
        m.tenants_resident
            .add(s.tenants_resident as i64 - self.seen_stats.tenants_resident as i64);
        m.tenants_created
            .add(d(s.tenants_created, self.seen_stats.tenants_created));
        m.tenants_loaded
            .add(d(s.tenants_loaded, self.seen_stats.tenants_loaded));
        m.tenants_evicted.add(d(
            s.evictions_lru + s.evictions_idle,
            self.seen_stats.evictions_lru + self.seen_stats.evictions_idle,
        ));
        m.tenants_released
            .add(d(s.tenants_released, self.seen_stats.tenants_released));
        m.snapshots_saved
            .add(d(s.snapshots_saved, self.seen_stats.snapshots_saved));
        self.seen_stats = s.clone();
    }
}

/// Opens an NDJSON output: `-` is stdout (stderr for dead letters).
fn open_output(
    path: Option<&std::path::Path>,
    stderr_for_dash: bool,
) -> anyhow::Result<Box<dyn Write + Send>> {
    Ok(match path {
        None => Box::new(std::io::sink()),
        Some(p) if p.as_os_str() == "-" => {
            if stderr_for_dash {
                Box::new(std::io::stderr())
            } else {
                Box::new(std::io::stdout())
            }
        }
        Some(p) => {
            if let Some(dir) = p.parent().filter(|d| !d.as_os_str().is_empty()) {
                std::fs::create_dir_all(dir)?;
            }
            Box::new(
                std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(p)
                    .map_err(|e| anyhow::anyhow!("cannot open {}: {e}", p.display()))?,
            )
        }
    })
}

/// Writes `bytes`, retrying with backoff (up to 5 s between tries) until it
/// succeeds: the caller holds the records' `Ack`s meanwhile, so a full disk
/// stalls the pipeline (backpressure) instead of losing what it wrote.
fn write_retrying(out: &mut impl Write, bytes: &[u8], failed: &prometheus::IntCounter) {
    let mut wait = Duration::from_millis(50);
    while let Err(e) = out.write_all(bytes).and_then(|()| out.flush()) {
        failed.inc();
        eprintln!("tollgate: output write failed ({e}); retrying in {wait:?}");
        std::thread::sleep(wait);
        wait = (wait * 2).min(Duration::from_secs(5));
    }
}

/// The writers' loop: takes what is queued (up to 1 MiB of output), encodes
/// each item into one buffer, writes it with retries, runs `after_batch`
/// with the keys `encode` returned, and only then releases the items'
/// `Ack`s. Returns the items written.
fn batch_writer<T, K>(
    rx: flume::Receiver<T>,
    mut out: Box<dyn Write + Send>,
    failed: &prometheus::IntCounter,
    mut encode: impl FnMut(T, &mut Vec<u8>) -> anyhow::Result<(K, Option<Ack>)>,
    mut after_batch: impl FnMut(&mut Vec<K>),
) -> anyhow::Result<u64> {
    let mut buf: Vec<u8> = Vec::with_capacity(64 << 10);
    let mut keys: Vec<K> = Vec::new();
    let mut held: Vec<Ack> = Vec::new();
    let mut written = 0u64;
    while let Ok(first) = rx.recv() {
        let mut item = Some(first);
        while let Some(x) = item {
            let (key, ack) = encode(x, &mut buf)?;
            keys.push(key);
            held.extend(ack);
            item = if buf.len() < (1 << 20) {
                rx.try_recv().ok()
            } else {
                None
            };
        }
        write_retrying(&mut out, &buf, failed);
        buf.clear();
        written += keys.len() as u64;
        after_batch(&mut keys);
        keys.clear();
        held.clear();
    }
    Ok(written)
}

/// Writes alert updates as NDJSON and hands them to the dispatcher;
/// releases each update's `Ack` only after its batch was written.
fn alert_writer(
    rx: flume::Receiver<AlertMsg>,
    out: Box<dyn Write + Send>,
    dispatcher: Option<tollgate_alerts::Dispatcher>,
    deadline: Duration,
    metrics: Metrics,
    mut observer: Option<AlertObserver>,
    book: Arc<AlertBook>,
) -> anyhow::Result<u64> {
    let ok = metrics.alert_writes.with_label_values(&["written"]);
    let failed = metrics.alert_writes.with_label_values(&["failed"]);
    let written = batch_writer(
        rx,
        out,
        &failed,
        |m: AlertMsg, buf| {
            if let Some(obs) = observer.as_mut() {
                obs(&m.update);
            }
            book.record(&m.update);
            serde_json::to_writer(&mut *buf, &m.update)?;
            buf.push(b'\n');
            if let Some(d) = &dispatcher {
                // The dispatcher releases its clone once the update is
                // delivered or spooled; a closed lane keeps it (the record
                // is then never acknowledged and is read again).
                let _ = d.send(m.update, m.ack.clone());
            }
            Ok(((), m.ack))
        },
        |keys| ok.inc_by(keys.len() as u64),
    )?;
    if let Some(d) = dispatcher {
        let report = d.shutdown(std::time::Instant::now() + deadline);
        if !report.is_clean() {
            eprintln!("tollgate: alert dispatch stopped with undelivered updates (they stay spooled or their records unacknowledged): {report:?}");
        }
    }
    Ok(written)
}

/// A Kafka topic for dead letters (key = tenant, else input name).
pub struct DeadLetterTopic {
    producer: tollgate_kafka::rdkafka::producer::BaseProducer,
    topic: String,
}

impl DeadLetterTopic {
    fn new(k: &crate::config::KafkaSinkConfig) -> anyhow::Result<Self> {
        let mut c = tollgate_kafka::rdkafka::ClientConfig::new();
        for (key, v) in &k.properties {
            c.set(key, v);
        }
        c.set("bootstrap.servers", &k.bootstrap_servers)
            .set("enable.idempotence", "true");
        let producer = c
            .create()
            .map_err(|e| anyhow::anyhow!("dead-letter producer: {e}"))?;
        Ok(DeadLetterTopic {
            producer,
            topic: k.topic.clone(),
        })
    }

    fn send(&self, key: &str, line: &str) {
        use tollgate_kafka::rdkafka::producer::BaseRecord;
        let mut r = BaseRecord::to(&self.topic)
            .key(key)
            .payload(line.trim_end());
        loop {
            match self.producer.send(r) {
                Ok(()) => return,
                Err((_, back)) => {
                    // Queue full: let deliveries drain, then retry.
                    self.producer.poll(Duration::from_millis(10));
                    r = back;
                }
            }
        }
    }

    /// Waits until every dead letter sent so far is acknowledged by the
    /// broker, retrying through an outage (the records' `Ack`s are held
    /// meanwhile, so their offsets wait too: nothing is lost).
    fn flush(&self, failed: &prometheus::IntCounter) {
        use tollgate_kafka::rdkafka::producer::Producer;
        while self.producer.flush(Duration::from_secs(10)).is_err() {
            failed.inc();
        }
    }
}

/// Writes dead letters as NDJSON to the file and/or the Kafka topic
/// (payload as UTF-8 text when it is, base64 otherwise); releases each
/// one's `Ack` only after its batch was written and flushed everywhere
/// (retrying through failures: nothing is released unwritten).
fn dead_letter_writer(
    rx: flume::Receiver<DeadLetter>,
    out: Box<dyn Write + Send>,
    kafka: Option<DeadLetterTopic>,
    metrics: Metrics,
) -> anyhow::Result<u64> {
    let failed = metrics.dead_letters.with_label_values(&["retry", "write"]);
    let kafka_failed = metrics
        .dead_letters
        .with_label_values(&["kafka_retry", "flush"]);
    batch_writer(
        rx,
        out,
        &failed,
        |d: DeadLetter, buf| {
            let line = dead_letter_json(&d);
            buf.extend_from_slice(line.as_bytes());
            if let Some(k) = &kafka {
                let key = d.tenant.as_ref().map_or(&*d.input, TenantId::as_str);
                k.send(key, &line);
            }
            Ok((d.reason, Some(d.ack)))
        },
        |reasons| {
            if let Some(k) = &kafka {
                k.flush(&kafka_failed);
            }
            for r in reasons.iter() {
                metrics
                    .dead_letters
                    .with_label_values(&["written", r])
                    .inc();
            }
        },
    )
}

/// One dead letter as a JSON line.
pub fn dead_letter_json(d: &DeadLetter) -> String {
    let (payload_key, payload) = match std::str::from_utf8(&d.payload) {
        Ok(s) => ("payload", serde_json::Value::from(s)),
        Err(_) => (
            "payload_base64",
            serde_json::Value::from(base64::engine::general_purpose::STANDARD.encode(&d.payload)),
        ),
    };
    let mut v = serde_json::json!({
        "at": Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        "input": &*d.input,
        "reason": d.reason,
        "detail": d.detail,
        "index": d.index,
        "tenant": d.tenant.as_ref().map(TenantId::as_str),
        "topic": d.topic,
        "partition": d.partition,
        "offset": d.offset,
        "truncated": d.truncated,
    });
    v[payload_key] = payload;
    let mut s = v.to_string();
    s.push('\n');
    s
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use tollgate_events::RecordMeta;

    #[test]
    fn the_low_watermark_waits_for_a_lagging_lane_but_not_for_an_idle_one() {
        let t0 = Utc::now();
        let now = Instant::now();
        let active = Duration::from_secs(5);
        let mut lanes = Lanes::default();
        // partition 1 is eight hours ahead of partition 2 in event time
        lanes.observe(1, t0 + chrono::Duration::hours(8), now);
        lanes.observe(2, t0, now);
        lanes.observe(2, t0 + chrono::Duration::seconds(30), now);
        lanes.observe(2, t0 + chrono::Duration::seconds(10), now); // late, not newer
        assert_eq!(
            lanes.low(now, active),
            Some(t0 + chrono::Duration::seconds(30))
        );
        // partition 2 stops delivering (caught up, or empty): after `active`
        // it no longer holds the clock back
        let later = now + Duration::from_secs(6);
        lanes.observe(1, t0 + chrono::Duration::hours(9), later);
        assert_eq!(
            lanes.low(later, active),
            Some(t0 + chrono::Duration::hours(9))
        );
        // and is forgotten after LANE_FORGET
        let much_later = later + LANE_FORGET + Duration::from_secs(1);
        assert_eq!(lanes.low(much_later, active), None);
        assert!(lanes.lanes.is_empty());
    }

    /// A pipeline with one stdin input `in` of API Gateway records whose
    /// tenant is given by `tenant` (a TOML inline table), alerts and dead
    /// letters under `dir`, and `service` as its `[service]` table's lines;
    /// and that input's router.
    pub(crate) fn apigw_pipeline(
        dir: &std::path::Path,
        service: &str,
        tenant: &str,
    ) -> (Pipeline, Router) {
        let text = format!(
            r#"
[service]
{service}
[alerts]
path = {alerts:?}
[dead_letter]
path = {dead:?}
[[inputs]]
name = "in"
source = "stdin"
decode = {{ format = "apigw", tenant = {tenant} }}
"#,
            alerts = dir.join("alerts.ndjson").display().to_string(),
            dead = dir.join("dead.ndjson").display().to_string(),
        );
        let cfg = ServiceConfig::parse(&text, "test", Vec::new()).expect("valid config");
        let detect = cfg.detect.clone().check().expect("detect config");
        let pipeline = Pipeline::start(&cfg, detect, Metrics::new(), None).expect("pipeline");
        let dec = Decoder::new(&cfg.inputs[0].decode).expect("decoder");
        let router = pipeline.router("in", dec, None);
        (pipeline, router)
    }

    /// [`apigw_pipeline`] with every record's tenant `acme`.
    fn apigw_stdin_pipeline(dir: &std::path::Path, service: &str) -> (Pipeline, Router) {
        apigw_pipeline(dir, service, r#"{ type = "static", tenant = "acme" }"#)
    }

    /// The `i`-th of a run of API Gateway records a second apart.
    pub(crate) fn apigw_line(i: usize) -> String {
        format!(
            r#"{{"requestId":"r{i}","ip":"198.51.100.7","requestTimeEpoch":"{}","httpMethod":"GET","resourcePath":"/pets","status":"200"}}"#,
            1_686_411_388_000u64 + i as u64 * 1000
        )
    }

    /// Snapshot rounds run while events flow, not only at shutdown: every
    /// tenant's model reaches `model_dir` a slice at a time between
    /// batches, with the pipeline still running.
    #[test]
    fn a_snapshot_round_writes_every_changed_model_while_the_pipeline_runs() {
        let dir = tempfile::tempdir().expect("temp dir");
        let models = dir.path().join("models");
        let service = format!(
            "workers = 1\nmodel_dir = {:?}\nsnapshot_interval = \"100ms\"",
            models.display().to_string()
        );
        let (pipeline, mut router) = apigw_pipeline(
            dir.path(),
            &service,
            r#"{ type = "pointer", pointer = "/stage" }"#,
        );
        const TENANTS: usize = 40;
        for i in 0..TENANTS {
            let line = apigw_line(i).replacen('{', &format!(r#"{{"stage":"t{i}","#), 1);
            router
                .submit_blocking(line.as_bytes(), &RecordMeta::default(), Ack::none())
                .expect("submit");
        }
        router.flush_blocking().expect("flush");
        let written = || {
            std::fs::read_dir(&models).map_or(0, |d| {
                d.filter_map(Result::ok)
                    .filter(|e| e.file_name().to_string_lossy().ends_with(".tgdm"))
                    .count()
            })
        };
        let deadline = Instant::now() + Duration::from_secs(60);
        while written() < TENANTS && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        assert_eq!(written(), TENANTS, "every tenant's model, before shutdown");
        drop(router);
        pipeline.finish().expect("finish");
    }

    /// `service.scored_log`: every scored event has its line, and a record's
    /// `Ack` is released only once its event's line is in the file (what a
    /// committed offset then implies).
    #[test]
    fn records_are_acknowledged_only_after_their_scored_lines_are_written() {
        let dir = tempfile::tempdir().expect("temp dir");
        let log = dir.path().join("scored.ndjson");
        let service = format!("workers = 2\nscored_log = {:?}", log.display().to_string());
        let (pipeline, mut router) = apigw_stdin_pipeline(dir.path(), &service);
        let (tx, rx) = std::sync::mpsc::channel();
        const N: usize = 50;
        for i in 0..N {
            let line = apigw_line(i);
            let (tx, log) = (tx.clone(), log.clone());
            let ack = Ack::new(move || {
                let text = std::fs::read_to_string(&log).unwrap_or_default();
                let _ = tx.send((i, text.contains(&format!(r#""id":"r{i}""#))));
            });
            let offset = (i + 1).to_string();
            let meta = RecordMeta {
                input: Some("in"),
                offset: Some(&offset),
                ..Default::default()
            };
            router
                .submit_blocking(line.as_bytes(), &meta, ack)
                .expect("submit");
        }
        drop((router, tx));
        pipeline.finish().expect("finish");
        let acked: Vec<(usize, bool)> = rx.iter().collect();
        assert_eq!(acked.len(), N, "every record acknowledged");
        let early: Vec<usize> = acked
            .iter()
            .filter(|(_, ok)| !ok)
            .map(|(i, _)| *i)
            .collect();
        assert!(early.is_empty(), "acknowledged before logged: {early:?}");
        let lines: Vec<serde_json::Value> = std::fs::read_to_string(&log)
            .expect("scored log")
            .lines()
            .map(|l| serde_json::from_str(l).expect("JSON line"))
            .collect();
        assert_eq!(lines.len(), N);
        assert_eq!(lines[0]["tenant"], "acme");
        assert_eq!(lines[0]["input"], "in");
        assert!(lines[0]["partition"].is_null());
        assert!(lines[0]["at_ms"].as_i64().is_some_and(|t| t > 0));
        let offsets: std::collections::BTreeSet<&str> = lines
            .iter()
            .map(|l| l["offset"].as_str().expect("offset"))
            .collect();
        assert_eq!(offsets.len(), N);
    }

    /// A tenant's admission limit is per input: routers of one input
    /// (Kinesis shards, Kafka decode lanes) draw on the same bucket.
    #[test]
    fn routers_of_one_input_share_its_admission_buckets() {
        let dir = tempfile::tempdir().expect("temp dir");
        let (pipeline, mut a) = apigw_stdin_pipeline(dir.path(), "workers = 1");
        a.admission = Some(Arc::new(Mutex::new(Admission::new(0.001, 2.0, 16))));
        let mut b = a.fresh();
        for i in 0..2 {
            for r in [&mut a, &mut b] {
                let line = apigw_line(i);
                r.submit_blocking(line.as_bytes(), &RecordMeta::default(), Ack::none())
                    .expect("submit");
            }
        }
        let over = pipeline
            .metrics
            .admission_over_rate
            .with_label_values(&["in"])
            .get();
        assert_eq!(over, 2, "four events of one tenant against a burst of two");
        drop((a, b));
        pipeline.finish().expect("finish");
    }

    /// When the workers are gone, nothing submitted is reported done: a
    /// dropped `Ack` would let its offset be committed unscored.
    #[test]
    fn records_are_not_acknowledged_when_the_workers_are_gone() {
        let dir = tempfile::tempdir().expect("temp dir");
        let (pipeline, mut router) = apigw_stdin_pipeline(dir.path(), "workers = 1");
        router.lose_workers();
        let acked = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let mut result = Ok(());
        // Enough records to fill a batch (the send that fails), and one
        // that is not JSON (a dead letter, whose writer still runs).
        for i in 0..=BATCH_EVENTS {
            let line = if i == 3 {
                "not json".to_owned()
            } else {
                apigw_line(i)
            };
            let n = acked.clone();
            let ack = Ack::new(move || {
                n.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            });
            result = router.submit_blocking(line.as_bytes(), &RecordMeta::default(), ack);
            if result.is_err() {
                break;
            }
        }
        assert!(result.is_err(), "a closed worker queue is reported");
        drop(router);
        pipeline.finish().expect("finish");
        // The dead letter was written and released; no event's record was.
        assert_eq!(acked.load(std::sync::atomic::Ordering::SeqCst), 1);
    }
}
