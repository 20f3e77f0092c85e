//! Incoming MCP messages, checked before rmcp sees them.
//!
//! rmcp drops what it cannot parse without a word (a client waiting on that request
//! hangs for good), answers a `tools/call` whose `arguments` is not an object with
//! "method not found", and over stdio ends the whole session on a notification sent
//! before `initialize`. So every message, a stdio line or a `/mcp` body, is judged
//! here first, and anything rmcp would mishandle is answered with the JSON-RPC error
//! it calls for (README, "MCP for AI assistants"):
//!
//! - not UTF-8, or not JSON: -32700 Parse error, id null;
//! - JSON but not one JSON-RPC 2.0 message (an array, a number, no `method`, a
//!   bad `id`): -32600 Invalid Request, with the id when it is a usable one;
//! - `initialize`, `tools/list` or `tools/call` whose params do not fit: -32602
//!   Invalid params, with the request's id;
//! - over stdio, a request other than `initialize` or `ping` before `initialize`:
//!   [`NOT_INITIALIZED`], saying to send `initialize` first.
//!
//! Notifications and responses are never answered (JSON-RPC); malformed responses,
//! and over stdio those before `initialize`, are dropped.
//!
//! This module only judges; the transports ([`super::stdio`], the resident's `/mcp`)
//! read, answer and forward.

use rmcp::model::{CallToolRequestParams, InitializeRequestParams, PaginatedRequestParams};
use serde::de::DeserializeOwned;
use serde_json::{Map, Value};

pub const PARSE_ERROR: i64 = -32700;
pub const INVALID_REQUEST: i64 = -32600;
pub const INVALID_PARAMS: i64 = -32602;
/// A request before `initialize` (the code LSP gives the same case).
pub const NOT_INITIALIZED: i64 = -32002;

/// Where a session stands, as far as checking a message goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Session {
    /// Stdio, before the client's `initialize`.
    Opening,
    /// Stdio after `initialize`, or stateless HTTP where every request stands alone.
    Open,
}

/// What to do with one incoming message.
#[derive(Debug, PartialEq)]
pub enum Verdict {
    /// Hand it to rmcp as it is.
    Pass,
    /// Hand it to rmcp: it is the `initialize` request that opens the session.
    Opens,
    /// Answer this error instead.
    Refuse(Refusal),
    /// Neither: a notification or response that cannot be acted on (JSON-RPC forbids
    /// answering a notification).
    Ignore(&'static str),
}

/// A JSON-RPC error response.
#[derive(Debug, PartialEq)]
pub struct Refusal {
    /// The request's id, or null when it has none that can be used.
    pub id: Value,
    pub code: i64,
    pub message: String,
}

impl Refusal {
    pub fn new(id: Value, code: i64, message: impl Into<String>) -> Refusal {
        Refusal {
            id,
            code,
            message: message.into(),
        }
    }

    /// The response as JSON, `jsonrpc` first as clients print it.
    pub fn to_bytes(&self) -> Vec<u8> {
        #[derive(serde::Serialize)]
        struct Response<'a> {
            jsonrpc: &'static str,
            id: &'a Value,
            error: Error<'a>,
        }
        #[derive(serde::Serialize)]
        struct Error<'a> {
            code: i64,
            message: &'a str,
        }
        let response = Response {
            jsonrpc: "2.0",
            id: &self.id,
            error: Error {
                code: self.code,
                message: &self.message,
            },
        };
        // Proof: strings, numbers and a Value always serialize.
        serde_json::to_vec(&response).unwrap_or_default()
    }

    /// The response as one line, newline included (the stdio framing).
    pub fn to_line(&self) -> Vec<u8> {
        let mut line = self.to_bytes();
        line.push(b'\n');
        line
    }

    /// An error about the message as a whole (parse errors, invalid requests), as
    /// opposed to one about a well-formed request's params or timing.
    pub fn is_about_the_message(&self) -> bool {
        matches!(self.code, PARSE_ERROR | INVALID_REQUEST)
    }
}

