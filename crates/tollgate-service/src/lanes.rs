//! Decode lanes: one Kafka input's records decoded on several threads.
//!
//! librdkafka hands a consumer's records over in one queue, read by one
//! task. Decoding there made that task the service's one serial stage:
//! 3.9 µs of its CPU per event against 1.4 µs on each of two workers
//! (`perf` per thread over `benches/load-kafka.sh`'s 1 M events), so no
//! number of cores could take an instance past what that one thread
//! decodes. Now the consumer task only copies each record (payload, key,
//! topic, partition, offset, headers) into a batch for its lane and moves
//! on — 1.4 µs per event —, and each lane is a thread with its own
//! [`Router`] that decodes, admits and routes to the workers as before.
//!
//! A partition is given a lane when its first record arrives (lanes in
//! turn) and keeps it, so a partition's records reach the workers in the
//! order they were read. The `Ack` travels with the copy: a record is done
//! when its events are, as on any path. If the workers are gone, a lane
//! keeps every `Ack` it holds or is sent (`mem::forget`) rather than
//! dropping it, so nothing it could not score is reported done, and the
//! sink reports [`Closed`].

use std::hash::BuildHasher;
use std::ops::Range;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use tollgate_events::{Ack, Closed, RecordMeta, RecordSink};

use crate::metrics::Metrics;
use crate::pipeline::Router;

/// Records a lane batch holds before it is sent (one channel operation and
/// at most one wake-up per batch).
const BATCH_RECORDS: usize = 64;
/// ... or bytes of records, whichever comes first.
const BATCH_BYTES: usize = 256 << 10;
/// Batches waiting per lane before the consumer waits (backpressure; the
/// workers' queues behind the lanes are the real buffer).
const LANE_QUEUE: usize = 16;

/// A [`RecordSink`] that decodes on `n` threads; see the module docs.
pub struct DecodeLanes {
    lanes: Vec<Lane>,
    assigned: Assigned,
    /// Set by a lane whose router found the pipeline closed.
    closed: Arc<AtomicBool>,
}

/// Which lane each partition goes to: partitions are given lanes in turn
/// as they first appear, and keep theirs. (`hash mod lanes` would leave a
/// lane idle whenever two of few partitions collide: two partitions on
/// two lanes share one half the time.)
#[derive(Default)]
struct Assigned {
    /// By a hash of (topic, partition); a 64-bit collision would only make
    /// two partitions share a lane, which keeps each one's order. (The
    /// engine's hasher: the key is a hash already, SipHash was a second
    /// full hash per record.)
    lanes: std::collections::HashMap<u64, usize, tollgate_detect::hash::StableBuild>,
    next: usize,
}

impl Assigned {
    fn lane(&mut self, topic: Option<&str>, partition: Option<&str>, n: usize) -> usize {
        let key = tollgate_detect::hash::StableBuild.hash_one((topic, partition));
        *self.lanes.entry(key).or_insert_with(|| {
            self.next += 1;
            (self.next - 1) % n
        })
    }
}

struct Lane {
    tx: flume::Sender<RawBatch>,
    /// Emptied batches coming back from the lane, for reuse (a buffer
    /// already allocated, and likely still cached).
    free: flume::Receiver<RawBatch>,
    pending: RawBatch,
}

/// Copied records: their bytes in one buffer, their text (input, topic,
/// partition, offset, header names) in another, and where each piece is.
/// The text is kept in a `String` so that the lane reads it back without
/// checking its UTF-8 again (`str::from_utf8` on four fields a record was
/// 1.6 % of the lane's samples, `perf`, 17th session).
#[derive(Default)]
struct RawBatch {
    bytes: Vec<u8>,
    text: String,
    records: Vec<RawRecord>,
}

struct RawRecord {
    /// In `bytes`.
    payload: Range<usize>,
    /// In `text`.
    input: Option<Range<usize>>,
    topic: Option<Range<usize>>,
    partition: Option<Range<usize>>,
    offset: Option<Range<usize>>,
    /// In `bytes`.
    key: Option<Range<usize>>,
    /// (name in `text`, value in `bytes`).
    headers: Vec<(Range<usize>, Range<usize>)>,
    ack: Ack,
}

impl RawBatch {
    fn new() -> Self {
        RawBatch {
            bytes: Vec::with_capacity(BATCH_BYTES),
            text: String::with_capacity(BATCH_RECORDS * 64),
            records: Vec::with_capacity(BATCH_RECORDS),
        }
    }

    fn put(&mut self, b: &[u8]) -> Range<usize> {
        let start = self.bytes.len();
        self.bytes.extend_from_slice(b);
        start..self.bytes.len()
    }

