//! The shared daemon's projects: registered on demand, opened lazily, closed when idle.
//!
//! Each registered project ([`crate::daemon`]) is a slot. Its index, sources, watcher
//! and indexer thread open at the first request that needs them and close after
//! `project_idle_seconds` without one, or when more than `max_open_projects` are open
//! (least recently used first); a project whose indexing job is running is closed once
//! the job is done. Indexing
//! jobs of all projects share one [`Gate`] of `max_concurrent_indexing` places.
//!
//! A project's failure (its root gone, its config or index unreadable) is that
//! project's answer and its entry in /projects; the daemon and the other projects go on.
//!
//! Routes: `GET /projects`, `POST /projects {"root": ...}`, and each project's own
//! routes under `/projects/{id}/` (`query`, `documents/{path}`, `render/{path}`, `index`,
//! `status`).

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use hyper::body::Bytes;
use hyper::{Method, StatusCode};
use serde::Deserialize;
use serde_json::{Value, json};

use super::http::{Answer, project_route};
use super::indexing::{Gate, IndexService, Reload};
use super::router::{Found, Op};
use super::routes;
use super::state::{Server, Site};
use crate::api::{self, ApiError, Freshness, blocking};
use crate::config::{Config, Environment, Mode};
use crate::daemon::{self, Home, RegisterError, Registration};
use crate::discovery::runtime::{RuntimeFile, RuntimeState};
use crate::events::EventLog;
use crate::flock;
use crate::ingest::sync::Indexer;

pub struct Projects {
    home: Home,
    env: Environment,
    config: Config,
    gate: Arc<Gate>,
    slots: Mutex<BTreeMap<String, Arc<Slot>>>,
    /// Records that could not be read at start-up, for /projects.
    problems: Vec<String>,
    /// The daemon's runtime state, once it listens: copied into each shared-mode
    /// project's pointer runtime.json.
    runtime: OnceLock<RuntimeState>,
    /// What no project's sources may hold: the daemon's token and session key.
    secrets: OnceLock<Vec<String>>,
}

struct Slot {
    reg: Registration,
    open: Mutex<Option<Open>>,
    last_used: Mutex<Instant>,
    /// The last index figures seen while open, for /projects once closed.
    last_index: Mutex<Option<Freshness>>,
    /// Why the project could not be opened the last time it was tried.
    error: Mutex<Option<String>>,
}

struct Open {
    site: Arc<Site>,
    service: IndexService,
}

