//! The Kinesis input against two independent Kinesis implementations:
//! `ferrokinesis` (Rust, served in-process on a random loopback port, one
//! server per test) and `kinesis-local` (the kinesis-mock server compiled to
//! JavaScript, one `node` process for this whole test binary, on random
//! ports, killed at the end). Every case runs against both:
//!
//! - every record put is submitted exactly once, in shard order, and the
//!   checkpoint stops before a record whose `Ack` is held, then advances
//!   when it is released;
//! - a restart resumes right after the last acknowledged record;
//! - a split shard's records all come before its children's, none skipped;
//! - a gzip CloudWatch Logs payload arrives byte-identical, with its metadata;
//! - a KPL aggregate yields its user records (sharing the record's `Ack`), a
//!   corrupted one is passed on raw;
//! - a record the pipeline never takes (a `submit` blocked at shutdown, or
//!   refused because the pipeline closed) holds the checkpoint back and is
//!   delivered after a restart.
//!
//! ferrokinesis alone (its iterator TTL is configurable) also checks that an
//! expired iterator is replaced without skipping or repeating records.
//!
//! Waits poll a condition with a deadline; the only timed wait is letting
//! an iterator's TTL pass.

use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use aws_sdk_kinesis::config::{BehaviorVersion, Credentials, Region};
use aws_sdk_kinesis::primitives::Blob;
use aws_sdk_kinesis::types::StreamStatus;
use aws_sdk_kinesis::Client;
use md5::{Digest, Md5};
use tokio::time::Instant;
use tollgate_events::{Ack, Closed, RecordMeta, RecordSink};
use tollgate_kinesis::{
    CheckpointFile, Dur, InputMetrics, KinesisInputConfig, KinesisInputError, RunStats,
};

const INPUT: &str = "kin-test";
const REGION: &str = "us-east-1";

// ---------------------------------------------------------------- servers

/// Where a Kinesis implementation listens.
#[derive(Clone)]
struct Env {
    endpoint: String,
    server: &'static str,
}

fn credentials() -> Credentials {
    Credentials::new(
        "AKIDTOLLGATETEST",
        "tollgate-test-secret",
        None,
        None,
        "tollgate-tests",
    )
}

impl Env {
    fn client(&self) -> Client {
        let conf = aws_sdk_kinesis::Config::builder()
            .behavior_version(BehaviorVersion::latest())
            .region(Region::new(REGION))
            .endpoint_url(&self.endpoint)
            .credentials_provider(credentials())
            .build();
        Client::from_conf(conf)
    }

    fn config(&self, stream: &str, dir: &Path) -> KinesisInputConfig {
        let mut c = KinesisInputConfig::new(stream, dir);
        c.region = Some(REGION.into());
        c.endpoint_url = Some(self.endpoint.clone());
        c.poll_interval = Dur::millis(200);
        c.checkpoint_interval = Dur::millis(100);
        c.shard_refresh_interval = Dur::millis(300);
        c.shutdown_timeout = Dur::millis(500);
        c.request_timeout = Dur::millis(5_000);
        c.backoff.initial = Dur::millis(50);
        c.backoff.max = Dur::millis(500);
        c
    }
}

async fn start_ferrokinesis(iterator_ttl_seconds: u64) -> Env {
    let opts = ferrokinesis::store::StoreOptions {
        create_stream_ms: 0,
        update_stream_ms: 0,
        delete_stream_ms: 0,
        iterator_ttl_seconds,
        ..Default::default()
    };
    let (app, _store) = ferrokinesis::create_app(opts);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    Env {
        endpoint: format!("http://{addr}"),
        server: "ferrokinesis",
    }
}

/// The `node` process serving kinesis-local; killed on drop.
struct KinesisLocal {
    child: std::process::Child,
    _cwd: tempfile::TempDir,
    env: Env,
}

