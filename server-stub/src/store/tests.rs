//! Tests of storage through [`Store`]: chunks kept inline or out of line, landed or
//! folded, read whole and streamed, in part and across both layouts, and databases
//! from before `blobs`.

use std::path::PathBuf;
use std::sync::Arc;

use rusqlite::{params, Connection};

use super::*;

/// A fresh directory for one test's database.
fn scratch(name: &str) -> PathBuf {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    let dir = std::env::temp_dir().join(format!(
        "gapless-store-{name}-{}-{nanos}",
        std::process::id()
    ));
    std::fs::create_dir_all(&dir).expect("scratch directory");
    dir
}

/// A store in a fresh directory (see [`scratch`]) holding an empty JSON stream `s`.
async fn with_json_stream(name: &str) -> (PathBuf, Store) {
    with_json_stream_at(name, Durability::Normal).await
}

/// [`with_json_stream`] with the store at `durability` (`Full`: with its syncer).
async fn with_json_stream_at(name: &str, durability: Durability) -> (PathBuf, Store) {
    let dir = scratch(name);
    let store = Store::open(Some(&dir), durability).expect("open");
    store.create(CreateReq::json("s")).await.expect("create");
    (dir, store)
}

fn append(path: &str, messages: &[String]) -> AppendReq {
    AppendReq {
        path: path.into(),
        content_type: Some("application/json".into()),
        body: Some(Payload::json(messages.iter().map(String::as_str))),
        close: false,
        stream_seq: None,
        producer: None,
    }
}

/// A stream of bytes at `path` whose content type is `content_type`.
async fn create_bytes(store: &Store, path: &str, content_type: &str) {
    let mut req = CreateReq::json(path);
    req.content_type = Some(content_type.into());
    store.create(req).await.expect("create");
}

/// An append of `data` to the stream of bytes at `path` (of `content_type`).
fn append_bytes(path: &str, content_type: &str, data: Vec<u8>) -> AppendReq {
    let mut req = append(path, &[]);
    req.content_type = Some(content_type.into());
    req.body = Some(Payload::bytes(data));
    req
}

/// `n` messages numbered from `first`, each about `pad` bytes long.
fn messages(first: usize, n: usize, pad: usize) -> Vec<String> {
    (first..first + n)
        .map(|i| format!("{{\"i\":{i},\"pad\":\"{}\"}}", "x".repeat(pad)))
        .collect()
}

/// The messages of a JSON read's body.
fn numbers(body: &[u8]) -> Vec<u64> {
    let values: Vec<serde_json::Value> = serde_json::from_slice(body).expect("a JSON array");
    values.iter().map(|v| v["i"].as_u64().expect("i")).collect()
}

/// Reads `[from, tail)` page by page, whole and streamed (in pieces of
/// [`PIECE_BYTES`]), and checks that both give the same pages, and the streamed one
/// the length it measured; returns each page's positions and body.
async fn pages(store: &Store, path: &str, from: u64, max_bytes: usize) -> Vec<(u64, Vec<u8>)> {
    let live = store.shared().get(path).expect("stream");
    let meta = live.meta();
    let mut at = from;
    let mut pages = Vec::new();
    while at < meta.tail {
        let whole = store
            .read(&live, Arc::clone(&meta), at, meta.tail, max_bytes)
            .await
            .expect("read");
        let streamed = store
            .read_streamed(&live, Arc::clone(&meta), at, meta.tail, max_bytes)
            .await
            .expect("streamed read");
        assert_eq!((streamed.count, streamed.next), (whole.count, whole.next));
        let body = match streamed.body {
            ReadBody::Whole(bytes) => bytes,
            ReadBody::Pieces(pending) => {
                let len = pending.len();
                let mut pieces = pending.start();
                let mut body = Vec::new();
                let mut ended = false;
                while let Some(piece) = pieces.recv().await {
                    let piece = piece.expect("piece");
                    assert!(!ended, "a piece after the last");
                    let size = piece.bytes.len();
                    // A piece ends with the chunk that takes it to PIECE_BYTES (the
                    // largest chunk these tests store is under 2 MiB).
                    assert!(size < PIECE_BYTES + (2 << 20), "a piece of {size}");
                    body.extend(piece.bytes);
                    ended = piece.last;
                }
                assert!(ended, "no last piece");
                assert_eq!(body.len(), len, "the measured length");
                body
            }
        };
        assert_eq!(
            body,
            whole.body(),
            "streamed and whole reads from {at} differ"
        );
        assert!(whole.next > at, "no progress from {at}");
        pages.push((whole.count, body));
        at = whole.next;
    }
    pages
}

/// Every message number a JSON stream holds from `from` on, read in pages of
/// `max_bytes` (see [`pages`]).
async fn read_all(store: &Store, path: &str, from: u64, max_bytes: usize) -> Vec<u64> {
    let mut read = Vec::new();
    for (count, body) in pages(store, path, from, max_bytes).await {
        let page = numbers(&body);
        assert_eq!(page.len() as u64, count);
        read.extend(page);
    }
    read
}

fn count(file: &std::path::Path, table: &str) -> i64 {
    let conn = Connection::open(file).expect("open");
    conn.query_row(&format!("SELECT COUNT(*) FROM {table}"), [], |r| r.get(0))
        .expect("count")
}

#[tokio::test]
async fn large_chunks_go_out_of_line_and_read_back_from_any_position() {
    let (dir, store) = with_json_stream("blobs").await;
    let file = dir.join("gapless.sqlite3");
    // Small, large, small, large: 3 + 400 + 2 + 300 messages; then 2.4 MB more, for
    // streamed reads of several pieces.
    let sizes = [
        (3, 5),
        (400, 60),
        (2, 5),
        (300, 200),
        (1000, 600),
        (1000, 600),
        (1000, 600),
        (1000, 600),
    ];
    let mut first = 0;
    for (n, pad) in sizes {
        store
            .append(append("s", &messages(first, n, pad)))
            .await
            .expect("append");
        first += n;
    }
    assert_eq!(count(&file, "blobs"), 6, "the large chunks are out of line");
    // The newest chunks are in memory: a fresh store reads only from storage.
    store.shutdown().await;
    let store = Store::open(Some(&dir), Durability::Normal).expect("reopen");
    let all: Vec<u64> = (0..first as u64).collect();
    for from in [
        0, 1, 2, 3, 4, 200, 402, 403, 404, 405, 406, 704, 705, 2000, 4704,
    ] {
        for max_bytes in [1, 5_000, 1 << 20, 1 << 30] {
            let read = read_all(&store, "s", from, max_bytes).await;
            assert_eq!(
                read,
                all[from as usize..],
                "from {from}, pages of {max_bytes}"
            );
        }
    }
    store.delete("s").await.expect("delete");
    assert_eq!(
        count(&file, "blobs"),
        0,
        "deleting the stream deletes its blobs"
    );
    assert_eq!(count(&file, "chunks"), 0);
    store.shutdown().await;
    let _ = std::fs::remove_dir_all(dir);
}

/// Two JSON streams `s` and `t` appended in turn, one or two small messages at a time
/// with a large (out of line) chunk now and then, `FOLD_ROWS + 40` appends in all: the
/// chunks of the first fold are in `chunks` (the small ones joined), the last 40
/// still in `landed`. Returns
/// the store, its file and each stream's message count.
async fn landed_and_folded(name: &str) -> (PathBuf, Store, [usize; 2]) {
    let (dir, store) = with_json_stream(name).await;
    store.create(CreateReq::json("t")).await.expect("create");
    let mut next = [0usize; 2];
    for k in 0..writer::FOLD_ROWS + 40 {
        let i = k % 2;
        let (n, pad) = if k % 64 == 7 {
            (300, 600)
        } else {
            (1 + k % 3, 10)
        };
        let path = ["s", "t"][i];
        store
            .append(append(path, &messages(next[i], n, pad)))
            .await
            .expect("append");
        next[i] += n;
    }
    let file = dir.join("gapless.sqlite3");
    // 40 since the fold, unless the writer's sweep (every 5 s) folded some meanwhile.
    let landed = count(&file, "landed");
    assert!((1..=40).contains(&landed), "{landed} landed");
    // The fold joined neighbouring small chunks: fewer rows than it moved.
    let chunks = count(&file, "chunks");
    assert!(
        (2..writer::FOLD_ROWS as i64 / 4).contains(&chunks),
        "{chunks} chunks"
    );
    (dir, store, next)
}

