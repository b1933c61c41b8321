//! The open windows of one input partition: duplicate detection, lateness, the tracked-sensor
//! cap, accumulation, and closing windows as the partition's watermark passes them.
//!
//! Windows are built from panes (one slide long): a reading updates one pane per spec and
//! a window is the merge of the panes it covers when it closes, so a 24 h window sliding
//! every hour costs one update per reading, not 24. Every accepted reading enters all
//! windows that contain it, or none: if any of them has already closed the reading is
//! `late`. Lateness is checked before duplicates, so a
//! re-sent record is `late` once its windows closed and `duplicate` while they are open;
//! that makes pruning the duplicate memory of closed windows invisible.
//!
//! Everything a partition remembers between records is in `OpenState`, which serialises
//! into a checkpoint (`pipeline::checkpoint`): a restored partition continues exactly where
//! the checkpoint was taken.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

use super::{Watermark, WindowSpec};
use crate::aggregate::Accumulator;
use crate::decode::{Reason, Rejection};
use crate::model::{Area, Kind, Reading, WindowResult};

/// Event-time settings shared by every partition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WindowTiming {
    pub out_of_orderness_ms: i64,
    pub allowed_lateness_ms: i64,
    /// Local time offset used to align windows (Asia/Shanghai: +8 h).
    pub tz_offset_ms: i64,
    pub late_policy: LatePolicy,
}

impl WindowTiming {
    /// How long closed windows stay correctable (0 under `LatePolicy::DeadLetter`).
    pub fn update_horizon_ms(&self) -> i64 {
        match self.late_policy {
            LatePolicy::DeadLetter => 0,
            LatePolicy::Update { horizon_ms } => horizon_ms,
        }
    }
}

/// What happens to a record whose window has already closed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LatePolicy {
    /// Dead-letter it as `late`.
    DeadLetter,
    /// Add it to the closed window and emit the corrected window again (the same point,
    /// overwritten), while the window closed less than `horizon_ms` ago.
    Update { horizon_ms: i64 },
}

/// The cap on tracked sensors, shared by all partitions of one pipeline.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SensorBudget {
    pub tracked: usize,
    pub cap: usize,
}

/// A window end, sensor and spec: one window of one sensor.
type WindowKey = (i64, Arc<str>, usize);

/// One slide-sized slice of event time for one sensor and spec. A window is the merge of
/// the `size / slide` panes it covers (one pane for a tumbling window), so a reading
/// updates one pane per spec however many sliding windows overlap it.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
struct Pane {
    acc: Accumulator,
}

/// What one sensor needs remembered between records.
#[derive(Debug, Default, serde::Serialize, serde::Deserialize)]
struct SensorState {
    area: Area,
    /// Panes held for this sensor (all specs); the sensor is forgotten when none are left.
    panes: usize,
    /// Event times accepted, pruned once every window they fed can no longer change.
    seen_ts: BTreeMap<i64, Option<u64>>,
    seen_seq: HashMap<u64, i64>,
}

#[derive(Debug)]
pub struct PartitionWindows {
    kind: Kind,
    specs: Arc<[WindowSpec]>,
    timing: WindowTiming,
    open: OpenState,
    last_record_wall_ms: i64,
}

/// The part of a partition's window state that a checkpoint carries.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
struct OpenState {
    watermark: Watermark,
    sensors: HashMap<Arc<str>, SensorState>,
    /// Panes by (sensor, spec), ordered by pane end.
    panes: HashMap<(Arc<str>, usize), BTreeMap<i64, Pane>>,
    /// Windows with data not yet emitted, ordered by end: closing pops from the front.
    pending: BTreeSet<WindowKey>,
    /// When each pane may go: once the watermark reaches this, no window using it can
    /// close or be corrected any more. (threshold, sensor, spec, pane end)
    expiry: BTreeSet<(i64, Arc<str>, usize, i64)>,
}

impl PartitionWindows {
    pub fn new(kind: Kind, specs: Arc<[WindowSpec]>, timing: WindowTiming, now_wall_ms: i64) -> Self {
        PartitionWindows {
            kind,
            specs,
            open: OpenState {
                watermark: Watermark::new(timing.out_of_orderness_ms),
                sensors: HashMap::new(),
                panes: HashMap::new(),
                pending: BTreeSet::new(),
                expiry: BTreeSet::new(),
            },
            last_record_wall_ms: now_wall_ms,
            timing,
        }
    }

