//! Accepting connections. Live SSE requests, reads that do not wait, `HEAD`s and
//! writes with bodies up to [`MAX_LEAN_BODY`] are read and answered by a lean
//! HTTP/1.1 layer: a live response's feed is stepped here and, while it has nothing
//! to send, the connection is parked without a task or a buffer (see `park`), so an
//! idle subscriber costs a few hundred bytes, not hyper's two 8 KiB buffers and a
//! task. Long polls, larger or chunked bodies and upgrades go to hyper, which keeps
//! the connection from then on. Both paths answer through the same router, so every
//! header, check and middleware applies alike; the lean layer hands stream requests
//! to `direct`, which answers them as the router would, through the same gate but
//! without the router's matching.
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::http::{
    header, HeaderMap, HeaderName, HeaderValue, Method, Request, StatusCode, Uri, Version,
};
use axum::response::IntoResponse;
use axum::Router;
use http_body::Body as _;
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tower::ServiceExt;
use tracing::debug;

use super::body::{BODY_TIMEOUT, REQUEST_TIMEOUT};
use super::direct::{Direct, Target};
use super::headers::{names, write_header_line, write_status_line, Fields};
use super::park::{park, Conn, Lots, Parked};
use super::sse::{Feed, FeedSlot, Step, Steps, Wake};
use super::ApiError;

/// The largest request head read before handing the connection to hyper (which then
/// answers 431 if it is too large for it as well).
const MAX_HEAD_BYTES: usize = 16 * 1024;
/// The most headers a lean request may carry.
const MAX_HEADERS: usize = 48;
/// The largest request body the lean path reads (larger ones go to hyper, which
/// streams them to the router and its limits).
const MAX_LEAN_BODY: usize = 1 << 20;
/// The chunk that ends a chunked body.
const LAST_CHUNK: &[u8] = b"0\r\n\r\n";
/// The answer to a request whose body stopped coming for [`REQUEST_TIMEOUT`], or took
/// longer than [`BODY_TIMEOUT`].
const STALLED: &[u8] =
    b"HTTP/1.1 408 Request Timeout\r\ncontent-length: 0\r\nconnection: close\r\n\r\n";
/// How long a connection may wait for its next request (or its first) before it is
/// closed: longer than HTTP clients keep idle connections in their pools (reqwest's
/// 90 s), so that they, not the server, close the ones they no longer want.
const IDLE_TIMEOUT: Duration = Duration::from_secs(300);
/// How long a response's write may wait for the peer to take a byte before the
/// connection is dropped: a peer that stops reading holds neither the response's
/// buffers nor its task for longer.
const WRITE_STALL: Duration = Duration::from_secs(30);
/// How long a refused body is drained before its connection closes (see [`drain`]).
const DRAIN_REFUSED: Duration = Duration::from_secs(5);
/// How long shutdown waits for connections to finish.
const DRAIN: Duration = Duration::from_secs(5);

/// Serves `app` on `listener` until `token` is cancelled, then stops accepting and
/// waits (a few seconds at most) for open connections to finish.
pub(crate) async fn serve(
    listener: TcpListener,
    app: Router,
    direct: Direct,
    token: CancellationToken,
) {
    let direct = Arc::new(direct);
    let tracker = TaskTracker::new();
    let lots = Arc::new(Lots::default());
    loop {
        let stream = tokio::select! {
            _ = token.cancelled() => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(e) => {
                    // Out of descriptors and the like: wait a little, keep serving.
                    debug!("accept failed: {e}");
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    continue;
                }
            },
        };
        let _ = stream.set_nodelay(true);
        let conn = Conn {
            app: app.clone(),
            direct: Arc::clone(&direct),
            token: token.clone(),
            tracker: tracker.clone(),
            lots: Arc::clone(&lots),
        };
        tracker.spawn(requests(stream, Vec::new(), conn));
    }
    drop(listener);
    tracker.close();
    let _ = tokio::time::timeout(DRAIN, tracker.wait()).await;
}

/// Resumes a parked connection: the rest of a piece it was being written (`pending`)
/// and its live response first, then further requests.
pub(crate) async fn resume(parked: Parked, pending: Option<PendingChunk>) {
    let Parked {
        stream,
        feed,
        close,
        conn,
    } = parked;
    // Back with the reactor (a parked socket is not registered with it).
    let stream = match TcpStream::from_std(stream) {
        Ok(stream) => stream,
        Err(e) => {
            debug!("cannot resume a parked connection: {e}");
            return;
        }
    };
    if let Some(mut pending) = pending {
        if write_chunk(&stream, &mut pending).await.is_err() {
            return;
        }
    }
    let mut buf = Vec::new();
    // Resumed because something was committed (or it is due): active until idle again.
    match feed.drive(&stream, &mut buf, true).await {
        Driven::Idle(feed) => park(stream, feed, close, conn),
        // Boxed: the connection's whole state must not size every resumed response.
        Driven::Done if !close => Box::pin(requests(stream, buf, conn)).await,
        Driven::Done | Driven::Failed => {}
    }
}

/// One connection (`buf` holds what was read of it already): lean answers to live
/// SSE requests for as long as they come, then hyper for the rest of the connection.
async fn requests(mut stream: TcpStream, mut buf: Vec<u8>, conn: Conn) {
    // The live response being written, and whether the connection closes after it.
    let mut live: Option<(Box<dyn Feed>, bool)> = None;
    // One timer for the connection's whole life, pushed back before each request head
    // (which costs no more than an atomic update: arming a fresh timer for every head
    // cost about 1,000 instructions per request).
    let mut idle = std::pin::pin!(tokio::time::sleep(IDLE_TIMEOUT));
    loop {
        if let Some((feed, close)) = live.take() {
            match feed.drive(&stream, &mut buf, false).await {
                Driven::Idle(feed) => return park(stream, feed, close, conn),
                Driven::Done if !close => {}
                Driven::Done | Driven::Failed => return,
            }
        }
        let head = tokio::select! {
            biased;
            _ = conn.token.cancelled() => return,
            head = read_head(&mut stream, &mut buf, idle.as_mut()) => match head {
                Ok(Head::Complete(n)) => Some(n),
                Ok(Head::TooLarge) => None,
                Ok(Head::Closed) | Err(_) => return,
            },
        };
        let lean = head.and_then(|n| {
            // One copy of the head, which the request's URI and header values share.
            let head = Bytes::copy_from_slice(&buf[..n]);
            lean_request(&head, Some(conn.direct.lean_appends())).map(|r| (n, r))
        });
        let Some((n, lean)) = lean else {
            // Boxed: its state is large, and it must not size every lean connection.
            return Box::pin(hyper_connection(stream, buf, conn.app, conn.token)).await;
        };
        let Lean {
            asked,
            mut close,
            body,
        } = lean;
        let mut request = match asked {
            Asked::Request(request) => request,
            Asked::Append { path, fields }
                if !conn
                    .direct
                    .lets_append(&path, fields.field(&header::AUTHORIZATION)) =>
            {
                // Refused by the gate: from a request's head, as any other (the same
                // head read again, as a request).
                drop((path, fields));
                match lean_request(&Bytes::copy_from_slice(&buf[..n]), None) {
                    Some(Lean {
                        asked: Asked::Request(request),
                        ..
                    }) => request,
                    // (Not expected: the head was read as lean once.) Hyper's then.
                    _ => {
                        return Box::pin(hyper_connection(stream, buf, conn.app, conn.token)).await
                    }
                }
            }
            Asked::Append { path, fields } => {
                // Within the body limit, let in by the gate: nothing refuses it unread.
                if body > 0 && !read_body(&mut stream, &mut buf, n + body, &conn.token).await {
                    return;
                }
                // Boxed, as the routed answers below are (awaited in place, its state
                // would size every connection's task, idle ones too).
                let answer = Box::pin(conn.direct.append(path, &fields, &buf[n..n + body])).await;
                forget_request(&mut buf, n + body);
                let (head, body, framing) = match answer {
                    Ok(mut head) => {
                        finish_head(&mut head, false, false, close);
                        (head, Body::empty(), Framing::None)
                    }
                    Err(response) => {
                        let (head, body, framing, _) = encode_head(response, &mut close, false);
                        (head, body, framing)
                    }
                };
                if !answered(&stream, &mut buf, head, body, framing).await || close {
                    return;
                }
                continue;
            }
        };
        // A body past the limit, or a request without the credentials to send it, is
        // refused from its head (which the lean path would otherwise hold whole
        // first): answered, the connection closing, then the body read and dropped
        // (see `drain`), so that the close does not reset the answer.
        let refused = if body > 0 {
            conn.direct.refusal(&request, body)
        } else {
            None
        };
        let unread = if refused.is_some() { body } else { 0 };
        close |= refused.is_some();
        if body > 0 && refused.is_none() {
            if !read_body(&mut stream, &mut buf, n + body, &conn.token).await {
                return;
            }
            *request.body_mut() = Body::from(Bytes::copy_from_slice(&buf[n..n + body]));
        }
        let bodiless = request.method() == Method::HEAD;
        // Boxed: awaited in place, the answer's state sized every connection's task,
        // and the memory per idle subscriber went from 0.82 to 1.21-1.33 KiB at 1,000
        // of them (`gapless-bench --only idle`). A direct answer's state is kept under
        // 1 KiB (912 bytes), which the allocator serves from its per-thread cache.
        let routed: Pin<Box<dyn Future<Output = axum::response::Response> + Send + '_>> =
            match (refused, Target::of(&request)) {
                (Some(refusal), _) => Box::pin(std::future::ready(refusal)),
                (None, Some(target)) => Box::pin(conn.direct.answer(target, request)),
                (None, None) => Box::pin(async {
                    match conn.app.clone().oneshot(request).await {
                        Ok(response) => response,
                        Err(never) => match never {},
                    }
                }),
            };
        // (A refused body's first bytes are dropped here, the rest by `drain`.)
        let unread = unread.saturating_sub(buf.len() - n);
        forget_request(&mut buf, n + body);
        let (head, body, framing, feed) = encode_head(routed.await, &mut close, bodiless);
        if let Some(feed) = feed {
            // A live response: its feed is stepped here (and parked while idle).
            drop(body);
            if write_all(&stream, &head).await.is_err() {
                return;
            }
            live = Some((feed, close));
            continue;
        }
        let done = answered(&stream, &mut buf, head, body, framing).await;
        match done {
            true if !close => {}
            // (What of the refused body came in while the answer was written is in
            // `buf`: the connection closes, nothing else follows it.)
            true if unread > buf.len() => return drain(&mut stream, unread - buf.len()).await,
            _ => return,
        }
    }
}

