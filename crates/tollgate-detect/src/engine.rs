//! [`Engine`]: the resident set of tenant models, their eviction to a
//! [`ModelStore`], and the engine-wide counters.
//!
//! The engine routes each event to its tenant's [`TenantModel`] (loading it
//! from the store, or creating it cold, on first sight), keeps at most
//! `max_resident_tenants` models in memory (least recently used goes to the
//! store first) and evicts tenants idle for `idle_evict_after` of event time
//! when [`Engine::advance`] is called. Every eviction, load, cold start,
//! budget hit and store or snapshot failure is counted in [`EngineStats`];
//! none is silent and none panics. The engine itself does no I/O: only the
//! store it is given may.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use tollgate_events::{Event, TenantId};

use crate::alert::{AlertUpdate, EventScore};
use crate::config::CheckedConfig;
use crate::features::FeatureCache;
use crate::hash::StableBuild;
use crate::model::{
    FeedbackEffect, FeedbackTarget, TenantDetail, TenantModel, TenantSummary, Verdict,
};
use crate::snapshot;
use crate::store::{ModelStore, StoreError};

/// What [`Engine::census`] found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Census {
    pub resident_bytes: usize,
    /// Resident tenants not past warm-up.
    pub warming: usize,
    /// The tenants with the most events (not sorted).
    pub busiest: Vec<(u64, TenantId)>,
}

/// Engine-wide counters (monotonic unless noted).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EngineStats {
    pub events: u64,
    pub alerts_fired: u64,
    pub episodes_resolved: u64,
    /// Gauge: models in memory now.
    pub tenants_resident: usize,
    /// Tenants started cold because the store had nothing for them.
    pub tenants_created: u64,
    /// Tenants restored from a snapshot.
    pub tenants_loaded: u64,
    pub evictions_lru: u64,
    pub evictions_idle: u64,
    /// Tenants handed to another owner ([`Engine::release`]).
    pub tenants_released: u64,
    /// Snapshots rejected (corrupt, incompatible, wrong tenant): that tenant
    /// started cold.
    pub snapshot_errors: u64,
    /// Store reads that failed: that tenant started cold.
    pub store_load_errors: u64,
    /// Store writes that failed: the tenant stayed resident.
    pub store_save_errors: u64,
    /// Snapshots written to the store (a tenant whose model had not changed
    /// since the last is not written again).
    pub snapshots_saved: u64,
    /// Bounded structures dropping live state to stay within budget.
    pub budget_hits: u64,
    pub gmm_fits: u64,
    pub gmm_fit_failures: u64,
}

struct Resident {
    model: TenantModel,
    /// Engine tick of the last event (LRU order).
    touched: u64,
    /// Event time of the last event (idle eviction).
    last_event_ms: i64,
    /// [`Engine::advance`] has nothing to do for this tenant before this
    /// event time (its next interval boundary or episode expiry), unless it
    /// had an event since (`i64::MIN`: due).
    due_ms: i64,
    /// The model changed (an event, an advance, a verdict) since the store
    /// last had it. Only such a tenant is written by a snapshot, an
    /// eviction or a hand-over: an untouched model is on disk already. (An
    /// advance counts even if it only closed an empty volume interval: a
    /// reloaded model would close it again, but an episode it resolved
    /// would resolve twice.)
    dirty: bool,
}

/// See the module docs.
pub struct Engine {
    cfg: CheckedConfig,
    store: Box<dyn ModelStore>,
    tenants: HashMap<TenantId, Resident, StableBuild>,
    tick: u64,
    stats: EngineStats,
    /// Memo of pure string classifications (no tenant state; see
    /// [`FeatureCache`]).
    cache: FeatureCache,
}

impl Engine {
    pub fn new(cfg: CheckedConfig, store: Box<dyn ModelStore>) -> Self {
        Engine {
            cfg,
            store,
            tenants: HashMap::with_hasher(StableBuild),
            tick: 0,
            stats: EngineStats::default(),
            cache: FeatureCache::new(),
        }
    }

    pub fn config(&self) -> &CheckedConfig {
        &self.cfg
    }

    /// Score the event against its tenant's model, then learn from it; push
    /// alert state changes (fired, resolved) to `out`.
    pub fn process(&mut self, ev: &Event, out: &mut Vec<AlertUpdate>) -> EventScore {
        self.tick += 1;
        let r = match self.tenants.get_mut(&ev.tenant) {
            Some(r) => r,
            None => {
                self.make_resident(&ev.tenant);
                self.tenants
                    .get_mut(&ev.tenant)
                    .expect("made resident above")
            }
        };
        r.touched = self.tick;
        r.last_event_ms = r.last_event_ms.max(ev.ts.timestamp_millis());
        r.due_ms = i64::MIN;
        r.dirty = true;
        let m = &mut r.model;
        let (hits, fits, fails) = (
            m.budget_hits(),
            m.counters().gmm_fits,
            m.counters().gmm_fit_failures,
        );
        let before = out.len();
        let score = m.process(ev, &self.cfg, &mut self.cache, out);
        self.stats.budget_hits += m.budget_hits() - hits;
        self.stats.gmm_fits += m.counters().gmm_fits - fits;
        self.stats.gmm_fit_failures += m.counters().gmm_fit_failures - fails;
        self.stats.events += 1;
        self.count_updates(&out[before..]);
        score
    }

