//! What travels on the aggregates topic (JSON), and what the area stage produces.

use crate::model::{DomainValues, Kind, WindowResult, WindowValues};

/// The part of a per-sensor window result the area stage needs.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct SensorWindow {
    pub kind: Kind,
    pub sensor_id: String,
    pub window: String,
    pub start_ms: i64,
    pub end_ms: i64,
    pub grid: String,
    pub street: String,
    pub district: String,
    /// Levels: the window mean and maximum.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mean: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max: Option<f64>,
    /// Piles: the last reported status and the utilisation within the window.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_status: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub utilisation: Option<f64>,
    /// Levels: more than one sample, all equal (a candidate stuck sensor).
    #[serde(default)]
    pub flat: bool,
}

impl From<&WindowResult> for SensorWindow {
    fn from(r: &WindowResult) -> Self {
        let (mean, max, last_status, flat) = match &r.values {
            WindowValues::Level(v) => (Some(v.mean), Some(v.max), None, v.count > 1 && v.min == v.max),
            WindowValues::Pile(p) => (None, None, Some(p.last_status.clone()), false),
        };
        let utilisation = match r.domain {
            Some(DomainValues::Charging { utilisation }) => utilisation,
            _ => None,
        };
        SensorWindow {
            kind: r.kind,
            sensor_id: r.sensor_id.clone(),
            window: r.window.clone(),
            start_ms: r.start_ms,
            end_ms: r.end_ms,
            grid: r.area.grid.clone(),
            street: r.area.street.clone(),
            district: r.area.district.clone(),
            mean,
            max,
            last_status,
            utilisation,
            flat,
        }
    }
}

/// A record on the aggregates topic.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum AggregateMessage {
    /// One closed sensor window, from input partition `source` ("topic/partition").
    Window { source: String, window: Box<SensorWindow> },
    /// Every window of `source` with end + allowed lateness ≤ `watermark_ms` is published.
    Watermark { source: String, kind: Kind, watermark_ms: i64 },
}

/// The level of the grid-management hierarchy an area result is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AreaLevel {
    Grid,
    Street,
    District,
}

impl AreaLevel {
    pub const ALL: [AreaLevel; 3] = [AreaLevel::Grid, AreaLevel::Street, AreaLevel::District];

    pub fn as_str(self) -> &'static str {
        match self {
            AreaLevel::Grid => "grid",
            AreaLevel::Street => "street",
            AreaLevel::District => "district",
        }
    }
}

/// How far one sensor's window mean lies from its peers' (the same street, or district when
/// the street is unknown): the input of outlier rules. A robust z-score: the distance from
/// the peers' median in units of 1.4826 × their median absolute deviation.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct PeerDeviation {
    pub kind: Kind,
    pub window: String,
    pub end_ms: i64,
    pub sensor_id: String,
    pub grid: String,
    pub street: String,
    pub district: String,
    pub mean: f64,
    pub peer_median: f64,
    pub robust_z: f64,
    /// Sensors in the group, this one included.
    pub peers: u32,
    /// This sensor's window had several samples, all equal.
    pub flat: bool,
    /// Peers (others in the group) whose readings varied in the window.
    pub peers_varying: u32,
}

/// One area's roll-up of one window.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct AreaResult {
    pub kind: Kind,
    pub window: String,
    pub start_ms: i64,
    pub end_ms: i64,
    pub level: AreaLevel,
    /// The grid, street or district id.
    pub area: String,
    pub district: String,
    /// Mean and maximum of the sensor means (levels).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mean: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max: Option<f64>,
    pub sensors_reporting: u32,
    /// Registered sensors of this kind in the area that sent nothing in the window; unknown
    /// without a registry entry for the area.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sensors_silent: Option<u32>,
    /// Piles: Available ÷ reporting, Faulted ÷ reporting, mean utilisation.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub availability: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fault_ratio: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub utilisation: Option<f64>,
    /// Charging: piles of the area that sent nothing in the window (offline: with the default
    /// 5 min window and 60 s heartbeat, at least three missed heartbeats).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub piles_offline: Option<u32>,
    /// Dust: roads at least twice their district's mean.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hotspots: Option<u32>,
}
