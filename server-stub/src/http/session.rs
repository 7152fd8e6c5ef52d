//! The agent task board's session API over the same storage: a session `<id>` is the
//! JSON stream `sessions/<id>`, so the Durable Streams routes see the same events.
//!
//! - `POST /api/sessions/{id}/events`: `{type, data}` or an array of them; validated
//!   with the typed model, persisted, answered with the assigned offsets.
//! - `GET /api/sessions/{id}/events?after=<offset>&limit=<n>`: a page of history.
//! - `GET /api/sessions/{id}/stream?offset=<o>`: SSE, `id:` = offset, `event:` = type;
//!   history first, then live.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use axum::body::Body;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use gapless_core::event::{Channel, Envelope, EventError};
use gapless_core::session::SessionView;
use gapless_core::sse::encode_event;
use gapless_core::wire::{split_append_body, WireError};
use serde::Deserialize;
use serde_json::{json, Value};

use super::auth;
use super::body::body_bytes;
use super::headers as h;
use super::sse::{live_response, BatchKey, Framed, Framing, FramingKey, Told};
use super::stream::append_error;
use super::AppState;
use crate::store::{
    format_offset, now_ms, AppendError, AppendReq, BadOffset, CreateError, CreateReq, Live,
    Payload, ReadChunk, ReadFrom, StreamMeta,
};

/// Largest page `GET .../events` returns.
const MAX_LIMIT: u64 = 1000;
/// Page size when `limit` is absent.
const DEFAULT_LIMIT: u64 = 100;
/// About the most stored bytes one page of history reads (at least one chunk): a page
/// of large events ends early, `upToDate` false, rather than holding them all.
const MAX_PAGE_BYTES: usize = 4 << 20;
/// Most JSON values (numbers, strings, arrays, objects) one event posted to a
/// session may hold: each is a node of the tree the event is built as, 32 bytes and
/// more, where its text may take two (`0,`). Events are built in turn, so a body
/// (at most `--max-body-bytes`) of tiny values never takes twenty times its size.
const MAX_EVENT_VALUES: usize = 1 << 16;
/// Most JSON values one batch may hold: what a batch's events are split into (a
/// slice each) stays within some 16 MiB.
const MAX_BATCH_VALUES: usize = 1 << 20;

/// At least how many JSON values `text` (JSON) holds: one, and one more for each
/// comma and each array or object opened that is not empty, outside strings.
fn json_values_at_most(text: &[u8]) -> usize {
    let (mut n, mut in_string, mut escaped) = (1usize, false, false);
    let mut opened = false;
    for &b in text {
        match b {
            _ if escaped => escaped = false,
            b'\\' if in_string => escaped = true,
            b'"' => in_string = !in_string,
            _ if in_string => {}
            b' ' | b'\t' | b'\r' | b'\n' => continue,
            b',' => n += 1,
            b'[' | b'{' => {
                n += 1;
                opened = true;
                continue;
            }
            // An empty one holds no value: not one more.
            b']' | b'}' if opened => n -= 1,
            _ => {}
        }
        opened = false;
    }
    n
}

/// An error of the session API: `{"error":{"code","message"}}`.
#[derive(Debug)]
pub(super) struct SessionError {
    status: StatusCode,
    code: &'static str,
    message: String,
    /// The protocol's headers for this refusal (`Producer-Epoch` on a fenced
    /// producer, `Producer-Expected-Seq` on a sequence gap, ...), as on the stream
    /// routes.
    headers: Vec<(header::HeaderName, String)>,
}

impl SessionError {
    fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        SessionError {
            status,
            code,
            message: message.into(),
            headers: Vec::new(),
        }
    }

    fn bad(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, code, message)
    }
}

impl IntoResponse for SessionError {
    fn into_response(self) -> Response {
        let mut response = (
            self.status,
            Json(json!({"error": {"code": self.code, "message": self.message}})),
        )
            .into_response();
        for (name, value) in self.headers {
            if let Ok(value) = header::HeaderValue::from_str(&value) {
                response.headers_mut().insert(name, value);
            }
        }
        response
    }
}

impl From<super::ApiError> for SessionError {
    fn from(e: super::ApiError) -> Self {
        let code = match e.status {
            StatusCode::PAYLOAD_TOO_LARGE => "payload_too_large",
            StatusCode::NOT_FOUND => "not_found",
            StatusCode::GONE => "gone",
            StatusCode::CONFLICT => "conflict",
            StatusCode::FORBIDDEN => "forbidden",
            StatusCode::UNAUTHORIZED => "unauthorized",
            StatusCode::INTERNAL_SERVER_ERROR => "internal",
            _ => "bad_request",
        };
        let mut error = SessionError::new(e.status, code, e.message);
        error.headers = e.headers;
        error
    }
}

