//! The single writer: validates every mutation against committed state, applies a
//! group of them in one SQLite transaction, and acknowledges each only after the
//! commit (once it is durable: see `syncer`). Offsets are assigned here, inside the
//! transaction, never by "read the max, then insert". Its state is behind one lock:
//! its thread commits what is sent to it, and a write alone in flight may commit in
//! its caller's thread while the writer is idle, so that a lone producer does not pay
//! two thread hand-offs per append.

use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use gapless_core::wire::headers::same_media_type;
use rusqlite::{params, Connection, OptionalExtension};
use tokio::sync::oneshot;
use tracing::{debug, error, warn};

use super::forks::Readers;
use super::meta::{now_ms, Inherited, Segment, StreamMeta};
use super::producers::Producers;
use super::recent::{self, Chunk};
use super::schema::{
    load_last_epoch, load_producers, load_streams, presize_wal, save_last_epoch, save_stream,
};
use super::syncer::{lock_turn, InPlace, Notice, Settled, Syncer};
use super::{
    AppendError, AppendOk, AppendReq, CreateError, CreateOk, CreateReq, DeleteError, Map, Payload,
    Shared,
};

/// Most commands one transaction takes.
const MAX_GROUP: usize = 512;
/// How often expired streams are swept.
const SWEEP_EVERY: Duration = Duration::from_secs(5);
/// Most expired streams one sweep removes: each costs some 10 µs of statements in
/// the transaction every append waiting then waits for (20,000 at once held appends
/// for about 200 ms). What is left is still expired to readers and writers, and is
/// removed by the sweeps that follow, [`SWEEP_AGAIN`] apart.
pub(crate) const SWEEP_REMOVALS: usize = 512;
/// How soon a sweep follows one that left expired streams behind.
const SWEEP_AGAIN: Duration = Duration::from_millis(10);
/// How long the writer thread must have committed nothing before a command may be
/// committed in its caller's thread again: writes that overlapped lately are likely
/// to go on overlapping, and are better grouped by the writer thread.
const QUIET_BEFORE_IN_PLACE: Duration = Duration::from_millis(1);
/// How many chunks may wait in `landed` before a commit moves them all into
/// `chunks`: sixteen streams appending together then write each stream's page of
/// `chunks` once per sixty-four appends, not once per append. Reads look through
/// `landed` (it has no index, which would scatter the writes again), so it stays
/// small.
pub(crate) const FOLD_ROWS: usize = 1024;
/// How many payload bytes may wait in `landed` before it is folded. Large appends
/// gain nothing from landing (each writes pages of its own), and a stream filled by
/// them would otherwise be read back through a long `landed`.
pub(crate) const FOLD_BYTES: usize = 4 << 20;

/// The largest chunk a fold makes by joining consecutive small chunks of a stream.
const JOINED_BYTES: usize = 64 * 1024;

/// A chunk in `landed`, as the writer keeps it for the fold: one stored in its row
/// with its bytes (to be joined with its neighbours), or one stored out of line.
#[derive(Clone, Debug)]
enum Kept {
    Inline(Arc<Chunk>),
    OutOfLine {
        start: u64,
        end: u64,
        blob: i64,
        bytes: usize,
    },
}

impl Kept {
    /// The positions the chunk holds.
    fn range(&self) -> std::ops::Range<u64> {
        match self {
            Kept::Inline(chunk) => chunk.start..chunk.end,
            Kept::OutOfLine { start, end, .. } => *start..*end,
        }
    }
}

/// What waits in `landed`.
#[derive(Clone, Copy, Debug, Default)]
struct Landed {
    rows: usize,
    bytes: usize,
}

impl Landed {
    fn full(&self) -> bool {
        self.rows >= FOLD_ROWS || self.bytes >= FOLD_BYTES
    }
}

/// A mutation sent to the writer, with where to send its outcome.
pub(crate) enum Cmd {
    Create(CreateReq, oneshot::Sender<Result<CreateOk, CreateError>>),
    Append(AppendReq, oneshot::Sender<Result<AppendOk, AppendError>>),
    Delete(String, oneshot::Sender<Result<(), DeleteError>>),
    /// Persists access times and stops.
    Shutdown(oneshot::Sender<()>),
}

/// An outcome waiting for its transaction to commit (and be synced).
pub(crate) enum Reply {
    Create(
        oneshot::Sender<Result<CreateOk, CreateError>>,
        Result<CreateOk, CreateError>,
    ),
    Append(
        oneshot::Sender<Result<AppendOk, AppendError>>,
        Result<AppendOk, AppendError>,
    ),
    Delete(
        oneshot::Sender<Result<(), DeleteError>>,
        Result<(), DeleteError>,
    ),
}

impl Reply {
    /// Sends the outcome.
    pub(crate) fn send(self) {
        // A receiver that went away (client disconnected) needs no answer.
        let _ = match self {
            Reply::Create(tx, r) => tx.send(r).map_err(drop),
            Reply::Append(tx, r) => tx.send(r).map_err(drop),
            Reply::Delete(tx, r) => tx.send(r).map_err(drop),
        };
    }

    /// Sends a storage error instead of the outcome.
    pub(crate) fn fail(self, why: &str) {
        match self {
            Reply::Create(tx, _) => {
                let _ = tx.send(Err(CreateError::Storage(why.to_owned())));
            }
            Reply::Append(tx, _) => {
                let _ = tx.send(Err(AppendError::Storage(why.to_owned())));
            }
            Reply::Delete(tx, _) => {
                let _ = tx.send(Err(DeleteError::Storage(why.to_owned())));
            }
        }
    }
}

/// The writer's authoritative state.
pub(crate) struct Writer {
    conn: Arc<Mutex<Connection>>,
    shared: Arc<Shared>,
    metas: Map<i64, StreamMeta>,
    paths: Map<Arc<str>, i64>,
    producers: Producers,
    /// Who reads from which stream (forks), kept with `metas`.
    readers: Readers,
    next_id: i64,
    /// The highest epoch issued (see [`StreamMeta::epoch`]).
    last_epoch: u64,
    /// Originals of what the current group touched, to restore if it fails.
    undo_metas: Map<i64, Option<StreamMeta>>,
    undo_producers: Map<(i64, String), Option<(u64, u64)>>,
    /// The owners the current group's changes to `paths` replaced, to restore exactly
    /// (a path a soft-deleted stream shares with its live successor stays the
    /// successor's).
    undo_paths: Map<Arc<str>, Option<i64>>,
    /// Chunks the group in progress added, per stream, for the readers' memory.
    fresh: Map<i64, Vec<Arc<Chunk>>>,
    /// The chunks landed since the last fold (in `landed`, or in `landing` until the
    /// group's end), per stream in order, for the fold to write from memory instead
    /// of reading them back (each at most `INLINE_BYTES`, or a blob's id). Always some
    /// of them: all, unless a rollback emptied it (what the failed group kept is not
    /// in `landed`); until the next fold, which then reads `landed`. Whatever reads
    /// `landed` or deletes from it comes after `landing` is inserted.
    kept: Map<i64, Vec<Kept>>,
    /// The rows the group in progress lands, in order, inserted into `landed` together
    /// (see [`insert_landed`]) at its end, or before a command that reads or deletes
    /// what landed.
    landing: Vec<(i64, Kept)>,
    /// What the group in progress will change for readers once it is durable.
    outbox: Vec<Notice>,
    /// Syncs the log before commits are told, when commits do not sync themselves.
    syncer: Option<Syncer>,
    /// A commit made in its caller's thread, which syncs and tells it once it has let
    /// go of the writer (see [`Writer::commit_now`]).
    in_place: Option<InPlace>,
    /// Shut down: commits made in place are refused from then on.
    stopped: bool,
    /// The writer thread has begun (and lengthened the log): no commit is made in
    /// place before, so that the first commits find the log at its length.
    started: bool,
    /// How many commands the last commit took.
    last_group: usize,
    /// When the writer thread last committed commands (not a lone sweep).
    thread_committed: Option<std::time::Instant>,
    /// The expired streams the last sweep left (past [`SWEEP_REMOVALS`]).
    sweep_left: Vec<i64>,
    /// Tests hold the writer thread's own sweeps, to sweep when they choose.
    #[cfg(test)]
    pub(super) sweeps_held: bool,
    /// What waits in `landed`: with the group in progress, and as last committed.
    landed: Landed,
    landed_committed: Landed,
    /// A group's transaction is open or failed: until its commit succeeds, a panic
    /// rolls it back and restores the state from before it.
    unsettled: bool,
    /// Tests: the next group fails after its commands are applied, as a storage
    /// error would make it.
    #[cfg(test)]
    pub(super) fail_next_group: bool,
    /// Tests: whether the connection was out of any transaction when a failed group
    /// let it go (what a reader sharing it, in memory, would have found).
    #[cfg(test)]
    pub(super) let_go_out_of_transaction: Option<bool>,
    /// Tests: the next insertion of landed rows fails, as a storage error would make
    /// it.
    #[cfg(test)]
    pub(super) fail_next_landing: bool,
    /// Tests: the next commit made in place says so through the first, then waits for
    /// the second before it syncs (the writer let go already).
    #[cfg(test)]
    pub(super) hold_in_place: Option<(std::sync::mpsc::Sender<()>, std::sync::mpsc::Receiver<()>)>,
}

