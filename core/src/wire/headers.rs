//! Durable Streams header names (§5, §13.2) and a case-insensitive view of response headers.
//!
//! The names are written in lowercase, as HTTP/2 sends them and as `http::HeaderName`
//! takes them; HTTP/1.1 peers may send any case, and every lookup here ignores it.

use std::time::Duration;

/// Tail offset after the data in this response (§5.6).
pub const STREAM_NEXT_OFFSET: &str = "stream-next-offset";
/// `true` when the response reaches the current tail (§5.6).
pub const STREAM_UP_TO_DATE: &str = "stream-up-to-date";
/// `true` when the stream is closed (§4.1).
pub const STREAM_CLOSED: &str = "stream-closed";
/// The caching cursor a live reader echoes back as `cursor=` (§10).
pub const STREAM_CURSOR: &str = "stream-cursor";
/// Relative time-to-live in seconds, set at creation (§5.1).
pub const STREAM_TTL: &str = "stream-ttl";
/// Absolute expiry time (RFC 3339), set at creation (§5.1).
pub const STREAM_EXPIRES_AT: &str = "stream-expires-at";
/// Writer sequence number for ordered appends (§5.2).
pub const STREAM_SEQ: &str = "stream-seq";
/// Source stream of a fork (§4.2).
pub const STREAM_FORKED_FROM: &str = "stream-forked-from";
/// Offset in the source at which a fork branches (§4.2).
pub const STREAM_FORK_OFFSET: &str = "stream-fork-offset";
/// Messages or bytes past the fork offset that the fork still inherits (§4.2).
pub const STREAM_FORK_SUB_OFFSET: &str = "stream-fork-sub-offset";
/// Idempotent producer identity (§5.2.1).
pub const PRODUCER_ID: &str = "producer-id";
/// Idempotent producer epoch (§5.2.1).
pub const PRODUCER_EPOCH: &str = "producer-epoch";
/// Idempotent producer sequence number (§5.2.1).
pub const PRODUCER_SEQ: &str = "producer-seq";
/// On a 409 sequence gap: the sequence number the server expected (§5.2.1).
pub const PRODUCER_EXPECTED_SEQ: &str = "producer-expected-seq";
/// On a 409 sequence gap: the sequence number the server received (§5.2.1).
pub const PRODUCER_RECEIVED_SEQ: &str = "producer-received-seq";
/// Marks base64-encoded SSE data for binary streams (§5.8).
pub const SSE_DATA_ENCODING: &str = "stream-sse-data-encoding";
/// Standard HTTP back-off hint on 429 and 503.
pub const RETRY_AFTER: &str = "retry-after";
/// Standard HTTP content type.
pub const CONTENT_TYPE: &str = "content-type";

/// The status line and headers of an HTTP response, as a driver hands them to the core.
///
/// Header names compare case-insensitively; the first occurrence of a name wins.
///
/// ```
/// use gapless_core::wire::ResponseHead;
///
/// let head = ResponseHead::new(200)
///     .with_header("stream-next-offset", "0000000000000007")
///     .with_header("Stream-Up-To-Date", "TRUE");
/// assert_eq!(head.get("Stream-Next-Offset"), Some("0000000000000007"));
/// assert!(head.is_true("stream-up-to-date"));
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ResponseHead {
    /// The HTTP status code.
    pub status: u16,
    /// The headers, in the order received.
    pub headers: Vec<(String, String)>,
}

impl ResponseHead {
    /// A head with this status and no headers.
    pub fn new(status: u16) -> Self {
        ResponseHead {
            status,
            headers: Vec::new(),
        }
    }

    /// Adds a header (builder style).
    #[must_use]
    pub fn with_header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.headers.push((name.into(), value.into()));
        self
    }

    /// The value of the first header called `name`, compared case-insensitively.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// Whether header `name` is present with the value `true` (any case).
    ///
    /// §4.1: only `true` counts; any other value is ignored, never an error.
    pub fn is_true(&self, name: &str) -> bool {
        self.get(name)
            .is_some_and(|v| v.trim().eq_ignore_ascii_case("true"))
    }

    /// The media type of `Content-Type`, lower-cased and without parameters.
    pub fn media_type(&self) -> Option<String> {
        self.get(CONTENT_TYPE).map(media_type)
    }

    /// `Retry-After` as a delay. Only the delta-seconds form is understood: the
    /// HTTP-date form would need a wall clock, which the core does not read.
    pub fn retry_after(&self) -> Option<Duration> {
        let v = self.get(RETRY_AFTER)?.trim();
        if v.is_empty() || !v.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        v.parse::<u64>().ok().map(Duration::from_secs)
    }
}

