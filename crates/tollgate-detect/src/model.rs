//! [`TenantModel`]: one tenant's isolated detection state and the detectors
//! that read it.
//!
//! Everything a tenant's scores depend on lives in its `TenantModel` and is
//! learned only from that tenant's events: categorical tables, per-principal
//! windows, per-source numeric and volume models, calibrators, open episodes.
//! Nothing is pooled across tenants; cold-start priors come only from the
//! model cards. Each event is scored against the state *before* it, then
//! learned. The structures are sized from the configured memory budget at
//! creation and never grow past it: when a new source would push the model
//! over budget, the categorical table is halved (a counted budget hit).
//! This module does no I/O and reads no clock: time is the event's timestamp
//! or the `now` handed to [`TenantModel::advance`].

use std::fmt::Write as _;

use serde::{Deserialize, Serialize};
use tollgate_events::{Event, Source, TenantId};

use crate::alert::{
    ids, ms_to_utc, Alert, AlertUpdate, Contribution, Detector, DetectorScore, Episode, EventScore,
    Severity, MAX_OPEN_EPISODES,
};
use crate::calibrate::{Calibrator, Located};
use crate::config::CheckedConfig;
use crate::features::{
    featurize_cached, network_label, registrable_domain, ua_family, FeatureCache, Features, Zone,
};
use crate::hash::{hash_bytes, mix2};
use crate::numeric::{to_unit, NumericModel, D, FEATURE_NAMES};
use crate::sketch::{
    CommonNetworks, Decayed, Kind, PairFilter, PrincipalCounts, PrincipalTable, SeenTable,
    TopLabels, KINDS, SLOT_BYTES,
};
use crate::snapshot::{check_each, check_finite, check_len, check_max, check_time, ShapeError};
use crate::volume::{IntervalVerdict, IntervalVolume, SERIES};

const SHORT_TAU_MS: f64 = 60_000.0;
const LONG_TAU_MS: f64 = 86_400_000.0;
const TUNNEL_TAU_MS: f64 = 600_000.0;
/// A destination seen fewer times than this may start a beacon track.
const BEACON_RARE: u32 = 32;
const TRACKS: usize = 32;
/// Bytes-out z-score (in the source's standardized log space) below which
/// an upload adds nothing to the egress score: at the most rarity (16
/// bits) an upload must be 6 standard deviations above the tenant's usual
/// log-size to reach the floor, at half of it 8. In a replay of the
/// simulator's traffic an 11.9 MiB exfiltration, where 952 B is usual, was
/// 12.6 standard deviations out (σ ≈ 0.75 in ln bytes: 6 and 8 σ are
/// ≈ 90× and 400× the usual request). With 1, ordinary uploads of
/// 20-160 KiB to a domain the tenant seldom visits were 31 (seed 1) and 61
/// (seed 2) of the scenario suite's false alerts; with 2, 3 and 5; with 3,
/// 1 and 0; with 4, 0 and 0 — every exfiltration still found at its first
/// event.
const EGRESS_Z0: f64 = 4.0;

/// Events over which a burst stream's dispersion is averaged.
const BURST_DISPERSION_EVENTS: f32 = 256.0;
/// Admin sessions tracked at once (the most active kept).
const ADMIN_TRACKS: usize = 8;
/// Decay of a principal's admin-session count.
const ADMIN_TAU_MS: f64 = 600_000.0;
/// Sources whose fixed cost is reserved up front when sizing the tables.
const RESERVED_SOURCES: usize = 2;

/// Counters a tenant model keeps about itself.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TenantCounters {
    pub events: u64,
    pub alerts: u64,
    pub gmm_fits: u64,
    pub gmm_fit_failures: u64,
    /// Times the categorical table was halved to stay within budget.
    pub table_halvings: u64,
    /// Beacon/tunnel tracks replaced while still live.
    pub track_evictions: u64,
    /// Episodes resolved early because the open-episode table was full.
    pub episodes_forced: u64,
    /// Alerts not raised because on-call marked the entity (or a stronger
    /// alert for it) a false positive.
    pub suppressed: u64,
    /// Known-benign entries replaced because the table was full.
    pub benign_evictions: u64,
}

/// On-call's verdict on an alert (see [`TenantModel::feedback`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    FalsePositive,
    TruePositive,
}

impl Verdict {
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::FalsePositive => "false_positive",
            Verdict::TruePositive => "true_positive",
        }
    }
}

/// A (detector, entity) on-call marked a false positive: later alerts for
/// it are raised only when their raw score reaches `min_raw`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Benign {
    pub detector: Detector,
    pub entity_key: u64,
    pub entity: String,
    /// `f64::INFINITY` when the entity itself is the value that was
    /// flagged (an issuer, a destination): it is known-benign outright.
    pub min_raw: f64,
    /// Event time of the tenant when the verdict was applied.
    pub since_ms: i64,
}

/// What a verdict is about: an alert's detector, entity and raw score.
#[derive(Debug, Clone, PartialEq)]
pub struct FeedbackTarget {
    pub detector: Detector,
    pub entity_key: u64,
    pub entity: String,
    pub score: f64,
}

impl From<&Alert> for FeedbackTarget {
    fn from(a: &Alert) -> Self {
        FeedbackTarget {
            detector: a.detector,
            entity_key: a.entity_key,
            entity: a.entity.clone(),
            score: a.score,
        }
    }
}

/// What a verdict did to the model.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FeedbackEffect {
    pub verdict: Verdict,
    /// The known-benign entry in force after the verdict, if any.
    pub benign: Option<Benign>,
    /// A verdict that removed an earlier known-benign entry (a true
    /// positive for an entity once marked benign).
    pub removed: bool,
}

/// At most this many known-benign entries per tenant; a new one replaces
/// the oldest (counted in [`TenantCounters::benign_evictions`]).
pub const MAX_BENIGN: usize = 64;

/// A known-benign entry keeps at most this many bytes of its entity.
const BENIGN_ENTITY_BYTES: usize = 256;

/// A later alert for an entity marked false positive on a threshold-type
/// detector must score this many times the marked alert's raw score.
pub const BENIGN_RAISE: f64 = 1.5;

/// Interval regularity of one (principal, destination) pair.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
struct BeaconTrack {
    key: u64,
    last_ms: i64,
    n: u32,
    mean_s: f32,
    mad_s: f32,
    ln_bytes: f32,
}

impl BeaconTrack {
    /// A time event times can be subtracted from and a finite interval
    /// estimate (`ln_bytes` is NaN while the track has seen no size).
    fn check(&self) -> Result<(), ShapeError> {
        check_time("last_ms", self.last_ms)?;
        check_finite("mean_s", [f64::from(self.mean_s)])?;
        check_finite("mad_s", [f64::from(self.mad_s)])
    }
}

/// Novel high-entropy query names under one registrable domain.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
struct TunnelTrack {
    key: u64,
    hi: Decayed,
    entropy: f32,
}

impl TunnelTrack {
    fn check(&self) -> Result<(), ShapeError> {
        self.hi.check().map_err(|e| e.within("hi"))?;
        check_finite("entropy", [f64::from(self.entropy)])
    }
}

/// A principal's administrative events in the last minutes (off-hours:
/// an ordinary admin makes an admin call now and then; a session of dozens
/// in a quiet hour is what an intruder with a stolen account does).
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
struct AdminTrack {
    key: u64,
    n: Decayed,
    /// Off-hours bits of the hour the session began in.
    start_bits: f32,
    /// The session's largest count so far.
    peak: f32,
    /// Admin calls since the session began.
    calls: u32,
}

impl AdminTrack {
    /// Whether the session has ended by `now` (decayed below half an event).
    fn ended(&self, now: i64) -> bool {
        self.n.at(now, ADMIN_TAU_MS) < 0.5
    }

    fn check(&self) -> Result<(), ShapeError> {
        self.n.check().map_err(|e| e.within("n"))?;
        check_finite("start_bits", [f64::from(self.start_bits)])?;
        check_finite("peak", [f64::from(self.peak)])
    }
}

/// A session of a principal that was not established (too few events to
/// be counted among the tenant's most active) from a network new for it:
/// a light user's token replayed from elsewhere. Its first event proves
/// little (people change laptops and networks); more events from that
/// network and user agent than the principal's whole remembered history,
/// within one session, is what a stolen token looks like. The user agent
/// need not be new: a tool replaying a token often sends what the
/// principal's own client sends (the same family and OS), and requiring a
/// new one also left the tenant's session sizes too few to tell a rare
/// size from a common one (scenario suite, 15th session: seeds 4 and 5
/// found their stolen tokens late or not at all until sessions opened on
/// a new network alone).
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
struct TakeoverTrack {
    /// The principal.
    key: u64,
    /// The session's network and user agent: the low 32 bits of `mix2`
    /// of their hashes (enough to tell one principal's sessions apart, and
    /// with `new_ua` the track stays 32 bytes; format 10).
    ctx: u32,
    first_ms: i64,
    /// From the first event to the last (the session lasts an hour at most).
    span_ms: u32,
    /// The principal's count in [`PrincipalCounts`] when the session began
    /// (0 when the counts had dropped it: too light to keep).
    prior: u16,
    /// Events from the session's network and user agent since.
    n: u16,
    /// Whether the user agent was new for the principal too, at the first
    /// event (format 10; older snapshots' sessions all opened on a new one).
    new_ua: bool,
}

impl TakeoverTrack {
    fn check(&self) -> Result<(), ShapeError> {
        if i64::from(self.span_ms) > TAKEOVER_SPAN_MS {
            return Err(ShapeError::new("span_ms over an hour"));
        }
        Ok(())
    }

    /// Within an hour of its first event: a session, not a new habit.
    fn live(&self, now: i64) -> bool {
        now.saturating_sub(self.first_ms) <= TAKEOVER_SPAN_MS
    }
}

/// [`TenantModel::takeovers`] as a snapshot holds them: before format 10
/// without `new_ua`, every session then having opened on a new user agent.
fn takeover_tracks<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<TakeoverTrack>, D::Error> {
    #[derive(Deserialize)]
    struct Format9 {
        key: u64,
        ctx: u64,
        first_ms: i64,
        span_ms: u32,
        prior: u16,
        n: u16,
    }
    if crate::snapshot::decoding_format() > 9 {
        return Vec::<TakeoverTrack>::deserialize(d);
    }
    let old = Vec::<Format9>::deserialize(d)?;
    Ok(old
        .into_iter()
        .map(|o| TakeoverTrack {
            key: o.key,
            ctx: o.ctx as u32,
            first_ms: o.first_ms,
            span_ms: o.span_ms,
            prior: o.prior,
            n: o.n,
            new_ua: true,
        })
        .collect())
}

/// Sessions of unestablished principals from a new network followed at
/// once, at most: one per 8 KiB of budget over 32 KiB (four in the default
/// 64 KiB, one at the minimum; [`TenantModel::new`]).
const TAKEOVER_TRACKS: usize = 8;

/// A takeover session is judged on its first hour.
const TAKEOVER_SPAN_MS: i64 = 3_600_000;

/// Takeover session sizes counted one by one up to this many events
/// ([`TenantModel::takeover`]).
pub(crate) const TAKEOVER_REACH: usize = 8;

/// A takeover session is judged by how rarely this tenant's sessions grow
/// as large once it has at least this many events (fewer are a user's
/// first few requests from home on a new device).
const TAKEOVER_MIN_EVENTS: u16 = 5;

/// One client network's 404s from the tenant's API in the last minute. A
/// scanner enumerating routes is one client; counted only tenant-wide, its
/// 404s are divided by how clustered the tenant's own 404s are, and in a
/// large tenant whose 404s come in clusters a scanner of 22 a minute stayed
/// under the floor (scenario suite, seed 9: 8.33 bits in `wayne-000`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
struct ScanTrack {
    /// The low 32 bits of the client network's hash.
    key: u32,
    /// 404s in the last minute (decayed) as of `last_ms`.
    n: f32,
    last_ms: i64,
}

impl ScanTrack {
    fn check(&self) -> Result<(), ShapeError> {
        check_time("last_ms", self.last_ms)?;
        check_finite("n", [f64::from(self.n)])
    }

    fn at(&self, now: i64) -> f64 {
        Decayed {
            value: f64::from(self.n),
            last_ms: self.last_ms,
        }
        .at(now, SHORT_TAU_MS)
    }
}

/// Client networks whose 404s are followed at once; a new one replaces
/// the one with the fewest in the last minute.
const SCAN_TRACKS: usize = 2;

/// The smallest budget with room for the scan tracks: at the minimum
/// (32 KiB) the tables are at their floors and the model fills it.
const SCAN_MIN_BUDGET: usize = 40 * 1024;

/// 401/403 and 404 rates: last minute vs. the last day.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
struct Burst {
    auth_short: Decayed,
    auth_long: Decayed,
    nf_short: Decayed,
    nf_long: Decayed,
    /// Mean excess of the last minute's count over the day's rate, seen at
    /// each 401/403 (404) event: 0 for a Poisson stream, the dispersion
    /// φ − 1 of a clustered one.
    auth_excess: f32,
    nf_excess: f32,
}

impl Burst {
    fn check(&self) -> Result<(), ShapeError> {
        for (name, d) in [
            ("auth_short", &self.auth_short),
            ("auth_long", &self.auth_long),
            ("nf_short", &self.nf_short),
            ("nf_long", &self.nf_long),
        ] {
            d.check().map_err(|e| e.within(name))?;
        }
        check_finite("auth_excess", [f64::from(self.auth_excess)])?;
        check_finite("nf_excess", [f64::from(self.nf_excess)])
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct SourceModel {
    source: Source,
    numeric: NumericModel,
    volume: IntervalVolume,
    burst: Burst,
}

impl SourceModel {
    fn check(&self) -> Result<(), ShapeError> {
        self.numeric.check().map_err(|e| e.within("numeric"))?;
        self.volume.check().map_err(|e| e.within("volume"))?;
        self.burst.check().map_err(|e| e.within("burst"))
    }

    fn resident_bytes(&self) -> usize {
        // the numeric and volume estimates already include their inline size
        std::mem::size_of::<Self>()
            - std::mem::size_of::<NumericModel>()
            - std::mem::size_of::<IntervalVolume>()
            + self.numeric.resident_bytes()
            + self.volume.resident_bytes()
    }
}

/// Warm-up progress: alerts start once both needs are met.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Warmup {
    pub events: u64,
    pub events_needed: u64,
    pub event_time_seconds: f64,
    pub event_time_needed_seconds: f64,
    /// The lesser of the two fractions, in [0, 1].
    pub progress: f64,
}

/// A tenant in the admin API's list.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TenantSummary {
    pub tenant: String,
    pub events: u64,
    pub alerts: u64,
    pub first_event: Option<chrono::DateTime<chrono::Utc>>,
    pub last_event: Option<chrono::DateTime<chrono::Utc>>,
    /// Past warm-up: alerts possible.
    pub warm: bool,
    pub warmup: Warmup,
    pub resident_bytes: usize,
    pub budget_bytes: usize,
    pub open_episodes: usize,
    pub known_benign: usize,
    pub suppressed: u64,
    pub budget_hits: u64,
}

/// One of the most frequent values of a categorical feature.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TopValue {
    pub value: String,
    /// Decayed count.
    pub count: u32,
}

/// An open episode, for the admin API.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct EpisodeView {
    pub id: String,
    pub detector: Detector,
    pub entity: String,
    pub first: chrono::DateTime<chrono::Utc>,
    pub last: chrono::DateTime<chrono::Utc>,
    pub events: u32,
}

/// A tenant's page in the admin API.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TenantDetail {
    #[serde(flatten)]
    pub summary: TenantSummary,
    pub top_issuers: Vec<TopValue>,
    pub top_destinations: Vec<TopValue>,
    pub distinct_issuers: u32,
    pub sources: Vec<Source>,
    /// Raw scores each detector's calibration has seen.
    pub scores_observed: std::collections::BTreeMap<&'static str, u32>,
    pub episodes: Vec<EpisodeView>,
    pub known_benign: Vec<Benign>,
    pub counters: TenantCounters,
}

