//! Chaos: producers and readers through a proxy that cuts connections at random
//! points and stalls some, the server killed with SIGKILL and restarted mid-run. Every reader must see
//! every acknowledged event exactly once, in order; nothing acknowledged may be lost.
//!
//! Sized for CI (about twenty seconds). For longer local runs, `GAPLESS_CHAOS_SCALE=N`
//! multiplies the events per producer and `GAPLESS_CHAOS_READERS=N` sets the readers;
//! `GAPLESS_CHAOS_LONG=1` is 50 readers and 10,200 events.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use gapless_client::{Client, ProducerConfig, Update};
use gapless_core::resume::{LiveMode, Payload};
use gapless_core::Offset;
use gapless_tests::proxy::Proxy;
use gapless_tests::reading::{json_stream, next_within};
use gapless_tests::{temp_dir, ServerProcess};
use serde_json::{json, Value};

const PRODUCERS: u64 = 4;

/// A setting from the environment, or its default.
fn setting(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(default)
}

/// Reads the shared stream until `total` messages arrived; checks each producer's
/// sequence arrives exactly once and in order, and offsets only grow.
async fn read_all(client: Client, url: String, live: LiveMode, total: u64) -> u64 {
    let mut sub = client.stream(&url).subscribe_with(Offset::START, live);
    let mut next: HashMap<u64, u64> = HashMap::new();
    let mut seen = 0u64;
    let mut last: Option<Offset> = None;
    let mut progress_at = tokio::time::Instant::now();
    while seen < total {
        assert!(
            progress_at.elapsed() < Duration::from_secs(60),
            "reader made no progress for 60 s at {seen} of {total} ({live:?})"
        );
        match tokio::time::timeout(Duration::from_secs(60), sub.next()).await {
            Ok(Some(Ok(Update::Batch(batch)))) => {
                if let Some(prev) = &last {
                    assert!(
                        prev < &batch.next_offset,
                        "offsets grow: {prev} then {}",
                        batch.next_offset
                    );
                }
                last = Some(batch.next_offset.clone());
                let Payload::Json(messages) = &batch.payload else {
                    panic!("JSON")
                };
                for m in messages {
                    let v: Value = serde_json::from_str(m.get()).expect("json");
                    let (p, i) = (v["p"].as_u64().expect("p"), v["i"].as_u64().expect("i"));
                    let expected = next.entry(p).or_insert(0);
                    assert_eq!(
                        i, *expected,
                        "producer {p}: event {expected} exactly once, in order ({live:?})"
                    );
                    *expected += 1;
                    seen += 1;
                    progress_at = tokio::time::Instant::now();
                }
            }
            Ok(Some(Ok(_))) => {}
            Ok(Some(Err(e))) => panic!("reader failed: {e}"),
            Ok(None) => panic!("reader ended at {seen}"),
            Err(_) => panic!("reader stuck at {seen} of {total} ({live:?})"),
        }
    }
    seen
}

