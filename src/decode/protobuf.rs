//! Protobuf `citysense.v1.Reading` / `ChargingStatus` → `RawRecord`. proto3 has no
//! "missing": an empty id, unit or status, or a zero timestamp, counts as a missing field,
//! so a protobuf record is held to the same schema as its JSON twin.

use super::raw::{RawBody, RawRecord};
use super::rejection::{Reason, Rejection};
use super::wire::{Reader, WireError};
use crate::model::AreaRef;

/// `citysense.v1.Reading` (proto/citysense/v1/reading.proto), field by field.
pub fn decode_reading(bytes: &[u8]) -> Result<RawRecord<'_>, Rejection> {
    let ReadingFields { id, kind, ts_ms, value, unit, area, vendor, seq } = read_message(bytes)?;
    require("sensor_id", !id.is_empty())?;
    require("ts_ms", ts_ms != 0)?;
    require("unit", !unit.is_empty())?;
    Ok(RawRecord {
        id: id.into(),
        kind: (!kind.is_empty()).then_some(kind.into()),
        ts_ms,
        body: RawBody::Level { value, unit: unit.into() },
        area: AreaRef::new(area[0], area[1], area[2]),
        vendor: vendor.into(),
        seq,
    })
}

/// `citysense.v1.ChargingStatus`, field by field.
pub fn decode_pile_status(bytes: &[u8]) -> Result<RawRecord<'_>, Rejection> {
    let PileStatusFields { id, connector, ts_ms, status, error_code, power_kw, area, vendor, seq } = read_message(bytes)?;
    require("pile_id", !id.is_empty())?;
    require("ts_ms", ts_ms != 0)?;
    require("status", !status.is_empty())?;
    Ok(RawRecord {
        id: id.into(),
        kind: Some("charging".into()),
        ts_ms,
        body: RawBody::Pile { connector, status: status.into(), error_code: error_code.into(), power_kw },
        area: AreaRef::new(area[0], area[1], area[2]),
        vendor: vendor.into(),
        seq,
    })
}

/// The fields of a flat message, read so far (proto3 defaults until then).
trait MessageFields<'a>: Default {
    /// Reads the fields that come in field-number order, as encoders write them: each is
    /// looked for where it would be (`in_number_order!`), and any other is left for `read`.
    fn read_in_number_order(&mut self, fields: &mut Reader<'a>) -> Result<(), WireError>;

    /// Reads the payload of field `key`.
    fn read(&mut self, fields: &mut Reader<'a>, key: (u32, u8)) -> Result<(), WireError>;
}

/// Reads a message's fields: those in number order first, then whatever else the message
/// holds in any order, the last value winning.
fn read_message<'a, M: MessageFields<'a>>(bytes: &'a [u8]) -> Result<M, Rejection> {
    let mut message = M::default();
    let mut fields = Reader::new(bytes);
    (|| {
        message.read_in_number_order(&mut fields)?;
        while let Some(key) = fields.key()? {
            message.read(&mut fields, key)?;
        }
        Ok(())
    })()
    .map_err(undecodable)?;
    Ok(message)
}

/// For each (field, wire type) key in turn: when the next key is it (a byte compare), reads
/// that field. Written out key by key, so each read is inlined with its key a constant and
/// compiles to that field's code alone, not a match on the field number.
macro_rules! in_number_order {
    ($message:expr, $fields:expr, $($key:expr),+ $(,)?) => {{
        $(
            if $fields.next_key_is($key) {
                $message.read($fields, $key)?;
            }
        )+
        Ok(())
    }};
}

#[derive(Default)]
struct ReadingFields<'a> {
    id: &'a str,
    kind: &'a str,
    ts_ms: i64,
    value: f64,
    unit: &'a str,
    /// grid, street, district.
    area: [&'a str; 3],
    vendor: &'a str,
    seq: Option<u64>,
}

impl<'a> MessageFields<'a> for ReadingFields<'a> {
    fn read_in_number_order(&mut self, fields: &mut Reader<'a>) -> Result<(), WireError> {
        in_number_order!(self, fields, (1, 2), (2, 2), (3, 0), (4, 1), (5, 2), (6, 2), (7, 2), (8, 2), (9, 1), (10, 1), (11, 2), (12, 0))
    }

    #[inline(always)]
    fn read(&mut self, fields: &mut Reader<'a>, key: (u32, u8)) -> Result<(), WireError> {
        match key.0 {
            1 => self.id = fields.string(key)?,
            2 => self.kind = fields.string(key)?,
            3 => self.ts_ms = fields.varint(key)? as i64,
            4 => self.value = fields.double(key)?,
            5 => self.unit = fields.string(key)?,
            6..=8 => self.area[(key.0 - 6) as usize] = fields.string(key)?,
            // lat, lon: checked (a wrong wire type is undecodable, as for prost), not kept.
            9 | 10 => _ = fields.double(key)?,
            11 => self.vendor = fields.string(key)?,
            12 => self.seq = Some(fields.varint(key)?),
            _ => fields.skip(key)?,
        }
        Ok(())
    }
}

