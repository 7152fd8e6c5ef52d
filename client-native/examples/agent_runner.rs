//! An agent runner with the crash guard installed: it streams a simulated session to
//! a gapless server and, on request, dies mid-turn — by a panic, by a broken stdout
//! pipe, by waiting for a signal, or by returning an error early — to show that the
//! session still ends with a durable `container-agent:error` event instead of
//! "running" forever; or has a spawned task panic (`--crash task-panic`), which the
//! runtime catches, and completes all the same. `--crash fail-then-signal` reports a
//! failure and is sent SIGTERM while the report is on its way; `--crash
//! fail-given-up` gives up waiting for its report and returns early. With
//! `--current-thread` it runs on a runtime with one thread, spawned tasks included.
//!
//! ```text
//! cargo run -p gapless-client --example agent_runner -- http://127.0.0.1:4437 demo-1
//! cargo run -p gapless-client --example agent_runner -- http://127.0.0.1:4437 demo-2 --crash panic
//! ```

use std::time::Duration;

use gapless_client::simulate::{run, Script};
use gapless_client::{Client, CrashGuard, SessionProducer};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let runtime = if args.iter().any(|a| a == "--current-thread") {
        tokio::runtime::Builder::new_current_thread()
    } else {
        tokio::runtime::Builder::new_multi_thread()
    }
    .enable_all()
    .build()?;
    runtime.block_on(runner(args))
}

async fn runner(args: Vec<String>) -> Result<(), Box<dyn std::error::Error>> {
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
        // A failure reported, and SIGTERM while its report is on its way: the one
        // report sent is the failure, and the process exits once it is durable.
        Some("fail-then-signal") => {
            let reporting = guard.clone();
            tokio::spawn(async move { reporting.fail("RUNNER_FAILED", "the runner failed").await });
            tokio::time::sleep(Duration::from_millis(200)).await;
            std::process::Command::new("kill")
                .args(["-TERM", &std::process::id().to_string()])
                .status()?;
            tokio::time::sleep(Duration::from_secs(600)).await;
        }
        // A failure reported, but waited for only 200 ms before returning early: the
        // report still lands, and dropping the guard waits for it.
        Some("fail-given-up") => {
            let reporting = guard.fail("RUNNER_FAILED", "the runner failed");
            let _ = tokio::time::timeout(Duration::from_millis(200), reporting).await;
            return Err("gave up waiting for the report".into());
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
