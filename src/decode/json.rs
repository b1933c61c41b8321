//! JSON readings and charging-pile statuses (SPEC §1) → `RawRecord`. Unknown fields are
//! ignored (vendors add their own); missing or mistyped required fields are schema errors.

use std::borrow::Cow;
use std::fmt;

use serde::de::{self, Deserializer, Visitor};
use serde::Deserialize;

use super::raw::{RawBody, RawRecord};
use super::rejection::{Reason, Rejection};
use crate::model::AreaRef;

/// Text fields borrow the record (owned only when the JSON string has escapes).
#[derive(Deserialize)]
struct JsonReading<'a> {
    #[serde(borrow)]
    sensor_id: Cow<'a, str>,
    #[serde(borrow)]
    kind: Option<Cow<'a, str>>,
    ts: Timestamp,
    value: Number,
    #[serde(borrow)]
    unit: Cow<'a, str>,
    #[serde(default, borrow)]
    grid: Cow<'a, str>,
    #[serde(default, borrow)]
    street: Cow<'a, str>,
    #[serde(default, borrow)]
    district: Cow<'a, str>,
    lat: Option<f64>,
    lon: Option<f64>,
    #[serde(default, borrow)]
    vendor: Cow<'a, str>,
    seq: Option<u64>,
}

#[derive(Deserialize)]
struct JsonPileStatus<'a> {
    #[serde(borrow)]
    pile_id: Cow<'a, str>,
    #[serde(default)]
    connector: u32,
    ts: Timestamp,
    #[serde(borrow)]
    status: Cow<'a, str>,
    #[serde(default, borrow)]
    error_code: Cow<'a, str>,
    power_kw: Option<Number>,
    #[serde(default, borrow)]
    grid: Cow<'a, str>,
    #[serde(default, borrow)]
    street: Cow<'a, str>,
    #[serde(default, borrow)]
    district: Cow<'a, str>,
    lat: Option<f64>,
    lon: Option<f64>,
    #[serde(default, borrow)]
    vendor: Cow<'a, str>,
    seq: Option<u64>,
}

/// Decodes a pm25/dust/water reading.
pub fn decode_reading(bytes: &[u8]) -> Result<RawRecord<'_>, Rejection> {
    let json: JsonReading = parse(bytes)?;
    Ok(RawRecord {
        id: json.sensor_id,
        kind: json.kind,
        ts_ms: json.ts.0,
        body: RawBody::Level { value: json.value.0, unit: json.unit },
        area: AreaRef { grid: json.grid, street: json.street, district: json.district },
        lat: json.lat,
        lon: json.lon,
        vendor: json.vendor,
        seq: json.seq,
    })
}

/// Decodes a charging-pile status or heartbeat.
pub fn decode_pile_status(bytes: &[u8]) -> Result<RawRecord<'_>, Rejection> {
    let json: JsonPileStatus = parse(bytes)?;
    Ok(RawRecord {
        id: json.pile_id,
        kind: Some("charging".into()),
        ts_ms: json.ts.0,
        body: RawBody::Pile {
            connector: json.connector,
            status: json.status,
            error_code: json.error_code,
            power_kw: json.power_kw.map(|n| n.0),
        },
        area: AreaRef { grid: json.grid, street: json.street, district: json.district },
        lat: json.lat,
        lon: json.lon,
        vendor: json.vendor,
        seq: json.seq,
    })
}

/// One JSON document. A record that is UTF-8 (all of them, bar garbage) is parsed as
/// text, so serde_json does not check the UTF-8 of every key and string again (a third of
/// a JSON reading's instructions); anything else goes through the byte parser, which
/// names where the bad bytes are.
fn parse<'a, T: Deserialize<'a>>(bytes: &'a [u8]) -> Result<T, Rejection> {
    match super::utf8(bytes) {
        Some(text) => serde_json::from_str(text),
        None => serde_json::from_slice(bytes),
    }
    .map_err(classify)
}

/// Syntax errors (not JSON at all, truncated) are undecodable; valid JSON of the wrong
/// shape is a schema error.
fn classify(err: serde_json::Error) -> Rejection {
    use serde_json::error::Category;
    let reason = match err.classify() {
        Category::Data => Reason::Schema,
        Category::Syntax | Category::Eof | Category::Io => Reason::Undecodable,
    };
    Rejection::new(reason, err.to_string())
}

/// Event time: RFC 3339 with an offset, or integer epoch milliseconds.
struct Timestamp(i64);

impl<'de> Deserialize<'de> for Timestamp {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct TimestampVisitor;
        impl Visitor<'_> for TimestampVisitor {
            type Value = Timestamp;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("an RFC 3339 timestamp or integer epoch milliseconds")
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Timestamp, E> {
                Ok(Timestamp(v))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Timestamp, E> {
                i64::try_from(v).map(Timestamp).map_err(|_| E::custom("ts out of range"))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Timestamp, E> {
                chrono::DateTime::parse_from_rfc3339(v)
                    .map(|t| Timestamp(t.timestamp_millis()))
                    .map_err(|err| E::custom(format!("ts {v:?} is not RFC 3339: {err}")))
            }
        }
        deserializer.deserialize_any(TimestampVisitor)
    }
}

/// A measured value: a JSON number, or one of the strings "NaN", "Infinity", "-Infinity"
/// (which some vendors emit and which validation then rejects as non-finite).
struct Number(f64);

