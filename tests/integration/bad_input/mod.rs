//! Bad input, one test per case: it gets a clear error, never a panic, and the
//! index that answered before answers the same after.
//!
//! Every test indexes the fixtures first and records what a few probe queries find.
//! After the bad input, `index --json` must find nothing to add, update or remove (no
//! document lost or changed) and the probes must find the same sections; the output
//! of every command and every log must be free of "panicked". Where an older suite
//! already pins a case down (stale.rs, config.rs, http.rs, search.rs, lifecycle.rs),
//! the test here comes at it from another side: through the clients that use the
//! index, with a resident running, and always with those "loses nothing" checks.
//!
//! The cases by theme: `discovery` (runtime.json, the PID file, lock files, a taken
//! port, a racing start), `state_dir` (a garbage config.json, a state dir that cannot
//! be used), `sources` (what the walker and the watcher meet on disk), `queries` (odd,
//! empty and enormous queries, paths with `..`), `http` (oversized and slow bodies) and
//! `mcp` (malformed MCP messages over stdio and at /mcp).
//! The helpers here are the ones several of them use.

mod discovery;
mod http;
mod mcp;
mod moved;
mod queries;
mod sources;
mod state_dir;

use std::collections::BTreeSet;
use std::process::Output;
use std::time::Duration;

use serde_json::{Value, json};

use crate::search::with_fixtures;
use crate::util::*;

const WAIT: Duration = Duration::from_secs(15);

/// Words only the fixtures hold: what they find is the index's fingerprint.
const PROBES: [&str; 5] = [
    "quorum",
    "installer platform",
    "bearer token",
    "snapshots hourly",
    "evicting",
];

/// Per probe, the sections found: (path, first line, last line). Sets, because the
/// order of close scores may change when unrelated files join the index.
type Answers = Vec<BTreeSet<(String, u64, u64)>>;

/// Runs the binary and checks that it ended by itself, without a panic.
fn run(t: &TestEnv, args: &[&str]) -> Output {
    checked(args, t.run(args))
}

fn checked(args: &[&str], out: Output) -> Output {
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.code().is_some(),
        "doc-serve {args:?} was killed by a signal: {err}"
    );
    assert!(
        !err.contains("panicked"),
        "doc-serve {args:?} panicked: {err}"
    );
    out
}

/// Exit code 2, and stderr naming the problem with every one of `needles`.
fn fails(t: &TestEnv, args: &[&str], needles: &[&str]) -> String {
    let out = run(t, args);
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(2), "doc-serve {args:?}: {err}");
    for n in needles {
        assert!(err.contains(n), "doc-serve {args:?}: {n:?} not in {err}");
    }
    err
}

