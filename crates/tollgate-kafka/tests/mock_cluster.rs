//! The Kafka input against librdkafka's in-process mock cluster: simulated
//! multi-tenant records (key = tenant) are produced to a 3-partition topic
//! and decoded by the real decoder inside a test sink that acknowledges
//! records late and out of order (it holds each group of ten and releases
//! them newest first). Checked: the committed position never passes a
//! record that was not acknowledged, or one before it (observed while
//! auto-commit runs every 10 ms); a stopped consumer's successor resumes
//! exactly at the committed offsets (no gap, no repeat); every produced event
//! is processed once (counted by event id); and the committed offsets equal
//! the end offsets afterwards.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tollgate_events::{
    Ack, Closed, DecodeConfig, Decoded, Decoder, Format, RecordMeta, RecordSink, TenantRule,
};
use tollgate_kafka::rdkafka::consumer::{BaseConsumer, Consumer};
use tollgate_kafka::rdkafka::mocking::MockCluster;
use tollgate_kafka::rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use tollgate_kafka::rdkafka::{ClientConfig, Offset, TopicPartitionList};
use tollgate_kafka::{no_revoke_hook, KafkaInput, KafkaInputConfig};
use tollgate_sim::{SimConfig, Simulation};

const TOPIC: &str = "records";
const PARTITIONS: i32 = 3;
const GROUP: &str = "tollgate-test";
const FIRST_RUN_RECORDS: u64 = 1_000;

/// Produces a small simulation; returns how many events each record id carries.
fn produce(bootstrap: &str) -> HashMap<String, u64> {
    let sim = Simulation::new(SimConfig {
        seed: 7,
        tenants: 5,
        events: 3_000,
        duration: Duration::from_secs(6 * 3600),
        warmup: Duration::from_secs(3600),
        incidents_per_scenario: 0,
        scenarios: Vec::new(),
        ..SimConfig::default()
    })
    .expect("valid simulation");
    let producer: BaseProducer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .create()
        .expect("producer");
    let mut ids = HashMap::new();
    for rec in sim {
        *ids.entry(rec.id.to_string()).or_default() += 1;
        let mut r = BaseRecord::to(TOPIC)
            .key(rec.tenant.as_str())
            .payload(&rec.line);
        loop {
            match producer.send(r) {
                Ok(()) => break,
                Err((_, back)) => {
                    producer.poll(Duration::from_millis(10));
                    r = back;
                }
            }
        }
    }
    producer.flush(Duration::from_secs(30)).expect("flush");
    ids
}

/// The group's committed offset per partition (0 when none).
fn committed(observer: &BaseConsumer) -> Vec<i64> {
    let mut tpl = TopicPartitionList::new();
    for p in 0..PARTITIONS {
        tpl.add_partition(TOPIC, p);
    }
    let got = observer
        .committed_offsets(tpl, Duration::from_secs(10))
        .expect("committed offsets");
    (0..PARTITIONS)
        .map(|p| match got.find_partition(TOPIC, p).map(|e| e.offset()) {
            Some(Offset::Offset(o)) => o,
            _ => 0,
        })
        .collect()
}

fn input_config(bootstrap: &str) -> KafkaInputConfig {
    let mut c = KafkaInputConfig::new(bootstrap, &[TOPIC], GROUP);
    for (k, v) in [
        ("auto.commit.interval.ms", "10"),
        ("session.timeout.ms", "6000"),
        ("heartbeat.interval.ms", "500"),
    ] {
        c.properties.insert(k.into(), v.into());
    }
    c
}

/// What a run's sink saw and acknowledged.
#[derive(Default)]
struct Seen {
    /// Event id → times processed.
    events: HashMap<String, u64>,
    /// Per partition: first offset received.
    first: BTreeMap<i32, i64>,
    /// Per partition: offsets acknowledged.
    acked: BTreeMap<i32, BTreeSet<i64>>,
    records: u64,
}

impl Seen {
    /// Per partition: one past the end of the acknowledged prefix that
    /// starts at the first offset received (or `floor` when none).
    fn done_prefix(&self, floor: &[i64]) -> Vec<i64> {
        (0..PARTITIONS)
            .map(|p| {
                let Some(&start) = self.first.get(&p) else {
                    return floor[p as usize];
                };
                let acked = self.acked.get(&p);
                let mut o = start;
                while acked.is_some_and(|a| a.contains(&o)) {
                    o += 1;
                }
                o
            })
            .collect()
    }
}

/// Decodes each record, holds its `Ack`, and releases the held ones newest
/// first every ten records; after `stop_after` records it releases all and
/// asks the input to stop.
struct LateSink {
    dec: Decoder,
    seen: Arc<Mutex<Seen>>,
    held: Vec<(i32, i64, Ack)>,
    stop_after: u64,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    /// Called before each hundredth record (the committed-offset check).
    every_100: Box<dyn FnMut(&Seen) + Send>,
}

