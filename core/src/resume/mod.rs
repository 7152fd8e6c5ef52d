//! The resume state machine: catch up from an offset, follow the tail live, and keep
//! "every message exactly once, in order" across reconnects, duplicates and failures.
//!
//! # How a driver uses it
//!
//! [`Resume`] is sans-IO: it never opens a connection or reads a clock. A driver loops:
//!
//! 1. `poll_request()` — if it returns a [`Request`], abandon any earlier request and
//!    start this one (a plain HTTP GET with the given URL and headers), calling
//!    `handle_sent(now)` as it starts (the idle time-out and the quiet-round floor
//!    count from there).
//! 2. Report what happens to the current request: `handle_response` once the status and
//!    headers arrive, `handle_body` for each body chunk, then `handle_end` when the body
//!    finished cleanly or `handle_failure` when the connection broke.
//! 3. `poll_output()` until `None`, delivering each [`Output`] to the user.
//! 4. Sleep until `poll_timeout()` (or until the connection has news), then call
//!    `handle_timeout(now)`.
//!
//! The machine stops asking for requests once it has emitted a final output
//! ([`Output::Closed`], [`Output::ContinuityLost`] or [`Output::Failed`]).
//!
//! # Guarantees
//! - It never emits data at or before the last offset it delivered, and every request
//!   starts from that offset: a dropped connection, a replayed SSE event or a stale
//!   response cannot produce a duplicate or a gap.
//! - SSE data is held back until the `control` event that follows it (§5.8) names its
//!   offset; data whose control event never arrived is read again after reconnecting.
//! - Failures are retried with full-jitter back-off ([`BackoffConfig`]), honouring
//!   `Retry-After` up to the schedule's ceiling, and the schedule starts over once a
//!   response moves the reader on (or a live connection lasted before it broke). Each
//!   retry is told ([`Output::Reconnecting`]), so that every driver can show it (a
//!   fallback from SSE to long-poll, asked for at once, is not a retry).
//! - A server or proxy that answers live requests at once with nothing (a 204 to SSE,
//!   a long-poll not held, an SSE connection closed after "up to date") is not asked
//!   again in a loop: a 204 to SSE backs off towards the fallback to long-poll, the
//!   others (and catch-up reads that move nothing and are not up to date) start at
//!   most once per [`QUIET_ROUND_FLOOR`].
//!
//! ```
//! use gapless_core::resume::{Config, LiveMode, Output, Resume};
//! use gapless_core::wire::ResponseHead;
//! use gapless_core::{Offset, Time};
//!
//! let mut r = Resume::new(Config::new("http://h/v1/stream/s").live(LiveMode::Off), Offset::START);
//! let req = r.poll_request().unwrap();
//! assert_eq!(req.url, "http://h/v1/stream/s?offset=-1");
//! let now = Time::ZERO;
//! r.handle_response(now, req.id, ResponseHead::new(200)
//!     .with_header("Content-Type", "application/json")
//!     .with_header("Stream-Next-Offset", "0000000000000002")
//!     .with_header("Stream-Up-To-Date", "true"));
//! r.handle_body(now, req.id, br#"[{"n":1},{"n":2}]"#);
//! r.handle_end(now, req.id);
//! let Some(Output::Batch(batch)) = r.poll_output() else { panic!() };
//! assert_eq!(batch.payload.len(), 2);
//! assert!(matches!(r.poll_output(), Some(Output::UpToDate { .. })));
//! assert!(r.is_finished());
//! ```

mod backoff;
mod config;
mod io;
#[cfg(test)]
mod sim;

use std::cmp::Ordering;
use std::collections::VecDeque;
use std::time::Duration;

use crate::json::RawJson;
use crate::sse::SseDecoder;
use crate::wire::headers::{self, is_json, ResponseHead};
use crate::wire::{
    decode_sse_data, parse_json_batch, read_url, Control, DataEncoding, LiveParam, ReadMeta,
    ReadStatus, WireError,
};
use crate::{Offset, Time};
pub use backoff::Backoff;

