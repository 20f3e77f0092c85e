//! The JSON schemas of `/openapi.json`: what each route answers and takes. Every object
//! lists all its fields and refuses others (`additionalProperties: false`), so that a
//! field added to a reply without being described here fails the conformance check
//! (README, "HTTP API").

use serde_json::{Map, Value, json};

/// `#/components/schemas/NAME`.
pub fn of(name: &str) -> Value {
    json!({ "$ref": format!("#/components/schemas/{name}") })
}

/// `schema`, or null.
pub fn or_null(schema: Value) -> Value {
    json!({ "anyOf": [schema, { "type": "null" }] })
}

/// An object of exactly these fields, the required ones first (`optional` may be left
/// out of a reply).
pub fn object(required: &[(&str, Value)], optional: &[(&str, Value)]) -> Value {
    let mut properties = Map::new();
    for (name, schema) in required.iter().chain(optional) {
        properties.insert((*name).to_owned(), schema.clone());
    }
    let names: Vec<&str> = required.iter().map(|(n, _)| *n).collect();
    json!({
        "type": "object",
        "required": names,
        "properties": properties,
        "additionalProperties": false,
    })
}

fn string() -> Value {
    json!({ "type": "string" })
}

fn text(description: &str) -> Value {
    json!({ "type": "string", "description": description })
}

fn count() -> Value {
    json!({ "type": "integer", "minimum": 0 })
}

fn line() -> Value {
    json!({ "type": "integer", "minimum": 0, "description": "1-based" })
}

fn boolean() -> Value {
    json!({ "type": "boolean" })
}

fn strings() -> Value {
    json!({ "type": "array", "items": { "type": "string" } })
}

fn nullable(kind: &str) -> Value {
    json!({ "type": [kind, "null"] })
}

fn pair() -> Value {
    json!({ "type": "array", "items": count(), "minItems": 2, "maxItems": 2 })
}

/// A time as RFC 3339 text (`2026-01-02T03:04:05.678Z`).
fn time() -> Value {
    json!({ "type": "string", "description": "RFC 3339, UTC" })
}

pub fn mode() -> Value {
    json!({ "type": "string", "enum": ["lexical", "semantic", "hybrid"] })
}

/// Every schema `#/components/schemas` holds.
pub fn all() -> Value {
    let mut s = Map::new();
    let mut add = |name: &str, schema: Value| s.insert(name.to_owned(), schema);
    add("Health", health());
    add("Status", status(false));
    add("DaemonStatus", status(true));
    add("Freshness", freshness());
    add("Embedding", embedding());
    add("Settings", settings());
    add("Search", search());
    add("SearchReply", search_reply());
    add("Hit", hit());
    add("Document", document());
    add("SectionRef", section_ref());
    add("Render", render());
    add("OutlineEntry", outline_entry());
    add("Node", node());
    add("IndexBody", object(&[], &[("full", boolean())]));
    add(
        "ReindexReply",
        object(
            &[("summary", of("Summary")), ("index", of("Freshness"))],
            &[],
        ),
    );
    add("Summary", summary());
    add("ProjectList", project_list());
    add("Project", project(false));
    add("ProjectStatus", project(true));
    add(
        "Register",
        object(
            &[("root", text("the project's root directory, absolute"))],
            &[],
        ),
    );
    add("Registered", registered());
    add("JsonRpcMessage", json_rpc_message());
    add("JsonRpcReply", json_rpc_reply());
    add("OpenApi", open_api());
    add(
        "Login",
        object(&[("code", text("from `doc-serve open`"))], &[]),
    );
    add(
        "Session",
        object(
            &[
                ("session", text("the bearer token for the routes that read")),
                (
                    "expires_at",
                    json!({ "type": "integer", "description": "Unix seconds" }),
                ),
                ("expires_in", count()),
                (
                    "kind",
                    json!({ "type": "string", "enum": ["resident", "shared"] }),
                ),
            ],
            &[],
        ),
    );
    add(
        "LoginCode",
        object(
            &[
                ("code", text("good once, for expires_in seconds")),
                ("expires_in", count()),
                (
                    "urls",
                    json!({ "type": "array", "items": { "type": "string" }, "minItems": 1,
                            "description": "the page on each TCP listener" }),
                ),
            ],
            &[],
        ),
    );
    Value::Object(s)
}

fn health() -> Value {
    object(
        &[
            ("status", json!({ "const": "ok" })),
            ("instance_id", string()),
            ("version", string()),
            (
                "project_root",
                text("the project's root; the shared daemon's home"),
            ),
            ("pid", count()),
        ],
        &[],
    )
}

