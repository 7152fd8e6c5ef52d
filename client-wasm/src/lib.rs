//! gapless-wasm: the browser client of gapless.
//!
//! It drives `gapless-core`'s resume state machine with `fetch`: SSE is read from a
//! streamed `fetch` body by the core's SSE decoder — so `Authorization` and other
//! headers work, which the browser's `EventSource` cannot send — with long-poll as an
//! option and automatic fallback. Reconnection, deduplication, backoff, closure and
//! continuity-lost all come from the core.
//!
//! JavaScript API (see `js/index.d.ts`): `GaplessStream` (`for await`, `subscribe`,
//! `close`), `GaplessSession` (typed events and a session view), `GaplessProducer`.
//! Errors are JavaScript `Error`s with a stable `code`.
//!
//! # Layout
//! - [`driver`]: the loop that runs the resume machine on the browser's event loop.
//! - [`transport`]: one `fetch` with an abort signal and a chunked body reader.
//! - [`stream`], [`producer`]: the exported JavaScript classes.
//! - [`options`], [`error`]: JavaScript options in, coded errors out.
//! - [`sync`]: a channel, a lock, a race and a timer for the browser's one thread.
//! - `js`: plain JavaScript objects and JSON values built without JSON text.
#![forbid(unsafe_code)]

pub mod driver;
pub mod error;
mod js;
pub mod options;
pub mod producer;
pub mod stream;
pub mod sync;
pub mod transport;

/// The heap allocator in the browser: talc instead of the standard library's dlmalloc,
/// for a smaller package (see `scripts/build-wasm`'s report).
#[cfg(all(target_arch = "wasm32", not(target_feature = "atomics")))]
#[global_allocator]
static ALLOCATOR: talc::wasm::WasmDynamicTalc = talc::wasm::new_wasm_dynamic_allocator();

pub use producer::GaplessProducer;
pub use stream::{GaplessSession, GaplessStream};
