//! The running input: a coordinator that lists shards and starts one reader
//! task per shard, and the shard reader's `GetRecords` loop. The only place
//! Kinesis records enter Tollgate.
//!
//! **Coordinator** ([`KinesisInput::run`]): one `select!` over shutdown,
//! finished reader tasks, the checkpoint-write timer and the shard-list
//! timer. It lists shards (paginated `ListShards`) at start, every
//! `shard_refresh_interval` and whenever a shard finishes (its children
//! appear then), and starts the shards [`crate::shards::plan`] allows. It
//! owns the checkpoint file and writes it every `checkpoint_interval` when
//! something changed, at once when a shard finishes or starts, and at the end.
//!
//! **Shard reader**: one `select!` over the stop signal, acknowledgements
//! (tickets sent by each record's [`Ack`] closure over an unbounded channel —
//! bounded in practice by `max_in_flight_records`), and the next `GetRecords`
//! call, which waits for `poll_interval` since the previous call (so at most
//! 5 calls/s/shard) and for room under `max_in_flight_records`. Records are
//! submitted in shard order; a KPL aggregate's user records share the
//! record's `Ack`. The checkpoint ([`SequenceLedger`]) only passes records
//! whose `Ack` ran. A shard whose iterator ran out (closed) and whose records
//! are all acknowledged is marked finished.
//!
//! **Shutdown**: readers stop calling `GetRecords` (a `submit` waiting on
//! backpressure is cancelled and its record will be read again), wait for
//! outstanding acknowledgements until `shutdown_timeout`, publish their
//! checkpoints; then the coordinator writes the file and returns [`RunStats`].
//!
//! Errors: throttling (`ProvisionedThroughputExceededException`, KMS and
//! `LimitExceeded` throttling), timeouts, connection failures and 5xx are
//! retried with [`Backoff`] and counted; `ExpiredIteratorException` gets a
//! new iterator after the last record read. Anything else (access denied, no
//! such stream, invalid argument) stops the input with
//! [`KinesisInputError::Api`] — after the same drain and checkpoint write.
//! The SDK's own retries are off so every throttle is seen and counted here.

use std::borrow::Cow;
use std::collections::BTreeSet;
use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;
use aws_config::BehaviorVersion;
use aws_sdk_kinesis::config::http::HttpResponse;
use aws_sdk_kinesis::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_sdk_kinesis::primitives::DateTime;
use aws_sdk_kinesis::types::{Record, ShardIteratorType};
use aws_sdk_kinesis::Client;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinSet;
use tokio::time::Instant;
use tollgate_events::{Ack, RecordMeta, RecordSink};

use crate::backoff::Backoff;
use crate::checkpoint::{CheckpointError, CheckpointFile, CheckpointStore};
use crate::config::{ConfigErrors, KinesisInputConfig, Start};
use crate::kpl::{self, Deaggregated};
use crate::ledger::{SequenceLedger, Ticket};
use crate::metrics::{add, inc, InputMetrics, ShardMetrics};
use crate::shards::{self, Position, ShardInfo};
use crate::ShardId;

/// Why the input stopped with an error, grouped by what the caller does next.
#[derive(Debug, thiserror::Error)]
pub enum KinesisInputError {
    /// The configuration is wrong: fix it (nothing to retry).
    #[error("kinesis input configuration: {0}")]
    Config(#[from] ConfigErrors),
    /// The checkpoint file cannot be read or written: fix the disk or the
    /// file; restarting without it would re-read or skip records.
    #[error(transparent)]
    Checkpoint(#[from] CheckpointError),
    /// Kinesis refused a call in a way retrying will not fix (access denied,
    /// no such stream, invalid argument): fix the cause and restart; reading
    /// resumes from the checkpoints.
    #[error("kinesis {operation} on stream {stream}: {message}")]
    Api {
        operation: &'static str,
        stream: String,
        /// The service's error code, when it sent one.
        code: Option<String>,
        message: String,
    },
    /// A shard reader panicked (a bug): restart; reading resumes from the
    /// last checkpoints.
    #[error("a kinesis shard reader panicked: {0}")]
    Panicked(String),
}

/// Why `run` returned normally.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum StopReason {
    /// The shutdown future resolved.
    #[default]
    Shutdown,
    /// A sink reported the pipeline closed.
    PipelineClosed,
}

/// What one `run` did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RunStats {
    /// Kinesis records read.
    pub records: u64,
    /// Records submitted to the sinks (a KPL aggregate counts its user records).
    pub submitted: u64,
    /// Payload bytes read.
    pub bytes: u64,
    /// Shard readers started.
    pub shards_started: u64,
    /// Shards read to their end with every record acknowledged.
    pub shards_finished: u64,
    /// Records still unacknowledged when `shutdown_timeout` ran out (or not
    /// taken by the pipeline): they are read again after a restart.
    pub unacknowledged_at_stop: u64,
    pub stop: StopReason,
}

