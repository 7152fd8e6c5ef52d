//! Durable storage of streams on SQLite: the request and outcome types, the shared
//! committed state readers see, and the [`Store`] handle the HTTP layer uses.
//!
//! Writes go to one writer (`writer`) that group-commits in its own thread (or, for
//! a write alone in flight while it is idle, in the caller's); with
//! [`Durability::Full`], `syncer` syncs the write-ahead log before a commit is
//! answered or published. Reads run on a small pool of read-only connections
//! ([`reader`]) and never see more than the committed tail that [`Shared`] publishes
//! after each (durable) commit.

mod forks;
pub mod meta;
mod producers;
pub mod reader;
pub mod recent;
mod rooms;
pub mod schema;
mod syncer;
mod writer;

#[cfg(test)]
mod tests;

use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{mpsc, Arc, Mutex, RwLock};

use bytes::Bytes;
use rusqlite::Connection;
use tokio::sync::{oneshot, watch};

pub use meta::{
    format_offset, now_ms, parse_offset, push_offset, resolve_offset, BadOffset, ReadFrom,
    StreamMeta,
};
pub use reader::ReadChunk;
pub use schema::Durability;

use rooms::Rooms;
use writer::{Cmd, Writer};

/// What an append or a create brings: the bytes to store and how many positions
/// they take (messages in JSON mode, bytes otherwise).
#[derive(Clone, Debug, Default)]
pub struct Payload {
    /// The bytes as stored: raw bytes, or JSON messages joined by commas.
    pub data: Vec<u8>,
    /// For JSON: the end (exclusive) of each message within `data`, as little-endian
    /// `u32`s (as stored chunks keep them).
    pub ends: Option<Vec<u8>>,
    /// Positions taken.
    pub count: u64,
}

impl Payload {
    /// Raw bytes: one position per byte.
    pub fn bytes(data: Vec<u8>) -> Self {
        let count = data.len() as u64;
        Payload {
            data,
            ends: None,
            count,
        }
    }

    /// JSON messages (each valid JSON text): one position per message.
    pub fn json<'a, M>(messages: M) -> Self
    where
        M: IntoIterator<Item = &'a str>,
        M::IntoIter: Clone,
    {
        let messages = messages.into_iter();
        // Sized once: growing them cost more than filling them.
        let (count, bytes) = messages
            .clone()
            .fold((0, 0), |(n, bytes), m| (n + 1, bytes + m.len() + 1));
        let mut data = Vec::with_capacity(bytes);
        let mut ends = Vec::with_capacity(4 * count);
        for m in messages {
            if !ends.is_empty() {
                data.push(b',');
            }
            data.extend_from_slice(m.as_bytes());
            ends.extend_from_slice(&(data.len() as u32).to_le_bytes());
        }
        let count = count as u64;
        Payload {
            data,
            ends: Some(ends),
            count,
        }
    }

    /// Whether it adds nothing.
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }
}

/// A fork request (§4.2).
#[derive(Clone, Debug)]
pub struct ForkReq {
    /// The source stream's path.
    pub source: String,
    /// The fork offset (default: the source's tail).
    pub offset: Option<u64>,
    /// The epoch the fork offset was given in (`None` for `-1` and `now`): one the
    /// source takes at that position (see [`StreamMeta::takes`]).
    pub offset_epoch: Option<u64>,
    /// Positions past the offset.
    pub sub_offset: Option<u64>,
}

/// Idempotent producer headers (§5.2.1).
#[derive(Clone, Debug)]
pub struct ProducerHdr {
    /// `Producer-Id`.
    pub id: String,
    /// `Producer-Epoch`.
    pub epoch: u64,
    /// `Producer-Seq`.
    pub seq: u64,
}

