//! What the engine emits: detector names, per-event scores, alerts with
//! explanations, and alert-episode bookkeeping.
//!
//! An [`Alert`] is built once, when its episode opens, and never revised: its
//! `score` and `grade` are the values computed for the triggering event. Ids
//! are hashes of (tenant, detector, entity, event time, event id), so a replay
//! of the same events yields the same ids. Episodes group repeats for the same
//! tenant + detector + entity within the cooldown and resolve after a quiet
//! cooldown of event time. This module holds data and the episode table; the
//! detectors that decide live in [`crate::model`].

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use tollgate_events::{Source, TenantId};

use crate::hash::{hash_bytes, hash_u64, mix2};
use crate::snapshot::{check_time, ShapeError};

/// The detectors of a tenant model.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Detector {
    /// Token from an issuer new (or rare) for the tenant.
    Issuer,
    /// An established principal from a new network *and* a new user agent.
    Access,
    /// Large bytes out to a destination rare for the tenant and the user.
    Egress,
    /// Unusual combination of the numeric features (Gaussian mixture).
    Numeric,
    /// Burst of 401/403 (credential stuffing) or 404 (enumeration).
    Burst,
    /// Periodic small requests from a principal to a rare host.
    Beacon,
    /// Many new high-entropy subdomains of one domain (DNS tunnelling).
    Tunnel,
    /// Administrative activity at an hour-of-week the tenant is rarely active.
    OffHours,
    /// Interval volume of events, errors, bytes out or principals.
    Volume,
}

impl Detector {
    pub const COUNT: usize = 9;
    pub const ALL: [Detector; Detector::COUNT] = [
        Detector::Issuer,
        Detector::Access,
        Detector::Egress,
        Detector::Numeric,
        Detector::Burst,
        Detector::Beacon,
        Detector::Tunnel,
        Detector::OffHours,
        Detector::Volume,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Detector::Issuer => "issuer",
            Detector::Access => "access",
            Detector::Egress => "egress",
            Detector::Numeric => "numeric",
            Detector::Burst => "burst",
            Detector::Beacon => "beacon",
            Detector::Tunnel => "tunnel",
            Detector::OffHours => "off_hours",
            Detector::Volume => "volume",
        }
    }

    pub fn index(self) -> usize {
        self as usize
    }
}

impl std::fmt::Display for Detector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How loud an alert is, from its raw score relative to the floor.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    Low,
    Medium,
    High,
    Critical,
}

impl Severity {
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Low => "low",
            Severity::Medium => "medium",
            Severity::High => "high",
            Severity::Critical => "critical",
        }
    }

    pub fn from_ratio(raw_over_floor: f64) -> Severity {
        if raw_over_floor >= 6.0 {
            Severity::Critical
        } else if raw_over_floor >= 3.0 {
            Severity::High
        } else if raw_over_floor >= 1.5 {
            Severity::Medium
        } else {
            Severity::Low
        }
    }
}

/// One detector's verdict on one event.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct DetectorScore {
    /// In the detector's own unit (see ARCHITECTURE.md (Detection engine)).
    pub raw: f64,
    /// Fraction of this tenant's past raw scores for the detector below `raw`.
    pub grade: f64,
}

/// The scores of one event, for event-level AUROC/AUPRC and dashboards.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct EventScore {
    /// The highest grade among detectors whose raw score reached its floor
    /// (0 when none did): the event's rank for evaluation.
    pub max_grade: f64,
    /// Indexed by [`Detector::index`]; `Volume` is scored per interval, not
    /// per event, and stays 0 here.
    pub per_detector: [DetectorScore; Detector::COUNT],
    /// The tenant was past warm-up (alerts possible).
    pub warm: bool,
}

/// One contributing feature of an alert.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Contribution {
    pub feature: String,
    /// What this event had.
    pub value: String,
    /// What is typical for this tenant (or principal).
    pub typical: String,
    /// One plain sentence on why it counts.
    pub reason: String,
}

/// An alert: the first event of an episode.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Alert {
    pub id: String,
    pub tenant: TenantId,
    pub source: Source,
    pub detector: Detector,
    /// The hashed entity the episode is keyed by (what on-call feedback
    /// applies to); a hex string in JSON so JavaScript readers keep all 64 bits.
    #[serde(with = "hex_key", default)]
    pub entity_key: u64,
    pub severity: Severity,
    pub score: f64,
    pub grade: f64,
    /// Event time of the triggering event (interval end for volume).
    pub ts: DateTime<Utc>,
    pub event_id: Option<String>,
    pub entity: String,
    pub episode: String,
    pub explanation: Vec<Contribution>,
    pub summary: String,
}

