//! The normalized [`Event`]: one shape for every source Tollgate reads.
//!
//! Everything downstream (features, models, alerts) sees only this type, never
//! a vendor's key names. A field that the record did not carry, or carried as a
//! sentinel (`"-"`, `"None"`, `"NA"`, `"N/A"`, `""`, `0.0.0.0`), is `None`.
//!
//! Direction is always from the protected side:
//! - Zscaler ZIA (the protected side is the organisation's users): `bytes_out`
//!   is the request size / firewall outbound bytes (egress), `bytes_in` the
//!   response size / inbound bytes.
//! - API Gateway and ZPA (the protected side is the application): `bytes_out` is
//!   what the application sent to the caller (`responseLength`,
//!   `ZENTotalBytesTxClient`), `bytes_in` what the caller sent.
//!
//! This module holds data only; decoding lives in [`crate::decode`].

use std::fmt;
use std::net::IpAddr;

use chrono::{DateTime, Utc};
use compact_str::CompactString;
use serde::{Deserialize, Serialize};

/// Short strings are stored inline (up to 24 bytes) so that most fields cost
/// no allocation on the hot path.
pub type Text = CompactString;

/// Which family of logs an event came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Source {
    /// AWS API Gateway access log (REST v1, HTTP API v2 or WebSocket).
    Apigw,
    /// Zscaler ZIA NSS web (proxy) transaction.
    ZscalerWeb,
    /// Zscaler ZIA NSS firewall session.
    ZscalerFw,
    /// Zscaler ZIA NSS DNS transaction.
    ZscalerDns,
    /// Zscaler ZPA LSS user activity.
    Zpa,
}

impl Source {
    pub const ALL: [Source; 5] = [
        Source::Apigw,
        Source::ZscalerWeb,
        Source::ZscalerFw,
        Source::ZscalerDns,
        Source::Zpa,
    ];

    /// The stable label used in JSON, metrics and file names.
    pub fn as_str(self) -> &'static str {
        match self {
            Source::Apigw => "apigw",
            Source::ZscalerWeb => "zscaler_web",
            Source::ZscalerFw => "zscaler_fw",
            Source::ZscalerDns => "zscaler_dns",
            Source::Zpa => "zpa",
        }
    }
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A validated tenant id: 1 to 64 characters from `[A-Za-z0-9_.-]`, not
/// starting with `.`, so it is safe as a Prometheus label value and as a file
/// name.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(transparent)]
pub struct TenantId(Text);

/// Why a string is not a valid [`TenantId`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum TenantIdError {
    #[error("tenant id is empty")]
    Empty,
    #[error("tenant id is longer than 64 characters")]
    TooLong,
    #[error("tenant id has a character outside [A-Za-z0-9_.-] or starts with '.'")]
    BadChar,
}

impl TenantId {
    pub const MAX_LEN: usize = 64;

    pub fn new(s: &str) -> Result<Self, TenantIdError> {
        if s.is_empty() {
            return Err(TenantIdError::Empty);
        }
        if s.len() > Self::MAX_LEN {
            return Err(TenantIdError::TooLong);
        }
        if s.starts_with('.')
            || !s
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'))
        {
            return Err(TenantIdError::BadChar);
        }
        Ok(TenantId(Text::new(s)))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for TenantId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for TenantId {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        TenantId::new(&s).map_err(serde::de::Error::custom)
    }
}

impl std::str::FromStr for TenantId {
    type Err = TenantIdError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        TenantId::new(s)
    }
}

