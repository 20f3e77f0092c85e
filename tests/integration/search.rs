//! Indexing and search through the real binary: the CLI standalone, and the resident.

use std::path::Path;
use std::time::Duration;

use serde_json::Value;

use crate::util::*;

pub fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let dest = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            copy_dir(&e.path(), &dest);
        } else {
            std::fs::copy(e.path(), dest).unwrap();
        }
    }
}

/// A project holding tests/fixtures/docs under docs/.
pub fn with_fixtures() -> TestEnv {
    let t = TestEnv::new();
    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/docs");
    copy_dir(&fixtures, &t.project.join("docs"));
    t
}

/// Each of `paths` is a 404 `not_found` from `/documents`.
fn documents_not_found(addr: &str, auth: &str, paths: &[&str]) {
    for path in paths {
        let r = get(addr, &format!("/documents/{path}"), &[auth]);
        assert_eq!(r.status, 404, "{path}: {r:?}");
        assert_eq!(r.json()["code"], "not_found");
    }
}

fn query(t: &TestEnv, q: &str) -> Value {
    let out = t.run(&["query", "--json", "--", q]);
    assert!(
        matches!(out.status.code(), Some(0 | 1)),
        "{q}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

/// The highlighted words of `hit`'s snippet.
fn highlighted(hit: &Value) -> Vec<String> {
    let snippet: Vec<char> = hit["snippet"].as_str().unwrap().chars().collect();
    hit["highlights"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| {
            let [a, b] = [0, 1].map(|i| h[i].as_u64().unwrap() as usize);
            snippet[a..b].iter().collect()
        })
        .collect()
}

/// Each hit of `v` as its `key` field (`path`, `id`) with its score.
fn scored(v: &Value, key: &str) -> Vec<(String, f64)> {
    v["hits"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| {
            (
                h[key].as_str().unwrap().to_owned(),
                h["score"].as_f64().unwrap(),
            )
        })
        .collect()
}

/// `a` and `b` name the same hits in the same order with the same scores, to the
/// precision the two scoring paths keep.
fn assert_same_scores(a: &[(String, f64)], b: &[(String, f64)]) {
    assert_eq!(a.len(), b.len(), "{a:?} vs {b:?}");
    for ((ka, sa), (kb, sb)) in a.iter().zip(b) {
        assert_eq!(ka, kb, "{a:?} vs {b:?}");
        assert!(
            (sa - sb).abs() <= 1e-4 * sa.abs().max(1.0),
            "{a:?} vs {b:?}"
        );
    }
}

/// `status --space` breaks the index down by field, names the index and any other
/// beside it; what it cannot measure (no index yet, a damaged one) is said beside a
/// status that stays whole.
#[test]
fn status_space_shows_where_the_bytes_go() {
    let t = with_fixtures();
    let v = t.json_code(&["status", "--space", "--json"], 1);
    assert_eq!(v["state"], "stopped", "{v}");
    assert!(v["space"].is_null(), "{v}");
    let why = v["space_error"].as_str().unwrap();
    assert!(why.contains("`doc-serve index` builds it"), "{v}");
    let text = t.expect(&["status", "--space"], 1);
    assert!(
        text.contains("not running") && text.contains("index: no index"),
        "{text}"
    );

    t.ok(&["index"]);
    let data = t.state_dir().join("data");
    let dir = index_dir_in(&data);
    // Another version's index beside it, with a file in a subdirectory.
    let other = data.join("index-v1-0123abcd");
    std::fs::create_dir_all(other.join("sub")).unwrap();
    std::fs::write(other.join("sub/x"), vec![0; 5000]).unwrap();
    std::fs::create_dir_all(dir.join("odd")).unwrap();
    std::fs::write(dir.join("odd/y"), vec![0; 3000]).unwrap();
    let v = t.json_code(&["status", "--space", "--json"], 1);
    let space = &v["space"];
    assert!(v["space_error"].is_null(), "{v}");
    assert_eq!(space["dir"], dir.display().to_string(), "{space}");
    assert_eq!(
        space["others"][0]["dir"],
        other.display().to_string(),
        "{space}"
    );
    assert_eq!(space["others"][0]["on_disk"], 5000, "{space}");
    let field = |name: &str| {
        space["fields"]
            .as_array()
            .unwrap()
            .iter()
            .find(|f| f["field"] == name)
            .cloned()
            .unwrap()
    };
    let n = |v: &Value| v.as_u64().unwrap();
    assert!(n(&field("body")["positions"]) > 0, "{space}");
    assert!(n(&field("body")["stored_raw"]) > 1000, "{space}");
    assert_eq!(n(&field("title_exact")["stored_raw"]), 0, "{space}");
    let files: u64 = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().metadata().unwrap())
        .filter(|m| m.is_file())
        .map(|m| m.len())
        .sum();
    assert_eq!(n(&space["on_disk"]), files + 3000, "{space}");
    let text = t.expect(&["status", "--space"], 1);
    assert!(
        text.contains("body") && text.contains("doc store:") && text.contains("index-v1-0123abcd"),
        "{text}"
    );

    // A damaged doc store: the status still says what runs, and why nothing was measured.
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "store") {
            let len = std::fs::metadata(&path).unwrap().len();
            std::fs::OpenOptions::new()
                .write(true)
                .open(&path)
                .unwrap()
                .set_len(len / 2)
                .unwrap();
        }
    }
    let v = t.json_code(&["status", "--space", "--json"], 1);
    assert_eq!(v["state"], "stopped", "{v}");
    assert!(v["space"].is_null(), "{v}");
    assert!(
        v["space_error"]
            .as_str()
            .unwrap()
            .contains(&*data.display().to_string()),
        "{v}"
    );

    // The shared daemon has no index of its own to measure.
    let out = t.run(&["status", "--space", "--shared"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("in the project"), "{err}");
}

#[test]
fn index_then_query() {
    let t = with_fixtures();
    let v = t.json(&["index", "--json"]);
    assert_eq!(v["summary"]["added"], 5, "{v}");
    assert_eq!(v["files"], 5);
    assert!(v["chunks"].as_u64().unwrap() >= 5);

    let v = query(&t, "installer platform");
    let hit = &v["hits"][0];
    assert_eq!(hit["path"], "docs/guide/install.md");
    assert_eq!(hit["title"], "Installing Widgetd");
    for key in [
        "headings",
        "line_start",
        "line_end",
        "score",
        "snippet",
        "highlights",
    ] {
        assert!(!hit[key].is_null(), "{key} missing: {hit}");
    }
    assert!(hit["line_start"].as_u64().unwrap() <= hit["line_end"].as_u64().unwrap());
    let snippet = hit["snippet"].as_str().unwrap();
    let chars: Vec<char> = snippet.chars().collect();
    for h in hit["highlights"].as_array().unwrap() {
        let (a, b) = (
            h[0].as_u64().unwrap() as usize,
            h[1].as_u64().unwrap() as usize,
        );
        let word: String = chars[a..b].iter().collect();
        assert!(
            ["installer", "platform"].contains(&word.to_lowercase().as_str()),
            "{word:?} in {snippet}"
        );
    }

    // Human output and exit code 1 for nothing found.
    let text = t.ok(&["query", "installer"]);
    assert!(text.contains("docs/guide/install.md:"), "{text}");
    let out = t.run(&["query", "xyzzyplugh"]);
    assert_eq!(out.status.code(), Some(1));
}