/// The stream path of a session, after checking the id.
fn session_path(id: &str) -> Result<String, SessionError> {
    if !is_session_id(id) {
        return Err(SessionError::bad(
            "invalid_session_id",
            "a session id is 1 to 128 characters of A-Z, a-z, 0-9, '-', '_' or '.' \
             (not `.` nor `..`)",
        ));
    }
    Ok(format!("sessions/{id}"))
}

/// One event of a session as a writer sent it (`text`, one JSON value), built and
/// checked with the typed model: known kinds always, unknown ones refused when
/// `strict`. With it, whether it carried an `offset` of its own (dropped from the
/// event). Refused: the error's code and why.
fn checked_event(text: &str, strict: bool) -> Result<(Envelope, bool), (&'static str, String)> {
    if json_values_at_most(text.as_bytes()) > MAX_EVENT_VALUES {
        return Err((
            "event_too_large",
            format!("more than the {MAX_EVENT_VALUES} JSON values an event may hold"),
        ));
    }
    let mut item: Value =
        serde_json::from_str(text).map_err(|e| ("invalid_json", format!("not JSON: {e}")))?;
    // The server assigns offsets: whatever an event says of its own is dropped
    // unread (the session API must not refuse the event for it).
    let had_offset = match &mut item {
        Value::Object(fields) => fields.remove("offset").is_some(),
        _ => false,
    };
    let envelope = Envelope::from_value(item).map_err(|e| ("invalid_event", e.to_string()))?;
    // (A reader keeps a timestamp that is none as it came; a writer is told.)
    if let Some(bad) = envelope.extra.get("timestamp") {
        return Err((
            "invalid_event",
            format!("`timestamp` must be milliseconds since the epoch, not {bad}"),
        ));
    }
    match envelope.event.check(!strict) {
        Ok(()) => Ok((envelope, had_offset)),
        Err(e @ EventError::UnknownKind(_)) => Err(("unknown_event_type", e.to_string())),
        Err(e) => Err(("invalid_event", e.to_string())),
    }
}

/// Checks the events of a JSON append to a session's stream made on the stream
/// routes as [`post_events`] checks its own (stored as sent, not completed): the
/// session's readers see only events the session API would take. An event that
/// names an `offset` of its own is refused (stored as sent, it would say where it
/// is: readers take an event's offset for its place). `messages` are the append's,
/// split. Refused: why.
pub(super) fn check_session_append<'a>(
    messages: impl IntoIterator<Item = &'a str>,
    strict: bool,
) -> Result<(), String> {
    for (i, text) in messages.into_iter().enumerate() {
        let (_, had_offset) = checked_event(text, strict)
            .map_err(|(code, why)| format!("event {i}: {why} ({code})"))?;
        if had_offset {
            return Err(format!(
                "event {i}: `offset` is the server's to assign (the session API drops it)"
            ));
        }
    }
    Ok(())
}

/// Whether `path` is a session's stream (see [`session_path`]).
pub(super) fn is_session_path(path: &str) -> bool {
    path.strip_prefix("sessions/").is_some_and(is_session_id)
}

/// Whether `id` is a session's id: 1 to 128 of `A-Za-z0-9-_.`, not `.` nor `..`
/// (which clients normalise out of URLs).
fn is_session_id(id: &str) -> bool {
    !id.is_empty()
        && id != "."
        && id != ".."
        && id.len() <= 128
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
}

