//! The JavaScript stream and session objects: `new GaplessStream(url, options)` and
//! `new GaplessSession(url, options)`, each with `next()` (the wrapper in
//! `js/index.js` adds `for await` and `subscribe(fn)`) and `close()`.

use std::cell::RefCell;
use std::rc::Rc;
use std::time::Duration;

use gapless_core::event::{Envelope, Event, RawReason};
use gapless_core::resume::{Output, Payload};
use gapless_core::session::SessionView;
use gapless_core::Time;
use serde_json::{Map, Value};
use wasm_bindgen::prelude::*;

use crate::driver;
use crate::error::{js_error, stream_error, Code};
use crate::js::{from_json, marker, object, parse, set};
use crate::options;
use crate::sync::{channel, Receiver};

/// The shared part of both objects: the driver's outputs (closing them stops it).
struct Feed {
    rx: Rc<Receiver<Output>>,
}

impl Feed {
    fn open(url: &str, options: &JsValue) -> Result<Feed, JsValue> {
        options::check_url(url)?;
        let from = options::offset(options)?;
        let live = options::live(options)?;
        let headers = options::headers(options)?;
        let (tx, rx) = channel(16);
        driver::spawn(url.to_owned(), from, live, headers, tx);
        Ok(Feed { rx: Rc::new(rx) })
    }

    /// Stops the driver, which aborts its request in flight.
    fn close(&self) {
        self.rx.close();
    }
}

impl Drop for Feed {
    /// A stream freed without `close()` (JavaScript's `free()`) stops its driver and
    /// aborts its request too: nothing else would.
    fn drop(&mut self) {
        self.close();
    }
}

/// The next output, `None` at the end; errors become coded JS errors.
async fn next_output(rx: &Receiver<Output>) -> Result<Option<Output>, JsValue> {
    match rx.next().await {
        None => Ok(None),
        Some(Output::ContinuityLost { offset, status }) => Err(js_error(
            Code::ContinuityLost,
            &format!(
                "no data at offset {offset} any more (gone, or made anew): read from the start"
            ),
            status,
        )),
        Some(Output::Failed(e)) => Err(stream_error(&e)),
        Some(other) => Ok(Some(other)),
    }
}

