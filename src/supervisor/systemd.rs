//! systemd user units for a project instance: rendering, installing, removing, and
//! keeping instance sockets alive across upgrades.
//!
//! The units are the files in `systemd/` (compiled in). A distro package installs them
//! in `/usr/lib/systemd/user`; without one, `install` writes them to
//! `$XDG_CONFIG_HOME/systemd/user` with `ExecStart=` naming the running binary. A TCP
//! listener is a per-instance drop-in. Every systemctl call goes through [`systemctl`],
//! so `--dry-run` can print them instead.
//!
//! Upgrades: changing a socket unit's `ListenStream=` and reloading leaves the unit
//! "listening" with no descriptor behind it (clients get ECONNREFUSED until the socket
//! is restarted). [`dead_sockets`] finds such instances and the caller restarts them.

use std::path::{Path, PathBuf};
use std::process::Command;

use super::Cmd;
use super::registry::Instance;
use crate::error::{Error, Result};

pub const SOCKET_TEMPLATE: &str = include_str!("../../systemd/doc-serve@.socket");
pub const SERVICE_TEMPLATE: &str = include_str!("../../systemd/doc-serve@.service");
/// The first line of units written by `install`: `uninstall` removes only those.
pub const MARK: &str =
    "# Written by `doc-serve install systemd`; `doc-serve uninstall systemd` removes it.";
/// Where packages put user units.
const PACKAGED: [&str; 3] = [
    "/usr/lib/systemd/user",
    "/lib/systemd/user",
    "/usr/local/lib/systemd/user",
];
/// `sun_path` is 108 bytes, including the terminating NUL.
const MAX_SOCKET_PATH: usize = 107;

pub fn socket_unit(slug: &str) -> String {
    if slug == super::registry::RESERVED {
        return "doc-serve.socket".into();
    }
    format!("doc-serve@{slug}.socket")
}

pub fn service_unit(slug: &str) -> String {
    format!("doc-serve@{slug}.service")
}

/// `$XDG_CONFIG_HOME/systemd/user`.
pub fn user_unit_dir(config_home: &Path) -> PathBuf {
    config_home.join("systemd").join("user")
}

/// The directory of packaged units, when a package installed them.
pub fn packaged_unit_dir() -> Option<PathBuf> {
    PACKAGED
        .iter()
        .map(PathBuf::from)
        .find(|d| d.join("doc-serve@.service").is_file())
}

/// `%t/doc-serve/SLUG.sock`, checked against the `sun_path` limit.
pub fn socket_path(runtime_dir: &Path, slug: &str) -> Result<PathBuf> {
    let path = runtime_dir.join("doc-serve").join(format!("{slug}.sock"));
    if path.as_os_str().len() > MAX_SOCKET_PATH {
        return Err(Error::Setting {
            name: "instance name".into(),
            message: format!(
                "the socket path {} is over {MAX_SOCKET_PATH} bytes; choose a shorter --name",
                path.display()
            ),
        });
    }
    Ok(path)
}

/// The service unit with `ExecStart=` naming `exe`.
pub fn render_service(exe: &Path) -> String {
    // `%` starts a specifier in unit files; quotes keep a path with spaces one word.
    let exe = exe.display().to_string().replace('%', "%%");
    let exe = if exe.contains(char::is_whitespace) {
        format!("\"{exe}\"")
    } else {
        exe
    };
    let body = SERVICE_TEMPLATE.replace(
        "ExecStart=/usr/bin/doc-serve ",
        &format!("ExecStart={exe} "),
    );
    format!("{MARK}\n{body}")
}

/// The program of an `ExecStart=` value as [`render_service`] writes it (quoted when it
/// holds spaces, `%` doubled); `None` when there is none.
fn exec_binary(value: &str) -> Option<PathBuf> {
    let value = value
        .trim_start()
        .trim_start_matches(['-', '@', ':', '+', '!']);
    let program = match value.strip_prefix('"') {
        Some(rest) => rest.split('"').next()?,
        None => value.split_whitespace().next()?,
    };
    (!program.is_empty()).then(|| PathBuf::from(program.replace("%%", "%")))
}

pub fn render_socket() -> String {
    format!("{MARK}\n{SOCKET_TEMPLATE}")
}

/// The drop-in adding a TCP listener on 127.0.0.1.
pub fn render_tcp_dropin(port: u16) -> String {
    format!(
        "{MARK}\n# A TCP listener for clients that cannot use the Unix socket.\n\
         [Socket]\nListenStream=127.0.0.1:{port}\n"
    )
}

/// `$XDG_CONFIG_HOME/systemd/user/doc-serve@SLUG.socket.d/`.
pub fn dropin_dir(config_home: &Path, slug: &str) -> PathBuf {
    user_unit_dir(config_home).join(format!("{}.d", socket_unit(slug)))
}

/// True when a unit file at `path` was written by `install` (so removing it is ours).
pub fn written_by_us(path: &Path) -> bool {
    std::fs::read_to_string(path).is_ok_and(|s| s.starts_with(MARK))
}

/// One `systemctl --user` call.
pub fn systemctl(args: &[&str]) -> Cmd {
    let mut all = vec!["--user"];
    all.extend_from_slice(args);
    Cmd::new("systemctl", &all)
}

