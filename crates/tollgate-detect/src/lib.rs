//! `tollgate-detect` is Tollgate's per-tenant detection engine: it turns
//! normalized [`Event`](tollgate_events::Event)s into scores, alert episodes
//! and explanations, with one isolated, memory-bounded model per tenant. It is
//! pure — no async runtime, no network, no clock: time is the events'
//! timestamps or the `now` handed to [`Engine::advance`] — so replays are
//! deterministic. The one exception is [`DirStore`], a file-per-tenant
//! snapshot store, kept in its own module behind the [`ModelStore`] trait.
//!
//! # Layout
//!
//! - [`config`]: [`DetectConfig`] (serde, unknown keys rejected) →
//!   [`DetectConfig::check`] → [`CheckedConfig`], the only form the engine takes.
//! - [`cards`]: per-source model cards (`models/*.toml`): numeric-model
//!   parameters and cold-start priors, no tenant data.
//! - [`features`]: stateless featurization of one event (hashed keys,
//!   log-scaled numbers, hour of week in the tenant's zone), allocation-free.
//! - [`sketch`]: bounded, time-decayed categorical tables (novelty, rarity)
//!   and per-principal sliding windows.
//! - [`numeric`]: the per-source Gaussian mixture (fitted with linfa, scored
//!   with fixed arrays).
//! - [`volume`]: the seasonality-aware interval detector, usable on its own
//!   (`feed(interval_start, value) → score`, e.g. for NAB series).
//! - [`calibrate`]: per-detector streaming quantiles: raw score → grade.
//! - [`model`]: [`TenantModel`], the detectors, warm-up, episodes,
//!   explanations.
//! - [`alert`]: [`Detector`], [`EventScore`], [`Alert`], [`AlertUpdate`].
//! - [`snapshot`]: versioned, BLAKE3-checksummed postcard encoding of a model.
//! - [`store`]: [`ModelStore`], [`MemStore`], [`DirStore`] (the only I/O).
//! - [`engine`]: [`Engine`], the resident set (LRU + idle eviction) and
//!   [`EngineStats`].
//!
//! # Use
//!
//! ```
//! use tollgate_detect::{DetectConfig, Engine, MemStore};
//! use tollgate_events::{Event, Source, TenantId};
//!
//! let cfg = DetectConfig::default().check().expect("valid config");
//! let mut engine = Engine::new(cfg, Box::new(MemStore::new()));
//! let mut updates = Vec::new();
//! let ev = Event::new(TenantId::new("acme").unwrap(), Source::Apigw, "2026-03-02T09:30:00Z".parse().unwrap());
//! let score = engine.process(&ev, &mut updates);
//! assert!(!score.warm, "no alerts during warm-up");
//! engine.advance("2026-03-02T10:00:00Z".parse().unwrap(), &mut updates);
//! engine.flush().unwrap();
//! ```
//!
//! Invariants: a tenant's scores depend only on its own events and the model
//! cards; a score and an alert, once emitted, never change; every dropped bit
//! of state is counted in [`EngineStats`].

pub mod alert;
pub mod calibrate;
pub mod cards;
pub mod config;
pub mod engine;
pub mod features;
pub mod hash;
pub mod model;
pub mod numeric;
pub mod sketch;
pub mod snapshot;
pub mod store;
pub mod volume;

pub use alert::{Alert, AlertUpdate, Contribution, Detector, DetectorScore, EventScore, Severity};
pub use cards::{ModelCard, ModelCards};
pub use config::{CheckedConfig, ConfigError, ConfigErrors, DetectConfig, Dur, Floors};
pub use engine::{Census, Engine, EngineStats};
pub use model::{
    Benign, FeedbackEffect, FeedbackTarget, TenantCounters, TenantDetail, TenantModel,
    TenantSummary, TopValue, Verdict, Warmup,
};
pub use snapshot::{ShapeError, SnapshotError};
pub use store::{DirStore, MemStore, ModelStore, StoreError};
pub use volume::{Season, VolumeDetector, VolumeParams, VolumeScore};

/// A one-thread rayon pool made of the calling thread, returned by
/// [`refits_on_this_thread`]; keep it for as long as the thread scores.
pub struct RefitPool {
    _pool: rayon_core::ThreadPool,
}

/// Makes the numeric model's refits run on the calling thread.
///
/// linfa's k-means (the mixture's initialisation) runs its assignment steps
/// as rayon parallel iterators, which by default go to a process-wide pool
/// of one thread per core. A scoring thread then hands each refit to that
/// pool and waits, and the pool's threads spin for work between refits —
/// CPU taken from the other scoring threads, which already use every core.
/// Called once at the start of a thread that owns an [`Engine`], this makes
/// that thread a one-thread rayon pool of its own, so its refits run inline.
/// Results are the same either way (the assignment steps are independent
/// per row). `None` if rayon refused (the thread already belongs to a pool),
/// in which case refits go to the global pool as before.
pub fn refits_on_this_thread() -> Option<RefitPool> {
    rayon_core::ThreadPoolBuilder::new()
        .num_threads(1)
        .use_current_thread()
        .build()
        .ok()
        .map(|pool| RefitPool { _pool: pool })
}
