//! A lane: one sink target's worker thread, with its bounded queue, retry
//! schedule, spool and open episodes. Every update of the target passes
//! through it in `send` order.
//!
//! ```text
//! queue ─▶ take (episode filter) ─▶ memory ─▶ deliver ── ok ──▶ ack released
//!                                     │           └─ retry ─▶ spool (fsync) ─▶ ack released
//!                                     └─ while backing off ──▶ spool (fsync) ─▶ ack released
//!                                           spool ─▶ deliver after the backoff, oldest first
//! ```
//!
//! Order: the spool always holds older entries than memory, and memory is
//! delivered only when the spool is empty, so the target sees updates in the
//! order they were sent. An entry's `Ack` is dropped only once the target
//! took it (or refused it for good) or once it is durably in the spool.
//! Without a spool directory, entries wait in memory with their acks held;
//! when memory holds `queue_capacity` of them the lane stops taking from its
//! queue, so `send` blocks (backpressure reaches the input).
//!
//! Episodes: the lane keeps the open episodes it took a `Fired` for (and
//! persists them beside the spool before any of their acks is released). A
//! second `Fired` of an open episode is skipped; a `Resolved` carries the
//! episode's alert along (Alertmanager resolves by labels); a `Resolved`
//! of one of the last 4096 episodes it resolved is skipped (a replay), and
//! one for an episode it never fired is skipped unless the sink can resolve
//! without the alert and a route sends the tenant here (an episode fired
//! before the lane had state, e.g. without a spool directory, across a
//! restart). The open episodes are what Alertmanager targets re-send every
//! `resend_interval`.
//!
//! Shutdown (the dispatcher drops the queue's sender): what is in memory
//! gets one more delivery attempt, the rest goes to the spool; without a
//! spool the lane keeps retrying until the deadline and then *forgets* the
//! remaining acks (never dropping them: a dropped ack would acknowledge an
//! undelivered update), so their records are consumed again after a restart.

use std::collections::{BTreeMap, HashSet, VecDeque};
use std::io;
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use tollgate_detect::{Alert, AlertUpdate};
use tollgate_events::Ack;

use crate::config::DeliveryConfig;
use crate::metrics::LaneMetrics;
use crate::sinks::{Deliver, DeliveryError, Entry};
use crate::spool::{write_atomic, Spool};

/// An update on its way to one lane.
pub(crate) struct LaneMsg {
    pub update: Arc<AlertUpdate>,
    /// For a `Resolved`: whether a route sends its tenant to this sink.
    pub routed: bool,
    pub ack: Option<Ack>,
}

/// How a lane ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LaneReport {
    pub sink: String,
    pub target: usize,
    /// Entries left in the spool for the next start.
    pub spooled: usize,
    /// Entries neither delivered nor spooled at the deadline; their acks
    /// were never released.
    pub abandoned: usize,
    /// The lane finished before the deadline.
    pub finished: bool,
}

/// Exponential backoff with jitter: the n-th delay is uniform in
/// `[d/2, d]` for `d = min(max, initial · 2ⁿ)`.
pub(crate) struct Backoff {
    initial: Duration,
    max: Duration,
    current: Option<Duration>,
    rng: u64,
}

impl Backoff {
    pub fn new(initial: Duration, max: Duration, seed: u64) -> Backoff {
        Backoff {
            initial,
            max,
            current: None,
            rng: seed | 1,
        }
    }

    pub fn next_delay(&mut self) -> Duration {
        let d = match self.current {
            None => self.initial,
            Some(c) => c.saturating_mul(2).min(self.max),
        };
        self.current = Some(d);
        // xorshift64
        self.rng ^= self.rng << 13;
        self.rng ^= self.rng >> 7;
        self.rng ^= self.rng << 17;
        let half = d / 2;
        half + half.mul_f64((self.rng % 1_000_001) as f64 / 1_000_000.0)
    }

    pub fn reset(&mut self) {
        self.current = None;
    }
}

/// How many resolved episode ids a lane remembers, so that a replayed
/// `Resolved` is recognised as no state change.
const RECENTLY_RESOLVED: usize = 4096;

/// The open (and recently resolved) episodes of a target, persisted as
/// `episodes.json`.
struct Episodes {
    open: BTreeMap<String, Alert>,
    resolved: VecDeque<String>,
    resolved_set: HashSet<String>,
    dir: Option<PathBuf>,
    dirty: bool,
}

