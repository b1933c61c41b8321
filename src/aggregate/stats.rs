//! Count, sum, mean, min, max, first, last, standard deviation, quantiles, rate of change
//! and least-squares slope of a level series. Mean and variance use Welford's update
//! (numerically stable) and merge by Chan et al.'s pairwise formula, so windows can be
//! built from shorter ones.

use super::sketch::{bin_of, QuantileSketch, SketchBin};
use crate::domain::water::SlopeFit;
use crate::model::LevelValues;

const MS_PER_HOUR: f64 = 3_600_000.0;

#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct LevelStats {
    count: u64,
    sum: f64,
    mean: f64,
    /// Sum of squared deviations from the mean (Welford's M2).
    m2: f64,
    min: f64,
    max: f64,
    /// (event time, value) of the earliest and latest sample by event time.
    first: (i64, f64),
    last: (i64, f64),
    sketch: QuantileSketch,
    slope: SlopeFit,
}

impl Default for LevelStats {
    fn default() -> Self {
        LevelStats {
            count: 0,
            sum: 0.0,
            mean: 0.0,
            m2: 0.0,
            min: f64::INFINITY,
            max: f64::NEG_INFINITY,
            first: (i64::MAX, f64::NAN),
            last: (i64::MIN, f64::NAN),
            sketch: QuantileSketch::default(),
            slope: SlopeFit::default(),
        }
    }
}

impl LevelStats {
    pub fn add(&mut self, ts_ms: i64, value: f64) {
        self.add_binned(ts_ms, value, bin_of(value));
    }

    /// `add`, with the value's quantile bin already computed (`sketch::bin_of`).
    pub fn add_binned(&mut self, ts_ms: i64, value: f64, bin: SketchBin) {
        self.count += 1;
        self.sum += value;
        let delta = value - self.mean;
        self.mean += delta / self.count as f64;
        self.m2 += delta * (value - self.mean);
        self.min = self.min.min(value);
        self.max = self.max.max(value);
        if ts_ms < self.first.0 {
            self.first = (ts_ms, value);
        }
        if ts_ms > self.last.0 {
            self.last = (ts_ms, value);
        }
        self.sketch.add_to_bin(bin);
        self.slope.add(ts_ms, value);
    }

    /// Combines two disjoint sets of samples.
    pub fn merge(&mut self, other: &LevelStats) {
        if other.count == 0 {
            return;
        }
        if self.count == 0 {
            *self = other.clone();
            return;
        }
        let n = (self.count + other.count) as f64;
        let delta = other.mean - self.mean;
        self.m2 += other.m2 + delta * delta * self.count as f64 * other.count as f64 / n;
        self.mean += delta * other.count as f64 / n;
        self.count += other.count;
        self.sum += other.sum;
        self.min = self.min.min(other.min);
        self.max = self.max.max(other.max);
        if other.first.0 < self.first.0 {
            self.first = other.first;
        }
        if other.last.0 > self.last.0 {
            self.last = other.last;
        }
        self.sketch.merge(&other.sketch);
        self.slope.merge(&other.slope);
    }

    pub fn count(&self) -> u64 {
        self.count
    }

    /// Population standard deviation of the window's samples.
    pub fn stddev(&self) -> f64 {
        if self.count == 0 {
            0.0
        } else {
            (self.m2 / self.count as f64).max(0.0).sqrt()
        }
    }

    /// (last − first) per hour between the first and last samples.
    pub fn rate_per_hour(&self) -> f64 {
        let hours = (self.last.0 - self.first.0) as f64 / MS_PER_HOUR;
        if self.count < 2 || hours <= 0.0 {
            0.0
        } else {
            (self.last.1 - self.first.1) / hours
        }
    }

