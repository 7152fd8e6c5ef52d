//! What crosses the boundary between the resume machine and its driver: requests to
//! make, transport failures to report, and outputs to deliver.

use crate::json::RawJson;
use crate::wire::{LiveParam, WireError};
use crate::Offset;

/// Identifies one request the machine asked for. Reports about any other request than
/// the current one are ignored, so a driver never has to worry about late callbacks
/// from a connection it abandoned.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ReqId(pub(crate) u64);

impl ReqId {
    /// The request's sequence number (for logs).
    pub fn get(self) -> u64 {
        self.0
    }
}

/// A GET request the driver must make now. When a new request is handed out, the driver
/// must abandon (abort) any earlier one: only the newest is current.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Request {
    /// The request's identity, to quote in every report about it.
    pub id: ReqId,
    /// Full URL including the read parameters.
    pub url: String,
    /// Which kind of read this is.
    pub live: LiveParam,
    /// Headers the protocol needs on this request; the driver adds its own (auth…).
    pub headers: Vec<(&'static str, String)>,
}

/// Why a request failed below HTTP. Every transport failure is retried with back-off.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TransportError {
    /// The connection could not be made.
    #[error("connect failed: {0}")]
    Connect(String),
    /// The connection broke while the request or response was in flight.
    #[error("connection lost: {0}")]
    Io(String),
    /// The driver's own time-out fired.
    #[error("request timed out")]
    TimedOut,
}

/// Why the machine reads again after a back-off (see [`Output::Reconnecting`]).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RetryCause {
    /// The request failed below HTTP.
    #[error(transparent)]
    Transport(#[from] TransportError),
    /// The server answered with a status worth retrying (408, 429, 5xx; 304 from a
    /// confused intermediary).
    #[error("the server answered {0}")]
    Status(u16),
    /// The answer carried nothing that moved the reader on: an SSE connection that
    /// ended without a control event, a 204 to an SSE request, a body without a head.
    #[error("the answer carried nothing to read")]
    Empty,
}

/// The data of one batch.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Payload {
    /// A JSON-mode stream's messages, each the exact JSON text the server stored.
    Json(Vec<RawJson>),
    /// A byte stream's bytes.
    Bytes(Vec<u8>),
}

impl Payload {
    /// Whether the batch carries nothing.
    pub fn is_empty(&self) -> bool {
        match self {
            Payload::Json(m) => m.is_empty(),
            Payload::Bytes(b) => b.is_empty(),
        }
    }

    /// Number of messages (JSON mode) or bytes.
    pub fn len(&self) -> usize {
        match self {
            Payload::Json(m) => m.len(),
            Payload::Bytes(b) => b.len(),
        }
    }
}

/// Data the reader had not seen before, in stream order.
#[derive(Clone, Debug, PartialEq)]
pub struct Batch {
    /// The data.
    pub payload: Payload,
    /// Offset just after this data: where a reader resumes, and what it should persist.
    pub next_offset: Offset,
    /// This batch reaches the tail as the server knew it.
    pub up_to_date: bool,
}

/// What the machine tells its driver's user.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub enum Output {
    /// New data. Never repeats or skips data already delivered.
    Batch(Batch),
    /// The reader has caught up with the tail (emitted each time it becomes so again).
    UpToDate {
        /// The tail offset.
        offset: Offset,
    },
    /// The stream is closed and everything up to `offset` was delivered. Final: the
    /// machine will not ask for another request.
    Closed {
        /// The stream's final offset.
        offset: Offset,
    },
    /// The server no longer has data at `offset` (410), or answered a read from
    /// `offset` with a position before it (the stream was made anew, or lost data):
    /// the reader would miss data if it went on, so it stops. The caller must
    /// re-fetch the state some other way. Final.
    ContinuityLost {
        /// The offset that was gone.
        offset: Offset,
        /// The status that said so: 410, or `None` for an answer that ended before
        /// the offset read from.
        status: Option<u16>,
    },
    /// A fatal error; retrying would not help. Final.
    Failed(StreamError),
    /// A request failed and the machine will read again from `offset` after a back-off.
    /// Informational (for showing connection state): nothing is lost or repeated.
    Reconnecting {
        /// Where the next read starts.
        offset: Offset,
        /// What went wrong.
        cause: RetryCause,
    },
}

/// Why a subscription failed for good.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum StreamError {
    /// 404: the stream does not exist.
    #[error("stream not found")]
    NotFound,
    /// The server refused the read with a status that retrying will not change
    /// (400, 401, 403, …). `message` is the start of its response body.
    #[error("server refused the read with status {status}: {message}")]
    Rejected {
        /// The status code.
        status: u16,
        /// The beginning of the response body, for humans.
        message: String,
    },
    /// The server broke the protocol (a missing header, a malformed control event…).
    #[error("protocol violation: {0}")]
    Protocol(#[from] WireError),
    /// A response body exceeded [`crate::resume::Config::max_body_bytes`].
    #[error("response body exceeds the limit of {limit} bytes")]
    BodyTooLarge {
        /// The configured limit.
        limit: usize,
    },
}

impl StreamError {
    /// The HTTP status behind this error, where there is one.
    pub fn status(&self) -> Option<u16> {
        match self {
            StreamError::NotFound => Some(404),
            StreamError::Rejected { status, .. } => Some(*status),
            _ => None,
        }
    }
}

/// Counters a driver can log or expose.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    /// Requests handed out.
    pub requests: u64,
    /// Retries after failures (transport errors, 5xx, 429, time-outs).
    pub retries: u64,
    /// Batches dropped because they repeated data already delivered.
    pub duplicates_dropped: u64,
    /// Whether the machine fell back from SSE to long-poll.
    pub fell_back_to_long_poll: bool,
}
