//! The format-neutral record both decoders produce: fields as the vendor sent them,
//! before unit normalisation and validation. JSON and protobuf meet here, which is why
//! they give identical results.

use crate::model::Area;

/// What the record carries besides identity and time.
#[derive(Debug, Clone, PartialEq)]
pub enum RawBody {
    Level { value: f64, unit: String },
    Pile { connector: u32, status: String, error_code: String, power_kw: Option<f64> },
}

#[derive(Debug, Clone, PartialEq)]
pub struct RawRecord {
    /// `sensor_id` or `pile_id`.
    pub id: String,
    /// The record's own `kind`, when it names one.
    pub kind: Option<String>,
    pub ts_ms: i64,
    pub body: RawBody,
    pub area: Area,
    pub lat: Option<f64>,
    pub lon: Option<f64>,
    pub vendor: String,
    pub seq: Option<u64>,
}
