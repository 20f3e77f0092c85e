//! /openapi.json through the real binary, on a resident and on the shared daemon: every
//! operation it describes is answered (and a method it does not describe is a 405
//! naming the described ones), and replies, errors included, fit what it says of them.
//! Then schemathesis, installed under target/ by tests/openapi/setup (which .ci/run
//! runs), fuzzes every described operation against the live server: no 5xx, every reply
//! as described. Outside CI that test skips without it, saying so.

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Instant;

use serde_json::{Value, json};

use crate::search::with_fixtures;
use crate::shared::{start_daemon, write_shared_config};
use crate::util::*;

/// Every method a probe tries on every described path.
const METHODS: &[&str] = &["GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS"];

/// A live server and its description.
struct Api {
    addr: String,
    token: String,
    doc: Value,
    /// The project's id on the shared daemon (`{id}`), and its root.
    id: Option<String>,
    root: Option<String>,
}

impl Api {
    fn new(addr: String, token: String) -> Api {
        let mut api = Api {
            addr,
            token,
            doc: Value::Null,
            id: None,
            root: None,
        };
        let r = api.send("GET", "/openapi.json", None, &[]);
        assert_eq!(r.status, 200, "{r:?}");
        api.doc = r.json();
        assert_eq!(api.doc["openapi"], "3.1.0");
        api
    }

    /// `method target` with the token, `body` as JSON, and `headers`.
    fn send(&self, method: &str, target: &str, body: Option<&str>, headers: &[&str]) -> Reply {
        let auth = format!("Authorization: Bearer {}", self.token);
        let mut all = vec![auth.as_str()];
        all.extend_from_slice(headers);
        request(&self.addr, method, target, body, &all)
    }

    /// `template` with `{id}` and `{path}` filled in.
    fn concrete(&self, template: &str) -> String {
        template
            .replace("{id}", self.id.as_deref().unwrap_or("p_00000000"))
            .replace("{path}", "docs/guide/install.md")
    }

    /// The described response of `method template` for `reply`'s status, which `reply`
    /// must fit.
    fn check(&self, template: &str, method: &str, reply: &Reply) {
        let op = &self.doc["paths"][template][method.to_ascii_lowercase()];
        assert!(op.is_object(), "{method} {template} is not described");
        let response = &op["responses"][reply.status.to_string()];
        assert!(
            response.is_object(),
            "{method} {template}: status {} is not described: {}",
            reply.status,
            reply.body
        );
        for (name, header) in response["headers"].as_object().into_iter().flatten() {
            let line = format!("\r\n{}: ", name.to_ascii_lowercase());
            assert!(
                !header["required"].as_bool().unwrap_or(false)
                    || reply.head.to_ascii_lowercase().contains(&line),
                "{method} {template}: no {name} header: {}",
                reply.head
            );
        }
        let content = &response["content"];
        let Some(schema) = content["application/json"].get("schema") else {
            // The page's files: one of the described types, with a body unless HEAD.
            if let Some(types) = content.as_object().filter(|c| !c.is_empty()) {
                let got = reply
                    .head
                    .lines()
                    .find_map(|l| {
                        l.to_ascii_lowercase()
                            .strip_prefix("content-type: ")
                            .map(String::from)
                    })
                    .unwrap_or_default();
                let got = got.split(';').next().unwrap_or_default();
                assert!(types.contains_key(got), "{method} {template}: type {got:?}");
                assert_eq!(
                    reply.body.is_empty(),
                    method == "HEAD",
                    "{method} {template}"
                );
                return;
            }
            assert_eq!(
                reply.body, "",
                "{method} {template}: a body where none is described"
            );
            return;
        };
        let body: Value = serde_json::from_str(&reply.body)
            .unwrap_or_else(|e| panic!("{method} {template}: {e}: {}", reply.body));
        if let Err(e) = conforms(&self.doc, schema, &body, "") {
            panic!("{method} {template} {}: {e}\n{body:#}", reply.status);
        }
    }
}