/// `POST /api/sessions/{id}/events`.
pub(super) async fn post_events(
    State(state): State<AppState>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, SessionError> {
    let path = session_path(&id)?;
    let ct = h::text(&headers, &header::CONTENT_TYPE)?.unwrap_or("");
    if !gapless_core::wire::headers::is_json(ct) {
        return Err(SessionError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            "events must be sent as application/json",
        ));
    }
    let producer = h::producer(&headers)?;
    let bytes = body_bytes(&state, body).await?;
    // Split as JSON-mode appends are (checked, not built), then each event built and
    // checked in turn, of at most `MAX_EVENT_VALUES` values: a body built whole as
    // one JSON value took some twenty times its size in memory.
    if json_values_at_most(&bytes) > MAX_BATCH_VALUES {
        return Err(SessionError::bad(
            "batch_too_large",
            format!("more than the {MAX_BATCH_VALUES} JSON values a batch may hold"),
        ));
    }
    let items = split_append_body(&bytes).map_err(|e| match e {
        WireError::EmptyJsonArray => SessionError::bad("empty_batch", "the array holds no events"),
        e => SessionError::bad("invalid_json", format!("the body is not JSON: {e}")),
    })?;
    let mut texts = Vec::new();
    for (i, text) in items.into_iter().enumerate() {
        let (mut envelope, _) = checked_event(text, state.config.strict_events)
            .map_err(|(code, why)| SessionError::bad(code, format!("event {i}: {why}")))?;
        envelope.offset = None;
        if envelope.timestamp.is_none() {
            envelope.timestamp = Some(now_ms());
        }
        texts.push(envelope.to_json());
    }
    let count = texts.len() as u64;
    let payload = Payload::json(texts.iter().map(String::as_str));
    let req = AppendReq {
        path: path.clone(),
        content_type: Some("application/json".into()),
        body: Some(payload),
        close: false,
        stream_seq: None,
        producer,
    };
    let ok = match state.append(req.clone(), true).await {
        Err(AppendError::NotFound) => {
            // A new stream knows no producer: what the append would then refuse is
            // refused before the stream is made, which would outlive the refusal.
            if let Some(p) = req.producer.as_ref().filter(|p| p.seq != 0) {
                let refused = AppendError::NewEpochSeqNotZero { received: p.seq };
                return Err(SessionError::from(append_error(refused)));
            }
            match state.store.create(CreateReq::json(path)).await {
                Ok(_) => {}
                Err(CreateError::Conflict(why)) => {
                    return Err(SessionError::new(StatusCode::CONFLICT, "conflict", why))
                }
                Err(e) => {
                    return Err(SessionError::new(
                        StatusCode::INTERNAL_SERVER_ERROR,
                        "internal",
                        e.to_string(),
                    ))
                }
            }
            state.append(req, true).await
        }
        other => other,
    }
    .map_err(|e| SessionError::from(append_error(e)))?;
    let offsets: Vec<String> = if ok.duplicate {
        Vec::new()
    } else {
        let first = ok.next - count;
        (1..=count)
            .map(|i| format_offset(ok.stream_epoch, first + i))
            .collect()
    };
    let status = if ok.duplicate {
        StatusCode::OK
    } else {
        StatusCode::CREATED
    };
    let mut response = (
        status,
        Json(json!({
            "offsets": offsets,
            "nextOffset": format_offset(ok.stream_epoch, ok.next),
            "duplicate": ok.duplicate,
        })),
    )
        .into_response();
    // A producer learns its epoch and highest accepted sequence, as on the stream
    // routes (a duplicate's offsets are not kept: `offsets` is empty then).
    if let Some((epoch, seq)) = ok.producer {
        let hm = response.headers_mut();
        hm.insert(h::names::PRODUCER_EPOCH, epoch.into());
        hm.insert(h::names::PRODUCER_SEQ, seq.into());
    }
    Ok(response)
}

/// The query of `GET .../events`.
#[derive(Debug, Deserialize)]
pub(super) struct PageQuery {
    after: Option<String>,
    limit: Option<String>,
}

fn live_session(
    state: &AppState,
    path: &str,
) -> Result<(Arc<Live>, Arc<StreamMeta>), SessionError> {
    let (live, meta) = super::stream::lookup(state, path).map_err(|e| match e.status {
        StatusCode::NOT_FOUND => SessionError::new(
            StatusCode::NOT_FOUND,
            "session_not_found",
            "no such session",
        ),
        _ => e.into(),
    })?;
    if !meta.is_json() {
        // Made through the stream routes with another content type: its bytes are
        // not events, and showing none would hide them.
        return Err(SessionError::new(
            StatusCode::CONFLICT,
            "not_a_session",
            format!(
                "the stream {path} holds {}, not JSON events",
                meta.content_type
            ),
        ));
    }
    Ok((live, meta))
}

fn start(offset: Option<&str>, meta: &StreamMeta) -> Result<u64, SessionError> {
    let from = match offset {
        None | Some("") => 0,
        Some(o) => {
            match meta.resolve(o).map_err(|e| match e {
                BadOffset::Retired(_) => {
                    SessionError::new(StatusCode::GONE, "offset_gone", e.to_string())
                }
                e => SessionError::bad("invalid_offset", e.to_string()),
            })? {
                ReadFrom::At(p) => p,
                ReadFrom::Tail => meta.tail,
            }
        }
    };
    if from > meta.tail {
        return Err(SessionError::bad(
            "invalid_offset",
            format!(
                "offset is beyond the session's end {}",
                meta.offset(meta.tail)
            ),
        ));
    }
    Ok(from)
}

