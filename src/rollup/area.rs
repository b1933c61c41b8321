//! The state of one aggregates partition: sensor windows waiting for their area window to
//! be complete, the watermark of every source, and the roll-up itself.

use std::collections::{BTreeMap, HashMap};

use smol_str::SmolStr;

use super::catalog::AreaCatalog;
use super::message::{AggregateMessage, AreaLevel, AreaResult, PeerDeviation, SensorWindow};
use crate::domain::dust;
use crate::model::{Kind, PileStatus};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AreaSettings {
    pub allowed_lateness_ms: i64,
    /// How long emitted area windows accept corrections (the late-update horizon).
    pub update_horizon_ms: i64,
    /// Input partitions per kind: an area window waits for a marker from each.
    pub sources_per_kind: [usize; 4],
}

impl AreaSettings {
    /// Whether the area window ending at `end_ms` has closed, once every source of its kind
    /// has passed `closed_through` (`None`: not all have reported yet).
    fn closed(&self, end_ms: i64, closed_through: Option<i64>) -> bool {
        closed_through.is_some_and(|wm| end_ms + self.allowed_lateness_ms <= wm)
    }

    /// Whether it is also past its update horizon: no correction reaches it any more.
    fn expired(&self, end_ms: i64, closed_through: Option<i64>) -> bool {
        closed_through.is_some_and(|wm| end_ms + self.allowed_lateness_ms + self.update_horizon_ms <= wm)
    }
}

/// Area results to write, holding `hold_offset` of the aggregates partition until acknowledged,
/// and each sensor's deviation from its peers (for outlier rules).
#[derive(Debug, Clone, PartialEq)]
pub struct AreaEmit {
    pub results: Vec<AreaResult>,
    pub deviations: Vec<PeerDeviation>,
    pub hold_offset: i64,
}

/// The smallest spread used for robust z-scores, as a fraction of the median: identical
/// peers must not make a rounding difference look like an outlier.
const MIN_RELATIVE_SPREAD: f64 = 0.05;

/// Each sensor's robust distance from the other sensors of its street (or district);
/// `sensors` in id order.
fn deviations(key: &BucketKey, sensors: &[&SensorWindow]) -> Vec<PeerDeviation> {
    let groups = grouped(sensors, |s| {
        s.mean.is_some().then(|| if s.street.is_empty() { ("", s.district.as_str()) } else { (s.street.as_str(), s.district.as_str()) })
    });
    let median = |v: &mut Vec<f64>| {
        v.sort_by(f64::total_cmp);
        let n = v.len();
        if n % 2 == 1 {
            v[n / 2]
        } else {
            (v[n / 2 - 1] + v[n / 2]) / 2.0
        }
    };
    let mut out = Vec::with_capacity(sensors.len());
    for (_, sensors) in &groups {
        let mut means: Vec<f64> = sensors.iter().filter_map(|s| s.mean).collect();
        let m = median(&mut means);
        let mut spreads: Vec<f64> = means.iter().map(|x| (x - m).abs()).collect();
        let mad = median(&mut spreads);
        let scale = (1.4826 * mad).max(MIN_RELATIVE_SPREAD * m.abs()).max(1e-9);
        let varying = sensors.iter().filter(|s| !s.flat).count() as u32;
        for s in sensors {
            let mean = s.mean.unwrap_or(m);
            out.push(PeerDeviation {
                kind: key.0,
                window: key.1.clone(),
                end_ms: key.2,
                sensor_id: s.sensor_id.clone(),
                grid: s.grid.clone(),
                street: s.street.clone(),
                district: s.district.clone(),
                mean,
                peer_median: m,
                robust_z: (mean - m).abs() / scale,
                peers: sensors.len() as u32,
                flat: s.flat,
                peers_varying: varying - u32::from(!s.flat),
            });
        }
    }
    out
}

