//! Bad input, the discovery files: runtime.json truncated, garbage or from a newer
//! version, a PID file naming someone else, the locks a killed resident left, a port
//! already taken, and a second start racing the first. None may be trusted blindly,
//! start a second resident, or signal a process that is not ours.

use std::collections::BTreeSet;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::time::Duration;

use serde_json::{Value, json};

use super::*;

fn stale_reasons(t: &TestEnv) -> String {
    let status = json_run(t, &["status", "--json"], 1);
    assert_eq!(status["state"], "stopped", "{status}");
    status["stale"].to_string()
}

/// Waits until runtime.json describes the resident `r` again (it rewrites the file
/// within a second), and returns it.
fn rewritten(t: &TestEnv, r: &Resident, instance_id: &Value) -> Value {
    wait_for(WAIT, "runtime.json written again", || {
        // Read only once it is a plain file again (a FIFO would block this test).
        let file = t.state_file("runtime.json");
        std::fs::symlink_metadata(&file)
            .ok()?
            .is_file()
            .then_some(())?;
        let text = std::fs::read_to_string(file).ok()?;
        let v: Value = serde_json::from_str(&text).ok()?;
        (v["schema_version"] == 1 && v["pid"] == r.pid).then_some(v)
    })
    .tap(|v| assert_eq!(&v["instance_id"], instance_id, "{v}"))
}

trait Tap: Sized {
    fn tap(self, f: impl FnOnce(&Self)) -> Self {
        f(&self);
        self
    }
}
impl Tap for Value {}

#[test]
fn truncated_runtime_json() {
    let (mut t, base) = indexed();
    let r = serving(&mut t);
    let before = t.runtime();
    let text = std::fs::read_to_string(t.state_file("runtime.json")).unwrap();
    std::fs::write(t.state_file("runtime.json"), &text[..text.len() / 2]).unwrap();

    // The live resident writes it again: clients find it, `start` reports it.
    assert_eq!(rewritten(&t, &r, &before["instance_id"]), before);
    assert!(
        t.events().iter().any(|e| e["event"] == "runtime_rewritten"
            && e["was"].as_str().unwrap().contains("not valid JSON")),
        "{:?}",
        t.events()
    );
    let v = json_run(&t, &["start", "--json"], 0);
    assert_eq!((&v["existing"], &v["pid"]), (&json!(true), &json!(r.pid)));
    assert_eq!(answers(&t), base);
    assert_eq!(residents(&t), [r.pid]);

    // One that cannot write it (stopped) is still stopped through its lock.
    signal(r.pid, Signal::SIGSTOP);
    std::fs::write(t.state_file("runtime.json"), &text[..text.len() / 2]).unwrap();
    let out = run(&t, &["stop", "--json"]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["pid"], r.pid, "{v}");
    assert_eq!(t.wait_child(r.pid, WAIT), Some(0));
    assert!(!t.state_file("runtime.json").exists());
    assert!(!t.state_file("doc-serve.pid").exists());

    let v = json_run(&t, &["start", "--json"], 0);
    assert_eq!(v["existing"], false);
    assert_eq!(answers(&t), base);
    t.ok(&["stop"]);
    assert_intact(&t, &base);
    assert_no_panic_logged(&t);
}

#[test]
fn deleted_runtime_json_and_pid_file() {
    let (mut t, base) = indexed();
    let r = serving(&mut t);
    let before = t.runtime();
    std::fs::remove_file(t.state_file("runtime.json")).unwrap();
    assert_eq!(rewritten(&t, &r, &before["instance_id"]), before);

    // Stopped and without either file: the kernel's lock table still names it.
    signal(r.pid, Signal::SIGSTOP);
    std::fs::remove_file(t.state_file("runtime.json")).unwrap();
    std::fs::remove_file(t.state_file("doc-serve.pid")).unwrap();
    let v = json_run(&t, &["stop", "--json"], 0);
    assert_eq!(v["pid"], r.pid, "{v}");
    assert_eq!(t.wait_child(r.pid, WAIT), Some(0));
    assert_eq!(json_run(&t, &["status", "--json"], 1)["state"], "stopped");
    assert_intact(&t, &base);
    assert_no_panic_logged(&t);
}

