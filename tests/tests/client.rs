//! The native client against the real server: history then live without gap while a
//! producer writes, a server killed and restarted mid-subscription, and an exactly-once
//! producer behind a proxy that cuts connections.

use std::path::PathBuf;
use std::time::Duration;

use futures::{FutureExt, StreamExt};
use gapless_client::{
    Client, CreateOptions, Error, ProducerConfig, SessionSubscription, SessionUpdate, StreamHandle,
    Update,
};
use gapless_core::resume::LiveMode;
use gapless_core::Offset;
use gapless_tests::canned::canned;
use gapless_tests::proxy::Proxy;
use gapless_tests::reading::{expect_closed, expect_sequence, json_stream, next_within};
use gapless_tests::{temp_dir, ServerProcess};
use serde_json::{json, Value};

/// A server started with `args` on a fresh directory named `name`, and a handle on
/// the new JSON stream `stream` there.
async fn server_with_stream(
    name: &str,
    args: &[&str],
    stream: &str,
) -> (PathBuf, ServerProcess, StreamHandle) {
    let dir = temp_dir(name);
    let server = ServerProcess::start(&dir, args).await;
    let client = Client::new().expect("client");
    let stream = json_stream(&client, &server.stream(stream)).await;
    (dir, server, stream)
}

#[tokio::test]
async fn history_then_live_without_gap_while_a_producer_writes() {
    let (_, server, stream) =
        server_with_stream("client-live", &["--durability", "normal"], "live").await;
    let producer = stream.producer(ProducerConfig::new("writer", "application/json"));
    let n = 3000u64;
    // Half the messages exist before the readers start; the rest arrive while they
    // switch from history to live.
    for i in 0..n / 2 {
        producer
            .push_json(&serde_json::json!({"i": i}))
            .await
            .expect("push");
    }
    producer.flush().await.expect("flush");
    let mut sse = stream.subscribe_with(Offset::START, LiveMode::Sse);
    let mut long_poll = stream.subscribe_with(Offset::START, LiveMode::LongPoll);
    let writer = tokio::spawn(async move {
        for i in n / 2..n {
            producer
                .push_json(&serde_json::json!({"i": i}))
                .await
                .expect("push");
            if i % 100 == 0 {
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
        }
        producer.flush().await.expect("flush");
        producer
    });
    let a = expect_sequence(&mut sse, n, Duration::from_secs(60)).await;
    let b = expect_sequence(&mut long_poll, n, Duration::from_secs(60)).await;
    assert_eq!(a, b);
    let producer = writer.await.expect("writer");
    assert_eq!(producer.lag(), 0);
    // Closing the stream ends both subscriptions with Closed, and nothing more.
    stream.close().await.expect("close");
    for sub in [&mut sse, &mut long_poll] {
        assert_eq!(expect_closed(sub).await, a);
    }
    server.finish().await;
}

#[tokio::test]
async fn subscription_survives_a_server_kill_and_restart() {
    let (dir, server, stream) = server_with_stream("client-restart", &[], "r").await;
    let addr = server.addr().to_owned();
    let producer = stream.producer(ProducerConfig::new("w", "application/json"));
    for i in 0..100u64 {
        producer
            .append_json(&serde_json::json!({"i": i}))
            .await
            .expect("append");
    }
    let mut sub = stream.subscribe(Offset::START);
    let reader = tokio::spawn(async move {
        let last = expect_sequence(&mut sub, 300, Duration::from_secs(90)).await;
        (sub, last)
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    server.kill9().await;
    // Appends while the server is down wait and retry; they land exactly once.
    let writer = tokio::spawn(async move {
        for i in 100..300u64 {
            producer
                .append_json(&serde_json::json!({"i": i}))
                .await
                .expect("append");
        }
        producer
    });
    tokio::time::sleep(Duration::from_millis(700)).await;
    let server = ServerProcess::start_on(&dir, &addr, &[]).await;
    let producer = writer.await.expect("writer");
    let (_sub, last) = reader.await.expect("reader");
    assert_eq!(last, stream.head().await.expect("head").next_offset);
    drop(producer);
    server.finish().await;
}

/// Reads `session` until an update `want` takes (10 s at most), failing on errors.
async fn session_until(
    session: &mut SessionSubscription,
    want: fn(&SessionUpdate) -> bool,
) -> SessionUpdate {
    tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            match session.next().await {
                Some(Ok(u)) if want(&u) => return u,
                Some(Ok(_)) => {}
                other => panic!("unexpected {other:?}"),
            }
        }
    })
    .await
    .expect("in time")
}

