//! Reads a compacted changelog topic from the beginning and keeps the last value per key
//! (the broker may not have compacted it yet: tansu never does, ../shared/STACK.md).

use std::collections::HashMap;
use std::time::{Duration, Instant};

use crate::config::KafkaSettings;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::{Message, Offset, TopicPartitionList};

/// Stop when every partition reached its end and nothing arrived for this long (a broker's
/// high watermark can lag what it already serves).
const QUIET: Duration = Duration::from_millis(700);
/// The quiet period when the caller checks the result itself (checkpoints: any checkpoint
/// at or past the commit is a valid one, and an older one is detected and read again).
pub const QUIET_CHECKED: Duration = Duration::from_millis(100);
const LIMIT: Duration = Duration::from_secs(20);

/// The last value of every key in `topic`.
pub fn read_latest(kafka: &KafkaSettings, topic: &str) -> Result<HashMap<Vec<u8>, Vec<u8>>, KafkaError> {
    read_latest_within(kafka, topic, QUIET)
}

/// `read_latest` with another quiet period.
pub fn read_latest_within(kafka: &KafkaSettings, topic: &str, quiet: Duration) -> Result<HashMap<Vec<u8>, Vec<u8>>, KafkaError> {
    // The stage's own consumer settings (connection, fetch), in a group of its own that
    // never commits.
    let consumer: BaseConsumer = super::kafka::consumer_config(kafka, "citysense-changelog-reader").create()?;
    let metadata = consumer.fetch_metadata(Some(topic), Duration::from_secs(10))?;
    let partitions: Vec<i32> = metadata.topics().first().map(|t| t.partitions().iter().map(|p| p.id()).collect()).unwrap_or_default();
    let mut list = TopicPartitionList::new();
    let mut ends = HashMap::new();
    for p in &partitions {
        list.add_partition_offset(topic, *p, Offset::Beginning)?;
        let (_, high) = consumer.fetch_watermarks(topic, *p, Duration::from_secs(10))?;
        ends.insert(*p, high);
    }
    consumer.assign(&list)?;
    let mut latest = HashMap::new();
    let mut positions: HashMap<i32, i64> = HashMap::new();
    let (started, mut last_message) = (Instant::now(), Instant::now());
    while started.elapsed() < LIMIT {
        match consumer.poll(Duration::from_millis(100)) {
            Some(Ok(m)) => {
                last_message = Instant::now();
                positions.insert(m.partition(), m.offset() + 1);
                if let Some(key) = m.key() {
                    match m.payload() {
                        Some(value) => latest.insert(key.to_vec(), value.to_vec()),
                        None => latest.remove(key),
                    };
                }
            }
            Some(Err(err)) => return Err(err),
            None => {
                let at_end = ends.iter().all(|(p, high)| positions.get(p).copied().unwrap_or(0) >= *high);
                if at_end && last_message.elapsed() >= quiet {
                    break;
                }
            }
        }
    }
    Ok(latest)
}