/// The update of an output that carries no data: `{type: "up-to-date", offset}`,
/// `{type: "closed", offset}` or `{type: "reconnecting", offset, reason}` (a read
/// failed, for `reason`, and is made again from `offset` after a back-off).
fn marker_of(out: Output) -> JsValue {
    let (kind, offset, reason) = match out {
        Output::UpToDate { offset } => ("up-to-date", offset, None),
        Output::Closed { offset } => ("closed", offset, None),
        Output::Reconnecting { offset, cause } => ("reconnecting", offset, Some(cause)),
        _ => return JsValue::NULL,
    };
    let update = marker(kind, offset.as_str());
    if let Some(reason) = reason {
        set(&update, "reason", &reason.to_string().into());
    }
    update
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
    /// `{type: "up-to-date" | "closed" | "reconnecting", offset}`, or `null` once the
    /// stream has ended.
    pub fn next(&self) -> js_sys::Promise {
        let rx = Rc::clone(&self.feed.rx);
        wasm_bindgen_futures::future_to_promise(async move {
            let Some(out) = next_output(&rx).await? else {
                return Ok(JsValue::NULL);
            };
            Ok(match out {
                Output::Batch(b) => {
                    // Properties in alphabetical order, as this object has always had them.
                    let update = object();
                    if let Payload::Json(messages) = &b.payload {
                        // The messages are the server's JSON texts: one JSON.parse of
                        // them all, as an array.
                        let mut text = String::from("[");
                        for (i, m) in messages.iter().enumerate() {
                            if i > 0 {
                                text.push(',');
                            }
                            text.push_str(m.get());
                        }
                        text.push(']');
                        let values = js_sys::JSON::parse(&text).unwrap_or(JsValue::NULL);
                        set(&update, "messages", &values);
                    }
                    set(&update, "offset", &b.next_offset.as_str().into());
                    set(&update, "type", &"batch".into());
                    set(&update, "upToDate", &b.up_to_date.into());
                    if let Payload::Bytes(bytes) = &b.payload {
                        set(
                            &update,
                            "bytes",
                            &js_sys::Uint8Array::from(&bytes[..]).into(),
                        );
                    }
                    update
                }
                other => marker_of(other),
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
    /// offset}` (an event that is not of a known kind with data that fits it has
    /// `type: "unknown"` and its `kind` as sent), `{type: "up-to-date" | "closed" |
    /// "reconnecting", offset}`, or `null` once it has ended.
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
                        // Reading stops: the driver ends, what it had queued is
                        // dropped.
                        rx.close();
                        return Err(js_error(
                            Code::Protocol,
                            "a session stream must be JSON",
                            None,
                        ));
                    };
                    let now = Time::from_millis(js_sys::Date::now() as u64);
                    let events = js_sys::Array::new();
                    let mut view = view.borrow_mut();
                    for m in messages {
                        // The data as it arrived: what the event's data is, without
                        // encoding the typed struct again.
                        let parsed = parse(m.get());
                        let source = parsed.as_ref().and_then(|v| v.get("data")).cloned();
                        // Decoded as far as the view needs (see
                        // SessionView::decode_event): the same view and the same data.
                        let envelope = match parsed
                            .map(|v| Envelope::from_value_with(v, SessionView::decode_event))
                        {
                            Some(Ok(envelope)) => envelope,
                            _ => Envelope::new(SessionView::decode_event(
                                "gapless:not-an-envelope",
                                parse(m.get()).unwrap_or(Value::Null),
                            )),
                        };
                        let data = envelope
                            .event
                            .data_from_source(source.unwrap_or_else(|| Value::Object(Map::new())));
                        view.apply(&envelope, now);
                        let event = object();
                        set(&event, "channel", &envelope.channel().as_str().into());
                        set(&event, "data", &from_json(&data));
                        // A kind this package does not know, or a known one whose data
                        // does not fit it, is `type: "unknown"` with the kind as sent:
                        // a known `type` then promises its data's shape (TypeScript
                        // narrows on it).
                        let kind = envelope.kind();
                        let typed = match &envelope.event {
                            Event::Raw(raw) => raw.reason == RawReason::NotDecoded,
                            _ => true,
                        };
                        if !typed {
                            set(&event, "kind", &kind.into());
                        }
                        let timestamp = envelope
                            .timestamp
                            .map_or(JsValue::NULL, |t| (t as f64).into());
                        set(&event, "timestamp", &timestamp);
                        set(
                            &event,
                            "type",
                            &(if typed { kind } else { "unknown" }).into(),
                        );
                        events.push(&event);
                    }
                    let update = object();
                    set(&update, "events", &events);
                    set(&update, "offset", &b.next_offset.as_str().into());
                    set(&update, "type", &"events".into());
                    update
                }
                other => {
                    match other {
                        Output::UpToDate { .. } => view.borrow_mut().caught_up(),
                        Output::Reconnecting { .. } => view.borrow_mut().fell_behind(),
                        _ => {}
                    }
                    marker_of(other)
                }
            })
        })
    }

    /// The session view now: `{status: {state, ...}, view: {stages, turns, tools,
    /// files, errors, ...}}`; `status.state` is `"stalled"` when a running session
    /// has been silent longer than `stallAfterMs`.
    pub fn view(&self) -> JsValue {
        let now = Time::from_millis(js_sys::Date::now() as u64);
        from_json(&self.view.borrow().snapshot_json(now))
    }

    /// Stops reading and aborts the request in flight.
    pub fn close(&self) {
        self.feed.close();
    }
}
