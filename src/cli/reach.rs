//! How a client command (`query`, `index`, `mcp`) reaches the project's resident.
//!
//! In order: the resident runtime.json names, if its process is ours and it answers
//! /health; else the socket of a supervised instance installed for the project (the
//! first request makes the supervisor start it); else, when the command may, a resident
//! started now; else none, and the command runs standalone. Stale discovery files are
//! cleaned up on the way. A resident that turns out unreachable when asked (refused,
//! socket gone: see [`crate::client::ClientError::is_unreachable`]) sends the caller to
//! the next way; any other failure is an error worth showing, and so is a resident that
//! holds the lock and accepts connections but does not answer (its PID named).
//!
//! A project whose config says mode "shared" is served by the shared daemon, found the
//! same way from `~/.doc-serve` (or the socket of `doc-serve.socket`), and started with
//! `serve --shared`; requests then go to `/projects/{id}/...`, and the project is
//! registered with the daemon at its first request.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Mutex;

use hyper::{Method, StatusCode};
use serde_json::Value;

use super::{Context, lifecycle};
use crate::client::{ClientError, Conn, Endpoint};
use crate::discovery::runtime::RuntimeState;
use crate::discovery::{self, Resident};
use crate::project::Project;
use crate::supervisor;

/// A resident to send requests to.
#[derive(Clone)]
pub struct Remote {
    pub endpoint: Endpoint,
    /// The bearer token, for TCP; none over a Unix socket.
    pub token: Option<String>,
    /// Where it is, for messages: a base URL or `unix:PATH`, and its PID when known.
    pub base_url: String,
    pub pid: Option<u32>,
    /// The connection kept open between calls (clones share it; see [`Remote::send`]).
    conn: Arc<Mutex<Option<Conn>>>,
    /// On the shared daemon: `/projects/{id}`, put before every path.
    prefix: String,
    /// On the shared daemon: the project root, registered when the daemon does not
    /// know it yet.
    register: Option<std::path::PathBuf>,
}

impl Remote {
    pub fn of(state: &RuntimeState) -> anyhow::Result<Remote> {
        // The Unix socket needs no token and skips TCP; the mode 0700 state dir guards it.
        let remote = match state.socket_path.as_ref().filter(|p| p.exists()) {
            Some(path) => Remote::new(
                Endpoint::Unix(path.clone()),
                None,
                format!("unix:{}", path.display()),
            ),
            None => Remote::new(
                Endpoint::parse(&state.base_url).map_err(anyhow::Error::msg)?,
                Some(state.token.clone()),
                state.base_url.clone(),
            ),
        };
        Ok(Remote {
            pid: Some(state.pid),
            ..remote
        })
    }

    fn new(endpoint: Endpoint, token: Option<String>, base_url: String) -> Remote {
        Remote {
            endpoint,
            token,
            base_url,
            pid: None,
            conn: Arc::default(),
            prefix: String::new(),
            register: None,
        }
    }

    /// Where it is and its PID, for messages: `http://127.0.0.1:4242 (pid 17)`.
    pub fn describe(&self) -> String {
        match self.pid {
            Some(pid) => format!("{} (pid {pid})", self.base_url),
            None => self.base_url.clone(),
        }
    }

    /// The same daemon, for one project of it (see [`crate::server::projects`]).
    pub fn for_project(mut self, project: &Project) -> Remote {
        self.prefix = format!("/projects/{}", project.id());
        self.register = Some(project.root.clone());
        self
    }

    /// One request to the project's routes (on the shared daemon, under its prefix;
    /// a project the daemon does not know yet is registered first).
    pub async fn call(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
        timeout: Duration,
    ) -> Result<Value, CallError> {
        let full = format!("{}{path}", self.prefix);
        match self.send(method.clone(), &full, body, timeout).await {
            Err(CallError::Api { code, .. }) if code == "unknown_project" => {
                let Some(root) = &self.register else {
                    return Err(CallError::Api {
                        status: StatusCode::NOT_FOUND,
                        code,
                        message: format!("{} does not serve {full}", self.base_url),
                    });
                };
                let reg = serde_json::json!({ "root": root });
                self.send(Method::POST, "/projects", Some(&reg), timeout)
                    .await?;
                self.send(method, &full, body, timeout).await
            }
            other => other,
        }
    }

