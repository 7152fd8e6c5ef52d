//! Stream requests answered without the router: the lean HTTP layer hands a request
//! for `/v1/stream/{path}` here, which finds its path and query as the router's
//! extractors do, passes it through the same gate as the router's middleware (token,
//! headers) and answers it with the same handler, sparing each request the router's
//! matching and boxing. Anything it would not find exactly as the router does goes to
//! the router.

use std::future::Future;
use std::sync::Arc;

use axum::extract::Request;
use axum::http::{header, HeaderValue, Method};
use axum::response::{IntoResponse, Response};
use futures::future::{Either, FutureExt};
use http_body::Body as _;

use super::gate::Entry;
use super::headers::Fields;
use super::{auth, stream, AppState, Gate};

/// Where stream routes live.
const STREAM_PREFIX: &str = "/v1/stream/";

/// What the router's extractors find in a stream request: the stream's path
/// (percent-decoded, as `Path<String>` finds it) and the query's pairs (as
/// `Query<Vec<(String, String)>>` finds them).
#[derive(Debug)]
pub(crate) struct Target {
    path: String,
    query: Vec<(String, String)>,
}

impl Target {
    /// The target of `request`, when it is for a stream and its path and query read as
    /// the router's extractors read them; `None` for what the router must answer (a
    /// preflight, any other route, a path that is not UTF-8 once decoded, a query the
    /// router refuses).
    pub(crate) fn of(request: &Request) -> Option<Target> {
        if request.method() == Method::OPTIONS {
            return None;
        }
        let rest = request.uri().path().strip_prefix(STREAM_PREFIX)?;
        if rest.is_empty() {
            return None;
        }
        let path = super::path_routed(rest)?;
        let query = serde_urlencoded::from_str(request.uri().query().unwrap_or_default()).ok()?;
        Some(Target { path, query })
    }
}

/// The stream routes' handler and gate, as the router has them.
#[derive(Clone, Debug)]
pub(crate) struct Direct {
    state: AppState,
    gate: Gate,
}

impl Direct {
    /// The handler's state and the tokens the gate checks (none: no auth).
    pub(crate) fn new(state: AppState, tokens: Option<Arc<auth::Tokens>>) -> Direct {
        Direct {
            state,
            gate: Gate::new(tokens),
        }
    }

    /// The answer to a request whose head announces a body of `length` bytes, when
    /// it is refused before any of it is read: past the body limit (413), or by the
    /// gate (a missing or wrong token: 401, 403); whatever route it is for, as that
    /// route would answer it. `None` for the others (the common case costs a compare
    /// and, with tokens, the token check).
    pub(crate) fn refusal(&self, request: &Request, length: usize) -> Option<Response> {
        let limit = self.state.config.max_body_bytes;
        if length <= limit && !self.gate.refuses(request) {
            return None;
        }
        let entry = match self.gate.enter(request) {
            Ok(entry) => entry,
            Err(refused) => return Some(with_length(*refused)),
        };
        let too_large = super::body::too_large(limit);
        let response = if request.uri().path().starts_with("/api/") {
            super::session::SessionError::from(too_large).into_response()
        } else {
            too_large.into_response()
        };
        Some(with_length(Gate::leave(&entry, response)))
    }

    /// Answers `request` for `target` (see [`Target::of`]) as the router would. The
    /// gate is passed before the answer's future is made, and that future is the
    /// handler's with what follows it mapped on (not awaited in a future of its own,
    /// which would hold it twice over).
    pub(crate) fn answer(
        &self,
        target: Target,
        mut request: Request,
    ) -> impl Future<Output = Response> + Send + '_ {
        let head = request.method() == Method::HEAD;
        self.gate.note_scope(&mut request);
        let answer = match self.gate.enter(&request) {
            Ok(entry) => Either::Left(
                stream::answer(&self.state, target.path, target.query, request)
                    .map(move |response| Gate::leave(&entry, response)),
            ),
            Err(response) => Either::Right(std::future::ready(*response)),
        };
        answer.map(move |mut response| {
            // As the server around the router does: the length of a body of known
            // length, and no body in answer to a HEAD.
            set_content_length(&mut response);
            if head {
                *response.body_mut() = axum::body::Body::empty();
            }
            response
        })
    }
}

impl Direct {
    /// The largest body of an append the lean HTTP layer may read without a request
    /// (see [`Direct::append`]): the body limit (a larger one is refused from a
    /// request's head).
    pub(crate) fn lean_appends(&self) -> usize {
        self.state.config.max_body_bytes
    }

