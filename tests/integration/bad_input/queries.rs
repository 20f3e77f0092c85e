//! Bad input, bad queries: syntax a user might try, empty and enormous queries, and
//! document paths with `..`. Through the CLI (standalone and delegated), HTTP and
//! MCP, each is answered or explained, and nothing outside the root is read.

use std::io::Write;
use std::process::Stdio;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use super::*;

/// Queries in a syntax a user might try, half-typed or wrong.
const ODD_QUERIES: [&str; 23] = [
    "\"unclosed",
    "\"",
    "(((",
    ")",
    "AND OR NOT",
    "foo:bar",
    "title:x^3",
    "quorum^-1",
    "quorum~2",
    "[a TO z]",
    "{a TO *}",
    "*:*",
    "a* ?b",
    "/regex.*/",
    "\\",
    "-",
    "+",
    "!",
    "path:",
    "a\u{0}b",
    "\u{202e}quorum \u{301}",
    "😀 émoji",
    "\"quorum\" -\"quorum\"",
];

/// 200 or a 400 that explains itself; never a 5xx or a dropped connection.
fn answered(r: &Reply, what: &str) {
    match r.status {
        200 => assert!(r.json()["hits"].is_array(), "{what}: {r:?}"),
        400 => {
            let v = r.json();
            assert_eq!(v["code"], "bad_query", "{what}: {r:?}");
            assert!(!v["message"].as_str().unwrap().is_empty(), "{what}");
        }
        _ => panic!("{what}: {r:?}"),
    }
}

/// The CLI answers (0 or 1, with JSON) or explains (2, with a message); the code.
fn cli_answers(t: &TestEnv, q: &str) -> i32 {
    let out = run(t, &["query", "--json", "--", q]);
    let err = String::from_utf8_lossy(&out.stderr);
    match out.status.code() {
        Some(0 | 1) => {
            let v: Value = serde_json::from_slice(&out.stdout).unwrap();
            assert!(v["hits"].is_array(), "{q}: {v}");
        }
        Some(2) => assert!(err.contains("doc-serve: error: "), "{q}: {err}"),
        other => panic!("{q}: exit {other:?}: {err}"),
    }
    out.status.code().unwrap()
}

/// `doc-serve mcp` over stdio: initialize, then each `(tool, arguments)` as a
/// tools/call. Returns each call's result (`content`, `isError`), in order.
fn mcp_calls(t: &TestEnv, calls: &[(&str, Value)]) -> Vec<Value> {
    let mut lines = vec![
        json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
            "protocolVersion": "2025-06-18", "capabilities": {},
            "clientInfo": {"name": "bad_input", "version": "1"}}}),
        json!({"jsonrpc": "2.0", "method": "notifications/initialized"}),
    ];
    for (i, (name, args)) in calls.iter().enumerate() {
        lines.push(
            json!({"jsonrpc": "2.0", "id": 100 + i, "method": "tools/call",
            "params": {"name": name, "arguments": args}}),
        );
    }
    let input: String = lines.iter().map(|l| format!("{l}\n")).collect();
    let mut child = t
        .cmd(&["mcp"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Closing stdin ends the session once every call is answered.
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.as_bytes())
        .unwrap();
    let pid = child.id();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || tx.send(child.wait_with_output()));
    let Ok(out) = rx.recv_timeout(Duration::from_secs(30)) else {
        signal(pid, Signal::SIGKILL);
        panic!("doc-serve mcp did not finish within 30 s");
    };
    let out = checked(&["mcp"], out.unwrap());
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let answers: Vec<Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    (0..calls.len())
        .map(|i| {
            let a = answers
                .iter()
                .find(|a| a["id"] == 100 + i)
                .unwrap_or_else(|| panic!("no answer to call {i}: {answers:?}"));
            a["result"].clone()
        })
        .collect()
}

fn mcp_text(result: &Value) -> String {
    result["content"][0]["text"]
        .as_str()
        .unwrap_or_default()
        .to_owned()
}

