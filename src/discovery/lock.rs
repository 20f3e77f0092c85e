//! The lifetime lock and the PID file written under it.
//!
//! A resident holds an exclusive `flock` ([`crate::flock`]) on doc-serve.lock for its
//! whole life; the kernel releases it when the process dies however it dies, so "lock
//! free" is the one reliable proof that no resident lives, whatever runtime.json or the
//! PID file say.

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::error::{Error, Result};
use crate::flock::{FileLock, lock_within};
use crate::fsutil;

/// The resident's lifetime lock plus the PID file written under it.
#[derive(Debug)]
pub struct LifetimeLock {
    lock: FileLock,
    lock_file: PathBuf,
    pid_file: PathBuf,
}

/// How long a starting resident retries a busy lock: long enough to ride over a
/// client's momentary probe, short enough to fail fast beside a live resident.
const ACQUIRE_GRACE: Duration = Duration::from_millis(1000);

impl LifetimeLock {
    /// Takes the lock and writes our PID; `Ok(None)` when a resident already holds it.
    pub fn acquire(lock_file: &Path, pid_file: &Path) -> Result<Option<LifetimeLock>> {
        let ctx = |e| Error::io(format!("cannot lock {}", lock_file.display()), e);
        let Some(lock) = lock_within(lock_file, ACQUIRE_GRACE).map_err(ctx)? else {
            return Ok(None);
        };
        let pid = format!("{}\n", std::process::id());
        fsutil::write_atomic(pid_file, pid.as_bytes(), 0o600)?;
        Ok(Some(LifetimeLock {
            lock,
            lock_file: lock_file.to_path_buf(),
            pid_file: pid_file.to_path_buf(),
        }))
    }

    /// Whether the file at the lock's path is still the one this lock holds. A `git
    /// clean -fdX`, or a project directory deleted and made again, removes or replaces
    /// it: then another process can lock the new file while this one holds the old,
    /// and two residents would serve one project.
    pub fn is_current(&self) -> bool {
        let Some(held) = self.file_id() else {
            return false;
        };
        std::fs::metadata(&self.lock_file)
            .is_ok_and(|at_path| (at_path.dev(), at_path.ino()) == held)
    }

    /// Where the locked file is now, when it still has a name (Linux: the
    /// descriptor's link in /proc): after the project moved, the lock file moved with
    /// it.
    pub fn path_now(&self) -> Option<PathBuf> {
        use std::os::fd::AsRawFd;
        let now = std::fs::read_link(format!("/proc/self/fd/{}", self.lock.as_raw_fd())).ok()?;
        let deleted = now.to_string_lossy().ends_with(" (deleted)");
        (!deleted && now.is_absolute()).then_some(now)
    }

    /// The locked file's device and inode.
    pub fn file_id(&self) -> Option<(u64, u64)> {
        let held = self.lock.metadata().ok()?;
        Some((held.dev(), held.ino()))
    }

    /// Removes the PID file, then releases the lock: in that order, so nobody sees a
    /// PID file that no lock stands behind. A lock that is no longer
    /// [current](Self::is_current) leaves the files at its paths alone: they are
    /// another resident's, or nobody's.
    pub fn release(self) {
        // A lock file that moved (with its project) has our PID file beside it.
        let pid_file = if self.is_current() {
            Some(self.pid_file.clone())
        } else {
            self.path_now()
                .and_then(|p| Some(p.parent()?.join(self.pid_file.file_name()?)))
        };
        if let Some(pid_file) = pid_file
            && read_pid(&pid_file) == Some(std::process::id())
            && let Err(e) = fsutil::remove_if_exists(&pid_file)
        {
            tracing::warn!("cannot remove {}: {e}", pid_file.display());
        }
        drop(self.lock);
    }
}

/// Reads a PID file; `None` when absent or not a number.
pub fn read_pid(path: &Path) -> Option<u32> {
    let bytes = fsutil::read_small(path, 64).ok()??;
    std::str::from_utf8(&bytes).ok()?.trim().parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::flock::{is_held, try_lock};

    #[test]
    fn a_lock_whose_file_was_replaced_is_not_current() {
        let dir = tempfile::tempdir().unwrap();
        let (l, p) = (dir.path().join("x.lock"), dir.path().join("x.pid"));
        let first = LifetimeLock::acquire(&l, &p).unwrap().unwrap();
        assert!(first.is_current());
        std::fs::remove_file(&l).unwrap();
        std::fs::remove_file(&p).unwrap();
        assert!(!first.is_current());
        let second = LifetimeLock::acquire(&l, &p).unwrap().unwrap();
        assert!(!first.is_current() && second.is_current());
        std::fs::write(&p, "1\n").unwrap();
        first.release();
        assert_eq!(
            read_pid(&p),
            Some(1),
            "another resident's PID file was removed"
        );
        second.release();
    }

    #[test]
    fn second_holder_is_refused_until_release() {
        let dir = tempfile::tempdir().unwrap();
        let (l, p) = (dir.path().join("x.lock"), dir.path().join("x.pid"));
        assert!(!is_held(&l).unwrap());
        let first = LifetimeLock::acquire(&l, &p).unwrap().unwrap();
        assert_eq!(read_pid(&p), Some(std::process::id()));
        assert!(is_held(&l).unwrap());
        assert!(try_lock(&l).unwrap().is_none());
        first.release();
        assert!(!p.exists());
        assert!(!is_held(&l).unwrap());
        // The lock file itself stays: deleting it would let two holders lock two inodes.
        assert!(l.exists());
    }
}