/// A create (PUT).
#[derive(Clone, Debug)]
pub struct CreateReq {
    /// The stream's path.
    pub path: String,
    /// The content type, if given.
    pub content_type: Option<String>,
    /// `Stream-TTL`.
    pub ttl_secs: Option<u64>,
    /// `Stream-Expires-At`, in milliseconds since the epoch.
    pub expires_at_ms: Option<u64>,
    /// Create it closed.
    pub closed: bool,
    /// Initial data.
    pub body: Option<Payload>,
    /// Fork headers.
    pub fork: Option<ForkReq>,
}

impl CreateReq {
    /// A plain JSON stream at `path`: no TTL, open, empty, not a fork.
    pub fn json(path: impl Into<String>) -> Self {
        CreateReq {
            path: path.into(),
            content_type: Some("application/json".into()),
            ttl_secs: None,
            expires_at_ms: None,
            closed: false,
            body: None,
            fork: None,
        }
    }
}

/// A successful create.
#[derive(Clone, Debug)]
pub struct CreateOk {
    /// The stream as committed.
    pub meta: StreamMeta,
    /// `true` when new (201), `false` when it existed with the same configuration (200).
    pub created: bool,
}

/// Why a create failed.
#[derive(Clone, Debug, thiserror::Error)]
pub enum CreateError {
    /// The path is taken by a stream with another configuration (409).
    #[error("{0}")]
    Conflict(String),
    /// Bad fork parameters (400).
    #[error("{0}")]
    BadRequest(String),
    /// The fork source does not exist (404).
    #[error("the fork source does not exist")]
    SourceNotFound,
    /// The database failed (500).
    #[error("storage failure: {0}")]
    Storage(String),
}

/// An append (POST).
#[derive(Clone, Debug)]
pub struct AppendReq {
    /// The stream's path.
    pub path: String,
    /// The request's content type.
    pub content_type: Option<String>,
    /// The data (absent for a close-only request).
    pub body: Option<Payload>,
    /// `Stream-Closed: true`.
    pub close: bool,
    /// `Stream-Seq`.
    pub stream_seq: Option<String>,
    /// Producer headers.
    pub producer: Option<ProducerHdr>,
}

/// A successful append (or an idempotent duplicate).
#[derive(Clone, Debug)]
pub struct AppendOk {
    /// The tail after it.
    pub next: u64,
    /// The epoch of `next`'s offset (see [`StreamMeta::epoch_at`]): the stream's own,
    /// or a fork's source's at its fork point.
    pub stream_epoch: u64,
    /// Whether the stream is now closed.
    pub closed: bool,
    /// The producer's epoch and highest accepted seq, for producer requests.
    pub producer: Option<(u64, u64)>,
    /// An idempotent duplicate: nothing was written.
    pub duplicate: bool,
}

/// Why an append failed.
#[derive(Clone, Debug, thiserror::Error)]
pub enum AppendError {
    /// No such stream (404).
    #[error("stream not found")]
    NotFound,
    /// Soft-deleted (410).
    #[error("the stream was deleted")]
    Gone,
    /// The stream is closed (409, with its final offset).
    #[error("the stream is closed")]
    Closed {
        /// The final tail.
        next: u64,
        /// The epoch of `next`'s offset (see [`StreamMeta::epoch_at`]).
        stream_epoch: u64,
    },
    /// Wrong content type (409).
    #[error("content type does not match the stream's {expected:?}")]
    ContentType {
        /// The stream's content type.
        expected: String,
    },
    /// `Stream-Seq` did not increase (409).
    #[error("Stream-Seq must increase; the last accepted is {last:?}")]
    SeqRegression {
        /// The last accepted value.
        last: String,
    },
    /// A producer epoch older than the current one (403).
    #[error("producer epoch is stale; the current epoch is {current}")]
    StaleEpoch {
        /// The current epoch.
        current: u64,
    },
    /// A new epoch must start at seq 0 (400).
    #[error("a new producer epoch must start at Producer-Seq 0, not {received}")]
    NewEpochSeqNotZero {
        /// The seq received.
        received: u64,
    },
    /// A gap in the producer's sequence (409).
    #[error("producer sequence gap: expected {expected}, received {received}")]
    SeqGap {
        /// The seq expected.
        expected: u64,
        /// The seq received.
        received: u64,
    },
    /// The database failed (500).
    #[error("storage failure: {0}")]
    Storage(String),
}

