//! The resident's indexer: one thread that owns all index writes of this process.
//!
//! Jobs arrive on a channel (meilisearch's "one scheduler writes, everyone else
//! enqueues"): the initial reconciliation, file-change events from the watcher
//! (debounced), periodic reconciliations, and `POST /index`. A busy index lock makes
//! the job wait for the next event, or a retry a moment later; a job that failed (a
//! full disk) is reported once, and the next event or a later retry walks the tree.
//! Progress and freshness are published in [`IndexState`] for /status and for
//! systemd's STATUS=.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::sync::atomic::AtomicBool;
use std::sync::atomic::Ordering;
use std::sync::mpsc::{Receiver, RecvTimeoutError, Sender, channel};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use sd_notify::NotifyState;
use serde::Serialize;
use tokio::sync::{oneshot, watch};

use super::shutdown::notify;
use super::state::{Current, Live};
use crate::api::{ApiError, Freshness, SettingsState};
use crate::config::Config;
use crate::engine::{Engine, EngineError};
use crate::events::{EventLog, now_rfc3339};
use crate::ingest::sync::{Indexer, Progress, Summary, chunk_options};
use crate::ingest::walk::Sources;
use crate::ingest::watcher;

/// How soon a job skipped for a busy lock is tried again without a new event.
const BUSY_RETRY: Duration = Duration::from_secs(2);
/// How soon a job that failed (a full disk, say) is tried again without a new event.
const FAILED_RETRY: Duration = Duration::from_secs(30);

/// Where a requested reconciliation sends its outcome.
pub type Reply = oneshot::Sender<Result<Summary, ApiError>>;

pub enum Job {
    Reconcile {
        full: bool,
        reply: Option<Reply>,
    },
    /// Files changed (see [`watcher::Change`]).
    Changed(watcher::Change),
    Stop,
}

/// What a debounced burst of events asks for.
enum Work {
    Reconcile { full: bool, reply: Option<Reply> },
    Paths(BTreeSet<PathBuf>),
}

/// What /status reports about the index.
#[derive(Debug, Clone, Default, Serialize)]
pub struct IndexState {
    pub indexing: bool,
    pub progress: Option<[usize; 2]>,
    /// A change seen but not yet indexed (debouncing, or waiting for the lock).
    pub pending_changes: bool,
    /// How many files the pending change names; `None` when it needs a walk.
    pub pending_files: Option<usize>,
    pub watcher: String,
    pub last_commit: Option<String>,
    pub last_summary: Option<Summary>,
    pub last_error: Option<String>,
    pub settings: SettingsState,
}

/// What request handlers use: the engine to search, the state to report, the queue.
#[derive(Clone)]
pub struct IndexHandle {
    pub engine: Arc<Engine>,
    state: Arc<Mutex<IndexState>>,
    tx: Sender<Job>,
    /// True once the start-up reconciliation is done, or will not be (the indexer
    /// stopped, the resident shuts down): what a search waits for (see
    /// [`IndexHandle::should_wait`]).
    started: Arc<watch::Sender<bool>>,
    /// The index held no file when the resident started: the start-up reconciliation
    /// builds the first index, and what is committed meanwhile is only part of it.
    first_build: bool,
}

/// The indexer thread (which owns the watcher); stopped once, at shutdown.
pub struct IndexService {
    tx: Sender<Job>,
    thread: Option<JoinHandle<()>>,
    indexer_cancel: Arc<std::sync::atomic::AtomicBool>,
    started: Arc<watch::Sender<bool>>,
}

pub struct Settings {
    pub debounce: Duration,
    pub reconcile_every: Option<Duration>,
    pub state_dir: std::path::PathBuf,
    /// The shared daemon's cap on indexing jobs at once, and this project's id.
    pub gate: Option<(Arc<Gate>, String)>,
    /// How to load the settings again, the settings in force, and where the routes
    /// read the part of them that applies at once.
    pub reload: Option<(Reload, Config, Arc<Current<Live>>)>,
}

