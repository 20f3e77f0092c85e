//! The search page's files and the way a browser gets in (README, "Search page"): the
//! page is public and locked down; a one-time code from `doc-serve open` becomes a
//! session that only reads, only on its port, until it expires or the key changes.

use std::os::unix::net::UnixStream;
use std::process::{Command, Stdio};
use std::time::Duration;

use nix::sys::signal::Signal;
use serde_json::{Value, json};

use crate::shared::write_shared_config;
use crate::util::*;

const WAIT: Duration = Duration::from_secs(15);

fn serving(t: &mut TestEnv) -> (u32, String, String) {
    let pid = t.spawn_serve(&[]);
    let rt = t.wait_runtime(WAIT);
    (pid, addr_of(&rt), rt["token"].as_str().unwrap().to_string())
}

fn post(addr: &str, path: &str, headers: &[&str], body: &str) -> Reply {
    let mut req = format!(
        "POST {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\n",
        body.len()
    );
    for h in headers {
        req.push_str(h);
        req.push_str("\r\n");
    }
    req.push_str("\r\n");
    req.push_str(body);
    raw(addr, req.as_bytes())
}

fn header<'r>(reply: &'r Reply, name: &str) -> Option<&'r str> {
    reply.head.lines().find_map(|l| {
        let (n, v) = l.split_once(':')?;
        n.eq_ignore_ascii_case(name).then(|| v.trim())
    })
}

/// `doc-serve open --print --json`: (url, code).
fn open(t: &TestEnv) -> (String, String) {
    let v = t.json(&["open", "--print", "--json"]);
    assert_eq!(v["opened"], false, "{v}");
    let url = v["url"].as_str().unwrap().to_owned();
    let code = url.split("#code=").nth(1).unwrap();
    let code = code.split('&').next().unwrap().to_owned();
    (url, code)
}

fn login(addr: &str, code: &str) -> Reply {
    post(addr, "/login", &[], &json!({ "code": code }).to_string())
}

fn session_of(addr: &str, code: &str) -> String {
    let r = login(addr, code);
    assert_eq!(r.status, 200, "{r:?}");
    r.json()["session"].as_str().unwrap().to_owned()
}

#[test]
fn the_page_is_public_and_locked_down() {
    let mut t = TestEnv::new();
    let (_, addr, _) = serving(&mut t);
    let csp = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; \
               connect-src 'self'; base-uri 'none'; form-action 'none'; \
               frame-ancestors 'none'; require-trusted-types-for 'script'; trusted-types 'none'";
    for (path, kind) in [
        ("/", "text/html; charset=utf-8"),
        ("/ui/app.js", "text/javascript; charset=utf-8"),
        ("/ui/doc.js", "text/javascript; charset=utf-8"),
        ("/ui/app.css", "text/css; charset=utf-8"),
        ("/ui/icon.svg", "image/svg+xml"),
    ] {
        let r = get(&addr, path, &[]);
        assert_eq!(r.status, 200, "{path}: {r:?}");
        assert_eq!(header(&r, "content-type"), Some(kind), "{path}");
        assert_eq!(header(&r, "content-security-policy"), Some(csp), "{path}");
        assert_eq!(header(&r, "x-content-type-options"), Some("nosniff"));
        assert_eq!(header(&r, "x-frame-options"), Some("DENY"));
        let etag = header(&r, "etag").unwrap().to_owned();
        let again = get(&addr, path, &[&format!("If-None-Match: {etag}")]);
        assert_eq!(again.status, 304, "{path}: {again:?}");
        assert_eq!(again.body, "");
    }
    let html = get(&addr, "/", &[]).body;
    assert!(html.contains("/ui/app.js") && !html.contains("<script>"));
    assert_eq!(get(&addr, "/ui/nope.js", &[]).status, 404);
    // A fixed table: no path reaches past it.
    assert_eq!(get(&addr, "/ui/../status", &[]).status, 404);
    // Only those: the API behind them still needs a token or a session.
    assert_eq!(get(&addr, "/query?q=x", &[]).status, 401);
    assert_eq!(get(&addr, "/openapi.json", &[]).status, 401);
    let r = post(&addr, "/", &[], "{}");
    assert_eq!(
        (r.status, r.json()["code"].clone()),
        (405, json!("method_not_allowed"))
    );
    // JSON answers carry nosniff too.
    assert_eq!(
        header(&get(&addr, "/health", &[]), "x-content-type-options"),
        Some("nosniff")
    );
}

