//! Adds coverage and the domain metrics to a closed window: the one place that maps a
//! window's aggregates and the sensor's registry entry onto `DomainValues`.

use std::collections::{HashMap, VecDeque};

use super::aqi::{self, Hj633};
use super::{charging, dust, water};
use crate::model::{DomainValues, Kind, PileStatus, WindowResult, WindowValues};
use crate::registry::SensorInfo;

const HOUR_MS: i64 = 3_600_000;
/// NowCast looks back 12 hourly means (SPEC §8).
const NOWCAST_HOURS: usize = 12;

/// Which HJ 633 table to use: by each window's date, or pinned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Hj633Choice {
    ByDate,
    Pinned(Hj633),
}

#[derive(Debug, Clone, PartialEq)]
pub struct DomainSettings {
    pub hj633: Hj633Choice,
    /// Also compute US EPA AQI and NowCast.
    pub epa: bool,
    pub approach_margin_m: f64,
    pub dust_watch_g_m2: f64,
    pub dust_alert_g_m2: f64,
}

impl Default for DomainSettings {
    fn default() -> Self {
        DomainSettings {
            hj633: Hj633Choice::ByDate,
            epa: false,
            approach_margin_m: water::DEFAULT_APPROACH_MARGIN_M,
            dust_watch_g_m2: dust::DEFAULT_WATCH_G_M2,
            dust_alert_g_m2: dust::DEFAULT_ALERT_G_M2,
        }
    }
}

/// Per-sensor memory the domain metrics need across windows (hourly means for NowCast).
#[derive(Debug, Default)]
pub struct DomainMemory {
    hourly_pm25: HashMap<String, VecDeque<(i64, f64)>>,
}

impl DomainMemory {
    /// The last 12 hourly means ending at `end_ms`, latest first, `None` for gaps.
    fn record_hour(&mut self, sensor: &str, end_ms: i64, mean: f64) -> Vec<Option<f64>> {
        let hours = self.hourly_pm25.entry(sensor.to_owned()).or_default();
        hours.retain(|(end, _)| *end != end_ms);
        hours.push_back((end_ms, mean));
        hours.make_contiguous().sort_by_key(|(end, _)| *end);
        while hours.front().is_some_and(|(end, _)| *end <= end_ms - NOWCAST_HOURS as i64 * HOUR_MS) {
            hours.pop_front();
        }
        (0..NOWCAST_HOURS as i64).map(|i| hours.iter().find(|(end, _)| *end == end_ms - i * HOUR_MS).map(|(_, m)| *m)).collect()
    }

    pub fn forget(&mut self, sensor: &str) {
        self.hourly_pm25.remove(sensor);
    }
}

/// Fills `coverage` and `domain` of a closed window.
pub fn enrich(result: &mut WindowResult, info: Option<&SensorInfo>, settings: &DomainSettings, memory: &mut DomainMemory) {
    let size_ms = result.end_ms - result.start_ms;
    result.coverage = info.and_then(|i| i.interval_s).filter(|s| *s > 0).map(|interval_s| {
        let expected = size_ms as f64 / (interval_s as f64 * 1000.0);
        result.values.count() as f64 / expected
    });
    result.domain = match (&result.values, result.kind) {
        (WindowValues::Level(v), Kind::Pm25) if size_ms >= HOUR_MS => {
            let table = match settings.hj633 {
                Hj633Choice::ByDate => Hj633::for_time(result.start_ms),
                Hj633Choice::Pinned(table) => table,
            };
            let iaqi = aqi::pm25_iaqi(v.mean, table);
            let nowcast = (settings.epa && size_ms == HOUR_MS)
                .then(|| aqi::nowcast(&memory.record_hour(&result.sensor_id, result.end_ms, v.mean)))
                .flatten();
            Some(DomainValues::Pm25 {
                iaqi: iaqi.value,
                category: iaqi.category.as_str(),
                above_scale: iaqi.above_scale,
                standard: table.as_str(),
                epa_aqi: settings.epa.then(|| aqi::epa_pm25_aqi(v.mean).0),
                nowcast,
            })
        }
        (WindowValues::Level(v), Kind::Water) => {
            let slope = v.slope_per_h.unwrap_or(0.0);
            match info.and_then(|i| i.warning_level.map(|w| (w, i))) {
                Some((warning, i)) => {
                    let gauge = water::GaugeLevels {
                        warning,
                        guaranteed: i.guaranteed_level,
                        historical_max: i.historical_max,
                        approach_margin: settings.approach_margin_m,
                    };
                    Some(DomainValues::Water {
                        flood_signal: Some(water::flood_signal(v.last, &gauge).as_str()),
                        underpass_grade: None,
                        minutes_to_next_threshold: water::next_threshold(v.last, &gauge).and_then(|t| water::minutes_to(v.last, t, slope)),
                    })
                }
                None => Some(DomainValues::Water {
                    flood_signal: None,
                    underpass_grade: Some(underpass_name(water::underpass_grade(v.max))),
                    minutes_to_next_threshold: water::UNDERPASS_THRESHOLDS_M
                        .into_iter()
                        .find(|t| *t > v.last)
                        .and_then(|t| water::minutes_to(v.last, t, slope)),
                }),
            }
        }
        (WindowValues::Level(v), Kind::Dust) => {
            Some(DomainValues::Dust { dust_grade: dust::grade(v.mean, settings.dust_watch_g_m2, settings.dust_alert_g_m2).as_str() })
        }
        (WindowValues::Pile(p), Kind::Charging) => {
            let online: i64 = p.time_in_status_ms.iter().map(|(_, ms)| ms).sum();
            let charging_ms: i64 = [PileStatus::Charging, PileStatus::Occupied].into_iter().map(|s| p.time_in(s)).sum();
            debug_assert!(charging::is_charging(PileStatus::Occupied));
            Some(DomainValues::Charging { utilisation: (online > 0).then(|| charging_ms as f64 / online as f64) })
        }
        _ => None,
    };
}

