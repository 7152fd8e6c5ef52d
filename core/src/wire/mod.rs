//! The Durable Streams wire format, apart from SSE framing: header names, the meaning of
//! read responses, SSE control events, JSON-mode bodies and base64 SSE data.
//!
//! Everything here is pure parsing and formatting; the [`crate::resume`] machine and the
//! server both build on it so that neither keeps a second copy of the protocol's rules.

mod append;
mod control;
mod error;
pub mod headers;
mod json_mode;
mod payload;
mod read;
mod url;

pub use append::AppendOutcome;
pub use control::Control;
pub use error::WireError;
pub use headers::ResponseHead;
pub use json_mode::{flatten_append_body, parse_json_batch, split_append_body, write_json_batch};
pub use payload::{decode_sse_data, encode_base64, DataEncoding};
pub use read::{ReadMeta, ReadStatus};
pub use url::{encode_query_value, read_url, LiveParam};
