//! The Kafka consumer: subscribes to the enabled input topics in one consumer group, never
//! auto-commits (the pipeline commits what `pipeline::offsets` says is safe), and reports
//! revoked partitions so their state can be dropped.

use std::collections::HashMap;
use std::sync::Mutex;

use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext, Rebalance, StreamConsumer};
use rdkafka::error::KafkaError;
use rdkafka::{ClientContext, Offset, TopicPartitionList};

use crate::config::{KafkaSettings, TopicInput};
use crate::pipeline::core::SourcePartition;

/// Collects partitions revoked by rebalances for the pipeline loop to drop.
#[derive(Default)]
pub struct RebalanceLog {
    revoked: Mutex<Vec<(String, i32)>>,
    assigned: Mutex<Vec<(String, i32)>>,
    /// Consumer lag per (topic, partition), from librdkafka's statistics.
    lag: Mutex<std::collections::BTreeMap<(String, i32), i64>>,
}

impl ClientContext for RebalanceLog {
    fn stats(&self, statistics: rdkafka::Statistics) {
        let mut lag = self.lag.lock().unwrap_or_else(|e| e.into_inner());
        lag.clear();
        for (topic, t) in &statistics.topics {
            for (partition, p) in &t.partitions {
                // -1: not consumed here (or not known yet); the internal "-1" partition too.
                if *partition >= 0 && p.consumer_lag >= 0 {
                    lag.insert((topic.clone(), *partition), p.consumer_lag);
                }
            }
        }
    }
}

impl ConsumerContext for RebalanceLog {
    fn pre_rebalance(&self, _: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        match rebalance {
            Rebalance::Revoke(list) => {
                let mut revoked = self.revoked.lock().unwrap_or_else(|e| e.into_inner());
                for elem in list.elements() {
                    revoked.push((elem.topic().to_owned(), elem.partition()));
                }
                tracing::info!(partitions = list.count(), "Partitions revoked");
            }
            Rebalance::Assign(list) => {
                let mut assigned = self.assigned.lock().unwrap_or_else(|e| e.into_inner());
                for elem in list.elements() {
                    assigned.push((elem.topic().to_owned(), elem.partition()));
                }
                tracing::info!(partitions = list.count(), "Partitions assigned");
            }
            Rebalance::Error(err) => tracing::warn!(error = %err, "Rebalance error"),
        }
    }
}

pub struct KafkaSource {
    consumer: StreamConsumer<RebalanceLog>,
    /// At most one topic per kind: found by comparing names (or kinds), cheaper than hashing
    /// one per record.
    topics: Vec<TopicInput>,
}

/// `bootstrap.servers` and the connection settings of `[kafka.properties]` (`security.*`,
/// `sasl.*`, `ssl.*`): what every client of the cluster needs, producers and changelog
/// readers alike. Consumers take every property (`consumer_config`).
pub fn connection_config(settings: &KafkaSettings) -> ClientConfig {
    let mut config = ClientConfig::new();
    config.set("bootstrap.servers", &settings.brokers);
    for (key, value) in settings.properties.iter().filter(|(key, _)| ["security.", "sasl.", "ssl."].iter().any(|p| key.starts_with(p))) {
        config.set(key, value);
    }
    config
}

/// A consumer in `group` that never auto-commits (the pipeline commits what is safe) and
/// starts from the beginning of a partition with no commit; plus the passthrough properties,
/// except `statistics.interval.ms`: only stage 1's consumer uses statistics (`KafkaSource`),
/// and any other client would hand them to rdkafka's default handler, which logs all of
/// them (~15 kB) at every interval.
pub fn consumer_config(settings: &KafkaSettings, group: &str) -> ClientConfig {
    let mut config = ClientConfig::new();
    config
        .set("bootstrap.servers", &settings.brokers)
        .set("group.id", group)
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false")
        .set("auto.offset.reset", "earliest")
        .set("enable.partition.eof", "false")
        // A broker that holds a fetch until the wait runs out (tansu does) adds that wait to
        // every record: at 100 ms stage 1 read records ~200 ms after they were produced, at
        // 10 ms ~25 ms (alert latency bench, BENCHMARKS.md). Real Kafka answers as soon as
        // data is in, so this only bounds how long an idle consumer's fetch is held.
        .set("fetch.wait.max.ms", "10")
        // Once a partition's local queue passes librdkafka's thresholds (queued.min.messages,
        // queued.max.messages.kbytes), its next fetch waits this long; the default 1 s left
        // a consumer reading a backlog idle for ~0.4 s of every ~1.4 s once it had drained
        // its queue (a CPU timeline of the end-to-end bench, BENCHMARKS.md).
        .set("fetch.queue.backoff.ms", "10");
    for (key, value) in settings.properties.iter().filter(|(key, _)| key != STATISTICS_INTERVAL) {
        config.set(key, value);
    }
    config
}

const STATISTICS_INTERVAL: &str = "statistics.interval.ms";

/// Stage 1's consumer: `consumer_config` plus librdkafka's statistics, where consumer lag
/// for `/metrics` comes from (`RebalanceLog::stats`), every 5 s unless the config says
/// otherwise.
fn source_config(settings: &KafkaSettings) -> ClientConfig {
    let mut config = consumer_config(settings, &settings.group_id);
    let interval = settings.properties.iter().find(|(key, _)| key == STATISTICS_INTERVAL).map_or("5000", |(_, value)| value);
    config.set(STATISTICS_INTERVAL, interval);
    config
}

