//! Stage 1's producer to the aggregates topic: closed sensor windows keyed by district (so
//! one partition holds every grid and street of a district), batched into one record per
//! (input partition, district) and read batch, and watermark markers to every partition.
//! One producer, one in-flight request per connection: a marker never overtakes the windows
//! published before it. A record holds the lowest input offset of its windows until the
//! broker has it.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::producer::{BaseRecord, DeliveryResult, Producer, ProducerContext, ThreadedProducer};
use rdkafka::ClientContext;

use crate::config::KafkaSettings;
use crate::model::Kind;
use crate::model::WindowResult;
use crate::pipeline::core::SourcePartition;
use crate::pipeline::offsets::OffsetTracker;
use crate::rollup::encoding::AggregateFormat;
use crate::rollup::SensorWindowRef;
use crate::source::kafka::connection_config;

/// Windows per aggregates record at most (a minute boundary closes thousands per district;
/// at ~100 bytes each a record stays near 25 KB, well under brokers' 1 MB default; the
/// JSON earlier versions wrote was ~250 bytes a window).
pub const MAX_WINDOWS_PER_RECORD: usize = 256;

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

/// One aggregates record to write: windows of one input partition and key.
#[derive(Debug)]
struct WindowsRecord<'a> {
    source: SourcePartition,
    key: &'a str,
    /// The lowest input offset among the windows: what the record holds until delivered.
    hold_offset: i64,
    windows: Vec<SensorWindowRef<'a>>,
}

/// Groups (input partition, input offset, window) into records: one per input partition
/// and key, in (partition, key) order, split at `MAX_WINDOWS_PER_RECORD`; a sensor's
/// windows keep their order. Grouped by hashing, then the few groups sorted: sorting every
/// window by its key string cost stage 1 more than writing the records.
fn records_of<'a>(windows: impl IntoIterator<Item = (SourcePartition, i64, &'a WindowResult)>) -> Vec<WindowsRecord<'a>> {
    let mut groups: HashMap<(SourcePartition, &'a str), Vec<(i64, SensorWindowRef<'a>)>, foldhash::fast::RandomState> = HashMap::default();
    for (source, offset, window) in windows {
        let window = SensorWindowRef::of(window);
        groups.entry((source, window.key())).or_default().push((offset, window));
    }
    let mut groups: Vec<_> = groups.into_iter().collect();
    groups.sort_unstable_by(|a, b| a.0.cmp(&b.0));
    groups
        .iter()
        .flat_map(|((source, key), windows)| windows.chunks(MAX_WINDOWS_PER_RECORD).map(move |chunk| (*source, *key, chunk)))
        .map(|(source, key, chunk)| WindowsRecord {
            source,
            key,
            hold_offset: chunk.iter().map(|(offset, _)| *offset).min().unwrap_or_default(),
            windows: chunk.iter().map(|(_, window)| *window).collect(),
        })
        .collect()
}

pub struct AggregatesSink {
    producer: ThreadedProducer<AggregateAcks>,
    topic: String,
    partitions: i32,
    format: AggregateFormat,
}

impl AggregatesSink {
    pub fn new(
        kafka: &KafkaSettings,
        topic: &str,
        format: AggregateFormat,
        offsets: Arc<Mutex<OffsetTracker>>,
    ) -> Result<Self, KafkaError> {
        let mut config = connection_config(kafka);
        config.set("linger.ms", "5").set("max.in.flight.requests.per.connection", "1");
        let producer: ThreadedProducer<AggregateAcks> =
            config.create_with_context(AggregateAcks { offsets, failed: AtomicU64::new(0), redelivery: Default::default() })?;
        let metadata = producer.client().fetch_metadata(Some(topic), Duration::from_secs(10))?;
        let partitions = metadata.topics().first().map_or(0, |t| t.partitions().len() as i32);
        if partitions == 0 {
            return Err(KafkaError::MetadataFetch(RDKafkaErrorCode::UnknownTopicOrPartition));
        }
        Ok(AggregatesSink { producer, topic: topic.to_owned(), partitions, format })
    }

