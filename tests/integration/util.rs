//! The test harness: a private HOME/XDG tree, a project, and the real binary.
//!
//! Every command runs with a cleared environment (PATH plus what the test sets), so
//! nothing from the developer's shell leaks in. Dropping a `TestEnv` kills every
//! process whose command line names its temp dir, so no resident outlives its test.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

pub use nix::sys::signal::Signal;
use nix::sys::signal::kill;
use nix::unistd::Pid;
use serde_json::Value;

pub const BIN: &str = env!("CARGO_BIN_EXE_doc-serve");

pub struct TestEnv {
    pub dir: tempfile::TempDir,
    pub project: PathBuf,
    pub env: Vec<(String, String)>,
    children: Vec<Child>,
}

impl TestEnv {
    /// A temp tree with `home/`, XDG dirs and a git-rooted `project/`.
    pub fn new() -> TestEnv {
        let dir = tempfile::Builder::new()
            .prefix("ds-test-")
            .tempdir()
            .unwrap();
        let root = dir.path().canonicalize().unwrap();
        let project = root.join("project");
        std::fs::create_dir_all(project.join(".git")).unwrap();
        let mut env = vec![(
            "PATH".to_string(),
            std::env::var("PATH").unwrap_or_default(),
        )];
        for (k, sub) in [
            ("HOME", "home"),
            ("XDG_CONFIG_HOME", "home/.config"),
            ("XDG_DATA_HOME", "home/.local/share"),
            ("XDG_STATE_HOME", "home/.local/state"),
            ("XDG_CACHE_HOME", "home/.cache"),
            ("XDG_RUNTIME_DIR", "run"),
        ] {
            let p = root.join(sub);
            std::fs::create_dir_all(&p).unwrap();
            env.push((k.into(), p.display().to_string()));
        }
        TestEnv {
            dir,
            project,
            env,
            children: Vec::new(),
        }
    }

    pub fn root(&self) -> PathBuf {
        self.dir.path().canonicalize().unwrap()
    }

    pub fn set(&mut self, key: &str, value: &str) {
        self.env.retain(|(k, _)| k != key);
        self.env.push((key.into(), value.into()));
    }

    pub fn state_dir(&self) -> PathBuf {
        self.project.join(".claude/doc-serve")
    }

    pub fn state_file(&self, name: &str) -> PathBuf {
        self.state_dir().join(name)
    }

    /// `doc-serve ARGS` in the project directory.
    pub fn cmd(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(BIN);
        cmd.args(args).current_dir(&self.project).env_clear();
        for (k, v) in &self.env {
            cmd.env(k, v);
        }
        cmd
    }

    pub fn run(&self, args: &[&str]) -> Output {
        self.cmd(args).output().unwrap()
    }

