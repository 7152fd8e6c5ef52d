//! gapless-wasm in headless Chromium against a live gapless-server: history then live
//! without gap (SSE and long-poll), resuming across server-side connection cuts,
//! headers reaching the server, closure ending the read, and continuity-lost.
//!
//! Run by `scripts/test-wasm-browser`, which starts the server (bearer tokens on, SSE
//! connections recycled every second) and passes its URL and token at compile time in
//! `GAPLESS_URL` and `GAPLESS_TOKEN`. The tests use the exported classes' Rust API, the
//! same objects a JavaScript caller gets. Every test has its own time-out: a dead
//! server fails it instead of hanging the runner.
#![cfg(target_arch = "wasm32")]

use std::future::Future;

use futures::channel::oneshot;
use futures::future::{select, Either};
use gapless_wasm::transport::Fetch;
use gapless_wasm::{GaplessProducer, GaplessSession, GaplessStream};
use gloo_timers::future::TimeoutFuture;
use js_sys::{Array, Function, Object, Reflect, JSON};
use wasm_bindgen::{JsCast, JsValue};
use wasm_bindgen_futures::JsFuture;
use wasm_bindgen_test::{wasm_bindgen_test, wasm_bindgen_test_configure};

wasm_bindgen_test_configure!(run_in_browser);

/// The longest any one test may take.
const TEST_TIMEOUT_MS: u32 = 30_000;

/// The server under test (`http://127.0.0.1:<port>`).
fn base() -> &'static str {
    option_env!("GAPLESS_URL")
        .expect("GAPLESS_URL was not set at compile time: run scripts/test-wasm-browser")
}

/// A bearer token the server accepts for reads and writes.
fn token() -> &'static str {
    option_env!("GAPLESS_TOKEN")
        .expect("GAPLESS_TOKEN was not set at compile time: run scripts/test-wasm-browser")
}

/// A fresh stream URL.
fn unique(name: &str) -> String {
    format!(
        "{}/v1/stream/browser-{name}-{}-{}",
        base(),
        js_sys::Date::now() as u64,
        (js_sys::Math::random() * 1e6) as u64
    )
}

/// The `Authorization` header as request headers.
fn auth() -> Vec<(String, String)> {
    vec![("Authorization".into(), format!("Bearer {}", token()))]
}

/// A plain JavaScript object of `pairs`.
fn object(pairs: &[(&str, JsValue)]) -> JsValue {
    let o = Object::new();
    for (k, v) in pairs {
        Reflect::set(&o, &(*k).into(), v).expect("set a property");
    }
    o.into()
}

/// `{Authorization: "Bearer <token>"}`, the `headers` option.
fn auth_headers() -> JsValue {
    object(&[("Authorization", format!("Bearer {}", token()).into())])
}

/// A property of a JavaScript object (`undefined` when missing).
fn get(value: &JsValue, key: &str) -> JsValue {
    Reflect::get(value, &key.into()).unwrap_or(JsValue::UNDEFINED)
}

/// A string property, or `""`.
fn text(value: &JsValue, key: &str) -> String {
    get(value, key).as_string().unwrap_or_default()
}

/// A JSON value as a JavaScript value.
fn json(text: &str) -> JsValue {
    JSON::parse(text).expect("valid JSON")
}

async fn sleep(ms: u32) {
    TimeoutFuture::new(ms).await;
}

/// Runs `f`, failing with `what` if it takes longer than `ms`.
async fn within<F: Future>(ms: u32, what: &str, f: F) -> F::Output {
    match select(Box::pin(f), TimeoutFuture::new(ms)).await {
        Either::Left((out, _)) => out,
        Either::Right(_) => panic!("timed out after {ms} ms: {what}"),
    }
}

/// One request with the token and `extra` headers; returns the status.
async fn request(method: &str, url: &str, extra: &[(&str, &str)]) -> u16 {
    let mut headers = auth();
    headers.extend(
        extra
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned())),
    );
    let fetch = Fetch::new();
    let response = fetch
        .send(method, url, &headers, None)
        .await
        .unwrap_or_else(|e| panic!("{method} {url} failed: {e}"));
    response.status()
}

/// Creates a JSON stream.
async fn create(url: &str) {
    let status = request("PUT", url, &[("Content-Type", "application/json")]).await;
    assert!(
        status == 201 || status == 200,
        "create {url}: status {status}"
    );
}

/// Awaits a promise the package returned.
async fn settle(promise: js_sys::Promise) -> Result<JsValue, JsValue> {
    JsFuture::from(promise).await
}

/// A producer with the token.
fn producer(url: &str, id: &str) -> GaplessProducer {
    GaplessProducer::new(
        url,
        object(&[("producerId", id.into()), ("headers", auth_headers())]),
    )
    .expect("a producer")
}