pub use config::{BackoffConfig, Config, ConfigError, LiveMode};
pub use io::{
    Batch, Output, Payload, ReqId, Request, RetryCause, Stats, StreamError, TransportError,
};

/// How much of an error response's body is kept for the error message.
const ERROR_BODY_LIMIT: usize = 1024;
/// Room an SSE event has beyond its data for its lines' names and ends (see
/// [`Config::max_body_bytes`]).
const SSE_EVENT_LINES_BYTES: usize = 64 * 1024;
/// What an SSE `data` event held until its control event is counted as beyond its
/// text (the string that holds it), against [`Config::max_body_bytes`].
const HELD_EVENT_BYTES: usize = 64;

/// The least time between the start of a request that ended quickly without moving
/// the reader on and the start of the next (a long-poll answered at once with
/// nothing new, an SSE connection closed after saying only "up to date", a catch-up
/// read that neither moved nor was up to date): a server or
/// proxy doing that is not made to answer in a loop. A long-poll held to its time-out
/// is repeated at once; a 204 to SSE backs off instead, towards the fallback to
/// long-poll.
pub const QUIET_ROUND_FLOOR: Duration = Duration::from_secs(1);

/// The resume state machine. See the [module documentation](self) for the call order.
#[derive(Debug)]
pub struct Resume {
    cfg: Config,
    /// Where the next read starts: the `next_offset` of the last delivered batch, or the
    /// starting offset before anything was delivered.
    offset: Offset,
    cursor: Option<String>,
    /// The stream's content type, learned from the first catch-up response.
    content_type: Option<String>,
    live: LiveMode,
    up_to_date: bool,
    phase: Phase,
    next_id: u64,
    backoff: Backoff,
    /// SSE connections in a row that ended without delivering a control event.
    sse_fruitless: u32,
    /// When SSE requests began to be answered 502 or 504 in a row (see
    /// [`GATEWAY_PATIENCE`]).
    sse_gateway_since: Option<Time>,
    /// How many times the reader moved on (see [`Resume::accept`]): a request during
    /// which it did not was quiet.
    moves: u64,
    outputs: VecDeque<Output>,
    stats: Stats,
}

#[derive(Debug)]
enum Phase {
    /// A request of this kind is to be handed out by `poll_request`.
    Ready(LiveParam),
    /// The current request, waiting for its head, body or end.
    Awaiting(InFlight),
    /// Backing off until `until`, then a request of kind `then`.
    Waiting { until: Time, then: LiveParam },
    /// A final output was emitted (or catch-up-only reading reached the tail).
    Finished,
}

/// How long SSE requests answered 502 or 504 in a row (a gateway that cannot carry
/// them, or times them out) are tried before long polls take over.
const GATEWAY_PATIENCE: Duration = Duration::from_secs(30);

/// How long an SSE connection that said something (a control event), or a long
/// poll, must have lasted, when it breaks (or a gateway answers a long poll with an
/// error), to count as a working one: the back-off starts over.
const LONG_LIVED: Duration = Duration::from_secs(10);

#[derive(Debug)]
struct InFlight {
    id: ReqId,
    kind: LiveParam,
    deadline: Time,
    /// When the driver started the request (see [`Resume::handle_sent`]; zero if it
    /// did not say).
    sent: Time,
    /// [`Resume::moves`] when the request was handed out.
    moves: u64,
    body: Body,
}

#[derive(Debug)]
enum Body {
    /// No response head yet.
    Head,
    /// A 200/204 read response whose body is collected, then parsed at the end.
    Read { meta: ReadMeta, bytes: Vec<u8> },
    /// A refused request whose body is kept (briefly) for the error message.
    Refused { status: u16, bytes: Vec<u8> },
    /// An SSE response being decoded.
    Sse(Box<SseState>),
}

