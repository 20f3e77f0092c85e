//! Configuration layers and their errors, through the binary.

use std::time::Duration;

use crate::util::*;

#[test]
fn bad_config_is_a_clear_error() {
    let t = TestEnv::new();
    t.ok(&["init"]);
    let file = t.state_file("config.json");
    let cases = [
        ("{\"port\": 1,", vec!["config.json", "not valid JSON"]),
        ("{\"port\": \"high\"}", vec!["config.json", "\"port\""]),
        (
            "{\"idle_timeout_seconds\": -1}",
            vec!["config.json", "\"idle_timeout_seconds\""],
        ),
        ("[1, 2]", vec!["config.json", "JSON object"]),
        (
            "{\"data_dir\": \"\"}",
            vec!["config.json", "data_dir", "empty"],
        ),
        ("", vec!["config.json", "not valid JSON"]),
    ];
    for (text, needles) in cases {
        std::fs::write(&file, text).unwrap();
        for args in [&["status"][..], &["start"], &["serve"]] {
            let out = t.run(args);
            assert_eq!(out.status.code(), Some(2), "{text} {args:?}");
            let err = String::from_utf8_lossy(&out.stderr);
            for n in &needles {
                assert!(err.contains(n), "{text}: {err}");
            }
        }
        // Nothing was started, nothing was lost.
        assert_eq!(std::fs::read_to_string(&file).unwrap(), text);
        assert!(!t.state_file("runtime.json").exists());
    }
}

