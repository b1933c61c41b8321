//! The format-neutral record both decoders produce: fields as the vendor sent them,
//! before unit normalisation and validation. JSON and protobuf meet here, which is why
//! they give identical results. Text borrows the record's bytes (JSON with escapes is the
//! exception), so decoding copies no names. A record's `lat`/`lon` are type-checked by
//! both decoders but not kept: a sensor's location is the registry's (SPEC §1), and
//! nothing downstream reads the record's.

use std::borrow::Cow;

use crate::model::AreaRef;

/// What the record carries besides identity and time.
#[derive(Debug, Clone, PartialEq)]
pub enum RawBody<'a> {
    Level { value: f64, unit: Cow<'a, str> },
    Pile { connector: u32, status: Cow<'a, str>, error_code: Cow<'a, str>, power_kw: Option<f64> },
}

#[derive(Debug, Clone, PartialEq)]
pub struct RawRecord<'a> {
    /// `sensor_id` or `pile_id`.
    pub id: Cow<'a, str>,
    /// The record's own `kind`, when it names one.
    pub kind: Option<Cow<'a, str>>,
    pub ts_ms: i64,
    pub body: RawBody<'a>,
    pub area: AreaRef<'a>,
    pub vendor: Cow<'a, str>,
    pub seq: Option<u64>,
}
