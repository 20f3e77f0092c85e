//! Incoming MCP messages, checked before rmcp sees them.
//!
//! rmcp answers what it cannot parse with an error that has no id (a client waiting
//! on that request hangs for good), answers a `tools/call` whose `arguments` is not an
//! object with "method not found", over stdio ends the whole session on a response or
//! a notification sent before `initialize`, and at `/mcp` answers a body it cannot
//! parse with a plain 415. So every message, a stdio line or a `/mcp` body, is judged
//! here first, rmcp's own parser included, and rmcp only ever gets what it can read;
//! the rest is answered with the JSON-RPC error it calls for (README, "MCP for AI
//! assistants"):
//!
//! - not UTF-8, or not JSON: -32700 Parse error, id null;
//! - JSON but not one JSON-RPC 2.0 message (an array, a number, no `method`, a bad
//!   `id`, a key twice in one object, both `method` and `result`): -32600 Invalid
//!   Request, with the id when there is one usable id;
//! - a request whose params do not fit (not an object, or not what `initialize`,
//!   `tools/list` or `tools/call` take, or what rmcp cannot read): -32602 Invalid
//!   params, with the request's id;
//! - over stdio, a request other than `initialize` or `ping` before `initialize`:
//!   [`NOT_INITIALIZED`], saying to send `initialize` first.
//!
//! Notifications and responses are never answered (JSON-RPC), save the -32600 and
//! -32700 above; doc-serve sends no requests, so no response is awaited and none is
//! handed to rmcp.
//!
//! This module only judges; the transports ([`super::stdio`], the resident's `/mcp`)
//! read, answer and forward.

use rmcp::model::{
    CallToolRequestParams, ClientJsonRpcMessage, InitializeRequestParams, PaginatedRequestParams,
};
use serde::de::DeserializeOwned;
use serde_json::{Map, Value};

use super::json::{self, Repeated};
use crate::api::quoted;

pub const PARSE_ERROR: i64 = -32700;
pub const INVALID_REQUEST: i64 = -32600;
pub const INVALID_PARAMS: i64 = -32602;
pub const INTERNAL_ERROR: i64 = -32603;
/// A request before `initialize` (the code LSP gives the same case).
pub const NOT_INITIALIZED: i64 = -32002;

/// A UTF-8 byte order mark, which may precede the JSON (RFC 8259, 8.1: a parser may
/// ignore it); rmcp skips it on stdio, and `/mcp` hands rmcp the body without it.
pub const BOM: &[u8] = b"\xEF\xBB\xBF";

/// Longest error message answered; serde's messages quote the value they refused.
const MESSAGE_CHARS: usize = 1000;

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
    /// Hand it to rmcp: a request, to be answered once, under `id`; `opens` when it is
    /// the `initialize` that opens the session.
    Request { id: Value, opens: bool },
    /// Hand it to rmcp: a notification. `cancels`: the id a `notifications/cancelled`
    /// names, a request rmcp will not answer any more.
    Notification { cancels: Option<Value> },
    /// Answer this error instead.
    Refuse(Refusal),
    /// Neither hand on nor answer: a response, a notification that cannot be acted on,
    /// a blank line. With what is wrong when something is (HTTP, which must answer,
    /// answers 400 with it), `None` when nothing is (HTTP: 202 Accepted).
    Quiet(Option<Refusal>),
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
        let mut message = message.into();
        if let Some((at, _)) = message.char_indices().nth(MESSAGE_CHARS) {
            message.truncate(at);
            message.push('…');
        }
        Refusal { id, code, message }
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

/// An id JSON-RPC and rmcp can both use: a string or a whole number (rmcp takes an
/// i64); null is not one in MCP.
pub fn is_usable_id(id: &Value) -> bool {
    id.is_string() || id.as_i64().is_some()
}