    /// Publishes closed windows, given as (input partition, input offset, window): one
    /// record per input partition and key, of at most `MAX_WINDOWS_PER_RECORD` windows, each
    /// holding the lowest input offset among its windows until the broker has it.
    /// `source_name` names an input partition ("topic/partition") for the area stage.
    pub fn send_windows<'a>(
        &self,
        windows: impl IntoIterator<Item = (SourcePartition, i64, &'a WindowResult)>,
        source_name: impl Fn(SourcePartition) -> String,
    ) {
        let records = records_of(windows);
        {
            let mut offsets = self.producer.context().offsets.lock().unwrap_or_else(|e| e.into_inner());
            for record in &records {
                offsets.hold(record.source, record.hold_offset);
            }
        }
        let mut named: Option<(SourcePartition, String)> = None;
        let mut payload = Vec::with_capacity(16 << 10);
        for record in &records {
            if named.as_ref().is_none_or(|(source, _)| *source != record.source) {
                named = Some((record.source, source_name(record.source)));
            }
            let source = named.as_ref().map_or("", |(_, name)| name.as_str());
            payload.clear();
            self.format.write_windows(source, &record.windows, &mut payload);
            self.send(record.key, None, &payload, Some((record.source, record.hold_offset)));
        }
    }

    /// Tells every aggregates partition how far `source` has published.
    pub fn send_watermark(&self, source_name: &str, kind: Kind, watermark_ms: i64) {
        let mut payload = Vec::with_capacity(64);
        self.format.write_watermark(source_name, kind, watermark_ms, &mut payload);
        for partition in 0..self.partitions {
            self.send(source_name, Some(partition), &payload, None);
        }
    }

    fn send(&self, key: &str, partition: Option<i32>, payload: &[u8], hold: Hold) {
        let mut record: BaseRecord<'_, str, [u8], Box<Hold>> =
            BaseRecord::with_opaque_to(&self.topic, Box::new(hold)).key(key).payload(payload);
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Area, LevelValues, WindowValues};

    fn window(sensor: &str, district: &str, end_ms: i64) -> WindowResult {
        let values = LevelValues {
            count: 1,
            sum: 1.0,
            mean: 1.0,
            min: 1.0,
            max: 1.0,
            first: 1.0,
            last: 1.0,
            stddev: 0.0,
            p50: 1.0,
            p95: 1.0,
            rate_per_h: 0.0,
            slope_per_h: None,
        };
        WindowResult {
            kind: Kind::Pm25,
            sensor_id: sensor.into(),
            window: "1m".into(),
            start_ms: end_ms - 60_000,
            end_ms,
            area: Area::new("g", "s", district),
            values: WindowValues::Level(values),
            coverage: None,
            domain: None,
        }
    }

    #[test]
    fn windows_go_out_one_record_per_partition_and_district_holding_the_lowest_offset() {
        let p0 = SourcePartition { kind: Kind::Pm25, partition: 0 };
        let p1 = SourcePartition { kind: Kind::Pm25, partition: 1 };
        let mut input = Vec::new();
        for i in 0..600 {
            input.push((p0, 1_000 + i, window(&format!("hd-{i}"), "haidian", 60_000)));
        }
        input.push((p0, 7, window("cy-1", "chaoyang", 60_000)));
        input.push((p1, 3, window("hd-x", "haidian", 60_000)));
        input.push((p0, 5, window("nd-1", "", 60_000))); // no district: keyed by the sensor
        input.push((p0, 9, window("cy-1", "chaoyang", 120_000)));
        let records = records_of(input.iter().map(|(p, o, w)| (*p, *o, w)));

        let summary: Vec<(i32, &str, i64, usize)> =
            records.iter().map(|r| (r.source.partition, r.key, r.hold_offset, r.windows.len())).collect();
        assert_eq!(
            summary,
            [
                (0, "chaoyang", 7, 2),
                (0, "haidian", 1_000, 256),
                (0, "haidian", 1_256, 256),
                (0, "haidian", 1_512, 88),
                (0, "nd-1", 5, 1),
                (1, "haidian", 3, 1)
            ]
        );
        let ends: Vec<i64> = records[0].windows.iter().map(|w| w.end_ms).collect();
        assert_eq!(ends, [60_000, 120_000], "a sensor's windows keep their closing order");
        let mut written: Vec<&str> = records.iter().flat_map(|r| r.windows.iter().map(|w| w.sensor_id)).collect();
        written.sort_unstable();
        let mut expected: Vec<&str> = input.iter().map(|(_, _, w)| w.sensor_id.as_str()).collect();
        expected.sort_unstable();
        assert_eq!(written, expected, "every window in exactly one record");
    }
}
