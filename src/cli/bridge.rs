//! `doc-serve mcp`: an MCP server on stdio that bridges to the project's resident.
//!
//! The resident is found the way every client finds it ([`reach`], always allowed to
//! start one), once at start-up and again whenever it stops answering, so a resident's
//! idle exit, restart or crash costs the next tool call a restart, not an error. When
//! no resident can be had, this process answers from the index itself. Stdin is read
//! through [`stdio::filter`], which answers malformed lines itself and, when stdin
//! ends, holds the session open until the requests still running are answered.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use hyper::Method;
use rmcp::ServiceExt;
use rmcp::transport::async_rw::AsyncRwTransport;
use serde_json::{Value, json};
use tokio::sync::Mutex;

use super::reach::{self, CallError, Remote};
use super::{Context, client_runtime};
use crate::api::{self, ApiError, FIRST_INDEX_WAIT, Standalone};
use crate::config::Config;
use crate::error::exit;
use crate::ingest::sync::Indexer;
use crate::mcp::{Backend, Op, Tools, stdio};

/// A tool call may wait this long for the resident (a full reindex takes a while).
const CALL_TIMEOUT: Duration = Duration::from_secs(600);

pub fn run(ctx: Context) -> anyhow::Result<i32> {
    let config = ctx.config(&crate::config::Flags::default())?;
    let max_line = config.max_body_bytes;
    // The longest a tool call usually takes: starting a resident, then a search's wait
    // for its first index; requests still running when stdin ends get that long.
    let drain = config.start_timeout + Duration::from_secs(FIRST_INDEX_WAIT + 5);
    ctx.project.create_state_dir()?;
    let bridge = Arc::new(Bridge {
        ctx: Arc::new(ctx),
        config,
        remote: Mutex::new(None),
        retry_at: Mutex::new(None),
        standalone: Mutex::new(None),
    });
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    rt.block_on(async {
        // Find (or start) the resident while the client initializes.
        let warm = bridge.clone();
        tokio::spawn(async move { warm.remote().await });
        // Lines are checked before rmcp reads them (see `mcp::stdio`); rmcp gets only
        // lines within the cap, so its own cap is lifted.
        let (read, write, pump) =
            stdio::filter(tokio::io::stdin(), tokio::io::stdout(), max_line, drain).split();
        let transport = AsyncRwTransport::new_server(read, write).with_max_line_length(usize::MAX);
        let session = async {
            let server = Tools(bridge)
                .serve(transport)
                .await
                .context("MCP initialization over stdio failed")?;
            let reason = server.waiting().await.context("the MCP session failed")?;
            tracing::debug!("MCP session over: {reason:?}");
            Ok::<_, anyhow::Error>(())
        };
        let outcome = session.await;
        // Answers to the last lines (a refusal, say) still reach the client.
        pump.finish(Duration::from_secs(2)).await;
        outcome
    })?;
    rt.shutdown_timeout(Duration::from_secs(1));
    Ok(exit::OK)
}

struct Bridge {
    ctx: Arc<Context>,
    config: Config,
    remote: Mutex<Option<Remote>>,
    /// After a failed start, when to try again (not at every tool call).
    retry_at: Mutex<Option<Instant>>,
    standalone: Mutex<Option<Standalone>>,
}

/// How long the bridge answers standalone after failing to start a resident.
const RETRY_START_AFTER: Duration = Duration::from_secs(30);

impl Bridge {
    /// The resident to ask: the one found before, or one found (or started) now.
    /// `Ok(None)`: none can be had, answer standalone.
    async fn remote(&self) -> Result<Option<Remote>, ApiError> {
        let mut cached = self.remote.lock().await;
        if let Some(r) = cached.as_ref() {
            return Ok(Some(r.clone()));
        }
        let mut retry_at = self.retry_at.lock().await;
        if retry_at.is_some_and(|at| Instant::now() < at) {
            return Ok(None);
        }
        let ctx = self.ctx.clone();
        let found = tokio::task::spawn_blocking(move || {
            let rt = client_runtime()?;
            reach::find(&ctx, &rt, true)
        })
        .await
        .map_err(|e| ApiError::unavailable(e.to_string()))?;
        match found {
            Ok(r) => {
                if let Some(r) = &r {
                    tracing::info!("bridging to the resident at {}", r.base_url);
                }
                cached.clone_from(&r);
                Ok(r)
            }
            Err(e) => {
                tracing::warn!("no resident ({e:#}); answering standalone");
                *retry_at = Some(Instant::now() + RETRY_START_AFTER);
                Ok(None)
            }
        }
    }

