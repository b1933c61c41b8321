//! Protobuf `citysense.v1.Reading` / `ChargingStatus` → `RawRecord`. proto3 has no
//! "missing": an empty id, unit or status, or a zero timestamp, counts as a missing field,
//! so a protobuf record is held to the same schema as its JSON twin.

use prost::Message;

use super::raw::{RawBody, RawRecord};
use super::rejection::{Reason, Rejection};
use crate::model::Area;
use crate::proto;

pub fn decode_reading(bytes: &[u8]) -> Result<RawRecord, Rejection> {
    let msg = proto::Reading::decode(bytes).map_err(undecodable)?;
    require("sensor_id", !msg.sensor_id.is_empty())?;
    require("ts_ms", msg.ts_ms != 0)?;
    require("unit", !msg.unit.is_empty())?;
    Ok(RawRecord {
        id: msg.sensor_id,
        kind: (!msg.kind.is_empty()).then_some(msg.kind),
        ts_ms: msg.ts_ms,
        body: RawBody::Level { value: msg.value, unit: msg.unit },
        area: Area { grid: msg.grid, street: msg.street, district: msg.district },
        lat: msg.lat,
        lon: msg.lon,
        vendor: msg.vendor,
        seq: msg.seq,
    })
}

pub fn decode_pile_status(bytes: &[u8]) -> Result<RawRecord, Rejection> {
    let msg = proto::ChargingStatus::decode(bytes).map_err(undecodable)?;
    require("pile_id", !msg.pile_id.is_empty())?;
    require("ts_ms", msg.ts_ms != 0)?;
    require("status", !msg.status.is_empty())?;
    Ok(RawRecord {
        id: msg.pile_id,
        kind: Some("charging".to_owned()),
        ts_ms: msg.ts_ms,
        body: RawBody::Pile { connector: msg.connector, status: msg.status, error_code: msg.error_code, power_kw: msg.power_kw },
        area: Area { grid: msg.grid, street: msg.street, district: msg.district },
        lat: None,
        lon: None,
        vendor: msg.vendor,
        seq: msg.seq,
    })
}

fn undecodable(err: prost::DecodeError) -> Rejection {
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
    use super::*;

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
        let raw = decode_reading(&msg.encode_to_vec()).unwrap();
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
}
