//! The one place that decides which offset may be committed (SPEC §6).
//!
//! Per input partition it knows the next offset to consume and a multiset of held
//! offsets: effects not yet acknowledged (closed windows by every sink, alert events,
//! dead letters by the broker). The safe commit is the lowest of them, or the next offset
//! when nothing is held.
//!
//! Stage 1 keeps its open windows in checkpoints (`pipeline::checkpoint`), so there the
//! commit is also capped by the last acknowledged checkpoint: a restart restores that
//! checkpoint and needs nothing before it. A checkpoint may be published only when no
//! effect of the records it covers is still held (`checkpoint_publishable`), so restoring
//! it never loses a window that had closed. Stage 2 has no checkpoints; it passes the
//! lowest offset of its open area windows as `open_floor` instead.

use std::collections::{BTreeMap, HashMap};
use std::hash::Hash;

use super::core::SourcePartition;

#[derive(Debug, Default)]
struct PartitionOffsets {
    /// One past the last offset handed to the core.
    next: i64,
    held: BTreeMap<i64, usize>,
    committed: Option<i64>,
    /// Position of the last checkpoint the changelog acknowledged.
    checkpointed: Option<i64>,
    /// Position of the checkpoint being written, if any.
    checkpoint_in_flight: Option<i64>,
}

/// Offsets per input partition; `P` names a partition (`SourcePartition` for the input
/// feeds, a plain partition number for the aggregates topic of the area stage).
#[derive(Debug)]
pub struct OffsetTracker<P = SourcePartition> {
    partitions: HashMap<P, PartitionOffsets>,
    /// Commits wait for a checkpoint that covers them.
    checkpoints: bool,
}

impl<P> Default for OffsetTracker<P> {
    fn default() -> Self {
        OffsetTracker { partitions: HashMap::new(), checkpoints: false }
    }
}

impl<P: Copy + Eq + Hash + Ord> OffsetTracker<P> {
    /// A tracker whose commits follow held offsets only (and the caller's `open_floor`).
    pub fn new() -> Self {
        OffsetTracker::default()
    }

    /// A tracker whose commits also never pass the last acknowledged checkpoint.
    pub fn with_checkpoints() -> Self {
        OffsetTracker { partitions: HashMap::new(), checkpoints: true }
    }

    /// Records that `offset` was consumed (its fate decided, effects maybe pending).
    pub fn consumed(&mut self, source: P, offset: i64) {
        let p = self.partitions.entry(source).or_default();
        p.next = p.next.max(offset + 1);
    }

    /// A partition continues from a checkpoint at `position` (already in the changelog).
    pub fn restored(&mut self, source: P, position: i64) {
        let p = self.partitions.entry(source).or_default();
        p.next = p.next.max(position);
        p.checkpointed = Some(position);
    }

    /// Holds `offset` until `release` is called for it.
    pub fn hold(&mut self, source: P, offset: i64) {
        *self.partitions.entry(source).or_default().held.entry(offset).or_default() += 1;
    }

    /// Releases one hold; unknown holds (a partition dropped meanwhile) are ignored.
    pub fn release(&mut self, source: P, offset: i64) {
        let Some(p) = self.partitions.get_mut(&source) else { return };
        if let Some(count) = p.held.get_mut(&offset) {
            *count -= 1;
            if *count == 0 {
                p.held.remove(&offset);
            }
        }
    }

    /// Whether a checkpoint at `position` would move anything: none is being written and
    /// it is newer than the last.
    pub fn wants_checkpoint(&self, source: P, position: i64) -> bool {
        self.partitions.get(&source).is_some_and(|p| p.checkpoint_in_flight.is_none() && p.checkpointed.is_none_or(|c| position > c))
    }

    /// Whether a checkpoint at `position` may go out now: it is wanted, and every effect
    /// of the records below it is acknowledged.
    pub fn checkpoint_publishable(&self, source: P, position: i64) -> bool {
        self.wants_checkpoint(source, position)
            && self.partitions.get(&source).is_some_and(|p| p.held.keys().next().is_none_or(|lowest| *lowest >= position))
    }

    pub fn checkpoint_started(&mut self, source: P, position: i64) {
        if let Some(p) = self.partitions.get_mut(&source) {
            p.checkpoint_in_flight = Some(position);
        }
    }

    /// The changelog answered for the checkpoint at `position` (`written` = acknowledged).
    pub fn checkpoint_finished(&mut self, source: P, position: i64, written: bool) {
        let Some(p) = self.partitions.get_mut(&source) else { return };
        if p.checkpoint_in_flight == Some(position) {
            p.checkpoint_in_flight = None;
        }
        if written {
            p.checkpointed = Some(p.checkpointed.map_or(position, |c| c.max(position)));
        }
    }