/// How a running project loads its settings again: `load` once `file` changed.
pub struct Reload {
    pub file: PathBuf,
    /// The file, the environment and the flags the process started with.
    pub load: Box<dyn Fn() -> anyhow::Result<Config> + Send>,
}

/// How often the settings file is looked at (one `stat`).
const SETTINGS_CHECK: Duration = Duration::from_secs(1);

/// The settings keys a running project applies at once; the others need a restart.
const LIVE_KEYS: [&str; 6] = [
    "include",
    "exclude",
    "max_file_bytes",
    "chunk_size",
    "chunk_overlap",
    "max_hits_per_file",
];

/// The keys whose values differ between two settings.
fn differing(a: &Config, b: &Config) -> Vec<String> {
    let (a, b) = (
        serde_json::to_value(a).unwrap_or_default(),
        serde_json::to_value(b).unwrap_or_default(),
    );
    b.as_object()
        .into_iter()
        .flatten()
        .filter(|(k, v)| a.get(k.as_str()) != Some(*v))
        .map(|(k, _)| k.clone())
        .collect()
}

/// A cap on index jobs running at once across the projects of one process (the
/// shared daemon's `max_concurrent_indexing`), with who runs and who waits, for /status.
pub struct Gate {
    max: usize,
    state: Mutex<GateState>,
    freed: Condvar,
}

#[derive(Default, Clone, Serialize)]
pub struct GateState {
    pub running: Vec<String>,
    pub queued: Vec<String>,
}

/// A place under a [`Gate`]; given back on drop.
pub struct Permit<'g> {
    gate: &'g Gate,
    id: String,
}

impl Gate {
    pub fn new(max: usize) -> Gate {
        Gate {
            max: max.max(1),
            state: Mutex::default(),
            freed: Condvar::new(),
        }
    }

    pub fn max(&self) -> usize {
        self.max
    }

    pub fn snapshot(&self) -> GateState {
        lock(&self.state).clone()
    }

    /// Waits for a place for `id`; `None` once `cancel` is set (the project closes).
    fn acquire(&self, id: &str, cancel: &AtomicBool) -> Option<Permit<'_>> {
        let mut s = lock(&self.state);
        s.queued.push(id.to_owned());
        while s.running.len() >= self.max {
            if cancel.load(Ordering::Relaxed) {
                s.queued.retain(|q| q != id);
                return None;
            }
            s = self
                .freed
                .wait_timeout(s, Duration::from_millis(50))
                .unwrap_or_else(|p| p.into_inner())
                .0;
        }
        if let Some(at) = s.queued.iter().position(|q| q == id) {
            s.queued.remove(at);
        }
        s.running.push(id.to_owned());
        Some(Permit {
            gate: self,
            id: id.to_owned(),
        })
    }
}

impl Drop for Permit<'_> {
    fn drop(&mut self) {
        let mut s = lock(&self.gate.state);
        if let Some(at) = s.running.iter().position(|r| *r == self.id) {
            s.running.remove(at);
        }
        self.gate.freed.notify_one();
    }
}

impl IndexService {
    /// Starts the thread and queues the initial reconciliation.
    pub fn start(
        indexer: Indexer,
        settings: Settings,
        events: EventLog,
    ) -> (IndexService, IndexHandle) {
        let (tx, rx) = channel();
        let state = Arc::new(Mutex::new(IndexState::default()));
        let engine = indexer.engine.clone();
        // The watcher is set up on the indexer thread, before the start-up
        // reconciliation: a recursive watch adds one inotify watch per directory, which
        // on a large tree would delay the first answer of a just-activated resident.
        {
            let mut s = lock(&state);
            s.watcher = "starting".into();
            // The last commit is the index's, whoever made it, as a standalone answer
            // says.
            s.last_commit = engine.last_commit_at();
            // The start-up reconciliation is queued: until it is done, answers come
            // from what is committed and say so.
            s.indexing = true;
        }
        let watch_tx = tx.clone();
        let _ = tx.send(Job::Reconcile {
            full: false,
            reply: None,
        });
        let cancel = indexer.cancel.clone();
        let settings_seen = settings.reload.as_ref().map(|(r, ..)| contents(&r.file));
        let first_build = engine.counts().map_or(true, |(files, _)| files == 0);
        let started = Arc::new(watch::Sender::new(false));
        let worker = Worker {
            last_report: Mutex::new(Instant::now()),
            indexer,
            state: state.clone(),
            settings,
            settings_seen,
            in_force: None,
            events,
            started: started.clone(),
        };
        let thread = std::thread::Builder::new()
            .name("indexer".into())
            .spawn(move || {
                let _watcher = worker.watch(watch_tx);
                worker.run(rx)
            })
            .ok();
        let handle = IndexHandle {
            engine,
            state,
            tx: tx.clone(),
            started: started.clone(),
            first_build,
        };
        (
            IndexService {
                tx,
                thread,
                indexer_cancel: cancel,
                started,
            },
            handle,
        )
    }
}

