//! Live reads over Server-Sent Events (§5.8): a `data` event per stored batch, a
//! `control` event after each, closure signalled in-band, connections recycled.

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use futures::StreamExt;
use gapless_core::sse::{encode_comment, encode_event};
use gapless_core::wire::headers::is_text;
use gapless_core::wire::{encode_base64, Control};
use tokio::net::TcpStream;
use tokio::sync::watch;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::accept::{drive, Driven, PendingChunk};
use super::headers as h;
use super::pieces::{Piece, Place, SharedPieces};
use super::AppState;
use crate::store::{now_ms, push_offset, Live, ReadChunk, Store, StreamMeta};

/// Largest batch one `data` event carries.
const MAX_EVENT_BYTES: usize = 256 * 1024;
/// How often an idle connection gets a comment, so dead peers are noticed.
const KEEP_ALIVE: Duration = Duration::from_secs(15);

/// How stored bytes become SSE data.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum Encoding {
    Json,
    Text,
    Base64,
}

/// How one kind of SSE response writes what the live feed hands it.
pub(super) trait Framing: Send + Sync + 'static {
    /// Largest batch read from storage for one piece of the response.
    const MAX_BATCH_BYTES: usize;
    /// Encodes stored data `[from, chunk.next)` of the stream `meta` describes now
    /// (its tail, closure, and how it writes offsets: see [`StreamMeta::offset`]): what
    /// every reader framing alike is sent for it, shared between them.
    fn batch(&self, chunk: &ReadChunk, from: u64, meta: &StreamMeta) -> Framed;
    /// What this reader alone is sent right after a batch that ends at `next` and
    /// told what `framed` says (the protocol's control event, which carries the
    /// reader's own cursor); empty when nothing.
    fn after_batch(&self, next: u64, meta: &StreamMeta, framed: Told) -> String;
    /// The stream is closed and everything up to `at` was sent.
    fn end(&self, at: u64, meta: &StreamMeta) -> String;
    /// The reader has caught up with the tail at `at`.
    fn caught_up(&self, at: u64, meta: &StreamMeta) -> String;
    /// What makes this framing's output what it is, beyond the data: a batch one feed
    /// framed can be sent as it is by another whose key's `batches` are equal, and
    /// what followed it too when the keys are equal (cheap to make: it is compared
    /// for every subscriber written in turn).
    fn key(&self) -> FramingKey;
}

/// What makes a framing's output what it is, beyond the data.
#[derive(Clone, PartialEq, Eq)]
pub(super) struct FramingKey {
    /// What makes its batches what they are: equal ones frame the same data alike.
    pub(super) batches: BatchKey,
    /// The cursor the client sent, which what follows a batch carries.
    pub(super) cursor: Option<Arc<str>>,
}

/// What makes a framing's batches what they are, beyond the data.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum BatchKey {
    /// The Durable Streams framing, with its data encoding.
    Protocol(Encoding),
    /// The session endpoints' framing.
    Session,
}

/// The piece a feed framed for a batch of subscribers written in turn (see
/// [`Feed::step_now`]): the next subscriber of the same stream at the same offset,
/// whose framing's key has the same `batches`, sends its batch as it is instead of
/// reading and framing the same data again, and what followed it too when its key
/// is the same whole (the same client cursor); otherwise it makes its own.
pub(crate) struct SharedPiece {
    /// Where it starts.
    from: u64,
    /// The stream's tail and closure when it was framed.
    tail: u64,
    closed: bool,
    /// Which framing framed it.
    key: FramingKey,
    /// The batch, shared by every framing whose key's `batches` are equal.
    piece: Bytes,
    /// What followed it, shared by every framing whose key is equal.
    own: Bytes,
    /// Where it ends, and what it told the reader.
    next: u64,
    told: Told,
}

/// One encoded batch, and what it told the reader.
pub(super) struct Framed {
    /// The response text.
    pub(super) text: String,
    /// What it told the reader.
    pub(super) told: Told,
}

