//! JSON readings and charging-pile statuses (SPEC §1) → `RawRecord`. Unknown fields are
//! ignored (vendors add their own); missing or mistyped required fields are schema errors.
//! A record of the usual flat shape is read by `flat_json` (a third of serde_json's
//! instructions); anything else, and every error, goes through serde_json.

use std::borrow::Cow;
use std::fmt;

use serde::de::{self, Deserializer, Visitor};
use serde::Deserialize;

use super::flat_json::{self, once, Names, Number as JsonNumber, Value};
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
    // Type-checked only (see `RawRecord`).
    #[allow(dead_code)]
    lat: Option<f64>,
    #[allow(dead_code)]
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
    // Type-checked only (see `RawRecord`).
    #[allow(dead_code)]
    lat: Option<f64>,
    #[allow(dead_code)]
    lon: Option<f64>,
    #[serde(default, borrow)]
    vendor: Cow<'a, str>,
    seq: Option<u64>,
}

/// Decodes a pm25/dust/water reading.
pub fn decode_reading(bytes: &[u8]) -> Result<RawRecord<'_>, Rejection> {
    match flat_reading(bytes) {
        Some(raw) => Ok(raw),
        None => serde_reading(bytes),
    }
}

/// `decode_reading` through serde_json alone: the fallback for what the flat parser leaves
/// to it, kept out of line (inlined, it cost the flat path 3 % in instructions).
#[cold]
#[inline(never)]
fn serde_reading(bytes: &[u8]) -> Result<RawRecord<'_>, Rejection> {
    let json: JsonReading = parse(bytes)?;
    Ok(RawRecord {
        id: json.sensor_id,
        kind: json.kind,
        ts_ms: json.ts.0,
        body: RawBody::Level { value: json.value.0, unit: json.unit },
        area: AreaRef { grid: json.grid, street: json.street, district: json.district },
        vendor: json.vendor,
        seq: json.seq,
    })
}

/// Decodes a charging-pile status or heartbeat.
pub fn decode_pile_status(bytes: &[u8]) -> Result<RawRecord<'_>, Rejection> {
    match flat_pile_status(bytes) {
        Some(raw) => Ok(raw),
        None => serde_pile_status(bytes),
    }
}

/// `decode_pile_status` through serde_json alone, kept out of line likewise.
#[cold]
#[inline(never)]
fn serde_pile_status(bytes: &[u8]) -> Result<RawRecord<'_>, Rejection> {
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
        vendor: json.vendor,
        seq: json.seq,
    })
}

/// The members `flat_json` reads, of readings and pile statuses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Field {
    SensorId,
    Kind,
    Ts,
    Value,
    Unit,
    PileId,
    Connector,
    Status,
    ErrorCode,
    PowerKw,
    Grid,
    Street,
    District,
    Lat,
    Lon,
    Vendor,
    Seq,
}

/// `JsonReading`'s members in SPEC §1's order, which vendors (and the simulator) keep.
static READING_NAMES: Names<Field, 12> = Names::new(then_shared([
    ("sensor_id", Field::SensorId),
    ("kind", Field::Kind),
    ("ts", Field::Ts),
    ("value", Field::Value),
    ("unit", Field::Unit),
]));

/// `JsonPileStatus`'s members in SPEC §1's order.
static PILE_STATUS_NAMES: Names<Field, 13> = Names::new(then_shared([
    ("pile_id", Field::PileId),
    ("connector", Field::Connector),
    ("ts", Field::Ts),
    ("status", Field::Status),
    ("error_code", Field::ErrorCode),
    ("power_kw", Field::PowerKw),
]));

/// The members both records end with (`SharedMembers`), in SPEC §1's order.
const SHARED_NAMES: [(&str, Field); 7] = [
    ("grid", Field::Grid),
    ("street", Field::Street),
    ("district", Field::District),
    ("lat", Field::Lat),
    ("lon", Field::Lon),
    ("vendor", Field::Vendor),
    ("seq", Field::Seq),
];

