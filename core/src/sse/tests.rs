//! Tests of the SSE decoder and encoder, including any-chunking property tests.

use super::*;
use proptest::prelude::*;

fn decode_all(decoder: &mut SseDecoder) -> Vec<SseEvent> {
    let mut out = Vec::new();
    while let Some(e) = decoder.next_event() {
        out.push(e.expect("no error expected"));
    }
    out
}

fn decode_chunks(chunks: &[&[u8]]) -> Vec<SseEvent> {
    let mut decoder = SseDecoder::new();
    let mut out = Vec::new();
    for chunk in chunks {
        decoder.feed(chunk);
        out.extend(decode_all(&mut decoder));
    }
    out
}

fn ev(event: &str, data: &str, id: Option<&str>) -> SseEvent {
    SseEvent {
        event: event.into(),
        data: data.into(),
        id: id.map(Into::into),
    }
}

#[test]
fn all_line_endings_are_equivalent() {
    for sep in ["\n", "\r\n", "\r"] {
        let text = format!("event: a{sep}data: 1{sep}data: 2{sep}{sep}data: x{sep}{sep}");
        assert_eq!(
            decode_chunks(&[text.as_bytes()]),
            vec![ev("a", "1\n2", None), ev("message", "x", None)],
            "separator {sep:?}"
        );
    }
}

#[test]
fn crlf_split_across_chunks_is_one_line_end() {
    let events = decode_chunks(&[b"data: a\r", b"\n\r", b"\ndata: b\r\n\r\n"]);
    assert_eq!(
        events,
        vec![ev("message", "a", None), ev("message", "b", None)]
    );
}

#[test]
fn bom_is_skipped_even_when_split() {
    let events = decode_chunks(&[b"\xEF", b"\xBB", b"\xBFdata: x\n\n"]);
    assert_eq!(events, vec![ev("message", "x", None)]);
    // A BOM later in the stream is data, not skipped.
    let events = decode_chunks(&[b"data: y\n\n\xEF\xBB\xBFdata: z\n\n"]);
    assert_eq!(events.len(), 1);
}

#[test]
fn comments_unknown_fields_and_empty_events_are_ignored() {
    let events = decode_chunks(&[b": hello\nfoo: bar\n\nevent: x\n\ndata\n\n"]);
    assert_eq!(events, vec![ev("message", "", None)]);
}

#[test]
fn id_persists_and_nul_ids_are_ignored() {
    let mut decoder = SseDecoder::new();
    decoder.feed(b"id: 7\ndata: a\n\ndata: b\n\nid: 8\0\ndata: c\n\nid\ndata: d\n\n");
    let events = decode_all(&mut decoder);
    let ids: Vec<_> = events.iter().map(|e| e.id.as_deref()).collect();
    assert_eq!(ids, vec![Some("7"), Some("7"), Some("7"), Some("")]);
    assert_eq!(decoder.last_event_id(), Some(""));
}

#[test]
fn retry_takes_digits_only() {
    let mut decoder = SseDecoder::new();
    decoder.feed(b"retry: 1500\n\n");
    assert!(decoder.next_event().is_none());
    assert_eq!(decoder.retry_ms(), Some(1500));
    decoder.feed(b"retry: 12a\nretry: -1\nretry:\n\n");
    assert!(decoder.next_event().is_none());
    assert_eq!(decoder.retry_ms(), Some(1500));
}

#[test]
fn only_one_leading_space_is_stripped() {
    let events = decode_chunks(&[b"data:  two\ndata:none\n\n"]);
    assert_eq!(events, vec![ev("message", " two\nnone", None)]);
}

#[test]
fn invalid_utf8_is_replaced_and_split_sequences_survive() {
    let events = decode_chunks(&[b"data: \xE2\x82", b"\xAC \xFF\n\n"]);
    assert_eq!(events, vec![ev("message", "\u{20AC} \u{FFFD}", None)]);
}

