//! The server's behaviour beyond the conformance suite, a module a topic, and the
//! helpers the topics share.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::StreamExt;
use gapless_tests::chunked::Dechunker;
use gapless_tests::{temp_dir, ServerProcess};
use reqwest::{Client, Method, StatusCode};
use serde_json::{json, Value};

mod access;
mod bad_input;
mod durability;
mod live;
mod sessions;
mod streams;
mod subscriptions;
mod wire;

fn client() -> Client {
    Client::builder()
        .timeout(Duration::from_secs(20))
        .build()
        .expect("client")
}

fn token_event(session: &str, delta: &str) -> Value {
    json!({"type": "container-agent:token", "data": {"taskId": "t", "sessionId": session, "delta": delta}})
}

async fn post_events(c: &Client, base: &str, session: &str, body: &Value) -> (StatusCode, Value) {
    let r = c
        .post(format!("{base}/api/sessions/{session}/events"))
        .json(body)
        .send()
        .await
        .expect("post");
    let status = r.status();
    (status, r.json().await.unwrap_or(Value::Null))
}

async fn head_tail(c: &Client, url: &str) -> String {
    let r = c.head(url).send().await.expect("head");
    assert_eq!(r.status(), StatusCode::OK);
    r.headers()["stream-next-offset"]
        .to_str()
        .expect("ascii")
        .to_owned()
}

/// One response read off a connection.
struct Answer {
    status: u16,
    /// Lower-cased names.
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

/// One response parsed off the front of `bytes` (its body by `Content-Length`; none
/// for `204` or a `HEAD`), and what follows it.
fn next_response(bytes: &[u8], head_request: bool) -> (Answer, &[u8]) {
    let end = bytes
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("a whole head");
    let head = std::str::from_utf8(&bytes[..end]).expect("text head");
    let mut lines = head.split("\r\n");
    let status: u16 = lines.next().expect("status line")[9..12]
        .parse()
        .expect("status");
    let headers: Vec<(String, String)> = lines
        .map(|l| {
            let (n, v) = l.split_once(':').expect("header");
            (n.to_ascii_lowercase(), v.trim().to_owned())
        })
        .collect();
    let length = headers
        .iter()
        .find(|(n, _)| n == "content-length")
        .map_or(0, |(_, v)| v.parse().expect("length"));
    let length = if head_request || status == 204 {
        0
    } else {
        length
    };
    let rest = &bytes[end + 4..];
    let body = rest[..length].to_vec();
    (
        Answer {
            status,
            headers,
            body,
        },
        &rest[length..],
    )
}

/// Sends `bytes` on a fresh connection, shuts its sending side down if `half_close`
/// (which must not cost the answer to a request the lean layer reads) and reads
/// everything until the server closes.
async fn exchange(server: &ServerProcess, bytes: &[u8], half_close: bool) -> Vec<u8> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut conn = tokio::net::TcpStream::connect(server.addr())
        .await
        .expect("connect");
    conn.write_all(bytes).await.expect("write");
    if half_close {
        conn.shutdown().await.expect("half-close");
    }
    let mut all = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), conn.read_to_end(&mut all))
        .await
        .expect("answered and closed within 10 s")
        .expect("read");
    all
}

/// Reads an SSE body until `needle` has arrived (`true`) or the body ended or
/// `limit` passed (`false`); `seen` keeps what was read.
async fn read_until<B: AsRef<[u8]>, E>(
    body: &mut (impl futures::Stream<Item = Result<B, E>> + Unpin),
    seen: &mut String,
    needle: &str,
    limit: Duration,
) -> bool {
    let deadline = tokio::time::Instant::now() + limit;
    while !seen.contains(needle) {
        match tokio::time::timeout_at(deadline, body.next()).await {
            Ok(Some(Ok(chunk))) => seen.push_str(&String::from_utf8_lossy(chunk.as_ref())),
            _ => return false,
        }
    }
    true
}

/// Whether an SSE body ends (cleanly) within `limit`.
async fn ends_within<B>(
    body: &mut (impl futures::Stream<Item = reqwest::Result<B>> + Unpin),
    limit: Duration,
) -> bool {
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        match tokio::time::timeout_at(deadline, body.next()).await {
            Ok(None) => return true,
            Ok(Some(Ok(_))) => {}
            Ok(Some(Err(_))) | Err(_) => return false,
        }
    }
}

/// Creates an empty JSON stream at `url`.
async fn create_json(c: &Client, url: &str) {
    let r = c
        .put(url)
        .header("content-type", "application/json")
        .send()
        .await
        .expect("put");
    assert_eq!(r.status(), StatusCode::CREATED);
}

/// Appends `body` (JSON) to the stream at `url`.
async fn post_json(c: &Client, url: &str, body: impl Into<String>) -> reqwest::Response {
    c.post(url)
        .header("content-type", "application/json")
        .body(body.into())
        .send()
        .await
        .expect("append")
}

/// A server on a fresh directory named `name`, a client, and the URL of a new JSON
/// stream `stream` on it.
async fn server_with_json_stream(
    name: &str,
    stream: &str,
) -> (std::path::PathBuf, ServerProcess, Client, String) {
    let dir = temp_dir(name);
    let server = ServerProcess::start(&dir, &[]).await;
    let c = client();
    let url = server.stream(stream);
    create_json(&c, &url).await;
    (dir, server, c, url)
}

/// Reads an SSE body until its reader is caught up (within 5 s).
async fn until_caught_up<B: AsRef<[u8]>, E>(
    body: &mut (impl futures::Stream<Item = Result<B, E>> + Unpin),
) {
    let mut seen = String::new();
    assert!(
        read_until(body, &mut seen, "\"upToDate\":true", Duration::from_secs(5)).await,
        "caught up: {seen}"
    );
}

/// Subscribes to `url` by SSE from `offset`, and reads until caught up. Each call on a
/// client of its own (see `client`) opens a connection for it: a connection that
/// served another request first is hyper's, and its responses wait in their task
/// instead of parking.
async fn caught_up_sse(
    sse: &Client,
    url: &str,
    offset: &str,
) -> impl futures::Stream<Item = reqwest::Result<impl AsRef<[u8]>>> + Unpin {
    let r = sse
        .get(format!("{url}?offset={offset}&live=sse"))
        .send()
        .await
        .expect("sse");
    assert_eq!(r.status(), StatusCode::OK);
    let mut body = r.bytes_stream();
    until_caught_up(&mut body).await;
    body
}

/// The session ids a list request (`GET /api/sessions`, as built) answers.
async fn session_ids(request: reqwest::RequestBuilder) -> Vec<String> {
    let list: Value = request
        .send()
        .await
        .expect("list")
        .json()
        .await
        .expect("json");
    list["sessions"]
        .as_array()
        .expect("sessions")
        .iter()
        .filter_map(|s| s["id"].as_str().map(str::to_owned))
        .collect()
}