/// `args` with `--json`, expecting `code`.
fn json_run(t: &TestEnv, args: &[&str], code: i32) -> Value {
    let out = run(t, args);
    assert_eq!(
        out.status.code(),
        Some(code),
        "doc-serve {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

fn sections(v: &Value) -> BTreeSet<(String, u64, u64)> {
    v["hits"]
        .as_array()
        .unwrap_or_else(|| panic!("no hits in {v}"))
        .iter()
        .map(|h| {
            let n = |k: &str| h[k].as_u64().unwrap();
            (
                h["path"].as_str().unwrap().to_owned(),
                n("line_start"),
                n("line_end"),
            )
        })
        .collect()
}

/// The paths a query finds (through the CLI: the resident's when one runs).
fn hits(t: &TestEnv, q: &str) -> Vec<String> {
    let out = run(t, &["query", "--json", "--", q]);
    assert!(
        matches!(out.status.code(), Some(0 | 1)),
        "{q}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    sections(&v).into_iter().map(|s| s.0).collect()
}

fn answers(t: &TestEnv) -> Answers {
    PROBES
        .iter()
        .map(|q| sections(&json_run(t, &["query", "--json", "--", q], 0)))
        .collect()
}

/// Indexes the fixtures of `t` and returns what the probes find.
fn index_fixtures(t: &TestEnv) -> Answers {
    let v = json_run(t, &["index", "--json"], 0);
    assert_eq!(v["summary"]["added"], 5, "{v}");
    answers(t)
}

fn indexed() -> (TestEnv, Answers) {
    let t = with_fixtures();
    let base = index_fixtures(&t);
    (t, base)
}

/// Nothing to add, update or remove, and the probes find what they found before.
/// The index is checked before the probes run: a standalone query rebuilds an empty
/// index first, which would hide one that was wiped.
fn assert_intact(t: &TestEnv, base: &Answers) {
    let v = json_run(t, &["index", "--json"], 0);
    let s = &v["summary"];
    assert_eq!(
        (&s["added"], &s["updated"], &s["removed"]),
        (&json!(0), &json!(0), &json!(0)),
        "the index lost or changed documents: {v}"
    );
    assert_eq!(answers(t), *base, "the probes answer differently");
}

/// No panic in the output of any resident of this test.
fn assert_no_panic_logged(t: &TestEnv) {
    for f in [
        t.root().join("serve.err"),
        t.state_file("logs/serve.log"),
        t.state_file("logs/events.jsonl"),
    ] {
        let text = String::from_utf8_lossy(&std::fs::read(&f).unwrap_or_default()).into_owned();
        assert!(!text.contains("panicked"), "{}: {text}", f.display());
    }
}

/// A resident run with `serve` in the foreground, and how to reach it.
struct Resident {
    pid: u32,
    addr: String,
    auth: String,
}

fn serving(t: &mut TestEnv) -> Resident {
    let pid = t.spawn_serve(&[]);
    let rt = t.wait_runtime(WAIT);
    let r = Resident {
        pid,
        addr: addr_of(&rt),
        auth: format!("Authorization: Bearer {}", rt["token"].as_str().unwrap()),
    };
    r.wait_idle();
    r
}

impl Resident {
    fn get(&self, path: &str) -> Reply {
        get(&self.addr, path, &[&self.auth])
    }

    fn post(&self, path: &str, body: &str) -> Reply {
        raw(&self.addr, self.request("POST", path, body).as_bytes())
    }

    fn request(&self, method: &str, path: &str, body: &str) -> String {
        format!(
            "{method} {path} HTTP/1.1\r\nHost: {}\r\n{}\r\nContent-Type: application/json\r\n\
             Accept: application/json, text/event-stream\r\n\
             Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
            self.addr,
            self.auth,
            body.len()
        )
    }

    fn index_state(&self) -> Value {
        self.get("/status").json()["index"].clone()
    }

    /// Waits until no indexing runs or waits.
    fn wait_idle(&self) {
        wait_for(Duration::from_secs(60), "the index to settle", || {
            let s = self.index_state();
            (s["indexing"] == false && s["pending_changes"] == false).then_some(())
        });
    }

    /// The paths a query finds over HTTP.
    fn hits(&self, q: &str) -> Vec<String> {
        let mut qs = form_urlencoded::Serializer::new(String::new());
        qs.append_pair("q", q);
        let r = self.get(&format!("/query?{}", qs.finish()));
        assert_eq!(r.status, 200, "{q}: {r:?}");
        sections(&r.json()).into_iter().map(|s| s.0).collect()
    }

    /// SIGTERM, and a clean exit.
    fn stop(self, t: &mut TestEnv) {
        assert!(alive(self.pid), "the resident died");
        signal(self.pid, Signal::SIGTERM);
        assert_eq!(t.wait_child(self.pid, WAIT), Some(0));
    }
}

/// PIDs of live `doc-serve ... serve` processes for this test's project.
fn residents(t: &TestEnv) -> Vec<u32> {
    let project = t.project.display().to_string();
    std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|e| {
            let pid: u32 = e.file_name().to_str()?.parse().ok()?;
            let cmd = std::fs::read(e.path().join("cmdline")).ok()?;
            let args: Vec<&[u8]> = cmd.split(|b| *b == 0).collect();
            let cwd = std::fs::read_link(e.path().join("cwd")).ok();
            let ours = args.contains(&project.as_bytes()) || cwd.as_deref() == Some(&t.project);
            (args.contains(&&b"serve"[..]) && ours && alive(pid)).then_some(pid)
        })
        .collect()
}
