//! The [`Decoder`]: one record's bytes in, [`Decoded`] items out.
//!
//! The steps, in order: size limit → gzip (bounded inflate) → container
//! (JSON array batch, CloudWatch Logs envelope, or one object) → flatten
//! ([`crate::scan`]) → format (forced or `auto`) → slots ([`crate::fields`]) →
//! timestamp → tenant ([`crate::tenant`]) → [`Event`]. Flattening and slots
//! are one pass: the scanner hands each pair to a `Picker`, which keeps only
//! the values that feed a slot or the tenant rule (every pair, when the
//! format is told from the record). Every failure becomes a [`Rejection`]
//! with a reason; nothing here panics on any input (the fuzz targets and
//! property tests hold it to that).

use std::borrow::Cow;
use std::collections::HashSet;
use std::io::Read;
use std::net::IpAddr;
use std::sync::Mutex;

use base64::Engine as _;
use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use serde::Deserialize;
use serde_json::value::RawValue;

use crate::config::{DecodeConfig, Format, Limits};
use crate::event::{Event, Text};
use crate::fields::{self, KeyInfo, KeyMemo, RecordFormat, Slot, AUTO_ORDER, SLOTS};
use crate::outcome::{Decoded, RejectReason, Rejection, SkipReason};
use crate::scan::{self, Path, Root, Scalar, ScanError, Sink, Value};
use crate::tenant::{RecordMeta, TenantCtx, TenantError, TenantResolver, TenantRuleError};
use crate::time::{self, DayMemo};
use crate::token;

/// A configuration the decoder cannot run with. All problems are listed.
#[derive(Debug, thiserror::Error)]
#[error("{}", .0.join("; "))]
pub struct ConfigError(pub Vec<String>);

impl From<TenantRuleError> for ConfigError {
    fn from(e: TenantRuleError) -> Self {
        ConfigError(vec![e.to_string()])
    }
}

/// Counts of quirks the decoder met and resolved by a documented rule.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Quirks {
    /// Records whose epoch time and text time differ by more than a second;
    /// the epoch time is used (it is absolute, the text time is zone-local).
    pub time_disagreements: u64,
}

/// Decodes the records of one input. Cheap to clone; not shared between
/// threads (each input task owns one).
#[derive(Debug, Clone)]
pub struct Decoder {
    format: Format,
    limits: Limits,
    tenant: TenantResolver,
    feed_tz: Tz,
    /// Operator field mappings as (flattened path, slot).
    mapped: Vec<(String, Slot)>,
    /// The record paths the tenant rule reads ([`TenantResolver::paths`]).
    tenant_paths: Vec<String>,
    subject_key: [u8; 32],
    pub quirks: Quirks,
    /// Per-record buffers, reused from record to record (boxed: a record
    /// takes them out of the decoder and puts them back, and a box moves
    /// as one pointer; `None` only while a record holds them, or before the
    /// first record).
    bufs: Option<Box<Buffers>>,
}

/// A decoder's per-record buffers. Between records they hold no data, only
/// capacity; their `'static` element types are recycled to each record's
/// lifetime by [`recycle`].
#[derive(Clone)]
struct Buffers {
    scan: scan::Scratch<KeyInfo>,
    /// What the keys met so far mean.
    memo: KeyMemo,
    /// The dates of the last times read.
    days: DayMemo,
    /// Values of the fields that repeat, kept to be shared.
    interned: Interned,
    /// The keyed hashes of recent token subjects.
    subjects: token::SubjectCache,
    /// Every pair of the record, while its format is not yet known.
    pairs: Vec<(KeyRef<'static>, KeyInfo, Value<'static>)>,
    /// The keys of `pairs` that are not borrowed from the record.
    keys: String,
    /// The first value at each tenant path.
    tenant: Vec<Option<Value<'static>>>,
}

impl Buffers {
    fn new(subject_key: [u8; 32]) -> Self {
        Buffers {
            scan: Default::default(),
            memo: Default::default(),
            days: Default::default(),
            interned: Default::default(),
            subjects: token::SubjectCache::new(subject_key),
            pairs: Vec::new(),
            keys: String::new(),
            tenant: Vec::new(),
        }
    }
}

/// Capacity and caches only: nothing worth printing in a decoder's `Debug`.
impl std::fmt::Debug for Buffers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Buffers").finish_non_exhaustive()
    }
}

/// Empties a vector of `Copy` data and moves its allocation to another
/// lifetime without copying or allocating (std collects in place when the
/// layouts match) and without `unsafe`.
// `filter_map` is what changes the element type; its closure never runs.
#[allow(clippy::unnecessary_filter_map)]
fn recycle<T: Copy, U: Copy>(mut v: Vec<T>) -> Vec<U> {
    v.clear();
    v.into_iter().filter_map(|_| None).collect()
}

/// A stored pair's key: borrowed from the record, or a range of
/// `Picker::keys`.
#[derive(Debug, Clone, Copy)]
enum KeyRef<'a> {
    Record(&'a str),
    Keys(usize, usize),
}

/// The scanner's sink: picks, per slot, the best-ranked value, and the first
/// value at each tenant path, as the record is scanned. When the format is
/// forced, keys the format does not know are dropped at once; otherwise every
/// pair is kept until the record's format is known.
struct Picker<'a, 'd> {
    /// The forced format, or `None` (then `pairs` keeps every pair).
    fmt: Option<RecordFormat>,
    mapped: &'d [(String, Slot)],
    tenant_paths: &'d [String],
    memo: &'d mut KeyMemo,
    days: &'d mut DayMemo,
    interned: &'d mut Interned,
    subjects: &'d mut token::SubjectCache,
    /// Per slot, the best value so far ([`Slots`]).
    slots: Slots<'a>,
    /// Per tenant path: its first value.
    tenant: Vec<Option<Value<'a>>>,
    pairs: Vec<(KeyRef<'a>, KeyInfo, Value<'a>)>,
    keys: String,
}

/// The best value for each slot so far: its rank (`u8::MAX`: none yet) and
/// the value, in two arrays so that an offer writes only what it must.
struct Slots<'a> {
    ranks: [u8; SLOTS],
    values: [Value<'a>; SLOTS],
}

impl<'a> Slots<'a> {
    fn new() -> Self {
        Slots {
            ranks: [u8::MAX; SLOTS],
            values: [Value::Null; SLOTS],
        }
    }

    /// The value picked for `slot`.
    fn get(&self, slot: Slot) -> Option<Value<'a>> {
        let i = slot as usize;
        (self.ranks[i] != u8::MAX).then(|| self.values[i])
    }
}

impl<'a> Sink<'a> for Picker<'a, '_> {
    type Key = KeyInfo;

    #[inline(always)]
    fn key(&mut self, path: &str) -> KeyInfo {
        let (mapped, tenant_paths) = (self.mapped, self.tenant_paths);
        self.memo
            .get(path, |k| KeyInfo::of(k, mapped, tenant_paths))
    }

    #[inline(always)]
    fn pair(&mut self, path: Path<'_, 'a>, info: KeyInfo, value: Value<'a>, unescaped: &str) {
        if let Some(t) = info.tenant() {
            if let Some(t @ None) = self.tenant.get_mut(t) {
                *t = Some(value);
            }
        }
        match self.fmt {
            Some(fmt) => {
                if let Some((slot, rank)) = info.slot(fmt) {
                    offer(&mut self.slots, slot, rank, value, unescaped);
                }
            }
            None => {
                let k = match path {
                    Path::Record(s) => KeyRef::Record(s),
                    Path::Scratch(s) => {
                        let from = self.keys.len();
                        self.keys.push_str(s);
                        KeyRef::Keys(from, self.keys.len())
                    }
                };
                self.pairs.push((k, info, value));
            }
        }
    }
}