impl IndexHandle {
    pub fn state(&self) -> IndexState {
        lock(&self.state).clone()
    }

    /// The freshness footer of /query and the index part of /status.
    pub fn freshness(&self) -> Freshness {
        let s = self.state();
        let (files, chunks) = self.engine.counts().unwrap_or_default();
        Freshness {
            files,
            chunks,
            // Until the start-up reconciliation is done (an attempt that found the lock
            // busy is retried), what is committed is not all there is.
            indexing: s.indexing || !*self.started.borrow(),
            progress: s.progress,
            pending_changes: s.pending_changes,
            pending_files: if s.pending_changes {
                s.pending_files
            } else {
                Some(0)
            },
            watcher: s.watcher,
            last_commit: s.last_commit,
            last_error: s.last_error,
            embedding: None,
        }
    }

    /// Whether a search should wait for the start-up reconciliation before answering:
    /// it still runs, and it builds the first index (what is committed is only part of
    /// it) or the search found nothing in what is committed. An index that was built
    /// before answers at once when it finds something: a just-activated resident's
    /// first answer is not held up by its catch-up with the disk.
    pub fn should_wait(&self, found_nothing: bool) -> bool {
        !*self.started.borrow() && (self.first_build || found_nothing)
    }

    /// Waits up to `bound` for the start-up reconciliation (see [`Self::should_wait`]).
    pub async fn wait_started(&self, bound: Duration) {
        let mut done = self.started.subscribe();
        let _ = tokio::time::timeout(bound, done.wait_for(|d| *d)).await;
    }

    /// Ends every wait for the start-up reconciliation: the resident is shutting down,
    /// and waiting searches answer from what is committed.
    pub fn end_waits(&self) {
        self.started.send_replace(true);
    }

    /// Queues a reconciliation and waits for its summary.
    pub async fn reindex(&self, full: bool) -> Result<Summary, ApiError> {
        let (reply, answer) = oneshot::channel();
        self.tx
            .send(Job::Reconcile {
                full,
                reply: Some(reply),
            })
            .map_err(|_| ApiError::unavailable("the indexer has stopped"))?;
        answer
            .await
            .map_err(|_| ApiError::unavailable("the indexer stopped before answering"))?
    }
}

impl IndexService {
    /// Stops the thread: the batch in progress is rolled back if it cannot finish
    /// within `bound`.
    pub fn stop(mut self, bound: Duration) {
        self.started.send_replace(true);
        let _ = self.tx.send(Job::Stop);
        let Some(thread) = self.thread.take() else {
            return;
        };
        let deadline = Instant::now() + bound;
        while !thread.is_finished() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
        }
        if !thread.is_finished() {
            self.indexer_cancel.store(true, Ordering::Relaxed);
        }
        let _ = thread.join();
    }
}

fn lock<T>(state: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    state.lock().unwrap_or_else(|p| p.into_inner())
}

struct Worker {
    last_report: Mutex<Instant>,
    indexer: Indexer,
    state: Arc<Mutex<IndexState>>,
    settings: Settings,
    /// The settings file as last loaded (see [`contents`]).
    settings_seen: Option<Contents>,
    /// The settings last loaded, once they were loaded again.
    in_force: Option<Config>,
    events: EventLog,
    /// Set once the start-up reconciliation is done (see [`IndexHandle::should_wait`]).
    started: Arc<watch::Sender<bool>>,
}