impl std::fmt::Debug for Writer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Writer")
            .field("streams", &self.metas.len())
            .field("stopped", &self.stopped)
            .finish_non_exhaustive()
    }
}

impl Writer {
    /// Loads the committed state and publishes it to readers.
    pub(crate) fn load(
        conn: Arc<Mutex<Connection>>,
        shared: Arc<Shared>,
    ) -> rusqlite::Result<Writer> {
        let (metas, producers) = {
            let c = conn.lock().unwrap_or_else(|p| p.into_inner());
            // Room for the statements of every kind of group (the default holds 16),
            // those landing rows among them (see `LANDED_PER_INSERT`).
            c.set_prepared_statement_cache_capacity(32);
            // What landed before a stop is folded now, so that every stream's tail is
            // found at the end of `chunks`.
            run_cached(&c, "BEGIN IMMEDIATE")?;
            fold(&c)?;
            run_cached(&c, "COMMIT")?;
            let mut metas = load_streams(&c)?;
            recover_tails(&c, &mut metas)?;
            grant_access_grace(&mut metas, now_ms());
            (metas, load_producers(&c)?)
        };
        // A path belongs to its live stream rather than to one kept (soft-deleted) for
        // its forks, and among those kept, to the latest made there (ids grow), as
        // before the stop; only the owner of a path is published there.
        let mut paths: Map<Arc<str>, i64> = Map::default();
        for meta in metas.values() {
            let owner = paths.entry(meta.path.clone()).or_insert(meta.id);
            let rank = |m: &StreamMeta| (!m.deleted, m.id);
            if metas.get(owner).is_some_and(|o| rank(meta) > rank(o)) {
                *owner = meta.id;
            }
        }
        let next_id = metas.keys().max().copied().unwrap_or(0) + 1;
        // Recorded, as deleted streams took theirs along.
        let last_epoch = metas
            .values()
            .map(|m| m.epoch)
            .max()
            .unwrap_or(0)
            .max(load_last_epoch(
                &conn.lock().unwrap_or_else(|p| p.into_inner()),
            )?);
        for meta in metas.values().filter(|m| owns_path(&paths, m)) {
            shared.publish(meta.clone(), Vec::new());
        }
        let readers = Readers::of(metas.values());
        Ok(Writer {
            conn,
            shared,
            metas,
            paths,
            readers,
            producers,
            next_id,
            last_epoch,
            undo_metas: Map::default(),
            undo_producers: Map::default(),
            undo_paths: Map::default(),
            fresh: Map::default(),
            kept: Map::default(),
            landing: Vec::new(),
            outbox: Vec::new(),
            syncer: None,
            in_place: None,
            stopped: false,
            started: false,
            last_group: 0,
            thread_committed: None,
            sweep_left: Vec::new(),
            #[cfg(test)]
            sweeps_held: false,
            landed: Landed::default(),
            landed_committed: Landed::default(),
            unsettled: false,
            #[cfg(test)]
            fail_next_group: false,
            #[cfg(test)]
            let_go_out_of_transaction: None,
            #[cfg(test)]
            fail_next_landing: false,
            #[cfg(test)]
            hold_in_place: None,
        })
    }

    /// Has `syncer` sync the log before each commit is told (see [`Syncer`]).
    pub(crate) fn sync_with(&mut self, syncer: Syncer) {
        self.syncer = Some(syncer);
    }

    /// Runs until every sender is gone or a shutdown command arrives, committing what
    /// is sent through `rx` (commits made in place, see [`Writer::commit_now`], take
    /// turns with it through the lock).
    pub(crate) fn run(writer: Arc<Mutex<Writer>>, rx: Receiver<Cmd>) {
        {
            // Before any command: commits meanwhile wait for the lock, and none is
            // made in place until this is done (see `started`).
            let mut writer = writer.lock().unwrap_or_else(PoisonError::into_inner);
            {
                let conn = writer.conn.lock().unwrap_or_else(|p| p.into_inner());
                if let Err(e) = presize_wal(&conn) {
                    warn!("could not lengthen the write-ahead log in advance: {e}");
                }
            }
            writer.started = true;
        }
        let mut last_sweep = std::time::Instant::now();
        let mut sweep_every = SWEEP_EVERY;
        loop {
            let first = match rx.recv_timeout(sweep_every) {
                Ok(cmd) => Some(cmd),
                Err(RecvTimeoutError::Timeout) => None,
                Err(RecvTimeoutError::Disconnected) => break,
            };
            let mut group = Vec::new();
            let mut shutdown = None;
            if let Some(cmd) = first {
                group.push(cmd);
                while group.len() < MAX_GROUP {
                    match rx.try_recv() {
                        Ok(cmd) => group.push(cmd),
                        Err(_) => break,
                    }
                }
            }
            if let Some(pos) = group.iter().position(|c| matches!(c, Cmd::Shutdown(_))) {
                if let Cmd::Shutdown(tx) = group.remove(pos) {
                    shutdown = Some(tx);
                }
            }
            let sweep = last_sweep.elapsed() >= sweep_every || shutdown.is_some();
            if sweep {
                last_sweep = std::time::Instant::now();
            }
            if !group.is_empty() || sweep {
                let mut writer = writer.lock().unwrap_or_else(PoisonError::into_inner);
                #[cfg(test)]
                let sweep = sweep && (!writer.sweeps_held || shutdown.is_some());
                if shutdown.is_some() {
                    // The last sweep looks at every stream (it saves access times).
                    writer.sweep_left.clear();
                }
                let commands = !group.is_empty();
                writer.commit(group, sweep, false);
                if commands {
                    writer.thread_committed = Some(std::time::Instant::now());
                }
                // (After a failed sync nothing is committed, sweeps neither.)
                sweep_every =
                    if !writer.sweep_left.is_empty() && writer.shared.write_failure().is_none() {
                        SWEEP_AGAIN
                    } else {
                        SWEEP_EVERY
                    };
                if shutdown.is_some() {
                    writer.stopped = true;
                    // Every commit told before the shutdown is answered.
                    if let Some(syncer) = writer.syncer.as_mut() {
                        syncer.finish();
                    }
                }
            }
            if let Some(tx) = shutdown {
                let _ = tx.send(());
                break;
            }
        }
        debug!("writer stopped");
    }

