//! Stale state (README, "Stale state"): each case detected, explained by `status`, recovered by
//! `start`, and no unrelated process ever signalled.

use std::process::{Command, Stdio};
use std::time::Duration;

use serde_json::{Value, json};

use crate::util::*;

/// A runtime.json as a resident would write it, for a process and port of our choosing.
fn fake_runtime(t: &TestEnv, pid: u32, start_time: u64, port: u16) -> Value {
    let boot_id = std::fs::read_to_string("/proc/sys/kernel/random/boot_id").unwrap();
    json!({
        "schema_version": 1, "mode": "project",
        "project_root": t.project, "base_url": format!("http://127.0.0.1:{port}"),
        "instance_id": "ds_dead00", "project_id": "p_00000000",
        "bind_host": "127.0.0.1", "port": port, "pid": pid,
        "started_at": "2026-01-01T00:00:00.000Z", "token": "0".repeat(64),
        "activation": "self", "version": "0.0.0",
        "process": {"start_time": start_time, "boot_id": boot_id.trim()},
        "listeners": [],
    })
}

fn write_state(t: &TestEnv, runtime: &str, pid: Option<u32>) {
    t.ok(&["init"]);
    std::fs::write(t.state_file("runtime.json"), runtime).unwrap();
    if let Some(pid) = pid {
        std::fs::write(t.state_file("doc-serve.pid"), format!("{pid}\n")).unwrap();
    }
}

fn closed_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn dead_pid() -> u32 {
    let mut c = Command::new("true").spawn().unwrap();
    let pid = c.id();
    c.wait().unwrap();
    pid
}

/// `status` explains the stale file with `needle`; `start` replaces it with a live
/// resident and records the cleanup.
fn assert_recovers(t: &TestEnv, needle: &str) {
    let status = t.json_code(&["status", "--json"], 1);
    assert_eq!(status["state"], "stopped", "{status}");
    let reasons = status["stale"].to_string();
    assert!(reasons.contains(needle), "expected {needle:?} in {reasons}");
    let text = t.expect(&["status"], 1);
    assert!(text.contains("stale:"), "{text}");

    let started = t.json(&["start", "--json"]);
    assert_eq!(started["existing"], false);
    let rt = t.runtime();
    assert_eq!(rt["pid"], started["pid"]);
    assert_eq!(get(&addr_of(&rt), "/health", &[]).status, 200);
    assert!(t.events().iter().any(|e| e["event"] == "stale_cleanup"));
    t.ok(&["stop"]);
}

#[test]
fn pid_of_an_exited_process() {
    let t = TestEnv::new();
    let pid = dead_pid();
    write_state(
        &t,
        &fake_runtime(&t, pid, 1, closed_port()).to_string(),
        Some(pid),
    );
    assert_recovers(&t, "has exited");
}

#[test]
fn reused_pid_is_never_signalled() {
    let mut t = TestEnv::new();
    let mut sleep = Command::new("sleep");
    sleep.arg("300");
    let other = t.spawn(sleep);
    // Same PID, different start time: the number was reused.
    let rt = fake_runtime(&t, other, start_time_of(other) + 7, closed_port());
    write_state(&t, &rt.to_string(), Some(other));
    let status = t.json_code(&["status", "--json"], 1);
    assert!(
        status["stale"]
            .to_string()
            .contains("reused by another program (sleep)"),
        "{status}"
    );
    t.ok(&["stop"]);
    assert!(alive(other), "stop signalled an unrelated process");
    write_state(&t, &rt.to_string(), Some(other));
    assert_recovers(&t, "reused");
    assert!(alive(other), "start signalled an unrelated process");
}

#[test]
fn truncated_runtime_file() {
    let t = TestEnv::new();
    let text = fake_runtime(&t, dead_pid(), 1, closed_port()).to_string();
    write_state(&t, &text[..text.len() / 3], None);
    assert_recovers(&t, "truncated or garbage");
}

#[test]
fn garbage_runtime_file() {
    let t = TestEnv::new();
    t.ok(&["init"]);
    std::fs::write(
        t.state_file("runtime.json"),
        [0u8, 159, 146, 150, b'{', 0xff],
    )
    .unwrap();
    assert_recovers(&t, "truncated or garbage");
}

#[test]
fn unknown_schema_version() {
    let t = TestEnv::new();
    let mut rt = fake_runtime(&t, dead_pid(), 1, closed_port());
    rt["schema_version"] = json!(99);
    write_state(&t, &rt.to_string(), None);
    assert_recovers(&t, "schema_version 99");
}

#[test]
fn unknown_schema_version_under_a_live_resident_is_written_again() {
    // The process holding the lifetime lock is the resident: a file it did not write
    // is not its description, and it writes its own again.
    let mut t = TestEnv::new();
    let pid = t.spawn_serve(&[]);
    let before = t.wait_runtime(Duration::from_secs(15));
    let mut rt = before.clone();
    rt["schema_version"] = json!(99);
    std::fs::write(t.state_file("runtime.json"), rt.to_string()).unwrap();
    wait_for(
        Duration::from_secs(10),
        "runtime.json written again",
        || (t.runtime() == before).then_some(()),
    );
    let v = t.json(&["start", "--json"]);
    assert_eq!((&v["existing"], &v["pid"]), (&json!(true), &json!(pid)));
    let status = t.json(&["status", "--json"]);
    assert_eq!(status["state"], "running", "{status}");
}