fn underpass_name(grade: water::UnderpassGrade) -> &'static str {
    match grade {
        water::UnderpassGrade::Dry => "dry",
        water::UnderpassGrade::Info => "info",
        water::UnderpassGrade::Warning => "warning",
        water::UnderpassGrade::RoadClosure => "road_closure",
        water::UnderpassGrade::Critical => "critical",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Area, LevelValues};

    fn window(kind: Kind, size_ms: i64, values: LevelValues) -> WindowResult {
        let start_ms = aqi::HJ633_2026_EFFECTIVE_MS;
        WindowResult {
            kind,
            sensor_id: "s".into(),
            window: "w".into(),
            start_ms,
            end_ms: start_ms + size_ms,
            area: Area::default(),
            values: WindowValues::Level(values),
            coverage: None,
            domain: None,
        }
    }

    #[test]
    fn hourly_pm25_gets_iaqi_by_the_windows_date_and_coverage_from_the_registry() {
        let info = SensorInfo { id: "s".into(), interval_s: Some(60), ..Default::default() };
        let mut w = window(Kind::Pm25, HOUR_MS, LevelValues { count: 45, mean: 75.0, ..LevelValues::single(75.0) });
        enrich(&mut w, Some(&info), &DomainSettings::default(), &mut DomainMemory::default());
        assert_eq!(w.coverage, Some(0.75));
        let Some(DomainValues::Pm25 { iaqi, category, standard, .. }) = w.domain else { panic!("{:?}", w.domain) };
        assert_eq!((iaqi, category, standard), (114, "light", "HJ633-2026"));
        let mut minute = window(Kind::Pm25, 60_000, LevelValues::single(75.0));
        enrich(&mut minute, None, &DomainSettings::default(), &mut DomainMemory::default());
        assert_eq!(minute.domain, None, "no IAQI for sub-hourly windows");
        assert_eq!(minute.coverage, None, "no coverage without a registry interval");
    }

    #[test]
    fn a_pinned_table_wins_and_epa_nowcast_builds_up_hour_by_hour() {
        let settings = DomainSettings { hj633: Hj633Choice::Pinned(Hj633::Y2012), epa: true, ..DomainSettings::default() };
        let mut memory = DomainMemory::default();
        let mut last = None;
        for hour in 0..3 {
            let mut w = window(Kind::Pm25, HOUR_MS, LevelValues::single(20.0));
            w.start_ms += hour * HOUR_MS;
            w.end_ms += hour * HOUR_MS;
            enrich(&mut w, None, &settings, &mut memory);
            last = w.domain;
        }
        let Some(DomainValues::Pm25 { iaqi, standard, epa_aqi, nowcast, .. }) = last else { panic!() };
        assert_eq!((iaqi, standard), (29, "HJ633-2012"));
        assert_eq!((epa_aqi, nowcast), (Some(71), Some(20.0)));
    }

    #[test]
    fn river_and_underpass_gauges() {
        let river = SensorInfo { id: "s".into(), warning_level: Some(3.5), guaranteed_level: Some(4.2), ..Default::default() };
        let mut w = window(Kind::Water, HOUR_MS, LevelValues { last: 3.3, slope_per_h: Some(0.4), ..LevelValues::single(3.3) });
        enrich(&mut w, Some(&river), &DomainSettings::default(), &mut DomainMemory::default());
        let Some(DomainValues::Water { flood_signal, minutes_to_next_threshold, .. }) = w.domain else { panic!() };
        assert_eq!(flood_signal, Some("blue"));
        assert!((minutes_to_next_threshold.unwrap() - 30.0).abs() < 1e-6, "0.2 m at 0.4 m/h");
        let mut up = window(Kind::Water, 60_000, LevelValues { max: 0.27, last: 0.2, slope_per_h: Some(0.6), ..LevelValues::single(0.2) });
        enrich(&mut up, None, &DomainSettings::default(), &mut DomainMemory::default());
        let Some(DomainValues::Water { underpass_grade, minutes_to_next_threshold, .. }) = up.domain else { panic!() };
        assert_eq!(underpass_grade, Some("road_closure"));
        assert!((minutes_to_next_threshold.unwrap() - 5.0).abs() < 1e-6, "0.05 m to 0.25 at 0.6 m/h");
    }
}
