//! Tollgate's Kafka input: a consumer-group member (rdkafka's
//! `StreamConsumer`) that hands each record to the caller as bytes plus a
//! [`RecordMeta`] (topic, partition, offset, key, headers) for
//! `tollgate_events::Decoder::decode`, and stores the record's offset only
//! after the caller's handler has returned for it — that is, after all of the
//! record's events were scored and their alerts handed on. Auto-commit stays
//! on (`enable.auto.commit=true`) but auto-store is off
//! (`enable.auto.offset.store=false`), so librdkafka commits, in the
//! background, only offsets this crate stored: a crash re-delivers records,
//! it never skips one (at-least-once).
//!
//! Layout: [`KafkaInputConfig`] (librdkafka properties pass through from a
//! map; the two offset properties are reserved) → [`KafkaInputConfig::build`]
//! (fallible set-up, subscribes) → [`KafkaInput::run`] (the only place Kafka
//! records enter Tollgate). [`OffsetLedger`] is the pure bookkeeping that
//! decides which offset may be stored; it is unit-tested without a broker.
//!
//! Deliberately absent: decoding, detection and alert delivery (the caller's
//! handler does those), producing alerts to a topic, metrics (a later issue).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext, Rebalance};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{Headers, Message};
use rdkafka::ClientContext;
use tollgate_events::RecordMeta;

pub use rdkafka;

/// What the handler tells the input after a record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flow {
    /// The record is done; keep consuming.
    Continue,
    /// The record is done; store its offset, commit, and return.
    Stop,
}

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
pub const RESERVED_PROPERTIES: [&str; 4] = [
    "enable.auto.offset.store",
    "enable.auto.commit",
    "group.id",
    "bootstrap.servers",
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
    /// Further librdkafka properties (`auto.offset.reset`,
    /// `session.timeout.ms`, security settings, …), passed through as given.
    pub properties: BTreeMap<String, String>,
}

impl KafkaInputConfig {
    pub fn new(bootstrap_servers: &str, topics: &[&str], group_id: &str) -> Self {
        KafkaInputConfig {
            bootstrap_servers: bootstrap_servers.to_owned(),
            topics: topics.iter().map(|t| (*t).to_owned()).collect(),
            group_id: group_id.to_owned(),
            queued_max_messages_kbytes: 16 * 1024,
            properties: BTreeMap::new(),
        }
    }

    /// The librdkafka client configuration, or every problem at once.
    pub fn client_config(&self) -> Result<ClientConfig, KafkaInputError> {
        let mut problems = Vec::new();
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
            if RESERVED_PROPERTIES.contains(&k.as_str()) || k == "queued.max.messages.kbytes" {
                problems.push(format!("property {k:?} is set by the input itself"));
            }
        }
        if !problems.is_empty() {
            return Err(KafkaInputError::Config(problems.join("; ")));
        }
        let mut c = ClientConfig::new();
        c.set("auto.offset.reset", "earliest");
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
    /// (the stream consumer spawns a task on it).
    pub fn build(&self) -> Result<KafkaInput, KafkaInputError> {
        let context = InputContext::default();
        let counters = context.counters.clone();
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
            ledger: OffsetLedger::default(),
            counters,
        })
    }
}

/// Counters the consumer context updates from librdkafka's callbacks.
#[derive(Debug, Default)]
pub struct InputCounters {
    /// Partition assignments received.
    pub assignments: AtomicU64,
    /// Partition revocations received.
    pub revocations: AtomicU64,
    /// Offset commits that librdkafka reported as failed.
    pub commit_errors: AtomicU64,
}

/// librdkafka callbacks: count rebalances and commit failures, and note
/// revoked partitions so the ledger forgets them. Rebalances need no more:
/// records are processed synchronously between `recv` calls, where the
/// callbacks run, so at a revocation every received record is processed and
/// stored, and librdkafka commits stored offsets on revoke.
#[derive(Default)]
pub struct InputContext {
    counters: Arc<InputCounters>,
    revoked: Mutex<Vec<(String, i32)>>,
}

impl ClientContext for InputContext {}

impl ConsumerContext for InputContext {
    fn pre_rebalance(&self, _: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        match rebalance {
            Rebalance::Assign(_) => self.counters.assignments.fetch_add(1, Ordering::Relaxed),
            Rebalance::Revoke(tpl) => {
                let mut r = self.revoked.lock().unwrap_or_else(|e| e.into_inner());
                r.extend(
                    tpl.elements()
                        .iter()
                        .map(|e| (e.topic().to_owned(), e.partition())),
                );
                self.counters.revocations.fetch_add(1, Ordering::Relaxed)
            }
            Rebalance::Error(_) => 0,
        };
    }

