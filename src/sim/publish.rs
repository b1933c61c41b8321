//! Publishes simulated (or replayed) records to Kafka: the vendor side of the demo, of
//! `citysense simulate` and of the tests.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use rdkafka::config::ClientConfig;
use rdkafka::error::KafkaError;
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{BaseRecord, DeliveryResult, Producer, ProducerContext, ThreadedProducer};
use rdkafka::ClientContext;

use super::SimRecord;
use crate::model::Kind;

/// Counts deliveries and failures.
#[derive(Default)]
pub struct DeliveryCount {
    pub delivered: AtomicU64,
    pub failed: AtomicU64,
}

impl ClientContext for DeliveryCount {}

impl ProducerContext for DeliveryCount {
    type DeliveryOpaque = ();

    fn delivery(&self, result: &DeliveryResult<'_>, _: ()) {
        match result {
            Ok(_) => self.delivered.fetch_add(1, Ordering::Relaxed),
            Err(_) => self.failed.fetch_add(1, Ordering::Relaxed),
        };
    }
}

/// A producer of sensor records, one topic per kind.
pub struct RecordPublisher {
    producer: ThreadedProducer<DeliveryCount>,
    topics: [String; 4],
}

impl RecordPublisher {
    pub fn new(brokers: &str, topics: [String; 4]) -> Result<Self, KafkaError> {
        let producer = ClientConfig::new()
            .set("bootstrap.servers", brokers)
            .set("linger.ms", "10")
            .set("batch.num.messages", "10000")
            .set("queue.buffering.max.messages", "500000")
            .set("compression.type", "none")
            .create_with_context(DeliveryCount::default())?;
        Ok(RecordPublisher { producer, topics })
    }

    pub fn default_topics() -> [String; 4] {
        ["city.pm25".into(), "city.dust".into(), "city.water".into(), "city.charging".into()]
    }

    pub fn topic(&self, kind: Kind) -> &str {
        &self.topics[kind.index()]
    }

    /// Queues one record (keyed by sensor id, with a content-type header); `partition`
    /// pins it, otherwise the key decides.
    pub fn send(&self, record: &SimRecord, partition: Option<i32>) -> Result<(), KafkaError> {
        let headers = OwnedHeaders::new().insert(Header { key: "content-type", value: Some(record.content_type) });
        let mut base =
            BaseRecord::to(&self.topics[record.kind.index()]).key(record.key.as_bytes()).payload(&record.payload).headers(headers);
        if let Some(p) = partition {
            base = base.partition(p);
        }
        self.send_raw(base)
    }

    /// Queues any record, waiting while the local queue is full.
    pub fn send_raw(&self, base: BaseRecord<'_, [u8], Vec<u8>>) -> Result<(), KafkaError> {
        crate::sink::send_waiting(&self.producer, base)
    }

    /// Waits until everything queued is delivered (or failed).
    pub fn flush(&self, timeout: Duration) -> Result<(), KafkaError> {
        self.producer.flush(timeout)
    }

    pub fn delivered(&self) -> u64 {
        self.producer.context().delivered.load(Ordering::Relaxed)
    }

    pub fn failed(&self) -> u64 {
        self.producer.context().failed.load(Ordering::Relaxed)
    }
}
