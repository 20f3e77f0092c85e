//! Request handling: the security gate, then the routes.
//!
//! The gate, in order: a Host that is not a loopback name or address gets 403, and so
//! does an Origin that is present but not loopback (a web page in a browser must not
//! reach us through DNS rebinding); over TCP every route but /health needs the bearer
//! token from the 0600 runtime.json (401), while over a Unix socket the file mode is the
//! gate; bodies are capped (413) and must arrive in time (408). Every error is JSON:
//! `{"code", "message"}` with a stable code.

use std::convert::Infallible;
use std::net::IpAddr;
use std::sync::Arc;

use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::{Body, Bytes, Incoming};
use hyper::header::{self, HeaderValue};
use hyper::{Method, Request, Response, StatusCode};
use serde_json::{Value, json};

use super::projects;
use super::routes;
use super::state::{Shared, Site, Sites};

/// How a request reached us.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    Tcp,
    Unix,
}

/// An error answered as `{"code", "message"}`.
#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
    /// The methods a route takes, for a 405's `Allow` header.
    pub allow: Option<&'static str>,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        ApiError {
            status,
            code,
            message: message.into(),
            allow: None,
        }
    }

    /// A 500: something on our side failed.
    pub fn internal(message: impl ToString) -> Self {
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            message.to_string(),
        )
    }
}

type Reply = Response<BoxBody<Bytes, Infallible>>;

/// A route's answer: a JSON value, or a search's answer (`/query`, the hot route, is
/// written straight out without building a value).
pub enum Answer {
    Value(Value),
    Query(routes::QueryReply),
    /// JSON, already written.
    Json(Bytes),
}

impl From<Value> for Answer {
    fn from(v: Value) -> Self {
        Answer::Value(v)
    }
}

impl Answer {
    /// The answer as a value (for in-process callers such as the MCP tools).
    pub fn into_value(self) -> Result<Value, ApiError> {
        match self {
            Answer::Value(v) => Ok(v),
            Answer::Query(reply) => serde_json::to_value(reply).map_err(ApiError::internal),
            Answer::Json(bytes) => serde_json::from_slice(&bytes).map_err(ApiError::internal),
        }
    }
}

/// The hyper service function.
pub async fn handle(
    req: Request<Incoming>,
    shared: Arc<Shared>,
    transport: Transport,
) -> Result<Reply, Infallible> {
    let _busy = shared.activity.begin();
    if req.uri().path() == "/mcp" && matches!(shared.sites, Sites::One(_)) {
        return Ok(match gate(&req, &shared, transport) {
            Ok(()) => mcp(req, &shared).await,
            Err(e) => error_reply(e),
        });
    }
    Ok(match route(req, &shared, transport).await {
        Ok(Answer::Value(body)) => json_reply(StatusCode::OK, &body),
        Ok(Answer::Json(bytes)) => bytes_reply(StatusCode::OK, bytes),
        Ok(Answer::Query(reply)) => {
            // Room for ten hits, so the buffer is not grown and copied several times.
            let mut bytes = Vec::with_capacity(8 << 10);
            match serde_json::to_writer(&mut bytes, &reply) {
                Ok(()) => bytes_reply(StatusCode::OK, bytes),
                Err(e) => error_reply(ApiError::internal(e)),
            }
        }
        Err(e) => error_reply(e),
    })
}

fn error_reply(e: ApiError) -> Reply {
    let mut reply = json_reply(e.status, &json!({"code": e.code, "message": e.message}));
    if e.status == StatusCode::UNAUTHORIZED {
        reply
            .headers_mut()
            .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
    }
    if let Some(allow) = e.allow {
        reply
            .headers_mut()
            .insert(header::ALLOW, HeaderValue::from_static(allow));
    }
    reply
}

/// `/mcp`. rmcp would read the body itself, capped in size but neither refused early
/// by its declared length nor bounded in time (a client that never sends it would hold
/// the connection for good): so it is read here, as for every other route, and handed
/// over whole.
async fn mcp(req: Request<Incoming>, shared: &Arc<Shared>) -> Reply {
    let (parts, body) = req.into_parts();
    match read_body(Request::from_parts(parts.clone(), body), shared).await {
        Ok(body) => {
            let reply =
                super::mcp::handle(Request::from_parts(parts, Full::new(body)), shared).await;
            json_error(reply).await
        }
        Err(e) => error_reply(e),
    }
}

