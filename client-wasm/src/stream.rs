//! The JavaScript stream and session objects: `new GaplessStream(url, options)` and
//! `new GaplessSession(url, options)`, each with `next()` (the wrapper in
//! `js/index.js` adds `for await` and `subscribe(fn)`) and `close()`.

use std::cell::RefCell;
use std::rc::Rc;
use std::time::Duration;

use futures::channel::mpsc;
use futures::lock::Mutex;
use futures::StreamExt;
use gapless_core::event::Envelope;
use gapless_core::resume::{Output, Payload};
use gapless_core::session::SessionView;
use gapless_core::Time;
use serde_json::{json, Value};
use wasm_bindgen::prelude::*;

use crate::driver::{self, Driver};
use crate::error::{js_error, stream_error, Code};
use crate::options;

/// Turns a JSON value into a plain JavaScript value.
pub(crate) fn to_js(value: &Value) -> JsValue {
    js_sys::JSON::parse(&value.to_string()).unwrap_or(JsValue::NULL)
}

/// The shared part of both objects: the driver and its outputs.
struct Feed {
    rx: Rc<Mutex<mpsc::Receiver<Output>>>,
    driver: Driver,
}

impl Feed {
    fn open(url: &str, options: &JsValue) -> Result<Feed, JsValue> {
        let from = options::offset(options)?;
        let live = options::live(options)?;
        let headers = options::headers(options)?;
        let (tx, rx) = mpsc::channel(16);
        let driver = driver::spawn(url.to_owned(), from, live, headers, tx);
        Ok(Feed {
            rx: Rc::new(Mutex::new(rx)),
            driver,
        })
    }

    fn close(&self) {
        self.driver.stopped.set(true);
        if let Some(mut rx) = self.rx.try_lock() {
            rx.close();
        }
    }
}

/// The next output, `None` at the end; errors become coded JS errors.
async fn next_output(rx: &Mutex<mpsc::Receiver<Output>>) -> Result<Option<Output>, JsValue> {
    let mut rx = rx.lock().await;
    match rx.next().await {
        None => Ok(None),
        Some(Output::ContinuityLost { offset }) => Err(js_error(
            Code::ContinuityLost,
            &format!("the server no longer has data at offset {offset}; refetch from the start"),
            Some(410),
        )),
        Some(Output::Failed(e)) => Err(stream_error(&e)),
        Some(other) => Ok(Some(other)),
    }
}

/// A read of one Durable Streams stream: history, then live.
#[wasm_bindgen]
pub struct GaplessStream {
    feed: Feed,
}

#[wasm_bindgen]
impl GaplessStream {
    /// Opens `url` with `{offset?, headers?, live?}`.
    #[wasm_bindgen(constructor)]
    pub fn new(url: &str, options: JsValue) -> Result<GaplessStream, JsValue> {
        Ok(GaplessStream {
            feed: Feed::open(url, &options)?,
        })
    }

    /// The next update: `{type: "batch", messages | bytes, offset, upToDate}`,
    /// `{type: "up-to-date", offset}`, `{type: "closed", offset}`, or `null` once the
    /// stream has ended.
    pub fn next(&self) -> js_sys::Promise {
        let rx = Rc::clone(&self.feed.rx);
        wasm_bindgen_futures::future_to_promise(async move {
            let Some(out) = next_output(&rx).await? else {
                return Ok(JsValue::NULL);
            };
            Ok(match out {
                Output::Batch(b) => match &b.payload {
                    Payload::Json(messages) => {
                        let values: Vec<Value> = messages
                            .iter()
                            .map(|m| serde_json::from_str(m.get()).unwrap_or(Value::Null))
                            .collect();
                        to_js(
                            &json!({"type": "batch", "messages": values, "offset": b.next_offset.as_str(), "upToDate": b.up_to_date}),
                        )
                    }
                    Payload::Bytes(bytes) => {
                        let obj = to_js(
                            &json!({"type": "batch", "offset": b.next_offset.as_str(), "upToDate": b.up_to_date}),
                        );
                        let _ = js_sys::Reflect::set(
                            &obj,
                            &"bytes".into(),
                            &js_sys::Uint8Array::from(&bytes[..]),
                        );
                        obj
                    }
                },
                Output::UpToDate { offset } => {
                    to_js(&json!({"type": "up-to-date", "offset": offset.as_str()}))
                }
                Output::Closed { offset } => {
                    to_js(&json!({"type": "closed", "offset": offset.as_str()}))
                }
                _ => JsValue::NULL,
            })
        })
    }

