//! The synchronous heart of the pipeline: one input record in, its fate out (accepted into
//! windows, or rejected with a reason), plus any windows that closed. Owns the window state
//! of every assigned input partition and how far into each it has read, and turns that
//! state into checkpoints and back. No I/O, no clocks: the shell passes wall time in.

use std::collections::HashMap;
use std::sync::Arc;

use crate::alert::engine::SeenEntry;
use crate::alert::{AlertEngine, AlertEvent, AlertInput, AlertState, FlapPolicy, Rule};
use crate::config::Settings;
use crate::decode::{Decoder, Format, Rejection};
use crate::domain::enrich::{enrich, DomainMemory, DomainSettings};
use crate::model::{Kind, Reading, WindowResult};
use crate::registry::Registry;
use crate::window::{PartitionWindows, SensorBudget, SensorSlot, WindowSpec, WindowTiming};

/// A stream clock id for the alert engine's deadman timer: one per input partition.
fn clock_of(source: SourcePartition) -> u32 {
    source.kind.index() as u32 * 1_000_000 + source.partition.max(0) as u32
}

/// An input partition: the feed (one topic per kind) and the Kafka partition number.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SourcePartition {
    pub kind: Kind,
    pub partition: i32,
}

/// One record as the source hands it over.
#[derive(Debug, Clone, Copy)]
pub struct InputRecord<'a> {
    pub source: SourcePartition,
    pub offset: i64,
    pub format: Format,
    pub payload: Option<&'a [u8]>,
    pub content_type: Option<&'a str>,
}

/// A window that closed, with the input offset it holds until every sink has it: the
/// record whose processing closed it (or the last record read, for a window closed by the
/// idle timer). A checkpoint past that offset no longer contains the window, so it may
/// only be published once the window is acknowledged (`pipeline::offsets`).
#[derive(Debug, Clone, PartialEq)]
pub struct Emitted {
    pub source: SourcePartition,
    pub hold: i64,
    pub window: WindowResult,
}

/// One input partition's state as of `position` (the next offset to read): what the
/// checkpoint changelog carries (`pipeline::checkpoint`).
#[derive(Debug, Clone, PartialEq)]
pub struct PartitionCheckpoint {
    pub position: i64,
    /// Hash of the window specs and timing the state was built with: a checkpoint taken
    /// under another window configuration is not restored.
    pub layout: u64,
    pub state: Vec<u8>,
}

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum RestoreError {
    #[error("checkpoint was taken with another window configuration")]
    Layout,
    #[error("checkpoint state does not decode: {0}")]
    Decode(String),
}

/// An alert event waiting for its sinks, with the state to checkpoint and the input offset
/// it holds (none for processing-time events such as the deadman timer).
#[derive(Debug, Clone, PartialEq)]
pub struct PendingAlert<H> {
    pub event: AlertEvent,
    pub state: AlertState,
    pub hold: Option<H>,
}

/// What the core needs from the settings.
#[derive(Debug, Clone)]
pub struct CoreSettings {
    pub decoder: Decoder,
    pub windows: [Vec<WindowSpec>; 4],
    pub timing: WindowTiming,
    pub idle_timeout_ms: i64,
    pub max_tracked_sensors: usize,
    pub domain: DomainSettings,
    pub alert_rules: Vec<Rule>,
    pub flap: FlapPolicy,
}

impl From<&Settings> for CoreSettings {
    fn from(s: &Settings) -> Self {
        CoreSettings {
            decoder: s.decoder.clone(),
            windows: s.windows.clone(),
            timing: s.timing,
            idle_timeout_ms: s.idle_timeout_ms,
            max_tracked_sensors: s.max_tracked_sensors,
            domain: s.domain.clone(),
            alert_rules: s.alerts.as_ref().map(|a| a.rules.clone()).unwrap_or_default(),
            flap: s.alerts.as_ref().map(|a| a.flap).unwrap_or_default(),
        }
    }
}

