//! Why a resident stops, and what it tells its supervisor on the way.
//!
//! All shutdown causes are listed in [`Cause`] and awaited in one place
//! ([`wait_for_cause`]), the way sccache's `ShutdownOrInactive` does it.
//! sd-notify calls are no-ops when NOTIFY_SOCKET is unset; a failed notification is
//! logged, never fatal.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use sd_notify::NotifyState;
use tokio::signal::unix::{Signal, SignalKind, signal};

use super::state::Shared;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cause {
    Terminate,
    Interrupt,
    Idle,
}

impl Cause {
    /// The name recorded in logs/events.jsonl.
    pub fn event(self) -> &'static str {
        match self {
            Cause::Idle => "idle_exit",
            Cause::Terminate | Cause::Interrupt => "stop",
        }
    }
}

impl fmt::Display for Cause {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Cause::Terminate => "SIGTERM",
            Cause::Interrupt => "SIGINT",
            Cause::Idle => "idle timeout",
        })
    }
}

/// SIGTERM and SIGINT, caught from the moment this exists. It must exist before
/// anyone can find the resident (runtime.json, READY=1): until then a SIGTERM takes the
/// default action and kills the process without its clean shutdown.
pub struct Signals {
    term: Signal,
    int: Signal,
}

impl Signals {
    pub fn install() -> std::io::Result<Signals> {
        Ok(Signals {
            term: signal(SignalKind::terminate())?,
            int: signal(SignalKind::interrupt())?,
        })
    }
}

/// Resolves with the first cause to stop.
pub async fn wait_for_cause(shared: Arc<Shared>, mut signals: Signals) -> Cause {
    tokio::select! {
        _ = signals.term.recv() => Cause::Terminate,
        _ = signals.int.recv() => Cause::Interrupt,
        _ = idle(&shared) => Cause::Idle,
    }
}

/// Resolves once no request has been in flight for the idle timeout; never without one.
async fn idle(shared: &Shared) {
    let Some(limit) = shared.idle_timeout else {
        return std::future::pending().await;
    };
    loop {
        let idle = shared.activity.idle_for();
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