/// A Kinesis input, built and ready to [`run`](KinesisInput::run).
pub struct KinesisInput {
    shared: Arc<Shared>,
    store: CheckpointStore,
}

/// What the coordinator and the shard readers share.
struct Shared {
    /// The SDK client (retries off: see the module docs).
    client: Client,
    cfg: KinesisInputConfig,
    /// `cfg.start` with its timestamp parsed.
    start: Start,
    /// The configured input's name, for `RecordMeta::input`.
    input_name: String,
    metrics: Arc<InputMetrics>,
    /// The checkpoints as readers advance them; the coordinator writes them.
    checkpoints: Mutex<CheckpointFile>,
    /// Set when `checkpoints` changed since the last write.
    dirty: AtomicBool,
}

impl Shared {
    fn checkpoints(&self) -> std::sync::MutexGuard<'_, CheckpointFile> {
        self.checkpoints.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl KinesisInputConfig {
    /// Checks the configuration, loads the checkpoint file and creates the
    /// client from the AWS default chain (credentials, and the region unless
    /// `region` is set). Nothing is read from the stream yet.
    pub async fn build(&self, input_name: &str) -> Result<KinesisInput, KinesisInputError> {
        self.build_with(input_name, aws_config::defaults(BehaviorVersion::latest()))
            .await
    }

    /// [`build`](Self::build) from a caller's loader (tests pass static
    /// credentials; a service may pass a profile). `region`, `endpoint_url`,
    /// the request timeout and the retry policy of this configuration are
    /// applied on top of it.
    pub async fn build_with(
        &self,
        input_name: &str,
        loader: aws_config::ConfigLoader,
    ) -> Result<KinesisInput, KinesisInputError> {
        let start = self.checked_start()?;
        let store = CheckpointStore::open(&self.checkpoint_dir, &self.stream_name)?;
        let checkpoints = store.load()?;
        let mut loader = loader.retry_config(RetryConfig::disabled()).timeout_config(
            TimeoutConfig::builder()
                .connect_timeout(Duration::from_secs(5).min(self.request_timeout.0))
                .operation_attempt_timeout(self.request_timeout.0)
                .build(),
        );
        if let Some(r) = &self.region {
            loader = loader.region(aws_config::Region::new(r.clone()));
        }
        if let Some(u) = &self.endpoint_url {
            loader = loader.endpoint_url(u);
        }
        let sdk = loader.load().await;
        Ok(KinesisInput {
            shared: Arc::new(Shared {
                client: Client::new(&sdk),
                cfg: self.clone(),
                start,
                input_name: input_name.to_owned(),
                metrics: Arc::default(),
                checkpoints: Mutex::new(checkpoints),
                dirty: AtomicBool::new(false),
            }),
            store,
        })
    }
}

impl KinesisInput {
    /// The input's counters and gauges; valid before, during and after `run`.
    pub fn metrics(&self) -> Arc<InputMetrics> {
        self.shared.metrics.clone()
    }

    /// The checkpoint file this input reads and writes.
    pub fn checkpoint_path(&self) -> &std::path::Path {
        self.store.path()
    }

