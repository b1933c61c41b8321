//! Mergeable quantiles: a DDSketch (the `sketches-ddsketch` crate) with 1 % relative
//! accuracy. Error bound: for the q-quantile the sketch returns x̂ with
//! |x̂ − x| ≤ 0.01·|x|, where x is the exact sample at rank ⌊q·(n − 1)⌋ in sorted order
//! (tested below). Merging two sketches gives the sketch of the union.

use sketches_ddsketch::{Config, DDSketch};

/// Relative accuracy of every quantile citysense reports.
pub const RELATIVE_ACCURACY: f64 = 0.01;
/// Bins per sketch before the lowest collapse (far more than a window's spread needs).
const MAX_BINS: u32 = 2048;
/// Values below this magnitude count as zero.
const MIN_VALUE: f64 = 1e-9;

#[derive(Clone, serde::Serialize, serde::Deserialize)]
pub struct QuantileSketch(DDSketch);

impl std::fmt::Debug for QuantileSketch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "QuantileSketch(n={}, p50={}, p95={})", self.0.count(), self.quantile(0.5), self.quantile(0.95))
    }
}

impl Default for QuantileSketch {
    fn default() -> Self {
        QuantileSketch(DDSketch::new(Config::new(RELATIVE_ACCURACY, MAX_BINS, MIN_VALUE)))
    }
}

impl PartialEq for QuantileSketch {
    fn eq(&self, other: &Self) -> bool {
        self.0.count() == other.0.count() && self.quantile(0.5) == other.quantile(0.5) && self.quantile(0.95) == other.quantile(0.95)
    }
}

impl QuantileSketch {
    pub fn add(&mut self, value: f64) {
        self.0.add(value);
    }

    pub fn merge(&mut self, other: &QuantileSketch) {
        // Only fails for sketches of different configurations; every sketch here shares one.
        let _ = self.0.merge(&other.0);
    }

    /// The q-quantile, NaN for an empty sketch.
    pub fn quantile(&self, q: f64) -> f64 {
        self.0.quantile(q).ok().flatten().unwrap_or(f64::NAN)
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn exact(sorted: &[f64], q: f64) -> f64 {
        sorted[(q * (sorted.len() - 1) as f64) as usize]
    }

    proptest! {
        #[test]
        fn quantiles_stay_within_the_documented_relative_error(values in prop::collection::vec(0.0f64..2000.0, 1..500), split in 0usize..500) {
            let split = split.min(values.len());
            let (mut a, mut b) = (QuantileSketch::default(), QuantileSketch::default());
            for v in &values[..split] { a.add(*v); }
            for v in &values[split..] { b.add(*v); }
            a.merge(&b);
            let mut sorted = values.clone();
            sorted.sort_by(f64::total_cmp);
            for q in [0.5, 0.95] {
                let (estimate, truth) = (a.quantile(q), exact(&sorted, q));
                prop_assert!((estimate - truth).abs() <= RELATIVE_ACCURACY * truth.abs() + 1e-9, "q{q}: {estimate} vs {truth}");
            }
        }
    }
}
