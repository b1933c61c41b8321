//! The hand-off from a stage to its sink task: chunks of items over a bounded channel, and
//! the emptied chunk vectors back, so that a stage refills an allocation it already has
//! instead of growing a new one every turn (a copy per doubling, and memory the allocator
//! may have to fault in again: a profile put 3 % of an end-to-end run's CPU there).

use std::sync::{Arc, Mutex};

use tokio::sync::mpsc;

/// Emptied vectors kept for reuse; a few cover the chunks in flight.
const SPARE_CHUNKS: usize = 4;

/// A bounded channel of chunks holding at most `capacity` chunks in flight.
pub(crate) fn chunk_channel<T>(capacity: usize) -> (ChunkSender<T>, ChunkReceiver<T>) {
    let (tx, rx) = mpsc::channel(capacity);
    let spare = Arc::new(Mutex::new(Vec::new()));
    (ChunkSender { tx, spare: spare.clone() }, ChunkReceiver { rx, spare })
}

/// The receiving task has ended.
#[derive(Debug)]
pub(crate) struct Closed;

pub(crate) struct ChunkSender<T> {
    tx: mpsc::Sender<Vec<T>>,
    spare: Arc<Mutex<Vec<Vec<T>>>>,
}

impl<T> ChunkSender<T> {
    /// Sends the items of `chunk` and leaves an empty vector in its place, a returned one
    /// (with its capacity) when there is one.
    pub async fn send(&self, chunk: &mut Vec<T>) -> Result<(), Closed> {
        let full = std::mem::replace(chunk, self.spare_chunk());
        self.tx.send(full).await.map_err(|_| Closed)
    }

    /// Sends one item as a chunk of its own.
    pub async fn send_one(&self, item: T) -> Result<(), Closed> {
        let mut chunk = self.spare_chunk();
        chunk.push(item);
        self.tx.send(chunk).await.map_err(|_| Closed)
    }

    fn spare_chunk(&self) -> Vec<T> {
        self.spare.lock().unwrap_or_else(|e| e.into_inner()).pop().unwrap_or_default()
    }
}

pub(crate) struct ChunkReceiver<T> {
    rx: mpsc::Receiver<Vec<T>>,
    spare: Arc<Mutex<Vec<Vec<T>>>>,
}

impl<T> ChunkReceiver<T> {
    /// The next chunk; `None` once every sender is gone and the channel is drained.
    pub async fn recv(&mut self) -> Option<Vec<T>> {
        self.rx.recv().await
    }

    /// Returns a chunk whose items were taken, for the sender to fill again.
    pub fn give_back(&self, mut chunk: Vec<T>) {
        chunk.clear();
        if chunk.capacity() == 0 {
            return;
        }
        let mut spare = self.spare.lock().unwrap_or_else(|e| e.into_inner());
        if spare.len() < SPARE_CHUNKS {
            spare.push(chunk);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_chunk_given_back_is_the_next_one_filled() {
        let (tx, mut rx) = chunk_channel::<u32>(2);
        let mut chunk = Vec::with_capacity(64);
        chunk.extend([1, 2, 3]);
        let sent_buffer = chunk.as_ptr();
        tx.send(&mut chunk).await.unwrap();
        assert!(chunk.is_empty(), "the sender keeps an empty vector");
        let received = rx.recv().await.unwrap();
        assert_eq!(received, [1, 2, 3]);
        rx.give_back(received);
        chunk.push(4);
        tx.send(&mut chunk).await.unwrap();
        // The vector the sender now fills is the one given back, capacity and all.
        assert_eq!(chunk.as_ptr(), sent_buffer);
        assert_eq!(chunk.capacity(), 64);
        assert!(chunk.is_empty());
        assert_eq!(rx.recv().await.unwrap(), [4]);
    }

    #[tokio::test]
    async fn sending_after_the_receiver_is_gone_says_closed_and_spares_are_bounded() {
        let (tx, rx) = chunk_channel::<u32>(1);
        for _ in 0..10 {
            rx.give_back(Vec::with_capacity(8));
        }
        assert_eq!(rx.spare.lock().unwrap().len(), SPARE_CHUNKS);
        drop(rx);
        assert!(tx.send_one(1).await.is_err());
    }
}
