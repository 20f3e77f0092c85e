//! Typed errors of the library, each with a stable code.
//!
//! Library code returns [`Error`]; the CLI wraps it with anyhow context and prints the
//! whole chain. The HTTP layer has its own `ApiError` (server::http) because an HTTP
//! error is a response, not a failure of the process.

use std::io;
use std::path::PathBuf;

/// Exit codes of the `doc-serve` binary (documented in README.md).
pub mod exit {
    /// Success.
    pub const OK: i32 = 0;
    /// Nothing found: no results, or `status` found no running resident.
    pub const NOTHING: i32 = 1;
    /// An error; the message says what and where.
    pub const ERROR: i32 = 2;
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// config.json could not be read or holds a wrong value.
    #[error("{}: {message}", path.display())]
    Config { path: PathBuf, message: String },

    /// A `DOC_SERVE_*` variable or a flag holds a wrong value.
    #[error("{name}: {message}")]
    Setting { name: String, message: String },

    /// Another resident holds the lifetime lock of this state dir.
    #[error("another doc-serve (pid {pid}) is already serving this project{}",
        base_url.as_deref().map(|u| format!(" at {u}")).unwrap_or_default())]
    AlreadyRunning {
        pid: String,
        base_url: Option<String>,
    },

    /// runtime.json exists but cannot be trusted.
    #[error("{}: {message}", path.display())]
    Runtime { path: PathBuf, message: String },

    /// An I/O error with what we were doing. The cause is in the message, not also a
    /// `source()`, or an error chain would print it twice.
    #[error("{context}: {cause}")]
    Io { context: String, cause: io::Error },
}

impl Error {
    /// A stable, machine-readable code (shown with `--json` and in HTTP errors).
    pub fn code(&self) -> &'static str {
        match self {
            Error::Config { .. } => "bad_config",
            Error::Setting { .. } => "bad_setting",
            Error::AlreadyRunning { .. } => "already_running",
            Error::Runtime { .. } => "bad_runtime_file",
            Error::Io { .. } => "io_error",
        }
    }

    /// Wraps an I/O error with a description of the operation and its path.
    pub fn io(context: impl Into<String>, source: io::Error) -> Self {
        Error::Io {
            context: context.into(),
            cause: source,
        }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
