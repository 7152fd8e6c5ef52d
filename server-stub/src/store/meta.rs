//! Stream metadata as the writer and readers see it: configuration, tail, closure,
//! expiry and the fork chain, plus the offset format.

use std::sync::Arc;

use gapless_core::Offset;

/// Width of the zero-padded decimal offsets this server issues.
const OFFSET_WIDTH: usize = 16;

/// Formats a position (messages for JSON streams, bytes otherwise) of a stream of
/// epoch `epoch` as an offset: the epoch and the position, each in 16 zero-padded
/// decimal digits, joined by `_`, so that string order is position order within a
/// stream (a fork's positions up to its fork point are written in an older epoch
/// than its own, see [`StreamMeta::epoch_at`]), and a stream's own positions sort
/// after those of any stream at its path before it (see [`StreamMeta::epoch`]). The
/// shape is the reference implementation's, so offsets look familiar.
pub fn format_offset(epoch: u64, pos: u64) -> String {
    let mut out = String::with_capacity(2 * OFFSET_WIDTH + 1);
    push_offset(&mut out, epoch, pos);
    out
}

/// An offset's epoch part when it is zero (streams created before epochs were
/// kept, and the first of a fresh database's, see [`StreamMeta::epoch`]).
const EPOCH_ZERO: &str = "0000000000000000_";
const _: () = assert!(EPOCH_ZERO.len() == OFFSET_WIDTH + 1);

/// Appends the offset of `pos` in epoch `epoch` (see [`format_offset`]) to `out`: it
/// is written for every append and every delivery, where `format!` costs ten times
/// as much (and pushing it a character at a time, three times).
pub fn push_offset(out: &mut String, epoch: u64, pos: u64) {
    if epoch == 0 {
        out.push_str(EPOCH_ZERO);
    } else {
        push_padded(out, epoch);
        out.push('_');
    }
    push_padded(out, pos);
}

/// Appends `n` in at least [`OFFSET_WIDTH`] decimal digits, zero-padded: below 10^16
/// (every epoch, and positions short of ten petabytes) as two halves of eight digits
/// in 32-bit arithmetic, where a digit at a time in 64-bit took some 300
/// instructions a number (`gapless-bench --instructions`).
fn push_padded(out: &mut String, n: u64) {
    const HALF: u64 = 100_000_000;
    let mut digits = [b'0'; 20];
    if n < HALF * HALF {
        fill_eight(&mut digits[4..12], (n / HALF) as u32);
        fill_eight(&mut digits[12..], (n % HALF) as u32);
        push_ascii(out, &digits[4..]);
        return;
    }
    let (mut n, mut i) = (n, digits.len());
    while n > 0 {
        i -= 1;
        digits[i] += (n % 10) as u8;
        n /= 10;
    }
    push_ascii(out, &digits[i..]);
}

/// Writes `v` (below 10^8) as eight decimal digits.
fn fill_eight(slot: &mut [u8], mut v: u32) {
    for d in slot.iter_mut().rev() {
        *d = b'0' + (v % 10) as u8;
        v /= 10;
    }
}

/// Appends ASCII digits.
fn push_ascii(out: &mut String, digits: &[u8]) {
    // ASCII digits: always UTF-8.
    out.push_str(std::str::from_utf8(digits).unwrap_or_default());
}

/// Where a read starts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReadFrom {
    /// A concrete position.
    At(u64),
    /// The tail, whatever it is when the read starts (`offset=now`).
    Tail,
}

/// Why an offset parameter is unusable.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum BadOffset {
    /// Not an offset at all (forbidden characters, empty, too long).
    #[error("malformed offset: {0}")]
    Malformed(String),
    /// Well formed, but not one this server issues.
    #[error("offset {0:?} was not issued by this server")]
    Unknown(String),
    /// An offset of a stream that was at this path before (deleted or expired, then
    /// created again): none of its positions exists any more (410).
    #[error("offset {0:?} belongs to an earlier stream at this path, since deleted or expired")]
    Retired(String),
}

