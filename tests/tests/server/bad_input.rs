//! Bad input: a clear error that changes nothing, answered from the request's head
//! when its body is refused.

use super::*;

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