    /// Whether an append alone in flight may be committed in its caller's thread now
    /// (see [`Writer::commit_now`]).
    pub(super) fn may_commit_in_place(&self) -> bool {
        !self.stopped
            && self.started
            && self.last_group <= 1
            && self
                .thread_committed
                .is_none_or(|at| at.elapsed() >= QUIET_BEFORE_IN_PLACE)
            && self.syncer.as_ref().is_none_or(Syncer::idle)
    }

    /// Commits `cmd` in the caller's thread, sparing it the hand-offs to the writer
    /// thread and back, when nothing else is being committed (the caller knows no
    /// other mutation is in flight), the last commit took one command too and the
    /// writer thread committed none for [`QUIET_BEFORE_IN_PLACE`] (so that writers
    /// that come in groups keep committing in groups, and a producer that happens to
    /// be alone for a moment among many does not hold a runtime thread for a sync);
    /// gives it back otherwise.
    ///
    /// The sync that makes the commit durable is made after the writer is let go: the
    /// writer thread commits what arrives meanwhile (an `fdatasync` takes far longer
    /// than a commit), and [`InPlace`] keeps it from being told before this one.
    pub(crate) fn commit_now(writer: &Mutex<Writer>, cmd: Cmd) -> Option<Cmd> {
        // Only an append, whose cost its own body bounds: a delete (or a create over
        // an expired stream, which deletes it) frees every page of the stream's data,
        // gigabytes perhaps, which would hold this runtime thread meanwhile.
        if !matches!(cmd, Cmd::Append(..)) {
            return Some(cmd);
        }
        let mut writer = match writer.try_lock() {
            Ok(writer) if writer.may_commit_in_place() => writer,
            _ => return Some(cmd),
        };
        writer.commit(vec![cmd], false, true);
        if let Some(in_place) = writer.in_place.take() {
            // The turn is taken before the writer is let go, so that no commit made
            // after this one is told before it.
            let turn = in_place.turn();
            let _turn = lock_turn(&turn);
            #[cfg(test)]
            let hold = writer.hold_in_place.take();
            drop(writer);
            #[cfg(test)]
            if let Some((reached, release)) = hold {
                let _ = reached.send(());
                let _ = release.recv();
            }
            in_place.finish();
        }
        None
    }