impl<'a> Picker<'a, '_> {
    fn key_text(&self, k: KeyRef<'a>) -> &str {
        match k {
            KeyRef::Record(s) => s,
            KeyRef::Keys(a, b) => &self.keys[a..b],
        }
    }

    /// Up to `n` keys, for error messages.
    fn key_sample(&self, n: usize) -> String {
        let mut out = String::new();
        for (i, (k, ..)) in self.pairs.iter().take(n).enumerate() {
            if i > 0 {
                out.push_str(", ");
            }
            out.extend(self.key_text(*k).chars().take(40));
        }
        if self.pairs.len() > n {
            out.push_str(", …");
        }
        out
    }
}

/// Offers a value to the slot its key maps to: it takes the slot if it
/// outranks what is there (operator mappings outrank the format's table: see
/// [`KeyInfo::of`]). Absent values (null, sentinels) leave the slot to a
/// lower-ranked alias.
#[inline(always)]
fn offer<'a>(slots: &mut Slots<'a>, slot: usize, rank: u8, value: Value<'a>, unescaped: &str) {
    match value {
        Value::Null => return,
        Value::Str(s) if is_sentinel(s) => return,
        Value::Esc(a, b) if is_sentinel(&unescaped[a..b]) => return,
        _ => {}
    }
    if let (Some(r), Some(v)) = (slots.ranks.get_mut(slot), slots.values.get_mut(slot)) {
        // Ranks are below `u8::MAX` (see `KeyInfo`), so a value always beats
        // an empty slot.
        if rank < *r {
            *r = rank;
            *v = value;
        }
    }
}

/// Long values of the fields that take few distinct values in a feed (a
/// deployment's token issuers and OAuth client ids, a handful of each; its
/// user agents, a few hundred), kept as `'static` text that their `Text`s
/// refer to instead of each allocating a copy (a `Text` holds only 24 bytes
/// inline, and an issuer URL is longer: the allocation and its free were a
/// tenth of a record's cost). A value is kept once for the whole process
/// ([`KEPT`], which every decoder shares and which keeps it reachable) and
/// lives as long as the process, within [`INTERN_BUDGET`] bytes in all;
/// past that, values are copied as before (and the decoder no longer takes
/// the shared list's lock for a value it has not met). Each decoder
/// remembers the last value per hash slot, so the shared list is only
/// looked at when a slot's value changes: 1,024 slots (16 KiB per decoder),
/// as a stream of many tenants carries an issuer and a client id or two per
/// tenant — with 16, the Kafka load's 100 tenants took the shared list's
/// lock on two records in three.
#[derive(Debug, Clone)]
struct Interned {
    slots: Box<[Option<&'static str>]>,
    /// The shared list was full when this decoder last asked it.
    full: bool,
}

impl Default for Interned {
    fn default() -> Self {
        Interned {
            slots: vec![None; Interned::SLOTS].into_boxed_slice(),
            full: false,
        }
    }
}

/// Bytes that [`KEPT`] may hold, for all decoders of the process together
/// (a user agent is ≈ 100 bytes: 2,600 of them).
const INTERN_BUDGET: usize = 256 << 10;

/// Every value kept by an [`Interned`], and their total length.
static KEPT: Mutex<(Option<HashSet<&'static str>>, usize)> = Mutex::new((None, 0));

impl Interned {
    const SLOTS: usize = 1 << 10;
    /// Longer values are kept only up to this length (labels are shorter).
    const MAX_LEN: usize = 256;

    /// `Text::from(s)`, sharing the text of values met before.
    #[inline]
    fn text(&mut self, s: &str) -> Text {
        if s.len() <= std::mem::size_of::<Text>() || s.len() > Self::MAX_LEN {
            return Text::from(s);
        }
        let (a, b) = scan::words(s.as_bytes());
        let h = (a ^ b.rotate_left(29) ^ s.len() as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15);
        let i = (h >> (64 - Self::SLOTS.trailing_zeros())) as usize;
        match self.slots[i] {
            Some(t) if t == s => Text::const_new(t),
            _ if self.full => Text::from(s),
            _ => self.keep(i, s),
        }
    }

    #[cold]
    fn keep(&mut self, i: usize, s: &str) -> Text {
        let mut kept = KEPT.lock().unwrap_or_else(|e| e.into_inner());
        let (set, bytes) = &mut *kept;
        let set = set.get_or_insert_with(HashSet::new);
        let t = match set.get(s) {
            Some(t) => *t,
            None if *bytes + s.len() <= INTERN_BUDGET => {
                let t: &'static str = Box::leak(Box::from(s));
                set.insert(t);
                *bytes += s.len();
                t
            }
            None => {
                self.full = true;
                return Text::from(s);
            }
        };
        self.slots[i] = Some(t);
        Text::const_new(t)
    }
}

/// Where a record sits inside its container.
#[derive(Default, Clone, Copy)]
struct Env<'e> {
    log_group: Option<&'e str>,
    log_stream: Option<&'e str>,
    cw_id: Option<&'e str>,
    cw_ts: Option<DateTime<Utc>>,
    index: Option<usize>,
}

#[derive(Deserialize)]
struct Envelope<'a> {
    #[serde(rename = "messageType", borrow)]
    message_type: Cow<'a, str>,
    #[serde(rename = "logGroup", default, borrow)]
    log_group: Option<Cow<'a, str>>,
    #[serde(rename = "logStream", default, borrow)]
    log_stream: Option<Cow<'a, str>>,
    #[serde(rename = "logEvents", borrow)]
    log_events: Option<Vec<LogEvent<'a>>>,
}

#[derive(Deserialize)]
struct LogEvent<'a> {
    #[serde(default, borrow)]
    id: Option<Cow<'a, str>>,
    #[serde(default)]
    timestamp: Option<f64>,
    #[serde(borrow)]
    message: Cow<'a, str>,
}

/// Sentinels that mean "no value" in every format.
#[inline(always)]
pub(crate) fn is_sentinel(s: &str) -> bool {
    let b = s.as_bytes();
    // The common case first: every sentinel, blank-padded or not, starts
    // with `-`, `N` or a blank (at or below a space), so any other first
    // byte settles it.
    match b {
        [] => true,
        [f, ..] if *f > b' ' && *f != b'-' && *f != b'N' => false,
        // API Gateway's usual one.
        [b'-'] => true,
        _ => is_sentinel_trimmed(s),
    }
}

/// [`is_sentinel`], the long way; out of line, so that the registers of the
/// scanner's loop, where `is_sentinel` is inlined, need not make room for
/// it.
#[cold]
#[inline(never)]
fn is_sentinel_trimmed(s: &str) -> bool {
    matches!(s.trim_ascii(), "" | "-" | "None" | "NA" | "N/A")
}

/// An API Gateway execution-log line: `(<request id>) <free text>`.
fn is_execution_log(b: &[u8]) -> bool {
    if b.first() != Some(&b'(') {
        return false;
    }
    let Some(end) = b.iter().take(80).position(|&c| c == b')') else {
        return false;
    };
    end >= 9
        && b[1..end]
            .iter()
            .all(|c| c.is_ascii_hexdigit() || *c == b'-')
}

fn trim(b: &[u8]) -> &[u8] {
    let b = b.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(b);
    let start = b
        .iter()
        .position(|c| !c.is_ascii_whitespace())
        .unwrap_or(b.len());
    let end = b
        .iter()
        .rposition(|c| !c.is_ascii_whitespace())
        .map_or(start, |e| e + 1);
    &b[start..end]
}

