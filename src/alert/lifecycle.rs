//! One alert's lifecycle: pending (`for`) → firing (with a severity; escalation and
//! de-escalation are changes) → acknowledged → resolved, with flapping detection that holds
//! a flapping alert firing until it settles. Evaluations at or before the last evaluated
//! event time are ignored, so replaying windows after a restart emits nothing twice.

use std::collections::VecDeque;

use crate::model::Area;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Info,
    Warning,
    Critical,
    Emergency,
}

impl Severity {
    pub const ALL: [Severity; 4] = [Severity::Info, Severity::Warning, Severity::Critical, Severity::Emergency];

    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Info => "info",
            Severity::Warning => "warning",
            Severity::Critical => "critical",
            Severity::Emergency => "emergency",
        }
    }

    pub fn chinese(self) -> &'static str {
        match self {
            Severity::Info => "提示",
            Severity::Warning => "预警",
            Severity::Critical => "严重",
            Severity::Emergency => "紧急",
        }
    }
}

/// The status an alert event announces.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AlertStatus {
    Firing,
    Acknowledged,
    Flapping,
    Resolved,
}

impl AlertStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            AlertStatus::Firing => "firing",
            AlertStatus::Acknowledged => "acknowledged",
            AlertStatus::Flapping => "flapping",
            AlertStatus::Resolved => "resolved",
        }
    }
}

/// When an alert counts as flapping: more than `max_transitions` fire/resolve transitions
/// within `period_ms`; it settles after `period_ms` without a raw change.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FlapPolicy {
    pub max_transitions: usize,
    pub period_ms: i64,
}

impl Default for FlapPolicy {
    fn default() -> Self {
        FlapPolicy { max_transitions: 4, period_ms: 3_600_000 }
    }
}

/// What changed in one evaluation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    Fired,
    Escalated,
    Deescalated,
    StartedFlapping,
    Resolved,
}

#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Acknowledgement {
    pub by: String,
    pub comment: String,
    pub at_ms: i64,
}

/// The persistent state of one alert (one fingerprint); what the changelog stores.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct AlertState {
    pub fingerprint: String,
    pub rule: String,
    pub scope: String,
    pub scope_key: String,
    pub area: Area,
    pub window: String,
    /// The severity while firing.
    pub firing: Option<Severity>,
    pub flapping: bool,
    pub acknowledged: Option<Acknowledgement>,
    pub starts_at_ms: Option<i64>,
    pub ends_at_ms: Option<i64>,
    /// Hysteresis: which threshold levels are active.
    pub active_levels: u8,
    /// Consecutive evaluations with the condition true while not yet firing (`for`).
    pub pending: u32,
    /// Event time of the last evaluation: older evaluations (replays) are ignored.
    pub last_eval_ms: i64,
    /// Whether the raw condition held at the last evaluation, and since when it is so.
    pub raw_active: bool,
    pub raw_since_ms: i64,
    /// Event times of recent fire/resolve transitions.
    pub transitions: VecDeque<i64>,
    pub value: f64,
    pub threshold: f64,
}

impl AlertState {
    pub fn new(fingerprint: String, rule: &str, scope: &str, scope_key: &str, area: Area, window: &str) -> Self {
        AlertState {
            fingerprint,
            rule: rule.to_owned(),
            scope: scope.to_owned(),
            scope_key: scope_key.to_owned(),
            area,
            window: window.to_owned(),
            firing: None,
            flapping: false,
            acknowledged: None,
            starts_at_ms: None,
            ends_at_ms: None,
            active_levels: 0,
            pending: 0,
            last_eval_ms: i64::MIN,
            raw_active: false,
            raw_since_ms: i64::MIN,
            transitions: VecDeque::new(),
            value: f64::NAN,
            threshold: f64::NAN,
        }
    }

    pub fn status(&self) -> AlertStatus {
        match (self.firing, self.flapping, &self.acknowledged) {
            (None, _, _) => AlertStatus::Resolved,
            (Some(_), true, _) => AlertStatus::Flapping,
            (Some(_), false, Some(_)) => AlertStatus::Acknowledged,
            (Some(_), false, None) => AlertStatus::Firing,
        }
    }

    /// Applies one evaluation: `desired` is the severity the condition asks for now (None:
    /// clear). `event_time` evaluations at or before the last one are ignored.
    pub fn evaluate(
        &mut self,
        desired: Option<Severity>,
        at_ms: i64,
        event_time: bool,
        for_windows: u32,
        flap: FlapPolicy,
    ) -> Option<Change> {
        if event_time && at_ms <= self.last_eval_ms {
            return None;
        }
        self.last_eval_ms = self.last_eval_ms.max(at_ms);
        if desired.is_some() != self.raw_active {
            self.raw_active = desired.is_some();
            self.raw_since_ms = at_ms;
        }
        match (self.firing, desired) {
            (None, Some(severity)) => {
                self.pending += 1;
                if self.pending < for_windows {
                    return None;
                }
                self.pending = 0;
                self.firing = Some(severity);
                self.starts_at_ms = Some(at_ms);
                self.ends_at_ms = None;
                self.acknowledged = None;
                Some(self.transition(at_ms, flap).unwrap_or(Change::Fired))
            }
            (Some(current), Some(severity)) if severity != current => {
                self.firing = Some(severity);
                Some(if severity > current { Change::Escalated } else { Change::Deescalated })
            }
            (Some(_), Some(_)) => None,
            (None, None) => {
                self.pending = 0;
                None
            }
            (Some(_), None) => {
                self.pending = 0;
                if self.flapping && at_ms - self.raw_since_ms < flap.period_ms {
                    return None; // Held firing until it settles.
                }
                self.flapping = false;
                self.firing = None;
                self.ends_at_ms = Some(at_ms);
                // Who acknowledged it stays on the resolved alert (history); a new firing clears it.
                self.active_levels = 0;
                self.transition(at_ms, flap);
                Some(Change::Resolved)
            }
        }
    }

