//! Bounded, time-decayed categorical memory: the novelty/rarity tables.
//!
//! [`SeenTable`] is a bucketed fingerprint table (4 slots per bucket, 8 bytes
//! per slot: a 24-bit fingerprint tagged with its feature kind, a saturating
//! count and the hour it was last seen). It answers "how often has this value
//! been seen, and when last" for every categorical feature of a tenant, in
//! memory fixed at construction. Counts halve every half-life of event time
//! (applied lazily on touch); when a bucket is full the weakest slot is
//! replaced and, if it still had weight, the replacement is counted as a
//! budget hit. Unlike a count-min sketch, a collision here needs a 24-bit
//! fingerprint match within one bucket (about 2.4e-7 per lookup), so "first
//! seen" stays trustworthy at the table's occupancy.
//!
//! [`PrincipalTable`] keeps per-principal sliding-window state (request rate,
//! error ratio, distinct destinations) in a bounded bucketed table with
//! least-recently-seen eviction. Nothing here allocates after construction.

use serde::{Deserialize, Serialize};

use crate::snapshot::{check_buckets, check_finite, check_max, check_time, ShapeError};

/// Which categorical feature a key belongs to. Stored in the slot tag, so
/// kinds never collide with each other.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Kind {
    Issuer = 1,
    // 2 was `Principal`: principals are counted in `PrincipalCounts`
    PrincipalNet = 3,
    PrincipalUa = 4,
    Domain = 5,
    PrincipalDomain = 6,
    Signature = 7,
    QName = 8,
    Route = 9,
    /// A principal that has had an admin session which ended (entered in
    /// the `PairFilter` when the session is folded into the tenant's
    /// typical size). Until snapshot format 5 the same kind marked any
    /// principal's first admin call; no format read today holds those.
    PrincipalAdmin = 10,
    /// User-agent families (family + OS) of the whole tenant.
    Ua = 11,
}

pub const KINDS: usize = 12;

/// What the table knew about a key before this touch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Seen {
    /// Decayed count before this event (0 = never seen, or forgotten).
    pub count: u32,
    /// Hours since the key was last seen; `u32::MAX` when novel.
    pub age_h: u32,
}

impl Seen {
    pub const NONE: Seen = Seen {
        count: 0,
        age_h: u32::MAX,
    };
    pub fn novel(self) -> bool {
        self.count == 0
    }
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
struct Slot {
    tag: u32,
    count: u16,
    last: u16,
}

const WAYS: usize = 4;
/// Bytes per slot, for memory accounting.
pub const SLOT_BYTES: usize = std::mem::size_of::<Slot>();

/// The bucketed fingerprint table; see the module docs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SeenTable {
    slots: Vec<Slot>,
    half_life_h: u32,
    /// Live keys per kind (inserted minus replaced), for "N seen before".
    distinct: [u32; KINDS],
    /// Slots that still had weight when replaced: budget hits.
    pub(crate) evictions: u64,
}

impl SeenTable {
    /// A table of about `slots` slots (rounded down to a multiple of 64, at
    /// least 64) whose counts halve every `half_life_h` hours.
    pub fn new(slots: usize, half_life_h: u32) -> Self {
        let buckets = (slots / WAYS / 16).max(1) * 16;
        SeenTable {
            slots: vec![Slot::default(); buckets * WAYS],
            half_life_h: half_life_h.max(1),
            distinct: [0; KINDS],
            evictions: 0,
        }
    }

    pub fn capacity(&self) -> usize {
        self.slots.len()
    }

    pub fn resident_bytes(&self) -> usize {
        self.slots.len() * SLOT_BYTES + std::mem::size_of::<Self>()
    }

    pub fn distinct(&self, kind: Kind) -> u32 {
        self.distinct[kind as usize]
    }

    /// What lookups rely on in a decoded table: whole buckets (at least
    /// one: `locate` indexes a bucket's four slots), a half-life to divide
    /// ages by, and in every used slot a kind below [`KINDS`] (a replaced
    /// slot's kind indexes `distinct`).
    pub(crate) fn check(&self) -> Result<(), ShapeError> {
        check_buckets("slots", self.slots.len(), WAYS)?;
        if self.half_life_h == 0 {
            return Err(ShapeError::new("half_life_h is 0"));
        }
        if let Some(s) = self
            .slots
            .iter()
            .find(|s| s.tag != 0 && (s.tag >> 24) as usize >= KINDS)
        {
            return Err(ShapeError::new(format!(
                "slots holds a key of kind {}, expected below {KINDS}",
                s.tag >> 24
            )));
        }
        Ok(())
    }

    #[inline]
    fn locate(&self, kind: Kind, h: u64) -> (usize, u32) {
        // multiply-shift range reduction on the low 32 bits: bucket i of a
        // table with n/2 buckets is the union of buckets 2i and 2i+1 of the
        // table with n, which makes `halve` exact
        let nb = (self.slots.len() / WAYS) as u64;
        let b = (((h & 0xffff_ffff) * nb) >> 32) as usize;
        let fp = ((h >> 40) as u32) & 0x00ff_ffff;
        (b * WAYS, ((kind as u32) << 24) | fp)
    }

