//! Integration test support: start the real `gapless-server` binary on loopback, on
//! a fresh data directory, and stop it gently (SIGTERM) or brutally (SIGKILL).
//!
//! [`proxy`] is a connection-cutting TCP proxy for fault injection, [`peer`] starts
//! the Node reference server, [`reading`] holds the read checks the client tests
//! share, [`chunked`] undoes chunked framing for readers on raw sockets. The tests themselves live in `tests/tests/`.
#![forbid(unsafe_code)]

pub mod bench;
pub mod canned;
pub mod chunked;
pub mod peer;
pub mod proxy;
pub mod reading;

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::OnceLock;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

/// The workspace root.
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_default()
}

/// Builds with the cargo that runs the tests (`cargo build --quiet` and `args`), or
/// fails the test saying `what`; the path of `rel` under the debug target directory.
fn cargo_build(args: &[&str], what: &str, rel: &[&str]) -> PathBuf {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let status = std::process::Command::new(cargo)
        .args(["build", "--quiet"])
        .args(args)
        .current_dir(workspace_root())
        .status()
        .expect("cargo runs");
    assert!(status.success(), "building {what} failed");
    let target = std::env::var("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|_| workspace_root().join("target"));
    rel.iter()
        .fold(target.join("debug"), |path, part| path.join(part))
}

/// The `gapless-server` binary, built (once per test process) with the same cargo
/// that runs the tests.
pub fn server_binary() -> PathBuf {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        cargo_build(
            &["-p", "gapless-server", "--bin", "gapless-server"],
            "gapless-server",
            &["gapless-server"],
        )
    })
    .clone()
}

/// The `gapless` command-line client, built once per test process.
pub fn cli_binary() -> PathBuf {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        cargo_build(
            &["-p", "gapless-client", "--bin", "gapless"],
            "gapless",
            &["gapless"],
        )
    })
    .clone()
}

/// An example binary of `gapless-client` (such as `agent_runner`), built once per
/// test process.
pub fn client_example(name: &str) -> PathBuf {
    static EXAMPLES: OnceLock<PathBuf> = OnceLock::new();
    EXAMPLES
        .get_or_init(|| {
            cargo_build(
                &["-p", "gapless-client", "--examples"],
                "the examples",
                &["examples"],
            )
        })
        .join(name)
}

/// Runs `program` with `args`, its output discarded, to its end: how it exited.
pub async fn run_quietly(program: &Path, args: &[&str]) -> std::process::ExitStatus {
    Command::new(program)
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .await
        .expect("the program runs")
}

