//! Finding the resident of a project, and telling live state from stale files.
//!
//! The lifetime lock decides whether a resident exists at all; runtime.json says where
//! it listens; the process identity says whether runtime.json's PID is still the
//! process that wrote it; and `/health` (answering with the same instance id) proves
//! the port is really served by it. Anything a dead resident left behind is stale, and
//! is only removed while holding the lifetime lock, so a resident starting at that
//! moment never loses its fresh files.

pub mod lock;
pub mod runtime;

use std::path::PathBuf;
use std::time::Duration;

use hyper::Method;
use serde::Serialize;

use crate::client::{self, Endpoint};
use crate::error::{Error, Result};
use crate::flock;
use crate::fsutil;
use crate::process::{self, Liveness};
use crate::project::Project;
use runtime::{RuntimeFile, RuntimeState};

/// How long a health check may take before the resident counts as unresponsive.
pub const HEALTH_TIMEOUT: Duration = Duration::from_secs(2);

/// What runs for a project right now.
#[derive(Debug)]
pub enum Resident {
    /// Nobody holds the lifetime lock.
    Stopped,
    /// The lock is held, runtime.json is ours, and /health answered.
    Running(Box<RuntimeState>),
    /// The lock is held and runtime.json names a live process of ours, but it does not
    /// answer as runtime.json says.
    Unresponsive {
        state: Box<RuntimeState>,
        why: String,
    },
    /// The lock is held by the resident of another project, which runtime.json names:
    /// the two share one state dir (a `.claude` linked from a worktree to its main
    /// checkout, say), and neither may use the other's index.
    Foreign { root: PathBuf, pid: u32 },
    /// The lock is held but runtime.json does not (yet) describe its holder: a resident
    /// starting up, one shutting down, one that will write runtime.json again within a
    /// second (deleted, truncated, another project's), or one whose lock file was
    /// removed and that will take a new one (`git clean -fdX`). `pid` is the holder
    /// (the kernel's lock table, else the PID file); `stopped` when it is stopped
    /// (SIGSTOP) and so will not get any further by itself.
    Starting {
        pid: Option<u32>,
        runtime: String,
        stopped: bool,
    },
}

/// What [`Resident::Foreign`] means for `project`, and what to do.
pub fn shared_state_dir(project: &Project, root: &std::path::Path, pid: u32) -> String {
    format!(
        "the state dir {} is also that of {}: its resident (pid {pid}) holds the lock, and \
         runtime.json names that project. Each project needs a state dir of its own: \
         remove the link or copy at {}, or work in {}",
        project.state_dir.display(),
        root.display(),
        project.root.join(".claude").display(),
        root.display()
    )
}

/// A file left by a resident that is gone.
#[derive(Debug, Clone, Serialize)]
pub struct StaleFile {
    pub path: PathBuf,
    pub reason: String,
}

#[derive(Debug)]
pub struct Inspection {
    pub resident: Resident,
    pub runtime: RuntimeFile,
    pub stale: Vec<StaleFile>,
}

/// Looks at a project's discovery files and resident without changing anything.
pub async fn inspect(project: &Project) -> Result<Inspection> {
    let runtime = RuntimeFile::read(&project.runtime_file());
    let pid = lock::read_pid(&project.pid_file());
    let held = flock::is_held(&project.lock_file()).map_err(|e| {
        let owner = if e.kind() == std::io::ErrorKind::PermissionDenied {
            owner_hint(&project.state_dir)
        } else {
            String::new()
        };
        Error::io(
            format!("cannot check {}{owner}", project.lock_file().display()),
            e,
        )
    })?;
    if !held {
        // A resident whose lock file was removed still holds the deleted file, until
        // it notices (within a second) and serves again under a new one.
        if let Some(&orphan) = process::holding_deleted(&project.lock_file()).first() {
            let resident = Resident::Starting {
                pid: Some(orphan),
                runtime: "to be written again: the lifetime lock file was removed, and the \
                          resident takes a new one"
                    .into(),
                stopped: process::is_stopped(orphan),
            };
            return Ok(Inspection {
                resident,
                runtime,
                stale: Vec::new(),
            });
        }
        let stale = stale_files(project, &runtime, pid);
        return Ok(Inspection {
            resident: Resident::Stopped,
            runtime,
            stale,
        });
    }
    // The kernel knows who holds the lock; runtime.json only says who wrote it.
    let holder = flock::holder(&project.lock_file());
    let pid = holder.or(pid);
    let starting = |runtime: String| Resident::Starting {
        pid,
        runtime,
        stopped: pid.is_some_and(process::is_stopped),
    };
    let resident = match &runtime {
        RuntimeFile::Valid(state)
            if state.project_root != project.root && holder.is_none_or(|h| h == state.pid) =>
        {
            Resident::Foreign {
                root: state.project_root.clone(),
                pid: state.pid,
            }
        }
        RuntimeFile::Valid(state) if holder.is_some_and(|h| h != state.pid) => {
            starting(format!("pid {}'s, which does not hold the lock", state.pid))
        }
        RuntimeFile::Valid(state)
            if process::check(state.pid, &state.process) == Liveness::Ours =>
        {
            match health(state).await {
                Ok(()) => Resident::Running(state.clone()),
                Err(why) => Resident::Unresponsive {
                    state: state.clone(),
                    why,
                },
            }
        }
        other => starting(other.describe()),
    };
    Ok(Inspection {
        resident,
        runtime,
        stale: Vec::new(),
    })
}

