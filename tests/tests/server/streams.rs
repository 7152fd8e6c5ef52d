//! A stream's life: deleted and created again, forked, named with percent-encodings,
//! and HTTP's methods, heads, locations and expiries at the edges.

use super::*;

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
    // A path with a `.` or `..` segment, which URLs resolve away (percent-encoded too),
    // could not be named again: refused, nothing made.
    for path in ["d/../e", "d/%2E%2E/e", "d/./e", "d/%2e/e"] {
        let request = format!(
            "PUT /v1/stream/{path} HTTP/1.1\r\nHost: t\r\nContent-Length: 0\r\n\
             Connection: close\r\n\r\n"
        );
        let all = exchange(&server, request.as_bytes(), false).await;
        let (answer, _) = next_response(&all, false);
        assert_eq!(answer.status, 400, "{path}");
        assert!(
            String::from_utf8_lossy(&answer.body).contains("segment"),
            "{path}"
        );
    }
    for made in ["d/e", "e"] {
        let r = c.head(server.stream(made)).send().await.expect("head");
        assert_eq!(r.status(), StatusCode::NOT_FOUND, "{made}");
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
