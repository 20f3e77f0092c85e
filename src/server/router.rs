//! Which route a request names: one table for a project's resident and one for the
//! shared daemon. Every request that passed the gate is looked up here before any
//! route runs: a path in no route is 404 `not_found`, a method its route does not take
//! 405 `method_not_allowed` with an `Allow` header. `/openapi.json` describes exactly
//! these tables ([`super::openapi`], whose tests compare the two), so a route cannot be
//! served without being described, nor described without being served.

use hyper::{Method, StatusCode};

use crate::api::{ApiError, quoted};

/// What a route does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    Health,
    OpenApi,
    Status,
    Query,
    Index,
    Document,
    Mcp,
    Projects,
    ProjectStatus,
}

/// A route: its path as OpenAPI writes it (`{id}` is one path segment, `{path}` at the
/// end the rest of the path, at least one character), the methods it takes as a 405's
/// `Allow` header says them (HEAD wherever GET), and what it does.
#[derive(Debug)]
pub struct Route {
    pub path: &'static str,
    pub allow: &'static str,
    pub op: Op,
}

pub const GET: &str = "GET, HEAD";
pub const POST: &str = "POST";
pub const GET_OR_POST: &str = "GET, HEAD, POST";

const fn route(path: &'static str, allow: &'static str, op: Op) -> Route {
    Route { path, allow, op }
}

/// Which table a server routes by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A project's resident.
    Resident,
    /// The shared daemon.
    Shared,
}

impl Kind {
    pub fn routes(self) -> &'static [Route] {
        match self {
            Kind::Resident => RESIDENT,
            Kind::Shared => SHARED,
        }
    }
}

/// A project's resident.
pub const RESIDENT: &[Route] = &[
    route("/health", GET, Op::Health),
    route("/openapi.json", GET, Op::OpenApi),
    route("/status", GET, Op::Status),
    route("/query", GET_OR_POST, Op::Query),
    route("/index", POST, Op::Index),
    // The path taken from `section=PATH#ANCHOR`.
    route("/documents/", GET, Op::Document),
    route("/documents/{path}", GET, Op::Document),
    route("/mcp", POST, Op::Mcp),
];

/// The shared daemon: a project's routes are under `/projects/{id}/` (it has no `/mcp`:
/// `doc-serve mcp` in the project bridges to it).
pub const SHARED: &[Route] = &[
    route("/health", GET, Op::Health),
    route("/openapi.json", GET, Op::OpenApi),
    route("/status", GET, Op::Status),
    route("/projects", GET_OR_POST, Op::Projects),
    route("/projects/{id}/status", GET, Op::ProjectStatus),
    route("/projects/{id}/query", GET_OR_POST, Op::Query),
    route("/projects/{id}/index", POST, Op::Index),
    route("/projects/{id}/documents/", GET, Op::Document),
    route("/projects/{id}/documents/{path}", GET, Op::Document),
];

/// A request's route, with what its path fills in.
#[derive(Debug)]
pub struct Found<'a> {
    pub route: &'static Route,
    /// `{id}`: the project, on the shared daemon.
    pub id: Option<&'a str>,
    /// `{path}` as sent (percent-encoded); empty for `/documents/`.
    pub doc: &'a str,
}

impl Route {
    pub fn takes(&self, method: &Method) -> bool {
        self.allow.split(", ").any(|m| m == method.as_str())
    }

    /// `path` if it is this route's.
    fn matches<'a>(&'static self, path: &'a str) -> Option<Found<'a>> {
        let (mut template, mut rest, mut id) = (self.path, path, None);
        loop {
            let Some(at) = template.find('{') else {
                return (rest == template).then_some(Found {
                    route: self,
                    id,
                    doc: "",
                });
            };
            rest = rest.strip_prefix(&template[..at])?;
            template = &template[at..];
            if template == "{path}" {
                return (!rest.is_empty()).then_some(Found {
                    route: self,
                    id,
                    doc: rest,
                });
            }
            // `{id}`, the only other placeholder: one segment, not empty.
            template = template.strip_prefix("{id}")?;
            let end = rest.find('/').unwrap_or(rest.len());
            if end == 0 {
                return None;
            }
            id = Some(&rest[..end]);
            rest = &rest[end..];
        }
    }
}