/// Inflates gzip (multi-member) up to `limit` bytes; past it, stops.
pub fn gunzip_bounded(data: &[u8], limit: usize) -> Result<Vec<u8>, RejectReason> {
    let mut out = Vec::with_capacity((data.len() * 4).min(limit));
    let mut dec = flate2::read::MultiGzDecoder::new(data).take(limit as u64 + 1);
    match dec.read_to_end(&mut out) {
        Ok(_) if out.len() > limit => Err(RejectReason::DecompressedTooLarge),
        Ok(_) => Ok(out),
        Err(_) => Err(RejectReason::BadGzip),
    }
}

impl Decoder {
    /// Checks the configuration and builds a decoder.
    pub fn new(cfg: &DecodeConfig) -> Result<Self, ConfigError> {
        let mut errs = Vec::new();
        let tenant = match cfg.tenant.compile() {
            Ok(t) => Some(t),
            Err(e) => {
                errs.push(e.to_string());
                None
            }
        };
        let feed_tz = match time::parse_tz(&cfg.feed_time_zone) {
            Some(tz) => tz,
            None => {
                errs.push(format!(
                    "feed_time_zone {:?} is not an IANA time zone",
                    cfg.feed_time_zone
                ));
                Tz::UTC
            }
        };
        let mut mapped = Vec::new();
        for (name, ptr) in &cfg.fields {
            match (fields::mappable(name), fields::pointer_to_path(ptr)) {
                (Some(slot), Ok(path)) => mapped.push((path, slot)),
                (None, _) => errs.push(format!(
                    "fields.{name}: not a mappable field (one of {})",
                    fields::MAPPABLE_NAMES
                )),
                (_, Err(e)) => errs.push(format!("fields.{name}: {e}")),
            }
        }
        let l = &cfg.limits;
        for (name, v) in [
            ("max_record_bytes", l.max_record_bytes),
            ("max_decompressed_bytes", l.max_decompressed_bytes),
            ("max_batch_events", l.max_batch_events),
            ("max_depth", l.max_depth),
        ] {
            if v == 0 {
                errs.push(format!("limits.{name} must be greater than 0"));
            }
        }
        if l.max_depth > 100 {
            errs.push("limits.max_depth must be at most 100".into());
        }
        if tenant
            .as_ref()
            .is_some_and(|t| t.paths().len() > fields::MAX_TENANT_PATHS)
        {
            errs.push(format!(
                "the tenant rule reads more than {} record fields",
                fields::MAX_TENANT_PATHS
            ));
        }
        match tenant {
            Some(tenant) if errs.is_empty() => Ok(Decoder {
                format: cfg.format,
                limits: cfg.limits.clone(),
                tenant_paths: tenant.paths(),
                tenant,
                feed_tz,
                mapped,
                subject_key: cfg.subject_key.0,
                quirks: Quirks::default(),
                bufs: None,
            }),
            _ => Err(ConfigError(errs)),
        }
    }

    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    /// The same decoder with other limits (for a whole-file batch, say).
    pub fn with_limits(mut self, limits: Limits) -> Self {
        self.limits = limits;
        self
    }

    /// Decodes one record (a Kafka message, a Kinesis record, a line of a
    /// file) and appends what it yields to `out`.
    pub fn decode(&mut self, record: &[u8], meta: &RecordMeta<'_>, out: &mut Vec<Decoded>) {
        if record.len() > self.limits.max_record_bytes {
            out.push(reject(
                RejectReason::TooLarge,
                format!(
                    "record is {} bytes; limits.max_record_bytes is {}",
                    record.len(),
                    self.limits.max_record_bytes
                ),
            ));
            return;
        }
        if record.starts_with(&[0x1f, 0x8b]) {
            match gunzip_bounded(record, self.limits.max_decompressed_bytes) {
                Ok(buf) => self.decode_stream(&buf, meta, out),
                Err(r) => out.push(reject(
                    r,
                    match r {
                        RejectReason::DecompressedTooLarge => format!(
                            "inflated past limits.max_decompressed_bytes ({})",
                            self.limits.max_decompressed_bytes
                        ),
                        _ => "gzip stream is corrupt or truncated".into(),
                    },
                )),
            }
            return;
        }
        let rec = trim(record);
        if rec.is_empty() {
            out.push(Decoded::Skipped(SkipReason::Blank));
            return;
        }
        self.decode_value(rec, meta, out);
    }

    /// An inflated payload: one or more JSON values, back to back or one per
    /// line (a Firehose-style concatenation).
    fn decode_stream(&mut self, buf: &[u8], meta: &RecordMeta<'_>, out: &mut Vec<Decoded>) {
        let body = trim(buf);
        if body.is_empty() {
            out.push(Decoded::Skipped(SkipReason::Blank));
            return;
        }
        if !matches!(body[0], b'{' | b'[') {
            self.decode_value(body, meta, out);
            return;
        }
        let mut it = serde_json::Deserializer::from_slice(body).into_iter::<&RawValue>();
        let mut n = 0usize;
        loop {
            match it.next() {
                None => break,
                Some(Ok(v)) => {
                    n += 1;
                    if n > self.limits.max_batch_events {
                        out.push(reject(
                            RejectReason::BatchTooLarge,
                            format!(
                                "payload holds more than limits.max_batch_events ({}) values",
                                self.limits.max_batch_events
                            ),
                        ));
                        break;
                    }
                    self.decode_value(v.get().as_bytes(), meta, out);
                }
                Some(Err(e)) => {
                    let r = if e.to_string().starts_with("recursion limit") {
                        RejectReason::TooDeep
                    } else {
                        RejectReason::NotJson
                    };
                    out.push(reject(
                        r,
                        format!("inflated payload is not JSON after {n} values"),
                    ));
                    break;
                }
            }
        }
    }

    /// One JSON value: an array batch, a CloudWatch envelope or a record.
    fn decode_value(&mut self, b: &[u8], meta: &RecordMeta<'_>, out: &mut Vec<Decoded>) {
        match b.first() {
            Some(b'[') => self.decode_batch(b, meta, out),
            // CloudWatch writes `messageType` first: skip the flattening pass
            // (the envelope parser checks the shape; anything else falls back).
            Some(b'{') if b[1..].trim_ascii_start().starts_with(b"\"messageType\"") => {
                self.decode_envelope(b, meta, out)
            }
            _ => self.decode_object(b, meta, Env::default(), true, out),
        }
    }

    fn decode_batch(&mut self, b: &[u8], meta: &RecordMeta<'_>, out: &mut Vec<Decoded>) {
        let items: Vec<&RawValue> = match serde_json::from_slice(b) {
            Ok(v) => v,
            Err(e) => {
                let r = if e.to_string().starts_with("recursion limit") {
                    RejectReason::TooDeep
                } else {
                    RejectReason::NotJson
                };
                out.push(reject(r, "array batch is not valid JSON"));
                return;
            }
        };
        if items.len() > self.limits.max_batch_events {
            out.push(reject(
                RejectReason::BatchTooLarge,
                format!(
                    "array batch has {} elements; limits.max_batch_events is {}",
                    items.len(),
                    self.limits.max_batch_events
                ),
            ));
            return;
        }
        if items.is_empty() {
            out.push(Decoded::Skipped(SkipReason::EmptyBatch));
            return;
        }
        for (i, item) in items.iter().enumerate() {
            let env = Env {
                index: Some(i),
                ..Env::default()
            };
            self.decode_object(item.get().as_bytes(), meta, env, true, out);
        }
    }

