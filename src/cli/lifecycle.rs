//! `doc-serve start` and `doc-serve stop`.
//!
//! `start` holds start.lock while it works, so racing starts line up: the first spawns
//! a resident, the others find it healthy and report it. The lifetime lock is still
//! what forbids a second resident; start.lock only saves needless spawns.
//! `stop` signals a PID only after its identity (start time, boot id) matches the one
//! recorded in runtime.json: a reused PID is never signalled.

use std::fs;
use std::io::{Read, Seek, SeekFrom};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use serde_json::json;

use super::{Context, client_runtime, output};
use crate::config::{Config, Flags, Mode};
use crate::discovery::runtime::RuntimeState;
use crate::discovery::{self, Resident, StaleFile, lock};
use crate::error::exit;
use crate::events::EventLog;
use crate::flock;
use crate::fsutil;
use crate::process::{self, Liveness};
use crate::supervisor::registry::{Instance, Supervisor};
use crate::supervisor::{self, systemd};

// Short: `start` returns as soon as the resident answers (it is ready in a few ms).
const POLL: Duration = Duration::from_millis(5);

pub fn start(ctx: &Context, idle_timeout: Option<u64>, json: bool) -> anyhow::Result<i32> {
    // A project in shared mode: the shared daemon, with the project registered.
    if let Some(daemon) = ctx.daemon_of()? {
        let (state, existing) = ensure_running(&daemon, idle_timeout)?;
        let remote = super::remote::Remote::of(&state)?.for_project(&ctx.project);
        client_runtime()?
            .block_on(remote.call(hyper::Method::GET, "/status", None, Duration::from_secs(60)))
            .with_context(|| format!("cannot register the project with {}", state.base_url))?;
        return report_started(&state, existing, json);
    }
    let (state, existing) = ensure_running(ctx, idle_timeout)?;
    report_started(&state, existing, json)
}

/// The project's healthy resident: the one running, or one started now (through the
/// supervisor's socket when an instance is installed, else spawned). `true` when it
/// was already running.
pub fn ensure_running(
    ctx: &Context,
    idle_timeout: Option<u64>,
) -> anyhow::Result<(Box<RuntimeState>, bool)> {
    let mut flags = Flags::default();
    flags.set("idle_timeout_seconds", idle_timeout);
    let config = ctx.config(&flags)?;
    let project = &ctx.project;
    project.create_state_dir()?;
    let log_dir = project.state_path(&config.log_dir);
    let events = EventLog::new(&log_dir, config.event_log_max_bytes);
    events.prepare()?;
    let timeout = config.start_timeout;
    let deadline = Instant::now() + timeout;

    let start_lock = project.start_lock_file();
    let _start_lock = flock::lock_within(&start_lock, timeout)
        .with_context(|| format!("cannot lock {}", start_lock.display()))?
        .with_context(|| format!("another `doc-serve start` held start.lock for {timeout:?}"))?;
    let rt = client_runtime()?;
    // A project handed to a supervisor is started through its socket, never as a
    // second, self-bound resident.
    let instance = supervisor::serving(&ctx.env, project);
    let mut activated = false;
    let mut child: Option<Spawned> = None;
    let mut last_why = String::new();
    loop {
        let found = rt.block_on(discovery::inspect(project))?;
        match found.resident {
            Resident::Running(state) => return Ok((state, child.is_none() && !activated)),
            Resident::Stopped if child.is_none() && !activated => {
                let cleaned = discovery::clean_stale(project)?;
                record_cleanup(&events, &cleaned);
                match &instance {
                    Some(i) => {
                        activate(&rt, i, deadline)?;
                        activated = true;
                    }
                    None => child = Some(spawn(ctx, &config, &log_dir, idle_timeout)?),
                }
            }
            Resident::Stopped => last_why = "the new resident has not taken its lock yet".into(),
            Resident::Foreign { root, pid } => {
                bail!("{}", discovery::shared_state_dir(project, &root, pid))
            }
            Resident::Starting {
                pid,
                runtime,
                stopped: true,
            } => bail!(
                "pid {} holds the lifetime lock but is stopped, and runtime.json is {runtime}; \
                 `doc-serve stop` stops it (with SIGCONT)",
                pid.map_or("unknown".into(), |p| p.to_string())
            ),
            Resident::Starting {
                pid,
                runtime,
                stopped: false,
            } => {
                last_why = format!(
                    "pid {} holds the lifetime lock but runtime.json is {runtime}; \
                     `doc-serve status` shows it, `doc-serve stop` stops it",
                    pid.map_or("unknown".into(), |p| p.to_string()),
                )
            }
            Resident::Unresponsive { state, why } => {
                last_why = format!("pid {} holds the lifetime lock but {why}", state.pid)
            }
        }
        if let Some(spawned) = child.as_mut()
            && let Some(status) = spawned.child.try_wait()?
        {
            bail!(
                "the resident exited during start-up ({status}); its log {}:\n{}",
                spawned.log.display(),
                spawned.tail()
            );
        }
        if Instant::now() >= deadline {
            let tail = child
                .as_ref()
                .map(|c| format!("\nits log:\n{}", c.tail()))
                .unwrap_or_default();
            bail!("no healthy resident within {timeout:?}: {last_why}{tail}");
        }
        std::thread::sleep(POLL);
    }
}

