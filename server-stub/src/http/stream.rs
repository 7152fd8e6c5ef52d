//! The Durable Streams routes under `/v1/stream/{path}`: create, append, close,
//! delete, metadata, catch-up and long-poll reads (SSE lives in `sse.rs`).

use std::future::Future;
use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Path, Query, Request, State};
use axum::http::{header, HeaderMap, HeaderName, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use gapless_core::wire::headers::{is_json, is_text};
use gapless_core::wire::{split_append_body, WireError};

use super::body::body_bytes;
use super::error::ApiError;
use super::headers::{self as h};
use super::{session, sse, AppState};
use crate::store::{
    format_offset, now_ms, AppendError, AppendReq, BadOffset, CreateError, CreateReq, ForkReq,
    Live, Payload, ProducerHdr, ReadBody, ReadChunk, ReadFrom, ReadStream, StreamMeta,
};

/// Largest catch-up response body, in bytes (a read stops at a chunk boundary past it).
/// The body is sent while it is read, a megabyte or two ahead of the client, so a
/// large page costs the server no more memory than a small one; it saves round trips,
/// and stays small enough for a browser client to parse at once.
pub(super) const MAX_READ_BYTES: usize = 16 << 20;

/// Cache-Control of catch-up and long-poll data responses (§10), when anyone may read.
const CACHEABLE: &str = "public, max-age=60, stale-while-revalidate=300";
/// The same when reads need a token: a shared cache must not keep what one token
/// read for requests without it (§12: access controls hold behind shared caches).
const CACHEABLE_PRIVATE: &str = "private, max-age=60, stale-while-revalidate=300";

/// Dispatches every method on `/v1/stream/{path}`, through the router.
pub(super) async fn route(
    State(state): State<AppState>,
    Path(path): Path<String>,
    Query(query): Query<Vec<(String, String)>>,
    request: Request,
) -> Response {
    answer(&state, path, query, request).await
}

/// Answers `request` for the stream at `path` (percent-decoded) with its `query`'s
/// pairs, as the router's extractors find them (see [`route`]). The request is taken
/// apart before the answer's future is made, which then holds its parts once.
pub(super) fn answer(
    state: &AppState,
    path: String,
    query: Vec<(String, String)>,
    request: Request,
) -> impl Future<Output = Response> + Send + '_ {
    // The request taken whole: its headers moved, not copied as an extractor would.
    let (parts, body) = request.into_parts();
    let (method, headers) = (parts.method, parts.headers);
    async move {
        if let Some(rest) = path.strip_prefix("__ds/") {
            let scope = parts.extensions.get::<super::auth::Scope>().cloned();
            return crate::subscriptions::route(state, method, rest, &headers, scope, body).await;
        }
        let result = match method {
            Method::PUT => create(state, path, &headers, body).await,
            Method::POST => append(state, path, &headers, body).await,
            Method::DELETE => delete(state, &path).await,
            Method::HEAD => head(state, &path),
            Method::GET => read(state, &path, &query, &headers).await,
            // RFC 9110, 15.5.6: a 405 lists the methods that are.
            _ => Err(ApiError::new(
                StatusCode::METHOD_NOT_ALLOWED,
                format!("method {method} is not allowed on a stream"),
            )
            .with(header::ALLOW, "GET, HEAD, POST, PUT, DELETE, OPTIONS")),
        };
        result.unwrap_or_else(IntoResponse::into_response)
    }
}

/// What a body writes to the stream at `path` (created with it, or appended to), by
/// content type: a session's stream takes only the events the session API would.
fn payload_for(
    state: &AppState,
    path: &str,
    content_type: &str,
    body: &[u8],
    allow_empty_array: bool,
) -> Result<Payload, ApiError> {
    let session = session::is_session_path(path);
    payload(content_type, body, allow_empty_array, |messages| {
        if session {
            session::check_session_append(messages.iter().copied(), state.config.strict_events)
                .map_err(ApiError::bad_request)?;
        }
        Ok(())
    })
}

