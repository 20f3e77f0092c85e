//! Client commands find the one resident: `query` and `index` delegate to it and run
//! standalone otherwise, with the same output.

use nix::sys::signal::Signal;
use serde_json::Value;

use crate::search::with_fixtures;
use crate::util::*;

/// The JSON output without its timing fields, and of its freshness footer only what
/// a resident and a standalone answer share (the figures; a standalone answer has no
/// watcher, nothing pending, and reads the last commit from the index).
fn untimed(out: &str) -> String {
    let Ok(mut v) = serde_json::from_str::<Value>(out) else {
        return out.to_owned();
    };
    v.as_object_mut().unwrap().remove("took_ms");
    let index = v["index"].take();
    assert!(index.is_object(), "no freshness footer: {out}");
    v["index"] = serde_json::json!({
        "files": index["files"], "chunks": index["chunks"], "indexing": index["indexing"],
    });
    v.to_string()
}

fn served(t: &TestEnv) -> u64 {
    let rt = t.runtime();
    let token = format!("Authorization: Bearer {}", rt["token"].as_str().unwrap());
    get(&addr_of(&rt), "/status", &[&token]).json()["requests"]["served"]
        .as_u64()
        .unwrap()
}

#[test]
fn query_and_index_delegate_with_the_same_output() {
    let t = with_fixtures();
    t.ok(&["index"]);
    let args = ["query", "--json", "--limit", "3", "installer platform"];
    let standalone = t.ok(&args);
    let text = t.ok(&["query", "installer"]);
    let none = t.expect(&["query", "--json", "zzzqqq"], 1);

    t.ok(&["start"]);
    let before = served(&t);
    let delegated = t.ok(&args);
    // /status itself counts once; the query made at least /query (and a health check).
    assert!(
        served(&t) >= before + 2,
        "the query did not reach the resident"
    );
    assert_eq!(untimed(&delegated), untimed(&standalone));
    assert!(standalone.contains("docs/guide/install.md"), "{standalone}");
    assert_eq!(t.ok(&["query", "installer"]), text);
    assert_eq!(
        untimed(&t.expect(&["query", "--json", "zzzqqq"], 1)),
        untimed(&none)
    );
    // A query the engine rejects is the same usage error both ways.
    let err = t.expect(&["query", "--", "-only"], 2);
    assert!(err.is_empty());

    let v = t.json(&["index", "--json"]);
    assert_eq!(v["summary"]["unchanged"], 5, "{v}");
    assert_eq!(v["files"], 5, "{v}");
    std::fs::write(
        t.project.join("docs/new.md"),
        "# New\n\nfreshly added words\n",
    )
    .unwrap();
    // The resident's watcher may index it first; either way the delegated index
    // answers once it is in.
    let v = t.json(&["index", "--json"]);
    assert_eq!(v["summary"]["scanned"], 6, "{v}");
    assert_eq!(v["files"], 6, "{v}");
    t.ok(&["stop"]);
}

