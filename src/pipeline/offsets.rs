//! The one place that decides which offset may be committed (SPEC §6).
//!
//! Per input partition it knows the next offset to consume and a multiset of held
//! offsets: closed windows not yet acknowledged by every sink, and dead letters not yet
//! acknowledged by the broker. Open windows are held by the window stage itself
//! (`Processor::lowest_open_offset`). The safe commit is the lowest of all of them: every
//! record below it has had every effect acknowledged.

use std::collections::{BTreeMap, HashMap};
use std::hash::Hash;

use super::core::SourcePartition;

#[derive(Debug, Default)]
struct PartitionOffsets {
    /// One past the last offset handed to the core.
    next: i64,
    held: BTreeMap<i64, usize>,
    committed: Option<i64>,
}

/// Offsets per input partition; `P` names a partition (`SourcePartition` for the input
/// feeds, a plain partition number for the aggregates topic of the area stage).
#[derive(Debug)]
pub struct OffsetTracker<P = SourcePartition> {
    partitions: HashMap<P, PartitionOffsets>,
}

impl<P> Default for OffsetTracker<P> {
    fn default() -> Self {
        OffsetTracker { partitions: HashMap::new() }
    }
}

impl<P: Copy + Eq + Hash + Ord> OffsetTracker<P> {
    pub fn new() -> Self {
        OffsetTracker::default()
    }

    /// Records that `offset` was consumed (its fate decided, effects maybe pending).
    pub fn consumed(&mut self, source: P, offset: i64) {
        let p = self.partitions.entry(source).or_default();
        p.next = p.next.max(offset + 1);
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

    /// Offsets to commit now: per partition, the lowest unfinished offset (`open_floor` is
    /// the window stage's lowest open offset), when it moved past the last commit.
    pub fn commit_candidates(&self, open_floor: impl Fn(P) -> Option<i64>) -> Vec<(P, i64)> {
        let mut out: Vec<(P, i64)> = self
            .partitions
            .iter()
            .filter_map(|(source, p)| {
                let safe = [Some(p.next), p.held.keys().next().copied(), open_floor(*source)].into_iter().flatten().min()?;
                (p.committed.is_none_or(|c| safe > c) && p.next > 0).then_some((*source, safe))
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
}