#[derive(Debug)]
struct SseState {
    decoder: SseDecoder,
    encoding: DataEncoding,
    /// `data` events not yet confirmed by a `control` event.
    pending: Vec<String>,
    /// Their bytes, held to [`Config::max_body_bytes`] as a read's body is.
    pending_bytes: usize,
    /// Whether this connection delivered at least one control event.
    progressed: bool,
}

impl Resume {
    /// A machine that will read the stream at `cfg.url` from `from` (a real offset,
    /// [`Offset::START`] or [`Offset::NOW`]).
    pub fn new(cfg: Config, from: Offset) -> Self {
        let backoff = Backoff::new(cfg.backoff, cfg.jitter_seed);
        Resume {
            live: cfg.live,
            cfg,
            offset: from,
            cursor: None,
            content_type: None,
            up_to_date: false,
            phase: Phase::Ready(LiveParam::CatchUp),
            next_id: 0,
            backoff,
            sse_fruitless: 0,
            sse_gateway_since: None,
            moves: 0,
            outputs: VecDeque::new(),
            stats: Stats::default(),
        }
    }

    // ----- getters -----

    /// Where the next read starts: the offset after the last delivered data. Persist it
    /// to resume later without gap or duplicate.
    pub fn offset(&self) -> &Offset {
        &self.offset
    }

    /// The stream's content type, once a response has told it.
    pub fn content_type(&self) -> Option<&str> {
        self.content_type.as_deref()
    }

    /// Whether the last response reached the tail.
    pub fn is_up_to_date(&self) -> bool {
        self.up_to_date
    }

    /// Whether the machine is done: it will ask for no more requests.
    pub fn is_finished(&self) -> bool {
        matches!(self.phase, Phase::Finished)
    }

    /// The live mode in use now (SSE may have fallen back to long-poll).
    pub fn live_mode(&self) -> LiveMode {
        self.live
    }

    /// The request the machine is waiting on, if any. A driver stops reading a
    /// response whose id is no longer this one (the machine gave up on it).
    pub fn in_flight(&self) -> Option<ReqId> {
        match &self.phase {
            Phase::Awaiting(f) => Some(f.id),
            _ => None,
        }
    }

    /// Counters for logs and tests.
    pub fn stats(&self) -> Stats {
        self.stats
    }

    // ----- outputs -----

    /// The request to make now, if any. Handing out a request makes it the current one;
    /// the driver must abandon any earlier request.
    #[must_use]
    pub fn poll_request(&mut self) -> Option<Request> {
        let Phase::Ready(kind) = self.phase else {
            return None;
        };
        let id = ReqId(self.next_id);
        self.next_id += 1;
        self.stats.requests += 1;
        let url = read_url(&self.cfg.url, &self.offset, kind, self.cursor.as_deref());
        let mut headers = Vec::new();
        if kind == LiveParam::Sse {
            headers.push(("Accept", "text/event-stream".to_owned()));
        }
        // The deadline starts counting when the driver reports the first event; until
        // then `poll_timeout` has nothing to say about this request.
        self.phase = Phase::Awaiting(InFlight {
            id,
            kind,
            deadline: Time::from_millis(u64::MAX),
            sent: Time::ZERO,
            moves: self.moves,
            body: Body::Head,
        });
        Some(Request {
            id,
            url,
            live: kind,
            headers,
        })
    }

    /// The next output for the user, in order.
    #[must_use]
    pub fn poll_output(&mut self) -> Option<Output> {
        self.outputs.pop_front()
    }

    /// When the machine next needs `handle_timeout`: the end of a back-off, or the idle
    /// deadline of the current request.
    #[must_use]
    pub fn poll_timeout(&self) -> Option<Time> {
        match &self.phase {
            Phase::Waiting { until, .. } => Some(*until),
            Phase::Awaiting(f) if f.deadline.as_millis() != u64::MAX => Some(f.deadline),
            _ => None,
        }
    }

    // ----- inputs -----

