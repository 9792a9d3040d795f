//! The service's Prometheus metrics, in one registry served on `/metrics`.
//!
//! Conventions: `tollgate_` prefix, base units, `_total` counters,
//! `_seconds` histograms. Labels are bounded: input names, reject/skip
//! reasons, detectors and severities come from configuration or closed
//! enums; Kafka partitions from the assignment. A `tenant` label appears
//! only on the `tollgate_tenant_…` series and only through
//! [`TenantLabels`]: the tenants of `metrics.tenants` and the `top_tenants`
//! busiest get their own value, every other tenant is summed under
//! `tenant="_other"`, so a flood of tenant ids adds no series.

use std::collections::HashSet;
use std::sync::{Arc, Mutex, RwLock};

use tollgate_events::TenantId;

use prometheus::{
    Encoder, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge,
    IntGaugeVec, Opts, Registry, TextEncoder,
};

/// Every metric the service exports.
#[derive(Clone)]
pub struct Metrics {
    pub registry: Registry,
    /// Records handed over by inputs, by input.
    pub records: IntCounterVec,
    /// Events decoded, by input.
    pub events_decoded: IntCounterVec,
    /// Decode rejections by input and reason.
    pub rejections: IntCounterVec,
    /// Records or events skipped on purpose (control messages, …) by input and reason.
    pub skips: IntCounterVec,
    /// Events shed by per-tenant admission while their worker was busy, by input.
    pub admission_shed: IntCounterVec,
    /// Events over their tenant's rate admitted because the worker had room, by input.
    pub admission_over_rate: IntCounterVec,
    pub events_scored: IntCounter,
    /// Raw detector scores of scored events, by detector.
    pub scores: HistogramVec,
    /// Alert episodes fired, by detector and severity.
    pub alerts_fired: IntCounterVec,
    pub alerts_resolved: IntCounter,
    /// Alert updates written by the alert output (`written`), and failed
    /// write attempts (`failed`; retried, nothing is dropped).
    pub alert_writes: IntCounterVec,
    /// Dead letters written, by reason (`outcome="written"`); failed write
    /// attempts (`outcome="retry"`, `reason="write"`) and Kafka flush retries
    /// (`outcome="kafka_retry"`, `reason="flush"`) — retried, never dropped.
    pub dead_letters: IntCounterVec,
    /// Arrival at the pipeline → scored, seconds.
    pub latency: Histogram,
    /// Event batches waiting per worker.
    pub queue_depth: IntGaugeVec,
    pub lane_depth: IntGaugeVec,
    pub tenants_resident: IntGauge,
    pub tenants_created: IntGauge,
    pub tenants_loaded: IntGauge,
    pub tenants_evicted: IntGauge,
    pub tenants_released: IntGauge,
    pub tenants_warming: IntGauge,
    pub model_bytes: IntGauge,
    /// Snapshot rounds completed without a failed write.
    pub snapshot_writes: IntCounter,
    /// Models that could not be saved (rounds, hand-overs).
    pub snapshot_failures: IntCounter,
    /// Tenant snapshots written.
    pub snapshots_saved: IntGauge,
    /// Wall time a worker spent writing snapshots at one go, between batches.
    pub snapshot_pause: Histogram,
    /// Batches whose lines could not be appended to `service.scored_log`.
    pub scored_log_failures: IntCounter,
    /// Consumer lag (messages) per Kafka input, topic and partition.
    pub kafka_lag: IntGaugeVec,
    /// Kafka record timestamp → record fully processed, by input.
    pub kafka_end_to_end: HistogramVec,
    /// Kafka rebalances by input and kind (`assign`, `revoke`, `lost`).
    pub kafka_rebalances: IntGaugeVec,
    /// Alert sinks: updates delivered, per sink and target index.
    pub sink_delivered: IntCounterVec,
    /// Alert sinks: failed delivery attempts (retried), per sink and target.
    pub sink_failures: IntCounterVec,
    /// Alert sinks: entries waiting in the on-disk spool.
    pub spool_depth: IntGaugeVec,
    /// Alert sinks: spooled updates dropped by the spool's size cap.
    pub spool_dropped: IntCounterVec,
    /// Kinesis: milliseconds behind the shard's tip, per input and shard.
    pub kinesis_behind: IntGaugeVec,
    /// Kinesis: throttled GetRecords calls per input and shard.
    pub kinesis_throttles: IntGaugeVec,
    /// Kinesis: KPL aggregates whose magic or MD5 did not check out (passed on raw).
    pub kinesis_kpl_fallbacks: IntGaugeVec,
    pub build_info: IntGaugeVec,
    /// Events scored per tenant (bounded by [`TenantLabels`]).
    pub tenant_events: IntCounterVec,
    /// Alert episodes opened per tenant, detector and severity (bounded).
    pub tenant_alerts: IntCounterVec,
    /// Tenants with their own `tenant` label value now.
    pub tenants_labelled: IntGauge,
    /// On-call verdicts applied, by verdict.
    pub feedback: IntCounterVec,
    /// Which tenants get their own label value.
    pub tenant_labels: TenantLabels,
}