    #[inline]
    fn eff(&self, s: &Slot, hour: u16) -> (u32, u32) {
        // signed: a late event (earlier hour than the slot) has age 0
        let age = (hour.wrapping_sub(s.last) as i16).max(0) as u32;
        // (no division for the usual slot, seen within a half-life)
        let halvings = if age < self.half_life_h {
            0
        } else {
            (age / self.half_life_h).min(16)
        };
        (u32::from(s.count) >> halvings, age)
    }

    /// Look up without learning.
    pub fn peek(&self, kind: Kind, h: u64, hour: u32) -> Seen {
        let hour = hour as u16;
        let (base, tag) = self.locate(kind, h);
        for s in &self.slots[base..base + WAYS] {
            if s.tag == tag {
                let (count, age_h) = self.eff(s, hour);
                return Seen {
                    count,
                    age_h: if count == 0 { u32::MAX } else { age_h },
                };
            }
        }
        Seen::NONE
    }

    /// Return what was known, then count this occurrence.
    #[inline]
    pub fn touch(&mut self, kind: Kind, h: u64, hour: u32) -> Seen {
        let hour16 = hour as u16;
        let (base, tag) = self.locate(kind, h);
        let mut victim = base;
        let mut victim_key = (u32::MAX, 0u32);
        for i in base..base + WAYS {
            let s = self.slots[i];
            if s.tag == tag {
                let (count, age) = self.eff(&s, hour16);
                let slot = &mut self.slots[i];
                slot.count = (count as u16).saturating_add(1).max(1);
                if (hour16.wrapping_sub(slot.last) as i16) > 0 {
                    slot.last = hour16;
                }
                return Seen {
                    count,
                    age_h: if count == 0 { u32::MAX } else { age },
                };
            }
            let key = if s.tag == 0 {
                (0, u32::MAX)
            } else {
                let (c, age) = self.eff(&s, hour16);
                (c, age)
            };
            // weakest first, then oldest
            if key.0 < victim_key.0 || (key.0 == victim_key.0 && key.1 > victim_key.1) {
                victim = i;
                victim_key = key;
            }
        }
        let old = self.slots[victim];
        if old.tag != 0 {
            let k = (old.tag >> 24) as usize;
            self.distinct[k] = self.distinct[k].saturating_sub(1);
            if victim_key.0 > 0 {
                self.evictions += 1;
            }
        }
        self.distinct[kind as usize] += 1;
        self.slots[victim] = Slot {
            tag,
            count: 1,
            last: hour16,
        };
        Seen::NONE
    }

    /// Halve the table in place (fold buckets `2i` and `2i + 1` into `i`,
    /// keeping the strongest slots). Used to stay within the memory budget;
    /// every slot with weight that is dropped counts as an eviction. Returns
    /// false (and does nothing) when the bucket count is odd.
    pub fn halve(&mut self, hour: u32) -> bool {
        let nb = self.slots.len() / WAYS;
        if nb % 2 == 1 {
            return false;
        }
        let half = nb / 2;
        let hour16 = hour as u16;
        for b in 0..half {
            let mut all = [Slot::default(); 2 * WAYS];
            all.copy_from_slice(&self.slots[2 * b * WAYS..(2 * b + 2) * WAYS]);
            all.sort_by_key(|s| {
                let (c, age) = if s.tag == 0 {
                    (0, u32::MAX)
                } else {
                    self.eff(s, hour16)
                };
                (std::cmp::Reverse(c), age, s.tag == 0)
            });
            for s in &all[WAYS..] {
                if s.tag != 0 {
                    let k = (s.tag >> 24) as usize;
                    self.distinct[k] = self.distinct[k].saturating_sub(1);
                    if self.eff(s, hour16).0 > 0 {
                        self.evictions += 1;
                    }
                }
            }
            self.slots[b * WAYS..(b + 1) * WAYS].copy_from_slice(&all[..WAYS]);
        }
        self.slots.truncate(half * WAYS);
        self.slots.shrink_to_fit();
        true
    }
}

/// Membership of (principal, attribute) pairs — the networks and user
/// agents each principal has used — as 16-bit fingerprints in 8-way
/// buckets, most recently used first. Two bytes a pair instead of the
/// `SeenTable`'s eight, because "has this principal used this network
/// before" needs no count, and a tenant has a few pairs per user: with the
/// pairs in the `SeenTable`, a tenant of a thousand users overflowed it and
/// evicted pairs came back as "new network and new user agent" (hundreds of
/// false access alerts per 100k events). Least-recently-used replacement
/// keeps the pairs of active principals; a pair forgotten this way can only
/// cost a false alert if its principal stayed established, which needs it
/// to be active, which keeps its pairs at the front.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PairFilter {
    slots: Vec<u16>,
    /// Pairs dropped from a full bucket: budget hits.
    pub(crate) evictions: u64,
}

const PAIR_WAYS: usize = 8;

impl PairFilter {
    /// About `slots` slots (rounded down to a multiple of 8, at least 8).
    pub fn new(slots: usize) -> Self {
        PairFilter {
            slots: vec![0; (slots / PAIR_WAYS).max(1) * PAIR_WAYS],
            evictions: 0,
        }
    }

    pub fn resident_bytes(&self) -> usize {
        self.slots.len() * 2 + std::mem::size_of::<Self>()
    }

    /// Whole buckets, at least one: `touch` indexes a bucket's eight slots.
    pub(crate) fn check(&self) -> Result<(), ShapeError> {
        check_buckets("slots", self.slots.len(), PAIR_WAYS)
    }

