//! Reading committed positions of a stream (and of the ancestors a fork shares) as
//! large contiguous pieces, without re-encoding each message.

use std::ops::Range;

use rusqlite::blob::Blob;
use rusqlite::{params, Connection, DatabaseName};

use super::meta::StreamMeta;

/// What a read returns: the response body, already framed, and where the read ended.
#[derive(Clone, Debug)]
pub struct ReadChunk {
    /// For JSON streams the messages as one array `[m1,m2,...]`; otherwise the bytes.
    /// Only `body[..len]` is the body: a recycled buffer brings room beyond it that
    /// is written over, never zeroed again.
    body: Vec<u8>,
    len: usize,
    json: bool,
    /// Positions covered.
    pub count: u64,
    /// The position after the last one returned.
    pub next: u64,
}

impl PartialEq for ReadChunk {
    fn eq(&self, other: &Self) -> bool {
        self.body() == other.body()
            && self.json == other.json
            && self.count == other.count
            && self.next == other.next
    }
}

impl Eq for ReadChunk {}

impl ReadChunk {
    /// Nothing read, at position `at` (for JSON, the body is `[]`).
    pub fn empty(json: bool, at: u64) -> Self {
        let mut chunk = Self::open(json, at);
        chunk.close();
        chunk
    }

    /// Starts gathering from position `from`.
    pub(super) fn open(json: bool, from: u64) -> Self {
        Self::open_in(Vec::new(), json, from)
    }

    /// Starts gathering from position `from` into `room` (whose bytes are written
    /// over).
    pub(super) fn open_in(room: Vec<u8>, json: bool, from: u64) -> Self {
        let mut chunk = ReadChunk {
            body: room,
            len: 0,
            json,
            count: 0,
            next: from,
        };
        if json {
            chunk.put(b"[");
        }
        chunk
    }

    /// The next `n` bytes of the body, to be written.
    fn grow(&mut self, n: usize) -> &mut [u8] {
        let at = self.len;
        if self.body.len() < at + n {
            self.body.resize(at + n, 0);
        }
        self.len = at + n;
        &mut self.body[at..at + n]
    }

    /// Adds `bytes` to the body: over the room there is, or at its end (copied
    /// once, not zeroed first).
    fn put(&mut self, bytes: &[u8]) {
        if self.len == self.body.len() {
            self.body.extend_from_slice(bytes);
            self.len += bytes.len();
        } else {
            self.grow(bytes.len()).copy_from_slice(bytes);
        }
    }

    /// Adds positions `[a, b)`: `piece` is their stored bytes (JSON: comma-joined
    /// messages).
    pub(super) fn push(&mut self, piece: &[u8], a: u64, b: u64) {
        self.comma();
        self.put(piece);
        self.covered(a, b);
    }

    /// Adds positions `[a, b)`, whose `len` stored bytes `fill` writes into the room
    /// it is given.
    pub(super) fn push_with<E>(
        &mut self,
        len: usize,
        a: u64,
        b: u64,
        fill: impl FnOnce(&mut [u8]) -> Result<(), E>,
    ) -> Result<(), E> {
        self.comma();
        let before = self.len;
        if let Err(e) = fill(self.grow(len)) {
            self.len = before;
            return Err(e);
        }
        self.covered(a, b);
        Ok(())
    }

    /// The comma before every JSON message but the first.
    fn comma(&mut self) {
        if self.json && self.count > 0 {
            self.put(b",");
        }
    }

    /// Notes that positions `[a, b)` were added.
    fn covered(&mut self, a: u64, b: u64) {
        self.count += b - a;
        self.next = b;
    }

    /// The body's length so far.
    pub(super) fn len(&self) -> usize {
        self.len
    }

    /// Takes what was gathered so far, as a buffer and the length of the body in it
    /// (the next push goes on from there, into `room`).
    pub(super) fn take_body(&mut self, room: Vec<u8>) -> (Vec<u8>, usize) {
        let len = std::mem::replace(&mut self.len, 0);
        (std::mem::replace(&mut self.body, room), len)
    }

    /// Ends gathering.
    pub(super) fn close(&mut self) {
        if self.json {
            self.put(b"]");
        }
    }

    /// The body.
    pub fn body(&self) -> &[u8] {
        &self.body[..self.len]
    }

    /// The body, owned.
    pub fn into_body(mut self) -> Vec<u8> {
        self.body.truncate(self.len);
        self.body
    }
}

/// Reads positions `[from, to)` of `meta`'s stream (through its fork chain), stopping
/// at a chunk boundary once about `max_bytes` are gathered.
pub fn read_range(
    conn: &Connection,
    meta: &StreamMeta,
    from: u64,
    to: u64,
    max_bytes: usize,
) -> rusqlite::Result<ReadChunk> {
    let mut out = ReadChunk::open(meta.is_json(), from);
    read_into(conn, meta, from..to, max_bytes, &mut out)?;
    out.close();
    Ok(out)
}

