//! Writes checkpoints to the compacted checkpoint changelog: every chunk, then, once all
//! are acknowledged, the header that makes them the partition's current checkpoint
//! (`pipeline::checkpoint` owns the record layout).

use std::time::Duration;

use crate::config::KafkaSettings;
use crate::source::kafka::connection_config;
use futures::future::try_join_all;
use rdkafka::error::KafkaError;
use rdkafka::producer::{FutureProducer, FutureRecord, Producer};

use crate::pipeline::checkpoint;
use crate::pipeline::core::PartitionCheckpoint;

/// How long one record may wait in the producer queue before the write counts as failed.
const QUEUE_TIMEOUT: Duration = Duration::from_secs(30);

#[derive(Clone)]
pub struct CheckpointWriter {
    producer: FutureProducer,
    topic: String,
}

impl CheckpointWriter {
    pub fn new(kafka: &KafkaSettings, topic: &str) -> Result<Self, KafkaError> {
        let mut config = connection_config(kafka);
        config.set("linger.ms", "5").set("message.max.bytes", "1048576");
        let producer: FutureProducer = config.create()?;
        // Fail at start, not at the first checkpoint, when the topic does not exist.
        let metadata = producer.client().fetch_metadata(Some(topic), Duration::from_secs(10))?;
        if metadata.topics().first().is_none_or(|t| t.partitions().is_empty()) {
            return Err(KafkaError::MetadataFetch(rdkafka::types::RDKafkaErrorCode::UnknownTopicOrPartition));
        }
        Ok(CheckpointWriter { producer, topic: topic.to_owned() })
    }

    /// Writes the checkpoint of `source_topic`/`partition`; `Ok` once the header is
    /// acknowledged. Returns the bytes written.
    pub async fn write(&self, source_topic: &str, partition: i32, state: &PartitionCheckpoint) -> Result<usize, KafkaError> {
        let mut records = checkpoint::encode(source_topic, partition, state, rand::random());
        let bytes = records.iter().map(|(_, v)| v.len()).sum();
        let Some((header_key, header)) = records.pop() else { return Ok(0) };
        try_join_all(records.iter().map(|(key, value)| self.send(key, value))).await?;
        self.send(&header_key, &header).await?;
        Ok(bytes)
    }

    async fn send(&self, key: &str, value: &[u8]) -> Result<(), KafkaError> {
        let record = FutureRecord::to(&self.topic).key(key).payload(value);
        self.producer.send(record, QUEUE_TIMEOUT).await.map(|_| ()).map_err(|(err, _)| err)
    }
}
