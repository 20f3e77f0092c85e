//! The loopback floor: the least an HTTP/1.1 server on hyper 1.x + tokio can do.
//!
//! Binds 127.0.0.1:0, prints the port on stdout as one line, then answers every request
//! on every keep-alive connection with a small JSON body. bench/run compares doc-serve's
//! /health with this, so it stays deliberately minimal: no routing, no headers checked,
//! no logging. It runs until killed.

use std::convert::Infallible;
use std::io::Write;

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

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
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
