//! MCP messages that are not well-formed: over stdio (`doc-serve mcp`) and as `/mcp`
//! bodies. Each gets a JSON-RPC error (never silence, which leaves a client waiting
//! for good), and the bridge or resident goes on serving the next request.

use std::io::{BufRead, BufReader, Write};
use std::process::{ChildStdin, Stdio};
use std::sync::mpsc;

use super::*;

/// A `doc-serve mcp` talked to a line at a time.
struct Bridge {
    pid: u32,
    stdin: Option<ChildStdin>,
    lines: mpsc::Receiver<Value>,
}

impl Bridge {
    fn start(t: &mut TestEnv) -> Bridge {
        let err = std::fs::File::create(t.root().join("mcp.err")).unwrap();
        let mut child = t
            .cmd(&["mcp"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(err)
            .spawn()
            .unwrap();
        let stdout = BufReader::new(child.stdout.take().unwrap());
        let stdin = child.stdin.take();
        let pid = child.id();
        t.spawn_adopted(child);
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in stdout.lines() {
                let line = line.expect("stdout is UTF-8");
                let v = serde_json::from_str(&line)
                    .unwrap_or_else(|e| panic!("not one JSON message per line ({e}): {line}"));
                if tx.send(v).is_err() {
                    return;
                }
            }
        });
        Bridge { pid, stdin, lines }
    }

    /// After whatever came before, a search (request `id`) is still answered with
    /// hits, and the end of input then ends the bridge cleanly.
    fn still_serves_then_ends(&mut self, t: &mut TestEnv, id: u64) {
        let v = self.ask(&call(id, json!({"query": "quorum"})));
        assert_eq!(v["id"], id, "{v}");
        assert_eq!(v["result"]["isError"], false, "{v}");
        let text = v["result"]["content"][0]["text"].as_str().unwrap();
        assert!(text.contains("docs/"), "{text}");
        drop(self.stdin.take());
        assert_eq!(t.wait_child(self.pid, WAIT), Some(0));
    }

    /// Writes `bytes` and a newline.
    fn send(&mut self, bytes: &[u8]) {
        self.send_lines(&[bytes]);
    }

    /// Writes each of `lines` with a newline, all in one write.
    fn send_lines(&mut self, lines: &[&[u8]]) {
        let mut all = Vec::new();
        for line in lines {
            all.extend_from_slice(line);
            all.push(b'\n');
        }
        let stdin = self.stdin.as_mut().unwrap();
        stdin.write_all(&all).unwrap();
        stdin.flush().unwrap();
    }

    /// `initialize` and `notifications/initialized`.
    fn initialize(&mut self) {
        let init = json!({"jsonrpc": "2.0", "id": "init", "method": "initialize", "params": {
            "protocolVersion": "2025-06-18", "capabilities": {},
            "clientInfo": {"name": "bad_input", "version": "1"}}});
        let v = self.ask(init.to_string().as_bytes());
        assert_eq!(v["result"]["serverInfo"]["name"], "doc-serve", "{v}");
        self.send(br#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#);
    }

    /// The next message the bridge writes.
    fn next(&self) -> Value {
        self.lines
            .recv_timeout(Duration::from_secs(60))
            .expect("no answer from doc-serve mcp within 60 s")
    }

    fn ask(&mut self, bytes: &[u8]) -> Value {
        self.send(bytes);
        self.next()
    }

    /// Asserts that nothing more comes within a moment.
    fn quiet(&self) {
        if let Ok(v) = self.lines.recv_timeout(Duration::from_millis(300)) {
            panic!("unexpected answer: {v}");
        }
    }

    /// Peak resident memory so far, in KiB.
    fn peak_kib(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid)).unwrap();
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmHWM:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap()
    }
}

/// A JSON-RPC error with this code and id.
fn error(v: &Value, code: i64, id: Value) -> String {
    assert_eq!(v["jsonrpc"], "2.0", "{v}");
    assert_eq!(v["error"]["code"], code, "{v}");
    assert_eq!(v["id"], id, "{v}");
    v["error"]["message"].as_str().unwrap().to_owned()
}

fn call(id: u64, arguments: Value) -> Vec<u8> {
    json!({"jsonrpc": "2.0", "id": id, "method": "tools/call",
           "params": {"name": "search_docs", "arguments": arguments}})
    .to_string()
    .into_bytes()
}