/// `/status`: who answers, and the project's index (a resident) or the projects (the
/// shared daemon).
fn status(daemon: bool) -> Value {
    let listener = object(
        &[
            ("kind", json!({ "enum": ["tcp", "unix"] })),
            ("address", text("host:port, or the socket's path")),
        ],
        &[(
            "name",
            text("the name the supervisor gave it (LISTEN_FDNAMES)"),
        )],
    );
    let mut fields = vec![
        ("status", json!({ "const": "ok" })),
        ("mode", json!({ "enum": ["project", "shared"] })),
        ("instance_id", string()),
        ("version", string()),
        ("project_root", string()),
        ("project_id", string()),
        ("pid", count()),
        ("started_at", time()),
        ("uptime_seconds", count()),
        (
            "activation",
            json!({ "enum": ["systemd", "launchd", "self"] }),
        ),
        ("listeners", json!({ "type": "array", "items": listener })),
        (
            "idle_timeout_seconds",
            json!({ "type": "integer", "minimum": 0, "description": "0: it never exits for being idle" }),
        ),
        (
            "requests",
            object(&[("in_flight", count()), ("served", count())], &[]),
        ),
    ];
    if daemon {
        let ids =
            json!({ "type": "array", "items": { "type": "string" }, "description": "project ids" });
        let indexing = object(
            &[
                ("max_concurrent", count()),
                ("running", ids.clone()),
                ("queued", ids),
            ],
            &[],
        );
        let projects = object(
            &[
                ("registered", count()),
                ("open", count()),
                ("max_open_projects", count()),
                ("indexing", indexing),
            ],
            &[],
        );
        fields.push(("projects", projects));
    } else {
        fields.push(("index", of("Freshness")));
        fields.push(("settings", of("Settings")));
    }
    object(&fields, &[])
}

fn freshness() -> Value {
    object(
        &[
            ("files", count()),
            ("chunks", count()),
            (
                "indexing",
                json!({ "type": "boolean", "description": "the index is being brought up to date" }),
            ),
            (
                "progress",
                json!({ "anyOf": [pair(), { "type": "null" }], "description": "[done, total] files while indexing" }),
            ),
            ("pending_changes", boolean()),
            (
                "pending_files",
                json!({ "type": ["integer", "null"], "minimum": 0, "description": "null when a walk of the tree must tell" }),
            ),
            ("watcher", text("starting, watching, or why not")),
            ("last_commit", or_null(time())),
            ("last_error", nullable("string")),
        ],
        &[("embedding", of("Embedding"))],
    )
}

fn embedding() -> Value {
    object(
        &[
            ("model", string()),
            (
                "embedded",
                json!({ "allOf": [pair()], "description": "[embedded, sections]" }),
            ),
            ("embedding", boolean()),
            ("error", nullable("string")),
        ],
        &[(
            "approximate",
            json!({ "type": "integer", "minimum": 0, "description": "vectors in the approximate index searches by meaning read (absent while every vector is compared)" }),
        )],
    )
}

fn settings() -> Value {
    object(
        &[
            (
                "error",
                json!({ "type": ["string", "null"], "description": "why the settings file's contents are not in force" }),
            ),
            ("restart_needed", strings()),
            ("last_reload", or_null(time())),
        ],
        &[],
    )
}

/// `POST /query`'s body: the parameters of `GET /query`.
fn search() -> Value {
    let whole =
        |min: u64| json!({ "type": ["integer", "null"], "minimum": min, "maximum": u64::MAX });
    let q = json!({ "type": "string", "minLength": 1, "description": "the query (README, \"Search\")" });
    object(
        &[("q", q)],
        &[
            ("limit", whole(1)),
            ("offset", whole(0)),
            ("path_prefix", nullable("string")),
            ("wait", whole(0)),
            ("max_tokens", whole(1)),
            ("mode", or_null(mode())),
            ("explain", nullable("boolean")),
        ],
    )
}

fn search_reply() -> Value {
    object(
        &[
            ("query", string()),
            ("mode", mode()),
            ("hits", json!({ "type": "array", "items": of("Hit") })),
            ("total_matches", count()),
            ("offset", count()),
            (
                "next_offset",
                json!({ "type": ["integer", "null"], "minimum": 0, "description": "where the next page starts; null at the end" }),
            ),
            ("truncated", boolean()),
            ("took_ms", json!({ "type": "number", "minimum": 0 })),
            ("index", of("Freshness")),
        ],
        &[],
    )
}

