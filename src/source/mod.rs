//! Input: the only module that owns a Kafka consumer.

pub mod kafka;
