//! The Kinesis input's configuration: one serde struct (the service embeds
//! it as `[inputs.kinesis]`), unknown keys rejected, humantime-style
//! durations (`"200ms"`, `"5s"`, `"1m"`), then [`KinesisInputConfig::check`]
//! reports every problem at once. Nothing here reads files, the environment
//! or the network; credentials are deliberately absent (the AWS default
//! chain provides them, so no secret ever sits in a Tollgate config file).
//!
//! ```toml
//! [inputs.kinesis]
//! stream_name = "apigw-logs"
//! region = "eu-west-1"                      # optional: default chain
//! endpoint_url = "http://127.0.0.1:4567"    # optional: a local Kinesis
//! start = "at_timestamp"                    # trim_horizon | latest | at_timestamp
//! start_timestamp = "2024-05-01T00:00:00Z"  # only with at_timestamp
//! checkpoint_dir = "/var/lib/tollgate/kinesis"
//! poll_interval = "1s"
//! max_records_per_call = 1000
//! max_in_flight_records = 10000
//! backoff = { initial = "100ms", max = "10s" }
//! ```

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use aws_sdk_kinesis::primitives::{DateTime, DateTimeFormat};
use serde::Deserialize;

/// Kinesis allows at most 5 `GetRecords` calls per second per shard.
pub const MIN_POLL_INTERVAL: Duration = Duration::from_millis(200);
/// `GetRecords` returns at most 10,000 records per call.
pub const MAX_RECORDS_PER_CALL: u32 = 10_000;

/// A duration written as a humantime-style string: `"250ms"`, `"5s"`,
/// `"1m30s"`, `"1h"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Dur(pub Duration);

impl Dur {
    pub const fn millis(ms: u64) -> Dur {
        Dur(Duration::from_millis(ms))
    }
}

impl std::str::FromStr for Dur {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let err = || format!("invalid duration {s:?}: expected e.g. \"200ms\", \"5s\", \"1m30s\"");
        let b = s.trim().as_bytes();
        if b.is_empty() {
            return Err(err());
        }
        let (mut i, mut total) = (0, 0u64);
        while i < b.len() {
            let start = i;
            while i < b.len() && b[i].is_ascii_digit() {
                i += 1;
            }
            let n: u64 = std::str::from_utf8(&b[start..i])
                .ok()
                .and_then(|d| d.parse().ok())
                .ok_or_else(err)?;
            let unit = i;
            while i < b.len() && b[i].is_ascii_alphabetic() {
                i += 1;
            }
            let ms = match &b[unit..i] {
                b"ms" => 1,
                b"s" => 1_000,
                b"m" => 60_000,
                b"h" => 3_600_000,
                b"d" => 86_400_000,
                _ => return Err(err()),
            };
            total = n
                .checked_mul(ms)
                .and_then(|v| total.checked_add(v))
                .ok_or_else(err)?;
        }
        Ok(Dur(Duration::from_millis(total)))
    }
}

impl fmt::Display for Dur {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}ms", self.0.as_millis())
    }
}

impl<'de> Deserialize<'de> for Dur {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// Where a shard with no checkpoint starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StartPosition {
    /// The oldest record still retained.
    #[default]
    TrimHorizon,
    /// Only records written after the reader starts.
    Latest,
    /// Records written at or after `start_timestamp`.
    AtTimestamp,
}

/// Retry pacing for throttled and failed calls (see [`crate::backoff`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BackoffConfig {
    /// Wait after the first failure (then doubling).
    #[serde(default = "defaults::backoff_initial")]
    pub initial: Dur,
    /// Longest wait.
    #[serde(default = "defaults::backoff_max")]
    pub max: Dur,
}

impl Default for BackoffConfig {
    fn default() -> Self {
        BackoffConfig {
            initial: defaults::backoff_initial(),
            max: defaults::backoff_max(),
        }
    }
}

