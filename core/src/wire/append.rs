//! The meaning of an append's answer (§5.2, §5.2.1), so that every producer — native,
//! browser — decides retries, epoch claims and failures by one table.

use std::time::Duration;

use super::headers::{
    ResponseHead, PRODUCER_EPOCH, PRODUCER_EXPECTED_SEQ, PRODUCER_RECEIVED_SEQ, STREAM_CLOSED,
    STREAM_NEXT_OFFSET,
};
use super::WireError;
use crate::Offset;

/// What the server said to an append.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AppendOutcome {
    /// The data is committed; the tail after it.
    Accepted {
        /// `Stream-Next-Offset`: always there for a plain append (an answer without
        /// it is an error); `None` for a producer's append whose answer lacks a
        /// readable one, stored nonetheless (a retry would be a duplicate).
        next_offset: Option<Offset>,
    },
    /// A producer's retry of an append the server already had (204, echoing the
    /// producer's numbers). Some servers omit the offset here.
    Duplicate {
        /// `Stream-Next-Offset`, when sent.
        next_offset: Option<Offset>,
    },
    /// 403 with `Producer-Epoch`: a newer epoch owns this producer id.
    StaleEpoch {
        /// The server's current epoch.
        current: u64,
    },
    /// 409 with `Producer-Expected-Seq`: a sequence gap.
    SeqGap {
        /// The sequence number the server expects.
        expected: u64,
        /// The one it received, when echoed.
        received: Option<u64>,
    },
    /// 409 with `Stream-Closed`: nothing more can be appended.
    Closed {
        /// The final offset, when sent.
        final_offset: Option<Offset>,
    },
    /// A transient refusal (408, 425, 429, 5xx but 501 and 505): send the same append
    /// again.
    Retry {
        /// `Retry-After`, when sent.
        retry_after: Option<Duration>,
    },
    /// Any other status: a final refusal.
    Rejected {
        /// The status code.
        status: u16,
    },
}

