//! Live reads over Server-Sent Events (§5.8): a `data` event per stored batch, a
//! `control` event after each, closure signalled in-band, connections recycled.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use gapless_core::sse::{encode_comment, encode_event};
use gapless_core::wire::headers::is_text;
use gapless_core::wire::{encode_base64, Control};
use gapless_core::Offset;
use tokio::sync::watch;
use tokio::time::Instant;

use super::headers as h;
use super::AppState;
use crate::store::{format_offset, now_ms, Live, ReadChunk, StreamMeta};

/// Largest batch one `data` event carries.
const MAX_EVENT_BYTES: usize = 256 * 1024;
/// How often an idle connection gets a comment, so dead peers are noticed.
const KEEP_ALIVE: Duration = Duration::from_secs(15);

/// How stored bytes become SSE data.
#[derive(Clone, Copy)]
enum Encoding {
    Json,
    Text,
    Base64,
}

/// How one kind of SSE response writes what the live feed hands it.
pub(super) trait Framing: Send + 'static {
    /// Largest batch read from storage for one piece of the response.
    const MAX_BATCH_BYTES: usize;
    /// Encodes stored data `[from, chunk.next)`; `tail` and `closed` describe the
    /// stream now.
    fn batch(&self, chunk: &ReadChunk, from: u64, tail: u64, closed: bool) -> Framed;
    /// The stream is closed and everything up to `at` was sent.
    fn end(&self, at: u64) -> String;
    /// The reader has caught up with the tail at `at`.
    fn caught_up(&self, at: u64) -> String;
}

/// One encoded batch, and what it told the reader.
pub(super) struct Framed {
    /// The response text.
    pub(super) text: String,
    /// It carried the caught-up signal itself.
    pub(super) caught_up: bool,
    /// It carried the end of the stream itself: the response ends after it.
    pub(super) ended: bool,
}

/// The part shared by every live SSE response: read committed data from `from`,
/// hand it to the framing, say "caught up" once, wait for commits, keep alive, stop
/// at the connection's deadline, on deletion or on shutdown.
struct LiveFeed<F> {
    state: AppState,
    live: Arc<Live>,
    path: String,
    from: u64,
    deadline: Instant,
    changes: watch::Receiver<u64>,
    caught_up_sent: bool,
    done: bool,
    framing: F,
}

impl<F: Framing> LiveFeed<F> {
    /// The next piece of the response, or `None` to end it.
    async fn next(&mut self) -> Option<String> {
        if self.done {
            return None;
        }
        loop {
            let Some(meta) = current_meta(&self.state, &self.path, &self.live) else {
                self.done = true;
                return None;
            };
            if self.from < meta.tail {
                // Boxed: the read's state is large and only lives while it runs, so
                // an idle subscriber does not carry it.
                let read = Box::pin(self.state.store.read(
                    &self.live,
                    Arc::clone(&meta),
                    self.from,
                    meta.tail,
                    F::MAX_BATCH_BYTES,
                ))
                .await;
                let chunk = match read {
                    Ok(c) => c,
                    Err(e) => {
                        tracing::error!(path = %self.path, "live read failed: {e}");
                        self.done = true;
                        return None;
                    }
                };
                let framed = self
                    .framing
                    .batch(&chunk, self.from, meta.tail, meta.closed);
                self.from = chunk.next;
                self.caught_up_sent = framed.caught_up;
                self.done = framed.ended;
                return Some(framed.text);
            }
            if meta.closed {
                self.done = true;
                return Some(self.framing.end(self.from));
            }
            if !self.caught_up_sent {
                self.caught_up_sent = true;
                return Some(self.framing.caught_up(self.from));
            }
            match wait(&self.state, &mut self.changes, self.deadline).await {
                Wake::Changed => {}
                Wake::KeepAlive => return Some(keep_alive()),
                Wake::End => {
                    self.done = true;
                    return None;
                }
            }
        }
    }
}

/// Starts a live SSE response for `live` from `from`, written by `framing`.
pub(super) fn live_response<F: Framing>(
    state: &AppState,
    live: Arc<Live>,
    path: String,
    from: u64,
    framing: F,
    base64: bool,
) -> Response {
    let feed = LiveFeed {
        state: state.clone(),
        changes: live.subscribe(),
        live,
        path,
        from,
        deadline: Instant::now() + state.config.sse_max_age,
        caught_up_sent: false,
        done: false,
        framing,
    };
    let stream = futures::stream::unfold(feed, |mut feed| async move {
        let chunk = feed.next().await?;
        Some((Ok::<_, Infallible>(Bytes::from(chunk)), feed))
    });
    event_stream(Body::from_stream(stream), base64)
}