/// Turns a body into what it appends, by content type; a JSON body's messages pass
/// `check` first.
fn payload(
    content_type: &str,
    body: &[u8],
    allow_empty_array: bool,
    check: impl FnOnce(&[&str]) -> Result<(), ApiError>,
) -> Result<Payload, ApiError> {
    if !is_json(content_type) {
        // A text stream is read as UTF-8 text (§5.8: its SSE data is not base64):
        // each append must be text of its own, or a character split between two
        // appends would reach live readers as two broken halves.
        if is_text(content_type) && std::str::from_utf8(body).is_err() {
            return Err(ApiError::bad_request(format!(
                "an append to a {content_type} stream must be UTF-8 text"
            )));
        }
        return Ok(Payload::bytes(body.to_vec()));
    }
    match split_append_body(body) {
        Ok(messages) => {
            check(&messages)?;
            Ok(Payload::json(messages.iter().copied()))
        }
        Err(WireError::EmptyJsonArray) if allow_empty_array => Ok(Payload::json([])),
        Err(WireError::EmptyJsonArray) => Err(ApiError::bad_request(
            "a JSON append must not be an empty array",
        )),
        Err(e) => Err(ApiError::bad_request(format!("invalid JSON body: {e}"))),
    }
}

/// What a stream's path keeps percent-encoded in a URL: all but the unreserved
/// characters (RFC 3986, 2.3) and the `/` between its segments.
const PATH_SEGMENTS: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~')
    .remove(b'/');

fn header(value: impl AsRef<str>) -> HeaderValue {
    HeaderValue::from_str(value.as_ref()).unwrap_or_else(|_| HeaderValue::from_static(""))
}

/// The live stream at `path`, or the protocol's 404/410.
pub(super) fn lookup(
    state: &AppState,
    path: &str,
) -> Result<(Arc<Live>, Arc<StreamMeta>), ApiError> {
    let live = state
        .store
        .shared()
        .get(path)
        .ok_or_else(ApiError::not_found)?;
    let meta = live.meta();
    reachable(&live, &meta)?;
    Ok((live, meta))
}

/// How long a read that found its stream's data gone waits for the removal to be
/// published (it is, once the commit that made it is synced: well under this).
const REMOVAL_WAIT: std::time::Duration = std::time::Duration::from_secs(2);

/// Whether `live` is replaced at its path (removed, or made anew) within `within`.
async fn removal_published(live: &Live, within: std::time::Duration) -> bool {
    let mut changed = live.subscribe();
    let published = async {
        while !live.is_replaced() {
            if changed.changed().await.is_err() {
                break;
            }
        }
    };
    let _ = tokio::time::timeout(within, published).await;
    live.is_replaced()
}

/// Whether the stream `meta` describes answers at its path: 404 once expired (also
/// once kept for its forks, see `Writer::lookup`), else 410 once deleted but kept
/// for its forks.
fn reachable(live: &Live, meta: &StreamMeta) -> Result<(), ApiError> {
    if meta.is_expired(live.access_ms(), now_ms()) {
        return Err(ApiError::not_found());
    }
    if meta.deleted {
        return Err(ApiError::gone());
    }
    Ok(())
}

