//! `GET /openapi.json`: the HTTP API in OpenAPI 3.1, one document for a project's
//! resident and one for the shared daemon, each describing exactly the routes of its
//! table in [`super::router`]: every method, parameter, body, reply and error code.
//!
//! Written here by hand rather than derived from the Rust types: the router is a table
//! of paths, not a framework a generator could read; half the replies are built as
//! JSON values; and which error codes a route answers is knowledge no type holds.
//! What keeps it true: its unit tests (every route of the tables described, nothing
//! more, with the parameters the routes take), `tests/integration/openapi.rs` (every
//! operation answered by the real binary, live replies checked against it) and the
//! conformance check there (schemathesis against a live resident and daemon; README,
//! "HTTP API").

mod operations;
mod schemas;
#[cfg(test)]
mod tests;

use std::collections::BTreeMap;
use std::sync::OnceLock;

use hyper::StatusCode;
use hyper::body::Bytes;
use serde_json::{Map, Value, json};

use super::router::{Auth, Kind};
use schemas::{object, of};

/// The document of a server of `kind`, as JSON.
pub fn document(kind: Kind) -> Bytes {
    static RESIDENT: OnceLock<Bytes> = OnceLock::new();
    static SHARED: OnceLock<Bytes> = OnceLock::new();
    let cell = match kind {
        Kind::Resident => &RESIDENT,
        Kind::Shared => &SHARED,
    };
    cell.get_or_init(|| {
        // Proof: a Value always serializes.
        serde_json::to_vec(&describe(kind))
            .unwrap_or_default()
            .into()
    })
    .clone()
}

/// The document of a resident, or of the shared daemon.
pub fn describe(kind: Kind) -> Value {
    let shared = kind == Kind::Shared;
    let (title, about) = if shared {
        (
            "doc-serve shared daemon",
            "One daemon for every project of a user; each project's routes are under \
             /projects/{id}/ (README, \"Shared daemon\").",
        )
    } else {
        (
            "doc-serve resident",
            "One project's documentation search (README, \"HTTP API\").",
        )
    };
    json!({
        "openapi": "3.1.0",
        "info": {
            "title": title,
            "version": env!("CARGO_PKG_VERSION"),
            "description": format!(
                "{about} Over TCP every route but /health needs the token of the 0600 \
                 runtime.json as `Authorization: Bearer <token>`; over a Unix socket the \
                 socket's file mode is the gate. Every error is JSON, {{\"code\", \
                 \"message\"}}, with a stable code. A method a route does not take is 405 \
                 `method_not_allowed` with an `Allow` header. Host and Origin must be \
                 local (403)."
            ),
        },
        "paths": paths(kind),
        "components": {
            "schemas": schemas::all(),
            "securitySchemes": {
                "token": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "`token` of runtime.json (`.claude/doc-serve/runtime.json` \
                        in the project, `~/.doc-serve/runtime.json` for the shared daemon)",
                },
                "session": {
                    "type": "http",
                    "scheme": "bearer",
                    "bearerFormat": "dss1",
                    "description": "a browser session from POST /login",
                },
            },
        },
        "security": [{ "token": [] }],
    })
}

/// An operation before it is written out.
struct Operation {
    summary: &'static str,
    description: &'static str,
    params: Vec<Value>,
    body: Option<(bool, Value)>,
    ok: Value,
    /// Error codes by status, beyond the gate's.
    errors: Vec<(u16, &'static [&'static str])>,
    /// Other replies: a status and its response, or a schema its body may have besides
    /// `{"code", "message"}`.
    also: Vec<(u16, Value)>,
}

impl Operation {
    fn new(summary: &'static str, description: &'static str, ok: &str) -> Operation {
        Operation {
            summary,
            description,
            params: Vec::new(),
            body: None,
            ok: json!({
                "description": "OK",
                "content": { "application/json": { "schema": of(ok) } },
            }),
            errors: Vec::new(),
            also: Vec::new(),
        }
    }

    /// A file of the page, of one of `types`; 304 when the client has this version.
    fn file(summary: &'static str, description: &'static str, types: &[&str]) -> Operation {
        let content: Map<String, Value> = types
            .iter()
            .map(|t| ((*t).to_owned(), json!({ "schema": { "type": "string" } })))
            .collect();
        let mut op = Operation::new(summary, description, "");
        op.ok = json!({ "description": "OK", "content": content });
        op.also(
            304,
            json!({ "description": "Not Modified: If-None-Match named this version" }),
        )
    }

    /// `status` may also answer `schema` (a response object when `status` has no error
    /// codes, else a schema of the body).
    fn also(mut self, status: u16, schema: Value) -> Self {
        self.also.push((status, schema));
        self
    }