/// What a batch, with what follows it, tells the reader.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) struct Told {
    /// It has caught up with the tail.
    pub(super) caught_up: bool,
    /// The stream ended: the response ends after it.
    pub(super) ended: bool,
}

/// What a live feed does next.
pub(crate) enum Step {
    /// Write this chunk of the response.
    Piece(PendingChunk),
    /// The response is complete.
    End,
    /// Nothing to send until the stream changes or [`Feed::due`] comes.
    Idle,
}

impl Step {
    /// A piece of `text` alone.
    fn text(text: String) -> Step {
        Step::Piece(PendingChunk::new(text.into()))
    }
}

/// Stepping a live SSE response's source, without boxing each step: what
/// [`Feed::drive`] runs on.
pub(crate) trait Steps: Send {
    /// Reads what there is to send next; never waits for a commit.
    fn step(&mut self) -> impl Future<Output = Step> + Send + '_;
    /// Waits until a step may have something to do.
    fn wait(&mut self) -> impl Future<Output = Wake> + Send + '_;
}

/// A live SSE response's source, as the connection that writes the response drives
/// it: a lean connection drives it itself and parks it while it is idle; the body of
/// the response (for any other connection) waits in its task.
pub(crate) trait Feed: Send {
    /// Writes the response on `stream` until it ends, fails or idles (see
    /// [`accept::drive`](super::accept)).
    fn drive<'a>(
        self: Box<Self>,
        stream: &'a TcpStream,
        buf: &'a mut Vec<u8>,
        active: bool,
    ) -> Pin<Box<dyn Future<Output = Driven> + Send + 'a>>;
    /// The next piece of the response, waiting in this task while it is idle; `None`
    /// at the end.
    fn next_piece(&mut self) -> Pin<Box<dyn Future<Output = Option<PendingChunk>> + Send + '_>>;
    /// The next step, when taking it needs no storage read (what it sends next is in
    /// memory, or is no data); `None` when it does (then [`Feed::drive`] takes it).
    /// `shared` is the piece the subscriber written before it framed, if any: when
    /// this one would send the same, it sends that; when it frames one, it leaves it
    /// there for the next.
    fn step_now(&mut self, shared: &mut Option<SharedPiece>) -> Option<Step>;
    /// The stream it follows.
    fn live(&self) -> &Arc<Live>;
    /// When it must step even if nothing is committed (keep-alive, end of the
    /// connection's time).
    fn due(&self) -> Instant;
    /// The stream now, to decide [`Feed::ready`] for every feed waiting on it at once.
    fn stream_now(&self) -> StreamNow;
    /// Whether a step would not be [`Step::Idle`], given the stream now: something was
    /// committed, the stream ended or went away, the server stops, or it is due.
    fn ready(&self, stream: &StreamNow, now: Instant) -> bool;
}

/// What a waiting feed needs to know about its stream.
pub(crate) struct StreamNow {
    /// The committed tail, unless the stream is closed, deleted or replaced (then
    /// every feed has to step).
    tail: Option<u64>,
    /// The server stops.
    stopping: bool,
}

/// The part shared by every live SSE response: read committed data from `from`,
/// hand it to the framing, say "caught up" once, keep alive, stop at the
/// connection's deadline, on deletion or on shutdown.
struct LiveFeed<F> {
    /// The storage (one pointer: a feed holds only what it uses, as every idle
    /// subscriber keeps one).
    store: Store,
    /// The pieces read from storage, shared between feeds.
    pieces: Arc<SharedPieces>,
    /// Cancelled when the server stops.
    shutdown: CancellationToken,
    live: Arc<Live>,
    from: u64,
    deadline: Instant,
    keep_alive_at: Instant,
    changes: watch::Receiver<u64>,
    caught_up_sent: bool,
    done: bool,
    /// The stream holds JSON messages (its content type, read once).
    json: bool,
    framing: F,
}