/// One input partition's state: its windows, and by their sensor slots the deadman entries
/// `AlertEngine::seen` gave out for those sensors. A reading restarts its sensor's timer
/// through an index, not a second lookup by id (that table's cache misses cost the core's
/// steady state ~9 % of its rate; see BENCHMARKS.md). The entries go with the windows whose
/// slots they follow: a restored or dropped partition starts without them.
struct Partition {
    windows: PartitionWindows,
    deadman: Vec<Option<SeenEntry>>,
}

impl Partition {
    fn new(windows: PartitionWindows) -> Self {
        Partition { windows, deadman: Vec::new() }
    }

    /// Restarts the deadman timer of `reading`'s sensor, held in `sensor`; `clock` is the
    /// partition's stream clock.
    fn restart_deadman(&mut self, alerts: &mut AlertEngine, clock: u32, sensor: SensorSlot, reading: &Reading<'_>, ts_ms: i64) {
        let kept = &mut self.deadman;
        let slot = sensor.index as usize;
        // A new slot's entry, if any, was the sensor's that had the slot before.
        match kept.get(slot).copied().flatten().filter(|_| !sensor.new) {
            Some(entry) => alerts.seen_again(entry, ts_ms, clock),
            None => {
                let entry = alerts.seen(&reading.sensor_id, reading.kind, &reading.area, ts_ms, clock);
                if kept.len() <= slot {
                    kept.resize(slot + 1, None);
                }
                kept[slot] = entry;
            }
        }
    }
}

pub struct Processor {
    settings: CoreSettings,
    /// `settings.windows`, shared with every partition of the kind.
    specs: [Arc<[WindowSpec]>; 4],
    registry: Arc<Registry>,
    /// Looked up per record: foldhash, not SipHash (the keys are ours, not an attacker's).
    partitions: HashMap<SourcePartition, Partition, foldhash::fast::RandomState>,
    /// Per partition, one past the last offset processed (or restored from a checkpoint).
    positions: HashMap<SourcePartition, i64, foldhash::fast::RandomState>,
    budget: SensorBudget,
    scratch: Vec<WindowResult>,
    memory: DomainMemory,
    alerts: AlertEngine,
    /// Kinds with a deadman rule: only their readings restart the timer.
    deadman_kinds: [bool; 4],
    alert_scratch: Vec<(AlertEvent, AlertState)>,
    pending_alerts: Vec<PendingAlert<(SourcePartition, i64)>>,
}

impl Processor {
    pub fn new(settings: CoreSettings, registry: Arc<Registry>) -> Self {
        let budget = SensorBudget { tracked: 0, cap: settings.max_tracked_sensors };
        let specs = settings.windows.clone().map(Arc::from);
        let rules: Vec<Rule> = settings.alert_rules.iter().filter(|r| !r.needs_area_stage()).cloned().collect();
        let mut deadman_kinds = [false; 4];
        for rule in &rules {
            if matches!(rule.condition, crate::alert::RuleKind::Missing { no_data_for_ms: Some(_), .. }) {
                deadman_kinds[rule.kind.index()] = true;
            }
        }
        let alerts = AlertEngine::new(rules, settings.flap, settings.max_tracked_sensors);
        Processor {
            settings,
            specs,
            registry,
            partitions: HashMap::default(),
            positions: HashMap::default(),
            budget,
            scratch: Vec::new(),
            memory: DomainMemory::default(),
            alerts,
            deadman_kinds,
            alert_scratch: Vec::new(),
            pending_alerts: Vec::new(),
        }
    }

