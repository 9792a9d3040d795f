//! Exponential backoff with jitter for throttled and failed Kinesis calls.
//! Pure: the caller sleeps; randomness is a small xorshift seeded by the
//! caller (a shard reader seeds it from its shard id and the clock), so tests
//! are deterministic and no `rand` dependency is needed.
//!
//! "Equal jitter": the n-th consecutive failure waits a uniformly random time
//! in `[cap/2, cap]` with `cap = min(max, initial × 2ⁿ)`. Half the cap keeps
//! a floor under the wait (throttling is per shard, so backing off too little
//! only earns another throttle); the random half spreads readers of many
//! shards apart so they do not retry in lockstep.

use std::time::Duration;

/// See the module docs.
#[derive(Debug, Clone)]
pub struct Backoff {
    initial: Duration,
    max: Duration,
    failures: u32,
    rng: u64,
}

impl Backoff {
    pub fn new(initial: Duration, max: Duration, seed: u64) -> Self {
        Backoff {
            initial,
            max: max.max(initial),
            failures: 0,
            rng: splitmix64(seed),
        }
    }

    /// The wait after one more consecutive failure.
    pub fn next_delay(&mut self) -> Duration {
        let shift = self.failures.min(32);
        self.failures = self.failures.saturating_add(1);
        let cap = self
            .initial
            .checked_mul(1u32 << shift.min(31))
            .unwrap_or(self.max)
            .min(self.max);
        let half = cap / 2;
        let span = u64::try_from((cap - half).as_nanos()).unwrap_or(u64::MAX);
        let r = self.next_u64();
        half + Duration::from_nanos(if span == 0 { 0 } else { r % (span + 1) })
    }

    /// A call succeeded: the next failure starts from `initial` again.
    pub fn reset(&mut self) {
        self.failures = 0;
    }

    /// Consecutive failures so far.
    pub fn failures(&self) -> u32 {
        self.failures
    }

    fn next_u64(&mut self) -> u64 {
        let mut x = self.rng;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.rng = x;
        x
    }
}

/// Spreads nearby seeds apart; never zero (xorshift would stay at zero).
fn splitmix64(seed: u64) -> u64 {
    let mut z = seed.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    (z ^ (z >> 31)) | 1
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_double_up_to_the_cap_with_jitter_in_the_upper_half() {
        let ms = Duration::from_millis;
        let mut b = Backoff::new(ms(100), ms(1000), 42);
        for cap in [100, 200, 400, 800, 1000, 1000, 1000] {
            let d = b.next_delay();
            assert!(
                d >= ms(cap / 2) && d <= ms(cap),
                "{d:?} outside [{}, {cap}] ms",
                cap / 2
            );
        }
        b.reset();
        assert_eq!(b.failures(), 0);
        assert!(b.next_delay() <= ms(100));
    }

    #[test]
    fn jitter_spreads_delays_and_many_failures_do_not_overflow() {
        let ms = Duration::from_millis;
        let mut seen = std::collections::BTreeSet::new();
        for seed in 0..20 {
            let mut b = Backoff::new(ms(100), ms(10_000), seed);
            for _ in 0..10 {
                b.next_delay();
            }
            seen.insert(b.next_delay());
        }
        assert!(seen.len() > 10, "jitter should spread delays: {seen:?}");
        let mut b = Backoff::new(ms(1), ms(5), 7);
        for _ in 0..200 {
            assert!(b.next_delay() <= ms(5));
        }
    }
}