fn lock_of<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Projects {
    /// The registered projects of `home`; none is opened yet.
    pub fn load(home: Home, env: Environment, config: Config) -> Projects {
        let (regs, bad) = home.registrations();
        let problems = bad.iter().map(|e| e.to_string()).collect::<Vec<_>>();
        for p in &problems {
            tracing::warn!("skipping a registered project: {p}");
        }
        let slots = regs
            .into_iter()
            .map(|r| (r.id.clone(), Arc::new(Slot::new(r))))
            .collect();
        Projects {
            gate: Arc::new(Gate::new(config.max_concurrent_indexing)),
            home,
            env,
            config,
            slots: Mutex::new(slots),
            problems,
            runtime: OnceLock::new(),
            secrets: OnceLock::new(),
        }
    }

    /// Records where the daemon listens and points every shared-mode project at it;
    /// `secrets` are kept out of every project's sources.
    pub fn listening(&self, runtime: &RuntimeState, secrets: Vec<String>) {
        let _ = self.runtime.set(runtime.clone());
        let _ = self.secrets.set(secrets);
        for slot in self.all() {
            self.write_pointer(&slot.reg);
        }
    }

    fn all(&self) -> Vec<Arc<Slot>> {
        lock_of(&self.slots).values().cloned().collect()
    }

    fn slot(&self, id: &str) -> Result<Arc<Slot>, ApiError> {
        lock_of(&self.slots).get(id).cloned().ok_or_else(|| {
            ApiError::new(
                StatusCode::NOT_FOUND,
                "unknown_project",
                format!(
                    "no project {id:?} is registered with this daemon; register one with \
                     POST /projects {{\"root\": \"/path/to/project\"}} (GET /projects lists them)"
                ),
            )
        })
    }

    /// The project's site if it is open, without waiting: `None` when it must be opened
    /// (or is being opened), which [`Projects::site`] does off the async runtime.
    fn open_site(&self, id: &str) -> Option<Arc<Site>> {
        let slot = lock_of(&self.slots).get(id).cloned()?;
        let site = slot.open.try_lock().ok()?.as_ref()?.site.clone();
        *lock_of(&slot.last_used) = Instant::now();
        Some(site)
    }

    /// The project's site, opened now if it is not open (blocking).
    fn site(&self, id: &str) -> Result<Arc<Site>, ApiError> {
        let slot = self.slot(id)?;
        *lock_of(&slot.last_used) = Instant::now();
        let mut open = lock_of(&slot.open);
        if let Some(o) = open.as_ref() {
            return Ok(o.site.clone());
        }
        let reg = &slot.reg;
        if !reg.root.is_dir() {
            let message = format!(
                "project {}: its root {} no longer exists",
                reg.id,
                reg.root.display()
            );
            *lock_of(&slot.error) = Some(message.clone());
            return Err(ApiError::new(
                StatusCode::NOT_FOUND,
                "project_root_missing",
                message,
            ));
        }
        match self.open(reg) {
            Ok(o) => {
                *lock_of(&slot.error) = None;
                let site = o.site.clone();
                *open = Some(o);
                drop(open);
                self.enforce_cap();
                Ok(site)
            }
            Err(e) => {
                let message = format!("project {} ({}): {e:#}", reg.id, reg.root.display());
                tracing::warn!("cannot open {message}");
                *lock_of(&slot.error) = Some(message.clone());
                Err(ApiError::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "project_unavailable",
                    message,
                ))
            }
        }
    }

    fn open(&self, reg: &Registration) -> anyhow::Result<Open> {
        let project = daemon::project(reg);
        let config = self
            .home
            .project_config(&self.env, &self.config, &project)?;
        let indexer = Indexer::open(&project, &config)?;
        if let Some(secrets) = self.secrets.get() {
            indexer.sources.guard_secrets(secrets);
        }
        let events = EventLog::new(&config.log_dir, config.event_log_max_bytes);
        if let Err(e) = events.prepare() {
            tracing::warn!("{e:#}");
        }
        let gate = Some((self.gate.clone(), reg.id.clone()));
        let reload = {
            let (home, env, daemon) = (self.home.clone(), self.env.clone(), self.config.clone());
            let project = project.clone();
            Reload {
                file: project.config_file(),
                load: Box::new(move || Ok(home.project_config(&env, &daemon, &project)?)),
            }
        };
        let (site, service) = Site::start(
            indexer,
            &config,
            project.state_dir.clone(),
            gate,
            events,
            Some(reload),
        );
        tracing::info!("opened project {} ({})", reg.id, reg.root.display());
        Ok(Open {
            site: Arc::new(site),
            service,
        })
    }

    /// Registers `root` (idempotent) and opens it, which starts its first indexing.
    fn register(&self, root: &Path) -> Result<Value, ApiError> {
        let (reg, created) = self.home.register(root).map_err(|e| match e {
            RegisterError::BadRoot(m) => ApiError::new(StatusCode::BAD_REQUEST, "bad_root", m),
            e @ RegisterError::Collision { .. } => {
                ApiError::new(StatusCode::CONFLICT, "project_id_collision", e.to_string())
            }
            RegisterError::Io(e) => ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "registration_failed",
                e.to_string(),
            ),
        })?;
        if created {
            tracing::info!("registered project {} ({})", reg.id, reg.root.display());
        }
        lock_of(&self.slots)
            .entry(reg.id.clone())
            .or_insert_with(|| Arc::new(Slot::new(reg.clone())));
        self.write_pointer(&reg);
        let opened = self.site(&reg.id).map(drop).map_err(|e| e.message).err();
        Ok(json!({
            "id": reg.id,
            "root": reg.root,
            "created": created,
            "registered_at": reg.registered_at,
            "base_path": format!("/projects/{}", reg.id),
            "error": opened,
        }))
    }

    /// One entry of `GET /projects`.
    fn describe(&self, slot: &Slot) -> Value {
        let open = lock_of(&slot.open).as_ref().map(|o| o.site.clone());
        let index = match &open {
            Some(site) => {
                let f = site.index.freshness();
                *lock_of(&slot.last_index) = Some(f.clone());
                Some(f)
            }
            None => lock_of(&slot.last_index).clone(),
        };
        let reg = &slot.reg;
        json!({
            "id": reg.id,
            "root": reg.root,
            "root_exists": reg.root.is_dir(),
            "registered_at": reg.registered_at,
            "open": open.is_some(),
            "idle_seconds": lock_of(&slot.last_used).elapsed().as_secs(),
            "index": index,
            "error": lock_of(&slot.error).clone(),
        })
    }

    fn list(&self) -> Value {
        let projects: Vec<Value> = self.all().iter().map(|s| self.describe(s)).collect();
        json!({ "projects": projects, "unreadable": self.problems })
    }

    /// The daemon's part of /status.
    pub fn status(&self) -> Value {
        let slots = self.all();
        let open = slots.iter().filter(|s| lock_of(&s.open).is_some()).count();
        let gate = self.gate.snapshot();
        json!({
            "registered": slots.len(),
            "open": open,
            "max_open_projects": self.config.max_open_projects,
            "indexing": {
                "max_concurrent": self.gate.max(),
                "running": gate.running,
                "queued": gate.queued,
            },
        })
    }

    /// Closes projects idle for longer than `project_idle_seconds`, and the least
    /// recently used past `max_open_projects` (blocking).
    pub fn close_idle(&self) {
        let idle = self.config.project_idle.max(Duration::from_secs(1));
        for slot in self.all() {
            if lock_of(&slot.last_used).elapsed() >= idle {
                self.close(&slot, "idle");
            }
        }
        self.enforce_cap();
    }

    /// Past `max_open_projects`, closes the least recently used (blocking).
    fn enforce_cap(&self) {
        let cap = self.config.max_open_projects;
        let mut open: Vec<(Instant, Arc<Slot>)> = self
            .all()
            .into_iter()
            .filter(|s| lock_of(&s.open).is_some())
            .map(|s| {
                let used = *lock_of(&s.last_used);
                (used, s)
            })
            .collect();
        if open.len() <= cap {
            return;
        }
        open.sort_by_key(|(t, _)| *t);
        let excess = open.len() - cap;
        for (_, slot) in open.into_iter().take(excess) {
            self.close(&slot, "over max_open_projects");
        }
    }

    /// Closes one project unless an indexing job of it is running (a queued one is
    /// dropped; the next opening catches up with the disk). Requests holding its site
    /// finish on it.
    fn close(&self, slot: &Slot, why: &str) {
        if self.gate.snapshot().running.contains(&slot.reg.id) {
            return;
        }
        let mut open = lock_of(&slot.open);
        if let Some(o) = open.take() {
            *lock_of(&slot.last_index) = Some(o.site.index.freshness());
            o.service.stop(Duration::from_secs(5));
            tracing::info!("closed project {} ({why})", slot.reg.id);
        }
    }

    /// At shutdown, first: searches waiting for a project's first index answer now
    /// (a project being opened at this moment has none waiting yet).
    pub fn end_waits(&self) {
        for slot in self.all() {
            if let Ok(open) = slot.open.try_lock()
                && let Some(o) = open.as_ref()
            {
                o.site.index.end_waits();
            }
        }
    }

    /// At shutdown: stops every project's indexer within `bound` and removes the
    /// pointers to this daemon (blocking).
    pub fn shutdown(&self, bound: Duration) {
        for slot in self.all() {
            if let Some(o) = lock_of(&slot.open).take() {
                o.service.stop(bound);
            }
            self.remove_pointer(&slot.reg);
        }
    }

    /// Writes the project's pointer runtime.json (mode shared), so that every client
    /// of it finds this daemon: only for a project whose config.json says mode
    /// "shared", and never over a project-mode resident's file.
    fn write_pointer(&self, reg: &Registration) {
        let Some(daemon) = self.runtime.get() else {
            return;
        };
        let project = daemon::project(reg);
        let mode = Config::load(
            &project.config_file(),
            &self.env,
            &crate::config::Flags::default(),
        )
        .map(|c| c.mode);
        if !matches!(mode, Ok(Mode::Shared)) || flock::is_held(&project.lock_file()).unwrap_or(true)
        {
            return;
        }
        let pointer = RuntimeState {
            project_root: reg.root.clone(),
            project_id: reg.id.clone(),
            ..daemon.clone()
        };
        if let Err(e) = pointer.write(&project.runtime_file()) {
            tracing::warn!("cannot point {} at the daemon: {e}", reg.root.display());
        }
    }

    fn remove_pointer(&self, reg: &Registration) {
        let (Some(daemon), project) = (self.runtime.get(), daemon::project(reg)) else {
            return;
        };
        let file = project.runtime_file();
        if let RuntimeFile::Valid(s) = RuntimeFile::read(&file)
            && s.instance_id == daemon.instance_id
        {
            let _ = crate::fsutil::remove_if_exists(&file);
        }
    }
}

