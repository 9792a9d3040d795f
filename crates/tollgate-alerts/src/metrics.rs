//! The dispatcher's counters and gauges as plain atomics, one
//! [`LaneMetrics`] per sink target (an Alertmanager of an HA pair is one
//! target; every other sink has one). The service reads them at scrape time
//! and exports them under its own names; this crate names no metrics
//! library. Label values the service should use are `sink` (a configured
//! name, a bounded set), `kind` and `target` (an index, never a URL).

use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

/// One sink target's counters (`_total`-style, only ever increase) and
/// gauges.
#[derive(Debug, Default)]
pub struct LaneMetrics {
    /// Updates the sink accepted (counter).
    pub delivered: AtomicU64,
    /// Delivery attempts that failed and will be retried (counter).
    pub failed_attempts: AtomicU64,
    /// Attempts made after a failure (counter).
    pub retries: AtomicU64,
    /// Updates the sink refused for good (HTTP 4xx other than 408/429, a
    /// tenant without a PagerDuty routing key): dropped, logged (counter).
    pub rejected: AtomicU64,
    /// Updates written to the spool (counter).
    pub spooled: AtomicU64,
    /// Entries waiting in the spool (gauge).
    pub spool_entries: AtomicU64,
    /// Bytes of the entries waiting in the spool (gauge).
    pub spool_bytes: AtomicU64,
    /// Oldest spool entries dropped because of `spool_max_bytes` (counter).
    pub dropped_by_cap: AtomicU64,
    /// Updates skipped as no state change for this sink: a `Fired` of an
    /// episode already open, a `Resolved` of one it never fired (counter).
    pub skipped: AtomicU64,
    /// Periodic re-sends of active alerts (Alertmanager) (counter).
    pub resends: AtomicU64,
    /// Unix time in milliseconds of the last failure; 0 = never (gauge).
    pub last_error_unix_ms: AtomicI64,
}

impl LaneMetrics {
    pub(crate) fn add(c: &AtomicU64, n: u64) {
        c.fetch_add(n, Ordering::Relaxed);
    }

    pub(crate) fn error_now(&self) {
        self.last_error_unix_ms
            .store(chrono::Utc::now().timestamp_millis(), Ordering::Relaxed);
    }
}

/// Which sink target a [`LaneMetrics`] belongs to.
#[derive(Debug, Clone)]
pub struct LaneInfo {
    /// The configured sink name.
    pub sink: String,
    /// `alertmanager`, `pagerduty`, `webhook`, `file` or `kafka`.
    pub kind: &'static str,
    /// Index of the target within the sink (Alertmanager URLs), else 0.
    pub target: usize,
    pub metrics: Arc<LaneMetrics>,
}

/// Dispatcher-wide counters.
#[derive(Debug, Default)]
pub struct DispatchMetrics {
    /// Updates given to `send` (counter).
    pub accepted: AtomicU64,
    /// Updates no route (and no default sink) took (counter).
    pub unrouted: AtomicU64,
}

/// The handle the service keeps to read the dispatcher's metrics: create it,
/// pass a clone to [`crate::Dispatcher::start`], read it at scrape time.
#[derive(Debug, Clone, Default)]
pub struct AlertsMetrics {
    inner: Arc<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    dispatch: DispatchMetrics,
    lanes: Mutex<Vec<LaneInfo>>,
}

impl AlertsMetrics {
    pub fn new() -> AlertsMetrics {
        AlertsMetrics::default()
    }

    pub fn dispatch(&self) -> &DispatchMetrics {
        &self.inner.dispatch
    }

    /// Every sink target's metrics, in configuration order.
    pub fn lanes(&self) -> Vec<LaneInfo> {
        self.inner.lanes.lock().expect("metrics lock").clone()
    }

    /// The metrics of one sink target, if it exists.
    pub fn lane(&self, sink: &str, target: usize) -> Option<Arc<LaneMetrics>> {
        self.inner
            .lanes
            .lock()
            .expect("metrics lock")
            .iter()
            .find(|l| l.sink == sink && l.target == target)
            .map(|l| l.metrics.clone())
    }

    /// The metrics of a sink target, created on first use (a dispatcher
    /// restarted with the same handle keeps counting where it left off).
    pub(crate) fn register(
        &self,
        sink: &str,
        kind: &'static str,
        target: usize,
    ) -> Arc<LaneMetrics> {
        let mut lanes = self.inner.lanes.lock().expect("metrics lock");
        if let Some(l) = lanes.iter().find(|l| l.sink == sink && l.target == target) {
            return l.metrics.clone();
        }
        let metrics = Arc::new(LaneMetrics::default());
        lanes.push(LaneInfo {
            sink: sink.to_string(),
            kind,
            target,
            metrics: metrics.clone(),
        });
        metrics
    }
}