/// Why a delete failed.
#[derive(Clone, Debug, thiserror::Error)]
pub enum DeleteError {
    /// No such stream (404).
    #[error("stream not found")]
    NotFound,
    /// Already soft-deleted (410).
    #[error("the stream was deleted")]
    Gone,
    /// The database failed (500).
    #[error("storage failure: {0}")]
    Storage(String),
}

/// A stream as readers see it: the last committed metadata and a change signal.
#[derive(Debug)]
pub struct Live {
    meta: RwLock<Arc<StreamMeta>>,
    access_ms: AtomicU64,
    changed: watch::Sender<u64>,
    recent: Mutex<recent::Recent>,
    /// No longer the stream at its path (deleted, expired, or created again there).
    replaced: AtomicBool,
}

impl Live {
    /// Whether this is no longer the stream at its path: it was deleted for good, or
    /// its path now names a stream created again there. Set before its readers are
    /// woken, so a woken reader sees it.
    pub fn is_replaced(&self) -> bool {
        self.replaced.load(Ordering::Acquire)
    }

    /// Marks the stream replaced and wakes its readers.
    fn replace(&self) {
        self.replaced.store(true, Ordering::Release);
        self.changed.send_modify(|v| *v += 1);
    }

    /// The committed metadata, while this is still the stream at its path and it
    /// is not deleted (what a live reader checks each time it wakes).
    pub fn current(&self) -> Option<Arc<StreamMeta>> {
        if self.is_replaced() {
            return None;
        }
        let meta = self.meta();
        (!meta.deleted).then_some(meta)
    }

    /// The committed metadata.
    pub fn meta(&self) -> Arc<StreamMeta> {
        Arc::clone(&self.meta.read().unwrap_or_else(|p| p.into_inner()))
    }

    /// Records an access that resets a sliding TTL.
    pub fn touch(&self) {
        self.access_ms.fetch_max(now_ms(), Ordering::Relaxed);
    }

    /// The last access (committed or bumped by a reader).
    pub fn access_ms(&self) -> u64 {
        self.access_ms
            .load(Ordering::Relaxed)
            .max(self.meta().access_ms)
    }

    /// A receiver that wakes on every commit touching this stream.
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.changed.subscribe()
    }

    /// Positions `[from, to)` from the newest chunks kept in memory, if all are there.
    pub fn read_recent(
        &self,
        json: bool,
        from: u64,
        to: u64,
        max_bytes: usize,
    ) -> Option<ReadChunk> {
        self.recent
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .read(json, from, to, max_bytes)
    }
}

/// The maps streams and producers are looked up in on every request, by id, path or
/// producer: hashed with aHash, keyed at random per map as std's SipHash is (paths and
/// producer ids come from clients), at a fraction of its cost on short keys.
pub(crate) type Map<K, V> = std::collections::HashMap<K, V, ahash::RandomState>;

/// The committed state of every stream, shared by the writer (which publishes) and
/// the readers.
#[derive(Debug, Default)]
pub struct Shared {
    by_path: RwLock<Map<Arc<str>, Arc<Live>>>,
    /// A sync of the write-ahead log failed: writing has stopped (see `syncer`).
    sync_failed: AtomicBool,
    /// What every stream's recent chunks hold (see [`recent::MAX_BYTES_HELD`]).
    recent_held: Arc<AtomicUsize>,
    /// Told of each stream removed from its path for good.
    removed: Removed,
}

/// What is told the path of each stream removed for good (deleted, or expired and
/// swept, and not kept for forks): set once, by whoever must forget such streams.
#[derive(Default)]
struct Removed(std::sync::OnceLock<Box<Tell>>);

/// What [`Removed`] calls with a path.
type Tell = dyn Fn(&str) + Send + Sync;

impl std::fmt::Debug for Removed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.0.get().is_some() {
            "Removed(set)"
        } else {
            "Removed"
        })
    }
}