#[test]
fn query_syntax_errors() {
    let (mut t, base) = indexed();
    // Standalone, then through a resident: each answers or explains, the same way.
    // (A command line cannot hold a NUL: that one goes over HTTP only.)
    let argv: Vec<&str> = ODD_QUERIES
        .into_iter()
        .filter(|q| !q.contains('\0'))
        .collect();
    let standalone: Vec<i32> = argv.iter().map(|q| cli_answers(&t, q)).collect();
    let r = serving(&mut t);
    let delegated: Vec<i32> = argv.iter().map(|q| cli_answers(&t, q)).collect();
    assert_eq!(standalone, delegated, "{argv:?}");
    for q in ODD_QUERIES {
        let mut qs = form_urlencoded::Serializer::new(String::new());
        qs.append_pair("q", q);
        answered(&r.get(&format!("/query?{}", qs.finish())), q);
        answered(&r.post("/query", &json!({ "q": q }).to_string()), q);
    }
    // Raw bytes that are not UTF-8, and bodies that are not a query.
    answered(&r.get("/query?q=%FF%FE%C0%AF"), "invalid UTF-8");
    for body in [
        "{\"q\": 5}",
        "{\"q\": [\"a\"]}",
        "{\"limit\": -1, \"q\": \"a\"}",
        "{\"limit\": 0, \"q\": \"a\"}",
        "{\"q\": \"a\", \"limt\": 3}",
    ] {
        let reply = r.post("/query", body);
        assert_eq!(reply.status, 400, "{body}: {reply:?}");
        assert!(!reply.json()["message"].as_str().unwrap().is_empty());
    }
    for qs in ["q=a&limit=0", "q=a&limit=-1", "q=a&limit=lots"] {
        let reply = r.get(&format!("/query?{qs}"));
        assert_eq!(reply.status, 400, "{qs}: {reply:?}");
        assert_eq!(reply.json()["code"], "bad_parameter", "{qs}");
        assert!(
            reply.json()["message"]
                .as_str()
                .unwrap()
                .contains("whole number")
        );
    }
    for limit in ["--limit=0", "--limit=-1", "--limit=x", "-n0"] {
        fails(&t, &["query", limit, "a"], &["at least 1"]);
    }
    // A misspelt field is an error, not silently a different request.
    let reply = r.post("/index", "{\"fulll\": true}");
    assert_eq!(reply.status, 400, "{reply:?}");
    assert_eq!(reply.json()["code"], "bad_body");
    assert_eq!(r.get("/health").status, 200);
    assert_eq!(answers(&t), base);
    r.stop(&mut t);
    assert_intact(&t, &base);
    assert_no_panic_logged(&t);
}

#[test]
fn empty_queries() {
    let (mut t, base) = indexed();
    let empty = ["", "   ", "\t\n", "\"\"", "-onlyexcluded", "path:docs"];
    for q in empty {
        fails(&t, &["query", "--", q], &["no words"]);
    }
    let r = serving(&mut t);
    for q in empty {
        fails(&t, &["query", "--", q], &["no words"]);
    }
    for path in ["/query", "/query?q=", "/query?q=%20%20", "/query?limit=3"] {
        let reply = r.get(path);
        assert_eq!(reply.status, 400, "{path}: {reply:?}");
        assert_eq!(reply.json()["code"], "bad_query", "{path}");
    }
    for body in ["", "{}", "{\"q\": \"\"}", "{\"q\": \"  \"}"] {
        let reply = r.post("/query", body);
        assert_eq!(reply.status, 400, "{body:?}: {reply:?}");
        assert!(!reply.json()["message"].as_str().unwrap().is_empty());
    }
    // Through MCP (the bridge uses the resident): an error the assistant can read.
    let calls = [
        ("search_docs", json!({ "query": "" })),
        ("search_docs", json!({ "query": "  " })),
    ];
    for result in mcp_calls(&t, &calls) {
        assert_eq!(result["isError"], true, "{result}");
        assert!(!mcp_text(&result).is_empty(), "{result}");
    }
    assert_eq!(answers(&t), base);
    r.stop(&mut t);
    assert_intact(&t, &base);
    assert_no_panic_logged(&t);
}

