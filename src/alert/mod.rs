//! Alerts (SPEC §4): rules from TOML (`rules`), fingerprints and deterministic event ids
//! (`fingerprint`), the per-alert lifecycle with hysteresis, `for`, flapping and
//! acknowledgement (`lifecycle`), and the engine that evaluates closed windows, area
//! roll-ups and a processing-time deadman timer (`engine`). Synchronous and deterministic:
//! wall time comes in as an argument.

pub mod engine;
pub mod fingerprint;
pub mod lifecycle;
pub mod rules;

pub use engine::{AckError, AlertEngine, AlertInput};
pub use lifecycle::{AlertState, AlertStatus, FlapPolicy, Severity};
pub use rules::{Rule, RuleError, RuleKind, Scope};

pub use crate::model::AlertEvent;
