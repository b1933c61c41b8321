//! Per-window accumulators: what one (sensor, window) keeps while open and what it
//! reports when it closes. Synchronous and deterministic; the result does not depend on
//! the order records arrived in (first/last are by event time).

mod pile;
pub mod sketch;
mod stats;

pub use pile::PileStats;
pub use stats::LevelStats;

use crate::model::{Observation, WindowValues};

/// One reading as the accumulators take it: what it enters every window with is computed
/// once (its quantile bin), not once per window spec.
#[derive(Debug, Clone, Copy)]
pub struct Sample {
    pub ts_ms: i64,
    pub observation: Observation,
    bin: sketch::SketchBin,
}

impl Sample {
    pub fn new(ts_ms: i64, observation: Observation) -> Self {
        let level = match observation {
            Observation::Level(value) => value,
            Observation::Pile { .. } => 0.0,
        };
        Sample { ts_ms, observation, bin: sketch::bin_of(level) }
    }
}

/// The open state of one (sensor, window).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub enum Accumulator {
    Level(LevelStats),
    Pile(PileStats),
}

impl Accumulator {
    pub fn for_observation(observation: &Observation) -> Self {
        match observation {
            Observation::Level(_) => Accumulator::Level(LevelStats::default()),
            Observation::Pile { .. } => Accumulator::Pile(PileStats::default()),
        }
    }

    pub fn add(&mut self, sample: &Sample) {
        match (self, &sample.observation) {
            (Accumulator::Level(stats), Observation::Level(value)) => stats.add_binned(sample.ts_ms, *value, sample.bin),
            (Accumulator::Pile(stats), Observation::Pile { status, power_kw }) => stats.add(sample.ts_ms, *status, *power_kw),
            // A sensor id is bound to one topic and so one kind; the window stage keys by
            // topic partition, so a mismatch cannot reach here. Ignore rather than panic.
            _ => debug_assert!(false, "observation kind does not match its accumulator"),
        }
    }

    /// Adds another accumulator's samples (a later pane of the same window).
    pub fn merge(&mut self, other: &Accumulator) {
        match (self, other) {
            (Accumulator::Level(a), Accumulator::Level(b)) => a.merge(b),
            (Accumulator::Pile(a), Accumulator::Pile(b)) => a.merge(b),
            _ => debug_assert!(false, "panes of one window share a kind"),
        }
    }

    /// The window's aggregates; `end_ms` bounds the time in the last pile status.
    pub fn finish(&self, end_ms: i64) -> WindowValues {
        match self {
            Accumulator::Level(stats) => WindowValues::Level(stats.values()),
            Accumulator::Pile(stats) => WindowValues::Pile(stats.values(end_ms)),
        }
    }
}
