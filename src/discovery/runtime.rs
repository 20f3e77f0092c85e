//! runtime.json: how clients find a running resident (see the README, "State directory").
//!
//! Written by the resident only once its listeners are ready, atomically and 0600 (it
//! holds the bearer token). Readers check `schema_version` first; a truncated or garbage
//! file is reported as such and never trusted.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::config::Mode;
use crate::error::Result;
use crate::fsutil;
use crate::process::Identity;

/// The only schema version this build reads and writes.
pub const SCHEMA_VERSION: u64 = 1;

/// Who created the listening socket.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Activation {
    /// Inherited from systemd (LISTEN_FDS).
    Systemd,
    /// Inherited from launchd (launch_activate_socket).
    Launchd,
    /// Bound by doc-serve itself.
    #[serde(rename = "self")]
    SelfBound,
}

impl std::fmt::Display for Activation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Activation::Systemd => "systemd",
            Activation::Launchd => "launchd",
            Activation::SelfBound => "self",
        })
    }
}

/// One listening socket of a resident.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ListenerInfo {
    /// `tcp` or `unix`.
    pub kind: String,
    /// `host:port` or the socket path.
    pub address: String,
    /// The name given by the supervisor (LISTEN_FDNAMES), if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
}

/// The contents of runtime.json, schema version 1.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RuntimeState {
    pub schema_version: u64,
    pub mode: Mode,
    pub project_root: PathBuf,
    /// Where to send requests: `http://host:port`, or `unix:PATH` when the resident
    /// listens on a Unix socket only.
    pub base_url: String,
    pub instance_id: String,
    pub project_id: String,
    pub bind_host: String,
    /// The TCP port, 0 when there is no TCP listener.
    pub port: u16,
    pub pid: u32,
    /// ISO 8601, UTC.
    pub started_at: String,
    /// Bearer token every TCP request but /health must carry.
    pub token: String,
    /// A Unix socket the resident serves (no token needed: the file mode is the gate).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub socket_path: Option<PathBuf>,
    pub activation: Activation,
    pub version: String,
    /// Start time and boot id of `pid`, so a reused PID is never taken for ours.
    pub process: Identity,
    pub listeners: Vec<ListenerInfo>,
}

/// What reading runtime.json found.
#[derive(Debug, Clone)]
pub enum RuntimeFile {
    Missing,
    /// Unreadable, truncated, not JSON, or missing required fields.
    Garbage(String),
    /// A schema this build does not know (a newer or older doc-serve wrote it).
    UnknownVersion(Value),
    Valid(Box<RuntimeState>),
}

/// Most bytes a runtime.json may hold: a resident's is under 2 KiB.
const MAX_BYTES: u64 = 64 << 10;

impl RuntimeFile {
    pub fn read(path: &Path) -> RuntimeFile {
        let text = match fsutil::read_small(path, MAX_BYTES) {
            Ok(Some(t)) => t,
            Ok(None) => return RuntimeFile::Missing,
            Err(e) => return RuntimeFile::Garbage(format!("cannot read: {e}")),
        };
        let value: Value = match serde_json::from_slice(&text) {
            Ok(v) => v,
            Err(e) => return RuntimeFile::Garbage(format!("not valid JSON ({e})")),
        };
        match value.get("schema_version") {
            Some(v) if v.as_u64() == Some(SCHEMA_VERSION) => {}
            Some(v) => return RuntimeFile::UnknownVersion(v.clone()),
            None => return RuntimeFile::Garbage("no schema_version".into()),
        }
        match serde_json::from_value(value) {
            Ok(state) => RuntimeFile::Valid(Box::new(state)),
            Err(e) => RuntimeFile::Garbage(format!("invalid contents ({e})")),
        }
    }

    /// A one-line description for `status`.
    pub fn describe(&self) -> String {
        match self {
            RuntimeFile::Missing => "absent".into(),
            RuntimeFile::Garbage(why) => format!("unusable: {why}"),
            RuntimeFile::UnknownVersion(v) => format!(
                "of schema_version {v}, which doc-serve {} does not read (it reads {SCHEMA_VERSION})",
                crate::VERSION
            ),
            RuntimeFile::Valid(s) => format!("pid {} at {}", s.pid, s.base_url),
        }
    }
}

impl RuntimeState {
    /// Writes the state atomically, mode 0600.
    pub fn write(&self, path: &Path) -> Result<()> {
        // Serialising plain structs of strings and numbers cannot fail.
        let mut json = serde_json::to_vec_pretty(self).expect("RuntimeState serialises");
        json.push(b'\n');
        fsutil::write_atomic(path, &json, 0o600)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> RuntimeState {
        RuntimeState {
            schema_version: 1,
            mode: Mode::Project,
            project_root: "/p".into(),
            base_url: "http://127.0.0.1:4000".into(),
            instance_id: "ds_000000".into(),
            project_id: "p_00000000".into(),
            bind_host: "127.0.0.1".into(),
            port: 4000,
            pid: 1,
            started_at: "2026-01-01T00:00:00Z".into(),
            token: "t".into(),
            socket_path: None,
            activation: Activation::SelfBound,
            version: "0".into(),
            process: Identity::default(),
            listeners: vec![],
        }
    }

    #[test]
    fn round_trip_and_bad_files() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("runtime.json");
        assert!(matches!(RuntimeFile::read(&p), RuntimeFile::Missing));
        sample().write(&p).unwrap();
        let text = std::fs::read_to_string(&p).unwrap();
        assert!(text.contains("\"activation\": \"self\""), "{text}");
        match RuntimeFile::read(&p) {
            RuntimeFile::Valid(s) => assert_eq!(*s, sample()),
            other => panic!("{other:?}"),
        }
        std::fs::write(&p, &text[..text.len() / 2]).unwrap();
        assert!(matches!(RuntimeFile::read(&p), RuntimeFile::Garbage(_)));
        std::fs::write(&p, b"\x00\xff garbage").unwrap();
        assert!(matches!(RuntimeFile::read(&p), RuntimeFile::Garbage(_)));
        std::fs::write(&p, r#"{"schema_version": 2, "whatever": true}"#).unwrap();
        let f = RuntimeFile::read(&p);
        assert!(matches!(f, RuntimeFile::UnknownVersion(_)));
        assert!(
            f.describe().contains("schema_version 2"),
            "{}",
            f.describe()
        );
        std::fs::write(&p, r#"{"schema_version": 1}"#).unwrap();
        assert!(matches!(RuntimeFile::read(&p), RuntimeFile::Garbage(_)));
    }
}
