//! Wiring. Stage 1 (here): the consumer loop, a thin async shell around `core::Processor`;
//! the sink task; the dead-letter, aggregates and alert producers; the commit of safe
//! offsets (`offsets`). Stage 2 (`areas`): the area roll-ups. `alerts`: the alert task.
//!
//! ```text
//!  Kafka ─▶ source::kafka ─▶ core::Processor ─┬─ rejected ─▶ sink::deadletter ─▶ city.deadletter
//!                                             ├─ closed windows ─▶ sink task ─▶ InfluxDB + sink::memory
//!                                             │                 └▶ sink::aggregates ─▶ city.aggregates ─▶ areas
//!                                             └─ alert events ─▶ alerts ─▶ city.alerts, changelog, InfluxDB, Alertmanager
//!  acknowledgements ─▶ offsets::OffsetTracker ─▶ checkpoint (sink::checkpoint) ─▶ commit
//! ```
//!
//! Every `checkpoint_interval` each partition's open state is snapshotted; the snapshot is
//! written to the checkpoint changelog once no effect of the records before it is still
//! unacknowledged, and offsets are committed up to the last written checkpoint. A partition
//! that arrives here (start, rebalance) is restored from its checkpoint first; records
//! before the checkpoint's position, delivered again from the older commit, are skipped.

pub mod alerts;
pub mod areas;
pub mod checkpoint;
mod chunks;
pub mod core;
pub mod offsets;
mod own_thread;
pub mod stats;

use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::StreamExt;
use rdkafka::consumer::CommitMode;
use rdkafka::message::{Headers, Message};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use self::chunks::{chunk_channel, ChunkReceiver, ChunkSender};
use self::core::{CoreSettings, Emitted, InputRecord, PartitionCheckpoint, Processor, SourcePartition};
use self::offsets::OffsetTracker;
use self::own_thread::run_on_own_thread;
use self::stats::PipelineStats;
use crate::config::{KafkaSettings, Settings};
use crate::decode::Format;
use crate::model::Kind;
use crate::registry::Registry;
use crate::sink::aggregates::AggregatesSink;
use crate::sink::alerts::{AlertProducer, AlertStore};
use crate::sink::checkpoint::CheckpointWriter;
use crate::sink::deadletter::DeadLetterSink;
use crate::sink::influx::InfluxWriter;
use crate::sink::line_protocol::encode_window;
use crate::sink::memory::{AreaStore, MemoryStore};
use crate::source::kafka::KafkaSource;

/// Batches of closed windows (one per turn of the consumer loop, ~256 windows on average
/// at one window per two readings) waiting for the sink before the consumer blocks
/// (backpressure).
const SINK_QUEUE: usize = 64;
/// Batch size when results only go to memory.
const MEMORY_BATCH: usize = 1_024;
/// How often idle partitions are checked and offsets committed at most.
const TICK: Duration = Duration::from_millis(200);
/// A checkpoint snapshot taking this long (stage 1 waits for it) is logged.
const SLOW_SNAPSHOT_MS: u64 = 50;
/// Records handled per turn of the sensor stage's loop (when that many are fetched).
const READ_BATCH: usize = 512;