/// Appends `{"i": i}` and waits until the server has committed it.
async fn append(producer: &GaplessProducer, i: u32) {
    settle(producer.append(json(&format!("{{\"i\":{i}}}"))))
        .await
        .unwrap_or_else(|e| panic!("append {i} failed: {}", describe(&e)));
}

/// An error the package threw, for messages: `CODE (status): message`.
fn describe(error: &JsValue) -> String {
    format!(
        "{} ({:?}): {}",
        text(error, "code"),
        get(error, "status").as_f64(),
        text(error, "message")
    )
}

/// Reads `{i}` messages from `stream` until `n` arrived, asserting each exactly once
/// and in order; `on_up_to_date` is told the first time the reader has caught up.
async fn read_sequence(
    stream: &GaplessStream,
    n: u32,
    mut on_up_to_date: Option<oneshot::Sender<()>>,
) {
    let mut next = 0u32;
    while next < n {
        let update = settle(stream.next())
            .await
            .unwrap_or_else(|e| panic!("the read failed at message {next}: {}", describe(&e)));
        assert!(
            !update.is_null(),
            "the stream ended at message {next} of {n}"
        );
        match text(&update, "type").as_str() {
            "batch" => {
                for m in Array::from(&get(&update, "messages")).iter() {
                    let i = get(&m, "i").as_f64();
                    assert_eq!(
                        i,
                        Some(f64::from(next)),
                        "message {next} exactly once, in order"
                    );
                    next += 1;
                }
            }
            "up-to-date" => {
                if let Some(tx) = on_up_to_date.take() {
                    let _ = tx.send(());
                }
            }
            // A read that failed and is made again: nothing to check here.
            "reconnecting" => {}
            other => panic!("unexpected update {other:?} at message {next}"),
        }
    }
    assert_eq!(next, n, "all messages arrived, none more");
}

/// Appends `from..to` with `pause_ms` between appends, once `start` fires.
async fn write_after(
    producer: &GaplessProducer,
    start: oneshot::Receiver<()>,
    from: u32,
    to: u32,
    pause_ms: u32,
) {
    if start.await.is_err() {
        return;
    }
    for i in from..to {
        append(producer, i).await;
        sleep(pause_ms).await;
    }
}

/// 50 messages of history, then 100 appended while the reader is live.
async fn history_then_live(live: &str) {
    let url = unique(live);
    create(&url).await;
    let producer = producer(&url, &format!("p-{live}"));
    for i in 0..50 {
        append(&producer, i).await;
    }
    let stream = GaplessStream::new(
        &url,
        object(&[("live", live.into()), ("headers", auth_headers())]),
    )
    .expect("a stream");
    let (tx, rx) = oneshot::channel();
    let read = read_sequence(&stream, 150, Some(tx));
    let write = write_after(&producer, rx, 50, 150, 25);
    within(
        TEST_TIMEOUT_MS,
        &format!("history then live ({live})"),
        futures::future::join(read, write),
    )
    .await;
    stream.close();
}

#[wasm_bindgen_test]
async fn history_then_live_without_gap_sse() {
    history_then_live("sse").await;
}

#[wasm_bindgen_test]
async fn history_then_live_without_gap_long_poll() {
    history_then_live("long-poll").await;
}

/// Finished requests of this page whose URL starts with `prefix` and contains `part`
/// (from the browser's resource timing entries, recorded when a response ends).
fn finished_requests(prefix: &str, part: &str) -> usize {
    let performance = get(&js_sys::global(), "performance");
    let entries: Function = get(&performance, "getEntriesByType").unchecked_into();
    let entries = Array::from(
        &entries
            .call1(&performance, &"resource".into())
            .expect("resource timing entries"),
    );
    entries
        .iter()
        .map(|e| text(&e, "name"))
        .filter(|name| name.starts_with(prefix) && name.contains(part))
        .count()
}

/// Calls `performance.<method>(args...)`.
fn performance_call(method: &str, args: &Array) {
    let performance = get(&js_sys::global(), "performance");
    let f: Function = get(&performance, method).unchecked_into();
    f.apply(&performance, args)
        .unwrap_or_else(|_| panic!("performance.{method} failed"));
}

