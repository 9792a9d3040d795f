//! Tollgate's Kafka input: a consumer-group member (rdkafka's
//! `StreamConsumer`) that hands each record to a [`RecordSink`] as bytes plus
//! a [`RecordMeta`] (topic, partition, offset, key, headers) and an [`Ack`],
//! and stores the record's offset only once the `Ack` reports the record
//! done — all of its events scored and their alerts handed on — and every
//! earlier record of its partition too. Acknowledgements arrive from the
//! pipeline's threads in any order; [`OffsetLedger`] turns them into the
//! offset that may be stored. Auto-commit stays on (`enable.auto.commit=true`)
//! but auto-store is off (`enable.auto.offset.store=false`), so librdkafka
//! commits, in the background, only offsets this crate stored: a crash
//! re-delivers records, it never skips one (at-least-once).
//!
//! Rebalances: when partitions are revoked, the rebalance callback waits (up
//! to `revoke_timeout`) until the revoked partitions' records in flight are
//! done, stores and commits their offsets synchronously, then calls the
//! caller's [`RevokeHook`] — the service snapshots and releases the tenants it
//! saw on those partitions, so their models follow the partitions to the
//! next owner — before the revocation completes. When the assignment was
//! *lost* (session timeout) nothing is committed and the hook is told so: the
//! partitions may already belong to someone else.
//!
//! Layout: [`KafkaInputConfig`] (librdkafka properties pass through from a
//! map; the offset properties are reserved) → [`KafkaInputConfig::build`]
//! (fallible set-up, subscribes) → [`KafkaInput::run`] (the only place Kafka
//! records enter Tollgate). Consumer lag per partition comes from
//! librdkafka's statistics ([`KafkaInput::lag`]).

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext, Rebalance};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{Headers, Message};
use rdkafka::statistics::Statistics;
use rdkafka::ClientContext;
use tollgate_events::{Ack, RecordMeta, RecordSink};

pub use rdkafka;

