//! The crash guard: an agent runner ended mid-stream — by a panic, a broken stdout
//! pipe, SIGTERM, SIGHUP or an early return — leaves a durable `container-agent:error` in its session, and the
//! session view shows the failure instead of "running".

use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use gapless_client::{Client, CrashGuard, SessionProducer, SessionUpdate};
use gapless_core::session::Status;
use gapless_core::Offset;
use gapless_tests::canned::canned;
use gapless_tests::{client_example, run_quietly, temp_dir, ServerProcess};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::Command;

/// Reads the session to its tail and returns the view's status and the error codes.
async fn final_status(server: &str, session: &str) -> (Status, Vec<String>) {
    final_status_as(&Client::new().expect("client"), server, session).await
}

/// [`final_status`], read by `client`.
async fn final_status_as(client: &Client, server: &str, session: &str) -> (Status, Vec<String>) {
    let stream = client.stream(format!("{server}/v1/stream/sessions/{session}"));
    let mut sub = stream.subscribe_session(Offset::START, Duration::from_secs(60));
    let mut codes = Vec::new();
    loop {
        match tokio::time::timeout(Duration::from_secs(10), sub.next()).await {
            Ok(Some(Ok(SessionUpdate::Events { events, .. }))) => {
                for e in events {
                    if let gapless_core::event::Event::AgentError(err) = e.event {
                        codes.push(err.code.unwrap_or_default());
                    }
                }
            }
            Ok(Some(Ok(SessionUpdate::UpToDate))) => break,
            Ok(Some(Ok(_))) => {}
            other => panic!("session read failed: {other:?}"),
        }
    }
    (sub.status(), codes)
}

