//! [`super::render`] on texts: every tag and its extras, links by scheme, raw HTML,
//! lines, heading ids against the outline, hostile nesting and sizes.

use std::time::{Duration, Instant};

use pulldown_cmark::LinkType;
use serde_json::{Value, json};

use super::link::{Target, classify};
use super::tree::{MAX_DEPTH, MAX_NODES};
use super::*;

fn rendered(path: &str, text: &str, anchor: Option<&str>) -> Value {
    serde_json::to_value(render(path, text, anchor).unwrap()).unwrap()
}

/// The blocks of `text` as docs/sub/a.md.
fn blocks(text: &str) -> Value {
    rendered("docs/sub/a.md", text, None)["blocks"].clone()
}

/// Every node of `v`, depth first, without recursion.
fn nodes(v: &Value) -> Vec<&Value> {
    let mut out = Vec::new();
    let mut todo: Vec<&Value> = v
        .as_array()
        .map(|a| a.iter().rev().collect())
        .unwrap_or_default();
    while let Some(n) = todo.pop() {
        out.push(n);
        if let Some(c) = n["c"].as_array() {
            todo.extend(c.iter().rev());
        }
    }
    out
}

fn tags(v: &Value) -> Vec<&str> {
    nodes(v)
        .into_iter()
        .filter_map(|n| n["t"].as_str())
        .collect()
}

/// The first node tagged `t`.
fn first<'v>(v: &'v Value, t: &str) -> &'v Value {
    nodes(v)
        .into_iter()
        .find(|n| n["t"] == t)
        .unwrap_or_else(|| panic!("no {t} in {v}"))
}

const ALL: &str = "\
# Title

