//! Tenant resolution: which tenant a record belongs to, by a rule configured
//! per input.
//!
//! A rule reads a raw string from the record (a JSON pointer) or from its
//! transport (CloudWatch log group, Kafka topic or Kinesis stream name, Kafka
//! header or key, Kinesis partition key), optionally maps it through a lookup
//! table, and validates it as a [`TenantId`]. `first_of` tries rules in turn.
//! A missing value or one that is not a valid tenant id is a rejection.

use std::borrow::Cow;
use std::collections::BTreeMap;

use regex::Regex;
use serde::Deserialize;

use crate::event::{TenantId, TenantIdError};
use crate::fields::pointer_to_path;
use crate::scan::Scalar;

/// The configured rule (deserialized from the input's `tenant` table).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum TenantRule {
    /// Every record of this input belongs to one tenant.
    Static { tenant: TenantId },
    /// A JSON pointer into the record (for envelopes: into the inner access
    /// log line; for Zscaler SIEM wrappers: into the inner `event`).
    Pointer { pointer: String },
    /// A regex with a named `tenant` group over a transport name.
    Regex { over: NameSource, regex: String },
    /// A Kafka message header.
    KafkaHeader { name: String },
    /// The Kafka message key.
    KafkaKey {},
    /// The Kinesis partition key.
    PartitionKey {},
    /// A lookup table keyed by what another rule reads (e.g. API id → tenant).
    Lookup {
        key: Box<TenantRule>,
        table: BTreeMap<String, TenantId>,
        #[serde(default)]
        default: Option<TenantId>,
    },
    /// The first of these rules that yields a value. A value that is not a
    /// valid tenant id ends the search as `invalid_tenant`: falling through to
    /// a later rule (a static `default`, say) would file one tenant's traffic
    /// under another.
    FirstOf { rules: Vec<TenantRule> },
}

/// A transport name a regex rule can read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NameSource {
    LogGroup,
    Topic,
    Stream,
}

/// What the transport knows about a record; all optional, all borrowed.
#[derive(Debug, Default, Clone, Copy)]
pub struct RecordMeta<'a> {
    /// The configured input's name.
    pub input: Option<&'a str>,
    /// Kafka topic or Kinesis stream name.
    pub topic: Option<&'a str>,
    /// Kafka partition or Kinesis shard id.
    pub partition: Option<&'a str>,
    /// Kafka offset or Kinesis sequence number.
    pub offset: Option<&'a str>,
    /// Kafka message key or Kinesis partition key.
    pub key: Option<&'a [u8]>,
    /// Kafka headers.
    pub headers: &'a [(&'a str, &'a [u8])],
}

/// Why a rule could not be compiled.
#[derive(Debug, thiserror::Error)]
pub enum TenantRuleError {
    #[error("tenant regex {0:?}: {1}")]
    Regex(String, String),
    #[error("tenant regex {0:?} has no named group `tenant`")]
    NoGroup(String),
    #[error("tenant pointer: {0}")]
    Pointer(String),
    #[error("first_of needs at least one rule")]
    Empty,
}

/// A compiled rule.
#[derive(Debug, Clone)]
pub enum TenantResolver {
    Static(TenantId),
    /// A record path and its index in [`TenantResolver::paths`].
    Path(String, usize),
    Regex(NameSource, Regex),
    Header(String),
    Key,
    Lookup(
        Box<TenantResolver>,
        BTreeMap<String, TenantId>,
        Option<TenantId>,
    ),
    FirstOf(Vec<TenantResolver>),
}

/// Why no tenant came out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TenantError {
    Missing,
    Invalid(TenantIdError),
}

/// Where a rule reads from.
pub struct TenantCtx<'r> {
    /// The record's first value at the path with this index in
    /// [`TenantResolver::paths`] (the decoder picks them up while it scans).
    pub field: &'r dyn Fn(usize) -> Option<Scalar<'r>>,
    pub meta: &'r RecordMeta<'r>,
    pub log_group: Option<&'r str>,
}

impl TenantRule {
    /// Whether the rule reads a Kafka message header (anywhere inside it):
    /// an input whose rule does not need not parse any.
    pub fn reads_headers(&self) -> bool {
        match self {
            TenantRule::KafkaHeader { .. } => true,
            TenantRule::Lookup { key, .. } => key.reads_headers(),
            TenantRule::FirstOf { rules } => rules.iter().any(TenantRule::reads_headers),
            TenantRule::Static { .. }
            | TenantRule::Pointer { .. }
            | TenantRule::Regex { .. }
            | TenantRule::KafkaKey {}
            | TenantRule::PartitionKey {} => false,
        }
    }