    /// Reads every shard of the stream until `shutdown` resolves, a sink
    /// reports the pipeline closed, or a non-retryable error occurs.
    ///
    /// `make_sink` is called once per shard reader (each runs as its own
    /// Tokio task, so shards are read in parallel and one shard's
    /// backpressure does not stall the others); a sink that is a cheap
    /// handle can be cloned: `|_| sink.clone()`. Each record is submitted as
    /// its payload (untouched, except KPL aggregates, which are split),
    /// a [`RecordMeta`] (`input`, `topic` = stream, `partition` = shard id,
    /// `offset` = sequence number — `"<seq>:<index>"` for a KPL user record —
    /// and `key` = partition key), and an [`Ack`].
    ///
    /// The invariant: a shard's checkpoint names a record only after that
    /// record's `Ack` and the `Ack`s of all earlier records of the shard ran.
    pub async fn run<S, F>(
        self,
        shutdown: impl Future<Output = ()>,
        mut make_sink: F,
    ) -> Result<RunStats, KinesisInputError>
    where
        S: RecordSink + 'static,
        F: FnMut(&ShardId) -> S,
    {
        let KinesisInput { shared, store } = self;
        let cfg = &shared.cfg;
        let (stop_tx, stop_rx) = watch::channel(None::<Instant>);
        let mut tasks: JoinSet<(ShardId, Result<ShardOutcome, KinesisInputError>)> = JoinSet::new();
        let mut running = BTreeSet::new();
        let mut stats = RunStats::default();
        let mut backoff = Backoff::new(cfg.backoff.initial.0, cfg.backoff.max.0, seed("list"));
        let mut next_list = Instant::now();
        let mut next_write = Instant::now() + cfg.checkpoint_interval.0;
        let mut shutdown = std::pin::pin!(shutdown);

        let result: Result<StopReason, KinesisInputError> = loop {
            tokio::select! {
                biased;
                () = &mut shutdown => break Ok(StopReason::Shutdown),
                Some(joined) = tasks.join_next() => {
                    let (id, outcome) = match joined {
                        Ok((id, Ok(o))) => (id, o),
                        Ok((_, Err(e))) => break Err(e),
                        Err(e) => break Err(KinesisInputError::Panicked(e.to_string())),
                    };
                    running.remove(&id);
                    stats.add(&outcome);
                    match outcome.end {
                        ShardEnd::PipelineClosed => break Ok(StopReason::PipelineClosed),
                        ShardEnd::Stopped => {}
                        ShardEnd::Finished => {
                            tracing::info!(shard = %id, "kinesis shard finished");
                            // Failures are counted, logged and retried later.
                            let _ = write_checkpoints(&shared, &store).await;
                            next_list = Instant::now();
                        }
                    }
                }
                () = tokio::time::sleep_until(next_write) => {
                    if shared.dirty.load(Ordering::Acquire) {
                        let _ = write_checkpoints(&shared, &store).await;
                    }
                    next_write = Instant::now() + cfg.checkpoint_interval.0;
                }
                () = tokio::time::sleep_until(next_list) => match list_shards(&shared).await {
                    Ok(listed) => {
                        backoff.reset();
                        next_list = Instant::now() + cfg.shard_refresh_interval.0;
                        stats.shards_started += start_ready_shards(
                            &shared, &listed, &mut running, &mut tasks, &stop_rx, &mut make_sink,
                        );
                        if shared.dirty.load(Ordering::Acquire) {
                            let _ = write_checkpoints(&shared, &store).await;
                        }
                    }
                    Err(Failure::Fatal(e)) => break Err(e),
                    Err(_) => {
                        let wait = backoff.next_delay();
                        tracing::warn!(retry_in = ?wait, "kinesis ListShards failed; retrying");
                        next_list = Instant::now() + wait;
                    }
                },
            }
        };

        // Stop reading, let the readers drain their acknowledgements, collect
        // their final checkpoints, write them.
        let deadline = Instant::now() + cfg.shutdown_timeout.0;
        let _ = stop_tx.send(Some(deadline));
        let hard_deadline = deadline + cfg.request_timeout.0 + Duration::from_secs(1);
        let mut first_error = None;
        loop {
            match tokio::time::timeout_at(hard_deadline, tasks.join_next()).await {
                Ok(None) => break,
                Ok(Some(Ok((_, Ok(o))))) => stats.add(&o),
                Ok(Some(Ok((_, Err(e))))) => {
                    first_error.get_or_insert(e);
                }
                Ok(Some(Err(e))) => {
                    first_error.get_or_insert(KinesisInputError::Panicked(e.to_string()));
                }
                Err(_) => {
                    // Readers stuck past every deadline: their checkpoints
                    // are as published so far, which is safe.
                    tasks.abort_all();
                    while tasks.join_next().await.is_some() {}
                    break;
                }
            }
        }
        let written = write_checkpoints(&shared, &store).await;
        let reason = result?;
        if let Some(e) = first_error {
            return Err(e);
        }
        written?;
        stats.stop = reason;
        Ok(stats)
    }
}

impl RunStats {
    fn add(&mut self, o: &ShardOutcome) {
        self.records += o.records;
        self.submitted += o.submitted;
        self.bytes += o.bytes;
        self.unacknowledged_at_stop += o.unacknowledged;
        if o.end == ShardEnd::Finished {
            self.shards_finished += 1;
        }
    }
}

/// Writes the checkpoint file if possible; failures are counted, logged and
/// retried by the next write (the in-memory state is kept).
/// The file is written on the blocking pool (it `fsync`s twice).
async fn write_checkpoints(
    shared: &Shared,
    store: &CheckpointStore,
) -> Result<(), CheckpointError> {
    shared.dirty.store(false, Ordering::Release);
    let snapshot = shared.checkpoints().clone();
    let writer = store.clone();
    let saved = tokio::task::spawn_blocking(move || writer.save(&snapshot))
        .await
        .unwrap_or_else(|e| {
            Err(CheckpointError::Io {
                path: store.path().to_owned(),
                source: std::io::Error::other(e),
            })
        });
    match saved {
        Ok(()) => {
            inc(&shared.metrics.checkpoint_writes);
            Ok(())
        }
        Err(e) => {
            shared.dirty.store(true, Ordering::Release);
            inc(&shared.metrics.checkpoint_failures);
            tracing::warn!(error = %e, "kinesis checkpoint write failed");
            Err(e)
        }
    }
}

fn start_ready_shards<S, F>(
    shared: &Arc<Shared>,
    listed: &[ShardInfo],
    running: &mut BTreeSet<ShardId>,
    tasks: &mut JoinSet<(ShardId, Result<ShardOutcome, KinesisInputError>)>,
    stop: &watch::Receiver<Option<Instant>>,
    make_sink: &mut F,
) -> u64
where
    S: RecordSink + 'static,
    F: FnMut(&ShardId) -> S,
{
    let ready = {
        let mut cp = shared.checkpoints();
        if shards::prune(&mut cp, listed) {
            shared.dirty.store(true, Ordering::Release);
        }
        let ready = shards::plan(listed, &cp, running, shared.start);
        for (id, _) in &ready {
            if !cp.shards.contains_key(id.as_str()) {
                // Recorded at once: a restart must know this shard was read
                // (see `shards` on `latest`).
                cp.shards.insert(id.as_str().to_owned(), Default::default());
                shared.dirty.store(true, Ordering::Release);
            }
        }
        ready
    };
    let n = ready.len() as u64;
    for (id, position) in ready {
        tracing::info!(shard = %id, ?position, "kinesis shard reader starting");
        let reader = ShardReader::new(
            shared.clone(),
            id.clone(),
            position,
            make_sink(&id),
            stop.clone(),
        );
        running.insert(id.clone());
        tasks.spawn(async move { (id, reader.run().await) });
    }
    n
}

/// How a failed call is handled.
enum Failure {
    Throttled,
    Expired,
    Transient,
    Fatal(KinesisInputError),
}

const THROTTLING_CODES: [&str; 7] = [
    "ProvisionedThroughputExceededException",
    "LimitExceededException",
    "KMSThrottlingException",
    "ThrottlingException",
    "Throttling",
    "RequestLimitExceeded",
    "TooManyRequestsException",
];

fn classify<E>(operation: &'static str, stream: &str, e: SdkError<E, HttpResponse>) -> Failure
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    let fatal = |code: Option<String>, e: &dyn std::error::Error| {
        Failure::Fatal(KinesisInputError::Api {
            operation,
            stream: stream.to_owned(),
            code,
            message: DisplayErrorContext(e).to_string(),
        })
    };
    match &e {
        SdkError::TimeoutError(_) | SdkError::DispatchFailure(_) | SdkError::ResponseError(_) => {
            Failure::Transient
        }
        SdkError::ServiceError(ctx) => {
            let code = ctx.err().code();
            let status = ctx.raw().status().as_u16();
            match code {
                Some(c) if THROTTLING_CODES.contains(&c) => Failure::Throttled,
                Some("ExpiredIteratorException") => Failure::Expired,
                Some(
                    "InternalFailureException"
                    | "InternalFailure"
                    | "ServiceUnavailable"
                    | "ServiceUnavailableException"
                    | "ResourceInUseException"
                    | "ExpiredNextTokenException",
                ) => Failure::Transient,
                _ if status == 429 => Failure::Throttled,
                _ if status >= 500 => Failure::Transient,
                _ => fatal(code.map(str::to_owned), &e),
            }
        }
        _ => fatal(None, &e),
    }
}

async fn list_shards(shared: &Shared) -> Result<Vec<ShardInfo>, Failure> {
    let stream = &shared.cfg.stream_name;
    let mut out = Vec::new();
    let mut token: Option<String> = None;
    loop {
        let req = shared.client.list_shards();
        let req = match &token {
            // The stream name must not be repeated with a continuation token.
            Some(t) => req.next_token(t),
            None => req.stream_name(stream),
        };
        let resp = match req.send().await {
            Ok(r) => r,
            Err(e) => {
                inc(&shared.metrics.list_shards_errors);
                let f = classify("ListShards", stream, e);
                if let Failure::Fatal(e) = &f {
                    tracing::error!(error = %e, "kinesis ListShards failed");
                }
                return Err(f);
            }
        };
        for s in resp.shards() {
            out.push(ShardInfo {
                id: ShardId::new(s.shard_id()),
                parent: s.parent_shard_id().map(ShardId::new),
                adjacent_parent: s.adjacent_parent_shard_id().map(ShardId::new),
                closed: s
                    .sequence_number_range()
                    .and_then(|r| r.ending_sequence_number())
                    .is_some(),
            });
        }
        token = resp.next_token().map(str::to_owned);
        if token.is_none() {
            inc(&shared.metrics.list_shards);
            return Ok(out);
        }
    }
}

fn seed(s: &str) -> u64 {
    let nanos = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0);
    s.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
    }) ^ nanos
}