#[test]
fn a_code_is_good_once_and_its_session_only_reads() {
    let mut t = TestEnv::new();
    std::fs::write(
        t.project.join("a.md"),
        "# Alpha\n\nThe loginword is here.\n",
    )
    .unwrap();
    let (_, addr, token) = serving(&mut t);
    let (url, code) = open(&t);
    assert!(url.starts_with(&format!("http://{addr}/#code=")), "{url}");
    assert_eq!(code.len(), 32, "{url}");

    let r = login(&addr, &code);
    assert_eq!(r.status, 200, "{r:?}");
    let v = r.json();
    assert_eq!(v["kind"], "resident");
    assert_eq!(v["expires_in"], 43200);
    let session = v["session"].as_str().unwrap().to_owned();
    assert!(session.starts_with("dss1."), "{session}");
    // Once.
    let again = login(&addr, &code);
    assert_eq!(
        (again.status, again.json()["code"].clone()),
        (401, json!("code_used"))
    );
    assert!(
        again.json()["message"]
            .as_str()
            .unwrap()
            .contains("doc-serve open")
    );
    for (body, status, code) in [
        (
            json!({ "code": "0".repeat(32) }).to_string(),
            401,
            "invalid_code",
        ),
        (json!({}).to_string(), 400, "bad_body"),
        (json!({ "code": code, "x": 1 }).to_string(), 400, "bad_body"),
        ("[]".to_owned(), 400, "bad_body"),
    ] {
        let r = post(&addr, "/login", &[], &body);
        assert_eq!(
            (r.status, r.json()["code"].clone()),
            (status, json!(code)),
            "{body}"
        );
    }

    // The session reads...
    let auth = format!("Authorization: Bearer {session}");
    let q = wait_for(WAIT, "the index", || {
        let r = get(&addr, "/query?q=loginword", &[&auth]);
        (r.status == 200 && !r.json()["hits"].as_array().unwrap().is_empty()).then_some(r)
    });
    assert_eq!(q.json()["hits"][0]["path"], "a.md");
    for path in ["/status", "/documents/a.md", "/openapi.json"] {
        assert_eq!(get(&addr, path, &[&auth]).status, 200, "{path}");
    }
    assert_eq!(
        post(&addr, "/query", &[&auth], r#"{"q":"loginword"}"#).status,
        200
    );
    // ...and nothing else: no reindex, no MCP, no codes of its own.
    for path in ["/index", "/login/code", "/mcp"] {
        let r = post(&addr, path, &[&auth], "{}");
        assert_eq!(
            (r.status, r.json()["code"].clone()),
            (403, json!("session_not_allowed")),
            "{path}: {r:?}"
        );
    }
    // Only as made.
    let mut flipped = session.clone();
    let last = flipped.pop().unwrap();
    flipped.push(if last == '0' { '1' } else { '0' });
    let r = get(
        &addr,
        "/status",
        &[&format!("Authorization: Bearer {flipped}")],
    );
    assert_eq!(
        (r.status, r.json()["code"].clone()),
        (401, json!("bad_token"))
    );

    // Codes come only with the token (or over the Unix socket).
    let r = post(&addr, "/login/code", &[], "");
    assert_eq!(
        (r.status, r.json()["code"].clone()),
        (401, json!("missing_token"))
    );
    let r = post(
        &addr,
        "/login/code",
        &[&format!("Authorization: Bearer {token}")],
        "",
    );
    assert_eq!(r.status, 200, "{r:?}");
    let v = r.json();
    assert_eq!(v["urls"], json!([format!("http://{addr}/")]));
    assert_eq!(v["expires_in"], 60);

    // The key that signs sessions is the user's alone, and a copy of it in the docs
    // is neither indexed nor served (as a copy of the token is not).
    assert_eq!(mode_of(&t.state_file("session.key")), 0o600);
    let key = std::fs::read_to_string(t.state_file("session.key")).unwrap();
    std::fs::write(t.project.join("leak.md"), format!("# Leak\n\n{key}\n")).unwrap();
    std::fs::write(t.project.join("after.md"), "# After\n\nafterword\n").unwrap();
    wait_for(WAIT, "the next file indexed", || {
        let r = get(&addr, "/query?q=afterword", &[&auth]);
        (r.json()["hits"].as_array().unwrap().len() == 1).then_some(())
    });
    assert_eq!(get(&addr, "/documents/leak.md", &[&auth]).status, 404);
    assert_eq!(get(&addr, "/render/leak.md", &[&auth]).status, 404);
    let r = get(&addr, &format!("/query?q={}", key.trim()), &[&auth]);
    assert_eq!(r.json()["hits"], json!([]), "{r:?}");
}

#[test]
fn codes_and_sessions_expire() {
    let mut t = TestEnv::new();
    t.set("DOC_SERVE_LOGIN_CODE_SECONDS", "1");
    t.set("DOC_SERVE_SESSION_SECONDS", "1");
    let (_, addr, _) = serving(&mut t);
    let (_, late) = open(&t);
    let (_, code) = open(&t);
    let session = session_of(&addr, &code);
    let auth = format!("Authorization: Bearer {session}");
    assert_eq!(get(&addr, "/status", &[&auth]).status, 200);
    std::thread::sleep(Duration::from_millis(2100));
    let r = login(&addr, &late);
    assert_eq!(
        (r.status, r.json()["code"].clone()),
        (401, json!("code_expired"))
    );
    let r = get(&addr, "/status", &[&auth]);
    assert_eq!(
        (r.status, r.json()["code"].clone()),
        (401, json!("session_expired"))
    );
}

#[test]
fn a_session_outlives_a_restart_but_not_a_new_key() {
    let mut t = TestEnv::new();
    let port = free_port();
    t.set("DOC_SERVE_PORT", &port.to_string());
    let (pid, addr, _) = serving(&mut t);
    let (_, code) = open(&t);
    let auth = format!("Authorization: Bearer {}", session_of(&addr, &code));
    let restart = |t: &mut TestEnv, pid| {
        signal(pid, Signal::SIGTERM);
        assert_eq!(t.wait_child(pid, WAIT), Some(0));
        serving(t).0
    };
    let pid = restart(&mut t, pid);
    assert_eq!(get(&addr, "/status", &[&auth]).status, 200);
    // Good only on the port the browser connected to, whatever Host says.
    let elsewhere = free_port();
    t.set("DOC_SERVE_PORT", &elsewhere.to_string());
    let pid = restart(&mut t, pid);
    let moved = format!("127.0.0.1:{elsewhere}");
    for host in [moved.as_str(), addr.as_str()] {
        let r = send(&moved, "GET /status", &[&format!("Host: {host}"), &auth]);
        assert_eq!(
            (r.status, r.json()["code"].clone()),
            (401, json!("bad_token")),
            "{host}"
        );
    }
    t.set("DOC_SERVE_PORT", &port.to_string());
    let pid = restart(&mut t, pid);
    assert_eq!(get(&addr, "/status", &[&auth]).status, 200);
    // Deleting the key ends every session (README, "Search page").
    std::fs::remove_file(t.state_file("session.key")).unwrap();
    let pid = restart(&mut t, pid);
    let r = get(&addr, "/status", &[&auth]);
    assert_eq!(
        (r.status, r.json()["code"].clone()),
        (401, json!("bad_token"))
    );
    // A damaged key is replaced, not a reason to refuse every login.
    std::fs::write(t.state_file("session.key"), "not a key").unwrap();
    restart(&mut t, pid);
    let (_, code) = open(&t);
    let key = std::fs::read_to_string(t.state_file("session.key")).unwrap();
    assert_eq!(key.len(), 64, "{key:?}");
    assert_eq!(mode_of(&t.state_file("session.key")), 0o600);
    let fresh = session_of(&addr, &code);
    assert_eq!(
        get(
            &addr,
            "/status",
            &[&format!("Authorization: Bearer {fresh}")]
        )
        .status,
        200
    );
}

#[test]
fn a_unix_socket_only_resident_says_how_to_add_tcp() {
    if skip_without("systemd-socket-activate") {
        return;
    }
    let mut t = TestEnv::new();
    let sock = t.root().join("run/ds.sock");
    let mut cmd = Command::new("systemd-socket-activate");
    cmd.arg("-l").arg(&sock);
    for (k, v) in &t.env {
        cmd.arg("-E").arg(format!("{k}={v}"));
    }
    cmd.arg(BIN).arg("--path").arg(&t.project).arg("serve");
    cmd.env_clear()
        .envs(t.env.iter().map(|(k, v)| (k, v)))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    t.spawn(cmd);
    wait_for(WAIT, "the socket", || UnixStream::connect(&sock).ok());
    // The first connection starts it.
    let _ = UnixStream::connect(&sock);
    t.wait_runtime(WAIT);
    let out = t.run(&["open", "--print"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("--tcp-port") && err.contains("Unix socket"),
        "{err}"
    );
    assert!(out.stdout.is_empty());
}

#[test]
fn a_shared_mode_project_opens_on_the_daemon() {
    let t = TestEnv::new();
    write_shared_config(&t, json!({ "port": 0 }));
    std::fs::write(t.project.join("s.md"), "# S\n\nsharedpage\n").unwrap();
    t.ok(&["init", "--mode", "shared"]);
    let (url, code) = open(&t);
    let rt: Value = serde_json::from_slice(
        &std::fs::read(t.root().join("home/.doc-serve/runtime.json")).unwrap(),
    )
    .unwrap();
    let addr = addr_of(&rt);
    let id = t.json(&["where", "--json"])["project_id"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(url.ends_with(&format!("&project={id}")), "{url}");
    let r = login(&addr, &code);
    assert_eq!(r.json()["kind"], "shared", "{r:?}");
    let auth = format!(
        "Authorization: Bearer {}",
        r.json()["session"].as_str().unwrap()
    );
    let projects = get(&addr, "/projects", &[&auth]);
    assert_eq!(projects.status, 200, "{projects:?}");
    assert!(projects.body.contains(&id));
    assert_eq!(
        get(&addr, &format!("/projects/{id}/status"), &[&auth]).status,
        200
    );
    let r = post(
        &addr,
        "/projects",
        &[&auth],
        &json!({ "root": "/tmp" }).to_string(),
    );
    assert_eq!(r.status, 403, "{r:?}");
    t.ok(&["stop", "--shared"]);
}

#[test]
fn open_hands_the_browser_a_private_file_not_the_code() {
    use std::os::unix::fs::PermissionsExt;
    let mut t = TestEnv::new();
    let (_, addr, _) = serving(&mut t);
    let seen = t.root().join("browser-args");
    let browser = t.root().join("browser");
    std::fs::write(
        &browser,
        format!("#!/bin/sh\nprintf '%s\\n' \"$@\" > {}\n", seen.display()),
    )
    .unwrap();
    std::fs::set_permissions(&browser, std::fs::Permissions::from_mode(0o755)).unwrap();
    t.set("BROWSER", &format!("{}:firefox", browser.display()));
    let v = t.json(&["open", "--json"]);
    assert_eq!(v["opened"], true, "{v}");
    let arg = wait_for(WAIT, "the browser to run", || {
        std::fs::read_to_string(&seen)
            .ok()
            .filter(|s| !s.is_empty())
    });
    let file = std::path::PathBuf::from(arg.trim());
    assert_eq!(file, t.state_file("open.html"), "{arg}");
    assert!(!arg.contains("code"), "the code on a command line: {arg}");
    assert_eq!(mode_of(&file), 0o600);
    let page = std::fs::read_to_string(&file).unwrap();
    let url = v["url"].as_str().unwrap();
    assert!(page.contains(&format!("content=\"0;url={url}\"")), "{page}");
    let code = url.split("#code=").nth(1).unwrap();
    assert!(session_of(&addr, code).starts_with("dss1."));

    // A browser that fails at once: the URL is printed instead.
    t.set("BROWSER", "false");
    let out = t.run(&["open"]);
    assert_eq!(out.status.code(), Some(0));
    let printed = String::from_utf8_lossy(&out.stdout);
    assert!(
        printed.starts_with(&format!("http://{addr}/#code=")),
        "{printed}"
    );
    // Arguments, and %s for the page.
    t.set("BROWSER", &format!("{} --new-window %s", browser.display()));
    std::fs::remove_file(&seen).unwrap();
    assert_eq!(t.json(&["open", "--json"])["opened"], true);
    let args = wait_for(WAIT, "the browser to run", || {
        std::fs::read_to_string(&seen)
            .ok()
            .filter(|s| !s.is_empty())
    });
    assert_eq!(args, format!("--new-window\n{}\n", file.display()));

    // Over SSH the browser is elsewhere: the URL is printed (unless BROWSER says
    // what to run).
    t.set("BROWSER", "");
    t.set("DISPLAY", ":0");
    t.set("SSH_CONNECTION", "10.0.0.1 5000 10.0.0.2 22");
    let out = t.ok(&["open"]);
    assert!(out.starts_with(&format!("http://{addr}/#code=")), "{out}");
}
