//! [`Simulation`]: the streaming iterator that merges background traffic with
//! the planned incidents into one event-time-ordered sequence of
//! [`SimRecord`]s, and the [`Labels`] that describe it.
//!
//! Memory is bounded by one minute of background offsets plus the incident
//! plans, whatever `events` is. Ties in event time go to background first,
//! then incidents in index order, so the order is a pure function of the
//! config.

use std::cmp::Reverse;
use std::collections::BinaryHeap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use tollgate_events::{TenantId, Text};

use crate::config::{SimConfig, SimConfigError, SimFormat};
use crate::incident::{self, Active, Incident};
use crate::render::IdKey;
use crate::traffic::{self, Background};
use crate::world::{self, Tenant};

/// One generated vendor record.
#[derive(Debug, Clone, PartialEq)]
pub struct SimRecord {
    /// Event time (millisecond precision). Zscaler lines carry it truncated
    /// to the second, as the vendor does.
    pub ts: DateTime<Utc>,
    /// The tenant whose traffic this is (ground truth, whatever the line's
    /// tenant marker is).
    pub tenant: TenantId,
    pub format: SimFormat,
    /// The record's own id as the decoder reports it in `Event::id`:
    /// `extendedRequestId` for API Gateway, `event_id`/`recordid` for Zscaler.
    pub id: Text,
    /// Index into [`Simulation::incidents`] when the record is malicious.
    pub incident: Option<u32>,
    /// The JSON line, without a trailing newline.
    pub line: String,
}

/// How a tenant's records are written and how its tenant can be recognised.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TenantInfo {
    pub tenant: TenantId,
    /// Share of background records.
    pub size_share: f64,
    /// Offset of the tenant's local time (drives its diurnal cycle).
    pub utc_offset_minutes: i32,
    /// `rest_flat_claims`, `rest_nested_claims`, `http_flat_claims` or
    /// `http_nested_claims`.
    pub apigw_template: String,
    /// Whether authenticated API Gateway lines carry the
    /// `custom:tenant_id` claim (flat templates); otherwise only `apiId`
    /// identifies the tenant.
    pub apigw_tenant_claim: bool,
    /// The tenant's API Gateway `apiId`s: every API Gateway line names one.
    pub api_ids: Vec<String>,
    /// e.g. `wrapped_v2_raw_tokens_string_numbers`.
    pub zscaler_template: String,
    /// The Zscaler `company` value on every Zscaler line.
    pub zscaler_company: String,
}

/// Everything an evaluation needs to score a run, as JSON.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Labels {
    pub seed: u64,
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
    /// No incident starts before this time.
    pub warmup_end: DateTime<Utc>,
    pub background_records: u64,
    pub total_records: u64,
    pub tenants: Vec<TenantInfo>,
    pub incidents: Vec<Incident>,
}

/// A seeded stream of vendor records with labelled incidents.
///
/// ```
/// use tollgate_sim::{SimConfig, Simulation};
/// let config = SimConfig { events: 2_000, tenants: 5, ..SimConfig::default() };
/// let sim = Simulation::new(config).unwrap();
/// let incidents = sim.incidents().len();
/// let records: Vec<_> = sim.collect();
/// assert!(records.iter().filter(|r| r.incident.is_some()).count() >= incidents);
/// ```
pub struct Simulation {
    config: SimConfig,
    tenants: Vec<Tenant>,
    incidents: Vec<Incident>,
    background: Background,
    /// Incident plans, indexed like `incidents`.
    active: Vec<Active>,
    /// Next record time of each incident that has records left.
    pending: BinaryHeap<Reverse<(i64, u32)>>,
    /// Position in the output stream; the input to record ids.
    seq: u64,
    ids: IdKey,
    total: u64,
}

impl Simulation {
    /// Checks the config and plans the tenants and incidents.
    pub fn new(config: SimConfig) -> Result<Self, SimConfigError> {
        config.check()?;
        let tenants = world::build_tenants(&config);
        let start = config.start.timestamp_millis();
        let end = start + config.duration.as_millis() as i64;
        let background = Background::new(config.seed, &tenants, start, end, config.events);
        let (incidents, active) = incident::plan(&config, &tenants, &background);
        let pending = active
            .iter()
            .enumerate()
            .map(|(i, a)| Reverse((a.times[0], i as u32)))
            .collect();
        let total = config.events + incidents.iter().map(|i| i.malicious_records).sum::<u64>();
        let ids = IdKey(crate::rng::splitmix64(&mut config.seed.clone()));
        Ok(Simulation {
            config,
            tenants,
            incidents,
            background,
            active,
            pending,
            seq: 0,
            ids,
            total,
        })
    }

