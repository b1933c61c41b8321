//! When each (sensor, spec) of a partition next needs attention, earliest first: a min-heap
//! with lazy deletion. Moving an entry pushes the new one and leaves the old in place (the
//! ordered set this replaced spent ~250 instructions per reading of the protobuf core on
//! removing and inserting); an entry whose time is no longer its (sensor, spec)'s is
//! skipped when it comes up (`PartitionWindows::close_due` checks). A checkpoint holds the
//! live entries only, ascending, as the ordered set wrote them.

use std::cmp::Reverse;
use std::collections::BinaryHeap;

/// A sensor's index in the partition's slots.
pub(super) type Slot = u32;

/// (due, slot, spec index): when the watermark reaches `due`, that (sensor, spec) has a
/// window to close or a pane to drop. Entries come out in this order, so windows close in
/// order of end.
pub(super) type Entry = (i64, Slot, u32);

#[derive(Debug, Default)]
pub(super) struct Schedule {
    heap: BinaryHeap<Reverse<Entry>>,
}

impl Schedule {
    pub fn push(&mut self, entry: Entry) {
        self.heap.push(Reverse(entry));
    }

    /// The earliest entry, live or left behind.
    pub fn peek(&self) -> Option<Entry> {
        self.heap.peek().map(|Reverse(entry)| *entry)
    }

    pub fn pop(&mut self) -> Option<Entry> {
        self.heap.pop().map(|Reverse(entry)| entry)
    }

    pub fn clear(&mut self) {
        self.heap.clear();
    }
}

/// Reads the ascending entries a checkpoint holds (the live ones).
impl<'de> serde::Deserialize<'de> for Schedule {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let entries: Vec<Entry> = serde::Deserialize::deserialize(deserializer)?;
        Ok(Schedule { heap: entries.into_iter().map(Reverse).collect() })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_come_out_earliest_first_whatever_order_they_went_in() {
        let mut schedule = Schedule::default();
        let entries = [(30, 1, 0), (10, 2, 1), (10, 1, 3), (20, 0, 0), (10, 1, 2)];
        for entry in entries {
            schedule.push(entry);
        }
        let mut sorted = entries.to_vec();
        sorted.sort();
        assert_eq!(schedule.peek(), Some(sorted[0]));
        let popped: Vec<Entry> = std::iter::from_fn(|| schedule.pop()).collect();
        assert_eq!(popped, sorted);
        assert_eq!(schedule.peek(), None);
    }

    #[test]
    fn a_checkpointed_set_reads_back_as_the_same_entries() {
        let set: std::collections::BTreeSet<Entry> = [(5, 1, 0), (7, 0, 2), (9, 3, 1)].into();
        let bytes = bincode::serialize(&set).unwrap();
        let mut schedule: Schedule = bincode::deserialize(&bytes).unwrap();
        assert_eq!(std::iter::from_fn(|| schedule.pop()).collect::<Vec<_>>(), set.into_iter().collect::<Vec<_>>());
    }
}