    fn commit_callback(
        &self,
        result: rdkafka::error::KafkaResult<()>,
        _: &rdkafka::TopicPartitionList,
    ) {
        // "No offset" only means nothing new was stored since the last commit.
        if let Err(e) = result {
            if e.rdkafka_error_code() != Some(RDKafkaErrorCode::NoOffset) {
                self.counters.commit_errors.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
}

/// A running Kafka input.
pub struct KafkaInput {
    /// The group member; its background auto-commit writes stored offsets.
    consumer: rdkafka::consumer::StreamConsumer<InputContext>,
    /// Which offsets may be stored: only those whose records were processed.
    ledger: OffsetLedger,
    /// Rebalances and commit errors, for the caller's summary.
    counters: Arc<InputCounters>,
}

/// What one `run` did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct RunStats {
    /// Records handed to the handler.
    pub records: u64,
    /// Records without a payload (tombstones), passed over and stored.
    pub empty: u64,
}

impl KafkaInput {
    /// Consumes until `shutdown` resolves or the handler returns
    /// [`Flow::Stop`]. For each record: note it in the ledger, call
    /// `handle(payload, meta)` — which must process all of the record's
    /// events before it returns — then store the offset the ledger allows.
    /// On the way out the stored offsets are committed synchronously.
    ///
    /// The one invariant: an offset is stored only after `handle` returned
    /// for that record and for every earlier record of its partition.
    pub async fn run<S, F>(
        &mut self,
        shutdown: S,
        mut handle: F,
    ) -> Result<RunStats, KafkaInputError>
    where
        S: Future<Output = ()>,
        F: FnMut(&[u8], &RecordMeta<'_>) -> Flow,
    {
        let mut stats = RunStats::default();
        let mut shutdown = std::pin::pin!(shutdown);
        let result = loop {
            let msg = tokio::select! {
                biased;
                () = &mut shutdown => break Ok(()),
                m = self.consumer.recv() => m,
            };
            let msg = match msg {
                Ok(m) => m,
                Err(e) if is_fatal(&e) => break Err(KafkaInputError::Consume(e)),
                // Transient (broker down, partition EOF notices): librdkafka retries.
                Err(_) => continue,
            };
            {
                let ctx = self.consumer.context();
                let mut r = ctx.revoked.lock().unwrap_or_else(|e| e.into_inner());
                for (t, p) in r.drain(..) {
                    self.ledger.forget(&t, p);
                }
            }
            let topic = msg.topic();
            let partition = msg.partition();
            let offset = msg.offset();
            self.ledger.received(topic, partition, offset);
            let flow = match msg.payload() {
                None => {
                    stats.empty += 1;
                    Flow::Continue
                }
                Some(payload) => {
                    let mut pbuf = itoa::Buffer::new();
                    let mut obuf = itoa::Buffer::new();
                    let header_list: Vec<(&str, &[u8])> = msg
                        .headers()
                        .map(|h| {
                            h.iter()
                                .map(|h| (h.key, h.value.unwrap_or_default()))
                                .collect()
                        })
                        .unwrap_or_default();
                    let meta = RecordMeta {
                        topic: Some(topic),
                        partition: Some(pbuf.format(partition)),
                        offset: Some(obuf.format(offset)),
                        key: msg.key(),
                        headers: &header_list,
                        ..RecordMeta::default()
                    };
                    stats.records += 1;
                    handle(payload, &meta)
                }
            };
            if let Some(next) = self.ledger.processed(topic, partition, offset) {
                // librdkafka's `rd_kafka_offset_store` stores `offset + 1`
                // (the next offset to read) — so pass the last processed one.
                // Fails only for a partition no longer assigned (revoked
                // meanwhile): its new owner re-reads from the last commit.
                let _ = self.consumer.store_offset(topic, partition, next - 1);
            }
            if flow == Flow::Stop {
                break Ok(());
            }
        };
        // Commit what was processed even when stopping on an error; the
        // consumer error, if any, is the one reported.
        let committed = self.commit();
        result.and(committed).map(|()| stats)
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

    /// Rebalances and commit errors seen so far.
    pub fn counters(&self) -> &InputCounters {
        &self.counters
    }

    /// The consumer, for metadata queries (watermarks, committed offsets).
    pub fn consumer(&self) -> &impl Consumer<InputContext> {
        &self.consumer
    }
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
    parts: HashMap<(String, i32), PartitionLedger>,
}

#[derive(Debug, Default)]
struct PartitionLedger {
    /// Received, not yet processed.
    in_flight: BTreeSet<i64>,
    /// One past the highest processed offset.
    processed_end: i64,
    /// The last offset returned as storable.
    stored: i64,
}

impl OffsetLedger {
    /// A record was received and is about to be processed.
    pub fn received(&mut self, topic: &str, partition: i32, offset: i64) {
        let key = (topic.to_owned(), partition);
        let p = self.parts.entry(key).or_insert_with(|| PartitionLedger {
            // Where this member started reading: nothing below it is ours to store.
            stored: offset,
            processed_end: offset,
            ..PartitionLedger::default()
        });
        p.in_flight.insert(offset);
    }

    /// A record's events were all processed. Returns the offset to store
    /// (one past the last record with nothing unprocessed before it), if it
    /// advanced.
    pub fn processed(&mut self, topic: &str, partition: i32, offset: i64) -> Option<i64> {
        let p = self.parts.get_mut(&(topic.to_owned(), partition))?;
        if !p.in_flight.remove(&offset) {
            return None;
        }
        p.processed_end = p.processed_end.max(offset + 1);
        let storable = p.in_flight.first().copied().unwrap_or(p.processed_end);
        (storable > p.stored).then(|| {
            p.stored = storable;
            storable
        })
    }

    /// Forget a partition (after it was revoked).
    pub fn forget(&mut self, topic: &str, partition: i32) {
        self.parts.remove(&(topic.to_owned(), partition));
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
