//! A full disk under the index: one clear error naming the directory, an `error`
//! event, no files left by the batch that failed, nothing committed lost, and indexing
//! resumes once there is room, standalone and in a resident.
//!
//! The index lives on a 3 MiB tmpfs mounted in a private mount namespace (held by a
//! `sleep`, killed with the test), and doc-serve runs in that namespace through
//! `nsenter`; the test reaches the tmpfs through `/proc/<pid>/root`. It needs root (as
//! CI has); elsewhere it skips, saying why.

use std::collections::BTreeSet;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use serde_json::Value;

use crate::util::*;

const WAIT: Duration = Duration::from_secs(20);
/// Files of made-up words, enough that their index does not fit in what is left.
const BIG_FILES: usize = 20;

/// A small disk: the PID holding its mount namespace, and its mount point.
struct SmallDisk {
    pid: u32,
    mnt: PathBuf,
}

impl SmallDisk {
    /// Mounts it, or `None` (a skip) outside CI without root.
    fn mount(t: &mut TestEnv) -> Option<SmallDisk> {
        if skip_without_mount_namespace() {
            return None;
        }
        let mnt = t.root().join("small");
        let ready = t.root().join("small.ready");
        std::fs::create_dir_all(&mnt).unwrap();
        let script = format!(
            "mount -t tmpfs -o size=3m tmpfs {} && touch {} && exec sleep 600",
            mnt.display(),
            ready.display()
        );
        let mut cmd = Command::new("unshare");
        cmd.args(["-m", "--propagation", "private", "sh", "-c", &script])
            .stdin(Stdio::null());
        let pid = t.spawn(cmd);
        wait_for(WAIT, "the tmpfs", || ready.exists().then_some(()));
        t.set(
            "DOC_SERVE_DATA_DIR",
            &mnt.join("data").display().to_string(),
        );
        Some(SmallDisk { pid, mnt })
    }

    /// A path on the tmpfs, as this process reaches it.
    fn path(&self, rel: &str) -> PathBuf {
        let inner = self.mnt.join(rel);
        PathBuf::from(format!("/proc/{}/root{}", self.pid, inner.display()))
    }

    /// `doc-serve ARGS` in the tmpfs's mount namespace.
    fn cmd(&self, t: &TestEnv, args: &[&str]) -> Command {
        // Entering a mount namespace moves to its root: --wd names the directory.
        let wd = format!("--wd={}", t.project.display());
        let mut cmd = Command::new("nsenter");
        let project = t.project.display().to_string();
        cmd.args(["-t", &self.pid.to_string(), "-m", &wd, "--", BIN])
            .args(["--path", &project])
            .args(args)
            .current_dir(&t.project)
            .env_clear()
            .envs(t.env.iter().map(|(k, v)| (k, v)));
        cmd
    }

    fn run(&self, t: &TestEnv, args: &[&str]) -> Output {
        self.cmd(t, args).output().unwrap()
    }

    /// Fills the disk but for about `room` bytes.
    fn fill(&self, room: u64) {
        let path = self.path("filler");
        let mut f = std::fs::File::create(&path).unwrap();
        let chunk = vec![0u8; 64 << 10];
        while f.write_all(&chunk).is_ok() {}
        let len = f.metadata().unwrap().len();
        f.set_len(len.saturating_sub(room)).unwrap();
    }

    fn free(&self) {
        std::fs::remove_file(self.path("filler")).unwrap();
    }

    /// The index's directory on the tmpfs.
    fn index_dir(&self) -> PathBuf {
        index_dir_in(&self.path("data"))
    }

    /// Fails if the index directory holds a file of a segment its last commit does
    /// not name: what a failed batch wrote must be gone.
    fn assert_no_leftovers(&self) {
        let dir = self.index_dir();
        let meta: Value =
            serde_json::from_slice(&std::fs::read(dir.join("meta.json")).unwrap()).unwrap();
        let live: BTreeSet<String> = meta["segments"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s["segment_id"].as_str().unwrap().replace('-', ""))
            .collect();
        let on_disk: BTreeSet<String> = std::fs::read_dir(&dir)
            .unwrap()
            .filter_map(|e| {
                let name = e.unwrap().file_name().into_string().unwrap();
                let (stem, _) = name.split_once('.')?;
                (stem.len() == 32).then(|| stem.to_owned())
            })
            .collect();
        assert_eq!(on_disk, live, "files of segments no commit refers to");
    }
}

