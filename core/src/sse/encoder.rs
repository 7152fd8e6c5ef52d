//! The SSE encoder: events, comments and `retry` lines, written into a buffer.

use std::fmt::Write as _;

/// Appends one event to `out`. Every line of `data` (split on LF, CRLF or CR) becomes
/// its own `data:` line, so the decoder gives back exactly `data` with `\n` line
/// ends. `event` and `id` must not contain line breaks; they are replaced by spaces
/// if they do, so the stream stays well formed.
///
/// ```
/// use gapless_core::sse::{encode_event, SseDecoder};
///
/// let mut out = String::new();
/// encode_event(&mut out, Some("data"), Some("42"), "line one\nline two");
/// assert_eq!(out, "event: data\nid: 42\ndata:line one\ndata:line two\n\n");
///
/// let mut decoder = SseDecoder::new();
/// decoder.feed(out.as_bytes());
/// assert_eq!(decoder.next_event().unwrap().unwrap().data, "line one\nline two");
/// ```
pub fn encode_event(out: &mut String, event: Option<&str>, id: Option<&str>, data: &str) {
    if let Some(event) = event {
        push_field(out, "event", event);
    }
    if let Some(id) = id {
        push_field(out, "id", &id.replace('\0', ""));
    }
    let mut rest = data;
    loop {
        match memchr::memchr2(b'\r', b'\n', rest.as_bytes()) {
            Some(i) => {
                push_raw_field(out, "data", &rest[..i]);
                let skip = if rest[i..].starts_with("\r\n") { 2 } else { 1 };
                rest = &rest[i + skip..];
            }
            None => {
                push_raw_field(out, "data", rest);
                break;
            }
        }
    }
    out.push('\n');
}

/// Appends a comment line (ignored by decoders; useful as a keep-alive).
///
/// ```
/// let mut out = String::new();
/// gapless_core::sse::encode_comment(&mut out, "keep-alive");
/// assert_eq!(out, ": keep-alive\n");
/// ```
pub fn encode_comment(out: &mut String, text: &str) {
    out.push_str(": ");
    out.push_str(&single_line(text));
    out.push('\n');
}

/// Appends a `retry` line asking the client to wait `ms` milliseconds before it
/// reconnects.
///
/// ```
/// let mut out = String::new();
/// gapless_core::sse::encode_retry(&mut out, 1500);
/// assert_eq!(out, "retry:1500\n");
/// ```
pub fn encode_retry(out: &mut String, ms: u64) {
    let _ = writeln!(out, "retry:{ms}");
}

/// Writes `name: value` (the conventional spelling for `event` and `id`).
fn push_field(out: &mut String, name: &str, value: &str) {
    out.push_str(name);
    out.push_str(": ");
    out.push_str(&single_line(value));
    out.push('\n');
}

/// Writes `name:value` (the compact spelling used for `data`); a value that starts
/// with a space gets one more, because decoders strip exactly one space after the
/// colon.
fn push_raw_field(out: &mut String, name: &str, value: &str) {
    out.push_str(name);
    out.push(':');
    if value.starts_with(' ') {
        out.push(' ');
    }
    out.push_str(value);
    out.push('\n');
}

fn single_line(value: &str) -> std::borrow::Cow<'_, str> {
    if memchr::memchr2(b'\r', b'\n', value.as_bytes()).is_some() {
        value.replace(['\r', '\n'], " ").into()
    } else {
        value.into()
    }
}
