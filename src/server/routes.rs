//! The routes behind the security gate: each decodes its request, calls the
//! operation in [`crate::api`], and encodes the answer.

use std::path::{Component, Path};

use hyper::body::Bytes;
use hyper::{Method, StatusCode};
use serde_json::{Value, json};

use std::io::Read;

use super::http::Answer;
use super::state::{Shared, Site};
use crate::api::{self, ApiError, Search, at_least_one, blocking, quoted};
use crate::ingest::chunk::{self, ChunkOptions, Format};
use crate::ingest::walk::Sources;

/// Query-string parameters as (name, value) pairs, percent-decoded; a name the route
/// does not take (one of `known`) is refused, as an unknown field of a body is.
pub fn params(query: Option<&str>, known: &[&str]) -> Result<Vec<(String, String)>, ApiError> {
    let pairs: Vec<(String, String)> = form_urlencoded::parse(query.unwrap_or_default().as_bytes())
        .into_owned()
        .collect();
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
const QUERY_PARAMS: &[&str] = &["q", "limit", "path_prefix", "wait", "max_tokens"];

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
            "{\"q\": ..., \"limit\"?, \"path_prefix\"?, \"wait\"?, \"max_tokens\"?}",
        )?
    } else {
        let p = params(qs, QUERY_PARAMS)?;
        Search {
            q: param(&p, "q")
                .ok_or_else(|| bad("bad_query", "missing q: /query?q=words"))?
                .to_owned(),
            limit: number(&p, "limit")?,
            path_prefix: param(&p, "path_prefix").map(String::from),
            wait: number(&p, "wait")?,
            max_tokens: number(&p, "max_tokens")?,
        }
    };
    api::search(site, &req).await.map(Answer::Query)
}

/// `GET /status`: the resident, and the index's freshness.
pub async fn status(shared: &Shared, site: &Site) -> Result<Value, ApiError> {
    let mut v = shared.status();
    v["index"] = freshness(site).await?;
    v["settings"] = serde_json::to_value(site.index.state().settings).unwrap_or_default();
    Ok(v)
}

/// The index part of /status.
pub async fn freshness(site: &Site) -> Result<Value, ApiError> {
    let index = site.index.clone();
    let fresh = blocking(move || index.freshness()).await?;
    serde_json::to_value(fresh).map_err(ApiError::internal)
}

#[derive(serde::Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct IndexBody {
    #[serde(default)]
    full: bool,
}

/// `POST /index`: bring the index in line with the files now.
pub async fn reindex(site: &Site, body: &Bytes) -> Result<Value, ApiError> {
    let b: IndexBody = if body.iter().all(u8::is_ascii_whitespace) {
        IndexBody::default()
    } else {
        object_body(body, "{\"full\": bool}")?
    };
    let reply = api::reindex(site, b.full).await?;
    api::to_value(reply)
}

fn not_found(path: &str) -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        "not_found",
        format!("no document {path:?} in this project"),
    )
}

/// `GET /documents/{path}[?start=N&end=M | ?heading=TEXT]`: a source file, a range of
/// its lines, or the section under a heading. See [`read_document`].
pub async fn document(site: &Site, raw_path: &str, qs: Option<&str>) -> Result<Value, ApiError> {
    let rel = percent_encoding::percent_decode_str(raw_path)
        .decode_utf8_lossy()
        .into_owned();
    let p = params(qs, &["start", "end", "heading"])?;
    // Lines count from 1, as in the hits; MCP's read_doc takes the same.
    let want = Lines {
        start: at_least_one("start", number(&p, "start")?)?,
        end: at_least_one("end", number(&p, "end")?)?,
        heading: param(&p, "heading").map(String::from),
    };
    if want.heading.is_some() && (want.start.is_some() || want.end.is_some()) {
        return Err(bad(
            "bad_parameter",
            "give either start and end or heading, not both",
        ));
    }
    api::read(site, rel, want).await
}

/// Which part of a document to read: a line range (1-based, inclusive; open ends
/// mean the first or last line), or the section under a heading.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Lines {
    pub start: Option<usize>,
    pub end: Option<usize>,
    pub heading: Option<String>,
}

