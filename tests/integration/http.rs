//! The HTTP surface: routes, errors, and the security gate.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use crate::util::*;

const WAIT: Duration = Duration::from_secs(15);

fn serving(t: &mut TestEnv) -> (String, String) {
    t.spawn_serve(&[]);
    let rt = t.wait_runtime(WAIT);
    (addr_of(&rt), rt["token"].as_str().unwrap().to_string())
}

#[test]
fn health_status_and_errors() {
    let mut t = TestEnv::new();
    let (addr, token) = serving(&mut t);
    let auth = format!("Authorization: Bearer {token}");

    let h = get(&addr, "/health", &[]);
    assert_eq!(h.status, 200);
    let v = h.json();
    assert_eq!(v["status"], "ok");
    assert_eq!(v["version"], env!("CARGO_PKG_VERSION"));
    assert_eq!(v["project_root"], t.project.display().to_string());
    assert!(
        h.head
            .to_ascii_lowercase()
            .contains("content-type: application/json")
    );

    let s = get(&addr, "/status", &[&auth]);
    assert_eq!(s.status, 200);
    let v = s.json();
    assert_eq!(v["activation"], "self");
    assert!(v["requests"]["served"].as_u64().unwrap() >= 1);

    let e = get(&addr, "/nope", &[&auth]);
    assert_eq!(e.status, 404);
    assert_eq!(e.json()["code"], "not_found");
    assert!(e.json()["message"].as_str().unwrap().contains("/nope"));

    let r = send(&addr, "DELETE /status", &[&format!("Host: {addr}"), &auth]);
    assert_eq!(r.status, 405);
    assert_eq!(r.json()["code"], "method_not_allowed");
    assert!(
        r.head.to_ascii_lowercase().contains("\r\nallow: get, head"),
        "{r:?}"
    );
    let r = send(&addr, "PUT /query", &[&format!("Host: {addr}"), &auth]);
    assert_eq!(r.status, 405);
    assert!(
        r.head
            .to_ascii_lowercase()
            .contains("\r\nallow: get, head, post"),
        "{r:?}"
    );

    // HEAD wherever GET: the status and headers of a GET, no body.
    std::fs::write(t.project.join("h.md"), "# H\n\nheadword\n").unwrap();
    for path in ["/query?q=headword", "/documents/h.md", "/status", "/health"] {
        let r = send(
            &addr,
            &format!("HEAD {path}"),
            &[&format!("Host: {addr}"), &auth],
        );
        assert_eq!(r.status, 200, "{path}: {r:?}");
        assert_eq!(r.body, "", "{path}");
    }
}

#[test]
fn token_is_required_over_tcp_except_for_health() {
    let mut t = TestEnv::new();
    let (addr, token) = serving(&mut t);
    let none = get(&addr, "/status", &[]);
    assert_eq!(none.status, 401);
    assert_eq!(none.json()["code"], "missing_token");
    assert!(
        none.head
            .to_ascii_lowercase()
            .contains("www-authenticate: bearer")
    );
    let wrong = get(
        &addr,
        "/status",
        &[&format!("Authorization: Bearer {}", "f".repeat(64))],
    );
    assert_eq!(wrong.status, 401);
    assert_eq!(wrong.json()["code"], "bad_token");
    let truncated = get(
        &addr,
        "/status",
        &[&format!("Authorization: Bearer {}", &token[..63])],
    );
    assert_eq!(truncated.status, 401);
    // Unknown routes are not revealed without the token either.
    assert_eq!(get(&addr, "/nope", &[]).status, 401);
    assert_eq!(get(&addr, "/health", &[]).status, 200);
}