/// Japanese and Chinese have no spaces between words: a word inside a sentence is
/// found (by its pairs of characters), ranked above a partial match, and highlighted
/// whole.
#[test]
fn cjk_words_inside_sentences_are_found() {
    let t = TestEnv::new();
    let docs = t.project.join("docs");
    std::fs::create_dir_all(&docs).unwrap();
    std::fs::write(
        docs.join("ja.md"),
        "# 概要\n\nアプリケーションから分散トレースとメトリクスを収集します。\n",
    )
    .unwrap();
    std::fs::write(docs.join("partial.md"), "# 訓練\n\nトレーニングの記録。\n").unwrap();
    std::fs::write(
        docs.join("json.md"),
        "# 出力\n\nJSONで出力します。OpenTelemetryコレクターです。\n",
    )
    .unwrap();
    std::fs::write(
        docs.join("zh.md"),
        "# 简介\n\n可观测性是通过检查系统输出来理解系统内部状态的能力。\n",
    )
    .unwrap();
    t.ok(&["index"]);
    let v = query(&t, "トレース");
    assert_eq!(hit_paths(&v), ["docs/ja.md", "docs/partial.md"], "{v:#}");
    assert_eq!(highlighted(&v["hits"][0]), ["トレース"]);
    assert_eq!(hit_paths(&query(&t, "系统输出")), ["docs/zh.md"]);
    assert_eq!(hit_paths(&query(&t, "\"分散トレース\"")), ["docs/ja.md"]);
    // A single character, alone or ending a phrase; a Latin word against CJK.
    assert_eq!(hit_paths(&query(&t, "訓")), ["docs/partial.md"]);
    assert_eq!(hit_paths(&query(&t, "\"JSONで\"")), ["docs/json.md"]);
    assert_eq!(hit_paths(&query(&t, "opentelemetry")), ["docs/json.md"]);
}

/// A short word the stemmer changes (`cry` to `cri`, `dying` to `die`) is highlighted
/// in the snippet as its other forms are, even deep in a long section.
#[test]
fn short_stemmed_words_are_highlighted() {
    let t = TestEnv::new();
    let docs = t.project.join("docs");
    std::fs::create_dir_all(&docs).unwrap();
    let filler: Vec<String> = (0..150).map(|i| format!("filler{i}")).collect();
    let text = format!(
        "# Long\n\n{} the baby will cry tonight {}\n\n## Dying\n\nthe process is dying\n",
        filler.join(" "),
        filler.join(" ")
    );
    std::fs::write(docs.join("long.md"), text).unwrap();
    t.ok(&["index"]);
    for word in ["cry", "dying"] {
        let v = query(&t, word);
        assert_eq!(highlighted(&v["hits"][0]), [word], "{v:#}");
    }
}

#[test]
fn formats_and_stemming() {
    let t = with_fixtures();
    t.ok(&["index"]);
    assert_eq!(
        hit_paths(&query(&t, "bearer token"))[0],
        "docs/api/reference.rst"
    );
    assert_eq!(
        hit_paths(&query(&t, "snapshots hourly"))[0],
        "docs/api/manual.adoc"
    );
    assert_eq!(hit_paths(&query(&t, "quorum"))[0], "docs/notes.txt");
    // Stemming: "throttling" finds "throttled", "evicting" finds "evicts".
    assert_eq!(
        hit_paths(&query(&t, "throttling"))[0],
        "docs/api/reference.rst"
    );
    assert_eq!(hit_paths(&query(&t, "evicting"))[0], "docs/guide/tuning.md");
}

#[test]
fn identifiers_phrases_exclusions_prefixes() {
    let t = with_fixtures();
    t.ok(&["index"]);
    for q in [
        "max_connections",
        "connections max",
        "ConnectionPool",
        "widgetd::migrate",
        "migrate",
        "--dry-run",
        "dry-run",
        "restore_snapshot",
    ] {
        let v = query(&t, q);
        assert!(!hit_paths(&v).is_empty(), "no hit for {q}");
    }
    assert_eq!(
        hit_paths(&query(&t, "widgetd::migrate"))[0],
        "docs/guide/install.md"
    );
    assert_eq!(
        hit_paths(&query(&t, "restore_snapshot"))[0],
        "docs/api/manual.adoc"
    );

    // A phrase must appear as such.
    assert_eq!(
        hit_paths(&query(&t, "\"idle sockets warm\"")),
        ["docs/guide/tuning.md"]
    );
    assert!(hit_paths(&query(&t, "\"sockets idle warm\"")).is_empty());

    // Exclusion and path prefix.
    let both = hit_paths(&query(&t, "idle sockets"));
    assert!(
        both.contains(&"docs/guide/install.md".into())
            && both.contains(&"docs/guide/tuning.md".into())
    );
    let v = hit_paths(&query(&t, "idle sockets -pool"));
    assert!(
        !v.is_empty() && v.iter().all(|p| p != "docs/guide/tuning.md") || v.is_empty(),
        "{v:?}"
    );
    let v = hit_paths(&query(&t, "token path:docs/api"));
    assert!(v.iter().all(|p| p.starts_with("docs/api")), "{v:?}");
    let out = t.run(&["query", "--json", "--path-prefix", "docs/guide", "token"]);
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(
        hit_paths(&v).iter().all(|p| p.starts_with("docs/guide")),
        "{v}"
    );

    // Plain words are ranked, not ANDed: one unknown word does not empty the results.
    assert!(!hit_paths(&query(&t, "backups nonexistentword")).is_empty());
}

/// A camelCase word inside a longer identifier is found as any other part, in any
/// case, and highlighted where it stands.
#[test]
fn a_camel_case_word_inside_an_identifier_is_found_in_lower_case() {
    let t = TestEnv::new();
    let docs = t.project.join("docs");
    std::fs::create_dir_all(&docs).unwrap();
    std::fs::write(
        docs.join("a.md"),
        "# A\n\nUse std::collections::HashMap here.\n",
    )
    .unwrap();
    std::fs::write(docs.join("c.md"), "# C\n\nSee config.maxRetryCount too.\n").unwrap();
    t.ok(&["index"]);
    for (q, path, word) in [
        ("hashmap", "docs/a.md", "HashMap"),
        ("Hashmap", "docs/a.md", "HashMap"),
        ("HashMap", "docs/a.md", "HashMap"),
        ("maxretrycount", "docs/c.md", "maxRetryCount"),
        ("retry", "docs/c.md", "Retry"),
    ] {
        let v = query(&t, q);
        assert_eq!(hit_paths(&v), [path], "{q}: {v}");
        assert!(
            highlighted(&v["hits"][0]).contains(&word.to_owned()),
            "{q}: {v}"
        );
    }
}