/// A settings file's bytes, or why it cannot be read. Compared whole, not by size and
/// times: two saves within one tick of the file system's clock may leave those equal,
/// and a file is a few hundred bytes.
type Contents = Result<Option<Vec<u8>>, String>;

fn contents(path: &std::path::Path) -> Contents {
    crate::config::read_file(path).map_err(|e| e.to_string())
}

impl Worker {
    /// Starts watching the root; `None` when the platform refuses (periodic
    /// reconciliation still keeps the index right, only later).
    fn watch(&self, tx: Sender<Job>) -> Option<notify::RecommendedWatcher> {
        let root = self.indexer.sources.root();
        match watcher::watch(root, self.indexer.sources.private(), move |change| {
            let _ = tx.send(Job::Changed(change));
        }) {
            Ok(w) => {
                lock(&self.state).watcher = "watching".into();
                Some(w)
            }
            Err(e) => {
                tracing::warn!("file watcher unavailable: {e}");
                lock(&self.state).watcher = format!("unavailable: {e}");
                None
            }
        }
    }

    fn run(mut self, rx: Receiver<Job>) {
        let mut next_periodic = self.settings.reconcile_every.map(|d| Instant::now() + d);
        let mut retry_at: Option<Instant> = None;
        let mut next_settings_check = self
            .settings
            .reload
            .as_ref()
            .map(|_| Instant::now() + SETTINGS_CHECK);
        loop {
            let wake = [next_periodic, retry_at, next_settings_check]
                .into_iter()
                .flatten()
                .min();
            let job = match wake {
                Some(at) => match rx.recv_timeout(at.saturating_duration_since(Instant::now())) {
                    Ok(job) => Some(job),
                    Err(RecvTimeoutError::Timeout) => None,
                    Err(RecvTimeoutError::Disconnected) => return,
                },
                None => match rx.recv() {
                    Ok(job) => Some(job),
                    Err(_) => return,
                },
            };
            // Settings first: a reconciliation asked for right after an edit (`doc-serve
            // index`) runs with the edited settings.
            let settings_changed = self.check_settings();
            next_settings_check = next_settings_check.map(|_| Instant::now() + SETTINGS_CHECK);
            let now = Instant::now();
            let job = match job {
                Some(job) => job,
                None if settings_changed
                    || next_periodic.is_some_and(|t| now >= t)
                    || retry_at.is_some_and(|t| now >= t) =>
                {
                    Job::Reconcile {
                        full: false,
                        reply: None,
                    }
                }
                None => continue,
            };
            let work = match job {
                Job::Stop => return,
                Job::Reconcile { full, reply } => Work::Reconcile { full, reply },
                // The settings changed what is a source: the walk decides again.
                Job::Changed(_) if settings_changed => Work::Reconcile {
                    full: false,
                    reply: None,
                },
                Job::Changed(change) => {
                    {
                        let mut s = lock(&self.state);
                        s.pending_changes = true;
                        s.pending_files = change.paths.as_ref().map(Vec::len);
                    }
                    match self.debounce(&rx, change) {
                        Some(work) => work,
                        None => return,
                    }
                }
            };
            if next_periodic.is_some_and(|t| Instant::now() >= t) {
                next_periodic = self.settings.reconcile_every.map(|d| Instant::now() + d);
            }
            // After a failed job, changed paths are not all there is to do: the walk
            // finds what the failed one left undone.
            let work = match work {
                Work::Paths(_) if lock(&self.state).last_error.is_some() => Work::Reconcile {
                    full: false,
                    reply: None,
                },
                work => work,
            };
            let reconciled = matches!(work, Work::Reconcile { .. });
            let (result, reply) = match work {
                Work::Reconcile { full, reply } => (
                    self.attempt(|i| i.reconcile(full, &mut |p| self.progress(p))),
                    reply,
                ),
                Work::Paths(paths) => {
                    let paths: Vec<PathBuf> = paths.into_iter().collect();
                    (self.attempt(|i| i.update_paths(&paths)), None)
                }
            };
            retry_at = match &result {
                Ok(_) | Err(EngineError::Cancelled) => None,
                Err(EngineError::Busy { .. }) => Some(Instant::now() + BUSY_RETRY),
                Err(_) => Some(Instant::now() + FAILED_RETRY),
            };
            // The first reconciliation that ran to an end, well or not, ends the
            // start-up: one that found the lock busy is retried, and waited for.
            if reconciled && !matches!(result, Err(EngineError::Busy { .. })) {
                self.started.send_replace(true);
            }
            if let Some(reply) = reply {
                let _ = reply.send(result.map_err(ApiError::from));
            }
        }
    }

