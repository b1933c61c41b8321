//! Stage 1's producer to the aggregates topic: each closed sensor window keyed by district
//! (so one partition holds every grid and street of a district), and watermark markers to
//! every partition. One producer, one in-flight request per connection: a marker never
//! overtakes the windows published before it. A window's input offset stays held until
//! the broker has it.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rdkafka::config::ClientConfig;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::producer::{BaseRecord, DeliveryResult, Producer, ProducerContext, ThreadedProducer};
use rdkafka::ClientContext;

use crate::model::Kind;
use crate::model::WindowResult;
use crate::pipeline::core::SourcePartition;
use crate::pipeline::offsets::OffsetTracker;
use crate::rollup::{AggregateMessage, SensorWindowRef, WindowMessageRef};

/// The input offset a published window holds; markers hold none.
type Hold = Option<(SourcePartition, i64)>;

pub struct AggregateAcks {
    offsets: Arc<Mutex<OffsetTracker>>,
    failed: AtomicU64,
    redelivery: super::Redelivery<Hold>,
}

impl ClientContext for AggregateAcks {}

impl ProducerContext for AggregateAcks {
    type DeliveryOpaque = Box<Hold>;

    fn delivery(&self, result: &DeliveryResult<'_>, held: Self::DeliveryOpaque) {
        match (result, *held) {
            (Ok(_), Some((source, offset))) => self.offsets.lock().unwrap_or_else(|e| e.into_inner()).release(source, offset),
            (Ok(_), None) => {}
            (Err((err, message)), held) => {
                self.failed.fetch_add(1, Ordering::Relaxed);
                self.redelivery.failed(message, held);
                tracing::error!(error = %err, "Aggregate not delivered; its input offset stays held");
            }
        }
    }
}

pub struct AggregatesSink {
    producer: ThreadedProducer<AggregateAcks>,
    topic: String,
    partitions: i32,
}

impl AggregatesSink {
    pub fn new(brokers: &str, extra: &[(String, String)], topic: &str, offsets: Arc<Mutex<OffsetTracker>>) -> Result<Self, KafkaError> {
        let mut config = ClientConfig::new();
        config.set("bootstrap.servers", brokers).set("linger.ms", "5").set("max.in.flight.requests.per.connection", "1");
        for (key, value) in extra.iter().filter(|(k, _)| k.starts_with("security.") || k.starts_with("sasl.") || k.starts_with("ssl.")) {
            config.set(key, value);
        }
        let producer: ThreadedProducer<AggregateAcks> =
            config.create_with_context(AggregateAcks { offsets, failed: AtomicU64::new(0), redelivery: Default::default() })?;
        let metadata = producer.client().fetch_metadata(Some(topic), Duration::from_secs(10))?;
        let partitions = metadata.topics().first().map_or(0, |t| t.partitions().len() as i32);
        if partitions == 0 {
            return Err(KafkaError::MetadataFetch(RDKafkaErrorCode::UnknownTopicOrPartition));
        }
        Ok(AggregatesSink { producer, topic: topic.to_owned(), partitions })
    }

    /// Publishes a closed window of `source` (whose offset `hold` is already held).
    pub fn send_window(&self, source_name: &str, window: &WindowResult, hold: (SourcePartition, i64)) {
        let message = WindowMessageRef { source: source_name, window: SensorWindowRef::of(window) };
        self.send(message.window.key(), None, &message, Some(hold));
    }

    /// Tells every aggregates partition how far `source` has published.
    pub fn send_watermark(&self, source_name: &str, kind: Kind, watermark_ms: i64) {
        let message = AggregateMessage::Watermark { source: source_name.to_owned(), kind, watermark_ms };
        for partition in 0..self.partitions {
            self.send(source_name, Some(partition), &message, None);
        }
    }

    fn send(&self, key: &str, partition: Option<i32>, message: &impl serde::Serialize, hold: Hold) {
        let payload = match serde_json::to_vec(message) {
            Ok(p) => p,
            Err(err) => {
                tracing::error!(error = %err, "Cannot encode an aggregate");
                return;
            }
        };
        let mut record: BaseRecord<'_, str, [u8], Box<Hold>> =
            BaseRecord::with_opaque_to(&self.topic, Box::new(hold)).key(key).payload(&payload);
        if let Some(p) = partition {
            record = record.partition(p);
        }
        if let Err(err) = super::send_waiting(&self.producer, record) {
            self.producer.context().failed.fetch_add(1, Ordering::Relaxed);
            tracing::error!(error = %err, "Aggregate could not be queued; its input offset stays held");
        }
    }

    /// Sends the windows and markers whose delivery failed again.
    pub fn resend_failed(&self) -> usize {
        self.producer.context().redelivery.resend(&self.producer)
    }

    pub fn flush(&self, timeout: Duration) {
        if let Err(err) = self.producer.flush(timeout) {
            tracing::warn!(error = %err, "Aggregates flush did not finish");
        }
    }
}