    /// Decodes, validates and windows one record. `Err` is its dead-letter verdict; closed
    /// windows are appended to `emitted` either way.
    pub fn process(&mut self, record: InputRecord<'_>, now_wall_ms: i64, emitted: &mut Vec<Emitted>) -> Result<(), Rejection> {
        let kind = record.source.kind;
        let position = self.positions.entry(record.source).or_insert(0);
        *position = (*position).max(record.offset + 1);
        let reading =
            self.settings.decoder.decode(kind, record.format, record.payload, record.content_type, &self.registry, now_wall_ms)?;
        let (specs, timing) = (&self.specs[kind.index()], &self.settings.timing);
        let partition = self
            .partitions
            .entry(record.source)
            .or_insert_with(|| Partition::new(PartitionWindows::new(kind, specs.clone(), *timing, now_wall_ms)));
        let result = partition.windows.add(&reading, &mut self.budget, now_wall_ms, &mut self.scratch);
        if let (Ok(&sensor), true) = (result.as_ref(), self.deadman_kinds[kind.index()]) {
            // The deadman timer runs on the reading's own time, so a replayed history
            // (the demo's backfill) shows which sensors fell silent and when.
            let ts = reading.ts_ms.min(now_wall_ms);
            partition.restart_deadman(&mut self.alerts, clock_of(record.source), sensor, &reading, ts);
        }
        self.finish_closed(record.source, record.offset, emitted);
        result.map(drop)
    }

    /// Whether `offset` of `source` is already part of this processor's state (a record
    /// before the restored checkpoint, delivered again from the older committed offset).
    pub fn covers(&self, source: SourcePartition, offset: i64) -> bool {
        self.positions.get(&source).is_some_and(|p| offset < *p)
    }

    /// Whether `source` has state here (restored or started).
    pub fn tracks(&self, source: SourcePartition) -> bool {
        self.partitions.contains_key(&source)
    }

    /// One past the last offset of `source` processed or restored.
    pub fn position(&self, source: SourcePartition) -> Option<i64> {
        self.positions.get(&source).copied()
    }

    /// The hold of windows closed without a record: the last record read.
    fn last_read(&self, source: SourcePartition) -> i64 {
        self.positions.get(&source).map_or(-1, |p| p - 1)
    }

    /// Processing-time housekeeping: a partition that has been idle for the configured
    /// time follows the most advanced watermark of the others, so it closes its windows.
    pub fn tick(&mut self, now_wall_ms: i64, emitted: &mut Vec<Emitted>) {
        let Some(leading) = self.partitions.values().map(|p| p.windows.watermark()).max() else { return };
        let mut idle: Vec<SourcePartition> = self
            .partitions
            .iter()
            .map(|(source, p)| (source, &p.windows))
            .filter(|(_, w)| now_wall_ms - w.last_record_wall_ms() >= self.settings.idle_timeout_ms && w.watermark() < leading)
            .map(|(source, _)| *source)
            .collect();
        idle.sort();
        for source in idle {
            if let Some(partition) = self.partitions.get_mut(&source) {
                partition.windows.advance_idle(leading, &mut self.budget, &mut self.scratch);
            }
            self.finish_closed(source, self.last_read(source), emitted);
        }
        // Each stream's clock: its latest event time, advanced by the wall time since its
        // last record (so a stream that stopped still ages).
        let clocks: HashMap<u32, i64> = self
            .partitions
            .iter()
            .map(|(source, p)| (source, &p.windows))
            .filter(|(_, w)| w.watermark() > i64::MIN)
            .map(|(s, w)| {
                (clock_of(*s), w.watermark() + self.settings.timing.out_of_orderness_ms + (now_wall_ms - w.last_record_wall_ms()).max(0))
            })
            .collect();
        self.alerts.tick(now_wall_ms, &|clock| clocks.get(&clock).copied(), &mut self.alert_scratch);
        self.pending_alerts.extend(self.alert_scratch.drain(..).map(|(event, state)| PendingAlert { event, state, hold: None }));
    }

    /// Alert events produced since the last call.
    pub fn take_alerts(&mut self) -> Vec<PendingAlert<(SourcePartition, i64)>> {
        std::mem::take(&mut self.pending_alerts)
    }

