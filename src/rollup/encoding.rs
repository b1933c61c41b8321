//! The aggregates topic's bytes: `citysense.v1.AggregateRecord`
//! (proto/citysense/v1/aggregate.proto), written by hand from borrowed windows and read
//! with the borrowing wire reader, so neither stage builds a JSON tree or copies a name to
//! write it. A record starting with `{` is JSON, as versions before this one wrote; it is
//! still read, so an upgrade rolls up what is already on the topic, and still written when
//! `rollup.format = "json"`, for a rolling upgrade past older instances.

use prost::encoding::{encode_key, encode_varint, WireType};
use smol_str::SmolStr;

use super::message::{AggregateMessage, SensorWindow, SensorWindowRef, WindowsMessageRef};
use crate::decode::wire::{Reader, WireError};
use crate::model::Kind;

/// What stage 1 writes to the aggregates topic (`rollup.format`); stage 2 reads both.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AggregateFormat {
    /// `citysense.v1.AggregateRecord`: the default.
    Protobuf,
    /// The JSON every earlier version reads: for a rolling upgrade, until no older instance runs.
    Json,
}

impl AggregateFormat {
    /// Appends a windows record: closed windows of one key from input partition `source`.
    pub fn write_windows(self, source: &str, windows: &[SensorWindowRef<'_>], out: &mut Vec<u8>) {
        match self {
            AggregateFormat::Protobuf => encode_windows(source, windows, out),
            AggregateFormat::Json => write_json(&WindowsMessageRef { source, windows }, out),
        }
    }

    /// Appends a watermark record.
    pub fn write_watermark(self, source: &str, kind: Kind, watermark_ms: i64, out: &mut Vec<u8>) {
        match self {
            AggregateFormat::Protobuf => encode_watermark(source, kind, watermark_ms, out),
            AggregateFormat::Json => write_json(&AggregateMessage::Watermark { source: source.to_owned(), kind, watermark_ms }, out),
        }
    }
}

fn write_json(message: &impl serde::Serialize, out: &mut Vec<u8>) {
    // Serialising these types into a Vec cannot fail: no maps with non-string keys, no I/O.
    if let Err(err) = serde_json::to_writer(out, message) {
        tracing::error!(error = %err, "Cannot encode an aggregate as JSON");
    }
}

/// `AggregateFormat::Protobuf`'s windows record.
fn encode_windows(source: &str, windows: &[SensorWindowRef<'_>], out: &mut Vec<u8>) {
    put_string(out, 1, source);
    let mut window = Vec::with_capacity(128);
    for w in windows {
        window.clear();
        encode_window(w, &mut window);
        put_message(out, 2, &window);
    }
}

/// `AggregateFormat::Protobuf`'s watermark record.
fn encode_watermark(source: &str, kind: Kind, watermark_ms: i64, out: &mut Vec<u8>) {
    put_string(out, 1, source);
    let mut mark = Vec::with_capacity(16);
    put_string(&mut mark, 1, kind.as_str());
    put_int64(&mut mark, 2, watermark_ms);
    put_message(out, 3, &mark);
}

/// Reads a record of either encoding; the error says what is wrong with it.
pub fn decode(bytes: &[u8]) -> Result<AggregateMessage, String> {
    if bytes.first() == Some(&b'{') {
        return serde_json::from_slice(bytes).map_err(|err| format!("aggregate JSON: {err}"));
    }
    decode_record(bytes).map_err(|err| format!("aggregate protobuf: {err}"))
}

/// Fields as prost writes them: proto3 scalars and strings only when not the default,
/// `optional` ones whenever set.
fn encode_window(w: &SensorWindowRef<'_>, out: &mut Vec<u8>) {
    put_string(out, 1, w.kind.as_str());
    put_string(out, 2, w.sensor_id);
    put_string(out, 3, w.window);
    put_int64(out, 4, w.start_ms);
    put_int64(out, 5, w.end_ms);
    put_string(out, 6, w.grid);
    put_string(out, 7, w.street);
    put_string(out, 8, w.district);
    if let Some(mean) = w.mean {
        put_double(out, 9, mean);
    }
    if let Some(max) = w.max {
        put_double(out, 10, max);
    }
    if let Some(status) = w.last_status {
        // `optional`: written even when empty, unlike `put_string`.
        put_message(out, 11, status.as_bytes());
    }
    if let Some(utilisation) = w.utilisation {
        put_double(out, 12, utilisation);
    }
    if w.flat {
        encode_key(13, WireType::Varint, out);
        encode_varint(1, out);
    }
}

fn decode_record(bytes: &[u8]) -> Result<AggregateMessage, WireError> {
    let (mut source, mut windows, mut watermark) = ("", Vec::new(), None);
    let mut fields = Reader::new(bytes);
    while let Some(key) = fields.key()? {
        match key.0 {
            1 => source = fields.string(key)?,
            2 => windows.push(decode_window(fields.message(key)?)?),
            3 => watermark = Some(decode_watermark(fields.message(key)?)?),
            _ => fields.skip(key)?,
        }
    }
    let source = source.to_owned();
    match watermark {
        None => Ok(AggregateMessage::Windows { source, windows }),
        Some((kind, watermark_ms)) if windows.is_empty() => Ok(AggregateMessage::Watermark { source, kind, watermark_ms }),
        Some(_) => Err(WireError("a record with both windows and a watermark")),
    }
}

fn decode_window(mut fields: Reader<'_>) -> Result<SensorWindow, WireError> {
    let mut kind = None;
    let mut w = SensorWindow {
        kind: Kind::Pm25,
        sensor_id: SmolStr::default(),
        window: SmolStr::default(),
        start_ms: 0,
        end_ms: 0,
        grid: SmolStr::default(),
        street: SmolStr::default(),
        district: SmolStr::default(),
        mean: None,
        max: None,
        last_status: None,
        utilisation: None,
        flat: false,
    };
    while let Some(key) = fields.key()? {
        match key.0 {
            1 => kind = Some(kind_of(fields.string(key)?)?),
            2 => w.sensor_id = fields.string(key)?.into(),
            3 => w.window = fields.string(key)?.into(),
            4 => w.start_ms = fields.varint(key)? as i64,
            5 => w.end_ms = fields.varint(key)? as i64,
            6 => w.grid = fields.string(key)?.into(),
            7 => w.street = fields.string(key)?.into(),
            8 => w.district = fields.string(key)?.into(),
            9 => w.mean = Some(fields.double(key)?),
            10 => w.max = Some(fields.double(key)?),
            11 => w.last_status = Some(fields.string(key)?.into()),
            12 => w.utilisation = Some(fields.double(key)?),
            13 => w.flat = fields.varint(key)? != 0,
            _ => fields.skip(key)?,
        }
    }
    w.kind = kind.ok_or(WireError("a window without a kind"))?;
    Ok(w)
}

fn decode_watermark(mut fields: Reader<'_>) -> Result<(Kind, i64), WireError> {
    let (mut kind, mut watermark_ms) = (None, 0);
    while let Some(key) = fields.key()? {
        match key.0 {
            1 => kind = Some(kind_of(fields.string(key)?)?),
            2 => watermark_ms = fields.varint(key)? as i64,
            _ => fields.skip(key)?,
        }
    }
    Ok((kind.ok_or(WireError("a watermark without a kind"))?, watermark_ms))
}

fn kind_of(text: &str) -> Result<Kind, WireError> {
    Kind::parse(text).ok_or(WireError("an unknown kind"))
}

fn put_string(out: &mut Vec<u8>, field: u32, text: &str) {
    if !text.is_empty() {
        put_message(out, field, text.as_bytes());
    }
}

/// A length-delimited field: an embedded message or a string's bytes.
fn put_message(out: &mut Vec<u8>, field: u32, bytes: &[u8]) {
    encode_key(field, WireType::LengthDelimited, out);
    encode_varint(bytes.len() as u64, out);
    out.extend_from_slice(bytes);
}

fn put_int64(out: &mut Vec<u8>, field: u32, value: i64) {
    if value != 0 {
        encode_key(field, WireType::Varint, out);
        encode_varint(value as u64, out);
    }
}

fn put_double(out: &mut Vec<u8>, field: u32, value: f64) {
    encode_key(field, WireType::SixtyFourBit, out);
    out.extend_from_slice(&value.to_le_bytes());
}

#[cfg(test)]
mod tests {
    use prost::Message;

    use super::*;
    use crate::proto;

    fn level(sensor: &str, start_ms: i64, flat: bool) -> SensorWindow {
        SensorWindow {
            kind: Kind::Pm25,
            sensor_id: sensor.into(),
            window: "24h/1h".into(),
            start_ms,
            end_ms: start_ms + 86_400_000,
            grid: "hd-0178".into(),
            street: "".into(),
            district: "海淀".into(),
            mean: Some(35.5),
            max: Some(-0.0),
            last_status: None,
            utilisation: None,
            flat,
        }
    }

    fn pile(status: &str) -> SensorWindow {
        SensorWindow {
            kind: Kind::Charging,
            sensor_id: "cy-cp-10442/1".into(),
            window: "5m".into(),
            start_ms: 0,
            end_ms: 300_000,
            grid: "".into(),
            street: "cy-street".into(),
            district: "chaoyang".into(),
            mean: None,
            max: None,
            last_status: Some(status.into()),
            utilisation: Some(0.25),
            flat: false,
        }
    }

    fn borrowed(w: &SensorWindow) -> SensorWindowRef<'_> {
        SensorWindowRef {
            kind: w.kind,
            sensor_id: &w.sensor_id,
            window: &w.window,
            start_ms: w.start_ms,
            end_ms: w.end_ms,
            grid: &w.grid,
            street: &w.street,
            district: &w.district,
            mean: w.mean,
            max: w.max,
            last_status: w.last_status.as_deref(),
            utilisation: w.utilisation,
            flat: w.flat,
        }
    }

    fn windows() -> Vec<SensorWindow> {
        vec![level("hd-pm-1", 1_795_593_600_000, false), level("hd-pm-2", -3_600_000, true), pile("Charging"), pile("")]
    }

    #[test]
    fn records_read_back_as_written() {
        let windows = windows();
        let refs: Vec<SensorWindowRef<'_>> = windows.iter().map(borrowed).collect();
        let mut bytes = Vec::new();
        encode_windows("city.pm25/3", &refs, &mut bytes);
        assert_ne!(bytes[0], b'{', "never mistaken for JSON");
        assert_eq!(decode(&bytes), Ok(AggregateMessage::Windows { source: "city.pm25/3".into(), windows }));

        let mut bytes = Vec::new();
        encode_watermark("city.water/0", Kind::Water, 1_795_593_600_000, &mut bytes);
        assert_eq!(
            decode(&bytes),
            Ok(AggregateMessage::Watermark { source: "city.water/0".into(), kind: Kind::Water, watermark_ms: 1_795_593_600_000 })
        );
    }

    #[test]
    fn the_bytes_are_what_prost_writes_for_the_schema() {
        let windows = windows();
        let refs: Vec<SensorWindowRef<'_>> = windows.iter().map(borrowed).collect();
        let mut ours = Vec::new();
        encode_windows("city.pm25/3", &refs, &mut ours);
        let prost_record = proto::AggregateRecord {
            source: "city.pm25/3".into(),
            windows: windows
                .iter()
                .map(|w| proto::AggregateWindow {
                    kind: w.kind.as_str().into(),
                    sensor_id: w.sensor_id.to_string(),
                    window: w.window.to_string(),
                    start_ms: w.start_ms,
                    end_ms: w.end_ms,
                    grid: w.grid.to_string(),
                    street: w.street.to_string(),
                    district: w.district.to_string(),
                    mean: w.mean,
                    max: w.max,
                    last_status: w.last_status.as_ref().map(|s| s.to_string()),
                    utilisation: w.utilisation,
                    flat: w.flat,
                })
                .collect(),
            watermark: None,
        };
        assert_eq!(ours, prost_record.encode_to_vec());

        let mut ours = Vec::new();
        encode_watermark("city.dust/1", Kind::Dust, 42, &mut ours);
        let prost_mark = proto::AggregateRecord {
            source: "city.dust/1".into(),
            windows: Vec::new(),
            watermark: Some(proto::AggregateWatermark { kind: "dust".into(), watermark_ms: 42 }),
        };
        assert_eq!(ours, prost_mark.encode_to_vec());
    }

    #[test]
    fn both_formats_read_back_as_the_same_messages() {
        let windows = windows();
        let refs: Vec<SensorWindowRef<'_>> = windows.iter().map(borrowed).collect();
        for format in [AggregateFormat::Protobuf, AggregateFormat::Json] {
            let (mut records, mut mark) = (Vec::new(), Vec::new());
            format.write_windows("city.pm25/3", &refs, &mut records);
            format.write_watermark("city.pm25/3", Kind::Pm25, 9, &mut mark);
            assert_eq!(records.first() == Some(&b'{'), format == AggregateFormat::Json);
            assert_eq!(decode(&records), Ok(AggregateMessage::Windows { source: "city.pm25/3".into(), windows: windows.clone() }));
            assert_eq!(decode(&mark), Ok(AggregateMessage::Watermark { source: "city.pm25/3".into(), kind: Kind::Pm25, watermark_ms: 9 }));
        }
        // The JSON is what the owned message serialises to: what earlier versions wrote.
        let mut json = Vec::new();
        AggregateFormat::Json.write_windows("city.pm25/3", &refs, &mut json);
        let owned = AggregateMessage::Windows { source: "city.pm25/3".into(), windows };
        assert_eq!(json, serde_json::to_vec(&owned).unwrap());
    }

    #[test]
    fn json_records_of_earlier_versions_are_still_read() {
        for message in [
            AggregateMessage::Windows { source: "city.pm25/0".into(), windows: windows() },
            AggregateMessage::Window { source: "city.pm25/0".into(), window: Box::new(pile("Faulted")) },
            AggregateMessage::Watermark { source: "city.pm25/0".into(), kind: Kind::Pm25, watermark_ms: 7 },
        ] {
            let json = serde_json::to_vec(&message).unwrap();
            assert_eq!(decode(&json), Ok(message));
        }
    }

    #[test]
    fn broken_records_are_errors_not_panics() {
        let windows = windows();
        let mut whole = Vec::new();
        encode_windows("city.pm25/3", &windows.iter().map(borrowed).collect::<Vec<_>>(), &mut whole);
        for cut in 0..whole.len() {
            // A prefix cut between windows is a shorter record; any other is refused.
            match decode(&whole[..cut]) {
                Ok(AggregateMessage::Windows { windows: read, .. }) => assert!(windows.starts_with(&read), "prefix of {cut} bytes"),
                Ok(other) => panic!("prefix of {cut} bytes read as {other:?}"),
                Err(_) => {}
            }
        }
        let mut mixed = Vec::new();
        encode_windows("x", &[borrowed(&windows[0])], &mut mixed);
        encode_watermark("x", Kind::Pm25, 1, &mut mixed);
        assert!(decode(&mixed).unwrap_err().contains("both"));
        assert!(decode(b"{\"type\":\"window\",\"source\":\"x\"}").unwrap_err().contains("window"));
        let unknown_kind = proto::AggregateRecord {
            source: "x".into(),
            windows: Vec::new(),
            watermark: Some(proto::AggregateWatermark { kind: "noise".into(), watermark_ms: 1 }),
        };
        assert!(decode(&unknown_kind.encode_to_vec()).unwrap_err().contains("kind"));
    }
}
