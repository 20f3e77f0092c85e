//! Bad input, what the walker and the watcher meet on disk: a root that vanishes,
//! binary files, invalid UTF-8, huge files, symlink loops, and files deleted while
//! they are being indexed. Each is skipped with a reason or taken in stride, and the
//! rest of the index stays as it was.

use std::time::{Duration, Instant};

use serde_json::json;

use super::*;
use crate::search::with_fixtures;

/// Moves the root away under a running resident, and back.
fn vanish_and_return(t: &mut TestEnv, base: &Answers) {
    let r = serving(t);
    let moved = t.root().join("moved");
    std::fs::rename(&t.project, &moved).unwrap();

    // The resident answers from the index it has open, and says why it cannot reindex.
    assert_eq!(r.hits("quorum"), ["docs/notes.txt"]);
    let ix = r.post("/index", "{}");
    assert_eq!(ix.status, 503, "{ix:?}");
    assert_eq!(ix.json()["code"], "project_root_missing", "{ix:?}");
    let message = ix.json()["message"].as_str().unwrap().to_owned();
    let root = t.project.display().to_string();
    assert!(
        message.contains(&root) && message.contains("vanished"),
        "{message}"
    );
    // Whatever the watcher saw meanwhile removed nothing.
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(r.index_state()["files"], 5);
    assert_eq!(r.get("/health").status, 200);
    // Clients naming the vanished root fail clearly.
    let out = t
        .cmd(&["--path", &root, "query", "quorum"])
        .current_dir(t.root())
        .output()
        .unwrap();
    let out = checked(&["query"], out);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains(&root) && err.contains("No such file"), "{err}");

    // Back in place: nothing was lost.
    std::fs::rename(&moved, &t.project).unwrap();
    let ix = r.post("/index", "{}");
    assert_eq!(ix.status, 200, "{ix:?}");
    let s = &ix.json()["summary"];
    assert_eq!((&s["added"], &s["removed"]), (&json!(0), &json!(0)), "{s}");
    assert_eq!(r.hits("quorum"), ["docs/notes.txt"]);
    r.stop(t);
    assert_intact(t, base);
    assert_no_panic_logged(t);
}

#[test]
fn root_that_vanished() {
    // The index inside the root, as by default: it vanishes along with the root.
    let (mut t, base) = indexed();
    vanish_and_return(&mut t, &base);
    // The index outside the root (as the shared daemon keeps it): a vanished root
    // must not read as "every file deleted".
    let mut t = with_fixtures();
    let data = t.root().join("index-elsewhere");
    t.set("DOC_SERVE_DATA_DIR", data.to_str().unwrap());
    let base = index_fixtures(&t);
    assert!(data.is_dir());
    vanish_and_return(&mut t, &base);
}

#[test]
fn binary_files() {
    let (mut t, base) = indexed();
    let docs = t.project.join("docs");
    std::fs::write(
        docs.join("guide/was-text.md"),
        "# Was text\n\nwastextword\n",
    )
    .unwrap();
    t.ok(&["index"]);
    assert_eq!(hits(&t, "wastextword"), ["docs/guide/was-text.md"]);

    // Skipped with the reason; a file that turned binary leaves the index.
    std::fs::write(
        docs.join("bin.md"),
        b"# Bin\n\nbinaryword\0\x01\x02\xff\xfe",
    )
    .unwrap();
    let mut png = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR wastextword".to_vec();
    png.extend((0..=255u8).cycle().take(4096));
    std::fs::write(docs.join("guide/was-text.md"), png).unwrap();
    let utf16: Vec<u8> = "# U\n\nutfsixteenword\n"
        .encode_utf16()
        .flat_map(u16::to_le_bytes)
        .collect();
    std::fs::write(docs.join("utf16.txt"), utf16).unwrap();
    let v = json_run(&t, &["index", "--json"], 0);
    let skipped = v["summary"]["skipped"].to_string();
    for f in ["docs/bin.md", "docs/guide/was-text.md", "docs/utf16.txt"] {
        assert!(skipped.contains(f), "{f} not skipped: {skipped}");
    }
    assert_eq!(skipped.matches("binary").count(), 3, "{skipped}");
    for w in ["binaryword", "wastextword", "utfsixteenword"] {
        assert!(hits(&t, w).is_empty(), "{w} is indexed");
    }

    // The watcher's path: a binary file written while the resident runs stays out.
    t.set("DOC_SERVE_DEBOUNCE_MS", "50");
    let r = serving(&mut t);
    std::fs::write(docs.join("late-bin.md"), b"latebinaryword\0\0\0").unwrap();
    std::fs::write(docs.join("late.md"), "# Late\n\nlatetextword\n").unwrap();
    wait_for(WAIT, "the text file written beside it", || {
        (r.hits("latetextword") == ["docs/late.md"]).then_some(())
    });
    r.wait_idle();
    assert!(r.hits("latebinaryword").is_empty());
    r.stop(&mut t);
    assert_intact(&t, &base);
    assert_no_panic_logged(&t);
}