    /// Loads the settings again when their file changed, and applies what can be
    /// applied at once (the sources, the chunking, the per-file hit cap); `true` when
    /// that changed what the index should hold. Settings that do not load leave the
    /// last good ones in force, and say why in /status and events.jsonl.
    fn check_settings(&mut self) -> bool {
        let Some((reload, started, live)) = &self.settings.reload else {
            return false;
        };
        let stamp = Some(contents(&reload.file));
        if stamp == self.settings_seen {
            return false;
        }
        self.settings_seen = stamp;
        let loaded = (reload.load)().and_then(|config| {
            let mut sources = Sources::new(
                self.indexer.sources.root(),
                &self.settings.state_dir,
                &config,
            )?;
            sources.keep_token_of(&self.indexer.sources);
            Ok((config, sources))
        });
        let (config, sources) = match loaded {
            Ok(found) => found,
            Err(e) => {
                let mut message = format!("{e:#}");
                let file = reload.file.display().to_string();
                if !message.contains(&file) {
                    message = format!("{file}: {message}");
                }
                message.push_str("; the last good settings stay in force");
                tracing::warn!("{message}");
                self.events
                    .record("config_error", serde_json::json!({ "message": message }));
                lock(&self.state).settings.error = Some(message);
                return false;
            }
        };
        for w in &config.warnings {
            tracing::warn!("{w}");
        }
        let in_force = self.in_force.as_ref().unwrap_or(started);
        let applied: Vec<String> = differing(in_force, &config)
            .into_iter()
            .filter(|k| LIVE_KEYS.contains(&k.as_str()))
            .collect();
        let restart: Vec<String> = differing(started, &config)
            .into_iter()
            .filter(|k| !LIVE_KEYS.contains(&k.as_str()))
            .collect();
        let reported = {
            let mut s = lock(&self.state);
            let was = std::mem::replace(&mut s.settings.restart_needed, restart.clone());
            s.settings.error = None;
            if !applied.is_empty() {
                s.settings.last_reload = Some(now_rfc3339());
            }
            was
        };
        if !applied.is_empty() || restart != reported {
            if !restart.is_empty() {
                tracing::warn!(
                    "{} changes {}: this takes effect at the next start",
                    reload.file.display(),
                    restart.join(", ")
                );
            }
            self.events.record(
                "config_reloaded",
                serde_json::json!({ "applied": applied, "restart_needed": restart }),
            );
        }
        if applied.is_empty() {
            self.in_force = Some(config);
            return false;
        }
        tracing::info!("settings reloaded: {}", applied.join(", "));
        live.set(Live::of(&sources, &config));
        self.indexer.sources = sources;
        self.indexer.chunking = chunk_options(&config);
        self.in_force = Some(config);
        true
    }