#[test]
fn dns_rebinding_is_refused() {
    let mut t = TestEnv::new();
    let (addr, token) = serving(&mut t);
    let auth = format!("Authorization: Bearer {token}");
    let port = addr.rsplit(':').next().unwrap();
    for host in [
        "evil.example",
        "evil.example:80",
        "evil.example@127.0.0.1",
        "localhost.evil.example",
        "10.0.0.1",
        "0.0.0.0",
    ] {
        for path in ["/health", "/status"] {
            let r = send(
                &addr,
                &format!("GET {path}"),
                &[&format!("Host: {host}"), &auth],
            );
            assert_eq!(r.status, 403, "Host {host} {path}");
            assert_eq!(r.json()["code"], "forbidden_host");
        }
    }
    // Two Host headers, in either order; an absolute-form target naming another host.
    for hosts in [
        "Host: 127.0.0.1\r\nHost: evil.example",
        "Host: evil.example\r\nHost: 127.0.0.1",
    ] {
        let r = send(&addr, "GET /status", &[hosts, &auth]);
        assert_eq!(r.status, 400, "{hosts}");
        assert_eq!(r.json()["code"], "bad_request");
    }
    let r = send(
        &addr,
        "GET http://evil.example/status",
        &["Host: 127.0.0.1", &auth],
    );
    assert_eq!(r.status, 403);
    assert_eq!(r.json()["code"], "forbidden_host");
    let r = send(
        &addr,
        &format!("GET http://{addr}/status"),
        &[&format!("Host: {addr}"), &auth],
    );
    assert_eq!(r.status, 200);
    for host in [
        "localhost",
        &format!("localhost:{port}"),
        "127.0.0.1",
        "[::1]:1",
        "LOCALHOST",
    ] {
        let r = send(&addr, "GET /status", &[&format!("Host: {host}"), &auth]);
        assert_eq!(r.status, 200, "Host {host}");
    }
    for origin in [
        "http://evil.example",
        "https://evil.example:443",
        "null",
        "file://",
        "http://127.0.0.1.evil.example",
    ] {
        let r = get(&addr, "/health", &[&format!("Origin: {origin}")]);
        assert_eq!(r.status, 403, "Origin {origin}");
        assert_eq!(r.json()["code"], "forbidden_origin");
    }
    for origin in [
        "http://localhost:3000",
        "http://127.0.0.1",
        "https://[::1]:8443",
    ] {
        assert_eq!(
            get(&addr, "/health", &[&format!("Origin: {origin}")]).status,
            200,
            "{origin}"
        );
    }
}

/// Host, Origin and an absolute-form target's authority are matched exactly:
/// `localhost`, 127.0.0.0/8 and `[::1]`, each with an optional port, and nothing that
/// merely starts or ends like one.
#[test]
fn host_and_origin_are_matched_exactly() {
    let mut t = TestEnv::new();
    let (addr, token) = serving(&mut t);
    let auth = format!("Authorization: Bearer {token}");
    let port = addr.rsplit(':').next().unwrap();
    let refused_hosts = [
        "[::1].evil.com",
        "[::1]evil.com",
        "[::1",
        "[::1]:",
        "[::1%25lo]",
        "[::ffff:127.0.0.1]",
        "[0:0:0:0:0:0:0:1]",
        "::1",
        "localhost.",
        "localhost.:80",
        "a.localhost",
        "localhost:",
        "localhost:65536",
        "localhost:+80",
        "localhost:80:80",
        "user@localhost",
        "%6cocalhost",
        "local host",
        "127.1",
        "0x7f.0.0.1",
        "0177.0.0.1",
        "2130706433",
        "127.0.0.1.",
        "127.0.0.1.evil.com",
    ];
    for host in refused_hosts {
        let r = send(&addr, "GET /status", &[&format!("Host: {host}"), &auth]);
        assert_eq!(r.status, 403, "Host {host}: {r:?}");
        assert_eq!(r.json()["code"], "forbidden_host", "Host {host}");
        // The same authority as an absolute-form target (hyper refuses some outright).
        let r = send(
            &addr,
            &format!("GET http://{host}/status"),
            &[&format!("Host: {addr}"), &auth],
        );
        assert!(r.status == 403 || r.status == 400, "target {host}: {r:?}");
        assert_ne!(r.status, 200, "target {host}");
        // And as an Origin.
        let r = get(&addr, "/health", &[&format!("Origin: http://{host}")]);
        assert_eq!(r.status, 403, "Origin http://{host}: {r:?}");
        assert_eq!(r.json()["code"], "forbidden_origin");
    }
    for host in [
        format!("localhost:{port}"),
        "LocalHost".into(),
        format!("127.1.2.3:{port}"),
        format!("[::1]:{port}"),
    ] {
        let r = send(&addr, "GET /status", &[&format!("Host: {host}"), &auth]);
        assert_eq!(r.status, 200, "Host {host}: {r:?}");
        let r = send(
            &addr,
            &format!("GET http://{host}/status"),
            &[&format!("Host: {addr}"), &auth],
        );
        assert_eq!(r.status, 200, "target {host}: {r:?}");
        let r = get(&addr, "/health", &[&format!("Origin: https://{host}")]);
        assert_eq!(r.status, 200, "Origin {host}: {r:?}");
    }
    // User info in an absolute-form target, even naming a local host (RFC 9110 4.2.4).
    let r = send(
        &addr,
        &format!("GET http://user@{addr}/status"),
        &[&format!("Host: {addr}"), &auth],
    );
    assert_eq!(r.status, 403, "{r:?}");
    // Origins that are not a bare scheme://authority, and the opaque `null`.
    for origin in [
        "null",
        "http://localhost/",
        "http://localhost:80/x",
        "ws://localhost",
        "file://localhost",
        "localhost",
    ] {
        let r = get(&addr, "/health", &[&format!("Origin: {origin}")]);
        assert_eq!(r.status, 403, "Origin {origin}: {r:?}");
    }
    // Two Origin headers, in either order, whatever they say.
    for origins in [
        "Origin: http://localhost\r\nOrigin: http://evil.example",
        "Origin: http://evil.example\r\nOrigin: http://localhost",
        "Origin: http://localhost\r\nOrigin: http://localhost",
    ] {
        let r = get(&addr, "/health", &[origins]);
        assert_eq!(r.status, 400, "{origins}: {r:?}");
        assert_eq!(r.json()["code"], "bad_request");
        assert!(r.json()["message"].as_str().unwrap().contains("Origin"));
    }
    // /mcp sits behind the same gate.
    let r = send(
        &addr,
        "POST /mcp",
        &["Host: [::1].evil.com", &auth, "Content-Length: 0"],
    );
    assert_eq!(r.status, 403, "{r:?}");
}

