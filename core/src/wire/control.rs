//! The SSE `control` event of §5.8: the offset, cursor and state after each data event.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::WireError;
use crate::Offset;

/// The JSON body of an SSE `event: control` (§5.8).
///
/// The server sends one after every `data` event; `streamNextOffset` is where a reader
/// resumes once it has processed the data before it.
///
/// ```
/// use gapless_core::wire::Control;
///
/// let c = Control::parse(r#"{"streamNextOffset":"0000000000000042","upToDate":true}"#).unwrap();
/// assert_eq!(c.stream_next_offset.as_str(), "0000000000000042");
/// assert!(c.up_to_date && !c.stream_closed);
/// assert_eq!(Control::parse(&c.to_json()).unwrap(), c);
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Control {
    /// Offset after the data delivered so far (MUST).
    pub stream_next_offset: Offset,
    /// The caching cursor to echo on reconnect (MUST while the stream is open).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stream_cursor: Option<String>,
    /// The reader has reached the current tail.
    #[serde(default, skip_serializing_if = "is_false")]
    pub up_to_date: bool,
    /// The stream is closed and everything has been sent: the reader MUST NOT reconnect.
    #[serde(default, skip_serializing_if = "is_false")]
    pub stream_closed: bool,
}

fn is_false(b: &bool) -> bool {
    !*b
}

fn bad(reason: &str) -> WireError {
    WireError::BadControl(reason.into())
}

/// An optional boolean field (false when missing).
fn flag(map: &Map<String, Value>, key: &str) -> Result<bool, WireError> {
    match map.get(key) {
        None => Ok(false),
        Some(Value::Bool(b)) => Ok(*b),
        Some(_) => Err(WireError::BadControl(format!("`{key}` must be a boolean"))),
    }
}

impl Control {
    /// Parses the `data` of a control event: a JSON object with a string
    /// `streamNextOffset`, an optional string (or null) `streamCursor`, optional
    /// booleans `upToDate` and `streamClosed`, and any other fields, which are ignored.
    pub fn parse(data: &str) -> Result<Control, WireError> {
        // Read from a JSON value by hand rather than through the serde derive, whose
        // error paths pull number and float formatting into the browser package. No
        // field it reads is a float, so floats elsewhere are read as 0 (and the browser
        // package carries no float parser for them): like the derive, which only skips
        // over the members it ignores, this accepts an out-of-range float among them.
        // A member given twice counts once, the last, as with `JSON.parse` (the derive
        // would refuse it: a deliberate difference).
        let value = crate::json::parse_with(data, |_| Some(0.0))
            .map_err(|e| WireError::BadControl(e.to_string()))?;
        let Value::Object(map) = value else {
            return Err(bad("expected a JSON object"));
        };
        let stream_next_offset = match map.get("streamNextOffset") {
            Some(Value::String(s)) => {
                Offset::parse(s).map_err(|e| WireError::BadControl(e.to_string()))?
            }
            Some(_) => return Err(bad("`streamNextOffset` must be a string")),
            None => return Err(bad("missing field `streamNextOffset`")),
        };
        if !stream_next_offset.is_concrete() && !stream_next_offset.is_start() {
            return Err(bad("streamNextOffset must be a real offset, not `now`"));
        }
        let stream_cursor = match map.get("streamCursor") {
            None | Some(Value::Null) => None,
            Some(Value::String(s)) => Some(s.clone()),
            Some(_) => return Err(bad("`streamCursor` must be a string")),
        };
        Ok(Control {
            stream_next_offset,
            stream_cursor,
            up_to_date: flag(&map, "upToDate")?,
            stream_closed: flag(&map, "streamClosed")?,
        })
    }

    /// The control event's JSON text, as a server writes it.
    pub fn to_json(&self) -> String {
        let mut out = String::with_capacity(96);
        self.write_json(&mut out);
        out
    }

    /// Appends the control event's JSON text to `out`: the same text as
    /// [`Control::to_json`], written by hand rather than through serde, since a server
    /// writes one after every delivery to every subscriber.
    ///
    /// ```
    /// use gapless_core::wire::Control;
    /// use gapless_core::Offset;
    ///
    /// let c = Control {
    ///     stream_next_offset: Offset::parse("0000000000000042").unwrap(),
    ///     stream_cursor: Some("7".into()),
    ///     up_to_date: true,
    ///     stream_closed: false,
    /// };
    /// let mut out = String::from("data:");
    /// c.write_json(&mut out);
    /// assert_eq!(out, r#"data:{"streamNextOffset":"0000000000000042","streamCursor":"7","upToDate":true}"#);
    /// ```
    pub fn write_json(&self, out: &mut String) {
        Control::write_json_of(
            out,
            self.stream_next_offset.as_str(),
            self.stream_cursor.as_deref(),
            self.up_to_date,
            self.stream_closed,
        );
    }

