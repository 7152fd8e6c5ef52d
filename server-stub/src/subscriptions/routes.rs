//! The HTTP side of subscriptions: `/v1/stream/__ds/jwks.json` and
//! `/v1/stream/__ds/subscriptions/{id}[/streams[/{path}]|/callback|/claim|/ack|/release]`.

use std::collections::BTreeSet;
use std::sync::Arc;

use axum::body::Body;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::{json, Value};

use super::{listing, pending, serialize, tail_of, Kind, Link, Registry, Sub};
use crate::http::auth::Scope;
use crate::http::AppState;

/// The largest body a subscription route reads (a subscription's definition, a
/// callback's acknowledgement): 64 KiB.
const MAX_SUBSCRIPTION_BODY: usize = 64 * 1024;
use crate::store::ReadFrom;

/// A subscription API error: `{"error":{"code","message",...}}`.
fn error(status: StatusCode, code: &str, message: &str) -> Response {
    (
        status,
        Json(json!({"error": {"code": code, "message": message}})),
    )
        .into_response()
}

fn invalid(message: &str) -> Response {
    error(StatusCode::BAD_REQUEST, "INVALID_REQUEST", message)
}

fn not_found() -> Response {
    error(
        StatusCode::NOT_FOUND,
        "SUBSCRIPTION_NOT_FOUND",
        "no such subscription",
    )
}

/// Dispatches `rest` (the path after `__ds/`). `scope`: what the request's token
/// covers (none without tokens), which a subscription it makes or changes keeps to.
pub(crate) async fn route(
    state: &AppState,
    method: Method,
    rest: &str,
    headers: &HeaderMap,
    scope: Option<Scope>,
    body: Body,
) -> Response {
    let Some(registry) = state.subscriptions.clone() else {
        return not_found();
    };
    if rest == "jwks.json" {
        if method != Method::GET {
            return error(
                StatusCode::METHOD_NOT_ALLOWED,
                "INVALID_REQUEST",
                "GET only",
            );
        }
        let mut r = Json(registry.signer.jwks()).into_response();
        r.headers_mut().insert(
            "content-type",
            HeaderValue::from_static("application/jwk-set+json"),
        );
        r.headers_mut().insert(
            "cache-control",
            HeaderValue::from_static("public, max-age=300"),
        );
        return r;
    }
    let Some(rest) = rest.strip_prefix("subscriptions/") else {
        return not_found();
    };
    let (id, tail) = rest.split_once('/').unwrap_or((rest, ""));
    let id = id.to_owned();
    // Read before the subscription is looked up or its token checked (a callback
    // carries its own), so kept small: a body within the stream limit, parsed whole,
    // could take some twenty times its size.
    let bytes = match crate::http::body_bytes_up_to(body, MAX_SUBSCRIPTION_BODY).await {
        Ok(b) => b,
        Err(e) => return e.into_response(),
    };
    let body = if bytes.is_empty() {
        Value::Object(Default::default())
    } else {
        match serde_json::from_slice(&bytes) {
            Ok(v) => v,
            Err(e) => return invalid(&format!("the body is not JSON: {e}")),
        }
    };
    // Another token's subscription is not there for this one (but for a token of
    // every stream): a callback, ack or release carries the wake's own token instead.
    if !matches!(tail, "callback" | "ack" | "release") {
        let subs = registry.lock();
        if subs
            .get(&id)
            .is_some_and(|sub| !usable(scope.as_ref(), sub))
        {
            return if method == Method::PUT {
                already_exists()
            } else {
                not_found()
            };
        }
    }
    match (method, tail) {
        (Method::PUT, "") => put(state, &registry, &id, &body, scope),
        (Method::GET, "") => {
            let subs = registry.lock();
            match subs.get(&id) {
                Some(s) => Json(serialize(state, s, &registry.signer)).into_response(),
                None => not_found(),
            }
        }
        (Method::DELETE, "") => {
            registry.lock().remove(&id);
            registry.forget_tokens(&id, None);
            StatusCode::NO_CONTENT.into_response()
        }
        (Method::POST, "streams") => add_streams(state, &registry, &id, &body, scope.as_ref()),
        (Method::DELETE, t) if t.starts_with("streams/") => {
            let path = t["streams/".len()..].trim_matches('/').to_owned();
            let mut subs = registry.lock();
            if let Some(s) = subs.get_mut(&id) {
                if let Some(link) = s.links.get_mut(&path) {
                    link.explicit = false;
                    if !link.glob {
                        s.links.remove(&path);
                    }
                }
            }
            StatusCode::NO_CONTENT.into_response()
        }
        (Method::POST, "callback") => settle(state, &registry, &id, headers, &body, false, false),
        (Method::POST, "ack") => settle(state, &registry, &id, headers, &body, true, false),
        (Method::POST, "release") => settle(state, &registry, &id, headers, &body, true, true),
        (Method::POST, "claim") => claim(state, &registry, &id, &body),
        _ => not_found(),
    }
}

