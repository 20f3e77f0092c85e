//! MCP: the tools an AI assistant uses to search a project's docs.
//!
//! The same four tools are served two ways: over stdio by `doc-serve mcp`, a thin
//! bridge to the project's resident (so N assistants cost one resident and one index),
//! and over Streamable HTTP at `/mcp` by the resident itself. Each tool is one request
//! to the resident's HTTP API, so answers are the same whichever way they come.
//! A bridge whose resident went away (idle exit, restart, crash) finds or starts one
//! again within the same tool call; with no resident to be had it answers from the
//! index itself. Every incoming message is checked first ([`input`]), so a malformed
//! one gets a JSON-RPC error instead of silence; [`stdio`] is the bridge's framing.

pub mod input;
mod json;
pub mod stdio;

use std::sync::Arc;

use rmcp::model::{
    CallToolRequestParams, CallToolResponse, CallToolResult, ContentBlock, Implementation,
    JsonObject, ListToolsResult, PaginatedRequestParams, ServerCapabilities, ServerConfig, Tool,
    ToolAnnotations,
};
use rmcp::model::{ProgressNotificationParam, ProgressToken};
use rmcp::service::{Peer, RequestContext};
use rmcp::{ErrorData, RoleServer, ServerHandler};
use serde_json::{Value, json};

use crate::api::{ApiError, Search, quoted};
use crate::ingest::read::{Scope, Want};

const INSTRUCTIONS: &str = "\
Search this project's documentation (Markdown, reStructuredText, AsciiDoc, text). \
Start with search_docs: it returns ranked sections with their id, file path, line \
range, heading trail and a snippet. Then read_doc a hit's id to read the whole section \
(its answer names the sections before and after, to read on). The index follows file edits by itself; \
index_status says how fresh it is, and reindex is only needed after a bulk change.";

/// What a tool asks of the API.
#[derive(Debug, Clone, PartialEq)]
pub enum Op {
    Search(Search),
    Read(Want),
    Status,
    Reindex { full: bool },
}

/// Answers operations: the resident's routes in-process, or a bridge to them.
pub trait Backend: Send + Sync + 'static {
    fn run(&self, op: Op) -> impl Future<Output = Result<Value, ApiError>> + Send;
}

/// The MCP server over a [`Backend`].
pub struct Tools<B>(pub Arc<B>);

impl<B> Clone for Tools<B> {
    fn clone(&self) -> Self {
        Tools(self.0.clone())
    }
}

fn schema(v: Value) -> Arc<JsonObject> {
    match v {
        Value::Object(m) => Arc::new(m),
        _ => Arc::new(JsonObject::new()),
    }
}

/// An output schema, declared as JSON Schema draft-07: it uses nothing newer, and a
/// client that checks every answer against it (the MCP Python SDK does, building its
/// checker each time) checks one under draft 2020-12, the default, about five times
/// slower (8.7 against 2.1 ms an answer here).
fn output_schema(mut v: Value) -> Arc<JsonObject> {
    if let Value::Object(m) = &mut v {
        m.insert(
            "$schema".into(),
            "http://json-schema.org/draft-07/schema#".into(),
        );
    }
    schema(v)
}

/// The freshness footer of every answer (see [`crate::api::Freshness`]).
fn freshness_schema() -> Value {
    json!({
        "type": "object",
        "description": "How fresh the index is",
        "properties": {
            "files": {"type": "integer"},
            "chunks": {"type": "integer"},
            "indexing": {"type": "boolean", "description": "Being brought up to date: answers may be incomplete"},
            "progress": {"type": ["array", "null"], "items": {"type": "integer"}, "description": "[files done, files to do] while indexing"},
            "pending_changes": {"type": "boolean"},
            "watcher": {"type": "string"},
            "last_commit": {"type": ["string", "null"]},
            "last_error": {"type": ["string", "null"]},
            "embedding": {
                "type": "object",
                "description": "Search by meaning: the model, and [sections embedded, sections there are]",
                "properties": {
                    "model": {"type": "string"},
                    "embedded": {"type": "array", "items": {"type": "integer"}},
                    "embedding": {"type": "boolean"},
                    "error": {"type": ["string", "null"]}
                }
            }
        },
        "required": ["files", "chunks", "indexing", "pending_changes", "last_commit"]
    })
}

