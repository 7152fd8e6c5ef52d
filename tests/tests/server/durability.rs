//! Restarts and concurrency: `kill -9` and SIGTERM, sixteen producers at once, and a
//! second server on the same data directory.

use super::*;

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