#[test]
fn malformed_mcp_lines_over_stdio() {
    let (mut t, base) = indexed();
    let r = serving(&mut t);
    let mut bridge = Bridge::start(&mut t);

    // Before initialize: a tool call is told why; a notification is not answered and
    // does not end the session.
    let v = bridge.ask(&call(1, json!({"query": "quorum"})));
    assert!(error(&v, -32002, json!(1)).contains("initialize"), "{v}");
    bridge.send(br#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#);
    let v = bridge.ask(br#"{"jsonrpc":"2.0","id":2,"method":"ping"}"#);
    assert_eq!(v["result"], json!({}), "{v}");

    let init = json!({"jsonrpc": "2.0", "id": 3, "method": "initialize", "params": {
        "protocolVersion": "2025-06-18", "capabilities": {},
        "clientInfo": {"name": "bad_input", "version": "1"}}});
    let v = bridge.ask(init.to_string().as_bytes());
    assert_eq!(v["result"]["serverInfo"]["name"], "doc-serve", "{v}");
    bridge.send(br#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#);
    bridge.quiet();

    // Not JSON, not UTF-8, not a message: -32700 or -32600, id null.
    for (line, code) in [
        (&b"{bad json"[..], -32700),
        (b"\xff\xfe\x00{\"jsonrpc\"", -32700),
        (b"{\"jsonrpc\":\"2.0\",\"id\":9,", -32700),
        (b"[]", -32600),
        (b"42", -32600),
        (br#"{"jsonrpc":"2.0","id":1.5,"method":"ping"}"#, -32600),
    ] {
        let v = bridge.ask(line);
        error(&v, code, Value::Null);
        // A response is never answered, so an error echoed back cannot start a storm.
        bridge.send(v.to_string().as_bytes());
        bridge.quiet();
    }
    // Arguments that are not an object: -32602 with the request's id.
    for (id, arguments) in [(4, json!("quorum")), (5, json!(["quorum"])), (6, json!(7))] {
        let v = bridge.ask(&call(id, arguments));
        assert!(error(&v, -32602, json!(id)).contains("arguments"), "{v}");
    }

    // A 20 MB line is refused past the cap (max_body_bytes, 1 MiB) and never held.
    let before = bridge.peak_kib();
    let mut huge = call(7, json!({"query": "PAD"}));
    let at = huge.windows(3).position(|w| w == b"PAD").unwrap();
    huge.splice(at..at + 3, std::iter::repeat_n(b'a', 20 << 20));
    let v = bridge.ask(&huge);
    assert!(
        error(&v, -32600, Value::Null).contains("max_body_bytes"),
        "{v}"
    );
    let grown = bridge.peak_kib().saturating_sub(before);
    assert!(
        grown < 8 << 10,
        "the bridge grew by {grown} KiB on a 20 MB line"
    );

    bridge.still_serves_then_ends(&mut t, 8);
    let err = std::fs::read_to_string(t.root().join("mcp.err")).unwrap();
    assert!(!err.contains("panicked"), "{err}");
    assert_intact(&t, &base);
    assert_no_panic_logged(&t);
    r.stop(&mut t);
}

#[test]
fn malformed_mcp_bodies_at_slash_mcp() {
    let (mut t, base) = indexed();
    let r = serving(&mut t);
    // Bodies as bytes: some are not UTF-8.
    let post = |body: &[u8]| {
        let mut req = format!(
            "POST /mcp HTTP/1.1\r\nHost: {}\r\n{}\r\nContent-Type: application/json\r\n\
             Accept: application/json, text/event-stream\r\n\
             Content-Length: {}\r\nConnection: close\r\n\r\n",
            r.addr,
            r.auth,
            body.len()
        )
        .into_bytes();
        req.extend_from_slice(body);
        raw(&r.addr, &req)
    };
    for (body, code) in [
        (&b"{bad json"[..], -32700),
        (b"\xff\xfe{}", -32700),
        (b"", -32700),
        (b"[]", -32600),
        (b"42", -32600),
        (br#"{"jsonrpc":"2.0","id":{},"method":"ping"}"#, -32600),
        (br#"{"jsonrpc":"2.0","id":null,"result":{}}"#, -32600),
    ] {
        let reply = post(body);
        assert_eq!(reply.status, 400, "{body:?}: {reply:?}");
        assert!(
            reply
                .head
                .to_ascii_lowercase()
                .contains("content-type: application/json"),
            "{reply:?}"
        );
        error(&reply.json(), code, Value::Null);
    }
    // A well-formed request with bad arguments: a JSON-RPC error, as any other.
    let reply = post(&call(4, json!("quorum")));
    assert_eq!(reply.status, 200, "{reply:?}");
    assert!(error(&reply.json(), -32602, json!(4)).contains("arguments"));
    let reply = post(&call(5, json!({"query": "quorum"})));
    assert_eq!(reply.status, 200, "{reply:?}");
    assert_eq!(reply.json()["result"]["isError"], false, "{reply:?}");
    assert_intact(&t, &base);
    assert_no_panic_logged(&t);
    r.stop(&mut t);
}

fn tool(id: u64, name: &str, arguments: Value) -> Vec<u8> {
    json!({"jsonrpc": "2.0", "id": id, "method": "tools/call",
           "params": {"name": name, "arguments": arguments}})
    .to_string()
    .into_bytes()
}

/// The text of a tool error (`isError: true`) answered to `id`.
fn tool_error(v: &Value, id: u64) -> String {
    assert_eq!(v["id"], id, "{v}");
    assert_eq!(v["result"]["isError"], true, "{v}");
    v["result"]["content"][0]["text"]
        .as_str()
        .unwrap()
        .to_owned()
}

/// Messages with a usable id that rmcp cannot parse (params that are not an object,
/// duplicate keys, a method beside a result, a malformed response) used to get an
/// error without an id, or none; each now gets the error the README lists, with the
/// request's id, and responses and notifications get nothing.
#[test]
fn mcp_lines_rmcp_cannot_parse_are_answered_with_their_id() {
    let (mut t, base) = indexed();
    let r = serving(&mut t);
    let mut bridge = Bridge::start(&mut t);
    bridge.initialize();
    bridge.quiet();
    for (line, code, id) in [
        (
            &br#"{"jsonrpc":"2.0","id":"pa","method":"ping","params":[]}"#[..],
            -32602,
            json!("pa"),
        ),
        (
            br#"{"jsonrpc":"2.0","id":"pn","method":"ping","params":5}"#,
            -32602,
            json!("pn"),
        ),
        (
            br#"{"jsonrpc":"2.0","id":"ps","method":"ping","params":"x"}"#,
            -32602,
            json!("ps"),
        ),
        (
            br#"{"jsonrpc":"2.0","id":3,"method":"tools/list","params":[]}"#,
            -32602,
            json!(3),
        ),
        // A method doc-serve does not serve: rmcp's answer, with the id.
        (
            br#"{"jsonrpc":"2.0","id":4,"method":"resources/read","params":{}}"#,
            -32601,
            json!(4),
        ),
        (
            br#"{"jsonrpc":"2.0","id":8,"id":9,"method":"ping"}"#,
            -32600,
            Value::Null,
        ),
        (
            br#"{"jsonrpc":"2.0","id":10,"method":"ping","method":"ping"}"#,
            -32600,
            json!(10),
        ),
        (
            br#"{"jsonrpc":"2.0","id":11,"method":"tools/call","params":{"name":"search_docs","arguments":{"query":"a","query":"b"}}}"#,
            -32600,
            json!(11),
        ),
        (
            br#"{"id":"r","result":{},"method":"ping"}"#,
            -32600,
            json!("r"),
        ),
        (
            br#"{"jsonrpc":"2.0","id":"re","error":{"code":1,"message":"x"},"method":"ping"}"#,
            -32600,
            json!("re"),
        ),
        // Not one message, even without an id: answered, with id null.
        (
            br#"{"jsonrpc":"2.0","method":"notifications/initialized","params":{"a":1,"a":1}}"#,
            -32600,
            Value::Null,
        ),
        // Not JSON, whatever whitespace it looks like: a form feed, a no-break space.
        (b"\x0c", -32700, Value::Null),
        (b"\xc2\xa0", -32700, Value::Null),
        (b" \x0c ", -32700, Value::Null),
    ] {
        let v = bridge.ask(line);
        error(&v, code, id);
        bridge.quiet();
    }
    // Responses (well-formed or not) and notifications are never answered, not even
    // malformed ones; blank lines (JSON whitespace) are skipped.
    for line in [
        &br#"{"id":"e","error":5}"#[..],
        br#"{"jsonrpc":"2.0","id":"e","error":{"code":"x"}}"#,
        br#"{"jsonrpc":"2.0","id":"s","result":{}}"#,
        br#"{"jsonrpc":"2.0","id":"s","result":5}"#,
        br#"{"jsonrpc":"2.0","id":null,"error":{"code":-32600,"message":"x"}}"#,
        br#"{"jsonrpc":"2.0","method":"notifications/initialized","params":5}"#,
        br#"{"jsonrpc":"2.0","method":"notifications/cancelled","params":{"requestId":[]}}"#,
        b" \t\r",
        b"",
    ] {
        bridge.send(line);
        bridge.quiet();
    }
    // A byte order mark before the JSON is skipped.
    let v = bridge.ask(b"\xEF\xBB\xBF{\"jsonrpc\":\"2.0\",\"id\":12,\"method\":\"ping\"}");
    assert_eq!((&v["id"], &v["result"]), (&json!(12), &json!({})), "{v}");

    bridge.still_serves_then_ends(&mut t, 16);
    r.stop(&mut t);
    assert_intact(&t, &base);
    assert_no_panic_logged(&t);
}

/// A query over the length limit gets the resident's own limit message, not a failed
/// request ("uri too long", after which the bridge even dropped its resident); so do a
/// path and a heading too long to send; a tool without arguments says so.
#[test]
fn mcp_tool_arguments_too_long_for_a_uri() {
    let (mut t, base) = indexed();
    let r = serving(&mut t);
    let mut bridge = Bridge::start(&mut t);
    bridge.initialize();
    let long = "quorum ".repeat(15_000);
    let v = bridge.ask(&tool(13, "search_docs", json!({"query": long})));
    let text = tool_error(&v, 13);
    assert!(text.contains("4096"), "{text}");
    assert!(!text.contains("uri too long"), "{text}");
    for arguments in [
        json!({"path": "a/".repeat(50_000)}),
        json!({"path": "docs/notes.txt", "heading": "h ".repeat(50_000)}),
    ] {
        let v = bridge.ask(&tool(14, "read_doc", arguments));
        let text = tool_error(&v, 14);
        assert!(text.contains("4096"), "{text}");
    }
    let v = bridge.ask(&tool(15, "index_status", json!({"verbose": true})));
    let text = tool_error(&v, 15);
    assert!(text.contains("takes no arguments"), "{text}");

    bridge.still_serves_then_ends(&mut t, 16);
    r.stop(&mut t);
    assert_intact(&t, &base);
    assert_no_panic_logged(&t);
}

/// Every request over stdio gets exactly one answer: one reusing the id of a request
/// still running is refused at once (rmcp answered only one of the two), and requests
/// still running when stdin closes are answered before the bridge exits (rmcp gave up
/// after 5 s and answered nothing).
#[test]
fn every_mcp_request_over_stdio_gets_one_answer() {
    let mut t = with_fixtures();
    t.ok(&["init"]);
    t.set("DOC_SERVE_LOCK_TIMEOUT_SECONDS", "1");
    let lock = hold_index_lock(&t);
    t.ok(&["start"]);
    let mut bridge = Bridge::start(&mut t);
    bridge.initialize();

    // Two pings with one id, back to back: two answers, the second refused if the
    // first was still running.
    let ping = br#"{"jsonrpc":"2.0","id":8,"method":"ping"}"#;
    bridge.send_lines(&[ping, ping]);
    let answers = [bridge.next(), bridge.next()];
    assert!(
        answers.iter().any(|v| v["result"] == json!({})),
        "{answers:?}"
    );
    for v in &answers {
        if v.get("error").is_some() {
            assert!(error(v, -32600, json!(8)).contains("in flight"), "{v}");
        }
    }
    bridge.quiet();

    // A search waits for the first index, held up by the lock: a request reusing its
    // id meanwhile, a search or a ping, is refused at once.
    let search = call(9, json!({"query": "quorum"}));
    bridge.send_lines(&[&search, &search]);
    let v = bridge.next();
    assert!(error(&v, -32600, json!(9)).contains("in flight"), "{v}");
    let v = bridge.ask(br#"{"jsonrpc":"2.0","id":9,"method":"ping"}"#);
    assert!(error(&v, -32600, json!(9)).contains("in flight"), "{v}");

    // Stdin closes with two searches running; they are still answered, well past the
    // 5 s rmcp would have waited.
    bridge.send(&call(10, json!({"query": "quorum"})));
    drop(bridge.stdin.take());
    std::thread::sleep(Duration::from_secs(7));
    assert!(alive(bridge.pid), "the bridge exited with requests running");
    drop(lock);
    let mut ids = Vec::new();
    for _ in 0..2 {
        let v = bridge.next();
        assert_eq!(v["result"]["isError"], false, "{v}");
        ids.push(v["id"].as_u64().unwrap());
    }
    ids.sort_unstable();
    assert_eq!(ids, [9, 10]);
    assert_eq!(t.wait_child(bridge.pid, WAIT), Some(0));
    bridge.quiet();
    let err = std::fs::read_to_string(t.root().join("mcp.err")).unwrap();
    assert!(!err.contains("timed out draining"), "{err}");
    t.ok(&["stop"]);
}

/// The same bodies at `/mcp` get the same JSON-RPC errors (400 for a body that is not
/// one message, 200 for a well-formed request refused), never rmcp's plain 415; a
/// response or notification is accepted with 202 and no body (Streamable HTTP).
#[test]
fn mcp_bodies_rmcp_cannot_parse_at_slash_mcp() {
    let (mut t, base) = indexed();
    let r = serving(&mut t);
    let post_as = |content_type: &str, body: &[u8]| {
        let mut req = format!(
            "POST /mcp HTTP/1.1\r\nHost: {}\r\n{}\r\nContent-Type: {content_type}\r\n\
             Accept: application/json, text/event-stream\r\n\
             Content-Length: {}\r\nConnection: close\r\n\r\n",
            r.addr,
            r.auth,
            body.len()
        )
        .into_bytes();
        req.extend_from_slice(body);
        raw(&r.addr, &req)
    };
    let post = |body: &[u8]| post_as("application/json", body);
    for (body, status, code, id) in [
        (
            &br#"{"jsonrpc":"2.0","id":"pa","method":"ping","params":[]}"#[..],
            200,
            -32602,
            json!("pa"),
        ),
        (
            br#"{"jsonrpc":"2.0","id":"pn","method":"ping","params":5}"#,
            200,
            -32602,
            json!("pn"),
        ),
        (
            br#"{"jsonrpc":"2.0","id":4,"method":"resources/read","params":{}}"#,
            200,
            -32601,
            json!(4),
        ),
        (
            br#"{"jsonrpc":"2.0","id":8,"id":9,"method":"ping"}"#,
            400,
            -32600,
            Value::Null,
        ),
        (
            br#"{"jsonrpc":"2.0","id":11,"method":"tools/call","params":{"name":"search_docs","arguments":{"query":"a","query":"b"}}}"#,
            400,
            -32600,
            json!(11),
        ),
        (
            br#"{"id":"r","result":{},"method":"ping"}"#,
            400,
            -32600,
            json!("r"),
        ),
        (br#"{"id":"e","error":5}"#, 400, -32600, Value::Null),
        (
            br#"{"jsonrpc":"2.0","method":"notifications/initialized","params":5}"#,
            400,
            -32602,
            Value::Null,
        ),
        (b"\x0c", 400, -32700, Value::Null),
        (b"\xc2\xa0", 400, -32700, Value::Null),
        (b" \r\n", 400, -32700, Value::Null),
    ] {
        let reply = post(body);
        assert_eq!(reply.status, status, "{body:?}: {reply:?}");
        error(&reply.json(), code, id);
    }
    for body in [
        &br#"{"jsonrpc":"2.0","id":"s1","result":{}}"#[..],
        br#"{"jsonrpc":"2.0","id":"e1","error":{"code":-1,"message":"no"}}"#,
        br#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#,
        br#"{"jsonrpc":"2.0","method":"notifications/cancelled","params":{"requestId":1}}"#,
    ] {
        let reply = post(body);
        assert_eq!(reply.status, 202, "{body:?}: {reply:?}");
        assert_eq!(reply.body, "", "{reply:?}");
    }
    // A byte order mark before the JSON is skipped, as over stdio; the media type is
    // read in any letter case, as rmcp reads it.
    for content_type in ["application/json", "Application/JSON ; charset=utf-8"] {
        let ping = b"\xEF\xBB\xBF{\"jsonrpc\":\"2.0\",\"id\":12,\"method\":\"ping\"}";
        let reply = post_as(content_type, ping);
        assert_eq!(reply.status, 200, "{reply:?}");
        assert_eq!(reply.json()["result"], json!({}), "{reply:?}");
        let reply = post_as(
            content_type,
            br#"{"jsonrpc":"2.0","id":"p","method":"ping","params":5}"#,
        );
        assert_eq!(reply.status, 200, "{reply:?}");
        error(&reply.json(), -32602, json!("p"));
    }
    // Another media type is rmcp's to refuse.
    let reply = post_as(
        "application/json-seq",
        br#"{"jsonrpc":"2.0","id":1,"method":"ping"}"#,
    );
    assert_eq!(reply.status, 415, "{reply:?}");
    assert_intact(&t, &base);
    assert_no_panic_logged(&t);
    r.stop(&mut t);
}
