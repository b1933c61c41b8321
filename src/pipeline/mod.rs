//! Wiring. Stage 1 (here): the consumer loop, a thin async shell around `core::Processor`;
//! the sink task; the dead-letter, aggregates and alert producers; the commit of safe
//! offsets (`offsets`). Stage 2 (`areas`): the area roll-ups. `alerts`: the alert task.
//!
//! ```text
//!  Kafka ─▶ source::kafka ─▶ core::Processor ─┬─ rejected ─▶ sink::deadletter ─▶ city.deadletter
//!                                             ├─ closed windows ─▶ sink task ─▶ InfluxDB + sink::memory
//!                                             │                 └▶ sink::aggregates ─▶ city.aggregates ─▶ areas
//!                                             └─ alert events ─▶ alerts ─▶ city.alerts, changelog, InfluxDB, Alertmanager
//!  acknowledgements ─▶ offsets::OffsetTracker ─▶ commit
//! ```

pub mod alerts;
pub mod areas;
pub mod core;
pub mod offsets;
pub mod stats;

use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rdkafka::consumer::CommitMode;
use rdkafka::message::{Headers, Message};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use self::core::{CoreSettings, Emitted, InputRecord, Processor, SourcePartition};
use self::offsets::OffsetTracker;
use self::stats::PipelineStats;
use crate::config::Settings;
use crate::registry::Registry;
use crate::rollup::SensorWindow;
use crate::sink::aggregates::AggregatesSink;
use crate::sink::alerts::{AlertProducer, AlertStore, Release};
use crate::sink::deadletter::DeadLetterSink;
use crate::sink::influx::InfluxWriter;
use crate::sink::line_protocol::encode_window;
use crate::sink::memory::{AreaStore, MemoryStore};
use crate::source::kafka::KafkaSource;

/// Closed windows waiting for the sink before the consumer blocks (backpressure).
const SINK_QUEUE: usize = 16_384;
/// Batch size when results only go to memory.
const MEMORY_BATCH: usize = 1_024;
/// How often idle partitions are checked and offsets committed at most.
const TICK: Duration = Duration::from_millis(200);

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
            acks,
            ack_inbox: Arc::new(Mutex::new(Some(inbox))),
        }
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
            let producer = AlertProducer::new(&settings.kafka.brokers, &a.topic, &a.changelog_topic, a.protobuf)
                .map_err(|source| PipelineError::Alerts { topic: a.topic.clone(), source })?;
            let restored = restore_alert_states(&settings.kafka.brokers, &a.changelog_topic)
                .map_err(|source| PipelineError::Alerts { topic: a.changelog_topic.clone(), source })?;
            for state in &restored {
                shared.alerts.restore(state);
            }
            tracing::info!(
                alerts = restored.len(),
                firing = restored.iter().filter(|s| s.firing.is_some()).count(),
                "Alert state restored"
            );
            let (tx, rx) = mpsc::channel::<alerts::AlertOut>(4_096);
            let manager = a
                .alertmanager_url
                .clone()
                .map(|url| alerts::Alertmanager { url, resend: Duration::from_millis(a.resend_interval_ms as u64) });
            let influx = settings.influx.as_ref().map(InfluxWriter::new);
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
    let result = run_sensor_stage(settings, registry, shared, shutdown.clone(), sensor_alerts).await;
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
    events: Option<mpsc::Sender<alerts::AlertOut>>,
    acks: Option<mpsc::Receiver<alerts::AckRequest>>,
    /// Fingerprints stage 1 does not own go on to the area stage.
    forward_acks: mpsc::Sender<alerts::AckRequest>,
    restored: Vec<crate::alert::AlertState>,
}

/// The last state of every alert in the changelog.
fn restore_alert_states(brokers: &str, topic: &str) -> Result<Vec<crate::alert::AlertState>, rdkafka::error::KafkaError> {
    let latest = crate::source::changelog::read_latest(brokers, topic)?;
    let mut states: Vec<crate::alert::AlertState> = latest.values().filter_map(|v| serde_json::from_slice(v).ok()).collect();
    states.sort_by(|a, b| a.fingerprint.cmp(&b.fingerprint));
    Ok(states)
}