/// A record's own member names followed by the shared ones (`M` = `N` + 7).
const fn then_shared<const N: usize, const M: usize>(own: [(&'static str, Field); N]) -> [(&'static str, Field); M] {
    assert!(N + SHARED_NAMES.len() == M, "M is N plus the shared names");
    let mut all = [("", Field::Seq); M];
    let mut i = 0;
    while i < M {
        all[i] = if i < N { own[i] } else { SHARED_NAMES[i - N] };
        i += 1;
    }
    all
}

/// `JsonReading` through `flat_json`: the same fields, defaults and duplicate rule.
fn flat_reading(bytes: &[u8]) -> Option<RawRecord<'_>> {
    let (mut id, mut kind, mut ts, mut value, mut unit) = (None, None, None, None, None);
    let mut shared = SharedMembers::default();
    flat_json::named_members(bytes, &READING_NAMES, |field, member| match field {
        Some(Field::SensorId) => once(&mut id, text_of(member)),
        Some(Field::Kind) => once(&mut kind, optional(member, text_of)),
        Some(Field::Ts) => once(&mut ts, timestamp_of(member)),
        Some(Field::Value) => once(&mut value, measured_of(member)),
        Some(Field::Unit) => once(&mut unit, text_of(member)),
        Some(other) => shared.read(other, member),
        None => Some(()),
    })?;
    Some(shared.into_record(id?, kind.flatten().map(Cow::Borrowed), ts?, RawBody::Level { value: value?, unit: Cow::Borrowed(unit?) }))
}

/// `JsonPileStatus` through `flat_json`.
fn flat_pile_status(bytes: &[u8]) -> Option<RawRecord<'_>> {
    let (mut id, mut connector, mut ts, mut status, mut error_code, mut power_kw) = (None, None, None, None, None, None);
    let mut shared = SharedMembers::default();
    flat_json::named_members(bytes, &PILE_STATUS_NAMES, |field, member| match field {
        Some(Field::PileId) => once(&mut id, text_of(member)),
        Some(Field::Connector) => once(&mut connector, u64_of(member).and_then(|c| u32::try_from(c).ok())),
        Some(Field::Ts) => once(&mut ts, timestamp_of(member)),
        Some(Field::Status) => once(&mut status, text_of(member)),
        Some(Field::ErrorCode) => once(&mut error_code, text_of(member)),
        Some(Field::PowerKw) => once(&mut power_kw, optional(member, measured_of)),
        Some(other) => shared.read(other, member),
        None => Some(()),
    })?;
    let body = RawBody::Pile {
        connector: connector.unwrap_or_default(),
        status: Cow::Borrowed(status?),
        error_code: Cow::Borrowed(error_code.unwrap_or_default()),
        power_kw: power_kw.flatten(),
    };
    Some(shared.into_record(id?, Some("charging".into()), ts?, body))
}

/// The members readings and pile statuses share: where the sensor is, who sent it, its
/// sequence number. Each is read once (a second is serde_json's "duplicate field").
#[derive(Default)]
struct SharedMembers<'a> {
    grid: Option<&'a str>,
    street: Option<&'a str>,
    district: Option<&'a str>,
    /// Type-checked only (see `RawRecord`).
    lat: Option<Option<()>>,
    lon: Option<Option<()>>,
    vendor: Option<&'a str>,
    seq: Option<Option<u64>>,
}

impl<'a> SharedMembers<'a> {
    /// Reads `field` if it is one of these (the caller reads its own).
    fn read(&mut self, field: Field, member: Value<'a>) -> Option<()> {
        match field {
            Field::Grid => once(&mut self.grid, text_of(member)),
            Field::Street => once(&mut self.street, text_of(member)),
            Field::District => once(&mut self.district, text_of(member)),
            Field::Lat => once(&mut self.lat, optional(member, number_of)),
            Field::Lon => once(&mut self.lon, optional(member, number_of)),
            Field::Vendor => once(&mut self.vendor, text_of(member)),
            Field::Seq => once(&mut self.seq, optional(member, u64_of)),
            _ => Some(()),
        }
    }

