//! Engine configuration: one serde struct, parsed then checked.
//!
//! [`DetectConfig`] is what an operator writes (TOML/JSON, humantime-style
//! durations such as `"15m"`, unknown keys rejected). [`DetectConfig::check`]
//! validates every field at once and returns a [`CheckedConfig`], the only
//! form the [`crate::Engine`] accepts, so an invalid configuration is
//! unrepresentable at run time. Nothing here reads files or the environment.

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tollgate_events::TenantId;

use crate::cards::ModelCards;
use crate::Detector;

/// A duration written as a humantime-style string: `"250ms"`, `"90s"`,
/// `"15m"`, `"1h30m"`, `"7d"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Dur(pub Duration);

impl Dur {
    pub const fn secs(s: u64) -> Dur {
        Dur(Duration::from_secs(s))
    }
    pub fn as_millis_i64(self) -> i64 {
        i64::try_from(self.0.as_millis()).unwrap_or(i64::MAX)
    }
}

/// Why a duration string did not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid duration {0:?}: expected e.g. \"90s\", \"15m\", \"1h30m\", \"7d\"")]
pub struct DurError(pub String);

impl std::str::FromStr for Dur {
    type Err = DurError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let err = || DurError(s.to_string());
        let b = s.trim().as_bytes();
        if b.is_empty() {
            return Err(err());
        }
        let mut total: u128 = 0;
        let mut i = 0;
        while i < b.len() {
            let start = i;
            while i < b.len() && b[i].is_ascii_digit() {
                i += 1;
            }
            if start == i {
                return Err(err());
            }
            let n: u128 = std::str::from_utf8(&b[start..i])
                .ok()
                .and_then(|d| d.parse().ok())
                .ok_or_else(err)?;
            let ustart = i;
            while i < b.len() && b[i].is_ascii_alphabetic() {
                i += 1;
            }
            let ms: u128 = match &b[ustart..i] {
                b"ms" => 1,
                b"s" => 1_000,
                b"m" => 60_000,
                b"h" => 3_600_000,
                b"d" => 86_400_000,
                _ => return Err(err()),
            };
            total = total
                .checked_add(n.checked_mul(ms).ok_or_else(err)?)
                .ok_or_else(err)?;
        }
        let ms = u64::try_from(total).map_err(|_| err())?;
        Ok(Dur(Duration::from_millis(ms)))
    }
}

impl fmt::Display for Dur {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ms = self.0.as_millis();
        for (unit, n) in [
            ("d", 86_400_000u128),
            ("h", 3_600_000),
            ("m", 60_000),
            ("s", 1_000),
        ] {
            if ms >= n && ms.is_multiple_of(n) {
                return write!(f, "{}{unit}", ms / n);
            }
        }
        write!(f, "{ms}ms")
    }
}

