//! Water levels (DOMAIN.md §4): the four-colour flood signal of a river gauge against its
//! own warning (警戒), guaranteed (保证) and historical maximum levels; underpass ponding
//! grades; the rise rate as a least-squares slope; and the time until the next threshold.

/// Default "approaching the warning level" margin: 0.3 m below it (SPEC §8, an
/// engineering assumption, configurable).
pub const DEFAULT_APPROACH_MARGIN_M: f64 = 0.3;

/// A river gauge's levels, metres above its datum, from the registry.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct GaugeLevels {
    pub warning: f64,
    pub guaranteed: Option<f64>,
    pub historical_max: Option<f64>,
    pub approach_margin: f64,
}

/// The national water-regime warning signal (水情预警信号).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum FloodSignal {
    None,
    Blue,
    Yellow,
    Orange,
    Red,
}

impl FloodSignal {
    pub fn as_str(self) -> &'static str {
        match self {
            FloodSignal::None => "none",
            FloodSignal::Blue => "blue",
            FloodSignal::Yellow => "yellow",
            FloodSignal::Orange => "orange",
            FloodSignal::Red => "red",
        }
    }
}

/// Blue approaching the warning level, yellow at or above it, orange at or above the
/// guaranteed level, red at or above the historical maximum.
pub fn flood_signal(level: f64, gauge: &GaugeLevels) -> FloodSignal {
    if gauge.historical_max.is_some_and(|m| level >= m) {
        FloodSignal::Red
    } else if gauge.guaranteed.is_some_and(|g| level >= g) {
        FloodSignal::Orange
    } else if level >= gauge.warning {
        FloodSignal::Yellow
    } else if level >= gauge.warning - gauge.approach_margin {
        FloodSignal::Blue
    } else {
        FloodSignal::None
    }
}

/// The next level above `level` at which the signal changes, if any.
pub fn next_threshold(level: f64, gauge: &GaugeLevels) -> Option<f64> {
    [Some(gauge.warning - gauge.approach_margin), Some(gauge.warning), gauge.guaranteed, gauge.historical_max]
        .into_iter()
        .flatten()
        .filter(|t| *t > level)
        .reduce(f64::min)
}

/// Underpass ponding depth grades; defaults from DOMAIN.md §4.4 (GB 51222 design depth,
/// Shenyang road-closure practice), all configurable.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum UnderpassGrade {
    Dry,
    Info,
    Warning,
    RoadClosure,
    Critical,
}

/// Depth thresholds (m) for info, warning, road closure and critical.
pub const UNDERPASS_THRESHOLDS_M: [f64; 4] = [0.10, 0.15, 0.25, 0.40];

pub fn underpass_grade(depth_m: f64) -> UnderpassGrade {
    let [info, warning, closure, critical] = UNDERPASS_THRESHOLDS_M;
    match depth_m {
        d if d >= critical => UnderpassGrade::Critical,
        d if d >= closure => UnderpassGrade::RoadClosure,
        d if d >= warning => UnderpassGrade::Warning,
        d if d >= info => UnderpassGrade::Info,
        _ => UnderpassGrade::Dry,
    }
}

/// Minutes until `threshold` is reached at `rate_m_per_h`, when rising towards it.
pub fn minutes_to(level: f64, threshold: f64, rate_m_per_h: f64) -> Option<f64> {
    (rate_m_per_h > 0.0 && threshold > level).then(|| (threshold - level) / rate_m_per_h * 60.0)
}

/// Incremental least-squares fit of level against time, mergeable across windows.
/// Times are hours relative to `origin_ms`, which keeps the sums well conditioned.
#[derive(Debug, Clone, Copy, PartialEq, Default, serde::Serialize, serde::Deserialize)]
pub struct SlopeFit {
    origin_ms: Option<i64>,
    n: f64,
    sum_t: f64,
    sum_v: f64,
    sum_tt: f64,
    sum_tv: f64,
}

const MS_PER_HOUR: f64 = 3_600_000.0;

