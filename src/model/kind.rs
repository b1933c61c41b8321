//! The four feeds citysense understands.

use std::fmt;

/// What a sensor measures; one input topic and one InfluxDB measurement per kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    /// PM2.5 mass concentration, µg/m³.
    Pm25,
    /// Road dust load, g/m².
    Dust,
    /// Water level or ponding depth, metres.
    Water,
    /// EV charging-pile status (OCPP).
    Charging,
}

impl Kind {
    pub const ALL: [Kind; 4] = [Kind::Pm25, Kind::Dust, Kind::Water, Kind::Charging];

    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Pm25 => "pm25",
            Kind::Dust => "dust",
            Kind::Water => "water",
            Kind::Charging => "charging",
        }
    }

    pub fn parse(text: &str) -> Option<Kind> {
        match text {
            "pm25" | "pm2.5" | "PM2.5" | "PM25" => Some(Kind::Pm25),
            "dust" => Some(Kind::Dust),
            "water" => Some(Kind::Water),
            "charging" => Some(Kind::Charging),
            _ => None,
        }
    }

    /// Index into per-kind arrays (`[T; 4]`).
    pub fn index(self) -> usize {
        self as usize
    }

    /// The normalised unit every value of this kind is stored in.
    pub fn canonical_unit(self) -> &'static str {
        match self {
            Kind::Pm25 => "ug/m3",
            Kind::Dust => "g/m2",
            Kind::Water => "m",
            Kind::Charging => "kW",
        }
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}