#[test]
fn standalone_when_nothing_runs_and_autostart_when_asked() {
    let mut t = with_fixtures();
    let v = t.json(&["query", "--json", "installer"]);
    assert_eq!(v["hits"][0]["path"], "docs/guide/install.md", "{v}");
    assert!(
        !t.state_file("runtime.json").exists(),
        "a query without autostart started a resident"
    );

    t.set("DOC_SERVE_AUTOSTART", "true");
    let v = t.json(&["query", "--json", "installer"]);
    assert_eq!(v["hits"][0]["path"], "docs/guide/install.md", "{v}");
    let rt = t.wait_runtime(std::time::Duration::from_secs(5));
    let pid = rt["pid"].as_u64().unwrap() as u32;
    assert!(alive(pid));
    // The next query uses it rather than starting another.
    t.json(&["query", "--json", "installer"]);
    assert_eq!(t.runtime()["pid"], rt["pid"]);

    // The resident dies without cleaning up: the next query still answers (here by
    // starting a new resident), and the stale files are gone.
    signal(pid, Signal::SIGKILL);
    // Until its last thread is gone its lock is held (a query meanwhile waits for it).
    wait_for(
        std::time::Duration::from_secs(5),
        "the resident to die",
        || (t.json_code(&["status", "--json"], 1)["state"] == "stopped").then_some(()),
    );
    t.set("DOC_SERVE_LOG", "info");
    let out = t.run(&["query", "--json", "installer"]);
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["hits"][0]["path"], "docs/guide/install.md", "{v}");
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(log.contains("removed stale"), "{log}");
    assert_ne!(t.runtime()["pid"], rt["pid"], "{log}");

    t.set("DOC_SERVE_AUTOSTART", "false");
    t.ok(&["stop"]);
    t.set("DOC_SERVE_AUTOSTART", "maybe");
    let err = String::from_utf8(t.run(&["query", "installer"]).stderr).unwrap();
    assert!(err.contains("DOC_SERVE_AUTOSTART"), "{err}");
}

/// `n` files of about a kilobyte under docs/, then, last in the walk, one holding
/// `needle`.
fn many_files(t: &TestEnv, n: usize, needle: &str) {
    let docs = t.project.join("docs");
    let filler = "Common words about widgets, settings and their defaults. ".repeat(16);
    for i in 0..n {
        let dir = docs.join(format!("d{:02}", i % 40));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(
            dir.join(format!("f{i}.md")),
            format!("# File {i}\n\n{filler}\n"),
        )
        .unwrap();
    }
    std::fs::create_dir_all(docs.join("zz")).unwrap();
    std::fs::write(
        docs.join("zz/needle.md"),
        format!("# Needle\n\nThe {needle} is here.\n"),
    )
    .unwrap();
}

