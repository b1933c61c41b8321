//! How a `PartitionCheckpoint` travels on the compacted checkpoint changelog, and back.
//!
//! One input partition's state is split into chunks (brokers cap message size) keyed
//! `"{stream}/{partition}#{i}"`, followed by a header keyed `"{stream}/{partition}"` (the
//! stream is the consumer group and the input topic, `group/topic`) that names
//! the position, the window layout, how many chunks there are, a generation shared by the
//! chunks and a CRC-32 of the whole state. The header is written only after every chunk
//! is acknowledged, so the latest header always describes chunks that are there; a
//! compacted topic keeps the latest value per key, and stale chunks of an older, longer
//! checkpoint are told apart by their generation. No I/O here.

use std::collections::HashMap;

use super::core::PartitionCheckpoint;

/// Bytes of state per chunk: well under librdkafka's and brokers' 1 MB message default.
pub const CHUNK_BYTES: usize = 256 * 1024;

#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
struct Header {
    position: i64,
    layout: u64,
    generation: u64,
    chunks: u32,
    bytes: u64,
    crc32: u32,
}

/// Why a stored checkpoint cannot be used (the partition then starts from its commit).
#[derive(Debug, Clone, thiserror::Error, PartialEq)]
pub enum CheckpointError {
    #[error("header does not decode: {0}")]
    Header(String),
    #[error("chunk {index} of {chunks} is missing or from another checkpoint")]
    Chunk { index: u32, chunks: u32 },
    #[error("state checksum mismatch (expected {expected:08x}, got {actual:08x})")]
    Checksum { expected: u32, actual: u32 },
}

/// The key of a partition's checkpoint header.
pub fn header_key(topic: &str, partition: i32) -> String {
    format!("{topic}/{partition}")
}

fn chunk_key(topic: &str, partition: i32, index: u32) -> String {
    format!("{topic}/{partition}#{index}")
}

/// The changelog records of one checkpoint, in the order they must be written: every
/// chunk, then (only once those are acknowledged) the header, which is the last element.
pub fn encode(topic: &str, partition: i32, checkpoint: &PartitionCheckpoint, generation: u64) -> Vec<(String, Vec<u8>)> {
    let pieces: Vec<&[u8]> = if checkpoint.state.is_empty() { vec![&[][..]] } else { checkpoint.state.chunks(CHUNK_BYTES).collect() };
    let mut records: Vec<(String, Vec<u8>)> = pieces
        .iter()
        .enumerate()
        .map(|(i, piece)| {
            let mut value = Vec::with_capacity(8 + piece.len());
            value.extend_from_slice(&generation.to_le_bytes());
            value.extend_from_slice(piece);
            (chunk_key(topic, partition, i as u32), value)
        })
        .collect();
    let header = Header {
        position: checkpoint.position,
        layout: checkpoint.layout,
        generation,
        chunks: pieces.len() as u32,
        bytes: checkpoint.state.len() as u64,
        crc32: crc32fast::hash(&checkpoint.state),
    };
    // A struct of numbers always serialises.
    records.push((header_key(topic, partition), serde_json::to_vec(&header).unwrap_or_default()));
    records
}

/// The checkpoint of `topic`/`partition` from the changelog's latest value per key, or
/// `None` when there is none.
pub fn decode(latest: &HashMap<Vec<u8>, Vec<u8>>, topic: &str, partition: i32) -> Result<Option<PartitionCheckpoint>, CheckpointError> {
    let Some(raw) = latest.get(header_key(topic, partition).as_bytes()) else { return Ok(None) };
    let header: Header = serde_json::from_slice(raw).map_err(|e| CheckpointError::Header(e.to_string()))?;
    let mut state = Vec::with_capacity(header.bytes as usize);
    for index in 0..header.chunks {
        let missing = CheckpointError::Chunk { index, chunks: header.chunks };
        let value = latest.get(chunk_key(topic, partition, index).as_bytes()).ok_or(missing.clone())?;
        let (generation, piece) = value.split_at_checked(8).ok_or(missing.clone())?;
        if generation != header.generation.to_le_bytes() {
            return Err(missing);
        }
        state.extend_from_slice(piece);
    }
    let actual = crc32fast::hash(&state);
    if actual != header.crc32 || state.len() as u64 != header.bytes {
        return Err(CheckpointError::Checksum { expected: header.crc32, actual });
    }
    Ok(Some(PartitionCheckpoint { position: header.position, layout: header.layout, state }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn checkpoint(bytes: usize) -> PartitionCheckpoint {
        PartitionCheckpoint { position: 1234, layout: 99, state: (0..bytes).map(|i| (i * 7 % 251) as u8).collect() }
    }

    fn store(records: Vec<(String, Vec<u8>)>, latest: &mut HashMap<Vec<u8>, Vec<u8>>) {
        for (key, value) in records {
            latest.insert(key.into_bytes(), value);
        }
    }

    #[test]
    fn round_trips_through_chunks_with_the_header_last() {
        for size in [0, 10, CHUNK_BYTES, 2 * CHUNK_BYTES + 5] {
            let cp = checkpoint(size);
            let records = encode("city.pm25", 3, &cp, 7);
            assert_eq!(records.last().unwrap().0, "city.pm25/3");
            assert_eq!(records.len(), size.div_ceil(CHUNK_BYTES).max(1) + 1);
            let mut latest = HashMap::new();
            store(records, &mut latest);
            assert_eq!(decode(&latest, "city.pm25", 3), Ok(Some(cp)));
            assert_eq!(decode(&latest, "city.pm25", 4), Ok(None));
        }
    }

    #[test]
    fn a_newer_shorter_checkpoint_ignores_stale_chunks_and_damage_is_detected() {
        let mut latest = HashMap::new();
        store(encode("t", 0, &checkpoint(3 * CHUNK_BYTES), 1), &mut latest);
        let newer = PartitionCheckpoint { position: 2000, ..checkpoint(10) };
        store(encode("t", 0, &newer, 2), &mut latest);
        assert_eq!(decode(&latest, "t", 0), Ok(Some(newer.clone())));

        // A header whose chunks were not all written (or were compacted away).
        let mut partial = HashMap::new();
        let records = encode("t", 0, &checkpoint(2 * CHUNK_BYTES), 3);
        store(vec![records[0].clone(), records[2].clone()], &mut partial);
        assert_eq!(decode(&partial, "t", 0), Err(CheckpointError::Chunk { index: 1, chunks: 2 }));

        let mut flipped = latest.clone();
        flipped.get_mut(b"t/0#0".as_slice()).unwrap()[9] ^= 1;
        assert!(matches!(decode(&flipped, "t", 0), Err(CheckpointError::Checksum { .. })));
        latest.insert(b"t/0".to_vec(), b"{not json".to_vec());
        assert!(matches!(decode(&latest, "t", 0), Err(CheckpointError::Header(_))));
    }
}
