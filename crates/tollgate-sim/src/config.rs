//! What to simulate: [`SimConfig`] and the vocabulary it is written in
//! ([`SimFormat`], [`Scenario`]), checked once by [`SimConfig::check`] so that
//! every problem is reported before any record is generated.
//!
//! The config holds no I/O settings; where records go is the caller's choice
//! (see [`crate::export`]).

use std::fmt;
use std::time::Duration;

use chrono::{DateTime, TimeZone, Utc};
use serde::{Deserialize, Serialize};
use tollgate_events::Source;

/// One vendor feed the simulator writes. Each maps to one decoder
/// [`Source`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SimFormat {
    /// API Gateway JSON access log lines (REST v1 and HTTP API v2 templates).
    Apigw,
    /// Zscaler ZIA NSS web transactions.
    ZscalerWeb,
    /// Zscaler ZIA NSS firewall sessions.
    ZscalerFw,
    /// Zscaler ZIA NSS DNS transactions.
    ZscalerDns,
}

impl SimFormat {
    pub const ALL: [SimFormat; 4] = [
        SimFormat::Apigw,
        SimFormat::ZscalerWeb,
        SimFormat::ZscalerFw,
        SimFormat::ZscalerDns,
    ];

    /// The decoder source these lines decode as.
    pub fn source(self) -> Source {
        match self {
            SimFormat::Apigw => Source::Apigw,
            SimFormat::ZscalerWeb => Source::ZscalerWeb,
            SimFormat::ZscalerFw => Source::ZscalerFw,
            SimFormat::ZscalerDns => Source::ZscalerDns,
        }
    }

    /// Stable snake_case label, equal to [`Source::as_str`]; also the NDJSON
    /// file stem written by [`crate::export`].
    pub fn as_str(self) -> &'static str {
        self.source().as_str()
    }

    pub(crate) fn index(self) -> usize {
        self as usize
    }
}

impl fmt::Display for SimFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A kind of injected incident.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Scenario {
    /// API calls by a known user with tokens from an issuer the tenant never used.
    NewIssuer,
    /// A known user's token replayed from a new network with a new user agent.
    StolenToken,
    /// A burst of 401/403 logins across many usernames from one address.
    CredentialStuffing,
    /// A burst of 404s over many distinct paths from one address.
    RouteEnumeration,
    /// Large uploads by one user to a domain the tenant never visits.
    Exfiltration,
    /// Periodic small requests from one device to a rare host.
    Beaconing,
    /// Many high-entropy subdomain queries under one domain.
    DnsTunnelling,
    /// Admin routes used by a non-admin user in the tenant's local night.
    OffHoursAdmin,
    /// A tenant's API request rate jumps several-fold for tens of minutes.
    VolumeSurge,
}

impl Scenario {
    pub const ALL: [Scenario; 9] = [
        Scenario::NewIssuer,
        Scenario::StolenToken,
        Scenario::CredentialStuffing,
        Scenario::RouteEnumeration,
        Scenario::Exfiltration,
        Scenario::Beaconing,
        Scenario::DnsTunnelling,
        Scenario::OffHoursAdmin,
        Scenario::VolumeSurge,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Scenario::NewIssuer => "new_issuer",
            Scenario::StolenToken => "stolen_token",
            Scenario::CredentialStuffing => "credential_stuffing",
            Scenario::RouteEnumeration => "route_enumeration",
            Scenario::Exfiltration => "exfiltration",
            Scenario::Beaconing => "beaconing",
            Scenario::DnsTunnelling => "dns_tunnelling",
            Scenario::OffHoursAdmin => "off_hours_admin",
            Scenario::VolumeSurge => "volume_surge",
        }
    }

    /// The feed this scenario's malicious records are written to.
    pub fn format(self) -> SimFormat {
        match self {
            Scenario::Exfiltration | Scenario::Beaconing => SimFormat::ZscalerWeb,
            Scenario::DnsTunnelling => SimFormat::ZscalerDns,
            _ => SimFormat::Apigw,
        }
    }
}

impl fmt::Display for Scenario {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for Scenario {
    type Err = UnknownScenario;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Scenario::ALL
            .into_iter()
            .find(|sc| sc.as_str() == s)
            .ok_or_else(|| UnknownScenario(s.to_owned()))
    }
}

/// A scenario name that is not one of [`Scenario::ALL`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown scenario {0:?}")]
pub struct UnknownScenario(pub String);

