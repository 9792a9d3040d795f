//! Counters and gauges of a Kinesis input: plain atomics the readers update
//! and the service exports (it owns the Prometheus names; suggested ones are
//! in each field's doc). No metrics library here, so this crate stays an
//! edge that any exporter can read. Shard ids are a bounded label set (a
//! stream has few shards), so per-shard series are safe.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

/// Input-wide counters plus one [`ShardMetrics`] per shard read.
#[derive(Debug, Default)]
pub struct InputMetrics {
    shards: Mutex<BTreeMap<String, Arc<ShardMetrics>>>,
    /// `ListShards` calls that succeeded (`…_list_shards_total`).
    pub list_shards: AtomicU64,
    /// `ListShards` calls that failed, throttled or not (`…_list_shards_errors_total`).
    pub list_shards_errors: AtomicU64,
    /// Checkpoint files written (`…_checkpoint_writes_total`).
    pub checkpoint_writes: AtomicU64,
    /// Checkpoint writes that failed (`…_checkpoint_write_failures_total`);
    /// the next write retries with the newer state.
    pub checkpoint_failures: AtomicU64,
}

/// One shard's counters.
#[derive(Debug)]
pub struct ShardMetrics {
    /// `MillisBehindLatest` of the last `GetRecords` (−1 until known)
    /// (`…_millis_behind_latest`, a gauge; export as seconds).
    pub millis_behind_latest: AtomicI64,
    /// Kinesis records read (`…_records_total`).
    pub records: AtomicU64,
    /// Payload bytes read (`…_bytes_total`).
    pub bytes: AtomicU64,
    /// `GetRecords` calls (`…_get_records_total`).
    pub get_records_calls: AtomicU64,
    /// Throttled calls: `ProvisionedThroughputExceededException`, KMS or
    /// other throttling (`…_throttles_total`).
    pub throttles: AtomicU64,
    /// `ExpiredIteratorException`s, each followed by a new iterator
    /// (`…_expired_iterators_total`).
    pub expired_iterators: AtomicU64,
    /// Other retried failures: timeouts, connection errors, 5xx
    /// (`…_transient_errors_total`).
    pub transient_errors: AtomicU64,
    /// KPL aggregates split (`…_kpl_aggregates_total`).
    pub kpl_aggregates: AtomicU64,
    /// User records taken out of them (`…_kpl_user_records_total`).
    pub kpl_user_records: AtomicU64,
    /// Records with the KPL magic but a bad checksum or body, passed on raw
    /// (`…_kpl_fallbacks_total`).
    pub kpl_fallbacks: AtomicU64,
    /// Records larger than `max_record_bytes`, still submitted
    /// (`…_oversize_records_total`).
    pub oversize_records: AtomicU64,
    /// Records read and not yet acknowledged (a gauge).
    pub in_flight: AtomicU64,
    /// Times this shard's checkpoint advanced (`…_checkpoint_advances_total`).
    pub checkpoint_advances: AtomicU64,
    /// The shard ended and every record of it was acknowledged.
    pub finished: AtomicBool,
}

impl Default for ShardMetrics {
    fn default() -> Self {
        ShardMetrics {
            millis_behind_latest: AtomicI64::new(-1),
            records: AtomicU64::new(0),
            bytes: AtomicU64::new(0),
            get_records_calls: AtomicU64::new(0),
            throttles: AtomicU64::new(0),
            expired_iterators: AtomicU64::new(0),
            transient_errors: AtomicU64::new(0),
            kpl_aggregates: AtomicU64::new(0),
            kpl_user_records: AtomicU64::new(0),
            kpl_fallbacks: AtomicU64::new(0),
            oversize_records: AtomicU64::new(0),
            in_flight: AtomicU64::new(0),
            checkpoint_advances: AtomicU64::new(0),
            finished: AtomicBool::new(false),
        }
    }
}

