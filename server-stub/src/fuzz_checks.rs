//! The property the server's fuzz target checks, also replayed over the kept corpus by
//! `server-stub/tests/fuzz_corpus.rs`: any request — method, path, query, headers and
//! body taken from arbitrary bytes — gets an answer, never a panic and never a 5xx
//! (bad input is the client's error, 4xx). Its submodule holds the wire target's:
//! the lean HTTP layer answers as hyper and the router do (see [`wire()`]).

use std::sync::OnceLock;
use std::time::Duration;

use axum::body::Body;
use axum::http::Request;
use tower::ServiceExt;

use crate::Config;

mod wire;
pub use wire::wire;

/// The configuration both checks serve with: short waits (a long poll of 5 ms, SSE
/// connections of 1 s) and a small body limit, so that inputs run fast; unknown event
/// kinds refused when `strict_events`.
fn fuzz_config(strict_events: bool) -> Config {
    let mut config = Config::for_tests();
    config.long_poll_timeout_ms = 5;
    config.sse_max_age_s = 1;
    config.max_body_bytes = 4096;
    config.strict_events = strict_events;
    config
}

fn runtime_and_app() -> &'static (tokio::runtime::Runtime, axum::Router) {
    static APP: OnceLock<(tokio::runtime::Runtime, axum::Router)> = OnceLock::new();
    APP.get_or_init(|| {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a runtime");
        let config = fuzz_config(true);
        let app = rt.block_on(async { crate::app(&config) }).expect("the app");
        (rt, app)
    })
}

/// Decodes `data` as `METHOD TARGET\nName: value\n...\n\nbody` and sends it.
pub fn request(data: &[u8]) {
    let (head, body) = match data.windows(2).position(|w| w == b"\n\n") {
        Some(i) => (&data[..i], &data[i + 2..]),
        None => (data, &[][..]),
    };
    let head = String::from_utf8_lossy(head);
    let mut lines = head.lines();
    let Some(first) = lines.next() else { return };
    let (method, target) = first.split_once(' ').unwrap_or(("GET", first));
    let mut builder = Request::builder().method(method).uri(target);
    for line in lines {
        if let Some((name, value)) = line.split_once(':') {
            builder = builder.header(name.trim(), value.trim());
        }
    }
    let Ok(req) = builder.body(Body::from(body.to_vec())) else {
        return; // not an HTTP request at all
    };
    let (rt, app) = runtime_and_app();
    rt.block_on(async {
        let answer = tokio::time::timeout(Duration::from_secs(5), app.clone().oneshot(req)).await;
        let Ok(Ok(response)) = answer else {
            panic!("no answer within 5 s");
        };
        let status = response.status();
        assert!(
            !status.is_server_error(),
            "{method} {target} answered {status}"
        );
    });
}