/// One Kinesis input: which stream, where its checkpoints live, and how
/// fast and how far ahead it may read.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KinesisInputConfig {
    /// The stream to read (every shard of it).
    pub stream_name: String,
    /// AWS region; absent: the default chain (`AWS_REGION`, profile, IMDS).
    #[serde(default)]
    pub region: Option<String>,
    /// Another endpoint (a local Kinesis, a VPC endpoint); absent: AWS's.
    #[serde(default)]
    pub endpoint_url: Option<String>,
    /// Where shards without a checkpoint start.
    #[serde(default)]
    pub start: StartPosition,
    /// RFC 3339 time for `start = "at_timestamp"`.
    #[serde(default)]
    pub start_timestamp: Option<String>,
    /// Directory of the local checkpoint file. One Tollgate instance per
    /// directory and stream: the file is not shared or locked.
    pub checkpoint_dir: PathBuf,
    /// How often changed checkpoints are written (also written when a shard
    /// finishes and at shutdown).
    #[serde(default = "defaults::checkpoint_interval")]
    pub checkpoint_interval: Dur,
    /// `GetRecords` limit, 1..=10000.
    #[serde(default = "defaults::max_records_per_call")]
    pub max_records_per_call: u32,
    /// Least time between two `GetRecords` calls on a shard, at least 200 ms
    /// (Kinesis allows 5 calls per second per shard, shared by all readers).
    #[serde(default = "defaults::poll_interval")]
    pub poll_interval: Dur,
    /// Kinesis records per shard read but not yet checkpointed (a KPL
    /// aggregate counts once); reading pauses at this bound, which bounds
    /// memory to about this many records per shard.
    #[serde(default = "defaults::max_in_flight_records")]
    pub max_in_flight_records: u32,
    /// Records larger than this are counted (`oversize_records`); they are
    /// still submitted, and the decoder rejects them with a typed reason.
    #[serde(default = "defaults::max_record_bytes")]
    pub max_record_bytes: u64,
    /// How often the shard list is fetched again to find new shards (it is
    /// also fetched whenever a shard ends).
    #[serde(default = "defaults::shard_refresh_interval")]
    pub shard_refresh_interval: Dur,
    /// At shutdown, how long to wait for in-flight records to be
    /// acknowledged before writing the final checkpoints.
    #[serde(default = "defaults::shutdown_timeout")]
    pub shutdown_timeout: Dur,
    /// Timeout of one API call attempt.
    #[serde(default = "defaults::request_timeout")]
    pub request_timeout: Dur,
    /// Split KPL-aggregated records into their user records.
    #[serde(default = "defaults::yes")]
    pub deaggregate_kpl: bool,
    /// Retry pacing for throttling and transient errors.
    #[serde(default)]
    pub backoff: BackoffConfig,
}

mod defaults {
    use super::Dur;
    pub fn backoff_initial() -> Dur {
        Dur::millis(100)
    }
    pub fn backoff_max() -> Dur {
        Dur::millis(10_000)
    }
    pub fn checkpoint_interval() -> Dur {
        Dur::millis(5_000)
    }
    pub fn max_records_per_call() -> u32 {
        1_000
    }
    pub fn poll_interval() -> Dur {
        Dur::millis(1_000)
    }
    pub fn max_in_flight_records() -> u32 {
        10_000
    }
    pub fn max_record_bytes() -> u64 {
        1 << 20
    }
    pub fn shard_refresh_interval() -> Dur {
        Dur::millis(60_000)
    }
    pub fn shutdown_timeout() -> Dur {
        Dur::millis(30_000)
    }
    pub fn request_timeout() -> Dur {
        Dur::millis(30_000)
    }
    pub fn yes() -> bool {
        true
    }
}

/// Every problem found in a configuration.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}", .0.join("; "))]
pub struct ConfigErrors(pub Vec<String>);

/// The start position with its timestamp parsed.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Start {
    TrimHorizon,
    Latest,
    AtTimestamp(DateTime),
}

