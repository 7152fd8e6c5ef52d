//! JSON mode (§9.1): a read returns a JSON array of messages; an append of an array
//! flattens exactly one level.

use super::WireError;
use crate::json::{checked, split_array, RawJson};

/// Splits a JSON-mode read body (a JSON array) into its messages, each kept as the
/// exact JSON text the server sent. An empty body counts as `[]`.
///
/// ```
/// let msgs = gapless_core::wire::parse_json_batch(br#"[{"a":1}, 2, "x"]"#).unwrap();
/// let texts: Vec<&str> = msgs.iter().map(|m| m.get()).collect();
/// assert_eq!(texts, [r#"{"a":1}"#, "2", r#""x""#]);
/// ```
pub fn parse_json_batch(body: &[u8]) -> Result<Vec<RawJson>, WireError> {
    // JSON's whitespace (RFC 8259, 2), which a form feed is not.
    if body
        .iter()
        .all(|b| matches!(b, b' ' | b'\t' | b'\n' | b'\r'))
    {
        return Ok(Vec::new());
    }
    let items = split_array(text_of(body)?).map_err(|e| WireError::BadJson(e.to_string()))?;
    Ok(items.into_iter().map(RawJson::checked).collect())
}

/// The body as UTF-8 text.
fn text_of(body: &[u8]) -> Result<&str, WireError> {
    std::str::from_utf8(body)
        .map_err(|e| WireError::BadJson(format!("invalid UTF-8 at byte {}", e.valid_up_to())))
}

/// Turns the body of a JSON-mode append into the messages it adds (§9.1): an array
/// contributes each element (one level only: `[[1,2],[3]]` is two messages), any other
/// value is one message, and an empty array is refused.
///
/// ```
/// use gapless_core::wire::{flatten_append_body, WireError};
///
/// let msgs = flatten_append_body(b"[[1,2],[3]]").unwrap();
/// assert_eq!(msgs.len(), 2);
/// assert_eq!(flatten_append_body(b"{\"a\":1}").unwrap().len(), 1);
/// assert_eq!(flatten_append_body(b"[]").unwrap_err(), WireError::EmptyJsonArray);
/// assert!(flatten_append_body(b"[1,").is_err());
/// ```
pub fn flatten_append_body(body: &[u8]) -> Result<Vec<RawJson>, WireError> {
    Ok(split_append_body(body)?
        .into_iter()
        .map(RawJson::checked)
        .collect())
}

/// The messages a JSON-mode append body adds, as [`flatten_append_body`] finds them,
/// but as slices of the body: nothing is copied (a server storing them copies them
/// once, into what it stores).
///
/// ```
/// use gapless_core::wire::{split_append_body, WireError};
///
/// assert_eq!(split_append_body(b" [1, {\"a\": 2}] ").unwrap(), ["1", "{\"a\": 2}"]);
/// assert_eq!(split_append_body(b" \"x\" ").unwrap(), ["\"x\""]);
/// assert_eq!(split_append_body(b"[]").unwrap_err(), WireError::EmptyJsonArray);
/// ```
pub fn split_append_body(body: &[u8]) -> Result<Vec<&str>, WireError> {
    let text = text_of(body)?;
    let bad = |e: crate::json::JsonError| WireError::BadJson(e.to_string());
    if text
        .trim_start_matches([' ', '\t', '\r', '\n'])
        .starts_with('[')
    {
        let items = split_array(text).map_err(bad)?;
        if items.is_empty() {
            return Err(WireError::EmptyJsonArray);
        }
        Ok(items)
    } else {
        Ok(vec![checked(text).map_err(bad)?])
    }
}

/// Writes messages as a JSON-mode read body: `[m1,m2,...]`.
///
/// ```
/// let msgs = gapless_core::wire::parse_json_batch(b"[1, {\"b\":true}]").unwrap();
/// let mut out = Vec::new();
/// gapless_core::wire::write_json_batch(&mut out, msgs.iter().map(|m| m.get()));
/// assert_eq!(out, b"[1,{\"b\":true}]");
/// ```
pub fn write_json_batch<'a>(out: &mut Vec<u8>, messages: impl IntoIterator<Item = &'a str>) {
    out.push(b'[');
    for (i, m) in messages.into_iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        out.extend_from_slice(m.as_bytes());
    }
    out.push(b']');
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn batch_rejects_non_arrays_and_garbage() {
        assert!(parse_json_batch(b"{}").is_err());
        assert!(parse_json_batch(b"[1,]").is_err());
        assert!(parse_json_batch(b"  ").unwrap().is_empty());
        // A form feed is no JSON whitespace.
        assert!(parse_json_batch(b"\x0c").is_err());
        assert!(parse_json_batch(b" \x0c\n").is_err());
        assert!(parse_json_batch(b"[]").unwrap().is_empty());
    }

    #[test]
    fn append_keeps_whitespace_inside_messages_verbatim() {
        let msgs = flatten_append_body(b" [ {\"a\" : 1} , \"s p\" ] ").unwrap();
        assert_eq!(msgs[0].get(), "{\"a\" : 1}");
        assert_eq!(msgs[1].get(), "\"s p\"");
    }

    fn json_leaf() -> impl Strategy<Value = serde_json::Value> {
        prop_oneof![
            Just(serde_json::Value::Null),
            any::<bool>().prop_map(serde_json::Value::from),
            any::<i64>().prop_map(serde_json::Value::from),
            "[a-z \\\\\"\u{e9}\u{1F600}]{0,8}".prop_map(serde_json::Value::from),
        ]
    }

    proptest! {
        #[test]
        fn write_then_parse_round_trips(values in prop::collection::vec(json_leaf(), 0..20)) {
            let texts: Vec<String> = values.iter().map(|v| v.to_string()).collect();
            let mut out = Vec::new();
            write_json_batch(&mut out, texts.iter().map(String::as_str));
            let back = parse_json_batch(&out).unwrap();
            let back: Vec<&str> = back.iter().map(|m| m.get()).collect();
            prop_assert_eq!(back, texts.iter().map(String::as_str).collect::<Vec<_>>());
        }

        #[test]
        fn parsers_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..64)) {
            let _ = parse_json_batch(&bytes);
            let _ = flatten_append_body(&bytes);
        }
    }
}