impl Serialize for Dur {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Dur {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// Absolute raw-score floors, one per detector: an alert needs its raw score
/// at or above the floor *and* its calibrated grade at or above
/// [`DetectConfig::grade_threshold`]. Units are the detector's own (bits of
/// surprisal, nats of excess log-likelihood, z-scores); see
/// `ARCHITECTURE.md` (Detection engine).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct Floors {
    pub issuer: f64,
    pub access: f64,
    pub egress: f64,
    pub numeric: f64,
    pub burst: f64,
    pub beacon: f64,
    pub tunnel: f64,
    pub off_hours: f64,
    pub volume: f64,
}

impl Default for Floors {
    fn default() -> Self {
        Floors {
            issuer: 9.0,
            access: 5.0,
            egress: 8.0,
            numeric: 19.0,
            burst: 9.0,
            beacon: 2.5,
            tunnel: 8.0,
            off_hours: 4.0,
            volume: 6.0,
        }
    }
}

impl Floors {
    pub fn get(&self, d: Detector) -> f64 {
        match d {
            Detector::Issuer => self.issuer,
            Detector::Access => self.access,
            Detector::Egress => self.egress,
            Detector::Numeric => self.numeric,
            Detector::Burst => self.burst,
            Detector::Beacon => self.beacon,
            Detector::Tunnel => self.tunnel,
            Detector::OffHours => self.off_hours,
            Detector::Volume => self.volume,
        }
    }
}

/// The engine's configuration as written by an operator.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct DetectConfig {
    /// No alert for a tenant before it has sent this many events...
    pub warmup_events: u64,
    /// ...and before this much event time has passed since its first event.
    pub warmup: Dur,
    /// Minimum calibrated grade (streaming quantile of the detector's raw
    /// scores for this tenant) for an alert.
    pub grade_threshold: f64,
    /// Minimum raw score per detector for an alert.
    pub floors: Floors,
    /// The smallest upload (bytes out of one event) the egress detector
    /// judges at all: under it, an upload to a rare destination is an
    /// attachment, not an exfiltration worth a page, however far above
    /// the tenant's usual request size it is (at 952 B usual, 6 standard
    /// deviations is ≈ 90 KiB). Data leaving in smaller pieces is what the
    /// volume (bytes out per interval) and numeric detectors watch.
    pub egress_min_bytes: u64,
    /// Repeats for the same tenant + detector + entity within this much event
    /// time are one episode; an episode quiet this long resolves.
    pub cooldown: Dur,
    /// Memory budget per tenant model, in bytes.
    pub budget_bytes: usize,
    /// How many tenant models stay resident before the least recently used is
    /// written to the store and dropped.
    pub max_resident_tenants: usize,
    /// A resident tenant with no event for this long (event time, as seen by
    /// `advance`) is written to the store and dropped.
    pub idle_evict_after: Dur,
    /// Length of the fixed intervals the volume detector counts over.
    pub volume_interval: Dur,
    /// A principal needs this many events before "new network / new user
    /// agent for this principal" counts as evidence.
    pub principal_min_events: u32,
    /// Half-life of the categorical counts (time-decayed novelty/rarity).
    pub categorical_half_life: Dur,
    /// IANA time zone per tenant for hour-of-week features (default: UTC).
    pub time_zones: BTreeMap<TenantId, String>,
    /// Seed mixed into every seeded choice (reservoir sampling, GMM init).
    pub seed: u64,
}

impl Default for DetectConfig {
    fn default() -> Self {
        DetectConfig {
            warmup_events: 1_000,
            warmup: Dur::secs(24 * 3600),
            grade_threshold: 0.99,
            floors: Floors::default(),
            egress_min_bytes: 1024 * 1024,
            cooldown: Dur::secs(15 * 60),
            budget_bytes: 64 * 1024,
            max_resident_tenants: 10_000,
            idle_evict_after: Dur::secs(3600),
            volume_interval: Dur::secs(300),
            principal_min_events: 32,
            categorical_half_life: Dur::secs(14 * 24 * 3600),
            time_zones: BTreeMap::new(),
            seed: 0x70_11_9a_7e,
        }
    }
}

