//! The event-time watermark of one input partition: the largest event time seen minus the
//! allowed out-of-orderness (SPEC §3). Records stamped in the future never reach it:
//! validation dead-letters them first, so one bad clock cannot drag it forward.

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Watermark {
    out_of_orderness_ms: i64,
    max_event_ms: Option<i64>,
    /// Set when an idle partition is carried along by its peers.
    floor_ms: Option<i64>,
}

impl Watermark {
    pub fn new(out_of_orderness_ms: i64) -> Self {
        Watermark { out_of_orderness_ms, max_event_ms: None, floor_ms: None }
    }

    pub fn observe(&mut self, ts_ms: i64) {
        self.max_event_ms = Some(self.max_event_ms.map_or(ts_ms, |m| m.max(ts_ms)));
    }

    /// Lets an idle partition's watermark follow event time elsewhere (never backwards).
    pub fn advance_to(&mut self, watermark_ms: i64) {
        self.floor_ms = Some(self.floor_ms.map_or(watermark_ms, |f| f.max(watermark_ms)));
    }

    /// The current watermark, `i64::MIN` before any record.
    pub fn current(&self) -> i64 {
        let from_events = self.max_event_ms.map_or(i64::MIN, |m| m - self.out_of_orderness_ms);
        from_events.max(self.floor_ms.unwrap_or(i64::MIN))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn follows_the_largest_event_time_minus_the_bound() {
        let mut wm = Watermark::new(30_000);
        assert_eq!(wm.current(), i64::MIN);
        wm.observe(100_000);
        wm.observe(90_000);
        assert_eq!(wm.current(), 70_000);
        wm.advance_to(50_000);
        assert_eq!(wm.current(), 70_000, "never moves backwards");
        wm.advance_to(200_000);
        assert_eq!(wm.current(), 200_000);
    }
}