async fn create(
    state: &AppState,
    path: String,
    headers: &HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    // URL parsers resolve a `.` or `..` segment away, percent-encoded too (WHATWG's):
    // a stream made at such a path could not be named again, its `Location` neither.
    if path
        .split('/')
        .any(|segment| segment == "." || segment == "..")
    {
        return Err(ApiError::bad_request(
            "a stream's path cannot have a `.` or `..` segment (URLs resolve them away)",
        ));
    }
    let content_type = h::text(headers, &header::CONTENT_TYPE)?.map(str::to_owned);
    let ttl_secs = h::ttl(headers)?;
    let expires_at_ms = h::expires_at(headers)?;
    if ttl_secs.is_some() && expires_at_ms.is_some() {
        return Err(ApiError::bad_request(
            "send either Stream-TTL or Stream-Expires-At, not both",
        ));
    }
    let sub_offset = h::fork_sub_offset(headers)?;
    let fork = match h::text(headers, &h::names::STREAM_FORKED_FROM)? {
        Some(source) => {
            let offset = h::fork_offset(headers)?;
            if offset.is_none() && sub_offset.is_some_and(|s| s > 0) {
                return Err(ApiError::bad_request(
                    "Stream-Fork-Sub-Offset needs Stream-Fork-Offset",
                ));
            }
            let source = stream_path_of(source);
            // A session's stream holds only what the session API would take: a fork
            // of one takes its history from another session's, whose events were
            // checked so.
            if session::is_session_path(&path) && !session::is_session_path(&source) {
                return Err(ApiError::bad_request(
                    "a session's stream forks only from another session's stream",
                ));
            }
            Some(ForkReq {
                source,
                offset: offset.map(|(_, pos)| pos),
                offset_epoch: offset.and_then(|(epoch, _)| epoch),
                sub_offset,
            })
        }
        None if sub_offset.is_some() => {
            return Err(ApiError::bad_request(
                "Stream-Fork-Sub-Offset needs Stream-Forked-From",
            ))
        }
        None => None,
    };
    let bytes = body_bytes(state, body).await?;
    let effective_ct = match (&content_type, &fork) {
        (Some(ct), _) => ct.clone(),
        (None, Some(f)) => state
            .store
            .shared()
            .get(&f.source)
            .map(|l| l.meta().content_type.to_string())
            .unwrap_or_default(),
        (None, None) => "application/octet-stream".to_owned(),
    };
    let body = if bytes.is_empty() {
        None
    } else {
        Some(payload_for(state, &path, &effective_ct, &bytes, true)?)
    };
    let with_data = body.as_ref().is_some_and(|p| !p.is_empty());
    let req = CreateReq {
        path: path.clone(),
        content_type,
        ttl_secs,
        expires_at_ms,
        closed: h::closed(headers),
        body,
        fork,
    };
    match state.store.create(req).await {
        Ok(ok) => {
            if ok.created && with_data {
                state.appended(&path);
            }
            let status = if ok.created {
                StatusCode::CREATED
            } else {
                StatusCode::OK
            };
            let mut response = status.into_response();
            let hm = response.headers_mut();
            hm.insert(header::CONTENT_TYPE, header(&ok.meta.content_type));
            hm.insert(
                h::names::STREAM_NEXT_OFFSET,
                header(ok.meta.offset(ok.meta.tail)),
            );
            if ok.meta.closed {
                hm.insert(h::names::STREAM_CLOSED, HeaderValue::from_static("true"));
            }
            if ok.created {
                let host = h::text(headers, &header::HOST)
                    .ok()
                    .flatten()
                    .unwrap_or("localhost");
                // The path as a URL writes it: a decoded `?`, `%`, space or
                // non-ASCII character would name another stream, or no header value.
                let path = percent_encoding::utf8_percent_encode(&path, PATH_SEGMENTS);
                hm.insert(
                    "location",
                    header(format!("http://{host}/v1/stream/{path}")),
                );
            }
            Ok(response)
        }
        Err(CreateError::Conflict(why)) => Err(ApiError::new(StatusCode::CONFLICT, why)),
        Err(CreateError::BadRequest(why)) => Err(ApiError::bad_request(why)),
        Err(CreateError::SourceNotFound) => Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "the fork source does not exist",
        )),
        Err(CreateError::Storage(e)) => Err(ApiError::storage(&e)),
    }
}

/// The path of the stream a `Stream-Forked-From` value names (a path, with or without
/// `/v1/stream/`, or a whole URL), percent-decoded as a request's path is.
pub(super) fn stream_path_of(value: &str) -> String {
    let v = value.trim();
    let v = v
        .split_once("://")
        .and_then(|(_, rest)| rest.find('/').map(|i| &rest[i..]))
        .unwrap_or(v);
    let v = v.strip_prefix("/v1/stream/").unwrap_or(v);
    super::path_decoded(v.trim_start_matches('/'))
}

async fn append(
    state: &AppState,
    path: String,
    headers: &HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let head = AppendHead::of(headers)?;
    let bytes = body_bytes(state, body).await?;
    Ok(append_bytes(state, path, head, &bytes)
        .await?
        .into_response())
}

/// What an append's request headers ask for.
pub(super) struct AppendHead {
    content_type: Option<String>,
    close: bool,
    producer: Option<ProducerHdr>,
    stream_seq: Option<String>,
}

