//! Process identity: is PID n still the process that wrote our files?
//!
//! A PID alone proves nothing: after a crash the number can be reused by an unrelated
//! program, and `kill(pid, 0)` succeeds for it (and for zombies). On Linux the start
//! time (field 22 of /proc/PID/stat, in clock ticks since boot) plus the boot id pin a
//! process down exactly. Elsewhere only existence can be checked, and the health check
//! must do the rest.

use nix::errno::Errno;
use nix::sys::signal::kill;
use nix::unistd::Pid;
use serde::{Deserialize, Serialize};

/// What identifies a process beyond its PID.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Identity {
    /// Start time in clock ticks since boot (Linux).
    pub start_time: Option<u64>,
    /// The kernel's boot id (Linux).
    pub boot_id: Option<String>,
}

/// What became of a recorded process.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Liveness {
    /// Alive and the same process.
    Ours,
    /// No such process (or a zombie).
    Dead,
    /// The PID is alive but belongs to another process; it must never be signalled.
    Reused { name: Option<String> },
}

/// This process's identity.
pub fn own_identity() -> Identity {
    identity_of(std::process::id()).unwrap_or_default()
}

/// The identity of a live process, or `None` when it does not exist.
pub fn identity_of(pid: u32) -> Option<Identity> {
    if !exists(pid) {
        return None;
    }
    Some(Identity {
        start_time: linux::start_time(pid),
        boot_id: linux::boot_id(),
    })
}

/// Whether `pid` is still the process recorded with `expected`.
pub fn check(pid: u32, expected: &Identity) -> Liveness {
    let Some(now) = identity_of(pid) else {
        return Liveness::Dead;
    };
    if linux::is_zombie(pid) {
        return Liveness::Dead;
    }
    if differs(&expected.boot_id, &now.boot_id) || differs(&expected.start_time, &now.start_time) {
        return Liveness::Reused {
            name: linux::name(pid),
        };
    }
    Liveness::Ours
}

/// Both known and unequal: unknown values (another OS) cannot disprove identity.
fn differs<T: PartialEq>(a: &Option<T>, b: &Option<T>) -> bool {
    a.is_some() && b.is_some() && a != b
}

/// The command name of `pid` (Linux).
pub fn name(pid: u32) -> Option<String> {
    linux::name(pid)
}

/// Whether `pid` is stopped (SIGSTOP, a debugger): alive, but it will not act until
/// it gets SIGCONT (Linux; never elsewhere).
pub fn is_stopped(pid: u32) -> bool {
    linux::is_stopped(pid)
}

/// The processes of this user that hold a descriptor open on `path` after it was
/// deleted (Linux's `/proc/PID/fd` shows them as `PATH (deleted)`). Only
/// `doc-serve` processes are looked at.
pub fn holding_deleted(path: &std::path::Path) -> Vec<u32> {
    let want = format!("{} (deleted)", path.display());
    let me = std::process::id();
    let Ok(procs) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    procs
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|&pid| pid != me && linux::name(pid).as_deref() == Some("doc-serve"))
        .filter(|&pid| {
            std::fs::read_dir(format!("/proc/{pid}/fd"))
                .into_iter()
                .flatten()
                .flatten()
                .any(|fd| {
                    std::fs::read_link(fd.path())
                        .is_ok_and(|target| target.as_os_str() == want.as_str())
                })
        })
        .collect()
}

/// Whether a process with this PID exists (EPERM means it does, owned by someone else).
pub fn exists(pid: u32) -> bool {
    let Ok(raw) = i32::try_from(pid) else {
        return false;
    };
    if raw <= 0 {
        return false;
    }
    matches!(kill(Pid::from_raw(raw), None), Ok(()) | Err(Errno::EPERM))
}

#[cfg(target_os = "linux")]
mod linux {
    use std::fs;

    /// The fields after `comm`, which may itself contain spaces and parentheses.
    fn stat_fields(pid: u32) -> Option<Vec<String>> {
        let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
        let rest = &stat[stat.rfind(')')? + 1..];
        Some(rest.split_whitespace().map(String::from).collect())
    }

