//! `doc-serve doctor`: what it finds, the fixes it names, and that it changes nothing.

use std::os::unix::fs::PermissionsExt;

use serde_json::Value;

use crate::util::*;

/// The checks named `name`, as (status, detail, fix).
fn checks(report: &Value, name: &str) -> Vec<(String, String, String)> {
    report["checks"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["check"] == name)
        .map(|c| {
            let s = |k: &str| c[k].as_str().unwrap_or_default().to_owned();
            (s("status"), s("detail"), s("fix"))
        })
        .collect()
}

/// The one check named `name`.
fn check(report: &Value, name: &str) -> (String, String, String) {
    let mut found = checks(report, name);
    assert_eq!(found.len(), 1, "{name}: {report:#}");
    found.remove(0)
}

fn write(t: &TestEnv, rel: &str, text: &str) {
    let path = t.project.join(rel);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, text).unwrap();
}

#[test]
fn a_fresh_project_passes_and_is_left_untouched() {
    let mut t = TestEnv::new();
    t.set("DOC_SERVE_MAX_FILE_BYTES", "100");
    write(&t, "docs/guide.md", "# Guide\n\nSome words.\n");
    write(&t, "docs/big.md", &"words ".repeat(20));
    let report = t.json(&["doctor", "--json"]);
    assert_eq!(report["ok"], true, "{report:#}");
    let (status, detail, _) = check(&report, "config");
    assert_eq!(status, "ok");
    assert!(
        detail.ends_with("; set in the environment: DOC_SERVE_MAX_FILE_BYTES"),
        "{detail}"
    );
    let (status, detail, _) = check(&report, "sources");
    assert_eq!(status, "ok");
    assert!(detail.starts_with("1 file to index"), "{detail}");
    assert!(
        detail.ends_with("; 1 path skipped, e.g. docs/big.md: 120 bytes, over the 100 byte cap"),
        "{detail}"
    );
    let (status, detail, _) = check(&report, "resident");
    assert_eq!(status, "ok");
    assert!(detail.contains("not running"), "{detail}");
    assert_eq!(
        check(&report, "index"),
        (
            "warn".into(),
            format!(
                "no index of this doc-serve version in {} yet",
                t.state_dir().join("data").display()
            ),
            "doc-serve index".into()
        )
    );
    assert!(!t.state_dir().exists(), "doctor created the state dir");

    let text = t.ok(&["doctor"]);
    assert!(text.contains("  warn  index"), "{text}");
    assert!(text.contains("fix: doc-serve index"), "{text}");
    assert!(text.ends_with("0 failed, 1 to look at\n"), "{text}");
}

#[test]
fn an_index_behind_the_disk_is_reported_until_indexed() {
    let t = TestEnv::new();
    write(&t, "docs/a.md", "# A\n\nalpha\n");
    write(&t, "docs/b.md", "# B\n\nbeta\n");
    write(&t, "docs/c.md", "# C\n\ngamma\n");
    t.ok(&["index"]);
    let report = t.json(&["doctor", "--json"]);
    let (status, detail, _) = check(&report, "index");
    assert_eq!(status, "ok");
    assert!(
        detail.starts_with("3 files, 3 sections, last commit"),
        "{detail}"
    );
    assert!(detail.ends_with("; up to date"), "{detail}");

    write(&t, "docs/a.md", "# A\n\nalpha, longer now\n");
    write(&t, "docs/d.md", "# D\n\ndelta\n");
    std::fs::remove_file(t.project.join("docs/c.md")).unwrap();
    // Skipped by indexing, so never behind: a binary file.
    write(&t, "docs/e.md", "binary\0\n");
    // Touched, not changed: indexing records the new mtime without reading it again.
    let b = std::fs::File::options()
        .write(true)
        .open(t.project.join("docs/b.md"))
        .unwrap();
    b.set_modified(std::time::UNIX_EPOCH + std::time::Duration::from_secs(1_000_000_000))
        .unwrap();
    let report = t.json(&["doctor", "--json"]);
    assert_eq!(report["ok"], true, "a stale index is a warning");
    let (status, detail, fix) = check(&report, "index");
    assert_eq!(status, "warn");
    assert!(
        detail.ends_with(
            "; behind the disk: 1 new, 2 modified (size or mtime), 1 gone (1 file skipped as binary or unreadable)"
        ),
        "{detail}"
    );
    assert_eq!(fix, "doc-serve index");

    let summary = t.json(&["index", "--json"]);
    let counts =
        ["added", "updated", "removed", "unchanged"].map(|k| summary["summary"][k].clone());
    assert_eq!(counts, [1, 1, 1, 1].map(Value::from), "{summary}");
    // Up to date, so the touch was recorded too: b.md is not read again.
    let (status, detail, _) = check(&t.json(&["doctor", "--json"]), "index");
    assert_eq!(status, "ok");
    assert_eq!(
        detail.split_once(", last commit").unwrap().0,
        "3 files, 3 sections"
    );
    assert!(
        detail.ends_with("; up to date (1 file skipped as binary or unreadable)"),
        "{detail}"
    );
}