    /// Whether an append to the stream at `stream` that names no origin, whose
    /// `Authorization` header's value is `authorization`, passes the gate (else it is
    /// refused from a request's head, as any other).
    pub(crate) fn lets_append(&self, stream: &str, authorization: Option<&[u8]>) -> bool {
        self.gate.lets_append(stream, authorization)
    }

    /// Answers an append to the stream at `path` (as [`Target::of`] finds it) that
    /// named no origin and that [`Direct::lets_append`], whose headers are `fields`
    /// and whole body `body`, read by the lean HTTP layer within
    /// [`Direct::lean_appends`]: the head of a stored
    /// append's answer, as the handler and the gate would have it (its status line
    /// and header lines; the date and the blank line are the caller's), or any other
    /// answer as the router's.
    pub(crate) async fn append(
        &self,
        path: String,
        fields: &(impl Fields + ?Sized),
        body: &[u8],
    ) -> Result<Vec<u8>, Response> {
        let appended = match stream::AppendHead::of(fields) {
            Ok(head) => stream::append_bytes(&self.state, path, head, body).await,
            Err(e) => Err(e),
        };
        match appended {
            Ok(appended) => {
                let mut head = Vec::with_capacity(256);
                appended.write_head(&mut head);
                Gate::write_plain(&mut head);
                if !appended.lengthless() {
                    head.extend_from_slice(b"content-length: 0\r\n");
                }
                Ok(head)
            }
            Err(e) => Err(with_length(Gate::leave(&Entry::plain(), e.into_response()))),
        }
    }
}

/// `response` with its length (see [`set_content_length`]).
fn with_length(mut response: Response) -> Response {
    set_content_length(&mut response);
    response
}

/// Gives a response whose body's length is known a `Content-Length`, as the server
/// around the router does for every response the router returns.
fn set_content_length(response: &mut Response) {
    if response.headers().contains_key(header::CONTENT_LENGTH) {
        return;
    }
    if let Some(len) = response.body().size_hint().exact() {
        response
            .headers_mut()
            .insert(header::CONTENT_LENGTH, HeaderValue::from(len));
    }
}

#[cfg(test)]
mod tests {
    use axum::body::Body;
    use axum::http::{HeaderMap, StatusCode};
    use tower::ServiceExt;

    use super::*;
    use crate::config::Config;

    /// A server's state in memory, with tokens `w` (writes anything) and `r` (reads
    /// `public/`), answering through the router and directly.
    fn server() -> (axum::Router, Direct) {
        let tokens = Arc::new(auth::Tokens::parse("w write *\nr read public/\n").expect("tokens"));
        let config = Config::for_tests();
        let (state, _) = crate::build_state(&config, config.bind).expect("state");
        let direct = Direct::new(state.clone(), Some(Arc::clone(&tokens)));
        (super::super::router(state, Some(tokens)), direct)
    }

    /// A request's method, URI, headers and body.
    type Case<'a> = (&'a str, &'a str, &'a [(&'a str, &'a str)], &'a str);

    fn request(method: &str, uri: &str, headers: &[(&str, &str)], body: &str) -> Request {
        let mut builder = Request::builder().method(method).uri(uri);
        for (name, value) in headers {
            builder = builder.header(*name, *value);
        }
        builder.body(Body::from(body.to_owned())).expect("request")
    }

    /// Status, headers (but the date) and body; the stream's epoch (the time it was
    /// created, which differs between the two servers) written `E` in offsets and
    /// ETags.
    async fn parts(response: Response) -> (StatusCode, HeaderMap, Vec<u8>) {
        let (parts, body) = response.into_parts();
        let mut headers = parts.headers;
        headers.remove(header::DATE);
        for value in headers.values_mut() {
            let text = value.to_str().map(without_epochs);
            if let Ok(Ok(text)) = text.map(|t| HeaderValue::from_str(&t)) {
                *value = text;
            }
        }
        let body = axum::body::to_bytes(body, usize::MAX).await.expect("body");
        (parts.status, headers, body.to_vec())
    }

    /// `text` with each epoch (16 digits before `_`, or digits between `.` and `:`
    /// in an ETag) written `E`.
    fn without_epochs(text: &str) -> String {
        let mut out = String::new();
        let mut digits = String::new();
        let mut after_dot = false;
        for c in text.chars() {
            if c.is_ascii_digit() {
                digits.push(c);
                continue;
            }
            let epoch = (c == '_' && digits.len() == 16) || (c == ':' && after_dot);
            out.push_str(if epoch { "E" } else { &digits });
            digits.clear();
            after_dot = c == '.';
            out.push(c);
        }
        out.push_str(&digits);
        out
    }