/// How a shard reader ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ShardEnd {
    /// Closed, read to the end, every record acknowledged.
    Finished,
    /// Told to stop.
    Stopped,
    /// Its sink reported the pipeline closed.
    PipelineClosed,
}

#[derive(Debug)]
struct ShardOutcome {
    end: ShardEnd,
    records: u64,
    submitted: u64,
    bytes: u64,
    unacknowledged: u64,
}

/// What a read step asks the loop to do next.
enum Step {
    Continue,
    Stop,
    PipelineClosed,
}

/// One shard's `GetRecords` loop; see the module docs.
struct ShardReader<S> {
    shared: Arc<Shared>,
    id: ShardId,
    sink: S,
    metrics: Arc<ShardMetrics>,
    /// Acknowledgements and the checkpoint.
    progress: Progress,
    /// Where the first iterator starts.
    start: Position,
    /// The iterator for the next `GetRecords`; `None`: ask for a new one.
    iterator: Option<String>,
    /// Sequence number of the last record submitted: a new iterator (after
    /// an expired one) starts after it.
    last_read: Option<String>,
    /// When a `LATEST` iterator was first asked for (a little earlier, to
    /// be safe): a replacement iterator starts there instead of at the
    /// then-latest record, so an expiry before the first record skips nothing.
    latest_since: Option<DateTime>,
    /// `GetRecords` returned no next iterator: the shard is closed and read.
    closed: bool,
    ack_tx: mpsc::UnboundedSender<Ticket>,
    backoff: Backoff,
    /// Earliest time of the next call (keeps ≤ 5 calls/s and backs off).
    next_call: Instant,
    stop: watch::Receiver<Option<Instant>>,
    stop_closed: bool,
    records: u64,
    submitted: u64,
    bytes: u64,
}

