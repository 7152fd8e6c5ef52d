//! The SQLite schema: opening a database, creating its tables, loading what it holds.

use std::path::Path;

use rusqlite::{params, Connection, OpenFlags};

use super::meta::{Inherited, Segment, StreamMeta};
use super::producers::Producers;
use super::{Map, OpenError};

/// How hard a commit pushes data to the disk.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Durability {
    /// Every group commit's write-ahead log is fsynced before it is acknowledged or
    /// published (by the store's syncer, SQLite itself running `synchronous=NORMAL`);
    /// nothing acknowledged is lost even on power loss.
    Full,
    /// `synchronous=NORMAL`: commits survive a crash or `kill -9` of the server, but
    /// the last commits before a power loss may be lost; much cheaper.
    Normal,
}

/// The columns of a stored chunk, in `chunks` and in `landed` alike.
macro_rules! chunk_table_columns {
    () => {
        "
    stream_id INTEGER NOT NULL,
    start     INTEGER NOT NULL,
    end       INTEGER NOT NULL,
    data      BLOB NOT NULL,
    ends      BLOB,
    blob      INTEGER,
    bytes     INTEGER"
    };
}

const SCHEMA: &str = concat!(
    "
CREATE TABLE IF NOT EXISTS streams (
    id            INTEGER PRIMARY KEY,
    path          TEXT NOT NULL,
    content_type  TEXT NOT NULL,
    ttl_secs      INTEGER,
    expires_at_ms INTEGER,
    created_ms    INTEGER NOT NULL,
    access_ms     INTEGER NOT NULL,
    tail          INTEGER NOT NULL,
    closed        INTEGER NOT NULL DEFAULT 0,
    last_seq      TEXT,
    deleted       INTEGER NOT NULL DEFAULT 0,
    chain         TEXT NOT NULL DEFAULT '',
    forked_from   INTEGER,
    fork_at       INTEGER NOT NULL DEFAULT 0,
    epoch         INTEGER NOT NULL DEFAULT 0
);
-- `blob`: where the payload is when it is not in `data`; `bytes`: its length then, so
-- that measuring a read seeks no blob (NULL in rows written before the column
-- existed: their blob's length is read instead).
CREATE TABLE IF NOT EXISTS chunks (",
    chunk_table_columns!(),
    ",
    PRIMARY KEY (stream_id, start)
) WITHOUT ROWID;
-- Chunk payloads too large for a row of `chunks`. `ends` comes first: a partial read
-- reads it without walking the overflow pages of `data`.
CREATE TABLE IF NOT EXISTS blobs (
    id   INTEGER PRIMARY KEY,
    ends BLOB,
    data BLOB NOT NULL
);
-- Where chunks land first, in commit order: a group commit then writes one or two
-- pages of this table, however many streams its chunks belong to, where inserting into
-- `chunks` would write a page per stream. The writer moves them into `chunks` in bulk
-- (see `writer::FOLD_ROWS`), joining a stream's neighbouring small chunks into one;
-- every landed chunk of a stream comes after all of its chunks in `chunks`.
CREATE TABLE IF NOT EXISTS landed (
    seq       INTEGER PRIMARY KEY,",
    chunk_table_columns!(),
    "
);
-- Counters that must not go back when the rows that showed them are deleted: `epoch`,
-- the highest stream epoch issued.
CREATE TABLE IF NOT EXISTS counters (
    name  TEXT PRIMARY KEY,
    value INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS producers (
    stream_id   INTEGER NOT NULL,
    producer_id TEXT NOT NULL,
    epoch       INTEGER NOT NULL,
    seq         INTEGER NOT NULL,
    PRIMARY KEY (stream_id, producer_id)
) WITHOUT ROWID;
"
);

/// The layout this build writes, kept in the database's `user_version`: 1 adds
/// `blobs` (0: databases from before versions were kept), 2 adds `landed`, which an
/// earlier build would not read, 3 adds `streams.epoch` (an earlier build would issue
/// offsets without it), 4 gives forks epochs of their own and adds `streams.inherited`
/// (an earlier build would refuse their sources' offsets). A database written by a
/// later layout is refused rather than misread.
pub const LAYOUT_VERSION: i64 = 4;

/// The SQLite VFS every connection to a database file uses: the server's process
/// holds the file's lock for as long as it has the file open, so that no other
/// process (a second server on the same directory, say) can use it meanwhile, and
/// its own connections coordinate in memory, with the write-ahead log's index on the
/// heap: a transaction takes no file lock (six `fcntl` calls per commit otherwise).
const VFS: &str = "unix-excl";

/// How many frames the write-ahead log gathers before the commit that crosses it
/// checkpoints it (SQLite's default: 1,000). A checkpoint holds the writer, and every
/// append waiting on it, for about 2 ms; four times fewer of them took the
/// sixteen-producer p99 from 1.40 ms to 1.26 (medians of five alternated runs of
/// `gapless-bench --only append`), at the cost of a longer log (about 20 MiB, see
/// [`presize_wal`], written at each start in about 15 ms).
pub const CHECKPOINT_FRAMES: i64 = 4000;

/// Opens (creating if needed) the database at `path`, or a private in-memory one.
pub fn open(path: Option<&Path>, durability: Durability) -> Result<Connection, OpenError> {
    let conn = match path {
        Some(p) => Connection::open_with_flags_and_vfs(p, OpenFlags::default(), VFS)?,
        None => Connection::open_in_memory()?,
    };
    let found: i64 = conn.pragma_query_value(None, "user_version", |r| r.get(0))?;
    if found > LAYOUT_VERSION {
        return Err(OpenError::Newer {
            found,
            known: LAYOUT_VERSION,
        });
    }
    conn.pragma_update(None, "journal_mode", "WAL")?;
    let sync = match durability {
        Durability::Full => "FULL",
        Durability::Normal => "NORMAL",
    };
    conn.pragma_update(None, "synchronous", sync)?;
    conn.pragma_update(None, "foreign_keys", "OFF")?;
    conn.pragma_update(None, "wal_autocheckpoint", CHECKPOINT_FRAMES)?;
    conn.execute_batch(SCHEMA)?;
    add_column(&conn, "chunks", "blob", "INTEGER")?;
    add_column(&conn, "chunks", "bytes", "INTEGER")?;
    add_column(&conn, "streams", "epoch", "INTEGER NOT NULL DEFAULT 0")?;
    add_column(&conn, "streams", "inherited", "TEXT NOT NULL DEFAULT ''")?;
    if found < LAYOUT_VERSION {
        conn.pragma_update(None, "user_version", LAYOUT_VERSION)?;
    }
    Ok(conn)
}

/// Adds a column a database from an earlier layout lacks: `chunks.blob` (before
/// chunks could keep their payload out of line) and `chunks.bytes` (before they kept
/// its length), NULL in every existing row (a payload stays inline, where reading
/// finds it; a blob's length is read from the blob); `streams.epoch` (before offsets
/// had epochs), 0 in every existing row (their offsets stay as they were issued).
fn add_column(conn: &Connection, table: &str, name: &str, decl: &str) -> rusqlite::Result<()> {
    let has: bool = conn.query_row(
        "SELECT COUNT(*) FROM pragma_table_info(?1) WHERE name = ?2",
        [table, name],
        |r| r.get::<_, i64>(0).map(|n| n > 0),
    )?;
    if !has {
        conn.execute_batch(&format!("ALTER TABLE {table} ADD COLUMN {name} {decl}"))?;
    }
    Ok(())
}

/// How far past the frames one checkpoint interval writes the log is made ready: it
/// runs over when a checkpoint must wait for a reader.
const WAL_SLACK: f64 = 1.25;

/// Makes the database's write-ahead log as long as it grows between two checkpoints,
/// with zeros written and synced, so that a commit overwrites blocks the file already
/// has: extending the file instead makes each commit's `fdatasync` also write the
/// file's new length and blocks (measured here: 235 µs a commit while the log grew
/// after a start, 135 µs once it had its length). SQLite keeps the log's length from
/// then on (no `journal_size_limit` is set) and ignores what lies past its last valid
/// frame, zeros included. Only an existing log is lengthened, and only while nothing
/// writes to it: the writer calls this before it takes its first command.
pub fn presize_wal(conn: &Connection) -> std::io::Result<()> {
    use std::os::unix::fs::FileExt;

    let Some(wal) = open_wal(conn)? else {
        return Ok(());
    };
    let pragma = |name: &str| -> std::io::Result<u64> {
        conn.pragma_query_value(None, name, |r| r.get::<_, i64>(0))
            .map(|v| v.max(0) as u64)
            .map_err(std::io::Error::other)
    };
    let frames = pragma("wal_autocheckpoint")?;
    let frame_bytes = pragma("page_size")? + 24;
    let target = (32.0 + (frames * frame_bytes) as f64 * WAL_SLACK) as u64;
    let mut at = wal.metadata()?.len();
    if at >= target {
        return Ok(());
    }
    let zeros = vec![0u8; 1 << 18];
    while at < target {
        let n = zeros.len().min((target - at) as usize);
        wal.write_all_at(&zeros[..n], at)?;
        at += n as u64;
    }
    wal.sync_data()
}

/// Opens the write-ahead log of `conn`'s database file, beside the file SQLite
/// opened (its path as SQLite resolved it); `None` for a database in memory.
pub fn open_wal(conn: &Connection) -> std::io::Result<Option<std::fs::File>> {
    let Some(db) = conn.path().filter(|p| !p.is_empty()) else {
        return Ok(None);
    };
    std::fs::OpenOptions::new()
        .write(true)
        .open(format!("{db}-wal"))
        .map(Some)
}

/// How much of the database file a reader maps into memory.
const READER_MMAP_BYTES: i64 = 1 << 34;

/// Opens a reading connection to the database file at `path` (the writer's must be
/// open: see `VFS`). It is opened for writing, as the VFS coordinates only such
/// connections in memory, and made to refuse writes (`query_only`).
pub fn open_reader(path: &Path) -> rusqlite::Result<Connection> {
    let conn = Connection::open_with_flags_and_vfs(
        path,
        OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        VFS,
    )?;
    conn.pragma_update(None, "query_only", "ON")?;
    // Catch-up reads map the database instead of copying it page by page with pread
    // (what the WAL still holds is read as before).
    conn.pragma_update(None, "mmap_size", READER_MMAP_BYTES)?;
    Ok(conn)
}

/// Every stream, live or soft-deleted, by id.
pub fn load_streams(conn: &Connection) -> rusqlite::Result<Map<i64, StreamMeta>> {
    let mut stmt = conn.prepare(
        "SELECT id, path, content_type, ttl_secs, expires_at_ms, created_ms, access_ms, tail,
                closed, last_seq, deleted, chain, forked_from, fork_at, epoch, inherited
         FROM streams",
    )?;
    let rows = stmt.query_map([], |r| {
        let chain: String = r.get(11)?;
        Ok(StreamMeta {
            id: r.get(0)?,
            epoch: r.get::<_, i64>(14)? as u64,
            path: r.get(1)?,
            content_type: r.get(2)?,
            ttl_secs: r.get::<_, Option<i64>>(3)?.map(|v| v as u64),
            expires_at_ms: r.get::<_, Option<i64>>(4)?.map(|v| v as u64),
            created_ms: r.get::<_, i64>(5)? as u64,
            access_ms: r.get::<_, i64>(6)? as u64,
            tail: r.get::<_, i64>(7)? as u64,
            closed: r.get::<_, i64>(8)? != 0,
            last_seq: r.get(9)?,
            deleted: r.get::<_, i64>(10)? != 0,
            chain: decode_chain(&chain),
            inherited: decode_inherited(&r.get::<_, String>(15)?),
            forked_from: r.get(12)?,
            fork_at: r.get::<_, i64>(13)? as u64,
            landed_from: None,
        })
    })?;
    let mut out = Map::default();
    for meta in rows {
        let meta = meta?;
        out.insert(meta.id, meta);
    }
    Ok(out)
}

/// The highest stream epoch issued (0 when none was recorded).
pub fn load_last_epoch(conn: &Connection) -> rusqlite::Result<u64> {
    use rusqlite::OptionalExtension;
    let value: Option<i64> = conn
        .query_row("SELECT value FROM counters WHERE name = 'epoch'", [], |r| {
            r.get(0)
        })
        .optional()?;
    Ok(value.map_or(0, |v| v as u64))
}

/// Records `epoch` as the highest stream epoch issued.
pub fn save_last_epoch(conn: &Connection, epoch: u64) -> rusqlite::Result<()> {
    conn.prepare_cached("INSERT OR REPLACE INTO counters (name, value) VALUES ('epoch', ?1)")?
        .execute([epoch as i64])?;
    Ok(())
}

/// Every producer's state: (stream id, producer id) → (epoch, last seq).
pub(crate) fn load_producers(conn: &Connection) -> rusqlite::Result<Producers> {
    let mut stmt = conn.prepare("SELECT stream_id, producer_id, epoch, seq FROM producers")?;
    let rows = stmt.query_map([], |r| {
        Ok((
            (r.get::<_, i64>(0)?, r.get::<_, String>(1)?),
            (r.get::<_, i64>(2)? as u64, r.get::<_, i64>(3)? as u64),
        ))
    })?;
    rows.collect()
}

/// Writes a stream's metadata row (insert or replace).
pub fn save_stream(conn: &Connection, m: &StreamMeta) -> rusqlite::Result<()> {
    conn.prepare_cached(
        "INSERT OR REPLACE INTO streams (id, path, content_type, ttl_secs, expires_at_ms,
            created_ms, access_ms, tail, closed, last_seq, deleted, chain, forked_from, fork_at,
            epoch, inherited)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16)",
    )?
    .execute(params![
        m.id,
        m.path,
        m.content_type,
        m.ttl_secs.map(|v| v as i64),
        m.expires_at_ms.map(|v| v as i64),
        m.created_ms as i64,
        m.access_ms as i64,
        m.tail as i64,
        m.closed as i64,
        m.last_seq,
        m.deleted as i64,
        encode_chain(&m.chain),
        m.forked_from,
        m.fork_at as i64,
        m.epoch as i64,
        encode_inherited(&m.inherited),
    ])?;
    Ok(())
}

