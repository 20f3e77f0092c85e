//! The routes behind the security gate: each decodes its request, calls the
//! operation in [`crate::api`], and encodes the answer.

use hyper::Method;
use hyper::body::Bytes;
use serde_json::Value;

use super::http::Answer;
use super::state::{Server, ServerStatus, Site};
use crate::api::{self, ApiError, Search, at_least_one, blocking, quoted};
use crate::ingest::read::{Scope, Want};

/// Query-string parameters as (name, value) pairs, percent-decoded; a name the route
/// does not take (one of `known`) is refused, as an unknown field of a body is.
pub fn params(query: Option<&str>, known: &[&str]) -> Result<Vec<(String, String)>, ApiError> {
    let pairs: Vec<(String, String)> = form_urlencoded::parse(query.unwrap_or_default().as_bytes())
        .into_owned()
        .collect();
    for (at, (name, _)) in pairs.iter().enumerate() {
        if pairs[..at].iter().any(|(k, _)| k == name) {
            return Err(bad(
                "bad_parameter",
                format!("{} is given twice; give it once", quoted(name)),
            ));
        }
    }
    if let Some((name, _)) = pairs.iter().find(|(k, _)| !known.contains(&k.as_str())) {
        return Err(bad(
            "bad_parameter",
            format!(
                "unknown parameter {}; this route takes {}",
                quoted(name),
                known.join(", ")
            ),
        ));
    }
    Ok(pairs)
}

fn param<'a>(params: &'a [(String, String)], name: &str) -> Option<&'a str> {
    params
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

fn bad(code: &'static str, message: impl Into<String>) -> ApiError {
    ApiError::bad(code, message)
}

fn number<T: std::str::FromStr>(
    params: &[(String, String)],
    name: &str,
) -> Result<Option<T>, ApiError> {
    param(params, name)
        .map(|v| {
            v.parse().map_err(|_| {
                bad(
                    "bad_parameter",
                    format!("{name} must be a whole number, not {}", quoted(v)),
                )
            })
        })
        .transpose()
}

/// A JSON object body read as `T` (shown to the client as `expected`). serde reads a
/// struct from an array as well, by position (`[]` would be a struct of defaults), so
/// anything but an object is refused first.
pub fn object_body<T: serde::de::DeserializeOwned>(
    body: &[u8],
    expected: &str,
) -> Result<T, ApiError> {
    let first = body.iter().find(|b| !b.is_ascii_whitespace());
    if first.is_some_and(|b| *b != b'{') {
        return Err(bad(
            "bad_body",
            format!("expected a JSON object, {expected}; the body is not an object"),
        ));
    }
    serde_json::from_slice(body).map_err(|e| bad("bad_body", format!("expected {expected}: {e}")))
}

/// The parameters of `/query` (GET) and the fields of its body (POST).
pub const QUERY_PARAMS: &[&str] = &[
    "q",
    "limit",
    "offset",
    "path_prefix",
    "wait",
    "max_tokens",
    "mode",
    "explain",
];

/// `/query`: a search, from the query string (GET) or a JSON body (POST).
pub async fn query(
    site: &Site,
    method: &Method,
    qs: Option<&str>,
    body: &Bytes,
) -> Result<Answer, ApiError> {
    let req = if method == Method::POST {
        object_body(
            body,
            "{\"q\": ..., \"limit\"?, \"offset\"?, \"path_prefix\"?, \"wait\"?, \"max_tokens\"?, \"mode\"?, \"explain\"?}",
        )?
    } else {
        let p = params(qs, QUERY_PARAMS)?;
        Search {
            q: param(&p, "q")
                .ok_or_else(|| bad("bad_query", "missing q: /query?q=words"))?
                .to_owned(),
            limit: number(&p, "limit")?,
            offset: number(&p, "offset")?,
            path_prefix: param(&p, "path_prefix").map(String::from),
            wait: number(&p, "wait")?,
            max_tokens: number(&p, "max_tokens")?,
            mode: param(&p, "mode").map(search_mode).transpose()?,
            explain: param(&p, "explain").map(flag).transpose()?,
        }
    };
    api::search(site, &req)
        .await
        .map(|r| Answer::Query(Box::new(r)))
}

