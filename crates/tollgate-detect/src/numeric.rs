//! The multivariate numeric model: a Gaussian mixture per tenant and source.
//!
//! Why this model: the numeric features (log bytes in/out, log latency,
//! per-principal rate, error ratio, new destinations) are few (D = 6),
//! roughly log-normal and multi-modal (a tenant's API has a few kinds of
//! calls: small JSON reads, bulk exports, uploads), so a small mixture of
//! full-covariance Gaussians in standardized log space captures them in about
//! 1.5 KiB, scores an event in O(K·D²) ≈ 130 multiply-adds, and explains a
//! score per feature (deviation from the nearest component's mean in its own
//! standard deviations). Fitting uses `linfa-clustering`'s EM
//! ([`GaussianMixtureModel`]), seeded (Xoshiro256Plus from the tenant seed and
//! fit number) so fits are reproducible; it runs only every
//! `refit_every` events of a source, on a recency-biased reservoir of
//! `reservoir` vectors, never per event. Between fits the frozen parameters
//! are unpacked into fixed arrays (precision Cholesky factors) so the hot path
//! touches no `ndarray` and allocates nothing.
//!
//! Scoring uses a multivariate Student-t kernel (ν = 4) around each fitted
//! component instead of the Gaussian itself: the fit is the same, but the
//! heavy tails keep a single discrete jump (the first error of a tenant that
//! had none in its reservoir) from producing an astronomically large score,
//! while large multi-feature deviations still stand out. The raw score is
//! the excess negative log-likelihood over the 90th percentile of the
//! reservoir's own scores at fit time, clamped at 0.
//!
//! If EM fails (degenerate data, no convergence), the model falls back to a
//! single diagonal Gaussian from the reservoir's moments and counts the
//! failure. Before the first fit the card's priors are used.
//!
//! Learning is robust to what the model is there to catch: a vector the
//! current mixture finds surprising (more than 3 nats over the baseline)
//! enters the reservoir at an eighth of the usual rate, so a burst of
//! outliers does not become a component at the next fit (a lasting new
//! mode still gets in, eight times slower); a component weighing under a
//! tenth of the reservoir after a fit is dropped; and fits come at growing
//! counts (`first_fit_after`, `refit_growth` times that, …; × 4 in the
//! product cards) until they are `refit_every` apart, so a young model
//! follows its reservoir while that still changes fast. EM stops when the
//! mean log-likelihood per vector moves by less than the card's `tolerance`
//! (0.01 nats: at 0.001 a fit took about a third more iterations for no
//! better scores).
//!
//! The model is generic over its dimension (`NumericModel<N, T>`, `T` the
//! size of a packed triangle, `N(N+1)/2`); the engine uses the default,
//! [`D`] = 6, and `tollgate-eval` streams the ODDS tables (3 and 9 columns)
//! through the same code. Arrays are serialized as tuples, exactly as serde
//! does for fixed sizes, so snapshots of the 6-dimensional model are
//! byte-for-byte what they were before the model became generic.

// Small fixed-size linear algebra reads best with explicit indices.
#![allow(clippy::needless_range_loop)]

use linfa::traits::Fit;
use linfa::DatasetBase;
use linfa_clustering::{GaussianMixtureModel, GmmInitMethod};
use ndarray::Array2;
use rand_xoshiro::rand_core::SeedableRng;
use rand_xoshiro::Xoshiro256Plus;
use serde::{Deserialize, Serialize};

use crate::cards::{NumericCard, Prior, MAX_RESERVOIR};
use crate::snapshot::{check_finite, check_max, check_positive, ShapeError};

/// Dimensions of the numeric vector.
pub const D: usize = 6;
/// Maximum mixture components.
pub const K_MAX: usize = 4;
const TRI: usize = D * (D + 1) / 2;
const NU: f64 = 4.0;

/// Names of the numeric features, in vector order.
pub const FEATURE_NAMES: [&str; D] = [
    "bytes_in",
    "bytes_out",
    "latency_ms",
    "rate_per_min",
    "error_ratio_shrunk",
    "new_destinations_per_hour",
];

/// Whether the feature is stored as ln(1 + x) (else as is).
const LOG_SCALED: [bool; D] = [true, true, true, true, false, true];

/// Convert a model-space value back to the feature's own unit.
pub fn to_unit(i: usize, v: f64) -> f64 {
    if LOG_SCALED[i] {
        v.exp_m1().max(0.0)
    } else {
        v
    }
}

/// Exponentially weighted mean and variance.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct EwStat {
    pub mean: f64,
    pub var: f64,
    pub n: u64,
}

impl EwStat {
    #[inline]
    pub fn update(&mut self, x: f64, alpha_min: f64) {
        self.n += 1;
        // 1/n only while it can still exceed the floor (a division per
        // feature per event otherwise): past n·α = 2 it is below α/2
        let n = self.n as f64;
        let a = if n * alpha_min > 2.0 {
            alpha_min
        } else {
            (1.0 / n).max(alpha_min)
        };
        let d = x - self.mean;
        self.mean += a * d;
        self.var = (1.0 - a) * (self.var + a * d * d);
    }
    pub fn std(&self) -> f64 {
        self.var.max(0.0).sqrt()
    }
}

