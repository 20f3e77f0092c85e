//! [`super::read`] on files in a temp root: scopes, ids, neighbours and budgets.

use super::*;
use crate::config::Config;

const GUIDE: &str = "Intro line.\n\n# Guide\n\nAbout.\n\n## Install\n\nstep one\nstep two\n\n\
                     ### Linux\n\napt\n\n## Install\n\nagain\n";

struct Root {
    dir: tempfile::TempDir,
    sources: Sources,
}

fn root(files: &[(&str, &str)]) -> Root {
    let dir = tempfile::tempdir().unwrap();
    for (name, text) in files {
        std::fs::write(dir.path().join(name), text).unwrap();
    }
    let state = dir.path().join(".claude/doc-serve");
    let sources = Sources::new(dir.path(), &state, &Config::default()).unwrap();
    Root { dir, sources }
}

fn want(path: &str, scope: Scope, max_tokens: Option<usize>) -> Want {
    Want {
        path: path.into(),
        scope,
        max_tokens,
    }
}

fn section(id: &str) -> Scope {
    Scope::Section(id.into())
}

fn lines(start: Option<usize>, end: Option<usize>) -> Scope {
    Scope::Lines { start, end }
}

#[test]
fn a_section_by_id_or_anchor_with_its_neighbours() {
    let r = root(&[("g.md", GUIDE)]);
    let p = read(&r.sources, &want("g.md", section("g.md#install"), None)).unwrap();
    assert_eq!((p.line_start, p.line_end), (7, 10));
    assert_eq!(p.text, "## Install\n\nstep one\nstep two");
    assert_eq!(
        (p.id.as_str(), p.headings.join(" > ")),
        // The title (the hit's `title`) is not repeated in the trail, as in hits.
        ("g.md#install", "Install".into())
    );
    assert!(!p.truncated && p.next_line.is_none());
    let prev = p.previous.unwrap();
    assert_eq!(
        (prev.id.as_str(), prev.line_start, prev.line_end),
        ("g.md#guide", 3, 5)
    );
    let next = p.next.unwrap();
    assert_eq!((next.id.as_str(), next.line_start), ("g.md#linux", 12));
    assert_eq!(next.headings, ["Install", "Linux"]);

    // The anchor alone, the whole id without a path, and any case.
    for (path, id) in [
        ("g.md", "install-1"),
        ("", "g.md#install-1"),
        ("g.md", "#Install-1"),
    ] {
        let p = read(&r.sources, &want(path, section(id), None)).unwrap();
        assert_eq!(
            (p.line_start, p.text.as_str()),
            (16, "## Install\n\nagain"),
            "{id}"
        );
        assert!(p.next.is_none());
    }
    let p = read(&r.sources, &want("g.md", section("top"), None)).unwrap();
    assert_eq!((p.text.as_str(), p.previous), ("Intro line.", None));
}

/// An anchor never holds `#`: a whole id splits at its last one, whatever the path holds.
#[test]
fn a_path_with_a_hash_in_it() {
    let r = root(&[("c#.md", "# C#\n\nsharp\n")]);
    for (path, id) in [("c#.md", "c#.md#c"), ("", "c#.md#c"), ("c#.md", "c")] {
        let p = read(&r.sources, &want(path, section(id), None)).unwrap();
        assert_eq!(
            (p.id.as_str(), p.text.as_str()),
            ("c#.md#c", "# C#\n\nsharp")
        );
    }
}

#[test]
fn unknown_ids_list_the_sections_there_are() {
    let r = root(&[("g.md", GUIDE), ("empty.md", "")]);
    let e = read(&r.sources, &want("g.md", section("g.md#gone"), None)).unwrap_err();
    assert_eq!(e.code(), "no_such_section");
    let message = e.to_string();
    for id in [
        "g.md#top",
        "g.md#guide",
        "g.md#install",
        "g.md#linux",
        "g.md#install-1",
    ] {
        assert!(message.contains(id), "{message}");
    }
    // An id of another file, or of none, is a bad parameter; a blank file is `top`.
    let e = read(&r.sources, &want("g.md", section("h.md#top"), None)).unwrap_err();
    assert_eq!(e.code(), "bad_parameter", "{e}");
    for (path, id) in [
        ("", "top"),
        ("g.md", "g.md#"),
        ("g.md", "###"),
        ("g.md", ""),
    ] {
        let e = read(&r.sources, &want(path, section(id), None)).unwrap_err();
        assert_eq!(e.code(), "bad_parameter", "{id}: {e}");
    }
    let p = read(&r.sources, &want("empty.md", section("top"), None)).unwrap();
    assert_eq!(
        (p.id.as_str(), p.total_lines, p.line_start, p.line_end),
        ("empty.md#top", 0, 1, 0)
    );
    assert_eq!((p.previous, p.next), (None, None));
}

