//! Charging-pile window state: records per OCPP status, the latest status by event time,
//! and the mean reported power.

use crate::model::{PileStatus, WindowValues};

#[derive(Debug, Clone, PartialEq, Default)]
pub struct PileStats {
    count: u64,
    status_counts: [u64; PileStatus::ALL.len()],
    /// Latest non-heartbeat status by event time: a heartbeat says "alive", not "available".
    last_status: Option<(i64, PileStatus)>,
    power_sum_kw: f64,
    power_samples: u64,
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
    }

    pub fn values(&self) -> WindowValues {
        WindowValues::Pile {
            count: self.count,
            status_counts: PileStatus::ALL
                .into_iter()
                .filter(|s| self.status_counts[s.index()] > 0)
                .map(|s| (s.as_str().to_owned(), self.status_counts[s.index()]))
                .collect(),
            last_status: self.last_status.map_or(PileStatus::Heartbeat, |(_, s)| s).as_str().to_owned(),
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
        let values = stats.values();
        assert_eq!(values.count(), 4);
        assert_eq!(values.pile_status_count(PileStatus::Charging), 2);
        assert_eq!(values.pile_status_count(PileStatus::Faulted), 0);
        let WindowValues::Pile { last_status, power_kw_mean, .. } = values else { panic!() };
        assert_eq!(last_status, "Charging");
        assert_eq!(power_kw_mean, Some(25.0));
    }
}