    /// An operator acknowledges an alert this processor owns.
    pub fn acknowledge(
        &mut self,
        fingerprint: &str,
        by: &str,
        comment: &str,
        now_ms: i64,
    ) -> Result<PendingAlert<(SourcePartition, i64)>, crate::alert::AckError> {
        self.alerts.acknowledge(fingerprint, by, comment, now_ms).map(|(event, state)| PendingAlert { event, state, hold: None })
    }

    /// Restores alert state from the changelog (alerts of rules this stage evaluates). A
    /// state older than the one held here (by its last evaluation) is ignored.
    pub fn restore_alert(&mut self, state: AlertState) {
        let ours = self.alerts.rules().iter().any(|r| r.owns(&state.rule));
        let newer = self.alerts.state(&state.fingerprint).is_none_or(|held| state.last_eval_ms > held.last_eval_ms);
        if ours && newer {
            self.alerts.restore(state);
        }
    }

    /// Adds coverage and domain metrics to the windows that just closed and hands them on.
    fn finish_closed(&mut self, source: SourcePartition, hold: i64, emitted: &mut Vec<Emitted>) {
        // Most readings close nothing: no drain to set up and tear down for them.
        if self.scratch.is_empty() {
            return;
        }
        for mut window in self.scratch.drain(..) {
            let info = self.registry.get(&window.sensor_id);
            enrich(&mut window, info, &self.settings.domain, &mut self.memory);
            self.alerts.evaluate(AlertInput::Window(&window), &mut self.alert_scratch);
            self.pending_alerts.extend(self.alert_scratch.drain(..).map(|(event, state)| PendingAlert {
                event,
                state,
                hold: Some((source, hold)),
            }));
            emitted.push(Emitted { source, hold, window });
        }
    }

    /// Starts tracking an assigned partition before its first record, so that when it stays
    /// empty it still follows its peers' event time (and its watermark can be announced).
    pub fn ensure_partition(&mut self, source: SourcePartition, now_wall_ms: i64) {
        let (specs, timing) = (&self.specs[source.kind.index()], &self.settings.timing);
        self.partitions
            .entry(source)
            .or_insert_with(|| Partition::new(PartitionWindows::new(source.kind, specs.clone(), *timing, now_wall_ms)));
    }

    /// Every tracked partition and its watermark.
    pub fn watermarks(&self) -> Vec<(SourcePartition, i64)> {
        let mut out: Vec<(SourcePartition, i64)> = self.partitions.iter().map(|(s, p)| (*s, p.windows.watermark())).collect();
        out.sort();
        out
    }

    /// Closes every open window, as at the end of a bounded input (tests, batch replays).
    pub fn drain(&mut self, emitted: &mut Vec<Emitted>) {
        let sources: Vec<SourcePartition> = {
            let mut s: Vec<SourcePartition> = self.partitions.keys().copied().collect();
            s.sort();
            s
        };
        for source in sources {
            if let Some(partition) = self.partitions.get_mut(&source) {
                partition.windows.advance_idle(i64::MAX / 2, &mut self.budget, &mut self.scratch);
            }
            self.finish_closed(source, self.last_read(source), emitted);
        }
    }

    /// The state of `source` as of the last record read (none before its first record).
    pub fn checkpoint(&self, source: SourcePartition) -> Option<PartitionCheckpoint> {
        let position = *self.positions.get(&source)?;
        let windows = &self.partitions.get(&source)?.windows;
        Some(PartitionCheckpoint { position, layout: self.layout(source.kind, crate::window::STATE_FORMAT), state: windows.snapshot() })
    }

