//! Which streams other streams read from: for each stream, how many forks (and forks
//! of forks) read from it, kept by the writer beside the streams' metadata, so that
//! removing a stream learns at once whether to keep it for its forks.

use super::meta::StreamMeta;
use super::Map;

/// How many streams read from each stream, as their fork source or an ancestor in
/// their chain (a stream counts once per stream it reads from).
#[derive(Debug, Default)]
pub(crate) struct Readers {
    counts: Map<i64, usize>,
}

impl Readers {
    /// Counted over `metas`: every stream the writer knows, soft-deleted ones too
    /// (one kept for its forks still reads from its own sources).
    pub(crate) fn of<'a>(metas: impl IntoIterator<Item = &'a StreamMeta>) -> Readers {
        let mut readers = Readers::default();
        for meta in metas {
            readers.add(meta);
        }
        readers
    }

    /// Counts what `meta`'s stream reads from: it is new.
    pub(crate) fn add(&mut self, meta: &StreamMeta) {
        if meta.forked_from.is_none() {
            return;
        }
        for id in sources(meta) {
            *self.counts.entry(id).or_default() += 1;
        }
    }

    /// Whether any stream reads from the stream `id`.
    pub(crate) fn read_from(&self, id: i64) -> bool {
        self.counts.get(&id).is_some_and(|&n| n > 0)
    }

    /// Forgets what `meta`'s stream read from: it is removed for good.
    pub(crate) fn forget(&mut self, meta: &StreamMeta) {
        if meta.forked_from.is_none() {
            return;
        }
        for id in sources(meta) {
            if let Some(n) = self.counts.get_mut(&id) {
                *n = n.saturating_sub(1);
                if *n == 0 {
                    self.counts.remove(&id);
                }
            }
        }
    }
}

/// The streams `meta`'s stream reads from, each once, itself excepted.
fn sources(meta: &StreamMeta) -> Vec<i64> {
    let mut ids: Vec<i64> = meta
        .chain
        .iter()
        .map(|s| s.id)
        .chain(meta.forked_from)
        .filter(|&id| id != meta.id)
        .collect();
    ids.sort_unstable();
    ids.dedup();
    ids
}

#[cfg(test)]
mod tests {
    use super::Readers;
    use crate::store::meta::{Segment, StreamMeta};

    fn meta(id: i64, chain: &[i64], forked_from: Option<i64>) -> StreamMeta {
        StreamMeta {
            id,
            epoch: 0,
            path: format!("s{id}").into(),
            content_type: "text/plain".into(),
            ttl_secs: None,
            expires_at_ms: None,
            created_ms: 0,
            access_ms: 0,
            tail: 10,
            closed: false,
            last_seq: None,
            deleted: false,
            chain: chain.iter().map(|&id| Segment { id, until: 5 }).collect(),
            inherited: Vec::new(),
            forked_from,
            fork_at: 5,
            landed_from: None,
        }
    }

    #[test]
    fn a_stream_is_read_from_until_the_last_fork_reading_it_is_forgotten() {
        let root = meta(1, &[], None);
        // 2 forks 1; 3 forks 2 (reading 1 through its chain); 4 forks 1 (its chain
        // naming 1 twice, counted once).
        let (two, three, four) = (
            meta(2, &[1], Some(1)),
            meta(3, &[1, 2], Some(2)),
            meta(4, &[1, 1], Some(1)),
        );
        let mut readers = Readers::of([&root, &two, &three, &four]);
        assert!(readers.read_from(1) && readers.read_from(2));
        assert!(!readers.read_from(3) && !readers.read_from(4));
        readers.forget(&three);
        assert!(!readers.read_from(2), "3 was 2's only reader");
        assert!(readers.read_from(1));
        readers.forget(&two);
        assert!(readers.read_from(1), "4 still reads 1");
        readers.forget(&four);
        assert!(!readers.read_from(1));
    }
}
