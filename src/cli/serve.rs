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
use crate::server::indexing::Reload;
use crate::server::lifecycle::{Anchor, Cause};
use crate::server::projects::Projects;
use crate::server::{self, Serves, Setup, listener::Listeners};
use crate::shared::Home;

/// One run of the server on `listeners`, under `lock`.
fn serve_locked(
    project: &Project,
    env: &Environment,
    flags: &Flags,
    config: Config,
    events: &EventLog,
    listeners: Listeners,
    lock: &LifetimeLock,
) -> anyhow::Result<server::Ended> {
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
        let indexer = Indexer::open(project, &config).context("cannot open the index")?;
        // Only a resident (holding the lifetime lock) tidies the data dir.
        let dir = indexer.engine.dir();
        if let (Some(data_dir), Some(name)) = (dir.parent(), dir.file_name()) {
            for old in crate::engine::remove_superseded(data_dir, &name.to_string_lossy()) {
                tracing::info!("removed {old}, an index of another schema unused for a week");
            }
        }
        let reload = Reload {
            file: project.config_file(),
            load: Box::new({
                let (file, env, flags) = (project.config_file(), env.clone(), flags.clone());
                move || Ok(Config::load(&file, &env, &flags)?)
            }),
        };
        Serves::Project(indexer, Some(reload))
    };
    let index_dir = match &serves {
        Serves::Project(indexer, _) => Some(indexer.engine.dir().to_path_buf()),
        Serves::Shared(_) => None,
    };
    let anchor = lock.file_id().and_then(|id| {
        Anchor::new(
            &project.root,
            &project.lock_file(),
            id,
            index_dir.as_deref(),
        )
    });
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    let setup = Setup {
        project: project.clone(),
        config,
        listeners,
        events: events.clone(),
        serves,
        anchor,
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
    events.prepare()?;

    let Some(mut lock) = LifetimeLock::acquire(&project.lock_file(), &project.pid_file())? else {
        let base_url = match RuntimeFile::read(&project.runtime_file()) {
            RuntimeFile::Valid(s) => Some(s.base_url),
            _ => None,
        };
        let pid = read_pid(&project.pid_file()).map_or("unknown".into(), |p| p.to_string());
        return Err(Error::AlreadyRunning { pid, base_url }.into());
    };
    // Listeners are taken under the lock (a second resident must not touch them), and
    // a resident that serves again in place keeps them, and its address.
    let result = match Listeners::inherited() {
        Ok(Some(inherited)) => Ok(inherited),
        Ok(None) => Listeners::bind(&config),
        Err(e) => Err(e),
    }
    .map_err(anyhow::Error::from)
    .and_then(|listeners| serve_while_anchored(ctx, &flags, config, &events, listeners, &mut lock));
    lock.release();
    match result {
        // Its log went with it: recording there would make the old path again.
        Ok(cause @ Cause::RootGone) => {
            tracing::info!("{cause}: exiting");
            Ok(exit::OK)
        }
        Ok(cause) => {
            events.record(cause.event(), json!({ "cause": cause.to_string() }));
            Ok(exit::OK)
        }
        Err(e) if e.is::<HandedOver>() => {
            events.record("handed_over", json!({ "message": e.to_string() }));
            tracing::info!("{e}");
            Ok(exit::OK)
        }
        Err(e) => {
            events.record("error", json!({ "message": format!("{e:#}") }));
            Err(e)
        }
    }
}

/// Serves, and serves again in place after [`Cause::Replaced`] (a `git clean -fdX`, the
/// state dir made again, the index deleted), under the new lock file if the old one
/// went, unless another resident locked it first: then [`HandedOver`].
fn serve_while_anchored(
    ctx: &Context,
    flags: &Flags,
    mut config: Config,
    events: &EventLog,
    mut listeners: Listeners,
    lock: &mut LifetimeLock,
) -> anyhow::Result<Cause> {
    let project = &ctx.project;
    loop {
        let ended = serve_locked(
            project,
            &ctx.env,
            flags,
            config.clone(),
            events,
            listeners,
            lock,
        )?;
        let (cause, Some(kept)) = (ended.cause, ended.listeners) else {
            return Ok(ended.cause);
        };
        listeners = kept;
        project.create_state_dir()?;
        events.prepare()?;
        events.record(cause.event(), json!({ "cause": cause.to_string() }));
        // Only the index went: the lock still stands.
        if !lock.is_current() {
            let Some(again) = LifetimeLock::acquire(&project.lock_file(), &project.pid_file())?
            else {
                let pid = read_pid(&project.pid_file()).map_or("unknown".into(), |p| p.to_string());
                return Err(HandedOver(pid).into());
            };
            std::mem::replace(lock, again).release();
        }
        tracing::info!("{cause}: serving again under the new lock");
        match ctx.config(flags) {
            Ok(c) => config = c,
            Err(e) => tracing::warn!("{e:#}; keeping the settings in force"),
        }
    }
}

/// The lifetime lock's file was replaced and another resident locked the new one: it
/// serves the project now, and this process leaves.
#[derive(Debug, thiserror::Error)]
#[error(
    "another resident (pid {0}) locked the new lifetime lock file and serves the project now; exiting"
)]
struct HandedOver(String);

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