/// Reads into `buf` until it holds `till` bytes (a head and the body that follows
/// it): whether they came. A client that stalls past the body's time limit is told so
/// (RFC 9110, 15.5.9) before the connection closes; a shutdown stops the wait.
async fn read_body(
    stream: &mut TcpStream,
    buf: &mut Vec<u8>,
    till: usize,
    token: &CancellationToken,
) -> bool {
    let read = tokio::select! {
        biased;
        _ = token.cancelled() => return false,
        read = read_at_least(stream, buf, till) => read,
    };
    match read {
        Ok(()) => true,
        Err(e) => {
            if e.kind() == io::ErrorKind::TimedOut {
                let _ = write_all(stream, STALLED).await;
            }
            false
        }
    }
}

/// Drops the request just read (`len` bytes, head and body) from `buf`, keeping what
/// was pipelined after it.
fn forget_request(buf: &mut Vec<u8>, len: usize) {
    buf.drain(..len.min(buf.len()));
    if buf.is_empty() {
        // Nothing pipelined: hold no buffer while the response streams.
        *buf = Vec::new();
    } else if buf.capacity() > 4 * MAX_HEAD_BYTES {
        // Pipelined after a large body: keep what follows, not the room the body
        // took (which a live answer that follows would hold for its whole life).
        buf.shrink_to(buf.len());
    }
}

/// Writes an answer that is not live (its `head` encoded, then `body` as `framing`
/// has it), reading what the client pipelines meanwhile into `buf`: whether it was
/// written whole and the connection may serve the next request.
async fn answered(
    stream: &TcpStream,
    buf: &mut Vec<u8>,
    head: Vec<u8>,
    body: Body,
    framing: Framing,
) -> bool {
    let pump = Pump {
        stream,
        buf,
        body,
        framing,
        left: match framing {
            Framing::Length(len) => Some(len),
            _ => None,
        },
        out: vec![Bytes::from(head)],
        written: 0,
        ended: framing == Framing::None,
        half_closed: false,
        stall: Stall::default(),
    };
    matches!(pump.await, Ok(true))
}

/// Reads and drops up to `len` bytes of a refused body (a few seconds at most), so
/// that closing the connection does not reset the answer before its client read it
/// (a close with unread data sends a reset).
async fn drain(stream: &mut TcpStream, len: usize) {
    let mut left = len.min(MAX_LEAN_BODY);
    let mut scratch = [0u8; 8192];
    let until = tokio::time::Instant::now() + DRAIN_REFUSED;
    while left > 0 {
        match tokio::time::timeout_at(until, stream.read(&mut scratch)).await {
            Ok(Ok(n)) if n > 0 => left = left.saturating_sub(n),
            _ => return,
        }
    }
}

/// How driving a live response stopped.
pub(crate) enum Driven {
    /// The response is complete.
    Done,
    /// The peer left, or a write failed.
    Failed,
    /// The feed has nothing to send: park it with the connection.
    Idle(Box<dyn Feed>),
}

/// Writes the pieces of a live response as chunks until it ends or fails, waiting in
/// this task for commits while they come. A response that has been idle (since it
/// began, or through a whole keep-alive interval) is handed back to be parked, unless
/// the peer sent more (a pipelined request, kept in `buf`). `active`: it was resumed
/// by a commit.
pub(crate) async fn drive<T: Steps + Feed + 'static>(
    stream: &TcpStream,
    buf: &mut Vec<u8>,
    mut feed: Box<T>,
    mut active: bool,
) -> Driven {
    loop {
        match feed.step().await {
            // (An empty chunk would end the response: nothing to send is skipped.)
            Step::Piece(piece) if piece.is_empty() => {}
            Step::Piece(mut piece) => {
                if write_chunk(stream, &mut piece).await.is_err() {
                    return Driven::Failed;
                }
            }
            Step::End => break,
            Step::Idle => {
                if buf.is_empty() {
                    // Has the peer left, or sent more? (No system call unless the
                    // socket was seen readable.)
                    let mut probe = [0u8; 64];
                    match stream.try_read(&mut probe) {
                        Ok(0) => return Driven::Failed,
                        Ok(n) => buf.extend_from_slice(&probe[..n]),
                        Err(e) if e.kind() == io::ErrorKind::WouldBlock && !active => {
                            return Driven::Idle(feed)
                        }
                        Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                        Err(_) => return Driven::Failed,
                    }
                }
                match feed.wait().await {
                    Wake::Commit => active = true,
                    Wake::Due => active = false,
                    Wake::End => break,
                }
            }
        }
    }
    match write_all(stream, LAST_CHUNK).await {
        Ok(()) => Driven::Done,
        Err(_) => Driven::Failed,
    }
}

