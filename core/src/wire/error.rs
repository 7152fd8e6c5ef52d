//! Errors raised while interpreting what a Durable Streams peer sent.

/// A peer sent something the protocol does not allow, or that cannot be decoded.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum WireError {
    /// A header the protocol requires on this response is absent.
    #[error("response lacks the required header {0}")]
    MissingHeader(&'static str),
    /// A header is present but its value is malformed.
    #[error("header {name} has an invalid value `{value}`: {reason}")]
    BadHeader {
        /// The header's name.
        name: &'static str,
        /// The offending value (truncated to 100 characters).
        value: String,
        /// Why it is invalid.
        reason: String,
    },
    /// An SSE `control` event is not the JSON object of §5.8.
    #[error("invalid SSE control event: {0}")]
    BadControl(String),
    /// An SSE stream could not be decoded (an event larger than the decoder allows).
    #[error("invalid SSE stream: {0}")]
    BadSse(String),
    /// A JSON-mode body is not valid JSON, or not of the expected shape.
    #[error("invalid JSON-mode body: {0}")]
    BadJson(String),
    /// An empty JSON array was appended; §9.1 forbids it.
    #[error("a JSON-mode append must not be an empty array")]
    EmptyJsonArray,
    /// Base64 SSE data (§5.8) does not decode.
    #[error("invalid base64 SSE data: {0}")]
    BadBase64(String),
}

impl WireError {
    pub(crate) fn bad_header(name: &'static str, value: &str, reason: impl ToString) -> Self {
        WireError::BadHeader {
            name,
            value: value.chars().take(100).collect(),
            reason: reason.to_string(),
        }
    }
}
