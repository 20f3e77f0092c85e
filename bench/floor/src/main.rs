//! The loopback floor: the least an HTTP/1.1 server on hyper 1.x + tokio can do.
//!
//! Binds 127.0.0.1:0, prints the port on stdout as one line, then answers every request
//! on every keep-alive connection with a small JSON body. bench/run compares doc-serve's
//! /health with this, so it stays deliberately minimal: no routing, no headers checked,
//! no logging. It runs until killed.
//!
//! Under socket activation (`systemd-socket-activate`: LISTEN_FDS=1 and LISTEN_PID = our
//! PID) it serves the inherited fd 3 instead of binding, so that bench/run can compare
//! doc-serve's cold start with the least a socket-activated server needs. std only, no
//! listenfd crate: the same steps (non-blocking, handed to tokio), nothing more.

use std::convert::Infallible;
use std::io::Write;
use std::os::fd::FromRawFd;

use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

const BODY: &[u8] = br#"{"status":"ok"}"#;

async fn answer(_req: Request<Incoming>) -> Result<Response<Full<Bytes>>, Infallible> {
    let mut resp = Response::new(Full::new(Bytes::from_static(BODY)));
    resp.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static("application/json"),
    );
    Ok(resp)
}

/// The socket systemd passed (fd 3), if it was passed to this process.
fn inherited() -> Option<std::net::TcpListener> {
    let ours = std::env::var("LISTEN_PID").ok()?.parse::<u32>().ok()? == std::process::id();
    if !ours || std::env::var("LISTEN_FDS").ok()?.parse::<u32>().ok()? < 1 {
        return None;
    }
    // SAFETY: fd 3 is the listening socket systemd handed to this PID, owned by no one else.
    Some(unsafe { std::net::TcpListener::from_raw_fd(3) })
}

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let listener = match inherited() {
        Some(std) => {
            std.set_nonblocking(true)?;
            TcpListener::from_std(std)?
        }
        None => TcpListener::bind("127.0.0.1:0").await?,
    };
    let port = listener.local_addr()?.port();
    // One line, flushed, so the parent can read it before sending the first request.
    let mut out = std::io::stdout().lock();
    writeln!(out, "{port}")?;
    out.flush()?;
    drop(out);

    loop {
        let (stream, _) = listener.accept().await?;
        tokio::spawn(async move {
            // Per-connection errors (client reset mid-request) end that connection only.
            let _ = http1::Builder::new()
                .keep_alive(true)
                .serve_connection(TokioIo::new(stream), service_fn(answer))
                .await;
        });
    }
}