#[test]
fn garbage_runtime_json() {
    let (mut t, base) = indexed();
    // The leftovers of a resident killed with SIGKILL, then runtime.json overwritten.
    let pid = t.spawn_serve(&[]);
    t.wait_runtime(WAIT);
    signal(pid, Signal::SIGKILL);
    t.wait_child(pid, WAIT);
    let deep = "[".repeat(1 << 20);
    let garbage: [&[u8]; 6] = [
        b"\x00\x9f\x92\x96{\xff",
        b"null",
        b"[]",
        b"{\"schema_version\": 1, \"pid\": \"not a pid\"}",
        b"{\"schema_version\": 1}",
        deep.as_bytes(),
    ];
    for bytes in garbage {
        std::fs::write(t.state_file("runtime.json"), bytes).unwrap();
        let what = String::from_utf8_lossy(&bytes[..bytes.len().min(40)]).into_owned();
        assert!(stale_reasons(&t).contains("truncated or garbage"), "{what}");
        // A client removes it and answers from the index, the same.
        assert_eq!(answers(&t), base, "{what}");
        assert!(!t.state_file("runtime.json").exists(), "{what}");
    }
    t.ok(&["start"]);
    assert_eq!(answers(&t), base);
    t.ok(&["stop"]);
    assert_intact(&t, &base);
    assert_no_panic_logged(&t);
}

#[test]
fn unknown_version_runtime_json() {
    let (mut t, base) = indexed();
    let r = serving(&mut t);
    let before = t.runtime();
    // Another version's file, naming an address we must not trust: the resident
    // holding the lock knows it is not its own and writes its own again.
    let mut rt = t.runtime();
    rt["schema_version"] = json!(2);
    rt["base_url"] = json!("http://127.0.0.1:1");
    std::fs::write(t.state_file("runtime.json"), rt.to_string()).unwrap();
    assert_eq!(rewritten(&t, &r, &before["instance_id"]), before);
    assert_eq!(answers(&t), base);

    // Stopped, so that the file stays foreign: `stop` finds the lock's holder, which
    // the PID file names too, and stops it.
    signal(r.pid, Signal::SIGSTOP);
    std::fs::write(t.state_file("runtime.json"), rt.to_string()).unwrap();
    // Clients say so, instead of working around a resident that will not answer.
    fails(
        &t,
        &["index"],
        &[&r.pid.to_string(), "stopped", "schema_version 2"],
    );
    let v = json_run(&t, &["stop", "--json"], 0);
    assert_eq!(v["pid"], r.pid, "{v}");
    assert_eq!(t.wait_child(r.pid, WAIT), Some(0));

    assert_eq!(json_run(&t, &["start", "--json"], 0)["existing"], false);
    assert_eq!(answers(&t), base);
    t.ok(&["stop"]);
    assert_intact(&t, &base);
    assert_no_panic_logged(&t);
}

#[test]
fn lock_held_by_a_process_that_is_not_a_resident() {
    // Another program holds the lifetime lock: not a resident, not named by the PID
    // file. `stop` must not signal it, and must say what to do.
    if skip_without("python3") {
        return;
    }
    let (mut t, _base) = indexed();
    t.ok(&["init"]);
    let mut holder = Command::new("python3");
    holder
        .args([
            "-c",
            "import fcntl, sys, time\n\
             f = open(sys.argv[1], 'a')\n\
             fcntl.flock(f, fcntl.LOCK_EX)\n\
             time.sleep(300)",
        ])
        .arg(t.state_file("doc-serve.lock"))
        .stdout(Stdio::null());
    let pid = t.spawn(holder);
    wait_for(WAIT, "flock to hold the lock", || {
        (json_run(&t, &["status", "--json"], 1)["state"] == "starting").then_some(())
    });
    let err = fails(
        &t,
        &["stop"],
        &[
            "doc-serve.lock",
            &pid.to_string(),
            "python3",
            "not a doc-serve resident",
        ],
    );
    assert!(!err.contains("panicked"), "{err}");
    assert!(alive(pid), "a process that is not a resident was signalled");
}