fn report_started(state: &RuntimeState, existing: bool, json: bool) -> anyhow::Result<i32> {
    let report = json!({
        "base_url": state.base_url,
        "pid": state.pid,
        "instance_id": state.instance_id,
        "project_root": state.project_root,
        "existing": existing,
        "activation": state.activation,
    });
    output::emit(json, &report, |out| {
        let how = if existing {
            "already running"
        } else {
            "started"
        };
        writeln!(
            out,
            "{} ({how}, pid {}, {} activation)",
            state.base_url, state.pid, state.activation
        )
    })?;
    Ok(exit::OK)
}

/// Starts a supervised instance by connecting to its socket. A socket unit left
/// without its descriptor (see `supervisor::systemd::dead_sockets`) is restarted once.
fn activate(
    rt: &tokio::runtime::Runtime,
    instance: &Instance,
    deadline: Instant,
) -> anyhow::Result<()> {
    let left = || deadline.saturating_duration_since(Instant::now());
    let first = rt.block_on(supervisor::activate(instance, left()));
    let err = match first {
        Ok(()) => return Ok(()),
        Err(e) if e.is_unreachable() && instance.supervisor == Supervisor::Systemd => {
            let unit = systemd::socket_unit(&instance.slug);
            tracing::info!(
                "{} does not accept connections; restarting {unit}",
                instance.socket_path.display()
            );
            systemd::systemctl(&["restart", &unit])
                .run()
                .with_context(|| {
                    format!(
                        "instance {:?} is installed but {} does not accept connections",
                        instance.slug,
                        instance.socket_path.display()
                    )
                })?;
            match rt.block_on(supervisor::activate(instance, left())) {
                Ok(()) => return Ok(()),
                Err(e) => e,
            }
        }
        Err(e) => e,
    };
    bail!(
        "instance {:?} ({}) is installed for this project, but its socket {} did not \
         answer: {err}\n(see `{}`; `doc-serve uninstall {}` removes the instance)",
        instance.slug,
        instance.supervisor.name(),
        instance.socket_path.display(),
        match instance.supervisor {
            Supervisor::Systemd => format!(
                "systemctl --user status {}",
                systemd::socket_unit(&instance.slug)
            ),
            Supervisor::Launchd => "launchctl print gui/$UID".to_string(),
        },
        instance.supervisor.name()
    )
}

fn record_cleanup(events: &EventLog, cleaned: &[StaleFile]) {
    for file in cleaned {
        tracing::info!("removed stale {}: {}", file.path.display(), file.reason);
        events.record(
            "stale_cleanup",
            json!({ "path": file.path, "reason": file.reason }),
        );
    }
}

/// A resident spawned by `start`, and where its output goes.
struct Spawned {
    child: Child,
    log: PathBuf,
    log_offset: u64,
}

impl Spawned {
    /// The last lines the resident wrote since it was spawned.
    fn tail(&self) -> String {
        let mut text = String::new();
        if let Ok(mut f) = fs::File::open(&self.log) {
            let _ = f.seek(SeekFrom::Start(self.log_offset));
            let _ = f.take(64 * 1024).read_to_string(&mut text);
        }
        let lines: Vec<&str> = text.lines().collect();
        let tail = lines[lines.len().saturating_sub(20)..].join("\n");
        if tail.is_empty() {
            "(empty)".into()
        } else {
            tail
        }
    }
}

/// Size at which serve.log is rotated before a new resident appends to it.
const SERVE_LOG_MAX: u64 = 4 << 20;