#[derive(Debug, thiserror::Error)]
pub enum PipelineError {
    #[error("cannot create the Kafka consumer for {brokers}: {source}")]
    Consumer { brokers: String, source: rdkafka::error::KafkaError },
    #[error("cannot create the dead-letter producer for {brokers}: {source}")]
    Producer { brokers: String, source: rdkafka::error::KafkaError },
    #[error("cannot publish to the aggregates topic {topic} (does it exist?): {source}")]
    Aggregates { topic: String, source: rdkafka::error::KafkaError },
    #[error("area stage: {0}")]
    Areas(#[from] areas::AreaStageError),
    #[error("{0}")]
    Spool(#[from] crate::sink::spool::SpoolError),
    #[error("cannot use the checkpoint topic {topic} (does it exist?): {source}")]
    Checkpoints { topic: String, source: rdkafka::error::KafkaError },
    #[error("cannot use the alert topics ({topic}): {source}")]
    Alerts { topic: String, source: rdkafka::error::KafkaError },
}

/// What the running pipeline shares with the API and the terminal summary.
#[derive(Clone)]
pub struct Shared {
    pub store: Arc<MemoryStore>,
    pub areas: Arc<AreaStore>,
    pub alerts: Arc<AlertStore>,
    pub stats: Arc<PipelineStats>,
    /// The sensor registry (`/api/v1/sensors/{id}`).
    pub registry: Arc<Registry>,
    /// Acknowledgements from the API to the pipeline (which owns the alert engines).
    pub acks: mpsc::Sender<alerts::AckRequest>,
    ack_inbox: Arc<Mutex<Option<mpsc::Receiver<alerts::AckRequest>>>>,
}

impl Default for Shared {
    fn default() -> Self {
        let (acks, inbox) = mpsc::channel(64);
        Shared {
            store: Arc::default(),
            areas: Arc::default(),
            alerts: Arc::default(),
            stats: Arc::default(),
            registry: Arc::new(Registry::empty()),
            acks,
            ack_inbox: Arc::new(Mutex::new(Some(inbox))),
        }
    }
}

impl Shared {
    /// Shared state for a pipeline over `registry`.
    pub fn with_registry(registry: Arc<Registry>) -> Self {
        Shared { registry, ..Shared::default() }
    }
}

pub fn wall_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

/// Runs the pipeline until `shutdown` is cancelled, then drains: flushes the sinks, waits
/// for dead-letter acknowledgements and commits what is safe, within the shutdown timeout.
pub async fn run(settings: Settings, registry: Arc<Registry>, shared: Shared, shutdown: CancellationToken) -> Result<(), PipelineError> {
    let ack_inbox = shared.ack_inbox.lock().unwrap_or_else(|e| e.into_inner()).take();
    let (area_acks_tx, area_acks_rx) = mpsc::channel::<alerts::AckRequest>(64);
    // Alerts: one task per instance for both stages, and the state both engines restore.
    let (alerts_tx, alert_task, restored) = match &settings.alerts {
        Some(a) => {
            let producer = AlertProducer::new(&settings.kafka, &a.topic, &a.changelog_topic, a.protobuf)
                .map_err(|source| PipelineError::Alerts { topic: a.topic.clone(), source })?;
            let restored = restore_alert_states(&settings.kafka, &a.changelog_topic)
                .map_err(|source| PipelineError::Alerts { topic: a.changelog_topic.clone(), source })?;
            for state in &restored {
                shared.alerts.restore(state);
            }
            tracing::info!(
                alerts = restored.len(),
                firing = restored.iter().filter(|s| s.firing.is_some()).count(),
                "Alert state restored"
            );
            let (tx, rx) = mpsc::channel::<Vec<alerts::AlertOut>>(alerts::ALERT_QUEUE);
            let manager = a
                .alertmanager_url
                .clone()
                .map(|url| alerts::Alertmanager { url, resend: Duration::from_millis(a.resend_interval_ms as u64) });
            let influx = settings
                .influx
                .as_ref()
                .map(|i| InfluxWriter::new(i, "alerts").map(|w| w.with_spool_gauge(shared.stats.spool_bytes[2].clone())))
                .transpose()?;
            let task = tokio::spawn(alerts::run_alert_sink(rx, producer, influx, manager, shared.alerts.clone(), CancellationToken::new()));
            (Some(tx), Some(task), restored)
        }
        None => (None, None, Vec::new()),
    };
    let areas = settings.rollup.as_ref().map(|_| {
        let restored: Vec<_> = restored.iter().filter(|s| area_rule(&settings, &s.rule)).cloned().collect();
        tokio::spawn(areas::run(
            settings.clone(),
            registry.clone(),
            shared.clone(),
            shutdown.clone(),
            alerts_tx.clone(),
            restored,
            area_acks_rx,
        ))
    });
    let sensor_alerts = SensorAlerts {
        events: alerts_tx,
        acks: ack_inbox,
        forward_acks: area_acks_tx,
        restored: restored.into_iter().filter(|s| !area_rule(&settings, &s.rule)).collect(),
    };
    let result = run_on_own_thread(run_sensor_stage(settings, registry, shared, shutdown.clone(), sensor_alerts)).await;
    shutdown.cancel();
    if let Some(areas) = areas {
        match areas.await {
            Ok(Err(err)) => return Err(err.into()),
            Err(err) => tracing::error!(error = %err, "Area stage task failed"),
            Ok(Ok(())) => {}
        }
    }
    if let Some(task) = alert_task {
        let _ = task.await;
    }
    result
}

/// Whether the alert of `rule_key` belongs to the area stage (see `Rule::needs_area_stage`).
fn area_rule(settings: &Settings, rule_key: &str) -> bool {
    settings.alerts.as_ref().is_some_and(|a| a.rules.iter().any(|r| r.needs_area_stage() && r.owns(rule_key)))
}

/// Stage 1's alert plumbing.
struct SensorAlerts {
    events: Option<mpsc::Sender<Vec<alerts::AlertOut>>>,
    acks: Option<mpsc::Receiver<alerts::AckRequest>>,
    /// Fingerprints stage 1 does not own go on to the area stage.
    forward_acks: mpsc::Sender<alerts::AckRequest>,
    restored: Vec<crate::alert::AlertState>,
}

/// The last state of every alert in the changelog.
fn restore_alert_states(kafka: &KafkaSettings, topic: &str) -> Result<Vec<crate::alert::AlertState>, rdkafka::error::KafkaError> {
    let latest = crate::source::changelog::read_latest(kafka, topic)?;
    let mut states: Vec<crate::alert::AlertState> = latest.values().filter_map(|v| serde_json::from_slice(v).ok()).collect();
    states.sort_by(|a, b| a.fingerprint.cmp(&b.fingerprint));
    Ok(states)
}

/// Sends stage 1's pending alerts to the alert task, holding their input offsets twice
/// (alerts topic and changelog) until delivered.
async fn send_alerts(
    pending: Vec<self::core::PendingAlert<(SourcePartition, i64)>>,
    events: &mpsc::Sender<Vec<alerts::AlertOut>>,
    offsets: &Arc<Mutex<OffsetTracker>>,
) {
    if pending.is_empty() {
        return;
    }
    {
        let mut o = offsets.lock().unwrap_or_else(|e| e.into_inner());
        for (source, offset) in pending.iter().filter_map(|alert| alert.hold) {
            o.hold(source, offset);
            o.hold(source, offset);
        }
    }
    let mut batch = Vec::with_capacity(pending.len());
    for alert in pending {
        let releases = match alert.hold {
            Some((source, offset)) => alerts::alert_releases(offsets, source, offset),
            None => [None, None],
        };
        batch.push(alerts::AlertOut { event: alert.event, state: alert.state, releases });
    }
    // One hand-off per turn: a minute boundary's thousands of events wake the alert task once.
    if events.send(batch).await.is_err() {
        tracing::error!("Alert task ended early; alerts will be re-evaluated after restart");
    }
}

/// Stage 1: input topics → validated readings → sensor windows → sinks (and the
/// aggregates topic for the area stage).
async fn run_sensor_stage(
    settings: Settings,
    registry: Arc<Registry>,
    shared: Shared,
    shutdown: CancellationToken,
    mut alerting: SensorAlerts,
) -> Result<(), PipelineError> {
    let source = KafkaSource::new(&settings.kafka, &settings.inputs)
        .map_err(|source| PipelineError::Consumer { brokers: settings.kafka.brokers.clone(), source })?;
    let offsets = Arc::new(Mutex::new(OffsetTracker::with_checkpoints()));
    let mut checkpoints =
        Checkpoints::new(&settings).map_err(|source| PipelineError::Checkpoints { topic: settings.checkpoint_topic.clone(), source })?;
    let deadletters = Arc::new(
        DeadLetterSink::new(&settings.kafka.brokers, &settings.kafka.properties, &settings.deadletter_topic, offsets.clone())
            .map_err(|source| PipelineError::Producer { brokers: settings.kafka.brokers.clone(), source })?,
    );
    let mut processor = Processor::new(CoreSettings::from(&settings), registry);
    for state in std::mem::take(&mut alerting.restored) {
        processor.restore_alert(state);
    }
    let mut acks = alerting.acks.take();
    let mut assigned_before = false;
    let mut reloading: Option<tokio::task::JoinHandle<Result<Vec<crate::alert::AlertState>, rdkafka::error::KafkaError>>> = None;
    let aggregates = match &settings.rollup {
        Some(rollup) => Some(
            AggregatesSink::new(&settings.kafka, &rollup.topic, rollup.format, offsets.clone())
                .map_err(|source| PipelineError::Aggregates { topic: rollup.topic.clone(), source })?,
        ),
        None => None,
    };
    let mut announced: std::collections::HashMap<SourcePartition, i64> = std::collections::HashMap::new();
    shared.stats.ready.store(true, Ordering::Relaxed);

    let (results_tx, results_rx) = chunk_channel::<Emitted>(SINK_QUEUE);
    let give_up = CancellationToken::new();
    let influx = match &settings.influx {
        Some(i) => {
            let deadletters = deadletters.clone();
            let writer = InfluxWriter::new(i, "windows")?
                .with_spool_gauge(shared.stats.spool_bytes[0].clone())
                .with_latency(shared.stats.sink_write_seconds.clone(), shared.stats.sink_retries.clone());
            Some(writer.on_rejected(Box::new(move |line, reason| deadletters.send_sink_rejection(line, reason))))
        }
        None => None,
    };
    let sink = tokio::spawn(run_sink(
        results_rx,
        influx,
        |e: &Emitted, out| encode_window(&e.window, out),
        settings.influx.as_ref().map_or(MEMORY_BATCH, |i| i.batch_size),
        Duration::from_millis(settings.influx.as_ref().map_or(200, |i| i.flush_interval_ms) as u64),
        {
            let (shared, offsets) = (shared.clone(), offsets.clone());
            move |batch: &mut Vec<Emitted>, to_influx| {
                let count = batch.len() as u64;
                {
                    let mut offsets = offsets.lock().unwrap_or_else(|e| e.into_inner());
                    for e in batch.iter() {
                        offsets.release(e.source, e.hold);
                    }
                }
                shared.store.insert_batch(batch.drain(..).map(|e| Arc::new(e.window)));
                let stats = &shared.stats;
                stats.windows_closed.fetch_add(count, Ordering::Relaxed);
                stats.points_written.fetch_add(if to_influx { count } else { 0 }, Ordering::Relaxed);
                stats.sink_batches.fetch_add(1, Ordering::Relaxed);
                stats.last_write_ms.store(wall_ms(), Ordering::Relaxed);
            }
        },
        give_up.clone(),
    ));

    tracing::info!(
        brokers = %settings.kafka.brokers,
        group = %settings.kafka.group_id,
        topics = ?settings.inputs.iter().map(|t| t.name.as_str()).collect::<Vec<_>>(),
        influx = settings.influx.as_ref().map_or("none", |i| i.url.as_str()),
        "Pipeline started"
    );
    let mut emitted = Vec::new();
    let mut tick = tokio::time::interval(TICK);
    let commit_every = Duration::from_millis(settings.commit_interval_ms as u64);
    let mut last_commit = tokio::time::Instant::now();
    // One message stream for the stage's life: `StreamConsumer::recv` makes a stream per
    // call, registering and removing a waker under a lock each time, twice per record.
    let mut messages = source.consumer().stream();
    'run: loop {
        tokio::select! {
            biased;
            _ = shutdown.cancelled() => break,
            Some(request) = async { match acks.as_mut() { Some(rx) => rx.recv().await, None => std::future::pending().await } } => {
                match processor.acknowledge(&request.fingerprint, &request.by, &request.comment, wall_ms()) {
                    Ok(pending) => {
                        let event = pending.event.clone();
                        if let Some(events) = &alerting.events {
                            send_alerts(vec![pending], events, &offsets).await;
                        }
                        let _ = request.reply.send(Ok(event));
                    }
                    Err(crate::alert::AckError::Unknown) => {
                        if let Err(mpsc::error::TrySendError::Full(r) | mpsc::error::TrySendError::Closed(r)) = alerting.forward_acks.try_send(request) {
                            let _ = r.reply.send(Err(crate::alert::AckError::Unknown));
                        }
                    }
                    Err(err) => {
                        let _ = request.reply.send(Err(err));
                    }
                }
            }
            _ = tick.tick() => {
                for revoked in source.take_revoked() {
                    processor.drop_partition(revoked);
                    offsets.lock().unwrap_or_else(|e| e.into_inner()).drop_partition(revoked);
                    checkpoints.forget(revoked);
                    announced.remove(&revoked);
                }
                let assigned = source.take_assigned();
                if !assigned.is_empty() && !checkpoints.adopt(&assigned, &mut processor, &offsets, &source, &shared.stats, &shutdown).await {
                    break;
                }
                // A partition that moves here brings its sensors' alerts: read the changelog
                // again (in the background) and take every state newer than ours.
                if !assigned.is_empty() && std::mem::replace(&mut assigned_before, true) {
                    if let Some(a) = &settings.alerts {
                        let (kafka, topic) = (settings.kafka.clone(), a.changelog_topic.clone());
                        reloading = Some(tokio::task::spawn_blocking(move || restore_alert_states(&kafka, &topic)));
                    }
                }
                if reloading.as_ref().is_some_and(|t| t.is_finished()) {
                    if let Some(Ok(Ok(states))) = reloading.take().and_then(futures::FutureExt::now_or_never) {
                        for state in states {
                            processor.restore_alert(state);
                        }
                    }
                }
                processor.tick(wall_ms(), &mut emitted);
                if let Some(events) = &alerting.events {
                    send_alerts(processor.take_alerts(), events, &offsets).await;
                }
                forward(&mut emitted, &results_tx, &offsets, aggregates.as_ref(), &source).await;
                if let Some(aggregates) = &aggregates {
                    announce_watermarks(&processor, &source, aggregates, &mut announced);
                }
                shared.stats.tracked_sensors.store(processor.tracked_sensors() as u64, Ordering::Relaxed);
                *shared.stats.consumer_lag.lock().unwrap_or_else(|e| e.into_inner()) = source.lag();
                shared.stats.open_windows.store(processor.open_windows() as u64, Ordering::Relaxed);
                let resent = deadletters.resend_failed() + aggregates.as_ref().map_or(0, AggregatesSink::resend_failed);
                if resent > 0 {
                    tracing::warn!(resent, "Records the broker did not take were sent again");
                }
                checkpoints.advance(&processor, &offsets, &source, &shared.stats);
                if last_commit.elapsed() >= commit_every {
                    commit_safe_offsets(&source, &offsets, &shared.stats, CommitMode::Async);
                    last_commit = tokio::time::Instant::now();
                }
            }
            Some(message) = messages.next() => {
                // Up to READ_BATCH records already fetched are handled in one turn, then the
                // closed windows and alerts go out together: one pass through this loop's
                // select and one sink hand-off per batch instead of per record.
                let mut next = Some(message);
                let mut handled = 0;
                // What the batch consumed, applied once at its end: the offsets lock and the
                // counters are shared with the sink tasks. Nothing reads either in between
                // (commits and checkpoints happen on the tick, in this task).
                let mut batch = ConsumedBatch::default();
                // One clock read per turn: the records of a turn were fetched together.
                let now = wall_ms();
                shared.stats.mark_first_record(now);
                'batch: while let Some(message) = next.take() {
                    handled += 1;
                    if handled < READ_BATCH {
                        next = futures::FutureExt::now_or_never(messages.next()).flatten();
                    }
                    let message = match message {
                        Ok(message) => message,
                        Err(err) => {
                            tracing::warn!(error = %err, "Kafka consumer error");
                            continue 'batch;
                        }
                    };
                    let Some(input) = source.input(message.topic()) else { continue 'batch };
                    let partition = SourcePartition { kind: input.kind, partition: message.partition() };
                    if !processor.tracks(partition) {
                        // The record came before the tick saw the assignment: restore first.
                        let mut assigned = source.take_assigned();
                        assigned.push(partition);
                        if !checkpoints.adopt(&assigned, &mut processor, &offsets, &source, &shared.stats, &shutdown).await {
                            batch.apply(&offsets, &shared.stats);
                            break 'run;
                        }
                    }
                    if let Some(expected) = checkpoints.first_offsets.remove(&partition).filter(|e| message.offset() > *e) {
                        // Some brokers (tansu 0.6) answer a fetch from inside a record batch with
                        // the next batch: records would be skipped. Read the partition again from
                        // its beginning; what the checkpoint holds is skipped below.
                        tracing::warn!(topic = message.topic(), partition = partition.partition, expected, got = message.offset(), "The broker skipped records after the commit; re-reading the partition from its beginning");
                        if let Err(err) = source.seek_to_beginning(partition) {
                            tracing::error!(error = %err, "Cannot re-read the partition; records after the commit may be missing");
                        }
                        // Records already fetched past the gap are read again after the seek.
                        next = None;
                        continue 'batch;
                    }
                    if processor.covers(partition, message.offset()) {
                        shared.stats.records_skipped.fetch_add(1, Ordering::Relaxed);
                        continue 'batch;
                    }
                    // librdkafka parses a record's headers (an allocation) when asked: only a
                    // topic whose format is decided per record needs them.
                    let content_type = (input.format == Format::Auto).then(|| message.headers()).flatten().and_then(|headers| {
                        headers.iter().find(|h| h.key.eq_ignore_ascii_case("content-type")).and_then(|h| h.value).and_then(|v| std::str::from_utf8(v).ok())
                    });
                    let record = InputRecord { source: partition, offset: message.offset(), format: input.format, payload: message.payload(), content_type };
                    match processor.process(record, now, &mut emitted) {
                        Ok(()) => batch.accepted[input.kind.index()] += 1,
                        Err(rejection) => {
                            tracing::debug!(topic = message.topic(), partition = message.partition(), offset = message.offset(), reason = %rejection.reason, detail = %rejection.detail, "Record dead-lettered");
                            shared.stats.record_rejected(input.kind, &rejection);
                            offsets.lock().unwrap_or_else(|e| e.into_inner()).hold(partition, message.offset());
                            deadletters.send(message.topic(), partition, message.offset(), message.key(), message.payload(), &rejection);
                        }
                    }
                    batch.consumed(partition, message.offset());
                }
                batch.apply(&offsets, &shared.stats);
                // Alerts first (they are what operations wait for; a minute boundary closes
                // thousands of windows whose encoding would otherwise come before them), then
                // the windows. Both hold their offsets from here; nothing commits in between
                // (commits happen on the tick, in this same task).
                if let Some(events) = &alerting.events {
                    send_alerts(processor.take_alerts(), events, &offsets).await;
                }
                forward(&mut emitted, &results_tx, &offsets, aggregates.as_ref(), &source).await;
                // While a backlog lasts rdkafka's receive is always ready and this loop never
                // gives its worker thread back (the receive takes no part in tokio's
                // cooperative budget): tasks it just woke — the alert task above all — could
                // wait behind it for as long as the backlog lasts. One yield per batch.
                tokio::task::yield_now().await;
            }
        }
    }

    shared.stats.ready.store(false, Ordering::Relaxed);
    tracing::info!("Pipeline draining");
    drop(results_tx);
    let timeout = Duration::from_millis(settings.shutdown_timeout_ms as u64);
    let deadline = tokio::time::Instant::now() + timeout;
    let mut sink = sink;
    if tokio::time::timeout_at(deadline, &mut sink).await.is_err() {
        tracing::error!(timeout_ms = settings.shutdown_timeout_ms, "Sink did not drain in time; unacknowledged windows will be replayed");
        give_up.cancel();
        let _ = sink.await;
    }
    deadletters.flush(deadline.saturating_duration_since(tokio::time::Instant::now()));
    if let Some(aggregates) = &aggregates {
        aggregates.flush(deadline.saturating_duration_since(tokio::time::Instant::now()));
    }
    checkpoints.final_checkpoints(&processor, &offsets, &source, &shared.stats, deadline).await;
    commit_safe_offsets(&source, &offsets, &shared.stats, CommitMode::Sync);
    tracing::info!(
        records = shared.stats.records_in(),
        dead_lettered = shared.stats.rejected(),
        skipped_as_checkpointed = shared.stats.records_skipped.load(Ordering::Relaxed),
        "Pipeline stopped"
    );
    Ok(())
}

/// What one turn of stage 1 consumed: the last offset per partition and the records
/// accepted per kind.
#[derive(Default)]
struct ConsumedBatch {
    last_offsets: Vec<(SourcePartition, i64)>,
    accepted: [u64; Kind::ALL.len()],
}

impl ConsumedBatch {
    fn consumed(&mut self, partition: SourcePartition, offset: i64) {
        match self.last_offsets.iter_mut().find(|(p, _)| *p == partition) {
            Some((_, last)) => *last = (*last).max(offset),
            None => self.last_offsets.push((partition, offset)),
        }
    }

