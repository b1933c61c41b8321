//! The on-disk spool: what a sink could not deliver (InfluxDB down) waits here, in order,
//! until it can be, and survives a restart (SPEC §6).
//!
//! A directory of append-only segment files `NNNNNNNNNNNNNNNNNNNN.spool`; each record is
//! `len: u32 LE | crc32: u32 LE | bytes`. Records are read back oldest first; a segment is
//! deleted once every record in it was delivered. On open, every segment is checked and a
//! torn or damaged tail (a crash mid-append) is cut off. Delivery after a restart restarts
//! at the head of the oldest segment, so a record can be delivered twice — harmless for
//! idempotent InfluxDB points. Past `cap_bytes`, `append` refuses: the caller then keeps
//! retrying instead of acknowledging, which backs up into the consumer (backpressure).
//! Synchronous file I/O; records are whole write batches, so calls are few.

use std::collections::VecDeque;
use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

/// Start a new segment past this size.
const SEGMENT_BYTES: u64 = 16 << 20;
const HEADER: usize = 8;

/// When appended records reach the disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FsyncPolicy {
    /// fsync after every append: a spooled batch survives power loss.
    Always,
    /// Leave it to the OS: survives a process crash, not a power loss.
    Never,
}

#[derive(Debug, thiserror::Error)]
pub enum SpoolError {
    #[error("spool {dir} is full ({bytes} of {cap} bytes)")]
    Full { dir: PathBuf, bytes: u64, cap: u64 },
    #[error("spool {dir}: {source}")]
    Io { dir: PathBuf, source: std::io::Error },
}

#[derive(Debug)]
struct Segment {
    id: u64,
    /// Valid bytes in the file.
    bytes: u64,
}

#[derive(Debug)]
pub struct Spool {
    dir: PathBuf,
    cap_bytes: u64,
    fsync: FsyncPolicy,
    segments: VecDeque<Segment>,
    /// Open for appending: the last segment.
    tail: Option<File>,
    /// Read position in the first segment.
    head_offset: u64,
    /// Bytes not yet delivered.
    bytes: u64,
    records: u64,
}

impl Spool {
    /// Opens (creating) the spool in `dir`, checking every segment and cutting damaged tails.
    pub fn open(dir: &Path, cap_bytes: u64, fsync: FsyncPolicy) -> Result<Spool, SpoolError> {
        let io = |source| SpoolError::Io { dir: dir.to_owned(), source };
        std::fs::create_dir_all(dir).map_err(io)?;
        let mut ids: Vec<u64> = std::fs::read_dir(dir)
            .map_err(io)?
            .filter_map(|e| e.ok())
            .filter_map(|e| e.file_name().to_str()?.strip_suffix(".spool")?.parse().ok())
            .collect();
        ids.sort_unstable();
        let mut spool =
            Spool { dir: dir.to_owned(), cap_bytes, fsync, segments: VecDeque::new(), tail: None, head_offset: 0, bytes: 0, records: 0 };
        for id in ids {
            let path = spool.path(id);
            let (valid, records) = scan(&path).map_err(io)?;
            let len = std::fs::metadata(&path).map_err(io)?.len();
            if valid < len {
                tracing::warn!(path = %path.display(), cut_bytes = len - valid, "Spool segment has a damaged tail; cutting it off");
                OpenOptions::new().write(true).open(&path).and_then(|f| f.set_len(valid)).map_err(io)?;
            }
            if records == 0 {
                std::fs::remove_file(&path).map_err(io)?;
                continue;
            }
            spool.bytes += valid;
            spool.records += records;
            spool.segments.push_back(Segment { id, bytes: valid });
        }
        Ok(spool)
    }

    fn path(&self, id: u64) -> PathBuf {
        self.dir.join(format!("{id:020}.spool"))
    }

    fn io(&self, source: std::io::Error) -> SpoolError {
        SpoolError::Io { dir: self.dir.clone(), source }
    }

    pub fn is_empty(&self) -> bool {
        self.records == 0
    }

    /// Bytes waiting (headers included).
    pub fn bytes(&self) -> u64 {
        self.bytes
    }

    pub fn records(&self) -> u64 {
        self.records
    }

    pub fn cap_bytes(&self) -> u64 {
        self.cap_bytes
    }

    /// Appends one record at the end, or refuses when the spool is full.
    pub fn append(&mut self, record: &[u8]) -> Result<(), SpoolError> {
        let size = (HEADER + record.len()) as u64;
        if self.bytes + size > self.cap_bytes {
            return Err(SpoolError::Full { dir: self.dir.clone(), bytes: self.bytes, cap: self.cap_bytes });
        }
        if self.segments.back().is_none_or(|s| s.bytes + size > SEGMENT_BYTES && s.bytes > 0) || self.tail.is_none() {
            let id = self.segments.back().map_or(0, |s| s.id + 1);
            let file = OpenOptions::new().create(true).append(true).open(self.path(id)).map_err(|e| self.io(e))?;
            self.tail = Some(file);
            self.segments.push_back(Segment { id, bytes: 0 });
        }
        let mut frame = Vec::with_capacity(HEADER + record.len());
        frame.extend_from_slice(&(record.len() as u32).to_le_bytes());
        frame.extend_from_slice(&crc32fast::hash(record).to_le_bytes());
        frame.extend_from_slice(record);
        let fsync = self.fsync;
        let written = match self.tail.as_mut() {
            Some(tail) => tail.write_all(&frame).and_then(|()| if fsync == FsyncPolicy::Always { tail.sync_data() } else { Ok(()) }),
            None => Ok(()),
        };
        written.map_err(|e| self.io(e))?;
        if let Some(segment) = self.segments.back_mut() {
            segment.bytes += size;
        }
        self.bytes += size;
        self.records += 1;
        Ok(())
    }

