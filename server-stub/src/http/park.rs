//! Parked subscribers: a lean connection whose live SSE response has nothing to send
//! gives up its task and waits here — its socket (taken off the reactor), its feed and
//! what the connection needs to go on, a few hundred bytes in all — until its stream
//! changes, its feed is due (keep-alive, end of the connection's time) or the server
//! stops. One watcher task per stream with parked subscribers then writes what each
//! sends next straight to its socket, where that needs no storage read and the socket
//! takes it at once; the others it resumes, each in a task of its own.

use std::collections::HashMap;
use std::io::{self, Write};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use axum::Router;
use tokio::net::TcpStream;
use tokio::sync::Notify;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::debug;

use super::accept::{resume, PendingChunk};
use super::direct::Direct;
use super::sse::{Feed, SharedPiece, Step};
use crate::store::Live;

/// What a connection needs to go on serving requests after a response.
pub(crate) struct Conn {
    /// The router requests go through.
    pub(crate) app: Router,
    /// Stream requests answered without the router.
    pub(crate) direct: Arc<Direct>,
    /// Cancelled when the server stops.
    pub(crate) token: CancellationToken,
    /// Tracks the connection's tasks, for the drain at shutdown.
    pub(crate) tracker: TaskTracker,
    /// Where idle subscribers wait.
    pub(crate) lots: Arc<Lots>,
}

/// A connection whose live response is idle.
pub(crate) struct Parked {
    /// The connection, taken off the reactor while it waits: a parked subscriber
    /// keeps no registration (nor its readiness state) with it.
    pub(crate) stream: std::net::TcpStream,
    /// The response's feed.
    pub(crate) feed: Box<dyn Feed>,
    /// The connection closes after this response.
    pub(crate) close: bool,
    /// What it needs to go on.
    pub(crate) conn: Conn,
}

/// The subscribers parked on one stream.
struct Lot {
    live: Arc<Live>,
    state: Mutex<LotState>,
    /// Tells the watcher that a subscriber was parked.
    parked_one: Notify,
}

struct LotState {
    parked: Vec<Parked>,
    /// A watcher task runs for this lot.
    watched: bool,
    /// When the watcher wakes next if nothing is committed.
    wakes_at: Option<Instant>,
}