#[tokio::test]
async fn storage_reads_see_landed_and_folded_chunks_as_one_stream() {
    let (dir, store, counts) = landed_and_folded("landed").await;
    // Straight from storage, as a reader connection sees it: memory holds the newest
    // small chunks, so reads through the store would not come here for them.
    let conn = schema::open_reader(&dir.join("gapless.sqlite3")).expect("reader");
    for (path, n) in ["s", "t"].into_iter().zip(counts) {
        let meta = store.shared().get(path).expect("stream").meta();
        assert_eq!(meta.tail, n as u64);
        let all: Vec<u64> = (0..meta.tail).collect();
        // From every 97th position to the tail in pages of any size; from each of the
        // newest 60 (where the landed chunks are) also in pages of one chunk, and to
        // each of the positions after it.
        let newest = meta.tail.saturating_sub(60);
        let whole = |from| (from, meta.tail, &[3_000, 1 << 20][..]);
        let reads =
            (0..newest)
                .step_by(97)
                .map(whole)
                .chain((newest..meta.tail).flat_map(|from| {
                    (from + 1..=meta.tail).map(move |to| (from, to, &[1, 1 << 20][..]))
                }));
        for (from, to, sizes) in reads {
            for &max_bytes in sizes {
                let mut at = from;
                let mut read = Vec::new();
                while at < to {
                    let measured =
                        reader::measure(&conn, &meta, at..to, max_bytes).expect("measure");
                    // The measured range, as a response reads it: the writer's sweep
                    // may fold between the two (other chunks, other page ends).
                    let page = reader::read_range(&conn, &meta, at, measured.next, usize::MAX)
                        .expect("read");
                    assert_eq!((page.count, page.next), (measured.count, measured.next));
                    assert_eq!(page.body().len(), measured.bytes + 2, "[ and ]");
                    assert!(page.count > 0, "{path} from {at}: no progress");
                    read.extend(numbers(page.body()));
                    at = page.next;
                }
                assert_eq!(
                    read,
                    all[from as usize..to as usize],
                    "{path} [{from}, {to}) by {max_bytes}"
                );
            }
        }
    }
    store.shutdown().await;
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test]
async fn large_appends_are_folded_by_their_bytes_long_before_their_count() {
    let (dir, store) = with_json_stream("fold-bytes").await;
    let file = dir.join("gapless.sqlite3");
    // Each append carries 300 messages of about 620 bytes.
    let appends = writer::FOLD_BYTES / (300 * 620) + 10;
    for k in 0..appends {
        store
            .append(append("s", &messages(k * 300, 300, 600)))
            .await
            .expect("append");
    }
    let landed = count(&file, "landed") as usize;
    assert!(
        landed > 0 && landed <= 10,
        "{landed} of {appends} still landed"
    );
    let all: Vec<u64> = (0..appends as u64 * 300).collect();
    assert_eq!(read_all(&store, "s", 0, 1 << 20).await, all);
    store.shutdown().await;
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test]
async fn a_read_through_both_tables_ends_its_transaction_when_it_fails_or_panics() {
    let (dir, store, _) = landed_and_folded("landed-panic").await;
    let conn = schema::open_reader(&dir.join("gapless.sqlite3")).expect("reader");
    let meta = store.shared().get("s").expect("stream").meta();
    assert!(meta.landed_from.is_some());
    let failed = reader::each_chunk(&conn, &meta, 0..meta.tail, |_, _, _, _| {
        Err(rusqlite::Error::InvalidQuery)
    });
    assert!(failed.is_err());
    assert!(conn.is_autocommit(), "ended after an error");
    let panicked = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        reader::each_chunk(&conn, &meta, 0..meta.tail, |_, _, _, _| panic!("a bug"))
    }));
    assert!(panicked.is_err());
    assert!(conn.is_autocommit(), "ended after a panic");
    store.shutdown().await;
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test]
async fn chunks_landed_before_a_crash_are_folded_on_open_and_deleted_with_their_stream() {
    let (dir, store, counts) = landed_and_folded("landed-crash").await;
    let file = dir.join("gapless.sqlite3");
    store.shutdown().await;
    assert_eq!(count(&file, "landed"), 0, "a clean stop folds");
    {
        // As a `kill -9` leaves it: the newest chunks (a large one among them) not yet
        // folded.
        let conn = Connection::open(&file).expect("open");
        conn.execute_batch(
            "INSERT INTO landed (stream_id, start, end, data, ends, blob, bytes)
                 SELECT stream_id, start, end, data, ends, blob, bytes FROM chunks
                 WHERE start >= 250 ORDER BY stream_id, start;
             DELETE FROM chunks WHERE start >= 250;",
        )
        .expect("unfold");
    }
    assert!(count(&file, "landed") > 0);
    let store = Store::open(Some(&dir), Durability::Normal).expect("reopen");
    assert_eq!(count(&file, "landed"), 0, "folded on open");
    for (path, n) in ["s", "t"].into_iter().zip(counts) {
        let tail = store.shared().get(path).expect("stream").meta().tail;
        assert_eq!(tail, n as u64, "{path}'s tail found after the fold");
        let all: Vec<u64> = (0..tail).collect();
        assert_eq!(read_all(&store, path, 0, 1 << 20).await, all);
    }
    // Deleting a stream deletes what it has in both tables, and its blobs: `s` gets a
    // small and a large chunk more, which land.
    for (first, n, pad) in [(counts[0], 2, 10), (counts[0] + 2, 300, 600)] {
        store
            .append(append("s", &messages(first, n, pad)))
            .await
            .expect("append");
    }
    assert_eq!(count(&file, "landed"), 2);
    for path in ["s", "t"] {
        store.delete(path).await.expect("delete");
    }
    for table in ["landed", "chunks", "blobs"] {
        assert_eq!(
            count(&file, table),
            0,
            "{table} after deleting every stream"
        );
    }
    store.shutdown().await;
    let _ = std::fs::remove_dir_all(dir);
}

/// Creates a JSON stream at `path` that expires at `at_ms`, with `appended` in it, and
/// a fork of it at `{path}-fork` that outlives it by an hour (a fork would take its
/// source's expiry unless given one).
/// Time a test's setup has before the streams it makes expire (300 ms were once
/// too few for ten streams on a loaded machine).
const SETUP_MS: u64 = 1_500;

/// Sleeps until just past `at_ms`.
async fn sleep_past(at_ms: u64) {
    let left = at_ms.saturating_sub(meta::now_ms()) + 100;
    tokio::time::sleep(std::time::Duration::from_millis(left)).await;
}

/// A JSON stream `name` forked from `source` at its tail.
fn fork_at_tail(source: &str, name: &str) -> CreateReq {
    CreateReq {
        fork: Some(ForkReq {
            source: source.into(),
            offset: None,
            offset_epoch: None,
            sub_offset: None,
        }),
        ..CreateReq::json(name)
    }
}

async fn expiring_with_fork(store: &Store, path: &str, at_ms: u64, appended: &[String]) {
    let source = CreateReq {
        expires_at_ms: Some(at_ms),
        ..CreateReq::json(path)
    };
    store.create(source).await.expect("create");
    if !appended.is_empty() {
        store.append(append(path, appended)).await.expect("append");
    }
    let fork = CreateReq {
        expires_at_ms: Some(at_ms + 3_600_000),
        ..fork_at_tail(path, &format!("{path}-fork"))
    };
    store.create(fork).await.expect("fork");
}