impl<'de> Deserialize<'de> for Number {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct NumberVisitor;
        impl Visitor<'_> for NumberVisitor {
            type Value = Number;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a number")
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<Number, E> {
                Ok(Number(v))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Number, E> {
                Ok(Number(v as f64))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Number, E> {
                Ok(Number(v as f64))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Number, E> {
                match v {
                    "NaN" | "nan" => Ok(Number(f64::NAN)),
                    "Infinity" | "inf" | "+Infinity" => Ok(Number(f64::INFINITY)),
                    "-Infinity" | "-inf" => Ok(Number(f64::NEG_INFINITY)),
                    _ => Err(E::invalid_type(de::Unexpected::Str(v), &self)),
                }
            }
        }
        deserializer.deserialize_any(NumberVisitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SPEC_READING: &str = r#"{"sensor_id": "hd-pm-0042", "kind": "pm25", "ts": "2026-11-25T08:00:00Z", "value": 41.5,
 "unit": "ug/m3", "grid": "hd-0178", "street": "hd-zhongguancun", "district": "haidian",
 "lat": 39.98, "lon": 116.31, "vendor": "acme", "seq": 1234}"#;

    const SPEC_PILE: &str = r#"{"pile_id": "cy-cp-10442", "connector": 1, "ts": 1764057600000, "status": "Charging",
 "error_code": "NoError", "power_kw": 58.2, "grid": "cy-0031", "district": "chaoyang"}"#;

    #[test]
    fn the_spec_example_reading_decodes() {
        let raw = decode_reading(SPEC_READING.as_bytes()).expect("decodes");
        assert_eq!(raw.id, "hd-pm-0042");
        assert_eq!(raw.ts_ms, 1_795_593_600_000, "2026-11-25T08:00:00Z");
        assert_eq!(raw.body, RawBody::Level { value: 41.5, unit: "ug/m3".into() });
        assert_eq!(raw.area.street, "hd-zhongguancun");
        assert_eq!(raw.seq, Some(1234));
        assert_eq!(raw.lat, Some(39.98));
    }

    #[test]
    fn the_spec_example_pile_status_decodes() {
        let raw = decode_pile_status(SPEC_PILE.as_bytes()).expect("decodes");
        assert_eq!(raw.id, "cy-cp-10442");
        assert_eq!(raw.ts_ms, 1_764_057_600_000);
        assert!(matches!(raw.body, RawBody::Pile { connector: 1, ref status, power_kw: Some(p), .. } if status == "Charging" && p == 58.2));
        assert_eq!(raw.area.street, "");
    }

    #[test]
    fn rfc3339_offsets_are_honoured() {
        let utc = decode_reading(br#"{"sensor_id":"a","ts":"2026-11-25T08:00:00Z","value":1,"unit":"m"}"#).unwrap();
        let cst = decode_reading(br#"{"sensor_id":"a","ts":"2026-11-25T16:00:00+08:00","value":1,"unit":"m"}"#).unwrap();
        assert_eq!(utc.ts_ms, cst.ts_ms);
    }

    #[test]
    fn broken_bytes_are_undecodable_and_wrong_shapes_are_schema_errors() {
        let cases: [(&[u8], Reason); 7] = [
            (b"{\"sensor_id\": ", Reason::Undecodable),
            (b"\xff\xfe garbage", Reason::Undecodable),
            (br#"{"sensor_id":"a","ts":1,"unit":"m"}"#, Reason::Schema),
            (br#"{"sensor_id":"a","ts":1,"value":"high","unit":"m"}"#, Reason::Schema),
            (br#"{"sensor_id":7,"ts":1,"value":1,"unit":"m"}"#, Reason::Schema),
            (br#"{"sensor_id":"a","ts":"yesterday","value":1,"unit":"m"}"#, Reason::Schema),
            (br#"[1,2,3]"#, Reason::Schema),
        ];
        for (bytes, reason) in cases {
            let err = decode_reading(bytes).expect_err("rejected");
            assert_eq!(err.reason, reason, "{:?}: {}", String::from_utf8_lossy(bytes), err.detail);
        }
    }

    #[test]
    fn text_and_bytes_parse_alike_whatever_their_encoding() {
        // Non-ASCII UTF-8 takes the text parser; escapes come back owned.
        let raw = decode_reading("{\"sensor_id\":\"a\\u00b5\",\"ts\":1,\"value\":1,\"unit\":\"µg/m³\",\"district\":\"海淀\"}".as_bytes())
            .unwrap();
        assert_eq!((raw.id.as_ref(), raw.area.district.as_ref()), ("aµ", "海淀"));
        assert_eq!(raw.body, RawBody::Level { value: 1.0, unit: "µg/m³".into() });
        // Bytes that are not UTF-8 inside a string are undecodable, as from the byte parser.
        let err = decode_reading(b"{\"sensor_id\":\"a\xff\",\"ts\":1,\"value\":1,\"unit\":\"m\"}").unwrap_err();
        assert_eq!(err.reason, Reason::Undecodable, "{}", err.detail);
        assert_eq!(err.detail, serde_json::from_slice::<serde_json::Value>(b"{\"sensor_id\":\"a\xff\"}").unwrap_err().to_string());
    }

    #[test]
    fn nan_strings_decode_so_validation_can_name_them() {
        let raw = decode_reading(br#"{"sensor_id":"a","ts":1,"value":"NaN","unit":"m"}"#).unwrap();
        assert!(matches!(raw.body, RawBody::Level { value, .. } if value.is_nan()));
    }
}