fn hit() -> Value {
    let rank = json!({ "type": ["integer", "null"], "minimum": 1 });
    object(
        &[
            (
                "id",
                text("path#anchor: GET /documents/?section= reads the section"),
            ),
            ("path", string()),
            ("title", string()),
            ("headings", strings()),
            ("line_start", line()),
            ("line_end", line()),
            ("score", json!({ "type": "number" })),
            ("snippet", string()),
            (
                "highlights",
                json!({ "type": "array", "items": pair(), "description": "[start, end) character offsets into snippet" }),
            ),
        ],
        &[(
            "ranks",
            object(&[("lexical", rank.clone()), ("vector", rank)], &[]),
        )],
    )
}

fn section_ref() -> Value {
    object(
        &[
            ("id", string()),
            ("headings", strings()),
            ("line_start", line()),
            ("line_end", line()),
        ],
        &[],
    )
}

fn document() -> Value {
    object(
        &[
            ("path", string()),
            ("id", text("the section holding the first line returned")),
            ("line_start", line()),
            ("line_end", line()),
            ("total_lines", count()),
            ("headings", strings()),
            ("text", string()),
            ("truncated", boolean()),
            (
                "next_line",
                json!({ "type": ["integer", "null"], "minimum": 1 }),
            ),
            ("previous", or_null(of("SectionRef"))),
            ("next", or_null(of("SectionRef"))),
        ],
        &[],
    )
}

fn render() -> Value {
    object(
        &[
            ("path", string()),
            ("format", json!({ "enum": ["markdown", "text"] })),
            ("total_lines", count()),
            (
                "truncated",
                json!({ "type": "boolean", "description": "only part of the file is rendered" }),
            ),
            (
                "outline",
                json!({ "type": "array", "items": of("OutlineEntry") }),
            ),
            ("blocks", json!({ "type": "array", "items": of("Node") })),
        ],
        &[],
    )
}

fn outline_entry() -> Value {
    object(
        &[
            ("id", text("path#anchor, as hits carry it")),
            (
                "level",
                json!({ "type": "integer", "minimum": 0, "description": "depth in the heading trail, the title included; 0 before the first heading" }),
            ),
            ("title", text("its heading; empty before the first heading")),
            ("headings", strings()),
            ("line_start", line()),
            ("line_end", line()),
        ],
        &[],
    )
}

/// A node of a rendered document: text, or an element of an allowed tag with its
/// children and extras (README, "HTTP API").
fn node() -> Value {
    let tags = crate::ingest::read::render::TAGS;
    let element = object(
        &[("t", json!({ "enum": tags }))],
        &[
            (
                "line",
                json!({ "type": "integer", "minimum": 1, "description": "the 1-based line a block starts at" }),
            ),
            ("c", json!({ "type": "array", "items": of("Node") })),
            ("id", text("h1-h6: the id of the section it heads")),
            (
                "start",
                json!({ "type": "integer", "minimum": 0, "description": "ol: its first number" }),
            ),
            ("align", json!({ "enum": ["left", "center", "right"] })),
            (
                "lang",
                json!({ "type": "string", "pattern": "^[A-Za-z0-9_+-]{1,32}$", "description": "pre: the fence's language" }),
            ),
            ("checked", boolean()),
            (
                "href",
                json!({ "type": "string", "pattern": "^([Hh][Tt][Tt][Pp][Ss]?|[Mm][Aa][Ii][Ll][Tt][Oo]):", "description": "a: an http, https or mailto address" }),
            ),
            ("doc", text("a: a document's path from the project root")),
            ("anchor", text("a: a place in that document")),
            ("alt", text("image: its text")),
            ("src", text("image: its address, http(s) or relative")),
        ],
    );
    json!({
        "oneOf": [
            { "type": "string", "description": "text" },
            element,
        ],
    })
}

fn summary() -> Value {
    let skipped = object(
        &[("path", string()), ("reason", string())],
        &[("unreadable", boolean())],
    );
    object(
        &[
            ("full", boolean()),
            ("scanned", count()),
            ("added", count()),
            ("updated", count()),
            ("removed", count()),
            ("unchanged", count()),
            ("chunks", count()),
            ("skipped", json!({ "type": "array", "items": skipped })),
            ("batches", count()),
            ("took_ms", json!({ "type": "number", "minimum": 0 })),
        ],
        &[],
    )
}