/// The acknowledgement side of a shard reader, apart from the sink so that
/// acknowledgements are applied even while a `submit` is waiting.
struct Progress {
    /// Which records are acknowledged; the checkpoint.
    ledger: SequenceLedger,
    ack_rx: mpsc::UnboundedReceiver<Ticket>,
    metrics: Arc<ShardMetrics>,
    shared: Arc<Shared>,
    id: ShardId,
}

impl Progress {
    fn on_ack(&mut self, first: Ticket) {
        let mut advanced = self.ledger.acked(first);
        while let Ok(t) = self.ack_rx.try_recv() {
            advanced |= self.ledger.acked(t);
        }
        self.metrics
            .in_flight
            .store(self.ledger.pending() as u64, Ordering::Relaxed);
        if advanced {
            inc(&self.metrics.checkpoint_advances);
            let seq = self.ledger.checkpoint().map(str::to_owned);
            self.shared
                .checkpoints()
                .shards
                .entry(self.id.as_str().to_owned())
                .or_default()
                .sequence_number = seq;
            self.shared.dirty.store(true, Ordering::Release);
        }
    }
}

impl<S: RecordSink> ShardReader<S> {
    fn new(
        shared: Arc<Shared>,
        id: ShardId,
        start: Position,
        sink: S,
        stop: watch::Receiver<Option<Instant>>,
    ) -> Self {
        let checkpoint = match &start {
            Position::After(s) => Some(s.clone()),
            Position::Start(_) => None,
        };
        let (ack_tx, ack_rx) = mpsc::unbounded_channel();
        let cfg = &shared.cfg;
        let metrics = shared.metrics.shard(id.as_str());
        ShardReader {
            progress: Progress {
                ledger: SequenceLedger::new(checkpoint),
                ack_rx,
                metrics: metrics.clone(),
                shared: shared.clone(),
                id: id.clone(),
            },
            metrics,
            backoff: Backoff::new(cfg.backoff.initial.0, cfg.backoff.max.0, seed(id.as_str())),
            start,
            iterator: None,
            last_read: None,
            latest_since: None,
            closed: false,
            ack_tx,
            next_call: Instant::now(),
            stop,
            stop_closed: false,
            records: 0,
            submitted: 0,
            bytes: 0,
            sink,
            id,
            shared,
        }
    }

