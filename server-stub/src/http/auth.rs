//! Bearer-token authorization: tokens from a file, each allowed to read, or read and
//! write, the streams under some paths. Tokens never reach the logs.

use std::collections::HashMap;
use std::path::Path;

use axum::extract::Request;
use axum::http::{Method, StatusCode};

use super::error::ApiError;

/// What a token may do.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Access {
    /// GET and HEAD.
    Read,
    /// Every method.
    Write,
}

/// One token's grant.
#[derive(Clone, Debug)]
struct Grant {
    access: Access,
    prefixes: Vec<Prefix>,
}

/// The streams one entry of a grant covers.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Prefix {
    /// The stream at this path and those under it (`sessions/s1` covers `sessions/s1`
    /// and `sessions/s1/x`, not `sessions/s10`); an empty one, every stream.
    Path(String),
    /// Every stream whose path starts with this, as written (`sessions/s1*`).
    Raw(String),
}

impl Prefix {
    /// Reads one entry of a token file's list: `*` (or `/`) for every stream, a
    /// trailing `*` for a prefix as written, else a path.
    fn parse(entry: &str) -> Prefix {
        let p = entry.trim().trim_start_matches('/');
        match p.strip_suffix('*') {
            Some(raw) => Prefix::Raw(raw.to_owned()),
            None => Prefix::Path(p.to_owned()),
        }
    }

    /// Whether it covers the stream at `path`.
    fn covers(&self, path: &str) -> bool {
        match self {
            Prefix::Raw(p) => path.starts_with(p.as_str()),
            Prefix::Path(p) => match path.strip_prefix(p.as_str()) {
                Some(rest) => {
                    p.is_empty() || p.ends_with('/') || rest.is_empty() || rest.starts_with('/')
                }
                None => false,
            },
        }
    }
}

/// A token as the server keeps it: its SHA-256 digest. A token is looked up by its
/// digest, so how long a lookup's comparisons take tells nothing of any token, and no
/// token sits in the server's memory, nor in any `Debug` output, as it was given.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) struct TokenDigest([u8; 32]);

impl TokenDigest {
    /// The digest of `token`.
    pub(crate) fn of(token: &str) -> TokenDigest {
        let digest = ring::digest::digest(&ring::digest::SHA256, token.as_bytes());
        let mut bytes = [0u8; 32];
        bytes.copy_from_slice(digest.as_ref());
        TokenDigest(bytes)
    }
}

impl std::fmt::Debug for TokenDigest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TokenDigest(..)")
    }
}

/// The tokens a server accepts.
#[derive(Clone, Debug, Default)]
pub struct Tokens {
    grants: HashMap<TokenDigest, Grant>,
}

/// The token file could not be used.
#[derive(Debug, thiserror::Error)]
pub enum TokensError {
    /// It could not be read.
    #[error("cannot read the token file {path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// The cause.
        source: std::io::Error,
    },
    /// A line is malformed.
    #[error("token file line {line}: {reason}")]
    Syntax {
        /// The 1-based line number.
        line: usize,
        /// What is wrong (the token itself is never quoted).
        reason: String,
    },
}

impl Tokens {
    /// Reads a token file: one `<token> <read|write> <path>[,<path>...]` per line;
    /// `#` starts a comment. A path covers its stream and those under it; `*` (or
    /// `/`) covers every stream, and a path ending in `*` every stream whose path
    /// starts with what precedes it.
    pub fn load(path: &Path) -> Result<Tokens, TokensError> {
        let text = std::fs::read_to_string(path).map_err(|source| TokensError::Io {
            path: path.display().to_string(),
            source,
        })?;
        Self::parse(&text)
    }

    /// Parses the text of a token file.
    pub fn parse(text: &str) -> Result<Tokens, TokensError> {
        let mut grants = HashMap::new();
        for (i, line) in text.lines().enumerate() {
            let line = line.split('#').next().unwrap_or("").trim();
            if line.is_empty() {
                continue;
            }
            let syntax = |reason: &str| TokensError::Syntax {
                line: i + 1,
                reason: reason.to_owned(),
            };
            let mut parts = line.split_whitespace();
            let (Some(token), Some(access), Some(prefixes), None) =
                (parts.next(), parts.next(), parts.next(), parts.next())
            else {
                return Err(syntax("expected `<token> <read|write> <prefixes>`"));
            };
            let access = match access {
                "read" => Access::Read,
                "write" | "read-write" => Access::Write,
                _ => return Err(syntax("access must be read or write")),
            };
            // An empty entry (a comma too many) would read as every stream.
            if prefixes.split(',').any(|p| p.trim().is_empty()) {
                return Err(syntax(
                    "an empty path in the list (`*` covers every stream)",
                ));
            }
            let prefixes = prefixes.split(',').map(Prefix::parse).collect();
            // A second line for one token would silently replace the first's grant.
            if grants
                .insert(TokenDigest::of(token), Grant { access, prefixes })
                .is_some()
            {
                return Err(syntax(
                    "this token is listed already (one line per token: list its prefixes \
                     together, comma-separated)",
                ));
            }
        }
        Ok(Tokens { grants })
    }

