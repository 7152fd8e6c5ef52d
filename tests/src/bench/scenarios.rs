//! The six scenarios, spoken as plain Durable Streams over HTTP so that every server
//! is measured by the same code: append throughput (1 and 16 producers), catch-up
//! read, live fan-out latency, memory per idle SSE subscriber, and cold start.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use futures::StreamExt;
use gapless_core::wire::headers::{STREAM_NEXT_OFFSET, STREAM_UP_TO_DATE};

use super::arrival::Clock;
use super::servers::Running;
use super::sse_reader::SseReader;
use super::stats::{Delivery, Latency};
use super::{BenchError, Figures, Sizes};

/// The size of one benchmark message, as the issue and the peers' figures use.
pub const MESSAGE_BYTES: usize = 100;

/// A JSON message of exactly [`MESSAGE_BYTES`] bytes carrying a sequence number and a
/// send time (microseconds since the run's clock started).
///
/// ```
/// use gapless_tests::bench::scenarios::{message, MESSAGE_BYTES};
///
/// let m = message(7, 123);
/// assert_eq!(m.len(), MESSAGE_BYTES);
/// let v: serde_json::Value = serde_json::from_slice(&m).unwrap();
/// assert_eq!((v["seq"].as_u64(), v["t"].as_u64()), (Some(7), Some(123)));
/// ```
pub fn message(seq: u64, t_us: u64) -> Vec<u8> {
    let head = format!(r#"{{"seq":{seq},"t":{t_us},"pad":""#);
    let pad = MESSAGE_BYTES.saturating_sub(head.len() + 2);
    let mut out = Vec::with_capacity(MESSAGE_BYTES);
    out.extend_from_slice(head.as_bytes());
    out.resize(head.len() + pad, b'x');
    out.extend_from_slice(b"\"}");
    out
}

/// The send times carried by the benchmark messages in `data` (a scan for `"t":`
/// rather than a JSON parse, so the load generator's cost stays small beside the
/// server's).
///
/// ```
/// use gapless_tests::bench::scenarios::{message, send_times};
///
/// let data = format!("[{},{}]", String::from_utf8(message(1, 10)).unwrap(), String::from_utf8(message(2, 20)).unwrap());
/// assert_eq!(send_times(&data).collect::<Vec<_>>(), [10, 20]);
/// ```
pub fn send_times(data: &str) -> impl Iterator<Item = u64> + '_ {
    data.match_indices("\"t\":").filter_map(|(at, key)| {
        let digits = &data[at + key.len()..];
        let end = digits
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(digits.len());
        digits[..end].parse().ok()
    })
}

/// `[m, m, ...]`: `count` messages in one JSON-mode append.
fn batch(first: u64, count: u64) -> Vec<u8> {
    let mut out = Vec::with_capacity(count as usize * (MESSAGE_BYTES + 1) + 2);
    out.push(b'[');
    for i in 0..count {
        if i > 0 {
            out.push(b',');
        }
        out.extend_from_slice(&message(first + i, 0));
    }
    out.push(b']');
    out
}

fn check(url: &str, response: &reqwest::Response) -> Result<(), BenchError> {
    if response.status().is_success() {
        Ok(())
    } else {
        Err(BenchError::Status {
            url: url.to_owned(),
            status: response.status().as_u16(),
        })
    }
}

/// Creates a JSON stream.
pub async fn create(http: &reqwest::Client, url: &str) -> Result<(), BenchError> {
    let response = http
        .put(url)
        .header("Content-Type", "application/json")
        .send()
        .await?;
    check(url, &response)
}

/// Appends `body` and waits for the acknowledgement; returns the offset after it.
pub async fn append(
    http: &reqwest::Client,
    url: &str,
    body: Vec<u8>,
) -> Result<Option<String>, BenchError> {
    let response = http
        .post(url)
        .header("Content-Type", "application/json")
        .body(body)
        .send()
        .await?;
    check(url, &response)?;
    let next = header(&response, STREAM_NEXT_OFFSET);
    response.bytes().await?;
    Ok(next)
}

fn header(response: &reqwest::Response, name: &str) -> Option<String> {
    response
        .headers()
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
}

/// One producer appending single messages, each acknowledged before the next, for
/// `duration`.
async fn append_for(
    http: &reqwest::Client,
    url: &str,
    duration: Duration,
) -> Result<Vec<Duration>, BenchError> {
    let start = Instant::now();
    let mut latencies = Vec::new();
    let mut seq = 0;
    while start.elapsed() < duration {
        let body = message(seq, 0);
        let sent = Instant::now();
        append(http, url, body).await?;
        latencies.push(sent.elapsed());
        seq += 1;
    }
    Ok(latencies)
}