    /// Stops reading and aborts the request in flight.
    pub fn close(&self) {
        self.feed.close();
    }
}

/// A read of one agent session: typed events, and the session view gapless-core's
/// reducer keeps (status, text, tools, turns, errors, stalled).
#[wasm_bindgen]
pub struct GaplessSession {
    feed: Feed,
    view: Rc<RefCell<SessionView>>,
}

#[wasm_bindgen]
impl GaplessSession {
    /// Opens the session stream at `url` with `{offset?, headers?, live?, stallAfterMs?}`.
    #[wasm_bindgen(constructor)]
    pub fn new(url: &str, options: JsValue) -> Result<GaplessSession, JsValue> {
        let stall = options::number(&options, "stallAfterMs")
            .unwrap_or(60_000.0)
            .max(1.0) as u64;
        Ok(GaplessSession {
            feed: Feed::open(url, &options)?,
            view: Rc::new(RefCell::new(SessionView::new(Duration::from_millis(stall)))),
        })
    }

    /// The next update: `{type: "events", events: [{type, channel, data, timestamp}],
    /// offset}`, `{type: "up-to-date", offset}`, `{type: "closed", offset}`, or `null`.
    pub fn next(&self) -> js_sys::Promise {
        let rx = Rc::clone(&self.feed.rx);
        let view = Rc::clone(&self.view);
        wasm_bindgen_futures::future_to_promise(async move {
            let Some(out) = next_output(&rx).await? else {
                return Ok(JsValue::NULL);
            };
            Ok(match out {
                Output::Batch(b) => {
                    let Payload::Json(messages) = &b.payload else {
                        return Err(js_error(
                            Code::Protocol,
                            "a session stream must be JSON",
                            None,
                        ));
                    };
                    let now = Time::from_millis(js_sys::Date::now() as u64);
                    let mut events = Vec::with_capacity(messages.len());
                    let mut view = view.borrow_mut();
                    for m in messages {
                        let envelope = Envelope::from_json(m.get()).unwrap_or_else(|_| {
                            let value = serde_json::from_str(m.get()).unwrap_or(Value::Null);
                            Envelope::new(gapless_core::event::Event::from_parts(
                                "gapless:not-an-envelope",
                                value,
                            ))
                        });
                        view.apply(&envelope, now);
                        events.push(json!({
                            "type": envelope.kind(),
                            "channel": envelope.channel().as_str(),
                            "data": envelope.event.data(),
                            "timestamp": envelope.timestamp,
                        }));
                    }
                    to_js(
                        &json!({"type": "events", "events": events, "offset": b.next_offset.as_str()}),
                    )
                }
                Output::UpToDate { offset } => {
                    to_js(&json!({"type": "up-to-date", "offset": offset.as_str()}))
                }
                Output::Closed { offset } => {
                    to_js(&json!({"type": "closed", "offset": offset.as_str()}))
                }
                _ => JsValue::NULL,
            })
        })
    }

    /// The session view now: `{status: {state, ...}, view: {stages, turns, tools,
    /// files, errors, ...}}`; `status.state` is `"stalled"` when a running session
    /// has been silent longer than `stallAfterMs`.
    pub fn view(&self) -> JsValue {
        let now = Time::from_millis(js_sys::Date::now() as u64);
        let snapshot = self.view.borrow().snapshot(now);
        to_js(&serde_json::to_value(snapshot).unwrap_or(Value::Null))
    }

    /// Stops reading and aborts the request in flight.
    pub fn close(&self) {
        self.feed.close();
    }
}
