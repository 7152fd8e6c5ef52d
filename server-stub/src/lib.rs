//! gapless-server: the reference Durable Streams server of gapless, on axum and
//! SQLite, with the session endpoints of agent task boards.
//!
//! Every append is committed before it is acknowledged or delivered to a reader;
//! concurrent appends share one transaction (group commit); offsets are assigned
//! inside the transaction, so concurrent producers can never collide.
//!
//! # Layout
//! - [`config`]: command-line flags.
//! - [`demo`]: simulated agent sessions for `--demo`.
//! - [`fuzz_checks`]: the request-parsing property the fuzz target and its replay check.
//! - [`store`]: SQLite storage — the single group-committing writer, readers, and the
//!   committed state live readers wait on.
//! - [`http`]: the routes — Durable Streams under `/v1/stream/`, the session API,
//!   auth, CORS and security headers.
//! - [`subscriptions`]: the optional subscription APIs (§6–7): webhooks, pull-wake.
//!
//! ```no_run
//! # async fn run() -> Result<(), gapless_server::ServeError> {
//! let server = gapless_server::Server::bind(gapless_server::Config::for_tests()).await?;
//! println!("listening on {}", server.url());
//! server.run().await
//! # }
//! ```
#![forbid(unsafe_code)]

pub mod config;
pub mod demo;
pub mod fuzz_checks;
pub mod http;
pub mod store;
pub mod subscriptions;

use std::net::SocketAddr;
use std::sync::Arc;

use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tracing::info;

pub use config::Config;

/// Why the server could not start or run.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// The storage could not open.
    #[error(transparent)]
    Store(#[from] store::OpenError),
    /// The subscription registry could not start (no signing key).
    #[error("cannot start subscriptions: {0}")]
    Subscriptions(String),
    /// The token file could not be used.
    #[error(transparent)]
    Tokens(#[from] http::auth::TokensError),
    /// The address could not be bound, or serving failed.
    #[error("cannot serve on {addr}: {source}")]
    Io {
        /// The address.
        addr: SocketAddr,
        /// The cause.
        source: std::io::Error,
    },
}

/// Opens the storage and assembles what the handlers share (and the token list).
fn build_state(
    config: &Config,
    addr: SocketAddr,
) -> Result<(http::AppState, Option<Arc<http::auth::Tokens>>), ServeError> {
    let tokens = match &config.auth_tokens {
        Some(path) => Some(Arc::new(http::auth::Tokens::load(path)?)),
        None => None,
    };
    let store = store::Store::open(
        (!config.memory).then_some(config.data_dir.as_path()),
        config.durability,
    )?;
    let subscriptions = if config.subscriptions {
        Some(Arc::new(
            subscriptions::Registry::new(config.webhooks_to_loopback)
                .map_err(ServeError::Subscriptions)?,
        ))
    } else {
        None
    };
    // Streams removed for good (an expiry too) leave the patterns that linked them
    // and the cache of session views.
    let views = Arc::new(http::ViewCache::default());
    {
        let registry = subscriptions.as_ref().map(Arc::downgrade);
        let views = Arc::downgrade(&views);
        store.shared().on_removed(move |path| {
            if let Some(registry) = registry.as_ref().and_then(std::sync::Weak::upgrade) {
                registry.on_delete(path);
            }
            if let Some(views) = views.upgrade() {
                views.forget(path);
            }
        });
    }
    let state = http::AppState {
        store,
        subscriptions,
        base_url: Arc::from(config.public_url.as_deref().map_or_else(
            || format!("http://{addr}"),
            |u| u.trim_end_matches('/').to_owned(),
        )),
        views,
        pieces: Arc::default(),
        config: Arc::new(http::Settings {
            long_poll_timeout: config.long_poll_timeout(),
            sse_max_age: config.sse_max_age(),
            max_body_bytes: config.max_body_bytes,
            strict_events: config.strict_events,
            assets_dir: config.assets_dir.clone(),
            private_reads: tokens.is_some(),
        }),
        shutdown: CancellationToken::new(),
    };
    Ok((state, tokens))
}

/// The server's routes as an axum [`Router`](axum::Router), without binding a socket:
/// to embed gapless in another service, or to drive it in-process (tests, fuzzing).
/// Must be called inside a tokio runtime.
pub fn app(config: &Config) -> Result<axum::Router, ServeError> {
    let (state, tokens) = build_state(config, config.bind)?;
    Ok(http::router(state, tokens))
}

/// A bound, not yet running server.
#[derive(Debug)]
pub struct Server {
    listener: TcpListener,
    addr: SocketAddr,
    state: http::AppState,
    tokens: Option<Arc<http::auth::Tokens>>,
    demo: bool,
}

impl Server {
    /// Opens the storage and binds the address.
    pub async fn bind(config: Config) -> Result<Server, ServeError> {
        let listener = TcpListener::bind(config.bind)
            .await
            .map_err(|source| ServeError::Io {
                addr: config.bind,
                source,
            })?;
        let addr = listener.local_addr().map_err(|source| ServeError::Io {
            addr: config.bind,
            source,
        })?;
        let (state, tokens) = build_state(&config, addr)?;
        Ok(Server {
            listener,
            addr,
            state,
            tokens,
            demo: config.demo,
        })
    }

    /// The address it listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Its base URL, `http://<addr>`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// A token that stops the server when cancelled.
    pub fn shutdown_token(&self) -> CancellationToken {
        self.state.shutdown.clone()
    }

    /// Serves until the shutdown token is cancelled: then stops accepting, ends live
    /// reads, finishes in-flight appends and stops the writer.
    pub async fn run(self) -> Result<(), ServeError> {
        let token = self.state.shutdown.clone();
        let store = self.state.store.clone();
        if self.demo {
            // Bound to every address (0.0.0.0, [::]): the simulated producers write
            // to this machine's loopback.
            let mut at = self.addr;
            if at.ip().is_unspecified() {
                at.set_ip(match at {
                    SocketAddr::V4(_) => std::net::Ipv4Addr::LOCALHOST.into(),
                    SocketAddr::V6(_) => std::net::Ipv6Addr::LOCALHOST.into(),
                });
            }
            tokio::spawn(demo::run_demo(format!("http://{at}"), token.clone()));
        }
        let direct = http::direct::Direct::new(self.state.clone(), self.tokens.clone());
        let app = http::router(self.state, self.tokens);
        http::accept::serve(self.listener, app, direct, token).await;
        store.shutdown().await;
        info!("stopped");
        Ok(())
    }
}
