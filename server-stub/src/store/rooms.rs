//! Recycled buffers for streamed reads: a catch-up of many mebibytes reuses a few
//! buffers, instead of allocating, zeroing and faulting in fresh memory for each piece.

use std::sync::{Arc, Mutex, PoisonError};

use bytes::Bytes;

use super::PIECE_BYTES;

/// The size of a new buffer: a piece stops at the first chunk boundary past
/// [`PIECE_BYTES`], so it usually fits.
const ROOM_BYTES: usize = PIECE_BYTES + PIECE_BYTES / 4;
/// Most buffers kept between reads (a streamed read has about four in use: one being
/// filled, those ahead of the body, one being written).
const KEPT: usize = 4;

/// Buffers given back by the pieces that were sent.
#[derive(Debug, Default)]
pub(crate) struct Rooms {
    free: Mutex<Vec<Vec<u8>>>,
}

impl Rooms {
    /// A buffer to gather a piece in: a kept one, or a new one.
    pub(crate) fn take(&self) -> Vec<u8> {
        let kept = self
            .free
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .pop();
        kept.unwrap_or_else(|| vec![0; ROOM_BYTES])
    }

    /// Keeps `room` for a later piece, unless enough are kept or it grew too large
    /// (a piece holding one very large chunk).
    fn give(&self, room: Vec<u8>) {
        if room.len() > 2 * ROOM_BYTES {
            return;
        }
        let mut free = self.free.lock().unwrap_or_else(PoisonError::into_inner);
        if free.len() < KEPT {
            free.push(room);
        }
    }

    /// The first `len` bytes of `room` as a piece of a body; `room` comes back here
    /// once the piece is dropped.
    pub(crate) fn lend(self: &Arc<Self>, room: Vec<u8>, len: usize) -> Bytes {
        Bytes::from_owner(Lent {
            len: len.min(room.len()),
            room,
            rooms: Arc::clone(self),
        })
    }
}

/// A piece's bytes in a buffer that goes back to its [`Rooms`] when dropped.
struct Lent {
    room: Vec<u8>,
    len: usize,
    rooms: Arc<Rooms>,
}

impl AsRef<[u8]> for Lent {
    fn as_ref(&self) -> &[u8] {
        &self.room[..self.len]
    }
}

impl Drop for Lent {
    fn drop(&mut self) {
        self.rooms.give(std::mem::take(&mut self.room));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_lent_buffer_comes_back_once_its_piece_is_dropped() {
        let rooms = Arc::new(Rooms::default());
        let mut room = rooms.take();
        room[..3].copy_from_slice(b"abc");
        let ptr = room.as_ptr();
        let piece = rooms.lend(room, 3);
        assert_eq!(&piece[..], b"abc");
        let copy = piece.clone();
        drop(piece);
        assert_eq!(&copy[..], b"abc", "a clone keeps the buffer lent");
        drop(copy);
        let again = rooms.take();
        assert_eq!(again.as_ptr(), ptr, "the same buffer is taken again");
    }

    #[test]
    fn only_a_few_buffers_of_moderate_size_are_kept() {
        let rooms = Arc::new(Rooms::default());
        let pieces: Vec<Bytes> = (0..KEPT + 2).map(|_| rooms.lend(rooms.take(), 1)).collect();
        drop(pieces);
        assert_eq!(rooms.free.lock().map(|f| f.len()).unwrap_or(0), KEPT);
        let rooms = Arc::new(Rooms::default());
        drop(rooms.lend(vec![0; 3 * ROOM_BYTES], 1));
        assert_eq!(rooms.free.lock().map(|f| f.len()).unwrap_or(0), 0);
    }
}
