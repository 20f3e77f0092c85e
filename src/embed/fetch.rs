//! `doc-serve model fetch`: a known model's files from the Hugging Face hub into the
//! model cache (see [`super::known`]), each checked against its pinned size and SHA-256
//! while it streams.
//!
//! Every file is written to a temporary name beside its place and renamed there only
//! once all the model's files are verified, so a mismatch, a cut connection or a full
//! disk leaves the files that were in place before (and no partial one); a kill leaves
//! at most a temporary file, which the next fetch removes. Files already in place are
//! verified, not downloaded again. One fetch of a model runs at a time: it holds a
//! flock on `.NAME.lock` in the cache directory.
//!
//! The endpoint is `https://huggingface.co` unless `DOC_SERVE_HF_ENDPOINT` names
//! another (a mirror); plain `http://` is accepted only on a loopback address.

use std::fs::File;
use std::io::{self, Read, Write};
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use sha2::{Digest, Sha256};

use super::known::{Known, KnownFile};
use crate::flock;

pub const DEFAULT_ENDPOINT: &str = "https://huggingface.co";
/// The variable naming another hub endpoint.
pub const ENDPOINT_VAR: &str = "DOC_SERVE_HF_ENDPOINT";

/// How long a fetch waits for another fetch of the same model to finish.
const LOCK_WAIT: Duration = Duration::from_secs(3600);
/// A connection that sends nothing for this long is given up.
const READ_TIMEOUT: Duration = Duration::from_secs(60);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(30);

#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    #[error("{ENDPOINT_VAR}={value:?}: {why}")]
    Endpoint { value: String, why: String },
    #[error("cannot download {url}: {what}")]
    Download { url: String, what: String },
    #[error(
        "{url} is not the file doc-serve pins: expected SHA-256 {expected} ({size} bytes), \
         got {actual}; nothing was installed"
    )]
    Mismatch {
        url: String,
        expected: &'static str,
        size: u64,
        /// `SHA-256 HASH (N bytes)`, or what stopped the check.
        actual: String,
    },
    #[error(
        "another `doc-serve model fetch` of this model has held {} for an hour; \
         try again once it ends",
        path.display()
    )]
    Busy { path: PathBuf },
    #[error("{context}: {cause}")]
    Io { context: String, cause: io::Error },
}

fn io_error(context: impl Into<String>) -> impl FnOnce(io::Error) -> FetchError {
    let context = context.into();
    move |cause| FetchError::Io { context, cause }
}

/// Where files are downloaded from: `{base}/{repo}/resolve/{revision}/{file}`.
#[derive(Debug, Clone)]
pub struct Endpoint {
    base: String,
    /// Plain HTTP to this machine (a test or a local mirror): no TLS, no proxy.
    loopback_http: bool,
}

impl Endpoint {
    /// The endpoint `value` (of [`ENDPOINT_VAR`]) names, or the hub's.
    pub fn from_setting(value: Option<&str>) -> Result<Endpoint, FetchError> {
        let Some(value) = value.filter(|v| !v.trim().is_empty()) else {
            return Ok(Endpoint {
                base: DEFAULT_ENDPOINT.into(),
                loopback_http: false,
            });
        };
        let bad = |why: &str| FetchError::Endpoint {
            value: value.into(),
            why: why.into(),
        };
        let base = value.trim().trim_end_matches('/');
        let (https, rest) = if let Some(rest) = base.strip_prefix("https://") {
            (true, rest)
        } else if let Some(rest) = base.strip_prefix("http://") {
            (false, rest)
        } else {
            return Err(bad(
                "not a URL: it must start with https:// (e.g. https://huggingface.co)",
            ));
        };
        let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
        if authority.is_empty() || rest.contains(['?', '#', '@', '\\', ' ']) {
            return Err(bad(
                "expected https://HOST[:PORT][/PATH], with no user, query or fragment",
            ));
        }
        if !https && !is_loopback(authority) {
            return Err(bad(
                "plain http:// is accepted only for a loopback address (127.0.0.1, [::1], \
                 localhost); use https://",
            ));
        }
        Ok(Endpoint {
            base: base.into(),
            loopback_http: !https,
        })
    }

    pub fn url(&self, model: &Known, file: &str) -> String {
        format!(
            "{}/{}/resolve/{}/{file}",
            self.base, model.repo, model.revision
        )
    }

    fn agent(&self) -> ureq::Agent {
        let config = ureq::Agent::config_builder()
            .user_agent(concat!("doc-serve/", env!("CARGO_PKG_VERSION")))
            // The hub redirects large files to its CDN: never down to plain HTTP.
            .https_only(!self.loopback_http)
            .timeout_connect(Some(CONNECT_TIMEOUT))
            .timeout_per_read(Some(READ_TIMEOUT))
            .max_redirects(10);
        let config = if self.loopback_http {
            config.proxy(None)
        } else {
            config
        };
        config.build().into()
    }
}