impl Shared {
    /// Why the server has stopped writing, if it has: a sync of the write-ahead log
    /// failed, and what it covered is of unknown outcome.
    pub fn write_failure(&self) -> Option<&'static str> {
        self.sync_failed
            .load(Ordering::Acquire)
            .then_some(syncer::SYNC_FAILED)
    }

    /// Has `tell` told the path of each stream removed for good from now on (called
    /// once; a second call is ignored).
    pub fn on_removed(&self, tell: impl Fn(&str) + Send + Sync + 'static) {
        let _ = self.removed.0.set(Box::new(tell));
    }

    /// The stream at `path`, live or soft-deleted.
    pub fn get(&self, path: &str) -> Option<Arc<Live>> {
        self.by_path
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(path)
            .cloned()
    }

    /// Lets go of the recent chunks of every stream that took no commit for
    /// [`recent::IDLE`]: their tail readers have had them, and a later reader reads
    /// storage. (Called at the writer's sweeps.)
    pub fn forget_idle_recent(&self) {
        let map = self.by_path.read().unwrap_or_else(|p| p.into_inner());
        for live in map.values() {
            let mut recent = live.recent.lock().unwrap_or_else(|p| p.into_inner());
            if recent.idle_for(recent::IDLE) {
                recent.clear();
            }
        }
    }

    /// The paths of every stream (live or soft-deleted).
    pub fn paths(&self) -> Vec<String> {
        self.by_path
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .keys()
            .map(|p| p.to_string())
            .collect()
    }

    fn access_ms(&self, path: &str, id: i64) -> u64 {
        match self.get(path) {
            Some(live) if live.meta().id == id => live.access_ms.load(Ordering::Relaxed),
            _ => 0,
        }
    }

    /// Publishes a stream's committed metadata with the chunks its commit added (kept
    /// in memory before readers are woken), creating its entry if new.
    fn publish(&self, meta: StreamMeta, fresh: Vec<Arc<recent::Chunk>>) {
        let mut map = self.by_path.write().unwrap_or_else(|p| p.into_inner());
        match map.get(&*meta.path) {
            Some(live) if live.meta().id == meta.id => {
                live.recent
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .extend(fresh);
                *live.meta.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(meta);
                live.changed.send_modify(|v| *v += 1);
            }
            _ => {
                let (changed, _) = watch::channel(0);
                let path = meta.path.clone();
                let mut recent = recent::Recent::new(Arc::clone(&self.recent_held));
                recent.extend(fresh);
                let old = map.insert(
                    path,
                    Arc::new(Live {
                        access_ms: AtomicU64::new(meta.access_ms),
                        meta: RwLock::new(Arc::new(meta)),
                        changed,
                        recent: Mutex::new(recent),
                        replaced: AtomicBool::new(false),
                    }),
                );
                if let Some(old) = old {
                    old.replace();
                }
            }
        }
    }

    /// Replaces a stream's published metadata without waking its readers: for changes
    /// that alter where a read looks, not what it finds (`landed_from` after a fold).
    fn refresh(&self, meta: StreamMeta) {
        let map = self.by_path.read().unwrap_or_else(|p| p.into_inner());
        if let Some(live) = map.get(&meta.path).filter(|l| l.meta().id == meta.id) {
            *live.meta.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(meta);
        }
    }

    /// Removes stream `id` from `path`, if it is what is published there (found by
    /// its path: a scan of every stream for each removal made a mass expiry hold
    /// every reader's lookup for seconds).
    fn unpublish(&self, id: i64, path: &str) {
        let mut map = self.by_path.write().unwrap_or_else(|p| p.into_inner());
        if map.get(path).is_some_and(|live| live.meta().id == id) {
            if let Some(live) = map.remove(path) {
                drop(map);
                live.replace();
                if let Some(tell) = self.removed.0.get() {
                    // (A panic there must not stop what delivers commits.)
                    let told =
                        std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| tell(path)));
                    if told.is_err() {
                        tracing::error!(path, "telling of a removed stream panicked");
                    }
                }
            }
        }
    }
}

