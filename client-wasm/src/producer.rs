//! The JavaScript producer: `new GaplessProducer(url, options)`, `append(value)`
//! resolving once the server has committed it; idempotent-producer headers make
//! retries after lost answers safe (exactly once).

use std::cell::Cell;
use std::rc::Rc;

use gapless_core::wire::AppendOutcome;
use wasm_bindgen::prelude::*;

use crate::error::{js_error, status_error, Code};
use crate::options;
use crate::sync::{FifoLock, Sleep};
use crate::transport::{head_of, text, Fetch};

/// The idempotent-producer numbers; appends take turns (`lock`), one at a time.
struct State {
    lock: FifoLock,
    epoch: Cell<u64>,
    seq: Cell<u64>,
}

/// An idempotent producer on one stream.
#[wasm_bindgen]
pub struct GaplessProducer {
    url: String,
    id: String,
    content_type: String,
    headers: Vec<(String, String)>,
    state: Rc<State>,
}

/// Retries of one append before it fails with `NETWORK`.
const MAX_RETRIES: u32 = 8;

#[wasm_bindgen]
impl GaplessProducer {
    /// A producer on `url` with `{producerId?, contentType?, headers?}`; the content
    /// type defaults to `application/json`, the id to a random one.
    #[wasm_bindgen(constructor)]
    pub fn new(url: &str, options: JsValue) -> Result<GaplessProducer, JsValue> {
        let id = options::string(&options, "producerId")
            .unwrap_or_else(|| format!("browser-{:x}", (js_sys::Math::random() * 1e15) as u64));
        if id.is_empty() {
            return Err(js_error(
                Code::InvalidArgument,
                "producerId must not be empty",
                None,
            ));
        }
        Ok(GaplessProducer {
            url: url.to_owned(),
            id,
            content_type: options::string(&options, "contentType")
                .unwrap_or_else(|| "application/json".into()),
            headers: options::headers(&options)?,
            // A fresh epoch per producer object fences any earlier one with this id.
            state: Rc::new(State {
                lock: FifoLock::default(),
                epoch: Cell::new(js_sys::Date::now() as u64),
                seq: Cell::new(0),
            }),
        })
    }

    /// Appends one message (any JSON value for JSON streams, a string otherwise) and
    /// resolves to the stream's offset after it once it is durable.
    pub fn append(&self, value: JsValue) -> js_sys::Promise {
        let json = gapless_core::wire::headers::is_json(&self.content_type);
        let body = if json {
            match js_sys::JSON::stringify(&value)
                .ok()
                .and_then(|s| s.as_string())
            {
                Some(text) if text.starts_with('[') => Ok(format!("[{text}]")),
                Some(text) => Ok(text),
                None => Err(js_error(
                    Code::InvalidArgument,
                    "the value cannot be JSON",
                    None,
                )),
            }
        } else {
            value.as_string().ok_or_else(|| {
                js_error(
                    Code::InvalidArgument,
                    "append a string to a non-JSON stream",
                    None,
                )
            })
        };
        let (url, id, ct, headers, state) = (
            self.url.clone(),
            self.id.clone(),
            self.content_type.clone(),
            self.headers.clone(),
            Rc::clone(&self.state),
        );
        wasm_bindgen_futures::future_to_promise(async move {
            let body = body?;
            let _turn = state.lock.lock().await;
            let mut retries = 0;
            let mut delay = 100u32;
            loop {
                let mut all = headers.clone();
                all.push(("Content-Type".into(), ct.clone()));
                all.push(("Producer-Id".into(), id.clone()));
                all.push(("Producer-Epoch".into(), state.epoch.get().to_string()));
                all.push(("Producer-Seq".into(), state.seq.get().to_string()));
                let fetch = Fetch::new();
                let retry = match fetch.send("POST", &url, &all, Some(body.clone())).await {
                    Err(_) => true,
                    Ok(r) => match AppendOutcome::of(&head_of(&r), true)
                        .map_err(|e| js_error(Code::Protocol, &e.to_string(), None))?
                    {
                        AppendOutcome::Accepted { next_offset } => {
                            state.seq.set(state.seq.get() + 1);
                            return Ok(JsValue::from(next_offset.as_str()));
                        }
                        AppendOutcome::Duplicate { next_offset } => {
                            state.seq.set(state.seq.get() + 1);
                            return Ok(
                                next_offset.map_or(JsValue::NULL, |o| JsValue::from(o.as_str()))
                            );
                        }
                        AppendOutcome::StaleEpoch { current } => {
                            state.epoch.set(current.max(state.epoch.get()) + 1);
                            state.seq.set(0);
                            continue;
                        }
                        AppendOutcome::Closed { .. } => {
                            return Err(js_error(Code::Closed, "the stream is closed", Some(409)));
                        }
                        AppendOutcome::Retry { .. } => true,
                        AppendOutcome::SeqGap { .. } | AppendOutcome::Rejected { .. } => {
                            return Err(status_error(r.status(), &text(&r).await));
                        }
                    },
                };
                if retry {
                    retries += 1;
                    if retries > MAX_RETRIES {
                        return Err(js_error(
                            Code::Network,
                            "the append failed after retries",
                            None,
                        ));
                    }
                    Sleep::new(delay).await;
                    delay = (delay * 2).min(5000);
                }
            }
        })
    }
}
