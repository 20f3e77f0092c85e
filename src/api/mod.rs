//! The operations doc-serve offers over one project, whatever asks: HTTP routes, MCP
//! tools (in the resident or in the bridge's standalone fallback) and the CLI's
//! standalone path all decode their input into these requests, call these functions,
//! and encode these replies. The transports add nothing but their framing, so every
//! way in gives the same structured answer.
//!
//! A project is a [`Site`]: the resident's (an indexer thread keeps it fresh, see
//! [`crate::server::state::Site`]) or a [`Standalone`] one (the index on disk, read in
//! this process).

mod error;
mod standalone;
pub mod vectors;

use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};

pub use error::{ApiError, quoted};
pub use standalone::Standalone;

use crate::engine::search::{Mode, Request, Response};
use crate::engine::{Engine, near};
use crate::ingest::read::{self, Part, Rendered, Want};
use crate::ingest::sync::Summary;
use crate::ingest::walk::Sources;
use vectors::{Vectors, no_model};

/// How long a search waits for the start-up reconciliation by default (see
/// [`Site::should_wait`]), and at most (`wait`).
pub const FIRST_INDEX_WAIT: u64 = 20;
pub const MAX_FIRST_INDEX_WAIT: u64 = 120;

/// Hits a search returns when it does not say.
pub const DEFAULT_LIMIT: usize = 10;

/// One project, as the operations see it.
pub trait Site: Send + Sync + 'static {
    fn engine(&self) -> &Arc<Engine>;
    /// The sources under the settings in force (they may change while running).
    fn sources(&self) -> Arc<Sources>;
    /// The cap on hits from one file (`max_hits_per_file`).
    fn max_per_file(&self) -> usize;
    /// How fresh the index is.
    fn freshness(&self) -> Freshness;
    /// Whether a search that found nothing (`found_nothing`), or anything, should wait
    /// for the index being built before answering.
    fn should_wait(&self, _found_nothing: bool) -> bool {
        false
    }
    /// Waits up to `bound` for the index being built.
    fn wait_started(&self, _bound: Duration) -> impl Future<Output = ()> + Send {
        async {}
    }
    /// Search by meaning, when the project has an embedding model.
    fn vectors(&self) -> Option<Arc<Vectors>> {
        None
    }
    /// Brings the index in line with the files now (all of them again when `full`).
    fn reindex(&self, full: bool) -> impl Future<Output = Result<Summary, ApiError>> + Send;
}

/// A search, as every transport asks it (`/query`'s parameters or body, `search_docs`'
/// arguments, `doc-serve query`'s flags).
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Search {
    pub q: String,
    pub limit: Option<usize>,
    /// Hits to skip: the next page starts at the `next_offset` of this one.
    pub offset: Option<usize>,
    pub path_prefix: Option<String>,
    /// Seconds to wait for an index still being built (see [`FIRST_INDEX_WAIT`]).
    pub wait: Option<u64>,
    /// The most the answer may take, in estimated tokens (see [`crate::tokens`]).
    pub max_tokens: Option<usize>,
    /// Lexical, semantic or hybrid; by default hybrid once every section is embedded,
    /// lexical until then.
    pub mode: Option<Mode>,
    /// Each hit says where it ranked by words and by meaning.
    pub explain: Option<bool>,
}

/// The answer to a [`Search`]: the hits, and the index's freshness beside them.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SearchReply {
    #[serde(flatten)]
    pub response: Response,
    pub index: Freshness,
}

/// How fresh a project's index is: the footer of every answer and the index part of
/// `/status`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Freshness {
    pub files: u64,
    pub chunks: u64,
    /// The index is being brought up to date: what is committed is not all there is.
    pub indexing: bool,
    /// Files done and to do, while indexing.
    pub progress: Option<[usize; 2]>,
    /// A change seen but not yet indexed (debouncing, or waiting for the lock).
    pub pending_changes: bool,
    /// How many files the pending change names (0 with none pending); `None` when it
    /// needs a walk of the tree to tell (events lost, the settings changed, a failed
    /// job to finish).
    pub pending_files: Option<usize>,
    pub watcher: String,
    pub last_commit: Option<String>,
    pub last_error: Option<String>,
    /// Search by meaning: the model, and how many sections are embedded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub embedding: Option<vectors::Embedding>,
}