/// The label value for `tenant` on `tollgate_tenant_…` series when it has
/// no series of its own.
pub const OTHER_TENANTS: &str = "_other";

/// Decides which tenants get their own `tenant` label value: an allow-list
/// plus the busiest `top` tenants. Workers report their busiest resident
/// tenants; a labelled tenant keeps its place (at its last known count)
/// until a busier one takes it, so a tenant briefly evicted from memory
/// does not flap. A tenant that loses its label has its series folded into
/// `_other` ([`Metrics::forget_tenant`]), so sums over tenants never drop,
/// and the number of tenant series stays within `allow + top + 1` per
/// label combination.
#[derive(Clone)]
pub struct TenantLabels {
    inner: Arc<LabelsInner>,
}

struct LabelsInner {
    allow: RwLock<HashSet<String>>,
    top: std::sync::atomic::AtomicUsize,
    labelled: RwLock<HashSet<String>>,
    /// The current top tenants with their last reported event counts.
    ranked: Mutex<Vec<(u64, String)>>,
}

impl TenantLabels {
    pub fn new(allow: &[String], top: usize) -> Self {
        let labels = TenantLabels {
            inner: Arc::new(LabelsInner {
                labelled: RwLock::new(HashSet::new()),
                allow: RwLock::new(HashSet::new()),
                top: top.into(),
                ranked: Mutex::new(Vec::new()),
            }),
        };
        labels.configure(allow, top);
        labels
    }

    /// Replaces the allow-list and the top-N size (at start-up, from the
    /// configuration).
    pub fn configure(&self, allow: &[String], top: usize) {
        let allow: HashSet<String> = allow.iter().cloned().collect();
        *self
            .inner
            .labelled
            .write()
            .unwrap_or_else(|e| e.into_inner()) = allow.clone();
        *self.inner.allow.write().unwrap_or_else(|e| e.into_inner()) = allow;
        self.inner
            .ranked
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clear();
        self.inner
            .top
            .store(top, std::sync::atomic::Ordering::Relaxed);
    }

    /// How many tenants the top-N holds.
    pub fn top(&self) -> usize {
        self.inner.top.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// The label value for `tenant`.
    pub fn label<'a>(&self, tenant: &'a TenantId) -> &'a str {
        let l = self
            .inner
            .labelled
            .read()
            .unwrap_or_else(|e| e.into_inner());
        if l.contains(tenant.as_str()) {
            tenant.as_str()
        } else {
            OTHER_TENANTS
        }
    }

    /// A worker reports its busiest tenants (events, tenant). The top
    /// becomes the `top` busiest of the current top and the report.
    /// Returns the tenants that lost their label (whose series the caller
    /// folds into `_other`).
    pub fn report(&self, busiest: Vec<(u64, String)>) -> Vec<String> {
        let top = self.top();
        let allow = self
            .inner
            .allow
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        let mut ranked = self.inner.ranked.lock().unwrap_or_else(|e| e.into_inner());
        for (n, t) in busiest {
            if allow.contains(&t) {
                continue;
            }
            match ranked.iter_mut().find(|(_, x)| *x == t) {
                Some(e) => e.0 = e.0.max(n),
                None => ranked.push((n, t)),
            }
        }
        ranked.sort_by(|a, b| b.0.cmp(&a.0).then_with(|| a.1.cmp(&b.1)));
        ranked.truncate(top);
        let mut next = allow;
        next.extend(ranked.iter().map(|(_, t)| t.clone()));
        drop(ranked);
        let mut l = self
            .inner
            .labelled
            .write()
            .unwrap_or_else(|e| e.into_inner());
        let dropped: Vec<String> = l.difference(&next).cloned().collect();
        *l = next;
        dropped
    }

    /// Tenants with their own label now.
    pub fn labelled(&self) -> usize {
        self.inner
            .labelled
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .len()
    }
}

