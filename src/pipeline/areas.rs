//! Stage 2, the area stage's async shell: consumes the aggregates topic, feeds
//! `rollup::AreaPartition`, writes area results to InfluxDB (`area` measurement) and the
//! in-memory area store, and commits what is safe with the source watermarks as metadata.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rdkafka::consumer::CommitMode;
use rdkafka::error::KafkaError;
use rdkafka::Message;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::alerts::{alert_releases, AckRequest, AlertOut};
use super::offsets::OffsetTracker;
use super::{run_sink, Shared};
use crate::alert::{AlertEngine, AlertInput, AlertState};
use crate::config::Settings;
use crate::model::Kind;
use crate::registry::Registry;
use crate::rollup::{AggregateMessage, AreaCatalog, AreaEmit, AreaPartition, AreaResult, AreaSettings};
use crate::sink::influx::InfluxWriter;
use crate::sink::line_protocol::encode_area;
use crate::source::aggregates::AggregatesSource;

const TICK: Duration = Duration::from_millis(200);
const AREA_QUEUE: usize = 4_096;

#[derive(Debug, thiserror::Error)]
pub enum AreaStageError {
    #[error("cannot consume the aggregates topic: {0}")]
    Consumer(#[source] KafkaError),
    #[error("cannot read the partitions of input topic {topic}: {source}")]
    Metadata { topic: String, source: KafkaError },
    #[error("{0}")]
    Spool(#[from] crate::sink::spool::SpoolError),
}

/// Area results of one emission, holding an aggregates offset until written.
struct AreaBatch {
    partition: i32,
    hold_offset: i64,
    results: Vec<AreaResult>,
}

/// Per aggregates partition: the roll-up state, and the source watermarks as of the last
/// commit plus the markers consumed since (to commit exactly what the offset covers).
#[derive(Default)]
struct PartitionState {
    area: AreaPartition,
    committed_marks: BTreeMap<(Kind, String), i64>,
    marks_since_commit: VecDeque<(i64, Kind, String, i64)>,
}

impl PartitionState {
    /// The watermarks of markers below `offset`, encoded for the commit metadata.
    fn metadata_for(&mut self, offset: i64) -> String {
        while self.marks_since_commit.front().is_some_and(|(o, ..)| *o < offset) {
            if let Some((_, kind, source, wm)) = self.marks_since_commit.pop_front() {
                let entry = self.committed_marks.entry((kind, source)).or_insert(wm);
                *entry = (*entry).max(wm);
            }
        }
        let list: Vec<(Kind, &str, i64)> = self.committed_marks.iter().map(|((k, s), w)| (*k, s.as_str(), *w)).collect();
        serde_json::to_string(&list).unwrap_or_default()
    }

    fn restore(&mut self, metadata: &str) {
        let Ok(list) = serde_json::from_str::<Vec<(Kind, String, i64)>>(metadata) else { return };
        for (kind, source, wm) in list {
            self.area.restore_watermark(kind, source.clone(), wm);
            self.committed_marks.insert((kind, source), wm);
        }
    }
}

pub async fn run(
    settings: Settings,
    registry: Arc<Registry>,
    shared: Shared,
    shutdown: CancellationToken,
    alert_events: Option<mpsc::Sender<Vec<AlertOut>>>,
    restored: Vec<AlertState>,
    mut acks: mpsc::Receiver<AckRequest>,
) -> Result<(), AreaStageError> {
    let Some(rollup) = settings.rollup.clone() else { return Ok(()) };
    let alert_rules: Vec<_> =
        settings.alerts.as_ref().map(|a| a.rules.iter().filter(|r| r.needs_area_stage()).cloned().collect()).unwrap_or_default();
    let mut engine =
        AlertEngine::new(alert_rules, settings.alerts.as_ref().map(|a| a.flap).unwrap_or_default(), settings.max_tracked_sensors);
    for state in restored {
        engine.restore(state);
    }
    let mut alert_scratch = Vec::new();
    let source = AggregatesSource::new(&settings.kafka, &rollup.group_id, &rollup.topic).map_err(AreaStageError::Consumer)?;
    let mut sources_per_kind = [0usize; 4];
    for input in &settings.inputs {
        sources_per_kind[input.kind.index()] =
            source.partitions_of(&input.name).map_err(|source| AreaStageError::Metadata { topic: input.name.clone(), source })?;
    }
    let area_settings = AreaSettings {
        allowed_lateness_ms: settings.timing.allowed_lateness_ms,
        update_horizon_ms: settings.timing.update_horizon_ms(),
        sources_per_kind,
    };
    let catalog = AreaCatalog::from_registry(&registry);
    let offsets: Arc<Mutex<OffsetTracker<i32>>> = Arc::new(Mutex::new(OffsetTracker::new()));
    let (results_tx, results_rx) = super::chunks::chunk_channel::<AreaBatch>(AREA_QUEUE);
    let give_up = CancellationToken::new();
    let sink = tokio::spawn(run_sink(
        results_rx,
        settings
            .influx
            .as_ref()
            .map(|i| InfluxWriter::new(i, "areas").map(|w| w.with_spool_gauge(shared.stats.spool_bytes[1].clone())))
            .transpose()?,
        |batch: &AreaBatch, out| batch.results.iter().for_each(|r| encode_area(r, out)),
        settings.influx.as_ref().map_or(64, |i| (i.batch_size / 16).max(1)),
        Duration::from_millis(settings.influx.as_ref().map_or(200, |i| i.flush_interval_ms) as u64),
        {
            let (shared, offsets) = (shared.clone(), offsets.clone());
            move |batches: &mut Vec<AreaBatch>, _| {
                let mut offsets = offsets.lock().unwrap_or_else(|e| e.into_inner());
                for batch in batches.drain(..) {
                    offsets.release(batch.partition, batch.hold_offset);
                    shared.areas.insert_batch(batch.results);
                }
            }
        },
        give_up.clone(),
    ));

    let mut partitions: HashMap<i32, PartitionState> = HashMap::new();
    let mut emits: Vec<AreaEmit> = Vec::new();
    let mut tick = tokio::time::interval(TICK);
    let mut last_commit = tokio::time::Instant::now();
    let commit_every = Duration::from_millis(settings.commit_interval_ms as u64);
    tracing::info!(topic = %rollup.topic, group = %rollup.group_id, ?sources_per_kind, "Area stage started");
    loop {
        tokio::select! {
            biased;
            _ = shutdown.cancelled() => break,
            Some(request) = acks.recv() => {
                match engine.acknowledge(&request.fingerprint, &request.by, &request.comment, super::wall_ms()) {
                    Ok((event, state)) => {
                        if let Some(events) = &alert_events {
                            let _ = events.send(vec![AlertOut { event: event.clone(), state, releases: [None, None] }]).await;
                        }
                        let _ = request.reply.send(Ok(event));
                    }
                    Err(err) => {
                        let _ = request.reply.send(Err(err));
                    }
                }
            }
            _ = tick.tick() => {
                for revoked in source.take_revoked() {
                    partitions.remove(&revoked);
                    offsets.lock().unwrap_or_else(|e| e.into_inner()).drop_partition(revoked);
                }
                if last_commit.elapsed() >= commit_every {
                    commit(&source, &mut partitions, &offsets, &area_settings, CommitMode::Async);
                    last_commit = tokio::time::Instant::now();
                }
            }
            message = source.consumer().recv() => {
                let message = match message {
                    Ok(m) => m,
                    Err(err) => {
                        tracing::warn!(error = %err, "Aggregates consumer error");
                        continue;
                    }
                };
                let (partition, offset) = (message.partition(), message.offset());
                let state = partitions.entry(partition).or_insert_with(|| {
                    let mut state = PartitionState::default();
                    if let Some(metadata) = source.committed_metadata(partition) {
                        state.restore(&metadata);
                    }
                    state
                });
                match message.payload().map(crate::rollup::encoding::decode) {
                    Some(Ok(aggregate)) => {
                        if let AggregateMessage::Watermark { source, kind, watermark_ms } = &aggregate {
                            state.marks_since_commit.push_back((offset, *kind, source.clone(), *watermark_ms));
                        }
                        state.area.on_message(aggregate, offset, &area_settings, &catalog, &mut emits);
                    }
                    // Only citysense writes this topic; anything else is logged and skipped.
                    other => tracing::warn!(partition, offset, error = ?other.and_then(|r| r.err()), "Unreadable aggregate skipped"),
                }
                {
                    let mut offsets = offsets.lock().unwrap_or_else(|e| e.into_inner());
                    offsets.consumed(partition, offset);
                    for emit in &emits {
                        offsets.hold(partition, emit.hold_offset);
                    }
                }
                for emit in emits.drain(..) {
                    if let Some(events) = &alert_events {
                        for result in &emit.results {
                            engine.evaluate(AlertInput::Area(result), &mut alert_scratch);
                        }
                        for deviation in &emit.deviations {
                            engine.evaluate(AlertInput::Peer(deviation), &mut alert_scratch);
                        }
                        if !alert_scratch.is_empty() {
                            {
                                let mut o = offsets.lock().unwrap_or_else(|e| e.into_inner());
                                for _ in 0..alert_scratch.len() {
                                    o.hold(partition, emit.hold_offset);
                                    o.hold(partition, emit.hold_offset);
                                }
                            }
                            let batch = alert_scratch
                                .drain(..)
                                .map(|(event, state)| AlertOut {
                                    event,
                                    state,
                                    releases: alert_releases(&offsets, partition, emit.hold_offset),
                                })
                                .collect();
                            let _ = events.send(batch).await;
                        }
                    }
                    if results_tx.send_one(AreaBatch { partition, hold_offset: emit.hold_offset, results: emit.results }).await.is_err() {
                        break;
                    }
                }
            }
        }
    }
    drop(results_tx);
    let deadline = tokio::time::Instant::now() + Duration::from_millis(settings.shutdown_timeout_ms as u64);
    let mut sink = sink;
    if tokio::time::timeout_at(deadline, &mut sink).await.is_err() {
        give_up.cancel();
        let _ = sink.await;
    }
    commit(&source, &mut partitions, &offsets, &area_settings, CommitMode::Sync);
    Ok(())
}

fn commit(
    source: &AggregatesSource,
    partitions: &mut HashMap<i32, PartitionState>,
    offsets: &Mutex<OffsetTracker<i32>>,
    settings: &AreaSettings,
    mode: CommitMode,
) {
    let candidates: Vec<(i32, i64)> = offsets
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .commit_candidates(|p| partitions.get(&p).and_then(|s| s.area.lowest_pending_offset()))
        .into_iter()
        // Never inside an area window a restore from there would rebuild from part of its records.
        .map(|(p, offset)| (p, partitions.get(&p).map_or(offset, |s| s.area.safe_commit_offset(offset))))
        .filter(|(_, offset)| *offset > 0)
        .collect();
    if candidates.is_empty() {
        return;
    }
    let with_metadata: Vec<(i32, i64, String)> = candidates
        .iter()
        .map(|(p, offset)| (*p, *offset, partitions.get_mut(p).map(|s| s.metadata_for(*offset)).unwrap_or_default()))
        .collect();
    match source.commit(&with_metadata, mode) {
        Ok(()) => {
            let mut offsets = offsets.lock().unwrap_or_else(|e| e.into_inner());
            for (p, offset) in candidates {
                offsets.mark_committed(p, offset);
                if let Some(state) = partitions.get_mut(&p) {
                    state.area.forget_committed(offset, settings);
                }
            }
        }
        Err(err) => tracing::debug!(error = %err, "Area commit not accepted now; will retry"),
    }
}
