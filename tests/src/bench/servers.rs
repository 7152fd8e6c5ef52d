//! The servers a benchmark run measures: gapless, the Node reference server, Electric's
//! Rust server, or any Durable Streams URL; starting each on loopback on a fresh data
//! directory and timing its cold start.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use tokio::process::{Child, Command};

use super::callgrind::Callgrind;
use super::BenchError;

/// Which server, and how to start it.
#[derive(Clone, Debug)]
pub enum ServerKind {
    /// `gapless-server` from this workspace.
    Gapless {
        /// The binary.
        bin: PathBuf,
        /// Its `--durability` setting (`full` or `normal`).
        durability: String,
    },
    /// The Node reference server (npm `@durable-streams/server`), file-backed,
    /// started by `serve.mjs` in this directory.
    Node {
        /// The directory holding `serve.mjs` and its `node_modules`.
        dir: PathBuf,
    },
    /// Electric's Rust server (crates.io `durable-streams`, binary
    /// `durable-streams-server`) in its default durability.
    Electric {
        /// The binary.
        bin: PathBuf,
    },
    /// A server somebody else runs: only the HTTP scenarios apply (no memory, no cold
    /// start).
    External {
        /// The URL streams live under (for example `http://127.0.0.1:4437/v1/stream`).
        base: String,
    },
}

/// One server under measurement, with the name its column carries.
#[derive(Clone, Debug)]
pub struct Target {
    /// The column name.
    pub name: String,
    /// How to start it.
    pub kind: ServerKind,
}

impl Target {
    /// What the server does before it acknowledges an append, stated next to its
    /// figures.
    pub fn durability(&self) -> String {
        match &self.kind {
            ServerKind::Gapless { durability, .. } if durability == "full" => {
                "SQLite WAL, the log fdatasynced before any ack: one fdatasync per batch of group commits"
                    .into()
            }
            ServerKind::Gapless { durability, .. } => {
                format!(
                    "SQLite WAL, synchronous={}: no fsync per commit",
                    durability.to_uppercase()
                )
            }
            ServerKind::Node { .. } => "file-backed: fdatasync on every append".into(),
            ServerKind::Electric { .. } => {
                "--durability wal: one fdatasync per group of appends".into()
            }
            ServerKind::External { .. } => "unknown (external)".into(),
        }
    }

    /// Whether the harness starts (and can measure) the process itself.
    pub fn is_local(&self) -> bool {
        !matches!(self.kind, ServerKind::External { .. })
    }
}

/// A started (or external) server.
#[derive(Debug)]
pub struct Running {
    child: Option<Child>,
    /// The URL streams live under; a stream is `{base}/{name}`.
    pub base: String,
    /// Spawn to first answered request, for servers the harness started.
    pub cold_start: Option<Duration>,
    /// Where its instructions are counted, when it runs under callgrind.
    callgrind: Option<Callgrind>,
}

impl Running {
    /// The URL of stream `name`.
    pub fn stream(&self, name: &str) -> String {
        format!("{}/{name}", self.base)
    }

    /// The server's resident memory in KiB, for servers the harness started.
    pub fn rss_kib(&self) -> Option<u64> {
        crate::rss_kib_of(self.child.as_ref()?.id()?)
    }

    /// The CPU time the server has used so far, for servers the harness started.
    pub fn cpu(&self) -> Option<Duration> {
        crate::cpu_of(self.child.as_ref()?.id()?)
    }

    /// Zeroes the server's instruction count, when it runs under callgrind.
    pub async fn zero_instructions(&self) -> Result<(), BenchError> {
        match (&self.callgrind, self.pid()) {
            (Some(cg), Some(pid)) => cg.zero(pid).await,
            _ => Ok(()),
        }
    }

    /// The instructions the server executed since its count was last zeroed, when it
    /// runs under callgrind.
    pub async fn instructions(&self) -> Result<Option<u64>, BenchError> {
        match (&self.callgrind, self.pid()) {
            (Some(cg), Some(pid)) => cg.dump(pid).await.map(Some),
            _ => Ok(None),
        }
    }

    fn pid(&self) -> Option<u32> {
        self.child.as_ref()?.id()
    }

    /// Stops the server (SIGKILL: its data directory is thrown away anyway).
    pub async fn stop(mut self) {
        if let Some(child) = self.child.as_mut() {
            let _ = child.start_kill();
            let _ = child.wait().await;
        }
    }
}

/// The ports the kernel hands out to outgoing connections (Linux's default when
/// `/proc` does not say).
fn ephemeral_ports() -> (u16, u16) {
    std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|text| {
            let mut parts = text.split_whitespace().map(str::parse::<u16>);
            Some((parts.next()?.ok()?, parts.next()?.ok()?))
        })
        .unwrap_or((32768, 60999))
}

