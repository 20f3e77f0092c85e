//! `doc-serve serve`: the resident in the foreground.
//!
//! Order matters: the lifetime lock first (a second resident must not touch the
//! listeners or runtime.json), then the PID file, then the listeners (inherited fds are
//! taken while the process has one thread), then the runtime and the server.

use std::time::Duration;

use anyhow::Context as _;
use serde_json::json;

use super::{Context, ServeArgs};
use crate::config::{Config, Environment, Flags, Mode};
use crate::discovery::lock::{LifetimeLock, read_pid};
use crate::discovery::runtime::RuntimeFile;
use crate::error::{Error, exit};
use crate::events::EventLog;
use crate::ingest::sync::Indexer;
use crate::project::Project;
use crate::server::projects::Projects;
use crate::server::{self, Serves, Setup, lifecycle::Cause, listener::Listeners};
use crate::shared::Home;

/// Everything after the lock, so that any failure still releases it.
fn serve_locked(
    project: Project,
    env: &Environment,
    config: Config,
    events: &EventLog,
) -> anyhow::Result<Cause> {
    let listeners = match Listeners::inherited()? {
        Some(inherited) => inherited,
        None => Listeners::bind(&config)?,
    };
    events.record(
        "start",
        json!({ "project_root": project.root, "activation": listeners.activation }),
    );
    let serves = if project.is_shared_daemon() {
        Serves::Shared(Box::new(Projects::load(
            Home::new(&project.root),
            env.clone(),
            config.clone(),
        )))
    } else {
        let indexer = Indexer::open(&project, &config).context("cannot open the index")?;
        // Only a resident (holding the lifetime lock) tidies the data dir.
        let dir = indexer.engine.dir();
        if let (Some(data_dir), Some(name)) = (dir.parent(), dir.file_name()) {
            for old in crate::engine::remove_superseded(data_dir, &name.to_string_lossy()) {
                tracing::info!("removed {old}, an index of another schema unused for a week");
            }
        }
        Serves::Project(indexer)
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    let setup = Setup {
        project,
        config,
        listeners,
        events: events.clone(),
        serves,
    };
    let result = runtime.block_on(server::run(setup));
    runtime.shutdown_timeout(Duration::from_secs(1));
    Ok(result?)
}

/// `ctx` is the project's, or with `--shared` the shared daemon's (see
/// [`Context::shared_daemon`]).
pub fn run(ctx: &Context, args: &ServeArgs) -> anyhow::Result<i32> {
    limit_malloc_arenas();
    let mut flags = Flags::default();
    flags.set("idle_timeout_seconds", args.idle_timeout);
    flags.set("bind_host", args.bind_host.as_ref());
    flags.set("port", args.port);
    let config = ctx.config(&flags)?;
    let project = ctx.project.clone();
    if config.mode == Mode::Shared && !project.is_shared_daemon() {
        anyhow::bail!(
            "{} sets mode \"shared\": this project is served by the shared daemon \
             (`doc-serve serve --shared`, or `doc-serve start --shared`), not a resident \
             of its own; set \"mode\": \"project\" to run one",
            project.config_file().display()
        );
    }
    project.create_state_dir()?;
    let events = EventLog::new(
        &project.state_path(&config.log_dir),
        config.event_log_max_bytes,
    );

    let Some(lock) = LifetimeLock::acquire(&project.lock_file(), &project.pid_file())? else {
        let base_url = match RuntimeFile::read(&project.runtime_file()) {
            RuntimeFile::Valid(s) => Some(s.base_url),
            _ => None,
        };
        let pid = read_pid(&project.pid_file()).map_or("unknown".into(), |p| p.to_string());
        return Err(Error::AlreadyRunning { pid, base_url }.into());
    };
    let result = serve_locked(project, &ctx.env, config, &events);
    lock.release();
    match result {
        Ok(cause) => {
            events.record(cause.event(), json!({ "cause": cause.to_string() }));
            Ok(exit::OK)
        }
        Err(e) => {
            events.record("error", json!({ "message": format!("{e:#}") }));
            Err(e)
        }
    }
}

/// Two glibc malloc arenas instead of eight per core. Every thread that allocates
/// (indexer threads, watchers, tokio's blocking pool) otherwise gets an arena of its
/// own, and the memory an indexing job freed stays in it: on the shared daemon with 30
/// small projects, about 6 MiB per project by default against 1 MiB with two arenas,
/// at the same query latency (bench/shared.py).
fn limit_malloc_arenas() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only sets an allocator parameter; it is called before the
    // server's threads start.
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, 2);
    }
}