impl Freshness {
    /// Freshness as far as the index on disk tells it, with no indexer watching.
    pub fn of_engine(engine: &Engine, watcher: &str) -> Freshness {
        let (files, chunks) = engine.counts().unwrap_or_default();
        Freshness {
            files,
            chunks,
            watcher: watcher.to_owned(),
            last_commit: engine.last_commit_at(),
            ..Freshness::default()
        }
    }
}

/// What `/status` and `index_status` answer of a project: who answers (`who`: the
/// resident, the shared daemon's entry for the project, or, with neither, the index on
/// disk), the index's freshness, and the settings file's state where a server reloads
/// it.
#[derive(Debug, Clone, Serialize)]
pub struct Status<Who> {
    #[serde(flatten)]
    pub who: Who,
    pub index: Freshness,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub settings: Option<SettingsState>,
}

/// What /status says of the settings file.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SettingsState {
    /// Why the file's current contents are not in force (the last good ones are).
    pub error: Option<String>,
    /// Keys changed in the file that take effect at the next start.
    pub restart_needed: Vec<String>,
    pub last_reload: Option<String>,
}

/// The answer to a reindex: what it did, and the index after it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ReindexReply {
    pub summary: Summary,
    pub index: Freshness,
}

/// Runs `req` over `site`. A resident still building its first index (just started or
/// activated, or a project the shared daemon just opened) would answer "nothing", or
/// part of the answer: the search waits for it, within `wait` seconds. Past that, the
/// answer is what is committed, and its footer says `"indexing": true`.
pub async fn search<S: Site>(site: &S, req: &Search) -> Result<SearchReply, ApiError> {
    let vectors = site.vectors();
    let mode = match (req.mode, &vectors) {
        (Some(Mode::Lexical), _) => Mode::Lexical,
        (Some(_), None) => return Err(no_model("no embedding_model is set")),
        (Some(mode), Some(v)) => {
            // The first use loads the model: off the runtime's worker (once loaded, no
            // hand-off).
            let unavailable = if v.is_loaded() {
                v.unavailable()
            } else {
                let v = v.clone();
                in_place(move || v.unavailable()).await?
            };
            match unavailable {
                Some(e) => return Err(e),
                None => mode,
            }
        }
        (None, Some(v)) if v.complete() => Mode::Hybrid,
        (None, _) => Mode::Lexical,
    };
    let engine_req = Request {
        mode,
        explain: req.explain.unwrap_or(false),
        q: req.q.clone(),
        limit: at_least_one("limit", req.limit)?.unwrap_or(DEFAULT_LIMIT),
        offset: req.offset.unwrap_or(0),
        path_prefix: req.path_prefix.clone(),
        max_per_file: site.max_per_file(),
        max_tokens: at_least_one("max_tokens", req.max_tokens)?
            .map(|t| t.saturating_sub(SEARCH_OVERHEAD_TOKENS).max(1)),
    };
    let wait = req
        .wait
        .unwrap_or(FIRST_INDEX_WAIT)
        .min(MAX_FIRST_INDEX_WAIT);
    let engine = site.engine().clone();
    // The query's vector, for a search by meaning: a few milliseconds of the model's
    // time on this thread, or none for a query asked before. A query that means nothing
    // (only punctuation and operators) has none, and nothing is near it.
    let near = match (mode, vectors) {
        (Mode::Lexical, _) | (_, None) => None,
        (_, Some(v)) => {
            let vector = match near::meaning_of(&req.q)? {
                Some(text) => {
                    let v = v.clone();
                    Some(in_place(move || v.query_vector(&text)).await??)
                }
                None => None,
            };
            Some((v, vector))
        }
    };
    let quick = near.is_none() && engine.is_quick(&engine_req);
    let run = |req: Request| {
        let engine = engine.clone();
        let near = near.clone();
        move || match near {
            Some((v, vector)) => engine.search_near(&req, &|n, keep| match &vector {
                Some(vector) => v.nearest(vector, n, keep),
                None => Vec::new(),
            }),
            None => engine.search(&req),
        }
    };
    let mut resp = if quick {
        caught(run(engine_req.clone()))?
    } else {
        in_place(run(engine_req.clone())).await?
    };
    let found_nothing = resp.as_ref().is_ok_and(|r| r.hits.is_empty());
    if wait > 0 && site.should_wait(found_nothing) {
        site.wait_started(Duration::from_secs(wait)).await;
        resp = in_place(run(engine_req)).await?;
    }
    Ok(SearchReply {
        response: resp?,
        index: site.freshness(),
    })
}