/// Reads an offset for the stream of epoch `epoch` (see [`StreamMeta::epoch`]) that
/// also takes the offsets of `inherited` (a fork's ancestors', up to its fork point):
/// an offset of an earlier epoch is [`BadOffset::Retired`]; one of a later epoch is
/// past the stream's tail. Position 0 is the start in every epoch (nothing read: no
/// gap to fear), as `-1` is; the official conformance suite writes the start as
/// `0000000000000000_0000000000000000`.
pub fn resolve_offset(
    text: &str,
    epoch: u64,
    inherited: &[Inherited],
) -> Result<ReadFrom, BadOffset> {
    match parse_offset(text)? {
        (_, from @ ReadFrom::Tail) => Ok(from),
        (None, from) | (_, from @ ReadFrom::At(0)) => Ok(from),
        (Some(e), from @ ReadFrom::At(pos))
            if e != epoch && inherited.iter().any(|i| i.takes(e, pos)) =>
        {
            Ok(from)
        }
        (Some(e), _) if e < epoch => Err(BadOffset::Retired(text.to_owned())),
        (Some(e), _) if e > epoch => Ok(ReadFrom::At(u64::MAX)),
        (Some(_), from) => Ok(from),
    }
}

/// An epoch whose offsets a fork takes besides its own: its source's, or an earlier
/// ancestor's, up to the position where the fork stops sharing that stream's data
/// (there the two name the same place).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Inherited {
    /// The ancestor's epoch.
    pub epoch: u64,
    /// The last position its offsets name in the fork.
    pub until: u64,
}

impl Inherited {
    /// Whether the offset of `pos` in `epoch` names a place in the fork.
    pub fn takes(&self, epoch: u64, pos: u64) -> bool {
        epoch == self.epoch && pos <= self.until
    }
}

/// Parses an offset from a query or header value: its epoch (`None` for `-1` and
/// `now`) and where it reads from.
pub fn parse_offset(text: &str) -> Result<(Option<u64>, ReadFrom), BadOffset> {
    let offset = Offset::parse(text).map_err(|e| BadOffset::Malformed(e.to_string()))?;
    if offset.is_start() {
        return Ok((None, ReadFrom::At(0)));
    }
    if offset.is_now() {
        return Ok((None, ReadFrom::Tail));
    }
    let s = offset.as_str();
    let unknown = || BadOffset::Unknown(s.to_owned());
    let (epoch, pos) = s.split_once('_').ok_or_else(unknown)?;
    let digits = |p: &str| p.len() == OFFSET_WIDTH && p.bytes().all(|b| b.is_ascii_digit());
    if !digits(epoch) || !digits(pos) {
        return Err(unknown());
    }
    let epoch = epoch.parse().map_err(|_| unknown())?;
    let pos = pos.parse().map_err(|_| unknown())?;
    Ok((Some(epoch), ReadFrom::At(pos)))
}

/// One ancestor segment of a fork: positions below `until` (and at or above the
/// previous segment's `until`) are read from stream `id`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Segment {
    /// The internal id of the stream holding these positions.
    pub id: i64,
    /// The first position past this segment.
    pub until: u64,
}