/// Judges one message: a stdio line without its line ending, or an HTTP body.
pub fn check(bytes: &[u8], session: Session) -> Verdict {
    let bytes = bytes.strip_prefix(BOM).unwrap_or(bytes);
    if let Err(e) = std::str::from_utf8(bytes) {
        return refuse_message(
            PARSE_ERROR,
            format!(
                "Parse error: the message is not valid UTF-8 (at byte {})",
                e.valid_up_to() + 1
            ),
        );
    }
    // JSON's own whitespace only: anything else (a form feed, a no-break space) is a
    // parse error, as the JSON parser says.
    if bytes
        .iter()
        .all(|b| matches!(b, b' ' | b'\t' | b'\r' | b'\n'))
    {
        return Verdict::Quiet(Some(Refusal::new(
            Value::Null,
            PARSE_ERROR,
            "Parse error: the message is empty; send one JSON-RPC message",
        )));
    }
    let (value, repeated) = match json::parse(bytes) {
        Ok(parsed) => parsed,
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
    let message = Message {
        object: &object,
        repeated,
        bytes,
    };
    message.judge(session)
}

fn refuse_message(code: i64, message: impl Into<String>) -> Verdict {
    Verdict::Refuse(Refusal::new(Value::Null, code, message))
}

/// A message that is a JSON object, being judged.
struct Message<'a> {
    object: &'a Map<String, Value>,
    repeated: Option<Repeated>,
    /// The JSON text, as rmcp is to parse it.
    bytes: &'a [u8],
}

