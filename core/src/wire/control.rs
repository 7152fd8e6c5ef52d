//! The SSE `control` event of §5.8: the offset, cursor and state after each data event.

use serde::{Deserialize, Serialize};

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

impl Control {
    /// Parses the `data` of a control event.
    pub fn parse(data: &str) -> Result<Control, WireError> {
        let c: Control =
            serde_json::from_str(data).map_err(|e| WireError::BadControl(e.to_string()))?;
        if !c.stream_next_offset.is_concrete() && !c.stream_next_offset.is_start() {
            return Err(WireError::BadControl(
                "streamNextOffset must be a real offset, not `now`".into(),
            ));
        }
        Ok(c)
    }

    /// The control event's JSON text, as a server writes it.
    pub fn to_json(&self) -> String {
        // Serializing plain strings and booleans cannot fail.
        serde_json::to_string(self).unwrap_or_default()
    }
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
}
