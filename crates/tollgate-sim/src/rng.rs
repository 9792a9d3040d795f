//! The simulator's own pseudo-random numbers: xoshiro256++ seeded through
//! SplitMix64, plus the few distributions the traffic model needs.
//!
//! It is written here rather than taken from `rand` on purpose: the simulator
//! promises byte-identical output for a seed, and `rand` does not promise that
//! its distributions produce the same values across releases. Nothing here is
//! suitable for cryptography, and nothing needs to be.

/// SplitMix64 step: used to expand seeds and as a cheap stateless mixer.
pub(crate) fn splitmix64(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// A bijection on the low `bits` bits of `x` keyed by `key`: distinct inputs
/// give distinct outputs, which is how record ids are made unique without
/// remembering them.
pub(crate) fn permute(x: u64, key: u64, bits: u32) -> u64 {
    debug_assert!((16..=64).contains(&bits));
    let mask = if bits == 64 {
        u64::MAX
    } else {
        (1u64 << bits) - 1
    };
    let half = bits / 2;
    let mut v = (x ^ key) & mask;
    for k in [
        0x9E37_79B9_7F4A_7C15u64,
        0xBF58_476D_1CE4_E5B9,
        0x94D0_49BB_1331_11EB,
    ] {
        v = v.wrapping_mul(k | 1) & mask; // odd multiplier: bijective mod 2^bits
        v ^= v >> half; // xorshift right: bijective
        v = v.wrapping_add(key.rotate_left(17)) & mask;
    }
    v
}

/// xoshiro256++ (Blackman & Vigna).
#[derive(Debug, Clone)]
pub(crate) struct Rng {
    s: [u64; 4],
}

impl Rng {
    /// A generator for `seed` and an independent `stream` (a purpose label),
    /// so that adding draws to one part of the model does not shift another.
    pub(crate) fn new(seed: u64, stream: u64) -> Self {
        let mut sm = seed ^ stream.wrapping_mul(0xD605_0C4E_6A7B_1D35);
        let s = [
            splitmix64(&mut sm),
            splitmix64(&mut sm),
            splitmix64(&mut sm),
            splitmix64(&mut sm),
        ];
        Rng { s }
    }

    #[inline]
    pub(crate) fn next_u64(&mut self) -> u64 {
        let s = &mut self.s;
        let result = s[0].wrapping_add(s[3]).rotate_left(23).wrapping_add(s[0]);
        let t = s[1] << 17;
        s[2] ^= s[0];
        s[3] ^= s[1];
        s[1] ^= s[2];
        s[0] ^= s[3];
        s[2] ^= t;
        s[3] = s[3].rotate_left(45);
        result
    }

    /// Uniform in `0..n` (Lemire's multiply-shift; the bias is below 2^-40 for
    /// the small `n` used here). `n == 0` returns 0.
    #[inline]
    pub(crate) fn below(&mut self, n: u64) -> u64 {
        ((self.next_u64() as u128 * n as u128) >> 64) as u64
    }

    /// Uniform index into a non-empty slice.
    #[inline]
    pub(crate) fn index(&mut self, len: usize) -> usize {
        self.below(len as u64) as usize
    }

    /// Uniform in `lo..=hi`.
    #[inline]
    pub(crate) fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.below(hi - lo + 1)
    }

    /// Uniform in `[0, 1)`.
    #[inline]
    pub(crate) fn f64(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }

    #[inline]
    pub(crate) fn chance(&mut self, p: f64) -> bool {
        self.f64() < p
    }

    /// Standard normal (Box–Muller, one value per call).
    pub(crate) fn normal(&mut self) -> f64 {
        let u1 = 1.0 - self.f64(); // (0, 1]
        let u2 = self.f64();
        (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
    }

    /// Log-normal with the given median and shape.
    pub(crate) fn lognormal(&mut self, median: f64, sigma: f64) -> f64 {
        median * (sigma * self.normal()).exp()
    }

    pub(crate) fn pick<'a, T>(&mut self, xs: &'a [T]) -> &'a T {
        &xs[self.index(xs.len())]
    }
}

/// A categorical distribution over `0..n` by cumulative weights.
#[derive(Debug, Clone)]
pub(crate) struct Cdf {
    cum: Vec<f64>,
}

impl Cdf {
    pub(crate) fn new(weights: impl IntoIterator<Item = f64>) -> Self {
        let mut acc = 0.0;
        let cum = weights
            .into_iter()
            .map(|w| {
                acc += w.max(0.0);
                acc
            })
            .collect();
        Cdf { cum }
    }

    /// Zipf weights `1 / (rank + 1)^s` over `n` items.
    pub(crate) fn zipf(n: usize, s: f64) -> Self {
        Cdf::new((0..n).map(|i| 1.0 / ((i + 1) as f64).powf(s)))
    }

    pub(crate) fn total(&self) -> f64 {
        self.cum.last().copied().unwrap_or(0.0)
    }

    /// The weight of item `k`.
    pub(crate) fn weight(&self, k: usize) -> f64 {
        self.cum[k] - if k == 0 { 0.0 } else { self.cum[k - 1] }
    }

    #[inline]
    pub(crate) fn sample(&self, rng: &mut Rng) -> usize {
        let x = rng.f64() * self.total();
        self.cum
            .partition_point(|&c| c <= x)
            .min(self.cum.len().saturating_sub(1))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn streams_are_reproducible_and_distinct() {
        let a: Vec<u64> = (0..4).map(|_| Rng::new(7, 1).next_u64()).collect();
        assert!(a.windows(2).all(|w| w[0] == w[1]));
        assert_ne!(Rng::new(7, 1).next_u64(), Rng::new(7, 2).next_u64());
        assert_ne!(Rng::new(7, 1).next_u64(), Rng::new(8, 1).next_u64());
    }

    #[test]
    fn permute_is_a_bijection_on_small_domains() {
        let mut seen = std::collections::HashSet::new();
        for x in 0..(1u64 << 16) {
            let y = permute(x, 0xABCD, 16);
            assert!(y < 1 << 16);
            assert!(seen.insert(y), "collision at {x}");
        }
    }

    #[test]
    fn cdf_follows_weights() {
        let cdf = Cdf::new([1.0, 0.0, 3.0]);
        let mut rng = Rng::new(1, 1);
        let mut counts = [0u32; 3];
        for _ in 0..40_000 {
            counts[cdf.sample(&mut rng)] += 1;
        }
        assert_eq!(counts[1], 0);
        let ratio = counts[2] as f64 / counts[0] as f64;
        assert!((2.7..3.3).contains(&ratio), "ratio {ratio}");
    }
}