/// Reads a source file, or part of it. Only what the walk lists: source files (the
/// include globs) inside the root; `..`, absolute paths, doc-serve's own files by any
/// name (see [`crate::ingest::private`]), symlinks leading out, through a loop or to
/// what the walk leaves out (see [`crate::ingest::rules`]) are all "not found". A
/// heading matches case-insensitively, the heading itself or its whole trail
/// (`Install > Linux`); the section runs to the next heading of its level or above.
pub fn read_document(sources: &Sources, rel: &str, want: &Lines) -> Result<Value, ApiError> {
    let root = sources.root();
    let relp = Path::new(rel);
    let plain = !rel.is_empty()
        && !rel.contains('\0')
        && relp.components().all(|c| matches!(c, Component::Normal(_)));
    if !plain || !sources.wants(rel) {
        return Err(not_found(rel));
    }
    let path = sources.resolve(rel);
    let real = path.canonicalize().map_err(|_| not_found(rel))?;
    if !real.starts_with(root)
        || sources.off_limits(&real)
        || !real.is_file()
        || !sources.lists(&path, &real)
    {
        return Err(not_found(rel));
    }
    let max = sources.max_bytes();
    let mut buf = Vec::new();
    std::fs::File::open(&real)
        .and_then(|f| f.take(max + 1).read_to_end(&mut buf))
        .map_err(|_| not_found(rel))?;
    if buf.len() as u64 > max {
        return Err(ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "document_too_large",
            format!("{rel} is over {max} bytes"),
        ));
    }
    if sources.holds_token(&buf).is_some() {
        return Err(not_found(rel));
    }
    if buf.contains(&0) {
        // Not indexed either (see [`Sources::read`]).
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "not_found",
            format!("{rel} is binary (it holds NUL bytes), not a document"),
        ));
    }
    let text = String::from_utf8_lossy(&buf);
    let text = text.strip_prefix('\u{feff}').unwrap_or(&text);
    let lines = chunk::split_lines(text);
    let total = lines.len();
    let (first, last, headings) = match &want.heading {
        Some(h) => {
            // The format by the name the file is indexed under (a link's own).
            let (a, b, trail) = section(text, relp, h).ok_or_else(|| {
                ApiError::new(
                    StatusCode::NOT_FOUND,
                    "no_such_heading",
                    format!("{rel} has no heading {h:?}"),
                )
            })?;
            (a, b.min(total), trail)
        }
        None => (
            want.start.unwrap_or(1).max(1),
            want.end.unwrap_or(total).min(total),
            Vec::new(),
        ),
    };
    if first > last && total > 0 {
        return Err(bad(
            "bad_range",
            format!("lines {first}-{last} are outside 1-{total}"),
        ));
    }
    let body = if total == 0 {
        String::new()
    } else {
        lines[first - 1..last].join("\n")
    };
    let mut v = json!({
        "path": rel,
        "line_start": first.min(total.max(1)),
        "line_end": last,
        "total_lines": total,
        "text": body,
    });
    if want.heading.is_some() {
        v["headings"] = json!(headings);
    }
    Ok(v)
}

/// The line range and heading trail of the section under `heading` in `text`.
fn section(text: &str, path: &Path, heading: &str) -> Option<(usize, usize, Vec<String>)> {
    let opts = ChunkOptions {
        chunk_size: usize::MAX,
        chunk_overlap: 0,
    };
    let doc = chunk::chunk(text, Format::from_path(path), "", &opts);
    let wanted: Vec<String> = heading
        .split('>')
        .map(|s| s.trim().to_lowercase())
        .filter(|s| !s.is_empty())
        .collect();
    let matches = |trail: &[String]| {
        !wanted.is_empty()
            && trail.len() >= wanted.len()
            && trail[trail.len() - wanted.len()..]
                .iter()
                .zip(&wanted)
                .all(|(t, w)| t.trim().to_lowercase() == *w)
    };
    // Unsplit, each section is one chunk: the section, then its subsections (a
    // longer trail under it); a sibling of the same name is another section.
    let at = doc.chunks.iter().position(|c| matches(&c.headings))?;
    let trail = &doc.chunks[at].headings;
    let end = doc.chunks[at + 1..]
        .iter()
        .take_while(|c| c.headings.len() > trail.len() && c.headings[..trail.len()] == trail[..])
        .fold(doc.chunks[at].line_end, |end, c| end.max(c.line_end));
    Some((doc.chunks[at].line_start, end, trail.clone()))
}