    /// Records the batch in the offset tracker and the counters (one lock, one update per kind).
    fn apply(&self, offsets: &Mutex<OffsetTracker>, stats: &PipelineStats) {
        stats.records_accepted(&self.accepted);
        let mut offsets = offsets.lock().unwrap_or_else(|e| e.into_inner());
        for &(partition, offset) in &self.last_offsets {
            offsets.consumed(partition, offset);
        }
    }
}

/// Hands closed windows to the sink (and the aggregates topic), holding their input
/// offsets until each has acknowledged them.
async fn forward(
    emitted: &mut Vec<Emitted>,
    results: &ChunkSender<Emitted>,
    offsets: &Mutex<OffsetTracker>,
    aggregates: Option<&AggregatesSink>,
    source: &KafkaSource,
) {
    if emitted.is_empty() {
        return;
    }
    {
        let mut offsets = offsets.lock().unwrap_or_else(|e| e.into_inner());
        for e in emitted.iter() {
            offsets.hold(e.source, e.hold);
        }
    }
    if let Some(aggregates) = aggregates {
        aggregates.send_windows(emitted.iter().map(|e| (e.source, e.hold, &e.window)), |partition| source.source_name(partition));
    }
    if results.send(emitted).await.is_err() {
        tracing::error!("Sink task ended early; windows will be replayed after restart");
    }
}

/// Publishes a watermark marker for every partition whose watermark moved, after the
/// windows it closed (SPEC §3: the area stage closes an area window once all have passed).
fn announce_watermarks(
    processor: &Processor,
    source: &KafkaSource,
    aggregates: &AggregatesSink,
    announced: &mut std::collections::HashMap<SourcePartition, i64>,
) {
    for (partition, watermark) in processor.watermarks() {
        if watermark == i64::MIN || announced.get(&partition).is_some_and(|w| *w >= watermark) {
            continue;
        }
        aggregates.send_watermark(&source.source_name(partition), partition.kind, watermark);
        announced.insert(partition, watermark);
    }
}

fn commit_safe_offsets(source: &KafkaSource, offsets: &Mutex<OffsetTracker>, stats: &PipelineStats, mode: CommitMode) {
    let candidates = offsets.lock().unwrap_or_else(|e| e.into_inner()).commit_candidates(|_| None);
    if candidates.is_empty() {
        return;
    }
    match source.commit(&candidates, mode) {
        Ok(()) => {
            let mut offsets = offsets.lock().unwrap_or_else(|e| e.into_inner());
            for (partition, offset) in &candidates {
                offsets.mark_committed(*partition, *offset);
            }
            stats.commits.fetch_add(1, Ordering::Relaxed);
        }
        Err(err) => tracing::debug!(error = %err, "Commit not accepted now; will retry"),
    }
}

/// Stage 1's checkpoint cycle: snapshots, their writes, and restores on assignment.
struct Checkpoints {
    writer: CheckpointWriter,
    kafka: KafkaSettings,
    topic: String,
    every: Duration,
    last: tokio::time::Instant,
    /// Partitions due for a snapshot this interval, taken one per tick: serialising every
    /// partition at once held stage 1 up for all of them in one go.
    due: std::collections::VecDeque<SourcePartition>,
    /// Snapshots waiting until every effect of the records before them is acknowledged.
    pending: std::collections::HashMap<SourcePartition, PartitionCheckpoint>,
    /// The committed offset of each adopted partition, until its first record arrives.
    /// Asked per record: foldhash, not SipHash.
    first_offsets: std::collections::HashMap<SourcePartition, i64, foldhash::fast::RandomState>,
}

impl Checkpoints {
    fn new(settings: &Settings) -> Result<Self, rdkafka::error::KafkaError> {
        Ok(Checkpoints {
            writer: CheckpointWriter::new(&settings.kafka, &settings.checkpoint_topic)?,
            kafka: settings.kafka.clone(),
            topic: settings.checkpoint_topic.clone(),
            every: Duration::from_millis(settings.checkpoint_interval_ms as u64),
            last: tokio::time::Instant::now(),
            due: std::collections::VecDeque::new(),
            pending: std::collections::HashMap::new(),
            first_offsets: Default::default(),
        })
    }