/// Why the store could not open.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    /// The data directory could not be created.
    #[error("cannot create the data directory {path}: {source}")]
    DataDir {
        /// The directory.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// SQLite refused.
    #[error("cannot open the database: {0}")]
    Sqlite(#[from] rusqlite::Error),
    /// Another process has the database open: the server holds its database's lock
    /// for as long as it runs.
    #[error("the database {path} is in use by another process (another gapless-server on the same data directory?)")]
    InUse {
        /// The database file.
        path: PathBuf,
    },
    /// The database was written by a later version of the server, in a layout this
    /// one could misread.
    #[error("the database has layout {found}, written by a later gapless-server; this one knows layouts up to {known}")]
    Newer {
        /// The database's layout.
        found: i64,
        /// The latest layout this build knows.
        known: i64,
    },
}

/// The handle to the storage: submit mutations, read committed data. A clone is one
/// pointer (every live response holds one).
#[derive(Clone, Debug)]
pub struct Store(Arc<Parts>);

/// What the clones of a [`Store`] share.
#[derive(Debug)]
struct Parts {
    tx: mpsc::Sender<Cmd>,
    /// The writer's state, shared by its thread and commits made in place.
    writer: Arc<Mutex<Writer>>,
    /// Mutations whose callers wait for their answer (a caller that goes away stops
    /// counting, even if its command is still queued).
    in_flight: AtomicUsize,
    /// Whether a mutation alone in flight may commit in its caller's thread: not for
    /// an in-memory store, whose readers share the writer's connection (a commit
    /// there could wait for a reader's piece).
    commit_in_place: bool,
    shared: Arc<Shared>,
    readers: Vec<Arc<Mutex<Connection>>>,
    next_reader: AtomicUsize,
    rooms: Arc<Rooms>,
}

impl std::fmt::Debug for Cmd {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Cmd")
    }
}

/// Counts a mutation in flight for as long as it lives.
struct InFlight<'a> {
    count: &'a AtomicUsize,
    /// No other mutation was in flight when it entered.
    alone: bool,
}

impl<'a> InFlight<'a> {
    fn enter(count: &'a AtomicUsize) -> Self {
        let alone = count.fetch_add(1, Ordering::AcqRel) == 0;
        InFlight { count, alone }
    }
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.count.fetch_sub(1, Ordering::AcqRel);
    }
}

/// Read connections opened beside the writer's for a file database.
const READERS: usize = 4;

impl Store {
    /// Opens the store in `data_dir` (file `gapless.sqlite3`), or in memory when
    /// `data_dir` is `None`, and starts the writer thread.
    pub fn open(data_dir: Option<&Path>, durability: Durability) -> Result<Store, OpenError> {
        let (conn, file) = match data_dir {
            Some(dir) => {
                std::fs::create_dir_all(dir).map_err(|source| OpenError::DataDir {
                    path: dir.to_owned(),
                    source,
                })?;
                let file = dir.join("gapless.sqlite3");
                let conn = schema::open(Some(&file), durability).map_err(|e| match e {
                    OpenError::Sqlite(rusqlite::Error::SqliteFailure(f, _))
                        if f.code == rusqlite::ErrorCode::DatabaseBusy =>
                    {
                        OpenError::InUse { path: file.clone() }
                    }
                    e => e,
                })?;
                (conn, Some(file))
            }
            None => (schema::open(None, durability)?, None),
        };
        let conn = Arc::new(Mutex::new(conn));
        let readers = match &file {
            Some(file) => (0..READERS)
                .map(|_| schema::open_reader(file).map(|c| Arc::new(Mutex::new(c))))
                .collect::<Result<Vec<_>, _>>()?,
            None => vec![Arc::clone(&conn)],
        };
        let shared = Arc::new(Shared::default());
        let mut writer = Writer::load(Arc::clone(&conn), Arc::clone(&shared))?;
        if let (Some(file), Durability::Full) = (&file, durability) {
            // Commits are synced by the syncer from now on, not by SQLite.
            let data_dir = |source| OpenError::DataDir {
                path: file.clone(),
                source,
            };
            let c = conn.lock().unwrap_or_else(|p| p.into_inner());
            let open_wal = || {
                schema::open_wal(&c)
                    .map_err(data_dir)?
                    .ok_or_else(|| data_dir(std::io::ErrorKind::NotFound.into()))
            };
            let (wal, in_place) = (open_wal()?, open_wal()?);
            writer.sync_with(
                syncer::Syncer::start(wal, in_place, Arc::clone(&shared)).map_err(data_dir)?,
            );
            c.pragma_update(None, "synchronous", "NORMAL")?;
        }
        let writer = Arc::new(Mutex::new(writer));
        let (tx, rx) = mpsc::channel();
        let runs = Arc::clone(&writer);
        std::thread::Builder::new()
            .name("gapless-writer".into())
            .spawn(move || Writer::run(runs, rx))
            .map_err(|e| OpenError::DataDir {
                path: PathBuf::new(),
                source: e,
            })?;
        Ok(Store(Arc::new(Parts {
            commit_in_place: file.is_some(),
            tx,
            writer,
            in_flight: AtomicUsize::new(0),
            shared,
            readers,
            next_reader: AtomicUsize::new(0),
            rooms: Arc::default(),
        })))
    }