#[tokio::test]
async fn a_path_created_again_over_an_expired_stream_that_forks_read_is_the_new_stream() {
    let dir = scratch("recreate-forked");
    let store = Store::open(Some(&dir), Durability::Normal).expect("open");
    let soon = meta::now_ms() + SETUP_MS;
    // Ten times over: which of the two streams at the path was published last used to
    // depend on hash order.
    let paths: Vec<String> = (0..10).map(|i| format!("src-{i}")).collect();
    for path in &paths {
        expiring_with_fork(&store, path, soon, &messages(0, 3, 10)).await;
    }
    sleep_past(soon).await;
    for path in &paths {
        // The expired source is kept (soft-deleted) for its fork; the path is free.
        let created = store
            .create(CreateReq::json(path.clone()))
            .await
            .expect("create again");
        assert!(created.created);
        let meta = store.shared().get(path).expect("published").meta();
        assert_eq!(
            (meta.id, meta.deleted, meta.tail),
            (created.meta.id, false, 0),
            "{path} is the new stream"
        );
        let fork = format!("{path}-fork");
        assert_eq!(read_all(&store, &fork, 0, 1 << 20).await, vec![0, 1, 2]);
    }
    let ids: Vec<i64> = paths
        .iter()
        .map(|p| store.shared().get(p).expect("published").meta().id)
        .collect();
    // And so after a restart.
    store.shutdown().await;
    let store = Store::open(Some(&dir), Durability::Normal).expect("reopen");
    for (path, id) in paths.iter().zip(ids) {
        let meta = store.shared().get(path).expect("published").meta();
        assert_eq!(
            (meta.id, meta.deleted),
            (id, false),
            "{path} after a restart"
        );
        store
            .append(append(path, &messages(0, 1, 10)))
            .await
            .expect("the new stream takes appends");
        let fork = format!("{path}-fork");
        assert_eq!(read_all(&store, &fork, 0, 1 << 20).await, vec![0, 1, 2]);
    }
    store.shutdown().await;
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test]
async fn a_path_whose_streams_are_all_kept_for_forks_is_the_latest_ones_after_a_restart() {
    let dir = scratch("kept-owner");
    let store = Store::open(Some(&dir), Durability::Normal).expect("open");
    let soon = meta::now_ms() + SETUP_MS;
    // Ten times over: which kept stream owned the path after a restart depended on
    // hash order.
    let paths: Vec<String> = (0..10).map(|i| format!("kept-{i}")).collect();
    for path in &paths {
        expiring_with_fork(&store, path, soon, &messages(0, 1, 10)).await;
    }
    sleep_past(soon).await;
    let mut latest = Vec::new();
    for path in &paths {
        // The expired source is kept for its fork; the stream made again at the path
        // is forked too, then deleted: kept as well, the path's latest.
        let created = store
            .create(CreateReq::json(path.clone()))
            .await
            .expect("create again");
        store
            .create(fork_at_tail(path, &format!("{path}-fork-2")))
            .await
            .expect("fork");
        store.delete(path).await.expect("delete");
        latest.push(created.meta.id);
    }
    store.shutdown().await;
    let store = Store::open(Some(&dir), Durability::Normal).expect("reopen");
    for (path, id) in paths.iter().zip(latest) {
        let meta = store.shared().get(path).expect("published").meta();
        assert_eq!(
            (meta.id, meta.deleted),
            (id, true),
            "{path} after a restart"
        );
        // Deleted, not expired: the path is not free.
        assert!(
            store.create(CreateReq::json(path.clone())).await.is_err(),
            "{path} was taken by a new stream"
        );
    }
    store.shutdown().await;
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test]
async fn a_fork_body_split_for_another_mode_than_its_sources_is_refused() {
    let store = Store::open(None, Durability::Normal).expect("open");
    store
        .create(CreateReq::json("json-source"))
        .await
        .expect("create");
    store
        .create(CreateReq {
            content_type: Some("text/plain".into()),
            ..CreateReq::json("text-source")
        })
        .await
        .expect("create");
    // As when the source was made again with another content type between the
    // handler's look at it and the writer's.
    let fork = |source: &str, name: &str, body: Payload| CreateReq {
        content_type: None,
        body: Some(body),
        ..fork_at_tail(source, name)
    };
    for (source, body) in [
        ("json-source", Payload::bytes(b"[1,2]".to_vec())),
        ("text-source", Payload::json(["1", "2"])),
    ] {
        let refused = store.create(fork(source, "f", body)).await;
        assert!(
            matches!(refused, Err(CreateError::Conflict(_))),
            "{source}: {refused:?}"
        );
        assert!(store.shared().get("f").is_none(), "nothing was made");
    }
    let made = store
        .create(fork("json-source", "f", Payload::json(["1", "2"])))
        .await
        .expect("a body split as its source is taken");
    assert_eq!(made.meta.tail, 2);
    store.shutdown().await;
}

#[tokio::test]
async fn a_read_the_crash_forgot_does_not_let_a_stream_with_a_time_to_live_expire() {
    let dir = scratch("ttl-grace");
    let store = Store::open(Some(&dir), Durability::Normal).expect("open");
    for path in ["read-lately", "long-idle"] {
        let req = CreateReq {
            ttl_secs: Some(2),
            ..CreateReq::json(path)
        };
        store.create(req).await.expect("create");
    }
    store.shutdown().await;
    {
        // As a `kill -9` leaves it: the last access saved by a sweep. `read-lately` was
        // read since (half a second before the crash), which only memory knew.
        let conn = Connection::open(dir.join("gapless.sqlite3")).expect("open");
        let now = meta::now_ms() as i64;
        for (path, saved) in [("read-lately", now - 2_500), ("long-idle", now - 60_000)] {
            conn.execute(
                "UPDATE streams SET access_ms = ?1 WHERE path = ?2",
                params![saved, path],
            )
            .expect("update");
        }
    }
    let store = Store::open(Some(&dir), Durability::Normal).expect("reopen");
    store
        .append(append("read-lately", &messages(0, 1, 5)))
        .await
        .expect("still alive");
    let expired = store.append(append("long-idle", &messages(0, 1, 5))).await;
    assert!(matches!(expired, Err(AppendError::NotFound)), "{expired:?}");
    store.shutdown().await;
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test]
async fn an_expired_stream_kept_for_its_fork_is_gone_from_its_path_swept_or_not() {
    let dir = scratch("expired-kept");
    let store = Store::open(Some(&dir), Durability::Normal).expect("open");
    let soon = meta::now_ms() + SETUP_MS;
    for path in ["swept", "restarted"] {
        expiring_with_fork(&store, path, soon, &[]).await;
    }
    sleep_past(soon).await;
    // The sweep keeps both expired sources for their forks (soft-deleted).
    store
        .0
        .writer
        .lock()
        .expect("writer")
        .commit(Vec::new(), true, false);
    assert!(store.shared().get("swept").expect("kept").meta().deleted);
    let gone = store.append(append("swept", &messages(0, 1, 5))).await;
    assert!(matches!(gone, Err(AppendError::NotFound)), "{gone:?}");
    let again = store.create(CreateReq::json("swept")).await.expect("again");
    assert!(again.created, "the path is free");
    store.shutdown().await;
    let store = Store::open(Some(&dir), Durability::Normal).expect("reopen");
    let gone = store.append(append("restarted", &messages(0, 1, 5))).await;
    assert!(matches!(gone, Err(AppendError::NotFound)), "{gone:?}");
    let again = store
        .create(CreateReq::json("restarted"))
        .await
        .expect("again");
    assert!(again.created, "the path is free after a restart too");
    assert_eq!(
        read_all(&store, "restarted-fork", 0, 1 << 20).await,
        Vec::<u64>::new()
    );
    store.shutdown().await;
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test]
async fn a_closed_stream_tells_every_producer_append_but_a_retry_that_it_is_closed() {
    let (dir, store) = with_json_stream("closed-producers").await;
    let by = |epoch: u64, seq: u64, close: bool| AppendReq {
        producer: Some(ProducerHdr {
            id: "p".into(),
            epoch,
            seq,
        }),
        close,
        ..append("s", &messages(0, 1, 10))
    };
    store.append(by(1, 0, false)).await.expect("append");
    let closing = store
        .append(by(1, 1, true))
        .await
        .expect("the closing append");
    assert!(closing.closed);
    // A retry of the closing append, or of one before it: a duplicate.
    for seq in [1, 0] {
        let retry = store.append(by(1, seq, seq == 1)).await.expect("a retry");
        assert!(retry.duplicate && retry.closed, "seq {seq}: {retry:?}");
    }
    // A stale epoch, a gap, a new epoch: the stream is closed.
    for (epoch, seq) in [(0, 0), (1, 5), (2, 0)] {
        let refused = store.append(by(epoch, seq, false)).await;
        assert!(
            matches!(refused, Err(AppendError::Closed { next: 2, .. })),
            "epoch {epoch}, seq {seq}: {refused:?}"
        );
    }
    store.shutdown().await;
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test]
async fn a_failed_group_is_rolled_back_before_the_connection_readers_share_in_memory_is_let_go() {
    let store = Store::open(None, Durability::Normal).expect("open");
    store.create(CreateReq::json("s")).await.expect("create");
    store.0.writer.lock().expect("writer").fail_next_group = true;
    let failed = store.append(append("s", &messages(0, 1, 10))).await;
    assert!(matches!(failed, Err(AppendError::Storage(_))), "{failed:?}");
    let let_go = store
        .0
        .writer
        .lock()
        .expect("writer")
        .let_go_out_of_transaction;
    assert_eq!(
        let_go,
        Some(true),
        "a reader taking the connection then saw the failed group"
    );
    store
        .append(append("s", &messages(0, 1, 10)))
        .await
        .expect("append after");
    assert_eq!(store.shared().get("s").expect("published").meta().tail, 1);
    store.shutdown().await;
}