/// A frozen mixture, unpacked for allocation-free scoring.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Gmm<const N: usize = D, const T: usize = TRI> {
    k: usize,
    #[serde(with = "arrays::one")]
    center: [f64; N],
    #[serde(with = "arrays::one")]
    scale: [f64; N],
    /// ln w_k + ½ ln det P_k.
    log_norm: [f64; K_MAX],
    #[serde(with = "arrays::rows")]
    means: [[f64; N]; K_MAX],
    /// Rows of Lᵀ (P = L Lᵀ), packed upper-triangular.
    #[serde(with = "arrays::rows")]
    upper: [[f64; T]; K_MAX],
    /// Per-dimension standard deviation of each component (standardized).
    #[serde(with = "arrays::rows")]
    sd: [[f64; N]; K_MAX],
    /// 90th percentile of the reservoir's own scores at fit time.
    baseline: f64,
}

/// a^−(ν+N)/2, a Student-t kernel's density up to its norm (a ≥ 1): an
/// integer power of 1/a, times √(1/a) when ν + N is odd.
#[inline(always)]
fn kernel<const N: usize>(a: f64) -> f64 {
    const { assert!(NU == 4.0, "the kernel's exponent assumes nu = 4") };
    let inv = 1.0 / a;
    let twice = 4 + N;
    let p = inv.powi((twice / 2) as i32);
    if twice % 2 == 1 {
        p * inv.sqrt()
    } else {
        p
    }
}

/// Index of (i, j), j >= i, in a packed upper-triangular N×N matrix.
#[inline]
fn up<const N: usize>(i: usize, j: usize) -> usize {
    i * N - i * (i + 1) / 2 + j
}

impl<const N: usize, const T: usize> Gmm<N, T> {
    /// One diagonal unit Gaussian in standardized space.
    fn diagonal(center: [f64; N], scale: [f64; N]) -> Self {
        const { assert!(T == N * (N + 1) / 2, "T must be N(N+1)/2") };
        let mut upper = [[0.0; T]; K_MAX];
        for i in 0..N {
            upper[0][up::<N>(i, i)] = 1.0;
        }
        Gmm {
            k: 1,
            center,
            scale,
            log_norm: [0.0; K_MAX],
            means: [[0.0; N]; K_MAX],
            upper,
            sd: [[1.0; N]; K_MAX],
            baseline: 0.0,
        }
    }

    /// Mixture components in use.
    pub fn components(&self) -> usize {
        self.k
    }

    /// 1 to [`K_MAX`] components (scoring indexes the fixed arrays by
    /// component), positive scales (they divide), and finite parameters in
    /// the components in use and in the baseline (a NaN there makes every
    /// score NaN: never graded, never alerted on).
    pub(crate) fn check(&self) -> Result<(), ShapeError> {
        if !(1..=K_MAX).contains(&self.k) {
            return Err(ShapeError::new(format!(
                "k is {}, expected 1..={K_MAX}",
                self.k
            )));
        }
        check_finite("center", self.center)?;
        check_positive("scale", self.scale)?;
        let k = self.k;
        check_finite("log_norm", self.log_norm[..k].iter().copied())?;
        check_finite("means", self.means[..k].iter().flatten().copied())?;
        check_finite("upper", self.upper[..k].iter().flatten().copied())?;
        check_finite("sd", self.sd[..k].iter().flatten().copied())?;
        check_finite("baseline", [self.baseline])
    }

    #[inline]
    fn standardize(&self, x: &[f32; N]) -> [f64; N] {
        let mut z = [0.0; N];
        for i in 0..N {
            z[i] = (f64::from(x[i]) - self.center[i]) / self.scale[i];
        }
        z
    }

    /// Negative log-likelihood (Student-t kernels, up to a constant) and the
    /// most responsible component.
    ///
    /// Component k's density is e^log_norm[k] · a_k^−(ν+N)/2 with
    /// a_k = 1 + q_k/ν, and (ν + N)/2 is a whole or half number (ν = 4): so
    /// the sum over components is e^L · Σ e^(log_norm[k] − L) · a_k^−(ν+N)/2
    /// (L the largest log_norm) — an exponential per other component and
    /// one logarithm, where a logarithm per component besides was ≈ 3 % of
    /// scoring an event. Where that sum underflows (a vector far from every
    /// component), the same figure is computed in logarithms.
    #[inline]
    pub fn nll(&self, x: &[f32; N]) -> (f64, usize) {
        let k = self.k.min(K_MAX);
        let a = self.spreads(x);
        let mut heaviest = 0;
        for c in 1..k {
            if self.log_norm[c] > self.log_norm[heaviest] {
                heaviest = c;
            }
        }
        let l = self.log_norm[heaviest];
        let (mut sum, mut best, mut top) = (0.0, 0, -1.0);
        for c in 0..k {
            // e^0 is exactly 1: the heaviest component needs no call
            let w = if c == heaviest {
                1.0
            } else {
                (self.log_norm[c] - l).exp()
            };
            let p = w * kernel::<N>(a[c]);
            sum += p;
            if p > top {
                (top, best) = (p, c);
            }
        }
        if sum > 1e-280 {
            return (-(l + sum.ln()), best);
        }
        self.nll_logs(&a)
    }

