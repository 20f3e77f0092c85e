//! `doc-serve query` for people (README, "Terminal output"): `path:line:` first, colour
//! by `--color`, NO_COLOR and TERM (for hits and log lines), OSC 8 links, snippets
//! without markup noise, "no results" on stderr with exit 1. A terminal is a real pty.

use std::io::Read;
use std::process::{Output, Stdio};

use crate::util::*;

const ESC: char = '\x1b';
/// The colour of a matched word (ripgrep's: bold red).
const MATCH: &str = "\x1b[1;31m";

const GUIDE: &str = "# Guide

Intro.

## Install

<details>
<summary>Show the steps</summary>

Run the frobnicator on your machine.

```sh
./frobnicate --all
```

{{#include ../listings/steps.md}}

</details>

Keep a Vec<T> of them.
";

fn project() -> TestEnv {
    let t = TestEnv::new();
    let docs = t.project.join("docs");
    std::fs::create_dir_all(&docs).unwrap();
    std::fs::write(docs.join("guide.md"), GUIDE).unwrap();
    t.ok(&["index"]);
    t
}

/// Runs `doc-serve ARGS` with a pty as stdout (`tty_out`) or stderr (else), the other
/// stream a pipe: returns the exit code, what the pty showed and the piped stream.
fn on_tty(t: &TestEnv, args: &[&str], tty_out: bool) -> (Option<i32>, String, String) {
    let pty = nix::pty::openpty(None, None).unwrap();
    let slave = Stdio::from(pty.slave);
    let mut cmd = t.cmd(args);
    cmd.stdin(Stdio::null());
    if tty_out {
        cmd.stdout(slave).stderr(Stdio::piped());
    } else {
        cmd.stderr(slave).stdout(Stdio::piped());
    }
    // `cmd` holds the only other copy of the slave: once the child exits, reading the
    // master ends (EIO).
    let mut child = cmd.spawn().unwrap();
    drop(cmd);
    let mut master = std::fs::File::from(pty.master);
    let reader = std::thread::spawn(move || {
        let mut shown = Vec::new();
        let mut buf = [0u8; 4096];
        while let Ok(n) = master.read(&mut buf) {
            if n == 0 {
                break;
            }
            shown.extend_from_slice(&buf[..n]);
        }
        String::from_utf8_lossy(&shown).replace("\r\n", "\n")
    });
    let mut piped = String::new();
    let stream: &mut dyn Read = match (child.stdout.as_mut(), child.stderr.as_mut()) {
        (Some(out), _) => out,
        (_, Some(err)) => err,
        _ => unreachable!("one stream is piped"),
    };
    stream.read_to_string(&mut piped).unwrap();
    let code = child.wait().unwrap().code();
    (code, reader.join().unwrap(), piped)
}

fn text(out: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn terminal_hits_start_with_path_and_line_and_show_no_markup_noise() {
    let t = project();
    let (out, _) = text(&t.run(&["query", "frobnicator"]));
    // The line of the first matched word, then the heading trail.
    assert!(
        out.starts_with("docs/guide.md:10: Install  (lines 5-"),
        "{out}"
    );
    assert!(!out.contains(ESC), "a pipe gets no escapes: {out:?}");
    let snippet = out.lines().nth(1).unwrap();
    assert!(
        snippet.contains("Run the frobnicator on your machine."),
        "{snippet}"
    );
    assert!(snippet.contains("./frobnicate --all"), "{snippet}");
    assert!(snippet.contains("Keep a Vec<T> of them."), "{snippet}");
    for noise in ["```", "</summary>", "</details>", "{{#", "steps.md"] {
        assert!(!snippet.contains(noise), "{noise} in {snippet}");
    }
    // --json is the index's text, noise and all.
    let v = t.json(&["query", "--json", "frobnicator"]);
    let raw = v["hits"][0]["snippet"].as_str().unwrap();
    for noise in [
        "```sh",
        "</summary>",
        "{{#include ../listings/steps.md}}",
        "</details>",
    ] {
        assert!(raw.contains(noise), "{noise} not in {raw}");
    }

    // A section's own first line when the file changed since it was indexed.
    let edited = GUIDE.replace("Run the frobnicator", "Now run the frobnicator");
    std::fs::write(t.project.join("docs/guide.md"), edited).unwrap();
    let (out, _) = text(&t.run(&["query", "frobnicator"]));
    assert!(out.starts_with("docs/guide.md:5: Install"), "{out}");
}

#[test]
fn terminal_no_results_is_said_on_stderr_with_exit_1() {
    let t = project();
    let out = t.run(&["query", "zzqqxx"]);
    let (stdout, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(stdout, "", "stdout stays empty for pipes");
    assert!(stderr.contains("no results for \"zzqqxx\""), "{stderr}");
    // --json answers on stdout all the same, and exits 1 too.
    let v = t.json_code(&["query", "--json", "zzqqxx"], 1);
    assert_eq!(v["hits"], serde_json::json!([]), "{v}");
    // Through a resident, the same.
    t.ok(&["start"]);
    let out = t.run(&["query", "zzqqxx"]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(text(&out), (String::new(), stderr));
    t.ok(&["stop"]);
}

#[test]
fn terminal_colour_follows_the_flag_no_color_and_the_tty() {
    let mut t = project();
    let has_colour = |shown: &str| shown.contains(&format!("{MATCH}frobnicator\x1b[0m"));
    // On a terminal, auto colours, with path and line in ripgrep's colours.
    t.set("TERM", "xterm-256color");
    let (code, shown, _) = on_tty(&t, &["query", "frobnicator"], true);
    assert_eq!(code, Some(0), "{shown}");
    assert!(has_colour(&shown), "{shown:?}");
    assert!(
        shown.starts_with("\x1b[35mdocs/guide.md\x1b[0m:\x1b[32m10\x1b[0m: Install"),
        "{shown:?}"
    );
    // Never, NO_COLOR and a dumb terminal: no escape at all.
    let (_, shown, _) = on_tty(&t, &["query", "--color", "never", "frobnicator"], true);
    assert!(!shown.contains(ESC), "{shown:?}");
    t.set("NO_COLOR", "1");
    let (_, shown, _) = on_tty(&t, &["query", "frobnicator"], true);
    assert!(!shown.contains(ESC), "NO_COLOR: {shown:?}");
    // An explicit --color always wins over NO_COLOR, even on a pipe.
    let (out, _) = text(&t.run(&["query", "--color", "always", "frobnicator"]));
    assert!(has_colour(&out), "{out:?}");
    // An empty NO_COLOR asks for nothing.
    t.set("NO_COLOR", "");
    let (_, shown, _) = on_tty(&t, &["query", "frobnicator"], true);
    assert!(has_colour(&shown), "{shown:?}");
    t.set("TERM", "dumb");
    let (_, shown, _) = on_tty(&t, &["query", "frobnicator"], true);
    assert!(!shown.contains(ESC), "TERM=dumb: {shown:?}");
}

#[test]
fn terminal_log_lines_follow_color_and_no_color_too() {
    let mut t = project();
    // An unknown key in config.json: every command warns about it.
    std::fs::write(t.state_file("config.json"), r#"{"prot": 1}"#).unwrap();
    t.set("TERM", "xterm-256color");
    let warned = |shown: &str| {
        assert!(shown.contains("unknown key \"prot\""), "{shown:?}");
    };
    let (_, shown, _) = on_tty(&t, &["status"], false);
    warned(&shown);
    assert!(
        shown.contains(ESC),
        "a terminal's log lines are coloured: {shown:?}"
    );
    let (_, shown, _) = on_tty(&t, &["status", "--color", "never"], false);
    warned(&shown);
    assert!(!shown.contains(ESC), "{shown:?}");
    t.set("NO_COLOR", "yes");
    let (_, shown, _) = on_tty(&t, &["status"], false);
    warned(&shown);
    assert!(!shown.contains(ESC), "NO_COLOR: {shown:?}");
    let (_, err) = text(&t.run(&["status", "--color", "always"]));
    warned(&err);
    assert!(err.contains(ESC), "--color always wins: {err:?}");
}

#[test]
fn terminal_hyperlinks_only_with_colour_and_known_terminals() {
    let mut t = project();
    std::fs::write(
        t.project.join("docs/my guide.md"),
        "# Mine\n\nline two\n\nthe quuxword here\n",
    )
    .unwrap();
    t.ok(&["index"]);
    let host = nix::unistd::gethostname().unwrap();
    let url = format!(
        "file://{}{}/docs/my%20guide.md",
        host.to_str().unwrap(),
        t.project.display()
    );
    let link = format!("\x1b]8;;{url}\x1b\\");
    let linked = |t: &TestEnv, args: &[&str]| {
        let (out, _) = text(&t.run(args));
        out.contains("\x1b]8;;")
    };
    let (out, _) = text(&t.run(&[
        "query",
        "--color",
        "always",
        "--hyperlink",
        "always",
        "quuxword",
    ]));
    assert!(
        out.starts_with(&format!(
            "{link}\x1b[35mdocs/my guide.md\x1b[0m:\x1b[32m5\x1b[0m\x1b]8;;\x1b\\: Mine"
        )),
        "{out:?}"
    );
    // No colour, no links; `never` and an unknown terminal, none either.
    assert!(!linked(&t, &["query", "--hyperlink", "always", "quuxword"]));
    assert!(!linked(
        &t,
        &[
            "query",
            "--color",
            "always",
            "--hyperlink",
            "never",
            "quuxword"
        ]
    ));
    assert!(!linked(&t, &["query", "--color", "always", "quuxword"]));
    // A terminal known to show them gets them in auto, unless inside tmux.
    t.set("VTE_VERSION", "7600");
    assert!(linked(&t, &["query", "--color", "always", "quuxword"]));
    t.set("TMUX", "/tmp/tmux-0/default,1,0");
    assert!(!linked(&t, &["query", "--color", "always", "quuxword"]));
    t.env.retain(|(k, _)| k != "TMUX");
    // kitty gets the line too; on a pty with NO_COLOR, nobody gets anything.
    t.set("TERM", "xterm-kitty");
    let (out, _) = text(&t.run(&["query", "--color", "always", "quuxword"]));
    assert!(out.contains(&format!("\x1b]8;;{url}#5\x1b\\")), "{out:?}");
    t.set("NO_COLOR", "1");
    let (_, shown, _) = on_tty(&t, &["query", "quuxword"], true);
    assert!(shown.starts_with("docs/my guide.md:5: Mine"), "{shown:?}");
    assert!(!shown.contains(ESC), "{shown:?}");
}

#[test]
fn terminal_escapes_in_documents_never_reach_the_terminal() {
    let t = TestEnv::new();
    std::fs::create_dir_all(t.project.join("docs")).unwrap();
    std::fs::write(
        t.project.join("docs/evil.md"),
        "# Evil \x1b[2J title\n\nzapword \x1b]8;;http://evil.example\x1b\\click\x1b]8;;\x1b\\ \x1b[31mred\x07\n",
    )
    .unwrap();
    t.ok(&["index"]);
    let (out, _) = text(&t.run(&["query", "zapword"]));
    assert!(out.starts_with("docs/evil.md:3: Evil"), "{out:?}");
    assert!(!out.chars().any(|c| c.is_control() && c != '\n'), "{out:?}");
    let (out, _) = text(&t.run(&["query", "--color", "always", "zapword"]));
    assert!(
        !out.contains("\x1b]8") && !out.contains("\x1b[2J") && !out.contains('\x07'),
        "{out:?}"
    );
    // Nor does a file's name, where `index` lists it as skipped (a NUL byte: binary).
    std::fs::write(t.project.join("docs/\x1b[2Jbin.md"), b"x\0y").unwrap();
    let out = t.ok(&["index"]);
    assert!(out.contains("skipped docs/\u{FFFD}[2Jbin.md"), "{out:?}");
    assert!(!out.contains(ESC), "{out:?}");
    // --json keeps the text exact (JSON escapes it).
    let v = t.json(&["query", "--json", "zapword"]);
    assert!(
        v["hits"][0]["snippet"]
            .as_str()
            .unwrap()
            .contains("\x1b[31mred"),
        "{v}"
    );
}

#[test]
fn terminal_help_lists_man_and_the_man_page_has_exit_status_and_environment() {
    let t = TestEnv::new();
    let help = t.ok(&["--help"]);
    assert!(
        help.lines().any(|l| l.trim_start().starts_with("man ")),
        "{help}"
    );
    assert!(
        help.contains("Exit status: 0 ok; 1 nothing found"),
        "{help}"
    );
    assert!(help.contains("NO_COLOR ("), "{help}");
    let page = t.ok(&["man"]);
    for section in [
        ".SH \"EXIT STATUS\"",
        ".SH ENVIRONMENT",
        ".SS \"doc-serve man\"",
    ] {
        assert!(page.contains(section), "no {section} in\n{page}");
    }
    let environment = page.split(".SH ENVIRONMENT").nth(1).unwrap();
    for var in ["NO_COLOR", "TERM", "DOC_SERVE_LOG", "DOC_SERVE_PROJECT"] {
        assert!(environment.contains(var), "{var} missing: {environment}");
    }
    for args in [
        &["query", "--help"][..],
        &["status", "--help"],
        &["model", "list", "--help"],
    ] {
        let help = t.ok(args);
        let json = help.split("--json").nth(1).unwrap_or_default();
        assert!(json.trim_start().starts_with("Print"), "{args:?}: {help}");
    }
}