/// One normalized event. Field order here is the key order `decode` prints.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Event {
    /// Whose traffic this is; resolved by the input's tenant rule.
    pub tenant: TenantId,
    /// Which log family the record was decoded as.
    pub source: Source,
    /// When the request/session/query happened, in UTC.
    pub ts: DateTime<Utc>,
    /// The record's own id: API Gateway `extendedRequestId` (else `requestId`),
    /// Zscaler `event_id`/`recordid`, ZPA `ConnectionID`.
    pub id: Option<Text>,
    /// Who acted: API Gateway `user`/`caller`/authorizer `principalId`/username
    /// claims (else `sub:` + [`Event::token_subject`]); Zscaler `user`/`login`;
    /// ZPA `Username`. Percent-escapes are decoded.
    pub principal: Option<Text>,
    /// The caller's address (API Gateway source IP, Zscaler client IP, ZPA
    /// client public IP).
    pub client_ip: Option<IpAddr>,
    /// The caller's user agent, as sent.
    pub user_agent: Option<Text>,
    /// The `iss` of the token that authorized the request, from authorizer
    /// claims or read from a logged JWT (whose other contents are discarded).
    pub token_issuer: Option<Text>,
    /// A keyed hash (BLAKE3, 80 bits, 20 hex characters) of the token's `sub`;
    /// the raw subject is never kept.
    pub token_subject: Option<Text>,
    /// The OAuth client the token was issued to (`client_id`/`azp`).
    pub client_id: Option<Text>,
    /// HTTP method (`GET`), DNS query type (`A`), or `None`.
    pub method: Option<Text>,
    /// API Gateway resource path / route key (`/pets/{id}`, `GET /items`,
    /// `$connect`); Zscaler web: the URL path without its query string.
    pub route: Option<Text>,
    /// HTTP status (API Gateway, Zscaler web).
    pub status: Option<u16>,
    /// Bytes entering the protected side (see the module docs).
    pub bytes_in: Option<u64>,
    /// Bytes leaving the protected side (see the module docs).
    pub bytes_out: Option<u64>,
    /// Request/session duration in milliseconds.
    pub latency_ms: Option<f64>,
    /// Destination host name: Zscaler web host, DNS query name, firewall
    /// destination domain, ZPA application host, API Gateway domain name.
    pub destination_host: Option<Text>,
    /// Destination (server) IP.
    pub destination_ip: Option<IpAddr>,
    /// Destination port.
    pub destination_port: Option<u16>,
    /// Zscaler URL / IP / DNS category.
    pub url_category: Option<Text>,
    /// Application: Zscaler cloud app / network app / DNS app, ZPA application,
    /// API Gateway API id.
    pub app: Option<Text>,
    /// What the gateway did: Zscaler `Allowed`/`Blocked`, ZPA connection
    /// status, API Gateway WebSocket event type.
    pub action: Option<Text>,
    /// Threat name or category when the vendor flagged one.
    pub threat: Option<Text>,
    /// Transport/application protocol (`HTTP/1.1`, `HTTPS`, `TCP`).
    pub protocol: Option<Text>,
    /// Response content type (Zscaler web).
    pub content_type: Option<Text>,
    /// API Gateway stage.
    pub stage: Option<Text>,
    /// Name of the configured input that read the record.
    pub input: Option<Text>,
    /// Kafka partition or Kinesis shard id.
    pub partition: Option<Text>,
    /// Kafka offset or Kinesis sequence number.
    pub offset: Option<Text>,
    /// CloudWatch Logs log group of the envelope that carried the record.
    pub log_group: Option<Text>,
    /// CloudWatch Logs log stream of the envelope that carried the record.
    pub log_stream: Option<Text>,
}

impl Event {
    /// An event with only the required fields set.
    pub fn new(tenant: TenantId, source: Source, ts: DateTime<Utc>) -> Self {
        Event {
            tenant,
            source,
            ts,
            id: None,
            principal: None,
            client_ip: None,
            user_agent: None,
            token_issuer: None,
            token_subject: None,
            client_id: None,
            method: None,
            route: None,
            status: None,
            bytes_in: None,
            bytes_out: None,
            latency_ms: None,
            destination_host: None,
            destination_ip: None,
            destination_port: None,
            url_category: None,
            app: None,
            action: None,
            threat: None,
            protocol: None,
            content_type: None,
            stage: None,
            input: None,
            partition: None,
            offset: None,
            log_group: None,
            log_stream: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tenant_ids_are_label_and_file_safe() {
        assert!(TenantId::new("acme").is_ok());
        assert!(TenantId::new("acme-prod_1.eu").is_ok());
        assert_eq!(TenantId::new(""), Err(TenantIdError::Empty));
        assert_eq!(TenantId::new(&"a".repeat(65)), Err(TenantIdError::TooLong));
        assert!(TenantId::new(&"a".repeat(64)).is_ok());
        for bad in ["..", ".hidden", "a/b", "a b", "a\"b", "ü", "a\\b", "a{b}"] {
            assert_eq!(TenantId::new(bad), Err(TenantIdError::BadChar), "{bad}");
        }
    }
}
