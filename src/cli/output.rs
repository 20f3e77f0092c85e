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