#[derive(Default)]
struct PileStatusFields<'a> {
    id: &'a str,
    connector: u32,
    ts_ms: i64,
    status: &'a str,
    error_code: &'a str,
    power_kw: Option<f64>,
    /// grid, street, district.
    area: [&'a str; 3],
    vendor: &'a str,
    seq: Option<u64>,
}

impl<'a> MessageFields<'a> for PileStatusFields<'a> {
    fn read_in_number_order(&mut self, fields: &mut Reader<'a>) -> Result<(), WireError> {
        in_number_order!(self, fields, (1, 2), (2, 0), (3, 0), (4, 2), (5, 2), (6, 1), (7, 2), (8, 2), (9, 2), (10, 2), (11, 0))
    }

    #[inline(always)]
    fn read(&mut self, fields: &mut Reader<'a>, key: (u32, u8)) -> Result<(), WireError> {
        match key.0 {
            1 => self.id = fields.string(key)?,
            // uint32 on the wire is a varint; prost keeps its low 32 bits.
            2 => self.connector = fields.varint(key)? as u32,
            3 => self.ts_ms = fields.varint(key)? as i64,
            4 => self.status = fields.string(key)?,
            5 => self.error_code = fields.string(key)?,
            6 => self.power_kw = Some(fields.double(key)?),
            7..=9 => self.area[(key.0 - 7) as usize] = fields.string(key)?,
            10 => self.vendor = fields.string(key)?,
            11 => self.seq = Some(fields.varint(key)?),
            _ => fields.skip(key)?,
        }
        Ok(())
    }
}

fn undecodable(err: WireError) -> Rejection {
    Rejection::new(Reason::Undecodable, format!("not a protobuf message: {err}"))
}

fn require(field: &str, present: bool) -> Result<(), Rejection> {
    if present {
        Ok(())
    } else {
        Err(Rejection::new(Reason::Schema, format!("missing field `{field}`")))
    }
}

#[cfg(test)]
mod tests {
    use prost::Message;

    use super::*;
    use crate::proto;

    #[test]
    fn a_reading_round_trips_through_protobuf() {
        let msg = proto::Reading {
            sensor_id: "hd-pm-0042".into(),
            kind: "pm25".into(),
            ts_ms: 1_764_057_600_000,
            value: 41.5,
            unit: "ug/m3".into(),
            grid: "hd-0178".into(),
            seq: Some(7),
            ..Default::default()
        };
        let bytes = msg.encode_to_vec();
        let raw = decode_reading(&bytes).unwrap();
        assert_eq!(raw.id, "hd-pm-0042");
        assert_eq!(raw.kind.as_deref(), Some("pm25"));
        assert_eq!(raw.body, RawBody::Level { value: 41.5, unit: "ug/m3".into() });
        assert_eq!(raw.seq, Some(7));
    }

    #[test]
    fn empty_required_fields_are_schema_errors() {
        let msg = proto::Reading { sensor_id: "a".into(), ts_ms: 5, ..Default::default() };
        let err = decode_reading(&msg.encode_to_vec()).unwrap_err();
        assert_eq!(err.reason, Reason::Schema);
        assert!(err.detail.contains("unit"), "{}", err.detail);
    }

    #[test]
    fn garbage_is_undecodable() {
        let err = decode_reading(&[0xff, 0xff, 0xff, 0xff, 0x0f]).unwrap_err();
        assert_eq!(err.reason, Reason::Undecodable);
    }

