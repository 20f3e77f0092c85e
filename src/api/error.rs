//! The one error every operation answers, whatever the transport: a stable code, a
//! message for a person or a model, and the HTTP status it is sent with. The codes are
//! listed in README.md ("Errors"); the CLI prints the message, MCP makes it a tool
//! error, HTTP sends `{"code", "message"}`.

use std::borrow::Cow;

use hyper::StatusCode;

use crate::engine::EngineError;
use crate::ingest::read::ReadError;

#[derive(Debug, Clone)]
pub struct ApiError {
    pub status: StatusCode,
    /// One of the codes in README.md ("HTTP API"); a bridge passes on its resident's.
    pub code: Cow<'static, str>,
    pub message: String,
    /// The methods a route takes, for a 405's `Allow` header.
    pub allow: Option<&'static str>,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        ApiError {
            status,
            code: Cow::Borrowed(code),
            message: message.into(),
            allow: None,
        }
    }

    /// The error a resident answered, passed on as it is (the MCP bridge's).
    pub fn relayed(status: StatusCode, code: String, message: String) -> Self {
        ApiError {
            status,
            code: Cow::Owned(code),
            message,
            allow: None,
        }
    }

    /// A 400: the request is wrong, and `message` says how.
    pub fn bad(code: &'static str, message: impl Into<String>) -> Self {
        ApiError::new(StatusCode::BAD_REQUEST, code, message)
    }

    /// A 500: something on our side failed.
    pub fn internal(message: impl ToString) -> Self {
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            message.to_string(),
        )
    }

    /// A 503: whoever should answer cannot now (a resident stopping, none to be had).
    pub fn unavailable(message: impl Into<String>) -> Self {
        ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "unavailable", message)
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for ApiError {}

impl From<EngineError> for ApiError {
    fn from(e: EngineError) -> Self {
        match e {
            EngineError::BadQuery(m) => ApiError::bad("bad_query", m),
            EngineError::Busy { .. } => {
                ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "index_busy", e.to_string())
            }
            other => ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "index_error",
                other.to_string(),
            ),
        }
    }
}

impl From<ReadError> for ApiError {
    fn from(e: ReadError) -> Self {
        let status = match e {
            ReadError::NotFound { .. }
            | ReadError::Binary { .. }
            | ReadError::NoSuchHeading { .. }
            | ReadError::NoSuchSection { .. } => StatusCode::NOT_FOUND,
            ReadError::TooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            ReadError::BadRange { .. } | ReadError::BadParameter(_) => StatusCode::BAD_REQUEST,
        };
        ApiError::new(status, e.code(), e.to_string())
    }
}

/// Most characters of a request's value an error message quotes.
const QUOTED_CHARS: usize = 100;

/// A value from a request as an error message quotes it: in quotes, escaped, and cut
/// after [`QUOTED_CHARS`] characters with "…" (a 200 KB header is not sent back whole).
pub fn quoted(value: &str) -> String {
    match value.char_indices().nth(QUOTED_CHARS) {
        Some((at, _)) => format!("{:?}", format!("{}…", &value[..at])),
        None => format!("{value:?}"),
    }
}
