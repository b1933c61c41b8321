//! The open windows of one input partition: duplicate detection, lateness, the tracked-sensor
//! cap, accumulation, and closing windows as the partition's watermark passes them.
//!
//! Windows are built from panes (one slide long): a reading updates one pane per slide and
//! a window is the merge of the panes it covers when it closes, so a 24 h window sliding
//! every hour costs one update per reading, not 24. Specs with the same slide share their
//! panes ("1h" and "24h/1h" by default), and a tumbling spec reads a finer slide's panes
//! where those are kept long enough anyway ("24h" merges "24h/1h"'s 1 h panes): one of
//! them holds the panes, kept until the longest of them is done with each (`PaneSharing`).
//!
//! Every accepted reading enters all windows that contain it, or none: if any of them has
//! already closed the reading is `late`. Lateness is checked before duplicates, so a re-sent
//! record is `late` once its windows closed and `duplicate` while they are open; that makes
//! pruning the duplicate memory of closed windows invisible.
//!
//! Layout, for memory and speed: each sensor has a slot holding its panes per slide (a short
//! deque ordered by end, in the owning spec's entry) and its accepted timestamps; one schedule (`schedule.rs`, a min-heap) holds, per
//! (sensor, spec), the event time at which it next needs attention (its next window closes
//! or its oldest pane can go). A reading touches only its own sensor's slot; the schedule
//! changes once per new pane, not per reading.
//!
//! Everything a partition remembers between records is in `OpenState`, which serialises
//! into a checkpoint (`pipeline::checkpoint`): a restored partition continues exactly where
//! the checkpoint was taken.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;

use smallvec::SmallVec;
use smol_str::SmolStr;

use super::schedule::{Entry, Schedule, Slot};
use super::{Watermark, WindowSpec};
use crate::aggregate::{Accumulator, Sample};
use crate::decode::{Reason, Rejection};
use crate::model::{Area, Kind, Observation, Reading, WindowResult, WindowValues};

/// Event-time settings shared by every partition.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WindowTiming {
    pub out_of_orderness_ms: i64,
    pub allowed_lateness_ms: i64,
    /// Local time offset used to align windows (Asia/Shanghai: +8 h).
    pub tz_offset_ms: i64,
    pub late_policy: LatePolicy,
}

impl WindowTiming {
    /// How long closed windows stay correctable (0 under `LatePolicy::DeadLetter`).
    pub fn update_horizon_ms(&self) -> i64 {
        match self.late_policy {
            LatePolicy::DeadLetter => 0,
            LatePolicy::Update { horizon_ms } => horizon_ms,
        }
    }
}

/// What happens to a record whose window has already closed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LatePolicy {
    /// Dead-letter it as `late`.
    DeadLetter,
    /// Add it to the closed window and emit the corrected window again (the same point,
    /// overwritten), while the window closed less than `horizon_ms` ago.
    Update { horizon_ms: i64 },
}

/// The cap on tracked sensors, shared by all partitions of one pipeline.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SensorBudget {
    pub tracked: usize,
    pub cap: usize,
}

/// Version of the `OpenState` encoding; part of a checkpoint's layout, so a checkpoint
/// written by a build with another encoding is recognised and replayed past, not misread.
/// 5: a spec may read its windows from a finer slide's panes (`PaneSharing`), holding none
/// of its own. Formats 4 and 3 are still restored (`PartitionWindows::restore`).
pub const STATE_FORMAT: u32 = 5;
/// The encoding where only specs with the same slide shared one pane list.
pub const STATE_FORMAT_PER_SLIDE: u32 = 4;
/// The encoding before panes were shared, restored by moving each group's panes to its owner.
pub const STATE_FORMAT_UNSHARED: u32 = 3;

/// One slide-sized slice of event time for one sensor and slide. A window is the merge of
/// the `size / slide` panes it covers (one pane for a tumbling window), so a reading
/// updates one pane per slide however many windows overlap it.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
struct Pane {
    end_ms: i64,
    acc: Accumulator,
}

/// The panes of one (sensor, spec) and how far its windows have closed.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
struct SpecPanes {
    /// Ascending by end; readings mostly land in the last one. Most specs hold one pane
    /// most of the time, kept inline so that a reading's update does not chase a pointer.
    /// Empty unless this spec owns its slide's panes (`PaneSharing`).
    panes: SmallVec<[Pane; 1]>,
    /// Every window ending at or before this has closed (emitted, or closed before any
    /// pane of it existed).
    closed_through_ms: i64,
    /// This (sensor, spec)'s entry in `OpenState::schedule`, if it has one.
    due_ms: Option<i64>,
}

/// Where `PartitionWindows::add` holds a reading's sensor. A slot is the sensor's until the
/// stage forgets the sensor; `new` says this reading gave it the slot (first reading, or the
/// first since it was forgotten), so whatever a caller kept for the slot is another sensor's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SensorSlot {
    pub index: u32,
    pub new: bool,
}

/// What one sensor needs remembered between records.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
struct SensorState {
    /// Inline up to 23 bytes (every id seen so far): no pointer to chase on a lookup.
    id: SmolStr,
    area: Area,
    /// One per window spec, by spec index (inline for up to four specs, the most a
    /// default kind has).
    specs: SmallVec<[SpecPanes; 4]>,
    /// (event time, sequence number) of the records accepted, ascending by event time;
    /// pruned once every window they fed can no longer change.
    accepted: VecDeque<(i64, Option<u64>)>,
    /// At least the largest sequence number in `accepted` (None: not known since a restore),
    /// so that a reading with a newer one is not searched for.
    #[serde(skip)]
    seq_bound: Option<u64>,
}

#[derive(Debug)]
pub struct PartitionWindows {
    kind: Kind,
    specs: Arc<[WindowSpec]>,
    sharing: PaneSharing,
    timing: WindowTiming,
    open: OpenState,
    last_record_wall_ms: i64,
}

/// Which specs share panes. Pane ends depend only on the pane's length and the time zone,
/// so specs with the same slide have the same panes; and a tumbling spec whose size is a
/// multiple of a group's pane length reads its windows from that group's panes (merging
/// several per window) when the group keeps each pane at least as long as the spec's
/// windows need it. So by default "24h" is the merge of the 1 h panes "24h/1h" keeps
/// anyway, and a reading updates two panes, not three. (A sliding spec keeps its own: it
/// would merge more panes at every slide.) The spec whose slide is the pane length holds
/// the panes.
#[derive(Debug, Clone)]
struct PaneSharing {
    groups: SmallVec<[PaneGroup; 4]>,
    /// Spec index → its group's index.
    group_of: SmallVec<[usize; 4]>,
}

#[derive(Debug, Clone)]
struct PaneGroup {
    /// The spec holding the panes: the first member whose slide is `pane_ms`.
    owner: usize,
    /// Spec indexes, ascending.
    members: SmallVec<[usize; 4]>,
    /// The panes' length: the owner's slide, dividing every member's slide.
    pane_ms: i64,
    /// The longest `size − pane_ms` among the members: how long after its end a pane is
    /// still part of an open window.
    span_ms: i64,
}