    /// Continues `source` from a checkpoint (replacing whatever was held for it).
    pub fn restore_partition(
        &mut self,
        source: SourcePartition,
        checkpoint: &PartitionCheckpoint,
        now_wall_ms: i64,
    ) -> Result<(), RestoreError> {
        // Older pane layouts are still read (`PartitionWindows::restore`).
        let formats = [crate::window::STATE_FORMAT, crate::window::STATE_FORMAT_PER_SLIDE, crate::window::STATE_FORMAT_UNSHARED];
        if !formats.iter().any(|&format| checkpoint.layout == self.layout(source.kind, format)) {
            return Err(RestoreError::Layout);
        }
        self.drop_partition(source);
        let (specs, timing) = (&self.specs[source.kind.index()], &self.settings.timing);
        let windows = PartitionWindows::restore(source.kind, specs.clone(), *timing, now_wall_ms, &checkpoint.state, &mut self.budget)
            .map_err(|e| RestoreError::Decode(e.to_string()))?;
        self.partitions.insert(source, Partition::new(windows));
        self.positions.insert(source, checkpoint.position);
        Ok(())
    }

    /// Identifies the window configuration of `kind` (specs and timing) and the encoding
    /// of window state.
    fn layout(&self, kind: Kind, state_format: u32) -> u64 {
        let described = format!("{state_format}|{:?}|{:?}", self.specs[kind.index()], self.settings.timing);
        crate::alert::fingerprint::fnv1a64(&[&described])
    }

    /// Forgets a partition (revoked in a rebalance); its new owner restores its checkpoint.
    pub fn drop_partition(&mut self, source: SourcePartition) {
        if let Some(partition) = self.partitions.remove(&source) {
            self.budget.tracked -= partition.windows.tracked_sensors();
        }
        self.positions.remove(&source);
    }

    pub fn watermark(&self, source: SourcePartition) -> Option<i64> {
        self.partitions.get(&source).map(|p| p.windows.watermark())
    }

    pub fn tracked_sensors(&self) -> usize {
        self.budget.tracked
    }

    pub fn open_windows(&self) -> usize {
        self.partitions.values().map(|p| p.windows.open_windows()).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decode::Reason;

    const NOW: i64 = 1_764_057_600_000;

    fn processor() -> Processor {
        let mut settings = CoreSettings::from(&Settings::defaults());
        settings.windows[Kind::Pm25.index()] = vec![WindowSpec::tumbling("1m", 60_000)];
        Processor::new(settings, Arc::new(Registry::empty()))
    }

    fn json(sensor: &str, ts: i64, value: f64) -> Vec<u8> {
        format!(r#"{{"sensor_id":"{sensor}","ts":{ts},"value":{value},"unit":"ug/m3"}}"#).into_bytes()
    }

    fn feed(p: &mut Processor, partition: i32, offset: i64, payload: &[u8], now: i64, out: &mut Vec<Emitted>) -> Result<(), Reason> {
        let record = InputRecord {
            source: SourcePartition { kind: Kind::Pm25, partition },
            offset,
            format: Format::Auto,
            payload: Some(payload),
            content_type: None,
        };
        p.process(record, now, out).map_err(|r| r.reason)
    }

    #[test]
    fn a_record_is_either_windowed_or_rejected() {
        let mut p = processor();
        let mut out = Vec::new();
        let base = NOW - 3_600_000;
        assert_eq!(feed(&mut p, 0, 0, &json("a", base, 10.0), NOW, &mut out), Ok(()));
        assert_eq!(feed(&mut p, 0, 1, b"not json", NOW, &mut out), Err(Reason::Undecodable));
        assert_eq!(feed(&mut p, 0, 2, &json("a", base, 11.0), NOW, &mut out), Err(Reason::Duplicate));
        assert_eq!(feed(&mut p, 0, 3, &json("a", NOW + 3_600_000, 11.0), NOW, &mut out), Err(Reason::Future));
        assert_eq!(p.position(P0), Some(4));
        assert_eq!(feed(&mut p, 0, 4, &json("a", base + 600_000, 12.0), NOW, &mut out), Ok(()));
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].window.values.count(), 1);
        assert_eq!(out[0].hold, 4, "held by the record that closed it");
    }

    const P0: SourcePartition = SourcePartition { kind: Kind::Pm25, partition: 0 };

