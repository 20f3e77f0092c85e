//! The resident's embedder: one background thread per project with an embedding model.
//! After each commit it embeds the sections whose text has no vector yet and appends
//! their vectors to the store (see [`crate::embed::store`]), a batch at a time, so a
//! kill loses at most the batch in hand. Lexical indexing and searches never wait for
//! it: it reads the index like a search, and the model's threads are its own.

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use sd_notify::NotifyState;

use super::shutdown::notify;
use crate::api::vectors::Vectors;
use crate::embed::store::{Store, StoreError};
use crate::engine::Engine;

/// Sections embedded and stored at a time.
const BATCH: usize = 64;
/// How often the embedder looks for a new commit.
const POLL: Duration = Duration::from_millis(500);

/// Stops the thread when dropped (the project closes).
pub struct Embedder {
    stop: Arc<AtomicBool>,
}

impl Drop for Embedder {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

impl Embedder {
    pub fn start(
        engine: Arc<Engine>,
        vectors: Arc<Vectors>,
        lock_timeout: Duration,
        status: bool,
    ) -> Option<Embedder> {
        let data_dir = engine.dir().parent()?.to_path_buf();
        let stop = Arc::new(AtomicBool::new(false));
        let stopped = stop.clone();
        let spawned = std::thread::Builder::new()
            .name("embedder".into())
            .spawn(move || {
                // Loaded here, not before the resident answers.
                let Some(model) = vectors.model().cloned() else {
                    return;
                };
                let mut store = Store::open_keys(&data_dir, model.fingerprint(), model.dim());
                let mut seen = None;
                while !stopped.load(Ordering::Relaxed) {
                    let generation = engine.searcher().generation().generation_id();
                    if seen != Some(generation) || store.stale() {
                        match catch_up(
                            &engine,
                            &vectors,
                            &mut store,
                            &stopped,
                            lock_timeout,
                            status,
                        ) {
                            Ok(()) => {
                                seen = Some(generation);
                                if !vectors.state().embedding {
                                    vectors.index_if_due();
                                }
                            }
                            Err(e) => {
                                tracing::warn!("embedding: {e}");
                                let [done, total] = vectors.state().embedded;
                                vectors.set_progress(done, total, false, Some(e));
                                std::thread::sleep(Duration::from_secs(5));
                            }
                        }
                        super::indexing::release_freed_memory();
                    }
                    std::thread::sleep(POLL);
                }
            });
        match spawned {
            Ok(_) => Some(Embedder { stop }),
            Err(e) => {
                tracing::warn!("cannot start the embedder: {e}");
                None
            }
        }
    }
}

/// Embeds every live section without a vector. Returns early when a new commit
/// arrives: sections it removed are not embedded, those it added are next.
fn catch_up(
    engine: &Engine,
    vectors: &Vectors,
    store: &mut Store,
    stop: &AtomicBool,
    lock_timeout: Duration,
    status: bool,
) -> Result<(), String> {
    let Some(model) = vectors.model() else {
        return Ok(());
    };
    let searcher = engine.searcher();
    let generation = searcher.generation().generation_id();
    let keys = engine.vector_keys(&searcher).map_err(|e| e.to_string())?;
    match store.refresh() {
        // Begun again below.
        Ok(()) | Err(StoreError::Unusable { .. }) => {}
        Err(e) => return Err(e.to_string()),
    }
    // A damaged tail or header would make the store look changed at every poll, and
    // this run again and again.
    store
        .cut_damaged_tail(lock_timeout)
        .map_err(|e| e.to_string())?;
    let mut missing: Vec<_> = keys
        .iter()
        .filter(|(k, _)| !store.contains(k))
        .map(|(k, a)| (*k, *a))
        .collect();
    // In index order: neighbouring sections are read from the same store blocks.
    missing.sort_by_key(|(_, a)| *a);
    let total = keys.len();
    let mut done = total - missing.len();
    vectors.set_progress(done, total, !missing.is_empty(), None);
    let started = Instant::now();
    let mut reported = Instant::now();
    for batch in missing.chunks(BATCH) {
        let newer = engine.searcher().generation().generation_id() != generation;
        if stop.load(Ordering::Relaxed) || newer {
            return Ok(());
        }
        let addrs: Vec<_> = batch.iter().map(|(_, a)| *a).collect();
        let texts = engine
            .embedding_texts(&searcher, &addrs)
            .map_err(|e| e.to_string())?;
        let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
        let vecs = model.embed(&refs).map_err(|e| e.to_string())?;
        let items: Vec<_> = batch.iter().map(|(k, _)| *k).zip(vecs).collect();
        store
            .append(&items, lock_timeout)
            .map_err(|e| e.to_string())?;
        done += batch.len();
        vectors.set_progress(done, total, done < total, None);
        if status && (reported.elapsed() > Duration::from_secs(2) || done == total) {
            reported = Instant::now();
            notify(&[NotifyState::Status(&format!(
                "serving; embedded {done}/{total} sections ({})",
                model.name()
            ))]);
        }
    }
    if !missing.is_empty() {
        tracing::info!(
            "embedded {} sections in {:.1}s ({})",
            missing.len(),
            started.elapsed().as_secs_f64(),
            model.name()
        );
    }
    // Vectors of sections edited away are dropped once they are a quarter of the file.
    let live: HashSet<_> = keys.into_keys().collect();
    let compacted = store
        .compact(&live, lock_timeout)
        .map_err(|e| e.to_string())?;
    if compacted && let Some(s) = vectors.store() {
        let _ = crate::api::vectors::write(s).refresh();
    }
    Ok(())
}