    /// The committed state readers consult.
    pub fn shared(&self) -> &Shared {
        &self.0.shared
    }

    /// Creates a stream (or confirms an identical one).
    ///
    /// Submitted at the call; the future only waits for the answer (so it is small).
    pub fn create(
        &self,
        req: CreateReq,
    ) -> impl Future<Output = Result<CreateOk, CreateError>> + Send + '_ {
        self.call(|tx| Cmd::Create(req, tx), CreateError::Storage)
    }

    /// Appends (and possibly closes), acknowledged after the commit.
    ///
    /// Submitted at the call; the future only waits for the answer (so it is small).
    pub fn append(
        &self,
        req: AppendReq,
    ) -> impl Future<Output = Result<AppendOk, AppendError>> + Send + '_ {
        self.call(|tx| Cmd::Append(req, tx), AppendError::Storage)
    }

    /// Deletes a stream.
    ///
    /// Submitted at the call; the future only waits for the answer (so it is small).
    pub fn delete(&self, path: &str) -> impl Future<Output = Result<(), DeleteError>> + Send + '_ {
        let path = path.to_owned();
        self.call(|tx| Cmd::Delete(path, tx), DeleteError::Storage)
    }

    /// Sends a command to the writer, and returns what waits for its answer; a stopped
    /// writer is the storage error `stopped` builds. An append alone in flight is
    /// committed in this thread when the writer is idle: two thread hand-offs fewer
    /// for a lone producer, and no smaller groups when many write at once (see
    /// `Writer::commit_now`, which leaves any other command to the writer thread). The command
    /// is submitted here, not when the answer is first awaited: what waits holds only
    /// the answer's receiver (a future awaited in every write request's, which it
    /// would otherwise size with the command twice over).
    fn call<T, E>(
        &self,
        cmd: impl FnOnce(oneshot::Sender<Result<T, E>>) -> Cmd,
        stopped: fn(String) -> E,
    ) -> impl Future<Output = Result<T, E>> + Send + '_
    where
        T: Send + 'static,
        E: Send + 'static,
    {
        let (tx, rx) = oneshot::channel();
        let in_flight = InFlight::enter(&self.0.in_flight);
        let mut cmd = Some(cmd(tx));
        if in_flight.alone && self.0.commit_in_place {
            cmd = cmd.and_then(|cmd| Writer::commit_now(&self.0.writer, cmd));
        }
        let sent = match cmd {
            Some(cmd) => self.0.tx.send(cmd).is_ok(),
            None => true,
        };
        async move {
            if !sent {
                return Err(stopped("the writer has stopped".into()));
            }
            // `in_flight` counts until the answer is in. Dropped unanswered, the
            // command was not committed: the writer stopped, or a bug made it give up
            // the group.
            let answer = rx.await;
            drop(in_flight);
            answer.unwrap_or_else(|_| {
                Err(stopped(
                    "the writer stopped or failed before committing this write".into(),
                ))
            })
        }
    }

    /// Finishes queued writes, persists access times and stops the writer.
    pub async fn shutdown(&self) {
        let (tx, rx) = oneshot::channel();
        if self.0.tx.send(Cmd::Shutdown(tx)).is_ok() {
            let _ = rx.await;
        }
    }

    /// Reads committed positions `[from, to)` of `live`'s stream (`meta` is its
    /// metadata as the caller saw it), up to about `max_bytes` (at least one chunk):
    /// from the newest chunks kept in memory when all are there, otherwise from
    /// storage on a blocking thread.
    pub async fn read(
        &self,
        live: &Live,
        meta: Arc<StreamMeta>,
        from: u64,
        to: u64,
        max_bytes: usize,
    ) -> Result<ReadChunk, String> {
        if let Some(chunk) = live.read_recent(meta.is_json(), from, to, max_bytes) {
            return Ok(chunk);
        }
        on_reader(self.reader(), move |conn| {
            reader::read_range(conn, &meta, from, to, max_bytes)
        })
        .await
    }

    /// Reads like [`Store::read`], but answers as soon as it knows how far the read
    /// goes (from the chunks' sizes), with a body that arrives in pieces of about
    /// [`PIECE_BYTES`] while storage is still being read. The reading keeps at most
    /// [`PIECES_AHEAD`] pieces ahead of the body's consumer: a large page costs no
    /// more memory than a small one, and a slow client holds no read connection
    /// while it is slow.
    pub async fn read_streamed(
        &self,
        live: &Live,
        meta: Arc<StreamMeta>,
        from: u64,
        to: u64,
        max_bytes: usize,
    ) -> Result<ReadStream, String> {
        if let Some(chunk) = live.read_recent(meta.is_json(), from, to, max_bytes) {
            return Ok(ReadStream::whole(chunk));
        }
        let conn = self.reader();
        let measured = {
            let meta = Arc::clone(&meta);
            on_reader(Arc::clone(&conn), move |conn| {
                reader::measure(conn, &meta, from..to, max_bytes)
            })
            .await?
        };
        // As gathered: brackets around JSON messages.
        let len = measured.bytes + if meta.is_json() { 2 } else { 0 };
        Ok(ReadStream {
            count: measured.count,
            next: measured.next,
            body: ReadBody::Pieces(PendingRead {
                range: from..measured.next,
                conn,
                rooms: Arc::clone(&self.0.rooms),
                meta,
                len,
            }),
        })
    }

    /// A read connection (they take turns).
    fn reader(&self) -> Arc<Mutex<Connection>> {
        let i = self.0.next_reader.fetch_add(1, Ordering::Relaxed) % self.0.readers.len();
        Arc::clone(&self.0.readers[i])
    }
}

