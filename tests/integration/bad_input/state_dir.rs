//! Bad input, the state dir and what it holds: a config.json that is not a valid
//! config, and a state dir that cannot be written, is a file, or is a bad symlink.
//! Every command names the file or dir at fault, and rewrites or removes nothing;
//! `stop` still stops a resident.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use super::*;

#[test]
fn garbage_config_json() {
    let (mut t, base) = indexed();
    t.ok(&["init"]);
    let config = t.state_file("config.json");
    let good = std::fs::read(&config).unwrap();
    let r = serving(&mut t);
    let runtime = std::fs::read(t.state_file("runtime.json")).unwrap();
    let cases: [(&[u8], &[&str]); 12] = [
        (b"{\"port\": 1,", &["not valid JSON"]),
        (b"{\"port\": \"high\"}", &["\"port\""]),
        (b"{\"include\": \"*.md\"}", &["\"include\""]),
        (b"[1, 2]", &["JSON object"]),
        (
            b"\xef\xbb\xbf{\"port\": 1,\n \"port\": 2}",
            &["\"port\" is given twice", "line 2"],
        ),
        (
            br#"{"include": ["[z-a]"]}"#,
            &["include (set in", "bad glob \"[z-a]\""],
        ),
        (
            br#"{"exclude": ["***"]}"#,
            &[
                "exclude",
                "\"***\" excludes every file",
                "nothing would be indexed",
            ],
        ),
        (
            br#"{"include": ["docs/**/*.md"], "exclude": ["docs/**"]}"#,
            &["exclude", "\"docs/**\" excludes every file"],
        ),
        (
            br#"{"include": ["**/*.md", "**/*.txt"], "exclude": ["*.md", "**/*.TXT"]}"#,
            &["together, its globs exclude every file"],
        ),
        (
            br#"{"include": ["./docs/*.md"]}"#,
            &["include", "can match no file", "write \"docs/*.md\""],
        ),
        (
            br#"{"exclude": ["drafts/"]}"#,
            &["exclude", "\"drafts/**\""],
        ),
        // Last: `stop` below still stops the resident past it.
        (b"\xff\xfe\x00garbage", &["valid UTF-8", "UTF-16"]),
    ];
    for (bytes, needles) in cases {
        std::fs::write(&config, bytes).unwrap();
        for args in [
            &["query", "quorum"][..],
            &["index"],
            &["start"],
            &["status"],
            &["mcp"],
            &["serve"],
        ] {
            let mut all = vec![config.to_str().unwrap()];
            all.extend_from_slice(needles);
            let err = fails(&t, args, &all);
            assert!(!err.contains("cannot open the index"), "{err}");
        }
        // Nothing was rewritten, and the resident goes on serving as configured.
        assert_eq!(std::fs::read(&config).unwrap(), bytes);
        assert_eq!(
            std::fs::read(t.state_file("runtime.json")).unwrap(),
            runtime
        );
        assert_eq!(r.hits("quorum"), ["docs/notes.txt"]);
    }
    // `stop` still stops the resident, with the default timeouts, and says why.
    let out = run(&t, &["stop"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{err}");
    assert!(err.contains(config.to_str().unwrap()), "{err}");
    assert!(err.contains("default settings"), "{err}");
    assert_eq!(t.wait_child(r.pid, WAIT), Some(0));
    assert!(!t.state_file("runtime.json").exists());
    assert_eq!(std::fs::read(&config).unwrap(), b"\xff\xfe\x00garbage");
    std::fs::write(&config, good).unwrap();
    assert_intact(&t, &base);
    assert_no_panic_logged(&t);
}

/// Makes a directory immutable (`chattr +i`, which root cannot write through either)
/// until dropped.
struct Immutable(PathBuf);

impl Immutable {
    fn set(dir: &Path) -> Option<Immutable> {
        let ok = Command::new("chattr")
            .arg("+i")
            .arg(dir)
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        ok.then(|| Immutable(dir.to_path_buf()))
    }
}

impl Drop for Immutable {
    fn drop(&mut self) {
        let _ = Command::new("chattr").arg("-i").arg(&self.0).status();
    }
}

#[test]
fn unwritable_state_dir() {
    let (t, base) = indexed();
    t.ok(&["init"]);
    let state = t.state_dir();
    // Declared after `t`, so dropped (made writable again) before the temp dir goes.
    let Some(guard) = Immutable::set(&state) else {
        assert!(!in_ci(), "chattr +i must work in CI (root on ext4)");
        eprintln!("SKIP: chattr +i is not permitted here (needs CAP_LINUX_IMMUTABLE)");
        return;
    };
    let dir = state.to_str().unwrap();
    for args in [&["start"][..], &["serve"]] {
        fails(&t, args, &[dir, "Operation not permitted"]);
        assert!(!t.state_file("runtime.json").exists());
        assert!(residents(&t).is_empty());
    }
    // The index below it is still readable, and writable.
    assert_intact(&t, &base);

    drop(guard);
    t.ok(&["start"]);
    assert_eq!(answers(&t), base);
    t.ok(&["stop"]);
    assert_intact(&t, &base);
    assert_no_panic_logged(&t);
}

#[test]
fn state_dir_that_is_a_file_or_a_bad_symlink() {
    let (t, base) = indexed();
    let state = t.state_dir();
    let saved = t.root().join("saved-state");
    std::fs::rename(&state, &saved).unwrap();
    let dir = state.to_str().unwrap();
    let make: [(&str, &dyn Fn()); 3] = [
        ("a file", &|| {
            std::fs::write(&state, "not a directory\n").unwrap()
        }),
        ("a dangling symlink", &|| {
            std::os::unix::fs::symlink(t.root().join("nowhere/state"), &state).unwrap()
        }),
        ("a symlink loop", &|| {
            std::os::unix::fs::symlink("doc-serve", &state).unwrap()
        }),
    ];
    for (what, make) in make {
        make();
        for args in [
            &["start"][..],
            &["serve"],
            &["index"],
            &["query", "quorum"],
            &["init"],
        ] {
            fails(&t, args, &[dir]);
        }
        assert!(
            std::fs::symlink_metadata(&state).is_ok(),
            "{what} was removed"
        );
        assert!(
            !std::fs::metadata(&state).is_ok_and(|m| m.is_dir()),
            "{what}"
        );
        std::fs::remove_file(&state).unwrap();
    }
    assert!(!t.root().join("nowhere").exists());
    std::fs::rename(&saved, &state).unwrap();
    assert_intact(&t, &base);
    assert_no_panic_logged(&t);
}
