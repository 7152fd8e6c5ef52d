//! Reading committed positions of a stream (and of the ancestors a fork shares) as
//! large contiguous pieces, without re-encoding each message.

use std::ops::Range;

use rusqlite::{params, Connection, DatabaseName};

use super::meta::StreamMeta;

/// What a read returns: the response body, already framed, and where the read ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReadChunk {
    /// For JSON streams the messages as one array `[m1,m2,...]`; otherwise the bytes.
    body: Vec<u8>,
    json: bool,
    /// Positions covered.
    pub count: u64,
    /// The position after the last one returned.
    pub next: u64,
}

impl ReadChunk {
    /// Nothing read, at position `at` (for JSON, the body is `[]`).
    pub fn empty(json: bool, at: u64) -> Self {
        let mut chunk = Self::open(json, at);
        chunk.close();
        chunk
    }

    /// Starts gathering from position `from`.
    pub(super) fn open(json: bool, from: u64) -> Self {
        ReadChunk {
            body: if json { vec![b'['] } else { Vec::new() },
            json,
            count: 0,
            next: from,
        }
    }

    /// Adds positions `[a, b)`: `piece` is their stored bytes (JSON: comma-joined
    /// messages).
    pub(super) fn push(&mut self, piece: &[u8], a: u64, b: u64) {
        if self.json && self.count > 0 {
            self.body.push(b',');
        }
        self.body.extend_from_slice(piece);
        self.count += b - a;
        self.next = b;
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
        if self.json && self.count > 0 {
            self.body.push(b',');
        }
        let at = self.body.len();
        self.body.resize(at + len, 0);
        fill(&mut self.body[at..])?;
        self.count += b - a;
        self.next = b;
        Ok(())
    }

    /// Takes what was gathered so far (the next push goes on from there, into a
    /// buffer of `capacity`).
    pub(super) fn take_body(&mut self, capacity: usize) -> Vec<u8> {
        std::mem::replace(&mut self.body, Vec::with_capacity(capacity))
    }

    /// Ends gathering.
    pub(super) fn close(&mut self) {
        if self.json {
            self.body.push(b']');
        }
    }

    /// The body.
    pub fn body(&self) -> &[u8] {
        &self.body
    }

    /// The body, owned.
    pub fn into_body(self) -> Vec<u8> {
        self.body
    }
}

/// Reads positions `[from, to)` of `meta`'s stream (through its fork chain), stopping
/// at a chunk boundary once about `max_bytes` are gathered.
pub fn read_range(
    conn: &mut Connection,
    meta: &StreamMeta,
    from: u64,
    to: u64,
    max_bytes: usize,
) -> rusqlite::Result<ReadChunk> {
    let mut out = ReadChunk::open(meta.is_json(), from);
    read_planned(conn, meta, from..to, max_bytes, &mut out, |_| {}, |_| true)?;
    out.close();
    Ok(out)
}

/// Reads positions `range` of `meta`'s stream like [`read_range`], into `out`, in
/// one snapshot and in two steps: `planned` first learns how far the read goes (from
/// the chunks' sizes alone, before any payload is read), then each chunk's share is
/// read straight into `out`, after which `read` may take what `out` holds; it stops
/// the read by returning `false`.
pub fn read_planned(
    conn: &mut Connection,
    meta: &StreamMeta,
    range: Range<u64>,
    max_bytes: usize,
    out: &mut ReadChunk,
    planned: impl FnOnce(&Plan),
    mut read: impl FnMut(&mut ReadChunk) -> bool,
) -> rusqlite::Result<()> {
    let json = meta.is_json();
    let snapshot = conn.transaction()?;
    let plan = plan(&snapshot, meta, range.start, range.end, max_bytes)?;
    planned(&plan);
    for part in &plan.parts {
        match &part.stored {
            Stored::Inline { data, ends } => {
                if let Some(bytes) =
                    slice_chunk(json, part.start, data, ends.as_deref(), part.a, part.b)
                {
                    out.push(bytes, part.a, part.b);
                }
            }
            Stored::Blob { id, len, end } => {
                // A whole chunk needs no message ends to be cut.
                let bounds = if part.a == part.start && part.b == *end {
                    Some((0, *len))
                } else {
                    let ends: Option<Vec<u8>> = if json {
                        snapshot
                            .prepare_cached("SELECT ends FROM blobs WHERE id = ?1")?
                            .query_row([id], |r| r.get(0))?
                    } else {
                        None
                    };
                    slice_bounds(json, part.start, *len, ends.as_deref(), part.a, part.b)
                };
                let Some((lo, hi)) = bounds else {
                    continue;
                };
                let blob = snapshot.blob_open(DatabaseName::Main, "blobs", "data", *id, true)?;
                out.push_with(hi - lo, part.a, part.b, |room| blob.read_at_exact(room, lo))?;
            }
        }
        if !read(out) {
            break;
        }
    }
    Ok(())
}

