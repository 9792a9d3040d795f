//! What decoding a record yields: events, skips and typed rejections.
//!
//! A *skip* is a record that is fine but carries no event (a CloudWatch
//! control message, an API Gateway execution-log line, a blank line); it is
//! counted, never an error. A *rejection* is a record Tollgate could not use;
//! its [`RejectReason`] is a bounded label for metrics and dead-letter output,
//! its `detail` a human sentence that never quotes record values.

use std::fmt;

use serde::Serialize;

use crate::event::Event;

/// One item out of a record. A record yields one item, or one per element of
/// a batch (JSON array, CloudWatch `logEvents`).
// Events are the common case and the output Vec is reused, so the size gap
// costs nothing; boxing would cost an allocation per event.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq)]
pub enum Decoded {
    Event(Event),
    Skipped(SkipReason),
    Rejected(Rejection),
}

/// Why a record was passed over without an event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SkipReason {
    /// CloudWatch Logs `CONTROL_MESSAGE` (a destination health check).
    ControlMessage,
    /// An API Gateway execution-log line (free text, not an access log).
    ExecutionLog,
    /// An empty or whitespace-only line.
    Blank,
    /// A JSON array or CloudWatch envelope with no elements.
    EmptyBatch,
}

impl SkipReason {
    pub const ALL: [SkipReason; 4] = [
        SkipReason::ControlMessage,
        SkipReason::ExecutionLog,
        SkipReason::Blank,
        SkipReason::EmptyBatch,
    ];
    pub fn as_str(self) -> &'static str {
        match self {
            SkipReason::ControlMessage => "control_message",
            SkipReason::ExecutionLog => "execution_log",
            SkipReason::Blank => "blank",
            SkipReason::EmptyBatch => "empty_batch",
        }
    }
}

/// Why a record (or one element of a batch) was rejected.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RejectReason {
    /// Not valid JSON (or valid JSON followed by garbage).
    NotJson,
    /// Valid JSON, but not an object (or array of objects).
    NotObject,
    /// Larger than `max_record_bytes`.
    TooLarge,
    /// Gzip that inflates past `max_decompressed_bytes` (inflating stops there).
    DecompressedTooLarge,
    /// Starts with the gzip magic but does not inflate.
    BadGzip,
    /// More elements than `max_batch_events` in one record.
    BatchTooLarge,
    /// Nesting deeper than `max_depth`.
    TooDeep,
    /// No timestamp field.
    MissingTimestamp,
    /// A timestamp field that does not parse (or lies outside 1990–2200).
    InvalidTimestamp,
    /// None of the known formats matches.
    UnknownFormat,
    /// The tenant rule found no value.
    MissingTenant,
    /// The tenant value is not a valid tenant id.
    InvalidTenant,
}

impl RejectReason {
    pub const ALL: [RejectReason; 12] = [
        RejectReason::NotJson,
        RejectReason::NotObject,
        RejectReason::TooLarge,
        RejectReason::DecompressedTooLarge,
        RejectReason::BadGzip,
        RejectReason::BatchTooLarge,
        RejectReason::TooDeep,
        RejectReason::MissingTimestamp,
        RejectReason::InvalidTimestamp,
        RejectReason::UnknownFormat,
        RejectReason::MissingTenant,
        RejectReason::InvalidTenant,
    ];

    /// The metric label / dead-letter reason.
    pub fn as_str(self) -> &'static str {
        match self {
            RejectReason::NotJson => "not_json",
            RejectReason::NotObject => "not_object",
            RejectReason::TooLarge => "too_large",
            RejectReason::DecompressedTooLarge => "decompressed_too_large",
            RejectReason::BadGzip => "bad_gzip",
            RejectReason::BatchTooLarge => "batch_too_large",
            RejectReason::TooDeep => "too_deep",
            RejectReason::MissingTimestamp => "missing_timestamp",
            RejectReason::InvalidTimestamp => "invalid_timestamp",
            RejectReason::UnknownFormat => "unknown_format",
            RejectReason::MissingTenant => "missing_tenant",
            RejectReason::InvalidTenant => "invalid_tenant",
        }
    }
}

impl fmt::Display for RejectReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A rejection with its context.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Rejection {
    pub reason: RejectReason,
    /// A sentence for operators; never contains record values (it may name keys).
    pub detail: String,
    /// Position inside a batch record (JSON array element, `logEvents` index).
    pub index: Option<usize>,
}

impl Rejection {
    pub fn new(reason: RejectReason, detail: impl Into<String>) -> Self {
        Rejection {
            reason,
            detail: detail.into(),
            index: None,
        }
    }
}

impl fmt::Display for Rejection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.reason)?;
        if let Some(i) = self.index {
            write!(f, " [element {i}]")?;
        }
        if !self.detail.is_empty() {
            write!(f, ": {}", self.detail)?;
        }
        Ok(())
    }
}

/// Running totals, for summaries and tests.
#[derive(Debug, Default, Clone, PartialEq, Eq, Serialize)]
pub struct Tally {
    pub decoded: u64,
    pub skipped: std::collections::BTreeMap<SkipReason, u64>,
    pub rejected: std::collections::BTreeMap<RejectReason, u64>,
}

impl Tally {
    pub fn add(&mut self, d: &Decoded) {
        match d {
            Decoded::Event(_) => self.decoded += 1,
            Decoded::Skipped(s) => *self.skipped.entry(*s).or_default() += 1,
            Decoded::Rejected(r) => *self.rejected.entry(r.reason).or_default() += 1,
        }
    }

    pub fn rejected_total(&self) -> u64 {
        self.rejected.values().sum()
    }

    pub fn skipped_total(&self) -> u64 {
        self.skipped.values().sum()
    }
}

impl fmt::Display for Tally {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "decoded={} skipped={} rejected={}",
            self.decoded,
            self.skipped_total(),
            self.rejected_total()
        )?;
        for (k, v) in &self.skipped {
            write!(f, " skipped.{}={v}", k.as_str())?;
        }
        for (k, v) in &self.rejected {
            write!(f, " rejected.{}={v}", k.as_str())?;
        }
        Ok(())
    }
}
