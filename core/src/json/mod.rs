//! JSON text: a strict reader (RFC 8259) that checks, splits or builds values, and
//! [`RawJson`], one checked JSON value kept as the exact text it arrived as.
//!
//! The reader is the crate's own rather than `serde_json`'s deserializer for two reasons:
//! JSON-mode bodies only need checking and splitting, which it does without building
//! anything, and the browser package must stay small, which `serde_json`'s parser (with
//! its float tables and error formatting) does not allow. Values are still
//! `serde_json::Value`s, and the reader accepts and refuses what `serde_json` does (its
//! property tests say so). Numbers with a fraction or an exponent are turned into floats
//! by a [`FloatParser`] the caller chooses: [`std_float`] natively, the browser's own
//! `parseFloat` in the browser package, both correctly rounded.
//!
//! ```
//! use gapless_core::json;
//!
//! let value = json::parse(r#"{"a": [1, -2, 2.5, "\u00e9"]}"#).unwrap();
//! assert_eq!(value["a"][3], "é");
//! assert_eq!(json::split_array(" [1, {\"b\": 2} ] ").unwrap(), ["1", "{\"b\": 2}"]);
//! assert_eq!(json::parse("[1,]").unwrap_err().to_string(), "expected a value at byte 3");
//! ```

mod read;

use std::fmt;

use serde_json::Value;

use read::Reader;

/// Turns the text of a JSON number with a fraction or an exponent into its value;
/// `None` if it has none (the reader then refuses the number as out of range).
pub type FloatParser = fn(&str) -> Option<f64>;

/// The standard library's float parser (correctly rounded); infinite results are
/// refused by the reader.
///
/// ```
/// assert_eq!(gapless_core::json::std_float("2.5e-1"), Some(0.25));
/// ```
pub fn std_float(text: &str) -> Option<f64> {
    text.parse().ok()
}

/// JSON text that is not valid: what is wrong and where.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{what} at byte {at}")]
pub struct JsonError {
    /// What is wrong.
    pub what: &'static str,
    /// The byte offset in the text.
    pub at: usize,
}

/// Parses one JSON value, with [`std_float`] for floats.
///
/// ```
/// assert_eq!(gapless_core::json::parse(" true ").unwrap(), true);
/// assert!(gapless_core::json::parse("tru").is_err());
/// ```
pub fn parse(text: &str) -> Result<Value, JsonError> {
    parse_with(text, std_float)
}

/// Parses one JSON value, with `floats` for floats.
///
/// ```
/// let value = gapless_core::json::parse_with("[0.5]", |t| t.parse().ok()).unwrap();
/// assert_eq!(value[0], 0.5);
/// ```
pub fn parse_with(text: &str, floats: FloatParser) -> Result<Value, JsonError> {
    let mut reader = Reader::new(text, floats);
    let value = reader.value(0)?;
    reader.end()?;
    Ok(value)
}

/// A float parser for checking only: never called.
fn unused_floats(_: &str) -> Option<f64> {
    None
}

/// Checks that `text` is one JSON value (with whitespace around it allowed) and returns
/// the value's text without that whitespace, building nothing.
///
/// ```
/// use gapless_core::json::checked;
///
/// assert_eq!(checked(" [1, 2] ").unwrap(), "[1, 2]");
/// assert!(checked("1,2").is_err());
/// ```
pub fn checked(text: &str) -> Result<&str, JsonError> {
    let mut reader = Reader::new(text, unused_floats);
    reader.whitespace();
    let start = reader.pos();
    reader.skip()?;
    let end = reader.pos();
    reader.end()?;
    Ok(&text[start..end])
}

/// The elements of a JSON array, each as its exact text, without building them.
///
/// ```
/// use gapless_core::json::split_array;
///
/// assert_eq!(split_array("[[1,2], \"x\"]").unwrap(), ["[1,2]", "\"x\""]);
/// assert!(split_array("[]").unwrap().is_empty());
/// assert!(split_array("{}").is_err());
/// ```
pub fn split_array(text: &str) -> Result<Vec<&str>, JsonError> {
    let mut reader = Reader::new(text, unused_floats);
    reader.whitespace();
    if text.as_bytes().get(reader.pos()) != Some(&b'[') {
        return Err(reader.error("expected an array"));
    }
    let mut items = Vec::new();
    reader.array(0, |r| {
        r.whitespace();
        let start = r.pos();
        r.skip()?;
        items.push(&text[start..r.pos()]);
        Ok(())
    })?;
    reader.end()?;
    Ok(items)
}

/// One JSON value, checked, kept as the exact text it arrived as (without surrounding
/// whitespace): a JSON-mode stream's message.
///
/// ```
/// use gapless_core::json::RawJson;
///
/// let raw = RawJson::new(" {\"a\" : 1} ").unwrap();
/// assert_eq!(raw.get(), "{\"a\" : 1}");
/// assert!(RawJson::new("{\"a\" 1}").is_err());
/// ```
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct RawJson(Box<str>);

impl RawJson {
    /// Checks `text` and keeps it.
    pub fn new(text: &str) -> Result<RawJson, JsonError> {
        checked(text).map(|t| RawJson(t.into()))
    }

    /// Text the reader has already checked to be exactly one value.
    pub(crate) fn checked(text: &str) -> RawJson {
        RawJson(text.into())
    }

    /// The JSON text.
    pub fn get(&self) -> &str {
        &self.0
    }

    /// Parses the value (with [`std_float`]). Only a number beyond `f64`'s range can
    /// fail here: checking reads numbers without evaluating them.
    pub fn parse(&self) -> Result<Value, JsonError> {
        parse(&self.0)
    }
}

impl fmt::Debug for RawJson {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Display for RawJson {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests;
