//! Input: the only module that owns Kafka consumers (`kafka` for the feeds, `aggregates` for
//! the area stage).

pub mod aggregates;
pub mod changelog;
pub mod kafka;