impl KinesisInputConfig {
    /// A configuration with every optional setting at its default.
    pub fn new(stream_name: &str, checkpoint_dir: impl Into<PathBuf>) -> Self {
        KinesisInputConfig {
            stream_name: stream_name.to_owned(),
            region: None,
            endpoint_url: None,
            start: StartPosition::default(),
            start_timestamp: None,
            checkpoint_dir: checkpoint_dir.into(),
            checkpoint_interval: defaults::checkpoint_interval(),
            max_records_per_call: defaults::max_records_per_call(),
            poll_interval: defaults::poll_interval(),
            max_in_flight_records: defaults::max_in_flight_records(),
            max_record_bytes: defaults::max_record_bytes(),
            shard_refresh_interval: defaults::shard_refresh_interval(),
            shutdown_timeout: defaults::shutdown_timeout(),
            request_timeout: defaults::request_timeout(),
            deaggregate_kpl: true,
            backoff: BackoffConfig::default(),
        }
    }

    /// Checks every field and reports all problems at once.
    pub fn check(&self) -> Result<(), ConfigErrors> {
        self.checked_start().map(drop)
    }

    /// [`check`](Self::check), returning the parsed start position.
    pub(crate) fn checked_start(&self) -> Result<Start, ConfigErrors> {
        let mut p = Vec::new();
        let name_ok = self
            .stream_name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'));
        if self.stream_name.is_empty() || self.stream_name.len() > 128 || !name_ok {
            p.push(format!(
                "stream_name {:?} must be 1-128 characters of [a-zA-Z0-9_.-]",
                self.stream_name
            ));
        }
        if self.region.as_deref().is_some_and(|r| r.trim().is_empty()) {
            p.push("region must not be empty (leave it out for the default chain)".into());
        }
        if let Some(u) = &self.endpoint_url {
            if !(u.starts_with("http://") || u.starts_with("https://")) {
                p.push("endpoint_url must start with http:// or https://".into());
            }
        }
        let start = match (self.start, &self.start_timestamp) {
            (StartPosition::TrimHorizon, None) => Some(Start::TrimHorizon),
            (StartPosition::Latest, None) => Some(Start::Latest),
            (StartPosition::AtTimestamp, Some(ts)) => {
                match DateTime::from_str(ts, DateTimeFormat::DateTime) {
                    Ok(t) => Some(Start::AtTimestamp(t)),
                    Err(_) => {
                        p.push(format!(
                            "start_timestamp {ts:?} is not an RFC 3339 time such as \"2024-05-01T00:00:00Z\""
                        ));
                        None
                    }
                }
            }
            (StartPosition::AtTimestamp, None) => {
                p.push("start = \"at_timestamp\" needs start_timestamp".into());
                None
            }
            (_, Some(_)) => {
                p.push("start_timestamp is only used with start = \"at_timestamp\"".into());
                None
            }
        };
        if self.checkpoint_dir.as_os_str().is_empty() {
            p.push("checkpoint_dir must not be empty".into());
        }
        if !(1..=MAX_RECORDS_PER_CALL).contains(&self.max_records_per_call) {
            p.push(format!(
                "max_records_per_call must be 1..={MAX_RECORDS_PER_CALL} (GetRecords' limit), got {}",
                self.max_records_per_call
            ));
        }
        if self.poll_interval.0 < MIN_POLL_INTERVAL {
            p.push(format!(
                "poll_interval must be at least 200ms (Kinesis allows 5 GetRecords calls per second per shard), got {}",
                self.poll_interval
            ));
        }
        if self.max_in_flight_records == 0 {
            p.push("max_in_flight_records must be positive".into());
        }
        if self.max_record_bytes == 0 {
            p.push("max_record_bytes must be positive".into());
        }
        for (name, d) in [
            ("checkpoint_interval", self.checkpoint_interval),
            ("shard_refresh_interval", self.shard_refresh_interval),
            ("request_timeout", self.request_timeout),
            ("backoff.initial", self.backoff.initial),
        ] {
            if d.0.is_zero() {
                p.push(format!("{name} must be positive"));
            }
        }
        if self.backoff.max < self.backoff.initial {
            p.push("backoff.max must be at least backoff.initial".into());
        }
        match start {
            Some(s) if p.is_empty() => Ok(s),
            _ => Err(ConfigErrors(p)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse_in_humantime_style() {
        assert_eq!("200ms".parse::<Dur>(), Ok(Dur::millis(200)));
        assert_eq!("1m30s".parse::<Dur>(), Ok(Dur::millis(90_000)));
        assert_eq!("2h".parse::<Dur>(), Ok(Dur::millis(7_200_000)));
        for bad in ["", "5", "s", "5 parsecs", "-1s", "99999999999999999999d"] {
            assert!(bad.parse::<Dur>().is_err(), "{bad:?}");
        }
    }

    #[test]
    fn a_minimal_config_takes_the_defaults() {
        let c: KinesisInputConfig =
            toml::from_str("stream_name = \"s\"\ncheckpoint_dir = \"/tmp/x\"\n").unwrap();
        assert_eq!(c, KinesisInputConfig::new("s", "/tmp/x"));
        assert_eq!(c.checked_start(), Ok(Start::TrimHorizon));
    }

    #[test]
    fn the_documented_example_parses_and_checks() {
        let doc = include_str!("config.rs");
        let toml_block: String = doc
            .lines()
            .skip_while(|l| !l.starts_with("//! ```toml"))
            .skip(2) // the fence and the `[inputs.kinesis]` table header
            .take_while(|l| !l.starts_with("//! ```"))
            .map(|l| format!("{}\n", l.trim_start_matches("//!").trim_start()))
            .collect();
        let c: KinesisInputConfig = toml::from_str(&toml_block).unwrap();
        assert_eq!(c.start, StartPosition::AtTimestamp);
        assert_eq!(c.backoff.max, Dur::millis(10_000));
        assert!(matches!(c.checked_start(), Ok(Start::AtTimestamp(_))));
    }

    #[test]
    fn unknown_keys_are_rejected() {
        let e = toml::from_str::<KinesisInputConfig>(
            "stream_name = \"s\"\ncheckpoint_dir = \"d\"\nshard = 1\n",
        )
        .unwrap_err();
        assert!(e.to_string().contains("unknown field"), "{e}");
        let e = toml::from_str::<KinesisInputConfig>(
            "stream_name = \"s\"\ncheckpoint_dir = \"d\"\nbackoff = { min = \"1s\" }\n",
        )
        .unwrap_err();
        assert!(e.to_string().contains("unknown field"), "{e}");
    }

    #[test]
    fn every_problem_is_reported_at_once() {
        let mut c = KinesisInputConfig::new("bad name!", "");
        c.endpoint_url = Some("localhost:4567".into());
        c.start = StartPosition::AtTimestamp;
        c.max_records_per_call = 10_001;
        c.poll_interval = Dur::millis(100);
        c.max_in_flight_records = 0;
        c.backoff.max = Dur::millis(1);
        let ConfigErrors(p) = c.check().unwrap_err();
        let all = p.join("\n");
        for needle in [
            "stream_name",
            "endpoint_url",
            "start_timestamp",
            "checkpoint_dir",
            "max_records_per_call",
            "poll_interval",
            "max_in_flight_records",
            "backoff.max",
        ] {
            assert!(all.contains(needle), "missing {needle} in:\n{all}");
        }
        assert_eq!(p.len(), 8, "{all}");

        let mut c = KinesisInputConfig::new("s", "d");
        c.start_timestamp = Some("2024-01-01T00:00:00Z".into());
        assert!(c.check().is_err(), "a timestamp without at_timestamp");
        c.start = StartPosition::AtTimestamp;
        c.start_timestamp = Some("yesterday".into());
        assert!(c.check().is_err());
    }
}