#[test]
fn pid_file_naming_a_live_unrelated_process() {
    let (mut t, base) = indexed();
    let mut sleep = Command::new("sleep");
    sleep.arg("300");
    let other = t.spawn(sleep);
    let pid_file = t.state_file("doc-serve.pid");

    std::fs::write(&pid_file, format!("{other}\n")).unwrap();
    assert!(stale_reasons(&t).contains("is alive but does not hold the lock"));
    assert_eq!(answers(&t), base);
    assert!(
        !pid_file.exists(),
        "a client should clean the stale PID file"
    );

    std::fs::write(&pid_file, format!("{other}\n")).unwrap();
    let v = json_run(&t, &["start", "--json"], 0);
    assert_eq!(v["existing"], false);
    assert_ne!(v["pid"], other);
    assert_eq!(lock_pid(&t), v["pid"].as_u64().map(|p| p as u32));
    assert_eq!(answers(&t), base);
    t.ok(&["stop"]);
    assert!(alive(other), "an unrelated process was signalled");
    assert_intact(&t, &base);
    assert_no_panic_logged(&t);
}

fn lock_pid(t: &TestEnv) -> Option<u32> {
    std::fs::read_to_string(t.state_file("doc-serve.pid"))
        .ok()?
        .trim()
        .parse()
        .ok()
}

#[test]
fn lock_file_left_by_a_crash() {
    let (mut t, base) = indexed();
    let bulk = t.project.join("bulk");
    std::fs::create_dir_all(&bulk).unwrap();
    // Enough files that a full reindex lasts well over the 20 ms between polls.
    let filler = "lorem ipsum dolor sit amet ".repeat(40);
    for i in 0..3000 {
        let text = format!("# File {i}\n\nbulkmark{i} {filler}\n");
        std::fs::write(bulk.join(format!("f{i:04}.md")), text).unwrap();
    }
    t.ok(&["index"]);
    let r = serving(&mut t);
    // Killed in the middle of a full reindex, holding the lifetime lock and the index
    // lock: those, the PID file and runtime.json are all left behind.
    let mut s = TcpStream::connect(&r.addr).unwrap();
    s.write_all(r.request("POST", "/index", "{\"full\": true}").as_bytes())
        .unwrap();
    wait_for(
        Duration::from_secs(30),
        "the reindex to be part done",
        || {
            let p = r.index_state()["progress"].clone();
            let (done, total) = (p[0].as_u64()?, p[1].as_u64()?);
            assert!(done < total, "missed the middle: {done}/{total}");
            (done > 10).then_some(())
        },
    );
    signal(r.pid, Signal::SIGKILL);
    t.wait_child(r.pid, WAIT);
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let _ = s.read_to_end(&mut Vec::new());
    for f in [
        "doc-serve.lock",
        "doc-serve.pid",
        "runtime.json",
        "data/.index.lock",
    ] {
        assert!(t.state_file(f).exists(), "{f}");
    }

    // Nobody holds them now: the index opens and answers, and start takes over.
    assert!(stale_reasons(&t).contains("has exited"));
    assert_eq!(answers(&t), base);
    assert_eq!(hits(&t, "bulkmark2999"), ["bulk/f2999.md"]);
    assert_eq!(json_run(&t, &["start", "--json"], 0)["existing"], false);
    assert_eq!(answers(&t), base);
    t.ok(&["stop"]);
    assert_intact(&t, &base);
    assert_no_panic_logged(&t);
}

#[test]
fn port_already_taken() {
    let (mut t, base) = indexed();
    let port = free_port();
    let taken = std::net::TcpListener::bind(("127.0.0.1", port)).unwrap();
    t.set("DOC_SERVE_PORT", &port.to_string());
    let in_use = format!("port {port} is already in use");
    let owner = format!("pid {}", std::process::id());
    for args in [&["start"][..], &["serve"]] {
        fails(&t, args, &[&in_use, &owner]);
        assert!(!t.state_file("runtime.json").exists());
        assert!(!t.state_file("doc-serve.pid").exists());
        assert!(residents(&t).is_empty());
    }
    // Clients answer standalone meanwhile.
    assert_eq!(answers(&t), base);

    drop(taken);
    assert_eq!(json_run(&t, &["start", "--json"], 0)["existing"], false);
    assert_eq!(t.runtime()["port"], port);
    assert_eq!(answers(&t), base);
    t.ok(&["stop"]);
    assert_intact(&t, &base);
    assert_no_panic_logged(&t);
}