/// `query --json ARGS`: the exit code, the answer, stderr.
fn query(t: &TestEnv, args: &[&str]) -> (Option<i32>, Value, String) {
    let mut all = vec!["query", "--json"];
    all.extend_from_slice(args);
    let out = t.run(&all);
    let v = serde_json::from_slice(&out.stdout).unwrap_or_default();
    (
        out.status.code(),
        v,
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// `start`, then `query` at once, on thousands of files: the query waits for the first
/// index and finds the file indexed last (or, past the wait, says the index is
/// incomplete). It used to answer "nothing", exit 1, with no freshness footer.
#[test]
fn a_query_right_after_start_waits_for_the_first_index() {
    let t = TestEnv::new();
    many_files(&t, 3000, "quuxneedle");
    t.ok(&["start"]);
    let (code, v, err) = query(&t, &["quuxneedle"]);
    assert!(v["index"].is_object(), "no freshness footer: {v}");
    if v["index"]["indexing"] == false {
        assert_eq!(code, Some(0), "{v} {err}");
        assert_eq!(v["hits"][0]["path"], "docs/zz/needle.md", "{v}");
        assert_eq!(v["index"]["files"], 3001, "{v}");
    } else {
        // Slower than the 20 s wait: the answer says so.
        assert!(err.contains("still being built"), "{err}");
    }
    t.ok(&["stop"]);
}

/// With the first index held up (its lock taken), a query past its wait answers what
/// is there and says it is incomplete, on the CLI, over HTTP; the MCP bridge waits
/// like /query; once the index is built everything is answered; and the standalone
/// answer carries the same footer.
#[test]
fn past_the_wait_an_answer_says_the_index_is_incomplete() {
    let mut t = TestEnv::new();
    many_files(&t, 20, "quuxneedle");
    t.ok(&["init"]);
    t.set("DOC_SERVE_LOCK_TIMEOUT_SECONDS", "1");
    let lock = hold_index_lock(&t);
    t.ok(&["start"]);

    let started = std::time::Instant::now();
    let (code, v, err) = query(&t, &["--wait", "1", "quuxneedle"]);
    assert!(started.elapsed() >= std::time::Duration::from_secs(1));
    assert_eq!(code, Some(1), "{v} {err}");
    assert_eq!(v["index"]["indexing"], true, "{v}");
    assert_eq!(v["index"]["files"], 0, "{v}");
    assert!(err.contains("the index is still being built"), "{err}");
    let text = t.run(&["query", "--wait", "0", "quuxneedle"]);
    assert_eq!(text.status.code(), Some(1));
    assert!(text.stdout.is_empty(), "{text:?}");
    let err = String::from_utf8_lossy(&text.stderr);
    assert!(
        err.contains("no results") && err.contains("still being built"),
        "{err}"
    );

    let rt = t.runtime();
    let auth = format!("Authorization: Bearer {}", rt["token"].as_str().unwrap());
    let r = get(&addr_of(&rt), "/query?q=quuxneedle&wait=0", &[&auth]);
    assert_eq!(r.status, 200);
    let v = r.json();
    assert_eq!(v["index"]["indexing"], true, "{v}");
    assert!(v["hits"].as_array().unwrap().is_empty(), "{v}");
    let r = get(&addr_of(&rt), "/query?q=quuxneedle&wait=x", &[&auth]);
    assert_eq!(r.status, 400);

    // The MCP bridge's search waits for the index, which the lock now lets through.
    let release = std::thread::spawn(move || {
        std::thread::sleep(std::time::Duration::from_millis(1500));
        drop(lock);
    });
    let mut bridge = crate::concurrency::Bridge::open(&t);
    let r = bridge
        .call(
            "tools/call",
            serde_json::json!({"name": "search_docs", "arguments": {"query": "quuxneedle"}}),
        )
        .unwrap();
    release.join().unwrap();
    let text = r["content"][0]["text"].as_str().unwrap();
    assert!(text.contains("docs/zz/needle.md"), "{r}");
    assert!(!text.contains("still being built"), "{r}");
    drop(bridge);

    let (code, v, err) = query(&t, &["quuxneedle"]);
    assert_eq!(code, Some(0), "{v} {err}");
    assert_eq!(v["index"]["indexing"], false, "{v}");
    assert!(!err.contains("still being built"), "{err}");
    t.ok(&["stop"]);

    // Without a resident: the same footer, from the index on disk.
    let (code, v, _) = query(&t, &["quuxneedle"]);
    assert_eq!(code, Some(0));
    assert_eq!(v["index"]["files"], 21, "{v}");
    assert_eq!(v["index"]["indexing"], false, "{v}");
    assert!(v["index"]["last_commit"].is_string(), "{v}");
    assert!(
        v["index"]["watcher"]
            .as_str()
            .unwrap()
            .contains("without a resident"),
        "{v}"
    );
}

/// A query waiting for the first index is answered, from what is committed, as soon
/// as the resident is told to stop: the wait never holds up a shutdown.
#[test]
fn a_waiting_query_answers_when_the_resident_stops() {
    let t = TestEnv::new();
    many_files(&t, 20, "quuxneedle");
    t.ok(&["init"]);
    let _lock = hold_index_lock(&t);
    t.ok(&["start"]);
    let started = std::time::Instant::now();
    let waiting = {
        let cmd = t.cmd(&["query", "--json", "quuxneedle"]);
        std::thread::spawn(move || {
            let mut cmd = cmd;
            let out = cmd.output().unwrap();
            (out, started.elapsed())
        })
    };
    std::thread::sleep(std::time::Duration::from_millis(700));
    t.ok(&["stop"]);
    let (out, took) = waiting.join().unwrap();
    // Well before the drain timeout (5 s) would have cut it off.
    assert!(took < std::time::Duration::from_secs(3), "{took:?}");
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(out.status.code(), Some(1), "{v}");
    assert_eq!(v["index"]["indexing"], true, "{v}");
}
