//! Mergeable quantiles: a DDSketch (Masson, Rim and Lee, VLDB 2019) with 1 % relative
//! accuracy, kept as a sorted list of occupied bins so that a pane holding a handful of
//! readings costs a handful of bytes. Error bound: for the q-quantile the sketch returns x̂
//! with |x̂ − x| ≤ 0.01·|x|, where x is the exact sample at rank ⌊q·(n − 1)⌋ in sorted order
//! (tested below against sorting). Merging two sketches gives the sketch of the union.

/// Relative accuracy of every quantile citysense reports.
pub const RELATIVE_ACCURACY: f64 = 0.01;
/// γ = (1 + α) / (1 − α): bin k holds the magnitudes in (γ^(k−1), γ^k].
const GAMMA: f64 = (1.0 + RELATIVE_ACCURACY) / (1.0 - RELATIVE_ACCURACY);
/// ln γ (checked against `GAMMA.ln()` in the tests; `ln` is not const).
const LN_GAMMA: f64 = 0.020_000_666_706_669_6;
/// Magnitudes below this count as zero.
const MIN_VALUE: f64 = 1e-9;
/// Bin keys are clamped to this range (1e-9 → −1036, f64::MAX → 35 490).
const MIN_KEY: i32 = -2_000;
const MAX_KEY: i32 = 36_000;
/// Added to a key so that positive values get positive indices and negative values
/// negative ones, ordered like the values, with zero at index 0.
const KEY_OFFSET: i32 = 1 - MIN_KEY;
/// Bins per sketch before the two lowest are merged (far more than a window's spread
/// needs: 0.1 to 2,000 µg/m³ is ~500 bins). Keeps hostile values from growing a sketch.
const MAX_BINS: usize = 2_048;

#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
struct Bin {
    /// Ordered like the values it holds; see `index_of`.
    index: i32,
    count: u32,
}

#[derive(Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct QuantileSketch {
    /// Occupied bins, ascending by index.
    bins: Vec<Bin>,
}

impl std::fmt::Debug for QuantileSketch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "QuantileSketch(n={}, p50={}, p95={})", self.count(), self.quantile(0.5), self.quantile(0.95))
    }
}

impl QuantileSketch {
    pub fn add(&mut self, value: f64) {
        let index = index_of(value);
        match self.bins.binary_search_by_key(&index, |b| b.index) {
            Ok(at) => self.bins[at].count = self.bins[at].count.saturating_add(1),
            Err(at) => {
                self.bins.insert(at, Bin { index, count: 1 });
                self.collapse_lowest();
            }
        }
    }

    pub fn merge(&mut self, other: &QuantileSketch) {
        if other.bins.is_empty() {
            return;
        }
        if self.bins.is_empty() {
            self.bins.clone_from(&other.bins);
            return;
        }
        let (mine, theirs) = (&self.bins, &other.bins);
        let mut merged = Vec::with_capacity(mine.len() + theirs.len());
        let (mut i, mut j) = (0, 0);
        while i < mine.len() && j < theirs.len() {
            let (a, b) = (mine[i], theirs[j]);
            match a.index.cmp(&b.index) {
                std::cmp::Ordering::Less => {
                    merged.push(a);
                    i += 1;
                }
                std::cmp::Ordering::Greater => {
                    merged.push(b);
                    j += 1;
                }
                std::cmp::Ordering::Equal => {
                    merged.push(Bin { index: a.index, count: a.count.saturating_add(b.count) });
                    i += 1;
                    j += 1;
                }
            }
        }
        merged.extend_from_slice(&mine[i..]);
        merged.extend_from_slice(&theirs[j..]);
        self.bins = merged;
        self.collapse_lowest();
    }

    /// Samples added.
    pub fn count(&self) -> u64 {
        self.bins.iter().map(|b| u64::from(b.count)).sum()
    }

    /// The q-quantile, NaN for an empty sketch.
    pub fn quantile(&self, q: f64) -> f64 {
        let count = self.count();
        if count == 0 {
            return f64::NAN;
        }
        let rank = (q.clamp(0.0, 1.0) * (count - 1) as f64).floor() as u64;
        let mut seen = 0u64;
        for bin in &self.bins {
            seen += u64::from(bin.count);
            if seen > rank {
                return value_of(bin.index);
            }
        }
        self.bins.last().map_or(f64::NAN, |b| value_of(b.index))
    }

