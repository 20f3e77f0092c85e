//! A minimal HTTP/1.1 client for talking to a resident over TCP or a Unix socket.
//!
//! Short-lived commands send one request per connection ([`request`]); the MCP bridge
//! keeps one open ([`Conn`]). Errors are classified
//! the way sccache does it: "nothing is listening" (refused, socket file missing) means
//! try the next way of reaching a resident; anything else is reported as is.

use std::io;
use std::path::PathBuf;
use std::time::Duration;

use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper::{Method, Request, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpStream, UnixStream};

/// Where a resident listens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Endpoint {
    /// `host:port`, as in `http://host:port`.
    Tcp(String),
    /// A Unix socket path, as in `unix:/path/to.sock`.
    Unix(PathBuf),
}

impl Endpoint {
    /// Parses a base URL: `http://host:port` or `unix:PATH`.
    pub fn parse(base_url: &str) -> Result<Endpoint, String> {
        if let Some(path) = base_url.strip_prefix("unix:") {
            return Ok(Endpoint::Unix(PathBuf::from(path)));
        }
        let authority = base_url
            .strip_prefix("http://")
            .ok_or_else(|| format!("unsupported base_url {base_url:?}: expected http:// or unix:"))?
            .trim_end_matches('/');
        if authority.is_empty() || authority.contains('/') {
            return Err(format!("malformed base_url {base_url:?}"));
        }
        Ok(Endpoint::Tcp(authority.to_owned()))
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// Nothing listens there (connection refused, socket file missing).
    #[error("nothing is listening: {0}")]
    Unreachable(io::Error),
    #[error("no answer within {0:?}")]
    Timeout(Duration),
    #[error("{0}")]
    Io(io::Error),
    #[error("HTTP error: {0}")]
    Http(#[from] hyper::Error),
}

impl ClientError {
    /// True when the right move is to try another way to reach a resident.
    pub fn is_unreachable(&self) -> bool {
        matches!(self, ClientError::Unreachable(_))
    }
}

#[derive(Debug)]
pub struct Response {
    pub status: StatusCode,
    pub body: Bytes,
}

/// Sends one request on a new connection and reads the whole answer within `timeout`.
pub async fn request(
    endpoint: &Endpoint,
    method: Method,
    path: &str,
    token: Option<&str>,
    body: Option<Vec<u8>>,
    timeout: Duration,
) -> Result<Response, ClientError> {
    let work = async {
        let mut conn = Conn::open(endpoint).await?;
        conn.send(method, path, token, body).await
    };
    tokio::time::timeout(timeout, work)
        .await
        .map_err(|_| ClientError::Timeout(timeout))?
}

/// A kept-alive connection to a resident, for a client that sends many requests.
pub struct Conn {
    sender: hyper::client::conn::http1::SendRequest<Full<Bytes>>,
    driver: tokio::task::JoinHandle<()>,
    host: String,
}

impl Drop for Conn {
    fn drop(&mut self) {
        self.driver.abort();
    }
}

impl Conn {
    pub async fn open(endpoint: &Endpoint) -> Result<Conn, ClientError> {
        match endpoint {
            Endpoint::Tcp(authority) => {
                let stream = TcpStream::connect(authority.as_str())
                    .await
                    .map_err(classify)?;
                // Requests are small and latency matters more than packet count.
                let _ = stream.set_nodelay(true);
                Conn::handshake(stream, authority).await
            }
            Endpoint::Unix(socket) => {
                let stream = UnixStream::connect(socket).await.map_err(classify)?;
                Conn::handshake(stream, "localhost").await
            }
        }
    }

    async fn handshake<S>(stream: S, host: &str) -> Result<Conn, ClientError>
    where
        S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
        let driver = tokio::spawn(async move {
            let _ = conn.await;
        });
        Ok(Conn {
            sender,
            driver,
            host: host.to_owned(),
        })
    }

    /// One request and its whole answer.
    pub async fn send(
        &mut self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<Vec<u8>>,
    ) -> Result<Response, ClientError> {
        let mut req = Request::builder()
            .method(method)
            .uri(path)
            .header(hyper::header::HOST, &self.host);
        if let Some(t) = token {
            req = req.header(hyper::header::AUTHORIZATION, format!("Bearer {t}"));
        }
        if body.is_some() {
            req = req.header(hyper::header::CONTENT_TYPE, "application/json");
        }
        let req = req
            .body(Full::new(Bytes::from(body.unwrap_or_default())))
            .map_err(|e| ClientError::Io(io::Error::new(io::ErrorKind::InvalidInput, e)))?;
        self.sender.ready().await.map_err(unanswered)?;
        let resp = self.sender.send_request(req).await.map_err(unanswered)?;
        let status = resp.status();
        let body = resp.into_body().collect().await?.to_bytes();
        Ok(Response { status, body })
    }
}

/// A request the resident closed the connection on before answering is as good as
/// refused: a resident shutting down resets the connections still waiting in its listen
/// backlog, and one killed mid-request answers nothing. The requests clients send are
/// safe to repeat (searches, reads, reconciliations), so the next way is tried.
fn unanswered(e: hyper::Error) -> ClientError {
    let kind = std::error::Error::source(&e)
        .and_then(|s| s.downcast_ref::<io::Error>())
        .map(io::Error::kind);
    match kind {
        Some(
            k @ (io::ErrorKind::ConnectionReset
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::BrokenPipe),
        ) => ClientError::Unreachable(io::Error::new(k, e)),
        _ if e.is_incomplete_message() || e.is_closed() || e.is_canceled() => {
            ClientError::Unreachable(io::Error::new(io::ErrorKind::UnexpectedEof, e))
        }
        _ => ClientError::Http(e),
    }
}

fn classify(e: io::Error) -> ClientError {
    match e.kind() {
        io::ErrorKind::ConnectionRefused
        | io::ErrorKind::NotFound
        | io::ErrorKind::AddrNotAvailable
        | io::ErrorKind::ConnectionReset => ClientError::Unreachable(e),
        _ => ClientError::Io(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_endpoints() {
        assert_eq!(
            Endpoint::parse("http://127.0.0.1:80/").unwrap(),
            Endpoint::Tcp("127.0.0.1:80".into())
        );
        assert_eq!(
            Endpoint::parse("http://[::1]:80").unwrap(),
            Endpoint::Tcp("[::1]:80".into())
        );
        assert_eq!(
            Endpoint::parse("unix:/run/x.sock").unwrap(),
            Endpoint::Unix("/run/x.sock".into())
        );
        assert!(Endpoint::parse("https://x").is_err());
        assert!(Endpoint::parse("http://").is_err());
        assert!(Endpoint::parse("http://a/b").is_err());
    }
}