    fn put_text(&mut self, s: &str) -> Range<usize> {
        let start = self.text.len();
        self.text.push_str(s);
        start..self.text.len()
    }

    /// Copies one record in; `true` when the batch is full.
    fn push(&mut self, payload: &[u8], meta: &RecordMeta<'_>, ack: Ack) -> bool {
        let record = RawRecord {
            payload: self.put(payload),
            input: meta.input.map(|s| self.put_text(s)),
            topic: meta.topic.map(|s| self.put_text(s)),
            partition: meta.partition.map(|s| self.put_text(s)),
            offset: meta.offset.map(|s| self.put_text(s)),
            key: meta.key.map(|k| self.put(k)),
            headers: meta
                .headers
                .iter()
                .map(|(k, v)| (self.put_text(k), self.put(v)))
                .collect(),
            ack,
        };
        self.records.push(record);
        self.records.len() >= BATCH_RECORDS || self.bytes.len() >= BATCH_BYTES
    }

    fn is_empty(&self) -> bool {
        self.records.is_empty()
    }

    /// Keeps every record's `Ack` unreleased (see the module docs).
    fn abandon(self) {
        for r in self.records {
            std::mem::forget(r.ack);
        }
    }
}

impl DecodeLanes {
    /// Starts `n` (at least one) lane threads, each with a router made by
    /// `router` (routers of one input: they share its admission buckets).
    pub fn start(
        input: &str,
        n: usize,
        metrics: &Metrics,
        mut router: impl FnMut() -> Router,
    ) -> std::io::Result<DecodeLanes> {
        let closed = Arc::new(AtomicBool::new(false));
        let mut lanes = Vec::new();
        for i in 0..n.max(1) {
            let (tx, rx) = flume::bounded::<RawBatch>(LANE_QUEUE);
            let (free_tx, free) = flume::bounded::<RawBatch>(LANE_QUEUE + 1);
            let router = router();
            let closed = closed.clone();
            let depth = metrics
                .lane_depth
                .with_label_values(&[input, &i.to_string()]);
            std::thread::Builder::new()
                .name(format!("tollgate-dec-{i}"))
                .spawn(move || run_lane(&rx, &free_tx, router, &depth, &closed))
                .map_err(|e| std::io::Error::other(format!("input {input:?}: decode lane: {e}")))?;
            lanes.push(Lane {
                tx,
                free,
                pending: RawBatch::new(),
            });
        }
        Ok(DecodeLanes {
            lanes,
            assigned: Assigned::default(),
            closed,
        })
    }

    async fn send(&mut self, lane: usize) -> Result<(), Closed> {
        let l = &mut self.lanes[lane];
        let next = l.free.try_recv().unwrap_or_else(|_| RawBatch::new());
        let batch = std::mem::replace(&mut l.pending, next);
        if let Err(flume::SendError(batch)) = l.tx.send_async(batch).await {
            batch.abandon();
            self.closed.store(true, Ordering::Release);
            return Err(Closed);
        }
        Ok(())
    }
}

impl RecordSink for DecodeLanes {
    fn submit(
        &mut self,
        payload: &[u8],
        meta: &RecordMeta<'_>,
        ack: Ack,
    ) -> impl std::future::Future<Output = Result<(), Closed>> + Send {
        let full = if self.closed.load(Ordering::Acquire) {
            std::mem::forget(ack);
            Err(Closed)
        } else {
            let lane = self
                .assigned
                .lane(meta.topic, meta.partition, self.lanes.len());
            Ok(self.lanes[lane]
                .pending
                .push(payload, meta, ack)
                .then_some(lane))
        };
        async move {
            match full? {
                Some(lane) => self.send(lane).await,
                None => Ok(()),
            }
        }
    }

    async fn flush(&mut self) -> Result<(), Closed> {
        for lane in 0..self.lanes.len() {
            if !self.lanes[lane].pending.is_empty() {
                self.send(lane).await?;
            }
        }
        if self.closed.load(Ordering::Acquire) {
            return Err(Closed);
        }
        Ok(())
    }
}

impl Drop for DecodeLanes {
    /// Sends what is still batched on (its records are scored before they
    /// are acknowledged); the lanes end once they have routed it.
    fn drop(&mut self) {
        for l in &mut self.lanes {
            let batch = std::mem::take(&mut l.pending);
            if batch.is_empty() {
                continue;
            }
            if let Err(flume::SendError(batch)) = l.tx.send(batch) {
                batch.abandon();
            }
        }
    }
}

