//! Reading committed positions of a stream (and of the ancestors a fork shares) as
//! large contiguous pieces, without re-encoding each message.

use rusqlite::{params, Connection};

use super::meta::StreamMeta;

/// What a read returns: pieces of stored data and where the read ended.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ReadChunk {
    /// For JSON streams, runs of comma-joined messages (join them with `,` inside
    /// `[` `]`); otherwise raw bytes to concatenate.
    pub pieces: Vec<Vec<u8>>,
    /// Positions covered.
    pub count: u64,
    /// The position after the last one returned.
    pub next: u64,
}

impl ReadChunk {
    /// The JSON-mode body: `[m1,m2,...]`.
    pub fn json_body(&self) -> Vec<u8> {
        let len: usize = self.pieces.iter().map(|p| p.len() + 1).sum();
        let mut out = Vec::with_capacity(len + 2);
        out.push(b'[');
        for (i, piece) in self.pieces.iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            out.extend_from_slice(piece);
        }
        out.push(b']');
        out
    }

    /// The raw body: the pieces concatenated.
    pub fn raw_body(&self) -> Vec<u8> {
        self.pieces.concat()
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
    let mut out = ReadChunk {
        next: from,
        ..ReadChunk::default()
    };
    let mut bytes = 0usize;
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
            bytes += piece.len();
            out.pieces.push(piece);
            out.count += b - a;
            out.next = b;
            if bytes >= max_bytes {
                return Ok(out);
            }
        }
    }
    Ok(out)
}

/// Positions `[a, b)` of a stored chunk starting at `start`: for JSON (`ends` holding
/// each message's end as a little-endian `u32`) the comma-joined messages, otherwise
/// the bytes; `None` when the range does not fit the chunk.
pub(super) fn slice_chunk(
    json: bool,
    start: u64,
    data: &[u8],
    ends: Option<&[u8]>,
    a: u64,
    b: u64,
) -> Option<Vec<u8>> {
    let first = usize::try_from(a.checked_sub(start)?).ok()?;
    let last = usize::try_from(b.checked_sub(start)?).ok()?; // exclusive
    if first >= last {
        return None;
    }
    if !json {
        return data.get(first..last).map(<[u8]>::to_vec);
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
    data.get(begin..end_of(last - 1)?).map(<[u8]>::to_vec)
}