impl<F: Framing> LiveFeed<F> {
    async fn step(&mut self) -> Step {
        let piece = match self.piece_now(None) {
            Ok(piece) => piece,
            Err(meta) => self.read_piece(meta).await,
        };
        self.sent(piece)
    }

    /// [`LiveFeed::step`] when it needs no storage read (see [`Feed::step_now`]).
    fn step_now(&mut self, shared: &mut Option<SharedPiece>) -> Option<Step> {
        self.piece_now(Some(shared))
            .ok()
            .map(|piece| self.sent(piece))
    }

    /// Notes that `step` is being sent: a piece puts off the next keep-alive.
    fn sent(&mut self, step: Step) -> Step {
        if matches!(step, Step::Piece(_)) {
            self.keep_alive_at = Instant::now() + KEEP_ALIVE;
        }
        step
    }

    /// The next piece, read from storage up to the tail `meta` gives (what
    /// [`LiveFeed::piece_now`] found not in memory): its batch made once for every
    /// feed of the stream at the same place (see [`SharedPieces`]).
    async fn read_piece(&mut self, meta: Arc<StreamMeta>) -> Step {
        let place = Place {
            from: self.from,
            tail: meta.tail,
            closed: meta.closed,
            key: self.framing.key().batches,
        };
        let pieces = Arc::clone(&self.pieces);
        let this = &*self;
        let made = pieces
            .get_or_make(&this.live, place, || async {
                let chunk = this.read_stored(&meta).await.ok();
                let chunk = chunk.filter(|chunk| chunk.next > this.from)?;
                let framed = this.framing.batch(&chunk, this.from, &meta);
                Some(Piece {
                    bytes: framed.text.into_bytes(),
                    next: chunk.next,
                    told: framed.told,
                })
            })
            .await;
        match made {
            Some(made) => {
                self.moved(made.next, made.told);
                self.with_own(made.bytes, &meta)
            }
            // Nothing to share (a read that failed or found nothing, told below), or
            // the piece made is no longer held: read alone.
            None => self.read_alone(meta).await,
        }
    }

    /// Reads stored data from `self.from` up to the tail `meta` gives, a batch's worth.
    async fn read_stored(&self, meta: &Arc<StreamMeta>) -> Result<ReadChunk, String> {
        // Boxed: the read's state is large and only lives while it runs.
        Box::pin(self.store.read(
            &self.live,
            Arc::clone(meta),
            self.from,
            meta.tail,
            F::MAX_BATCH_BYTES,
        ))
        .await
    }

    /// Notes that what was sent ends at `next`, and what it told the reader.
    fn moved(&mut self, next: u64, told: Told) {
        self.from = next;
        self.caught_up_sent = told.caught_up;
        self.done = told.ended;
    }

    /// What what this feed sent last told its reader.
    fn told(&self) -> Told {
        Told {
            caught_up: self.caught_up_sent,
            ended: self.done,
        }
    }

    /// What this feed sends after the batch it just moved past (see
    /// [`Framing::after_batch`]).
    fn own(&self, meta: &StreamMeta) -> Bytes {
        self.framing
            .after_batch(self.from, meta, self.told())
            .into()
    }

    /// The piece of `batch`, which this feed just moved past, and what it sends after it.
    fn with_own(&self, batch: Bytes, meta: &StreamMeta) -> Step {
        Step::Piece(PendingChunk::with_own(batch, self.own(meta)))
    }

    /// [`LiveFeed::read_piece`] for this feed alone.
    async fn read_alone(&mut self, meta: Arc<StreamMeta>) -> Step {
        match self.read_stored(&meta).await {
            // Published positions storage no longer holds: the stream was deleted
            // (or expired, or made anew) by a commit whose publication waits for its
            // sync. The response ends (as a catch-up read answers 404): a piece that
            // moved nothing would be asked for again and again.
            Ok(chunk) if chunk.next <= self.from => {
                self.done = true;
                Step::End
            }
            Ok(chunk) => {
                let batch = self.framed(&chunk, &meta);
                self.with_own(batch, &meta)
            }
            Err(e) => {
                tracing::error!(path = %meta.path, "live read failed: {e}");
                self.done = true;
                Step::End
            }
        }
    }

