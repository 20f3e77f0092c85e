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

    // And the bridge still serves.
    let v = bridge.ask(&call(8, json!({"query": "quorum"})));
    assert_eq!(v["id"], 8, "{v}");
    assert_eq!(v["result"]["isError"], false, "{v}");
    let text = v["result"]["content"][0]["text"].as_str().unwrap();
    assert!(text.contains("docs/"), "{text}");

    // End of input ends the bridge cleanly.
    drop(bridge.stdin.take());
    assert_eq!(t.wait_child(bridge.pid, WAIT), Some(0));
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

    // And the bridge still serves, from the same resident.
    let v = bridge.ask(&call(16, json!({"query": "quorum"})));
    assert_eq!(v["result"]["isError"], false, "{v}");
    drop(bridge.stdin.take());
    assert_eq!(t.wait_child(bridge.pid, WAIT), Some(0));
    r.stop(&mut t);
    assert_intact(&t, &base);
    assert_no_panic_logged(&t);
}
