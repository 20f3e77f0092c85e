//! The lifetime lock, the PID file, and the lock that serialises `start`.
//!
//! A resident holds an exclusive `flock` on doc-serve.lock for its whole life; the
//! kernel releases it when the process dies however it dies, so "lock free" is the one
//! reliable proof that no resident lives, whatever runtime.json or the PID file say.
//! flock belongs to the open file description: two opens in one process conflict, and
//! the descriptor is close-on-exec so spawned children never inherit it.

use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::fcntl::{Flock, FlockArg};

use crate::error::{Error, Result};
use crate::fsutil;

/// An exclusive flock, released on drop.
pub type FileLock = Flock<File>;

/// Takes an exclusive lock on `path` (created 0600) without blocking.
/// `Ok(None)` means another open file description holds it.
pub fn try_lock(path: &Path) -> io::Result<Option<FileLock>> {
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .open(path)?;
    match Flock::lock(file, FlockArg::LockExclusiveNonblock) {
        Ok(lock) => Ok(Some(lock)),
        Err((_, Errno::EWOULDBLOCK)) => Ok(None),
        Err((_, errno)) => Err(io::Error::from(errno)),
    }
}

/// Polls [`try_lock`] until it succeeds or `timeout` passes.
pub fn lock_within(path: &Path, timeout: Duration) -> io::Result<Option<FileLock>> {
    poll_lock(path, Instant::now() + timeout, Duration::from_millis(10))
}

fn poll_lock(path: &Path, deadline: Instant, every: Duration) -> io::Result<Option<FileLock>> {
    loop {
        if let Some(lock) = try_lock(path)? {
            return Ok(Some(lock));
        }
        if Instant::now() >= deadline {
            return Ok(None);
        }
        std::thread::sleep(every);
    }
}

/// Like [`lock_within`], but a waiter cannot be overtaken forever. flock wakes no one
/// in order, and a poller sleeps between tries, so a process that releases the lock
/// and asks again at once (a resident committing batch after batch) would win every
/// time. Here each taker first holds `<path>.queue` while it polls `path`, closely:
/// whoever releases `path` and wants it back queues behind the waiter that holds the
/// queue, which gets `path` next.
pub fn lock_fair_within(path: &Path, timeout: Duration) -> io::Result<Option<FileLock>> {
    let deadline = Instant::now() + timeout;
    let Some(_queue) = poll_lock(
        &path.with_extension("queue"),
        deadline,
        Duration::from_millis(2),
    )?
    else {
        return Ok(None);
    };
    poll_lock(path, deadline, Duration::from_millis(1))
}

/// Whether some process holds the lock on `path`. Takes and drops the lock when it is
/// free, so a resident starting at that instant must retry briefly (see
/// [`LifetimeLock::acquire`]).
pub fn is_held(path: &Path) -> io::Result<bool> {
    // An error other than "not found" (another user's state dir) is not "free": it
    // says nothing of who holds the lock.
    match std::fs::metadata(path) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(false),
        Err(e) => return Err(e),
        Ok(_) => {}
    }
    Ok(try_lock(path)?.is_none())
}

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

/// The process holding a `flock` on `path`, as the kernel lists it in /proc/locks
/// (Linux); `None` when nobody holds it, or where that cannot be read. flock records
/// the process that took the lock, which is the holder here: the descriptor is
/// close-on-exec, so no child inherits it.
pub fn holder(path: &Path) -> Option<u32> {
    let meta = std::fs::metadata(path).ok()?;
    let locks = std::fs::read_to_string("/proc/locks").ok()?;
    holder_in(&locks, meta.dev(), meta.ino())
}

/// The PID in `/proc/locks` text of a granted FLOCK on the file (`dev`, `ino`).
/// A line reads `1: FLOCK  ADVISORY  WRITE 4242 fd:01:1835017 0 EOF`: the device as
/// hexadecimal major:minor, then the inode; waiters' lines start `1: -> FLOCK`.
fn holder_in(locks: &str, dev: u64, ino: u64) -> Option<u32> {
    let (major, minor) = (libc::major(dev), libc::minor(dev));
    locks.lines().find_map(|line| {
        let fields: Vec<&str> = line.split_whitespace().collect();
        if fields.get(1) != Some(&"FLOCK") {
            return None;
        }
        let pid = fields.get(4)?.parse().ok()?;
        let mut file = fields.get(5)?.split(':');
        let maj = u32::from_str_radix(file.next()?, 16).ok()?;
        let min = u32::from_str_radix(file.next()?, 16).ok()?;
        let inode: u64 = file.next()?.parse().ok()?;
        (maj == major && min == minor && inode == ino).then_some(pid)
    })
}

/// Reads a PID file; `None` when absent or not a number.
pub fn read_pid(path: &Path) -> Option<u32> {
    let bytes = fsutil::read_small(path, 64).ok()??;
    std::str::from_utf8(&bytes).ok()?.trim().parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_waiter_goes_before_a_holder_asking_again() {
        use std::sync::Arc;
        use std::sync::atomic::{AtomicBool, Ordering};
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("index.lock");
        for _ in 0..5 {
            let held = lock_fair_within(&path, Duration::from_secs(1))
                .unwrap()
                .unwrap();
            let waited = Arc::new(AtomicBool::new(false));
            let (p, w) = (path.clone(), waited.clone());
            let waiter = std::thread::spawn(move || {
                let got = lock_fair_within(&p, Duration::from_secs(5)).unwrap();
                w.store(got.is_some(), Ordering::SeqCst);
                std::thread::sleep(Duration::from_millis(20));
            });
            std::thread::sleep(Duration::from_millis(50));
            drop(held);
            let again = lock_fair_within(&path, Duration::from_secs(5)).unwrap();
            assert!(again.is_some());
            assert!(waited.load(Ordering::SeqCst), "the waiter was overtaken");
            drop(again);
            waiter.join().unwrap();
        }
    }

    #[test]
    fn the_holder_is_read_from_proc_locks() {
        let dev = libc::makedev(0xfd, 1);
        let text = "1: POSIX  ADVISORY  WRITE 7 fd:01:99 0 EOF\n\
                    2: FLOCK  ADVISORY  WRITE 4242 fd:01:1835017 0 EOF\n\
                    2: -> FLOCK  ADVISORY  WRITE 5151 fd:01:1835017 0 EOF\n";
        assert_eq!(holder_in(text, dev, 1835017), Some(4242));
        assert_eq!(holder_in(text, dev, 99), None, "a POSIX lock is not ours");
        assert_eq!(holder_in(text, libc::makedev(8, 1), 1835017), None);
        if std::path::Path::new("/proc/locks").exists() {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("x.lock");
            assert_eq!(holder(&path), None);
            let held = try_lock(&path).unwrap().unwrap();
            assert_eq!(holder(&path), Some(std::process::id()));
            drop(held);
            assert_eq!(holder(&path), None);
        }
    }

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