    /// The next piece when it needs no storage read (what it sends next is in the
    /// newest chunks kept in memory, or is no data); otherwise the stream's metadata,
    /// for [`LiveFeed::read_piece`]. With `shared`, see [`Feed::step_now`].
    fn piece_now(
        &mut self,
        shared: Option<&mut Option<SharedPiece>>,
    ) -> Result<Step, Arc<StreamMeta>> {
        if self.done {
            return Ok(Step::End);
        }
        // The connection's time, and the server's, end the response even while data
        // keeps coming (the reader goes on from where it ended, on a new one).
        let now = Instant::now();
        if now >= self.deadline || self.shutdown.is_cancelled() {
            self.done = true;
            return Ok(Step::End);
        }
        let Some(meta) = self.live.current() else {
            self.done = true;
            return Ok(Step::End);
        };
        if self.from < meta.tail {
            let Some(shared) = shared else {
                let batch = self.recent(&meta).ok_or_else(|| Arc::clone(&meta))?;
                return Ok(self.with_own(batch, &meta));
            };
            let from = self.from;
            let key = self.framing.key();
            let same = |s: &&mut SharedPiece| {
                (s.from, s.tail, s.closed) == (from, meta.tail, meta.closed)
                    && s.key.batches == key.batches
            };
            if let Some(s) = shared.as_mut().filter(same) {
                self.moved(s.next, s.told);
                let own = if s.key == key {
                    s.own.clone()
                } else {
                    self.own(&meta)
                };
                return Ok(Step::Piece(PendingChunk::with_own(s.piece.clone(), own)));
            }
            let batch = self.recent(&meta).ok_or_else(|| Arc::clone(&meta))?;
            let own = self.own(&meta);
            *shared = Some(SharedPiece {
                from,
                tail: meta.tail,
                closed: meta.closed,
                key,
                piece: batch.clone(),
                own: own.clone(),
                next: self.from,
                told: self.told(),
            });
            return Ok(Step::Piece(PendingChunk::with_own(batch, own)));
        }
        if meta.closed {
            self.done = true;
            return Ok(Step::text(self.framing.end(self.from, &meta)));
        }
        if !self.caught_up_sent {
            self.caught_up_sent = true;
            return Ok(Step::text(self.framing.caught_up(self.from, &meta)));
        }
        if now >= self.keep_alive_at {
            return Ok(Step::text(keep_alive()));
        }
        Ok(Step::Idle)
    }

    /// The batch for what the newest chunks kept in memory hold from `self.from` on,
    /// if they hold it.
    fn recent(&mut self, meta: &StreamMeta) -> Option<Bytes> {
        let chunk = self
            .live
            .read_recent(self.json, self.from, meta.tail, F::MAX_BATCH_BYTES)?;
        Some(self.framed(&chunk, meta))
    }

    /// The batch for `chunk`, read from `self.from` on.
    fn framed(&mut self, chunk: &ReadChunk, meta: &StreamMeta) -> Bytes {
        let framed = self.framing.batch(chunk, self.from, meta);
        self.moved(chunk.next, framed.told);
        Bytes::from(framed.text)
    }
}

impl<F: Framing> Steps for LiveFeed<F> {
    fn step(&mut self) -> impl Future<Output = Step> + Send + '_ {
        LiveFeed::step(self)
    }

    fn wait(&mut self) -> impl Future<Output = Wake> + Send + '_ {
        let due = self.due();
        wait(&self.shutdown, &mut self.changes, due)
    }
}