    pub fn values(&self) -> LevelValues {
        LevelValues {
            count: self.count,
            sum: self.sum,
            mean: self.mean,
            min: self.min,
            max: self.max,
            first: self.first.1,
            last: self.last.1,
            stddev: self.stddev(),
            p50: self.sketch.quantile(0.5),
            p95: self.sketch.quantile(0.95),
            rate_per_h: self.rate_per_hour(),
            slope_per_h: self.slope.slope_per_hour(),
        }
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    /// The naive reference: collect, then compute each aggregate directly.
    fn reference(samples: &[(i64, f64)]) -> (u64, f64, f64, f64, f64, f64, f64, f64) {
        let n = samples.len() as f64;
        let sum: f64 = samples.iter().map(|s| s.1).sum();
        let mean = sum / n;
        let var = samples.iter().map(|s| (s.1 - mean).powi(2)).sum::<f64>() / n;
        let min = samples.iter().map(|s| s.1).fold(f64::INFINITY, f64::min);
        let max = samples.iter().map(|s| s.1).fold(f64::NEG_INFINITY, f64::max);
        let first = samples.iter().min_by_key(|s| s.0).unwrap().1;
        let last = samples.iter().max_by_key(|s| s.0).unwrap().1;
        (samples.len() as u64, sum, mean, min, max, first, last, var.sqrt())
    }

    fn unique_ts_samples() -> impl Strategy<Value = Vec<(i64, f64)>> {
        prop::collection::btree_map(0i64..100_000, 0.0f64..2000.0, 1..200).prop_map(|m| m.into_iter().collect::<Vec<_>>()).prop_shuffle()
    }

    fn assert_matches(stats: &LevelStats, samples: &[(i64, f64)]) {
        let (count, sum, mean, min, max, first, last, sd) = reference(samples);
        let LevelValues { count: c, sum: s, mean: m, min: lo, max: hi, first: f, last: l, stddev, .. } = stats.values();
        assert_eq!(c, count);
        assert!((s - sum).abs() <= 1e-9 * sum.abs().max(1.0));
        assert!((m - mean).abs() <= 1e-9 * mean.abs().max(1.0));
        assert_eq!((lo, hi, f, l), (min, max, first, last));
        assert!((stddev - sd).abs() <= 1e-6 * sd.max(1.0), "{stddev} vs {sd}");
    }

    proptest! {
        #[test]
        fn out_of_order_samples_match_the_naive_reference(samples in unique_ts_samples()) {
            let mut stats = LevelStats::default();
            for (ts, v) in &samples {
                stats.add(*ts, *v);
            }
            assert_matches(&stats, &samples);
        }

        #[test]
        fn merging_two_halves_equals_adding_everything(samples in unique_ts_samples(), cut in 0usize..200) {
            let cut = cut.min(samples.len());
            let (mut left, mut right) = (LevelStats::default(), LevelStats::default());
            for (ts, v) in &samples[..cut] { left.add(*ts, *v); }
            for (ts, v) in &samples[cut..] { right.add(*ts, *v); }
            left.merge(&right);
            assert_matches(&left, &samples);
        }
    }

    #[test]
    fn stddev_is_stable_for_large_offsets() {
        let mut stats = LevelStats::default();
        for (i, v) in [1e9 + 4.0, 1e9 + 7.0, 1e9 + 13.0, 1e9 + 16.0].into_iter().enumerate() {
            stats.add(i as i64, v);
        }
        // Population variance of 4, 7, 13, 16 is 22.5.
        assert!((stats.stddev() - 22.5f64.sqrt()).abs() < 1e-6);
    }

    #[test]
    fn rate_of_change_is_per_hour_between_first_and_last() {
        let mut stats = LevelStats::default();
        stats.add(1_800_000, 3.0);
        stats.add(0, 1.0);
        stats.add(900_000, 9.0);
        assert_eq!(stats.rate_per_hour(), 4.0, "(3 - 1) over half an hour");
        let values = stats.values();
        assert!(values.p50 > 2.9 && values.p50 < 3.1, "{}", values.p50);
        let mut one = LevelStats::default();
        one.add(5, 1.0);
        assert_eq!(one.rate_per_hour(), 0.0);
    }
}