    /// A record that looked like a CloudWatch envelope but is not one: an
    /// ordinary record, unless the input only takes envelopes.
    fn not_an_envelope(&mut self, b: &[u8], meta: &RecordMeta<'_>, out: &mut Vec<Decoded>) {
        if self.format == Format::Cloudwatch {
            out.push(reject(
                RejectReason::UnknownFormat,
                "format is cloudwatch but the record is not a CloudWatch Logs envelope",
            ));
        } else {
            self.decode_object(b, meta, Env::default(), false, out);
        }
    }

    fn decode_envelope(&mut self, b: &[u8], meta: &RecordMeta<'_>, out: &mut Vec<Decoded>) {
        let env: Envelope = match serde_json::from_slice(b) {
            Ok(e) => e,
            // Mentions the keys but is not an envelope: an ordinary record.
            Err(_) => return self.not_an_envelope(b, meta, out),
        };
        if env.log_events.is_none() && env.message_type != "CONTROL_MESSAGE" {
            return self.not_an_envelope(b, meta, out);
        }
        match &*env.message_type {
            "CONTROL_MESSAGE" => {
                out.push(Decoded::Skipped(SkipReason::ControlMessage));
                return;
            }
            "DATA_MESSAGE" => {}
            _ => {
                out.push(reject(
                    RejectReason::UnknownFormat,
                    "CloudWatch Logs envelope with an unknown messageType",
                ));
                return;
            }
        }
        let log_events: &[LogEvent] = env.log_events.as_deref().unwrap_or_default();
        if log_events.is_empty() {
            out.push(Decoded::Skipped(SkipReason::EmptyBatch));
            return;
        }
        if log_events.len() > self.limits.max_batch_events {
            out.push(reject(
                RejectReason::BatchTooLarge,
                format!(
                    "envelope has {} logEvents; limits.max_batch_events is {}",
                    log_events.len(),
                    self.limits.max_batch_events
                ),
            ));
            return;
        }
        let execution = env
            .log_group
            .as_deref()
            .is_some_and(|g| g.starts_with("API-Gateway-Execution-Logs_"));
        for (i, le) in log_events.iter().enumerate() {
            if execution {
                out.push(Decoded::Skipped(SkipReason::ExecutionLog));
                continue;
            }
            let msg = le.message.as_bytes();
            if msg.len() > self.limits.max_record_bytes {
                let mut r = reject(
                    RejectReason::TooLarge,
                    "logEvents message exceeds limits.max_record_bytes",
                );
                if let Decoded::Rejected(r) = &mut r {
                    r.index = Some(i);
                }
                out.push(r);
                continue;
            }
            let e = Env {
                log_group: env.log_group.as_deref().filter(|g| !g.is_empty()),
                log_stream: env.log_stream.as_deref().filter(|g| !g.is_empty()),
                cw_id: le.id.as_deref(),
                cw_ts: le.timestamp.and_then(time::from_epoch),
                index: Some(i),
            };
            self.decode_object(trim(msg), meta, e, false, out);
        }
    }

    /// One JSON object. At the top of a record (`top`) it may be a
    /// CloudWatch Logs envelope, which the flattening pass notices for free.
    fn decode_object(
        &mut self,
        b: &[u8],
        meta: &RecordMeta<'_>,
        env: Env<'_>,
        top: bool,
        out: &mut Vec<Decoded>,
    ) {
        let mut bufs = self
            .bufs
            .take()
            .unwrap_or_else(|| Box::new(Buffers::new(self.subject_key)));
        let mut disagreed = false;
        let envelope = self.object(&mut bufs, b, meta, &env, top, out, &mut disagreed);
        self.bufs = Some(bufs);
        if disagreed {
            self.quirks.time_disagreements += 1;
        }
        if envelope {
            self.decode_envelope(b, meta, out);
        }
    }

    /// [`Self::decode_object`] with the buffers taken out of `self`; `true`
    /// when the object is a CloudWatch Logs envelope after all.
    #[allow(clippy::too_many_arguments)]
    fn object(
        &self,
        bufs: &mut Buffers,
        b: &[u8],
        meta: &RecordMeta<'_>,
        env: &Env<'_>,
        top: bool,
        out: &mut Vec<Decoded>,
        disagreed: &mut bool,
    ) -> bool {
        let mut p = Picker {
            fmt: self.forced_format(),
            mapped: &self.mapped,
            tenant_paths: &self.tenant_paths,
            memo: &mut bufs.memo,
            days: &mut bufs.days,
            interned: &mut bufs.interned,
            subjects: &mut bufs.subjects,
            slots: Slots::new(),
            tenant: recycle(std::mem::take(&mut bufs.tenant)),
            pairs: recycle(std::mem::take(&mut bufs.pairs)),
            keys: std::mem::take(&mut bufs.keys),
        };
        p.keys.clear();
        p.tenant.resize(self.tenant_paths.len(), None);
        let envelope = match scan::scan(b, self.limits.max_depth, &mut bufs.scan, &mut p) {
            Ok(root) => {
                let unescaped = bufs.scan.unescaped();
                self.scanned(&mut p, root, unescaped, meta, env, top, out, disagreed)
            }
            Err(e) => {
                out.push(match e {
                    ScanError::NotJson if is_execution_log(b) => {
                        Decoded::Skipped(SkipReason::ExecutionLog)
                    }
                    ScanError::NotJson => {
                        self.rejected(env, RejectReason::NotJson, "not valid JSON")
                    }
                    ScanError::NotObject => self.rejected(
                        env,
                        RejectReason::NotObject,
                        "a record must be a JSON object",
                    ),
                    ScanError::TooDeep => self.rejected(
                        env,
                        RejectReason::TooDeep,
                        format!(
                            "nested deeper than limits.max_depth ({})",
                            self.limits.max_depth
                        ),
                    ),
                });
                false
            }
        };
        bufs.tenant = recycle(p.tenant);
        bufs.pairs = recycle(p.pairs);
        bufs.keys = p.keys;
        envelope
    }

