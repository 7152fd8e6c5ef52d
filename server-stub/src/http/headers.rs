//! Request header parsing (TTL, expiry, closure, producers, forks) and response
//! header values (ETag, cursor, caching) of the Durable Streams protocol.

use axum::http::{HeaderMap, HeaderName, StatusCode};
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

use super::error::ApiError;
use crate::store::{parse_offset, ProducerHdr, ReadFrom};

/// The headers of the protocol, named once: a lookup or an insertion by name then
/// hashes it, where one by `&str` first parses and checks the text.
pub(super) mod names {
    use axum::http::HeaderName;
    use gapless_core::wire::headers as wire;

    /// The protocol's header names as the core spells them (checked to be lowercase
    /// names when this compiles).
    const fn protocol(name: &'static str) -> HeaderName {
        HeaderName::from_static(name)
    }

    /// `Stream-Next-Offset`.
    pub(crate) const STREAM_NEXT_OFFSET: HeaderName = protocol(wire::STREAM_NEXT_OFFSET);
    /// `Stream-Up-To-Date`.
    pub(crate) const STREAM_UP_TO_DATE: HeaderName = protocol(wire::STREAM_UP_TO_DATE);
    /// `Stream-Cursor`.
    pub(crate) const STREAM_CURSOR: HeaderName = protocol(wire::STREAM_CURSOR);
    /// `Stream-TTL`.
    pub(crate) const STREAM_TTL: HeaderName = protocol(wire::STREAM_TTL);
    /// `Stream-Expires-At`.
    pub(crate) const STREAM_EXPIRES_AT: HeaderName = protocol(wire::STREAM_EXPIRES_AT);
    /// `Stream-Closed`.
    pub(crate) const STREAM_CLOSED: HeaderName = protocol(wire::STREAM_CLOSED);
    /// `Stream-Seq`.
    pub(crate) const STREAM_SEQ: HeaderName = protocol(wire::STREAM_SEQ);
    /// `Stream-Forked-From`.
    pub(crate) const STREAM_FORKED_FROM: HeaderName = protocol(wire::STREAM_FORKED_FROM);
    /// `Stream-Fork-Offset`.
    pub(crate) const STREAM_FORK_OFFSET: HeaderName = protocol(wire::STREAM_FORK_OFFSET);
    /// `Stream-Fork-Sub-Offset`.
    pub(crate) const STREAM_FORK_SUB_OFFSET: HeaderName = protocol(wire::STREAM_FORK_SUB_OFFSET);
    /// `Producer-Id`.
    pub(crate) const PRODUCER_ID: HeaderName = protocol(wire::PRODUCER_ID);
    /// `Producer-Epoch`.
    pub(crate) const PRODUCER_EPOCH: HeaderName = protocol(wire::PRODUCER_EPOCH);
    /// `Producer-Seq`.
    pub(crate) const PRODUCER_SEQ: HeaderName = protocol(wire::PRODUCER_SEQ);
    /// `Producer-Expected-Seq`.
    pub(crate) const PRODUCER_EXPECTED_SEQ: HeaderName = protocol(wire::PRODUCER_EXPECTED_SEQ);
    /// `Producer-Received-Seq`.
    pub(crate) const PRODUCER_RECEIVED_SEQ: HeaderName = protocol(wire::PRODUCER_RECEIVED_SEQ);
    /// `Stream-SSE-Data-Encoding`.
    pub(crate) const SSE_DATA_ENCODING: HeaderName = protocol(wire::SSE_DATA_ENCODING);

    /// `Last-Event-ID`.
    pub(crate) const LAST_EVENT_ID: HeaderName = HeaderName::from_static("last-event-id");
    /// `X-Accel-Buffering` (tells proxies not to buffer a live response).
    pub(crate) const X_ACCEL_BUFFERING: HeaderName = HeaderName::from_static("x-accel-buffering");
    /// `Cross-Origin-Resource-Policy`.
    pub(crate) const CROSS_ORIGIN_RESOURCE_POLICY: HeaderName =
        HeaderName::from_static("cross-origin-resource-policy");
}

/// Writes an HTTP/1.1 status line for `status` to `out` (the line ended), as hyper
/// writes one: the code and its canonical reason.
pub(super) fn write_status_line(out: &mut Vec<u8>, status: StatusCode) {
    out.extend_from_slice(b"HTTP/1.1 ");
    out.extend_from_slice(status.as_str().as_bytes());
    out.push(b' ');
    out.extend_from_slice(status.canonical_reason().unwrap_or("").as_bytes());
    out.extend_from_slice(b"\r\n");
}

/// Writes the header line `name: value` to `out` (the line ended).
pub(super) fn write_header_line(out: &mut Vec<u8>, name: &HeaderName, value: &[u8]) {
    out.extend_from_slice(name.as_str().as_bytes());
    out.extend_from_slice(b": ");
    out.extend_from_slice(value);
    out.extend_from_slice(b"\r\n");
}

