//! A Beijing-like city: districts → streets (街道) → grids (网格), with sensors placed on
//! grids. Deterministic for a given size, so the demo, tests and benches agree.

use crate::model::{Area, Kind};
use crate::registry::{Registry, SensorInfo};

/// (district, id prefix, latitude, longitude, PM2.5 baseline µg/m³). Baselines sit around
/// Beijing's 2023 annual mean of 32 µg/m³ (DOMAIN.md §6.1), higher in the south-east.
const DISTRICTS: [(&str, &str, f64, f64, f64); 6] = [
    ("haidian", "hd", 39.96, 116.30, 30.0),
    ("chaoyang", "cy", 39.92, 116.44, 34.0),
    ("dongcheng", "dc", 39.93, 116.42, 32.0),
    ("xicheng", "xc", 39.91, 116.37, 31.0),
    ("fengtai", "ft", 39.86, 116.29, 37.0),
    ("daxing", "dx", 39.73, 116.34, 40.0),
];

const STREETS: [&str; 8] = ["jiedao-a", "jiedao-b", "jiedao-c", "jiedao-d", "jiedao-e", "jiedao-f", "jiedao-g", "jiedao-h"];

/// One simulated sensor and what drives its readings.
#[derive(Debug, Clone, PartialEq)]
pub struct SimSensor {
    pub id: String,
    pub kind: Kind,
    pub area: Area,
    pub lat: f64,
    pub lon: f64,
    pub interval_ms: i64,
    /// PM2.5 / dust baseline, river base level or 0 for an underpass.
    pub baseline: f64,
    /// Water gauges: warning and guaranteed levels (m); underpasses have none.
    pub warning_level: Option<f64>,
    pub guaranteed_level: Option<f64>,
    pub historical_max: Option<f64>,
    /// Vendor name; some vendors send other (valid) units.
    pub vendor: &'static str,
}

#[derive(Debug, Clone)]
pub struct City {
    pub sensors: Vec<SimSensor>,
}

/// Nominal reporting intervals of the simulated feeds.
pub const PM25_INTERVAL_MS: i64 = 15_000;
pub const DUST_INTERVAL_MS: i64 = 300_000;
pub const WATER_INTERVAL_MS: i64 = 60_000;
pub const PILE_INTERVAL_MS: i64 = 60_000;