/// A free loopback port for a server that must be told its port (bound, then released
/// for the server to take), chosen below the ephemeral range: a port from that range
/// could be taken, between its release and the server's bind, by one of the many
/// connections the readiness probe opens meanwhile.
fn free_port() -> Result<u16, BenchError> {
    let (low, _) = ephemeral_ports();
    let floor = low.saturating_sub(16_384).max(1024);
    let span = u32::from(low.saturating_sub(floor).max(1));
    // A start that differs between runs and processes, so parallel harnesses spread.
    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0)
        ^ std::process::id().wrapping_mul(2_654_435_761);
    for attempt in 0..span.min(4096) {
        let offset = seed.wrapping_add(attempt.wrapping_mul(7_919)) % span;
        let Ok(port) = u16::try_from(u32::from(floor) + offset) else {
            continue;
        };
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return Ok(port);
        }
    }
    let listener = std::net::TcpListener::bind("127.0.0.1:0").map_err(BenchError::io("port"))?;
    Ok(listener
        .local_addr()
        .map_err(BenchError::io("port"))?
        .port())
}

/// The last lines a server wrote to its log, to say why it stopped.
fn log_tail(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    let tail = lines[lines.len().saturating_sub(12)..].join("\n");
    if tail.is_empty() {
        "(its log is empty)".into()
    } else {
        format!("its log ends:\n{tail}")
    }
}

/// Starts `target` on a fresh `data_dir` and waits for its first answer; under
/// callgrind when `counted` (gapless and Electric only: the instructions of Node's
/// JIT compiler would not compare with theirs).
pub async fn start(
    target: &Target,
    data_dir: &Path,
    http: &reqwest::Client,
    counted: bool,
) -> Result<Running, BenchError> {
    let mut command = match &target.kind {
        ServerKind::External { base } => {
            return Ok(Running {
                child: None,
                base: base.trim_end_matches('/').to_owned(),
                cold_start: None,
                callgrind: None,
            })
        }
        ServerKind::Gapless { bin, durability } => {
            let mut c = Command::new(bin);
            c.args(["--data-dir"])
                .arg(data_dir)
                .args([
                    "--durability",
                    durability,
                    "--long-poll-timeout-ms",
                    "30000",
                ])
                .args(["--sse-max-age-s", "600"])
                .env("GAPLESS_LOG", "warn");
            c
        }
        ServerKind::Node { dir } => {
            let mut c = Command::new("node");
            c.arg("serve.mjs")
                .current_dir(dir)
                .env("PEER_DATA_DIR", data_dir)
                .env("PEER_LONG_POLL_MS", "30000");
            c
        }
        ServerKind::Electric { bin } => {
            let mut c = Command::new(bin);
            c.args(["--host", "127.0.0.1", "--data-dir"])
                .arg(data_dir)
                .args(["--long-poll-timeout-ms", "30000"]);
            c
        }
    };
    let port = free_port()?;
    match &target.kind {
        ServerKind::Gapless { .. } => {
            command.args(["--bind", &format!("127.0.0.1:{port}")]);
        }
        ServerKind::Node { .. } => {
            command.env("PEER_PORT", port.to_string());
        }
        _ => {
            command.args(["--port", &port.to_string()]);
        }
    }
    let mut callgrind = None;
    if counted {
        if matches!(target.kind, ServerKind::Node { .. }) {
            return Err(BenchError::Server(
                "the Node server's instructions are not counted (its JIT's would not compare)"
                    .into(),
            ));
        }
        let (wrapped, cg) = Callgrind::wrap(&command, &data_dir.with_extension("callgrind"));
        cg.clear_earlier_dumps()?;
        command = wrapped;
        callgrind = Some(cg);
    }
    let log_path = data_dir.with_extension("log");
    let log = std::fs::File::create(&log_path).map_err(BenchError::io("log"))?;
    let spawned = Instant::now();
    let child = command
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log)
        .kill_on_drop(true)
        .spawn()
        .map_err(BenchError::io("spawn"))?;
    let base = format!("http://127.0.0.1:{port}/v1/stream");
    let mut running = Running {
        child: Some(child),
        base,
        cold_start: None,
        callgrind,
    };
    let probe = running.stream("bench-ready-probe");
    let deadline = spawned + Duration::from_secs(if counted { 120 } else { 30 });
    loop {
        if http.head(&probe).send().await.is_ok() {
            running.cold_start = Some(spawned.elapsed());
            return Ok(running);
        }
        if let Some(child) = running.child.as_mut() {
            if let Ok(Some(status)) = child.try_wait() {
                return Err(BenchError::Server(format!(
                    "{} exited with {status} before answering on port {port}; {}",
                    target.name,
                    log_tail(&log_path)
                )));
            }
        }
        if Instant::now() > deadline {
            running.stop().await;
            return Err(BenchError::Server(format!(
                "{} did not answer within {} s; {}",
                target.name,
                deadline.duration_since(spawned).as_secs(),
                log_tail(&log_path)
            )));
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
}
