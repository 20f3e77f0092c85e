//! MCP through real clients: the official Python SDK over stdio (`doc-serve mcp`) and
//! over Streamable HTTP (/mcp), and the official conformance suite. Both are installed
//! under target/ by tests/mcp/setup (which .ci/run runs); outside CI the tests skip
//! without them, saying so.

use std::path::PathBuf;
use std::process::{Command, Stdio};

use serde_json::Value;

use crate::search::with_fixtures;
use crate::util::*;

fn manifest() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The venv's Python with the `mcp` SDK, or `None` (a skip) outside CI.
pub fn python() -> Option<PathBuf> {
    let py = manifest().join("target/mcp-venv/bin/python");
    let ok = Command::new(&py)
        .args(["-c", "import mcp"])
        .output()
        .is_ok_and(|o| o.status.success());
    if ok {
        return Some(py);
    }
    assert!(
        !in_ci(),
        "the MCP Python SDK is required in CI: run tests/mcp/setup"
    );
    eprintln!("SKIP: no MCP Python SDK in target/mcp-venv (run tests/mcp/setup)");
    None
}

/// Runs tests/mcp/client.py ARGS in the test environment; its JSON output.
pub fn client(t: &TestEnv, py: &PathBuf, args: &[&str]) -> Value {
    let mut cmd = Command::new(py);
    cmd.arg(manifest().join("tests/mcp/client.py"))
        .args(args)
        .current_dir(&t.project)
        .env_clear()
        .stdin(Stdio::null());
    for (k, v) in &t.env {
        cmd.env(k, v);
    }
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "client.py {args:?}\nstdout: {}\nstderr: {}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

/// tests/mcp/client.py MODE against `doc-serve mcp` on the test's project.
fn bridge(t: &TestEnv, py: &PathBuf, mode: &str, extra: &[&str]) -> Value {
    let project = t.project.display().to_string();
    let mut args = vec![mode, BIN, &project];
    args.extend_from_slice(extra);
    client(t, py, &args)
}

/// Three bridges at once: no errors, the same answer, one resident.
fn three_bridges(t: &TestEnv, py: &PathBuf) {
    let v = bridge(t, py, "bridges", &["3"]);
    assert_eq!(v["errors"], serde_json::json!([false, false, false]), "{v}");
    let texts = v["texts"].as_array().unwrap();
    assert!(texts.iter().all(|x| x == &texts[0]), "{v}");
    assert!(texts[0].as_str().unwrap().contains("install.md"), "{v}");
    assert_eq!(residents(t), 1);
}

/// What every transport must show: the tools, their answers, errors as tool errors.
fn check_session(v: &Value) {
    assert_eq!(v["server"], "doc-serve", "{v}");
    assert_eq!(
        v["tools"],
        serde_json::json!(["index_status", "read_doc", "reindex", "search_docs"])
    );
    assert_eq!(v["described"], true, "tools need descriptions and schemas");
    let ok = |k: &str| {
        assert_eq!(v[k]["error"], false, "{k}: {}", v[k]);
        v[k]["text"].as_str().unwrap().to_owned()
    };
    let search = ok("search");
    assert!(search.contains("docs/guide/install.md (lines"), "{search}");
    assert!(ok("read_range").contains("title: Installing Widgetd"));
    let section = ok("read_heading");
    assert!(section.contains("## Linux") && section.contains("./install.sh --dry-run"));
    assert!(!section.contains("Configuration file"), "{section}");
    let status: Value = serde_json::from_str(&ok("status")).unwrap();
    assert_eq!(status["index"]["files"], 5, "{status}");
    let reindex: Value = serde_json::from_str(&ok("reindex")).unwrap();
    assert_eq!(reindex["summary"]["unchanged"], 5, "{reindex}");
    for (call, r) in v["bad_arguments"].as_object().unwrap() {
        assert_eq!(r["error"], true, "{call} should be a tool error: {r}");
        assert!(!r["text"].as_str().unwrap().is_empty(), "{call}");
    }
    assert!(
        v["unknown_tool"].as_str().unwrap().contains("unknown tool"),
        "{v}"
    );
    assert!(ok("after").contains("docs/guide/install.md"));
}

/// Processes running `doc-serve ... serve` for this test's project.
fn residents(t: &TestEnv) -> usize {
    let marker = t.root().to_string_lossy().into_owned();
    std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter(|e| {
            let cmdline = std::fs::read(e.path().join("cmdline")).unwrap_or_default();
            let args: Vec<&[u8]> = cmdline.split(|b| *b == 0).collect();
            args.contains(&b"serve".as_slice())
                && String::from_utf8_lossy(&cmdline).contains(&marker)
        })
        .count()
}

#[test]
fn stdio_bridge_serves_every_tool_through_one_resident() {
    let Some(py) = python() else { return };
    let t = with_fixtures();
    // No resident yet: the bridge starts one.
    let v = bridge(&t, &py, "stdio", &[]);
    check_session(&v);
    let first = t.runtime();
    assert_eq!(residents(&t), 1);

    // Three bridges at once: one resident (the same one), consistent answers.
    three_bridges(&t, &py);
    assert_eq!(t.runtime()["pid"], first["pid"]);
    t.ok(&["stop"]);
}

#[test]
fn three_bridges_on_a_fresh_project_start_one_resident() {
    let Some(py) = python() else { return };
    let t = with_fixtures();
    three_bridges(&t, &py);
    t.ok(&["stop"]);
}

#[test]
fn bridge_survives_its_resident_being_killed() {
    let Some(py) = python() else { return };
    let t = with_fixtures();
    let v = bridge(&t, &py, "survive", &[]);
    assert_eq!(v["first"]["error"], false, "{v}");
    assert_eq!(v["second"]["error"], false, "{v}");
    // The new resident may still be reconciling (and say so after the same hits).
    let (first, second) = (
        v["first"]["text"].as_str().unwrap(),
        v["second"]["text"].as_str().unwrap(),
    );
    assert!(second.starts_with(first.trim_end()), "{v}");
    assert_ne!(v["new_pid"], v["killed"], "{v}");
    assert_eq!(residents(&t), 1);
    t.ok(&["stop"]);
}

#[test]
fn bridge_answers_standalone_when_no_resident_can_start() {
    let Some(py) = python() else { return };
    let mut t = with_fixtures();
    // An address no interface has: every resident fails to bind.
    t.set("DOC_SERVE_BIND_HOST", "192.0.2.1");
    let v = bridge(&t, &py, "stdio", &[]);
    check_session(&v);
    assert!(
        v["status"]["text"].as_str().unwrap().contains("standalone"),
        "{v}"
    );
    assert!(!t.state_file("runtime.json").exists());
    assert_eq!(residents(&t), 0);
}

#[test]
fn streamable_http_at_slash_mcp() {
    let Some(py) = python() else { return };
    let t = with_fixtures();
    t.ok(&["start"]);
    let rt = t.runtime();
    let url = format!("{}/mcp", rt["base_url"].as_str().unwrap());
    let v = client(&t, &py, &["http", &url, rt["token"].as_str().unwrap()]);
    check_session(&v);

    // The gate holds for /mcp as for every route.
    let addr = addr_of(&rt);
    let init = r#"{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"t","version":"1"}}}"#;
    let post = |headers: &str| {
        raw(
            &addr,
            format!(
                "POST /mcp HTTP/1.1\r\nContent-Type: application/json\r\n\
                 Accept: application/json, text/event-stream\r\n{headers}\
                 Content-Length: {}\r\nConnection: close\r\n\r\n{init}",
                init.len()
            )
            .as_bytes(),
        )
    };
    let token = format!(
        "Authorization: Bearer {}\r\n",
        rt["token"].as_str().unwrap()
    );
    assert_eq!(post(&format!("Host: {addr}\r\n")).status, 401);
    assert_eq!(post(&format!("Host: evil.example\r\n{token}")).status, 403);
    assert_eq!(
        post(&format!(
            "Host: {addr}\r\nOrigin: http://evil.example\r\n{token}"
        ))
        .status,
        403
    );
    assert_eq!(post(&format!("Host: {addr}\r\n{token}")).status, 200);
    // rmcp's own refusals come back as doc-serve's JSON errors.
    let no_accept = raw(
        &addr,
        format!(
            "POST /mcp HTTP/1.1\r\nHost: {addr}\r\n{token}Content-Type: application/json\r\n\
             Content-Length: {}\r\nConnection: close\r\n\r\n{init}",
            init.len()
        )
        .as_bytes(),
    );
    assert_eq!(no_accept.status, 406, "{no_accept:?}");
    let v = no_accept.json();
    assert_eq!(v["code"], "not_acceptable", "{v}");
    assert!(v["message"].as_str().is_some_and(|m| !m.is_empty()), "{v}");
    t.ok(&["stop"]);
}

#[test]
fn conformance_suite() {
    let Some(_) = python() else { return };
    let node_bin = manifest().join("target/mcp-node/node_modules/.bin");
    if !node_bin.join("conformance").exists() {
        assert!(
            !in_ci(),
            "the MCP conformance suite is required in CI: run tests/mcp/setup"
        );
        eprintln!("SKIP: no MCP conformance suite in target/mcp-node (run tests/mcp/setup)");
        return;
    }
    let mut t = with_fixtures();
    t.ok(&["start"]);
    let rt = t.runtime();
    // The suite cannot send the bearer token: a loopback proxy adds it.
    let mut proxy = Command::new("python3");
    proxy
        .arg(manifest().join("tests/mcp/auth_proxy.py"))
        .args([
            rt["base_url"].as_str().unwrap(),
            rt["token"].as_str().unwrap(),
        ])
        .stdout(Stdio::piped());
    let mut child = proxy.spawn().unwrap();
    let mut port = String::new();
    std::io::BufRead::read_line(
        &mut std::io::BufReader::new(child.stdout.take().unwrap()),
        &mut port,
    )
    .unwrap();
    t.spawn_adopted(child);
    let results = t.root().join("conformance");
    let path = format!(
        "{}:{}",
        node_bin.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let out = Command::new(node_bin.join("conformance"))
        .args([
            "server",
            "--url",
            &format!("http://127.0.0.1:{}/mcp", port.trim()),
        ])
        .arg("-o")
        .arg(&results)
        .env("PATH", path)
        .output()
        .unwrap();
    let log = String::from_utf8_lossy(&out.stdout);
    // Scenario -> passed, from the suite's per-scenario checks.
    let mut outcome = std::collections::BTreeMap::new();
    for dir in std::fs::read_dir(&results).unwrap().flatten() {
        let checks: Value =
            serde_json::from_slice(&std::fs::read(dir.path().join("checks.json")).unwrap())
                .unwrap();
        let checks = checks.as_array().unwrap();
        let name = dir.file_name().to_string_lossy().into_owned();
        // server-<scenario>-<YYYY-MM-DDTHH-MM-SS-mmmZ>
        let name = name.strip_prefix("server-").unwrap_or(&name);
        let stamp = (0..name.len())
            .find(|&i| {
                let b = name.as_bytes();
                b[i] == b'-'
                    && b.len() > i + 11
                    && b[i + 1..i + 5].iter().all(u8::is_ascii_digit)
                    && b[i + 11] == b'T'
            })
            .unwrap_or(name.len());
        let scenario = name[..stamp].to_owned();
        let passed = !checks.is_empty()
            && checks
                .iter()
                .all(|c| c["status"] != "FAILURE" && c["status"] != "ERROR");
        outcome.insert(scenario, passed);
    }
    eprintln!("conformance: {outcome:?}");
    // The scenarios that apply to a docs server (tools, no resources, prompts,
    // logging, completion, sampling or elicitation; the tools-call-* scenarios call
    // the suite's own fixture tools).
    for s in [
        "server-initialize",
        "ping",
        "tools-list",
        "dns-rebinding-protection",
    ] {
        assert_eq!(outcome.get(s), Some(&true), "{s} must pass:\n{log}");
    }
    t.ok(&["stop"]);
}

#[test]
fn bridge_of_a_shared_mode_project_uses_the_shared_daemon() {
    let Some(py) = python() else { return };
    let t = with_fixtures();
    let home = t.root().join("home/.doc-serve");
    std::fs::create_dir_all(&home).unwrap();
    std::fs::write(home.join("shared_config.json"), r#"{"port": 0}"#).unwrap();
    t.ok(&["init", "--mode", "shared"]);
    // The bridge starts the daemon, which serves every tool for the project.
    let v = bridge(&t, &py, "stdio", &[]);
    check_session(&v);
    let daemon: Value =
        serde_json::from_str(&std::fs::read_to_string(home.join("runtime.json")).unwrap()).unwrap();
    assert_eq!(daemon["mode"], "shared");
    assert_eq!(t.runtime()["base_url"], daemon["base_url"], "the pointer");
    assert!(!t.state_dir().join("data").exists(), "no index of its own");
    t.ok(&["stop", "--shared"]);
}

#[test]
fn a_long_reindex_reports_its_progress() {
    let Some(py) = python() else { return };
    let t = TestEnv::new();
    // Enough files that a full reindex takes several of the bridge's looks at it.
    for d in 0..20 {
        let dir = t.project.join(format!("docs/d{d}"));
        std::fs::create_dir_all(&dir).unwrap();
        for f in 0..150 {
            let body = format!("# Page {d} {f}\n\nwords about widgets {d} and gadgets {f}\n");
            std::fs::write(dir.join(format!("p{f}.md")), body.repeat(20)).unwrap();
        }
    }
    let v = bridge(&t, &py, "progress", &[]);
    assert_eq!(v["error"], false, "{v}");
    assert_eq!(v["structured"]["summary"]["scanned"], 3000, "{v}");
    let notes = v["notes"].as_array().unwrap();
    assert!(!notes.is_empty(), "no progress notification: {v}");
    let done: Vec<u64> = notes
        .iter()
        .map(|n| n[0].as_f64().unwrap() as u64)
        .collect();
    assert!(done.windows(2).all(|w| w[0] < w[1]), "{done:?}");
    assert!(notes.iter().all(|n| n[1] == 3000.0), "{v}");
    assert!(done.iter().all(|d| *d <= 3000), "{done:?}");
    t.ok(&["stop"]);
}
