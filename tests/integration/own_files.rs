//! doc-serve's own files (the state dir with runtime.json and its token, the event
//! log, the index; the shared daemon's home) are never walked, watched, indexed or
//! served, whatever link leads to them: a cloned repository can ship such links.

use std::os::unix::fs::symlink;
use std::time::Duration;

use crate::util::*;

const WAIT: Duration = Duration::from_secs(15);

/// The resident's address and `Authorization` header, once it watches the tree and
/// its first index is done.
fn serving(t: &mut TestEnv) -> (String, String) {
    t.set("DOC_SERVE_DEBOUNCE_MS", "50");
    t.spawn_serve(&[]);
    let rt = t.wait_runtime(WAIT);
    let addr = addr_of(&rt);
    let auth = format!("Authorization: Bearer {}", rt["token"].as_str().unwrap());
    wait_for(WAIT, "the first index", || {
        let s = get(&addr, "/status", &[&auth]).json();
        (s["index"]["watcher"] == "watching" && s["index"]["indexing"] == false).then_some(())
    });
    (addr, auth)
}

#[test]
fn links_to_the_state_dir_are_never_indexed_or_served() {
    let mut t = TestEnv::new();
    let p = t.project.clone();
    std::fs::create_dir_all(p.join("docs")).unwrap();
    std::fs::write(p.join("docs/guide.md"), "# Guide\n\nneighbourword\n").unwrap();
    let (addr, auth) = serving(&mut t);
    let token = t.runtime()["token"].as_str().unwrap().to_string();
    let state = t.state_dir();

    let refused = [
        ("token.md", ".claude/doc-serve/runtime.json".into()),
        ("abs-token.md", state.join("runtime.json")),
        ("chain.md", "token.md".into()),
        ("events.md", ".claude/doc-serve/logs/events.jsonl".into()),
        ("state", ".claude/doc-serve".into()),
        ("data", state.join("data")),
        (
            "meta.md",
            index_dir_in(&state.join("data")).join("meta.json"),
        ),
        ("claude", ".claude".into()),
    ];
    for (name, target) in &refused {
        symlink(target, p.join(name)).unwrap();
    }
    std::fs::hard_link(state.join("runtime.json"), p.join("hard.md")).unwrap();
    // `.claude` re-included, so that the link to it is entered (a link to a hidden
    // directory is left out as such) and meets the state dir by another name.
    std::fs::write(p.join(".ignore"), "!.claude/\n").unwrap();
    // A link to the root from inside: a loop, and through it the links above again.
    symlink("..", p.join("docs/root")).unwrap();
    // Neighbours that are sources: a link to a file and one to a directory.
    symlink("docs/guide.md", p.join("guide-link.md")).unwrap();
    symlink(p.join("docs"), p.join("manual")).unwrap();

    let v = t.json(&["index", "--json"]);
    let skipped = v["summary"]["skipped"].as_array().unwrap();
    let reason = |path: &str| {
        skipped
            .iter()
            .find(|s| s["path"] == path)
            .map(|s| s["reason"].as_str().unwrap().to_string())
    };
    for path in [
        "token.md",
        "abs-token.md",
        "chain.md",
        "events.md",
        "state",
        "data",
        "meta.md",
        "claude/doc-serve",
        "hard.md",
    ] {
        let why = reason(path).unwrap_or_else(|| panic!("{path} not skipped: {v}"));
        assert!(why.contains("doc-serve keeps"), "{path}: {why}");
    }

    let out = t.run(&["query", "token"]);
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(out.status.code(), Some(1), "{said}");
    for word in [token.as_str(), "schema_version", "started_at", "indexed"] {
        let v = t.json_code(&["query", "--json", "--", word], 1);
        assert_eq!(v["hits"], serde_json::json!([]), "{word}: {v}");
    }
    let v = t.json(&["query", "--json", "neighbourword"]);
    let mut found: Vec<&str> = v["hits"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["path"].as_str().unwrap())
        .collect();
    found.sort();
    assert_eq!(found, ["docs/guide.md", "guide-link.md", "manual/guide.md"]);

    for path in [
        "token.md",
        "abs-token.md",
        "chain.md",
        "events.md",
        "meta.md",
        "hard.md",
        "state/runtime.json",
        "state/config.json",
        "claude/doc-serve/runtime.json",
        "docs/root/token.md",
        "docs/root/state/runtime.json",
    ] {
        let r = get(&addr, &format!("/documents/{path}"), &[&auth]);
        assert_eq!(r.status, 404, "{path}: {r:?}");
        assert!(!r.body.contains(&token), "{path}");
    }
    for path in ["guide-link.md", "manual/guide.md"] {
        let r = get(&addr, &format!("/documents/{path}"), &[&auth]);
        assert_eq!(r.status, 200, "{path}: {r:?}");
    }
}

