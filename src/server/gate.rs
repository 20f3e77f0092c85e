//! The security gate every request passes before its route: Host, Origin and, over
//! TCP, the bearer token (README, "HTTP API"; SECURITY.md).
//!
//! An authority (a Host header, an absolute-form target's authority, an Origin's
//! `host[:port]`) is local only when it is spelled exactly as one of
//! - `localhost`, in any letter case;
//! - a dotted-quad address in 127.0.0.0/8 (four decimal numbers, no leading zeros);
//! - `[::1]`, exactly (not `[0::1]`, `[::01]` or `[0:0:0:0:0:0:0:1]`);
//! - the address the resident was told to bind (`bind_host`), when it is not loopback,
//!   an IPv6 one in its canonical spelling (RFC 5952, as the standard library prints it);
//!
//! each with an optional `:port` of 1 to 5 digits up to 65535. Nothing is trimmed,
//! decoded or completed: a trailing dot, a subdomain, user info, a zone id,
//! percent-encoding, whitespace, an empty port, `127.1`, `0x7f.0.0.1` and
//! `[::ffff:127.0.0.1]` are all refused. Browsers send only these canonical spellings
//! (they lowercase names and normalize addresses before sending), so refusing the rest
//! costs no real client and leaves a rebinding page no spelling to slip through by.
//!
//! A request is read one way or refused with 400: an HTTP/1.1 request without a Host
//! header (RFC 9112, 3.2; HTTP/1.0 predates Host and passes), a target that is neither
//! a path nor an `http://` or `https://` URL, and a second Host, Origin or
//! Authorization header. An error quotes at most the first 100 characters of what it
//! refuses. This module decides; it never touches the route or the body.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use hyper::header::{self, HeaderName};
use hyper::{Request, StatusCode, Version};

use super::http::Transport;
use super::login::SESSION_PREFIX;
use super::router::{self, Auth};
use super::state::Server;
use crate::api::{ApiError, quoted};

/// Host, Origin, and over TCP what the route needs ([`Auth`]): nothing, the token, or
/// the token or a browser session.
pub fn check<B>(req: &Request<B>, server: &Server, transport: Transport) -> Result<(), ApiError> {
    let bind = server.bind_host.parse::<IpAddr>().ok();
    check_host(req, bind)?;
    check_origin(req, bind)?;
    let token = single(req, &header::AUTHORIZATION, "Authorization")?;
    let Transport::Tcp { port } = transport else {
        return Ok(());
    };
    match router::auth_of(server.kind(), req.method(), req.uri().path()) {
        Auth::Public => Ok(()),
        auth => check_token(token, server, auth == Auth::Session, port),
    }
}

/// True when `authority` (`host[:port]`) names this machine, spelled as the module doc
/// says; `bind` is the address the resident was told to bind, if one was.
pub fn is_local_authority(authority: &str, bind: Option<IpAddr>) -> bool {
    let (host, port) = match authority.strip_prefix('[') {
        // `[v6]` or `[v6]:port`: the bracket must close right before the port.
        Some(rest) => match rest.split_once(']') {
            Some((v6, "")) => (Host::V6(v6), None),
            Some((v6, after)) => match after.strip_prefix(':') {
                Some(port) => (Host::V6(v6), Some(port)),
                None => return false,
            },
            None => return false,
        },
        // A second ':' stays in the port, which then is not a number.
        None => match authority.split_once(':') {
            Some((name, port)) => (Host::Name(name), Some(port)),
            None => (Host::Name(authority), None),
        },
    };
    port.is_none_or(is_port) && host.is_local(bind)
}

/// True when `origin` is `http://` or `https://` and a local authority, nothing more
/// (a serialized origin has no path, not even `/`). `null`, the opaque origin of a
/// sandboxed frame, a `file:` page or a cross-origin redirect, could be any page and
/// is refused.
pub fn is_local_origin(origin: &str, bind: Option<IpAddr>) -> bool {
    let Some((scheme, authority)) = origin.split_once("://") else {
        return false;
    };
    (scheme.eq_ignore_ascii_case("http") || scheme.eq_ignore_ascii_case("https"))
        && is_local_authority(authority, bind)
}