/// Reads positions `range` like [`read_range`], adding them to `out` (which may hold
/// earlier positions); each chunk's payload goes straight into the body.
pub fn read_into(
    conn: &Connection,
    meta: &StreamMeta,
    range: Range<u64>,
    max_bytes: usize,
    out: &mut ReadChunk,
) -> rusqlite::Result<()> {
    let json = meta.is_json();
    let gathered = out.len();
    // One handle, moved from blob to blob.
    let mut blob: Option<Blob<'_>> = None;
    each_chunk(conn, meta, range, |row, start, end, (a, b)| {
        match locate(conn, row, json, start, end, (a, b))? {
            Some((Stored::Inline, lo, hi)) => {
                if let Some(bytes) = row.get_ref(3)?.as_blob()?.get(lo..hi) {
                    out.push(bytes, a, b);
                }
            }
            Some((Stored::Blob(id), lo, hi)) => {
                let handle = match blob.as_mut() {
                    Some(handle) => {
                        handle.reopen(id)?;
                        handle
                    }
                    None => blob.insert(conn.blob_open(
                        DatabaseName::Main,
                        "blobs",
                        "data",
                        id,
                        true,
                    )?),
                };
                out.push_with(hi - lo, a, b, |room| handle.read_at_exact(room, lo))?;
            }
            None => {}
        }
        Ok(out.len() - gathered < max_bytes)
    })
}

/// How far [`read_range`] of a range goes, found without reading payloads.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Measured {
    /// Positions covered.
    pub count: u64,
    /// The position after them.
    pub next: u64,
    /// The bytes the read adds to a body (JSON: messages and the commas between
    /// them, without the brackets).
    pub bytes: usize,
}

/// How far [`read_range`] of `range` with `max_bytes` goes, and how many bytes it
/// gathers, found from the chunks' sizes (and, for a chunk cut in two, its message
/// ends) without reading their payloads.
pub fn measure(
    conn: &Connection,
    meta: &StreamMeta,
    range: Range<u64>,
    max_bytes: usize,
) -> rusqlite::Result<Measured> {
    let json = meta.is_json();
    let mut measured = Measured {
        count: 0,
        next: range.start,
        bytes: 0,
    };
    each_chunk(conn, meta, range, |row, start, end, (a, b)| {
        if let Some((_, lo, hi)) = locate(conn, row, json, start, end, (a, b))? {
            // As gathered: a comma between JSON messages.
            measured.bytes += hi - lo + usize::from(json && measured.count > 0);
            measured.count += b - a;
            measured.next = b;
        }
        Ok(measured.bytes < max_bytes)
    })?;
    Ok(measured)
}

/// Where a chunk's payload is.
enum Stored {
    /// In the chunk's own row, `data` (small payloads, and every payload written
    /// before `blobs` existed).
    Inline,
    /// In `blobs`, under this id.
    Blob(i64),
}

/// Where positions `[a, b)` of the chunk in `row` (from `start` to `end`) are: its
/// payload and the bounds within it; `None` when they do not fit the chunk.
fn locate(
    conn: &Connection,
    row: &rusqlite::Row<'_>,
    json: bool,
    start: u64,
    end: u64,
    (a, b): (u64, u64),
) -> rusqlite::Result<Option<(Stored, usize, usize)>> {
    let (stored, len) = match row.get::<_, Option<i64>>(2)? {
        Some(id) => (Stored::Blob(id), row.get::<_, Option<i64>>(5)?),
        None => (Stored::Inline, row.get::<_, Option<i64>>(6)?),
    };
    let len = len.unwrap_or(0) as usize;
    // A whole chunk needs no message ends to be cut.
    if a == start && b == end {
        return Ok(Some((stored, 0, len)));
    }
    let ends: Option<Vec<u8>> = match (&stored, json) {
        (_, false) => None,
        (Stored::Inline, true) => row.get(4)?,
        (Stored::Blob(id), true) => conn
            .prepare_cached("SELECT ends FROM blobs WHERE id = ?1")?
            .query_row([id], |r| r.get(0))?,
    };
    let bounds = slice_bounds(json, start, len, ends.as_deref(), a, b);
    Ok(bounds.map(|(lo, hi)| (stored, lo, hi)))
}