    /// Whether the pair was present; either way it is now its bucket's most
    /// recent entry.
    ///
    /// Each pair has two candidate buckets (bits 0–31 and 16–47 of `h`
    /// pick them, bits 48–63 are the fingerprint): it is looked for in
    /// both and a new pair goes to the emptier one ("two choices"). With
    /// one bucket per pair, a tenant of 1,500 users (an estimated 7,500
    /// pairs in the default 8,192 slots: 7.3 per 8-way bucket, so over a
    /// quarter of the buckets overflow) forgot pairs of principals active
    /// every day — the scenario suite's false "new network and new user
    /// agent" alerts in its largest tenants (its pair evictions: 9,841 →
    /// 52). At 80 % of the slots (random pairs), one choice loses ~7 % of
    /// the pairs and two choices (nearly) none. A pair stored before this
    /// change sits in its first bucket and is still found there.
    #[inline]
    pub fn touch(&mut self, h: u64) -> bool {
        let (b1, b2, fp) = self.place(h);
        let (b, found, end) = if let Some(i) = Self::find(&self.slots, b1, fp) {
            (b1, true, i)
        } else if let Some(i) = Self::find(&self.slots, b2, fp) {
            (b2, true, i)
        } else {
            // fingerprints are never 0 and fill a bucket from the front:
            // its first 0 is its size
            let used = |b: usize| Self::find(&self.slots, b, 0).unwrap_or(PAIR_WAYS);
            let (u1, u2) = (used(b1), used(b2));
            let b = match u1.cmp(&u2) {
                std::cmp::Ordering::Less => b1,
                std::cmp::Ordering::Greater => b2,
                // both equally full: a hash bit picks, so that evictions
                // spread over both
                std::cmp::Ordering::Equal if (h >> 47) & 1 == 0 => b1,
                std::cmp::Ordering::Equal => b2,
            };
            if u1.min(u2) == PAIR_WAYS {
                self.evictions += 1;
            }
            (b, false, PAIR_WAYS - 1)
        };
        let bucket = &mut self.slots[b..b + PAIR_WAYS];
        bucket.copy_within(0..end, 1);
        bucket[0] = fp;
        found
    }

    /// Whether the pair is present, without making it recent.
    pub fn contains(&self, h: u64) -> bool {
        let (b1, b2, fp) = self.place(h);
        Self::find(&self.slots, b1, fp).is_some() || Self::find(&self.slots, b2, fp).is_some()
    }

    /// A pair's two candidate buckets (their first slots) and fingerprint.
    #[inline(always)]
    fn place(&self, h: u64) -> (usize, usize, u16) {
        let nb = (self.slots.len() / PAIR_WAYS) as u64;
        let b1 = (((h & 0xffff_ffff) * nb) >> 32) as usize * PAIR_WAYS;
        let b2 = ((((h >> 16) & 0xffff_ffff) * nb) >> 32) as usize * PAIR_WAYS;
        (b1, b2, ((h >> 48) as u16).max(1))
    }

    #[inline]
    fn find(slots: &[u16], b: usize, fp: u16) -> Option<usize> {
        slots[b..b + PAIR_WAYS].iter().position(|&s| s == fp)
    }
}

/// How many events each principal has had, for "is this principal
/// established" and the surprisal of its first sightings: a 16-bit
/// fingerprint and a 16-bit count per slot (4 bytes), 8-way buckets, the
/// weakest principal of a full bucket replaced (counted when it still had
/// weight). Counts halve together once per half-life of event time.
///
/// Principals used to be counted in the [`SeenTable`] beside domains and
/// issuers, at 8 bytes a slot: a tenant of a thousand users filled the
/// table, an ordinary user's count was pushed out between two of its own
/// events, and its principal never became established — a stolen token
/// used from a new network and a new user agent then raised nothing. At 4
/// bytes a principal, the default budget counts the 1,024 most active.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PrincipalCounts {
    slots: Vec<u32>,
    half_life_h: u32,
    /// Event-time hour of the last halving (`u32::MAX` before the first event).
    epoch_h: u32,
    /// Principals with weight dropped from a full bucket: budget hits.
    pub(crate) evictions: u64,
}

const COUNT_WAYS: usize = 8;

impl PrincipalCounts {
    /// About `slots` slots (rounded down to a multiple of 8, at least 8),
    /// counts halving every `half_life_h` hours.
    pub fn new(slots: usize, half_life_h: u32) -> Self {
        PrincipalCounts {
            slots: vec![0; (slots / COUNT_WAYS).max(1) * COUNT_WAYS],
            half_life_h: half_life_h.max(1),
            epoch_h: u32::MAX,
            evictions: 0,
        }
    }

    pub fn resident_bytes(&self) -> usize {
        self.slots.len() * 4 + std::mem::size_of::<Self>()
    }

    /// Whole buckets, at least one (`touch` indexes a bucket's eight
    /// slots), and a half-life to divide elapsed hours by.
    pub(crate) fn check(&self) -> Result<(), ShapeError> {
        check_buckets("slots", self.slots.len(), COUNT_WAYS)?;
        if self.half_life_h == 0 {
            return Err(ShapeError::new("half_life_h is 0"));
        }
        Ok(())
    }

