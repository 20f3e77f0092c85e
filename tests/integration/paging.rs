//! Pages of `/query` and `doc-serve query --offset`, and pieces of one section that
//! overlap answered as one hit.

use std::time::Duration;

use serde_json::{Value, json};

use crate::util::*;

/// Six short files and a long section that the chunk settings cut into two pieces
/// sharing lines: seven hits for "gizmo".
fn project() -> TestEnv {
    let mut t = TestEnv::new();
    let docs = t.project.join("docs");
    std::fs::create_dir_all(&docs).unwrap();
    let mut long = String::from("# Long\n\n");
    for i in 0..8 {
        long.push_str(&format!("gizmo alpha{i} beta gamma\n"));
    }
    std::fs::write(docs.join("long.md"), long).unwrap();
    for i in 0..6 {
        std::fs::write(
            docs.join(format!("f{i}.md")),
            format!("# F{i}\n\nA gizmo in file {i}.\n"),
        )
        .unwrap();
    }
    t.set("DOC_SERVE_CHUNK_SIZE", "20");
    t.set("DOC_SERVE_CHUNK_OVERLAP", "6");
    t
}

/// Each hit's path and score.
fn hits(v: &Value) -> Vec<(String, f64)> {
    v["hits"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| {
            let path = h["path"].as_str().unwrap().to_owned();
            (path, h["score"].as_f64().unwrap())
        })
        .collect()
}

#[test]
fn query_pages_have_no_overlap_and_no_gap() {
    let mut t = project();
    // Standalone first (it builds the index).
    let whole = t.json(&["query", "--json", "-n", "100", "gizmo"]);
    let all = hits(&whole);
    assert_eq!(all.len(), 7, "{whole}");
    assert_eq!(
        (&whole["offset"], &whole["next_offset"]),
        (&json!(0), &Value::Null)
    );
    assert_eq!(whole["total_matches"], 8, "both pieces match: {whole}");
    // The two pieces of the long section are one hit, of both their lines.
    let long: Vec<&Value> = whole["hits"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|h| h["path"] == "docs/long.md")
        .collect();
    assert_eq!(long.len(), 1, "{whole}");
    assert_eq!(
        (&long[0]["line_start"], &long[0]["line_end"]),
        (&json!(1), &json!(10))
    );

    let page = t.json(&["query", "--json", "-n", "2", "--offset", "2", "gizmo"]);
    assert_eq!(hits(&page), all[2..4], "{page}");
    assert_eq!(
        (&page["offset"], &page["next_offset"]),
        (&json!(2), &json!(4))
    );
    let text = t.ok(&["query", "-n", "2", "--offset", "2", "gizmo"]);
    assert!(text.ends_with("more: --offset 4\n"), "{text}");
    let text = t.ok(&["query", "-n", "2", "--offset", "6", "gizmo"]);
    assert!(!text.contains("more:"), "the last page: {text}");
    // Past the end: nothing on stdout, the reason on stderr.
    let out = t.run(&["query", "--offset", "7", "gizmo"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(out.stdout.is_empty(), "{out:?}");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("no results for \"gizmo\" past 7"), "{err}");

    // The resident gives the same pages.
    t.spawn_serve(&[]);
    let rt = t.wait_runtime(Duration::from_secs(15));
    let addr = addr_of(&rt);
    let auth = format!("Authorization: Bearer {}", rt["token"].as_str().unwrap());
    let query = |qs: &str| get(&addr, &format!("/query?q=gizmo&{qs}"), &[&auth]);
    wait_for(Duration::from_secs(20), "the index", || {
        let v = query("limit=100").json();
        (v["index"]["indexing"] == false).then_some(())
    });
    let mut paged = Vec::new();
    for offset in [0, 2, 4, 6] {
        let r = query(&format!("limit=2&offset={offset}"));
        assert_eq!(r.status, 200, "{r:?}");
        let v = r.json();
        let next = if offset < 6 {
            json!(offset + 2)
        } else {
            Value::Null
        };
        assert_eq!(
            (&v["offset"], &v["next_offset"]),
            (&json!(offset), &next),
            "{v}"
        );
        paged.extend(hits(&v));
    }
    assert_eq!(paged, all);
    let body = r#"{"q": "gizmo", "limit": 2, "offset": 2}"#;
    let post = raw(
        &addr,
        format!(
            "POST /query HTTP/1.1\r\nHost: {addr}\r\n{auth}\r\nContent-Length: {}\r\n\
             Connection: close\r\n\r\n{body}",
            body.len()
        )
        .as_bytes(),
    );
    assert_eq!(post.status, 200, "{post:?}");
    assert_eq!(hits(&post.json()), all[2..4]);
    let cli = t.json(&["query", "--json", "-n", "2", "--offset", "2", "gizmo"]);
    assert_eq!(hits(&cli), all[2..4], "delegated: {cli}");

    // Offsets that are no number, and pages past the deepest, are refused.
    for (qs, code) in [
        ("offset=-1", "bad_parameter"),
        ("offset=x", "bad_parameter"),
        ("offset=99999999999999999999999", "bad_parameter"),
        ("offset=9999&limit=2", "bad_query"),
    ] {
        let r = query(qs);
        assert_eq!(
            (r.status, r.json()["code"].as_str()),
            (400, Some(code)),
            "{qs}"
        );
    }
    let r = query("offset=9999&limit=2").json();
    assert!(
        r["message"].as_str().unwrap().contains("offset 9999"),
        "{r}"
    );
}
