//! Road dust load (道路尘负荷, g/m², DOMAIN.md §3). No official alert threshold exists, so
//! the grades are configurable defaults: watch ≥ 0.5, alert ≥ 0.8 g/m², and a road hotspot
//! when a road is at least twice its district's mean (SPEC §8).

pub const DEFAULT_WATCH_G_M2: f64 = 0.5;
pub const DEFAULT_ALERT_G_M2: f64 = 0.8;
pub const HOTSPOT_FACTOR: f64 = 2.0;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum DustGrade {
    Normal,
    Watch,
    Alert,
}

impl DustGrade {
    pub fn as_str(self) -> &'static str {
        match self {
            DustGrade::Normal => "normal",
            DustGrade::Watch => "watch",
            DustGrade::Alert => "alert",
        }
    }
}

pub fn grade(mean_g_m2: f64, watch: f64, alert: f64) -> DustGrade {
    if mean_g_m2 >= alert {
        DustGrade::Alert
    } else if mean_g_m2 >= watch {
        DustGrade::Watch
    } else {
        DustGrade::Normal
    }
}

pub fn is_hotspot(road_mean: f64, district_mean: f64) -> bool {
    district_mean > 0.0 && road_mean >= HOTSPOT_FACTOR * district_mean
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grades_and_hotspots() {
        assert_eq!(grade(0.49, DEFAULT_WATCH_G_M2, DEFAULT_ALERT_G_M2), DustGrade::Normal);
        assert_eq!(grade(0.5, DEFAULT_WATCH_G_M2, DEFAULT_ALERT_G_M2), DustGrade::Watch);
        assert_eq!(grade(0.85, DEFAULT_WATCH_G_M2, DEFAULT_ALERT_G_M2), DustGrade::Alert);
        assert!(is_hotspot(1.0, 0.5));
        assert!(!is_hotspot(0.9, 0.5));
        assert!(!is_hotspot(0.9, 0.0));
    }
}
