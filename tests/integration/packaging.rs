//! What packages ship beside the binary: shell completions and the man page, generated
//! by the binary itself with no project around, and the systemd user units, which must
//! pass `systemd-analyze verify`.
//!
//! Building the .deb itself is `packaging/build-deb` (a release build: too slow here).

use std::path::Path;
use std::process::Command;

use crate::util::{BIN, TestEnv, skip_without};

/// Commands every completion script must offer.
const COMMANDS: &[&str] = &[
    "init",
    "serve",
    "start",
    "stop",
    "status",
    "index",
    "query",
    "where",
    "completions",
    "man",
];

/// A TestEnv whose project cannot be resolved: any command that needs one fails.
fn nowhere() -> TestEnv {
    let mut env = TestEnv::new();
    let missing = env.root().join("no-such-project");
    env.set("DOC_SERVE_PROJECT", &missing.display().to_string());
    env
}

fn stdout_of(env: &TestEnv, args: &[&str]) -> String {
    let out = env.ok(args);
    assert!(
        !env.state_dir().exists(),
        "doc-serve {args:?} created a state dir"
    );
    out
}

#[test]
fn packaging_generators_need_no_project() {
    let env = nowhere();
    // The same environment fails a command that needs a project.
    let out = env.run(&["where"]);
    assert_eq!(out.status.code(), Some(2), "where should fail here");

    let bash = stdout_of(&env, &["completions", "bash"]);
    assert!(bash.contains("complete -F _doc__serve"), "{bash}");
    let zsh = stdout_of(&env, &["completions", "zsh"]);
    assert!(zsh.starts_with("#compdef doc-serve"), "{zsh}");
    let fish = stdout_of(&env, &["completions", "fish"]);
    assert!(fish.contains("complete -c doc-serve"), "{fish}");
    for script in [&bash, &zsh, &fish] {
        for command in COMMANDS {
            assert!(script.contains(command), "no {command} in\n{script}");
        }
    }
    for shell in ["elvish", "powershell"] {
        assert!(stdout_of(&env, &["completions", shell]).contains("doc-serve"));
    }
}

#[test]
fn packaging_man_page_is_roff_with_every_command() {
    let env = nowhere();
    let page = stdout_of(&env, &["man"]);
    assert!(page.contains("\n.TH DOC-SERVE 1 "), "{page}");
    for section in [
        ".SH NAME",
        ".SH SYNOPSIS",
        ".SH OPTIONS",
        ".SH COMMANDS",
        ".SH \"EXIT STATUS\"",
        ".SH ENVIRONMENT",
    ] {
        assert!(page.contains(section), "no {section} in\n{page}");
    }
    for command in COMMANDS {
        let heading = format!(".SS \"doc-serve {command}\"");
        assert!(page.contains(&heading), "no {heading} in\n{page}");
    }
}

#[test]
fn packaging_unknown_shell_is_a_usage_error() {
    let env = nowhere();
    let out = env.run(&["completions", "nosuchshell"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(out.stdout.is_empty());
    assert!(
        stderr.contains("invalid value 'nosuchshell'") && stderr.contains("bash"),
        "{stderr}"
    );
}

#[test]
fn packaging_systemd_units_verify() {
    if skip_without("systemd-analyze") {
        return;
    }
    let env = TestEnv::new();
    let units = env.root().join("units");
    std::fs::create_dir(&units).unwrap();
    let shipped = Path::new(env!("CARGO_MANIFEST_DIR")).join("systemd");
    let mut paths = Vec::new();
    let mut rewritten = 0;
    for name in [
        "doc-serve@.socket",
        "doc-serve@.service",
        "doc-serve.socket",
        "doc-serve.service",
    ] {
        let text = std::fs::read_to_string(shipped.join(name)).unwrap();
        // verify checks that ExecStart's binary exists: use the one under test.
        let exec = "ExecStart=/usr/bin/doc-serve ";
        rewritten += text.matches(exec).count();
        let text = text.replace(exec, &format!("ExecStart={BIN} "));
        std::fs::write(units.join(name), text).unwrap();
        paths.push(units.join(name));
    }
    assert_eq!(rewritten, 2, "each service runs /usr/bin/doc-serve");

    let runtime = env.root().join("run");
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&runtime, std::fs::Permissions::from_mode(0o700)).unwrap();
    }
    let mut cmd = Command::new("systemd-analyze");
    cmd.args(["--user", "--man=no", "verify"])
        .args(&paths)
        .env_clear();
    for (k, v) in &env.env {
        cmd.env(k, v);
    }
    let out = cmd.env("XDG_RUNTIME_DIR", &runtime).output().unwrap();
    let report = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success(),
        "systemd-analyze verify failed:\n{report}"
    );
    // Unknown keys and bad values are only warnings (exit 0): any output is a failure.
    assert!(
        report.trim().is_empty(),
        "systemd-analyze verify warned:\n{report}"
    );
}