#[test]
fn invalid_utf8() {
    use std::os::unix::ffi::OsStrExt;
    let (mut t, base) = indexed();
    let docs = t.project.join("docs");
    let files: [(&[u8], &[u8], &str); 5] = [
        (
            b"latin1.md",
            b"# Caf\xe9\n\nlatinword cr\xe8me\n",
            "latinword",
        ),
        (
            b"overlong.md",
            b"# O\n\noverlongword \xc0\xaf \xed\xa0\x80 \xf4\x90\x80\x80 end\n",
            "overlongword",
        ),
        (b"cut.md", b"# Cut\n\ncutword \xe2\x82", "cutword"),
        (b"bom.md", b"\xef\xbb\xbf# Bom\n\nbomword\n", "bomword"),
        (
            b"na\xefve-\xff.md",
            b"# Name\n\nbadnameword\n",
            "badnameword",
        ),
    ];
    for (name, text, _) in &files {
        std::fs::write(docs.join(std::ffi::OsStr::from_bytes(name)), text).unwrap();
    }
    // Decoded lossily: each found under its (lossy) path.
    let v = json_run(&t, &["index", "--json"], 0);
    assert_eq!(v["summary"]["added"], 5, "{v}");
    for (name, _, word) in &files {
        let path = format!("docs/{}", String::from_utf8_lossy(name));
        assert_eq!(hits(&t, word), [path]);
    }
    // Stable: nothing is re-indexed on the next pass.
    let v = json_run(&t, &["index", "--json"], 0);
    assert_eq!(v["summary"]["unchanged"], 10, "{v}");

    // Two names that read the same once decoded: the first by its bytes is indexed,
    // the other skipped with a reason, and nothing is re-indexed run after run.
    let twin = docs.join(std::ffi::OsStr::from_bytes(b"na\xf0ve-\xff.md"));
    std::fs::write(&twin, b"# Twin\n\ntwinword\n").unwrap();
    for _ in 0..2 {
        let v = json_run(&t, &["index", "--json"], 0);
        let s = &v["summary"];
        assert_eq!((&s["added"], &s["updated"]), (&json!(0), &json!(0)), "{v}");
        let skipped = s["skipped"].to_string();
        assert!(
            skipped.contains("not valid UTF-8") && skipped.contains("\\\\xF0"),
            "{skipped}"
        );
    }
    assert!(hits(&t, "twinword").is_empty());
    assert_eq!(hits(&t, "badnameword").len(), 1);

    // The watcher's path, with a name that is not UTF-8 either.
    t.set("DOC_SERVE_DEBOUNCE_MS", "50");
    let r = serving(&mut t);
    // The watcher keeps to the same rule: a change to the skipped twin changes nothing.
    std::fs::write(&twin, b"# Twin\n\ntwinlateword\n").unwrap();
    let after = docs.join("after-twin.md");
    std::fs::write(&after, b"# After\n\naftertwinword\n").unwrap();
    wait_for(WAIT, "the file written after the twin", || {
        (r.hits("aftertwinword").len() == 1).then_some(())
    });
    assert!(r.hits("twinlateword").is_empty());
    assert_eq!(r.hits("badnameword").len(), 1);
    std::fs::remove_file(&twin).unwrap();
    std::fs::remove_file(&after).unwrap();
    wait_for(WAIT, "the file after the twin to leave", || {
        r.hits("aftertwinword").is_empty().then_some(())
    });
    let late = docs.join(std::ffi::OsStr::from_bytes(b"late-\xe9.md"));
    std::fs::write(&late, b"# L\n\nlatelatinword \xe9t\xe9\n").unwrap();
    wait_for(WAIT, "the late file", || {
        (r.hits("latelatinword") == ["docs/late-\u{fffd}.md"]).then_some(())
    });
    std::fs::remove_file(&late).unwrap();
    wait_for(WAIT, "the late file to leave", || {
        r.hits("latelatinword").is_empty().then_some(())
    });
    let doc = r.get("/documents/docs/latin1.md");
    assert_eq!(doc.status, 200, "{doc:?}");
    assert!(doc.json()["text"].as_str().unwrap().contains("Caf\u{fffd}"));
    r.stop(&mut t);
    assert_intact(&t, &base);
    assert_no_panic_logged(&t);
}

