//! The JavaScript producer: `new GaplessProducer(url, options)`, `append(value)`
//! resolving once the server has committed it; idempotent-producer headers make
//! retries after lost answers safe (exactly once).

use std::cell::RefCell;
use std::rc::Rc;
use std::time::Duration;

use gapless_core::producer::{Numbering, Verdict};
use gapless_core::resume::{Backoff, BackoffConfig};
use gapless_core::wire::AppendOutcome;
use wasm_bindgen::prelude::*;

use crate::error::{js_error, status_error, Code};
use crate::options;
use crate::sync::{race, FifoLock, First, Sleep};
use crate::transport::{head_of, text, Fetch};

/// How long a refused append waits for the body that explains it.
const ERROR_BODY_MS: u32 = 5_000;

/// The idempotent-producer numbers (the core's machine); appends take turns
/// (`lock`), one at a time.
struct State {
    lock: FifoLock,
    numbers: RefCell<Numbering>,
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

/// Retries of one append before it fails with `OUTCOME_UNKNOWN`: at the back-off's
/// pace (from 0.1 s, at least half of a ceiling that grows to 5 s) about two minutes
/// when each try is answered at once (a count, not a time: one that waits for its
/// answer adds up to [`ANSWER_TIMEOUT_MS`]), as the native producer's default, so that a server's restart or a minute offline
/// is waited out (fetch cannot tell a connection never made from an answer lost, so
/// each failed try counts as perhaps stored).
const MAX_RETRIES: u32 = 40;

/// How long an append's attempt waits for its answer (the native client's request
/// time-out).
const ANSWER_TIMEOUT_MS: u32 = 30_000;

#[wasm_bindgen]
impl GaplessProducer {
    /// A producer on `url` with `{producerId?, contentType?, headers?}`; the content
    /// type defaults to `application/json`, the id to a random one.
    #[wasm_bindgen(constructor)]
    pub fn new(url: &str, options: JsValue) -> Result<GaplessProducer, JsValue> {
        options::check_url(url)?;
        let id = options::string(&options, "producerId")
            .unwrap_or_else(|| format!("browser-{}", (js_sys::Math::random() * 1e15) as u64));
        if id.is_empty() {
            return Err(js_error(
                Code::InvalidArgument,
                "producerId must not be empty",
                None,
            ));
        }
        let content_type =
            options::string(&options, "contentType").unwrap_or_else(|| "application/json".into());
        options::check_header("Content-Type", &content_type)?;
        options::check_header("Producer-Id", &id)?;
        Ok(GaplessProducer {
            url: url.to_owned(),
            id,
            content_type,
            headers: options::headers(&options)?,
            // A fresh epoch per producer object fences any earlier one with this id.
            state: Rc::new(State {
                lock: FifoLock::default(),
                numbers: RefCell::new(Numbering::new(js_sys::Date::now() as u64)),
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
            if state.numbers.borrow().fenced().is_some() {
                return Err(js_error(Code::Fenced, "fenced by a newer epoch", Some(403)));
            }
            state.numbers.borrow_mut().begin();
            let mut retries = 0;
            // Jittered, so that pages that failed together do not retry in step.
            let mut backoff = Backoff::new(
                BackoffConfig {
                    initial: Duration::from_millis(100),
                    factor: 2.0,
                    max: Duration::from_secs(5),
                },
                (js_sys::Math::random() * (u64::MAX as f64)) as u64,
            );
            // The server's `Retry-After` (ms), the least the next pause lasts.
            let mut asked_to_wait = 0u32;
            loop {
                let (epoch, seq) = state.numbers.borrow().numbers();
                let mut all = headers.clone();
                all.push(("Content-Type".into(), ct.clone()));
                all.push(("Producer-Id".into(), id.clone()));
                all.push(("Producer-Epoch".into(), epoch.to_string()));
                all.push(("Producer-Seq".into(), seq.to_string()));
                let fetch = Fetch::new();
                let sent = Box::pin(fetch.send("POST", &url, &all, Some(body.clone())));
                // An answer that never comes (a half-open connection) is an answer
                // lost: the fetch is aborted and the append tried again, rather than
                // holding every later append behind it.
                let answer = match race(sent, Sleep::new(ANSWER_TIMEOUT_MS)).await {
                    First::Left(answer) => answer,
                    First::Right(()) => Err("no answer in time".to_owned()),
                };
                match answer {
                    Err(_) => state.numbers.borrow_mut().unanswered(),
                    Ok(r) => {
                        let Ok(outcome) = AppendOutcome::of(&head_of(&r), true) else {
                            state.numbers.borrow_mut().give_up();
                            return Err(js_error(
                                Code::OutcomeUnknown,
                                "unreadable answer",
                                Some(r.status()),
                            ));
                        };
                        let verdict = state.numbers.borrow_mut().answer(&outcome, true);
                        match verdict {
                            Verdict::Stored { .. } => {
                                return Ok(match outcome {
                                    AppendOutcome::Accepted {
                                        next_offset: Some(o),
                                    }
                                    | AppendOutcome::Duplicate {
                                        next_offset: Some(o),
                                    } => JsValue::from(o.as_str()),
                                    _ => JsValue::NULL,
                                });
                            }
                            Verdict::Resend => continue,
                            Verdict::Retry => {
                                if let AppendOutcome::Retry {
                                    retry_after: Some(after),
                                } = outcome
                                {
                                    // Up to a minute: a server asking for a
                                    // year does not stall the producer for one.
                                    asked_to_wait = after.as_millis().min(60_000) as u32;
                                }
                            }
                            Verdict::Fenced { .. } => {
                                return Err(js_error(
                                    Code::Fenced,
                                    "fenced by a newer epoch",
                                    Some(403),
                                ))
                            }
                            Verdict::FencedUnsure { .. } => {
                                return Err(js_error(
                                    Code::OutcomeUnknown,
                                    "fenced after a lost answer",
                                    Some(403),
                                ))
                            }
                            Verdict::RefusedUnsure => {
                                return Err(js_error(
                                    Code::OutcomeUnknown,
                                    "retry refused after a lost answer",
                                    Some(r.status()),
                                ))
                            }
                            Verdict::Taken => {
                                return Err(js_error(
                                    Code::Fenced,
                                    "numbers used by another writer",
                                    None,
                                ))
                            }
                            Verdict::Refused if matches!(outcome, AppendOutcome::Closed { .. }) => {
                                return Err(js_error(
                                    Code::Closed,
                                    "the stream is closed",
                                    Some(409),
                                ));
                            }
                            Verdict::Refused => {
                                // The server's explanation, if it comes soon: a body
                                // that does not would hold every later append.
                                let why = match race(Box::pin(text(&r)), Sleep::new(ERROR_BODY_MS))
                                    .await
                                {
                                    First::Left(why) => why,
                                    First::Right(()) => String::new(),
                                };
                                return Err(status_error(r.status(), &why));
                            }
                        }
                    }
                }
                retries += 1;
                if retries > MAX_RETRIES {
                    state.numbers.borrow_mut().give_up();
                    return Err(js_error(
                        Code::OutcomeUnknown,
                        "no answer after retries",
                        None,
                    ));
                }
                let pause = backoff.next_delay_at_least_half(None).as_millis() as u32;
                Sleep::new(pause.max(std::mem::take(&mut asked_to_wait))).await;
            }
        })
    }
}
