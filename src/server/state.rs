//! What every request handler can see: the resident's identity and its activity.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Mutex, RwLock};
use std::time::{Duration, Instant};

use hyper::body::Bytes;
use serde::Serialize;
use serde_json::json;

use std::sync::Arc;

use super::indexing::{Gate, IndexHandle, IndexService, Reload, Settings};
use super::projects::Projects;
use crate::api::{ApiError, Freshness};
use crate::config::{Config, Mode};
use crate::discovery::runtime::{Activation, ListenerInfo, RuntimeState};
use crate::engine::Engine;
use crate::events::EventLog;
use crate::ingest::sync::Indexer;
use crate::ingest::sync::Summary;
use crate::ingest::walk::Sources;

/// What every request handler sees of the running server: its identity, settings
/// and activity, and what it serves.
pub struct Server {
    pub runtime: RuntimeState,
    pub token: String,
    /// One-time codes and browser sessions (`doc-serve open`).
    pub login: super::login::Login,
    pub bind_host: String,
    pub max_body_bytes: usize,
    pub request_timeout: Duration,
    pub idle_timeout: Option<Duration>,
    pub started: Instant,
    pub activity: Activity,
    pub sites: Sites,
    /// The `/mcp` service, made on first use.
    pub mcp: std::sync::OnceLock<super::mcp_http::Service>,
    /// The `/health` body, written on first use: nothing in it changes.
    pub health: std::sync::OnceLock<Bytes>,
}

/// What a resident serves: its project, or (the shared daemon) registered projects.
pub enum Sites {
    One(Arc<Site>),
    Many(Arc<Projects>),
}

/// One project's index and sources, as the routes use them.
pub struct Site {
    pub index: IndexHandle,
    /// Search by meaning, with a model set (`embedding_model`).
    pub vectors: Option<Arc<crate::api::vectors::Vectors>>,
    /// The background embedder; stops when the site is dropped.
    _embedder: Option<super::embedder::Embedder>,
    /// What the settings in force make the project's sources and answers: replaced
    /// when the settings change (see [`Reload`]).
    pub live: Arc<Current<Live>>,
}

/// The settings a running project applies as soon as they change.
pub struct Live {
    pub sources: Arc<Sources>,
    pub max_hits_per_file: usize,
}

impl Live {
    pub fn of(sources: &Sources, config: &Config) -> Live {
        Live {
            sources: Arc::new(sources.clone()),
            max_hits_per_file: config.max_hits_per_file,
        }
    }
}

/// A value read by many, replaced now and then.
pub struct Current<T>(RwLock<Arc<T>>);

impl<T> Current<T> {
    pub fn new(value: T) -> Current<T> {
        Current(RwLock::new(Arc::new(value)))
    }

    pub fn get(&self) -> Arc<T> {
        self.0.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    pub fn set(&self, value: T) {
        *self.0.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(value);
    }
}

impl Site {
    /// Starts the indexer thread of one project (see [`IndexService`]) and returns
    /// the site the routes use, with the service that stops it.
    pub fn start(
        indexer: Indexer,
        config: &Config,
        state_dir: PathBuf,
        gate: Option<(Arc<Gate>, String)>,
        events: EventLog,
        reload: Option<Reload>,
    ) -> (Site, IndexService) {
        let live = Arc::new(Current::new(Live::of(&indexer.sources, config)));
        let vectors = config.embedding_model.as_deref().map(|setting| {
            let data_dir = indexer
                .engine
                .dir()
                .parent()
                .unwrap_or(std::path::Path::new("."));
            Arc::new(crate::api::vectors::Vectors::open(
                setting,
                indexer.sources.root(),
                data_dir,
                config.embedding_threads,
                config.ann_min_sections,
            ))
        });
        let embedder = vectors.as_ref().and_then(|v| {
            super::embedder::Embedder::start(
                indexer.engine.clone(),
                v.clone(),
                config.lock_timeout,
                gate.is_none(),
            )
        });
        let settings = Settings {
            debounce: config.debounce,
            reconcile_every: config.reconcile_interval,
            state_dir,
            gate,
            reload: reload.map(|r| (r, config.clone(), live.clone())),
        };
        let (service, index) = IndexService::start(indexer, settings, events);
        (
            Site {
                index,
                live,
                vectors,
                _embedder: embedder,
            },
            service,
        )
    }
}

impl crate::api::Site for Site {
    fn engine(&self) -> &Arc<Engine> {
        &self.index.engine
    }

    fn sources(&self) -> Arc<Sources> {
        self.live.get().sources.clone()
    }

    fn max_per_file(&self) -> usize {
        self.live.get().max_hits_per_file
    }