/// What `search_docs` answers as structured content: `/query`'s answer.
fn search_output() -> Value {
    json!({
        "type": "object",
        "properties": {
            "query": {"type": "string"},
            "mode": {"type": "string", "enum": ["lexical", "semantic", "hybrid"], "description": "How the hits were ranked"},
            "hits": {"type": "array", "items": {
                "type": "object",
                "properties": {
                    "id": {"type": "string", "description": "The section's id (path#anchor), for read_doc"},
                    "path": {"type": "string", "description": "Relative to the project root"},
                    "title": {"type": "string"},
                    "headings": {"type": "array", "items": {"type": "string"}, "description": "Heading trail, outermost first"},
                    "line_start": {"type": "integer", "minimum": 1},
                    "line_end": {"type": "integer", "minimum": 1},
                    "score": {"type": "number"},
                    "snippet": {"type": "string"},
                    "highlights": {"type": "array", "items": {"type": "array", "items": {"type": "integer"}}, "description": "[start, end) character offsets of matched words in snippet"},
                    "ranks": {"type": "object", "description": "With explain: the hit's rank by words and by meaning (null: not found that way)", "properties": {
                        "lexical": {"type": ["integer", "null"]},
                        "vector": {"type": ["integer", "null"]}
                    }}
                },
                "required": ["id", "path", "title", "headings", "line_start", "line_end", "score", "snippet", "highlights"]
            }},
            "total_matches": {"type": "integer", "description": "Sections matching, before the per-file cap and the limit"},
            "offset": {"type": "integer"},
            "next_offset": {"type": ["integer", "null"], "description": "Where the next page starts (offset), or null at the end"},
            "took_ms": {"type": "number"},
            "truncated": {"type": "boolean", "description": "Hits were left out (or the only hit's snippet cut) to fit max_tokens"},
            "index": freshness_schema()
        },
        "required": ["query", "hits", "total_matches", "offset", "next_offset", "truncated", "index"]
    })
}

/// A section named beside a read, to read next.
fn section_ref_schema() -> Value {
    json!({
        "type": ["object", "null"],
        "properties": {
            "id": {"type": "string"},
            "headings": {"type": "array", "items": {"type": "string"}},
            "line_start": {"type": "integer"},
            "line_end": {"type": "integer"}
        },
        "required": ["id", "headings", "line_start", "line_end"]
    })
}

/// What `read_doc` answers as structured content: `/documents`' answer.
fn read_output() -> Value {
    json!({
        "type": "object",
        "properties": {
            "path": {"type": "string"},
            "id": {"type": "string", "description": "The section holding the first line returned"},
            "line_start": {"type": "integer"},
            "line_end": {"type": "integer"},
            "total_lines": {"type": "integer"},
            "headings": {"type": "array", "items": {"type": "string"}},
            "text": {"type": "string"},
            "truncated": {"type": "boolean", "description": "The text was cut to fit max_tokens"},
            "next_line": {"type": ["integer", "null"], "description": "The first line left out, to read on from"},
            "previous": section_ref_schema(),
            "next": section_ref_schema()
        },
        "required": ["path", "id", "line_start", "line_end", "total_lines", "headings", "text", "truncated", "next_line", "previous", "next"]
    })
}

/// What `index_status` answers: the resident's `/status` (the shared daemon's
/// `/projects/{id}/status`; answered without either, `"mode": "standalone"`), each with
/// the index's freshness.
fn status_output() -> Value {
    json!({
        "type": "object",
        "properties": {
            "mode": {"type": "string", "description": "project, shared or standalone"},
            "index": freshness_schema()
        },
        "required": ["index"]
    })
}