    /// 1 + q_k/ν per component in use (q_k: the squared Mahalanobis
    /// distance of `x` from component k); 1 for the others.
    #[inline]
    fn spreads(&self, x: &[f32; N]) -> [f64; K_MAX] {
        let z = self.standardize(x);
        let mut a = [1.0f64; K_MAX];
        for (c, a) in a.iter_mut().enumerate().take(self.k.min(K_MAX)) {
            let mut d = [0.0; N];
            for i in 0..N {
                d[i] = z[i] - self.means[c][i];
            }
            let u = &self.upper[c];
            let mut q = 0.0;
            for i in 0..N {
                let mut s = 0.0;
                for j in i..N {
                    s += u[up::<N>(i, j)] * d[j];
                }
                q += s * s;
            }
            *a = 1.0 + q / NU;
        }
        a
    }

    /// [`Gmm::nll`] in logarithms, from each component's a_k.
    #[cold]
    fn nll_logs(&self, a: &[f64; K_MAX]) -> (f64, usize) {
        let k = self.k.min(K_MAX);
        let mut lps = [f64::NEG_INFINITY; K_MAX];
        let mut best = 0;
        for c in 0..k {
            lps[c] = self.log_norm[c] - 0.5 * (NU + N as f64) * a[c].ln();
            if lps[c] > lps[best] {
                best = c;
            }
        }
        let m = lps[best];
        let mut s = 0.0;
        for (c, lp) in lps.iter().enumerate().take(k) {
            // exp(0) is exactly 1: the best component's term needs no call;
            // nor does one 40 nats below it: e^-40 < 2^-57, and the sum
            // holds the best term's 1, so K_MAX such terms move it by less
            // than half of its last bit
            let d = lp - m;
            s += if c == best {
                1.0
            } else if d > -40.0 {
                d.exp()
            } else {
                0.0
            };
        }
        (-(m + s.ln()), best)
    }

    fn from_linfa(
        m: &GaussianMixtureModel<f64>,
        center: [f64; N],
        scale: [f64; N],
    ) -> Option<Self> {
        let k = m.weights().len();
        if k == 0 || k > K_MAX || m.means().ncols() != N {
            return None;
        }
        let mut g = Self::diagonal(center, scale);
        g.k = k;
        for c in 0..k {
            let w = m.weights()[c];
            let p = m.precisions().index_axis(ndarray::Axis(0), c);
            let cov = m.covariances().index_axis(ndarray::Axis(0), c);
            // Cholesky P = L Lᵀ
            let mut l = [[0.0f64; N]; N];
            for i in 0..N {
                for j in 0..=i {
                    let mut s = p[[i, j]];
                    for t in 0..j {
                        s -= l[i][t] * l[j][t];
                    }
                    if i == j {
                        if s.is_nan() || s <= 0.0 || !s.is_finite() {
                            return None;
                        }
                        l[i][i] = s.sqrt();
                    } else {
                        l[i][j] = s / l[j][j];
                    }
                }
            }
            let mut half_log_det = 0.0;
            for i in 0..N {
                half_log_det += l[i][i].ln();
                g.means[c][i] = m.means()[[c, i]];
                g.sd[c][i] = cov[[i, i]].max(0.0).sqrt();
                for j in i..N {
                    g.upper[c][up::<N>(i, j)] = l[j][i];
                }
            }
            if w.is_nan() || w <= 0.0 || !half_log_det.is_finite() {
                return None;
            }
            g.log_norm[c] = w.ln() + half_log_det;
        }
        // a component holding under MIN_WEIGHT of the reservoir is too thin
        // to be "normal": dropped (the rest renormalised), so a cluster of a
        // few odd vectors that got into the reservoir does not make its
        // kind score as typical
        let mut keep = 0;
        let mut total = 0.0;
        for c in 0..k {
            let w = m.weights()[c];
            if w >= MIN_WEIGHT {
                g.log_norm[keep] = g.log_norm[c];
                g.means[keep] = g.means[c];
                g.upper[keep] = g.upper[c];
                g.sd[keep] = g.sd[c];
                keep += 1;
                total += w;
            }
        }
        if keep == 0 {
            return None;
        }
        for c in 0..keep {
            g.log_norm[c] -= total.ln();
        }
        g.k = keep;
        Some(g)
    }
}

impl Gmm {
    /// Per-dimension deviation of `x` from component `k`, in that
    /// component's standard deviations, and the component mean in the
    /// feature's unit.
    pub fn deviations(&self, x: &[f32; D], k: usize) -> [(f64, f64); D] {
        let z = self.standardize(x);
        let mut out = [(0.0, 0.0); D];
        for i in 0..D {
            let dev = (z[i] - self.means[k][i]) / self.sd[k][i].max(1e-9);
            let typical = self.center[i] + self.scale[i] * self.means[k][i];
            out[i] = (dev, to_unit(i, typical));
        }
        out
    }
}

/// What a fit did, for the engine's counters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FitOutcome {
    Mixture,
    Fallback,
}

