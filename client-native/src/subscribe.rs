//! The tokio driver of [`gapless_core::Resume`]: makes the requests the machine asks
//! for, feeds it what comes back, sleeps when it says so, and hands its outputs to a
//! [`Subscription`] stream.

use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use futures::Stream;
use gapless_core::resume::{
    Batch, Config, LiveMode, Output, ReqId, Request, Resume, TransportError,
};
use gapless_core::{Offset, Time};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tracing::{debug, trace};

use crate::client::{head_of, StreamHandle};
use crate::Error;

/// What a subscription yields.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub enum Update {
    /// Messages (JSON mode) or bytes, each batch with the offset after it: persist it
    /// to resume exactly there.
    Batch(Batch),
    /// The reader has reached the tail (emitted once each time it catches up).
    UpToDate {
        /// The tail offset.
        offset: Offset,
    },
    /// The stream is closed and everything was delivered; the subscription ends.
    Closed {
        /// The final offset.
        offset: Offset,
    },
    /// A read failed (the connection, a time-out, a status worth retrying such as 503);
    /// the subscription will read again from the last delivered offset after a
    /// backoff. Informational (for showing connection state): nothing is lost or
    /// repeated. Sent only when the consumer keeps up.
    Reconnecting {
        /// What failed.
        reason: String,
    },
}

/// A live read of one stream: history from an offset, then the live tail, without gap
/// or duplicate across reconnects.
///
/// It is a [`Stream`] of [`Update`]s. It ends after [`Update::Closed`], or after an
/// error: [`Error::ContinuityLost`] (the offset is gone, or the stream was made anew;
/// refetch), or a fatal
/// error (not found, auth, protocol). Transport failures are not errors: the
/// subscription reconnects from the last delivered offset with full-jitter backoff.
/// Dropping it cancels the request in flight.
#[derive(Debug)]
pub struct Subscription {
    rx: mpsc::Receiver<Result<Update, Error>>,
    task: JoinHandle<()>,
}

impl Drop for Subscription {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Stream for Subscription {
    type Item = Result<Update, Error>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.rx.poll_recv(cx)
    }
}

/// Updates buffered between the driver and a slow consumer before the driver waits.
const BUFFER: usize = 16;

impl Subscription {
    pub(crate) fn new(stream: StreamHandle, from: Offset, live: LiveMode) -> Subscription {
        let seed = RandomState::new().build_hasher().finish();
        let cfg = Config::new(stream.url.clone()).live(live).jitter_seed(seed);
        let (tx, rx) = mpsc::channel(BUFFER);
        let task = tokio::spawn(drive(stream, Resume::new(cfg, from), tx));
        Subscription { rx, task }
    }
}

/// The driver's clock: milliseconds since it started.
struct Clock(Instant);

impl Clock {
    fn now(&self) -> Time {
        Time::from_millis(self.0.elapsed().as_millis() as u64)
    }

    fn instant(&self, t: Time) -> Instant {
        self.0 + Duration::from_millis(t.as_millis())
    }
}

/// Sends the machine's outputs; `false` once the subscription is over (a final
/// output, or the consumer went away).
async fn forward(machine: &mut Resume, tx: &mpsc::Sender<Result<Update, Error>>) -> bool {
    while let Some(out) = machine.poll_output() {
        let (item, last) = match out {
            Output::Batch(b) => (Ok(Update::Batch(b)), false),
            Output::UpToDate { offset } => (Ok(Update::UpToDate { offset }), false),
            Output::Closed { offset } => (Ok(Update::Closed { offset }), true),
            Output::ContinuityLost { offset, .. } => (Err(Error::ContinuityLost { offset }), true),
            Output::Failed(e) => (Err(e.into()), true),
            Output::Reconnecting { cause, .. } => {
                // Informational: not worth holding data back for a slow consumer.
                let reason = cause.to_string();
                let _ = tx.try_send(Ok(Update::Reconnecting { reason }));
                continue;
            }
            _ => continue,
        };
        if tx.send(item).await.is_err() || last {
            return false;
        }
    }
    !machine.is_finished()
}

async fn drive(stream: StreamHandle, mut machine: Resume, tx: mpsc::Sender<Result<Update, Error>>) {
    if let Err(e) = stream.check_url() {
        let _ = tx.send(Err(e)).await;
        return;
    }
    let clock = Clock(Instant::now());
    loop {
        if !forward(&mut machine, &tx).await {
            return;
        }
        if let Some(req) = machine.poll_request() {
            if let Err(e) = perform(&stream, &mut machine, &clock, req, &tx).await {
                let _ = tx.send(Err(e)).await;
                return;
            }
            continue;
        }
        match machine.poll_timeout() {
            Some(t) => {
                tokio::time::sleep_until(clock.instant(t)).await;
                machine.handle_timeout(clock.now());
            }
            None => return,
        }
    }
}

/// Runs one request to its end (or until the machine abandons it), feeding every
/// event to the machine and forwarding outputs as they appear. An error: the
/// request cannot be built (a header value from the client's settings that is not
/// one), which no retry would mend.
async fn perform(
    stream: &StreamHandle,
    machine: &mut Resume,
    clock: &Clock,
    req: Request,
    tx: &mpsc::Sender<Result<Update, Error>>,
) -> Result<(), Error> {
    let id = req.id;
    trace!(url = %req.url, "request");
    let mut builder = stream.client.dynamic.apply(
        stream
            .client
            .http
            .get(&req.url)
            .headers(stream.client.headers.clone()),
    );
    for (name, value) in &req.headers {
        builder = builder.header(*name, value.as_str());
    }
    machine.handle_sent(clock.now(), id);
    let sent = builder.send();
    tokio::pin!(sent);
    let response = loop {
        let deadline = machine.poll_timeout().map(|t| clock.instant(t));
        tokio::select! {
            r = &mut sent => break r,
            () = sleep_opt(deadline) => {
                machine.handle_timeout(clock.now());
                if !still(machine, id) {
                    return Ok(());
                }
            }
        }
    };
    let mut response = match response {
        Ok(r) => r,
        Err(e) if e.is_builder() => return Err(Error::Transport(e)),
        Err(e) => {
            debug!("request failed: {e}");
            machine.handle_failure(clock.now(), id, transport_error(&e));
            return Ok(());
        }
    };
    machine.handle_response(clock.now(), id, head_of(&response));
    loop {
        if !forward(machine, tx).await || !still(machine, id) {
            return Ok(());
        }
        let deadline = machine.poll_timeout().map(|t| clock.instant(t));
        tokio::select! {
            // A chunk that is there first: a consumer slow to take the last ones may
            // have let the idle deadline pass while the connection was working.
            biased;
            chunk = response.chunk() => match chunk {
                Ok(Some(bytes)) => machine.handle_body(clock.now(), id, &bytes),
                Ok(None) => {
                    machine.handle_end(clock.now(), id);
                    return Ok(());
                }
                Err(e) => {
                    debug!("response body failed: {e}");
                    machine.handle_failure(clock.now(), id, transport_error(&e));
                    return Ok(());
                }
            },
            () = sleep_opt(deadline) => machine.handle_timeout(clock.now()),
        }
    }
}

fn still(machine: &Resume, id: ReqId) -> bool {
    machine.in_flight() == Some(id)
}

async fn sleep_opt(deadline: Option<Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d).await,
        None => futures::future::pending().await,
    }
}

fn transport_error(e: &reqwest::Error) -> TransportError {
    if e.is_timeout() {
        TransportError::TimedOut
    } else if e.is_connect() {
        TransportError::Connect(e.to_string())
    } else {
        TransportError::Io(e.to_string())
    }
}