/// Whether the host of `authority` (`host[:port]`) is this machine.
fn is_loopback(authority: &str) -> bool {
    let host = if let Some(v6) = authority.strip_prefix('[') {
        v6.split(']').next().unwrap_or_default()
    } else {
        authority.split(':').next().unwrap_or_default()
    };
    host.eq_ignore_ascii_case("localhost")
        || host.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

/// What a fetch is doing, for a progress display.
pub enum Progress<'a> {
    /// Another fetch of the model holds the lock.
    Waiting,
    /// Files in place are checked; `bytes` will be downloaded in all.
    Plan {
        download: usize,
        bytes: u64,
    },
    Downloading {
        file: &'a str,
        url: &'a str,
    },
    /// Bytes received.
    Bytes(u64),
}

/// What happened to one file.
#[derive(Debug, serde::Serialize)]
pub struct FileDone {
    pub file: &'static str,
    pub bytes: u64,
    pub sha256: &'static str,
    /// The file was downloaded (else it was in place and verified).
    pub downloaded: bool,
}

#[derive(Debug, serde::Serialize)]
pub struct Fetched {
    pub model: &'static str,
    pub path: PathBuf,
    pub files: Vec<FileDone>,
}

/// Installs `model` in `cache/NAME/`: files in place and verified are kept (unless
/// `force`), the others are downloaded from `endpoint`.
pub fn fetch(
    model: &'static Known,
    cache: &Path,
    endpoint: &Endpoint,
    force: bool,
    on: &mut dyn FnMut(Progress),
) -> Result<Fetched, FetchError> {
    let dir = cache.join(model.name);
    std::fs::create_dir_all(cache)
        .map_err(io_error(format!("cannot create {}", cache.display())))?;
    let _lock = lock(&cache.join(format!(".{}.lock", model.name)), on)?;
    let existed = dir.exists();
    let fetched = install(model, &dir, endpoint, force, on);
    if fetched.is_err() && !existed {
        // Directories made for a model that did not arrive (only if empty).
        let _ = std::fs::remove_dir(dir.join("1_Pooling"));
        let _ = std::fs::remove_dir(&dir);
    }
    fetched
}

fn install(
    model: &'static Known,
    dir: &Path,
    endpoint: &Endpoint,
    force: bool,
    on: &mut dyn FnMut(Progress),
) -> Result<Fetched, FetchError> {
    let mut temps = Temps(Vec::new());
    for file in model.files {
        // A fetch that was killed left these.
        let _ = std::fs::remove_file(temp_name(dir, file));
    }
    let mut done = Vec::new();
    let mut missing = Vec::new();
    for file in model.files {
        let in_place = !force && verify(&dir.join(file.name), file).is_ok_and(|ok| ok);
        if !in_place {
            missing.push(file);
        }
        done.push(FileDone {
            file: file.name,
            bytes: file.size,
            sha256: file.sha256,
            downloaded: !in_place,
        });
    }
    on(Progress::Plan {
        download: missing.len(),
        bytes: missing.iter().map(|f| f.size).sum(),
    });
    if !missing.is_empty() {
        let agent = endpoint.agent();
        for file in &missing {
            let temp = temp_name(dir, file);
            let parent = temp.parent().unwrap_or(dir);
            std::fs::create_dir_all(parent)
                .map_err(io_error(format!("cannot create {}", parent.display())))?;
            temps.0.push(temp.clone());
            let url = endpoint.url(model, file.name);
            on(Progress::Downloading {
                file: file.name,
                url: &url,
            });
            download(&agent, &url, file, &temp, on)?;
        }
        // Every file is verified: only now does any of them take its place.
        let mut parents = Vec::new();
        for file in &missing {
            let target = dir.join(file.name);
            std::fs::rename(temp_name(dir, file), &target)
                .map_err(io_error(format!("cannot install {}", target.display())))?;
            parents.extend(target.parent().map(Path::to_path_buf));
        }
        parents.dedup();
        for d in parents {
            if let Ok(f) = File::open(&d) {
                let _ = f.sync_all();
            }
        }
    }
    Ok(Fetched {
        model: model.name,
        path: dir.to_path_buf(),
        files: done,
    })
}

/// Takes the model's fetch lock, waiting for another fetch to finish.
fn lock(path: &Path, on: &mut dyn FnMut(Progress)) -> Result<flock::FileLock, FetchError> {
    let context = || format!("cannot lock {}", path.display());
    if let Some(l) = flock::try_lock(path).map_err(io_error(context()))? {
        return Ok(l);
    }
    on(Progress::Waiting);
    flock::lock_within(path, LOCK_WAIT)
        .map_err(io_error(context()))?
        .ok_or_else(|| FetchError::Busy {
            path: path.to_path_buf(),
        })
}

/// `DIR/[SUB/].NAME.part`: beside the file's place, so the rename stays on one file
/// system.
fn temp_name(dir: &Path, file: &KnownFile) -> PathBuf {
    let target = dir.join(file.name);
    let name = target
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    target.with_file_name(format!(".{name}.part"))
}

