//! Each route's operations for `/openapi.json`: parameters, bodies, replies and the
//! error codes each answers beyond the gate's.

use serde_json::{Value, json};

use super::Operation;
use super::schemas::{self, of};
use crate::server::router::{Op, Route};

fn query_param(name: &str, schema: Value, description: &str) -> Value {
    json!({ "name": name, "in": "query", "schema": schema, "description": description })
}

fn required(mut param: Value) -> Value {
    param["required"] = json!(true);
    param
}

/// A whole number from `min` (the server reads up to 2^64 - 1).
fn whole(min: u64) -> Value {
    json!({ "type": "integer", "minimum": min, "maximum": u64::MAX })
}

/// The operations of `route`, by method.
pub fn of_route(route: &Route, shared: bool) -> Vec<(&'static str, Operation)> {
    let site_errors: &[(u16, &'static [&'static str])] = if shared {
        &[
            (404, &["unknown_project", "project_root_missing"]),
            (503, &["project_unavailable"]),
        ]
    } else {
        &[]
    };
    let id = json!({
        "name": "id", "in": "path", "required": true,
        "schema": { "type": "string", "pattern": "^p_[0-9a-f]{8}$" },
        "description": "the project's id (GET /projects lists them)",
    });
    let ids = shared.then_some(id);
    match route.op {
        Op::Health => vec![("get", health())],
        Op::OpenApi => vec![("get", open_api())],
        Op::Status if shared => vec![("get", daemon_status())],
        Op::Status => vec![("get", status())],
        Op::Query => vec![
            ("get", search_get().params(ids.clone()).errors(site_errors)),
            ("post", search_post().params(ids).errors(site_errors)),
        ],
        Op::Index => vec![("post", reindex().params(ids).errors(site_errors))],
        Op::Document => {
            let by_section = route.path.ends_with('/');
            vec![("get", read(by_section).params(ids).errors(site_errors))]
        }
        Op::Render => vec![("get", render().params(ids).errors(site_errors))],
        Op::Mcp => vec![("post", mcp())],
        Op::Projects => vec![("get", projects()), ("post", register())],
        Op::ProjectStatus => vec![("get", project_status().params(ids).errors(site_errors))],
        Op::Page => vec![("get", page())],
        Op::Asset => vec![("get", asset())],
        Op::Login => vec![("post", login())],
        Op::LoginCode => vec![("post", login_code())],
    }
}

fn page() -> Operation {
    Operation::file(
        "The search page",
        "HTML, public (it holds no data): it signs in with the code `doc-serve open` \
         puts in its URL's fragment (README, \"Search page\").",
        &["text/html"],
    )
}

fn asset() -> Operation {
    Operation::file(
        "A file of the search page",
        "Script, style sheet or icon, public. A name the page does not have is 404.",
        &["text/javascript", "text/css", "image/svg+xml"],
    )
    .params([json!({
        "name": "path", "in": "path", "required": true,
        "schema": { "type": "string", "minLength": 1 },
        "description": "app.js, doc.js, app.css or icon.svg",
    })])
    .errors(&[(404, &["not_found"])])
}

fn login() -> Operation {
    Operation::new(
        "Trade a one-time code for a browser session",
        "Public. A code is good once, for `login_code_seconds`; the session is a bearer \
         token for the routes that read, good for `session_seconds` on this port.",
        "Session",
    )
    .body(true, "Login")
    .errors(&[
        (400, &["bad_body"]),
        (401, &["invalid_code", "code_used", "code_expired"]),
        (500, &["internal"]),
    ])
}

fn login_code() -> Operation {
    Operation::new(
        "A one-time login code for a browser",
        "What `doc-serve open` asks for: the instance token, or the Unix socket. 409 when \
         no TCP listener is there for a browser to reach.",
        "LoginCode",
    )
    .errors(&[(409, &["no_tcp_listener"]), (500, &["internal"])])
}

fn health() -> Operation {
    Operation::new(
        "Whether it is up, and who it is",
        "Needs no token, over TCP either.",
        "Health",
    )
}

fn open_api() -> Operation {
    Operation::new(
        "This description",
        "The routes of this resident (or of the shared daemon) in OpenAPI 3.1.",
        "OpenApi",
    )
}

fn status() -> Operation {
    Operation::new(
        "The resident and its index",
        "Identity, uptime, activation, listeners, requests, the index's freshness and the \
         settings file's state (README, \"HTTP API\" and \"Configuration\").",
        "Status",
    )
    .errors(&[(500, &["internal"])])
}

fn daemon_status() -> Operation {
    Operation::new(
        "The daemon and its projects",
        "Identity, uptime, listeners, requests, and the projects: registered, open, \
         indexing jobs running and queued.",
        "DaemonStatus",
    )
    .errors(&[(500, &["internal"])])
}

fn search_params() -> Vec<Value> {
    vec![
        required(query_param(
            "q",
            json!({ "type": "string", "minLength": 1 }),
            "the query: words, \"phrases\", -exclusions, path:prefix (README, \"Search\"); \
             up to 4096 bytes and 64 words; empty or only exclusions is `bad_query`",
        )),
        query_param(
            "limit",
            whole(1),
            "hits to answer (default 10, at most 1000)",
        ),
        query_param(
            "offset",
            whole(0),
            "hits to skip (default 0); offset + limit reach at most hit 10,000",
        ),
        query_param(
            "path_prefix",
            json!({ "type": "string" }),
            "only files under this path",
        ),
        query_param(
            "wait",
            whole(0),
            "most seconds to wait for an index being built (default 20, at most 120)",
        ),
        query_param(
            "max_tokens",
            whole(1),
            "the answer fits in about this many tokens",
        ),
        query_param(
            "mode",
            schemas::mode(),
            "default: hybrid once every section is embedded, lexical until then",
        ),
        query_param(
            "explain",
            json!({ "type": "boolean" }),
            "each hit says where it ranked by words and by meaning (true/1 or false/0)",
        ),
    ]
}

