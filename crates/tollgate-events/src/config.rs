//! How an input's records are decoded: format, tenant rule, size limits, field
//! mappings, the feed's time zone and the subject-hash key.
//!
//! Deserialized from the input's configuration (`deny_unknown_fields`), then
//! checked once by [`crate::Decoder::new`], which reports every problem at
//! start-up rather than per record.

use std::collections::BTreeMap;
use std::fmt;

use serde::Deserialize;

use crate::tenant::TenantRule;

/// What the records of an input are.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Format {
    /// Any of the below, told apart per record.
    #[default]
    Auto,
    /// API Gateway access logs, plain or inside CloudWatch envelopes.
    Apigw,
    /// CloudWatch Logs subscription envelopes (gzip or plain) only.
    Cloudwatch,
    ZscalerWeb,
    ZscalerFw,
    ZscalerDns,
    Zpa,
}

impl Format {
    pub const NAMES: &'static str =
        "auto, apigw, cloudwatch, zscaler-web, zscaler-fw, zscaler-dns, zpa";
}

impl std::str::FromStr for Format {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Ok(match s {
            "auto" => Format::Auto,
            "apigw" => Format::Apigw,
            "cloudwatch" => Format::Cloudwatch,
            "zscaler-web" => Format::ZscalerWeb,
            "zscaler-fw" => Format::ZscalerFw,
            "zscaler-dns" => Format::ZscalerDns,
            "zpa" => Format::Zpa,
            _ => return Err(format!("unknown format {s:?}; one of {}", Format::NAMES)),
        })
    }
}

/// Size limits. Every one is explicit and configurable.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Limits {
    /// Largest record accepted as it arrives (compressed, if gzip).
    pub max_record_bytes: usize,
    /// Inflating a gzip record stops at this many bytes and rejects it.
    pub max_decompressed_bytes: usize,
    /// Most events one record (array batch, `logEvents`) may carry.
    pub max_batch_events: usize,
    /// Deepest JSON object/array nesting accepted inside a record.
    pub max_depth: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_record_bytes: 1 << 20,
            max_decompressed_bytes: 16 << 20,
            max_batch_events: 100_000,
            max_depth: 32,
        }
    }
}

/// The key for token-subject hashes: 32 bytes, written as 64 hex characters.
/// Its `Debug` is redacted. Keep it stable: changing it makes every subject
/// look new to the models.
#[derive(Clone, PartialEq, Eq)]
pub struct SubjectKey(pub [u8; 32]);

impl SubjectKey {
    /// The built-in key, for demos and tests only: a deployment sets its own.
    pub const INSECURE_DEFAULT: SubjectKey = SubjectKey(*b"tollgate-default-subject-key!!!!");

    pub fn from_hex(s: &str) -> Result<Self, String> {
        let s = s.trim();
        if s.len() != 64 || !s.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err("subject key must be 64 hex characters (32 bytes)".into());
        }
        let mut k = [0u8; 32];
        for (i, chunk) in s.as_bytes().chunks(2).enumerate() {
            let hex = std::str::from_utf8(chunk).map_err(|e| e.to_string())?;
            k[i] = u8::from_str_radix(hex, 16).map_err(|e| e.to_string())?;
        }
        Ok(SubjectKey(k))
    }
}

impl Default for SubjectKey {
    fn default() -> Self {
        SubjectKey::INSECURE_DEFAULT
    }
}

impl fmt::Debug for SubjectKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SubjectKey(<redacted>)")
    }
}

impl<'de> Deserialize<'de> for SubjectKey {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        SubjectKey::from_hex(&s).map_err(serde::de::Error::custom)
    }
}

/// Everything the decoder of one input needs.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DecodeConfig {
    #[serde(default)]
    pub format: Format,
    pub tenant: TenantRule,
    #[serde(default)]
    pub limits: Limits,
    /// Normalized field name → JSON pointer into the record, for templates
    /// with other key names. A mapping wins over the built-in key names.
    #[serde(default)]
    pub fields: BTreeMap<String, String>,
    /// The time zone of naive Zscaler/ZPA times when the record has no `tz`
    /// (the NSS feed's configured zone). IANA name; default `UTC`.
    #[serde(default = "utc")]
    pub feed_time_zone: String,
    /// Key for token-subject hashes (hex). Default: the insecure built-in key.
    #[serde(default)]
    pub subject_key: SubjectKey,
}

fn utc() -> String {
    "UTC".into()
}

impl DecodeConfig {
    /// A config with defaults and the given tenant rule.
    pub fn new(format: Format, tenant: TenantRule) -> Self {
        DecodeConfig {
            format,
            tenant,
            limits: Limits::default(),
            fields: BTreeMap::new(),
            feed_time_zone: utc(),
            subject_key: SubjectKey::default(),
        }
    }
}