/// What `reindex` answers: `POST /index`'s answer.
fn reindex_output() -> Value {
    json!({
        "type": "object",
        "properties": {
            "summary": {
                "type": "object",
                "properties": {
                    "full": {"type": "boolean"},
                    "scanned": {"type": "integer"},
                    "added": {"type": "integer"},
                    "updated": {"type": "integer"},
                    "removed": {"type": "integer"},
                    "unchanged": {"type": "integer"},
                    "chunks": {"type": "integer"},
                    "skipped": {"type": "array", "items": {"type": "object"}},
                    "took_ms": {"type": "number"}
                },
                "required": ["scanned", "added", "updated", "removed", "unchanged", "skipped"]
            },
            "index": freshness_schema()
        },
        "required": ["summary", "index"]
    })
}

/// The default budget of `search_docs` and `read_doc`, and the most one may ask: an
/// answer carries its text twice (structured, and as text for clients that read only
/// that), so even the largest stays well below the 25,000 tokens clients accept.
pub const DEFAULT_MAX_TOKENS: usize = 5_000;
pub const MAX_MAX_TOKENS: usize = 10_000;

/// The tools, with descriptions written for a model choosing and calling them.
pub fn tools() -> &'static [Tool] {
    static TOOLS: std::sync::LazyLock<Vec<Tool>> = std::sync::LazyLock::new(build_tools);
    &TOOLS
}

fn build_tools() -> Vec<Tool> {
    let read_only = ToolAnnotations::new()
        .read_only(true)
        .destructive(false)
        .idempotent(true)
        .open_world(false);
    vec![
        Tool::new(
            "search_docs",
            "Full-text search over this project's documentation. Returns the best-matching \
             sections, best first: file path, line range, heading trail, score and a \
             snippet. Plain words are ranked (sections containing all of them first); \
             \"quoted phrases\" must appear; -word excludes; path:docs/api limits to a \
             directory. Use specific terms, identifiers (snake_case, CamelCase, --flags) \
             work whole or by their parts. With an embedding model, questions in your own \
             words find sections by meaning too (mode hybrid, the default once the docs \
             are embedded). Follow up with read_doc to read a section.",
            schema(json!({
                "type": "object",
                "properties": {
                    "query": {"type": "string", "description": "What to look for, e.g. 'configure retry timeout' or '\"socket activation\" -launchd'"},
                    "limit": {"type": "integer", "minimum": 1, "maximum": 50, "default": 8, "description": "Most sections to return"},
                    "offset": {"type": "integer", "minimum": 0, "default": 0, "description": "Sections to skip: the next page starts at the next_offset of the last answer"},
                    "path_prefix": {"type": "string", "description": "Only files under this path, relative to the project root, e.g. 'docs/guide/'"},
                    "max_tokens": {"type": "integer", "minimum": 1, "maximum": MAX_MAX_TOKENS, "default": DEFAULT_MAX_TOKENS, "description": "Fit the answer in about this many tokens: the best hits that fit; truncated says some were left out"},
                    "mode": {"type": "string", "enum": ["lexical", "semantic", "hybrid"], "description": "Rank by words, by meaning, or both fused; default hybrid once every section is embedded, else lexical"},
                    "explain": {"type": "boolean", "default": false, "description": "Each hit says its rank by words and by meaning"}
                },
                "required": ["query"],
                "additionalProperties": false
            })),
        )
        .with_raw_output_schema(output_schema(search_output()))
        .with_title("Search the project's docs")
        .with_annotations(read_only.clone()),
        Tool::new(
            "read_doc",
            "Read a documentation section of this project by its id (from search_docs \
             hits, or the previous/next of an earlier read), or a file, a line range of it \
             or the section under a heading (its subsections included). Paths are \
             relative to the project root, as search_docs returns them. The answer names \
             the sections before and after, and says when max_tokens cut it (read on \
             from next_line).",
            schema(json!({
                "type": "object",
                "properties": {
                    "id": {"type": "string", "description": "A section id as search_docs returns it, e.g. 'docs/guide/install.md#linux' (or its anchor, 'linux', with path)"},
                    "path": {"type": "string", "description": "File path relative to the project root, e.g. 'docs/guide/install.md'"},
                    "line_start": {"type": "integer", "minimum": 1, "description": "First line to return (1-based)"},
                    "line_end": {"type": "integer", "minimum": 1, "description": "Last line to return (inclusive)"},
                    "heading": {"type": "string", "description": "Return the section under this heading instead, e.g. 'Installation' or 'Install > Linux'"},
                    "max_tokens": {"type": "integer", "minimum": 1, "maximum": MAX_MAX_TOKENS, "default": DEFAULT_MAX_TOKENS, "description": "Cut the text after about this many tokens, on a line boundary"}
                },
                "additionalProperties": false
            })),
        )
        .with_raw_output_schema(output_schema(read_output()))
        .with_title("Read a doc file or section")
        .with_annotations(read_only),
        Tool::new(
            "index_status",
            "How fresh the search index is: documents and sections indexed, whether \
             indexing is in progress, pending file changes, the last commit. Rarely \
             needed: the index follows file edits by itself.",
            schema(json!({"type": "object", "properties": {}, "additionalProperties": false})),
        )
        .with_raw_output_schema(output_schema(status_output()))
        .with_title("Search index status")
        .with_annotations(
            ToolAnnotations::new()
                .read_only(true)
                .idempotent(true)
                .open_world(false),
        ),
        Tool::new(
            "reindex",
            "Bring the search index in line with the files on disk now (only changed \
             files are re-read; full=true re-reads everything). Only needed after a bulk \
             change made outside the editor, such as a branch switch; ordinary edits are \
             picked up within a second.",
            schema(json!({
                "type": "object",
                "properties": {
                    "full": {"type": "boolean", "default": false, "description": "Re-read and re-index every file"}
                },
                "additionalProperties": false
            })),
        )
        .with_raw_output_schema(output_schema(reindex_output()))
        .with_title("Update the search index")
        .with_annotations(
            ToolAnnotations::new()
                .read_only(false)
                .destructive(false)
                .idempotent(true)
                .open_world(false),
        ),
    ]
}