/// A point-in-time copy of one shard's metrics.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ShardSnapshot {
    pub millis_behind_latest: i64,
    pub records: u64,
    pub bytes: u64,
    pub get_records_calls: u64,
    pub throttles: u64,
    pub expired_iterators: u64,
    pub transient_errors: u64,
    pub kpl_aggregates: u64,
    pub kpl_user_records: u64,
    pub kpl_fallbacks: u64,
    pub oversize_records: u64,
    pub in_flight: u64,
    pub checkpoint_advances: u64,
    pub finished: bool,
}

impl ShardMetrics {
    pub fn snapshot(&self) -> ShardSnapshot {
        let g = |a: &AtomicU64| a.load(Ordering::Relaxed);
        ShardSnapshot {
            millis_behind_latest: self.millis_behind_latest.load(Ordering::Relaxed),
            records: g(&self.records),
            bytes: g(&self.bytes),
            get_records_calls: g(&self.get_records_calls),
            throttles: g(&self.throttles),
            expired_iterators: g(&self.expired_iterators),
            transient_errors: g(&self.transient_errors),
            kpl_aggregates: g(&self.kpl_aggregates),
            kpl_user_records: g(&self.kpl_user_records),
            kpl_fallbacks: g(&self.kpl_fallbacks),
            oversize_records: g(&self.oversize_records),
            in_flight: g(&self.in_flight),
            checkpoint_advances: g(&self.checkpoint_advances),
            finished: self.finished.load(Ordering::Relaxed),
        }
    }
}

impl InputMetrics {
    /// The metrics of `shard`, created on first use.
    pub fn shard(&self, shard: &str) -> Arc<ShardMetrics> {
        let mut m = self.shards.lock().unwrap_or_else(|e| e.into_inner());
        m.entry(shard.to_owned()).or_default().clone()
    }

    /// Every shard's metrics, by shard id.
    pub fn shards(&self) -> BTreeMap<String, ShardSnapshot> {
        let m = self.shards.lock().unwrap_or_else(|e| e.into_inner());
        m.iter().map(|(k, v)| (k.clone(), v.snapshot())).collect()
    }

    /// The sum over shards (`millis_behind_latest`: the largest).
    pub fn total(&self) -> ShardSnapshot {
        let mut t = ShardSnapshot {
            millis_behind_latest: -1,
            ..ShardSnapshot::default()
        };
        for s in self.shards().into_values() {
            t.millis_behind_latest = t.millis_behind_latest.max(s.millis_behind_latest);
            t.records += s.records;
            t.bytes += s.bytes;
            t.get_records_calls += s.get_records_calls;
            t.throttles += s.throttles;
            t.expired_iterators += s.expired_iterators;
            t.transient_errors += s.transient_errors;
            t.kpl_aggregates += s.kpl_aggregates;
            t.kpl_user_records += s.kpl_user_records;
            t.kpl_fallbacks += s.kpl_fallbacks;
            t.oversize_records += s.oversize_records;
            t.in_flight += s.in_flight;
            t.checkpoint_advances += s.checkpoint_advances;
        }
        t
    }
}

pub(crate) fn inc(a: &AtomicU64) {
    a.fetch_add(1, Ordering::Relaxed);
}

pub(crate) fn add(a: &AtomicU64, n: u64) {
    a.fetch_add(n, Ordering::Relaxed);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shards_are_created_once_and_summed() {
        let m = InputMetrics::default();
        inc(&m.shard("a").records);
        add(&m.shard("a").bytes, 10);
        inc(&m.shard("b").records);
        m.shard("b")
            .millis_behind_latest
            .store(7, Ordering::Relaxed);
        assert_eq!(m.shards().len(), 2);
        let t = m.total();
        assert_eq!((t.records, t.bytes, t.millis_behind_latest), (2, 10, 7));
        assert_eq!(m.shard("a").snapshot().millis_behind_latest, -1);
    }
}