#[derive(serde::Serialize, serde::Deserialize)]
struct EpisodesFile<A> {
    open: Vec<A>,
    resolved: Vec<String>,
}

impl Episodes {
    fn load(dir: Option<PathBuf>) -> io::Result<Episodes> {
        let mut e = Episodes {
            open: BTreeMap::new(),
            resolved: VecDeque::new(),
            resolved_set: HashSet::new(),
            dir,
            dirty: false,
        };
        if let Some(d) = &e.dir {
            match std::fs::read(d.join("episodes.json")) {
                Ok(bytes) => match serde_json::from_slice::<EpisodesFile<Alert>>(&bytes) {
                    Ok(f) => {
                        for a in f.open {
                            e.open.insert(a.episode.clone(), a);
                        }
                        for id in f.resolved {
                            e.remember_resolved(id);
                        }
                    }
                    Err(err) => tracing::error!(
                        dir = %d.display(),
                        error = %err,
                        "unreadable episodes.json: open episodes forgotten"
                    ),
                },
                Err(err) if err.kind() == io::ErrorKind::NotFound => {}
                Err(err) => return Err(err),
            }
        }
        e.dirty = false;
        Ok(e)
    }

    fn remember_resolved(&mut self, id: String) {
        if self.resolved_set.insert(id.clone()) {
            self.resolved.push_back(id);
            if self.resolved.len() > RECENTLY_RESOLVED {
                if let Some(old) = self.resolved.pop_front() {
                    self.resolved_set.remove(&old);
                }
            }
        }
        self.dirty = true;
    }

    fn persist(&mut self) -> io::Result<()> {
        if !self.dirty {
            return Ok(());
        }
        if let Some(d) = &self.dir {
            let f = EpisodesFile {
                open: self.open.values().collect(),
                resolved: self.resolved.iter().cloned().collect(),
            };
            write_atomic(d, "episodes.json", &serde_json::to_vec(&f)?, true)?;
        }
        self.dirty = false;
        Ok(())
    }
}

pub(crate) struct Lane {
    pub sink_name: String,
    pub target: usize,
    rx: flume::Receiver<LaneMsg>,
    /// Disconnected when shutdown starts; wakes a lane that is not reading
    /// its queue (memory full, backing off).
    stop: flume::Receiver<()>,
    deadline: Arc<OnceLock<Instant>>,
    sink: Box<dyn Deliver>,
    spool: Option<Spool>,
    /// Taken, not yet delivered nor spooled, in order; `acks[i]` is
    /// `mem[i]`'s.
    mem: VecDeque<Entry>,
    acks: VecDeque<Option<Ack>>,
    episodes: Episodes,
    backoff: Backoff,
    /// Set after a failure: no delivery before this instant.
    retry_at: Option<Instant>,
    next_resend: Option<Instant>,
    cfg: DeliveryConfig,
    metrics: Arc<LaneMetrics>,
}

/// What a lane needs besides its sink.
pub(crate) struct LaneParts {
    pub sink_name: String,
    pub target: usize,
    pub rx: flume::Receiver<LaneMsg>,
    pub stop: flume::Receiver<()>,
    pub deadline: Arc<OnceLock<Instant>>,
    pub dir: Option<PathBuf>,
    pub cfg: DeliveryConfig,
    pub metrics: Arc<LaneMetrics>,
}

impl Lane {
    /// Opens the spool and episodes; the sink is built by the caller on
    /// this thread.
    pub fn open(p: LaneParts, sink: Box<dyn Deliver>) -> io::Result<Lane> {
        let spool = match &p.dir {
            Some(d) => {
                let (s, rec) = Spool::open(
                    d,
                    p.cfg.spool_segment_bytes,
                    p.cfg.spool_max_bytes,
                    p.metrics.clone(),
                )?;
                if rec.entries > 0 || rec.truncated_bytes > 0 {
                    tracing::info!(
                        sink = %p.sink_name,
                        target = p.target,
                        entries = rec.entries,
                        bytes = rec.bytes,
                        truncated_bytes = rec.truncated_bytes,
                        "alert spool recovered"
                    );
                }
                Some(s)
            }
            None => None,
        };
        let episodes = Episodes::load(p.dir.clone())?;
        // Jitter only needs lanes (and processes) not to retry in step.
        let seed = {
            use std::hash::BuildHasher;
            std::collections::hash_map::RandomState::new()
                .hash_one((p.sink_name.as_str(), p.target))
        };
        let next_resend = sink
            .resend_interval()
            .map(|_| Instant::now() + Duration::from_millis(100));
        Ok(Lane {
            sink_name: p.sink_name,
            target: p.target,
            rx: p.rx,
            stop: p.stop,
            deadline: p.deadline,
            sink,
            spool,
            mem: VecDeque::new(),
            acks: VecDeque::new(),
            episodes,
            backoff: Backoff::new(p.cfg.backoff_initial.0, p.cfg.backoff_max.0, seed),
            retry_at: None,
            next_resend,
            cfg: p.cfg,
            metrics: p.metrics,
        })
    }