    /// What a partition's checkpoints are keyed by: the consumer group and the input topic
    /// (one checkpoint topic may serve several deployments).
    fn stream(&self, source: &KafkaSource, partition: SourcePartition) -> String {
        format!("{}/{}", self.kafka.group_id, source.topic_name(partition))
    }

    /// Drops what is pending for a revoked partition.
    fn forget(&mut self, partition: SourcePartition) {
        self.due.retain(|p| *p != partition);
        self.pending.remove(&partition);
        self.first_offsets.remove(&partition);
    }

    /// Restores newly assigned partitions from their checkpoints (or starts them empty).
    /// Retries while the changelog cannot be read; `false` if shut down meanwhile.
    async fn adopt(
        &mut self,
        partitions: &[SourcePartition],
        processor: &mut Processor,
        offsets: &Mutex<OffsetTracker>,
        source: &KafkaSource,
        stats: &PipelineStats,
        shutdown: &CancellationToken,
    ) -> bool {
        let started = std::time::Instant::now();
        let mut partitions = partitions.to_vec();
        partitions.sort();
        partitions.dedup();
        let partitions = partitions.as_slice();
        // A commit is only made with a checkpoint at or past it, so a checkpoint older than
        // the commit means the read ended before the newest records (a broker whose high
        // watermark lags): read again rather than restore stale state.
        let mut attempts = 0;
        let (mut found, committed) = loop {
            attempts += 1;
            let (kafka, topic) = (self.kafka.clone(), self.topic.clone());
            let read = tokio::task::spawn_blocking(move || {
                crate::source::changelog::read_latest_within(&kafka, &topic, crate::source::changelog::QUIET_CHECKED)
            })
            .await;
            let committed = tokio::task::block_in_place(|| source.committed(partitions));
            match (read, committed) {
                (Ok(Ok(latest)), Ok(committed)) => {
                    let found: std::collections::HashMap<SourcePartition, _> =
                        partitions.iter().map(|p| (*p, checkpoint::decode(&latest, &self.stream(source, *p), p.partition))).collect();
                    let stale: Vec<String> = partitions
                        .iter()
                        .filter_map(|p| {
                            let at = found.get(p).and_then(|f| f.as_ref().ok()).and_then(Option::as_ref).map_or(0, |cp| cp.position);
                            committed
                                .get(p)
                                .filter(|c| **c > at)
                                .map(|c| format!("{}/{}: checkpoint {at} < commit {c}", source.topic_name(*p), p.partition))
                        })
                        .collect();
                    if stale.is_empty() || attempts >= 30 {
                        if !stale.is_empty() {
                            tracing::error!(
                                ?stale,
                                "No checkpoint covers the committed offset; those partitions restart from the commit with empty windows"
                            );
                        }
                        break (found, committed);
                    }
                    tracing::warn!(?stale, "Checkpoint read ended early; reading again");
                }
                (Ok(Err(err)), _) | (_, Err(err)) => {
                    tracing::warn!(error = %err, topic = %self.topic, "Cannot read checkpoints or commits; retrying")
                }
                (Err(err), _) => tracing::warn!(error = %err, "Checkpoint reader failed; retrying"),
            }
            tokio::select! {
                _ = shutdown.cancelled() => return false,
                _ = tokio::time::sleep(Duration::from_millis(500)) => {}
            }
        };
        let now = wall_ms();
        for &partition in partitions {
            let topic = source.topic_name(partition);
            if let Some(offset) = committed.get(&partition) {
                self.first_offsets.insert(partition, *offset);
            }
            let restored = match found.remove(&partition).unwrap_or(Ok(None)) {
                Ok(Some(cp)) if committed.get(&partition).is_some_and(|c| *c > cp.position) => None,
                Ok(Some(cp)) => match processor.restore_partition(partition, &cp, now) {
                    Ok(()) => Some(cp),
                    Err(err) => {
                        tracing::warn!(topic, partition = partition.partition, error = %err, "Checkpoint not restored; replaying from the commit");
                        None
                    }
                },
                Ok(None) => None,
                Err(err) => {
                    tracing::warn!(topic, partition = partition.partition, error = %err, "Checkpoint unusable; replaying from the commit");
                    None
                }
            };
            match restored {
                Some(cp) => {
                    offsets.lock().unwrap_or_else(|e| e.into_inner()).restored(partition, cp.position);
                    stats.checkpoints_restored.fetch_add(1, Ordering::Relaxed);
                    tracing::info!(
                        topic,
                        partition = partition.partition,
                        position = cp.position,
                        committed = ?committed.get(&partition),
                        bytes = cp.state.len(),
                        took_ms = started.elapsed().as_millis() as u64,
                        "Partition restored from its checkpoint"
                    );
                }
                None => {
                    tracing::info!(topic, partition = partition.partition, committed = ?committed.get(&partition), "Partition starts without a checkpoint");
                    processor.ensure_partition(partition, now);
                }
            }
        }
        true
    }

