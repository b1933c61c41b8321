//! The result of one closed window for one sensor.

use smol_str::SmolStr;

use super::{Area, Kind, PileStatus};

/// Aggregates of a level series (pm25, dust, water) over one window.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct LevelValues {
    pub count: u64,
    pub sum: f64,
    pub mean: f64,
    pub min: f64,
    pub max: f64,
    /// Values of the earliest and latest sample by event time.
    pub first: f64,
    pub last: f64,
    /// Population standard deviation.
    pub stddev: f64,
    /// Quantiles from a DDSketch with 1 % relative error (`aggregate::sketch`).
    pub p50: f64,
    pub p95: f64,
    /// (last − first) per hour of time between those samples; 0 with one sample.
    pub rate_per_h: f64,
    /// Least-squares slope per hour over all samples (the water rise rate).
    pub slope_per_h: Option<f64>,
}

impl LevelValues {
    /// A window holding one sample (for tests and examples).
    pub fn single(value: f64) -> Self {
        LevelValues {
            count: 1,
            sum: value,
            mean: value,
            min: value,
            max: value,
            first: value,
            last: value,
            stddev: 0.0,
            p50: value,
            p95: value,
            rate_per_h: 0.0,
            slope_per_h: None,
        }
    }
}

/// Aggregates of a charging pile over one window.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct PileValues {
    pub count: u64,
    /// Records per status, in `PileStatus::ALL` order; zero counts are omitted.
    pub status_counts: Vec<(String, u64)>,
    /// Latest reported status by event time (heartbeats excluded).
    pub last_status: String,
    /// Milliseconds in each status, from each record to the next (the last to the window end).
    pub time_in_status_ms: Vec<(String, i64)>,
    /// Mean reported power over the records that carried it.
    pub power_kw_mean: Option<f64>,
}

impl PileValues {
    pub fn status_count(&self, status: PileStatus) -> u64 {
        self.status_counts.iter().find(|(name, _)| name == status.as_str()).map_or(0, |(_, n)| *n)
    }

    pub fn time_in(&self, status: PileStatus) -> i64 {
        self.time_in_status_ms.iter().find(|(name, _)| name == status.as_str()).map_or(0, |(_, ms)| *ms)
    }
}

#[derive(Debug, Clone, PartialEq, serde::Serialize)]
#[serde(untagged)]
pub enum WindowValues {
    Level(LevelValues),
    Pile(PileValues),
}

impl WindowValues {
    pub fn count(&self) -> u64 {
        match self {
            WindowValues::Level(v) => v.count,
            WindowValues::Pile(v) => v.count,
        }
    }

    pub fn level(&self) -> Option<&LevelValues> {
        match self {
            WindowValues::Level(v) => Some(v),
            WindowValues::Pile(_) => None,
        }
    }

    pub fn pile(&self) -> Option<&PileValues> {
        match self {
            WindowValues::Pile(v) => Some(v),
            WindowValues::Level(_) => None,
        }
    }
}

/// Domain metrics of a closed window (`domain`), by kind.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
#[serde(untagged)]
pub enum DomainValues {
    /// HJ 633 IAQI of the window mean (hourly and daily windows), optionally US EPA AQI.
    Pm25 {
        iaqi: u32,
        category: &'static str,
        above_scale: bool,
        standard: &'static str,
        #[serde(skip_serializing_if = "Option::is_none")]
        epa_aqi: Option<u32>,
        #[serde(skip_serializing_if = "Option::is_none")]
        nowcast: Option<f64>,
    },
    /// River gauge: flood colour of the latest level; underpass: ponding grade of the maximum.
    Water {
        flood_signal: Option<&'static str>,
        underpass_grade: Option<&'static str>,
        #[serde(skip_serializing_if = "Option::is_none")]
        minutes_to_next_threshold: Option<f64>,
    },
    Dust {
        dust_grade: &'static str,
    },
    /// Utilisation: time charging ÷ time online within the window.
    Charging {
        #[serde(skip_serializing_if = "Option::is_none")]
        utilisation: Option<f64>,
    },
}

/// One closed window of one sensor: the unit written to every sink.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct WindowResult {
    pub kind: Kind,
    pub sensor_id: SmolStr,
    /// The window's label from the config ("1m", "1h", "24h/1h" for sliding).
    pub window: SmolStr,
    pub start_ms: i64,
    /// Exclusive end; the InfluxDB point's timestamp.
    pub end_ms: i64,
    #[serde(flatten)]
    pub area: Area,
    #[serde(flatten)]
    pub values: WindowValues,
    /// Samples seen ÷ samples expected from the sensor's nominal interval (blind spots).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub coverage: Option<f64>,
    #[serde(flatten, skip_serializing_if = "Option::is_none")]
    pub domain: Option<DomainValues>,
}
