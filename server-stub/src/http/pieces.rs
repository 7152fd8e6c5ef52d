//! Pieces of live SSE responses read from storage, made once for every subscriber of
//! a stream at the same place: readers resumed together by one large append read and
//! frame it once between them, and hold one copy of it, not one each.

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex, PoisonError, Weak};

use axum::body::Bytes;
use tokio::sync::OnceCell;

use super::sse::{BatchKey, Told};
use crate::store::Live;

/// Where a piece starts and what it was framed against: two feeds with equal places
/// send the same piece.
#[derive(Clone, PartialEq, Eq)]
pub(super) struct Place {
    /// Its first position.
    pub(super) from: u64,
    /// The stream's tail and closure when it was framed.
    pub(super) tail: u64,
    pub(super) closed: bool,
    /// What framed it.
    pub(super) key: BatchKey,
}

/// A piece: its framed batch (as made, as kept, as sent), where it ends, and what it
/// tells the reader.
pub(super) struct Piece<B> {
    /// The framed bytes.
    pub(super) bytes: B,
    /// The position after it.
    pub(super) next: u64,
    /// What it tells the reader.
    pub(super) told: Told,
}

impl<B> Piece<B> {
    /// The same piece with its bytes as `bytes`.
    fn with<C>(&self, bytes: C) -> Piece<C> {
        Piece {
            bytes,
            next: self.next,
            told: self.told,
        }
    }
}

/// What the one that made a piece leaves for the others: the bytes by a weak
/// reference (the responses writing the piece keep it; once none does, it is gone).
type Left = Piece<Weak<Vec<u8>>>;

/// The piece being made (or made) for one stream at one place.
struct Entry {
    /// The stream (weakly: its address stays its own while this is kept).
    live: Weak<Live>,
    place: Place,
    /// Set once the piece is made; `None` when there was none to share (the read
    /// failed, or found nothing): each then reads for itself.
    cell: Arc<OnceCell<Option<Left>>>,
}

/// Every stream's newest piece made from storage, by stream.
#[derive(Default)]
pub(crate) struct SharedPieces(Mutex<HashMap<usize, Entry>>);

impl std::fmt::Debug for SharedPieces {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SharedPieces").finish_non_exhaustive()
    }
}

/// The bytes of a made piece, as a [`Bytes`] owner.
struct Owned(Arc<Vec<u8>>);

impl AsRef<[u8]> for Owned {
    fn as_ref(&self) -> &[u8] {
        &self.0
    }
}

impl SharedPieces {
    /// The piece of `live` at `place`: the one another feed made (or is making, which
    /// this waits for), or the one `make` makes, which the others then share. `None`
    /// when `make` found none to share, or the one made is no longer held by anyone:
    /// the caller then reads for itself.
    pub(super) async fn get_or_make<F, Fut>(
        &self,
        live: &Arc<Live>,
        place: Place,
        make: F,
    ) -> Option<Piece<Bytes>>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Option<Piece<Vec<u8>>>>,
    {
        let cell = self.cell(live, place);
        // The bytes this feed made, if it made them: kept strongly until returned.
        let mut mine = None;
        let left = cell
            .get_or_init(|| async {
                let made = make().await?;
                let shape = made.with(());
                let bytes = Arc::new(made.bytes);
                let left = shape.with(Arc::downgrade(&bytes));
                mine = Some(bytes);
                Some(left)
            })
            .await
            .as_ref()?;
        let bytes = mine.or_else(|| left.bytes.upgrade())?;
        Some(left.with(Bytes::from_owner(Owned(bytes))))
    }

    /// The cell of `live` at `place`: the existing one, or a new one in its place
    /// (a stream keeps only its newest). Entries whose piece nobody holds any more
    /// are dropped on the way.
    fn cell(&self, live: &Arc<Live>, place: Place) -> Arc<OnceCell<Option<Left>>> {
        let mut map = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        let key = Arc::as_ptr(live) as usize;
        if let Some(entry) = map.get(&key) {
            // (One whose piece nobody holds any more is made anew.)
            if std::ptr::eq(entry.live.as_ptr(), Arc::as_ptr(live))
                && entry.place == place
                && !entry.spent()
            {
                return Arc::clone(&entry.cell);
            }
        }
        map.retain(|_, entry| !entry.spent());
        let cell = Arc::new(OnceCell::new());
        map.insert(
            key,
            Entry {
                live: Arc::downgrade(live),
                place,
                cell: Arc::clone(&cell),
            },
        );
        cell
    }
}

impl Entry {
    /// Made, and nothing to share (any more): no one waits for it, no one holds it.
    fn spent(&self) -> bool {
        match self.cell.get() {
            Some(Some(left)) => left.bytes.strong_count() == 0,
            Some(None) => true,
            // Being made: kept while someone makes it or waits for it.
            None => Arc::strong_count(&self.cell) == 1,
        }
    }
}