    /// Takes snapshots when the interval is due (one partition per call, so that stage 1
    /// pauses for one partition's state at a time) and writes those whose records' effects
    /// are all acknowledged; each written checkpoint lets the commit move up to it.
    fn advance(&mut self, processor: &Processor, offsets: &Arc<Mutex<OffsetTracker>>, source: &KafkaSource, stats: &Arc<PipelineStats>) {
        if self.due.is_empty() && self.last.elapsed() >= self.every {
            self.last = tokio::time::Instant::now();
            let o = offsets.lock().unwrap_or_else(|e| e.into_inner());
            self.due.extend(
                processor
                    .watermarks()
                    .into_iter()
                    .map(|(partition, _)| partition)
                    .filter(|p| !self.pending.contains_key(p) && processor.position(*p).is_some_and(|pos| o.wants_checkpoint(*p, pos))),
            );
        }
        // Serialise outside the tracker's lock (delivery callbacks take it).
        if let Some(partition) = self.due.pop_front() {
            let started = std::time::Instant::now();
            if let Some(cp) = processor.checkpoint(partition) {
                let took_ms = started.elapsed().as_millis() as u64;
                if took_ms >= SLOW_SNAPSHOT_MS {
                    tracing::info!(
                        topic = source.topic_name(partition),
                        partition = partition.partition,
                        bytes = cp.state.len(),
                        took_ms,
                        "Slow checkpoint snapshot"
                    );
                }
                self.pending.insert(partition, cp);
            }
        }
        let ready: Vec<SourcePartition> = {
            let o = offsets.lock().unwrap_or_else(|e| e.into_inner());
            self.pending.iter().filter(|(p, cp)| o.checkpoint_publishable(**p, cp.position)).map(|(p, _)| *p).collect()
        };
        for partition in ready {
            let Some(cp) = self.pending.remove(&partition) else { continue };
            offsets.lock().unwrap_or_else(|e| e.into_inner()).checkpoint_started(partition, cp.position);
            let (writer, offsets, stats, topic) = (self.writer.clone(), offsets.clone(), stats.clone(), self.stream(source, partition));
            tokio::spawn(async move {
                let written = writer.write(&topic, partition.partition, &cp).await;
                record_checkpoint(&offsets, &stats, partition, cp.position, written);
            });
        }
    }

