//! Tests of the launchd agents: rendered plists parse and say what they promise.

use std::path::Path;

use plist::{Dictionary, Value};

use super::*;

const HOME: &str = "/Users/ada";

fn parse(xml: &str) -> Dictionary {
    match Value::from_reader_xml(xml.as_bytes()) {
        Ok(Value::Dictionary(d)) => d,
        other => panic!("not a plist dictionary: {other:?}\n{xml}"),
    }
}

fn string<'a>(d: &'a Dictionary, key: &str) -> &'a str {
    d.get(key)
        .and_then(Value::as_string)
        .unwrap_or_else(|| panic!("no string {key}"))
}

fn integer(d: &Dictionary, key: &str) -> i64 {
    d.get(key)
        .and_then(Value::as_signed_integer)
        .unwrap_or_else(|| panic!("no integer {key}"))
}

fn args(d: &Dictionary) -> Vec<&str> {
    let list = d
        .get("ProgramArguments")
        .and_then(Value::as_array)
        .expect("ProgramArguments");
    list.iter()
        .map(|v| v.as_string().expect("a string argument"))
        .collect()
}

/// The dictionaries under `Sockets` -> "doc-serve".
fn sockets(d: &Dictionary) -> Vec<&Dictionary> {
    let sockets = d
        .get("Sockets")
        .and_then(Value::as_dictionary)
        .expect("Sockets");
    assert_eq!(sockets.keys().collect::<Vec<_>>(), [SOCKET_NAME]);
    match &sockets[SOCKET_NAME] {
        Value::Array(list) => list
            .iter()
            .map(|v| v.as_dictionary().expect("a dict"))
            .collect(),
        Value::Dictionary(one) => vec![one],
        other => panic!("Sockets entry is {other:?}"),
    }
}

/// On demand only, and never throttled on an idle exit.
fn assert_on_demand(d: &Dictionary, idle_timeout: &str) {
    for key in ["RunAtLoad", "KeepAlive"] {
        assert!(
            d.get(key).is_none_or(|v| v.as_boolean() == Some(false)),
            "{key} must be absent or false"
        );
    }
    let throttle = integer(d, "ThrottleInterval");
    let idle: i64 = idle_timeout.parse().unwrap();
    assert!(
        throttle > 0 && throttle * 10 <= idle,
        "{throttle} s vs idle {idle} s"
    );
    assert!(
        ["Background", "Interactive"].contains(&string(d, "ProcessType")),
        "ProcessType"
    );
}

fn assert_unix_socket(socket: &Dictionary, path: &str) {
    assert_eq!(string(socket, "SockPathName"), path);
    assert_eq!(integer(socket, "SockPathMode"), 0o600);
    assert_eq!(integer(socket, "SockPathMode"), 384);
}

fn assert_tcp_socket(socket: &Dictionary, port: u16) {
    assert_eq!(string(socket, "SockNodeName"), "127.0.0.1");
    assert_eq!(string(socket, "SockServiceName"), port.to_string());
    assert!(socket.get("SockPathName").is_none());
}

#[test]
fn agent_says_what_it_promises() {
    let home = Path::new(HOME);
    let sock = socket_path(home, "docs").unwrap();
    let log = log_path(home, "docs");
    let xml = render_agent(
        Path::new("/usr/local/bin/doc-serve"),
        "docs",
        &sock,
        Some(8111),
        &log,
    );
    assert!(xml.contains(MARK));
    let d = parse(&xml);
    assert_eq!(string(&d, "Label"), "dev.doc-serve.docs");
    assert_eq!(string(&d, "Label"), label("docs"));
    let argv = args(&d);
    assert_eq!(
        argv,
        [
            "/usr/local/bin/doc-serve",
            "serve",
            "--instance",
            "docs",
            "--idle-timeout",
            "600"
        ]
    );
    assert_on_demand(&d, argv[5]);
    assert_eq!(
        string(&d, "StandardErrorPath"),
        "/Users/ada/Library/Logs/doc-serve/docs.log"
    );
    let socks = sockets(&d);
    assert_eq!(socks.len(), 2);
    assert_unix_socket(socks[0], "/Users/ada/Library/Caches/doc-serve/docs.sock");
    assert_tcp_socket(socks[1], 8111);
}

