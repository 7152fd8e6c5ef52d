//! What every request passes through, whether the router or the direct path
//! ([`super::direct`]) answers it: the token check, CORS preflights, and the CORS
//! and browser security headers (§12.7) on every response. Both paths call this one
//! gate, so that what it does stays the same on both.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{header, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::auth::{self, Tokens};
use super::headers;

const ALLOW_HEADERS: &str = "content-type, authorization, if-none-match, last-event-id, \
    stream-seq, stream-ttl, stream-expires-at, stream-closed, producer-id, producer-epoch, \
    producer-seq, stream-forked-from, stream-fork-offset, stream-fork-sub-offset";
const EXPOSE_HEADERS: &str = "stream-next-offset, stream-cursor, stream-up-to-date, \
    stream-closed, stream-ttl, stream-expires-at, producer-epoch, producer-seq, \
    producer-expected-seq, producer-received-seq, stream-sse-data-encoding, etag, \
    content-type, content-encoding, location, retry-after, vary";

/// The headers every response gets, named and valued once for both ways of writing
/// them ([`Gate::leave`] and [`Gate::write_plain`]).
const EVERY_RESPONSE: [(header::HeaderName, &str); 3] = [
    (header::VARY, "origin"),
    (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
    (headers::names::CROSS_ORIGIN_RESOURCE_POLICY, "cross-origin"),
];

/// The checks and headers every request and response pass through.
#[derive(Clone, Debug)]
pub(crate) struct Gate {
    /// The tokens requests must bear (none: no auth).
    tokens: Option<Arc<Tokens>>,
}

/// What a request told the gate that its response needs.
pub(crate) struct Entry {
    /// The origin a browser named.
    origin: Option<HeaderValue>,
    /// It was a CORS preflight.
    preflight: bool,
}

impl Entry {
    /// What an append the lean layer reads without a request tells, once
    /// [`Gate::lets_append`] let it in: it named no origin and is no preflight.
    pub(crate) fn plain() -> Entry {
        Entry {
            origin: None,
            preflight: false,
        }
    }
}

impl Gate {
    /// A gate checking `tokens` (none: every request passes).
    pub(crate) fn new(tokens: Option<Arc<Tokens>>) -> Gate {
        Gate { tokens }
    }

    /// Lets `request` in, noting what its response needs; or the response that
    /// answers it here instead (a preflight's, or a refusal: a missing or wrong token),
    /// boxed: the way in stays small.
    pub(crate) fn enter(&self, request: &Request) -> Result<Entry, Box<Response>> {
        let entry = Entry {
            origin: request.headers().get(header::ORIGIN).cloned(),
            preflight: request.method() == Method::OPTIONS,
        };
        let checked = match &self.tokens {
            _ if entry.preflight => Err(StatusCode::NO_CONTENT.into_response()),
            // The session API's errors are JSON, its refusals too.
            Some(tokens) => auth::allowed(tokens, request).map_err(|e| {
                if request.uri().path().starts_with("/api/") {
                    super::session::SessionError::from(e).into_response()
                } else {
                    e.into_response()
                }
            }),
            None => Ok(()),
        };
        match checked {
            Ok(()) => Ok(entry),
            Err(response) => Err(Box::new(Gate::leave(&entry, response))),
        }
    }

    /// Whether [`Gate::enter`] would refuse `request` for its credentials (a
    /// preflight is not refused). Nothing to check without tokens.
    pub(crate) fn refuses(&self, request: &Request) -> bool {
        match &self.tokens {
            Some(tokens) if request.method() != Method::OPTIONS => {
                auth::allowed(tokens, request).is_err()
            }
            _ => false,
        }
    }

    /// Adds to `response` the headers the request's `entry` calls for: the CORS
    /// headers for a request that named its origin (and the preflight's own), and the
    /// §12.7 headers to every response.
    pub(crate) fn leave(entry: &Entry, mut response: Response) -> Response {
        let hm = response.headers_mut();
        // Only a browser's cross-origin request needs the CORS headers, and it always
        // names its origin; other clients are spared parsing them. `Vary` tells caches
        // that the answer depends on the origin (and `nosniff` and the resource policy
        // are §12.7's).
        for (name, value) in EVERY_RESPONSE {
            hm.insert(name, HeaderValue::from_static(value));
        }
        if let Some(origin) = &entry.origin {
            hm.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, origin.clone());
            hm.insert(
                header::ACCESS_CONTROL_EXPOSE_HEADERS,
                HeaderValue::from_static(EXPOSE_HEADERS),
            );
        }
        if entry.preflight {
            hm.insert(
                header::ACCESS_CONTROL_ALLOW_METHODS,
                HeaderValue::from_static("GET, HEAD, POST, PUT, DELETE, OPTIONS"),
            );
            hm.insert(
                header::ACCESS_CONTROL_ALLOW_HEADERS,
                HeaderValue::from_static(ALLOW_HEADERS),
            );
            hm.insert(
                header::ACCESS_CONTROL_MAX_AGE,
                HeaderValue::from_static("86400"),
            );
        }
        response
    }

    /// Whether an append to the stream at `stream` (see [`auth::allows_append`]) that
    /// names no origin and whose `Authorization` header's value is `authorization`
    /// passes: as [`Gate::enter`] would let it in. Its answer then takes the headers
    /// [`Gate::write_plain`] writes.
    pub(crate) fn lets_append(&self, stream: &str, authorization: Option<&[u8]>) -> bool {
        self.tokens
            .as_ref()
            .is_none_or(|tokens| auth::allows_append(tokens, stream, authorization))
    }

    /// Writes the header lines [`Gate::leave`] adds to the answer to a request that
    /// named no origin (each line ended).
    pub(crate) fn write_plain(out: &mut Vec<u8>) {
        for (name, value) in EVERY_RESPONSE {
            headers::write_header_line(out, &name, value.as_bytes());
        }
    }

    /// Gives `request` its token's [`auth::Scope`] when what it asks for must keep to
    /// it beyond its own path: a list of streams (which shows only what the token may
    /// read), and a subscription (whose links, by name or pattern, and wake stream
    /// must lie in the scope of the token that made or changed it).
    pub(crate) fn note_scope(&self, request: &mut Request) {
        // (Without tokens, every request: nothing to look at.)
        let Some(tokens) = &self.tokens else {
            return;
        };
        let path = request.uri().path();
        if path != "/api/sessions" && !under_subscriptions(path) {
            return;
        }
        if let Some(scope) = auth::scope(tokens, request) {
            request.extensions_mut().insert(scope);
        }
    }
}