    pub fn config(&self) -> &SimConfig {
        &self.config
    }

    /// The injected incidents; [`SimRecord::incident`] indexes this.
    pub fn incidents(&self) -> &[Incident] {
        &self.incidents
    }

    /// Background plus malicious records: exactly how many the iterator yields.
    pub fn total_records(&self) -> u64 {
        self.total
    }

    /// How each tenant is written and recognised.
    pub fn tenants(&self) -> Vec<TenantInfo> {
        self.tenants
            .iter()
            .map(|t| TenantInfo {
                tenant: t.id.clone(),
                size_share: t.weight,
                utc_offset_minutes: t.tz_minutes,
                apigw_template: t.apigw.name().to_owned(),
                apigw_tenant_claim: t.apigw.tenant_claim(),
                api_ids: t.apis.iter().map(|a| a.id.clone()).collect(),
                zscaler_template: t.zscaler.name(),
                zscaler_company: t.id.as_str().to_owned(),
            })
            .collect()
    }

    /// The labels of this simulation (available before any record is drawn).
    pub fn labels(&self) -> Labels {
        let start = self.config.start;
        let to =
            |d: std::time::Duration| start + chrono::Duration::milliseconds(d.as_millis() as i64);
        Labels {
            seed: self.config.seed,
            start,
            end: to(self.config.duration),
            warmup_end: to(self.config.warmup),
            background_records: self.config.events,
            total_records: self.total,
            tenants: self.tenants(),
            incidents: self.incidents.clone(),
        }
    }

    fn emit(
        &mut self,
        ts: i64,
        tenant: usize,
        format: SimFormat,
        incident: Option<u32>,
    ) -> SimRecord {
        let seq = self.seq;
        self.seq += 1;
        let id = match format {
            SimFormat::Apigw => self.ids.apigw(seq),
            _ => self.ids.zscaler(seq),
        };
        let id = id.as_str();
        let t = &self.tenants[tenant];
        let mut line = String::with_capacity(1536);
        match incident {
            Some(i) => incident::render_next(&mut self.active[i as usize], t, &mut line, id),
            None => {
                let rng = self.background.rng();
                match format {
                    SimFormat::Apigw => traffic::benign_apigw(&mut line, t, ts, rng, id),
                    SimFormat::ZscalerWeb => traffic::benign_web(&mut line, t, ts, rng, id),
                    SimFormat::ZscalerFw => traffic::benign_fw(&mut line, t, ts, rng, id),
                    SimFormat::ZscalerDns => traffic::benign_dns(&mut line, t, ts, rng, id),
                }
            }
        }
        SimRecord {
            ts: DateTime::<Utc>::from_timestamp_millis(ts).unwrap_or_default(),
            tenant: t.id.clone(),
            format,
            id: Text::new(id),
            incident,
            line,
        }
    }
}

impl Iterator for Simulation {
    type Item = SimRecord;

    fn next(&mut self) -> Option<SimRecord> {
        let bg = self.background.peek();
        let inc = self.pending.peek().map(|Reverse(p)| *p);
        let take_incident = match (bg, inc) {
            (None, None) => return None,
            (Some(b), Some((t, _))) => t < b,
            (None, Some(_)) => true,
            (Some(_), None) => false,
        };
        if take_incident {
            let Reverse((ts, i)) = self.pending.pop().expect("peeked");
            let a = &self.active[i as usize];
            let (tenant, format) = (a.tenant, self.incidents[i as usize].scenario.format());
            let rec = self.emit(ts, tenant, format, Some(i));
            let a = &self.active[i as usize];
            if let Some(&next) = a.times.get(a.next) {
                self.pending.push(Reverse((next, i)));
            }
            Some(rec)
        } else {
            let (ts, tenant, format) = self.background.take(&self.tenants);
            Some(self.emit(ts, tenant, format, None))
        }
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let left = (self.total - self.seq) as usize;
        (left, Some(left))
    }
}

impl ExactSizeIterator for Simulation {}
