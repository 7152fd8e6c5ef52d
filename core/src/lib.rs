//! Sans-IO core of gapless: offsets, the session event model, the Durable Streams wire
//! codec, the resume state machine and the session view.
//!
//! This crate is fully deterministic. It does no networking, reads no clock, spawns
//! nothing and draws no randomness of its own: time arrives as a [`Time`] argument and
//! jitter comes from a seed in the configuration. The native client (`gapless-client`)
//! and the browser client (`gapless-wasm`) are thin drivers of the same [`Resume`]
//! machine, the way `quinn` drives `quinn-proto`.
//!
//! ```text
//!            poll_request()                       handle_response / handle_body /
//!   Resume ─────────────────▶ driver ── HTTP ──▶ handle_end / handle_failure
//!     ▲                        │  ▲                         │
//!     │ handle_timeout(now)    │  └──── bytes, status ──────┘
//!     └── poll_timeout() ◀─────┘
//!   poll_output() ──▶ Batch | UpToDate | Closed | ContinuityLost | Failed
//! ```
//!
//! # Layout
//! - [`offset`]: opaque, ordered stream offsets and the `-1` / `now` sentinels (§8).
//! - [`time`]: the driver-supplied clock value.
//! - [`event`]: the typed session event model, lossless for unknown kinds and fields.
//! - [`json`]: the strict JSON reader (check, split, build) and checked raw JSON text.
//! - [`sse`]: incremental Server-Sent Events decoder and encoder.
//! - [`wire`]: Durable Streams headers, control events, JSON-mode bodies, base64 data and
//!   the meaning of read responses.
//! - [`resume`]: the resume state machine (catch-up → live, dedupe, reconnect, backoff).
//! - [`producer`]: the idempotent producer's numbering: what each append is sent under
//!   and what each answer means for it.
//! - [`session`]: the session view reducer a UI renders.
//! - [`fuzz_checks`]: parser properties shared by the fuzz targets and their replay.
#![forbid(unsafe_code)]

pub mod event;
pub mod fuzz_checks;
pub mod json;
pub mod offset;
pub mod producer;
pub mod resume;
pub mod session;
pub mod sse;
pub mod time;
pub mod wire;

pub use offset::{Offset, OffsetError};
pub use resume::Resume;
pub use time::Time;
