//! Server-Sent Events: an incremental decoder (bytes in, events out) and an encoder.
//!
//! The decoder follows the WHATWG "event stream interpretation" rules: lines end in
//! LF, CRLF or a lone CR (also when a CR and its LF arrive in different chunks), a
//! leading UTF-8 BOM is skipped, comment lines are ignored, several `data` lines join
//! with `\n`, `id` persists across events (and is ignored when it contains NUL), and
//! `retry` takes digits only. Invalid UTF-8 is replaced, never fatal. An event larger
//! than the configured limit is an error, so a hostile peer cannot grow memory
//! without bound.

mod decoder;
mod encoder;

pub use decoder::{SseDecoder, SseError, SseEvent, DEFAULT_MAX_EVENT_BYTES};
pub use encoder::{encode_comment, encode_event, encode_retry};

#[cfg(test)]
mod tests;