impl PaneSharing {
    fn new(specs: &[WindowSpec]) -> Self {
        // Equal slides first: the same panes.
        let mut groups: Vec<PaneGroup> = Vec::new();
        for (index, spec) in specs.iter().enumerate() {
            let span_ms = spec.size_ms - spec.slide_ms;
            match groups.iter_mut().find(|g| g.pane_ms == spec.slide_ms) {
                Some(group) => {
                    group.members.push(index);
                    group.span_ms = group.span_ms.max(span_ms);
                }
                None => groups.push(PaneGroup { owner: index, members: smallvec::smallvec![index], pane_ms: spec.slide_ms, span_ms }),
            }
        }
        // Then a coarser group reads from a finer one's panes where those are kept long
        // enough for all its members (so no pane is kept longer than before); of several,
        // the one with the longest panes, for the fewest panes per window.
        while let Some((coarse, fine)) = foldable(&groups, specs) {
            let moved = std::mem::take(&mut groups[coarse].members);
            groups[fine].members.extend(moved);
            groups[fine].members.sort_unstable();
            groups.remove(coarse);
        }
        let mut group_of = smallvec::smallvec![0; specs.len()];
        for (at, group) in groups.iter().enumerate() {
            for &j in &group.members {
                group_of[j] = at;
            }
        }
        PaneSharing { groups: groups.into_iter().collect(), group_of }
    }

    /// The group of the spec at `spec_index`.
    fn of(&self, spec_index: usize) -> &PaneGroup {
        &self.groups[self.group_of[spec_index]]
    }
}

/// A group (`.0`) of tumbling specs that can all read their windows from another group's
/// (`.1`) panes: finer panes that divide theirs, kept at least as long as their windows
/// need.
fn foldable(groups: &[PaneGroup], specs: &[WindowSpec]) -> Option<(usize, usize)> {
    groups.iter().enumerate().find_map(|(at, coarse)| {
        if !coarse.members.iter().all(|&j| specs[j].size_ms == specs[j].slide_ms) {
            return None;
        }
        let fits = |fine: &PaneGroup| {
            fine.pane_ms < coarse.pane_ms
                && coarse.pane_ms % fine.pane_ms == 0
                && coarse.members.iter().all(|&j| specs[j].size_ms - fine.pane_ms <= fine.span_ms)
        };
        let (fine, _) = groups.iter().enumerate().filter(|(_, g)| fits(g)).max_by_key(|(_, g)| g.pane_ms)?;
        Some((at, fine))
    })
}

/// The part of a partition's window state that a checkpoint carries.
#[derive(Debug, serde::Deserialize)]
struct OpenState {
    watermark: Watermark,
    /// Sensor id → slot. foldhash: fast on short ids, seeded per map.
    slots: HashMap<SmolStr, Slot, foldhash::fast::RandomState>,
    /// Slots; `None` where a forgotten sensor was (reused first).
    sensors: Vec<Option<SensorState>>,
    free_slots: Vec<Slot>,
    /// When each (sensor, spec) next needs attention; closing takes the earliest first, so
    /// windows close in order of end. Its live entries are those `SpecPanes::due_ms` names.
    schedule: Schedule,
    /// Windows with data that have not closed yet.
    open_windows: usize,
}

impl SpecPanes {
    fn new() -> Self {
        SpecPanes { panes: SmallVec::new(), closed_through_ms: i64::MIN, due_ms: None }
    }

    /// The earliest window of `spec` that holds data in `panes` (its group's) and has not
    /// closed.
    fn next_open_window(&self, panes: &[Pane], spec: &WindowSpec, grid: PaneGrid) -> Option<i64> {
        panes.iter().find_map(|pane| {
            let (first, last) = grid.window_ends(spec, pane.end_ms);
            let first = first_window_after(first, self.closed_through_ms, spec.slide_ms);
            (first <= last).then_some(first)
        })
    }

    /// Whether every window of `spec` that uses the pane ending at `pane_end_ms` has closed.
    fn done_with(&self, spec: &WindowSpec, pane_end_ms: i64, grid: PaneGrid) -> bool {
        grid.window_ends(spec, pane_end_ms).1 <= self.closed_through_ms
    }
}

/// Where a group's panes lie in event time: `pane_ms` long, ending where local time
/// (UTC + `tz_offset_ms`) is a multiple of `pane_ms`.
#[derive(Debug, Clone, Copy)]
struct PaneGrid {
    pane_ms: i64,
    tz_offset_ms: i64,
}

impl PaneGrid {
    fn of(group: &PaneGroup, timing: &WindowTiming) -> Self {
        PaneGrid { pane_ms: group.pane_ms, tz_offset_ms: timing.tz_offset_ms }
    }

    /// The first and last end of `spec`'s windows that use the pane ending at
    /// `pane_end_ms`: the first end of `spec`'s grid at or after the pane's, and the last
    /// before the pane has slid out (pane end + size − pane length, or the grid end
    /// before it).
    fn window_ends(self, spec: &WindowSpec, pane_end_ms: i64) -> (i64, i64) {
        let last = pane_end_ms + spec.size_ms - self.pane_ms;
        if spec.slide_ms == self.pane_ms {
            // Pane ends are on the spec's grid: no division.
            return (pane_end_ms, last);
        }
        (pane_end(pane_end_ms - 1, spec, self.tz_offset_ms), pane_end(last, spec, self.tz_offset_ms) - spec.slide_ms)
    }
}

/// Whether the pane ending at `pane_end_ms` is part of the window of `spec` ending at
/// `end_ms`.
fn within(pane_end_ms: i64, spec: &WindowSpec, end_ms: i64) -> bool {
    end_ms - spec.size_ms < pane_end_ms && pane_end_ms <= end_ms
}

/// Whether a pane holds data for the window of `spec` ending at `end_ms`.
fn covers(panes: &[Pane], spec: &WindowSpec, end_ms: i64) -> bool {
    panes.iter().any(|p| within(p.end_ms, spec, end_ms))
}

/// The values of the window of `spec` ending at `end_ms`, merged from `panes`; `None` when
/// none holds data. A window of one pane (every tumbling window with its own panes) is read
/// in place, not copied first.
fn window_values(panes: &[Pane], spec: &WindowSpec, end_ms: i64) -> Option<WindowValues> {
    let mut covering = panes.iter().filter(|p| within(p.end_ms, spec, end_ms));
    let first = covering.next()?;
    let Some(second) = covering.next() else { return Some(first.acc.finish(end_ms)) };
    let mut merged = first.acc.clone();
    merged.merge(&second.acc);
    for pane in covering {
        merged.merge(&pane.acc);
    }
    Some(merged.finish(end_ms))
}

impl SpecPanes {
    /// Where the pane ending at `end_ms` is (`Ok`) or would go (`Err`).
    fn find(&self, end_ms: i64) -> Result<usize, usize> {
        match self.panes.last() {
            Some(last) if last.end_ms == end_ms => Ok(self.panes.len() - 1),
            Some(last) if last.end_ms < end_ms => Err(self.panes.len()),
            _ => self.panes.binary_search_by_key(&end_ms, |p| p.end_ms),
        }
    }

    fn insert(&mut self, at: usize, end_ms: i64, observation: &Observation) {
        self.panes.insert(at, Pane { end_ms, acc: Accumulator::for_observation(observation) });
    }
}

/// When a pane may go: once the watermark reaches this, no window using it (the longest
/// of its sharers' reaching `span_ms` past its end) can close or be corrected any more.
fn expiry(pane_end_ms: i64, span_ms: i64, timing: &WindowTiming) -> i64 {
    pane_end_ms + span_ms + timing.allowed_lateness_ms + timing.update_horizon_ms()
}

