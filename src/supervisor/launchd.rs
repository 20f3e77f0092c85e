//! launchd LaunchAgents (macOS): paths, plist rendering, `launchctl` commands, and
//! taking the sockets launchd passes.
//!
//! The agents are the templates in `launchd/` (compiled in): one per project, labelled
//! `dev.doc-serve.SLUG`, and one for the shared daemon. Rendering fills their `@NAME@`
//! placeholders in a single pass (an inserted value is never scanned again) and
//! XML-escapes every value; this file neither writes agents nor runs `launchctl`, which
//! is `install`'s job. launchd reads an agent only at `bootstrap`: after rewriting one,
//! boot the job out and bootstrap it again. It also refuses agents that others can
//! write, so install them with mode 0644 or stricter.
//!
//! Socket activation: launchd binds the `Sockets` of an agent, starts the job on the
//! first connection, and hands the descriptors over through libSystem's
//! `launch_activate_socket`. The FFI exists only on macOS; the `launchd-typecheck`
//! feature compiles it elsewhere so that CI type-checks it, but it is never called or
//! linked there ([`activate_sockets`] answers `Ok(None)` off macOS).

use std::io;
use std::os::fd::RawFd;
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

pub const AGENT_TEMPLATE: &str = include_str!("../../launchd/dev.doc-serve.instance.plist");
pub const SHARED_TEMPLATE: &str = include_str!("../../launchd/dev.doc-serve.shared.plist");
/// The `Sockets` key of both agents, which the server passes to [`activate_sockets`].
pub const SOCKET_NAME: &str = "doc-serve";
pub const SHARED_LABEL: &str = "dev.doc-serve.shared";
/// The shared daemon's TCP port, as in `systemd/doc-serve.socket`.
pub const SHARED_TCP_PORT: u16 = 45123;
/// The comment `install` puts in every agent it writes: `uninstall` removes only those.
pub const MARK: &str =
    "<!-- Written by `doc-serve install launchd`; `doc-serve uninstall launchd` removes it. -->";
/// `sun_path` is 104 bytes on macOS, including the terminating NUL.
const MAX_SOCKET_PATH: usize = 103;
const TCP_BEGIN: &str = "<!-- tcp: begin -->";
const TCP_END: &str = "<!-- tcp: end -->";

/// `dev.doc-serve.SLUG`. The slug `shared` would collide with [`SHARED_LABEL`]; the
/// instance registry must not hand it out.
pub fn label(slug: &str) -> String {
    format!("dev.doc-serve.{slug}")
}

/// `~/Library/LaunchAgents`.
pub fn agent_dir(home: &Path) -> PathBuf {
    home.join("Library").join("LaunchAgents")
}

/// `~/Library/LaunchAgents/dev.doc-serve.SLUG.plist`.
pub fn agent_path(home: &Path, slug: &str) -> PathBuf {
    agent_dir(home).join(format!("{}.plist", label(slug)))
}

/// `~/Library/LaunchAgents/dev.doc-serve.shared.plist`.
pub fn shared_agent_path(home: &Path) -> PathBuf {
    agent_dir(home).join(format!("{SHARED_LABEL}.plist"))
}

/// `~/Library/Caches/doc-serve/SLUG.sock`, checked against the `sun_path` limit.
///
/// Not `$TMPDIR`: it is already about 50 bytes long on macOS, and the system deletes
/// files there that nobody opened for three days, sockets included. The directory must
/// exist (mode 0700) before the agent is bootstrapped.
pub fn socket_path(home: &Path, slug: &str) -> Result<PathBuf> {
    let path = cache_dir(home).join(format!("{slug}.sock"));
    if path.as_os_str().len() > MAX_SOCKET_PATH {
        return Err(Error::Setting {
            name: "instance name".into(),
            message: format!(
                "the socket path {} is over {MAX_SOCKET_PATH} bytes, the macOS limit; \
                 choose a shorter --name",
                path.display()
            ),
        });
    }
    Ok(path)
}

/// `~/Library/Caches/doc-serve/shared.sock`, checked like [`socket_path`].
pub fn shared_socket_path(home: &Path) -> Result<PathBuf> {
    socket_path(home, "shared")
}