    /// Commits `group` (and sweeps), rolling back and answering with an error should
    /// a bug panic: it must cost one group its answers, not the server its writer.
    /// `inline`: in the caller's thread, which then syncs the log itself.
    pub(super) fn commit(&mut self, group: Vec<Cmd>, sweep: bool, inline: bool) {
        self.last_group = group.len();
        let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            self.commit_group(group, sweep, inline);
        }));
        if outcome.is_err() && self.unsettled {
            // (Its transaction was rolled back as the panic left it: see `Transaction`.)
            error!("the writer panicked; the group was rolled back");
            self.restore();
        } else if outcome.is_err() {
            // Committed before the panic: the state is the committed one already, and
            // restoring it would move tails back onto positions already written.
            error!("the writer panicked after a commit");
            self.undo_metas.clear();
            self.undo_producers.clear();
            self.undo_paths.clear();
            self.fresh.clear();
            self.outbox.clear();
        }
        self.unsettled = false;
    }

    fn commit_group(&mut self, group: Vec<Cmd>, sweep: bool, inline: bool) {
        // After a failed sync nothing may be committed.
        if let Some(why) = self.shared.write_failure() {
            for cmd in group {
                Self::reject(cmd, why);
            }
            return;
        }
        self.unsettled = true;
        // The group's sweep looks at the clock as it was before any of its commands:
        // a stream an append of the group found alive is not removed by the same
        // commit (which would acknowledge data already gone).
        let began = now_ms();
        let conn = Arc::clone(&self.conn);
        let mut conn = Transaction::new(conn.lock().unwrap_or_else(|p| p.into_inner()));
        if let Err(e) = run_cached(&conn, "BEGIN IMMEDIATE") {
            error!("cannot begin a transaction: {e}");
            for cmd in group {
                Self::reject(cmd, "storage unavailable");
            }
            return;
        }
        let mut replies = Vec::with_capacity(group.len());
        let mut failure: Option<String> = None;
        let mut cmds = group.into_iter();
        for cmd in cmds.by_ref() {
            // What lands waits for the end of the group, but for a command other
            // than an append: creating or deleting a stream may delete what landed.
            if !matches!(cmd, Cmd::Append(..)) {
                if let Err(e) = self.insert_landing(&conn) {
                    let why = e.to_string();
                    Self::reject(cmd, &why);
                    failure = Some(why);
                    break;
                }
            }
            let (reply, err) = match cmd {
                Cmd::Create(req, tx) => match self.try_create(&conn, req) {
                    Ok(r) => (Reply::Create(tx, r), None),
                    Err(e) => (
                        Reply::Create(tx, Err(CreateError::Storage(String::new()))),
                        Some(e),
                    ),
                },
                Cmd::Append(req, tx) => match self.try_append(&conn, req) {
                    Ok(r) => (Reply::Append(tx, r), None),
                    Err(e) => (
                        Reply::Append(tx, Err(AppendError::Storage(String::new()))),
                        Some(e),
                    ),
                },
                Cmd::Delete(path, tx) => match self.try_delete(&conn, &path) {
                    Ok(r) => (Reply::Delete(tx, r), None),
                    Err(e) => (
                        Reply::Delete(tx, Err(DeleteError::Storage(String::new()))),
                        Some(e),
                    ),
                },
                Cmd::Shutdown(_) => continue,
            };
            replies.push(reply);
            if let Some(e) = err {
                failure = Some(e.to_string());
                break;
            }
        }
        if failure.is_none() {
            if let Err(e) = self.insert_landing(&conn) {
                failure = Some(e.to_string());
            }
        }
        #[cfg(test)]
        if std::mem::take(&mut self.fail_next_group) {
            failure = Some("a failure injected by a test".into());
        }
        if failure.is_none() && sweep {
            if let Err(e) = self.sweep(&conn, began) {
                failure = Some(e.to_string());
            }
        }
        // Folded when enough has landed, and at each sweep (and so at shutdown).
        let mut folded = false;
        if failure.is_none() && (self.landed.full() || (sweep && self.landed.rows > 0)) {
            debug_assert!(self.landing.is_empty(), "folded before landing");
            // Some of `landed`'s chunks, as many as it holds: all of them.
            let kept = self.kept.values().map(Vec::len).sum::<usize>();
            let from_memory = kept == self.landed.rows;
            if !from_memory {
                debug!("folding what landed as stored (after a rollback)");
            }
            let moved = match from_memory {
                true => fold_kept(&conn, &self.kept),
                false => fold(&conn),
            };
            match moved {
                Ok(()) => folded = true,
                Err(e) => failure = Some(e.to_string()),
            }
        }
        conn.committed = match failure {
            None => match run_cached(&conn, "COMMIT") {
                Ok(()) => true,
                Err(e) => {
                    failure = Some(e.to_string());
                    false
                }
            },
            Some(_) => false,
        };
        let committed = conn.committed;
        // (Rolled back here if it did not commit.)
        drop(conn);
        if committed {
            self.unsettled = false;
            if folded {
                self.landed = Landed::default();
                self.kept.clear();
                self.forget_landed();
            }
            self.landed_committed = self.landed;
            self.publish_touched();
            let settled = Settled {
                notices: std::mem::take(&mut self.outbox),
                replies,
            };
            match &self.syncer {
                None => settled.deliver(&self.shared),
                Some(syncer) if inline => self.in_place = Some(syncer.in_place(settled)),
                Some(syncer) => syncer.settle(settled),
            }
        } else {
            let why = failure.unwrap_or_default();
            error!("group commit failed, rolled back: {why}");
            #[cfg(test)]
            {
                let conn = self.conn.lock().unwrap_or_else(PoisonError::into_inner);
                self.let_go_out_of_transaction = Some(conn.is_autocommit());
            }
            self.restore();
            for reply in replies {
                reply.fail(&why);
            }
            // Those after the failure were not tried; they fail with the group.
            for cmd in cmds {
                Self::reject(cmd, &why);
            }
        }
    }

    /// Answers a command that could not be tried with a storage error.
    fn reject(cmd: Cmd, why: &str) {
        let storage = || why.to_owned();
        match cmd {
            Cmd::Create(_, tx) => drop(tx.send(Err(CreateError::Storage(storage())))),
            Cmd::Append(_, tx) => drop(tx.send(Err(AppendError::Storage(storage())))),
            Cmd::Delete(_, tx) => drop(tx.send(Err(DeleteError::Storage(storage())))),
            Cmd::Shutdown(tx) => drop(tx.send(())),
        }
    }

    /// Queues the publication of every stream the committed group touched (its
    /// readers woken), to be made once the commit is durable.
    fn publish_touched(&mut self) {
        // With the path each stream had before the group, where a deleted one is
        // published (one made and deleted in the group never was).
        let mut touched: Vec<(i64, Option<Arc<str>>)> = self
            .undo_metas
            .drain()
            .map(|(id, before)| (id, before.map(|m| m.path)))
            .collect();
        // In the order the streams were made, not the map's: a stream removed from a
        // path is told gone before the one that took the path is published there
        // (else whether its removal is told at all would turn on the map's order).
        touched.sort_unstable_by_key(|(id, _)| *id);
        self.undo_producers.clear();
        self.undo_paths.clear();
        for (id, path) in touched {
            // Taken whatever is published: a stream deleted in the group (or one that
            // no longer owns its path) leaves no chunks behind here.
            let fresh = self.fresh.remove(&id).unwrap_or_default();
            match self.metas.get(&id) {
                Some(meta) if !owns_path(&self.paths, meta) => {}
                Some(meta) => self.outbox.push(Notice::Publish(meta.clone(), fresh)),
                None => {
                    if let Some(path) = path {
                        self.outbox.push(Notice::Unpublish(id, path));
                    }
                }
            }
        }
    }

    /// How many streams have chunks of the group in progress held for the readers'
    /// memory.
    #[cfg(test)]
    pub(super) fn fresh_streams(&self) -> usize {
        self.fresh.len()
    }

    /// Makes `owner` the stream at `path` (`None`: no stream), noting the owner it
    /// replaces for [`Writer::restore`].
    fn set_owner(&mut self, path: &Arc<str>, owner: Option<i64>) {
        let before = match owner {
            Some(id) => self.paths.insert(path.clone(), id),
            None => self.paths.remove(path),
        };
        self.undo_paths.entry(path.clone()).or_insert(before);
    }

    /// Restores what the failed group touched.
    fn restore(&mut self) {
        self.fresh.clear();
        self.outbox.clear();
        // What the failed group kept is not in `landed`, and what it deleted from
        // `landed` is back: the fold reads `landed` until the next one empties it.
        self.kept.clear();
        self.landing.clear();
        self.landed = self.landed_committed;
        let forks_changed = !self.undo_metas.is_empty();
        for (id, original) in self.undo_metas.drain() {
            self.metas.remove(&id);
            if let Some(meta) = original {
                self.metas.insert(id, meta);
            }
        }
        if forks_changed {
            self.readers = Readers::of(self.metas.values());
        }
        for (path, owner) in self.undo_paths.drain() {
            match owner {
                Some(id) => self.paths.insert(path, id),
                None => self.paths.remove(&path),
            };
        }
        for (key, original) in self.undo_producers.drain() {
            match original {
                Some(state) => self.producers.insert(key, state),
                None => self.producers.remove(&key),
            }
        }
    }

    /// Lands a chunk at the tail of `meta`'s stream (its row in `landed` at the end of
    /// the group, see `landing`), keeps it for the readers' memory and moves the tail
    /// past it.
    fn land(
        &mut self,
        conn: &Connection,
        meta: &mut StreamMeta,
        payload: Payload,
    ) -> rusqlite::Result<()> {
        let (bytes, count) = (payload.data.len(), payload.count);
        let (chunk, kept) = prepare_landing(conn, meta.tail, payload)?;
        self.landed.rows += 1;
        self.landed.bytes += bytes;
        self.landing.push((meta.id, kept.clone()));
        self.kept.entry(meta.id).or_default().push(kept);
        self.fresh.entry(meta.id).or_default().extend(chunk);
        meta.landed_from.get_or_insert(meta.tail);
        meta.tail += count;
        Ok(())
    }

    /// Tests: the rows `landed` holds as the writer counts them, and how many chunks
    /// it keeps for the fold.
    #[cfg(test)]
    pub(super) fn landed_counts(&self) -> (usize, usize) {
        (self.landed.rows, self.kept.values().map(Vec::len).sum())
    }

    /// Inserts the rows the group has landed so far into `landed`.
    fn insert_landing(&mut self, conn: &Connection) -> rusqlite::Result<()> {
        #[cfg(test)]
        if !self.landing.is_empty() && std::mem::take(&mut self.fail_next_landing) {
            return Err(rusqlite::Error::InvalidQuery);
        }
        insert_landed(conn, &self.landing)?;
        self.landing.clear();
        Ok(())
    }

    /// After a commit that folded `landed`: no stream has chunks there any more. The
    /// streams the commit touched are published as usual; the others' published
    /// metadata is to be updated without waking their readers (nothing they read
    /// changed).
    fn forget_landed(&mut self) {
        for meta in self.metas.values_mut() {
            if meta.landed_from.take().is_some() && !self.undo_metas.contains_key(&meta.id) {
                self.outbox.push(Notice::Refresh(meta.clone()));
            }
        }
    }

    fn touch(&mut self, id: i64) {
        if !self.undo_metas.contains_key(&id) {
            self.undo_metas.insert(id, self.metas.get(&id).cloned());
        }
    }

    fn set_producer(&mut self, key: (i64, String), state: (u64, u64)) {
        if !self.undo_producers.contains_key(&key) {
            self.undo_producers
                .insert(key.clone(), self.producers.get(&key));
        }
        self.producers.insert(key, state);
    }

    /// The latest access time of a stream: committed, or bumped by a reader since.
    fn access_ms(&self, meta: &StreamMeta) -> u64 {
        meta.access_ms
            .max(self.shared.access_ms(&meta.path, meta.id))
    }

    /// The live (not expired, not soft-deleted) stream at `path`, by id. An expired
    /// stream is gone from its path, also once it is kept (soft-deleted) for its
    /// forks: what the sweep did with it yet does not matter.
    fn lookup(&self, path: &str, now: u64) -> Lookup {
        let Some(&id) = self.paths.get(path) else {
            return Lookup::Missing;
        };
        let Some(meta) = self.metas.get(&id) else {
            return Lookup::Missing;
        };
        if meta.is_expired(self.access_ms(meta), now) {
            return if meta.deleted {
                Lookup::Missing
            } else {
                Lookup::Expired(id)
            };
        }
        if meta.deleted {
            return Lookup::SoftDeleted;
        }
        Lookup::Live(id)
    }

    fn try_create(
        &mut self,
        conn: &Connection,
        req: CreateReq,
    ) -> rusqlite::Result<Result<CreateOk, CreateError>> {
        let now = now_ms();
        match self.lookup(&req.path, now) {
            Lookup::SoftDeleted => {
                return Ok(Err(CreateError::Conflict(
                    "the stream at this path was deleted but is still referenced by forks".into(),
                )))
            }
            Lookup::Expired(id) => self.remove_stream(conn, id)?,
            Lookup::Live(id) => {
                let meta = &self.metas[&id];
                let source = req
                    .fork
                    .as_ref()
                    .and_then(|f| match self.lookup(&f.source, now) {
                        Lookup::Live(sid) => self.metas.get(&sid),
                        _ => None,
                    });
                return Ok(same_config(meta, &req, source).map_or_else(
                    |why| Err(CreateError::Conflict(why)),
                    |()| {
                        Ok(CreateOk {
                            meta: meta.clone(),
                            created: false,
                        })
                    },
                ));
            }
            Lookup::Missing => {}
        }
        let id = self.next_id;
        // Above every epoch issued: an earlier stream's offsets at this path (it may
        // have been deleted or expired a moment ago) sort before this one's.
        let epoch = now.max(self.last_epoch + 1);
        let mut meta = StreamMeta {
            id,
            epoch,
            path: req.path.as_str().into(),
            content_type: req
                .content_type
                .clone()
                .map_or_else(|| "application/octet-stream".into(), Into::into),
            ttl_secs: req.ttl_secs,
            expires_at_ms: req.expires_at_ms,
            created_ms: now,
            access_ms: now,
            tail: 0,
            closed: false,
            last_seq: None,
            deleted: false,
            chain: Vec::new(),
            inherited: Vec::new(),
            forked_from: None,
            fork_at: 0,
            landed_from: None,
        };
        if let Some(fork) = &req.fork {
            // (Owned: reading the source's text below needs the writer.)
            let source = match self.lookup(&fork.source, now) {
                Lookup::Live(sid) => self.metas[&sid].clone(),
                Lookup::SoftDeleted => {
                    return Ok(Err(CreateError::Conflict(
                        "the fork source was deleted".into(),
                    )))
                }
                Lookup::Missing | Lookup::Expired(_) => {
                    return Ok(Err(CreateError::SourceNotFound))
                }
            };
            if let Some(ct) = &req.content_type {
                if !same_media_type(ct, &source.content_type) {
                    return Ok(Err(CreateError::Conflict(format!(
                        "content type {ct:?} differs from the source's {:?}",
                        source.content_type
                    ))));
                }
            }
            let foreign = match (fork.offset_epoch, fork.offset) {
                (Some(epoch), Some(pos)) => !source.takes(epoch, pos),
                _ => false,
            };
            if foreign {
                return Ok(Err(CreateError::BadRequest(
                    "the fork offset is not one of the source's offsets".into(),
                )));
            }
            let base = fork.offset.unwrap_or(source.tail);
            let at = base.saturating_add(fork.sub_offset.unwrap_or(0));
            if base > source.tail || at > source.tail {
                return Ok(Err(CreateError::BadRequest(format!(
                    "fork offset is beyond the source's tail ({})",
                    source.offset(source.tail)
                ))));
            }
            // A text stream forks between characters: one cut inside a character
            // would leave the fork's text invalid for good (and its SSE readers a
            // replacement character where the bytes are).
            if at > 0
                && at < source.tail
                && !source.is_json()
                && gapless_core::wire::headers::is_text(&source.content_type)
            {
                self.insert_landing(conn)?;
                let byte = super::reader::read_range(conn, &source, at, at + 1, 1)?;
                if byte.body().first().is_some_and(|b| b & 0xC0 == 0x80) {
                    return Ok(Err(CreateError::BadRequest(
                        "the fork point splits a character of the source's text".into(),
                    )));
                }
            }
            meta.content_type = req
                .content_type
                .as_deref()
                .map_or_else(|| Arc::clone(&source.content_type), Into::into);
            if req.ttl_secs.is_none() && req.expires_at_ms.is_none() {
                meta.ttl_secs = source.ttl_secs;
                meta.expires_at_ms = source.expires_at_ms;
            }
            let mut chain = Vec::new();
            for seg in &source.chain {
                if seg.until >= at {
                    chain.push(Segment {
                        id: seg.id,
                        until: at,
                    });
                    break;
                }
                chain.push(*seg);
            }
            if chain.last().is_none_or(|s| s.until < at) {
                chain.push(Segment {
                    id: source.id,
                    until: at,
                });
            }
            meta.chain = chain;
            // Its own offsets (`epoch`), and its ancestors' up to the fork point.
            meta.inherited = source
                .inherited
                .iter()
                .map(|i| Inherited {
                    epoch: i.epoch,
                    until: i.until.min(at),
                })
                .chain([Inherited {
                    epoch: source.epoch,
                    until: at,
                }])
                .collect();
            meta.forked_from = Some(source.id);
            meta.fork_at = at;
            meta.tail = at;
        }
        if let Some(payload) = req.body.filter(|p| !p.is_empty()) {
            // A fork that names no content type takes its source's, which its body
            // was split by as published: if the source changed meanwhile (made again
            // at its path), the body is split for the wrong mode, and is refused
            // rather than stored as what it is not.
            if payload.ends.is_some() != meta.is_json() {
                return Ok(Err(CreateError::Conflict(
                    "the fork source's content type changed while the fork was made: \
                     send it again, or name the content type"
                        .into(),
                )));
            }
            self.land(conn, &mut meta, payload)?;
        }
        meta.closed = req.closed;
        self.next_id += 1;
        if meta.epoch > self.last_epoch {
            self.last_epoch = meta.epoch;
            save_last_epoch(conn, meta.epoch)?;
        }
        save_stream(conn, &meta)?;
        self.touch(id);
        self.set_owner(&meta.path, Some(id));
        self.readers.add(&meta);
        self.metas.insert(id, meta.clone());
        Ok(Ok(CreateOk {
            meta,
            created: true,
        }))
    }

    fn try_append(
        &mut self,
        conn: &Connection,
        mut req: AppendReq,
    ) -> rusqlite::Result<Result<AppendOk, AppendError>> {
        let now = now_ms();
        let id = match self.lookup(&req.path, now) {
            Lookup::Live(id) => id,
            Lookup::SoftDeleted => return Ok(Err(AppendError::Gone)),
            Lookup::Missing | Lookup::Expired(_) => return Ok(Err(AppendError::NotFound)),
        };
        let meta = &self.metas[&id];
        let has_body = req.body.as_ref().is_some_and(|p| !p.is_empty());
        // An idempotent producer's retry is answered as a duplicate, even when the
        // stream has been closed since (by that very request, possibly); any other
        // append to a closed stream, a stale epoch's too, is told it is closed (§5.2.1).
        let mut producer_state = None;
        if let Some(p) = &req.producer {
            let key = (id, p.id.clone());
            match self.producers.get(&key) {
                Some((epoch, _)) if p.epoch < epoch && !meta.closed => {
                    return Ok(Err(AppendError::StaleEpoch { current: epoch }))
                }
                Some((epoch, last)) if p.epoch == epoch && p.seq <= last => {
                    return Ok(Ok(AppendOk {
                        next: meta.tail,
                        stream_epoch: meta.epoch_at(meta.tail),
                        closed: meta.closed,
                        producer: Some((epoch, last)),
                        duplicate: true,
                    }))
                }
                Some((epoch, last)) if p.epoch == epoch => {
                    if p.seq != last + 1 && !meta.closed {
                        return Ok(Err(AppendError::SeqGap {
                            expected: last + 1,
                            received: p.seq,
                        }));
                    }
                }
                _ => {
                    if p.seq != 0 && !meta.closed {
                        return Ok(Err(AppendError::NewEpochSeqNotZero { received: p.seq }));
                    }
                }
            }
            producer_state = Some((key, (p.epoch, p.seq)));
        }
        if meta.closed {
            if !has_body && req.close {
                return Ok(Ok(AppendOk {
                    next: meta.tail,
                    stream_epoch: meta.epoch_at(meta.tail),
                    closed: true,
                    producer: None,
                    duplicate: false,
                }));
            }
            return Ok(Err(AppendError::Closed {
                next: meta.tail,
                stream_epoch: meta.epoch_at(meta.tail),
            }));
        }
        if let Some(ct) = &req.content_type {
            if has_body && !same_media_type(ct, &meta.content_type) {
                return Ok(Err(AppendError::ContentType {
                    expected: meta.content_type.to_string(),
                }));
            }
        }
        if let Some(seq) = &req.stream_seq {
            if meta
                .last_seq
                .as_ref()
                .is_some_and(|last| seq.as_bytes() <= last.as_bytes())
            {
                return Ok(Err(AppendError::SeqRegression {
                    last: meta.last_seq.clone().unwrap_or_default(),
                }));
            }
        }
        let mut meta = meta.clone();
        let plain = !req.close && req.stream_seq.is_none() && meta.ttl_secs.is_none();
        if let Some(payload) = req.body.take().filter(|p| !p.is_empty()) {
            self.land(conn, &mut meta, payload)?;
        }
        if req.close {
            meta.closed = true;
        }
        if req.stream_seq.is_some() {
            meta.last_seq = req.stream_seq;
        }
        meta.access_ms = self.access_ms(&meta).max(now);
        // A plain append changes only the tail, which loading recovers from the
        // chunks, and the access time, which matters only for a sliding TTL (and
        // the sweep persists it): its commit then skips the stream's row, one page
        // less to write and sync.
        if !plain {
            save_stream(conn, &meta)?;
        }
        let producer = match producer_state {
            Some((key, state)) => {
                conn.prepare_cached(
                    "INSERT OR REPLACE INTO producers (stream_id, producer_id, epoch, seq)
                     VALUES (?1, ?2, ?3, ?4)",
                )?
                .execute(params![id, key.1, state.0 as i64, state.1 as i64])?;
                self.set_producer(key, state);
                Some(state)
            }
            None => None,
        };
        let ok = AppendOk {
            next: meta.tail,
            stream_epoch: meta.epoch_at(meta.tail),
            closed: meta.closed,
            producer,
            duplicate: false,
        };
        self.touch(id);
        self.metas.insert(id, meta);
        Ok(Ok(ok))
    }

    fn try_delete(
        &mut self,
        conn: &Connection,
        path: &str,
    ) -> rusqlite::Result<Result<(), DeleteError>> {
        match self.lookup(path, now_ms()) {
            Lookup::Missing => Ok(Err(DeleteError::NotFound)),
            Lookup::SoftDeleted => Ok(Err(DeleteError::Gone)),
            Lookup::Expired(id) => self
                .remove_stream(conn, id)
                .map(|()| Err(DeleteError::NotFound)),
            Lookup::Live(id) => self.remove_stream(conn, id).map(Ok),
        }
    }

    /// Deletes a stream: softly while forks still read from it, for good otherwise;
    /// then collects soft-deleted ancestors nothing reads from any more.
    fn remove_stream(&mut self, conn: &Connection, id: i64) -> rusqlite::Result<()> {
        // What it deletes from `landed` must be there.
        debug_assert!(self.landing.is_empty(), "removed before landing");
        let mut pending = vec![id];
        while let Some(id) = pending.pop() {
            let referenced = self.readers.read_from(id);
            let Some(meta) = self.metas.get(&id).cloned() else {
                continue;
            };
            self.touch(id);
            if referenced {
                let mut meta = meta;
                meta.deleted = true;
                save_stream(conn, &meta)?;
                self.metas.insert(id, meta);
                continue;
            }
            conn.prepare_cached(
                "DELETE FROM blobs WHERE id IN
                    (SELECT blob FROM chunks WHERE stream_id = ?1 AND blob IS NOT NULL
                     UNION ALL
                     SELECT blob FROM landed WHERE stream_id = ?1 AND blob IS NOT NULL)",
            )?
            .execute([id])?;
            conn.prepare_cached("DELETE FROM chunks WHERE stream_id = ?1")?
                .execute([id])?;
            let mut unfolded = conn.prepare_cached(
                "DELETE FROM landed WHERE stream_id = ?1 RETURNING IFNULL(bytes, length(data))",
            )?;
            self.kept.remove(&id);
            let mut gone = unfolded.query([id])?;
            while let Some(row) = gone.next()? {
                let bytes: i64 = row.get(0)?;
                self.landed.rows = self.landed.rows.saturating_sub(1);
                self.landed.bytes = self.landed.bytes.saturating_sub(bytes as usize);
            }
            conn.prepare_cached("DELETE FROM producers WHERE stream_id = ?1")?
                .execute([id])?;
            conn.prepare_cached("DELETE FROM streams WHERE id = ?1")?
                .execute([id])?;
            self.metas.remove(&id);
            self.readers.forget(&meta);
            if self.paths.get(&*meta.path) == Some(&id) {
                self.set_owner(&meta.path, None);
            }
            for (producer, state) in self.producers.remove_stream(id) {
                self.undo_producers
                    .entry((id, producer))
                    .or_insert(Some(state));
            }
            let ancestors = meta.chain.iter().map(|s| s.id).chain(meta.forked_from);
            for ancestor in ancestors {
                if self.metas.get(&ancestor).is_some_and(|m| m.deleted) {
                    pending.push(ancestor);
                }
            }
        }
        Ok(())
    }

    /// Deletes streams expired at `now` (at most [`SWEEP_REMOVALS`]; those past it are
    /// kept in `sweep_left`, for the next sweep to remove without looking at every
    /// stream again) and persists access times readers bumped.
    fn sweep(&mut self, conn: &Connection, now: u64) -> rusqlite::Result<()> {
        let ids: Vec<i64> = if self.sweep_left.is_empty() {
            self.shared.forget_idle_recent();
            self.metas.keys().copied().collect()
        } else {
            std::mem::take(&mut self.sweep_left)
        };
        let mut removed = 0;
        for id in ids {
            let Some(meta) = self.metas.get(&id) else {
                continue;
            };
            if meta.deleted {
                continue;
            }
            let access = self.access_ms(meta);
            if meta.is_expired(access, now) {
                if removed == SWEEP_REMOVALS {
                    self.sweep_left.push(id);
                    continue;
                }
                debug!(path = %meta.path, "stream expired");
                self.remove_stream(conn, id)?;
                removed += 1;
            } else if access > meta.access_ms && meta.ttl_secs.is_some() {
                let mut meta = meta.clone();
                meta.access_ms = access;
                save_stream(conn, &meta)?;
                self.touch(id);
                self.metas.insert(id, meta);
            }
        }
        Ok(())
    }
}

