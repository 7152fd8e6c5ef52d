//! Properties of the parsers that hold for any input: the bodies of the `cargo fuzz`
//! targets in `fuzz/`, also replayed over the kept corpus by `core/tests/fuzz_corpus.rs`.
//! Each panics when its property fails.

use crate::event::Envelope;
use crate::sse::SseDecoder;
use crate::wire::{flatten_append_body, parse_json_batch, write_json_batch};
use crate::Offset;

/// The SSE decoder never panics, and splitting the input anywhere (at a point taken
/// from the first byte) yields the same events as feeding it whole.
pub fn sse_decoder(data: &[u8]) {
    let decode = |chunks: &[&[u8]]| {
        let mut d = SseDecoder::with_max_event_bytes(4096);
        let mut out = Vec::new();
        for c in chunks {
            d.feed(c);
            while let Some(e) = d.next_event() {
                out.push(e);
            }
        }
        out
    };
    let whole = decode(&[data]);
    let at = data
        .first()
        .map_or(0, |b| usize::from(*b) % (data.len() + 1));
    let split = decode(&[&data[..at], &data[at..]]);
    // An oversize error can surface at a different event with other splits; compare
    // only the events dispatched before any error.
    let ok = |v: &[Result<crate::sse::SseEvent, crate::sse::SseError>]| {
        v.iter()
            .take_while(|e| e.is_ok())
            .cloned()
            .collect::<Vec<_>>()
    };
    if whole.iter().all(Result::is_ok) && split.iter().all(Result::is_ok) {
        assert_eq!(whole, split, "chunking changed the events");
    } else {
        let (a, b) = (ok(&whole), ok(&split));
        let n = a.len().min(b.len());
        assert_eq!(
            a[..n],
            b[..n],
            "chunking changed the events before an error"
        );
    }
}

/// A parsed offset prints back to the same text and parses again to itself.
pub fn offset_parse(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(offset) = Offset::parse(text) {
        assert_eq!(offset.as_str(), text);
        assert_eq!(Offset::parse(&offset.to_string()).ok(), Some(offset));
    }
}

/// A decoded envelope re-encodes to JSON that decodes to the same envelope (nothing
/// is lost, typed or raw).
pub fn envelope_decode(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(envelope) = Envelope::from_json(text) {
        let again = Envelope::from_json(&envelope.to_json()).expect("re-encoded envelope decodes");
        assert_eq!(again, envelope, "the envelope round trip lost something");
    }
}

/// An accepted JSON-mode append body splits into messages that, written as a read
/// body, parse back to the same message texts; and the crate's JSON reader accepts
/// exactly the texts `serde_json` accepts.
pub fn json_append_body(data: &[u8]) {
    if let Ok(text) = std::str::from_utf8(data) {
        let ours = crate::json::RawJson::new(text);
        let theirs = serde_json::from_str::<serde::de::IgnoredAny>(text);
        assert_eq!(
            ours.is_ok(),
            theirs.is_ok(),
            "the reader and serde_json disagree on {text:?}: {ours:?} / {theirs:?}"
        );
    }
    if let Ok(messages) = flatten_append_body(data) {
        assert!(!messages.is_empty());
        let mut body = Vec::new();
        write_json_batch(&mut body, messages.iter().map(|m| m.get()));
        let back = parse_json_batch(&body).expect("a written batch parses");
        let texts: Vec<&str> = back.iter().map(|m| m.get()).collect();
        let orig: Vec<&str> = messages.iter().map(|m| m.get()).collect();
        assert_eq!(texts, orig);
    }
}