    /// Checks a request: `Ok` or the 401/403 to answer.
    fn check(
        &self,
        token: Option<&str>,
        method: &Method,
        resource: Option<&str>,
    ) -> Result<(), ApiError> {
        let Some(grant) = token.and_then(|t| self.grants.get(&TokenDigest::of(t))) else {
            return Err(ApiError::new(
                StatusCode::UNAUTHORIZED,
                "a valid bearer token is required",
            )
            .with(axum::http::header::WWW_AUTHENTICATE, "Bearer"));
        };
        let writes = !matches!(*method, Method::GET | Method::HEAD);
        if writes && grant.access == Access::Read {
            return Err(ApiError::new(
                StatusCode::FORBIDDEN,
                "this token may only read",
            ));
        }
        let allowed = match resource {
            Some(path) => grant.prefixes.iter().any(|p| p.covers(path)),
            None => true,
        };
        if !allowed {
            return Err(ApiError::new(
                StatusCode::FORBIDDEN,
                "this token does not cover this stream",
            ));
        }
        Ok(())
    }
}

/// The stream path a request addresses, for scope checks.
fn resource(path: &str) -> Option<String> {
    if let Some(p) = path.strip_prefix("/v1/stream/") {
        return Some(super::path_decoded(p));
    }
    let rest = path.strip_prefix("/api/sessions/")?;
    let id = rest.split('/').next()?;
    Some(format!("sessions/{}", super::path_decoded(id)))
}

/// Whether `request` may pass: an open path, or a token whose scope covers it.
pub(super) fn allowed(tokens: &Tokens, request: &Request) -> Result<(), ApiError> {
    let path = request.uri().path();
    let open = request.method() == Method::OPTIONS
        || path == "/healthz"
        || path == "/"
        || path.starts_with("/assets/")
        || (request.method() == Method::POST && carries_callback_token(path))
        // The keys webhook receivers check signatures with (they hold no token).
        || (request.method() == Method::GET && path == "/v1/stream/__ds/jwks.json");
    if open {
        return Ok(());
    }
    let resource = resource(path);
    let token = bearer(request);
    tokens.check(token, request.method(), resource.as_deref())?;
    // A fork reads its source: the token must cover reading that too, or a fork in
    // its own scope would copy another's data.
    let source = request
        .headers()
        .get(super::headers::names::STREAM_FORKED_FROM)
        .map(|v| super::stream::stream_path_of(&String::from_utf8_lossy(v.as_bytes())));
    match source {
        Some(source) => tokens.check(token, &Method::GET, Some(&source)),
        None => Ok(()),
    }
}

/// Whether `path` is a subscription's callback, ack or release: its bearer is the
/// callback token the server issued with the wake (checked there), not a token of the
/// token file.
fn carries_callback_token(path: &str) -> bool {
    path.strip_prefix("/v1/stream/__ds/subscriptions/")
        .and_then(|rest| rest.split_once('/'))
        .is_some_and(|(id, op)| {
            !id.is_empty() && !id.contains('/') && matches!(op, "callback" | "ack" | "release")
        })
}

/// The bearer token `request` carries.
fn bearer(request: &Request) -> Option<&str> {
    bearer_of(
        request
            .headers()
            .get(axum::http::header::AUTHORIZATION)
            .map(|v| v.as_bytes()),
    )
}

/// The bearer token an `Authorization` header's value (`authorization`) carries (the
/// scheme's name in any case, RFC 9110, 11.1).
pub(crate) fn bearer_of(authorization: Option<&[u8]>) -> Option<&str> {
    let value = authorization.and_then(super::headers::visible)?;
    let scheme = value.get(..7)?;
    scheme
        .eq_ignore_ascii_case("bearer ")
        .then(|| value[7..].trim())
}

/// Whether an append to the stream at `stream` (a path as requested after
/// `/v1/stream/`, without percent-escapes, not a server route of its own: see
/// `accept::lean_append_path`) without a `Stream-Forked-From` header, whose
/// `Authorization` header's value is `authorization`, passes [`allowed`]: all it
/// checks of such a request.
pub(super) fn allows_append(tokens: &Tokens, stream: &str, authorization: Option<&[u8]>) -> bool {
    tokens
        .check(bearer_of(authorization), &Method::POST, Some(stream))
        .is_ok()
}

/// The stream paths a request's token covers, for a request that lists streams (a
/// list shows only what its token may read).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Scope(Vec<Prefix>);

