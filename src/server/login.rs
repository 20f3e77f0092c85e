//! Getting a browser in without weakening the gate (README, "Search page").
//!
//! `doc-serve open` asks, with the instance token or over the Unix socket, for a
//! one-time code (`POST /login/code`); the page trades it once, within
//! `login_code_seconds`, for a session (`POST /login`), which it sends as its bearer
//! token on the routes that read ([`super::router::Auth::Session`]).
//!
//! A session is `dss1.EXPIRES.NONCE.MAC`: the MAC is HMAC-SHA256, keyed by the 0600
//! `session.key` in the state directory, over the instance's scope (the project id, or
//! `shared`), the port of the Host the code was redeemed on, the expiry and the nonce.
//! Nothing is kept per session, so a session outlives an idle exit or a socket-activated
//! start; it is good only on the port it was made for, and deleting `session.key` ends
//! every session. Codes live in memory only: `open` asks, and the browser redeems
//! seconds later, on the same process.
//!
//! The page keeps the session in `sessionStorage`, not in a cookie: cookies are not
//! isolated by port, so a cookie for 127.0.0.1 would be sent to any other user's
//! listener on 127.0.0.1 (SECURITY.md).

use std::io::{Read, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::PathBuf;
use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use hyper::StatusCode;
use sha2::{Digest, Sha256};

use crate::api::ApiError;
use crate::engine::hex;

/// Prefix of a session token, and of what its MAC covers.
pub const SESSION_PREFIX: &str = "dss1.";

/// Codes not yet redeemed, at most: the oldest goes first.
const MAX_CODES: usize = 32;

pub struct Login {
    /// Where the key is, made at first need.
    key_path: PathBuf,
    /// Loaded (or made) once, under the lock: two requests never make two keys.
    key: Mutex<Option<[u8; 32]>>,
    /// The project id, or `shared`.
    scope: String,
    pub code_ttl: Duration,
    pub session_ttl: Duration,
    codes: Mutex<Vec<Code>>,
}

/// A code given out: its SHA-256 (the code itself is not kept), when it expires,
/// whether it was used. Kept a while after either, so a refusal can say why.
struct Code {
    hash: [u8; 32],
    expires: Instant,
    used: bool,
}

/// A session made by [`Login::redeem`].
#[derive(Debug, serde::Serialize)]
pub struct Session {
    pub session: String,
    /// Unix seconds.
    pub expires_at: u64,
    pub expires_in: u64,
}

impl Login {
    pub fn new(
        key_path: PathBuf,
        scope: String,
        code_ttl: Duration,
        session_ttl: Duration,
    ) -> Login {
        Login {
            key_path,
            key: Mutex::new(None),
            scope,
            code_ttl,
            session_ttl,
            codes: Mutex::new(Vec::new()),
        }
    }

    /// A new one-time code.
    pub fn new_code(&self) -> Result<String, ApiError> {
        // The key the session will need: a key that cannot be made fails here, where
        // `doc-serve open` shows the error, rather than in the browser.
        self.key()?;
        let code = hex(&random::<16>()?);
        let now = Instant::now();
        let mut codes = self.codes.lock().unwrap_or_else(|p| p.into_inner());
        codes.retain(|c| c.expires + self.code_ttl > now);
        if codes.iter().filter(|c| !c.used).count() >= MAX_CODES
            && let Some(at) = codes.iter().position(|c| !c.used)
        {
            codes.remove(at);
        }
        codes.push(Code {
            hash: Sha256::digest(code.as_bytes()).into(),
            expires: now + self.code_ttl,
            used: false,
        });
        Ok(code)
    }

    /// Trades `code` for a session bound to `port` (the local port the request came
    /// in on); a code is good once.
    pub fn redeem(&self, code: &str, port: u16) -> Result<Session, ApiError> {
        let hash: [u8; 32] = Sha256::digest(code.as_bytes()).into();
        let now = Instant::now();
        {
            let mut codes = self.codes.lock().unwrap_or_else(|p| p.into_inner());
            let again = "; run `doc-serve open` again for a new one";
            let Some(found) = codes.iter_mut().find(|c| c.hash == hash) else {
                return Err(refused(
                    "invalid_code",
                    format!(
                        "this login code is unknown here (never given out, given out \
                         before a restart, or pushed out by {MAX_CODES} newer ones){again}"
                    ),
                ));
            };
            if found.used {
                return Err(refused(
                    "code_used",
                    format!("this login code was already used (a code is good once){again}"),
                ));
            }
            if found.expires <= now {
                return Err(refused(
                    "code_expired",
                    format!(
                        "this login code expired (a code is good for {} s){again}",
                        self.code_ttl.as_secs()
                    ),
                ));
            }
            found.used = true;
        }
        let expires_at = unix_now() + self.session_ttl.as_secs();
        let nonce = hex(&random::<8>()?);
        let mac = self.mac(port, expires_at, &nonce)?;
        Ok(Session {
            session: format!("{SESSION_PREFIX}{expires_at}.{nonce}.{}", hex(&mac)),
            expires_at,
            expires_in: self.session_ttl.as_secs(),
        })
    }

    /// Checks a session token (starting with [`SESSION_PREFIX`]) sent to `port`.
    pub fn verify(&self, token: &str, port: u16) -> Result<(), ApiError> {
        let bad = || {
            refused(
                "bad_token",
                "this browser session is not valid here (made for another server or port, \
                 or session.key was replaced); run `doc-serve open` again",
            )
        };
        let rest = token.strip_prefix(SESSION_PREFIX).ok_or_else(bad)?;
        let mut parts = rest.split('.');
        let (Some(expires), Some(nonce), Some(mac), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(bad());
        };
        // One spelling only: no sign, no leading zeros.
        let expires_at: u64 = expires.parse().map_err(|_| bad())?;
        if expires_at.to_string() != expires {
            return Err(bad());
        }
        let want = hex(&self.mac(port, expires_at, nonce)?);
        if !super::gate::constant_time_eq(mac.as_bytes(), want.as_bytes()) {
            return Err(bad());
        }
        if expires_at <= unix_now() {
            return Err(refused(
                "session_expired",
                "this browser session has expired; run `doc-serve open` again",
            ));
        }
        Ok(())
    }

    fn mac(&self, port: u16, expires_at: u64, nonce: &str) -> Result<[u8; 32], ApiError> {
        let message = format!(
            "{SESSION_PREFIX}|{}|{port}|{expires_at}|{nonce}",
            self.scope
        );
        Ok(hmac_sha256(&self.key()?, message.as_bytes()))
    }

    /// The key, read or made at first need (not at start: most residents never see a
    /// browser).
    pub fn key(&self) -> Result<[u8; 32], ApiError> {
        let mut key = self.key.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(key) = *key {
            return Ok(key);
        }
        let made = load_or_make_key(&self.key_path).map_err(|e| {
            let e = ApiError::internal(format!(
                "cannot read or create the session key {}: {e}",
                self.key_path.display()
            ));
            tracing::error!("{}", e.message);
            e
        })?;
        *key = Some(made);
        Ok(made)
    }
}

fn refused(code: &'static str, message: impl Into<String>) -> ApiError {
    ApiError::new(StatusCode::UNAUTHORIZED, code, message)
}

/// The key in `path` (64 hex digits), or a new one put there. A new key is written
/// to a file of its own and linked into place, so another process never reads half
/// of one, and of two made at once both keep the one that got there first. A file
/// that holds no key (truncated, edited) or that others may read is replaced: it
/// could verify no session, or anyone could make them. Anything but a regular file
/// (a directory, a FIFO, a link) is refused, never opened.
fn load_or_make_key(path: &std::path::Path) -> std::io::Result<[u8; 32]> {
    use std::os::unix::fs::{FileTypeExt, MetadataExt};
    for _ in 0..3 {
        match std::fs::symlink_metadata(path) {
            Ok(meta) if !meta.file_type().is_file() => {
                let kind = match meta.file_type() {
                    t if t.is_dir() => "a directory",
                    t if t.is_symlink() => "a symbolic link",
                    t if t.is_fifo() => "a FIFO",
                    _ => "not a regular file",
                };
                return Err(std::io::Error::other(format!(
                    "it is {kind}; remove it (every browser session ends) and run \
                     `doc-serve open` again"
                )));
            }
            Ok(meta) => match read_key(path)? {
                Some(key) if meta.mode() & 0o077 == 0 => return Ok(key),
                found => {
                    let why = if found.is_some() {
                        "may be read by others"
                    } else {
                        "holds no session key"
                    };
                    tracing::warn!(
                        "{} {why}; writing a new one (browser sessions made before end)",
                        path.display()
                    );
                    std::fs::remove_file(path)?;
                }
            },
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
        let key = random::<32>().map_err(|e| std::io::Error::other(e.message))?;
        let tmp = path.with_extension(format!(
            "key.{}.{}",
            std::process::id(),
            hex(&random::<4>().map_err(|e| std::io::Error::other(e.message))?)
        ));
        let written =
            write_new(&tmp, hex(&key).as_bytes()).and_then(|()| std::fs::hard_link(&tmp, path));
        let _ = std::fs::remove_file(&tmp);
        match written {
            Ok(()) => return Ok(key),
            // Another process put its key there first: read that one.
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(e),
        }
    }
    Err(std::io::Error::other(
        "the key file kept changing while read",
    ))
}

/// A new 0600 file holding `bytes`, on the disk.
fn write_new(path: &std::path::Path, bytes: &[u8]) -> std::io::Result<()> {
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)?;
    file.write_all(bytes)?;
    file.sync_all()
}

/// `Ok(None)`: the file is there but holds no key. Opened without following a link
/// and without blocking (a FIFO put there since it was looked at).
fn read_key(path: &std::path::Path) -> std::io::Result<Option<[u8; 32]>> {
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(nix::libc::O_NOFOLLOW | nix::libc::O_NONBLOCK)
        .open(path)?;
    if !file.metadata()?.is_file() {
        return Ok(None);
    }
    let mut text = String::new();
    file.take(65)
        .read_to_string(&mut text)
        .or_else(|e| match e.kind() {
            std::io::ErrorKind::InvalidData => Ok(0),
            _ => Err(e),
        })?;
    let text = text.trim_end();
    if text.len() != 64 {
        return Ok(None);
    }
    let mut key = [0u8; 32];
    for (at, pair) in text.as_bytes().chunks(2).enumerate() {
        let Some(byte) = std::str::from_utf8(pair)
            .ok()
            .and_then(|p| u8::from_str_radix(p, 16).ok())
        else {
            return Ok(None);
        };
        key[at] = byte;
    }
    Ok(Some(key))
}

/// HMAC-SHA256 (RFC 2104) of `message` under a 32-byte key.
fn hmac_sha256(key: &[u8], message: &[u8]) -> [u8; 32] {
    let mut block = [0u8; 64];
    if key.len() > 64 {
        block[..32].copy_from_slice(&Sha256::digest(key));
    } else {
        block[..key.len()].copy_from_slice(key);
    }
    let pad = |byte: u8| block.map(|b| b ^ byte);
    let inner = Sha256::new()
        .chain_update(pad(0x36))
        .chain_update(message)
        .finalize();
    Sha256::new()
        .chain_update(pad(0x5c))
        .chain_update(inner)
        .finalize()
        .into()
}

fn random<const N: usize>() -> Result<[u8; N], ApiError> {
    let mut bytes = [0u8; N];
    getrandom::fill(&mut bytes).map_err(|e| ApiError::internal(format!("no random bytes: {e}")))?;
    Ok(bytes)
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hmac_matches_rfc_4231() {
        // Test cases 1, 2 and 6 (a key longer than a block).
        let cases: [(&[u8], &[u8], &str); 3] = [
            (
                &[0x0b; 20],
                b"Hi There",
                "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7",
            ),
            (
                b"Jefe",
                b"what do ya want for nothing?",
                "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843",
            ),
            (
                &[0xaa; 131],
                b"Test Using Larger Than Block-Size Key - Hash Key First",
                "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54",
            ),
        ];
        for (key, message, want) in cases {
            assert_eq!(hex(&hmac_sha256(key, message)), want);
        }
    }

    fn login(dir: &std::path::Path, code_ttl: Duration) -> Login {
        Login::new(
            dir.join("session.key"),
            "p_1".into(),
            code_ttl,
            Duration::from_secs(60),
        )
    }

    #[test]
    fn a_code_is_good_once_and_the_session_only_on_its_port() {
        let dir = tempfile::tempdir().unwrap();
        let login = login(dir.path(), Duration::from_secs(60));
        let code = login.new_code().unwrap();
        let session = login.redeem(&code, 4242).unwrap().session;
        assert_eq!(login.redeem(&code, 4242).unwrap_err().code, "code_used");
        assert_eq!(login.redeem("00", 4242).unwrap_err().code, "invalid_code");
        login.verify(&session, 4242).unwrap();
        assert_eq!(login.verify(&session, 4243).unwrap_err().code, "bad_token");
        // One bit of the MAC, of the expiry, a missing or extra part.
        let mut flipped = session.clone().into_bytes();
        let last = flipped.len() - 1;
        flipped[last] = if flipped[last] == b'0' { b'1' } else { b'0' };
        let flipped = String::from_utf8(flipped).unwrap();
        let (head, mac) = session.rsplit_once('.').unwrap();
        let later = session.replacen(SESSION_PREFIX, &format!("{SESSION_PREFIX}9"), 1);
        let padded = session.replacen(SESSION_PREFIX, &format!("{SESSION_PREFIX}0"), 1);
        let signed = session.replacen(SESSION_PREFIX, &format!("{SESSION_PREFIX}+"), 1);
        for bad in [
            flipped.as_str(),
            later.as_str(),
            padded.as_str(),
            signed.as_str(),
            head,
            &format!("{session}.x"),
            &format!("{SESSION_PREFIX}..{mac}"),
            SESSION_PREFIX,
        ] {
            assert_eq!(login.verify(bad, 4242).unwrap_err().code, "bad_token");
        }
        // Another process of the instance reads the same key.
        let other = super::tests::login(dir.path(), Duration::from_secs(60));
        other.verify(&session, 4242).unwrap();
        // A new key ends every session.
        std::fs::write(dir.path().join("session.key"), "short").unwrap();
        let fresh = super::tests::login(dir.path(), Duration::from_secs(60));
        assert_eq!(fresh.verify(&session, 4242).unwrap_err().code, "bad_token");
    }

    #[test]
    fn codes_expire_and_their_number_is_capped() {
        let dir = tempfile::tempdir().unwrap();
        let login = login(dir.path(), Duration::from_millis(30));
        let code = login.new_code().unwrap();
        std::thread::sleep(Duration::from_millis(40));
        assert_eq!(login.redeem(&code, 0).unwrap_err().code, "code_expired");
        let login = super::tests::login(dir.path(), Duration::from_secs(60));
        let first = login.new_code().unwrap();
        let last: Vec<String> = (0..MAX_CODES).map(|_| login.new_code().unwrap()).collect();
        assert_eq!(login.redeem(&first, 0).unwrap_err().code, "invalid_code");
        for code in &last {
            login.redeem(code, 0).unwrap();
        }
    }

    #[test]
    fn an_expired_session_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let login = Login::new(
            dir.path().join("session.key"),
            "p_1".into(),
            Duration::from_secs(60),
            Duration::ZERO,
        );
        let code = login.new_code().unwrap();
        let session = login.redeem(&code, 1).unwrap().session;
        assert_eq!(
            login.verify(&session, 1).unwrap_err().code,
            "session_expired"
        );
    }

    #[test]
    fn a_key_file_that_is_not_a_private_regular_file_is_never_used() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("session.key");
        // Readable by others: replaced.
        std::fs::write(&path, "ab".repeat(32)).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        let key = load_or_make_key(&path).unwrap();
        assert_ne!(hex(&key), "ab".repeat(32));
        assert_eq!(mode_of(&path), 0o600);
        // Refused, not opened: a directory, a FIFO (which would block), links.
        let other = dir.path().join("elsewhere");
        std::fs::write(&other, "cd".repeat(32)).unwrap();
        std::fs::set_permissions(&other, std::fs::Permissions::from_mode(0o600)).unwrap();
        type Make = fn(&std::path::Path, &std::path::Path);
        let makes: [(&str, Make); 4] = [
            ("a directory", |p, _| std::fs::create_dir(p).unwrap()),
            ("a FIFO", |p, _| {
                nix::unistd::mkfifo(p, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap()
            }),
            ("a symbolic link", |p, o| {
                std::os::unix::fs::symlink(o, p).unwrap()
            }),
            ("a symbolic link", |p, _| {
                std::os::unix::fs::symlink("/nonexistent", p).unwrap()
            }),
        ];
        for (kind, make) in makes {
            let _ = std::fs::remove_file(&path);
            let _ = std::fs::remove_dir(&path);
            make(&path, &other);
            let e = load_or_make_key(&path).unwrap_err().to_string();
            assert!(e.contains(kind) && e.contains("remove it"), "{kind}: {e}");
        }
    }

    #[test]
    fn requests_at_once_make_one_key() {
        for _ in 0..20 {
            let dir = tempfile::tempdir().unwrap();
            let login = std::sync::Arc::new(login(dir.path(), Duration::from_secs(60)));
            let keys: Vec<[u8; 32]> = (0..8)
                .map(|_| {
                    let login = login.clone();
                    std::thread::spawn(move || login.key().unwrap())
                })
                .collect::<Vec<_>>()
                .into_iter()
                .map(|t| t.join().unwrap())
                .collect();
            assert!(keys.iter().all(|k| *k == keys[0]));
            assert_eq!(
                load_or_make_key(&dir.path().join("session.key")).unwrap(),
                keys[0]
            );
            assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
        }
    }

    fn mode_of(path: &std::path::Path) -> u32 {
        use std::os::unix::fs::PermissionsExt;
        std::fs::metadata(path).unwrap().permissions().mode() & 0o777
    }

    #[test]
    fn the_key_file_is_private() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let key = load_or_make_key(&dir.path().join("session.key")).unwrap();
        let path = dir.path().join("session.key");
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        assert_eq!(load_or_make_key(&path).unwrap(), key);
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }
}
