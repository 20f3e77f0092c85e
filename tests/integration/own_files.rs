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
    let mut found = hit_paths(&v);
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

/// The paths a query over HTTP finds.
fn found(addr: &str, auth: &str, q: &str) -> Vec<String> {
    let r = get(addr, &format!("/query?q={q}&limit=50&wait=0"), &[auth]);
    assert_eq!(r.status, 200, "{r:?}");
    hit_paths(&r.json())
}

#[test]
fn a_hard_link_to_runtime_json_outliving_it_is_never_indexed() {
    let mut t = TestEnv::new();
    let docs = t.project.join("docs");
    std::fs::create_dir_all(&docs).unwrap();
    std::fs::write(docs.join("a.md"), "# A\n\nPlain text.\n").unwrap();
    let (addr, auth) = serving(&mut t);
    let token = t.runtime()["token"].as_str().unwrap().to_owned();
    std::fs::hard_link(t.state_file("runtime.json"), docs.join("h.md")).unwrap();
    // runtime.json deleted: the resident writes it again (a new file, the same token),
    // and the link is now a plain file holding the token.
    std::fs::remove_file(t.state_file("runtime.json")).unwrap();
    t.wait_runtime(WAIT);
    let copy = docs.join("copy.md");
    std::fs::copy(t.state_file("runtime.json"), &copy).unwrap();
    let v = t.json(&["index", "--json"]);
    let skipped = v["summary"]["skipped"].to_string();
    assert!(
        skipped.contains("docs/h.md") && skipped.contains("token"),
        "{v}"
    );
    assert!(skipped.contains("docs/copy.md"), "{v}");
    assert!(found(&addr, &auth, &token).is_empty());
    for path in ["docs/h.md", "docs/copy.md"] {
        assert_eq!(
            get(&addr, &format!("/documents/{path}"), &[&auth]).status,
            404
        );
    }
}

#[test]
fn links_out_of_the_root_neither_blind_the_watcher_nor_lead_back_in() {
    let mut t = TestEnv::new();
    let docs = t.project.join("docs");
    std::fs::create_dir_all(&docs).unwrap();
    std::fs::write(docs.join("a.md"), "# A\n\nPlain text.\n").unwrap();
    symlink("/", docs.join("slash")).unwrap();
    symlink(t.project.parent().unwrap(), docs.join("up")).unwrap();
    let (addr, auth) = serving(&mut t);
    // The watcher still watches (a link to / made it fail on /proc), and sees new files.
    std::fs::write(docs.join("new.md"), "# New\n\nA fresh quokka.\n").unwrap();
    wait_for(WAIT, "the new file", || {
        (found(&addr, &auth, "quokka") == ["docs/new.md"]).then_some(())
    });
    // Paths that leave the root through a link and come back in are not documents.
    let back_in = t.project.join("docs/a.md");
    let back_in = back_in.strip_prefix("/").unwrap().display().to_string();
    for path in [
        format!("docs/slash/{back_in}"),
        "docs/up/project/docs/a.md".to_string(),
    ] {
        let r = get(&addr, &format!("/documents/{path}"), &[&auth]);
        assert_eq!(r.status, 404, "{path}: {r:?}");
    }
    assert_eq!(get(&addr, "/documents/docs/a.md", &[&auth]).status, 200);
}

#[test]
fn a_file_renamed_into_a_link_to_the_state_dir_leaves_the_index() {
    let mut t = TestEnv::new();
    let docs = t.project.join("docs");
    std::fs::create_dir_all(&docs).unwrap();
    std::fs::write(docs.join("w.md"), "# W\n\nA wombat.\n").unwrap();
    let (addr, auth) = serving(&mut t);
    assert_eq!(found(&addr, &auth, "wombat"), ["docs/w.md"]);
    symlink("../.claude/doc-serve/runtime.json", docs.join("tmp.md")).unwrap();
    std::fs::rename(docs.join("tmp.md"), docs.join("w.md")).unwrap();
    wait_for(WAIT, "the old text to go", || {
        found(&addr, &auth, "wombat").is_empty().then_some(())
    });
}

#[test]
fn another_projects_state_dir_in_the_tree_is_never_indexed() {
    // A sub-project with its own resident, its state dir's .gitignore gone, and the
    // parent re-including .claude: its token stays out all the same.
    let t = TestEnv::new();
    let sub = t.project.join("sub");
    std::fs::create_dir_all(sub.join(".git")).unwrap();
    std::fs::write(sub.join("s.md"), "# S\n").unwrap();
    t.ok(&["--path", sub.to_str().unwrap(), "start"]);
    let token = serde_json::from_str::<serde_json::Value>(
        &std::fs::read_to_string(sub.join(".claude/doc-serve/runtime.json")).unwrap(),
    )
    .unwrap()["token"]
        .as_str()
        .unwrap()
        .to_owned();
    std::fs::remove_file(sub.join(".claude/doc-serve/.gitignore")).unwrap();
    std::fs::write(t.project.join(".ignore"), "!.claude/\n").unwrap();
    std::fs::create_dir_all(t.project.join("docs")).unwrap();
    symlink(
        "../sub/.claude/doc-serve/runtime.json",
        t.project.join("docs/subtok.md"),
    )
    .unwrap();
    std::fs::create_dir_all(t.state_dir()).unwrap();
    std::fs::write(
        t.state_file("config.json"),
        r#"{"include": ["**/*.md", "**/*.json"]}"#,
    )
    .unwrap();
    let v = t.json_code(&["query", "--json", "--", &token], 1);
    assert!(v["hits"].as_array().unwrap().is_empty(), "{v}");
    t.ok(&["--path", sub.to_str().unwrap(), "stop"]);
}
