//! A project's search by meaning: its embedding model (shared by every project of the
//! process that names it) and its stored section vectors, as searches read them, and
//! how far embedding has come.

use std::collections::{HashSet, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock, RwLock};

use serde::{Deserialize, Serialize};

use super::ApiError;
use crate::embed::ann::{Ann, Snapshot};
use crate::embed::store::{Key, Store};
use crate::embed::{Model, known};
use crate::engine::Engine;

/// Query vectors kept for repeated searches.
const RECENT_QUERIES: usize = 256;

/// What the freshness footer says of embedding.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Embedding {
    /// The model's name (its directory's).
    pub model: String,
    /// Sections embedded and sections there are (distinct texts).
    pub embedded: [usize; 2],
    /// Embedding is under way.
    pub embedding: bool,
    /// Why the model cannot be used, or the last embedding failure.
    pub error: Option<String>,
    /// Vectors in the approximate index searches read (see `ann_min_sections`);
    /// absent while every vector is compared.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub approximate: Option<usize>,
}

pub struct Vectors {
    /// What `embedding_model` says.
    setting: String,
    /// Where the model and the vectors are, until the first use loads them.
    source: Source,
    loaded: OnceLock<Loaded>,
    state: Mutex<Embedding>,
    /// Every section was embedded once: searches stay hybrid by default while later
    /// edits are embedded.
    was_complete: std::sync::atomic::AtomicBool,
    recent: Mutex<VecDeque<(String, Arc<Vec<f32>>)>>,
    /// The approximate index, once the project has `ann_min_sections` vectors.
    ann: RwLock<Option<Arc<Ann>>>,
    ann_min: usize,
}

struct Source {
    dir: PathBuf,
    cache: PathBuf,
    data_dir: PathBuf,
    threads: usize,
}

/// The model, or why it cannot be used, and its vectors.
struct Loaded {
    model: Result<Arc<Model>, String>,
    store: Option<RwLock<Store>>,
}

impl Vectors {
    /// The model `setting` names (a directory relative to `root`, or a known model)
    /// and its vectors in `data_dir`. Nothing is read yet: the model is loaded by its
    /// first use (the embedder's thread, or a search by meaning), so a resident answers
    /// before its model is in memory. A model that cannot be loaded is reported, not
    /// fatal: searches by words go on.
    pub fn open(
        setting: &str,
        root: &Path,
        data_dir: &Path,
        threads: usize,
        ann_min: usize,
    ) -> Vectors {
        let cache = known::cache_dir().unwrap_or_default();
        let resolved = known::resolve(setting, &cache);
        let dir = if resolved.is_relative() {
            root.join(resolved)
        } else {
            resolved
        };
        let state = Embedding {
            model: dir
                .file_name()
                .map_or_else(|| setting.to_owned(), |n| n.to_string_lossy().into_owned()),
            // Loading the model comes first.
            embedding: true,
            ..Embedding::default()
        };
        Vectors {
            setting: setting.to_owned(),
            source: Source {
                dir,
                cache,
                data_dir: data_dir.to_path_buf(),
                threads,
            },
            loaded: OnceLock::new(),
            state: Mutex::new(state),
            was_complete: Default::default(),
            recent: Mutex::new(VecDeque::new()),
            ann: RwLock::new(None),
            ann_min,
        }
    }

    /// The model and its store, loaded by the first caller (the others wait for it).
    fn loaded(&self) -> &Loaded {
        self.loaded.get_or_init(|| {
            let Source {
                dir,
                cache,
                data_dir,
                threads,
            } = &self.source;
            let model = match known::find(&self.setting).filter(|_| !dir.exists()) {
                // A known model not fetched yet: the one thing to do is fetch it.
                Some(k) => Err(format!(
                    "{} is not installed (no {}): run `doc-serve model fetch {}`",
                    k.name,
                    dir.display(),
                    k.name
                )),
                None => Model::shared(&dir.to_string_lossy(), cache, *threads)
                    .map_err(|e| e.to_string()),
            }
            .inspect_err(|message| {
                tracing::warn!("{message}; search by meaning is off, search by words goes on");
            });
            let store = model
                .as_ref()
                .ok()
                .map(|m| RwLock::new(Store::open(data_dir, m.fingerprint(), m.dim())));
            let mut state = lock(&self.state);
            match &model {
                Ok(m) => state.model = m.name().to_owned(),
                Err(e) => {
                    state.model = self.setting.clone();
                    state.embedding = false;
                    state.error = Some(e.clone());
                }
            }
            drop(state);
            Loaded { model, store }
        })
    }

    /// The model, loading it on first use; None when it cannot be used.
    pub fn model(&self) -> Option<&Arc<Model>> {
        self.loaded().model.as_ref().ok()
    }

    /// The model was loaded, or found unusable (without waiting for a load under way).
    pub fn is_loaded(&self) -> bool {
        self.loaded.get().is_some()
    }

    /// The model was loaded and can be used (without waiting for a load under way).
    fn usable(&self) -> bool {
        self.loaded.get().is_some_and(|l| l.model.is_ok())
    }

    pub fn state(&self) -> Embedding {
        lock(&self.state).clone()
    }