    /// What prost's generated decoder makes of the bytes, held to the same schema: the
    /// reference the borrowing reader must match.
    fn prost_reading(bytes: &[u8]) -> Result<RawRecord<'static>, Reason> {
        let msg = proto::Reading::decode(bytes).map_err(|_| Reason::Undecodable)?;
        if msg.sensor_id.is_empty() || msg.ts_ms == 0 || msg.unit.is_empty() {
            return Err(Reason::Schema);
        }
        Ok(RawRecord {
            id: msg.sensor_id.into(),
            kind: (!msg.kind.is_empty()).then(|| msg.kind.into()),
            ts_ms: msg.ts_ms,
            body: RawBody::Level { value: msg.value, unit: msg.unit.into() },
            area: AreaRef { grid: msg.grid.into(), street: msg.street.into(), district: msg.district.into() },
            vendor: msg.vendor.into(),
            seq: msg.seq,
        })
    }

    fn prost_pile_status(bytes: &[u8]) -> Result<RawRecord<'static>, Reason> {
        let msg = proto::ChargingStatus::decode(bytes).map_err(|_| Reason::Undecodable)?;
        if msg.pile_id.is_empty() || msg.ts_ms == 0 || msg.status.is_empty() {
            return Err(Reason::Schema);
        }
        Ok(RawRecord {
            id: msg.pile_id.into(),
            kind: Some("charging".into()),
            ts_ms: msg.ts_ms,
            body: RawBody::Pile {
                connector: msg.connector,
                status: msg.status.into(),
                error_code: msg.error_code.into(),
                power_kw: msg.power_kw,
            },
            area: AreaRef { grid: msg.grid.into(), street: msg.street.into(), district: msg.district.into() },
            vendor: msg.vendor.into(),
            seq: msg.seq,
        })
    }

    /// Outcomes compared by their debug text, so that NaN values from mutated bytes match.
    fn outcome(result: Result<RawRecord<'_>, Reason>) -> String {
        format!("{result:?}")
    }

    fn mutate(mut bytes: Vec<u8>, how: u8, at: usize, byte: u8, extra: &[u8]) -> Vec<u8> {
        let at = if bytes.is_empty() { 0 } else { at % bytes.len() };
        match how % 5 {
            0 => {}
            1 => bytes.truncate(at),
            2 => {
                if let Some(b) = bytes.get_mut(at) {
                    *b = byte;
                }
            }
            3 => bytes.extend_from_slice(extra),
            _ => bytes.splice(at..at, extra.iter().copied()).for_each(drop),
        }
        bytes
    }

    fn put_varint(out: &mut Vec<u8>, mut value: u64) {
        while value >= 0x80 {
            out.push((value as u8) | 0x80);
            value >>= 7;
        }
        out.push(value as u8);
    }

    /// Raw fields of any number and wire type: known fields with the wrong wire type,
    /// unknown ones, groups, bad UTF-8.
    fn raw_fields(fields: &[(u32, u8, u64, Vec<u8>)]) -> Vec<u8> {
        let mut out = Vec::new();
        for (field, wire_type, number, bytes) in fields {
            put_varint(&mut out, u64::from(field << 3 | u32::from(*wire_type)));
            match wire_type {
                0 => put_varint(&mut out, *number),
                1 => out.extend_from_slice(&number.to_le_bytes()),
                2 => {
                    put_varint(&mut out, bytes.len() as u64);
                    out.extend_from_slice(bytes);
                }
                3 => put_varint(&mut out, u64::from(field << 3 | 4)),
                5 => out.extend_from_slice(&number.to_le_bytes()[..4]),
                _ => {}
            }
        }
        out
    }

    #[test]
    fn fields_out_of_order_or_repeated_read_as_prost_reads_them_in_readings_and_pile_statuses() {
        let s = |text: &str| text.as_bytes().to_vec();
        let in_order: Vec<(u32, u8, u64, Vec<u8>)> = vec![
            (1, 2, 0, s("hd-pm-0042")),
            (2, 2, 0, s("pm25")),
            (3, 0, 1_764_057_600_000, vec![]),
            (4, 1, 41.5f64.to_bits(), vec![]),
            (5, 2, 0, s("ug/m3")),
            (6, 2, 0, s("hd-0178")),
            (12, 0, 7, vec![]),
        ];
        let mut reversed = in_order.clone();
        reversed.reverse();
        let mut repeated = in_order.clone();
        repeated.extend([(1, 2, 0, s("hd-pm-0043")), (5, 2, 0, s("mg/m3")), (3, 0, 1_764_057_660_000, vec![])]);
        let mut skipping = in_order.clone();
        skipping.insert(2, (14, 0, 9, vec![]));
        skipping.insert(0, (5, 2, 0, s("m")));
        for fields in [in_order, reversed, repeated, skipping] {
            let bytes = raw_fields(&fields);
            let ours = decode_reading(&bytes).map_err(|r| r.reason);
            assert!(ours.is_ok(), "{fields:?}");
            assert_eq!(outcome(ours), outcome(prost_reading(&bytes)), "{fields:?}");
        }
        let pile = [
            (11, 0, 3, vec![]),
            (4, 2, 0, s("Charging")),
            (3, 0, 1_764_057_600_000, vec![]),
            (1, 2, 0, s("cp-1")),
            (4, 2, 0, s("Faulted")),
        ];
        let bytes = raw_fields(&pile);
        let ours = decode_pile_status(&bytes).map_err(|r| r.reason);
        assert!(ours.is_ok());
        assert_eq!(outcome(ours), outcome(prost_pile_status(&bytes)));
    }

    proptest::proptest! {
        #[test]
        fn the_borrowing_reader_agrees_with_prost_on_any_fields(
            fields in proptest::collection::vec(
                (1u32..16, proptest::prop_oneof![8 => 0u8..4, 1 => 4u8..8], proptest::prelude::any::<u64>(),
                 proptest::collection::vec(proptest::prop_oneof![4 => 0x20u8..0x7f, 1 => proptest::prelude::any::<u8>()], 0..6)),
                0..14),
        ) {
            let bytes = raw_fields(&fields);
            proptest::prop_assert_eq!(outcome(decode_reading(&bytes).map_err(|r| r.reason)), outcome(prost_reading(&bytes)), "bytes {:?}", bytes);
            proptest::prop_assert_eq!(
                outcome(decode_pile_status(&bytes).map_err(|r| r.reason)), outcome(prost_pile_status(&bytes)), "bytes {:?}", bytes
            );
        }

        #[test]
        fn the_borrowing_reader_agrees_with_prost_on_readings(
            id in "[a-z0-9-]{0,30}", kind in "(pm25|dust|water|)", ts in proptest::prelude::any::<i64>(),
            value in proptest::prelude::any::<f64>(), unit in "(ug/m3|mg/m3|m|)", grid in "\\PC{0,8}",
            lat in proptest::option::of(-90.0f64..90.0), seq in proptest::option::of(proptest::prelude::any::<u64>()),
            how in 0u8..5, at in 0usize..200, byte in proptest::prelude::any::<u8>(),
            extra in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..12),
        ) {
            let msg = proto::Reading { sensor_id: id, kind, ts_ms: ts, value, unit, grid, lat, seq, vendor: "acme".into(), ..Default::default() };
            let bytes = mutate(msg.encode_to_vec(), how, at, byte, &extra);
            let ours = decode_reading(&bytes).map_err(|r| r.reason);
            proptest::prop_assert_eq!(outcome(ours), outcome(prost_reading(&bytes)), "bytes {:?}", bytes);
        }

        #[test]
        fn the_borrowing_reader_agrees_with_prost_on_pile_statuses(
            id in "[a-z0-9-]{0,30}", connector in proptest::prelude::any::<u32>(), ts in proptest::prelude::any::<i64>(),
            status in "(Available|Charging|Faulted|)", power in proptest::option::of(0.0f64..500.0),
            how in 0u8..5, at in 0usize..200, byte in proptest::prelude::any::<u8>(),
            extra in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..12),
        ) {
            let msg = proto::ChargingStatus {
                pile_id: id, connector, ts_ms: ts, status, power_kw: power, district: "chaoyang".into(), seq: Some(3), ..Default::default()
            };
            let bytes = mutate(msg.encode_to_vec(), how, at, byte, &extra);
            let ours = decode_pile_status(&bytes).map_err(|r| r.reason);
            proptest::prop_assert_eq!(outcome(ours), outcome(prost_pile_status(&bytes)), "bytes {:?}", bytes);
        }
    }

    #[test]
    fn unknown_fields_and_groups_are_skipped_and_stray_end_groups_refused() {
        let mut bytes = proto::Reading { sensor_id: "a".into(), ts_ms: 5, unit: "m".into(), ..Default::default() }.encode_to_vec();
        // field 20 as a group holding a varint and a nested group, then field 21 as fixed32.
        bytes.extend_from_slice(&[0xa3, 0x01, 0x08, 0x01, 0xab, 0x01, 0xac, 0x01, 0xa4, 0x01, 0xad, 0x01, 1, 2, 3, 4]);
        assert_eq!(outcome(decode_reading(&bytes).map_err(|r| r.reason)), outcome(prost_reading(&bytes)));
        assert!(decode_reading(&bytes).is_ok());
        bytes.extend_from_slice(&[0xa4, 0x01]);
        assert_eq!(decode_reading(&bytes).unwrap_err().reason, Reason::Undecodable);
        assert!(prost_reading(&bytes).is_err());
    }
}
