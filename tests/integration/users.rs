//! A second, unprivileged local user, created by the test, cannot query our resident:
//! not over TCP (it cannot read runtime.json, so it has no token, and every route but
//! /health answers 401 without one) and not over the Unix socket (0600, in a 0700 dir).
//!
//! The test's temp tree is opened up (0755) for this, so that only doc-serve's own
//! modes stand in the way; the same probe run as the owner succeeds, so a probe that
//! cannot get through is not a broken probe. Needs root (to create the user); outside
//! CI it skips without, saying why.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use serde_json::Value;

use crate::util::*;

/// A system user that exists for the length of a test.
pub struct OtherUser {
    name: String,
    uid: u32,
    gid: u32,
}

impl OtherUser {
    /// Creates the user, or `None` (a skip) where that cannot be done.
    pub fn create() -> Option<OtherUser> {
        let why = if !nix::unistd::Uid::effective().is_root() {
            Some("not root")
        } else if skip_without("useradd") {
            return None;
        } else {
            None
        };
        if let Some(why) = why {
            assert!(!in_ci(), "the second-user test must run in CI: {why}");
            eprintln!("SKIP: cannot create a second local user: {why}");
            return None;
        }
        let name = format!("dstest{}", std::process::id());
        let out = Command::new("useradd")
            .args(["--system", "--no-create-home", "--user-group"])
            .args(["--shell", "/usr/sbin/nologin", &name])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "useradd: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let user = nix::unistd::User::from_name(&name).unwrap().unwrap();
        Some(OtherUser {
            name,
            uid: user.uid.as_raw(),
            gid: user.gid.as_raw(),
        })
    }

    /// Makes `cmd` run as this user.
    pub fn runs(&self, cmd: &mut Command) {
        use std::os::unix::process::CommandExt;
        cmd.uid(self.uid).gid(self.gid);
    }

    /// Gives `path` and everything under it to this user.
    pub fn owns(&self, path: &Path) {
        let owner = format!("{}:{}", self.uid, self.gid);
        let out = Command::new("chown")
            .args(["-R", &owner])
            .arg(path)
            .output()
            .unwrap();
        assert!(out.status.success(), "chown: {out:?}");
    }

    /// What `probe` finds when run as this user (`as_owner`: as ourselves instead).
    pub fn probe(&self, t: &TestEnv, target: &Probe, as_owner: bool) -> Value {
        let mut cmd = Command::new("python3");
        cmd.args(["-c", PROBE])
            .arg(serde_json::to_string(&target.args(t)).unwrap())
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("HOME", "/nonexistent")
            .current_dir(&t.project);
        if !as_owner {
            use std::os::unix::process::CommandExt;
            cmd.uid(self.uid).gid(self.gid);
        }
        let out = cmd.output().unwrap();
        assert!(
            out.status.success(),
            "probe: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).unwrap()
    }
}

impl Drop for OtherUser {
    fn drop(&mut self) {
        let _ = Command::new("userdel").arg(&self.name).output();
    }
}

/// Where the probe knocks.
pub struct Probe<'a> {
    /// `host:port` of the resident's TCP listener.
    pub tcp: Option<&'a str>,
    /// The resident's Unix socket.
    pub unix: Option<&'a Path>,
    /// A word found in the project's docs.
    pub word: &'a str,
}

impl Probe<'_> {
    fn args(&self, t: &TestEnv) -> Value {
        serde_json::json!({
            "tcp": self.tcp,
            "unix": self.unix,
            "word": self.word,
            "bin": BIN,
            "doc": t.project.join("docs/a.md"),
            "runtime": t.state_file("runtime.json"),
            "state": t.state_dir(),
        })
    }
}

/// Each attempt is `{"ok": value}` or `{"error": exception class}`.
const PROBE: &str = r#"
import json, os, socket, subprocess, sys
a = json.loads(sys.argv[1])
out = {}
def attempt(name, f):
    try:
        out[name] = {"ok": f()}
    except Exception as e:
        out[name] = {"error": type(e).__name__}
def http(connect, path, headers=""):
    s = connect()
    s.settimeout(5)
    s.sendall(f"GET {path} HTTP/1.1\r\nHost: localhost\r\n{headers}Connection: close\r\n\r\n".encode())
    data = b""
    while chunk := s.recv(65536):
        data += chunk
    s.close()
    head, _, body = data.partition(b"\r\n\r\n")
    return {"status": int(head.split()[1]), "body": body.decode(errors="replace")[:300]}
attempt("read_doc", lambda: len(open(a["doc"]).read()))
attempt("read_runtime", lambda: len(open(a["runtime"]).read()))
attempt("list_state", lambda: os.listdir(a["state"]))
attempt("read_session_key", lambda: len(open(os.path.join(a["state"], "session.key")).read()))
q = "/query?q=" + a["word"]
if a["tcp"]:
    host, port = a["tcp"].rsplit(":", 1)
    tcp = lambda: socket.create_connection((host, int(port)))
    attempt("tcp_health", lambda: http(tcp, "/health"))
    attempt("tcp_query", lambda: http(tcp, q))
    attempt("tcp_query_wrong_token", lambda: http(tcp, q, "Authorization: Bearer " + "0" * 64 + "\r\n"))
    attempt("tcp_page", lambda: http(tcp, "/"))
    attempt("tcp_query_forged_session", lambda: http(tcp, q, "Authorization: Bearer dss1.9999999999.00." + "0" * 64 + "\r\n"))
if a["unix"]:
    def unix():
        s = socket.socket(socket.AF_UNIX)
        s.connect(a["unix"])
        return s
    attempt("unix_query", lambda: http(unix, q))
