//! A resident to send requests to, over its socket or TCP, on a kept connection; on
//! the shared daemon, under the project's prefix (registering the project first when
//! the daemon does not know it). `reach` finds one.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Mutex;

use hyper::{Method, StatusCode};
use serde_json::Value;

use crate::client::{ClientError, Conn, Endpoint};
use crate::discovery::runtime::RuntimeState;
use crate::project::Project;

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

    pub(super) fn new(endpoint: Endpoint, token: Option<String>, base_url: String) -> Remote {
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