#[test]
fn second_start_racing_the_first() {
    let (mut t, base) = indexed();
    t.ok(&["init"]);
    // Two `start`s and a bare `serve`, all at once, on a project with an index.
    let starts: Vec<_> = (0..2)
        .map(|_| {
            t.cmd(&["start", "--json"])
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    let serve_err = t.root().join("serve.err");
    let mut serve = t.cmd(&["serve"]);
    serve
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&serve_err).unwrap());
    let serve_pid = t.spawn(serve);

    let mut urls = BTreeSet::new();
    for c in starts {
        let out = checked(&["start"], c.wait_with_output().unwrap());
        assert_eq!(
            out.status.code(),
            Some(0),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let v: Value = serde_json::from_slice(&out.stdout).unwrap();
        urls.insert(v["base_url"].as_str().unwrap().to_owned());
    }
    assert_eq!(urls.len(), 1, "{urls:?}");
    let rt = t.runtime();
    assert_eq!(urls.first().unwrap(), rt["base_url"].as_str().unwrap());
    let resident = rt["pid"].as_u64().unwrap() as u32;
    // The serve lost (refused clearly) or won (and is the one resident).
    if resident != serve_pid {
        assert_eq!(t.wait_child(serve_pid, WAIT), Some(2));
        let err = std::fs::read_to_string(&serve_err).unwrap();
        assert!(err.contains("already serving this project"), "{err}");
    }
    // A resident spawned by the losing start retries the lock briefly, then gives up.
    wait_for(WAIT, "the losers to exit", || {
        (residents(&t) == [resident]).then_some(())
    });
    assert_eq!(answers(&t), base);
    t.ok(&["stop"]);
    assert!(residents(&t).is_empty());
    assert_intact(&t, &base);
    assert_no_panic_logged(&t);
}

/// A second project beside `t`'s, with its own resident started: its root and PID.
fn second_project(t: &TestEnv) -> (std::path::PathBuf, u32) {
    let other = t.root().join("other");
    std::fs::create_dir_all(other.join(".git")).unwrap();
    std::fs::write(other.join("b.md"), "# B\n\nThe other project.\n").unwrap();
    let out = run(t, &["--path", other.to_str().unwrap(), "start", "--json"]);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    (other, v["pid"].as_u64().unwrap() as u32)
}

#[test]
fn runtime_json_naming_another_process_is_never_signalled_for_it() {
    let (mut t, base) = indexed();
    let (other, other_pid) = second_project(&t);
    let r = serving(&mut t);
    let mut sleep = Command::new("sleep");
    sleep.arg("300");
    let decoy = t.spawn(sleep);
    // The resident is stopped, so that it cannot write its runtime.json again.
    signal(r.pid, Signal::SIGSTOP);

    // Another project's runtime.json, and one naming an unrelated process with its
    // true start time: neither is the lock's holder, which is what `stop` stops.
    let theirs = std::fs::read(other.join(".claude/doc-serve/runtime.json")).unwrap();
    std::fs::write(t.state_file("runtime.json"), &theirs).unwrap();
    let status = json_run(&t, &["status", "--json"], 1);
    assert!(
        status["why"].as_str().unwrap().contains(&r.pid.to_string()),
        "{status}"
    );
    let mut forged = t.runtime();
    forged["pid"] = json!(decoy);
    forged["process"]["start_time"] = json!(start_time_of(decoy));
    std::fs::write(t.state_file("runtime.json"), forged.to_string()).unwrap();
    let v = json_run(&t, &["stop", "--force", "--json"], 0);
    assert_eq!(v["pid"], r.pid, "{v}");
    assert_eq!(t.wait_child(r.pid, WAIT), Some(0));
    assert!(alive(decoy), "an unrelated process was signalled");
    assert!(alive(other_pid), "another project's resident was signalled");

    let out = run(&t, &["--path", other.to_str().unwrap(), "stop"]);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    assert_intact(&t, &base);
}

#[test]
fn a_state_dir_shared_with_another_project_is_refused() {
    // A worktree whose `.claude` links to its main checkout's: the resident there
    // holds the lock, and runtime.json names that project.
    let (t, _base) = indexed();
    let (other, other_pid) = second_project(&t);
    std::fs::remove_dir_all(t.project.join(".claude")).unwrap();
    std::os::unix::fs::symlink(other.join(".claude"), t.project.join(".claude")).unwrap();
    for args in [
        &["query", "--", "quorum"][..],
        &["start"],
        &["stop"],
        &["index"],
    ] {
        fails(&t, args, &["is also that of", &other.display().to_string()]);
    }
    assert_eq!(json_run(&t, &["status", "--json"], 1)["state"], "foreign");
    assert!(alive(other_pid), "the other project's resident was stopped");
    let out = run(&t, &["--path", other.to_str().unwrap(), "stop"]);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
}

#[test]
fn a_stopped_resident_with_an_unusable_runtime_json_is_not_bypassed() {
    let (mut t, base) = indexed();
    let r = serving(&mut t);
    signal(r.pid, Signal::SIGSTOP);
    std::fs::write(t.state_file("runtime.json"), "{").unwrap();
    let pid = r.pid.to_string();
    fails(
        &t,
        &["query", "--", "quorum"],
        &[&pid, "stopped", "doc-serve stop"],
    );
    fails(&t, &["start"], &[&pid, "stopped", "doc-serve stop"]);
    assert_eq!(
        json_run(&t, &["status", "--json"], 1)["state"],
        "unresponsive"
    );
    t.ok(&["stop"]);
    assert_eq!(t.wait_child(r.pid, WAIT), Some(0));
    assert_intact(&t, &base);
}

#[test]
fn sighup_is_a_clean_stop() {
    let (mut t, _base) = indexed();
    let r = serving(&mut t);
    signal(r.pid, Signal::SIGHUP);
    assert_eq!(t.wait_child(r.pid, WAIT), Some(0));
    assert!(!t.state_file("runtime.json").exists());
    assert!(!t.state_file("doc-serve.pid").exists());
}

#[test]
fn a_resident_reports_the_index_last_commit() {
    let (mut t, _base) = indexed();
    let r = serving(&mut t);
    let footer = r.get("/status").json()["index"].clone();
    assert!(footer["last_commit"].is_string(), "{footer}");
    r.stop(&mut t);
}

#[test]
fn runtime_json_made_a_fifo_or_a_link_to_dev_zero() {
    let (mut t, base) = indexed();
    let r = serving(&mut t);
    let before = t.runtime();
    let file = t.state_file("runtime.json");
    for make in ["fifo", "zero"] {
        std::fs::remove_file(&file).unwrap();
        match make {
            "fifo" => nix::unistd::mkfifo(&file, nix::sys::stat::Mode::S_IRWXU).unwrap(),
            _ => std::os::unix::fs::symlink("/dev/zero", &file).unwrap(),
        }
        // Clients neither hang nor fill memory, and the resident writes its own again.
        assert_eq!(rewritten(&t, &r, &before["instance_id"]), before, "{make}");
        assert_eq!(answers(&t), base, "{make}");
    }
    t.ok(&["stop"]);
    assert_eq!(t.wait_child(r.pid, WAIT), Some(0));
}

#[test]
fn a_stopped_resident_whose_state_dir_was_deleted_is_stopped() {
    let (mut t, _base) = indexed();
    let r = serving(&mut t);
    signal(r.pid, Signal::SIGSTOP);
    std::fs::remove_dir_all(t.project.join(".claude")).unwrap();
    let v = json_run(&t, &["stop", "--json"], 0);
    assert_eq!(v["pid"], r.pid, "{v}");
    assert_eq!(t.wait_child(r.pid, WAIT), Some(0));
}
