//! The HTTP surface: the router and the shared request state (what every request
//! passes through, routed or answered directly, is in `gate.rs`).

pub(crate) mod accept;
pub mod auth;
mod body;
pub(crate) mod direct;
mod error;
mod gate;
mod headers;
mod park;
mod pieces;
mod session;
mod sse;
mod stream;

use std::sync::Arc;
use std::time::Duration;

use axum::http::{HeaderValue, StatusCode};
use axum::middleware;
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get};
use axum::Router;
use tokio_util::sync::CancellationToken;

pub use error::ApiError;
pub(crate) use gate::Gate;
pub(crate) use session::ViewCache;

use crate::store::Store;

/// Settings the handlers read.
#[derive(Clone, Debug)]
pub struct Settings {
    /// How long a long-poll waits.
    pub long_poll_timeout: Duration,
    /// SSE connection lifetime.
    pub sse_max_age: Duration,
    /// Largest request body.
    pub max_body_bytes: usize,
    /// Refuse unknown session event kinds.
    pub strict_events: bool,
    /// Where the browser package is, for /pkg/.
    pub assets_dir: std::path::PathBuf,
    /// Reads need a token: data answers are cacheable privately only.
    pub private_reads: bool,
}

/// What every handler shares.
#[derive(Clone, Debug)]
pub struct AppState {
    /// The storage.
    pub store: Store,
    /// The subscription registry, when subscriptions are on.
    pub subscriptions: Option<Arc<crate::subscriptions::Registry>>,
    /// The server's own base URL (`http://<bound address>`).
    pub base_url: Arc<str>,
    /// The settings.
    pub config: Arc<Settings>,
    /// Cancelled when the server shuts down: live reads end.
    pub shutdown: CancellationToken,
    /// Session views folded so far, reused by the next view request.
    pub(crate) views: Arc<session::ViewCache>,
    /// Live SSE pieces read from storage, shared between subscribers.
    pub(crate) pieces: Arc<pieces::SharedPieces>,
}

impl AppState {
    /// The server's base URL, for absolute links in responses.
    pub fn base_url(&self) -> &str {
        &self.base_url
    }

    /// Tells subscriptions that `path` received data.
    pub(crate) fn appended(&self, path: &str) {
        if let Some(registry) = &self.subscriptions {
            registry.on_append(self, path);
        }
    }

    /// Appends `req` and, when it wrote data (and `wakes`), tells subscriptions.
    /// With subscriptions on, both happen in a task of their own: a request whose
    /// client left after the append was sent to the writer (which commits it) still
    /// wakes them. Without, in the request's own future.
    pub(crate) async fn append(
        &self,
        req: crate::store::AppendReq,
        wakes: bool,
    ) -> Result<crate::store::AppendOk, crate::store::AppendError> {
        if self.subscriptions.is_none() {
            return self.store.append(req).await;
        }
        let state = self.clone();
        tokio::spawn(async move {
            let path = req.path.clone();
            let done = state.store.append(req).await;
            if wakes && done.as_ref().is_ok_and(|ok| !ok.duplicate) {
                state.appended(&path);
            }
            done
        })
        .await
        .unwrap_or_else(|e| Err(crate::store::AppendError::Storage(e.to_string())))
    }
}

/// Reads a request body of at most `limit` bytes (413 past it), for routes whose
/// bodies are small whatever the configured limit.
pub(crate) async fn body_bytes_up_to(
    body: axum::body::Body,
    limit: usize,
) -> Result<axum::body::Bytes, ApiError> {
    body::collect(body, limit).await
}

/// A path (or a part of one) percent-decoded, as the router decodes the paths it
/// routes by: a token's scope and a fork's source then name streams as their routes
/// do (bytes that are not UTF-8 become U+FFFD, for both alike).
pub(crate) fn path_decoded(raw: &str) -> String {
    percent_encoding::percent_decode_str(raw)
        .decode_utf8_lossy()
        .into_owned()
}

/// A path percent-decoded as the router's `Path<String>` extractor decodes it to
/// route a request: `None` when it is not UTF-8 once decoded (the router refuses it).
pub(crate) fn path_routed(raw: &str) -> Option<String> {
    percent_encoding::percent_decode_str(raw)
        .decode_utf8()
        .ok()
        .map(std::borrow::Cow::into_owned)
}

/// The current time in RFC 3339.
pub(crate) fn rfc3339_now() -> String {
    headers::rfc3339(crate::store::now_ms()).unwrap_or_default()
}

/// Builds the router; with `tokens`, every route but `/healthz` and `/` needs a
/// bearer token.
pub fn router(state: AppState, tokens: Option<Arc<auth::Tokens>>) -> Router {
    Router::new()
        .route("/v1/stream/{*path}", any(stream::route))
        .route(
            "/api/sessions/{id}/events",
            get(session::get_events).post(session::post_events),
        )
        .route("/api/sessions/{id}/stream", get(session::stream))
        .route("/api/sessions/{id}/view", get(session::view))
        .route("/api/sessions", get(session::list))
        .route("/", get(demo_page))
        .route("/pkg/{file}", get(package_file))
        .route("/healthz", get(health))
        .fallback(not_found)
        .with_state(state)
        .layer(middleware::from_fn_with_state(
            Gate::new(tokens),
            gate::pass,
        ))
}

/// `ok`, or 503 with the reason once the server has stopped writing (a failed sync).
async fn health(axum::extract::State(state): axum::extract::State<AppState>) -> Response {
    match state.store.shared().write_failure() {
        None => "ok".into_response(),
        Some(why) => ApiError::new(StatusCode::SERVICE_UNAVAILABLE, why).into_response(),
    }
}

/// The live session page.
async fn demo_page() -> axum::response::Html<&'static str> {
    axum::response::Html(include_str!("../../assets/index.html"))
}

/// A file of the browser package (flat names only; nothing outside the directory).
async fn package_file(
    axum::extract::State(state): axum::extract::State<AppState>,
    axum::extract::Path(file): axum::extract::Path<String>,
) -> Result<Response, ApiError> {
    let safe = !file.starts_with('.')
        && file
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'));
    if !safe {
        return Err(ApiError::new(StatusCode::NOT_FOUND, "no such file"));
    }
    let content_type = match file.rsplit('.').next() {
        Some("js") => "text/javascript; charset=utf-8",
        Some("wasm") => "application/wasm",
        Some("json") => "application/json",
        Some("ts") => "text/plain; charset=utf-8",
        _ => return Err(ApiError::new(StatusCode::NOT_FOUND, "no such file")),
    };
    let bytes = tokio::fs::read(state.config.assets_dir.join(&file))
        .await
        .map_err(|_| {
            ApiError::new(
                StatusCode::NOT_FOUND,
                "no such file (is the package built?)",
            )
        })?;
    let mut response = bytes.into_response();
    response
        .headers_mut()
        .insert("content-type", HeaderValue::from_static(content_type));
    response
        .headers_mut()
        .insert("cache-control", HeaderValue::from_static("no-cache"));
    Ok(response)
}

async fn not_found() -> ApiError {
    ApiError::new(StatusCode::NOT_FOUND, "no such route")
}
