//! `doc-serve serve`: the resident in the foreground.
//!
//! Order matters: the lifetime lock first (a second resident must not touch the
//! listeners or runtime.json), then the PID file, then the listeners (inherited fds are
//! taken while the process has one thread), then the runtime and the server.

use std::time::Duration;

use anyhow::Context as _;
use serde_json::json;

use super::{Context, ServeArgs};
use crate::config::{Config, Flags, Mode};
use crate::daemon::Home;
use crate::discovery::lock::{LifetimeLock, read_pid};
use crate::discovery::runtime::RuntimeFile;
use crate::error::{Error, exit};
use crate::events::EventLog;
use crate::ingest::sync::Indexer;
use crate::project::Project;
use crate::server::indexing::Reload;
use crate::server::projects::Projects;
use crate::server::shutdown::{self, Anchor, Cause, Signals};
use crate::server::{self, Serves, Setup, listener::Listeners};

/// What one run serves: the project's index (and how to load its settings again), or
/// the shared daemon's projects.
fn what_to_serve(
    Context { project, env, .. }: &Context,
    flags: &Flags,
    config: &Config,
) -> anyhow::Result<Serves> {
    if project.is_shared_daemon() {
        return Ok(Serves::Shared(Box::new(Projects::load(
            Home::new(&project.root),
            env.clone(),
            config.clone(),
        ))));
    }
    let indexer = Indexer::open(project, config).context("cannot open the index")?;
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
    Ok(Serves::Project(indexer, Some(reload)))
}

/// One run of the server on `listeners`, under `lock`.
fn serve_locked(
    project: &Project,
    config: Config,
    events: &EventLog,
    (listeners, serves): (Listeners, Serves),
    lock: &LifetimeLock,
    (runtime, signals): (&tokio::runtime::Runtime, &mut Signals),
) -> anyhow::Result<server::Ended> {
    events.record(
        "start",
        json!({ "project_root": project.root, "activation": listeners.activation }),
    );
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
    let setup = Setup {
        project: project.clone(),
        config,
        listeners,
        events: events.clone(),
        serves,
        anchor,
    };
    Ok(runtime.block_on(server::run(setup, signals))?)
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
    .and_then(|listeners| {
        serve_while_anchored(ctx, &flags, config.clone(), &events, listeners, &mut lock)
    });
    // A project that moved took its state dir along: what is left of this resident
    // there is removed, and the exit recorded there, not at the old path (which must
    // not be made again).
    let moved_to = match result {
        Ok(Cause::RootGone) => lock
            .path_now()
            .and_then(|p| Some(p.parent()?.to_path_buf())),
        _ => None,
    };
    lock.release();
    match result {
        Ok(cause @ Cause::RootGone) => {
            tracing::info!("{cause}: exiting");
            if let Some(state_dir) = moved_to {
                let runtime = state_dir.join("runtime.json");
                if matches!(RuntimeFile::read(&runtime), RuntimeFile::Valid(s) if s.pid == std::process::id())
                {
                    let _ = crate::fsutil::remove_if_exists(&runtime);
                }
                if config.log_dir.is_relative() {
                    EventLog::new(&state_dir.join(&config.log_dir), config.event_log_max_bytes)
                        .record(cause.event(), json!({ "cause": cause.to_string() }));
                }
            }
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
    config: Config,
    events: &EventLog,
    listeners: Listeners,
    lock: &mut LifetimeLock,
) -> anyhow::Result<Cause> {
    // One async runtime and one set of signal handlers for every run: a signal that
    // arrives while the resident serves again in place is acted on, not lost.
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    let mut signals = {
        let _in = runtime.enter();
        shutdown::spawn_watchdog();
        Signals::install().context("cannot install signal handlers")?
    };
    let result = serve_runs(
        ctx,
        flags,
        config,
        events,
        listeners,
        lock,
        (&runtime, &mut signals),
    );
    runtime.shutdown_timeout(Duration::from_secs(1));
    result
}

fn serve_runs(
    ctx: &Context,
    flags: &Flags,
    mut config: Config,
    events: &EventLog,
    mut listeners: Listeners,
    lock: &mut LifetimeLock,
    (runtime, signals): (&tokio::runtime::Runtime, &mut Signals),
) -> anyhow::Result<Cause> {
    let project = &ctx.project;
    let mut serves = what_to_serve(ctx, flags, &config)?;
    loop {
        let ended = serve_locked(
            project,
            config.clone(),
            events,
            (listeners, serves),
            lock,
            (runtime, signals),
        )?;
        let (cause, Some(kept)) = (ended.cause, ended.listeners) else {
            return Ok(ended.cause);
        };
        listeners = kept;
        // Making the state dir again must not make a root that went meanwhile.
        if !project.root.is_dir() {
            return Ok(Cause::RootGone);
        }
        project.create_state_dir()?;
        events.prepare()?;
        reopen_deleted_log(&project.state_dir);
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
        // The state dir may still be going (a `git clean` not done, a second `rm -r`):
        // opening the index is tried again for a while before giving up.
        let mut tries = 0;
        serves = loop {
            match what_to_serve(ctx, flags, &config) {
                Ok(s) => break s,
                Err(e) if tries < REOPEN_TRIES => {
                    tries += 1;
                    tracing::info!("{e:#}; trying again");
                    std::thread::sleep(REOPEN_PAUSE);
                    if !project.root.is_dir() {
                        return Ok(Cause::RootGone);
                    }
                    project.create_state_dir()?;
                    events.prepare()?;
                }
                Err(e) => return Err(e),
            }
        };
    }
}

/// Points stdout and stderr at their log file again when it was deleted with the
/// state dir (a resident spawned by `start` writes to logs/serve.log): the file is made
/// again at its path, so that what the resident says from now on can be read.
fn reopen_deleted_log(state_dir: &std::path::Path) {
    let Ok(now) = std::fs::read_link("/proc/self/fd/2") else {
        return;
    };
    let now = now.to_string_lossy();
    let Some(path) = now.strip_suffix(" (deleted)").map(std::path::Path::new) else {
        return;
    };
    if !path.starts_with(state_dir) {
        return;
    }
    let reopened = path
        .parent()
        .map_or(Ok(()), crate::fsutil::create_dir_if_missing)
        .map_err(|e| std::io::Error::other(e.to_string()))
        .and_then(|()| crate::fsutil::open_append(path));
    match reopened {
        Ok(log) => {
            let _ = nix::unistd::dup2_stdout(&log);
            let _ = nix::unistd::dup2_stderr(&log);
        }
        Err(e) => tracing::warn!("cannot open {} again: {e}", path.display()),
    }
}

/// How often, and how far apart, a resident serving again in place tries to open its
/// index before it gives up.
const REOPEN_TRIES: u32 = 10;
const REOPEN_PAUSE: Duration = Duration::from_millis(300);

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