#[test]
fn a_range_belongs_to_the_section_of_its_first_line() {
    let r = root(&[("g.md", GUIDE)]);
    let p = read(&r.sources, &want("g.md", lines(Some(9), Some(12)), None)).unwrap();
    assert_eq!(
        (p.id.as_str(), p.text.as_str()),
        ("g.md#install", "step one\nstep two\n\n### Linux")
    );
    assert_eq!(p.previous.unwrap().id, "g.md#guide");
    assert_eq!(p.next.unwrap().id, "g.md#install-1");
    let p = read(&r.sources, &want("g.md", Scope::default(), None)).unwrap();
    assert_eq!(
        (p.id.as_str(), p.line_end, p.total_lines),
        ("g.md#top", 18, 18)
    );
    assert_eq!((p.previous, p.next), (None, None));
    // A heading: its subsections included; the next section is the one after them.
    let p = read(
        &r.sources,
        &want("g.md", Scope::Heading("install".into()), None),
    )
    .unwrap();
    assert_eq!(
        (p.line_start, p.line_end, p.id.as_str()),
        (7, 14, "g.md#install")
    );
    assert_eq!(p.next.unwrap().id, "g.md#install-1");
}

#[test]
fn budgets_cut_on_line_boundaries() {
    let r = root(&[
        ("t.txt", "aaaa\nbbbb\ncccc\n"),
        ("long.txt", "0123456789abc\nx\n"),
    ]);
    // 4 + 1 + 4 characters: 3 tokens hold two lines, not three (14 characters).
    let p = read(&r.sources, &want("t.txt", Scope::default(), Some(3))).unwrap();
    assert_eq!((p.text.as_str(), p.line_end), ("aaaa\nbbbb", 2));
    assert!(p.truncated);
    assert_eq!(p.next_line, Some(3));
    assert!(crate::tokens::estimate_tokens(&p.text) <= 3);
    let p = read(&r.sources, &want("t.txt", Scope::default(), Some(4))).unwrap();
    assert_eq!(
        (p.text.as_str(), p.truncated, p.next_line),
        ("aaaa\nbbbb\ncccc", false, None)
    );
    // A first line over the budget is cut at it, and says so.
    let p = read(&r.sources, &want("long.txt", Scope::default(), Some(2))).unwrap();
    assert_eq!(
        (p.text.as_str(), p.line_end, p.next_line),
        ("01234567", 1, Some(2))
    );
    assert!(p.truncated);
    let p = read(
        &r.sources,
        &want("long.txt", lines(Some(1), Some(1)), Some(1)),
    )
    .unwrap();
    assert_eq!(
        (p.text.as_str(), p.truncated, p.next_line),
        ("0123", true, None)
    );
    let e = read(&r.sources, &want("t.txt", Scope::default(), Some(0))).unwrap_err();
    assert_eq!(e.code(), "bad_parameter");
}

#[test]
fn a_cut_never_splits_a_character() {
    let r = root(&[("u.txt", "日本語テキスト\n")]);
    // One token is 4 bytes: one 3-byte character, not the first byte of the next.
    let p = read(&r.sources, &want("u.txt", Scope::default(), Some(1))).unwrap();
    assert_eq!(p.text, "日");
    assert!(p.truncated);
    let p = read(&r.sources, &want("u.txt", Scope::default(), Some(2))).unwrap();
    assert_eq!(p.text, "日本");
}

#[test]
fn what_the_walk_does_not_list_is_not_found() {
    let r = root(&[
        ("g.md", GUIDE),
        ("bin.md", "a\0b"),
        ("x.rs", "fn main() {}"),
    ]);
    std::fs::create_dir_all(r.dir.path().join(".claude/doc-serve")).unwrap();
    std::fs::write(r.dir.path().join(".claude/doc-serve/runtime.json"), "{}").unwrap();
    for path in [
        "../g.md",
        "/etc/passwd",
        "docs/../g.md",
        "./g.md",
        "g.md/",
        "x.rs",
        ".claude/doc-serve/runtime.json",
        "bin.md",
    ] {
        let e = read(&r.sources, &want(path, Scope::default(), None)).unwrap_err();
        assert_eq!(e.code(), "not_found", "{path}: {e}");
    }
    let e = read(&r.sources, &want("", Scope::default(), None)).unwrap_err();
    assert_eq!(e.code(), "bad_parameter", "{e}");
    let e = read(&r.sources, &want("g.md", lines(Some(30), None), None)).unwrap_err();
    assert_eq!(e.code(), "bad_range");
    assert!(e.to_string().contains("past the end"), "{e}");
    let e = read(&r.sources, &want("g.md", lines(Some(5), Some(2)), None)).unwrap_err();
    assert!(e.to_string().contains("5-2 run backwards"), "{e}");
    let e = read(
        &r.sources,
        &want("g.md", Scope::Heading("Nope".into()), None),
    )
    .unwrap_err();
    assert_eq!(e.code(), "no_such_heading");
}