enum Lookup {
    Missing,
    Live(i64),
    SoftDeleted,
    Expired(i64),
}

fn same_config(
    meta: &StreamMeta,
    req: &CreateReq,
    source: Option<&StreamMeta>,
) -> Result<(), String> {
    match (&req.fork, source) {
        (None, _) => {
            if meta.forked_from.is_some() {
                return Err("the stream exists as a fork".into());
            }
            let ct = req
                .content_type
                .as_deref()
                .unwrap_or("application/octet-stream");
            if !same_media_type(ct, &meta.content_type) {
                return Err(format!(
                    "the stream exists with content type {:?}",
                    meta.content_type
                ));
            }
        }
        (Some(fork), source) => {
            let Some(source) = source else {
                return Err("the stream exists, and the fork source does not".into());
            };
            if meta.forked_from != Some(source.id) {
                return Err("the stream exists, but not as a fork of that source".into());
            }
            let at = fork
                .offset
                .unwrap_or(source.tail)
                .saturating_add(fork.sub_offset.unwrap_or(0));
            if fork.offset.is_some() && at != meta.fork_at {
                return Err("the fork exists at another offset".into());
            }
            if let Some(ct) = &req.content_type {
                if !same_media_type(ct, &meta.content_type) {
                    return Err(format!(
                        "the stream exists with content type {:?}",
                        meta.content_type
                    ));
                }
            }
        }
    }
    let expiry_given = req.fork.is_none() || req.ttl_secs.is_some() || req.expires_at_ms.is_some();
    if expiry_given && (req.ttl_secs != meta.ttl_secs || req.expires_at_ms != meta.expires_at_ms) {
        return Err("the stream exists with a different TTL or expiry".into());
    }
    if req.closed != meta.closed {
        return Err("the stream exists with a different closure status".into());
    }
    Ok(())
}

