//! The Node reference Durable Streams server (npm `@durable-streams/server`), started
//! on loopback for the tests that show gapless-client is not tied to gapless-server.

use std::path::PathBuf;
use std::process::Stdio;
use std::sync::OnceLock;

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
        let url = crate::listening_url(&mut child, "peer listening on ").await;
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