/// A lane thread: decodes and routes its batches until the sink is dropped;
/// passes on what its router batched whenever it has nothing queued.
fn run_lane(
    rx: &flume::Receiver<RawBatch>,
    free: &flume::Sender<RawBatch>,
    mut router: Router,
    depth: &prometheus::IntGauge,
    closed: &AtomicBool,
) {
    loop {
        let batch = match rx.try_recv() {
            Ok(b) => b,
            Err(flume::TryRecvError::Empty) => {
                if router.flush_blocking().is_err() {
                    break;
                }
                match rx.recv() {
                    Ok(b) => b,
                    // The sink is gone; dropping the router sends the rest.
                    Err(flume::RecvError::Disconnected) => return,
                }
            }
            Err(flume::TryRecvError::Disconnected) => return,
        };
        depth.set(rx.len() as i64);
        match route(&mut router, batch) {
            // (A full return queue means enough spares: this one is dropped.)
            Ok(empty) => _ = free.try_send(empty),
            Err(Closed) => break,
        }
    }
    // The workers are gone: nothing more can be scored.
    closed.store(true, Ordering::Release);
    for batch in rx.iter() {
        batch.abandon();
    }
}

/// Hands one batch's records to the router and returns the batch emptied;
/// on [`Closed`], keeps the unsent records' `Ack`s unreleased.
fn route(router: &mut Router, mut batch: RawBatch) -> Result<RawBatch, Closed> {
    let RawBatch {
        bytes,
        text: strings,
        records,
    } = &mut batch;
    let (bytes, strings) = (&*bytes, &*strings);
    let text = |r: &Option<Range<usize>>| r.as_ref().map(|r| &strings[r.clone()]);
    let mut headers: Vec<(&str, &[u8])> = Vec::new();
    let mut records = records.drain(..);
    while let Some(r) = records.next() {
        headers.clear();
        headers.extend(
            r.headers
                .iter()
                .map(|(k, v)| (&strings[k.clone()], &bytes[v.clone()])),
        );
        let meta = RecordMeta {
            input: text(&r.input),
            topic: text(&r.topic),
            partition: text(&r.partition),
            offset: text(&r.offset),
            key: r.key.as_ref().map(|k| &bytes[k.clone()]),
            headers: &headers,
        };
        if router
            .submit_blocking(&bytes[r.payload.clone()], &meta, r.ack)
            .is_err()
        {
            for rest in records {
                std::mem::forget(rest.ack);
            }
            return Err(Closed);
        }
    }
    drop(records);
    batch.bytes.clear();
    batch.text.clear();
    Ok(batch)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pipeline::tests::{apigw_line, apigw_pipeline};
    use crate::pipeline::Pipeline;
    use std::collections::{BTreeMap, HashMap};
    use std::sync::atomic::AtomicUsize;

    /// A pipeline whose tenant is a record's `t` header, or else its key.
    fn pipeline(dir: &std::path::Path, service: &str) -> (Pipeline, Router) {
        apigw_pipeline(
            dir,
            service,
            r#"{ type = "first_of", rules = [{ type = "kafka_header", name = "t" }, { type = "kafka_key" }] }"#,
        )
    }

    /// Record `i`: partition `i % 4`, offset `i / 4`; tenant `h{i % 2}` in
    /// a header for every third record, else `k{i % 5}` as the key.
    fn tenant_of(i: usize) -> String {
        if i.is_multiple_of(3) {
            format!("h{}", i % 2)
        } else {
            format!("k{}", i % 5)
        }
    }

    fn block_on<F: std::future::Future>(f: F) -> F::Output {
        tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("runtime")
            .block_on(f)
    }

    /// Through three lanes: every record is scored once, under the tenant
    /// its key or header names; it is acknowledged only once its event is
    /// in the scored log; and each tenant's events of a partition are
    /// scored in the partition's order.
    #[test]
    fn lanes_score_every_record_in_partition_order_before_acknowledging_it() {
        let dir = tempfile::tempdir().expect("temp dir");
        let log = dir.path().join("scored.ndjson");
        let service = format!("workers = 2\nscored_log = {:?}", log.display().to_string());
        let (pipeline, proto) = pipeline(dir.path(), &service);
        let mut lanes =
            DecodeLanes::start("in", 3, &pipeline.metrics, || proto.fresh()).expect("lanes");
        drop(proto);
        let (tx, rx) = std::sync::mpsc::channel();
        const N: usize = 1000;
        block_on(async {
            for i in 0..N {
                let line = apigw_line(i);
                let (tx, log) = (tx.clone(), log.clone());
                let ack = Ack::new(move || {
                    let text = std::fs::read_to_string(&log).unwrap_or_default();
                    let _ = tx.send((i, text.contains(&format!(r#""id":"r{i}""#))));
                });
                let (partition, offset) = ((i % 4).to_string(), (i / 4).to_string());
                let tenant = tenant_of(i);
                let header = [("t", tenant.as_bytes())];
                let meta = RecordMeta {
                    input: Some("in"),
                    topic: Some("events"),
                    partition: Some(&partition),
                    offset: Some(&offset),
                    key: (!i.is_multiple_of(3)).then_some(tenant.as_bytes()),
                    headers: if i.is_multiple_of(3) { &header } else { &[] },
                };
                lanes
                    .submit(line.as_bytes(), &meta, ack)
                    .await
                    .expect("submit");
            }
            lanes.flush().await.expect("flush");
        });
        drop((lanes, tx));
        let metrics = pipeline.metrics.clone();
        pipeline.finish().expect("finish");
        let text = metrics.render();
        for lane in 0..3 {
            let series =
                format!(r#"tollgate_decode_lane_queue_batches{{input="in",lane="{lane}"}}"#);
            assert!(text.contains(&series), "{series} exported");
        }
        let mut acked: Vec<(usize, bool)> = rx.iter().collect();
        acked.sort_unstable();
        assert_eq!(acked.len(), N, "every record acknowledged once");
        assert!(acked.iter().enumerate().all(|(i, (j, _))| i == *j));
        let early: Vec<usize> = acked
            .iter()
            .filter(|(_, ok)| !ok)
            .map(|(i, _)| *i)
            .collect();
        assert!(early.is_empty(), "acknowledged before logged: {early:?}");
        let mut last: HashMap<(String, String), i64> = HashMap::new();
        let mut tenants: BTreeMap<String, usize> = BTreeMap::new();
        for line in std::fs::read_to_string(&log).expect("scored log").lines() {
            let v: serde_json::Value = serde_json::from_str(line).expect("JSON line");
            let id: usize = v["id"].as_str().expect("id")[1..].parse().expect("r<i>");
            let tenant = v["tenant"].as_str().expect("tenant").to_owned();
            assert_eq!(tenant, tenant_of(id), "record {id}'s tenant");
            *tenants.entry(tenant.clone()).or_default() += 1;
            let partition = v["partition"].as_str().expect("partition").to_owned();
            assert_eq!(partition, (id % 4).to_string());
            let offset: i64 = v["offset"]
                .as_str()
                .expect("offset")
                .parse()
                .expect("offset");
            let prev = last.insert((tenant, partition), offset);
            assert!(
                prev.is_none_or(|p| p < offset),
                "record {id} scored out of order"
            );
        }
        assert_eq!(tenants.values().sum::<usize>(), N, "each event scored once");
        assert_eq!(tenants.len(), 7, "{tenants:?}");
    }

    /// Partitions get lanes in turn and keep them.
    #[test]
    fn partitions_take_lanes_in_turn_and_keep_them() {
        let mut a = Assigned::default();
        let first: Vec<usize> = ["0", "1", "2", "3", "4"]
            .iter()
            .map(|p| a.lane(Some("t"), Some(p), 4))
            .collect();
        assert_eq!(first, [0, 1, 2, 3, 0]);
        assert_eq!(
            a.lane(Some("u"), Some("0"), 4),
            1,
            "another topic's partition 0"
        );
        for (p, lane) in ["3", "0", "4"].iter().zip([3, 0, 0]) {
            assert_eq!(a.lane(Some("t"), Some(p), 4), lane, "partition {p} kept");
        }
    }

    /// When the workers are gone, the lanes report it and release nothing:
    /// a dropped `Ack` would let its offset be committed unscored.
    #[test]
    fn lanes_release_nothing_when_the_workers_are_gone() {
        let dir = tempfile::tempdir().expect("temp dir");
        let (pipeline, mut proto) = pipeline(dir.path(), "workers = 1");
        proto.lose_workers();
        let mut lanes =
            DecodeLanes::start("in", 1, &pipeline.metrics, || proto.fresh()).expect("lanes");
        drop(proto);
        let acked = Arc::new(AtomicUsize::new(0));
        let closed_after = block_on(async {
            for i in 0..100_000 {
                let n = acked.clone();
                let ack = Ack::new(move || {
                    n.fetch_add(1, Ordering::SeqCst);
                });
                let meta = RecordMeta {
                    key: Some(b"acme"),
                    ..Default::default()
                };
                let line = apigw_line(i);
                if lanes.submit(line.as_bytes(), &meta, ack).await.is_err()
                    || lanes.flush().await.is_err()
                {
                    return Some(i);
                }
            }
            None
        });
        assert!(closed_after.is_some(), "the closed pipeline is reported");
        drop(lanes);
        pipeline.finish().expect("finish");
        assert_eq!(acked.load(Ordering::SeqCst), 0);
    }
}
