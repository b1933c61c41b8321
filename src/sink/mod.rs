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

use std::time::Duration;

use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::ToBytes;
use rdkafka::producer::{BaseRecord, ProducerContext, ThreadedProducer};

/// How long to wait before offering a record again when librdkafka's local queue is full.
const QUEUE_FULL_PAUSE: Duration = Duration::from_millis(1);

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