/// Whether a request whose token covers `scope` may use `sub`: one whose token
/// covers the same streams as the one that made it, or all (see [`Scope::may_use`]);
/// without tokens, anyone. A scope missing on one side only (which tokens being on
/// always give) fails closed.
fn usable(scope: Option<&Scope>, sub: &Sub) -> bool {
    match (scope, &sub.scope) {
        (Some(caller), Some(maker)) => caller.may_use(maker),
        (None, None) => true,
        _ => false,
    }
}

fn already_exists() -> Response {
    error(
        StatusCode::CONFLICT,
        "SUBSCRIPTION_ALREADY_EXISTS",
        "a subscription with this id has another configuration",
    )
}

fn trim(s: &str) -> String {
    s.trim_matches('/').to_owned()
}

/// Whether a webhook URL is acceptable: https to a public host, or http to loopback if
/// `loopback_allowed` (`--webhooks-to-loopback`).
/// Read by the same URL parser the webhook client uses (a hand-made reading once let
/// `https://10.0.0.1\\@example.com/`, `https://127.1/` or `https://0x7f.0.0.1/`
/// through); what a public name resolves to is checked when it is called (see
/// [`super::PublicOnly`]).
fn safe_webhook_url(url: &str, loopback_allowed: bool) -> bool {
    let Ok(url) = reqwest::Url::parse(url) else {
        return false;
    };
    if !url.username().is_empty() || url.password().is_some() {
        return false;
    }
    let Some(host) = url.host_str() else {
        return false;
    };
    let ip = host
        .trim_start_matches('[')
        .trim_end_matches(']')
        .parse::<std::net::IpAddr>()
        .ok();
    let name = host.trim_end_matches('.').to_ascii_lowercase();
    let loopback = match ip {
        Some(ip) => ip.is_loopback(),
        None => name == "localhost" || name.ends_with(".localhost"),
    };
    match url.scheme() {
        "http" => loopback && loopback_allowed,
        "https" => !loopback && ip.is_none_or(super::is_public),
        _ => false,
    }
}

/// The 403 for a subscription that would reach `path`, outside its token's scope.
fn out_of_scope(what: &str, path: &str) -> Response {
    error(
        StatusCode::FORBIDDEN,
        "FORBIDDEN",
        &format!("this token does not cover the {what} {path}"),
    )
}

/// The first of `paths` that `scope` does not cover.
fn uncovered<'a>(
    scope: Option<&Scope>,
    paths: impl IntoIterator<Item = &'a String>,
) -> Option<&'a String> {
    let scope = scope?;
    paths.into_iter().find(|p| !scope.covers(p))
}

