//! An agent runner with the crash guard installed: it streams a simulated session to
//! a gapless server and, on request, dies mid-turn — by a panic, by a broken stdout
//! pipe, by waiting for a signal, or by returning an error early — to show that the
//! session still ends with a durable `container-agent:error` event instead of
//! "running" forever; or has a spawned task panic (`--crash task-panic`), which the
//! runtime catches, and completes all the same.
//!
//! ```text
//! cargo run -p gapless-client --example agent_runner -- http://127.0.0.1:4437 demo-1
//! cargo run -p gapless-client --example agent_runner -- http://127.0.0.1:4437 demo-2 --crash panic
//! ```

use std::time::Duration;

use gapless_client::simulate::{run, Script};
use gapless_client::{Client, CrashGuard, SessionProducer};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let server = args
        .get(1)
        .cloned()
        .unwrap_or_else(|| "http://127.0.0.1:4437".into());
    let session = args.get(2).cloned().unwrap_or_else(|| "demo".into());
    let crash = args
        .iter()
        .position(|a| a == "--crash")
        .and_then(|i| args.get(i + 1))
        .cloned();

    let client = Client::new()?;
    let guard = CrashGuard::install(&client, &server, "task-1", &session);
    let producer = SessionProducer::open(&client, &server, &session, "agent-runner").await?;
    let mut script = Script::new("task-1", &session, 3);
    script.token_delay = Duration::from_millis(5);
    match crash.as_deref() {
        // A spawned task panics; tokio catches it and the runner goes on: to its end
        // (nothing is reported), or to an early return (the guard tells the panic).
        Some(mode @ ("task-panic" | "task-panic-return")) => {
            let task = tokio::spawn(async { panic!("simulated panic in a task") });
            if task.await.is_err() && mode == "task-panic-return" {
                return Err("gave up after a task failed".into());
            }
        }
        Some(_) => script.stop_at_turn = Some(2),
        None => {}
    }
    let completed = run(&producer, Some(&guard), &script).await?;
    if guard
        .print_line(&format!("session {session}: turn 1 done"))
        .is_err()
    {
        // stdout is gone; the guard has already published EPIPE.
        std::process::exit(1);
    }
    if completed {
        return Ok(());
    }
    match crash.as_deref() {
        Some("panic") => panic!("simulated crash in turn 2"),
        Some("epipe") => loop {
            // Keep printing progress; the reader has gone away.
            if guard.print_line("progress...").is_err() {
                std::process::exit(1);
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        },
        Some("signal") => {
            guard.print_line("waiting for a signal").ok();
            tokio::time::sleep(Duration::from_secs(600)).await;
        }
        // An error passed up with `?`: the guard, dropped, reports it.
        Some("return") => return Err("simulated error returned early".into()),
        _ => {}
    }
    guard.done();
    Ok(())
}
