//! The typed layer for agent sessions: session events decoded with the core's event
//! model, and a [`SessionView`] that is kept current while the subscription runs.

use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use futures::{Stream, StreamExt};
use gapless_core::event::Envelope;
use gapless_core::resume::{LiveMode, Payload};
use gapless_core::session::{SessionView, Status};
use gapless_core::{Offset, Time};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

use crate::client::StreamHandle;
use crate::subscribe::Update;
use crate::Error;

/// The wall clock as the session view reads it: milliseconds since the Unix epoch.
pub fn wall_clock() -> Time {
    Time::from_millis(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64),
    )
}

/// What a session subscription yields.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub enum SessionUpdate {
    /// Events, in order, with the offset after the last of them.
    Events {
        /// The events (unknown kinds arrive as `Event::Raw`, never dropped).
        events: Vec<Envelope>,
        /// Resume from here.
        next_offset: Offset,
    },
    /// History is fully read; what follows is live.
    UpToDate,
    /// The session's stream was closed.
    Closed,
    /// A read failed and is made again from the last offset after a back-off (see
    /// [`Update::Reconnecting`]). Informational; sent only when the consumer keeps up.
    Reconnecting {
        /// What failed.
        reason: String,
    },
}

/// A read of one session's events, with a live [`SessionView`].
#[derive(Debug)]
pub struct SessionSubscription {
    rx: mpsc::Receiver<Result<SessionUpdate, Error>>,
    view: watch::Receiver<SessionView>,
    /// Where the read tells why it stopped once nobody takes its updates.
    failure: Arc<Mutex<Option<Arc<Error>>>>,
    task: Reading,
}

/// The task that reads a session, stopped when dropped (with the subscription, or
/// the watch [`SessionSubscription::into_view`] hands it to).
#[derive(Debug)]
struct Reading(JoinHandle<()>);

impl Drop for Reading {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// A session's [`SessionView`] kept current by a read of its stream for the view
/// alone (see [`SessionSubscription::into_view`]); dropping it stops the read.
#[derive(Debug)]
pub struct SessionWatch {
    view: watch::Receiver<SessionView>,
    failure: Arc<Mutex<Option<Arc<Error>>>>,
    _task: Reading,
}

impl SessionWatch {
    /// A watch on the session view; it changes with every batch read.
    pub fn view(&self) -> watch::Receiver<SessionView> {
        self.view.clone()
    }

    /// The status right now, stall check included.
    pub fn status(&self) -> Status {
        self.view.borrow().status(wall_clock())
    }

    /// Why the read stopped for good, if it did (the stream gone, credentials
    /// refused, its data gone): the view then changes no more.
    pub fn failure(&self) -> Option<Arc<Error>> {
        self.failure.lock().map_or(None, |failure| failure.clone())
    }
}

impl Stream for SessionSubscription {
    type Item = Result<SessionUpdate, Error>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.rx.poll_recv(cx)
    }
}

impl SessionSubscription {
    pub(crate) fn new(
        stream: &StreamHandle,
        from: Offset,
        live: LiveMode,
        stall_after: Duration,
    ) -> Self {
        let mut inner = stream.subscribe_with(from, live);
        let (view_tx, view) = watch::channel(SessionView::new(stall_after));
        let (tx, rx) = mpsc::channel(16);
        let failure = Arc::new(Mutex::new(None));
        let failed = Arc::clone(&failure);
        let task = tokio::spawn(async move {
            // Once nobody takes the updates (see `into_view`), reading goes on for the
            // view alone.
            let mut detached = false;
            while let Some(item) = inner.next().await {
                let out = match item {
                    Ok(Update::Batch(batch)) => {
                        let Some(events) = decode(&batch.payload) else {
                            // Not a session stream: said once (to a watch of the view
                            // alone too), and the reading ends.
                            let wrong = || {
                                Error::Protocol(
                                    "a session stream must be a JSON stream (application/json)"
                                        .into(),
                                )
                            };
                            if let Ok(mut failure) = failed.lock() {
                                *failure = Some(Arc::new(wrong()));
                            }
                            if !detached {
                                let _ = tx.send(Err(wrong())).await;
                            }
                            return;
                        };
                        view_tx.send_modify(|v| {
                            let now = wall_clock();
                            for e in &events {
                                v.apply(e, now);
                            }
                        });
                        Ok(SessionUpdate::Events {
                            events,
                            next_offset: batch.next_offset,
                        })
                    }
                    Ok(Update::UpToDate { .. }) => {
                        view_tx.send_modify(SessionView::caught_up);
                        Ok(SessionUpdate::UpToDate)
                    }
                    Ok(Update::Closed { .. }) => Ok(SessionUpdate::Closed),
                    Ok(Update::Reconnecting { reason }) => {
                        view_tx.send_modify(SessionView::fell_behind);
                        let _ = tx.try_send(Ok(SessionUpdate::Reconnecting { reason }));
                        continue;
                    }
                    Err(e) => Err(e),
                };
                let out = match (detached, out) {
                    (false, out) => match tx.send(out).await {
                        Ok(()) => continue,
                        Err(unsent) => unsent.0,
                    },
                    (true, out) => out,
                };
                detached = true;
                if let (Err(e), Ok(mut failure)) = (out, failed.lock()) {
                    *failure = Some(Arc::new(e));
                }
            }
        });
        SessionSubscription {
            rx,
            view,
            failure,
            task: Reading(task),
        }
    }

