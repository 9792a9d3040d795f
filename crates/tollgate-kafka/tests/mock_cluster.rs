//! The Kafka input against librdkafka's in-process mock cluster: simulated
//! multi-tenant records (key = tenant) are produced to a 3-partition topic
//! and decoded by the real decoder inside the input's handler. Checked: the
//! committed position never passes a record whose events were not processed
//! (observed while auto-commit runs every 10 ms), a stopped consumer's
//! successor resumes exactly at the committed offsets (no gap, no repeat),
//! every produced event is processed once (counted by event id), and the
//! committed offsets equal the end offsets afterwards.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use tollgate_events::{DecodeConfig, Decoded, Decoder, Format, TenantRule};
use tollgate_kafka::rdkafka::consumer::{BaseConsumer, Consumer};
use tollgate_kafka::rdkafka::mocking::MockCluster;
use tollgate_kafka::rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use tollgate_kafka::rdkafka::{ClientConfig, Offset, TopicPartitionList};
use tollgate_kafka::{Flow, KafkaInputConfig};
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

/// What a run's handler saw.
#[derive(Default)]
struct Seen {
    /// Event id → times processed.
    events: HashMap<String, u64>,
    /// Per partition: first offset handled and one past the last.
    first: BTreeMap<i32, i64>,
    processed_end: Vec<i64>,
    records: u64,
}

impl Seen {
    fn new() -> Self {
        Seen {
            processed_end: vec![0; PARTITIONS as usize],
            ..Seen::default()
        }
    }
}

fn decode_into(
    dec: &mut Decoder,
    bytes: &[u8],
    meta: &tollgate_events::RecordMeta<'_>,
    seen: &mut Seen,
) {
    let mut out = Vec::new();
    dec.decode(bytes, meta, &mut out);
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
}

fn partition_offset(meta: &tollgate_events::RecordMeta<'_>) -> (i32, i64) {
    let p = meta.partition.expect("partition").parse().expect("number");
    let o = meta.offset.expect("offset").parse().expect("number");
    (p, o)
}

#[test]
fn offsets_are_stored_only_after_processing_and_resume_without_gaps() {
    let cluster = MockCluster::new(1).expect("mock cluster");
    cluster
        .create_topic(TOPIC, PARTITIONS, 1)
        .expect("create topic");
    let bootstrap = cluster.bootstrap_servers();
    let ids = produce(&bootstrap);
    let total_events: u64 = ids.values().sum();
    let observer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", &bootstrap)
        .set("group.id", GROUP)
        .create()
        .expect("observer");
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("runtime");
    // The stream consumer spawns its waker task on the current runtime.
    let _rt = rt.enter();
    let mut dec =
        Decoder::new(&DecodeConfig::new(Format::Auto, TenantRule::KafkaKey {})).expect("decoder");

    // First member: stops after FIRST_RUN_RECORDS records. Every 100 records
    // (before the current one is processed) the group's committed position
    // is read and must not pass what was processed.
    let mut first = Seen::new();
    let mut checks_with_commits = 0;
    {
        let mut input = input_config(&bootstrap).build().expect("input");
        let stats = rt
            .block_on(tokio::time::timeout(
                Duration::from_secs(60),
                input.run(std::future::pending(), |bytes, meta| {
                    let (p, o) = partition_offset(meta);
                    if first.records % 100 == 99 {
                        std::thread::sleep(Duration::from_millis(30));
                        let c = committed(&observer);
                        for (q, &c) in c.iter().enumerate() {
                            assert!(
                                c <= first.processed_end[q],
                                "partition {q}: committed {c} passes processed {}",
                                first.processed_end[q]
                            );
                        }
                        if c.iter().any(|&c| c > 0) {
                            checks_with_commits += 1;
                        }
                    }
                    first.first.entry(p).or_insert(o);
                    decode_into(&mut dec, bytes, meta, &mut first);
                    first.processed_end[p as usize] = o + 1;
                    first.records += 1;
                    if first.records == FIRST_RUN_RECORDS {
                        Flow::Stop
                    } else {
                        Flow::Continue
                    }
                }),
            ))
            .expect("first run finishes")
            .expect("first run");
        assert_eq!(stats.records, FIRST_RUN_RECORDS);
    }
    assert!(
        checks_with_commits > 0,
        "auto-commit never committed mid-run, so the check above proved nothing"
    );
    let after_first = committed(&observer);
    assert_eq!(
        after_first, first.processed_end,
        "a stopped input commits exactly what it processed"
    );

    // Second member of the same group: resumes at the committed offsets and
    // runs to the end.
    let remaining = ids.len() as u64 - FIRST_RUN_RECORDS;
    let mut second = Seen::new();
    {
        let mut input = input_config(&bootstrap).build().expect("input");
        rt.block_on(tokio::time::timeout(
            Duration::from_secs(60),
            input.run(std::future::pending(), |bytes, meta| {
                let (p, o) = partition_offset(meta);
                second.first.entry(p).or_insert(o);
                decode_into(&mut dec, bytes, meta, &mut second);
                second.processed_end[p as usize] = o + 1;
                second.records += 1;
                if second.records == remaining {
                    Flow::Stop
                } else {
                    Flow::Continue
                }
            }),
        ))
        .expect("second run finishes")
        .expect("second run");
    }
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