    /// Runs with `input` on stdin (closed after it), to the end.
    pub fn run_with_input(&self, args: &[&str], input: &[u8]) -> Output {
        use std::io::Write;
        use std::process::Stdio;
        let mut child = self
            .cmd(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        // Dropped at the end of the statement: stdin closes and the command ends.
        child.stdin.take().unwrap().write_all(input).unwrap();
        child.wait_with_output().unwrap()
    }

    /// Runs and asserts the exit code, returning stdout.
    pub fn ok(&self, args: &[&str]) -> String {
        self.expect(args, 0)
    }

    pub fn expect(&self, args: &[&str], code: i32) -> String {
        let out = self.run(args);
        assert_eq!(
            out.status.code(),
            Some(code),
            "doc-serve {args:?}\nstdout: {}\nstderr: {}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    pub fn json(&self, args: &[&str]) -> Value {
        self.json_code(args, 0)
    }

    pub fn json_code(&self, args: &[&str], code: i32) -> Value {
        serde_json::from_str(&self.expect(args, code)).unwrap()
    }

    /// Spawns a process that is killed when the env drops.
    pub fn spawn(&mut self, mut cmd: Command) -> u32 {
        let child = cmd.spawn().unwrap();
        let pid = child.id();
        self.children.push(child);
        pid
    }

    /// Kills `child` when the env drops.
    pub fn spawn_adopted(&mut self, child: Child) {
        self.children.push(child);
    }

    /// `doc-serve serve ARGS` in the foreground, stderr to `serve.err` in the temp dir.
    pub fn spawn_serve(&mut self, args: &[&str]) -> u32 {
        let mut full = vec!["serve"];
        full.extend_from_slice(args);
        let mut cmd = self.cmd(&full);
        let err = std::fs::File::create(self.root().join("serve.err")).unwrap();
        cmd.stdin(Stdio::null()).stdout(Stdio::null()).stderr(err);
        self.spawn(cmd)
    }

    /// Waits for the child with this PID, returning its exit code.
    pub fn wait_child(&mut self, pid: u32, timeout: Duration) -> Option<i32> {
        let idx = self.children.iter().position(|c| c.id() == pid).unwrap();
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if let Some(status) = self.children[idx].try_wait().unwrap() {
                return status.code();
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }

    pub fn runtime(&self) -> Value {
        serde_json::from_str(&std::fs::read_to_string(self.state_file("runtime.json")).unwrap())
            .unwrap()
    }

    /// Waits until runtime.json parses (a resident is ready).
    pub fn wait_runtime(&self, timeout: Duration) -> Value {
        wait_for(timeout, "runtime.json", || {
            let text = std::fs::read_to_string(self.state_file("runtime.json")).ok()?;
            serde_json::from_str(&text).ok()
        })
    }

    pub fn events(&self) -> Vec<Value> {
        std::fs::read_to_string(self.state_file("logs/events.jsonl"))
            .unwrap_or_default()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }
}

impl Drop for TestEnv {
    fn drop(&mut self) {
        for child in &mut self.children {
            let _ = child.kill();
            let _ = child.wait();
        }
        // Residents spawned by `start` are not our children: find them by the temp
        // dir in their command line, or (the shared daemon, `serve --shared`) in their
        // HOME.
        let marker = self.dir.path().to_string_lossy().into_owned();
        let canonical = self.root().to_string_lossy().into_owned();
        let home = format!("HOME={canonical}/home");
        for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
            let Ok(pid) = entry.file_name().to_string_lossy().parse::<i32>() else {
                continue;
            };
            let cmdline = std::fs::read(entry.path().join("cmdline")).unwrap_or_default();
            let cmdline = String::from_utf8_lossy(&cmdline);
            let environ = std::fs::read(entry.path().join("environ")).unwrap_or_default();
            let ours = environ.split(|b| *b == 0).any(|v| v == home.as_bytes());
            if pid as u32 != std::process::id()
                && (ours || cmdline.contains(&marker) || cmdline.contains(&canonical))
            {
                let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
            }
        }
    }
}

/// Sends a signal to a PID.
pub fn signal(pid: u32, sig: Signal) {
    kill(Pid::from_raw(pid as i32), sig).unwrap();
}

/// Polls `f` until it returns Some, panicking after `timeout`.
pub fn wait_for<T>(timeout: Duration, what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

pub fn alive(pid: u32) -> bool {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // A zombie has exited; only its exit status remains.
    !stat.is_empty()
        && !stat
            .rsplit(')')
            .next()
            .unwrap_or("")
            .trim_start()
            .starts_with('Z')
}

/// An HTTP answer read off the wire.
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub head: String,
    pub body: String,
}

impl Reply {
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("{e}: {}", self.body))
    }
}

/// Sends raw request bytes and reads one answer (the server closes or we read it all).
pub fn raw(addr: &str, request: &[u8]) -> Reply {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.write_all(request).unwrap();
    let mut buf = Vec::new();
    let _ = s.read_to_end(&mut buf);
    parse_reply(&buf)
}

pub fn parse_reply(buf: &[u8]) -> Reply {
    let text = String::from_utf8_lossy(buf).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    Reply {
        status,
        head: head.to_string(),
        body: body.to_string(),
    }
}

/// A request without a body: `line` (`GET /path`), then `headers` as given (no Host is
/// added) and `Connection: close`.
pub fn send(addr: &str, line: &str, headers: &[&str]) -> Reply {
    let mut req = format!("{line} HTTP/1.1\r\n");
    for h in headers {
        req.push_str(h);
        req.push_str("\r\n");
    }
    req.push_str("Connection: close\r\n\r\n");
    raw(addr, req.as_bytes())
}

