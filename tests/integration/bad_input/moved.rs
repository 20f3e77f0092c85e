//! The ground under a live resident: its state dir cleaned out (`git clean -fdX`), its
//! project deleted and made again, or moved away. One resident serves a project at any
//! time, found through its path, and nothing is made again at a path that was left.

use std::collections::BTreeSet;
use std::path::Path;
use std::process::Command;

use serde_json::{Value, json};

use super::*;
use crate::search::copy_dir;

fn git(t: &TestEnv, args: &[&str]) {
    let mut cmd = Command::new("git");
    cmd.args(args).current_dir(&t.project).env_clear();
    for (k, v) in &t.env {
        cmd.env(k, v);
    }
    let out = cmd.output().unwrap();
    // `git clean` races the resident, which may make its state dir again before git
    // removes it: "failed to remove .claude/doc-serve: Directory not empty".
    let raced = String::from_utf8_lossy(&out.stderr).contains("Directory not empty");
    assert!(out.status.success() || raced, "git {args:?}: {out:?}");
}

fn replaced_events(t: &TestEnv) -> usize {
    t.events()
        .iter()
        .filter(|e| e["event"] == "state_replaced")
        .count()
}

/// The files each probe finds. An index built again may order sections of equal
/// score differently (its segments differ), and so keep another of a file's equal
/// sections under the per-file cap: the files found are what must not change.
fn files(answers: &Answers) -> Vec<BTreeSet<String>> {
    answers
        .iter()
        .map(|found| found.iter().map(|(path, ..)| path.clone()).collect())
        .collect()
}

/// Waits until the probes find the files they found before (a resident that serves
/// again builds its index again first).
fn answers_again(t: &TestEnv, base: &Answers) {
    wait_for(WAIT, "the probes to answer as before", || {
        let now: Answers = PROBES
            .iter()
            .map(|q| {
                let out = run(t, &["query", "--json", "--", q]);
                sections(&serde_json::from_slice(&out.stdout).unwrap_or_default())
            })
            .collect();
        (files(&now) == files(base)).then_some(())
    });
}

fn started(t: &TestEnv) -> u32 {
    let v = json_run(t, &["start", "--json"], 0);
    v["pid"].as_u64().unwrap() as u32
}

/// Waits until the project has exactly one resident, and it answers: its PID.
fn one_resident(t: &TestEnv) -> u32 {
    wait_for(WAIT, "one resident", || {
        let found = residents(t);
        let rt: Value =
            serde_json::from_str(&std::fs::read_to_string(t.state_file("runtime.json")).ok()?)
                .ok()?;
        (found.len() == 1 && rt["pid"] == found[0]).then_some(found[0])
    })
}

#[test]
fn git_clean_under_a_live_resident() {
    if skip_without("git") {
        return;
    }
    let t = crate::search::with_fixtures();
    std::fs::remove_dir_all(t.project.join(".git")).unwrap();
    git(&t, &["init", "-q"]);
    let base = index_fixtures(&t);
    let first = started(&t);
    assert!(t.state_file("data").exists());

    // Nobody starts another: the resident serves again in place, under a new lock
    // file, with the index built again.
    git(&t, &["clean", "-fdXq"]);
    wait_for(WAIT, "the resident to notice", || {
        (replaced_events(&t) > 0).then_some(())
    });
    assert_eq!(one_resident(&t), first);
    answers_again(&t, &base);

    // `start` at once, before the resident noticed: still one resident.
    git(&t, &["clean", "-fdXq"]);
    t.ok(&["start"]);
    let pid = one_resident(&t);
    std::thread::sleep(Duration::from_millis(2500));
    assert_eq!(residents(&t), [pid], "two residents after a second start");
    assert!(pid == first || !alive(first));
    answers_again(&t, &base);
    assert_eq!(
        json_run(&t, &["status", "--json"], 0)["runtime"]["pid"],
        pid
    );
    t.ok(&["stop"]);
    assert!(residents(&t).is_empty());
    assert_no_panic_logged(&t);
}

#[test]
fn project_deleted_and_made_again() {
    let (t, base) = indexed();
    let first = started(&t);
    std::fs::remove_dir_all(&t.project).unwrap();
    std::fs::create_dir_all(t.project.join(".git")).unwrap();
    copy_dir(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/docs"),
        &t.project.join("docs"),
    );
    let v = json_run(&t, &["start", "--json"], 0);
    let pid = one_resident(&t);
    assert_eq!(v["pid"], pid);
    std::thread::sleep(Duration::from_millis(2500));
    assert_eq!(residents(&t), [pid]);
    assert!(pid == first || !alive(first));
    answers_again(&t, &base);
    t.ok(&["stop"]);
    assert!(residents(&t).is_empty());
}