    /// Appends the JSON text of the control event with these fields to `out`, for a
    /// server that holds the offset as text already (what [`Control::write_json`]
    /// writes).
    ///
    /// ```
    /// use gapless_core::wire::Control;
    ///
    /// let mut out = String::new();
    /// Control::write_json_of(&mut out, "0000000000000042", None, false, true);
    /// assert_eq!(out, r#"{"streamNextOffset":"0000000000000042","streamClosed":true}"#);
    /// ```
    pub fn write_json_of(
        out: &mut String,
        stream_next_offset: &str,
        stream_cursor: Option<&str>,
        up_to_date: bool,
        stream_closed: bool,
    ) {
        out.push_str("{\"streamNextOffset\":");
        push_json_string(out, stream_next_offset);
        if let Some(cursor) = stream_cursor {
            out.push_str(",\"streamCursor\":");
            push_json_string(out, cursor);
        }
        if up_to_date {
            out.push_str(",\"upToDate\":true");
        }
        if stream_closed {
            out.push_str(",\"streamClosed\":true");
        }
        out.push('}');
    }
}

/// Appends `s` as a JSON string: quoted, with `"`, `\\` and control characters
/// escaped (as serde_json escapes them).
fn push_json_string(out: &mut String, s: &str) {
    out.push('"');
    let mut rest = s;
    while let Some(i) = rest.find(|c: char| c == '"' || c == '\\' || c < ' ') {
        out.push_str(&rest[..i]);
        let c = rest.as_bytes()[i];
        match c {
            b'"' => out.push_str("\\\""),
            b'\\' => out.push_str("\\\\"),
            b'\n' => out.push_str("\\n"),
            b'\r' => out.push_str("\\r"),
            b'\t' => out.push_str("\\t"),
            0x08 => out.push_str("\\b"),
            0x0c => out.push_str("\\f"),
            _ => {
                const HEX: &[u8; 16] = b"0123456789abcdef";
                out.push_str("\\u00");
                out.push(char::from(HEX[usize::from(c >> 4)]));
                out.push(char::from(HEX[usize::from(c & 0xf)]));
            }
        }
        rest = &rest[i + 1..];
    }
    out.push_str(rest);
    out.push('"');
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rejects_malformed_control() {
        for bad in [
            "",
            "{}",
            "[]",
            r#"{"streamNextOffset":5}"#,
            r#"{"streamNextOffset":"a/b"}"#,
            r#"{"streamNextOffset":"now"}"#,
            r#"{"streamNextOffset":"1","upToDate":"yes"}"#,
            r#"{"streamNextOffset":"1","upToDate":null}"#,
            r#"{"streamNextOffset":"1","streamCursor":5}"#,
            r#"{"streamNextOffset":"1"} x"#,
            "5",
        ] {
            assert!(Control::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn keeps_cursor_and_closed() {
        let c = Control::parse(
            r#"{"streamNextOffset":"9","streamCursor":"123","streamClosed":true,"extra":1}"#,
        )
        .unwrap();
        assert_eq!(c.stream_cursor.as_deref(), Some("123"));
        assert!(c.stream_closed);
        assert_eq!(
            c.to_json(),
            r#"{"streamNextOffset":"9","streamCursor":"123","streamClosed":true}"#
        );
    }

    #[test]
    fn a_repeated_member_counts_once_the_last_as_with_json_parse() {
        let c = Control::parse(
            r#"{"streamNextOffset":"1","upToDate":true,"streamNextOffset":"2","upToDate":false}"#,
        )
        .unwrap();
        assert_eq!(c.stream_next_offset, Offset::parse("2").unwrap());
        assert!(!c.up_to_date);
    }

    #[test]
    fn parse_agrees_with_the_serde_derive() {
        for text in [
            r#"{"streamNextOffset":"1"}"#,
            r#"{"streamNextOffset":"-1","upToDate":false,"streamClosed":false}"#,
            r#"{"streamNextOffset":"7","streamCursor":null,"upToDate":true,"x":[1.5,{}]}"#,
            r#" {"streamCursor":"c","streamNextOffset":"0000_1","streamClosed":true} "#,
            r#"{"streamNextOffset":"now"}"#,
            r#"{"streamNextOffset":""}"#,
            r#"{"streamNextOffset":1}"#,
            r#"{"streamNextOffset":"1","upToDate":1}"#,
            r#"{"streamNextOffset":"1","streamClosed":"true"}"#,
            r#"{"streamNextOffset":"1","streamCursor":[]}"#,
            r#"{"upToDate":true}"#,
            r#"{"streamNextOffset":"1""#,
            "null",
            "1.5",
            r#""1""#,
            r#"{"streamNextOffset":"1","x":1e999}"#,
            r#"{"streamNextOffset":"1","x":[-1e999, {"y": 1E+400}]}"#,
            r#"{"streamNextOffset":"1","upToDate":1e999}"#,
        ] {
            let derived = serde_json::from_str::<Control>(text)
                .ok()
                .filter(|c| c.stream_next_offset.is_concrete() || c.stream_next_offset.is_start());
            assert_eq!(Control::parse(text).ok(), derived, "{text}");
        }
    }

    proptest::proptest! {
        #[test]
        fn json_written_by_hand_is_what_serde_writes(
            cursor in proptest::option::of(".{0,12}"),
            up_to_date: bool,
            stream_closed: bool,
            offset in "[0-9_]{1,20}",
        ) {
            let c = Control {
                stream_next_offset: Offset::parse(&offset).unwrap(),
                stream_cursor: cursor,
                up_to_date,
                stream_closed,
            };
            proptest::prop_assert_eq!(c.to_json(), serde_json::to_string(&c).unwrap());
        }
    }
}