/// One tenant's model. See the module docs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TenantModel {
    tenant: TenantId,
    /// Seed for this tenant's reservoir and GMM fits (config seed × tenant).
    seed: u64,
    budget: usize,
    first_ms: i64,
    last_ms: i64,
    seen: SeenTable,
    /// Events per principal (decayed): "established", first-sighting surprisal.
    counts: PrincipalCounts,
    /// (principal, network) and (principal, user agent) pairs seen.
    pairs: PairFilter,
    /// The tenant's common client networks (offices, VPN).
    common_nets: CommonNetworks,
    /// Decayed event totals per categorical kind (surprisal denominators).
    totals: [Decayed; KINDS],
    top_issuers: TopLabels,
    top_domains: TopLabels,
    principals: PrincipalTable,
    /// Events per local hour of week (all bins halve when one would
    /// overflow: only their proportions are used).
    hours: Box<[u16]>,
    hours_total: u64,
    /// Administrative events per local hour of week.
    admin_hours: Box<[u16]>,
    admin_total: u64,
    /// The tenant's typical admin-session size (moving mean of ended
    /// sessions' peak counts).
    admin_typical: f32,
    /// Boxed on purpose: a source model is 2.3 KiB, and a vector of them
    /// growing 1 → 2 → 4 left its freed blocks behind in every tenant
    /// (`tenant_memory`, 10,000 tenants: 68,152 B RSS per tenant unboxed,
    /// 63,373 B boxed).
    #[allow(clippy::vec_box)]
    sources: Vec<Box<SourceModel>>,
    calib: Box<[Calibrator]>,
    beacons: Vec<BeaconTrack>,
    tunnels: Vec<TunnelTrack>,
    /// Principals' recent admin sessions.
    admin_tracks: Vec<AdminTrack>,
    episodes: Vec<Episode>,
    /// Entities on-call marked false positive ([`TenantModel::feedback`]).
    benign: Vec<Benign>,
    counters: TenantCounters,
    /// Appended in format 7: a format-6 snapshot is this model without
    /// them and the fields after them ([`crate::snapshot::decode`]
    /// upgrades it).
    #[serde(deserialize_with = "takeover_tracks")]
    takeovers: Vec<TakeoverTrack>,
    /// How many takeover sessions this model follows (1 to
    /// [`TAKEOVER_TRACKS`], by budget).
    takeover_cap: u8,
    /// Appended in format 8: how many takeover sessions
    /// reached 1, 2, … [`TAKEOVER_REACH`] events (the last: at least that
    /// many), halved together when the first nears `u16::MAX`.
    takeover_reach: [u16; TAKEOVER_REACH],
    /// Last of the stored fields (format 11): 404s per client network of
    /// the tenant's API ([`ScanTrack`]).
    /// `None` in a budget under 40 KiB, whose tables are at their floors,
    /// and in a model upgraded from format 10 or older without room left
    /// for them ([`TenantModel::fit_scans`]).
    scans: Option<Box<[ScanTrack; SCAN_TRACKS]>>,
    /// The tenant's time zone; set by the engine from the config, not stored.
    #[serde(skip, default = "utc")]
    zone: Zone,
}

fn utc() -> Zone {
    Zone::new(chrono_tz::UTC)
}

/// The Poisson deviance of a count `k` above its expectation `lambda`, in
/// bits (`k > lambda`).
fn poisson_excess_bits(k: f64, lambda: f64) -> f64 {
    (k * (k / lambda).ln() - (k - lambda)) / std::f64::consts::LN_2
}

#[inline]
fn bits(num: f64, den: f64) -> f64 {
    (num / den).log2().clamp(0.0, 40.0)
}

/// A takeover session's two scores, in bits, after its `n`th request
/// (`prior`: the principal's remembered events at its start; `sessions`:
/// the tenant's takeover sessions, `reached`: those that had grown to `n`
/// before it): grown past the principal's history, log2 of its size (the
/// access floor at 30 requests); rare for this tenant from the 5th
/// request, the surprisal of a session this large among its sessions,
/// whatever the history — the principal is not established, and the
/// tenant's own sessions say how large a user's new-device session gets
/// here.
fn takeover_bits(n: u16, prior: u16, sessions: u16, reached: u16) -> (f64, f64) {
    let grown = if u64::from(n) > 2 * u64::from(prior) + 2 {
        (f64::from(n) + 2.0).log2()
    } else {
        0.0
    };
    let rare = if n >= TAKEOVER_MIN_EVENTS {
        bits(f64::from(sessions) + 1.0, f64::from(reached) + 0.5).min(16.0)
    } else {
        0.0
    };
    (grown, rare)
}

/// The off-hours score of an admin session: how quiet its hour is, plus
/// the session's own evidence as far as the hour is quiet — fully from 1
/// bit (half the traffic and admin sessions of an average hour, geometric
/// mean) up, not at all at an average or busier hour: a busy admin at a
/// busy hour is not off-hours activity. (A hard gate at 1 bit missed a
/// 27-call night session on scenario seed 5, where two benign 3 a.m. admin
/// sessions had made the hour 0.58 bits quiet: it scored 0.58, now 9.9.)
///
/// For a principal with an earlier admin session (an admin), the hour
/// itself counts half: an admin's call at a quiet hour is less surprising
/// than anyone else's, and what marks a stolen admin account is the size
/// of its session. On scenario seeds 1–8, 24 of the 30 benign admin calls
/// that reached the 4-bit floor with the hour counted whole were by
/// principals with earlier admin calls — one to four calls at a
/// 2.4–4.6-bit hour, every off-hours false alert among them (seed 7's 4: a
/// known admin's 2-call sessions at 2.5 bits); the other 6 were single
/// calls of principals new to the tenant, none graded an alert; every
/// intruder's session was its principal's first admin activity.
fn off_hours_bits(hour_bits: f64, session_bits: f64, admin_before: bool) -> f64 {
    let hour = if admin_before {
        0.5 * hour_bits
    } else {
        hour_bits
    };
    hour + session_bits * hour_bits.clamp(0.0, 1.0)
}

fn human_bytes(b: f64) -> String {
    const U: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = b;
    let mut i = 0;
    while v >= 1024.0 && i < U.len() - 1 {
        v /= 1024.0;
        i += 1;
    }
    if i == 0 {
        format!("{v:.0} {}", U[i])
    } else {
        format!("{v:.1} {}", U[i])
    }
}