/// Whether `meta`'s stream is the one published at its path: not when it is kept
/// (soft-deleted) for its forks while its path is another stream's now.
/// Moves the last access of every stream with a time-to-live on by one sweep
/// interval (no later than `now`): reads only note their access in memory, and the
/// sweep saves it every [`SWEEP_EVERY`], so after a crash the saved one may be up to
/// that much older than the last read, which extended the stream's life. A stream is
/// never deleted for a read the crash forgot; one long expired stays expired.
fn grant_access_grace(metas: &mut Map<i64, StreamMeta>, now: u64) {
    let grace = SWEEP_EVERY.as_millis() as u64;
    for meta in metas.values_mut().filter(|m| m.ttl_secs.is_some()) {
        meta.access_ms = meta
            .access_ms
            .saturating_add(grace)
            .min(now)
            .max(meta.access_ms);
    }
}

fn owns_path(paths: &Map<Arc<str>, i64>, meta: &StreamMeta) -> bool {
    paths.get(&*meta.path).is_none_or(|&owner| owner == meta.id)
}

/// Runs a statement without parameters, prepared once per connection (parsing
/// `BEGIN IMMEDIATE` and `COMMIT` afresh for every group showed in profiles).
fn run_cached(conn: &Connection, sql: &str) -> rusqlite::Result<()> {
    conn.prepare_cached(sql)?.execute([]).map(drop)
}