/// Longest `path` or `heading` of `read_doc`: a path longer than PATH_MAX (4096 on
/// Linux) names no file, and percent-encoded three times over, either still fits in
/// the URI of `/documents`.
const MAX_READ_ARG_BYTES: usize = 4096;

/// A tool call's arguments as an operation; `Err` is a message for the model.
pub fn parse_call(name: &str, args: &JsonObject) -> Result<Op, String> {
    let allowed: &[&str] = match name {
        "search_docs" => &[
            "query",
            "limit",
            "offset",
            "path_prefix",
            "max_tokens",
            "mode",
            "explain",
        ],
        "read_doc" => &[
            "id",
            "path",
            "line_start",
            "line_end",
            "heading",
            "max_tokens",
        ],
        "index_status" => &[],
        "reindex" => &["full"],
        _ => return Err(format!("unknown tool {}", quoted(name))),
    };
    if let Some(k) = args.keys().find(|k| !allowed.contains(&k.as_str())) {
        return Err(if allowed.is_empty() {
            format!("{name} takes no arguments, not {}", quoted(k))
        } else {
            format!(
                "{name} has no argument {}; its arguments: {}",
                quoted(k),
                allowed.join(", ")
            )
        });
    }
    let text = |k: &str, required: bool| -> Result<Option<String>, String> {
        match args.get(k) {
            None | Some(Value::Null) if !required => Ok(None),
            // A path, id or heading goes into a URI, which has a limit: a longer one is
            // refused here with a message rather than by the resident's HTTP parser.
            Some(Value::String(s)) if name == "read_doc" && s.len() > MAX_READ_ARG_BYTES => {
                Err(format!(
                    "{k} is {} bytes; the limit is {MAX_READ_ARG_BYTES}",
                    s.len()
                ))
            }
            Some(Value::String(s)) if !s.trim().is_empty() => Ok(Some(s.clone())),
            Some(Value::String(_)) | None | Some(Value::Null) => {
                Err(format!("{k} is required and must not be empty"))
            }
            Some(other) => Err(format!("{k} must be a string, not {}", shown(other))),
        }
    };
    // A whole number, at least `least`.
    let counted = |k: &str, least: u64| -> Result<Option<usize>, String> {
        match args.get(k) {
            None | Some(Value::Null) => Ok(None),
            Some(v) => v
                .as_u64()
                .filter(|n| *n >= least)
                .and_then(|n| usize::try_from(n).ok())
                .map(Some)
                .ok_or_else(|| match least {
                    0 => format!("{k} must be a whole number, not {}", shown(v)),
                    _ => format!(
                        "{k} must be a whole number of at least {least}, not {}",
                        shown(v)
                    ),
                }),
        }
    };
    let number = |k: &str| counted(k, 1);
    let whole = |k: &str| counted(k, 0);
    Ok(match name {
        "search_docs" => Op::Search(Search {
            q: text("query", true)?.unwrap_or_default(),
            limit: Some(number("limit")?.unwrap_or(8).min(50)),
            offset: whole("offset")?,
            path_prefix: text("path_prefix", false)?,
            max_tokens: Some(
                number("max_tokens")?
                    .unwrap_or(DEFAULT_MAX_TOKENS)
                    .min(MAX_MAX_TOKENS),
            ),
            mode: match args.get("mode") {
                None | Some(Value::Null) => None,
                Some(v) => Some(serde_json::from_value(v.clone()).map_err(|_| {
                    format!(
                        "mode must be \"lexical\", \"semantic\" or \"hybrid\", not {}",
                        shown(v)
                    )
                })?),
            },
            explain: match args.get("explain") {
                None | Some(Value::Null) => None,
                Some(Value::Bool(b)) => Some(*b),
                Some(v) => return Err(format!("explain must be true or false, not {}", shown(v))),
            },
            ..Search::default()
        }),
        "read_doc" => {
            let (start, end) = (number("line_start")?, number("line_end")?);
            let (heading, id) = (text("heading", false)?, text("id", false)?);
            let ranged = start.is_some() || end.is_some();
            let scope = match (id, heading) {
                (Some(_), Some(_)) => return Err("give either id or heading, not both".into()),
                (Some(_), None) | (None, Some(_)) if ranged => {
                    return Err("give either a line range or an id or a heading".into());
                }
                (Some(id), None) => Scope::Section(id),
                (None, Some(h)) => Scope::Heading(h),
                (None, None) => Scope::Lines { start, end },
            };
            // The path is in a whole id; an anchor alone needs it.
            let path = text("path", false)?;
            if path.is_none() && !matches!(&scope, Scope::Section(id) if id.contains('#')) {
                return Err(match scope {
                    Scope::Section(id) => format!(
                        "id {id:?} is an anchor alone: give the whole id as search_docs \
                         returns it (path#anchor), or path too"
                    ),
                    _ => "path (or id) is required".into(),
                });
            }
            Op::Read(Want {
                path: path.unwrap_or_default(),
                scope,
                max_tokens: Some(
                    number("max_tokens")?
                        .unwrap_or(DEFAULT_MAX_TOKENS)
                        .min(MAX_MAX_TOKENS),
                ),
            })
        }
        "index_status" => Op::Status,
        _ => Op::Reindex {
            full: match args.get("full") {
                None | Some(Value::Null) => false,
                Some(Value::Bool(b)) => *b,
                Some(v) => {
                    return Err(format!("full must be true or false, not {}", shown(v)));
                }
            },
        },
    })
}