/// `sensors` grouped by `group_of` (`None`: in no group), groups in key order and each
/// group's sensors in the order given. Hashed, then the groups sorted by key: a B-tree
/// keyed by two strings cost a dozen string compares per sensor.
fn grouped<'a>(
    sensors: &[&'a SensorWindow],
    group_of: impl Fn(&'a SensorWindow) -> Option<(&'a str, &'a str)>,
) -> Vec<((&'a str, &'a str), Vec<&'a SensorWindow>)> {
    let mut groups: HashMap<(&str, &str), Vec<&SensorWindow>, foldhash::fast::RandomState> = HashMap::default();
    for &s in sensors {
        if let Some(group) = group_of(s) {
            groups.entry(group).or_default().push(s);
        }
    }
    let mut groups: Vec<_> = groups.into_iter().collect();
    groups.sort_unstable_by(|a, b| a.0.cmp(&b.0));
    groups
}

/// `a.cmp(b)`, for sensor ids: ids of the same length, 8 to 16 bytes (most of a city's),
/// are compared as two big-endian words, without a call to `memcmp`.
fn id_order(a: &str, b: &str) -> std::cmp::Ordering {
    let (x, y, len) = (a.as_bytes(), b.as_bytes(), a.len());
    if len == y.len() && (8..=16).contains(&len) {
        let word = |s: &[u8], at: usize| u64::from_be_bytes(s[at..at + 8].try_into().unwrap_or_default());
        // Bytes before `len - 8` that the second words share were equal in the first ones.
        return word(x, 0).cmp(&word(y, 0)).then_with(|| word(x, len - 8).cmp(&word(y, len - 8)));
    }
    x.cmp(y)
}

type BucketKey = (Kind, SmolStr, i64);

#[derive(Debug)]
struct Bucket {
    start_ms: i64,
    first_offset: i64,
    /// By sensor id: hashed, since a B-tree of 10 k ids cost a dozen string compares per
    /// window and moved the large windows about; put in id order once, when emitted.
    sensors: HashMap<SmolStr, SensorWindow, foldhash::fast::RandomState>,
    /// The offset of the watermark marker that closed (and emitted) it; `None` while open.
    closed_at: Option<i64>,
}

impl Bucket {
    /// Its area results and peer deviations, holding `hold_offset` until written.
    fn emit(&self, key: &BucketKey, catalog: &AreaCatalog, hold_offset: i64) -> AreaEmit {
        let mut sensors: Vec<&SensorWindow> = self.sensors.values().collect();
        sensors.sort_unstable_by(|a, b| id_order(&a.sensor_id, &b.sensor_id));
        AreaEmit { results: roll_up(key, self.start_ms, &sensors, catalog), deviations: deviations(key, &sensors), hold_offset }
    }
}

#[derive(Debug, Default)]
pub struct AreaPartition {
    watermarks: [BTreeMap<String, i64>; 4],
    buckets: BTreeMap<BucketKey, Bucket>,
    /// Sensor windows that arrived for an area window already emitted and past its update
    /// horizon (replays from stage 1 after a rebalance; their values are already in the
    /// result).
    pub dropped_after_close: u64,
}

impl AreaPartition {
    /// Every source watermark seen, for the commit metadata.
    pub fn source_watermarks(&self) -> Vec<(Kind, String, i64)> {
        Kind::ALL.iter().flat_map(|k| self.watermarks[k.index()].iter().map(move |(s, w)| (*k, s.clone(), *w))).collect()
    }

    /// Restores source watermarks from a commit, so windows closed before it stay closed.
    pub fn restore_watermark(&mut self, kind: Kind, source: String, watermark_ms: i64) {
        let entry = self.watermarks[kind.index()].entry(source).or_insert(watermark_ms);
        *entry = (*entry).max(watermark_ms);
    }

    /// The watermark through which every source of `kind` has published, once all have.
    fn closed_through(&self, kind: Kind, settings: &AreaSettings) -> Option<i64> {
        let marks = &self.watermarks[kind.index()];
        (marks.len() >= settings.sources_per_kind[kind.index()].max(1)).then(|| marks.values().copied().min()).flatten()
    }

    /// The lowest offset still needed to rebuild an area window not yet emitted.
    pub fn lowest_pending_offset(&self) -> Option<i64> {
        self.buckets.values().filter(|b| b.closed_at.is_none()).map(|b| b.first_offset).min()
    }

    pub fn pending_windows(&self) -> usize {
        self.buckets.values().filter(|b| b.closed_at.is_none()).count()
    }

    /// The highest offset at most `candidate` that is safe to commit. A restore from offset
    /// C starts from the watermarks of the markers before C (the commit metadata) and reads
    /// on from C. An area window with a record before C must therefore be closed by a
    /// marker before C too; otherwise the restore would rebuild it from its records after C
    /// alone and write it again with part of its sensors. So C may not fall in
    /// `(first_offset, closed_at]` of any area window still held here (`forget_committed`
    /// keeps each until a commit is past its closing marker).
    pub fn safe_commit_offset(&self, candidate: i64) -> i64 {
        let mut offset = candidate;
        loop {
            let inside = |b: &&Bucket| b.first_offset < offset && b.closed_at.is_none_or(|closed| offset <= closed);
            match self.buckets.values().filter(inside).map(|b| b.first_offset).min() {
                Some(lower) => offset = lower,
                None => return offset,
            }
        }
    }

    /// Forgets area windows past their update horizon once `committed` is past the marker
    /// that closed them: no restore can reopen them any more.
    pub fn forget_committed(&mut self, committed: i64, settings: &AreaSettings) {
        let closed_through = self.closed_through_all(settings);
        self.buckets.retain(|key, b| {
            let expired = settings.expired(key.2, closed_through[key.0.index()]);
            !(expired && b.closed_at.is_some_and(|closed| closed < committed))
        });
    }

    fn closed_through_all(&self, settings: &AreaSettings) -> [Option<i64>; 4] {
        Kind::ALL.map(|kind| self.closed_through(kind, settings))
    }

    pub fn on_message(
        &mut self,
        message: AggregateMessage,
        offset: i64,
        settings: &AreaSettings,
        catalog: &AreaCatalog,
        out: &mut Vec<AreaEmit>,
    ) {
        match message {
            AggregateMessage::Windows { windows, .. } => {
                for window in windows {
                    self.add_window(window, offset, settings, catalog, out);
                }
            }
            AggregateMessage::Window { window, .. } => self.add_window(*window, offset, settings, catalog, out),
            AggregateMessage::Watermark { source, kind, watermark_ms } => {
                self.restore_watermark(kind, source, watermark_ms);
                self.close_ready(kind, offset, settings, catalog, out);
            }
        }
    }

    /// One closed sensor window into its area window (read at `offset`).
    fn add_window(&mut self, window: SensorWindow, offset: i64, settings: &AreaSettings, catalog: &AreaCatalog, out: &mut Vec<AreaEmit>) {
        let key = (window.kind, window.window.clone(), window.end_ms);
        let closed_through = self.closed_through(window.kind, settings);
        let closed = settings.closed(window.end_ms, closed_through);
        let expired = settings.expired(window.end_ms, closed_through);
        match self.buckets.get_mut(&key) {
            // Past its update horizon, kept only until a commit passes its closing marker.
            Some(_) if expired => self.dropped_after_close += 1,
            Some(bucket) => {
                bucket.sensors.insert(window.sensor_id.clone(), window);
                if bucket.closed_at.is_some() {
                    // A correction (late policy `update`): emit the area window again.
                    out.push(bucket.emit(&key, catalog, offset));
                }
            }
            None if closed => self.dropped_after_close += 1,
            None => {
                let start_ms = window.start_ms;
                let mut sensors = HashMap::default();
                sensors.insert(window.sensor_id.clone(), window);
                self.buckets.insert(key, Bucket { start_ms, first_offset: offset, sensors, closed_at: None });
            }
        }
    }

    /// Emits every area window `kind`'s watermark has closed; `offset` is the closing marker's.
    fn close_ready(&mut self, kind: Kind, offset: i64, settings: &AreaSettings, catalog: &AreaCatalog, out: &mut Vec<AreaEmit>) {
        let Some(watermark) = self.closed_through(kind, settings) else { return };
        for (key, bucket) in self.buckets.iter_mut().filter(|(k, _)| k.0 == kind) {
            if !settings.closed(key.2, Some(watermark)) || bucket.closed_at.is_some() {
                continue;
            }
            bucket.closed_at = Some(offset);
            out.push(bucket.emit(key, catalog, bucket.first_offset));
        }
    }
}

/// Grid, street and district results of one area window; `sensors` in id order.
fn roll_up(key: &BucketKey, start_ms: i64, sensors: &[&SensorWindow], catalog: &AreaCatalog) -> Vec<AreaResult> {
    let (kind, window, end_ms) = (key.0, &key.1, key.2);
    let district_means: HashMap<&str, f64, foldhash::fast::RandomState> = {
        let mut sums: HashMap<&str, (f64, u32), foldhash::fast::RandomState> = HashMap::default();
        for s in sensors {
            if let Some(mean) = s.mean {
                let e = sums.entry(s.district.as_str()).or_default();
                e.0 += mean;
                e.1 += 1;
            }
        }
        sums.into_iter().map(|(d, (sum, n))| (d, sum / n as f64)).collect()
    };
    let mut out = Vec::new();
    for level in AreaLevel::ALL {
        let groups = grouped(sensors, |s| {
            let area = match level {
                AreaLevel::Grid => &s.grid,
                AreaLevel::Street => &s.street,
                AreaLevel::District => &s.district,
            };
            (!area.is_empty()).then(|| (area.as_str(), s.district.as_str()))
        });
        for ((area, district), sensors) in groups {
            let means: Vec<f64> = sensors.iter().filter_map(|s| s.mean).collect();
            let reporting = sensors.len() as u32;
            let share = |status: PileStatus| {
                let n = sensors.iter().filter(|s| s.last_status.as_deref() == Some(status.as_str())).count();
                n as f64 / reporting as f64
            };
            let utilisations: Vec<f64> = sensors.iter().filter_map(|s| s.utilisation).collect();
            let charging = kind == Kind::Charging;
            let silent = catalog.registered(kind, level, area).map(|n| n.saturating_sub(reporting));
            out.push(AreaResult {
                kind,
                window: window.clone(),
                start_ms,
                end_ms,
                level,
                area: area.into(),
                district: district.into(),
                mean: (!means.is_empty()).then(|| means.iter().sum::<f64>() / means.len() as f64),
                max: means.iter().copied().reduce(f64::max),
                sensors_reporting: reporting,
                sensors_silent: silent,
                piles_offline: if charging { silent } else { None },
                availability: charging.then(|| share(PileStatus::Available)),
                fault_ratio: charging.then(|| share(PileStatus::Faulted)),
                utilisation: (charging && !utilisations.is_empty()).then(|| utilisations.iter().sum::<f64>() / utilisations.len() as f64),
                hotspots: (kind == Kind::Dust).then(|| {
                    sensors
                        .iter()
                        .filter(|s| match (s.mean, district_means.get(s.district.as_str())) {
                            (Some(mean), Some(d)) => dust::is_hotspot(mean, *d),
                            _ => false,
                        })
                        .count() as u32
                }),
            });
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_sort_as_strings_do() {
        let mut ids = vec!["", "a", "a\0", "hd-pm-0042", "hd-pm-00420", "hd-pm-0043", "hd-pm-004", "hd-pm-0142", "id-pm-0042", "ä-pm-0042"];
        ids.extend([
            "exactly-16-bytes",
            "exactly-16-bytez",
            "exactly-16-bytds",
            "exactly-16-bytes!",
            "seventeen-bytes-x",
            "8-bytes!",
            "8-bytes\0",
            "9-bytes!!",
        ]);
        for a in &ids {
            for b in &ids {
                assert_eq!(id_order(a, b), a.cmp(b), "{a:?} vs {b:?}");
            }
        }
        // Every length from 8 to 16, differing at each byte.
        for len in 8..=16 {
            let id: String = (0..len).map(|i| char::from(b'a' + i as u8)).collect();
            for at in 0..len {
                let mut other = id.clone().into_bytes();
                other[at] = b'Z';
                let other = String::from_utf8(other).unwrap();
                assert_eq!(id_order(&id, &other), id.as_str().cmp(other.as_str()), "{id} vs {other}");
                assert_eq!(id_order(&other, &id), other.as_str().cmp(id.as_str()), "{other} vs {id}");
            }
        }
    }
    use crate::registry::{Registry, SensorInfo};

    const END: i64 = 3_600_000;

    fn settings() -> AreaSettings {
        AreaSettings { allowed_lateness_ms: 120_000, update_horizon_ms: 0, sources_per_kind: [2, 1, 1, 1] }
    }

    fn window(sensor: &str, grid: &str, street: &str, mean: f64) -> AggregateMessage {
        AggregateMessage::Window {
            source: "city.pm25/0".into(),
            window: Box::new(SensorWindow {
                kind: Kind::Pm25,
                sensor_id: sensor.into(),
                window: "1h".into(),
                start_ms: 0,
                end_ms: END,
                grid: grid.into(),
                street: street.into(),
                district: "hd".into(),
                mean: Some(mean),
                max: Some(mean + 1.0),
                last_status: None,
                utilisation: None,
                flat: false,
            }),
        }
    }

    fn mark(source: &str, watermark_ms: i64) -> AggregateMessage {
        AggregateMessage::Watermark { source: source.into(), kind: Kind::Pm25, watermark_ms }
    }

    fn catalog() -> AreaCatalog {
        let sensor = |id: &str, grid: &str| SensorInfo {
            id: id.into(),
            kind: Some(Kind::Pm25),
            grid: grid.into(),
            street: "s1".into(),
            district: "hd".into(),
            ..Default::default()
        };
        AreaCatalog::from_registry(&Registry::from_entries([sensor("a", "g1"), sensor("b", "g1"), sensor("c", "g2"), sensor("d", "g2")]))
    }

    #[test]
    fn an_area_window_waits_for_every_source_then_rolls_up_each_level() {
        let (mut p, mut out, s, c) = (AreaPartition::default(), Vec::new(), settings(), catalog());
        p.on_message(window("a", "g1", "s1", 10.0), 0, &s, &c, &mut out);
        p.on_message(window("b", "g1", "s1", 30.0), 1, &s, &c, &mut out);
        p.on_message(window("c", "g2", "s1", 50.0), 2, &s, &c, &mut out);
        p.on_message(mark("city.pm25/0", END + 200_000), 3, &s, &c, &mut out);
        assert!(out.is_empty(), "the second source has not passed the window yet");
        assert_eq!(p.lowest_pending_offset(), Some(0));
        p.on_message(mark("city.pm25/1", END + 100_000), 4, &s, &c, &mut out);
        assert!(out.is_empty(), "100 s past the end is within the 120 s lateness");
        p.on_message(mark("city.pm25/1", END + 120_000), 5, &s, &c, &mut out);
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].hold_offset, 0);
        let by = |level: AreaLevel, area: &str| out[0].results.iter().find(|r| r.level == level && r.area == area).unwrap().clone();
        let g1 = by(AreaLevel::Grid, "g1");
        assert_eq!((g1.mean, g1.max, g1.sensors_reporting, g1.sensors_silent), (Some(20.0), Some(30.0), 2, Some(0)));
        let g2 = by(AreaLevel::Grid, "g2");
        assert_eq!((g2.sensors_reporting, g2.sensors_silent), (1, Some(1)));
        let street = by(AreaLevel::Street, "s1");
        assert_eq!((street.mean, street.max, street.sensors_reporting, street.sensors_silent), (Some(30.0), Some(50.0), 3, Some(1)));
        assert_eq!(by(AreaLevel::District, "hd").sensors_reporting, 3);
        assert_eq!(p.lowest_pending_offset(), None);
    }

    #[test]
    fn a_falsely_low_sensor_stands_out_from_its_peers() {
        let (mut p, mut out, s, c) = (AreaPartition::default(), Vec::new(), settings(), catalog());
        for (i, mean) in [30.0, 31.0, 29.5, 30.5, 32.0, 7.5].iter().enumerate() {
            p.on_message(window(&format!("s{i}"), "g1", "s1", *mean), i as i64, &s, &c, &mut out);
        }
        p.on_message(mark("city.pm25/0", END + 130_000), 10, &s, &c, &mut out);
        p.on_message(mark("city.pm25/1", END + 130_000), 11, &s, &c, &mut out);
        let d = &out[0].deviations;
        assert_eq!(d.len(), 6);
        let low = d.iter().find(|x| x.sensor_id == "s5").unwrap();
        assert!(low.robust_z > 5.0, "{low:?}");
        assert!(d.iter().filter(|x| x.sensor_id != "s5").all(|x| x.robust_z < 2.0), "{d:?}");
        assert_eq!(low.peers, 6);
    }

    #[test]
    fn arrival_order_does_not_change_the_result() {
        let messages = [
            window("a", "g1", "s1", 10.0),
            window("b", "g1", "s1", 30.0),
            window("c", "g2", "s1", 50.0),
            mark("city.pm25/1", END + 130_000),
        ];
        let run = |order: &[usize]| {
            let (mut p, mut out, s, c) = (AreaPartition::default(), Vec::new(), settings(), catalog());
            for (offset, i) in order.iter().enumerate() {
                p.on_message(messages[*i].clone(), offset as i64, &s, &c, &mut out);
            }
            p.on_message(mark("city.pm25/0", END + 130_000), 9, &s, &c, &mut out);
            out.into_iter().flat_map(|e| e.results).collect::<Vec<_>>()
        };
        assert_eq!(run(&[0, 1, 2, 3]), run(&[3, 2, 0, 1]));
    }

    #[test]
    fn a_batched_record_rolls_up_like_its_windows_one_by_one() {
        let singles = [window("a", "g1", "s1", 10.0), window("b", "g1", "s1", 30.0), window("c", "g2", "s1", 50.0)];
        let batched = AggregateMessage::Windows {
            source: "city.pm25/0".into(),
            windows: singles
                .iter()
                .map(|m| match m {
                    AggregateMessage::Window { window, .. } => (**window).clone(),
                    _ => unreachable!(),
                })
                .collect(),
        };
        let run = |messages: Vec<AggregateMessage>| {
            let (mut p, mut out, s, c) = (AreaPartition::default(), Vec::new(), settings(), catalog());
            for message in messages {
                p.on_message(message, 0, &s, &c, &mut out);
            }
            p.on_message(mark("city.pm25/0", END + 130_000), 8, &s, &c, &mut out);
            p.on_message(mark("city.pm25/1", END + 130_000), 9, &s, &c, &mut out);
            out
        };
        let one_by_one = run(singles.to_vec());
        assert_eq!(one_by_one.len(), 1);
        assert_eq!(one_by_one[0].results.iter().find(|r| r.level == AreaLevel::Street).unwrap().sensors_reporting, 3);
        assert_eq!(run(vec![batched]), one_by_one);
    }

    /// Stage 2 restored from its commit (after a crash or a rebalance) writes every area
    /// window exactly as the uninterrupted run does, wherever the crash fell. The commit
    /// once landed between two sensor windows of an area window that closed later: the
    /// restore rebuilt it from the second alone and wrote it again with one sensor reporting
    /// and one silent (tests/scale_out.rs, now and then).
    #[test]
    fn a_restore_from_the_committed_offset_writes_the_same_area_windows() {
        let (s, c) = (settings(), catalog());
        let next_hour = |message: AggregateMessage| match message {
            AggregateMessage::Window { source, mut window } => {
                window.start_ms += 3_600_000;
                window.end_ms += 3_600_000;
                AggregateMessage::Window { source, window }
            }
            other => other,
        };
        let closes = |hour: i64| END + hour * 3_600_000 + 130_000;
        // The next hour's area window opens between the two sensor windows of this one,
        // so it holds the commit back to offset 1 until both are closed.
        let messages = [
            window("a", "g1", "s1", 10.0),
            next_hour(window("a", "g1", "s1", 11.0)),
            window("b", "g1", "s1", 30.0),
            mark("city.pm25/0", closes(0)),
            mark("city.pm25/1", closes(0)),
            next_hour(window("b", "g1", "s1", 31.0)),
            mark("city.pm25/0", closes(1)),
            mark("city.pm25/1", closes(1)),
        ];
        let identity = |r: &AreaResult| format!("{} {} {:?} {} {}", r.kind, r.window, r.level, r.area, r.end_ms);
        let mut expected = BTreeMap::new();
        let (mut whole, mut out) = (AreaPartition::default(), Vec::new());
        for (offset, message) in messages.iter().enumerate() {
            whole.on_message(message.clone(), offset as i64, &s, &c, &mut out);
        }
        for r in out.iter().flat_map(|e| &e.results) {
            expected.insert(identity(r), format!("{r:?}"));
        }
        assert_eq!(expected.values().filter(|r| r.contains("sensors_reporting: 2")).count(), 6, "{expected:#?}");

        // The stage as it commits: no further than the next record or the oldest open
        // window, then `safe_commit_offset`.
        let restore_after = |crash_after: usize, safe: bool| -> Vec<AreaResult> {
            let (mut before, mut written, mut marks) = (AreaPartition::default(), Vec::new(), Vec::new());
            for (offset, message) in messages[..=crash_after].iter().enumerate() {
                if let AggregateMessage::Watermark { source, kind, watermark_ms } = message {
                    marks.push((offset as i64, *kind, source.clone(), *watermark_ms));
                }
                before.on_message(message.clone(), offset as i64, &s, &c, &mut written);
            }
            let next = crash_after as i64 + 1;
            let candidate = before.lowest_pending_offset().map_or(next, |open| open.min(next));
            let committed = if safe { before.safe_commit_offset(candidate) } else { candidate };
            let mut restored = AreaPartition::default();
            for (_, kind, source, watermark_ms) in marks.into_iter().filter(|m| m.0 < committed) {
                restored.restore_watermark(kind, source, watermark_ms);
            }
            for (offset, message) in messages.iter().enumerate().skip(committed as usize) {
                restored.on_message(message.clone(), offset as i64, &s, &c, &mut written);
            }
            written.into_iter().flat_map(|e| e.results).collect()
        };
        for crash_after in 0..messages.len() {
            let written = restore_after(crash_after, true);
            for r in &written {
                assert_eq!(expected.get(&identity(r)), Some(&format!("{r:?}")), "crash after offset {crash_after}");
            }
            let seen: std::collections::BTreeSet<String> = written.iter().map(identity).collect();
            assert_eq!(seen.len(), expected.len(), "crash after offset {crash_after}: every area window written");
        }
        // Committing the candidate as it was rewrites this hour's windows with one sensor.
        let unsafe_commit = restore_after(4, false);
        assert!(unsafe_commit.iter().any(|r| expected.get(&identity(r)) != Some(&format!("{r:?}"))));
    }

    /// One area window of one sensor (offset 0), closed by both sources' markers (1, 2).
    fn one_closed_window(s: &AreaSettings, c: &AreaCatalog) -> (AreaPartition, Vec<AreaEmit>) {
        let (mut p, mut out) = (AreaPartition::default(), Vec::new());
        p.on_message(window("a", "g1", "s1", 10.0), 0, s, c, &mut out);
        p.on_message(mark("city.pm25/0", END + 130_000), 1, s, c, &mut out);
        p.on_message(mark("city.pm25/1", END + 130_000), 2, s, c, &mut out);
        (p, out)
    }

    #[test]
    fn an_area_window_is_forgotten_once_a_commit_passes_the_marker_that_closed_it() {
        let (s, c) = (settings(), catalog());
        let (mut p, out) = one_closed_window(&s, &c);
        assert_eq!((out.len(), p.buckets.len()), (1, 1));
        // Until then a commit may not pass its first record without passing its marker.
        assert_eq!(p.safe_commit_offset(2), 0);
        assert_eq!(p.safe_commit_offset(3), 3);
        p.forget_committed(2, &s);
        assert_eq!(p.buckets.len(), 1);
        p.forget_committed(3, &s);
        assert_eq!(p.buckets.len(), 0);
    }

    #[test]
    fn a_replayed_window_after_the_area_closed_is_dropped_not_re_emitted_partially() {
        let (s, c) = (settings(), catalog());
        let (mut p, mut out) = one_closed_window(&s, &c);
        assert_eq!(out.len(), 1);
        p.on_message(window("a", "g1", "s1", 10.0), 3, &s, &c, &mut out);
        assert_eq!(out.len(), 1);
        assert_eq!(p.dropped_after_close, 1);
    }
}