    /// Records a fire/resolve transition; `Some(StartedFlapping)` when it tips into flapping.
    fn transition(&mut self, at_ms: i64, flap: FlapPolicy) -> Option<Change> {
        self.transitions.push_back(at_ms);
        while self.transitions.front().is_some_and(|t| *t <= at_ms - flap.period_ms) {
            self.transitions.pop_front();
        }
        if !self.flapping && self.transitions.len() > flap.max_transitions {
            self.flapping = true;
            return Some(Change::StartedFlapping);
        }
        None
    }

    /// A settled flapping alert whose condition is clear resolves on a later evaluation;
    /// this lets the processing-time tick resolve it without new input.
    pub fn settled(&self, now_ms: i64, flap: FlapPolicy) -> bool {
        self.flapping && !self.raw_active && now_ms - self.raw_since_ms >= flap.period_ms
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state() -> AlertState {
        AlertState::new("f".into(), "r", "sensor", "s1", Area::default(), "1h")
    }

    #[test]
    fn fires_once_escalates_and_resolves_once() {
        let (mut s, flap) = (state(), FlapPolicy::default());
        assert_eq!(s.evaluate(Some(Severity::Warning), 1, true, 1, flap), Some(Change::Fired));
        assert_eq!(s.evaluate(Some(Severity::Warning), 2, true, 1, flap), None, "no re-send while unchanged");
        assert_eq!(s.evaluate(Some(Severity::Critical), 3, true, 1, flap), Some(Change::Escalated));
        assert_eq!(s.evaluate(Some(Severity::Warning), 4, true, 1, flap), Some(Change::Deescalated));
        assert_eq!(s.evaluate(None, 5, true, 1, flap), Some(Change::Resolved));
        assert_eq!((s.starts_at_ms, s.ends_at_ms), (Some(1), Some(5)));
        assert_eq!(s.evaluate(None, 6, true, 1, flap), None);
    }

    #[test]
    fn a_resolved_alert_keeps_its_acknowledgement_until_it_fires_again() {
        let (mut s, flap) = (state(), FlapPolicy::default());
        s.evaluate(Some(Severity::Warning), 1, true, 1, flap);
        s.acknowledged = Some(Acknowledgement { by: "duty officer".into(), comment: String::new(), at_ms: 2 });
        assert_eq!(s.status(), AlertStatus::Acknowledged);
        assert_eq!(s.evaluate(None, 3, true, 1, flap), Some(Change::Resolved));
        assert_eq!(s.status(), AlertStatus::Resolved);
        assert_eq!(s.acknowledged.as_ref().map(|a| a.by.as_str()), Some("duty officer"), "the resolved alert says who acknowledged it");
        assert_eq!(s.evaluate(Some(Severity::Warning), 4, true, 1, flap), Some(Change::Fired));
        assert!(s.acknowledged.is_none(), "a new firing is not acknowledged");
    }

    #[test]
    fn for_needs_consecutive_windows_and_replays_are_ignored() {
        let (mut s, flap) = (state(), FlapPolicy::default());
        assert_eq!(s.evaluate(Some(Severity::Warning), 10, true, 3, flap), None);
        assert_eq!(s.evaluate(None, 20, true, 3, flap), None, "the run is broken");
        assert_eq!(s.evaluate(Some(Severity::Warning), 30, true, 3, flap), None);
        assert_eq!(s.evaluate(Some(Severity::Warning), 40, true, 3, flap), None);
        assert_eq!(s.evaluate(Some(Severity::Warning), 50, true, 3, flap), Some(Change::Fired));
        assert_eq!(s.evaluate(None, 40, true, 3, flap), None, "a replayed older window changes nothing");
        assert_eq!(s.firing, Some(Severity::Warning));
    }

    #[test]
    fn flapping_is_held_firing_until_it_settles() {
        let flap = FlapPolicy { max_transitions: 4, period_ms: 100 };
        let mut s = state();
        let mut changes = Vec::new();
        for t in 1..=6 {
            let desired = (t % 2 == 1).then_some(Severity::Warning);
            changes.push(s.evaluate(desired, t, true, 1, flap));
        }
        assert_eq!(changes[..4], [Some(Change::Fired), Some(Change::Resolved), Some(Change::Fired), Some(Change::Resolved)]);
        assert_eq!(changes[4], Some(Change::StartedFlapping));
        assert_eq!(changes[5], None, "held firing");
        assert_eq!(s.status(), AlertStatus::Flapping);
        assert!(!s.settled(50, flap));
        assert_eq!(s.evaluate(None, 200, true, 1, flap), Some(Change::Resolved), "settled: no raw change for a period");
        assert!(!s.flapping);
    }
}
