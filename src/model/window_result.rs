//! The result of one closed window for one sensor.

use super::{Area, Kind, PileStatus};

/// Aggregates of one (sensor, window): levels for pm25/dust/water, status counts for piles.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
#[serde(untagged)]
pub enum WindowValues {
    Level {
        count: u64,
        sum: f64,
        mean: f64,
        min: f64,
        max: f64,
        first: f64,
        last: f64,
        stddev: f64,
    },
    Pile {
        count: u64,
        /// Records per status, in `PileStatus::ALL` order; zero counts are omitted.
        status_counts: Vec<(String, u64)>,
        last_status: String,
        /// Mean reported power over the records that carried it.
        power_kw_mean: Option<f64>,
    },
}

impl WindowValues {
    pub fn count(&self) -> u64 {
        match self {
            WindowValues::Level { count, .. } | WindowValues::Pile { count, .. } => *count,
        }
    }

    pub fn pile_status_count(&self, status: PileStatus) -> u64 {
        match self {
            WindowValues::Pile { status_counts, .. } => {
                status_counts.iter().find(|(name, _)| name == status.as_str()).map_or(0, |(_, n)| *n)
            }
            WindowValues::Level { .. } => 0,
        }
    }
}

/// One closed window of one sensor: the unit written to every sink.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct WindowResult {
    pub kind: Kind,
    pub sensor_id: String,
    /// The window's label from the config ("1m", "1h", "24h/1h" for sliding).
    pub window: String,
    pub start_ms: i64,
    /// Exclusive end; the InfluxDB point's timestamp.
    pub end_ms: i64,
    #[serde(flatten)]
    pub area: Area,
    #[serde(flatten)]
    pub values: WindowValues,
}
