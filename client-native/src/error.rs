//! The native client's error type.

use gapless_core::resume::StreamError;
use gapless_core::{Offset, OffsetError};

/// Everything that can go wrong in `gapless-client`.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The stream does not exist (404).
    #[error("stream not found")]
    NotFound,
    /// The server refused the credentials (401) or their scope (403).
    #[error("not authorised (status {status}): {message}")]
    Auth {
        /// 401 or 403.
        status: u16,
        /// The server's explanation.
        message: String,
    },
    /// The server no longer holds data at this offset (410, or a read from it answered
    /// with a position before it: the stream was made anew): continuing would skip data.
    #[error("continuity lost: the server no longer has data at offset {offset}")]
    ContinuityLost {
        /// The offset that is gone.
        offset: Offset,
    },
    /// The server answered with a status the operation does not accept.
    #[error("server answered {status}: {message}")]
    Status {
        /// The status code.
        status: u16,
        /// The beginning of the response body.
        message: String,
    },
    /// A configuration or argument the client refuses before sending anything.
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
    /// The stream is closed: nothing more can be appended (409 with `Stream-Closed`).
    #[error("the stream is closed")]
    Closed,
    /// An append may or may not have been stored: its answer was lost (retries ran
    /// out, or the answer could not be read). The producer does not reuse its
    /// sequence number for other data: its next append finds out. A plain append
    /// sent and not answered fails with this too.
    #[error("the append's outcome is unknown: {0}")]
    OutcomeUnknown(String),
    /// Another producer with the same id claimed a newer epoch (403 with
    /// `Producer-Epoch`): this one is fenced off.
    #[error("fenced: another producer with this id holds epoch {current}")]
    Fenced {
        /// The epoch the server holds.
        current: u64,
    },
    /// The server broke the Durable Streams protocol.
    #[error("protocol violation: {0}")]
    Protocol(String),
    /// A subscription failed for good (see [`StreamError`]).
    #[error(transparent)]
    Stream(StreamError),
    /// An offset given by the caller or the server is malformed.
    #[error(transparent)]
    Offset(#[from] OffsetError),
    /// The request could not be sent or its response not read.
    #[error("transport: {0}")]
    Transport(#[from] reqwest::Error),
    /// A producer whose queued append failed for good takes nothing more: every
    /// later call fails with the first failure, as it was (an append of unknown
    /// outcome, say, which must not be sent again).
    #[error("the producer stopped after a queued append failed: {0}")]
    ProducerFailed(std::sync::Arc<Error>),
    /// The URL is not valid.
    #[error("invalid URL {url:?}: {reason}")]
    Url {
        /// The offending URL.
        url: String,
        /// Why it is invalid.
        reason: String,
    },
}

impl Error {
    /// Builds the error for a response status that the operation did not expect.
    pub(crate) fn from_status(status: u16, message: String) -> Error {
        match status {
            404 => Error::NotFound,
            401 | 403 => Error::Auth { status, message },
            _ => Error::Status { status, message },
        }
    }
}

impl From<StreamError> for Error {
    fn from(e: StreamError) -> Self {
        match e {
            StreamError::NotFound => Error::NotFound,
            StreamError::Rejected { status, message } if status == 401 || status == 403 => {
                Error::Auth { status, message }
            }
            other => Error::Stream(other),
        }
    }
}