/// Scenarios 1 and 2: `producers` producers, each on its own stream, each append
/// acknowledged before the next.
pub async fn append_throughput(
    http: &reqwest::Client,
    server: &Running,
    producers: usize,
    sizes: &Sizes,
    figures: &mut Figures,
) -> Result<(), BenchError> {
    let mut urls = Vec::new();
    for p in 0..producers {
        let url = server.stream(&format!("append-{producers}-{p}"));
        create(http, &url).await?;
        urls.push(url);
    }
    let meter = Meter::start(server).await?;
    let started = Instant::now();
    let tasks: Vec<_> = urls
        .into_iter()
        .map(|url| {
            let http = http.clone();
            let duration = sizes.append_for;
            tokio::spawn(async move { append_for(&http, &url, duration).await })
        })
        .collect();
    let mut all = Vec::new();
    for task in tasks {
        all.extend(
            task.await
                .map_err(|e| BenchError::Server(e.to_string()))??,
        );
    }
    let elapsed = started.elapsed().as_secs_f64();
    let rate = all.len() as f64 / elapsed;
    let key = if producers == 1 {
        "append1"
    } else {
        "append16"
    };
    meter.charge(server, all.len(), key, figures).await?;
    let latency = Latency::of(all);
    figures.set(&format!("{key}_rate"), rate);
    figures.set(&format!("{key}_p50"), latency.p50_ms);
    figures.set(&format!("{key}_p99"), latency.p99_ms);
    Ok(())
}

/// Scenario 3: fills a stream with `sizes.catch_up_messages` messages (arrays of
/// 1,000), then reads it from the start to the tail `sizes.catch_up_reads` times,
/// following `Stream-Next-Offset`; the median read's rate is reported.
pub async fn catch_up(
    http: &reqwest::Client,
    server: &Running,
    sizes: &Sizes,
    figures: &mut Figures,
) -> Result<(), BenchError> {
    let url = server.stream("catch-up");
    create(http, &url).await?;
    let total = sizes.catch_up_messages;
    let per_batch = 1_000.min(total.max(1));
    let meter = Meter::start(server).await?;
    let started = Instant::now();
    let mut seq = 0;
    while seq < total {
        let count = per_batch.min(total - seq);
        append(http, &url, batch(seq, count)).await?;
        seq += count;
    }
    figures.set("fill_rate", total as f64 / started.elapsed().as_secs_f64());
    meter
        .charge(server, total as usize, "fill", figures)
        .await?;

    let meter = Meter::start(server).await?;
    let mut reads = Vec::with_capacity(sizes.catch_up_reads);
    let mut read_bytes = 0;
    for _ in 0..sizes.catch_up_reads.max(1) {
        let (bytes, messages, secs) = read_whole(http, &url).await?;
        read_bytes += bytes;
        if messages != total {
            return Err(BenchError::Server(format!(
                "catch-up read returned {messages} messages, expected {total}"
            )));
        }
        reads.push((bytes as f64 / 1e6 / secs, messages as f64 / secs));
    }
    let read = (total as usize) * reads.len();
    meter.charge(server, read, "catchup", figures).await?;
    // A message's share of the CPU is too small to show: shown per megabyte too.
    if let Some(per_message) = figures.get("catchup_cpu") {
        let mb = read_bytes as f64 / 1e6;
        figures.set("catchup_cpu_mb", per_message * read as f64 / mb);
    }
    reads.sort_by(|a, b| a.0.total_cmp(&b.0));
    let (mb_s, msgs_s) = reads[reads.len() / 2];
    figures.set("catchup_mb_s", mb_s);
    figures.set("catchup_msgs_s", msgs_s);
    Ok(())
}

/// Reads the stream at `url` from the start to its tail, following
/// `Stream-Next-Offset`: the bytes and messages read, and the seconds it took.
async fn read_whole(http: &reqwest::Client, url: &str) -> Result<(u64, u64, f64), BenchError> {
    let started = Instant::now();
    let mut offset = "-1".to_owned();
    let (mut bytes, mut messages) = (0u64, 0u64);
    loop {
        let response = http.get(format!("{url}?offset={offset}")).send().await?;
        check(url, &response)?;
        let next = header(&response, STREAM_NEXT_OFFSET);
        let up_to_date = header(&response, STREAM_UP_TO_DATE).is_some_and(|v| v == "true");
        let mut body = response.bytes_stream();
        let (page_bytes, page_messages) = (bytes, messages);
        while let Some(chunk) = body.next().await {
            let chunk = chunk?;
            bytes += chunk.len() as u64;
            // Every benchmark message holds exactly one `{` (counted with SIMD, so
            // that the count does not hold the reading back: a byte-by-byte count
            // took half of the harness's time).
            messages += memchr::memchr_iter(b'{', &chunk).count() as u64;
        }
        tracing::debug!(
            %offset,
            ?next,
            up_to_date,
            bytes = bytes - page_bytes,
            messages = messages - page_messages,
            elapsed_ms = started.elapsed().as_secs_f64() * 1e3,
            "catch-up page"
        );
        match next {
            Some(next) if !up_to_date && next != offset => offset = next,
            _ => break,
        }
    }
    Ok((bytes, messages, started.elapsed().as_secs_f64()))
}