impl AppendHead {
    /// Reads an append's headers (a 400 for a malformed one).
    pub(super) fn of(headers: &(impl h::Fields + ?Sized)) -> Result<AppendHead, ApiError> {
        Ok(AppendHead {
            content_type: h::text(headers, &header::CONTENT_TYPE)?.map(str::to_owned),
            close: h::closed(headers),
            producer: h::producer(headers)?,
            stream_seq: h::text(headers, &h::names::STREAM_SEQ)?.map(str::to_owned),
        })
    }
}

/// A stored append: how it is answered.
#[derive(Debug)]
pub(super) struct Appended {
    status: StatusCode,
    /// The stream's epoch and next position.
    next: (u64, u64),
    closed: bool,
    /// The producer's epoch and sequence number, echoed.
    producer: Option<(u64, u64)>,
}

impl Appended {
    /// Hands each of the answer's headers to `header`, in order.
    fn each_header(&self, mut header: impl FnMut(&HeaderName, &str)) {
        header(
            &h::names::STREAM_NEXT_OFFSET,
            &format_offset(self.next.0, self.next.1),
        );
        if self.closed {
            header(&h::names::STREAM_CLOSED, "true");
        }
        if let Some((epoch, seq)) = self.producer {
            header(&h::names::PRODUCER_EPOCH, &epoch.to_string());
            header(&h::names::PRODUCER_SEQ, &seq.to_string());
        }
    }

    /// The answer's status and headers, as a response.
    fn into_response(self) -> Response {
        let mut response = self.status.into_response();
        let hm = response.headers_mut();
        self.each_header(|name, value| {
            hm.insert(name.clone(), header(value));
        });
        response
    }

    /// The answer's status line and header lines, as [`Appended::into_response`] has
    /// them, written to `out` (each line ended).
    pub(super) fn write_head(&self, out: &mut Vec<u8>) {
        h::write_status_line(out, self.status);
        self.each_header(|name, value| h::write_header_line(out, name, value.as_bytes()));
    }

    /// Whether the answer has no body, nor a length (a 204).
    pub(super) fn lengthless(&self) -> bool {
        self.status == StatusCode::NO_CONTENT
    }
}

/// Appends `bytes` (the whole body) to the stream at `path` as `head` asks.
pub(super) async fn append_bytes(
    state: &AppState,
    path: String,
    head: AppendHead,
    bytes: &[u8],
) -> Result<Appended, ApiError> {
    let AppendHead {
        content_type,
        close,
        producer,
        stream_seq,
    } = head;
    let body = append_body(state, &path, content_type.as_deref(), bytes, close)
        .map_err(|refused| closed_first(state, &path, refused))?;
    let had_body = body.is_some();
    let with_producer = producer.is_some();
    let req = AppendReq {
        path,
        content_type,
        body,
        close,
        stream_seq,
        producer,
    };
    match state.append(req, had_body).await {
        // A producer's append that wrote data is 200; duplicates, close-only
        // requests and plain appends are 204 (§5.2.1).
        Ok(ok) => Ok(Appended {
            status: if with_producer && !ok.duplicate && had_body {
                StatusCode::OK
            } else {
                StatusCode::NO_CONTENT
            },
            next: (ok.stream_epoch, ok.next),
            closed: ok.closed,
            producer: ok.producer,
        }),
        Err(e) => Err(append_error(e)),
    }
}

/// An append's body as stored (`None` for a close without one), or why it is refused:
/// none without a close, or none of its content type's shape.
fn append_body(
    state: &AppState,
    path: &str,
    content_type: Option<&str>,
    bytes: &[u8],
    close: bool,
) -> Result<Option<Payload>, ApiError> {
    if bytes.is_empty() {
        return if close {
            Ok(None)
        } else {
            Err(ApiError::bad_request(
                "an append needs a body (or Stream-Closed: true to close)",
            ))
        };
    }
    let ct = content_type
        .ok_or_else(|| ApiError::bad_request("an append with a body needs a Content-Type"))?;
    payload_for(state, path, ct, bytes, false).map(Some)
}