impl<F: Framing> Feed for LiveFeed<F> {
    fn drive<'a>(
        self: Box<Self>,
        stream: &'a TcpStream,
        buf: &'a mut Vec<u8>,
        active: bool,
    ) -> Pin<Box<dyn Future<Output = Driven> + Send + 'a>> {
        Box::pin(drive(stream, buf, self, active))
    }

    fn next_piece(&mut self) -> Pin<Box<dyn Future<Output = Option<PendingChunk>> + Send + '_>> {
        Box::pin(next_piece(self))
    }

    fn step_now(&mut self, shared: &mut Option<SharedPiece>) -> Option<Step> {
        LiveFeed::step_now(self, shared)
    }

    fn live(&self) -> &Arc<Live> {
        &self.live
    }

    fn due(&self) -> Instant {
        self.deadline.min(self.keep_alive_at)
    }

    fn stream_now(&self) -> StreamNow {
        let meta = self.live.current();
        StreamNow {
            tail: meta.filter(|m| !m.closed).map(|m| m.tail),
            stopping: self.shutdown.is_cancelled(),
        }
    }

    fn ready(&self, stream: &StreamNow, now: Instant) -> bool {
        self.done
            || stream.stopping
            || stream.tail.is_none_or(|tail| self.from < tail)
            || now >= self.due()
    }
}

/// A live response's feed, offered to the connection that writes the response (as a
/// response extension): a lean connection takes it and drives it itself; otherwise
/// the response body does.
#[derive(Clone)]
pub(crate) struct FeedSlot(Arc<Mutex<Option<Box<dyn Feed>>>>);

impl FeedSlot {
    /// Takes the feed, unless it was taken.
    pub(crate) fn take(&self) -> Option<Box<dyn Feed>> {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).take()
    }
}

