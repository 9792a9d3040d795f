//! Load generator and broker-ceiling probe for `benches/load-kafka.sh`.
//!
//! ```text
//! kafka_load produce BROKERS TOPIC EVENTS TENANTS [RATE] [SEED] [k=v,k=v…]
//!     produces EVENTS simulated records (one event each, key = tenant) over
//!     TENANTS tenants; RATE > 0 paces them at RATE events/s; librdkafka
//!     properties given override the producer's (`linger.ms=5`, lz4).
//!     Prints `produced N in S s (R/s)`.
//! kafka_load ceiling BROKERS TOPIC EVENTS
//!     a bare consumer (new group, from the start) that reads EVENTS records
//!     and does nothing with them: the broker's ceiling on this machine.
//!     Prints `consumed N in S s (R/s)`.
//! kafka_load stream BROKERS TOPIC EVENTS [k=v,k=v…]
//!     the same through rdkafka's `StreamConsumer` on Tokio with the Kafka
//!     input's own settings (manual offset store, 16 MiB prefetch queue),
//!     plus any librdkafka properties given: isolates the consumer's
//!     configuration from Tollgate's processing. Prints the rate and the
//!     latency from each record's timestamp to its receipt (p50, p99), which
//!     run beside a paced `produce` is the floor under Tollgate's own.
//! ```
//! Every record carries one event, so records/s = events/s.

use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use rdkafka::ClientConfig;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let arg = |i: usize| args.get(i).cloned().unwrap_or_default();
    match arg(0).as_str() {
        "produce" => produce(
            &arg(1),
            &arg(2),
            arg(3).parse().expect("EVENTS"),
            arg(4).parse().expect("TENANTS"),
            arg(5).parse().unwrap_or(0.0),
            arg(6).parse().unwrap_or(1),
            &arg(7),
        ),
        "ceiling" => ceiling(&arg(1), &arg(2), arg(3).parse().expect("EVENTS")),
        "stream" => stream_ceiling(&arg(1), &arg(2), arg(3).parse().expect("EVENTS"), &arg(4)),
        _ => {
            eprintln!("usage: kafka_load produce BROKERS TOPIC EVENTS TENANTS [RATE] [SEED] [PROPS] | ceiling BROKERS TOPIC EVENTS | stream BROKERS TOPIC EVENTS [PROPS]");
            std::process::exit(2);
        }
    }
}

fn produce(
    brokers: &str,
    topic: &str,
    events: u64,
    tenants: usize,
    rate: f64,
    seed: u64,
    props: &str,
) {
    let sim = tollgate_benches::sim(events as usize, tenants, 2, seed);
    let mut cfg = ClientConfig::new();
    cfg.set("bootstrap.servers", brokers)
        .set("linger.ms", "5")
        .set("compression.type", "lz4")
        .set("queue.buffering.max.messages", "1000000");
    set_properties(&mut cfg, props);
    let producer: BaseProducer = cfg.create().expect("producer");
    // Paced runs measure the consumer's latency on the same machine: render
    // the records first, so that generating them does not take CPU from the
    // consumer while it is measured, and send each millisecond's due records
    // together (then sleep) rather than waiting record by record.
    let records: Box<dyn Iterator<Item = tollgate_sim::SimRecord>> = if rate > 0.0 {
        Box::new(sim.collect::<Vec<_>>().into_iter())
    } else {
        Box::new(sim)
    };
    let started = Instant::now();
    let mut n = 0u64;
    for rec in records {
        if rate > 0.0 {
            let due = started + Duration::from_secs_f64(n as f64 / rate);
            let now = Instant::now();
            if due > now + Duration::from_millis(1) {
                producer.poll(Duration::ZERO);
                std::thread::sleep(due - now);
            }
        }
        let mut r = BaseRecord::to(topic)
            .key(rec.tenant.as_str())
            .payload(&rec.line);
        loop {
            match producer.send(r) {
                Ok(()) => break,
                Err((_, back)) => {
                    producer.poll(Duration::from_millis(5));
                    r = back;
                }
            }
        }
        n += 1;
        if n.is_multiple_of(1024) {
            producer.poll(Duration::ZERO);
        }
    }
    producer.flush(Duration::from_secs(120)).expect("flush");
    let s = started.elapsed().as_secs_f64();
    println!("produced {n} in {s:.2} s ({:.0}/s)", n as f64 / s);
}