p = subprocess.run([a["bin"], "query", "--json", a["word"]], capture_output=True, timeout=60)
out["cli"] = {"code": p.returncode, "stdout": p.stdout.decode(errors="replace")[:300],
              "stderr": p.stderr.decode(errors="replace")[:300]}
print(json.dumps(out))
"#;

/// Opens `dir` and its parents up to the test's temp root to everyone (traverse and
/// read), so that only the modes doc-serve (or systemd) chose keep anyone out.
pub fn open_up(t: &TestEnv, dir: &Path) {
    use std::os::unix::fs::PermissionsExt;
    let root = t.root();
    let mut d = Some(dir);
    while let Some(p) = d.filter(|p| p.starts_with(&root)) {
        std::fs::set_permissions(p, std::fs::Permissions::from_mode(0o755)).unwrap();
        d = p.parent();
    }
}

/// What the other user must not get, and the owner must.
pub fn assert_kept_out(user: &Value, owner: &Value) {
    let err = |v: &Value, k: &str| v[k]["error"].as_str().map(String::from);
    // The probe itself works: the owner gets through everywhere it tries.
    for k in ["read_doc", "read_runtime", "list_state", "tcp_health"] {
        if owner.get(k).is_some() {
            assert!(owner[k].get("ok").is_some(), "owner {k}: {owner}");
        }
    }
    if owner.get("unix_query").is_some() {
        assert_eq!(owner["unix_query"]["ok"]["status"], 200, "{owner}");
    }
    assert_eq!(owner["cli"]["code"], 0, "{owner}");

    // The other user reaches the files and the port, but nothing of the resident's.
    assert!(user["read_doc"].get("ok").is_some(), "{user}");
    assert_eq!(
        err(user, "read_runtime").as_deref(),
        Some("PermissionError")
    );
    assert_eq!(err(user, "list_state").as_deref(), Some("PermissionError"));
    assert_eq!(
        err(user, "read_session_key").as_deref(),
        Some("PermissionError")
    );
    if user.get("tcp_health").is_some() {
        assert_eq!(user["tcp_health"]["ok"]["status"], 200, "{user}");
        // The page is public (it holds no data); a made-up session gets nothing.
        assert_eq!(user["tcp_page"]["ok"]["status"], 200, "{user}");
        assert_eq!(
            user["tcp_query_forged_session"]["ok"]["status"], 401,
            "{user}"
        );
        assert_eq!(user["tcp_query"]["ok"]["status"], 401, "{user}");
        assert_eq!(user["tcp_query_wrong_token"]["ok"]["status"], 401, "{user}");
    }
    if user.get("unix_query").is_some() {
        assert_eq!(err(user, "unix_query").as_deref(), Some("PermissionError"));
    }
    assert_eq!(user["cli"]["code"], 2, "{user}");
    assert!(
        !user["cli"]["stdout"]
            .as_str()
            .unwrap()
            .contains("docs/a.md"),
        "{user}"
    );
}

/// Skips (returns true) outside CI when other users cannot run `bin`: a directory on
/// its way that they may not enter, or the file itself; fails in CI.
fn skip_unless_others_can_run(bin: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    let mode = |p: &Path| std::fs::metadata(p).map_or(0, |m| m.permissions().mode());
    let Some(blocked) = bin.ancestors().find(|p| mode(p) & 0o001 == 0) else {
        return false;
    };
    assert!(
        !in_ci(),
        "{} is not reachable by other users in CI",
        blocked.display()
    );
    eprintln!(
        "SKIP: other users cannot reach {} ({} has no o+x): check out elsewhere",
        bin.display(),
        blocked.display()
    );
    true
}

#[test]
fn another_local_user_cannot_query_the_resident_over_tcp() {
    // The probe that connects as the other user is a python3 script, which runs the
    // binary as that user: a checkout under a private directory (root's 0700 home)
    // is out of its reach.
    if skip_without("python3") || skip_unless_others_can_run(Path::new(BIN)) {
        return;
    }
    let Some(user) = OtherUser::create() else {
        return;
    };
    let mut t = TestEnv::new();
    let docs = t.project.join("docs");
    std::fs::create_dir_all(&docs).unwrap();
    std::fs::write(
        docs.join("a.md"),
        "# Secrets\n\nThe vault combination is kept here.\n",
    )
    .unwrap();
    t.ok(&["init"]);
    t.spawn_serve(&[]);
    let rt = t.wait_runtime(Duration::from_secs(15));
    let addr = addr_of(&rt);
    open_up(&t, &docs);
    // A browser session made: the key that signs it is there to be tried.
    t.json(&["open", "--print", "--json"]);
    let probe = Probe {
        tcp: Some(&addr),
        unix: None,
        word: "vault",
    };
    let owner = user.probe(&t, &probe, true);
    assert!(owner["read_session_key"].get("ok").is_some(), "{owner}");
    let other = user.probe(&t, &probe, false);
    eprintln!("owner: {owner}\nother user: {other}");
    assert_kept_out(&other, &owner);

    // Nor can it stop the resident, and it is told why instead of "not running".
    for args in [&["stop"][..], &["status"]] {
        let mut cmd = std::process::Command::new(BIN);
        cmd.args(args)
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("HOME", "/nonexistent")
            .current_dir(&t.project);
        user.runs(&mut cmd);
        let out = cmd.output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {out:?}");
        assert!(err.contains("Permission denied"), "{args:?}: {err}");
        if args == ["stop"] {
            assert!(err.contains("belongs to uid 0"), "{err}");
        }
    }
    assert_eq!(t.json(&["status", "--json"])["state"], "running");
}
