//! The idempotent producers the writer knows: each one's epoch and last sequence,
//! by stream, so that a producer's append finds its state in two small lookups and
//! a stream removed lets go of all of its producers at once.

use super::Map;

/// A producer's epoch and the last sequence it was acknowledged.
pub(crate) type State = (u64, u64);

/// Every stream's producers, by stream id, then producer id.
#[derive(Debug, Default)]
pub(crate) struct Producers {
    by_stream: Map<i64, Map<String, State>>,
}

impl Producers {
    /// The state of producer `key.1` of stream `key.0`.
    pub(crate) fn get(&self, key: &(i64, String)) -> Option<State> {
        self.by_stream.get(&key.0)?.get(&key.1).copied()
    }

    /// Sets the state of producer `key.1` of stream `key.0`.
    pub(crate) fn insert(&mut self, key: (i64, String), state: State) {
        self.by_stream
            .entry(key.0)
            .or_default()
            .insert(key.1, state);
    }

    /// Forgets producer `key.1` of stream `key.0`.
    pub(crate) fn remove(&mut self, key: &(i64, String)) {
        if let Some(producers) = self.by_stream.get_mut(&key.0) {
            producers.remove(&key.1);
            if producers.is_empty() {
                self.by_stream.remove(&key.0);
            }
        }
    }

    /// Forgets every producer of stream `id`, and returns them.
    pub(crate) fn remove_stream(&mut self, id: i64) -> impl Iterator<Item = (String, State)> {
        self.by_stream.remove(&id).into_iter().flatten()
    }
}

impl FromIterator<((i64, String), State)> for Producers {
    fn from_iter<I: IntoIterator<Item = ((i64, String), State)>>(iter: I) -> Producers {
        let mut producers = Producers::default();
        for (key, state) in iter {
            producers.insert(key, state);
        }
        producers
    }
}

#[cfg(test)]
mod tests {
    use super::Producers;

    #[test]
    fn a_stream_removed_takes_its_producers_and_no_others() {
        let mut producers: Producers = [
            ((1, "a".to_owned()), (0, 3)),
            ((1, "b".to_owned()), (1, 0)),
            ((2, "a".to_owned()), (2, 7)),
        ]
        .into_iter()
        .collect();
        assert_eq!(producers.get(&(1, "b".to_owned())), Some((1, 0)));
        let mut gone: Vec<_> = producers.remove_stream(1).collect();
        gone.sort();
        assert_eq!(gone, [("a".to_owned(), (0, 3)), ("b".to_owned(), (1, 0))]);
        assert_eq!(producers.get(&(1, "a".to_owned())), None);
        assert_eq!(producers.get(&(2, "a".to_owned())), Some((2, 7)));
        producers.remove(&(2, "a".to_owned()));
        assert_eq!(producers.get(&(2, "a".to_owned())), None);
        assert_eq!(producers.remove_stream(2).count(), 0);
    }
}