    fn spool_len(&self) -> usize {
        self.spool.as_ref().map_or(0, Spool::len)
    }

    /// Runs until the queue is closed and the lane has finished (or the
    /// deadline passed).
    pub fn run(mut self) -> LaneReport {
        let mut closed = false;
        loop {
            let now = Instant::now();
            if self.retry_at.is_some() {
                // Failing: whatever waits in memory goes to the spool, so
                // its acks are released (a no-op without a spool).
                self.spool_mem();
            }
            if self.retry_at.is_none()
                && self.spool_len() == 0
                && self.next_resend.is_some_and(|t| t <= now)
            {
                self.resend();
            }
            let backlog = self.mem.len() + self.spool_len();
            if !closed {
                let waiting = self.retry_at.filter(|t| *t > now);
                if backlog == 0 {
                    // Idle: wait for an update or the next re-send.
                    let r = match self.next_resend {
                        Some(t) => self.rx.recv_deadline(t),
                        None => self
                            .rx
                            .recv()
                            .map_err(|_| flume::RecvTimeoutError::Disconnected),
                    };
                    match r {
                        Ok(m) => {
                            self.take(m);
                            self.take_ready();
                        }
                        Err(flume::RecvTimeoutError::Timeout) => continue,
                        Err(flume::RecvTimeoutError::Disconnected) => closed = true,
                    }
                } else if let Some(t) = waiting {
                    // Backing off: spool arrivals at once (releasing their
                    // acks) until the retry time; without a spool, hold them
                    // in memory up to the queue capacity.
                    if self.mem.len() >= self.cfg.queue_capacity {
                        if let Err(flume::RecvTimeoutError::Disconnected) =
                            self.stop.recv_deadline(t)
                        {
                            closed = true;
                        }
                        continue;
                    }
                    match self.rx.recv_deadline(t) {
                        Ok(m) => {
                            self.take(m);
                            self.take_ready();
                            self.spool_mem();
                            continue;
                        }
                        Err(flume::RecvTimeoutError::Timeout) => {}
                        Err(flume::RecvTimeoutError::Disconnected) => closed = true,
                    }
                } else {
                    self.take_ready();
                    if self.spool_len() > 0 {
                        // Catching up on the spool: new arrivals queue
                        // behind it on disk rather than hold their acks.
                        self.spool_mem();
                    }
                }
            }
            if closed {
                if self.spool_len() > 0 || self.retry_at.is_some() {
                    // The spool (if any) keeps the rest for the next start.
                    self.spool_mem();
                }
                if self.mem.is_empty() {
                    break;
                }
                if self.deadline.get().is_some_and(|d| Instant::now() >= *d) {
                    // Out of time: abandon the rest (acks never released).
                    break;
                }
                if let Some(t) = self.retry_at.filter(|t| *t > Instant::now()) {
                    let deadline = self.deadline.get().copied();
                    if deadline.is_none_or(|d| t >= d) {
                        break;
                    }
                    std::thread::sleep(t.saturating_duration_since(Instant::now()));
                }
            }
            self.deliver_step();
        }
        self.finish()
    }

    /// Takes whatever is queued now, up to the batch size and memory cap.
    fn take_ready(&mut self) {
        let cap = self.cfg.queue_capacity.max(self.sink.max_batch());
        while self.mem.len() < cap {
            match self.rx.try_recv() {
                Ok(m) => self.take(m),
                Err(_) => break,
            }
        }
    }

