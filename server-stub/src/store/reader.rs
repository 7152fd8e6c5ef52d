//! Reading committed positions of a stream (and of the ancestors a fork shares) as
//! large contiguous pieces, without re-encoding each message.

use rusqlite::{params, Connection};

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
    conn: &Connection,
    meta: &StreamMeta,
    from: u64,
    to: u64,
    max_bytes: usize,
) -> rusqlite::Result<ReadChunk> {
    let json = meta.is_json();
    let mut out = ReadChunk::open(json, from);
    let mut stmt = conn.prepare_cached(
        "SELECT start, end, data, ends FROM chunks
         WHERE stream_id = ?1
           AND start >= IFNULL((SELECT MAX(start) FROM chunks WHERE stream_id = ?1 AND start <= ?2), 0)
           AND start < ?3
         ORDER BY start",
    )?;
    for (id, lo, hi) in meta.segments(from, to) {
        let mut rows = stmt.query(params![id, lo as i64, hi as i64])?;
        while let Some(row) = rows.next()? {
            let start = row.get::<_, i64>(0)? as u64;
            let end = row.get::<_, i64>(1)? as u64;
            let a = lo.max(start);
            let b = hi.min(end);
            if a >= b {
                continue;
            }
            let data = row.get_ref(2)?.as_blob()?;
            let ends = if json {
                row.get_ref(3)?.as_blob_or_null()?
            } else {
                None
            };
            let Some(piece) = slice_chunk(json, start, data, ends, a, b) else {
                continue;
            };
            out.push(piece, a, b);
            if out.body.len() >= max_bytes {
                out.close();
                return Ok(out);
            }
        }
    }
    out.close();
    Ok(out)
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
    let first = usize::try_from(a.checked_sub(start)?).ok()?;
    let last = usize::try_from(b.checked_sub(start)?).ok()?; // exclusive
    if first >= last {
        return None;
    }
    if !json {
        return data.get(first..last);
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
    data.get(begin..end_of(last - 1)?)
}
