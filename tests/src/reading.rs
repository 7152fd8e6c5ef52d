//! Helpers shared by the client tests: create a JSON stream, and read `{"i": n}`
//! messages checking that each arrives exactly once, in order, never waiting for ever.

use std::time::Duration;

use futures::StreamExt;
use gapless_client::{Client, CreateOptions, StreamHandle, Subscription, Update};
use gapless_core::resume::Payload;
use gapless_core::Offset;
use serde_json::Value;

/// Creates (or confirms) the JSON stream at `url`.
pub async fn json_stream(client: &Client, url: &str) -> StreamHandle {
    let stream = client.stream(url);
    stream
        .create(CreateOptions {
            content_type: Some("application/json".into()),
            ..CreateOptions::default()
        })
        .await
        .expect("create");
    stream
}

/// Reads `n` messages `{"i": 0..n}` from a subscription, asserting that each arrives
/// exactly once and in order; returns the offset after the last.
pub async fn expect_sequence(sub: &mut Subscription, n: u64, limit: Duration) -> Offset {
    let mut next = 0u64;
    let mut last = Offset::START;
    tokio::time::timeout(limit, async {
        while next < n {
            match sub.next().await {
                Some(Ok(Update::Batch(batch))) => {
                    let Payload::Json(messages) = &batch.payload else {
                        panic!("JSON stream")
                    };
                    for m in messages {
                        let v: Value = serde_json::from_str(m.get()).expect("json");
                        assert_eq!(
                            v["i"].as_u64(),
                            Some(next),
                            "message {next} exactly once, in order"
                        );
                        next += 1;
                    }
                    last = batch.next_offset;
                }
                Some(Ok(_)) => {}
                Some(Err(e)) => panic!("subscription failed: {e}"),
                None => panic!("subscription ended early at {next}"),
            }
        }
    })
    .await
    .unwrap_or_else(|_| panic!("only {next} of {n} messages within {limit:?}"));
    last
}

/// Reads until [`Update::Closed`] (10 s at most), failing on any data after the end,
/// checks nothing follows it, and returns the final offset.
pub async fn expect_closed(sub: &mut Subscription) -> Offset {
    let end = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            match sub.next().await {
                Some(Ok(Update::Closed { offset })) => return offset,
                Some(Ok(Update::Batch(b))) => panic!("unexpected data after the end: {b:?}"),
                Some(Ok(_)) => {}
                other => panic!("unexpected {other:?}"),
            }
        }
    })
    .await
    .expect("closed in time");
    assert!(next_within(sub).await.is_none(), "nothing after Closed");
    end
}

/// The subscription's next update, failing the test rather than hanging when none
/// (not even its end) comes within a minute.
pub async fn next_within(sub: &mut Subscription) -> Option<Result<Update, gapless_client::Error>> {
    tokio::time::timeout(Duration::from_secs(60), sub.next())
        .await
        .expect("an update, or the end, within a minute")
}