    /// Arms the idle deadline of the current request when the driver starts it, and
    /// notes when it started (see [`QUIET_ROUND_FLOOR`]). Without it a connect that
    /// hangs is never abandoned, and quiet rounds are held to the floor only in the
    /// machine's first second.
    pub fn handle_sent(&mut self, now: Time, id: ReqId) {
        let timeout = self.idle_timeout();
        if let Phase::Awaiting(f) = &mut self.phase {
            if f.id == id {
                f.deadline = now + timeout;
                f.sent = now;
            }
        }
    }

    /// The current request's status line and headers arrived.
    pub fn handle_response(&mut self, now: Time, id: ReqId, head: ResponseHead) {
        let timeout = self.idle_timeout();
        let Some((kind, sent)) = self.current(id).map(|f| (f.kind, f.sent)) else {
            return;
        };
        // A gateway's 502 or 504 to SSE, again and again, is what falls back to long
        // polls (below): any other answer breaks the run.
        if kind == LiveParam::Sse && !matches!(head.status, 502 | 504) {
            self.sse_gateway_since = None;
        }
        if kind == LiveParam::Sse {
            if let Some(sse) = self.sse_body(&head) {
                let first = timeout.min(self.cfg.sse_first_event_timeout);
                self.set_body(now + first, Body::Sse(Box::new(sse)));
                return;
            }
            if self.should_fall_back(&head) {
                self.fall_back_to_long_poll();
                return;
            }
        }
        match ReadStatus::of(&head) {
            ReadStatus::Data | ReadStatus::NoContent => match ReadMeta::from_head(&head) {
                Ok(meta) => self.set_body(
                    now + timeout,
                    Body::Read {
                        meta,
                        bytes: Vec::new(),
                    },
                ),
                Err(e) => self.fail(StreamError::Protocol(e)),
            },
            ReadStatus::NotFound => self.fail(StreamError::NotFound),
            ReadStatus::Gone => {
                self.outputs.push_back(Output::ContinuityLost {
                    offset: self.offset.clone(),
                    status: Some(410),
                });
                self.phase = Phase::Finished;
            }
            // A gateway that times SSE out (or cannot carry it) answers 502 or 504
            // every time: after some time of that, long polls take over; a shorter
            // outage (a deploy behind a load balancer) is waited out on SSE.
            ReadStatus::Retry {
                status: status @ (502 | 504),
                retry_after,
            } if kind == LiveParam::Sse => {
                let since = *self.sse_gateway_since.get_or_insert(now);
                if now.saturating_since(since) >= GATEWAY_PATIENCE {
                    self.fall_back_to_long_poll();
                } else {
                    self.retry(now, kind, retry_after, RetryCause::Status(status));
                }
            }
            ReadStatus::Retry {
                status,
                retry_after,
            } => {
                // A long poll held a long time before a gateway gave up on it is
                // what a quiet stream behind one looks like, not a failing server.
                if kind == LiveParam::LongPoll && Self::lived(sent, now) {
                    self.backoff.reset();
                }
                self.retry(now, kind, retry_after, RetryCause::Status(status))
            }
            // We never send `If-None-Match`, so a 304 can only come from a confused
            // intermediary: ask again after a pause.
            ReadStatus::NotModified => self.retry(now, kind, None, RetryCause::Status(304)),
            ReadStatus::Rejected { status } => self.set_body(
                now + timeout,
                Body::Refused {
                    status,
                    bytes: Vec::new(),
                },
            ),
        }
    }

    /// A chunk of the current request's body arrived.
    pub fn handle_body(&mut self, now: Time, id: ReqId, chunk: &[u8]) {
        let timeout = self.idle_timeout();
        let limit = self.cfg.max_body_bytes;
        let Some(f) = self.current_mut(id) else {
            return;
        };
        f.deadline = now + timeout;
        match &mut f.body {
            Body::Head => {}
            Body::Read { bytes, .. } => {
                if bytes.len() + chunk.len() > limit {
                    self.fail(StreamError::BodyTooLarge { limit });
                    return;
                }
                bytes.extend_from_slice(chunk);
            }
            Body::Refused { bytes, .. } => {
                let room = ERROR_BODY_LIMIT.saturating_sub(bytes.len());
                bytes.extend_from_slice(&chunk[..chunk.len().min(room)]);
            }
            Body::Sse(sse) => {
                sse.decoder.feed(chunk);
                self.drain_sse(now);
            }
        }
    }

