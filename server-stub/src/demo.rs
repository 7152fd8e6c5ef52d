//! `--demo`: simulated agent sessions written to this very server through the native
//! producer, so the page at `/` has something live to show a first-time user. Every
//! third session's producer "dies" mid-turn without a terminal event, which the page
//! shows as stalled.

use std::time::Duration;

use gapless_client::simulate::{run, Script};
use gapless_client::{Client, SessionProducer};
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

/// Runs simulated sessions `demo-1`, `demo-2`, ... against `base_url` until `stop`.
pub async fn run_demo(base_url: String, stop: CancellationToken) {
    let client = match Client::new() {
        Ok(c) => c,
        Err(e) => return warn!("demo disabled: {e}"),
    };
    for n in 1u32.. {
        let id = format!("demo-{n}");
        let crash = n % 3 == 0;
        let session = async {
            let producer = SessionProducer::open(&client, &base_url, &id, "demo-agent").await?;
            let mut script = Script::new("task-demo", &id, 4);
            script.token_delay = Duration::from_millis(150);
            if crash {
                script.stop_at_turn = Some(3);
            }
            run(&producer, None, &script).await
        };
        info!(session = %id, crash, "demo session starts: open {base_url}/#{id}");
        tokio::select! {
            result = session => if let Err(e) = result { warn!(session = %id, "demo session failed: {e}") },
            () = stop.cancelled() => return,
        }
        tokio::select! {
            () = tokio::time::sleep(Duration::from_secs(8)) => {}
            () = stop.cancelled() => return,
        }
    }
}