/// The media type of a `Content-Type` value, lower-cased, without parameters.
///
/// ```
/// assert_eq!(gapless_core::wire::headers::media_type("Application/JSON; charset=utf-8"), "application/json");
/// ```
pub fn media_type(content_type: &str) -> String {
    media_type_as_written(content_type).to_ascii_lowercase()
}

/// The media type of a `Content-Type` value as written: without parameters or the
/// whitespace around it, its case kept (compare it ignoring ASCII case). Unlike
/// [`media_type`], it allocates nothing.
///
/// ```
/// use gapless_core::wire::headers::media_type_as_written;
///
/// assert_eq!(media_type_as_written(" Application/JSON ; charset=utf-8"), "Application/JSON");
/// ```
pub fn media_type_as_written(content_type: &str) -> &str {
    content_type.split(';').next().unwrap_or("").trim()
}

/// Whether two `Content-Type` values name the same media type (parameters and case
/// aside).
///
/// ```
/// use gapless_core::wire::headers::same_media_type;
///
/// assert!(same_media_type("application/json", "Application/JSON; charset=utf-8"));
/// assert!(!same_media_type("text/plain", "text/html"));
/// ```
pub fn same_media_type(a: &str, b: &str) -> bool {
    // Written alike, as a stream's producers mostly do: no parsing.
    a == b || media_type_as_written(a).eq_ignore_ascii_case(media_type_as_written(b))
}

/// Whether a content type selects JSON mode (§9.1).
pub fn is_json(content_type: &str) -> bool {
    media_type_as_written(content_type).eq_ignore_ascii_case("application/json")
}

/// Whether SSE data for this content type is sent as UTF-8 text rather than base64 (§5.8):
/// `text/*` and `application/json` are text; everything else is base64.
pub fn is_text(content_type: &str) -> bool {
    let m = media_type_as_written(content_type);
    m.get(..5).is_some_and(|p| p.eq_ignore_ascii_case("text/"))
        || m.eq_ignore_ascii_case("application/json")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lookups_ignore_case_and_first_wins() {
        let h = ResponseHead::new(200)
            .with_header("STREAM-CLOSED", "true")
            .with_header("Stream-Closed", "false");
        assert!(h.is_true(STREAM_CLOSED));
        assert_eq!(h.get("stream-closed"), Some("true"));
        assert_eq!(h.get("missing"), None);
    }

    #[test]
    fn only_true_counts() {
        for (v, want) in [
            ("true", true),
            ("True", true),
            (" TRUE ", true),
            ("1", false),
            ("yes", false),
            ("", false),
        ] {
            let h = ResponseHead::new(200).with_header(STREAM_CLOSED, v);
            assert_eq!(h.is_true(STREAM_CLOSED), want, "{v:?}");
        }
    }

    #[test]
    fn retry_after_seconds_only() {
        let h = |v: &str| {
            ResponseHead::new(429)
                .with_header("retry-after", v)
                .retry_after()
        };
        assert_eq!(h("3"), Some(Duration::from_secs(3)));
        assert_eq!(h("+3"), None);
        assert_eq!(h("Wed, 21 Oct 2015 07:28:00 GMT"), None);
        assert_eq!(ResponseHead::new(429).retry_after(), None);
    }

    #[test]
    fn content_types() {
        assert!(is_json("application/json; charset=utf-8"));
        assert!(!is_json("application/jsonx"));
        assert!(is_text("text/plain"));
        assert!(is_text("application/json"));
        assert!(!is_text("application/octet-stream"));
        assert_eq!(
            ResponseHead::new(200)
                .with_header("content-type", "Text/Event-Stream")
                .media_type()
                .as_deref(),
            Some("text/event-stream")
        );
    }
}