#[tokio::test]
async fn a_rolled_back_delete_of_a_fork_leaves_its_sources_path_with_the_stream_that_took_it() {
    let dir = scratch("rollback-path-owner");
    let store = Store::open(Some(&dir), Durability::Normal).expect("open");
    let soon = meta::now_ms() + SETUP_MS;
    expiring_with_fork(&store, "src", soon, &[]).await;
    sleep_past(soon).await;
    // The expired source is kept for its fork; a new stream takes its path.
    let new = store.create(CreateReq::json("src")).await.expect("again");
    // Deleting the fork (which would let the old source go) fails and is rolled back.
    store.0.writer.lock().expect("writer").fail_next_group = true;
    let failed = store.delete("src-fork").await;
    assert!(matches!(failed, Err(DeleteError::Storage(_))), "{failed:?}");
    for attempt in ["after the rollback", "after the delete"] {
        store
            .append(append("src", &messages(0, 1, 10)))
            .await
            .unwrap_or_else(|e| panic!("{attempt}: the new stream takes appends: {e:?}"));
        let meta = store.shared().get("src").expect("published").meta();
        assert_eq!(meta.id, new.meta.id, "{attempt}");
        if attempt == "after the rollback" {
            store.delete("src-fork").await.expect("delete");
        }
    }
    store.shutdown().await;
    let store = Store::open(Some(&dir), Durability::Normal).expect("reopen");
    let meta = store.shared().get("src").expect("published").meta();
    assert_eq!((meta.id, meta.tail), (new.meta.id, 2), "after a restart");
    store.shutdown().await;
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test]
async fn a_fork_of_a_fork_writes_and_takes_its_ancestors_offsets_up_to_its_fork_point_across_a_restart(
) {
    let (dir, store) = with_json_stream("fork-of-fork-epochs").await;
    let fork = |name: &str, source: &str, at: Option<(u64, u64)>| CreateReq {
        fork: Some(ForkReq {
            source: source.into(),
            offset: at.map(|(_, pos)| pos),
            offset_epoch: at.map(|(epoch, _)| epoch),
            sub_offset: None,
        }),
        ..CreateReq::json(name)
    };
    store
        .append(append("s", &messages(0, 4, 5)))
        .await
        .expect("append");
    let s = store.shared().get("s").expect("s").meta();
    // `a` forks `s` at 4 and appends 2; `b` forks `a` at 2 (below a's fork point).
    let a = store
        .create(fork("a", "s", None))
        .await
        .expect("fork a")
        .meta;
    store
        .append(append("a", &messages(4, 2, 5)))
        .await
        .expect("append");
    let b = store
        .create(fork("b", "a", Some((s.epoch, 2))))
        .await
        .expect("fork b")
        .meta;
    assert!(s.epoch < a.epoch && a.epoch < b.epoch, "each its own epoch");
    store.shutdown().await;
    let store = Store::open(Some(&dir), Durability::Normal).expect("reopen");
    let a = store.shared().get("a").expect("a").meta();
    let b = store.shared().get("b").expect("b").meta();
    // Written as their sources write them up to the fork point, in their own epoch after.
    assert_eq!(a.offset(4), format_offset(s.epoch, 4));
    assert_eq!(a.offset(5), format_offset(a.epoch, 5));
    assert_eq!(b.offset(2), format_offset(s.epoch, 2));
    assert_eq!(b.offset(3), format_offset(b.epoch, 3));
    assert!(
        b.offset(2) < b.offset(3),
        "strictly increasing across the fork point"
    );
    // Taken up to the fork point only.
    assert_eq!(a.resolve(&format_offset(s.epoch, 4)), Ok(ReadFrom::At(4)));
    assert_eq!(b.resolve(&format_offset(s.epoch, 2)), Ok(ReadFrom::At(2)));
    for past in [format_offset(s.epoch, 3), format_offset(a.epoch, 5)] {
        assert!(
            matches!(b.resolve(&past), Err(BadOffset::Retired(_))),
            "{past} names data b does not have"
        );
    }
    assert_eq!(read_all(&store, "b", 0, 1 << 20).await, vec![0, 1]);
    store.shutdown().await;
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test]
async fn blobs_whose_length_was_not_kept_are_measured_from_the_blob() {
    let (dir, store) = with_json_stream("no-bytes").await;
    let file = dir.join("gapless.sqlite3");
    for first in [0, 1000, 2000] {
        store
            .append(append("s", &messages(first, 1000, 600)))
            .await
            .expect("append");
    }
    store.shutdown().await;
    let kept: i64 = {
        let conn = Connection::open(&file).expect("open");
        let kept = conn
            .query_row(
                "SELECT COUNT(*) FROM chunks WHERE bytes IS NOT NULL",
                [],
                |r| r.get(0),
            )
            .expect("count");
        // As a database written before `chunks.bytes` existed has them.
        conn.execute_batch("UPDATE chunks SET bytes = NULL")
            .expect("forget the lengths");
        kept
    };
    assert_eq!(kept, 3, "new blobs keep their length beside them");
    let store = Store::open(Some(&dir), Durability::Normal).expect("reopen");
    let all: Vec<u64> = (0..3000).collect();
    for from in [0, 999, 1000, 2500] {
        let read = read_all(&store, "s", from, 1 << 20).await;
        assert_eq!(read, all[from as usize..], "from {from}");
    }
    store.shutdown().await;
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test]
async fn a_database_from_before_blobs_keeps_its_chunks_and_takes_new_ones() {
    let dir = scratch("old-layout");
    let file = dir.join("gapless.sqlite3");
    {
        // The layout before `chunks.blob` and `blobs`, with one large chunk inline.
        let conn = Connection::open(&file).expect("open");
        conn.execute_batch(
            "CREATE TABLE streams (
                 id INTEGER PRIMARY KEY, path TEXT NOT NULL, content_type TEXT NOT NULL,
                 ttl_secs INTEGER, expires_at_ms INTEGER, created_ms INTEGER NOT NULL,
                 access_ms INTEGER NOT NULL, tail INTEGER NOT NULL,
                 closed INTEGER NOT NULL DEFAULT 0, last_seq TEXT,
                 deleted INTEGER NOT NULL DEFAULT 0, chain TEXT NOT NULL DEFAULT '',
                 forked_from INTEGER, fork_at INTEGER NOT NULL DEFAULT 0);
             CREATE TABLE chunks (
                 stream_id INTEGER NOT NULL, start INTEGER NOT NULL, end INTEGER NOT NULL,
                 data BLOB NOT NULL, ends BLOB, PRIMARY KEY (stream_id, start)) WITHOUT ROWID;
             CREATE TABLE producers (
                 stream_id INTEGER NOT NULL, producer_id TEXT NOT NULL,
                 epoch INTEGER NOT NULL, seq INTEGER NOT NULL,
                 PRIMARY KEY (stream_id, producer_id)) WITHOUT ROWID;
             INSERT INTO streams (id, path, content_type, created_ms, access_ms, tail)
                 VALUES (1, 's', 'application/json', 0, 0, 0);",
        )
        .expect("old schema");
        let old = Payload::json(messages(0, 500, 40).iter().map(String::as_str));
        let ends = old.ends.unwrap_or_default();
        conn.execute(
            "INSERT INTO chunks (stream_id, start, end, data, ends) VALUES (1, 0, 500, ?1, ?2)",
            params![old.data, ends],
        )
        .expect("old chunk");
    }
    let store = Store::open(Some(&dir), Durability::Normal).expect("open the old layout");
    assert_eq!(store.shared().get("s").expect("stream").meta().tail, 500);
    store
        .append(append("s", &messages(500, 300, 40)))
        .await
        .expect("append");
    assert_eq!(count(&file, "blobs"), 1);
    store.shutdown().await;
    let store = Store::open(Some(&dir), Durability::Normal).expect("reopen");
    let all: Vec<u64> = (0..800).collect();
    for from in [0, 250, 499, 500, 501, 799] {
        let read = read_all(&store, "s", from, 10_000).await;
        assert_eq!(read, all[from as usize..], "from {from}");
    }
    store.shutdown().await;
    let _ = std::fs::remove_dir_all(dir);
}

