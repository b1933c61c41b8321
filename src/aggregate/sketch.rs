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

/// Occupied bins a sparse store holds before it considers turning dense.
const SPARSE_LIMIT: usize = 16;
/// A dense store spans at most this many bins per occupied bin (4 bytes a bin against a
/// sparse store's 8 per occupied bin: at most twice the sparse size).
const DENSE_SPREAD: usize = 4;

/// Where the counts live. A pane of a few readings has a few bins, kept as a sorted list;
/// a busy pane (an hour or a day of one sensor) has many bins close together, kept as an
/// array indexed by bin, so that adding a sample is one load instead of a binary search
/// through scattered memory.
#[derive(Clone, serde::Serialize, serde::Deserialize)]
enum Store {
    /// Occupied bins, ascending by index.
    Sparse(Vec<Bin>),
    /// `counts[i]` is the count of bin `first + i`; `occupied` counts the non-zero ones.
    Dense { first: i32, counts: Vec<u32>, occupied: usize },
}

impl Default for Store {
    fn default() -> Self {
        Store::Sparse(Vec::new())
    }
}

#[derive(Clone, Default, serde::Serialize, serde::Deserialize)]
pub struct QuantileSketch {
    store: Store,
}

impl PartialEq for QuantileSketch {
    /// Equal when they hold the same counts, however they store them.
    fn eq(&self, other: &Self) -> bool {
        self.bins().eq(other.bins())
    }
}

impl std::fmt::Debug for QuantileSketch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "QuantileSketch(n={}, p50={}, p95={})", self.count(), self.quantile(0.5), self.quantile(0.95))
    }
}

impl QuantileSketch {
    pub fn add(&mut self, value: f64) {
        self.add_count(index_of(value), 1);
    }

    /// Adds a sample whose bin was computed once with `bin_of` (a reading enters one
    /// sketch per window spec; the logarithm is the same for all of them).
    pub fn add_to_bin(&mut self, bin: SketchBin) {
        self.add_count(bin.0, 1);
    }

    pub fn merge(&mut self, other: &QuantileSketch) {
        match (&mut self.store, &other.store) {
            (_, Store::Sparse(theirs)) if theirs.is_empty() => {}
            (Store::Sparse(mine), Store::Sparse(theirs)) => {
                *mine = merge_sorted(mine, theirs);
                self.collapse_lowest();
                self.densify_if_compact();
            }
            (Store::Sparse(mine), Store::Dense { .. }) => {
                // Counts add up in any order: start from the dense one.
                let mine = std::mem::take(mine);
                self.store = other.store.clone();
                for bin in mine {
                    self.add_count(bin.index, bin.count);
                }
            }
            (Store::Dense { .. }, _) => {
                for bin in other.bins() {
                    self.add_count(bin.index, bin.count);
                }
            }
        }
    }

    /// Samples added.
    pub fn count(&self) -> u64 {
        self.bins().map(|b| u64::from(b.count)).sum()
    }

    /// The q-quantile, NaN for an empty sketch.
    pub fn quantile(&self, q: f64) -> f64 {
        let count = self.count();
        if count == 0 {
            return f64::NAN;
        }
        let rank = (q.clamp(0.0, 1.0) * (count - 1) as f64).floor() as u64;
        let mut seen = 0u64;
        let mut last = None;
        for bin in self.bins() {
            seen += u64::from(bin.count);
            if seen > rank {
                return value_of(bin.index);
            }
            last = Some(bin.index);
        }
        last.map_or(f64::NAN, value_of)
    }