    #[inline]
    fn locate(&self, h: u64) -> (usize, u32) {
        let nb = (self.slots.len() / COUNT_WAYS) as u64;
        let b = (((h & 0xffff_ffff) * nb) >> 32) as usize * COUNT_WAYS;
        let fp = ((h >> 48) as u32).max(1);
        (b, fp)
    }

    /// Halve every count once per elapsed half-life (a late event never
    /// moves the clock back).
    fn age(&mut self, hour: u32) {
        if self.epoch_h == u32::MAX {
            self.epoch_h = hour;
            return;
        }
        if hour <= self.epoch_h {
            return;
        }
        let halvings = (hour - self.epoch_h) / self.half_life_h;
        if halvings == 0 {
            return;
        }
        self.epoch_h += halvings * self.half_life_h;
        let shift = halvings.min(16);
        for s in &mut self.slots {
            let c = (*s & 0xffff) >> shift;
            *s = if c == 0 { 0 } else { (*s & 0xffff_0000) | c };
        }
    }

    /// The principal's count before this event, then count it.
    #[inline]
    pub fn touch(&mut self, h: u64, hour: u32) -> u32 {
        self.age(hour);
        let (base, fp) = self.locate(h);
        let mut victim = base;
        let mut weakest = u32::MAX;
        for i in base..base + COUNT_WAYS {
            let s = self.slots[i];
            if s == 0 {
                // an empty slot beats any occupied one
                if weakest > 0 {
                    victim = i;
                    weakest = 0;
                }
                continue;
            }
            let c = s & 0xffff;
            if s >> 16 == fp {
                self.slots[i] = (fp << 16) | (c + 1).min(0xffff);
                return c;
            }
            if c < weakest {
                victim = i;
                weakest = c;
            }
        }
        if self.slots[victim] != 0 {
            self.evictions += 1;
        }
        self.slots[victim] = (fp << 16) | 1;
        0
    }

    /// The principal's count, without counting.
    pub fn peek(&self, h: u64) -> u32 {
        let (base, fp) = self.locate(h);
        self.slots[base..base + COUNT_WAYS]
            .iter()
            .find(|&&s| s >> 16 == fp)
            .map_or(0, |s| s & 0xffff)
    }
}

/// `exp(-dt / tau)` for one `tau`, remembering the last `dt` asked: the
/// same factor [`Decayed::at`] computes, one library call fewer per
/// counter that shares it.
#[derive(Debug, Clone, Copy)]
pub struct DecayMemo {
    tau_ms: f64,
    dt: i64,
    f: f64,
}

impl DecayMemo {
    pub fn new(tau_ms: f64) -> Self {
        DecayMemo {
            tau_ms,
            dt: 0,
            f: 1.0,
        }
    }
    #[inline]
    fn factor(&mut self, dt: i64) -> f64 {
        if dt != self.dt {
            self.dt = dt;
            self.f = decay_factor(dt, self.tau_ms);
        }
        self.f
    }
}

/// A count that decays continuously with event time (half-life in ms).
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Decayed {
    pub value: f64,
    pub last_ms: i64,
}

impl Decayed {
    /// A finite value (a NaN would stay NaN through every decay) and a time
    /// event times can be subtracted from.
    pub(crate) fn check(&self) -> Result<(), ShapeError> {
        check_finite("value", [self.value])?;
        check_time("last_ms", self.last_ms)
    }

    /// The value decayed to `now_ms`.
    #[inline]
    pub fn at(&self, now_ms: i64, tau_ms: f64) -> f64 {
        self.decayed(now_ms, |dt| decay_factor(dt, tau_ms))
    }
    /// Decay to `now_ms`, add `x`, return the new value.
    #[inline]
    pub fn add(&mut self, now_ms: i64, tau_ms: f64, x: f64) -> f64 {
        let v = self.at(now_ms, tau_ms) + x;
        self.set(now_ms, v)
    }
    /// [`Decayed::add`] with the decay factor from `memo`, which computes
    /// it once for counters last touched at the same instant (a tenant's
    /// per-kind totals mostly are: the same events touch them).
    #[inline]
    pub fn add_memo(&mut self, now_ms: i64, memo: &mut DecayMemo, x: f64) -> f64 {
        let v = self.decayed(now_ms, |dt| memo.factor(dt)) + x;
        self.set(now_ms, v)
    }
    /// The value times `factor(dt)` for the `dt` > 0 since the last
    /// update (no factor at all for none).
    #[inline]
    fn decayed(&self, now_ms: i64, factor: impl FnOnce(i64) -> f64) -> f64 {
        let dt = (now_ms - self.last_ms).max(0);
        if dt == 0 {
            self.value
        } else {
            self.value * factor(dt)
        }
    }
    #[inline]
    fn set(&mut self, now_ms: i64, v: f64) -> f64 {
        self.value = v;
        self.last_ms = self.last_ms.max(now_ms);
        v
    }
}

/// `exp(-dt / tau)`: how much of a [`Decayed`] count is left after `dt`.
#[inline]
fn decay_factor(dt: i64, tau_ms: f64) -> f64 {
    (-(dt as f64) / tau_ms).exp()
}