fn put(
    state: &AppState,
    registry: &Arc<Registry>,
    id: &str,
    body: &Value,
    scope: Option<Scope>,
) -> Response {
    // The id goes into its callback's URL as it is (and a callback's path must name
    // it: see `auth::carries_callback_token`).
    let plain = |b: u8| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~');
    if id.is_empty() || id.len() > 128 || !id.bytes().all(plain) || id == "." || id == ".." {
        return invalid(
            "a subscription id is 1 to 128 characters of A-Z, a-z, 0-9, '-', '_', '.' or '~'",
        );
    }
    let kind_name = body.get("type").and_then(Value::as_str);
    let pattern = match body.get("pattern") {
        None | Some(Value::Null) => None,
        Some(Value::String(p)) if !trim(p).is_empty() => Some(trim(p)),
        Some(_) => return invalid("pattern must be a non-empty string"),
    };
    let explicit: BTreeSet<String> = match body.get("streams") {
        None | Some(Value::Null) => BTreeSet::new(),
        Some(Value::Array(items)) => {
            let mut set = BTreeSet::new();
            for item in items {
                match item.as_str().map(trim) {
                    Some(s) if !s.is_empty() => {
                        set.insert(s);
                    }
                    _ => return invalid("streams must be non-empty strings"),
                }
            }
            set
        }
        Some(_) => return invalid("streams must be an array"),
    };
    if pattern.is_none() && explicit.is_empty() {
        return invalid("a subscription needs a pattern or streams");
    }
    let lease_ttl_ms = match body.get("lease_ttl_ms") {
        None | Some(Value::Null) => 30_000,
        Some(v) => match v.as_u64() {
            Some(n) if (1000..=600_000).contains(&n) => n,
            _ => return invalid("lease_ttl_ms must be an integer from 1000 to 600000"),
        },
    };
    let kind = match kind_name {
        Some("webhook") => match body.pointer("/webhook/url").and_then(Value::as_str) {
            Some(url) if !url.is_empty() => Kind::Webhook {
                url: url.to_owned(),
            },
            _ => return invalid("webhook.url is required"),
        },
        Some("pull-wake") => match body.get("wake_stream").and_then(Value::as_str) {
            Some(w) if !trim(w).is_empty() => Kind::PullWake {
                wake_stream: trim(w),
            },
            _ => return invalid("wake_stream is required"),
        },
        _ => return invalid("type must be webhook or pull-wake"),
    };
    let description = body
        .get("description")
        .and_then(Value::as_str)
        .map(str::to_owned);
    let config = json!({
        "type": kind_name, "pattern": pattern, "streams": explicit,
        "webhook": match &kind { Kind::Webhook { url } => json!(url), _ => Value::Null },
        "wake_stream": match &kind { Kind::PullWake { wake_stream } => json!(wake_stream), _ => Value::Null },
        "lease_ttl_ms": lease_ttl_ms, "description": description,
    })
    .to_string();
    // Its token must cover what it links by name, and the stream its wake events are
    // appended to (a token may write wherever it may make subscriptions); what its
    // pattern links is kept to the same scope (see `super::may_link`).
    if let Some(path) = uncovered(scope.as_ref(), &explicit) {
        return out_of_scope("stream", path);
    }
    if kind.wake_stream().is_some_and(|w| explicit.contains(w)) {
        return invalid("a subscription cannot link its own wake stream");
    }
    if let Some(wake) = kind.wake_stream() {
        if scope.as_ref().is_some_and(|s| !s.covers(wake)) {
            return out_of_scope("wake stream", wake);
        }
    }
    let mut subs = registry.lock();
    if let Some(existing) = subs.get(id) {
        return if existing.config == config && usable(scope.as_ref(), existing) {
            Json(serialize(state, existing, &registry.signer)).into_response()
        } else {
            already_exists()
        };
    }
    if let Kind::Webhook { url } = &kind {
        if !safe_webhook_url(url, registry.loopback) {
            let why = match registry.loopback {
                true => "webhooks must be https to a public host (or http to loopback)",
                false => {
                    "webhooks must be https to a public host (http to loopback only on a \
                     server started with --webhooks-to-loopback)"
                }
            };
            return error(StatusCode::BAD_REQUEST, "WEBHOOK_URL_REJECTED", why);
        }
    }
    let mut links = std::collections::BTreeMap::new();
    for path in &explicit {
        let mut link = Link::at_tail(state, path);
        link.explicit = true;
        links.insert(path.clone(), link);
    }
    if let Some(p) = &pattern {
        for path in state.store.shared().paths() {
            if super::may_link(p, scope.as_ref(), kind.wake_stream(), &path) {
                let link = Link::at_tail(state, &path);
                let link = links.entry(path).or_insert(link);
                link.glob = true;
            }
        }
    }
    let sub = Sub {
        id: id.to_owned(),
        kind,
        pattern,
        lease_ttl_ms,
        description,
        created_at: crate::http::rfc3339_now(),
        config,
        links,
        failed: false,
        failures: 0,
        generation: 0,
        wake_id: None,
        snapshot: Default::default(),
        holder: None,
        lease_until: None,
        lease_timer: None,
        lease_task: None,
        scope,
    };
    let out = serialize(state, &sub, &registry.signer);
    subs.insert(id.to_owned(), sub);
    (StatusCode::CREATED, Json(out)).into_response()
}