impl KafkaSource {
    pub fn new(settings: &KafkaSettings, inputs: &[TopicInput]) -> Result<Self, KafkaError> {
        let config = source_config(settings);
        let consumer: StreamConsumer<RebalanceLog> = config.create_with_context(RebalanceLog::default())?;
        let names: Vec<&str> = inputs.iter().map(|t| t.name.as_str()).collect();
        consumer.subscribe(&names)?;
        Ok(KafkaSource { consumer, topics: inputs.to_vec() })
    }

    pub fn consumer(&self) -> &StreamConsumer<RebalanceLog> {
        &self.consumer
    }

    /// The input topic config of a consumed topic name.
    pub fn input(&self, topic: &str) -> Option<&TopicInput> {
        self.topics.iter().find(|t| t.name == topic)
    }

    pub fn topic_name(&self, source: SourcePartition) -> &str {
        self.topics.iter().find(|t| t.kind == source.kind).map_or("", |t| t.name.as_str())
    }

    /// "topic/partition": how the aggregates topic names an input partition, in window
    /// records and watermark markers alike.
    pub fn source_name(&self, source: SourcePartition) -> String {
        format!("{}/{}", self.topic_name(source), source.partition)
    }

    /// Consumer lag per (topic, partition) as of librdkafka's last statistics.
    pub fn lag(&self) -> Vec<((String, i32), i64)> {
        self.consumer.context().lag.lock().unwrap_or_else(|e| e.into_inner()).iter().map(|(k, v)| (k.clone(), *v)).collect()
    }

    /// Partitions revoked since the last call.
    pub fn take_revoked(&self) -> Vec<SourcePartition> {
        let mut revoked = self.consumer.context().revoked.lock().unwrap_or_else(|e| e.into_inner());
        revoked.drain(..).filter_map(|(topic, partition)| self.input(&topic).map(|t| SourcePartition { kind: t.kind, partition })).collect()
    }

    /// Partitions assigned since the last call.
    pub fn take_assigned(&self) -> Vec<SourcePartition> {
        let mut assigned = self.consumer.context().assigned.lock().unwrap_or_else(|e| e.into_inner());
        assigned
            .drain(..)
            .filter_map(|(topic, partition)| self.input(&topic).map(|t| SourcePartition { kind: t.kind, partition }))
            .collect()
    }

    /// The group's committed offsets of `partitions` (absent: none committed).
    pub fn committed(&self, partitions: &[SourcePartition]) -> Result<HashMap<SourcePartition, i64>, KafkaError> {
        let mut list = TopicPartitionList::new();
        for p in partitions {
            list.add_partition(self.topic_name(*p), p.partition);
        }
        let committed = self.consumer.committed_offsets(list, std::time::Duration::from_secs(10))?;
        Ok(partitions
            .iter()
            .filter_map(|p| match committed.find_partition(self.topic_name(*p), p.partition)?.offset() {
                Offset::Offset(o) => Some((*p, o)),
                _ => None,
            })
            .collect())
    }

    /// Reads `partition` again from its first record.
    pub fn seek_to_beginning(&self, partition: SourcePartition) -> Result<(), KafkaError> {
        self.consumer.seek(self.topic_name(partition), partition.partition, Offset::Beginning, std::time::Duration::from_secs(10))
    }

    /// Commits the given next-offsets. Rebalance-in-progress and no-offset are expected
    /// transient answers: the caller simply tries again at the next interval.
    pub fn commit(&self, offsets: &[(SourcePartition, i64)], mode: CommitMode) -> Result<(), KafkaError> {
        let mut list = TopicPartitionList::new();
        for (source, offset) in offsets {
            list.add_partition_offset(self.topic_name(*source), source.partition, Offset::Offset(*offset))?;
        }
        self.consumer.commit(&list, mode)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_client_gets_the_connection_settings_and_only_consumers_the_rest() {
        let settings = KafkaSettings {
            brokers: "b:9093".into(),
            group_id: "g".into(),
            properties: vec![
                ("security.protocol".into(), "SASL_SSL".into()),
                ("sasl.mechanism".into(), "PLAIN".into()),
                ("ssl.ca.location".into(), "/ca.pem".into()),
                ("fetch.min.bytes".into(), "1".into()),
            ],
        };
        let producer = connection_config(&settings);
        let consumer = consumer_config(&settings, "g");
        for config in [&producer, &consumer] {
            assert_eq!(config.get("bootstrap.servers"), Some("b:9093"));
            assert_eq!(config.get("security.protocol"), Some("SASL_SSL"));
            assert_eq!(config.get("sasl.mechanism"), Some("PLAIN"));
            assert_eq!(config.get("ssl.ca.location"), Some("/ca.pem"));
        }
        assert_eq!(producer.get("fetch.min.bytes"), None);
        assert_eq!(consumer.get("fetch.min.bytes"), Some("1"));
        assert_eq!(consumer.get("fetch.queue.backoff.ms"), Some("10"));
    }

    #[test]
    fn statistics_reach_stage_one_only_and_other_properties_pass_through() {
        let properties = vec![("statistics.interval.ms".to_owned(), "1000".to_owned()), ("client.rack".to_owned(), "r1".to_owned())];
        let settings = KafkaSettings { brokers: "127.0.0.1:1".to_owned(), group_id: "g".to_owned(), properties };
        let config = consumer_config(&settings, "g");
        assert_eq!(config.get("statistics.interval.ms"), None, "a consumer without a statistics handler gets none");
        assert_eq!(config.get("client.rack"), Some("r1"));
        assert_eq!(config.get("fetch.wait.max.ms"), Some("10"));
        assert_eq!(source_config(&settings).get("statistics.interval.ms"), Some("1000"), "stage 1 takes the configured interval");
        let defaults = KafkaSettings { properties: Vec::new(), ..settings };
        assert_eq!(source_config(&defaults).get("statistics.interval.ms"), Some("5000"));
    }
}