const SEARCH_ABOUT: &str = "Ranked sections of the project's documents, and the index's \
    freshness. A parameter not listed is `bad_parameter` (README, \"Search\").";

fn search_get() -> Operation {
    Operation::new("Search", SEARCH_ABOUT, "SearchReply")
        .params(search_params())
        .errors(&[
            (400, &["bad_query", "bad_parameter", "no_model"]),
            (500, &["index_error", "internal"]),
        ])
}

fn search_post() -> Operation {
    Operation::new(
        "Search, the parameters in a body",
        "The parameters of GET as a JSON object; a field not listed is `bad_body`.",
        "SearchReply",
    )
    .body(true, "Search")
    .errors(&[
        (400, &["bad_body", "bad_query", "bad_parameter", "no_model"]),
        (500, &["index_error", "internal"]),
    ])
}

fn reindex() -> Operation {
    Operation::new(
        "Bring the index in line with the files now",
        "Answers when done, with what it did. The body may be left out; `full` indexes \
         every file again.",
        "ReindexReply",
    )
    .body(false, "IndexBody")
    .errors(&[
        (400, &["bad_body"]),
        (500, &["index_error", "internal"]),
        (503, &["index_busy", "project_root_missing", "unavailable"]),
    ])
}

fn read(by_section: bool) -> Operation {
    let line = |name, what| query_param(name, whole(1), what);
    let section = query_param(
        "section",
        json!({ "type": "string", "minLength": 1 }),
        "a section by its id, path#anchor (with /documents/{path}, the anchor alone does)",
    );
    let mut params = vec![
        line("start", "the first line (1-based)"),
        line("end", "the last line (inclusive)"),
        query_param(
            "heading",
            json!({ "type": "string" }),
            "the section under this heading (case-insensitive; `A > B` for a trail)",
        ),
        line("max_tokens", "cut the text to fit about this many tokens"),
    ];
    let op = if by_section {
        params.insert(0, required(section));
        Operation::new(
            "Read a section by its id",
            "The path is taken from the id (`section=docs/a.md#install`).",
            "Document",
        )
    } else {
        params.insert(0, section);
        params.insert(
            0,
            json!({
                "name": "path", "in": "path", "required": true,
                "schema": { "type": "string", "minLength": 1 },
                "description": "a source's path from the project root, as hits give it",
            }),
        );
        Operation::new(
            "Read a document, some of its lines, or a section",
            "The whole file, or start and end, or heading, or section: one of these at \
             most. A path the walk does not list is 404 `not_found`.",
            "Document",
        )
    };
    op.params(params).errors(&[
        (400, &["bad_parameter", "bad_range"]),
        (404, &["not_found", "no_such_heading", "no_such_section"]),
        (413, &["document_too_large"]),
        (500, &["internal"]),
    ])
}

fn render() -> Operation {
    Operation::new(
        "Render a document for a person to read",
        "Markdown as a tree of a few allowed tags (raw HTML only as the text of `raw` \
         nodes, links only to http, https, mailto or a project path), other formats as \
         one `pre` per section, with the file's outline. A file over 1 MiB is rendered \
         only in the section asked for (the first without one), `truncated` true. A path \
         the walk does not list is 404 `not_found`.",
        "Render",
    )
    .params([
        json!({
            "name": "path", "in": "path", "required": true,
            "schema": { "type": "string", "minLength": 1 },
            "description": "a source's path from the project root, as hits give it",
        }),
        query_param(
            "section",
            json!({ "type": "string", "minLength": 1 }),
            "a section by its id, path#anchor, or its anchor alone: the part of a large \
             file to render",
        ),
    ])
    .errors(&[
        (400, &["bad_parameter"]),
        (404, &["not_found", "no_such_section"]),
        (413, &["document_too_large"]),
        (500, &["internal"]),
    ])
}

fn mcp() -> Operation {
    Operation::new(
        "MCP over Streamable HTTP",
        "Stateless, JSON replies: the tools of README, \"MCP for AI assistants\". The \
         request must accept both application/json and text/event-stream (406 \
         otherwise) and be sent as application/json (415 otherwise). A message that is \
         not one JSON-RPC 2.0 request is answered with a JSON-RPC error, with status 400; \
         a notification or a response is taken with 202 and no body.",
        "JsonRpcReply",
    )
    .body(true, "JsonRpcMessage")
    .errors(&[
        (400, &["mcp_error"]),
        (406, &["not_acceptable"]),
        (415, &["unsupported_media_type"]),
    ])
    .also(400, of("JsonRpcReply"))
    .also(
        202,
        json!({ "description": "Accepted: a notification or a response, taken" }),
    )
}

fn projects() -> Operation {
    Operation::new(
        "The registered projects",
        "Each project's id, root, whether it is open, its index figures and any error.",
        "ProjectList",
    )
    .errors(&[(500, &["internal"])])
}

fn register() -> Operation {
    Operation::new(
        "Register a project, and open it",
        "Idempotent: a root registered before answers `created: false`.",
        "Registered",
    )
    .body(true, "Register")
    .errors(&[
        (400, &["bad_body", "bad_root"]),
        (409, &["project_id_collision"]),
        (500, &["registration_failed", "internal"]),
    ])
}

fn project_status() -> Operation {
    Operation::new(
        "One project of the daemon",
        "As GET /projects lists it, with its index's freshness now.",
        "ProjectStatus",
    )
    .errors(&[(500, &["internal"])])
}