enum Host<'a> {
    /// Inside `[...]`.
    V6(&'a str),
    Name(&'a str),
}

impl Host<'_> {
    fn is_local(&self, bind: Option<IpAddr>) -> bool {
        match *self {
            // Canonical only: the address must read back as it was written.
            Host::V6(text) => text.parse::<Ipv6Addr>().is_ok_and(|ip| {
                (ip == Ipv6Addr::LOCALHOST || bind == Some(IpAddr::V6(ip)))
                    && ip.to_string() == text
            }),
            Host::Name(name) => {
                name.eq_ignore_ascii_case("localhost")
                    // Rust's parser takes exactly four decimal parts without leading
                    // zeros: `127.1`, `0x7f.0.0.1` and `0177.0.0.1` fail.
                    || name
                        .parse::<Ipv4Addr>()
                        .is_ok_and(|ip| ip.octets()[0] == 127 || bind == Some(IpAddr::V4(ip)))
            }
        }
    }
}

/// 1 to 5 ASCII digits, at most 65535 (`u16::from_str` alone would take `+80`).
fn is_port(port: &str) -> bool {
    (1..=5).contains(&port.len())
        && port.bytes().all(|b| b.is_ascii_digit())
        && port.parse::<u16>().is_ok()
}

fn forbidden(code: &'static str, message: String) -> ApiError {
    ApiError::new(StatusCode::FORBIDDEN, code, message)
}

/// The one value of a header that may appear once: `Ok(None)` when absent, a 400 when
/// repeated (RFC 9110: which one a proxy or browser went by is anyone's guess).
fn single<'r, B>(
    req: &'r Request<B>,
    name: &HeaderName,
    shown: &str,
) -> Result<Option<&'r header::HeaderValue>, ApiError> {
    let mut values = req.headers().get_all(name).iter();
    let first = values.next();
    if values.next().is_some() {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "bad_request",
            format!("more than one {shown} header"),
        ));
    }
    Ok(first)
}

fn bad_request(message: String) -> ApiError {
    ApiError::new(StatusCode::BAD_REQUEST, "bad_request", message)
}

/// A Host header must be a local authority, and so must the authority of an
/// absolute-form request target (`GET http://host/...`), user info and all, whose
/// scheme must be http or https. HTTP/1.1 requires a Host; an HTTP/1.0 request (a
/// tool older than Host, never a browser) may come without one.
fn check_host<B>(req: &Request<B>, bind: Option<IpAddr>) -> Result<(), ApiError> {
    match single(req, &header::HOST, "Host")? {
        Some(value) if !value.to_str().is_ok_and(|v| is_local_authority(v, bind)) => {
            let shown = String::from_utf8_lossy(value.as_bytes());
            return Err(host_refused("Host", &shown));
        }
        None if req.version() == Version::HTTP_11 => {
            return Err(bad_request(
                "an HTTP/1.1 request needs a Host header (RFC 9112), such as Host: localhost"
                    .into(),
            ));
        }
        _ => {}
    }
    let uri = req.uri();
    match (uri.scheme_str(), uri.authority()) {
        (None, None) => Ok(()),
        (Some(scheme), _)
            if !scheme.eq_ignore_ascii_case("http") && !scheme.eq_ignore_ascii_case("https") =>
        {
            Err(bad_request(format!(
                "the request target's scheme {} is not http or https",
                quoted(scheme)
            )))
        }
        // `GET host:port`, the form only CONNECT may use.
        (None, Some(_)) => Err(bad_request(
            "the request target is neither a path (/health) nor an http:// URL".into(),
        )),
        (_, Some(a)) if !is_local_authority(a.as_str(), bind) => {
            Err(host_refused("the request target's authority", a.as_str()))
        }
        _ => Ok(()),
    }
}