    /// Gathers changes until none has arrived for the debounce time, or for an eighth
    /// of it after a change that says the writer is done (a file closed after writing,
    /// renamed into place, removed): a saved file is indexed at once, a file still being
    /// written is not. A request that arrives meanwhile, or lost events, turn the burst
    /// into a reconciliation; `None` means stop.
    fn debounce(&self, rx: &Receiver<Job>, first: watcher::Change) -> Option<Work> {
        let full = self.settings.debounce;
        let short = (full / 8).max(Duration::from_millis(5)).min(full);
        let mut wait = if first.settled { short } else { full };
        let mut paths: Option<BTreeSet<PathBuf>> = first.paths.map(|p| p.into_iter().collect());
        loop {
            match rx.recv_timeout(wait) {
                Ok(Job::Changed(more)) => {
                    wait = if more.settled { short } else { full };
                    match (&mut paths, more.paths) {
                        (Some(set), Some(more)) => set.extend(more),
                        _ => paths = None,
                    }
                    lock(&self.state).pending_files = paths.as_ref().map(BTreeSet::len);
                }
                Ok(Job::Reconcile { full, reply }) => return Some(Work::Reconcile { full, reply }),
                Ok(Job::Stop) | Err(RecvTimeoutError::Disconnected) => return None,
                Err(RecvTimeoutError::Timeout) => {
                    return Some(match paths {
                        Some(set) => Work::Paths(set),
                        None => Work::Reconcile {
                            full: false,
                            reply: None,
                        },
                    });
                }
            }
        }
    }

    fn progress(&self, p: Progress) {
        lock(&self.state).progress = Some([p.done, p.total]);
        let mut last = lock(&self.last_report);
        if p.total > 0 && (last.elapsed() > Duration::from_millis(500) || p.done == p.total) {
            *last = Instant::now();
            notify(&[NotifyState::Status(&format!(
                "indexing {}/{} files",
                p.done, p.total
            ))]);
        }
    }

    /// Runs one piece of index work, publishing its state and outcome.
    fn attempt(
        &self,
        work: impl FnOnce(&Indexer) -> Result<Summary, EngineError>,
    ) -> Result<Summary, EngineError> {
        lock(&self.state).indexing = true;
        let permit = match &self.settings.gate {
            Some((gate, id)) => match gate.acquire(id, &self.indexer.cancel) {
                Some(p) => Some(p),
                None => return Err(EngineError::Cancelled),
            },
            None => None,
        };
        lock(&self.state).pending_changes = false;
        let result = work(&self.indexer);
        drop(permit);
        self.publish(&result);
        // After the state says the job is done: a search that waits for it need not
        // wait for the memory to be given back.
        if result
            .as_ref()
            .is_ok_and(|s| s.added + s.updated + s.removed > 0)
        {
            release_freed_memory();
        }
        result
    }

    /// Publishes the outcome of an indexing job: no longer indexing, and its summary
    /// or error.
    fn publish(&self, result: &Result<Summary, EngineError>) {
        let mut s = lock(&self.state);
        s.indexing = false;
        s.progress = None;
        match result {
            Ok(summary) => {
                let changed = summary.added + summary.updated + summary.removed;
                // Another process may have committed too (the reader was reloaded).
                if let Some(at) = self.indexer.engine.last_commit_at() {
                    s.last_commit = Some(at);
                }
                if changed > 0 {
                    self.events.record(
                        "indexed",
                        serde_json::json!({ "added": summary.added, "updated": summary.updated,
                            "removed": summary.removed, "took_ms": summary.took_ms }),
                    );
                }
                s.last_summary = Some(summary.clone());
                s.last_error = None;
                let (files, chunks) = self.indexer.engine.counts().unwrap_or_default();
                notify(&[NotifyState::Status(&format!(
                    "serving; {files} files, {chunks} sections indexed"
                ))]);
            }
            Err(e) => {
                tracing::warn!("indexing skipped: {e}");
                s.pending_changes = true;
                // The walk that follows a failed job decides what is left.
                s.pending_files = None;
                let message = e.to_string();
                // Once per error, not at every retry.
                let failed = !matches!(e, EngineError::Busy { .. } | EngineError::Cancelled);
                if failed && s.last_error.as_ref() != Some(&message) {
                    self.events
                        .record("error", serde_json::json!({ "message": message }));
                }
                s.last_error = Some(message);
            }
        }
    }
}

/// Gives the memory a job freed (an indexing batch, a round of embedding) back to the
/// OS: glibc keeps freed pages in its arenas otherwise, and a long-lived process (the
/// shared daemon above all) would hold on to every job's peak.
pub(crate) fn release_freed_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only returns free heap pages to the OS.
    unsafe {
        libc::malloc_trim(0);
    }
}