/// Writes all of `bytes`: an error if the peer takes none of them for
/// [`WRITE_STALL`] (a timer is armed only once the socket is full).
async fn write_all(stream: &TcpStream, mut bytes: &[u8]) -> io::Result<()> {
    while !bytes.is_empty() {
        match stream.try_write(bytes) {
            Ok(n) => bytes = &bytes[n..],
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                tokio::time::timeout(WRITE_STALL, stream.writable())
                    .await
                    .map_err(|_| io::Error::from(io::ErrorKind::TimedOut))??;
            }
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// What reading a request head found.
enum Head {
    /// A whole head of this many bytes is at the start of the buffer.
    Complete(usize),
    /// The head is larger than the lean path reads.
    TooLarge,
    /// The peer closed the connection.
    Closed,
}

/// Reads until `buf` holds a whole request head: an error if it takes longer than
/// [`REQUEST_TIMEOUT`] from its first byte, or if no byte comes for [`IDLE_TIMEOUT`]
/// (a connection kept for requests that never come is let go). `idle` is the
/// connection's timer, set here to the idle time from now.
async fn read_head(
    stream: &mut TcpStream,
    buf: &mut Vec<u8>,
    mut idle: Pin<&mut tokio::time::Sleep>,
) -> io::Result<Head> {
    let mut searched = 0;
    let mut deadline = None;
    idle.as_mut()
        .reset(tokio::time::Instant::now() + IDLE_TIMEOUT);
    loop {
        if let Some(at) = find_head_end(buf, searched) {
            // A head read in with the request before it (whose body grew the buffer)
            // may be larger than the lean path reads: hyper's limits then apply to it
            // (its target's length, 414; its size, 431), as to any other.
            return Ok(match at <= MAX_HEAD_BYTES {
                true => Head::Complete(at),
                false => Head::TooLarge,
            });
        }
        // An end may begin in the last two bytes.
        searched = buf.len().saturating_sub(2);
        if buf.len() >= MAX_HEAD_BYTES {
            return Ok(Head::TooLarge);
        }
        if buf.capacity() == buf.len() {
            buf.reserve(if buf.is_empty() { 512 } else { buf.len() });
        }
        let read = if buf.is_empty() {
            tokio::select! {
                biased;
                read = stream.read_buf(buf) => read?,
                () = idle.as_mut() => return Err(io::ErrorKind::TimedOut.into()),
            }
        } else {
            let deadline =
                *deadline.get_or_insert_with(|| tokio::time::Instant::now() + REQUEST_TIMEOUT);
            read_some(stream, buf, Some(deadline)).await?
        };
        if read == 0 {
            return Ok(Head::Closed);
        }
    }
}

/// Reads what `stream` has into `buf` once it has something (failing when `deadline`
/// passes): how many bytes (0: the peer closed). Through `AsyncRead`, which marks the
/// socket drained when a read leaves room in `buf`, so the next read waits for the
/// next readiness event instead of first trying the socket in vain.
async fn read_some(
    stream: &mut TcpStream,
    buf: &mut Vec<u8>,
    deadline: Option<tokio::time::Instant>,
) -> io::Result<usize> {
    let read = stream.read_buf(buf);
    match deadline {
        None => read.await,
        Some(at) => tokio::time::timeout_at(at, read)
            .await
            .unwrap_or_else(|_| Err(io::ErrorKind::TimedOut.into())),
    }
}

/// Reads until `buf` holds at least `len` bytes: an error if the peer closes first,
/// sends nothing for [`REQUEST_TIMEOUT`] or takes more than [`BODY_TIMEOUT`] in all (a
/// slow body that keeps coming is read to its end; one dribbled a byte at a time does
/// not hold the connection for ever). The buffer grows as the body arrives, not to
/// the announced length at once.
async fn read_at_least(stream: &mut TcpStream, buf: &mut Vec<u8>, len: usize) -> io::Result<()> {
    buf.reserve(len.saturating_sub(buf.len()).min(64 * 1024));
    let end = tokio::time::Instant::now() + BODY_TIMEOUT;
    while buf.len() < len {
        let deadline = Some((tokio::time::Instant::now() + REQUEST_TIMEOUT).min(end));
        if read_some(stream, buf, deadline).await? == 0 {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
    }
    Ok(())
}

/// The length of the head (through its blank line) if `buf` holds one; the search
/// starts at `from`. Lines end in CRLF, or in a bare LF, which the request parser
/// (httparse, hyper's as well) accepts too: the head ends where the parser would end
/// it (and one with a bare LF goes to hyper, see [`lean_request`]). (The line ends
/// are found with `memchr`: comparing every window of four bytes took some 900
/// instructions per request head.)
fn find_head_end(buf: &[u8], from: usize) -> Option<usize> {
    let from = from.min(buf.len());
    memchr::memchr_iter(b'\n', &buf[from..]).find_map(|i| {
        let at = from + i;
        match (buf.get(at + 1), buf.get(at + 2)) {
            (Some(b'\n'), _) => Some(at + 2),
            (Some(b'\r'), Some(b'\n')) => Some(at + 3),
            _ => None,
        }
    })
}

/// A request the lean path answers.
struct Lean {
    /// What is asked.
    asked: Asked,
    /// The client asked to close the connection afterwards.
    close: bool,
    /// The length of the body that follows the head.
    body: usize,
}

/// What a lean request asks for.
enum Asked {
    /// Any request: as a request, its body still empty.
    Request(Request<Body>),
    /// An append to the stream at `path` that named no origin, answered without a
    /// request built (see [`Direct::append`]).
    Append { path: String, fields: AppendFields },
}

/// The headers an append reads, kept from the head of a request answered without a
/// request built: the first value of each (as `HeaderMap::get` finds it).
#[derive(Default)]
pub(crate) struct AppendFields([Option<Bytes>; 7]);

/// The names [`AppendFields`] keeps: all `stream::AppendHead::of` reads, and the
/// credentials the gate checks. (A static: a constant array of names would be made and
/// dropped at each use.)
static APPEND_FIELDS: [HeaderName; 7] = [
    header::AUTHORIZATION,
    header::CONTENT_TYPE,
    names::STREAM_CLOSED,
    names::PRODUCER_ID,
    names::PRODUCER_EPOCH,
    names::PRODUCER_SEQ,
    names::STREAM_SEQ,
];

impl AppendFields {
    /// Keeps `value` if `name` is one of [`APPEND_FIELDS`] not seen yet.
    fn note(&mut self, name: &str, value: impl FnOnce() -> Bytes) {
        if let Some(i) = APPEND_FIELDS
            .iter()
            .position(|n| name.eq_ignore_ascii_case(n.as_str()))
        {
            if self.0[i].is_none() {
                self.0[i] = Some(value());
            }
        }
    }
}

impl Fields for AppendFields {
    fn field(&self, name: &HeaderName) -> Option<&[u8]> {
        let i = APPEND_FIELDS.iter().position(|n| n == name)?;
        self.0[i].as_deref()
    }
}

/// The stream path of a `POST` to `target` that may be answered without a request
/// built: under the stream routes, not a subscription's, with no query, and written
/// without percent-encoding in characters a URI's path takes as they are (so that it
/// is the path the router's extractors would find).
fn lean_append_path(target: &str) -> Option<&str> {
    let rest = target.strip_prefix("/v1/stream/")?;
    let plain = |b: u8| b.is_ascii_alphanumeric() || b"-._~!$&'()*+,;=:@/".contains(&b);
    (!rest.is_empty() && !rest.starts_with("__ds/") && rest.bytes().all(plain)).then_some(rest)
}

/// The request, if it is one the lean path answers: an HTTP/1.1 `GET` or `HEAD`
/// without a body that does not wait (no `live`) or asks for `live=sse`, or a `POST`,
/// `PUT` or `DELETE` whose body has a `Content-Length` of at most [`MAX_LEAN_BODY`]. A long
/// poll goes to hyper, which notices a client that leaves while it waits; so does a
/// `GET` whose query's keys are encoded (a key is not read as it is written then), and
/// a head with a line that ends in a bare LF, or that the parser would not end where
/// `head` ends (the lean path must frame the request exactly as hyper does).
fn lean_request(head: &Bytes, lean_appends: Option<usize>) -> Option<Lean> {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut parsed = httparse::Request::new(&mut headers);
    let httparse::Status::Complete(len) = parsed.parse(head).ok()? else {
        return None;
    };
    if len != head.len() || parsed.version? != 1 {
        return None;
    }
    // One Host, or hyper's path, which refuses the request (see `one_host`).
    let mut hosts = parsed
        .headers
        .iter()
        .filter(|h| h.name.eq_ignore_ascii_case("host"));
    match (hosts.next(), hosts.next()) {
        (Some(host), None) if valid_host(host.value) => {}
        _ => return None,
    }
    if memchr::memchr_iter(b'\n', head).any(|i| i == 0 || head[i - 1] != b'\r') {
        return None;
    }
    let path = parsed.path?;
    let method = match parsed.method? {
        "GET" => {
            let query = path.split_once('?').map_or("", |(_, q)| q);
            let mut live = None;
            for pair in query.split('&') {
                let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
                if key.contains(['%', '+']) {
                    return None;
                }
                if key == "live" {
                    // The first, as the handler reads it.
                    live.get_or_insert(value);
                }
            }
            if live.is_some_and(|l| l != "sse") {
                return None;
            }
            Method::GET
        }
        "HEAD" => Method::HEAD,
        "POST" => Method::POST,
        "PUT" => Method::PUT,
        "DELETE" => Method::DELETE,
        _ => return None,
    };
    // An append that names no origin (nor a fork's source, which the gate checks) is
    // answered without a request built (its header map alone cost a sixth of a small
    // append's work).
    let append_path = (method == Method::POST && lean_appends.is_some())
        .then(|| lean_append_path(path))
        .flatten()
        .filter(|_| {
            !parsed.headers.iter().any(|h| {
                h.name.eq_ignore_ascii_case("origin")
                    || h.name
                        .eq_ignore_ascii_case(names::STREAM_FORKED_FROM.as_str())
            })
        });
    let mut close = false;
    let mut body: Option<usize> = None;
    let mut map = append_path
        .is_none()
        .then(|| HeaderMap::with_capacity(parsed.headers.len()));
    let mut fields = AppendFields::default();
    for h in parsed.headers.iter() {
        let name = h.name;
        // The names the framing depends on, told apart by length first.
        let is = |known: &str| name.len() == known.len() && name.eq_ignore_ascii_case(known);
        if is("transfer-encoding") || is("upgrade") || is("expect") {
            return None;
        }
        if is("content-length") {
            // One length, in plain digits; a second one (even equal) is hyper's to
            // judge.
            if body.is_some() || h.value.is_empty() || !h.value.iter().all(u8::is_ascii_digit) {
                return None;
            }
            body = Some(std::str::from_utf8(h.value).ok()?.parse().ok()?);
        }
        if is("connection") {
            close |= says_close(h.value);
        }
        match &mut map {
            Some(map) => {
                map.append(
                    HeaderName::from_bytes(name.as_bytes()).ok()?,
                    HeaderValue::from_maybe_shared(head.slice_ref(h.value)).ok()?,
                );
            }
            // The values a header map would refuse are refused here too (the name is
            // a token, which the parser checked).
            None if !h
                .value
                .iter()
                .all(|&b| b == b'\t' || (b' ' <= b && b != 0x7f)) =>
            {
                return None
            }
            None => fields.note(name, || head.slice_ref(h.value)),
        }
    }
    let body = body.unwrap_or(0);
    let asked = match append_path {
        Some(path) if lean_appends.is_some_and(|limit| body <= limit) => Asked::Append {
            path: path.to_owned(),
            fields,
        },
        // Past the limit: refused from a request's head, as any other.
        Some(_) => return lean_request(head, None),
        None => {
            let mut request = Request::new(Body::empty());
            *request.method_mut() = method;
            *request.uri_mut() = Uri::from_maybe_shared(head.slice_ref(path.as_bytes())).ok()?;
            *request.version_mut() = Version::HTTP_11;
            *request.headers_mut() = map.unwrap_or_default();
            Asked::Request(request)
        }
    };
    let allowed = match &asked {
        Asked::Request(r) if r.method() == Method::GET || r.method() == Method::HEAD => 0,
        _ => MAX_LEAN_BODY,
    };
    (body <= allowed).then_some(Lean { asked, close, body })
}

/// How a response body is delimited on the wire.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Framing {
    /// No body (1xx, 204, 304).
    None,
    /// `Transfer-Encoding: chunked`.
    Chunked,
    /// The response's own `Content-Length`, which its body is known to match.
    Exact,
    /// The response's own `Content-Length`, which its body is not known to match:
    /// the bytes are counted as they go, and the connection closes if they do not
    /// match (the response cannot be completed then).
    Length(u64),
}

/// The response head as bytes, the body, how the body is framed, and the feed of a
/// live response (which then is the body). `bodiless`: the answer to a `HEAD`, whose
/// headers describe a body that is not sent. `close`: the connection closes after the
/// response (set here too when the response says so).
fn encode_head(
    response: axum::response::Response,
    close: &mut bool,
    bodiless: bool,
) -> (Vec<u8>, Body, Framing, Option<Box<dyn Feed>>) {
    let (parts, body) = response.into_parts();
    // A handler that answers `Connection: close` ends the connection, as under hyper.
    *close |= parts
        .headers
        .get_all(header::CONNECTION)
        .iter()
        .any(|v| says_close(v.as_bytes()));
    let status = parts.status;
    let length = parts
        .headers
        .get(header::CONTENT_LENGTH)
        .map(|v| v.to_str().ok().and_then(|v| v.parse::<u64>().ok()));
    let framing = if bodiless
        || status.is_informational()
        || status == StatusCode::NO_CONTENT
        || status == StatusCode::NOT_MODIFIED
    {
        Framing::None
    } else {
        match length {
            None => Framing::Chunked,
            Some(Some(len)) if body.size_hint().exact() == Some(len) => Framing::Exact,
            Some(Some(len)) => Framing::Length(len),
            // A length that is not a number: hyper would refuse to send it.
            Some(None) => Framing::Length(0),
        }
    };
    let mut head = Vec::with_capacity(512);
    write_status_line(&mut head, status);
    // As hyper does: no length on an answer that cannot have one (RFC 9110, 8.6: a
    // 304's could only repeat the 200's), and the date.
    let lengthless = status.is_informational()
        || status == StatusCode::NO_CONTENT
        || status == StatusCode::NOT_MODIFIED;
    for (name, value) in &parts.headers {
        if name == header::CONNECTION
            || name == header::TRANSFER_ENCODING
            || lengthless && name == header::CONTENT_LENGTH
        {
            continue;
        }
        write_header_line(&mut head, name, value.as_bytes());
    }
    finish_head(
        &mut head,
        parts.headers.contains_key(header::DATE),
        framing == Framing::Chunked,
        *close,
    );
    let feed = match framing {
        Framing::Chunked => parts.extensions.get::<FeedSlot>().and_then(FeedSlot::take),
        _ => None,
    };
    (head, body, framing, feed)
}

/// Whether a `Connection` header's value lists the `close` option. A value that is
/// not visible ASCII lists nothing, as hyper reads it.
fn says_close(value: &[u8]) -> bool {
    super::headers::visible(value)
        .is_some_and(|v| v.split(',').any(|t| t.trim().eq_ignore_ascii_case("close")))
}

/// Ends a response head whose header lines are in `head`, as hyper would: the date
/// (unless `dated`), the chunked framing (when `chunked`), `connection: close` (when
/// `close`), then the blank line.
fn finish_head(head: &mut Vec<u8>, dated: bool, chunked: bool, close: bool) {
    if !dated {
        head.extend_from_slice(b"date: ");
        head.extend_from_slice(&http_date());
        head.extend_from_slice(b"\r\n");
    }
    if chunked {
        head.extend_from_slice(b"transfer-encoding: chunked\r\n");
    }
    if close {
        head.extend_from_slice(b"connection: close\r\n");
    }
    head.extend_from_slice(b"\r\n");
}

/// The current time as an HTTP date, formatted once a second per thread.
fn http_date() -> [u8; 29] {
    thread_local! {
        static LAST: std::cell::Cell<(u64, [u8; 29])> = const { std::cell::Cell::new((0, [b' '; 29])) };
    }
    let now = std::time::SystemTime::now();
    let secs = now
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    LAST.with(|last| {
        let (at, text) = last.get();
        if at == secs {
            return text;
        }
        let mut text = [b' '; 29];
        let formatted = httpdate::fmt_http_date(now);
        let n = formatted.len().min(29);
        text[..n].copy_from_slice(&formatted.as_bytes()[..n]);
        last.set((secs, text));
        text
    })
}

/// The line that opens a chunk of `len` bytes (hexadecimal digits, CRLF), written
/// on the stack.
pub(crate) struct ChunkHead {
    line: [u8; 18],
    len: usize,
}

impl ChunkHead {
    /// The line for a chunk of `len` bytes.
    pub(crate) fn new(len: usize) -> ChunkHead {
        const HEX: &[u8; 16] = b"0123456789abcdef";
        let mut line = [0u8; 18];
        let digits = (usize::BITS - len.leading_zeros()).div_ceil(4).max(1) as usize;
        for (i, slot) in line[..digits].iter_mut().enumerate() {
            *slot = HEX[(len >> (4 * (digits - 1 - i))) & 0xf];
        }
        line[digits..digits + 2].copy_from_slice(b"\r\n");
        ChunkHead {
            line,
            len: digits + 2,
        }
    }

    /// The line's bytes.
    pub(crate) fn as_bytes(&self) -> &[u8] {
        &self.line[..self.len]
    }
}

/// One chunk of a chunked body, as it is written: its head, its data (shared with
/// every other subscriber sent the same piece, never copied), what follows the data
/// for this subscriber alone (an SSE control event with its own cursor), and its end,
/// less what was written already.
pub(crate) struct PendingChunk {
    head: ChunkHead,
    data: Bytes,
    own: Bytes,
    written: usize,
}

impl PendingChunk {
    /// The chunk of `data`, nothing of it written.
    pub(crate) fn new(data: Bytes) -> PendingChunk {
        PendingChunk::with_own(data, Bytes::new())
    }

    /// The chunk of `data` then `own`, nothing of it written.
    pub(crate) fn with_own(data: Bytes, own: Bytes) -> PendingChunk {
        PendingChunk {
            head: ChunkHead::new(data.len() + own.len()),
            data,
            own,
            written: 0,
        }
    }

    /// It holds no data (written, it would end the body).
    pub(crate) fn is_empty(&self) -> bool {
        self.data.is_empty() && self.own.is_empty()
    }

    /// Its data then what follows it, for a body that frames its chunks itself.
    pub(crate) fn into_parts(self) -> [Bytes; 2] {
        [self.data, self.own]
    }

    /// What is left to write, as slices for one vectored write (none when done).
    pub(crate) fn slices(&self) -> ([io::IoSlice<'_>; 4], usize) {
        let parts = [self.head.as_bytes(), &self.data[..], &self.own[..], b"\r\n"];
        let mut slices = [io::IoSlice::new(&[]); 4];
        let (mut skip, mut n) = (self.written, 0);
        for part in parts {
            if skip >= part.len() {
                skip -= part.len();
                continue;
            }
            slices[n] = io::IoSlice::new(&part[skip..]);
            skip = 0;
            n += 1;
        }
        (slices, n)
    }

    /// Counts `n` more bytes written.
    pub(crate) fn advance(&mut self, n: usize) {
        self.written += n;
    }
}

/// Writes what is left of `chunk`, in vectored writes (waiting at most
/// [`WRITE_STALL`] for the socket to take more).
pub(crate) async fn write_chunk(stream: &TcpStream, chunk: &mut PendingChunk) -> io::Result<()> {
    loop {
        let written = {
            let (slices, n) = chunk.slices();
            if n == 0 {
                return Ok(());
            }
            stream.try_write_vectored(&slices[..n])
        };
        match written {
            Ok(n) => chunk.advance(n),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                tokio::time::timeout(WRITE_STALL, stream.writable())
                    .await
                    .map_err(|_| io::Error::from(io::ErrorKind::TimedOut))??;
            }
            Err(e) => return Err(e),
        }
    }
}

/// Writes a response that is not live: head, then the body as it comes (each piece
/// written as it is, with its chunk's framing around it, in one vectored write),
/// watching the connection for the peer leaving meanwhile and keeping what it sends
/// next in `buf`. Resolves to `Ok(true)` when the response was completed, `Ok(false)`
/// when it could not be (the body failed or did not match its length, or the peer
/// left). A peer that shuts its side of the connection down after its request (a
/// half-close) still gets the whole response: only a failed write or read tells that
/// it left.
struct Pump<'a> {
    stream: &'a TcpStream,
    buf: &'a mut Vec<u8>,
    body: Body,
    framing: Framing,
    /// For [`Framing::Length`]: how many bytes the body still owes its length.
    left: Option<u64>,
    /// Pieces to write, and how much of them is written.
    out: Vec<Bytes>,
    written: usize,
    /// The body has ended; `out` holds the last bytes.
    ended: bool,
    /// The peer has shut its side down: it sends nothing more.
    half_closed: bool,
    /// Armed once the socket is full: the write fails if the peer takes nothing
    /// more for [`WRITE_STALL`].
    stall: Stall,
}

/// A write's stall timer: armed once the socket is full, pushed back by each write
/// that makes progress; the write fails once the peer has taken nothing for
/// [`WRITE_STALL`].
#[derive(Default)]
struct Stall(Option<Pin<Box<tokio::time::Sleep>>>);

impl Stall {
    /// While the socket is full: `Pending`, or a time-out once the peer has taken
    /// nothing for [`WRITE_STALL`].
    fn poll(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let stall = self
            .0
            .get_or_insert_with(|| Box::pin(tokio::time::sleep(WRITE_STALL)));
        match stall.as_mut().poll(cx) {
            Poll::Ready(()) => Poll::Ready(Err(io::ErrorKind::TimedOut.into())),
            Poll::Pending => Poll::Pending,
        }
    }

    /// The peer took something: the stall time counts from now.
    fn progressed(&mut self) {
        if let Some(stall) = &mut self.0 {
            stall
                .as_mut()
                .reset(tokio::time::Instant::now() + WRITE_STALL);
        }
    }

    /// What a write of the socket answered, the timer kept as it says: a write that
    /// waits fails once it waited for [`WRITE_STALL`].
    fn watch(
        &mut self,
        cx: &mut Context<'_>,
        written: Poll<io::Result<usize>>,
    ) -> Poll<io::Result<usize>> {
        match written {
            Poll::Ready(Ok(n)) => {
                self.progressed();
                Poll::Ready(Ok(n))
            }
            Poll::Pending => match self.poll(cx) {
                Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
                _ => Poll::Pending,
            },
            failed => failed,
        }
    }
}

impl Pump<'_> {
    /// Writes what is pending in `out`.
    fn poll_flush_out(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        loop {
            // Skip what is written.
            let mut skip = self.written;
            let mut first = 0;
            while first < self.out.len() && skip >= self.out[first].len() {
                skip -= self.out[first].len();
                first += 1;
            }
            if first == self.out.len() {
                break;
            }
            let mut slices = [io::IoSlice::new(&[]); 3];
            let mut n = 0;
            for (i, piece) in self.out[first..].iter().take(slices.len()).enumerate() {
                slices[i] = io::IoSlice::new(if i == 0 { &piece[skip..] } else { piece });
                n = i + 1;
            }
            if self.stream.poll_write_ready(cx)?.is_pending() {
                return self.stall.poll(cx);
            }
            match self.stream.try_write_vectored(&slices[..n]) {
                Ok(n) => {
                    self.written += n;
                    self.stall.progressed();
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(e) => return Poll::Ready(Err(e)),
            }
        }
        // Nothing is held while waiting for the next frame.
        self.out.clear();
        self.written = 0;
        Poll::Ready(Ok(()))
    }

    /// Reads what the peer sends while the response is being written, until it shuts
    /// its side down; `Ready(Err)` when the connection failed.
    fn poll_peer(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while self.buf.len() < MAX_HEAD_BYTES && !self.half_closed {
            std::task::ready!(self.stream.poll_read_ready(cx))?;
            if self.buf.capacity() == self.buf.len() {
                self.buf.reserve(256);
            }
            match self.stream.try_read_buf(self.buf) {
                Ok(0) => self.half_closed = true,
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(e) => return Poll::Ready(Err(e)),
            }
        }
        Poll::Pending
    }
}

impl Future for Pump<'_> {
    type Output = io::Result<bool>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<bool>> {
        let this = self.get_mut();
        loop {
            std::task::ready!(this.poll_flush_out(cx))?;
            if this.ended {
                return Poll::Ready(Ok(true));
            }
            if let Poll::Ready(Err(e)) = this.poll_peer(cx) {
                // The peer is gone: nobody to write the rest to.
                return Poll::Ready(Err(e));
            }
            match std::task::ready!(Pin::new(&mut this.body).poll_frame(cx)) {
                None => {
                    if this.left.is_some_and(|left| left > 0) {
                        // Shorter than its length: the response cannot be completed.
                        return Poll::Ready(Ok(false));
                    }
                    this.ended = true;
                    if this.framing == Framing::Chunked {
                        this.out.push(Bytes::from_static(LAST_CHUNK));
                    }
                }
                // The body failed midway: the response cannot be completed.
                Some(Err(_)) => return Poll::Ready(Ok(false)),
                Some(Ok(frame)) => match frame.into_data() {
                    Ok(data) if this.framing == Framing::Chunked && !data.is_empty() => {
                        this.out.extend([
                            Bytes::copy_from_slice(ChunkHead::new(data.len()).as_bytes()),
                            data,
                            Bytes::from_static(b"\r\n"),
                        ]);
                    }
                    Ok(data) if this.framing != Framing::Chunked => {
                        if let Some(left) = this.left.as_mut() {
                            let Some(now) = left.checked_sub(data.len() as u64) else {
                                // Longer than its length: not a byte more is sent.
                                return Poll::Ready(Ok(false));
                            };
                            *left = now;
                        }
                        this.out.push(data);
                    }
                    _ => {}
                },
            }
        }
    }
}