    #[test]
    fn a_checkpoint_restores_into_another_processor_and_covers_what_it_read() {
        let mut p = processor();
        let mut out = Vec::new();
        let base = NOW - 3_600_000;
        feed(&mut p, 0, 10, &json("a", base, 10.0), NOW, &mut out).unwrap();
        feed(&mut p, 0, 11, &json("a", base + 1_000, 20.0), NOW, &mut out).unwrap();
        let checkpoint = p.checkpoint(P0).unwrap();
        assert_eq!(checkpoint.position, 12);
        assert!(p.checkpoint(SourcePartition { kind: Kind::Pm25, partition: 1 }).is_none());

        let mut restored = processor();
        restored.restore_partition(P0, &checkpoint, NOW).unwrap();
        assert!(restored.covers(P0, 11) && !restored.covers(P0, 12));
        assert_eq!(restored.tracked_sensors(), 1);
        assert_eq!(
            feed(&mut restored, 0, 12, &json("a", base + 1_000, 5.0), NOW, &mut out),
            Err(Reason::Duplicate),
            "duplicates are remembered"
        );
        feed(&mut restored, 0, 13, &json("a", base + 600_000, 1.0), NOW, &mut out).unwrap();
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].window.values.level().unwrap().mean, 15.0, "the window holds the records from before the checkpoint");

        let mut other = CoreSettings::from(&Settings::defaults());
        other.windows[Kind::Pm25.index()] = vec![WindowSpec::tumbling("5m", 300_000)];
        let mut reconfigured = Processor::new(other, Arc::new(Registry::empty()));
        assert_eq!(reconfigured.restore_partition(P0, &checkpoint, NOW), Err(RestoreError::Layout));

        // The state format is part of the layout: the previous ones (panes shared per slide,
        // not shared) are read, anything else is not.
        let mut upgraded = processor();
        for format in [crate::window::STATE_FORMAT_PER_SLIDE, crate::window::STATE_FORMAT_UNSHARED] {
            let older = PartitionCheckpoint { layout: upgraded.layout(Kind::Pm25, format), ..checkpoint.clone() };
            assert_eq!(upgraded.restore_partition(P0, &older, NOW), Ok(()));
        }
        let older = PartitionCheckpoint { layout: upgraded.layout(Kind::Pm25, crate::window::STATE_FORMAT_UNSHARED - 1), ..checkpoint };
        assert_eq!(upgraded.restore_partition(P0, &older, NOW), Err(RestoreError::Layout));
    }

    #[test]
    fn a_restored_alert_state_never_replaces_a_newer_one() {
        let mut settings = CoreSettings::from(&Settings::defaults());
        settings.alert_rules = crate::alert::rules::parse_rules(include_str!("../../deploy/rules.toml"), "rules").unwrap();
        let mut p = Processor::new(settings, Arc::new(Registry::empty()));
        let state = |last_eval_ms: i64, rule: &str| {
            let mut s = AlertState::new(format!("fp-{rule}"), rule, "sensor", "s1", crate::model::Area::default(), "1m");
            s.last_eval_ms = last_eval_ms;
            s
        };
        p.restore_alert(state(10, "pile-faulted"));
        p.restore_alert(state(5, "pile-faulted"));
        assert_eq!(p.alerts.state("fp-pile-faulted").unwrap().last_eval_ms, 10);
        p.restore_alert(state(20, "pile-faulted"));
        assert_eq!(p.alerts.state("fp-pile-faulted").unwrap().last_eval_ms, 20);
        p.restore_alert(state(30, "pm25-outlier"));
        assert!(p.alerts.state("fp-pm25-outlier").is_none(), "outliers belong to the area stage");
        p.restore_alert(state(30, "pm25-stuck"));
        assert!(p.alerts.state("fp-pm25-stuck").is_none(), "stuck sensors are judged against peers in the area stage");
        p.restore_alert(state(30, "pm25-no-data/no_data"));
        assert!(p.alerts.state("fp-pm25-no-data/no_data").is_some());
    }

    /// The sensors whose deadman alert fired since the last call.
    fn silenced(p: &mut Processor) -> Vec<String> {
        p.take_alerts().into_iter().filter(|a| a.event.status == "firing").map(|a| a.event.scope_key).collect()
    }

    /// `processor()` with one deadman rule: a PM2.5 sensor silent for 3 minutes.
    fn deadman_processor() -> Processor {
        let mut settings = CoreSettings::from(&Settings::defaults());
        settings.windows[Kind::Pm25.index()] = vec![WindowSpec::tumbling("1m", 60_000)];
        let rule = "[[rule]]\nid = \"silent\"\nkind = \"pm25\"\ntype = \"missing\"\nno_data_for = \"3m\"\nseverity = \"warning\"\n";
        settings.alert_rules = crate::alert::rules::parse_rules(rule, "test").unwrap();
        Processor::new(settings, Arc::new(Registry::empty()))
    }

    #[test]
    fn a_sensor_given_a_forgotten_sensors_slot_keeps_its_own_deadman_timer() {
        let mut p = deadman_processor();
        let (mut out, mut offset) = (Vec::new(), 0);
        let base = NOW - 3_600_000;
        let mut feed_at = |p: &mut Processor, sensor: &str, ts: i64| {
            feed(p, 0, offset, &json(sensor, ts, 10.0), NOW, &mut out).unwrap();
            offset += 1;
        };
        // "a" reports once. "b" reports on: the watermark closes a's window and the window
        // stage forgets "a". "c", new, then takes a's slot.
        feed_at(&mut p, "a", base);
        for step in 0..60 {
            let ts = base + step * 10_000;
            feed_at(&mut p, "b", ts);
            if step >= 30 {
                feed_at(&mut p, "c", ts);
            }
        }
        assert_eq!(p.tracked_sensors(), 2, "\"a\" forgotten by the window stage");
        p.tick(NOW, &mut Vec::new());
        assert_eq!(silenced(&mut p), ["a"], "c's readings restart c's timer, not a's");
        // "c" goes quiet; "b" reports on.
        for step in 60..100 {
            feed_at(&mut p, "b", base + step * 10_000);
        }
        p.tick(NOW, &mut Vec::new());
        assert_eq!(silenced(&mut p), ["c"]);
    }

    #[test]
    fn a_restored_partition_keeps_no_deadman_entry_of_the_state_it_replaced() {
        let (mut p, mut q) = (deadman_processor(), deadman_processor());
        let mut out = Vec::new();
        let base = NOW - 3_600_000;
        // p holds "a" in the partition's first slot, q holds "x" there.
        feed(&mut p, 0, 0, &json("a", base, 1.0), NOW, &mut out).unwrap();
        feed(&mut q, 0, 0, &json("x", base, 1.0), NOW, &mut out).unwrap();
        p.restore_partition(P0, &q.checkpoint(P0).unwrap(), NOW).unwrap();
        for offset in 1..30 {
            feed(&mut p, 0, offset, &json("x", base + offset * 10_000, 1.0), NOW, &mut out).unwrap();
        }
        p.tick(NOW, &mut Vec::new());
        assert_eq!(silenced(&mut p), ["a"], "x's readings, in the slot that was a's, restart x's timer");
    }

    #[test]
    fn an_idle_partition_is_carried_along_after_the_idle_timeout() {
        let mut p = processor();
        let mut out = Vec::new();
        let base = NOW - 3_600_000;
        feed(&mut p, 0, 0, &json("a", base, 1.0), NOW, &mut out).unwrap();
        feed(&mut p, 1, 0, &json("b", base + 3_000_000, 1.0), NOW + 1_000, &mut out).unwrap();
        assert!(out.is_empty());
        p.tick(NOW + 30_000, &mut out);
        assert!(out.is_empty(), "not idle long enough");
        p.tick(NOW + 61_000, &mut out);
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].source.partition, 0);
        assert_eq!(out[0].window.sensor_id, "a");
    }
}