    /// A scanned object: format, then event or rejection.
    #[allow(clippy::too_many_arguments)]
    fn scanned<'a>(
        &self,
        p: &mut Picker<'a, '_>,
        root: Root<'a>,
        unescaped: &str,
        meta: &RecordMeta<'_>,
        env: &Env<'_>,
        top: bool,
        out: &mut Vec<Decoded>,
        disagreed: &mut bool,
    ) -> bool {
        if top && root.log_events && root.message_type {
            return true;
        }
        if top && self.format == Format::Cloudwatch {
            out.push(self.rejected(
                env,
                RejectReason::UnknownFormat,
                "format is cloudwatch but the record is not a CloudWatch Logs envelope",
            ));
            return false;
        }
        let fmt = match p.fmt {
            Some(f) => Ok(f),
            None => self.detect(p, root, unescaped).inspect(|&f| {
                for &(_, info, v) in &p.pairs {
                    if let Some((slot, rank)) = info.slot(f) {
                        offer(&mut p.slots, slot, rank, v, unescaped);
                    }
                }
            }),
        };
        match fmt.and_then(|fmt| self.build(p, fmt, unescaped, meta, env, disagreed, out)) {
            Ok(()) => {}
            Err(mut r) => {
                r.index = env.index;
                out.push(Decoded::Rejected(r));
            }
        }
        false
    }

    fn rejected(&self, env: &Env<'_>, reason: RejectReason, detail: impl Into<String>) -> Decoded {
        let mut r = Rejection::new(reason, detail);
        r.index = env.index;
        Decoded::Rejected(r)
    }

    /// The format the input is configured with, if it names one.
    fn forced_format(&self) -> Option<RecordFormat> {
        match self.format {
            Format::Auto | Format::Cloudwatch => None,
            Format::Apigw => Some(RecordFormat::Apigw),
            Format::ZscalerWeb => Some(RecordFormat::ZscalerWeb),
            Format::ZscalerFw => Some(RecordFormat::ZscalerFw),
            Format::ZscalerDns => Some(RecordFormat::ZscalerDns),
            Format::Zpa => Some(RecordFormat::Zpa),
        }
    }

    /// `auto`: the format a record's `sourcetype` names, else the one its
    /// keys vote for.
    fn detect(
        &self,
        p: &Picker<'_, '_>,
        root: Root<'_>,
        unescaped: &str,
    ) -> Result<RecordFormat, Rejection> {
        if let Some(f) = root
            .sourcetype
            .and_then(|v| v.resolve(unescaped).as_str())
            .and_then(RecordFormat::from_sourcetype)
        {
            return Ok(f);
        }
        let mut votes = [0u16; 5];
        for (_, info, _) in &p.pairs {
            let h = info.hint();
            if h != 0 {
                for (i, v) in votes.iter_mut().enumerate() {
                    *v += u16::from(h >> i & 1);
                }
            }
        }
        let (best, n) = votes
            .iter()
            .enumerate()
            .fold((0, 0), |acc, (i, &v)| if v > acc.1 { (i, v) } else { acc });
        if n == 0 {
            return Err(Rejection::new(
                RejectReason::UnknownFormat,
                format!(
                    "no API Gateway, Zscaler ZIA or ZPA keys found; keys seen: {}",
                    p.key_sample(8)
                ),
            ));
        }
        Ok(AUTO_ORDER[best])
    }

    /// The event, pushed onto `out`.
    #[allow(clippy::too_many_arguments)]
    fn build(
        &self,
        p: &mut Picker<'_, '_>,
        fmt: RecordFormat,
        unescaped: &str,
        meta: &RecordMeta<'_>,
        env: &Env<'_>,
        disagreed: &mut bool,
        out: &mut Vec<Decoded>,
    ) -> Result<(), Rejection> {
        let get = |s: Slot| p.slots.get(s).map(|v| v.resolve(unescaped));

        let ts = self.timestamp(fmt, &get, p.days, env, disagreed)?;
        let field = |i: usize| {
            p.tenant
                .get(i)
                .copied()
                .flatten()
                .map(|v| v.resolve(unescaped))
        };
        let tenant = self
            .tenant
            .resolve(&TenantCtx {
                field: &field,
                meta,
                log_group: env.log_group,
            })
            .map_err(|e| match e {
                TenantError::Missing => Rejection::new(
                    RejectReason::MissingTenant,
                    "the input's tenant rule found no value",
                ),
                TenantError::Invalid(e) => {
                    Rejection::new(RejectReason::InvalidTenant, e.to_string())
                }
            })?;

        let pct = fmt.percent_escaped();
        // Macros rather than closures, so that each use is inlined (a call
        // per field costs as much as the field).
        macro_rules! label {
            ($s:expr) => {
                get($s).and_then(|v| text(v, pct))
            };
        }
        macro_rules! plain {
            ($s:expr) => {
                get($s).and_then(|v| text(v, false))
            };
        }
        // `plain!` of a field with few distinct values (see `Interned`).
        macro_rules! repeated {
            ($s:expr) => {
                get($s).and_then(|v| match v {
                    Scalar::Str(s) => Some(p.interned.text(s.trim_ascii())),
                    v => text(v, false),
                })
            };
        }

        let id = plain!(Slot::Id).or_else(|| env.cw_id.map(Text::from));
        let mut principal = label!(Slot::Principal);
        let client_ip = get(Slot::ClientIp).and_then(ip);
        let user_agent = repeated!(Slot::UserAgent);
        let mut token_issuer = repeated!(Slot::Issuer);
        // Only hashed: no `Text` for it (a subject is often longer than fits inline).
        let mut subject: Option<Cow<'_, str>> = get(Slot::Subject).and_then(|v| match v {
            Scalar::Str(s) => {
                let s = s.trim_ascii();
                (!is_sentinel(s)).then_some(Cow::Borrowed(s))
            }
            v => text(v, false).map(|t| Cow::Owned(t.into_string())),
        });
        let mut client_id = repeated!(Slot::ClientId);
        if let Some(claims) = get(Slot::Token)
            .and_then(|v| v.as_str())
            .and_then(token::read_jwt)
        {
            if token_issuer.is_none() {
                token_issuer = claims.iss.filter(|s| !is_sentinel(s)).map(Text::from);
            }
            if subject.is_none() {
                subject = claims.sub.filter(|s| !is_sentinel(s)).map(Cow::Owned);
            }
            if client_id.is_none() {
                client_id = claims.client_id.filter(|s| !is_sentinel(s)).map(Text::from);
            }
        }
        let mut token_subject = None;
        if let Some(s) = subject {
            // `sub:<hash>`: the principal when no other field names one.
            let mut buf = *b"sub:....................";
            buf[4..].copy_from_slice(&p.subjects.hex(&s));
            let p = scan::ascii(&buf).expect("hex is ASCII");
            token_subject = Some(Text::from(&p[4..]));
            if principal.is_none() {
                principal = Some(Text::from(p));
            }
        }
        let mut route = match plain!(Slot::Route) {
            // A catch-all route says nothing about what was asked for: the
            // concrete path does (route enumeration hides behind `/{proxy+}`).
            Some(r) if is_catch_all(&r) => plain!(Slot::Path).or(Some(r)),
            None => plain!(Slot::Path),
            r => r,
        };
        let mut destination_host = get(Slot::DestHost).and_then(host);
        let url = match get(Slot::Url).and_then(|v| v.as_str()) {
            Some(u) => Some(Cow::Borrowed(u)),
            None => get(Slot::B64Url).and_then(|v| v.as_str()).and_then(b64),
        };
        if let Some(u) = url.as_deref() {
            let (h, path) = split_url(u);
            if destination_host.is_none() {
                destination_host = h.and_then(|h| host(Scalar::Str(h)));
            }
            if route.is_none() && !path.is_empty() {
                route = Some(Text::from(path));
            }
        }
        // Built whole where it is stored (an `Event` is large, and every move
        // of it is a copy).
        out.push(Decoded::Event(Event {
            tenant,
            source: fmt.source(),
            ts,
            id,
            principal,
            client_ip,
            user_agent,
            token_issuer,
            token_subject,
            client_id,
            method: plain!(Slot::Method),
            route,
            status: get(Slot::Status)
                .and_then(uint)
                .and_then(|n| u16::try_from(n).ok())
                .filter(|&n| n > 0),
            bytes_in: get(Slot::BytesIn).and_then(uint),
            bytes_out: get(Slot::BytesOut).and_then(uint),
            latency_ms: get(Slot::LatencyMs)
                .and_then(float)
                .or_else(|| get(Slot::DurationS).and_then(float).map(|s| s * 1000.0)),
            destination_host,
            destination_ip: get(Slot::DestIp).and_then(ip),
            destination_port: get(Slot::DestPort)
                .and_then(uint)
                .and_then(|n| u16::try_from(n).ok())
                .filter(|&n| n > 0),
            url_category: label!(Slot::UrlCategory),
            app: label!(Slot::App),
            action: label!(Slot::Action),
            threat: label!(Slot::Threat),
            protocol: plain!(Slot::Protocol),
            content_type: plain!(Slot::ContentType),
            stage: plain!(Slot::Stage),
            input: meta.input.map(Text::from),
            partition: meta.partition.map(Text::from),
            offset: meta.offset.map(Text::from),
            log_group: env.log_group.map(Text::from),
            log_stream: env.log_stream.map(Text::from),
        }));
        Ok(())
    }

    /// Timestamp rule: an operator-mapped field first, then the epoch field,
    /// then the format's text field, then an RFC 3339 field, then the
    /// CloudWatch event's timestamp. A present field that fails to parse is
    /// skipped for the next one; if none parses the record is rejected as
    /// `invalid_timestamp` (or `missing_timestamp` if it had none).
    fn timestamp<'v>(
        &self,
        fmt: RecordFormat,
        get: &impl Fn(Slot) -> Option<Scalar<'v>>,
        days: &mut DayMemo,
        env: &Env<'_>,
        disagreed: &mut bool,
    ) -> Result<DateTime<Utc>, Rejection> {
        let tz = get(Slot::Tz)
            .and_then(|v| v.as_str())
            .and_then(time::parse_tz)
            .unwrap_or(self.feed_tz);
        let text_time = |v: Scalar<'_>, days: &mut DayMemo| -> Option<DateTime<Utc>> {
            let s = v.as_str()?;
            match fmt {
                RecordFormat::Apigw => time::parse_clf_in(s, days)
                    .or_else(|| time::parse_iso(s))
                    .or_else(|| time::from_epoch_str_in(s, days)),
                _ => time::parse_zscaler(s, &tz)
                    .or_else(|| time::parse_iso(s))
                    .or_else(|| time::from_epoch_str_in(s, days)),
            }
        };
        let epoch = |v: Scalar<'_>, days: &mut DayMemo| -> Option<DateTime<Utc>> {
            match v {
                Scalar::Str(s) => time::from_epoch_str_in(s, days),
                Scalar::U64(n) => time::from_epoch(n as f64),
                Scalar::I64(n) => time::from_epoch(n as f64),
                Scalar::F64(n) => time::from_epoch(n),
                _ => None,
            }
        };
        let mut present = false;
        if let Some(v) = get(Slot::TsAny) {
            present = true;
            if let Some(t) = epoch(v, days)
                .or_else(|| text_time(v, days))
                .or_else(|| v.as_str().and_then(|s| time::parse_clf_in(s, days)))
                .or_else(|| v.as_str().and_then(|s| time::parse_zscaler(s, &tz)))
            {
                return Ok(t);
            }
        }
        let e = get(Slot::TsEpoch).map(|v| {
            present = true;
            epoch(v, days)
        });
        let t = get(Slot::TsText);
        present |= t.is_some();
        if let (Some(Some(a)), Some(v)) = (e, t) {
            // The epoch time wins; the text time only counts a disagreement.
            // API Gateway's CLF is compared as seconds, without the cost of
            // a `DateTime` (what `text_time` gives it, to the second).
            let clf = match fmt {
                RecordFormat::Apigw => v.as_str().and_then(|s| time::clf_secs(s, days)),
                _ => None,
            };
            let apart = match clf {
                Some(b) => more_than_a_second_from(a, b),
                None => text_time(v, days).is_some_and(|b| more_than_a_second_apart(a, b)),
            };
            if apart {
                *disagreed = true;
            }
            return Ok(a);
        }
        if let Some(t) = e.flatten().or_else(|| t.and_then(|v| text_time(v, days))) {
            return Ok(t);
        }
        if let Some(v) = get(Slot::TsIso) {
            present = true;
            if let Some(t) = v.as_str().and_then(time::parse_iso) {
                return Ok(t);
            }
        }
        if present {
            return Err(Rejection::new(
                RejectReason::InvalidTimestamp,
                "timestamp field present but not in a known shape (or outside 1990-2200)",
            ));
        }
        env.cw_ts.ok_or_else(|| {
            Rejection::new(
                RejectReason::MissingTimestamp,
                format!("no timestamp field for format {}", fmt.source()),
            )
        })
    }
}

