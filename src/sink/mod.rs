//! Where results go. `line_protocol` encodes window results for InfluxDB, `influx` writes
//! them in batches with retry, `memory` keeps recent results for the API and the demo,
//! `deadletter` produces rejected records with their reason headers. Only this module
//! knows the line protocol and the HTTP clients.

pub mod aggregates;
pub mod alerts;
pub mod checkpoint;
pub mod deadletter;
pub mod influx;
pub mod line_protocol;
pub mod memory;
pub mod spool;

use std::sync::Mutex;
use std::time::Duration;

use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{BorrowedMessage, Message, OwnedHeaders, ToBytes};
use rdkafka::producer::{BaseRecord, ProducerContext, ThreadedProducer};

/// How long to wait before offering a record again when librdkafka's local queue is full.
const QUEUE_FULL_PAUSE: Duration = Duration::from_millis(1);

/// Records the broker did not take (delivery failed after librdkafka's own retries, e.g.
/// while the broker restarts), kept with their hold to be sent again: a hold must end with
/// a delivery, or the commit would stop there until a restart.
pub struct Redelivery<H> {
    failed: Mutex<Vec<FailedRecord<H>>>,
}

struct FailedRecord<H> {
    topic: String,
    partition: i32,
    key: Option<Vec<u8>>,
    payload: Option<Vec<u8>>,
    headers: Option<OwnedHeaders>,
    hold: H,
}

impl<H> Default for Redelivery<H> {
    fn default() -> Self {
        Redelivery { failed: Mutex::new(Vec::new()) }
    }
}

impl<H: Send + Sync + 'static> Redelivery<H> {
    /// Keeps a record whose delivery failed (call from the producer's delivery callback).
    pub fn failed(&self, message: &BorrowedMessage<'_>, hold: H) {
        let record = FailedRecord {
            topic: message.topic().to_owned(),
            partition: message.partition(),
            key: message.key().map(<[u8]>::to_vec),
            payload: message.payload().map(<[u8]>::to_vec),
            headers: message.headers().map(|h| h.detach()),
            hold,
        };
        self.failed.lock().unwrap_or_else(|e| e.into_inner()).push(record);
    }

    /// Sends every kept record again (to the partition it was meant for). Returns how many.
    pub fn resend<C>(&self, producer: &ThreadedProducer<C>) -> usize
    where
        C: ProducerContext<DeliveryOpaque = Box<H>> + 'static,
    {
        let failed = std::mem::take(&mut *self.failed.lock().unwrap_or_else(|e| e.into_inner()));
        let count = failed.len();
        for f in failed {
            let mut record: BaseRecord<'_, [u8], [u8], Box<H>> =
                BaseRecord::with_opaque_to(&f.topic, Box::new(f.hold)).partition(f.partition);
            if let Some(key) = &f.key {
                record = record.key(key);
            }
            if let Some(payload) = &f.payload {
                record = record.payload(payload);
            }
            if let Some(headers) = f.headers {
                record = record.headers(headers);
            }
            if let Err(err) = send_waiting(producer, record) {
                tracing::error!(error = %err, topic = %f.topic, "A record could not be queued again; its offset stays held until a restart");
            }
        }
        count
    }
}

/// Queues a record, waiting while the producer's local queue is full (backpressure instead
/// of loss). Any other error is returned; the record's held offset then stays held.
pub fn send_waiting<'a, K, P, C>(
    producer: &ThreadedProducer<C>,
    mut record: BaseRecord<'a, K, P, C::DeliveryOpaque>,
) -> Result<(), KafkaError>
where
    K: ToBytes + ?Sized,
    P: ToBytes + ?Sized,
    C: ProducerContext + 'static,
{
    loop {
        match producer.send(record) {
            Ok(()) => return Ok(()),
            Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), returned)) => {
                record = returned;
                std::thread::sleep(QUEUE_FULL_PAUSE);
            }
            Err((err, _)) => return Err(err),
        }
    }
}
