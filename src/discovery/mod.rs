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
    /// The lock is held but runtime.json does not (yet) describe its holder: a resident
    /// starting up, or one written by another doc-serve version.
    Starting { pid: Option<u32>, runtime: String },
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
    let held = lock::is_held(&project.lock_file()).map_err(|e| {
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
        let stale = stale_files(project, &runtime, pid);
        return Ok(Inspection {
            resident: Resident::Stopped,
            runtime,
            stale,
        });
    }
    let resident = match &runtime {
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
        other => Resident::Starting {
            pid,
            runtime: other.describe(),
        },
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
        Liveness::Ours => format!("left by pid {pid}, which no longer serves (shutting down)"),
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
    let Some(_lock) = lock::try_lock(&lock_file).map_err(ctx)? else {
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
