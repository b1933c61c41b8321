//! Charging-pile window state: records per OCPP status, the latest status by event time,
//! time spent in each status, and the mean reported power.

use crate::model::{PileStatus, PileValues};

#[derive(Debug, Clone, PartialEq, Default, serde::Serialize, serde::Deserialize)]
pub struct PileStats {
    count: u64,
    status_counts: [u64; PileStatus::ALL.len()],
    /// Latest non-heartbeat status by event time: a heartbeat says "alive", not "available".
    last_status: Option<(i64, PileStatus)>,
    power_sum_kw: f64,
    power_samples: u64,
    /// (event time, status) of every record, for time in status; a window of a pile
    /// reporting every minute holds at most a few dozen.
    timeline: Vec<(i64, PileStatus)>,
}

impl PileStats {
    pub fn add(&mut self, ts_ms: i64, status: PileStatus, power_kw: Option<f64>) {
        self.count += 1;
        self.status_counts[status.index()] += 1;
        if status != PileStatus::Heartbeat && self.last_status.is_none_or(|(ts, _)| ts_ms > ts) {
            self.last_status = Some((ts_ms, status));
        }
        if let Some(power) = power_kw {
            self.power_sum_kw += power;
            self.power_samples += 1;
        }
        self.timeline.push((ts_ms, status));
    }

    /// Combines two disjoint sets of records (panes of one window).
    pub fn merge(&mut self, other: &PileStats) {
        self.count += other.count;
        for (mine, theirs) in self.status_counts.iter_mut().zip(other.status_counts) {
            *mine += theirs;
        }
        if let Some((ts, status)) = other.last_status {
            if self.last_status.is_none_or(|(mine, _)| ts > mine) {
                self.last_status = Some((ts, status));
            }
        }
        self.power_sum_kw += other.power_sum_kw;
        self.power_samples += other.power_samples;
        self.timeline.extend_from_slice(&other.timeline);
    }

    /// Milliseconds in each status from each record to the next, the last one until
    /// `end_ms`. A heartbeat continues the status before it; time before the first real
    /// status is not attributed.
    pub fn time_in_status(&self, end_ms: i64) -> [i64; PileStatus::ALL.len()] {
        let mut timeline = self.timeline.clone();
        timeline.sort_by_key(|(ts, _)| *ts);
        let mut out = [0i64; PileStatus::ALL.len()];
        let mut current: Option<PileStatus> = None;
        for (i, (ts, status)) in timeline.iter().enumerate() {
            if *status != PileStatus::Heartbeat {
                current = Some(*status);
            }
            let next = timeline.get(i + 1).map_or(end_ms, |(t, _)| *t);
            if let Some(status) = current {
                out[status.index()] += (next - ts).max(0);
            }
        }
        out
    }

    pub fn values(&self, end_ms: i64) -> PileValues {
        let time_in = self.time_in_status(end_ms);
        PileValues {
            count: self.count,
            status_counts: PileStatus::ALL
                .into_iter()
                .filter(|s| self.status_counts[s.index()] > 0)
                .map(|s| (s.as_str().to_owned(), self.status_counts[s.index()]))
                .collect(),
            last_status: self.last_status.map_or(PileStatus::Heartbeat, |(_, s)| s).as_str().to_owned(),
            time_in_status_ms: PileStatus::ALL
                .into_iter()
                .filter(|s| time_in[s.index()] > 0)
                .map(|s| (s.as_str().to_owned(), time_in[s.index()]))
                .collect(),
            power_kw_mean: (self.power_samples > 0).then(|| self.power_sum_kw / self.power_samples as f64),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_statuses_and_keeps_the_latest_real_status() {
        let mut stats = PileStats::default();
        stats.add(3_000, PileStatus::Charging, Some(50.0));
        stats.add(1_000, PileStatus::Available, Some(0.0));
        stats.add(4_000, PileStatus::Heartbeat, None);
        stats.add(2_000, PileStatus::Charging, None);
        let values = stats.values(5_000);
        assert_eq!(values.count, 4);
        assert_eq!(values.status_count(PileStatus::Charging), 2);
        assert_eq!(values.status_count(PileStatus::Faulted), 0);
        assert_eq!(values.last_status, "Charging");
        assert_eq!(values.power_kw_mean, Some(25.0));
        // Available 1 s → 2 s, Charging 2 s → 5 s (the heartbeat at 4 s continues it).
        assert_eq!(values.time_in(PileStatus::Available), 1_000);
        assert_eq!(values.time_in(PileStatus::Charging), 3_000);
        assert_eq!(values.time_in(PileStatus::Heartbeat), 0);
    }
}