#[test]
fn huge_files() {
    let (mut t, base) = indexed();
    let docs = t.project.join("docs");
    // 1 GiB, sparse: over the default 4 MiB cap, so never read.
    let huge = std::fs::File::create(docs.join("huge.md")).unwrap();
    huge.set_len(1 << 30).unwrap();
    // Under the cap but one 1 MB word: far over any token length limit.
    let word = format!("# One\n\n{}\n\nnearbigword\n", "x".repeat(1 << 20));
    std::fs::write(docs.join("oneword.md"), word).unwrap();
    // A file that was indexed, then grew past the cap.
    std::fs::write(docs.join("grows.md"), "# Grows\n\ngrowword\n").unwrap();
    t.ok(&["index"]);
    assert_eq!(hits(&t, "growword"), ["docs/grows.md"]);
    std::fs::OpenOptions::new()
        .write(true)
        .open(docs.join("grows.md"))
        .unwrap()
        .set_len(5 << 20)
        .unwrap();

    let begun = Instant::now();
    let v = json_run(&t, &["index", "--json"], 0);
    assert!(begun.elapsed() < Duration::from_secs(20), "{v}");
    assert_eq!(v["summary"]["removed"], 1, "{v}");
    let skipped = v["summary"]["skipped"].to_string();
    for f in ["docs/huge.md", "docs/grows.md"] {
        assert!(
            skipped.contains(&format!("\"path\":\"{f}\",\"reason\":\"")) && skipped.contains("cap"),
            "{f}: {skipped}"
        );
    }
    assert!(hits(&t, "growword").is_empty());
    assert_eq!(hits(&t, "nearbigword"), ["docs/oneword.md"]);

    // The watcher's path: a huge file appearing while the resident runs stays out.
    t.set("DOC_SERVE_DEBOUNCE_MS", "50");
    let r = serving(&mut t);
    let late = std::fs::File::create(docs.join("late-huge.md")).unwrap();
    late.set_len(64 << 20).unwrap();
    drop(late);
    std::fs::write(docs.join("late.md"), "# Late\n\nlatemarker\n").unwrap();
    wait_for(WAIT, "the file written beside it", || {
        (r.hits("latemarker") == ["docs/late.md"]).then_some(())
    });
    r.wait_idle();
    let s = r.get("/status").json();
    assert_eq!(s["index"]["files"], 7, "{s}");
    r.stop(&mut t);
    assert_intact(&t, &base);
    assert_no_panic_logged(&t);
}

#[test]
fn symlink_loops() {
    use std::os::unix::fs::symlink;
    let (mut t, base) = indexed();
    let docs = t.project.join("docs");
    symlink("..", docs.join("up")).unwrap();
    symlink("..", docs.join("guide/up")).unwrap();
    symlink("self.md", docs.join("self.md")).unwrap();
    symlink("b.md", docs.join("a.md")).unwrap();
    symlink("a.md", docs.join("b.md")).unwrap();
    std::fs::create_dir(docs.join("deep")).unwrap();
    symlink("../..", docs.join("deep/root")).unwrap();

    let begun = Instant::now();
    let v = json_run(&t, &["index", "--json"], 0);
    assert!(begun.elapsed() < Duration::from_secs(10));
    assert_eq!(v["files"], 5, "{v}");
    let skipped = v["summary"]["skipped"].to_string();
    assert!(skipped.contains("loop"), "{skipped}");
    // Every skipped entry names its path: the loops name the link that closes them.
    for s in v["summary"]["skipped"].as_array().unwrap() {
        assert!(!s["path"].as_str().unwrap().is_empty(), "{s}");
    }
    assert!(skipped.contains("\"docs/up\""), "{skipped}");
    for f in ["self.md", "a.md", "b.md"] {
        assert!(
            skipped.contains(&format!("docs/{f}: ")) && skipped.contains("symbolic links"),
            "{f}: {skipped}"
        );
    }

    // A resident watches the tree, loops and all, and takes a new loop in its stride.
    t.set("DOC_SERVE_DEBOUNCE_MS", "50");
    let r = serving(&mut t);
    symlink("../..", docs.join("api/back")).unwrap();
    std::fs::write(docs.join("api/late.md"), "# Late\n\nlatemarker\n").unwrap();
    wait_for(WAIT, "the file written beside the new loop", || {
        (r.hits("latemarker") == ["docs/api/late.md"]).then_some(())
    });
    r.wait_idle();
    assert_eq!(r.index_state()["files"], 6);
    r.stop(&mut t);
    std::fs::remove_file(docs.join("api/late.md")).unwrap();
    t.ok(&["index"]);
    assert_intact(&t, &base);
    assert_no_panic_logged(&t);
}