    /// At shutdown, after the sinks drained: one last checkpoint per partition, so a
    /// restart replays nothing.
    async fn final_checkpoints(
        &mut self,
        processor: &Processor,
        offsets: &Mutex<OffsetTracker>,
        source: &KafkaSource,
        stats: &PipelineStats,
        deadline: tokio::time::Instant,
    ) {
        let mut writes = Vec::new();
        for (partition, _) in processor.watermarks() {
            let Some(cp) = processor.checkpoint(partition) else { continue };
            if !offsets.lock().unwrap_or_else(|e| e.into_inner()).checkpoint_publishable(partition, cp.position) {
                continue;
            }
            let (writer, stream) = (&self.writer, self.stream(source, partition));
            writes.push(async move { (partition, cp.position, writer.write(&stream, partition.partition, &cp).await) });
        }
        match tokio::time::timeout_at(deadline, futures::future::join_all(writes)).await {
            Ok(results) => {
                for (partition, position, written) in results {
                    record_checkpoint(offsets, stats, partition, position, written);
                }
            }
            Err(_) => tracing::warn!("Final checkpoints not written in time; a restart replays from the last one"),
        }
    }
}

fn record_checkpoint(
    offsets: &Mutex<OffsetTracker>,
    stats: &PipelineStats,
    partition: SourcePartition,
    position: i64,
    written: Result<usize, rdkafka::error::KafkaError>,
) {
    let ok = written.is_ok();
    match written {
        Ok(bytes) => {
            stats.checkpoints_written.fetch_add(1, Ordering::Relaxed);
            stats.checkpoint_bytes.fetch_add(bytes as u64, Ordering::Relaxed);
        }
        Err(err) => tracing::warn!(partition = partition.partition, position, error = %err, "Checkpoint not written; will try again"),
    }
    offsets.lock().unwrap_or_else(|e| e.into_inner()).checkpoint_finished(partition, position, ok);
}

/// The sink task: batches items, writes them to InfluxDB (when configured) and then calls
/// `acknowledged` with the batch (which stores them in memory and releases their offsets).
/// A batch InfluxDB never acknowledges is not passed on: its offsets stay held.
///
/// `acknowledged` takes the items out of the batch and leaves its allocation: one batch
/// vector, sized once, serves every batch (growing a fresh one each time cost a copy per
/// doubling and memory faulted in again: a profile put 4 % of an end-to-end run's CPU there).
pub(crate) async fn run_sink<T: Send + 'static>(
    mut items: ChunkReceiver<T>,
    mut influx: Option<InfluxWriter>,
    encode: fn(&T, &mut String),
    batch_size: usize,
    flush_every: Duration,
    mut acknowledged: impl FnMut(&mut Vec<T>, bool) + Send,
    give_up: CancellationToken,
) {
    // Sized for a whole batch up front, within reason: a larger configured batch grows once.
    let mut batch: Vec<T> = Vec::with_capacity(batch_size.min(1 << 16));
    let mut tick = tokio::time::interval(flush_every);
    loop {
        let (mut chunk, flush_now, closed) = tokio::select! {
            chunk = items.recv() => match chunk {
                Some(chunk) => (chunk, false, false),
                None => (Vec::new(), true, true),
            },
            _ = tick.tick() => {
                if let Some(writer) = influx.as_mut() {
                    writer.drain_spool().await;
                }
                (Vec::new(), true, false)
            }
        };
        // A chunk (one turn of a stage) can be larger than a batch: writes stay at most
        // `batch_size` points.
        for item in chunk.drain(..) {
            if let Some(writer) = influx.as_mut() {
                writer.push(&item, encode);
            }
            batch.push(item);
            if batch.len() >= batch_size && !write_batch(&mut batch, &mut influx, &mut acknowledged, &give_up).await {
                return;
            }
        }
        items.give_back(chunk);
        if flush_now && !write_batch(&mut batch, &mut influx, &mut acknowledged, &give_up).await {
            return;
        }
        if closed {
            return;
        }
    }
}