/// Whether a request names its host as RFC 9112 (3.2) requires: an HTTP/1.1 request
/// (an HTTP/1.0 one may omit it) has exactly one `Host` header, with a valid value
/// (see [`valid_host`]).
fn one_host(version: Version, headers: &axum::http::HeaderMap) -> bool {
    let mut hosts = headers.get_all(header::HOST).iter();
    match (hosts.next(), hosts.next()) {
        (None, _) => version < Version::HTTP_11,
        (Some(host), None) => valid_host(host.as_bytes()),
        (Some(_), Some(_)) => false,
    }
}

/// Whether a `Host` value is made of what a host and port may be made of (RFC 3986,
/// 3.2.2: names, addresses, IP literals in brackets, percent-encodings; then `:` and
/// a port), or is empty (a target without an authority): no user information (`@`),
/// no path, no spaces.
fn valid_host(value: &[u8]) -> bool {
    value.iter().all(|&b| HOST_BYTES[b as usize])
}

/// The bytes a `Host` value may hold (see [`valid_host`]), looked up by value: a
/// search of the punctuation list for each byte cost some 350 instructions a request.
const HOST_BYTES: [bool; 256] = {
    let mut table = [false; 256];
    let mut b = 0;
    while b < 256 {
        table[b] = (b as u8).is_ascii_alphanumeric();
        b += 1;
    }
    let punctuation = b"-._~!$&'()*+,;=%:[]";
    let mut i = 0;
    while i < punctuation.len() {
        table[punctuation[i] as usize] = true;
        i += 1;
    }
    table
};

