//! The resident: serve every listener until a shutdown cause, then leave cleanly.
//!
//! Shape after mini-redis: [`run`] takes listeners made by the caller (inherited or
//! bound before the runtime started) and owns one explicit, bounded shutdown sequence:
//! notify STOPPING, stop accepting, remove runtime.json, drain in-flight requests within
//! `drain_timeout_seconds`. The caller then removes the PID file and releases the lock.
//! Per-connection errors are logged, never bubbled to the accept loop.

pub mod embedder;
pub mod gate;
pub mod http;
pub mod indexing;
pub mod listener;
pub mod login;
pub mod mcp_http;
pub mod openapi;
pub mod page;
pub mod projects;
pub mod router;
pub mod routes;
pub mod shutdown;
pub mod state;

use std::sync::Arc;
use std::time::{Duration, Instant};

use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use sd_notify::NotifyState;
use serde_json::json;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::{Semaphore, watch};

use crate::config::Config;
use crate::discovery::runtime::{RuntimeFile, RuntimeState, SCHEMA_VERSION};
use crate::error::{Error, Result};
use crate::events::{EventLog, now_rfc3339};
use crate::ingest::sync::Indexer;
use crate::process;
use crate::project::Project;
use http::Transport;
use listener::{Listeners, Socket};
use projects::Projects;
use shutdown::{Anchor, Cause, notify};
use state::{Activity, Server, Site, Sites};

/// Everything a resident needs, prepared before the async runtime starts.
pub struct Setup {
    pub project: Project,
    pub config: Config,
    pub listeners: Listeners,
    pub events: EventLog,
    pub serves: Serves,
    /// Checked every second: a root or lifetime lock gone from its path ends [`run`].
    pub anchor: Option<Anchor>,
}

/// A project's resident serves its index (and loads its settings again when they
/// change); the shared daemon, registered projects.
pub enum Serves {
    Project(Indexer, Option<indexing::Reload>),
    Shared(Box<Projects>),
}

/// Why [`run`] ended, and for a resident that serves again in place
/// ([`Cause::Replaced`]), its listening sockets.
pub struct Ended {
    pub cause: Cause,
    pub listeners: Option<Listeners>,
}

/// Serves until a [`Cause`] to stop, and returns which it was.
pub async fn run(setup: Setup, signals: &mut shutdown::Signals) -> Result<Ended> {
    let Setup {
        project,
        config,
        listeners,
        events,
        serves,
        anchor,
    } = setup;
    let runtime = runtime_state(&project, &config, &listeners)?;
    let login = login::Login::new(
        project.state_dir.join("session.key"),
        if project.is_shared_daemon() {
            "shared".into()
        } else {
            project.id()
        },
        config.login_code,
        config.session,
    );
    // What no source may hold: the token, and where a browser can come (TCP), the
    // sessions' key, made now so that a copy of it is kept out from the start.
    let mut secrets = vec![runtime.token.clone()];
    if listeners.tcp_addr().is_some()
        && let Ok(key) = login.key()
    {
        secrets.push(crate::engine::hex(&key));
    }
    let (sites, index_service) = match serves {
        Serves::Project(indexer, reload) => {
            indexer.sources.guard_secrets(&secrets);
            let (site, service) = Site::start(
                indexer,
                &config,
                project.state_dir.clone(),
                None,
                events.clone(),
                reload,
            );
            (Sites::One(Arc::new(site)), Some(service))
        }
        Serves::Shared(projects) => (Sites::Many(Arc::new(*projects)), None),
    };
    let server = Arc::new(Server {
        login,
        token: runtime.token.clone(),
        bind_host: config.bind_host.clone(),
        max_body_bytes: config.max_body_bytes,
        request_timeout: config.request_timeout,
        idle_timeout: config.idle_timeout,
        started: Instant::now(),
        activity: Activity::default(),
        runtime,
        sites,
        mcp: std::sync::OnceLock::new(),
        health: std::sync::OnceLock::new(),
    });

    let conns = Conns {
        builder: Arc::new(http1_builder(server.request_timeout)),
        graceful: Arc::new(GracefulShutdown::new()),
        permits: Arc::new(Semaphore::new(config.max_connections)),
    };
    let (stop_tx, stop_rx) = watch::channel(false);
    let activation = listeners.activation;
    let mut accepting = Vec::new();
    for l in listeners.list {
        let task = tokio::spawn(accept_loop(
            l.socket,
            server.clone(),
            conns.clone(),
            stop_rx.clone(),
        )?);
        accepting.push((task, l.name));
    }

    // Listeners are accepting: only now may clients find us.
    let runtime_file = project.runtime_file();
    server.runtime.write(&runtime_file)?;
    let mut housekeeping = None;
    if let Sites::Many(projects) = &server.sites {
        let (p, state) = (projects.clone(), server.runtime.clone());
        let _ = tokio::task::spawn_blocking(move || p.listening(&state, secrets)).await;
        housekeeping = Some(tokio::spawn(close_idle_projects(
            projects.clone(),
            config.project_idle,
        )));
    }
    let status = format!(
        "serving {} at {}",
        project.root.display(),
        server.runtime.base_url
    );
    notify(&[NotifyState::Ready, NotifyState::Status(&status)]);
    tracing::info!("ready: {status}");
    events.record(
        "ready",
        json!({
            "instance_id": server.runtime.instance_id,
            "base_url": server.runtime.base_url,
            "activation": server.runtime.activation,
        }),
    );

    let every_check = {
        let (runtime_file, state, events) =
            (runtime_file.clone(), server.runtime.clone(), events.clone());
        move || {
            let cause = anchor.as_ref().and_then(Anchor::check);
            if cause.is_none() {
                keep_runtime_file(&runtime_file, &state, &events);
            }
            cause
        }
    };
    let cause = shutdown::wait_for_cause(server.clone(), signals, every_check).await;
    if let Some(task) = housekeeping {
        task.abort();
    }

    tracing::info!("stopping: {cause}");
    let status = format!("stopping: {cause}");
    if cause == Cause::Replaced {
        // Served again at once, under a new lock, when nobody else took it (see
        // `cli::serve`).
        notify(&[NotifyState::Reloading, NotifyState::Status(&status)]);
    } else {
        notify(&[NotifyState::Stopping, NotifyState::Status(&status)]);
    }
    // Searches waiting for a first index answer now, from what is committed.
    match &server.sites {
        Sites::One(site) => site.index.end_waits(),
        Sites::Many(projects) => projects.end_waits(),
    }
    let _ = stop_tx.send(true);
    let mut kept = Vec::new();
    for (task, name) in accepting {
        if let Ok(Some(socket)) = task.await {
            kept.push(listener::Listener { socket, name });
        }
    }
    // Closed now, so that new clients are refused and go elsewhere, unless the
    // resident serves again in place: then they wait in the backlog meanwhile.
    let listeners = (cause == Cause::Replaced).then_some(Listeners {
        list: kept,
        activation,
    });
    remove_runtime_if_ours(&runtime_file, &server.runtime.instance_id);
    let bound = config.drain_timeout;
    drain(conns, bound).await;
    // The batch in progress commits if it can within the bound, else rolls back.
    let projects = match &server.sites {
        Sites::Many(p) => Some(p.clone()),
        Sites::One(_) => None,
    };
    let _ = tokio::task::spawn_blocking(move || {
        if let Some(service) = index_service {
            service.stop(bound);
        }
        if let Some(projects) = projects {
            projects.shutdown(bound);
        }
    })
    .await;
    Ok(Ended { cause, listeners })
}