/// The networks most of a tenant's traffic comes from (offices, VPN
/// egress), as a space-saving heavy-hitter list of 16 fingerprints with
/// counts and their over-estimation bounds; all counts halve when the total
/// passes 2²⁰, so the shares follow the tenant over time. "Is this network
/// common here" is what tells a principal's first visit to the office
/// network everyone uses from a first visit to a network nobody here uses;
/// the rare networks (homes, attackers) are exactly the ones this list
/// does not need to hold.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct CommonNetworks {
    /// (fingerprint, count, over-estimate) per entry.
    entries: Vec<(u32, u32, u32)>,
    total: u32,
}

const COMMON_NETS: usize = 16;

impl CommonNetworks {
    pub fn resident_bytes(&self) -> usize {
        std::mem::size_of::<Self>() + COMMON_NETS * 12
    }

    /// At most [`COMMON_NETS`] entries (the memory estimate's bound), none
    /// over-estimated by more than its count (`touch` subtracts the one
    /// from the other).
    pub(crate) fn check(&self) -> Result<(), ShapeError> {
        check_max("entries", self.entries.len(), COMMON_NETS)?;
        if let Some(e) = self.entries.iter().find(|e| e.2 > e.1) {
            return Err(ShapeError::new(format!(
                "entries holds a count of {} over-estimated by {}",
                e.1, e.2
            )));
        }
        Ok(())
    }

    /// The share of the tenant's events surely from `key` before this
    /// event, then count it.
    #[inline]
    pub fn touch(&mut self, key: u64) -> f64 {
        let fp = ((key >> 32) as u32).max(1);
        let total = f64::from(self.total.max(1));
        self.total += 1;
        let r = if let Some(e) = self.entries.iter_mut().find(|e| e.0 == fp) {
            e.1 += 1;
            // the count surely earned here, before this event
            f64::from(e.1 - 1 - e.2) / total
        } else if self.entries.len() < COMMON_NETS {
            self.entries.push((fp, 1, 0));
            0.0
        } else {
            let m = self
                .entries
                .iter_mut()
                .min_by_key(|e| e.1)
                .expect("list is full");
            *m = (fp, m.1 + 1, m.1);
            0.0
        };
        if self.total >= 1 << 20 {
            self.total = 0;
            for e in &mut self.entries {
                e.1 /= 2;
                e.2 /= 2;
                self.total += e.1;
            }
        }
        r
    }
}

/// The few most frequent labels of one tenant-level kind, for "typical"
/// values in explanations (space-saving style, labels truncated to 24 bytes
/// so they stay inline and never allocate).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct TopLabels {
    entries: Vec<(u64, u32, compact_str::CompactString)>,
}

pub const TOP_N: usize = 3;
/// Labels are cut to this many bytes.
const LABEL_BYTES: usize = 24;

impl TopLabels {
    /// Offer a key whose decayed count (after this event) is `count`; the
    /// label is computed only if the key enters the list.
    #[inline]
    pub fn offer<'a>(
        &mut self,
        key: u64,
        count: u32,
        label: impl FnOnce() -> std::borrow::Cow<'a, str>,
    ) {
        if let Some(e) = self.entries.iter_mut().find(|e| e.0 == key) {
            e.1 = count;
            return;
        }
        if self.entries.len() < TOP_N {
            self.entries.push((key, count, truncate(&label())));
            return;
        }
        let (imin, min) = self
            .entries
            .iter()
            .enumerate()
            .min_by_key(|(_, e)| e.1)
            .map(|(i, e)| (i, e.1))
            .unwrap_or((0, 0));
        if count > min {
            self.entries[imin] = (key, count, truncate(&label()));
        }
    }

    /// Labels with their decayed counts, most frequent first.
    pub fn entries(&self) -> impl Iterator<Item = (&str, u32)> {
        let mut v: Vec<_> = self.entries.iter().collect();
        v.sort_by(|a, b| b.1.cmp(&a.1).then(a.2.cmp(&b.2)));
        v.into_iter().map(|e| (e.2.as_str(), e.1))
    }

    /// Labels, most frequent first.
    pub fn labels(&self) -> Vec<&str> {
        let mut v: Vec<_> = self.entries.iter().collect();
        v.sort_by(|a, b| b.1.cmp(&a.1).then(a.2.cmp(&b.2)));
        v.into_iter().map(|e| e.2.as_str()).collect()
    }

    pub fn resident_bytes(&self) -> usize {
        TOP_N * std::mem::size_of::<(u64, u32, compact_str::CompactString)>()
    }

    /// At most [`TOP_N`] labels of at most [`LABEL_BYTES`] each: what the
    /// memory estimate counts (a longer label is allocated on the heap).
    pub(crate) fn check(&self) -> Result<(), ShapeError> {
        check_max("entries", self.entries.len(), TOP_N)?;
        if let Some(e) = self.entries.iter().find(|e| e.2.len() > LABEL_BYTES) {
            return Err(ShapeError::new(format!(
                "entries holds a label of {} bytes, at most {LABEL_BYTES} allowed",
                e.2.len()
            )));
        }
        Ok(())
    }
}

fn truncate(s: &str) -> compact_str::CompactString {
    let mut end = s.len().min(LABEL_BYTES);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    compact_str::CompactString::new(&s[..end])
}