    /// The current request's body ended cleanly.
    pub fn handle_end(&mut self, now: Time, id: ReqId) {
        let Some(f) = self.current(id) else {
            return;
        };
        let kind = f.kind;
        let Phase::Awaiting(f) = std::mem::replace(&mut self.phase, Phase::Ready(kind)) else {
            return;
        };
        let (sent, moves) = (f.sent, f.moves);
        match f.body {
            Body::Head => self.retry(now, kind, None, RetryCause::Empty),
            Body::Read { meta, bytes } => self.finish_read(now, kind, sent, moves, meta, bytes),
            Body::Refused { status, bytes } => self.fail(StreamError::Rejected {
                status,
                message: String::from_utf8_lossy(&bytes).trim().to_owned(),
            }),
            Body::Sse(sse) => {
                // The server ends SSE connections now and then (§5.8, about every 60 s);
                // reconnect at once if this one was useful (no sooner than the floor
                // if it moved nothing on), else back off.
                if sse.progressed {
                    let quiet = moves == self.moves;
                    self.go_on(now, LiveParam::Sse, sent, quiet);
                } else {
                    self.sse_fruitless(now, RetryCause::Empty);
                }
            }
        }
    }

    /// The current request failed below HTTP: connect error, reset, or a driver
    /// time-out. Data not yet confirmed is dropped and read again after a back-off.
    pub fn handle_failure(&mut self, now: Time, id: ReqId, error: TransportError) {
        let Some(f) = self.current(id) else {
            return;
        };
        // A refusal's status said it all: what came of its body is its message.
        if matches!(f.body, Body::Refused { .. }) {
            return self.handle_end(now, id);
        }
        let kind = f.kind;
        let sse_progress = match &f.body {
            Body::Sse(sse) => Some(sse.progressed),
            // An SSE request whose head never came in its whole idle time (a proxy
            // holding it back until the upstream ends) delivered nothing either; one
            // that could not connect says nothing of SSE (the network may be down).
            Body::Head if kind == LiveParam::Sse && matches!(error, TransportError::TimedOut) => {
                Some(false)
            }
            _ => None,
        };
        let lived = Self::lived(f.sent, now);
        let cause = RetryCause::Transport(error);
        if kind == LiveParam::Sse {
            // (Not a gateway's answer: see `handle_response`.)
            self.sse_gateway_since = None;
        }
        // (A connection that moved the reader on ended the back-off as it moved: it
        // comes back quickly. So does one that worked for a while before it broke,
        // though it moved nothing on, SSE or a long poll: a proxy that cuts long
        // answers now and then would otherwise push the back-off of a quiet stream to
        // its ceiling.)
        match sse_progress {
            Some(false) => self.sse_fruitless(now, cause),
            Some(true) if lived => {
                self.backoff.reset();
                self.retry(now, kind, None, cause);
            }
            None if lived && kind == LiveParam::LongPoll => {
                self.backoff.reset();
                self.retry(now, kind, None, cause);
            }
            _ => self.retry(now, kind, None, cause),
        }
    }

    /// Whether a request sent at `sent` (`Time::ZERO`: never told) lived
    /// [`LONG_LIVED`] by `now`.
    fn lived(sent: Time, now: Time) -> bool {
        sent != Time::ZERO && now.saturating_since(sent) >= LONG_LIVED
    }

    /// Time passed: ends a back-off, or abandons a request that went quiet for longer
    /// than its idle time-out.
    pub fn handle_timeout(&mut self, now: Time) {
        match &self.phase {
            Phase::Waiting { until, then } if now >= *until => {
                self.phase = Phase::Ready(*then);
            }
            Phase::Awaiting(f) if now >= f.deadline => {
                let id = f.id;
                self.handle_failure(now, id, TransportError::TimedOut);
            }
            _ => {}
        }
    }

