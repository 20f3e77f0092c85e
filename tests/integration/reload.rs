//! Settings edited while a resident runs: applied within seconds, without a restart;
//! an edit that does not load is reported and the last good settings stay in force.

use std::time::Duration;

use serde_json::{Value, json};

use crate::util::*;

const WAIT: Duration = Duration::from_secs(15);

/// What `zeppelin` finds with the default settings: every file.
const ALL: &[&str] = &[
    "docs/drafts/plan.md",
    "docs/guide.md",
    "docs/long.md",
    "docs/notes.adoc",
];

struct Running {
    addr: String,
    auth: String,
}

impl Running {
    fn get(&self, path: &str) -> Reply {
        get(&self.addr, path, &[&self.auth])
    }

    fn status(&self) -> Value {
        self.get("/status").json()
    }

    /// The paths a query finds.
    fn paths(&self, q: &str) -> Vec<String> {
        let r = self.get(&format!("/query?q={q}&limit=50"));
        assert_eq!(r.status, 200, "{r:?}");
        let mut paths = hit_paths(&r.json());
        paths.sort();
        paths.dedup();
        paths
    }

    fn wait_paths(&self, q: &str, want: &[&str]) {
        wait_for(WAIT, &format!("{q} to find {want:?}"), || {
            (self.paths(q) == want).then_some(())
        });
    }
}

fn write_config(t: &TestEnv, v: &Value) {
    // Replaced the way editors save: a new file renamed over the old.
    let tmp = t.state_file("config.json.new");
    std::fs::write(&tmp, v.to_string()).unwrap();
    std::fs::rename(&tmp, t.state_file("config.json")).unwrap();
}

fn setup() -> (TestEnv, Running) {
    let mut t = TestEnv::new();
    let docs = t.project.join("docs");
    std::fs::create_dir_all(docs.join("drafts")).unwrap();
    std::fs::write(docs.join("guide.md"), "# Guide\n\nThe zeppelin lands.\n").unwrap();
    std::fs::write(
        docs.join("drafts/plan.md"),
        "# Plan\n\nThe zeppelin is drafted.\n",
    )
    .unwrap();
    std::fs::write(docs.join("notes.adoc"), "= Notes\n\nA zeppelin note.\n").unwrap();
    let long: String = (0..400).map(|i| format!("zeppelin word{i} ")).collect();
    std::fs::write(docs.join("long.md"), format!("# Long\n\n{long}\n")).unwrap();
    t.ok(&["init"]);
    t.spawn_serve(&[]);
    let rt = t.wait_runtime(WAIT);
    let r = Running {
        addr: addr_of(&rt),
        auth: format!("Authorization: Bearer {}", rt["token"].as_str().unwrap()),
    };
    r.wait_paths("zeppelin", ALL);
    (t, r)
}

