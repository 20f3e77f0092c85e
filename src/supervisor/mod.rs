//! Supervisor integration: the instance registry (slug -> project root), systemd user
//! units, and launchd agents.
//!
//! This module renders and installs what a supervisor needs; it never serves requests.
//! The server takes the sockets a supervisor passes in `server::listener`.

pub mod launchd;
pub mod registry;
pub mod systemd;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use hyper::Method;

use crate::client::{self, ClientError, Endpoint};
use crate::config::Environment;
use crate::error::{Error, Result};
use registry::{Instance, Registry, Supervisor};

/// One supervisor command (`systemctl --user ...`, `launchctl ...`), shown as typed.
#[derive(Debug, Clone)]
pub struct Cmd {
    pub program: &'static str,
    pub args: Vec<String>,
}

impl std::fmt::Display for Cmd {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}", self.program, self.args.join(" "))
    }
}

impl Cmd {
    pub fn new(program: &'static str, args: &[&str]) -> Cmd {
        Cmd {
            program,
            args: args.iter().map(|a| a.to_string()).collect(),
        }
    }

    /// Runs it; a failure is an error carrying the program's own message.
    pub fn run(&self) -> Result<()> {
        let out = Command::new(self.program)
            .args(&self.args)
            .stdin(Stdio::null())
            .output()
            .map_err(|e| Error::io(format!("cannot run `{self}`"), e))?;
        if out.status.success() {
            return Ok(());
        }
        Err(Error::Setting {
            name: self.to_string(),
            message: format!(
                "failed ({}): {}",
                out.status,
                String::from_utf8_lossy(&out.stderr).trim()
            ),
        })
    }

    /// Runs it quietly and tells whether it succeeded (`systemctl is-active` and such).
    pub fn check(&self) -> bool {
        Command::new(self.program)
            .args(&self.args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    }
}

/// What a supervisor listens on for `project`: the instance installed for it, or for
/// the shared daemon the socket of `doc-serve.socket` (systemd) or of its LaunchAgent,
/// when that socket exists.
pub fn serving(env: &Environment, project: &crate::project::Project) -> Option<Instance> {
    if !project.is_shared_daemon() {
        return installed(env, &project.root);
    }
    let (supervisor, socket_path) = if cfg!(target_os = "macos") {
        (
            Supervisor::Launchd,
            launchd::shared_socket_path(&project.root).ok()?,
        )
    } else {
        (
            Supervisor::Systemd,
            systemd::socket_path(env.runtime_dir.as_deref()?, registry::RESERVED).ok()?,
        )
    };
    socket_path.exists().then(|| Instance {
        slug: registry::RESERVED.into(),
        root: project.root.clone(),
        supervisor,
        socket_path,
        tcp_port: None,
    })
}

/// The supervised instance installed for `root`, if any. A registry that cannot be
/// read is logged and treated as empty: clients can still start a resident.
pub fn installed(env: &Environment, root: &Path) -> Option<Instance> {
    let file = Registry::file(env.config_home.as_deref()?);
    match Registry::load(&file) {
        Ok(reg) => reg.instances.into_values().find(|i| i.root == root),
        Err(e) => {
            tracing::warn!("ignoring the instance registry: {e}");
            None
        }
    }
}

/// Sends one request to the instance's socket, which makes the supervisor start its
/// service if it is not running. Any HTTP answer counts: the service is up.
pub async fn activate(
    instance: &Instance,
    timeout: Duration,
) -> std::result::Result<(), ClientError> {
    let endpoint = Endpoint::Unix(instance.socket_path.clone());
    client::request(&endpoint, Method::GET, "/health", None, None, timeout)
        .await
        .map(drop)
}
