//! A project answered without a resident: the index on disk, read (and, when asked,
//! brought up to date) in this process. The CLI and the MCP bridge use it when no
//! resident can be reached.

use std::sync::{Arc, Mutex, MutexGuard};

use super::{ApiError, Freshness, Site, blocking};
use crate::engine::Engine;
use crate::ingest::sync::{Indexer, Summary};
use crate::ingest::walk::Sources;

/// What answers say of the watcher when no resident answered.
const NO_WATCHER: &str = "none: answered without a resident";

#[derive(Clone)]
pub struct Standalone {
    pub indexer: Arc<Indexer>,
    sources: Arc<Sources>,
    max_per_file: usize,
    /// Files done and to do of a reindex running now.
    progress: Arc<Mutex<Option<[usize; 2]>>>,
}

impl Standalone {
    pub fn new(indexer: Arc<Indexer>, max_per_file: usize) -> Standalone {
        let sources = Arc::new(indexer.sources.clone());
        Standalone {
            indexer,
            sources,
            max_per_file,
            progress: Arc::default(),
        }
    }
}

impl Site for Standalone {
    fn engine(&self) -> &Arc<Engine> {
        &self.indexer.engine
    }

    fn sources(&self) -> Arc<Sources> {
        self.sources.clone()
    }

    fn max_per_file(&self) -> usize {
        self.max_per_file
    }

    fn freshness(&self) -> Freshness {
        let progress = *lock(&self.progress);
        Freshness {
            indexing: progress.is_some(),
            progress,
            ..Freshness::of_engine(&self.indexer.engine, NO_WATCHER)
        }
    }

    async fn reindex(&self, full: bool) -> Result<Summary, ApiError> {
        let (indexer, progress) = (self.indexer.clone(), self.progress.clone());
        blocking(move || {
            let summary = indexer.reconcile(full, &mut |p| {
                *lock(&progress) = Some([p.done, p.total]);
            });
            *lock(&progress) = None;
            summary
        })
        .await?
        .map_err(ApiError::from)
    }
}

/// A poisoned lock only means a panic elsewhere; the value is still whole.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}