/// The per-(tenant, source) numeric model: running stats, reservoir,
/// frozen mixture.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NumericModel<const N: usize = D, const T: usize = TRI> {
    /// Running mean/variance of each feature (egress z-scores, typical values).
    #[serde(with = "arrays::one")]
    pub(crate) stats: [EwStat; N],
    /// Imputation values for missing features (the card's prior means).
    #[serde(with = "arrays::one")]
    impute: [f32; N],
    #[serde(with = "arrays::one")]
    prior_std: [f64; N],
    /// Reservoir vectors in fixed point ([`pack`]): a quarter of the
    /// memory of `f32` at a resolution (1/1024 in log space) far below the
    /// features' noise, which leaves room in the tenant budget for the
    /// categorical tables.
    #[serde(with = "arrays::vec")]
    reservoir: Vec<[i16; N]>,
    /// The reservoir's bound (from the card), for memory accounting that
    /// does not depend on allocation history.
    cap: u32,
    seen: u64,
    rng: u64,
    pub(crate) gmm: Gmm<N, T>,
    pub(crate) fits: u32,
    pub(crate) fit_failures: u32,
    next_fit: u64,
}

const STAT_ALPHA: f64 = 1e-3;

/// Excess NLL (nats over the fit-time 90th percentile) up to which a vector
/// joins the reservoir at the usual rate; above it, at 1/8 of it.
const ADMIT_BELOW_NATS: f64 = 3.0;

/// Mixture components below this weight are dropped after a fit.
const MIN_WEIGHT: f64 = 0.1;