/// Runs `read` with `conn` on a blocking thread; a storage error, or a read that
/// panicked, is its message.
async fn on_reader<T: Send + 'static>(
    conn: Arc<Mutex<Connection>>,
    read: impl FnOnce(&Connection) -> rusqlite::Result<T> + Send + 'static,
) -> Result<T, String> {
    tokio::task::spawn_blocking(move || {
        let conn = conn.lock().unwrap_or_else(|p| p.into_inner());
        read(&conn).map_err(|e| e.to_string())
    })
    .await
    .map_err(|e| e.to_string())?
}

/// How much of a streamed read is gathered before it is sent on.
pub const PIECE_BYTES: usize = 256 << 10;
/// How many pieces a streamed read gathers ahead of the body's consumer.
pub const PIECES_AHEAD: usize = 2;

/// Reads `range` (measured beforehand) piece by piece into `pieces`, each piece on a
/// blocking thread, waiting while the consumer is [`PIECES_AHEAD`] pieces behind. A
/// failed read, or one that finds fewer positions than were measured (the stream was
/// deleted meanwhile), ends the body with an error.
async fn read_pieces(
    conn: Arc<Mutex<Connection>>,
    rooms: Arc<Rooms>,
    meta: Arc<StreamMeta>,
    range: std::ops::Range<u64>,
    pieces: tokio::sync::mpsc::Sender<Result<Piece, String>>,
) {
    if range.is_empty() {
        let bytes = ReadChunk::empty(meta.is_json(), range.start).into_body();
        let _ = pieces
            .send(Ok(Piece {
                bytes: Bytes::from(bytes),
                last: true,
            }))
            .await;
        return;
    }
    let mut out = ReadChunk::open_in(rooms.take(), meta.is_json(), range.start);
    let mut at = range.start;
    loop {
        let (meta, end) = (Arc::clone(&meta), range.end);
        let step = on_reader(Arc::clone(&conn), move |conn| {
            reader::read_into(conn, &meta, at..end, PIECE_BYTES, &mut out).map(|()| out)
        })
        .await;
        out = match step {
            Ok(back) => back,
            Err(e) => {
                let _ = pieces.send(Err(e)).await;
                return;
            }
        };
        let piece = if out.next == at {
            Err("the stream's data went away while it was read".to_owned())
        } else {
            at = out.next;
            let last = at >= range.end;
            if last {
                out.close();
            }
            let (room, len) = out.take_body(if last { Vec::new() } else { rooms.take() });
            Ok(Piece {
                bytes: rooms.lend(room, len),
                last,
            })
        };
        let done = piece.as_ref().map_or(true, |p| p.last);
        // A consumer that went away needs no more.
        if pieces.send(piece).await.is_err() || done {
            return;
        }
    }
}