/// Instances whose socket unit is active but one of whose Unix socket files is gone:
/// the state a `daemon-reload` after a changed `ListenStream=` leaves (the unit says
/// "listening", no descriptor is behind the new path). Checked without connecting,
/// which would start the service.
pub fn dead_sockets<'a>(instances: impl IntoIterator<Item = &'a Instance>) -> Vec<&'a Instance> {
    instances
        .into_iter()
        .filter(|i| {
            let unit = socket_unit(&i.slug);
            systemctl(&["is-active", "--quiet", &unit]).check()
                && listen_paths(&unit).iter().any(|p| !is_socket(p))
        })
        .collect()
}

/// A property of a unit as the user manager has it (drop-ins included); `None` when
/// systemctl cannot tell.
fn show(unit: &str, property: &str) -> Option<String> {
    let out = Command::new("systemctl")
        .args([
            "--user",
            "show",
            &format!("--property={property}"),
            "--value",
            unit,
        ])
        .stdin(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .output()
        .ok()
        .filter(|out| out.status.success())?;
    Some(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// The Unix socket paths a socket unit is configured to listen on.
fn listen_paths(unit: &str) -> Vec<PathBuf> {
    show(unit, "Listen").map_or_else(Vec::new, |v| parse_listen(&v))
}

/// The absolute path of the program the service unit `service` runs: as the user
/// manager has it, else from the unit file (the user's, which `install` writes,
/// before a package's). `None` when it cannot be told, or is a bare name (looked up on
/// the manager's PATH).
pub fn service_program(config_home: &Path, service: &str) -> Option<PathBuf> {
    let shown = show(service, "ExecStart");
    let program = match shown.as_deref().map(str::trim).filter(|s| !s.is_empty()) {
        // `{ path=/usr/bin/doc-serve ; argv[]=... ; ... }`
        Some(shown) => shown
            .split_once("path=")
            .and_then(|(_, rest)| rest.split(" ; ").next())
            .map(PathBuf::from),
        None => {
            let unit = std::iter::once(user_unit_dir(config_home))
                .chain(packaged_unit_dir())
                .map(|dir| dir.join("doc-serve@.service"))
                .find(|unit| unit.is_file())?;
            std::fs::read_to_string(unit)
                .ok()?
                .lines()
                .find_map(|l| l.strip_prefix("ExecStart="))
                .and_then(exec_binary)
        }
    };
    program.filter(|p| p.is_absolute())
}

/// `Listen=` values, one per line: `/run/user/1000/doc-serve/x.sock (Stream)`.
fn parse_listen(text: &str) -> Vec<PathBuf> {
    text.lines()
        .filter_map(|l| l.trim().strip_suffix("(Stream)"))
        .map(str::trim)
        .filter(|a| a.starts_with('/'))
        .map(PathBuf::from)
        .collect()
}

fn is_socket(path: &Path) -> bool {
    use std::os::unix::fs::FileTypeExt;
    std::fs::symlink_metadata(path).is_ok_and(|m| m.file_type().is_socket())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_binary_is_read_back_from_exec_start() {
        for exe in ["/usr/bin/doc-serve", "/opt/my tools/doc-serve%1"] {
            let unit = render_service(Path::new(exe));
            let value = unit.lines().find_map(|l| l.strip_prefix("ExecStart="));
            assert_eq!(
                value.and_then(exec_binary),
                Some(PathBuf::from(exe)),
                "{unit}"
            );
        }
        assert_eq!(exec_binary(""), None);
        assert_eq!(exec_binary("\"\""), None);
    }

    #[test]
    fn service_names_the_binary() {
        let s = render_service(Path::new("/opt/my tools/doc-serve%1"));
        assert!(s.starts_with(MARK));
        assert!(
            s.contains("ExecStart=\"/opt/my tools/doc-serve%%1\" serve --instance %i"),
            "{s}"
        );
        assert!(!s.contains("/usr/bin/doc-serve serve"));
    }

    #[test]
    fn listen_property_gives_unix_paths() {
        let text = "/run/user/1/doc-serve/a.sock (Stream)\n127.0.0.1:8111 (Stream)\n";
        assert_eq!(
            parse_listen(text),
            [PathBuf::from("/run/user/1/doc-serve/a.sock")]
        );
        assert!(parse_listen("").is_empty());
    }

    #[test]
    fn socket_paths_fit_sun_path() {
        let ok = socket_path(Path::new("/run/user/1000"), "docs").unwrap();
        assert_eq!(ok, Path::new("/run/user/1000/doc-serve/docs.sock"));
        let deep = "/x".repeat(50);
        assert!(socket_path(Path::new(&deep), "docs").is_err());
    }

    #[test]
    fn templates_are_what_the_units_promise() {
        assert!(SOCKET_TEMPLATE.contains("ListenStream=%t/doc-serve/%i.sock"));
        assert!(SERVICE_TEMPLATE.contains("ExecStart=/usr/bin/doc-serve serve --instance %i"));
        assert!(SERVICE_TEMPLATE.contains("StartLimitIntervalSec=0"));
        assert!(render_tcp_dropin(8111).contains("ListenStream=127.0.0.1:8111"));
    }
}