/// Sliding-window state of one principal: 24 bytes (a 32-bit fingerprint
/// of the principal and a 32-bit millisecond offset of its last event
/// instead of the full key and time, which took 32).
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct PrincipalState {
    /// Fingerprint of the principal key (never 0; 0 = empty slot).
    pub key: u32,
    /// Event time of the last event: milliseconds after the table's base.
    pub last: u32,
    /// Events in the last minute (exponentially decayed, tau = 60 s).
    pub rate: f32,
    /// Error events in the last minute (same decay).
    pub errors: f32,
    /// Destinations not visited in the previous hour (tau = 1 h).
    pub new_dests: f32,
    /// Networks and user agents first seen for this principal (saturating:
    /// they only word explanations).
    pub nets: u8,
    pub uas: u8,
    /// The principal's usual numeric surprise, in 1/64 nats: a moving
    /// average over its events (1/16 each) of the numeric detector's
    /// excess before this discount. See [`PrincipalState::usual_surprise`].
    pub surprise: u16,
}

/// Weight of one event in [`PrincipalState::surprise`].
pub const SURPRISE_EVENTS: f64 = 16.0;
const SURPRISE_UNIT: f64 = 64.0;

impl PrincipalState {
    /// The principal's usual numeric surprise, in nats.
    #[inline]
    pub fn usual_surprise(&self) -> f64 {
        f64::from(self.surprise) / SURPRISE_UNIT
    }

    /// Moves the usual surprise 1/16 of the way towards `excess` (nats,
    /// ≥ 0; saturating at 1,023 nats).
    #[inline]
    pub fn learn_surprise(&mut self, excess: f64) {
        let u = self.usual_surprise();
        let v = (u + (excess - u) * (1.0 / SURPRISE_EVENTS)) * SURPRISE_UNIT;
        // rounded; the cast saturates (and takes NaN to 0)
        self.surprise = (v + 0.5) as u16;
    }
}

/// [`PrincipalTable::slots`] as a snapshot holds them: in format 8 and
/// before, with 16-bit network and user-agent counts and no surprise.
fn principal_slots<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> Result<Vec<PrincipalState>, D::Error> {
    #[derive(Deserialize)]
    struct Format8 {
        key: u32,
        last: u32,
        rate: f32,
        errors: f32,
        new_dests: f32,
        nets: u16,
        uas: u16,
    }
    if crate::snapshot::decoding_format() > 8 {
        return Vec::<PrincipalState>::deserialize(d);
    }
    let old = Vec::<Format8>::deserialize(d)?;
    Ok(old
        .into_iter()
        .map(|o| PrincipalState {
            key: o.key,
            last: o.last,
            rate: o.rate,
            errors: o.errors,
            new_dests: o.new_dests,
            nets: o.nets.min(255) as u8,
            uas: o.uas.min(255) as u8,
            surprise: 0,
        })
        .collect())
}

/// Window lengths of [`PrincipalState`].
pub const RATE_TAU_MS: f32 = 60_000.0;
pub const DEST_TAU_MS: f32 = 3_600_000.0;

/// A bounded table of [`PrincipalState`], 8 ways per bucket, evicting the
/// least recently seen principal of a full bucket (counted).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PrincipalTable {
    #[serde(deserialize_with = "principal_slots")]
    slots: Vec<PrincipalState>,
    /// Event time (ms) that the slots' `last` offsets count from; moved
    /// forward (and the offsets with it) before they could overflow.
    base_ms: i64,
    pub(crate) evictions: u64,
}

const PWAYS: usize = 8;
pub const PRINCIPAL_BYTES: usize = std::mem::size_of::<PrincipalState>();

#[inline]
fn principal_fp(key: u64) -> u32 {
    ((key >> 32) as u32).max(1)
}

impl PrincipalTable {
    pub fn new(capacity: usize) -> Self {
        let buckets = (capacity / PWAYS).max(1);
        let buckets = 1usize << (usize::BITS - 1 - buckets.leading_zeros());
        PrincipalTable {
            slots: vec![PrincipalState::default(); buckets * PWAYS],
            base_ms: i64::MIN,
            evictions: 0,
        }
    }

    pub fn resident_bytes(&self) -> usize {
        self.slots.len() * PRINCIPAL_BYTES + std::mem::size_of::<Self>()
    }

    /// Whole buckets, a power of two of them (a key's bucket is its bits
    /// masked by the count less one: none at all underflows the mask, any
    /// other count leaves buckets unused), a base that event times can be
    /// subtracted from, and finite windows (an infinite rate is an
    /// infinitely unusual numeric vector at each of the principal's events).
    pub(crate) fn check(&self) -> Result<(), ShapeError> {
        check_buckets("slots", self.slots.len(), PWAYS)?;
        let nb = self.slots.len() / PWAYS;
        if !nb.is_power_of_two() {
            return Err(ShapeError::new(format!(
                "slots has {nb} buckets, expected a power of two"
            )));
        }
        if self.base_ms != i64::MIN {
            check_time("base_ms", self.base_ms)?;
        }
        check_finite(
            "slots",
            self.slots
                .iter()
                .flat_map(|s| [s.rate, s.errors, s.new_dests])
                .map(f64::from),
        )
    }

    /// `now_ms` as an offset from the base (0 for a late event before
    /// it), rebasing when offsets near 2³¹ ms (about 25 days): every slot
    /// moves back by the same amount, saturating at 0, where its windows
    /// have long decayed to nothing.
    #[inline]
    fn offset(&mut self, now_ms: i64) -> u32 {
        if self.base_ms == i64::MIN {
            self.base_ms = now_ms;
        }
        let mut rel = now_ms - self.base_ms;
        if rel >= 1 << 31 {
            let shift = rel - (1 << 30);
            self.base_ms += shift;
            for s in &mut self.slots {
                s.last = (i64::from(s.last) - shift).max(0) as u32;
            }
            rel -= shift;
        }
        rel.max(0) as u32
    }

