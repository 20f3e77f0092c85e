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
    Render,
    Mcp,
    Projects,
    ProjectStatus,
    /// The search page, `/`, and its files under `/ui/`.
    Page,
    Asset,
    /// A one-time code (`doc-serve open`), and its exchange for a browser session.
    LoginCode,
    Login,
}

/// What a request must show to reach a route over TCP (over a Unix socket the
/// socket's file mode is the gate): README, "Search page".
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Auth {
    /// Nothing: `/health`, the page's files (no data in them) and the exchange of a
    /// one-time code for a session. Host and Origin are checked as everywhere.
    Public,
    /// The instance token, or a browser session: the routes that read.
    Session,
    /// As [`Auth::Session`] for GET and HEAD, the token for the other methods.
    SessionReads,
    /// The instance token only: what changes the index, registers projects, answers
    /// MCP or mints login codes.
    Token,
}

/// A route: its path as OpenAPI writes it (`{id}` is one path segment, `{path}` at the
/// end the rest of the path, at least one character), the methods it takes as a 405's
/// `Allow` header says them (HEAD wherever GET), and what it does.
#[derive(Debug)]
pub struct Route {
    pub path: &'static str,
    pub allow: &'static str,
    pub op: Op,
    pub auth: Auth,
}

pub const GET: &str = "GET, HEAD";
pub const POST: &str = "POST";
pub const GET_OR_POST: &str = "GET, HEAD, POST";

const fn route(path: &'static str, allow: &'static str, op: Op, auth: Auth) -> Route {
    Route {
        path,
        allow,
        op,
        auth,
    }
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
    route("/health", GET, Op::Health, Auth::Public),
    route("/", GET, Op::Page, Auth::Public),
    route("/ui/{path}", GET, Op::Asset, Auth::Public),
    route("/login", POST, Op::Login, Auth::Public),
    route("/login/code", POST, Op::LoginCode, Auth::Token),
    route("/openapi.json", GET, Op::OpenApi, Auth::Session),
    route("/status", GET, Op::Status, Auth::Session),
    route("/query", GET_OR_POST, Op::Query, Auth::Session),
    route("/index", POST, Op::Index, Auth::Token),
    // The path taken from `section=PATH#ANCHOR`.
    route("/documents/", GET, Op::Document, Auth::Session),
    route("/documents/{path}", GET, Op::Document, Auth::Session),
    route("/render/{path}", GET, Op::Render, Auth::Session),
    route("/mcp", POST, Op::Mcp, Auth::Token),
];

/// The shared daemon: a project's routes are under `/projects/{id}/` (it has no `/mcp`:
/// `doc-serve mcp` in the project bridges to it).
#[rustfmt::skip]
pub const SHARED: &[Route] = &[
    route("/health", GET, Op::Health, Auth::Public),
    route("/", GET, Op::Page, Auth::Public),
    route("/ui/{path}", GET, Op::Asset, Auth::Public),
    route("/login", POST, Op::Login, Auth::Public),
    route("/login/code", POST, Op::LoginCode, Auth::Token),
    route("/openapi.json", GET, Op::OpenApi, Auth::Session),
    route("/status", GET, Op::Status, Auth::Session),
    route("/projects", GET_OR_POST, Op::Projects, Auth::SessionReads),
    route("/projects/{id}/status", GET, Op::ProjectStatus, Auth::Session),
    route("/projects/{id}/query", GET_OR_POST, Op::Query, Auth::Session),
    route("/projects/{id}/index", POST, Op::Index, Auth::Token),
    route("/projects/{id}/documents/", GET, Op::Document, Auth::Session),
    route("/projects/{id}/documents/{path}", GET, Op::Document, Auth::Session),
    route("/projects/{id}/render/{path}", GET, Op::Render, Auth::Session),
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

/// What `method` on `path` needs (see [`Auth`]). A path no route takes needs the
/// token, so a client without one learns nothing of the routes (401 before 404); a
/// public route is public to every method (a wrong one is 405, as anywhere).
pub fn auth_of(kind: Kind, method: &Method, path: &str) -> Auth {
    let Some(route) = kind.routes().iter().find(|r| r.matches(path).is_some()) else {
        return Auth::Token;
    };
    match route.auth {
        Auth::SessionReads if method == Method::GET || method == Method::HEAD => Auth::Session,
        Auth::SessionReads => Auth::Token,
        auth => auth,
    }
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
        assert_eq!(get("/"), Ok((Op::Page, None, String::new())));
        assert_eq!(get("/ui/app.js"), Ok((Op::Asset, None, "app.js".into())));
        for nowhere in [
            "",
            "/ui/",
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

    #[test]
    fn what_each_route_needs() {
        use Auth::*;
        let auth = |kind, method, path| auth_of(kind, &method, path);
        let r = Kind::Resident;
        assert_eq!(auth(r, Method::GET, "/health"), Public);
        assert_eq!(auth(r, Method::GET, "/"), Public);
        assert_eq!(auth(r, Method::HEAD, "/ui/app.css"), Public);
        assert_eq!(auth(r, Method::POST, "/login"), Public);
        assert_eq!(auth(r, Method::POST, "/login/code"), Token);
        assert_eq!(auth(r, Method::POST, "/query"), Session);
        assert_eq!(auth(r, Method::GET, "/documents/a.md"), Session);
        assert_eq!(auth(r, Method::POST, "/index"), Token);
        assert_eq!(auth(r, Method::POST, "/mcp"), Token);
        // A public path is public to every method (405 for a wrong one); a path no
        // route takes needs the token (401 before 404).
        assert_eq!(auth(r, Method::POST, "/"), Public);
        assert_eq!(auth(r, Method::GET, "/login"), Public);
        assert_eq!(auth(r, Method::POST, "/health"), Public);
        assert_eq!(auth(r, Method::DELETE, "/query"), Session);
        assert_eq!(auth(r, Method::GET, "/index"), Token);
        assert_eq!(auth(r, Method::GET, "/nowhere"), Token);
        let s = Kind::Shared;
        assert_eq!(auth(s, Method::GET, "/projects"), Session);
        assert_eq!(auth(s, Method::POST, "/projects"), Token);
        assert_eq!(auth(s, Method::GET, "/projects/p_1/query"), Session);
        assert_eq!(auth(s, Method::POST, "/projects/p_1/index"), Token);
    }
}