#[tokio::test]
async fn a_killed_runner_leaves_a_durable_error_and_a_failed_view() {
    let dir = temp_dir("crash-guard");
    let server = ServerProcess::start(&dir, &[]).await;
    let runner = client_example("agent_runner");

    // A panic mid-turn.
    let status = run_quietly(&runner, &[&server.url, "crash-panic", "--crash", "panic"]).await;
    assert!(!status.success(), "the runner died");
    let (view, codes) = final_status(&server.url, "crash-panic").await;
    assert_eq!(codes, vec!["UNCAUGHT_ERROR"]);
    match view {
        Status::Failed { code, error } => {
            assert_eq!(code.as_deref(), Some("UNCAUGHT_ERROR"));
            assert!(error.contains("simulated crash"), "{error}");
        }
        other => panic!("view shows {other:?}"),
    }

    // stdout closed under the runner: EPIPE is reported, the process does not die
    // silently.
    let mut child = Command::new(&runner)
        .args([&server.url, "crash-epipe", "--crash", "epipe"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("runner runs");
    drop(child.stdout.take());
    let status = tokio::time::timeout(Duration::from_secs(60), child.wait())
        .await
        .expect("runner exits")
        .expect("status");
    assert_eq!(status.code(), Some(1), "a clean exit, not a signal death");
    let (view, codes) = final_status(&server.url, "crash-epipe").await;
    assert_eq!(codes, vec!["EPIPE"]);
    assert!(
        matches!(view, Status::Failed { code: Some(ref c), .. } if c == "EPIPE"),
        "{view:?}"
    );

    // An error returned early (passed up with `?`): the guard, dropped, reports it.
    let status = run_quietly(&runner, &[&server.url, "crash-return", "--crash", "return"]).await;
    assert_eq!(status.code(), Some(1));
    let (view, codes) = final_status(&server.url, "crash-return").await;
    assert_eq!(codes, vec!["EXITED"]);
    assert!(
        matches!(view, Status::Failed { code: Some(ref c), .. } if c == "EXITED"),
        "{view:?}"
    );

    // Signals while the runner works: termination, and the terminal hanging up.
    for (signal, code) in [("TERM", 143), ("HUP", 129)] {
        signalled(&server.url, &runner, signal, code).await;
    }

    // A spawned task's panic, caught by its runtime: the runner goes on and
    // completes, and nothing is reported, on a runtime with one thread too (where the
    // task runs on the runner's own thread); had it returned early after it, the
    // guard tells that panic.
    for (session, flags) in [
        ("task-panic", &[][..]),
        ("task-panic-one-thread", &["--current-thread"][..]),
    ] {
        let mut args = vec![server.url.as_str(), session, "--crash", "task-panic"];
        args.extend_from_slice(flags);
        let status = run_quietly(&runner, &args).await;
        assert!(status.success(), "{session}");
        let (view, codes) = final_status(&server.url, session).await;
        assert!(codes.is_empty(), "{session}: {codes:?}");
        assert!(
            matches!(view, Status::Completed { .. }),
            "{session}: {view:?}"
        );
    }
    let status = run_quietly(
        &runner,
        &[
            &server.url,
            "task-panic-return",
            "--crash",
            "task-panic-return",
        ],
    )
    .await;
    assert_eq!(status.code(), Some(1));
    let (view, codes) = final_status(&server.url, "task-panic-return").await;
    assert_eq!(codes, vec!["UNCAUGHT_ERROR"]);
    match view {
        Status::Failed { error, .. } => {
            assert!(error.contains("simulated panic in a task"), "{error}")
        }
        other => panic!("view shows {other:?}"),
    }

    // A runner that completes shows completed, with no error.
    let status = run_quietly(&runner, &[&server.url, "fine"]).await;
    assert!(status.success());
    let (view, codes) = final_status(&server.url, "fine").await;
    assert!(codes.is_empty());
    assert!(matches!(view, Status::Completed { .. }), "{view:?}");

    // Durable: after the server is killed and started again on its data, each
    // session still tells its failure.
    server.kill9().await;
    let server = ServerProcess::start(&dir, &[]).await;
    for (session, code) in [
        ("crash-panic", "UNCAUGHT_ERROR"),
        ("crash-epipe", "EPIPE"),
        ("crash-return", "EXITED"),
        ("crash-sigterm", "SIGTERM"),
        ("crash-sighup", "SIGHUP"),
    ] {
        let (view, codes) = final_status(&server.url, session).await;
        assert_eq!(codes, vec![code.to_owned()], "{session} after a restart");
        assert!(
            matches!(view, Status::Failed { code: Some(ref c), .. } if c == code),
            "{session} after a restart: {view:?}"
        );
    }
    server.finish().await;
}

/// A runner sent `SIG<signal>` while it works exits with `code` and leaves
/// `SIG<signal>` in its session.
async fn signalled(server: &str, runner: &std::path::Path, signal: &str, code: i32) {
    let session = format!("crash-sig{}", signal.to_ascii_lowercase());
    let mut child = Command::new(runner)
        .args([server, &session, "--crash", "signal"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("runner runs");
    let mut lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
    tokio::time::timeout(Duration::from_secs(60), async {
        while let Ok(Some(line)) = lines.next_line().await {
            if line.contains("waiting for a signal") {
                return;
            }
        }
    })
    .await
    .expect("runner reaches its wait");
    let pid = child.id().expect("pid").to_string();
    std::process::Command::new("kill")
        .args([&format!("-{signal}"), &pid])
        .status()
        .expect("kill");
    let status = tokio::time::timeout(Duration::from_secs(30), child.wait())
        .await
        .expect("runner exits")
        .expect("status");
    assert_eq!(status.code(), Some(code), "SIG{signal}");
    let (view, codes) = final_status(server, &session).await;
    assert_eq!(codes, vec![format!("SIG{signal}")]);
    assert!(matches!(view, Status::Failed { .. }), "{view:?}");
}

/// A loopback forwarder to `upstream` that holds each connection for `hold` before it
/// forwards it (a server slow to take a report), and forwards nothing of one whose
/// client left meanwhile: what a process sent before it exited reaches no server.
async fn slow_forwarder(upstream: &str, hold: Duration) -> (String, tokio::task::JoinHandle<()>) {
    use tokio::io::AsyncWriteExt;

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let at = format!("http://{}", listener.local_addr().expect("addr"));
    let upstream = upstream.to_owned();
    let task = tokio::spawn(async move {
        while let Ok((mut inbound, _)) = listener.accept().await {
            let upstream = upstream.clone();
            tokio::spawn(async move {
                tokio::time::sleep(hold).await;
                let mut held = Vec::new();
                let mut buf = [0u8; 8192];
                loop {
                    match inbound.try_read(&mut buf) {
                        // The client left: what it sent goes nowhere.
                        Ok(0) => return,
                        Ok(n) => held.extend_from_slice(&buf[..n]),
                        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                        Err(_) => return,
                    }
                }
                if let Ok(mut outbound) = tokio::net::TcpStream::connect(&upstream).await {
                    if outbound.write_all(&held).await.is_ok() {
                        let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                    }
                }
            });
        }
    });
    (at, task)
}

#[tokio::test]
async fn a_report_on_its_way_is_waited_for_by_a_signal_and_by_a_runner_that_gave_up_on_it() {
    let dir = temp_dir("crash-guard-slow");
    let server = ServerProcess::start(&dir, &[]).await;
    let (slow, forwarding) = slow_forwarder(server.addr(), Duration::from_secs(1)).await;
    let runner = client_example("agent_runner");
    // SIGTERM 200 ms into a failure's report, which the server takes a second to
    // get: the process exits once the report is durable, and sends no second one.
    // And a runner that stops waiting for its report after 200 ms and returns early:
    // the report goes on, and the guard, dropped, waits for it.
    for (session, mode, exit) in [
        ("slow-signalled", "fail-then-signal", 143),
        ("slow-given-up", "fail-given-up", 1),
    ] {
        let status = run_quietly(&runner, &[&slow, session, "--crash", mode]).await;
        assert_eq!(status.code(), Some(exit), "{session}: {status:?}");
        let (view, codes) = final_status(&server.url, session).await;
        assert_eq!(codes, vec!["RUNNER_FAILED"], "{session}");
        assert!(matches!(view, Status::Failed { .. }), "{session}: {view:?}");
    }
    forwarding.abort();
    server.finish().await;
}

#[tokio::test]
async fn a_report_carries_the_credentials_the_client_computes_per_request() {
    let dir = temp_dir("crash-guard-auth");
    let server = ServerProcess::start_with_tokens(&dir, "fresh write *\n", &[]).await;
    // No fixed token: the client computes it for each request. The one it holds
    // when the guard is installed is refused; it is refreshed before the report.
    let token = Arc::new(std::sync::Mutex::new("Bearer stale".to_owned()));
    let current = Arc::clone(&token);
    let client = Client::builder()
        .dynamic_header(
            "Authorization",
            Arc::new(move || current.lock().expect("token").clone()),
        )
        .build()
        .expect("client");
    let refused = SessionProducer::open(&client, &server.url, "guarded", "runner").await;
    assert!(refused.is_err(), "the stale token is refused");
    let guard = CrashGuard::install(&client, &server.url, "task", "guarded");
    *token.lock().expect("token") = "Bearer fresh".to_owned();
    SessionProducer::open(&client, &server.url, "guarded", "runner")
        .await
        .expect("the session stream");
    guard
        .fail("TEST_FAILURE", "a failure the runner reports")
        .await
        .expect("reported");
    let (view, codes) = final_status_as(&client, &server.url, "guarded").await;
    assert_eq!(codes, vec!["TEST_FAILURE"]);
    assert!(matches!(view, Status::Failed { .. }), "{view:?}");
    server.finish().await;
}

#[tokio::test]
async fn a_report_answered_by_a_redirect_is_not_counted_as_delivered() {
    let dir = temp_dir("crash-guard-redirect");
    let server = ServerProcess::start(&dir, &[]).await;
    let client = Client::new().expect("client");
    SessionProducer::open(&client, &server.url, "moved", "runner")
        .await
        .expect("the session stream");
    // Every request is sent on to the real server: followed, the report's POST would
    // be sent again as a GET, whose 200 would read as stored.
    let target = server.url.clone();
    let (at, redirecting) = canned("127.0.0.1:0", move |head| {
        let path = head.split_whitespace().nth(1).unwrap_or("/").to_owned();
        format!("HTTP/1.1 301 Moved Permanently\r\nlocation: {target}{path}\r\n")
    })
    .await;
    let guard = CrashGuard::install(&client, &format!("http://{at}"), "task", "moved");
    let reported = guard
        .fail("TEST_FAILURE", "a failure behind a redirect")
        .await;
    assert!(reported.is_err(), "{reported:?}");
    let (_, codes) = final_status(&server.url, "moved").await;
    assert!(codes.is_empty(), "nothing was stored: {codes:?}");
    redirecting.abort();
    server.finish().await;
}
