//! Root resolution (`where`) and `init`.

use crate::util::*;

#[test]
fn where_explains_the_root() {
    let mut t = TestEnv::new();
    let sub = t.project.join("docs/guide");
    std::fs::create_dir_all(&sub).unwrap();
    let out = t
        .cmd(&["where", "--json"])
        .current_dir(&sub)
        .output()
        .unwrap();
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["project_root"], t.project.display().to_string());
    assert_eq!(v["reason"], "git");
    assert_eq!(v["state_dir"], t.state_dir().display().to_string());
    assert!(v["project_id"].as_str().unwrap().starts_with("p_"));
    assert_eq!(
        v["runtime_file"],
        t.state_file("runtime.json").display().to_string()
    );
    assert_eq!(v["addresses"].as_array().unwrap().len(), 0);

    // An initialised sub-project wins over the git root.
    let out = t
        .cmd(&["--path", ".", "init"])
        .current_dir(&sub)
        .output()
        .unwrap();
    assert!(out.status.success());
    let out = t
        .cmd(&["where", "--json"])
        .current_dir(&sub)
        .output()
        .unwrap();
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["project_root"], sub.display().to_string());
    assert_eq!(v["reason"], "state_dir");

    // DOC_SERVE_PROJECT, then --path, override discovery.
    let other = t.root().join("other");
    std::fs::create_dir(&other).unwrap();
    t.set("DOC_SERVE_PROJECT", other.to_str().unwrap());
    let v = t.json(&["where", "--json"]);
    assert_eq!(v["project_root"], other.display().to_string());
    assert_eq!(v["reason"], "env");
    let v = t.json(&["--path", sub.to_str().unwrap(), "where", "--json"]);
    assert_eq!(v["reason"], "flag");
    assert_eq!(v["project_root"], sub.display().to_string());

    // A root that does not exist is a clear error.
    let out = t.run(&["--path", "/nonexistent/x", "where"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("/nonexistent/x"));

    // Human output names the reason.
    t.set("DOC_SERVE_PROJECT", "");
    let text = t.ok(&["where"]);
    assert!(text.contains("git top-level"), "{text}");
}

#[test]
fn init_creates_a_private_state_dir() {
    let t = TestEnv::new();
    let v = t.json(&["init", "--json"]);
    assert_eq!(v["created"], true);
    assert_eq!(mode_of(&t.state_dir()), 0o700);
    let config: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(t.state_file("config.json")).unwrap())
            .unwrap();
    assert_eq!(config["mode"], "project");
    let ignore = std::fs::read_to_string(t.state_file(".gitignore")).unwrap();
    assert!(ignore.lines().any(|l| l == "*") && ignore.lines().any(|l| l == "!config.json"));
    // No temp files are left by the atomic write.
    let names: Vec<_> = std::fs::read_dir(t.state_dir())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert!(names.iter().all(|n| !n.ends_with(".tmp")), "{names:?}");

    // A second init leaves the file alone.
    std::fs::write(
        t.state_file("config.json"),
        "{\"mode\": \"project\", \"port\": 0}\n",
    )
    .unwrap();
    let v = t.json(&["init", "--json"]);
    assert_eq!(v["created"], false);
    assert!(
        std::fs::read_to_string(t.state_file("config.json"))
            .unwrap()
            .contains("port")
    );

    let t2 = TestEnv::new();
    t2.ok(&["init", "--mode", "shared"]);
    let text = std::fs::read_to_string(t2.state_file("config.json")).unwrap();
    assert!(text.contains("\"shared\""), "{text}");
}

/// In a home directory with no project marker (or with only a dotfiles `.git`), the
/// commands that would index or serve refuse, with the way to name it; `where` and
/// `doctor` say why; named or initialised, it is served.
#[test]
fn a_home_directory_is_indexed_only_when_named() {
    let mut t = TestEnv::new();
    let home = t.root().join("home");
    std::fs::write(home.join("notes.md"), "# Notes\n\nalpha\n").unwrap();
    let in_home = |t: &TestEnv, args: &[&str]| t.cmd(args).current_dir(&home).output().unwrap();
    for dotfiles in [false, true] {
        if dotfiles {
            std::fs::create_dir(home.join(".git")).unwrap();
        }
        for args in [
            &["query", "alpha"][..],
            &["index"],
            &["start"],
            &["serve"],
            &["mcp"],
            &["init"],
        ] {
            let out = in_home(&t, args);
            let err = String::from_utf8_lossy(&out.stderr);
            assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
            assert!(
                err.contains("is your home directory") && err.contains("--path"),
                "{args:?}: {err}"
            );
        }
        assert!(!home.join(".claude").exists(), "nothing was created");
        let v: serde_json::Value =
            serde_json::from_slice(&in_home(&t, &["where", "--json"]).stdout).unwrap();
        assert!(
            v["refused"].as_str().unwrap().contains("home directory"),
            "{v}"
        );
        let out = in_home(&t, &["doctor", "--json"]);
        assert_eq!(out.status.code(), Some(1));
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(v["checks"][0]["check"], "project", "{v}");
        assert_eq!(v["checks"][0]["status"], "fail", "{v}");
    }
    // Above the home directory too.
    let out = t
        .cmd(&["query", "alpha"])
        .current_dir(t.root())
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&out.stderr).contains("above your home directory"));

    // Named, it is indexed.
    let out = in_home(&t, &["--path", ".", "query", "alpha"]);
    assert!(String::from_utf8_lossy(&out.stdout).contains("notes.md"));
    t.set("DOC_SERVE_PROJECT", home.to_str().unwrap());
    assert!(in_home(&t, &["query", "alpha"]).status.success());
    // Initialised (by name), it no longer needs naming.
    assert!(in_home(&t, &["init"]).status.success());
    t.set("DOC_SERVE_PROJECT", "");
    let out = in_home(&t, &["query", "alpha"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