/// What a malformed append to `path` is told: that the stream is closed, when it is
/// (closure comes first, §5.2, and its answer carries the final offset), otherwise
/// `refused`.
fn closed_first(state: &AppState, path: &str, refused: ApiError) -> ApiError {
    match lookup(state, path) {
        Ok((_, meta)) if meta.closed => append_error(AppendError::Closed {
            next: meta.tail,
            // (As every other answer writes the tail: a fork's at its fork point is
            // its source's.)
            stream_epoch: meta.epoch_at(meta.tail),
        }),
        _ => refused,
    }
}

/// The protocol's answer to an unusable `offset`: 410 for one of an earlier stream at
/// the path (its positions are gone), 400 otherwise.
pub(super) fn offset_error(e: BadOffset) -> ApiError {
    match e {
        BadOffset::Retired(_) => ApiError::new(StatusCode::GONE, e.to_string()),
        e => ApiError::bad_request(e.to_string()),
    }
}

/// The protocol's answer to a failed append.
pub(super) fn append_error(e: AppendError) -> ApiError {
    let message = e.to_string();
    match e {
        AppendError::NotFound => ApiError::not_found(),
        AppendError::Gone => ApiError::gone(),
        AppendError::Closed { next, stream_epoch } => ApiError::new(StatusCode::CONFLICT, message)
            .with(h::names::STREAM_CLOSED, "true")
            .with(
                h::names::STREAM_NEXT_OFFSET,
                format_offset(stream_epoch, next),
            ),
        AppendError::ContentType { .. } | AppendError::SeqRegression { .. } => {
            ApiError::new(StatusCode::CONFLICT, message)
        }
        AppendError::StaleEpoch { current } => {
            ApiError::new(StatusCode::FORBIDDEN, message).with(h::names::PRODUCER_EPOCH, current)
        }
        AppendError::NewEpochSeqNotZero { .. } => ApiError::bad_request(message),
        AppendError::SeqGap { expected, received } => ApiError::new(StatusCode::CONFLICT, message)
            .with(h::names::PRODUCER_EXPECTED_SEQ, expected)
            .with(h::names::PRODUCER_RECEIVED_SEQ, received),
        AppendError::Storage(e) => ApiError::storage(&e),
    }
}

async fn delete(state: &AppState, path: &str) -> Result<Response, ApiError> {
    match state.store.delete(path).await {
        Ok(()) => {
            if let Some(registry) = &state.subscriptions {
                registry.on_delete(path);
            }
            Ok(StatusCode::NO_CONTENT.into_response())
        }
        Err(crate::store::DeleteError::NotFound) => Err(ApiError::not_found()),
        Err(crate::store::DeleteError::Gone) => Err(ApiError::gone()),
        Err(crate::store::DeleteError::Storage(e)) => Err(ApiError::storage(&e)),
    }
}

fn head(state: &AppState, path: &str) -> Result<Response, ApiError> {
    let (live, meta) = lookup(state, path)?;
    // A body of unknown length: a HEAD's `Content-Length` could only be the GET's
    // (RFC 9110, 8.6), and hyper would write 0 for an empty one.
    let unknown_length = Body::from_stream(futures::stream::empty::<
        Result<axum::body::Bytes, std::io::Error>,
    >());
    let mut response = (StatusCode::OK, unknown_length).into_response();
    let hm = response.headers_mut();
    hm.insert(header::CONTENT_TYPE, header(&meta.content_type));
    hm.insert(h::names::STREAM_NEXT_OFFSET, header(meta.offset(meta.tail)));
    if let Some(ttl) = meta.ttl_secs {
        hm.insert(h::names::STREAM_TTL, header(ttl.to_string()));
    }
    // (An expiry past the year 9999, from a huge TTL, is not written: RFC 3339
    // cannot, and an empty value would say nothing.)
    if let Some(at) = meta.expiry_ms(live.access_ms()).and_then(h::rfc3339) {
        hm.insert(h::names::STREAM_EXPIRES_AT, header(at));
    }
    if meta.closed {
        hm.insert(h::names::STREAM_CLOSED, HeaderValue::from_static("true"));
    }
    hm.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(response)
}

