//! logs/events.jsonl: lifecycle events, one JSON object a line, rotated by size.
//!
//! Several processes may append (a resident, and `start` cleaning stale files); each
//! line goes out in one `write` on an O_APPEND descriptor, so lines never interleave.
//! Recording an event never fails the caller: a log that cannot be written is a warning.

use std::io::Write;
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use serde_json::{Map, Value};

use crate::fsutil;

/// Rotated files kept beside the live one (events.jsonl.1 .. .3).
const KEEP: u32 = 3;

#[derive(Debug, Clone)]
pub struct EventLog {
    path: PathBuf,
    max_bytes: u64,
}

impl EventLog {
    pub fn new(log_dir: &Path, max_bytes: u64) -> EventLog {
        EventLog {
            path: log_dir.join("events.jsonl"),
            max_bytes,
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Appends `{"ts", "event", "pid", ...fields}`.
    pub fn record(&self, event: &str, fields: Value) {
        let mut line = Map::new();
        line.insert("ts".into(), now_rfc3339().into());
        line.insert("event".into(), event.into());
        line.insert("pid".into(), std::process::id().into());
        if let Value::Object(extra) = fields {
            line.extend(extra);
        }
        let mut bytes = Value::Object(line).to_string().into_bytes();
        bytes.push(b'\n');
        if let Err(e) = self.append(&bytes) {
            tracing::warn!("cannot write {}: {e}", self.path.display());
        }
    }

    /// Creates the log directory (and its parents) if missing. Recording an event
    /// makes the log directory itself again, never its parents: a resident whose
    /// project was moved or deleted must not make its old path again.
    pub fn prepare(&self) -> crate::error::Result<()> {
        match self.path.parent() {
            Some(dir) => fsutil::create_dir_if_missing(dir),
            None => Ok(()),
        }
    }

    fn append(&self, line: &[u8]) -> std::io::Result<()> {
        if let Some(dir) = self.path.parent()
            && !dir.is_dir()
        {
            std::fs::DirBuilder::new().mode(0o700).create(dir)?;
        }
        if std::fs::metadata(&self.path).is_ok_and(|m| m.len() >= self.max_bytes) {
            self.rotate();
        }
        fsutil::open_append(&self.path)?.write_all(line)
    }

    fn rotate(&self) {
        let numbered = |n: u32| PathBuf::from(format!("{}.{n}", self.path.display()));
        for n in (1..KEEP).rev() {
            let _ = std::fs::rename(numbered(n), numbered(n + 1));
        }
        let _ = std::fs::rename(&self.path, numbered(1));
    }
}

/// Now, as ISO 8601 UTC with milliseconds.
pub fn now_rfc3339() -> String {
    humantime::format_rfc3339_millis(SystemTime::now()).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_lines_and_rotates() {
        let dir = tempfile::tempdir().unwrap();
        let log = EventLog::new(&dir.path().join("logs"), 200);
        for i in 0..20 {
            log.record("tick", serde_json::json!({ "i": i }));
        }
        let text = std::fs::read_to_string(log.path()).unwrap();
        for line in text.lines() {
            let v: Value = serde_json::from_str(line).unwrap();
            assert_eq!(v["event"], "tick");
        }
        assert!(dir.path().join("logs/events.jsonl.1").exists());
        assert!(!dir.path().join("logs/events.jsonl.4").exists());
    }
}