    fn count_updates(&mut self, ups: &[AlertUpdate]) {
        for u in ups {
            match u {
                AlertUpdate::Fired(_) => self.stats.alerts_fired += 1,
                AlertUpdate::Resolved { .. } => self.stats.episodes_resolved += 1,
            }
        }
    }

    fn make_resident(&mut self, t: &TenantId) {
        if self.tenants.len() >= self.cfg.config().max_resident_tenants {
            if let Some(victim) = self
                .tenants
                .iter()
                .min_by(|(ka, a), (kb, b)| a.touched.cmp(&b.touched).then_with(|| ka.cmp(kb)))
                .map(|(k, _)| k.clone())
            {
                if self.evict(&victim) {
                    self.stats.evictions_lru += 1;
                }
            }
        }
        let model = match self.store.load(t) {
            Ok(Some(bytes)) => match snapshot::decode(&bytes, t) {
                Ok(m) => {
                    self.stats.tenants_loaded += 1;
                    m
                }
                Err(_) => {
                    self.stats.snapshot_errors += 1;
                    self.stats.tenants_created += 1;
                    TenantModel::new(t.clone(), &self.cfg)
                }
            },
            Ok(None) => {
                self.stats.tenants_created += 1;
                TenantModel::new(t.clone(), &self.cfg)
            }
            Err(_) => {
                self.stats.store_load_errors += 1;
                self.stats.tenants_created += 1;
                TenantModel::new(t.clone(), &self.cfg)
            }
        };
        let mut model = model;
        model.set_zone(self.cfg.zone(t));
        self.tenants.insert(
            t.clone(),
            Resident {
                model,
                touched: self.tick,
                last_event_ms: i64::MIN,
                due_ms: i64::MIN,
                dirty: false,
            },
        );
        self.stats.tenants_resident = self.tenants.len();
    }

    /// Save (if changed) and drop one tenant; false (and counted) if the
    /// save failed, in which case it stays resident.
    fn evict(&mut self, t: &TenantId) -> bool {
        if !self.tenants.contains_key(t) || self.save(t).is_err() {
            return false;
        }
        self.tenants.remove(t);
        self.stats.tenants_resident = self.tenants.len();
        true
    }

    /// Writes one tenant's snapshot to the store if it is resident and its
    /// model changed since the store last had it; whether it wrote. A
    /// failed write is counted and leaves the tenant resident and changed.
    pub fn save(&mut self, t: &TenantId) -> Result<bool, StoreError> {
        let Some(r) = self.tenants.get_mut(t).filter(|r| r.dirty) else {
            return Ok(false);
        };
        let bytes = snapshot::encode(&r.model);
        match self.store.save(t, &bytes) {
            Ok(()) => {
                r.dirty = false;
                self.stats.snapshots_saved += 1;
                Ok(true)
            }
            Err(e) => {
                self.stats.store_save_errors += 1;
                Err(e)
            }
        }
    }

    /// The resident tenants whose models changed since the store last had
    /// them, sorted: what a snapshot round has to write.
    pub fn changed_tenants(&self) -> Vec<TenantId> {
        let mut v: Vec<TenantId> = self
            .tenants
            .iter()
            .filter(|(_, r)| r.dirty)
            .map(|(t, _)| t.clone())
            .collect();
        v.sort();
        v
    }

    /// Hands a tenant over to another owner (a Kafka partition moved to
    /// another instance): with `save`, its snapshot is written to the store
    /// first and the model stays resident if the write fails (the error is
    /// returned); without `save` (the assignment was lost, so the new owner
    /// may already have written a newer snapshot) it is only dropped.
    /// Returns whether the tenant was resident.
    pub fn release(&mut self, t: &TenantId, save: bool) -> Result<bool, StoreError> {
        if !self.tenants.contains_key(t) {
            return Ok(false);
        }
        if save {
            self.save(t)?;
        }
        self.tenants.remove(t);
        self.stats.tenants_resident = self.tenants.len();
        self.stats.tenants_released += 1;
        Ok(true)
    }

    /// Applies on-call's verdict on one of `t`'s alerts (see
    /// [`TenantModel::feedback`]), loading the tenant from the store if it
    /// is not resident, then saves its snapshot at once so the lesson
    /// survives a crash. An episode the verdict resolved is pushed to `out`.
    pub fn feedback(
        &mut self,
        t: &TenantId,
        target: &FeedbackTarget,
        verdict: Verdict,
        out: &mut Vec<AlertUpdate>,
    ) -> Result<FeedbackEffect, StoreError> {
        if !self.tenants.contains_key(t) {
            self.make_resident(t);
        }
        let r = self.tenants.get_mut(t).expect("made resident above");
        let before = out.len();
        let effect = r.model.feedback(target, verdict, out);
        r.dirty = true;
        self.count_updates(&out[before..]);
        self.save(t)?;
        Ok(effect)
    }

