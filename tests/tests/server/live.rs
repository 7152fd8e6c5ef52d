//! Live reads that wait: parked SSE subscribers woken, aged out and given framing of
//! their own, and a waiting long-poll ended by its stream's deletion.

use super::*;

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