/// `mode=`: lexical, semantic or hybrid.
fn search_mode(v: &str) -> Result<crate::engine::search::Mode, ApiError> {
    serde_json::from_value(serde_json::Value::String(v.to_owned())).map_err(|_| {
        bad(
            "bad_parameter",
            format!(
                "mode must be lexical, semantic or hybrid, not {}",
                quoted(v)
            ),
        )
    })
}

/// A yes/no parameter: `true`/`1` or `false`/`0`.
fn flag(v: &str) -> Result<bool, ApiError> {
    match v {
        "true" | "1" => Ok(true),
        "false" | "0" => Ok(false),
        _ => Err(bad(
            "bad_parameter",
            format!("explain must be true or false, not {}", quoted(v)),
        )),
    }
}

/// `GET /status`.
pub async fn status(server: &Server, site: &Site) -> Result<Answer, ApiError> {
    Answer::json(&status_reply(server, site).await?)
}

/// What `/status` and `index_status` answer: the resident, the index's freshness and
/// the settings file's state.
pub async fn status_reply<'s>(
    server: &'s Server,
    site: &Site,
) -> Result<api::Status<ServerStatus<'s>>, ApiError> {
    let index = site.index.clone();
    let (mut index, settings) =
        blocking(move || (index.freshness(), index.state().settings)).await?;
    index.embedding = site.vectors.as_ref().map(|v| v.state());
    Ok(api::Status {
        who: server.status(),
        index,
        settings: Some(settings),
    })
}

/// The index part of /status.
pub async fn freshness(site: &Site) -> Result<Value, ApiError> {
    let index = site.index.clone();
    let mut fresh = blocking(move || index.freshness()).await?;
    fresh.embedding = site.vectors.as_ref().map(|v| v.state());
    serde_json::to_value(fresh).map_err(ApiError::internal)
}

#[derive(serde::Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct IndexBody {
    #[serde(default)]
    full: bool,
}

/// `POST /index`: bring the index in line with the files now.
pub async fn reindex(site: &Site, body: &Bytes) -> Result<Answer, ApiError> {
    let b: IndexBody = if body.iter().all(u8::is_ascii_whitespace) {
        IndexBody::default()
    } else {
        object_body(body, "{\"full\": bool}")?
    };
    Answer::json(&api::reindex(site, b.full).await?)
}

/// The parameters of `/render/{path}`.
pub const RENDER_PARAMS: &[&str] = &["section"];

/// `GET /render/{path}[?section=ID]`: a document rendered for a person to read, as
/// [`crate::ingest::read::render`] renders it.
pub async fn render(site: &Site, raw_path: &str, qs: Option<&str>) -> Result<Answer, ApiError> {
    let rel = percent_encoding::percent_decode_str(raw_path)
        .decode_utf8_lossy()
        .into_owned();
    let p = params(qs, RENDER_PARAMS)?;
    let section = match param(&p, "section") {
        Some("") => return Err(bad("bad_parameter", "section must not be empty")),
        s => s.map(String::from),
    };
    Answer::json(&api::render(site, rel, section).await?)
}

/// The parameters of `/documents/{path}`.
pub const DOCUMENT_PARAMS: &[&str] = &["start", "end", "heading", "section", "max_tokens"];