/// The route of `method` on `path` on a server of `kind`, or the 404 or 405 that
/// answers it.
pub fn find<'a>(kind: Kind, method: &Method, path: &'a str) -> Result<Found<'a>, ApiError> {
    let found = kind
        .routes()
        .iter()
        .find_map(|r| r.matches(path))
        .ok_or_else(|| no_route(kind, path))?;
    if !found.route.takes(method) {
        return Err(not_allowed(method, path, found.route.allow));
    }
    Ok(found)
}

fn no_route(kind: Kind, path: &str) -> ApiError {
    let message = if kind == Kind::Shared {
        format!(
            "no route {}: this is the shared daemon; a project's routes are under \
             /projects/{{id}}/ (query, documents/PATH, index, status), and GET /projects \
             lists the projects",
            quoted(path)
        )
    } else {
        format!("no route {}", quoted(path))
    };
    ApiError::new(StatusCode::NOT_FOUND, "not_found", message)
}

/// A 405 for `method` on `path`, which takes `allow`.
pub fn not_allowed(method: &Method, path: &str, allow: &'static str) -> ApiError {
    ApiError {
        allow: Some(allow),
        ..ApiError::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "method_not_allowed",
            format!(
                "{method} is not allowed on {}; it takes {allow}",
                quoted(path)
            ),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn op(kind: Kind, method: Method, path: &str) -> Result<(Op, Option<String>, String), u16> {
        find(kind, &method, path)
            .map(|f| (f.route.op, f.id.map(String::from), f.doc.to_owned()))
            .map_err(|e| e.status.as_u16())
    }

    #[test]
    fn paths_find_their_routes() {
        let get = |p| op(Kind::Resident, Method::GET, p);
        assert_eq!(get("/query"), Ok((Op::Query, None, String::new())));
        assert_eq!(get("/documents/"), Ok((Op::Document, None, String::new())));
        assert_eq!(
            get("/documents/a/b.md"),
            Ok((Op::Document, None, "a/b.md".into()))
        );
        for nowhere in [
            "",
            "/",
            "/documents",
            "/query/",
            "/querys",
            "//query",
            "/projects",
        ] {
            assert_eq!(get(nowhere), Err(404), "{nowhere:?}");
        }
        assert_eq!(op(Kind::Resident, Method::DELETE, "/query"), Err(405));
        assert_eq!(op(Kind::Resident, Method::GET, "/mcp"), Err(405));
        assert_eq!(
            op(Kind::Resident, Method::HEAD, "/documents/x"),
            Ok((Op::Document, None, "x".into()))
        );

        let get = |p| op(Kind::Shared, Method::GET, p);
        assert_eq!(
            get("/projects/p_1/status"),
            Ok((Op::ProjectStatus, Some("p_1".into()), String::new()))
        );
        assert_eq!(
            get("/projects/p_1/documents/d/x.md"),
            Ok((Op::Document, Some("p_1".into()), "d/x.md".into()))
        );
        assert_eq!(
            get("/projects/p_1/documents/"),
            Ok((Op::Document, Some("p_1".into()), String::new()))
        );
        for nowhere in [
            "/query",
            "/mcp",
            "/projects/",
            "/projects//query",
            "/projects/p_1",
            "/projects/p_1/",
            "/projects/p_1/x",
        ] {
            assert_eq!(get(nowhere), Err(404), "{nowhere:?}");
        }
        assert_eq!(
            op(Kind::Shared, Method::GET, "/projects/p_1/index"),
            Err(405)
        );
    }
}
