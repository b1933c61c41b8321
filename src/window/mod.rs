//! Event time: which windows a timestamp falls in (`spec`), how far event time has
//! progressed in a partition (`watermark`), and the open windows of one input partition
//! with duplicate, lateness and cardinality checks (`partition`). Synchronous, no clocks:
//! wall time comes in as an argument.

pub mod partition;
mod schedule;
pub mod spec;
pub mod watermark;

pub use partition::{
    LatePolicy, PartitionWindows, SensorBudget, SensorSlot, WindowTiming, STATE_FORMAT, STATE_FORMAT_PER_SLIDE, STATE_FORMAT_UNSHARED,
};
pub use spec::WindowSpec;
pub use watermark::Watermark;