/// The Durable Streams framing (§5.8): a `data` event per batch, then a `control`
/// event with the next offset, cursor, up-to-date and closure.
struct Protocol {
    client_cursor: Option<String>,
    encoding: Encoding,
}

impl Protocol {
    fn control(&self, at: u64, up_to_date: bool, closed: bool) -> String {
        let control = Control {
            stream_next_offset: Offset::parse(&format_offset(at)).unwrap_or(Offset::START),
            stream_cursor: (!closed).then(|| h::cursor(self.client_cursor.as_deref(), now_ms())),
            up_to_date,
            stream_closed: closed,
        };
        let mut out = String::new();
        encode_event(&mut out, Some("control"), None, &control.to_json());
        out
    }
}

impl Framing for Protocol {
    const MAX_BATCH_BYTES: usize = MAX_EVENT_BYTES;

    fn batch(&self, chunk: &ReadChunk, _from: u64, tail: u64, closed: bool) -> Framed {
        let data = match self.encoding {
            Encoding::Json | Encoding::Text => String::from_utf8_lossy(chunk.body()).into_owned(),
            Encoding::Base64 => encode_base64(chunk.body()),
        };
        let mut text = String::with_capacity(data.len() + 128);
        encode_event(&mut text, Some("data"), None, &data);
        let up_to_date = chunk.next >= tail;
        let ended = closed && up_to_date;
        text.push_str(&self.control(chunk.next, up_to_date, ended));
        Framed {
            text,
            caught_up: up_to_date,
            ended,
        }
    }

    fn end(&self, at: u64) -> String {
        self.control(at, true, true)
    }

    fn caught_up(&self, at: u64) -> String {
        self.control(at, true, false)
    }
}

/// Starts a Durable Streams SSE response reading from `from`.
pub(super) fn respond(
    state: &AppState,
    live: Arc<Live>,
    meta: Arc<StreamMeta>,
    from: u64,
    client_cursor: Option<&str>,
) -> Response {
    let encoding = if meta.is_json() {
        Encoding::Json
    } else if is_text(&meta.content_type) {
        Encoding::Text
    } else {
        Encoding::Base64
    };
    let framing = Protocol {
        client_cursor: client_cursor.map(str::to_owned),
        encoding,
    };
    let base64 = matches!(encoding, Encoding::Base64);
    live_response(state, live, meta.path.clone(), from, framing, base64)
}

/// A `text/event-stream` response around `body`, unbuffered by proxies; `base64`
/// adds the §5.8 data-encoding header.
fn event_stream(body: Body, base64: bool) -> Response {
    let mut response = (StatusCode::OK, body).into_response();
    let hm = response.headers_mut();
    hm.insert(
        "content-type",
        HeaderValue::from_static("text/event-stream"),
    );
    hm.insert("cache-control", HeaderValue::from_static("no-cache"));
    hm.insert("x-accel-buffering", HeaderValue::from_static("no"));
    if base64 {
        hm.insert(
            "stream-sse-data-encoding",
            HeaderValue::from_static("base64"),
        );
    }
    response
}

/// The stream's committed metadata, if `live` is still the stream at `path` (not
/// deleted, not replaced by a new stream of the same name).
fn current_meta(state: &AppState, path: &str, live: &Arc<Live>) -> Option<Arc<StreamMeta>> {
    let current = state.store.shared().get(path)?;
    if !Arc::ptr_eq(&current, live) {
        return None;
    }
    let meta = live.meta();
    (!meta.deleted).then_some(meta)
}

/// Why a live feed woke up.
enum Wake {
    /// The stream changed: look again.
    Changed,
    /// Nothing happened for a while: send a keep-alive.
    KeepAlive,
    /// The connection's time is up, the stream is gone, or the server stops.
    End,
}

/// Waits for the next commit on a stream, the keep-alive interval, the connection's
/// deadline or shutdown, whichever comes first.
async fn wait(state: &AppState, changes: &mut watch::Receiver<u64>, deadline: Instant) -> Wake {
    // One timer for both the keep-alive and the deadline: an idle subscriber's state
    // stays small.
    let keep_alive = Instant::now() + KEEP_ALIVE;
    tokio::select! {
        changed = changes.changed() => if changed.is_ok() { Wake::Changed } else { Wake::End },
        () = tokio::time::sleep_until(deadline.min(keep_alive)) => {
            if keep_alive < deadline { Wake::KeepAlive } else { Wake::End }
        }
        () = state.shutdown.cancelled() => Wake::End,
    }
}

/// An SSE comment that keeps an idle connection visibly alive.
fn keep_alive() -> String {
    let mut out = String::new();
    encode_comment(&mut out, "keep-alive");
    out.push('\n');
    out
}