/// Temporary files removed when a fetch ends, whichever way (installed ones are gone
/// already).
struct Temps(Vec<PathBuf>);

impl Drop for Temps {
    fn drop(&mut self) {
        for t in &self.0 {
            let _ = std::fs::remove_file(t);
        }
    }
}

/// Whether `path` holds exactly `file` (its size, then its SHA-256).
pub fn verify(path: &Path, file: &KnownFile) -> io::Result<bool> {
    let mut f = File::open(path)?;
    if f.metadata()?.len() != file.size {
        return Ok(false);
    }
    let mut hash = Sha256::new();
    let mut buf = vec![0; 1 << 16];
    loop {
        match f.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => hash.update(&buf[..n]),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(hex(&hash.finalize()) == file.sha256)
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Streams `url` into `temp`, checking its size and hash on the way; the file is
/// synced to disk when it is the pinned one.
fn download(
    agent: &ureq::Agent,
    url: &str,
    file: &KnownFile,
    temp: &Path,
    on: &mut dyn FnMut(Progress),
) -> Result<(), FetchError> {
    let response = agent.get(url).call().map_err(|e| FetchError::Download {
        url: url.into(),
        what: describe(&e),
    })?;
    // Where a failure happened: the CDN the hub redirected to, if it did.
    let at = ureq::ResponseExt::get_uri(&response).to_string();
    let url = if at == url {
        url.to_string()
    } else {
        format!("{url} (redirected to {at})")
    };
    let url = url.as_str();
    let failed = |what: String| FetchError::Download {
        url: url.into(),
        what,
    };
    let mut body = response.into_body().into_reader();
    let mut out =
        File::create(temp).map_err(io_error(format!("cannot create {}", temp.display())))?;
    let mut hash = Sha256::new();
    let mut got = 0u64;
    let mut buf = vec![0; 1 << 16];
    loop {
        let n = match body.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => {
                return Err(failed(format!(
                    "the transfer stopped after {got} of {} bytes: {e}",
                    file.size
                )));
            }
        };
        // A server sending more than the pinned size is not the file: stop before it
        // fills the disk.
        if got + n as u64 > file.size {
            return Err(FetchError::Mismatch {
                url: url.into(),
                expected: file.sha256,
                size: file.size,
                actual: format!("more than {} bytes", file.size),
            });
        }
        hash.update(&buf[..n]);
        out.write_all(&buf[..n])
            .map_err(io_error(format!("cannot write {}", temp.display())))?;
        got += n as u64;
        on(Progress::Bytes(n as u64));
    }
    let actual = hex(&hash.finalize());
    if got != file.size || actual != file.sha256 {
        return Err(FetchError::Mismatch {
            url: url.into(),
            expected: file.sha256,
            size: file.size,
            actual: format!("SHA-256 {actual} ({got} bytes)"),
        });
    }
    out.sync_all()
        .map_err(io_error(format!("cannot write {}", temp.display())))
}

/// A ureq error in words, with what to do where there is something to do.
fn describe(e: &ureq::Error) -> String {
    match e {
        ureq::Error::StatusCode(404) => {
            "HTTP 404: the hub has no such file (is the endpoint a Hugging Face hub?)".into()
        }
        ureq::Error::StatusCode(code @ (401 | 403)) => {
            format!("HTTP {code}: the hub refused the download")
        }
        ureq::Error::StatusCode(code) => format!("HTTP {code}"),
        ureq::Error::RequireHttpsOnly(to) => {
            format!("refused a redirect to {to}, which is not https://")
        }
        ureq::Error::Io(_)
        | ureq::Error::HostNotFound
        | ureq::Error::ConnectionFailed
        | ureq::Error::Timeout(_) => {
            format!("{e} (no network? {ENDPOINT_VAR} can name a mirror)")
        }
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints() {
        let ok = |v: &str| Endpoint::from_setting(Some(v)).map(|e| (e.base, e.loopback_http));
        assert_eq!(
            Endpoint::from_setting(None).unwrap().base,
            "https://huggingface.co"
        );
        assert_eq!(
            ok("https://hf-mirror.example/").unwrap(),
            ("https://hf-mirror.example".into(), false)
        );
        for v in [
            "http://127.0.0.1:8080",
            "http://127.9.0.1/hub",
            "http://[::1]:9",
            "http://LOCALHOST:1",
        ] {
            assert!(ok(v).unwrap().1, "{v}");
        }
        for v in [
            "http://example.com",
            "http://127.0.0.1.example.com",
            "http://10.0.0.1",
            "http://user@example.com:80@127.0.0.1",
            "ftp://127.0.0.1",
            "huggingface.co",
            "https://",
            "https://hub/?x=1",
        ] {
            let e = ok(v).unwrap_err().to_string();
            assert!(e.contains("DOC_SERVE_HF_ENDPOINT"), "{v}: {e}");
        }
    }
}
