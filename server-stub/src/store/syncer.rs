//! Making commits durable before anyone hears of them: SQLite commits without syncing
//! (`synchronous=NORMAL`), and what a commit would tell (its answers, and the tails it
//! publishes to readers) waits here until an `fdatasync` of the write-ahead log that
//! began after the commit has returned. One sync covers every commit made while the
//! one before it ran, so the writer keeps committing while the disk flushes, where a
//! `synchronous=FULL` commit would hold it for the flush.
//!
//! A commit made in its caller's thread while nothing waits here syncs in that thread
//! (see [`InPlace`]), once it has let go of the writer: a lone producer pays no
//! hand-off, and the writer is not held for the sync. A failed sync ends
//! writing: the commits it covered are in the log, perhaps durable, perhaps not, so
//! they are answered as of unknown outcome (neither acknowledged nor refused), nothing
//! more is committed after them, and the server reports itself unhealthy.

use std::fs::File;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::thread::JoinHandle;

use tracing::error;

use super::recent::Chunk;
use super::writer::Reply;
use super::{Shared, StreamMeta};

/// A change to what readers see, made once its commit is durable.
#[derive(Debug)]
pub(crate) enum Notice {
    /// A stream's new metadata and the chunks its commit added (readers woken).
    Publish(StreamMeta, Vec<Arc<Chunk>>),
    /// A stream's metadata where only where reads look changed (readers not woken).
    Refresh(StreamMeta),
    /// A stream that is gone, and the path it was published at.
    Unpublish(i64, Arc<str>),
}

/// What one commit tells once it is durable: its notices, then its answers.
#[derive(Default)]
pub(crate) struct Settled {
    pub(crate) notices: Vec<Notice>,
    pub(crate) replies: Vec<Reply>,
}

impl Settled {
    /// Makes the notices visible, then answers.
    pub(crate) fn deliver(self, shared: &Shared) {
        for notice in self.notices {
            match notice {
                Notice::Publish(meta, fresh) => shared.publish(meta, fresh),
                Notice::Refresh(meta) => shared.refresh(meta),
                Notice::Unpublish(id, path) => shared.unpublish(id, &path),
            }
        }
        for reply in self.replies {
            reply.send();
        }
    }

    /// Answers with a storage error; nothing becomes visible.
    fn fail(self, why: &str) {
        for reply in self.replies {
            reply.fail(why);
        }
    }
}

/// What the commits a failed sync covered, and all writes after them, are answered.
pub(crate) const SYNC_FAILED: &str = "the disk failed to sync the write-ahead log: \
    whether this write is durable is unknown, and the server has stopped writing \
    (restart it to recover)";

/// The thread that syncs the write-ahead log for commits made in the writer's thread.
#[derive(Debug)]
pub(crate) struct Syncer {
    /// The log, opened for syncs made in place only: a failed write-back is reported
    /// once to each open file, so that the syncer thread's own (opened apart) cannot
    /// take the report a sync made here must hear, nor this one the thread's.
    wal: Arc<File>,
    shared: Arc<Shared>,
    tx: Option<Sender<Settled>>,
    thread: Option<JoinHandle<()>>,
    /// Commits handed over, or made in place, and not yet delivered.
    pending: Arc<AtomicUsize>,
    /// Held while commits are delivered: a commit made in place takes it before it
    /// lets go of the writer, so that no later commit is told before it.
    turn: Arc<Mutex<()>>,
}

/// A commit made in its caller's thread while the syncer was idle, to be synced and
/// delivered there (see [`InPlace::finish`]).
pub(crate) struct InPlace {
    settled: Settled,
    wal: Arc<File>,
    shared: Arc<Shared>,
    pending: Arc<AtomicUsize>,
    turn: Arc<Mutex<()>>,
}

impl InPlace {
    /// The lock to hold from before the writer is let go until [`InPlace::finish`]
    /// returns (see [`lock_turn`]).
    pub(crate) fn turn(&self) -> Arc<Mutex<()>> {
        Arc::clone(&self.turn)
    }

    /// Syncs in this thread and delivers.
    pub(crate) fn finish(self) {
        let InPlace {
            settled,
            wal,
            shared,
            pending,
            turn: _,
        } = self;
        let synced = sync(&wal, &shared);
        deliver(vec![settled], synced, &shared);
        pending.fetch_sub(1, Ordering::AcqRel);
    }
}