    // ----- internals -----

    fn idle_timeout(&self) -> Duration {
        match &self.phase {
            Phase::Awaiting(f) if f.kind == LiveParam::CatchUp => self.cfg.catch_up_idle_timeout,
            _ => self.cfg.live_idle_timeout,
        }
    }

    fn current(&self, id: ReqId) -> Option<&InFlight> {
        match &self.phase {
            Phase::Awaiting(f) if f.id == id => Some(f),
            _ => None,
        }
    }

    fn current_mut(&mut self, id: ReqId) -> Option<&mut InFlight> {
        match &mut self.phase {
            Phase::Awaiting(f) if f.id == id => Some(f),
            _ => None,
        }
    }

    fn set_body(&mut self, deadline: Time, body: Body) {
        if let Phase::Awaiting(f) = &mut self.phase {
            f.deadline = deadline;
            f.body = body;
        }
    }

    fn fail(&mut self, error: StreamError) {
        self.outputs.push_back(Output::Failed(error));
        self.phase = Phase::Finished;
    }

    /// Schedules a request of kind `then` after a back-off, and says so.
    fn retry(
        &mut self,
        now: Time,
        then: LiveParam,
        retry_after: Option<Duration>,
        cause: RetryCause,
    ) {
        self.stats.retries += 1;
        // Caught up again only once an answer says so (and `UpToDate` tells it).
        self.up_to_date = false;
        let delay = self.backoff.next_delay(retry_after);
        self.phase = Phase::Waiting {
            until: now + delay,
            then,
        };
        self.outputs.push_back(Output::Reconnecting {
            offset: self.offset.clone(),
            cause,
        });
    }

    fn sse_fruitless(&mut self, now: Time, cause: RetryCause) {
        self.sse_fruitless += 1;
        if self.sse_fruitless >= self.cfg.sse_fallback_after {
            self.fall_back_to_long_poll();
        } else {
            self.retry(now, LiveParam::Sse, None, cause);
        }
    }

    fn fall_back_to_long_poll(&mut self) {
        self.live = LiveMode::LongPoll;
        self.stats.fell_back_to_long_poll = true;
        self.phase = Phase::Ready(LiveParam::LongPoll);
    }

    /// An SSE response we can read, or `None` if the head is anything else.
    fn sse_body(&self, head: &ResponseHead) -> Option<SseState> {
        if head.status != 200 || head.media_type().as_deref() != Some("text/event-stream") {
            return None;
        }
        // Said by the header; without it, by the stream's content type (§5.8: all
        // but text and JSON is base64), as a browser does not see the header from
        // a server that does not expose it to cross-origin pages.
        let encoding = match head.get(headers::SSE_DATA_ENCODING) {
            Some(v) if v.trim().eq_ignore_ascii_case("base64") => DataEncoding::Base64,
            Some(_) => DataEncoding::Text,
            None if self
                .content_type
                .as_deref()
                .is_some_and(|ct| !headers::is_text(ct)) =>
            {
                DataEncoding::Base64
            }
            None => DataEncoding::Text,
        };
        Some(SseState {
            // One event holds at most the data a response may (plus its lines' names):
            // an append the server takes whole comes as one event. (Its text counts:
            // a binary append's base64 is 4/3 of its bytes, and must fit as held data
            // too, see `HELD_EVENT_BYTES`.)
            decoder: SseDecoder::with_max_event_bytes(
                self.cfg
                    .max_body_bytes
                    .saturating_add(SSE_EVENT_LINES_BYTES),
            ),
            encoding,
            pending: Vec::new(),
            pending_bytes: 0,
            progressed: false,
        })
    }

    /// Whether an SSE request's answer means "no SSE here" rather than "no stream here".
    fn should_fall_back(&self, head: &ResponseHead) -> bool {
        match head.status {
            // 200 but not an event stream: a server or proxy that ignored `live=sse`.
            200 => true,
            400 | 405 | 406 | 501 => true,
            _ => false,
        }
    }