/// A JSON value from a tool call as a message shows it: its JSON text, cut after 100
/// characters with "…".
fn shown(v: &Value) -> String {
    let text = v.to_string();
    match text.char_indices().nth(100) {
        Some((at, _)) => format!("{}…", &text[..at]),
        None => text,
    }
}

/// The answer as text for a model.
pub fn render(op: &Op, v: &Value) -> String {
    let s = |v: &Value| v.as_str().unwrap_or_default().to_owned();
    match op {
        Op::Search(Search { q, .. }) => {
            let hits = v["hits"].as_array().cloned().unwrap_or_default();
            let total = v["total_matches"].as_u64().unwrap_or_default();
            let offset = v["offset"].as_u64().unwrap_or_default();
            if hits.is_empty() && offset > 0 && total > 0 {
                return format!(
                    "No more sections for {q:?}: the {total} that match all come before \
                     offset {offset}."
                );
            }
            if hits.is_empty() {
                let building = if v["index"]["indexing"] == true {
                    " The index is still being built: try again shortly."
                } else {
                    ""
                };
                return format!(
                    "No sections match {q:?}. Try other words, fewer words, or no path \
                     prefix.{building}"
                );
            }
            let mut out = format!(
                "{} of {} matching sections for {q:?}:\n",
                hits.len(),
                v["total_matches"]
            );
            for (i, h) in hits.iter().enumerate() {
                let trail: Vec<String> = h["headings"]
                    .as_array()
                    .map(|a| a.iter().map(s).collect())
                    .unwrap_or_default();
                let trail = if trail.is_empty() {
                    s(&h["title"])
                } else {
                    trail.join(" > ")
                };
                let snippet = s(&h["snippet"])
                    .split_whitespace()
                    .collect::<Vec<_>>()
                    .join(" ");
                out.push_str(&format!(
                    "\n{}. {} (lines {}-{}) — {trail}\n   id: {}\n   {snippet}\n",
                    i + 1,
                    s(&h["path"]),
                    h["line_start"],
                    h["line_end"],
                    s(&h["id"]),
                ));
            }
            if v["truncated"] == true {
                out.push_str(
                    "\n(More sections matched than fit max_tokens: ask with a higher max_tokens \
                     or a narrower query.)\n",
                );
            }
            if v["index"]["indexing"] == true {
                out.push_str("\n(The index is still being built: results may be incomplete.)\n");
            }
            out
        }
        Op::Read(_) => {
            let mut head = format!(
                "{} lines {}-{} of {}",
                s(&v["path"]),
                v["line_start"],
                v["line_end"],
                v["total_lines"]
            );
            if let Some(h) = v["headings"].as_array().filter(|h| !h.is_empty()) {
                let trail: Vec<String> = h.iter().map(s).collect();
                head.push_str(&format!(" (section {})", trail.join(" > ")));
            }
            let mut out = format!("{head} [{}]:\n\n{}", s(&v["id"]), s(&v["text"]));
            if v["truncated"] == true {
                out.push_str(&format!(
                    "\n\n(Cut to fit max_tokens: read on from line_start {}.)",
                    v["next_line"]
                ));
            }
            for (k, label) in [("previous", "Previous"), ("next", "Next")] {
                if let Some(id) = v[k]["id"].as_str() {
                    out.push_str(&format!("\n{label} section: {id}"));
                }
            }
            out
        }
        Op::Status | Op::Reindex { .. } => {
            serde_json::to_string_pretty(v).unwrap_or_else(|_| v.to_string())
        }
    }
}