/// When (sensor, `spec_index`) next needs attention, given the sensor's `spec_states`: its
/// next window closes, or its group's oldest pane can go. `None` once there is nothing left
/// to do.
fn next_due(spec_states: &[SpecPanes], specs: &[WindowSpec], group: &PaneGroup, spec_index: usize, timing: &WindowTiming) -> Option<i64> {
    let panes = &spec_states[group.owner].panes;
    let closes = spec_states[spec_index]
        .next_open_window(panes, &specs[spec_index], PaneGrid::of(group, timing))
        .map(|end| end + timing.allowed_lateness_ms);
    closes.into_iter().chain(oldest_pane_expiry(spec_states, specs, group, timing)).min()
}

/// When the oldest pane of `group` can go, once every spec sharing it has closed the
/// windows that use it; `None` while one has not, or when there is no pane.
fn oldest_pane_expiry(spec_states: &[SpecPanes], specs: &[WindowSpec], group: &PaneGroup, timing: &WindowTiming) -> Option<i64> {
    let front = spec_states[group.owner].panes.first()?;
    let grid = PaneGrid::of(group, timing);
    let done = group.members.iter().all(|&j| spec_states[j].done_with(&specs[j], front.end_ms, grid));
    done.then(|| expiry(front.end_ms, group.span_ms, timing))
}

impl SensorState {
    fn new(id: SmolStr, specs: usize) -> Self {
        SensorState {
            id,
            area: Area::default(),
            specs: (0..specs).map(|_| SpecPanes::new()).collect(),
            accepted: VecDeque::new(),
            seq_bound: None,
        }
    }

    /// Why a reading at `ts_ms` with `seq` repeats one already accepted, if it does.
    fn duplicate(&self, ts_ms: i64, seq: Option<u64>) -> Option<String> {
        // Readings mostly come in order: one newer than every accepted one (the last is the
        // newest) repeats no timestamp, and one with a sequence number above the bound
        // repeats no sequence number, without a search through the sensor's history.
        let newest = self.accepted.back().is_none_or(|(last, _)| ts_ms > *last);
        if !newest && self.accepted.binary_search_by_key(&ts_ms, |(ts, _)| *ts).is_ok() {
            return Some(format!("sensor {} already sent ts {ts_ms}", self.id));
        }
        let seq = seq?;
        if self.accepted.is_empty() || self.seq_bound.is_some_and(|bound| seq > bound) {
            return None;
        }
        let (ts, _) = self.accepted.iter().find(|(_, s)| *s == Some(seq))?;
        Some(format!("sensor {} already sent seq {seq} (ts {ts})", self.id))
    }

    fn accept(&mut self, ts_ms: i64, seq: Option<u64>) {
        if let Some(seq) = seq {
            let bound = self.seq_bound.unwrap_or_else(|| self.accepted.iter().filter_map(|(_, s)| *s).max().unwrap_or(0));
            self.seq_bound = Some(bound.max(seq));
        }
        match self.accepted.back() {
            Some((last, _)) if *last > ts_ms => {
                let at = self.accepted.partition_point(|(ts, _)| *ts < ts_ms);
                self.accepted.insert(at, (ts_ms, seq));
            }
            _ => self.accepted.push_back((ts_ms, seq)),
        }
    }

    fn holds_panes(&self) -> bool {
        self.specs.iter().any(|s| !s.panes.is_empty())
    }
}

/// Written as the derived form would write it (format 4), with the schedule as its live
/// entries, ascending: the entries left behind in the heap are not state.
impl serde::Serialize for OpenState {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeStruct;
        let mut live: Vec<Entry> = Vec::new();
        for (slot, state) in self.sensors.iter().enumerate() {
            let Some(state) = state else { continue };
            live.extend(state.specs.iter().enumerate().filter_map(|(j, panes)| panes.due_ms.map(|due| (due, slot as Slot, j as u32))));
        }
        live.sort_unstable();
        let mut fields = serializer.serialize_struct("OpenState", 6)?;
        fields.serialize_field("watermark", &self.watermark)?;
        fields.serialize_field("slots", &self.slots)?;
        fields.serialize_field("sensors", &self.sensors)?;
        fields.serialize_field("free_slots", &self.free_slots)?;
        fields.serialize_field("schedule", &live)?;
        fields.serialize_field("open_windows", &self.open_windows)?;
        fields.end()
    }
}

impl OpenState {
    /// Moves the schedule entry of (`slot`, `spec_index`) to its current due time: the new
    /// entry goes in, the old one stays behind until it comes up and is skipped.
    fn reschedule(schedule: &mut Schedule, slot: Slot, spec_index: u32, due: Option<i64>, panes: &mut SpecPanes) {
        if panes.due_ms == due {
            return;
        }
        if let Some(new) = due {
            schedule.push((new, slot, spec_index));
        }
        panes.due_ms = due;
    }

    /// A slot for a sensor seen for the first time.
    fn track(&mut self, id: &str, specs: usize) -> Slot {
        let id = SmolStr::new(id);
        let state = SensorState::new(id.clone(), specs);
        let free = self.free_slots.pop().filter(|slot| self.sensors.get(*slot as usize).is_some_and(Option::is_none));
        let slot = match free {
            Some(slot) => {
                self.sensors[slot as usize] = Some(state);
                slot
            }
            None => {
                self.sensors.push(Some(state));
                (self.sensors.len() - 1) as Slot
            }
        };
        self.slots.insert(id, slot);
        slot
    }

    fn forget(&mut self, slot: Slot) {
        if let Some(state) = self.sensors.get_mut(slot as usize).and_then(Option::take) {
            self.slots.remove(&state.id);
            self.free_slots.push(slot);
        }
    }
}

impl PartitionWindows {
    pub fn new(kind: Kind, specs: Arc<[WindowSpec]>, timing: WindowTiming, now_wall_ms: i64) -> Self {
        PartitionWindows {
            kind,
            sharing: PaneSharing::new(&specs),
            specs,
            open: OpenState {
                watermark: Watermark::new(timing.out_of_orderness_ms),
                slots: HashMap::default(),
                sensors: Vec::new(),
                free_slots: Vec::new(),
                schedule: Schedule::default(),
                open_windows: 0,
            },
            last_record_wall_ms: now_wall_ms,
            timing,
        }
    }

    /// The open state as checkpoint bytes (bincode).
    pub fn snapshot(&self) -> Vec<u8> {
        // Serialising plain maps of numbers and strings into memory cannot fail.
        bincode::serialize(&self.open).unwrap_or_default()
    }

    /// A partition continuing from `snapshot` (`STATE_FORMAT`, or an older format it reads);
    /// its sensors count against `budget`.
    pub fn restore(
        kind: Kind,
        specs: Arc<[WindowSpec]>,
        timing: WindowTiming,
        now_wall_ms: i64,
        snapshot: &[u8],
        budget: &mut SensorBudget,
    ) -> Result<Self, bincode::Error> {
        let open: OpenState = bincode::deserialize(snapshot)?;
        if open.sensors.iter().flatten().any(|state| state.specs.len() != specs.len()) {
            return Err(Box::new(bincode::ErrorKind::Custom(format!("window state is not for {} window specs", specs.len()))));
        }
        budget.tracked += open.slots.len();
        let mut windows =
            PartitionWindows { kind, sharing: PaneSharing::new(&specs), specs, timing, open, last_record_wall_ms: now_wall_ms };
        windows.share_unshared_panes();
        Ok(windows)
    }