/// rmcp refuses some requests in plain text (406 for a missing Accept header, 415,
/// 405); every error doc-serve answers is JSON `{"code", "message"}`. The refusal's
/// other headers (`Allow`) are kept.
async fn json_error(reply: Reply) -> Reply {
    let status = reply.status();
    let is_json = reply
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    if is_json || !(status.is_client_error() || status.is_server_error()) {
        return reply;
    }
    let (parts, body) = reply.into_parts();
    let text = match body.collect().await {
        Ok(b) => String::from_utf8_lossy(&b.to_bytes()).trim().to_owned(),
        Err(never) => match never {},
    };
    let code = match status {
        StatusCode::NOT_ACCEPTABLE => "not_acceptable",
        StatusCode::UNSUPPORTED_MEDIA_TYPE => "unsupported_media_type",
        StatusCode::METHOD_NOT_ALLOWED => "method_not_allowed",
        _ => "mcp_error",
    };
    let mut out = error_reply(ApiError::new(status, code, text));
    for (name, value) in &parts.headers {
        if name != header::CONTENT_TYPE && name != header::CONTENT_LENGTH {
            out.headers_mut()
                .entry(name)
                .or_insert_with(|| value.clone());
        }
    }
    out
}

/// Host, Origin, and over TCP the token (every route but /health).
fn gate<B>(req: &Request<B>, shared: &Shared, transport: Transport) -> Result<(), ApiError> {
    check_host(req, &shared.bind_host)?;
    check_origin(req)?;
    if req.uri().path() != "/health" && transport == Transport::Tcp {
        check_token(req, &shared.token)?;
    }
    Ok(())
}

async fn route(
    req: Request<Incoming>,
    shared: &Shared,
    transport: Transport,
) -> Result<Answer, ApiError> {
    gate(&req, shared, transport)?;
    let path = req.uri().path().to_owned();
    let method = req.method().clone();
    let qs = req.uri().query().map(String::from);
    let body = read_body(req, shared).await?;
    dispatch(shared, &method, &path, qs.as_deref(), &body).await
}

/// The routes, for a request that passed the gate.
pub async fn dispatch(
    shared: &Shared,
    method: &Method,
    path: &str,
    qs: Option<&str>,
    body: &Bytes,
) -> Result<Answer, ApiError> {
    match (path, method) {
        ("/health", &Method::GET | &Method::HEAD) => return Ok(Answer::Json(shared.health())),
        ("/health", _) => return Err(not_allowed(method, path, GET)),
        _ => {}
    }
    match &shared.sites {
        Sites::One(site) => match (path, method) {
            ("/status", &Method::GET | &Method::HEAD) => {
                routes::status(shared, site).await.map(Answer::from)
            }
            ("/status", _) => Err(not_allowed(method, path, GET)),
            _ => dispatch_site(site, method, path, qs, body).await,
        },
        Sites::Many(projects) => projects::dispatch(shared, projects, method, path, qs, body).await,
    }
}

/// A project's own routes: `/query`, `/documents/{path}`, `/index`.
pub async fn dispatch_site(
    site: &Site,
    method: &Method,
    path: &str,
    qs: Option<&str>,
    body: &Bytes,
) -> Result<Answer, ApiError> {
    if let Some(doc) = path.strip_prefix("/documents/") {
        return match *method {
            Method::GET | Method::HEAD => routes::document(site, doc, qs).await.map(Answer::from),
            _ => Err(not_allowed(method, path, GET)),
        };
    }
    match (path, method) {
        ("/query", &Method::GET | &Method::HEAD | &Method::POST) => {
            routes::query(site, method, qs, body).await
        }
        ("/index", &Method::POST) => routes::reindex(site, body).await.map(Answer::from),
        ("/query", _) => Err(not_allowed(method, path, GET_OR_POST)),
        ("/index", _) => Err(not_allowed(method, path, POST)),
        _ => Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "not_found",
            format!("no route {path}"),
        )),
    }
}

/// What a route takes, as a 405's `Allow` header says it (HEAD wherever GET).
pub const GET: &str = "GET, HEAD";
pub const POST: &str = "POST";
pub const GET_OR_POST: &str = "GET, HEAD, POST";

/// A 405 for `method` on `path`, which takes `allow` (one of [`GET`], [`POST`],
/// [`GET_OR_POST`]).
pub fn not_allowed(method: &Method, path: &str, allow: &'static str) -> ApiError {
    ApiError {
        allow: Some(allow),
        ..ApiError::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "method_not_allowed",
            format!("{method} is not allowed on {path}; it takes {allow}"),
        )
    }
}

fn json_reply(status: StatusCode, body: &Value) -> Reply {
    // Straight into bytes: `to_string` goes through `fmt::Display`, slower per write.
    bytes_reply(status, serde_json::to_vec(body).unwrap_or_default())
}

fn bytes_reply(status: StatusCode, bytes: impl Into<Bytes>) -> Reply {
    let mut reply = Response::new(Full::new(bytes.into()).boxed());
    *reply.status_mut() = status;
    reply.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    reply
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    reply
}

