//! Making commits durable before anyone hears of them: SQLite commits without syncing
//! (`synchronous=NORMAL`), and what a commit would tell (its answers, and the tails it
//! publishes to readers) waits here until an `fdatasync` of the write-ahead log that
//! began after the commit has returned. One sync covers every commit made while the
//! one before it ran, so the writer keeps committing while the disk flushes, where a
//! `synchronous=FULL` commit would hold it for the flush.
//!
//! A commit made in its caller's thread while nothing waits here syncs in that thread
//! (see [`Syncer::settle_now`]): a lone producer pays no hand-off. A failed sync ends
//! writing: the commits it covered are in the log, perhaps durable, perhaps not, so
//! they are answered as of unknown outcome (neither acknowledged nor refused), nothing
//! more is committed after them, and the server reports itself unhealthy.

use std::fs::File;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::Arc;
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
    wal: Arc<File>,
    shared: Arc<Shared>,
    tx: Option<Sender<Settled>>,
    thread: Option<JoinHandle<()>>,
    /// Commits handed over and not yet delivered.
    pending: Arc<AtomicUsize>,
}

impl Syncer {
    /// Starts the thread that syncs `wal` (the write-ahead log) for commits and then
    /// delivers them to `shared`.
    pub(crate) fn start(wal: File, shared: Arc<Shared>) -> std::io::Result<Syncer> {
        let wal = Arc::new(wal);
        let (tx, rx) = mpsc::channel();
        let pending = Arc::new(AtomicUsize::new(0));
        let thread = {
            let (wal, shared, pending) =
                (Arc::clone(&wal), Arc::clone(&shared), Arc::clone(&pending));
            std::thread::Builder::new()
                .name("gapless-syncer".into())
                .spawn(move || run(&wal, &shared, &rx, &pending))?
        };
        Ok(Syncer {
            wal,
            shared,
            tx: Some(tx),
            thread: Some(thread),
            pending,
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

    /// Syncs in this thread and delivers (only while [`Syncer::idle`]).
    pub(crate) fn settle_now(&self, settled: Settled) {
        match sync(&self.wal, &self.shared) {
            Ok(()) => settled.deliver(&self.shared),
            Err(why) => settled.fail(why),
        }
    }

    /// Delivers what was handed over and stops the thread.
    pub(crate) fn finish(&mut self) {
        self.tx = None;
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
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
fn run(wal: &File, shared: &Shared, rx: &Receiver<Settled>, pending: &AtomicUsize) {
    while let Ok(first) = rx.recv() {
        let mut batch = vec![first];
        batch.extend(rx.try_iter());
        let n = batch.len();
        let synced = sync(wal, shared);
        // A panic while delivering (a bug) must not leave the writer waiting for this
        // thread: writing stops as after a failed sync.
        let delivered = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            for settled in batch {
                match synced {
                    Ok(()) => settled.deliver(shared),
                    Err(why) => settled.fail(why),
                }
            }
        }));
        if delivered.is_err() {
            error!("the syncer panicked while delivering commits; writing stops");
            shared.sync_failed.store(true, Ordering::Release);
        }
        pending.fetch_sub(n, Ordering::AcqRel);
    }
}