#[wasm_bindgen_test]
async fn sse_resumes_across_server_side_cuts_without_gap_or_duplicate() {
    // The server ends every SSE response after one second; appending for about four
    // seconds makes the reader reconnect several times mid-stream.
    performance_call("clearResourceTimings", &Array::new());
    performance_call(
        "setResourceTimingBufferSize",
        &Array::of1(&JsValue::from(100_000)),
    );
    let url = unique("cuts");
    create(&url).await;
    let producer = producer(&url, "p-cuts");
    for i in 0..10 {
        append(&producer, i).await;
    }
    let stream = GaplessStream::new(
        &url,
        object(&[("live", "sse".into()), ("headers", auth_headers())]),
    )
    .expect("a stream");
    let (tx, rx) = oneshot::channel();
    let read = read_sequence(&stream, 50, Some(tx));
    let write = write_after(&producer, rx, 10, 50, 100);
    within(
        TEST_TIMEOUT_MS,
        "reading across connection cuts",
        futures::future::join(read, write),
    )
    .await;
    stream.close();
    let cut = finished_requests(&url, "live=sse");
    assert!(
        cut >= 2,
        "the server should have ended at least two SSE responses mid-read, ended {cut}"
    );
}

#[wasm_bindgen_test]
async fn headers_reach_the_server() {
    let url = unique("auth");
    create(&url).await;
    append(&producer(&url, "p-auth"), 0).await;

    // Without the token: the read fails with AUTH (401), and so does an append.
    let stream = GaplessStream::new(&url, object(&[("live", false.into())])).expect("a stream");
    let error = within(
        TEST_TIMEOUT_MS,
        "a read without the token",
        settle(stream.next()),
    )
    .await
    .expect_err("a read without the token must fail");
    assert_eq!(text(&error, "code"), "AUTH", "{}", describe(&error));
    assert_eq!(get(&error, "status").as_f64(), Some(401.0));
    let anonymous = GaplessProducer::new(&url, JsValue::UNDEFINED).expect("a producer");
    let error = within(
        TEST_TIMEOUT_MS,
        "an append without the token",
        settle(anonymous.append(json("{\"i\":1}"))),
    )
    .await
    .expect_err("an append without the token must fail");
    assert_eq!(text(&error, "code"), "AUTH", "{}", describe(&error));

    // With it: the history arrives, then the read ends (live off).
    let stream = GaplessStream::new(
        &url,
        object(&[("live", false.into()), ("headers", auth_headers())]),
    )
    .expect("a stream");
    let mut seen = Vec::new();
    within(TEST_TIMEOUT_MS, "a read with the token", async {
        loop {
            let update = settle(stream.next())
                .await
                .unwrap_or_else(|e| panic!("a read with the token failed: {}", describe(&e)));
            if update.is_null() {
                break;
            }
            if text(&update, "type") == "batch" {
                for m in Array::from(&get(&update, "messages")).iter() {
                    seen.push(get(&m, "i").as_f64());
                }
            }
        }
    })
    .await;
    assert_eq!(
        seen,
        vec![Some(0.0)],
        "the one message, read with the token"
    );
}

#[wasm_bindgen_test]
async fn a_closed_stream_ends_the_iteration() {
    let url = unique("closed");
    create(&url).await;
    let producer = producer(&url, "p-closed");
    append(&producer, 0).await;
    let stream =
        GaplessStream::new(&url, object(&[("headers", auth_headers())])).expect("a stream");
    let read = async {
        let mut types = Vec::new();
        loop {
            let update = settle(stream.next())
                .await
                .unwrap_or_else(|e| panic!("the read failed: {}", describe(&e)));
            if update.is_null() {
                return types;
            }
            types.push(text(&update, "type"));
        }
    };
    let close = async {
        sleep(200).await;
        request("POST", &url, &[("Stream-Closed", "true")]).await
    };
    let (types, status) = within(
        TEST_TIMEOUT_MS,
        "the read of a stream being closed",
        futures::future::join(read, close),
    )
    .await;
    assert_eq!(status, 204, "closing the stream");
    assert_eq!(types.first().map(String::as_str), Some("batch"));
    assert_eq!(
        types.last().map(String::as_str),
        Some("closed"),
        "the last update before the end: {types:?}"
    );
    let error = within(
        TEST_TIMEOUT_MS,
        "an append to a closed stream",
        settle(producer.append(json("{\"i\":1}"))),
    )
    .await
    .expect_err("an append to a closed stream must fail");
    assert_eq!(text(&error, "code"), "CLOSED", "{}", describe(&error));
}

