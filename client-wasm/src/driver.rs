//! The browser driver of [`gapless_core::Resume`]: the same loop as the native
//! client's — ask the machine for a request, run it with `fetch`, feed back the
//! status, headers, body chunks, failures and time — on the browser's event loop.

use std::future::{poll_fn, Future};
use std::pin::Pin;
use std::task::Poll;

use gapless_core::resume::{Config, LiveMode, Output, ReqId, Request, Resume, TransportError};
use gapless_core::{Offset, Time};

use crate::sync::{race, First, Sender, Sleep};
use crate::transport::{head_of, BodyReader, Fetch};

/// What the driver hands to the JavaScript side.
pub type Item = Output;

#[wasm_bindgen::prelude::wasm_bindgen]
extern "C" {
    /// `performance.now()`: monotonic, unlike `Date.now()`, whose jumps (the system
    /// clock set back or forward) would stall a back-off or abandon healthy requests.
    #[wasm_bindgen(js_namespace = performance, js_name = now)]
    fn monotonic_ms() -> f64;
}

/// The driver's clock: milliseconds since it started.
struct Clock(f64);

impl Clock {
    fn start() -> Clock {
        Clock(monotonic_ms())
    }

    fn now(&self) -> Time {
        Time::from_millis((monotonic_ms() - self.0).max(0.0) as u64)
    }

    /// Milliseconds from now until `t` (at least 0).
    fn until(&self, t: Time) -> u32 {
        t.as_millis()
            .saturating_sub(self.now().as_millis())
            .min(u64::from(u32::MAX)) as u32
    }
}

/// Starts the loop for `url` from `from`; outputs go to `tx` until a final one or the
/// receiver closes the channel, which also aborts the request in flight at once.
pub fn spawn(
    url: String,
    from: Offset,
    live: LiveMode,
    headers: Vec<(String, String)>,
    tx: Sender<Item>,
) {
    let seed = (js_sys::Math::random() * (u64::MAX as f64)) as u64;
    let machine = Resume::new(Config::new(url).live(live).jitter_seed(seed), from);
    wasm_bindgen_futures::spawn_local(drive(machine, headers, tx));
}

/// Ready when `timer` fires (`false`) or the receiver closes the channel (`true`).
fn timer_or_closed<'a>(
    mut timer: Sleep,
    tx: &'a Sender<Item>,
) -> impl Future<Output = bool> + Unpin + 'a {
    poll_fn(move |cx| {
        if tx.poll_closed(cx) {
            Poll::Ready(true)
        } else {
            Pin::new(&mut timer).poll(cx).map(|()| false)
        }
    })
}

/// Sends the machine's outputs; `false` once the subscription is over (or closed:
/// one closed as soon as it was made sends no request).
async fn forward(machine: &mut Resume, tx: &mut Sender<Item>) -> bool {
    while let Some(out) = machine.poll_output() {
        let last = matches!(
            out,
            Output::Closed { .. } | Output::ContinuityLost { .. } | Output::Failed(_)
        );
        if tx.send(out).await.is_err() || last {
            return false;
        }
    }
    !machine.is_finished() && !tx.is_closed()
}

async fn drive(mut machine: Resume, headers: Vec<(String, String)>, mut tx: Sender<Item>) {
    let clock = Clock::start();
    loop {
        if !forward(&mut machine, &mut tx).await {
            return;
        }
        if let Some(req) = machine.poll_request() {
            perform(&mut machine, &clock, req, &headers, &mut tx).await;
            continue;
        }
        match machine.poll_timeout() {
            Some(t) => {
                if timer_or_closed(Sleep::new(clock.until(t)), &tx).await {
                    return;
                }
                machine.handle_timeout(clock.now());
            }
            None => return,
        }
    }
}

fn still(machine: &Resume, id: ReqId) -> bool {
    machine.in_flight() == Some(id)
}

/// A timer for the machine's next deadline (or one that never fires).
fn deadline(machine: &Resume, clock: &Clock) -> Sleep {
    match machine.poll_timeout() {
        Some(t) => Sleep::new(clock.until(t)),
        None => Sleep::new(u32::MAX),
    }
}

async fn perform(
    machine: &mut Resume,
    clock: &Clock,
    req: Request,
    headers: &[(String, String)],
    tx: &mut Sender<Item>,
) {
    let id = req.id;
    let mut all: Vec<(String, String)> = headers.to_vec();
    all.extend(
        req.headers
            .iter()
            .map(|(k, v)| ((*k).to_owned(), v.clone())),
    );
    let fetch = Fetch::new();
    machine.handle_sent(clock.now(), id);
    let sent = Box::pin(fetch.send("GET", &req.url, &all, None));
    // Closed meanwhile: returning drops (aborts) the fetch.
    let response = match race(sent, timer_or_closed(deadline(machine, clock), tx)).await {
        First::Left(r) => r,
        First::Right(closed) => {
            if !closed {
                machine.handle_timeout(clock.now());
            }
            return;
        }
    };
    let response = match response {
        Ok(r) => r,
        Err(e) => {
            machine.handle_failure(clock.now(), id, TransportError::Io(e));
            return;
        }
    };
    machine.handle_response(clock.now(), id, head_of(&response));
    let body = BodyReader::new(&response);
    let mut read = Box::pin(body.read());
    loop {
        if !forward(machine, tx).await || !still(machine, id) {
            return;
        }
        match race(read.as_mut(), timer_or_closed(deadline(machine, clock), tx)).await {
            First::Left(Ok(Some(bytes))) => {
                machine.handle_body(clock.now(), id, &bytes);
                read = Box::pin(body.read());
            }
            First::Left(Ok(None)) => {
                machine.handle_end(clock.now(), id);
                return;
            }
            First::Left(Err(e)) => {
                machine.handle_failure(clock.now(), id, TransportError::Io(e));
                return;
            }
            First::Right(true) => return,
            // The pending read stays: its chunk is not lost if the machine goes on.
            First::Right(false) => machine.handle_timeout(clock.now()),
        }
    }
}