#[test]
fn an_edited_exclude_include_and_size_cap_apply_without_a_restart() {
    let (t, r) = setup();
    let pid = r.status()["pid"].clone();

    // exclude: gone from every answer, /documents included, with no command run.
    write_config(&t, &json!({ "exclude": ["docs/drafts/**"] }));
    r.wait_paths(
        "zeppelin",
        &["docs/guide.md", "docs/long.md", "docs/notes.adoc"],
    );
    assert_eq!(r.get("/documents/docs/drafts/plan.md").status, 404);
    let status = r.status();
    assert!(status["settings"]["last_reload"].is_string(), "{status}");

    // include, and `doc-serve index` right after the edit: it runs with the new
    // settings (it was "0 removed" before).
    write_config(
        &t,
        &json!({ "exclude": ["docs/drafts/**"], "include": ["**/*.md"] }),
    );
    let v = t.json(&["index", "--json"]);
    assert_eq!(v["summary"]["scanned"], 2, "{v}");
    assert_eq!(r.paths("zeppelin"), ["docs/guide.md", "docs/long.md"]);
    assert_eq!(r.get("/documents/docs/notes.adoc").status, 404);

    // max_file_bytes drops the long file; chunk_size re-chunks what stays.
    let chunks = |r: &Running| r.status()["index"]["chunks"].as_u64().unwrap();
    write_config(&t, &json!({ "max_file_bytes": 1000 }));
    r.wait_paths(
        "zeppelin",
        &["docs/drafts/plan.md", "docs/guide.md", "docs/notes.adoc"],
    );
    write_config(&t, &json!({}));
    r.wait_paths("zeppelin", ALL);
    let before = chunks(&r);
    write_config(&t, &json!({ "chunk_size": 100, "chunk_overlap": 10 }));
    wait_for(WAIT, "the long file chunked again", || {
        (chunks(&r) > before).then_some(())
    });

    // A key that needs a restart is reported, not applied.
    write_config(
        &t,
        &json!({ "chunk_size": 100, "chunk_overlap": 10, "idle_timeout_seconds": 5 }),
    );
    wait_for(WAIT, "restart_needed", || {
        (r.status()["settings"]["restart_needed"] == json!(["idle_timeout_seconds"])).then_some(())
    });
    assert_eq!(r.status()["pid"], pid, "the resident was restarted");
    let events: Vec<Value> = t.events();
    assert!(
        events.iter().any(|e| e["event"] == "config_reloaded"),
        "{events:?}"
    );
}

#[test]
fn an_edit_that_does_not_load_leaves_the_last_good_settings_in_force() {
    let (t, r) = setup();
    write_config(&t, &json!({ "exclude": ["docs/drafts/**"] }));
    r.wait_paths(
        "zeppelin",
        &["docs/guide.md", "docs/long.md", "docs/notes.adoc"],
    );
    for bad in [
        "{\"exclude\": [\"docs/drafts/**\"",
        "{\"include\": [\"[\"]}",
        "{\"chunk_size\": \"big\"}",
    ] {
        std::fs::write(t.state_file("config.json"), bad).unwrap();
        let error = wait_for(WAIT, "the error in /status", || {
            r.status()["settings"]["error"].as_str().map(String::from)
        });
        assert!(
            error.contains("config.json") && error.contains("last good settings"),
            "{bad}: {error}"
        );
        // Still excluded: the last good settings hold.
        assert_eq!(
            r.paths("zeppelin"),
            ["docs/guide.md", "docs/long.md", "docs/notes.adoc"],
            "{bad}"
        );
        write_config(&t, &json!({ "exclude": ["docs/drafts/**"] }));
        wait_for(WAIT, "the error to clear", || {
            r.status()["settings"]["error"].is_null().then_some(())
        });
    }
    let events = t.events();
    assert!(
        events
            .iter()
            .filter(|e| e["event"] == "config_error")
            .count()
            >= 3,
        "{events:?}"
    );
    // doctor names the problem too.
    std::fs::write(t.state_file("config.json"), "{").unwrap();
    let out = t.run(&["doctor"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stdout).contains("config.json"));
}

#[test]
fn a_settings_file_that_loops_then_goes_leaves_the_defaults() {
    let (t, r) = setup();
    write_config(&t, &json!({ "exclude": ["docs/drafts/**"] }));
    r.wait_paths(
        "zeppelin",
        &["docs/guide.md", "docs/long.md", "docs/notes.adoc"],
    );
    let file = t.state_file("config.json");
    std::fs::remove_file(&file).unwrap();
    std::os::unix::fs::symlink("config.json", &file).unwrap();
    wait_for(WAIT, "the error in /status", || {
        r.status()["settings"]["error"].as_str().map(String::from)
    });
    std::fs::remove_file(&file).unwrap();
    wait_for(WAIT, "the error to clear", || {
        r.status()["settings"]["error"].is_null().then_some(())
    });
    r.wait_paths("zeppelin", ALL);
}