    /// The rule `tollgate decode` and `replay` use when none is given: the
    /// common tenant fields (`/tenant`, the `custom:tenant_id` claim nested or
    /// flat, Zscaler `/company`, ZPA `/Customer`), else the tenant `default`.
    pub fn common_fields() -> TenantRule {
        let p = |s: &str| TenantRule::Pointer {
            pointer: s.to_owned(),
        };
        TenantRule::FirstOf {
            rules: vec![
                p("/tenant"),
                p("/authorizer/claims/custom:tenant_id"),
                p("/custom:tenant_id"),
                p("/company"),
                p("/Customer"),
                TenantRule::Static {
                    tenant: TenantId::new("default").expect("a valid literal"),
                },
            ],
        }
    }

    pub fn compile(&self) -> Result<TenantResolver, TenantRuleError> {
        let mut r = self.compile_rule()?;
        let paths = r.paths();
        r.number_paths(&paths);
        Ok(r)
    }

    fn compile_rule(&self) -> Result<TenantResolver, TenantRuleError> {
        Ok(match self {
            TenantRule::Static { tenant } => TenantResolver::Static(tenant.clone()),
            TenantRule::Pointer { pointer } => TenantResolver::Path(
                pointer_to_path(pointer).map_err(TenantRuleError::Pointer)?,
                0,
            ),
            TenantRule::Regex { over, regex } => {
                let re = Regex::new(regex)
                    .map_err(|e| TenantRuleError::Regex(regex.clone(), e.to_string()))?;
                if !re.capture_names().any(|n| n == Some("tenant")) {
                    return Err(TenantRuleError::NoGroup(regex.clone()));
                }
                TenantResolver::Regex(*over, re)
            }
            TenantRule::KafkaHeader { name } => TenantResolver::Header(name.clone()),
            TenantRule::KafkaKey {} | TenantRule::PartitionKey {} => TenantResolver::Key,
            TenantRule::Lookup {
                key,
                table,
                default,
            } => TenantResolver::Lookup(
                Box::new(key.compile_rule()?),
                table.clone(),
                default.clone(),
            ),
            TenantRule::FirstOf { rules } => {
                if rules.is_empty() {
                    return Err(TenantRuleError::Empty);
                }
                TenantResolver::FirstOf(
                    rules
                        .iter()
                        .map(TenantRule::compile_rule)
                        .collect::<Result<_, _>>()?,
                )
            }
        })
    }
}

impl TenantResolver {
    /// The distinct record paths the rule reads, in the order
    /// [`TenantCtx::field`] indexes them.
    pub fn paths(&self) -> Vec<String> {
        fn walk(r: &TenantResolver, out: &mut Vec<String>) {
            match r {
                TenantResolver::Path(p, _) if !out.contains(p) => out.push(p.clone()),
                TenantResolver::Lookup(key, ..) => walk(key, out),
                TenantResolver::FirstOf(rules) => rules.iter().for_each(|r| walk(r, out)),
                _ => {}
            }
        }
        let mut out = Vec::new();
        walk(self, &mut out);
        out
    }

    /// Gives each path rule its index in `paths`.
    fn number_paths(&mut self, paths: &[String]) {
        match self {
            TenantResolver::Path(p, i) => {
                *i = paths.iter().position(|q| q == p).unwrap_or(usize::MAX);
            }
            TenantResolver::Lookup(key, ..) => key.number_paths(paths),
            TenantResolver::FirstOf(rules) => rules.iter_mut().for_each(|r| r.number_paths(paths)),
            _ => {}
        }
    }