#[tokio::test]
async fn a_subscription_tells_of_each_retry_and_reads_on_from_where_it_was() {
    let (dir, server, stream) = server_with_stream("client-retry-told", &[], "told").await;
    let addr = server.addr().to_owned();
    stream
        .append("application/json", br#"{"i":0}"#.to_vec())
        .await
        .expect("append");
    let mut sub = stream.subscribe_with(Offset::START, LiveMode::LongPoll);
    let at = expect_sequence(&mut sub, 1, Duration::from_secs(10)).await;
    // A session read of the same stream is told too.
    let mut session = stream.subscribe_session(Offset::START, Duration::from_secs(60));
    session_until(&mut session, |u| matches!(u, SessionUpdate::UpToDate)).await;
    server.kill9().await;
    let told = session_until(&mut session, |u| {
        matches!(u, SessionUpdate::Reconnecting { .. })
    })
    .await;
    assert!(matches!(told, SessionUpdate::Reconnecting { reason } if !reason.is_empty()));
    // The poll in flight breaks, then each attempt to connect again fails: each told.
    let told = tokio::time::timeout(Duration::from_secs(10), async {
        let mut told = Vec::new();
        while told.len() < 2 {
            match sub.next().await {
                Some(Ok(Update::Reconnecting { reason })) => told.push(reason),
                Some(Ok(Update::UpToDate { .. })) => {}
                other => panic!("unexpected {other:?} while the server is down"),
            }
        }
        told
    })
    .await
    .expect("the failed reads are told");
    // (The first is the poll's, unless the kill came before it was sent.)
    assert!(
        told[0].starts_with("connection lost") || told[0].starts_with("connect failed"),
        "{told:?}"
    );
    assert!(told[1].starts_with("connect failed"), "{told:?}");
    let server = ServerProcess::start_on(&dir, &addr, &[]).await;
    stream
        .append("application/json", br#"{"i":1}"#.to_vec())
        .await
        .expect("append");
    let mut next = None;
    tokio::time::timeout(Duration::from_secs(30), async {
        while next.is_none() {
            match sub.next().await {
                Some(Ok(Update::Batch(b))) => next = Some(b),
                Some(Ok(_)) => {}
                other => panic!("unexpected {other:?}"),
            }
        }
    })
    .await
    .expect("data after the restart");
    let batch = next.expect("batch");
    assert!(batch.next_offset > at, "read on from {at}");
    assert_eq!(batch.payload.len(), 1, "the new message only, once");
    server.finish().await;
}

#[tokio::test]
async fn producer_is_exactly_once_when_answers_are_lost() {
    let dir = temp_dir("client-exactly-once");
    let server = ServerProcess::start(&dir, &["--durability", "normal"]).await;
    // A third of the connections lose the server's answer part-way.
    let proxy = Proxy::start(server.addr(), 330, 42).await;
    let direct = Client::new().expect("client");
    json_stream(&direct, &server.stream("once")).await;
    let flaky = Client::builder()
        .request_timeout(Duration::from_secs(5))
        .build()
        .expect("client");
    let producer = flaky
        .stream(format!("{}/v1/stream/once", proxy.url()))
        .producer(ProducerConfig::new("p", "application/json"));
    for i in 0..150u64 {
        if i % 3 == 0 {
            producer
                .append_json(&serde_json::json!({"i": i}))
                .await
                .expect("append");
        } else {
            producer
                .push_json(&serde_json::json!({"i": i}))
                .await
                .expect("push");
        }
    }
    producer.flush().await.expect("flush");
    assert!(
        proxy.cuts() > 5,
        "faults were injected ({} cuts)",
        proxy.cuts()
    );
    // Read through the flaky proxy too: the reader must also cope.
    let mut sub = flaky
        .stream(format!("{}/v1/stream/once", proxy.url()))
        .subscribe_with(Offset::START, LiveMode::Off);
    expect_sequence(&mut sub, 150, Duration::from_secs(60)).await;
    // And the server holds exactly 150 messages.
    let all: Vec<Value> = reqwest::get(format!("{}?offset=-1", server.stream("once")))
        .await
        .expect("get")
        .json()
        .await
        .expect("json");
    assert_eq!(all.len(), 150);
    server.finish().await;
}

/// The stream's messages, read straight from the server.
async fn stored(server: &ServerProcess, name: &str) -> Vec<Value> {
    reqwest::get(format!("{}?offset=-1", server.stream(name)))
        .await
        .expect("get")
        .json()
        .await
        .expect("json")
}

#[tokio::test]
async fn a_producer_call_given_up_before_it_was_sent_is_withdrawn_and_not_counted() {
    let (_, server, stream) =
        server_with_stream("client-given-up", &["--durability", "normal"], "given-up").await;
    let mut config = ProducerConfig::new("p", "application/json");
    config.linger = Duration::from_millis(200);
    let producer = stream.producer(config);
    producer.push_json(&json!({"n": 0})).await.expect("push");
    // Queued behind the push's batch (polled once), then given up before the queue
    // took it: this task does not yield in between.
    let given_up = producer
        .append_json(&json!({"n": "given up"}))
        .now_or_never();
    assert!(given_up.is_none(), "{given_up:?}");
    producer
        .append_json(&json!({"n": 2}))
        .await
        .expect("append");
    producer.flush().await.expect("flush");
    assert_eq!(
        stored(&server, "given-up").await,
        vec![json!({"n": 0}), json!({"n": 2})]
    );
    server.finish().await;

    // A server that takes requests and never answers: the queue fills, and a push
    // given up while it waits for room is not counted as pushed.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let at = listener.local_addr().expect("addr");
    let silent = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((conn, _)) = listener.accept().await {
            held.push(conn);
        }
    });
    let mut config = ProducerConfig::new("p", "application/json");
    config.linger = Duration::ZERO;
    config.queue_capacity = 1;
    let producer = Client::new()
        .expect("client")
        .stream(format!("http://{at}/v1/stream/silent"))
        .producer(config);
    let mut pushed = 0;
    let gave_up = loop {
        let message = json!({"n": pushed});
        match tokio::time::timeout(Duration::from_millis(300), producer.push_json(&message)).await {
            Ok(result) => result.expect("push"),
            Err(_) => break true,
        }
        pushed += 1;
        if pushed == 100 {
            break false;
        }
    };
    assert!(gave_up, "the queue of one never filled");
    assert!(pushed >= 1);
    assert_eq!(producer.lag(), pushed, "what lags is what was pushed");
    drop(producer);
    silent.abort();
}