/// Steps `feed` to its next piece, waiting in this task while it is idle; `None` at
/// the end.
async fn next_piece(feed: &mut impl Steps) -> Option<PendingChunk> {
    loop {
        match feed.step().await {
            Step::Piece(text) => return Some(text),
            Step::End => return None,
            Step::Idle => {
                if feed.wait().await == Wake::End {
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
    from: u64,
    framing: F,
    base64: bool,
) -> Response {
    let now = Instant::now();
    let feed: Box<dyn Feed> = Box::new(LiveFeed {
        store: state.store.clone(),
        pieces: Arc::clone(&state.pieces),
        shutdown: state.shutdown.clone(),
        changes: live.subscribe(),
        json: live.meta().is_json(),
        live,
        from,
        deadline: now + state.config.sse_max_age,
        keep_alive_at: now + KEEP_ALIVE,
        caught_up_sent: false,
        done: false,
        framing,
    });
    let slot = FeedSlot(Arc::new(Mutex::new(Some(feed))));
    // The body drives the feed unless a lean connection took it first.
    let stream = futures::stream::unfold(
        (slot.clone(), None::<Box<dyn Feed>>),
        |(slot, feed)| async move {
            let mut feed = match feed {
                Some(feed) => feed,
                None => slot.take()?,
            };
            let piece = feed.next_piece().await?;
            Some((piece, (slot, Some(feed))))
        },
    )
    .flat_map(|piece| {
        let parts = piece.into_parts().into_iter();
        futures::stream::iter(
            parts
                .filter(|part| !part.is_empty())
                .map(Ok::<_, Infallible>),
        )
    });
    let mut response = event_stream(Body::from_stream(stream), base64);
    response.extensions_mut().insert(slot);
    response
}

/// The Durable Streams framing (§5.8): a `data` event per batch, then a `control`
/// event with the next offset, cursor, up-to-date and closure.
struct Protocol {
    client_cursor: Option<Arc<str>>,
    encoding: Encoding,
}

impl Protocol {
    /// The control event after data up to `at` of the stream `meta` describes.
    fn control(&self, at: u64, meta: &StreamMeta, up_to_date: bool, closed: bool) -> String {
        let mut out = String::with_capacity(CONTROL_BYTES);
        self.push_control(&mut out, at, meta, up_to_date, closed);
        out
    }

    /// Appends the control event after data up to `at` to `out`.
    fn push_control(
        &self,
        out: &mut String,
        at: u64,
        meta: &StreamMeta,
        up_to_date: bool,
        closed: bool,
    ) {
        let mut offset = String::with_capacity(40);
        push_offset(&mut offset, meta.epoch_at(at), at);
        let cursor = (!closed).then(|| h::cursor(self.client_cursor.as_deref(), now_ms()));
        let mut json = String::with_capacity(CONTROL_BYTES);
        Control::write_json_of(&mut json, &offset, cursor.as_deref(), up_to_date, closed);
        encode_event(out, Some("control"), None, &json);
    }
}

/// Room for a control event.
const CONTROL_BYTES: usize = 128;

impl Framing for Protocol {
    const MAX_BATCH_BYTES: usize = MAX_EVENT_BYTES;

    fn batch(&self, chunk: &ReadChunk, _from: u64, meta: &StreamMeta) -> Framed {
        let data = match self.encoding {
            Encoding::Json | Encoding::Text => match std::str::from_utf8(chunk.body()) {
                Ok(text) => text.into(),
                Err(_) => String::from_utf8_lossy(chunk.body()),
            },
            Encoding::Base64 => encode_base64(chunk.body()).into(),
        };
        let mut text = String::with_capacity(data.len() + 32);
        encode_event(&mut text, Some("data"), None, &data);
        let caught_up = chunk.next >= meta.tail;
        Framed {
            text,
            told: Told {
                caught_up,
                ended: meta.closed && caught_up,
            },
        }
    }

    fn after_batch(&self, next: u64, meta: &StreamMeta, told: Told) -> String {
        self.control(next, meta, told.caught_up, told.ended)
    }

    fn end(&self, at: u64, meta: &StreamMeta) -> String {
        self.control(at, meta, true, true)
    }

    fn caught_up(&self, at: u64, meta: &StreamMeta) -> String {
        self.control(at, meta, true, false)
    }

    fn key(&self) -> FramingKey {
        FramingKey {
            batches: BatchKey::Protocol(self.encoding),
            cursor: self.client_cursor.clone(),
        }
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
        client_cursor: client_cursor.map(Arc::from),
        encoding,
    };
    let base64 = matches!(encoding, Encoding::Base64);
    live_response(state, live, from, framing, base64)
}

/// A `text/event-stream` response around `body`, unbuffered by proxies; `base64`
/// adds the §5.8 data-encoding header.
fn event_stream(body: Body, base64: bool) -> Response {
    let mut response = (StatusCode::OK, body).into_response();
    let hm = response.headers_mut();
    hm.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/event-stream"),
    );
    hm.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    hm.insert(h::names::X_ACCEL_BUFFERING, HeaderValue::from_static("no"));
    if base64 {
        hm.insert(
            h::names::SSE_DATA_ENCODING,
            HeaderValue::from_static("base64"),
        );
    }
    response
}

/// Why a wait ended.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Wake {
    /// Something was committed to the stream.
    Commit,
    /// The feed's due time came.
    Due,
    /// The stream's sender or the server is going away.
    End,
}

/// Waits for the next commit on a stream, until `due`, or for shutdown, whichever comes
/// first.
async fn wait(
    shutdown: &CancellationToken,
    changes: &mut watch::Receiver<u64>,
    due: Instant,
) -> Wake {
    tokio::select! {
        changed = changes.changed() => if changed.is_ok() { Wake::Commit } else { Wake::End },
        () = tokio::time::sleep_until(due) => Wake::Due,
        () = shutdown.cancelled() => Wake::End,
    }
}

/// An SSE comment that keeps an idle connection visibly alive.
fn keep_alive() -> String {
    let mut out = String::new();
    encode_comment(&mut out, "keep-alive");
    out.push('\n');
    out
}