/// The query of a read.
struct ReadQuery<'a> {
    offset: Option<&'a str>,
    live: Option<&'a str>,
    cursor: Option<&'a str>,
}

fn read_query(query: &[(String, String)]) -> ReadQuery<'_> {
    let get = |name: &str| {
        query
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    };
    ReadQuery {
        offset: get("offset"),
        live: get("live"),
        cursor: get("cursor"),
    }
}

async fn read(
    state: &AppState,
    path: &str,
    query: &[(String, String)],
    headers: &HeaderMap,
) -> Result<Response, ApiError> {
    let q = read_query(query);
    let (live, meta) = lookup(state, path)?;
    let from = match q.offset {
        None => ReadFrom::At(0),
        Some(o) => meta.resolve(o).map_err(offset_error)?,
    };
    let at_now = from == ReadFrom::Tail;
    let from = match from {
        ReadFrom::At(p) => p,
        ReadFrom::Tail => meta.tail,
    };
    if from > meta.tail {
        return Err(ApiError::bad_request(format!(
            "offset {} is beyond the tail {}",
            q.offset.unwrap_or_default(),
            meta.offset(meta.tail)
        )));
    }
    // The read is checked whole before it counts as an access (a refused one does
    // not push a sliding TTL back).
    match q.live {
        None => {}
        Some("long-poll") if q.offset.is_none() => {
            return Err(ApiError::bad_request("long-poll needs an offset"))
        }
        Some("sse") if q.offset.is_none() => {
            return Err(ApiError::bad_request("SSE needs an offset"))
        }
        Some("long-poll" | "sse") => {}
        Some(other) => {
            return Err(ApiError::bad_request(format!(
                "live must be long-poll or sse, not {other:?}"
            )))
        }
    }
    live.touch();
    match q.live {
        Some("long-poll") => long_poll(state, live, from, at_now, q.cursor).await,
        Some("sse") => Ok(sse::respond(state, live, meta, from, q.cursor)),
        _ => catch_up(state, &live, &meta, from, at_now, headers, None).await,
    }
}

/// A catch-up answer from `from` (also the data answer of a long-poll).
async fn catch_up(
    state: &AppState,
    live: &Live,
    meta: &Arc<StreamMeta>,
    from: u64,
    at_now: bool,
    headers: &HeaderMap,
    cursor: Option<String>,
) -> Result<Response, ApiError> {
    let read = if from < meta.tail {
        state
            .store
            .read_streamed(live, Arc::clone(meta), from, meta.tail, MAX_READ_BYTES)
            .await
            .map_err(|e| ApiError::storage(&e))?
    } else {
        ReadStream::whole(ReadChunk::empty(meta.is_json(), from))
    };
    let next = read.next;
    if next == from && from < meta.tail {
        // Published positions storage no longer holds: the stream was deleted (or
        // expired, or created anew) by a commit whose publication waits for its sync.
        // Told only once that sync is done (it is unpublished then): a removal the
        // disk never took must not have been told to anyone.
        if !removal_published(live, REMOVAL_WAIT).await {
            return Err(ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "the stream is being changed: ask again",
            )
            .with(header::RETRY_AFTER, 1));
        }
        return Err(ApiError::not_found());
    }
    let up_to_date = next >= meta.tail;
    let closed = meta.closed && up_to_date;
    let tag = h::etag(meta.id, meta.epoch, from, next, closed);
    let not_modified = !at_now && h::if_none_match(headers, &tag);
    let mut response = if not_modified {
        StatusCode::NOT_MODIFIED.into_response()
    } else {
        let mut headers = HeaderMap::new();
        let body = read_body(read.body, &mut headers);
        (StatusCode::OK, headers, body).into_response()
    };
    let hm = response.headers_mut();
    hm.insert(header::CONTENT_TYPE, header(&meta.content_type));
    // Whatever type a writer gave its stream (`text/html`, `image/svg+xml`), a browser
    // that opens a read renders it as a document with no script and an origin of
    // its own: never a page of the server's origin (the demo's).
    hm.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static("sandbox"),
    );
    hm.insert(h::names::STREAM_NEXT_OFFSET, header(meta.offset(next)));
    if up_to_date {
        hm.insert(
            h::names::STREAM_UP_TO_DATE,
            HeaderValue::from_static("true"),
        );
    }
    if closed {
        hm.insert(h::names::STREAM_CLOSED, HeaderValue::from_static("true"));
    }
    if let Some(c) = cursor {
        hm.insert(h::names::STREAM_CURSOR, header(c));
    }
    if at_now {
        hm.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    } else {
        hm.insert(header::ETAG, header(&tag));
        let cacheable = if state.config.private_reads {
            CACHEABLE_PRIVATE
        } else {
            CACHEABLE
        };
        hm.insert(header::CACHE_CONTROL, HeaderValue::from_static(cacheable));
    }
    Ok(response)
}

