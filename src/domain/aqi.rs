//! PM2.5 air-quality indices.
//!
//! China: HJ 633 individual AQI (IAQI), linear between breakpoints, rounded up (HJ 633-2026
//! clause 4.2.6), clamped at 500 above the top breakpoint with `above_scale` set. HJ 633 has
//! no 1-hour PM2.5 row, so hourly values use the 24-hour table (DOMAIN.md §1.5). The table
//! is chosen by the observation's own date: HJ 633-2012 before 2026-03-01 (Beijing time),
//! HJ 633-2026 from then on (SPEC §8).
//!
//! US: EPA AQI, 2024 revision (concentration truncated to 0.1 µg/m³, AQI rounded to the
//! nearest integer), and NowCast over the last 12 hourly means.

/// IAQI value at each breakpoint (HJ 633 Table 1 header).
const IAQI_NODES: [f64; 8] = [0.0, 50.0, 100.0, 150.0, 200.0, 300.0, 400.0, 500.0];
/// PM2.5 24 h breakpoints, µg/m³, HJ 633-2012 Table 1.
const PM25_HJ633_2012: [f64; 8] = [0.0, 35.0, 75.0, 115.0, 150.0, 250.0, 350.0, 500.0];
/// PM2.5 24 h breakpoints, µg/m³, HJ 633-2026 (IAQI 100 moves from 75 to 60).
const PM25_HJ633_2026: [f64; 8] = [0.0, 35.0, 60.0, 115.0, 150.0, 250.0, 350.0, 500.0];
/// 2026-03-01T00:00:00+08:00: HJ 633-2026 takes effect.
pub const HJ633_2026_EFFECTIVE_MS: i64 = 1_772_294_400_000;

/// Which HJ 633 table applies.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Hj633 {
    #[serde(rename = "HJ633-2012")]
    Y2012,
    #[serde(rename = "HJ633-2026")]
    Y2026,
}

impl Hj633 {
    /// The table in force at `ts_ms` (a window's start).
    pub fn for_time(ts_ms: i64) -> Hj633 {
        if ts_ms < HJ633_2026_EFFECTIVE_MS {
            Hj633::Y2012
        } else {
            Hj633::Y2026
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Hj633::Y2012 => "HJ633-2012",
            Hj633::Y2026 => "HJ633-2026",
        }
    }

    fn pm25_breakpoints(self) -> &'static [f64; 8] {
        match self {
            Hj633::Y2012 => &PM25_HJ633_2012,
            Hj633::Y2026 => &PM25_HJ633_2026,
        }
    }
}

/// HJ 633 AQI category (Table 2 / Appendix A; identical in both versions).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub enum Category {
    Excellent,
    Good,
    Light,
    Moderate,
    Heavy,
    Severe,
}

impl Category {
    pub fn from_aqi(aqi: u32) -> Category {
        match aqi {
            0..=50 => Category::Excellent,
            51..=100 => Category::Good,
            101..=150 => Category::Light,
            151..=200 => Category::Moderate,
            201..=300 => Category::Heavy,
            _ => Category::Severe,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Category::Excellent => "excellent",
            Category::Good => "good",
            Category::Light => "light",
            Category::Moderate => "moderate",
            Category::Heavy => "heavy",
            Category::Severe => "severe",
        }
    }

    /// 优, 良, 轻度污染, 中度污染, 重度污染, 严重污染.
    pub fn chinese(self) -> &'static str {
        match self {
            Category::Excellent => "优",
            Category::Good => "良",
            Category::Light => "轻度污染",
            Category::Moderate => "中度污染",
            Category::Heavy => "重度污染",
            Category::Severe => "严重污染",
        }
    }

    /// HJ 633 Appendix A colours (not the US EPA palette).
    pub fn colour(self) -> &'static str {
        match self {
            Category::Excellent => "#00E400",
            Category::Good => "#FFFF00",
            Category::Light => "#FF7E00",
            Category::Moderate => "#FF0000",
            Category::Heavy => "#99004C",
            Category::Severe => "#7E0023",
        }
    }
}

/// An individual AQI with its category.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct Iaqi {
    pub value: u32,
    pub category: Category,
    /// The concentration is above the top breakpoint; `value` is clamped to 500.
    pub above_scale: bool,
}