/// Everything known about one stream.
#[derive(Clone, Debug, PartialEq)]
pub struct StreamMeta {
    /// Internal id (forks reference it).
    pub id: i64,
    /// The first part of the stream's offsets. A stream created at a path gets one
    /// above every epoch the server issued before (the time in milliseconds, or the
    /// last one plus one), so that offsets of an earlier stream at that path (deleted
    /// or expired) sort before its own and are refused as such ([`resolve_offset`]),
    /// never read as positions of the new one. A fork gets its own too (a fork
    /// created again from the same source refuses the earlier one's offsets), and
    /// takes its ancestors' offsets up to its fork point ([`StreamMeta::inherited`]).
    /// Streams created before epochs were kept have 0; forks created before forks had
    /// their own, their source's.
    pub epoch: u64,
    /// The URL path under `/v1/stream/` (shared: metadata is cloned on every append).
    pub path: Arc<str>,
    /// The content type fixed at creation, as given (shared, as `path`).
    pub content_type: Arc<str>,
    /// Sliding time-to-live in seconds.
    pub ttl_secs: Option<u64>,
    /// Absolute expiry, milliseconds since the epoch.
    pub expires_at_ms: Option<u64>,
    /// When it was created, milliseconds since the epoch.
    pub created_ms: u64,
    /// The last access that reset the TTL, milliseconds since the epoch.
    pub access_ms: u64,
    /// The next position to be written.
    pub tail: u64,
    /// Whether the stream is closed.
    pub closed: bool,
    /// The last `Stream-Seq` accepted.
    pub last_seq: Option<String>,
    /// Soft-deleted: gone for clients, kept because forks read from it.
    pub deleted: bool,
    /// Ancestor segments (empty unless this is a fork).
    pub chain: Vec<Segment>,
    /// The ancestors' epochs whose offsets this fork takes (empty unless it is a
    /// fork with an epoch of its own).
    pub inherited: Vec<Inherited>,
    /// The source stream, if this is a fork.
    pub forked_from: Option<i64>,
    /// The fork position (the source's tail, or the requested offset).
    pub fork_at: u64,
    /// The first position of this stream whose chunk was still in `landed` when this
    /// was published (`None`: every chunk was in `chunks`). Chunks only ever move
    /// from `landed` to `chunks`, so reads of positions below it need not look in
    /// `landed`. Not stored: a database is folded when it is opened.
    pub landed_from: Option<u64>,
}

impl StreamMeta {
    /// Reads an offset of this stream's (see [`resolve_offset`]).
    pub fn resolve(&self, text: &str) -> Result<ReadFrom, BadOffset> {
        resolve_offset(text, self.epoch, &self.inherited)
    }

    /// The epoch in which this stream writes `pos` in offsets: its own, but for a
    /// fork's positions up to its fork point, which it writes as its source wrote them
    /// (the protocol's "same offset space": a reader of the fork from `-1` sees the
    /// source's offsets up to there). `inherited` runs by `until`, the deepest
    /// ancestor first.
    pub fn epoch_at(&self, pos: u64) -> u64 {
        self.inherited
            .iter()
            .find(|i| pos <= i.until)
            .map_or(self.epoch, |i| i.epoch)
    }

    /// The offset of `pos` (see [`StreamMeta::epoch_at`]).
    pub fn offset(&self, pos: u64) -> String {
        format_offset(self.epoch_at(pos), pos)
    }

    /// Whether the offset of `pos` in `epoch` names a place in this stream: one of its
    /// own, one it inherited, or the start.
    pub fn takes(&self, epoch: u64, pos: u64) -> bool {
        epoch == self.epoch || pos == 0 || self.inherited.iter().any(|i| i.takes(epoch, pos))
    }

    /// Whether this stream holds JSON messages (positions count messages).
    pub fn is_json(&self) -> bool {
        gapless_core::wire::headers::is_json(&self.content_type)
    }

    /// When the stream expires, if it does, given the last access in `access_ms`.
    pub fn expiry_ms(&self, access_ms: u64) -> Option<u64> {
        match (self.expires_at_ms, self.ttl_secs) {
            (Some(at), _) => Some(at),
            (None, Some(ttl)) => Some(access_ms.saturating_add(ttl.saturating_mul(1000))),
            (None, None) => None,
        }
    }

    /// Whether the stream has expired at `now_ms`, given the last access.
    pub fn is_expired(&self, access_ms: u64, now_ms: u64) -> bool {
        self.expiry_ms(access_ms).is_some_and(|at| now_ms >= at)
    }

    /// The segments to read for positions `[from, to)`, own data included.
    pub fn segments(&self, from: u64, to: u64) -> Vec<(i64, u64, u64)> {
        let mut out = Vec::new();
        let mut lo = 0;
        for seg in &self.chain {
            let (a, b) = (from.max(lo), to.min(seg.until));
            if a < b {
                out.push((seg.id, a, b));
            }
            lo = seg.until;
        }
        let a = from.max(lo);
        if a < to {
            out.push((self.id, a, to));
        }
        out
    }
}