fn spawn(
    ctx: &Context,
    config: &Config,
    log_dir: &Path,
    idle: Option<u64>,
) -> anyhow::Result<Spawned> {
    fsutil::create_dir_if_missing(log_dir)?;
    let log = log_dir.join("serve.log");
    if fs::metadata(&log).is_ok_and(|m| m.len() > SERVE_LOG_MAX) {
        let _ = fs::rename(&log, log_dir.join("serve.log.1"));
    }
    let out =
        fsutil::open_append(&log).with_context(|| format!("cannot open {}", log.display()))?;
    let log_offset = out.metadata().map_or(0, |m| m.len());
    let exe = std::env::current_exe().context("cannot find the doc-serve executable")?;
    let mut cmd = Command::new(exe);
    if ctx.project.is_shared_daemon() {
        cmd.args(["serve", "--shared"]);
    } else {
        cmd.arg("--path").arg(&ctx.project.root).arg("serve");
    }
    if let Some(secs) = idle {
        cmd.arg("--idle-timeout").arg(secs.to_string());
    }
    cmd.current_dir(&ctx.project.root)
        .stdin(Stdio::null())
        .stdout(out.try_clone()?)
        .stderr(out)
        // The resident is ours, not our supervisor's: it must not inherit sockets or
        // notify a service manager on our behalf.
        .env_remove("LISTEN_FDS")
        .env_remove("LISTEN_PID")
        .env_remove("LISTEN_FDNAMES")
        .env_remove("NOTIFY_SOCKET")
        .env_remove("WATCHDOG_USEC")
        .env_remove("WATCHDOG_PID");
    // SAFETY: setsid is async-signal-safe, touches no memory of the parent, and is
    // the only call made between fork and exec.
    unsafe {
        cmd.pre_exec(|| {
            nix::unistd::setsid()
                .map(drop)
                .map_err(std::io::Error::from)
        });
    }
    let child = cmd.spawn().context("cannot spawn `doc-serve serve`")?;
    tracing::debug!(
        "spawned resident pid {} (timeout {:?})",
        child.id(),
        config.start_timeout
    );
    Ok(Spawned {
        child,
        log,
        log_offset,
    })
}

pub fn stop(ctx: &Context, force: bool, json: bool) -> anyhow::Result<i32> {
    // A broken config.json must not keep a running resident from being stopped: what
    // stop needs from it (timeouts, the log dir) has defaults.
    let config = ctx.config(&Flags::default()).unwrap_or_else(|e| {
        tracing::warn!("{e:#}; stopping with the default settings");
        Config::default()
    });
    if config.mode == Mode::Shared && !ctx.project.is_shared_daemon() {
        bail!(
            "{} is in shared mode: the shared daemon serves it with every other shared \
             project; `doc-serve stop --shared` stops the daemon",
            ctx.project.root.display()
        );
    }
    let project = &ctx.project;
    let events = EventLog::new(
        &project.state_path(&config.log_dir),
        config.event_log_max_bytes,
    );
    let rt = client_runtime()?;
    let wait_start = config.start_timeout;
    let deadline = Instant::now() + wait_start;

    // A resident still starting is waited for: its runtime.json names what to signal.
    // One whose runtime.json stays unusable (truncated, deleted, overwritten: a live
    // resident writes it again within a second) is found through its lock.
    let heal = Instant::now() + HEAL_WAIT;
    let target = loop {
        let found = rt.block_on(discovery::inspect(project))?;
        match found.resident {
            Resident::Running(s) | Resident::Unresponsive { state: s, .. } => {
                break Some((s.pid, s.process.clone()));
            }
            Resident::Stopped => break None,
            Resident::Foreign { root, pid } => {
                bail!("{}", discovery::shared_state_dir(project, &root, pid))
            }
            Resident::Starting { runtime, .. } if Instant::now() >= heal.min(deadline) => {
                break Some(lock_holder(project, &runtime)?);
            }
            Resident::Starting { .. } => std::thread::sleep(STARTING_POLL),
        }
    };
    let stopped_pid = match target {
        Some((pid, identity)) => {
            let drain = config.drain_timeout + Duration::from_secs(5);
            terminate(pid, &identity, drain, force)?;
            Some(pid)
        }
        None => None,
    };
    // What is left is removed; a file that cannot be (a directory named runtime.json)
    // is reported without hiding that the resident was stopped.
    let cleaned = discovery::clean_stale(project).unwrap_or_else(|e| {
        tracing::warn!("{e:#}");
        Vec::new()
    });
    record_cleanup(&events, &cleaned);
    let report =
        json!({ "stopped": stopped_pid.is_some(), "pid": stopped_pid, "cleaned": cleaned });
    output::emit(json, &report, |out| {
        match stopped_pid {
            Some(pid) => writeln!(out, "stopped pid {pid}")?,
            None => writeln!(out, "not running")?,
        }
        for f in &cleaned {
            writeln!(out, "removed stale {}: {}", f.path.display(), f.reason)?;
        }
        Ok(())
    })?;
    Ok(exit::OK)
}

