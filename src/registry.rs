//! The sensor registry: id → area, coordinates, nominal reporting interval and per-sensor
//! thresholds (SPEC §1). Loaded once at start from CSV; read-only afterwards.

use std::collections::HashMap;
use std::path::Path;

use crate::model::{Area, Kind};

/// What the registry knows about one sensor or pile.
#[derive(Debug, Clone, PartialEq, Default, serde::Deserialize)]
pub struct SensorInfo {
    pub id: String,
    #[serde(default, deserialize_with = "kind_or_empty")]
    pub kind: Option<Kind>,
    #[serde(default)]
    pub grid: String,
    #[serde(default)]
    pub street: String,
    #[serde(default)]
    pub district: String,
    pub lat: Option<f64>,
    pub lon: Option<f64>,
    /// Nominal reporting (or heartbeat) interval in seconds.
    pub interval_s: Option<u32>,
    /// Plausible range for this gauge, in the kind's canonical unit.
    pub min_value: Option<f64>,
    pub max_value: Option<f64>,
    /// Water gauges: 警戒水位, 保证水位 and the historical maximum, metres above datum.
    pub warning_level: Option<f64>,
    pub guaranteed_level: Option<f64>,
    pub historical_max: Option<f64>,
}

impl SensorInfo {
    pub fn area(&self) -> Area {
        Area::new(&self.grid, &self.street, &self.district)
    }
}

fn kind_or_empty<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Kind>, D::Error> {
    let text: String = serde::Deserialize::deserialize(d)?;
    if text.is_empty() {
        return Ok(None);
    }
    Kind::parse(&text).map(Some).ok_or_else(|| serde::de::Error::custom(format!("unknown kind {text:?}")))
}

#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    #[error("cannot read registry {path}: {source}")]
    Read { path: String, source: std::io::Error },
    #[error("registry {path}, {position}: {message}")]
    Row { path: String, position: String, message: String },
    #[error("registry {path}: sensor {id:?} is listed twice")]
    Duplicate { path: String, id: String },
}

/// Sensor id → what the registry says about it.
#[derive(Debug, Default, Clone)]
pub struct Registry {
    sensors: HashMap<String, SensorInfo>,
}

impl Registry {
    pub fn empty() -> Self {
        Registry::default()
    }

    pub fn from_entries(entries: impl IntoIterator<Item = SensorInfo>) -> Self {
        Registry { sensors: entries.into_iter().map(|info| (info.id.clone(), info)).collect() }
    }

    /// Loads a CSV file with a header row naming the `SensorInfo` fields (any order;
    /// only `id` is required).
    pub fn load_csv(path: &Path) -> Result<Self, RegistryError> {
        let shown = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|source| RegistryError::Read { path: shown.clone(), source })?;
        Self::parse_csv(&text, &shown)
    }

    pub fn parse_csv(text: &str, path: &str) -> Result<Self, RegistryError> {
        let mut reader = csv::ReaderBuilder::new().trim(csv::Trim::All).comment(Some(b'#')).from_reader(text.as_bytes());
        let mut sensors = HashMap::new();
        for row in reader.deserialize::<SensorInfo>() {
            let info = row.map_err(|err| RegistryError::Row {
                path: path.to_owned(),
                position: err.position().map_or("row ?".to_owned(), |p| format!("line {}", p.line())),
                message: err.to_string(),
            })?;
            if sensors.contains_key(&info.id) {
                return Err(RegistryError::Duplicate { path: path.to_owned(), id: info.id });
            }
            sensors.insert(info.id.clone(), info);
        }
        Ok(Registry { sensors })
    }

    pub fn get(&self, id: &str) -> Option<&SensorInfo> {
        self.sensors.get(id)
    }

    pub fn len(&self) -> usize {
        self.sensors.len()
    }

    pub fn is_empty(&self) -> bool {
        self.sensors.is_empty()
    }

    pub fn iter(&self) -> impl Iterator<Item = &SensorInfo> {
        self.sensors.values()
    }

    /// Writes the registry as CSV, sorted by id (the format `load_csv` reads).
    pub fn to_csv(&self) -> String {
        let mut rows: Vec<&SensorInfo> = self.sensors.values().collect();
        rows.sort_by(|a, b| a.id.cmp(&b.id));
        let mut out = String::from(
            "id,kind,grid,street,district,lat,lon,interval_s,min_value,max_value,warning_level,guaranteed_level,historical_max\n",
        );
        let opt = |v: Option<f64>| v.map(|v| v.to_string()).unwrap_or_default();
        for s in rows {
            out.push_str(&format!(
                "{},{},{},{},{},{},{},{},{},{},{},{},{}\n",
                s.id,
                s.kind.map(|k| k.as_str()).unwrap_or(""),
                s.grid,
                s.street,
                s.district,
                opt(s.lat),
                opt(s.lon),
                s.interval_s.map(|v| v.to_string()).unwrap_or_default(),
                opt(s.min_value),
                opt(s.max_value),
                opt(s.warning_level),
                opt(s.guaranteed_level),
                opt(s.historical_max),
            ));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_csv_registry_loads_and_round_trips() {
        let text = "id,kind,grid,street,district,interval_s,warning_level\n\
                    # a comment line\n\
                    hd-wl-1,water,hd-0001,hd-s1,haidian,60,3.5\n\
                    cy-cp-1,charging,cy-0001,cy-s1,chaoyang,,\n";
        let registry = Registry::parse_csv(text, "test.csv").unwrap();
        let gauge = registry.get("hd-wl-1").unwrap();
        assert_eq!(gauge.kind, Some(Kind::Water));
        assert_eq!(gauge.warning_level, Some(3.5));
        assert_eq!(gauge.interval_s, Some(60));
        assert_eq!(registry.get("cy-cp-1").unwrap().interval_s, None);
        let again = Registry::parse_csv(&registry.to_csv(), "again.csv").unwrap();
        assert_eq!(again.get("hd-wl-1"), Some(gauge));
    }

    #[test]
    fn a_bad_row_names_its_line() {
        let text = "id,kind,interval_s\na,water,sixty\n";
        let err = Registry::parse_csv(text, "bad.csv").unwrap_err().to_string();
        assert!(err.contains("bad.csv") && err.contains("line 2"), "{err}");
    }

    #[test]
    fn duplicate_ids_are_refused() {
        let err = Registry::parse_csv("id\na\na\n", "dup.csv").unwrap_err();
        assert!(matches!(err, RegistryError::Duplicate { .. }));
    }
}
