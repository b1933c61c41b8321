//! The format-neutral record both decoders produce: fields as the vendor sent them,
//! before unit normalisation and validation. JSON and protobuf meet here, which is why
//! they give identical results.

use smol_str::SmolStr;

use crate::model::Area;

/// What the record carries besides identity and time.
#[derive(Debug, Clone, PartialEq)]
pub enum RawBody {
    Level { value: f64, unit: SmolStr },
    Pile { connector: u32, status: SmolStr, error_code: SmolStr, power_kw: Option<f64> },
}

#[derive(Debug, Clone, PartialEq)]
pub struct RawRecord {
    /// `sensor_id` or `pile_id`.
    pub id: SmolStr,
    /// The record's own `kind`, when it names one.
    pub kind: Option<SmolStr>,
    pub ts_ms: i64,
    pub body: RawBody,
    pub area: Area,
    pub lat: Option<f64>,
    pub lon: Option<f64>,
    pub vendor: SmolStr,
    pub seq: Option<u64>,
}
