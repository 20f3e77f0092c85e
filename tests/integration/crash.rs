//! Writers killed with SIGKILL at random points of full and incremental indexing: the
//! index always opens, and after reconciliation it equals the files on disk.
//!
//! Quick mode kills 20 writers; `DOC_SERVE_TEST_CRASH_ITERS=200` is the long run.
//! `DOC_SERVE_TEST_CRASH_SEED` replays a run (the seed is printed).

use std::collections::BTreeMap;
use std::process::Stdio;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::concurrency::{Rng, doc};
use crate::util::*;

fn env_u64(key: &str) -> Option<u64> {
    std::env::var(key).ok().and_then(|s| s.parse().ok())
}

/// A file whose first section holds its marker, followed by filler sections that give
/// the indexer work to be interrupted in.
fn text(id: u64, version: u64) -> String {
    let filler = "lorem ipsum dolor sit amet consectetur adipiscing elit sed do ".repeat(12);
    let mut s = doc(id, version);
    for n in 0..6 {
        s.push_str(&format!("\n## Filler {n}\n\n{filler}\n"));
    }
    s
}

/// Every indexed section holding "marker", as path -> marker: one query sees the whole
/// index, because each file has exactly one such section.
fn indexed(t: &TestEnv) -> Result<BTreeMap<String, String>, String> {
    let out = t.run(&["query", "--json", "-n", "1000", "marker"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    if !matches!(out.status.code(), Some(0 | 1)) || stderr.contains("panicked") {
        return Err(format!("query failed: {:?}: {stderr}", out.status));
    }
    let v: Value = serde_json::from_slice(&out.stdout).map_err(|e| e.to_string())?;
    let hits = v["hits"].as_array().ok_or("no hits array")?;
    if v["total_matches"].as_u64() != Some(hits.len() as u64) {
        return Err(format!("{} hits of {}", hits.len(), v["total_matches"]));
    }
    let mut map = BTreeMap::new();
    for h in hits {
        let path = h["path"].as_str().unwrap_or_default().to_owned();
        let marker = h["snippet"]
            .as_str()
            .unwrap_or_default()
            .split_whitespace()
            .find(|w| w.starts_with("tok"))
            .unwrap_or_default()
            .to_owned();
        if let Some(other) = map.insert(path.clone(), marker.clone()) {
            return Err(format!("{path} indexed twice: {other} and {marker}"));
        }
    }
    Ok(map)
}

/// Creates, edits, renames and deletes up to `n` files, keeping `expected` in step.
fn mutate(
    t: &TestEnv,
    rng: &mut Rng,
    expected: &mut BTreeMap<String, String>,
    next_id: &mut u64,
    n: u64,
) {
    let docs = t.project.join("docs");
    for _ in 0..n {
        let keys: Vec<String> = expected.keys().cloned().collect();
        let pick = keys[rng.below(keys.len() as u64) as usize].clone();
        let id_of = |p: &str| -> u64 {
            p.trim_start_matches("docs/f")
                .trim_end_matches(".md")
                .parse()
                .unwrap()
        };
        match rng.below(4) {
            0 if keys.len() < 400 => {
                let id = *next_id;
                *next_id += 1;
                std::fs::write(docs.join(format!("f{id}.md")), text(id, 0)).unwrap();
                expected.insert(format!("docs/f{id}.md"), format!("tok{id}x0"));
            }
            1 => {
                let id = id_of(&pick);
                let v = rng.below(1_000_000) + 1;
                std::fs::write(t.project.join(&pick), text(id, v)).unwrap();
                expected.insert(pick, format!("tok{id}x{v}"));
            }
            2 => {
                let to = format!("docs/f{}.md", *next_id);
                *next_id += 1;
                std::fs::rename(t.project.join(&pick), t.project.join(&to)).unwrap();
                let marker = expected.remove(&pick).unwrap();
                expected.insert(to, marker);
            }
            _ if keys.len() > 200 => {
                std::fs::remove_file(t.project.join(&pick)).unwrap();
                expected.remove(&pick);
            }
            _ => {}
        }
    }
}

#[derive(Debug, Clone, Copy)]
enum Writer {
    /// `doc-serve index --full`
    Full,
    /// files changed, then `doc-serve index`
    Incremental,
    /// files changed, then a resident, which reconciles at start
    Resident,
}

/// What became of a writer given `delay` before its SIGKILL.
enum Fate {
    Killed,
    /// It was done first, after this long.
    Finished(u64),
}

/// Kills `pid` once `delay` ms have passed since `started`, unless it exits first
/// (watched every 2 ms, so a finished run's length is known).
fn kill_after(t: &mut TestEnv, pid: u32, started: Instant, delay: u64) -> Fate {
    let at = started + Duration::from_millis(delay);
    let fate = loop {
        if !alive(pid) {
            break Fate::Finished(started.elapsed().as_millis() as u64);
        }
        if Instant::now() >= at {
            signal(pid, Signal::SIGKILL);
            break Fate::Killed;
        }
        std::thread::sleep(Duration::from_millis(2));
    };
    t.wait_child(pid, Duration::from_secs(30));
    fate
}

/// The index directory's files and what `doctor` says of the index, for a failure
/// message: what a crash left behind.
fn index_state(t: &TestEnv) -> String {
    let mut out = String::from("index files:");
    let data = t.state_dir().join("data");
    for dir in std::fs::read_dir(&data).into_iter().flatten().flatten() {
        for f in std::fs::read_dir(dir.path())
            .into_iter()
            .flatten()
            .flatten()
        {
            let len = f.metadata().map(|m| m.len()).unwrap_or_default();
            out.push_str(&format!("\n  {}: {len} bytes", f.path().display()));
        }
    }
    let meta = std::fs::read_dir(&data)
        .into_iter()
        .flatten()
        .flatten()
        .find_map(|d| std::fs::read_to_string(d.path().join("meta.json")).ok());
    out.push_str(&format!("\nmeta.json: {}", meta.unwrap_or_default()));
    let doctor = t.run(&["doctor"]);
    out.push_str(&format!(
        "\ndoctor:\n{}{}",
        String::from_utf8_lossy(&doctor.stdout),
        String::from_utf8_lossy(&doctor.stderr)
    ));
    out
}

#[test]
fn writers_killed_at_random_points_leave_an_index_that_opens_and_reconciles() {
    let iterations = env_u64("DOC_SERVE_TEST_CRASH_ITERS").unwrap_or(20);
    let seed = env_u64("DOC_SERVE_TEST_CRASH_SEED").unwrap_or_else(|| {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .subsec_nanos();
        u64::from(nanos) | 1
    });
    eprintln!("crash suite: {iterations} iterations, DOC_SERVE_TEST_CRASH_SEED={seed}");
    let mut rng = Rng(seed);
    let mut t = TestEnv::new();
    let docs = t.project.join("docs");
    std::fs::create_dir_all(&docs).unwrap();
    let mut expected = BTreeMap::new();
    for id in 0..300u64 {
        std::fs::write(docs.join(format!("f{id}.md")), text(id, 0)).unwrap();
        expected.insert(format!("docs/f{id}.md"), format!("tok{id}x0"));
    }
    let mut next_id = 300;
    t.ok(&["init"]);

    // How long uninterrupted runs take, so that kills land anywhere in them. On a
    // shared machine one measurement can be far off the next run's length: each run
    // that finishes before its kill gives the length it really took, and the next
    // delay of that kind is drawn from it.
    let started = Instant::now();
    t.ok(&["index", "--full"]);
    let mut full_ms = started.elapsed().as_millis() as u64;
    mutate(&t, &mut rng, &mut expected, &mut next_id, 40);
    let started = Instant::now();
    t.ok(&["index"]);
    let mut incremental_ms = started.elapsed().as_millis() as u64;
    assert_eq!(indexed(&t).unwrap(), expected);
    eprintln!("uninterrupted: full {full_ms} ms, 40 changes {incremental_ms} ms");

    // At most this many runs of an `index` writer per iteration: a run that finished
    // before its kill is followed by another (after more changes, for an incremental
    // one), killed within the length the finished one took.
    const ATTEMPTS: u32 = 3;
    let (mut interrupted, mut finished, mut residents, mut reconciled) = (0, 0, 0, 0);
    let mut index_iterations = 0;
    for i in 0..iterations {
        let writer = match rng.below(3) {
            0 => Writer::Full,
            1 => Writer::Incremental,
            _ => Writer::Resident,
        };
        if !matches!(writer, Writer::Resident) {
            index_iterations += 1;
        }
        let mut delays = Vec::new();
        for attempt in 0..ATTEMPTS {
            // Changed files give the incremental writers (and the resident) work to do.
            if !matches!(writer, Writer::Full) {
                let n = 1 + rng.below(60);
                mutate(&t, &mut rng, &mut expected, &mut next_id, n);
            }
            let span = match writer {
                Writer::Full | Writer::Resident => full_ms,
                Writer::Incremental => incremental_ms,
            };
            // The first kill lands anywhere in the run or shortly after it (a run
            // that is done is not a crash); a retry's, within the run.
            let delay = if attempt == 0 {
                rng.below(span * 6 / 5 + 1)
            } else {
                rng.below(span.max(1))
            };
            delays.push(delay);
            let started = Instant::now();
            let pid = match writer {
                Writer::Full | Writer::Incremental => {
                    let args: &[&str] = match writer {
                        Writer::Full => &["index", "--full"],
                        _ => &["index"],
                    };
                    let mut cmd = t.cmd(args);
                    cmd.stdout(Stdio::null()).stderr(Stdio::null());
                    t.spawn(cmd)
                }
                Writer::Resident => t.spawn_serve(&[]),
            };
            match (kill_after(&mut t, pid, started, delay), writer) {
                (Fate::Killed, Writer::Resident) => residents += 1,
                (Fate::Killed, _) => interrupted += 1,
                // A resident that exits by itself failed to start: not a crash.
                (Fate::Finished(_), Writer::Resident) => {}
                (Fate::Finished(took), kind) => {
                    finished += 1;
                    match kind {
                        Writer::Full => full_ms = took,
                        _ => incremental_ms = took,
                    }
                    continue;
                }
            }
            break;
        }
        let context = format!(
            "iteration {i}: {writer:?} killed after {delays:?} ms (seed {seed}; replay with \
             DOC_SERVE_TEST_CRASH_SEED={seed} DOC_SERVE_TEST_CRASH_ITERS={iterations})"
        );

        // The index opens after every kill, whatever it holds.
        if let Err(e) = indexed(&t) {
            panic!(
                "{context}: the index does not open: {e}\n{}",
                index_state(&t)
            );
        }
        // Reconciliation after every other kill; in between, kills pile up.
        if rng.below(2) == 0 || i + 1 == iterations {
            let out = t.run(&["index", "--json"]);
            let v: Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
            if out.status.code() != Some(0) || v["files"].as_u64() != Some(expected.len() as u64) {
                panic!(
                    "{context}: `index` after the kills: {:?}, {} files where {} are on disk: \
                     {v}\n{}\n{}",
                    out.status,
                    v["files"],
                    expected.len(),
                    String::from_utf8_lossy(&out.stderr),
                    index_state(&t)
                );
            }
            let got = indexed(&t).unwrap_or_else(|e| panic!("{context}: {e}"));
            if got != expected {
                let wrong: Vec<_> = expected
                    .iter()
                    .filter(|(p, m)| got.get(*p) != Some(m))
                    .map(|(p, m)| format!("{p}: {m} on disk, {:?} indexed", got.get(p)))
                    .chain(
                        got.keys()
                            .filter(|p| !expected.contains_key(*p))
                            .map(|p| format!("{p}: indexed, not on disk")),
                    )
                    .collect();
                panic!(
                    "{context}: index differs from the files:\n{}\n{}",
                    wrong.join("\n"),
                    index_state(&t)
                );
            }
            reconciled += 1;
        }
    }
    eprintln!(
        "crash suite: {iterations} iterations: {interrupted} `index` runs killed mid-run, \
         {finished} done before their kill, {residents} residents killed; {reconciled} \
         reconciliations checked exact; {} files at the end",
        expected.len()
    );
    // Most `index` iterations must end in a kill mid-run, or this suite tests little.
    assert!(
        interrupted * 2 >= index_iterations,
        "only {interrupted} of {index_iterations} `index` iterations ended in a kill mid-run \
         ({finished} runs were done first; last lengths: full {full_ms} ms, incremental \
         {incremental_ms} ms; seed {seed})"
    );
    assert!(t.state_dir().join("data/.index.lock").exists());
}
