//! A reading after decoding, unit normalisation and validation.

use super::{Kind, PileStatus};

/// Where a sensor sits in the grid-management hierarchy (grid → street → district).
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub struct Area {
    pub grid: String,
    pub street: String,
    pub district: String,
}

impl Area {
    pub fn is_empty(&self) -> bool {
        self.grid.is_empty() && self.street.is_empty() && self.district.is_empty()
    }
}

/// What was observed: a level in the kind's canonical unit, or a pile status.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Observation {
    /// pm25 µg/m³, dust g/m², water m.
    Level(f64),
    /// A charging-pile status notification; `power_kw` when the pile reports it.
    Pile { status: PileStatus, power_kw: Option<f64> },
}

/// A clean, normalised reading: the only thing the window stage ever sees.
#[derive(Debug, Clone, PartialEq)]
pub struct Reading {
    pub sensor_id: String,
    pub kind: Kind,
    /// Event time, epoch milliseconds UTC.
    pub ts_ms: i64,
    pub observation: Observation,
    /// Location as the record gave it (the registry, when it knows the sensor, wins).
    pub area: Area,
    pub vendor: String,
    pub seq: Option<u64>,
}