/// Judges one message: a stdio line without its line ending, or an HTTP body.
pub fn check(bytes: &[u8], session: Session) -> Verdict {
    // rmcp skips a UTF-8 byte order mark, and so do we.
    let bytes = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
    let text = match std::str::from_utf8(bytes) {
        Ok(text) => text,
        Err(e) => {
            return refuse_message(
                PARSE_ERROR,
                format!(
                    "Parse error: the message is not valid UTF-8 (at byte {})",
                    e.valid_up_to() + 1
                ),
            );
        }
    };
    if text.trim().is_empty() {
        return Verdict::Ignore("a blank line");
    }
    let value: Value = match serde_json::from_str(text) {
        Ok(v) => v,
        Err(e) => {
            return refuse_message(PARSE_ERROR, format!("Parse error: not JSON ({e})"));
        }
    };
    let object = match value {
        Value::Object(o) => o,
        Value::Array(_) => {
            return refuse_message(
                INVALID_REQUEST,
                "Invalid Request: batches (JSON arrays) are not supported; send one message \
                 per line",
            );
        }
        other => {
            return refuse_message(
                INVALID_REQUEST,
                format!(
                    "Invalid Request: a JSON-RPC message is an object, not {}",
                    kind(&other)
                ),
            );
        }
    };
    check_object(&object, session)
}

fn refuse_message(code: i64, message: impl Into<String>) -> Verdict {
    Verdict::Refuse(Refusal::new(Value::Null, code, message))
}

fn check_object(object: &Map<String, Value>, session: Session) -> Verdict {
    // An id is a string or a whole number (rmcp takes an i64); null is not one in MCP.
    let usable = |id: &Value| id.is_string() || id.as_i64().is_some();
    let version_ok = object.get("jsonrpc").and_then(Value::as_str) == Some("2.0");
    if !object.contains_key("method")
        && (object.contains_key("result") || object.contains_key("error"))
    {
        // A response is never answered, not even a malformed one (JSON-RPC): a peer
        // that echoes errors back must not start an endless exchange.
        return match object.get("id") {
            Some(id) if usable(id) && version_ok && session == Session::Open => Verdict::Pass,
            _ => Verdict::Ignore("a response that is malformed or comes before initialize"),
        };
    }
    let id = match object.get("id") {
        None => None,
        Some(v) if usable(v) => Some(v.clone()),
        Some(other) => {
            return refuse_message(
                INVALID_REQUEST,
                format!(
                    "Invalid Request: an id is a string or a whole number, not {}",
                    match other {
                        Value::Number(_) => "a fraction or a number out of range",
                        other => kind(other),
                    }
                ),
            );
        }
    };
    let refuse = |code, message: String| {
        Verdict::Refuse(Refusal::new(
            id.clone().unwrap_or(Value::Null),
            code,
            message,
        ))
    };
    if !version_ok {
        return refuse(
            INVALID_REQUEST,
            "Invalid Request: \"jsonrpc\" must be \"2.0\"".into(),
        );
    }
    let method = match object.get("method") {
        Some(Value::String(m)) => m.as_str(),
        Some(other) => {
            return refuse(
                INVALID_REQUEST,
                format!(
                    "Invalid Request: \"method\" must be a string, not {}",
                    kind(other)
                ),
            );
        }
        None => {
            return refuse(
                INVALID_REQUEST,
                "Invalid Request: a message needs a \"method\" (a request or notification) \
                 or an \"id\" with a \"result\" or \"error\" (a response)"
                    .into(),
            );
        }
    };
    let Some(_) = id else {
        // A notification: never answered.
        return match session {
            Session::Opening => Verdict::Ignore("a notification before initialize"),
            Session::Open => Verdict::Pass,
        };
    };
    let params = object.get("params");
    if let Some(problem) = bad_params(method, params) {
        return refuse(INVALID_PARAMS, problem);
    }
    match (session, method) {
        (_, "initialize") => Verdict::Opens,
        (Session::Open, _) | (Session::Opening, "ping") => Verdict::Pass,
        // A request carrying its protocol version in `_meta` needs no initialize
        // (the sessionless lifecycle rmcp also serves).
        (Session::Opening, _) if has_inline_version(params) => Verdict::Pass,
        (Session::Opening, _) => refuse(
            NOT_INITIALIZED,
            format!(
                "server not initialized: {method} came before initialize; an MCP session \
                 opens with an \"initialize\" request (then the \
                 \"notifications/initialized\" notification)"
            ),
        ),
    }
}