#[test]
fn oversized_and_slow_requests() {
    let mut t = TestEnv::new();
    t.set("DOC_SERVE_MAX_BODY_BYTES", "1000");
    t.set("DOC_SERVE_REQUEST_TIMEOUT_SECONDS", "1");
    let (addr, token) = serving(&mut t);
    let auth = format!("Authorization: Bearer {token}");

    // Declared too large: refused before reading.
    let r = send(
        &addr,
        "POST /status",
        &[&format!("Host: {addr}"), &auth, "Content-Length: 1000000"],
    );
    assert_eq!(r.status, 413);
    assert_eq!(r.json()["code"], "body_too_large");
    // Chunked and too large: refused while reading.
    let chunk = "x".repeat(1500);
    let r = raw(&addr, format!("POST /status HTTP/1.1\r\nHost: {addr}\r\n{auth}\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n{:x}\r\n{chunk}\r\n0\r\n\r\n", chunk.len()).as_bytes());
    assert_eq!(r.status, 413);

    // A body that never finishes: 408 after the request timeout.
    let begun = Instant::now();
    let r = raw(&addr, format!("POST /status HTTP/1.1\r\nHost: {addr}\r\n{auth}\r\nContent-Length: 10\r\nConnection: close\r\n\r\nab").as_bytes());
    assert_eq!(r.status, 408);
    assert!(begun.elapsed() < Duration::from_secs(5));

    // Headers that never finish: the connection is closed.
    let mut s = TcpStream::connect(&addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.write_all(b"GET /health HTTP/1.1\r\nHost: loc").unwrap();
    let begun = Instant::now();
    let mut buf = Vec::new();
    let _ = s.read_to_end(&mut buf);
    assert!(
        begun.elapsed() < Duration::from_secs(5),
        "slow headers held the connection"
    );

    // Garbage is a 400, and the server keeps serving.
    let r = raw(&addr, b"\x00\x01garbage\r\n\r\n");
    assert!(r.status == 400 || r.status == 0, "{r:?}");
    assert_eq!(get(&addr, "/health", &[]).status, 200);
}

#[test]
fn connection_cap_holds_extra_clients_in_the_backlog() {
    let mut t = TestEnv::new();
    t.set("DOC_SERVE_MAX_CONNECTIONS", "2");
    let (addr, _) = serving(&mut t);
    let a = TcpStream::connect(&addr).unwrap();
    let _b = TcpStream::connect(&addr).unwrap();
    std::thread::sleep(Duration::from_millis(200));
    let mut c = TcpStream::connect(&addr).unwrap();
    c.write_all(
        format!("GET /health HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n").as_bytes(),
    )
    .unwrap();
    c.set_read_timeout(Some(Duration::from_millis(500)))
        .unwrap();
    let mut byte = [0u8; 1];
    assert!(
        c.read(&mut byte).is_err(),
        "a third connection was served past the cap"
    );
    drop(a);
    c.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut buf = byte[..0].to_vec();
    c.read_to_end(&mut buf).unwrap();
    assert_eq!(parse_reply(&buf).status, 200);
}

/// The gate's neighbours of the exact-authority rule: an absolute-form target's scheme,
/// a missing Host, a repeated Authorization, the spellings of ::1, and how much of a
/// refused value comes back.
#[test]
fn the_gate_refuses_what_it_cannot_read_one_way() {
    let mut t = TestEnv::new();
    let (addr, token) = serving(&mut t);
    let auth = format!("Authorization: Bearer {token}");
    let host = format!("Host: {addr}");

    // Only http and https targets.
    for target in [
        "ftp://localhost/health",
        "javascript://localhost/health",
        "file://localhost/health",
        "ws://localhost/health",
        "httpx://localhost/health",
    ] {
        let r = send(&addr, &format!("GET {target}"), &[&host]);
        assert_eq!(r.status, 400, "{target}: {r:?}");
        assert_eq!(r.json()["code"], "bad_request", "{target}");
    }
    for target in [
        format!("http://{addr}/health"),
        format!("HTTPS://{addr}/health"),
    ] {
        let r = send(&addr, &format!("GET {target}"), &[&host]);
        assert_eq!(r.status, 200, "{target}: {r:?}");
    }

    // HTTP/1.1 needs a Host (RFC 9112, 3.2), an absolute-form target too; HTTP/1.0
    // predates it.
    let r = send(&addr, "GET /health", &[]);
    assert_eq!(r.status, 400, "{r:?}");
    assert!(
        r.json()["message"].as_str().unwrap().contains("Host"),
        "{r:?}"
    );
    let r = send(&addr, &format!("GET http://{addr}/status"), &[&auth]);
    assert_eq!(r.status, 400, "{r:?}");
    let r = raw(&addr, b"GET /health HTTP/1.0\r\n\r\n");
    assert_eq!(r.status, 200, "{r:?}");

    // Two Authorization headers: which one counts is anyone's guess.
    for pair in [
        format!("{auth}\r\nAuthorization: Bearer wrong"),
        format!("Authorization: Bearer wrong\r\n{auth}"),
        format!("{auth}\r\n{auth}"),
    ] {
        let r = send(&addr, "GET /status", &[&host, &pair]);
        assert_eq!(r.status, 400, "{pair}: {r:?}");
        assert_eq!(r.json()["code"], "bad_request");
        assert!(
            r.json()["message"]
                .as_str()
                .unwrap()
                .contains("Authorization")
        );
    }

    // ::1 is accepted only as `[::1]`, as a browser writes it.
    for v6 in ["[0::1]", "[::01]", "[0:0:0:0:0:0:0:1]", "[::0:1]"] {
        let r = send(&addr, "GET /status", &[&format!("Host: {v6}"), &auth]);
        assert_eq!(r.status, 403, "Host {v6}: {r:?}");
        let r = get(&addr, "/health", &[&format!("Origin: http://{v6}")]);
        assert_eq!(r.status, 403, "Origin {v6}: {r:?}");
    }

    // A refused value is quoted in part: 200 KB in is not 200 KB out.
    let long = "e".repeat(200_000);
    for header in [format!("Host: {long}"), format!("Origin: http://{long}")] {
        let line = if header.starts_with("Host") {
            vec![header.as_str(), auth.as_str()]
        } else {
            vec![host.as_str(), header.as_str()]
        };
        let r = send(&addr, "GET /status", &line);
        assert_eq!(r.status, 403, "{r:?}");
        let message = r.json()["message"].as_str().unwrap().to_owned();
        assert!(
            message.len() < 500,
            "{} bytes: {message:.200}",
            message.len()
        );
        assert!(message.contains("eeee…"), "{message}");
    }
    // And a path refused for its method (405: it was echoed whole) or as no route.
    let path = format!("/documents/{}", "e".repeat(20_000));
    for (line, status) in [
        (format!("DELETE {path}"), 405),
        (format!("GET /x{path}"), 404),
    ] {
        let r = send(&addr, &line, &[&host, &auth]);
        assert_eq!(r.status, status, "{r:?}");
        let message = r.json()["message"].as_str().unwrap().to_owned();
        assert!(message.len() < 500, "{} bytes", message.len());
        assert!(message.contains("eeee…"), "{message}");
    }
}

/// `POST /index` and `POST /query` take a JSON object, not an array: serde would read
/// `[]` as a struct of defaults.
#[test]
fn json_bodies_must_be_objects() {
    let mut t = TestEnv::new();
    let (addr, token) = serving(&mut t);
    let post = |path: &str, body: &str| {
        raw(
            &addr,
            format!(
                "POST {path} HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {token}\r\n\
                 Content-Type: application/json\r\nContent-Length: {}\r\n\
                 Connection: close\r\n\r\n{body}",
                body.len()
            )
            .as_bytes(),
        )
    };
    for (path, body) in [
        ("/index", "[]"),
        ("/index", "[true]"),
        ("/index", " [false] "),
        ("/index", "5"),
        ("/index", "null"),
        ("/query", r#"["quorum"]"#),
        ("/query", r#"["quorum", 3]"#),
    ] {
        let r = post(path, body);
        assert_eq!(r.status, 400, "{path} {body}: {r:?}");
        assert_eq!(r.json()["code"], "bad_body", "{path} {body}");
        assert!(
            r.json()["message"].as_str().unwrap().contains("object"),
            "{r:?}"
        );
    }
    assert_eq!(post("/index", "").status, 200);
    assert_eq!(post("/index", r#"{"full": false}"#).status, 200);
    assert_eq!(post("/query", r#"{"q": "x"}"#).status, 200);
}
