//! The area stage's consumer of the aggregates topic. Commits carry the source watermarks
//! as of the committed offset in their metadata, so a restarted area stage knows which
//! area windows were already emitted before it replays what came after.

use std::sync::Mutex;
use std::time::Duration;

use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext, Rebalance, StreamConsumer};
use rdkafka::error::KafkaError;
use rdkafka::{ClientContext, Offset, TopicPartitionList};

use crate::config::KafkaSettings;

#[derive(Default)]
pub struct AreaRebalanceLog {
    revoked: Mutex<Vec<i32>>,
}

impl ClientContext for AreaRebalanceLog {}

impl ConsumerContext for AreaRebalanceLog {
    fn pre_rebalance(&self, _: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if let Rebalance::Revoke(list) = rebalance {
            self.revoked.lock().unwrap_or_else(|e| e.into_inner()).extend(list.elements().iter().map(|e| e.partition()));
        }
    }
}

pub struct AggregatesSource {
    consumer: StreamConsumer<AreaRebalanceLog>,
    topic: String,
}

impl AggregatesSource {
    pub fn new(settings: &KafkaSettings, group_id: &str, topic: &str) -> Result<Self, KafkaError> {
        let config = super::kafka::consumer_config(settings, group_id);
        let consumer: StreamConsumer<AreaRebalanceLog> = config.create_with_context(AreaRebalanceLog::default())?;
        consumer.subscribe(&[topic])?;
        Ok(AggregatesSource { consumer, topic: topic.to_owned() })
    }

    pub fn consumer(&self) -> &StreamConsumer<AreaRebalanceLog> {
        &self.consumer
    }

    /// Number of partitions of any topic (the input topics: sources per kind).
    pub fn partitions_of(&self, topic: &str) -> Result<usize, KafkaError> {
        let metadata = self.consumer.fetch_metadata(Some(topic), Duration::from_secs(10))?;
        Ok(metadata.topics().first().map_or(0, |t| t.partitions().len()))
    }

    /// The metadata committed with the group's offset of `partition`, if any.
    pub fn committed_metadata(&self, partition: i32) -> Option<String> {
        let mut list = TopicPartitionList::new();
        list.add_partition(&self.topic, partition);
        let committed = self.consumer.committed_offsets(list, Duration::from_secs(5)).ok()?;
        let elem = committed.find_partition(&self.topic, partition)?;
        let metadata = elem.metadata();
        (!metadata.is_empty()).then(|| metadata.to_owned())
    }

    pub fn take_revoked(&self) -> Vec<i32> {
        std::mem::take(&mut *self.consumer.context().revoked.lock().unwrap_or_else(|e| e.into_inner()))
    }

    /// Commits (partition, next offset, metadata) triples.
    pub fn commit(&self, offsets: &[(i32, i64, String)], mode: CommitMode) -> Result<(), KafkaError> {
        let mut list = TopicPartitionList::new();
        for (partition, offset, metadata) in offsets {
            let mut elem = list.add_partition(&self.topic, *partition);
            elem.set_offset(Offset::Offset(*offset))?;
            elem.set_metadata(metadata.as_str());
        }
        self.consumer.commit(&list, mode)
    }
}