/// Sends stage 1's pending alerts to the alert task, holding their input offsets twice
/// (alerts topic and changelog) until delivered.
async fn send_alerts(
    pending: Vec<self::core::PendingAlert<(SourcePartition, i64)>>,
    events: &mpsc::Sender<alerts::AlertOut>,
    offsets: &Arc<Mutex<OffsetTracker>>,
) {
    for alert in pending {
        let releases = match alert.hold {
            Some((source, offset)) => {
                {
                    let mut o = offsets.lock().unwrap_or_else(|e| e.into_inner());
                    o.hold(source, offset);
                    o.hold(source, offset);
                }
                let release = |offsets: Arc<Mutex<OffsetTracker>>| {
                    Release(Box::new(move || offsets.lock().unwrap_or_else(|e| e.into_inner()).release(source, offset)))
                };
                [Some(release(offsets.clone())), Some(release(offsets.clone()))]
            }
            None => [None, None],
        };
        if events.send(alerts::AlertOut { event: alert.event, state: alert.state, releases }).await.is_err() {
            tracing::error!("Alert task ended early; alerts will be re-evaluated after restart");
            return;
        }
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
    let offsets = Arc::new(Mutex::new(OffsetTracker::new()));
    let deadletters = DeadLetterSink::new(&settings.kafka.brokers, &settings.kafka.properties, &settings.deadletter_topic, offsets.clone())
        .map_err(|source| PipelineError::Producer { brokers: settings.kafka.brokers.clone(), source })?;
    let mut processor = Processor::new(CoreSettings::from(&settings), registry);
    for state in std::mem::take(&mut alerting.restored) {
        processor.restore_alert(state);
    }
    let mut acks = alerting.acks.take();
    let mut assigned_before = false;
    let mut reloading: Option<tokio::task::JoinHandle<Result<Vec<crate::alert::AlertState>, rdkafka::error::KafkaError>>> = None;
    let aggregates = match &settings.rollup {
        Some(rollup) => Some(
            AggregatesSink::new(&settings.kafka.brokers, &settings.kafka.properties, &rollup.topic, offsets.clone())
                .map_err(|source| PipelineError::Aggregates { topic: rollup.topic.clone(), source })?,
        ),
        None => None,
    };
    let mut announced: std::collections::HashMap<SourcePartition, i64> = std::collections::HashMap::new();
    shared.stats.ready.store(true, Ordering::Relaxed);

    let (results_tx, results_rx) = mpsc::channel::<Emitted>(SINK_QUEUE);
    let give_up = CancellationToken::new();
    let sink = tokio::spawn(run_sink(
        results_rx,
        settings.influx.as_ref().map(InfluxWriter::new),
        |e: &Emitted, out| encode_window(&e.window.result, out),
        settings.influx.as_ref().map_or(MEMORY_BATCH, |i| i.batch_size),
        Duration::from_millis(settings.influx.as_ref().map_or(200, |i| i.flush_interval_ms) as u64),
        {
            let (shared, offsets) = (shared.clone(), offsets.clone());
            move |batch: Vec<Emitted>, to_influx| {
                let count = batch.len() as u64;
                {
                    let mut offsets = offsets.lock().unwrap_or_else(|e| e.into_inner());
                    for e in &batch {
                        offsets.release(e.source, e.window.first_offset);
                    }
                }
                shared.store.insert_batch(batch.into_iter().map(|e| Arc::new(e.window.result)));
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
    loop {
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
                    announced.remove(&revoked);
                }
                let assigned = source.take_assigned();
                for partition in &assigned {
                    processor.ensure_partition(*partition, wall_ms());
                }
                // A partition that moves here brings its sensors' alerts: read the changelog
                // again (in the background) and take every state newer than ours.
                if !assigned.is_empty() && std::mem::replace(&mut assigned_before, true) {
                    if let Some(a) = &settings.alerts {
                        let (brokers, topic) = (settings.kafka.brokers.clone(), a.changelog_topic.clone());
                        reloading = Some(tokio::task::spawn_blocking(move || restore_alert_states(&brokers, &topic)));
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
                forward(&mut emitted, &results_tx, &offsets, aggregates.as_ref(), &source).await;
                if let Some(aggregates) = &aggregates {
                    announce_watermarks(&processor, &source, aggregates, &mut announced);
                }
                if let Some(events) = &alerting.events {
                    send_alerts(processor.take_alerts(), events, &offsets).await;
                }
                shared.stats.tracked_sensors.store(processor.tracked_sensors() as u64, Ordering::Relaxed);
                shared.stats.open_windows.store(processor.open_windows() as u64, Ordering::Relaxed);
                if last_commit.elapsed() >= commit_every {
                    commit_safe_offsets(&source, &processor, &offsets, &shared.stats, CommitMode::Async);
                    last_commit = tokio::time::Instant::now();
                }
            }
            message = source.consumer().recv() => {
                let message = match message {
                    Ok(message) => message,
                    Err(err) => {
                        tracing::warn!(error = %err, "Kafka consumer error");
                        continue;
                    }
                };
                let Some(input) = source.input(message.topic()) else { continue };
                shared.stats.mark_first_record(wall_ms());
                let partition = SourcePartition { kind: input.kind, partition: message.partition() };
                let content_type = message.headers().and_then(|headers| {
                    headers.iter().find(|h| h.key.eq_ignore_ascii_case("content-type")).and_then(|h| h.value).and_then(|v| std::str::from_utf8(v).ok())
                });
                let record = InputRecord { source: partition, offset: message.offset(), format: input.format, payload: message.payload(), content_type };
                match processor.process(record, wall_ms(), &mut emitted) {
                    Ok(()) => shared.stats.record_accepted(input.kind),
                    Err(rejection) => {
                        tracing::debug!(topic = message.topic(), partition = message.partition(), offset = message.offset(), reason = %rejection.reason, detail = %rejection.detail, "Record dead-lettered");
                        shared.stats.record_rejected(input.kind, &rejection);
                        offsets.lock().unwrap_or_else(|e| e.into_inner()).hold(partition, message.offset());
                        deadletters.send(message.topic(), partition, message.offset(), message.key(), message.payload(), &rejection);
                    }
                }
                offsets.lock().unwrap_or_else(|e| e.into_inner()).consumed(partition, message.offset());
                forward(&mut emitted, &results_tx, &offsets, aggregates.as_ref(), &source).await;
                if let Some(events) = &alerting.events {
                    send_alerts(processor.take_alerts(), events, &offsets).await;
                }
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
    commit_safe_offsets(&source, &processor, &offsets, &shared.stats, CommitMode::Sync);
    tracing::info!(records = shared.stats.records_in(), dead_lettered = shared.stats.rejected(), "Pipeline stopped");
    Ok(())
}

/// Hands closed windows to the sink (and the aggregates topic), holding their first input
/// offsets until each has acknowledged them.
async fn forward(
    emitted: &mut Vec<Emitted>,
    results: &mpsc::Sender<Emitted>,
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
            offsets.hold(e.source, e.window.first_offset);
            if aggregates.is_some() {
                offsets.hold(e.source, e.window.first_offset);
            }
        }
    }
    if let Some(aggregates) = aggregates {
        for e in emitted.iter() {
            let name = format!("{}/{}", source.topic_name(e.source), e.source.partition);
            aggregates.send_window(&name, SensorWindow::from(&e.window.result), (e.source, e.window.first_offset));
        }
    }
    for e in emitted.drain(..) {
        if results.send(e).await.is_err() {
            tracing::error!("Sink task ended early; windows will be replayed after restart");
            return;
        }
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
        aggregates.send_watermark(&format!("{}/{}", source.topic_name(partition), partition.partition), partition.kind, watermark);
        announced.insert(partition, watermark);
    }
}

fn commit_safe_offsets(
    source: &KafkaSource,
    processor: &Processor,
    offsets: &Mutex<OffsetTracker>,
    stats: &PipelineStats,
    mode: CommitMode,
) {
    let candidates = offsets.lock().unwrap_or_else(|e| e.into_inner()).commit_candidates(|p| processor.lowest_open_offset(p));
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

/// The sink task: batches items, writes them to InfluxDB (when configured) and then calls
/// `acknowledged` with the batch (which stores them in memory and releases their offsets).
/// A batch InfluxDB never acknowledges is not passed on: its offsets stay held.
pub(crate) async fn run_sink<T: Send + 'static>(
    mut items: mpsc::Receiver<T>,
    mut influx: Option<InfluxWriter>,
    encode: fn(&T, &mut String),
    batch_size: usize,
    flush_every: Duration,
    mut acknowledged: impl FnMut(Vec<T>, bool) + Send,
    give_up: CancellationToken,
) {
    let mut batch: Vec<T> = Vec::new();
    let mut tick = tokio::time::interval(flush_every);
    loop {
        let (flush_now, closed) = tokio::select! {
            item = items.recv() => match item {
                Some(item) => {
                    if let Some(writer) = influx.as_mut() {
                        writer.push(&item, encode);
                    }
                    batch.push(item);
                    (batch.len() >= batch_size, false)
                }
                None => (true, true),
            },
            _ = tick.tick() => (true, false),
        };
        if flush_now && !batch.is_empty() {
            let written = match influx.as_mut() {
                Some(writer) => writer.flush(give_up.cancelled()).await,
                None => true,
            };
            if !written {
                return;
            }
            acknowledged(std::mem::take(&mut batch), influx.is_some());
        }
        if closed {
            return;
        }
    }
}
