//! Bytes → `Reading` or `Rejection`. Never panics and never does I/O: bad input is data,
//! not an error path. Submodules: `json` and `protobuf` (wire formats → `RawRecord`),
//! `wire` (the borrowing protobuf reader), `flat_json` (the fast path for flat JSON objects), `units` (normalisation), `validate` (range and time checks), `rejection` (reasons).

mod flat_json;
pub mod json;
pub mod protobuf;
pub mod raw;
pub mod rejection;
pub mod units;
pub mod validate;
pub(crate) mod wire;

pub use raw::{RawBody, RawRecord};
pub use rejection::{Reason, Rejection};
pub use validate::Limits;

use crate::model::{Kind, Reading};
use crate::registry::Registry;

/// How a topic's records are encoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    Json,
    Protobuf,
    /// The `content-type` header when present, else JSON when the first byte is `{`.
    Auto,
}

pub const CONTENT_TYPE_JSON: &str = "application/json";
pub const CONTENT_TYPE_PROTOBUF: &str = "application/x-protobuf";

/// Picks JSON or protobuf for one record.
fn resolve_format(format: Format, payload: &[u8], content_type: Option<&str>) -> Result<Format, Rejection> {
    match format {
        Format::Json | Format::Protobuf => Ok(format),
        Format::Auto => match content_type {
            Some(ct) if ct.starts_with(CONTENT_TYPE_JSON) => Ok(Format::Json),
            Some(ct) if ct.starts_with(CONTENT_TYPE_PROTOBUF) => Ok(Format::Protobuf),
            Some(ct) => Err(Rejection::new(Reason::Undecodable, format!("content-type {ct:?} is neither JSON nor protobuf"))),
            None if payload.first() == Some(&b'{') => Ok(Format::Json),
            None => Ok(Format::Protobuf),
        },
    }
}

/// `bytes` as text when they are UTF-8. Records, ids, units and area names are ASCII:
/// `ascii` checks those a word at a time, where `from_utf8` walks short strings byte by
/// byte through its full decoder (12 % of the core's instructions on protobuf before this
/// fast path).
#[inline]
fn utf8(bytes: &[u8]) -> Option<&str> {
    if ascii(bytes) {
        // SAFETY: ASCII is valid UTF-8.
        Some(unsafe { std::str::from_utf8_unchecked(bytes) })
    } else {
        std::str::from_utf8(bytes).ok()
    }
}

/// `bytes.is_ascii()`, for the short strings records carry (ids, units, area codes): up to
/// 16 bytes in two overlapping loads, where the standard one goes byte by byte below 8.
#[inline(always)]
fn ascii(bytes: &[u8]) -> bool {
    const HIGH_BITS: u64 = 0x8080_8080_8080_8080;
    let len = bytes.len();
    let word = |at: usize| u64::from_le_bytes(bytes[at..at + 8].try_into().unwrap_or_default());
    let half = |at: usize| u64::from(u32::from_le_bytes(bytes[at..at + 4].try_into().unwrap_or_default()));
    match len {
        0..=3 => bytes.iter().fold(0, |seen, &b| seen | b) < 0x80,
        4..=7 => (half(0) | half(len - 4)) & HIGH_BITS == 0,
        8..=16 => (word(0) | word(len - 8)) & HIGH_BITS == 0,
        _ => bytes.is_ascii(),
    }
}

/// Everything decoding needs besides the record: limits, registry and record-size cap.
#[derive(Debug, Clone)]
pub struct Decoder {
    pub limits: Limits,
    pub max_record_bytes: usize,
}

impl Decoder {
    /// Decodes and validates one record from a topic of `kind`. `now_ms` is the wall clock.
    /// The reading's text borrows the payload and the registry.
    pub fn decode<'a>(
        &self,
        kind: Kind,
        format: Format,
        payload: Option<&'a [u8]>,
        content_type: Option<&str>,
        registry: &'a Registry,
        now_ms: i64,
    ) -> Result<Reading<'a>, Rejection> {
        let payload = payload.unwrap_or_default();
        if payload.is_empty() {
            return Err(Rejection::new(Reason::Undecodable, "empty record"));
        }
        if payload.len() > self.max_record_bytes {
            return Err(Rejection::new(
                Reason::Oversize,
                format!("{} bytes exceeds the {}-byte limit", payload.len(), self.max_record_bytes),
            ));
        }
        let raw = match (resolve_format(format, payload, content_type)?, kind) {
            (Format::Protobuf, Kind::Charging) => protobuf::decode_pile_status(payload)?,
            (Format::Protobuf, _) => protobuf::decode_reading(payload)?,
            (_, Kind::Charging) => json::decode_pile_status(payload)?,
            (_, _) => json::decode_reading(payload)?,
        };
        validate::validate(raw, kind, registry, &self.limits, now_ms)
    }
}