impl Scope {
    /// Whether the token covers the stream at `path`.
    pub(crate) fn covers(&self, path: &str) -> bool {
        self.0.iter().any(|p| p.covers(path))
    }

    /// Whether the token covers every stream (`*`).
    pub(crate) fn covers_all(&self) -> bool {
        self.0
            .iter()
            .any(|p| matches!(p, Prefix::Path(p) | Prefix::Raw(p) if p.is_empty()))
    }

    /// Whether a request with this scope may use what a token with `other` made: the
    /// same scope, or every stream.
    pub(crate) fn may_use(&self, other: &Scope) -> bool {
        self == other || self.covers_all()
    }
}

/// The scope of `request`'s token, if it has a valid one.
pub(super) fn scope(tokens: &Tokens, request: &Request) -> Option<Scope> {
    let grant = tokens.grants.get(&TokenDigest::of(bearer(request)?))?;
    Some(Scope(grant.prefixes.clone()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_kept_as_digests_and_never_shown() {
        let tokens = Tokens::parse("s3cret read *\n").expect("parse");
        assert!(!format!("{tokens:?}").contains("s3cret"), "{tokens:?}");
        let get = Method::GET;
        assert!(tokens.check(Some("s3cret"), &get, Some("a")).is_ok());
        assert!(tokens.check(Some("s3cre"), &get, Some("a")).is_err());
        assert!(tokens.check(Some("s3crett"), &get, Some("a")).is_err());
    }

    #[test]
    fn scopes_and_access() {
        let tokens = Tokens::parse("# comment\nr1 read sessions/,public/\nw1 write *\n").unwrap();
        assert!(tokens
            .check(Some("r1"), &Method::GET, Some("sessions/a"))
            .is_ok());
        assert_eq!(
            tokens
                .check(Some("r1"), &Method::POST, Some("sessions/a"))
                .unwrap_err()
                .status,
            StatusCode::FORBIDDEN
        );
        assert_eq!(
            tokens
                .check(Some("r1"), &Method::GET, Some("private/x"))
                .unwrap_err()
                .status,
            StatusCode::FORBIDDEN
        );
        assert_eq!(
            tokens
                .check(None, &Method::GET, Some("sessions/a"))
                .unwrap_err()
                .status,
            StatusCode::UNAUTHORIZED
        );
        assert_eq!(
            tokens
                .check(Some("nope"), &Method::GET, None)
                .unwrap_err()
                .status,
            StatusCode::UNAUTHORIZED
        );
        assert!(tokens
            .check(Some("w1"), &Method::PUT, Some("anything"))
            .is_ok());
        assert!(Tokens::parse("t maybe x").is_err());
        for path in [
            "/v1/stream/__ds/subscriptions/s1/callback",
            "/v1/stream/__ds/subscriptions/s1/ack",
            "/v1/stream/__ds/subscriptions/s1/release",
        ] {
            assert!(super::carries_callback_token(path), "{path}");
        }
        for path in [
            "/v1/stream/__ds/subscriptions/s1",
            "/v1/stream/__ds/subscriptions/s1/claim",
            "/v1/stream/__ds/subscriptions//ack",
            "/v1/stream/x/ack",
        ] {
            assert!(!super::carries_callback_token(path), "{path}");
        }
        for empty in ["t read sessions/s1,", "t read ,x", "t read a,,b"] {
            assert!(Tokens::parse(empty).is_err(), "{empty}");
        }
        // One line per token: a second would replace the first's grant unseen.
        let twice = Tokens::parse("t read sessions/\nu write x\nt write sessions/t\n");
        assert!(
            matches!(twice, Err(TokensError::Syntax { line: 3, .. })),
            "{twice:?}"
        );
        // The scheme's name in any case (RFC 9110, 11.1); nothing else is a bearer.
        for (value, token) in [
            ("Bearer t", Some("t")),
            ("bearer t", Some("t")),
            ("BEARER  t ", Some("t")),
            ("Basic t", None),
            ("Bearer", None),
            ("Bearert", None),
        ] {
            assert_eq!(bearer_of(Some(value.as_bytes())), token, "{value:?}");
        }
        // A path covers its stream and those under it, not its longer namesakes; a
        // trailing `*` covers a prefix as written.
        let tokens = Tokens::parse("p read /sessions/s1\nq read sessions/s1*\n").unwrap();
        let reads = |token, path| tokens.check(Some(token), &Method::GET, Some(path)).is_ok();
        assert!(reads("p", "sessions/s1") && reads("p", "sessions/s1/x"));
        assert!(!reads("p", "sessions/s10") && !reads("p", "sessions/s"));
        assert!(reads("q", "sessions/s10") && reads("q", "sessions/s1"));
        assert!(!reads("q", "sessions/s2"));
        assert_eq!(
            resource("/api/sessions/s1/events").as_deref(),
            Some("sessions/s1")
        );
    }
}
