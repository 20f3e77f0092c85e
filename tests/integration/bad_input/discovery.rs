//! SPEC §10, the discovery files: runtime.json truncated, garbage or from a newer
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

#[test]
fn truncated_runtime_json() {
    let (mut t, base) = indexed();
    t.set("DOC_SERVE_START_TIMEOUT_SECONDS", "2");
    let r = serving(&mut t);
    let text = std::fs::read_to_string(t.state_file("runtime.json")).unwrap();
    std::fs::write(t.state_file("runtime.json"), &text[..text.len() / 2]).unwrap();

    // Never trusted: clients answer standalone meanwhile, the same.
    assert_eq!(answers(&t), base);
    let status = json_run(&t, &["status", "--json"], 1);
    assert_eq!(status["state"], "starting", "{status}");
    // `start` says why it cannot use the file, and starts no second resident.
    let pid = r.pid.to_string();
    fails(
        &t,
        &["start"],
        &["runtime.json is unusable", "not valid JSON", &pid],
    );
    assert_eq!(residents(&t), [r.pid]);
    assert_eq!(r.get("/health").status, 200);
    r.stop(&mut t);

    // The file was not the resident's to remove; the next start removes it as stale.
    assert!(stale_reasons(&t).contains("truncated or garbage"));
    let v = json_run(&t, &["start", "--json"], 0);
    assert_eq!(v["existing"], false);
    assert_eq!(answers(&t), base);
    t.ok(&["stop"]);
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
    t.set("DOC_SERVE_START_TIMEOUT_SECONDS", "2");
    let r = serving(&mut t);
    // A newer doc-serve's file, naming an address we must not trust.
    let mut rt = t.runtime();
    rt["schema_version"] = json!(2);
    rt["base_url"] = json!("http://127.0.0.1:1");
    std::fs::write(t.state_file("runtime.json"), rt.to_string()).unwrap();

    // Clients work standalone beside it, readers and writers alike.
    assert_eq!(answers(&t), base);
    let v = json_run(&t, &["index", "--json"], 0);
    assert_eq!(v["summary"]["added"], 0, "{v}");
    // `stop` will not signal what it cannot identify, and says so.
    fails(&t, &["stop"], &["schema_version 2", "not signalling"]);
    assert_eq!(residents(&t), [r.pid]);
    r.stop(&mut t);

    assert!(stale_reasons(&t).contains("schema_version 2"));
    assert_eq!(json_run(&t, &["start", "--json"], 0)["existing"], false);
    assert_eq!(answers(&t), base);
    t.ok(&["stop"]);
    assert_intact(&t, &base);
    assert_no_panic_logged(&t);
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
