//! One api behind every transport: the same questions asked over HTTP, over MCP in
//! the resident (/mcp), over the MCP bridge (to the resident, and answering
//! standalone) and over the CLI answering standalone get the same structured answers,
//! and the same error codes.

use std::path::PathBuf;

use serde_json::{Value, json};

use crate::mcp::{client, python};
use crate::search::with_fixtures;
use crate::util::*;

/// What every transport's answer to a search shares: all of it but the timing and
/// the freshness footer's watcher state (a standalone answer has none).
fn comparable(mut v: Value) -> Value {
    let obj = v.as_object_mut().unwrap();
    obj.remove("took_ms");
    let index = obj
        .remove("index")
        .expect("every answer has a freshness footer");
    obj.insert(
        "index".into(),
        json!({"files": index["files"], "chunks": index["chunks"]}),
    );
    v
}

/// The structured answers of `calls` made over MCP (`how`: "stdio" BIN PROJECT or
/// "http" URL TOKEN).
fn mcp_calls(t: &TestEnv, py: &PathBuf, how: [&str; 3], calls: &Value) -> Vec<Value> {
    let calls = calls.to_string();
    let v = client(t, py, &["calls", how[0], how[1], how[2], &calls]);
    v.as_array().unwrap().clone()
}

#[test]
fn every_transport_gives_the_same_structured_answers() {
    let Some(py) = python() else { return };
    let mut t = with_fixtures();
    let q = "installer platform";
    let calls = json!([
        ["search_docs", {"query": q, "limit": 3}],
        ["read_doc", {"path": "docs/guide/install.md", "heading": "Linux"}],
        ["read_doc", {"path": "docs/guide/install.md", "line_start": 2, "line_end": 4}],
        ["read_doc", {"path": "../../etc/passwd"}],
        ["search_docs", {"query": q, "limit": 3, "max_tokens": 150}],
        ["read_doc", {"id": "docs/guide/install.md#linux"}],
        ["search_docs", {"query": q, "limit": 1, "offset": 1}],
        ["search_docs", {"query": q, "offset": 9000}],
        ["read_doc", {"id": "linux"}],
    ]);

    // HTTP and MCP at /mcp, from one resident.
    t.ok(&["start"]);
    let rt = t.runtime();
    let (addr, token) = (addr_of(&rt), rt["token"].as_str().unwrap().to_owned());
    let bearer = format!("Authorization: Bearer {token}");
    let http = |path: &str| get(&addr, path, &[&bearer]);
    let query = http("/query?q=installer+platform&limit=3");
    assert_eq!(query.status, 200, "{query:?}");
    let heading = http("/documents/docs/guide/install.md?heading=Linux").json();
    let lines = http("/documents/docs/guide/install.md?start=2&end=4").json();
    let outside = http("/documents/../../etc/passwd");
    let budget = http("/query?q=installer+platform&limit=3&max_tokens=150").json();
    let by_id = http("/documents/?section=docs/guide/install.md%23linux").json();
    let page = http("/query?q=installer+platform&limit=1&offset=1").json();
    let url = format!("{}/mcp", rt["base_url"].as_str().unwrap());
    let in_resident = mcp_calls(&t, &py, ["http", &url, &token], &calls);
    let project = t.project.display().to_string();
    let to_resident = mcp_calls(&t, &py, ["stdio", BIN, &project], &calls);
    t.ok(&["stop"]);

    // The CLI without a resident (none runs, and it starts none).
    let cli = t.json(&["query", "--json", "--limit", "3", q]);
    let cli_budget = t.json(&["query", "--json", "--limit", "3", "--max-tokens", "150", q]);
    let cli_page = t.json(&["query", "--json", "--limit", "1", "--offset", "1", q]);
    let cli_by_id = t.json(&["read", "--json", "docs/guide/install.md#linux"]);
    let cli_heading = t.json(&[
        "read",
        "--json",
        "docs/guide/install.md",
        "--heading",
        "Linux",
    ]);
    let cli_lines = t.json(&["read", "--json", "docs/guide/install.md", "--lines", "2-4"]);

    // The bridge, which can start no resident here (an address no interface has).
    t.set("DOC_SERVE_BIND_HOST", "192.0.2.1");
    let bridged = mcp_calls(&t, &py, ["stdio", BIN, &project], &calls);
    assert!(
        !t.state_file("runtime.json").exists(),
        "no resident started"
    );

    let search = comparable(query.json());
    assert_eq!(search["hits"].as_array().unwrap().len(), 3, "{search}");
    assert_eq!(search["truncated"], false, "{search}");
    for (name, answers) in [
        ("/mcp", &in_resident),
        ("the bridge to the resident", &to_resident),
        ("the bridge standalone", &bridged),
    ] {
        for a in answers {
            assert!(a["structured"].is_object(), "{name}: {a}");
        }
        assert_eq!(
            comparable(answers[0]["structured"].clone()),
            search,
            "{name}"
        );
        assert_eq!(answers[1]["structured"], heading, "{name}");
        assert_eq!(answers[2]["structured"], lines, "{name}");
        assert_eq!(answers[3]["error"], true, "{name}");
        assert_eq!(
            answers[3]["structured"]["code"],
            outside.json()["code"],
            "{name}"
        );
        assert_eq!(
            comparable(answers[4]["structured"].clone()),
            comparable(budget.clone()),
            "{name}"
        );
        assert_eq!(answers[5]["structured"], by_id, "{name}");
        assert_eq!(
            comparable(answers[6]["structured"].clone()),
            comparable(page.clone()),
            "{name}"
        );
        let past = answers[7]["text"].as_str().unwrap();
        assert!(past.starts_with("No more sections"), "{name}: {past}");
        let bare = answers[8]["text"].as_str().unwrap();
        assert!(
            answers[8]["error"] == true && bare.contains("path#anchor"),
            "{name}: {bare}"
        );
    }
    assert_eq!(cli_by_id, by_id, "the CLI");
    assert_eq!(cli_heading, heading, "the CLI");
    assert_eq!(cli_lines, lines, "the CLI");
    assert_eq!(comparable(cli_page), comparable(page.clone()), "the CLI");
    // The section read by its id is the hit's own lines, with its neighbours.
    let linux = &search["hits"].as_array().unwrap()[1];
    assert_eq!(linux["id"], "docs/guide/install.md#linux", "{search}");
    assert_eq!(by_id["line_start"], linux["line_start"], "{by_id}");
    assert_eq!(by_id["line_end"], linux["line_end"], "{by_id}");
    assert!(
        by_id["previous"]["id"].is_string() && by_id["next"]["id"].is_string(),
        "{by_id}"
    );
    // The second page is the second hit.
    assert_eq!(page["hits"][0], search["hits"][1], "{page}");
    assert_eq!(page["next_offset"], 2, "{page}");
    assert_eq!(comparable(cli), search, "the CLI");
    assert_eq!(
        comparable(cli_budget),
        comparable(budget.clone()),
        "the CLI"
    );

    // The budget was kept, and the answer says what it left out.
    assert_eq!(budget["truncated"], true, "{budget}");
    let hits = budget["hits"].as_array().unwrap();
    assert!(!hits.is_empty() && hits.len() < 3, "{budget}");
    assert!(budget.to_string().len() / 4 <= 150 + 60, "{budget}");
}