/// How often `stop` looks again at a resident that is starting: each look may scan
/// /proc (see [`discovery::inspect`]).
const STARTING_POLL: Duration = Duration::from_millis(50);

/// How long `stop` gives a live resident to write its unusable runtime.json again
/// before it looks for the lock's holder instead.
const HEAL_WAIT: Duration = Duration::from_secs(3);

/// The process holding the project's lifetime lock, and its identity, when runtime.json
/// cannot say. The kernel names the holder (/proc/locks); it is signalled only when
/// it is a resident: the PID its PID file names, or a `doc-serve ... serve` process (a
/// client probing the lock holds it for an instant, and is neither). Anything else is
/// named, not signalled.
fn lock_holder(
    project: &crate::project::Project,
    runtime: &str,
) -> anyhow::Result<(u32, process::Identity)> {
    let lock_file = project.lock_file();
    let pid_file = lock::read_pid(&project.pid_file());
    // A resident whose lock file was deleted (and that is stopped, so it will not
    // take a new one) still holds the deleted file: it is doc-serve's, by that file.
    let orphan = || process::holding_deleted(&lock_file).first().copied();
    if let Some(holder) = flock::holder(&lock_file).map_or_else(orphan, |_| None)
        && let Some(identity) = process::identity_of(holder)
    {
        return Ok((holder, identity));
    }
    let Some(holder) = flock::holder(&lock_file) else {
        bail!(
            "a process holds {} but runtime.json is {runtime}, and the kernel's lock table \
             does not say which{}; stop it by hand (`kill PID`), then run `doc-serve stop` \
             again to remove the stale files",
            lock_file.display(),
            pid_file.map_or(String::new(), |p| format!(" (doc-serve.pid names {p})"))
        );
    };
    let args = process::args_of(holder);
    let resident = pid_file == Some(holder)
        || (process::name(holder).as_deref() == Some("doc-serve")
            && args.iter().skip(1).any(|a| a == "serve"));
    let identity = process::identity_of(holder).filter(|_| resident);
    let Some(identity) = identity else {
        bail!(
            "pid {holder} ({}) holds {} but is not a doc-serve resident, so it is not \
             signalled; runtime.json is {runtime}. Stop it by hand if it should not hold \
             the lock",
            if args.is_empty() {
                process::name(holder).unwrap_or_else(|| "unknown".into())
            } else {
                args.join(" ")
            },
            lock_file.display()
        );
    };
    tracing::info!(
        "runtime.json is {runtime}; pid {holder} holds {} and is stopped through it",
        lock_file.display()
    );
    Ok((holder, identity))
}

/// SIGTERM (and SIGCONT, so a stopped process can act on it), then wait; SIGKILL after
/// `wait` when `force`. The identity is checked before every signal.
fn terminate(
    raw_pid: u32,
    identity: &process::Identity,
    wait: Duration,
    force: bool,
) -> anyhow::Result<()> {
    let pid = Pid::from_raw(i32::try_from(raw_pid).context("PID out of range")?);
    let send = |sig: Signal| -> anyhow::Result<bool> {
        match process::check(raw_pid, identity) {
            Liveness::Ours => {
                kill(pid, sig).with_context(|| format!("cannot send {sig} to pid {pid}"))?;
                Ok(true)
            }
            _ => Ok(false),
        }
    };
    if !send(Signal::SIGTERM)? {
        return Ok(());
    }
    let _ = send(Signal::SIGCONT);
    if wait_exit(raw_pid, identity, wait) {
        return Ok(());
    }
    if !force {
        bail!(
            "pid {pid} did not exit within {wait:?} of SIGTERM; `doc-serve stop --force` kills it"
        );
    }
    send(Signal::SIGKILL)?;
    if !wait_exit(raw_pid, identity, Duration::from_secs(5)) {
        bail!("pid {pid} survived SIGKILL");
    }
    Ok(())
}

fn wait_exit(pid: u32, identity: &process::Identity, wait: Duration) -> bool {
    let deadline = Instant::now() + wait;
    while Instant::now() < deadline {
        if process::check(pid, identity) != Liveness::Ours {
            return true;
        }
        std::thread::sleep(POLL);
    }
    false
}