/// Hands the connection to hyper, replaying the bytes already read: a request that
/// does not name its host as it must is refused there, with 400.
async fn hyper_connection(stream: TcpStream, read: Vec<u8>, app: Router, token: CancellationToken) {
    let io = TokioIo::new(Rewind {
        prefix: read,
        at: 0,
        inner: stream,
        stall: Stall::default(),
    });
    let service = hyper::service::service_fn(move |request: Request<Incoming>| {
        let app = app.clone();
        async move {
            if !one_host(request.version(), request.headers()) {
                let refused = ApiError::bad_request(
                    "an HTTP/1.1 request needs exactly one valid Host header (RFC 9112, 3.2)",
                );
                return Ok(refused.into_response());
            }
            app.oneshot(request).await
        }
    });
    let conn = hyper::server::conn::http1::Builder::new()
        .timer(hyper_util::rt::TokioTimer::new())
        .serve_connection(io, service);
    let mut conn = std::pin::pin!(conn);
    tokio::select! {
        result = conn.as_mut() => {
            if let Err(e) = result {
                debug!("connection ended: {e}");
            }
        }
        _ = token.cancelled() => {
            conn.as_mut().graceful_shutdown();
            let _ = conn.await;
        }
    }
}

/// A stream that first yields bytes already read from it, and whose writes fail
/// once the peer has taken nothing for [`WRITE_STALL`] (hyper has no such time-out:
/// a client that stopped reading held its connection and buffers for good).
struct Rewind {
    prefix: Vec<u8>,
    at: usize,
    inner: TcpStream,
    stall: Stall,
}