/// A read answered before its body is whole: see [`Store::read_streamed`].
#[derive(Debug)]
pub struct ReadStream {
    /// Positions covered.
    pub count: u64,
    /// The position after the last one returned.
    pub next: u64,
    /// The response body (for JSON streams, one array).
    pub body: ReadBody,
}

impl ReadStream {
    /// A read that was whole at once.
    pub fn whole(chunk: ReadChunk) -> Self {
        ReadStream {
            count: chunk.count,
            next: chunk.next,
            body: ReadBody::Whole(chunk.into_body()),
        }
    }
}

/// The body of a [`ReadStream`].
#[derive(Debug)]
pub enum ReadBody {
    /// All of it.
    Whole(Vec<u8>),
    /// Measured, not yet read: [`PendingRead::start`] reads it.
    Pieces(PendingRead),
}

/// A measured read whose payload is not read yet (an answer that turns out to be
/// "not modified" never reads it).
pub struct PendingRead {
    conn: Arc<Mutex<Connection>>,
    rooms: Arc<Rooms>,
    meta: Arc<StreamMeta>,
    range: std::ops::Range<u64>,
    len: usize,
}

impl std::fmt::Debug for PendingRead {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PendingRead")
            .field("range", &self.range)
            .field("len", &self.len)
            .finish_non_exhaustive()
    }
}

impl PendingRead {
    /// The body's exact length in bytes.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the body is empty.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Starts reading: the pieces in order, the last marked. A read that fails, or
    /// whose data went away, sends an `Err` instead; a channel that closes before the
    /// last piece means the same (the reading task was stopped).
    pub fn start(self) -> tokio::sync::mpsc::Receiver<Result<Piece, String>> {
        let (pieces, body) = tokio::sync::mpsc::channel(PIECES_AHEAD);
        tokio::spawn(read_pieces(
            self.conn, self.rooms, self.meta, self.range, pieces,
        ));
        body
    }
}

/// A piece of a streamed read's body.
#[derive(Debug, PartialEq, Eq)]
pub struct Piece {
    /// Its bytes.
    pub bytes: Bytes,
    /// It ends the body.
    pub last: bool,
}
