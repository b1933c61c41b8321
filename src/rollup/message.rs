//! What travels on the aggregates topic (its bytes are `encoding`'s), and what the area
//! stage produces.

use smol_str::SmolStr;

use crate::model::{DomainValues, Kind, WindowResult, WindowValues};

/// The part of a per-sensor window result the area stage needs.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct SensorWindow {
    pub kind: Kind,
    pub sensor_id: SmolStr,
    pub window: SmolStr,
    pub start_ms: i64,
    pub end_ms: i64,
    pub grid: SmolStr,
    pub street: SmolStr,
    pub district: SmolStr,
    /// Levels: the window mean and maximum.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mean: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max: Option<f64>,
    /// Piles: the last reported status and the utilisation within the window.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_status: Option<SmolStr>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub utilisation: Option<f64>,
    /// Levels: more than one sample, all equal (a candidate stuck sensor).
    #[serde(default)]
    pub flat: bool,
}

impl From<&WindowResult> for SensorWindow {
    fn from(r: &WindowResult) -> Self {
        let w = SensorWindowRef::of(r);
        SensorWindow {
            kind: w.kind,
            sensor_id: w.sensor_id.into(),
            window: w.window.into(),
            start_ms: w.start_ms,
            end_ms: w.end_ms,
            grid: w.grid.into(),
            street: w.street.into(),
            district: w.district.into(),
            mean: w.mean,
            max: w.max,
            last_status: w.last_status.map(SmolStr::new),
            utilisation: w.utilisation,
            flat: w.flat,
        }
    }
}

/// `SensorWindow` borrowed from a closed window, for writing: stage 1 encodes every closed
/// window, and copying seven strings each time only to serialise them was measurable.
#[derive(Debug, Clone, Copy, serde::Serialize)]
pub struct SensorWindowRef<'a> {
    pub kind: Kind,
    pub sensor_id: &'a str,
    pub window: &'a str,
    pub start_ms: i64,
    pub end_ms: i64,
    pub grid: &'a str,
    pub street: &'a str,
    pub district: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mean: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_status: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub utilisation: Option<f64>,
    pub flat: bool,
}

impl<'a> SensorWindowRef<'a> {
    /// The part of `r` the area stage needs.
    pub fn of(r: &'a WindowResult) -> Self {
        let (mean, max, last_status, flat) = match &r.values {
            WindowValues::Level(v) => (Some(v.mean), Some(v.max), None, v.count > 1 && v.min == v.max),
            WindowValues::Pile(p) => (None, None, Some(p.last_status.as_str()), false),
        };
        let utilisation = match r.domain {
            Some(DomainValues::Charging { utilisation }) => utilisation,
            _ => None,
        };
        SensorWindowRef {
            kind: r.kind,
            sensor_id: &r.sensor_id,
            window: &r.window,
            start_ms: r.start_ms,
            end_ms: r.end_ms,
            grid: &r.area.grid,
            street: &r.area.street,
            district: &r.area.district,
            mean,
            max,
            last_status,
            utilisation,
            flat,
        }
    }

    /// The aggregates topic's key: the district (all of a district's windows meet in one
    /// partition), or the sensor when it has none.
    pub fn key(&self) -> &'a str {
        if self.district.is_empty() {
            self.sensor_id
        } else {
            self.district
        }
    }
}

/// `AggregateMessage::Windows` as written in JSON, borrowing the windows: the same JSON.
#[derive(Debug, serde::Serialize)]
#[serde(tag = "type", rename = "windows")]
pub struct WindowsMessageRef<'a> {
    pub source: &'a str,
    pub windows: &'a [SensorWindowRef<'a>],
}

/// A record on the aggregates topic.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", try_from = "WireMessage")]
pub enum AggregateMessage {
    /// Closed sensor windows of one key (district) from input partition `source`
    /// ("topic/partition"): what stage 1 writes, one record per key and read batch.
    Windows { source: String, windows: Vec<SensorWindow> },
    /// One closed sensor window: what stage 1 wrote before windows were batched. Still read,
    /// so records of an older version on the topic roll up after an upgrade.
    Window { source: String, window: Box<SensorWindow> },
    /// Every window of `source` with end + allowed lateness ≤ `watermark_ms` is published.
    Watermark { source: String, kind: Kind, watermark_ms: i64 },
}

/// `AggregateMessage` as it is read: one flat struct. (An internally tagged enum would be
/// deserialised through serde's buffered `Content` tree, which cost the area stage an
/// allocation per field of every message.)
#[derive(serde::Deserialize)]
struct WireMessage {
    #[serde(rename = "type")]
    tag: WireTag,
    source: String,
    #[serde(default)]
    windows: Option<Vec<SensorWindow>>,
    #[serde(default)]
    window: Option<Box<SensorWindow>>,
    #[serde(default)]
    kind: Option<Kind>,
    #[serde(default)]
    watermark_ms: Option<i64>,
}

#[derive(serde::Deserialize)]
#[serde(rename_all = "snake_case")]
enum WireTag {
    Windows,
    Window,
    Watermark,
}

impl TryFrom<WireMessage> for AggregateMessage {
    type Error = String;

    fn try_from(wire: WireMessage) -> Result<Self, String> {
        match (wire.tag, wire.windows, wire.window, wire.kind, wire.watermark_ms) {
            (WireTag::Windows, Some(windows), ..) => Ok(AggregateMessage::Windows { source: wire.source, windows }),
            (WireTag::Window, _, Some(window), ..) => Ok(AggregateMessage::Window { source: wire.source, window }),
            (WireTag::Watermark, _, _, Some(kind), Some(watermark_ms)) => {
                Ok(AggregateMessage::Watermark { source: wire.source, kind, watermark_ms })
            }
            (WireTag::Windows, ..) => Err("missing field `windows`".to_owned()),
            (WireTag::Window, ..) => Err("missing field `window`".to_owned()),
            (WireTag::Watermark, ..) => Err("missing field `kind` or `watermark_ms`".to_owned()),
        }
    }
}

