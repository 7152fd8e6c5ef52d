//! One HTTP request through `fetch` (gloo-net): headers, an abort signal, and the
//! response body read chunk by chunk from its `ReadableStream`.

use gapless_core::wire::headers::ResponseHead;
use gloo_net::http::Request;
use wasm_bindgen::prelude::*;
use wasm_bindgen_futures::JsFuture;
use web_sys::{AbortController, ReadableStreamDefaultReader, Response};

/// A request in flight.
pub struct Fetch {
    controller: Option<AbortController>,
}

impl Drop for Fetch {
    fn drop(&mut self) {
        self.abort();
    }
}

impl Default for Fetch {
    fn default() -> Self {
        Self::new()
    }
}

impl Fetch {
    /// A handle that aborts its request when dropped.
    pub fn new() -> Fetch {
        Fetch {
            controller: AbortController::new().ok(),
        }
    }

    /// Aborts the request (and its body).
    pub fn abort(&mut self) {
        if let Some(c) = self.controller.take() {
            c.abort();
        }
    }

    /// Sends a request and returns the response (status and headers arrived).
    pub async fn send(
        &self,
        method: &str,
        url: &str,
        headers: &[(String, String)],
        body: Option<String>,
    ) -> Result<Response, String> {
        let signal = self.controller.as_ref().map(AbortController::signal);
        let mut request = match method {
            "POST" => Request::post(url),
            "PUT" => Request::put(url),
            "DELETE" => Request::delete(url),
            _ => Request::get(url),
        }
        // Redirects are not followed: fetch would send a redirected POST again as a
        // GET, whose 200 would read as a stored append (the 3xx is a refusal instead).
        .redirect(web_sys::RequestRedirect::Manual)
        .abort_signal(signal.as_ref());
        for (k, v) in headers {
            request = request.header(k, v);
        }
        let sent = match body {
            Some(b) => request.body(b).map_err(|e| e.to_string())?.send().await,
            None => request.send().await,
        };
        sent.map(Response::from).map_err(|e| e.to_string())
    }
}

/// The status and headers of a response, as the core reads them.
pub fn head_of(response: &Response) -> ResponseHead {
    let mut head = ResponseHead::new(response.status());
    let entries = response.headers().entries();
    while let Ok(next) = entries.next() {
        if next.done() {
            break;
        }
        let pair = js_sys::Array::from(&next.value());
        if let (Some(name), Some(value)) = (pair.get(0).as_string(), pair.get(1).as_string()) {
            head = head.with_header(name, value);
        }
    }
    head
}

/// The body of a response as text (empty if it cannot be read).
pub async fn text(response: &Response) -> String {
    match response.text() {
        Ok(promise) => JsFuture::from(promise)
            .await
            .ok()
            .and_then(|v| v.as_string())
            .unwrap_or_default(),
        Err(_) => String::new(),
    }
}

/// Reads a response body chunk by chunk. Each read is a future of its own that does
/// not borrow the reader, so a pending read can outlive a timer that fired first
/// (dropping it would lose the chunk it resolves to).
pub struct BodyReader {
    reader: Option<ReadableStreamDefaultReader>,
}

impl BodyReader {
    /// A reader of `response`'s body (empty when it has none).
    pub fn new(response: &Response) -> BodyReader {
        let reader = response.body().map(|stream| {
            stream
                .get_reader()
                .unchecked_into::<ReadableStreamDefaultReader>()
        });
        BodyReader { reader }
    }

    /// Starts reading the next chunk.
    pub fn read(
        &self,
    ) -> impl std::future::Future<Output = Result<Option<Vec<u8>>, String>> + 'static {
        let promise = self.reader.as_ref().map(|r| JsFuture::from(r.read()));
        async move {
            let Some(promise) = promise else {
                return Ok(None);
            };
            let result = promise.await.map_err(|e| {
                e.as_string()
                    .unwrap_or_else(|| "the body stream failed".into())
            })?;
            let done = js_sys::Reflect::get(&result, &"done".into())
                .ok()
                .and_then(|v| v.as_bool())
                .unwrap_or(true);
            if done {
                return Ok(None);
            }
            let value = js_sys::Reflect::get(&result, &"value".into())
                .map_err(|_| "no chunk value".to_owned())?;
            Ok(Some(js_sys::Uint8Array::new(&value).to_vec()))
        }
    }
}
