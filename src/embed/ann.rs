//! Approximate nearest vectors for big projects: an HNSW graph (crates/kernels) over
//! a snapshot of the store's vectors, as they are stored (one byte per dimension and
//! a scale), so its scores are the exact search's.
//!
//! The graph cannot take new points: vectors the store gained since the snapshot (its
//! tail) are compared one by one, and the embedder builds the graph again once the
//! tail is a tenth of it, or the store was rewritten (compacted). A search the graph
//! cannot answer in full (more results than it keeps, or a filter that leaves too few
//! of them) is the exact search's.
//!
//! Must not: read files, or block on the store's writers.

use std::collections::HashSet;

use doc_serve_kernels::ann::{Graph, quantize};

use super::store::{Key, Store};

/// Results one search of the graph brings back (HNSW's `ef` at query time): the most
/// a search may ask for and be answered from the graph.
pub const EF_SEARCH: usize = 128;
/// Candidates kept while the graph is built (HNSW's `ef_construction`).
const EF_CONSTRUCTION: usize = 100;
/// The graph is built again once the store gained this fraction of its size.
const REBUILD_AT: f64 = 0.1;

/// The graph over the first `rows` vectors of one store as it was read (its epoch).
pub struct Ann {
    graph: Graph,
    /// The key of each row of the graph.
    keys: Vec<Key>,
    rows: usize,
    epoch: u64,
}

/// A copy of a store's vectors, for building a graph without holding the store.
pub struct Snapshot {
    vectors: Vec<(Box<[i8]>, f32)>,
    keys: Vec<Key>,
    epoch: u64,
}

impl Snapshot {
    /// Every vector `store` holds now (a copy: milliseconds for 100k vectors).
    pub fn of(store: &Store) -> Snapshot {
        let (vectors, keys) = store
            .rows()
            .map(|(key, scale, bytes)| ((bytes.into(), scale), key))
            .unzip();
        Snapshot {
            vectors,
            keys,
            epoch: store.epoch(),
        }
    }

    /// The graph (seconds for 100k vectors, on the calling rayon pool: call it off the
    /// paths that answer).
    pub fn build(self) -> Ann {
        let rows = self.keys.len();
        Ann {
            graph: Graph::build(self.vectors.into_iter(), EF_CONSTRUCTION, EF_SEARCH),
            keys: self.keys,
            rows,
            epoch: self.epoch,
        }
    }
}

impl Ann {
    /// Vectors in the graph.
    pub fn len(&self) -> usize {
        self.rows
    }

    pub fn is_empty(&self) -> bool {
        self.rows == 0
    }

    /// The graph still describes `store` (its first `len()` vectors): the store was
    /// not read again from the start since.
    pub fn fits(&self, store: &Store) -> bool {
        self.epoch == store.epoch() && self.rows <= store.len()
    }

    /// `store` has gained enough since the graph was built (or was rewritten) that it
    /// should be built again.
    pub fn due(&self, store: &Store) -> bool {
        !self.fits(store) || (store.len() - self.rows) as f64 > self.rows as f64 * REBUILD_AT
    }

    /// The `n` vectors nearest `query` as [`Store::nearest`] ranks them, from the graph
    /// and the store's tail; `None` when the graph cannot answer in full (the caller
    /// searches exactly).
    pub fn nearest(
        &self,
        store: &Store,
        query: &[f32],
        n: usize,
        keep: Option<&HashSet<Key>>,
    ) -> Option<Vec<(Key, f32)>> {
        if n > EF_SEARCH || !self.fits(store) || query.len() != store.dim() {
            return None;
        }
        let (q, qscale) = quantize(query);
        let mut found: Vec<(Key, f32)> = self
            .graph
            .search(&q, qscale)
            .into_iter()
            .filter_map(|(row, score)| Some((*self.keys.get(row as usize)?, score)))
            .filter(|(key, _)| keep.is_none_or(|k| k.contains(key)))
            .collect();
        // Fewer than asked, from a graph with more: a filter left too few.
        if found.len() < n.min(self.rows) && keep.is_some() {
            return None;
        }
        found.extend(store.nearest_from(self.rows, query, n, keep));
        // Best first; equal scores by key, so that answers do not flicker.
        found.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
        found.truncate(n);
        Some(found)
    }
}