impl Slot {
    fn new(reg: Registration) -> Slot {
        Slot {
            reg,
            open: Mutex::new(None),
            last_used: Mutex::new(Instant::now()),
            last_index: Mutex::new(None),
            error: Mutex::new(None),
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RegisterBody {
    root: std::path::PathBuf,
}

/// The daemon's routes but `/health` and `/openapi.json`: `/status`, `/projects`, and
/// each project's under `/projects/{id}/`.
pub async fn dispatch(
    server: &Server,
    projects: &Arc<Projects>,
    found: &Found<'_>,
    method: &Method,
    qs: Option<&str>,
    body: &Bytes,
) -> Result<Answer, ApiError> {
    match found.route.op {
        Op::Status => {
            let mut v = api::to_value(server.status())?;
            let p = projects.clone();
            v["projects"] = blocking(move || p.status()).await?;
            return Ok(v.into());
        }
        Op::Projects if method == Method::POST => {
            let b: RegisterBody =
                super::routes::object_body(body, "{\"root\": \"/path/to/project\"}")?;
            let p = projects.clone();
            return blocking(move || p.register(&b.root))
                .await?
                .map(Answer::from);
        }
        Op::Projects => {
            let p = projects.clone();
            return blocking(move || p.list()).await.map(Answer::from);
        }
        _ => {}
    }
    let id = found.id.unwrap_or_default();
    let site = match projects.open_site(id) {
        Some(site) => site,
        None => {
            let (p, owned) = (projects.clone(), id.to_owned());
            blocking(move || p.site(&owned)).await??
        }
    };
    if found.route.op == Op::ProjectStatus {
        let p = projects.clone();
        let slot = projects.slot(id)?;
        let mut v = blocking(move || p.describe(&slot)).await?;
        v["index"] = routes::freshness(&site).await?;
        return Ok(v.into());
    }
    project_route(&site, found, method, qs, body).await
}