    /// Updates the progress (the embedder's).
    pub fn set_progress(&self, done: usize, total: usize, embedding: bool, error: Option<String>) {
        let mut s = lock(&self.state);
        s.embedded = [done, total];
        s.embedding = embedding;
        if self.usable() {
            s.error = error;
        }
    }

    /// Every section of the index had its vector, now or once since the start (what is
    /// embedded after an edit catches up in seconds).
    pub fn complete(&self) -> bool {
        use std::sync::atomic::Ordering;
        if self.was_complete.load(Ordering::Relaxed) {
            return true;
        }
        let s = lock(&self.state);
        let complete =
            self.usable() && !s.embedding && s.embedded[0] == s.embedded[1] && s.embedded[1] > 0;
        if complete {
            self.was_complete.store(true, Ordering::Relaxed);
        }
        complete
    }

    /// Counts what is embedded of `engine`'s sections (with no embedder running).
    pub fn count(&self, engine: &Engine) {
        let Some(store) = &self.loaded().store else {
            return;
        };
        let searcher = engine.searcher();
        let Ok(keys) = engine.vector_keys(&searcher) else {
            return;
        };
        let mut store = write(store);
        let _ = store.refresh();
        let done = keys.keys().filter(|k| store.contains(k)).count();
        drop(store);
        self.set_progress(done, keys.len(), false, None);
    }

    /// Why a search by meaning cannot run here, as an error reply.
    pub fn unavailable(&self) -> Option<ApiError> {
        match &self.loaded().model {
            Ok(_) => None,
            Err(e) => Some(no_model(&format!(
                "the embedding model {:?} cannot be used: {e}",
                self.setting
            ))),
        }
    }

    /// The vector of a query, from the recent ones when it was asked before.
    pub fn query_vector(&self, q: &str) -> Result<Arc<Vec<f32>>, ApiError> {
        let model = self
            .loaded()
            .model
            .as_ref()
            .map_err(|e| no_model(&format!("the embedding model cannot be used: {e}")))?;
        if let Some((_, v)) = lock(&self.recent).iter().find(|(k, _)| k == q) {
            return Ok(v.clone());
        }
        let v = Arc::new(model.embed_query(q).map_err(ApiError::internal)?);
        let mut recent = lock(&self.recent);
        if recent.len() >= RECENT_QUERIES {
            recent.pop_front();
        }
        recent.push_back((q.to_owned(), v.clone()));
        Ok(v)
    }

    /// The `n` stored vectors nearest `query` (of the keys in `keep`, when given), with
    /// what others appended read first.
    pub fn nearest(&self, query: &[f32], n: usize, keep: Option<&HashSet<Key>>) -> Vec<(Key, f32)> {
        let Some(store) = &self.loaded().store else {
            return Vec::new();
        };
        if read(store).stale() {
            let _ = write(store).refresh();
        }
        let store = read(store);
        let ann = read(&self.ann).clone();
        ann.and_then(|ann| ann.nearest(&store, query, n, keep))
            .unwrap_or_else(|| store.nearest(query, n, keep))
    }

    /// Builds the approximate index when the project has `ann_min_sections` vectors
    /// and the index is missing or behind (see [`Ann::due`]); on the model's threads,
    /// from a copy of the vectors, so searches go on meanwhile. The embedder's thread
    /// calls it once every section is embedded.
    pub fn index_if_due(&self) {
        let Some(store) = &self.loaded().store else {
            return;
        };
        if read(store).stale() {
            let _ = write(store).refresh();
        }
        let snapshot = {
            let store = read(store);
            let current = read(&self.ann).clone();
            let due = current.as_ref().is_none_or(|ann| ann.due(&store));
            if store.len() < self.ann_min.max(1) || !due {
                return;
            }
            Snapshot::of(&store)
        };
        let started = std::time::Instant::now();
        let build = || snapshot.build();
        let ann = match self.model() {
            Some(model) => model.install(build),
            None => build(),
        };
        tracing::info!(
            "search by meaning: an approximate index of {} vectors built in {:.1} s",
            ann.len(),
            started.elapsed().as_secs_f64()
        );
        lock(&self.state).approximate = Some(ann.len());
        *write(&self.ann) = Some(Arc::new(ann));
    }

    /// The search-side store (the embedder reads what it has with it).
    pub fn store(&self) -> Option<&RwLock<Store>> {
        self.loaded().store.as_ref()
    }
}

/// The 400 a search by meaning gets without a usable model.
pub fn no_model(why: &str) -> ApiError {
    ApiError::bad(
        "no_model",
        format!(
            "{why}. Search by meaning needs an embedding model: run `doc-serve model fetch \
             all-MiniLM-L6-v2`, set \"embedding_model\": \"all-MiniLM-L6-v2\" in the \
             project's config.json and restart the resident; or search with mode=lexical"
        ),
    )
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

pub(crate) fn read<T>(m: &RwLock<T>) -> std::sync::RwLockReadGuard<'_, T> {
    m.read().unwrap_or_else(|p| p.into_inner())
}

pub(crate) fn write<T>(m: &RwLock<T>) -> std::sync::RwLockWriteGuard<'_, T> {
    m.write().unwrap_or_else(|p| p.into_inner())
}
