//! The server's behaviour beyond the conformance suite: session endpoints, restart
//! and `kill -9` durability, concurrent producers, auth, CORS, bad input, SIGTERM.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::StreamExt;
use gapless_tests::chunked::Dechunker;
use gapless_tests::{temp_dir, ServerProcess};
use reqwest::{Client, Method, StatusCode};
use serde_json::{json, Value};

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

async fn history(c: &Client, base: &str, session: &str) -> Vec<Value> {
    let pages = async {
        let mut out = Vec::new();
        let mut after = "-1".to_owned();
        loop {
            let r = c
                .get(format!(
                    "{base}/api/sessions/{session}/events?after={after}&limit=500"
                ))
                .send()
                .await
                .expect("get");
            assert_eq!(r.status(), StatusCode::OK, "history of {session}");
            let r: Value = r.json().await.expect("json");
            let events = r["events"].as_array().cloned().unwrap_or_default();
            out.extend(events);
            if r["upToDate"] == true {
                return out;
            }
            let next = r["nextOffset"].as_str().expect("a next offset").to_owned();
            assert_ne!(next, after, "a page short of the end moved nothing on");
            after = next;
        }
    };
    tokio::time::timeout(Duration::from_secs(60), pages)
        .await
        .expect("the history read within a minute")
}

async fn head_tail(c: &Client, url: &str) -> String {
    let r = c.head(url).send().await.expect("head");
    assert_eq!(r.status(), StatusCode::OK);
    r.headers()["stream-next-offset"]
        .to_str()
        .expect("ascii")
        .to_owned()
}