#[tokio::test]
async fn an_append_whose_answer_was_lost_does_not_make_the_next_one_a_duplicate() {
    let dir = temp_dir("client-unknown-outcome");
    let server = ServerProcess::start(&dir, &["--durability", "normal"]).await;
    // Every answer is cut: the append is stored, and its producer cannot know it.
    let proxy = Proxy::start(server.addr(), 1000, 7).await;
    let direct = Client::new().expect("client");
    json_stream(&direct, &server.stream("lost")).await;
    let flaky = Client::builder()
        .request_timeout(Duration::from_secs(5))
        .build()
        .expect("client");
    let mut cfg = ProducerConfig::new("p", "application/json");
    cfg.max_retries = Some(0);
    let producer = flaky
        .stream(format!("{}/v1/stream/lost", proxy.url()))
        .producer(cfg);
    let lost = producer.append_json(&serde_json::json!({"n": "a"})).await;
    assert!(matches!(lost, Err(Error::OutcomeUnknown(_))), "{lost:?}");
    proxy.set_cut_per_mille(0);
    // The next append is other data: it must not reuse the number of the first.
    producer
        .append_json(&serde_json::json!({"n": "b"}))
        .await
        .expect("append");
    let all = stored(&server, "lost").await;
    assert_eq!(
        all,
        [serde_json::json!({"n": "a"}), serde_json::json!({"n": "b"})]
    );
    server.finish().await;
}