    /// One request; the JSON answer, or the resident's `{code, message}` error. The
    /// connection stays open for the next call; one the resident closed meanwhile
    /// (a keep-alive timeout) is replaced once.
    pub async fn send(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
        timeout: Duration,
    ) -> Result<Value, CallError> {
        let body = body.map(|b| b.to_string().into_bytes());
        let token = self.token.as_deref();
        let work = async {
            // The kept connection carries one call at a time: a call made while another
            // waits on it (a search or a status while a long reindex runs) gets one of
            // its own rather than queueing behind it.
            let Ok(mut kept) = self.conn.try_lock() else {
                let mut conn = Conn::open(&self.endpoint).await?;
                return conn.send(method, path, token, body).await;
            };
            if let Some(conn) = kept.as_mut() {
                match conn.send(method.clone(), path, token, body.clone()).await {
                    Ok(resp) => return Ok(resp),
                    Err(e) => tracing::debug!("kept connection failed ({e}); reconnecting"),
                }
            }
            *kept = None;
            let mut conn = Conn::open(&self.endpoint).await?;
            let resp = conn.send(method, path, token, body).await?;
            *kept = Some(conn);
            Ok(resp)
        };
        let resp = tokio::time::timeout(timeout, work)
            .await
            .map_err(|_| CallError::Client(ClientError::Timeout(timeout)))?
            .map_err(CallError::Client)?;
        let value: Value = serde_json::from_slice(&resp.body).map_err(|e| {
            CallError::Client(ClientError::Io(std::io::Error::other(format!(
                "{} answered {path} with something that is not JSON ({}): {e}",
                self.base_url, resp.status
            ))))
        })?;
        if resp.status.is_success() {
            return Ok(value);
        }
        let text = |k: &str| value.get(k).and_then(Value::as_str).unwrap_or_default();
        Err(CallError::Api {
            status: resp.status,
            code: text("code").to_owned(),
            message: text("message").to_owned(),
        })
    }
}

#[derive(Debug, thiserror::Error)]
pub enum CallError {
    #[error(transparent)]
    Client(ClientError),
    /// The resident answered with an error.
    #[error("{message}")]
    Api {
        status: StatusCode,
        code: String,
        message: String,
    },
}

impl CallError {
    /// Nothing listens where the resident was: try the next way.
    pub fn is_unreachable(&self) -> bool {
        matches!(self, CallError::Client(e) if e.is_unreachable())
    }
}

/// Finds the way to the project's resident; `None`: run standalone. With `autostart`,
/// a resident is started when none runs and no supervisor has the project.
pub fn find(
    ctx: &Context,
    rt: &tokio::runtime::Runtime,
    autostart: bool,
) -> anyhow::Result<Option<Remote>> {
    // A project in shared mode is served by the shared daemon, found the same way.
    if let Some(daemon) = ctx.daemon_of()? {
        return Ok(find(&daemon, rt, autostart)?.map(|r| r.for_project(&ctx.project)));
    }
    let found = rt.block_on(discovery::inspect(&ctx.project))?;
    match found.resident {
        Resident::Running(state) => return Remote::of(&state).map(Some),
        Resident::Stopped => {
            for file in discovery::clean_stale(&ctx.project)? {
                tracing::info!("removed stale {}: {}", file.path.display(), file.reason);
            }
        }
        Resident::Foreign { root, pid } => {
            anyhow::bail!("{}", discovery::shared_state_dir(&ctx.project, &root, pid))
        }
        // One that is stopped will not write runtime.json: answering from the disk
        // instead would hide it.
        Resident::Starting {
            pid,
            runtime,
            stopped: true,
        } => anyhow::bail!(
            "pid {} holds the lifetime lock of {} but is stopped, and runtime.json is \
             {runtime}. `doc-serve stop` stops it (with SIGCONT), `kill -CONT PID` wakes it",
            pid.map_or("unknown".into(), |p| p.to_string()),
            ctx.project.root.display()
        ),
        // The lock is held by a resident starting up (or one dying: its last threads
        // still hold the lock): one that may be started is waited for.
        Resident::Starting { .. } if autostart => {
            let (state, _) = lifecycle::ensure_running(ctx, None)?;
            return Remote::of(&state).map(Some);
        }
        // Held by a resident starting up: standalone is safe meanwhile.
        Resident::Starting { .. } => return Ok(None),
        // One that took the connection and never answered (stopped, hung, swamped):
        // answering from the disk instead would hide it. Only a refused connection or
        // a missing socket means "next way" (a resident shutting down has closed its
        // listeners before removing runtime.json).
        Resident::Unresponsive { state, why } => {
            let remote = Remote::of(&state)?;
            let connect = rt.block_on(async {
                tokio::time::timeout(discovery::HEALTH_TIMEOUT, Conn::open(&remote.endpoint)).await
            });
            if let Ok(Err(e)) = connect
                && e.is_unreachable()
            {
                tracing::info!(
                    "{} is unreachable ({e}); running standalone",
                    remote.base_url
                );
                return Ok(None);
            }
            let (who, shared) = if ctx.project.is_shared_daemon() {
                ("the shared daemon".to_owned(), " --shared")
            } else {
                (
                    format!("the resident of {}", ctx.project.root.display()),
                    "",
                )
            };
            anyhow::bail!(
                "{who} (pid {}) holds the lifetime lock but does not answer: {why}. \
                 `doc-serve status{shared}` shows it; `doc-serve stop{shared}` stops it (with \
                 SIGCONT if it was stopped), `stop{shared} --force` kills it",
                state.pid
            )
        }
    }
    if let Some(instance) = supervisor::serving(&ctx.env, &ctx.project) {
        if instance.socket_path.exists() {
            return Ok(Some(Remote::new(
                Endpoint::Unix(instance.socket_path.clone()),
                None,
                format!("unix:{}", instance.socket_path.display()),
            )));
        }
        tracing::info!(
            "instance {:?} is installed but its socket {} is missing",
            instance.slug,
            instance.socket_path.display()
        );
    }
    if !autostart {
        return Ok(None);
    }
    let (state, _) = lifecycle::ensure_running(ctx, None)?;
    Remote::of(&state).map(Some)
}
