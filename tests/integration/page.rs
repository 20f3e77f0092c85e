//! The search page in a real browser: Debian's headless `chromium`, driven by
//! tests/browser/page_test.py over the DevTools protocol (a pipe, no port). These tests
//! own the servers: a resident (or the shared daemon) on fixtures from
//! tests/fixtures/page/, and the login codes from `doc-serve open --print --json`.
//! Outside CI they skip without chromium; in CI (.ci/run installs it) they fail.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use serde_json::{Value, json};

use crate::search::{copy_dir, with_fixtures};
use crate::util::*;

fn manifest() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// A fresh one-time code and the page's base URL, from `doc-serve open` in `dir`.
fn open(t: &TestEnv, dir: &Path) -> (String, String) {
    let out = t
        .cmd(&["open", "--print", "--json"])
        .current_dir(dir)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "doc-serve open: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["opened"], false, "{v}");
    let url = v["url"].as_str().unwrap();
    let (base, fragment) = url.split_once('#').unwrap();
    let code = fragment
        .split('&')
        .find_map(|kv| kv.strip_prefix("code="))
        .unwrap_or_else(|| panic!("no code in {url}"));
    (base.trim_end_matches('/').to_owned(), code.to_owned())
}

/// Redeems `code` as the page would, so that it is used.
fn redeem(base: &str, code: &str) -> Reply {
    let addr = base.trim_start_matches("http://");
    let body = json!({ "code": code }).to_string();
    let req = format!(
        "POST /login HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    raw(addr, req.as_bytes())
}

/// Runs page_test.py SCENARIO ARGS; its JSON result, asserted ok.
fn page_test(t: &TestEnv, scenario: &str, args: &[&str]) -> Value {
    let mut cmd = Command::new("python3");
    cmd.arg(manifest().join("tests/browser/page_test.py"))
        .arg(scenario)
        .args(args)
        .current_dir(t.root())
        .env_clear()
        .stdin(Stdio::null());
    for (k, v) in &t.env {
        cmd.env(k, v);
    }
    // Chromium's profile and crash files go to the test's temp dir.
    cmd.env("TMPDIR", t.root());
    let out = cmd.output().unwrap();
    let result: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "page_test.py {scenario}: {e}\nstdout: {}\nstderr: {}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    });
    assert!(
        out.status.success() && result["ok"] == true,
        "page_test.py {scenario}: {result:#}\nstderr: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    result
}

/// A resident on `t`'s project, its first index done.
fn start(t: &TestEnv, word: &str) {
    t.ok(&["start"]);
    let v = t.json(&["query", "--json", "--", word]);
    assert!(!v["hits"].as_array().unwrap().is_empty(), "{word}: {v}");
}

#[test]
fn typing_shows_hits_and_enter_opens_the_section() {
    if skip_without("chromium") || skip_without("python3") {
        return;
    }
    let t = with_fixtures();
    start(&t, "install");
    let (base, code) = open(&t, &t.project);
    page_test(&t, "search", &["--base", &base, "--code", &code]);
}

#[test]
fn payloads_in_docs_stay_inert_with_and_without_the_csp() {
    if skip_without("chromium") || skip_without("python3") {
        return;
    }
    let t = TestEnv::new();
    let docs = t.project.join("docs");
    copy_dir(&manifest().join("tests/fixtures/page/xss/docs"), &docs);
    // A legal Linux file name that is markup: its path is shown in hits and the reader.
    std::fs::copy(
        docs.join("evil.md"),
        docs.join("<img src=x onerror=alert(1)>.md"),
    )
    .unwrap();
    start(&t, "payload");
    let (base, code) = open(&t, &t.project);
    let (_, code2) = open(&t, &t.project);
    let v = page_test(
        &t,
        "xss",
        &[
            "--base", &base, "--code", &code, "--code2", &code2, "--query", "payload",
        ],
    );
    assert!(v["opened with CSP"].as_u64().unwrap() >= 3, "{v}");
}

#[test]
fn the_page_refuses_missing_used_and_expired_codes() {
    if skip_without("chromium") || skip_without("python3") {
        return;
    }
    let mut t = with_fixtures();
    t.set("DOC_SERVE_LOGIN_CODE_SECONDS", "1");
    start(&t, "install");
    let (base, used) = open(&t, &t.project);
    assert_eq!(redeem(&base, &used).status, 200);
    let (_, expired) = open(&t, &t.project);
    std::thread::sleep(Duration::from_millis(1500));
    // No good code: one lasting a second would expire before the browser is up, and the
    // other scenarios log in with one.
    page_test(
        &t,
        "login",
        &[
            "--base",
            &base,
            "--used-code",
            &used,
            "--expired-code",
            &expired,
        ],
    );
}

#[test]
fn the_file_open_hands_the_browser_lands_signed_in() {
    if skip_without("chromium") || skip_without("python3") {
        return;
    }
    let mut t = with_fixtures();
    start(&t, "install");
    // A "browser" that takes the file and does nothing: the test's Chromium opens it.
    t.set("BROWSER", "true");
    t.set("DISPLAY", ":0");
    let v = t.json(&["open", "--json"]);
    assert_eq!(v["opened"], true, "{v}");
    let url = v["url"].as_str().unwrap();
    let base = url.split_once("/#").unwrap().0;
    let file = t.state_file("open.html");
    page_test(
        &t,
        "redirect",
        &["--base", base, "--file", file.to_str().unwrap()],
    );
}

#[test]
fn the_shared_daemon_page_picks_a_project() {
    if skip_without("chromium") || skip_without("python3") {
        return;
    }
    let t = TestEnv::new();
    crate::shared::write_shared_config(&t, json!({ "port": 0 }));
    let mut ids = Vec::new();
    for name in ["alpha", "beta"] {
        let root = t.root().join(name);
        std::fs::create_dir_all(root.join(".git")).unwrap();
        copy_dir(
            &manifest().join(format!("tests/fixtures/page/{name}/docs")),
            &root.join("docs"),
        );
        let path = root.to_str().unwrap();
        let init = t.json(&["--path", path, "init", "--mode", "shared", "--json"]);
        ids.push(init["shared"]["project_id"].as_str().unwrap().to_owned());
        t.ok(&["--path", path, "start"]);
        t.json(&["--path", path, "query", "--json", "install"]);
    }
    let (base, code) = open(&t, &t.root().join("alpha"));
    let v = page_test(
        &t,
        "daemon",
        &[
            "--base",
            &base,
            "--code",
            &code,
            "--pick",
            &ids[1],
            "--query",
            "zebrafish",
            "--expect-path",
            "docs/beta.md",
        ],
    );
    assert_eq!(v["projects"].as_array().unwrap().len(), 2, "{v}");
}

#[test]
fn dark_mode_follows_the_system() {
    if skip_without("chromium") || skip_without("python3") {
        return;
    }
    let t = with_fixtures();
    start(&t, "install");
    let (base, code) = open(&t, &t.project);
    page_test(&t, "dark", &["--base", &base, "--code", &code]);
}
