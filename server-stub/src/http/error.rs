//! HTTP errors: a status, a clear message and the protocol headers that go with it.

use axum::http::{HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};

/// An error answer: status, a plain-text message, and extra headers.
#[derive(Debug)]
pub struct ApiError {
    /// The status code.
    pub status: StatusCode,
    /// What went wrong, for humans.
    pub message: String,
    /// Protocol headers (`Stream-Closed`, `Producer-Epoch`, ...).
    pub headers: Vec<(HeaderName, String)>,
}

impl ApiError {
    /// An error with a status and message.
    pub fn new(status: StatusCode, message: impl Into<String>) -> Self {
        ApiError {
            status,
            message: message.into(),
            headers: Vec::new(),
        }
    }

    /// 400 Bad Request.
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, message)
    }

    /// 404 Not Found.
    pub fn not_found() -> Self {
        Self::new(StatusCode::NOT_FOUND, "stream not found")
    }

    /// 410 Gone.
    pub fn gone() -> Self {
        Self::new(StatusCode::GONE, "the stream was deleted")
    }

    /// 500 for a storage failure (details go to the log, not the client).
    pub fn storage(detail: &str) -> Self {
        tracing::error!("storage failure: {detail}");
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, "storage failure")
    }

    /// Adds a header.
    pub fn with(mut self, name: HeaderName, value: impl ToString) -> Self {
        self.headers.push((name, value.to_string()));
        self
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut response = (
            self.status,
            [("content-type", "text/plain; charset=utf-8")],
            self.message,
        )
            .into_response();
        for (name, value) in self.headers {
            if let Ok(v) = HeaderValue::from_str(&value) {
                response.headers_mut().insert(name, v);
            }
        }
        response
    }
}