/// `~/Library/Logs/doc-serve/SLUG.log`, the agent's stderr. The directory must exist.
pub fn log_path(home: &Path, slug: &str) -> PathBuf {
    home.join("Library")
        .join("Logs")
        .join("doc-serve")
        .join(format!("{slug}.log"))
}

fn cache_dir(home: &Path) -> PathBuf {
    home.join("Library").join("Caches").join("doc-serve")
}

/// Checks that a path can stand in a plist as itself: valid UTF-8, and no control
/// characters other than tab and newline, which XML 1.0 cannot carry at all. `install`
/// calls it on every path before rendering; the renderers would otherwise substitute
/// U+FFFD and write an agent naming another file.
pub fn check_path(path: &Path) -> Result<()> {
    let bad = |why: &str| {
        Err(Error::Setting {
            name: "path".into(),
            message: format!(
                "{} {why}, which a launchd plist cannot hold",
                path.display()
            ),
        })
    };
    match path.to_str() {
        None => bad("is not valid UTF-8"),
        Some(s) if s.chars().any(|c| !xml_char(c)) => bad("contains a control character"),
        Some(_) => Ok(()),
    }
}

/// The per-project agent: `exe serve --instance SLUG`, listening on `socket` and, with
/// `tcp_port`, on 127.0.0.1:PORT, logging to `log`.
pub fn render_agent(
    exe: &Path,
    slug: &str,
    socket: &Path,
    tcp_port: Option<u16>,
    log: &Path,
) -> String {
    render(
        AGENT_TEMPLATE,
        &[
            ("EXE", path_str(exe)),
            ("SLUG", slug.to_owned()),
            ("SOCKET", path_str(socket)),
            ("LOG", path_str(log)),
        ],
        tcp_port,
    )
}

/// The shared daemon's agent: `exe serve --shared`, listening on `socket` and, with
/// `tcp_port` (usually [`SHARED_TCP_PORT`]), on 127.0.0.1:PORT, logging to `log`.
pub fn render_shared(exe: &Path, socket: &Path, tcp_port: Option<u16>, log: &Path) -> String {
    render(
        SHARED_TEMPLATE,
        &[
            ("EXE", path_str(exe)),
            ("SOCKET", path_str(socket)),
            ("LOG", path_str(log)),
        ],
        tcp_port,
    )
}

/// True when the agent at `path` was written by `install` (so removing it is ours).
pub fn written_by_us(path: &Path) -> bool {
    std::fs::read_to_string(path).is_ok_and(|s| s.contains(MARK))
}

/// `launchctl bootstrap gui/UID PLIST`: loads an agent into the user's GUI session.
/// It fails (EIO, "Bootstrap failed: 5") when the label is already loaded.
pub fn bootstrap_command(uid: u32, plist: &Path) -> Vec<String> {
    vec![
        "launchctl".into(),
        "bootstrap".into(),
        format!("gui/{uid}"),
        plist.display().to_string(),
    ]
}

/// `launchctl bootout gui/UID/LABEL`: stops the job if it runs, closes its sockets and
/// unloads it.
pub fn bootout_command(uid: u32, label: &str) -> Vec<String> {
    vec![
        "launchctl".into(),
        "bootout".into(),
        format!("gui/{uid}/{label}"),
    ]
}

/// Fills `@NAME@` placeholders from `values` (XML-escaped), then `@PORT@` and the TCP
/// block: kept with `tcp_port`, dropped without. One pass over the template, so a value
/// that contains `@SLUG@` stays literal. The mark goes right before `<plist`.
fn render(template: &str, values: &[(&str, String)], tcp_port: Option<u16>) -> String {
    let port = tcp_port.map(|p| p.to_string()).unwrap_or_default();
    let mut out = String::with_capacity(template.len() + MARK.len() + 256);
    let mut in_tcp = false;
    for line in template.lines() {
        let trimmed = line.trim();
        if trimmed == TCP_BEGIN || trimmed == TCP_END {
            in_tcp = trimmed == TCP_BEGIN;
            continue;
        }
        if in_tcp && tcp_port.is_none() {
            continue;
        }
        if trimmed.starts_with("<plist") {
            out.push_str(MARK);
            out.push('\n');
        }
        fill_line(line, values, &port, &mut out);
        out.push('\n');
    }
    out
}