#[cfg(test)]
mod tests {
    use prost::Message;

    use super::*;
    use crate::proto;

    #[test]
    fn the_short_ascii_check_agrees_with_the_standard_one_at_every_length_and_position() {
        for len in 0..40 {
            let text = vec![b'a'; len];
            assert!(ascii(&text), "{len} ASCII bytes");
            for at in 0..len {
                let mut high = text.clone();
                high[at] = 0x80;
                assert!(!ascii(&high), "a high byte at {at} of {len}");
            }
        }
    }

    const NOW: i64 = 1_764_057_600_000;

    fn decoder() -> Decoder {
        Decoder { limits: Limits::default(), max_record_bytes: 1024 }
    }

    #[test]
    fn json_and_protobuf_give_identical_readings() {
        let json = br#"{"sensor_id":"hd-pm-1","kind":"pm25","ts":1764057500000,"value":0.05,"unit":"mg/m3","grid":"g1","street":"s1","district":"haidian","vendor":"acme","seq":9}"#;
        let pb = proto::Reading {
            sensor_id: "hd-pm-1".into(),
            kind: "pm25".into(),
            ts_ms: 1_764_057_500_000,
            value: 0.05,
            unit: "mg/m3".into(),
            grid: "g1".into(),
            street: "s1".into(),
            district: "haidian".into(),
            vendor: "acme".into(),
            seq: Some(9),
            ..Default::default()
        }
        .encode_to_vec();
        let registry = Registry::empty();
        let from_json = decoder().decode(Kind::Pm25, Format::Auto, Some(json), None, &registry, NOW).unwrap();
        let from_pb = decoder().decode(Kind::Pm25, Format::Auto, Some(&pb), None, &registry, NOW).unwrap();
        assert_eq!(from_json, from_pb);
        let from_header = decoder().decode(Kind::Pm25, Format::Auto, Some(&pb), Some(CONTENT_TYPE_PROTOBUF), &registry, NOW).unwrap();
        assert_eq!(from_header, from_pb);
    }

    #[test]
    fn json_and_protobuf_pile_statuses_agree() {
        let json =
            br#"{"pile_id":"cy-cp-1","connector":1,"ts":1764057500000,"status":"Faulted","error_code":"GroundFailure","power_kw":0.0}"#;
        let pb = proto::ChargingStatus {
            pile_id: "cy-cp-1".into(),
            connector: 1,
            ts_ms: 1_764_057_500_000,
            status: "Faulted".into(),
            error_code: "GroundFailure".into(),
            power_kw: Some(0.0),
            ..Default::default()
        }
        .encode_to_vec();
        let registry = Registry::empty();
        let a = decoder().decode(Kind::Charging, Format::Json, Some(json), None, &registry, NOW).unwrap();
        let b = decoder().decode(Kind::Charging, Format::Protobuf, Some(&pb), None, &registry, NOW).unwrap();
        assert_eq!(a, b);
    }

    #[test]
    fn empty_oversize_and_mislabelled_records_are_rejected() {
        let registry = Registry::empty();
        let d = decoder();
        assert_eq!(d.decode(Kind::Pm25, Format::Auto, None, None, &registry, NOW).unwrap_err().reason, Reason::Undecodable);
        let big = vec![b'{'; 2048];
        assert_eq!(d.decode(Kind::Pm25, Format::Auto, Some(&big), None, &registry, NOW).unwrap_err().reason, Reason::Oversize);
        let err = d.decode(Kind::Pm25, Format::Auto, Some(b"{}"), Some("text/csv"), &registry, NOW).unwrap_err();
        assert_eq!(err.reason, Reason::Undecodable);
        // JSON bytes on a protobuf-only topic are not silently misread as a valid reading.
        let json = br#"{"sensor_id":"a","ts":1764057500000,"value":1,"unit":"ug/m3"}"#;
        assert!(d.decode(Kind::Pm25, Format::Protobuf, Some(json), None, &registry, NOW).is_err());
    }
}
