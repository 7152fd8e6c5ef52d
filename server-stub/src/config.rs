//! Command-line flags and their `GAPLESS_*` environment equivalents.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::Parser;

use crate::store::Durability;

/// gapless-server: a Durable Streams server on SQLite, with the session endpoints
/// of agent task boards.
///
/// Every append is committed to SQLite before it is acknowledged or delivered.
/// Concurrent appends share one transaction (group commit). With `--durability full`
/// (the default) each commit is fsynced: nothing acknowledged is lost, even on power
/// loss. With `--durability normal` commits survive a crash or `kill -9` of the
/// server, but not a power loss.
#[derive(Clone, Debug, Parser)]
#[command(name = "gapless-server", version)]
pub struct Config {
    /// Address to listen on.
    #[arg(long, env = "GAPLESS_BIND", default_value = "127.0.0.1:4437")]
    pub bind: SocketAddr,
    /// Directory of the SQLite database (created if missing).
    #[arg(long, env = "GAPLESS_DATA_DIR", default_value = "./gapless-data")]
    pub data_dir: PathBuf,
    /// Keep everything in memory instead (lost at exit; for tests).
    #[arg(long, env = "GAPLESS_MEMORY")]
    pub memory: bool,
    /// full: the write-ahead log is fdatasynced before a commit is acknowledged or
    /// published (nothing acknowledged is lost, even on power loss); normal: commits
    /// survive a crash of the process but not a power loss (no sync per commit).
    #[arg(long, env = "GAPLESS_DURABILITY", value_enum, default_value = "full")]
    pub durability: Durability,
    /// How long a long-poll read waits for data before answering 204.
    #[arg(long, env = "GAPLESS_LONG_POLL_TIMEOUT_MS", default_value_t = 30_000)]
    pub long_poll_timeout_ms: u64,
    /// SSE connections are closed after this many seconds (clients reconnect); at
    /// least 1 (a response ends at its age even while it has data to send, so 0
    /// would send none).
    #[arg(long, env = "GAPLESS_SSE_MAX_AGE_S", default_value_t = 60,
          value_parser = clap::value_parser!(u64).range(1..))]
    pub sse_max_age_s: u64,
    /// Largest request body accepted; larger ones get 413.
    #[arg(long, env = "GAPLESS_MAX_BODY_BYTES", default_value_t = 16 * 1024 * 1024)]
    pub max_body_bytes: usize,
    /// File of bearer tokens, one per line: `<token> <read|write> <prefix>[,<prefix>...]`.
    /// When given, every route requires a token.
    #[arg(long, env = "GAPLESS_AUTH_TOKENS")]
    pub auth_tokens: Option<PathBuf>,
    /// Refuse session events of unknown kinds (known kinds are always validated), on
    /// the session API and in writes to `sessions/<id>` on the stream routes alike.
    #[arg(long, env = "GAPLESS_STRICT_EVENTS")]
    pub strict_events: bool,
    /// Serve the subscription APIs (§6–7) under /v1/stream/__ds/: webhooks (which
    /// make outbound requests: https to public hosts only, unless
    /// `--webhooks-to-loopback`) and pull-wake. Subscriptions are kept in memory.
    #[arg(long, env = "GAPLESS_SUBSCRIPTIONS")]
    pub subscriptions: bool,
    /// Also let webhooks be `http://` to this machine's loopback (`127.0.0.0/8`,
    /// `[::1]`, `localhost` and names under it): for development and tests. Off by
    /// default, since any token that may make a subscription could then have the
    /// server call whatever listens on loopback. Needs `--subscriptions`.
    #[arg(long, env = "GAPLESS_WEBHOOKS_TO_LOOPBACK", requires = "subscriptions")]
    pub webhooks_to_loopback: bool,
    /// The URL the server is reached at from outside (behind a proxy, or bound to
    /// 0.0.0.0), for the links its answers carry (a webhook's `callback_url`, the
    /// signing keys' URL); by default `http://` and the bound address.
    #[arg(long, env = "GAPLESS_PUBLIC_URL")]
    pub public_url: Option<String>,
    /// Directory of the browser package (`scripts/build-wasm` output) served under
    /// /pkg/ for the page at `/`, which then reads sessions in the browser through it;
    /// without it the page shows the view the server computes.
    #[arg(long, env = "GAPLESS_ASSETS_DIR", default_value = "client-wasm/pkg")]
    pub assets_dir: PathBuf,
    /// Run simulated agent sessions (demo-1, demo-2, ...) against this server, for
    /// the live page at `/`; every third one's producer dies mid-turn. Not with
    /// `--auth-tokens`: the page and the simulated producers carry no token.
    #[arg(long, env = "GAPLESS_DEMO", conflicts_with = "auth_tokens")]
    pub demo: bool,
}

impl Config {
    /// A configuration for tests: in memory, on an ephemeral loopback port.
    pub fn for_tests() -> Self {
        Config {
            bind: SocketAddr::from(([127, 0, 0, 1], 0)),
            data_dir: PathBuf::from("./gapless-data"),
            memory: true,
            durability: Durability::Normal,
            long_poll_timeout_ms: 500,
            sse_max_age_s: 60,
            max_body_bytes: 16 * 1024 * 1024,
            auth_tokens: None,
            strict_events: false,
            subscriptions: false,
            webhooks_to_loopback: false,
            public_url: None,
            assets_dir: PathBuf::from("client-wasm/pkg"),
            demo: false,
        }
    }

    /// The long-poll time-out.
    pub fn long_poll_timeout(&self) -> Duration {
        Duration::from_millis(self.long_poll_timeout_ms)
    }

    /// The SSE connection lifetime.
    pub fn sse_max_age(&self) -> Duration {
        Duration::from_secs(self.sse_max_age_s)
    }
}