impl<B: Backend> ServerHandler for Tools<B> {
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(ServerCapabilities::builder().enable_tools().build())
            .with_server_info(Implementation::new("doc-serve", crate::VERSION))
            .with_instructions(INSTRUCTIONS)
    }

    async fn list_tools(
        &self,
        _request: Option<PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> Result<ListToolsResult, ErrorData> {
        Ok(ListToolsResult::with_all_items(tools().to_vec()))
    }

    fn get_tool(&self, name: &str) -> Option<Tool> {
        tools().iter().find(|t| t.name == name).cloned()
    }

    async fn call_tool(
        &self,
        request: CallToolRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, ErrorData> {
        if !tools().iter().any(|t| t.name == request.name) {
            return Err(ErrorData::invalid_params(
                format!("unknown tool {}", quoted(&request.name)),
                None,
            ));
        }
        let args = request.arguments.unwrap_or_default();
        let op = match parse_call(&request.name, &args) {
            Ok(op) => op,
            Err(message) => {
                let mut result = tool_error(message.clone());
                result.structured_content =
                    Some(json!({"code": "bad_parameter", "message": message}));
                return Ok(result.into());
            }
        };
        // A search of a resident still building its first index waits for it there
        // (`/query`'s rule, the same for every transport).
        let answer = match context.meta.get_progress_token() {
            Some(token) if matches!(op, Op::Reindex { .. }) => {
                self.with_progress(op.clone(), token, &context.peer).await
            }
            _ => self.0.run(op.clone()).await,
        };
        Ok(match answer {
            Ok(v) => {
                let mut result = CallToolResult::success(vec![ContentBlock::text(render(&op, &v))]);
                result.structured_content = Some(v);
                result.into()
            }
            Err(e) => {
                let mut result = tool_error(e.message.clone());
                result.structured_content = Some(json!({"code": e.code, "message": e.message}));
                result.into()
            }
        })
    }
}

/// How often a long tool call looks at the index's progress.
const PROGRESS_EVERY: std::time::Duration = std::time::Duration::from_millis(250);

impl<B: Backend> Tools<B> {
    /// Runs `op` (a reindex), sending the client a progress notification whenever the
    /// index's progress (`index.progress` of `index_status`) moves on.
    async fn with_progress(
        &self,
        op: Op,
        token: ProgressToken,
        peer: &Peer<RoleServer>,
    ) -> Result<Value, ApiError> {
        let mut run = std::pin::pin!(self.0.run(op));
        let mut sent = None;
        loop {
            // The status is asked while the operation goes on: polled together, not
            // one after the other (the bridge's operation may hold what a status
            // call waits for, such as the resident being started).
            let look = async {
                tokio::time::sleep(PROGRESS_EVERY).await;
                self.0.run(Op::Status).await
            };
            let status = tokio::select! {
                answer = &mut run => return answer,
                status = look => status,
            };
            let Ok(status) = status else {
                continue;
            };
            let Some([done, total]) = status["index"]["progress"]
                .as_array()
                .and_then(|p| Some([p.first()?.as_u64()?, p.get(1)?.as_u64()?]))
            else {
                continue;
            };
            // Progress only ever increases (the MCP rule); a reindex queued behind
            // another job sees that one's progress first, and starts again at 0.
            if sent.is_some_and(|s| done <= s) {
                continue;
            }
            sent = Some(done);
            let mut note = ProgressNotificationParam::new(token.clone(), done as f64);
            note.total = Some(total as f64);
            note.message = Some(format!("indexed {done} of {total} files"));
            if peer.notify_progress(note).await.is_err() {
                // The client is gone; the reindex still finishes.
                sent = Some(u64::MAX);
            }
        }
    }
}

fn tool_error(message: String) -> CallToolResult {
    CallToolResult::error(vec![ContentBlock::text(message)])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(v: Value) -> JsonObject {
        match v {
            Value::Object(m) => m,
            _ => unreachable!(),
        }
    }

    #[test]
    fn arguments_are_checked() {
        assert_eq!(
            parse_call("search_docs", &args(json!({"query": "tokio", "limit": 3}))),
            Ok(Op::Search(Search {
                q: "tokio".into(),
                limit: Some(3),
                max_tokens: Some(DEFAULT_MAX_TOKENS),
                ..Search::default()
            }))
        );
        for bad in [
            json!({}),
            json!({"query": ""}),
            json!({"query": 3}),
            json!({"query": "x", "limit": 0}),
            json!({"query": "x", "limit": "many"}),
            json!({"query": "x", "other": 1}),
        ] {
            assert!(
                parse_call("search_docs", &args(bad.clone())).is_err(),
                "{bad}"
            );
        }
        assert!(
            parse_call(
                "read_doc",
                &args(json!({"path": "a.md", "heading": "X", "line_start": 2}))
            )
            .is_err()
        );
        assert!(parse_call("reindex", &args(json!({"full": "yes"}))).is_err());
        assert!(parse_call("nope", &JsonObject::new()).is_err());
    }
}
