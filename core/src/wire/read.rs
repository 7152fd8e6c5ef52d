//! The meaning of a catch-up or long-poll read response (§5.6, §5.7): its status class
//! and the stream state its headers report.

use std::time::Duration;

use super::headers::{self, ResponseHead};
use super::WireError;
use crate::Offset;

/// What the status code of a read response means to a reader.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ReadStatus {
    /// 200: the body holds data (possibly none, at the tail).
    Data,
    /// 204: a long-poll ended without new data.
    NoContent,
    /// 304: the cached copy the reader named with `If-None-Match` is still current.
    NotModified,
    /// 404: the stream does not exist.
    NotFound,
    /// 410: the offset is before the retained range, or the stream was deleted: the
    /// reader cannot continue without a gap.
    Gone,
    /// 429, 503 or another 5xx: try again later, no sooner than `retry_after`.
    Retry {
        /// The status code.
        status: u16,
        /// The server's `Retry-After` hint, if it gave one in seconds.
        retry_after: Option<Duration>,
    },
    /// Any other status: the request is wrong and repeating it will not help.
    Rejected {
        /// The status code.
        status: u16,
    },
}

impl ReadStatus {
    /// Classifies a read response's status.
    ///
    /// ```
    /// use gapless_core::wire::{ReadStatus, ResponseHead};
    ///
    /// assert_eq!(ReadStatus::of(&ResponseHead::new(410)), ReadStatus::Gone);
    /// assert!(matches!(ReadStatus::of(&ResponseHead::new(503)), ReadStatus::Retry { .. }));
    /// assert_eq!(ReadStatus::of(&ResponseHead::new(403)), ReadStatus::Rejected { status: 403 });
    /// ```
    pub fn of(head: &ResponseHead) -> ReadStatus {
        match head.status {
            200 => ReadStatus::Data,
            204 => ReadStatus::NoContent,
            304 => ReadStatus::NotModified,
            404 => ReadStatus::NotFound,
            410 => ReadStatus::Gone,
            408 | 429 | 500..=599 => ReadStatus::Retry {
                status: head.status,
                retry_after: head.retry_after(),
            },
            status => ReadStatus::Rejected { status },
        }
    }
}

/// The stream state a successful read response reports in its headers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReadMeta {
    /// `Stream-Next-Offset`: where the next read starts.
    pub next_offset: Offset,
    /// `Stream-Up-To-Date: true`: the response reaches the current tail.
    pub up_to_date: bool,
    /// `Stream-Closed: true`: the stream is closed and this response reaches its end.
    pub closed: bool,
    /// `Stream-Cursor`, to echo as `cursor=` on the next live read.
    pub cursor: Option<String>,
    /// The response's media type, lower-cased, if it named one.
    pub media_type: Option<String>,
}

impl ReadMeta {
    /// Reads the stream state from a 200 or 204 response.
    ///
    /// `Stream-Next-Offset` is required and must be a real offset; the other headers are
    /// optional.
    ///
    /// ```
    /// use gapless_core::wire::{ReadMeta, ResponseHead};
    ///
    /// let head = ResponseHead::new(204)
    ///     .with_header("Stream-Next-Offset", "17")
    ///     .with_header("Stream-Up-To-Date", "true")
    ///     .with_header("Stream-Cursor", "8812");
    /// let meta = ReadMeta::from_head(&head).unwrap();
    /// assert_eq!(meta.next_offset.as_str(), "17");
    /// assert!(meta.up_to_date && !meta.closed);
    /// assert_eq!(meta.cursor.as_deref(), Some("8812"));
    /// assert!(ReadMeta::from_head(&ResponseHead::new(200)).is_err());
    /// ```
    pub fn from_head(head: &ResponseHead) -> Result<ReadMeta, WireError> {
        let raw = head
            .get(headers::STREAM_NEXT_OFFSET)
            .ok_or(WireError::MissingHeader(headers::STREAM_NEXT_OFFSET))?;
        let next_offset = Offset::parse(raw.trim())
            .map_err(|e| WireError::bad_header(headers::STREAM_NEXT_OFFSET, raw, e))?;
        if next_offset.is_now() {
            return Err(WireError::bad_header(
                headers::STREAM_NEXT_OFFSET,
                raw,
                "`now` is not a position",
            ));
        }
        Ok(ReadMeta {
            next_offset,
            up_to_date: head.is_true(headers::STREAM_UP_TO_DATE),
            closed: head.is_true(headers::STREAM_CLOSED),
            cursor: head
                .get(headers::STREAM_CURSOR)
                .map(str::trim)
                .filter(|c| !c.is_empty())
                .map(str::to_owned),
            media_type: head.media_type(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_table() {
        let cases = [
            (200, ReadStatus::Data),
            (204, ReadStatus::NoContent),
            (304, ReadStatus::NotModified),
            (404, ReadStatus::NotFound),
            (410, ReadStatus::Gone),
            (400, ReadStatus::Rejected { status: 400 }),
            (401, ReadStatus::Rejected { status: 401 }),
            (
                429,
                ReadStatus::Retry {
                    status: 429,
                    retry_after: None,
                },
            ),
            (
                502,
                ReadStatus::Retry {
                    status: 502,
                    retry_after: None,
                },
            ),
        ];
        for (status, want) in cases {
            assert_eq!(ReadStatus::of(&ResponseHead::new(status)), want, "{status}");
        }
        let h = ResponseHead::new(429).with_header("Retry-After", "2");
        assert_eq!(
            ReadStatus::of(&h),
            ReadStatus::Retry {
                status: 429,
                retry_after: Some(Duration::from_secs(2))
            }
        );
    }

    #[test]
    fn bad_next_offset_is_reported() {
        for bad in ["", "a/b", "now"] {
            let h = ResponseHead::new(200).with_header(headers::STREAM_NEXT_OFFSET, bad);
            let err = ReadMeta::from_head(&h).unwrap_err();
            assert!(matches!(err, WireError::BadHeader { .. }), "{bad:?}: {err}");
        }
    }

    #[test]
    fn closed_and_media_type() {
        let h = ResponseHead::new(200)
            .with_header(headers::STREAM_NEXT_OFFSET, "5")
            .with_header(headers::STREAM_CLOSED, "true")
            .with_header("content-type", "application/json; charset=utf-8");
        let m = ReadMeta::from_head(&h).unwrap();
        assert!(m.closed);
        assert_eq!(m.media_type.as_deref(), Some("application/json"));
    }
}