#[test]
fn broken_settings_and_stale_files_are_named_with_their_fixes() {
    let t = TestEnv::new();
    write(&t, "docs/a.md", "# A\n");
    t.ok(&["init"]);
    std::fs::write(t.state_file("config.json"), "{\"chunk_size\": ").unwrap();
    std::fs::write(t.state_file("runtime.json"), "{\"pid\": 12").unwrap();
    let report = t.json_code(&["doctor", "--json"], 1);
    assert_eq!(report["ok"], false);
    let (status, detail, _) = check(&report, "config");
    assert_eq!(status, "fail");
    assert!(detail.contains("config.json"), "{detail}");
    for name in ["sources", "index"] {
        assert_eq!(check(&report, name).0, "skip", "{name}");
    }
    let stale = checks(&report, "resident");
    assert!(
        stale.iter().any(|(status, detail, fix)| status == "warn"
            && detail.contains("runtime.json")
            && fix.starts_with("doc-serve stop")),
        "{stale:?}"
    );
    assert!(
        t.state_file("runtime.json").exists(),
        "doctor removed a file"
    );

    // A bad include glob is a setting's failure, naming the file and the key, as every
    // command reports it.
    std::fs::write(t.state_file("config.json"), r#"{"include": ["[z-a]"]}"#).unwrap();
    let report = t.json_code(&["doctor", "--json"], 1);
    let (status, detail, _) = check(&report, "config");
    assert_eq!(status, "fail", "{report:#}");
    assert!(
        detail.contains("[z-a]")
            && detail.contains("include (set in")
            && detail.contains("config.json"),
        "{detail}"
    );
    for name in ["sources", "index"] {
        assert_eq!(check(&report, name).0, "skip", "{name}");
    }
    // So is an exclude that leaves nothing to index.
    std::fs::write(t.state_file("config.json"), r#"{"exclude": ["***"]}"#).unwrap();
    let report = t.json_code(&["doctor", "--json"], 1);
    let (status, detail, _) = check(&report, "config");
    assert_eq!(status, "fail", "{report:#}");
    assert!(detail.contains("nothing would be indexed"), "{detail}");

    // A state dir that is a file: nothing in it can be checked.
    std::fs::remove_dir_all(t.state_dir()).unwrap();
    std::fs::write(t.state_dir(), "").unwrap();
    let report = t.json_code(&["doctor", "--json"], 1);
    let (status, detail, _) = check(&report, "state dir");
    assert_eq!(status, "fail");
    assert!(detail.ends_with("is not a directory"), "{detail}");
    for name in ["config", "supervisor", "resident", "sources", "index"] {
        assert_eq!(check(&report, name).0, "skip", "{name}");
    }
}

#[test]
fn a_running_resident_and_a_readable_token() {
    let t = TestEnv::new();
    write(&t, "docs/a.md", "# A\n\nalpha\n");
    let started = t.json(&["start", "--json"]);
    let report = t.json(&["doctor", "--json"]);
    let (status, detail, _) = check(&report, "resident");
    assert_eq!(status, "ok");
    let url = started["base_url"].as_str().unwrap();
    assert!(detail.contains(url), "{detail} vs {started:#}");

    // runtime.json readable by others: the 0700 state dir still keeps them out; opened
    // to them, the token is theirs.
    let runtime = t.state_file("runtime.json");
    let chmod = |path: &std::path::Path, mode| {
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap()
    };
    chmod(&runtime, 0o644);
    let report = t.json(&["doctor", "--json"]);
    let token = checks(&report, "resident").remove(1);
    assert_eq!(token.0, "warn", "{report:#}");
    assert!(
        token.1.contains("is mode 0644; only its directory"),
        "{}",
        token.1
    );
    assert_eq!(token.2, format!("chmod 600 {}", runtime.display()));
    chmod(&t.state_dir(), 0o711);
    let report = t.json_code(&["doctor", "--json"], 1);
    let token = checks(&report, "resident").remove(1);
    assert_eq!(token.0, "fail", "{report:#}");
    assert!(
        token.1.ends_with("other users can read its bearer token"),
        "{}",
        token.1
    );
    chmod(&t.state_dir(), 0o700);
    chmod(&runtime, 0o600);
    t.ok(&["stop"]);
}

/// A systemd instance whose unit runs a binary that is gone (a moved or uninstalled
/// doc-serve) fails, with the fix; found without systemd running.
#[test]
fn a_unit_running_a_missing_binary_needs_a_refresh() {
    let t = TestEnv::new();
    let config = t.root().join("home/.config");
    let registry = serde_json::json!({
        "schema_version": 1,
        "instances": {"project": {
            "slug": "project",
            "root": t.project,
            "supervisor": "systemd",
            "socket_path": t.root().join("run/doc-serve/project.sock"),
        }},
    });
    std::fs::create_dir_all(config.join("doc-serve")).unwrap();
    std::fs::write(
        config.join("doc-serve/instances.json"),
        registry.to_string(),
    )
    .unwrap();
    let units = config.join("systemd/user");
    std::fs::create_dir_all(&units).unwrap();
    std::fs::write(
        units.join("doc-serve@.service"),
        "[Service]\nExecStart=\"/gone/doc serve\" serve --instance %i\n",
    )
    .unwrap();
    let report = t.json_code(&["doctor", "--json"], 1);
    assert_eq!(
        check(&report, "supervisor"),
        (
            "fail".into(),
            "doc-serve@project.service would run /gone/doc serve, which does not exist".into(),
            "doc-serve install systemd --refresh".into()
        )
    );

    // A registry that does not parse is a failure, not "none installed".
    std::fs::write(config.join("doc-serve/instances.json"), "{").unwrap();
    let report = t.json_code(&["doctor", "--json"], 1);
    let (status, detail, fix) = check(&report, "supervisor");
    assert_eq!(status, "fail");
    assert!(detail.contains("instances.json"), "{detail}");
    assert!(fix.starts_with("move "), "{fix}");
}

/// As a user that root's pass over permissions does not help: a directory of sources
/// it cannot read is named, and the fix is not `index`, which would drop what is under
/// it from the index. Needs root to create the user; outside CI it skips without.
#[test]
fn unreadable_sources_are_named_and_index_is_not_their_fix() {
    let Some(user) = crate::users::OtherUser::create() else {
        return;
    };
    let t = TestEnv::new();
    write(&t, "docs/a.md", "# A\n\nalpha\n");
    write(&t, "docs/locked/b.md", "# B\n\nbeta\n");
    // A copy of the binary the user can reach, in a tree that is all the user's.
    let bin = t.root().join("doc-serve");
    std::fs::copy(BIN, &bin).unwrap();
    user.owns(&t.root());
    let run = |args: &[&str]| {
        let mut cmd = std::process::Command::new(&bin);
        cmd.args(args)
            .current_dir(&t.project)
            .env_clear()
            .envs(t.env.iter().map(|(k, v)| (k, v)));
        user.runs(&mut cmd);
        cmd.output().unwrap()
    };
    assert!(run(&["index"]).status.success());
    let locked = t.project.join("docs/locked");
    std::fs::set_permissions(&locked, std::fs::Permissions::from_mode(0o000)).unwrap();
    let out = run(&["doctor", "--json"]);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    let (status, detail, fix) = check(&report, "sources");
    assert_eq!(status, "warn", "{report:#}");
    assert!(
        detail.contains("; 1 path cannot be read, e.g. docs/locked:"),
        "{detail}"
    );
    assert!(fix.starts_with("give this user read access"), "{fix}");
    let (status, detail, fix) = check(&report, "index");
    assert_eq!(status, "warn");
    assert!(
        detail.contains("behind the disk: 0 new, 0 modified (size or mtime), 1 gone"),
        "{detail}"
    );
    assert!(
        fix.starts_with("first make the paths under sources readable"),
        "{fix}"
    );
}