#[test]
fn incomplete_event_is_not_dispatched() {
    let events = decode_chunks(&[b"data: a\n"]);
    assert!(events.is_empty());
}

#[test]
fn oversize_event_is_an_error_then_silence() {
    let mut decoder = SseDecoder::with_max_event_bytes(16);
    decoder.feed(b"data: 0123456789\ndata: 0123456789\n\n");
    assert_eq!(
        decoder.next_event(),
        Some(Err(SseError::EventTooLarge { limit: 16 }))
    );
    assert_eq!(decoder.next_event(), None);
    // An endless line without a line end is caught too.
    let mut decoder = SseDecoder::with_max_event_bytes(16);
    decoder.feed(&[b'x'; 64]);
    assert!(matches!(decoder.next_event(), Some(Err(_))));
}

#[test]
fn encoder_splits_all_line_endings() {
    let mut out = String::new();
    encode_event(&mut out, Some("a\nb"), None, "1\r\n2\r3\n");
    assert_eq!(out, "event: a b\ndata:1\ndata:2\ndata:3\ndata:\n\n");
    assert_eq!(
        decode_chunks(&[out.as_bytes()]),
        vec![ev("a b", "1\n2\n3\n", None)]
    );
    let mut out = String::new();
    encode_event(&mut out, None, None, " leading space");
    assert_eq!(out, "data:  leading space\n\n");
    assert_eq!(
        decode_chunks(&[out.as_bytes()]),
        vec![ev("message", " leading space", None)]
    );
}

fn event_strategy() -> impl Strategy<Value = (Option<String>, Option<String>, String)> {
    (
        proptest::option::of("[a-z]{1,8}"),
        proptest::option::of("[0-9a-z_]{0,12}"),
        "(\\PC|\n|\r\n| ){0,40}",
    )
}

proptest! {
    /// Any chunking of a stream yields the same events as feeding it whole.
    #[test]
    fn any_chunking_yields_the_same_events(
        events in proptest::collection::vec(event_strategy(), 0..12),
        cuts in proptest::collection::vec(any::<prop::sample::Index>(), 0..20),
        bom in any::<bool>(),
        comments in any::<bool>(),
    ) {
        let mut text = String::new();
        if bom {
            text.push('\u{FEFF}');
        }
        for (event, id, data) in &events {
            if comments {
                encode_comment(&mut text, "ping");
            }
            encode_event(&mut text, event.as_deref(), id.as_deref(), data);
        }
        let bytes = text.as_bytes();
        let whole = decode_chunks(&[bytes]);
        // The round trip gives back each event (with `\n` line ends).
        prop_assert_eq!(whole.len(), events.len());
        let mut last_id: Option<String> = None;
        for (got, (event, id, data)) in whole.iter().zip(&events) {
            if id.is_some() {
                last_id.clone_from(id);
            }
            prop_assert_eq!(&got.event, event.as_deref().unwrap_or("message"));
            prop_assert_eq!(got.data.clone(), data.replace("\r\n", "\n"));
            prop_assert_eq!(&got.id, &last_id);
        }
        let mut positions: Vec<usize> = cuts.iter().map(|c| c.index(bytes.len() + 1)).collect();
        positions.sort_unstable();
        let mut chunks = Vec::new();
        let mut prev = 0;
        for p in positions {
            chunks.push(&bytes[prev..p]);
            prev = p;
        }
        chunks.push(&bytes[prev..]);
        prop_assert_eq!(decode_chunks(&chunks), whole);
    }

    /// Arbitrary bytes never panic, in any chunking.
    #[test]
    fn arbitrary_bytes_never_panic(
        bytes in proptest::collection::vec(any::<u8>(), 0..512),
        split in any::<prop::sample::Index>(),
    ) {
        let at = split.index(bytes.len() + 1);
        let mut decoder = SseDecoder::with_max_event_bytes(128);
        decoder.feed(&bytes[..at]);
        while decoder.next_event().is_some() {}
        decoder.feed(&bytes[at..]);
        while decoder.next_event().is_some() {}
    }
}