/// Moves every chunk in `landed` into `chunks`, within the caller's transaction. `OR
/// FAIL` rather than the default `ABORT`: a statement that may abort after writing
/// some rows needs a statement journal, a copy of every page it changes (spilled to
/// a temporary file past 64 KiB), so that it can undo itself alone; a failed fold
/// fails the whole transaction anyway.
fn fold(conn: &Connection) -> rusqlite::Result<()> {
    conn.prepare_cached(
        "INSERT OR FAIL INTO chunks (stream_id, start, end, data, ends, blob, bytes)
         SELECT stream_id, start, end, data, ends, blob, bytes FROM landed ORDER BY seq",
    )?
    .execute([])?;
    conn.prepare_cached("DELETE FROM landed")?.execute([])?;
    Ok(())
}

/// Moves every chunk in `landed` into `chunks` as [`fold`] does, but from what the
/// writer kept of them (`kept`, which must be all of them), so that nothing is read
/// back: consecutive chunks stored in their rows are joined into one chunk of up to
/// [`JOINED_BYTES`] (fewer keys to insert, and to read through later), and those
/// stored out of line keep their blob.
fn fold_kept(conn: &Connection, kept: &Map<i64, Vec<Kept>>) -> rusqlite::Result<()> {
    let mut joined = Joined::default();
    for (&id, chunks) in kept {
        for chunk in chunks {
            match chunk {
                Kept::Inline(chunk) if chunk.end > chunk.start => {
                    if joined.data.len() + chunk.data.len() + 1 > JOINED_BYTES {
                        joined.store(conn, id)?;
                    }
                    joined.push(chunk);
                }
                Kept::Inline(chunk) => {
                    // Empty: stored as it is (joining would add a separator).
                    joined.store(conn, id)?;
                    joined.push(chunk);
                    joined.store(conn, id)?;
                }
                &Kept::OutOfLine { blob, bytes, .. } => {
                    joined.store(conn, id)?;
                    store_blob_row(conn, id, chunk.range(), blob, bytes)?;
                }
            }
        }
        joined.store(conn, id)?;
    }
    conn.prepare_cached("DELETE FROM landed")?.execute([])?;
    Ok(())
}

/// Consecutive chunks of one stream being joined into one.
#[derive(Default)]
struct Joined {
    start: u64,
    end: u64,
    data: Vec<u8>,
    /// JSON: each message's end, as little-endian `u32`s, within `data`.
    ends: Option<Vec<u8>>,
    /// Something is joined.
    some: bool,
}

impl Joined {
    /// Adds the chunk after those joined so far (JSON messages after a comma).
    fn push(&mut self, chunk: &Chunk) {
        if !self.some {
            self.start = chunk.start;
            self.ends = chunk.ends.as_ref().map(|_| Vec::new());
            self.some = true;
        } else if chunk.ends.is_some() {
            self.data.push(b',');
        }
        let base = self.data.len() as u32;
        self.data.extend_from_slice(&chunk.data);
        if let (Some(joined), Some(ends)) = (self.ends.as_mut(), chunk.ends.as_ref()) {
            for end in ends.chunks_exact(4) {
                let end = u32::from_le_bytes([end[0], end[1], end[2], end[3]]);
                joined.extend_from_slice(&(end + base).to_le_bytes());
            }
        }
        self.end = chunk.end;
    }

    /// Stores what was joined as one chunk of stream `id` in `chunks` (see
    /// [`store_chunk`]), and starts again.
    fn store(&mut self, conn: &Connection, id: i64) -> rusqlite::Result<()> {
        if !self.some {
            return Ok(());
        }
        self.some = false;
        let range = self.start..self.end;
        store_chunk(conn, id, range, &self.data, self.ends.as_deref())?;
        self.data.clear();
        self.ends = None;
        Ok(())
    }
}

/// Sets each stream's tail to the end of its last stored chunk where that is further
/// than its row says (plain appends do not rewrite the row).
fn recover_tails(conn: &Connection, metas: &mut Map<i64, StreamMeta>) -> rusqlite::Result<()> {
    let mut last_end =
        conn.prepare("SELECT end FROM chunks WHERE stream_id = ?1 ORDER BY start DESC LIMIT 1")?;
    for (id, meta) in metas.iter_mut() {
        let end: Option<i64> = last_end.query_row(params![id], |r| r.get(0)).optional()?;
        if let Some(end) = end {
            meta.tail = meta.tail.max(end as u64);
        }
    }
    Ok(())
}