    /// The open state as checkpoint bytes (bincode).
    pub fn snapshot(&self) -> Vec<u8> {
        // Serialising plain maps of numbers and strings into memory cannot fail.
        bincode::serialize(&self.open).unwrap_or_default()
    }

    /// A partition continuing from `snapshot`; its sensors count against `budget`.
    pub fn restore(
        kind: Kind,
        specs: Arc<[WindowSpec]>,
        timing: WindowTiming,
        now_wall_ms: i64,
        snapshot: &[u8],
        budget: &mut SensorBudget,
    ) -> Result<Self, bincode::Error> {
        let open: OpenState = bincode::deserialize(snapshot)?;
        budget.tracked += open.sensors.len();
        Ok(PartitionWindows { kind, specs, timing, open, last_record_wall_ms: now_wall_ms })
    }

    pub fn kind(&self) -> Kind {
        self.kind
    }

    pub fn watermark(&self) -> i64 {
        self.open.watermark.current()
    }

    pub fn tracked_sensors(&self) -> usize {
        self.open.sensors.len()
    }

    /// Windows with data that have not closed yet.
    pub fn open_windows(&self) -> usize {
        self.open.pending.len()
    }

    pub fn last_record_wall_ms(&self) -> i64 {
        self.last_record_wall_ms
    }

    /// Adds one validated reading at `offset`; closes the windows its watermark passes.
    pub fn add(
        &mut self,
        reading: Reading,
        budget: &mut SensorBudget,
        now_wall_ms: i64,
        closed: &mut Vec<WindowResult>,
    ) -> Result<(), Rejection> {
        self.last_record_wall_ms = now_wall_ms;
        let (specs, timing) = (self.specs.clone(), self.timing.clone());
        let vendor = reading.vendor.as_str();
        let reject = |reason, detail: String| Err(Rejection::new(reason, detail).with_vendor(vendor));

        let watermark = self.open.watermark.current();
        let update_horizon = timing.update_horizon_ms();
        for spec in specs.iter() {
            // The earliest-closing window containing the reading ends with its pane.
            let pane_end = pane_end(reading.ts_ms, spec, timing.tz_offset_ms);
            let closes_at = pane_end + timing.allowed_lateness_ms;
            if closes_at.saturating_add(update_horizon) <= watermark {
                return reject(
                    Reason::Late,
                    format!(
                        "window {} starting {} closed; watermark {}",
                        spec.label,
                        crate::decode::validate::format_ms(pane_end - spec.size_ms),
                        crate::decode::validate::format_ms(watermark)
                    ),
                );
            }
        }
        if let Some(state) = self.open.sensors.get(reading.sensor_id.as_str()) {
            if state.seen_ts.contains_key(&reading.ts_ms) {
                return reject(Reason::Duplicate, format!("sensor {} already sent ts {}", reading.sensor_id, reading.ts_ms));
            }
            if let Some(seq) = reading.seq {
                if let Some(ts) = state.seen_seq.get(&seq) {
                    return reject(Reason::Duplicate, format!("sensor {} already sent seq {seq} (ts {ts})", reading.sensor_id));
                }
            }
        }
        let sensor: Arc<str> = match self.open.sensors.get_key_value(reading.sensor_id.as_str()) {
            Some((key, _)) => key.clone(),
            None => {
                if budget.tracked >= budget.cap {
                    return reject(Reason::Cardinality, format!("{} sensors tracked, the configured cap", budget.cap));
                }
                budget.tracked += 1;
                let key: Arc<str> = Arc::from(reading.sensor_id.as_str());
                self.open.sensors.insert(key.clone(), SensorState::default());
                key
            }
        };
        let Some(state) = self.open.sensors.get_mut(&sensor) else { return Ok(()) };
        state.seen_ts.insert(reading.ts_ms, reading.seq);
        if let Some(seq) = reading.seq {
            state.seen_seq.insert(seq, reading.ts_ms);
        }
        state.area = reading.area.clone();
        let mut corrected = Vec::new();
        for (spec_index, spec) in specs.iter().enumerate() {
            let end = pane_end(reading.ts_ms, spec, timing.tz_offset_ms);
            let panes = self.open.panes.entry((sensor.clone(), spec_index)).or_default();
            let pane = panes.entry(end).or_insert_with(|| {
                state.panes += 1;
                let last_window_end = end + spec.size_ms - spec.slide_ms;
                self.open.expiry.insert((last_window_end + timing.allowed_lateness_ms + update_horizon, sensor.clone(), spec_index, end));
                // Every window this pane belongs to that has not closed yet.
                let mut window_end = end;
                while window_end <= last_window_end {
                    if window_end + timing.allowed_lateness_ms > watermark {
                        self.open.pending.insert((window_end, sensor.clone(), spec_index));
                    }
                    window_end += spec.slide_ms;
                }
                Pane { acc: Accumulator::for_observation(&reading.observation) }
            });
            pane.acc.add(reading.ts_ms, &reading.observation);
            // Windows already closed but still correctable (late policy `update`).
            let mut window_end = end;
            while window_end <= end + spec.size_ms - spec.slide_ms && window_end + timing.allowed_lateness_ms <= watermark {
                corrected.push((window_end, sensor.clone(), spec_index));
                window_end += spec.slide_ms;
            }
        }
        for key in corrected {
            if let Some(window) = self.window_of(&key) {
                closed.push(window);
            }
        }
        self.open.watermark.observe(reading.ts_ms);
        self.close_due(budget, closed);
        Ok(())
    }

