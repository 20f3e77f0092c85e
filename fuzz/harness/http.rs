//! `http_request`: arbitrary bytes as one HTTP/1.1 connection to a resident.
//!
//! The server side is the real one: the listeners' HTTP/1.1 settings
//! ([`http1_builder`], plus half-closes, see [`exchange`]) and service ([`http::handle`]: the security gate, then
//! every route, `/mcp` included) over a project whose index is built once. Only the
//! socket is replaced, by an in-memory duplex stream: the input is written, the
//! client's side shut, and the reply read to the end. Each input is played over TCP
//! (with a bearer token the seeds know) and over a Unix socket (no token needed).
//!
//! What must hold: no panic; within [`ANSWER_BOUND`] the server has answered and closed,
//! or just closed; every reply starts with a status line; no reply is a 500 (a request
//! may be refused, but must not break the server); over TCP, without the token, no
//! route but /health answers.

use std::sync::Arc;
use std::time::{Duration, Instant};

use doc_serve::config::Config;
use doc_serve::discovery::runtime::{Activation, RuntimeState, SCHEMA_VERSION};
use doc_serve::events::EventLog;
use doc_serve::server::http::{self, Transport};
use doc_serve::server::http1_builder;
use doc_serve::server::indexing::IndexService;
use doc_serve::server::state::{Activity, Server, Site, Sites};
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::fixture;

/// The token TCP requests must carry; the seeds and the dictionary use it.
pub const TOKEN: &str = "fuzz-token";
/// How long one connection may take from the first byte to the server's close.
pub const ANSWER_BOUND: Duration = Duration::from_secs(10);

/// A resident's shared state on an indexed project, and the runtime serving it.
pub struct Fixture {
    server: Arc<Server>,
    runtime: tokio::runtime::Runtime,
    service: Option<IndexService>,
    _dir: tempfile::TempDir,
}

impl Fixture {
    pub fn new() -> Fixture {
        let dir = tempfile::tempdir().expect("temp dir");
        let indexed = fixture::indexed(dir.path());
        // The settings the fixture was indexed with.
        let config = Config::default();
        let project = indexed.project;
        let events = EventLog::new(&project.state_dir.join("logs"), 1 << 20);
        let (site, service) = Site::start(
            indexed.indexer,
            &config,
            project.state_dir.clone(),
            None,
            events,
            None,
        );
        let runtime = RuntimeState {
            schema_version: SCHEMA_VERSION,
            mode: config.mode,
            project_root: project.root.clone(),
            base_url: "http://127.0.0.1:1".into(),
            instance_id: "ds_f0zz00".into(),
            project_id: project.id(),
            bind_host: config.bind_host.clone(),
            port: 1,
            pid: std::process::id(),
            started_at: "2026-01-01T00:00:00Z".into(),
            token: TOKEN.into(),
            socket_path: None,
            activation: Activation::SelfBound,
            version: doc_serve::VERSION.into(),
            process: Default::default(),
            listeners: Vec::new(),
        };
        let server = Arc::new(Server {
            login: doc_serve::server::login::Login::new(
                project.state_dir.join("session.key"),
                project.id(),
                config.login_code,
                config.session,
            ),
            token: TOKEN.into(),
            bind_host: config.bind_host.clone(),
            max_body_bytes: config.max_body_bytes,
            request_timeout: config.request_timeout,
            idle_timeout: None,
            started: Instant::now(),
            activity: Activity::default(),
            runtime,
            sites: Sites::One(Arc::new(site)),
            mcp: std::sync::OnceLock::new(),
            health: std::sync::OnceLock::new(),
        });
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("tokio runtime");
        Fixture {
            server,
            runtime,
            service: Some(service),
            _dir: dir,
        }
    }
}

impl Drop for Fixture {
    fn drop(&mut self) {
        if let Some(service) = self.service.take() {
            service.stop(Duration::from_secs(5));
        }
    }
}

pub fn check(fixture: &Fixture, data: &[u8]) {
    for transport in [Transport::Tcp { port: 1 }, Transport::Unix] {
        let reply = fixture
            .runtime
            .block_on(exchange(fixture.server.clone(), transport, data));
        check_reply(&reply, transport);
        let has_token = data.windows(TOKEN.len()).any(|w| w == TOKEN.as_bytes());
        if transport != Transport::Unix && !has_token {
            check_gate_held(&reply);
        }
    }
}

/// Serves one connection that sends `data` and then shuts its side; returns all the
/// server wrote before it closed.
async fn exchange(server: Arc<Server>, transport: Transport, data: &[u8]) -> Vec<u8> {
    let (client, server_side) = tokio::io::duplex(64 * 1024);
    let mut builder = http1_builder(server.request_timeout);
    // The one difference from a listener: hyper's default drops a connection whose
    // client shut its side mid-request, which here would be every connection, since
    // shutting is how the harness says the input is over.
    builder.half_close(true);
    let service = service_fn(move |req| http::handle(req, server.clone(), transport));
    let conn = builder.serve_connection(TokioIo::new(server_side), service);
    let (mut rx, mut tx) = tokio::io::split(client);
    let send = async move {
        // The server may close before reading everything (a malformed head): fine.
        let _ = tx.write_all(data).await;
        let _ = tx.shutdown().await;
    };
    let receive = async move {
        let mut out = Vec::new();
        let _ = rx.read_to_end(&mut out).await;
        out
    };
    let all = async {
        let (_, _, out) = tokio::join!(conn, send, receive);
        out
    };
    match tokio::time::timeout(ANSWER_BOUND, all).await {
        Ok(out) => out,
        Err(_) => panic!("{transport:?}: no answer and no close within {ANSWER_BOUND:?}"),
    }
}

/// Over TCP without the token, nothing but /health may answer: no search results,
/// index state, documents or MCP results. (Error messages may quote the request, but
/// inside a JSON string, where every `"` is escaped.)
fn check_gate_held(reply: &[u8]) {
    let text = String::from_utf8_lossy(reply);
    for leak in [
        "\"index\":{",
        "\"hits\":[",
        "\"total_lines\":",
        "\"jsonrpc\":",
    ] {
        let unescaped = text
            .match_indices(leak)
            .any(|(at, _)| !text[..at].ends_with('\\'));
        assert!(
            !unescaped,
            "answered without the token: {}",
            text.trim_end()
        );
    }
}

/// Every reply starts with an HTTP/1.x status line, and none is a 500.
fn check_reply(reply: &[u8], transport: Transport) {
    if reply.is_empty() {
        return;
    }
    assert!(
        reply.starts_with(b"HTTP/1."),
        "{transport:?}: the server wrote something other than a reply: {:?}",
        String::from_utf8_lossy(&reply[..reply.len().min(200)])
    );
    // JSON bodies escape control characters, so a line that starts with "HTTP/1." is
    // a status line.
    let text = String::from_utf8_lossy(reply);
    for (at, _) in text.match_indices("HTTP/1.") {
        if at > 0 && !text[..at].ends_with('\n') {
            continue;
        }
        let line = text[at..].lines().next().unwrap_or_default();
        let status = line.get(9..12).and_then(|s| s.parse::<u16>().ok());
        assert!(
            status.is_some_and(|s| (100..=599).contains(&s)),
            "{transport:?}: bad status line {line:?}"
        );
        assert_ne!(status, Some(500), "{transport:?}: {}", text.trim_end());
    }
}
