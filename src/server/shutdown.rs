//! Why a resident stops, and what it tells its supervisor on the way.
//!
//! All shutdown causes are listed in [`Cause`] and awaited in one place
//! ([`wait_for_cause`]), the way sccache's `ShutdownOrInactive` does it.
//! sd-notify calls are no-ops when NOTIFY_SOCKET is unset; a failed notification is
//! logged, never fatal.

use std::fmt;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::fsutil::file_id;
use std::time::Duration;

use sd_notify::NotifyState;
use tokio::signal::unix::{Signal, SignalKind, signal};

use super::state::Server;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cause {
    Terminate,
    Interrupt,
    /// The terminal a foreground `serve` ran in went away.
    Hangup,
    Idle,
    /// The project root is gone from its path (moved, deleted, unmounted).
    RootGone,
    /// The lifetime lock's file or the index directory is gone from its path or was
    /// replaced (`git clean -fdX`, the state dir or the project deleted and made
    /// again).
    Replaced,
}

impl Cause {
    /// The name recorded in logs/events.jsonl.
    pub fn event(self) -> &'static str {
        match self {
            Cause::Idle => "idle_exit",
            Cause::Terminate | Cause::Interrupt | Cause::Hangup => "stop",
            Cause::RootGone => "root_gone",
            Cause::Replaced => "state_replaced",
        }
    }
}

impl fmt::Display for Cause {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Cause::Terminate => "SIGTERM",
            Cause::Interrupt => "SIGINT",
            Cause::Hangup => "SIGHUP",
            Cause::Idle => "idle timeout",
            Cause::RootGone => "the project root was moved or deleted",
            Cause::Replaced => "the lifetime lock file or the index was removed or replaced",
        })
    }
}

/// How often a resident checks that its root and lifetime lock are still where it
/// found them, and that runtime.json still describes it.
pub const ANCHOR_CHECK: Duration = Duration::from_secs(1);

/// What a resident stands on: its project root, the file of the lifetime lock it
/// holds and its index directory, each by device and inode, as they were when it
/// started.
#[derive(Debug)]
pub struct Anchor {
    root: PathBuf,
    root_id: (u64, u64),
    lock_file: PathBuf,
    lock_id: (u64, u64),
    /// The lock file, opened again (read-only, never locked): whether it still has a
    /// name tells a project moved away from one deleted.
    held: std::fs::File,
    index: Option<(PathBuf, (u64, u64))>,
}

impl Anchor {
    /// `lock_id` is the held lock's (device, inode); `None` when the root cannot be
    /// read now.
    pub fn new(
        root: &Path,
        lock_file: &Path,
        lock_id: (u64, u64),
        index_dir: Option<&Path>,
    ) -> Option<Anchor> {
        let held = std::fs::File::open(lock_file).ok()?;
        if held.metadata().ok().map(|m| (m.dev(), m.ino())) != Some(lock_id) {
            return None;
        }
        Some(Anchor {
            root: root.to_path_buf(),
            root_id: file_id(root)?,
            lock_file: lock_file.to_path_buf(),
            lock_id,
            held,
            index: index_dir.and_then(|d| Some((d.to_path_buf(), file_id(d)?))),
        })
    }

    /// Why the resident can no longer serve from where it stands, if it cannot.
    pub fn check(&self) -> Option<Cause> {
        match std::fs::metadata(&self.root) {
            Ok(m) if m.is_dir() => {}
            _ => return Some(Cause::RootGone),
        }
        let root_replaced = file_id(&self.root) != Some(self.root_id);
        // A directory made where the project was, while the project (with the lock
        // file it holds) lives on elsewhere: it moved away.
        if root_replaced && self.held.metadata().is_ok_and(|m| m.nlink() > 0) {
            return Some(Cause::RootGone);
        }
        if root_replaced
            || file_id(&self.lock_file) != Some(self.lock_id)
            || self
                .index
                .as_ref()
                .is_some_and(|(dir, id)| file_id(dir) != Some(*id))
        {
            return Some(Cause::Replaced);
        }
        None
    }
}

/// SIGTERM and SIGINT, caught from the moment this exists. It must exist before
/// anyone can find the resident (runtime.json, READY=1): until then a SIGTERM takes the
/// default action and kills the process without its clean shutdown.
/// Installed once per process, inside its async runtime: a resident that serves again
/// in place keeps them, so that a signal arriving in between is not lost.
pub struct Signals {
    term: Signal,
    int: Signal,
    hup: Signal,
}

impl Signals {
    pub fn install() -> std::io::Result<Signals> {
        Ok(Signals {
            term: signal(SignalKind::terminate())?,
            int: signal(SignalKind::interrupt())?,
            hup: signal(SignalKind::hangup())?,
        })
    }
}

/// Resolves with the first cause to stop. `every_check` runs every [`ANCHOR_CHECK`]
/// and says when the resident stands on nothing any more.
pub async fn wait_for_cause(
    server: Arc<Server>,
    signals: &mut Signals,
    every_check: impl FnMut() -> Option<Cause>,
) -> Cause {
    tokio::select! {
        _ = signals.term.recv() => Cause::Terminate,
        _ = signals.int.recv() => Cause::Interrupt,
        _ = signals.hup.recv() => Cause::Hangup,
        _ = idle(&server) => Cause::Idle,
        cause = checks(every_check) => cause,
    }
}

async fn checks(mut every_check: impl FnMut() -> Option<Cause>) -> Cause {
    let mut tick = tokio::time::interval(ANCHOR_CHECK);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        if let Some(cause) = every_check() {
            return cause;
        }
    }
}

/// Resolves once no request has been in flight for the idle timeout; never without one.
async fn idle(server: &Server) {
    let Some(limit) = server.idle_timeout else {
        return std::future::pending().await;
    };
    loop {
        let idle = server.activity.idle_for();
        if idle >= limit {
            return;
        }
        // Sleep until the earliest moment the timeout could be reached.
        tokio::time::sleep((limit - idle).max(Duration::from_millis(50))).await;
    }
}

/// Sends states to the service manager, logging failures.
pub fn notify(states: &[NotifyState]) {
    if let Err(e) = sd_notify::notify(states) {
        tracing::warn!("sd_notify failed: {e}");
    }
}

/// Pings the watchdog at half the interval systemd asked for (WATCHDOG_USEC).
pub fn spawn_watchdog() {
    let Some(interval) = sd_notify::watchdog_enabled() else {
        return;
    };
    tracing::debug!("watchdog every {:?}", interval / 2);
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(interval / 2);
        loop {
            tick.tick().await;
            notify(&[NotifyState::Watchdog]);
        }
    });
}
