//! Who may do what, and what answers tell browsers and caches: tokens and their scopes,
//! caching, CORS, and reads that are never pages of the server's origin.

use super::*;

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
