//! Where log lines go: journald when stderr is the journal stream, else stderr.
//!
//! JOURNAL_STREAM alone proves nothing: a child of a journald-logged service inherits
//! it while its stderr points elsewhere (a terminal, a file). systemd.exec(5) says to
//! compare the variable's `device:inode` with stderr's fstat, which is what we do.
//!
//! Whether stderr lines are coloured is the caller's decision (`--color`, NO_COLOR and
//! TERM, see [`crate::terminal`]), not this module's.

use std::os::fd::AsFd;

use tracing_subscriber::EnvFilter;
use tracing_subscriber::prelude::*;

/// Where logs went, for the record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sink {
    Journald,
    Stderr,
}

/// Installs the global subscriber. `filter` is a tracing filter (`DOC_SERVE_LOG`), with
/// `default` used when it is absent or invalid; `timestamps` prefixes stderr lines and
/// `colour` colours them.
pub fn init(filter: Option<&str>, default: &str, timestamps: bool, colour: bool) -> Sink {
    let filter = filter
        .and_then(|f| EnvFilter::try_new(f).ok())
        .unwrap_or_else(|| EnvFilter::new(default));
    if stderr_is_journal()
        && let Ok(layer) = tracing_journald::layer()
    {
        let layer = layer.with_syslog_identifier("doc-serve".into());
        if tracing_subscriber::registry()
            .with(filter)
            .with(layer)
            .try_init()
            .is_ok()
        {
            return Sink::Journald;
        }
        return Sink::Stderr;
    }
    let fmt = tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
        .with_ansi(colour)
        .with_target(false);
    let _ = if timestamps {
        tracing_subscriber::registry()
            .with(filter)
            .with(fmt)
            .try_init()
    } else {
        tracing_subscriber::registry()
            .with(filter)
            .with(fmt.without_time())
            .try_init()
    };
    Sink::Stderr
}

/// True when JOURNAL_STREAM names the same file as our stderr.
pub fn stderr_is_journal() -> bool {
    let Some(var) = std::env::var_os("JOURNAL_STREAM") else {
        return false;
    };
    let Some((dev, ino)) = var.to_str().and_then(|v| v.split_once(':')) else {
        return false;
    };
    let (Ok(dev), Ok(ino)) = (dev.parse::<u64>(), ino.parse::<u64>()) else {
        return false;
    };
    // st_dev and st_ino are not u64 on every platform (macOS).
    #[allow(clippy::unnecessary_cast)]
    match nix::sys::stat::fstat(std::io::stderr().as_fd()) {
        Ok(st) => st.st_dev as u64 == dev && st.st_ino as u64 == ino,
        Err(_) => false,
    }
}
