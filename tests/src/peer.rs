//! The Node reference Durable Streams server (npm `@durable-streams/server`), started
//! on loopback for the tests that show gapless-client is not tied to gapless-server.

use std::path::PathBuf;
use std::process::Stdio;
use std::sync::OnceLock;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

use crate::workspace_root;

/// A running Node reference server.
#[derive(Debug)]
pub struct NodePeer {
    _child: Child,
    /// Its base URL.
    pub url: String,
}

fn peer_dir() -> PathBuf {
    workspace_root().join("tests").join("peer")
}

/// Installs the peer's npm package once per test process (a no-op when present).
fn install() {
    static DONE: OnceLock<()> = OnceLock::new();
    DONE.get_or_init(|| {
        let status = std::process::Command::new("npm")
            .args(["install", "--no-audit", "--no-fund", "--silent"])
            .current_dir(peer_dir())
            .status()
            .expect("npm runs (Node.js is required for the peer tests)");
        assert!(
            status.success(),
            "npm install of @durable-streams/server failed"
        );
    });
}

impl NodePeer {
    /// Starts the server and waits for its URL.
    pub async fn start() -> NodePeer {
        install();
        let mut child = Command::new("node")
            .arg("serve.mjs")
            .current_dir(peer_dir())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .expect("node starts");
        let stdout = child.stdout.take().expect("stdout");
        let mut lines = BufReader::new(stdout).lines();
        let url = tokio::time::timeout(Duration::from_secs(30), async {
            while let Ok(Some(line)) = lines.next_line().await {
                if let Some(url) = line.strip_prefix("peer listening on ") {
                    return url.trim().to_owned();
                }
            }
            panic!("the Node peer exited before listening");
        })
        .await
        .expect("the Node peer listens within 30 s");
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        NodePeer { _child: child, url }
    }

    /// The host:port it listens on.
    pub fn addr(&self) -> &str {
        self.url.trim_start_matches("http://")
    }

    /// The URL of stream `path`.
    pub fn stream(&self, path: &str) -> String {
        format!("{}/v1/stream/{path}", self.url)
    }
}
