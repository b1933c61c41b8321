//! A reading after decoding, unit normalisation and validation.

use smol_str::SmolStr;

use super::{Kind, PileStatus};

/// Where a sensor sits in the grid-management hierarchy (grid → street → district).
/// Names are `SmolStr`: up to 23 bytes inline, so decoding, copying and comparing an area
/// allocates nothing for every grid, street and district name in use.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub struct Area {
    pub grid: SmolStr,
    pub street: SmolStr,
    pub district: SmolStr,
}

impl Area {
    /// An area from borrowed names (inline copies for names up to 23 bytes).
    pub fn new(grid: &str, street: &str, district: &str) -> Self {
        Area { grid: grid.into(), street: street.into(), district: district.into() }
    }

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
    /// Inline up to 23 bytes, like `Area`'s names: a reading allocates nothing.
    pub sensor_id: SmolStr,
    pub kind: Kind,
    /// Event time, epoch milliseconds UTC.
    pub ts_ms: i64,
    pub observation: Observation,
    /// Location as the record gave it (the registry, when it knows the sensor, wins).
    pub area: Area,
    pub vendor: SmolStr,
    pub seq: Option<u64>,
}