fn splitmix(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

impl NumericModel {
    /// The engine's model: the card's six features and priors.
    pub fn new(card: &NumericCard, seed: u64) -> Self {
        Self::with_priors(card, card.prior.as_array(), seed)
    }
}

impl<const N: usize, const T: usize> NumericModel<N, T> {
    /// A model of `N` features with the card's parameters and these
    /// cold-start priors (the card's own priors name the engine's six).
    pub fn with_priors(card: &NumericCard, pri: [Prior; N], seed: u64) -> Self {
        let mut center = [0.0; N];
        let mut scale = [1.0; N];
        let mut impute = [0.0; N];
        let mut prior_std = [1.0; N];
        let mut stats = [EwStat::default(); N];
        for i in 0..N {
            center[i] = pri[i].mean;
            scale[i] = pri[i].std;
            impute[i] = pri[i].mean as f32;
            prior_std[i] = pri[i].std;
            stats[i] = EwStat {
                mean: pri[i].mean,
                var: pri[i].std * pri[i].std,
                n: 0,
            };
        }
        let mut gmm = Gmm::diagonal(center, scale);
        // the prior's own 90th-percentile score, roughly: a point 1.3 sd out
        // in every dimension
        let probe: [f32; N] = std::array::from_fn(|i| (center[i] + 1.3 * scale[i]) as f32);
        gmm.baseline = gmm.nll(&probe).0;
        NumericModel {
            stats,
            impute,
            prior_std,
            reservoir: Vec::with_capacity(card.reservoir),
            cap: card.reservoir as u32,
            seen: 0,
            rng: seed,
            gmm,
            fits: 0,
            fit_failures: 0,
            next_fit: card.first_fit_after,
        }
    }

    /// The mixture's shape ([`Gmm`]), finite running stats and imputation
    /// values (a NaN imputed is a NaN scored), positive prior deviations
    /// (they floor a divisor), and a reservoir no longer than any card
    /// allows: not checked against `cap`, which follows the current card,
    /// because a card that shrank the reservoir leaves a longer one behind.
    pub(crate) fn check(&self) -> Result<(), ShapeError> {
        self.gmm.check().map_err(|e| e.within("gmm"))?;
        check_finite("stats", self.stats.iter().flat_map(|s| [s.mean, s.var]))?;
        check_finite("impute", self.impute.map(f64::from))?;
        check_positive("prior_std", self.prior_std)?;
        check_max("reservoir", self.reservoir.len(), MAX_RESERVOIR)?;
        if self.cap as usize > MAX_RESERVOIR {
            return Err(ShapeError::new(format!(
                "cap is {}, at most {MAX_RESERVOIR} allowed",
                self.cap
            )));
        }
        Ok(())
    }

    pub fn resident_bytes(&self) -> usize {
        // from the bound, not `capacity()`: a decoded snapshot allocates
        // differently, and this estimate steers budget decisions that must
        // not depend on eviction history
        std::mem::size_of::<Self>() + self.cap as usize * std::mem::size_of::<[i16; N]>()
    }

    /// Mixture fits so far, and how many of them fell back to a diagonal
    /// Gaussian.
    pub fn fits(&self) -> (u32, u32) {
        (self.fits, self.fit_failures)
    }

    /// The current mixture.
    pub fn mixture(&self) -> &Gmm<N, T> {
        &self.gmm
    }

    /// Replace missing (NaN) features by the prior mean.
    #[inline]
    pub fn impute(&self, x: &mut [f32; N]) {
        for i in 0..N {
            if x[i].is_nan() {
                x[i] = self.impute[i];
            }
        }
    }

    /// Raw score (excess NLL, >= 0) and the nearest component.
    #[inline]
    pub fn score(&self, x: &[f32; N]) -> (f64, usize) {
        let (e, k) = self.excess_nll(x);
        (e.max(0.0), k)
    }

    /// The excess negative log-likelihood over the fit-time baseline, not
    /// clamped at 0 (negative for typical points), and the nearest
    /// component: a full ranking, for AUROC; [`NumericModel::score`] is its
    /// positive part.
    #[inline]
    pub fn excess_nll(&self, x: &[f32; N]) -> (f64, usize) {
        let (nll, k) = self.gmm.nll(x);
        (nll - self.gmm.baseline, k)
    }

    /// Learn from `x` (already imputed): update stats and reservoir, refit
    /// when due. Returns the fit outcome if a fit ran.
    pub fn learn(&mut self, x: &[f32; N], card: &NumericCard, seed: u64) -> Option<FitOutcome> {
        for i in 0..N {
            self.stats[i].update(f64::from(x[i]), STAT_ALPHA);
        }
        self.seen += 1;
        let cap = card.reservoir;
        self.cap = cap as u32;
        if self.reservoir.capacity() < cap {
            // a decoded snapshot has capacity == len; keep the bound exact
            self.reservoir.reserve_exact(cap - self.reservoir.len());
        }
        if self.reservoir.len() < cap {
            self.reservoir.push(pack(x));
        } else {
            let r = splitmix(&mut self.rng);
            // replace with probability cap / recency_window
            if (r >> 11) % card.recency_window.max(1) < cap as u64 {
                // robust learning: a vector the current mixture finds
                // surprising joins the reservoir with 1/8 of the usual
                // probability (the top three bits of the draw), so a burst
                // of outliers does not become a component at the next fit
                // and stop scoring; a lasting new mode still gets in
                let admit =
                    self.fits == 0 || r >> 61 == 0 || self.excess_nll(x).0 <= ADMIT_BELOW_NATS;
                if admit {
                    let slot = (r as usize) % self.reservoir.len();
                    self.reservoir[slot] = pack(x);
                }
            }
        }
        if self.seen >= self.next_fit {
            // refit at growing counts (× `refit_growth`) until `refit_every`
            // apart: a young model improves while its reservoir is still
            // changing fast
            let grow = (card.refit_growth.max(2) - 1).saturating_mul(self.seen);
            self.next_fit = self.seen + grow.clamp(1, card.refit_every.max(1));
            return Some(self.fit(card, seed));
        }
        None
    }

    fn fit(&mut self, card: &NumericCard, seed: u64) -> FitOutcome {
        // unpacked once per fit (every `refit_every` events), never per event
        let n = self.reservoir.len();
        let res: Vec<[f32; N]> = self.reservoir.iter().map(unpack).collect();
        let mut center = [0.0; N];
        let mut scale = [0.0; N];
        for v in &res {
            for i in 0..N {
                center[i] += f64::from(v[i]);
            }
        }
        for c in center.iter_mut() {
            *c /= n as f64;
        }
        for v in &res {
            for i in 0..N {
                let d = f64::from(v[i]) - center[i];
                scale[i] += d * d;
            }
        }
        for i in 0..N {
            scale[i] = (scale[i] / n as f64).sqrt().max(0.5 * self.prior_std[i]);
        }
        let mut rec = Array2::<f64>::zeros((n, N));
        for (r, v) in res.iter().enumerate() {
            for i in 0..N {
                rec[[r, i]] = (f64::from(v[i]) - center[i]) / scale[i];
            }
        }
        let k = card.components.min(n / 16).max(1);
        self.fits += 1;
        let rng =
            Xoshiro256Plus::seed_from_u64(seed ^ u64::from(self.fits).wrapping_mul(0x9e37_79b9));
        let ds = DatasetBase::from(rec);
        let fitted = GaussianMixtureModel::params_with_rng(k, rng)
            .n_runs(1)
            .tolerance(card.tolerance)
            .reg_covariance(card.reg_covariance)
            .max_n_iterations(card.max_iterations)
            .init_method(GmmInitMethod::KMeans)
            .kmeans_n_runs(card.kmeans_restarts)
            .fit(&ds)
            .ok()
            .and_then(|m| Gmm::<N, T>::from_linfa(&m, center, scale));
        let (mut gmm, outcome) = match fitted {
            Some(g) => (g, FitOutcome::Mixture),
            None => {
                self.fit_failures += 1;
                (Gmm::<N, T>::diagonal(center, scale), FitOutcome::Fallback)
            }
        };
        let mut scores: Vec<f64> = res.iter().map(|v| gmm.nll(v).0).collect();
        scores.sort_by(f64::total_cmp);
        gmm.baseline = scores[(scores.len() * 9 / 10).min(scores.len() - 1)];
        self.gmm = gmm;
        outcome
    }

    /// z-score of a feature against the running stats.
    #[inline]
    pub fn z(&self, i: usize, v: f32) -> f64 {
        let s = &self.stats[i];
        (f64::from(v) - s.mean) / s.std().max(0.5 * self.prior_std[i])
    }
}

/// Fixed-point scale of the packed reservoir: 1/1024, range about ±32, which
/// covers `ln(1 + x)` of any byte count, latency or rate.
const PACK: f32 = 1024.0;

fn pack<const N: usize>(x: &[f32; N]) -> [i16; N] {
    let mut out = [0i16; N];
    for i in 0..N {
        // `as` saturates and maps NaN to 0
        out[i] = (x[i] * PACK).round() as i16;
    }
    out
}

fn unpack<const N: usize>(x: &[i16; N]) -> [f32; N] {
    let mut out = [0f32; N];
    for i in 0..N {
        out[i] = f32::from(x[i]) / PACK;
    }
    out
}

/// Serde for arrays whose length is a const parameter (serde implements
/// fixed sizes only): each array is a tuple, as serde writes `[T; n]`, so
/// the encoded bytes are unchanged.
mod arrays {
    use std::fmt;
    use std::marker::PhantomData;

    use serde::de::{self, Deserialize, Deserializer, SeqAccess, Visitor};
    use serde::ser::{Serialize, SerializeTuple, Serializer};

    struct Tuple<'a, T, const N: usize>(&'a [T; N]);

    impl<T: Serialize, const N: usize> Serialize for Tuple<'_, T, N> {
        fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
            let mut t = s.serialize_tuple(N)?;
            for x in self.0 {
                t.serialize_element(x)?;
            }
            t.end()
        }
    }

    struct Owned<T, const N: usize>([T; N]);

    impl<'de, T: Deserialize<'de>, const N: usize> Deserialize<'de> for Owned<T, N> {
        fn deserialize<De: Deserializer<'de>>(d: De) -> Result<Self, De::Error> {
            struct V<T, const N: usize>(PhantomData<T>);
            impl<'de, T: Deserialize<'de>, const N: usize> Visitor<'de> for V<T, N> {
                type Value = [T; N];
                fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                    write!(f, "an array of length {N}")
                }
                fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<[T; N], A::Error> {
                    let mut v = Vec::with_capacity(N);
                    for i in 0..N {
                        v.push(
                            seq.next_element()?
                                .ok_or_else(|| de::Error::invalid_length(i, &self))?,
                        );
                    }
                    v.try_into()
                        .map_err(|_| de::Error::invalid_length(N, &self))
                }
            }
            d.deserialize_tuple(N, V::<T, N>(PhantomData)).map(Owned)
        }
    }

    /// `[T; N]`.
    pub mod one {
        use super::*;

        pub fn serialize<S: Serializer, T: Serialize, const N: usize>(
            a: &[T; N],
            s: S,
        ) -> Result<S::Ok, S::Error> {
            Tuple(a).serialize(s)
        }

        pub fn deserialize<'de, De: Deserializer<'de>, T: Deserialize<'de>, const N: usize>(
            d: De,
        ) -> Result<[T; N], De::Error> {
            Owned::<T, N>::deserialize(d).map(|o| o.0)
        }
    }

    /// `[[T; N]; M]`.
    pub mod rows {
        use super::*;

        pub fn serialize<S: Serializer, T: Serialize, const N: usize, const M: usize>(
            a: &[[T; N]; M],
            s: S,
        ) -> Result<S::Ok, S::Error> {
            let mut t = s.serialize_tuple(M)?;
            for r in a {
                t.serialize_element(&Tuple(r))?;
            }
            t.end()
        }

        pub fn deserialize<
            'de,
            De: Deserializer<'de>,
            T: Deserialize<'de>,
            const N: usize,
            const M: usize,
        >(
            d: De,
        ) -> Result<[[T; N]; M], De::Error> {
            let rows = Owned::<Owned<T, N>, M>::deserialize(d)?;
            Ok(rows.0.map(|r| r.0))
        }
    }

    /// `Vec<[T; N]>`.
    pub mod vec {
        use super::*;

        pub fn serialize<S: Serializer, T: Serialize, const N: usize>(
            a: &[[T; N]],
            s: S,
        ) -> Result<S::Ok, S::Error> {
            s.collect_seq(a.iter().map(Tuple))
        }

        pub fn deserialize<'de, De: Deserializer<'de>, T: Deserialize<'de>, const N: usize>(
            d: De,
        ) -> Result<Vec<[T; N]>, De::Error> {
            let v = Vec::<Owned<T, N>>::deserialize(d)?;
            Ok(v.into_iter().map(|o| o.0).collect())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cards::ModelCards;
    use tollgate_events::Source;

    fn card() -> NumericCard {
        let mut c = ModelCards::builtin().get(Source::Apigw).numeric.clone();
        c.first_fit_after = 256;
        c
    }

    fn lcg(s: &mut u64) -> f64 {
        *s = s
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        ((*s >> 11) as f64) / ((1u64 << 53) as f64)
    }

    fn normalish(s: &mut u64) -> f64 {
        (0..12).map(|_| lcg(s)).sum::<f64>() - 6.0
    }

    fn sample(s: &mut u64) -> [f32; D] {
        // two kinds of call: small reads and bulk exports
        let bulk = lcg(s) < 0.2;
        let out = if bulk { 13.0 } else { 7.0 } + 0.5 * normalish(s);
        [
            (6.0 + 0.3 * normalish(s)) as f32,
            out as f32,
            (if bulk { 6.0 } else { 3.5 } + 0.3 * normalish(s)) as f32,
            (1.0 + 0.2 * normalish(s)) as f32,
            0.0,
            0.0,
        ]
    }

    #[test]
    fn packed_index_is_dense() {
        let mut seen = [false; TRI];
        for i in 0..D {
            for j in i..D {
                assert!(!seen[up::<D>(i, j)]);
                seen[up::<D>(i, j)] = true;
            }
        }
        assert!(seen.iter().all(|&b| b));
    }

    #[test]
    fn fits_a_mixture_and_scores_outliers_high() {
        let c = card();
        let mut m = NumericModel::new(&c, 1);
        let mut s = 7u64;
        let mut fits = 0;
        for _ in 0..2000 {
            let x = sample(&mut s);
            if m.learn(&x, &c, 42).is_some() {
                fits += 1;
            }
        }
        // at 256 and 1024 events: quadrupling until `refit_every` apart
        assert_eq!(fits, 2);
        assert_eq!(m.next_fit, 4096);
        assert_eq!(m.fit_failures, 0);
        assert!(m.gmm.k >= 2, "two modes need two components");
        let normal_small = [6.0, 7.0, 3.5, 1.0, 0.0, 0.0];
        let normal_bulk = [6.0, 13.0, 6.0, 1.0, 0.0, 0.0];
        // a bulk-sized response with a small call's latency, at a high rate
        let odd = [6.0, 17.0, 3.5, 4.0, 0.0, 0.0];
        let (a, _) = m.score(&normal_small);
        let (b, _) = m.score(&normal_bulk);
        let (o, k) = m.score(&odd);
        assert!(a < 1.0 && b < 1.0, "{a} {b}");
        assert!(o > 10.0, "{o}");
        let dev = m.gmm.deviations(&odd, k);
        let top = (0..D)
            .max_by(|&i, &j| dev[i].0.abs().total_cmp(&dev[j].0.abs()))
            .unwrap();
        assert!(
            top == 1 || top == 3,
            "bytes_out or rate explains it, got {}",
            FEATURE_NAMES[top]
        );
    }

    #[test]
    fn fits_are_deterministic() {
        let c = card();
        let run = || {
            let mut m = NumericModel::new(&c, 9);
            let mut s = 3u64;
            for _ in 0..600 {
                m.learn(&sample(&mut s), &c, 5);
            }
            m
        };
        assert_eq!(run(), run());
    }

    /// The product form of `nll` (one logarithm) gives what each
    /// component's logarithm gave, near the components and far from them
    /// (where the product underflows and the logarithms take over), and
    /// names the same most responsible component.
    #[test]
    fn nll_without_a_logarithm_per_component_agrees_with_the_logarithms() {
        let c = card();
        let mut m = NumericModel::new(&c, 4);
        let mut s = 11u64;
        for _ in 0..5000 {
            m.learn(&sample(&mut s), &c, 3);
        }
        let g = &m.gmm;
        assert!(g.k >= 2, "a mixture, not one component: {}", g.k);
        let mut far_taken = 0;
        for i in 0..3000 {
            let mut x = sample(&mut s);
            // every tenth vector further out, up to 10^30 scales away
            if i % 10 == 0 {
                for v in &mut x {
                    *v *= 10f32.powi(i / 10 % 31);
                }
            }
            let (fast, kf) = g.nll(&x);
            let (logs, kl) = g.nll_logs(&g.spreads(&x));
            assert!(
                (fast - logs).abs() <= 1e-9 * logs.abs().max(1.0),
                "{x:?}: {fast} vs {logs}"
            );
            assert_eq!(kf, kl, "{x:?}");
            if logs > 600.0 {
                far_taken += 1;
            }
        }
        assert!(
            far_taken > 10,
            "the underflow path was exercised {far_taken} times"
        );
    }

    /// The generic arrays serialize exactly as serde's fixed-size ones did
    /// before the model became generic: snapshots keep their bytes.
    #[test]
    fn encoding_is_that_of_fixed_size_arrays() {
        #[derive(Serialize)]
        struct GmmFixed {
            k: usize,
            center: [f64; D],
            scale: [f64; D],
            log_norm: [f64; K_MAX],
            means: [[f64; D]; K_MAX],
            upper: [[f64; TRI]; K_MAX],
            sd: [[f64; D]; K_MAX],
            baseline: f64,
        }
        #[derive(Serialize)]
        struct ModelFixed {
            stats: [EwStat; D],
            impute: [f32; D],
            prior_std: [f64; D],
            reservoir: Vec<[i16; D]>,
            cap: u32,
            seen: u64,
            rng: u64,
            gmm: GmmFixed,
            fits: u32,
            fit_failures: u32,
            next_fit: u64,
        }
        let c = card();
        let mut m = NumericModel::new(&c, 4);
        let mut s = 11u64;
        for _ in 0..1100 {
            m.learn(&sample(&mut s), &c, 3);
        }
        assert_eq!(m.fits, 2);
        let g = &m.gmm;
        let fixed = ModelFixed {
            stats: m.stats,
            impute: m.impute,
            prior_std: m.prior_std,
            reservoir: m.reservoir.clone(),
            cap: m.cap,
            seen: m.seen,
            rng: m.rng,
            gmm: GmmFixed {
                k: g.k,
                center: g.center,
                scale: g.scale,
                log_norm: g.log_norm,
                means: g.means,
                upper: g.upper,
                sd: g.sd,
                baseline: g.baseline,
            },
            fits: m.fits,
            fit_failures: m.fit_failures,
            next_fit: m.next_fit,
        };
        let bytes = postcard::to_allocvec(&m).unwrap();
        assert_eq!(bytes, postcard::to_allocvec(&fixed).unwrap());
        let back: NumericModel = postcard::from_bytes(&bytes).unwrap();
        assert_eq!(back, m);
        assert!(postcard::from_bytes::<NumericModel>(&bytes[..bytes.len() / 2]).is_err());
    }

    #[test]
    fn other_dimensions_fit_and_score() {
        fn run<const N: usize, const T: usize>() {
            let c = card();
            let pri = [Prior {
                mean: 0.0,
                std: 1.0,
            }; N];
            let mut m = NumericModel::<N, T>::with_priors(&c, pri, 1);
            let mut s = 5u64;
            for _ in 0..1500 {
                let x: [f32; N] = std::array::from_fn(|i| (i as f64 + normalish(&mut s)) as f32);
                m.learn(&x, &c, 2);
            }
            assert_eq!(m.fits(), (2, 0));
            let typical: [f32; N] = std::array::from_fn(|i| i as f32);
            let far: [f32; N] = std::array::from_fn(|i| i as f32 + 8.0);
            let (t, _) = m.excess_nll(&typical);
            let (f, _) = m.excess_nll(&far);
            assert!(t < 0.0 && f > 5.0, "N = {N}: {t} {f}");
            assert_eq!(m.score(&typical).0, 0.0);
        }
        run::<3, 6>();
        run::<9, 45>();
    }

    /// A burst of one odd kind of vector, longer than the gap between fits,
    /// mostly does not become normal: over 24 seeds (model, data and fit),
    /// nearly all score the odd vector above 10 nats before the burst and at
    /// least half still do after the refit that follows it. Not all: a fit
    /// that stretches a real mode's covariance over the few odd vectors
    /// admitted lowers their score (measured over 60 seeds: about two in
    /// three stay above 10 nats; 11 in 60 when every vector is admitted at
    /// the usual rate).
    #[test]
    fn a_burst_of_outliers_is_mostly_not_learned_as_normal() {
        let odd = [6.0, 17.0, 3.5, 4.0, 0.0, 0.0];
        let (mut odd_before, mut still_odd) = (0, 0);
        for seed in 1..=24u64 {
            let mut c = card();
            c.refit_every = 1024;
            let mut m = NumericModel::new(&c, seed);
            let mut s = 7 + seed;
            for _ in 0..4096 {
                m.learn(&sample(&mut s), &c, 42 + seed);
            }
            if m.score(&odd).0 > 10.0 {
                odd_before += 1;
            }
            let fits = m.fits;
            for _ in 0..1500 {
                m.learn(&odd, &c, 42 + seed);
            }
            assert!(m.fits > fits, "a refit happened during the burst");
            if m.score(&odd).0 > 10.0 {
                still_odd += 1;
            }
        }
        assert!(odd_before >= 22, "{odd_before} of 24");
        assert!(still_odd >= 12, "{still_odd} of 24");
    }

    #[test]
    fn a_fitted_model_passes_its_shape_check_and_a_nan_in_use_does_not() {
        let c = card();
        let mut m = NumericModel::new(&c, 1);
        let mut s = 7u64;
        for _ in 0..1100 {
            m.learn(&sample(&mut s), &c, 42);
        }
        assert!(m.gmm.k >= 2);
        assert_eq!(m.check(), Ok(()));
        let broken = |f: &dyn Fn(&mut NumericModel)| {
            let mut b = m.clone();
            f(&mut b);
            b.check().unwrap_err().to_string()
        };
        assert_eq!(
            broken(&|b| b.gmm.baseline = f64::NAN),
            "gmm.baseline holds NaN, expected a finite number"
        );
        let k = m.gmm.k;
        assert!(
            broken(&|b| b.gmm.means[k - 1][3] = f64::INFINITY).starts_with("gmm.means holds inf")
        );
        assert!(broken(&|b| b.gmm.upper[0][0] = f64::NAN).starts_with("gmm.upper holds NaN"));
        assert!(broken(&|b| b.gmm.log_norm[0] = f64::NAN).starts_with("gmm.log_norm"));
        assert!(broken(&|b| b.gmm.sd[0][0] = f64::NAN).starts_with("gmm.sd"));
        assert!(broken(&|b| b.gmm.center[0] = f64::NAN).starts_with("gmm.center"));
        assert!(broken(&|b| b.impute[2] = f32::NAN).starts_with("impute holds NaN"));
        // a component past `k` is not in use: whatever it holds is unread
        if k < K_MAX {
            let mut b = m.clone();
            b.gmm.means[K_MAX - 1][0] = f64::NAN;
            assert_eq!(b.check(), Ok(()));
        }
    }

    #[test]
    fn degenerate_data_falls_back_without_panicking() {
        let c = card();
        let mut m = NumericModel::new(&c, 1);
        for _ in 0..300 {
            m.learn(&[1.0; D], &c, 1);
        }
        assert_eq!(m.fits, 1);
        let (s, _) = m.score(&[1.0; D]);
        assert!(s.is_finite());
    }
}