    /// A look over the resident tenants for gauges: their memory, how many
    /// are still warming up, and the `top` with the most events.
    pub fn census(&self, top: usize) -> Census {
        let mut c = Census::default();
        let mut busiest: Vec<(u64, &TenantId)> = Vec::new();
        for (t, r) in &self.tenants {
            c.resident_bytes += r.model.resident_bytes();
            if !r.model.is_warm(&self.cfg) {
                c.warming += 1;
            }
            if top > 0 {
                busiest.push((r.model.events(), t));
            }
        }
        if busiest.len() > top {
            busiest.select_nth_unstable_by(top, |a, b| b.0.cmp(&a.0).then_with(|| a.1.cmp(b.1)));
            busiest.truncate(top);
        }
        c.busiest = busiest.into_iter().map(|(n, t)| (n, t.clone())).collect();
        c
    }

    /// Summaries of the resident tenants, sorted by tenant.
    pub fn summaries(&self) -> Vec<TenantSummary> {
        let mut v: Vec<TenantSummary> = self
            .tenants
            .values()
            .map(|r| r.model.summary(&self.cfg))
            .collect();
        v.sort_by(|a, b| a.tenant.cmp(&b.tenant));
        v
    }

    /// A tenant's page: from memory when resident, else read from the
    /// store without making it resident. `None` when neither has it (a
    /// snapshot that fails to decode counts as absent).
    pub fn detail(&mut self, t: &TenantId) -> Option<TenantDetail> {
        if let Some(r) = self.tenants.get(t) {
            return Some(r.model.detail(&self.cfg));
        }
        let bytes = self.store.load(t).ok()??;
        let mut m = snapshot::decode(&bytes, t).ok()?;
        m.set_zone(self.cfg.zone(t));
        Some(m.detail(&self.cfg))
    }

    /// Advance event time to `now` for every resident tenant: resolve quiet
    /// episodes, close volume intervals, evict idle tenants. Tenants with
    /// nothing due (no event since their last advance, no interval boundary
    /// or episode expiry passed) are skipped, so the cost is in the tenants
    /// that are active or due, not in all that are resident.
    pub fn advance(&mut self, now: DateTime<Utc>, out: &mut Vec<AlertUpdate>) {
        let now_ms = now.timestamp_millis();
        let before = out.len();
        let c = self.cfg.config();
        let idle = c.idle_evict_after.as_millis_i64();
        let iv = c.volume_interval.as_millis_i64().max(1);
        let cd = c.cooldown.as_millis_i64();
        let mut due: Vec<TenantId> = Vec::new();
        let mut idle_ids = Vec::new();
        for (t, r) in &self.tenants {
            if now_ms >= r.due_ms {
                due.push(t.clone());
            }
            if r.last_event_ms != i64::MIN && now_ms.saturating_sub(r.last_event_ms) >= idle {
                idle_ids.push(t.clone());
            }
        }
        due.sort();
        for t in due {
            let r = self.tenants.get_mut(&t).expect("listed above");
            let hits = r.model.budget_hits();
            r.model.advance(now_ms, &self.cfg, out);
            r.dirty = true;
            self.stats.budget_hits += r.model.budget_hits() - hits;
            let boundary = (now_ms.div_euclid(iv) + 1).saturating_mul(iv);
            r.due_ms = boundary.min(r.model.first_expiry_ms(cd));
        }
        idle_ids.sort();
        for t in idle_ids {
            if self.evict(&t) {
                self.stats.evictions_idle += 1;
            }
        }
        self.count_updates(&out[before..]);
    }

    /// Snapshot every resident tenant whose model changed since the store
    /// last had it (they stay resident). Every one is attempted; the first
    /// error is returned.
    pub fn flush(&mut self) -> Result<(), StoreError> {
        let mut first = None;
        for t in self.changed_tenants() {
            if let Err(e) = self.save(&t) {
                first.get_or_insert(e);
            }
        }
        first.map_or(Ok(()), Err)
    }

    pub fn stats(&self) -> &EngineStats {
        &self.stats
    }

    /// A resident tenant's model.
    pub fn tenant(&self, t: &TenantId) -> Option<&TenantModel> {
        self.tenants.get(t).map(|r| &r.model)
    }

    /// A resident tenant's snapshot bytes (what `flush` would save).
    pub fn snapshot(&self, t: &TenantId) -> Option<Vec<u8>> {
        self.tenant(t).map(snapshot::encode)
    }

    /// Sum of resident models' [`TenantModel::resident_bytes`].
    pub fn resident_bytes(&self) -> usize {
        self.tenants
            .values()
            .map(|r| r.model.resident_bytes())
            .sum()
    }
}