/// The level of the grid-management hierarchy an area result is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AreaLevel {
    Grid,
    Street,
    District,
}

impl AreaLevel {
    pub const ALL: [AreaLevel; 3] = [AreaLevel::Grid, AreaLevel::Street, AreaLevel::District];

    pub fn as_str(self) -> &'static str {
        match self {
            AreaLevel::Grid => "grid",
            AreaLevel::Street => "street",
            AreaLevel::District => "district",
        }
    }
}

/// How far one sensor's window mean lies from its peers' (the same street, or district when
/// the street is unknown): the input of outlier rules. A robust z-score: the distance from
/// the peers' median in units of 1.4826 × their median absolute deviation.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct PeerDeviation {
    pub kind: Kind,
    pub window: SmolStr,
    pub end_ms: i64,
    pub sensor_id: SmolStr,
    pub grid: SmolStr,
    pub street: SmolStr,
    pub district: SmolStr,
    pub mean: f64,
    pub peer_median: f64,
    pub robust_z: f64,
    /// Sensors in the group, this one included.
    pub peers: u32,
    /// This sensor's window had several samples, all equal.
    pub flat: bool,
    /// Peers (others in the group) whose readings varied in the window.
    pub peers_varying: u32,
}

/// One area's roll-up of one window.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct AreaResult {
    pub kind: Kind,
    pub window: SmolStr,
    pub start_ms: i64,
    pub end_ms: i64,
    pub level: AreaLevel,
    /// The grid, street or district id.
    pub area: SmolStr,
    pub district: SmolStr,
    /// Mean and maximum of the sensor means (levels).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mean: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max: Option<f64>,
    pub sensors_reporting: u32,
    /// Registered sensors of this kind in the area that sent nothing in the window; unknown
    /// without a registry entry for the area.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sensors_silent: Option<u32>,
    /// Piles: Available ÷ reporting, Faulted ÷ reporting, mean utilisation.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub availability: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fault_ratio: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub utilisation: Option<f64>,
    /// Charging: piles of the area that sent nothing in the window (offline: with the default
    /// 5 min window and 60 s heartbeat, at least three missed heartbeats).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub piles_offline: Option<u32>,
    /// Dust: roads at least twice their district's mean.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hotspots: Option<u32>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn window() -> SensorWindow {
        SensorWindow {
            kind: Kind::Pm25,
            sensor_id: "hd-pm-1".into(),
            window: "1h".into(),
            start_ms: 0,
            end_ms: 3_600_000,
            grid: "g".into(),
            street: "s".into(),
            district: "haidian".into(),
            mean: Some(35.5),
            max: Some(80.0),
            last_status: None,
            utilisation: None,
            flat: false,
        }
    }

    #[test]
    fn messages_read_back_as_written() {
        let messages = [
            AggregateMessage::Windows {
                source: "city.pm25/0".into(),
                windows: vec![window(), SensorWindow { sensor_id: "hd-pm-2".into(), ..window() }],
            },
            AggregateMessage::Window { source: "city.pm25/0".into(), window: Box::new(window()) },
            AggregateMessage::Watermark { source: "city.pm25/0".into(), kind: Kind::Water, watermark_ms: 42 },
        ];
        for message in messages {
            let json = serde_json::to_string(&message).unwrap();
            assert!(json.starts_with(r#"{"type":"#), "tagged by type: {json}");
            assert_eq!(serde_json::from_str::<AggregateMessage>(&json).unwrap(), message);
        }
    }

    #[test]
    fn a_borrowed_window_is_written_as_the_owned_one_reads() {
        use crate::model::{Area, LevelValues};
        let result = WindowResult {
            kind: Kind::Pm25,
            sensor_id: "hd-pm-1".into(),
            window: "1h".into(),
            start_ms: 0,
            end_ms: 3_600_000,
            area: Area { grid: "g".into(), street: "s".into(), district: "haidian".into() },
            values: WindowValues::Level(LevelValues {
                count: 3,
                sum: 106.5,
                mean: 35.5,
                min: 10.0,
                max: 80.0,
                first: 10.0,
                last: 16.5,
                stddev: 30.0,
                p50: 16.5,
                p95: 80.0,
                rate_per_h: 0.0,
                slope_per_h: None,
            }),
            coverage: None,
            domain: None,
        };
        let windows = [SensorWindowRef::of(&result), SensorWindowRef::of(&result)];
        let mut bytes = Vec::new();
        crate::rollup::encoding::AggregateFormat::Protobuf.write_windows("city.pm25/0", &windows, &mut bytes);
        let owned = AggregateMessage::Windows { source: "city.pm25/0".into(), windows: vec![SensorWindow::from(&result); 2] };
        assert_eq!(crate::rollup::encoding::decode(&bytes), Ok(owned));
    }

    #[test]
    fn a_message_missing_its_payload_is_an_error_not_a_default() {
        let error = serde_json::from_str::<AggregateMessage>(r#"{"type":"window","source":"x"}"#).unwrap_err();
        assert!(error.to_string().contains("window"), "{error}");
        assert!(serde_json::from_str::<AggregateMessage>(r#"{"type":"windows","source":"x"}"#)
            .unwrap_err()
            .to_string()
            .contains("windows"));
        assert!(serde_json::from_str::<AggregateMessage>(r#"{"type":"watermark","source":"x","kind":"pm25"}"#).is_err());
        assert!(serde_json::from_str::<AggregateMessage>(r#"{"type":"other","source":"x"}"#).is_err());
    }
}
