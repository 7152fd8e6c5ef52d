//! JavaScript errors with a stable `code`: what every failure of the package becomes.

use gapless_core::resume::StreamError;
use wasm_bindgen::JsValue;

/// The stable error codes a JavaScript caller can switch on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Code {
    /// The stream does not exist (404).
    NotFound,
    /// Credentials missing or refused (401/403).
    Auth,
    /// The offset is gone (410): refetch from the start.
    ContinuityLost,
    /// The stream is closed; nothing can be appended.
    Closed,
    /// The server broke the protocol, or sent undecodable data.
    Protocol,
    /// Another status the operation does not accept.
    Status,
    /// A bad argument (option, offset, header).
    InvalidArgument,
    /// An append may or may not be stored: its answers were lost (the producer's
    /// next append is sent under a new epoch, never under its numbers).
    OutcomeUnknown,
    /// Another producer with the same id holds a newer epoch.
    Fenced,
}

impl Code {
    /// The code's spelling in JavaScript.
    pub fn as_str(self) -> &'static str {
        match self {
            Code::NotFound => "NOT_FOUND",
            Code::Auth => "AUTH",
            Code::ContinuityLost => "CONTINUITY_LOST",
            Code::Closed => "CLOSED",
            Code::Protocol => "PROTOCOL",
            Code::Status => "STATUS",
            Code::InvalidArgument => "INVALID_ARGUMENT",
            Code::OutcomeUnknown => "OUTCOME_UNKNOWN",
            Code::Fenced => "FENCED",
        }
    }
}

/// A JavaScript `Error` with `code` (and `status` when there is one).
pub fn js_error(code: Code, message: &str, status: Option<u16>) -> JsValue {
    let error = js_sys::Error::new(message);
    let _ = js_sys::Reflect::set(&error, &"code".into(), &code.as_str().into());
    if let Some(s) = status {
        let _ = js_sys::Reflect::set(&error, &"status".into(), &JsValue::from(s));
    }
    error.into()
}

/// The JavaScript error of a failed subscription, its message saying what failed
/// (a refusal's body may be empty).
pub fn stream_error(e: &StreamError) -> JsValue {
    let (code, status) = match e {
        StreamError::NotFound => (Code::NotFound, Some(404)),
        StreamError::Rejected {
            status: status @ (401 | 403),
            ..
        } => (Code::Auth, Some(*status)),
        StreamError::Rejected { status, .. } => (Code::Status, Some(*status)),
        _ => (Code::Protocol, None),
    };
    js_error(code, &e.to_string(), status)
}

/// The JavaScript error of an answer with an unexpected status.
pub fn status_error(status: u16, message: &str) -> JsValue {
    let code = match status {
        // An append answered 410: the stream was deleted (no offset was asked for).
        404 | 410 => Code::NotFound,
        401 | 403 => Code::Auth,
        _ => Code::Status,
    };
    js_error(code, message, Some(status))
}