/// As the README says: a word of 80 bytes or more is not indexed, and the limit is
/// in bytes (two a letter in Cyrillic).
#[test]
fn words_of_80_bytes_or_more_are_not_indexed() {
    let t = TestEnv::new();
    let docs = t.project.join("docs");
    std::fs::create_dir_all(&docs).unwrap();
    let (short, long) = ("q".repeat(79), "q".repeat(80));
    let (cyr_short, cyr_long) = ("ж".repeat(39), "ж".repeat(40));
    std::fs::write(
        docs.join("a.md"),
        format!("# A\n\nfound {short} {long} {cyr_short} {cyr_long}\n"),
    )
    .unwrap();
    t.ok(&["index"]);
    for (word, hits) in [(&short, 1), (&long, 0), (&cyr_short, 1), (&cyr_long, 0)] {
        let v = query(&t, word);
        assert_eq!(v["total_matches"], hits, "{} bytes: {v}", word.len());
    }
}

#[test]
fn odd_queries_never_fail() {
    let t = with_fixtures();
    t.ok(&["index"]);
    for q in [
        "\"unclosed",
        "(((",
        "AND OR NOT",
        "foo:bar",
        "a::",
        "*",
        "title:x^3",
        "\\",
        "-",
        "😀 émoji",
        "path:",
    ] {
        let out = t.run(&["query", "--json", "--", q]);
        assert!(
            matches!(out.status.code(), Some(0 | 1)),
            "{q}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    for q in ["-onlyexcluded", "\"\""] {
        let out = t.run(&["query", "--", q]);
        assert_eq!(out.status.code(), Some(2), "{q}");
        assert!(
            String::from_utf8_lossy(&out.stderr).contains("no words"),
            "{q}"
        );
    }
    let huge = "word ".repeat(2000);
    let out = t.run(&["query", &huge]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("limit"));
}

#[test]
fn incremental_updates() {
    let t = with_fixtures();
    t.ok(&["index"]);
    let v = t.json(&["index", "--json"]);
    assert_eq!(
        (
            v["summary"]["added"].as_u64(),
            v["summary"]["updated"].as_u64()
        ),
        (Some(0), Some(0))
    );
    assert_eq!(v["summary"]["unchanged"], 5);

    let docs = t.project.join("docs");
    std::fs::write(
        docs.join("notes.txt"),
        "Release notes\n\nVersion three adds zanzibar.\n",
    )
    .unwrap();
    std::fs::rename(docs.join("guide/tuning.md"), docs.join("guide/perf.md")).unwrap();
    std::fs::remove_file(docs.join("api/manual.adoc")).unwrap();
    std::fs::write(docs.join("new.md"), "# New\n\nFresh quokka content.\n").unwrap();
    let v = t.json(&["index", "--json"]);
    let s = &v["summary"];
    assert_eq!(
        (
            s["added"].as_u64(),
            s["updated"].as_u64(),
            s["removed"].as_u64()
        ),
        (Some(2), Some(1), Some(2)),
        "{v}"
    );
    assert_eq!(v["files"], 5);
    assert_eq!(hit_paths(&query(&t, "zanzibar")), ["docs/notes.txt"]);
    assert!(hit_paths(&query(&t, "quorum")).is_empty());
    assert_eq!(hit_paths(&query(&t, "evicts"))[0], "docs/guide/perf.md");
    assert!(hit_paths(&query(&t, "snapshots")).is_empty());
    // A touched but unchanged file is not rewritten.
    let content = std::fs::read(docs.join("new.md")).unwrap();
    std::thread::sleep(Duration::from_millis(20));
    std::fs::write(docs.join("new.md"), content).unwrap();
    let v = t.json(&["index", "--json"]);
    assert_eq!(v["summary"]["updated"], 0, "{v}");
    let v = t.json(&["index", "--full", "--json"]);
    assert_eq!(v["summary"]["updated"], 5, "{v}");
}

#[test]
fn merged_away_segments_leave_no_files() {
    let t = with_fixtures();
    t.ok(&["index"]);
    let data = t.state_dir().join("data");
    let index = std::fs::read_dir(&data)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .find(|p| {
            p.file_name()
                .unwrap()
                .to_str()
                .unwrap()
                .starts_with("index-")
        })
        .unwrap();
    let live = || -> std::collections::BTreeSet<String> {
        let meta: Value =
            serde_json::from_slice(&std::fs::read(index.join("meta.json")).unwrap()).unwrap();
        meta["segments"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s["segment_id"].as_str().unwrap().replace('-', ""))
            .collect()
    };
    // Every `index` below commits one new file, a segment each, until a commit merges:
    // right after that one, no file of a merged-away segment may be left.
    let mut before = live().len();
    for i in 0..40 {
        std::fs::write(
            t.project.join(format!("docs/added{i}.md")),
            format!("# Added {i}\n\nVersion {i} adds zanzibar.\n"),
        )
        .unwrap();
        t.ok(&["index"]);
        let now = live();
        if now.len() > before {
            before = now.len();
            continue;
        }
        let on_disk: std::collections::BTreeSet<String> = std::fs::read_dir(&index)
            .unwrap()
            .flatten()
            .filter_map(|e| {
                let name = e.file_name().into_string().unwrap();
                let (stem, _) = name.split_once('.')?;
                (stem.len() == 32).then(|| stem.to_owned())
            })
            .collect();
        assert_eq!(on_disk, now, "files of segments no commit refers to");
        assert_eq!(query(&t, "zanzibar")["total_matches"], i + 1);
        return;
    }
    panic!("40 commits and no merge");
}

#[test]
fn what_is_not_indexed() {
    let mut t = with_fixtures();
    t.set("DOC_SERVE_MAX_FILE_BYTES", "2000");
    let p = &t.project;
    std::fs::write(p.join(".gitignore"), "ignored/\n").unwrap();
    std::fs::create_dir_all(p.join("ignored")).unwrap();
    std::fs::write(p.join("ignored/secret.md"), "ignoredword").unwrap();
    std::fs::create_dir_all(p.join(".hidden")).unwrap();
    std::fs::write(p.join(".hidden/h.md"), "hiddenword").unwrap();
    std::fs::write(p.join("bin.md"), b"binaryword\0\x01\x02").unwrap();
    std::fs::write(p.join("big.md"), "bigword ".repeat(1000)).unwrap();
    std::fs::write(p.join("latin1.md"), b"caf\xe9 latinword").unwrap();
    std::fs::write(p.join("code.rs"), "rustword").unwrap();
    let outside = t.root().join("outside");
    std::fs::create_dir_all(&outside).unwrap();
    std::fs::write(outside.join("o.md"), "outsideword").unwrap();
    std::os::unix::fs::symlink(&outside, p.join("link-out")).unwrap();
    std::os::unix::fs::symlink(p, p.join("docs/loop")).unwrap();
    std::os::unix::fs::symlink(p.join("docs/notes.txt"), p.join("inside-link.txt")).unwrap();
    t.ok(&["init"]);

    let v = t.json(&["index", "--json"]);
    let skipped = v["summary"]["skipped"].to_string();
    assert!(
        skipped.contains("bin.md") && skipped.contains("NUL"),
        "{skipped}"
    );
    assert!(
        skipped.contains("big.md") && skipped.contains("cap"),
        "{skipped}"
    );
    for w in [
        "ignoredword",
        "hiddenword",
        "binaryword",
        "bigword",
        "rustword",
        "outsideword",
    ] {
        assert!(
            hit_paths(&query(&t, w)).is_empty(),
            "{w} should not be indexed"
        );
    }
    assert_eq!(hit_paths(&query(&t, "latinword")), ["latin1.md"]);
    assert!(hit_paths(&query(&t, "quorum")).contains(&"inside-link.txt".to_string()));
    // Nothing from the state dir, ever.
    assert!(v["files"].as_u64().unwrap() < 10, "{v}");
}

#[test]
fn resident_serves_queries_documents_and_follows_edits() {
    let mut t = with_fixtures();
    t.set("DOC_SERVE_DEBOUNCE_MS", "50");
    std::fs::write(t.project.join(".gitignore"), "skip/\n").unwrap();
    t.spawn_serve(&[]);
    let rt = t.wait_runtime(Duration::from_secs(15));
    let addr = addr_of(&rt);
    let auth = format!("Authorization: Bearer {}", rt["token"].as_str().unwrap());
    let q = |words: &str| -> Value {
        let r = get(
            &addr,
            &format!("/query?q={}", words.replace(' ', "+")),
            &[&auth],
        );
        assert_eq!(r.status, 200, "{r:?}");
        r.json()
    };
    let found = |words: &str, path: &str| hit_paths(&q(words)).iter().any(|p| p == path);
    wait_for(Duration::from_secs(10), "initial index", || {
        found("quorum", "docs/notes.txt").then_some(())
    });
    let v = q("quorum");
    for key in [
        "files",
        "chunks",
        "indexing",
        "pending_changes",
        "watcher",
        "last_commit",
    ] {
        assert!(
            v["index"].get(key).is_some(),
            "freshness footer lacks {key}: {v}"
        );
    }
    assert_eq!(v["index"]["watcher"], "watching");

    // POST /query works as GET does; errors are JSON.
    let body = r#"{"q": "quorum", "limit": 1}"#;
    let r = raw(&addr, format!("POST /query HTTP/1.1\r\nHost: {addr}\r\n{auth}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}", body.len()).as_bytes());
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["hits"].as_array().unwrap().len(), 1);
    let r = get(&addr, "/query?q=", &[&auth]);
    assert_eq!(
        (r.status, r.json()["code"].as_str()),
        (400, Some("bad_query"))
    );
    let r = get(&addr, "/query?q=x&limit=lots", &[&auth]);
    assert_eq!(r.status, 400);

    // Edits are picked up by the watcher.
    let docs = t.project.join("docs");
    std::fs::write(docs.join("added.md"), "# Added\n\nA wombat appears.\n").unwrap();
    wait_for(Duration::from_secs(10), "added file", || {
        found("wombat", "docs/added.md").then_some(())
    });
    std::fs::write(docs.join("added.md"), "# Added\n\nA platypus now.\n").unwrap();
    wait_for(Duration::from_secs(10), "modified file", || {
        (found("platypus", "docs/added.md") && !found("wombat", "docs/added.md")).then_some(())
    });
    std::fs::rename(docs.join("added.md"), docs.join("renamed.md")).unwrap();
    wait_for(Duration::from_secs(10), "renamed file", || {
        (found("platypus", "docs/renamed.md") && !found("platypus", "docs/added.md")).then_some(())
    });
    // Ignored and hidden files stay out when they appear while watching.
    std::fs::create_dir_all(docs.join("skip")).unwrap();
    std::fs::create_dir_all(docs.join(".hid")).unwrap();
    std::thread::sleep(Duration::from_millis(300));
    std::fs::write(docs.join("skip/s.md"), "# S\n\nignoredkoala\n").unwrap();
    std::fs::write(docs.join(".hid/h.md"), "# H\n\nhiddenkoala\n").unwrap();
    std::fs::write(docs.join("after.md"), "# After\n\nmarkerkoala\n").unwrap();
    wait_for(Duration::from_secs(10), "marker", || {
        found("markerkoala", "docs/after.md").then_some(())
    });
    assert!(hit_paths(&q("ignoredkoala")).is_empty() && hit_paths(&q("hiddenkoala")).is_empty());
    std::fs::remove_file(docs.join("renamed.md")).unwrap();
    wait_for(Duration::from_secs(10), "deleted file", || {
        hit_paths(&q("platypus")).is_empty().then_some(())
    });

    // Documents: whole, a range, and never outside the root.
    let r = get(
        &addr,
        "/documents/docs/guide/tuning.md?start=3&end=3",
        &[&auth],
    );
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["text"], "## Connection pool");
    assert_eq!(r.json()["total_lines"], 13);
    let r = get(&addr, "/documents/docs%2Fnotes.txt", &[&auth]);
    assert_eq!(r.status, 200, "{r:?}");
    std::os::unix::fs::symlink("/etc", t.project.join("docs/etc")).unwrap();
    documents_not_found(
        &addr,
        &auth,
        &[
            "docs/../../etc/passwd",
            "%2Fetc%2Fpasswd",
            "docs/%2E%2E/%2E%2E/etc/hostname",
            "docs/etc/hostname.md",
            ".claude/doc-serve/runtime.json",
            "docs/missing.md",
            "Cargo.toml",
        ],
    );
    let r = get(&addr, "/documents/docs/notes.txt?start=9&end=12", &[&auth]);
    assert_eq!(r.status, 400);
    // Lines count from 1 (MCP's read_doc refuses 0 alike), and a range and a heading
    // do not mix.
    for (target, needle) in [
        (
            "start=0&end=1",
            "start must be a whole number of at least 1",
        ),
        ("end=0", "end must be a whole number of at least 1"),
        ("heading=Tuning&start=2", "either start and end or heading"),
    ] {
        let r = get(
            &addr,
            &format!("/documents/docs/guide/tuning.md?{target}"),
            &[&auth],
        );
        assert_eq!(r.status, 400, "{target}");
        assert_eq!(r.json()["code"], "bad_parameter", "{target}");
        let message = r.json()["message"].as_str().unwrap().to_owned();
        assert!(message.contains(needle), "{target}: {message}");
    }

    // POST /index reindexes and reports.
    let r = raw(&addr, format!("POST /index HTTP/1.1\r\nHost: {addr}\r\n{auth}\r\nContent-Length: 13\r\nConnection: close\r\n\r\n{{\"full\":true}}").as_bytes());
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(r.json()["summary"]["full"], true);
    let status = get(&addr, "/status", &[&auth]).json();
    assert_eq!(status["index"]["files"], 6, "{status}");
}