fn project_list() -> Value {
    object(
        &[
            (
                "projects",
                json!({ "type": "array", "items": of("Project") }),
            ),
            (
                "unreadable",
                json!({ "type": "array", "items": string(), "description": "registrations that could not be read" }),
            ),
        ],
        &[],
    )
}

/// A project of the shared daemon: as listed (its index figures, if it was ever
/// opened), or its own status (`/projects/{id}/status`, the index always).
fn project(own_status: bool) -> Value {
    let index = if own_status {
        of("Freshness")
    } else {
        or_null(of("Freshness"))
    };
    object(
        &[
            ("id", string()),
            ("root", string()),
            ("root_exists", boolean()),
            ("registered_at", time()),
            ("open", boolean()),
            ("idle_seconds", count()),
            ("index", index),
            ("error", nullable("string")),
        ],
        &[],
    )
}

fn registered() -> Value {
    object(
        &[
            ("id", string()),
            ("root", string()),
            (
                "created",
                json!({ "type": "boolean", "description": "false when it was registered before" }),
            ),
            ("registered_at", time()),
            ("base_path", text("/projects/{id}")),
            (
                "error",
                json!({ "type": ["string", "null"], "description": "why the project could not be opened" }),
            ),
        ],
        &[],
    )
}

/// A JSON-RPC id: a string, a number, or (a request that could not be read) null.
fn json_rpc_id() -> Value {
    json!({ "type": ["string", "integer", "null"] })
}

/// What `/mcp` takes: one JSON-RPC 2.0 message (a batch is refused). Members beyond
/// JSON-RPC's are let through, as rmcp lets them.
fn json_rpc_message() -> Value {
    let id = json!({
        "anyOf": [
            { "type": "string" },
            { "type": "integer", "minimum": i64::MIN, "maximum": i64::MAX },
        ],
    });
    let object = json!({ "type": "object" });
    let error = json!({
        "type": "object",
        "required": ["code", "message"],
        "properties": {
            "code": { "type": "integer", "minimum": i64::MIN, "maximum": i64::MAX },
            "message": { "type": "string" },
        },
    });
    // A message with `members`, and none of `absent`.
    let message = |members: Value, absent: &[&str]| {
        let names: Vec<&String> = members
            .as_object()
            .into_iter()
            .flat_map(|m| m.keys())
            .collect();
        let required: Vec<&String> = names.into_iter().filter(|n| *n != "params").collect();
        let mut properties = members.clone();
        properties["jsonrpc"] = json!({ "const": "2.0" });
        let absent: Vec<Value> = absent.iter().map(|n| json!({ "required": [n] })).collect();
        let mut required: Vec<Value> = required.into_iter().map(|n| json!(n)).collect();
        required.push(json!("jsonrpc"));
        json!({
            "type": "object",
            "required": required,
            "properties": properties,
            "not": { "anyOf": absent },
        })
    };
    let method = json!({ "type": "string" });
    // Params that do not fit the method are a JSON-RPC error in a 200 reply, as any
    // other refusal of a well-formed request.
    let params = json!({});
    json!({
        "description": "one JSON-RPC 2.0 message of MCP: a request, a notification or \
            a response (README, \"MCP for AI assistants\")",
        "anyOf": [
            message(
                json!({ "id": id, "method": method, "params": params }),
                &["result", "error"],
            ),
            message(
                json!({ "method": method, "params": params }),
                &["id", "result", "error"],
            ),
            message(json!({ "id": id, "result": object }), &["method", "error"]),
            // An error may leave its id out, or say null (it may answer a message
            // whose id could not be read).
            json!({
                "allOf": [
                    message(json!({ "error": error }), &["method", "result"]),
                    { "properties": { "id": { "anyOf": [id, { "type": "null" }] } } },
                ],
            }),
        ],
    })
}

fn json_rpc_reply() -> Value {
    let error = object(
        &[
            (
                "code",
                json!({ "type": "integer", "minimum": i64::MIN, "maximum": i64::MAX }),
            ),
            ("message", string()),
        ],
        &[("data", json!({}))],
    );
    json!({
        "type": "object",
        "required": ["jsonrpc", "id"],
        "properties": {
            "jsonrpc": { "const": "2.0" },
            "id": json_rpc_id(),
            "result": { "type": "object" },
            "error": error,
        },
        "oneOf": [{ "required": ["result"] }, { "required": ["error"] }],
        "additionalProperties": false,
    })
}

fn open_api() -> Value {
    json!({
        "type": "object",
        "required": ["openapi", "info", "paths"],
        "properties": { "openapi": { "const": "3.1.0" } },
    })
}
