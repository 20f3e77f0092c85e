//! doc-serve: a local documentation search service.
//!
//! The binary (`src/main.rs`) is a thin shell over this library so that tests and
//! benchmarks can drive the same code.
//!
//! # Layout
//!
//! - [`api`]: the operations (search, read, status, reindex) every transport calls, their
//!   requests, replies and errors.
//! - [`error`]: typed errors with stable codes, HTTP statuses and exit codes.
//! - [`project`]: project root resolution (README, "Project root"), project ids, state-dir paths.
//! - [`config`]: defaults < config.json < `DOC_SERVE_*` < flags, into one [`config::Config`].
//! - [`fsutil`]: atomic writes and private (0600/0700) files and directories.
//! - [`flock`]: exclusive flocks on files (at once, within a time, in turn), and their holders.
//! - [`process`]: process identity (start time, boot id) so a reused PID never passes for ours.
//! - [`discovery`]: runtime.json, the lifetime lock and PID file, and stale-state detection.
//! - [`events`]: the `logs/events.jsonl` lifecycle log.
//! - [`logging`]: journald or stderr, chosen by comparing JOURNAL_STREAM with stderr.
//! - [`engine`]: the tantivy index: schema, analyzers, cross-process writes, search.
//! - [`ingest`]: walking sources, chunking by section, reading a document or a section
//!   of it (or rendering it for the page), reconciling, watching.
//! - [`tokens`]: token estimates for answer budgets.
//! - [`daemon`]: the shared daemon's home (`~/.doc-serve`) and its registered projects.
//! - [`server`]: listeners (inherited or bound), HTTP routes and security, lifecycle; the
//!   search page's files (`src/ui/`, built in) and its login codes and sessions.
//! - [`supervisor`]: the instance registry, systemd units and launchd agents.
//! - [`mcp`]: the MCP tools over [`api`], served at /mcp by a resident and over stdio by the
//!   bridge (`doc-serve mcp`).
//! - [`client`]: a minimal HTTP/1.1 client for talking to a resident.
//! - [`terminal`]: colour and OSC 8 hyperlinks, from `--color`, `--hyperlink`, NO_COLOR and TERM.
//! - [`cli`]: the commands; only `cli::output` prints.

pub(crate) mod api;
pub mod cli;
pub(crate) mod client;
pub mod config;
pub(crate) mod daemon;
pub mod discovery;
pub mod embed;
pub mod engine;
pub mod error;
pub mod events;
pub(crate) mod flock;
pub(crate) mod fsutil;
pub mod ingest;
pub(crate) mod logging;
pub(crate) mod mcp;
pub(crate) mod process;
pub mod project;
pub mod server;
pub mod supervisor;
pub mod terminal;
#[cfg(test)]
mod testing;
pub mod tokens;

/// The version reported by `/health`, `runtime.json` and `--version`.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