#[tokio::test]
async fn a_fenced_retry_of_an_append_whose_answer_was_lost_is_not_sent_again() {
    let dir = temp_dir("client-fenced-retry");
    let server = ServerProcess::start(&dir, &["--durability", "normal"]).await;
    let proxy = Proxy::start(server.addr(), 1000, 9).await;
    let direct = Client::new().expect("client");
    json_stream(&direct, &server.stream("fenced")).await;
    let flaky = Client::builder()
        .request_timeout(Duration::from_secs(5))
        .build()
        .expect("client");
    let mut cfg = ProducerConfig::new("p", "application/json");
    cfg.epoch = Some(1);
    let first = flaky
        .stream(format!("{}/v1/stream/fenced", proxy.url()))
        .producer(cfg);
    // Its answers are lost, and it retries...
    let sending = tokio::spawn(async move {
        let result = first.append_json(&serde_json::json!({"n": "a"})).await;
        (first, result)
    });
    let until = tokio::time::Instant::now() + Duration::from_secs(10);
    while proxy.cuts() == 0 {
        assert!(tokio::time::Instant::now() < until, "no answer was cut");
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    // ...while a restarted writer with the same id claims a newer epoch.
    let mut cfg = ProducerConfig::new("p", "application/json");
    cfg.epoch = Some(2);
    let second = direct.stream(server.stream("fenced")).producer(cfg);
    second
        .append_json(&serde_json::json!({"n": "x"}))
        .await
        .expect("append");
    proxy.set_cut_per_mille(0);
    // The retry is fenced: the first attempt may be stored (it is), so it must not
    // be sent again under a newer epoch.
    let (first, result) = sending.await.expect("task");
    assert!(
        matches!(result, Err(Error::OutcomeUnknown(_))),
        "{result:?}"
    );
    assert_eq!(
        stored(&server, "fenced").await,
        [serde_json::json!({"n": "a"}), serde_json::json!({"n": "x"})]
    );
    // It has written (its first attempt was stored), and a newer instance took over:
    // it is fenced for good, its next append too, never claiming above the newer one.
    let next = first.append_json(&serde_json::json!({"n": "c"})).await;
    assert!(
        matches!(next, Err(Error::Fenced { current: 2 })),
        "{next:?}"
    );
    assert_eq!(
        stored(&server, "fenced").await,
        [serde_json::json!({"n": "a"}), serde_json::json!({"n": "x"})]
    );
    server.finish().await;
}

#[tokio::test]
async fn a_producer_that_stored_is_fenced_for_good_by_a_newer_instance() {
    let (_dir, server, _stream) =
        server_with_stream("client-zombie", &["--durability", "normal"], "zombie").await;
    let client = Client::new().expect("client");
    let instance = |epoch| {
        let mut cfg = ProducerConfig::new("p", "application/json");
        cfg.epoch = Some(epoch);
        client.stream(server.stream("zombie")).producer(cfg)
    };
    let old = instance(1);
    old.append_json(&json!({"n": "a"})).await.expect("append");
    let new = instance(2);
    new.append_json(&json!({"n": "x"})).await.expect("append");
    // The old instance does not claim an epoch above the new one's: it is fenced,
    // append after append.
    for n in ["b", "c"] {
        let result = old.append_json(&json!({ "n": n })).await;
        assert!(
            matches!(result, Err(Error::Fenced { current: 2 })),
            "{result:?}"
        );
    }
    new.append_json(&json!({"n": "y"})).await.expect("append");
    assert_eq!(
        stored(&server, "zombie").await,
        [json!({"n": "a"}), json!({"n": "x"}), json!({"n": "y"})]
    );
    // The stream made again (the server knows no producer of it), the old instance
    // still writes nothing: it fails at once, sending nothing.
    let handle = client.stream(server.stream("zombie"));
    handle.delete().await.expect("delete");
    json_stream(&client, &server.stream("zombie")).await;
    let result = old.append_json(&json!({"n": "z"})).await;
    assert!(
        matches!(result, Err(Error::Fenced { current: 2 })),
        "{result:?}"
    );
    assert!(stored(&server, "zombie").await.is_empty());
    server.finish().await;
}

#[tokio::test]
async fn a_plain_append_whose_answer_was_lost_is_of_unknown_outcome_not_a_transport_error() {
    let (_dir, server, _stream) =
        server_with_stream("client-plain-lost", &["--durability", "normal"], "plain").await;
    let proxy = Proxy::start(server.addr(), 1000, 3).await;
    let flaky = Client::builder()
        .request_timeout(Duration::from_secs(2))
        .build()
        .expect("client");
    let through = flaky.stream(format!("{}/v1/stream/plain", proxy.url()));
    let result = through
        .append("application/json", br#"{"n":1}"#.to_vec())
        .await;
    assert!(
        matches!(result, Err(Error::OutcomeUnknown(_))),
        "{result:?}"
    );
    // (It was stored: the proxy cut the answer, not the request.)
    assert_eq!(stored(&server, "plain").await, [json!({"n": 1})]);
    // A connection that could not be made sent nothing.
    let nowhere = flaky.stream("http://127.0.0.1:9/v1/stream/plain");
    let result = nowhere
        .append("application/json", br#"{"n":2}"#.to_vec())
        .await;
    assert!(matches!(result, Err(Error::Transport(_))), "{result:?}");
    server.finish().await;
}

#[tokio::test]
async fn a_missing_stream_a_deleted_one_and_refused_credentials_are_distinct_errors() {
    let dir = temp_dir("client-errors");
    let server =
        ServerProcess::start_with_tokens(&dir, "reader read *\nwriter write *\n", &[]).await;
    let writer = Client::builder()
        .bearer_token("writer")
        .build()
        .expect("client");

    // A stream that was never there.
    let mut sub = writer
        .stream(server.stream("absent"))
        .subscribe(Offset::START);
    match next_within(&mut sub).await {
        Some(Err(Error::NotFound)) => {}
        other => panic!("expected NotFound, got {other:?}"),
    }
    assert!(next_within(&mut sub).await.is_none());

    // One deleted while a fork still reads it: its data is gone for its readers
    // (410), which is not "not found".
    let source = json_stream(&writer, &server.stream("source")).await;
    source
        .append("application/json", br#"{"n":1}"#.to_vec())
        .await
        .expect("append");
    let fork = reqwest::Client::new()
        .put(server.stream("fork"))
        .bearer_auth("writer")
        .header("Content-Type", "application/json")
        .header("Stream-Forked-From", "/v1/stream/source")
        .send()
        .await
        .expect("fork");
    assert_eq!(fork.status(), reqwest::StatusCode::CREATED);
    source.delete().await.expect("delete");
    let mut sub = source.subscribe(Offset::START);
    match next_within(&mut sub).await {
        Some(Err(Error::ContinuityLost { .. })) => {}
        other => panic!("expected ContinuityLost, got {other:?}"),
    }

    // A wrong token, and a token that may read but not write.
    let stranger = Client::builder().bearer_token("x").build().expect("client");
    assert!(matches!(
        stranger.stream(server.stream("fork")).head().await,
        Err(Error::Auth { status: 401, .. })
    ));
    let reader = Client::builder()
        .bearer_token("reader")
        .build()
        .expect("client");
    let fork = reader.stream(server.stream("fork"));
    assert!(fork.head().await.is_ok(), "the reader may read");
    assert!(matches!(
        fork.append("application/json", br#"{"n":2}"#.to_vec())
            .await,
        Err(Error::Auth { status: 403, .. })
    ));
    server.finish().await;
}

/// Why the read behind `watch` stopped for good, once it says so (within 10 s).
async fn failure_of(watch: &gapless_client::SessionWatch) -> std::sync::Arc<Error> {
    tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            if let Some(failure) = watch.failure() {
                return failure;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await
    .expect("the read's end is told to a watch of the view alone")
}

#[tokio::test]
async fn a_session_reader_on_a_stream_of_bytes_fails_rather_than_showing_nothing() {
    let dir = temp_dir("client-session-bytes");
    let server = ServerProcess::start(&dir, &[]).await;
    let client = Client::new().expect("client");
    let stream = client.stream(server.stream("sessions/not-json"));
    stream
        .create(CreateOptions {
            content_type: Some("text/plain".into()),
            ..CreateOptions::default()
        })
        .await
        .expect("create");
    stream
        .append("text/plain", b"not events".to_vec())
        .await
        .expect("append");
    let mut sub = stream.subscribe_session(Offset::START, Duration::from_secs(60));
    let first = tokio::time::timeout(Duration::from_secs(10), sub.next())
        .await
        .expect("an answer in time");
    assert!(
        matches!(first, Some(Err(Error::Protocol(ref why))) if why.contains("JSON")),
        "{first:?}"
    );
    let end = tokio::time::timeout(Duration::from_secs(60), sub.next()).await;
    assert!(matches!(end, Ok(None)), "the reading ended: {end:?}");
    // Watched alone, the view says why it stays empty too.
    let watch = stream
        .subscribe_session(Offset::START, Duration::from_secs(60))
        .into_view();
    let failure = failure_of(&watch).await;
    assert!(
        matches!(*failure, Error::Protocol(ref why) if why.contains("JSON")),
        "{failure:?}"
    );
    server.finish().await;
}

#[tokio::test]
async fn a_producer_goes_on_in_a_new_epoch_when_the_server_no_longer_knows_its_numbers() {
    let (_, server, stream) = server_with_stream("client-forgotten", &[], "reset").await;
    let producer = stream.producer(ProducerConfig::new("writer", "application/json"));
    for i in 0..2 {
        let ack = producer
            .append_json(&json!({"i": i}))
            .await
            .expect("append");
        assert_eq!(ack.seq, i);
    }
    // The stream is deleted and made again: the server knows nothing of this
    // producer, and refuses an epoch's start past sequence 0.
    stream.delete().await.expect("delete");
    json_stream(&Client::new().expect("client"), &server.stream("reset")).await;
    let ack = producer
        .append_json(&json!({"i": 2}))
        .await
        .expect("appended under a new epoch");
    assert_eq!((ack.epoch > 0, ack.seq), (true, 0), "{ack:?}");
    let ack = producer
        .append_json(&json!({"i": 3}))
        .await
        .expect("append");
    assert_eq!(ack.seq, 1);
    let mut sub = stream.subscribe_with(Offset::START, LiveMode::Off);
    let mut got = Vec::new();
    while let Some(update) = next_within(&mut sub).await {
        if let Update::Batch(b) = update.expect("read") {
            if let gapless_core::resume::Payload::Json(m) = &b.payload {
                got.extend(m.iter().map(|m| m.get().to_owned()));
            }
        }
    }
    assert_eq!(got, [r#"{"i":2}"#, r#"{"i":3}"#]);
    server.finish().await;
}

#[tokio::test]
async fn what_can_never_be_sent_fails_at_once_rather_than_being_retried() {
    let (_, server, stream) = server_with_stream("client-unsendable", &[], "unsendable").await;
    let client = Client::new().expect("client");

    // A URL without a scheme, and one whose fragment would swallow each read's query.
    let no_scheme = server.stream("unsendable").replace("http://", "");
    let mut sub = client.stream(no_scheme.as_str()).subscribe(Offset::START);
    let first = at_once("a subscription to a URL without a scheme", sub.next()).await;
    assert!(matches!(first, Some(Err(Error::Url { .. }))), "{first:?}");
    assert!(next_within(&mut sub).await.is_none());
    let fragment = format!("{}#top", server.stream("unsendable"));
    let producer = client
        .stream(fragment.as_str())
        .producer(ProducerConfig::new("p", "application/json"));
    let append = at_once(
        "an append to a URL with a fragment",
        producer.append_json(&json!({"n": 1})),
    )
    .await;
    assert!(matches!(append, Err(Error::Url { .. })), "{append:?}");

    // A producer id that is no header value.
    let producer = stream.producer(ProducerConfig::new("p\nq", "application/json"));
    let append = at_once(
        "an append with a producer id that is no header value",
        producer.append_json(&json!({"n": 2})),
    )
    .await;
    assert!(matches!(append, Err(Error::Transport(_))), "{append:?}");

    // In JSON mode, what is not one JSON value: refused where it is given, and the
    // batch it would have joined goes out without it.
    let producer = stream.producer(ProducerConfig::new("j", "application/json"));
    producer
        .push(b"{\"n\":3}".to_vec())
        .await
        .expect("one value");
    for bad in [&b"{\"n\":"[..], b"1,2", b"", b"\xff"] {
        let pushed = producer.push(bad.to_vec()).await;
        assert!(
            matches!(pushed, Err(Error::InvalidArgument(_))),
            "{pushed:?}"
        );
        let appended = at_once("a malformed append", producer.append(bad.to_vec())).await;
        assert!(
            matches!(appended, Err(Error::InvalidArgument(_))),
            "{appended:?}"
        );
    }
    producer.flush().await.expect("the good one is stored");
    // The stream holds it alone: none of the refused appends above reached it.
    assert_eq!(stored(&server, "unsendable").await, [json!({"n": 3})]);
    server.finish().await;
}

/// `what` within seconds: it fails at once rather than being retried for ever.
async fn at_once<T>(what: &str, outcome: impl std::future::Future<Output = T>) -> T {
    tokio::time::timeout(Duration::from_secs(5), outcome)
        .await
        .unwrap_or_else(|_| panic!("{what} was retried rather than refused"))
}

#[tokio::test]
async fn a_producer_stopped_by_a_failed_queued_append_says_how_it_failed() {
    let (_, server, stream) = server_with_stream("client-queue-failed", &[], "closed").await;
    stream.close().await.expect("close");
    let producer = stream.producer(ProducerConfig::new("p", "application/json"));
    producer.push_json(&json!({"n": 1})).await.expect("queued");
    let cause_of = |e: Error| match e {
        Error::ProducerFailed(cause) => cause,
        other => panic!("expected ProducerFailed, got {other:?}"),
    };
    let flushed = producer.flush().await.expect_err("the stream is closed");
    assert!(matches!(*cause_of(flushed), Error::Closed));
    // Every later call fails with the same cause, kept as it was.
    let pushed = producer
        .push_json(&json!({"n": 2}))
        .await
        .expect_err("stopped");
    assert!(matches!(*cause_of(pushed), Error::Closed));
    let appended = producer
        .append_json(&json!({"n": 3}))
        .await
        .expect_err("stopped");
    assert!(matches!(*cause_of(appended), Error::Closed));
    assert!(producer.failure().is_some_and(|why| why.contains("closed")));
    server.finish().await;
}

#[tokio::test]
async fn a_close_given_up_on_goes_on_and_a_second_call_gets_its_answer() {
    let dir = temp_dir("client-close-given-up");
    let server = ServerProcess::start(&dir, &["--durability", "normal"]).await;
    // Every answer is cut while the first call waits: the close is stored and
    // retried under its numbers, and its caller gives up.
    let proxy = Proxy::start(server.addr(), 1000, 11).await;
    let direct = Client::new().expect("client");
    json_stream(&direct, &server.stream("closing")).await;
    let producer = direct
        .stream(format!("{}/v1/stream/closing", proxy.url()))
        .producer(ProducerConfig::new("p", "application/json"));
    let given_up = tokio::time::timeout(
        Duration::from_millis(400),
        producer.close_stream(Some(br#"{"last":1}"#.to_vec())),
    )
    .await;
    assert!(
        given_up.is_err(),
        "answered through a proxy that cuts every answer: {given_up:?}"
    );
    assert!(
        proxy.cuts() > 0,
        "the close was sent before it was given up"
    );
    proxy.set_cut_per_mille(0);
    // The call made again, as a caller that gave up would.
    let ack = tokio::time::timeout(
        Duration::from_secs(30),
        producer.close_stream(Some(br#"{"last":1}"#.to_vec())),
    )
    .await
    .expect("answered in time")
    .expect("the close this producer made, not a refusal of its own close");
    let head = direct
        .stream(server.stream("closing"))
        .head()
        .await
        .expect("head");
    assert!(head.closed, "{head:?}");
    assert_eq!(ack.offset, Some(head.next_offset));
    assert_eq!(stored(&server, "closing").await, [json!({"last": 1})]);
    server.finish().await;
}

/// A plain append through a server that answers every request with `status_line`.
async fn plain_append_answered(
    client: &Client,
    status_line: &'static str,
) -> Result<Offset, Error> {
    let (at, server) = canned("127.0.0.1:0", move |_| format!("{status_line}\r\n")).await;
    let appended = client
        .stream(format!("http://{at}/v1/stream/target"))
        .append("application/json", br#"{"n":3}"#.to_vec())
        .await;
    server.abort();
    appended
}

#[tokio::test]
async fn a_redirect_or_a_gateway_error_never_reads_as_an_acknowledged_append() {
    let (_, server, stream) = server_with_stream("client-redirect", &[], "target").await;
    // A redirect to the real stream: followed, a POST would be sent again as a GET,
    // whose 200 would read as stored.
    let location = server.stream("target");
    let (at, redirecting) = canned("127.0.0.1:0", move |_| {
        format!("HTTP/1.1 301 Moved Permanently\r\nlocation: {location}\r\n")
    })
    .await;
    let client = Client::new().expect("client");
    let moved = client.stream(format!("http://{at}/v1/stream/target"));
    let plain = moved
        .append("application/json", br#"{"n":1}"#.to_vec())
        .await;
    assert!(
        matches!(&plain, Err(Error::Status { status: 301, message }) if message.contains("not followed")),
        "{plain:?}"
    );
    let producer = moved.producer(ProducerConfig::new("p", "application/json"));
    let produced = producer.append_json(&json!({"n": 2})).await;
    assert!(
        matches!(produced, Err(Error::Status { status: 301, .. })),
        "{produced:?}"
    );
    assert!(
        stored(&server, "target").await.is_empty(),
        "nothing was appended"
    );
    redirecting.abort();
    // A gateway's 502 or 504 may come after the server stored the append.
    let timed_out = plain_append_answered(&client, "HTTP/1.1 504 Gateway Timeout").await;
    assert!(
        matches!(timed_out, Err(Error::OutcomeUnknown(_))),
        "{timed_out:?}"
    );
    // 501: appends not supported at all; nothing was stored.
    let refused = plain_append_answered(&client, "HTTP/1.1 501 Not Implemented").await;
    assert!(
        matches!(refused, Err(Error::Status { status: 501, .. })),
        "{refused:?}"
    );
    // The same for a producer: refused at once, not sent again until its retry time
    // ends, nor told "may be stored".
    let (at, unsupported) =
        canned("127.0.0.1:0", |_| "HTTP/1.1 501 Not Implemented\r\n".into()).await;
    let producer = client
        .stream(format!("http://{at}/v1/stream/target"))
        .producer(ProducerConfig::new("p", "application/json"));
    let produced = tokio::time::timeout(
        Duration::from_secs(10),
        producer.append_json(&json!({"n": 5})),
    )
    .await
    .expect("answered at once");
    assert!(
        matches!(produced, Err(Error::Status { status: 501, .. })),
        "{produced:?}"
    );
    unsupported.abort();
    // An append to a closed stream says so.
    stream.close().await.expect("close");
    let closed = stream
        .append("application/json", br#"{"n":4}"#.to_vec())
        .await;
    assert!(matches!(closed, Err(Error::Closed)), "{closed:?}");
    server.finish().await;
}

#[tokio::test]
async fn a_producer_whose_retries_found_no_server_goes_on_when_a_new_one_forgot_it() {
    // A server that keeps producers in memory only (as the protocol allows): seq 0
    // is stored, and a later seq of a producer it does not know is refused (400).
    let answer = |head: &str| {
        let seq = head
            .lines()
            .find_map(|l| l.strip_prefix("producer-seq:"))
            .map(str::trim)
            .unwrap_or("")
            .to_owned();
        let epoch = head
            .lines()
            .find_map(|l| l.strip_prefix("producer-epoch:"))
            .map(str::trim)
            .unwrap_or("")
            .to_owned();
        if seq == "0" {
            format!(
                "HTTP/1.1 200 OK\r\nstream-next-offset: 1_{epoch}\r\nproducer-epoch: {epoch}\r\n\
                 producer-seq: 0\r\n"
            )
        } else {
            "HTTP/1.1 400 Bad Request\r\n".to_owned()
        }
    };
    let (at, first) = canned("127.0.0.1:0", answer).await;
    let client = Client::new().expect("client");
    let mut cfg = ProducerConfig::new("p", "application/json");
    cfg.epoch = Some(5);
    cfg.max_retry_delay = Duration::from_millis(200);
    let producer = client
        .stream(format!("http://{at}/v1/stream/s"))
        .producer(cfg);
    let ack = producer
        .append_json(&json!({"n": 1}))
        .await
        .expect("stored");
    assert_eq!((ack.epoch, ack.seq), (5, 0));
    // The server goes away: the next append's tries find nothing listening (nothing
    // sent), until a new one, which knows nothing of the producer, comes up.
    first.abort();
    let _ = first.await;
    let next = tokio::spawn(async move { producer.append_json(&json!({"n": 2})).await });
    tokio::time::sleep(Duration::from_millis(700)).await;
    let (_, second) = canned(at, answer).await;
    let ack = tokio::time::timeout(Duration::from_secs(10), next)
        .await
        .expect("answered")
        .expect("joined")
        .expect("stored under a new epoch, not of unknown outcome");
    assert_eq!((ack.epoch, ack.seq), (6, 0));
    second.abort();
}

#[tokio::test]
async fn pushed_messages_go_out_a_linger_after_the_first_even_while_more_keep_coming() {
    let (_, server, stream) = server_with_stream("client-linger", &[], "lingered").await;
    let mut cfg = ProducerConfig::new("p", "application/json");
    cfg.linger = Duration::from_millis(200);
    let producer = stream.producer(cfg);
    // A push every 5 ms, far inside the linger: batches still leave while they come.
    let mut sent = 0;
    let mut seen_while_pushing = 0;
    let started = std::time::Instant::now();
    while started.elapsed() < Duration::from_secs(5) && seen_while_pushing == 0 {
        producer.push_json(&json!({"n": sent})).await.expect("push");
        sent += 1;
        tokio::time::sleep(Duration::from_millis(5)).await;
        if sent % 40 == 0 {
            seen_while_pushing = stored(&server, "lingered").await.len();
        }
    }
    assert!(seen_while_pushing > 0, "nothing sent in 5 s of pushes");
    producer.flush().await.expect("flush");
    assert_eq!(stored(&server, "lingered").await.len(), sent);
    server.finish().await;
}

#[tokio::test]
async fn a_session_view_watched_alone_follows_the_session_to_its_end() {
    let (_, server, stream) = server_with_stream("client-view-alone", &[], "sessions/alone").await;
    let session = stream.subscribe_session(Offset::START, Duration::from_secs(60));
    let watch = session.into_view();
    // Far more updates than the reader holds for a consumer (16), one append each,
    // with nobody taking them: the view goes on.
    for i in 0..40 {
        let event = json!({"type": "container-agent:token",
                           "data": {"taskId": "t", "sessionId": "alone", "delta": format!("{i} ")}});
        stream
            .append("application/json", event.to_string().into_bytes())
            .await
            .expect("append");
    }
    let done = json!({"type": "container-agent:complete",
                      "data": {"taskId": "t", "sessionId": "alone", "status": "completed",
                               "turnCount": 1}});
    stream
        .append("application/json", done.to_string().into_bytes())
        .await
        .expect("append");
    let mut view = watch.view();
    tokio::time::timeout(
        Duration::from_secs(10),
        view.wait_for(|v| {
            v.status(gapless_client::session::wall_clock())
                .is_terminal()
        }),
    )
    .await
    .expect("the view reached the end of the session")
    .expect("the read goes on");
    assert!(matches!(
        watch.status(),
        gapless_core::session::Status::Completed { .. }
    ));
    assert!(watch.failure().is_none());
    // A read that stops for good says why, though nobody takes its updates.
    stream.delete().await.expect("delete");
    let failure = failure_of(&watch).await;
    assert!(matches!(*failure, Error::NotFound), "{failure:?}");
    drop(watch);
    server.finish().await;
}

#[tokio::test]
async fn a_producer_gives_up_on_an_append_after_its_retry_time_and_says_whether_it_was_sent() {
    let client = Client::new().expect("client");
    let config = |id: &str| {
        let mut cfg = ProducerConfig::new(id, "application/json");
        cfg.max_retry_time = Some(Duration::from_secs(1));
        cfg.max_retry_delay = Duration::from_millis(100);
        cfg
    };
    // Nothing listens (the discard port): no try reached a server, so nothing was
    // stored.
    let producer = client
        .stream("http://127.0.0.1:9/v1/stream/s")
        .producer(config("a"));
    let result = tokio::time::timeout(Duration::from_secs(10), producer.append_json(&json!(1)))
        .await
        .expect("given up on");
    assert!(matches!(result, Err(Error::Transport(_))), "{result:?}");
    // A server that answers 503 each time: tried, so perhaps stored.
    let (at, busy) = canned("127.0.0.1:0", |_| {
        "HTTP/1.1 503 Service Unavailable\r\n".to_owned()
    })
    .await;
    let producer = client
        .stream(format!("http://{at}/v1/stream/s"))
        .producer(config("b"));
    let result = tokio::time::timeout(Duration::from_secs(10), producer.append_json(&json!(2)))
        .await
        .expect("given up on");
    assert!(
        matches!(result, Err(Error::OutcomeUnknown(_))),
        "{result:?}"
    );
    busy.abort();
}

#[tokio::test]
async fn producers_made_within_one_millisecond_with_one_id_each_store_their_append() {
    let (_, server, stream) = server_with_stream("client-same-id", &[], "same").await;
    // Producers made within one millisecond, each with a default epoch of its own
    // (else the second's first append would be the first's duplicate, acknowledged
    // and dropped).
    let producers: Vec<_> = (0..20)
        .map(|_| stream.producer(ProducerConfig::new("same", "application/json")))
        .collect();
    for (i, producer) in producers.iter().enumerate() {
        producer
            .append_json(&json!({"i": i}))
            .await
            .expect("stored");
    }
    let expected: Vec<Value> = (0..20).map(|i| json!({"i": i})).collect();
    assert_eq!(stored(&server, "same").await, expected);
    server.finish().await;
}
