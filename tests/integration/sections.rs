//! Section ids, neighbours and budgets through the real binary: a hit's id reads its
//! section back through `/documents?section=`, across edits and reindexing.

use std::time::Duration;

use serde_json::Value;

use crate::util::*;

const GUIDE: &str = "# Guide\n\nIntro.\n\n## Install\n\ninstallword steps\n\n## Usage\n\n\
                     usageword here\n\n### Flags\n\nflagword\n";

/// A resident over a project holding docs/guide.md, and a GET with its token.
struct Resident {
    t: TestEnv,
    addr: String,
    auth: String,
}

impl Resident {
    fn start(guide: &str) -> Resident {
        let mut t = TestEnv::new();
        t.set("DOC_SERVE_DEBOUNCE_MS", "50");
        std::fs::create_dir_all(t.project.join("docs")).unwrap();
        std::fs::write(t.project.join("docs/guide.md"), guide).unwrap();
        t.spawn_serve(&[]);
        let rt = t.wait_runtime(Duration::from_secs(15));
        let auth = format!("Authorization: Bearer {}", rt["token"].as_str().unwrap());
        Resident {
            addr: addr_of(&rt),
            t,
            auth,
        }
    }

    fn get(&self, target: &str) -> Reply {
        get(&self.addr, target, &[&self.auth])
    }

    /// `/documents/docs/guide.md?QUERY`, which must answer 200.
    fn doc(&self, query: &str) -> Value {
        let r = self.get(&format!("/documents/docs/guide.md?{query}"));
        assert_eq!(r.status, 200, "{query}: {r:?}");
        r.json()
    }

    /// The first hit for `word` once `ready` holds for it.
    fn hit_when(&self, word: &str, ready: impl Fn(&Value) -> bool) -> Value {
        wait_for(Duration::from_secs(10), word, || {
            let v = self.get(&format!("/query?q={word}")).json();
            v["hits"].get(0).filter(|h| ready(h)).cloned()
        })
    }
}

/// `?section=` with an id's `#` encoded.
fn by_id(id: &Value) -> String {
    format!("section={}", id.as_str().unwrap().replace('#', "%23"))
}

fn ids(refs: &Value) -> Option<&str> {
    refs["id"].as_str()
}