/// Linear interpolation between breakpoints. `None` above the top breakpoint.
fn interpolate(c: f64, breakpoints: &[f64], nodes: &[f64]) -> Option<f64> {
    let hi = breakpoints.iter().position(|bp| c <= *bp)?;
    if hi == 0 {
        return Some(nodes[0]);
    }
    let (c_lo, c_hi, i_lo, i_hi) = (breakpoints[hi - 1], breakpoints[hi], nodes[hi - 1], nodes[hi]);
    Some((i_hi - i_lo) / (c_hi - c_lo) * (c - c_lo) + i_lo)
}

/// Rounds a PM2.5 concentration to a whole µg/m³, half to even (四舍六入五成双,
/// GB/T 8170), as concentrations are reported before the IAQI is computed. This is what
/// makes 60.5 → IAQI 100 but 60.6 → 101 under HJ 633-2026 (DOMAIN.md §1.2).
pub fn round_concentration(c: f64) -> f64 {
    let floor = c.floor();
    let diff = c - floor;
    if (diff - 0.5).abs() < 1e-9 {
        if floor % 2.0 == 0.0 {
            floor
        } else {
            floor + 1.0
        }
    } else {
        c.round()
    }
}

/// HJ 633 PM2.5 IAQI of a concentration (µg/m³), 24 h mean or 1 h value.
pub fn pm25_iaqi(concentration: f64, table: Hj633) -> Iaqi {
    let c = round_concentration(concentration.max(0.0));
    match interpolate(c, table.pm25_breakpoints(), &IAQI_NODES) {
        // Rounded up; the small epsilon keeps exact breakpoints (75 → 100) from becoming 101
        // through floating-point noise.
        Some(iaqi) => {
            let value = (iaqi - 1e-9).ceil().max(0.0) as u32;
            Iaqi { value, category: Category::from_aqi(value), above_scale: false }
        }
        None => Iaqi { value: 500, category: Category::Severe, above_scale: true },
    }
}

/// US EPA PM2.5 breakpoints (2024 revision): (C_lo, C_hi, I_lo, I_hi).
const EPA_PM25_2024: [(f64, f64, f64, f64); 6] = [
    (0.0, 9.0, 0.0, 50.0),
    (9.1, 35.4, 51.0, 100.0),
    (35.5, 55.4, 101.0, 150.0),
    (55.5, 125.4, 151.0, 200.0),
    (125.5, 225.4, 201.0, 300.0),
    (225.5, 325.4, 301.0, 500.0),
];

/// Truncates to 0.1 µg/m³ as the EPA method requires.
fn truncate_tenth(c: f64) -> f64 {
    (c * 10.0 + 1e-9).floor() / 10.0
}

/// US EPA AQI of a PM2.5 concentration: (AQI, above_scale).
pub fn epa_pm25_aqi(concentration: f64) -> (u32, bool) {
    let c = truncate_tenth(concentration.max(0.0));
    for (c_lo, c_hi, i_lo, i_hi) in EPA_PM25_2024 {
        if c <= c_hi + 1e-9 {
            let aqi = (i_hi - i_lo) / (c_hi - c_lo) * (c.max(c_lo) - c_lo) + i_lo;
            return (aqi.round() as u32, false);
        }
    }
    (500, true)
}