#[tokio::test]
async fn every_acknowledged_event_exactly_once_through_cuts_and_a_kill_9() {
    let long = setting("GAPLESS_CHAOS_LONG", 0) == 1;
    let scale = setting("GAPLESS_CHAOS_SCALE", if long { 17 } else { 1 });
    let readers_count = setting("GAPLESS_CHAOS_READERS", if long { 50 } else { 6 });
    let per_producer = 150 * scale;
    let total = PRODUCERS * per_producer;
    let dir = temp_dir("chaos");
    let server =
        ServerProcess::start(&dir, &["--durability", "normal", "--sse-max-age-s", "2"]).await;
    let addr = server.addr().to_owned();
    let proxy = Proxy::with_stalls(&addr, 40, 20, 2026).await;
    let direct = Client::new().expect("client");
    json_stream(&direct, &server.stream("shared")).await;
    let flaky = Client::builder()
        .request_timeout(Duration::from_secs(5))
        .build()
        .expect("client");
    let url = format!("{}/v1/stream/shared", proxy.url());

    // Readers: half SSE, half long-poll; every other one joins a second later.
    let mut readers = Vec::new();
    for r in 0..readers_count {
        let (client, url) = (flaky.clone(), url.clone());
        let live = if r % 2 == 0 {
            LiveMode::Sse
        } else {
            LiveMode::LongPoll
        };
        readers.push(tokio::spawn(async move {
            if r % 4 >= 2 {
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
            read_all(client, url, live, total).await
        }));
    }
    // Producers: idempotent, through the proxy, some events awaited, most queued.
    let written = Arc::new(AtomicU64::new(0));
    let mut producers = Vec::new();
    for p in 0..PRODUCERS {
        let stream = flaky.stream(&url);
        let written = Arc::clone(&written);
        let solo = flaky.clone();
        let solo_url = format!("{}/v1/stream/solo-{p}", proxy.url());
        json_stream(&direct, &server.stream(&format!("solo-{p}"))).await;
        producers.push(tokio::spawn(async move {
            let producer = stream.producer(ProducerConfig::new(
                format!("chaos-{p}"),
                "application/json",
            ));
            // The same events also go to a stream of this producer's own.
            let solo = solo
                .stream(&solo_url)
                .producer(ProducerConfig::new(format!("solo-{p}"), "application/json"));
            for i in 0..per_producer {
                let event = json!({"p": p, "i": i});
                if i % 10 == 0 {
                    producer.append_json(&event).await.expect("append");
                } else {
                    producer.push_json(&event).await.expect("push");
                }
                solo.push_json(&event).await.expect("push (own stream)");
                // Paced so that the run spans the kill below.
                tokio::time::sleep(Duration::from_millis(15)).await;
                written.fetch_add(1, Ordering::Relaxed);
            }
            producer.flush().await.expect("flush");
            solo.flush().await.expect("flush (own stream)");
        }));
    }
    // Mid-run: kill -9 and restart on the same data directory and port, once the
    // producers have written a few events (waited for, not guessed: a slow machine
    // takes longer), and some time after.
    let started = tokio::time::Instant::now();
    while written.load(Ordering::Relaxed) < PRODUCERS {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "the producers wrote nothing for a minute"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    tokio::time::sleep(Duration::from_millis(600)).await;
    let before_kill = written.load(Ordering::Relaxed);
    assert!(
        before_kill > 0 && before_kill < total,
        "the kill lands mid-run ({before_kill} of {total} written)"
    );
    proxy.cut_all();
    server.kill9().await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let server = ServerProcess::start_on(
        &dir,
        &addr,
        &["--durability", "normal", "--sse-max-age-s", "2"],
    )
    .await;

    for p in producers {
        p.await.expect("producer");
    }
    for r in readers {
        assert_eq!(r.await.expect("reader"), total);
    }
    assert!(proxy.cuts() > 0, "connections were cut at random");
    // After the restart nothing acknowledged is missing: a direct catch-up read
    // returns exactly `total` events.
    let mut sub = direct
        .stream(server.stream("shared"))
        .subscribe_with(Offset::START, LiveMode::Off);
    let mut count = 0u64;
    while let Some(u) = next_within(&mut sub).await {
        if let Update::Batch(b) = u.expect("read") {
            count += b.payload.len() as u64;
        }
    }
    assert_eq!(count, total);
    // Each producer's own stream holds its events exactly once, in order.
    for p in 0..PRODUCERS {
        let mut sub = direct
            .stream(server.stream(&format!("solo-{p}")))
            .subscribe_with(Offset::START, LiveMode::Off);
        let mut expected = 0u64;
        while let Some(u) = next_within(&mut sub).await {
            if let Update::Batch(b) = u.expect("read") {
                let Payload::Json(messages) = &b.payload else {
                    panic!("JSON")
                };
                for m in messages {
                    let m: Value = serde_json::from_str(m.get()).expect("json");
                    assert_eq!(m["p"], json!(p));
                    assert_eq!(m["i"], json!(expected), "own stream of producer {p}");
                    expected += 1;
                }
            }
        }
        assert_eq!(expected, per_producer, "own stream of producer {p}");
    }
    // Memory stays bounded (generous: the figure is measured by the benchmarks).
    let rss = server.rss_kib().expect("rss");
    eprintln!(
        "chaos: {total} events on the shared stream (and {total} on {PRODUCERS} own streams), \
         {readers_count} readers, {} connections cut, kill -9 after {before_kill} events, \
         server RSS {rss} KiB after",
        proxy.cuts()
    );
    assert!(rss < 256 * 1024, "server RSS {rss} KiB");
    server.finish().await;
}

#[tokio::test]
async fn a_reader_that_stops_reading_bounds_memory_and_slows_nobody() {
    let dir = temp_dir("slow-consumer");
    let server = ServerProcess::start(&dir, &["--durability", "normal"]).await;
    let client = Client::new().expect("client");
    let stream = json_stream(&client, &server.stream("firehose")).await;
    let n: u64 = 50_000;
    let pad = "x".repeat(1000);
    // The slow reader subscribes first, then stops reading (its buffer fills, TCP
    // pushes back, the server stops reading storage for it).
    let mut slow = stream.subscribe_with(Offset::START, LiveMode::Sse);
    let mut fast = stream.subscribe_with(Offset::START, LiveMode::Sse);
    let rss_before = server.anon_kib().expect("rss");
    let producer = stream.producer(ProducerConfig::new("firehose", "application/json"));
    let writer = tokio::spawn(async move {
        for i in 0..n {
            producer
                .push_json(&json!({"p": 0, "i": i, "pad": pad}))
                .await
                .expect("push");
        }
        producer.flush().await.expect("flush");
    });
    // The fast reader gets all ~50 MB while the slow one holds still; the server must
    // not buffer the stuck reader's share (the bound below is under the data size).
    let fast_seen = read_all_from(&mut fast, n).await;
    assert_eq!(fast_seen, n);
    writer.await.expect("writer");
    // Anonymous memory: what the server holds itself, not the database pages it maps.
    let rss_after = server.anon_kib().expect("rss");
    eprintln!(
        "slow consumer: server anonymous RSS {rss_before} KiB before, {rss_after} KiB after \
         (all resident: {} KiB)",
        server.rss_kib().unwrap_or(0)
    );
    assert!(
        rss_after < rss_before + 32 * 1024,
        "server memory grew from {rss_before} KiB to {rss_after} KiB with a stuck reader"
    );
    // The slow reader resumes and catches up from storage, without gap or duplicate.
    assert_eq!(read_all_from(&mut slow, n).await, n);
    server.finish().await;
}

#[tokio::test]
async fn stuck_readers_of_one_large_append_share_it_rather_than_copy_it() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    let dir = temp_dir("stuck-readers");
    let server = ServerProcess::start(&dir, &["--durability", "normal"]).await;
    let url = server.stream("big");
    json_stream(&Client::new().expect("client"), &url).await;
    // Readers that take their response's head, then read nothing more: what the
    // server writes them stays with it once their sockets are full. Half send no
    // cursor; the others each their own, as clients echoing the one they were given
    // do, some ahead of the server's clock (each is then answered with a cursor past
    // its own).
    const READERS: usize = 24;
    const AHEAD: u64 = 1 << 60;
    let cursor = |i: usize| match i % 4 {
        0 | 2 => String::new(),
        1 => format!("&cursor={i}"),
        _ => format!("&cursor={}", AHEAD + i as u64),
    };
    let mut readers = Vec::new();
    for i in 0..READERS {
        let mut socket = tokio::net::TcpStream::connect(server.addr())
            .await
            .expect("connect");
        let request = format!(
            "GET /v1/stream/big?offset=-1&live=sse{} HTTP/1.1\r\nHost: t\r\n\r\n",
            cursor(i)
        );
        socket.write_all(request.as_bytes()).await.expect("request");
        // The head, and whatever of the body came with it (kept for the reading below).
        let mut head = vec![0u8; 1024];
        let n = socket.read(&mut head).await.expect("head");
        head.truncate(n);
        assert!(head.starts_with(b"HTTP/1.1 200"), "{head:?}");
        let end = head
            .windows(4)
            .position(|w| w == b"\r\n\r\n")
            .expect("a whole head in one read");
        readers.push((socket, head.split_off(end + 4)));
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let before = server.anon_kib().expect("rss");
    // One message of 12 MB: more than a loopback socket takes at once.
    let message = format!(r#"{{"pad":"{}"}}"#, "x".repeat(12 << 20));
    let r = reqwest::Client::new()
        .post(&url)
        .header("content-type", "application/json")
        .body(message)
        .send()
        .await
        .expect("post");
    assert!(r.status().is_success(), "{}", r.status());
    tokio::time::sleep(Duration::from_secs(2)).await;
    let after = server.anon_kib().expect("rss");
    eprintln!("{READERS} stuck readers of a 12 MB append: server anonymous RSS {before} KiB before, {after} KiB after");
    // The append is held a few times over (the request, the recent-data memory, one
    // SSE piece): not once per reader, which would be 24 times 5 MB and more.
    assert!(
        after < before + 64 * 1024,
        "server memory grew from {before} KiB to {after} KiB with {READERS} stuck readers"
    );
    // What follows the shared data is each reader's own: its cursor.
    for i in [3, 7] {
        let (socket, body) = &mut readers[i];
        let sent = AHEAD + i as u64;
        let given: u64 = cursor_after_first_data(socket, std::mem::take(body))
            .await
            .and_then(|c| c.parse().ok())
            .unwrap_or_else(|| panic!("reader {i}: no cursor"));
        assert!(
            given > sent && given <= sent + 180,
            "reader {i} sent cursor {sent} and was given {given}"
        );
    }
    drop(readers);
    server.finish().await;
}

/// The cursor of the control event after the first data event of a raw SSE response
/// on `socket`, `body` what was read of its body already.
async fn cursor_after_first_data(
    socket: &mut tokio::net::TcpStream,
    mut body: Vec<u8>,
) -> Option<String> {
    use tokio::io::AsyncReadExt;
    let mut dechunker = gapless_tests::chunked::Dechunker::default();
    let mut decoder = gapless_core::sse::SseDecoder::new();
    let mut after_data = false;
    let mut buf = vec![0u8; 1 << 20];
    loop {
        dechunker
            .feed(&mut body, |data| decoder.feed(data))
            .expect("chunked framing");
        while let Some(event) = decoder.next_event() {
            let event = event.expect("an SSE event");
            match event.event.as_str() {
                "data" => after_data = true,
                "control" if after_data => {
                    let control = gapless_core::wire::Control::parse(&event.data);
                    return control.expect("a control event").stream_cursor;
                }
                _ => {}
            }
        }
        let n = tokio::time::timeout(Duration::from_secs(30), socket.read(&mut buf))
            .await
            .expect("reading timed out")
            .expect("read");
        assert!(
            n > 0,
            "the response ended before a control event after data"
        );
        body.extend_from_slice(&buf[..n]);
    }
}

/// Reads `{"p": 0, "i": 0..n}` in order from a subscription.
async fn read_all_from(sub: &mut gapless_client::Subscription, n: u64) -> u64 {
    let mut next = 0u64;
    while next < n {
        match tokio::time::timeout(Duration::from_secs(60), sub.next()).await {
            Ok(Some(Ok(Update::Batch(batch)))) => {
                let Payload::Json(messages) = &batch.payload else {
                    panic!("JSON")
                };
                for m in messages {
                    let v: Value = serde_json::from_str(m.get()).expect("json");
                    assert_eq!(v["i"].as_u64(), Some(next), "in order, exactly once");
                    next += 1;
                }
            }
            Ok(Some(Ok(_))) => {}
            other => panic!("reader stopped at {next}: {other:?}"),
        }
    }
    next
}