/// The shared benchmark corpus, when this checkout sits beside it (CI does).
pub fn corpus(name: &str) -> Option<std::path::PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../shared/corpus/docs")
        .join(name);
    if dir.is_dir() {
        return Some(dir);
    }
    assert!(!in_ci(), "{} is required in CI", dir.display());
    eprintln!(
        "SKIP: {} not found (it sits beside the checkout in CI)",
        dir.display()
    );
    None
}

#[test]
fn ranking_sanity_on_the_rust_book() {
    let Some(book) = corpus("rust-book") else {
        return;
    };
    let t = TestEnv::new();
    copy_dir(&book, &t.project.join("book"));
    t.ok(&["index"]);
    let cases = [
        ("ownership borrowing", "ch04-02-references-and-borrowing.md"),
        ("trait objects dynamic dispatch", "ch18-02-trait-objects.md"),
        (
            "unwinding panic",
            "ch09-01-unrecoverable-errors-with-panic.md",
        ),
        ("cargo workspaces", "ch14-03-cargo-workspaces.md"),
        ("lifetime elision", "ch10-03-lifetime-syntax.md"),
        ("Rc<T> reference counting", "ch15-04-rc.md"),
        ("hash map entry", "ch08-03-hash-maps.md"),
        ("closures capture environment", "ch13-01-closures.md"),
        ("unsafe raw pointers", "ch20-01-unsafe-rust.md"),
    ];
    for (q, want) in cases {
        let hits = hit_paths(&query(&t, q));
        let top: Vec<&str> = hits
            .iter()
            .take(3)
            .map(|p| p.rsplit('/').next().unwrap())
            .collect();
        assert!(
            top.contains(&want),
            "{q:?}: expected {want} in the top 3, got {top:?}"
        );
    }
}

