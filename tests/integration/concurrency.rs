//! Several processes writing one index while files churn: twenty racing `start`s make
//! one resident; then the resident, four `doc-serve index` loops and three MCP bridges
//! (`doc-serve mcp`, reindexing and searching) work on one project for 60 s of random
//! file changes, while the resident is stopped now and then, so that the `index` runs
//! write the index themselves until a bridge starts a resident again. No command or
//! tool call may fail meanwhile, and the final index must equal the files on disk.
//! `DOC_SERVE_TEST_CHURN_SECS` sets the churn's length.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Lines, Write};
use std::process::{Child, ChildStdin, ChildStdout, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::util::*;

/// A tiny deterministic generator (xorshift), so a failure can be replayed.
pub struct Rng(pub u64);
impl Rng {
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

pub fn doc(id: u64, version: u64) -> String {
    format!("# File {id}\n\nThis section holds marker tok{id}x{version} and some filler text.\n")
}

/// Every file's current marker must find exactly that file, and `gone` markers nothing.
pub fn assert_exact(t: &TestEnv, expected: &BTreeMap<String, String>, gone: &[String]) {
    for (path, marker) in expected {
        let out = t.run(&["query", "--json", marker]);
        let v: Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(hit_paths(&v), [path.as_str()], "marker {marker}");
    }
    for marker in gone {
        let out = t.run(&["query", "--json", marker]);
        assert_eq!(
            out.status.code(),
            Some(1),
            "stale marker {marker} still found: {}",
            String::from_utf8_lossy(&out.stdout)
        );
    }
    let v = t.json(&["index", "--json"]);
    let s = &v["summary"];
    assert_eq!(
        (
            s["added"].as_u64(),
            s["updated"].as_u64(),
            s["removed"].as_u64()
        ),
        (Some(0), Some(0), Some(0)),
        "{v}"
    );
    assert_eq!(v["files"].as_u64(), Some(expected.len() as u64), "{v}");
}

fn churn_secs() -> u64 {
    std::env::var("DOC_SERVE_TEST_CHURN_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(60)
}

/// A minimal MCP client of `doc-serve mcp`: newline-delimited JSON-RPC over stdio.
pub struct Bridge {
    child: Child,
    stdin: ChildStdin,
    lines: Lines<BufReader<ChildStdout>>,
    id: u64,
}

impl Bridge {
    pub fn open(t: &TestEnv) -> Bridge {
        let mut child = t
            .cmd(&["mcp"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let stdin = child.stdin.take().unwrap();
        let lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let mut b = Bridge {
            child,
            stdin,
            lines,
            id: 0,
        };
        let init = serde_json::json!({
            "protocolVersion": "2025-06-18",
            "capabilities": {},
            "clientInfo": {"name": "churn", "version": "1"}
        });
        b.call("initialize", init).unwrap();
        b.send(&serde_json::json!({"jsonrpc": "2.0", "method": "notifications/initialized"}));
        b
    }

    fn send(&mut self, v: &Value) {
        writeln!(self.stdin, "{v}").unwrap();
        self.stdin.flush().unwrap();
    }

    pub fn call(&mut self, method: &str, params: Value) -> Result<Value, String> {
        self.id += 1;
        let id = self.id;
        self.send(
            &serde_json::json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params}),
        );
        loop {
            let line = self
                .lines
                .next()
                .ok_or("the bridge closed stdout")?
                .map_err(|e| e.to_string())?;
            let v: Value = serde_json::from_str(&line).map_err(|e| format!("{e}: {line}"))?;
            if v["id"] != id {
                continue;
            }
            return match v.get("error") {
                Some(e) => Err(format!("{method}: {e}")),
                None => Ok(v["result"].clone()),
            };
        }
    }

    /// A tool call; a tool error is an `Err` with its text.
    fn tool(&mut self, name: &str, args: Value) -> Result<(), String> {
        let r = self.call(
            "tools/call",
            serde_json::json!({"name": name, "arguments": args}),
        )?;
        match r["isError"].as_bool() {
            Some(false) | None => Ok(()),
            Some(true) => Err(format!("{name}: {r}")),
        }
    }
}

impl Drop for Bridge {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

type Failures = Arc<Mutex<Vec<String>>>;

/// Runs `step` until `stop`, recording its failures; how many steps ran.
fn worker(
    stop: &Arc<AtomicBool>,
    failures: &Failures,
    mut step: impl FnMut(u64) -> Result<(), String> + Send + 'static,
) -> std::thread::JoinHandle<u64> {
    let (stop, failures) = (stop.clone(), failures.clone());
    std::thread::spawn(move || {
        let mut n = 0;
        while !stop.load(Ordering::Relaxed) {
            if let Err(e) = step(n) {
                failures.lock().unwrap().push(e);
            }
            n += 1;
        }
        n
    })
}

/// `doc-serve ARGS` with the test's environment; exit codes other than `ok` fail.
fn command(env: &[(String, String)], args: &[&str], ok: &[i32]) -> Result<(), String> {
    let out = std::process::Command::new(BIN)
        .args(args)
        .env_clear()
        .envs(env.iter().map(|(k, v)| (k, v)))
        .stdin(Stdio::null())
        .output()
        .unwrap();
    match out.status.code() {
        Some(c) if ok.contains(&c) => Ok(()),
        _ => Err(format!(
            "{args:?}: {:?}: {}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        )),
    }
}

#[test]
fn twenty_starts_then_eight_writers_under_churn_end_exact() {
    let mut t = TestEnv::new();
    t.set("DOC_SERVE_DEBOUNCE_MS", "50");
    t.set("DOC_SERVE_PROJECT", &t.project.display().to_string());
    let docs = t.project.join("docs");
    std::fs::create_dir_all(&docs).unwrap();
    let mut expected = BTreeMap::new();
    let mut gone = Vec::new();
    for id in 0..40 {
        std::fs::write(docs.join(format!("f{id}.md")), doc(id, 0)).unwrap();
        expected.insert(format!("docs/f{id}.md"), format!("tok{id}x0"));
    }
    t.ok(&["init"]);
    crate::lifecycle::racing_starts(&t, 20);

    let stop = Arc::new(AtomicBool::new(false));
    let failures: Failures = Arc::new(Mutex::new(Vec::new()));
    let mut writers = Vec::new();
    // Four `doc-serve index` loops: through the resident when one answers, else
    // writing the index themselves.
    for _ in 0..4 {
        let env = t.env.clone();
        writers.push(worker(&stop, &failures, move |_| {
            command(&env, &["index", "--json"], &[0])
        }));
    }
    // Three MCP bridges, each reindexing and searching.
    for _ in 0..3 {
        let mut bridge = Bridge::open(&t);
        writers.push(worker(&stop, &failures, move |n| {
            bridge.tool("reindex", serde_json::json!({}))?;
            let q = format!("tok{}x0 filler", n % 50);
            bridge.tool("search_docs", serde_json::json!({"query": q, "limit": 5}))
        }));
    }
    // Queries from the CLI all along: found (0) or not found (1), never an error.
    let env = t.env.clone();
    let queries = worker(&stop, &failures, move |n| {
        let q = format!("tok{}x0", n % 50);
        command(&env, &["query", "--json", &q, "filler"], &[0, 1])
    });

    // Churn: create, edit, rename, delete; now and then the resident is stopped.
    let mut rng = Rng(0x5eed_1234_abcd);
    let mut next_id = 40;
    let mut stops = 0;
    let mut next_stop = Instant::now() + Duration::from_secs(3 + rng.below(5));
    let deadline = Instant::now() + Duration::from_secs(churn_secs());
    while Instant::now() < deadline {
        if Instant::now() >= next_stop {
            if let Err(e) = command(&t.env, &["stop", "--json"], &[0]) {
                failures.lock().unwrap().push(e);
            }
            stops += 1;
            next_stop = Instant::now() + Duration::from_secs(3 + rng.below(5));
        }
        let keys: Vec<String> = expected.keys().cloned().collect();
        let pick = keys
            .get(rng.below(keys.len().max(1) as u64) as usize)
            .cloned();
        match (rng.below(4), pick) {
            (0, _) | (_, None) => {
                let id = next_id;
                next_id += 1;
                std::fs::write(docs.join(format!("f{id}.md")), doc(id, 0)).unwrap();
                expected.insert(format!("docs/f{id}.md"), format!("tok{id}x0"));
            }
            (1, Some(path)) => {
                let id: u64 = path
                    .trim_start_matches("docs/f")
                    .trim_end_matches(".md")
                    .parse()
                    .unwrap();
                let v = rng.below(1_000_000) + 1;
                std::fs::write(t.project.join(&path), doc(id, v)).unwrap();
                gone.push(expected.insert(path, format!("tok{id}x{v}")).unwrap());
            }
            (2, Some(path)) => {
                let id = next_id;
                next_id += 1;
                let marker = expected.remove(&path).unwrap();
                let to = format!("docs/f{id}.md");
                // Renamed content keeps its marker under the new name.
                std::fs::rename(t.project.join(&path), t.project.join(&to)).unwrap();
                expected.insert(to, marker);
            }
            (_, Some(path)) => {
                std::fs::remove_file(t.project.join(&path)).unwrap();
                gone.push(expected.remove(&path).unwrap());
            }
        }
        std::thread::sleep(Duration::from_millis(10 + rng.below(40)));
    }
    stop.store(true, Ordering::Relaxed);
    let runs: Vec<u64> = writers.into_iter().map(|h| h.join().unwrap()).collect();
    let n_queries = queries.join().unwrap();
    let failures = failures.lock().unwrap().clone();
    eprintln!(
        "churn: {} s, writer steps {runs:?}, {n_queries} queries, resident stopped {stops} times, \
         {} files at the end",
        churn_secs(),
        expected.len()
    );
    assert!(
        failures.is_empty(),
        "{} failures, first: {:?}",
        failures.len(),
        failures.first()
    );
    assert!(
        runs.iter().all(|r| *r > 0) && n_queries > 0,
        "{runs:?} {n_queries}"
    );

    // A resident again; once its watcher settles, the index must equal the disk.
    t.ok(&["start"]);
    let rt = t.runtime();
    let addr = addr_of(&rt);
    let auth = format!("Authorization: Bearer {}", rt["token"].as_str().unwrap());
    wait_for(Duration::from_secs(20), "the resident to settle", || {
        let s = get(&addr, "/status", &[&auth]).json();
        let idle = s["index"]["indexing"] == false && s["index"]["pending_changes"] == false;
        idle.then_some(())
    });
    let gone: Vec<String> = gone
        .into_iter()
        .filter(|m| !expected.values().any(|v| v == m))
        .collect();
    assert_exact(&t, &expected, &gone);
}
