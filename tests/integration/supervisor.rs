//! systemd owns the socket: `doc-serve install systemd` under a private `systemd --user`
//! manager, socket activation, idle exits, restarts, upgrades and uninstall.
//!
//! The manager runs as root in a private mount namespace (it needs
//! /run/systemd/system, which is created only inside that namespace) with its own
//! XDG_RUNTIME_DIR and XDG_CONFIG_HOME in the test's temp dir, and is stopped by its PID
//! (it stops its units first). Outside CI, without root or systemd, the test skips.

use std::collections::HashMap;
use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::json;

use crate::util::*;

const SYSTEMD: &str = "/usr/lib/systemd/systemd";

struct UserManager {
    child: Child,
    env: Vec<(String, String)>,
}

impl UserManager {
    /// Starts a manager for `t`'s HOME and XDG dirs, or None (skip) where it cannot run.
    fn start(t: &TestEnv) -> Option<UserManager> {
        let why = if !nix::unistd::Uid::effective().is_root() {
            Some("not root")
        } else if !Path::new(SYSTEMD).exists() {
            Some("systemd is not installed (apt-get install systemd)")
        } else {
            None
        };
        if let Some(why) = why {
            assert!(!in_ci(), "the systemd tests must run in CI: {why}");
            eprintln!("SKIP: a private systemd --user manager cannot run here: {why}");
            return None;
        }
        let env: Vec<(String, String)> = t
            .env
            .iter()
            .filter(|(k, _)| {
                ["PATH", "HOME", "XDG_CONFIG_HOME", "XDG_RUNTIME_DIR"].contains(&k.as_str())
            })
            .cloned()
            .collect();
        let log = std::fs::File::create(t.root().join("manager.log")).unwrap();
        let child = Command::new("unshare")
            .args(["-m", "--propagation", "private", "sh", "-c"])
            .arg(format!(
                "mount -t tmpfs tmpfs /run/systemd && mkdir /run/systemd/system && exec {SYSTEMD} --user"
            ))
            .env_clear()
            .envs(env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap();
        let m = UserManager { child, env };
        let private = PathBuf::from(m.var("XDG_RUNTIME_DIR")).join("systemd/private");
        wait_for(Duration::from_secs(20), "the user manager", || {
            (private.exists() && m.systemctl(&["is-system-running"]).status.code().is_some())
                .then_some(())
        });
        Some(m)
    }

    fn var(&self, name: &str) -> String {
        self.env.iter().find(|(k, _)| k == name).unwrap().1.clone()
    }

    fn systemctl(&self, args: &[&str]) -> Output {
        Command::new("systemctl")
            .arg("--user")
            .args(args)
            .env_clear()
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .output()
            .unwrap()
    }

    fn show(&self, unit: &str) -> HashMap<String, String> {
        let out = self.systemctl(&[
            "show",
            unit,
            "-p",
            "ActiveState,SubState,Result,StatusText,MainPID,ExecMainStatus,NRestarts,InvocationID",
        ]);
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter_map(|l| l.split_once('='))
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn wait_state(
        &self,
        unit: &str,
        what: &str,
        ok: impl Fn(&HashMap<String, String>) -> bool,
    ) -> HashMap<String, String> {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let s = self.show(unit);
            if ok(&s) {
                return s;
            }
            assert!(Instant::now() < deadline, "{unit}: no {what}: {s:?}");
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for UserManager {
    fn drop(&mut self) {
        signal(self.child.id(), Signal::SIGTERM);
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// GET over a Unix socket.
fn unix_get(path: &Path, target: &str) -> Reply {
    let mut s = UnixStream::connect(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    write!(
        s,
        "GET {target} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut buf = Vec::new();
    s.read_to_end(&mut buf).unwrap();
    parse_reply(&buf)
}

/// `doc-serve doctor`'s one check named `name`.
fn doctor(t: &TestEnv, name: &str) -> serde_json::Value {
    let out = t.run(&["doctor", "--json"]);
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let mut found = report["checks"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["check"] == name);
    let check = found.next().unwrap().clone();
    assert!(found.next().is_none(), "{report}");
    check
}

fn pid_of(s: &HashMap<String, String>) -> u32 {
    s["MainPID"].parse().unwrap()
}

#[test]
fn systemd_user_manager_owns_the_socket() {
    let t = TestEnv::new();
    let Some(m) = UserManager::start(&t) else {
        return;
    };
    let docs = t.project.join("docs");
    std::fs::create_dir_all(&docs).unwrap();
    std::fs::write(
        docs.join("a.md"),
        "# Sockets\n\nThe supervisor holds the listening socket.\n",
    )
    .unwrap();

    // Install and enable, with a TCP listener on a free port.
    let v = t.json(&["install", "systemd", "--enable", "--tcp-port", "--json"]);
    let slug = v["instance"]["slug"].as_str().unwrap().to_string();
    assert_eq!(slug, "project");
    let sock = PathBuf::from(v["instance"]["socket_path"].as_str().unwrap());
    let port = v["instance"]["tcp_port"].as_u64().unwrap();
    let (socket_unit, service) = (
        format!("doc-serve@{slug}.socket"),
        format!("doc-serve@{slug}.service"),
    );
    m.wait_state(&socket_unit, "listening socket", |s| {
        s["SubState"] == "listening"
    });
    assert_eq!(mode_of(&sock) & 0o777, 0o600);
    assert_eq!(m.show(&service)["ActiveState"], "inactive");
    assert!(!t.state_file("runtime.json").exists());
    // `doctor` sees the listening socket, and starts nothing by looking.
    let d = doctor(&t, "supervisor");
    assert_eq!(d["status"], "ok", "{d}");
    assert_eq!(
        d["detail"],
        format!("{socket_unit} listens on {}", sock.display())
    );
    let d = doctor(&t, "resident");
    assert_eq!(
        d["detail"],
        "the resident is not running; its supervisor's socket starts it"
    );
    assert_eq!(m.show(&service)["ActiveState"], "inactive");
    // A short idle timeout, the way a user would change it.
    let dropin = PathBuf::from(m.var("XDG_CONFIG_HOME")).join(format!("systemd/user/{service}.d"));
    std::fs::create_dir_all(&dropin).unwrap();
    std::fs::write(
        dropin.join("idle.conf"),
        "[Service]\nEnvironment=DOC_SERVE_IDLE_TIMEOUT_SECONDS=2\n",
    )
    .unwrap();
    assert!(m.systemctl(&["daemon-reload"]).status.success());

    // The first request starts the service, which inherits both sockets.
    let health = unix_get(&sock, "/health");
    assert_eq!(health.status, 200, "{}", health.body);
    let s = m.wait_state(&service, "active service", |s| s["ActiveState"] == "active");
    let rt = t.wait_runtime(Duration::from_secs(20));
    assert_eq!(rt["activation"], "systemd");
    assert_eq!(rt["socket_path"], sock.display().to_string());
    assert_eq!(rt["port"], port);
    assert_eq!(rt["pid"].as_u64().unwrap() as u32, pid_of(&s));
    m.wait_state(&service, "status text", |s| {
        s["StatusText"].contains("indexed")
    });
    let auth = format!("Authorization: Bearer {}", rt["token"].as_str().unwrap());
    let addr = format!("127.0.0.1:{port}");
    let hits = wait_for(Duration::from_secs(20), "a hit", || {
        let r = get(&addr, "/query?q=supervisor", &[&auth]);
        (r.status == 200 && r.json()["hits"][0]["path"] == "docs/a.md").then_some(r)
    });
    assert_eq!(hits.json()["index"]["indexing"], false);

    // A second local user reaches neither socket's answers: systemd made the socket
    // 0600 in a 0700 dir. The temp tree above the runtime dir is opened up for this.
    if let Some(user) = crate::users::OtherUser::create() {
        crate::users::open_up(&t, &docs);
        crate::users::open_up(&t, Path::new(&m.var("XDG_RUNTIME_DIR")));
        let probe = crate::users::Probe {
            tcp: Some(&addr),
            unix: Some(&sock),
            word: "supervisor",
        };
        let owner = user.probe(&t, &probe, true);
        let other = user.probe(&t, &probe, false);
        crate::users::assert_kept_out(&other, &owner);
    }

    // Idle exits: the service exits 0, the socket keeps listening, runtime.json goes, and
    // the next request starts a new process. Six in a row: no start limit.
    let mut pids = vec![pid_of(&s)];
    for round in 0..6 {
        let s = m.wait_state(&service, "idle exit", |s| s["ActiveState"] == "inactive");
        assert_eq!(
            (s["Result"].as_str(), s["ExecMainStatus"].as_str()),
            ("success", "0"),
            "round {round}"
        );
        assert_eq!(
            m.show(&socket_unit)["SubState"],
            "listening",
            "round {round}"
        );
        assert!(!t.state_file("runtime.json").exists(), "round {round}");
        let r = unix_get(&sock, "/health");
        assert_eq!(r.status, 200, "round {round}");
        let s = m.wait_state(&service, "reactivation", |s| s["ActiveState"] == "active");
        assert!(!pids.contains(&pid_of(&s)), "round {round}: {pids:?} {s:?}");
        pids.push(pid_of(&s));
    }

    // A crash is restarted (Restart=on-failure).
    let s = m.wait_state(&service, "running service", |s| {
        s["ActiveState"] == "active" && pid_of(s) > 0
    });
    signal(pid_of(&s), Signal::SIGKILL);
    let after = m.wait_state(&service, "restart after SIGKILL", |x| {
        x["ActiveState"] == "active" && pid_of(x) > 0 && pid_of(x) != pid_of(&s)
    });
    assert_ne!(after["NRestarts"], "0");
    wait_for(
        Duration::from_secs(20),
        "runtime.json of the restarted service",
        || (t.runtime()["pid"].as_u64() == Some(pid_of(&after) as u64)).then_some(()),
    );

    // `systemctl --user stop` shuts it down cleanly.
    assert!(m.systemctl(&["stop", &service]).status.success());
    let s = m.show(&service);
    assert_eq!(s["ActiveState"], "inactive");
    assert_eq!(s["Result"], "success", "{s:?}");
    assert!(!t.state_file("runtime.json").exists());

    // `start` uses the instance instead of spawning a second resident; `status` and
    // `where` name it.
    let v = t
        .json_code(&["status", "--json"], 1)
        .get("instance")
        .cloned();
    assert_eq!(v.unwrap()["slug"], slug);
    // A query goes to the instance's socket, which starts the service (a new
    // invocation), rather than running standalone.
    let before = m.show(&service)["InvocationID"].clone();
    let out = t.run(&["query", "--json", "anything"]);
    assert!(
        matches!(out.status.code(), Some(0 | 1)),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    m.wait_state(&service, "a service started by a query", |s| {
        !s["InvocationID"].is_empty() && s["InvocationID"] != before
    });
    let v = t.json(&["start", "--json"]);
    assert_eq!(v["activation"], "systemd");
    let s = m.wait_state(&service, "service started by start", |s| {
        s["ActiveState"] == "active"
    });
    assert_eq!(v["pid"].as_u64().unwrap() as u32, pid_of(&s));
    let w = t.json(&["where", "--json"]);
    let addrs = w["addresses"].to_string();
    assert!(
        addrs.contains(&format!("unix:{}", sock.display())),
        "{addrs}"
    );

    // An upgrade that moves ListenStream= leaves the reloaded unit without its socket;
    // `install systemd --refresh` restarts it.
    let moved_dir =
        PathBuf::from(m.var("XDG_CONFIG_HOME")).join(format!("systemd/user/{socket_unit}.d"));
    std::fs::write(
        moved_dir.join("zz-moved.conf"),
        "[Socket]\nListenStream=\nListenStream=%t/doc-serve/moved.sock\n",
    )
    .unwrap();
    assert!(m.systemctl(&["daemon-reload"]).status.success());
    let moved = sock.with_file_name("moved.sock");
    assert!(!moved.exists());
    let d = doctor(&t, "supervisor");
    assert_eq!(
        (&d["status"], &d["fix"]),
        (
            &json!("fail"),
            &json!("doc-serve install systemd --refresh")
        ),
        "{d}"
    );
    let v = t.json(&["install", "systemd", "--refresh", "--json"]);
    assert!(
        v["commands"]
            .to_string()
            .contains(&format!("restart {socket_unit}")),
        "{v}"
    );
    assert_eq!(unix_get(&moved, "/health").status, 200);
    std::fs::remove_file(moved_dir.join("zz-moved.conf")).unwrap();

    // Uninstall undoes it all.
    t.ok(&["uninstall", "systemd"]);
    let unit_dir = PathBuf::from(m.var("XDG_CONFIG_HOME")).join("systemd/user");
    assert!(!unit_dir.join("doc-serve@.service").exists());
    assert!(!unit_dir.join(format!("{socket_unit}.d")).exists());
    assert_eq!(m.show(&socket_unit)["ActiveState"], "inactive");
    let reg = std::fs::read_to_string(
        PathBuf::from(m.var("XDG_CONFIG_HOME")).join("doc-serve/instances.json"),
    )
    .unwrap();
    let reg: serde_json::Value = serde_json::from_str(&reg).unwrap();
    assert_eq!(reg["instances"], serde_json::json!({}), "{reg}");
    t.expect(&["uninstall", "systemd"], 2);
    drop(m);
    drop(t);
}

#[test]
fn install_checks_its_input_and_dry_run_changes_nothing() {
    let t = TestEnv::new();
    let config = t.root().join("home/.config");
    let out = t.ok(&[
        "install",
        "systemd",
        "--dry-run",
        "--name",
        "docs",
        "--tcp-port",
        "8111",
    ]);
    assert!(
        out.contains("would run: systemctl --user daemon-reload"),
        "{out}"
    );
    assert!(out.contains("doc-serve@docs.socket"), "{out}");
    assert!(!config.join("systemd").exists());
    assert!(!config.join("doc-serve/instances.json").exists());

    let err = t.run(&["install", "systemd", "--name", "Bad/Name"]);
    assert_eq!(err.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&err.stderr).contains("is not a slug"));

    let mut no_runtime = t.cmd(&["install", "systemd", "--dry-run"]);
    no_runtime.env_remove("XDG_RUNTIME_DIR");
    let out = no_runtime.output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("XDG_RUNTIME_DIR"));

    // launchd: the agent it would write, and the command that would load it.
    let v = t.json(&[
        "install",
        "launchd",
        "--dry-run",
        "--tcp-port",
        "8112",
        "--json",
    ]);
    let (path, text) = v["previews"].as_object().unwrap().iter().next().unwrap();
    assert!(
        path.ends_with("Library/LaunchAgents/dev.doc-serve.project.plist"),
        "{path}"
    );
    let agent = plist::Value::from_reader_xml(text.as_str().unwrap().as_bytes()).unwrap();
    let agent = agent.as_dictionary().unwrap();
    assert_eq!(agent["Label"].as_string(), Some("dev.doc-serve.project"));
    let argv: Vec<&str> = agent["ProgramArguments"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|a| a.as_string())
        .collect();
    assert_eq!(argv[0], BIN);
    assert!(
        argv.windows(2).any(|w| w == ["--instance", "project"]),
        "{argv:?}"
    );
    let sockets = format!("{:?}", agent["Sockets"]);
    assert!(
        sockets.contains("8112") && sockets.contains("project.sock"),
        "{sockets}"
    );
    assert!(
        v["notes"][0]
            .as_str()
            .unwrap()
            .contains("launchctl bootstrap gui/"),
        "{v}"
    );
    assert!(!t.root().join("home/Library").exists());
    if !cfg!(target_os = "macos") {
        let out = t.run(&["install", "launchd"]);
        assert_eq!(out.status.code(), Some(2));
        assert!(String::from_utf8_lossy(&out.stderr).contains("install systemd"));
    }

    // A supervisor starting an instance nobody registered: a clear error, exit 2.
    let out = t.run(&["serve", "--instance", "nosuch"]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("no doc-serve instance \"nosuch\""), "{err}");
}

/// The shipped shared-daemon units, as a package installs them: a shared-mode
/// project's client finds the socket, and the first request starts the daemon.
#[test]
fn systemd_socket_starts_the_shared_daemon() {
    let t = TestEnv::new();
    let Some(m) = UserManager::start(&t) else {
        return;
    };
    let units = PathBuf::from(m.var("XDG_CONFIG_HOME")).join("systemd/user");
    std::fs::create_dir_all(&units).unwrap();
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("systemd");
    for unit in ["doc-serve.socket", "doc-serve.service"] {
        let text = std::fs::read_to_string(repo.join(unit)).unwrap();
        std::fs::write(units.join(unit), text.replace("/usr/bin/doc-serve", BIN)).unwrap();
    }
    // The Unix socket only, so that every user of a machine can listen.
    let socket = std::fs::read_to_string(units.join("doc-serve.socket")).unwrap();
    let listens: Vec<&str> = socket
        .lines()
        .filter(|l| l.starts_with("ListenStream="))
        .collect();
    assert_eq!(listens, ["ListenStream=%t/doc-serve/shared.sock"]);
    assert!(m.systemctl(&["daemon-reload"]).status.success());
    let out = m.systemctl(&["enable", "--now", "doc-serve.socket"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    m.wait_state("doc-serve.socket", "listening socket", |s| {
        s["SubState"] == "listening"
    });
    assert_eq!(m.show("doc-serve.service")["ActiveState"], "inactive");

    std::fs::create_dir_all(t.project.join("docs")).unwrap();
    std::fs::write(
        t.project.join("docs/a.md"),
        "# Shared\n\nOne daemon answers for every project.\n",
    )
    .unwrap();
    t.ok(&["init", "--mode", "shared"]);
    wait_for(Duration::from_secs(30), "a hit from the daemon", || {
        let v: serde_json::Value =
            serde_json::from_slice(&t.run(&["query", "--json", "daemon"]).stdout).ok()?;
        (v["hits"][0]["path"] == "docs/a.md").then_some(())
    });
    // The index lives in the daemon's home, and the query started the daemon through
    // the socket (a standalone query would have left the service inactive).
    assert!(!t.state_dir().join("data").exists());
    let s = m.wait_state("doc-serve.service", "active service", |s| {
        s["ActiveState"] == "active"
    });
    let rt: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(t.root().join("home/.doc-serve/runtime.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(rt["mode"], "shared");
    assert_eq!(rt["activation"], "systemd");
    assert_eq!(rt["pid"].as_u64().unwrap() as u32, pid_of(&s));
    // The daemon registered the project on the client's first request.
    let sock = PathBuf::from(m.var("XDG_RUNTIME_DIR")).join("doc-serve/shared.sock");
    let listed = unix_get(&sock, "/projects").json();
    assert_eq!(
        listed["projects"][0]["root"],
        t.project.display().to_string()
    );
    assert_eq!(t.json(&["status", "--json"])["state"], "running");
    // A browser needs TCP: `open` says how to add it.
    let out = t.run(&["open", "--print"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("systemctl --user edit doc-serve.socket"),
        "{err}"
    );

    assert!(m.systemctl(&["stop", "doc-serve.service"]).status.success());
    assert_eq!(m.show("doc-serve.service")["Result"], "success");
    // RemoveOnStop=yes: a stopped socket leaves no file for a client to connect to.
    assert!(sock.exists());
    assert!(m.systemctl(&["stop", "doc-serve.socket"]).status.success());
    assert!(
        !sock.exists(),
        "{} outlived its socket unit",
        sock.display()
    );
    drop(m);
    drop(t);
}
