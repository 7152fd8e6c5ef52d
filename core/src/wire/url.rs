//! Read URLs: the stream URL plus `cursor`, `live` and `offset` query parameters, sorted
//! as §10 asks so that caches collapse identical reads.

use crate::Offset;

/// The `live=` mode of a read request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LiveParam {
    /// A catch-up read: no `live` parameter.
    CatchUp,
    /// `live=long-poll` (§5.7).
    LongPoll,
    /// `live=sse` (§5.8).
    Sse,
}

impl LiveParam {
    /// The query value, if any.
    pub fn as_query(self) -> Option<&'static str> {
        match self {
            LiveParam::CatchUp => None,
            LiveParam::LongPoll => Some("long-poll"),
            LiveParam::Sse => Some("sse"),
        }
    }
}

/// Percent-encodes a query value, keeping only RFC 3986 unreserved characters as they are.
///
/// ```
/// assert_eq!(gapless_core::wire::encode_query_value("a b+c~_.-"), "a%20b%2Bc~_.-");
/// ```
pub fn encode_query_value(v: &str) -> String {
    let mut out = String::with_capacity(v.len());
    for b in v.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Builds the URL of a read request: `stream_url` with `cursor`, `live` and `offset`
/// appended in sorted order (after any query the stream URL already has).
///
/// ```
/// use gapless_core::wire::{read_url, LiveParam};
/// use gapless_core::Offset;
///
/// let url = read_url("http://h/v1/stream/s", &Offset::START, LiveParam::Sse, Some("77"));
/// assert_eq!(url, "http://h/v1/stream/s?cursor=77&live=sse&offset=-1");
/// let url = read_url("http://h/s?t=1", &Offset::NOW, LiveParam::CatchUp, None);
/// assert_eq!(url, "http://h/s?t=1&offset=now");
/// ```
pub fn read_url(
    stream_url: &str,
    offset: &Offset,
    live: LiveParam,
    cursor: Option<&str>,
) -> String {
    let mut url = String::with_capacity(stream_url.len() + 64);
    url.push_str(stream_url);
    let mut sep = if stream_url.contains('?') { '&' } else { '?' };
    let mut push = |k: &str, v: &str| {
        url.push(sep);
        url.push_str(k);
        url.push('=');
        url.push_str(&encode_query_value(v));
        sep = '&';
    };
    if let Some(c) = cursor.filter(|_| live != LiveParam::CatchUp) {
        push("cursor", c);
    }
    if let Some(l) = live.as_query() {
        push("live", l);
    }
    push("offset", offset.as_str());
    url
}
