//! The area stage: per-sensor window results, re-keyed by district through the aggregates
//! topic, merged into grid → street → district roll-ups (SPEC §3). Synchronous and
//! deterministic; `pipeline::areas` is its async shell.
//!
//! Completeness comes from watermark markers. Every stage-1 instance publishes, after the
//! window results of an input partition, a marker saying "all windows of this source that
//! close at or before W are published" to every aggregates partition. An area window is
//! emitted once every source of its kind has passed its end plus the allowed lateness, so
//! the roll-up is the same whether one instance or many produced its inputs, and in
//! whatever order their records interleave.

mod area;
mod catalog;
pub mod encoding;
pub mod message;

pub use area::{AreaEmit, AreaPartition, AreaSettings};
pub use catalog::AreaCatalog;
pub use message::{AggregateMessage, AreaLevel, AreaResult, PeerDeviation, SensorWindow, SensorWindowRef, WindowsMessageRef};