impl Lot {
    fn state(&self) -> MutexGuard<'_, LotState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Every stream's parked subscribers.
#[derive(Default)]
pub(crate) struct Lots(Mutex<HashMap<usize, Arc<Lot>>>);

impl Lots {
    fn map(&self) -> MutexGuard<'_, HashMap<usize, Arc<Lot>>> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// The key of a stream's lot: its `Live`, by address (the lot holds it, so the
/// address stays its own while the lot exists).
fn key(live: &Arc<Live>) -> usize {
    Arc::as_ptr(live) as usize
}

/// Parks a connection until its feed has something to do; then its stream's watcher
/// writes to it in place, or resumes it in a task of its own (see [`deliver`]).
pub(crate) fn park(stream: TcpStream, feed: Box<dyn Feed>, close: bool, conn: Conn) {
    let stream = match stream.into_std() {
        Ok(stream) => stream,
        Err(e) => {
            debug!("cannot park a connection: {e}");
            return;
        }
    };
    repark(Parked {
        stream,
        feed,
        close,
        conn,
    });
}

/// Puts a parked connection in its stream's lot, and starts the lot's watcher unless
/// one runs.
fn repark(parked: Parked) {
    let lots = Arc::clone(&parked.conn.lots);
    let live = Arc::clone(parked.feed.live());
    let token = parked.conn.token.clone();
    let tracker = parked.conn.tracker.clone();
    let lot = Arc::clone(lots.map().entry(key(&live)).or_insert_with(|| {
        Arc::new(Lot {
            live,
            state: Mutex::new(LotState {
                parked: Vec::new(),
                watched: false,
                wakes_at: None,
            }),
            parked_one: Notify::new(),
        })
    }));
    let due = parked.feed.due();
    // Checked after it is in the lot: a commit from now on wakes the watcher, which
    // then finds it; one before, this finds.
    let mut state = lot.state();
    state.parked.push(parked);
    if !std::mem::replace(&mut state.watched, true) {
        drop(state);
        // Tracked with the connections: at shutdown, the drain waits for the watcher
        // to hand every feed on (to end its response).
        tracker.spawn(watch(lots, lot, token));
        return;
    }
    let poke = state.wakes_at.is_none_or(|at| due < at)
        || state
            .parked
            .last()
            .is_some_and(|p| p.feed.ready(&p.feed.stream_now(), Instant::now()));
    drop(state);
    if poke {
        lot.parked_one.notify_one();
    }
}

/// Resumes the lot's subscribers whenever they have something to do; ends when none
/// is left. What they send next is written in place where it can be (see
/// [`deliver`]); a subscriber that needs more goes on in a task of its own.
async fn watch(lots: Arc<Lots>, lot: Arc<Lot>, token: CancellationToken) {
    let mut changes = lot.live.subscribe();
    // Set once the stream's sender is gone: every feed then ends at its next step.
    let mut gone = false;
    loop {
        let now = Instant::now();
        let ready = {
            let mut state = lot.state();
            let stream = state.parked.first().map(|p| p.feed.stream_now());
            let (ready, waiting): (Vec<Parked>, Vec<Parked>) = std::mem::take(&mut state.parked)
                .into_iter()
                .partition(|p| gone || stream.as_ref().is_some_and(|s| p.feed.ready(s, now)));
            state.parked = waiting;
            ready
        };
        // The first batch here, the others in tasks of their own, which the other
        // workers take.
        let mut ready = ready.into_iter();
        let mut idle = deliver_all(ready.by_ref().take(DELIVER_BATCH));
        loop {
            let batch: Vec<Parked> = ready.by_ref().take(DELIVER_BATCH).collect();
            let Some(first) = batch.first() else {
                break;
            };
            first.conn.tracker.clone().spawn(async move {
                deliver_all(batch).into_iter().for_each(repark);
            });
        }
        let due = {
            let mut state = lot.state();
            state.parked.append(&mut idle);
            let due = state.parked.iter().map(|p| p.feed.due()).min();
            state.wakes_at = due;
            if due.is_none() {
                state.watched = false;
                let mut map = lots.map();
                if map
                    .get(&key(&lot.live))
                    .is_some_and(|l| Arc::ptr_eq(l, &lot))
                {
                    map.remove(&key(&lot.live));
                }
            }
            due
        };
        let Some(due) = due else {
            return;
        };
        tokio::select! {
            changed = changes.changed() => gone |= changed.is_err(),
            () = tokio::time::sleep_until(due) => {}
            () = lot.parked_one.notified() => {}
            // Every feed is ready once the server stops.
            () = token.cancelled() => {}
        }
    }
}

/// Most ready subscribers one task writes to in turn.
const DELIVER_BATCH: usize = 64;

/// Writes to each of `ready` in place what it sends next, resumes in tasks of their
/// own those that need more, and returns those that are idle again.
fn deliver_all(ready: impl IntoIterator<Item = Parked>) -> Vec<Parked> {
    let mut idle = Vec::new();
    // What the subscriber before framed: the next at the same place sends it as it is.
    let mut shared = None;
    for mut parked in ready {
        match deliver(&mut parked, &mut shared) {
            Delivered::Idle => idle.push(parked),
            Delivered::Resume(pending) => {
                let tracker = parked.conn.tracker.clone();
                tracker.spawn(resume(parked, pending));
            }
            Delivered::Failed => {}
        }
    }
    idle
}

/// What writing a ready subscriber's next pieces in place came to.
enum Delivered {
    /// All were written and the feed is idle again: it stays parked.
    Idle,
    /// It goes on in a task of its own (to read storage, to end its response, or to
    /// write the rest of a piece, given here, the socket did not take at once: the
    /// piece itself is shared, not copied, however long the socket takes).
    Resume(Option<PendingChunk>),
    /// The connection failed: it is dropped.
    Failed,
}

/// Writes what `parked` sends next while that needs no storage read and the socket
/// takes it at once: one system call per piece (the chunk's framing around it, in one
/// vectored write), where resuming it in a task would also put its socket back with
/// the reactor and take it off again. A piece the subscriber before framed, `shared`,
/// is sent as it is where it fits (see [`Feed::step_now`]). The socket is not read
/// here: a peer that left is noticed when a write fails (at the latest, the
/// keep-alive's), and anything it sent is read once the response is resumed.
fn deliver(parked: &mut Parked, shared: &mut Option<SharedPiece>) -> Delivered {
    loop {
        match parked.feed.step_now(shared) {
            // (An empty chunk would end the response: nothing to send is skipped.)
            Some(Step::Piece(piece)) if piece.is_empty() => {}
            Some(Step::Piece(mut pending)) => {
                let written = {
                    let (slices, n) = pending.slices();
                    (&parked.stream).write_vectored(&slices[..n])
                };
                match written {
                    Ok(n) => {
                        pending.advance(n);
                        if pending.slices().1 > 0 {
                            return Delivered::Resume(Some(pending));
                        }
                    }
                    Err(e)
                        if matches!(
                            e.kind(),
                            io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted
                        ) =>
                    {
                        return Delivered::Resume(Some(pending))
                    }
                    Err(_) => return Delivered::Failed,
                }
            }
            Some(Step::Idle) => return Delivered::Idle,
            Some(Step::End) | None => return Delivered::Resume(None),
        }
    }
}