    fn stopping(&self) -> bool {
        self.stop_closed || self.stop.borrow().is_some()
    }

    async fn run(mut self) -> Result<ShardOutcome, KinesisInputError> {
        let max_held = self.shared.cfg.max_in_flight_records as usize;
        let end = loop {
            if self.stopping() {
                break ShardEnd::Stopped;
            }
            if self.closed && self.progress.ledger.is_settled() {
                break ShardEnd::Finished;
            }
            let can_read = !self.closed && self.progress.ledger.held() < max_held;
            tokio::select! {
                biased;
                changed = self.stop.changed() => {
                    if changed.is_err() {
                        self.stop_closed = true;
                    }
                }
                Some(t) = self.progress.ack_rx.recv() => self.progress.on_ack(t),
                () = tokio::time::sleep_until(self.next_call), if can_read => {
                    match self.read_once().await? {
                        Step::Continue => {}
                        Step::Stop => break ShardEnd::Stopped,
                        Step::PipelineClosed => break ShardEnd::PipelineClosed,
                    }
                }
            }
        };
        if end != ShardEnd::Finished {
            self.drain().await;
        }
        // Acknowledgements that arrived during the drain may finish it.
        let end = if self.closed && self.progress.ledger.is_settled() {
            ShardEnd::Finished
        } else {
            end
        };
        if end == ShardEnd::Finished {
            self.finish();
        }
        Ok(ShardOutcome {
            end,
            records: self.records,
            submitted: self.submitted,
            bytes: self.bytes,
            unacknowledged: self.progress.ledger.held() as u64,
        })
    }

    /// Waits for outstanding acknowledgements until the stop deadline.
    async fn drain(&mut self) {
        let deadline = (*self.stop.borrow())
            .unwrap_or_else(|| Instant::now() + self.shared.cfg.shutdown_timeout.0);
        while self.progress.ledger.pending() > 0 {
            tokio::select! {
                Some(t) = self.progress.ack_rx.recv() => self.progress.on_ack(t),
                () = tokio::time::sleep_until(deadline) => break,
            }
        }
        if self.progress.ledger.pending() > 0 {
            tracing::warn!(
                stream = %self.shared.cfg.stream_name, shard = %self.id,
                unacknowledged = self.progress.ledger.pending(),
                "kinesis shard stopped with unacknowledged records; they will be read again"
            );
        }
    }