/// Where a request's header values are found by name: a [`HeaderMap`], or the few
/// headers an append reads kept from the head it was parsed from (see
/// `accept::AppendFields`), so that both are read by the same rules.
pub(crate) trait Fields {
    /// The first value of header `name`.
    fn field(&self, name: &HeaderName) -> Option<&[u8]>;
}

impl Fields for HeaderMap {
    fn field(&self, name: &HeaderName) -> Option<&[u8]> {
        self.get(name).map(|v| v.as_bytes())
    }
}

/// A header value as text, as `HeaderValue::to_str` reads one: visible ASCII, spaces
/// and tabs only.
pub(super) fn visible(value: &[u8]) -> Option<&str> {
    value
        .iter()
        .all(|&b| b == b'\t' || (b' '..0x7f).contains(&b))
        .then(|| std::str::from_utf8(value).ok())
        .flatten()
}

/// The value of a header as text; a value that is not visible ASCII is a 400.
pub(super) fn text<'a>(
    headers: &'a (impl Fields + ?Sized),
    name: &HeaderName,
) -> Result<Option<&'a str>, ApiError> {
    match headers.field(name) {
        None => Ok(None),
        Some(v) => visible(v)
            .map(|s| Some(s.trim()))
            .ok_or_else(|| ApiError::bad_request(format!("header {name} is not valid text"))),
    }
}

/// `Stream-Closed: true` (case-insensitive); any other value is ignored (§4.1).
pub(super) fn closed(headers: &(impl Fields + ?Sized)) -> bool {
    headers
        .field(&names::STREAM_CLOSED)
        .and_then(visible)
        .is_some_and(|v| v.trim().eq_ignore_ascii_case("true"))
}

/// `Stream-TTL`: a non-negative decimal integer without sign, leading zeros or
/// exponent.
pub(super) fn ttl(headers: &HeaderMap) -> Result<Option<u64>, ApiError> {
    let Some(v) = text(headers, &names::STREAM_TTL)? else {
        return Ok(None);
    };
    let canonical =
        !v.is_empty() && v.bytes().all(|b| b.is_ascii_digit()) && (v == "0" || !v.starts_with('0'));
    if !canonical {
        return Err(ApiError::bad_request(format!(
            "Stream-TTL must be a non-negative integer number of seconds, not {v:?}"
        )));
    }
    v.parse()
        .map(Some)
        .map_err(|_| ApiError::bad_request("Stream-TTL is too large"))
}

/// `Stream-Expires-At`: an RFC 3339 timestamp, as milliseconds since the epoch.
pub(super) fn expires_at(headers: &HeaderMap) -> Result<Option<u64>, ApiError> {
    let Some(v) = text(headers, &names::STREAM_EXPIRES_AT)? else {
        return Ok(None);
    };
    let t = OffsetDateTime::parse(v, &Rfc3339).map_err(|e| {
        ApiError::bad_request(format!("Stream-Expires-At must be RFC 3339 ({v:?}: {e})"))
    })?;
    let ms = t.unix_timestamp_nanos() / 1_000_000;
    Ok(Some(ms.max(0) as u64))
}

/// Formats milliseconds since the epoch as RFC 3339; `None` past the year 9999,
/// which RFC 3339 cannot write.
pub(super) fn rfc3339(ms: u64) -> Option<String> {
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .ok()
        .and_then(|t| t.format(&Rfc3339).ok())
}

/// An integer producer header: 0 ..= 2^53-1.
fn producer_number(
    headers: &(impl Fields + ?Sized),
    name: &HeaderName,
) -> Result<Option<u64>, ApiError> {
    let Some(v) = text(headers, name)? else {
        return Ok(None);
    };
    match v.parse::<u64>() {
        Ok(n) if n < (1 << 53) && v.bytes().all(|b| b.is_ascii_digit()) => Ok(Some(n)),
        _ => Err(ApiError::bad_request(format!(
            "{name} must be an integer between 0 and 2^53-1, not {v:?}"
        ))),
    }
}

/// The longest `Producer-Id` taken: each producer a stream has seen is kept for as
/// long as the stream lives, in memory and on disk.
const MAX_PRODUCER_ID_BYTES: usize = 256;

/// The producer headers: all three or none.
pub(super) fn producer(headers: &(impl Fields + ?Sized)) -> Result<Option<ProducerHdr>, ApiError> {
    let id = text(headers, &names::PRODUCER_ID)?;
    if id.is_some_and(|id| id.len() > MAX_PRODUCER_ID_BYTES) {
        return Err(ApiError::bad_request(format!(
            "Producer-Id must be at most {MAX_PRODUCER_ID_BYTES} bytes"
        )));
    }
    let epoch = producer_number(headers, &names::PRODUCER_EPOCH)?;
    let seq = producer_number(headers, &names::PRODUCER_SEQ)?;
    match (id, epoch, seq) {
        (None, None, None) => Ok(None),
        (Some(id), Some(epoch), Some(seq)) if !id.is_empty() => Ok(Some(ProducerHdr {
            id: id.to_owned(),
            epoch,
            seq,
        })),
        (Some(""), _, _) => Err(ApiError::bad_request("Producer-Id must not be empty")),
        _ => Err(ApiError::bad_request(
            "Producer-Id, Producer-Epoch and Producer-Seq must be sent together",
        )),
    }
}