    fn is_json(&self) -> bool {
        self.content_type.as_deref().is_some_and(is_json)
    }

    /// Ends a read request that was `sent` when the reader had moved `moves` times.
    fn finish_read(
        &mut self,
        now: Time,
        kind: LiveParam,
        sent: Time,
        moves: u64,
        meta: ReadMeta,
        bytes: Vec<u8>,
    ) {
        if kind == LiveParam::CatchUp || self.content_type.is_none() {
            if let Some(mt) = &meta.media_type {
                self.content_type = Some(mt.clone());
            }
        }
        let payload = if self.is_json() {
            match parse_json_batch(&bytes) {
                Ok(m) => Payload::Json(m),
                Err(e) => return self.fail(StreamError::Protocol(e)),
            }
        } else {
            Payload::Bytes(bytes)
        };
        let final_read = meta.closed && (meta.up_to_date || payload.is_empty());
        // (An answer not taken moved nothing on: it is read again, as a quiet round.)
        let _ = self.accept(
            payload,
            meta.next_offset,
            meta.up_to_date,
            final_read,
            meta.cursor,
        );
        if self.is_finished() {
            return;
        }
        let moved = moves != self.moves;
        if !moved && kind == LiveParam::Sse {
            // A 204 to an SSE request: no events here.
            return self.sse_fruitless(now, RetryCause::Empty);
        }
        self.backoff.reset();
        let then = match kind {
            LiveParam::CatchUp if !self.up_to_date => LiveParam::CatchUp,
            LiveParam::CatchUp => match self.live {
                LiveMode::Sse => LiveParam::Sse,
                LiveMode::LongPoll => LiveParam::LongPoll,
                LiveMode::Off => {
                    self.phase = Phase::Finished;
                    return;
                }
            },
            other => other,
        };
        // Quiet: a long-poll, or a catch-up read followed by another, that moved
        // nothing on.
        let quiet = !moved && (kind == LiveParam::LongPoll || then == LiveParam::CatchUp);
        self.go_on(now, then, sent, quiet);
    }

    /// Asks for a request of kind `then` now, or, after a `quiet` one (see
    /// [`QUIET_ROUND_FLOOR`]), no sooner than the floor after it was `sent`.
    fn go_on(&mut self, now: Time, then: LiveParam, sent: Time, quiet: bool) {
        let earliest = sent + QUIET_ROUND_FLOOR;
        self.phase = if quiet && now < earliest {
            Phase::Waiting {
                until: earliest,
                then,
            }
        } else {
            Phase::Ready(then)
        };
    }

    /// Delivers data that ends at `next`, unless it was delivered already (counting in
    /// `moves` each time the reader moves on). Returns `false`, taking nothing, for an
    /// answer that holds no data yet ends past a real offset of the reader's: the
    /// server's tail moved on after the answer began (a long-poll that timed out as an
    /// append landed, say), and moving there would skip what lies between, which is
    /// read from here again instead.
    fn accept(
        &mut self,
        payload: Payload,
        next: Offset,
        up_to_date: bool,
        closed: bool,
        cursor: Option<String>,
    ) -> bool {
        if !self.offset.is_now() && self.offset.partial_cmp(&next) == Some(Ordering::Greater) {
            // An answer to a read from here cannot end before here on a continuous
            // stream: it was made anew, or lost what it had. Delivering on would
            // skip or repeat data, and dropping the answer as a duplicate would hide
            // it (an answer that ends exactly here is a replay, and is dropped).
            self.outputs.push_back(Output::ContinuityLost {
                offset: self.offset.clone(),
                status: None,
            });
            self.phase = Phase::Finished;
            return true;
        }
        let advances =
            self.offset.is_now() || matches!(self.offset.partial_cmp(&next), Some(Ordering::Less));
        if advances && payload.is_empty() && self.offset.is_concrete() {
            return false;
        }
        if advances {
            self.moves += 1;
            self.offset = next;
            if !payload.is_empty() {
                self.outputs.push_back(Output::Batch(Batch {
                    payload,
                    next_offset: self.offset.clone(),
                    up_to_date,
                }));
            }
        } else if !payload.is_empty() {
            self.stats.duplicates_dropped += 1;
        }
        if cursor.is_some() {
            self.cursor = cursor;
        }
        if up_to_date && !self.up_to_date {
            self.outputs.push_back(Output::UpToDate {
                offset: self.offset.clone(),
            });
        }
        self.up_to_date = up_to_date;
        if closed {
            self.outputs.push_back(Output::Closed {
                offset: self.offset.clone(),
            });
            self.phase = Phase::Finished;
        }
        true
    }