    #[tokio::test]
    async fn stream_requests_are_answered_as_the_router_answers_them() {
        let w = ("authorization", "Bearer w");
        let r = ("authorization", "Bearer r");
        let json = ("content-type", "application/json");
        let origin = ("origin", "https://board.example");
        let cases: &[Case] = &[
            ("PUT", "/v1/stream/public/a%20b", &[w, json], ""),
            (
                "POST",
                "/v1/stream/public/a%20b",
                &[w, json, origin],
                r#"[{"i":1},{"i":2}]"#,
            ),
            (
                "POST",
                "/v1/stream/public/a%20b",
                &[w, ("content-type", "text/plain")],
                "x",
            ),
            ("POST", "/v1/stream/public/a%20b", &[w, json], "{not json"),
            ("GET", "/v1/stream/public/a%20b?offset=-1", &[r, origin], ""),
            (
                "GET",
                "/v1/stream/public/a%20b?offset=-1&offset=0",
                &[r],
                "",
            ),
            ("GET", "/v1/stream/public/a%20b?offset=nonsense", &[r], ""),
            ("GET", "/v1/stream/public/a%20b?offset=%FF", &[r], ""),
            ("HEAD", "/v1/stream/public/a%20b", &[r], ""),
            ("GET", "/v1/stream/public/a%20b?offset=-1", &[], ""),
            (
                "GET",
                "/v1/stream/public/a%20b?offset=-1",
                &[("authorization", "Bearer x")],
                "",
            ),
            ("POST", "/v1/stream/public/a%20b", &[r, json], "[]"),
            ("PATCH", "/v1/stream/public/a%20b", &[w], ""),
            ("GET", "/v1/stream/private/none?offset=-1", &[w], ""),
            ("DELETE", "/v1/stream/public/a%20b", &[w], ""),
            ("HEAD", "/v1/stream/public/a%20b", &[w], ""),
        ];
        let (router, _) = server();
        let (_, direct) = server();
        for &(method, uri, headers, body) in cases {
            let routed = router
                .clone()
                .oneshot(request(method, uri, headers, body))
                .await
                .expect("infallible");
            let request = request(method, uri, headers, body);
            let Some(target) = Target::of(&request) else {
                panic!("{method} {uri} is not answered directly");
            };
            let answered = direct.answer(target, request).await;
            let (routed, answered) = (parts(routed).await, parts(answered).await);
            assert_eq!(answered, routed, "{method} {uri}");
        }
    }

    #[test]
    fn an_append_is_let_in_without_a_request_as_the_gate_lets_its_request_in() {
        let (_, direct) = server();
        let bearer = |t: &'static str| Some(t.as_bytes());
        for (stream, authorization, lets) in [
            ("public/a", bearer("Bearer w"), true),
            ("a/b", bearer("bearer w"), true),
            ("public/a", bearer("Bearer r"), false),
            ("public/a", bearer("Bearer x"), false),
            ("public/a", bearer("Basic dzp3"), false),
            ("public/a", None, false),
        ] {
            assert_eq!(
                direct.lets_append(stream, authorization),
                lets,
                "{stream} {authorization:?}"
            );
        }
        let config = Config::for_tests();
        let (state, _) = crate::build_state(&config, config.bind).expect("state");
        let scoped = auth::Tokens::parse("p write public/\n").expect("tokens");
        let scoped = Direct::new(state.clone(), Some(Arc::new(scoped)));
        assert!(
            scoped.lets_append("public/a", bearer("Bearer p")),
            "in its scope"
        );
        assert!(
            !scoped.lets_append("private/a", bearer("Bearer p")),
            "out of it"
        );
        let open = Direct::new(state, None);
        assert!(open.lets_append("a", None), "no tokens: every append");
    }

    #[tokio::test]
    async fn what_the_router_must_answer_goes_back_to_it() {
        for (method, uri) in [
            ("OPTIONS", "/v1/stream/a"),
            ("GET", "/v1/stream/"),
            ("GET", "/v1/stream/%FF"),
            ("GET", "/api/sessions/a/events"),
            ("GET", "/healthz"),
        ] {
            assert!(
                Target::of(&request(method, uri, &[], "")).is_none(),
                "{method} {uri}"
            );
        }
    }
}