    fn finish(&mut self) {
        self.metrics.finished.store(true, Ordering::Relaxed);
        let mut cp = self.shared.checkpoints();
        let e = cp.shards.entry(self.id.as_str().to_owned()).or_default();
        e.finished = true;
        if let Some(seq) = self.progress.ledger.checkpoint() {
            e.sequence_number = Some(seq.to_owned());
        }
        self.shared.dirty.store(true, Ordering::Release);
    }

    /// Handles a failed call: counts it and schedules the next one.
    fn failed(&mut self, f: Failure) -> Result<Step, KinesisInputError> {
        let now = Instant::now();
        let poll = self.shared.cfg.poll_interval.0;
        match f {
            Failure::Fatal(e) => {
                tracing::error!(shard = %self.id, error = %e, "kinesis shard reader failed");
                return Err(e);
            }
            Failure::Throttled => {
                inc(&self.metrics.throttles);
                self.next_call = now + self.backoff.next_delay().max(poll);
            }
            Failure::Transient => {
                inc(&self.metrics.transient_errors);
                self.next_call = now + self.backoff.next_delay().max(poll);
            }
            Failure::Expired => {
                inc(&self.metrics.expired_iterators);
                self.iterator = None;
            }
        }
        let failures = self.backoff.failures();
        if failures == 5 {
            tracing::warn!(shard = %self.id, failures, "kinesis calls keep failing; retrying");
        } else {
            tracing::debug!(shard = %self.id, failures, "kinesis call retried");
        }
        Ok(Step::Continue)
    }

    /// A fresh iterator: after the last record read, else after the
    /// checkpoint, else at the start position.
    async fn new_iterator(&mut self) -> Result<Option<String>, Failure> {
        let shared = &self.shared;
        let req = shared
            .client
            .get_shard_iterator()
            .stream_name(&shared.cfg.stream_name)
            .shard_id(self.id.as_str());
        let after = self.last_read.clone().or_else(|| match &self.start {
            Position::After(s) => Some(s.clone()),
            Position::Start(_) => None,
        });
        let req = match (after, &self.start) {
            (Some(seq), _) => req
                .shard_iterator_type(ShardIteratorType::AfterSequenceNumber)
                .starting_sequence_number(seq),
            (None, Position::Start(Start::TrimHorizon)) | (None, Position::After(_)) => {
                req.shard_iterator_type(ShardIteratorType::TrimHorizon)
            }
            (None, Position::Start(Start::AtTimestamp(t))) => req
                .shard_iterator_type(ShardIteratorType::AtTimestamp)
                .timestamp(*t),
            (None, Position::Start(Start::Latest)) => match self.latest_since {
                Some(t) => req
                    .shard_iterator_type(ShardIteratorType::AtTimestamp)
                    .timestamp(t),
                None => {
                    self.latest_since =
                        Some(DateTime::from(SystemTime::now() - Duration::from_secs(5)));
                    req.shard_iterator_type(ShardIteratorType::Latest)
                }
            },
        };
        match req.send().await {
            Ok(out) => Ok(out.shard_iterator),
            Err(e) => Err(
                match classify("GetShardIterator", &shared.cfg.stream_name, e) {
                    // Not expected here; retry as a transient failure.
                    Failure::Expired => Failure::Transient,
                    f => f,
                },
            ),
        }
    }