    /// Processes every complete SSE event buffered in the current connection's decoder.
    fn drain_sse(&mut self, now: Time) {
        loop {
            let Phase::Awaiting(InFlight {
                body: Body::Sse(sse),
                ..
            }) = &mut self.phase
            else {
                return;
            };
            let Some(event) = sse.decoder.next_event() else {
                return;
            };
            let event = match event {
                Ok(e) => e,
                Err(e) => {
                    return self.fail(StreamError::Protocol(WireError::BadSse(e.to_string())))
                }
            };
            match event.event.as_str() {
                "data" => {
                    // Each held event counts what keeping it costs beyond its text, so
                    // that a stream of empty events is bounded too.
                    sse.pending_bytes = sse
                        .pending_bytes
                        .saturating_add(event.data.len() + HELD_EVENT_BYTES);
                    if sse.pending_bytes > self.cfg.max_body_bytes {
                        let limit = self.cfg.max_body_bytes;
                        return self.fail(StreamError::BodyTooLarge { limit });
                    }
                    sse.pending.push(event.data);
                }
                "control" => {
                    let control = match Control::parse(&event.data) {
                        Ok(c) => c,
                        Err(e) => return self.fail(StreamError::Protocol(e)),
                    };
                    let pending = std::mem::take(&mut sse.pending);
                    sse.pending_bytes = 0;
                    let encoding = sse.encoding;
                    // SSE works here (no fallback), but only moving on ends a back-off:
                    // a connection that says "up to date" and breaks, again and again,
                    // is not reopened in a loop.
                    sse.progressed = true;
                    self.sse_fruitless = 0;
                    self.sse_gateway_since = None;
                    let payload = match self.sse_payload(&pending, encoding) {
                        Ok(p) => p,
                        Err(e) => return self.fail(StreamError::Protocol(e)),
                    };
                    let moves = self.moves;
                    let taken = self.accept(
                        payload,
                        control.stream_next_offset,
                        control.up_to_date,
                        control.stream_closed,
                        control.stream_cursor,
                    );
                    if self.is_finished() {
                        return;
                    }
                    if !taken {
                        // This connection's server stands past data it did not send:
                        // what it sends next would leave a gap. Read from here on a
                        // new one, a floor from now.
                        return self.go_on(now, LiveParam::Sse, now, true);
                    }
                    if self.moves != moves {
                        self.backoff.reset();
                    }
                }
                // Other event types are extensions (§11): ignore them.
                _ => {}
            }
        }
    }

    fn sse_payload(&self, data: &[String], encoding: DataEncoding) -> Result<Payload, WireError> {
        if self.is_json() {
            let mut messages = Vec::new();
            for d in data {
                let trimmed = d.trim_start();
                if trimmed.starts_with('[') || trimmed.is_empty() {
                    messages.extend(parse_json_batch(d.as_bytes())?);
                } else {
                    messages.push(RawJson::new(d).map_err(|e| WireError::BadJson(e.to_string()))?);
                }
            }
            Ok(Payload::Json(messages))
        } else {
            let mut bytes = Vec::new();
            for d in data {
                bytes.extend(decode_sse_data(d, encoding)?);
            }
            Ok(Payload::Bytes(bytes))
        }
    }
}

#[cfg(test)]
mod tests;