fn fill_line(line: &str, values: &[(&str, String)], port: &str, out: &mut String) {
    let mut rest = line;
    while let Some(start) = rest.find('@') {
        let after = &rest[start + 1..];
        let name = after.find('@').map(|end| &after[..end]);
        let value = name.and_then(|name| match name {
            "PORT" => Some(port),
            _ => values
                .iter()
                .find(|(k, _)| *k == name)
                .map(|(_, v)| v.as_str()),
        });
        match (name, value) {
            (Some(name), Some(value)) => {
                out.push_str(&rest[..start]);
                escape_into(value, out);
                rest = &after[name.len() + 1..];
            }
            // Not a placeholder: keep the `@` and look further.
            _ => {
                out.push_str(&rest[..=start]);
                rest = after;
            }
        }
    }
    out.push_str(rest);
}

fn path_str(path: &Path) -> String {
    path.to_string_lossy().into_owned()
}

/// Characters XML 1.0 allows (the control characters it does not are replaced).
fn xml_char(c: char) -> bool {
    !matches!(c, '\0'..='\x08' | '\x0b' | '\x0c' | '\x0e'..='\x1f' | '\u{fffe}' | '\u{ffff}')
}

fn escape_into(value: &str, out: &mut String) {
    for c in value.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            // A literal CR would be read back as LF (XML end-of-line handling).
            '\r' => out.push_str("&#13;"),
            c if !xml_char(c) => out.push(char::REPLACEMENT_CHARACTER),
            c => out.push(c),
        }
    }
}

/// The descriptors launchd bound for the `Sockets` entry `name` of the job that started
/// this process; the caller owns them (and must not call this twice: EALREADY).
/// `Ok(None)` when launchd did not start us (ESRCH), the job has no such entry
/// (ENOENT), or off macOS.
pub fn activate_sockets(name: &str) -> io::Result<Option<Vec<RawFd>>> {
    #[cfg(target_os = "macos")]
    return activate::launch_activate(name);
    #[cfg(not(target_os = "macos"))]
    {
        let _ = name;
        Ok(None)
    }
}

/// The FFI, compiled on macOS and, type-checked only, with `launchd-typecheck`.
#[cfg(any(target_os = "macos", feature = "launchd-typecheck"))]
#[cfg_attr(not(target_os = "macos"), allow(dead_code))]
mod activate {
    use std::ffi::CString;
    use std::io;
    use std::os::fd::RawFd;

    use nix::libc::{self, c_char, c_int, size_t};

    // <launch.h>, macOS 10.10+. Returns 0 or an errno; on success `*fds` is a malloc'd
    // array of `*cnt` descriptors that the caller frees.
    unsafe extern "C" {
        fn launch_activate_socket(
            name: *const c_char,
            fds: *mut *mut c_int,
            cnt: *mut size_t,
        ) -> c_int;
    }

    pub(super) fn launch_activate(name: &str) -> io::Result<Option<Vec<RawFd>>> {
        let name = CString::new(name).map_err(|_| {
            io::Error::new(
                io::ErrorKind::InvalidInput,
                "socket name contains a NUL byte",
            )
        })?;
        let mut fds: *mut c_int = std::ptr::null_mut();
        let mut count: size_t = 0;
        // SAFETY: `name` is a NUL-terminated string that outlives the call; `fds` and
        // `count` are valid out-pointers.
        let rc = unsafe { launch_activate_socket(name.as_ptr(), &mut fds, &mut count) };
        match rc {
            0 => {}
            libc::ESRCH | libc::ENOENT => return Ok(None),
            errno => return Err(io::Error::from_raw_os_error(errno)),
        }
        if fds.is_null() {
            return Ok(Some(Vec::new()));
        }
        // SAFETY: on success `fds` points to `count` initialised ints, allocated with
        // malloc and owned by us: copied out, then freed exactly once.
        let list = unsafe { std::slice::from_raw_parts(fds, count) }.to_vec();
        unsafe { libc::free(fds.cast()) };
        Ok(Some(list))
    }
}

#[cfg(test)]
mod tests;