    async fn forget(&self, stale: &Remote) {
        let mut cached = self.remote.lock().await;
        if cached
            .as_ref()
            .is_some_and(|r| r.base_url == stale.base_url)
        {
            *cached = None;
        }
    }

    /// Answers in this process, from the index on disk.
    async fn standalone(&self, op: Op) -> Result<Value, ApiError> {
        let site = {
            let mut slot = self.standalone.lock().await;
            match slot.as_ref() {
                Some(site) => site.clone(),
                None => {
                    let (ctx, config) = (self.ctx.clone(), self.config.clone());
                    let opened = tokio::task::spawn_blocking(move || open_index(&ctx, &config))
                        .await
                        .map_err(|e| ApiError::unavailable(e.to_string()))?
                        .map_err(|e| {
                            ApiError::unavailable(format!("cannot open the index: {e}"))
                        })?;
                    let max_per_file = self.config.max_hits_per_file;
                    slot.insert(
                        Standalone::new(Arc::new(opened), max_per_file).with_model(&self.config),
                    )
                    .clone()
                }
            }
        };
        match op {
            Op::Search(req) => api::to_value(api::search(&site, &req).await?),
            Op::Read(want) => api::to_value(api::read(&site, want).await?),
            Op::Status => api::to_value(api::Status {
                who: json!({
                    "mode": "standalone",
                    "project_root": self.ctx.project.root,
                    "message": "no resident could be started: answering from the index on disk",
                }),
                index: api::Site::freshness(&site),
                settings: None,
            }),
            Op::Reindex { full } => api::to_value(api::reindex(&site, full).await?),
        }
    }
}

/// The index, built first if it never was (as a standalone `doc-serve query` does).
fn open_index(ctx: &Context, config: &Config) -> anyhow::Result<Indexer> {
    let indexer = super::open_indexer(ctx, config)?;
    if indexer.engine.counts()?.0 == 0 {
        indexer.reconcile(false, &mut |_| {})?;
    }
    Ok(indexer)
}

/// The resident's HTTP request for an operation: method, path and query, JSON body.
fn request(op: &Op) -> (Method, String, Option<Value>) {
    match op {
        // In a body: a query of any length reaches the resident, which answers one
        // over its limit with its own message (a URI has a limit of its own).
        Op::Search(req) => (
            Method::POST,
            "/query".into(),
            Some(json!({
                "q": req.q,
                "limit": req.limit,
                "offset": req.offset,
                "path_prefix": req.path_prefix,
                "wait": req.wait,
                "max_tokens": req.max_tokens,
            })),
        ),
        Op::Read(want) => (Method::GET, super::search::documents_path(want), None),
        Op::Status => (Method::GET, "/status".into(), None),
        Op::Reindex { full } => (Method::POST, "/index".into(), Some(json!({"full": full}))),
    }
}

impl Backend for Bridge {
    async fn run(&self, op: Op) -> Result<Value, ApiError> {
        let (method, path, body) = request(&op);
        // Twice: a resident that went away is found (or started) again once.
        let mut failed = String::new();
        for _ in 0..2 {
            let Some(remote) = self.remote().await? else {
                return self.standalone(op).await;
            };
            match remote
                .call(method.clone(), &path, body.as_ref(), CALL_TIMEOUT)
                .await
            {
                Ok(v) => return Ok(v),
                Err(CallError::Api {
                    status,
                    code,
                    message,
                }) => return Err(ApiError::relayed(status, code, message)),
                Err(CallError::Client(e)) => {
                    failed = format!("the resident at {} failed: {e}", remote.base_url);
                    tracing::info!("{failed}");
                    self.forget(&remote).await;
                }
            }
        }
        Err(ApiError::unavailable(failed))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ingest::read::{Scope, Want};

    #[test]
    fn requests_encode_their_arguments() {
        let op = Op::Read(Want {
            path: "docs/a b?.md".into(),
            scope: Scope::Heading("Install > Linux".into()),
            max_tokens: None,
        });
        assert_eq!(
            request(&op).1,
            "/documents/docs/a%20b%3F%2Emd?heading=Install+%3E+Linux"
        );
    }
}