#[test]
fn agent_without_tcp_has_only_the_unix_socket() {
    let home = Path::new(HOME);
    let sock = socket_path(home, "docs").unwrap();
    let xml = render_agent(
        Path::new("/bin/doc-serve"),
        "docs",
        &sock,
        None,
        &log_path(home, "docs"),
    );
    let d = parse(&xml);
    let socks = sockets(&d);
    assert_eq!(socks.len(), 1);
    assert_unix_socket(socks[0], "/Users/ada/Library/Caches/doc-serve/docs.sock");
    assert!(
        !xml.contains("SockNodeName") && !xml.contains("tcp:"),
        "{xml}"
    );
}

#[test]
fn shared_agent_says_what_it_promises() {
    let home = Path::new(HOME);
    let sock = shared_socket_path(home).unwrap();
    let log = log_path(home, "shared");
    let xml = render_shared(
        Path::new("/opt/homebrew/bin/doc-serve"),
        &sock,
        Some(SHARED_TCP_PORT),
        &log,
    );
    let d = parse(&xml);
    assert_eq!(string(&d, "Label"), SHARED_LABEL);
    assert_eq!(
        shared_agent_path(home),
        Path::new("/Users/ada/Library/LaunchAgents/dev.doc-serve.shared.plist")
    );
    let argv = args(&d);
    assert_eq!(
        argv,
        [
            "/opt/homebrew/bin/doc-serve",
            "serve",
            "--shared",
            "--idle-timeout",
            "1800"
        ]
    );
    assert_on_demand(&d, argv[4]);
    let socks = sockets(&d);
    assert_eq!(socks.len(), 2);
    assert_unix_socket(socks[0], "/Users/ada/Library/Caches/doc-serve/shared.sock");
    assert_tcp_socket(socks[1], 45123);
}

#[test]
fn special_characters_are_escaped_and_round_trip() {
    let exe = "/Users/a&b/<x> \"q\" 'y' @SLUG@ @PORT@ tab\there/dev\r.d/doc-serve";
    let sock = "/tmp/a&b<c>/@LOG@.sock";
    let log = "/tmp/l&g/]]>/x.log";
    let xml = render_agent(
        Path::new(exe),
        "docs",
        Path::new(sock),
        Some(1),
        Path::new(log),
    );
    assert!(!xml.contains("a&b"), "raw ampersand in\n{xml}");
    let d = parse(&xml);
    assert_eq!(args(&d)[0], exe);
    assert_eq!(args(&d)[3], "docs");
    assert_eq!(string(&d, "StandardErrorPath"), log);
    assert_unix_socket(sockets(&d)[0], sock);
    // Characters XML 1.0 cannot carry at all: check_path refuses them first.
    let bell = Path::new("/tmp/bell\x07/doc-serve");
    assert!(check_path(bell).is_err());
    assert!(check_path(Path::new(exe)).is_ok());
    let xml = render_agent(bell, "docs", Path::new(sock), None, Path::new(log));
    assert_eq!(args(&parse(&xml))[0], "/tmp/bell\u{fffd}/doc-serve");
}

#[cfg(unix)]
#[test]
fn non_utf8_paths_are_refused() {
    use std::os::unix::ffi::OsStrExt;
    let path = Path::new(std::ffi::OsStr::from_bytes(b"/tmp/\xff/doc-serve"));
    assert!(check_path(path).is_err());
}