impl Metrics {
    /// Metrics with the default tenant labelling (no allow-list, top 20).
    pub fn new() -> Self {
        Self::with_tenant_labels(TenantLabels::new(&[], 20))
    }

    /// Metrics whose tenant series follow `labels`.
    pub fn with_tenant_labels(tenant_labels: TenantLabels) -> Self {
        let registry = Registry::new();
        fn counter_vec(r: &Registry, name: &str, help: &str, labels: &[&str]) -> IntCounterVec {
            let c = IntCounterVec::new(Opts::new(name, help), labels).expect("valid metric");
            r.register(Box::new(c.clone())).expect("unique metric");
            c
        }
        fn gauge_vec(r: &Registry, name: &str, help: &str, labels: &[&str]) -> IntGaugeVec {
            let g = IntGaugeVec::new(Opts::new(name, help), labels).expect("valid metric");
            r.register(Box::new(g.clone())).expect("unique metric");
            g
        }
        fn counter(r: &Registry, name: &str, help: &str) -> IntCounter {
            let c = IntCounter::new(name, help).expect("valid metric");
            r.register(Box::new(c.clone())).expect("unique metric");
            c
        }
        fn gauge(r: &Registry, name: &str, help: &str) -> IntGauge {
            let g = IntGauge::new(name, help).expect("valid metric");
            r.register(Box::new(g.clone())).expect("unique metric");
            g
        }
        let r = &registry;
        let scores = HistogramVec::new(
            HistogramOpts::new(
                "tollgate_detector_score",
                "Raw detector scores of scored events (each detector in its own unit).",
            )
            .buckets(vec![
                0.5, 1.0, 2.0, 4.0, 6.0, 8.0, 10.0, 12.0, 16.0, 24.0, 32.0,
            ]),
            &["detector"],
        )
        .expect("valid metric");
        r.register(Box::new(scores.clone())).expect("unique metric");
        let latency = Histogram::with_opts(
            HistogramOpts::new(
                "tollgate_processing_latency_seconds",
                "Time from a record's arrival at the pipeline to its event being scored.",
            )
            .buckets(vec![
                0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
            ]),
        )
        .expect("valid metric");
        r.register(Box::new(latency.clone()))
            .expect("unique metric");
        let snapshot_pause = Histogram::with_opts(
            HistogramOpts::new(
                "tollgate_snapshot_pause_seconds",
                "Wall time a worker spent writing model snapshots at one go, between two batches of events (a snapshot round is written a slice at a time).",
            )
            .buckets(vec![
                0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
            ]),
        )
        .expect("valid metric");
        r.register(Box::new(snapshot_pause.clone()))
            .expect("unique metric");
        let kafka_end_to_end = HistogramVec::new(
            HistogramOpts::new(
                "tollgate_kafka_end_to_end_seconds",
                "From a Kafka record's timestamp (producer create time) to the record fully processed (events scored, alerts and dead letters written).",
            )
            .buckets(vec![
                0.005, 0.01, 0.025, 0.05, 0.1, 0.15, 0.2, 0.25, 0.35, 0.5, 0.75, 1.0, 2.5, 5.0,
                10.0, 30.0,
            ]),
            &["input"],
        )
        .expect("valid metric");
        r.register(Box::new(kafka_end_to_end.clone()))
            .expect("unique metric");
        let build_info = gauge_vec(
            r,
            "tollgate_build_info",
            "Build information; the value is 1.",
            &["version"],
        );
        build_info
            .with_label_values(&[env!("CARGO_PKG_VERSION")])
            .set(1);
        Metrics {
            records: counter_vec(
                r,
                "tollgate_records_total",
                "Records handed to the pipeline by inputs.",
                &["input"],
            ),
            events_decoded: counter_vec(
                r,
                "tollgate_events_decoded_total",
                "Events decoded from records.",
                &["input"],
            ),
            rejections: counter_vec(
                r,
                "tollgate_decode_rejections_total",
                "Records or batch elements rejected by the decoder (dead-lettered).",
                &["input", "reason"],
            ),
            skips: counter_vec(
                r,
                "tollgate_decode_skips_total",
                "Records skipped on purpose (control messages, execution logs, empty batches).",
                &["input", "reason"],
            ),
            admission_shed: counter_vec(
                r,
                "tollgate_admission_shed_total",
                "Events over their tenant's admission rate shed while the worker was busy (dead-lettered).",
                &["input"],
            ),
            admission_over_rate: counter_vec(
                r,
                "tollgate_admission_over_rate_total",
                "Events over their tenant's admission rate admitted because the worker had room.",
                &["input"],
            ),
            events_scored: counter(r, "tollgate_events_scored_total", "Events scored."),
            scores,
            alerts_fired: counter_vec(
                r,
                "tollgate_alerts_fired_total",
                "Alert episodes opened.",
                &["detector", "severity"],
            ),
            alerts_resolved: counter(
                r,
                "tollgate_alerts_resolved_total",
                "Alert episodes resolved.",
            ),
            alert_writes: counter_vec(
                r,
                "tollgate_alert_output_writes_total",
                "Alert updates written by the alert output.",
                &["outcome"],
            ),
            dead_letters: counter_vec(
                r,
                "tollgate_dead_letters_total",
                "Dead letters by outcome and reason.",
                &["outcome", "reason"],
            ),
            latency,
            snapshot_pause,
            queue_depth: gauge_vec(
                r,
                "tollgate_worker_queue_batches",
                "Event batches waiting in each worker's queue.",
                &["worker"],
            ),
            lane_depth: gauge_vec(
                r,
                "tollgate_decode_lane_queue_batches",
                "Record batches waiting in each decode lane's queue (Kafka inputs).",
                &["input", "lane"],
            ),
            tenants_resident: gauge(
                r,
                "tollgate_tenants_resident",
                "Tenant models in memory.",
            ),
            tenants_created: gauge(
                r,
                "tollgate_tenants_created",
                "Tenants started cold since start-up.",
            ),
            tenants_loaded: gauge(
                r,
                "tollgate_tenants_loaded",
                "Tenants restored from a snapshot since start-up.",
            ),
            tenants_evicted: gauge(
                r,
                "tollgate_tenants_evicted",
                "Tenants evicted to the model store (LRU or idle) since start-up.",
            ),
            tenants_released: gauge(
                r,
                "tollgate_tenants_released",
                "Tenants handed to another instance on a partition revocation since start-up.",
            ),
            snapshots_saved: gauge(
                r,
                "tollgate_snapshots_saved",
                "Tenant model snapshots written since start-up (a model unchanged since its last snapshot is not written again).",
            ),
            tenants_warming: gauge(
                r,
                "tollgate_tenants_warming_up",
                "Resident tenants still in warm-up (no alerts yet).",
            ),
            model_bytes: gauge(
                r,
                "tollgate_model_memory_bytes",
                "Estimated memory of resident tenant models.",
            ),
            snapshot_writes: counter(
                r,
                "tollgate_snapshot_writes_total",
                "Snapshot rounds (periodic, and at shutdown) completed without a failed write: every resident model changed since the round before was saved.",
            ),
            snapshot_failures: counter(
                r,
                "tollgate_snapshot_failures_total",
                "Model snapshots that could not be saved (snapshot rounds, hand-overs of revoked partitions' tenants).",
            ),
            scored_log_failures: counter(
                r,
                "tollgate_scored_log_failures_total",
                "Batches of scored events that could not be appended to the scored log.",
            ),
            kafka_lag: gauge_vec(
                r,
                "tollgate_kafka_consumer_lag",
                "Messages between the consumer position and the partition end.",
                &["input", "topic", "partition"],
            ),
            kafka_end_to_end,
            kafka_rebalances: gauge_vec(
                r,
                "tollgate_kafka_rebalances",
                "Kafka rebalance callbacks since start-up.",
                &["input", "kind"],
            ),
            sink_delivered: counter_vec(
                r,
                "tollgate_alert_sink_delivered_total",
                "Alert updates delivered by each sink target.",
                &["sink", "target"],
            ),
            sink_failures: counter_vec(
                r,
                "tollgate_alert_sink_failures_total",
                "Failed alert delivery attempts (retried with backoff) by sink target.",
                &["sink", "target"],
            ),
            spool_depth: gauge_vec(
                r,
                "tollgate_alert_spool_depth",
                "Alert updates waiting in a sink target's on-disk spool.",
                &["sink", "target"],
            ),
            spool_dropped: counter_vec(
                r,
                "tollgate_alert_spool_dropped_total",
                "Spooled alert updates dropped because the spool reached its size cap.",
                &["sink", "target"],
            ),
            kinesis_behind: gauge_vec(
                r,
                "tollgate_kinesis_millis_behind_latest",
                "MillisBehindLatest from the shard's last GetRecords.",
                &["input", "shard"],
            ),
            kinesis_throttles: gauge_vec(
                r,
                "tollgate_kinesis_throttled_calls",
                "GetRecords calls throttled (ProvisionedThroughputExceeded) since start-up.",
                &["input", "shard"],
            ),
            kinesis_kpl_fallbacks: gauge_vec(
                r,
                "tollgate_kinesis_kpl_fallbacks",
                "KPL-looking records passed on raw (bad magic, MD5 or protobuf) since start-up.",
                &["input", "shard"],
            ),
            build_info,
            tenant_events: counter_vec(
                r,
                "tollgate_tenant_events_total",
                "Events scored per tenant (allow-listed and busiest tenants; the rest under tenant=\"_other\").",
                &["tenant"],
            ),
            tenant_alerts: counter_vec(
                r,
                "tollgate_tenant_alerts_total",
                "Alert episodes opened per tenant, detector and severity (allow-listed and busiest tenants; the rest under tenant=\"_other\").",
                &["tenant", "detector", "severity"],
            ),
            tenants_labelled: gauge(
                r,
                "tollgate_metrics_tenants_labelled",
                "Tenants with their own tenant label value on tollgate_tenant_* series.",
            ),
            feedback: counter_vec(
                r,
                "tollgate_feedback_total",
                "On-call verdicts on alerts applied to tenant models, by verdict.",
                &["verdict"],
            ),
            tenant_labels,
            registry,
        }
    }