/// EPA NowCast from hourly means, `hourly[0]` the latest complete hour, up to 12 hours,
/// `None` for a missing hour. Valid only with at least 2 of the latest 3 hours.
pub fn nowcast(hourly: &[Option<f64>]) -> Option<f64> {
    let hours = &hourly[..hourly.len().min(12)];
    if hours.iter().take(3).filter(|h| h.is_some()).count() < 2 {
        return None;
    }
    let present: Vec<(usize, f64)> = hours.iter().enumerate().filter_map(|(i, c)| c.map(|c| (i, c))).collect();
    let max = present.iter().map(|p| p.1).fold(f64::NEG_INFINITY, f64::max);
    let min = present.iter().map(|p| p.1).fold(f64::INFINITY, f64::min);
    let weight = if max > 0.0 { (min / max).max(0.5) } else { 1.0 };
    let (num, den) = present.iter().fold((0.0, 0.0), |(n, d), (i, c)| {
        let w = weight.powi(*i as i32);
        (n + w * c, d + w)
    });
    Some(truncate_tenth(num / den))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hj633_2012_spec_test_points() {
        for (c, iaqi) in [(75.0, 100), (115.0, 150), (150.0, 200), (35.0, 50), (0.0, 0)] {
            assert_eq!(pm25_iaqi(c, Hj633::Y2012).value, iaqi, "{c}");
        }
        let top = pm25_iaqi(600.0, Hj633::Y2012);
        assert_eq!((top.value, top.above_scale, top.category), (500, true, Category::Severe));
        assert!(!pm25_iaqi(500.0, Hj633::Y2012).above_scale);
    }

    #[test]
    fn hj633_2026_spec_test_points() {
        for (c, iaqi) in [(35.0, 50), (59.0, 98), (60.0, 100), (60.5, 100), (60.6, 101), (75.0, 114)] {
            assert_eq!(pm25_iaqi(c, Hj633::Y2026).value, iaqi, "{c}");
        }
    }

    #[test]
    fn concentrations_round_half_to_even() {
        assert_eq!(round_concentration(60.5), 60.0);
        assert_eq!(round_concentration(61.5), 62.0);
        assert_eq!(round_concentration(60.6), 61.0);
        assert_eq!(round_concentration(60.4), 60.0);
    }

    #[test]
    fn the_table_switches_on_2026_03_01_beijing_time() {
        assert_eq!(Hj633::for_time(HJ633_2026_EFFECTIVE_MS - 1), Hj633::Y2012);
        assert_eq!(Hj633::for_time(HJ633_2026_EFFECTIVE_MS), Hj633::Y2026);
        // 75 µg/m³ is "good" (100) under 2012 and "light" (114) under 2026.
        assert_eq!(pm25_iaqi(75.0, Hj633::for_time(HJ633_2026_EFFECTIVE_MS - 1)).category, Category::Good);
        assert_eq!(pm25_iaqi(75.0, Hj633::for_time(HJ633_2026_EFFECTIVE_MS)).category, Category::Light);
    }

    #[test]
    fn categories_follow_hj633_table_2() {
        let cases = [(50, "excellent", "优", "#00E400"), (51, "good", "良", "#FFFF00"), (150, "light", "轻度污染", "#FF7E00")];
        for (aqi, name, zh, colour) in cases {
            let c = Category::from_aqi(aqi);
            assert_eq!((c.as_str(), c.chinese(), c.colour()), (name, zh, colour));
        }
        assert_eq!(Category::from_aqi(200), Category::Moderate);
        assert_eq!(Category::from_aqi(201).colour(), "#99004C");
        assert_eq!(Category::from_aqi(301), Category::Severe);
    }

    #[test]
    fn epa_2024_breakpoints_truncate_then_round() {
        assert_eq!(epa_pm25_aqi(9.0), (50, false));
        assert_eq!(epa_pm25_aqi(9.09), (50, false), "truncated to 9.0");
        assert_eq!(epa_pm25_aqi(9.1), (51, false));
        assert_eq!(epa_pm25_aqi(35.4), (100, false));
        assert_eq!(epa_pm25_aqi(35.5), (101, false));
        assert_eq!(epa_pm25_aqi(325.4), (500, false));
        assert_eq!(epa_pm25_aqi(400.0), (500, true));
    }

    #[test]
    fn nowcast_spec_example_and_validity() {
        let steady = [Some(20.0); 12];
        let c = nowcast(&steady).unwrap();
        assert_eq!(c, 20.0);
        assert_eq!(epa_pm25_aqi(c).0, 71);
        assert_eq!(nowcast(&[Some(20.0), None, None, Some(30.0)]), None, "needs 2 of the latest 3 hours");
        // Rising pollution weighs the latest hour most: w = max(10/40, 0.5) = 0.5.
        let rising = [Some(40.0), Some(10.0)];
        assert_eq!(nowcast(&rising), Some(30.0), "(40 + 0.5*10) / 1.5");
    }
}
