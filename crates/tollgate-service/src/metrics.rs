//! The service's Prometheus metrics, in one registry served on `/metrics`.
//!
//! Conventions: `tollgate_` prefix, base units, `_total` counters,
//! `_seconds` histograms. Labels are bounded: input names, reject/skip
//! reasons, detectors and severities come from configuration or closed
//! enums; Kafka partitions from the assignment. No label carries a tenant.

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
    pub tenants_resident: IntGauge,
    pub tenants_created: IntGauge,
    pub tenants_loaded: IntGauge,
    pub tenants_evicted: IntGauge,
    pub tenants_released: IntGauge,
    pub tenants_warming: IntGauge,
    pub model_bytes: IntGauge,
    pub snapshot_writes: IntCounter,
    pub snapshot_failures: IntCounter,
    /// Batches whose lines could not be appended to `service.scored_log`.
    pub scored_log_failures: IntCounter,
    /// Consumer lag (messages) per Kafka input, topic and partition.
    pub kafka_lag: IntGaugeVec,
    /// Kafka record timestamp → record fully processed, by input.
    pub kafka_end_to_end: HistogramVec,
    /// Kafka rebalances by input and kind (`assign`, `revoke`, `lost`).
    pub kafka_rebalances: IntGaugeVec,
    /// Alert sinks: updates delivered, per sink and target index.
    pub sink_delivered: IntGaugeVec,
    /// Alert sinks: failed delivery attempts (retried), per sink and target.
    pub sink_failures: IntGaugeVec,
    /// Alert sinks: entries waiting in the on-disk spool.
    pub spool_depth: IntGaugeVec,
    /// Alert sinks: spooled updates dropped by the spool's size cap.
    pub spool_dropped: IntGaugeVec,
    /// Kinesis: milliseconds behind the shard's tip, per input and shard.
    pub kinesis_behind: IntGaugeVec,
    /// Kinesis: throttled GetRecords calls per input and shard.
    pub kinesis_throttles: IntGaugeVec,
    /// Kinesis: KPL aggregates whose magic or MD5 did not check out (passed on raw).
    pub kinesis_kpl_fallbacks: IntGaugeVec,
    pub build_info: IntGaugeVec,
}

impl Metrics {
    pub fn new() -> Self {
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
            queue_depth: gauge_vec(
                r,
                "tollgate_worker_queue_batches",
                "Event batches waiting in each worker's queue.",
                &["worker"],
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
                "Periodic and shutdown snapshot rounds that saved every resident model.",
            ),
            snapshot_failures: counter(
                r,
                "tollgate_snapshot_failures_total",
                "Snapshot rounds in which a model could not be saved.",
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
            sink_delivered: gauge_vec(
                r,
                "tollgate_alert_sink_delivered_total",
                "Alert updates delivered by each sink target.",
                &["sink", "target"],
            ),
            sink_failures: gauge_vec(
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
            spool_dropped: gauge_vec(
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
            registry,
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
