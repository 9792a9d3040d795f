//! Ranking metrics over `(score, is_anomaly)` pairs: AUROC and AUPRC, with
//! tied scores treated as one threshold (never broken by input order, which
//! would reward a detector for emitting constants). Shared by the ODDS
//! evaluation and the scenario suite.

/// Area under the ROC curve (Mann–Whitney U, ties counted half). `NaN` when
/// either class is empty.
pub fn auroc(scores: &[(f64, bool)]) -> f64 {
    let mut v: Vec<(f64, bool)> = scores.to_vec();
    v.sort_by(|a, b| a.0.total_cmp(&b.0));
    let pos = v.iter().filter(|x| x.1).count() as f64;
    let neg = v.len() as f64 - pos;
    if pos == 0.0 || neg == 0.0 {
        return f64::NAN;
    }
    // Sum of positive ranks, with average ranks for ties.
    let mut rank_sum = 0.0;
    let mut i = 0;
    while i < v.len() {
        let mut j = i;
        while j < v.len() && v[j].0 == v[i].0 {
            j += 1;
        }
        let avg_rank = (i + 1 + j) as f64 / 2.0;
        let p = v[i..j].iter().filter(|x| x.1).count() as f64;
        rank_sum += p * avg_rank;
        i = j;
    }
    (rank_sum - pos * (pos + 1.0) / 2.0) / (pos * neg)
}

/// Area under the precision–recall curve as average precision
/// (`Σ ΔRecall × Precision`); tied scores are one threshold, their precision
/// taken over the whole tie group. `NaN` without positives.
pub fn auprc(scores: &[(f64, bool)]) -> f64 {
    let mut v: Vec<(f64, bool)> = scores.to_vec();
    v.sort_by(|a, b| b.0.total_cmp(&a.0));
    let pos = v.iter().filter(|x| x.1).count() as f64;
    if pos == 0.0 {
        return f64::NAN;
    }
    let (mut tp, mut seen, mut ap) = (0.0, 0.0, 0.0);
    let mut i = 0;
    while i < v.len() {
        let mut j = i;
        while j < v.len() && v[j].0 == v[i].0 {
            j += 1;
        }
        let p = v[i..j].iter().filter(|x| x.1).count() as f64;
        tp += p;
        seen += (j - i) as f64;
        ap += p / pos * (tp / seen);
        i = j;
    }
    ap
}

/// Points of the ROC curve `(false-positive rate, true-positive rate)`, one
/// per distinct score, from (0, 0) to (1, 1), for plotting.
pub fn roc_curve(scores: &[(f64, bool)]) -> Vec<(f64, f64)> {
    let mut v: Vec<(f64, bool)> = scores.to_vec();
    v.sort_by(|a, b| b.0.total_cmp(&a.0));
    let pos = v.iter().filter(|x| x.1).count().max(1) as f64;
    let neg = (v.len() as f64 - v.iter().filter(|x| x.1).count() as f64).max(1.0);
    let mut out = vec![(0.0, 0.0)];
    let (mut tp, mut fp) = (0.0, 0.0);
    let mut i = 0;
    while i < v.len() {
        let mut j = i;
        while j < v.len() && v[j].0 == v[i].0 {
            if v[j].1 {
                tp += 1.0;
            } else {
                fp += 1.0;
            }
            j += 1;
        }
        out.push((fp / neg, tp / pos));
        i = j;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn auroc_matches_hand_computed_values() {
        let perfect = [(0.1, false), (0.2, false), (0.8, true), (0.9, true)];
        assert_eq!(auroc(&perfect), 1.0);
        let inverted = [(0.9, false), (0.8, false), (0.2, true), (0.1, true)];
        assert_eq!(auroc(&inverted), 0.0);
        let tied = [(0.5, false), (0.5, true), (0.5, false), (0.5, true)];
        assert_eq!(auroc(&tied), 0.5);
        // 3 positives, 2 negatives: of the 6 (positive, negative) pairs the
        // positive wins 5 and ties 1 → 5.5 / 6.
        let mixed = [
            (0.9, true),
            (0.7, true),
            (0.6, false),
            (0.6, true),
            (0.2, false),
        ];
        assert!((auroc(&mixed) - 5.5 / 6.0).abs() < 1e-12);
        // 2 positives, 3 negatives, no ties: positive 0.8 beats 0.3, 0.1 (2
        // of 3), positive 0.4 beats 0.3 and 0.1 (2 of 3) → 4 / 6.
        let v = [
            (0.9, false),
            (0.8, true),
            (0.4, true),
            (0.3, false),
            (0.1, false),
        ];
        assert!((auroc(&v) - 4.0 / 6.0).abs() < 1e-12);
        assert!(auroc(&[(0.1, true)]).is_nan());
    }

    #[test]
    fn auprc_matches_hand_computed_values() {
        let perfect = [(0.9, true), (0.8, true), (0.1, false)];
        assert_eq!(auprc(&perfect), 1.0);
        // Ranked: T F T → AP = (1/1 + 2/3) / 2.
        let v = [(0.9, true), (0.5, false), (0.3, true)];
        assert!((auprc(&v) - (1.0 + 2.0 / 3.0) / 2.0).abs() < 1e-12);
        // All tied: precision is the base rate.
        let t = [(0.5, true), (0.5, false), (0.5, false), (0.5, false)];
        assert!((auprc(&t) - 0.25).abs() < 1e-12);
        // F T F T with a tie group {T, F} in the middle:
        // 0.9 F; {0.5 T, 0.5 F}; 0.1 T → recall 1/2 at precision 1/3, then
        // 1/2 at precision 2/4 → (1/3 + 1/2) / 2.
        let g = [(0.9, false), (0.5, true), (0.5, false), (0.1, true)];
        assert!((auprc(&g) - (1.0 / 3.0 + 0.5) / 2.0).abs() < 1e-12);
        assert!(auprc(&[(0.1, false)]).is_nan());
    }

    #[test]
    fn roc_curve_runs_corner_to_corner() {
        let v = [(0.9, true), (0.5, false), (0.3, true), (0.1, false)];
        let c = roc_curve(&v);
        assert_eq!(c.first(), Some(&(0.0, 0.0)));
        assert_eq!(c.last(), Some(&(1.0, 1.0)));
        assert_eq!(c[1], (0.0, 0.5));
    }
}