    fn params(mut self, params: impl IntoIterator<Item = Value>) -> Self {
        self.params.extend(params);
        self
    }

    fn body(mut self, required: bool, schema: &str) -> Self {
        self.body = Some((required, of(schema)));
        self
    }

    fn errors(mut self, errors: &[(u16, &'static [&'static str])]) -> Self {
        self.errors.extend_from_slice(errors);
        self
    }

    /// The operation as OpenAPI writes it, needing `auth`.
    fn write(&self, id: String, auth: Auth, head: bool) -> Value {
        let mut codes: BTreeMap<u16, Vec<&str>> = BTreeMap::new();
        let mut gate: Vec<(u16, &[&str])> = vec![
            (400, &["bad_request"]),
            (403, &["forbidden_host", "forbidden_origin"]),
            (408, &["body_timeout"]),
            (413, &["body_too_large"]),
        ];
        match auth {
            Auth::Public => {}
            Auth::Session | Auth::SessionReads => {
                gate.push((401, &["missing_token", "bad_token", "session_expired"]))
            }
            Auth::Token => {
                gate.push((401, &["missing_token", "bad_token"]));
                gate.push((403, &["session_not_allowed"]));
            }
        }
        for (status, list) in gate.iter().chain(&self.errors) {
            codes.entry(*status).or_default().extend_from_slice(list);
        }
        let mut responses = Map::new();
        responses.insert("200".into(), self.ok.clone());
        for (status, list) in codes {
            responses.insert(status.to_string(), error_response(status, &list));
        }
        for (status, also) in &self.also {
            match responses.get_mut(&status.to_string()) {
                Some(r) => {
                    let body = &mut r["content"]["application/json"]["schema"];
                    *body = json!({ "anyOf": [also, body.take()] });
                }
                None => {
                    responses.insert(status.to_string(), also.clone());
                }
            }
        }
        let mut op = json!({
            "operationId": id,
            "summary": self.summary,
            "description": self.description,
            "parameters": self.params,
            "responses": responses,
        });
        match auth {
            Auth::Public => op["security"] = json!([]),
            Auth::Session | Auth::SessionReads => {
                op["security"] = json!([{ "token": [] }, { "session": [] }])
            }
            Auth::Token => {}
        }
        if let Some((required, schema)) = &self.body {
            op["requestBody"] = json!({
                "required": required,
                "content": { "application/json": { "schema": schema } },
            });
        }
        if head {
            // The same answer without its body.
            op["summary"] = json!(format!("{} (headers only)", self.summary));
            for (_, response) in op["responses"].as_object_mut().into_iter().flatten() {
                if let Some(r) = response.as_object_mut() {
                    r.remove("content");
                }
            }
        }
        op
    }
}

fn error_response(status: u16, codes: &[&str]) -> Value {
    let reason = StatusCode::from_u16(status)
        .ok()
        .and_then(|s| s.canonical_reason())
        .unwrap_or("Error");
    let schema = object(
        &[
            ("code", json!({ "type": "string", "enum": codes })),
            ("message", json!({ "type": "string" })),
        ],
        &[],
    );
    let mut response = json!({
        "description": format!("{reason}: {}", codes.join(", ")),
        "content": { "application/json": { "schema": schema } },
    });
    if status == 401 {
        response["headers"] = json!({
            "WWW-Authenticate": { "required": true, "schema": { "const": "Bearer" } },
        });
    }
    response
}

/// Every route of a server of `kind`, described.
fn paths(kind: Kind) -> Value {
    let shared = kind == Kind::Shared;
    let mut paths = Map::new();
    for route in kind.routes() {
        let mut item = Map::new();
        for (method, op) in operations::of_route(route, shared) {
            let name = operation_id(method, route.path);
            let auth = match route.auth {
                Auth::SessionReads if method != "get" => Auth::Token,
                auth => auth,
            };
            item.insert(method.into(), op.write(name, auth, false));
            if method == "get" {
                let head = op.write(operation_id("head", route.path), auth, true);
                item.insert("head".into(), head);
            }
        }
        paths.insert(route.path.into(), Value::Object(item));
    }
    Value::Object(paths)
}

/// `get_projects_id_query` for `GET /projects/{id}/query`; `/documents/` is
/// `get_documents_by_section`.
fn operation_id(method: &str, path: &str) -> String {
    let mut id = method.to_owned();
    for word in path.split(|c: char| !c.is_ascii_alphanumeric()) {
        if !word.is_empty() {
            id.push('_');
            id.push_str(word);
        }
    }
    if path.ends_with("/documents/") {
        id.push_str("_by_section");
    }
    if path == "/" {
        id.push_str("_page");
    }
    id
}