/// Why `params` do not fit `method`, for the methods doc-serve serves; `None` when
/// they fit or the method is not one of them (rmcp answers those).
fn bad_params(method: &str, params: Option<&Value>) -> Option<String> {
    let params = params.filter(|p| !p.is_null());
    match method {
        "initialize" => fits::<InitializeRequestParams>(method, params, true),
        "tools/list" => fits::<PaginatedRequestParams>(method, params, false),
        "tools/call" => {
            let arguments = params.and_then(|p| p.get("arguments"));
            if let Some(a) = arguments.filter(|a| !a.is_object() && !a.is_null()) {
                return Some(format!(
                    "Invalid params: tools/call \"arguments\" must be an object of the tool's \
                     arguments by name, not {}",
                    kind(a)
                ));
            }
            fits::<CallToolRequestParams>(method, params, true)
        }
        _ => None,
    }
}

fn fits<T: DeserializeOwned>(
    method: &str,
    params: Option<&Value>,
    required: bool,
) -> Option<String> {
    match params {
        None if required => Some(format!("Invalid params: {method} needs params")),
        None => None,
        Some(p) => serde_json::from_value::<T>(p.clone())
            .err()
            .map(|e| format!("Invalid params for {method}: {e}")),
    }
}

fn has_inline_version(params: Option<&Value>) -> bool {
    params
        .and_then(|p| p.get("_meta"))
        .and_then(|m| m.get("io.modelcontextprotocol/protocolVersion"))
        .is_some()
}