/// The HTTP/1.1 settings of every connection; public so that the fuzz harness
/// (`fuzz/harness/http.rs`) serves its in-memory connections exactly as a listener does.
pub fn http1_builder(request_timeout: Duration) -> http1::Builder {
    let mut builder = http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(request_timeout)
        .keep_alive(true);
    builder
}

/// The shared daemon's housekeeping: projects idle for `idle` are closed.
async fn close_idle_projects(projects: Arc<Projects>, idle: Duration) {
    let every = (idle / 4).clamp(Duration::from_secs(1), Duration::from_secs(60));
    loop {
        tokio::time::sleep(every).await;
        let p = projects.clone();
        let _ = tokio::task::spawn_blocking(move || p.close_idle()).await;
    }
}

fn runtime_state(
    project: &Project,
    config: &Config,
    listeners: &Listeners,
) -> Result<RuntimeState> {
    let tcp = listeners.tcp_addr();
    let socket_path = listeners.unix_path();
    let base_url = match (&tcp, &socket_path) {
        (Some(addr), _) => format!("http://{addr}"),
        (None, Some(path)) => format!("unix:{}", path.display()),
        (None, None) => {
            return Err(Error::Setting {
                name: "listeners".into(),
                message: "no usable listener".into(),
            });
        }
    };
    Ok(RuntimeState {
        schema_version: SCHEMA_VERSION,
        mode: config.mode,
        project_root: project.root.clone(),
        base_url,
        instance_id: format!("ds_{}", random_hex(3)?),
        // The daemon serves many projects: each pointer file names its own.
        project_id: if project.is_shared_daemon() {
            String::new()
        } else {
            project.id()
        },
        bind_host: tcp.map(|a| a.ip().to_string()).unwrap_or_default(),
        port: tcp.map_or(0, |a| a.port()),
        pid: std::process::id(),
        started_at: now_rfc3339(),
        token: random_hex(32)?,
        socket_path,
        activation: listeners.activation,
        version: crate::VERSION.into(),
        process: process::own_identity(),
        listeners: listeners.info(),
    })
}