/// An alert state change.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum AlertUpdate {
    Fired(Alert),
    Resolved {
        episode: String,
        tenant: TenantId,
        detector: Detector,
        entity: String,
        ts: DateTime<Utc>,
    },
}

/// An open episode.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct Episode {
    pub detector: Detector,
    pub entity_key: u64,
    pub entity: String,
    pub id: String,
    pub first_ms: i64,
    pub last_ms: i64,
    pub events: u32,
}

impl Episode {
    /// Times that event times can be subtracted from (quiet episodes
    /// resolve at `now - last_ms`).
    pub(crate) fn check(&self) -> Result<(), ShapeError> {
        check_time("first_ms", self.first_ms)?;
        check_time("last_ms", self.last_ms)
    }
}

/// At most this many episodes are open per tenant; opening one more resolves
/// the one quiet the longest (counted).
pub(crate) const MAX_OPEN_EPISODES: usize = 32;

pub(crate) fn ids(
    tenant: &TenantId,
    detector: Detector,
    entity_key: u64,
    ts_ms: i64,
    event_id: Option<&str>,
) -> (String, String) {
    let mut h = hash_bytes(0xa1e7, tenant.as_str().as_bytes());
    h = mix2(h, detector as u64);
    h = mix2(h, entity_key);
    h = mix2(h, ts_ms as u64);
    h = mix2(h, event_id.map_or(0, |e| hash_bytes(0xe7, e.as_bytes())));
    (
        format!("al-{h:016x}"),
        format!("ep-{:016x}", hash_u64(0xe915, h)),
    )
}

mod hex_key {
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(k: &u64, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&format!("{k:016x}"))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        u64::from_str_radix(&s, 16).map_err(serde::de::Error::custom)
    }
}

pub(crate) fn ms_to_utc(ms: i64) -> DateTime<Utc> {
    DateTime::from_timestamp_millis(ms).unwrap_or(DateTime::<Utc>::MIN_UTC)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_deterministic_and_distinct() {
        let t = TenantId::new("acme").unwrap();
        let a = ids(&t, Detector::Issuer, 1, 1000, Some("e1"));
        assert_eq!(a, ids(&t, Detector::Issuer, 1, 1000, Some("e1")));
        assert_ne!(a.0, ids(&t, Detector::Issuer, 1, 1000, Some("e2")).0);
        assert_ne!(a.0, ids(&t, Detector::Access, 1, 1000, Some("e1")).0);
        assert_ne!(
            a.0,
            ids(
                &TenantId::new("b").unwrap(),
                Detector::Issuer,
                1,
                1000,
                Some("e1")
            )
            .0
        );
        assert!(a.0.starts_with("al-") && a.1.starts_with("ep-"));
    }

    #[test]
    fn alerts_serialize_with_the_agreed_field_names() {
        let t = TenantId::new("acme").unwrap();
        let a = Alert {
            id: "al-1".into(),
            tenant: t,
            source: Source::Apigw,
            detector: Detector::OffHours,
            entity_key: 0xfeed,
            severity: Severity::High,
            score: 5.0,
            grade: 0.999,
            ts: ms_to_utc(0),
            event_id: None,
            entity: "alice".into(),
            episode: "ep-1".into(),
            explanation: vec![],
            summary: "s".into(),
        };
        let v = serde_json::to_value(&a).unwrap();
        let keys: Vec<_> = v.as_object().unwrap().keys().cloned().collect();
        for k in [
            "id",
            "tenant",
            "source",
            "detector",
            "severity",
            "score",
            "grade",
            "ts",
            "event_id",
            "entity",
            "episode",
            "explanation",
            "summary",
        ] {
            assert!(keys.contains(&k.to_string()), "{k}");
        }
        assert_eq!(v["detector"], "off_hours");
        assert_eq!(v["entity_key"], "000000000000feed");
        let back: Alert = serde_json::from_value(v.clone()).unwrap();
        assert_eq!(back, a);
        assert_eq!(v["severity"], "high");
    }
}