#[test]
fn paths_and_commands() {
    let home = Path::new(HOME);
    assert_eq!(
        agent_path(home, "docs"),
        Path::new("/Users/ada/Library/LaunchAgents/dev.doc-serve.docs.plist")
    );
    let longest = "a".repeat(crate::supervisor::registry::MAX_SLUG);
    assert!(
        socket_path(home, &longest).is_ok(),
        "a usual home fits the longest slug"
    );
    let deep = format!("/Users/{}", "x".repeat(60));
    let err = socket_path(Path::new(&deep), &longest)
        .unwrap_err()
        .to_string();
    assert!(err.contains("103 bytes"), "{err}");
    let plist = agent_path(home, "docs");
    assert_eq!(
        bootstrap_command(501, &plist),
        [
            "launchctl",
            "bootstrap",
            "gui/501",
            "/Users/ada/Library/LaunchAgents/dev.doc-serve.docs.plist"
        ]
    );
    assert_eq!(
        bootout_command(501, &label("docs")),
        ["launchctl", "bootout", "gui/501/dev.doc-serve.docs"]
    );
}

#[test]
fn written_by_us_sees_the_mark() {
    let dir = tempfile::tempdir().unwrap();
    let ours = dir.path().join("ours.plist");
    let theirs = dir.path().join("theirs.plist");
    let home = Path::new(HOME);
    let sock = socket_path(home, "d").unwrap();
    std::fs::write(
        &ours,
        render_agent(Path::new("/x"), "d", &sock, None, &log_path(home, "d")),
    )
    .unwrap();
    std::fs::write(&theirs, AGENT_TEMPLATE).unwrap();
    assert!(written_by_us(&ours));
    assert!(!written_by_us(&theirs));
    assert!(!written_by_us(&dir.path().join("missing.plist")));
}

/// Every file in `launchd/`, read from disk: a plist as shipped (placeholders stand in
/// strings only), a plist after substitution with and without TCP, no placeholder
/// left, and no `--` inside a comment (XML forbids it; flags are easy to quote there).
#[test]
fn launchd_templates_on_disk_are_well_formed() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("launchd");
    let mut seen = Vec::new();
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_none_or(|e| e != "plist") {
            continue;
        }
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        let text = std::fs::read_to_string(&path).unwrap();
        parse(&text);
        for comment in text.split("<!--").skip(1) {
            let body = comment.split("-->").next().unwrap();
            assert!(!body.contains("--"), "{name}: `--` in a comment: {body}");
        }
        let values = [
            ("EXE", "/Applications/Doc Serve.app/doc-serve".to_owned()),
            ("SLUG", "docs".to_owned()),
            (
                "SOCKET",
                "/Users/ada/Library/Caches/doc-serve/docs.sock".to_owned(),
            ),
            (
                "LOG",
                "/Users/ada/Library/Logs/doc-serve/docs.log".to_owned(),
            ),
        ];
        for port in [Some(8111), None] {
            let xml = render(&text, &values, port);
            let d = parse(&xml);
            assert!(string(&d, "Label").starts_with("dev.doc-serve."), "{name}");
            let outside_comments: String = xml
                .split("<!--")
                .enumerate()
                .map(|(i, part)| {
                    if i == 0 {
                        part
                    } else {
                        part.split_once("-->").map_or("", |(_, rest)| rest)
                    }
                })
                .collect();
            assert!(
                !outside_comments.contains('@'),
                "{name}: a placeholder is left:\n{xml}"
            );
            assert_eq!(
                sockets(&d).len(),
                if port.is_some() { 2 } else { 1 },
                "{name}"
            );
        }
        seen.push(name);
    }
    seen.sort();
    assert_eq!(
        seen,
        ["dev.doc-serve.instance.plist", "dev.doc-serve.shared.plist"]
    );
    assert_eq!(
        std::fs::read_to_string(dir.join(&seen[0])).unwrap(),
        AGENT_TEMPLATE
    );
    assert_eq!(
        std::fs::read_to_string(dir.join(&seen[1])).unwrap(),
        SHARED_TEMPLATE
    );
}

#[cfg(not(target_os = "macos"))]
#[test]
fn launchd_activation_is_none_off_macos() {
    assert!(matches!(activate_sockets(SOCKET_NAME), Ok(None)));
}