    /// Lets an idle partition follow the event time of its peers, then closes what is due.
    pub fn advance_idle(&mut self, watermark_ms: i64, budget: &mut SensorBudget, closed: &mut Vec<WindowResult>) {
        self.open.watermark.advance_to(watermark_ms);
        self.close_due(budget, closed);
    }

    /// The window `key` merged from its panes, or `None` when none holds data.
    fn window_of(&self, key: &WindowKey) -> Option<WindowResult> {
        let (end_ms, sensor, spec_index) = key;
        let spec = &self.specs[*spec_index];
        let panes = self.open.panes.get(&(sensor.clone(), *spec_index))?;
        let mut merged: Option<Accumulator> = None;
        for (_, pane) in panes.range(end_ms - spec.size_ms + 1..=*end_ms) {
            match merged.as_mut() {
                None => merged = Some(pane.acc.clone()),
                Some(acc) => acc.merge(&pane.acc),
            }
        }
        let acc = merged?;
        Some(WindowResult {
            kind: self.kind,
            sensor_id: sensor.to_string(),
            window: spec.label.clone(),
            start_ms: end_ms - spec.size_ms,
            end_ms: *end_ms,
            area: self.open.sensors.get(sensor).map(|s| s.area.clone()).unwrap_or_default(),
            values: acc.finish(*end_ms),
            coverage: None,
            domain: None,
        })
    }

    fn close_due(&mut self, budget: &mut SensorBudget, closed: &mut Vec<WindowResult>) {
        let timing = self.timing.clone();
        let watermark = self.open.watermark.current();
        while let Some(first) = self.open.pending.first() {
            if first.0 + timing.allowed_lateness_ms > watermark {
                break;
            }
            let Some(key) = self.open.pending.pop_first() else { break };
            if let Some(window) = self.window_of(&key) {
                closed.push(window);
            }
        }
        // Drop panes no window can use any more; forget sensors with nothing left.
        let mut touched = BTreeSet::new();
        while let Some(first) = self.open.expiry.first() {
            if first.0 > watermark {
                break;
            }
            let Some((_, sensor, spec_index, end)) = self.open.expiry.pop_first() else { break };
            let index_key = (sensor.clone(), spec_index);
            if let Some(panes) = self.open.panes.get_mut(&index_key) {
                if panes.remove(&end).is_some() {
                    if let Some(state) = self.open.sensors.get_mut(&sensor) {
                        state.panes -= 1;
                    }
                }
                if panes.is_empty() {
                    self.open.panes.remove(&index_key);
                }
            }
            touched.insert(sensor);
        }
        // Timestamps whose every window can no longer change are late if sent again.
        let min_size = self.specs.iter().map(|s| s.size_ms).min().unwrap_or(0);
        let horizon =
            watermark.saturating_sub(timing.allowed_lateness_ms).saturating_sub(timing.update_horizon_ms()).saturating_sub(min_size);
        for sensor in touched {
            let Some(state) = self.open.sensors.get_mut(&sensor) else { continue };
            if state.panes == 0 {
                self.open.sensors.remove(&sensor);
                budget.tracked -= 1;
                continue;
            }
            while let Some(entry) = state.seen_ts.first_entry() {
                if *entry.key() >= horizon {
                    break;
                }
                if let Some(seq) = entry.remove() {
                    state.seen_seq.remove(&seq);
                }
            }
        }
    }
}

