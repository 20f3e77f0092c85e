//! The only place that writes to stdout.
//!
//! Data goes out as pretty JSON with `--json`, as short human text otherwise. A closed
//! pipe (`doc-serve status | head -1`) is success, not an error.

use std::io::{self, Write};

use serde::Serialize;

/// Prints `value` as JSON when `json` is set, else runs `human` on stdout.
pub fn emit<T: Serialize>(
    json: bool,
    value: &T,
    human: impl FnOnce(&mut dyn Write) -> io::Result<()>,
) -> anyhow::Result<()> {
    let stdout = io::stdout();
    let mut out = stdout.lock();
    let result = if json {
        serde_json::to_writer_pretty(&mut out, value)
            .map_err(io::Error::from)
            .and_then(|()| writeln!(out))
    } else {
        human(&mut out)
    };
    match result.and_then(|()| out.flush()) {
        Err(e) if e.kind() != io::ErrorKind::BrokenPipe => Err(e.into()),
        _ => Ok(()),
    }
}

/// Writes each item as one line of compact JSON. `Ok(false)` when the reader has gone
/// (a closed pipe): the caller stops.
pub fn json_lines<T: Serialize>(items: &[T]) -> anyhow::Result<bool> {
    let stdout = io::stdout();
    let mut out = io::BufWriter::with_capacity(1 << 16, stdout.lock());
    let result = items
        .iter()
        .try_for_each(|item| {
            serde_json::to_writer(&mut out, item).map_err(io::Error::from)?;
            writeln!(out)
        })
        .and_then(|()| out.flush());
    match result {
        Err(e) if e.kind() == io::ErrorKind::BrokenPipe => Ok(false),
        Err(e) => Err(e.into()),
        Ok(()) => Ok(true),
    }
}

/// A line for people on stderr, beside data on stdout (a summary).
pub fn note(line: &str) {
    let _ = writeln!(io::stderr(), "{line}");
}
