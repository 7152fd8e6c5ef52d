//! How SSE `data` carries stream bytes (§5.8): UTF-8 text, or base64 for binary streams.

use base64::Engine as _;

use super::WireError;

/// How the `data` lines of a stream's SSE events encode its bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DataEncoding {
    /// `text/*` and `application/json` streams: the data is the text itself.
    Text,
    /// Any other content type: base64 (RFC 4648), announced by the response header
    /// `stream-sse-data-encoding: base64`.
    Base64,
}

/// Decodes the (multi-line) data of one SSE `data` event into stream bytes.
///
/// For base64, line breaks between `data:` lines are removed before decoding, since a
/// server may split the encoding across lines (§5.8).
///
/// ```
/// use gapless_core::wire::{decode_sse_data, DataEncoding};
///
/// assert_eq!(decode_sse_data("aGVs\nbG8=", DataEncoding::Base64).unwrap(), b"hello");
/// assert_eq!(decode_sse_data("hi\nthere", DataEncoding::Text).unwrap(), b"hi\nthere");
/// assert!(decode_sse_data("***", DataEncoding::Base64).is_err());
/// ```
pub fn decode_sse_data(data: &str, encoding: DataEncoding) -> Result<Vec<u8>, WireError> {
    match encoding {
        DataEncoding::Text => Ok(data.as_bytes().to_vec()),
        DataEncoding::Base64 => {
            let compact: String = data.chars().filter(|c| *c != '\r' && *c != '\n').collect();
            base64::engine::general_purpose::STANDARD
                .decode(compact.as_bytes())
                .map_err(|e| WireError::BadBase64(e.to_string()))
        }
    }
}

/// Encodes stream bytes as SSE data for a binary stream (standard base64, one line).
///
/// ```
/// assert_eq!(gapless_core::wire::encode_base64(b"hello"), "aGVsbG8=");
/// ```
pub fn encode_base64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn base64_round_trips_across_line_splits(bytes in prop::collection::vec(any::<u8>(), 0..200), width in 1usize..40) {
            let enc = encode_base64(&bytes);
            let lines: Vec<String> = enc.as_bytes().chunks(width).map(|c| String::from_utf8_lossy(c).into_owned()).collect();
            prop_assert_eq!(decode_sse_data(&lines.join("\r\n"), DataEncoding::Base64).unwrap(), bytes);
        }
    }
}
