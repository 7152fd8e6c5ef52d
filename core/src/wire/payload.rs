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
            let compact: Vec<u8> = data
                .bytes()
                .filter(|b| *b != b'\r' && *b != b'\n')
                .collect();
            decode_base64(&compact).map_err(WireError::BadBase64)
        }
    }
}

/// The value of a base64 symbol (RFC 4648, standard alphabet).
fn symbol(b: u8) -> Option<u32> {
    let v = match b {
        b'A'..=b'Z' => b - b'A',
        b'a'..=b'z' => b - b'a' + 26,
        b'0'..=b'9' => b - b'0' + 52,
        b'+' => 62,
        b'/' => 63,
        _ => return None,
    };
    Some(v.into())
}

/// Decodes standard base64 strictly, as the `base64` crate's `STANDARD` engine does:
/// canonical `=` padding, no other characters, and no stray bits in the last symbol. On
/// error, says where. (Written out here because the crate's decoder is large for the
/// browser package.)
fn decode_base64(input: &[u8]) -> Result<Vec<u8>, String> {
    let bad = |at: usize| format!("invalid base64 at byte {at}");
    if input.len() % 4 != 0 {
        return Err(bad(input.len()));
    }
    let mut out = Vec::with_capacity(input.len() / 4 * 3);
    let quads = input.len() / 4;
    for (q, quad) in input.chunks(4).enumerate() {
        let at = q * 4;
        // Padding only at the very end: "xx==" or "xxx=".
        let pad = if q + 1 == quads {
            quad.iter().rev().take_while(|b| **b == b'=').count()
        } else {
            0
        };
        if pad > 2 {
            return Err(bad(at + 4 - pad));
        }
        let mut bits = 0u32;
        for (i, &b) in quad[..4 - pad].iter().enumerate() {
            bits = bits << 6 | symbol(b).ok_or_else(|| bad(at + i))?;
        }
        bits <<= 6 * pad;
        // 0, 1 or 2 padding symbols leave 3, 2 or 1 bytes; the bits below them must be 0.
        if bits & ((1 << (8 * pad)) - 1) != 0 {
            return Err(bad(at + 3 - pad));
        }
        out.extend_from_slice(&bits.to_be_bytes()[1..4 - pad]);
    }
    Ok(out)
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

    /// Accepts and decodes exactly what the `base64` crate's standard engine does.
    fn agrees_with_the_base64_crate(input: &[u8]) {
        let ours = decode_base64(input);
        let theirs = base64::engine::general_purpose::STANDARD.decode(input);
        assert_eq!(
            ours.as_ref().ok(),
            theirs.as_ref().ok(),
            "{input:?}: {ours:?} {theirs:?}"
        );
    }

    #[test]
    fn base64_decoder_corner_cases() {
        for input in [
            "", "QQ==", "QQ=", "QQ", "Q===", "====", "QUI=", "QUJD", "QR==", "QUJ=", "QQ==QUJD",
            "QUJDQQ==", "QQ=Q", "QUJD=", "Q", "QUJDR", "QU=D", "Q@==", "QUJD\n", "//8=", "+/+/",
        ] {
            agrees_with_the_base64_crate(input.as_bytes());
        }
    }

    proptest! {
        #[test]
        fn base64_decoder_agrees_with_the_crate(
            input in prop::collection::vec(prop::sample::select(b"AQgw/+9z=_ \x80".to_vec()), 0..13),
            bytes in prop::collection::vec(any::<u8>(), 0..20),
        ) {
            agrees_with_the_base64_crate(&input);
            agrees_with_the_base64_crate(encode_base64(&bytes).as_bytes());
        }

        #[test]
        fn base64_round_trips_across_line_splits(bytes in prop::collection::vec(any::<u8>(), 0..200), width in 1usize..40) {
            let enc = encode_base64(&bytes);
            let lines: Vec<String> = enc.as_bytes().chunks(width).map(|c| String::from_utf8_lossy(c).into_owned()).collect();
            prop_assert_eq!(decode_sse_data(&lines.join("\r\n"), DataEncoding::Base64).unwrap(), bytes);
        }
    }
}