impl City {
    /// A city of about `sensors` sensors: per grid two PM2.5 stations and three piles, per
    /// street a dust monitor and an underpass gauge, per district two river gauges.
    pub fn generate(sensors: usize) -> City {
        // Sensors per street with 4 grids: 4*(2+3) + 1 + 1 = 22, plus rivers per district.
        let streets_total = sensors.div_ceil(22).max(1);
        let mut out = Vec::with_capacity(sensors + 16);
        let mut street_index = 0usize;
        'outer: for round in 0.. {
            for (d, (district, prefix, lat0, lon0, pm_base)) in DISTRICTS.iter().enumerate() {
                if street_index >= streets_total {
                    break 'outer;
                }
                let street = match STREETS.get(round) {
                    Some(name) => format!("{prefix}-{name}"),
                    None => format!("{prefix}-jiedao-{round}"),
                };
                if round == 0 {
                    for r in 0..2 {
                        let base = 2.0 + d as f64 * 0.4 + r as f64 * 0.7;
                        out.push(SimSensor {
                            id: format!("{prefix}-wl-river-{r}"),
                            kind: Kind::Water,
                            area: Area {
                                grid: format!("{prefix}-0000").into(),
                                street: street.as_str().into(),
                                district: (*district).into(),
                            },
                            lat: lat0 + 0.01 * r as f64,
                            lon: lon0 - 0.01,
                            interval_ms: WATER_INTERVAL_MS,
                            baseline: base,
                            warning_level: Some(base + 1.2),
                            guaranteed_level: Some(base + 2.0),
                            historical_max: Some(base + 2.6),
                            vendor: "hydro",
                        });
                    }
                }
                let street_lat = lat0 + 0.008 * round as f64;
                let area_of = |g: usize| Area {
                    grid: format!("{prefix}-{:04}", round * 4 + g + 1).into(),
                    street: street.as_str().into(),
                    district: (*district).into(),
                };
                out.push(SimSensor {
                    id: format!("{prefix}-dust-{:03}", round + 1),
                    kind: Kind::Dust,
                    area: area_of(0),
                    lat: street_lat,
                    lon: lon0 + 0.005,
                    interval_ms: DUST_INTERVAL_MS,
                    baseline: 0.3 + 0.08 * d as f64 + 0.03 * (round % 3) as f64,
                    warning_level: None,
                    guaranteed_level: None,
                    historical_max: None,
                    vendor: "roadlab",
                });
                out.push(SimSensor {
                    id: format!("{prefix}-wl-up-{:03}", round + 1),
                    kind: Kind::Water,
                    area: area_of(1),
                    lat: street_lat + 0.002,
                    lon: lon0 + 0.002,
                    interval_ms: WATER_INTERVAL_MS,
                    baseline: 0.0,
                    warning_level: None,
                    guaranteed_level: None,
                    historical_max: None,
                    vendor: "hydro",
                });
                for g in 0..4 {
                    let area = area_of(g);
                    for s in 0..2 {
                        let n = (round * 4 + g) * 2 + s + 1;
                        out.push(SimSensor {
                            id: format!("{prefix}-pm-{n:04}"),
                            kind: Kind::Pm25,
                            area: area.clone(),
                            lat: street_lat + 0.001 * g as f64,
                            lon: lon0 + 0.001 * s as f64,
                            interval_ms: PM25_INTERVAL_MS,
                            baseline: pm_base * (0.9 + 0.05 * ((n * 7) % 5) as f64),
                            warning_level: None,
                            guaranteed_level: None,
                            historical_max: None,
                            vendor: if n % 3 == 0 { "skyair" } else { "acme" },
                        });
                    }
                    for p in 0..3 {
                        let n = (round * 4 + g) * 3 + p + 1;
                        out.push(SimSensor {
                            id: format!("{prefix}-cp-{n:05}"),
                            kind: Kind::Charging,
                            area: area.clone(),
                            lat: street_lat + 0.001 * g as f64,
                            lon: lon0 + 0.003 + 0.001 * p as f64,
                            interval_ms: PILE_INTERVAL_MS,
                            baseline: 0.0,
                            warning_level: None,
                            guaranteed_level: None,
                            historical_max: None,
                            vendor: if n % 2 == 0 { "evgo" } else { "starcharge" },
                        });
                    }
                }
                street_index += 1;
            }
        }
        City { sensors: out }
    }

    /// The registry a deployment of this city would ship.
    pub fn registry(&self) -> Registry {
        Registry::from_entries(self.sensors.iter().map(|s| SensorInfo {
            id: s.id.clone(),
            kind: Some(s.kind),
            grid: s.area.grid.to_string(),
            street: s.area.street.to_string(),
            district: s.area.district.to_string(),
            lat: Some(s.lat),
            lon: Some(s.lon),
            interval_s: Some((s.interval_ms / 1000) as u32),
            min_value: s.warning_level.map(|_| 0.0),
            max_value: s.historical_max.map(|m| m + 3.0),
            warning_level: s.warning_level,
            guaranteed_level: s.guaranteed_level,
            historical_max: s.historical_max,
        }))
    }

    pub fn count(&self, kind: Kind) -> usize {
        self.sensors.iter().filter(|s| s.kind == kind).count()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_city_has_every_feed_unique_ids_and_a_full_hierarchy() {
        let city = City::generate(300);
        assert!((280..=340).contains(&city.sensors.len()), "{}", city.sensors.len());
        for kind in Kind::ALL {
            assert!(city.count(kind) > 0, "{kind}");
        }
        let mut ids: Vec<&str> = city.sensors.iter().map(|s| s.id.as_str()).collect();
        ids.sort();
        ids.dedup();
        assert_eq!(ids.len(), city.sensors.len());
        assert!(city.sensors.iter().all(|s| !s.area.grid.is_empty() && !s.area.street.is_empty() && !s.area.district.is_empty()));
        assert_eq!(city.registry().len(), city.sensors.len());
    }

    #[test]
    fn sizes_scale() {
        assert!(City::generate(10_000).sensors.len() >= 10_000);
        assert!(!City::generate(1).sensors.is_empty());
    }
}