    /// Occupied bins, ascending by index.
    fn bins(&self) -> impl Iterator<Item = Bin> + '_ {
        let (sparse, dense) = match &self.store {
            Store::Sparse(bins) => (Some(bins.iter().copied()), None),
            Store::Dense { first, counts, .. } => {
                let first = *first;
                let occupied = counts.iter().enumerate().filter(|(_, count)| **count > 0);
                (None, Some(occupied.map(move |(i, count)| Bin { index: first + i as i32, count: *count })))
            }
        };
        sparse.into_iter().flatten().chain(dense.into_iter().flatten())
    }

    fn add_count(&mut self, index: i32, count: u32) {
        match &mut self.store {
            Store::Sparse(bins) => match bins.binary_search_by_key(&index, |b| b.index) {
                Ok(at) => bins[at].count = bins[at].count.saturating_add(count),
                Err(at) => {
                    bins.insert(at, Bin { index, count });
                    self.collapse_lowest();
                    self.densify_if_compact();
                }
            },
            Store::Dense { first, counts, occupied } => {
                let offset = i64::from(index) - i64::from(*first);
                if let Some(slot) = usize::try_from(offset).ok().and_then(|at| counts.get_mut(at)) {
                    *occupied += usize::from(*slot == 0);
                    *slot = slot.saturating_add(count);
                    return;
                }
                // Outside the range: grow it while the store stays compact, else go sparse.
                let (low, high) = (index.min(*first), index.max(*first + counts.len() as i32 - 1));
                let span = (i64::from(high) - i64::from(low) + 1) as usize;
                if span <= DENSE_SPREAD * (*occupied + 1) && *occupied < MAX_BINS {
                    if index < *first {
                        counts.splice(0..0, std::iter::repeat_n(0, (*first - index) as usize));
                        *first = index;
                    } else {
                        counts.resize(span, 0);
                    }
                    counts[(index - *first) as usize] = count;
                    *occupied += 1;
                } else {
                    let mut bins: Vec<Bin> = self.bins().collect();
                    let at = bins.partition_point(|b| b.index < index);
                    bins.insert(at, Bin { index, count });
                    self.store = Store::Sparse(bins);
                    self.collapse_lowest();
                }
            }
        }
    }

    /// A sparse store whose bins lie close together turns dense.
    fn densify_if_compact(&mut self) {
        let Store::Sparse(bins) = &self.store else { return };
        let (Some(low), Some(high)) = (bins.first(), bins.last()) else { return };
        let span = (i64::from(high.index) - i64::from(low.index) + 1) as usize;
        if bins.len() <= SPARSE_LIMIT || span > DENSE_SPREAD * bins.len() {
            return;
        }
        let first = low.index;
        let mut counts = vec![0u32; span];
        for bin in bins {
            counts[(bin.index - first) as usize] = bin.count;
        }
        self.store = Store::Dense { first, counts, occupied: bins.len() };
    }

    fn collapse_lowest(&mut self) {
        let Store::Sparse(bins) = &mut self.store else { return };
        if bins.len() > MAX_BINS {
            let excess = bins.len() - MAX_BINS;
            let folded: u32 = bins[..=excess].iter().fold(0u32, |sum, b| sum.saturating_add(b.count));
            bins.drain(..excess);
            bins[0].count = folded;
        }
    }
}

/// The bins of two sorted lists, counts added where both hold one.
fn merge_sorted(mine: &[Bin], theirs: &[Bin]) -> Vec<Bin> {
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
    merged
}

/// The bin a value falls in, for `QuantileSketch::add_to_bin`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SketchBin(i32);

pub fn bin_of(value: f64) -> SketchBin {
    SketchBin(index_of(value))
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
        assert_eq!(sketch.bins().count(), 3, "35.0..35.1 share a bin, 80 and 0 have their own");
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
        assert!(sketch.bins().count() <= MAX_BINS);
        assert_eq!(sketch.count(), 10_007);
        assert!(sketch.quantile(1.0) > 1e300, "past the bin cap the lowest bins merge, the top stays exact");
    }

    #[test]
    fn a_busy_sketch_turns_dense_and_back_to_sparse_with_the_same_counts() {
        let mut sketch = QuantileSketch::default();
        let values: Vec<f64> = (0..400).map(|i| 30.0 + f64::from(i % 40)).collect();
        for v in &values {
            sketch.add(*v);
        }
        assert!(matches!(sketch.store, Store::Dense { .. }), "40 close bins are stored densely");
        let before: Vec<Bin> = sketch.bins().collect();
        sketch.add(1e12);
        assert!(matches!(sketch.store, Store::Sparse(_)), "a far outlier would spread the array");
        let after: Vec<Bin> = sketch.bins().collect();
        assert_eq!(&after[..before.len()], &before[..]);
        assert_eq!(after.len(), before.len() + 1);
        assert_eq!(sketch.count(), 401);
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

        /// Busy panes (many close values, dense store) merged with sparse ones in any order,
        /// with outliers that force a store back to sparse.
        #[test]
        fn dense_and_sparse_stores_merge_to_the_sketch_of_the_union(
            values in prop::collection::vec(prop_oneof![8 => 20.0f64..90.0, 1 => 0.001f64..1e6], 1..600),
            cuts in (0usize..600, 0usize..600),
        ) {
            let (a, b) = (cuts.0.min(values.len()), cuts.1.min(values.len()));
            let (low, high) = (a.min(b), a.max(b));
            let parts: Vec<QuantileSketch> = [&values[..low], &values[low..high], &values[high..]]
                .iter()
                .map(|part| {
                    let mut sketch = QuantileSketch::default();
                    for v in *part { sketch.add(*v); }
                    sketch
                })
                .collect();
            let mut whole = QuantileSketch::default();
            for v in &values { whole.add(*v); }
            for order in [[0, 1, 2], [2, 1, 0], [1, 0, 2]] {
                let mut merged = parts[order[0]].clone();
                merged.merge(&parts[order[1]]);
                merged.merge(&parts[order[2]]);
                prop_assert_eq!(&merged, &whole);
                prop_assert_eq!(merged.count(), values.len() as u64);
            }
            let mut sorted = values.clone();
            sorted.sort_by(f64::total_cmp);
            for q in [0.0, 0.25, 0.5, 0.95, 1.0] {
                let (estimate, truth) = (whole.quantile(q), exact(&sorted, q));
                prop_assert!((estimate - truth).abs() <= RELATIVE_ACCURACY * truth.abs() + 1e-9, "q{q}: {estimate} vs {truth}");
            }
        }
    }
}