/// `GET /documents/{path}[?start=N&end=M | ?heading=TEXT | ?section=ID][&max_tokens=N]`:
/// a source file, a range of its lines, the section under a heading or the section of
/// an id, as [`crate::ingest::read::read`] reads them.
pub async fn document(site: &Site, raw_path: &str, qs: Option<&str>) -> Result<Answer, ApiError> {
    let rel = percent_encoding::percent_decode_str(raw_path)
        .decode_utf8_lossy()
        .into_owned();
    let p = params(qs, DOCUMENT_PARAMS)?;
    // Lines count from 1, as in the hits; MCP's read_doc takes the same.
    let (start, end) = (
        at_least_one("start", number(&p, "start")?)?,
        at_least_one("end", number(&p, "end")?)?,
    );
    let (heading, section) = (param(&p, "heading"), param(&p, "section"));
    let ranged = start.is_some() || end.is_some();
    if [ranged, heading.is_some(), section.is_some()]
        .iter()
        .filter(|given| **given)
        .count()
        > 1
    {
        return Err(bad(
            "bad_parameter",
            "give either start and end or heading or section, not more than one",
        ));
    }
    let scope = match (heading, section) {
        (_, Some("")) => return Err(bad("bad_parameter", "section must not be empty")),
        (_, Some(id)) => Scope::Section(id.to_owned()),
        (Some(h), None) => Scope::Heading(h.to_owned()),
        (None, None) => Scope::Lines { start, end },
    };
    let want = Want {
        path: rel,
        scope,
        max_tokens: at_least_one("max_tokens", number(&p, "max_tokens")?)?,
    };
    Answer::json(&api::read(site, want).await?)
}

/// `POST /login`: a one-time code traded for a browser session (README, "Search page").
pub fn login(
    server: &Server,
    body: &Bytes,
    transport: super::http::Transport,
) -> Result<Answer, ApiError> {
    #[derive(serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Login {
        code: String,
    }
    let req: Login = object_body(body, "{\"code\": \"...\"} (from `doc-serve open`)")?;
    // The session is good on the port the browser reached (none over a Unix socket,
    // which a browser cannot reach).
    let port = match transport {
        super::http::Transport::Tcp { port } => port,
        super::http::Transport::Unix => 0,
    };
    let session = server.login.redeem(&req.code, port)?;
    Answer::json(&serde_json::json!({
        "session": session.session,
        "expires_at": session.expires_at,
        "expires_in": session.expires_in,
        "kind": match server.kind() {
            super::router::Kind::Resident => "resident",
            super::router::Kind::Shared => "shared",
        },
    }))
}

/// `POST /login/code`: a one-time code for `doc-serve open`, with the URLs of this
/// server's TCP listeners (a browser reaches nothing else).
pub fn login_code(server: &Server) -> Result<Answer, ApiError> {
    let urls: Vec<String> = server
        .runtime
        .listeners
        .iter()
        .filter(|l| l.kind == "tcp")
        .filter_map(|l| l.address.parse::<std::net::SocketAddr>().ok())
        .map(|addr| {
            let host = match addr.ip() {
                ip if ip.is_unspecified() && ip.is_ipv4() => "127.0.0.1".to_owned(),
                ip if ip.is_unspecified() => "[::1]".to_owned(),
                std::net::IpAddr::V6(ip) => format!("[{ip}]"),
                std::net::IpAddr::V4(ip) => ip.to_string(),
            };
            format!("http://{host}:{}/", addr.port())
        })
        .collect();
    if urls.is_empty() {
        let how = match server.kind() {
            super::router::Kind::Resident => {
                "`doc-serve install systemd --tcp-port PORT` (or `install launchd \
                 --tcp-port PORT`) adds a 127.0.0.1 listener"
            }
            super::router::Kind::Shared => {
                "`systemctl --user edit doc-serve.socket` adds one: [Socket] \
                 ListenStream=127.0.0.1:45123, then `systemctl --user restart \
                 doc-serve.socket`"
            }
        };
        return Err(ApiError::new(
            hyper::StatusCode::CONFLICT,
            "no_tcp_listener",
            format!(
                "this server listens only on a Unix socket, which a browser cannot reach; \
                 {how}"
            ),
        ));
    }
    let code = server.login.new_code()?;
    Answer::json(&serde_json::json!({
        "code": code,
        "expires_in": server.login.code_ttl.as_secs(),
        "urls": urls,
    }))
}
