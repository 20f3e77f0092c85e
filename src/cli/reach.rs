//! How a client command (`query`, `index`, `mcp`) reaches the project's resident.
//!
//! In order: the resident runtime.json names, if its process is ours and it answers
//! /health; else the socket of a supervised instance installed for the project (the
//! first request makes the supervisor start it); else, when the command may, a resident
//! started now; else none, and the command runs standalone. Stale discovery files are
//! cleaned up on the way. A resident that turns out unreachable when asked (refused,
//! socket gone: see [`crate::client::ClientError::is_unreachable`]) sends the caller to
//! the next way; any other failure is an error worth showing, and so is a resident that
//! holds the lock and accepts connections but does not answer (its PID named).
//!
//! A project whose config says mode "shared" is served by the shared daemon, found the
//! same way from `~/.doc-serve` (or the socket of `doc-serve.socket`), and started with
//! `serve --shared`; requests then go to `/projects/{id}/...`, and the project is
//! registered with the daemon at its first request.

use super::{Context, lifecycle};
use crate::client::{Conn, Endpoint};
use crate::discovery::{self, Resident};
use crate::supervisor;

pub use super::remote::{CallError, Remote};

/// Finds the way to the project's resident; `None`: run standalone. With `autostart`,
/// a resident is started when none runs and no supervisor has the project.
pub fn find(
    ctx: &Context,
    rt: &tokio::runtime::Runtime,
    autostart: bool,
) -> anyhow::Result<Option<Remote>> {
    // A project in shared mode is served by the shared daemon, found the same way.
    if let Some(daemon) = ctx.daemon_of()? {
        return Ok(find(&daemon, rt, autostart)?.map(|r| r.for_project(&ctx.project)));
    }
    let found = rt.block_on(discovery::inspect(&ctx.project))?;
    match found.resident {
        Resident::Running(state) => return Remote::of(&state).map(Some),
        Resident::Stopped => {
            for file in discovery::clean_stale(&ctx.project)? {
                tracing::info!("removed stale {}: {}", file.path.display(), file.reason);
            }
        }
        Resident::Foreign { root, pid } => {
            anyhow::bail!("{}", discovery::shared_state_dir(&ctx.project, &root, pid))
        }
        // One that is stopped will not write runtime.json: answering from the disk
        // instead would hide it.
        Resident::Starting {
            pid,
            runtime,
            stopped: true,
        } => anyhow::bail!(
            "pid {} holds the lifetime lock of {} but is stopped, and runtime.json is \
             {runtime}. `doc-serve stop` stops it (with SIGCONT), `kill -CONT PID` wakes it",
            pid.map_or("unknown".into(), |p| p.to_string()),
            ctx.project.root.display()
        ),
        // The lock is held by a resident starting up (or one dying: its last threads
        // still hold the lock): one that may be started is waited for.
        Resident::Starting { .. } if autostart => {
            let (state, _) = lifecycle::ensure_running(ctx, None)?;
            return Remote::of(&state).map(Some);
        }
        // Held by a resident starting up: standalone is safe meanwhile.
        Resident::Starting { .. } => return Ok(None),
        // One that took the connection and never answered (stopped, hung, swamped):
        // answering from the disk instead would hide it. Only a refused connection or
        // a missing socket means "next way" (a resident shutting down has closed its
        // listeners before removing runtime.json).
        Resident::Unresponsive { state, why } => {
            let remote = Remote::of(&state)?;
            let connect = rt.block_on(async {
                tokio::time::timeout(discovery::HEALTH_TIMEOUT, Conn::open(&remote.endpoint)).await
            });
            if let Ok(Err(e)) = connect
                && e.is_unreachable()
            {
                tracing::info!(
                    "{} is unreachable ({e}); running standalone",
                    remote.base_url
                );
                return Ok(None);
            }
            let (who, shared) = if ctx.project.is_shared_daemon() {
                ("the shared daemon".to_owned(), " --shared")
            } else {
                (
                    format!("the resident of {}", ctx.project.root.display()),
                    "",
                )
            };
            anyhow::bail!(
                "{who} (pid {}) holds the lifetime lock but does not answer: {why}. \
                 `doc-serve status{shared}` shows it; `doc-serve stop{shared}` stops it (with \
                 SIGCONT if it was stopped), `stop{shared} --force` kills it",
                state.pid
            )
        }
    }
    if let Some(instance) = supervisor::serving(&ctx.env, &ctx.project) {
        if instance.socket_path.exists() {
            return Ok(Some(Remote::new(
                Endpoint::Unix(instance.socket_path.clone()),
                None,
                format!("unix:{}", instance.socket_path.display()),
            )));
        }
        tracing::info!(
            "instance {:?} is installed but its socket {} is missing",
            instance.slug,
            instance.socket_path.display()
        );
    }
    if !autostart {
        return Ok(None);
    }
    let (state, _) = lifecycle::ensure_running(ctx, None)?;
    Remote::of(&state).map(Some)
}