    /// A watch on the session view; it changes with every batch read. Reading waits
    /// while 16 updates are not taken from this stream: to watch the view alone, use
    /// [`SessionSubscription::into_view`].
    pub fn view(&self) -> watch::Receiver<SessionView> {
        self.view.clone()
    }

    /// Gives up the updates and keeps the view current on its own: the read goes on
    /// for the view alone, as long as the returned watch lives.
    pub fn into_view(self) -> SessionWatch {
        SessionWatch {
            view: self.view,
            failure: self.failure,
            _task: self.task,
        }
    }

    /// The status right now, stall check included.
    pub fn status(&self) -> Status {
        self.view.borrow().status(wall_clock())
    }
}

/// Decodes a batch of JSON messages into envelopes; a message that is not an
/// envelope is kept as a raw event of kind `gapless:not-an-envelope`, never dropped.
/// `None` for a batch of bytes: the stream is not a session's.
fn decode(payload: &Payload) -> Option<Vec<Envelope>> {
    match payload {
        Payload::Json(messages) => Some(
            messages
                .iter()
                .map(|m| {
                    Envelope::from_json(m.get()).unwrap_or_else(|e| {
                        tracing::warn!("a session message is not an event envelope: {e}");
                        let value =
                            serde_json::from_str(m.get()).unwrap_or(serde_json::Value::Null);
                        Envelope::new(gapless_core::event::Event::from_parts(
                            "gapless:not-an-envelope",
                            value,
                        ))
                    })
                })
                .collect(),
        ),
        Payload::Bytes(_) => None,
    }
}

/// Writes one session's events to its stream (`{server}/v1/stream/sessions/{id}`)
/// through an idempotent [`Producer`](crate::Producer): `send` returns once the
/// event is durable, `push` queues high-frequency events (token deltas) in order.
#[derive(Debug)]
pub struct SessionProducer {
    producer: crate::Producer,
    stream: StreamHandle,
}

impl SessionProducer {
    /// Opens (creating if needed) the session's stream on `server` and a producer on
    /// it named `producer_id`.
    pub async fn open(
        client: &crate::Client,
        server: &str,
        session_id: &str,
        producer_id: &str,
    ) -> Result<Self, Error> {
        let stream = client.stream(session_stream_url(server, session_id));
        stream
            .create(crate::CreateOptions {
                content_type: Some("application/json".into()),
                ..crate::CreateOptions::default()
            })
            .await?;
        let producer = stream.producer(crate::ProducerConfig::new(producer_id, "application/json"));
        Ok(SessionProducer { producer, stream })
    }

    /// Appends one event (stamped with the current time) and waits until it is durable.
    pub async fn send(&self, event: gapless_core::event::Event) -> Result<crate::Ack, Error> {
        self.producer.append_json(&stamp(event)).await
    }

    /// Queues one event (stamped now) without waiting for the server.
    pub async fn push(&self, event: gapless_core::event::Event) -> Result<(), Error> {
        self.producer.push_json(&stamp(event)).await
    }

    /// Waits until every queued event is durable.
    pub async fn flush(&self) -> Result<(), Error> {
        self.producer.flush().await
    }

    /// Flushes, then lets go of the producer. Dropping it instead leaves queued
    /// events unsent (see [`Producer`](crate::Producer)'s `Drop`).
    pub async fn close(self) -> Result<(), Error> {
        self.producer.close().await
    }

    /// The session's stream.
    pub fn stream(&self) -> &StreamHandle {
        &self.stream
    }
}

/// The stream URL of session `id` on a gapless server.
pub fn session_stream_url(server: &str, id: &str) -> String {
    format!("{}/v1/stream/sessions/{id}", server.trim_end_matches('/'))
}

fn stamp(event: gapless_core::event::Event) -> Envelope {
    Envelope::new(event).with_timestamp(wall_clock().as_millis())
}