/// A read's body for a response: pieces are sent as they come, under the exact
/// length measured beforehand. A read that fails or stops before its last piece ends
/// the body with an error, so the response is cut off instead of looking complete.
fn read_body(body: ReadBody, headers: &mut HeaderMap) -> Body {
    let pending = match body {
        ReadBody::Whole(bytes) => return Body::from(bytes),
        ReadBody::Pieces(pending) => pending,
    };
    headers.insert(header::CONTENT_LENGTH, HeaderValue::from(pending.len()));
    let pieces = pending.start();
    Body::from_stream(futures::stream::unfold(
        (pieces, false),
        |(mut pieces, ended)| async move {
            if ended {
                return None;
            }
            let piece = match pieces.recv().await {
                Some(Ok(piece)) => Ok((piece.bytes, piece.last)),
                Some(Err(e)) => Err(e),
                None => Err("the read stopped before its end".to_owned()),
            };
            Some(match piece {
                Ok((bytes, last)) => (Ok(bytes), (pieces, last)),
                Err(e) => (Err(e), (pieces, true)),
            })
        },
    ))
}

/// A long-poll from `from` (from `offset=now` when `at_now`: its data answer is then
/// neither cacheable nor tagged, as a catch-up from `now` is not).
async fn long_poll(
    state: &AppState,
    live: Arc<Live>,
    from: u64,
    at_now: bool,
    client_cursor: Option<&str>,
) -> Result<Response, ApiError> {
    let deadline = tokio::time::Instant::now() + state.config.long_poll_timeout;
    let mut changes = live.subscribe();
    loop {
        // What a new lookup of its path would find, had it changed while this waited:
        // another stream or none (404), this one expired (404), or deleted but kept
        // for its forks (410).
        if live.is_replaced() {
            return Err(ApiError::not_found());
        }
        let meta = live.meta();
        reachable(&live, &meta)?;
        let cursor = h::cursor(client_cursor, now_ms());
        if meta.tail > from {
            return catch_up(
                state,
                &live,
                &meta,
                from,
                at_now,
                &HeaderMap::new(),
                Some(cursor),
            )
            .await;
        }
        if meta.closed || tokio::time::Instant::now() >= deadline {
            let mut response = StatusCode::NO_CONTENT.into_response();
            let hm = response.headers_mut();
            hm.insert(h::names::STREAM_NEXT_OFFSET, header(meta.offset(from)));
            hm.insert(
                h::names::STREAM_UP_TO_DATE,
                HeaderValue::from_static("true"),
            );
            if meta.closed {
                hm.insert(h::names::STREAM_CLOSED, HeaderValue::from_static("true"));
            } else {
                hm.insert(h::names::STREAM_CURSOR, header(cursor));
            }
            hm.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
            return Ok(response);
        }
        tokio::select! {
            changed = changes.changed() => {
                if changed.is_err() {
                    return Err(ApiError::not_found());
                }
            }
            () = tokio::time::sleep_until(deadline) => {}
            () = state.shutdown.cancelled() => {
                return Err(ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "the server is shutting down")
                    .with(axum::http::header::RETRY_AFTER, 1));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fork_source_paths() {
        assert_eq!(stream_path_of("/v1/stream/a/b"), "a/b");
        assert_eq!(stream_path_of("a"), "a");
        assert_eq!(stream_path_of("http://h:1/v1/stream/x"), "x");
        assert_eq!(stream_path_of("/v1/stream/a%20b/%C3%A9"), "a b/é");
    }
}