/// One problem found by [`DetectConfig::check`].
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ConfigError {
    #[error("grade_threshold must be in [0, 1], got {0}")]
    GradeThreshold(f64),
    #[error("floors.{0} must be finite and >= 0, got {1}")]
    Floor(&'static str, f64),
    #[error("budget_bytes must be at least {min}, got {got}")]
    Budget { min: usize, got: usize },
    #[error("max_resident_tenants must be at least 1")]
    MaxResident,
    #[error("{0} must be longer than zero")]
    ZeroDuration(&'static str),
    #[error("volume_interval must be at least 1s and divide one week")]
    VolumeInterval,
    #[error("categorical_half_life must be at least 1h")]
    HalfLife,
    #[error("time_zones.{tenant}: unknown IANA time zone {zone:?}")]
    TimeZone { tenant: String, zone: String },
}

/// All the problems [`DetectConfig::check`] found, reported together.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("invalid detect config: {}", .0.iter().map(|e| e.to_string()).collect::<Vec<_>>().join("; "))]
pub struct ConfigErrors(pub Vec<ConfigError>);

/// A validated configuration plus the model cards it runs with.
#[derive(Debug, Clone)]
pub struct CheckedConfig {
    pub(crate) cfg: DetectConfig,
    pub(crate) zones: BTreeMap<TenantId, chrono_tz::Tz>,
    pub(crate) cards: ModelCards,
}

/// The smallest budget that fits the fixed-size parts of a tenant model.
pub const MIN_BUDGET_BYTES: usize = 32 * 1024;

impl DetectConfig {
    /// Validate every field, reporting every problem at once.
    pub fn check(self) -> Result<CheckedConfig, ConfigErrors> {
        let mut errs = Vec::new();
        if !(0.0..=1.0).contains(&self.grade_threshold) {
            errs.push(ConfigError::GradeThreshold(self.grade_threshold));
        }
        for d in Detector::ALL {
            let v = self.floors.get(d);
            if !v.is_finite() || v < 0.0 {
                errs.push(ConfigError::Floor(d.as_str(), v));
            }
        }
        if self.budget_bytes < MIN_BUDGET_BYTES {
            errs.push(ConfigError::Budget {
                min: MIN_BUDGET_BYTES,
                got: self.budget_bytes,
            });
        }
        if self.max_resident_tenants == 0 {
            errs.push(ConfigError::MaxResident);
        }
        for (name, d) in [
            ("cooldown", self.cooldown),
            ("idle_evict_after", self.idle_evict_after),
        ] {
            if d.0.is_zero() {
                errs.push(ConfigError::ZeroDuration(name));
            }
        }
        let iv = self.volume_interval.0.as_millis();
        if iv < 1000 || (7 * 86_400_000) % iv != 0 {
            errs.push(ConfigError::VolumeInterval);
        }
        if self.categorical_half_life.0 < Duration::from_secs(3600) {
            errs.push(ConfigError::HalfLife);
        }
        let mut zones = BTreeMap::new();
        for (t, z) in &self.time_zones {
            match z.parse::<chrono_tz::Tz>() {
                Ok(tz) => {
                    zones.insert(t.clone(), tz);
                }
                Err(_) => errs.push(ConfigError::TimeZone {
                    tenant: t.to_string(),
                    zone: z.clone(),
                }),
            }
        }
        if errs.is_empty() {
            Ok(CheckedConfig {
                cfg: self,
                zones,
                cards: ModelCards::builtin(),
            })
        } else {
            Err(ConfigErrors(errs))
        }
    }
}

impl CheckedConfig {
    pub fn config(&self) -> &DetectConfig {
        &self.cfg
    }
    pub fn cards(&self) -> &ModelCards {
        &self.cards
    }
    /// Replace the built-in model cards (e.g. with ones the binary read from
    /// `models/`).
    pub fn with_cards(mut self, cards: ModelCards) -> Self {
        self.cards = cards;
        self
    }
    pub(crate) fn zone(&self, t: &TenantId) -> chrono_tz::Tz {
        self.zones.get(t).copied().unwrap_or(chrono_tz::UTC)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse_and_print() {
        assert_eq!("90s".parse::<Dur>().unwrap(), Dur::secs(90));
        assert_eq!("1h30m".parse::<Dur>().unwrap(), Dur::secs(5400));
        assert_eq!(
            "250ms".parse::<Dur>().unwrap().0,
            Duration::from_millis(250)
        );
        assert_eq!(Dur::secs(7 * 86400).to_string(), "7d");
        assert_eq!(Dur::secs(90).to_string(), "90s");
        for bad in ["", "5", "m", "5 weeks", "-3s", "3x"] {
            assert!(bad.parse::<Dur>().is_err(), "{bad}");
        }
    }

    #[test]
    fn default_config_checks_and_bad_fields_are_all_reported() {
        assert!(DetectConfig::default().check().is_ok());
        let cfg: DetectConfig = serde_json::from_str(
            r#"{"grade_threshold": 1.5, "budget_bytes": 10, "volume_interval": "11s",
                "time_zones": {"acme": "Mars/Olympus"}, "floors": {"issuer": -1}}"#,
        )
        .unwrap();
        let errs = cfg.check().unwrap_err().0;
        assert_eq!(errs.len(), 5, "{errs:?}");
        assert!(serde_json::from_str::<DetectConfig>(r#"{"warmup_evnts": 3}"#).is_err());
        assert!(serde_json::from_str::<DetectConfig>(r#"{"floors": {"isuer": 3}}"#).is_err());
    }

    #[test]
    fn tenant_time_zones_resolve() {
        let mut cfg = DetectConfig::default();
        let acme = TenantId::new("acme").unwrap();
        cfg.time_zones.insert(acme.clone(), "Europe/Berlin".into());
        let c = cfg.check().unwrap();
        assert_eq!(c.zone(&acme), chrono_tz::Europe::Berlin);
        assert_eq!(c.zone(&TenantId::new("other").unwrap()), chrono_tz::UTC);
    }
}