    /// Resolves and validates the tenant.
    pub fn resolve(&self, ctx: &TenantCtx<'_>) -> Result<TenantId, TenantError> {
        match self {
            TenantResolver::Static(t) => Ok(t.clone()),
            TenantResolver::Lookup(key, table, default) => {
                let raw = key.raw(ctx);
                match raw.as_deref().and_then(|k| table.get(k)) {
                    Some(t) => Ok(t.clone()),
                    None => default.clone().ok_or(TenantError::Missing),
                }
            }
            TenantResolver::FirstOf(rules) => {
                for r in rules {
                    match r.resolve(ctx) {
                        Err(TenantError::Missing) => {}
                        found => return found,
                    }
                }
                Err(TenantError::Missing)
            }
            _ => {
                let raw = self.raw(ctx).ok_or(TenantError::Missing)?;
                // `trim` (Unicode whitespace) has nothing to do when both
                // ends are visible ASCII, the common case.
                let plain = matches!(
                    raw.as_bytes(),
                    [f, .., l] if f.is_ascii_graphic() && l.is_ascii_graphic()
                );
                let id = if plain { &raw[..] } else { raw.trim() };
                TenantId::new(id).map_err(TenantError::Invalid)
            }
        }
    }

    /// The raw string a rule reads, before validation.
    fn raw<'r>(&self, ctx: &TenantCtx<'r>) -> Option<Cow<'r, str>> {
        match self {
            TenantResolver::Static(t) => Some(Cow::Owned(t.as_str().to_owned())),
            TenantResolver::Path(_, i) => match (ctx.field)(*i)? {
                Scalar::Str(s) if !crate::decode::is_sentinel(s) => Some(Cow::Borrowed(s)),
                Scalar::U64(n) => Some(Cow::Owned(n.to_string())),
                Scalar::I64(n) => Some(Cow::Owned(n.to_string())),
                _ => None,
            },
            TenantResolver::Regex(src, re) => {
                let name = match src {
                    NameSource::LogGroup => ctx.log_group?,
                    NameSource::Topic | NameSource::Stream => ctx.meta.topic?,
                };
                let caps = re.captures(name)?;
                Some(Cow::Borrowed(caps.name("tenant")?.as_str()))
            }
            TenantResolver::Header(h) => ctx
                .meta
                .headers
                .iter()
                .find(|(k, _)| k == h)
                .and_then(|(_, v)| std::str::from_utf8(v).ok())
                .map(Cow::Borrowed),
            TenantResolver::Key => ctx
                .meta
                .key
                .and_then(|k| std::str::from_utf8(k).ok())
                .map(Cow::Borrowed),
            TenantResolver::Lookup(..) | TenantResolver::FirstOf(_) => self
                .resolve(ctx)
                .ok()
                .map(|t| Cow::Owned(t.as_str().to_owned())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scan::tests::{flatten, Flat};

    fn rule(json: &str) -> TenantResolver {
        serde_json::from_str::<TenantRule>(json)
            .unwrap()
            .compile()
            .unwrap()
    }

    /// Resolves `r` over a flattened record, as the decoder does.
    fn resolve(
        r: &TenantResolver,
        flat: &Flat,
        meta: &RecordMeta<'_>,
        log_group: Option<&str>,
    ) -> Result<TenantId, TenantError> {
        let paths = r.paths();
        let field = |i: usize| paths.get(i).and_then(|p| flat.get(p));
        r.resolve(&TenantCtx {
            field: &field,
            meta,
            log_group,
        })
    }

    #[test]
    fn a_rule_reads_headers_when_any_part_of_it_does() {
        let reads = |j: &str| {
            serde_json::from_str::<TenantRule>(j)
                .unwrap()
                .reads_headers()
        };
        assert!(reads(r#"{"type":"kafka_header","name":"x-tenant"}"#));
        assert!(reads(
            r#"{"type":"first_of","rules":[{"type":"kafka_key"},{"type":"kafka_header","name":"t"}]}"#
        ));
        assert!(reads(
            r#"{"type":"lookup","key":{"type":"kafka_header","name":"t"},"table":{}}"#
        ));
        assert!(!reads(r#"{"type":"kafka_key"}"#));
        assert!(!reads(
            r#"{"type":"first_of","rules":[{"type":"pointer","pointer":"/t"},{"type":"static","tenant":"s"}]}"#
        ));
        assert!(!reads(
            r#"{"type":"lookup","key":{"type":"kafka_key"},"table":{}}"#
        ));
    }

    #[test]
    fn paths_are_numbered_once_each() {
        let r = rule(
            r#"{"type":"first_of","rules":[{"type":"pointer","pointer":"/a/b"},{"type":"lookup","key":{"type":"pointer","pointer":"/c"},"table":{}},{"type":"pointer","pointer":"/a/b"}]}"#,
        );
        assert_eq!(r.paths(), ["a.b", "c"]);
        let TenantResolver::FirstOf(rules) = &r else {
            panic!("{r:?}")
        };
        assert!(matches!(&rules[2], TenantResolver::Path(p, 0) if p == "a.b"));
        assert!(
            matches!(&rules[1], TenantResolver::Lookup(k, ..) if matches!(**k, TenantResolver::Path(_, 1)))
        );
    }

    #[test]
    fn every_rule_kind_resolves() {
        let rec = br#"{"authorizer":{"claims":{"custom:tenant_id":"acme"}},"apiId":"a1b2"}"#;
        let flat = flatten(rec, 16).unwrap();
        let headers = [("x-tenant", &b"globex"[..])];
        let meta = RecordMeta {
            topic: Some("logs.initech.apigw"),
            key: Some(b"hooli"),
            headers: &headers,
            ..Default::default()
        };
        let t = |j: &str| {
            resolve(&rule(j), &flat, &meta, Some("/aws/apigw/umbrella/access"))
                .map(|t| t.to_string())
        };
        assert_eq!(t(r#"{"type":"static","tenant":"s"}"#), Ok("s".into()));
        assert_eq!(
            t(r#"{"type":"pointer","pointer":"/authorizer/claims/custom:tenant_id"}"#),
            Ok("acme".into())
        );
        assert_eq!(
            t(r#"{"type":"regex","over":"topic","regex":"^logs\\.(?P<tenant>[^.]+)\\."}"#),
            Ok("initech".into())
        );
        assert_eq!(
            t(r#"{"type":"regex","over":"log_group","regex":"/aws/apigw/(?P<tenant>[^/]+)/"}"#),
            Ok("umbrella".into())
        );
        assert_eq!(
            t(r#"{"type":"kafka_header","name":"x-tenant"}"#),
            Ok("globex".into())
        );
        assert_eq!(t(r#"{"type":"kafka_key"}"#), Ok("hooli".into()));
        assert_eq!(
            t(
                r#"{"type":"lookup","key":{"type":"pointer","pointer":"/apiId"},"table":{"a1b2":"wayne"}}"#
            ),
            Ok("wayne".into())
        );
        assert_eq!(
            t(
                r#"{"type":"lookup","key":{"type":"pointer","pointer":"/apiId"},"table":{},"default":"dflt"}"#
            ),
            Ok("dflt".into())
        );
        assert_eq!(
            t(
                r#"{"type":"first_of","rules":[{"type":"pointer","pointer":"/nope"},{"type":"kafka_key"}]}"#
            ),
            Ok("hooli".into())
        );
        assert_eq!(
            t(r#"{"type":"pointer","pointer":"/nope"}"#),
            Err(TenantError::Missing)
        );
    }

    #[test]
    fn invalid_tenants_are_rejected_with_reason() {
        let flat = flatten(br#"{"t":"../etc","u":""}"#, 16).unwrap();
        let meta = RecordMeta::default();
        let t = |j: &str| resolve(&rule(j), &flat, &meta, None);
        assert_eq!(
            t(r#"{"type":"pointer","pointer":"/t"}"#),
            Err(TenantError::Invalid(TenantIdError::BadChar))
        );
        assert_eq!(
            t(r#"{"type":"pointer","pointer":"/u"}"#),
            Err(TenantError::Missing)
        );
        // An invalid value is not skipped in favour of a later fallback.
        assert_eq!(
            t(
                r#"{"type":"first_of","rules":[{"type":"pointer","pointer":"/u"},{"type":"pointer","pointer":"/t"},{"type":"static","tenant":"default"}]}"#
            ),
            Err(TenantError::Invalid(TenantIdError::BadChar))
        );
    }

    #[test]
    fn bad_rules_fail_to_compile() {
        let r: TenantRule =
            serde_json::from_str(r#"{"type":"regex","over":"topic","regex":"(.*)"}"#).unwrap();
        assert!(matches!(r.compile(), Err(TenantRuleError::NoGroup(_))));
        assert!(serde_json::from_str::<TenantRule>(r#"{"type":"static","tenant":"a b"}"#).is_err());
        assert!(serde_json::from_str::<TenantRule>(r#"{"type":"kafka_key","x":1}"#).is_err());
    }
}