/// What a server has spent when the measured part of a scenario starts, to charge to
/// the operations done by its end (for servers the harness started: it reads their
/// process's CPU time, and their instruction count when they run under callgrind).
struct Meter {
    cpu: Option<Duration>,
}

impl Meter {
    async fn start(server: &Running) -> Result<Meter, BenchError> {
        server.zero_instructions().await?;
        Ok(Meter { cpu: server.cpu() })
    }

    /// Sets `{key}_cpu`, the server's CPU time in microseconds per one of `done`
    /// operations, and `{key}_ir`, its instructions per operation.
    async fn charge(
        self,
        server: &Running,
        done: usize,
        key: &str,
        figures: &mut Figures,
    ) -> Result<(), BenchError> {
        let instructions = server.instructions().await?;
        if done == 0 {
            return Ok(());
        }
        let used = server
            .cpu()
            .zip(self.cpu)
            .and_then(|(now, then)| now.checked_sub(then));
        if let Some(used) = used {
            figures.set(
                &format!("{key}_cpu"),
                used.as_secs_f64() * 1e6 / done as f64,
            );
        }
        if let Some(n) = instructions {
            figures.set(&format!("{key}_ir"), n as f64 / done as f64);
        }
        Ok(())
    }
}

/// The offset after the last message of a stream (from `HEAD`).
async fn tail(http: &reqwest::Client, url: &str) -> Result<String, BenchError> {
    let response = http.head(url).send().await?;
    check(url, &response)?;
    header(&response, STREAM_NEXT_OFFSET)
        .ok_or_else(|| BenchError::Server(format!("{url}: HEAD without {STREAM_NEXT_OFFSET}")))
}

/// Reads an SSE subscription (by [`SseReader`]), recording for every message the time
/// from its sending to its being read, and to its arrival.
async fn subscriber(
    url: String,
    clock: Clock,
    connected: Arc<AtomicUsize>,
    latencies: Arc<Mutex<Vec<Delivery>>>,
) -> Result<(), BenchError> {
    let reader = SseReader::open(&url, &clock).await?;
    connected.fetch_add(1, Ordering::SeqCst);
    reader
        .each_data(
            |data, stamps| {
                let mut out = latencies.lock().unwrap_or_else(PoisonError::into_inner);
                for sent in send_times(data) {
                    out.push(Delivery::of(Duration::from_micros(sent), stamps));
                }
            },
            &clock,
        )
        .await
}