/// Writes the files whose index does not fit; each holds `bigword<n>`.
fn write_big_files(project: &Path) {
    let mut seed: u64 = 0x5eed;
    let mut next = |n: u64| {
        seed = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (seed >> 33) % n
    };
    let mut word = || {
        let len = 4 + next(8);
        (0..len)
            .map(|_| (b'a' + next(26) as u8) as char)
            .collect::<String>()
    };
    for n in 0..BIG_FILES {
        let mut text = format!("# Big {n}\n\nbigword{n}\n\n");
        while text.len() < 30_000 {
            let line: Vec<String> = (0..12).map(|_| word()).collect();
            text.push_str(&line.join(" "));
            text.push('\n');
        }
        std::fs::write(project.join(format!("big{n}.md")), text).unwrap();
    }
}

fn error_events(t: &TestEnv) -> Vec<String> {
    t.events()
        .iter()
        .filter(|e| e["event"] == "error")
        .map(|e| e["message"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn a_full_disk_is_one_clear_error_and_indexing_resumes_standalone() {
    let mut t = TestEnv::new();
    let Some(disk) = SmallDisk::mount(&mut t) else {
        return;
    };
    std::fs::write(t.project.join("a.md"), "# A\n\nalphaword\n").unwrap();
    let out = disk.run(&t, &["index"]);
    assert_eq!(out.status.code(), Some(0), "{out:?}");

    disk.fill(100 << 10);
    write_big_files(&t.project);
    let out = disk.run(&t, &["index"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    let lower = stderr.to_lowercase();
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert_eq!(
        lower.matches("no space left on device").count(),
        1,
        "{stderr}"
    );
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    let data = disk.mnt.join("data").display().to_string();
    assert!(stderr.contains(&data), "{stderr}");
    assert!(
        !lower.contains("ioerror") && !lower.contains("storagefull"),
        "{stderr}"
    );
    let errors = error_events(&t);
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert!(errors[0].contains("no space left on device"), "{errors:?}");
    disk.assert_no_leftovers();

    // What was committed before is all there.
    let out = disk.run(&t, &["query", "--json", "alphaword"]);
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["hits"][0]["path"], "a.md", "{v}");

    disk.free();
    let out = disk.run(&t, &["index", "--json"]);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["summary"]["added"], BIG_FILES, "{v}");
    let out = disk.run(&t, &["query", "--json", "bigword7"]);
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["hits"][0]["path"], "big7.md", "{v}");
    disk.assert_no_leftovers();
}

#[test]
fn a_full_disk_is_one_clear_error_and_indexing_resumes_in_a_resident() {
    let mut t = TestEnv::new();
    let Some(disk) = SmallDisk::mount(&mut t) else {
        return;
    };
    std::fs::write(t.project.join("a.md"), "# A\n\nalphaword\n").unwrap();
    t.set("DOC_SERVE_DEBOUNCE_MS", "50");
    let mut serve = disk.cmd(&t, &["serve"]);
    let err = std::fs::File::create(t.root().join("serve.err")).unwrap();
    serve.stdin(Stdio::null()).stdout(Stdio::null()).stderr(err);
    t.spawn(serve);
    let rt = t.wait_runtime(WAIT);
    let addr = addr_of(&rt);
    let auth = format!("Authorization: Bearer {}", rt["token"].as_str().unwrap());
    let status = || get(&addr, "/status", &[&auth]).json()["index"].clone();
    let hits = |word: &str| {
        let v = get(&addr, &format!("/query?q={word}"), &[&auth]).json();
        v["hits"].as_array().unwrap().len()
    };
    wait_for(WAIT, "the first index", || {
        let s = status();
        (s["watcher"] == "watching" && s["indexing"] == false && s["files"] == 1).then_some(())
    });

    disk.fill(100 << 10);
    write_big_files(&t.project);
    let error = wait_for(WAIT, "the error in /status", || {
        status()["last_error"].as_str().map(String::from)
    });
    assert!(error.contains("no space left on device"), "{error}");
    assert!(
        error.contains(&disk.mnt.join("data").display().to_string()),
        "{error}"
    );
    let errors = error_events(&t);
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert_eq!(errors[0], error);
    // The failed job's lease is gone (and its files with it) once the job is over.
    wait_for(WAIT, "the failed job's end", || {
        (status()["indexing"] == false).then_some(())
    });
    disk.assert_no_leftovers();
    assert_eq!(hits("alphaword"), 1, "what was indexed before is lost");

    // Room again: the next saved file starts a walk, which indexes all that waits.
    disk.free();
    std::fs::write(t.project.join("tiny.md"), "# Tiny\n\ntinyword\n").unwrap();
    wait_for(WAIT, "everything indexed", || {
        (hits("tinyword") == 1 && hits("bigword7") == 1).then_some(())
    });
    let s = status();
    assert_eq!(s["last_error"], Value::Null, "{s}");
    assert_eq!(s["files"], BIG_FILES + 2, "{s}");
    disk.assert_no_leftovers();
}