/// One HTTP/1.1 request; the answer read to the end.
fn request(addr: &str, method: &str, target: &str, body: Option<&str>, headers: &[&str]) -> Reply {
    let mut req = format!("{method} {target} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
    for h in headers {
        req.push_str(h);
        req.push_str("\r\n");
    }
    if let Some(body) = body {
        req.push_str(&format!(
            "Content-Type: application/json\r\nContent-Length: {}\r\n",
            body.len()
        ));
    }
    req.push_str("\r\n");
    req.push_str(body.unwrap_or_default());
    raw(addr, req.as_bytes())
}

/// Whether `v` fits `schema`: the parts of JSON Schema the description uses (`$ref`,
/// `anyOf`, `oneOf`, `allOf`, `const`, `enum`, `type`, the object, array, number and
/// string bounds). An error names where in `v`.
fn conforms(doc: &Value, schema: &Value, v: &Value, at: &str) -> Result<(), String> {
    let fail = |what: String| Err(format!("at {at:?}: {what}"));
    if let Some(r) = schema["$ref"].as_str() {
        let name = r.trim_start_matches("#/components/schemas/");
        return conforms(doc, &doc["components"]["schemas"][name], v, at);
    }
    let fits = |s: &Value| conforms(doc, s, v, at);
    if let Some(all) = schema["allOf"].as_array() {
        all.iter().try_for_each(fits)?;
    }
    if let Some(any) = schema["anyOf"].as_array()
        && !any.iter().any(|s| fits(s).is_ok())
    {
        return fail(format!("fits none of {}", Value::Array(any.clone())));
    }
    if let Some(one) = schema["oneOf"].as_array() {
        let n = one.iter().filter(|s| fits(s).is_ok()).count();
        if n != 1 {
            return fail(format!("fits {n} of oneOf, not one"));
        }
    }
    if let Some(c) = schema.get("const")
        && c != v
    {
        return fail(format!("{v} is not {c}"));
    }
    if let Some(e) = schema["enum"].as_array()
        && !e.contains(v)
    {
        return fail(format!("{v} is not one of {schema}"));
    }
    let types: Vec<&str> = match &schema["type"] {
        Value::String(t) => vec![t],
        Value::Array(ts) => ts.iter().filter_map(Value::as_str).collect(),
        _ => Vec::new(),
    };
    let is = |t: &str| match t {
        "null" => v.is_null(),
        "boolean" => v.is_boolean(),
        "integer" => v.is_i64() || v.is_u64(),
        "number" => v.is_number(),
        "string" => v.is_string(),
        "array" => v.is_array(),
        "object" => v.is_object(),
        _ => false,
    };
    if !types.is_empty() && !types.iter().any(|t| is(t)) {
        return fail(format!("{v} is not of type {types:?}"));
    }
    if let Some(n) = v.as_f64() {
        if schema["minimum"].as_f64().is_some_and(|m| n < m) {
            return fail(format!("{v} is under the minimum"));
        }
        if schema["maximum"].as_f64().is_some_and(|m| n > m) {
            return fail(format!("{v} is over the maximum"));
        }
    }
    if let Some(s) = v.as_str()
        && schema["minLength"]
            .as_u64()
            .is_some_and(|m| (s.chars().count() as u64) < m)
    {
        return fail(format!("{v} is too short"));
    }
    if let Some(items) = v.as_array() {
        let len = items.len() as u64;
        if schema["minItems"].as_u64().is_some_and(|m| len < m)
            || schema["maxItems"].as_u64().is_some_and(|m| len > m)
        {
            return fail(format!("{len} items"));
        }
        if let Some(item) = schema.get("items") {
            for (i, x) in items.iter().enumerate() {
                conforms(doc, item, x, &format!("{at}/{i}"))?;
            }
        }
    }
    if let Some(fields) = v.as_object() {
        for name in schema["required"].as_array().into_iter().flatten() {
            if !fields.contains_key(name.as_str().unwrap_or_default()) {
                return fail(format!("no {name}"));
            }
        }
        let properties = schema["properties"].as_object();
        for (name, x) in fields {
            match properties.and_then(|p| p.get(name)) {
                Some(s) => conforms(doc, s, x, &format!("{at}/{name}"))?,
                None if schema["additionalProperties"] == false => {
                    return fail(format!("{name:?} is not described"));
                }
                None => {}
            }
        }
    }
    Ok(())
}

/// A request each described operation answers with success, for a project holding
/// tests/fixtures/docs: (target, body, extra headers).
fn sample(api: &Api, template: &str, method: &str) -> (String, Option<String>, Vec<&'static str>) {
    let path = api.concrete(template);
    let local = template.strip_prefix("/projects/{id}").unwrap_or(template);
    let mcp_headers = vec!["Accept: application/json, text/event-stream"];
    match (local, method) {
        ("/health" | "/openapi.json" | "/status" | "/projects" | "/", "get" | "head") => {
            (path, None, vec![])
        }
        ("/ui/{path}", "get" | "head") => ("/ui/app.js".into(), None, vec![]),
        ("/login/code", "post") => (path, None, vec![]),
        ("/login", "post") => {
            let code = api.send("POST", "/login/code", None, &[]).json()["code"].clone();
            (path, Some(json!({ "code": code }).to_string()), vec![])
        }
        ("/query", "get" | "head") => (
            format!("{path}?q=install&explain=true&limit=3"),
            None,
            vec![],
        ),
        ("/query", "post") => {
            let body = json!({ "q": "widgetd", "limit": 2, "path_prefix": "docs/guide" });
            (path, Some(body.to_string()), vec![])
        }
        ("/index", "post") => (path, Some(r#"{"full": false}"#.into()), vec![]),
        ("/projects", "post") => {
            let body = json!({ "root": api.root.as_deref().unwrap() });
            (path, Some(body.to_string()), vec![])
        }
        ("/documents/{path}", "get" | "head") => (format!("{path}?heading=Linux"), None, vec![]),
        ("/render/{path}", "get" | "head") => (
            format!("{path}?section=docs%2Fguide%2Finstall.md%23linux"),
            None,
            vec![],
        ),
        ("/documents/", "get" | "head") => (
            format!("{path}?section=docs%2Fguide%2Finstall.md%23configuration-file"),
            None,
            vec![],
        ),
        ("/mcp", "post") => {
            let body = r#"{"jsonrpc":"2.0","id":1,"method":"tools/list"}"#;
            (path, Some(body.into()), mcp_headers)
        }
        _ => panic!("no sample request for {method} {template}: add one here"),
    }
}

/// Every described operation answers its sample with 200 and a reply as described; a
/// method a path does not describe is 405, its `Allow` naming the described ones.
fn every_operation_answers(api: &Api) {
    let paths = api.doc["paths"].as_object().unwrap().clone();
    assert!(!paths.is_empty());
    for (template, item) in &paths {
        let described: Vec<String> = item
            .as_object()
            .unwrap()
            .keys()
            .map(|m| m.to_ascii_uppercase())
            .collect();
        for method in &described {
            let lower = method.to_ascii_lowercase();
            let (target, body, headers) = sample(api, template, &lower);
            let reply = api.send(method, &target, body.as_deref(), &headers);
            assert_eq!(reply.status, 200, "{method} {target}: {}", reply.body);
            api.check(template, method, &reply);
        }
        let path = api.concrete(template);
        for method in METHODS
            .iter()
            .filter(|m| !described.iter().any(|d| d == *m))
        {
            let reply = api.send(method, &path, None, &[]);
            assert_eq!(reply.status, 405, "{method} {path}: {reply:?}");
            let allow = reply
                .head
                .lines()
                .find_map(|l| {
                    l.to_ascii_lowercase()
                        .strip_prefix("allow: ")
                        .map(String::from)
                })
                .unwrap_or_else(|| panic!("{method} {path}: no Allow header"));
            let mut allowed: Vec<String> =
                allow.split(", ").map(|m| m.to_ascii_uppercase()).collect();
            let mut want = described.clone();
            allowed.sort();
            want.sort();
            assert_eq!(allowed, want, "{method} {path}");
        }
    }
}

/// Refusals a project's routes answer: each as described, with its code.
fn errors_fit(api: &Api) {
    let shared = api.id.is_some();
    let prefix = if shared { "/projects/{id}" } else { "" };
    let p = |t: &str| api.concrete(&format!("{prefix}{t}"));
    // (described path, method, target, body, status, code)
    let get = |template, target, status, code| (template, "GET", target, None, status, code);
    let post = |template, body, code| (template, "POST", template, Some(body), 400, code);
    for (template, method, target, body, status, code) in [
        get("/query", "/query?q=", 400, "bad_query"),
        get("/query", "/query?q=x&limt=1", 400, "bad_parameter"),
        get("/query", "/query?q=x&mode=semantic", 400, "no_model"),
        post("/query", "[]", "bad_body"),
        post("/index", r#"{"fast": true}"#, "bad_body"),
        get("/documents/{path}", "/documents/nope.md", 404, "not_found"),
        get(
            "/documents/{path}",
            "/documents/{path}?heading=Nope",
            404,
            "no_such_heading",
        ),
        get(
            "/documents/{path}",
            "/documents/{path}?start=9&end=2",
            400,
            "bad_range",
        ),
        get("/documents/", "/documents/?section=", 400, "bad_parameter"),
        get("/render/{path}", "/render/nope.md", 404, "not_found"),
        get(
            "/render/{path}",
            "/render/{path}?section=nope",
            404,
            "no_such_section",
        ),
        get(
            "/render/{path}",
            "/render/{path}?start=1",
            400,
            "bad_parameter",
        ),
    ] {
        let target = p(target);
        let reply = api.send(method, &target, body, &[]);
        let got = (
            reply.status,
            reply.json()["code"].as_str().map(String::from),
        );
        assert_eq!(got, (status, Some(code.to_owned())), "{target}");
        api.check(&format!("{prefix}{template}"), method, &reply);
    }
    // The gate's refusals.
    let status = format!("{prefix}/status");
    let unauthorized = request(&api.addr, "GET", &p("/status"), None, &[]);
    assert_eq!(unauthorized.status, 401);
    api.check(&status, "get", &unauthorized);
    let foreign = api.send("GET", &p("/status"), None, &["Origin: http://evil.example"]);
    assert_eq!(foreign.status, 403);
    api.check(&status, "get", &foreign);
}

#[test]
fn a_resident_answers_as_described() {
    let t = with_fixtures();
    t.ok(&["start"]);
    let rt = t.runtime();
    let (addr, token) = (addr_of(&rt), rt["token"].as_str().unwrap().to_owned());
    // Behind the gate, as every route but /health.
    let r = get(&addr, "/openapi.json", &[]);
    assert_eq!(
        (r.status, r.json()["code"].as_str()),
        (401, Some("missing_token"))
    );
    let api = Api::new(addr, token);
    assert!(
        api.doc["paths"]["/projects"].is_null(),
        "the daemon's routes"
    );
    every_operation_answers(&api);
    errors_fit(&api);

    // MCP's own replies: a JSON-RPC error for what is not one message, 202 for a
    // notification, 406 without the Accept it needs.
    let accept = "Accept: application/json, text/event-stream";
    let batch = api.send("POST", "/mcp", Some("[1]"), &[accept]);
    assert_eq!(batch.status, 400);
    api.check("/mcp", "post", &batch);
    let note = r#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#;
    let taken = api.send("POST", "/mcp", Some(note), &[accept]);
    assert_eq!(taken.status, 202, "{taken:?}");
    api.check("/mcp", "post", &taken);
    let refused = api.send("POST", "/mcp", Some(note), &[]);
    assert_eq!(refused.status, 406);
    api.check("/mcp", "post", &refused);
    t.ok(&["stop"]);
}

/// Starts the shared daemon and registers the fixtures' project with it.
fn daemon(t: &mut TestEnv) -> Api {
    write_shared_config(t, json!({ "port": 0 }));
    let (_, addr, token) = start_daemon(t);
    let mut api = Api::new(addr, token);
    let root = json!({ "root": t.project }).to_string();
    let r = api.send("POST", "/projects", Some(&root), &[]);
    assert_eq!(r.status, 200, "{r:?}");
    api.check("/projects", "post", &r);
    api.id = Some(r.json()["id"].as_str().unwrap().to_owned());
    api.root = Some(t.project.display().to_string());
    api
}

#[test]
fn the_shared_daemon_answers_as_described() {
    let mut t = with_fixtures();
    let api = daemon(&mut t);
    assert!(api.doc["paths"]["/query"].is_null(), "a resident's routes");
    assert!(api.doc["paths"]["/mcp"].is_null(), "the daemon has no /mcp");
    every_operation_answers(&api);
    errors_fit(&api);

    let register = |body: &str| api.send("POST", "/projects", Some(body), &[]);
    let root = t.project.display().to_string();
    for (body, code) in [
        (
            json!({ "root": t.root().join("nowhere") }).to_string(),
            "bad_root",
        ),
        ("[]".to_owned(), "bad_body"),
        (json!({}).to_string(), "bad_body"),
        // A field /projects does not know is refused, as /query's and /index's are.
        (json!({ "root": root, "roots": [] }).to_string(), "bad_body"),
    ] {
        let r = register(&body);
        assert_eq!(
            (r.status, r.json()["code"].as_str()),
            (400, Some(code)),
            "{body}"
        );
        api.check("/projects", "post", &r);
    }
    let again = register(&json!({ "root": root }).to_string());
    assert_eq!(again.json()["created"], false);
    let unknown = api.send("GET", "/projects/p_00000000/query?q=x", None, &[]);
    assert_eq!(unknown.json()["code"], "unknown_project");
    api.check("/projects/{id}/query", "get", &unknown);
}

/// target/openapi-venv/bin/schemathesis, or `None` (a skip) outside CI.
fn schemathesis() -> Option<PathBuf> {
    let bin =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/openapi-venv/bin/schemathesis");
    if bin.is_file() {
        return Some(bin);
    }
    assert!(
        !in_ci(),
        "schemathesis is required in CI: run tests/openapi/setup"
    );
    eprintln!("SKIP: no schemathesis in target/openapi-venv (run tests/openapi/setup)");
    None
}

/// Runs schemathesis (tests/openapi/schemathesis.toml, with `extra` appended) against
/// the server `api` reaches, every check on; `exclude`: operation ids left out. Asserts
/// it passed and tested every other described operation.
fn conformance(t: &TestEnv, bin: &PathBuf, api: &Api, extra: &str, exclude: &[&str]) {
    let manifest = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let mut config =
        std::fs::read_to_string(manifest.join("tests/openapi/schemathesis.toml")).unwrap();
    config.push_str(extra);
    let config_file = t.root().join("schemathesis.toml");
    std::fs::write(&config_file, config).unwrap();
    let url = format!("http://{}/openapi.json", api.addr);
    let auth = format!("Authorization: Bearer {}", api.token);
    let mut cmd = Command::new(bin);
    cmd.arg("--no-color")
        .arg("--config-file")
        .arg(&config_file)
        .args(["run", &url, "-H", &auth])
        // /mcp needs it; the other routes ignore it.
        .args(["-H", "Accept: application/json, text/event-stream"])
        // One worker: Hypothesis parses source (ast.parse) in each, and Debian 12's
        // Python 3.11 then fails now and then with a spurious "SystemError: AST
        // constructor recursion depth mismatch" (python/cpython#106905). One is also
        // faster here.
        .args(["--checks", "all", "--max-examples", "50", "--workers", "1"])
        .args(["--request-timeout", "30"])
        // A path parameter can hardly be made invalid (every string is a path), so
        // most of the negative cases drawn for it are dropped.
        .args(["--suppress-health-check", "filter_too_much"]);
    for id in exclude {
        cmd.args(["--exclude-operation-id", id]);
    }
    // Hypothesis keeps its examples in the working directory.
    cmd.current_dir(t.root()).env_clear().stdin(Stdio::null());
    for (k, v) in &t.env {
        cmd.env(k, v);
    }
    cmd.env("NO_COLOR", "1");
    let started = Instant::now();
    let out = cmd.output().unwrap();
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    eprintln!("schemathesis took {:?}:\n{text}", started.elapsed());
    assert!(out.status.success(), "schemathesis failed:\n{text}");
    let number = |label: &str| {
        text.lines()
            .find_map(|l| l.trim().strip_prefix(label))
            .map(|n| n.trim().to_owned())
            .unwrap_or_else(|| panic!("no {label} in:\n{text}"))
    };
    let selected = number("Selected:");
    let (selected, total) = selected.split_once('/').unwrap();
    assert_eq!(number("Tested:"), selected, "{text}");
    let (selected, total): (usize, usize) = (selected.parse().unwrap(), total.parse().unwrap());
    assert_eq!(selected + exclude.len(), total, "{text}");
}

#[test]
fn schemathesis_finds_nothing_on_a_resident() {
    let Some(bin) = schemathesis() else { return };
    let t = with_fixtures();
    t.ok(&["start"]);
    let rt = t.runtime();
    let api = Api::new(addr_of(&rt), rt["token"].as_str().unwrap().to_owned());
    conformance(&t, &bin, &api, "", &[]);
    t.ok(&["stop"]);
}

#[test]
fn schemathesis_finds_nothing_on_the_shared_daemon() {
    let Some(bin) = schemathesis() else { return };
    let mut t = with_fixtures();
    let api = daemon(&mut t);
    // The registered project's id, drawn most of the time for `{id}`.
    let extra = format!(
        "\n[dictionaries.projects]\nvalues = [\"{}\"]\n\n[[operations]]\n\
         include-path-regex = \"^/projects/\"\n\
         parameters = {{ \"path.id\" = {{ dictionary = \"projects\", probability = 0.8 }} }}\n",
        api.id.as_deref().unwrap()
    );
    // Registering any path would index it (a generated "/" the whole file system):
    // `the_shared_daemon_answers_as_described` covers POST /projects instead.
    conformance(&t, &bin, &api, &extra, &["post_projects"]);
}

/// The check above refuses what it should: a field not described, one missing, a
/// wrong type, a value out of its enum, a null where none may be.
#[test]
fn the_check_refuses_what_is_not_described() {
    let doc = json!({ "components": { "schemas": {
        "Hit": {
            "type": "object", "required": ["path", "line"], "additionalProperties": false,
            "properties": {
                "path": { "type": "string" },
                "line": { "type": "integer", "minimum": 1 },
                "mode": { "enum": ["a", "b"] },
                "next": { "anyOf": [{ "$ref": "#/components/schemas/Hit" }, { "type": "null" }] },
            },
        },
    } } });
    let hit = json!({ "$ref": "#/components/schemas/Hit" });
    let ok = json!({ "path": "a.md", "line": 1, "mode": "a", "next": { "path": "b", "line": 2 } });
    assert_eq!(conforms(&doc, &hit, &ok, ""), Ok(()));
    for bad in [
        json!({ "path": "a.md", "line": 1, "extra": true }),
        json!({ "path": "a.md" }),
        json!({ "path": 1, "line": 1 }),
        json!({ "path": "a.md", "line": 0 }),
        json!({ "path": "a.md", "line": 1.5 }),
        json!({ "path": "a.md", "line": 1, "mode": "c" }),
        json!({ "path": "a.md", "line": 1, "next": { "path": "b" } }),
        json!(null),
    ] {
        assert!(conforms(&doc, &hit, &bad, "").is_err(), "{bad}");
    }
}
