//! The session API: history pages, live event sources, producers' answers, input at
//! the edges, the page and the view, and a session's stream on the stream routes.

use super::*;

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