/// Why the input stopped with an error, grouped by what the caller does next.
#[derive(Debug, thiserror::Error)]
pub enum KafkaInputError {
    /// The configuration is wrong: fix it (nothing to retry).
    #[error("kafka input configuration: {0}")]
    Config(String),
    /// librdkafka refused to create the consumer or to subscribe.
    #[error("kafka consumer set-up: {0}")]
    Setup(#[source] KafkaError),
    /// A fatal consumer error while running: restart the input (records after
    /// the last committed offset are delivered again).
    #[error("kafka consumer: {0}")]
    Consume(#[source] KafkaError),
}

/// Properties the input sets itself; a pass-through map may not override them.
pub const RESERVED_PROPERTIES: [&str; 5] = [
    "enable.auto.offset.store",
    "enable.auto.commit",
    "group.id",
    "bootstrap.servers",
    "queued.max.messages.kbytes",
];

/// One Kafka input: where to read and how librdkafka is tuned.
#[derive(Debug, Clone)]
pub struct KafkaInputConfig {
    /// `bootstrap.servers`.
    pub bootstrap_servers: String,
    /// Topics to subscribe to.
    pub topics: Vec<String>,
    /// Consumer group: the members share the partitions and the committed offsets.
    pub group_id: String,
    /// `queued.max.messages.kbytes`: the prefetch queue's size per partition,
    /// which bounds memory when processing is slower than fetching.
    pub queued_max_messages_kbytes: u32,
    /// How long a revocation waits for the revoked partitions' records in
    /// flight before it gives up on them (they are then re-read by the next
    /// owner: at-least-once still holds).
    pub revoke_timeout: Duration,
    /// Further librdkafka properties (`auto.offset.reset`,
    /// `session.timeout.ms`, security settings, …), passed through as given.
    pub properties: BTreeMap<String, String>,
    /// Observes, per record, the seconds from its Kafka timestamp (the
    /// producer's create time, or the broker's log-append time) to the
    /// moment it was fully processed (its `Ack` released).
    pub end_to_end: Option<prometheus::Histogram>,
    /// Whether records' headers are handed to the sink. librdkafka parses a
    /// message's headers (into an allocated list) when asked for them, which
    /// cost ≈ 5 % of the service's CPU on the load benchmark: an input whose
    /// tenant rule reads no header turns this off.
    pub read_headers: bool,
}

impl KafkaInputConfig {
    pub fn new(bootstrap_servers: &str, topics: &[&str], group_id: &str) -> Self {
        KafkaInputConfig {
            bootstrap_servers: bootstrap_servers.to_owned(),
            topics: topics.iter().map(|t| (*t).to_owned()).collect(),
            group_id: group_id.to_owned(),
            queued_max_messages_kbytes: 16 * 1024,
            revoke_timeout: Duration::from_secs(30),
            properties: BTreeMap::new(),
            end_to_end: None,
            read_headers: true,
        }
    }

    /// Every problem with the configuration, as sentences.
    pub fn problems(&self) -> Vec<String> {
        let mut problems = Vec::new();
        if self.bootstrap_servers.trim().is_empty() {
            problems.push("bootstrap_servers must not be empty".to_owned());
        }
        if self.topics.is_empty() {
            problems.push("topics must name at least one topic".to_owned());
        }
        if self.group_id.is_empty() {
            problems.push("group_id must not be empty".to_owned());
        }
        if self.queued_max_messages_kbytes == 0 {
            problems.push("queued_max_messages_kbytes must be positive".to_owned());
        }
        for k in self.properties.keys() {
            if RESERVED_PROPERTIES.contains(&k.as_str()) {
                problems.push(format!("property {k:?} is set by the input itself"));
            }
        }
        problems
    }

    /// The librdkafka client configuration, or every problem at once.
    pub fn client_config(&self) -> Result<ClientConfig, KafkaInputError> {
        let problems = self.problems();
        if !problems.is_empty() {
            return Err(KafkaInputError::Config(problems.join("; ")));
        }
        let mut c = ClientConfig::new();
        c.set("auto.offset.reset", "earliest");
        c.set("statistics.interval.ms", "5000");
        // When the prefetch queue is over `queued.max.messages.kbytes` (or
        // `queued.min.messages`), librdkafka postpones the partition's next
        // fetch by this much; its default of 1 s leaves the consumer idle
        // whenever processing, not the broker, is the bottleneck (measured:
        // 28,000 records/s at 1 s, 350,000 at 10 ms against the same broker).
        c.set("fetch.queue.backoff.ms", "10");
        for (k, v) in &self.properties {
            c.set(k, v);
        }
        c.set("bootstrap.servers", &self.bootstrap_servers)
            .set("group.id", &self.group_id)
            .set("enable.auto.commit", "true")
            .set("enable.auto.offset.store", "false")
            .set(
                "queued.max.messages.kbytes",
                self.queued_max_messages_kbytes.to_string(),
            );
        Ok(c)
    }

    /// Creates the consumer and subscribes; fails on any configuration or
    /// client error, before a record is read. Call it inside a Tokio runtime
    /// (the stream consumer spawns a task on it). `on_revoke` runs inside
    /// every revocation (see the crate docs).
    pub fn build(&self, on_revoke: RevokeHook) -> Result<KafkaInput, KafkaInputError> {
        let shared = Arc::new(Shared::default());
        let context = InputContext {
            shared: shared.clone(),
            on_revoke,
            revoke_timeout: self.revoke_timeout,
        };
        let consumer: rdkafka::consumer::StreamConsumer<InputContext> = self
            .client_config()?
            .create_with_context(context)
            .map_err(KafkaInputError::Setup)?;
        let topics: Vec<&str> = self.topics.iter().map(String::as_str).collect();
        consumer
            .subscribe(&topics)
            .map_err(KafkaInputError::Setup)?;
        Ok(KafkaInput {
            consumer,
            shared,
            topics: Vec::new(),
            end_to_end: self.end_to_end.clone(),
            read_headers: self.read_headers,
        })
    }
}

/// Called inside a revocation, after the revoked partitions' records were
/// processed and their offsets committed: `(partitions, lost)`. `lost` means
/// the assignment was lost rather than handed over (nothing was committed;
/// another member may own the partitions already).
pub type RevokeHook = Box<dyn Fn(&[(String, i32)], bool) + Send + Sync>;

/// A hook that does nothing.
pub fn no_revoke_hook() -> RevokeHook {
    Box::new(|_, _| {})
}

/// Counters the input and its callbacks update.
#[derive(Debug, Default)]
pub struct InputCounters {
    /// Records handed to the sink.
    pub records: AtomicU64,
    /// Records without a payload (tombstones), passed over and stored.
    pub empty: AtomicU64,
    /// Records acknowledged by the pipeline.
    pub acked: AtomicU64,
    /// Partition assignments received.
    pub assignments: AtomicU64,
    /// Partition revocations received.
    pub revocations: AtomicU64,
    /// Revocations of a lost assignment (nothing committed).
    pub lost_assignments: AtomicU64,
    /// Revocations that gave up waiting for records in flight.
    pub revoke_timeouts: AtomicU64,
    /// Offset commits that librdkafka reported as failed.
    pub commit_errors: AtomicU64,
    /// Transient consumer errors (librdkafka retries by itself).
    pub transient_errors: AtomicU64,
}

/// State shared between the input, the acknowledgements (pipeline threads)
/// and the rebalance callback.
#[derive(Default)]
struct Shared {
    state: Mutex<LedgerState>,
    /// Signalled when a record is acknowledged while a revocation waits on
    /// it (`revoking` > 0): a wake-up per record otherwise costs a system call.
    acked: Condvar,
    /// Revocations waiting on `acked`. Set before the waiter takes the lock,
    /// read by an acknowledgement after it released it, so no wake-up is lost.
    revoking: std::sync::atomic::AtomicUsize,
    /// Wakes the input to store newly storable offsets.
    wake: tokio::sync::Notify,
    /// Set by acknowledgements that made an offset storable; the one that
    /// sets it wakes the input (`wake`), later ones need not until the input
    /// clears it.
    has_storable: std::sync::atomic::AtomicBool,
    counters: InputCounters,
    /// Consumer lag per (topic, partition), from librdkafka's statistics.
    lag: Mutex<BTreeMap<(String, i32), i64>>,
}

#[derive(Default)]
struct LedgerState {
    ledger: OffsetLedger,
    /// (topic, partition, next offset to read) ready to be stored.
    storable: Vec<(Arc<str>, i32, i64)>,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, LedgerState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Stores every offset that became storable; the caller holds the lock.
    fn store_ready<C: Consumer<InputContext>>(st: &mut LedgerState, consumer: &C) {
        for (t, p, next) in st.storable.drain(..) {
            // librdkafka's `rd_kafka_offset_store` stores `offset + 1` (the
            // next offset to read), so pass the last processed one. Fails
            // only for a partition no longer assigned: its new owner re-reads
            // from the last commit.
            let _ = consumer.store_offset(&t, p, next - 1);
        }
    }
}

/// librdkafka callbacks: rebalances (see the crate docs), commit failures,
/// statistics (consumer lag).
pub struct InputContext {
    shared: Arc<Shared>,
    on_revoke: RevokeHook,
    revoke_timeout: Duration,
}

impl ClientContext for InputContext {
    fn stats(&self, stats: Statistics) {
        let mut lag = self.shared.lag.lock().unwrap_or_else(|e| e.into_inner());
        for (topic, t) in &stats.topics {
            for (id, p) in &t.partitions {
                // -1 is librdkafka's "internal UA" partition and "unknown"
                // lag. A partition no longer assigned (not `desired`) stays
                // in the statistics with its last lag: drop it, another
                // member reports it now.
                if *id < 0 {
                    continue;
                }
                let key = (topic.clone(), *id);
                if p.desired && p.consumer_lag >= 0 {
                    lag.insert(key, p.consumer_lag);
                } else {
                    lag.remove(&key);
                }
            }
        }
    }
}

impl ConsumerContext for InputContext {
    fn pre_rebalance(&self, consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        let c = &self.shared.counters;
        match rebalance {
            Rebalance::Assign(_) => {
                c.assignments.fetch_add(1, Ordering::Relaxed);
            }
            Rebalance::Revoke(tpl) => {
                c.revocations.fetch_add(1, Ordering::Relaxed);
                let parts: Vec<(String, i32)> = tpl
                    .elements()
                    .iter()
                    .map(|e| (e.topic().to_owned(), e.partition()))
                    .collect();
                let lost = consumer.assignment_lost();
                if lost {
                    c.lost_assignments.fetch_add(1, Ordering::Relaxed);
                }
                let deadline = Instant::now() + self.revoke_timeout;
                self.shared.revoking.fetch_add(1, Ordering::SeqCst);
                let mut st = self.shared.lock();
                while !lost && parts.iter().any(|(t, p)| st.ledger.in_flight(t, *p) > 0) {
                    let left = deadline.saturating_duration_since(Instant::now());
                    if left.is_zero() {
                        c.revoke_timeouts.fetch_add(1, Ordering::Relaxed);
                        break;
                    }
                    st = self
                        .shared
                        .acked
                        .wait_timeout(st, left)
                        .unwrap_or_else(|e| e.into_inner())
                        .0;
                }
                self.shared.revoking.fetch_sub(1, Ordering::SeqCst);
                if !lost {
                    Shared::store_ready(&mut st, consumer);
                }
                for (t, p) in &parts {
                    st.ledger.forget(t, *p);
                }
                st.storable
                    .retain(|(t, p, _)| !parts.iter().any(|(rt, rp)| **t == **rt && p == rp));
                drop(st);
                if !lost {
                    match consumer.commit_consumer_state(CommitMode::Sync) {
                        Err(e) if e.rdkafka_error_code() != Some(RDKafkaErrorCode::NoOffset) => {
                            c.commit_errors.fetch_add(1, Ordering::Relaxed);
                        }
                        _ => {}
                    }
                }
                (self.on_revoke)(&parts, lost);
                let mut lag = self.shared.lag.lock().unwrap_or_else(|e| e.into_inner());
                for p in &parts {
                    lag.remove(p);
                }
            }
            Rebalance::Error(_) => {}
        }
    }

    fn commit_callback(
        &self,
        result: rdkafka::error::KafkaResult<()>,
        _: &rdkafka::TopicPartitionList,
    ) {
        // "No offset" only means nothing new was stored since the last commit.
        if let Err(e) = result {
            if e.rdkafka_error_code() != Some(RDKafkaErrorCode::NoOffset) {
                self.shared
                    .counters
                    .commit_errors
                    .fetch_add(1, Ordering::Relaxed);
            }
        }
    }
}

/// A running Kafka input.
pub struct KafkaInput {
    /// The group member; its background auto-commit writes stored offsets.
    consumer: rdkafka::consumer::StreamConsumer<InputContext>,
    shared: Arc<Shared>,
    /// Interned topic names (one `Arc` per topic, cloned into each `Ack`).
    topics: Vec<Arc<str>>,
    end_to_end: Option<prometheus::Histogram>,
    /// [`KafkaInputConfig::read_headers`].
    read_headers: bool,
}

impl KafkaInput {
    /// Consumes until `shutdown` resolves, handing each record to `sink`.
    /// Then it stops fetching, waits up to `drain_timeout` for the records
    /// in flight to be acknowledged, stores and commits their offsets
    /// synchronously, and returns.
    ///
    /// The one invariant: an offset is stored only after the record's `Ack`
    /// was released and every earlier record of its partition's was too.
    pub async fn run<S, K>(
        &mut self,
        input_name: &str,
        shutdown: S,
        drain_timeout: Duration,
        sink: &mut K,
    ) -> Result<(), KafkaInputError>
    where
        S: Future<Output = ()>,
        K: RecordSink,
    {
        let mut shutdown = std::pin::pin!(shutdown);
        let result = loop {
            if self.shared.has_storable.swap(false, Ordering::AcqRel) {
                Shared::store_ready(&mut self.shared.lock(), &self.consumer);
            }
            // A record ready now is taken without waiting; before waiting,
            // the sink passes on what it batched (so that every submitted
            // record can complete while this member waits, rebalances
            // included).
            let msg = {
                let mut recv = std::pin::pin!(self.consumer.recv());
                let now = std::future::poll_fn(|cx| {
                    std::task::Poll::Ready(match recv.as_mut().poll(cx) {
                        std::task::Poll::Ready(m) => Some(m),
                        std::task::Poll::Pending => None,
                    })
                })
                .await;
                match now {
                    Some(m) if !self.stopping(&mut shutdown).await => m,
                    Some(_) => break Ok(()),
                    None => {
                        if sink.flush().await.is_err() {
                            break Ok(());
                        }
                        tokio::select! {
                            biased;
                            () = &mut shutdown => break Ok(()),
                            () = self.shared.wake.notified() => continue,
                            m = recv => m,
                        }
                    }
                }
            };
            let msg = match msg {
                Ok(m) => m,
                Err(e) if is_fatal(&e) => break Err(KafkaInputError::Consume(e)),
                // Transient (broker down, partition EOF notices): librdkafka retries.
                Err(_) => {
                    self.shared
                        .counters
                        .transient_errors
                        .fetch_add(1, Ordering::Relaxed);
                    continue;
                }
            };
            let topic = intern(&mut self.topics, msg.topic());
            let partition = msg.partition();
            let offset = msg.offset();
            self.shared
                .lock()
                .ledger
                .received(&topic, partition, offset);
            let ack = {
                let shared = self.shared.clone();
                let topic = topic.clone();
                let created_ms = msg.timestamp().to_millis();
                let e2e = self.end_to_end.clone();
                Ack::new(move || {
                    if let (Some(h), Some(t)) = (&e2e, created_ms) {
                        let now = std::time::SystemTime::now()
                            .duration_since(std::time::UNIX_EPOCH)
                            .map_or(0, |d| d.as_millis() as i64);
                        h.observe((now - t).max(0) as f64 / 1000.0);
                    }
                    let mut st = shared.lock();
                    let advanced = st.ledger.processed(&topic, partition, offset);
                    if let Some(next) = advanced {
                        st.storable.push((topic, partition, next));
                    }
                    drop(st);
                    shared.counters.acked.fetch_add(1, Ordering::Relaxed);
                    if shared.revoking.load(Ordering::SeqCst) > 0 {
                        shared.acked.notify_all();
                    }
                    // The last record in flight always advances its
                    // partition's offset, so the drain below is woken too.
                    if advanced.is_some() && !shared.has_storable.swap(true, Ordering::AcqRel) {
                        shared.wake.notify_one();
                    }
                })
            };
            let Some(payload) = msg.payload() else {
                self.shared.counters.empty.fetch_add(1, Ordering::Relaxed);
                drop(ack);
                continue;
            };
            let mut pbuf = itoa::Buffer::new();
            let mut obuf = itoa::Buffer::new();
            // (`headers()` itself is the cost: not called unless needed.)
            let header_list: Vec<(&str, &[u8])> = if self.read_headers {
                msg.headers().map_or_else(Vec::new, |h| {
                    h.iter()
                        .map(|h| (h.key, h.value.unwrap_or_default()))
                        .collect()
                })
            } else {
                Vec::new()
            };
            let meta = RecordMeta {
                input: Some(input_name),
                topic: Some(msg.topic()),
                partition: Some(pbuf.format(partition)),
                offset: Some(obuf.format(offset)),
                key: msg.key(),
                headers: &header_list,
            };
            self.shared.counters.records.fetch_add(1, Ordering::Relaxed);
            if sink.submit(payload, &meta, ack).await.is_err() {
                // The pipeline closed under us: stop (what was acknowledged
                // is committed below).
                break Ok(());
            }
        };
        // Drain: pass on what the sink batched, wait for the records in
        // flight, then store and commit.
        let _ = sink.flush().await;
        let deadline = tokio::time::Instant::now() + drain_timeout;
        loop {
            let wake = self.shared.wake.notified();
            self.shared.has_storable.store(false, Ordering::Release);
            {
                let mut st = self.shared.lock();
                Shared::store_ready(&mut st, &self.consumer);
                if st.ledger.total_in_flight() == 0 {
                    break;
                }
            }
            if tokio::time::timeout_at(deadline, wake).await.is_err() {
                break;
            }
        }
        // Commit what was processed even when stopping on an error; the
        // consumer error, if any, is the one reported.
        let committed = self.commit();
        result.and(committed)
    }

    /// Whether `shutdown` has resolved (polled once, without waiting).
    async fn stopping<S: Future<Output = ()>>(&self, shutdown: &mut std::pin::Pin<&mut S>) -> bool {
        std::future::poll_fn(|cx| std::task::Poll::Ready(shutdown.as_mut().poll(cx).is_ready()))
            .await
    }

    /// Records received but not yet acknowledged.
    pub fn in_flight(&self) -> usize {
        self.shared.lock().ledger.total_in_flight()
    }

    /// Commits the stored offsets now (auto-commit also does, every
    /// `auto.commit.interval.ms`).
    pub fn commit(&self) -> Result<(), KafkaInputError> {
        match self.consumer.commit_consumer_state(CommitMode::Sync) {
            Err(e) if e.rdkafka_error_code() == Some(RDKafkaErrorCode::NoOffset) => Ok(()),
            Err(e) => Err(KafkaInputError::Consume(e)),
            Ok(()) => Ok(()),
        }
    }

    /// Records, acknowledgements, rebalances and commit errors so far.
    pub fn counters(&self) -> &InputCounters {
        &self.shared.counters
    }

    /// A handle to the counters and lag that outlives the input.
    pub fn monitor(&self) -> KafkaMonitor {
        KafkaMonitor(self.shared.clone())
    }

    /// The consumer, for metadata queries (watermarks, committed offsets).
    pub fn consumer(&self) -> &impl Consumer<InputContext> {
        &self.consumer
    }
}

/// Read-only view of a running input's counters and consumer lag, for metrics.
#[derive(Clone)]
pub struct KafkaMonitor(Arc<Shared>);

impl KafkaMonitor {
    pub fn counters(&self) -> &InputCounters {
        &self.0.counters
    }

    /// Consumer lag (messages) per assigned (topic, partition), as of
    /// librdkafka's last statistics report (`statistics.interval.ms`).
    pub fn lag(&self) -> BTreeMap<(String, i32), i64> {
        self.0.lag.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

fn intern(topics: &mut Vec<Arc<str>>, t: &str) -> Arc<str> {
    if let Some(a) = topics.iter().find(|a| ***a == *t) {
        return a.clone();
    }
    let a: Arc<str> = Arc::from(t);
    topics.push(a.clone());
    a
}

fn is_fatal(e: &KafkaError) -> bool {
    matches!(
        e.rdkafka_error_code(),
        Some(RDKafkaErrorCode::Fatal | RDKafkaErrorCode::Authentication)
    ) || matches!(e, KafkaError::Subscription(_))
}

/// Per partition: which received records are not yet processed, and so which
/// offset may be stored (the next offset to read after a restart). Pure; the
/// invariant it keeps is that the storable offset never passes a record whose
/// handler has not returned, even when records finish out of order.
#[derive(Debug, Default)]
pub struct OffsetLedger {
    parts: HashMap<String, HashMap<i32, PartitionLedger>>,
}

#[derive(Debug, Default)]
struct PartitionLedger {
    /// Received offsets from the first one not yet processed on, ascending,
    /// each with whether it was processed. Records arrive in offset order,
    /// so receiving appends and completing mostly pops from the front — a
    /// `BTreeSet` of the offsets in flight cost a node allocation and a
    /// tree walk per record.
    window: VecDeque<(i64, bool)>,
    /// Entries of `window` not yet processed.
    pending: usize,
    /// One past the highest processed offset.
    processed_end: i64,
    /// The last offset returned as storable.
    stored: i64,
}

impl OffsetLedger {
    /// A record was received and is about to be processed.
    pub fn received(&mut self, topic: &str, partition: i32, offset: i64) {
        if !self.parts.contains_key(topic) {
            self.parts.insert(topic.to_owned(), HashMap::new());
        }
        let parts = self.parts.get_mut(topic).expect("inserted above");
        let p = parts.entry(partition).or_insert_with(|| PartitionLedger {
            // Where this member started reading: nothing below it is ours to store.
            stored: offset,
            processed_end: offset,
            ..PartitionLedger::default()
        });
        match p.window.back() {
            Some(&(last, _)) if offset <= last => {
                // Out of order or again (not seen from librdkafka, kept
                // correct): in flight once more, unless it still is.
                match p.window.binary_search_by_key(&offset, |e| e.0) {
                    Ok(at) if !p.window[at].1 => {}
                    Ok(at) => {
                        p.window[at].1 = false;
                        p.pending += 1;
                    }
                    Err(at) => {
                        p.window.insert(at, (offset, false));
                        p.pending += 1;
                    }
                }
            }
            _ => {
                p.window.push_back((offset, false));
                p.pending += 1;
            }
        }
    }

    /// A record's events were all processed. Returns the offset to store
    /// (one past the last record with nothing unprocessed before it), if it
    /// advanced.
    pub fn processed(&mut self, topic: &str, partition: i32, offset: i64) -> Option<i64> {
        let p = self.parts.get_mut(topic)?.get_mut(&partition)?;
        let at = p.window.binary_search_by_key(&offset, |e| e.0).ok()?;
        if std::mem::replace(&mut p.window[at].1, true) {
            return None;
        }
        p.pending -= 1;
        p.processed_end = p.processed_end.max(offset + 1);
        while p.window.front().is_some_and(|e| e.1) {
            p.window.pop_front();
        }
        let storable = p.window.front().map_or(p.processed_end, |e| e.0);
        (storable > p.stored).then(|| {
            p.stored = storable;
            storable
        })
    }

    /// Forget a partition (after it was revoked).
    pub fn forget(&mut self, topic: &str, partition: i32) {
        if let Some(t) = self.parts.get_mut(topic) {
            t.remove(&partition);
        }
    }

    /// Records of one partition received and not yet processed.
    pub fn in_flight(&self, topic: &str, partition: i32) -> usize {
        self.parts
            .get(topic)
            .and_then(|t| t.get(&partition))
            .map_or(0, |p| p.pending)
    }

    /// Records of every partition received and not yet processed.
    pub fn total_in_flight(&self) -> usize {
        self.parts
            .values()
            .flat_map(|t| t.values())
            .map(|p| p.pending)
            .sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn in_order_processing_stores_one_past_each_record() {
        let mut l = OffsetLedger::default();
        for o in 0..5 {
            l.received("t", 0, o);
            assert_eq!(l.processed("t", 0, o), Some(o + 1));
        }
    }

    #[test]
    fn an_unprocessed_record_holds_the_stored_offset_back() {
        let mut l = OffsetLedger::default();
        for o in 10..14 {
            l.received("t", 1, o);
        }
        // 11 and 13 finish first: nothing may be stored past 10.
        assert_eq!(l.processed("t", 1, 11), None);
        assert_eq!(l.processed("t", 1, 13), None);
        assert_eq!(l.processed("t", 1, 10), Some(12));
        assert_eq!(l.processed("t", 1, 12), Some(14));
        // Another partition is independent.
        l.received("t", 2, 0);
        assert_eq!(l.processed("t", 2, 0), Some(1));
    }

    #[test]
    fn unknown_or_repeated_acknowledgements_store_nothing() {
        let mut l = OffsetLedger::default();
        assert_eq!(l.processed("t", 0, 3), None);
        l.received("t", 0, 3);
        assert_eq!(l.processed("t", 0, 3), Some(4));
        assert_eq!(l.processed("t", 0, 3), None);
        l.forget("t", 0);
        l.received("t", 0, 7);
        assert_eq!(l.processed("t", 0, 7), Some(8));
    }

    /// The ledger against the plainest model of its rule (the set of
    /// offsets in flight; storable = the least of them, else one past the
    /// highest processed), over random interleavings: records received
    /// mostly in order, now and then one again or one older, acknowledged
    /// in random order, some twice, some never received.
    #[test]
    fn the_ledger_stores_what_the_set_model_stores() {
        use std::collections::BTreeSet;
        let mut seed = 0x9e37_79b9_7f4a_7c15_u64;
        let mut rnd = move |n: u64| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed % n
        };
        for _ in 0..200 {
            let mut l = OffsetLedger::default();
            let (mut in_flight, mut end, mut stored) = (BTreeSet::new(), 0i64, None::<i64>);
            let mut next = rnd(50) as i64;
            let mut received: Vec<i64> = Vec::new();
            for _ in 0..300 {
                if rnd(3) > 0 {
                    let o = match rnd(20) {
                        0 if !received.is_empty() => received[rnd(received.len() as u64) as usize],
                        1 => next.saturating_sub(1 + rnd(5) as i64),
                        _ => {
                            next += 1 + (rnd(4) == 0) as i64;
                            next
                        }
                    };
                    l.received("t", 0, o);
                    if stored.is_none() {
                        (stored, end) = (Some(o), o);
                    }
                    in_flight.insert(o);
                    received.push(o);
                } else if !received.is_empty() {
                    let o = if rnd(10) == 0 {
                        next + 100
                    } else {
                        received[rnd(received.len() as u64) as usize]
                    };
                    let want = in_flight.remove(&o).then(|| {
                        end = end.max(o + 1);
                        *in_flight.first().unwrap_or(&end)
                    });
                    let want = want.filter(|&w| w > stored.unwrap());
                    if let Some(w) = want {
                        stored = Some(w);
                    }
                    assert_eq!(l.processed("t", 0, o), want, "offset {o}");
                }
                assert_eq!(l.in_flight("t", 0), in_flight.len());
            }
        }
    }

    #[test]
    fn reserved_properties_and_empty_settings_are_reported_together() {
        let mut c = KafkaInputConfig::new("127.0.0.1:1", &[], "");
        c.properties
            .insert("enable.auto.commit".into(), "false".into());
        let Err(KafkaInputError::Config(msg)) = c.client_config() else {
            panic!("expected a configuration error");
        };
        assert!(msg.contains("topics"), "{msg}");
        assert!(msg.contains("group_id"), "{msg}");
        assert!(msg.contains("enable.auto.commit"), "{msg}");
    }

    #[test]
    fn offsets_are_stored_by_hand_and_committed_automatically() {
        let mut c = KafkaInputConfig::new("127.0.0.1:1", &["t"], "g");
        c.properties
            .insert("session.timeout.ms".into(), "6000".into());
        let cc = c.client_config().expect("valid");
        assert_eq!(cc.get("enable.auto.offset.store"), Some("false"));
        assert_eq!(cc.get("enable.auto.commit"), Some("true"));
        assert_eq!(cc.get("queued.max.messages.kbytes"), Some("16384"));
        assert_eq!(cc.get("session.timeout.ms"), Some("6000"));
    }
}