/// The end of the slide-sized pane of `spec` that contains `ts_ms`.
fn pane_end(ts_ms: i64, spec: &WindowSpec, tz_offset_ms: i64) -> i64 {
    (ts_ms + tz_offset_ms).div_euclid(spec.slide_ms) * spec.slide_ms - tz_offset_ms + spec.slide_ms
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Observation;

    const MINUTE: i64 = 60_000;

    fn timing() -> WindowTiming {
        WindowTiming { out_of_orderness_ms: 30_000, allowed_lateness_ms: 2 * MINUTE, tz_offset_ms: 0, late_policy: LatePolicy::DeadLetter }
    }

    fn reading(sensor: &str, ts_ms: i64, value: f64, seq: Option<u64>) -> Reading {
        Reading {
            sensor_id: sensor.into(),
            kind: Kind::Pm25,
            ts_ms,
            observation: Observation::Level(value),
            area: Area::default(),
            vendor: "v".into(),
            seq,
        }
    }

    struct Harness {
        windows: PartitionWindows,
        budget: SensorBudget,
        closed: Vec<WindowResult>,
    }

    impl Harness {
        fn new(specs: Vec<WindowSpec>, cap: usize) -> Self {
            Harness {
                windows: PartitionWindows::new(Kind::Pm25, specs.into(), timing(), 0),
                budget: SensorBudget { tracked: 0, cap },
                closed: Vec::new(),
            }
        }

        fn add(&mut self, r: Reading) -> Result<(), Reason> {
            self.windows.add(r, &mut self.budget, 0, &mut self.closed).map_err(|e| e.reason)
        }
    }

    fn minute() -> Vec<WindowSpec> {
        vec![WindowSpec::tumbling("1m", MINUTE)]
    }

    #[test]
    fn out_of_order_within_the_bound_is_accepted_and_windows_close_after_lateness() {
        let mut h = Harness::new(minute(), 10);
        h.add(reading("a", 10_000, 1.0, None)).unwrap();
        h.add(reading("a", 50_000, 3.0, None)).unwrap();
        h.add(reading("a", 20_000, 2.0, None)).unwrap(); // out of order, same window
                                                         // Watermark must pass end (60 s) + lateness (120 s) = 180 s: needs an event at 210 s.
        h.add(reading("a", 209_999, 9.0, None)).unwrap();
        assert!(h.closed.is_empty());
        h.add(reading("a", 210_000, 9.0, None)).unwrap();
        assert_eq!(h.closed.len(), 1);
        let w = &h.closed[0];
        assert_eq!((w.start_ms, w.end_ms), (0, MINUTE));
        let v = w.values.level().unwrap();
        let (count, mean, first, last, min, max) = (v.count, v.mean, v.first, v.last, v.min, v.max);
        assert_eq!((count, mean, first, last, min, max), (3, 2.0, 1.0, 3.0, 1.0, 3.0));
    }

    #[test]
    fn a_record_for_a_closed_window_is_late() {
        let mut h = Harness::new(minute(), 10);
        h.add(reading("a", 10_000, 1.0, None)).unwrap();
        h.add(reading("a", 300_000, 1.0, None)).unwrap();
        assert_eq!(h.add(reading("a", 59_999, 1.0, None)), Err(Reason::Late));
        assert_eq!(h.add(reading("b", 59_999, 1.0, None)), Err(Reason::Late), "lateness is per partition, not per sensor");
        // Window [60 s, 120 s) closes at 240 s; watermark is 270 s: also late.
        assert_eq!(h.add(reading("a", 60_000, 1.0, None)), Err(Reason::Late));
        // Window [180 s, 240 s) closes at 360 s: still open.
        h.add(reading("a", 180_000, 1.0, None)).unwrap();
    }

    #[test]
    fn a_reading_is_late_if_any_of_its_windows_closed() {
        let specs = vec![WindowSpec::tumbling("1m", MINUTE), WindowSpec::tumbling("1h", 60 * MINUTE)];
        let mut h = Harness::new(specs, 10);
        h.add(reading("a", 10_000, 1.0, None)).unwrap();
        h.add(reading("a", 300_000, 1.0, None)).unwrap();
        assert_eq!(h.add(reading("a", 20_000, 1.0, None)), Err(Reason::Late), "its 1 h window is open but its 1 m is not");
    }

    #[test]
    fn under_the_update_policy_a_late_record_corrects_and_re_emits_its_window() {
        let timing = WindowTiming { late_policy: LatePolicy::Update { horizon_ms: 10 * MINUTE }, ..timing() };
        let mut windows = PartitionWindows::new(Kind::Pm25, minute().into(), timing, 0);
        let mut budget = SensorBudget { tracked: 0, cap: 10 };
        let mut closed = Vec::new();
        windows.add(reading("a", 10_000, 1.0, None), &mut budget, 0, &mut closed).unwrap();
        windows.add(reading("a", 300_000, 5.0, None), &mut budget, 0, &mut closed).unwrap();
        assert_eq!(closed.len(), 1);
        assert_eq!(closed[0].values.count(), 1);
        // Late for [0, 60 s) but within the 10 min horizon: the window is emitted again.
        windows.add(reading("a", 20_000, 3.0, None), &mut budget, 0, &mut closed).unwrap();
        assert_eq!(closed.len(), 2);
        let corrected = &closed[1];
        assert_eq!((corrected.start_ms, corrected.end_ms), (0, MINUTE));
        assert_eq!(corrected.values.level().unwrap().mean, 2.0);
        assert_eq!(windows.add(reading("a", 20_000, 3.0, None), &mut budget, 0, &mut closed).unwrap_err().reason, Reason::Duplicate);
        // Past end + lateness + horizon (13 min), the window is gone: late.
        windows.add(reading("a", 14 * MINUTE, 5.0, None), &mut budget, 0, &mut closed).unwrap();
        assert_eq!(windows.add(reading("a", 30_000, 3.0, None), &mut budget, 0, &mut closed).unwrap_err().reason, Reason::Late);
    }

    #[test]
    fn duplicates_by_timestamp_or_sequence_are_refused() {
        let mut h = Harness::new(minute(), 10);
        h.add(reading("a", 10_000, 1.0, Some(7))).unwrap();
        assert_eq!(h.add(reading("a", 10_000, 2.0, None)), Err(Reason::Duplicate));
        assert_eq!(h.add(reading("a", 11_000, 2.0, Some(7))), Err(Reason::Duplicate));
        h.add(reading("b", 10_000, 2.0, Some(7))).unwrap();
    }

    #[test]
    fn sensors_past_the_cap_are_refused_and_forgotten_sensors_free_their_place() {
        let mut h = Harness::new(minute(), 2);
        h.add(reading("a", 10_000, 1.0, None)).unwrap();
        h.add(reading("b", 10_000, 1.0, None)).unwrap();
        assert_eq!(h.add(reading("c", 10_000, 1.0, None)), Err(Reason::Cardinality));
        // a's window closes; a has nothing open any more and is forgotten, b too.
        h.add(reading("b", 400_000, 1.0, None)).unwrap();
        assert_eq!(h.budget.tracked, 1);
        h.add(reading("c", 400_000, 1.0, None)).unwrap();
        assert_eq!(h.budget.tracked, 2);
    }

    #[test]
    fn an_idle_partition_follows_its_peers() {
        let mut h = Harness::new(minute(), 10);
        h.add(reading("a", 10_000, 1.0, None)).unwrap();
        h.windows.advance_idle(10 * MINUTE, &mut h.budget, &mut h.closed);
        assert_eq!(h.closed.len(), 1);
        assert_eq!(h.windows.open_windows(), 0);
    }

    mod against_a_naive_reference {
        use std::collections::{BTreeMap, HashSet};

        use proptest::prelude::*;

        use super::*;

        const SPECS: [(&str, i64, i64); 3] = [("1m", MINUTE, MINUTE), ("5m", 5 * MINUTE, 5 * MINUTE), ("3m/1m", 3 * MINUTE, MINUTE)];

        fn specs() -> Vec<WindowSpec> {
            SPECS.iter().map(|(l, size, slide)| WindowSpec::sliding(*l, *size, *slide)).collect()
        }

        /// Fates and windows computed the obvious way: per record, in order, late if any
        /// containing window closed by the running max event time, duplicate if the same
        /// (sensor, ts) was accepted; then every containing window collects the value.
        /// (sensor, window label, start) → (ts, value) samples.
        type RefWindows = BTreeMap<(String, String, i64), Vec<(i64, f64)>>;

        fn reference(records: &[(usize, i64, f64)]) -> (Vec<bool>, RefWindows) {
            let t = timing();
            let mut max_ts = i64::MIN;
            let mut seen = HashSet::new();
            let mut fates = Vec::new();
            let mut windows = RefWindows::new();
            for (sensor, ts, value) in records {
                let watermark = max_ts.saturating_sub(t.out_of_orderness_ms);
                let mut containing = Vec::new();
                for (label, size, slide) in SPECS {
                    let mut start = ts.div_euclid(slide) * slide;
                    while start + size > *ts {
                        containing.push((label, start, start + size));
                        start -= slide;
                    }
                }
                let late = containing.iter().any(|(_, _, end)| end + t.allowed_lateness_ms <= watermark);
                let accepted = !late && seen.insert((*sensor, *ts));
                fates.push(accepted);
                if accepted {
                    max_ts = max_ts.max(*ts);
                    for (label, start, _) in containing {
                        windows.entry((format!("s{sensor}"), label.to_string(), start)).or_default().push((*ts, *value));
                    }
                }
            }
            (fates, windows)
        }

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(64))]
            #[test]
            fn windows_and_fates_match_the_reference(
                records in prop::collection::vec((0usize..3, 0i64..1_800_000, 0.0f64..500.0), 1..300)
            ) {
                let mut windows = PartitionWindows::new(Kind::Pm25, specs().into(), timing(), 0);
                let mut budget = SensorBudget { tracked: 0, cap: 100 };
                let mut closed = Vec::new();
                let mut fates = Vec::new();
                for (sensor, ts, value) in &records {
                    let r = reading(&format!("s{sensor}"), *ts, *value, None);
                    fates.push(windows.add(r, &mut budget, 0, &mut closed).is_ok());
                }
                windows.advance_idle(i64::MAX / 2, &mut budget, &mut closed);
                let (expected_fates, expected) = reference(&records);
                prop_assert_eq!(fates, expected_fates);
                prop_assert_eq!(closed.len(), expected.len());
                prop_assert_eq!(budget.tracked, 0, "every sensor is forgotten once all its windows closed");
                for w in &closed {
                    let key = (w.sensor_id.clone(), w.window.clone(), w.start_ms);
                    let samples = &expected[&key];
                    let v = w.values.level().unwrap();
                    let values: Vec<f64> = samples.iter().map(|s| s.1).collect();
                    let mean = values.iter().sum::<f64>() / values.len() as f64;
                    prop_assert_eq!(v.count as usize, values.len());
                    prop_assert!((v.mean - mean).abs() < 1e-9 * mean.max(1.0));
                    prop_assert_eq!(v.min, values.iter().copied().fold(f64::INFINITY, f64::min));
                    prop_assert_eq!(v.max, values.iter().copied().fold(f64::NEG_INFINITY, f64::max));
                    prop_assert_eq!(v.first, samples.iter().min_by_key(|s| s.0).unwrap().1);
                    prop_assert_eq!(v.last, samples.iter().max_by_key(|s| s.0).unwrap().1);
                    let size = SPECS.iter().find(|s| s.0 == w.window).unwrap().1;
                    prop_assert_eq!(w.end_ms - w.start_ms, size);
                }
            }

            /// A partition restored from a snapshot taken at any point continues exactly
            /// as the original: the same fates (duplicates and lateness remembered), the
            /// same windows with the same values.
            #[test]
            fn a_restored_snapshot_continues_exactly_like_the_original(
                records in prop::collection::vec((0usize..3, 0i64..1_800_000, 0.0f64..500.0), 1..200),
                cut in 0usize..200,
            ) {
                let run = |snapshot_at: Option<usize>| {
                    let mut windows = PartitionWindows::new(Kind::Pm25, specs().into(), timing(), 0);
                    let mut budget = SensorBudget { tracked: 0, cap: 100 };
                    let (mut closed, mut fates) = (Vec::new(), Vec::new());
                    for (i, (sensor, ts, value)) in records.iter().enumerate() {
                        if Some(i) == snapshot_at {
                            let bytes = windows.snapshot();
                            budget = SensorBudget { tracked: 0, cap: 100 };
                            windows = PartitionWindows::restore(Kind::Pm25, specs().into(), timing(), 0, &bytes, &mut budget).unwrap();
                        }
                        fates.push(windows.add(reading(&format!("s{sensor}"), *ts, *value, None), &mut budget, 0, &mut closed).is_ok());
                    }
                    windows.advance_idle(i64::MAX / 2, &mut budget, &mut closed);
                    (fates, closed, budget.tracked)
                };
                prop_assert_eq!(run(Some(cut % records.len())), run(None));
            }
        }
    }
}