    /// Applies the episode filter; queues the entry in memory.
    fn take(&mut self, m: LaneMsg) {
        let fired = match &*m.update {
            AlertUpdate::Fired(a) => {
                if self.episodes.open.contains_key(&a.episode) {
                    LaneMetrics::add(&self.metrics.skipped, 1);
                    return;
                }
                self.episodes.open.insert(a.episode.clone(), a.clone());
                self.episodes.dirty = true;
                None
            }
            AlertUpdate::Resolved { episode, .. } => match self.episodes.open.remove(episode) {
                Some(a) => {
                    self.episodes.remember_resolved(episode.clone());
                    Some(a)
                }
                None if m.routed
                    && self.sink.accepts_unknown_resolved()
                    && !self.episodes.resolved_set.contains(episode) =>
                {
                    None
                }
                None => {
                    LaneMetrics::add(&self.metrics.skipped, 1);
                    return;
                }
            },
        };
        self.mem.push_back(Entry {
            update: (*m.update).clone(),
            fired,
        });
        self.acks.push_back(m.ack);
    }

    fn persist_episodes(&mut self) {
        if let Err(e) = self.episodes.persist() {
            self.metrics.error_now();
            tracing::error!(
                sink = %self.sink_name,
                target = self.target,
                error = %e,
                "cannot persist open alert episodes"
            );
        }
    }

    /// Moves every in-memory entry to the spool (one fsync) and releases
    /// their acks. Without a spool, or when the write fails, they stay.
    fn spool_mem(&mut self) {
        if self.mem.is_empty() || self.spool.is_none() {
            return;
        }
        self.persist_episodes();
        let payloads: Vec<Vec<u8>> = self
            .mem
            .iter()
            .map(|e| serde_json::to_vec(e).expect("json"))
            .collect();
        let spool = self.spool.as_mut().expect("checked");
        match spool.append(payloads.iter().map(Vec::as_slice)) {
            Ok(()) => {
                self.mem.clear();
                self.acks.clear();
            }
            Err(e) => {
                self.metrics.error_now();
                tracing::error!(
                    sink = %self.sink_name,
                    target = self.target,
                    dir = %spool.dir().display(),
                    error = %e,
                    "cannot write the alert spool: updates held in memory"
                );
            }
        }
    }

    /// One delivery attempt: the spool's oldest entries if any, else
    /// memory's.
    fn deliver_step(&mut self) {
        if self.mem.is_empty() && self.spool_len() == 0 {
            return;
        }
        self.persist_episodes();
        let retrying = self.retry_at.is_some();
        if retrying {
            LaneMetrics::add(&self.metrics.retries, 1);
        }
        let n = self.sink.max_batch().max(1);
        if self.spool_len() > 0 {
            let spool = self.spool.as_mut().expect("non-empty");
            let batch = match spool.peek(n) {
                Ok(raw) => {
                    let mut batch = Vec::with_capacity(raw.len());
                    for r in &raw {
                        match serde_json::from_slice::<Entry>(r) {
                            Ok(e) => batch.push(e),
                            Err(_) => break,
                        }
                    }
                    batch
                }
                Err(e) => {
                    tracing::error!(sink = %self.sink_name, target = self.target, error = %e,
                        "unreadable alert spool entry");
                    Vec::new()
                }
            };
            if batch.is_empty() {
                // The oldest entry cannot be read back: drop it, counted.
                LaneMetrics::add(&self.metrics.rejected, 1);
                self.metrics.error_now();
                if let Err(e) = spool.pop(1) {
                    tracing::error!(sink = %self.sink_name, error = %e, "alert spool");
                }
                return;
            }
            let out = self.sink.deliver(&batch);
            LaneMetrics::add(&self.metrics.delivered, out.delivered as u64);
            let mut popped = out.delivered;
            let failed = match out.error {
                None => None,
                Some(DeliveryError::Reject(why)) => {
                    self.rejected(&batch[out.delivered], &why);
                    popped += 1;
                    None
                }
                Some(DeliveryError::Retry(why)) => Some(why),
            };
            let spool = self.spool.as_mut().expect("non-empty");
            if let Err(e) = spool.pop(popped) {
                self.metrics.error_now();
                tracing::error!(sink = %self.sink_name, error = %e, "alert spool cursor");
            }
            match failed {
                Some(why) => self.failed(&why),
                None => self.healthy(),
            }
            return;
        }
        let n = n.min(self.mem.len());
        let out = self.sink.deliver(&self.mem.make_contiguous()[..n]);
        LaneMetrics::add(&self.metrics.delivered, out.delivered as u64);
        self.mem.drain(..out.delivered);
        self.acks.drain(..out.delivered);
        match out.error {
            None => self.healthy(),
            Some(DeliveryError::Reject(why)) => {
                let e = self.mem.pop_front().expect("the refused entry");
                self.acks.pop_front();
                self.rejected(&e, &why);
                self.healthy();
            }
            Some(DeliveryError::Retry(why)) => {
                self.failed(&why);
                self.spool_mem();
            }
        }
    }