#[tokio::test]
async fn session_history_survives_kill_9_and_the_stream_continues_live_without_gap() {
    let dir = temp_dir("session-restart");
    let server = ServerProcess::start(&dir, &[]).await;
    let c = client();
    let batch: Vec<Value> = (0..20)
        .map(|i| token_event("s1", &format!("t{i} ")))
        .collect();
    let (status, body) = post_events(&c, &server.url, "s1", &Value::Array(batch)).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert_eq!(body["offsets"].as_array().map(Vec::len), Some(20));
    let before = history(&c, &server.url, "s1").await;
    assert_eq!(before.len(), 20);
    assert_eq!(before[3]["data"]["delta"], "t3 ");
    assert_eq!(before[3]["channel"], "containerAgent");

    // Everything acknowledged is there after a kill -9 and a restart.
    let addr = server.addr().to_owned();
    server.kill9().await;
    let server = ServerProcess::start_on(&dir, &addr, &[]).await;
    let after = history(&c, &server.url, "s1").await;
    assert_eq!(
        after, before,
        "history returns events after a restart, not an empty array"
    );

    // The session SSE: history first, then live, each offset once, in order.
    let sse = c
        .get(format!("{}/api/sessions/s1/stream?offset=-1", server.url))
        .send()
        .await
        .expect("sse");
    assert_eq!(sse.headers()["content-type"], "text/event-stream");
    let mut body = sse.bytes_stream();
    let mut decoder = gapless_core::sse::SseDecoder::new();
    let mut ids = Vec::new();
    let mut event_ids = Vec::new();
    let mut live_posted = false;
    while ids.len() < 25 {
        let event = next_sse_event(&mut body, &mut decoder).await;
        if event.event == "up-to-date" && !live_posted {
            live_posted = true;
            let live: Vec<Value> = (20..25)
                .map(|i| token_event("s1", &format!("t{i} ")))
                .collect();
            let (status, _) = post_events(&c, &server.url, "s1", &Value::Array(live)).await;
            assert_eq!(status, StatusCode::CREATED);
        }
        if event.event == "container-agent:token" {
            let data: Value = serde_json::from_str(&event.data).expect("json");
            assert_eq!(event.id.as_deref(), data["offset"].as_str());
            event_ids.push(event.id.clone().unwrap_or_default());
            ids.push(
                data["data"]["delta"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned(),
            );
        }
    }
    let expected: Vec<String> = (0..25).map(|i| format!("t{i} ")).collect();
    assert_eq!(ids, expected);

    // A browser's EventSource reconnects to the same URL (`?offset=-1`) with the last
    // id it saw: it resumes after that event, without replaying the history.
    let resumed = c
        .get(format!("{}/api/sessions/s1/stream?offset=-1", server.url))
        .header("last-event-id", &event_ids[22])
        .send()
        .await
        .expect("sse");
    let mut body = resumed.bytes_stream();
    let mut decoder = gapless_core::sse::SseDecoder::new();
    let mut first = None;
    while first.is_none() {
        let event = next_sse_event(&mut body, &mut decoder).await;
        if event.event == "container-agent:token" {
            let data: Value = serde_json::from_str(&event.data).expect("json");
            first = data["data"]["delta"].as_str().map(str::to_owned);
        }
    }
    assert_eq!(first.as_deref(), Some("t23 "));
    server.finish().await;
}

#[tokio::test]
async fn a_session_event_source_resumes_after_up_to_date_and_no_event_passes_for_a_marker() {
    let dir = temp_dir("session-markers");
    let server = ServerProcess::start(&dir, &[]).await;
    let c = client();
    let (status, _) = post_events(&c, &server.url, "m", &token_event("m", "first")).await;
    assert_eq!(status, StatusCode::CREATED);
    let stream = format!("{}/api/sessions/m/stream?offset=now", server.url);
    let r = c.get(&stream).send().await.expect("sse");
    let mut body = r.bytes_stream();
    let mut decoder = gapless_core::sse::SseDecoder::new();
    // Read from `now`, no event comes before the marker: its id is where a browser's
    // EventSource reconnects from (without it, from `now` again, past what came
    // between).
    let marker = next_sse_event(&mut body, &mut decoder).await;
    assert_eq!(marker.event, "up-to-date");
    let data: Value = serde_json::from_str(&marker.data).expect("json");
    assert_eq!(marker.id.as_deref(), data["offset"].as_str());
    assert!(marker.id.is_some());
    drop(body);
    // Events whose types are the markers' names (accepted: unknown kinds are kept).
    let posing = json!([{"type": "closed", "data": {}}, {"type": "up-to-date", "data": {}},
                        {"type": "error", "data": {}}]);
    let (status, _) = post_events(&c, &server.url, "m", &posing).await;
    assert_eq!(status, StatusCode::CREATED);
    let r = c
        .get(&stream)
        .header("last-event-id", marker.id.clone().unwrap_or_default())
        .send()
        .await
        .expect("sse");
    let mut body = r.bytes_stream();
    let mut decoder = gapless_core::sse::SseDecoder::new();
    for kind in ["closed", "up-to-date", "error"] {
        let event = next_sse_event(&mut body, &mut decoder).await;
        assert_eq!(event.event, "message", "{kind} goes as a plain message");
        let data: Value = serde_json::from_str(&event.data).expect("json");
        assert_eq!(
            data["type"], kind,
            "resumed where the marker was: nothing missed"
        );
    }
    let marker = next_sse_event(&mut body, &mut decoder).await;
    assert_eq!(marker.event, "up-to-date");
    server.finish().await;
}

#[tokio::test]
async fn sixteen_concurrent_producers_get_unique_gapless_offsets() {
    let dir = temp_dir("concurrent");
    let server = ServerProcess::start(&dir, &["--durability", "normal"]).await;
    let c = client();
    let url = server.stream("shared");
    create_json(&c, &url).await;
    let per_writer = 40;
    let mut tasks = Vec::new();
    for w in 0..16 {
        let c = c.clone();
        let url = url.clone();
        tasks.push(tokio::spawn(async move {
            let mut offsets = Vec::new();
            for i in 0..per_writer {
                let r = c
                    .post(&url)
                    .header("content-type", "application/json")
                    .body(json!({"w": w, "i": i}).to_string())
                    .send()
                    .await
                    .expect("post");
                assert_eq!(r.status(), StatusCode::NO_CONTENT);
                offsets.push(
                    r.headers()["stream-next-offset"]
                        .to_str()
                        .expect("ascii")
                        .to_owned(),
                );
            }
            offsets
        }));
    }
    let mut all = Vec::new();
    for t in tasks {
        let offsets = t.await.expect("writer");
        assert!(
            offsets.windows(2).all(|w| w[0] < w[1]),
            "one writer's offsets increase"
        );
        all.extend(offsets);
    }
    let unique: HashSet<&String> = all.iter().collect();
    assert_eq!(
        unique.len(),
        16 * per_writer,
        "no two appends share an offset"
    );
    assert_eq!(
        head_tail(&c, &url).await,
        all.iter().max().cloned().unwrap_or_default()
    );
    // Gapless: the offsets are exactly positions 1..=640, and a read returns every
    // message once, each writer's in its order.
    let mut sorted = all.clone();
    sorted.sort();
    let positions: Vec<u64> = sorted
        .iter()
        .map(|o| {
            o.rsplit('_')
                .next()
                .and_then(|p| p.parse().ok())
                .unwrap_or(0)
        })
        .collect();
    assert_eq!(
        positions,
        (1..=(16 * per_writer) as u64).collect::<Vec<_>>()
    );
    let messages: Vec<Value> = c
        .get(format!("{url}?offset=-1"))
        .send()
        .await
        .expect("get")
        .json()
        .await
        .expect("json");
    assert_eq!(messages.len(), 16 * per_writer);
    for w in 0..16 {
        let seq: Vec<i64> = messages
            .iter()
            .filter(|m| m["w"] == w)
            .map(|m| m["i"].as_i64().unwrap_or(-1))
            .collect();
        assert_eq!(seq, (0..per_writer as i64).collect::<Vec<_>>());
    }
    server.finish().await;
}

#[tokio::test]
async fn session_producers_get_the_protocol_answers_and_headers() {
    let dir = temp_dir("session-producer");
    let server = ServerProcess::start(&dir, &["--memory"]).await;
    let c = client();
    let post = |epoch: u64, seq: u64| {
        c.post(format!("{}/api/sessions/sp/events", server.url))
            .header("producer-id", "runner")
            .header("producer-epoch", epoch.to_string())
            .header("producer-seq", seq.to_string())
            .json(&token_event("sp", &format!("e{epoch}s{seq} ")))
            .send()
    };
    let header = |r: &reqwest::Response, name: &str| {
        r.headers()
            .get(name)
            .map(|v| v.to_str().expect("ascii").to_owned())
    };
    let r = post(2, 0).await.expect("post");
    assert_eq!(r.status(), StatusCode::CREATED);
    assert_eq!(header(&r, "producer-epoch").as_deref(), Some("2"));
    assert_eq!(header(&r, "producer-seq").as_deref(), Some("0"));
    // A retry is a duplicate, told as such, with the producer's state.
    let r = post(2, 0).await.expect("post");
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(header(&r, "producer-seq").as_deref(), Some("0"));
    let body: Value = r.json().await.expect("json");
    assert_eq!(body["duplicate"], true);
    // A fenced producer learns the epoch it is fenced by.
    let r = post(1, 0).await.expect("post");
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    assert_eq!(header(&r, "producer-epoch").as_deref(), Some("2"));
    let body: Value = r.json().await.expect("json");
    assert_eq!(body["error"]["code"], "forbidden");
    // A gap names what was expected and what came.
    let r = post(2, 5).await.expect("post");
    assert_eq!(r.status(), StatusCode::CONFLICT);
    assert_eq!(header(&r, "producer-expected-seq").as_deref(), Some("1"));
    assert_eq!(header(&r, "producer-received-seq").as_deref(), Some("5"));
    assert_eq!(history(&c, &server.url, "sp").await.len(), 1);
    server.finish().await;
}

#[tokio::test]
async fn a_page_of_session_history_is_capped_in_bytes_and_the_pages_hold_it_all() {
    let dir = temp_dir("session-pages");
    let server = ServerProcess::start(&dir, &[]).await;
    let c = client();
    // Six events of 1 MiB each, one per request.
    let big = "x".repeat(1 << 20);
    for i in 0..6 {
        let (status, body) = post_events(
            &c,
            &server.url,
            "big",
            &token_event("big", &format!("{i}{big}")),
        )
        .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
    }
    let page: Value = c
        .get(format!(
            "{}/api/sessions/big/events?after=-1&limit=1000",
            server.url
        ))
        .send()
        .await
        .expect("get")
        .json()
        .await
        .expect("json");
    let n = page["events"].as_array().map_or(0, Vec::len);
    assert!((1..6).contains(&n), "{n} events in the first page");
    assert_eq!(page["upToDate"], false);
    let all = history(&c, &server.url, "big").await;
    let firsts: Vec<String> = all
        .iter()
        .map(|e| e["data"]["delta"].as_str().unwrap_or_default()[..1].to_owned())
        .collect();
    assert_eq!(firsts, ["0", "1", "2", "3", "4", "5"]);
    server.finish().await;
}

#[tokio::test]
async fn offsets_of_a_deleted_stream_are_refused_by_the_one_created_again_at_its_path() {
    let (_, server, c, url) = server_with_json_stream("recreate", "r").await;
    for n in 0..3 {
        let body = format!(r#"{{"old":{n}}}"#);
        let r = c
            .post(&url)
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .expect("post");
        assert_eq!(r.status(), StatusCode::NO_CONTENT);
    }
    let old_tail = head_tail(&c, &url).await;
    let r = c.delete(&url).send().await.expect("delete");
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    create_json(&c, &url).await;
    let r = post_json(&c, &url, r#"{"new":0}"#).await;
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    let new_tail = head_tail(&c, &url).await;
    // The new stream's offsets sort after the old one's...
    assert!(new_tail > old_tail, "{new_tail} after {old_tail}");
    // ...and a reader resuming at an old offset is told its stream is gone, rather
    // than being served the new stream from the old position (which skipped data).
    for live in ["", "&live=long-poll", "&live=sse"] {
        let r = c
            .get(format!("{url}?offset={old_tail}{live}"))
            .send()
            .await
            .expect("get");
        assert_eq!(r.status(), StatusCode::GONE, "{live}");
    }
    let all: Vec<Value> = c
        .get(format!("{url}?offset=-1"))
        .send()
        .await
        .expect("get")
        .json()
        .await
        .expect("json");
    assert_eq!(all, [json!({"new": 0})]);
    // Sessions alike: a session created again after its stream was deleted.
    let (status, first) = post_events(&c, &server.url, "d1", &token_event("d1", "a")).await;
    assert_eq!(status, StatusCode::CREATED);
    let old = first["nextOffset"].as_str().expect("offset").to_owned();
    let r = c
        .delete(server.stream("sessions/d1"))
        .send()
        .await
        .expect("delete");
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    let (status, again) = post_events(&c, &server.url, "d1", &token_event("d1", "b")).await;
    assert_eq!(status, StatusCode::CREATED);
    let offset = again["offsets"][0].as_str().expect("offset");
    assert!(offset > old.as_str(), "{offset} after {old}");
    let r = c
        .get(format!("{}/api/sessions/d1/events?after={old}", server.url))
        .send()
        .await
        .expect("get");
    assert_eq!(r.status(), StatusCode::GONE);
    let body: Value = r.json().await.expect("json");
    assert_eq!(body["error"]["code"], "offset_gone");
    server.finish().await;
}

#[tokio::test]
async fn a_fork_takes_its_sources_offsets_up_to_its_fork_point_and_a_fork_created_again_refuses_the_earlier_ones(
) {
    let (_, server, c, source) = server_with_json_stream("fork-epochs", "fsrc").await;
    for body in [r#"{"s":0}"#, r#"{"s":1}"#] {
        assert_eq!(
            post_json(&c, &source, body).await.status(),
            StatusCode::NO_CONTENT
        );
    }
    let fork_point = head_tail(&c, &source).await;
    let fork = server.stream("ffork");
    let create_fork = || async {
        let r = c
            .put(&fork)
            .header("content-type", "application/json")
            .header("stream-forked-from", "/v1/stream/fsrc")
            .send()
            .await
            .expect("fork");
        assert_eq!(r.status(), StatusCode::CREATED);
    };
    create_fork().await;
    // Up to the fork point, the fork's offsets are the source's (the same offset space).
    assert_eq!(head_tail(&c, &fork).await, fork_point);
    let r = c
        .get(format!("{fork}?offset=-1"))
        .send()
        .await
        .expect("get");
    assert_eq!(r.headers()["stream-next-offset"], fork_point.as_str());
    // And over SSE: the control event after the shared data names the fork point.
    let r = c
        .get(format!("{fork}?offset=-1&live=sse"))
        .send()
        .await
        .expect("sse");
    let mut body = r.bytes_stream();
    let mut seen = String::new();
    let control = format!("\"streamNextOffset\":\"{fork_point}\"");
    assert!(
        read_until(&mut body, &mut seen, &control, Duration::from_secs(5)).await,
        "{seen}"
    );
    drop(body);
    assert_eq!(
        post_json(&c, &fork, r#"{"f":0}"#).await.status(),
        StatusCode::NO_CONTENT
    );
    let read = |url: String| {
        let c = c.clone();
        async move {
            let r = c.get(url).send().await.expect("get");
            let status = r.status();
            (status, r.json::<Value>().await.unwrap_or(Value::Null))
        }
    };
    // The source's offset of the fork point reads the fork's own data from there.
    let (status, body) = read(format!("{fork}?offset={fork_point}")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body, json!([{"f": 0}]));
    let fork_tail = head_tail(&c, &fork).await;
    assert_ne!(
        &fork_tail[..17],
        &fork_point[..17],
        "its own data in an epoch of its own"
    );
    assert!(fork_tail > fork_point, "{fork_tail} after {fork_point}");
    // The source's offsets past the fork point name the source's data, not the fork's.
    assert_eq!(
        post_json(&c, &source, r#"{"s":2}"#).await.status(),
        StatusCode::NO_CONTENT
    );
    let past = head_tail(&c, &source).await;
    assert_eq!(
        read(format!("{fork}?offset={past}")).await.0,
        StatusCode::GONE
    );
    // Deleted and forked again from the same source: the earlier fork's offsets are gone,
    // rather than read as positions of the new fork (which has other data there).
    assert_eq!(
        c.delete(&fork).send().await.expect("delete").status(),
        StatusCode::NO_CONTENT
    );
    create_fork().await;
    for live in ["", "&live=long-poll"] {
        let (status, _) = read(format!("{fork}?offset={fork_tail}{live}")).await;
        assert_eq!(status, StatusCode::GONE, "{live}");
    }
    let (status, body) = read(format!("{fork}?offset=-1")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body, json!([{"s": 0}, {"s": 1}, {"s": 2}]));
    server.finish().await;
}

#[tokio::test]
async fn session_input_at_the_edges_gets_clear_answers() {
    let dir = temp_dir("session-edges");
    let server = ServerProcess::start(&dir, &["--memory"]).await;
    let c = client();
    // An event's own `offset` is the server's to assign: dropped unread, whatever it is.
    let mut event = token_event("e", "x");
    event["offset"] = json!("a/b");
    let (status, body) = post_events(&c, &server.url, "e", &event).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    // A query that does not decode is a JSON error too.
    let r = c
        .get(format!(
            "{}/api/sessions/e/events?limit=1&limit=2",
            server.url
        ))
        .send()
        .await
        .expect("get");
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    let body: Value = r.json().await.expect("json");
    assert_eq!(body["error"]["code"], "invalid_query");
    // A timestamp no clock gives is refused.
    let mut event = token_event("e", "y");
    event["timestamp"] = json!(1e30);
    let (status, body) = post_events(&c, &server.url, "e", &event).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(history(&c, &server.url, "e").await.len(), 1);
    // `..` is not a session id (clients normalise it out of URLs: sent raw here).
    let all = exchange(
        &server,
        b"POST /api/sessions/../events HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\n\
          Content-Length: 2\r\nConnection: close\r\n\r\n{}",
        false,
    )
    .await;
    let (answer, _) = next_response(&all, false);
    assert_eq!(answer.status, 400);
    assert!(String::from_utf8_lossy(&answer.body).contains("invalid_session_id"));
    // A stream under `sessions/` that does not hold JSON is not shown as an empty
    // session.
    let url = server.stream("sessions/plain");
    c.put(&url)
        .header("content-type", "text/plain")
        .body("bytes")
        .send()
        .await
        .expect("put");
    for route in ["events", "stream", "view"] {
        let r = c
            .get(format!("{}/api/sessions/plain/{route}", server.url))
            .send()
            .await
            .expect("get");
        assert_eq!(r.status(), StatusCode::CONFLICT, "{route}");
        let body: Value = r.json().await.expect("json");
        assert_eq!(body["error"]["code"], "not_a_session", "{route}");
    }
    // Each view request's stall threshold judges the one folded view.
    let quiet_since = gapless_client::session::wall_clock().as_millis() - 5_000;
    let running = json!({"type": "container-agent:status", "timestamp": quiet_since,
        "data": {"taskId": "t", "sessionId": "quiet", "stage": "running", "message": "m"}});
    let (status, body) = post_events(&c, &server.url, "quiet", &running).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    for (threshold, state) in [(1_000, "stalled"), (600_000, "running"), (1_000, "stalled")] {
        let v: Value = c
            .get(format!(
                "{}/api/sessions/quiet/view?stall_after_ms={threshold}",
                server.url
            ))
            .send()
            .await
            .expect("view")
            .json()
            .await
            .expect("json");
        assert_eq!(v["status"]["state"], state, "{threshold}: {v}");
    }
    // A producer's first append to a session that does not exist yet, past sequence
    // 0, is refused, and leaves no session behind.
    let r = c
        .post(format!("{}/api/sessions/late/events", server.url))
        .header("producer-id", "p")
        .header("producer-epoch", "0")
        .header("producer-seq", "5")
        .json(&token_event("late", "x"))
        .send()
        .await
        .expect("post");
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    let r = c
        .head(server.stream("sessions/late"))
        .send()
        .await
        .expect("head");
    assert_eq!(r.status(), StatusCode::NOT_FOUND, "no session was made");
    server.finish().await;
}

#[tokio::test]
async fn a_subscription_sees_a_stream_created_again_at_its_path_from_its_start() {
    let dir = temp_dir("subscription-recreate");
    let server = ServerProcess::start(&dir, &["--subscriptions"]).await;
    let c = client();
    let url = server.stream("w");
    create_json(&c, &url).await;
    for body in [r#"{"n":1}"#, r#"{"n":2}"#] {
        assert_eq!(
            post_json(&c, &url, body).await.status(),
            StatusCode::NO_CONTENT
        );
    }
    let sub = server.stream("__ds/subscriptions/s1");
    let r = c
        .put(&sub)
        .json(&json!({"type": "pull-wake", "wake_stream": "wakes", "streams": ["w"]}))
        .send()
        .await
        .expect("put");
    assert!(r.status().is_success(), "{}", r.status());
    // Linked at its tail: nothing pending.
    let r = c
        .post(format!("{sub}/claim"))
        .json(&json!({"worker": "x"}))
        .send()
        .await
        .expect("claim");
    assert_eq!(r.status(), StatusCode::CONFLICT);
    // The stream is deleted and created again, shorter than it was acknowledged to.
    assert_eq!(
        c.delete(&url).send().await.expect("delete").status(),
        StatusCode::NO_CONTENT
    );
    create_json(&c, &url).await;
    assert_eq!(
        post_json(&c, &url, r#"{"new":1}"#).await.status(),
        StatusCode::NO_CONTENT
    );
    let tail = head_tail(&c, &url).await;
    let r = c
        .post(format!("{sub}/claim"))
        .json(&json!({"worker": "x"}))
        .send()
        .await
        .expect("claim");
    assert_eq!(
        r.status(),
        StatusCode::OK,
        "the new stream's data is pending"
    );
    let claimed: Value = r.json().await.expect("json");
    let link = &claimed["streams"][0];
    assert_eq!(link["has_pending"], true);
    assert_eq!(link["tail_offset"], tail.as_str());
    // Acknowledged from the new stream's start (its epoch, position 0).
    let acked = link["acked_offset"].as_str().expect("acked");
    assert_eq!(&acked[..17], &tail[..17], "{acked} in the epoch of {tail}");
    assert!(acked.ends_with("_0000000000000000"), "{acked}");
    server.finish().await;
}

/// A server with subscriptions and the one token `server` (writes anything), whose
/// JSON stream `w` it made; its data under a directory named `name`.
async fn subscriptions_with_a_token(name: &str) -> (ServerProcess, Client, String) {
    let dir = temp_dir(name);
    let server =
        ServerProcess::start_with_tokens(&dir, "server write *\n", &["--subscriptions"]).await;
    let c = client();
    let url = server.stream("w");
    let r = c
        .put(&url)
        .bearer_auth("server")
        .header("content-type", "application/json")
        .send()
        .await
        .expect("put");
    assert_eq!(r.status(), StatusCode::CREATED);
    (server, c, url)
}

#[tokio::test]
async fn subscription_routes_open_to_callers_without_a_token_give_nothing_away() {
    let (server, c, url) = subscriptions_with_a_token("subscription-open").await;
    let put = |id: &str| {
        c.put(server.stream(&format!("__ds/subscriptions/{id}")))
            .bearer_auth("server")
            .json(&json!({"type": "pull-wake", "wake_stream": "wakes", "streams": ["w"]}))
            .send()
    };
    // Ids that could not name their callback are refused, and nothing is made.
    let long = "a".repeat(129);
    for id in ["", "a%3Fb", "a%20b", &long] {
        let r = put(id).await.expect("put");
        assert_eq!(r.status(), StatusCode::BAD_REQUEST, "{id:?}");
    }
    let r = c
        .get(server.stream("__ds/subscriptions"))
        .bearer_auth("server")
        .send()
        .await
        .expect("list");
    let listed = r.text().await.expect("text");
    assert!(!listed.contains("wakes"), "nothing made: {listed}");
    let r = put("pw").await.expect("put");
    assert!(r.status().is_success(), "{}", r.status());
    // Without a token issued for it, an ack or a callback tells nothing of whether a
    // subscription exists, nor of its type: 401 for each.
    for path in ["pw/ack", "pw/callback", "nope/ack", "nope/release"] {
        let r = c
            .post(server.stream(&format!("__ds/subscriptions/{path}")))
            .json(&json!({"wake_id": "w", "generation": 1}))
            .send()
            .await
            .expect("post");
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED, "{path}");
    }
    // Their bodies are read before that, so they are kept small: 64 KiB at most.
    let big = format!("[{}0]", "0,".repeat(40 * 1024));
    let r = c
        .post(server.stream("__ds/subscriptions/pw/ack"))
        .header("content-type", "application/json")
        .body(big)
        .send()
        .await
        .expect("post");
    assert_eq!(r.status(), StatusCode::PAYLOAD_TOO_LARGE);
    // The keys that sign webhooks are for receivers, which hold no token.
    let r = c
        .get(server.stream("__ds/jwks.json"))
        .send()
        .await
        .expect("jwks");
    assert_eq!(r.status(), StatusCode::OK);
    let keys: Value = r.json().await.expect("json");
    assert!(
        keys["keys"].as_array().is_some_and(|k| !k.is_empty()),
        "{keys}"
    );
    // A callback token is a bearer token whatever the case of the scheme's name.
    let r = c
        .post(url.clone())
        .bearer_auth("server")
        .header("content-type", "application/json")
        .body(r#"{"n":1}"#)
        .send()
        .await
        .expect("append");
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    let claimed: Value = c
        .post(server.stream("__ds/subscriptions/pw/claim"))
        .header("authorization", "BEARER server")
        .json(&json!({"worker": "x"}))
        .send()
        .await
        .expect("claim")
        .json()
        .await
        .expect("json");
    let token = claimed["token"].as_str().expect("a callback token");
    let r = c
        .post(server.stream("__ds/subscriptions/pw/ack"))
        .header("authorization", format!("bearer {token}"))
        .json(
            &json!({"wake_id": claimed["wake_id"], "generation": claimed["generation"],
                      "acks": [], "done": true}),
        )
        .send()
        .await
        .expect("ack");
    assert_eq!(
        r.status(),
        StatusCode::OK,
        "{}",
        r.text().await.unwrap_or_default()
    );
    server.finish().await;
}

#[tokio::test]
async fn a_pull_wake_worker_acks_with_its_callback_token_and_its_acks_extend_the_lease() {
    let (server, c, url) = subscriptions_with_a_token("subscription-auth").await;
    let sub = server.stream("__ds/subscriptions/s1");
    let r = c
        .put(&sub)
        .bearer_auth("server")
        .json(
            &json!({"type": "pull-wake", "wake_stream": "wakes", "streams": ["w"],
                      "lease_ttl_ms": 2000}),
        )
        .send()
        .await
        .expect("put");
    assert!(r.status().is_success(), "{}", r.status());
    let r = c
        .post(&url)
        .bearer_auth("server")
        .header("content-type", "application/json")
        .body(r#"{"n":1}"#)
        .send()
        .await
        .expect("append");
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    let claimed: Value = c
        .post(format!("{sub}/claim"))
        .bearer_auth("server")
        .json(&json!({"worker": "x"}))
        .send()
        .await
        .expect("claim")
        .json()
        .await
        .expect("json");
    let token = claimed["token"]
        .as_str()
        .expect("a callback token")
        .to_owned();
    let ack = |done: bool| {
        let body = json!({
            "wake_id": claimed["wake_id"],
            "generation": claimed["generation"],
            "acks": [],
            "done": done,
        });
        c.post(format!("{sub}/ack"))
            .bearer_auth(&token)
            .json(&body)
            .send()
    };
    // Heartbeats every 500 ms for 4 s: twice the lease, kept alive by each ack.
    for _ in 0..8 {
        tokio::time::sleep(Duration::from_millis(500)).await;
        let r = ack(false).await.expect("ack");
        assert_eq!(
            r.status(),
            StatusCode::OK,
            "{}",
            r.text().await.unwrap_or_default()
        );
    }
    // Then silence past the lease: the claim is gone, and a late ack is refused.
    tokio::time::sleep(Duration::from_millis(3500)).await;
    let r = ack(true).await.expect("ack");
    assert!(
        r.status().is_client_error(),
        "an ack after the lease ran out: {}",
        r.status()
    );
    server.finish().await;
}

#[tokio::test]
async fn idempotent_producer_state_survives_kill_9() {
    let dir = temp_dir("producer-restart");
    let server = ServerProcess::start(&dir, &[]).await;
    let c = client();
    let url = server.stream("p");
    c.put(&url)
        .header("content-type", "text/plain")
        .send()
        .await
        .expect("put");
    let append = |seq: u64| {
        c.post(&url)
            .header("content-type", "text/plain")
            .header("producer-id", "runner")
            .header("producer-epoch", "3")
            .header("producer-seq", seq.to_string())
            .body(format!("m{seq};"))
    };
    for seq in 0..5 {
        assert_eq!(
            append(seq).send().await.expect("post").status(),
            StatusCode::OK
        );
    }
    // A closed stream and a stream with a TTL, to check they come back as they were.
    let closed = server.stream("closed");
    c.put(&closed)
        .header("content-type", "text/plain")
        .body("end")
        .send()
        .await
        .expect("put");
    c.post(&closed)
        .header("stream-closed", "true")
        .send()
        .await
        .expect("close");
    let ttl = server.stream("ttl");
    c.put(&ttl)
        .header("content-type", "text/plain")
        .header("stream-ttl", "3600")
        .send()
        .await
        .expect("put");
    let addr = server.addr().to_owned();
    server.kill9().await;
    let server = ServerProcess::start_on(&dir, &addr, &[]).await;
    let r = c.head(&closed).send().await.expect("head");
    assert_eq!(r.headers()["stream-closed"], "true", "closure survives");
    let r = c
        .post(&closed)
        .header("content-type", "text/plain")
        .body("more")
        .send()
        .await
        .expect("post");
    assert_eq!(r.status(), StatusCode::CONFLICT);
    let r = c.head(&ttl).send().await.expect("head");
    assert_eq!(r.headers()["stream-ttl"], "3600", "TTL survives");
    // The retry of an acknowledged append is recognised as a duplicate after restart.
    let r = append(4).send().await.expect("retry");
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    assert_eq!(r.headers()["producer-seq"], "4");
    assert_eq!(
        append(5).send().await.expect("next").status(),
        StatusCode::OK
    );
    let gap = append(9).send().await.expect("gap");
    assert_eq!(gap.status(), StatusCode::CONFLICT);
    assert_eq!(gap.headers()["producer-expected-seq"], "6");
    let body = c
        .get(format!("{url}?offset=-1"))
        .send()
        .await
        .expect("get")
        .text()
        .await
        .expect("text");
    assert_eq!(body, "m0;m1;m2;m3;m4;m5;");
    server.finish().await;
}

#[tokio::test]
async fn data_answers_are_cacheable_by_all_only_without_tokens_and_never_from_now() {
    let c = client();
    // Without tokens: catch-up answers are for shared caches too, with an ETag.
    let dir = temp_dir("cache-open");
    let server = ServerProcess::start(&dir, &["--long-poll-timeout-ms", "60000"]).await;
    let url = server.stream("cached");
    create_json(&c, &url).await;
    post_json(&c, &url, r#"{"n":1}"#).await;
    let r = c.get(format!("{url}?offset=-1")).send().await.expect("get");
    assert_eq!(r.status(), StatusCode::OK);
    assert!(r.headers()["cache-control"]
        .to_str()
        .expect("ascii")
        .starts_with("public,"));
    assert!(r.headers().contains_key("etag"));
    // A long-poll from `now` that data answers: what the next `now` must not be
    // served from a cache.
    let mut poll = tokio::spawn(c.get(format!("{url}?offset=now&live=long-poll")).send());
    // Appends until the poll answers (on a loaded machine it may reach the server
    // after the first of them, and then waits for the next).
    let mut appended = 1;
    let r = loop {
        appended += 1;
        let r = c
            .post(&url)
            .header("content-type", "application/json")
            .body(format!(r#"{{"n":{appended}}}"#))
            .send()
            .await
            .expect("post");
        assert!(r.status().is_success(), "{}", r.status());
        match tokio::time::timeout(Duration::from_millis(500), &mut poll).await {
            Ok(answer) => break answer.expect("task").expect("long-poll"),
            Err(_) => assert!(appended < 60, "the poll never ended at an append"),
        }
    };
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.headers()["cache-control"], "no-store");
    assert!(!r.headers().contains_key("etag"), "{:?}", r.headers());
    let body = r.text().await.expect("body");
    assert!(body.starts_with(r#"[{"n":"#), "data after now: {body}");
    server.finish().await;

    // With tokens: private, so that a shared cache never answers a request without
    // one with what a token read.
    let dir = temp_dir("cache-tokens");
    let server = ServerProcess::start_with_tokens(&dir, "w write *\n", &[]).await;
    let url = server.stream("cached");
    let r = c
        .put(&url)
        .bearer_auth("w")
        .header("content-type", "application/json")
        .send()
        .await
        .expect("put");
    assert_eq!(r.status(), StatusCode::CREATED);
    let r = c
        .get(format!("{url}?offset=-1"))
        .bearer_auth("w")
        .send()
        .await
        .expect("get");
    assert_eq!(r.status(), StatusCode::OK);
    assert!(r.headers()["cache-control"]
        .to_str()
        .expect("ascii")
        .starts_with("private,"));
    server.finish().await;
}

#[tokio::test]
async fn percent_encoded_names_are_one_name_to_routes_forks_and_token_scopes() {
    let dir = temp_dir("encoded-names");
    let server = ServerProcess::start_with_tokens(&dir, "w write é/\n", &[]).await;
    let c = client();
    // "é/a b", as a browser's URL spells it: the token's scope covers it.
    let source = server.stream("%C3%A9/a%20b");
    let r = c
        .put(&source)
        .bearer_auth("w")
        .header("content-type", "application/json")
        .send()
        .await
        .expect("put");
    assert_eq!(r.status(), StatusCode::CREATED);
    let r = c
        .post(&source)
        .bearer_auth("w")
        .header("content-type", "application/json")
        .body(r#"{"n":1}"#)
        .send()
        .await
        .expect("post");
    assert!(r.status().is_success(), "{}", r.status());
    // A fork names its source as the source's URL does.
    let fork = server.stream("%C3%A9/fork");
    let r = c
        .put(&fork)
        .bearer_auth("w")
        .header("content-type", "application/json")
        .header("stream-forked-from", "/v1/stream/%C3%A9/a%20b")
        .send()
        .await
        .expect("fork");
    assert_eq!(r.status(), StatusCode::CREATED, "{:?}", r.text().await);
    let r = c
        .get(format!("{fork}?offset=-1"))
        .bearer_auth("w")
        .send()
        .await
        .expect("read");
    assert_eq!(r.text().await.expect("body"), r#"[{"n":1}]"#);
    // Outside the scope, encoded or not, still refused.
    let r = c
        .put(server.stream("%C3%A8/x"))
        .bearer_auth("w")
        .header("content-type", "application/json")
        .send()
        .await
        .expect("put");
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    server.finish().await;
}

#[tokio::test]
async fn a_malformed_append_to_a_closed_stream_is_told_it_is_closed() {
    let dir = temp_dir("closed-first");
    let server = ServerProcess::start(&dir, &[]).await;
    let c = client();
    let (closed, open) = (server.stream("closed-first"), server.stream("open"));
    for url in [&closed, &open] {
        create_json(&c, url).await;
        post_json(&c, url, r#"{"n":1}"#).await;
    }
    let r = c
        .post(&closed)
        .header("stream-closed", "true")
        .send()
        .await
        .expect("close");
    assert!(r.status().is_success(), "{}", r.status());
    let tail = head_tail(&c, &closed).await;
    // A fork closed at its fork point, whose tail is written in its source's epoch.
    let fork = server.stream("closed-fork");
    let r = c
        .put(&fork)
        .header("content-type", "application/json")
        .header("stream-forked-from", "open")
        .header("stream-closed", "true")
        .send()
        .await
        .expect("fork");
    assert!(r.status().is_success(), "{}", r.status());
    let fork_tail = head_tail(&c, &fork).await;
    // Malformed JSON, an empty array, a body without a type, no body at all.
    let malformed = |url: &str, i: usize| {
        let post = c.post(url);
        match i {
            0 => post.header("content-type", "application/json").body("{"),
            1 => post.header("content-type", "application/json").body("[]"),
            2 => post.body(r#"{"n":2}"#),
            _ => post.header("content-type", "application/json"),
        }
    };
    for i in 0..4 {
        let r = malformed(&closed, i).send().await.expect("post");
        assert_eq!(r.status(), StatusCode::CONFLICT, "case {i}");
        assert_eq!(r.headers()["stream-closed"], "true", "case {i}");
        assert_eq!(r.headers()["stream-next-offset"], tail.as_str(), "case {i}");
        let r = malformed(&fork, i).send().await.expect("post");
        assert_eq!(r.status(), StatusCode::CONFLICT, "fork, case {i}");
        assert_eq!(
            r.headers()["stream-next-offset"],
            fork_tail.as_str(),
            "fork, case {i}"
        );
        // An open stream refuses the same as malformed.
        let r = malformed(&open, i).send().await.expect("post");
        assert_eq!(r.status(), StatusCode::BAD_REQUEST, "case {i}");
    }
    server.finish().await;
}

#[tokio::test]
async fn auth_tokens_guard_every_route_by_scope() {
    let dir = temp_dir("auth");
    let tokens = "# test tokens\nreader-1 read sessions/\nwriter-1 write *\n\
                  reader-s read sessions/s\npublic write public/\n";
    let server = ServerProcess::start_with_tokens(&dir, tokens, &[]).await;
    let c = client();
    let url = server.stream("private/x");
    let r = c.put(&url).send().await.expect("put");
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(r.headers()["www-authenticate"], "Bearer");
    let r = c.put(&url).bearer_auth("wrong").send().await.expect("put");
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    let r = c
        .put(&url)
        .bearer_auth("writer-1")
        .send()
        .await
        .expect("put");
    assert_eq!(r.status(), StatusCode::CREATED);
    let r = c
        .get(&url)
        .bearer_auth("reader-1")
        .send()
        .await
        .expect("get");
    assert_eq!(
        r.status(),
        StatusCode::FORBIDDEN,
        "outside the reader's prefix"
    );
    assert_eq!(
        c.head(&url).send().await.expect("head").status(),
        StatusCode::UNAUTHORIZED
    );
    // A fork reads its source: a token that may write its own streams may not fork
    // one it could not read.
    let fork = |source: &str| {
        c.put(server.stream("public/copy"))
            .bearer_auth("public")
            .header("Stream-Forked-From", source)
            .send()
    };
    let r = fork("/v1/stream/private/x").await.expect("fork");
    assert_eq!(r.status(), StatusCode::FORBIDDEN, "a fork of another scope");
    let r = c
        .get(format!("{}?offset=-1", server.stream("public/copy")))
        .bearer_auth("public")
        .send()
        .await
        .expect("get");
    assert_eq!(r.status(), StatusCode::NOT_FOUND, "nothing was created");
    let r = c
        .put(server.stream("public/source"))
        .bearer_auth("public")
        .send()
        .await
        .expect("put");
    assert_eq!(r.status(), StatusCode::CREATED);
    let r = fork("/v1/stream/public/source").await.expect("fork");
    assert_eq!(r.status(), StatusCode::CREATED, "a fork within its scope");
    // Nothing was created by the refused requests. (The session API's refusals are
    // JSON, as its other errors.)
    let (status, body) = post_events(&c, &server.url, "s", &token_event("s", "x")).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(body["error"]["code"], "unauthorized", "{body}");
    let r = c
        .post(format!("{}/api/sessions/s/events", server.url))
        .bearer_auth("reader-1")
        .json(&token_event("s", "x"))
        .send()
        .await
        .expect("post");
    assert_eq!(
        r.status(),
        StatusCode::FORBIDDEN,
        "a read token cannot write"
    );
    let r = c
        .post(format!("{}/api/sessions/s/events", server.url))
        .bearer_auth("writer-1")
        .json(&token_event("s", "x"))
        .send()
        .await
        .expect("post");
    assert_eq!(r.status(), StatusCode::CREATED);
    let r = c
        .get(format!("{}/api/sessions/s/events", server.url))
        .bearer_auth("reader-1")
        .send()
        .await
        .expect("get");
    assert_eq!(r.status(), StatusCode::OK);
    // The list of sessions shows what the token may read: `sessions/s` covers the
    // session `s`, not `s2`.
    for id in ["other", "s2"] {
        let r = c
            .post(format!("{}/api/sessions/{id}/events", server.url))
            .bearer_auth("writer-1")
            .json(&token_event(id, "x"))
            .send()
            .await
            .expect("post");
        assert_eq!(r.status(), StatusCode::CREATED);
    }
    let r = c
        .get(format!("{}/api/sessions/s2/events", server.url))
        .bearer_auth("reader-s")
        .send()
        .await
        .expect("get");
    assert_eq!(
        r.status(),
        StatusCode::FORBIDDEN,
        "s2 is not under sessions/s"
    );
    for (token, expected) in [
        ("writer-1", &["other", "s", "s2"][..]),
        ("reader-1", &["other", "s", "s2"][..]),
        ("reader-s", &["s"][..]),
    ] {
        let ids = session_ids(
            c.get(format!("{}/api/sessions", server.url))
                .bearer_auth(token),
        )
        .await;
        assert_eq!(ids, expected, "{token}");
    }
    assert_eq!(
        c.get(format!("{}/healthz", server.url))
            .send()
            .await
            .expect("health")
            .status(),
        StatusCode::OK
    );
    // Preflights need no token.
    let r = c
        .request(reqwest::Method::OPTIONS, &url)
        .header("origin", "http://example.test")
        .header("access-control-request-method", "POST")
        .send()
        .await
        .expect("options");
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    server.finish().await;
}

#[tokio::test]
async fn a_sessions_stream_takes_only_the_events_the_session_api_would() {
    let dir = temp_dir("session-plain");
    let server = ServerProcess::start(&dir, &["--memory", "--strict-events"]).await;
    let c = client();
    let (status, body) = post_events(&c, &server.url, "s1", &token_event("s1", "one")).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let stream = server.stream("sessions/s1");
    let refused = [
        json!({"type": "bogus:kind", "data": {}}).to_string(),
        json!({"type": "container-agent:complete", "data": {"taskId": "t", "sessionId": "s1", "status": 42}}).to_string(),
        "5".to_owned(),
        format!("[{}, 5]", token_event("s1", "two")),
        // An offset of its own, which readers would take for its place.
        {
            let mut event = token_event("s1", "two");
            event["offset"] = json!("0000000000000000_0000000000000009");
            event.to_string()
        },
    ];
    for body in &refused {
        let r = post_json(&c, &stream, body).await;
        assert_eq!(r.status(), StatusCode::BAD_REQUEST, "{body}");
        let why = r.text().await.expect("text");
        assert!(why.contains("event "), "{body}: {why}");
    }
    // Created with events: the same check, and no stream made by a refusal.
    let other = server.stream("sessions/s2");
    let r = c
        .put(&other)
        .header("content-type", "application/json")
        .body(refused[0].clone())
        .send()
        .await
        .expect("put");
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    let r = c.head(&other).send().await.expect("head");
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    // Nor forked from a stream that is not a session's; from a session's, it is.
    let loose = server.stream("loose");
    create_json(&c, &loose).await;
    for (source, status) in [
        ("loose", StatusCode::BAD_REQUEST),
        ("sessions/s1", StatusCode::CREATED),
    ] {
        let r = c
            .put(&other)
            .header("content-type", "application/json")
            .header("stream-forked-from", source)
            .send()
            .await
            .expect("fork");
        assert_eq!(r.status(), status, "a fork of {source}");
    }
    let r = c.delete(&other).send().await.expect("delete");
    assert!(r.status().is_success(), "{}", r.status());
    // A typed event is taken on the stream route too (as the native session
    // producer writes), and stored as it was sent.
    let r = post_json(&c, &stream, token_event("s1", "three").to_string()).await;
    assert!(r.status().is_success(), "{}", r.status());
    let stored: Vec<Value> = c
        .get(format!("{stream}?offset=-1"))
        .send()
        .await
        .expect("get")
        .json()
        .await
        .expect("json");
    let deltas: Vec<&str> = stored
        .iter()
        .filter_map(|e| e["data"]["delta"].as_str())
        .collect();
    assert_eq!(deltas, ["one", "three"], "{stored:?}");
    assert_eq!(stored.len(), 2);
    // Other streams take any JSON.
    let plain = server.stream("not-a-session");
    create_json(&c, &plain).await;
    let r = post_json(&c, &plain, &refused[0]).await;
    assert!(r.status().is_success(), "{}", r.status());
    server.finish().await;
}

#[tokio::test]
async fn a_stream_read_is_never_a_page_of_the_servers_origin() {
    let dir = temp_dir("sandboxed");
    let server = ServerProcess::start(&dir, &["--memory"]).await;
    let c = client();
    let url = server.stream("page");
    let r = c
        .put(&url)
        .header("content-type", "text/html")
        .body("<script>document.title = 'owned'</script>")
        .send()
        .await
        .expect("put");
    assert!(r.status().is_success(), "{}", r.status());
    for query in ["offset=-1", "offset=-1&live=long-poll"] {
        let r = c.get(format!("{url}?{query}")).send().await.expect("get");
        assert_eq!(r.status(), StatusCode::OK, "{query}");
        assert_eq!(r.headers()["content-type"], "text/html", "{query}");
        assert_eq!(
            r.headers()["content-security-policy"],
            "sandbox",
            "{query}: a browser runs no script of it"
        );
    }
    // The demo page is a page of the server's origin, and runs its script.
    let page = c
        .get(format!("{}/", server.url))
        .send()
        .await
        .expect("page");
    assert!(page.headers().get("content-security-policy").is_none());
    server.finish().await;
}

#[tokio::test]
async fn cors_headers_answer_browsers_and_spare_other_clients() {
    let (_, server, c, url) = server_with_json_stream("cors", "cors").await;
    let origin = "http://board.example.test";
    let preflight = c
        .request(reqwest::Method::OPTIONS, &url)
        .header("origin", origin)
        .header("access-control-request-method", "POST")
        .header(
            "access-control-request-headers",
            "producer-id, if-none-match",
        )
        .send()
        .await
        .expect("options");
    assert_eq!(preflight.status(), StatusCode::NO_CONTENT);
    let h = preflight.headers();
    assert_eq!(h["access-control-allow-origin"], origin);
    let allowed = h["access-control-allow-headers"].to_str().expect("ascii");
    assert!(allowed.contains("producer-id") && allowed.contains("if-none-match"));
    assert!(h["access-control-allow-methods"]
        .to_str()
        .expect("ascii")
        .contains("POST"));
    // A browser's cross-origin read may see the protocol's headers.
    let browser = c
        .get(format!("{url}?offset=-1"))
        .header("origin", origin)
        .send()
        .await
        .expect("get");
    assert_eq!(browser.status(), StatusCode::OK);
    let h = browser.headers();
    assert_eq!(h["access-control-allow-origin"], origin);
    let exposed = h["access-control-expose-headers"].to_str().expect("ascii");
    for name in [
        "stream-next-offset",
        "stream-up-to-date",
        "stream-cursor",
        "etag",
    ] {
        assert!(exposed.contains(name), "{name} exposed: {exposed}");
    }
    assert_eq!(h["vary"], "origin");
    // Other clients get the same answer without the CORS headers.
    let plain = c.get(format!("{url}?offset=-1")).send().await.expect("get");
    assert_eq!(plain.status(), StatusCode::OK);
    let h = plain.headers();
    assert!(h.get("access-control-allow-origin").is_none());
    assert!(h.get("access-control-expose-headers").is_none());
    assert_eq!(h["vary"], "origin");
    assert_eq!(h["x-content-type-options"], "nosniff");
    assert!(h.contains_key("stream-next-offset"));
    server.finish().await;
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

#[tokio::test]
async fn requests_pipelined_on_one_connection_are_answered_in_order() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let (_, server, _, _) = server_with_json_stream("pipelined", "p").await;
    let mut conn = tokio::net::TcpStream::connect(server.addr())
        .await
        .expect("connect");
    let post = |body: &str, ct: &str| {
        format!(
            "POST /v1/stream/p HTTP/1.1\r\nHost: t\r\nContent-Type: {ct}\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        )
    };
    // Appends, a malformed one and one of the wrong type among them, a HEAD and a
    // catch-up read, all sent before any answer is read; the last append arrives in
    // two writes, cut inside its body.
    let json = "application/json";
    let first = [
        post(r#"{"n":0}"#, json),
        post(r#"{"n":"#, json),
        post(r#"[{"n":1},{"n":2}]"#, json),
        post(r#"{"n":9}"#, "text/plain"),
        post(r#"{"n":3}"#, json),
    ]
    .concat();
    let (cut, rest) = first.split_at(first.len() - 3);
    conn.write_all(cut.as_bytes()).await.expect("write");
    tokio::time::sleep(Duration::from_millis(200)).await;
    conn.write_all(rest.as_bytes()).await.expect("write");
    conn.write_all(
        b"HEAD /v1/stream/p HTTP/1.1\r\nHost: t\r\n\r\n\
          GET /v1/stream/p?offset=-1 HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n",
    )
    .await
    .expect("write");
    let mut all = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), conn.read_to_end(&mut all))
        .await
        .expect("the server closes after the last answer")
        .expect("read");
    let mut rest = &all[..];
    let mut statuses = Vec::new();
    for head_request in [false, false, false, false, false, true, false] {
        let (
            Answer {
                status,
                headers,
                body,
            },
            after,
        ) = next_response(rest, head_request);
        let has = |name: &str| headers.iter().any(|(n, _)| n == name);
        assert!(has("date"), "{status} without a date");
        if status == 204 {
            assert!(!has("content-length"), "204 with a length");
        }
        statuses.push(status);
        if head_request {
            let next = headers.iter().find(|(n, _)| n == "stream-next-offset");
            assert!(next.is_some_and(|(_, v)| v.ends_with("_0000000000000004")));
        }
        if status == 200 && !head_request {
            assert_eq!(body, br#"[{"n":0},{"n":1},{"n":2},{"n":3}]"#);
        }
        rest = after;
    }
    assert_eq!(statuses, [204, 400, 204, 409, 204, 200, 200]);
    assert!(rest.is_empty(), "nothing after the last answer");
    server.finish().await;
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

#[tokio::test]
async fn requests_are_framed_and_answered_on_the_wire_as_hyper_frames_and_answers_them() {
    let (_, server, c, url) = server_with_json_stream("framing", "j").await;
    // Lines that end in bare LFs: the head ends where the parser ends it, and the body
    // is the 9 bytes after it (not the bytes after a later CRLF CRLF). (Such a head is
    // hyper's, which answers nothing more once the client has half-closed.)
    let all = exchange(
        &server,
        b"POST /v1/stream/j HTTP/1.1\nHost: t\nContent-Type: application/json\n\
          Content-Length: 9\n\n[{\"a\":1}]\
          GET /v1/stream/j?offset=-1 HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n",
        false,
    )
    .await;
    let (posted, rest) = next_response(&all, false);
    assert_eq!(posted.status, 204);
    let (read, rest) = next_response(rest, false);
    assert_eq!((read.status, &read.body[..]), (200, &br#"[{"a":1}]"#[..]));
    assert!(rest.is_empty(), "{:?}", String::from_utf8_lossy(rest));
    // A 304 has no length (RFC 9110, 8.6: it could only repeat the 200's).
    let etag = read
        .headers
        .iter()
        .find(|(n, _)| n == "etag")
        .map(|(_, v)| v.clone())
        .expect("etag");
    let all = exchange(
        &server,
        format!("GET /v1/stream/j?offset=-1 HTTP/1.1\r\nHost: t\r\nIf-None-Match: {etag}\r\n\r\n")
            .as_bytes(),
        true,
    )
    .await;
    let (cached, rest) = next_response(&all, false);
    assert_eq!(cached.status, 304);
    assert!(
        !cached.headers.iter().any(|(n, _)| n == "content-length"),
        "{:?}",
        cached.headers
    );
    assert!(rest.is_empty());
    // A catch-up read from storage (more than the newest chunks kept in memory) keeps
    // the connection: the request after it is answered.
    let big = server.stream("big");
    let r = c
        .put(&big)
        .header("content-type", "application/octet-stream")
        .send()
        .await
        .expect("put");
    assert_eq!(r.status(), StatusCode::CREATED);
    for i in 0..4u8 {
        let r = c
            .post(&big)
            .header("content-type", "application/octet-stream")
            .body(vec![b'a' + i; 128 * 1024])
            .send()
            .await
            .expect("post");
        assert_eq!(r.status(), StatusCode::NO_CONTENT);
    }
    let all = exchange(
        &server,
        b"GET /v1/stream/big?offset=-1 HTTP/1.1\r\nHost: t\r\n\r\n\
          GET /healthz HTTP/1.1\r\nHost: t\r\n\r\n",
        true,
    )
    .await;
    let (caught_up, rest) = next_response(&all, false);
    assert_eq!(caught_up.status, 200);
    assert!(
        caught_up.body.len() >= 128 * 1024,
        "{}",
        caught_up.body.len()
    );
    assert!(caught_up.body.starts_with(&[b'a'; 128 * 1024]));
    let (health, rest) = next_response(rest, false);
    assert_eq!(health.status, 200, "the request after the read is answered");
    assert!(rest.is_empty());
    // RFC 9112, 3.2: an HTTP/1.1 request names exactly one host (HTTP/1.0 may not).
    for (request, status) in [
        (&b"GET /healthz HTTP/1.1\r\nConnection: close\r\n\r\n"[..], 400),
        (
            b"GET /v1/stream/j?offset=-1 HTTP/1.1\r\nHost: a\r\nHost: b\r\nConnection: close\r\n\r\n",
            400,
        ),
        (
            b"POST /v1/stream/j HTTP/1.1\r\nHost: u@a\r\nContent-Type: application/json\r\n\
              Content-Length: 9\r\nConnection: close\r\n\r\n[{\"b\":2}]",
            400,
        ),
        (b"GET /v1/stream/j?offset=-1 HTTP/1.0\r\n\r\n", 200),
    ] {
        let all = exchange(&server, request, false).await;
        let (answer, _) = next_response(&all, false);
        assert_eq!(answer.status, status, "{:?}", String::from_utf8_lossy(request));
        if status == 200 {
            assert_eq!(answer.body, br#"[{"a":1}]"#, "nothing appended by the refused");
        } else {
            assert!(String::from_utf8_lossy(&answer.body).contains("Host"));
        }
    }
    let _ = url;
    server.finish().await;
}

/// An answer as two servers' answers are compared: status, headers but the date
/// (offsets' epochs, which differ between streams, written `E`), and body.
fn comparable(answer: &Answer) -> (u16, Vec<(String, String)>, String) {
    let mut headers: Vec<(String, String)> = answer
        .headers
        .iter()
        .filter(|(n, _)| n != "date")
        .map(|(n, v)| {
            let v = match v.split_once('_') {
                Some((epoch, pos)) if epoch.len() == 16 => format!("E_{pos}"),
                _ => v.clone(),
            };
            (n.clone(), v)
        })
        .collect();
    headers.sort();
    let body = String::from_utf8_lossy(&answer.body).into_owned();
    (answer.status, headers, body)
}

/// One case of [`lean_and_routed_appends_agree`]: the stream's content type (none:
/// not created), requests sent before (their answers not compared), then the extra
/// header lines and body of the request compared.
type AppendCase = (
    Option<&'static str>,
    Vec<(String, &'static str)>,
    String,
    &'static str,
);

/// Sends each case's append twice, to two streams made alike: with a length (read by
/// the lean layer, without a request built when it is a plain append) and chunked
/// (read by hyper, answered by the router); the answers must be the same. Streams are
/// named under `prefix` and created with `auth` (a whole header line, or nothing).
async fn lean_and_routed_appends_agree(
    server: &ServerProcess,
    c: &Client,
    (prefix, auth): (&str, &str),
    cases: &[AppendCase],
) {
    let send = |name: &str, lines: &str, body: &str, chunked: bool| {
        let framing = if chunked {
            let chunk = if body.is_empty() {
                String::new()
            } else {
                format!("{:x}\r\n{body}\r\n", body.len())
            };
            format!("Transfer-Encoding: chunked\r\n\r\n{chunk}0\r\n\r\n")
        } else {
            format!("Content-Length: {}\r\n\r\n{body}", body.len())
        };
        format!(
            "POST /v1/stream/{name} HTTP/1.1\r\nHost: t\r\n{lines}Connection: close\r\n{framing}"
        )
    };
    for (i, (created, before, lines, body)) in cases.iter().enumerate() {
        let mut answers = Vec::new();
        for (side, chunked) in [("lean", false), ("routed", true)] {
            let name = format!("{prefix}{side}-{i}");
            if let Some(t) = created {
                let put = format!(
                    "PUT /v1/stream/{name} HTTP/1.1\r\nHost: t\r\n{auth}Content-Type: {t}\r\n\
                     Content-Length: 0\r\nConnection: close\r\n\r\n"
                );
                let all = exchange(server, put.as_bytes(), false).await;
                assert_eq!(
                    next_response(&all, false).0.status,
                    201,
                    "case {i}: created"
                );
            }
            for (lines, body) in before {
                exchange(server, send(&name, lines, body, chunked).as_bytes(), false).await;
            }
            let all = exchange(server, send(&name, lines, body, chunked).as_bytes(), false).await;
            let (answer, rest) = next_response(&all, false);
            assert!(
                rest.is_empty(),
                "case {i} {side}: one answer: {:?}",
                String::from_utf8_lossy(&all)
            );
            answers.push(comparable(&answer));
        }
        assert_eq!(answers[0], answers[1], "case {i}: {lines:?} {body:?}");
    }
    // What the lean appends stored reads back as the routed ones' did.
    for (i, (created, ..)) in cases.iter().enumerate() {
        if created.is_none() {
            continue;
        }
        let read = |side: &str| {
            let url = format!(
                "{}?offset=-1",
                server.stream(&format!("{prefix}{side}-{i}"))
            );
            let mut get = c.get(url);
            if let Some(token) = auth.strip_prefix("Authorization: Bearer ") {
                get = get.bearer_auth(token.trim());
            }
            async move { get.send().await.expect("read").bytes().await.expect("body") }
        };
        assert_eq!(
            read("lean").await,
            read("routed").await,
            "case {i} read back"
        );
    }
}

#[tokio::test]
async fn appends_read_without_a_request_built_are_answered_as_the_router_answers_them() {
    let (_, server, c, _) = server_with_json_stream("lean-appends", "unused").await;
    let json = Some("application/json");
    let producer = "Producer-Id: p\r\nProducer-Epoch: 3\r\nProducer-Seq: 0\r\n";
    let ct = |t: &str| format!("Content-Type: {t}\r\n");
    let with_producer = |p: &str| format!("{}{p}", ct("application/json"));
    let cases: Vec<AppendCase> = vec![
        (json, vec![], ct("application/json"), r#"[{"a":1},{"b":2}]"#),
        (
            json,
            vec![],
            ct("Application/JSON; charset=utf-8"),
            r#"{"a":1}"#,
        ),
        (
            json,
            vec![],
            format!("content-type: application/json\r\n{}", ct("text/plain")),
            "{}",
        ),
        (json, vec![], ct("application/json"), r#"{"a":"#),
        (json, vec![], ct("application/json"), "[]"),
        (json, vec![], ct("text/plain"), "x"),
        (json, vec![], String::new(), r#"{"a":1}"#),
        (json, vec![], ct("application/json"), ""),
        (json, vec![], "Stream-Closed: TRUE\r\n".into(), ""),
        (
            json,
            vec![],
            format!("{}Stream-Closed: true\r\n", ct("application/json")),
            "[1,2]",
        ),
        (
            json,
            vec![("Stream-Closed: true\r\n".into(), "")],
            ct("application/json"),
            "1",
        ),
        (json, vec![], with_producer(producer), "[1]"),
        (
            json,
            vec![(with_producer(producer), "[1]")],
            with_producer(producer),
            "[1]",
        ),
        (
            json,
            vec![(with_producer(producer), "[1]")],
            with_producer(&producer.replace("Seq: 0", "Seq: 5")),
            "[1]",
        ),
        (
            json,
            vec![(with_producer(producer), "[1]")],
            with_producer(&producer.replace("Epoch: 3", "Epoch: 2")),
            "[1]",
        ),
        (json, vec![], with_producer("Producer-Id: p\r\n"), "[1]"),
        (
            json,
            vec![],
            with_producer(&producer.replace("Seq: 0", "Seq: -1")),
            "[1]",
        ),
        (
            json,
            vec![],
            with_producer("Producer-Id: \r\nProducer-Epoch: 0\r\nProducer-Seq: 0\r\n"),
            "[1]",
        ),
        (json, vec![], with_producer("Stream-Seq: a\r\n"), "[1]"),
        (
            json,
            vec![(with_producer("Stream-Seq: b\r\n"), "[1]")],
            with_producer("Stream-Seq: a\r\n"),
            "[2]",
        ),
        (json, vec![], with_producer("X-Other: \u{7f}\r\n"), "[1]"),
        (
            json,
            vec![],
            with_producer("Stream-Forked-From: /v1/stream/x\r\n"),
            "[1]",
        ),
        (Some("text/plain"), vec![], ct("text/plain"), "plain text"),
        (Some("text/plain"), vec![], ct("text/plain"), "\u{e9}\u{e8}"),
        (
            Some("application/octet-stream"),
            vec![],
            ct("application/octet-stream"),
            "\u{1}\u{2}",
        ),
        (None, vec![], ct("application/json"), "[1]"),
    ];
    lean_and_routed_appends_agree(&server, &c, ("", ""), &cases).await;
    server.finish().await;
}

#[tokio::test]
async fn appends_with_credentials_read_without_a_request_built_are_answered_as_the_router_answers_them(
) {
    let dir = temp_dir("lean-appends-auth");
    let tokens = "w write *\nr read *\np write public/\n";
    let server = ServerProcess::start_with_tokens(&dir, tokens, &[]).await;
    let c = client();
    let json = Some("application/json");
    let body = |auth: &str| format!("{auth}Content-Type: application/json\r\n");
    // Created with `w`'s token; appended with each of these credentials.
    let cases: Vec<AppendCase> = vec![
        (json, vec![], body("Authorization: Bearer w\r\n"), "[1]"),
        (json, vec![], body("Authorization: bearer w\r\n"), "[1]"),
        (json, vec![], body("Authorization: Bearer  w \r\n"), "[1]"),
        (json, vec![], body("Authorization: Bearer r\r\n"), "[1]"),
        (json, vec![], body("Authorization: Bearer p\r\n"), "[1]"),
        (json, vec![], body("Authorization: Bearer x\r\n"), "[1]"),
        (json, vec![], body("Authorization: Basic dzp3\r\n"), "[1]"),
        (json, vec![], body(""), "[1]"),
        (
            json,
            vec![],
            body("Authorization: Bearer x\r\nAuthorization: Bearer w\r\n"),
            "[1]",
        ),
        (
            json,
            vec![],
            body("Authorization: Bearer w\r\nStream-Forked-From: /v1/stream/y\r\n"),
            "[1]",
        ),
    ];
    let w = "Authorization: Bearer w\r\n";
    lean_and_routed_appends_agree(&server, &c, ("", w), &cases).await;
    // Within `p`'s scope (`public/`): its appends pass where, outside, they did not;
    // the scope is checked on the path as written, dot segments and all.
    let scoped: Vec<AppendCase> = vec![
        (json, vec![], body("Authorization: Bearer p\r\n"), "[1]"),
        (json, vec![], body("Authorization: Bearer r\r\n"), "[1]"),
        (json, vec![], body("Authorization: Bearer w\r\n"), "[1]"),
    ];
    lean_and_routed_appends_agree(&server, &c, ("public/", w), &scoped).await;
    lean_and_routed_appends_agree(&server, &c, ("public/../", w), &scoped).await;
    server.finish().await;
}

#[tokio::test]
async fn a_second_server_on_the_same_data_directory_is_refused_and_the_first_serves_on() {
    let (dir, server, c, url) = server_with_json_stream("in-use", "s").await;
    let second = tokio::process::Command::new(gapless_tests::server_binary())
        .args(["--bind", "127.0.0.1:0", "--data-dir"])
        .arg(&dir)
        .kill_on_drop(true)
        .output();
    let out = tokio::time::timeout(Duration::from_secs(20), second)
        .await
        .expect("the second server gives up at once")
        .expect("it runs");
    assert!(!out.status.success());
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(said.contains("is in use by another process"), "{said}");
    // Flags that cannot work together are refused before anything starts: the demo's
    // page and producers carry no token.
    let demo = tokio::process::Command::new(gapless_tests::server_binary())
        .args([
            "--bind",
            "127.0.0.1:0",
            "--demo",
            "--auth-tokens",
            "tokens",
            "--data-dir",
        ])
        .arg(&dir)
        .kill_on_drop(true)
        .output();
    let out = tokio::time::timeout(Duration::from_secs(20), demo)
        .await
        .expect("refused at once")
        .expect("it runs");
    assert_eq!(out.status.code(), Some(2));
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(said.contains("'--demo' cannot be used with"), "{said}");
    let r = post_json(&c, &url, r#"{"n":1}"#).await;
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    let read = c.get(format!("{url}?offset=-1")).send().await.expect("get");
    assert_eq!(read.text().await.expect("body"), r#"[{"n":1}]"#);
    server.finish().await;
}

#[tokio::test]
async fn bad_input_gets_a_clear_error_and_changes_nothing() {
    let dir = temp_dir("bad-input");
    let server = ServerProcess::start(&dir, &["--max-body-bytes", "1024", "--strict-events"]).await;
    let c = client();
    let url = server.stream("j");
    c.put(&url)
        .header("content-type", "application/json")
        .body("[1,2]")
        .send()
        .await
        .expect("put");
    let tail = head_tail(&c, &url).await;
    let cases: Vec<(reqwest::RequestBuilder, StatusCode)> = vec![
        (
            c.post(&url)
                .header("content-type", "application/json")
                .body("{oops"),
            StatusCode::BAD_REQUEST,
        ),
        (
            c.post(&url)
                .header("content-type", "application/json")
                .body("[]"),
            StatusCode::BAD_REQUEST,
        ),
        (
            c.post(&url).header("content-type", "text/plain").body("x"),
            StatusCode::CONFLICT,
        ),
        (
            c.post(&url)
                .header("content-type", "application/json")
                .body(format!("[{}]", "1,".repeat(600) + "1")),
            StatusCode::PAYLOAD_TOO_LARGE,
        ),
        (
            c.post(&url)
                .header("content-type", "application/json")
                .header("producer-id", "p")
                .body("1"),
            StatusCode::BAD_REQUEST,
        ),
        (
            c.post(&url)
                .header("content-type", "application/json")
                .header("producer-id", "p")
                .header("producer-epoch", "x")
                .header("producer-seq", "0")
                .body("1"),
            StatusCode::BAD_REQUEST,
        ),
        (c.post(&url).body("1"), StatusCode::BAD_REQUEST),
        (c.get(format!("{url}?offset=a,b")), StatusCode::BAD_REQUEST),
        (
            c.get(format!("{url}?offset=-1&live=sometimes")),
            StatusCode::BAD_REQUEST,
        ),
        (
            c.put(server.stream("t")).header("stream-ttl", "-5"),
            StatusCode::BAD_REQUEST,
        ),
        (
            c.get(format!("{}/no/such/route", server.url)),
            StatusCode::NOT_FOUND,
        ),
    ];
    for (i, (request, expected)) in cases.into_iter().enumerate() {
        let r = request.send().await.expect("send");
        assert_eq!(r.status(), expected, "case {i}");
        let text = r.text().await.unwrap_or_default();
        assert!(!text.is_empty(), "case {i} explains itself");
    }
    assert_eq!(head_tail(&c, &url).await, tail, "nothing was appended");
    assert_eq!(
        c.head(server.stream("t"))
            .send()
            .await
            .expect("head")
            .status(),
        StatusCode::NOT_FOUND
    );

    // Session endpoints answer {"error":{"code","message"}}.
    let bad: Vec<(&str, &str, &str)> = vec![
        ("application/json", "{not json", "invalid_json"),
        ("text/plain", "{}", "unsupported_media_type"),
        (
            "application/json",
            r#"{"type":"container-agent:turn","data":{"turn":"two"}}"#,
            "invalid_event",
        ),
        (
            "application/json",
            r#"{"type":"robot:dance","data":{}}"#,
            "unknown_event_type",
        ),
        ("application/json", r#"{"data":{}}"#, "invalid_event"),
        ("application/json", "[]", "empty_batch"),
    ];
    for (ct, body, code) in bad {
        let r = c
            .post(format!("{}/api/sessions/s/events", server.url))
            .header("content-type", ct)
            .body(body)
            .send()
            .await
            .expect("post");
        let status = r.status();
        let v: Value = r.json().await.expect("json error");
        assert_eq!(v["error"]["code"], code, "{body}");
        assert!(status.is_client_error());
        assert!(v["error"]["message"]
            .as_str()
            .is_some_and(|m| !m.is_empty()));
    }
    let r = c
        .get(format!("{}/api/sessions/s/events", server.url))
        .send()
        .await
        .expect("get");
    assert_eq!(
        r.status(),
        StatusCode::NOT_FOUND,
        "no session was created by bad posts"
    );
    let r = c
        .get(format!("{}/api/sessions/bad%20id/events", server.url))
        .send()
        .await
        .expect("get");
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    // A text stream takes UTF-8 text only: half a character is refused.
    let text = server.stream("text");
    let r = c
        .put(&text)
        .header("content-type", "text/plain")
        .send()
        .await
        .expect("put");
    assert_eq!(r.status(), StatusCode::CREATED);
    for body in [&b"\xC3"[..], b"caf\xC3\xA9 \xFF"] {
        let r = c
            .post(&text)
            .header("content-type", "text/plain")
            .body(body.to_vec())
            .send()
            .await
            .expect("post");
        assert_eq!(r.status(), StatusCode::BAD_REQUEST, "{body:?}");
        assert!(r.text().await.expect("body").contains("UTF-8"));
    }
    let r = c
        .post(&text)
        .header("content-type", "text/plain")
        .body("caf\u{e9}")
        .send()
        .await
        .expect("post");
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    let read = c
        .get(format!("{text}?offset=-1"))
        .send()
        .await
        .expect("get");
    assert_eq!(read.text().await.expect("body"), "caf\u{e9}");
    server.finish().await;
}

#[tokio::test]
async fn sigterm_ends_live_reads_finishes_appends_and_exits_cleanly() {
    let dir = temp_dir("sigterm");
    let server = ServerProcess::start(&dir, &[]).await;
    let c = client();
    let url = server.stream("live");
    c.put(&url)
        .header("content-type", "text/plain")
        .send()
        .await
        .expect("put");
    // An SSE reader is connected when the signal arrives.
    let sse = c
        .get(format!("{url}?offset=-1&live=sse"))
        .send()
        .await
        .expect("sse");
    let mut body = sse.bytes_stream();
    // Eight writers append until the server stops answering; the signal comes while
    // they write.
    let acknowledged = Arc::new(Mutex::new(Vec::new()));
    let writers: Vec<_> = (0..8)
        .map(|i| {
            let (c, url, acknowledged) = (c.clone(), url.clone(), acknowledged.clone());
            // Each ends with the append that was not answered 204: refused while
            // the server stopped (503), or sent when it no longer read (an error),
            // returned to be checked.
            tokio::spawn(async move {
                for j in 0.. {
                    let text = format!("<{i}.{j}>");
                    let sent = c
                        .post(&url)
                        .header("content-type", "text/plain")
                        .body(text.clone())
                        .send()
                        .await;
                    match sent.map(|r| r.status()) {
                        Ok(StatusCode::NO_CONTENT) => acknowledged.lock().unwrap().push(text),
                        Ok(StatusCode::SERVICE_UNAVAILABLE) => return None,
                        Ok(other) => panic!("an append at shutdown answered {other}"),
                        Err(_) => return Some(text),
                    }
                }
                None
            })
        })
        .collect();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while acknowledged.lock().unwrap().len() < 40 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "appends acknowledged"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let addr = server.addr().to_owned();
    assert!(
        server.terminate(Duration::from_secs(10)).await,
        "exit status 0 within 10 s"
    );
    let mut unanswered = Vec::new();
    for w in writers {
        unanswered.extend(w.await.expect("writer"));
    }
    // The SSE response is ended properly (its last chunk written), not cut off.
    assert!(
        ends_within(&mut body, Duration::from_secs(5)).await,
        "SSE ended cleanly on shutdown"
    );
    let server = ServerProcess::start_on(&dir, &addr, &[]).await;
    let text = c
        .get(format!("{url}?offset=-1"))
        .send()
        .await
        .expect("get")
        .text()
        .await
        .expect("text");
    let acknowledged = acknowledged.lock().unwrap().clone();
    for a in &acknowledged {
        assert!(text.contains(a.as_str()), "acknowledged {a} survived");
    }
    // An append the server took was answered before it stopped: one that got no
    // answer was never applied.
    for u in &unanswered {
        assert!(
            !text.contains(u.as_str()),
            "{u} was applied but its answer was cut off"
        );
    }
    server.finish().await;
}

#[tokio::test]
async fn demo_sessions_appear_on_the_page_and_in_the_view() {
    let dir = temp_dir("demo");
    let server = ServerProcess::start(&dir, &["--demo"]).await;
    let c = client();
    let page = c.get(&server.url).send().await.expect("page");
    assert_eq!(page.status(), StatusCode::OK);
    assert!(page
        .text()
        .await
        .expect("html")
        .contains("gapless sessions"));
    // The simulated agent writes demo-1 through the native producer; its view, folded
    // by the core reducer on the server, moves from running to completed.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    let mut seen_running = false;
    loop {
        let r = c
            .get(format!("{}/api/sessions/demo-1/view", server.url))
            .send()
            .await
            .expect("view");
        if r.status() == StatusCode::OK {
            let v: Value = r.json().await.expect("json");
            match v["status"]["state"].as_str() {
                Some("running") | Some("initializing") => seen_running = true,
                Some("pending") => {}
                Some("completed") => {
                    assert!(v["view"]["turns"].as_array().is_some_and(|t| t.len() == 4));
                    assert_eq!(v["view"]["files"][0]["path"], "server/src/history.rs");
                    // Folded request by request while it ran, the view equals one
                    // folded afresh from the session's whole history.
                    let mut view = gapless_core::session::SessionView::new(Duration::from_secs(60));
                    let now = gapless_client::session::wall_clock();
                    for e in history(&c, &server.url, "demo-1").await {
                        let envelope =
                            gapless_core::event::Envelope::from_value(e).expect("an envelope");
                        view.apply(&envelope, now);
                    }
                    let fresh = serde_json::to_value(view.snapshot(now)).expect("json");
                    assert_eq!(fresh["view"], v["view"]);
                    break;
                }
                other => panic!("unexpected status {other:?}"),
            }
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "demo-1 completes within 60 s"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(seen_running, "the view was live while the session ran");
    let list: Value = c
        .get(format!("{}/api/sessions", server.url))
        .send()
        .await
        .expect("list")
        .json()
        .await
        .expect("json");
    assert!(list["sessions"]
        .as_array()
        .is_some_and(|s| s.iter().any(|x| x["id"] == "demo-1")));
    server.finish().await;
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

/// The next event of an SSE body (within 10 s of data), decoded by the core's decoder.
async fn next_sse_event<B: AsRef<[u8]>>(
    body: &mut (impl futures::Stream<Item = reqwest::Result<B>> + Unpin),
    decoder: &mut gapless_core::sse::SseDecoder,
) -> gapless_core::sse::SseEvent {
    loop {
        if let Some(event) = decoder.next_event() {
            return event.expect("valid SSE");
        }
        let chunk = tokio::time::timeout(Duration::from_secs(10), body.next())
            .await
            .expect("SSE data in time")
            .expect("stream open")
            .expect("bytes");
        decoder.feed(chunk.as_ref());
    }
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

/// Opens `n` SSE subscribers of `url` from its tail, each caught up and on a
/// connection of its own (see `caught_up_sse`).
async fn parked_subscribers(
    c: &Client,
    url: &str,
    n: usize,
) -> Vec<impl futures::Stream<Item = reqwest::Result<impl AsRef<[u8]>>> + Unpin> {
    let sse = client();
    let mut subscribers = Vec::new();
    for _ in 0..n {
        let tail = head_tail(c, url).await;
        subscribers.push(caught_up_sse(&sse, url, &tail).await);
    }
    subscribers
}

#[tokio::test]
async fn parked_sse_subscribers_wake_on_a_commit_and_on_deletion() {
    let dir = temp_dir("parked");
    // Connections that would live ten minutes: only the commit, or the deletion, can
    // reach a parked subscriber within the guards below (shorter than the 15 s
    // keep-alive, which would resume it anyway).
    let server = ServerProcess::start(&dir, &["--sse-max-age-s", "600"]).await;
    let c = client();
    let (a, b) = (server.stream("parked-a"), server.stream("parked-b"));
    for url in [&a, &b] {
        create_json(&c, url).await;
    }
    let mut subscribers = parked_subscribers(&c, &a, 20).await;
    let mut gone = parked_subscribers(&c, &b, 5).await;
    // Idle long enough to have given up their tasks.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let r = post_json(&c, &a, r#"{"wake":1}"#).await;
    assert!(r.status().is_success(), "{}", r.status());
    for (i, body) in subscribers.iter_mut().enumerate() {
        let mut seen = String::new();
        assert!(
            read_until(body, &mut seen, r#"{"wake":1}"#, Duration::from_secs(10)).await,
            "subscriber {i} got the commit: {seen}"
        );
    }
    let r = c.delete(&b).send().await.expect("delete");
    assert!(r.status().is_success(), "{}", r.status());
    for (i, body) in gone.iter_mut().enumerate() {
        assert!(
            ends_within(body, Duration::from_secs(10)).await,
            "subscriber {i} of the deleted stream ended"
        );
    }
    server.finish().await;
}

#[tokio::test]
async fn parked_sse_subscribers_end_at_their_connections_maximum_age() {
    let dir = temp_dir("parked-age");
    let server = ServerProcess::start(&dir, &["--sse-max-age-s", "2"]).await;
    let c = client();
    let (woken, quiet) = (server.stream("aged-woken"), server.stream("aged-quiet"));
    for url in [&woken, &quiet] {
        create_json(&c, url).await;
    }
    let mut subscribers = parked_subscribers(&c, &woken, 5).await;
    // And some on a stream nothing is ever written to, parked all along.
    let mut untouched = parked_subscribers(&c, &quiet, 5).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let r = post_json(&c, &woken, r#"{"wake":1}"#).await;
    assert!(r.status().is_success(), "{}", r.status());
    // Each response ends at its connection's maximum age (2 s; a guard of 30 s for a
    // loaded machine: one that missed it would not end at all).
    for (i, body) in subscribers
        .iter_mut()
        .chain(untouched.iter_mut())
        .enumerate()
    {
        assert!(
            ends_within(body, Duration::from_secs(30)).await,
            "subscriber {i} ended"
        );
    }
    server.finish().await;
}

#[tokio::test]
async fn an_sse_response_ends_at_its_maximum_age_while_it_still_has_data_to_send() {
    let dir = temp_dir("sse-age-busy");
    let server =
        ServerProcess::start(&dir, &["--sse-max-age-s", "1", "--durability", "normal"]).await;
    let c = client();
    let url = server.stream("backlog");
    create_json(&c, &url).await;
    // 40 MB to send: about 13 s at the pace the reader below keeps.
    let message = format!(r#"{{"pad":"{}"}}"#, "x".repeat(1000));
    let batch = format!("[{}]", vec![message; 1000].join(","));
    for _ in 0..40 {
        let r = c
            .post(&url)
            .header("content-type", "application/json")
            .body(batch.clone())
            .send()
            .await
            .expect("post");
        assert!(r.status().is_success(), "{}", r.status());
    }
    let r = c
        .get(format!("{url}?offset=-1&live=sse"))
        .send()
        .await
        .expect("sse");
    assert_eq!(r.status(), StatusCode::OK);
    let mut body = r.bytes_stream();
    // A reader taking about 3 MB/s: the server always has more to send it. (A guard
    // of 30 s for a loaded machine: sending the whole backlog, as a response that
    // did not end at its age would, is what the last assertion tells apart.)
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    let mut read = 0usize;
    let ended = loop {
        match tokio::time::timeout_at(deadline, body.next()).await {
            Ok(None) => break true,
            Ok(Some(Ok(bytes))) => {
                read += bytes.len();
                tokio::time::sleep(Duration::from_micros(bytes.len() as u64 / 3)).await;
            }
            Ok(Some(Err(e))) => panic!("the response failed: {e}"),
            Err(_) => break false,
        }
    };
    assert!(
        ended,
        "the response went on past its maximum age (1 s): {read} bytes read in 30 s"
    );
    // Ended by its age, not by running out of data: not all of the backlog was sent.
    assert!(
        read < 40_000_000,
        "the whole backlog ({read} bytes) was sent before the response ended"
    );
    server.finish().await;
}

/// Reads `n` messages (`{"i": …}`, numbered from 0) off an SSE body, checking each
/// arrives once and in order; `false` if the body ends or `limit` passes first.
async fn read_numbered<B: AsRef<[u8]>, E>(
    body: &mut (impl futures::Stream<Item = Result<B, E>> + Unpin),
    n: u64,
    limit: Duration,
) -> Result<(), String> {
    let deadline = tokio::time::Instant::now() + limit;
    let mut decoder = gapless_core::sse::SseDecoder::new();
    let mut next = 0;
    while next < n {
        match tokio::time::timeout_at(deadline, body.next()).await {
            Ok(Some(Ok(chunk))) => decoder.feed(chunk.as_ref()),
            other => return Err(format!("{next} of {n} read, then {:?}", other.is_ok())),
        }
        while let Some(event) = decoder.next_event() {
            let event = event.map_err(|e| e.to_string())?;
            if event.event != "data" {
                continue;
            }
            let batch: Vec<Value> = serde_json::from_str(&event.data).map_err(|e| e.to_string())?;
            for message in batch {
                if message["i"] != next {
                    return Err(format!("expected message {next}, got {message}"));
                }
                next += 1;
            }
        }
    }
    Ok(())
}

#[tokio::test]
async fn parked_subscribers_get_every_event_once_in_order_when_many_or_not_reading() {
    let dir = temp_dir("parked-many");
    let server = ServerProcess::start(&dir, &[]).await;
    let c = client();
    let (many, full) = (server.stream("many"), server.stream("full"));
    for url in [&many, &full] {
        create_json(&c, url).await;
    }
    // More subscribers than one task writes to in turn.
    let sse = client();
    let mut subscribers = Vec::new();
    for _ in 0..150 {
        subscribers.push(caught_up_sse(&sse, &many, "now").await);
    }
    // And three, with small receive buffers, that stop reading while far more
    // arrives than their sockets hold.
    let mut stalled = Vec::new();
    for _ in 0..3 {
        let mut body = small_buffer_sse(server.addr(), "/v1/stream/full?offset=now&live=sse").await;
        until_caught_up(&mut body).await;
        stalled.push(body);
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let append = |url: String, first: u64, n: u64, pad: usize| {
        let c = c.clone();
        async move {
            let batch: Vec<Value> = (first..first + n)
                .map(|i| json!({"i": i, "pad": "x".repeat(pad)}))
                .collect();
            let r = c
                .post(&url)
                .header("content-type", "application/json")
                .body(serde_json::to_vec(&batch).expect("batch"))
                .send()
                .await
                .expect("append");
            assert!(r.status().is_success(), "{}", r.status());
        }
    };
    for k in 0..5 {
        append(many.clone(), k * 10, 10, 20).await;
    }
    for (i, body) in subscribers.iter_mut().enumerate() {
        let read = read_numbered(body, 50, Duration::from_secs(10)).await;
        assert_eq!(read, Ok(()), "subscriber {i} of many");
    }
    // 60 appends of 800 messages, about 100 KB each, one at a time (so each is
    // still among the newest chunks kept in memory when it is written in place):
    // 6 MB per stalled reader, more than its socket holds.
    for k in 0..60 {
        append(full.clone(), k * 800, 800, 100).await;
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    for (i, body) in stalled.iter_mut().enumerate() {
        let read = read_numbered(body, 48_000, Duration::from_secs(30)).await;
        assert_eq!(read, Ok(()), "stalled subscriber {i}");
    }
    server.finish().await;
}

#[tokio::test]
async fn parked_subscribers_sharing_a_delivery_each_get_their_own_framing() {
    let dir = temp_dir("parked-shared");
    let server = ServerProcess::start(&dir, &[]).await;
    let c = client();
    let (status, _) = post_events(&c, &server.url, "mix", &token_event("mix", "first")).await;
    assert_eq!(status, StatusCode::CREATED);
    let stream = server.stream("sessions/mix");
    // On the same stream, parked side by side: two Durable Streams subscribers with no
    // cursor, one whose cursor is ahead of the clock (its control events must move
    // past it), and one on the session endpoint (events of its own framing).
    let ahead = 9_000_000_000u64;
    let open = |url: String| async move {
        let r = client().get(url).send().await.expect("sse");
        assert_eq!(r.status(), StatusCode::OK);
        r.bytes_stream()
    };
    let mut plain = Vec::new();
    for _ in 0..2 {
        plain.push(open(format!("{stream}?offset=now&live=sse")).await);
    }
    let mut cursored = open(format!("{stream}?offset=now&live=sse&cursor={ahead}")).await;
    let mut session = open(format!("{}/api/sessions/mix/stream?offset=now", server.url)).await;
    for body in plain.iter_mut().chain([&mut cursored]) {
        until_caught_up(body).await;
    }
    let mut seen = String::new();
    assert!(
        read_until(
            &mut session,
            &mut seen,
            "up-to-date",
            Duration::from_secs(5)
        )
        .await
    );
    tokio::time::sleep(Duration::from_millis(300)).await;

    let (status, _) = post_events(&c, &server.url, "mix", &token_event("mix", "second")).await;
    assert_eq!(status, StatusCode::CREATED);
    let mut cursors = Vec::new();
    for body in plain.iter_mut().chain([&mut cursored]) {
        let events = next_events(body, 2).await;
        assert_eq!(events[0].event, "data");
        assert!(events[0].data.contains("\"second\""), "{}", events[0].data);
        assert_eq!(events[1].event, "control");
        let control: Value = serde_json::from_str(&events[1].data).expect("control");
        assert_eq!(control["streamNextOffset"], head_tail(&c, &stream).await);
        let cursor = control["streamCursor"].as_str().expect("cursor");
        cursors.push(cursor.parse::<u64>().expect("numeric cursor"));
    }
    assert_eq!(
        cursors[0], cursors[1],
        "the same cursor for the same request"
    );
    assert!(cursors[0] < ahead, "{cursors:?}");
    assert!(
        cursors[2] > ahead,
        "a cursor past the client's: {cursors:?}"
    );
    let events = next_events(&mut session, 1).await;
    assert_eq!(events[0].event, "container-agent:token");
    assert!(events[0].data.contains("\"second\""), "{}", events[0].data);
    assert_eq!(
        events[0].id.as_deref(),
        Some(head_tail(&c, &stream).await.as_str())
    );
    server.finish().await;
}

#[tokio::test]
async fn a_waiting_long_poll_ends_as_a_new_read_would_when_its_stream_is_deleted() {
    let dir = temp_dir("long-poll-deleted");
    // Polls that would wait a minute: only the deletion can end them within the guard.
    let server = ServerProcess::start(&dir, &["--long-poll-timeout-ms", "60000"]).await;
    let c = client();
    // `kept` has a fork, so deleting it keeps it (gone: 410) for the fork to read;
    // `dropped` has none, so deleting it removes it (404).
    let (kept, dropped) = (server.stream("lp-kept"), server.stream("lp-dropped"));
    for url in [&kept, &dropped] {
        create_json(&c, url).await;
        let r = post_json(&c, url, r#"[{"i":0}]"#).await;
        assert!(r.status().is_success(), "{}", r.status());
    }
    let fork = c
        .put(server.stream("lp-fork"))
        .header("content-type", "application/json")
        .header("stream-forked-from", "/v1/stream/lp-kept")
        .send()
        .await
        .expect("fork");
    assert!(fork.status().is_success(), "{}", fork.status());
    let mut waiting = Vec::new();
    for url in [&kept, &dropped] {
        let tail = head_tail(&c, url).await;
        let poll = c.get(format!("{url}?offset={tail}&live=long-poll")).send();
        waiting.push(tokio::spawn(poll));
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    for url in [&kept, &dropped] {
        let r = c.delete(url).send().await.expect("delete");
        assert!(r.status().is_success(), "{}", r.status());
    }
    for (poll, url) in waiting.into_iter().zip([&kept, &dropped]) {
        let waited = tokio::time::timeout(Duration::from_secs(10), poll)
            .await
            .expect("the long-poll ends at the deletion")
            .expect("task")
            .expect("long-poll");
        let fresh = c
            .get(format!("{url}?offset=-1"))
            .send()
            .await
            .expect("read");
        assert_eq!(waited.status(), fresh.status(), "{url}");
    }
    assert_eq!(
        c.get(format!("{kept}?offset=-1"))
            .send()
            .await
            .expect("read")
            .status(),
        StatusCode::GONE
    );
    assert_eq!(
        c.get(format!("{dropped}?offset=-1"))
            .send()
            .await
            .expect("read")
            .status(),
        StatusCode::NOT_FOUND
    );
    server.finish().await;
}

/// The next `n` SSE events of `body` (within 10 s).
async fn next_events<B: AsRef<[u8]>, E: std::fmt::Debug>(
    body: &mut (impl futures::Stream<Item = Result<B, E>> + Unpin),
    n: usize,
) -> Vec<gapless_core::sse::SseEvent> {
    let mut decoder = gapless_core::sse::SseDecoder::new();
    let mut events = Vec::new();
    while events.len() < n {
        let chunk = tokio::time::timeout(Duration::from_secs(10), body.next())
            .await
            .expect("SSE data in time")
            .expect("stream open")
            .expect("bytes");
        decoder.feed(chunk.as_ref());
        while let Some(event) = decoder.next_event() {
            events.push(event.expect("valid SSE"));
        }
    }
    events
}

/// An SSE response read over a socket with a small receive buffer (so that a server
/// writing to it finds it full soon): its body, in pieces as they arrive.
async fn small_buffer_sse(
    addr: &str,
    target: &str,
) -> impl futures::Stream<Item = Result<Vec<u8>, std::io::Error>> + Unpin {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let socket = tokio::net::TcpSocket::new_v4().expect("socket");
    socket.set_recv_buffer_size(4096).expect("receive buffer");
    let mut stream = socket
        .connect(addr.parse().expect("address"))
        .await
        .expect("connect");
    stream
        .write_all(format!("GET {target} HTTP/1.1\r\nhost: {addr}\r\n\r\n").as_bytes())
        .await
        .expect("request");
    let mut buf = Vec::new();
    let head_end = loop {
        if let Some(at) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break at + 4;
        }
        let mut more = [0u8; 4096];
        let n = stream.read(&mut more).await.expect("head");
        assert!(n > 0, "closed before the head");
        buf.extend_from_slice(&more[..n]);
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).to_ascii_lowercase();
    assert!(head.starts_with("http/1.1 200"), "{head}");
    assert!(head.contains("transfer-encoding: chunked"), "{head}");
    buf.drain(..head_end);
    Box::pin(futures::stream::unfold(
        (stream, buf, Some(Dechunker::default())),
        |(mut stream, mut buf, mut dechunker)| async move {
            loop {
                // The body bytes that have come, once some have (no dechunker: the
                // body has ended).
                let mut data = Vec::new();
                let ended = match dechunker
                    .as_mut()?
                    .feed(&mut buf, |d| data.extend_from_slice(d))
                {
                    Ok(ended) => ended,
                    Err(e) => return Some((Err(std::io::Error::other(e)), (stream, buf, None))),
                };
                if ended {
                    dechunker = None;
                }
                if !data.is_empty() {
                    return Some((Ok(data), (stream, buf, dechunker)));
                }
                dechunker.as_ref()?;
                let mut more = [0u8; 4096];
                match stream.read(&mut more).await {
                    Ok(0) => return None,
                    Ok(n) => buf.extend_from_slice(&more[..n]),
                    Err(e) => return Some((Err(e), (stream, buf, None))),
                }
            }
        },
    ))
}

#[tokio::test]
async fn sigterm_ends_parked_sse_responses_cleanly() {
    let (_, server, _, url) = server_with_json_stream("sigterm-parked", "parked-stop").await;
    // Subscribers on connections of their own (see `caught_up_sse`), idle long enough
    // to have parked.
    let sse = client();
    let mut subscribers = Vec::new();
    for _ in 0..10 {
        subscribers.push(caught_up_sse(&sse, &url, "now").await);
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        server.terminate(Duration::from_secs(10)).await,
        "exit status 0 within 10 s"
    );
    // Each response is ended properly (its last chunk written), not cut off.
    for (i, body) in subscribers.iter_mut().enumerate() {
        assert!(
            ends_within(body, Duration::from_secs(5)).await,
            "subscriber {i} ended cleanly"
        );
    }
}

#[tokio::test]
async fn a_body_refused_for_its_size_or_credentials_is_answered_from_its_head_unread() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let dir = temp_dir("refused-unread");
    let server =
        ServerProcess::start_with_tokens(&dir, "writer write *\n", &["--max-body-bytes", "4096"])
            .await;
    let c = client();
    let url = server.stream("r");
    let r = c
        .put(&url)
        .bearer_auth("writer")
        .header("content-type", "application/json")
        .send()
        .await
        .expect("put");
    assert_eq!(r.status(), StatusCode::CREATED);
    for (credentials, length, status) in [
        ("", 1 << 20, "401"),
        ("authorization: Bearer wrong\r\n", 1 << 20, "401"),
        ("authorization: Bearer writer\r\n", 1 << 16, "413"),
    ] {
        let mut conn = tokio::net::TcpStream::connect(server.addr())
            .await
            .expect("connect");
        let head = format!(
            "POST /v1/stream/r HTTP/1.1\r\nhost: a\r\ncontent-type: application/json\r\n\
             {credentials}content-length: {length}\r\n\r\n[1,"
        );
        conn.write_all(head.as_bytes()).await.expect("write");
        // The rest of the body never comes: the answer must not wait for it.
        let mut seen = Vec::new();
        let answered = tokio::time::timeout(Duration::from_secs(5), async {
            let mut chunk = [0u8; 1024];
            while !seen.windows(4).any(|w| w == b"\r\n\r\n") {
                match conn.read(&mut chunk).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => seen.extend_from_slice(&chunk[..n]),
                }
            }
        })
        .await;
        let text = String::from_utf8_lossy(&seen);
        assert!(answered.is_ok(), "no answer before the body: {text:?}");
        assert!(
            text.starts_with(&format!("HTTP/1.1 {status}")),
            "{credentials:?} {length}: {text:?}"
        );
        // A client that sends its whole body at once still reads the answer, not a
        // reset: the server reads and drops the body before it closes.
        let mut conn = tokio::net::TcpStream::connect(server.addr())
            .await
            .expect("connect");
        let head = format!(
            "POST /v1/stream/r HTTP/1.1\r\nhost: a\r\ncontent-type: application/json\r\n\
             {credentials}content-length: {length}\r\n\r\n"
        );
        let mut whole = head.into_bytes();
        whole.extend(std::iter::repeat_n(b' ', length));
        let (mut reading, mut writing) = conn.split();
        let (answer, sent) = tokio::join!(
            async {
                let mut all = Vec::new();
                tokio::time::timeout(Duration::from_secs(10), reading.read_to_end(&mut all))
                    .await
                    .map(|read| read.map(|_| all))
            },
            writing.write_all(&whole),
        );
        let answer = answer
            .expect("answered and closed within 10 s")
            .expect("the answer, not a reset");
        let text = String::from_utf8_lossy(&answer);
        assert!(
            text.starts_with(&format!("HTTP/1.1 {status}")),
            "whole body, {credentials:?} {length}: {text:?} (sent: {sent:?})"
        );
    }
    // Nothing was appended.
    let r = c
        .get(format!("{url}?offset=-1"))
        .bearer_auth("writer")
        .send()
        .await
        .expect("get");
    assert_eq!(r.text().await.expect("body"), "[]");
    server.finish().await;
}

#[tokio::test]
async fn methods_heads_locations_and_expiries_at_the_edges_are_answered_as_http_has_them() {
    let dir = temp_dir("http-edges");
    let server = ServerProcess::start(&dir, &[]).await;
    let c = client();
    let url = server.stream("edges");
    create_json(&c, &url).await;
    post_json(&c, &url, "[1,2,3]").await;
    // A 405 lists the methods that are allowed.
    let r = c
        .request(reqwest::Method::PATCH, &url)
        .send()
        .await
        .expect("patch");
    assert_eq!(r.status(), StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(
        r.headers()["allow"],
        "GET, HEAD, POST, PUT, DELETE, OPTIONS"
    );
    // A HEAD's length could only be the GET's: it is not sent.
    let r = c.head(&url).send().await.expect("head");
    assert_eq!(r.status(), StatusCode::OK);
    assert!(r.headers().get("content-length").is_none(), "{r:?}");
    // A created stream's location names it, encoded as a URL writes it.
    for (path, written) in [
        ("a%3Fb", "a%3Fb"),
        ("caf%C3%A9", "caf%C3%A9"),
        ("x/y-z", "x/y-z"),
    ] {
        let r = c
            .put(format!("{}/v1/stream/{path}", server.url))
            .send()
            .await
            .expect("put");
        assert_eq!(r.status(), StatusCode::CREATED, "{path}");
        let location = r.headers()["location"].to_str().expect("text");
        assert!(
            location.ends_with(&format!("/v1/stream/{written}")),
            "{location}"
        );
    }
    // An expiry RFC 3339 cannot write (past the year 9999) is not written.
    let far = server.stream("far");
    let r = c
        .put(&far)
        .header("stream-ttl", "300000000000")
        .send()
        .await
        .expect("put");
    assert_eq!(r.status(), StatusCode::CREATED);
    let r = c.head(&far).send().await.expect("head");
    assert_eq!(r.headers()["stream-ttl"], "300000000000");
    assert!(r.headers().get("stream-expires-at").is_none(), "{r:?}");
    // A read refused for its query is no access: a sliding TTL is not pushed back.
    let sliding = server.stream("sliding");
    let r = c
        .put(&sliding)
        .header("stream-ttl", "100")
        .send()
        .await
        .expect("put");
    assert_eq!(r.status(), StatusCode::CREATED);
    let expiry = |r: &reqwest::Response| r.headers()["stream-expires-at"].clone();
    let before = expiry(&c.head(&sliding).send().await.expect("head"));
    tokio::time::sleep(Duration::from_millis(1100)).await;
    for query in ["offset=-1&live=bogus", "live=sse", "live=long-poll"] {
        let r = c
            .get(format!("{sliding}?{query}"))
            .send()
            .await
            .expect("get");
        assert_eq!(r.status(), StatusCode::BAD_REQUEST, "{query}");
    }
    let after = expiry(&c.head(&sliding).send().await.expect("head"));
    assert_eq!(before, after, "a refused read pushed the expiry back");
    // (A read that is answered does.)
    c.get(format!("{sliding}?offset=-1"))
        .send()
        .await
        .expect("get");
    let read = expiry(&c.head(&sliding).send().await.expect("head"));
    assert_ne!(before, read, "an answered read is an access");
    server.finish().await;
}

#[tokio::test]
async fn every_kind_of_request_is_refused_without_credentials_or_outside_their_scope() {
    let dir = temp_dir("auth-table");
    let tokens = "reader read *\nwriter write *\npublic write public/\n";
    let server = ServerProcess::start_with_tokens(&dir, tokens, &["--subscriptions"]).await;
    let c = client();
    let url = server.stream("x");
    let session = format!("{}/api/sessions/s", server.url);
    for target in [url.clone(), server.stream("sessions/s")] {
        let r = c
            .put(&target)
            .bearer_auth("writer")
            .header("content-type", "application/json")
            .body(r#"[{"type":"container-agent:token","data":{"taskId":"t","sessionId":"s","delta":"a"}}]"#)
            .send()
            .await
            .expect("put");
        assert_eq!(r.status(), StatusCode::CREATED);
    }
    let tail = |token: &'static str| {
        let (c, url) = (c.clone(), url.clone());
        async move {
            let r = c.head(&url).bearer_auth(token).send().await.expect("head");
            let closed = r.headers().get("stream-closed").is_some();
            (head_value(&r, "stream-next-offset"), closed)
        }
    };
    let before = tail("reader").await;
    // (method, URL, extra header, body) of each kind of request.
    let requests: Vec<Attempt> = vec![
        (reqwest::Method::GET, format!("{url}?offset=-1"), None, ""),
        (
            reqwest::Method::GET,
            format!("{url}?offset=-1&live=sse"),
            None,
            "",
        ),
        (
            reqwest::Method::GET,
            format!("{url}?offset=-1&live=long-poll"),
            None,
            "",
        ),
        (reqwest::Method::HEAD, url.clone(), None, ""),
        (
            reqwest::Method::POST,
            url.clone(),
            Some(("content-type", "application/json")),
            r#"{"n":1}"#,
        ),
        (
            reqwest::Method::POST,
            url.clone(),
            Some(("stream-closed", "true")),
            "",
        ),
        (reqwest::Method::DELETE, url.clone(), None, ""),
        (reqwest::Method::PUT, server.stream("y"), None, ""),
        (reqwest::Method::GET, format!("{session}/events"), None, ""),
        (reqwest::Method::GET, format!("{session}/stream"), None, ""),
        (reqwest::Method::GET, format!("{session}/view"), None, ""),
        (
            reqwest::Method::POST,
            format!("{session}/events"),
            Some(("content-type", "application/json")),
            r#"{"type":"container-agent:token","data":{"taskId":"t","sessionId":"s","delta":"b"}}"#,
        ),
        (
            reqwest::Method::PUT,
            server.stream("__ds/subscriptions/sub"),
            Some(("content-type", "application/json")),
            r#"{"type":"pull-wake","wake_stream":"wakes","streams":["x"]}"#,
        ),
        (
            reqwest::Method::GET,
            server.stream("__ds/subscriptions/sub"),
            None,
            "",
        ),
    ];
    let writes = |m: &reqwest::Method| !matches!(*m, reqwest::Method::GET | reqwest::Method::HEAD);
    for (method, target, header, body) in &requests {
        // No token or a wrong one: 401. A token whose scope does not cover the
        // stream: 403. A read token for a write: 403.
        let mut cases: Vec<(Option<&str>, StatusCode)> = vec![
            (None, StatusCode::UNAUTHORIZED),
            (Some("wrong"), StatusCode::UNAUTHORIZED),
        ];
        if !target.contains("__ds/") {
            cases.push((Some("public"), StatusCode::FORBIDDEN));
        }
        if writes(method) {
            cases.push((Some("reader"), StatusCode::FORBIDDEN));
        }
        for (token, status) in cases {
            let mut r = c.request(method.clone(), target.as_str());
            if let Some(token) = token {
                r = r.bearer_auth(token);
            }
            if let Some((name, value)) = header {
                r = r.header(*name, *value);
            }
            let r = r.body(body.to_string()).send().await.expect("request");
            assert_eq!(r.status(), status, "{method} {target} with {token:?}");
        }
    }
    // Nothing refused changed anything.
    assert_eq!(tail("reader").await, before);
    let r = c
        .head(server.stream("y"))
        .bearer_auth("reader")
        .send()
        .await
        .expect("head");
    assert_eq!(r.status(), StatusCode::NOT_FOUND, "no stream was made");
    let events: Value = c
        .get(format!("{session}/events"))
        .bearer_auth("reader")
        .send()
        .await
        .expect("get")
        .json()
        .await
        .expect("json");
    assert_eq!(events["events"].as_array().map(Vec::len), Some(1));
    server.finish().await;
}

/// A request to try: its method, URL, a header and its body.
type Attempt = (
    reqwest::Method,
    String,
    Option<(&'static str, &'static str)>,
    &'static str,
);

/// A response header's value as text ("" when absent).
fn head_value(r: &reqwest::Response, name: &str) -> String {
    r.headers()
        .get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned()
}

#[tokio::test]
async fn a_pull_wake_whose_wake_stream_was_missing_wakes_once_it_is_there() {
    let dir = temp_dir("wake-stream-late");
    let server = ServerProcess::start(&dir, &["--subscriptions"]).await;
    let c = client();
    let (url, wakes) = (server.stream("x"), server.stream("wakes"));
    create_json(&c, &url).await;
    put_subscription(
        &c,
        &server,
        "late",
        json!({"type": "pull-wake", "wake_stream": "wakes", "streams": ["x"]}),
    )
    .await;
    // The wake event has nowhere to go: the wake cannot be heard of.
    post_json(&c, &url, r#"{"n":1}"#).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    create_json(&c, &wakes).await;
    // The next commit wakes it, rather than none ever again.
    post_json(&c, &url, r#"{"n":2}"#).await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let events: Value = c
            .get(format!("{wakes}?offset=-1"))
            .send()
            .await
            .expect("get")
            .json()
            .await
            .expect("json");
        if let Some(wake) = events.as_array().and_then(|e| e.first()) {
            assert_eq!(wake["type"], "wake");
            assert_eq!(wake["subscription_id"], "late");
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no wake event after the wake stream was made"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    server.finish().await;
}

#[tokio::test]
async fn a_webhook_names_the_callback_at_the_public_url_when_one_is_given() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let receiver = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let hook = format!("http://{}/hook", receiver.local_addr().expect("addr"));
    let dir = temp_dir("public-url");
    let server = ServerProcess::start(
        &dir,
        &[
            "--subscriptions",
            "--webhooks-to-loopback",
            "--public-url",
            "https://streams.example.com/",
        ],
    )
    .await;
    let c = client();
    let url = server.stream("hooked");
    create_json(&c, &url).await;
    put_subscription(
        &c,
        &server,
        "hook",
        json!({"type": "webhook", "webhook": {"url": hook}, "streams": ["hooked"]}),
    )
    .await;
    post_json(&c, &url, r#"{"n":1}"#).await;
    // The delivery: read whole, answered done.
    let delivery = tokio::time::timeout(Duration::from_secs(10), async {
        let (mut conn, _) = receiver.accept().await.expect("accept");
        let mut got = Vec::new();
        let mut chunk = [0u8; 4096];
        loop {
            let n = conn.read(&mut chunk).await.expect("read");
            got.extend_from_slice(&chunk[..n]);
            let text = String::from_utf8_lossy(&got).to_string();
            if let Some((head, body)) = text.split_once("\r\n\r\n") {
                let length: usize = head
                    .lines()
                    .find_map(|l| l.to_ascii_lowercase().strip_prefix("content-length:").map(|v| v.trim().parse().unwrap_or(0)))
                    .unwrap_or(0);
                if body.len() >= length {
                    let answer = "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 13\r\n\r\n{\"done\":true}";
                    conn.write_all(answer.as_bytes()).await.expect("answer");
                    return body.to_owned();
                }
            }
            assert!(n > 0, "the delivery ended early");
        }
    })
    .await
    .expect("a delivery within 10 s");
    let body: Value = serde_json::from_str(&delivery).expect("json");
    assert_eq!(
        body["callback_url"],
        "https://streams.example.com/v1/stream/__ds/subscriptions/hook/callback"
    );
    server.finish().await;
}

#[tokio::test]
async fn a_webhook_to_loopback_is_refused_unless_the_server_lets_webhooks_go_there() {
    let dir = temp_dir("loopback-hooks");
    let server = ServerProcess::start(&dir, &["--subscriptions"]).await;
    let c = client();
    create_json(&c, &server.stream("hooked")).await;
    for hook in [
        "http://127.0.0.1:9/hook",
        "http://localhost:9/hook",
        "http://a.localhost:9/hook",
        "http://[::1]:9/hook",
    ] {
        let sub = server.stream("__ds/subscriptions/local");
        let config = json!({"type": "webhook", "webhook": {"url": hook}, "streams": ["hooked"]});
        let r = c.put(&sub).json(&config).send().await.expect("put");
        assert_eq!(r.status(), StatusCode::BAD_REQUEST, "{hook}");
        let body: Value = r.json().await.expect("json");
        assert_eq!(
            body["error"]["code"], "WEBHOOK_URL_REJECTED",
            "{hook}: {body}"
        );
        let r = c.get(&sub).send().await.expect("get");
        assert_eq!(r.status(), StatusCode::NOT_FOUND, "{hook}: nothing made");
    }
    server.finish().await;
}

#[tokio::test]
async fn a_stream_deleted_leaves_the_subscriptions_that_linked_it_by_pattern_only() {
    let dir = temp_dir("links-deleted");
    let server = ServerProcess::start(&dir, &["--subscriptions"]).await;
    let c = client();
    let kept = server.stream("tmp/kept");
    create_json(&c, &kept).await;
    put_subscription(
        &c,
        &server,
        "tmp",
        json!({"type": "pull-wake", "wake_stream": "tmp-wakes", "pattern": "tmp/*",
                      "streams": ["tmp/kept"]}),
    )
    .await;
    for i in 0..5 {
        let name = format!("tmp/s{i}");
        let url = server.stream(&name);
        create_json(&c, &url).await;
        post_json(&c, &url, r#"{"n":1}"#).await;
        // Linked by the pattern first, so that its going below is the deletion's.
        let sub = subscription_of(&c, &server, "tmp").await;
        assert!(
            sub.to_string().contains(&format!("\"{name}\"")),
            "{name} linked by the pattern: {sub}"
        );
        let r = c.delete(&url).send().await.expect("delete");
        assert!(r.status().is_success(), "{}", r.status());
    }
    let r = c.delete(&kept).send().await.expect("delete");
    assert!(r.status().is_success(), "{}", r.status());
    let sub = subscription_of(&c, &server, "tmp").await;
    let linked = sub.to_string();
    assert!(
        !linked.contains("tmp/s"),
        "deleted streams still linked: {sub}"
    );
    assert!(
        linked.contains("tmp/kept"),
        "an explicit link is kept: {sub}"
    );
    server.finish().await;
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

/// Makes subscription `id` with the configuration `config` (which must succeed).
/// Subscription `id` as the server describes it (`GET`).
async fn subscription_of(c: &Client, server: &ServerProcess, id: &str) -> Value {
    c.get(server.stream(&format!("__ds/subscriptions/{id}")))
        .send()
        .await
        .expect("get")
        .json()
        .await
        .expect("json")
}

async fn put_subscription(c: &Client, server: &ServerProcess, id: &str, config: Value) {
    let r = c
        .put(server.stream(&format!("__ds/subscriptions/{id}")))
        .json(&config)
        .send()
        .await
        .expect("put");
    assert!(r.status().is_success(), "{}", r.status());
}

#[tokio::test]
async fn a_subscription_keeps_to_the_scope_of_the_token_that_made_it() {
    let dir = temp_dir("subscription-scope");
    let tokens = "admin write *\nteam write __ds/subscriptions/,team/\n\
        other write __ds/subscriptions/,other/\nwide write __ds*,team/\n";
    let server = ServerProcess::start_with_tokens(&dir, tokens, &["--subscriptions"]).await;
    let c = client();
    let create = |path: &str, token: &'static str| {
        c.put(server.stream(path))
            .bearer_auth(token)
            .header("content-type", "application/json")
            .send()
    };
    for path in ["team/a", "other/b"] {
        let r = create(path, "admin").await.expect("create");
        assert_eq!(r.status(), StatusCode::CREATED, "{path}");
    }
    let sub = server.stream("__ds/subscriptions/watch");
    let put = |config: Value| c.put(&sub).bearer_auth("team").json(&config).send();
    let get = || async {
        let r = c.get(&sub).bearer_auth("team").send().await.expect("get");
        (r.status(), r.text().await.unwrap_or_default())
    };
    // Outside its scope: a stream linked by name, or a wake stream to append to.
    for config in [
        json!({"type": "pull-wake", "wake_stream": "team/wakes", "streams": ["team/a", "other/b"]}),
        json!({"type": "pull-wake", "wake_stream": "other/wakes", "streams": ["team/a"]}),
        json!({"type": "pull-wake", "wake_stream": "other/wakes", "pattern": "**"}),
    ] {
        let r = put(config.clone()).await.expect("put");
        assert_eq!(r.status(), StatusCode::FORBIDDEN, "{config}");
        assert_eq!(
            get().await.0,
            StatusCode::NOT_FOUND,
            "made anyway: {config}"
        );
    }
    // A pattern over everything links only what the token covers, then and later.
    let r = put(json!({"type": "pull-wake", "wake_stream": "team/wakes", "pattern": "**"}))
        .await
        .expect("put");
    assert_eq!(r.status(), StatusCode::CREATED);
    for path in ["team/c", "other/d"] {
        let r = create(path, "admin").await.expect("create");
        assert_eq!(r.status(), StatusCode::CREATED, "{path}");
        let r = c
            .post(server.stream(path))
            .bearer_auth("admin")
            .header("content-type", "application/json")
            .body(r#"{"n":1}"#)
            .send()
            .await
            .expect("append");
        assert_eq!(r.status(), StatusCode::NO_CONTENT, "{path}");
    }
    let (status, linked) = get().await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        linked.contains("team/a") && linked.contains("team/c"),
        "the token's streams linked: {linked}"
    );
    assert!(
        !linked.contains("other/"),
        "others' streams linked: {linked}"
    );
    // Streams added by name keep to the scope of the token adding them.
    let add = |path: &str| {
        c.post(format!("{sub}/streams"))
            .bearer_auth("team")
            .json(&json!({"streams": [path]}))
            .send()
    };
    assert_eq!(
        add("other/b").await.expect("add").status(),
        StatusCode::FORBIDDEN
    );
    let (status, linked) = get().await;
    assert_eq!(status, StatusCode::OK);
    assert!(!linked.contains("other/b"), "{linked}");
    assert_eq!(
        add("team/e").await.expect("add").status(),
        StatusCode::NO_CONTENT
    );
    assert!(get().await.1.contains("team/e"));
    // Another token's subscription is not there for a token of other streams (but is
    // for one of every stream).
    let as_other = |method: Method, url: String| c.request(method, url).bearer_auth("other");
    for (method, url) in [
        (Method::GET, sub.clone()),
        (Method::DELETE, sub.clone()),
        (Method::POST, format!("{sub}/claim")),
        (Method::DELETE, format!("{sub}/streams/team/a")),
    ] {
        let r = as_other(method.clone(), url.clone())
            .json(&json!({"worker": "w"}))
            .send()
            .await
            .expect("request");
        assert_eq!(r.status(), StatusCode::NOT_FOUND, "{method} {url}");
    }
    let r = as_other(Method::PUT, sub.clone())
        .json(&json!({"type": "pull-wake", "wake_stream": "other/wakes", "pattern": "**"}))
        .send()
        .await
        .expect("put");
    assert_eq!(r.status(), StatusCode::CONFLICT);
    let (status, linked) = get().await;
    assert_eq!(status, StatusCode::OK, "still there for its own token");
    assert!(linked.contains("team/a"), "{linked}");
    let r = c.get(&sub).bearer_auth("admin").send().await.expect("get");
    assert_eq!(r.status(), StatusCode::OK);
    // Its path percent-encoded, a subscription keeps to its token's scope all the same.
    let sneak = format!("{}/v1/stream/__ds%2Fsubscriptions%2Fsneak", server.url);
    let r = c
        .put(&sneak)
        .bearer_auth("wide")
        .json(&json!({"type": "pull-wake", "wake_stream": "team/w", "streams": ["other/b"]}))
        .send()
        .await
        .expect("put");
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    server.finish().await;
}

#[tokio::test]
async fn a_pattern_lets_go_of_the_streams_that_expire_once_they_are_swept() {
    let dir = temp_dir("links-expired");
    let server = ServerProcess::start(&dir, &["--subscriptions"]).await;
    let c = client();
    put_subscription(
        &c,
        &server,
        "short",
        json!({"type": "pull-wake", "wake_stream": "short-wakes", "pattern": "short/*"}),
    )
    .await;
    let linked = || async {
        let r = c
            .get(server.stream("__ds/subscriptions/short"))
            .send()
            .await
            .expect("get");
        r.text().await.unwrap_or_default()
    };
    for i in 0..3 {
        let url = server.stream(&format!("short/s{i}"));
        let r = c
            .put(&url)
            .header("content-type", "application/json")
            .header("stream-ttl", "1")
            .send()
            .await
            .expect("create");
        assert_eq!(r.status(), StatusCode::CREATED);
        post_json(&c, &url, r#"{"n":1}"#).await;
    }
    assert!(linked().await.contains("short/s2"), "linked by the pattern");
    // Past their time to live and the sweep that removes them (every 5 s).
    tokio::time::sleep(Duration::from_millis(7_000)).await;
    let url = server.stream("short/live");
    create_json(&c, &url).await;
    post_json(&c, &url, r#"{"n":1}"#).await;
    let now = linked().await;
    assert!(now.contains("short/live"), "{now}");
    assert!(
        !now.contains("short/s"),
        "expired streams still linked: {now}"
    );
    server.finish().await;
}

#[tokio::test]
async fn reading_a_session_view_keeps_its_stream_with_a_ttl_alive() {
    let dir = temp_dir("session-view-ttl");
    let server = ServerProcess::start(&dir, &[]).await;
    let c = client();
    let r = c
        .put(server.stream("sessions/v"))
        .header("content-type", "application/json")
        .header("stream-ttl", "3")
        .send()
        .await
        .expect("create");
    assert_eq!(r.status(), StatusCode::CREATED);
    let (status, _) = post_events(&c, &server.url, "v", &token_event("v", "a")).await;
    assert_eq!(status, StatusCode::CREATED);
    // Read only through the view, twice a second, for twice the time to live (a
    // pause of more than 2.5 s between two reads would let it expire).
    for _ in 0..12 {
        tokio::time::sleep(Duration::from_millis(500)).await;
        let r = c
            .get(format!("{}/api/sessions/v/view", server.url))
            .send()
            .await
            .expect("view");
        assert_eq!(r.status(), StatusCode::OK, "kept alive by its reads");
    }
    server.finish().await;
}

#[tokio::test]
async fn session_routes_bound_each_event_resume_past_an_empty_id_and_list_only_sessions() {
    let dir = temp_dir("session-edges-2");
    let server = ServerProcess::start(&dir, &[]).await;
    let c = client();
    let (status, body) = post_events(&c, &server.url, "s", &token_event("s", "a")).await;
    assert!(status.is_success(), "{status} {body}");
    // One event of too many JSON values is refused, and the batch it came in changes
    // nothing.
    let mut big = token_event("s", "b");
    big["data"]["numbers"] = json!(vec![0; 70_000]);
    let (status, body) =
        post_events(&c, &server.url, "s", &json!([token_event("s", "b"), big])).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(body["error"]["code"], "event_too_large", "{body}");
    assert_eq!(history(&c, &server.url, "s").await.len(), 1);
    // An empty Last-Event-ID names no event: the URL's offset is where it resumes.
    let first = history(&c, &server.url, "s").await[0]["offset"]
        .as_str()
        .expect("an offset")
        .to_owned();
    let stream = format!("{}/api/sessions/s/stream?offset={first}", server.url);
    let r = c
        .get(&stream)
        .header("last-event-id", "")
        .send()
        .await
        .expect("stream");
    assert_eq!(r.status(), StatusCode::OK);
    let mut body = r.bytes_stream();
    let head = tokio::time::timeout(Duration::from_secs(5), body.next())
        .await
        .expect("an event")
        .expect("bytes")
        .expect("bytes");
    let text = String::from_utf8_lossy(&head);
    assert!(text.contains("up-to-date"), "{text}");
    assert!(
        !text.contains("container-agent:token"),
        "history again: {text}"
    );
    drop(body);
    // Closed and read to its end, a reconnecting EventSource is told 204: nothing more.
    let r = c
        .post(server.stream("sessions/s"))
        .header("content-type", "application/json")
        .header("stream-closed", "true")
        .send()
        .await
        .expect("close");
    assert!(r.status().is_success(), "{}", r.status());
    let end = history(&c, &server.url, "s").await;
    let r = c
        .get(format!("{}/api/sessions/s/stream", server.url))
        .header(
            "last-event-id",
            end[0]["offset"].as_str().expect("an offset"),
        )
        .send()
        .await
        .expect("stream");
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    // A closed session of no event at all: its `closed` event carries the id an
    // EventSource reconnects with, and is told 204.
    let r = c
        .put(server.stream("sessions/empty"))
        .header("content-type", "application/json")
        .header("stream-closed", "true")
        .send()
        .await
        .expect("create closed");
    assert_eq!(r.status(), StatusCode::CREATED);
    let r = c
        .get(format!("{}/api/sessions/empty/stream", server.url))
        .send()
        .await
        .expect("stream");
    let text = r.text().await.expect("the whole stream");
    let id = text
        .lines()
        .skip_while(|l| *l != "event: closed")
        .find_map(|l| l.strip_prefix("id: "))
        .unwrap_or_else(|| panic!("the closed event has an id: {text}"))
        .to_owned();
    let r = c
        .get(format!("{}/api/sessions/empty/stream", server.url))
        .header("last-event-id", id)
        .send()
        .await
        .expect("stream");
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    // A batch of too many values is refused before it is taken apart.
    let (status, body) = post_events(&c, &server.url, "s", &json!(vec![0; 1_100_000])).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(body["error"]["code"], "batch_too_large", "{body}");
    // The list shows only what the session routes answer.
    for (path, content_type) in [
        ("sessions/a/b", "application/json"),
        ("sessions/bytes", "text/plain"),
    ] {
        let r = c
            .put(server.stream(path))
            .header("content-type", content_type)
            .send()
            .await
            .expect("create");
        assert_eq!(r.status(), StatusCode::CREATED, "{path}");
    }
    let ids = session_ids(c.get(format!("{}/api/sessions", server.url))).await;
    assert_eq!(ids, ["empty", "s"]);
    server.finish().await;
}

#[tokio::test]
async fn a_subscription_never_links_its_own_wake_stream() {
    let dir = temp_dir("links-own-wake");
    let server = ServerProcess::start(&dir, &["--subscriptions"]).await;
    let c = client();
    for path in ["jobs/wake", "jobs/a"] {
        create_json(&c, &server.stream(path)).await;
    }
    // Named, it is refused.
    let r = c
        .put(server.stream("__ds/subscriptions/own"))
        .json(&json!({"type": "pull-wake", "wake_stream": "jobs/wake", "streams": ["jobs/wake"]}))
        .send()
        .await
        .expect("put");
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    // Matched by its pattern, it is passed over, then and later.
    put_subscription(
        &c,
        &server,
        "jobs",
        json!({"type": "pull-wake", "wake_stream": "jobs/wake", "pattern": "jobs/**"}),
    )
    .await;
    post_json(&c, &server.stream("jobs/a"), r#"{"n":1}"#).await;
    post_json(&c, &server.stream("jobs/wake"), r#"{"n":2}"#).await;
    let sub: Value = c
        .get(server.stream("__ds/subscriptions/jobs"))
        .send()
        .await
        .expect("get")
        .json()
        .await
        .expect("json");
    let linked: Vec<&str> = sub["streams"]
        .as_array()
        .expect("streams")
        .iter()
        .filter_map(|s| s["path"].as_str())
        .collect();
    assert_eq!(linked, ["jobs/a"], "{sub}");
    let r = c
        .post(server.stream("__ds/subscriptions/jobs/streams"))
        .json(&json!({"streams": ["jobs/wake"]}))
        .send()
        .await
        .expect("add");
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    server.finish().await;
}
