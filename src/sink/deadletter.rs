//! The dead-letter producer: a rejected record goes to the dead-letter topic with its
//! original key and bytes and the headers `citysense-reason`, `citysense-detail` and
//! `citysense-source` (topic/partition/offset). Its input offset stays held until the
//! broker acknowledges the dead letter, so a crash cannot lose it.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rdkafka::config::ClientConfig;
use rdkafka::error::KafkaError;
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{BaseRecord, DeliveryResult, Producer, ProducerContext, ThreadedProducer};
use rdkafka::ClientContext;

use crate::decode::Rejection;
use crate::pipeline::core::SourcePartition;
use crate::pipeline::offsets::OffsetTracker;

pub const HEADER_REASON: &str = "citysense-reason";
pub const HEADER_DETAIL: &str = "citysense-detail";
pub const HEADER_SOURCE: &str = "citysense-source";
/// The reason header of a point InfluxDB refused (not an input rejection).
pub const SINK_REJECTED: &str = "sink_rejected";

/// The input offset a dead letter holds; none for points InfluxDB refused.
type Hold = Option<(SourcePartition, i64)>;

/// Releases the input offset once the broker has the dead letter.
pub struct DeliveryAcks {
    offsets: Arc<Mutex<OffsetTracker>>,
    pub failed: AtomicU64,
    redelivery: super::Redelivery<Hold>,
}

impl ClientContext for DeliveryAcks {}

impl ProducerContext for DeliveryAcks {
    type DeliveryOpaque = Box<Hold>;

    fn delivery(&self, result: &DeliveryResult<'_>, held: Self::DeliveryOpaque) {
        let Some(held) = *held else {
            if let Err((err, _)) = result {
                tracing::error!(error = %err, "Refused InfluxDB point not dead-lettered (it is in the error log)");
            }
            return;
        };
        match result {
            Ok(_) => self.offsets.lock().unwrap_or_else(|e| e.into_inner()).release(held.0, held.1),
            Err((err, message)) => {
                // The hold stays until the resend (`resend_failed`) is delivered.
                self.failed.fetch_add(1, Ordering::Relaxed);
                self.redelivery.failed(message, Some(held));
                tracing::error!(error = %err, partition = held.0.partition, offset = held.1, "Dead letter not delivered; offset held");
            }
        }
    }
}

pub struct DeadLetterSink {
    producer: ThreadedProducer<DeliveryAcks>,
    topic: String,
}

impl DeadLetterSink {
    pub fn new(brokers: &str, extra: &[(String, String)], topic: &str, offsets: Arc<Mutex<OffsetTracker>>) -> Result<Self, KafkaError> {
        let mut config = ClientConfig::new();
        config.set("bootstrap.servers", brokers).set("linger.ms", "20").set("enable.idempotence", "false");
        // Consumer settings, and statistics (only stage 1's consumer reads them; here rdkafka's
        // default handler would log them all at every interval), stay out.
        let producer_setting = |k: &str| !["fetch.", "auto.", "session.", "statistics."].iter().any(|prefix| k.starts_with(prefix));
        for (key, value) in extra.iter().filter(|(k, _)| producer_setting(k)) {
            config.set(key, value);
        }
        let producer = config.create_with_context(DeliveryAcks { offsets, failed: AtomicU64::new(0), redelivery: Default::default() })?;
        Ok(DeadLetterSink { producer, topic: topic.to_owned() })
    }

    /// Queues one dead letter. The caller has already put a hold on (`source`, `offset`).
    pub fn send(
        &self,
        source_topic: &str,
        source: SourcePartition,
        offset: i64,
        key: Option<&[u8]>,
        payload: Option<&[u8]>,
        rejection: &Rejection,
    ) {
        let origin = format!("{source_topic}/{}/{offset}", source.partition);
        let headers = OwnedHeaders::new_with_capacity(3)
            .insert(Header { key: HEADER_REASON, value: Some(rejection.reason.as_str()) })
            .insert(Header { key: HEADER_DETAIL, value: Some(rejection.detail.as_str()) })
            .insert(Header { key: HEADER_SOURCE, value: Some(origin.as_str()) });
        let mut record: BaseRecord<'_, [u8], [u8], Box<Hold>> =
            BaseRecord::with_opaque_to(&self.topic, Box::new(Some((source, offset)))).headers(headers);
        if let Some(key) = key {
            record = record.key(key);
        }
        if let Some(payload) = payload {
            record = record.payload(payload);
        }
        if let Err(err) = super::send_waiting(&self.producer, record) {
            self.producer.context().failed.fetch_add(1, Ordering::Relaxed);
            tracing::error!(error = %err, offset, "Dead letter could not be queued; offset held");
        }
    }

    /// Dead-letters a line-protocol point InfluxDB refused (reason `sink_rejected`, source
    /// `influx`): no input record to hold, the point's window is already closed.
    pub fn send_sink_rejection(&self, line: &str, reason: &str) {
        let headers = OwnedHeaders::new_with_capacity(3)
            .insert(Header { key: HEADER_REASON, value: Some(SINK_REJECTED) })
            .insert(Header { key: HEADER_DETAIL, value: Some(reason) })
            .insert(Header { key: HEADER_SOURCE, value: Some("influx") });
        let record: BaseRecord<'_, [u8], [u8], Box<Hold>> =
            BaseRecord::with_opaque_to(&self.topic, Box::new(None)).headers(headers).payload(line.as_bytes());
        if let Err(err) = super::send_waiting(&self.producer, record) {
            tracing::error!(error = %err, line, "Refused InfluxDB point could not be dead-lettered");
        }
    }

    /// Sends the dead letters whose delivery failed again.
    pub fn resend_failed(&self) -> usize {
        self.producer.context().redelivery.resend(&self.producer)
    }

    pub fn failed(&self) -> u64 {
        self.producer.context().failed.load(Ordering::Relaxed)
    }

    pub fn flush(&self, timeout: Duration) {
        if let Err(err) = self.producer.flush(timeout) {
            tracing::warn!(error = %err, "Dead-letter flush did not finish");
        }
    }
}