impl AsyncRead for Rewind {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        out: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = &mut *self;
        if this.at < this.prefix.len() {
            let rest = &this.prefix[this.at..];
            let n = rest.len().min(out.remaining());
            out.put_slice(&rest[..n]);
            this.at += n;
            if this.at == this.prefix.len() {
                this.prefix = Vec::new();
                this.at = 0;
            }
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut this.inner).poll_read(cx, out)
    }
}

impl AsyncWrite for Rewind {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = &mut *self;
        let written = Pin::new(&mut this.inner).poll_write(cx, data);
        this.stall.watch(cx, written)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = &mut *self;
        let written = Pin::new(&mut this.inner).poll_write_vectored(cx, bufs);
        this.stall.watch(cx, written)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncWriteExt;

    #[tokio::test(start_paused = true)]
    async fn a_connection_that_sends_nothing_is_let_go_after_the_idle_time() {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let _client = TcpStream::connect(addr).await.expect("connect");
        let (mut server, _) = listener.accept().await.expect("accept");
        let started = tokio::time::Instant::now();
        let mut buf = Vec::new();
        let idle = std::pin::pin!(tokio::time::sleep(Duration::ZERO));
        let read = read_head(&mut server, &mut buf, idle).await;
        assert!(
            matches!(&read, Err(e) if e.kind() == io::ErrorKind::TimedOut),
            "{:?}",
            read.map(|_| ())
        );
        assert_eq!(started.elapsed(), IDLE_TIMEOUT);
    }

    #[tokio::test(start_paused = true)]
    async fn the_idle_time_counts_from_each_request_head_awaited_not_from_the_first() {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let mut client = TcpStream::connect(addr).await.expect("connect");
        let (mut server, _) = listener.accept().await.expect("accept");
        let mut idle = std::pin::pin!(tokio::time::sleep(IDLE_TIMEOUT));
        let started = tokio::time::Instant::now();
        let send = async {
            tokio::time::sleep(IDLE_TIMEOUT - Duration::from_secs(1)).await;
            client
                .write_all(b"GET / HTTP/1.1\r\nhost: x\r\n\r\n")
                .await
                .expect("send");
        };
        let mut buf = Vec::new();
        let (first, ()) = tokio::join!(read_head(&mut server, &mut buf, idle.as_mut()), send);
        assert!(matches!(first, Ok(Head::Complete(_))));
        let second_began = tokio::time::Instant::now();
        buf.clear();
        let second = read_head(&mut server, &mut buf, idle.as_mut()).await;
        assert!(matches!(&second, Err(e) if e.kind() == io::ErrorKind::TimedOut));
        assert_eq!(
            second_began - started,
            IDLE_TIMEOUT - Duration::from_secs(1)
        );
        assert_eq!(second_began.elapsed(), IDLE_TIMEOUT);
    }