impl Message<'_> {
    fn has(&self, key: &str) -> bool {
        self.object.contains_key(key)
    }

    /// The id to answer with: null unless exactly one usable id was given.
    fn id(&self) -> Value {
        let repeated = self
            .repeated
            .as_ref()
            .is_some_and(|r| r.top_level && r.key == "id");
        match self.object.get("id") {
            Some(id) if is_usable_id(id) && !repeated => id.clone(),
            _ => Value::Null,
        }
    }

    fn refuse(&self, code: i64, message: impl Into<String>) -> Verdict {
        Verdict::Refuse(Refusal::new(self.id(), code, message))
    }

    fn judge(&self, session: Session) -> Verdict {
        let response = self.has("result") || self.has("error");
        if response && self.has("method") {
            return self.refuse(
                INVALID_REQUEST,
                "Invalid Request: a message is a request or notification (\"method\") or a \
                 response (\"result\" or \"error\"), not both",
            );
        }
        if response {
            // Never answered, not even a malformed one (JSON-RPC): a peer that echoes
            // errors back must not start an endless exchange. doc-serve sends no
            // requests, so none is awaited, and rmcp never sees one.
            return Verdict::Quiet(self.response_problem().map(|problem| {
                Refusal::new(
                    Value::Null,
                    INVALID_REQUEST,
                    format!("Invalid Request: {problem}"),
                )
            }));
        }
        if let Some(bad) = self.object.get("id").filter(|id| !is_usable_id(id)) {
            return self.refuse(
                INVALID_REQUEST,
                format!(
                    "Invalid Request: an id is a string or a whole number, not {}",
                    match bad {
                        Value::Number(_) => "a fraction or a number out of range",
                        other => kind(other),
                    }
                ),
            );
        }
        if let Some(r) = &self.repeated {
            return self.refuse(INVALID_REQUEST, repeated_message(r));
        }
        if self.object.get("jsonrpc").and_then(Value::as_str) != Some("2.0") {
            return self.refuse(
                INVALID_REQUEST,
                "Invalid Request: \"jsonrpc\" must be \"2.0\"",
            );
        }
        let method = match self.object.get("method") {
            Some(Value::String(m)) => m.as_str(),
            Some(other) => {
                return self.refuse(
                    INVALID_REQUEST,
                    format!(
                        "Invalid Request: \"method\" must be a string, not {}",
                        kind(other)
                    ),
                );
            }
            None => {
                return self.refuse(
                    INVALID_REQUEST,
                    "Invalid Request: a message needs a \"method\" (a request or notification) \
                     or an \"id\" with a \"result\" or \"error\" (a response)",
                );
            }
        };
        let params = self.object.get("params").filter(|p| !p.is_null());
        let problem = match params {
            Some(p) if !p.is_object() => Some(format!(
                "Invalid params: {} params must be an object (arguments by name), not {}",
                quoted(method),
                kind(p)
            )),
            _ => bad_params(method, params).or_else(|| self.unreadable(method)),
        };
        match self.object.get("id") {
            None => self.notification(method, params, problem, session),
            Some(id) => match problem {
                Some(problem) => self.refuse(INVALID_PARAMS, problem),
                None => request(id, method, params, session),
            },
        }
    }

    /// A notification: handed on when it can be read, never answered.
    fn notification(
        &self,
        method: &str,
        params: Option<&Value>,
        problem: Option<String>,
        session: Session,
    ) -> Verdict {
        if let Some(problem) = problem {
            return Verdict::Quiet(Some(Refusal::new(Value::Null, INVALID_PARAMS, problem)));
        }
        if session == Session::Opening {
            return Verdict::Quiet(None);
        }
        let cancels = (method == "notifications/cancelled")
            .then(|| params.and_then(|p| p.get("requestId")))
            .flatten()
            .filter(|id| is_usable_id(id))
            .cloned();
        Verdict::Notification { cancels }
    }

    /// What rmcp's own parser refuses in a message that passed every check above
    /// (`_meta` of the wrong type, params of another method's shape...).
    fn unreadable(&self, method: &str) -> Option<String> {
        let e = serde_json::from_slice::<ClientJsonRpcMessage>(self.bytes).err()?;
        let meta = self
            .object
            .get("params")
            .and_then(|p| p.get("_meta"))
            .filter(|m| !m.is_object() && !m.is_null());
        Some(match meta {
            Some(m) => format!(
                "Invalid params: \"_meta\" must be an object, not {}",
                kind(m)
            ),
            None => format!("Invalid params for {}: {e}", quoted(method)),
        })
    }

    /// Why a response is malformed, if it is: JSON-RPC 2.0, a usable id (or null for an
    /// error that could not name one), and a `result` object or an `error` with an
    /// integer `code` and a string `message`, not both.
    fn response_problem(&self) -> Option<String> {
        if let Some(r) = &self.repeated {
            return Some(repeated_message(r));
        }
        if self.object.get("jsonrpc").and_then(Value::as_str) != Some("2.0") {
            return Some("a response needs \"jsonrpc\": \"2.0\"".into());
        }
        let id = self.object.get("id");
        match (self.object.get("result"), self.object.get("error")) {
            (Some(_), Some(_)) => {
                Some("a response has a \"result\" or an \"error\", not both".into())
            }
            (Some(result), None) => {
                if !id.is_some_and(is_usable_id) {
                    Some("a result needs the id of its request".into())
                } else if !result.is_object() {
                    Some(format!("a result is an object, not {}", kind(result)))
                } else {
                    None
                }
            }
            (None, Some(error)) => {
                let fits = error.get("code").is_some_and(|c| c.as_i64().is_some())
                    && error.get("message").is_some_and(Value::is_string);
                if !id.is_none_or(|id| id.is_null() || is_usable_id(id)) {
                    Some("an error's id is its request's, or null".into())
                } else if !fits {
                    Some(
                        "an error is an object with an integer \"code\" and a string \"message\""
                            .into(),
                    )
                } else {
                    None
                }
            }
            (None, None) => None,
        }
    }
}

fn repeated_message(r: &Repeated) -> String {
    format!(
        "Invalid Request: the key {} appears twice in one object{}; which one counts is \
         anyone's guess, so send each key once",
        quoted(&r.key),
        if r.top_level { " (the message)" } else { "" }
    )
}

