//! Bad input, HTTP bodies a resident must refuse: oversized (declared, sent in full or
//! chunked) and slow ones. Refused with 413 or 408 before any reindex they ask for
//! runs, while everyone else is still served.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use super::*;

/// A resident whose watcher waits long enough that only `POST /index` indexes, and a
/// file it has not indexed yet: whether a rejected request reindexed shows.
fn resident_with_unindexed_file(t: &mut TestEnv) -> Resident {
    t.set("DOC_SERVE_DEBOUNCE_MS", "600000");
    t.set("DOC_SERVE_RECONCILE_INTERVAL_SECONDS", "3600");
    let r = serving(t);
    std::fs::write(
        t.project.join("docs/pending.md"),
        "# Pending\n\npendingword\n",
    )
    .unwrap();
    r
}

#[test]
fn oversized_http_bodies() {
    let (mut t, base) = indexed();
    t.set("DOC_SERVE_MAX_BODY_BYTES", "4096");
    let r = resident_with_unindexed_file(&mut t);
    let big = format!("{{\"full\": true, \"pad\": \"{}\"}}", "x".repeat(8000));
    for path in ["/index", "/query", "/mcp"] {
        // Declared too large: refused before reading.
        let head = format!(
            "POST {path} HTTP/1.1\r\nHost: {}\r\n{}\r\nContent-Length: 10000000\r\n\
             Accept: application/json, text/event-stream\r\n\
             Content-Type: application/json\r\nConnection: close\r\n\r\n",
            r.addr, r.auth
        );
        let reply = raw(&r.addr, head.as_bytes());
        assert_eq!(reply.status, 413, "{path}: {reply:?}");
        assert_eq!(reply.json()["code"], "body_too_large");
        // Sent in full: refused all the same.
        let reply = r.post(path, &big);
        assert_eq!(reply.status, 413, "{path}: {reply:?}");
        // Chunked, no length given: refused while reading.
        let chunked = format!(
            "POST {path} HTTP/1.1\r\nHost: {}\r\n{}\r\nTransfer-Encoding: chunked\r\n\
             Accept: application/json, text/event-stream\r\n\
             Content-Type: application/json\r\nConnection: close\r\n\r\n{:x}\r\n{big}\r\n0\r\n\r\n",
            r.addr,
            r.auth,
            big.len()
        );
        let reply = raw(&r.addr, chunked.as_bytes());
        assert_eq!(reply.status, 413, "{path}: {reply:?}");
    }
    // None of the refused reindexes ran; a proper one does.
    assert!(r.hits("pendingword").is_empty());
    let reply = r.post("/index", "{}");
    assert_eq!(reply.status, 200, "{reply:?}");
    assert_eq!(r.hits("pendingword"), ["docs/pending.md"]);
    std::fs::remove_file(t.project.join("docs/pending.md")).unwrap();
    assert_eq!(r.post("/index", "{}").status, 200);
    r.stop(&mut t);
    assert_intact(&t, &base);
    assert_no_panic_logged(&t);
}

#[test]
fn slow_http_bodies() {
    let (mut t, base) = indexed();
    t.set("DOC_SERVE_REQUEST_TIMEOUT_SECONDS", "1");
    let r = resident_with_unindexed_file(&mut t);
    let body = "{\"full\": true}";
    let begun = Instant::now();
    let mut slow: Vec<TcpStream> = ["/index", "/index", "/index", "/query", "/mcp"]
        .iter()
        .map(|path| {
            let mut s = TcpStream::connect(&r.addr).unwrap();
            let req = r.request("POST", path, body);
            // Headers and the first two bytes of the body, then nothing.
            s.write_all(&req.as_bytes()[..req.len() - body.len() + 2])
                .unwrap();
            s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
            s
        })
        .collect();
    let mut headers = TcpStream::connect(&r.addr).unwrap();
    headers
        .write_all(b"POST /index HTTP/1.1\r\nHost: loc")
        .unwrap();
    headers
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    // Meanwhile everyone else is served.
    assert_eq!(r.hits("quorum"), ["docs/notes.txt"]);
    for s in &mut slow {
        let mut buf = Vec::new();
        let _ = s.read_to_end(&mut buf);
        let reply = parse_reply(&buf);
        assert_eq!(reply.status, 408, "{reply:?}");
        assert_eq!(reply.json()["code"], "body_timeout", "{reply:?}");
    }
    let _ = headers.read_to_end(&mut Vec::new());
    assert!(
        begun.elapsed() < Duration::from_secs(8),
        "{:?}",
        begun.elapsed()
    );
    // The reindexes that never arrived did not run.
    assert!(r.hits("pendingword").is_empty());
    std::fs::remove_file(t.project.join("docs/pending.md")).unwrap();
    r.stop(&mut t);
    assert_intact(&t, &base);
    assert_no_panic_logged(&t);
}