/// The pieces a streamed read of `range` sends.
async fn pieces_of(
    store: &Store,
    meta: Arc<StreamMeta>,
    range: std::ops::Range<u64>,
) -> Vec<Result<Piece, String>> {
    let (tx, mut rx) = tokio::sync::mpsc::channel(PIECES_AHEAD);
    tokio::spawn(read_pieces(store.reader(), Arc::default(), meta, range, tx));
    let mut pieces = Vec::new();
    while let Some(piece) = rx.recv().await {
        pieces.push(piece);
    }
    pieces
}

#[tokio::test]
async fn a_streamed_read_ends_in_an_error_when_its_data_goes_away() {
    let (dir, store) = with_json_stream("gone").await;
    store
        .append(append("s", &messages(0, 3000, 600)))
        .await
        .expect("append");
    let meta = store.shared().get("s").expect("stream").meta();
    // Nothing to read: one piece, the empty array.
    let empty = pieces_of(&store, Arc::clone(&meta), 5..5).await;
    assert_eq!(
        empty,
        [Ok(Piece {
            bytes: bytes::Bytes::from_static(b"[]"),
            last: true
        })]
    );
    // Measured, then deleted before it is read: the body must not look complete.
    store.delete("s").await.expect("delete");
    let pieces = pieces_of(&store, meta, 0..3000).await;
    assert_eq!(pieces.len(), 1, "{pieces:?}");
    assert!(pieces[0].is_err(), "{pieces:?}");
    store.shutdown().await;
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test]
async fn a_text_stream_forks_between_characters_only() {
    let dir = scratch("text-fork");
    let store = Store::open(Some(&dir), Durability::Normal).expect("open");
    create_bytes(&store, "t", "text/plain").await;
    // Bytes: 'a', then 'é' (0xC3 0xA9), then 'b'.
    for text in ["a", "\u{e9}b"] {
        let req = append_bytes("t", "text/plain", text.as_bytes().to_vec());
        store.append(req).await.expect("append");
    }
    let fork = |name: &str, sub: u64| {
        let mut req = CreateReq::json(name);
        req.content_type = Some("text/plain".into());
        req.fork = Some(ForkReq {
            source: "t".into(),
            offset: Some(0),
            offset_epoch: None,
            sub_offset: Some(sub),
        });
        req
    };
    // Inside 'é': refused, nothing made.
    let split = store.create(fork("inside", 2)).await;
    assert!(
        matches!(&split, Err(CreateError::BadRequest(why)) if why.contains("splits a character")),
        "{split:?}"
    );
    assert!(store.shared().get("inside").is_none());
    // Before it, after it, and at the tail: made.
    for (name, sub) in [("before", 1), ("after", 3), ("tail", 4)] {
        store.create(fork(name, sub)).await.expect(name);
    }
    store.shutdown().await;
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test]
async fn byte_streams_and_forks_read_back_whole_and_streamed() {
    let dir = scratch("bytes-forks");
    let store = Store::open(Some(&dir), Durability::Normal).expect("open");
    // A byte stream: small and large chunks, read from inside each.
    create_bytes(&store, "b", "application/octet-stream").await;
    let mut all: Vec<u8> = Vec::new();
    for (n, byte) in [
        (10, b'a'),
        (5000, b'b'),
        (3, b'c'),
        (3000, b'd'),
        (1_500_000, b'e'),
    ] {
        let data = vec![byte; n];
        all.extend(&data);
        let req = append_bytes("b", "application/octet-stream", data);
        store.append(req).await.expect("append");
    }
    // A fork of a JSON stream in the middle of a large chunk, with its own appends.
    store.create(CreateReq::json("s")).await.expect("create");
    store
        .append(append("s", &messages(0, 1000, 60)))
        .await
        .expect("append");
    let mut fork = CreateReq::json("f");
    fork.fork = Some(ForkReq {
        source: "s".into(),
        offset: Some(500),
        offset_epoch: None,
        sub_offset: None,
    });
    store.create(fork).await.expect("fork");
    store
        .append(append("f", &messages(10_000, 300, 60)))
        .await
        .expect("append to the fork");
    store.shutdown().await;
    let store = Store::open(Some(&dir), Durability::Normal).expect("reopen");
    for from in [0, 9, 10, 11, 2000, 5010, 5013, 5014, 8013, 9000] {
        for max_bytes in [1, 4_000, 1 << 30] {
            let read: Vec<u8> = pages(&store, "b", from, max_bytes)
                .await
                .into_iter()
                .flat_map(|(_, body)| body)
                .collect();
            assert!(
                read == all[from as usize..],
                "bytes from {from}, pages of {max_bytes}"
            );
        }
    }
    let forked: Vec<u64> = (0..500).chain(10_000..10_300).collect();
    for from in [0, 499, 500, 501, 799] {
        for max_bytes in [1, 10_000, 1 << 30] {
            let read = read_all(&store, "f", from, max_bytes).await;
            assert_eq!(
                read,
                forked[from as usize..],
                "fork from {from}, pages of {max_bytes}"
            );
        }
    }
    store.shutdown().await;
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn a_database_from_a_later_layout_is_refused_and_left_alone() {
    let dir = scratch("later");
    let file = dir.join("gapless.sqlite3");
    {
        let conn = Connection::open(&file).expect("open");
        conn.pragma_update(None, "user_version", schema::LAYOUT_VERSION + 1)
            .expect("version");
    }
    let refused = Store::open(Some(&dir), Durability::Normal);
    assert!(
        matches!(refused, Err(OpenError::Newer { found, .. }) if found == schema::LAYOUT_VERSION + 1),
        "{refused:?}"
    );
    let tables = count(&file, "sqlite_master");
    assert_eq!(tables, 0, "nothing was created");
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn a_new_database_records_its_layout() {
    let dir = scratch("layout");
    drop(Store::open(Some(&dir), Durability::Normal).expect("open"));
    let conn = Connection::open(dir.join("gapless.sqlite3")).expect("open");
    let version: i64 = conn
        .pragma_query_value(None, "user_version", |r| r.get(0))
        .expect("version");
    assert_eq!(version, schema::LAYOUT_VERSION);
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test]
async fn after_shutdown_a_lone_write_is_refused_not_committed_in_place() {
    let (dir, store) = with_json_stream("stopped").await;
    store
        .append(append("s", &messages(0, 1, 5)))
        .await
        .expect("a lone append before the shutdown");
    store.shutdown().await;
    let refused = store.append(append("s", &messages(1, 1, 5))).await;
    assert!(
        matches!(refused, Err(AppendError::Storage(_))),
        "{refused:?}"
    );
    drop(store);
    let store = Store::open(Some(&dir), Durability::Normal).expect("reopen");
    let meta = store.shared().get("s").expect("stream").meta();
    assert_eq!(meta.tail, 1, "nothing was written after the shutdown");
    store.shutdown().await;
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test]
async fn the_log_is_lengthened_ahead_and_a_crash_image_of_it_reads_back_whole() {
    let (dir, store) = with_json_stream_at("presized", Durability::Full).await;
    for first in (0..200).step_by(20) {
        store
            .append(append("s", &messages(first, 20, 30)))
            .await
            .expect("append");
    }
    let wal = dir.join("gapless.sqlite3-wal");
    let length = std::fs::metadata(&wal).expect("the log").len();
    assert!(
        length >= schema::CHECKPOINT_FRAMES as u64 * (4096 + 24),
        "the log is {length} bytes, not as long as a checkpoint interval"
    );

    // As a `kill -9` leaves the files: the commits in the log, zeros after them.
    let image = scratch("presized-image");
    for name in ["gapless.sqlite3", "gapless.sqlite3-wal"] {
        std::fs::copy(dir.join(name), image.join(name)).expect("copy");
    }
    store.shutdown().await;
    let copy = Store::open(Some(&image), Durability::Full).expect("open the image");
    assert_eq!(copy.shared().get("s").expect("stream").meta().tail, 200);
    let all: Vec<u64> = (0..200).collect();
    assert_eq!(read_all(&copy, "s", 0, 1 << 20).await, all);
    copy.shutdown().await;
    let check: String = Connection::open(image.join("gapless.sqlite3"))
        .expect("open")
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .expect("integrity check");
    assert_eq!(check, "ok");
    for d in [dir, image] {
        let _ = std::fs::remove_dir_all(d);
    }
}

#[tokio::test]
async fn concurrent_appends_are_answered_once_synced_each_at_its_own_offsets() {
    let dir = scratch("synced");
    let store = Store::open(Some(&dir), Durability::Full).expect("open");
    for path in ["s", "t"] {
        store.create(CreateReq::json(path)).await.expect("create");
    }
    let tasks: Vec<_> = (0..8)
        .map(|task| {
            let store = store.clone();
            tokio::spawn(async move {
                let path = if task % 2 == 0 { "s" } else { "t" };
                let mut nexts = Vec::new();
                for i in 0..40 {
                    let ok = store
                        .append(append(path, &messages(task * 1000 + i, 1, 8)))
                        .await
                        .expect("append");
                    // Answered once published: the tail readers see includes it.
                    let seen = store.shared().get(path).expect("stream").meta().tail;
                    assert!(
                        seen >= ok.next,
                        "answered at {} before {seen} was seen",
                        ok.next
                    );
                    nexts.push((path, ok.next));
                }
                nexts
            })
        })
        .collect();
    let mut nexts = Vec::new();
    for task in tasks {
        nexts.extend(task.await.expect("task"));
    }
    for path in ["s", "t"] {
        let mut mine: Vec<u64> = nexts
            .iter()
            .filter(|(p, _)| *p == path)
            .map(|&(_, n)| n)
            .collect();
        mine.sort_unstable();
        assert_eq!(
            mine,
            (1..=160).collect::<Vec<u64>>(),
            "{path}: one offset each"
        );
    }
    store.shutdown().await;
    let store = Store::open(Some(&dir), Durability::Full).expect("reopen");
    for (path, first) in [("s", 0), ("t", 1)] {
        let mut read = read_all(&store, path, 0, 1 << 20).await;
        read.sort_unstable();
        let expected: Vec<u64> = (0..8)
            .filter(|task| task % 2 == first)
            .flat_map(|task| (0..40).map(move |i| (task * 1000 + i) as u64))
            .collect();
        let mut expected = expected;
        expected.sort_unstable();
        assert_eq!(read, expected, "{path} after a restart");
    }
    store.shutdown().await;
    let _ = std::fs::remove_dir_all(dir);
}

/// Waits until a lone append would be committed in place (the writer thread quiet,
/// the syncer idle).
async fn until_in_place_ready(store: &Store) {
    let ready = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while !store.0.writer.lock().expect("writer").may_commit_in_place() {
        assert!(
            std::time::Instant::now() < ready,
            "never ready to commit in place"
        );
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
}

/// Two appends to `s`, after `syncer` (if any) is given to the writer: the first
/// alone in flight, committed in place and held before its sync; the second committed
/// by the writer thread meanwhile, which must not be told within 300 ms (not before
/// the first). Then the first is let go: both outcomes.
async fn in_place_then_another(
    store: &Store,
    syncer: Option<syncer::Syncer>,
) -> (Result<AppendOk, AppendError>, Result<AppendOk, AppendError>) {
    until_in_place_ready(store).await;
    let (release, hold) = std::sync::mpsc::channel();
    let (reach, reached) = std::sync::mpsc::channel();
    {
        let mut writer = store.0.writer.lock().expect("writer");
        if let Some(syncer) = syncer {
            writer.sync_with(syncer);
        }
        writer.hold_in_place = Some((reach, hold));
    }
    // Alone in flight: committed in place, held before its sync.
    let first = {
        let store = store.clone();
        std::thread::spawn(move || {
            futures::executor::block_on(store.append(append("s", &messages(0, 1, 8))))
        })
    };
    reached
        .recv_timeout(std::time::Duration::from_secs(10))
        .expect("committed in place");
    // Not alone: the writer thread commits it while the first one's sync waits.
    let mut second = Box::pin(store.append(append("s", &messages(1, 1, 8))));
    let early = tokio::time::timeout(std::time::Duration::from_millis(300), &mut second).await;
    assert!(
        early.is_err(),
        "told before the commit made in place before it: {early:?}"
    );
    release.send(()).expect("release");
    let first = first.join().expect("thread");
    (first, second.await)
}

#[tokio::test]
async fn a_lone_delete_or_create_is_committed_by_the_writer_thread_not_in_place() {
    let (dir, store) = with_json_stream_at("not-in-place", Durability::Full).await;
    // An append first, which is committed in place: the conditions hold for each.
    for op in ["append", "delete", "create"] {
        until_in_place_ready(&store).await;
        let (release, hold) = std::sync::mpsc::channel();
        let (reach, reached) = std::sync::mpsc::channel();
        store.0.writer.lock().expect("writer").hold_in_place = Some((reach, hold));
        let done = {
            let store = store.clone();
            std::thread::spawn(move || {
                futures::executor::block_on(async {
                    match op {
                        "append" => store
                            .append(append("s", &messages(0, 1, 8)))
                            .await
                            .map(|_| ())
                            .map_err(|e| e.to_string()),
                        "delete" => store.delete("s").await.map_err(|e| e.to_string()),
                        _ => store
                            .create(CreateReq::json("t"))
                            .await
                            .map(|_| ())
                            .map_err(|e| e.to_string()),
                    }
                })
            })
        };
        // In place, the operation waits for its release after saying so; else it
        // ends without a word (however slow the machine).
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        let in_place = loop {
            if reached.try_recv().is_ok() {
                break true;
            }
            if done.is_finished() || std::time::Instant::now() > deadline {
                break reached.try_recv().is_ok();
            }
            std::thread::sleep(std::time::Duration::from_millis(1));
        };
        let _ = release.send(());
        done.join().expect("thread").expect(op);
        store.0.writer.lock().expect("writer").hold_in_place = None;
        assert_eq!(in_place, op == "append", "{op} committed in place");
    }
    store.shutdown().await;
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test]
async fn a_commit_made_in_place_syncs_after_letting_go_of_the_writer_and_is_told_first() {
    let (dir, store) = with_json_stream_at("in-place", Durability::Full).await;
    let (first, second) = in_place_then_another(&store, None).await;
    let first = first.expect("first append");
    let second = second.expect("second append");
    assert_eq!((first.next, second.next), (1, 2), "offsets in commit order");
    let tail = store.shared().get("s").expect("stream").meta().tail;
    assert_eq!(tail, 2, "the published tail is the later commit's");
    store.shutdown().await;
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test]
async fn a_commit_whose_sync_overlapped_a_failed_one_made_in_place_fails_with_it() {
    let (dir, store) = with_json_stream_at("in-place-fails", Durability::Full).await;
    // The syncer thread syncs the log; a commit made in place syncs a pipe, which
    // fails (EINVAL).
    let wal = std::fs::OpenOptions::new()
        .write(true)
        .open(dir.join("gapless.sqlite3-wal"))
        .expect("log");
    let (reader, _writer) = std::io::pipe().expect("pipe");
    let unsyncable = std::fs::File::from(std::os::fd::OwnedFd::from(reader));
    let syncer =
        syncer::Syncer::start(wal, unsyncable, Arc::clone(&store.0.shared)).expect("start");
    // The second is committed by the writer thread and synced by the syncer's own sync
    // (which works) while the first one's waits; told only once the first one's is
    // known.
    let (first, second) = in_place_then_another(&store, Some(syncer)).await;
    assert!(
        matches!(&first, Err(AppendError::Storage(why)) if why.contains("sync")),
        "{first:?}"
    );
    assert!(
        matches!(&second, Err(AppendError::Storage(why)) if why.contains("sync")),
        "after a failed sync nothing is acknowledged: {second:?}"
    );
    let tail = store.shared().get("s").expect("stream").meta().tail;
    assert_eq!(tail, 0, "nothing published");
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test]
async fn a_failed_sync_answers_with_an_error_publishes_nothing_and_stops_writing() {
    let (dir, store) = with_json_stream("sync-fails").await;
    {
        // A log that cannot be synced: fsync of a pipe fails (EINVAL).
        let (reader, _writer) = std::io::pipe().expect("pipe");
        let unsyncable = std::fs::File::from(std::os::fd::OwnedFd::from(reader));
        let in_place = unsyncable.try_clone().expect("clone");
        let syncer = syncer::Syncer::start(unsyncable, in_place, Arc::clone(&store.0.shared))
            .expect("start");
        store.0.writer.lock().expect("writer").sync_with(syncer);
    }
    for attempt in 0..2 {
        let err = store
            .append(append("s", &messages(0, 1, 8)))
            .await
            .expect_err("no answer but an error");
        assert!(
            matches!(&err, AppendError::Storage(why) if why.contains("sync")),
            "attempt {attempt}: {err:?}"
        );
        let tail = store.shared().get("s").expect("stream").meta().tail;
        assert_eq!(tail, 0, "attempt {attempt}: nothing published");
        assert!(store.shared().write_failure().is_some(), "reported");
    }
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test]
async fn a_fold_after_a_rolled_back_group_moves_what_was_committed_only() {
    let (dir, store) = with_json_stream("fold-after-rollback").await;
    store
        .append(append("s", &messages(0, 3, 5)))
        .await
        .expect("append");
    // This group lands its chunk, then fails and is rolled back: the chunk the writer
    // kept for the fold is not in `landed` any more.
    store.0.writer.lock().expect("writer").fail_next_group = true;
    let failed = store.append(append("s", &messages(3, 2, 5))).await;
    assert!(matches!(failed, Err(AppendError::Storage(_))), "{failed:?}");
    // As many appends as fill `landed`, the first at the position the failed one had.
    for first in 3..2 + writer::FOLD_ROWS {
        store
            .append(append("s", &messages(first, 1, 5)))
            .await
            .expect("append");
    }
    let file = dir.join("gapless.sqlite3");
    // Folded once `landed` filled (or partly at a sweep, should one fall meanwhile).
    assert!(count(&file, "chunks") > 0, "folded");
    let tail = 2 + writer::FOLD_ROWS as u64;
    let conn = schema::open_reader(&file).expect("reader");
    let meta = store.shared().get("s").expect("stream").meta();
    assert_eq!(meta.tail, tail);
    let page = reader::read_range(&conn, &meta, 0, tail, 1 << 20).expect("read");
    assert_eq!(numbers(page.body()), (0..tail).collect::<Vec<_>>());
    store.shutdown().await;
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test]
async fn a_stream_deleted_and_made_again_in_one_group_is_told_removed_every_time() {
    let (dir, store) = with_json_stream("delete-create-told").await;
    let told = Arc::new(std::sync::Mutex::new(Vec::new()));
    let seen = Arc::clone(&told);
    store
        .shared()
        .on_removed(move |path| seen.lock().expect("told").push(path.to_owned()));
    for i in 0..12 {
        let path = format!("p{i}");
        store.create(CreateReq::json(&path)).await.expect("create");
        let (deleted, deleted_rx) = oneshot::channel();
        let (created, created_rx) = oneshot::channel();
        let group = vec![
            Cmd::Delete(path.clone(), deleted),
            Cmd::Create(CreateReq::json(&path), created),
        ];
        store
            .0
            .writer
            .lock()
            .expect("writer")
            .commit(group, false, false);
        deleted_rx.await.expect("answered").expect("deleted");
        created_rx.await.expect("answered").expect("created");
    }
    let expected: Vec<String> = (0..12).map(|i| format!("p{i}")).collect();
    assert_eq!(*told.lock().expect("told"), expected);
    store.shutdown().await;
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test]
async fn a_group_that_appends_then_deletes_and_creates_again_keeps_only_the_new_stream() {
    let (dir, store) = with_json_stream("append-delete-create").await;
    store
        .append(append("s", &messages(0, 2, 5)))
        .await
        .expect("append");
    let old = store.shared().get("s").expect("stream").meta().id;
    let file = dir.join("gapless.sqlite3");
    assert_eq!(count(&file, "blobs"), 0);
    // One group: it lands a chunk of `s` (out of line: a blob) and one in its row,
    // deletes `s`, creates it again with a chunk and appends to the new one. The rows
    // of a group land together at its end, but what landed before a delete must be
    // there for the delete to remove (with its blob).
    let (large, large_rx) = oneshot::channel();
    let (appended, appended_rx) = oneshot::channel();
    let (deleted, deleted_rx) = oneshot::channel();
    let (created, created_rx) = oneshot::channel();
    let (again, again_rx) = oneshot::channel();
    let mut create = CreateReq::json("s");
    create.body = Some(Payload::json(messages(10, 1, 5).iter().map(String::as_str)));
    let group = vec![
        Cmd::Append(append("s", &messages(2, 1, 2000)), large),
        Cmd::Append(append("s", &messages(3, 1, 5)), appended),
        Cmd::Delete("s".into(), deleted),
        Cmd::Create(create, created),
        Cmd::Append(append("s", &messages(11, 2, 5)), again),
    ];
    {
        let mut writer = store.0.writer.lock().expect("writer");
        writer.commit(group, false, false);
        // Nothing of the group is held for the readers' memory any more: the deleted
        // stream's chunks were dropped, the new one's published.
        assert_eq!(writer.fresh_streams(), 0);
    }
    large_rx.await.expect("answered").expect("appended");
    appended_rx.await.expect("answered").expect("appended");
    deleted_rx.await.expect("answered").expect("deleted");
    created_rx.await.expect("answered").expect("created");
    again_rx.await.expect("answered").expect("appended");
    assert_eq!(count(&file, "blobs"), 0, "the deleted chunk's blob is gone");
    // The writer counts what `landed` holds, and keeps all of it for the fold.
    let rows = count(&file, "landed") as usize;
    assert_eq!(rows, 2);
    assert_eq!(
        store.0.writer.lock().expect("writer").landed_counts(),
        (rows, rows)
    );
    let rows_of_old = |file: &std::path::Path| -> i64 {
        let conn = Connection::open(file).expect("open");
        conn.query_row(
            "SELECT (SELECT COUNT(*) FROM landed WHERE stream_id = ?1)
                  + (SELECT COUNT(*) FROM chunks WHERE stream_id = ?1)",
            params![old],
            |r| r.get(0),
        )
        .expect("count")
    };
    assert_eq!(
        rows_of_old(&file),
        0,
        "the deleted stream's chunks are gone"
    );
    let meta = store.shared().get("s").expect("stream").meta();
    assert_ne!(meta.id, old);
    assert_eq!(meta.tail, 3);
    assert_eq!(read_all(&store, "s", 0, 1 << 20).await, vec![10, 11, 12]);
    // After a restart (which folds what landed), the same.
    store.shutdown().await;
    drop(store);
    let store = Store::open(Some(&dir), Durability::Normal).expect("reopen");
    assert_eq!(read_all(&store, "s", 0, 1 << 20).await, vec![10, 11, 12]);
    assert_eq!(rows_of_old(&file), 0);
    store.shutdown().await;
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test]
async fn a_group_lands_its_rows_in_order_in_statements_of_several_rows() {
    let (dir, store) = with_json_stream("landing-rows").await;
    store.create(CreateReq::json("t")).await.expect("create");
    // 23 appends in one group (inserted as 8, 8 and 7 rows), to two streams in
    // turn, small ones in their rows and every fifth out of line.
    let mut group = Vec::new();
    let mut answers = Vec::new();
    for i in 0..23 {
        let pad = if i % 5 == 0 { 2000 } else { 5 };
        let (tx, rx) = oneshot::channel();
        let path = if i % 2 == 0 { "s" } else { "t" };
        group.push(Cmd::Append(append(path, &messages(i, 1, pad)), tx));
        answers.push(rx);
    }
    store
        .0
        .writer
        .lock()
        .expect("writer")
        .commit(group, false, false);
    for rx in answers {
        rx.await.expect("answered").expect("appended");
    }
    let file = dir.join("gapless.sqlite3");
    assert_eq!(count(&file, "landed"), 23);
    assert_eq!(count(&file, "chunks"), 0);
    let expected = |path: &str| -> Vec<u64> {
        let parity = u64::from(path == "t");
        (0..23).filter(|i| i % 2 == parity).collect()
    };
    let conn = schema::open_reader(&file).expect("reader");
    for path in ["s", "t"] {
        let meta = store.shared().get(path).expect("stream").meta();
        // From storage (not the readers' memory), and from every position.
        for from in 0..meta.tail {
            let page = reader::read_range(&conn, &meta, from, meta.tail, 1 << 20).expect("read");
            assert_eq!(
                numbers(page.body()),
                expected(path)[from as usize..],
                "{path} from {from}"
            );
        }
    }
    store.shutdown().await;
    drop(store);
    let store = Store::open(Some(&dir), Durability::Normal).expect("reopen");
    for path in ["s", "t"] {
        assert_eq!(read_all(&store, path, 0, 1 << 20).await, expected(path));
    }
    store.shutdown().await;
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test]
async fn a_failure_to_land_before_a_delete_fails_the_group_and_changes_nothing() {
    let (dir, store) = with_json_stream("landing-fails").await;
    store
        .append(append("s", &messages(0, 2, 5)))
        .await
        .expect("append");
    // The group's rows are inserted before its delete, and that fails.
    let (appended, appended_rx) = oneshot::channel();
    let (deleted, deleted_rx) = oneshot::channel();
    let group = vec![
        Cmd::Append(append("s", &messages(2, 1, 5)), appended),
        Cmd::Delete("s".into(), deleted),
    ];
    {
        let mut writer = store.0.writer.lock().expect("writer");
        writer.fail_next_landing = true;
        writer.commit(group, false, false);
    }
    let failed = appended_rx.await.expect("answered");
    assert!(matches!(failed, Err(AppendError::Storage(_))), "{failed:?}");
    let failed = deleted_rx.await.expect("answered");
    assert!(matches!(failed, Err(DeleteError::Storage(_))), "{failed:?}");
    // Nothing changed: the stream is there, at its tail, and takes appends again.
    let meta = store.shared().get("s").expect("stream").meta();
    assert_eq!(meta.tail, 2);
    let file = dir.join("gapless.sqlite3");
    let rows = count(&file, "landed") as usize;
    assert_eq!(rows, 1);
    // What it kept for the fold is emptied by the rollback: the next fold reads
    // `landed`.
    assert_eq!(
        store.0.writer.lock().expect("writer").landed_counts(),
        (rows, 0)
    );
    store
        .append(append("s", &messages(2, 2, 5)))
        .await
        .expect("append");
    assert_eq!(read_all(&store, "s", 0, 1 << 20).await, vec![0, 1, 2, 3]);
    store.shutdown().await;
    drop(store);
    let store = Store::open(Some(&dir), Durability::Normal).expect("reopen");
    assert_eq!(read_all(&store, "s", 0, 1 << 20).await, vec![0, 1, 2, 3]);
    store.shutdown().await;
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test]
async fn commands_after_a_failed_one_in_a_group_are_answered_with_its_failure() {
    let (dir, store) = with_json_stream("after-a-failure").await;
    store
        .append(append("s", &messages(0, 2, 5)))
        .await
        .expect("append");
    // The delete's landing flush fails: the append after it is never tried.
    let (before, before_rx) = oneshot::channel();
    let (deleted, deleted_rx) = oneshot::channel();
    let (after, after_rx) = oneshot::channel();
    let group = vec![
        Cmd::Append(append("s", &messages(2, 1, 5)), before),
        Cmd::Delete("s".into(), deleted),
        Cmd::Append(append("s", &messages(2, 1, 5)), after),
    ];
    {
        let mut writer = store.0.writer.lock().expect("writer");
        writer.fail_next_landing = true;
        writer.commit(group, false, false);
    }
    let failed = deleted_rx.await.expect("answered");
    let Err(DeleteError::Storage(why)) = failed else {
        panic!("{failed:?}");
    };
    for rx in [before_rx, after_rx] {
        // Answered, with the group's failure: not left to read as a stopped writer.
        let answer = rx.await.expect("answered, not dropped");
        assert!(
            matches!(&answer, Err(AppendError::Storage(w)) if w.contains(why.as_str())),
            "{answer:?}"
        );
    }
    assert_eq!(store.shared().get("s").expect("stream").meta().tail, 2);
    store
        .append(append("s", &messages(2, 1, 5)))
        .await
        .expect("the writer goes on");
    assert_eq!(read_all(&store, "s", 0, 1 << 20).await, vec![0, 1, 2]);
    store.shutdown().await;
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test]
async fn a_sweep_removes_a_bounded_number_of_expired_streams_and_the_next_the_rest() {
    let dir = scratch("sweep-bounded");
    let store = Store::open(Some(&dir), Durability::Normal).expect("open");
    store.0.writer.lock().expect("writer").sweeps_held = true;
    let soon = meta::now_ms() + SETUP_MS;
    let left = 40;
    for i in 0..writer::SWEEP_REMOVALS + left {
        let req = CreateReq {
            expires_at_ms: Some(soon),
            ..CreateReq::json(format!("short/{i}"))
        };
        store.create(req).await.expect("create");
    }
    store.create(CreateReq::json("kept")).await.expect("create");
    sleep_past(soon).await;
    let short = || {
        store
            .shared()
            .paths()
            .into_iter()
            .filter(|p| p.starts_with("short/"))
            .count()
    };
    // The writer's own sweeps held, this one is the first.
    let sweep = || {
        store
            .0
            .writer
            .lock()
            .expect("writer")
            .commit(Vec::new(), true, false);
        short()
    };
    assert_eq!(short(), writer::SWEEP_REMOVALS + left);
    assert_eq!(sweep(), left, "left after one sweep");
    // What is left is expired all the same.
    for i in [0, writer::SWEEP_REMOVALS + left - 1] {
        let gone = store
            .append(append(&format!("short/{i}"), &messages(0, 1, 5)))
            .await;
        assert!(matches!(gone, Err(AppendError::NotFound)), "{gone:?}");
    }
    assert_eq!(sweep(), 0);
    assert!(store.shared().get("kept").is_some());
    store.shutdown().await;
    let _ = std::fs::remove_dir_all(dir);
}
