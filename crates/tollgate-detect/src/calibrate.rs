//! Calibration: a per-tenant, per-detector streaming quantile of raw scores.
//!
//! Raw scores have detector-specific units and ranges; a [`Calibrator`]
//! turns one into a grade in [0, 1], the fraction of this tenant's past raw
//! scores for this detector that were lower. It is a fixed log-spaced
//! histogram (64 bins from 0.01 to ~10⁵, three bins per doubling, plus one
//! bin for zero), interpolated within a bin, with counts halved when they
//! pass 2²⁴ so old history fades. Deterministic, bounded (260 bytes), and
//! O(64) per lookup at worst. A grade is computed *before* the score joins
//! the histogram and is never revised afterwards.

use serde::{Deserialize, Serialize};

use crate::snapshot::{check_len, ShapeError};

const BINS: usize = 64;
const LO: f64 = 0.01;
const PER_DOUBLING: f64 = 3.0;
const AGE_AT: u32 = 1 << 24;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Calibrator {
    /// [`BINS`] counts (a boxed slice: 8 bytes less than a `Vec` in each of
    /// a tenant's nine calibrators, and the same encoding).
    counts: Box<[u32]>,
    total: u32,
}

impl Default for Calibrator {
    fn default() -> Self {
        Calibrator {
            counts: vec![0; BINS].into_boxed_slice(),
            total: 0,
        }
    }
}

#[inline]
fn bin_pos(raw: f64) -> f64 {
    // continuous position: bin 1 starts at LO
    1.0 + PER_DOUBLING * (raw / LO).log2()
}

impl Calibrator {
    pub fn resident_bytes(&self) -> usize {
        std::mem::size_of::<Self>() + BINS * 4
    }

    pub fn total(&self) -> u32 {
        self.total
    }

    /// [`BINS`] counts (a score's bin indexes them) that sum to `total`,
    /// below the halving point: a grade is a count over `total`, so counts
    /// summing to more would grade scores above 1.
    pub(crate) fn check(&self) -> Result<(), ShapeError> {
        check_len("counts", self.counts.len(), BINS)?;
        let sum: u64 = self.counts.iter().map(|&c| u64::from(c)).sum();
        if self.total >= AGE_AT || sum != u64::from(self.total) {
            return Err(ShapeError::new(format!(
                "total is {}, the counts sum to {sum} (both must agree, below {AGE_AT})",
                self.total
            )));
        }
        Ok(())
    }

    /// Fraction of past scores below `raw` (0 when there is no history or
    /// the score is zero).
    #[inline]
    pub fn grade(&self, raw: f64) -> f64 {
        self.grade_at(raw, position(raw))
    }

    /// Add a raw score to the history.
    #[inline]
    pub fn observe(&mut self, raw: f64) {
        self.observe_at(position(raw));
    }

    /// [`Calibrator::grade`], then [`Calibrator::observe`], locating the
    /// score's bin once (the hot path: every event, every detector).
    #[inline]
    pub fn grade_and_observe(&mut self, raw: f64) -> f64 {
        let at = Located::new(raw);
        let g = self.grade_located(at);
        self.observe_located(at);
        g
    }

    /// [`Calibrator::grade`] of a score located once, for a caller that
    /// decides afterwards whether the score joins the history.
    #[inline]
    pub(crate) fn grade_located(&self, at: Located) -> f64 {
        self.grade_at(at.raw, at.pos)
    }

    /// [`Calibrator::observe`] of a score located once.
    #[inline]
    pub(crate) fn observe_located(&mut self, at: Located) {
        self.observe_at(at.pos);
    }

    #[inline]
    fn grade_at(&self, raw: f64, pos: f64) -> f64 {
        if self.total == 0 || raw.is_nan() || raw <= 0.0 {
            return 0.0;
        }
        if pos < 1.0 {
            // between 0 and LO: everything at zero is below
            return f64::from(self.counts[0]) / f64::from(self.total);
        }
        let b = (pos as usize).min(BINS - 1);
        let frac = if b == BINS - 1 { 1.0 } else { pos - b as f64 };
        // in u32 (twice the lanes of u64): the counts sum to `total`,
        // which stays below 2^24 (wrapping only guards a doctored snapshot)
        let below = self.counts[..b]
            .iter()
            .fold(0u32, |a, &c| a.wrapping_add(c));
        (f64::from(below) + frac * f64::from(self.counts[b])) / f64::from(self.total)
    }

    #[inline]
    fn observe_at(&mut self, pos: f64) {
        let b = if pos < 1.0 {
            0
        } else {
            (pos as usize).min(BINS - 1)
        };
        self.counts[b] += 1;
        self.total += 1;
        if self.total >= AGE_AT {
            self.total = 0;
            for c in self.counts.iter_mut() {
                *c /= 2;
                self.total += *c;
            }
        }
    }
}

/// A raw score and its position in the histogram, computed once (one
/// logarithm) for both grading and observing it.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Located {
    raw: f64,
    pos: f64,
}

impl Located {
    #[inline]
    pub(crate) fn new(raw: f64) -> Self {
        Located {
            raw,
            pos: position(raw),
        }
    }
}

/// [`bin_pos`] for a positive score; 0 (the zero bin) for zero, negative
/// and NaN scores, without a logarithm.
#[inline]
fn position(raw: f64) -> f64 {
    if raw > 0.0 {
        bin_pos(raw)
    } else {
        0.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grades_are_empirical_quantiles() {
        let mut c = Calibrator::default();
        assert_eq!(c.grade(5.0), 0.0, "no history, no grade");
        for i in 0..1000 {
            c.observe(f64::from(i % 100) / 10.0); // 0.0 ..= 9.9 uniformly
        }
        let g = c.grade(5.0);
        assert!((g - 0.5).abs() < 0.03, "{g}");
        assert!(c.grade(20.0) > 0.999);
        assert_eq!(c.grade(0.0), 0.0);
        assert!(c.grade(1.0) < c.grade(2.0));
    }

    #[test]
    fn grade_and_observe_is_grade_then_observe() {
        let (mut a, mut b) = (Calibrator::default(), Calibrator::default());
        for i in 0..5000u32 {
            let raw = match i % 7 {
                0 => 0.0,
                1 => f64::NAN,
                2 => 0.004,
                _ => f64::from(i % 997) * 0.37,
            };
            let g = b.grade(raw);
            b.observe(raw);
            assert_eq!(a.grade_and_observe(raw).to_bits(), g.to_bits(), "{raw}");
        }
        assert_eq!(a, b);
    }

    #[test]
    fn novelty_scores_grade_high_against_a_sea_of_zeros() {
        let mut c = Calibrator::default();
        for _ in 0..10_000 {
            c.observe(0.0);
        }
        assert!(c.grade(12.0) > 0.9999);
    }

    #[test]
    fn old_history_is_halved() {
        let mut c = Calibrator {
            counts: vec![0; BINS].into_boxed_slice(),
            total: AGE_AT - 1,
        };
        c.counts[0] = AGE_AT - 1;
        c.observe(1.0);
        assert_eq!(c.total, (AGE_AT - 1) / 2);
    }
}
