//! The `gapless` command line against the real server: what it reports, and that a
//! reader that goes away does not turn a done write into a failure.

use std::process::Stdio;

use gapless_tests::{cli_binary, client_example, run_quietly, temp_dir, ServerProcess};
use serde_json::Value;
use tokio::process::Command;

/// Runs `gapless` with `args` to its end: how it exited and what it said.
async fn gapless(args: &[&str]) -> std::process::Output {
    Command::new(cli_binary())
        .args(args)
        .output()
        .await
        .expect("runs")
}

/// Runs `gapless` with `args`, which must succeed: what it printed.
async fn gapless_ok(args: &[&str]) -> String {
    let out = gapless(args).await;
    assert!(out.status.success(), "{args:?}: {out:?}");
    String::from_utf8(out.stdout).expect("UTF-8 output")
}

#[tokio::test]
async fn a_publish_whose_reader_left_still_succeeds_and_appends_once() {
    let dir = temp_dir("cli-publish");
    let server = ServerProcess::start(&dir, &[]).await;
    let url = server.stream("p");
    gapless_ok(&["create", &url, "--content-type", "application/json"]).await;
    // Standard output is a pipe nobody reads (`gapless publish ... | true`).
    let mut child = Command::new(cli_binary())
        .args([
            "publish",
            &url,
            r#"{"a":1}"#,
            "--content-type",
            "application/json",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("runs");
    drop(child.stdout.take());
    let out = child.wait_with_output().await.expect("exits");
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let all: Vec<Value> = reqwest::get(format!("{url}?offset=-1"))
        .await
        .expect("get")
        .json()
        .await
        .expect("json");
    assert_eq!(all, [serde_json::json!({"a": 1})]);
    server.finish().await;
}

#[tokio::test]
async fn a_malformed_header_argument_is_a_usage_error() {
    let out = Command::new(cli_binary())
        .args([
            "-H",
            "no colon here",
            "head",
            "http://127.0.0.1:9/v1/stream/x",
        ])
        .output()
        .await
        .expect("runs");
    assert_eq!(out.status.code(), Some(2));
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(said.contains("Name: value"), "{said}");
    // So is any header, offset or URL that is not one (nothing is sent: nothing
    // listens there).
    for args in [
        &[
            "-H",
            "bad name: v",
            "head",
            "http://127.0.0.1:9/v1/stream/x",
        ][..],
        &[
            "-H",
            "X-A: \u{7f}",
            "head",
            "http://127.0.0.1:9/v1/stream/x",
        ],
        &["tail", "http://127.0.0.1:9/v1/stream/x", "--from", "a,b"],
        &["head", "127.0.0.1:9/v1/stream/x"],
        &["publish", "ftp://127.0.0.1:9/v1/stream/x", "{}"],
    ] {
        let out = gapless(args).await;
        let said = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {said}");
    }
}

#[tokio::test]
async fn a_session_followed_to_its_end_exits_by_how_it_ended() {
    let dir = temp_dir("cli-session");
    let server = ServerProcess::start(&dir, &[]).await;
    let runner = client_example("agent_runner");
    // One session completes, one fails (its runner panics mid-turn).
    for (session, crash) in [("done", None), ("crashed", Some("panic"))] {
        let mut args = vec![server.url.as_str(), session];
        if let Some(how) = crash {
            args.extend(["--crash", how]);
        }
        run_quietly(&runner, &args).await;
    }
    for (session, code) in [("done", 0), ("crashed", 6)] {
        let out = gapless(&["session", &server.url, session, "--exit-at-end"]).await;
        assert_eq!(
            out.status.code(),
            Some(code),
            "{session}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    server.finish().await;
}

#[tokio::test]
async fn a_session_followed_live_counts_arrivals_not_the_producers_clock() {
    use tokio::io::{AsyncBufReadExt, BufReader};

    let dir = temp_dir("cli-session-clock");
    let server = ServerProcess::start(&dir, &[]).await;
    // A producer whose clock is ten minutes behind the reader's.
    let behind = gapless_client::session::wall_clock().as_millis() - 600_000;
    let event = |delta: &str| {
        serde_json::json!({"type": "container-agent:token", "timestamp": behind,
            "data": {"taskId": "t", "sessionId": "skewed", "delta": delta}})
    };
    let post = |body: Value| {
        let url = format!("{}/api/sessions/skewed/events", server.url);
        async move {
            let r = reqwest::Client::new()
                .post(url)
                .json(&body)
                .send()
                .await
                .expect("post");
            assert!(r.status().is_success(), "{}", r.status());
        }
    };
    post(event("history ")).await;
    let mut child = Command::new(cli_binary())
        .args(["session", &server.url, "skewed", "--stall-after", "60"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("runs");
    let mut said = BufReader::new(child.stderr.take().expect("stderr")).lines();
    let mut next_line = async || {
        tokio::time::timeout(std::time::Duration::from_secs(20), said.next_line())
            .await
            .expect("the CLI said nothing")
            .expect("read")
            .expect("the CLI ended")
    };
    // History is judged by its own timestamps: ten minutes silent is stalled.
    let mut history = Vec::new();
    while !history
        .iter()
        .any(|l: &String| l.contains("following live"))
    {
        history.push(next_line().await);
    }
    assert!(
        history.iter().any(|l| l.contains("[status] STALLED")),
        "{history:?}"
    );
    // A live event is activity when it arrives, whatever its timestamp says. (Until
    // it is read, the stalled status is said again each second, its silence grown.)
    post(event("live")).await;
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(15);
    let mut seen = Vec::new();
    let status = loop {
        let line = next_line().await;
        if line.starts_with("[status]") && !line.starts_with("[status] STALLED") {
            break Some(line);
        }
        seen.push(line);
        if tokio::time::Instant::now() > deadline {
            break None;
        }
    };
    assert_eq!(status.as_deref(), Some("[status] running"), "{seen:?}");
    drop(child);
    server.finish().await;
}

#[tokio::test]
async fn a_reading_whose_output_cannot_be_written_fails() {
    let dir = temp_dir("cli-full");
    let server = ServerProcess::start(&dir, &[]).await;
    let url = server.stream("full");
    for args in [
        vec!["create", &url, "--content-type", "application/json"],
        vec![
            "publish",
            &url,
            r#"{"a":1}"#,
            "--content-type",
            "application/json",
        ],
    ] {
        gapless_ok(&args).await;
    }
    // A full disk: every write fails (other than a closed pipe, which ends quietly).
    let full = std::fs::OpenOptions::new()
        .write(true)
        .open("/dev/full")
        .expect("/dev/full");
    // (Spawned: `output()` would capture standard output in a pipe.)
    let out = Command::new(cli_binary())
        .args(["tail", &url, "--exit-at-tail"])
        .stdout(full)
        .stderr(Stdio::piped())
        .spawn()
        .expect("runs")
        .wait_with_output()
        .await
        .expect("exits");
    let said = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{said}");
    assert!(said.contains("cannot write the output"), "{said}");
    server.finish().await;
}

#[tokio::test]
async fn tail_json_gives_each_batch_its_offset_once_and_bytes_unaltered() {
    let dir = temp_dir("cli-json");
    let server = ServerProcess::start(&dir, &[]).await;
    let json = server.stream("j");
    gapless_ok(&["create", &json]).await;
    gapless_ok(&["publish", &json, "[1,2,3]"]).await;
    // A message written over several lines (stored as it was sent) is still one line.
    gapless_ok(&["publish", &json, "{\r\n  \"a\": [\n    1\n  ]\n}"]).await;
    let said = gapless_ok(&["tail", &json, "--json", "--exit-at-tail"]).await;
    let lines: Vec<Value> = said
        .lines()
        .map(|l| serde_json::from_str(l).expect("a JSON line"))
        .collect();
    assert_eq!(lines.len(), 4, "{said}");
    assert_eq!(lines[3]["message"], serde_json::json!({"a": [1]}), "{said}");
    let plain = gapless_ok(&["tail", &json, "--exit-at-tail"]).await;
    assert_eq!(
        plain.lines().nth(3),
        Some("{  \"a\": [    1  ]}"),
        "{plain}"
    );
    // Only the batch's last message says where to read again: a reader that keeps
    // the last offset it saw, and stops after the first line, misses nothing.
    assert!(
        lines[0].get("offset").is_none() && lines[1].get("offset").is_none(),
        "{said}"
    );
    assert_eq!(lines[2]["message"], 3);
    let offset = lines[3]["offset"].as_str().expect("an offset").to_owned();
    let head = gapless_ok(&["head", &json]).await;
    assert!(head.contains(&offset), "{head} {offset}");
    // Bytes that are not UTF-8 (here a character cut in two) are not altered.
    let bytes = server.stream("b");
    gapless_ok(&[
        "create",
        &bytes,
        "--content-type",
        "application/octet-stream",
    ])
    .await;
    let r = reqwest::Client::new()
        .post(&bytes)
        .header("content-type", "application/octet-stream")
        .body(vec![b'a', 0xc3])
        .send()
        .await
        .expect("post");
    assert!(r.status().is_success());
    let said = gapless_ok(&["tail", &bytes, "--json", "--exit-at-tail"]).await;
    let line: Value = serde_json::from_str(said.trim()).expect("a JSON line");
    assert_eq!(line["data_base64"], "YcM=", "{said}");
    server.finish().await;
}