/// Estimated tokens of an answer's parts other than its hits (the query, counts, the
/// freshness footer): what a search's budget keeps for them.
const SEARCH_OVERHEAD_TOKENS: usize = 80;

/// `value` of the parameter `name`, refused when 0: limits, budgets and line numbers
/// count from 1.
pub fn at_least_one(name: &str, value: Option<usize>) -> Result<Option<usize>, ApiError> {
    match value {
        Some(0) => Err(ApiError::bad(
            "bad_parameter",
            format!("{name} must be a whole number of at least 1, not 0"),
        )),
        n => Ok(n),
    }
}

/// Reads a document of `site`, or the part of it `want` names (see
/// [`crate::ingest::read::read`]).
pub async fn read<S: Site>(site: &S, want: Want) -> Result<Part, ApiError> {
    let sources = site.sources();
    Ok(blocking(move || read::read(&sources, &want)).await??)
}

/// Renders a document of `site` for a person to read: whole, or for a large one the
/// section of `section` (see [`crate::ingest::read::render`]).
pub async fn render<S: Site>(
    site: &S,
    path: String,
    section: Option<String>,
) -> Result<Rendered, ApiError> {
    let sources = site.sources();
    Ok(blocking(move || read::render(&sources, &path, section.as_deref())).await??)
}

/// Brings `site`'s index in line with the files, and answers what that did.
pub async fn reindex<S: Site>(site: &S, full: bool) -> Result<ReindexReply, ApiError> {
    let summary = site.reindex(full).await.map_err(|e| {
        if e.code == "index_error" && !site.sources().root().is_dir() {
            // Not a fault of the index: the root may come back (a remount, a rename
            // undone), and the shared daemon names it the same way.
            ApiError::new(
                hyper::StatusCode::SERVICE_UNAVAILABLE,
                "project_root_missing",
                e.message,
            )
        } else {
            e
        }
    })?;
    Ok(ReindexReply {
        summary,
        index: site.freshness(),
    })
}

/// A reply as JSON, for a transport that sends values (MCP): the value of the JSON
/// text HTTP sends. Through its text, not `serde_json::to_value`, which widens an `f32`
/// score to the nearest `f64` (`6.3410263` would become `6.341026306152344`).
pub fn to_value(reply: impl Serialize) -> Result<serde_json::Value, ApiError> {
    let text = serde_json::to_vec(&reply).map_err(ApiError::internal)?;
    serde_json::from_slice(&text).map_err(ApiError::internal)
}

/// Runs index work off the async runtime.
pub async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> T + Send + 'static,
) -> Result<T, ApiError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(ApiError::internal)
}

/// Runs index work off the async runtime without the two thread wake-ups of
/// [`blocking`] (about 50 µs a query): on a multi-threaded runtime, on this thread, the
/// worker's other tasks handed to another thread (`block_in_place`; that hand-off costs
/// about as much again, so quick searches skip it and run on the worker, see
/// [`crate::engine::Engine::is_quick`]). A current-thread runtime cannot do that and
/// uses [`blocking`]. A panic is an error reply, as with [`blocking`].
pub async fn in_place<T: Send + 'static>(
    f: impl FnOnce() -> T + Send + 'static,
) -> Result<T, ApiError> {
    use tokio::runtime::{Handle, RuntimeFlavor};
    if Handle::current().runtime_flavor() != RuntimeFlavor::MultiThread {
        return blocking(f).await;
    }
    tokio::task::block_in_place(|| caught(f))
}

/// Runs `f` here; a panic is an error reply.
fn caught<T>(f: impl FnOnce() -> T) -> Result<T, ApiError> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(f))
        .map_err(|_| ApiError::internal("the search panicked"))
}
