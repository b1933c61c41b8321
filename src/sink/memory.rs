//! The in-memory store of recent window results: what `/api/v1/series` serves and the
//! demo's time-series store. Bounded: each (kind, window) keeps its newest results only.

use std::collections::btree_map::Entry;
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::{Arc, RwLock};

use smol_str::SmolStr;

use crate::model::{Kind, LevelValues, WindowResult, WindowValues};
use crate::rollup::{AreaLevel, AreaResult};

/// Results kept per (kind, window label) before the oldest are dropped from memory.
pub const DEFAULT_RESULTS_PER_SERIES: usize = 20_000;

/// Newest results per (kind, window label); looked up per window written (foldhash).
type SeriesRings = HashMap<(Kind, SmolStr), VecDeque<Arc<WindowResult>>, foldhash::fast::RandomState>;

#[derive(Debug)]
pub struct MemoryStore {
    capacity: usize,
    series: RwLock<SeriesRings>,
}

/// A filter for `query`.
#[derive(Debug, Clone, Default)]
pub struct SeriesQuery {
    pub kind: Option<Kind>,
    pub window: Option<String>,
    pub sensor_id: Option<String>,
    pub district: Option<String>,
    pub since_ms: Option<i64>,
    pub limit: usize,
}

impl Default for MemoryStore {
    fn default() -> Self {
        MemoryStore::new(DEFAULT_RESULTS_PER_SERIES)
    }
}

impl MemoryStore {
    pub fn new(capacity: usize) -> Self {
        MemoryStore { capacity, series: RwLock::new(HashMap::default()) }
    }

    pub fn insert_batch(&self, results: impl IntoIterator<Item = Arc<WindowResult>>) {
        let mut series = self.series.write().unwrap_or_else(|e| e.into_inner());
        for result in results {
            let ring = series.entry((result.kind, result.window.clone())).or_default();
            if ring.len() == self.capacity {
                ring.pop_front();
            }
            ring.push_back(result);
        }
    }

    /// Matching results, oldest first, at most `limit` (the newest ones).
    pub fn query(&self, q: &SeriesQuery) -> Vec<Arc<WindowResult>> {
        let series = self.series.read().unwrap_or_else(|e| e.into_inner());
        let mut out: Vec<Arc<WindowResult>> = series
            .iter()
            .filter(|((kind, window), _)| q.kind.is_none_or(|k| k == *kind) && q.window.as_ref().is_none_or(|w| w == window))
            .flat_map(|(_, ring)| ring.iter())
            .filter(|r| q.sensor_id.as_ref().is_none_or(|s| *s == r.sensor_id))
            .filter(|r| q.district.as_ref().is_none_or(|d| *d == r.area.district))
            .filter(|r| q.since_ms.is_none_or(|t| r.end_ms >= t))
            .cloned()
            .collect();
        out.sort_by(|a, b| (a.end_ms, &a.sensor_id, &a.window).cmp(&(b.end_ms, &b.sensor_id, &b.window)));
        let skip = out.len().saturating_sub(q.limit);
        out.drain(..skip);
        out
    }

    /// Per district: the mean over sensors of each sensor's latest window mean, the number
    /// of sensors, and the end of the newest window.
    pub fn latest_by_district(&self, kind: Kind, window: &str) -> BTreeMap<String, (f64, usize, i64)> {
        let series = self.series.read().unwrap_or_else(|e| e.into_inner());
        let Some(ring) = series.get(&(kind, SmolStr::new(window))) else { return BTreeMap::new() };
        let mut latest: HashMap<&str, &WindowResult> = HashMap::new();
        for r in ring {
            let slot = latest.entry(r.sensor_id.as_str()).or_insert(r);
            if r.end_ms > slot.end_ms {
                *slot = r;
            }
        }
        let mut out: BTreeMap<String, (f64, usize, i64)> = BTreeMap::new();
        for r in latest.values() {
            if let WindowValues::Level(LevelValues { mean, .. }) = r.values {
                let entry = out.entry(r.area.district.to_string()).or_insert((0.0, 0, i64::MIN));
                entry.0 += mean;
                entry.1 += 1;
                entry.2 = entry.2.max(r.end_ms);
            }
        }
        for entry in out.values_mut() {
            entry.0 /= entry.1 as f64;
        }
        out
    }