/// One stored message as the session API shows it, at `offset`.
fn event_json(message: &str, offset: &str) -> Value {
    match Envelope::from_json(message) {
        Ok(envelope) => json!({
            "offset": offset,
            "type": envelope.kind(),
            "channel": envelope.channel().as_str(),
            "data": envelope.event.data(),
            "timestamp": envelope.timestamp,
        }),
        // Something written through the raw stream API that is not an envelope:
        // shown as it is, never dropped.
        Err(_) => json!({
            "offset": offset,
            "type": Value::Null,
            "channel": Channel::Default.as_str(),
            "data": serde_json::from_str::<Value>(message).unwrap_or(Value::Null),
            "timestamp": Value::Null,
        }),
    }
}

/// Splits a JSON read into its messages.
fn messages(chunk: &ReadChunk) -> Vec<gapless_core::json::RawJson> {
    gapless_core::wire::parse_json_batch(chunk.body()).unwrap_or_default()
}

/// `GET /api/sessions/{id}/events`.
pub(super) async fn get_events(
    State(state): State<AppState>,
    Path(id): Path<String>,
    q: Result<Query<PageQuery>, QueryRejection>,
) -> Result<Response, SessionError> {
    let path = session_path(&id)?;
    let Query(q) = q.map_err(|e| SessionError::bad("invalid_query", e.body_text()))?;
    let (live, meta) = live_session(&state, &path)?;
    let from = start(q.after.as_deref(), &meta)?;
    let limit = match q.limit.as_deref() {
        None => DEFAULT_LIMIT,
        Some(l) => match l.parse::<u64>() {
            Ok(n) if (1..=MAX_LIMIT).contains(&n) => n,
            _ => {
                return Err(SessionError::bad(
                    "invalid_limit",
                    format!("limit must be between 1 and {MAX_LIMIT}"),
                ))
            }
        },
    };
    live.touch();
    let to = meta.tail.min(from + limit);
    let chunk = if from < to {
        state
            .store
            .read(&live, Arc::clone(&meta), from, to, MAX_PAGE_BYTES)
            .await
            .map_err(|e| SessionError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", e))?
    } else {
        ReadChunk::empty(true, from)
    };
    let events: Vec<Value> = messages(&chunk)
        .iter()
        .enumerate()
        .map(|(i, m)| event_json(m.get(), &meta.offset(from + i as u64 + 1)))
        .collect();
    Ok(Json(json!({
        "events": events,
        "nextOffset": meta.offset(chunk.next),
        "upToDate": chunk.next >= meta.tail,
        "closed": meta.closed && chunk.next >= meta.tail,
    }))
    .into_response())
}

/// `GET /api/sessions`: every session the request's token may read (every session
/// when auth is off), by id.
pub(super) async fn list(
    State(state): State<AppState>,
    scope: Option<Extension<auth::Scope>>,
) -> Response {
    let mut sessions: Vec<Value> = state
        .store
        .shared()
        .paths()
        .into_iter()
        .filter(|p| p.starts_with("sessions/"))
        .filter(|p| scope.as_ref().is_none_or(|Extension(s)| s.covers(p)))
        .filter_map(|path| {
            let live = state.store.shared().get(&path)?;
            let meta = live.meta();
            let id = path.strip_prefix("sessions/")?;
            // What the session routes answer: not deleted nor expired (swept or
            // not), a JSON stream, an id they take (not `sessions/a/b`, made through
            // the stream routes).
            let listed = !meta.deleted
                && !meta.is_expired(live.access_ms(), now_ms())
                && meta.is_json()
                && session_path(id).is_ok();
            listed.then(
                || json!({"id": id, "nextOffset": meta.offset(meta.tail), "closed": meta.closed}),
            )
        })
        .collect();
    sessions.sort_by(|a, b| a["id"].as_str().cmp(&b["id"].as_str()));
    Json(json!({ "sessions": sessions })).into_response()
}

/// The query of `GET .../view`.
#[derive(Debug, Deserialize)]
pub(super) struct ViewQuery {
    stall_after_ms: Option<u64>,
}

/// `GET /api/sessions/{id}/view`: the session folded by gapless-core's reducer, with
/// its status evaluated now (so a silent running session reads "stalled").
pub(super) async fn view(
    State(state): State<AppState>,
    Path(id): Path<String>,
    q: Result<Query<ViewQuery>, QueryRejection>,
) -> Result<Response, SessionError> {
    let path = session_path(&id)?;
    let Query(q) = q.map_err(|e| SessionError::bad("invalid_query", e.body_text()))?;
    let (live, meta) = live_session(&state, &path)?;
    // A read, as the other session routes' are: it keeps a stream with a TTL alive.
    live.touch();
    let stall_after = std::time::Duration::from_millis(q.stall_after_ms.unwrap_or(60_000).max(1));
    let now = gapless_core::Time::from_millis(now_ms());
    // One folded view per session, whatever threshold each request asks for (which
    // changes the status reported, not what is folded).
    let mut folded = state
        .views
        .take(&path, meta.id, meta.tail)
        .unwrap_or_else(|| Folded {
            stream_id: meta.id,
            view: SessionView::new(stall_after),
            to: 0,
            at: None,
        });
    folded.view.set_stall_after(stall_after);
    // What came since the last fold arrived after it.
    if let Some(at) = folded.at {
        folded.view.arrived_since(at);
    }
    folded.at = Some(now);
    while folded.to < meta.tail {
        let from = folded.to;
        let chunk = state
            .store
            .read(&live, Arc::clone(&meta), from, meta.tail, 1 << 20)
            .await
            .map_err(|e| SessionError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", e))?;
        for (i, m) in messages(&chunk).iter().enumerate() {
            if let Ok(mut envelope) = Envelope::from_json(m.get()) {
                envelope.offset =
                    gapless_core::Offset::parse(&meta.offset(from + i as u64 + 1)).ok();
                folded.view.apply(&envelope, now);
            }
        }
        if chunk.next <= from {
            break;
        }
        folded.to = chunk.next;
    }
    let snapshot = folded.view.snapshot(now);
    // (Not for a stream removed meanwhile: its view would stay in the cache.)
    if state
        .store
        .shared()
        .get(&path)
        .is_some_and(|l| l.meta().id == folded.stream_id)
    {
        state.views.put(path, folded);
    }
    Ok(Json(snapshot).into_response())
}

/// How many folded views are kept, and how many bytes they may hold in all (see
/// `SessionView::held_bytes`); past either the cache starts over.
const MAX_VIEWS: usize = 1024;
const MAX_VIEW_BYTES: usize = 64 << 20;

/// A session folded up to a position.
#[derive(Debug)]
pub(crate) struct Folded {
    stream_id: i64,
    view: SessionView,
    to: u64,
    /// When it was folded last.
    at: Option<gapless_core::Time>,
}

/// Session views folded by earlier requests, by session path, so a view request
/// folds only the events since the last one (the page asks every few seconds).
#[derive(Debug, Default)]
pub(crate) struct ViewCache {
    entries: Mutex<Views>,
}

/// The cached views, and the bytes they hold.
#[derive(Debug, Default)]
struct Views {
    by_path: HashMap<String, (Folded, usize)>,
    bytes: usize,
}

impl ViewCache {
    /// Takes the folded view for `key` if it belongs to stream `id` and is not past
    /// `tail`.
    fn take(&self, key: &str, id: i64, tail: u64) -> Option<Folded> {
        self.forget(key)
            .filter(|f| f.stream_id == id && f.to <= tail)
    }

    /// Lets go of the view of the session at `key` (its stream is gone), and gives it.
    pub(crate) fn forget(&self, key: &str) -> Option<Folded> {
        let mut views = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        let (folded, bytes) = views.by_path.remove(key)?;
        views.bytes -= bytes;
        Some(folded)
    }

    /// Keeps a folded view for the next request.
    fn put(&self, key: String, folded: Folded) {
        let bytes = folded.view.held_bytes();
        let mut views = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        if views.by_path.len() >= MAX_VIEWS || views.bytes + bytes > MAX_VIEW_BYTES {
            views.by_path.clear();
            views.bytes = 0;
        }
        if bytes <= MAX_VIEW_BYTES {
            views.bytes += bytes;
            if let Some((_, before)) = views.by_path.insert(key, (folded, bytes)) {
                views.bytes -= before;
            }
        }
    }
}

/// The query of `GET .../stream`.
#[derive(Debug, Deserialize)]
pub(super) struct StreamQuery {
    offset: Option<String>,
}

/// `GET /api/sessions/{id}/stream`.
pub(super) async fn stream(
    State(state): State<AppState>,
    Path(id): Path<String>,
    q: Result<Query<StreamQuery>, QueryRejection>,
    headers: HeaderMap,
) -> Result<Response, SessionError> {
    let path = session_path(&id)?;
    let Query(q) = q.map_err(|e| SessionError::bad("invalid_query", e.body_text()))?;
    let (live, meta) = live_session(&state, &path)?;
    // An EventSource reconnects to the same URL with the last id it saw: that, not
    // the URL's offset, is where it resumes (else it would see the history again).
    // (An empty one, which some clients and proxies send, names no event.)
    let last_event_id = h::text(&headers, &h::names::LAST_EVENT_ID)?.filter(|id| !id.is_empty());
    let from = start(last_event_id.or(q.offset.as_deref()), &meta)?;
    // An EventSource that read a closed session to its end reconnects by itself, for
    // good, unless told there is nothing more: 204 stops it.
    if meta.closed && from >= meta.tail && last_event_id.is_some() {
        return Ok(StatusCode::NO_CONTENT.into_response());
    }
    live.touch();
    let framing = SessionFraming;
    Ok(live_response(&state, live, from, framing, false))
}

/// The session framing: one event per stored message (`id:` its offset, `event:`
/// its type), then `up-to-date` once caught up and `closed` at the end, each with its
/// offset as its `id:` (an `EventSource` that reconnects after one resumes there).
/// A message whose type is a name these markers or an `EventSource` use
/// ([`RESERVED_EVENT_NAMES`]) goes as a plain `message` event: what a producer
/// writes cannot pass for the server's word (its data still says its type).
struct SessionFraming;

/// The event names a stored message's type is not sent as (see [`SessionFraming`]).
const RESERVED_EVENT_NAMES: [&str; 5] = ["up-to-date", "closed", "error", "open", "message"];

impl SessionFraming {
    /// A marker event at `at`, that offset as its `id:` too (an `EventSource` then
    /// reconnects from there).
    fn offset_event(&self, kind: &str, at: u64, meta: &StreamMeta) -> String {
        let mut out = String::new();
        let offset = meta.offset(at);
        let data = json!({ "offset": offset }).to_string();
        encode_event(&mut out, Some(kind), Some(&offset), &data);
        out
    }
}

impl Framing for SessionFraming {
    const MAX_BATCH_BYTES: usize = 256 * 1024;

    fn batch(&self, chunk: &ReadChunk, from: u64, meta: &StreamMeta) -> Framed {
        let mut text = String::new();
        for (i, m) in messages(chunk).iter().enumerate() {
            let offset = from + i as u64 + 1;
            let offset_text = meta.offset(offset);
            let event = event_json(m.get(), &offset_text);
            let kind = event["type"]
                .as_str()
                .filter(|kind| !RESERVED_EVENT_NAMES.contains(kind))
                .unwrap_or("message")
                .to_owned();
            encode_event(
                &mut text,
                Some(&kind),
                Some(&offset_text),
                &event.to_string(),
            );
        }
        Framed {
            text,
            told: Told {
                caught_up: false,
                ended: false,
            },
        }
    }

    fn after_batch(&self, _next: u64, _meta: &StreamMeta, _told: Told) -> String {
        String::new()
    }

    fn end(&self, at: u64, meta: &StreamMeta) -> String {
        // With its id: an EventSource reconnecting after it is at the end of a closed
        // session, which it is told with 204 (one that read no event has none else).
        self.offset_event("closed", at, meta)
    }

    fn caught_up(&self, at: u64, meta: &StreamMeta) -> String {
        // With its id: an EventSource that read no event (from `offset=now`, say)
        // would otherwise reconnect to its URL's offset, past what came meanwhile.
        self.offset_event("up-to-date", at, meta)
    }

    fn key(&self) -> FramingKey {
        FramingKey {
            batches: BatchKey::Session,
            cursor: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::json_values_at_most;

    #[test]
    fn values_are_counted_from_above_and_strings_hold_none() {
        for (text, values) in [
            ("1", 1),
            ("[1,2]", 3),
            (r#"{"a":[1,{"b":2}]}"#, 5),
            (r#"["a,[{","b"]"#, 3),
            (r#"["a\",[","b"]"#, 3),
            ("[[],[]]", 3),
            ("[ ]", 1),
            ("{ } ", 1),
        ] {
            let counted = json_values_at_most(text.as_bytes());
            assert_eq!(counted, values, "{text}");
        }
    }
}