#[test]
fn read_shows_a_section_and_names_what_is_wrong() {
    let t = with_fixtures();
    let text = t.ok(&["read", "docs/guide/install.md#linux"]);
    let first = text.lines().next().unwrap();
    assert!(
        first.starts_with("docs/guide/install.md:9-17 of ")
            && first.ends_with("[docs/guide/install.md#linux]"),
        "{text}"
    );
    assert!(text.contains("./install.sh --dry-run"), "{text}");
    assert!(text.contains("\nnext: docs/guide/install.md#"), "{text}");
    let cut = t.ok(&["read", "docs/guide/install.md", "--max-tokens", "10"]);
    assert!(cut.contains("read on with --lines "), "{cut}");
    let head = t.ok(&["read", "docs/guide/install.md", "--lines", "-2"]);
    assert!(head.starts_with("docs/guide/install.md:1-2 of "), "{head}");
    // A file name with '#' in it, by its path and by its id.
    std::fs::write(
        t.project.join("docs/c#.md"),
        "# Sharp

sharp words
",
    )
    .unwrap();
    let by_path = t.ok(&["read", "docs/c#.md"]);
    assert!(by_path.contains("sharp words"), "{by_path}");
    let by_id = t.ok(&["read", "docs/c#.md#sharp"]);
    assert!(by_id.starts_with("docs/c#.md:1-3 of 3"), "{by_id}");
    // Hits show their ids in text too.
    let hits = t.ok(&["query", "sharp"]);
    assert!(
        hits.lines().next().unwrap().ends_with("  docs/c#.md#sharp"),
        "{hits}"
    );

    // The same refusals standalone and through a resident.
    let bad: [(&[&str], &str); 4] = [
        (
            &["read", "docs/guide/install.md#nope"],
            "docs/guide/install.md#linux",
        ),
        (&["read", "../../etc/passwd"], "no document"),
        (
            &["read", "docs/guide/install.md", "--lines", "0-3"],
            "--lines",
        ),
        (
            &["read", "docs/guide/install.md#linux", "--heading", "X"],
            "section id",
        ),
    ];
    let errors = |t: &TestEnv| -> Vec<String> {
        bad.iter()
            .map(|(args, says)| {
                let out = t.run(args);
                let err = String::from_utf8_lossy(&out.stderr).into_owned();
                assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
                assert!(err.contains(says), "{args:?}: {err}");
                err
            })
            .collect()
    };
    let standalone = errors(&t);
    t.ok(&["start"]);
    assert_eq!(errors(&t), standalone);
    // A parameter given twice is refused, as an unknown one is.
    let rt = t.runtime();
    let bearer = format!("Authorization: Bearer {}", rt["token"].as_str().unwrap());
    for path in [
        "/query?q=sharp&q=words",
        "/documents/docs/c%23.md?start=1&start=2",
        "/query?q=sharp&limt=3",
    ] {
        let r = get(&addr_of(&rt), path, &[&bearer]);
        assert_eq!(
            (r.status, r.json()["code"].clone()),
            (400, "bad_parameter".into()),
            "{path}"
        );
    }
    assert_eq!(t.ok(&["read", "docs/guide/install.md#linux"]), text);
    t.ok(&["stop"]);
}