impl SlopeFit {
    pub fn add(&mut self, ts_ms: i64, value: f64) {
        let origin = *self.origin_ms.get_or_insert(ts_ms);
        let t = (ts_ms - origin) as f64 / MS_PER_HOUR;
        self.n += 1.0;
        self.sum_t += t;
        self.sum_v += value;
        self.sum_tt += t * t;
        self.sum_tv += t * value;
    }

    pub fn merge(&mut self, other: &SlopeFit) {
        let Some(other_origin) = other.origin_ms else { return };
        let Some(origin) = self.origin_ms else {
            *self = *other;
            return;
        };
        // Shift the other fit's times onto this origin: t' = t + d.
        let d = (other_origin - origin) as f64 / MS_PER_HOUR;
        self.n += other.n;
        self.sum_t += other.sum_t + other.n * d;
        self.sum_v += other.sum_v;
        self.sum_tt += other.sum_tt + 2.0 * d * other.sum_t + other.n * d * d;
        self.sum_tv += other.sum_tv + d * other.sum_v;
    }

    /// Slope in units per hour; `None` with fewer than two distinct times.
    pub fn slope_per_hour(&self) -> Option<f64> {
        let denominator = self.n * self.sum_tt - self.sum_t * self.sum_t;
        (self.n >= 2.0 && denominator.abs() > 1e-12).then(|| (self.n * self.sum_tv - self.sum_t * self.sum_v) / denominator)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn river() -> GaugeLevels {
        GaugeLevels { warning: 3.5, guaranteed: Some(4.2), historical_max: Some(4.8), approach_margin: DEFAULT_APPROACH_MARGIN_M }
    }

    #[test]
    fn four_colour_signal() {
        let g = river();
        assert_eq!(flood_signal(3.1, &g), FloodSignal::None);
        assert_eq!(flood_signal(3.2, &g), FloodSignal::Blue);
        assert_eq!(flood_signal(3.5, &g), FloodSignal::Yellow);
        assert_eq!(flood_signal(4.2, &g), FloodSignal::Orange);
        assert_eq!(flood_signal(4.8, &g), FloodSignal::Red);
        assert_eq!(next_threshold(3.6, &g), Some(4.2));
        assert_eq!(next_threshold(5.0, &g), None);
    }

    #[test]
    fn underpass_grades() {
        assert_eq!(underpass_grade(0.05), UnderpassGrade::Dry);
        assert_eq!(underpass_grade(0.10), UnderpassGrade::Info);
        assert_eq!(underpass_grade(0.15), UnderpassGrade::Warning);
        assert_eq!(underpass_grade(0.27), UnderpassGrade::RoadClosure);
        assert_eq!(underpass_grade(0.40), UnderpassGrade::Critical);
    }

    #[test]
    fn slope_is_exact_for_a_line_and_merges() {
        let start = 1_795_593_600_000;
        let mut whole = SlopeFit::default();
        let (mut a, mut b) = (SlopeFit::default(), SlopeFit::default());
        for i in 0..12 {
            let ts = start + i * 300_000; // every 5 min
            let level = 0.05 + 0.6 * (i as f64 * 5.0 / 60.0); // 0.6 m/h
            whole.add(ts, level);
            if i < 5 {
                a.add(ts, level)
            } else {
                b.add(ts, level)
            }
        }
        assert!((whole.slope_per_hour().unwrap() - 0.6).abs() < 1e-9);
        a.merge(&b);
        assert!((a.slope_per_hour().unwrap() - 0.6).abs() < 1e-9);
        let mut single = SlopeFit::default();
        single.add(start, 1.0);
        assert_eq!(single.slope_per_hour(), None);
    }

    #[test]
    fn time_to_threshold() {
        let minutes = minutes_to(0.10, 0.25, 0.6).unwrap();
        assert!((minutes - 15.0).abs() < 1e-9, "{minutes}");
        assert_eq!(minutes_to(0.30, 0.25, 0.6), None);
        assert_eq!(minutes_to(0.10, 0.25, -0.1), None);
    }
}
