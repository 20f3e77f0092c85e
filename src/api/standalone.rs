//! A project answered without a resident: the index on disk, read (and, when asked,
//! brought up to date) in this process. The CLI and the MCP bridge use it when no
//! resident can be reached.

use std::sync::{Arc, Mutex, MutexGuard, OnceLock};

use super::vectors::Vectors;
use crate::config::Config;

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
    /// The embedding model's setting and threads, when search by meaning is wanted;
    /// the model and vectors are loaded at the first search that needs them.
    model: Option<(String, usize)>,
    vectors: Arc<OnceLock<Arc<Vectors>>>,
}

impl Standalone {
    pub fn new(indexer: Arc<Indexer>, max_per_file: usize) -> Standalone {
        let sources = Arc::new(indexer.sources.clone());
        Standalone {
            indexer,
            sources,
            max_per_file,
            progress: Arc::default(),
            model: None,
            vectors: Arc::default(),
        }
    }

    /// Searches by meaning too, with the model `config` names (if any).
    pub fn with_model(mut self, config: &Config) -> Standalone {
        self.model = config
            .embedding_model
            .clone()
            .map(|m| (m, config.embedding_threads));
        self
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
            embedding: self.vectors.get().map(|v| v.state()),
            ..Freshness::of_engine(&self.indexer.engine, NO_WATCHER)
        }
    }

    fn vectors(&self) -> Option<Arc<Vectors>> {
        let (setting, threads) = self.model.as_ref()?;
        let engine = &self.indexer.engine;
        let data_dir = engine.dir().parent()?;
        Some(
            self.vectors
                .get_or_init(|| {
                    // A one-off search compares every vector: no index is built here.
                    let v =
                        Vectors::open(setting, self.sources.root(), data_dir, *threads, usize::MAX);
                    v.count(engine);
                    Arc::new(v)
                })
                .clone(),
        )
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