#[test]
fn files_deleted_mid_index() {
    let (mut t, base) = indexed();
    t.set("DOC_SERVE_DEBOUNCE_MS", "50");
    let bulk = t.project.join("bulk");
    std::fs::create_dir_all(&bulk).unwrap();
    // Files big enough that reading them all lasts well over the 20 ms between polls.
    let filler = "lorem ipsum dolor sit amet ".repeat(400);
    const N: usize = 1000;
    for i in 0..N {
        std::fs::write(
            bulk.join(format!("f{i:04}.md")),
            format!("# File {i}\n\nbulkmark{i} {filler}\n"),
        )
        .unwrap();
    }
    // The resident's start-up reconciliation reads them in path order; the first ten
    // (already read) and the second half (mostly not yet read) are deleted while it
    // runs.
    let pid = t.spawn_serve(&[]);
    let rt = t.wait_runtime(WAIT);
    let r = Resident {
        pid,
        addr: addr_of(&rt),
        auth: format!("Authorization: Bearer {}", rt["token"].as_str().unwrap()),
    };
    wait_for(Duration::from_secs(30), "the index to be part done", || {
        let p = r.index_state()["progress"].clone();
        let (done, total) = (p[0].as_u64()?, p[1].as_u64()?);
        assert!(done < total * 3 / 4, "missed the middle: {done}/{total}");
        (done > 20 && total > 100).then_some(())
    });
    let gone: Vec<usize> = (0..10).chain(N / 2..N).collect();
    for i in &gone {
        std::fs::remove_file(bulk.join(format!("f{i:04}.md"))).unwrap();
    }
    // Nothing failed, and the index comes to hold exactly the files left.
    let want = 5 + N - gone.len();
    wait_for(
        Duration::from_secs(30),
        "the index to hold the files left",
        || {
            let s = r.index_state();
            let idle = s["indexing"] == false && s["pending_changes"] == false;
            (idle && s["files"] == want).then_some(())
        },
    );
    let s = r.index_state();
    assert!(s["last_error"].is_null(), "{s}");
    assert_eq!(r.hits("bulkmark20"), ["bulk/f0020.md"]);
    for i in [0, 9, N / 2, N - 1] {
        assert!(r.hits(&format!("bulkmark{i}")).is_empty(), "bulkmark{i}");
    }
    r.stop(&mut t);
    assert_intact(&t, &base);
    assert_no_panic_logged(&t);
}

