//! `/render/{path}` through the real binary, on a resident and on the shared daemon: a
//! doc full of XSS payloads renders inert (no link but http, https, mailto or a project
//! path; raw HTML only as the text of raw nodes), its heading ids read back through
//! `/documents`, and what `/documents` refuses (missing files, files that are no
//! documents, paths climbing out of the root) `/render` refuses the same way.

use std::time::Duration;

use serde_json::{Value, json};

use crate::shared::{start_daemon, write_shared_config};
use crate::util::*;

const XSS: &str = "\
# <script>alert(1)</script>

<script>alert(2)</script>

<img src=x onerror=alert(3)>

Text <img src=x onerror=alert(4)> inline, <svg onload=alert(5)>.

[a](javascript:alert(6)) [b](JaVaScRiPt:alert(7)) [c](&#106;avascript:alert(8))
[d](< javascript:alert(9)>) [e](data:text/html,<script>alert(10)</script>)
[f](vbscript:msgbox(11)) [g](file:///etc/passwd) [h](java&#9;script:alert(12))
[ok](https://example.org) [mail](mailto:a@example.org) [doc](other.md#part)
[up](../../../etc/passwd) [ref][r] <javascript:alert(13)>

![x](javascript:alert(14)) ![y](data:image/svg+xml,<svg/onload=alert(15)>)

## Second <b onclick=alert(16)>bold</b>

<a href=\"javascript:alert(17)\">raw link</a>

Setext <i>heading</i>
---

[r]: javascript:alert(18)
";

/// The tags and fields a node may have (README, \"HTTP API\").
const TAGS: &[&str] = &[
    "p",
    "h1",
    "h2",
    "h3",
    "h4",
    "h5",
    "h6",
    "blockquote",
    "pre",
    "code",
    "ul",
    "ol",
    "li",
    "table",
    "thead",
    "tbody",
    "tr",
    "th",
    "td",
    "em",
    "strong",
    "del",
    "br",
    "hr",
    "a",
    "sup",
    "task",
    "raw",
    "image",
];
const FIELDS: &[&str] = &[
    "t", "line", "c", "id", "start", "align", "lang", "checked", "href", "doc", "anchor", "alt",
    "src",
];

/// Every node of `blocks` in document order, with its parent's tag ("" at the top).
fn nodes(blocks: &Value) -> Vec<(&Value, &str)> {
    let mut out = Vec::new();
    let mut todo: Vec<(&Value, &str)> = blocks
        .as_array()
        .unwrap()
        .iter()
        .rev()
        .map(|n| (n, ""))
        .collect();
    while let Some((n, parent)) = todo.pop() {
        out.push((n, parent));
        let t = n["t"].as_str().unwrap_or_default();
        for c in n["c"].as_array().into_iter().flatten().rev() {
            todo.push((c, t));
        }
    }
    out
}

/// What makes the tree inert: allowed tags and fields only, no address but http, https
/// or mailto, no image address but http(s) or relative, markup only in raw nodes.
fn assert_inert(v: &Value) {
    for (n, parent) in nodes(&v["blocks"]) {
        if let Some(text) = n.as_str() {
            // Text is shown as text; still, the fixture's markup is all in raw nodes.
            assert!(
                !text.contains('<') || parent == "raw",
                "{text:?} in {parent}"
            );
            continue;
        }
        let fields = n.as_object().unwrap();
        for k in fields.keys() {
            assert!(FIELDS.contains(&k.as_str()), "{k} in {n}");
        }
        let t = n["t"].as_str().unwrap();
        assert!(TAGS.contains(&t), "{n}");
        if let Some(href) = n.get("href") {
            let href = href.as_str().unwrap().to_ascii_lowercase();
            assert!(
                ["http:", "https:", "mailto:"]
                    .iter()
                    .any(|s| href.starts_with(s)),
                "{n}"
            );
            assert_eq!(t, "a");
        }
        if let Some(src) = n.get("src") {
            let src = src.as_str().unwrap().to_ascii_lowercase();
            assert!(src.starts_with("http") || !src.contains(':'), "{n}");
        }
        if t == "raw" {
            assert!(n["c"].as_array().unwrap().iter().all(Value::is_string));
        }
    }
}

/// A started server's address and a GET with its token.
struct Server {
    addr: String,
    auth: String,
}

impl Server {
    fn get(&self, target: &str) -> Reply {
        get(&self.addr, target, &[&self.auth])
    }

    fn ok(&self, target: &str) -> Value {
        let r = self.get(target);
        assert_eq!(r.status, 200, "{target}: {r:?}");
        r.json()
    }

    fn refused(&self, target: &str, status: u16, code: &str) -> Reply {
        let r = self.get(target);
        assert_eq!(
            (r.status, r.json()["code"].as_str()),
            (status, Some(code)),
            "{target}: {r:?}"
        );
        r
    }
}

fn project(t: &TestEnv) {
    let docs = t.project.join("docs/sub");
    std::fs::create_dir_all(&docs).unwrap();
    std::fs::write(docs.join("xss.md"), XSS).unwrap();
    std::fs::write(
        docs.join("notes.rst"),
        "Notes\n=====\n\n<script>x</script>\n",
    )
    .unwrap();
    std::fs::write(docs.join("blob.md"), b"# B\n\0\x01binary").unwrap();
    std::fs::write(t.project.join("main.rs"), "fn main() {}\n").unwrap();
    // Outside the root; "leakedtail" would show only if it were read.
    std::fs::write(t.root().join("secret.md"), "# S\n\nleakedtail\n").unwrap();
}

/// The XSS doc renders inert at `base` (`""` or `/projects/{id}`), its ids read back
/// through `/documents`, and what is no document is refused.
fn renders_inert(s: &Server, base: &str) {
    let v = s.ok(&format!("{base}/render/docs/sub/xss.md"));
    assert_eq!(v["path"], "docs/sub/xss.md");
    assert_eq!(
        (&v["format"], &v["truncated"]),
        (&json!("markdown"), &json!(false))
    );
    assert_eq!(v["total_lines"], XSS.lines().count());
    assert_inert(&v);
    // The markup is there, as text (a link's refused address is left out).
    let all = v["blocks"].to_string();
    for n in [1, 2, 3, 4, 5, 13, 16, 17] {
        assert!(all.contains(&format!("alert({n})")), "alert({n}) left out");
    }
    // Only the allowed links survive.
    let links: Vec<&Value> = nodes(&v["blocks"])
        .into_iter()
        .map(|(n, _)| n)
        .filter(|n| n["t"] == "a")
        .collect();
    assert_eq!(
        links,
        [
            &json!({"t": "a", "href": "https://example.org", "c": ["ok"]}),
            &json!({"t": "a", "href": "mailto:a@example.org", "c": ["mail"]}),
            &json!({"t": "a", "doc": "docs/sub/other.md", "anchor": "part", "c": ["doc"]}),
        ]
    );
    // Every heading's id is a section /documents reads, starting at its line.
    let headings: Vec<&Value> = nodes(&v["blocks"])
        .into_iter()
        .map(|(n, _)| n)
        .filter(|n| n["t"].as_str().is_some_and(|t| t.starts_with('h')))
        .collect();
    assert_eq!(headings.len(), 3, "{v}");
    for h in headings {
        let id = h["id"].as_str().unwrap_or_else(|| panic!("no id: {h}"));
        let doc = s.ok(&format!(
            "{base}/documents/?section={}",
            id.replace('#', "%23")
        ));
        assert_eq!((&doc["id"], &doc["line_start"]), (&h["id"], &h["line"]));
    }
    // And so is every section of the outline, with the same lines.
    for o in v["outline"].as_array().unwrap() {
        let id = o["id"].as_str().unwrap().replace('#', "%23");
        let doc = s.ok(&format!("{base}/documents/?section={id}"));
        assert_eq!(
            (&doc["line_start"], &doc["line_end"], &doc["headings"]),
            (&o["line_start"], &o["line_end"], &o["headings"])
        );
    }
    // A section by its id or its anchor; one of another file is refused.
    let second = &v["outline"][1]["id"].as_str().unwrap().replace('#', "%23");
    let by_id = s.ok(&format!("{base}/render/docs/sub/xss.md?section={second}"));
    assert_eq!(by_id["blocks"], v["blocks"]);
    s.refused(
        &format!("{base}/render/docs/sub/xss.md?section=other.md%23top"),
        400,
        "bad_parameter",
    );
    s.refused(
        &format!("{base}/render/docs/sub/xss.md?section=nope"),
        404,
        "no_such_section",
    );
    for bad in ["heading=x", "section=", "section=a&section=b", "start=1"] {
        s.refused(
            &format!("{base}/render/docs/sub/xss.md?{bad}"),
            400,
            "bad_parameter",
        );
    }
    // Other formats: text, one pre per section.
    let rst = s.ok(&format!("{base}/render/docs/sub/notes.rst"));
    assert_eq!(rst["format"], "text");
    assert_eq!(
        rst["blocks"],
        json!([{"t": "pre", "line": 1, "c": ["Notes\n=====\n\n<script>x</script>"]}])
    );
    // What /documents refuses, /render refuses the same way.
    for path in [
        "docs/sub/missing.md",
        "docs/sub/blob.md",
        "main.rs",
        ".claude/doc-serve/runtime.json",
        "..%2Fsecret.md",
        "..%2f..%2fsecret.md",
        "docs%2F..%2F..%2F..%2Fsecret.md",
        "docs/%2e%2e/%2e%2e/secret.md",
        "%2Fetc%2Fpasswd",
        "docs/sub/xss.md%00",
    ] {
        let documents = s.get(&format!("{base}/documents/{path}"));
        let r = s.refused(&format!("{base}/render/{path}"), 404, "not_found");
        assert_eq!(r.body, documents.body, "{path}");
        assert!(!r.body.contains("leakedtail"), "{path}");
    }
}

#[test]
fn a_resident_renders_docs_inert() {
    let mut t = TestEnv::new();
    project(&t);
    t.spawn_serve(&[]);
    let rt = t.wait_runtime(Duration::from_secs(15));
    let s = Server {
        addr: addr_of(&rt),
        auth: format!("Authorization: Bearer {}", rt["token"].as_str().unwrap()),
    };
    renders_inert(&s, "");
    // Behind the token, as every route but /health.
    let r = get(&s.addr, "/render/docs/sub/xss.md", &[]);
    assert_eq!(r.status, 401);
}

#[test]
fn the_shared_daemon_renders_docs_inert() {
    let mut t = TestEnv::new();
    project(&t);
    write_shared_config(&t, json!({ "port": 0 }));
    let (_, addr, token) = start_daemon(&mut t);
    let s = Server {
        addr,
        auth: format!("Authorization: Bearer {token}"),
    };
    let body = json!({ "root": t.project }).to_string();
    let req = format!(
        "POST /projects HTTP/1.1\r\nHost: {}\r\n{}\r\nConnection: close\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        s.addr,
        s.auth,
        body.len()
    );
    let r = raw(&s.addr, req.as_bytes());
    assert_eq!(r.status, 200, "{r:?}");
    let id = r.json()["id"].as_str().unwrap().to_owned();
    renders_inert(&s, &format!("/projects/{id}"));
    s.refused(
        "/projects/p_00000000/render/docs/sub/xss.md",
        404,
        "unknown_project",
    );
    s.refused("/render/docs/sub/xss.md", 404, "not_found");
}