/// Everything that shapes a simulation. Same config ⇒ byte-identical records.
#[derive(Debug, Clone, PartialEq)]
pub struct SimConfig {
    /// Seeds every random choice: tenants, traffic and incidents.
    pub seed: u64,
    /// Number of tenants; sizes follow a Zipf law (tenant 0 is the largest).
    pub tenants: usize,
    /// Number of background (benign) records. Incidents add their malicious
    /// records on top; [`crate::Simulation::total_records`] gives the total.
    pub events: u64,
    /// Event time of the window's start.
    pub start: DateTime<Utc>,
    /// Event-time span of the simulation.
    pub duration: Duration,
    /// No incident starts before `start + warmup`, so models can learn normal.
    pub warmup: Duration,
    /// How many incidents of each scenario in [`SimConfig::scenarios`].
    pub incidents_per_scenario: usize,
    /// Which feeds to write.
    pub sources: Vec<SimFormat>,
    /// Which scenarios to inject; each needs its [`Scenario::format`] among
    /// `sources`.
    pub scenarios: Vec<Scenario>,
}

impl Default for SimConfig {
    /// A week of traffic for 20 tenants, one day of warm-up, one incident of
    /// every scenario, all feeds.
    fn default() -> Self {
        SimConfig {
            seed: 1,
            tenants: 20,
            events: 1_000_000,
            start: Utc.with_ymd_and_hms(2024, 3, 4, 0, 0, 0).unwrap(),
            duration: Duration::from_secs(7 * 86_400),
            warmup: Duration::from_secs(86_400),
            incidents_per_scenario: 1,
            sources: SimFormat::ALL.to_vec(),
            scenarios: Scenario::ALL.to_vec(),
        }
    }
}

/// Why a [`SimConfig`] cannot be simulated. All of them mean: fix the config.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SimConfigError {
    #[error("tenants must be between 1 and {max}, got {got}")]
    Tenants { got: usize, max: usize },
    #[error("duration must be at least one hour")]
    DurationTooShort,
    #[error("start must lie between 1971 and 9000")]
    StartOutOfRange,
    #[error("the window after warm-up must be at least {needed_hours} hours to place {scenario} incidents")]
    WindowTooShort {
        scenario: Scenario,
        needed_hours: u64,
    },
    #[error("scenario {scenario} writes to the {format} feed, which is not among sources")]
    ScenarioNeedsSource {
        scenario: Scenario,
        format: SimFormat,
    },
    #[error("sources must name at least one feed")]
    NoSources,
}

impl SimConfig {
    pub const MAX_TENANTS: usize = 10_000;

    /// A config with `sources` and only the scenarios those feeds can carry.
    pub fn with_sources(mut self, sources: &[SimFormat]) -> Self {
        self.sources = sources.to_vec();
        self.scenarios.retain(|s| sources.contains(&s.format()));
        self
    }

    /// Every problem with the config, in a stable order; empty means valid.
    pub fn problems(&self) -> Vec<SimConfigError> {
        let mut out = Vec::new();
        if self.tenants == 0 || self.tenants > Self::MAX_TENANTS {
            out.push(SimConfigError::Tenants {
                got: self.tenants,
                max: Self::MAX_TENANTS,
            });
        }
        if self.duration < Duration::from_secs(3600) {
            out.push(SimConfigError::DurationTooShort);
        }
        let start_s = self.start.timestamp();
        if !(31_536_000..=220_000_000_000).contains(&start_s) {
            out.push(SimConfigError::StartOutOfRange);
        }
        if self.sources.is_empty() {
            out.push(SimConfigError::NoSources);
        }
        let window = self.duration.saturating_sub(self.warmup);
        if self.incidents_per_scenario > 0 {
            for &scenario in &self.scenarios {
                let format = scenario.format();
                if !self.sources.contains(&format) {
                    out.push(SimConfigError::ScenarioNeedsSource { scenario, format });
                }
                let needed_hours = crate::incident::window_hours_needed(scenario);
                if window < Duration::from_secs(needed_hours * 3600) {
                    out.push(SimConfigError::WindowTooShort {
                        scenario,
                        needed_hours,
                    });
                }
            }
        }
        out
    }

    /// `Ok` if the config can be simulated, else the first problem (see
    /// [`SimConfig::problems`] for all of them).
    pub fn check(&self) -> Result<(), SimConfigError> {
        match self.problems().into_iter().next() {
            None => Ok(()),
            Some(e) => Err(e),
        }
    }
}