    /// Brings an older state to the current layout, where only owners hold panes:
    /// - format 3 (`STATE_FORMAT_UNSHARED`) holds a pane list per spec. The lists of specs
    ///   with the same slide hold the same panes, the longer-lived spec's going further
    ///   back: the longest becomes the owner's.
    /// - formats 3 and 4 (`STATE_FORMAT_PER_SLIDE`) give a spec that now reads a finer
    ///   group's panes ("24h" beside "24h/1h") panes of its own slide. They are dropped: the
    ///   group's panes hold the same readings, as the group keeps each pane as long as that
    ///   spec's windows need it (`PaneSharing`).
    ///
    /// Then the schedule is rebuilt for the owners' panes. A current state is unchanged.
    fn share_unshared_panes(&mut self) {
        let sharing = &self.sharing;
        let unshared = |state: &SensorState| (0..state.specs.len()).any(|i| sharing.of(i).owner != i && !state.specs[i].panes.is_empty());
        if !self.open.sensors.iter().flatten().any(unshared) {
            return;
        }
        let (specs, timing) = (&*self.specs, &self.timing);
        self.open.schedule.clear();
        for (slot, state) in self.open.sensors.iter_mut().enumerate() {
            let Some(state) = state else { continue };
            for group in &sharing.groups {
                let longest = group
                    .members
                    .iter()
                    .copied()
                    .filter(|&j| specs[j].slide_ms == group.pane_ms)
                    .max_by_key(|&j| (state.specs[j].panes.len(), usize::MAX - j))
                    .unwrap_or(group.owner);
                let panes = std::mem::take(&mut state.specs[longest].panes);
                for &j in &group.members {
                    state.specs[j].panes.clear();
                }
                state.specs[group.owner].panes = panes;
            }
            for j in 0..specs.len() {
                let due = next_due(&state.specs, specs, sharing.of(j), j, timing);
                state.specs[j].due_ms = due;
                if let Some(due) = due {
                    self.open.schedule.push((due, slot as Slot, j as u32));
                }
            }
        }
    }

    pub fn kind(&self) -> Kind {
        self.kind
    }

    pub fn watermark(&self) -> i64 {
        self.open.watermark.current()
    }

    pub fn tracked_sensors(&self) -> usize {
        self.open.slots.len()
    }

    /// Windows with data that have not closed yet.
    pub fn open_windows(&self) -> usize {
        self.open.open_windows
    }

    pub fn last_record_wall_ms(&self) -> i64 {
        self.last_record_wall_ms
    }

    /// Adds one validated reading; closes the windows its watermark passes. The sensor's
    /// slot comes back, for callers that keep something per sensor beside this stage's
    /// state (the deadman timer's entry) and look it up by slot, not by id.
    pub fn add(
        &mut self,
        reading: &Reading<'_>,
        budget: &mut SensorBudget,
        now_wall_ms: i64,
        closed: &mut Vec<WindowResult>,
    ) -> Result<SensorSlot, Rejection> {
        self.last_record_wall_ms = now_wall_ms;
        // Borrowed, not cloned: an `Arc` clone per reading is two atomic operations.
        let (specs, timing) = (&*self.specs, self.timing);
        let vendor: &str = &reading.vendor;
        let reject = |reason, detail: String| Err(Rejection::new(reason, detail).with_vendor(vendor));

        let watermark = self.open.watermark.current();
        let update_horizon = timing.update_horizon_ms();
        // A reading at or past the watermark (every in-order one) is late for no spec:
        // each window holding it ends after it.
        let maybe_late = reading.ts_ms < watermark;
        for spec in specs.iter().filter(|_| maybe_late) {
            // The earliest-closing window containing the reading ends with its pane.
            let pane_end = pane_end(reading.ts_ms, spec, timing.tz_offset_ms);
            let closes_at = pane_end + timing.allowed_lateness_ms;
            if closes_at.saturating_add(update_horizon) <= watermark {
                return reject(
                    Reason::Late,
                    format!(
                        "window {} starting {} closed; watermark {}",
                        spec.label,
                        crate::decode::validate::format_ms(pane_end - spec.size_ms),
                        crate::decode::validate::format_ms(watermark)
                    ),
                );
            }
        }
        let sensor = match self.open.slots.get(&*reading.sensor_id) {
            Some(&slot) => {
                let duplicate =
                    self.open.sensors.get(slot as usize).and_then(Option::as_ref).and_then(|s| s.duplicate(reading.ts_ms, reading.seq));
                if let Some(detail) = duplicate {
                    return reject(Reason::Duplicate, detail);
                }
                SensorSlot { index: slot, new: false }
            }
            None => {
                if budget.tracked >= budget.cap {
                    return reject(Reason::Cardinality, format!("{} sensors tracked, the configured cap", budget.cap));
                }
                budget.tracked += 1;
                SensorSlot { index: self.open.track(&reading.sensor_id, specs.len()), new: true }
            }
        };
        let slot = sensor.index;
        let Reading { ts_ms, seq, observation, ref area, .. } = *reading;
        let open = &mut self.open;
        let Some(state) = open.sensors.get_mut(slot as usize).and_then(Option::as_mut) else { return Ok(sensor) };
        state.accept(ts_ms, seq);
        if !area.matches(&state.area) {
            state.area = area.to_area();
        }
        let mut corrected = Vec::new();
        let sample = Sample::new(ts_ms, observation);
        let spec_states = &mut state.specs[..];
        // One pane update per slide, for all the specs sharing its panes.
        for group in &self.sharing.groups {
            let (owner, spec, grid) = (group.owner, &specs[group.owner], PaneGrid::of(group, &timing));
            // Most readings fall in the newest pane: no division to find its end.
            let end = match spec_states[owner].panes.last() {
                Some(last) if last.end_ms - spec.slide_ms <= ts_ms && ts_ms < last.end_ms => last.end_ms,
                _ => pane_end(ts_ms, spec, timing.tz_offset_ms),
            };
            let at = match spec_states[owner].find(end) {
                Ok(at) => at,
                Err(at) => {
                    // Windows that closed before they had data stay closed; the new pane's
                    // other windows are open unless another pane already opened them.
                    for &j in &group.members {
                        let (sharer, panes) = (&specs[j], &spec_states[owner].panes);
                        let closed_through = spec_states[j].closed_through_ms.max(watermark.saturating_sub(timing.allowed_lateness_ms));
                        let (first, last_window_end) = grid.window_ends(sharer, end);
                        let mut window_end = first_window_after(first, closed_through, sharer.slide_ms);
                        while window_end <= last_window_end {
                            if !covers(panes, sharer, window_end) {
                                open.open_windows += 1;
                            }
                            window_end += sharer.slide_ms;
                        }
                        spec_states[j].closed_through_ms = closed_through;
                    }
                    spec_states[owner].insert(at, end, &observation);
                    for &j in &group.members {
                        let due = next_due(spec_states, specs, group, j, &timing);
                        OpenState::reschedule(&mut open.schedule, slot, j as u32, due, &mut spec_states[j]);
                    }
                    at
                }
            };
            spec_states[owner].panes[at].acc.add(&sample);
            // Windows already closed but still correctable (late policy `update`); none
            // holding the reading ends before its pane.
            if end + timing.allowed_lateness_ms <= watermark {
                for &j in &group.members {
                    let (mut window_end, last_window_end) = grid.window_ends(&specs[j], end);
                    while window_end <= last_window_end && window_end + timing.allowed_lateness_ms <= watermark {
                        corrected.push((j, window_end));
                        window_end += specs[j].slide_ms;
                    }
                }
            }
        }
        for (spec_index, end_ms) in corrected {
            if let Some(window) = self.window_of(slot, spec_index, end_ms) {
                closed.push(window);
            }
        }
        self.open.watermark.observe(ts_ms);
        self.close_due(budget, closed);
        Ok(sensor)
    }

