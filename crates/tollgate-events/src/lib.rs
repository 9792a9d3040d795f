//! `tollgate-events` turns the bytes of one stream record into normalized
//! [`Event`]s, or into typed rejections and skips, and does nothing else: no
//! I/O, no clocks, no async. It reads AWS API Gateway access logs (REST, HTTP
//! API, WebSocket), CloudWatch Logs subscription envelopes (gzip or plain),
//! Zscaler ZIA NSS web / firewall / DNS feeds and ZPA LSS user activity.
//!
//! Layout, in the order a record flows through it:
//! - [`config`]: what an input's records are and the limits they must keep;
//! - [`decode`]: the [`Decoder`] — size limit, gzip, containers, then one
//!   record at a time;
//! - `scan`: one-pass JSON flattening (`a.b.c` paths, borrowed strings);
//! - `fields`: which vendor key feeds which normalized field, and `auto`;
//! - `time`, `token`: timestamp shapes; JWT claims and subject hashing;
//! - [`tenant`]: tenant rules and validation;
//! - [`event`], [`outcome`]: what comes out;
//! - [`ack`]: the completion token ([`Ack`]) and [`RecordSink`], the
//!   interface inputs hand records to.
//!
//! ```
//! use tollgate_events::{DecodeConfig, Decoded, Decoder, Format, RecordMeta, TenantRule};
//! let cfg = DecodeConfig::new(Format::Auto, TenantRule::Static { tenant: "acme".parse().unwrap() });
//! let mut dec = Decoder::new(&cfg).unwrap();
//! let mut out = Vec::new();
//! let line = br#"{"requestId":"r1","ip":"198.51.100.7","requestTime":"10/Jun/2023:15:36:28 +0000","httpMethod":"GET","resourcePath":"/pets","status":"200","protocol":"HTTP/1.1","responseLength":"184"}"#;
//! dec.decode(line, &RecordMeta::default(), &mut out);
//! let Decoded::Event(ev) = &out[0] else { panic!() };
//! assert_eq!(ev.status, Some(200));
//! assert_eq!(ev.bytes_out, Some(184));
//! ```

pub mod ack;
pub mod config;
pub mod decode;
pub mod event;
mod fields;
pub mod outcome;
mod scan;
pub mod tenant;
mod time;
mod token;

pub use ack::{Ack, Closed, RecordSink};
pub use config::{DecodeConfig, Format, Limits, SubjectKey};
pub use decode::{gunzip_bounded, ConfigError, Decoder, Quirks};
pub use event::{Event, Source, TenantId, TenantIdError, Text};
pub use outcome::{Decoded, RejectReason, Rejection, SkipReason, Tally};
pub use tenant::{NameSource, RecordMeta, TenantRule};