#[wasm_bindgen_test]
async fn a_stream_whose_data_is_gone_surfaces_continuity_lost() {
    // A fork keeps the source's data referenced: deleting the source then leaves it
    // gone (410) rather than unknown (404).
    let source = unique("gone");
    create(&source).await;
    append(&producer(&source, "p-gone"), 0).await;
    let fork = unique("fork");
    let source_path = source.strip_prefix(base()).expect("a URL on the server");
    let status = request(
        "PUT",
        &fork,
        &[
            ("Content-Type", "application/json"),
            ("Stream-Forked-From", source_path),
        ],
    )
    .await;
    assert_eq!(status, 201, "forking");
    assert_eq!(
        request("DELETE", &source, &[]).await,
        204,
        "deleting the source"
    );
    let stream =
        GaplessStream::new(&source, object(&[("headers", auth_headers())])).expect("a stream");
    let error = within(TEST_TIMEOUT_MS, "a read of a deleted stream", async {
        loop {
            match settle(stream.next()).await {
                Ok(update) if update.is_null() => return None,
                Ok(_) => {}
                Err(e) => return Some(e),
            }
        }
    })
    .await
    .expect("the read must fail, not end");
    assert_eq!(
        text(&error, "code"),
        "CONTINUITY_LOST",
        "{}",
        describe(&error)
    );
    assert_eq!(get(&error, "status").as_f64(), Some(410.0));
}

#[wasm_bindgen_test]
async fn a_session_yields_typed_events_and_a_view_stalled_when_silent() {
    let url = unique("session");
    create(&url).await;
    let producer = producer(&url, "p-session");
    let events = [
        ("container-agent:started", r#""model":"m","maxTurns":2"#),
        (
            "container-agent:turn",
            r#""turn":1,"maxTurns":2,"remaining":1"#,
        ),
        ("container-agent:token", r#""delta":"Hello ""#),
        ("container-agent:token", r#""delta":"world""#),
        // A kind the view does not fold, checked against its schema: its own type.
        ("sandbox:ready", r#""sandboxId":"x","containerId":"c""#),
        ("robot:dance", r#""moves":3"#),
        // Known kinds whose data does not fit them (one the view folds, one it only
        // checks): typed as unknown, listed among the view's errors.
        ("container-agent:token", r#""delta":5"#),
        ("sandbox:ready", r#""sandboxId":1,"containerId":"c""#),
    ];
    // Ten seconds old: silent for longer than one threshold, not the other (no
    // waiting on the clock).
    let at = js_sys::Date::now() as u64 - 10_000;
    for (kind, data) in events {
        let event = format!(
            r#"{{"type":"{kind}","data":{{"taskId":"t","sessionId":"s",{data}}},"timestamp":{at}}}"#
        );
        settle(producer.append(json(&event)))
            .await
            .unwrap_or_else(|e| panic!("append {kind} failed: {}", describe(&e)));
    }
    let patient = read_session(&url, 60_000).await;
    let expected = [
        "container-agent:started",
        "container-agent:turn",
        "container-agent:token",
        "container-agent:token",
        "sandbox:ready",
        "unknown robot:dance",
        "unknown container-agent:token",
        "unknown sandbox:ready",
    ];
    assert_eq!(patient.0, expected);
    let view = patient.1;
    assert_eq!(text(&get(&view, "status"), "state"), "running");
    let turns = Array::from(&get(&get(&view, "view"), "turns"));
    assert_eq!(text(&turns.get(0), "text"), "Hello world");
    let errors: Vec<String> = Array::from(&get(&get(&view, "view"), "errors"))
        .iter()
        .map(|e| text(&e, "kind"))
        .collect();
    assert_eq!(errors, ["container-agent:token", "sandbox:ready"]);
    let (_, view) = read_session(&url, 5_000).await;
    assert_eq!(
        text(&get(&view, "status"), "state"),
        "stalled",
        "a running session silent past stallAfterMs"
    );
}

/// The types of the events of the session at `url` up to its tail (`unknown` with
/// the kind as sent), and its view then, read with `stall_after_ms`.
async fn read_session(url: &str, stall_after_ms: u32) -> (Vec<String>, JsValue) {
    let session = GaplessSession::new(
        url,
        object(&[
            ("headers", auth_headers()),
            ("stallAfterMs", stall_after_ms.into()),
        ]),
    )
    .expect("a session");
    let mut kinds = Vec::new();
    within(TEST_TIMEOUT_MS, "reading the session", async {
        loop {
            let update = settle(session.next())
                .await
                .unwrap_or_else(|e| panic!("the session read failed: {}", describe(&e)));
            assert!(
                !update.is_null(),
                "the session ended before it was up to date"
            );
            match text(&update, "type").as_str() {
                "events" => {
                    for e in Array::from(&get(&update, "events")).iter() {
                        kinds.push(match text(&e, "type").as_str() {
                            "unknown" => format!("unknown {}", text(&e, "kind")),
                            known => known.to_owned(),
                        });
                    }
                }
                "up-to-date" => break,
                _ => {}
            }
        }
    })
    .await;
    let view = session.view();
    session.close();
    (kinds, view)
}