/// How far a read goes, decided before its payload is read.
#[derive(Debug)]
pub struct Plan {
    parts: Vec<Part>,
    /// Positions covered.
    pub count: u64,
    /// The position after the last one the read returns.
    pub next: u64,
}

/// One stored chunk's share of a read: positions `[a, b)` of the chunk at `start`.
#[derive(Debug)]
struct Part {
    start: u64,
    a: u64,
    b: u64,
    stored: Stored,
}

/// Where a chunk's payload is.
#[derive(Debug)]
enum Stored {
    /// In the chunk's own row (small payloads, and every payload written before
    /// `blobs` existed).
    Inline {
        data: Vec<u8>,
        ends: Option<Vec<u8>>,
    },
    /// In `blobs`, `len` bytes long; `end` is the chunk's end.
    Blob { id: i64, len: usize, end: u64 },
}

/// Lists the chunks positions `[from, to)` take (through the fork chain), stopping at
/// a chunk boundary once their sizes add up to about `max_bytes`. Reads inline
/// payloads (small) but only the sizes of the others.
fn plan(
    conn: &Connection,
    meta: &StreamMeta,
    from: u64,
    to: u64,
    max_bytes: usize,
) -> rusqlite::Result<Plan> {
    let mut stmt = conn.prepare_cached(
        "SELECT start, end, blob, data, ends, (SELECT length(data) FROM blobs WHERE id = blob)
         FROM chunks
         WHERE stream_id = ?1
           AND start >= IFNULL((SELECT MAX(start) FROM chunks WHERE stream_id = ?1 AND start <= ?2), 0)
           AND start < ?3
         ORDER BY start",
    )?;
    let mut plan = Plan {
        parts: Vec::new(),
        count: 0,
        next: from,
    };
    let mut bytes = 0;
    for (id, lo, hi) in meta.segments(from, to) {
        let mut rows = stmt.query(params![id, lo as i64, hi as i64])?;
        while let Some(row) = rows.next()? {
            let start = row.get::<_, i64>(0)? as u64;
            let end = row.get::<_, i64>(1)? as u64;
            let (a, b) = (lo.max(start), hi.min(end));
            if a >= b {
                continue;
            }
            let stored = match row.get::<_, Option<i64>>(2)? {
                Some(id) => Stored::Blob {
                    id,
                    len: row.get::<_, Option<i64>>(5)?.unwrap_or(0) as usize,
                    end,
                },
                None => Stored::Inline {
                    data: row.get(3)?,
                    ends: row.get(4)?,
                },
            };
            bytes += match &stored {
                Stored::Inline { data, .. } => data.len(),
                Stored::Blob { len, .. } => *len,
            };
            plan.parts.push(Part {
                start,
                a,
                b,
                stored,
            });
            plan.count += b - a;
            plan.next = b;
            if bytes >= max_bytes {
                return Ok(plan);
            }
        }
    }
    Ok(plan)
}

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