/// GET with `Connection: close` and extra header lines.
pub fn get(addr: &str, path: &str, headers: &[&str]) -> Reply {
    let mut req = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
    for h in headers {
        req.push_str(h);
        req.push_str("\r\n");
    }
    req.push_str("\r\n");
    raw(addr, req.as_bytes())
}

/// `host:port` of a base_url.
pub fn addr_of(runtime: &Value) -> String {
    runtime["base_url"]
        .as_str()
        .unwrap()
        .trim_start_matches("http://")
        .to_string()
}

pub fn mode_of(path: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

/// True in CI, where tests must not skip.
pub fn in_ci() -> bool {
    std::env::var_os("CI").is_some()
}

/// Skips (returns true) outside CI when `tool` is missing; fails in CI.
pub fn skip_without(tool: &str) -> bool {
    let found = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).any(|d| d.join(tool).is_file()))
        .unwrap_or(false);
    if found {
        return false;
    }
    let package = package_of(tool);
    assert!(
        !in_ci(),
        "{tool} is required in CI (apt-get install {package})"
    );
    eprintln!("SKIP: {tool} is not installed (apt-get install {package})");
    true
}

/// Skips (returns true) outside CI when this process cannot make a private mount
/// namespace and run doc-serve in it, entered again with `nsenter` (not root, no
/// `unshare` or `nsenter`, or a container or chroot: `unshare -m` fails there, or
/// entering the namespace leaves the chroot); fails in CI, which runs as root on a
/// whole machine.
pub fn skip_without_mount_namespace() -> bool {
    if !nix::unistd::geteuid().is_root() {
        assert!(!in_ci(), "this test needs root in CI");
        eprintln!("SKIP: needs root for a private mount namespace");
        return true;
    }
    if skip_without("unshare") || skip_without("nsenter") {
        return true;
    }
    let probe = Command::new("unshare")
        .args(["-m", "--propagation", "private", "sh", "-c"])
        .args([r#"exec nsenter -t $$ -m -- "$0" --version"#, BIN])
        .output()
        .unwrap();
    if probe.status.success() {
        return false;
    }
    let why = String::from_utf8_lossy(&probe.stderr);
    assert!(!in_ci(), "unshare -m fails in CI: {why}");
    eprintln!("SKIP: no private mount namespace here (a container or chroot?): {why}");
    true
}

/// The Debian package that installs `tool`, for the skip's hint.
fn package_of(tool: &str) -> &str {
    match tool {
        "systemd-socket-activate" | "systemd-analyze" => "systemd",
        "unshare" | "nsenter" => "util-linux",
        "useradd" => "passwd",
        other => other,
    }
}

/// A free TCP port outside the kernel's ephemeral range (32768-60999 on Linux), so
/// that servers binding port 0 in parallel tests cannot be handed it meanwhile.
pub fn free_port() -> u16 {
    use std::sync::atomic::{AtomicU16, Ordering};
    static NEXT: AtomicU16 = AtomicU16::new(0);
    let seed = (std::process::id() % 5000) as u16;
    loop {
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let port = 20000 + (seed + n * 7) % 12000;
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
}

/// The index directory (`data/index-v…`) under a data dir.
pub fn index_dir_in(data_dir: &Path) -> PathBuf {
    std::fs::read_dir(data_dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| {
            p.file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with("index-v")
        })
        .unwrap()
}

/// The start time of `pid` (field 22 of /proc/PID/stat), as runtime.json records it.
pub fn start_time_of(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    stat.rsplit(')')
        .next()
        .unwrap()
        .split_whitespace()
        .nth(19)
        .unwrap()
        .parse()
        .unwrap()
}

/// Holds the project's index lock until dropped: no writer can commit meanwhile, a
/// resident's first index included.
pub fn hold_index_lock(t: &TestEnv) -> nix::fcntl::Flock<std::fs::File> {
    let data = t.state_dir().join("data");
    std::fs::create_dir_all(&data).unwrap();
    let file = std::fs::File::create(data.join(".index.lock")).unwrap();
    nix::fcntl::Flock::lock(file, nix::fcntl::FlockArg::LockExclusiveNonblock)
        .map_err(|(_, e)| e)
        .unwrap()
}

/// The paths of an answer's hits, in its order.
pub fn hit_paths(v: &Value) -> Vec<String> {
    v["hits"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["path"].as_str().unwrap().to_owned())
        .collect()
}