/// The largest payload (data and message ends) stored in the chunk's own row. Larger
/// ones go to `blobs`, so that the chunks' key tree stays made of small rows: SQLite
/// compares keys of a `WITHOUT ROWID` table by reading whole rows, overflow pages
/// included, and seeking among rows of 100 KB read megabytes.
const INLINE_BYTES: usize = 768;

/// Whether a chunk's payload is stored in its row (see [`INLINE_BYTES`]).
fn inline(data: &[u8], ends: Option<&[u8]>) -> bool {
    data.len() + ends.map_or(0, <[u8]>::len) <= INLINE_BYTES
}

/// Stores a chunk of stream `id` with positions `range` in `chunks`: in its row when
/// small, otherwise its bytes (and message ends) in `blobs` and its row pointing
/// there. `OR FAIL`, see [`fold`].
fn store_chunk(
    conn: &Connection,
    id: i64,
    range: std::ops::Range<u64>,
    data: &[u8],
    ends: Option<&[u8]>,
) -> rusqlite::Result<()> {
    let (start, end) = (range.start as i64, range.end as i64);
    if inline(data, ends) {
        conn.prepare_cached(
            "INSERT OR FAIL INTO chunks (stream_id, start, end, data, ends)
             VALUES (?1, ?2, ?3, ?4, ?5)",
        )?
        .execute(params![id, start, end, data, ends])?;
        return Ok(());
    }
    let blob = store_blob(conn, data, ends)?;
    store_blob_row(conn, id, range, blob, data.len())
}

/// Stores a payload too large for its chunk's row in `blobs`; returns its id.
fn store_blob(conn: &Connection, data: &[u8], ends: Option<&[u8]>) -> rusqlite::Result<i64> {
    conn.prepare_cached("INSERT INTO blobs (data, ends) VALUES (?1, ?2)")?
        .execute(params![data, ends])?;
    Ok(conn.last_insert_rowid())
}

/// Stores in `chunks` the row of a chunk of stream `id` with positions `range` whose
/// `bytes` bytes are blob `blob`.
fn store_blob_row(
    conn: &Connection,
    id: i64,
    range: std::ops::Range<u64>,
    blob: i64,
    bytes: usize,
) -> rusqlite::Result<()> {
    let (start, end) = (range.start as i64, range.end as i64);
    conn.prepare_cached(
        "INSERT OR FAIL INTO chunks (stream_id, start, end, data, blob, bytes)
         VALUES (?1, ?2, ?3, X'', ?4, ?5)",
    )?
    .execute(params![id, start, end, blob, bytes as i64])
    .map(drop)
}

/// Prepares a chunk at `start` to land: a large payload is stored in
/// `blobs` now, the row waits for the end of the group (see [`insert_landed`]).
/// Returns the chunk as the readers' memory keeps it (unless it is too large to be
/// kept there), and as its row and the fold have it.
fn prepare_landing(
    conn: &Connection,
    start: u64,
    payload: Payload,
) -> rusqlite::Result<(Option<Arc<Chunk>>, Kept)> {
    let Payload { data, ends, count } = payload;
    let end = start + count;
    if count == 0 {
        warn!("empty chunk landed");
    }
    if inline(&data, ends.as_deref()) {
        let chunk = Arc::new(Chunk {
            start,
            end,
            data,
            ends,
        });
        return Ok((Some(Arc::clone(&chunk)), Kept::Inline(chunk)));
    }
    let blob = store_blob(conn, &data, ends.as_deref())?;
    let kept = Kept::OutOfLine {
        start,
        end,
        blob,
        bytes: data.len(),
    };
    let chunk = (data.len() <= recent::MAX_BYTES).then(|| {
        Arc::new(Chunk {
            start,
            end,
            data,
            ends,
        })
    });
    Ok((chunk, kept))
}

/// The columns of a row of `landed` as [`insert_landed`] binds them.
const LANDED_COLUMNS: usize = 7;

/// The most rows one statement inserts into `landed`: with the writer's other
/// statements (14), all fit the connection's statement cache (32), and so do those
/// of the readers sharing the connection of an in-memory store (5).
const LANDED_PER_INSERT: usize = 8;

/// The statements inserting 1 to [`LANDED_PER_INSERT`] rows into `landed`, in order.
static LANDED_INSERTS: std::sync::LazyLock<[String; LANDED_PER_INSERT]> = std::sync::LazyLock::new(
    || {
        std::array::from_fn(|i| {
            let row = format!("({})", ["?"; LANDED_COLUMNS].join(", "));
            // `OR FAIL`: a statement of several rows that may abort midway needs a
            // statement journal (a savepoint and a 64 KiB in-memory journal per
            // statement) to undo its first rows; a failure fails the whole group,
            // whose transaction is rolled back anyway.
            format!(
                "INSERT OR FAIL INTO landed (stream_id, start, end, data, ends, blob, bytes) VALUES {}",
                vec![row; i + 1].join(", ")
            )
        })
    },
);

/// Inserts the rows of the chunks a group landed (`rows`: stream and chunk, in the
/// order they landed) into `landed`, in that order, up to [`LANDED_PER_INSERT`] rows
/// per statement. With sixteen producers (groups of about seven appends), a statement
/// per row cost some 6,500 instructions per append, one per group 4,300.
fn insert_landed(conn: &Connection, rows: &[(i64, Kept)]) -> rusqlite::Result<()> {
    let mut rest = rows;
    while !rest.is_empty() {
        let (now, later) = rest.split_at(rest.len().min(LANDED_PER_INSERT));
        let mut insert = conn.prepare_cached(&LANDED_INSERTS[now.len() - 1])?;
        for (i, (id, kept)) in now.iter().enumerate() {
            let at = i * LANDED_COLUMNS;
            let range = kept.range();
            insert.raw_bind_parameter(at + 1, id)?;
            insert.raw_bind_parameter(at + 2, range.start as i64)?;
            insert.raw_bind_parameter(at + 3, range.end as i64)?;
            match kept {
                Kept::Inline(chunk) => {
                    insert.raw_bind_parameter(at + 4, chunk.data.as_slice())?;
                    insert.raw_bind_parameter(at + 5, chunk.ends.as_deref())?;
                    insert.raw_bind_parameter(at + 6, None::<i64>)?;
                    insert.raw_bind_parameter(at + 7, None::<i64>)?;
                }
                &Kept::OutOfLine { blob, bytes, .. } => {
                    insert.raw_bind_parameter(at + 4, &[] as &[u8])?;
                    insert.raw_bind_parameter(at + 5, None::<&[u8]>)?;
                    insert.raw_bind_parameter(at + 6, blob)?;
                    insert.raw_bind_parameter(at + 7, bytes as i64)?;
                }
            }
        }
        insert.raw_execute()?;
        rest = later;
    }
    Ok(())
}

/// The writer's connection held through a group's transaction. A group that ends
/// without committing (a failure, or a bug's panic unwinding) is rolled back before
/// the connection is let go: an in-memory store's readers share it, and must never
/// see a group's work that was not committed.
struct Transaction<'a> {
    conn: MutexGuard<'a, Connection>,
    /// Set once `COMMIT` succeeded.
    committed: bool,
}

impl<'a> Transaction<'a> {
    fn new(conn: MutexGuard<'a, Connection>) -> Self {
        Transaction {
            conn,
            committed: false,
        }
    }
}

impl std::ops::Deref for Transaction<'_> {
    type Target = Connection;

    fn deref(&self) -> &Connection {
        &self.conn
    }
}

impl Drop for Transaction<'_> {
    fn drop(&mut self) {
        // (Without a transaction open, as when `BEGIN` failed, this does nothing.)
        if !self.committed && !self.conn.is_autocommit() {
            let _ = self.conn.execute_batch("ROLLBACK");
        }
    }
}
