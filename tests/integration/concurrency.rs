//! Several processes writing one index while files churn, and writers killed mid-commit.

use std::collections::BTreeMap;
use std::process::Stdio;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::util::*;

/// A tiny deterministic generator (xorshift), so a failure can be replayed.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

fn doc(id: u64, version: u64) -> String {
    format!("# File {id}\n\nThis section holds marker tok{id}x{version} and some filler text.\n")
}

/// Every file's current marker must find exactly that file, and `gone` markers nothing.
fn assert_exact(t: &TestEnv, expected: &BTreeMap<String, String>, gone: &[String]) {
    for (path, marker) in expected {
        let out = t.run(&["query", "--json", marker]);
        let v: Value = serde_json::from_slice(&out.stdout).unwrap();
        let paths: Vec<&str> = v["hits"]
            .as_array()
            .unwrap()
            .iter()
            .map(|h| h["path"].as_str().unwrap())
            .collect();
        assert_eq!(paths, [path.as_str()], "marker {marker}");
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
        .unwrap_or(30)
}

#[test]
fn four_writers_under_churn_end_exact() {
    let mut t = TestEnv::new();
    t.set("DOC_SERVE_DEBOUNCE_MS", "50");
    let docs = t.project.join("docs");
    std::fs::create_dir_all(&docs).unwrap();
    let mut expected = BTreeMap::new();
    let mut gone = Vec::new();
    for id in 0..40 {
        std::fs::write(docs.join(format!("f{id}.md")), doc(id, 0)).unwrap();
        expected.insert(format!("docs/f{id}.md"), format!("tok{id}x0"));
    }
    t.ok(&["init"]);
    t.spawn_serve(&[]);
    let rt = t.wait_runtime(Duration::from_secs(15));
    let addr = addr_of(&rt);
    let auth = format!("Authorization: Bearer {}", rt["token"].as_str().unwrap());

    let stop = Arc::new(AtomicBool::new(false));
    let failures = Arc::new(Mutex::new(Vec::<String>::new()));
    let mut threads = Vec::new();
    // Three standalone writers, each running `doc-serve index` over and over.
    for _ in 0..3 {
        let (stop, failures) = (stop.clone(), failures.clone());
        let mut cmd_env = t.env.clone();
        cmd_env.push(("DOC_SERVE_PROJECT".into(), t.project.display().to_string()));
        threads.push(std::thread::spawn(move || {
            let mut runs = 0;
            while !stop.load(Ordering::Relaxed) {
                let out = std::process::Command::new(BIN)
                    .args(["index", "--json"])
                    .env_clear()
                    .envs(cmd_env.iter().map(|(k, v)| (k, v)))
                    .stdin(Stdio::null())
                    .output()
                    .unwrap();
                if !out.status.success() {
                    failures
                        .lock()
                        .unwrap()
                        .push(format!("index: {}", String::from_utf8_lossy(&out.stderr)));
                }
                runs += 1;
            }
            runs
        }));
    }
    // Queries against the resident all along.
    let (q_stop, q_failures) = (stop.clone(), failures.clone());
    let (q_addr, q_auth) = (addr.clone(), auth.clone());
    let queries = std::thread::spawn(move || {
        let mut n = 0;
        while !q_stop.load(Ordering::Relaxed) {
            let r = get(
                &q_addr,
                &format!("/query?q=tok{}x0+filler", n % 50),
                &[&q_auth],
            );
            if r.status != 200 {
                q_failures.lock().unwrap().push(format!("query: {r:?}"));
            }
            n += 1;
        }
        n
    });

    // Churn: create, edit, rename, delete.
    let mut rng = Rng(0x5eed_1234_abcd);
    let mut next_id = 40;
    let deadline = Instant::now() + Duration::from_secs(churn_secs());
    while Instant::now() < deadline {
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
    let runs: Vec<usize> = threads.into_iter().map(|h| h.join().unwrap()).collect();
    let n_queries = queries.join().unwrap();
    let failures = failures.lock().unwrap().clone();
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

    // Let the resident's watcher settle, then the index must equal the disk.
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

#[test]
fn writer_killed_mid_commit_leaves_an_index_that_opens() {
    let mut t = TestEnv::new();
    let docs = t.project.join("docs");
    std::fs::create_dir_all(&docs).unwrap();
    let mut expected = BTreeMap::new();
    let filler = "lorem ipsum dolor sit amet consectetur adipiscing elit ".repeat(60);
    for id in 0..300u64 {
        let text = format!("{}\n\n{filler}\n", doc(id, 0));
        std::fs::write(docs.join(format!("f{id}.md")), text).unwrap();
        expected.insert(format!("docs/f{id}.md"), format!("tok{id}x0"));
    }
    t.ok(&["init"]);
    let mut rng = Rng(0xdead_beef_0042);
    for round in 0..20 {
        let mut cmd = t.cmd(&["index", "--full"]);
        cmd.stdout(Stdio::null()).stderr(Stdio::null());
        let pid = t.spawn(cmd);
        std::thread::sleep(Duration::from_millis(20 + rng.below(400)));
        if alive(pid) {
            signal(pid, Signal::SIGKILL);
        }
        t.wait_child(pid, Duration::from_secs(30));
        // The index opens and answers after every kill.
        let out = t.run(&["query", "--json", "filler"]);
        assert!(
            matches!(out.status.code(), Some(0 | 1)),
            "round {round}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let data = t.state_dir().join("data");
    assert!(data.join(".index.lock").exists());
    t.ok(&["index"]);
    assert_exact(&t, &expected, &[]);
}
