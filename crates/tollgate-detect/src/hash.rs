//! Stable, seeded 64-bit hashing for feature keys and table slots.
//!
//! Keys hashed here end up inside snapshots (as fingerprints in the
//! categorical tables), so the function must never change between builds or
//! platforms: it is written out here instead of borrowed from a crate whose
//! algorithm may change in a minor release. It is fast (one multiply per
//! 8-byte word, a murmur3 finalizer at the end) and not DoS-resistant, which is
//! acceptable because every table it indexes is bounded and per tenant.

use std::hash::{BuildHasher, Hasher};

const K: u64 = 0x9e37_79b9_7f4a_7c15;

/// The murmur3 64-bit finalizer: full avalanche of a word.
#[inline]
pub fn fmix(mut h: u64) -> u64 {
    h ^= h >> 33;
    h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
    h ^= h >> 33;
    h = h.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    h ^= h >> 33;
    h
}

#[inline]
fn absorb(h: u64, w: u64) -> u64 {
    (h.rotate_left(23) ^ w).wrapping_mul(K)
}

/// Hash bytes with a seed (the seed namespaces the feature kind).
#[inline]
pub fn hash_bytes(seed: u64, b: &[u8]) -> u64 {
    let mut h = seed ^ (b.len() as u64).wrapping_mul(K);
    let mut chunks = b.chunks_exact(8);
    for c in &mut chunks {
        h = absorb(
            h,
            u64::from_le_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]),
        );
    }
    let rest = chunks.remainder();
    if !rest.is_empty() {
        let mut buf = [0u8; 8];
        buf[..rest.len()].copy_from_slice(rest);
        h = absorb(h, u64::from_le_bytes(buf));
    }
    fmix(h)
}

/// Hash bytes as if ASCII-lowercased, without allocating.
#[inline]
pub fn hash_lower(seed: u64, b: &[u8]) -> u64 {
    let mut h = seed ^ (b.len() as u64).wrapping_mul(K);
    let mut chunks = b.chunks_exact(8);
    for c in &mut chunks {
        let w = u64::from_le_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]);
        h = absorb(h, lower_word(w));
    }
    let rest = chunks.remainder();
    if !rest.is_empty() {
        let mut buf = [0u8; 8];
        buf[..rest.len()].copy_from_slice(rest);
        h = absorb(h, lower_word(u64::from_le_bytes(buf)));
    }
    fmix(h)
}

/// ASCII-lowercase eight bytes at once (SWAR).
#[inline]
fn lower_word(w: u64) -> u64 {
    const ONES: u64 = 0x0101_0101_0101_0101;
    let heptets = w & (0x7f * ONES);
    let is_gt_z = heptets.wrapping_add((0x7f - b'Z' as u64) * ONES);
    let is_ge_a = heptets.wrapping_add((0x80 - b'A' as u64) * ONES);
    let is_ascii = !w & (0x80 * ONES);
    let is_upper = is_ascii & (is_ge_a ^ is_gt_z);
    w | (is_upper >> 2)
}

/// Combine two hashes into one (ordered).
#[inline]
pub fn mix2(a: u64, b: u64) -> u64 {
    fmix(a.wrapping_mul(K) ^ b.rotate_left(29) ^ 0x5bd1_e995)
}

/// Hash a `u64` with a seed.
#[inline]
pub fn hash_u64(seed: u64, v: u64) -> u64 {
    fmix(seed ^ v.wrapping_mul(K))
}

/// A [`Hasher`] over [`hash_bytes`], for the engine's tenant map.
#[derive(Default, Clone, Copy)]
pub struct StableHasher(u64);

impl Hasher for StableHasher {
    #[inline]
    fn finish(&self) -> u64 {
        self.0
    }
    #[inline]
    fn write(&mut self, bytes: &[u8]) {
        self.0 = hash_bytes(self.0, bytes);
    }

    /// A `str` ends its bytes with a `0xff` (`Hash for str`): folded in
    /// with one multiply, not a second pass of [`hash_bytes`]. The
    /// hashbrown tables take their bucket from the low bits and the tag
    /// from the top bits, both mixed by the multiply of a finalized hash.
    #[inline]
    fn write_u8(&mut self, i: u8) {
        self.0 = absorb(self.0, u64::from(i));
    }
}

/// Builds [`StableHasher`]s with a fixed seed (deterministic iteration order).
#[derive(Default, Clone, Copy)]
pub struct StableBuild;

impl BuildHasher for StableBuild {
    type Hasher = StableHasher;
    fn build_hasher(&self) -> StableHasher {
        StableHasher(0x243f_6a88_85a3_08d3)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashes_are_stable_across_builds() {
        // Pinned values: changing the function invalidates every snapshot.
        assert_eq!(hash_bytes(0, b""), fmix(0));
        let a = hash_bytes(1, b"https://login.example");
        assert_eq!(a, hash_bytes(1, b"https://login.example"));
        assert_ne!(a, hash_bytes(2, b"https://login.example"));
        assert_ne!(hash_bytes(1, b"abcdefgh1"), hash_bytes(1, b"abcdefgh2"));
    }

    #[test]
    fn lower_hash_ignores_ascii_case_only() {
        assert_eq!(
            hash_lower(7, b"Login.EXAMPLE.com/Path"),
            hash_bytes(7, b"login.example.com/path")
        );
        assert_eq!(
            hash_lower(7, "ÄB".as_bytes()),
            hash_bytes(7, "Äb".as_bytes())
        );
        assert_ne!(hash_lower(7, b"a@b"), hash_bytes(7, b"a`b"));
    }
}