/// Links inside the root to what the walk leaves out: a gitignored directory and a file
/// in it, a hidden directory and a hidden file, an excluded file, a file that a rule
/// anchored at the root ignores (reached through a link to its directory), a chain
/// ending in an ignored file, and a link to the root (a loop). None is searchable or
/// served, whether made before a walk or while a resident watches, and a link turned
/// to such a file leaves the index. Links to ordinary files and directories stay
/// sources, also one named as another format than its target.
#[test]
fn links_to_what_the_walk_leaves_out() {
    use std::os::unix::fs::symlink;
    let (mut t, base) = indexed();
    t.set("DOC_SERVE_EXCLUDE", "archive/**");
    t.set("DOC_SERVE_DEBOUNCE_MS", "50");
    let p = t.project.clone();
    let put = |rel: &str, text: &str| {
        let file = p.join(rel);
        std::fs::create_dir_all(file.parent().unwrap()).unwrap();
        std::fs::write(file, text).unwrap();
    };
    put(".gitignore", "secret/\n/pub/draft.md\n");
    put("secret/key.md", "# Key\n\nsecretword\n");
    put(".private/p.md", "# P\n\nprivateword\n");
    put(".notes.md", "# Notes\n\nhiddenfileword\n");
    put("archive/old.md", "# Old\n\narchiveword\n");
    put("pub/open.md", "# Open\n\nopenword\n");
    put("pub/draft.md", "# Draft\n\ndraftword\n");
    put("pub/data.conf", "# Conf\n\nconfword\n");
    put("README.md", "# Readme\n\nreadmeword\n");
    std::fs::create_dir_all(p.join("links")).unwrap();
    let link = |name: &str, target: &str| symlink(target, p.join(name)).unwrap();
    let refused = [
        ("docs/s", "../secret", "secret, which is ignored"),
        ("docs/p", "../.private", ".private, which is hidden"),
        (
            "docs/k.md",
            "../secret/key.md",
            "secret/key.md, which is ignored",
        ),
        ("docs/chain.md", "k.md", "secret/key.md, which is ignored"),
        ("docs/n.md", "../.notes.md", ".notes.md, which is hidden"),
        (
            "docs/old.md",
            "../archive/old.md",
            "archive/old.md, which is excluded",
        ),
    ];
    for (name, target, _) in refused {
        link(name, target);
    }
    link("docs/pub", "../pub");
    link("docs/arch", "../archive");
    link("docs/open.md", "../pub/open.md");
    link("docs/conf.md", "../pub/data.conf");
    link("links/root", "..");

    let v = json_run(&t, &["index", "--json"], 0);
    let skipped = v["summary"]["skipped"].as_array().unwrap();
    let reason = |path: &str| {
        let s = skipped.iter().find(|s| s["path"] == path);
        let s = s.unwrap_or_else(|| panic!("{path} not skipped: {v}"));
        s["reason"].as_str().unwrap().to_owned()
    };
    for (name, _, why) in refused {
        assert!(reason(name).contains(why), "{name}: {}", reason(name));
    }
    assert!(
        reason("docs/pub/draft.md").contains("pub/draft.md, which is ignored"),
        "{v}"
    );
    assert!(
        reason("docs/arch/old.md").contains("archive/old.md, which is excluded"),
        "{v}"
    );
    assert!(reason("links/root").contains("loop"), "{v}");
    let left_out = [
        "secretword",
        "privateword",
        "hiddenfileword",
        "archiveword",
        "draftword",
    ];
    for word in left_out {
        assert_eq!(hits(&t, word), Vec::<String>::new(), "{word}");
    }
    assert_eq!(
        hits(&t, "openword"),
        ["docs/open.md", "docs/pub/open.md", "pub/open.md"]
    );
    // A link is a source by its own name: the target need not match the globs.
    assert_eq!(hits(&t, "confword"), ["docs/conf.md"]);
    assert_eq!(hits(&t, "readmeword"), ["README.md"]);

    let r = serving(&mut t);
    let served = |path: &str| r.get(&format!("/documents/{path}")).status;
    let never = [
        "docs/s/key.md",
        "docs/p/p.md",
        "docs/k.md",
        "docs/chain.md",
        "docs/n.md",
        "docs/old.md",
        "docs/pub/draft.md",
        "docs/arch/old.md",
        "links/root/README.md",
        "links/root/docs/notes.txt",
        "links/root/pub/open.md",
    ];
    for path in never {
        assert_eq!(served(path), 404, "{path}");
    }
    for path in [
        "docs/open.md",
        "docs/pub/open.md",
        "docs/conf.md",
        "README.md",
    ] {
        assert_eq!(served(path), 200, "{path}");
    }

    // The same links, made while the resident watches.
    for (name, target, _) in refused {
        link(&name.replace("docs/", "docs/late-"), target);
    }
    link("docs/late-root", "..");
    link("docs/late-open.md", "../pub/open.md");
    wait_for(WAIT, "the legitimate link made while watching", || {
        r.hits("openword")
            .contains(&"docs/late-open.md".to_owned())
            .then_some(())
    });
    // A change to a file left out reaches the watcher through the links as well.
    put("secret/key.md", "# Key\n\nsecretword latesecretword\n");
    put("docs/marker.md", "# Marker\n\nmarkerword\n");
    wait_for(WAIT, "the file written after the links", || {
        (r.hits("markerword") == ["docs/marker.md"]).then_some(())
    });
    // A legitimate link turned to an ignored file leaves the index.
    std::fs::remove_file(p.join("docs/open.md")).unwrap();
    link("docs/open.md", "../secret/key.md");
    wait_for(WAIT, "the turned link to leave", || {
        (!r.hits("openword").contains(&"docs/open.md".to_owned())).then_some(())
    });
    r.wait_idle();
    for word in left_out.iter().chain(&["latesecretword"]) {
        assert_eq!(r.hits(word), Vec::<String>::new(), "{word}");
    }
    for path in [
        "docs/late-s/key.md",
        "docs/late-p/p.md",
        "docs/late-k.md",
        "docs/late-chain.md",
        "docs/late-n.md",
        "docs/late-old.md",
        "docs/late-root/README.md",
        "docs/late-root/docs/late-open.md",
        "docs/open.md",
    ] {
        assert_eq!(served(path), 404, "{path}");
    }
    assert_eq!(served("docs/late-open.md"), 200);
    r.stop(&mut t);
    assert_intact(&t, &base);
    assert_no_panic_logged(&t);
}