impl LateSink {
    fn release(&mut self) {
        let mut seen = self.seen.lock().unwrap();
        while let Some((p, o, ack)) = self.held.pop() {
            seen.acked.entry(p).or_default().insert(o);
            drop(ack);
        }
    }
}

impl RecordSink for LateSink {
    fn submit(
        &mut self,
        payload: &[u8],
        meta: &RecordMeta<'_>,
        ack: Ack,
    ) -> impl Future<Output = Result<(), Closed>> + Send {
        let (p, o) = partition_offset(meta);
        {
            let mut seen = self.seen.lock().unwrap();
            if seen.records % 100 == 99 {
                (self.every_100)(&seen);
            }
            seen.first.entry(p).or_insert(o);
            let mut out = Vec::new();
            self.dec.decode(payload, meta, &mut out);
            assert!(!out.is_empty());
            for d in out {
                let Decoded::Event(ev) = d else {
                    panic!("simulated record did not decode: {d:?}")
                };
                assert_eq!(
                    Some(ev.tenant.as_str().as_bytes()),
                    meta.key,
                    "tenant is the Kafka key"
                );
                *seen
                    .events
                    .entry(ev.id.expect("simulated events have ids").to_string())
                    .or_default() += 1;
            }
            seen.records += 1;
        }
        self.held.push((p, o, ack));
        let records = self.seen.lock().unwrap().records;
        if self.held.len() >= 10 || records == self.stop_after {
            self.release();
        }
        if records == self.stop_after {
            if let Some(tx) = self.stop.take() {
                let _ = tx.send(());
            }
        }
        std::future::ready(Ok(()))
    }
}

fn partition_offset(meta: &RecordMeta<'_>) -> (i32, i64) {
    let p = meta.partition.expect("partition").parse().expect("number");
    let o = meta.offset.expect("offset").parse().expect("number");
    (p, o)
}

/// Runs `input` into `sink` until `stop` fires (or fails after a minute).
fn run_until(
    rt: &tokio::runtime::Runtime,
    input: &mut KafkaInput,
    stop: tokio::sync::oneshot::Receiver<()>,
    sink: &mut impl RecordSink,
) {
    rt.block_on(tokio::time::timeout(
        Duration::from_secs(60),
        input.run(
            "test",
            async {
                let _ = stop.await;
            },
            Duration::from_secs(10),
            sink,
        ),
    ))
    .expect("run finishes")
    .expect("run");
}

/// Runs one group member until `stop_after` records; returns what it saw.
fn run_member(
    rt: &tokio::runtime::Runtime,
    bootstrap: &str,
    stop_after: u64,
    every_100: Box<dyn FnMut(&Seen) + Send>,
) -> Seen {
    let (tx, rx) = tokio::sync::oneshot::channel();
    let seen = Arc::new(Mutex::new(Seen::default()));
    let mut sink = LateSink {
        dec: Decoder::new(&DecodeConfig::new(Format::Auto, TenantRule::KafkaKey {}))
            .expect("decoder"),
        seen: seen.clone(),
        held: Vec::new(),
        stop_after,
        stop: Some(tx),
        every_100,
    };
    let mut input = input_config(bootstrap)
        .build(no_revoke_hook())
        .expect("input");
    run_until(rt, &mut input, rx, &mut sink);
    assert_eq!(input.in_flight(), 0);
    drop(sink);
    Arc::try_unwrap(seen)
        .ok()
        .expect("sink dropped")
        .into_inner()
        .unwrap()
}