    #[tokio::test]
    async fn a_head_already_read_past_the_lean_limit_is_too_large_for_the_lean_path() {
        let (mut server, _peer) = pair().await;
        let mut idle = std::pin::pin!(tokio::time::sleep(IDLE_TIMEOUT));
        // As a previous request's body would have left it: the next head already read,
        // of exactly the limit, then of one byte more.
        let head = |len: usize| {
            let start = "POST /v1/stream/";
            let end = " HTTP/1.1\r\nHost: x\r\n\r\n";
            format!("{start}{}{end}", "a".repeat(len - start.len() - end.len())).into_bytes()
        };
        let mut buf = head(MAX_HEAD_BYTES);
        let read = read_head(&mut server, &mut buf, idle.as_mut()).await;
        assert!(matches!(read, Ok(Head::Complete(MAX_HEAD_BYTES))));
        let mut buf = head(MAX_HEAD_BYTES + 1);
        let read = read_head(&mut server, &mut buf, idle.as_mut()).await;
        assert!(matches!(read, Ok(Head::TooLarge)), "{:?}", read.map(|_| ()));
    }

    /// A connected pair: the server's side, and a peer that never reads.
    async fn pair() -> (TcpStream, TcpStream) {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let peer = TcpStream::connect(addr).await.expect("connect");
        let (server, _) = listener.accept().await.expect("accept");
        (server, peer)
    }

    #[tokio::test(start_paused = true)]
    async fn a_write_the_peer_takes_nothing_of_fails_after_the_stall_time() {
        let (server, _peer) = pair().await;
        let started = tokio::time::Instant::now();
        let written = write_all(&server, &vec![b'x'; 64 << 20]).await;
        assert!(matches!(&written, Err(e) if e.kind() == io::ErrorKind::TimedOut));
        assert!(started.elapsed() >= WRITE_STALL);
    }

    #[tokio::test(start_paused = true)]
    async fn a_response_the_peer_takes_nothing_of_fails_after_the_stall_time() {
        let (server, _peer) = pair().await;
        let mut buf = Vec::new();
        let started = tokio::time::Instant::now();
        let body = Bytes::from(vec![b'x'; 64 << 20]);
        let pump = Pump {
            stream: &server,
            buf: &mut buf,
            left: Some(body.len() as u64),
            body: Body::from(body),
            framing: Framing::Length(64 << 20),
            out: vec![Bytes::from_static(b"HTTP/1.1 200 OK\r\n\r\n")],
            written: 0,
            ended: false,
            half_closed: false,
            stall: Stall::default(),
        };
        let pumped = pump.await;
        assert!(matches!(&pumped, Err(e) if e.kind() == io::ErrorKind::TimedOut));
        assert!(started.elapsed() >= WRITE_STALL);
    }

    #[tokio::test(start_paused = true)]
    async fn a_connection_handed_to_hyper_fails_its_write_after_the_stall_time() {
        let (server, _peer) = pair().await;
        let mut rewind = Rewind {
            prefix: Vec::new(),
            at: 0,
            inner: server,
            stall: Stall::default(),
        };
        let started = tokio::time::Instant::now();
        let written = rewind.write_all(&vec![b'x'; 64 << 20]).await;
        assert!(matches!(&written, Err(e) if e.kind() == io::ErrorKind::TimedOut));
        assert!(started.elapsed() >= WRITE_STALL);
    }

    #[test]
    fn a_connection_header_says_close_only_in_visible_ascii_as_hyper_reads_it() {
        assert!(says_close(b"close"));
        assert!(says_close(b"keep-alive, Close "));
        assert!(!says_close(b"closed"));
        assert!(!says_close(b"close, \xe9"));
        assert!(!says_close(b"close\x01"));
    }