/// Calls `visit` with each stored chunk that positions `range` touch (through the
/// fork chain), in order, as a row of (start, end, blob, data, ends, blob length,
/// data length), with its start, its end and the part `[a, b)` of it in `range`,
/// until `visit` returns `false`.
///
/// A stream's chunks are in `chunks` and, the newest not yet folded, in `landed`
/// (after all of its chunks in `chunks`). `chunks` is read first, through its key;
/// `landed`, which has no index, only for what `chunks` did not hold, and only when
/// the stream may have chunks there: its metadata says so (`landed_from`), or it is
/// an ancestor, whose metadata is not at hand. Both are then read in one transaction,
/// so from one snapshot: a fold committed in between cannot hide a chunk.
pub(super) fn each_chunk(
    conn: &Connection,
    meta: &StreamMeta,
    range: Range<u64>,
    mut visit: impl FnMut(&rusqlite::Row<'_>, u64, u64, (u64, u64)) -> rusqlite::Result<bool>,
) -> rusqlite::Result<()> {
    let segments = meta.segments(range.start, range.end);
    let maybe_landed =
        |id: i64, hi: u64| id != meta.id || meta.landed_from.is_some_and(|from| hi > from);
    let both = segments.iter().any(|&(id, _, hi)| maybe_landed(id, hi));
    let _snapshot = if both && conn.is_autocommit() {
        Some(Snapshot::begin(conn)?)
    } else {
        None
    };
    for (id, lo, hi) in segments {
        let mut at = lo;
        let tables: &[&str] = if maybe_landed(id, hi) {
            &[CHUNKS, LANDED]
        } else {
            &[CHUNKS]
        };
        for sql in tables {
            if at >= hi {
                break;
            }
            let mut stmt = conn.prepare_cached(sql)?;
            let mut rows = stmt.query(params![id, at as i64, hi as i64])?;
            while let Some(row) = rows.next()? {
                let start = row.get::<_, i64>(0)? as u64;
                let end = row.get::<_, i64>(1)? as u64;
                let (a, b) = (at.max(start), hi.min(end));
                if a >= b {
                    continue;
                }
                if !visit(row, start, end, (a, b))? {
                    return Ok(());
                }
                at = b;
            }
        }
    }
    Ok(())
}

/// A read transaction, ended however the read ends: returning, failing or
/// panicking (a connection left inside one would read an old snapshot from then on).
struct Snapshot<'c>(&'c Connection);

impl<'c> Snapshot<'c> {
    fn begin(conn: &'c Connection) -> rusqlite::Result<Self> {
        conn.prepare_cached("BEGIN")?.execute([])?;
        Ok(Snapshot(conn))
    }
}

impl Drop for Snapshot<'_> {
    fn drop(&mut self) {
        // A read-only transaction: ending it by rollback loses nothing.
        if let Ok(mut end) = self.0.prepare_cached("ROLLBACK") {
            let _ = end.execute([]);
        }
    }
}

/// The columns [`each_chunk`] reads from `chunks` or `landed` (which have the same):
/// start, end, blob, data, ends, blob length, data length.
macro_rules! chunk_columns {
    () => {
        "SELECT start, end, blob, data, ends,
            IFNULL(bytes, (SELECT length(data) FROM blobs WHERE id = blob)), length(data)"
    };
}

/// The chunks of stream `?1` in `chunks` that positions `[?2, ?3)` touch, in order.
const CHUNKS: &str = concat!(
    chunk_columns!(),
    "
    FROM chunks
    WHERE stream_id = ?1
      AND start >= IFNULL((SELECT MAX(start) FROM chunks WHERE stream_id = ?1 AND start <= ?2), 0)
      AND start < ?3
    ORDER BY start"
);

/// Those of [`CHUNKS`] that are in `landed`, in order: a stream's chunks land in the
/// order of their positions, so in the order of `seq`, which needs no sorting and
/// lets a read that has gathered enough stop early.
const LANDED: &str = concat!(
    chunk_columns!(),
    "
    FROM landed
    WHERE stream_id = ?1 AND end > ?2 AND start < ?3
    ORDER BY seq"
);

/// Positions `[a, b)` of a stored chunk starting at `start`: for JSON (`ends` holding
/// each message's end as a little-endian `u32`) the comma-joined messages, otherwise
/// the bytes; `None` when the range does not fit the chunk.
pub(super) fn slice_chunk<'a>(
    json: bool,
    start: u64,
    data: &'a [u8],
    ends: Option<&[u8]>,
    a: u64,
    b: u64,
) -> Option<&'a [u8]> {
    let (lo, hi) = slice_bounds(json, start, data.len(), ends, a, b)?;
    data.get(lo..hi)
}

/// Where positions `[a, b)` are within the `len` stored bytes of the chunk starting
/// at `start` (see [`slice_chunk`]).
fn slice_bounds(
    json: bool,
    start: u64,
    len: usize,
    ends: Option<&[u8]>,
    a: u64,
    b: u64,
) -> Option<(usize, usize)> {
    let first = usize::try_from(a.checked_sub(start)?).ok()?;
    let last = usize::try_from(b.checked_sub(start)?).ok()?; // exclusive
    if first >= last {
        return None;
    }
    if !json {
        return (last <= len).then_some((first, last));
    }
    let ends = ends.unwrap_or(&[]);
    let end_of = |i: usize| {
        ends.get(i * 4..i * 4 + 4)
            .map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]]) as usize)
    };
    let begin = if first == 0 {
        0
    } else {
        end_of(first - 1)? + 1
    };
    let end = end_of(last - 1)?;
    (begin <= end && end <= len).then_some((begin, end))
}
