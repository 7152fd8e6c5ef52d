//! Subscriptions: webhooks and pull-wake workers, patterns over streams that come and
//! go, and the scope of the token that made them.

use super::*;

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

/// Makes subscription `id` with the configuration `config` (which must succeed).
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