    fn rejected(&self, e: &Entry, why: &str) {
        LaneMetrics::add(&self.metrics.rejected, 1);
        self.metrics.error_now();
        tracing::error!(
            sink = %self.sink_name,
            target = self.target,
            tenant = e.tenant(),
            episode = e.episode(),
            error = why,
            "alert refused by the sink: dropped"
        );
    }

    fn failed(&mut self, why: &str) {
        LaneMetrics::add(&self.metrics.failed_attempts, 1);
        self.metrics.error_now();
        let delay = self.backoff.next_delay();
        self.retry_at = Some(Instant::now() + delay);
        tracing::warn!(
            sink = %self.sink_name,
            target = self.target,
            error = why,
            retry_in_ms = delay.as_millis() as u64,
            "alert delivery failed"
        );
    }

    fn healthy(&mut self) {
        if self.retry_at.take().is_some() {
            self.backoff.reset();
            // Alertmanager may have timed our alerts out while it was
            // unreachable: re-send them as soon as the backlog is through.
            if self.next_resend.is_some() {
                self.next_resend = Some(Instant::now());
            }
        }
    }

    /// Re-sends the open episodes' alerts (Alertmanager).
    fn resend(&mut self) {
        let Some(every) = self.sink.resend_interval() else {
            self.next_resend = None;
            return;
        };
        self.next_resend = Some(Instant::now() + every);
        if self.episodes.open.is_empty() {
            return;
        }
        let active: Vec<&Alert> = self.episodes.open.values().collect();
        match self.sink.resend(&active) {
            Ok(()) => LaneMetrics::add(&self.metrics.resends, 1),
            Err(DeliveryError::Retry(why) | DeliveryError::Reject(why)) => {
                LaneMetrics::add(&self.metrics.failed_attempts, 1);
                self.metrics.error_now();
                tracing::warn!(sink = %self.sink_name, target = self.target, error = %why,
                    "re-sending active alerts failed");
                self.next_resend = Some(Instant::now() + every.min(self.backoff.next_delay()));
            }
        }
    }

    fn finish(mut self) -> LaneReport {
        // Updates still queued (shutdown cut the wait short) must not be
        // dropped with the queue: that would release their acks. Spool
        // them if possible, else abandon them below.
        while let Ok(m) = self.rx.try_recv() {
            self.take(m);
        }
        self.spool_mem();
        self.persist_episodes();
        let abandoned = self.mem.len();
        if abandoned > 0 {
            tracing::error!(
                sink = %self.sink_name,
                target = self.target,
                abandoned,
                "alert updates undelivered at shutdown: their records stay unacknowledged"
            );
        }
        // Never drop these: dropping would acknowledge undelivered updates.
        for ack in self.acks.drain(..) {
            std::mem::forget(ack);
        }
        if let Some(s) = self.spool.as_mut() {
            if let Err(e) = s.close() {
                tracing::error!(sink = %self.sink_name, error = %e, "alert spool close");
            }
        }
        self.metrics
            .spool_entries
            .store(self.spool_len() as u64, Ordering::Relaxed);
        LaneReport {
            sink: self.sink_name.clone(),
            target: self.target,
            spooled: self.spool_len(),
            abandoned,
            finished: true,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_with_jitter_up_to_the_max() {
        let mut b = Backoff::new(Duration::from_millis(100), Duration::from_secs(1), 42);
        let ds: Vec<Duration> = (0..8).map(|_| b.next_delay()).collect();
        let caps = [100, 200, 400, 800, 1000, 1000, 1000, 1000];
        for (d, cap) in ds.iter().zip(caps) {
            let cap = Duration::from_millis(cap);
            assert!(*d >= cap / 2 && *d <= cap, "{d:?} vs {cap:?}");
        }
        b.reset();
        assert!(b.next_delay() <= Duration::from_millis(100));
    }
}