fn host_refused(what: &str, value: &str) -> ApiError {
    forbidden(
        "forbidden_host",
        format!(
            "{what} {} is not localhost, a 127.x.x.x address or [::1] (with an optional \
             port); doc-serve only answers local clients",
            quoted(value)
        ),
    )
}

/// An Origin, when present, must be a local `http(s)://host[:port]` origin.
fn check_origin<B>(req: &Request<B>, bind: Option<IpAddr>) -> Result<(), ApiError> {
    let Some(value) = single(req, &header::ORIGIN, "Origin")? else {
        return Ok(());
    };
    if value.to_str().is_ok_and(|o| is_local_origin(o, bind)) {
        return Ok(());
    }
    Err(forbidden(
        "forbidden_origin",
        format!(
            "Origin {} is not a local origin (http or https on localhost, a 127.x.x.x \
             address or [::1])",
            quoted(&String::from_utf8_lossy(value.as_bytes()))
        ),
    ))
}

/// The bearer token of the (single) Authorization header, `value`: the instance
/// token, or where `session` allows, a browser session made for `port`.
fn check_token(
    value: Option<&header::HeaderValue>,
    server: &Server,
    session: bool,
    port: u16,
) -> Result<(), ApiError> {
    let given = value
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim);
    match given {
        Some(t) if t.starts_with(SESSION_PREFIX) && session => server.login.verify(t, port),
        Some(t) if t.starts_with(SESSION_PREFIX) => Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "session_not_allowed",
            "a browser session only reads (search, documents, status); this route needs the \
             instance token from runtime.json",
        )),
        Some(t) if constant_time_eq(t.as_bytes(), server.token.as_bytes()) => Ok(()),
        Some(_) => Err(ApiError::new(
            StatusCode::UNAUTHORIZED,
            "bad_token",
            "the bearer token is wrong; read the current one from runtime.json",
        )),
        None => Err(ApiError::new(
            StatusCode::UNAUTHORIZED,
            "missing_token",
            "this route needs Authorization: Bearer <token>, the token being in runtime.json \
             (or, in a browser, a session: run `doc-serve open`)",
        )),
    }
}

pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    const BIND_V4: IpAddr = IpAddr::V4(Ipv4Addr::new(192, 168, 1, 5));

    #[test]
    fn authorities() {
        for ok in [
            "localhost",
            "LOCALHOST",
            "LocalHost:8080",
            "localhost:0",
            "localhost:65535",
            "localhost:08080",
            "127.0.0.1",
            "127.5.6.7:1",
            "127.255.255.255",
            "[::1]",
            "[::1]:8080",
        ] {
            assert!(is_local_authority(ok, None), "{ok}");
        }
        for bad in [
            "",
            ":80",
            "[::1].evil.com",
            "[::1]evil.com",
            "[::1",
            "[::1]:",
            "[::1]:80:80",
            "[[::1]]",
            "::1",
            "::1:80",
            "[::1%25lo]",
            "[::1%lo]:80",
            "[fe80::1%25eth0]",
            "[::ffff:127.0.0.1]",
            "[0:0:0:0:0:0:0:1]:1",
            "[0::1]",
            "[::01]",
            "[::0:1]",
            "[0000::1]",
            "[::]",
            "localhost.",
            "localhost.:80",
            "a.localhost",
            "localhost.evil.com",
            "localhost:",
            "localhost:65536",
            "localhost:123456",
            "localhost:+80",
            "localhost:-1",
            "localhost:8o",
            "localhost:80:80",
            "localhost:80/",
            "user@localhost",
            "evil.com@127.0.0.1",
            "127.0.0.1@evil.com",
            "%6cocalhost",
            "127.0.0.1%2f",
            " localhost",
            "localhost ",
            "local host",
            "localhost\t",
            "127.1",
            "127.0.1",
            "0x7f.0.0.1",
            "0177.0.0.1",
            "127.0.0.01",
            "2130706433",
            "127.0.0.1.",
            "127.0.0.1.evil.com",
            "127.0.0.256",
            "128.0.0.1",
            "10.0.0.1",
            "0.0.0.0",
            "evil.com",
            "evil.com:80",
            "ｌｏｃａｌｈｏｓｔ",
            "localhost\0",
        ] {
            assert!(!is_local_authority(bad, None), "{bad:?}");
        }
    }

    #[test]
    fn the_bind_address_counts_only_when_given() {
        assert!(is_local_authority("192.168.1.5:80", Some(BIND_V4)));
        assert!(!is_local_authority("192.168.1.5:80", None));
        assert!(!is_local_authority("192.168.1.6", Some(BIND_V4)));
        let v6 = IpAddr::V6("fe80::1".parse().unwrap());
        assert!(is_local_authority("[fe80::1]:80", Some(v6)));
        assert!(!is_local_authority("[FE80::1]:80", Some(v6)));
        assert!(!is_local_authority("[fe80:0::1]", Some(v6)));
        assert!(!is_local_authority("fe80::1", Some(v6)));
        assert!(!is_local_authority("[fe80::1%25eth0]:80", Some(v6)));
    }

    #[test]
    fn origins() {
        for ok in [
            "http://localhost:3000",
            "https://127.0.0.1",
            "HTTP://[::1]:8443",
        ] {
            assert!(is_local_origin(ok, None), "{ok}");
        }
        for bad in [
            "null",
            "",
            "localhost",
            "//localhost",
            "file://",
            "file://localhost",
            "ws://localhost",
            "http://localhost/",
            "http://localhost:80/x",
            "http://user@localhost",
            "http://[::1].evil.com",
            "http://[::1",
            "http://127.0.0.1.evil.example",
            "http:// localhost",
            "http://localhost, http://evil.com",
        ] {
            assert!(!is_local_origin(bad, None), "{bad:?}");
        }
    }

    #[test]
    fn token_compare() {
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"ab"));
    }

    use crate::testing::Rng;

    /// What the module doc promises, written another way: the port is split off at
    /// the last ':' (not the first), names are compared lowercased, and an IPv4
    /// address must read back exactly as the standard library prints it.
    fn reference(authority: &str, bind: Option<IpAddr>) -> bool {
        let (host, port) = if authority.ends_with(']') {
            (authority, None)
        } else {
            match authority.rsplit_once(':') {
                Some((host, port)) => (host, Some(port)),
                None => (authority, None),
            }
        };
        let port_ok = port.is_none_or(|p| {
            !p.is_empty()
                && p.len() <= 5
                && p.chars().all(|c| c.is_ascii_digit())
                && p.parse::<u32>().is_ok_and(|n| n <= 65535)
        });
        let host_ok = if host.starts_with('[') && host.ends_with(']') && host.len() >= 2 {
            let inner = &host[1..host.len() - 1];
            inner.parse::<Ipv6Addr>().is_ok_and(|ip| {
                ip.to_string() == inner && (ip.is_loopback() || Some(IpAddr::V6(ip)) == bind)
            })
        } else if host.contains(':') {
            false
        } else if host
            .bytes()
            .map(|b| b.to_ascii_lowercase())
            .eq(*b"localhost")
        {
            true
        } else {
            match host.parse::<Ipv4Addr>() {
                Ok(ip) if ip.to_string() == host => {
                    ip.is_loopback() || Some(IpAddr::V4(ip)) == bind
                }
                _ => false,
            }
        };
        port_ok && host_ok
    }

    #[rustfmt::skip]
    const PIECES: &[&str] = &[
        "localhost", "LocalHost", "LOCALHOST", "127.0.0.1", "127.9.8.7", "127.1", "127",
        "[::1]", "[", "]", "::1", "::", ":", ":80", "80", "65535", "65536", "0", "00", "1",
        "255", "256", "0x7f", ".", "..", "evil.com", ".evil.com", "@", "%", "%25", "%6c",
        "lo", "eth0", " ", "\t", "\r", "\n", "+", "-", "/", "#", "?", "\\", "\0", "é", "１",
        "::ffff:127.0.0.1", "fe80::1", "0:0:0:0:0:0:0:1", "192.168.1.5", "[fe80::1]",
        "http://", "https://", "null",
    ];

    fn random_authority(rng: &mut Rng) -> String {
        (0..=rng.below(6)).map(|_| rng.pick(PIECES)).collect()
    }

    /// An authority the module doc accepts, built from its grammar.
    fn valid_authority(rng: &mut Rng) -> String {
        let host = match rng.below(3) {
            0 => "localhost"
                .chars()
                .map(|c| match rng.below(2) {
                    0 => c.to_ascii_uppercase(),
                    _ => c,
                })
                .collect(),
            1 => format!(
                "127.{}.{}.{}",
                rng.below(256),
                rng.below(256),
                rng.below(256)
            ),
            _ => "[::1]".to_string(),
        };
        match rng.below(2) {
            0 => host,
            _ => format!("{host}:{}", rng.below(65536)),
        }
    }

    /// Single-byte edits of a valid authority: the neighbours an exact parser must get
    /// right (one character too many, too few, or wrong).
    fn mutate(rng: &mut Rng, s: &str) -> String {
        const BYTES: &[u8] = b"0123456789abcdefxlL.:[]@%/ \t+-#?\\";
        let mut b = s.as_bytes().to_vec();
        let at = rng.below(b.len() + 1);
        match rng.below(3) {
            0 => b.insert(at, BYTES[rng.below(BYTES.len())]),
            1 if at < b.len() => {
                b.remove(at);
            }
            _ if at < b.len() => b[at] = BYTES[rng.below(BYTES.len())],
            _ => b.push(BYTES[rng.below(BYTES.len())]),
        }
        // Only ASCII went in, and only at ASCII positions of an ASCII string.
        String::from_utf8_lossy(&b).into_owned()
    }

    /// Many generated authorities and origins: the parser agrees with [`reference`],
    /// every grammatical one is accepted, and nothing accepted holds a character
    /// outside digits, hex letters, `localhost`'s letters, `.`, `:` and brackets.
    #[test]
    fn generated_authorities_agree_with_the_reference() {
        let seed = std::env::var("DOC_SERVE_TEST_SEED")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(0x05ee_da17_u64);
        let mut rng = Rng(seed | 1);
        let allowed = |s: &str| {
            s.chars()
                .all(|c| c.is_ascii_hexdigit() || "locahstLOCAHST.:[]".contains(c))
        };
        let mut accepted = 0;
        for i in 0..200_000 {
            let bind = [None, Some(BIND_V4)][rng.below(2)];
            let valid = valid_authority(&mut rng);
            assert!(is_local_authority(&valid, bind), "seed {seed}: {valid:?}");
            let s = match i % 2 {
                0 => random_authority(&mut rng),
                _ => mutate(&mut rng, &valid),
            };
            let got = is_local_authority(&s, bind);
            assert_eq!(got, reference(&s, bind), "seed {seed}: {s:?} bind {bind:?}");
            if got {
                accepted += 1;
                assert!(allowed(&s), "seed {seed}: accepted {s:?}");
            }
            let scheme = rng.pick(&["http://", "https://", "HTTPS://", "ftp://", "", "http:/"]);
            let path = rng.pick(&["", "", "/", "/x", "?", "#"]);
            let origin = format!("{scheme}{s}{path}");
            let lower = origin.to_ascii_lowercase();
            let scheme_len = ["http://", "https://"]
                .into_iter()
                .find(|p| lower.starts_with(p))
                .map(str::len);
            let expect = scheme_len.is_some_and(|n| reference(&origin[n..], bind));
            assert_eq!(
                is_local_origin(&origin, bind),
                expect,
                "seed {seed}: {origin:?}"
            );
        }
        // The generator reaches both sides of the line.
        assert!(accepted > 10_000, "{accepted}");
    }
}