#[test]
fn offsets_are_stored_only_after_acknowledgement_and_resume_without_gaps() {
    let cluster = MockCluster::new(1).expect("mock cluster");
    cluster
        .create_topic(TOPIC, PARTITIONS, 1)
        .expect("create topic");
    let bootstrap = cluster.bootstrap_servers();
    let ids = produce(&bootstrap);
    let total_events: u64 = ids.values().sum();
    let observer: Arc<BaseConsumer> = Arc::new(
        ClientConfig::new()
            .set("bootstrap.servers", &bootstrap)
            .set("group.id", GROUP)
            .create()
            .expect("observer"),
    );
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    // The stream consumer spawns its waker task on the current runtime.
    let _rt = rt.enter();

    // First member: stops after FIRST_RUN_RECORDS records. Every 100 records
    // the group's committed position is read and must not pass the
    // acknowledged prefix.
    let checks_with_commits = Arc::new(Mutex::new(0u32));
    let first = {
        let (observer, checks) = (observer.clone(), checks_with_commits.clone());
        run_member(
            &rt,
            &bootstrap,
            FIRST_RUN_RECORDS,
            Box::new(move |seen: &Seen| {
                // Give auto-commit (every 10 ms) the chance to commit what it may.
                std::thread::sleep(Duration::from_millis(30));
                let c = committed(&observer);
                let done = seen.done_prefix(&[0; PARTITIONS as usize]);
                for (q, &c) in c.iter().enumerate() {
                    assert!(
                        c <= done[q],
                        "partition {q}: committed {c} passes the acknowledged prefix {}",
                        done[q]
                    );
                }
                if c.iter().any(|&c| c > 0) {
                    *checks.lock().unwrap() += 1;
                }
            }),
        )
    };
    assert_eq!(first.records, FIRST_RUN_RECORDS);
    assert!(
        *checks_with_commits.lock().unwrap() > 0,
        "auto-commit never committed mid-run, so the check above proved nothing"
    );
    let after_first = committed(&observer);
    assert_eq!(
        after_first,
        first.done_prefix(&[0; PARTITIONS as usize]),
        "a stopped input commits exactly what was acknowledged"
    );

    // Second member of the same group: resumes at the committed offsets and
    // runs to the end.
    let remaining = ids.len() as u64 - FIRST_RUN_RECORDS;
    let second = run_member(&rt, &bootstrap, remaining, Box::new(|_: &Seen| {}));
    for (p, &o) in &second.first {
        assert_eq!(
            o, after_first[*p as usize],
            "partition {p} resumed at {o}, not at the committed offset"
        );
    }

    // Every event processed exactly once, across both members.
    let mut all = first.events;
    for (id, n) in second.events {
        *all.entry(id).or_default() += n;
    }
    assert_eq!(all.values().sum::<u64>(), total_events);
    for (id, n) in &ids {
        assert_eq!(all.get(id), Some(n), "event {id}");
    }

    // Committed offsets equal the end offsets.
    let ends: Vec<i64> = (0..PARTITIONS)
        .map(|p| {
            observer
                .fetch_watermarks(TOPIC, p, Duration::from_secs(10))
                .expect("watermarks")
                .1
        })
        .collect();
    assert_eq!(ends.iter().sum::<i64>(), ids.len() as i64);
    assert_eq!(committed(&observer), ends);
}

/// Keeps each record's headers; asks to stop after `stop_after` records.
struct HeaderSink {
    headers: Vec<Vec<(String, Vec<u8>)>>,
    stop_after: usize,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
}

impl RecordSink for HeaderSink {
    fn submit(
        &mut self,
        _payload: &[u8],
        meta: &RecordMeta<'_>,
        ack: Ack,
    ) -> impl Future<Output = Result<(), Closed>> + Send {
        self.headers.push(
            meta.headers
                .iter()
                .map(|(k, v)| ((*k).to_owned(), v.to_vec()))
                .collect(),
        );
        drop(ack);
        if self.headers.len() == self.stop_after {
            if let Some(tx) = self.stop.take() {
                let _ = tx.send(());
            }
        }
        std::future::ready(Ok(()))
    }
}

/// Headers reach the sink (for a tenant rule that reads one) unless the
/// input was told not to parse them.
#[test]
fn record_headers_are_handed_on_only_when_asked_for() {
    const T: &str = "with-headers";
    let cluster = MockCluster::new(1).expect("mock cluster");
    cluster.create_topic(T, 1, 1).expect("create topic");
    let bootstrap = cluster.bootstrap_servers();
    let producer: BaseProducer = ClientConfig::new()
        .set("bootstrap.servers", &bootstrap)
        .create()
        .expect("producer");
    for i in 0..3 {
        let headers = tollgate_kafka::rdkafka::message::OwnedHeaders::new().insert(
            tollgate_kafka::rdkafka::message::Header {
                key: "x-tenant",
                value: Some("globex"),
            },
        );
        producer
            .send(
                BaseRecord::<(), _>::to(T)
                    .payload(&format!("{{\"n\":{i}}}"))
                    .headers(headers),
            )
            .map_err(|(e, _)| e)
            .expect("send");
    }
    producer.flush(Duration::from_secs(10)).expect("flush");
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let _rt = rt.enter();
    let read = |read_headers: bool, group: &str| {
        let mut cfg = KafkaInputConfig::new(&bootstrap, &[T], group);
        cfg.properties
            .insert("auto.offset.reset".into(), "earliest".into());
        cfg.read_headers = read_headers;
        let mut input = cfg.build(no_revoke_hook()).expect("input");
        let (tx, rx) = tokio::sync::oneshot::channel();
        let mut sink = HeaderSink {
            headers: Vec::new(),
            stop_after: 3,
            stop: Some(tx),
        };
        run_until(&rt, &mut input, rx, &mut sink);
        sink.headers
    };
    let want = vec![("x-tenant".to_owned(), b"globex".to_vec())];
    assert_eq!(read(true, "reads"), vec![want.clone(); 3]);
    assert_eq!(read(false, "skips"), vec![Vec::new(); 3]);
}