    /// Offsets to commit now: per partition, the lowest unfinished offset (`open_floor` is
    /// a stage's own lowest open offset), when it moved past the last commit.
    pub fn commit_candidates(&self, open_floor: impl Fn(P) -> Option<i64>) -> Vec<(P, i64)> {
        let mut out: Vec<(P, i64)> = self
            .partitions
            .iter()
            .filter_map(|(source, p)| {
                if self.checkpoints && p.checkpointed.is_none() {
                    return None;
                }
                let safe =
                    [Some(p.next), p.held.keys().next().copied(), open_floor(*source), p.checkpointed].into_iter().flatten().min()?;
                (p.committed.is_none_or(|c| safe > c) && safe > 0).then_some((*source, safe))
            })
            .collect();
        out.sort();
        out
    }

    pub fn mark_committed(&mut self, source: P, offset: i64) {
        if let Some(p) = self.partitions.get_mut(&source) {
            p.committed = Some(p.committed.map_or(offset, |c| c.max(offset)));
        }
    }

    /// Held offsets across all partitions (sink and dead-letter work in flight).
    pub fn in_flight(&self) -> usize {
        self.partitions.values().map(|p| p.held.values().sum::<usize>()).sum()
    }

    pub fn drop_partition(&mut self, source: P) {
        self.partitions.remove(&source);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Kind;

    const P0: SourcePartition = SourcePartition { kind: Kind::Pm25, partition: 0 };

    #[test]
    fn commits_stop_below_the_lowest_unfinished_offset() {
        let mut t: OffsetTracker = OffsetTracker::new();
        for offset in 0..10 {
            t.consumed(P0, offset);
        }
        assert_eq!(t.commit_candidates(|_| None), vec![(P0, 10)]);
        t.hold(P0, 4);
        t.hold(P0, 4);
        t.hold(P0, 7);
        assert_eq!(t.commit_candidates(|_| None), vec![(P0, 4)]);
        assert_eq!(t.commit_candidates(|_| Some(2)), vec![(P0, 2)], "an open window holds offset 2");
        t.release(P0, 4);
        assert_eq!(t.commit_candidates(|_| None), vec![(P0, 4)], "one of two holds on 4 remains");
        t.release(P0, 4);
        assert_eq!(t.commit_candidates(|_| None), vec![(P0, 7)]);
        t.mark_committed(P0, 7);
        assert_eq!(t.commit_candidates(|_| None), vec![], "nothing new to commit");
        t.release(P0, 7);
        assert_eq!(t.commit_candidates(|_| None), vec![(P0, 10)]);
        assert_eq!(t.in_flight(), 0);
    }

    #[test]
    fn with_checkpoints_commits_wait_for_a_checkpoint_that_covers_them() {
        let mut t: OffsetTracker = OffsetTracker::with_checkpoints();
        for offset in 0..10 {
            t.consumed(P0, offset);
        }
        assert_eq!(t.commit_candidates(|_| None), vec![], "no checkpoint yet");
        t.hold(P0, 6);
        assert!(!t.checkpoint_publishable(P0, 10), "a window closed by offset 6 is not acknowledged");
        assert!(t.checkpoint_publishable(P0, 6), "a checkpoint before that effect may go");
        t.checkpoint_started(P0, 6);
        assert!(!t.checkpoint_publishable(P0, 6), "one at a time");
        t.checkpoint_finished(P0, 6, true);
        assert_eq!(t.commit_candidates(|_| None), vec![(P0, 6)]);
        t.release(P0, 6);
        assert_eq!(t.commit_candidates(|_| None), vec![(P0, 6)], "still capped by the checkpoint");
        t.checkpoint_started(P0, 10);
        t.checkpoint_finished(P0, 10, false);
        assert_eq!(t.commit_candidates(|_| None), vec![(P0, 6)], "a failed checkpoint changes nothing");
        assert!(t.checkpoint_publishable(P0, 10));
        t.checkpoint_started(P0, 10);
        t.checkpoint_finished(P0, 10, true);
        assert_eq!(t.commit_candidates(|_| None), vec![(P0, 10)]);
    }

    #[test]
    fn a_restored_partition_may_commit_its_checkpoint_position() {
        let mut t: OffsetTracker = OffsetTracker::with_checkpoints();
        t.restored(P0, 500);
        assert_eq!(t.commit_candidates(|_| None), vec![(P0, 500)]);
        assert!(!t.checkpoint_publishable(P0, 500), "nothing new since the restore");
    }
}