/// `(a - b).num_seconds().abs() > 1`, which truncates toward zero: the
/// times are at least two seconds apart. Without a leap second (the parsers
/// give none, except RFC 3339's `:60`) that is plain arithmetic, cheaper
/// than building a `TimeDelta`.
fn more_than_a_second_apart(a: DateTime<Utc>, b: DateTime<Utc>) -> bool {
    const NS: i128 = 1_000_000_000;
    let (na, nb) = (a.timestamp_subsec_nanos(), b.timestamp_subsec_nanos());
    if na >= NS as u32 || nb >= NS as u32 {
        return (a - b).num_seconds().abs() > 1;
    }
    let d = i128::from(a.timestamp() - b.timestamp()) * NS + i128::from(na) - i128::from(nb);
    d.abs() >= 2 * NS
}

/// [`more_than_a_second_apart`] of `a` and the whole second `b` (seconds
/// since the epoch).
fn more_than_a_second_from(a: DateTime<Utc>, b: i64) -> bool {
    const NS: i128 = 1_000_000_000;
    let na = a.timestamp_subsec_nanos();
    if na >= NS as u32 {
        // A leap second: left to chrono, as there.
        return DateTime::from_timestamp(b, 0).is_some_and(|b| more_than_a_second_apart(a, b));
    }
    let d = i128::from(a.timestamp()) * NS + i128::from(na) - i128::from(b) * NS;
    d.abs() >= 2 * NS
}

/// API Gateway catch-all routes: `/{proxy+}`, `ANY /{proxy+}`, `$default`.
fn is_catch_all(route: &str) -> bool {
    route == "$default" || route.ends_with("{proxy+}")
}

fn reject(reason: RejectReason, detail: impl Into<String>) -> Decoded {
    Decoded::Rejected(Rejection::new(reason, detail))
}

/// A slot's value as text: strings trimmed (percent-decoded if `pct`),
/// numbers printed, other types absent. Slots hold no sentinels ([`offer`]
/// drops them).
#[inline(always)]
fn text(v: Scalar<'_>, pct: bool) -> Option<Text> {
    match v {
        Scalar::Str(s) => {
            let s = s.trim_ascii();
            debug_assert!(!is_sentinel(s));
            if pct && s.as_bytes().contains(&b'%') {
                Some(percent_decode(s))
            } else {
                Some(Text::from(s))
            }
        }
        Scalar::U64(n) => Some(Text::from(n.to_string())),
        Scalar::I64(n) => Some(Text::from(n.to_string())),
        Scalar::F64(n) => Some(Text::from(n.to_string())),
        Scalar::Bool(b) => Some(Text::from(if b { "true" } else { "false" })),
        Scalar::Null => None,
    }
}

/// Decodes feed percent-escapes (`jdoe%40example.com`). Escapes that decode
/// to ASCII — nearly all of them in practice — are decoded in place; anything
/// else goes through `percent-encoding` with lossy UTF-8.
fn percent_decode(s: &str) -> Text {
    fn hex(c: u8) -> Option<u8> {
        (c as char).to_digit(16).map(|d| d as u8)
    }
    let b = s.as_bytes();
    let mut out = Text::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        if c == b'%' && i + 2 < b.len() {
            if let (Some(h), Some(l)) = (hex(b[i + 1]), hex(b[i + 2])) {
                let v = h << 4 | l;
                if !v.is_ascii() {
                    let d = percent_encoding::percent_decode_str(s).decode_utf8_lossy();
                    return Text::from(&*d);
                }
                out.push(v as char);
                i += 3;
                continue;
            }
        }
        // Not an escape: copy the run up to the next '%' unchanged.
        let end = memchr::memchr(b'%', &b[i + 1..]).map_or(b.len(), |p| i + 1 + p);
        out.push_str(&s[i..end]);
        i = end;
    }
    out
}