    #[cfg(test)]
    pub(crate) fn states(&self) -> &[PrincipalState] {
        &self.slots
    }

    /// The state of `key`, if tracked.
    pub fn peek(&self, key: u64) -> Option<&PrincipalState> {
        let nb = self.slots.len() / PWAYS;
        let base = ((key >> 17) as usize & (nb - 1)) * PWAYS;
        let fp = principal_fp(key);
        self.slots[base..base + PWAYS].iter().find(|s| s.key == fp)
    }

    /// The state of `key` (key must be non-zero), created if absent, with its
    /// windows decayed to `now_ms`. Returns whether it was created.
    #[inline]
    pub fn get(&mut self, key: u64, now_ms: i64) -> (&mut PrincipalState, bool) {
        let nb = self.slots.len() / PWAYS;
        let base = ((key >> 17) as usize & (nb - 1)) * PWAYS;
        let fp = principal_fp(key);
        let now_s = self.offset(now_ms);
        let mut hit = None;
        let mut victim = base;
        for i in base..base + PWAYS {
            let s = &self.slots[i];
            if s.key == fp {
                hit = Some(i);
                break;
            }
            if s.key == 0 {
                if self.slots[victim].key != 0 {
                    victim = i;
                }
            } else if self.slots[victim].key != 0 && s.last < self.slots[victim].last {
                victim = i;
            }
        }
        let (i, created) = match hit {
            Some(i) => (i, false),
            None => {
                if self.slots[victim].key != 0 {
                    self.evictions += 1;
                }
                self.slots[victim] = PrincipalState {
                    key: fp,
                    last: now_s,
                    ..Default::default()
                };
                (victim, true)
            }
        };
        let s = &mut self.slots[i];
        if now_s > s.last {
            let dt = (now_s - s.last) as f32;
            let fr = (-dt / RATE_TAU_MS).exp();
            s.rate *= fr;
            s.errors *= fr;
            s.new_dests *= (-dt / DEST_TAU_MS).exp();
            s.last = now_s;
        }
        (s, created)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hash::hash_u64;

    #[test]
    fn a_memoized_decay_is_the_same_number() {
        let tau = 3_600_000.0;
        let mut memo = DecayMemo::new(tau);
        let (mut a, mut b) = (Decayed::default(), Decayed::default());
        let (mut c, mut d) = (Decayed::default(), Decayed::default());
        // a/b are touched at every instant, c/d every other one: the
        // memo's factor is reused and recomputed in turn, and each memoized
        // counter equals its twin decayed by `add`, bit for bit
        let times = [0i64, 5, 5, 90_000, 90_000, 7_200_000, 7_200_001, 9_000_000];
        for (i, now) in times.into_iter().enumerate() {
            let x = a.add(now, tau, 1.0);
            assert_eq!(b.add_memo(now, &mut memo, 1.0).to_bits(), x.to_bits());
            if i % 2 == 1 {
                let y = c.add(now, tau, 2.0);
                assert_eq!(d.add_memo(now, &mut memo, 2.0).to_bits(), y.to_bits());
            }
        }
        assert_eq!((a, c), (b, d));
    }

    #[test]
    fn principal_counts_keep_the_strong_and_halve_per_half_life() {
        let mut c = PrincipalCounts::new(8, 24);
        let strong = hash_u64(1, 1);
        for i in 0..40 {
            assert_eq!(c.touch(strong, 0), i);
        }
        // one bucket of 8: a stream of one-off principals evicts each other,
        // never the established one
        for k in 0..100u64 {
            c.touch(hash_u64(2, k), 1);
        }
        assert_eq!(c.peek(strong), 40);
        assert!(c.evictions > 0, "drops are counted");
        // a half-life later the count is halved (and keeps counting)
        assert_eq!(c.touch(strong, 24), 20);
        assert_eq!(c.peek(strong), 21);
    }

    #[test]
    fn pair_filter_keeps_the_pairs_at_four_fifths_of_its_slots() {
        let mut p = PairFilter::new(8192);
        let n = 8192 * 4 / 5;
        for k in 0..n as u64 {
            assert!(!p.touch(hash_u64(3, k)), "new pair {k} reported present");
        }
        // one bucket per pair overflowed and forgot ~430 of these pairs
        assert!(p.evictions <= 5, "{}", p.evictions);
        let found = (0..n as u64).filter(|&k| p.touch(hash_u64(3, k))).count();
        assert!(found >= n - 5, "{found} of {n}");
        // and a pair never inserted is still new
        let false_hits = (0..10_000u64).filter(|&k| p.touch(hash_u64(4, k))).count();
        assert!(false_hits < 10, "{false_hits}");
    }

    #[test]
    fn pair_filter_contains_looks_without_inserting() {
        let mut p = PairFilter::new(64);
        let (a, b) = (hash_u64(5, 1), hash_u64(5, 2));
        assert!(!p.contains(a));
        assert!(!p.contains(a), "looking did not insert it");
        assert!(!p.touch(a));
        assert!(p.contains(a));
        assert!(!p.contains(b));
    }

    #[test]
    fn common_networks_are_the_ones_much_of_the_tenant_uses() {
        let mut n = CommonNetworks::default();
        let office = hash_u64(7, 1);
        for k in 0..10_000u64 {
            n.touch(office);
            n.touch(hash_u64(8, k)); // a different home network each time
        }
        assert!(n.touch(office) > 0.45);
        assert_eq!(n.touch(hash_u64(9, 1)), 0.0, "never seen");
        // a home network seen once is not common, whatever it inherited
        let home = hash_u64(8, 99_999);
        n.touch(home);
        assert!(n.touch(home) < 1.0 / 64.0);
    }

    #[test]
    fn principal_windows_survive_rebasing() {
        let mut t = PrincipalTable::new(8);
        let k = hash_u64(3, 3);
        let day = 86_400_000i64;
        let (s, created) = t.get(k, 0);
        assert!(created);
        s.rate = 5.0;
        // 60 s later the rate has decayed by e
        let (s, _) = t.get(k, 60_000);
        assert!(
            (s.rate - 5.0 / std::f32::consts::E).abs() < 1e-3,
            "{}",
            s.rate
        );
        // 40 days later (offsets rebased past 2^31 ms) the same slot is found
        let (s, created) = t.get(k, 40 * day);
        assert!(!created);
        assert!(s.rate < 1e-6);
        s.rate = 2.0;
        let (s, _) = t.get(k, 40 * day + 60_000);
        assert!(
            (s.rate - 2.0 / std::f32::consts::E).abs() < 1e-3,
            "{}",
            s.rate
        );
    }

    #[test]
    fn novelty_then_counts() {
        let mut t = SeenTable::new(64, 24);
        assert!(t.touch(Kind::Issuer, 42, 0).novel());
        assert_eq!(t.touch(Kind::Issuer, 42, 0).count, 1);
        assert_eq!(t.touch(Kind::Issuer, 42, 1), Seen { count: 2, age_h: 1 });
        // kinds are separate namespaces
        assert!(t.peek(Kind::Domain, 42, 1).novel());
        assert_eq!(t.distinct(Kind::Issuer), 1);
    }

    #[test]
    fn counts_halve_per_half_life() {
        let mut t = SeenTable::new(64, 10);
        for _ in 0..8 {
            t.touch(Kind::Domain, 7, 0);
        }
        assert_eq!(t.peek(Kind::Domain, 7, 9).count, 8);
        assert_eq!(t.peek(Kind::Domain, 7, 10).count, 4);
        assert_eq!(t.peek(Kind::Domain, 7, 25).count, 2);
        assert!(t.peek(Kind::Domain, 7, 200).novel());
    }

    #[test]
    fn full_table_evicts_weakest_and_counts_it() {
        let mut t = SeenTable::new(64, 1000); // keys below share bucket 0
        for _ in 0..5 {
            t.touch(Kind::Domain, 1 << 40, 0);
        }
        for k in 2..=5u64 {
            t.touch(Kind::Domain, k << 40, 0);
        }
        assert_eq!(t.evictions, 1, "the fifth key displaced a weak one");
        assert_eq!(
            t.peek(Kind::Domain, 1 << 40, 0).count,
            5,
            "the strong key stays"
        );
        assert_eq!(t.distinct(Kind::Domain), 4);
    }

    #[test]
    fn halving_keeps_strong_keys() {
        let mut t = SeenTable::new(1024, 1000);
        assert_eq!(t.capacity(), 1024);
        let keys: Vec<u64> = (0..200).map(|i| hash_u64(9, i)).collect();
        for (i, k) in keys.iter().enumerate() {
            for _ in 0..(1 + i % 3) {
                t.touch(Kind::Domain, *k, 0);
            }
        }
        t.halve(0);
        assert_eq!(t.capacity(), 512);
        let kept = keys
            .iter()
            .filter(|k| !t.peek(Kind::Domain, **k, 0).novel())
            .count();
        assert!(kept >= 190, "{kept}");
        assert_eq!(t.distinct(Kind::Domain) as usize, kept);
    }

    #[test]
    fn principal_windows_decay() {
        let mut p = PrincipalTable::new(16);
        let (s, created) = p.get(5, 0);
        assert!(created);
        s.rate += 10.0;
        let (s, created) = p.get(5, 60_000);
        assert!(!created);
        assert!((s.rate - 10.0 * (-1.0f32).exp()).abs() < 1e-3);
    }

    #[test]
    fn principal_table_is_bounded() {
        let mut p = PrincipalTable::new(8);
        for k in 1..=20u64 {
            p.get(hash_u64(1, k) | 1, k as i64);
        }
        assert_eq!(p.evictions, 12);
        assert_eq!(p.slots.len(), 8);
    }

    #[test]
    fn top_labels_keep_the_frequent() {
        let mut t = TopLabels::default();
        t.offer(1, 10, || "a".into());
        t.offer(2, 5, || "b".into());
        t.offer(3, 1, || "c".into());
        t.offer(4, 2, || "a-very-long-label-that-will-be-truncated".into());
        t.offer(5, 1, || {
            panic!("not computed for a key that does not enter")
        });
        assert_eq!(t.labels(), vec!["a", "b", "a-very-long-label-that-w"]);
    }
}