#[test]
fn ready_before_the_first_index_finishes() {
    let mut t = TestEnv::new();
    let docs = t.project.join("docs");
    std::fs::create_dir_all(&docs).unwrap();
    let filler = "alpha beta gamma delta epsilon zeta eta theta ".repeat(100);
    for i in 0..1500 {
        std::fs::write(
            docs.join(format!("d{i}.md")),
            format!("# Doc {i}\n\nmarker{i} {filler}\n"),
        )
        .unwrap();
    }
    let notify_path = t.root().join("notify.sock");
    let notify = std::os::unix::net::UnixDatagram::bind(&notify_path).unwrap();
    t.set("NOTIFY_SOCKET", notify_path.to_str().unwrap());
    t.spawn_serve(&[]);
    let rt = t.wait_runtime(Duration::from_secs(15));
    let addr = addr_of(&rt);
    let auth = format!("Authorization: Bearer {}", rt["token"].as_str().unwrap());
    // runtime.json is written before READY=1, and both before the index is built: a
    // query that will not wait for the first index (`wait=0`) answers from what is
    // committed and says so.
    let first = get(&addr, "/query?q=alpha&wait=0", &[&auth]);
    assert_eq!(first.status, 200);
    assert_eq!(first.json()["index"]["indexing"], true, "{}", first.body);
    let mut buf = [0u8; 4096];
    notify
        .set_read_timeout(Some(Duration::from_secs(15)))
        .unwrap();
    let mut seen = String::new();
    while !seen.contains("indexing ") {
        let n = notify.recv(&mut buf).unwrap();
        seen.push_str(&String::from_utf8_lossy(&buf[..n]));
    }
    assert!(seen.contains("READY=1"), "{seen}");
    wait_for(Duration::from_secs(60), "the first index", || {
        let v = get(&addr, "/query?q=marker1499", &[&auth]).json();
        (v["index"]["indexing"] == false && hit_paths(&v) == ["docs/d1499.md"]).then_some(())
    });
}

#[test]
fn headings_outrank_bodies_and_one_file_cannot_flood() {
    let t = TestEnv::new();
    let docs = t.project.join("docs");
    std::fs::create_dir_all(&docs).unwrap();
    std::fs::write(
        docs.join("a.md"),
        "# Guide\n\n## Retention\n\nHow long data is kept.\n",
    )
    .unwrap();
    let filler = "Some words about storage and clusters and nodes. ".repeat(20);
    std::fs::write(
        docs.join("b.md"),
        format!("# Other\n\n{filler} The retention is mentioned once. {filler}\n"),
    )
    .unwrap();
    let mut many = String::from("# Widgets\n\n");
    for i in 0..12 {
        many.push_str(&format!(
            "## Widget part {i}\n\nThe widget section number {i}.\n\n"
        ));
    }
    std::fs::write(docs.join("many.md"), many).unwrap();
    for i in 0..5 {
        std::fs::write(
            docs.join(format!("w{i}.md")),
            format!("# W{i}\n\nA widget mention.\n"),
        )
        .unwrap();
    }
    t.ok(&["index"]);
    let v = query(&t, "retention");
    assert_eq!(hit_paths(&v)[0], "docs/a.md", "{v}");
    assert_eq!(
        v["hits"][0]["headings"],
        serde_json::json!(["Retention"]),
        "{v}"
    );
    let v = query(&t, "widget");
    let p = hit_paths(&v);
    assert_eq!(p.len(), 8, "{p:?}");
    assert_eq!(
        p.iter().filter(|x| *x == "docs/many.md").count(),
        3,
        "{p:?}"
    );
    assert!(v["total_matches"].as_u64().unwrap() >= 17, "{v}");
    // The cap is configurable.
    let mut t = t;
    t.set("DOC_SERVE_MAX_HITS_PER_FILE", "10");
    assert_eq!(
        hit_paths(&query(&t, "widget"))
            .iter()
            .filter(|x| *x == "docs/many.md")
            .count(),
        10
    );
}

/// More of the best sections in one file than a search first fetches: the cap per
/// file still leaves the other files' hits in the answer.
#[test]
fn a_file_with_most_of_the_best_sections_leaves_room_for_others() {
    let mut t = TestEnv::new();
    let docs = t.project.join("docs");
    std::fs::create_dir_all(&docs).unwrap();
    let mut big = String::new();
    for i in 0..80 {
        big.push_str(&format!("## Gizmo {i}\n\nGizmo gizmo {i}.\n\n"));
    }
    std::fs::write(docs.join("big.md"), big).unwrap();
    std::fs::write(
        docs.join("small.md"),
        "# Small\n\nThis one mentions a gizmo once, among other words about other things.\n",
    )
    .unwrap();
    t.set("DOC_SERVE_MAX_HITS_PER_FILE", "1");
    t.ok(&["index"]);
    let v = query(&t, "gizmo");
    assert_eq!(hit_paths(&v), ["docs/big.md", "docs/small.md"], "{v}");
    assert_eq!(v["total_matches"], 81, "{v}");
    // The same through tantivy's scorers (a phrase).
    let v = query(&t, "\"gizmo\"");
    assert_eq!(hit_paths(&v), ["docs/big.md", "docs/small.md"], "{v}");
    assert_eq!(v["total_matches"], 81, "{v}");
}

