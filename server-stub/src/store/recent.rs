//! The last few committed chunks of each stream, kept in memory so that readers
//! waiting at the tail (SSE and long-poll subscribers) are served without a storage
//! read; anything older, or evicted, is read from SQLite as before.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::reader::{slice_chunk, ReadChunk};

/// At most this many chunks are kept per stream.
const MAX_CHUNKS: usize = 32;
/// At most this many bytes are kept per stream (a larger chunk is not kept at all).
pub const MAX_BYTES: usize = 256 * 1024;
/// At most this many bytes are kept for all streams together: past it, a stream's
/// commit keeps none (its readers read storage), however many streams are written.
pub const MAX_BYTES_HELD: usize = 64 << 20;
/// A stream that took no commit for this long keeps none (see
/// [`super::Shared::forget_idle_recent`]): its tail readers have had them.
pub const IDLE: Duration = Duration::from_secs(60);

/// A committed chunk, as stored.
#[derive(Debug)]
pub struct Chunk {
    /// Its first position.
    pub start: u64,
    /// The position after its last.
    pub end: u64,
    /// Its bytes (JSON: messages joined by commas).
    pub data: Vec<u8>,
    /// JSON only: each message's end within `data`, as little-endian `u32`s.
    pub ends: Option<Vec<u8>>,
}

impl Chunk {
    /// The memory it holds: its data and its message ends.
    fn held(&self) -> usize {
        self.data.len() + self.ends.as_ref().map_or(0, Vec::len)
    }
}

/// A contiguous run of a stream's newest committed chunks.
#[derive(Debug, Default)]
pub struct Recent {
    chunks: VecDeque<Arc<Chunk>>,
    /// What they hold (see [`Chunk::held`]).
    bytes: usize,
    /// What every stream's chunks hold together (see [`MAX_BYTES_HELD`]).
    all: Arc<AtomicUsize>,
    /// When it last took a commit's chunks.
    extended: Option<Instant>,
}

impl Recent {
    /// An empty run, counted in `all` with every other stream's.
    pub fn new(all: Arc<AtomicUsize>) -> Recent {
        Recent {
            chunks: VecDeque::new(),
            bytes: 0,
            all,
            extended: None,
        }
    }

    /// Adds chunks just committed (in order), dropping the oldest past the limits;
    /// keeps none once every stream's together pass [`MAX_BYTES_HELD`].
    pub fn extend(&mut self, fresh: impl IntoIterator<Item = Arc<Chunk>>) {
        self.extended = Some(Instant::now());
        let before = self.bytes;
        for chunk in fresh {
            if self
                .chunks
                .back()
                .is_some_and(|last| last.end != chunk.start)
            {
                self.chunks.clear();
                self.bytes = 0;
            }
            self.bytes += chunk.held();
            self.chunks.push_back(chunk);
            while self.chunks.len() > MAX_CHUNKS || self.bytes > MAX_BYTES {
                match self.chunks.pop_front() {
                    Some(old) => self.bytes -= old.held(),
                    None => break,
                }
            }
        }
        self.account(before);
        if self.all.load(Ordering::Relaxed) > MAX_BYTES_HELD {
            self.clear();
        }
    }

    /// Keeps nothing.
    pub fn clear(&mut self) {
        let before = self.bytes;
        self.chunks.clear();
        self.bytes = 0;
        self.account(before);
    }

    /// Whether it took no commit for `idle` (and holds something).
    pub fn idle_for(&self, idle: Duration) -> bool {
        !self.chunks.is_empty() && self.extended.is_none_or(|t| t.elapsed() >= idle)
    }

    /// Tells `all` of the change from `before` bytes held.
    fn account(&self, before: usize) {
        if self.bytes >= before {
            self.all.fetch_add(self.bytes - before, Ordering::Relaxed);
        } else {
            self.all.fetch_sub(before - self.bytes, Ordering::Relaxed);
        }
    }

    /// Positions `[from, to)` from memory, stopping once about `max_bytes` are
    /// gathered; `None` unless all of them are here.
    pub fn read(&self, json: bool, from: u64, to: u64, max_bytes: usize) -> Option<ReadChunk> {
        let first = self.chunks.front()?;
        let last = self.chunks.back()?;
        if from < first.start || to > last.end || from >= to {
            return None;
        }
        let mut out = ReadChunk::open(json, from);
        for chunk in self.chunks.iter().filter(|c| c.end > from && c.start < to) {
            let (a, b) = (from.max(chunk.start), to.min(chunk.end));
            let piece = slice_chunk(json, chunk.start, &chunk.data, chunk.ends.as_deref(), a, b)?;
            out.push(piece, a, b);
            if out.body().len() >= max_bytes {
                break;
            }
        }
        out.close();
        Some(out)
    }
}