/// Scenario 4: `sizes.fan_out_subscribers` SSE subscribers on one stream, one producer
/// publishing at up to `sizes.fan_out_rate` messages/s (each acknowledged) for
/// `sizes.fan_out_for`; publish-to-receive latency over every delivery.
pub async fn fan_out(
    http: &reqwest::Client,
    server: &Running,
    sizes: &Sizes,
    figures: &mut Figures,
) -> Result<(), BenchError> {
    let url = server.stream("fan-out");
    create(http, &url).await?;
    let from = tail(http, &url).await?;
    let clock = Clock::start();
    let connected = Arc::new(AtomicUsize::new(0));
    let latencies = Arc::new(Mutex::new(Vec::new()));
    let subscribers = sizes.fan_out_subscribers;
    let tasks: Vec<_> = (0..subscribers)
        .map(|_| {
            tokio::spawn(subscriber(
                format!("{url}?offset={from}&live=sse"),
                clock,
                connected.clone(),
                latencies.clone(),
            ))
        })
        .collect();
    let deadline = Instant::now() + Duration::from_secs(60);
    while connected.load(Ordering::SeqCst) < subscribers {
        if Instant::now() > deadline {
            return Err(BenchError::Server(format!(
                "only {} of {subscribers} SSE subscribers connected within 60 s",
                connected.load(Ordering::SeqCst)
            )));
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    tokio::time::sleep(Duration::from_millis(300)).await;

    let interval = Duration::from_secs_f64(1.0 / sizes.fan_out_rate);
    let meter = Meter::start(server).await?;
    let started = Instant::now();
    let mut sent = 0u64;
    while started.elapsed() < sizes.fan_out_for {
        let due = started + interval.mul_f64(sent as f64);
        tokio::time::sleep_until(due.into()).await;
        let t = clock.now().as_micros() as u64;
        append(http, &url, message(sent, t)).await?;
        sent += 1;
    }
    let rate = sent as f64 / started.elapsed().as_secs_f64();
    let expected = sent as usize * subscribers;
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let delivered = latencies.lock().map_err(|_| BenchError::Poisoned)?.len();
        if delivered >= expected || Instant::now() > deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // A subscriber that failed (a response cut short, say) fails the run; the others
    // are done.
    for task in tasks {
        if !task.is_finished() {
            task.abort();
        } else if let Ok(Err(e)) = task.await {
            return Err(e);
        }
    }
    let samples = std::mem::take(&mut *latencies.lock().map_err(|_| BenchError::Poisoned)?);
    let delivered = samples.len();
    if delivered == 0 {
        return Err(BenchError::Server(format!(
            "fan-out: none of {subscribers} subscribers received any of {sent} messages"
        )));
    }
    meter.charge(server, delivered, "fanout", figures).await?;
    let (read, arrived) = Delivery::latencies(samples);
    figures.set("fanout_rate", rate);
    figures.set("fanout_p50", read.p50_ms);
    figures.set("fanout_p99", read.p99_ms);
    figures.set("fanout_max", read.max_ms);
    if let Some(arrived) = arrived {
        figures.set("fanout_arrival_p50", arrived.p50_ms);
        figures.set("fanout_arrival_p99", arrived.p99_ms);
        figures.set("fanout_arrival_max", arrived.max_ms);
    }
    figures.set(
        "fanout_delivered",
        100.0 * delivered as f64 / expected.max(1) as f64,
    );
    Ok(())
}

/// Subscribers opened before the idle-memory count starts (see [`idle_memory`]), as
/// many at once as the counted ones are opened.
const WARM_SUBSCRIBERS: usize = 256;

/// How many subscribers [`idle_memory`] opens at once.
const OPENING_AT_ONCE: usize = 256;

/// Opens subscribers `which` (at `urls` in turn), [`OPENING_AT_ONCE`] at a time.
async fn open_subscribers(
    http: &reqwest::Client,
    urls: &[String],
    which: std::ops::Range<usize>,
) -> Result<Vec<reqwest::Response>, BenchError> {
    futures::stream::iter(which)
        .map(|i| {
            let url = urls[i % urls.len()].clone();
            let http = http.clone();
            async move {
                let response = http.get(&url).send().await?;
                check(&url, &response)?;
                Ok::<_, BenchError>(response)
            }
        })
        .buffer_unordered(OPENING_AT_ONCE)
        .collect::<Vec<_>>()
        .await
        .into_iter()
        .collect()
}

/// Scenario 5: opens `subscribers` idle SSE subscriptions (at the tail of 100
/// streams) on a freshly started server, after a few it does not count, and reports
/// the growth of its resident memory per subscriber, in KiB.
pub async fn idle_memory(
    http: &reqwest::Client,
    server: &Running,
    subscribers: usize,
) -> Result<Option<f64>, BenchError> {
    let streams = subscribers.clamp(1, 100);
    let mut urls = Vec::new();
    for s in 0..streams {
        let url = server.stream(&format!("idle-{s}"));
        create(http, &url).await?;
        let next = append(http, &url, message(0, 0)).await?;
        let next = match next {
            Some(next) => next,
            None => tail(http, &url).await?,
        };
        urls.push(format!("{url}?offset={next}&live=sse"));
    }
    // Subscribers first, kept open and not counted, opened as the counted ones are
    // (as many at once): the first ones touch code and caches each server pays for
    // once (pages of its own binary, a runtime's lazily made structures), and so
    // many being set up at once leave the allocator holding what that took at its
    // height; neither is what each idle subscriber costs.
    let warm = open_subscribers(http, &urls, 0..WARM_SUBSCRIBERS).await?;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let Some(before) = server.rss_kib() else {
        return Ok(None);
    };
    let opened = open_subscribers(http, &urls, 0..subscribers).await?;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let after = server.rss_kib();
    drop(opened);
    drop(warm);
    // Signed: a server whose memory shrank meanwhile (an allocator giving memory
    // back) shows so, rather than a figure of 0 that looks measured.
    Ok(after.map(|after| (after as f64 - before as f64) / subscribers as f64))
}