/// Whether `path` (as requested) is one of the server's own stream routes
/// (`/v1/stream/__ds/...`, subscriptions among them) once percent-decoded, as the
/// stream routes read it: `__ds%2Fsubscriptions%2Fx` is a subscription too.
fn under_subscriptions(path: &str) -> bool {
    let Some(rest) = path.strip_prefix("/v1/stream/") else {
        return false;
    };
    rest.starts_with("__ds/")
        || (rest.contains('%')
            && percent_encoding::percent_decode_str(rest)
                .decode_utf8_lossy()
                .starts_with("__ds/"))
}

/// The gate as the router's middleware (see [`Gate::note_scope`] for the scope a
/// request is given).
pub(super) async fn pass(State(gate): State<Gate>, mut request: Request, next: Next) -> Response {
    gate.note_scope(&mut request);
    match gate.enter(&request) {
        // One await point: the future keeps room for one call of the rest, not two.
        Ok(entry) => Gate::leave(&entry, next.run(request).await),
        Err(response) => *response,
    }
}

#[cfg(test)]
mod tests {
    use gapless_core::wire::headers as wire;

    use super::{ALLOW_HEADERS, EXPOSE_HEADERS};

    fn listed(list: &str, name: &str) -> bool {
        list.split(',').any(|n| n.trim() == name)
    }

    #[test]
    fn browsers_may_send_and_read_every_protocol_header() {
        for sent in [
            wire::CONTENT_TYPE,
            wire::STREAM_SEQ,
            wire::STREAM_TTL,
            wire::STREAM_EXPIRES_AT,
            wire::STREAM_CLOSED,
            wire::STREAM_FORKED_FROM,
            wire::STREAM_FORK_OFFSET,
            wire::STREAM_FORK_SUB_OFFSET,
            wire::PRODUCER_ID,
            wire::PRODUCER_EPOCH,
            wire::PRODUCER_SEQ,
        ] {
            assert!(listed(ALLOW_HEADERS, sent), "{sent} not allowed");
        }
        for read in [
            wire::CONTENT_TYPE,
            wire::STREAM_NEXT_OFFSET,
            wire::STREAM_UP_TO_DATE,
            wire::STREAM_CLOSED,
            wire::STREAM_CURSOR,
            wire::STREAM_TTL,
            wire::STREAM_EXPIRES_AT,
            wire::PRODUCER_EPOCH,
            wire::PRODUCER_SEQ,
            wire::PRODUCER_EXPECTED_SEQ,
            wire::PRODUCER_RECEIVED_SEQ,
            wire::SSE_DATA_ENCODING,
            wire::RETRY_AFTER,
        ] {
            assert!(listed(EXPOSE_HEADERS, read), "{read} not exposed");
        }
    }
}