/// A string of 1 to 19 ASCII digits as a number (what `parse::<u64>` gives
/// such a string, sooner).
#[inline(always)]
fn digits(s: &str) -> Option<u64> {
    if s.is_empty() || s.len() > 19 {
        return None;
    }
    let mut n = 0u64;
    for &b in s.as_bytes() {
        if !b.is_ascii_digit() {
            return None;
        }
        n = n * 10 + u64::from(b - b'0');
    }
    Some(n)
}

#[inline(always)]
fn uint(v: Scalar<'_>) -> Option<u64> {
    match v {
        Scalar::U64(n) => Some(n),
        Scalar::I64(n) => u64::try_from(n).ok(),
        Scalar::F64(f) if f >= 0.0 && f.is_finite() && f < 1.8e19 => Some(f.round() as u64),
        Scalar::Str(s) => {
            let s = s.trim_ascii();
            if let Some(n) = digits(s) {
                return Some(n);
            }
            s.parse::<u64>().ok().or_else(|| {
                s.parse::<f64>()
                    .ok()
                    .filter(|f| *f >= 0.0 && f.is_finite() && *f < 1.8e19)
                    .map(|f| f.round() as u64)
            })
        }
        _ => None,
    }
}

#[inline]
fn float(v: Scalar<'_>) -> Option<f64> {
    let f = match v {
        Scalar::U64(n) => n as f64,
        Scalar::I64(n) => n as f64,
        Scalar::F64(f) => f,
        Scalar::Str(s) => {
            let s = s.trim_ascii();
            match digits(s) {
                // Below 2^53 an integer is exact as `f64`, as parsing gives it.
                Some(n) if s.len() <= 15 => n as f64,
                _ => s.parse().ok()?,
            }
        }
        _ => return None,
    };
    (f.is_finite() && f >= 0.0).then_some(f)
}

/// An IP, with `0.0.0.0` / `::` placeholders and brackets handled.
fn ip(v: Scalar<'_>) -> Option<IpAddr> {
    let s = v.as_str()?.trim_ascii();
    let s = s
        .strip_prefix('[')
        .and_then(|x| x.strip_suffix(']'))
        .unwrap_or(s);
    let a: IpAddr = match ipv4(s.as_bytes()) {
        Some(a) => IpAddr::V4(a),
        None => s.parse().ok()?,
    };
    (!a.is_unspecified()).then_some(a)
}

/// Dotted-quad IPv4 in its plain form (1 to 3 digits per octet, no leading
/// zeros), which `IpAddr`'s parser reads alike, sooner; `None` for anything
/// else, which is left to that parser.
#[inline]
fn ipv4(s: &[u8]) -> Option<std::net::Ipv4Addr> {
    if !(7..=15).contains(&s.len()) {
        return None;
    }
    let digit = |i: usize| s.get(i).map(|c| c.wrapping_sub(b'0')).filter(|&d| d < 10);
    let mut octets = [0u8; 4];
    let mut i = 0;
    for (k, o) in octets.iter_mut().enumerate() {
        if k > 0 {
            if s.get(i) != Some(&b'.') {
                return None;
            }
            i += 1;
        }
        // One to three digits, the first not a 0 unless it is alone.
        let start = i;
        let mut v = u32::from(digit(i)?);
        i += 1;
        while let Some(d) = digit(i) {
            if v == 0 || i - start == 3 {
                return None;
            }
            v = v * 10 + u32::from(d);
            i += 1;
        }
        *o = u8::try_from(v).ok()?;
    }
    (i == s.len()).then(|| std::net::Ipv4Addr::from(octets))
}

/// A host name: trimmed, lower-cased, trailing dot removed.
fn host(v: Scalar<'_>) -> Option<Text> {
    let s = v.as_str()?.trim_ascii().trim_end_matches('.');
    if is_sentinel(s) {
        return None;
    }
    if s.bytes().any(|b| b.is_ascii_uppercase()) {
        Some(Text::from(s.to_ascii_lowercase()))
    } else {
        Some(Text::from(s))
    }
}

fn b64(s: &str) -> Option<Cow<'static, str>> {
    let e = base64::engine::general_purpose::STANDARD;
    let bytes = e
        .decode(s.trim_ascii())
        .or_else(|_| base64::engine::general_purpose::URL_SAFE.decode(s.trim_ascii()))
        .ok()?;
    String::from_utf8(bytes).ok().map(Cow::Owned)
}

/// The first `://` in `b` (URLs have few colons: cheaper than a substring
/// search's setup).
fn scheme_end(b: &[u8]) -> Option<usize> {
    let mut from = 0;
    while let Some(p) = memchr::memchr(b':', &b[from..]) {
        let i = from + p;
        if b[i + 1..].starts_with(b"//") {
            return Some(i);
        }
        from = i + 1;
    }
    None
}