/// A fresh, empty directory under the system's temporary directory.
pub fn temp_dir(name: &str) -> PathBuf {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    let dir = std::env::temp_dir().join(format!("gapless-{name}-{}-{nanos}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    dir
}

/// Waits (30 s at most) for the child to print `<prefix><url>` and returns the URL;
/// its stdout is then drained in the background so it never blocks on a full pipe.
pub(crate) async fn listening_url(child: &mut Child, prefix: &str) -> String {
    let stdout = child.stdout.take().expect("piped stdout");
    let mut lines = BufReader::new(stdout).lines();
    let url = tokio::time::timeout(Duration::from_secs(30), async {
        while let Ok(Some(line)) = lines.next_line().await {
            if let Some(url) = line.strip_prefix(prefix) {
                return url.trim().to_owned();
            }
        }
        panic!("the process exited before printing {prefix:?}");
    })
    .await
    .unwrap_or_else(|_| panic!("no {prefix:?} within 30 s"));
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    url
}

/// The resident memory of process `pid` in KiB (`VmRSS` from /proc), if readable.
pub fn rss_kib_of(pid: u32) -> Option<u64> {
    status_kib(pid, "VmRSS")
}

/// The CPU time process `pid` has used so far, user and system, its ended threads
/// included (`utime` and `stime` from `/proc/<pid>/stat`, in the kernel's 10 ms ticks).
pub fn cpu_of(pid: u32) -> Option<std::time::Duration> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The fields after the command name, which is in parentheses and may hold spaces:
    // the state is field 3, `utime` field 14 and `stime` field 15.
    let mut after = stat
        .get(stat.rfind(')')? + 1..)?
        .split_whitespace()
        .skip(11);
    let utime: u64 = after.next()?.parse().ok()?;
    let stime: u64 = after.next()?.parse().ok()?;
    // USER_HZ: 100 on Linux whatever the kernel's own tick rate.
    Some(std::time::Duration::from_millis((utime + stime) * 10))
}

/// A memory figure of process `pid` from `/proc/<pid>/status` (such as `VmRSS` or
/// `RssAnon`: resident memory not backed by a file), in KiB.
pub fn status_kib(pid: u32, field: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}

/// A running `gapless-server` process.
#[derive(Debug)]
pub struct ServerProcess {
    child: Child,
    /// Its base URL.
    pub url: String,
    /// Its data directory.
    pub data_dir: PathBuf,
}

impl ServerProcess {
    /// Starts the server on an ephemeral loopback port with `data_dir` and extra flags,
    /// and waits until it prints the address it listens on.
    pub async fn start(data_dir: &Path, extra: &[&str]) -> ServerProcess {
        Self::start_on(data_dir, "127.0.0.1:0", extra).await
    }

    /// Like [`ServerProcess::start`], with bearer-token auth: `tokens` is the token
    /// file's text (written beside the data, in `data_dir`).
    pub async fn start_with_tokens(data_dir: &Path, tokens: &str, extra: &[&str]) -> ServerProcess {
        let file = data_dir.join("tokens");
        std::fs::write(&file, tokens).expect("token file");
        let file = file.to_str().expect("a UTF-8 path").to_owned();
        let mut args = vec!["--auth-tokens", file.as_str()];
        args.extend_from_slice(extra);
        Self::start(data_dir, &args).await
    }

    /// Like [`ServerProcess::start`], on a given address. Long-polls wait 1 s unless
    /// `extra` says otherwise.
    pub async fn start_on(data_dir: &Path, bind: &str, extra: &[&str]) -> ServerProcess {
        let mut command = Command::new(server_binary());
        command.args(["--bind", bind, "--data-dir"]).arg(data_dir);
        if !extra.contains(&"--long-poll-timeout-ms") {
            command.args(["--long-poll-timeout-ms", "1000"]);
        }
        let mut child = command
            .args(extra)
            .env("GAPLESS_LOG", "warn")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .expect("gapless-server starts");
        let url = listening_url(&mut child, "gapless-server listening on ").await;
        ServerProcess {
            child,
            url,
            data_dir: data_dir.to_owned(),
        }
    }

    /// The host:port it listens on.
    pub fn addr(&self) -> &str {
        self.url.trim_start_matches("http://")
    }

    /// The URL of stream `path`.
    pub fn stream(&self, path: &str) -> String {
        format!("{}/v1/stream/{path}", self.url)
    }

    /// Its resident memory in KiB (from /proc), if readable.
    pub fn rss_kib(&self) -> Option<u64> {
        rss_kib_of(self.child.id()?)
    }

    /// Its resident memory not backed by a file (heap, stacks), in KiB: what it
    /// holds itself, without the database pages it has mapped.
    pub fn anon_kib(&self) -> Option<u64> {
        status_kib(self.child.id()?, "RssAnon")
    }

    /// Stops the server with SIGTERM, checks it exits cleanly within ten seconds, and
    /// removes its data directory: the end of every test that started one.
    pub async fn finish(self) {
        let dir = self.data_dir.clone();
        assert!(
            self.terminate(Duration::from_secs(10)).await,
            "the server exits cleanly on SIGTERM"
        );
        let _ = std::fs::remove_dir_all(dir);
    }

    /// Sends SIGKILL and waits for the process to be gone.
    pub async fn kill9(mut self) {
        let _ = self.child.start_kill();
        let _ = self.child.wait().await;
    }

    /// Sends SIGTERM and waits (at most `limit`) for a clean exit; returns whether
    /// the exit status was success.
    pub async fn terminate(mut self, limit: Duration) -> bool {
        if let Some(pid) = self.child.id() {
            let _ = std::process::Command::new("kill")
                .args(["-TERM", &pid.to_string()])
                .status();
        }
        match tokio::time::timeout(limit, self.child.wait()).await {
            Ok(Ok(status)) => status.success(),
            _ => false,
        }
    }
}
