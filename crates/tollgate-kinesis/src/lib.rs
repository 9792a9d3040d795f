//! Tollgate's Kinesis input: reads every shard of one Kinesis data stream
//! with `GetRecords` (aws-sdk-kinesis) and hands each record to a
//! [`tollgate_events::RecordSink`] as its payload bytes plus a
//! [`RecordMeta`](tollgate_events::RecordMeta) (stream, shard, sequence
//! number, partition key) and an [`Ack`](tollgate_events::Ack). A shard's
//! checkpoint — kept in a local file — advances only past records whose
//! `Ack` ran, that is, once all of the record's events were scored and their
//! alerts handed on, and never past an earlier record still in flight: a
//! crash re-reads records, it never skips one (at-least-once). Payloads
//! reach the decoder untouched (it opens gzip CloudWatch envelopes itself),
//! except KPL-aggregated records, which are split into their user records
//! here.
//!
//! Layout, in the order a record flows:
//! - [`config`]: [`KinesisInputConfig`] (serde, `[inputs.kinesis]`) and its
//!   `check()`;
//! - [`input`]: [`KinesisInputConfig::build`] (fallible set-up) →
//!   [`KinesisInput::run`], the coordinator (shard listing, resharding,
//!   checkpoint writes, shutdown) and one reader task per shard (the
//!   `GetRecords` loop, limits, backoff, submission);
//! - [`shards`]: which shards may start, and where (parents before children);
//! - [`kpl`]: KPL de-aggregation (pure);
//! - [`ledger`]: which sequence number may be checkpointed (pure);
//! - [`checkpoint`]: the checkpoint file (atomic writes);
//! - [`backoff`], [`metrics`]: retry pacing; counters for the service to export.
//!
//! Deliberately absent: decoding and detection (the sink's job), enhanced
//! fan-out (`SubscribeToShard`), and coordination between several Tollgate
//! instances (leases): one instance owns a stream's checkpoint directory.

pub mod backoff;
pub mod checkpoint;
pub mod config;
pub mod input;
pub mod kpl;
pub mod ledger;
pub mod metrics;
pub mod shards;

pub use checkpoint::{CheckpointError, CheckpointFile, CheckpointStore, ShardCheckpoint};
pub use config::{BackoffConfig, ConfigErrors, Dur, KinesisInputConfig, StartPosition};
pub use input::{KinesisInput, KinesisInputError, RunStats, StopReason};
pub use metrics::{InputMetrics, ShardMetrics, ShardSnapshot};

/// A Kinesis shard id (`shardId-000000000000`).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ShardId(String);

impl ShardId {
    pub fn new(id: impl Into<String>) -> Self {
        ShardId(id.into())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for ShardId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}