fn add_streams(
    state: &AppState,
    registry: &Arc<Registry>,
    id: &str,
    body: &Value,
    scope: Option<&Scope>,
) -> Response {
    let Some(items) = body.get("streams").and_then(Value::as_array) else {
        return invalid("streams must be an array");
    };
    let mut paths = Vec::new();
    for item in items {
        match item.as_str().map(trim) {
            Some(s) if !s.is_empty() => paths.push(s),
            _ => return invalid("streams must be non-empty strings"),
        }
    }
    if let Some(path) = uncovered(scope, &paths) {
        return out_of_scope("stream", path);
    }
    let mut subs = registry.lock();
    let Some(sub) = subs.get_mut(id) else {
        return not_found();
    };
    if let Some(wake) = sub.kind.wake_stream() {
        if paths.iter().any(|p| p == wake) {
            return invalid("a subscription cannot link its own wake stream");
        }
    }
    for path in paths {
        let link = Link::at_tail(state, &path);
        let link = sub.links.entry(path).or_insert(link);
        link.explicit = true;
    }
    StatusCode::NO_CONTENT.into_response()
}

fn bearer(headers: &HeaderMap) -> Option<&str> {
    crate::http::auth::bearer_of(headers.get("authorization").map(|v| v.as_bytes()))
}

/// Callback (webhook), ack and release (pull-wake): token, fencing, acks, done.
fn settle(
    state: &AppState,
    registry: &Arc<Registry>,
    id: &str,
    headers: &HeaderMap,
    body: &Value,
    pull: bool,
    release: bool,
) -> Response {
    let work;
    let response;
    // The token first: without one issued for it, nothing tells whether the
    // subscription exists, nor of what type it is.
    let Some(token_generation) = bearer(headers).and_then(|t| registry.token_generation(id, t))
    else {
        return error(
            StatusCode::UNAUTHORIZED,
            "TOKEN_INVALID",
            "a valid bearer token is required",
        );
    };
    {
        let mut subs = registry.lock();
        let Some(sub) = subs.get_mut(id) else {
            return not_found();
        };
        if pull != matches!(sub.kind, Kind::PullWake { .. }) {
            return invalid("this operation does not apply to this subscription type");
        }
        let wake_id = body.get("wake_id").and_then(Value::as_str);
        let generation = body.get("generation").and_then(Value::as_u64);
        if token_generation != sub.generation
            || generation != Some(sub.generation)
            || wake_id.is_none()
            || wake_id != sub.wake_id.as_deref()
        {
            return error(
                StatusCode::CONFLICT,
                "FENCED",
                "this wake is no longer current",
            );
        }
        if release {
            work = registry.finish_wake(state, sub);
            response = StatusCode::NO_CONTENT.into_response();
        } else {
            let acks = body
                .get("acks")
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default();
            let mut updates = Vec::new();
            for ack in &acks {
                let stream = ack
                    .get("stream")
                    .or_else(|| ack.get("path"))
                    .and_then(Value::as_str)
                    .map(trim);
                let offset = match &stream {
                    Some(stream) => ack
                        .get("offset")
                        .and_then(Value::as_str)
                        .map(|o| super::resolve_at(state, stream, o)),
                    None => None,
                };
                let (Some(stream), Some(Ok(ReadFrom::At(offset)))) = (stream, offset) else {
                    return error(
                        StatusCode::CONFLICT,
                        "INVALID_OFFSET",
                        "each ack needs a linked stream and a real offset",
                    );
                };
                let Some(link) = sub.links.get(&stream) else {
                    return error(
                        StatusCode::CONFLICT,
                        "INVALID_OFFSET",
                        "the stream is not linked",
                    );
                };
                if offset < link.acked(state, &stream) || offset > tail_of(state, &stream) {
                    return error(
                        StatusCode::CONFLICT,
                        "INVALID_OFFSET",
                        "the offset is behind the acked offset or past the tail",
                    );
                }
                updates.push((stream, offset));
            }
            for (stream, offset) in updates {
                if let Some(link) = sub.links.get_mut(&stream) {
                    link.acked = offset;
                    link.epoch = super::epoch_of(state, &stream);
                }
            }
            let done = body.get("done").and_then(Value::as_bool) == Some(true);
            if done {
                work = registry.finish_wake(state, sub);
            } else {
                work = None;
                registry.start_lease(state, sub);
            }
            let next_wake = done && work.is_some();
            response = Json(json!({"ok": true, "next_wake": next_wake})).into_response();
        }
    }
    registry.run(state, work.into_iter().collect());
    response
}

