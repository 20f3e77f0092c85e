//! Exclusive `flock`s on files: taken at once, within a time, or in turn; and who
//! holds one.
//!
//! flock belongs to the open file description: two opens in one process conflict, and
//! the descriptor is close-on-exec so spawned children never inherit it. The kernel
//! releases a lock when its holder dies however it dies. Lock files are never deleted
//! here: deleting one while it is held would let a second holder lock a new inode.

use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::Path;
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::fcntl::{Flock, FlockArg};

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
/// free, so a taker at that instant must retry briefly (the lifetime lock does).
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
}