    /// Folds a tenant's own series into `_other` (it lost its label).
    pub fn forget_tenant(&self, tenant: &str) {
        // A worker may still add to the tenant's series between the fold
        // and the removal; those few counts go with it (bounded, rare).
        let n = self.tenant_events.with_label_values(&[tenant]).get();
        self.tenant_events
            .with_label_values(&[OTHER_TENANTS])
            .inc_by(n);
        let _ = self.tenant_events.remove_label_values(&[tenant]);
        for d in tollgate_detect::Detector::ALL {
            for s in ["low", "medium", "high", "critical"] {
                let n = self
                    .tenant_alerts
                    .with_label_values(&[tenant, d.as_str(), s])
                    .get();
                if n > 0 {
                    self.tenant_alerts
                        .with_label_values(&[OTHER_TENANTS, d.as_str(), s])
                        .inc_by(n);
                }
                let _ = self
                    .tenant_alerts
                    .remove_label_values(&[tenant, d.as_str(), s]);
            }
        }
    }

    /// The text exposition.
    pub fn render(&self) -> String {
        let mut buf = Vec::new();
        let _ = TextEncoder::new().encode(&self.registry.gather(), &mut buf);
        String::from_utf8(buf).unwrap_or_default()
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &str) -> TenantId {
        TenantId::new(s).unwrap()
    }

    #[test]
    fn the_busiest_keep_their_labels_and_the_rest_fold_into_other() {
        let m = Metrics::with_tenant_labels(TenantLabels::new(&["vip".into()], 2));
        let l = m.tenant_labels.clone();
        assert_eq!(l.label(&t("vip")), "vip");
        assert_eq!(l.label(&t("a")), OTHER_TENANTS);
        assert!(l
            .report(vec![(10, "a".into()), (5, "b".into()), (1, "c".into())])
            .is_empty());
        assert_eq!((l.label(&t("a")), l.label(&t("b"))), ("a", "b"));
        assert_eq!(l.label(&t("c")), OTHER_TENANTS);
        // Another worker's report: "a" is absent (evicted) but keeps its place.
        m.tenant_events.with_label_values(&["b"]).inc_by(5);
        let dropped = l.report(vec![(7, "d".into())]);
        assert_eq!(dropped, ["b"]);
        assert_eq!(l.label(&t("a")), "a");
        for d in dropped {
            m.forget_tenant(&d);
        }
        assert_eq!(m.tenant_events.with_label_values(&[OTHER_TENANTS]).get(), 5);
        assert_eq!(l.labelled(), 3, "vip, a, d");
    }
}