#[test]
fn project_moved_away() {
    let (t, base) = indexed();
    let first = started(&t);
    let moved = t.root().join("moved");
    std::fs::rename(&t.project, &moved).unwrap();

    // The resident leaves, and makes nothing again at the old path.
    wait_for(WAIT, "the resident to exit", || {
        (!alive(first)).then_some(())
    });
    assert!(!t.project.exists(), "the old path was made again");

    // The new place starts its own, which finds the index that moved with it.
    let at_new = |args: &[&str]| {
        let mut cmd = t.cmd(args);
        cmd.current_dir(&moved);
        checked(args, cmd.output().unwrap())
    };
    let out = at_new(&["start", "--json"]);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["existing"], false);
    assert_eq!(v["project_root"], json!(moved));
    for (q, want) in PROBES.iter().zip(&base) {
        let out = at_new(&["query", "--json", "--", q]);
        assert_eq!(
            sections(&serde_json::from_slice(&out.stdout).unwrap()),
            *want
        );
    }
    let out = at_new(&["stop"]);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
}

#[test]
fn index_deleted_under_a_live_resident() {
    let (t, base) = indexed();
    let first = started(&t);
    std::fs::remove_dir_all(t.state_file("data")).unwrap();
    // The same resident, under the same lock, builds the index again.
    wait_for(WAIT, "the resident to notice", || {
        (replaced_events(&t) > 0).then_some(())
    });
    answers_again(&t, &base);
    assert_eq!(one_resident(&t), first);
    assert!(t.state_file("data").is_dir());
    t.ok(&["stop"]);
    let v = json_run(&t, &["index", "--json"], 0);
    assert_eq!(v["summary"]["added"], 0, "{v}");
    assert_eq!(files(&answers(&t)), files(&base));
}

#[test]
fn stop_right_after_git_clean_stops_the_resident() {
    let t = crate::search::with_fixtures();
    std::fs::remove_dir_all(t.project.join(".git")).unwrap();
    git(&t, &["init", "-q"]);
    index_fixtures(&t);
    let first = started(&t);
    git(&t, &["clean", "-fdXq"]);
    let v = json_run(&t, &["stop", "--json"], 0);
    assert_eq!(v["pid"], first, "{v}");
    wait_for(WAIT, "the resident to exit", || {
        (!alive(first)).then_some(())
    });
    std::thread::sleep(Duration::from_millis(1500));
    assert!(residents(&t).is_empty(), "a resident came back");

    // `rm doc-serve.lock` alone, then `start`: the resident is reported, not doubled.
    let first = started(&t);
    std::fs::remove_file(t.state_file("doc-serve.lock")).unwrap();
    let v = json_run(&t, &["start", "--json"], 0);
    assert_eq!(
        (&v["existing"], &v["pid"]),
        (&json!(true), &json!(first)),
        "{v}"
    );
    assert_eq!(residents(&t), [first]);
    // Its log was made again, for what it says from now on.
    assert!(t.state_file("logs/serve.log").exists());
    t.ok(&["stop"]);
}

#[test]
fn a_directory_made_where_a_moved_project_was_is_not_taken_over() {
    let (t, _base) = indexed();
    let first = started(&t);
    let moved = t.root().join("moved");
    std::fs::rename(&t.project, &moved).unwrap();
    std::fs::create_dir_all(t.project.join(".git")).unwrap();
    wait_for(WAIT, "the resident to exit", || {
        (!alive(first)).then_some(())
    });
    assert!(
        !t.project.join(".claude").exists(),
        "the new directory was taken over"
    );
    // What it left is gone from where the project moved, and its exit is recorded there.
    let state = moved.join(".claude/doc-serve");
    assert!(!state.join("runtime.json").exists());
    assert!(!state.join("doc-serve.pid").exists());
    let events = std::fs::read_to_string(state.join("logs/events.jsonl")).unwrap();
    assert!(events.contains("root_gone"), "{events}");
}

#[test]
fn the_index_deleted_again_while_it_is_built_again() {
    let (t, base) = indexed();
    let first = started(&t);
    for pause in [0, 150, 40, 300, 0] {
        let _ = std::fs::remove_dir_all(t.state_file("data"));
        std::thread::sleep(Duration::from_millis(pause));
    }
    wait_for(WAIT, "the resident to notice", || {
        (replaced_events(&t) > 0).then_some(())
    });
    answers_again(&t, &base);
    assert_eq!(one_resident(&t), first);
    t.ok(&["stop"]);
}