impl Drop for KinesisLocal {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Starts kinesis-local, or returns None when services are skipped on purpose.
async fn start_kinesis_local() -> Option<KinesisLocal> {
    let js = match std::env::var("TOLLGATE_KINESIS_LOCAL_JS") {
        Ok(js) if !js.is_empty() => PathBuf::from(js),
        // Under CI a missing service is a failure, never a skip.
        _ if std::env::var("TOLLGATE_SKIP_SERVICES").as_deref() == Ok("1")
            && std::env::var("CI").as_deref() != Ok("true") =>
        {
            eprintln!("TOLLGATE_SKIP_SERVICES=1: kinesis-local cases skipped");
            return None;
        }
        _ => panic!(
            "TOLLGATE_KINESIS_LOCAL_JS is not set: run ./scripts/test (or eval \"$(scripts/services)\" first); \
             TOLLGATE_SKIP_SERVICES=1 skips these cases"
        ),
    };
    assert!(
        js.is_file(),
        "{} does not exist: run ./scripts/test",
        js.display()
    );
    let (plain, tls) = (free_port(), free_port());
    let cwd = tempfile::tempdir().unwrap();
    let child = std::process::Command::new("node")
        .arg(&js)
        .current_dir(cwd.path())
        .env("KINESIS_MOCK_PLAIN_PORT", plain.to_string())
        .env("KINESIS_MOCK_TLS_PORT", tls.to_string())
        .env("KINESIS_MOCK_CERT_PATH", js.with_file_name("server.json"))
        .env("CREATE_STREAM_DURATION", "10ms")
        .env("SPLIT_SHARD_DURATION", "10ms")
        .env("SHOULD_PERSIST_DATA", "false")
        .env("LOAD_DATA_IF_EXISTS", "false")
        .env("LOG_LEVEL", "ERROR")
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("node must be installed to run kinesis-local");
    let mut kl = KinesisLocal {
        child,
        _cwd: cwd,
        env: Env {
            endpoint: format!("http://127.0.0.1:{plain}"),
            server: "kinesis-local",
        },
    };
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if tokio::net::TcpStream::connect(("127.0.0.1", plain))
            .await
            .is_ok()
        {
            return Some(kl);
        }
        if let Some(status) = kl.child.try_wait().unwrap() {
            panic!("kinesis-local exited during start-up: {status}");
        }
        assert!(
            Instant::now() < deadline,
            "kinesis-local did not start listening within 60 s"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

// ---------------------------------------------------------------- helpers

/// Polls `f` until it returns `Some`, failing after `secs` seconds.
async fn wait_for<T>(what: &str, secs: u64, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn create_stream(c: &Client, name: &str, shards: i32) {
    c.create_stream()
        .stream_name(name)
        .shard_count(shards)
        .send()
        .await
        .unwrap();
    wait_active(c, name).await;
}

async fn wait_active(c: &Client, name: &str) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let s = c
            .describe_stream_summary()
            .stream_name(name)
            .send()
            .await
            .unwrap();
        if s.stream_description_summary().map(|d| d.stream_status()) == Some(&StreamStatus::Active)
        {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "stream {name} did not become ACTIVE"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A record as put: where it landed.
#[derive(Debug, Clone)]
struct Put {
    shard: String,
    seq: String,
    payload: Vec<u8>,
}

async fn put(c: &Client, stream: &str, key: &str, payload: Vec<u8>) -> Put {
    let out = c
        .put_record()
        .stream_name(stream)
        .partition_key(key)
        .data(Blob::new(payload.clone()))
        .send()
        .await
        .unwrap();
    Put {
        shard: out.shard_id().to_owned(),
        seq: out.sequence_number().to_owned(),
        payload,
    }
}

async fn put_numbered(c: &Client, stream: &str, range: std::ops::Range<usize>) -> Vec<Put> {
    let mut out = Vec::new();
    for i in range {
        out.push(
            put(
                c,
                stream,
                &format!("key-{i}"),
                format!("{{\"n\":{i}}}").into_bytes(),
            )
            .await,
        );
    }
    out
}

/// A record as submitted to the sink.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Got {
    input: String,
    stream: String,
    shard: String,
    offset: String,
    key: Vec<u8>,
    payload: Vec<u8>,
}

type HoldFn = Arc<dyn Fn(&Got) -> bool + Send + Sync>;

/// Records every submission; drops each `Ack` at once unless `hold` says to
/// keep it until `release`.
#[derive(Clone)]
struct Collector {
    state: Arc<Mutex<Collected>>,
}

struct Collected {
    got: Vec<Got>,
    held: Vec<Ack>,
    hold: HoldFn,
}

impl Collector {
    fn new(hold: impl Fn(&Got) -> bool + Send + Sync + 'static) -> Self {
        Collector {
            state: Arc::new(Mutex::new(Collected {
                got: Vec::new(),
                held: Vec::new(),
                hold: Arc::new(hold),
            })),
        }
    }

    fn acking() -> Self {
        Collector::new(|_| false)
    }

    fn got(&self) -> Vec<Got> {
        self.state.lock().unwrap().got.clone()
    }

    fn count(&self) -> usize {
        self.state.lock().unwrap().got.len()
    }

    fn release(&self) {
        let held = std::mem::take(&mut self.state.lock().unwrap().held);
        drop(held);
    }
}

impl RecordSink for Collector {
    fn submit(
        &mut self,
        payload: &[u8],
        meta: &RecordMeta<'_>,
        ack: Ack,
    ) -> impl Future<Output = Result<(), Closed>> + Send {
        let got = Got {
            input: meta.input.unwrap_or_default().to_owned(),
            stream: meta.topic.unwrap_or_default().to_owned(),
            shard: meta.partition.unwrap_or_default().to_owned(),
            offset: meta.offset.unwrap_or_default().to_owned(),
            key: meta.key.unwrap_or_default().to_owned(),
            payload: payload.to_owned(),
        };
        let mut s = self.state.lock().unwrap();
        if (s.hold)(&got) {
            s.held.push(ack);
        }
        s.got.push(got);
        std::future::ready(Ok(()))
    }
}

/// A running input.
struct Running {
    stop: tokio::sync::oneshot::Sender<()>,
    task: tokio::task::JoinHandle<Result<RunStats, KinesisInputError>>,
    metrics: Arc<InputMetrics>,
    checkpoint_path: PathBuf,
}

async fn start(env: &Env, cfg: &KinesisInputConfig, sink: &Collector) -> Running {
    let loader =
        aws_config::defaults(BehaviorVersion::latest()).credentials_provider(credentials());
    let input = cfg.build_with(INPUT, loader).await.unwrap();
    let metrics = input.metrics();
    let checkpoint_path = input.checkpoint_path().to_owned();
    let (stop, rx) = tokio::sync::oneshot::channel::<()>();
    let sink = sink.clone();
    let server = env.server;
    let task = tokio::spawn(async move {
        let r = input
            .run(
                async {
                    let _ = rx.await;
                },
                move |_| sink.clone(),
            )
            .await;
        if let Err(e) = &r {
            eprintln!("[{server}] input failed: {e}");
        }
        r
    });
    Running {
        stop,
        task,
        metrics,
        checkpoint_path,
    }
}

impl Running {
    async fn stop(self) -> RunStats {
        let _ = self.stop.send(());
        self.task
            .await
            .unwrap()
            .expect("the input ran without error")
    }

    fn checkpoints(&self) -> Option<CheckpointFile> {
        read_checkpoints(&self.checkpoint_path)
    }
}

fn read_checkpoints(path: &Path) -> Option<CheckpointFile> {
    let bytes = std::fs::read(path).ok()?;
    Some(serde_json::from_slice(&bytes).expect("a valid checkpoint file"))
}

/// shard → checkpointed sequence number.
fn positions(f: &CheckpointFile) -> BTreeMap<String, Option<String>> {
    f.shards
        .iter()
        .map(|(k, v)| (k.clone(), v.sequence_number.clone()))
        .collect()
}

/// Asserts every put record was submitted exactly once, and per shard in
/// put order (= sequence order: the puts were sequential).
fn assert_exactly_once_in_shard_order(server: &str, puts: &[Put], got: &[Got]) {
    let mut want: BTreeMap<&str, Vec<(&str, &[u8])>> = BTreeMap::new();
    for p in puts {
        want.entry(&p.shard).or_default().push((&p.seq, &p.payload));
    }
    let mut have: BTreeMap<&str, Vec<(&str, &[u8])>> = BTreeMap::new();
    for g in got {
        have.entry(&g.shard)
            .or_default()
            .push((&g.offset, &g.payload));
    }
    assert_eq!(have, want, "[{server}] records per shard, in order");
}

fn unique_dir() -> tempfile::TempDir {
    tempfile::tempdir().unwrap()
}

// ---------------------------------------------------------------- cases

/// Every record once, in shard order; the checkpoint stops before held acks.
async fn case_order_and_held_acks(env: Env) {
    let s = env.server;
    let c = env.client();
    let stream = "order-acks";
    create_stream(&c, stream, 2).await;
    let puts = put_numbered(&c, stream, 0..40).await;
    let shards: BTreeSet<&str> = puts.iter().map(|p| p.shard.as_str()).collect();
    assert_eq!(shards.len(), 2, "[{s}] keys spread over both shards");

    let held: BTreeSet<Vec<u8>> = [7usize, 23]
        .iter()
        .map(|i| format!("{{\"n\":{i}}}").into_bytes())
        .collect();
    let sink = Collector::new(move |g| held.contains(&g.payload));
    let dir = unique_dir();
    let run = start(&env, &env.config(stream, dir.path()), &sink).await;
    wait_for("40 records", 20, || (sink.count() >= 40).then_some(())).await;

    // Per shard: the record before the first held one (or nothing).
    let mut expected: BTreeMap<String, Option<String>> = BTreeMap::new();
    for shard in &shards {
        let of_shard: Vec<&Put> = puts.iter().filter(|p| p.shard == *shard).collect();
        let first_held = of_shard
            .iter()
            .position(|p| p.payload == b"{\"n\":7}" || p.payload == b"{\"n\":23}")
            .unwrap_or(of_shard.len());
        let seq = first_held.checked_sub(1).map(|i| of_shard[i].seq.clone());
        expected.insert((*shard).to_owned(), seq);
    }
    wait_for("checkpoints just before the held records", 10, || {
        run.checkpoints().filter(|f| positions(f) == expected)
    })
    .await;
    // Nothing is acknowledged any more, so nothing may move.
    assert_eq!(positions(&run.checkpoints().unwrap()), expected, "[{s}]");

    sink.release();
    let last: BTreeMap<String, Option<String>> = shards
        .iter()
        .map(|sh| {
            let seq = puts.iter().rfind(|p| p.shard == *sh).unwrap().seq.clone();
            ((*sh).to_owned(), Some(seq))
        })
        .collect();
    wait_for("checkpoints at the last records", 10, || {
        run.checkpoints().filter(|f| positions(f) == last)
    })
    .await;
    let stats = run.stop().await;
    let got = sink.got();
    assert_exactly_once_in_shard_order(s, &puts, &got);
    for g in &got {
        assert_eq!(
            (g.input.as_str(), g.stream.as_str()),
            (INPUT, stream),
            "[{s}]"
        );
    }
    assert_eq!(stats.records, 40, "[{s}] {stats:?}");
    assert_eq!(stats.unacknowledged_at_stop, 0, "[{s}] {stats:?}");
    assert_eq!(stats.shards_started, 2, "[{s}] {stats:?}");
}

/// Stop with unacknowledged records; a restart resumes after the last
/// acknowledged one, skipping nothing.
async fn case_restart_from_checkpoint(env: Env) {
    let s = env.server;
    let c = env.client();
    let stream = "restart";
    create_stream(&c, stream, 1).await;
    let mut puts = put_numbered(&c, stream, 0..30).await;
    let dir = unique_dir();
    let cfg = env.config(stream, dir.path());

    // Record 12's ack never comes: the checkpoint must stay at record 11.
    let sink = Collector::new(|g| g.payload == b"{\"n\":12}");
    let run = start(&env, &cfg, &sink).await;
    wait_for("30 records", 20, || (sink.count() >= 30).then_some(())).await;
    let path = run.checkpoint_path.clone();
    let stats = run.stop().await;
    assert_eq!(
        stats.unacknowledged_at_stop, 18,
        "[{s}] records 12..29: {stats:?}"
    );
    let f = read_checkpoints(&path).expect("written at shutdown");
    assert_eq!(
        positions(&f).into_values().collect::<Vec<_>>(),
        [Some(puts[11].seq.clone())],
        "[{s}] checkpoint after the last acknowledged record"
    );
    drop(sink); // the held ack is dropped after the run: it must change nothing
    assert_eq!(read_checkpoints(&path), Some(f), "[{s}]");

    puts.extend(put_numbered(&c, stream, 30..40).await);
    let sink = Collector::acking();
    let run = start(&env, &cfg, &sink).await;
    wait_for("records 12..39 again", 20, || {
        (sink.count() >= 28).then_some(())
    })
    .await;
    wait_for("the last checkpoint", 10, || {
        run.checkpoints()
            .filter(|f| positions(f).into_values().next() == Some(Some(puts[39].seq.clone())))
    })
    .await;
    let stats = run.stop().await;
    assert_exactly_once_in_shard_order(s, &puts[12..], &sink.got());
    assert_eq!(stats.records, 28, "[{s}] {stats:?}");
}

/// Split a shard mid-stream: the parent's records (one of them held) all
/// come first, then the children's; nothing is skipped.
async fn case_split_shard(env: Env) {
    let s = env.server;
    let c = env.client();
    let stream = "split";
    create_stream(&c, stream, 1).await;
    let mut puts = put_numbered(&c, stream, 0..20).await;
    let parent = puts[0].shard.clone();
    let sink = Collector::new(|g| g.payload == b"{\"n\":5}");
    let dir = unique_dir();
    let run = start(&env, &env.config(stream, dir.path()), &sink).await;
    wait_for("the parent's 20 records", 20, || {
        (sink.count() >= 20).then_some(())
    })
    .await;

    c.split_shard()
        .stream_name(stream)
        .shard_to_split(&parent)
        .new_starting_hash_key("170141183460469231731687303715884105728")
        .send()
        .await
        .unwrap();
    wait_active(&c, stream).await;
    let children_puts = put_numbered(&c, stream, 20..40).await;
    let children: BTreeSet<String> = children_puts.iter().map(|p| p.shard.clone()).collect();
    assert!(!children.contains(&parent), "[{s}] the parent is closed");
    assert_eq!(children.len(), 2, "[{s}] keys spread over both children");

    // Two more shard listings see the children; while a parent record is
    // unacknowledged they must not start.
    let lists = run
        .metrics
        .list_shards
        .load(std::sync::atomic::Ordering::Relaxed);
    wait_for("two more shard listings", 10, || {
        (run.metrics
            .list_shards
            .load(std::sync::atomic::Ordering::Relaxed)
            >= lists + 2)
            .then_some(())
    })
    .await;
    assert_eq!(
        sink.count(),
        20,
        "[{s}] no child record before the parent is finished"
    );
    let f = run.checkpoints().unwrap();
    assert!(!f.is_finished(&parent), "[{s}] {f:?}");

    sink.release();
    wait_for("all 40 records", 20, || (sink.count() >= 40).then_some(())).await;
    let got = sink.got();
    let last_parent = got.iter().rposition(|g| g.shard == parent).unwrap();
    let first_child = got.iter().position(|g| g.shard != parent).unwrap();
    assert!(
        last_parent < first_child,
        "[{s}] parent records before children"
    );
    puts.extend(children_puts);
    wait_for("children checkpointed at their last records", 10, || {
        run.checkpoints().filter(|f| {
            f.is_finished(&parent)
                && children.iter().all(|ch| {
                    let last = puts.iter().rfind(|p| p.shard == *ch).unwrap();
                    f.get(ch).and_then(|c| c.sequence_number.as_deref()) == Some(&last.seq)
                })
        })
    })
    .await;
    let stats = run.stop().await;
    assert_exactly_once_in_shard_order(s, &puts, &sink.got());
    assert_eq!(stats.shards_finished, 1, "[{s}] {stats:?}");
    assert_eq!(stats.shards_started, 3, "[{s}] {stats:?}");
}

fn gzip(b: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    e.write_all(b).unwrap();
    e.finish().unwrap()
}

/// A gzip CloudWatch Logs envelope passes through byte-identical, with the
/// record's metadata.
async fn case_cloudwatch_gzip(env: Env) {
    let s = env.server;
    let c = env.client();
    let stream = "cloudwatch";
    create_stream(&c, stream, 1).await;
    let envelope = br#"{"messageType":"DATA_MESSAGE","owner":"111111111111","logGroup":"API-Gateway-Access-Logs_abc/prod","logStream":"x","subscriptionFilters":["f"],"logEvents":[{"id":"36571244906437478582316335463425315452218585126052659200","timestamp":1432826855000,"message":"{\"requestId\":\"r1\",\"ip\":\"198.51.100.7\",\"status\":\"200\"}"}]}"#;
    let payload = gzip(envelope);
    assert_eq!(&payload[..2], [0x1f, 0x8b]);
    let p = put(&c, stream, "cw-key", payload.clone()).await;
    let sink = Collector::acking();
    let dir = unique_dir();
    let run = start(&env, &env.config(stream, dir.path()), &sink).await;
    wait_for("the record", 20, || (sink.count() >= 1).then_some(())).await;
    let stats = run.stop().await;
    let got = sink.got();
    assert_eq!(
        got,
        [Got {
            input: INPUT.into(),
            stream: stream.into(),
            shard: p.shard,
            offset: p.seq,
            key: b"cw-key".to_vec(),
            payload,
        }],
        "[{s}]"
    );
    assert_eq!(stats.bytes, got[0].payload.len() as u64, "[{s}]");
}

fn varint(mut v: u64, out: &mut Vec<u8>) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn len_field(field: u64, b: &[u8], out: &mut Vec<u8>) {
    varint(field << 3 | 2, out);
    varint(b.len() as u64, out);
    out.extend_from_slice(b);
}

/// A KPL aggregate of (partition key, data) user records.
fn kpl_aggregate(records: &[(&str, &[u8])]) -> Vec<u8> {
    let mut keys: Vec<&str> = Vec::new();
    let mut body = Vec::new();
    let mut recs = Vec::new();
    for (k, d) in records {
        let i = keys.iter().position(|x| x == k).unwrap_or_else(|| {
            keys.push(k);
            keys.len() - 1
        });
        let mut r = Vec::new();
        varint(1 << 3, &mut r);
        varint(i as u64, &mut r);
        len_field(3, d, &mut r);
        recs.push(r);
    }
    for k in &keys {
        len_field(1, k.as_bytes(), &mut body);
    }
    for r in &recs {
        len_field(3, r, &mut body);
    }
    let mut out = vec![0xF3, 0x89, 0x9A, 0xC2];
    out.extend_from_slice(&body);
    out.extend_from_slice(&Md5::digest(&body));
    out
}

/// A KPL aggregate yields its user records, which share one `Ack`; a
/// corrupted one is passed on raw and counted.
async fn case_kpl(env: Env) {
    let s = env.server;
    let c = env.client();
    let stream = "kpl";
    create_stream(&c, stream, 1).await;
    let users: [(&str, &[u8]); 3] = [
        ("tenant-a", b"{\"u\":0}"),
        ("tenant-b", b"{\"u\":1}"),
        ("tenant-a", b"{\"u\":2}"),
    ];
    let aggregate = kpl_aggregate(&users);
    let mut corrupt = kpl_aggregate(&[("tenant-c", b"{\"u\":3}")]);
    let n = corrupt.len();
    corrupt[n - 1] ^= 0xff;
    let plain = put(&c, stream, "plain", b"{\"plain\":1}".to_vec()).await;
    let agg = put(&c, stream, "outer-key", aggregate).await;
    let bad = put(&c, stream, "bad-key", corrupt.clone()).await;

    // User record 1's ack is held: the checkpoint must stay at `plain`.
    let sink = Collector::new(|g| g.payload == b"{\"u\":1}");
    let dir = unique_dir();
    let run = start(&env, &env.config(stream, dir.path()), &sink).await;
    wait_for("5 submissions", 20, || (sink.count() >= 5).then_some(())).await;
    let got = sink.got();
    let summary: Vec<(&str, &[u8], &[u8])> = got
        .iter()
        .map(|g| (g.offset.as_str(), &g.key[..], &g.payload[..]))
        .collect();
    let offsets: Vec<String> = (0..3).map(|i| format!("{}:{i}", agg.seq)).collect();
    assert_eq!(
        summary,
        [
            (plain.seq.as_str(), &b"plain"[..], &b"{\"plain\":1}"[..]),
            (offsets[0].as_str(), b"tenant-a", b"{\"u\":0}"),
            (offsets[1].as_str(), b"tenant-b", b"{\"u\":1}"),
            (offsets[2].as_str(), b"tenant-a", b"{\"u\":2}"),
            (bad.seq.as_str(), b"bad-key", &corrupt[..]),
        ],
        "[{s}]"
    );
    wait_for("the checkpoint at the plain record", 10, || {
        run.checkpoints()
            .filter(|f| positions(f).into_values().next() == Some(Some(plain.seq.clone())))
    })
    .await;
    sink.release();
    wait_for("the checkpoint at the corrupt record", 10, || {
        run.checkpoints()
            .filter(|f| positions(f).into_values().next() == Some(Some(bad.seq.clone())))
    })
    .await;
    let t = run.metrics.total();
    assert_eq!(
        (
            t.records,
            t.kpl_aggregates,
            t.kpl_user_records,
            t.kpl_fallbacks
        ),
        (3, 1, 3, 1),
        "[{s}] {t:?}"
    );
    let stats = run.stop().await;
    assert_eq!((stats.records, stats.submitted), (3, 5), "[{s}] {stats:?}");
}

/// Takes records until the one whose payload is `stuck_on`; that one it
/// never accepts (the `submit` stays pending) or, with `closed`, refuses as
/// if the pipeline had shut down.
#[derive(Clone)]
struct StuckSink {
    got: Arc<Mutex<Vec<Vec<u8>>>>,
    stuck_on: Vec<u8>,
    closed: bool,
}

impl RecordSink for StuckSink {
    fn submit(
        &mut self,
        payload: &[u8],
        _: &RecordMeta<'_>,
        ack: Ack,
    ) -> impl Future<Output = Result<(), Closed>> + Send {
        let stuck = payload == self.stuck_on;
        if !stuck {
            self.got.lock().unwrap().push(payload.to_owned());
        }
        let closed = self.closed;
        async move {
            // Dropped when the input gives up on this submit: completion
            // must not be reported for a record that was never taken.
            let _ack = ack;
            match (stuck, closed) {
                (false, _) => Ok(()),
                (true, true) => Err(Closed),
                (true, false) => std::future::pending().await,
            }
        }
    }
}

/// Shutdown while the pipeline does not take a record (backpressure): the
/// input still stops, checkpoints before that record, and a restart
/// delivers it. A pipeline that closes stops the input the same way.
async fn case_blocked_or_refused_submit(env: Env) {
    let s = env.server;
    let c = env.client();
    for closed in [false, true] {
        let stream = if closed { "refused" } else { "blocked" };
        create_stream(&c, stream, 1).await;
        let puts = put_numbered(&c, stream, 0..10).await;
        let dir = unique_dir();
        let cfg = env.config(stream, dir.path());
        let loader =
            aws_config::defaults(BehaviorVersion::latest()).credentials_provider(credentials());
        let input = cfg.build_with(INPUT, loader).await.unwrap();
        let path = input.checkpoint_path().to_owned();
        let sink = StuckSink {
            got: Arc::default(),
            stuck_on: puts[4].payload.clone(),
            closed,
        };
        let got = sink.got.clone();
        let (stop, rx) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(input.run(
            async {
                let _ = rx.await;
            },
            move |_| sink.clone(),
        ));
        wait_for("records 0..3", 20, || {
            (got.lock().unwrap().len() >= 4).then_some(())
        })
        .await;
        wait_for("the checkpoint at record 3", 10, || {
            read_checkpoints(&path)
                .filter(|f| positions(f).into_values().next() == Some(Some(puts[3].seq.clone())))
        })
        .await;
        if !closed {
            let _ = stop.send(());
        }
        let stats = tokio::time::timeout(Duration::from_secs(10), task)
            .await
            .expect("the input stops")
            .unwrap()
            .unwrap();
        let want_stop = if closed {
            tollgate_kinesis::StopReason::PipelineClosed
        } else {
            tollgate_kinesis::StopReason::Shutdown
        };
        assert_eq!(stats.stop, want_stop, "[{s}] {stats:?}");
        assert_eq!(stats.unacknowledged_at_stop, 1, "[{s}] {stats:?}");
        assert_eq!(got.lock().unwrap().len(), 4, "[{s}]");
        let f = read_checkpoints(&path).unwrap();
        assert_eq!(
            positions(&f).into_values().next(),
            Some(Some(puts[3].seq.clone())),
            "[{s}]"
        );

        let sink = Collector::acking();
        let run = start(&env, &cfg, &sink).await;
        wait_for("records 4..9", 20, || (sink.count() >= 6).then_some(())).await;
        run.stop().await;
        assert_exactly_once_in_shard_order(s, &puts[4..], &sink.got());
    }
}

type Case = fn(Env) -> Pin<Box<dyn Future<Output = ()> + Send>>;

const CASES: [(&str, Case); 6] = [
    ("order_and_held_acks", |e| {
        Box::pin(case_order_and_held_acks(e))
    }),
    ("restart_from_checkpoint", |e| {
        Box::pin(case_restart_from_checkpoint(e))
    }),
    ("split_shard", |e| Box::pin(case_split_shard(e))),
    ("cloudwatch_gzip", |e| Box::pin(case_cloudwatch_gzip(e))),
    ("kpl", |e| Box::pin(case_kpl(e))),
    ("blocked_or_refused_submit", |e| {
        Box::pin(case_blocked_or_refused_submit(e))
    }),
];

// ---------------------------------------------------------------- tests

async fn on_ferrokinesis(case: &str) {
    let (_, f) = CASES.iter().find(|(n, _)| *n == case).unwrap();
    f(start_ferrokinesis(300).await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ferrokinesis_order_and_held_acks() {
    on_ferrokinesis("order_and_held_acks").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ferrokinesis_restart_from_checkpoint() {
    on_ferrokinesis("restart_from_checkpoint").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ferrokinesis_split_shard() {
    on_ferrokinesis("split_shard").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ferrokinesis_cloudwatch_gzip() {
    on_ferrokinesis("cloudwatch_gzip").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ferrokinesis_kpl() {
    on_ferrokinesis("kpl").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ferrokinesis_blocked_or_refused_submit() {
    on_ferrokinesis("blocked_or_refused_submit").await;
}

/// ferrokinesis expires iterators after a configurable TTL: a reader held
/// back by `max_in_flight_records` past it gets a new iterator after its
/// last record and continues without a gap or a repeat.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ferrokinesis_expired_iterator_is_replaced() {
    let env = start_ferrokinesis(1).await;
    let c = env.client();
    let stream = "expiry";
    create_stream(&c, stream, 1).await;
    let mut puts = put_numbered(&c, stream, 0..10).await;
    let dir = unique_dir();
    let mut cfg = env.config(stream, dir.path());
    cfg.max_in_flight_records = 4;
    let sink = Collector::new(|_| true);
    let run = start(&env, &cfg, &sink).await;
    wait_for("4 records", 20, || (sink.count() >= 4).then_some(())).await;
    // The reader is blocked on in-flight records; let its iterator expire.
    tokio::time::sleep(Duration::from_millis(1_300)).await;
    puts.extend(put_numbered(&c, stream, 10..12).await);
    let sink2 = sink.clone();
    let release = tokio::spawn(async move {
        loop {
            sink2.release();
            if sink2.count() >= 12 {
                sink2.release();
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    });
    wait_for("12 records", 20, || (sink.count() >= 12).then_some(())).await;
    release.await.unwrap();
    let t = run.metrics.total();
    assert!(t.expired_iterators >= 1, "{t:?}");
    run.stop().await;
    assert_exactly_once_in_shard_order("ferrokinesis", &puts, &sink.got());
}

/// Every case against kinesis-local: one server for the whole test binary,
/// the cases concurrently (each on its own stream).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kinesis_local_all_cases() {
    let Some(kl) = start_kinesis_local().await else {
        return;
    };
    let mut set = tokio::task::JoinSet::new();
    for (name, case) in CASES {
        let env = kl.env.clone();
        set.spawn(async move { (name, tokio::spawn(case(env)).await) });
    }
    let mut failed = Vec::new();
    while let Some(r) = set.join_next().await {
        let (name, r) = r.unwrap();
        if let Err(e) = r {
            failed.push(format!("{name}: {e}"));
        }
    }
    drop(kl);
    assert!(
        failed.is_empty(),
        "kinesis-local cases failed:\n{}",
        failed.join("\n")
    );
}