/// BM25 scores the same whichever way a query goes: a few plain words are scored a term
/// at a time, more than 32 through the scorers. Words that no section holds add nothing
/// to either, so the two queries below must give the same hits with the same scores,
/// over sections whose lengths and word counts differ (k1 and b both matter).
#[test]
fn plain_words_score_alike_by_terms_and_through_the_scorers() {
    let t = TestEnv::new();
    let docs = t.project.join("docs");
    std::fs::create_dir_all(&docs).unwrap();
    for i in 0..12 {
        let filler = "other words here. ".repeat(i * 3);
        let text = format!(
            "# Page {i}\n\n{}{filler}{}\n",
            "quartz ".repeat(1 + i % 4),
            "basalt ".repeat(i % 3)
        );
        std::fs::write(docs.join(format!("p{i}.md")), text).unwrap();
    }
    t.ok(&["index"]);
    let absent: Vec<String> = (0..38).map(|i| format!("nohit{i}x")).collect();
    let few = format!("quartz basalt {}", absent[..6].join(" "));
    let many = format!("quartz basalt {}", absent.join(" "));
    // Every section holds `quartz`: all of them come back, so no tie is cut.
    let hits = |q: &str| {
        let mut hits = scored(
            &t.json(&["query", "--json", "--limit", "20", "--", q]),
            "path",
        );
        hits.sort_by(|x, y| x.0.cmp(&y.0));
        hits
    };
    let (a, b) = (hits(&few), hits(&many));
    assert_eq!(a.len(), 12, "{a:?}");
    assert_same_scores(&a, &b);
}

/// As the README's query table and Search paragraph say: several path prefixes keep
/// files under any of them, and a phrase's score is added to the words' score, which
/// alone is doubled when a section holds every word.
#[test]
fn path_prefixes_are_a_union_and_only_the_words_are_doubled() {
    let t = TestEnv::new();
    let docs = t.project.join("docs");
    for (dir, text) in [
        ("a", "alpha beta gamma delta and some other words"),
        ("b", "alpha beta"),
        ("c", "alpha and more"),
    ] {
        std::fs::create_dir_all(docs.join(dir)).unwrap();
        std::fs::write(docs.join(dir).join("x.md"), format!("# T\n\n{text}\n")).unwrap();
    }
    t.ok(&["index"]);
    let mut paths = hit_paths(&query(&t, "alpha path:docs/a path:docs/b"));
    paths.sort();
    assert_eq!(paths, ["docs/a/x.md", "docs/b/x.md"]);
    let v = t.json(&[
        "query",
        "--json",
        "--path-prefix",
        "docs/c",
        "--",
        "alpha path:docs/a",
    ]);
    let mut paths = hit_paths(&v);
    paths.sort();
    assert_eq!(paths, ["docs/a/x.md", "docs/c/x.md"]);

    let score = |q: &str| {
        let scores = scored(&query(&t, &format!("{q} path:docs/a")), "path");
        assert_eq!(scores.len(), 1, "{q}: {scores:?}");
        scores[0].1
    };
    let (phrase, words) = (score("\"alpha beta\""), score("gamma delta"));
    // A section holding every word scores its words' sum twice; one word alone is
    // not doubled.
    let (gamma, delta) = (score("gamma"), score("delta"));
    assert!(
        (words - 2.0 * (gamma + delta)).abs() <= 1e-4 * words,
        "{words} is not 2 ({gamma} + {delta})"
    );
    let both = score("\"alpha beta\" gamma delta");
    // Both words are held, so `words` is already doubled; the phrase is not.
    assert!(
        (both - (phrase + words)).abs() <= 1e-4 * both,
        "{both} is not {phrase} + {words}"
    );
}

/// A segment of more sections than one window of term-at-a-time scoring (16,384) is
/// scored a window at a time; the hits, their scores and the total are those of the
/// same words through the scorers (past 32 words), which score a segment whole.
#[test]
fn a_big_segment_scores_as_through_the_scorers() {
    let t = TestEnv::new();
    let docs = t.project.join("docs");
    std::fs::create_dir_all(&docs).unwrap();
    // 160 files of 500 sections, one batch: at most 4 indexing threads, so a segment
    // of 20,000 sections or more. A long section holds one word or the other; 30
    // short ones, one a file, spread over the segments, hold both, each with its own
    // count of one word and length: those are the best 30.
    let (files, sections) = (160, 500);
    let (mut expected, mut expected_under_f1) = (0, 0);
    for f in 0..files {
        let mut text = String::new();
        for s in 0..sections {
            let i = f * sections + s;
            let body = if i % 2_663 == 0 && i / 2_663 < 30 {
                let quartz = "quartz ".repeat(1 + i / 2_663);
                format!("{}{quartz}basalt", "filler ".repeat(i % 7))
            } else {
                let filler = "filler ".repeat(20 + i % 7);
                match (i % 3, i % 5) {
                    (0, _) => format!("{filler}quartz"),
                    (_, 0) => format!("{filler}basalt"),
                    _ => filler,
                }
            };
            let matches = usize::from(body.contains("quartz") || body.contains("basalt"));
            expected += matches;
            if f.to_string().starts_with('1') {
                expected_under_f1 += matches;
            }
            text.push_str(&format!("## S{i}\n\n{body}\n\n"));
        }
        std::fs::write(docs.join(format!("f{f}.md")), text).unwrap();
    }
    t.ok(&["index"]);
    let space = t.json_code(&["status", "--space", "--json"], 1);
    let (docs, segments) = (&space["space"]["docs"], &space["space"]["segments"]);
    assert!(
        docs.as_u64().unwrap() / segments.as_u64().unwrap() > 16_384,
        "{docs} documents in {segments} segments"
    );
    // Words no section holds: no section holds every word (which would score
    // double), and 40 words go through the scorers.
    let absent: Vec<String> = (0..38).map(|i| format!("nohit{i}x")).collect();
    let search = |q: &str| {
        let v = t.json(&["query", "--json", "--limit", "30", "--", q]);
        let hits = scored(&v, "id");
        (v, hits)
    };
    let few = format!("quartz basalt {}", absent[..6].join(" "));
    let many = format!("quartz basalt {}", absent.join(" "));
    let (by_terms, a) = search(&few);
    let (scorers, b) = search(&many);
    assert_eq!(by_terms["total_matches"], expected, "{by_terms}");
    assert_eq!(scorers["total_matches"], expected, "{scorers}");
    let mut best: Vec<String> = (0..30)
        .map(|j| {
            let i = j * 2_663;
            format!("docs/f{}.md#s{i}", i / sections)
        })
        .collect();
    best.sort();
    let mut found: Vec<String> = a.iter().map(|h| h.0.clone()).collect();
    found.sort();
    assert_eq!(found, best, "{a:?}");
    // No two score alike, so the order is the ranking's, not a tie's.
    assert!(a.windows(2).all(|w| w[0].1 > w[1].1), "{a:?}");
    assert_same_scores(&a, &b);
    // A path prefix counts alike, window by window: docs/f1, docs/f10 to docs/f19,
    // docs/f100 to docs/f159.
    let under = |q: String| search(&format!("{q} path:docs/f1")).0["total_matches"].clone();
    assert_eq!(under(few), expected_under_f1);
    assert_eq!(under(many), expected_under_f1);
}