/// `n` random bytes from the OS, as hex.
fn random_hex(n: usize) -> Result<String> {
    let mut bytes = vec![0u8; n];
    getrandom::fill(&mut bytes).map_err(|e| {
        Error::io(
            "cannot read random bytes from the OS",
            std::io::Error::other(e.to_string()),
        )
    })?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

/// Writes runtime.json again when it no longer describes this resident (deleted,
/// truncated, overwritten): clients find a resident only through it, and one they
/// cannot find can be neither used nor stopped. Called only while the resident still
/// holds the lock at its path, so the file is its own to write.
fn keep_runtime_file(path: &std::path::Path, state: &RuntimeState, events: &EventLog) {
    let found = RuntimeFile::read(path);
    if let RuntimeFile::Valid(s) = &found
        && s.instance_id == state.instance_id
    {
        return;
    }
    let was = found.describe();
    match state.write(path) {
        Ok(()) => {
            tracing::warn!("{} was {was}; written again", path.display());
            events.record("runtime_rewritten", json!({ "path": path, "was": was }));
        }
        Err(e) => tracing::warn!("{e:#}"),
    }
}

/// Removes runtime.json unless a newer resident has already replaced it.
fn remove_runtime_if_ours(path: &std::path::Path, instance_id: &str) {
    if let RuntimeFile::Valid(state) = RuntimeFile::read(path)
        && state.instance_id == instance_id
        && let Err(e) = crate::fsutil::remove_if_exists(path)
    {
        tracing::warn!("cannot remove {}: {e}", path.display());
    }
}

/// What every connection shares: the HTTP settings, the drain signal, the cap.
#[derive(Clone)]
struct Conns {
    builder: Arc<http1::Builder>,
    graceful: Arc<GracefulShutdown>,
    permits: Arc<Semaphore>,
}

enum AsyncListener {
    Tcp(tokio::net::TcpListener),
    Unix(tokio::net::UnixListener),
}

/// Accepts on `socket` until `stop`, then gives the socket back (see [`Ended`]).
fn accept_loop(
    socket: Socket,
    server: Arc<Server>,
    conns: Conns,
    mut stop: watch::Receiver<bool>,
) -> Result<impl Future<Output = Option<Socket>>> {
    let ctx = |e| Error::io("cannot register a listener with the runtime", e);
    let listener = match socket {
        Socket::Tcp(t) => AsyncListener::Tcp(tokio::net::TcpListener::from_std(t).map_err(ctx)?),
        Socket::Unix(u) => AsyncListener::Unix(tokio::net::UnixListener::from_std(u).map_err(ctx)?),
    };
    let give_back = |listener: AsyncListener| match listener {
        AsyncListener::Tcp(t) => t.into_std().ok().map(Socket::Tcp),
        AsyncListener::Unix(u) => u.into_std().ok().map(Socket::Unix),
    };
    Ok(async move {
        loop {
            // Wait for a free slot before accepting: past the cap, clients wait in the
            // kernel's backlog instead of being accepted and starved.
            let permit = tokio::select! {
                p = conns.permits.clone().acquire_owned() => match p {
                    Ok(p) => p,
                    Err(_) => return give_back(listener),
                },
                _ = stop.changed() => return give_back(listener),
            };
            let accepted = tokio::select! {
                a = accept(&listener) => a,
                _ = stop.changed() => return give_back(listener),
            };
            let (server, conns2) = (server.clone(), conns.clone());
            match accepted {
                Ok(Accepted::Tcp(stream)) => {
                    let _ = stream.set_nodelay(true);
                    let port = stream.local_addr().map_or(0, |a| a.port());
                    serve_connection(stream, Transport::Tcp { port }, server, conns2, permit);
                }
                Ok(Accepted::Unix(stream)) => {
                    serve_connection(stream, Transport::Unix, server, conns2, permit);
                }
                Err(e) => {
                    // EMFILE and friends: back off instead of spinning.
                    tracing::warn!("accept failed: {e}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        }
    })
}

enum Accepted {
    Tcp(tokio::net::TcpStream),
    Unix(tokio::net::UnixStream),
}

async fn accept(listener: &AsyncListener) -> std::io::Result<Accepted> {
    match listener {
        AsyncListener::Tcp(l) => l.accept().await.map(|(s, _)| Accepted::Tcp(s)),
        AsyncListener::Unix(l) => l.accept().await.map(|(s, _)| Accepted::Unix(s)),
    }
}

fn serve_connection<S>(
    stream: S,
    transport: Transport,
    server: Arc<Server>,
    conns: Conns,
    permit: tokio::sync::OwnedSemaphorePermit,
) where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let service = service_fn(move |req| http::handle(req, server.clone(), transport));
    let conn = conns
        .builder
        .serve_connection(TokioIo::new(stream), service);
    let conn = conns.graceful.watch(conn);
    tokio::spawn(async move {
        if let Err(e) = conn.await {
            tracing::debug!("connection ended with an error: {e}");
        }
        drop(permit);
    });
}

/// Lets open connections finish their requests, within `bound`.
async fn drain(conns: Conns, bound: Duration) {
    let Conns { graceful, .. } = conns;
    let Ok(graceful) = Arc::try_unwrap(graceful) else {
        tracing::warn!("connections still shared at shutdown; not waiting for them");
        return;
    };
    let open = graceful.count();
    if tokio::time::timeout(bound, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!("{open} connection(s) did not finish within {bound:?}; closing them");
    }
}