/// Takes the turn to deliver commits, whatever a panic while delivering left.
pub(crate) fn lock_turn(turn: &Mutex<()>) -> MutexGuard<'_, ()> {
    turn.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Syncer {
    /// Starts the thread that syncs `wal` (the write-ahead log) for commits and then
    /// delivers them to `shared`; commits made in place sync `in_place` (the same log,
    /// opened apart: see [`Syncer`]'s field).
    pub(crate) fn start(wal: File, in_place: File, shared: Arc<Shared>) -> std::io::Result<Syncer> {
        let (tx, rx) = mpsc::channel();
        let pending = Arc::new(AtomicUsize::new(0));
        let turn = Arc::new(Mutex::new(()));
        let thread = {
            let (shared, pending, turn) =
                (Arc::clone(&shared), Arc::clone(&pending), Arc::clone(&turn));
            std::thread::Builder::new()
                .name("gapless-syncer".into())
                .spawn(move || run(&wal, &shared, &rx, &pending, &turn))?
        };
        Ok(Syncer {
            wal: Arc::new(in_place),
            shared,
            tx: Some(tx),
            thread: Some(thread),
            pending,
            turn,
        })
    }

    /// Whether no commit handed over waits to be delivered: a commit may then sync and
    /// deliver in its own thread without overtaking one.
    pub(crate) fn idle(&self) -> bool {
        self.pending.load(Ordering::Acquire) == 0
    }

    /// Hands a commit over, to be delivered after the next sync.
    pub(crate) fn settle(&self, settled: Settled) {
        self.pending.fetch_add(1, Ordering::AcqRel);
        let refused = match &self.tx {
            Some(tx) => tx.send(settled).err().map(|e| e.0),
            None => Some(settled),
        };
        if let Some(settled) = refused {
            // The thread is gone (it panicked): nothing committed will be told.
            error!("the syncer has stopped; writing stops");
            self.shared.sync_failed.store(true, Ordering::Release);
            self.pending.fetch_sub(1, Ordering::AcqRel);
            settled.fail(SYNC_FAILED);
        }
    }

    /// Keeps a commit made in the caller's thread (only while [`Syncer::idle`]), to be
    /// synced and delivered there: the syncer counts it as waiting until then.
    pub(crate) fn in_place(&self, settled: Settled) -> InPlace {
        self.pending.fetch_add(1, Ordering::AcqRel);
        InPlace {
            settled,
            wal: Arc::clone(&self.wal),
            shared: Arc::clone(&self.shared),
            pending: Arc::clone(&self.pending),
            turn: Arc::clone(&self.turn),
        }
    }

    /// Delivers what was handed over and stops the thread; returns once a commit made
    /// in place meanwhile is delivered too.
    pub(crate) fn finish(&mut self) {
        self.tx = None;
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
        drop(lock_turn(&self.turn));
    }
}

impl Drop for Syncer {
    fn drop(&mut self) {
        self.finish();
    }
}

/// Syncs the log, unless a sync failed before; a failure stops writing for good.
fn sync(wal: &File, shared: &Shared) -> Result<(), &'static str> {
    if let Some(why) = shared.write_failure() {
        return Err(why);
    }
    wal.sync_data().map_err(|e| {
        error!("fdatasync of the write-ahead log failed: {e}");
        shared.sync_failed.store(true, Ordering::Release);
        SYNC_FAILED
    })
}

/// Syncs once for everything handed over since the last sync, then delivers it in
/// commit order; until the writer's side of the channel is gone.
fn run(
    wal: &File,
    shared: &Shared,
    rx: &Receiver<Settled>,
    pending: &AtomicUsize,
    turn: &Mutex<()>,
) {
    while let Ok(first) = rx.recv() {
        let mut batch = vec![first];
        batch.extend(rx.try_iter());
        let n = batch.len();
        let synced = sync(wal, shared);
        let turn = lock_turn(turn);
        // A sync made in place meanwhile (which held the turn) may have failed where
        // this one did not: nothing after a failure is told as durable.
        let synced = synced.and_then(|()| shared.write_failure().map_or(Ok(()), Err));
        deliver(batch, synced, shared);
        drop(turn);
        pending.fetch_sub(n, Ordering::AcqRel);
    }
}

/// Delivers `batch` in order as `synced` says (told, or failed). A panic while
/// delivering (a bug) must not leave commits waiting for good: writing stops as after
/// a failed sync.
fn deliver(batch: Vec<Settled>, synced: Result<(), &'static str>, shared: &Shared) {
    let delivered = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        for settled in batch {
            match synced {
                Ok(()) => settled.deliver(shared),
                Err(why) => settled.fail(why),
            }
        }
    }));
    if delivered.is_err() {
        error!("a panic while delivering commits; writing stops");
        shared.sync_failed.store(true, Ordering::Release);
    }
}
