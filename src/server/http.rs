//! Request handling: the security gate ([`gate`]), then the route its path names
//! ([`super::router`]: 404 and 405 there), then its answer.
//!
//! The gate, in order: a Host that is not a local authority gets 403, and so does an
//! Origin that is present but not local (a web page in a browser must not reach us
//! through DNS rebinding); a repeated Host or Origin is 400; over TCP every route but
//! /health needs the bearer token from the 0600 runtime.json (401), while over a Unix
//! socket the file mode is the gate. Bodies are capped (413) and must arrive in time
//! (408). Every error is JSON: `{"code", "message"}` with a stable code.

use std::convert::Infallible;
use std::sync::Arc;

use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::{Body, Bytes, Incoming};
use hyper::header::{self, HeaderValue};
use hyper::{Method, Request, Response, StatusCode};
use serde_json::{Value, json};

use super::gate;
use super::mcp_http::Checked;
use super::page;
use super::projects;
use super::router::{self, Found, Op};
use super::routes;
use super::state::{Server, Site, Sites};
use crate::api::ApiError;

/// How a request reached us.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    /// TCP, on this local port (a browser session is good on one port only).
    Tcp {
        port: u16,
    },
    Unix,
}

type Reply = Response<BoxBody<Bytes, Infallible>>;

