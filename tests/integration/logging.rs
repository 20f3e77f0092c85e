//! Where logs go: journald only when stderr really is the journal stream.
//!
//! The journald case runs doc-serve in a private mount namespace with a tmpfs on /run
//! and a test-owned datagram socket at /run/systemd/journal/socket, so nothing on the
//! machine is touched. It needs root (as CI has); elsewhere it skips, saying why.

use std::os::unix::fs::MetadataExt;
use std::process::{Command, Stdio};
use std::time::Duration;

use crate::util::*;

const FAKE_JOURNALD: &str = r#"
import os, socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind("/run/systemd/journal/socket")
open(sys.argv[2], "w").close()
out = open(sys.argv[1], "ab", 0)
while True:
    out.write(s.recv(1 << 20) + b"\n\x1e\n")
"#;

#[test]
fn journald_when_stderr_is_the_journal_stream() {
    // python3 plays journald.
    if skip_without_mount_namespace() || skip_without("python3") {
        return;
    }
    let mut t = TestEnv::new();
    let root = t.root();
    let (journal, ready, err_path) = (
        root.join("journal.bin"),
        root.join("jd.ready"),
        root.join("stderr.log"),
    );
    std::fs::write(root.join("journald.py"), FAKE_JOURNALD).unwrap();
    let stderr = std::fs::File::create(&err_path).unwrap();
    let meta = stderr.metadata().unwrap();
    t.set("JOURNAL_STREAM", &format!("{}:{}", meta.dev(), meta.ino()));
    let script = format!(
        "mount -t tmpfs tmpfs /run && mkdir -p /run/systemd/journal && \
         (python3 {py} {journal} {ready} 2>/dev/null &) && \
         while [ ! -e {ready} ]; do sleep 0.02; done && \
         exec {BIN} --path {project} serve",
        py = root.join("journald.py").display(),
        journal = journal.display(),
        ready = ready.display(),
        project = t.project.display(),
    );
    let mut cmd = Command::new("unshare");
    cmd.args(["-m", "--propagation", "private", "sh", "-c", &script])
        .env_clear()
        .envs(t.env.iter().map(|(k, v)| (k, v)))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(stderr);
    let pid = t.spawn(cmd);
    t.wait_runtime(Duration::from_secs(15));
    let entry = wait_for(Duration::from_secs(10), "a journal entry", || {
        entries(&journal)
            .into_iter()
            .find(|e| message(e).starts_with("ready: serving"))
    });
    let has = |k: &str, v: &str| entry.contains(&(k.to_string(), v.to_string()));
    assert!(has("SYSLOG_IDENTIFIER", "doc-serve"), "{entry:?}");
    // tracing-journald maps INFO to 5 (notice) by default.
    assert!(has("PRIORITY", "5"), "{entry:?}");
    signal(pid, Signal::SIGTERM);
    assert_eq!(t.wait_child(pid, Duration::from_secs(10)), Some(0));
    let all = entries(&journal);
    assert!(
        all.iter().any(|e| message(e) == "stopping: SIGTERM"),
        "{all:?}"
    );
    let stderr_text = std::fs::read_to_string(&err_path).unwrap();
    assert!(
        !stderr_text.contains("ready"),
        "logs went to stderr too: {stderr_text}"
    );
}

type Entry = Vec<(String, String)>;

/// Parses the datagrams the fake journald saved (separated by "\n\x1e\n") in the
/// journal's native protocol: `KEY=value\n`, or `KEY\n` + u64 LE length + bytes + `\n`.
fn entries(path: &std::path::Path) -> Vec<Entry> {
    let bytes = std::fs::read(path).unwrap_or_default();
    let mut out = Vec::new();
    let mut rest = &bytes[..];
    let mut entry = Entry::new();
    while !rest.is_empty() {
        if let Some(r) = rest.strip_prefix(b"\n\x1e\n") {
            out.push(std::mem::take(&mut entry));
            rest = r;
            continue;
        }
        let Some(nl) = rest.iter().position(|b| *b == b'\n') else {
            break;
        };
        let line = &rest[..nl];
        if let Some(eq) = line.iter().position(|b| *b == b'=') {
            let (k, v) = (&line[..eq], &line[eq + 1..]);
            entry.push((
                String::from_utf8_lossy(k).into(),
                String::from_utf8_lossy(v).into(),
            ));
            rest = &rest[nl + 1..];
        } else {
            let Some(len) = rest.get(nl + 1..nl + 9) else {
                break;
            };
            let len = u64::from_le_bytes(len.try_into().unwrap()) as usize;
            let Some(v) = rest.get(nl + 9..nl + 9 + len) else {
                break;
            };
            entry.push((
                String::from_utf8_lossy(line).into(),
                String::from_utf8_lossy(v).into(),
            ));
            rest = rest.get(nl + 10 + len..).unwrap_or_default();
        }
    }
    out
}

fn message(entry: &Entry) -> &str {
    entry
        .iter()
        .find(|(k, _)| k == "MESSAGE")
        .map_or("", |(_, v)| v)
}

#[test]
fn inherited_journal_stream_of_another_file_means_stderr() {
    let mut t = TestEnv::new();
    // A JOURNAL_STREAM inherited from a parent service names some other file.
    let other = std::fs::metadata("/").unwrap();
    t.set(
        "JOURNAL_STREAM",
        &format!("{}:{}", other.dev(), other.ino()),
    );
    let pid = t.spawn_serve(&[]);
    t.wait_runtime(Duration::from_secs(15));
    let text = wait_for(Duration::from_secs(10), "stderr log", || {
        let s = std::fs::read_to_string(t.root().join("serve.err")).ok()?;
        s.contains("ready: serving").then_some(s)
    });
    assert!(
        !text.contains('\x1b'),
        "no colour codes when stderr is not a terminal: {text:?}"
    );
    signal(pid, Signal::SIGTERM);
    assert_eq!(t.wait_child(pid, Duration::from_secs(10)), Some(0));
}
