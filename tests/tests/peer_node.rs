//! gapless-client against the Node reference server (npm `@durable-streams/server`):
//! the client is protocol-level, not tied to gapless-server.

use std::time::Duration;

use gapless_client::{Client, ProducerConfig};
use gapless_core::resume::LiveMode;
use gapless_core::Offset;
use gapless_tests::peer::NodePeer;
use gapless_tests::proxy::Proxy;
use gapless_tests::reading::{expect_closed, expect_sequence, json_stream};
use serde_json::json;

#[tokio::test]
async fn history_then_live_and_closure_against_the_node_server() {
    let peer = NodePeer::start().await;
    let client = Client::new().expect("client");
    let stream = json_stream(&client, &peer.stream("peer-live")).await;
    let producer = stream.producer(ProducerConfig::new("writer", "application/json"));
    let n = 600u64;
    for i in 0..n / 2 {
        producer.push_json(&json!({"i": i})).await.expect("push");
    }
    producer.flush().await.expect("flush");
    let mut sse = stream.subscribe_with(Offset::START, LiveMode::Sse);
    let mut long_poll = stream.subscribe_with(Offset::START, LiveMode::LongPoll);
    let writer = tokio::spawn(async move {
        for i in n / 2..n {
            producer.push_json(&json!({"i": i})).await.expect("push");
        }
        producer.flush().await.expect("flush");
    });
    let a = expect_sequence(&mut sse, n, Duration::from_secs(60)).await;
    let b = expect_sequence(&mut long_poll, n, Duration::from_secs(60)).await;
    assert_eq!(a, b);
    writer.await.expect("writer");
    let info = stream.head().await.expect("head");
    assert_eq!(info.next_offset, a);
    stream.close().await.expect("close");
    for sub in [&mut sse, &mut long_poll] {
        assert_eq!(expect_closed(sub).await, a);
    }
}

#[tokio::test]
async fn exactly_once_producer_against_the_node_server_behind_a_cutting_proxy() {
    let peer = NodePeer::start().await;
    let proxy = Proxy::start(peer.addr(), 300, 7).await;
    let direct = Client::new().expect("client");
    json_stream(&direct, &peer.stream("peer-once")).await;
    let flaky = Client::builder()
        .request_timeout(Duration::from_secs(5))
        .build()
        .expect("client");
    let producer = flaky
        .stream(format!("{}/v1/stream/peer-once", proxy.url()))
        .producer(ProducerConfig::new("p", "application/json"));
    for i in 0..120u64 {
        if i % 4 == 0 {
            producer
                .append_json(&json!({"i": i}))
                .await
                .expect("append");
        } else {
            producer.push_json(&json!({"i": i})).await.expect("push");
        }
    }
    producer.flush().await.expect("flush");
    assert!(
        proxy.cuts() > 3,
        "faults were injected ({} cuts)",
        proxy.cuts()
    );
    let mut sub = direct
        .stream(peer.stream("peer-once"))
        .subscribe_with(Offset::START, LiveMode::Off);
    expect_sequence(&mut sub, 120, Duration::from_secs(30)).await;
    let all: Vec<serde_json::Value> =
        reqwest::get(format!("{}?offset=-1", peer.stream("peer-once")))
            .await
            .expect("get")
            .json()
            .await
            .expect("json");
    assert_eq!(all.len(), 120, "each message exactly once on the peer too");
}