/// A route's answer: a JSON value, or a search's answer (`/query`, the hot route, is
/// written straight out without building a value).
pub enum Answer {
    Value(Value),
    Query(Box<crate::api::SearchReply>),
    /// JSON, already written.
    Json(Bytes),
    /// A file of the search page, or 304 when the client has this version.
    Asset(&'static super::page::Asset, bool),
}

impl From<Value> for Answer {
    fn from(v: Value) -> Self {
        Answer::Value(v)
    }
}

impl Answer {
    /// A typed reply, written out once (not through a [`Value`]).
    pub fn json(reply: &impl serde::Serialize) -> Result<Answer, ApiError> {
        serde_json::to_vec(reply)
            .map(|bytes| Answer::Json(bytes.into()))
            .map_err(ApiError::internal)
    }
}

/// The hyper service function.
pub async fn handle(
    req: Request<Incoming>,
    server: Arc<Server>,
    transport: Transport,
) -> Result<Reply, Infallible> {
    let _busy = server.activity.begin();
    Ok(match route(req, &server, transport).await {
        Ok(Routed::Mcp(reply)) => reply,
        Ok(Routed::Answer(Answer::Value(body))) => json_reply(StatusCode::OK, &body),
        Ok(Routed::Answer(Answer::Json(bytes))) => bytes_reply(StatusCode::OK, bytes),
        Ok(Routed::Answer(Answer::Asset(asset, fresh))) => asset_reply(asset, fresh),
        Ok(Routed::Answer(Answer::Query(reply))) => {
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

/// What a request that passed the gate got: a route's answer, or `/mcp`'s reply.
enum Routed {
    Answer(Answer),
    Mcp(Reply),
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
async fn mcp(req: Request<Incoming>, server: &Arc<Server>) -> Reply {
    let (parts, body) = req.into_parts();
    let body = match read_body(Request::from_parts(parts.clone(), body), server).await {
        Ok(body) => body,
        Err(e) => return error_reply(e),
    };
    match super::mcp_http::check(&parts, body) {
        Checked::Answer(status, refusal) => bytes_reply(status, refusal),
        Checked::Accepted => {
            let mut reply = Response::new(Full::new(Bytes::new()).boxed());
            *reply.status_mut() = StatusCode::ACCEPTED;
            reply
        }
        Checked::Pass(body) => {
            let reply =
                super::mcp_http::handle(Request::from_parts(parts, Full::new(body)), server).await;
            json_error(reply).await
        }
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

/// The gate, then the route ([`router`]), then its answer.
async fn route(
    req: Request<Incoming>,
    server: &Arc<Server>,
    transport: Transport,
) -> Result<Routed, ApiError> {
    gate::check(&req, server, transport)?;
    let path = req.uri().path().to_owned();
    let found = router::find(server.kind(), req.method(), &path);
    if found.as_ref().is_ok_and(|f| f.route.op == Op::Mcp) {
        return Ok(Routed::Mcp(mcp(req, server).await));
    }
    let method = req.method().clone();
    let qs = req.uri().query().map(String::from);
    let if_none_match = req
        .headers()
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .map(String::from);
    // The body first, within its limits (413, 408), as for a route that exists.
    let body = read_body(req, server).await?;
    let found = found?;
    let qs = qs.as_deref();
    let answer = match (found.route.op, &server.sites) {
        (Op::Health, _) => Ok(Answer::Json(server.health())),
        (Op::Page, _) => Ok(page_answer(&page::INDEX, if_none_match.as_deref())),
        (Op::Asset, _) => page::file(found.doc)
            .map(|a| page_answer(a, if_none_match.as_deref()))
            .ok_or_else(|| {
                ApiError::new(
                    StatusCode::NOT_FOUND,
                    "not_found",
                    format!("no file {} in the page", crate::api::quoted(found.doc)),
                )
            }),
        (Op::Login, _) => routes::login(server, &body, transport),
        (Op::LoginCode, _) => routes::login_code(server),
        (Op::OpenApi, _) => Ok(Answer::Json(super::openapi::document(server.kind()))),
        (Op::Status, Sites::One(site)) => routes::status(server, site).await,
        (_, Sites::One(site)) => project_route(site, &found, &method, qs, &body).await,
        (_, Sites::Many(projects)) => {
            projects::dispatch(server, projects, &found, &method, qs, &body).await
        }
    };
    answer.map(Routed::Answer)
}

/// A project's own routes, the resident's and each project's on the shared daemon
/// (under `/projects/{id}/`): `query`, `documents/{path}`, `render/{path}`, `index`.
pub async fn project_route(
    site: &Site,
    found: &Found<'_>,
    method: &Method,
    qs: Option<&str>,
    body: &Bytes,
) -> Result<Answer, ApiError> {
    match found.route.op {
        Op::Query => routes::query(site, method, qs, body).await,
        Op::Index => routes::reindex(site, body).await,
        Op::Document => routes::document(site, found.doc, qs).await,
        Op::Render => routes::render(site, found.doc, qs).await,
        // The table sends these elsewhere (`/mcp` is answered before the body is read).
        Op::Health
        | Op::OpenApi
        | Op::Status
        | Op::Mcp
        | Op::Projects
        | Op::ProjectStatus
        | Op::Page
        | Op::Asset
        | Op::Login
        | Op::LoginCode => Err(ApiError::internal(format!(
            "{} is not a project's route",
            found.route.path
        ))),
    }
}

fn page_answer(asset: &'static page::Asset, if_none_match: Option<&str>) -> Answer {
    Answer::Asset(asset, asset.matches(if_none_match))
}

/// A file of the page with its headers ([`page::HEADERS`]); `fresh`: 304, no body.
fn asset_reply(asset: &'static page::Asset, fresh: bool) -> Reply {
    let (status, body) = if fresh {
        (StatusCode::NOT_MODIFIED, Bytes::new())
    } else {
        (StatusCode::OK, Bytes::from_static(asset.bytes))
    };
    let mut reply = Response::new(Full::new(body).boxed());
    *reply.status_mut() = status;
    let headers = reply.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(asset.content_type),
    );
    if let Ok(etag) = HeaderValue::from_str(asset.etag()) {
        headers.insert(header::ETAG, etag);
    }
    for (name, value) in page::HEADERS {
        headers.insert(*name, HeaderValue::from_static(value));
    }
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    reply
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
    reply.headers_mut().insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    reply
}

/// Reads the whole body within the size cap and the request timeout.
async fn read_body(req: Request<Incoming>, server: &Server) -> Result<Bytes, ApiError> {
    // Most requests (GET) have none: no timer to set for it.
    if req.body().is_end_stream() {
        return Ok(Bytes::new());
    }
    let limit = server.max_body_bytes;
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
    match tokio::time::timeout(server.request_timeout, collect).await {
        Err(_) => Err(ApiError::new(
            StatusCode::REQUEST_TIMEOUT,
            "body_timeout",
            format!(
                "request body not received within {:?}",
                server.request_timeout
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
