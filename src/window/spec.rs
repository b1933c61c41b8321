//! Window shapes: tumbling (slide = size) and sliding/hopping (slide < size), aligned to
//! the deployment's time zone so a "1 day" window is the local day (SPEC §3).

use smol_str::SmolStr;

/// One configured window of a kind.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WindowSpec {
    /// "1m", "24h", or "24h/1h" for a 24 h window sliding every hour; the `window` tag.
    pub label: SmolStr,
    pub size_ms: i64,
    pub slide_ms: i64,
}

impl WindowSpec {
    pub fn tumbling(label: impl Into<SmolStr>, size_ms: i64) -> Self {
        WindowSpec { label: label.into(), size_ms, slide_ms: size_ms }
    }

    pub fn sliding(label: impl Into<SmolStr>, size_ms: i64, slide_ms: i64) -> Self {
        WindowSpec { label: label.into(), size_ms, slide_ms }
    }

    /// Starts of every window that contains `ts_ms`, latest first. Windows start where
    /// local time (UTC + `tz_offset_ms`) is a multiple of the slide.
    pub fn starts_containing(&self, ts_ms: i64, tz_offset_ms: i64) -> impl Iterator<Item = i64> + '_ {
        let latest = (ts_ms + tz_offset_ms).div_euclid(self.slide_ms) * self.slide_ms - tz_offset_ms;
        let size = self.size_ms;
        std::iter::successors(Some(latest), move |start| Some(start - self.slide_ms)).take_while(move |start| start + size > ts_ms)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MINUTE: i64 = 60_000;
    const HOUR: i64 = 60 * MINUTE;
    const CST: i64 = 8 * HOUR;

    #[test]
    fn tumbling_windows_are_half_open() {
        let spec = WindowSpec::tumbling("1m", MINUTE);
        assert_eq!(spec.starts_containing(0, 0).collect::<Vec<_>>(), vec![0]);
        assert_eq!(spec.starts_containing(MINUTE - 1, 0).collect::<Vec<_>>(), vec![0]);
        assert_eq!(spec.starts_containing(MINUTE, 0).collect::<Vec<_>>(), vec![MINUTE]);
        assert_eq!(spec.starts_containing(-1, 0).collect::<Vec<_>>(), vec![-MINUTE]);
    }

    #[test]
    fn a_day_window_is_the_local_day_in_beijing() {
        let day = WindowSpec::tumbling("24h", 24 * HOUR);
        // 2026-11-25T16:30:00Z is 2026-11-26 00:30 in Beijing: the local day started at 16:00Z.
        let ts = 1_764_088_200_000;
        let start = day.starts_containing(ts, CST).next().unwrap();
        assert_eq!(start, 1_764_086_400_000, "2026-11-25T16:00:00Z");
        assert_eq!((start + CST) % (24 * HOUR), 0);
    }

    #[test]
    fn sliding_windows_overlap() {
        let spec = WindowSpec::sliding("24h/1h", 24 * HOUR, HOUR);
        let ts = 100 * HOUR + 5 * MINUTE;
        let starts: Vec<i64> = spec.starts_containing(ts, 0).collect();
        assert_eq!(starts.len(), 24);
        assert!(starts.iter().all(|s| *s <= ts && ts < s + 24 * HOUR));
        assert_eq!(starts[0], 100 * HOUR);
        assert_eq!(starts[23], 77 * HOUR);
    }
}