    /// Lets an idle partition follow the event time of its peers, then closes what is due.
    pub fn advance_idle(&mut self, watermark_ms: i64, budget: &mut SensorBudget, closed: &mut Vec<WindowResult>) {
        self.open.watermark.advance_to(watermark_ms);
        self.close_due(budget, closed);
    }

    /// The window of `slot` and spec ending at `end_ms`, or `None` when no pane holds data.
    fn window_of(&self, slot: Slot, spec_index: usize, end_ms: i64) -> Option<WindowResult> {
        let state = self.open.sensors.get(slot as usize)?.as_ref()?;
        let spec = &self.specs[spec_index];
        let values = window_values(&state.specs[self.sharing.of(spec_index).owner].panes, spec, end_ms)?;
        Some(WindowResult {
            kind: self.kind,
            sensor_id: state.id.clone(),
            window: spec.label.clone(),
            start_ms: end_ms - spec.size_ms,
            end_ms,
            area: state.area.clone(),
            values,
            coverage: None,
            domain: None,
        })
    }

    /// Closes every window the watermark has passed, oldest end first; drops panes no
    /// window can use any more and forgets sensors with nothing left.
    fn close_due(&mut self, budget: &mut SensorBudget, closed: &mut Vec<WindowResult>) {
        let timing = self.timing;
        let watermark = self.open.watermark.current();
        // Most readings close nothing.
        if self.open.schedule.peek().is_none_or(|(due, _, _)| due > watermark) {
            return;
        }
        let specs = self.specs.clone();
        let sharing = self.sharing.clone();
        // Timestamps whose every window can no longer change are late if sent again.
        let min_size = specs.iter().map(|s| s.size_ms).min().unwrap_or(0);
        let dedup_horizon =
            watermark.saturating_sub(timing.allowed_lateness_ms).saturating_sub(timing.update_horizon_ms()).saturating_sub(min_size);
        while let Some((due, slot, spec_index)) = self.open.schedule.peek() {
            if due > watermark {
                break;
            }
            self.open.schedule.pop();
            let index = spec_index as usize;
            // An entry left behind by a reschedule: no longer its (sensor, spec)'s time.
            let live = self
                .open
                .sensors
                .get(slot as usize)
                .and_then(Option::as_ref)
                .and_then(|s| s.specs.get(index))
                .is_some_and(|panes| panes.due_ms == Some(due));
            if !live {
                continue;
            }
            let group = sharing.of(index);
            let owner = group.owner;
            let spec = &specs[index];
            // One window per turn, so that the windows of all sensors close in order of end.
            let closing = self.open.sensors.get_mut(slot as usize).and_then(Option::as_mut).and_then(|state| {
                state.specs[index].due_ms = None;
                let end = state.specs[index]
                    .next_open_window(&state.specs[owner].panes, spec, PaneGrid::of(group, &timing))
                    .filter(|end| end + timing.allowed_lateness_ms <= watermark)?;
                state.specs[index].closed_through_ms = end;
                Some(end)
            });
            if let Some(end_ms) = closing {
                self.open.open_windows = self.open.open_windows.saturating_sub(1);
                if let Some(window) = self.window_of(slot, spec_index as usize, end_ms) {
                    closed.push(window);
                }
            }
            let Some(state) = self.open.sensors.get_mut(slot as usize).and_then(Option::as_mut) else { continue };
            let mut progressed = closing.is_some();
            // The oldest panes go once every spec sharing them is done with them.
            while oldest_pane_expiry(&state.specs, &specs, group, &timing).is_some_and(|at| at <= watermark) {
                state.specs[owner].panes.remove(0);
                progressed = true;
            }
            let panes = &mut state.specs[owner].panes;
            if progressed && panes.len() <= 1 && panes.spilled() {
                // Back inline once the window that needed two panes has closed.
                panes.shrink_to_fit();
            }
            // What this turn changed can move the others sharing the panes too.
            for &j in &group.members {
                let mut due = next_due(&state.specs, &specs, group, j, &timing);
                if j == index && !progressed && due.is_some_and(|d| d <= watermark) {
                    debug_assert!(false, "a due (sensor, spec) neither closed a window nor dropped a pane");
                    due = Some(watermark.saturating_add(1));
                }
                OpenState::reschedule(&mut self.open.schedule, slot, j as u32, due, &mut state.specs[j]);
            }
            if state.holds_panes() {
                while state.accepted.front().is_some_and(|(ts, _)| *ts < dedup_horizon) {
                    state.accepted.pop_front();
                }
            } else {
                self.open.forget(slot);
                budget.tracked = budget.tracked.saturating_sub(1);
            }
        }
    }
}

/// The first window end after `after_ms` on the grid of windows ending at `end_ms`.
fn first_window_after(end_ms: i64, after_ms: i64, slide_ms: i64) -> i64 {
    if end_ms > after_ms {
        end_ms
    } else {
        end_ms + ((after_ms - end_ms) / slide_ms + 1) * slide_ms
    }
}