/// A well-formed request with params that fit: handed on, or refused before
/// `initialize`.
fn request(id: &Value, method: &str, params: Option<&Value>, session: Session) -> Verdict {
    let pass = |opens| Verdict::Request {
        id: id.clone(),
        opens,
    };
    match (session, method) {
        (_, "initialize") => pass(true),
        (Session::Open, _) | (Session::Opening, "ping") => pass(false),
        // A request carrying its protocol version in `_meta` needs no initialize
        // (the sessionless lifecycle rmcp also serves).
        (Session::Opening, _) if has_inline_version(params) => pass(false),
        (Session::Opening, _) => Verdict::Refuse(Refusal::new(
            id.clone(),
            NOT_INITIALIZED,
            format!(
                "server not initialized: {} came before initialize; an MCP session \
                 opens with an \"initialize\" request (then the \
                 \"notifications/initialized\" notification)",
                quoted(method)
            ),
        )),
    }
}

/// Why `params` do not fit `method`, for the methods doc-serve serves; `None` when
/// they fit or the method is not one of them (rmcp answers those).
fn bad_params(method: &str, params: Option<&Value>) -> Option<String> {
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
    use serde_json::json;

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

    fn quiet(line: &str) -> Option<Refusal> {
        match check(line.as_bytes(), Session::Open) {
            Verdict::Quiet(problem) => problem,
            other => panic!("{line}: {other:?}"),
        }
    }

    fn request(id: Value) -> Verdict {
        Verdict::Request { id, opens: false }
    }

    #[test]
    fn responses_are_never_answered() {
        // Our own refusal, echoed back, among them.
        let echoed = refused("{", Session::Open).to_bytes();
        assert_eq!(check(&echoed, Session::Open), Verdict::Quiet(None));
        for line in [
            r#"{"jsonrpc":"2.0","id":null,"result":{}}"#,
            r#"{"jsonrpc":"2.0","id":1.5,"error":{"code":1,"message":"x"}}"#,
            r#"{"id":1,"result":{}}"#,
            r#"{"jsonrpc":"2.0","result":{}}"#,
            r#"{"jsonrpc":"2.0","id":1,"result":5}"#,
            r#"{"jsonrpc":"2.0","id":"e","error":5}"#,
            r#"{"jsonrpc":"2.0","id":"e","error":{"code":"x","message":"m"}}"#,
            r#"{"jsonrpc":"2.0","id":"e","error":{"code":1}}"#,
            r#"{"jsonrpc":"2.0","id":1,"result":{},"error":{"code":1,"message":"x"}}"#,
            r#"{"jsonrpc":"2.0","id":1,"id":1,"result":{}}"#,
        ] {
            let problem = quiet(line).unwrap_or_else(|| panic!("{line}"));
            assert_eq!((problem.code, problem.id), (INVALID_REQUEST, Value::Null));
        }
        for ok in [
            r#"{"jsonrpc":"2.0","id":"s1","result":{}}"#,
            r#"{"jsonrpc":"2.0","id":2,"error":{"code":-1,"message":"no"}}"#,
            r#"{"jsonrpc":"2.0","error":{"code":-1,"message":"no"}}"#,
        ] {
            assert_eq!(quiet(ok), None, "{ok}");
        }
        for session in [Session::Opening, Session::Open] {
            let ok = r#"{"jsonrpc":"2.0","id":"s1","result":{}}"#;
            assert_eq!(check(ok.as_bytes(), session), Verdict::Quiet(None));
        }
    }

    /// A method beside a result or an error is not a response: refused, with its id.
    #[test]
    fn a_request_that_is_also_a_response_is_refused() {
        for (line, id) in [
            (r#"{"id":"r","result":{},"method":"ping"}"#, json!("r")),
            (
                r#"{"jsonrpc":"2.0","id":3,"error":{"code":1,"message":"x"},"method":"ping"}"#,
                json!(3),
            ),
            (r#"{"jsonrpc":"2.0","result":{},"method":"x"}"#, Value::Null),
        ] {
            let r = refused(line, Session::Open);
            assert_eq!((r.code, r.id), (INVALID_REQUEST, id), "{line}");
        }
    }

    /// A key twice in one object, anywhere: -32600, with the id unless the id is the
    /// key repeated.
    #[test]
    fn repeated_keys_are_refused() {
        for (line, id) in [
            (
                r#"{"jsonrpc":"2.0","id":8,"id":9,"method":"ping"}"#,
                Value::Null,
            ),
            (
                r#"{"jsonrpc":"2.0","id":8,"id":8,"method":"ping"}"#,
                Value::Null,
            ),
            (
                r#"{"jsonrpc":"2.0","id":8,"method":"ping","method":"x"}"#,
                json!(8),
            ),
            (
                r#"{"jsonrpc":"2.0","id":"c","method":"tools/call","params":{"name":"a","arguments":{"q":1,"q":2}}}"#,
                json!("c"),
            ),
            (
                r#"{"jsonrpc":"2.0","method":"notifications/initialized","params":{"a":1,"a":1}}"#,
                Value::Null,
            ),
        ] {
            let r = refused(line, Session::Open);
            assert_eq!((r.code, &r.id), (INVALID_REQUEST, &id), "{line}");
            assert!(r.message.contains("twice"), "{}", r.message);
        }
    }

    /// What rmcp's parser refuses, such as params that are not an object, is refused
    /// here with the request's id; for a notification it is not answered.
    #[test]
    fn params_rmcp_cannot_read_are_invalid_params() {
        for (line, id) in [
            (
                r#"{"jsonrpc":"2.0","id":"pa","method":"ping","params":[]}"#,
                json!("pa"),
            ),
            (
                r#"{"jsonrpc":"2.0","id":"pn","method":"ping","params":5}"#,
                json!("pn"),
            ),
            (
                r#"{"jsonrpc":"2.0","id":1,"method":"ping","params":"x"}"#,
                json!(1),
            ),
            (
                r#"{"jsonrpc":"2.0","id":2,"method":"nope","params":true}"#,
                json!(2),
            ),
            (
                r#"{"jsonrpc":"2.0","id":3,"method":"ping","params":{"_meta":5}}"#,
                json!(3),
            ),
            (
                r#"{"jsonrpc":"2.0","id":4,"method":"tools/call","params":{"name":"a","_meta":[]}}"#,
                json!(4),
            ),
        ] {
            let r = refused(line, Session::Open);
            assert_eq!((r.code, &r.id), (INVALID_PARAMS, &id), "{line}");
            // And rmcp could not have read it.
            assert!(
                serde_json::from_str::<ClientJsonRpcMessage>(line).is_err(),
                "{line}"
            );
        }
        let line = r#"{"jsonrpc":"2.0","method":"notifications/initialized","params":5}"#;
        let problem = quiet(line).unwrap_or_else(|| panic!("{line}"));
        assert_eq!((problem.code, problem.id), (INVALID_PARAMS, Value::Null));
        // rmcp reads a cancellation of no usable id as a notification of its own.
        let line =
            r#"{"jsonrpc":"2.0","method":"notifications/cancelled","params":{"requestId":[]}}"#;
        assert_eq!(
            check(line.as_bytes(), Session::Open),
            Verdict::Notification { cancels: None }
        );
        // Params of null are no params.
        let line = r#"{"jsonrpc":"2.0","id":5,"method":"ping","params":null}"#;
        assert_eq!(check(line.as_bytes(), Session::Open), request(json!(5)));
    }

    /// What passes, rmcp can read.
    #[test]
    fn what_is_handed_on_rmcp_can_read() {
        for line in [
            INIT,
            r#"{"jsonrpc":"2.0","id":1,"method":"ping"}"#,
            r#"{"jsonrpc":"2.0","id":1,"method":"ping","params":{}}"#,
            r#"{"jsonrpc":"2.0","id":"x","method":"tools/list","params":{"cursor":"c"}}"#,
            r#"{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"a","arguments":{"q":1},"_meta":{"progressToken":1}}}"#,
            r#"{"jsonrpc":"2.0","id":3,"method":"custom/thing","params":{"a":[1]}}"#,
            r#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#,
            r#"{"jsonrpc":"2.0","method":"notifications/cancelled","params":{"requestId":7}}"#,
            r#"{"jsonrpc":"2.0","id":4,"method":"ping","extra":1}"#,
        ] {
            let verdict = check(line.as_bytes(), Session::Open);
            assert!(
                matches!(
                    verdict,
                    Verdict::Request { .. } | Verdict::Notification { .. }
                ),
                "{line}: {verdict:?}"
            );
            assert!(
                serde_json::from_str::<ClientJsonRpcMessage>(line).is_ok(),
                "{line}"
            );
        }
        let cancel =
            r#"{"jsonrpc":"2.0","method":"notifications/cancelled","params":{"requestId":"r7"}}"#;
        assert_eq!(
            check(cancel.as_bytes(), Session::Open),
            Verdict::Notification {
                cancels: Some(json!("r7"))
            }
        );
    }

    /// JSON's whitespace alone is a blank line; any other whitespace is not JSON.
    #[test]
    fn blank_means_json_whitespace() {
        for blank in ["", " ", "\t \r\n"] {
            let problem = quiet(blank).unwrap();
            assert_eq!(problem.code, PARSE_ERROR);
        }
        for other in ["\x0c", "\u{a0}", " \u{2028} ", "\x0b"] {
            assert_eq!(refused(other, Session::Open).code, PARSE_ERROR, "{other:?}");
        }
        let bom = "\u{feff}{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"ping\"}";
        assert_eq!(check(bom.as_bytes(), Session::Open), request(json!(1)));
    }

    #[test]
    fn messages_quote_little_of_the_input() {
        let method = "m".repeat(100_000);
        let line = format!(r#"{{"jsonrpc":"2.0","id":1,"method":"{method}","params":5}}"#);
        let r = refused(&line, Session::Open);
        assert!(r.message.len() < 400, "{}", r.message.len());
        let line = format!(
            r#"{{"jsonrpc":"2.0","id":1,"method":"initialize","params":{{"protocolVersion":"{method}"}}}}"#
        );
        assert!(refused(&line, Session::Open).message.chars().count() <= MESSAGE_CHARS + 1);
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
            r#"{"jsonrpc":"2.0","id":2,"method":"resources/list","params":5}"#,
            r#"{"jsonrpc":"2.0","id":2,"method":"initialize","params":{}}"#,
        ] {
            assert_eq!(refused(line, Session::Open).code, INVALID_PARAMS, "{line}");
        }
        for (line, id) in [
            (
                r#"{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"x"}}"#,
                json!(2),
            ),
            (
                r#"{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"x","arguments":null}}"#,
                json!(2),
            ),
            (
                r#"{"jsonrpc":"2.0","id":"b","method":"tools/call","params":{"name":"x","arguments":{"q":1}}}"#,
                json!("b"),
            ),
            (
                r#"{"jsonrpc":"2.0","id":2,"method":"tools/list"}"#,
                json!(2),
            ),
        ] {
            assert_eq!(check(line.as_bytes(), Session::Open), request(id), "{line}");
        }
    }

    #[test]
    fn before_initialize() {
        assert_eq!(
            check(INIT.as_bytes(), Session::Opening),
            Verdict::Request {
                id: json!(1),
                opens: true
            }
        );
        let ping = r#"{"jsonrpc":"2.0","id":1,"method":"ping"}"#;
        assert_eq!(check(ping.as_bytes(), Session::Opening), request(json!(1)));
        let call = r#"{"jsonrpc":"2.0","id":9,"method":"tools/call","params":{"name":"search_docs","arguments":{"query":"x"}}}"#;
        let r = refused(call, Session::Opening);
        assert_eq!((r.code, r.id), (NOT_INITIALIZED, Value::from(9)));
        assert!(r.message.contains("initialize"), "{}", r.message);
        assert_eq!(check(call.as_bytes(), Session::Open), request(json!(9)));
        for quiet in [
            r#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#,
            r#"{"jsonrpc":"2.0","id":3,"result":{}}"#,
            "",
            "  \t",
        ] {
            assert!(
                matches!(check(quiet.as_bytes(), Session::Opening), Verdict::Quiet(_)),
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