    pub fn len(&self) -> usize {
        self.series.read().unwrap_or_else(|e| e.into_inner()).values().map(VecDeque::len).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// (kind, window label, level, area id).
type AreaKey = (Kind, SmolStr, AreaLevel, SmolStr);

/// Area results kept in the history ring (newest first out when full).
pub const AREA_HISTORY: usize = 50_000;

/// The latest roll-up per (kind, window, level, area), what `/api/v1/areas` serves, and a
/// bounded history of every area result written.
#[derive(Debug, Default)]
pub struct AreaStore {
    latest: RwLock<BTreeMap<AreaKey, Arc<AreaResult>>>,
    history: RwLock<VecDeque<Arc<AreaResult>>>,
}

impl AreaStore {
    /// Keeps each area's newest window (a correction of the same window replaces it).
    pub fn insert_batch(&self, results: impl IntoIterator<Item = AreaResult>) {
        let mut latest = self.latest.write().unwrap_or_else(|e| e.into_inner());
        let mut history = self.history.write().unwrap_or_else(|e| e.into_inner());
        for result in results {
            let result = Arc::new(result);
            if history.len() == AREA_HISTORY {
                history.pop_front();
            }
            history.push_back(result.clone());
            match latest.entry((result.kind, result.window.clone(), result.level, result.area.clone())) {
                Entry::Occupied(newer) if newer.get().end_ms > result.end_ms => {}
                Entry::Occupied(mut older) => {
                    older.insert(result);
                }
                Entry::Vacant(slot) => {
                    slot.insert(result);
                }
            }
        }
    }

    /// Every area result written (up to `AREA_HISTORY`), in write order.
    pub fn history(&self) -> Vec<Arc<AreaResult>> {
        self.history.read().unwrap_or_else(|e| e.into_inner()).iter().cloned().collect()
    }

    pub fn query(&self, kind: Option<Kind>, window: Option<&str>, level: Option<AreaLevel>) -> Vec<Arc<AreaResult>> {
        let latest = self.latest.read().unwrap_or_else(|e| e.into_inner());
        latest
            .iter()
            .filter(|((k, w, l, _), _)| kind.is_none_or(|x| x == *k) && window.is_none_or(|x| x == w) && level.is_none_or(|x| x == *l))
            .map(|(_, r)| r.clone())
            .collect()
    }

    pub fn len(&self) -> usize {
        self.latest.read().unwrap_or_else(|e| e.into_inner()).len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Area;

    fn result(sensor: &str, district: &str, end_ms: i64, mean: f64) -> Arc<WindowResult> {
        Arc::new(WindowResult {
            kind: Kind::Pm25,
            sensor_id: sensor.into(),
            window: "1m".into(),
            start_ms: end_ms - 60_000,
            end_ms,
            area: Area { district: district.into(), ..Area::default() },
            values: WindowValues::Level(LevelValues::single(mean)),
            coverage: None,
            domain: None,
        })
    }

    #[test]
    fn keeps_the_newest_results_and_filters() {
        let store = MemoryStore::new(3);
        store.insert_batch((0..5).map(|i| result(if i % 2 == 0 { "a" } else { "b" }, "hd", i * 60_000, i as f64)));
        assert_eq!(store.len(), 3);
        let all = store.query(&SeriesQuery { limit: 10, ..Default::default() });
        assert_eq!(all.iter().map(|r| r.end_ms / 60_000).collect::<Vec<_>>(), vec![2, 3, 4]);
        let a = store.query(&SeriesQuery { sensor_id: Some("a".into()), limit: 10, ..Default::default() });
        assert_eq!(a.len(), 2);
        let newest = store.query(&SeriesQuery { limit: 1, ..Default::default() });
        assert_eq!(newest[0].end_ms, 4 * 60_000);
    }

    #[test]
    fn district_summary_averages_each_sensors_latest_mean() {
        let store = MemoryStore::new(100);
        store.insert_batch([
            result("a", "hd", 60_000, 10.0),
            result("a", "hd", 120_000, 20.0),
            result("b", "hd", 60_000, 40.0),
            result("c", "cy", 60_000, 5.0),
        ]);
        let summary = store.latest_by_district(Kind::Pm25, "1m");
        assert_eq!(summary["hd"], (30.0, 2, 120_000));
        assert_eq!(summary["cy"].1, 1);
    }

    fn area_result(area: &str, end_ms: i64, mean: f64) -> AreaResult {
        AreaResult {
            kind: Kind::Pm25,
            window: "1m".into(),
            start_ms: end_ms - 60_000,
            end_ms,
            level: AreaLevel::Grid,
            area: area.into(),
            district: "hd".into(),
            mean: Some(mean),
            max: Some(mean),
            sensors_reporting: 1,
            sensors_silent: None,
            piles_offline: None,
            availability: None,
            fault_ratio: None,
            utilisation: None,
            hotspots: None,
        }
    }

    #[test]
    fn an_area_keeps_its_newest_window_and_a_correction_of_it_replaces_it() {
        let store = AreaStore::default();
        store.insert_batch([area_result("g1", 120_000, 10.0), area_result("g1", 60_000, 5.0), area_result("g2", 60_000, 7.0)]);
        let means = |store: &AreaStore| {
            let mut latest: Vec<_> = store.query(None, None, None).iter().map(|r| (r.area.to_string(), r.end_ms, r.mean)).collect();
            latest.sort_by(|a, b| a.0.cmp(&b.0));
            latest
        };
        assert_eq!(
            means(&store),
            [("g1".into(), 120_000, Some(10.0)), ("g2".into(), 60_000, Some(7.0))],
            "an older window does not replace a newer"
        );
        store.insert_batch([area_result("g1", 120_000, 12.0)]);
        assert_eq!(means(&store)[0], ("g1".into(), 120_000, Some(12.0)), "a correction replaces");
        assert_eq!(store.history().len(), 4, "every result is in the history");
    }
}