/// Writes `batch` (already pushed to the writer) and passes it to `acknowledged`; false
/// when InfluxDB never acknowledged it (the task gives up, the batch's offsets stay held).
async fn write_batch<T>(
    batch: &mut Vec<T>,
    influx: &mut Option<InfluxWriter>,
    acknowledged: &mut impl FnMut(&mut Vec<T>, bool),
    give_up: &CancellationToken,
) -> bool {
    if batch.is_empty() {
        return true;
    }
    let written = match influx.as_mut() {
        Some(writer) => writer.flush(give_up.cancelled()).await,
        None => true,
    };
    if written {
        acknowledged(batch, influx.is_some());
        batch.clear();
    }
    written
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_sink_task_writes_a_large_chunk_in_batches_of_at_most_batch_size() {
        let (tx, rx) = chunk_channel::<u32>(4);
        let written = Arc::new(Mutex::new(Vec::<Vec<u32>>::new()));
        let sink = tokio::spawn(run_sink(
            rx,
            None,
            |_: &u32, _| {},
            4,
            Duration::from_secs(3600),
            {
                let written = written.clone();
                move |batch: &mut Vec<u32>, to_influx| {
                    assert!(!to_influx);
                    written.lock().unwrap().push(std::mem::take(batch));
                }
            },
            CancellationToken::new(),
        ));
        tx.send(&mut (0..10).collect()).await.unwrap();
        tx.send_one(10).await.unwrap();
        drop(tx);
        sink.await.unwrap();
        let written = written.lock().unwrap().clone();
        // The interval's first tick may flush the remainder of the first chunk early.
        assert_eq!(written[..2], [vec![0, 1, 2, 3], vec![4, 5, 6, 7]]);
        assert!(written.iter().all(|b| b.len() <= 4), "{written:?}");
        assert_eq!(written.concat(), (0..=10).collect::<Vec<u32>>(), "every item once, in order");
    }
}