#[test]
fn a_hits_id_reads_its_section_back_across_edits_and_reindexing() {
    let r = Resident::start(GUIDE);
    let hit = r.hit_when("usageword", |_| true);
    assert_eq!(hit["id"], "docs/guide.md#usage", "{hit}");
    let body = r.get("/query?q=usageword").body;
    assert!(
        body.contains(r#""hits":[{"id":"docs/guide.md#usage","#),
        "id first: {body}"
    );
    let v = r.doc(&by_id(&hit["id"]));
    assert_eq!(v["text"], "## Usage\n\nusageword here", "{v}");
    assert_eq!(
        (&v["line_start"], &v["line_end"]),
        (&hit["line_start"], &hit["line_end"])
    );
    // The trail as the hit gives it (the title is the hit's `title`).
    assert_eq!((&v["id"], &v["headings"]), (&hit["id"], &hit["headings"]));
    assert_eq!(v["headings"], serde_json::json!(["Usage"]));
    assert_eq!(ids(&v["previous"]), Some("docs/guide.md#install"), "{v}");
    assert_eq!(ids(&v["next"]), Some("docs/guide.md#flags"), "{v}");
    assert_eq!(
        (&v["truncated"], &v["next_line"]),
        (&false.into(), &Value::Null)
    );
    // The anchor alone reads the same section, and so does the id alone; the id is
    // held to the rules of every path.
    assert_eq!(r.doc("section=usage")["text"], v["text"]);
    let alone = r.get(&format!("/documents/?{}", by_id(&hit["id"])));
    assert_eq!(alone.json()["text"], v["text"], "{alone:?}");
    for id in [
        "../../etc/passwd%23top",
        "%2Fetc%2Fpasswd%23top",
        ".claude/doc-serve/runtime.json%23top",
    ] {
        let r = r.get(&format!("/documents/?section={id}"));
        assert_eq!(
            (r.status, r.json()["code"].as_str()),
            (404, Some("not_found")),
            "{id}"
        );
    }
    // The neighbours read theirs.
    let next = r.doc(&by_id(&v["next"]["id"]));
    assert_eq!(next["text"], "### Flags\n\nflagword");
    assert_eq!(ids(&next["previous"]), Some("docs/guide.md#usage"));
    assert_eq!(next["next"], Value::Null);
    let prev = r.doc(&by_id(&v["previous"]["id"]));
    assert_eq!(prev["text"], "## Install\n\ninstallword steps");

    // Lines shift above the section: the id stays, and reads the section where it is now.
    let edited = GUIDE
        .replace("# Guide\n", "Preface.\n\n# Guide\n")
        .replace("installword steps", "installword steps\nmore\nand more");
    std::fs::write(r.t.project.join("docs/guide.md"), &edited).unwrap();
    let moved = r.hit_when("usageword", |h| h["line_start"] != hit["line_start"]);
    assert_eq!(moved["id"], hit["id"], "{moved}");
    let v = r.doc(&by_id(&hit["id"]));
    assert_eq!(v["text"], "## Usage\n\nusageword here", "{v}");
    assert_eq!(v["line_start"], moved["line_start"]);
    assert_eq!(ids(&r.doc("start=1&end=1")), Some("docs/guide.md#top"));

    // A full reindex gives the same ids.
    let body = r#"{"full": true}"#;
    let reply = raw(&r.addr, format!("POST /index HTTP/1.1\r\nHost: {}\r\n{}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}", r.addr, r.auth, body.len()).as_bytes());
    assert_eq!(reply.status, 200, "{reply:?}");
    assert_eq!(r.hit_when("usageword", |_| true)["id"], hit["id"]);
    assert_eq!(
        r.hit_when("flagword", |_| true)["id"],
        "docs/guide.md#flags"
    );

    // The section renamed: its old id is a 404 naming the sections there are now.
    std::fs::write(
        r.t.project.join("docs/guide.md"),
        edited.replace("## Usage", "## Using"),
    )
    .unwrap();
    r.hit_when("usageword", |h| h["id"] == "docs/guide.md#using");
    let stale = r.get(&format!("/documents/docs/guide.md?{}", by_id(&hit["id"])));
    assert_eq!(
        (stale.status, stale.json()["code"].as_str()),
        (404, Some("no_such_section"))
    );
    let message = stale.json()["message"].as_str().unwrap().to_owned();
    for id in [
        "docs/guide.md#top",
        "docs/guide.md#install",
        "docs/guide.md#using",
        "docs/guide.md#flags",
    ] {
        assert!(message.contains(id), "{id} not listed: {message}");
    }
}

#[test]
fn max_tokens_cuts_documents_on_line_boundaries() {
    let r = Resident::start(GUIDE);
    let whole = r.doc("");
    let text = whole["text"].as_str().unwrap();
    assert_eq!(
        (&whole["truncated"], &whole["id"]),
        (&false.into(), &"docs/guide.md#guide".into())
    );
    // 9 tokens are 36 bytes of JSON: the first 6 lines take 33 (a line break is `\n`,
    // two bytes), with line 7 they take more.
    let v = r.doc("max_tokens=9");
    let cut = v["text"].as_str().unwrap();
    assert_eq!(cut, "# Guide\n\nIntro.\n\n## Install\n", "{v}");
    assert!(text.starts_with(&format!("{cut}\n")));
    assert_eq!(
        (&v["line_end"], &v["truncated"], &v["next_line"]),
        (&6.into(), &true.into(), &7.into())
    );
    assert_eq!(ids(&v["next"]), Some("docs/guide.md#usage"), "{v}");
    // The rest reads on from next_line; a budget holds at least one line.
    let rest = r.doc("start=7&max_tokens=1000");
    assert_eq!(format!("{cut}\n{}", rest["text"].as_str().unwrap()), text);
    let one = r.doc("section=guide&max_tokens=1");
    assert_eq!(
        (&one["text"], &one["truncated"]),
        (&"# Gu".into(), &true.into())
    );
    assert_eq!(one["next_line"], 2);

    for (query, needle) in [
        (
            "max_tokens=0",
            "max_tokens must be a whole number of at least 1",
        ),
        ("max_tokens=lots", "max_tokens must be a whole number"),
        ("section=usage&heading=Usage", "not more than one"),
        ("section=usage&start=2", "not more than one"),
        ("section=", "section must not be empty"),
        ("section=docs/other.md%23usage", "docs/other.md"),
    ] {
        let v = r.get(&format!("/documents/docs/guide.md?{query}"));
        assert_eq!(
            (v.status, v.json()["code"].as_str()),
            (400, Some("bad_parameter")),
            "{query}"
        );
        let message = v.json()["message"].as_str().unwrap().to_owned();
        assert!(message.contains(needle), "{query}: {message}");
    }
}