    fn freshness(&self) -> Freshness {
        let mut f = self.index.freshness();
        f.embedding = self.vectors.as_ref().map(|v| v.state());
        f
    }

    fn vectors(&self) -> Option<Arc<crate::api::vectors::Vectors>> {
        self.vectors.clone()
    }

    fn should_wait(&self, found_nothing: bool) -> bool {
        self.index.should_wait(found_nothing)
    }

    fn wait_started(&self, bound: Duration) -> impl Future<Output = ()> + Send {
        self.index.wait_started(bound)
    }

    async fn reindex(&self, full: bool) -> Result<Summary, ApiError> {
        self.index.reindex(full).await
    }
}

impl Server {
    /// The `/health` body (JSON).
    pub fn health(&self) -> Bytes {
        let body = self.health.get_or_init(|| {
            let health = json!({
                "status": "ok",
                "instance_id": self.runtime.instance_id,
                "version": self.runtime.version,
                "project_root": self.runtime.project_root,
                "pid": self.runtime.pid,
            });
            serde_json::to_vec(&health).unwrap_or_default().into()
        });
        body.clone()
    }

    /// Which routes this server has ([`super::router`]).
    pub fn kind(&self) -> super::router::Kind {
        match self.sites {
            Sites::One(_) => super::router::Kind::Resident,
            Sites::Many(_) => super::router::Kind::Shared,
        }
    }

    /// Who answers `/status`: this resident (or shared daemon).
    pub fn status(&self) -> ServerStatus<'_> {
        let r = &self.runtime;
        ServerStatus {
            status: "ok",
            mode: r.mode,
            instance_id: &r.instance_id,
            version: &r.version,
            project_root: &r.project_root,
            project_id: &r.project_id,
            pid: r.pid,
            started_at: &r.started_at,
            uptime_seconds: self.started.elapsed().as_secs(),
            activation: r.activation,
            listeners: &r.listeners,
            idle_timeout_seconds: self.idle_timeout.map_or(0, |d| d.as_secs()),
            requests: Requests {
                in_flight: self.activity.in_flight(),
                served: self.activity.served(),
            },
        }
    }

    pub fn project_root(&self) -> &PathBuf {
        &self.runtime.project_root
    }
}

/// A running resident or shared daemon, as `/status` shows it.
#[derive(Debug, Serialize)]
pub struct ServerStatus<'a> {
    pub status: &'static str,
    pub mode: Mode,
    pub instance_id: &'a str,
    pub version: &'a str,
    pub project_root: &'a Path,
    pub project_id: &'a str,
    pub pid: u32,
    pub started_at: &'a str,
    pub uptime_seconds: u64,
    pub activation: Activation,
    pub listeners: &'a [ListenerInfo],
    /// 0: it never exits for being idle.
    pub idle_timeout_seconds: u64,
    pub requests: Requests,
}

#[derive(Debug, Serialize)]
pub struct Requests {
    pub in_flight: usize,
    pub served: u64,
}

/// Requests in flight and the time of the last one, for the idle timeout.
#[derive(Debug)]
pub struct Activity {
    in_flight: AtomicUsize,
    served: AtomicU64,
    last: Mutex<Instant>,
}

impl Default for Activity {
    fn default() -> Self {
        Activity {
            in_flight: AtomicUsize::new(0),
            served: AtomicU64::new(0),
            last: Mutex::new(Instant::now()),
        }
    }
}

impl Activity {
    /// Marks a request as started; the guard marks it finished.
    pub fn begin(&self) -> Busy<'_> {
        self.in_flight.fetch_add(1, Ordering::SeqCst);
        self.touch();
        Busy(self)
    }

    fn touch(&self) {
        // A poisoned lock only means a panic elsewhere; the Instant is still valid.
        *self.last.lock().unwrap_or_else(|p| p.into_inner()) = Instant::now();
    }

    pub fn in_flight(&self) -> usize {
        self.in_flight.load(Ordering::SeqCst)
    }

    pub fn served(&self) -> u64 {
        self.served.load(Ordering::Relaxed)
    }

    /// How long nothing has been in flight; zero while a request is.
    pub fn idle_for(&self) -> Duration {
        if self.in_flight() > 0 {
            return Duration::ZERO;
        }
        self.last
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .elapsed()
    }
}

/// Dropped when a request's handler finishes.
pub struct Busy<'a>(&'a Activity);

impl Drop for Busy<'_> {
    fn drop(&mut self) {
        self.0.touch();
        self.0.served.fetch_add(1, Ordering::Relaxed);
        self.0.in_flight.fetch_sub(1, Ordering::SeqCst);
    }
}