/// A fork offset header value, as a position and the epoch it was given in (checked
/// against the source's by the writer).
pub(super) fn fork_offset(headers: &HeaderMap) -> Result<Option<(Option<u64>, u64)>, ApiError> {
    let Some(v) = text(headers, &names::STREAM_FORK_OFFSET)? else {
        return Ok(None);
    };
    match parse_offset(v) {
        Ok((epoch, ReadFrom::At(pos))) => Ok(Some((epoch, pos))),
        Ok((_, ReadFrom::Tail)) => Ok(None),
        Err(e) => Err(ApiError::bad_request(format!("Stream-Fork-Offset: {e}"))),
    }
}

/// `Stream-Fork-Sub-Offset`: a non-negative integer.
pub(super) fn fork_sub_offset(headers: &HeaderMap) -> Result<Option<u64>, ApiError> {
    let Some(v) = text(headers, &names::STREAM_FORK_SUB_OFFSET)? else {
        return Ok(None);
    };
    if v.is_empty() || !v.bytes().all(|b| b.is_ascii_digit()) {
        return Err(ApiError::bad_request(format!(
            "Stream-Fork-Sub-Offset must be a non-negative integer, not {v:?}"
        )));
    }
    v.parse()
        .map(Some)
        .map_err(|_| ApiError::bad_request("Stream-Fork-Sub-Offset is too large"))
}

/// Seconds per cursor interval (§10).
const CURSOR_INTERVAL_SECS: u64 = 20;
/// The cursor epoch: 2024-10-09T00:00:00Z.
const CURSOR_EPOCH_SECS: u64 = 1_728_432_000;

/// The cursor to send (§10): the current interval number, or one strictly greater
/// than the client's when the client's is not behind.
pub(super) fn cursor(client: Option<&str>, now_ms: u64) -> String {
    let interval = (now_ms / 1000).saturating_sub(CURSOR_EPOCH_SECS) / CURSOR_INTERVAL_SECS;
    match client.and_then(|c| c.parse::<u64>().ok()) {
        Some(c) if c >= interval => {
            // Jitter of 1..=180 intervals (20 s .. 1 h), from the clock's low bits
            // (saturating: the client's cursor is any number it sent).
            let jitter = 1 + (now_ms % 180);
            c.saturating_add(jitter).to_string()
        }
        _ => interval.to_string(),
    }
}

/// The ETag of a read: stream id and epoch, range, and closure.
pub(super) fn etag(id: i64, epoch: u64, from: u64, to: u64, closed: bool) -> String {
    // The epoch with the id: an id can be another stream's after a restart, the pair
    // cannot (see `StreamMeta::epoch`).
    if closed {
        format!("\"{id}.{epoch}:{from}:{to}:c\"")
    } else {
        format!("\"{id}.{epoch}:{from}:{to}\"")
    }
}

/// Whether `If-None-Match` matches `tag`.
pub(super) fn if_none_match(headers: &HeaderMap, tag: &str) -> bool {
    headers
        .get_all(axum::http::header::IF_NONE_MATCH)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|t| {
            let t = t.trim();
            t == "*" || t == tag || t.strip_prefix("W/") == Some(tag)
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ttl_must_be_canonical() {
        let mut h = HeaderMap::new();
        for (v, ok) in [
            ("0", true),
            ("60", true),
            ("060", false),
            ("+5", false),
            ("1e3", false),
            ("", false),
            ("-1", false),
        ] {
            h.insert("stream-ttl", v.parse().unwrap());
            assert_eq!(ttl(&h).is_ok(), ok, "{v}");
        }
    }

    #[test]
    fn cursor_moves_past_the_clients() {
        let now = (CURSOR_EPOCH_SECS + 2000) * 1000;
        let current = cursor(None, now);
        assert_eq!(current, "100");
        assert_eq!(cursor(Some("7"), now), "100");
        let next: u64 = cursor(Some("100"), now).parse().unwrap();
        assert!(next > 100);
        // Any number a client sends: no overflow (a panic in a debug build, a wrap to
        // a small number in a release one).
        assert_eq!(
            cursor(Some(&u64::MAX.to_string()), now),
            u64::MAX.to_string()
        );
    }

    #[test]
    fn producers_all_or_nothing() {
        let mut h = HeaderMap::new();
        assert!(producer(&h).unwrap().is_none());
        h.insert("producer-id", "p".parse().unwrap());
        assert!(producer(&h).is_err());
        h.insert("producer-epoch", "0".parse().unwrap());
        h.insert("producer-seq", "9007199254740992".parse().unwrap());
        assert!(producer(&h).is_err());
        h.insert("producer-seq", "3".parse().unwrap());
        assert_eq!(producer(&h).unwrap().unwrap().seq, 3);
        // An id is kept as long as its stream: one of any length is not.
        h.insert("producer-id", "p".repeat(256).parse().unwrap());
        assert!(producer(&h).is_ok());
        h.insert("producer-id", "p".repeat(257).parse().unwrap());
        assert!(producer(&h).is_err());
    }
}