    async fn read_once(&mut self) -> Result<Step, KinesisInputError> {
        let iterator = match self.iterator.take() {
            Some(it) => it,
            None => match self.new_iterator().await {
                Ok(Some(it)) => it,
                Ok(None) => {
                    self.closed = true;
                    return Ok(Step::Continue);
                }
                Err(f) => return self.failed(f),
            },
        };
        let cfg = &self.shared.cfg;
        self.next_call = Instant::now() + cfg.poll_interval.0;
        let room = cfg.max_in_flight_records as usize
            - self
                .progress
                .ledger
                .held()
                .min(cfg.max_in_flight_records as usize);
        let limit = (cfg.max_records_per_call as usize).min(room).max(1);
        inc(&self.metrics.get_records_calls);
        let resp = self
            .shared
            .client
            .get_records()
            .shard_iterator(&iterator)
            .limit(limit as i32)
            .send()
            .await;
        let out = match resp {
            Ok(out) => out,
            Err(e) => {
                let f = classify("GetRecords", &cfg.stream_name, e);
                if !matches!(f, Failure::Expired) {
                    self.iterator = Some(iterator);
                }
                return self.failed(f);
            }
        };
        self.backoff.reset();
        if let Some(m) = out.millis_behind_latest {
            self.metrics
                .millis_behind_latest
                .store(m, Ordering::Relaxed);
        }
        match out.next_shard_iterator {
            Some(next) => self.iterator = Some(next),
            None => self.closed = true,
        }
        for rec in out.records {
            match self.submit(rec).await {
                Step::Continue => {}
                other => return Ok(other),
            }
        }
        // The sink may batch: pass the records on before the next wait.
        if self.sink.flush().await.is_err() {
            return Ok(Step::PipelineClosed);
        }
        Ok(Step::Continue)
    }

    /// Hands one Kinesis record (or its KPL user records) to the sink.
    async fn submit(&mut self, rec: Record) -> Step {
        let Record {
            sequence_number: seq,
            data,
            partition_key,
            ..
        } = rec;
        let data = data.into_inner();
        // One reference count instead of three string copies per record.
        let shared = self.shared.clone();
        let cfg = &shared.cfg;
        self.records += 1;
        self.bytes += data.len() as u64;
        inc(&self.metrics.records);
        add(&self.metrics.bytes, data.len() as u64);
        if data.len() as u64 > cfg.max_record_bytes {
            inc(&self.metrics.oversize_records);
        }
        let ticket = self.progress.ledger.received(seq.clone());
        self.metrics
            .in_flight
            .store(self.progress.ledger.pending() as u64, Ordering::Relaxed);
        let tx = self.ack_tx.clone();
        let ack = Ack::new(move || {
            // The reader may be gone (stopped); then nothing is waiting.
            let _ = tx.send(ticket);
        });
        let key = partition_key.as_deref().unwrap_or_default().as_bytes();
        let split = if cfg.deaggregate_kpl {
            kpl::deaggregate(&data)
        } else {
            Deaggregated::NotAggregated
        };
        let parts: Vec<(Cow<'_, str>, &[u8], &[u8])> = match &split {
            Deaggregated::NotAggregated => vec![(Cow::Borrowed(&seq), key, &data[..])],
            Deaggregated::Invalid(e) => {
                inc(&self.metrics.kpl_fallbacks);
                tracing::debug!(
                    shard = %self.id, sequence_number = %seq, reason = %e,
                    "KPL magic without a valid aggregate; passed on raw"
                );
                vec![(Cow::Borrowed(&seq), key, &data[..])]
            }
            Deaggregated::Aggregated(users) => {
                inc(&self.metrics.kpl_aggregates);
                add(&self.metrics.kpl_user_records, users.len() as u64);
                users
                    .iter()
                    .enumerate()
                    .map(|(i, u)| (Cow::Owned(format!("{seq}:{i}")), u.partition_key, u.data))
                    .collect()
            }
        };
        for (offset, key, payload) in parts {
            if self.stopping() {
                self.progress.ledger.abandon(ticket);
                return Step::Stop;
            }
            let meta = RecordMeta {
                input: Some(&shared.input_name),
                topic: Some(&cfg.stream_name),
                partition: Some(self.id.as_str()),
                offset: Some(&offset),
                key: Some(key),
                ..RecordMeta::default()
            };
            let submitting = self.sink.submit(payload, &meta, ack.clone());
            tokio::pin!(submitting);
            let accepted = loop {
                tokio::select! {
                    biased;
                    r = &mut submitting => break r.map_err(|_| Step::PipelineClosed),
                    _ = self.stop.changed() => break Err(Step::Stop),
                    // Earlier records finish while this one waits.
                    Some(t) = self.progress.ack_rx.recv() => self.progress.on_ack(t),
                }
            };
            if let Err(step) = accepted {
                // Not taken (or only some of its user records were): the
                // checkpoint never passes it, so it is read again.
                self.progress.ledger.abandon(ticket);
                return step;
            }
            self.submitted += 1;
        }
        self.last_read = Some(seq);
        Step::Continue
    }
}