Some *em*, **strong**, ~~del~~, `code`, a [link](https://example.org), a line\\
break, an image ![alt *text*](https://example.org/i.png) and a note[^n].

> quoted

```rust
fn main() {}
```

- one
- [x] done
- [ ] todo

3. three
4. four

| a | b | c |
|:--|:-:|--:|
| 1 | 2 | 3 |

***

<div>raw</div>

[^n]: The note.
";

#[test]
fn every_tag() {
    let b = blocks(ALL);
    let mut seen = tags(&b);
    seen.sort_unstable();
    seen.dedup();
    // Every tag but the smaller headings, which come next.
    let mut want: Vec<&str> = super::TAGS
        .iter()
        .copied()
        .filter(|t| !["h2", "h3", "h4", "h5", "h6"].contains(t))
        .collect();
    want.sort_unstable();
    assert_eq!(seen, want, "{b:#}");
    for (level, t) in (1..=6).zip(["h1", "h2", "h3", "h4", "h5", "h6"]) {
        let h = blocks(&format!("{} x\n", "#".repeat(level)));
        assert_eq!(h[0]["t"], t);
    }
    // The extras.
    assert_eq!(first(&b, "pre")["lang"], "rust");
    assert_eq!(first(&b, "pre")["c"], json!(["fn main() {}\n"]));
    assert_eq!(first(&b, "ol")["start"], 3);
    let tasks: Vec<&Value> = nodes(&b).into_iter().filter(|n| n["t"] == "task").collect();
    assert_eq!(
        (&tasks[0]["checked"], &tasks[1]["checked"]),
        (&json!(true), &json!(false))
    );
    let aligns: Vec<&Value> = nodes(&b)
        .into_iter()
        .filter(|n| n["t"] == "th" || n["t"] == "td")
        .map(|n| &n["align"])
        .collect();
    let want = ["left", "center", "right"];
    assert_eq!(
        aligns,
        want.iter()
            .chain(&want)
            .map(|a| json!(a))
            .collect::<Vec<_>>()
            .iter()
            .collect::<Vec<_>>()
    );
    assert_eq!(first(&b, "thead")["c"][0]["t"], "tr");
    assert_eq!(first(&b, "tbody")["c"][0]["c"][0]["c"], json!(["1"]));
    assert_eq!(
        first(&b, "image"),
        &json!({"t": "image", "alt": "alt text", "src": "https://example.org/i.png"})
    );
    assert_eq!(first(&b, "sup"), &json!({"t": "sup", "c": ["[n]"]}));
    assert_eq!(first(&b, "raw")["c"], json!(["<div>raw</div>\n"]));
    // Text is merged, breaks are kept.
    assert_eq!(first(&b, "em")["c"], json!(["em"]));
    let p = &b[1]["c"];
    assert_eq!(p[0], "Some ");
}

#[test]
fn every_block_has_its_line() {
    let b = blocks(ALL);
    let block = [
        "p",
        "h1",
        "blockquote",
        "pre",
        "ul",
        "ol",
        "li",
        "table",
        "thead",
        "tbody",
        "tr",
        "th",
        "td",
        "hr",
    ];
    for n in nodes(&b) {
        if let Some(t) = n["t"].as_str()
            && block.contains(&t)
        {
            assert!(n["line"].as_u64().is_some_and(|l| l >= 1), "{n}");
        }
    }
    let line = |t| first(&b, t)["line"].as_u64().unwrap();
    assert_eq!(line("h1"), 1);
    assert_eq!(line("blockquote"), 6);
    assert_eq!(line("pre"), 8);
    assert_eq!(line("ul"), 12);
    assert_eq!(line("ol"), 16);
    assert_eq!(line("table"), 19);
    assert_eq!(line("tbody"), 21);
    assert_eq!(line("hr"), 23);
    assert_eq!(line("raw"), 25);
}

#[test]
fn lines_count_as_the_chunker_counts_them() {
    // `\n`, `\r\n` and a lone `\r` each end a line.
    let b = blocks("a\r\n\r\nb\r\rc\n\n# d\n");
    assert_eq!(b[0]["line"], 1);
    assert_eq!(b[1]["line"], 3);
    assert_eq!(b[2]["line"], 5);
    assert_eq!(b[3]["line"], 7);
    // In a blockquote and a list, from where the block starts.
    let b = blocks("x\n\n> a\n>\n> b\n\n- c\n\n  d\n");
    let ps: Vec<u64> = nodes(&b)
        .into_iter()
        .filter(|n| n["t"] == "p")
        .map(|n| n["line"].as_u64().unwrap())
        .collect();
    assert_eq!(ps, [1, 3, 5, 7, 9]);
}

#[test]
fn heading_ids_are_the_outlines() {
    let text = "---\ntitle: T\n---\n\n# Guide\n\nintro\n\nInstall\n-------\n\nsteps\n\n\
                ## Usage ##\n\n```\n# not a heading\n```\n\nSetext two\nlines\n===\n\n\
                > # quoted\n\n### Install\n";
    let v = rendered("docs/g.md", text, None);
    let outline = v["outline"].as_array().unwrap();
    let hs: Vec<&Value> = nodes(&v["blocks"])
        .into_iter()
        .filter(|n| {
            n["t"]
                .as_str()
                .is_some_and(|t| t.len() == 2 && t.starts_with('h'))
        })
        .collect();
    assert_eq!(hs.len(), 6, "{v:#}");
    let mut matched = 0;
    for h in &hs {
        let section = outline.iter().find(|s| s["line_start"] == h["line"]);
        match section {
            Some(s) if !s["headings"].as_array().unwrap().is_empty() || s["level"] != 0 => {
                assert_eq!(h["id"], s["id"], "{h}");
                matched += 1;
            }
            _ => assert!(h.get("id").is_none(), "{h}"),
        }
    }
    // Every outline section with a heading is matched by one heading in the tree.
    let headed = outline.iter().filter(|s| s["level"] != 0).count();
    assert_eq!(matched, headed, "{v:#}");
    let ids: Vec<&str> = hs.iter().filter_map(|h| h["id"].as_str()).collect();
    assert_eq!(
        ids,
        [
            "docs/g.md#guide",
            "docs/g.md#install",
            "docs/g.md#usage",
            "docs/g.md#setext-two-lines",
            "docs/g.md#install-1",
        ]
    );
    // The setext heading is the line of its text, not of its underline.
    assert_eq!(hs[1]["line"], 9);
    assert_eq!(hs[1]["t"], "h2");
    assert_eq!(hs[3]["line"], 20);
    // The front matter is a pre, not a rule and a heading.
    assert_eq!(
        v["blocks"][0],
        json!({"t": "pre", "line": 1, "c": ["title: T\n"]})
    );
    assert_eq!(outline[0]["title"], "Guide");
    // The front matter's title is the document's: the trail shown starts at Guide.
    assert_eq!(outline[0]["headings"], json!(["Guide"]));
    assert_eq!(outline[1]["headings"], json!(["Guide", "Install"]));
    assert_eq!(outline[1]["level"], 2);
}

/// The `a` node a link to `dest` makes in docs/sub/a.md, or the paragraph's text when
/// it makes none.
fn link(dest: &str) -> Value {
    let b = blocks(&format!("[t]({dest})\n"));
    b[0]["c"][0].clone()
}

#[test]
fn links_keep_only_web_and_mail_addresses() {
    for dest in [
        "http://example.org/a?b#c",
        "https://example.org",
        "HTTPS://example.org",
        "mailto:someone@example.org",
    ] {
        assert_eq!(
            link(dest),
            json!({"t": "a", "href": dest, "c": ["t"]}),
            "{dest}"
        );
    }
    for dest in [
        "javascript:alert(1)",
        "JaVaScRiPt:alert(1)",
        "&#106;avascript:alert(1)",
        "&#x6A;avascript&#58;alert(1)",
        "java&#9;script:alert(1)",
        "<%20javascript:alert(1)>",
        "< javascript:alert(1)>",
        "javascript&colon;alert(1)",
        "data:text/html,<script>alert(1)</script>",
        "vbscript:msgbox(1)",
        "file:///etc/passwd",
        "ftp://example.org",
        "//evil.example/x",
        "\\\\evil.example\\x",
        "/\\evil.example",
        "../../../outside.md",
        "/../x.md",
    ] {
        assert_eq!(link(dest), json!("t"), "{dest}");
    }
    // Autolinks.
    assert_eq!(
        blocks("<https://example.org>")[0]["c"][0]["href"],
        "https://example.org"
    );
    assert_eq!(
        blocks("<someone@example.org>")[0]["c"][0]["href"],
        "mailto:someone@example.org"
    );
    assert_eq!(
        blocks("<javascript:alert(1)>")[0]["c"],
        json!(["javascript:alert(1)"])
    );
    // A reference's destination is judged the same.
    let b = blocks("[t][r] and [r]\n\n[r]: jAvascript:alert(1)\n");
    assert!(!tags(&b).contains(&"a"), "{b}");
}

#[test]
fn relative_links_are_project_paths() {
    let doc = |doc: &str, anchor: Option<&str>| {
        let mut a = json!({"t": "a", "doc": doc, "c": ["t"]});
        if let Some(anchor) = anchor {
            a["anchor"] = json!(anchor);
        }
        a
    };
    assert_eq!(link("../x.md#a"), doc("docs/x.md", Some("a")));
    assert_eq!(link("b.md"), doc("docs/sub/b.md", None));
    assert_eq!(link("./c/./d.md?x=1#"), doc("docs/sub/c/d.md", None));
    assert_eq!(link("#install"), doc("docs/sub/a.md", Some("install")));
    assert_eq!(link("/README.md"), doc("README.md", None));
    assert_eq!(link("../../top.md"), doc("top.md", None));
    assert_eq!(link("my%20file.md"), doc("docs/sub/my file.md", None));
    assert_eq!(link("a/b:c.md"), doc("docs/sub/a/b:c.md", None));
    // `..` past the root, a control character once decoded, nothing left: no link.
    for dest in [
        "../../../x.md",
        "../../..",
        "../../../",
        "x%0A.md",
        "x%00.md",
        "#%0a",
    ] {
        assert_eq!(link(dest), json!("t"), "{dest}");
    }
}

#[test]
fn classify_refuses_what_markdown_cannot_write() {
    let here = "a.md";
    for dest in [
        "",
        " javascript:x",
        "\u{a0}javascript:x",
        "\tjavascript:x",
        "java\nscript:x",
        "\u{1}https://x",
    ] {
        assert_eq!(classify(dest, LinkType::Inline, here), None, "{dest:?}");
    }
    assert_eq!(
        classify("x@y.z", LinkType::Email, here),
        Some(Target::Href("mailto:x@y.z".into()))
    );
}

#[test]
fn raw_html_is_only_text_in_raw_nodes() {
    let text = "<script>alert(1)</script>\n\nA <img src=x onerror=alert(1)> b <b>c</b>\n\n\
                # <script>x</script>\n\n<!-- note -->\n";
    let b = blocks(text);
    assert_eq!(
        b[0],
        json!({"t": "raw", "line": 1, "c": ["<script>alert(1)</script>\n"]})
    );
    assert_eq!(
        b[1]["c"],
        json!(["A ", {"t": "raw", "c": ["<img src=x onerror=alert(1)>"]}, " b ",
               {"t": "raw", "c": ["<b>"]}, "c", {"t": "raw", "c": ["</b>"]}])
    );
    assert_eq!(b[2]["t"], "h1");
    assert_eq!(
        b[2]["c"],
        json!([{"t": "raw", "c": ["<script>"]}, "x", {"t": "raw", "c": ["</script>"]}])
    );
    // Every `<` of the source is in the text of a raw node.
    for n in b.as_array().unwrap().iter().chain(nodes(&b)) {
        if n["t"] != "raw" {
            for c in n["c"].as_array().into_iter().flatten() {
                assert!(c.as_str().is_none_or(|s| !s.contains('<')), "{n}");
            }
        }
    }
}

#[test]
fn images_are_alt_text_and_an_address() {
    let image = |text: &str| first(&blocks(text), "image").clone();
    assert_eq!(
        image("![a `b` ![c](d.png)](https://x/i.png)"),
        json!({"t": "image", "alt": "a b c", "src": "https://x/i.png"})
    );
    assert_eq!(
        image("![a](javascript:alert(1))"),
        json!({"t": "image", "alt": "a"})
    );
    assert_eq!(
        image("![a](data:image/png;base64,AAAA)"),
        json!({"t": "image", "alt": "a"})
    );
    assert_eq!(
        image("![a](mailto:x@y.z)"),
        json!({"t": "image", "alt": "a"})
    );
    assert_eq!(
        image("![a](../i.png)"),
        json!({"t": "image", "alt": "a", "src": "../i.png"})
    );
    // A link around an image keeps it.
    let b = blocks("[![a](https://x/i.png)](https://x)");
    assert_eq!(b[0]["c"][0]["c"][0]["t"], "image");
}

#[test]
fn other_constructs() {
    // Math is code; a fence's info is a language only when it is a plain name.
    let b = blocks("$x^2$ and\n\n$$\ny\n$$\n\n```js {.x}\n1\n```\n\n```<script>\n2\n```\n");
    assert_eq!(b[0]["c"][0], json!({"t": "code", "c": ["x^2"]}));
    assert_eq!(b[1]["c"][0], json!({"t": "code", "c": ["\ny\n"]}));
    assert_eq!(b[2]["lang"], "js");
    assert!(b[3].get("lang").is_none(), "{}", b[3]);
    // GitHub's alerts show their kind.
    let b = blocks("> [!WARNING]\n> careful\n");
    assert_eq!(
        b[0]["c"][0],
        json!({"t": "p", "line": 1, "c": [{"t": "strong", "c": ["Warning"]}]})
    );
    // A footnote's definition is a quote led by its label.
    let b = blocks("a[^1]\n\n[^1]: one\n");
    assert_eq!(b[1]["t"], "blockquote");
    assert_eq!(b[1]["c"][0], json!({"t": "sup", "c": ["[1]"]}));
    // Indented code, and an empty document.
    assert_eq!(
        blocks("    x\n")[0],
        json!({"t": "pre", "line": 1, "c": ["x\n"]})
    );
    assert_eq!(blocks(""), json!([]));
}

#[test]
fn other_formats_are_text_by_section() {
    let rst = "Title\n=====\n\nintro\n\nPart\n----\n\nbody\n";
    let v = rendered("docs/a.rst", rst, None);
    assert_eq!(v["format"], "text");
    let ids: Vec<&Value> = v["outline"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| &s["id"])
        .collect();
    assert_eq!(ids, [&json!("docs/a.rst#title"), &json!("docs/a.rst#part")]);
    assert_eq!(
        v["blocks"],
        json!([
            {"t": "pre", "line": 1, "c": ["Title\n=====\n\nintro"]},
            {"t": "pre", "line": 6, "c": ["Part\n----\n\nbody"]},
        ])
    );
    let v = rendered("notes.txt", "<script>x</script>\nb\n", None);
    assert_eq!(
        v["blocks"],
        json!([{"t": "pre", "line": 1, "c": ["<script>x</script>\nb"]}])
    );
    assert_eq!(
        (&v["total_lines"], &v["truncated"]),
        (&json!(2), &json!(false))
    );
}

#[test]
fn a_large_file_renders_one_section() {
    let filler = "word ".repeat(200) + "\n\n";
    let body = filler.repeat(WHOLE_MAX / filler.len() / 2 + 1);
    let text = format!("# One\n\n{body}# Two\n\n{body}# Three\n\nlast\n");
    assert!(text.len() > WHOLE_MAX);
    let v = rendered("big.md", &text, Some("two"));
    assert_eq!(v["truncated"], true);
    let hs: Vec<&Value> = nodes(&v["blocks"])
        .into_iter()
        .filter(|n| n["t"] == "h1")
        .collect();
    assert_eq!(hs.len(), 1);
    assert_eq!(hs[0]["id"], "big.md#two");
    let two = v["outline"][1]["line_start"].clone();
    assert_eq!(hs[0]["line"], two);
    assert_eq!(v["outline"].as_array().unwrap().len(), 3);
    // Without a section, the first; the anchor alone does too.
    let v = rendered("big.md", &text, None);
    assert_eq!(first(&v["blocks"], "h1")["id"], "big.md#one");
    assert_eq!(
        first(&rendered("big.md", &text, Some("three"))["blocks"], "p")["c"],
        json!(["last"])
    );
    // A section over the limit is cut after as much of it as fits.
    let huge = format!("# Huge\n\n{}", "x".repeat(WHOLE_MAX * 2));
    let v = rendered("huge.md", &huge, None);
    let p = first(&v["blocks"], "p")["c"][0].as_str().unwrap().len();
    assert_eq!(p, WHOLE_MAX - "# Huge\n\n".len());
    let v = rendered("huge.txt", &format!("é{}", "é".repeat(WHOLE_MAX)), None);
    assert!(v["blocks"][0]["c"][0].as_str().unwrap().len() <= WHOLE_MAX);
    // An unknown section is refused, whatever the size.
    for text in [text.as_str(), "# One\n"] {
        let e = render("big.md", text, Some("nope")).unwrap_err();
        assert_eq!(e.code(), "no_such_section");
    }
}

/// The depth of `v`'s tree, counted without recursion.
fn depth(v: &Value) -> usize {
    let mut deepest = 0;
    let mut todo: Vec<(&Value, usize)> = v.as_array().unwrap().iter().map(|n| (n, 1)).collect();
    while let Some((n, d)) = todo.pop() {
        deepest = deepest.max(d);
        for c in n["c"].as_array().into_iter().flatten() {
            todo.push((c, d + 1));
        }
    }
    deepest
}

#[test]
fn hostile_nesting_stays_shallow() {
    let n = 100_000;
    for text in [
        ">".repeat(n) + " x",
        "- ".repeat(n) + "x",
        "1. ".repeat(n) + "x",
        format!("{}x{}", "*".repeat(n), "*".repeat(n)),
        format!("{}x{}", "[".repeat(n), "](a.md)".repeat(n)),
        format!("{}x{}", "![".repeat(n), "](a.png)".repeat(n)),
        "> - ".repeat(n) + "x",
        (0..2000)
            .map(|i| format!("{}- x\n", "  ".repeat(i)))
            .collect(),
    ] {
        let started = Instant::now();
        let r = render("deep.md", &text, None).unwrap();
        let bytes = serde_json::to_vec(&r).unwrap();
        // Read back with serde_json's default depth limit, as a client would.
        let v: Value = serde_json::from_slice(&bytes).unwrap();
        assert!(depth(&v["blocks"]) <= MAX_DEPTH + 1, "{}", &text[..20]);
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "{}",
            &text[..20]
        );
    }
}

#[test]
fn node_count_is_bounded() {
    let text = "*a* ".repeat(MAX_NODES);
    let r = render("many.md", &text, None).unwrap();
    assert!(r.truncated);
    let v = serde_json::to_value(&r).unwrap();
    assert!(nodes(&v["blocks"]).len() <= MAX_NODES + MAX_DEPTH * 3);
    assert!(!render("few.md", "*a* b", None).unwrap().truncated);
}
