//! The lean HTTP layer on the wire: pipelined and framed requests, and appends it
//! reads answered exactly as the router answers them.

use super::*;

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
    // Within `p`'s scope (`public/`): its appends pass where, outside, they did not.
    let scoped: Vec<AppendCase> = vec![
        (json, vec![], body("Authorization: Bearer p\r\n"), "[1]"),
        (json, vec![], body("Authorization: Bearer r\r\n"), "[1]"),
        (json, vec![], body("Authorization: Bearer w\r\n"), "[1]"),
    ];
    lean_and_routed_appends_agree(&server, &c, ("public/", w), &scoped).await;
    // A path with a dot segment names no stream (none can be made there), and its
    // scope is the path as written.
    let absent: Vec<AppendCase> = scoped
        .iter()
        .map(|(_, before, lines, body)| (None, before.clone(), lines.clone(), *body))
        .collect();
    lean_and_routed_appends_agree(&server, &c, ("public/../", w), &absent).await;
    server.finish().await;
}