    #[test]
    fn a_response_that_says_close_closes_the_connection() {
        let encoded = |connection: Option<&'static str>| {
            let mut response = axum::response::Response::new(Body::from("x"));
            if let Some(value) = connection {
                response
                    .headers_mut()
                    .insert(header::CONNECTION, header::HeaderValue::from_static(value));
            }
            let mut close = false;
            let (head, ..) = encode_head(response, &mut close, false);
            (close, String::from_utf8_lossy(&head).into_owned())
        };
        for value in ["close", "Keep-Alive, CLOSE"] {
            let (close, head) = encoded(Some(value));
            assert!(close, "{value}");
            assert!(
                head.contains("\r\nconnection: close\r\n"),
                "{value}: {head}"
            );
        }
        for value in [None, Some("keep-alive"), Some("closed")] {
            let (close, head) = encoded(value);
            assert!(!close, "{value:?}");
            assert!(!head.contains("connection:"), "{value:?}: {head}");
        }
    }

    #[test]
    fn chunk_heads_are_the_length_in_hexadecimal_then_crlf() {
        for len in [0, 1, 9, 10, 15, 16, 255, 256, 4095, 1 << 20, usize::MAX] {
            let head = ChunkHead::new(len);
            assert_eq!(head.as_bytes(), format!("{len:x}\r\n").as_bytes(), "{len}");
        }
    }

    #[test]
    fn a_pending_chunk_writes_its_framing_around_the_shared_piece_in_any_steps() {
        let data = Bytes::from_static(b"data: 0123456789\n\n");
        let own = Bytes::from_static(b"data: own\n\n");
        let whole = format!(
            "{:x}\r\ndata: 0123456789\n\ndata: own\n\n\r\n",
            data.len() + own.len()
        );
        for step in 1..=whole.len() {
            let mut chunk = PendingChunk::with_own(data.clone(), own.clone());
            let mut out = Vec::new();
            loop {
                let (slices, n) = chunk.slices();
                if n == 0 {
                    break;
                }
                // What a socket taking `step` bytes at a time would take.
                let mut took = 0;
                for slice in &slices[..n] {
                    let more = slice.len().min(step - took);
                    out.extend_from_slice(&slice[..more]);
                    took += more;
                    // The piece is written from its own memory, not from a copy.
                    if slice.len() == data.len() {
                        assert_eq!(slice.as_ptr(), data.as_ptr());
                    }
                }
                chunk.advance(took);
            }
            assert_eq!(out, whole.as_bytes(), "{step} bytes at a time");
        }
    }

    #[test]
    fn plain_appends_are_read_without_a_request_built() {
        // What a head is read as with a body limit of 16 bytes: the stream path of an
        // append read without a request, or the method of a request.
        let read = |head: &str| {
            let head = format!("{head}Host: x\r\n\r\n");
            let lean = lean_request(&Bytes::copy_from_slice(head.as_bytes()), Some(16));
            lean.map(|l| match l.asked {
                Asked::Append { path, fields } => {
                    let ct = fields.field(&header::CONTENT_TYPE).map(<[u8]>::to_vec);
                    (format!("append {path}"), ct, l.close)
                }
                Asked::Request(r) => (r.method().to_string(), None, l.close),
            })
        };
        let append = |path: &str, ct: Option<&str>, close: bool| {
            Some((
                format!("append {path}"),
                ct.map(|c| c.as_bytes().to_vec()),
                close,
            ))
        };
        let request = |method: &str| Some((method.to_owned(), None, false));
        for (head, read_as) in [
            (
                "POST /v1/stream/a/b HTTP/1.1\r\nContent-Type: application/json\r\n\
                 content-type: text/plain\r\nContent-Length: 16\r\n",
                append("a/b", Some("application/json"), false),
            ),
            (
                "POST /v1/stream/a:b@c!$&'()*+,;=-._~ HTTP/1.1\r\nConnection: close\r\n",
                append("a:b@c!$&'()*+,;=-._~", None, true),
            ),
            // Past the limit: refused from a request's head.
            (
                "POST /v1/stream/a HTTP/1.1\r\nContent-Length: 17\r\n",
                request("POST"),
            ),
            // A browser's (CORS headers), a fork's source named (the gate checks it),
            // an encoded path, a query, a subscription's.
            (
                "POST /v1/stream/a HTTP/1.1\r\nOrigin: https://x\r\n",
                request("POST"),
            ),
            (
                "POST /v1/stream/a HTTP/1.1\r\nstream-forked-from: b\r\n",
                request("POST"),
            ),
            ("POST /v1/stream/a%20b HTTP/1.1\r\n", request("POST")),
            ("POST /v1/stream/a?x=1 HTTP/1.1\r\n", request("POST")),
            ("POST /v1/stream/a\"b HTTP/1.1\r\n", request("POST")),
            (
                "POST /v1/stream/__ds/subscriptions/s HTTP/1.1\r\n",
                request("POST"),
            ),
            ("POST /v1/stream/ HTTP/1.1\r\n", request("POST")),
            ("PUT /v1/stream/a HTTP/1.1\r\n", request("PUT")),
            // A value a header map refuses: hyper's, as before.
            ("POST /v1/stream/a HTTP/1.1\r\nX-A: \u{7f}\r\n", None),
        ] {
            assert_eq!(read(head), read_as, "{head:?}");
        }
        assert!(
            lean_append_path("/v1/stream/a").is_some()
                && lean_append_path("/v1/streams/a").is_none()
        );
    }

    #[test]
    fn lean_requests_are_http11_gets_that_do_not_wait_and_small_writes() {
        let lean = |head: &str| {
            lean_request(&Bytes::copy_from_slice(head.as_bytes()), None).map(|l| match l.asked {
                Asked::Request(r) => (r.method().to_string(), r.uri().to_string(), l.close, l.body),
                Asked::Append { .. } => panic!("{head:?}: an append without a request"),
            })
        };
        // The head, and the method, URI, close flag and body length it is read as.
        let lean_ones = [
            (
                "GET /v1/stream/a?offset=-1&live=sse HTTP/1.1\r\nHost: x\r\n\r\n",
                ("GET", "/v1/stream/a?offset=-1&live=sse", false, 0),
            ),
            (
                "GET /v1/stream/a?live=sse HTTP/1.1\r\nHost: x\r\nConnection: keep-alive, close\r\n\r\n",
                ("GET", "/v1/stream/a?live=sse", true, 0),
            ),
            (
                "GET /v1/stream/a?offset=-1 HTTP/1.1\r\nHost: x\r\n\r\n",
                ("GET", "/v1/stream/a?offset=-1", false, 0),
            ),
            (
                "POST /v1/stream/a HTTP/1.1\r\nHost: x\r\nContent-Length: 1048576\r\n\r\n",
                ("POST", "/v1/stream/a", false, 1 << 20),
            ),
            (
                "HEAD /v1/stream/a HTTP/1.1\r\nHost: x\r\n\r\n",
                ("HEAD", "/v1/stream/a", false, 0),
            ),
            (
                "PUT /v1/stream/a HTTP/1.1\r\nHost: x\r\n\r\n",
                ("PUT", "/v1/stream/a", false, 0),
            ),
            (
                "DELETE /v1/stream/a HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n",
                ("DELETE", "/v1/stream/a", false, 0),
            ),
            (
                "GET /v1/stream/a?live=sse&live=long-poll&v=%20 HTTP/1.1\r\nHost: x\r\n\r\n",
                (
                    "GET",
                    "/v1/stream/a?live=sse&live=long-poll&v=%20",
                    false,
                    0,
                ),
            ),
        ];
        for (head, (method, uri, close, body)) in lean_ones {
            assert_eq!(
                lean(head),
                Some((method.into(), uri.into(), close, body)),
                "{head:?}"
            );
        }
        for other in [
            "GET /v1/stream/a?live=long-poll HTTP/1.1\r\nHost: x\r\n\r\n",
            "GET /v1/stream/a?offset=5&live=ssex HTTP/1.1\r\nHost: x\r\n\r\n",
            "HEAD /v1/stream/a HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\n\r\n",
            "PATCH /v1/stream/a HTTP/1.1\r\nHost: x\r\n\r\n",
            "GET /v1/stream/a?live=sse HTTP/1.0\r\nHost: x\r\n\r\n",
            "GET /v1/stream/a?live=sse HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\n",
            "GET /v1/stream/a?live=sse HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n",
            "POST /v1/stream/a HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n",
            "POST /v1/stream/a HTTP/1.1\r\nHost: x\r\nContent-Length: 1048577\r\n\r\n",
            "POST /v1/stream/a HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nContent-Length: 3\r\n\r\n",
            "POST /v1/stream/a HTTP/1.1\r\nHost: x\r\nContent-Length: +3\r\n\r\n",
            "POST /v1/stream/a HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 3\r\n\r\n",
            "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n",
            "GET /v1/stream/a?live=sse HTTP/1.1\r\nHost: x\r\nBad Header: x\r\n\r\n",
            // Keys read otherwise once decoded: a long poll, whatever it looks like.
            "GET /v1/stream/a?%6Cive=long-poll HTTP/1.1\r\nHost: x\r\n\r\n",
            "GET /v1/stream/a?li+ve=sse HTTP/1.1\r\nHost: x\r\n\r\n",
            "GET /v1/stream/a?live=long-poll&live=sse HTTP/1.1\r\nHost: x\r\n\r\n",
            // Framed otherwise by the parser: bare LFs, more than the head.
            "POST /v1/stream/a HTTP/1.1\nHost: x\nContent-Length: 3\n\n",
            "POST /v1/stream/a HTTP/1.1\r\nHost: x\r\nContent-Length: 3\n\r\n",
            "GET /v1/stream/a HTTP/1.1\r\nHost: x\r\n\r\nGET",
            // Not one valid Host: hyper's path refuses it.
            "GET /v1/stream/a HTTP/1.1\r\n\r\n",
            "GET /v1/stream/a HTTP/1.1\r\nHost: x\r\nHost: y\r\n\r\n",
            "GET /v1/stream/a HTTP/1.1\r\nHost: u@x\r\n\r\n",
        ] {
            assert_eq!(lean(other), None, "{other:?}");
        }
    }

    #[test]
    fn the_head_ends_at_the_blank_line() {
        assert_eq!(find_head_end(b"GET / HTTP/1.1\r\n\r\nrest", 0), Some(18));
        assert_eq!(find_head_end(b"GET / HTTP/1.1\r\n", 0), None);
        assert_eq!(find_head_end(b"\r\n\r\n", 2), None);
        // Where the parser ends a head whose lines end in bare LFs.
        assert_eq!(find_head_end(b"GET / HTTP/1.1\n\nrest", 0), Some(16));
        assert_eq!(find_head_end(b"GET / HTTP/1.1\r\n\nrest", 0), Some(17));
        assert_eq!(find_head_end(b"GET / HTTP/1.1\n\r\nrest", 0), Some(17));
        for head in [
            &b"GET / HTTP/1.1\n\n"[..],
            b"GET / HTTP/1.1\r\n\n",
            b"GET / HTTP/1.1\r\nHost: x\r\n\r\n",
        ] {
            let mut headers = [httparse::EMPTY_HEADER; 4];
            let parsed = httparse::Request::new(&mut headers).parse(head);
            assert_eq!(
                parsed.ok(),
                Some(httparse::Status::Complete(head.len())),
                "{head:?}"
            );
            assert_eq!(find_head_end(head, 0), Some(head.len()), "{head:?}");
        }
    }
}
