//! MCP over Streamable HTTP at `/mcp`: the resident's own routes behind the MCP tools
//! (see [`crate::mcp`]). Stateless: every POST is answered on its own with JSON, no
//! session and no event stream. The security gate (Host, Origin, token) runs first,
//! as for every route, then the body's check ([`check`]), then rmcp.

use std::convert::Infallible;
use std::sync::{Arc, Weak};

use http_body_util::Full;
use http_body_util::combinators::BoxBody;
use hyper::body::Bytes;
use hyper::header;
use hyper::http::request::Parts;
use hyper::{Method, Request, Response, StatusCode};
use rmcp::transport::streamable_http_server::session::never::NeverSessionManager;
use rmcp::transport::{StreamableHttpServerConfig, StreamableHttpService};
use serde_json::Value;

use super::state::{Server, Sites};
use crate::api::{self, ApiError};
use crate::mcp::input::{self, Session, Verdict};
use crate::mcp::{Backend, Op, Tools};

pub type Service = StreamableHttpService<Tools<Local>, NeverSessionManager>;

/// The resident's operations, called in-process.
pub struct Local(Weak<Server>);

impl Backend for Local {
    async fn run(&self, op: Op) -> Result<Value, ApiError> {
        let Some(server) = self.0.upgrade() else {
            return Err(ApiError::unavailable("the resident is stopping"));
        };
        let Sites::One(site) = &server.sites else {
            return Err(ApiError::unavailable(
                "the shared daemon serves MCP per project",
            ));
        };
        let site = &**site;
        match op {
            Op::Search(req) => api::to_value(api::search(site, &req).await?),
            Op::Read(want) => api::to_value(api::read(site, want).await?),
            Op::Status => api::to_value(super::routes::status_reply(&server, site).await?),
            Op::Reindex { full } => api::to_value(api::reindex(site, full).await?),
        }
    }
}

/// The service answering `/mcp`, made on first use.
pub fn service(server: &Arc<Server>) -> &Service {
    server.mcp.get_or_init(|| {
        let local = Arc::new(Local(Arc::downgrade(server)));
        let config = StreamableHttpServerConfig::default()
            .with_legacy_session_mode(false)
            .with_json_response(true)
            .with_sse_keep_alive(None)
            // Host and Origin were checked by the gate, with the resident's own rules.
            .disable_allowed_hosts()
            .with_max_request_body_bytes(server.max_body_bytes);
        StreamableHttpService::new(
            move || Ok(Tools(local.clone())),
            Arc::new(NeverSessionManager::default()),
            config,
        )
    })
}

/// What to do with a `/mcp` request, its body read (see [`crate::mcp::input`]).
pub enum Checked {
    /// Hand it to rmcp, with this body (a UTF-8 byte order mark taken off: rmcp's
    /// parser would refuse it, where over stdio rmcp skips it).
    Pass(Bytes),
    /// Answer this JSON-RPC error with this status: 400 for a body that is not one
    /// JSON-RPC message or cannot be accepted (Streamable HTTP asks for an error status
    /// there, and lets the error have no id), 200 for a well-formed request refused
    /// (its answer is a JSON-RPC error, as any other).
    Answer(StatusCode, Vec<u8>),
    /// 202 Accepted with no body: a response or notification, taken (Streamable HTTP).
    Accepted,
}

/// Judges a POSTed JSON body before rmcp, which would answer what it cannot parse
/// with a plain 415. Anything but a JSON POST is rmcp's to answer (405, 415).
pub fn check(parts: &Parts, body: Bytes) -> Checked {
    // The media type as rmcp reads it: any letter case, parameters after ';'.
    let json = parts
        .headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            let essence = v.split_once(';').map_or(v, |(essence, _)| essence);
            essence.trim().eq_ignore_ascii_case("application/json")
        });
    if parts.method != Method::POST || !json {
        return Checked::Pass(body);
    }
    let refusal = match input::check(&body, Session::Open) {
        Verdict::Request { .. } | Verdict::Notification { .. } => {
            let body = match body.strip_prefix(input::BOM) {
                Some(_) => body.slice(input::BOM.len()..),
                None => body,
            };
            return Checked::Pass(body);
        }
        Verdict::Quiet(None) => return Checked::Accepted,
        Verdict::Quiet(Some(problem)) => {
            return Checked::Answer(StatusCode::BAD_REQUEST, problem.to_bytes());
        }
        Verdict::Refuse(refusal) => refusal,
    };
    let status = if refusal.is_about_the_message() {
        StatusCode::BAD_REQUEST
    } else {
        StatusCode::OK
    };
    Checked::Answer(status, refusal.to_bytes())
}

/// Answers a request whose body was already read within the limits (see
/// `http::mcp`).
pub async fn handle(
    req: Request<Full<Bytes>>,
    server: &Arc<Server>,
) -> Response<BoxBody<Bytes, Infallible>> {
    service(server).handle(req).await
}