    fn into_record(self, id: &'a str, kind: Option<Cow<'a, str>>, ts_ms: i64, body: RawBody<'a>) -> RawRecord<'a> {
        RawRecord {
            id: Cow::Borrowed(id),
            kind,
            ts_ms,
            body,
            area: AreaRef::new(self.grid.unwrap_or_default(), self.street.unwrap_or_default(), self.district.unwrap_or_default()),
            vendor: Cow::Borrowed(self.vendor.unwrap_or_default()),
            seq: self.seq.flatten(),
        }
    }
}

/// `null` is `None` for an `Option` field; anything else is read by `read`.
fn optional<'a, T>(member: Value<'a>, read: impl FnOnce(Value<'a>) -> Option<T>) -> Option<Option<T>> {
    match member {
        Value::Null => Some(None),
        other => read(other).map(Some),
    }
}

fn text_of(member: Value<'_>) -> Option<&str> {
    match member {
        Value::Str(text) => Some(text),
        _ => None,
    }
}

/// serde's `f64`, type-checked only: any number (none this reader takes is out of range).
fn number_of(member: Value<'_>) -> Option<()> {
    matches!(member, Value::Number(_)).then_some(())
}

/// serde's `u64`/`u32`: a non-negative integer (a negative one is out of range).
fn u64_of(member: Value<'_>) -> Option<u64> {
    match member {
        Value::Number(n) => match n.value() {
            JsonNumber::U64(v) => Some(v),
            _ => None,
        },
        _ => None,
    }
}

/// `Number`'s visitor.
fn measured_of(member: Value<'_>) -> Option<f64> {
    match member {
        Value::Number(n) => Some(n.value().as_f64()),
        Value::Str(text) => non_finite(text),
        _ => None,
    }
}

/// `Timestamp`'s visitor.
fn timestamp_of(member: Value<'_>) -> Option<i64> {
    match member {
        Value::Number(n) => match n.value() {
            JsonNumber::U64(v) => i64::try_from(v).ok(),
            JsonNumber::I64(v) => Some(v),
            JsonNumber::F64(_) => None,
        },
        Value::Str(text) => rfc3339_ms(text).ok(),
        _ => None,
    }
}

/// RFC 3339 → epoch milliseconds: the usual shape directly, anything else (and every
/// error) through chrono.
fn rfc3339_ms(text: &str) -> Result<i64, chrono::ParseError> {
    match usual_rfc3339_ms(text) {
        Some(ms) => Ok(ms),
        None => chrono::DateTime::parse_from_rfc3339(text).map(|t| t.timestamp_millis()),
    }
}

/// `YYYY-MM-DDTHH:MM:SS[.f{1,9}](Z|±HH:MM)`, a valid date and time, → epoch milliseconds
/// as chrono computes them (a third of chrono's instructions); `None` for any other
/// shape (a space or `t`, `z`, leap second 60, longer fractions), left to chrono. A test
/// holds the two to the same answers.
fn usual_rfc3339_ms(text: &str) -> Option<i64> {
    let b = text.as_bytes();
    let fixed: &[u8; 19] = b.get(..19)?.try_into().ok()?;
    if b.len() < 20 || fixed[4] != b'-' || fixed[7] != b'-' || fixed[10] != b'T' || fixed[13] != b':' || fixed[16] != b':' {
        return None;
    }
    let digit = fixed.map(|c| c.wrapping_sub(b'0'));
    // Every digit position at once, without a branch per position.
    if [0, 1, 2, 3, 5, 6, 8, 9, 11, 12, 14, 15, 17, 18].iter().fold(false, |bad, &i| bad | (digit[i] > 9)) {
        return None;
    }
    let two = |at: usize| i64::from(digit[at] * 10 + digit[at + 1]);
    let (year, month, day) = (two(0) * 100 + two(2), two(5), two(8));
    let (hour, minute, second) = (two(11), two(14), two(17));
    if !(1..=12).contains(&month) || day < 1 || day > days_in_month(year, month) || hour > 23 || minute > 59 || second > 59 {
        return None;
    }
    let mut at = 19;
    let mut millis = 0;
    if b[at] == b'.' {
        let start = at + 1;
        at = start;
        while let Some(&c @ b'0'..=b'9') = b.get(at) {
            if at - start < 3 {
                millis = millis * 10 + i64::from(c - b'0');
            }
            at += 1;
        }
        let digits = at - start;
        if !(1..=9).contains(&digits) {
            return None;
        }
        millis *= [100, 10, 1][digits.min(3) - 1];
    }
    let offset_minutes = match *b.get(at)? {
        b'Z' if b.len() == at + 1 => 0,
        sign @ (b'+' | b'-') if b.len() == at + 6 && b[at + 3] == b':' => {
            let two_digits = |at: usize| {
                let (tens, ones) = (b[at].wrapping_sub(b'0'), b[at + 1].wrapping_sub(b'0'));
                (tens < 10 && ones < 10).then(|| i64::from(tens * 10 + ones))
            };
            let (hours, minutes) = (two_digits(at + 1)?, two_digits(at + 4)?);
            if hours > 23 || minutes > 59 {
                return None;
            }
            if sign == b'-' {
                -(hours * 60 + minutes)
            } else {
                hours * 60 + minutes
            }
        }
        _ => return None,
    };
    let seconds = days_from_civil(year, month, day) * 86_400 + hour * 3_600 + minute * 60 + second - offset_minutes * 60;
    Some(seconds * 1_000 + millis)
}

fn days_in_month(year: i64, month: i64) -> i64 {
    match month {
        2 if year % 4 == 0 && (year % 100 != 0 || year % 400 == 0) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's `days_from_civil`).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let year = if month <= 2 { year - 1 } else { year };
    let era = year.div_euclid(400);
    let year_of_era = year - era * 400;
    let day_of_year = (153 * ((month + 9) % 12) + 2) / 5 + day - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    era * 146_097 + day_of_era - 719_468
}

/// The non-finite values some vendors spell as strings.
fn non_finite(text: &str) -> Option<f64> {
    match text {
        "NaN" | "nan" => Some(f64::NAN),
        "Infinity" | "inf" | "+Infinity" => Some(f64::INFINITY),
        "-Infinity" | "-inf" => Some(f64::NEG_INFINITY),
        _ => None,
    }
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
                rfc3339_ms(v).map(Timestamp).map_err(|err| E::custom(format!("ts {v:?} is not RFC 3339: {err}")))
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
                non_finite(v).map(Number).ok_or_else(|| E::invalid_type(de::Unexpected::Str(v), &self))
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

    use rand::rngs::SmallRng;
    use rand::seq::SliceRandom;
    use rand::{Rng, SeedableRng};

    /// A random JSON member value of every kind the two paths might disagree on.
    fn random_value(rng: &mut SmallRng) -> String {
        const WORDS: [&str; 10] = [
            "hd-pm-0042",
            "pm25",
            "ug/m3",
            "",
            "海淀",
            "NaN",
            "-inf",
            "2026-11-25T08:00:00Z",
            "2026-11-25T16:00:00.125+08:00",
            "yesterday",
        ];
        let digits = |rng: &mut SmallRng, n: usize| -> String { (0..n).map(|_| char::from(b'0' + rng.gen_range(0..10u8))).collect() };
        match rng.gen_range(0..14) {
            0..=2 => format!("\"{}\"", WORDS[rng.gen_range(0..WORDS.len())]),
            3 => "\"a\\\"b\\u00b5\"".to_owned(),
            4 => ["true", "false", "null", "[1,2]", "{\"a\":1}", "nul"][rng.gen_range(0..6)].to_owned(),
            5 => format!("{}e{}", rng.gen_range(-99..99), rng.gen_range(-5..5)),
            6 => format!("-{}", {
                let n = rng.gen_range(0..21);
                digits(rng, n)
            }),
            7 => format!("0{}", {
                let n = rng.gen_range(0..3);
                digits(rng, n)
            }),
            8 => ["-0", "-0.0", "0.0", "18446744073709551615", "18446744073709551616", "-9223372036854775808", "1.", ".5"]
                [rng.gen_range(0..8)]
            .to_owned(),
            9 => rng.gen_range(1_700_000_000_000i64..1_800_000_000_000).to_string(),
            _ => {
                let sign = if rng.gen_bool(0.2) { "-" } else { "" };
                let int = rng.gen_range(0..100_000u32);
                format!("{sign}{int}.{}", {
                    let n = rng.gen_range(1..23);
                    digits(rng, n)
                })
            }
        }
    }

    /// A random object: known and unknown members, duplicates, odd whitespace, and the
    /// odd broken record.
    fn random_record(rng: &mut SmallRng, keys: &[&str]) -> String {
        let mut members: Vec<String> = Vec::new();
        let odd = rng.gen_range(0.0..0.15);
        for key in keys {
            if rng.gen_bool(0.95) {
                let value = if rng.gen_bool(odd) { random_value(rng) } else { typical_value(key, rng) };
                members.push(format!("\"{key}\":{value}"));
            }
        }
        for _ in 0..rng.gen_range(0..2) {
            let key = ["x", "sensor_idx", "Sensor_id", "seq", "ts", "ven\\u0064or"][rng.gen_range(0..6)];
            members.push(format!("\"{key}\":{}", random_value(rng)));
        }
        // Mostly in SPEC order, which the fast path expects; sometimes not.
        if rng.gen_bool(0.2) {
            members.shuffle(rng);
        }
        let gap = || [" ", "", "\n ", "\t"][rand::random::<usize>() % 4];
        let mut text = format!("{}{{{}", gap(), gap());
        text += &members.join(&format!("{},{}", gap(), gap()));
        text += &format!("{}}}{}", gap(), gap());
        match rng.gen_range(0..40) {
            0 => {
                let mut at = rng.gen_range(0..text.len());
                while !text.is_char_boundary(at) {
                    at -= 1;
                }
                text.truncate(at)
            }
            1 => text.push_str(",1"),
            2 => text = text.replacen(':', " ", 1),
            _ => {}
        }
        text
    }

    /// Values as vendors send them, so most records take the fast path.
    fn typical_value(key: &str, rng: &mut SmallRng) -> String {
        match key {
            "ts" => rng.gen_range(1_700_000_000_000i64..1_800_000_000_000).to_string(),
            "value" | "lat" | "lon" | "power_kw" => format!("{}", rng.gen_range(-50.0..500.0f64)),
            "seq" | "connector" => rng.gen_range(0..1000u32).to_string(),
            _ => format!("\"{key}-{}\"", rng.gen_range(0..100)),
        }
    }

    #[test]
    fn the_fast_path_answers_exactly_as_serde_json_or_not_at_all() {
        const READING: [&str; 12] =
            ["sensor_id", "kind", "ts", "value", "unit", "grid", "street", "district", "lat", "lon", "vendor", "seq"];
        const PILE: [&str; 13] =
            ["pile_id", "connector", "ts", "status", "error_code", "power_kw", "grid", "street", "district", "lat", "lon", "vendor", "seq"];
        let mut rng = SmallRng::seed_from_u64(7);
        let (mut fast, mut total) = (0, 0);
        for _ in 0..40_000 {
            let pile = rng.gen_bool(0.3);
            let mut bytes = random_record(&mut rng, if pile { &PILE } else { &READING }).into_bytes();
            if rng.gen_ratio(1, 30) {
                // A byte that breaks (or extends) UTF-8, inside a string or outside.
                let at = rng.gen_range(0..=bytes.len());
                bytes.insert(at, rng.gen_range(0x80..=0xff));
            }
            let text = String::from_utf8_lossy(&bytes);
            let (ours, theirs) =
                if pile { (flat_pile_status(&bytes), serde_pile_status(&bytes)) } else { (flat_reading(&bytes), serde_reading(&bytes)) };
            total += 1;
            if let Some(ours) = ours {
                fast += 1;
                let theirs = theirs.unwrap_or_else(|e| panic!("fast path took what serde_json refuses ({}): {text}", e.detail));
                // Debug text: NaN equals NaN, and -0.0 differs from 0.0.
                assert_eq!(format!("{ours:?}"), format!("{theirs:?}"), "{text}");
                assert!(matches!(ours.id, Cow::Borrowed(_)));
            }
            // Whichever path answers, the public decoder answers as serde_json does.
            let public = if pile { decode_pile_status(&bytes) } else { decode_reading(&bytes) };
            let reference = if pile { serde_pile_status(&bytes) } else { serde_reading(&bytes) };
            assert_eq!(format!("{public:?}"), format!("{reference:?}"), "{text}");
        }
        // Enough of both kinds that the comparison means something.
        assert!(fast > total / 10 && fast < total * 9 / 10, "fast path took {fast} of {total}");
    }

    #[test]
    fn the_simulators_records_take_the_fast_path() {
        use crate::sim::{City, FaultRates, Generator, SimFormat};
        let city = City::generate(300);
        let mut generator = Generator::new(city, 1, 1_795_593_600_000, SimFormat::Json, FaultRates::NONE);
        let mut records = Vec::new();
        generator.emit_count(2_000, &mut records);
        let text = |r: &crate::sim::SimRecord| String::from_utf8(r.payload.clone()).unwrap();
        let readings: Vec<String> = records.iter().map(text).filter(|t| t.contains("sensor_id")).collect();
        let piles: Vec<String> = records.iter().map(text).filter(|t| t.contains("pile_id")).collect();
        assert!(!readings.is_empty() && !piles.is_empty());
        for t in &readings {
            assert!(flat_reading(t.as_bytes()).is_some(), "{t}");
        }
        for t in &piles {
            assert!(flat_pile_status(t.as_bytes()).is_some(), "{t}");
        }
    }

    #[test]
    fn the_usual_rfc3339_shape_reads_as_chrono_reads_it() {
        let mut rng = SmallRng::seed_from_u64(11);
        let mut usual = 0;
        for i in 0..200_000 {
            let pick = |rng: &mut SmallRng, options: &[&'static str]| options[rng.gen_range(0..options.len())];
            let two = |rng: &mut SmallRng, max: u32| format!("{:02}", rng.gen_range(0..=max));
            let year = if rng.gen_bool(0.9) { rng.gen_range(1900..2100) } else { rng.gen_range(0..10_000) };
            let fraction: String = (0..rng.gen_range(0..12)).map(|_| char::from(b'0' + rng.gen_range(0..10u8))).collect();
            let fraction = if fraction.is_empty() && rng.gen_bool(0.5) { String::new() } else { format!(".{fraction}") };
            let offset = match rng.gen_range(0..5) {
                0 => "Z".to_owned(),
                1 => pick(&mut rng, &["z", "", "+0800", "+08", "Z ", "UTC"]).to_owned(),
                _ => format!("{}{}:{}", pick(&mut rng, &["+", "-"]), two(&mut rng, 25), two(&mut rng, 61)),
            };
            let text = format!(
                "{year:04}-{}-{}{}{}:{}:{}{fraction}{offset}",
                two(&mut rng, 13),
                two(&mut rng, 32),
                if i % 50 == 0 { pick(&mut rng, &["t", " ", "_"]) } else { "T" },
                two(&mut rng, 24),
                two(&mut rng, 60),
                two(&mut rng, 61),
            );
            let chrono = chrono::DateTime::parse_from_rfc3339(&text).map(|t| t.timestamp_millis()).ok();
            if let Some(ms) = usual_rfc3339_ms(&text) {
                usual += 1;
                assert_eq!(Some(ms), chrono, "{text}");
            }
            assert_eq!(rfc3339_ms(&text).ok(), chrono, "{text}");
        }
        assert!(usual > 20_000, "only {usual} took the usual path");
        // Month ends and leap years, where calendars go wrong.
        for year in [0, 1600, 1900, 1969, 1970, 2000, 2023, 2024, 2100, 9999] {
            for (month, day) in [(1, 31), (2, 28), (2, 29), (2, 30), (4, 30), (4, 31), (12, 31)] {
                for time in ["00:00:00Z", "23:59:59.999999999+23:59", "12:30:00.5-08:00"] {
                    let text = format!("{year:04}-{month:02}-{day:02}T{time}");
                    let chrono = chrono::DateTime::parse_from_rfc3339(&text).map(|t| t.timestamp_millis()).ok();
                    assert_eq!(usual_rfc3339_ms(&text), chrono, "{text}");
                }
            }
        }
    }
}