fn claim(state: &AppState, registry: &Arc<Registry>, id: &str, body: &Value) -> Response {
    let Some(worker) = body
        .get("worker")
        .and_then(Value::as_str)
        .filter(|w| !w.is_empty())
    else {
        return invalid("worker must be a non-empty string");
    };
    let mut work = None;
    let response;
    {
        let mut subs = registry.lock();
        let Some(sub) = subs.get_mut(id) else {
            return not_found();
        };
        if !matches!(sub.kind, Kind::PullWake { .. }) {
            return invalid("claim applies to pull-wake subscriptions");
        }
        if let Some(holder) = &sub.holder {
            return (
                StatusCode::CONFLICT,
                Json(json!({"error": {"code": "ALREADY_CLAIMED", "message": "another worker holds this wake", "current_holder": holder, "generation": sub.generation}})),
            )
                .into_response();
        }
        if !pending(state, sub) {
            // A wake left with nothing to do (its streams deleted since) ends, so
            // that the next commit makes one; should a commit have come meanwhile,
            // the wake it starts is sent (after the lock is let go).
            let next = if sub.wake_id.is_some() {
                registry.finish_wake(state, sub)
            } else {
                None
            };
            drop(subs);
            registry.run(state, next.into_iter().collect());
            return error(StatusCode::CONFLICT, "NO_PENDING_WORK", "nothing to do");
        }
        if sub.wake_id.is_none() {
            let trigger = super::pending_stream(state, sub).unwrap_or_default();
            work = Some(registry.create_wake(state, sub, &trigger));
        }
        sub.holder = Some(worker.to_owned());
        let token = registry.issue_token(id, sub.generation);
        registry.start_lease(state, sub);
        response = Json(json!({
            "wake_id": sub.wake_id,
            "generation": sub.generation,
            "token": token,
            "streams": listing(state, sub),
            "lease_ttl_ms": sub.lease_ttl_ms,
        }))
        .into_response();
    }
    registry.run(state, work.into_iter().collect());
    response
}

#[cfg(test)]
mod tests {
    use super::safe_webhook_url;

    #[test]
    fn webhook_urls() {
        assert!(safe_webhook_url("http://127.0.0.1:9/webhook", true));
        assert!(safe_webhook_url("http://localhost/x", true));
        assert!(safe_webhook_url("http://[::1]:9/x", true));
        // Not without --webhooks-to-loopback.
        for local in [
            "http://127.0.0.1:9/webhook",
            "http://localhost/x",
            "http://[::1]:9/x",
        ] {
            assert!(!safe_webhook_url(local, false), "{local}");
        }
        assert!(!safe_webhook_url("http://10.0.0.1/hook", true));
        assert!(!safe_webhook_url("http://example.com/hook", true));
        assert!(safe_webhook_url("https://example.com/hook", true));
        assert!(safe_webhook_url("https://93.184.215.14/hook", true));
        assert!(!safe_webhook_url("https://192.168.1.1/hook", true));
        assert!(!safe_webhook_url("ftp://example.com", true));
        assert!(!safe_webhook_url("https://[::1]/", true));
        // What a hand-made reading of the URL let through.
        for sneaky in [
            "https://10.0.0.1\\@example.com/",
            "https://127.1/",
            "https://2130706433/",
            "https://0x7f.0.0.1/",
            "https://localhost./",
            "https://a.localhost/",
            "https://user:pass@example.com/",
            "https://169.254.169.254/latest",
            "https://100.64.0.1/",
            "https://[fd00::1]/",
            "https://[fe80::1]/",
            "https://[::ffff:10.0.0.1]/",
            "https://0.0.0.0/",
            // IPv6 that reaches a private IPv4 address, and the other ranges no
            // public host is in.
            "https://[64:ff9b::a00:1]/",
            "https://[2002:a00:1::]/",
            "https://[::a00:1]/",
            "https://[ff02::1]/",
            "https://[fec0::1]/",
            "https://224.0.0.1/",
            "https://240.0.0.1/",
            "https://198.18.0.1/",
            "https://192.0.0.8/",
        ] {
            assert!(!safe_webhook_url(sneaky, true), "{sneaky}");
        }
        // One that carries a public IPv4 address is as public as it.
        assert!(safe_webhook_url("https://[64:ff9b::5db8:d70e]/hook", true));
        assert!(safe_webhook_url("https://[2001:db9::1]/hook", true));
    }
}