/// A JSON value's kind, for messages (the value itself may be large).
fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const INIT: &str = r#"{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"t","version":"1"}}}"#;

    fn refused(line: &str, session: Session) -> Refusal {
        match check(line.as_bytes(), session) {
            Verdict::Refuse(r) => r,
            other => panic!("{line}: {other:?}"),
        }
    }

    #[test]
    fn malformed_messages_are_refused_with_id_null() {
        for (line, code) in [
            ("{bad json", PARSE_ERROR),
            ("{\"jsonrpc\":\"2.0\",\"id\":1,", PARSE_ERROR),
            ("nul", PARSE_ERROR),
            ("[]", INVALID_REQUEST),
            (
                r#"[{"jsonrpc":"2.0","id":1,"method":"ping"}]"#,
                INVALID_REQUEST,
            ),
            ("42", INVALID_REQUEST),
            ("\"text\"", INVALID_REQUEST),
            ("null", INVALID_REQUEST),
            ("{}", INVALID_REQUEST),
            (
                r#"{"jsonrpc":"2.0","id":1.5,"method":"ping"}"#,
                INVALID_REQUEST,
            ),
            (
                r#"{"jsonrpc":"2.0","id":null,"method":"ping"}"#,
                INVALID_REQUEST,
            ),
            (
                r#"{"jsonrpc":"2.0","id":[1],"method":"ping"}"#,
                INVALID_REQUEST,
            ),
            (
                r#"{"jsonrpc":"2.0","id":18446744073709551615,"method":"ping"}"#,
                INVALID_REQUEST,
            ),
        ] {
            for session in [Session::Opening, Session::Open] {
                let r = refused(line, session);
                assert_eq!((r.code, &r.id), (code, &Value::Null), "{line}");
            }
        }
        // Nesting past serde_json's depth limit is an error, not a stack overflow.
        let deep = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
        assert_eq!(refused(&deep, Session::Open).code, PARSE_ERROR);
        let deep = format!(
            r#"{{"jsonrpc":"2.0","id":1,"method":"ping","params":{}}}"#,
            "[".repeat(100_000)
        );
        assert_eq!(refused(&deep, Session::Open).code, PARSE_ERROR);
        match check(b"\xff\xfe{}", Session::Open) {
            Verdict::Refuse(r) => assert_eq!(r.code, PARSE_ERROR),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_usable_id_is_kept() {
        let r = refused(
            r#"{"jsonrpc":"1.0","id":"a","method":"ping"}"#,
            Session::Open,
        );
        assert_eq!((r.code, r.id), (INVALID_REQUEST, Value::from("a")));
        let r = refused(r#"{"jsonrpc":"2.0","id":7,"method":3}"#, Session::Open);
        assert_eq!((r.code, r.id), (INVALID_REQUEST, Value::from(7)));
        let r = refused(r#"{"jsonrpc":"2.0","id":7}"#, Session::Open);
        assert_eq!((r.code, r.id), (INVALID_REQUEST, Value::from(7)));
    }

    #[test]
    fn responses_are_never_answered() {
        // Our own refusal, echoed back, among them.
        let echoed = refused("{", Session::Open).to_bytes();
        assert!(matches!(check(&echoed, Session::Open), Verdict::Ignore(_)));
        for line in [
            r#"{"jsonrpc":"2.0","id":null,"result":{}}"#,
            r#"{"jsonrpc":"2.0","id":1.5,"error":{"code":1,"message":"x"}}"#,
            r#"{"id":1,"result":{}}"#,
            r#"{"jsonrpc":"2.0","result":{}}"#,
        ] {
            assert!(
                matches!(check(line.as_bytes(), Session::Open), Verdict::Ignore(_)),
                "{line}"
            );
        }
        let ok = r#"{"jsonrpc":"2.0","id":"s1","result":{}}"#;
        assert_eq!(check(ok.as_bytes(), Session::Open), Verdict::Pass);
    }

    #[test]
    fn params_that_do_not_fit_are_invalid_params() {
        for args in [r#""x""#, "3", "[]", "true"] {
            let line = format!(
                r#"{{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{{"name":"search_docs","arguments":{args}}}}}"#
            );
            let r = refused(&line, Session::Open);
            assert_eq!((r.code, r.id), (INVALID_PARAMS, Value::from(2)), "{args}");
            assert!(r.message.contains("arguments"), "{}", r.message);
        }
        for line in [
            r#"{"jsonrpc":"2.0","id":2,"method":"tools/call"}"#,
            r#"{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"arguments":{}}}"#,
            r#"{"jsonrpc":"2.0","id":2,"method":"tools/call","params":"x"}"#,
            r#"{"jsonrpc":"2.0","id":2,"method":"tools/list","params":{"cursor":3}}"#,
            r#"{"jsonrpc":"2.0","id":2,"method":"initialize","params":{}}"#,
        ] {
            assert_eq!(refused(line, Session::Open).code, INVALID_PARAMS, "{line}");
        }
        for line in [
            r#"{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"x"}}"#,
            r#"{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"x","arguments":null}}"#,
            r#"{"jsonrpc":"2.0","id":"b","method":"tools/call","params":{"name":"x","arguments":{"q":1}}}"#,
            r#"{"jsonrpc":"2.0","id":2,"method":"tools/list"}"#,
            r#"{"jsonrpc":"2.0","id":2,"method":"resources/list","params":5}"#,
            r#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#,
            r#"{"jsonrpc":"2.0","id":2,"result":{}}"#,
        ] {
            assert_eq!(
                check(line.as_bytes(), Session::Open),
                Verdict::Pass,
                "{line}"
            );
        }
    }

    #[test]
    fn before_initialize() {
        assert_eq!(check(INIT.as_bytes(), Session::Opening), Verdict::Opens);
        let ping = r#"{"jsonrpc":"2.0","id":1,"method":"ping"}"#;
        assert_eq!(check(ping.as_bytes(), Session::Opening), Verdict::Pass);
        let call = r#"{"jsonrpc":"2.0","id":9,"method":"tools/call","params":{"name":"search_docs","arguments":{"query":"x"}}}"#;
        let r = refused(call, Session::Opening);
        assert_eq!((r.code, r.id), (NOT_INITIALIZED, Value::from(9)));
        assert!(r.message.contains("initialize"), "{}", r.message);
        assert_eq!(check(call.as_bytes(), Session::Open), Verdict::Pass);
        for quiet in [
            r#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#,
            r#"{"jsonrpc":"2.0","id":3,"result":{}}"#,
            "",
            "  \t",
        ] {
            assert!(
                matches!(
                    check(quiet.as_bytes(), Session::Opening),
                    Verdict::Ignore(_)
                ),
                "{quiet}"
            );
        }
    }

    #[test]
    fn a_refusal_is_one_json_rpc_line() {
        let line = refused("{", Session::Open).to_line();
        assert_eq!(line.last(), Some(&b'\n'));
        assert_eq!(line.iter().filter(|b| **b == b'\n').count(), 1);
        let v: Value = serde_json::from_slice(&line).unwrap();
        assert_eq!(v["jsonrpc"], "2.0");
        assert_eq!(v["id"], Value::Null);
        assert_eq!(v["error"]["code"], PARSE_ERROR);
        assert!(line.starts_with(br#"{"jsonrpc":"2.0","id":null,"error":{"code":-32700,"#));
    }
}
