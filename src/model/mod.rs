//! Domain types shared by every stage: kinds of feed, normalised readings, pile status,
//! areas and window results. No I/O, no parsing of wire formats.

mod alert_event;
mod kind;
mod pile_status;
mod reading;
mod window_result;

pub use alert_event::{rfc3339, AlertEvent};
pub use kind::Kind;
pub use pile_status::PileStatus;
pub use reading::{Area, AreaRef, Observation, Reading};
pub use window_result::{DomainValues, LevelValues, PileValues, WindowResult, WindowValues};