/// Splits `scheme://user@host:port/path?query` (scheme optional, as Zscaler
/// often logs `www.example.com/path`) into host and path; the query and
/// fragment are dropped (they can carry secrets).
fn split_url(u: &str) -> (Option<&str>, &str) {
    // Byte searches: every delimiter is ASCII, so every split is a boundary.
    let u = u.trim_ascii();
    let b = u.as_bytes();
    let rest = match scheme_end(b) {
        Some(i) => &u[i + 3..],
        None => u,
    };
    let rb = rest.as_bytes();
    let end = rb
        .iter()
        .position(|&c| matches!(c, b'/' | b'?' | b'#'))
        .unwrap_or(rb.len());
    let authority = &rest[..end];
    let after = &rest[end..];
    let path_end = memchr::memchr2(b'?', b'#', after.as_bytes()).unwrap_or(after.len());
    let path = &after[..path_end];
    let hostport = match memchr::memrchr(b'@', authority.as_bytes()) {
        Some(i) => &authority[i + 1..],
        None => authority,
    };
    let host = if let Some(v6) = hostport.strip_prefix('[') {
        v6.split_once(']').map(|(h, _)| h)
    } else {
        Some(match memchr::memchr(b':', hostport.as_bytes()) {
            Some(i) => &hostport[..i],
            None => hostport,
        })
    };
    (host.filter(|h| !h.is_empty()), path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percent_escapes_decode_like_the_reference() {
        for s in [
            "jdoe%40example.com",
            "TestLoc%20DB",
            "%22q%22 %2C %5C",
            "100%",
            "50%2",
            "%zz",
            "caf%C3%A9",
            "%FF%FE",
            "a%20%",
            "%",
            "plain",
            "ü%40x",
        ] {
            let want = percent_encoding::percent_decode_str(s).decode_utf8_lossy();
            assert_eq!(percent_decode(s), *want, "{s}");
        }
    }

    #[test]
    fn fast_number_and_address_readings_agree_with_std() {
        for s in [
            "",
            "0",
            "00",
            "007",
            "200",
            "18446744073709551615",
            "9999999999999999999",
            "10000000000000000000",
            "99999999999999999999",
            "+5",
            "-5",
            "1.5",
            "1e3",
            " 7",
            "12a",
            "4503599627370496",
            "999999999999999",
            "9007199254740993",
        ] {
            let v = Scalar::Str(s);
            let want_u = {
                let t = s.trim_ascii();
                t.parse::<u64>().ok().or_else(|| {
                    t.parse::<f64>()
                        .ok()
                        .filter(|f| *f >= 0.0 && f.is_finite() && *f < 1.8e19)
                        .map(|f| f.round() as u64)
                })
            };
            assert_eq!(uint(v), want_u, "{s:?}");
            let want_f = s
                .trim_ascii()
                .parse::<f64>()
                .ok()
                .filter(|f| f.is_finite() && *f >= 0.0);
            assert_eq!(float(v), want_f, "{s:?}");
        }
        for s in [
            "198.51.100.7",
            "0.0.0.0",
            "255.255.255.255",
            "256.1.1.1",
            "1.2.3",
            "1.2.3.4.5",
            "01.2.3.4",
            "1.02.3.4",
            "1.2.3.04",
            "1.2.3.0",
            "1234.1.1.1",
            "1..2.3",
            ".1.2.3",
            "1.2.3.4 ",
            "a.b.c.d",
            "::",
            "::1",
            "2001:db8::1",
            "::ffff:1.2.3.4",
            "1.2.3.4:80",
            "",
            "1.2.3.4.",
            "10.0.0.255",
            "123456789012345",
            "999999999999.1",
            "1.2.3.4444",
            "1.2.3.",
            "1.2..3",
            "00.1.2.3",
            "0.0.0.00",
        ] {
            let want = s.parse::<IpAddr>().ok();
            let fast = ipv4(s.as_bytes()).map(IpAddr::V4);
            assert!(
                fast.is_none() || fast == want,
                "{s:?}: {fast:?} vs {want:?}"
            );
        }
        let mut x = 0x9e37_79b9_u32;
        for _ in 0..20_000 {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            let s = format!("{}.{}.{}.{}", x >> 24, x >> 16 & 255, x >> 8 & 255, x & 255);
            assert_eq!(ipv4(s.as_bytes()).map(IpAddr::V4), s.parse().ok(), "{s}");
        }
    }

    #[test]
    fn sentinels_are_the_trimmed_words() {
        let words = [
            "", "-", "None", "NA", "N/A", "N", "Nonе", "NAN", "-1", "x", "é",
        ];
        let pads = ["", " ", "\t", "\n", "\r", "\x0c", "\x0b", "\x01", "  "];
        for w in words {
            for a in pads {
                for z in pads {
                    let s = format!("{a}{w}{z}");
                    let want = matches!(s.trim_ascii(), "" | "-" | "None" | "NA" | "N/A");
                    assert_eq!(is_sentinel(&s), want, "{s:?}");
                }
            }
        }
    }

    #[test]
    fn recycled_buffers_keep_their_allocation() {
        let mut v: Vec<Option<Value<'static>>> = Vec::with_capacity(64);
        v.push(None);
        let cap = v.capacity();
        let rec = String::from("x");
        let mut w: Vec<Option<Value<'_>>> = recycle(v);
        w.push(Some(Value::Str(&rec)));
        assert_eq!(w.capacity(), cap);
        let back: Vec<Option<Value<'static>>> = recycle(w);
        assert_eq!((back.len(), back.capacity()), (0, cap));
    }

    #[test]
    fn disagreement_is_chronos_reading() {
        let t = |s: &str| DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc);
        let base = t("2023-06-10T15:36:28Z");
        for ns in [
            0i64,
            1,
            999_999_999,
            1_000_000_000,
            1_000_000_001,
            1_999_999_999,
            2_000_000_000,
            2_000_000_001,
            3_500_000_000,
            86_400_000_000_000,
            1_234_567_891,
        ] {
            for sign in [1, -1] {
                let other = base + chrono::TimeDelta::nanoseconds(sign * ns);
                for (a, b) in [(base, other), (other, base)] {
                    assert_eq!(
                        more_than_a_second_apart(a, b),
                        (a - b).num_seconds().abs() > 1,
                        "{a} {b}"
                    );
                }
            }
        }
        let leap = t("2016-12-31T23:59:60.5Z");
        for b in [
            t("2016-12-31T23:59:58Z"),
            t("2017-01-01T00:00:01Z"),
            t("2017-01-01T00:00:02Z"),
        ] {
            assert_eq!(
                more_than_a_second_apart(leap, b),
                (leap - b).num_seconds().abs() > 1
            );
        }
    }

    #[test]
    fn urls_split_without_query() {
        assert_eq!(
            split_url("https://u:p@Example.com:8443/a/b?token=x#f"),
            (Some("Example.com"), "/a/b")
        );
        assert_eq!(
            split_url("www.example.com/x?y"),
            (Some("www.example.com"), "/x")
        );
        assert_eq!(
            split_url("[2001:db8::1]:443/p"),
            (Some("2001:db8::1"), "/p")
        );
        assert_eq!(split_url("host"), (Some("host"), ""));
        for u in [
            "a://b",
            "a:/b://c",
            "::://",
            "x:",
            ":",
            "",
            "://",
            "a:b:c://d",
            "http:/x",
        ] {
            assert_eq!(
                scheme_end(u.as_bytes()),
                memchr::memmem::find(u.as_bytes(), b"://"),
                "{u}"
            );
        }
        assert_eq!(split_url(""), (None, ""));
    }

    #[test]
    fn execution_log_lines_are_recognized() {
        assert!(is_execution_log(
            b"(706499f2-3f6e-11e9-a0b4-3bcbb4b6ad1a) Verifying Usage Plan for request"
        ));
        assert!(!is_execution_log(b"(hello) world"));
        assert!(!is_execution_log(b"{\"a\":1}"));
    }

    #[test]
    fn gzip_bombs_stop_at_the_limit() {
        use std::io::Write;
        let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
        enc.write_all(&vec![b' '; 10 << 20]).unwrap();
        let bomb = enc.finish().unwrap();
        assert!(bomb.len() < 64 << 10);
        assert_eq!(
            gunzip_bounded(&bomb, 1 << 20),
            Err(RejectReason::DecompressedTooLarge)
        );
        assert_eq!(
            gunzip_bounded(&bomb[..bomb.len() / 2], 64 << 20),
            Err(RejectReason::BadGzip)
        );
        assert_eq!(
            gunzip_bounded(&bomb, 11 << 20).map(|v| v.len()),
            Ok(10 << 20)
        );
    }
}

#[cfg(test)]
mod envelope_tests {
    use super::*;
    use crate::TenantRule;

    fn run(format: Format, rec: &[u8]) -> Vec<Decoded> {
        let cfg = DecodeConfig::new(
            format,
            TenantRule::Static {
                tenant: "t".parse().unwrap(),
            },
        );
        let mut out = Vec::new();
        Decoder::new(&cfg)
            .unwrap()
            .decode(rec, &RecordMeta::default(), &mut out);
        out
    }

    /// Found by fuzzing review: such records once yielded nothing at all.
    #[test]
    fn look_alike_envelopes_never_vanish() {
        let rec = br#"{"messageType":"DATA_MESSAGE","requestId":"r1","requestTime":"10/Jun/2023:15:36:28 +0000","httpMethod":"GET"}"#;
        assert!(matches!(run(Format::Auto, rec)[..], [Decoded::Event(_)]));
        let r = run(Format::Cloudwatch, rec);
        assert!(
            matches!(&r[..], [Decoded::Rejected(r)] if r.reason == RejectReason::UnknownFormat),
            "{r:?}"
        );
        let odd =
            br#"{"messageType":5,"requestId":"r1","requestTime":"10/Jun/2023:15:36:28 +0000"}"#;
        let r = run(Format::Cloudwatch, odd);
        assert!(
            matches!(&r[..], [Decoded::Rejected(r)] if r.reason == RejectReason::UnknownFormat)
        );
    }

    #[test]
    fn empty_batches_are_counted() {
        let r = run(
            Format::Auto,
            br#"{"messageType":"DATA_MESSAGE","logEvents":[]}"#,
        );
        assert_eq!(r, [Decoded::Skipped(SkipReason::EmptyBatch)]);
        assert_eq!(
            run(Format::Auto, b"[]"),
            [Decoded::Skipped(SkipReason::EmptyBatch)]
        );
    }
}