/// Reads the whole body within the size cap and the request timeout.
async fn read_body(req: Request<Incoming>, shared: &Shared) -> Result<Bytes, ApiError> {
    // Most requests (GET) have none: no timer to set for it.
    if req.body().is_end_stream() {
        return Ok(Bytes::new());
    }
    let limit = shared.max_body_bytes;
    let too_large = || {
        ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "body_too_large",
            format!("request body exceeds {limit} bytes"),
        )
    };
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit as u64) {
        return Err(too_large());
    }
    let collect = Limited::new(req.into_body(), limit).collect();
    match tokio::time::timeout(shared.request_timeout, collect).await {
        Err(_) => Err(ApiError::new(
            StatusCode::REQUEST_TIMEOUT,
            "body_timeout",
            format!(
                "request body not received within {:?}",
                shared.request_timeout
            ),
        )),
        Ok(Err(e)) if e.is::<http_body_util::LengthLimitError>() => Err(too_large()),
        Ok(Err(e)) => Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "bad_body",
            e.to_string(),
        )),
        Ok(Ok(body)) => Ok(body.to_bytes()),
    }
}

fn forbidden(code: &'static str, message: String) -> ApiError {
    ApiError::new(StatusCode::FORBIDDEN, code, message)
}

/// A Host header must name a loopback host (or the configured bind host), and so must
/// the authority of an absolute-form request target (`GET http://host/...`). Requests
/// without either (HTTP/1.0 tools) are not from a browser and pass. More than one Host
/// header is a 400 (RFC 9112): which one a proxy would go by is anyone's guess.
fn check_host<B>(req: &Request<B>, bind_host: &str) -> Result<(), ApiError> {
    let mut hosts = req.headers().get_all(header::HOST).iter();
    let first = hosts.next();
    if hosts.next().is_some() {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "bad_request",
            "more than one Host header",
        ));
    }
    // A target's authority may carry user info (`user@host`); a Host header may not.
    let target = req.uri().authority().map(|a| a.as_str());
    let target = target.map(|a| a.rsplit('@').next().unwrap_or(a));
    let named = first.map(|v| v.to_str().unwrap_or("\u{FFFD}")).into_iter();
    for value in named.chain(target) {
        let host = strip_port(value);
        if !is_loopback_host(host) && !host.eq_ignore_ascii_case(bind_host) {
            return Err(forbidden(
                "forbidden_host",
                format!(
                    "Host {value:?} is not a loopback address; doc-serve only answers local clients"
                ),
            ));
        }
    }
    Ok(())
}

/// An Origin, when present, must be an http(s) origin on a loopback host.
fn check_origin<B>(req: &Request<B>) -> Result<(), ApiError> {
    let Some(value) = req.headers().get(header::ORIGIN) else {
        return Ok(());
    };
    let ok = value
        .to_str()
        .ok()
        .and_then(|o| {
            o.strip_prefix("http://")
                .or_else(|| o.strip_prefix("https://"))
        })
        .is_some_and(|authority| is_loopback_host(strip_port(authority)));
    if ok {
        return Ok(());
    }
    Err(forbidden(
        "forbidden_origin",
        format!("Origin {value:?} is not a loopback origin"),
    ))
}

fn check_token<B>(req: &Request<B>, token: &str) -> Result<(), ApiError> {
    let given = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim);
    match given {
        Some(t) if constant_time_eq(t.as_bytes(), token.as_bytes()) => Ok(()),
        Some(_) => Err(ApiError::new(
            StatusCode::UNAUTHORIZED,
            "bad_token",
            "the bearer token is wrong; read the current one from runtime.json",
        )),
        None => Err(ApiError::new(
            StatusCode::UNAUTHORIZED,
            "missing_token",
            "this route needs Authorization: Bearer <token>, the token being in runtime.json",
        )),
    }
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// `host:port`, `[v6]:port`, `[v6]` or `host` -> the host part.
fn strip_port(authority: &str) -> &str {
    if let Some(rest) = authority.strip_prefix('[') {
        return rest.split(']').next().unwrap_or("");
    }
    match authority.rsplit_once(':') {
        Some((host, port)) if !host.contains(':') && port.bytes().all(|b| b.is_ascii_digit()) => {
            host
        }
        _ => authority,
    }
}

fn is_loopback_host(host: &str) -> bool {
    let host = host.trim_end_matches('.').to_ascii_lowercase();
    host == "localhost"
        || host.ends_with(".localhost")
        || host.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts() {
        for ok in [
            "localhost",
            "LOCALHOST.",
            "127.0.0.1",
            "127.5.6.7",
            "::1",
            "a.localhost",
        ] {
            assert!(is_loopback_host(ok), "{ok}");
        }
        for bad in [
            "",
            "evil.com",
            "localhost.evil.com",
            "10.0.0.1",
            "0.0.0.0",
            "::",
        ] {
            assert!(!is_loopback_host(bad), "{bad}");
        }
        assert_eq!(strip_port("127.0.0.1:8080"), "127.0.0.1");
        assert_eq!(strip_port("[::1]:8080"), "::1");
        assert_eq!(strip_port("[::1]"), "::1");
        assert_eq!(strip_port("localhost"), "localhost");
        assert_eq!(strip_port("::1"), "::1");
        assert_eq!(strip_port("evil.com:x"), "evil.com:x");
    }

    #[test]
    fn token_compare() {
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"ab"));
    }
}