fn thousands(n: u64) -> String {
    let s = n.to_string();
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

const DAYS: [&str; 7] = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"];

/// Hours of a week: the bins of `hours` and `admin_hours`.
const HOURS: usize = 168;
/// An hour bin reaching this halves all of them (they stay below it).
const HOUR_HALVE_AT: u16 = 1 << 15;

/// Per-event intermediate values the explanations need.
#[derive(Default)]
struct Facts {
    issuer_count: u32,
    issuer_total: f64,
    p_count: u32,
    net_count: u32,
    ua_count: u32,
    s_net: f64,
    s_ua: f64,
    /// The user-agent family's count and decayed total in the tenant, and
    /// its surprisal there.
    ua_t_count: u32,
    ua_t_total: f64,
    /// The access score is the tenant-level user-agent surprisal.
    access_by_tenant_ua: bool,
    /// The takeover session whose score is the access score (an
    /// unestablished principal's).
    takeover: Option<TakeoverTrack>,
    /// The tenant's takeover sessions and those of them that had grown as
    /// large before it.
    takeover_reach: (u16, u16),
    s_ua_t: f64,
    dom_count: u32,
    dom_total: f64,
    pd_count: u32,
    z_bytes_out: f64,
    burst_k: f64,
    burst_lambda: f64,
    burst_kind: u8,
    /// The 404s in the last minute of the client network that sent most
    /// of the tenant's (0 when none did).
    burst_client_k: f64,
    beacon: Option<BeaconTrack>,
    tunnel_n: f64,
    tunnel_entropy: f32,
    hour_share: f64,
    /// The principal's admin events in the last minutes (decayed), and the
    /// tenant's typical session.
    admin_session: f64,
    admin_typical: f32,
    /// Admin calls in the principal's session so far.
    admin_calls: u32,
    /// The principal has had an earlier admin session.
    admin_before: bool,
    numeric_k: usize,
    /// The principal's usual numeric surprise, subtracted from the score.
    numeric_usual: f64,
    x: [f32; D],
}

/// The (principal, network / user agent) pair filter gets one 2-byte slot
/// per this many bytes of the budget: a quarter of it (8,192 pairs in the
/// default 64 KiB), the rest going mostly to the `SeenTable`. Measured on
/// the scenario suite (seed 1, 20 tenants, 1 M events): an eighth of the
/// budget (divisor 16) let the largest tenant's pairs thrash — forgotten
/// pairs of established principals came back as "new network and new user
/// agent", 2,190 of its 2,243 false alerts; a quarter (8) made it 70
/// (seed 2: 1,288 → 140); more than that starved the `SeenTable` (divisor
/// 7: 90, 6: 190, 5: 721 false alerts).
const PAIR_SLOT_SHARE: usize = 8;

/// The index of the track `is` finds in `tracks`, or of `fresh` put in a
/// free place (at most `cap`) or in place of the weakest track, which is
/// returned (an eviction is counted when it still had weight above 0.5).
fn claim_track<T>(
    tracks: &mut Vec<T>,
    cap: usize,
    is: impl Fn(&T) -> bool,
    weight: impl Fn(&T) -> f64,
    fresh: T,
    evictions: &mut u64,
) -> (usize, Option<T>) {
    if let Some(i) = tracks.iter().position(is) {
        return (i, None);
    }
    if tracks.len() < cap {
        tracks.push(fresh);
        return (tracks.len() - 1, None);
    }
    let (j, w) = tracks
        .iter()
        .map(weight)
        .enumerate()
        .min_by(|a, b| a.1.total_cmp(&b.1))
        .unwrap_or((0, 0.0));
    if w > 0.5 {
        *evictions += 1;
    }
    (j, Some(std::mem::replace(&mut tracks[j], fresh)))
}

/// A tenant's typical admin-session size before it has shown its own.
const ADMIN_TYPICAL_PRIOR: f32 = 1.5;

/// The pair-filter entry of a principal that has had an admin session
/// which ended.
fn admin_pair(principal: u64) -> u64 {
    mix2(principal, Kind::PrincipalAdmin as u64)
}

/// The typical admin-session size after a session of `peak` events ended
/// (a moving mean over sessions, so that one long session weighs as one).
fn fold_session(typical: f32, peak: f32) -> f32 {
    if peak <= 0.0 {
        return typical;
    }
    typical + (peak.min(64.0) - typical) / 32.0
}

/// Surprisal (bits, at most 16) of at least `k` events from a Poisson
/// count of mean `lambda`.
fn poisson_tail_bits(lambda: f64, k: u32) -> f64 {
    if k == 0 || lambda <= 0.0 {
        return 0.0;
    }
    // P(N < k), summed term by term (k is a session size: small)
    let mut term = (-lambda).exp();
    let mut below = 0.0;
    for i in 0..k {
        below += term;
        term *= lambda / f64::from(i + 1);
    }
    let tail = (1.0 - below).max(term);
    (-tail.log2()).clamp(0.0, 16.0)
}

/// A user-agent family adds to the access score only while it is this rare
/// in the tenant (at most one event in 1,024): a family a few percent of
/// the tenant's users run is no evidence, even on a principal's first event.
const UA_TENANT_MIN_BITS: f64 = 10.0;

/// A principal's new network and user agent count only from a network that
/// is not among the tenant's common ones: at least this share of its events.
const COMMON_NET_SHARE: f64 = 1.0 / 64.0;

/// The principal counts get one 4-byte slot per this many bytes of the
/// budget: 1,024 principals (4 KiB) in the default 64 KiB, the strongest
/// kept (measured on the scenario suite: with 1,024 every stolen token's
/// principal was still counted, and 2,048 did not fit the budget beside
/// five sources without shrinking the `SeenTable` to 72 slots).
const PRINCIPAL_COUNT_SHARE: usize = 64;

impl TenantModel {
    /// A cold model sized from `cfg`'s budget.
    pub fn new(tenant: TenantId, cfg: &CheckedConfig) -> Self {
        let c = cfg.config();
        let budget = c.budget_bytes;
        let seed = mix2(c.seed, hash_bytes(0x5eed, tenant.as_str().as_bytes()));
        let principals = PrincipalTable::new((budget / 256).max(8));
        let tz = cfg.zone(&tenant);
        let half_life_h = (c.categorical_half_life.0.as_secs() / 3600).max(1) as u32;
        let mut m = TenantModel {
            tenant,
            seed,
            budget,
            first_ms: i64::MIN,
            last_ms: i64::MIN,
            seen: SeenTable::new(4, 1),
            counts: PrincipalCounts::new(budget / PRINCIPAL_COUNT_SHARE, half_life_h),
            pairs: PairFilter::new(budget / PAIR_SLOT_SHARE),
            common_nets: CommonNetworks::default(),
            totals: [Decayed::default(); KINDS],
            top_issuers: TopLabels::default(),
            top_domains: TopLabels::default(),
            principals,
            hours: vec![0; HOURS].into_boxed_slice(),
            hours_total: 0,
            admin_hours: vec![0; HOURS].into_boxed_slice(),
            admin_total: 0,
            admin_typical: ADMIN_TYPICAL_PRIOR,
            sources: Vec::new(),
            calib: vec![Default::default(); Detector::COUNT].into_boxed_slice(),
            beacons: Vec::with_capacity(TRACKS),
            tunnels: Vec::with_capacity(TRACKS),
            admin_tracks: Vec::with_capacity(ADMIN_TRACKS),
            // one per 8 KiB of budget over 32 KiB (4 in the default 64 KiB:
            // eight pushed a five-source model into one more halving of its
            // `SeenTable`); one at 32 KiB, the minimum, whose
            // tables are already at their floors
            takeover_cap: Self::takeover_cap_for(budget),
            takeover_reach: [0; TAKEOVER_REACH],
            scans: (budget >= SCAN_MIN_BUDGET)
                .then(|| Box::new([ScanTrack::default(); SCAN_TRACKS])),
            takeovers: Vec::new(),
            episodes: Vec::new(),
            benign: Vec::new(),
            counters: TenantCounters::default(),
            zone: Zone::new(tz),
        };
        m.takeovers.reserve_exact(usize::from(m.takeover_cap));
        let fixed = m.resident_bytes() - m.seen.resident_bytes()
            + RESERVED_SOURCES * Self::source_cost(cfg)
            + (MAX_OPEN_EPISODES / 4) * 160;
        let slots = budget.saturating_sub(fixed) / SLOT_BYTES;
        m.seen = SeenTable::new(slots.max(64), half_life_h);
        m
    }

    /// For a model decoded from a snapshot older than format 11: the scan
    /// tracks, if its budget has room for them beside its tables as sized.
    pub(crate) fn fit_scans(&mut self) {
        if self.scans.is_none() && self.budget >= SCAN_MIN_BUDGET {
            self.scans = Some(Box::new([ScanTrack::default(); SCAN_TRACKS]));
            if self.resident_bytes() > self.budget {
                self.scans = None;
            }
        }
    }

    fn takeover_cap_for(budget: usize) -> u8 {
        (budget.saturating_sub(32 * 1024) / 8192).clamp(1, TAKEOVER_TRACKS) as u8
    }

    /// A model from a format-6 snapshot, decoded with no takeover session
    /// and room for one: room for as many as its budget gives and its
    /// tables, sized without them, leave (at least one).
    pub(crate) fn fit_takeover_cap(&mut self) {
        self.takeover_cap = Self::takeover_cap_for(self.budget);
        while self.takeover_cap > 1 && self.resident_bytes() > self.budget {
            self.takeover_cap -= 1;
        }
    }

    fn source_cost(cfg: &CheckedConfig) -> usize {
        let card = &cfg.cards().get(Source::Apigw).numeric;
        SourceModel {
            source: Source::Apigw,
            numeric: NumericModel::new(card, 0),
            volume: IntervalVolume::new(),
            burst: Burst::default(),
        }
        .resident_bytes()
    }

    /// Checks what the code relies on without checking it again, for a
    /// model decoded from a snapshot ([`crate::snapshot::decode`]): the
    /// lengths it indexes by (168 hour bins, one calibrator per detector,
    /// whole buckets in every table, per-bin vectors that match their
    /// season, mixture components within the fixed arrays, …), the caps the
    /// memory estimate counts on (tracks, episodes, known-benign entries,
    /// tables within the budget), times that event times can be subtracted
    /// from, and finite floats wherever a NaN would stay and poison scores.
    /// [`TenantModel::new`] and the updates keep all of these, so only a
    /// corrupt, crafted or incompatible snapshot fails; the hash in front
    /// of it is unkeyed and cannot tell. O(model size), no I/O.
    pub fn check_shape(&self) -> Result<(), ShapeError> {
        for (name, t) in [("first_ms", self.first_ms), ("last_ms", self.last_ms)] {
            if t != i64::MIN {
                check_time(name, t)?;
            }
        }
        self.seen.check().map_err(|e| e.within("seen"))?;
        self.counts.check().map_err(|e| e.within("counts"))?;
        self.pairs.check().map_err(|e| e.within("pairs"))?;
        self.principals
            .check()
            .map_err(|e| e.within("principals"))?;
        // each is sized from a share of the budget (the table's from what
        // the others leave) and never grows
        for (name, bytes) in [
            ("seen", self.seen.resident_bytes()),
            ("counts", self.counts.resident_bytes()),
            ("pairs", self.pairs.resident_bytes()),
            ("principals", self.principals.resident_bytes()),
        ] {
            if bytes > self.budget {
                return Err(ShapeError::new(format!(
                    "{name} takes {bytes} bytes, more than the budget of {}",
                    self.budget
                )));
            }
        }
        self.common_nets
            .check()
            .map_err(|e| e.within("common_nets"))?;
        self.top_issuers
            .check()
            .map_err(|e| e.within("top_issuers"))?;
        self.top_domains
            .check()
            .map_err(|e| e.within("top_domains"))?;
        for (k, t) in self.totals.iter().enumerate() {
            t.check().map_err(|e| e.within(format!("totals[{k}]")))?;
        }
        for (name, bins) in [("hours", &self.hours), ("admin_hours", &self.admin_hours)] {
            check_len(name, bins.len(), HOURS)?;
            if let Some(v) = bins.iter().find(|&&v| v >= HOUR_HALVE_AT) {
                return Err(ShapeError::new(format!(
                    "{name} holds {v}, expected below {HOUR_HALVE_AT}"
                )));
            }
        }
        check_finite("admin_typical", [f64::from(self.admin_typical)])?;
        check_max("sources", self.sources.len(), Source::ALL.len())?;
        for (i, s) in self.sources.iter().enumerate() {
            if self.sources[..i].iter().any(|o| o.source == s.source) {
                return Err(ShapeError::new(format!("sources has {} twice", s.source)));
            }
            s.check()
                .map_err(|e| e.within(format!("sources[{}]", s.source)))?;
        }
        check_len("calib", self.calib.len(), Detector::COUNT)?;
        for (d, c) in Detector::ALL.iter().zip(&self.calib) {
            c.check().map_err(|e| e.within(format!("calib[{d}]")))?;
        }
        check_each("beacons", &self.beacons, TRACKS, BeaconTrack::check)?;
        if let Some(scans) = &self.scans {
            check_each("scans", &scans[..], SCAN_TRACKS, ScanTrack::check)?;
        }
        check_each("tunnels", &self.tunnels, TRACKS, TunnelTrack::check)?;
        check_each(
            "admin_tracks",
            &self.admin_tracks,
            ADMIN_TRACKS,
            AdminTrack::check,
        )?;
        // (a claim with no room would index an empty list)
        if !(1..=TAKEOVER_TRACKS).contains(&usize::from(self.takeover_cap)) {
            return Err(ShapeError::new(format!(
                "takeover_cap is {}, not 1 to {TAKEOVER_TRACKS}",
                self.takeover_cap
            )));
        }
        check_each(
            "takeovers",
            &self.takeovers,
            usize::from(self.takeover_cap),
            TakeoverTrack::check,
        )?;
        check_each(
            "episodes",
            &self.episodes,
            MAX_OPEN_EPISODES,
            Episode::check,
        )?;
        check_max("benign", self.benign.len(), MAX_BENIGN)?;
        if let Some(b) = self
            .benign
            .iter()
            .find(|b| b.entity.len() > BENIGN_ENTITY_BYTES)
        {
            return Err(ShapeError::new(format!(
                "benign holds an entity of {} bytes, at most {BENIGN_ENTITY_BYTES} allowed",
                b.entity.len()
            )));
        }
        Ok(())
    }

    pub(crate) fn set_zone(&mut self, tz: chrono_tz::Tz) {
        self.zone = Zone::new(tz);
    }

    pub fn tenant(&self) -> &TenantId {
        &self.tenant
    }

    pub fn counters(&self) -> &TenantCounters {
        &self.counters
    }

    /// Events learned so far.
    pub fn events(&self) -> u64 {
        self.counters.events
    }

    /// Every time a bounded structure dropped live state to stay in budget.
    pub fn budget_hits(&self) -> u64 {
        self.budget_hits_by_structure().iter().map(|(_, n)| n).sum()
    }

    /// [`TenantModel::budget_hits`] per bounded structure.
    pub fn budget_hits_by_structure(&self) -> [(&'static str, u64); 7] {
        [
            ("seen", self.seen.evictions),
            ("principal_counts", self.counts.evictions),
            ("pairs", self.pairs.evictions),
            ("principal_windows", self.principals.evictions),
            ("table_halvings", self.counters.table_halvings),
            ("track_evictions", self.counters.track_evictions),
            ("episodes_forced", self.counters.episodes_forced),
        ]
    }

    /// An honest estimate of the bytes this model holds: the sum of its
    /// bounded structures' sizes at their bounds. Computed from the bounds,
    /// not from allocator capacities, so that it (and the budget decisions
    /// it drives) is the same for a model restored from a snapshot.
    pub fn resident_bytes(&self) -> usize {
        std::mem::size_of::<Self>()
            + self.seen.resident_bytes()
            + self.counts.resident_bytes()
            + self.pairs.resident_bytes()
            + self.common_nets.resident_bytes()
            + self.top_issuers.resident_bytes()
            + self.top_domains.resident_bytes()
            + self.principals.resident_bytes()
            + self.hours.len() * 2
            + self.admin_hours.len() * 2
            + self
                .sources
                .iter()
                .map(|s| std::mem::size_of::<Box<SourceModel>>() + s.resident_bytes())
                .sum::<usize>()
            + self.calib.iter().map(|c| c.resident_bytes()).sum::<usize>()
            + TRACKS * std::mem::size_of::<BeaconTrack>()
            + TRACKS * std::mem::size_of::<TunnelTrack>()
            + self
                .scans
                .as_ref()
                .map_or(0, |_| std::mem::size_of::<[ScanTrack; SCAN_TRACKS]>())
            + ADMIN_TRACKS * std::mem::size_of::<AdminTrack>()
            + usize::from(self.takeover_cap) * std::mem::size_of::<TakeoverTrack>()
            + self
                .episodes
                .iter()
                .map(|e| std::mem::size_of::<Episode>() + e.entity.len() + e.id.len())
                .sum::<usize>()
            + self
                .benign
                .iter()
                .map(|b| std::mem::size_of::<Benign>() + b.entity.len())
                .sum::<usize>()
    }

    /// Open alert episodes.
    pub fn open_episodes(&self) -> usize {
        self.episodes.len()
    }

    /// When the earliest open episode resolves if nothing extends it
    /// (`i64::MAX` with none open).
    pub(crate) fn first_expiry_ms(&self, cooldown_ms: i64) -> i64 {
        self.episodes
            .iter()
            .map(|e| e.last_ms.saturating_add(cooldown_ms))
            .min()
            .unwrap_or(i64::MAX)
    }

    /// Past warm-up at its latest event (alerts possible).
    pub fn is_warm(&self, cfg: &CheckedConfig) -> bool {
        self.last_ms != i64::MIN && self.warm(self.last_ms, cfg)
    }

    /// The known-benign entries on-call made ([`TenantModel::feedback`]).
    pub fn benign(&self) -> &[Benign] {
        &self.benign
    }

    /// Applies on-call's verdict on one of this tenant's alerts (its
    /// detector, entity key, entity and raw score).
    ///
    /// A false positive teaches the model: for the detectors whose entity
    /// *is* the flagged value (issuer, egress and tunnel destinations, a
    /// beacon's principal + host) that value becomes known-benign outright;
    /// for the others (a principal's access, off-hours or numeric profile, a
    /// burst or volume series) the threshold moves — a later alert for the
    /// same entity needs [`BENIGN_RAISE`] times this alert's raw score. The
    /// entity's open episode, if any, resolves now (pushed to `out`). A
    /// true positive removes an earlier known-benign entry for the entity.
    pub fn feedback(
        &mut self,
        target: &FeedbackTarget,
        verdict: Verdict,
        out: &mut Vec<AlertUpdate>,
    ) -> FeedbackEffect {
        let (detector, entity_key, entity, raw) = (
            target.detector,
            target.entity_key,
            target.entity.as_str(),
            target.score,
        );
        let at = self
            .benign
            .iter()
            .position(|b| b.detector == detector && b.entity_key == entity_key);
        match verdict {
            Verdict::TruePositive => {
                let removed = at.map(|i| self.benign.remove(i)).is_some();
                FeedbackEffect {
                    verdict,
                    benign: None,
                    removed,
                }
            }
            Verdict::FalsePositive => {
                let min_raw = match detector {
                    Detector::Issuer | Detector::Egress | Detector::Tunnel | Detector::Beacon => {
                        f64::INFINITY
                    }
                    _ => (raw.max(0.0) * BENIGN_RAISE).max(f64::MIN_POSITIVE),
                };
                let entry = Benign {
                    detector,
                    entity_key,
                    entity: {
                        let mut end = entity.len().min(BENIGN_ENTITY_BYTES);
                        while !entity.is_char_boundary(end) {
                            end -= 1;
                        }
                        entity[..end].to_owned()
                    },
                    min_raw,
                    since_ms: self.last_ms,
                };
                match at {
                    Some(i) => {
                        let b = &mut self.benign[i];
                        b.min_raw = b.min_raw.max(entry.min_raw);
                        b.since_ms = entry.since_ms;
                    }
                    None => {
                        if self.benign.len() >= MAX_BENIGN {
                            self.benign.remove(0);
                            self.counters.benign_evictions += 1;
                        }
                        self.benign.push(entry);
                    }
                }
                if let Some(j) = self
                    .episodes
                    .iter()
                    .position(|e| e.detector == detector && e.entity_key == entity_key)
                {
                    let e = self.episodes.remove(j);
                    out.push(AlertUpdate::Resolved {
                        episode: e.id,
                        tenant: self.tenant.clone(),
                        detector: e.detector,
                        entity: e.entity,
                        ts: ms_to_utc(e.last_ms),
                    });
                }
                let benign = self
                    .benign
                    .iter()
                    .find(|b| b.detector == detector && b.entity_key == entity_key)
                    .cloned();
                FeedbackEffect {
                    verdict,
                    benign,
                    removed: false,
                }
            }
        }
    }

    /// What the admin API shows for this tenant in a list.
    pub fn summary(&self, cfg: &CheckedConfig) -> TenantSummary {
        let c = cfg.config();
        let span_s = if self.first_ms == i64::MIN {
            0.0
        } else {
            (self.last_ms - self.first_ms).max(0) as f64 / 1000.0
        };
        let need_s = c.warmup.as_millis_i64() as f64 / 1000.0;
        let progress = {
            let e = if c.warmup_events == 0 {
                1.0
            } else {
                self.counters.events as f64 / c.warmup_events as f64
            };
            let t = if need_s <= 0.0 { 1.0 } else { span_s / need_s };
            e.min(t).clamp(0.0, 1.0)
        };
        let ts = |ms: i64| (ms != i64::MIN).then(|| ms_to_utc(ms));
        TenantSummary {
            tenant: self.tenant.to_string(),
            events: self.counters.events,
            alerts: self.counters.alerts,
            first_event: ts(self.first_ms),
            last_event: ts(self.last_ms),
            warm: self.is_warm(cfg),
            warmup: Warmup {
                events: self.counters.events,
                events_needed: c.warmup_events,
                event_time_seconds: span_s,
                event_time_needed_seconds: need_s,
                progress,
            },
            resident_bytes: self.resident_bytes(),
            budget_bytes: self.budget,
            open_episodes: self.episodes.len(),
            known_benign: self.benign.len(),
            suppressed: self.counters.suppressed,
            budget_hits: self.budget_hits(),
        }
    }

    /// What the admin API shows for this tenant on its own page.
    pub fn detail(&self, cfg: &CheckedConfig) -> TenantDetail {
        let top = |t: &TopLabels| {
            t.entries()
                .map(|(value, count)| TopValue {
                    value: value.to_string(),
                    count,
                })
                .collect()
        };
        TenantDetail {
            summary: self.summary(cfg),
            top_issuers: top(&self.top_issuers),
            top_destinations: top(&self.top_domains),
            distinct_issuers: self.seen.distinct(Kind::Issuer),
            sources: self.sources.iter().map(|s| s.source).collect(),
            scores_observed: Detector::ALL
                .iter()
                .map(|d| (d.as_str(), self.calib[d.index()].total()))
                .collect(),
            episodes: self
                .episodes
                .iter()
                .map(|e| EpisodeView {
                    id: e.id.clone(),
                    detector: e.detector,
                    entity: e.entity.clone(),
                    first: ms_to_utc(e.first_ms),
                    last: ms_to_utc(e.last_ms),
                    events: e.events,
                })
                .collect(),
            known_benign: self.benign.clone(),
            counters: self.counters.clone(),
        }
    }

    fn warm(&self, now_ms: i64, cfg: &CheckedConfig) -> bool {
        let c = cfg.config();
        self.counters.events >= c.warmup_events
            && now_ms.saturating_sub(self.first_ms) >= c.warmup.as_millis_i64()
    }

    fn source_slot(&mut self, s: Source, cfg: &CheckedConfig) -> usize {
        if let Some(i) = self.sources.iter().position(|m| m.source == s) {
            return i;
        }
        let card = &cfg.cards().get(s).numeric;
        self.sources.push(Box::new(SourceModel {
            source: s,
            numeric: NumericModel::new(card, self.seed ^ s as u64),
            volume: IntervalVolume::new(),
            burst: Burst::default(),
        }));
        // the reservoir is allocated up front, so the estimate counts it
        let i = self.sources.len() - 1;
        let hour = (self.last_ms.max(0) / 3_600_000) as u32;
        while self.resident_bytes() > self.budget && self.seen.capacity() > 64 {
            if !self.seen.halve(hour) {
                break;
            }
            self.counters.table_halvings += 1;
        }
        i
    }

    /// Score `ev`, then learn from it; push alert state changes to `out`.
    pub fn process(
        &mut self,
        ev: &Event,
        cfg: &CheckedConfig,
        cache: &mut FeatureCache,
        out: &mut Vec<AlertUpdate>,
    ) -> EventScore {
        let c = cfg.config();
        let f = featurize_cached(ev, &mut self.zone, cache);
        let now = f.ts_ms;
        if self.first_ms == i64::MIN {
            self.first_ms = now;
        }
        self.last_ms = self.last_ms.max(now);
        let hour = now.div_euclid(3_600_000) as u32;
        // (through i64: a u128 to f64 conversion is a library call)
        let hl_ms = c.categorical_half_life.as_millis_i64() as f64 / std::f64::consts::LN_2;
        let mut decay = crate::sketch::DecayMemo::new(hl_ms);

        self.resolve_quiet(now, cfg, out);
        let si = self.source_slot(f.source, cfg);
        self.close_intervals(si, now, cfg, out);
        let warm = self.warm(now, cfg);

        let mut raw = [0.0f64; Detector::COUNT];
        let mut facts = Facts::default();

        // --- issuer
        if f.issuer != 0 {
            let s = self.seen.touch(Kind::Issuer, f.issuer, hour);
            let tot = self.totals[Kind::Issuer as usize].add_memo(now, &mut decay, 1.0) - 1.0;
            raw[Detector::Issuer.index()] = bits(tot + 2.0, f64::from(s.count) + 1.0);
            facts.issuer_count = s.count;
            facts.issuer_total = tot;
            self.top_issuers.offer(f.issuer, s.count + 1, || {
                ev.token_issuer.as_deref().unwrap_or("").into()
            });
        }

        // --- principal, windows, access
        let mut p_count = 0;
        if f.principal != 0 {
            p_count = self.counts.touch(f.principal, hour);
            facts.p_count = p_count;
        }
        let established = p_count >= c.principal_min_events;
        let mut new_net = false;
        let mut new_ua = false;
        // both new for an established principal: the surprisal of a first
        // sighting after `p_count` events
        // (a logarithm only when there is a first sighting)
        let first = || bits(f64::from(p_count) + 2.0, 1.0);
        if f.principal != 0 && f.client_net != 0 {
            new_net = !self.pairs.touch(mix2(
                mix2(f.principal, f.client_net),
                Kind::PrincipalNet as u64,
            ));
            facts.net_count = u32::from(!new_net);
            facts.s_net = if new_net { first() } else { 0.0 };
        }
        if f.principal != 0 && f.ua != 0 {
            new_ua = !self
                .pairs
                .touch(mix2(mix2(f.principal, f.ua), Kind::PrincipalUa as u64));
            facts.ua_count = u32::from(!new_ua);
            facts.s_ua = if new_ua { first() } else { 0.0 };
        }
        let mut common_net = false;
        if f.client_net != 0 {
            common_net = self.common_nets.touch(f.client_net) >= COMMON_NET_SHARE;
        }
        // a network much of the tenant uses (an office, the VPN) is no
        // evidence against a principal new to it
        if established && f.client_net != 0 && f.ua != 0 && !common_net {
            raw[Detector::Access.index()] = facts.s_net.min(facts.s_ua);
        }
        // a user-agent family this tenant (nearly) never uses, from a new
        // network and a new user agent for the principal: a token replayed
        // with a tool, whatever the principal's own history (a stolen
        // token of a user with a handful of events is still not "curl")
        if f.ua != 0 {
            let u = self.seen.touch(Kind::Ua, f.ua, hour);
            let tot = self.totals[Kind::Ua as usize].add_memo(now, &mut decay, 1.0) - 1.0;
            // the surprisal only for a candidate: the tenant's count and
            // total are learned from every event, the log is not needed
            if f.principal != 0 && new_net && new_ua {
                let s_ua_t = bits(tot + 2.0, f64::from(u.count) + 1.0).min(16.0);
                let r = &mut raw[Detector::Access.index()];
                if s_ua_t >= UA_TENANT_MIN_BITS && s_ua_t > *r {
                    *r = s_ua_t;
                    facts.access_by_tenant_ua = true;
                    facts.ua_t_count = u.count;
                    facts.ua_t_total = tot;
                    facts.s_ua_t = s_ua_t;
                }
            }
        }

        // a principal too light to be established: its session from a new
        // network (its user agent new or not), once it outgrows the
        // principal's history
        // (nothing to open and nothing followed: most events skip it)
        if f.principal != 0 && (new_net || !self.takeovers.is_empty()) {
            // (not in warm-up: then every principal is new everywhere)
            let opens =
                warm && !established && new_net && f.client_net != 0 && f.ua != 0 && !common_net;
            let ctx = mix2(f.client_net, f.ua) as u32;
            if let Some((r, t, reach)) =
                self.takeover(f.principal, ctx, opens.then_some(new_ua), p_count, now)
            {
                let a = &mut raw[Detector::Access.index()];
                if r > *a {
                    *a = r;
                    facts.takeover = Some(t);
                    facts.takeover_reach = reach;
                }
            }
        }

        // --- destinations
        let mut s_t = 0.0;
        let mut s_u = 0.0;
        let mut s_sig = 0.0;
        let mut new_dest = false;
        if f.domain != 0 {
            let d = self.seen.touch(Kind::Domain, f.domain, hour);
            let tot = self.totals[Kind::Domain as usize].add_memo(now, &mut decay, 1.0) - 1.0;
            s_t = bits(tot + 2.0, f64::from(d.count) + 1.0);
            facts.dom_count = d.count;
            facts.dom_total = tot;
            self.top_domains.offer(f.domain, d.count + 1, || {
                match (ev.destination_host.as_deref(), ev.destination_ip) {
                    (Some(h), _) => registrable_domain(h).into(),
                    (None, Some(ip)) => network_label(ip).into(),
                    (None, None) => "".into(),
                }
            });
            if f.principal != 0 {
                let pd = self
                    .seen
                    .touch(Kind::PrincipalDomain, mix2(f.principal, f.domain), hour);
                s_u = bits(f64::from(p_count) + 2.0, f64::from(pd.count) + 1.0);
                facts.pd_count = pd.count;
                new_dest = pd.novel() || pd.age_h >= 1;
            }
        }
        if f.signature != 0 {
            let s = self.seen.touch(Kind::Signature, f.signature, hour);
            let tot = self.totals[Kind::Signature as usize].add_memo(now, &mut decay, 1.0) - 1.0;
            s_sig = bits(tot + 2.0, f64::from(s.count) + 1.0);
        }

        // --- principal windows (features of this event, include it)
        let mut x = [f32::NAN; D];
        x[0] = f.ln_bytes_in;
        x[1] = f.ln_bytes_out;
        x[2] = f.ln_latency;
        let mut principal = None;
        if f.principal != 0 {
            let (st, _) = self.principals.get(f.principal, now);
            st.rate += 1.0;
            st.errors += f32::from(u8::from(f.error));
            st.new_dests += f32::from(u8::from(new_dest));
            st.nets = st.nets.saturating_add(u8::from(new_net));
            st.uas = st.uas.saturating_add(u8::from(new_ua));
            // ln(1 + x) as in `features::featurize_with` (logf, not log1pf)
            x[3] = (st.rate + 1.0).ln();
            // shrunk towards 0 by four pseudo-successes, so one error in a
            // quiet window is not a jump from 0 to 1
            x[4] = st.errors / (st.rate + 4.0);
            x[5] = (st.new_dests + 1.0).ln();
            principal = Some(st);
        }

        // --- numeric: the excess over the tenant's usual, less what is
        // usual for this principal (a tenant's busiest users sit in the
        // tail of its mixture at their busiest hours, every day; a stolen
        // account's exfiltration is still far above its owner's usual).
        // Learned after scoring: an event does not excuse itself.
        let sm = &mut self.sources[si];
        sm.numeric.impute(&mut x);
        let (excess, k) = sm.numeric.score(&x);
        raw[Detector::Numeric.index()] = match principal {
            Some(st) => {
                facts.numeric_usual = st.usual_surprise();
                let r = (excess - facts.numeric_usual).max(0.0);
                st.learn_surprise(excess);
                r
            }
            None => excess,
        };
        facts.numeric_k = k;
        facts.x = x;

        // --- egress: large bytes out to a rare destination
        if f.domain != 0
            && !f.ln_bytes_out.is_nan()
            && f.bytes_out >= c.egress_min_bytes
            && matches!(
                f.source,
                Source::ZscalerWeb | Source::ZscalerFw | Source::Zpa
            )
        {
            let z = sm.numeric.z(1, f.ln_bytes_out);
            facts.z_bytes_out = z;
            let rarity = s_t.max(0.5 * s_u).max(0.5 * s_sig).min(16.0);
            raw[Detector::Egress.index()] = rarity / 4.0 * (z - EGRESS_Z0).max(0.0);
        }

        // --- burst: 401/403 and 404 per minute vs. the day's rate, as a
        // quasi-Poisson deviance: divided by the tenant's own clustering
        // (a browser's broken page brings its 404s in fives; a scanner
        // brings them in hundreds). 404s count only from the tenant's own
        // API: through a forward proxy they are other sites' answers to the
        // tenant's users, clustered by page loads that the day's rate cannot
        // price (seed 10: six in one minute in `wayne-002`, whose web 404s
        // ran under one a minute), and a route enumeration is a scan of the
        // tenant's API
        if f.auth_failure || f.not_found && f.source == Source::Apigw {
            let b = &mut sm.burst;
            let (short, long, excess, kind) = if f.auth_failure {
                (&mut b.auth_short, &mut b.auth_long, &mut b.auth_excess, 1)
            } else {
                (&mut b.nf_short, &mut b.nf_long, &mut b.nf_excess, 2)
            };
            let lambda = (long.at(now, LONG_TAU_MS) * SHORT_TAU_MS / LONG_TAU_MS).max(0.5);
            let others = short.at(now, SHORT_TAU_MS);
            let k = short.add(now, SHORT_TAU_MS, 1.0);
            long.add(now, LONG_TAU_MS, 1.0);
            let phi = 1.0 + f64::from(*excess);
            if k > lambda {
                raw[Detector::Burst.index()] = poisson_excess_bits(k, lambda) / phi;
            }
            // one client's 404s against the same day's rate, undivided: the
            // tenant's clustering is many clients' coincidences
            if kind == 2 && f.client_net != 0 {
                let kc = match &mut self.scans {
                    Some(scans) => Self::scan(scans, &mut self.counters, f.client_net, now),
                    None => 0.0,
                };
                if kc > lambda {
                    let r = &mut raw[Detector::Burst.index()];
                    *r = r.max(poisson_excess_bits(kc, lambda));
                }
                // named in the alert when it sent most of the minute's 404s
                facts.burst_client_k = if kc >= 0.5 * k { kc } else { 0.0 };
            }
            // learned after scoring, slowly: a burst does not excuse itself
            *excess += (((others - lambda).max(0.0)) as f32 - *excess) / BURST_DISPERSION_EVENTS;
            facts.burst_k = k;
            facts.burst_lambda = lambda;
            facts.burst_kind = kind;
        }
        sm.volume.count(f.error, f.bytes_out, f.principal);

        // --- beacon
        if f.principal != 0 && f.domain != 0 && f.source != Source::Apigw {
            let key = mix2(f.principal, f.domain);
            raw[Detector::Beacon.index()] = self.beacon(key, now, facts.dom_count, &f, &mut facts);
        }

        // --- tunnel
        // only candidate names are remembered: every benign lookup in the
        // table would push out the keys the other detectors need
        if f.qname != 0 && f.sub_len >= crate::features::TUNNEL_MIN_SUB_LEN && f.sub_entropy >= 3.0
        {
            let q = self.seen.touch(Kind::QName, f.qname, hour);
            if q.novel() {
                let t = self.tunnel_track(f.domain, now);
                t.entropy = 0.8 * t.entropy + 0.2 * f.sub_entropy;
                let n = t.hi.add(now, TUNNEL_TAU_MS, 1.0);
                facts.tunnel_n = n;
                facts.tunnel_entropy = t.entropy.max(f.sub_entropy);
                raw[Detector::Tunnel.index()] = n * (1.0 + (s_t / 16.0).min(1.0));
            }
        }

        // --- off-hours admin: the hour's share of all traffic and of admin
        // sessions (geometric mean), relative to a uniform week; then the
        // principal's admin session so far against this tenant's typical
        // session (an admin makes an admin call now and then; an intruder
        // in a stolen account makes dozens, at night, in minutes).
        if f.admin && self.hours_total >= 100 {
            let share = Self::hour_share(
                &self.hours,
                self.hours_total,
                f.hour_of_week,
                now - self.first_ms,
                0.0,
            );
            let rel_admin = if self.admin_total >= 20 {
                Self::hour_share(
                    &self.admin_hours,
                    self.admin_total,
                    f.hour_of_week,
                    now - self.first_ms,
                    0.1,
                ) * 168.0
            } else {
                share * 168.0
            };
            facts.hour_share = share;
            let rel = (share * 168.0 * rel_admin).sqrt();
            let mut hour_bits = (-(rel + 1e-4).log2()).clamp(0.0, 16.0);
            let mut session_bits = 0.0;
            if f.principal != 0 {
                // a session is judged by the hour it began in: its own
                // events must not make its hour look busy
                let (n, start_bits, calls, before) =
                    self.admin_session(f.principal, now, hour_bits as f32);
                facts.admin_calls = calls;
                facts.admin_before = before;
                hour_bits = hour_bits.max(f64::from(start_bits));
                session_bits = poisson_tail_bits(f64::from(self.admin_typical), n.round() as u32);
                facts.admin_session = n;
            }
            facts.admin_typical = self.admin_typical;
            raw[Detector::OffHours.index()] =
                off_hours_bits(hour_bits, session_bits, facts.admin_before);
        }
        let h = usize::from(f.hour_of_week) % 168;
        Self::count_hour(&mut self.hours, &mut self.hours_total, h);
        // admin *sessions* per hour: counting every event of a session would
        // let an intruder's own night of admin calls make the night look
        // like admin time within minutes
        if f.admin && facts.admin_session < 1.5 {
            Self::count_hour(&mut self.admin_hours, &mut self.admin_total, h);
        }

        // --- grades, decisions
        let mut score = EventScore {
            warm,
            ..Default::default()
        };
        for d in Detector::ALL {
            if d == Detector::Volume {
                continue;
            }
            let r = raw[d.index()];
            let floor = c.floors.get(d);
            if !(r >= floor && r > 0.0) {
                // the common case, in one pass over the histogram
                let g = self.calib[d.index()].grade_and_observe(r);
                score.per_detector[d.index()] = DetectorScore { raw: r, grade: g };
                continue;
            }
            let at = Located::new(r);
            let g = self.calib[d.index()].grade_located(at);
            score.per_detector[d.index()] = DetectorScore { raw: r, grade: g };
            score.max_grade = score.max_grade.max(g);
            let repeat =
                warm && g >= c.grade_threshold && self.hit(d, r, g, ev, &f, &facts, cfg, out);
            // An open episode's repeats are one anomaly, not the tenant's
            // normal: were each to join the history, a long one (a beacon
            // every 44 s for four hours) would fill the top of it, and the
            // next incident of its kind would grade as ordinary (scenario
            // suite, seed 6: a second beacon in dunder-019 graded 0.989).
            if !repeat {
                self.calib[d.index()].observe_located(at);
            }
        }

        // --- learn the numeric model last (scored above with the old one)
        let sm = &mut self.sources[si];
        match sm.numeric.learn(
            &x,
            &cfg.cards().get(f.source).numeric,
            self.seed ^ f.source as u64,
        ) {
            Some(crate::numeric::FitOutcome::Mixture) => self.counters.gmm_fits += 1,
            Some(crate::numeric::FitOutcome::Fallback) => {
                self.counters.gmm_fits += 1;
                self.counters.gmm_fit_failures += 1;
            }
            None => {}
        }
        self.counters.events += 1;
        score
    }

    fn count_hour(hours: &mut [u16], total: &mut u64, h: usize) {
        hours[h] += 1;
        *total += 1;
        if hours[h] >= HOUR_HALVE_AT {
            *total = 0;
            for v in hours.iter_mut() {
                *v /= 2;
                *total += u64::from(*v);
            }
        }
    }

    /// Probability of a local hour of week (smoothed over ±1 h, plus
    /// `pseudo` counts per bin); before a week of history, pooled by hour of
    /// day.
    fn hour_share(hours: &[u16], total: u64, how: u8, age_ms: i64, pseudo: f64) -> f64 {
        let sm = |i: usize| {
            0.25 * f64::from(hours[(i + 167) % 168])
                + 0.5 * f64::from(hours[i % 168])
                + 0.25 * f64::from(hours[(i + 1) % 168])
                + pseudo
        };
        let tot = total.max(1) as f64 + 168.0 * pseudo;
        let h = usize::from(how);
        if age_ms >= 7 * 86_400_000 {
            sm(h) / tot
        } else {
            (0..7).map(|d| sm(d * 24 + h % 24)).sum::<f64>() / tot / 7.0
        }
    }

    fn beacon(
        &mut self,
        key: u64,
        now: i64,
        dom_count: u32,
        f: &Features,
        facts: &mut Facts,
    ) -> f64 {
        let pos = self.beacons.iter().position(|b| b.key == key);
        let i = match pos {
            Some(i) => i,
            None => {
                if dom_count >= BEACON_RARE {
                    return 0.0;
                }
                let t = BeaconTrack {
                    key,
                    last_ms: now,
                    n: 0,
                    mean_s: 0.0,
                    mad_s: 0.0,
                    ln_bytes: f.ln_bytes_out,
                };
                if self.beacons.len() < TRACKS {
                    self.beacons.push(t);
                } else {
                    let (j, old) = self
                        .beacons
                        .iter()
                        .enumerate()
                        .min_by_key(|(_, b)| b.last_ms)
                        .map(|(j, b)| (j, *b))
                        .unwrap_or((0, t));
                    if now - old.last_ms < 3_600_000 {
                        self.counters.track_evictions += 1;
                    }
                    self.beacons[j] = t;
                }
                return 0.0;
            }
        };
        let b = &mut self.beacons[i];
        let dt = (now - b.last_ms) as f32 / 1000.0;
        if dt < 1.0 {
            return 0.0;
        }
        b.last_ms = now;
        b.n += 1;
        if !f.ln_bytes_out.is_nan() {
            b.ln_bytes = 0.8 * b.ln_bytes.max(0.0) + 0.2 * f.ln_bytes_out;
        }
        if b.n == 1 {
            b.mean_s = dt;
            b.mad_s = 0.0;
            return 0.0;
        }
        let dev = (dt - b.mean_s).abs();
        b.mad_s = 0.75 * b.mad_s + 0.25 * dev;
        b.mean_s = 0.75 * b.mean_s + 0.25 * dt;
        facts.beacon = Some(*b);
        let small = b.ln_bytes.is_nan() || b.ln_bytes <= 11.0;
        if b.n < 4 || b.mean_s < 10.0 || !small {
            return 0.0;
        }
        let cv = f64::from(b.mad_s / b.mean_s.max(1e-3));
        (1.0 - cv / 0.25).max(0.0) * f64::from(b.n.min(16)) / 2.0
    }

    /// Count a 404 of client network `key`; its 404s in the last minute.
    fn scan(
        scans: &mut [ScanTrack; SCAN_TRACKS],
        counters: &mut TenantCounters,
        key: u64,
        now: i64,
    ) -> f64 {
        let key = key as u32;
        let i = match scans.iter().position(|t| t.key == key) {
            Some(i) => i,
            None => {
                // an unused track has no count: it goes first
                let (j, least) = scans
                    .iter()
                    .map(|t| t.at(now))
                    .enumerate()
                    .min_by(|a, b| a.1.total_cmp(&b.1))
                    .unwrap_or((0, 0.0));
                if least >= 0.5 {
                    counters.track_evictions += 1;
                }
                scans[j] = ScanTrack {
                    key,
                    n: 0.0,
                    last_ms: now,
                };
                j
            }
        };
        let t = &mut scans[i];
        let n = t.at(now) + 1.0;
        t.n = n as f32;
        t.last_ms = now;
        n
    }

    fn tunnel_track(&mut self, key: u64, now: i64) -> &mut TunnelTrack {
        let fresh = TunnelTrack {
            key,
            hi: Decayed {
                value: 0.0,
                last_ms: now,
            },
            entropy: 0.0,
        };
        let (i, _) = claim_track(
            &mut self.tunnels,
            TRACKS,
            |t| t.key == key,
            |t| t.hi.at(now, TUNNEL_TAU_MS),
            fresh,
            &mut self.counters.track_evictions,
        );
        &mut self.tunnels[i]
    }

    /// Follow principal `key`'s takeover session: open one when `opens`
    /// (this event is its first; whether its user agent is new for the
    /// principal too), count this event when it comes from the session's
    /// network and user agent `ctx`; the session and its score
    /// then. The score, in bits: log2 of the session's events + 2 once they
    /// outnumber twice the principal's remembered history (+ 2), else 0 —
    /// the access floor (5 bits) is reached at 30 events.
    fn takeover(
        &mut self,
        key: u64,
        ctx: u32,
        opens: Option<bool>,
        prior: u32,
        now: i64,
    ) -> Option<(f64, TakeoverTrack, (u16, u16))> {
        let pos = self.takeovers.iter().position(|t| t.key == key);
        let live = pos.filter(|&i| self.takeovers[i].live(now));
        let i = if let Some(new_ua) =
            opens.filter(|_| live.is_none_or(|i| self.takeovers[i].ctx != ctx))
        {
            // a new session, in place of this principal's last one (the
            // newest new network is the one to follow)
            let fresh = TakeoverTrack {
                key,
                ctx,
                first_ms: now,
                span_ms: 0,
                prior: u16::try_from(prior).unwrap_or(u16::MAX),
                n: 0,
                new_ua,
            };
            let (i, _) = claim_track(
                &mut self.takeovers,
                usize::from(self.takeover_cap),
                |t| t.key == key,
                |t| if t.live(now) { f64::from(t.n) } else { 0.0 },
                fresh,
                &mut self.counters.track_evictions,
            );
            self.takeovers[i] = fresh;
            i
        } else if let Some(i) = live {
            i
        } else {
            if let Some(i) = pos {
                // the session is over
                self.takeovers.swap_remove(i);
            }
            return None;
        };
        let t = &mut self.takeovers[i];
        if t.ctx != ctx {
            // the principal's own traffic beside it
            return None;
        }
        t.n = t.n.saturating_add(1);
        t.span_ms = t
            .span_ms
            .max(now.saturating_sub(t.first_ms).clamp(0, TAKEOVER_SPAN_MS) as u32);
        let (n, prior, track) = (t.n, t.prior, *t);
        // how many of the tenant's sessions reached this size before this
        // one did, and how many there were
        let level = (n as usize).min(TAKEOVER_REACH) - 1;
        let reach = &mut self.takeover_reach;
        let before = reach[level];
        if (n as usize) <= TAKEOVER_REACH {
            reach[level] = reach[level].saturating_add(1);
            if reach[0] >= u16::MAX / 2 {
                for r in reach.iter_mut() {
                    *r /= 2;
                }
            }
        }
        let (sessions, reached) = (reach[0], before);
        let (grown, rare) = takeover_bits(n, prior, sessions, reached);
        Some((grown.max(rare), track, (sessions, reached)))
    }

    /// Count an admin event of `key` in its session (a new one begins
    /// after a quiet spell, at `hour_bits`); returns the session's decayed
    /// count including this event, the bits of the hour it began in, its
    /// calls so far and whether the principal had an earlier admin session
    /// (an admin: remembered in the pair filter once a session has ended,
    /// and forgotten as the filter's least recent pairs are).
    /// The weakest session is replaced when all are taken (counted when it
    /// was still live).
    fn admin_session(&mut self, key: u64, now: i64, hour_bits: f32) -> (f64, f32, u32, bool) {
        let fresh = AdminTrack {
            key,
            n: Decayed {
                value: 0.0,
                last_ms: now,
            },
            start_bits: hour_bits,
            peak: 0.0,
            calls: 0,
        };
        let (i, replaced) = claim_track(
            &mut self.admin_tracks,
            ADMIN_TRACKS,
            |t| t.key == key,
            |t| t.n.at(now, ADMIN_TAU_MS),
            fresh,
            &mut self.counters.track_evictions,
        );
        if let Some(old) = replaced {
            self.admin_typical = fold_session(self.admin_typical, old.peak);
            // only a session that had ended: one cut off while live (the
            // weakest of a full set) may be an intruder's, not yet judged
            if old.peak > 0.0 && old.ended(now) {
                self.pairs.touch(admin_pair(old.key));
            }
        }
        let t = &mut self.admin_tracks[i];
        if t.ended(now) {
            // the previous session ended: it joins the tenant's typical
            // size, and its principal is an admin from now on
            self.admin_typical = fold_session(self.admin_typical, t.peak);
            if t.peak > 0.0 {
                self.pairs.touch(admin_pair(key));
            }
            t.start_bits = hour_bits;
            t.peak = 0.0;
            t.calls = 0;
        }
        let n = t.n.add(now, ADMIN_TAU_MS, 1.0);
        t.peak = t.peak.max(n as f32);
        t.calls = t.calls.saturating_add(1);
        let (start_bits, calls) = (t.start_bits, t.calls);
        (n, start_bits, calls, self.pairs.contains(admin_pair(key)))
    }

    /// Resolve quiet episodes and close volume intervals up to `now_ms`.
    pub fn advance(&mut self, now_ms: i64, cfg: &CheckedConfig, out: &mut Vec<AlertUpdate>) {
        self.resolve_quiet(now_ms, cfg, out);
        for si in 0..self.sources.len() {
            self.close_intervals(si, now_ms, cfg, out);
        }
    }

    fn resolve_quiet(&mut self, now: i64, cfg: &CheckedConfig, out: &mut Vec<AlertUpdate>) {
        if self.episodes.is_empty() {
            return;
        }
        let cd = cfg.config().cooldown.as_millis_i64();
        let tenant = &self.tenant;
        self.episodes.retain(|e| {
            if now - e.last_ms >= cd {
                out.push(AlertUpdate::Resolved {
                    episode: e.id.clone(),
                    tenant: tenant.clone(),
                    detector: e.detector,
                    entity: e.entity.clone(),
                    ts: ms_to_utc(e.last_ms + cd),
                });
                false
            } else {
                true
            }
        });
    }

    fn close_intervals(
        &mut self,
        si: usize,
        now: i64,
        cfg: &CheckedConfig,
        out: &mut Vec<AlertUpdate>,
    ) {
        let c = cfg.config();
        let iv = c.volume_interval.as_millis_i64();
        let zone = &mut self.zone;
        let how = |ms: i64| zone.hour_of_week(ms);
        let source = self.sources[si].source;
        let calib = &mut self.calib[Detector::Volume.index()];
        let floor = c.floors.volume;
        let mut pending: Vec<(IntervalVerdict, f64)> = Vec::new();
        self.sources[si].volume.close_until(now, iv, how, |v| {
            let r = if v.score.z > 0.0 { v.score.score } else { 0.0 };
            let g = calib.grade_and_observe(r);
            if r >= floor && g >= c.grade_threshold {
                pending.push((v, g));
            }
        });
        if pending.is_empty() {
            return;
        }
        for (v, g) in pending {
            let end = v.start_ms + iv;
            if !self.warm(end, cfg) {
                continue;
            }
            let key = mix2(v.series as u64 + 1, source as u64 + 100);
            if self.extend(Detector::Volume, key, end) {
                continue;
            }
            let series = SERIES[v.series];
            let entity = format!("{series} ({source})");
            let shown = |x: f64| {
                if v.series == 2 {
                    human_bytes(x.exp_m1().max(0.0) * crate::volume::BYTES_UNIT)
                } else {
                    format!("{x:.0}")
                }
            };
            let n = i64::from(v.score.intervals.max(1));
            let start = ms_to_utc(v.start_ms - (n - 1) * iv);
            let (feature, span) = if n == 1 {
                (
                    format!("{series}_per_interval"),
                    format!("the {} interval", c.volume_interval),
                )
            } else {
                (
                    format!("{series}_per_{n}_intervals"),
                    format!(
                        "the {} ({n} intervals of {})",
                        crate::config::Dur(std::time::Duration::from_millis((n * iv) as u64)),
                        c.volume_interval
                    ),
                )
            };
            let explanation = vec![Contribution {
                feature,
                value: shown(v.score.window_value),
                typical: shown(v.score.window_expected),
                reason: format!(
                    "{:.1} scales above what this tenant usually has at this hour of the week",
                    v.score.z
                ),
            }];
            let summary = format!(
                "{series} for {source} in {span} starting {} was {}, expected about {} for tenant {}",
                start.format("%Y-%m-%d %H:%M UTC"),
                shown(v.score.window_value),
                shown(v.score.window_expected),
                self.tenant
            );
            self.open(
                Detector::Volume,
                key,
                entity,
                source,
                v.score.score,
                g,
                end,
                None,
                explanation,
                summary,
                cfg,
                out,
            );
        }
    }

    /// Extend an open episode; true if there was one.
    fn extend(&mut self, d: Detector, key: u64, now: i64) -> bool {
        if let Some(e) = self
            .episodes
            .iter_mut()
            .find(|e| e.detector == d && e.entity_key == key)
        {
            e.last_ms = e.last_ms.max(now);
            e.events += 1;
            true
        } else {
            false
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn open(
        &mut self,
        d: Detector,
        key: u64,
        entity: String,
        source: Source,
        raw: f64,
        grade: f64,
        ts_ms: i64,
        event_id: Option<&str>,
        explanation: Vec<Contribution>,
        summary: String,
        cfg: &CheckedConfig,
        out: &mut Vec<AlertUpdate>,
    ) {
        if self
            .benign
            .iter()
            .any(|b| b.detector == d && b.entity_key == key && raw < b.min_raw)
        {
            self.counters.suppressed += 1;
            return;
        }
        let (id, episode) = ids(&self.tenant, d, key, ts_ms, event_id);
        if self.episodes.len() >= MAX_OPEN_EPISODES {
            let cd = cfg.config().cooldown.as_millis_i64();
            if let Some((j, _)) = self
                .episodes
                .iter()
                .enumerate()
                .min_by_key(|(_, e)| e.last_ms)
            {
                let e = self.episodes.remove(j);
                self.counters.episodes_forced += 1;
                out.push(AlertUpdate::Resolved {
                    episode: e.id,
                    tenant: self.tenant.clone(),
                    detector: e.detector,
                    entity: e.entity,
                    ts: ms_to_utc(ts_ms.min(e.last_ms + cd)),
                });
            }
        }
        self.episodes.push(Episode {
            detector: d,
            entity_key: key,
            entity: entity.clone(),
            id: episode.clone(),
            first_ms: ts_ms,
            last_ms: ts_ms,
            events: 1,
        });
        self.counters.alerts += 1;
        let floor = cfg.config().floors.get(d).max(1e-9);
        out.push(AlertUpdate::Fired(Alert {
            id,
            tenant: self.tenant.clone(),
            source,
            detector: d,
            entity_key: key,
            severity: Severity::from_ratio(raw / floor),
            score: raw,
            grade,
            ts: ms_to_utc(ts_ms),
            event_id: event_id.map(str::to_string),
            entity,
            episode,
            explanation,
            summary,
        }));
    }

    /// An alerting score: extends the open episode of its detector and
    /// entity (returning true), or opens one.
    #[allow(clippy::too_many_arguments)]
    fn hit(
        &mut self,
        d: Detector,
        raw: f64,
        grade: f64,
        ev: &Event,
        f: &Features,
        x: &Facts,
        cfg: &CheckedConfig,
        out: &mut Vec<AlertUpdate>,
    ) -> bool {
        let key = match d {
            Detector::Issuer => f.issuer,
            Detector::Access | Detector::OffHours | Detector::Numeric => f.principal,
            Detector::Egress | Detector::Tunnel => f.domain,
            Detector::Beacon => mix2(f.principal, f.domain),
            Detector::Burst => u64::from(x.burst_kind) + 10 * (f.source as u64 + 1),
            Detector::Volume => 0,
        };
        if self.extend(d, key, f.ts_ms) {
            return true;
        }
        let principal = ev.principal.as_deref().unwrap_or("(no principal)");
        let domain = ev
            .destination_host
            .as_deref()
            .map(registrable_domain)
            .map(str::to_string)
            .or_else(|| ev.destination_ip.map(network_label))
            .unwrap_or_else(|| "(no destination)".into());
        let t = &self.tenant;
        let events = self.counters.events;
        let mut ex = Vec::new();
        let (entity, summary) = match d {
            Detector::Issuer => {
                let iss = ev.token_issuer.as_deref().unwrap_or("");
                let before = self
                    .seen
                    .distinct(Kind::Issuer)
                    .saturating_sub(u32::from(x.issuer_count == 0));
                let reason = if x.issuer_count == 0 {
                    format!(
                        "first seen for tenant {t} after {} events",
                        thousands(events)
                    )
                } else {
                    format!(
                        "seen {} times among ~{:.0} recent issuer events",
                        x.issuer_count, x.issuer_total
                    )
                };
                ex.push(Contribution {
                    feature: "token_issuer".into(),
                    value: iss.into(),
                    typical: self.top_issuers.labels().join(", "),
                    reason: reason.clone(),
                });
                (
                    iss.to_string(),
                    format!(
                        "issuer {iss} {reason}; {before} issuer{} seen before",
                        if before == 1 { "" } else { "s" }
                    ),
                )
            }
            Detector::Access => {
                let st = self.principals.peek(f.principal);
                // a takeover session's network (and user agent, when new)
                // were new at its first event, not at this one
                let session = x.takeover;
                let first_use = |bits: f64, count: u32, new_then: bool| match session {
                    Some(t) if new_then => format!(
                        "first used by this principal {:.0} min ago, when this session began",
                        f64::from(t.span_ms) / 60_000.0
                    ),
                    Some(_) => "used by this principal before this session began".into(),
                    None => format!(
                        "{} for this principal ({bits:.1} bits of surprise)",
                        if count == 0 {
                            "first use"
                        } else {
                            "used before"
                        }
                    ),
                };
                let net = ev.client_ip.map(network_label).unwrap_or_default();
                let ua = ev.user_agent.as_deref().map(|u| {
                    let (fam, os, _) = ua_family(u);
                    format!("{} on {}", fam.as_str(), os.as_str())
                });
                let ua = ua.unwrap_or_default();
                let nets = st
                    .map_or(0, |s| s.nets)
                    .saturating_sub(u8::from(x.net_count == 0));
                // (at least the one the pair filter remembers: the window's
                // count starts again when the table forgets the principal)
                let uas = st
                    .map_or(0, |s| s.uas)
                    .saturating_sub(u8::from(x.ua_count == 0))
                    .max(u8::from(x.ua_count > 0));
                ex.push(Contribution {
                    feature: "client_network".into(),
                    value: net.clone(),
                    typical: format!("{nets} network(s) seen for {principal}"),
                    reason: first_use(x.s_net, x.net_count, true),
                });
                ex.push(Contribution {
                    feature: "user_agent_family".into(),
                    value: ua.clone(),
                    typical: format!("{uas} user agent famil(ies) seen for {principal}"),
                    reason: first_use(x.s_ua, x.ua_count, session.is_none_or(|t| t.new_ua)),
                });
                if let Some(t) = session {
                    let mins = f64::from(t.span_ms) / 60_000.0;
                    let (sessions, reached) = x.takeover_reach;
                    let (grown, rare) = takeover_bits(t.n, t.prior, sessions, reached);
                    // (feature, what was new, the summary's word on it)
                    let (feature, new_what, which) = if t.new_ua {
                        (
                            "session_from_new_network_and_user_agent",
                            "new network and user agent",
                            "both new for it",
                        )
                    } else {
                        (
                            "session_from_new_network",
                            "new network",
                            "the network new for it, the user agent not",
                        )
                    };
                    ex.push(Contribution {
                        feature: feature.into(),
                        value: format!("{} events in {mins:.0} min", t.n),
                        typical: format!(
                            "{} event(s) of {principal} remembered before it (fewer than {}: not established)",
                            t.prior,
                            cfg.config().principal_min_events
                        ),
                        reason: if grown > 0.0 {
                            format!(
                                "more events from a {new_what} than twice the principal's history ({grown:.1} bits)"
                            )
                        } else {
                            "not yet more events than twice the principal's history".into()
                        },
                    });
                    if rare > 0.0 {
                        let size = if t.n as usize >= TAKEOVER_REACH {
                            format!("{TAKEOVER_REACH} or more")
                        } else {
                            t.n.to_string()
                        };
                        ex.push(Contribution {
                            feature: "session_size_in_tenant".into(),
                            value: format!("{} events", t.n),
                            typical: format!(
                                "{reached} of {sessions} such sessions in tenant {} reached {size} events",
                                self.tenant
                            ),
                            reason: format!(
                                "sessions from a network new to their principal rarely grow this large here ({rare:.1} bits)"
                            ),
                        });
                    }
                    (
                        principal.to_string(),
                        format!(
                            "{principal} made {} requests in {mins:.0} min from network {net} with user agent {ua}, {which}; {} of its events were remembered before",
                            t.n, t.prior
                        ),
                    )
                } else if x.access_by_tenant_ua {
                    let families = self.seen.distinct(Kind::Ua).saturating_sub(1);
                    let seen = if x.ua_t_count == 0 {
                        "first seen".to_string()
                    } else {
                        format!("seen {} times before", x.ua_t_count)
                    };
                    let events = thousands(x.ua_t_total.round() as u64);
                    ex.push(Contribution {
                        feature: "user_agent_family_in_tenant".into(),
                        value: ua.clone(),
                        typical: format!(
                            "{} user agent famil{} seen in tenant {}",
                            families,
                            if families == 1 { "y" } else { "ies" },
                            self.tenant
                        ),
                        reason: format!(
                            "{seen} in {events} events of the tenant ({:.1} bits of surprise)",
                            x.s_ua_t
                        ),
                    });
                    (principal.to_string(), format!("{principal} used user agent {ua}, {seen} in tenant {} ({events} events), from network {net}; both new for this principal after {} of its events", self.tenant, x.p_count))
                } else {
                    (principal.to_string(), format!("{principal} used network {net} and user agent {ua}, both new for this principal after {} of its events", x.p_count))
                }
            }
            Detector::Egress => {
                let sm = self.sources.iter().find(|s| s.source == f.source);
                let typical = sm.map_or(0.0, |s| s.numeric.stats[1].mean.exp_m1());
                let bytes = ev.bytes_out.unwrap_or(0) as f64;
                ex.push(Contribution {
                    feature: "bytes_out".into(),
                    value: human_bytes(bytes),
                    typical: human_bytes(typical),
                    reason: format!(
                        "{:.1} standard deviations above this tenant's usual request size",
                        x.z_bytes_out
                    ),
                });
                ex.push(Contribution {
                    feature: "registrable_domain".into(),
                    value: domain.clone(),
                    typical: self.top_domains.labels().join(", "),
                    reason: format!(
                        "seen {} times by the tenant (of ~{:.0}) and {} times by {principal}",
                        x.dom_count, x.dom_total, x.pd_count
                    ),
                });
                (
                    domain.clone(),
                    format!(
                        "{principal} sent {} to {domain}, a destination rare for tenant {t}",
                        human_bytes(bytes)
                    ),
                )
            }
            Detector::Numeric => {
                let sm = self
                    .sources
                    .iter()
                    .find(|s| s.source == f.source)
                    .expect("source model exists");
                let dev = sm.numeric.gmm.deviations(&x.x, x.numeric_k);
                let mut order: Vec<usize> = (0..D).collect();
                order.sort_by(|&a, &b| dev[b].0.abs().total_cmp(&dev[a].0.abs()));
                let mut names = Vec::new();
                for &i in order.iter().take(3) {
                    let v = to_unit(i, f64::from(x.x[i]));
                    ex.push(Contribution { feature: FEATURE_NAMES[i].into(), value: format!("{v:.2}"), typical: format!("{:.2}", dev[i].1), reason: format!("{:+.1} standard deviations from the nearest usual pattern of this tenant", dev[i].0) });
                    names.push(FEATURE_NAMES[i]);
                }
                let who = if f.principal != 0 {
                    principal.to_string()
                } else {
                    "tenant".to_string()
                };
                let usual = match x.numeric_usual {
                    u if u >= 0.05 => format!(", {u:.1} of them usual for {who}"),
                    _ => String::new(),
                };
                (who.clone(), format!("unusual combination of {} for {who} ({:.1} nats above the tenant's 90th percentile{usual})", names.join(", "), raw + x.numeric_usual))
            }
            Detector::Burst => {
                let what = if x.burst_kind == 1 { "401/403" } else { "404" };
                ex.push(Contribution {
                    feature: if x.burst_kind == 1 {
                        "auth_failures_per_minute".into()
                    } else {
                        "not_found_per_minute".into()
                    },
                    value: format!("{:.0}", x.burst_k),
                    typical: format!("{:.2}", x.burst_lambda),
                    reason: format!("Poisson tail of {raw:.0} bits given the tenant's daily rate"),
                });
                let entity = format!("{} {what}", f.source);
                if x.burst_client_k > 0.0 {
                    let net = ev.client_ip.map(network_label).unwrap_or_default();
                    ex.push(Contribution {
                        feature: "client_network".into(),
                        value: net.clone(),
                        typical: "404s spread over the tenant's clients".into(),
                        reason: format!(
                            "{:.0} of the last minute's {:.0} 404s came from this network",
                            x.burst_client_k, x.burst_k
                        ),
                    });
                    (entity, format!("{:.0} {what} responses in the last minute to client network {net} of tenant {t} ({}), where the whole tenant usually has {:.2}", x.burst_client_k, f.source, x.burst_lambda))
                } else {
                    (entity, format!("{:.0} {what} responses in the last minute for tenant {t} ({}), usually {:.2}", x.burst_k, f.source, x.burst_lambda))
                }
            }
            Detector::Beacon => {
                let b = x.beacon.unwrap_or_default();
                ex.push(Contribution {
                    feature: "interval_seconds".into(),
                    value: format!("{:.0} ± {:.1}", b.mean_s, b.mad_s),
                    typical: "irregular".into(),
                    reason: format!("{} requests at a regular interval", b.n + 1),
                });
                ex.push(Contribution {
                    feature: "registrable_domain".into(),
                    value: domain.clone(),
                    typical: self.top_domains.labels().join(", "),
                    reason: format!(
                        "seen {} times by the tenant before this track began",
                        x.dom_count
                    ),
                });
                (format!("{principal} -> {domain}"), format!("{principal} contacts rare host {domain} every {:.0}s (±{:.1}s), {} times so far", b.mean_s, b.mad_s, b.n + 1))
            }
            Detector::Tunnel => {
                ex.push(Contribution {
                    feature: "new_high_entropy_subdomains_10m".into(),
                    value: format!("{:.1}", x.tunnel_n),
                    typical: "0".into(),
                    reason: format!(
                        "query names never seen before with {:.1} bits/char of entropy",
                        x.tunnel_entropy
                    ),
                });
                ex.push(Contribution {
                    feature: "registrable_domain".into(),
                    value: domain.clone(),
                    typical: self.top_domains.labels().join(", "),
                    reason: format!("seen {} times by the tenant", x.dom_count),
                });
                (domain.clone(), format!("{:.0} new high-entropy subdomains of {domain} within ~10 minutes (possible DNS tunnelling)", x.tunnel_n))
            }
            Detector::OffHours => {
                let how = f.hour_of_week as usize;
                let mut when = String::new();
                let _ = write!(
                    when,
                    "{} {:02}:00 ({})",
                    DAYS[how / 24 % 7],
                    how % 24,
                    self.zone.tz()
                );
                ex.push(Contribution {
                    feature: "hour_of_week".into(),
                    value: when.clone(),
                    typical: format!(
                        "{:.3}% of this tenant's traffic per hour here (uniform would be 0.595%)",
                        x.hour_share * 100.0
                    ),
                    reason: if x.admin_before {
                        "administrative route/app at an hour the tenant is rarely active (by a principal with earlier admin sessions: the hour counts half)"
                    } else {
                        "administrative route/app at an hour the tenant is rarely active"
                    }
                    .into(),
                });
                if x.admin_session >= 1.5 {
                    ex.push(Contribution {
                        feature: "admin_session".into(),
                        value: format!("{} admin calls in this session", x.admin_calls),
                        typical: format!("{:.1} per session in this tenant", x.admin_typical),
                        reason: "a run of administrative calls by one principal".into(),
                    });
                    (principal.to_string(), format!("{} admin calls by {principal} in one session (typical session here: {:.1}) on {when}, an hour with {:.3}% of tenant {t}'s traffic", x.admin_calls, x.admin_typical, x.hour_share * 100.0))
                } else {
                    (principal.to_string(), format!("admin activity by {principal} on {when}, an hour with {:.3}% of tenant {t}'s traffic", x.hour_share * 100.0))
                }
            }
            Detector::Volume => return false,
        };
        self.open(
            d,
            key,
            entity,
            f.source,
            raw,
            grade,
            f.ts_ms,
            ev.id.as_deref(),
            ex,
            summary,
            cfg,
            out,
        );
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::DetectConfig;

    /// A format-10 snapshot of `m`: its payload without the scan tracks
    /// (postcard: the `None` tag, one byte, last), under a format-10 header.
    fn format_10(m: &TenantModel) -> Vec<u8> {
        let mut old = m.clone();
        old.scans = None;
        let mut payload = postcard::to_stdvec(&old).unwrap();
        assert_eq!(payload.pop(), Some(0));
        let mut out = crate::snapshot::encode(&old);
        out.truncate(48);
        out[4..6].copy_from_slice(&10u16.to_le_bytes());
        out[8..16].copy_from_slice(&(payload.len() as u64).to_le_bytes());
        out[16..48].copy_from_slice(blake3::hash(&payload).as_bytes());
        out.extend_from_slice(&payload);
        out
    }

    #[test]
    fn a_format_10_model_gains_scan_tracks_where_its_budget_has_room() {
        let cfg = DetectConfig::default().check().unwrap();
        let tenant = TenantId::new("acme").unwrap();
        let mut m = TenantModel::new(tenant.clone(), &cfg);
        let mut out = Vec::new();
        for (i, s) in Source::ALL.into_iter().take(2).enumerate() {
            let ev = Event::new(tenant.clone(), s, ms_to_utc(1_772_409_600_000 + i as i64));
            m.process(&ev, &cfg, &mut FeatureCache::new(), &mut out);
        }
        let up = crate::snapshot::decode(&format_10(&m), &tenant).unwrap();
        assert!(up.scans.is_some());
        assert!(up.resident_bytes() <= up.budget);

        // a model with no room left beside its tables gains none
        let mut full = up.clone();
        full.scans = None;
        full.budget = full.resident_bytes();
        full.fit_scans();
        assert!(full.scans.is_none());
    }

    #[test]
    fn a_model_fits_its_budget_with_every_source() {
        // the default budget holds all five sources; the minimum holds two
        for (budget, sources) in [(32 * 1024, 2), (64 * 1024, 5), (256 * 1024, 5)] {
            let cfg = DetectConfig {
                budget_bytes: budget,
                ..Default::default()
            }
            .check()
            .unwrap();
            let mut m = TenantModel::new(TenantId::new("acme").unwrap(), &cfg);
            assert!(
                m.resident_bytes() <= budget,
                "{budget}: {}",
                m.resident_bytes()
            );
            let mut out = Vec::new();
            for (i, s) in Source::ALL.into_iter().take(sources).enumerate() {
                let ev = Event::new(m.tenant.clone(), s, ms_to_utc(1_772_409_600_000 + i as i64));
                m.process(&ev, &cfg, &mut FeatureCache::new(), &mut out);
                assert!(
                    m.resident_bytes() <= budget,
                    "{budget} after {s}: {}",
                    m.resident_bytes()
                );
            }
            if budget == 64 * 1024 {
                assert!(
                    m.counters.table_halvings >= 1,
                    "five sources do not fit without shrinking"
                );
                // five sources' numeric and volume models and the pair
                // filter's quarter (PAIR_SLOT_SHARE) leave the table a few
                // hundred slots (312 when this was written)
                assert!(m.seen.capacity() >= 256, "{}", m.seen.capacity());
            }
            assert_eq!(m.budget_hits(), m.counters.table_halvings);
        }
    }

    #[test]
    fn a_false_positive_moves_a_threshold_detector_for_its_entity_only() {
        let cfg = DetectConfig::default().check().unwrap();
        let mut m = TenantModel::new(TenantId::new("acme").unwrap(), &cfg);
        let mut out = Vec::new();
        let fire = |m: &mut TenantModel, key: u64, raw: f64, out: &mut Vec<AlertUpdate>| {
            out.clear();
            m.episodes.clear();
            let (ex, sum) = (Vec::new(), String::new());
            m.open(
                Detector::Volume,
                key,
                "events (apigw)".into(),
                Source::Apigw,
                raw,
                0.999,
                1,
                None,
                ex,
                sum,
                &cfg,
                out,
            );
            out.iter().any(|u| matches!(u, AlertUpdate::Fired(_)))
        };
        assert!(fire(&mut m, 7, 10.0, &mut out));
        let target = |score| FeedbackTarget {
            detector: Detector::Volume,
            entity_key: 7,
            entity: "events (apigw)".into(),
            score,
        };
        let e = m.feedback(&target(10.0), Verdict::FalsePositive, &mut out);
        assert_eq!(e.benign.unwrap().min_raw, 10.0 * BENIGN_RAISE);
        assert!(
            !fire(&mut m, 7, 14.0, &mut out),
            "below the moved threshold"
        );
        assert!(
            fire(&mut m, 7, 15.5, &mut out),
            "a much larger surge still alerts"
        );
        assert!(
            fire(&mut m, 8, 10.0, &mut out),
            "another entity is unaffected"
        );
        assert_eq!(m.counters().suppressed, 1);
        // A second false positive never lowers the bar.
        m.feedback(&target(4.0), Verdict::FalsePositive, &mut out);
        assert_eq!(m.benign()[0].min_raw, 10.0 * BENIGN_RAISE);
    }

    #[test]
    fn human_numbers() {
        assert_eq!(thousands(48211), "48,211");
        assert_eq!(thousands(100), "100");
        assert_eq!(thousands(1_000_000), "1,000,000");
        assert_eq!(human_bytes(60_000_000.0), "57.2 MiB");
        assert_eq!(human_bytes(300.0), "300 B");
    }

    #[test]
    fn poisson_tail_bits_grow_with_the_session() {
        assert_eq!(poisson_tail_bits(1.5, 0), 0.0);
        let b: Vec<f64> = (1..20).map(|k| poisson_tail_bits(1.5, k)).collect();
        assert!(b.windows(2).all(|w| w[1] >= w[0]), "{b:?}");
        // P(N >= 1 | 1.5) = 1 - e^-1.5
        assert!((b[0] + (1.0 - (-1.5f64).exp()).log2()).abs() < 1e-9);
        assert_eq!(b[18], 16.0, "capped");
    }

    #[test]
    fn a_principal_that_is_always_unusual_is_measured_against_its_own_usual() {
        let cfg = DetectConfig::default().check().unwrap();
        let t0 = 1_772_409_600_000i64;
        let mut m = TenantModel::new(TenantId::new("acme").unwrap(), &cfg);
        let mut cache = FeatureCache::new();
        let mut out = Vec::new();
        let mut call = |m: &mut TenantModel, i: i64, who: &str, bytes: u64, ms: f64| {
            let mut ev = Event::new(m.tenant.clone(), Source::Apigw, ms_to_utc(t0 + i * 1_000));
            ev.principal = Some(who.into());
            ev.method = Some("GET".into());
            ev.route = Some("/items".into());
            ev.status = Some(200);
            ev.bytes_out = Some(bytes + (i as u64 % 7) * 40);
            ev.latency_ms = Some(ms + (i % 5) as f64);
            m.process(&ev, &cfg, &mut cache, &mut out).per_detector[Detector::Numeric.index()].raw
        };
        // 40 users with ~1 KB answers in ~50 ms; one of them ("odd"), one
        // event in 50, asks for ~5 MB answers that take ~20 s
        for i in 0..20_000 {
            match i % 50 {
                0 => call(&mut m, i, "odd", 5_000_000, 20_000.0),
                _ => call(&mut m, i, &format!("user{}", i % 40), 1_000, 50.0),
            };
        }
        let usual = {
            let key = crate::hash::hash_lower(crate::features::seed::PRINCIPAL, b"odd");
            m.principals.peek(key).expect("tracked").usual_surprise()
        };
        assert!(
            usual > 5.0,
            "odd's events keep surprising the mixture: {usual}"
        );
        // the same request by odd and by a principal never seen before
        let odd = call(&mut m, 20_000, "odd", 5_000_000, 20_000.0);
        let fresh = call(&mut m, 20_050, "fresh", 5_000_000, 20_000.0);
        assert!(fresh >= cfg.config().floors.numeric, "fresh: {fresh}");
        assert!(
            odd < fresh - 5.0,
            "odd {odd} vs fresh {fresh} (usual {usual})"
        );
        // an unusual request by an ordinary user is scored in full
        let user = call(&mut m, 20_100, "user3", 5_000_000, 20_000.0);
        assert!(user > fresh - 1.0, "user3 {user} vs fresh {fresh}");
    }

    /// A format-8 snapshot (`tests/fixtures/hooli-000.v8.tgdm`, written by
    /// `tollgate replay --model-dir` of commit 7286d1c) keeps its
    /// principals' windows and counts; their usual surprise starts at zero.
    #[test]
    fn format_8_principals_keep_their_windows_and_start_with_no_usual_surprise() {
        let bytes = include_bytes!("../tests/fixtures/hooli-000.v8.tgdm");
        let m = crate::snapshot::decode(bytes, &TenantId::new("hooli-000").unwrap()).unwrap();
        let live: Vec<_> = m
            .principals
            .states()
            .iter()
            .filter(|s| s.key != 0)
            .collect();
        assert!(live.len() > 50, "{}", live.len());
        assert!(live.iter().all(|s| s.surprise == 0));
        assert!(live.iter().any(|s| s.nets > 0) && live.iter().any(|s| s.uas > 0));
        assert!(live.iter().any(|s| s.rate > 0.0 && s.new_dests > 0.0));
    }

    /// A format-9 snapshot (`hooli-000.v9.tgdm`: the same 20,000 events
    /// through commit cdede0c) keeps its takeover sessions, each marked as
    /// opened on a new user agent, as every session then was; its session
    /// sizes are kept too.
    #[test]
    fn format_9_takeover_sessions_are_kept_as_opened_on_a_new_user_agent() {
        let bytes = include_bytes!("../tests/fixtures/hooli-000.v9.tgdm");
        let m = crate::snapshot::decode(bytes, &TenantId::new("hooli-000").unwrap()).unwrap();
        assert_eq!(m.takeovers.len(), 4);
        assert!(m
            .takeovers
            .iter()
            .all(|t| t.new_ua && t.key != 0 && t.n > 0));
        assert_eq!(m.takeover_reach[..2], [284, 2]);
    }

    #[test]
    fn an_admin_session_in_a_quiet_hour_scores_where_one_admin_call_does_not() {
        let cfg = DetectConfig::default().check().unwrap();
        let t0 = 1_772_409_600_000i64; // a Monday, 00:00 UTC
        let hour = 3_600_000i64;
        let mut m = TenantModel::new(TenantId::new("acme").unwrap(), &cfg);
        let mut cache = FeatureCache::new();
        let mut out = Vec::new();
        let mut call = |m: &mut TenantModel, ts: i64, who: &str, route: &str| {
            let mut ev = Event::new(m.tenant.clone(), Source::Apigw, ms_to_utc(ts));
            ev.principal = Some(who.into());
            ev.method = Some("GET".into());
            ev.route = Some(route.into());
            ev.status = Some(200);
            let sc = m.process(&ev, &cfg, &mut cache, &mut out);
            sc.per_detector[Detector::OffHours.index()].raw
        };
        // a week of office hours (08:00-19:00, 30 calls an hour, one of
        // them an admin's) and a trickle at night
        for d in 0..7 {
            for h in 0..24 {
                let base = t0 + d * 24 * hour + h * hour;
                let n = if (8..19).contains(&h) { 30 } else { 2 };
                for i in 0..n {
                    let user = format!("user{}", i % 20);
                    call(&mut m, base + i * (hour / n), &user, "/items");
                }
                if (8..19).contains(&h) {
                    call(&mut m, base + hour / 2 + 1, "admin0", "/admin/users");
                }
            }
        }
        let night = t0 + 7 * 24 * hour + 2 * hour;
        // one admin call at 02:00: a quiet hour, but no session
        let mut one = m.clone();
        let single = call(&mut one, night, "user3", "/admin/users");
        assert!(
            single > 0.0 && single < cfg.config().floors.off_hours,
            "{single}"
        );
        // admin0, whose daytime admin sessions have ended, at the same hour:
        // the hour counts half for an admin; a long session still pages
        let mut admin = m.clone();
        let mut user = m.clone();
        let by_admin: Vec<f64> = (0..12)
            .map(|i| call(&mut admin, night + i * 30_000, "admin0", "/admin/users"))
            .collect();
        let by_user: Vec<f64> = (0..2)
            .map(|i| call(&mut user, night + i * 30_000, "user3", "/admin/users"))
            .collect();
        assert!(by_admin[0] < single / 2.0 + 0.5, "{by_admin:?} vs {single}");
        assert!(by_admin[1] < by_user[1], "{by_admin:?} vs {by_user:?}");
        assert!(by_admin[1] < cfg.config().floors.off_hours, "{by_admin:?}");
        assert!(
            by_admin[11] >= cfg.config().floors.off_hours,
            "{by_admin:?}"
        );
        // a dozen in six minutes: its own calls do not make 02:00 look busy
        let raws: Vec<f64> = (0..12)
            .map(|i| call(&mut m, night + i * 30_000, "user3", "/admin/users"))
            .collect();
        assert!(raws[0] < cfg.config().floors.off_hours, "{raws:?}");
        assert!(
            raws[4] >= cfg.config().floors.off_hours,
            "within five calls: {raws:?}"
        );
        assert!(raws.windows(2).all(|w| w[1] >= w[0]), "{raws:?}");
    }

    #[test]
    fn a_tenant_whose_404s_come_in_clusters_is_judged_by_its_clusters() {
        let cfg = DetectConfig::default().check().unwrap();
        let t0 = 1_772_409_600_000i64;
        let minute = 60_000i64;
        let floor = cfg.config().floors.burst;
        let run = |cluster: i64| {
            let mut m = TenantModel::new(TenantId::new("acme").unwrap(), &cfg);
            let (mut cache, mut out) = (FeatureCache::new(), Vec::new());
            let mut call = |m: &mut TenantModel, ts: i64, status: u16| {
                let mut ev = Event::new(m.tenant.clone(), Source::Apigw, ms_to_utc(ts));
                ev.principal = Some("user1".into());
                ev.method = Some("GET".into());
                ev.route = Some("/items/{id}".into());
                ev.status = Some(status);
                m.process(&ev, &cfg, &mut cache, &mut out).per_detector[Detector::Burst.index()].raw
            };
            // two days: a 404 cluster of `cluster` every 20 minutes
            let mut worst: f64 = 0.0;
            for i in 0..(2 * 24 * 3) {
                let base = t0 + i * 20 * minute;
                call(&mut m, base, 200);
                for j in 0..cluster {
                    let r = call(&mut m, base + 1000 + j * 2000, 404);
                    if i > 24 * 3 {
                        worst = worst.max(r);
                    }
                }
            }
            // then a scanner: 60 404s in a minute
            let end = t0 + 2 * 24 * 60 * minute + 7 * minute;
            let scan = (0..60)
                .map(|j| call(&mut m, end + j * 1000, 404))
                .fold(0.0f64, f64::max);
            (worst, scan)
        };
        let (clustered, scan) = run(5);
        assert!(clustered < floor, "a familiar cluster: {clustered}");
        assert!(scan >= floor, "a scanner still: {scan}");
        // the same five with 404s otherwise alone: not the tenant's habit
        let (_, scan_single) = run(1);
        assert!(scan_single >= scan, "{scan_single} vs {scan}");
    }

    #[test]
    fn a_web_proxys_404s_are_not_a_route_enumeration() {
        let cfg = DetectConfig::default().check().unwrap();
        let t0 = 1_772_409_600_000i64;
        let minute = 60_000i64;
        let floor = cfg.config().floors.burst;
        // the best burst score of 60 responses of `status` in a minute,
        // after two days of one request every 20 minutes and a 404 an hour
        let run = |source: Source, status: u16| {
            let mut m = TenantModel::new(TenantId::new("acme").unwrap(), &cfg);
            let (mut cache, mut out) = (FeatureCache::new(), Vec::new());
            let mut call = |m: &mut TenantModel, ts: i64, status: u16| {
                let mut ev = Event::new(m.tenant.clone(), source, ms_to_utc(ts));
                ev.principal = Some("user1".into());
                ev.method = Some("GET".into());
                ev.route = Some("/items/{id}".into());
                ev.destination_host = Some("news.example.com".into());
                ev.client_ip = Some(std::net::IpAddr::from([10, 0, 0, 1]));
                ev.status = Some(status);
                m.process(&ev, &cfg, &mut cache, &mut out).per_detector[Detector::Burst.index()].raw
            };
            for i in 0..(2 * 24 * 3) {
                call(
                    &mut m,
                    t0 + i * 20 * minute,
                    if i % 3 == 0 { 404 } else { 200 },
                );
            }
            let end = t0 + 2 * 24 * 60 * minute + 7 * minute;
            (0..60)
                .map(|j| call(&mut m, end + j * 1000, status))
                .fold(0.0f64, f64::max)
        };
        assert!(run(Source::Apigw, 404) >= floor);
        assert_eq!(run(Source::ZscalerWeb, 404), 0.0);
        // a proxy's 403s (blocked by policy) still count
        assert!(run(Source::ZscalerWeb, 403) >= floor);
    }

    #[test]
    fn a_scanner_hidden_by_the_tenants_clustered_404s_is_found_by_its_network() {
        let t0 = 1_772_409_600_000i64;
        let minute = 60_000i64;
        // the scanner's best burst score, with the client tracks (64 KiB)
        // or without them (32 KiB: none), in a tenant whose 404s come in
        // fives from many clients
        let run = |budget: usize| {
            let cfg = DetectConfig {
                budget_bytes: budget,
                ..Default::default()
            }
            .check()
            .unwrap();
            let mut m = TenantModel::new(TenantId::new("acme").unwrap(), &cfg);
            let (mut cache, mut out) = (FeatureCache::new(), Vec::new());
            let mut call = |m: &mut TenantModel, ts: i64, status: u16, ip: [u8; 4]| {
                let mut ev = Event::new(m.tenant.clone(), Source::Apigw, ms_to_utc(ts));
                ev.method = Some("GET".into());
                ev.route = Some("/items/{id}".into());
                ev.status = Some(status);
                ev.client_ip = Some(std::net::IpAddr::from(ip));
                m.process(&ev, &cfg, &mut cache, &mut out).per_detector[Detector::Burst.index()].raw
            };
            for i in 0..(2 * 24 * 3) {
                let base = t0 + i * 20 * minute;
                let ip = [10, (i % 200) as u8, 0, 1];
                call(&mut m, base, 200, ip);
                for j in 0..5 {
                    call(&mut m, base + 1000 + j * 2000, 404, ip);
                }
            }
            let end = t0 + 2 * 24 * 60 * minute + 7 * minute;
            (0..SCANNED)
                .map(|j| call(&mut m, end + j * SCAN_GAP_MS, 404, [198, 51, 100, 9]))
                .fold(0.0f64, f64::max)
        };
        // eight 404s from one address in 21 s
        const SCANNED: i64 = 8;
        const SCAN_GAP_MS: i64 = 3_000;
        let floor = DetectConfig::default()
            .check()
            .unwrap()
            .config()
            .floors
            .burst;
        let (with, without) = (run(64 * 1024), run(32 * 1024));
        assert!(without < floor, "tenant-wide alone: {without}");
        assert!(with >= floor, "by its network: {with}");
    }

    #[test]
    fn an_admin_session_counts_as_far_as_its_hour_is_quiet() {
        let floor = DetectConfig::default()
            .check()
            .unwrap()
            .config()
            .floors
            .off_hours;
        // an average or busier hour: the session adds nothing
        assert_eq!(off_hours_bits(0.0, 16.0, false), 0.0);
        // a quiet hour: all of it
        assert_eq!(off_hours_bits(1.0, 6.0, false), 7.0);
        assert_eq!(off_hours_bits(3.0, 6.0, false), 9.0);
        // in between, in proportion, rising with both
        let s: Vec<f64> = (0..=10)
            .map(|i| off_hours_bits(f64::from(i) / 10.0, 16.0, false))
            .collect();
        assert!(s.windows(2).all(|w| w[1] > w[0]), "{s:?}");
        assert!(off_hours_bits(0.5, 4.0, false) < off_hours_bits(0.5, 8.0, false));
        // a long night session where a few benign admins also work nights
        // (seed 5's 0.58 bits) pages; a short one at such an hour does not
        assert!(off_hours_bits(0.58, 16.0, false) >= floor);
        assert!(off_hours_bits(0.58, 1.0, false) < floor);
        // an admin's: the hour counts half, the session as before — one or
        // two calls at a 4-bit hour do not page, a long session still does
        assert_eq!(off_hours_bits(4.0, 0.4, true), 2.4);
        assert!(off_hours_bits(4.0, 0.4, true) < floor);
        assert!(off_hours_bits(2.5, 1.6, true) < floor);
        assert!(off_hours_bits(2.5, 1.6, false) >= floor);
        assert!(off_hours_bits(2.0, 5.0, true) >= floor);
        assert_eq!(off_hours_bits(0.0, 16.0, true), 0.0);
    }

    #[test]
    fn off_hours_share_pools_by_hour_of_day_in_the_first_week() {
        let mut hours = vec![0u16; 168];
        hours[10] = 700; // Monday 10:00 only
        let day = 86_400_000;
        let thursday10 = 3 * 24 + 10;
        let young = TenantModel::hour_share(&hours, 700, thursday10, 2 * day, 0.0);
        let old = TenantModel::hour_share(&hours, 700, thursday10, 8 * day, 0.0);
        assert!(young > 0.05, "pooled by hour of day: {young}");
        assert_eq!(old, 0.0, "a week of history separates the days");
    }

    /// Three days of four sources' traffic, shaped to reach every part of
    /// the model: API calls (a few 401s and 404s, admin calls by day and
    /// some at night), web browsing with a beacon to a rare host, firewall
    /// sessions, DNS with high-entropy lookups; volume intervals closed as
    /// event time passes, numeric refits, alerts, and a false positive.
    fn trained(cfg: &CheckedConfig) -> TenantModel {
        let t0 = 1_772_409_600_000i64; // a Monday, 00:00 UTC
        let mut m = TenantModel::new(TenantId::new("acme").unwrap(), cfg);
        let (mut cache, mut out) = (FeatureCache::new(), Vec::new());
        let mut rng = 7u64;
        let mut u = move || {
            rng = rng
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            ((rng >> 11) as f64) / ((1u64 << 53) as f64)
        };
        let mut now = t0;
        let mut beacon_at = t0;
        let mut fired = None;
        for i in 0..12_000u64 {
            now += (u() * 40_000.0) as i64 + 1;
            let p = (u() * 40.0) as usize;
            let r = u();
            let source = if r < 0.45 {
                Source::Apigw
            } else if r < 0.75 {
                Source::ZscalerWeb
            } else if r < 0.9 {
                Source::ZscalerDns
            } else {
                Source::ZscalerFw
            };
            let mut ev = Event::new(m.tenant.clone(), source, ms_to_utc(now));
            ev.id = Some(format!("e{i}").into());
            ev.principal = Some(format!("user{p}@acme.example").into());
            ev.client_ip = Some(std::net::IpAddr::from([10, 0, (p % 8) as u8, 17]));
            ev.user_agent = Some(
                [
                    "Mozilla/5.0 (X11; Linux x86_64; rv:125.0) Gecko/20100101 Firefox/125.0",
                    "okhttp/4.12.0",
                ][p % 2]
                    .into(),
            );
            ev.latency_ms = Some(20.0 + 200.0 * u());
            ev.bytes_out = Some(500 + (u() * 5_000.0) as u64);
            ev.bytes_in = Some(200 + (u() * 20_000.0) as u64);
            match source {
                Source::Apigw => {
                    ev.token_issuer = Some("https://login.acme.example".into());
                    ev.method = Some("GET".into());
                    let admin = u() < 0.02;
                    ev.route = Some(if admin { "/admin/users" } else { "/v1/items" }.into());
                    let s = u();
                    ev.status = Some(if s < 0.01 {
                        401
                    } else if s < 0.03 {
                        404
                    } else {
                        200
                    });
                }
                Source::ZscalerDns => {
                    ev.method = Some("A".into());
                    ev.destination_host = Some(if u() < 0.1 {
                        let label: String = (0..24)
                            .map(|_| {
                                b"0123456789abcdefghijklmnopqrstuv"[(u() * 32.0) as usize] as char
                            })
                            .collect();
                        format!("{label}.t.tunnel.example").into()
                    } else {
                        format!("www.site{}.example.com", (u() * 50.0) as u32).into()
                    });
                }
                _ => {
                    if now - beacon_at >= 60_000 {
                        beacon_at = now;
                        ev.principal = Some("user3@acme.example".into());
                        ev.destination_host = Some("cdn.c2-beacon.example".into());
                        ev.bytes_out = Some(300);
                    } else {
                        ev.destination_host =
                            Some(format!("www.site{}.example.com", (u() * 50.0) as u32).into());
                    }
                    ev.status = Some(200);
                }
            }
            out.clear();
            m.process(&ev, cfg, &mut cache, &mut out);
            if fired.is_none() {
                fired = out.iter().find_map(|x| match x {
                    AlertUpdate::Fired(a) => Some(FeedbackTarget::from(a)),
                    _ => None,
                });
            }
        }
        out.clear();
        m.advance(now + 600_000, cfg, &mut out);
        let target = fired.expect("the traffic raised an alert");
        m.feedback(&target, Verdict::FalsePositive, &mut out);
        m
    }

    #[test]
    fn a_model_that_learned_real_traffic_passes_its_shape_check() {
        let cfg = DetectConfig::default().check().unwrap();
        let m = trained(&cfg);
        assert_eq!(m.sources.len(), 4);
        assert!(m.counters.gmm_fits >= 4, "{:?}", m.counters);
        assert!(m.counters.alerts > 0 && !m.benign.is_empty());
        assert!(!m.beacons.is_empty() && !m.tunnels.is_empty() && !m.admin_tracks.is_empty());
        assert!(
            m.calib[Detector::Volume.index()].total() > 1000,
            "intervals closed"
        );
        assert_eq!(m.check_shape(), Ok(()));
        let back = crate::snapshot::decode(&crate::snapshot::encode(&m), &m.tenant).unwrap();
        assert_eq!(back, m);
    }

    /// Decoding the snapshot of `m` changed by `f` is a shape error that
    /// says `what`.
    fn assert_rejected(m: &TenantModel, f: impl FnOnce(&mut TenantModel), what: &str) {
        let mut bad = m.clone();
        f(&mut bad);
        match crate::snapshot::decode(&crate::snapshot::encode(&bad), &bad.tenant) {
            Err(crate::SnapshotError::Shape(msg)) => {
                assert!(msg.contains(what), "{msg:?} does not say {what:?}")
            }
            other => panic!("{what}: {:?}", other.map(|_| "decoded")),
        }
    }

    /// `m` with the field at `path` (dotted, array indexes as numbers) of
    /// its serde form changed by `f`: the private fields of every structure
    /// are reachable there, as they are to whoever crafts a snapshot.
    fn crafted(m: &TenantModel, path: &str, f: impl FnOnce(&mut serde_json::Value)) -> TenantModel {
        let mut v = serde_json::to_value(m).unwrap();
        f(path
            .split('.')
            .fold(&mut v, |v, k| match k.parse::<usize>() {
                Ok(i) => &mut v[i],
                Err(_) => &mut v[k],
            }));
        serde_json::from_value(v).unwrap()
    }

    fn episode(last_ms: i64) -> Episode {
        Episode {
            detector: Detector::Issuer,
            entity_key: 1,
            entity: "e".into(),
            id: "ep".into(),
            first_ms: 0,
            last_ms,
            events: 1,
        }
    }

    fn benign(entity: &str) -> Benign {
        Benign {
            detector: Detector::Issuer,
            entity_key: 1,
            entity: entity.into(),
            min_raw: 1.0,
            since_ms: 0,
        }
    }

    #[test]
    fn a_snapshot_of_the_wrong_shape_is_an_error_not_a_panic() {
        use serde_json::{json, Value};
        let cfg = DetectConfig::default().check().unwrap();
        let t0 = 1_772_409_600_000;
        let mut m = TenantModel::new(TenantId::new("acme").unwrap(), &cfg);
        let (mut cache, mut out) = (FeatureCache::new(), Vec::new());
        for i in 0..50 {
            let mut ev = Event::new(m.tenant.clone(), Source::Apigw, ms_to_utc(t0 + i * 20_000));
            ev.principal = Some(format!("user{}", i % 5).into());
            ev.token_issuer = Some("https://login.acme.example".into());
            ev.bytes_out = Some(900);
            m.process(&ev, &cfg, &mut cache, &mut out);
        }
        assert_eq!(m.check_shape(), Ok(()));

        // vectors cut short: (path, new length, what the error says)
        let cut = [
            ("hours", 12, "hours has 12 entries, expected 168"),
            ("calib", 8, "calib has 8 entries, expected 9"),
            (
                "calib.8.counts",
                3,
                "calib[volume].counts has 3 entries, expected 64",
            ),
            (
                "seen.slots",
                6,
                "seen.slots has 6 entries, expected a non-zero multiple of 4",
            ),
            ("pairs.slots", 12, "pairs.slots has 12 entries"),
            ("counts.slots", 0, "counts.slots has 0 entries"),
            (
                "principals.slots",
                24,
                "principals.slots has 3 buckets, expected a power of two",
            ),
            (
                "sources.0.volume.det.1.season",
                12,
                "sources[apigw].volume.errors.season has 12",
            ),
            (
                "sources.0.volume.det.0.bin_n",
                47,
                "volume.events.bin_n has 47 entries, expected 48",
            ),
        ];
        for (path, len, what) in cut {
            let bad = crafted(&m, path, |v| v.as_array_mut().unwrap().truncate(len));
            assert_rejected(&bad, |_| {}, what);
        }
        // fields set: (path, new value, what the error says)
        let source = serde_json::to_value(&m.sources[0]).unwrap();
        let many = |x: Value, n: usize| Value::from(vec![x; n]);
        let set = [
            ("admin_hours.5", json!(40_000), "admin_hours holds 40000"),
            ("calib.0.total", json!(7), "calib[issuer].total is 7"),
            ("seen.half_life_h", json!(0), "seen.half_life_h is 0"),
            (
                "seen.slots.0.tag",
                json!(200u32 << 24),
                "seen.slots holds a key of kind 200",
            ),
            ("counts.half_life_h", json!(0), "counts.half_life_h is 0"),
            ("budget", json!(1024), "seen takes"),
            (
                "common_nets.entries",
                many(json!([1, 1, 0]), 17),
                "common_nets.entries has 17",
            ),
            (
                "common_nets.entries",
                json!([[1, 1, 2]]),
                "over-estimated by 2",
            ),
            (
                "top_issuers.entries",
                many(json!([1, 1, ""]), 4),
                "top_issuers.entries has 4",
            ),
            (
                "top_domains.entries",
                json!([[1, 1, "x".repeat(30)]]),
                "a label of 30 bytes",
            ),
            (
                "sources",
                json!([source, source]),
                "sources has apigw twice",
            ),
            (
                "sources",
                many(source.clone(), 6),
                "sources has 6 entries, at most 5",
            ),
            (
                "sources.0.numeric.gmm.k",
                json!(0),
                "sources[apigw].numeric.gmm.k is 0",
            ),
            (
                "sources.0.numeric.gmm.k",
                json!(5),
                "numeric.gmm.k is 5, expected 1..=4",
            ),
            (
                "sources.0.numeric.gmm.scale.2",
                json!(0.0),
                "numeric.gmm.scale holds 0",
            ),
            (
                "sources.0.numeric.prior_std.0",
                json!(-1.0),
                "numeric.prior_std holds -1",
            ),
            (
                "sources.0.numeric.reservoir",
                many(json!([0, 0, 0, 0, 0, 0]), 4097),
                "has 4097",
            ),
            ("sources.0.numeric.cap", json!(5000), "numeric.cap is 5000"),
            // bins of another season than the vectors were made for
            (
                "sources.0.volume.det.3.params.season",
                json!("weekly"),
                "has 48 entries, expected 168",
            ),
            (
                "sources.0.volume.det.2.last_bin",
                json!(48),
                "bytes_out.last_bin is 48",
            ),
            (
                "sources.0.volume.det.0.recent_len",
                json!(255),
                "events.recent_len is 255",
            ),
            // times that event times are subtracted from
            ("first_ms", json!(i64::MAX), "first_ms is"),
            (
                "principals.base_ms",
                json!(i64::MIN + 1),
                "principals.base_ms is",
            ),
            ("totals.3.last_ms", json!(i64::MIN), "totals[3].last_ms is"),
            (
                "sources.0.volume.start_ms",
                json!(i64::MIN + 1),
                "volume.start_ms is",
            ),
        ];
        for (path, new, what) in set {
            let bad = crafted(&m, path, |v: &mut Value| *v = new);
            assert_rejected(&bad, |_| {}, what);
        }
        // non-finite floats and overlong vectors, set directly
        type Change = fn(&mut TenantModel);
        let direct: [(Change, &str); 21] = [
            (|m| m.admin_typical = f32::NAN, "admin_typical holds NaN"),
            (
                |m| m.totals[1].value = f64::INFINITY,
                "totals[1].value holds inf",
            ),
            (
                |m| m.sources[0].numeric.stats[1].mean = f64::NAN,
                "numeric.stats holds NaN",
            ),
            (
                |m| m.sources[0].burst.auth_excess = f32::NAN,
                "burst.auth_excess holds NaN",
            ),
            (
                |m| m.sources[0].burst.nf_long.last_ms = i64::MIN,
                "burst.nf_long.last_ms is",
            ),
            (
                |m| m.principals.get(1 << 40, 0).0.rate = f32::INFINITY,
                "principals.slots holds inf",
            ),
            (
                |m| m.beacons = vec![BeaconTrack::default(); TRACKS + 1],
                "beacons has 33 entries",
            ),
            (
                |m| {
                    m.beacons = vec![BeaconTrack {
                        mean_s: f32::NAN,
                        ..Default::default()
                    }]
                },
                "beacons[0].mean_s",
            ),
            (
                |m| {
                    m.beacons = vec![BeaconTrack {
                        last_ms: i64::MIN,
                        ..Default::default()
                    }]
                },
                "beacons[0].last_ms",
            ),
            (
                |m| {
                    let mut scans = [ScanTrack::default(); SCAN_TRACKS];
                    scans[1].n = f32::NAN;
                    m.scans = Some(Box::new(scans));
                },
                "scans[1].n",
            ),
            (
                |m| m.tunnels = vec![TunnelTrack::default(); TRACKS + 1],
                "tunnels has 33 entries",
            ),
            (
                |m| {
                    m.tunnels = vec![TunnelTrack {
                        entropy: f32::NAN,
                        ..Default::default()
                    }]
                },
                "tunnels[0].entropy",
            ),
            (
                |m| m.admin_tracks = vec![AdminTrack::default(); ADMIN_TRACKS + 1],
                "admin_tracks has 9",
            ),
            (
                |m| {
                    m.admin_tracks = vec![AdminTrack {
                        peak: f32::NAN,
                        ..Default::default()
                    }]
                },
                "admin_tracks[0].peak",
            ),
            (|m| m.takeover_cap = 0, "takeover_cap is 0"),
            (
                |m| m.takeovers = vec![TakeoverTrack::default(); 5],
                "takeovers has 5",
            ),
            (
                |m| {
                    m.takeovers = vec![TakeoverTrack {
                        span_ms: u32::MAX,
                        ..Default::default()
                    }]
                },
                "takeovers[0].span_ms over an hour",
            ),
            (
                |m| m.episodes = vec![episode(0); MAX_OPEN_EPISODES + 1],
                "episodes has 33 entries",
            ),
            (
                |m| m.episodes = vec![episode(i64::MIN)],
                "episodes[0].last_ms is",
            ),
            (
                |m| m.benign = vec![benign("e"); MAX_BENIGN + 1],
                "benign has 65 entries, at most 64",
            ),
            (
                |m| m.benign = vec![benign(&"x".repeat(300))],
                "benign holds an entity of 300 bytes",
            ),
        ];
        for (f, what) in direct {
            assert_rejected(&m, f, what);
        }
    }
}