impl AppendOutcome {
    /// Reads an append's answer; `producer` says whether it carried the idempotent
    /// producer headers (then a 204 is a duplicate).
    ///
    /// ```
    /// use gapless_core::wire::{AppendOutcome, ResponseHead};
    ///
    /// let fenced = ResponseHead::new(403).with_header("Producer-Epoch", "7");
    /// assert_eq!(AppendOutcome::of(&fenced, true).unwrap(), AppendOutcome::StaleEpoch { current: 7 });
    /// let busy = ResponseHead::new(503).with_header("Retry-After", "2");
    /// assert!(matches!(AppendOutcome::of(&busy, true).unwrap(), AppendOutcome::Retry { .. }));
    /// ```
    pub fn of(head: &ResponseHead, producer: bool) -> Result<AppendOutcome, WireError> {
        let offset = |name: &'static str| -> Result<Option<Offset>, WireError> {
            head.get(name)
                .map(|v| Offset::parse(v.trim()).map_err(|e| WireError::bad_header(name, v, e)))
                .transpose()
        };
        let number = |name: &'static str| head.get(name).and_then(|v| v.trim().parse::<u64>().ok());
        // A producer's append answered 2xx is stored, whatever the offset header says:
        // calling its outcome unknown would have it sent again under a new epoch.
        let stored_at = || offset(STREAM_NEXT_OFFSET).ok().flatten();
        Ok(match head.status {
            // A duplicate echoes the producer's numbers (§5.2.1); a 204 without them
            // is a server that ignores producer headers, which stored the append as
            // a plain one. (In a browser, a server must expose `Producer-Epoch` for
            // CORS, as the protocol's servers do, or duplicates read as stored.)
            204 if producer && head.get(PRODUCER_EPOCH).is_some() => AppendOutcome::Duplicate {
                next_offset: stored_at(),
            },
            204 if producer => AppendOutcome::Accepted {
                next_offset: stored_at(),
            },
            200 if producer => AppendOutcome::Accepted {
                next_offset: stored_at(),
            },
            200 | 204 => AppendOutcome::Accepted {
                next_offset: Some(
                    offset(STREAM_NEXT_OFFSET)?
                        .ok_or(WireError::MissingHeader(STREAM_NEXT_OFFSET))?,
                ),
            },
            403 => match number(PRODUCER_EPOCH) {
                Some(current) => AppendOutcome::StaleEpoch { current },
                None => AppendOutcome::Rejected { status: 403 },
            },
            409 if head.is_true(STREAM_CLOSED) => AppendOutcome::Closed {
                final_offset: offset(STREAM_NEXT_OFFSET)?,
            },
            409 => match number(PRODUCER_EXPECTED_SEQ) {
                Some(expected) => AppendOutcome::SeqGap {
                    expected,
                    received: number(PRODUCER_RECEIVED_SEQ),
                },
                None => AppendOutcome::Rejected { status: 409 },
            },
            // Appends not supported, nor this HTTP version: nothing was stored, and
            // sending it again changes nothing.
            501 | 505 => AppendOutcome::Rejected {
                status: head.status,
            },
            408 | 425 | 429 | 500..=599 => AppendOutcome::Retry {
                retry_after: head.retry_after(),
            },
            status => AppendOutcome::Rejected { status },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn head(status: u16) -> ResponseHead {
        ResponseHead::new(status)
    }

    #[test]
    fn the_table() {
        let o = |h: ResponseHead, p| AppendOutcome::of(&h, p).unwrap();
        let next = "0000000000000000_0000000000000003";
        assert_eq!(
            o(head(200).with_header("Stream-Next-Offset", next), true),
            AppendOutcome::Accepted {
                next_offset: Some(Offset::parse(next).unwrap())
            }
        );
        // A producer's stored append, whatever its offset header says.
        for bad in [
            head(200),
            head(200).with_header("Stream-Next-Offset", "a, b"),
        ] {
            assert_eq!(
                o(bad.clone(), true),
                AppendOutcome::Accepted { next_offset: None }
            );
            assert!(
                AppendOutcome::of(&bad, false).is_err(),
                "a plain append needs its offset"
            );
        }
        let echo = |h: ResponseHead| {
            h.with_header("Producer-Epoch", "1")
                .with_header("Producer-Seq", "4")
        };
        assert_eq!(
            o(
                echo(head(204)).with_header("Stream-Next-Offset", "a, b"),
                true
            ),
            AppendOutcome::Duplicate { next_offset: None }
        );
        assert_eq!(
            o(echo(head(204)), true),
            AppendOutcome::Duplicate { next_offset: None }
        );
        // A 204 that does not echo the producer's numbers: a server that ignores
        // producer headers stored it as a plain append.
        assert_eq!(
            o(head(204).with_header("Stream-Next-Offset", next), true),
            AppendOutcome::Accepted {
                next_offset: Some(Offset::parse(next).unwrap())
            }
        );
        assert!(
            AppendOutcome::of(&head(204), false).is_err(),
            "a plain append needs its offset"
        );
        assert_eq!(o(head(403), true), AppendOutcome::Rejected { status: 403 });
        assert_eq!(
            o(head(409).with_header("Stream-Closed", "true"), true),
            AppendOutcome::Closed { final_offset: None }
        );
        assert_eq!(
            o(
                head(409)
                    .with_header("Producer-Expected-Seq", "4")
                    .with_header("Producer-Received-Seq", "9"),
                true
            ),
            AppendOutcome::SeqGap {
                expected: 4,
                received: Some(9)
            }
        );
        assert_eq!(o(head(409), false), AppendOutcome::Rejected { status: 409 });
        assert_eq!(
            o(head(429), true),
            AppendOutcome::Retry { retry_after: None }
        );
        assert_eq!(o(head(400), true), AppendOutcome::Rejected { status: 400 });
        for status in [501, 505] {
            assert_eq!(o(head(status), true), AppendOutcome::Rejected { status });
        }
        for status in [500, 502, 503, 504, 507] {
            assert!(matches!(o(head(status), true), AppendOutcome::Retry { .. }));
        }
    }
}