/// Pairs written `a:b`, comma-separated: how `chain` and `inherited` are kept.
fn encode_pairs<A: std::fmt::Display>(pairs: impl Iterator<Item = (A, u64)>) -> String {
    pairs
        .map(|(a, b)| format!("{a}:{b}"))
        .collect::<Vec<_>>()
        .join(",")
}

/// The pairs of [`encode_pairs`]; malformed ones are skipped.
fn decode_pairs<A: std::str::FromStr>(text: &str) -> impl Iterator<Item = (A, u64)> + '_ {
    text.split(',').filter_map(|part| {
        let (a, b) = part.split_once(':')?;
        Some((a.parse().ok()?, b.parse().ok()?))
    })
}

/// `id:until` per segment (see [`StreamMeta::chain`]).
fn encode_chain(chain: &[Segment]) -> String {
    encode_pairs(chain.iter().map(|s| (s.id, s.until)))
}

fn decode_chain(text: &str) -> Vec<Segment> {
    decode_pairs(text)
        .map(|(id, until)| Segment { id, until })
        .collect()
}

/// `epoch:until` per inherited epoch (see [`StreamMeta::inherited`]).
fn encode_inherited(inherited: &[Inherited]) -> String {
    encode_pairs(inherited.iter().map(|i| (i.epoch, i.until)))
}

fn decode_inherited(text: &str) -> Vec<Inherited> {
    decode_pairs(text)
        .map(|(epoch, until)| Inherited { epoch, until })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chain_and_inherited_epochs_round_trip() {
        let chain = vec![Segment { id: 1, until: 5 }, Segment { id: 9, until: 70 }];
        assert_eq!(decode_chain(&encode_chain(&chain)), chain);
        assert_eq!(decode_chain(""), vec![]);
        let inherited = vec![
            Inherited {
                epoch: 1_764_000_000_000,
                until: 5,
            },
            Inherited { epoch: 3, until: 0 },
        ];
        assert_eq!(decode_inherited(&encode_inherited(&inherited)), inherited);
        assert_eq!(decode_inherited(""), vec![]);
    }
}