#[test]
fn a_saved_file_does_not_wait_out_the_debounce() {
    let mut t = TestEnv::new();
    // Long enough that a change waiting out the whole debounce cannot pass the test.
    t.set("DOC_SERVE_DEBOUNCE_MS", "8000");
    let docs = t.project.join("docs");
    std::fs::create_dir_all(&docs).unwrap();
    std::fs::write(docs.join("a.md"), "# A\n\nfirst file\n").unwrap();
    t.spawn_serve(&[]);
    let rt = t.wait_runtime(Duration::from_secs(15));
    let addr = addr_of(&rt);
    let auth = format!("Authorization: Bearer {}", rt["token"].as_str().unwrap());
    let found = |word: &str| {
        let v = get(&addr, &format!("/query?q={word}"), &[&auth]).json();
        hit_paths(&v).len() == 1 && v["index"]["indexing"] == false
    };
    wait_for(Duration::from_secs(15), "the first index", || {
        found("first").then_some(())
    });
    // Written and closed: settled, so indexed after an eighth of the debounce (1 s).
    std::fs::write(docs.join("b.md"), "# B\n\nsavedword here\n").unwrap();
    wait_for(Duration::from_secs(6), "the saved file", || {
        found("savedword").then_some(())
    });
}

/// With the root below the top of a repository (`--path repo/docs`), git's ignore
/// files above it apply as git applies them, up to the repository's top and no
/// further; the watcher and `/documents` agree with the walk.
#[test]
fn a_root_inside_a_repository_honours_its_ignore_files() {
    let mut t = TestEnv::new();
    t.set("DOC_SERVE_DEBOUNCE_MS", "50");
    let repo = t.project.clone();
    let docs = repo.join("docs");
    std::fs::create_dir_all(docs.join("_build")).unwrap();
    std::fs::create_dir_all(repo.join(".git/info")).unwrap();
    std::fs::write(repo.join(".gitignore"), "_build/\n/docs/private.md\n").unwrap();
    std::fs::write(repo.join(".git/info/exclude"), "excl.md\n").unwrap();
    // Above the repository: not git's business.
    std::fs::write(t.root().join(".gitignore"), "*.md\n").unwrap();
    for (name, word) in [
        ("a.md", "alphakoala"),
        ("_build/b.md", "buildkoala"),
        ("private.md", "privatekoala"),
        ("excl.md", "exclkoala"),
    ] {
        std::fs::write(docs.join(name), format!("# T\n\n{word}\n")).unwrap();
    }
    let root = docs.display().to_string();
    let v = t.json(&["--path", &root, "index", "--json"]);
    assert_eq!(v["summary"]["added"], 1, "{v}");

    t.spawn_serve(&["--path", &root]);
    let runtime = docs.join(".claude/doc-serve/runtime.json");
    let rt: Value = wait_for(Duration::from_secs(15), "runtime.json", || {
        serde_json::from_str(&std::fs::read_to_string(&runtime).ok()?).ok()
    });
    let addr = addr_of(&rt);
    let auth = format!("Authorization: Bearer {}", rt["token"].as_str().unwrap());
    let found = |word: &str| {
        let r = get(&addr, &format!("/query?q={word}"), &[&auth]);
        hit_paths(&r.json())
    };
    wait_for(Duration::from_secs(10), "watching", || {
        let r = get(&addr, "/status", &[&auth]).json();
        (r["index"]["watcher"] == "watching").then_some(())
    });
    std::fs::write(docs.join("_build/c.md"), "# C\n\nbuild2koala\n").unwrap();
    std::fs::write(docs.join("private.md"), "# P\n\nprivate2koala\n").unwrap();
    std::fs::write(docs.join("marker.md"), "# M\n\nmarkerkoala\n").unwrap();
    wait_for(Duration::from_secs(10), "marker", || {
        (found("markerkoala") == ["marker.md"]).then_some(())
    });
    assert_eq!(found("alphakoala"), ["a.md"]);
    for word in [
        "buildkoala",
        "build2koala",
        "privatekoala",
        "private2koala",
        "exclkoala",
    ] {
        assert!(found(word).is_empty(), "{word} should not be indexed");
    }
    documents_not_found(&addr, &auth, &["_build/b.md", "private.md", "excl.md"]);
    assert_eq!(get(&addr, "/documents/a.md", &[&auth]).status, 200);
}

/// What the walk leaves out, the watcher and `/documents` leave out too: a file
/// re-included under an ignored directory, `.git/info/exclude`, the global gitignore,
/// a root pattern below a nested repository, hidden and binary files; and what it takes
/// in (a hidden file an ignore file re-includes), they take in. A file that got into
/// the index before it was ignored is removed by the next reconciliation.
#[test]
fn walk_watcher_and_documents_agree_on_what_is_a_source() {
    let mut t = with_fixtures();
    t.set("DOC_SERVE_DEBOUNCE_MS", "50");
    let p = t.project.clone();
    std::fs::write(p.join(".gitignore"), "ign/\ndrafts/\n!.dotted.md\n").unwrap();
    std::fs::create_dir_all(p.join("sub/.git")).unwrap();
    std::fs::create_dir_all(p.join("sub/drafts")).unwrap();
    std::fs::write(p.join("sub/drafts/d.md"), "# D\n\ndraftkoala\n").unwrap();
    std::fs::write(p.join(".dotted.md"), "# Dotted\n\ndottedkoala\n").unwrap();
    std::fs::create_dir_all(p.join("ign")).unwrap();
    std::fs::write(p.join("ign/.gitignore"), "!neg.md\n").unwrap();
    std::fs::create_dir_all(p.join(".git/info")).unwrap();
    std::fs::write(p.join(".git/info/exclude"), "excl.md\n").unwrap();
    let global = t.root().join("home/.config/git");
    std::fs::create_dir_all(&global).unwrap();
    std::fs::write(global.join("ignore"), "globalign.md\n").unwrap();
    std::fs::write(p.join("late.md"), "# Late\n\nlatewombat\n").unwrap();
    let v = t.json(&["index", "--json"]);
    assert_eq!(v["summary"]["added"], 7, "{v}");
    assert_eq!(hit_paths(&query(&t, "dottedkoala")), [".dotted.md"]);
    assert!(hit_paths(&query(&t, "draftkoala")).is_empty());

    t.spawn_serve(&[]);
    let rt = t.wait_runtime(Duration::from_secs(15));
    let addr = addr_of(&rt);
    let auth = format!("Authorization: Bearer {}", rt["token"].as_str().unwrap());
    let found = |word: &str| {
        let r = get(&addr, &format!("/query?q={word}"), &[&auth]);
        assert_eq!(r.status, 200, "{r:?}");
        hit_paths(&r.json())
    };
    wait_for(Duration::from_secs(10), "watching", || {
        let r = get(&addr, "/status", &[&auth]).json();
        (r["index"]["watcher"] == "watching").then_some(())
    });
    std::fs::write(p.join("ign/neg.md"), "# N\n\nnegkoala\n").unwrap();
    std::fs::write(p.join("excl.md"), "# E\n\nexclkoala\n").unwrap();
    std::fs::write(p.join("globalign.md"), "# G\n\nglobalkoala\n").unwrap();
    std::fs::write(p.join("bin.md"), b"# B\n\nbinkoala\0\x01").unwrap();
    std::fs::create_dir_all(p.join(".hid")).unwrap();
    std::fs::write(p.join(".hid/h.md"), "# H\n\nhidkoala\n").unwrap();
    std::fs::write(p.join("sub/drafts/d2.md"), "# D\n\ndraft2koala\n").unwrap();
    std::fs::write(p.join(".dotted.md"), "# Dotted\n\ndotted2koala\n").unwrap();
    std::fs::write(p.join("marker.md"), "# M\n\nmarkerkoala\n").unwrap();
    wait_for(Duration::from_secs(10), "marker", || {
        (found("markerkoala") == ["marker.md"]).then_some(())
    });
    wait_for(Duration::from_secs(10), "edited dotted file", || {
        (found("dotted2koala") == [".dotted.md"]).then_some(())
    });
    for word in [
        "negkoala",
        "exclkoala",
        "globalkoala",
        "binkoala",
        "hidkoala",
        "draftkoala",
        "draft2koala",
    ] {
        assert!(found(word).is_empty(), "{word} should not be indexed");
    }
    documents_not_found(
        &addr,
        &auth,
        &[
            "ign/neg.md",
            "excl.md",
            "globalign.md",
            "bin.md",
            ".hid/h.md",
            ".gitignore",
            "sub/drafts/d.md",
        ],
    );
    assert_eq!(
        get(&addr, "/documents/marker.md", &[&auth]).json()["text"],
        "# M\n\nmarkerkoala"
    );
    assert_eq!(get(&addr, "/documents/.dotted.md", &[&auth]).status, 200);
    t.ok(&["stop"]);

    // Ignored after it was indexed: the next reconciliation removes it.
    assert_eq!(
        hit_paths(&query(&t, "latewombat")),
        ["late.md"],
        "indexed before it is ignored"
    );
    std::fs::write(
        p.join(".gitignore"),
        "ign/\ndrafts/\n!.dotted.md\nlate.md\n",
    )
    .unwrap();
    let v = t.json(&["index", "--json"]);
    assert_eq!(v["summary"]["removed"], 1, "{v}");
    assert!(hit_paths(&query(&t, "latewombat")).is_empty());
}

