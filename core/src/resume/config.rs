//! Configuration of the resume machine: the stream, the live mode, time-outs and back-off.

use std::time::Duration;

/// How a reader follows the stream once it has caught up.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum LiveMode {
    /// Server-Sent Events (§5.8), falling back to long-poll if the server or a proxy
    /// refuses or buffers them.
    #[default]
    Sse,
    /// Long-poll (§5.7).
    LongPoll,
    /// No live phase: read history up to the tail, report it, and finish.
    Off,
}

/// The back-off schedule for retries: full jitter over an exponentially growing ceiling.
///
/// Attempt `n` (from 0) waits a uniformly random time in `[0, min(max, initial·factorⁿ)]`,
/// never less than the server's `Retry-After` up to `max` (a server asking for longer
/// is asked again after `max`). `n` starts over once a response moves the reader on
/// (data, or up to date), or a live connection that lasted ten seconds breaks.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct BackoffConfig {
    /// Ceiling of the first retry's delay.
    pub initial: Duration,
    /// Growth of the ceiling per consecutive failure.
    pub factor: f64,
    /// Largest ceiling.
    pub max: Duration,
}

impl Default for BackoffConfig {
    fn default() -> Self {
        BackoffConfig {
            initial: Duration::from_millis(100),
            factor: 1.3,
            max: Duration::from_secs(60),
        }
    }
}

/// A configuration value that cannot work.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("invalid {field}: {reason}")]
pub struct ConfigError {
    /// The offending field (its wire-facing name, such as `initialDelayMs`).
    pub field: &'static str,
    /// Why.
    pub reason: String,
}

impl BackoffConfig {
    /// Checks the schedule: a positive first delay, a factor of at least 1, and a
    /// ceiling not below the first delay.
    ///
    /// ```
    /// use std::time::Duration;
    /// use gapless_core::resume::BackoffConfig;
    ///
    /// assert!(BackoffConfig::default().validate().is_ok());
    /// let bad = BackoffConfig { factor: 0.5, ..BackoffConfig::default() };
    /// assert_eq!(bad.validate().unwrap_err().field, "multiplier");
    /// ```
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.initial.is_zero() {
            return Err(ConfigError {
                field: "initialDelayMs",
                reason: "the first retry delay must be positive".into(),
            });
        }
        if !(self.factor >= 1.0 && self.factor.is_finite()) {
            return Err(ConfigError {
                field: "multiplier",
                reason: format!(
                    "the growth factor must be at least 1.0, not {}",
                    self.factor
                ),
            });
        }
        if self.max < self.initial {
            return Err(ConfigError {
                field: "maxDelayMs",
                reason: format!(
                    "the largest delay ({} ms) is below the first ({} ms)",
                    self.max.as_millis(),
                    self.initial.as_millis()
                ),
            });
        }
        Ok(())
    }
}

/// Everything a [`crate::Resume`] needs to know before its first request.
///
/// ```
/// use gapless_core::resume::{Config, LiveMode};
///
/// let cfg = Config::new("http://127.0.0.1:4437/v1/stream/demo").live(LiveMode::LongPoll).jitter_seed(7);
/// assert_eq!(cfg.live, LiveMode::LongPoll);
/// ```
#[derive(Clone, Debug, PartialEq)]
pub struct Config {
    /// The stream's URL, without the read parameters (it may carry a query of its own).
    pub url: String,
    /// How to follow the stream after catching up.
    pub live: LiveMode,
    /// Retry schedule.
    pub backoff: BackoffConfig,
    /// Seed of the jitter generator. Drivers pass real randomness; tests pass a constant.
    pub jitter_seed: u64,
    /// A catch-up request that receives nothing for this long is abandoned and retried.
    pub catch_up_idle_timeout: Duration,
    /// A live request (long-poll or SSE) that receives nothing for this long is abandoned
    /// and retried. Keep it above the server's long-poll time-out and SSE keep-alive.
    pub live_idle_timeout: Duration,
    /// Largest catch-up or long-poll body accepted; a larger one is a fatal error rather
    /// than unbounded memory. Over SSE, the most data held until its control event
    /// confirms it (each event counted some 64 bytes beyond its text), and the largest
    /// one event may be.
    pub max_body_bytes: usize,
    /// SSE connections in a row that end or fail before delivering anything, after which
    /// the machine falls back to long-poll (a proxy that buffers SSE looks like this).
    pub sse_fallback_after: u32,
    /// An SSE response that brings nothing within this long of its head is abandoned
    /// as one that delivered nothing (towards the fallback): a server sends its first
    /// control event at once, and a proxy that holds the stream back would otherwise
    /// hold each attempt for the whole live idle time-out.
    pub sse_first_event_timeout: Duration,
}

impl Config {
    /// Defaults for a stream URL: SSE, 30 s catch-up idle time-out, 75 s live idle
    /// time-out, 64 MiB bodies, fallback to long-poll after 3 empty SSE connections,
    /// 15 s for an SSE response's first bytes.
    pub fn new(url: impl Into<String>) -> Self {
        Config {
            url: url.into(),
            live: LiveMode::Sse,
            backoff: BackoffConfig::default(),
            jitter_seed: 0x9E37_79B9_7F4A_7C15,
            catch_up_idle_timeout: Duration::from_secs(30),
            live_idle_timeout: Duration::from_secs(75),
            max_body_bytes: 64 << 20,
            sse_fallback_after: 3,
            sse_first_event_timeout: Duration::from_secs(15),
        }
    }

    /// Sets the live mode (builder style).
    #[must_use]
    pub fn live(mut self, live: LiveMode) -> Self {
        self.live = live;
        self
    }

    /// Sets the jitter seed (builder style).
    #[must_use]
    pub fn jitter_seed(mut self, seed: u64) -> Self {
        self.jitter_seed = seed;
        self
    }
}