impl Drop for Recent {
    fn drop(&mut self) {
        self.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn json_chunk(start: u64, messages: &[&str]) -> Arc<Chunk> {
        let mut data = Vec::new();
        let mut ends = Vec::new();
        for (i, m) in messages.iter().enumerate() {
            if i > 0 {
                data.push(b',');
            }
            data.extend_from_slice(m.as_bytes());
            ends.extend_from_slice(&(data.len() as u32).to_le_bytes());
        }
        Arc::new(Chunk {
            start,
            end: start + messages.len() as u64,
            data,
            ends: Some(ends),
        })
    }

    #[test]
    fn serves_only_what_it_holds_whole() {
        let mut recent = Recent::default();
        recent.extend([json_chunk(10, &["1", "2"]), json_chunk(12, &["3"])]);
        let read = recent.read(true, 11, 13, usize::MAX).expect("held");
        assert_eq!(read.body(), b"[2,3]");
        assert_eq!((read.count, read.next), (2, 13));
        assert!(
            recent.read(true, 9, 13, usize::MAX).is_none(),
            "older than held"
        );
        assert!(
            recent.read(true, 12, 14, usize::MAX).is_none(),
            "newer than held"
        );
    }

    #[test]
    fn a_gap_restarts_the_run_and_limits_hold() {
        let mut recent = Recent::default();
        recent.extend([json_chunk(0, &["1"])]);
        recent.extend([json_chunk(5, &["6"])]);
        assert!(recent.read(true, 0, 1, usize::MAX).is_none());
        assert_eq!(
            recent.read(true, 5, 6, usize::MAX).map(|r| r.into_body()),
            Some(b"[6]".to_vec())
        );
        for i in 6..100 {
            recent.extend([json_chunk(i, &["7"])]);
        }
        assert_eq!(recent.chunks.len(), MAX_CHUNKS);
        let big = Arc::new(Chunk {
            start: 100,
            end: 100 + MAX_BYTES as u64 + 1,
            data: vec![b'x'; MAX_BYTES + 1],
            ends: None,
        });
        recent.extend([big]);
        assert!(recent.chunks.is_empty() && recent.bytes == 0);
    }

    #[test]
    fn every_streams_chunks_together_are_held_to_the_bound_and_counted_to_the_byte() {
        let all = Arc::new(AtomicUsize::new(0));
        let chunk = |start: u64| {
            Arc::new(Chunk {
                start,
                end: start + 1,
                data: vec![b'x'; 200 * 1024],
                ends: Some(vec![0; 4]),
            })
        };
        // Streams of 200 KiB each until every stream's pass the bound: the stream
        // whose commit passes it keeps none.
        let mut streams: Vec<Recent> = Vec::new();
        for _ in 0..MAX_BYTES_HELD / (200 * 1024) + 8 {
            let mut recent = Recent::new(Arc::clone(&all));
            recent.extend([chunk(0)]);
            streams.push(recent);
        }
        let held: usize = streams.iter().map(|r| r.bytes).sum();
        assert_eq!(all.load(Ordering::Relaxed), held, "counted to the byte");
        assert!(held <= MAX_BYTES_HELD, "{held}");
        assert!(streams.last().is_some_and(|r| r.chunks.is_empty()));
        // What a stream let go, or held when dropped, is no longer counted.
        streams[0].clear();
        streams.truncate(10);
        let held: usize = streams.iter().map(|r| r.bytes).sum();
        assert_eq!(all.load(Ordering::Relaxed), held);
        drop(streams);
        assert_eq!(all.load(Ordering::Relaxed), 0);
    }

    #[test]
    fn a_stream_is_idle_once_it_took_no_commit_for_the_time() {
        let mut recent = Recent::default();
        assert!(!recent.idle_for(Duration::ZERO), "holding nothing");
        recent.extend([json_chunk(0, &["1"])]);
        assert!(recent.idle_for(Duration::ZERO));
        assert!(!recent.idle_for(IDLE));
    }
}