#[test]
fn port_no_longer_answers() {
    let mut t = TestEnv::new();
    // The recorded process is alive and its identity matches, but no resident holds
    // the lock and nothing answers on the port.
    let mut sleep = Command::new("sleep");
    sleep.arg("300");
    let other = t.spawn(sleep);
    let rt = fake_runtime(&t, other, start_time_of(other), closed_port());
    write_state(&t, &rt.to_string(), None);
    assert_recovers(&t, "no longer serves");
    assert!(alive(other));
}

#[test]
fn unresponsive_resident_is_reported_not_duplicated() {
    let mut t = TestEnv::new();
    t.set("DOC_SERVE_START_TIMEOUT_SECONDS", "3");
    let pid = t.spawn_serve(&[]);
    t.wait_runtime(Duration::from_secs(15));
    signal(pid, Signal::SIGSTOP);
    let status = t.json_code(&["status", "--json"], 1);
    assert_eq!(status["state"], "unresponsive", "{status}");
    let out = t.run(&["start"]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("does not answer"), "{err}");
    // The clients that would ask it say so too, naming it, rather than answering from
    // the disk as if nothing ran (only a refused connection means "next way").
    for args in [&["query", "alpha"][..], &["index"]] {
        let started = std::time::Instant::now();
        let out = t.run(args);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
        assert!(
            err.contains("does not answer") && err.contains(&format!("pid {pid}")),
            "{args:?}: {err}"
        );
        assert!(started.elapsed() < Duration::from_secs(10), "{args:?}");
    }
    // stop sends SIGCONT after SIGTERM, so a stopped resident still shuts down cleanly.
    t.ok(&["stop"]);
    assert_eq!(t.wait_child(pid, Duration::from_secs(10)), Some(0));
    assert!(!t.state_file("runtime.json").exists());
}

#[test]
fn files_left_by_kill_9() {
    let mut t = TestEnv::new();
    let pid = t.spawn_serve(&[]);
    let old = t.wait_runtime(Duration::from_secs(15));
    signal(pid, Signal::SIGKILL);
    t.wait_child(pid, Duration::from_secs(10));
    assert!(t.state_file("doc-serve.lock").exists());
    assert!(t.state_file("doc-serve.pid").exists());
    assert!(t.state_file("runtime.json").exists());
    assert_recovers(&t, "has exited");
    assert_ne!(t.events().last().unwrap()["pid"], old["pid"]);
}

/// Right after `kill -9`, before anyone reaps the resident (a zombie, as under a PID 1
/// that never reaps), runtime.json and the PID file name the same dead PID: both
/// say it has exited, neither that it is alive.
#[test]
fn a_zombie_resident_is_dead_in_every_reason() {
    let mut t = TestEnv::new();
    let pid = t.spawn_serve(&[]);
    t.wait_runtime(Duration::from_secs(15));
    signal(pid, Signal::SIGKILL);
    wait_for(Duration::from_secs(10), "a zombie", || {
        (!alive(pid)).then_some(())
    });
    // Its last threads hold the lock a moment longer ("starting" meanwhile).
    let status = wait_for(Duration::from_secs(10), "the lock freed", || {
        let status = t.json_code(&["status", "--json"], 1);
        (status["state"] != "starting").then_some(status)
    });
    assert_eq!(status["state"], "stopped", "{status}");
    assert!(
        std::path::Path::new(&format!("/proc/{pid}")).exists(),
        "a zombie until reaped below"
    );
    let reasons: Vec<&str> = status["stale"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["reason"].as_str().unwrap())
        .collect();
    assert_eq!(reasons.len(), 2, "{status}");
    for r in &reasons {
        assert_eq!(
            *r,
            format!("left by pid {pid}, which has exited"),
            "{status}"
        );
    }
    assert_eq!(t.wait_child(pid, Duration::from_secs(10)), None);
    assert_recovers(&t, "has exited");
}

#[test]
fn stop_cleans_stale_files_without_signalling() {
    let mut t = TestEnv::new();
    let mut sleep = Command::new("sleep");
    sleep.arg("300").stdout(Stdio::null());
    let other = t.spawn(sleep);
    // A PID file naming a live unrelated process, with no lock behind it.
    write_state(
        &t,
        &fake_runtime(&t, dead_pid(), 1, closed_port()).to_string(),
        Some(other),
    );
    let v = t.json(&["stop", "--json"]);
    assert_eq!(v["stopped"], false);
    assert_eq!(v["cleaned"].as_array().unwrap().len(), 2, "{v}");
    assert!(alive(other));
    assert!(!t.state_file("runtime.json").exists());
    assert!(!t.state_file("doc-serve.pid").exists());
}