/// Links to the event log and the state dir, moved into the tree while a resident
/// watches it (inotify then names the state dir by the link): the resident's own
/// writes must not start the next indexing. Before, it committed about 15 times a
/// second, for good.
#[test]
fn a_resident_stays_idle_with_links_into_its_state_dir() {
    let mut t = TestEnv::new();
    let p = t.project.clone();
    std::fs::write(p.join("a.md"), "# A\n\nalpha\n").unwrap();
    let (addr, auth) = serving(&mut t);
    let state = t.state_dir();
    let prepared = t.root().join("prepared");
    std::fs::create_dir_all(&prepared).unwrap();
    symlink(&state, prepared.join("state")).unwrap();
    symlink(state.join("logs/events.jsonl"), prepared.join("events.md")).unwrap();
    symlink(state.join("data"), prepared.join("data")).unwrap();
    std::fs::rename(&prepared, p.join("sub")).unwrap();
    // A file change beside them: the resident commits once, and that commit's writes
    // reach the watcher through the links.
    std::fs::write(p.join("b.md"), "# B\n\nbravo\n").unwrap();
    wait_for(WAIT, "b.md indexed", || {
        let r = get(&addr, "/query?q=bravo", &[&auth]).json();
        (r["hits"].as_array().unwrap().len() == 1).then_some(())
    });
    std::thread::sleep(Duration::from_millis(500));

    let before = (t.events().len(), get(&addr, "/status", &[&auth]).json());
    std::thread::sleep(Duration::from_secs(3));
    let after = (t.events().len(), get(&addr, "/status", &[&auth]).json());
    assert_eq!(before.0, after.0, "events.jsonl grew: {:?}", t.events());
    assert_eq!(
        before.1["index"]["last_commit"], after.1["index"]["last_commit"],
        "the resident kept committing"
    );

    // The watcher still follows the tree.
    std::fs::write(p.join("c.md"), "# C\n\ncharlie\n").unwrap();
    wait_for(WAIT, "c.md indexed", || {
        let r = get(&addr, "/query?q=charlie", &[&auth]).json();
        (r["hits"].as_array().unwrap().len() == 1).then_some(())
    });
}

/// The shared daemon's home, in a tree that holds it (a root at `$HOME`, named with
/// `--path`), is not a source either, through a link or re-included by an ignore file.
#[test]
fn the_shared_daemons_home_is_never_indexed() {
    let t = TestEnv::new();
    let home = t.root().join("home");
    let own = home.join(".doc-serve");
    std::fs::create_dir_all(own.join("projects")).unwrap();
    std::fs::write(own.join("projects/notes.md"), "# Daemon\n\ndaemonword\n").unwrap();
    std::fs::create_dir_all(home.join("notes")).unwrap();
    std::fs::write(home.join("notes/n.md"), "# Notes\n\nnoteword\n").unwrap();
    symlink("../.doc-serve", home.join("notes/daemon")).unwrap();
    std::fs::write(home.join(".ignore"), "!.doc-serve/\n").unwrap();
    let path = home.display().to_string();
    let v = t.json(&["--path", &path, "index", "--json"]);
    assert_eq!(v["files"], 1, "{v}");
    let v = t.json_code(&["--path", &path, "query", "--json", "daemonword"], 1);
    assert_eq!(v["hits"], serde_json::json!([]));
}
