//! `serve`, `start`, `stop`, `status`: the life of a resident.

use std::io::Write;
use std::net::TcpStream;
use std::time::{Duration, Instant};

use crate::util::*;

const WAIT: Duration = Duration::from_secs(15);

#[test]
fn serve_writes_discovery_files_and_cleans_up_on_sigterm() {
    let mut t = TestEnv::new();
    let pid = t.spawn_serve(&[]);
    let rt = t.wait_runtime(WAIT);
    for key in [
        "schema_version",
        "mode",
        "project_root",
        "base_url",
        "instance_id",
        "project_id",
        "bind_host",
        "port",
        "pid",
        "started_at",
        "token",
        "activation",
        "version",
        "process",
    ] {
        assert!(!rt[key].is_null(), "runtime.json lacks {key}: {rt}");
    }
    assert_eq!(rt["schema_version"], 1);
    assert_eq!(rt["mode"], "project");
    assert_eq!(rt["pid"], pid);
    assert_eq!(rt["activation"], "self");
    assert_eq!(rt["bind_host"], "127.0.0.1");
    assert_eq!(rt["project_root"], t.project.display().to_string());
    assert_eq!(rt["token"].as_str().unwrap().len(), 64);
    assert!(rt["instance_id"].as_str().unwrap().starts_with("ds_"));
    assert!(rt["process"]["start_time"].as_u64().is_some());
    assert_eq!(mode_of(&t.state_file("runtime.json")), 0o600);
    assert_eq!(mode_of(&t.state_dir()), 0o700);
    let pid_text = std::fs::read_to_string(t.state_file("doc-serve.pid")).unwrap();
    assert_eq!(pid_text.trim(), pid.to_string());
    let health = get(&addr_of(&rt), "/health", &[]);
    assert_eq!(health.status, 200);
    assert_eq!(health.json()["instance_id"], rt["instance_id"]);

    // A second resident for the same project is refused and changes nothing.
    let out = t.run(&["serve"]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("already serving") && err.contains(&pid.to_string()),
        "{err}"
    );
    assert_eq!(t.runtime(), rt);

    signal(pid, Signal::SIGTERM);
    assert_eq!(t.wait_child(pid, WAIT), Some(0));
    assert!(!t.state_file("runtime.json").exists());
    assert!(!t.state_file("doc-serve.pid").exists());
    let events: Vec<String> = t
        .events()
        .iter()
        .map(|e| e["event"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(events, ["start", "ready", "stop"]);
}

#[test]
fn start_status_stop() {
    let t = TestEnv::new();
    t.expect(&["status"], 1);
    let first = t.json(&["start", "--json"]);
    assert_eq!(first["existing"], false);
    let base = first["base_url"].as_str().unwrap().to_string();
    let pid = first["pid"].as_u64().unwrap() as u32;
    assert!(alive(pid));

    let again = t.json(&["start", "--json"]);
    assert_eq!(again["existing"], true);
    assert_eq!(again["base_url"], base.as_str());
    assert!(t.ok(&["start"]).contains("already running"));

    let status = t.json(&["status", "--json"]);
    assert_eq!(status["state"], "running");
    assert_eq!(status["runtime"]["base_url"], base.as_str());
    assert!(
        status["runtime"]["token"].is_null(),
        "status must not print the token"
    );

    // The resident runs in its own session, logging to logs/serve.log.
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let fields: Vec<&str> = stat
        .rsplit(')')
        .next()
        .unwrap()
        .split_whitespace()
        .collect();
    assert_eq!(
        fields[3],
        pid.to_string(),
        "session id should be the resident's pid"
    );
    assert!(t.state_file("logs/serve.log").exists());

    let stop = t.json(&["stop", "--json"]);
    assert_eq!(stop["stopped"], true);
    assert!(!alive(pid));
    assert!(!t.state_file("runtime.json").exists());
    assert!(t.ok(&["stop"]).contains("not running"));
    let status = t.json_code(&["status", "--json"], 1);
    assert_eq!(status["state"], "stopped");
}

#[test]
fn twenty_racing_starts_make_one_resident() {
    let t = TestEnv::new();
    t.ok(&["init"]);
    racing_starts(&t, 20);
    t.ok(&["stop"]);
}

/// `n` racing `start`s: exactly one spawns the resident, all print its URL, and one
/// resident runs. Returns its URL.
pub fn racing_starts(t: &TestEnv, n: usize) -> String {
    let children: Vec<_> = (0..n)
        .map(|_| {
            t.cmd(&["start", "--json"])
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    let mut urls = Vec::new();
    let mut fresh = 0;
    for c in children {
        let out = c.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        fresh += usize::from(v["existing"] == false);
        urls.push(v["base_url"].as_str().unwrap().to_string());
    }
    assert_eq!(fresh, 1, "exactly one start spawned the resident");
    assert!(urls.iter().all(|u| *u == urls[0]), "{urls:?}");
    let residents = doc_serve_processes(t);
    assert_eq!(residents.len(), 1, "{residents:?}");
    urls.swap_remove(0)
}

/// PIDs of `doc-serve ... serve` processes for this test's project.
fn doc_serve_processes(t: &TestEnv) -> Vec<u32> {
    let project = t.project.display().to_string();
    std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|e| {
            let pid: u32 = e.file_name().to_str()?.parse().ok()?;
            let cmd = std::fs::read(e.path().join("cmdline")).ok()?;
            let args: Vec<&[u8]> = cmd.split(|b| *b == 0).collect();
            let serving = args.contains(&&b"serve"[..]) && args.contains(&project.as_bytes());
            (serving && alive(pid)).then_some(pid)
        })
        .collect()
}

#[test]
fn idle_timeout_exits_and_records_it() {
    let mut t = TestEnv::new();
    let pid = t.spawn_serve(&["--idle-timeout", "1"]);
    let rt = t.wait_runtime(WAIT);
    let addr = addr_of(&rt);
    // Requests keep it alive past the timeout.
    let begun = Instant::now();
    while begun.elapsed() < Duration::from_millis(1800) {
        assert_eq!(get(&addr, "/health", &[]).status, 200);
        std::thread::sleep(Duration::from_millis(200));
    }
    assert!(alive(pid));
    assert_eq!(t.wait_child(pid, WAIT), Some(0));
    assert!(!t.state_file("runtime.json").exists());
    assert!(!t.state_file("doc-serve.pid").exists());
    let last = t.events().pop().unwrap();
    assert_eq!(last["event"], "idle_exit");
}

#[test]
fn shutdown_drains_in_flight_requests() {
    let mut t = TestEnv::new();
    let pid = t.spawn_serve(&[]);
    let rt = t.wait_runtime(WAIT);
    let addr = addr_of(&rt);
    // A request whose body is still arriving when SIGTERM lands.
    let mut s = TcpStream::connect(&addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(
        s,
        "POST /health HTTP/1.1\r\nHost: {addr}\r\nContent-Length: 4\r\nConnection: close\r\n\r\nab"
    )
    .unwrap();
    std::thread::sleep(Duration::from_millis(200));
    signal(pid, Signal::SIGTERM);
    // The listener closes at once: new clients are refused, then runtime.json goes.
    wait_for(WAIT, "listener to close and runtime.json to go", || {
        (TcpStream::connect(&addr).is_err() && !t.state_file("runtime.json").exists()).then_some(())
    });
    assert!(alive(pid), "the resident waits for the in-flight request");
    s.write_all(b"cd").unwrap();
    let mut buf = Vec::new();
    std::io::Read::read_to_end(&mut s, &mut buf).unwrap();
    assert_eq!(parse_reply(&buf).status, 405);
    assert_eq!(t.wait_child(pid, WAIT), Some(0));
}

#[test]
fn drain_is_bounded() {
    let mut t = TestEnv::new();
    t.set("DOC_SERVE_DRAIN_TIMEOUT_SECONDS", "1");
    t.set("DOC_SERVE_REQUEST_TIMEOUT_SECONDS", "30");
    let pid = t.spawn_serve(&[]);
    let addr = addr_of(&t.wait_runtime(WAIT));
    let mut s = TcpStream::connect(&addr).unwrap();
    write!(
        s,
        "POST /health HTTP/1.1\r\nHost: {addr}\r\nContent-Length: 4\r\n\r\na"
    )
    .unwrap();
    std::thread::sleep(Duration::from_millis(200));
    let begun = Instant::now();
    signal(pid, Signal::SIGTERM);
    assert_eq!(t.wait_child(pid, WAIT), Some(0));
    assert!(
        begun.elapsed() < Duration::from_secs(8),
        "{:?}",
        begun.elapsed()
    );
}

#[test]
fn sigterm_as_soon_as_runtime_json_appears_is_a_clean_stop() {
    // Whoever finds runtime.json may signal the resident at once: its handlers must
    // already be in place, or SIGTERM kills it without removing its files.
    let mut t = TestEnv::new();
    let runtime = t.state_file("runtime.json");
    for round in 0..20 {
        let pid = t.spawn_serve(&[]);
        let deadline = Instant::now() + Duration::from_secs(15);
        // Spin, not sleep: the signal must land in the first instant the file exists.
        while !runtime.exists() {
            assert!(Instant::now() < deadline, "no runtime.json");
            std::hint::spin_loop();
        }
        signal(pid, Signal::SIGTERM);
        assert_eq!(
            t.wait_child(pid, Duration::from_secs(15)),
            Some(0),
            "round {round}"
        );
        assert!(!runtime.exists(), "round {round}");
    }
}