    pub fn start_time(pid: u32) -> Option<u64> {
        // Field 22 overall; fields after comm start at field 3.
        stat_fields(pid)?.get(22 - 3)?.parse().ok()
    }

    pub fn is_zombie(pid: u32) -> bool {
        stat_fields(pid).is_some_and(|f| f.first().is_some_and(|s| s == "Z" || s == "X"))
    }

    pub fn is_stopped(pid: u32) -> bool {
        stat_fields(pid).is_some_and(|f| f.first().is_some_and(|s| s == "T" || s == "t"))
    }

    pub fn boot_id() -> Option<String> {
        let id = fs::read_to_string("/proc/sys/kernel/random/boot_id").ok()?;
        Some(id.trim().to_owned())
    }

    pub fn name(pid: u32) -> Option<String> {
        Some(
            fs::read_to_string(format!("/proc/{pid}/comm"))
                .ok()?
                .trim()
                .to_owned(),
        )
    }
}

#[cfg(not(target_os = "linux"))]
mod linux {
    pub fn start_time(_: u32) -> Option<u64> {
        None
    }
    pub fn is_zombie(_: u32) -> bool {
        false
    }
    pub fn is_stopped(_: u32) -> bool {
        false
    }
    pub fn boot_id() -> Option<String> {
        None
    }
    pub fn name(_: u32) -> Option<String> {
        None
    }
}

/// The arguments `pid` was started with (Linux; empty elsewhere or when unreadable).
pub fn args_of(pid: u32) -> Vec<String> {
    std::fs::read(format!("/proc/{pid}/cmdline"))
        .unwrap_or_default()
        .split(|b| *b == 0)
        .filter(|a| !a.is_empty())
        .map(|a| String::from_utf8_lossy(a).into_owned())
        .collect()
}

/// Who listens on TCP `port`, as `pid N (name)`, when this user can see it: the
/// socket's inode from /proc/net/tcp{,6}, then the process holding it (Linux only).
pub fn tcp_listener_owner(port: u16) -> Option<String> {
    const LISTEN: &str = "0A";
    let mut sockets = Vec::new();
    for table in ["/proc/net/tcp", "/proc/net/tcp6"] {
        let Ok(text) = std::fs::read_to_string(table) else {
            continue;
        };
        for line in text.lines().skip(1) {
            let f: Vec<&str> = line.split_whitespace().collect();
            let Some((_, hex_port)) = f.get(1).and_then(|a| a.rsplit_once(':')) else {
                continue;
            };
            if f.len() > 9 && f[3] == LISTEN && u16::from_str_radix(hex_port, 16) == Ok(port) {
                sockets.push(std::path::PathBuf::from(format!("socket:[{}]", f[9])));
            }
        }
    }
    if sockets.is_empty() {
        return None;
    }
    for entry in std::fs::read_dir("/proc").ok()?.flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(fds) = std::fs::read_dir(entry.path().join("fd")) else {
            continue;
        };
        let holds = fds
            .flatten()
            .any(|fd| std::fs::read_link(fd.path()).is_ok_and(|t| sockets.contains(&t)));
        if holds {
            let name = std::fs::read_to_string(entry.path().join("comm")).unwrap_or_default();
            return Some(format!("pid {pid} ({})", name.trim()));
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn own_process_is_ours() {
        let me = own_identity();
        assert!(me.start_time.is_some() && me.boot_id.is_some());
        assert_eq!(check(std::process::id(), &me), Liveness::Ours);
    }

    #[test]
    fn reused_pid_is_detected() {
        let mut fake = own_identity();
        fake.start_time = fake.start_time.map(|t| t + 1);
        assert!(matches!(
            check(std::process::id(), &fake),
            Liveness::Reused { .. }
        ));
    }

    #[test]
    fn dead_pid_is_dead() {
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let pid = child.id();
        child.wait().unwrap();
        assert_eq!(check(pid, &Identity::default()), Liveness::Dead);
        assert!(!exists(0));
        assert!(!exists(u32::MAX));
    }
}