/// The current time in milliseconds since the Unix epoch.
pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offsets_sort_as_positions_and_parse_back() {
        for epoch in [0, 1, 1_764_000_000_000] {
            assert!(format_offset(epoch, 9) < format_offset(epoch, 10));
            assert!(format_offset(epoch, u64::MAX / 10_000) < format_offset(epoch + 1, 0));
            assert_eq!(
                resolve_offset(&format_offset(epoch, 42), epoch, &[]),
                Ok(ReadFrom::At(42))
            );
            assert_eq!(resolve_offset("-1", epoch, &[]), Ok(ReadFrom::At(0)));
            assert_eq!(resolve_offset("now", epoch, &[]), Ok(ReadFrom::Tail));
        }
        assert!(matches!(parse_offset("a,b"), Err(BadOffset::Malformed(_))));
        assert!(matches!(parse_offset("12"), Err(BadOffset::Unknown(_))));
        assert_eq!(format_offset(0, 7), "0000000000000000_0000000000000007");
        assert_eq!(
            format_offset(1_764_000_000_000, 7),
            "0001764000000000_0000000000000007"
        );
        // An earlier stream's offsets are refused (but for its start, every stream's);
        // a later epoch is past the tail.
        assert_eq!(
            resolve_offset(&format_offset(0, 0), 6, &[]),
            Ok(ReadFrom::At(0))
        );
        let earlier = format_offset(5, 3);
        assert!(matches!(
            resolve_offset(&earlier, 6, &[]),
            Err(BadOffset::Retired(_))
        ));
        assert_eq!(resolve_offset(&earlier, 4, &[]), Ok(ReadFrom::At(u64::MAX)));
        assert_eq!(
            resolve_offset("9999999999999999_9999999999999999", 0, &[]),
            Ok(ReadFrom::At(u64::MAX))
        );
    }

    #[test]
    fn a_fork_takes_its_ancestors_offsets_up_to_its_fork_point_only() {
        // Forked from epoch 5 at 3, itself forked from epoch 2 at 1; the fork's own
        // epoch is 9.
        let inherited = [
            Inherited { epoch: 2, until: 1 },
            Inherited { epoch: 5, until: 3 },
        ];
        let resolve = |e, pos| resolve_offset(&format_offset(e, pos), 9, &inherited);
        assert_eq!(resolve(5, 3), Ok(ReadFrom::At(3)));
        assert_eq!(resolve(2, 1), Ok(ReadFrom::At(1)));
        assert_eq!(resolve(9, 7), Ok(ReadFrom::At(7)));
        // Past the fork point the source's offsets name the source's own data, which
        // the fork does not have; an earlier fork's (epoch 7) are gone.
        for (e, pos) in [(5, 4), (2, 2), (7, 2)] {
            assert!(
                matches!(resolve(e, pos), Err(BadOffset::Retired(_))),
                "{e} {pos}"
            );
        }
    }

    #[test]
    fn offsets_written_digit_by_digit_are_the_formatted_ones() {
        let mut n = 1u64;
        let mut samples = vec![0, u64::MAX, u64::MAX - 1];
        while let Some(next) = n.checked_mul(10) {
            samples.extend([n - 1, n, n + 1]);
            n = next;
        }
        for pos in samples {
            for epoch in [0, 1, pos] {
                assert_eq!(
                    format_offset(epoch, pos),
                    format!("{epoch:0w$}_{pos:0w$}", w = OFFSET_WIDTH),
                    "{epoch} {pos}"
                );
            }
        }
    }

    #[test]
    fn fork_segments_split_reads() {
        let meta = StreamMeta {
            id: 3,
            epoch: 0,
            path: "f".into(),
            content_type: "text/plain".into(),
            ttl_secs: None,
            expires_at_ms: None,
            created_ms: 0,
            access_ms: 0,
            tail: 20,
            closed: false,
            last_seq: None,
            deleted: false,
            chain: vec![Segment { id: 1, until: 5 }, Segment { id: 2, until: 10 }],
            inherited: Vec::new(),
            forked_from: Some(2),
            fork_at: 10,
            landed_from: None,
        };
        assert_eq!(
            meta.segments(0, 20),
            vec![(1, 0, 5), (2, 5, 10), (3, 10, 20)]
        );
        assert_eq!(meta.segments(7, 12), vec![(2, 7, 10), (3, 10, 12)]);
        assert_eq!(meta.segments(12, 12), vec![]);
    }
}