/// The end of the slide-sized pane of `spec` that contains `ts_ms`.
fn pane_end(ts_ms: i64, spec: &WindowSpec, tz_offset_ms: i64) -> i64 {
    (ts_ms + tz_offset_ms).div_euclid(spec.slide_ms) * spec.slide_ms - tz_offset_ms + spec.slide_ms
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{AreaRef, Observation};

    const MINUTE: i64 = 60_000;

    fn timing() -> WindowTiming {
        WindowTiming { out_of_orderness_ms: 30_000, allowed_lateness_ms: 2 * MINUTE, tz_offset_ms: 0, late_policy: LatePolicy::DeadLetter }
    }

    fn reading(sensor: &str, ts_ms: i64, value: f64, seq: Option<u64>) -> Reading<'_> {
        Reading {
            sensor_id: sensor.into(),
            kind: Kind::Pm25,
            ts_ms,
            observation: Observation::Level(value),
            area: AreaRef::default(),
            vendor: "v".into(),
            seq,
        }
    }

    struct Harness {
        windows: PartitionWindows,
        budget: SensorBudget,
        closed: Vec<WindowResult>,
    }

    impl Harness {
        fn new(specs: Vec<WindowSpec>, cap: usize) -> Self {
            Harness {
                windows: PartitionWindows::new(Kind::Pm25, specs.into(), timing(), 0),
                budget: SensorBudget { tracked: 0, cap },
                closed: Vec::new(),
            }
        }

        fn add(&mut self, r: Reading<'_>) -> Result<(), Reason> {
            self.windows.add(&r, &mut self.budget, 0, &mut self.closed).map(drop).map_err(|e| e.reason)
        }
    }

    fn minute() -> Vec<WindowSpec> {
        vec![WindowSpec::tumbling("1m", MINUTE)]
    }

    #[test]
    fn out_of_order_within_the_bound_is_accepted_and_windows_close_after_lateness() {
        let mut h = Harness::new(minute(), 10);
        h.add(reading("a", 10_000, 1.0, None)).unwrap();
        h.add(reading("a", 50_000, 3.0, None)).unwrap();
        h.add(reading("a", 20_000, 2.0, None)).unwrap(); // out of order, same window
                                                         // Watermark must pass end (60 s) + lateness (120 s) = 180 s: needs an event at 210 s.
        h.add(reading("a", 209_999, 9.0, None)).unwrap();
        assert!(h.closed.is_empty());
        h.add(reading("a", 210_000, 9.0, None)).unwrap();
        assert_eq!(h.closed.len(), 1);
        let w = &h.closed[0];
        assert_eq!((w.start_ms, w.end_ms), (0, MINUTE));
        let v = w.values.level().unwrap();
        let (count, mean, first, last, min, max) = (v.count, v.mean, v.first, v.last, v.min, v.max);
        assert_eq!((count, mean, first, last, min, max), (3, 2.0, 1.0, 3.0, 1.0, 3.0));
    }

    #[test]
    fn a_record_for_a_closed_window_is_late() {
        let mut h = Harness::new(minute(), 10);
        h.add(reading("a", 10_000, 1.0, None)).unwrap();
        h.add(reading("a", 300_000, 1.0, None)).unwrap();
        assert_eq!(h.add(reading("a", 59_999, 1.0, None)), Err(Reason::Late));
        assert_eq!(h.add(reading("b", 59_999, 1.0, None)), Err(Reason::Late), "lateness is per partition, not per sensor");
        // Window [60 s, 120 s) closes at 240 s; watermark is 270 s: also late.
        assert_eq!(h.add(reading("a", 60_000, 1.0, None)), Err(Reason::Late));
        // Window [180 s, 240 s) closes at 360 s: still open.
        h.add(reading("a", 180_000, 1.0, None)).unwrap();
    }

    #[test]
    fn a_reading_is_late_if_any_of_its_windows_closed() {
        let specs = vec![WindowSpec::tumbling("1m", MINUTE), WindowSpec::tumbling("1h", 60 * MINUTE)];
        let mut h = Harness::new(specs, 10);
        h.add(reading("a", 10_000, 1.0, None)).unwrap();
        h.add(reading("a", 300_000, 1.0, None)).unwrap();
        assert_eq!(h.add(reading("a", 20_000, 1.0, None)), Err(Reason::Late), "its 1 h window is open but its 1 m is not");
    }

    #[test]
    fn under_the_update_policy_a_late_record_corrects_and_re_emits_its_window() {
        let timing = WindowTiming { late_policy: LatePolicy::Update { horizon_ms: 10 * MINUTE }, ..timing() };
        let mut windows = PartitionWindows::new(Kind::Pm25, minute().into(), timing, 0);
        let mut budget = SensorBudget { tracked: 0, cap: 10 };
        let mut closed = Vec::new();
        windows.add(&reading("a", 10_000, 1.0, None), &mut budget, 0, &mut closed).unwrap();
        windows.add(&reading("a", 300_000, 5.0, None), &mut budget, 0, &mut closed).unwrap();
        assert_eq!(closed.len(), 1);
        assert_eq!(closed[0].values.count(), 1);
        // Late for [0, 60 s) but within the 10 min horizon: the window is emitted again.
        windows.add(&reading("a", 20_000, 3.0, None), &mut budget, 0, &mut closed).unwrap();
        assert_eq!(closed.len(), 2);
        let corrected = &closed[1];
        assert_eq!((corrected.start_ms, corrected.end_ms), (0, MINUTE));
        assert_eq!(corrected.values.level().unwrap().mean, 2.0);
        assert_eq!(windows.add(&reading("a", 20_000, 3.0, None), &mut budget, 0, &mut closed).unwrap_err().reason, Reason::Duplicate);
        // Past end + lateness + horizon (13 min), the window is gone: late.
        windows.add(&reading("a", 14 * MINUTE, 5.0, None), &mut budget, 0, &mut closed).unwrap();
        assert_eq!(windows.add(&reading("a", 30_000, 3.0, None), &mut budget, 0, &mut closed).unwrap_err().reason, Reason::Late);
    }

    #[test]
    fn duplicates_by_timestamp_or_sequence_are_refused() {
        let mut h = Harness::new(minute(), 10);
        h.add(reading("a", 10_000, 1.0, Some(7))).unwrap();
        assert_eq!(h.add(reading("a", 10_000, 2.0, None)), Err(Reason::Duplicate));
        assert_eq!(h.add(reading("a", 11_000, 2.0, Some(7))), Err(Reason::Duplicate));
        h.add(reading("b", 10_000, 2.0, Some(7))).unwrap();
    }

    #[test]
    fn a_window_carries_the_area_of_its_sensors_latest_reading() {
        let mut h = Harness::new(minute(), 10);
        let at = |grid: &'static str, ts_ms| Reading { area: AreaRef::new(grid, "st", "di"), ..reading("a", ts_ms, 1.0, None) };
        h.add(at("g1", 10_000)).unwrap();
        h.add(at("g2", 20_000)).unwrap();
        h.add(reading("b", 10 * MINUTE, 1.0, None)).unwrap();
        h.add(at("g1", 11 * MINUTE)).unwrap();
        h.add(reading("b", 20 * MINUTE, 1.0, None)).unwrap();
        let areas: Vec<&str> = h.closed.iter().filter(|w| w.sensor_id == "a").map(|w| w.area.grid.as_str()).collect();
        assert_eq!(areas, ["g2", "g1"]);
        assert_eq!(h.closed.iter().find(|w| w.sensor_id == "a").map(|w| &w.area), Some(&Area::new("g2", "st", "di")));
    }

    #[test]
    fn a_sequence_number_repeats_only_when_accepted_before_in_any_order_and_after_a_restore() {
        let mut h = Harness::new(minute(), 10);
        h.add(reading("a", 10_000, 1.0, Some(7))).unwrap();
        h.add(reading("a", 12_000, 1.0, Some(9))).unwrap();
        h.add(reading("a", 11_000, 1.0, Some(8))).unwrap();
        assert_eq!(h.add(reading("a", 13_000, 1.0, Some(8))), Err(Reason::Duplicate), "newest timestamp, old sequence number");
        assert_eq!(h.add(reading("a", 11_500, 1.0, Some(9))), Err(Reason::Duplicate));
        h.add(reading("a", 14_000, 1.0, Some(3))).unwrap(); // below the bound but never sent (a counter reset)
        let snapshot = h.windows.snapshot();
        h.windows =
            PartitionWindows::restore(Kind::Pm25, minute().into(), timing(), 0, &snapshot, &mut SensorBudget { tracked: 0, cap: 10 })
                .unwrap();
        assert_eq!(h.add(reading("a", 15_000, 1.0, Some(9))), Err(Reason::Duplicate), "after a restore");
        assert_eq!(h.add(reading("a", 15_000, 1.0, Some(3))), Err(Reason::Duplicate), "after a restore");
        h.add(reading("a", 15_000, 1.0, Some(10))).unwrap();
        assert_eq!(h.add(reading("a", 16_000, 1.0, Some(10))), Err(Reason::Duplicate));
        h.add(reading("a", 16_000, 1.0, Some(11))).unwrap();
    }

    #[test]
    fn a_spec_reads_a_finer_slides_panes_only_where_they_are_kept_long_enough() {
        let groups = |specs: &[(&str, i64, i64)]| {
            let specs: Vec<WindowSpec> = specs.iter().map(|(label, size, slide)| WindowSpec::sliding(*label, *size, *slide)).collect();
            let sharing = PaneSharing::new(&specs);
            sharing.groups.iter().map(|g| (g.owner, g.members.to_vec(), g.pane_ms)).collect::<Vec<_>>()
        };
        const HOUR: i64 = 60 * MINUTE;
        const DAY: i64 = 24 * HOUR;
        // PM2.5's defaults: "24h" reads the 1 h panes "24h/1h" keeps for a day anyway.
        assert_eq!(
            groups(&[("1m", MINUTE, MINUTE), ("1h", HOUR, HOUR), ("24h", DAY, DAY), ("24h/1h", DAY, HOUR)]),
            [(0, vec![0], MINUTE), (1, vec![1, 2, 3], HOUR)]
        );
        // Listed first, "24h" still reads the panes, which "24h/1h" (the first with their
        // slide) holds.
        assert_eq!(groups(&[("24h", DAY, DAY), ("24h/1h", DAY, HOUR)]), [(1, vec![0, 1], HOUR)]);
        // Without the sliding window no 1 h pane lives a day: "24h" keeps its own.
        assert_eq!(groups(&[("1h", HOUR, HOUR), ("24h", DAY, DAY)]), [(0, vec![0], HOUR), (1, vec![1], DAY)]);
        // A slide the panes do not divide has its own.
        assert_eq!(
            groups(&[("90m/45m", 90 * MINUTE, 45 * MINUTE), ("2h/1h", 2 * HOUR, HOUR)]),
            [(0, vec![0], 45 * MINUTE), (1, vec![1], HOUR)]
        );
        // A sliding spec keeps its own panes ("1h/5m" would merge 60 1-minute panes every 5
        // minutes); of two finer groups that would do for a tumbling one, the one with the
        // longer panes.
        assert_eq!(
            groups(&[("1h/1m", HOUR, MINUTE), ("1h/5m", HOUR, 5 * MINUTE), ("10m", 10 * MINUTE, 10 * MINUTE)]),
            [(0, vec![0], MINUTE), (1, vec![1, 2], 5 * MINUTE)]
        );
    }

    #[test]
    fn a_state_for_other_specs_is_refused_not_misread() {
        let mut h = Harness::new(minute(), 10);
        h.add(reading("a", 1_000, 1.0, None)).unwrap();
        let two = vec![WindowSpec::tumbling("1m", MINUTE), WindowSpec::tumbling("5m", 5 * MINUTE)];
        let mut budget = SensorBudget { tracked: 0, cap: 10 };
        let restored = PartitionWindows::restore(Kind::Pm25, two.into(), timing(), 0, &h.windows.snapshot(), &mut budget);
        assert!(restored.is_err());
        assert_eq!(budget.tracked, 0);
    }

    #[test]
    fn sensors_past_the_cap_are_refused_and_forgotten_sensors_free_their_place() {
        let mut h = Harness::new(minute(), 2);
        h.add(reading("a", 10_000, 1.0, None)).unwrap();
        h.add(reading("b", 10_000, 1.0, None)).unwrap();
        assert_eq!(h.add(reading("c", 10_000, 1.0, None)), Err(Reason::Cardinality));
        // a's window closes; a has nothing open any more and is forgotten, b too.
        h.add(reading("b", 400_000, 1.0, None)).unwrap();
        assert_eq!(h.budget.tracked, 1);
        h.add(reading("c", 400_000, 1.0, None)).unwrap();
        assert_eq!(h.budget.tracked, 2);
    }

    #[test]
    fn an_idle_partition_follows_its_peers() {
        let mut h = Harness::new(minute(), 10);
        h.add(reading("a", 10_000, 1.0, None)).unwrap();
        h.windows.advance_idle(10 * MINUTE, &mut h.budget, &mut h.closed);
        assert_eq!(h.closed.len(), 1);
        assert_eq!(h.windows.open_windows(), 0);
    }

    mod against_a_naive_reference {
        use std::collections::{BTreeMap, HashSet};

        use proptest::prelude::*;

        use super::*;

        // "1m", "3m/1m" and "4m/1m" share their panes, and "4m" reads them (as "24h" reads
        // "24h/1h"'s by default); "5m" cannot, as "4m/1m" keeps a pane too briefly for it.
        const SPECS: [(&str, i64, i64); 5] = [
            ("1m", MINUTE, MINUTE),
            ("5m", 5 * MINUTE, 5 * MINUTE),
            ("4m", 4 * MINUTE, 4 * MINUTE),
            ("3m/1m", 3 * MINUTE, MINUTE),
            ("4m/1m", 4 * MINUTE, MINUTE),
        ];

        fn specs() -> Vec<WindowSpec> {
            SPECS.iter().map(|(l, size, slide)| WindowSpec::sliding(*l, *size, *slide)).collect()
        }

        /// Dead-lettering or correcting late records, with the grid at UTC or shifted
        /// (2 minutes: not a multiple of "4m" or "5m").
        fn timing_with(update: bool, tz_offset_ms: i64) -> WindowTiming {
            let late_policy = if update { LatePolicy::Update { horizon_ms: 3 * MINUTE } } else { LatePolicy::DeadLetter };
            WindowTiming { late_policy, tz_offset_ms, ..timing() }
        }

        /// Fates and windows computed the obvious way: per record, in order, late if any
        /// containing window closed (more than the update horizon ago) by the running max
        /// event time, duplicate if the same (sensor, ts) was accepted; then every
        /// containing window collects the value. Windows start where local time is a
        /// multiple of the slide. (sensor, window label, start) → (ts, value) samples.
        type RefWindows = BTreeMap<(String, String, i64), Vec<(i64, f64)>>;

        fn reference(records: &[(usize, i64, f64)], t: WindowTiming) -> (Vec<bool>, RefWindows) {
            let mut max_ts = i64::MIN;
            let mut seen = HashSet::new();
            let mut fates = Vec::new();
            let mut windows = RefWindows::new();
            for (sensor, ts, value) in records {
                let watermark = max_ts.saturating_sub(t.out_of_orderness_ms);
                let mut containing = Vec::new();
                for (label, size, slide) in SPECS {
                    let mut start = (ts + t.tz_offset_ms).div_euclid(slide) * slide - t.tz_offset_ms;
                    while start + size > *ts {
                        containing.push((label, start, start + size));
                        start -= slide;
                    }
                }
                let late = containing.iter().any(|(_, _, end)| end + t.allowed_lateness_ms + t.update_horizon_ms() <= watermark);
                let accepted = !late && seen.insert((*sensor, *ts));
                fates.push(accepted);
                if accepted {
                    max_ts = max_ts.max(*ts);
                    for (label, start, _) in containing {
                        windows.entry((format!("s{sensor}"), label.to_string(), start)).or_default().push((*ts, *value));
                    }
                }
            }
            (fates, windows)
        }

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(256))]
            #[test]
            fn windows_and_fates_match_the_reference(
                records in prop::collection::vec((0usize..3, 0i64..1_800_000, 0.0f64..500.0), 1..300),
                update in any::<bool>(),
                tz_offset_ms in prop::sample::select(vec![0, 2 * MINUTE]),
            ) {
                let timing = timing_with(update, tz_offset_ms);
                let mut windows = PartitionWindows::new(Kind::Pm25, specs().into(), timing, 0);
                let mut budget = SensorBudget { tracked: 0, cap: 100 };
                let mut closed = Vec::new();
                let mut fates = Vec::new();
                for (sensor, ts, value) in &records {
                    let id = format!("s{sensor}");
                    fates.push(windows.add(&reading(&id, *ts, *value, None), &mut budget, 0, &mut closed).is_ok());
                }
                let (expected_fates, expected) = reference(&records, timing);
                let watermark = windows.watermark();
                let still_open = expected
                    .keys()
                    .filter(|(_, label, start)| {
                        let size = SPECS.iter().find(|s| s.0 == label.as_str()).unwrap().1;
                        start + size + timing.allowed_lateness_ms > watermark
                    })
                    .count();
                prop_assert_eq!(windows.open_windows(), still_open, "open windows counted");
                windows.advance_idle(i64::MAX / 2, &mut budget, &mut closed);
                prop_assert_eq!(windows.open_windows(), 0);
                prop_assert_eq!(fates, expected_fates);
                if !update {
                    prop_assert_eq!(closed.len(), expected.len(), "each window emitted once");
                }
                prop_assert_eq!(budget.tracked, 0, "every sensor is forgotten once all its windows closed");
                // A corrected window is emitted again (the same point, overwritten): the last
                // emission counts.
                let last: BTreeMap<_, _> = closed.iter().map(|w| ((w.sensor_id.to_string(), w.window.to_string(), w.start_ms), w)).collect();
                prop_assert_eq!(last.len(), expected.len());
                for (key, w) in last {
                    let samples = &expected[&key];
                    let v = w.values.level().unwrap();
                    let values: Vec<f64> = samples.iter().map(|s| s.1).collect();
                    let mean = values.iter().sum::<f64>() / values.len() as f64;
                    prop_assert_eq!(v.count as usize, values.len());
                    prop_assert!((v.mean - mean).abs() < 1e-9 * mean.max(1.0));
                    prop_assert_eq!(v.min, values.iter().copied().fold(f64::INFINITY, f64::min));
                    prop_assert_eq!(v.max, values.iter().copied().fold(f64::NEG_INFINITY, f64::max));
                    prop_assert_eq!(v.first, samples.iter().min_by_key(|s| s.0).unwrap().1);
                    prop_assert_eq!(v.last, samples.iter().max_by_key(|s| s.0).unwrap().1);
                    let size = SPECS.iter().find(|s| s.0 == w.window).unwrap().1;
                    prop_assert_eq!(w.end_ms - w.start_ms, size);
                }
            }

            /// A partition restored from a snapshot taken at any point continues exactly
            /// as the original: the same fates (duplicates and lateness remembered), the
            /// same windows with the same values.
            #[test]
            fn a_restored_snapshot_continues_exactly_like_the_original(
                records in prop::collection::vec((0usize..3, 0i64..1_800_000, 0.0f64..500.0), 1..200),
                cut in 0usize..200,
            ) {
                let cut = cut % records.len();
                prop_assert_eq!(run(&records, Some(cut), PartitionWindows::snapshot), run(&records, None, PartitionWindows::snapshot));
            }

            /// A checkpoint written before panes were shared (a pane list per spec, each
            /// spec keeping the panes its own windows still need) continues like the
            /// current state it stands for.
            #[test]
            fn a_state_from_before_panes_were_shared_continues_alike(
                records in prop::collection::vec((0usize..3, 0i64..1_800_000, 0.0f64..500.0), 1..200),
                cut in 0usize..200,
            ) {
                let cut = cut % records.len();
                prop_assert_eq!(run(&records, Some(cut), unshared), run(&records, None, unshared));
            }

            /// So does one written while only specs with the same slide shared panes ("4m"
            /// holding 4-minute panes of its own).
            #[test]
            fn a_state_from_before_coarser_specs_read_finer_panes_continues_alike(
                records in prop::collection::vec((0usize..3, 0i64..1_800_000, 0.0f64..500.0), 1..200),
                cut in 0usize..200,
            ) {
                let cut = cut % records.len();
                prop_assert_eq!(run(&records, Some(cut), per_slide), run(&records, None, per_slide));
            }
        }

        /// Fates, closed windows and sensors still tracked after `records` and a final
        /// flush; at `snapshot_at` the partition is replaced by one restored from `encode`.
        fn run(
            records: &[(usize, i64, f64)],
            snapshot_at: Option<usize>,
            encode: fn(&PartitionWindows) -> Vec<u8>,
        ) -> (Vec<bool>, Vec<WindowResult>, usize) {
            let mut windows = PartitionWindows::new(Kind::Pm25, specs().into(), timing(), 0);
            let mut budget = SensorBudget { tracked: 0, cap: 100 };
            let (mut closed, mut fates) = (Vec::new(), Vec::new());
            for (i, (sensor, ts, value)) in records.iter().enumerate() {
                if Some(i) == snapshot_at {
                    let bytes = encode(&windows);
                    budget = SensorBudget { tracked: 0, cap: 100 };
                    windows = PartitionWindows::restore(Kind::Pm25, specs().into(), timing(), 0, &bytes, &mut budget).unwrap();
                }
                fates.push(windows.add(&reading(&format!("s{sensor}"), *ts, *value, None), &mut budget, 0, &mut closed).is_ok());
            }
            windows.advance_idle(i64::MAX / 2, &mut budget, &mut closed);
            (fates, closed, budget.tracked)
        }

        /// `windows`' state as format 3 wrote it: every spec with the panes of its own slide
        /// that its own windows still need (so a shorter spec's list is a suffix of its
        /// longer sharer's).
        fn unshared(windows: &PartitionWindows) -> Vec<u8> {
            older_layout(windows, |spec| spec.size_ms - spec.slide_ms, |_| true)
        }

        /// `windows`' state as format 4 wrote it: the first spec of each slide holding the
        /// panes of that slide for all specs of that slide, as long as the longest of them
        /// needs them.
        fn per_slide(windows: &PartitionWindows) -> Vec<u8> {
            let specs = &*windows.specs;
            let span =
                |spec: &WindowSpec| specs.iter().filter(|s| s.slide_ms == spec.slide_ms).map(|s| s.size_ms - s.slide_ms).max().unwrap_or(0);
            let first_of_slide = |j: usize| specs.iter().position(|s| s.slide_ms == specs[j].slide_ms) == Some(j);
            older_layout(windows, span, first_of_slide)
        }

        /// `windows`' state with the specs at which `holds` is true holding panes of their
        /// own slide (merged from their group's where that is finer), each kept while the
        /// spec's windows need it or for `span` after its end; the other specs hold none.
        /// Due times stay as they were: a restore rebuilds the schedule.
        fn older_layout(windows: &PartitionWindows, span: impl Fn(&WindowSpec) -> i64, holds: impl Fn(usize) -> bool) -> Vec<u8> {
            let mut open: OpenState = bincode::deserialize(&windows.snapshot()).unwrap();
            let (specs, timing, watermark) = (&*windows.specs, windows.timing, open.watermark.current());
            let sharing = &windows.sharing;
            for state in open.sensors.iter_mut().flatten() {
                let group_lists: Vec<SmallVec<[Pane; 1]>> = state.specs.iter().map(|s| s.panes.clone()).collect();
                for (j, spec) in specs.iter().enumerate() {
                    let own_grid = PaneGrid { pane_ms: spec.slide_ms, tz_offset_ms: timing.tz_offset_ms };
                    let mut own: SmallVec<[Pane; 1]> = SmallVec::new();
                    for pane in group_lists[sharing.of(j).owner].iter().filter(|_| holds(j)) {
                        let end_ms = pane_end(pane.end_ms - 1, spec, timing.tz_offset_ms);
                        match own.last_mut() {
                            Some(last) if last.end_ms == end_ms => last.acc.merge(&pane.acc),
                            _ => own.push(Pane { end_ms, acc: pane.acc.clone() }),
                        }
                    }
                    own.retain(|p| {
                        !state.specs[j].done_with(spec, p.end_ms, own_grid) || expiry(p.end_ms, span(spec), &timing) > watermark
                    });
                    state.specs[j].panes = own;
                }
            }
            bincode::serialize(&open).unwrap()
        }
    }
}