/// A wait far past a year overflowed where it was added to the clock, and a
/// connection cap past what a semaphore holds panicked: `start`, `mcp`, `serve` and
/// `stop` died with a panic (and `stop` left the resident running).
#[test]
fn waits_and_counts_too_large_to_use_are_refused_by_name() {
    let huge = u64::MAX.to_string();
    for (var, args) in [
        ("DOC_SERVE_START_TIMEOUT_SECONDS", &["start"][..]),
        ("DOC_SERVE_START_TIMEOUT_SECONDS", &["mcp"]),
        ("DOC_SERVE_REQUEST_TIMEOUT_SECONDS", &["serve"]),
        ("DOC_SERVE_MAX_CONNECTIONS", &["serve"]),
    ] {
        let mut t = TestEnv::new();
        t.ok(&["init"]);
        t.set(var, &huge);
        let out = t.run(args);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{var} {args:?}: {err}");
        assert!(
            err.contains(var) && !err.contains("panicked"),
            "{var}: {err}"
        );
        assert!(!t.state_file("runtime.json").exists(), "{var} {args:?}");
    }
    let t = TestEnv::new();
    t.ok(&["init"]);
    let out = t.run(&["start", "--idle-timeout", "31536001"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("--idle-timeout: 31536001 is longer than a year"),
        "{err}"
    );
    // `stop` says what is wrong and stops with the default settings.
    let mut t = TestEnv::new();
    t.ok(&["init"]);
    t.ok(&["start"]);
    t.set("DOC_SERVE_DRAIN_TIMEOUT_SECONDS", &huge);
    let out = t.run(&["stop"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{err}");
    assert!(
        err.contains("DOC_SERVE_DRAIN_TIMEOUT_SECONDS") && err.contains("a year"),
        "{err}"
    );
    assert!(!t.state_file("runtime.json").exists());
}

#[test]
fn unknown_keys_warn_and_bad_env_fails() {
    let mut t = TestEnv::new();
    t.ok(&["init"]);
    std::fs::write(t.state_file("config.json"), "{\"prot\": 8080}").unwrap();
    let out = t.run(&["where"]);
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("unknown key \"prot\""));

    t.set("DOC_SERVE_PORT", "eighty");
    let out = t.run(&["where"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("DOC_SERVE_PORT"));
}

#[test]
fn env_overrides_file_and_flags_override_env() {
    let mut t = TestEnv::new();
    t.ok(&["init"]);
    let (p_file, p_env, p_flag) = (free_port(), free_port(), free_port());
    std::fs::write(
        t.state_file("config.json"),
        format!("{{\"port\": {p_file}}}"),
    )
    .unwrap();

    let pid = t.spawn_serve(&[]);
    assert_eq!(t.wait_runtime(Duration::from_secs(10))["port"], p_file);
    signal(pid, Signal::SIGTERM);
    assert_eq!(t.wait_child(pid, Duration::from_secs(10)), Some(0));

    t.set("DOC_SERVE_PORT", &p_env.to_string());
    let pid = t.spawn_serve(&[]);
    assert_eq!(t.wait_runtime(Duration::from_secs(10))["port"], p_env);
    signal(pid, Signal::SIGTERM);
    assert_eq!(t.wait_child(pid, Duration::from_secs(10)), Some(0));

    let pid = t.spawn_serve(&["--port", &p_flag.to_string()]);
    assert_eq!(t.wait_runtime(Duration::from_secs(10))["port"], p_flag);

    // `where` lists the configured address among those a client would try.
    let v = t.json(&["where", "--json"]);
    let addrs: Vec<String> = v["addresses"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["address"].as_str().unwrap().to_string())
        .collect();
    assert!(
        addrs.contains(&format!("http://127.0.0.1:{p_flag}")),
        "{addrs:?}"
    );
    assert!(
        addrs.contains(&format!("http://127.0.0.1:{p_env}")),
        "{addrs:?}"
    );
    signal(pid, Signal::SIGTERM);
    assert_eq!(t.wait_child(pid, Duration::from_secs(10)), Some(0));
}

#[test]
fn port_in_use_is_a_clear_error() {
    let t = TestEnv::new();
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port().to_string();
    let out = t.run(&["serve", "--port", &port]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&port) && err.contains("already in use"),
        "{err}"
    );
    // The lock and PID file are released with the failed resident.
    assert!(!t.state_file("doc-serve.pid").exists());
    assert!(!t.state_file("runtime.json").exists());
}

/// A `data_dir` or `log_dir` pointing at a directory doc-serve did not make keeps
/// that directory's mode; one doc-serve makes is 0700.
#[test]
fn existing_data_and_log_dirs_keep_their_mode() {
    use std::os::unix::fs::PermissionsExt;
    let mut t = TestEnv::new();
    std::fs::write(t.project.join("a.md"), "# A\n\nword\n").unwrap();
    let shared = t.root().join("shared-dir");
    std::fs::create_dir_all(&shared).unwrap();
    std::fs::set_permissions(&shared, std::fs::Permissions::from_mode(0o755)).unwrap();
    t.set("DOC_SERVE_DATA_DIR", shared.to_str().unwrap());
    t.set("DOC_SERVE_LOG_DIR", shared.to_str().unwrap());
    t.ok(&["index"]);
    t.ok(&["start"]);
    t.ok(&["stop"]);
    assert_eq!(mode_of(&shared), 0o755);
    assert!(shared.join(".index.lock").exists());
    let fresh = t.root().join("fresh/data");
    t.set("DOC_SERVE_DATA_DIR", fresh.to_str().unwrap());
    t.ok(&["index"]);
    assert_eq!(mode_of(&fresh), 0o700);
}

/// The mistakes themselves are `bad_input::state_dir::garbage_config_json`'s cases.
#[test]
fn a_byte_order_mark_is_no_mistake() {
    let t = TestEnv::new();
    std::fs::create_dir_all(t.project.join("docs")).unwrap();
    std::fs::write(t.project.join("docs/a.md"), "# A\n\nalpha\n").unwrap();
    std::fs::write(t.project.join("docs/b.txt"), "alpha\n").unwrap();
    t.ok(&["init"]);
    // Notepad writes one.
    std::fs::write(
        t.state_file("config.json"),
        b"\xEF\xBB\xBF{\"include\": [\"docs/**/*.md\"]}",
    )
    .unwrap();
    let out = t.ok(&["query", "alpha"]);
    assert!(out.contains("docs/a.md") && !out.contains("b.txt"), "{out}");
}

#[test]
fn an_unknown_key_is_warned_about_once_and_an_empty_walk_is_explained() {
    let t = TestEnv::new();
    std::fs::create_dir_all(t.project.join("docs")).unwrap();
    std::fs::write(t.project.join("docs/a.md"), "# A\n\nalpha\n").unwrap();
    t.ok(&["init"]);
    std::fs::write(t.state_file("config.json"), r#"{"prot": 1}"#).unwrap();
    for args in [&["query", "alpha"][..], &["index"], &["status"], &["where"]] {
        let out = t.run(args);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(
            err.matches("unknown key \"prot\"").count(),
            1,
            "{args:?}: {err}"
        );
    }

    std::fs::write(
        t.state_file("config.json"),
        r#"{"include": ["manual/**/*.md"]}"#,
    )
    .unwrap();
    let out = t.run(&["index"]);
    assert!(out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("no file under") && err.contains("manual/**/*.md"),
        "{err}"
    );
}
