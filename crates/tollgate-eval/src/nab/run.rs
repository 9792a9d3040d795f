//! Runs one NAB series the way the engine runs a tenant's volume series.
//!
//! Each series is its own tenant: a fresh [`VolumeDetector`] fed row by
//! row, in order, with the row's timestamp as the interval start (the
//! detector's `feed`, the call the engine makes when it closes an
//! interval), then the engine's own per-detector [`Calibrator`] turns the
//! detector's score into a grade (the fraction of this series' earlier
//! scores that were lower, computed before the score joins the history),
//! and an episode rule keeps one alert per burst. Nothing here looks at a
//! label, a later row or another series.
//!
//! Differences from the engine, each forced by NAB: the score is the
//! two-sided `|z|` (NAB's anomalies are drops as often as surges; the engine
//! alerts on surges only), the values are not counts (no Poisson floor on
//! the scale), seasonality is off (most NAB series have none, and hourly
//! bins learned on two weeks of five-minute data mostly learn noise), and
//! since NAB chooses the threshold afterwards the episode rule is
//! threshold-free: a row's grade stands only if it exceeds every grade of
//! the `cooldown` rows before it, else it is 0 (a repeat inside an open
//! episode emits nothing). The NAB anomaly score is that grade, in [0, 1].

use chrono::NaiveDateTime;
use tollgate_detect::calibrate::Calibrator;
use tollgate_detect::volume::{Season, VolumeDetector, VolumeParams};

/// One series' output.
#[derive(Debug, Clone, Default)]
pub struct SeriesRun {
    /// NAB anomaly score per row, in [0, 1].
    pub score: Vec<f64>,
    /// The detector's score per row (`|z|`, 0 during its warm-up).
    pub raw: Vec<f64>,
    /// The grade of `raw` before episode suppression.
    pub grade: Vec<f64>,
    /// What the detector expected per row.
    pub expected: Vec<f64>,
}

/// The runner's settings, the same for every series.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Runner {
    pub params: VolumeParams,
    /// Rows after a graded score during which lower grades are repeats of
    /// the same episode.
    pub cooldown: usize,
}

impl Default for Runner {
    fn default() -> Self {
        Runner {
            params: VolumeParams {
                season: Season::None,
                counts: false,
                min_scale: 1e-9,
                ..VolumeParams::default()
            },
            cooldown: 100,
        }
    }
}

impl std::fmt::Display for Runner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let p = &self.params;
        write!(
            f,
            "Each series is one tenant's VolumeDetector (tollgate-detect), fed row by row in order; its score |z| is graded by the engine's Calibrator; one alert per episode (a grade stands only if it beats the {} rows before it). Settings, the same for every series: season {:?}, alpha level {}, alpha season {}, alpha scale {}, warm-up {} rows, not counts, minimum scale {:e}.",
            self.cooldown,
            p.season,
            p.alpha_level,
            p.alpha_season,
            p.alpha_scale,
            p.warmup_intervals,
            p.min_scale
        )
    }
}

impl Runner {
    /// Run one series (see the module docs).
    pub fn run(&self, ts: &[NaiveDateTime], values: &[f64]) -> SeriesRun {
        let mut d = VolumeDetector::new(self.params);
        let mut cal = Calibrator::default();
        let mut out = SeriesRun::default();
        for (t, &v) in ts.iter().zip(values) {
            let s = d.feed(t.and_utc(), v);
            let g = cal.grade_and_observe(s.score);
            out.raw.push(s.score);
            out.grade.push(g);
            out.expected.push(s.expected);
        }
        out.score = episodes(&out.grade, self.cooldown);
        out
    }
}

/// The threshold-free episode rule: a value stands only if it is above every
/// value of the `cooldown` rows before it (and above 0); otherwise it is 0.
pub fn episodes(v: &[f64], cooldown: usize) -> Vec<f64> {
    let mut out = Vec::with_capacity(v.len());
    // indices of a decreasing run of maxima over the last `cooldown` rows
    let mut q: std::collections::VecDeque<usize> = std::collections::VecDeque::new();
    for (i, &x) in v.iter().enumerate() {
        while q.front().is_some_and(|&j| j + cooldown < i) {
            q.pop_front();
        }
        let m = q.front().map_or(0.0, |&j| v[j]);
        out.push(if x > m.max(0.0) { x } else { 0.0 });
        while q.back().is_some_and(|&j| v[j] <= x) {
            q.pop_back();
        }
        q.push_back(i);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn episodes_keep_the_first_of_a_burst_and_new_highs() {
        let v = [0.0, 0.5, 0.9, 0.8, 0.95, 0.2, 0.0, 0.0, 0.0, 0.6];
        assert_eq!(
            episodes(&v, 3),
            vec![0.0, 0.5, 0.9, 0.0, 0.95, 0.0, 0.0, 0.0, 0.0, 0.6]
        );
        assert_eq!(episodes(&v, 0), v.to_vec());
    }

    #[test]
    fn a_spike_is_graded_high_and_scores_stay_in_range() {
        let t0 = chrono::NaiveDate::from_ymd_opt(2014, 4, 1)
            .unwrap()
            .and_hms_opt(0, 0, 0)
            .unwrap();
        let ts: Vec<NaiveDateTime> = (0..600)
            .map(|i| t0 + chrono::Duration::minutes(5 * i))
            .collect();
        let mut v: Vec<f64> = (0..600)
            .map(|i| 10.0 + ((i * 37) % 11) as f64 / 10.0)
            .collect();
        v[500] = 40.0;
        let r = Runner::default().run(&ts, &v);
        assert_eq!(r.score.len(), 600);
        assert!(r.score.iter().all(|s| (0.0..=1.0).contains(s)));
        let top = (0..600)
            .max_by(|&a, &b| r.score[a].total_cmp(&r.score[b]))
            .unwrap();
        assert_eq!(top, 500);
        assert!(r.score[500] > 0.99, "{}", r.score[500]);
        assert_eq!(r.score[501], 0.0, "the next row is the same episode");
    }
}