/// For a state dir this user may not read: whose it is (or whose the nearest
/// directory above it this user can see is), and what to do.
fn owner_hint(state_dir: &std::path::Path) -> String {
    use std::os::unix::fs::MetadataExt;
    let me = nix::unistd::getuid().as_raw();
    state_dir
        .ancestors()
        .find_map(|dir| Some((dir, std::fs::metadata(dir).ok()?)))
        .filter(|(_, m)| m.uid() != me)
        .map_or(String::new(), |(dir, m)| {
            format!(
                " ({} belongs to uid {}: run doc-serve as that user)",
                dir.display(),
                m.uid()
            )
        })
}

/// Checks that `state.base_url` answers /health as the same instance.
pub async fn health(state: &RuntimeState) -> Result<(), String> {
    let endpoint = Endpoint::parse(&state.base_url)?;
    let resp = client::request(
        &endpoint,
        Method::GET,
        "/health",
        None,
        None,
        HEALTH_TIMEOUT,
    )
    .await
    .map_err(|e| format!("{} does not answer: {e}", state.base_url))?;
    if !resp.status.is_success() {
        return Err(format!(
            "{} answered /health with {}",
            state.base_url, resp.status
        ));
    }
    let body: serde_json::Value = serde_json::from_slice(&resp.body).unwrap_or_default();
    if body.get("instance_id").and_then(|v| v.as_str()) != Some(&state.instance_id) {
        return Err(format!(
            "{} is answered by another server, not instance {}",
            state.base_url, state.instance_id
        ));
    }
    Ok(())
}

/// Why each discovery file present is stale, given that no resident holds the lock.
/// A PID is judged once: when runtime.json and the PID file name the same one (a
/// resident killed with SIGKILL, maybe a zombie not yet reaped), both say the same.
fn stale_files(project: &Project, runtime: &RuntimeFile, pid: Option<u32>) -> Vec<StaleFile> {
    let mut stale = Vec::new();
    let recorded = match runtime {
        RuntimeFile::Valid(s) => Some((s.pid, process::check(s.pid, &s.process))),
        _ => None,
    };
    let left_by = |pid: u32, liveness: &Liveness| match liveness {
        Liveness::Dead => format!("left by pid {pid}, which has exited"),
        Liveness::Reused { name } => format!(
            "left by pid {pid}, a number now reused by another program ({}); it will not be signalled",
            name.as_deref().unwrap_or("unknown")
        ),
        Liveness::Ours => format!(
            "left by pid {pid} ({}), which no longer serves here: shutting down, or not a \
             resident of this project",
            process::name(pid).unwrap_or_else(|| "unknown".into())
        ),
    };
    let reason = match runtime {
        RuntimeFile::Missing => None,
        RuntimeFile::Garbage(why) => Some(format!("truncated or garbage ({why})")),
        RuntimeFile::UnknownVersion(_) => Some(format!(
            "{}; no resident holds the lock",
            runtime.describe()
        )),
        RuntimeFile::Valid(_) => recorded.as_ref().map(|(pid, l)| left_by(*pid, l)),
    };
    if let Some(reason) = reason {
        stale.push(StaleFile {
            path: project.runtime_file(),
            reason,
        });
    }
    if project.pid_file().exists() {
        let reason = match (pid, &recorded) {
            (None, _) => "not a PID".to_owned(),
            (Some(pid), Some((same, liveness))) if pid == *same => left_by(pid, liveness),
            // Nothing to check its identity against: alive (a zombie is not) is all
            // that can be told.
            (Some(pid), _) => match process::check(pid, &process::Identity::default()) {
                Liveness::Dead => format!("left by pid {pid}, which has exited"),
                _ => format!(
                    "pid {pid} is alive but does not hold the lock: not a resident of this project"
                ),
            },
        };
        stale.push(StaleFile {
            path: project.pid_file(),
            reason,
        });
    }
    stale
}

/// Removes stale discovery files, only if no resident holds the lifetime lock.
/// Returns what was removed (empty when a resident holds the lock).
pub fn clean_stale(project: &Project) -> Result<Vec<StaleFile>> {
    let lock_file = project.lock_file();
    let ctx = |e| Error::io(format!("cannot lock {}", lock_file.display()), e);
    if !project.state_dir.exists() {
        return Ok(Vec::new());
    }
    let Some(_lock) = flock::try_lock(&lock_file).map_err(ctx)? else {
        return Ok(Vec::new());
    };
    let runtime = RuntimeFile::read(&project.runtime_file());
    let stale = stale_files(project, &runtime, lock::read_pid(&project.pid_file()));
    for file in &stale {
        fsutil::remove_if_exists(&file.path)
            .map_err(|e| Error::io(format!("cannot remove {}", file.path.display()), e))?;
    }
    Ok(stale)
}