    fn collapse_lowest(&mut self) {
        while self.bins.len() > MAX_BINS {
            let lowest = self.bins.remove(0);
            self.bins[0].count = self.bins[0].count.saturating_add(lowest.count);
        }
    }
}

/// The bin index of `value`: 0 for (near) zero, `key + KEY_OFFSET` for positive values,
/// its negation for negative ones (so indices sort like the values).
fn index_of(value: f64) -> i32 {
    let magnitude = value.abs();
    // NaN lands with zero; validation refuses NaN before here.
    if magnitude.is_nan() || magnitude < MIN_VALUE {
        return 0;
    }
    let key = (magnitude.ln() / LN_GAMMA).ceil().clamp(f64::from(MIN_KEY), f64::from(MAX_KEY)) as i32;
    if value > 0.0 {
        key + KEY_OFFSET
    } else {
        -(key + KEY_OFFSET)
    }
}

/// The value a bin reports: 2γ^k / (γ + 1), within α of everything in (γ^(k−1), γ^k].
fn value_of(index: i32) -> f64 {
    if index == 0 {
        return 0.0;
    }
    let key = index.abs() - KEY_OFFSET;
    let magnitude = 2.0 * (f64::from(key) * LN_GAMMA).exp() / (GAMMA + 1.0);
    magnitude.copysign(f64::from(index))
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn exact(sorted: &[f64], q: f64) -> f64 {
        sorted[(q * (sorted.len() - 1) as f64) as usize]
    }

    #[test]
    fn the_log_constant_is_ln_gamma() {
        assert!((LN_GAMMA - GAMMA.ln()).abs() < 1e-15);
    }

    #[test]
    fn a_few_readings_cost_a_few_bins() {
        let mut sketch = QuantileSketch::default();
        for v in [35.0, 35.1, 35.05, 80.0, 0.0] {
            sketch.add(v);
        }
        assert_eq!(sketch.bins.len(), 3, "35.0..35.1 share a bin, 80 and 0 have their own");
        assert_eq!(sketch.count(), 5);
        assert_eq!(sketch.quantile(0.0), 0.0);
        assert!((sketch.quantile(1.0) - 80.0).abs() <= 0.8);
    }

    #[test]
    fn hostile_magnitudes_neither_panic_nor_grow_without_bound() {
        let mut sketch = QuantileSketch::default();
        for v in [f64::MAX, f64::MIN, f64::INFINITY, f64::NEG_INFINITY, f64::NAN, 1e-300, -0.0] {
            sketch.add(v);
        }
        for i in 0..10_000 {
            sketch.add(1.001f64.powi(i * 25));
        }
        assert!(sketch.bins.len() <= MAX_BINS);
        assert_eq!(sketch.count(), 10_007);
        assert!(sketch.quantile(1.0) > 1e300, "past the bin cap the lowest bins merge, the top stays exact");
    }

    proptest! {
        #[test]
        fn quantiles_stay_within_the_documented_relative_error(
            values in prop::collection::vec(prop_oneof![0.0f64..2000.0, -50.0f64..50.0], 1..500),
            split in 0usize..500,
        ) {
            let split = split.min(values.len());
            let (mut a, mut b) = (QuantileSketch::default(), QuantileSketch::default());
            for v in &values[..split] { a.add(*v); }
            for v in &values[split..] { b.add(*v); }
            a.merge(&b);
            let mut whole = QuantileSketch::default();
            for v in &values { whole.add(*v); }
            prop_assert_eq!(&a, &whole, "merging is the sketch of the union");
            let mut sorted = values.clone();
            sorted.sort_by(f64::total_cmp);
            for q in [0.0, 0.5, 0.95, 1.0] {
                let (estimate, truth) = (a.quantile(q), exact(&sorted, q));
                prop_assert!((estimate - truth).abs() <= RELATIVE_ACCURACY * truth.abs() + 1e-9, "q{q}: {estimate} vs {truth}");
            }
        }
    }
}