    /// The oldest record not yet delivered.
    pub fn peek(&self) -> Result<Option<Vec<u8>>, SpoolError> {
        let Some(head) = self.segments.front() else { return Ok(None) };
        if self.head_offset >= head.bytes {
            return Ok(None);
        }
        let read = || -> std::io::Result<Vec<u8>> {
            let mut file = File::open(self.path(head.id))?;
            file.seek(SeekFrom::Start(self.head_offset))?;
            let mut header = [0u8; HEADER];
            file.read_exact(&mut header)?;
            let len = u32::from_le_bytes([header[0], header[1], header[2], header[3]]) as usize;
            let mut record = vec![0u8; len];
            file.read_exact(&mut record)?;
            Ok(record)
        };
        read().map(Some).map_err(|e| self.io(e))
    }

    /// Marks the oldest record delivered; deletes its segment when it was the last one.
    pub fn pop(&mut self) -> Result<(), SpoolError> {
        let Some(record) = self.peek()? else { return Ok(()) };
        let size = (HEADER + record.len()) as u64;
        self.head_offset += size;
        self.bytes -= size;
        self.records -= 1;
        let done = self.segments.front().is_some_and(|head| self.head_offset >= head.bytes);
        if done {
            if let Some(head) = self.segments.pop_front() {
                if self.segments.is_empty() {
                    self.tail = None;
                }
                std::fs::remove_file(self.path(head.id)).map_err(|e| self.io(e))?;
            }
            self.head_offset = 0;
        }
        Ok(())
    }
}

/// The length of the valid prefix of a segment and how many records it holds.
fn scan(path: &Path) -> std::io::Result<(u64, u64)> {
    let mut data = Vec::new();
    File::open(path)?.read_to_end(&mut data)?;
    let (mut at, mut records) = (0usize, 0u64);
    while data.len() - at >= HEADER {
        let len = u32::from_le_bytes([data[at], data[at + 1], data[at + 2], data[at + 3]]) as usize;
        let crc = u32::from_le_bytes([data[at + 4], data[at + 5], data[at + 6], data[at + 7]]);
        let Some(record) = data.get(at + HEADER..at + HEADER + len) else { break };
        if crc32fast::hash(record) != crc {
            break;
        }
        at += HEADER + len;
        records += 1;
    }
    Ok((at as u64, records))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dir(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("citysense-spool-test-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        dir
    }

    fn drain(spool: &mut Spool) -> Vec<Vec<u8>> {
        let mut out = Vec::new();
        while let Some(record) = spool.peek().unwrap() {
            out.push(record);
            spool.pop().unwrap();
        }
        out
    }

    #[test]
    fn records_come_back_in_order_across_a_reopen_and_segments_are_deleted() {
        let dir = dir("order");
        let records: Vec<Vec<u8>> = (0..50).map(|i| format!("batch {i} ").repeat(i + 1).into_bytes()).collect();
        {
            let mut spool = Spool::open(&dir, 1 << 30, FsyncPolicy::Always).unwrap();
            for r in &records[..30] {
                spool.append(r).unwrap();
            }
            assert_eq!(spool.peek().unwrap().as_deref(), Some(records[0].as_slice()));
            spool.pop().unwrap();
        }
        // Reopened: delivery restarts at the head of the oldest segment (record 0 again).
        let mut spool = Spool::open(&dir, 1 << 30, FsyncPolicy::Never).unwrap();
        assert_eq!(spool.records(), 30);
        for r in &records[30..] {
            spool.append(r).unwrap();
        }
        assert_eq!(drain(&mut spool), records);
        assert!(spool.is_empty() && spool.bytes() == 0);
        assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 0, "delivered segments are deleted");
        std::fs::remove_dir_all(&dir).ok();
    }

    #[test]
    fn a_full_spool_refuses_and_a_torn_tail_is_cut_off() {
        let dir = dir("full");
        let mut spool = Spool::open(&dir, 100, FsyncPolicy::Never).unwrap();
        spool.append(&[1u8; 40]).unwrap();
        spool.append(&[2u8; 40]).unwrap();
        assert!(matches!(spool.append(&[3u8; 40]), Err(SpoolError::Full { .. })));
        drop(spool);
        // A crash mid-append: half a record at the end of the segment.
        let segment = std::fs::read_dir(&dir).unwrap().next().unwrap().unwrap().path();
        let mut file = OpenOptions::new().append(true).open(&segment).unwrap();
        file.write_all(&[40, 0, 0, 0, 9, 9]).unwrap();
        drop(file);
        let mut spool = Spool::open(&dir, 100, FsyncPolicy::Never).unwrap();
        assert_eq!(drain(&mut spool), vec![vec![1u8; 40], vec![2u8; 40]]);
        // A flipped byte inside a record: it and everything after it are cut.
        spool.append(&[4u8; 10]).unwrap();
        spool.append(&[5u8; 10]).unwrap();
        drop(spool);
        let segment = std::fs::read_dir(&dir).unwrap().next().unwrap().unwrap().path();
        let mut bytes = std::fs::read(&segment).unwrap();
        bytes[HEADER + 2] ^= 0xff;
        std::fs::write(&segment, bytes).unwrap();
        let spool = Spool::open(&dir, 100, FsyncPolicy::Never).unwrap();
        assert!(spool.is_empty());
        std::fs::remove_dir_all(&dir).ok();
    }
}