#[test]
fn enormous_queries() {
    let (mut t, base) = indexed();
    let long = "word ".repeat(2000);
    let many: String = (0..65).map(|i| format!("w{i} ")).collect();
    fails(&t, &["query", &long], &["limit"]);
    fails(&t, &["query", &many], &["64 terms"]);
    let r = serving(&mut t);
    fails(&t, &["query", &long], &["limit"]);
    fails(&t, &["query", &many], &["64 terms"]);

    // A body of nearly a megabyte, and a URL of 200 kB: refused, quickly.
    let begun = Instant::now();
    let huge = "x".repeat(900_000);
    let reply = r.post("/query", &json!({ "q": huge }).to_string());
    assert_eq!(reply.status, 400, "{reply:?}");
    assert!(reply.json()["message"].as_str().unwrap().contains("limit"));
    let reply = r.get(&format!("/query?q={}", &huge[..200_000]));
    assert!((400..500).contains(&reply.status), "{reply:?}");
    // The longest query allowed, and the most terms allowed, in a bounded time.
    let longest = "quorum ".repeat(585);
    let reply = r.get(&format!("/query?q={}", longest.trim().replace(' ', "+")));
    answered(&reply, "4 KiB of words");
    let most: String = (0..64).map(|i| format!("quorum{i}* ")).collect();
    answered(
        &r.get(&format!("/query?q={}", most.replace(' ', "+"))),
        "64 prefixes",
    );
    assert!(
        begun.elapsed() < Duration::from_secs(10),
        "{:?}",
        begun.elapsed()
    );

    let calls = [("search_docs", json!({ "query": long }))];
    let result = &mcp_calls(&t, &calls)[0];
    assert_eq!(result["isError"], true, "{result}");
    assert!(mcp_text(result).contains("limit"), "{result}");
    assert_eq!(answers(&t), base);
    r.stop(&mut t);
    assert_intact(&t, &base);
    assert_no_panic_logged(&t);
}

#[test]
fn paths_with_dot_dot() {
    let (mut t, base) = indexed();
    // Files outside the root; "leakedtail" would show only if one were read.
    let secret = "outsidesecretword";
    for dir in [t.root(), t.root().join("home")] {
        let text = format!("# S\n\n{secret} leakedtail\n");
        std::fs::write(dir.join("secret.md"), text).unwrap();
    }
    let r = serving(&mut t);
    for bad in [
        "../secret.md",
        "docs/../../secret.md",
        "docs/guide/../../../secret.md",
        "..%2Fsecret.md",
        "%2E%2E/secret.md",
        "docs%2F..%2F..%2Fsecret.md",
        "docs/%2e%2e/%2e%2e/home/secret.md",
        "./docs/../../secret.md",
        "docs/..\\..\\secret.md",
        "docs/guide/../notes.txt",
    ] {
        let reply = r.get(&format!("/documents/{bad}"));
        assert_eq!(reply.status, 404, "{bad}: {reply:?}");
        assert_eq!(reply.json()["code"], "not_found", "{bad}");
        assert!(!reply.body.contains("leakedtail"), "{bad} leaked the file");
    }
    // The same through MCP, and as path prefixes of a query.
    let calls: Vec<(&str, Value)> = ["../secret.md", "docs/../../secret.md", "/etc/passwd"]
        .iter()
        .map(|p| ("read_doc", json!({ "path": p })))
        .chain([(
            "search_docs",
            json!({"query": secret, "path_prefix": "../"}),
        )])
        .collect();
    let results = mcp_calls(&t, &calls);
    for (call, result) in calls.iter().zip(&results) {
        assert!(!result.to_string().contains("leakedtail"), "{call:?}");
    }
    for result in &results[..3] {
        assert_eq!(result["isError"], true, "{result}");
        assert!(mcp_text(result).contains("no document"), "{result}");
    }
    for prefix in ["../", "docs/../..", ".."] {
        let out = run(&t, &["query", "--json", "--path-prefix", prefix, secret]);
        assert_eq!(out.status.code(), Some(1), "{prefix}");
        let out = run(&t, &["query", "--json", "--path-prefix", prefix, "quorum"]);
        assert_eq!(out.status.code(), Some(1), "{prefix}");
    }
    assert!(hits(&t, &format!("{secret} path:../")).is_empty());
    assert_eq!(answers(&t), base);
    r.stop(&mut t);
    assert_intact(&t, &base);
    assert_no_panic_logged(&t);
}