fn ceiling(brokers: &str, topic: &str, events: u64) {
    let group = format!("ceiling-{}", std::process::id());
    let c: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("group.id", &group)
        .set("auto.offset.reset", "earliest")
        .set("enable.auto.commit", "false")
        .set("session.timeout.ms", "6000")
        .set("heartbeat.interval.ms", "1000")
        .create()
        .expect("consumer");
    c.subscribe(&[topic]).expect("subscribe");
    let mut n = 0u64;
    let mut bytes = 0usize;
    let mut started = None;
    while n < events {
        if let Some(Ok(m)) = c.poll(Duration::from_millis(100)) {
            started.get_or_insert_with(Instant::now);
            bytes += rdkafka::Message::payload(&m).map_or(0, <[u8]>::len);
            n += 1;
        }
    }
    let s = started.map_or(0.0, |t| t.elapsed().as_secs_f64());
    println!(
        "consumed {n} in {s:.2} s ({:.0}/s, {:.0} MB/s)",
        n as f64 / s,
        bytes as f64 / s / 1e6
    );
}

/// Like [`ceiling`], through a `StreamConsumer` configured as the Kafka input
/// configures its own; `props` (`k=v,k=v`) override or add properties.
fn stream_ceiling(brokers: &str, topic: &str, events: u64, props: &str) {
    use rdkafka::consumer::StreamConsumer;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        let group = format!("stream-{}", std::process::id());
        let mut cfg = ClientConfig::new();
        cfg.set("bootstrap.servers", brokers)
            .set("group.id", &group)
            .set("auto.offset.reset", "earliest")
            .set("enable.auto.commit", "true")
            .set("enable.auto.offset.store", "false")
            .set("queued.max.messages.kbytes", "16384")
            .set("fetch.queue.backoff.ms", "10")
            .set("statistics.interval.ms", "5000")
            .set("session.timeout.ms", "6000")
            .set("heartbeat.interval.ms", "1000");
        set_properties(&mut cfg, props);
        let c: StreamConsumer = cfg.create().expect("consumer");
        c.subscribe(&[topic]).expect("subscribe");
        let mut n = 0u64;
        let mut started = None;
        let mut lat_ms = Vec::with_capacity(events as usize);
        while n < events {
            if let Ok(m) = c.recv().await {
                started.get_or_insert_with(Instant::now);
                if let Some(t) = rdkafka::Message::timestamp(&m).to_millis() {
                    let now = std::time::SystemTime::now()
                        .duration_since(std::time::UNIX_EPOCH)
                        .map_or(0, |d| d.as_millis() as i64);
                    lat_ms.push(now - t);
                }
                n += 1;
            }
        }
        let s = started.map_or(0.0, |t| t.elapsed().as_secs_f64());
        lat_ms.sort_unstable();
        let q = |p: f64| lat_ms.get(((lat_ms.len() as f64 - 1.0) * p) as usize).copied().unwrap_or(0);
        println!(
            "stream consumed {n} in {s:.2} s ({:.0}/s); record timestamp to received: p50 {} ms, p99 {} ms",
            n as f64 / s,
            q(0.5),
            q(0.99)
        );
    });
}

/// Applies `k=v,k=v` librdkafka properties given on the command line.
fn set_properties(cfg: &mut ClientConfig, props: &str) {
    for kv in props.split(',').filter(|s| !s.is_empty()) {
        let (k, v) = kv.split_once('=').expect("PROPS is k=v,k=v");
        cfg.set(k, v);
    }
}