/// Line numbers, headings and names as `/documents` and the hits both see them:
/// lone CR line ends and a BOM, `?heading=` with a sibling of the same name and
/// through a link named as another format, a file name that is not UTF-8, and an
/// upper-case extension.
#[test]
fn documents_read_back_what_hits_point_at() {
    use std::os::unix::ffi::OsStrExt;
    let mut t = TestEnv::new();
    let p = t.project.clone();
    std::fs::write(
        p.join("cr.md"),
        "\u{feff}# Title\r\rline two crword\r\r## Sub\r\rsubword line five\r",
    )
    .unwrap();
    std::fs::write(
        p.join("twins.md"),
        "# Doc\n\n## Install\n\nfirst\n\n### Deeper\n\nd\n\n## Install\n\nsecond\n\n## Other\n\no\n",
    )
    .unwrap();
    std::fs::create_dir_all(p.join("src")).unwrap();
    std::fs::write(p.join("src/notes.txt"), "# Part\n\npartword\n").unwrap();
    std::os::unix::fs::symlink("src/notes.txt", p.join("view.md")).unwrap();
    let bad = std::ffi::OsStr::from_bytes(b"bad\xffname.md");
    std::fs::write(p.join(bad), "# N\n\nbadnamezebra\n").unwrap();
    std::fs::write(p.join("README.MD"), "# Upper\n\nupperextword\n").unwrap();
    t.spawn_serve(&[]);
    let rt = t.wait_runtime(Duration::from_secs(15));
    let addr = addr_of(&rt);
    let auth = format!("Authorization: Bearer {}", rt["token"].as_str().unwrap());
    let hit = |word: &str| -> Value {
        wait_for(Duration::from_secs(10), word, || {
            let r = get(&addr, &format!("/query?q={word}"), &[&auth]).json();
            r["hits"].get(0).cloned()
        })
    };
    let doc = |path: &str| get(&addr, &format!("/documents/{path}"), &[&auth]).json();

    let h = hit("subword");
    assert_eq!((&h["line_start"], &h["line_end"]), (&5.into(), &7.into()));
    let v = doc("cr.md?start=5&end=7");
    assert_eq!(v["text"], "## Sub\n\nsubword line five", "{v}");
    assert_eq!(v["total_lines"], 7);
    assert_eq!(doc("cr.md?heading=Sub")["line_start"], 5);
    assert_eq!(doc("cr.md?start=1&end=1")["text"], "# Title", "no BOM");

    let v = doc("twins.md?heading=Install");
    assert_eq!((&v["line_start"], &v["line_end"]), (&3.into(), &9.into()));
    assert_eq!(v["text"], "## Install\n\nfirst\n\n### Deeper\n\nd");

    // Indexed as Markdown, by the link's name: "Part" is its title.
    assert_eq!(hit("partword+path:view.md")["title"], "Part");
    let v = doc("view.md?heading=Part");
    assert_eq!(v["text"], "# Part\n\npartword", "{v}");

    let h = hit("badnamezebra");
    let path = h["path"].as_str().unwrap().to_string();
    assert_eq!(path, "bad\u{FFFD}name.md");
    let v = doc(&path.replace('\u{FFFD}', "%EF%BF%BD"));
    assert_eq!(v["text"], "# N\n\nbadnamezebra", "{v}");

    assert_eq!(hit("upperextword")["path"], "README.MD");
}

/// Chunking settings are part of what is indexed: changing them chunks every file
/// again, unchanged ones too.
#[test]
fn changed_chunk_settings_chunk_files_again() {
    let mut t = with_fixtures();
    let v = t.json(&["index", "--json"]);
    let chunks = v["chunks"].as_u64().unwrap();
    t.set("DOC_SERVE_CHUNK_SIZE", "5");
    t.set("DOC_SERVE_CHUNK_OVERLAP", "0");
    let v = t.json(&["index", "--json"]);
    assert_eq!(v["summary"]["updated"], 5, "{v}");
    assert!(v["chunks"].as_u64().unwrap() > 2 * chunks, "{v}");
    let v = t.json(&["index", "--json"]);
    assert_eq!(v["summary"]["unchanged"], 5, "{v}");
}

/// A resident removes indexes of other schemas that sat unused for a week (an upgrade
/// leaves the old one behind), and nothing else.
#[test]
fn a_resident_removes_superseded_indexes() {
    let mut t = with_fixtures();
    t.ok(&["index"]);
    let data = t.state_dir().join("data");
    let week_ago = std::time::SystemTime::now() - Duration::from_secs(8 * 24 * 3600);
    let make = |name: &str, old: bool| {
        let dir = data.join(name);
        std::fs::create_dir_all(&dir).unwrap();
        let meta = std::fs::File::create(dir.join("meta.json")).unwrap();
        if old {
            meta.set_modified(week_ago).unwrap();
        }
        dir
    };
    let stale = make("index-v1-0000dead", true);
    let recent = make("index-v1-0000beef", false);
    let other = make("notes", true);
    t.spawn_serve(&[]);
    t.wait_runtime(Duration::from_secs(15));
    assert!(!stale.exists(), "a week-old index of another schema stays");
    assert!(recent.exists() && other.exists());
    assert_eq!(hit_paths(&query(&t, "quorum")), ["docs/notes.txt"]);
}
