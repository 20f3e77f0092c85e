//! Search by meaning through the real binary: a resident with `embedding_model` set
//! embeds every section in the background, and /query, `doc-serve query` and
//! search_docs rank by words, by meaning or both. Bad model files, a kill mid-embedding,
//! a damaged vector store, a switch of model, odd sections, edits and a deleted data dir
//! leave search by words working and the vectors catching up. The model is the test
//! model (tests/embed/setup, which .ci/run runs); outside CI the tests that need it skip
//! without it, saying so.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::{Value, json};

use crate::model::test_model;
use crate::util::*;

/// Embedding runs in the dev profile on a shared machine: generous.
const WAIT: Duration = Duration::from_secs(90);
/// Bytes of the store's header, and of one vector of the test model (key, scale, a
/// byte per dimension, checksum).
const HEADER: u64 = 16;
const RECORD: u64 = 16 + 4 + 384 + 4;

/// A question that shares no word with the section that answers it.
const PARAPHRASE: &str = "why does my service keep coming back after I kill it";
const ANSWER: &str = "docs/ops.md#restart-policies";

const FIXTURE: &[(&str, &str)] = &[
    (
        "ops.md",
        "# Operations\n\n## Restart policies\n\nA supervisor relaunches a crashed or \
         terminated process automatically. Set the policy to never, on-failure or always; \
         the daemon then respawns the program whenever the program exits.\n\n\
         ## Log rotation\n\nLog files are rotated daily and compressed. Old archives are \
         pruned once thirty days have passed.\n\n## Backups\n\nSnapshots of the database \
         are taken every night and copied to remote storage.\n",
    ),
    (
        "install.md",
        "# Installing Widgetd\n\n## Linux\n\nDownload the tarball, unpack it and run the \
         installer script as root.\n\n## Windows\n\nRun the MSI package and follow the \
         wizard.\n",
    ),
    (
        "kitchen.md",
        "# Kitchen\n\n## Bread\n\nKnead the dough for ten minutes, let it rise for an hour, \
         then bake at 220 degrees.\n\n## Tea\n\nBoil water, steep the leaves for three \
         minutes and pour.\n\n## Soup\n\nSimmer onions, carrots and lentils in stock until \
         soft.\n",
    ),
    (
        "garden.md",
        "# Garden\n\n## Roses\n\nPrune roses in early spring, just above an outward-facing \
         bud.\n\n## Tomatoes\n\nWater tomato plants at the base every morning during dry \
         weather.\n\n## Compost\n\nMix green clippings with brown leaves and turn the heap \
         monthly.\n",
    ),
    (
        "travel.md",
        "# Travel\n\n## Packing\n\nRoll clothes tightly and keep liquids in a clear \
         bag.\n\n## Trains\n\nSeat reservations are required on high-speed lines.\n",
    ),
    // A section in Japanese, and sections with a heading and no text.
    (
        "ja.md",
        "# 概要\n\nアプリケーションから分散トレースとメトリクスを収集します。\n",
    ),
    ("empty.md", "# Empty\n\n## Nothing here\n\n## Nor here\n"),
];

/// The sections of [`FIXTURE`] (titles without text included).
const FIXTURE_SECTIONS: u64 = 22;

fn write_docs(t: &TestEnv) {
    let docs = t.project.join("docs");
    std::fs::create_dir_all(&docs).unwrap();
    for (name, text) in FIXTURE {
        std::fs::write(docs.join(name), text).unwrap();
    }
}

/// `files` more files of `per` short sections each (and the file's title), every one
/// holding "bread" and eleven words about baking: near one another by meaning and all
/// matching `bread` by words.
fn write_bulk(t: &TestEnv, files: usize, per: usize) {
    const WORDS: [&str; 24] = [
        "flour",
        "yeast",
        "oven",
        "crust",
        "dough",
        "knead",
        "loaf",
        "rye",
        "sourdough",
        "starter",
        "proof",
        "bake",
        "butter",
        "salt",
        "sugar",
        "milk",
        "egg",
        "rise",
        "slice",
        "toast",
        "crumb",
        "wheat",
        "batter",
        "scone",
    ];
    let mut seed = 7u64;
    for f in 0..files {
        let mut text = format!("# Baking notes {f}\n\n");
        for s in 0..per {
            text.push_str(&format!("## Note {f}.{s}\n\nbread"));
            for _ in 0..11 {
                seed = seed
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                text.push(' ');
                text.push_str(WORDS[(seed >> 33) as usize % WORDS.len()]);
            }
            text.push_str(".\n\n");
        }
        std::fs::write(t.project.join(format!("docs/bulk{f}.md")), text).unwrap();
    }
}

/// Replaces the project's config.json the way editors save (a new file renamed over).
fn configure(t: &TestEnv, v: &Value) {
    std::fs::create_dir_all(t.state_dir()).unwrap();
    let tmp = t.state_file("config.json.new");
    std::fs::write(&tmp, v.to_string()).unwrap();
    std::fs::rename(&tmp, t.state_file("config.json")).unwrap();
}

fn qs(params: &[(&str, &str)]) -> String {
    let mut s = form_urlencoded::Serializer::new(String::new());
    for (k, v) in params {
        s.append_pair(k, v);
    }
    s.finish()
}

fn ids(v: &Value) -> Vec<String> {
    v["hits"]
        .as_array()
        .unwrap_or_else(|| panic!("no hits: {v}"))
        .iter()
        .map(|h| h["id"].as_str().unwrap().to_owned())
        .collect()
}

/// The store of the model in `data`: `vectors-*.bin` files.
fn stores(t: &TestEnv) -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = std::fs::read_dir(t.state_file("data"))
        .map(|d| {
            d.flatten()
                .map(|e| e.path())
                .filter(|p| {
                    let name = p.file_name().unwrap().to_string_lossy();
                    name.starts_with("vectors-") && name.ends_with(".bin")
                })
                .collect()
        })
        .unwrap_or_default();
    out.sort();
    out
}

fn size(path: &Path) -> u64 {
    std::fs::metadata(path).map_or(0, |m| m.len())
}

/// The one store of the project's data dir.
fn store(t: &TestEnv) -> PathBuf {
    let all = stores(t);
    assert_eq!(all.len(), 1, "{all:?}");
    all[0].clone()
}

/// A resident run in the foreground (`doc-serve serve`), as the test's child.
struct Resident {
    pid: u32,
    addr: String,
    token: String,
}

impl Resident {
    fn start(t: &mut TestEnv) -> Resident {
        let pid = t.spawn_serve(&[]);
        let mut r = Resident {
            pid,
            addr: String::new(),
            token: String::new(),
        };
        r.find(t);
        r
    }

    /// Reads where it listens, and its token, from its runtime.json (written again
    /// when it serves again in place).
    fn find(&mut self, t: &TestEnv) {
        let pid = self.pid;
        let (addr, token) = wait_for(WAIT, "the resident's runtime.json", || {
            let text = std::fs::read_to_string(t.state_file("runtime.json")).ok()?;
            let v: Value = serde_json::from_str(&text).ok()?;
            if v["pid"] != pid {
                return None;
            }
            let (addr, token) = (addr_of(&v), v["token"].as_str()?.to_owned());
            let auth = format!("Authorization: Bearer {token}");
            (get(&addr, "/status", &[&auth]).status == 200).then_some((addr, token))
        });
        (self.addr, self.token) = (addr, token);
    }

    fn get(&self, path: &str) -> Reply {
        get(
            &self.addr,
            path,
            &[&format!("Authorization: Bearer {}", self.token)],
        )
    }

    fn status(&self) -> Value {
        let r = self.get("/status");
        assert_eq!(r.status, 200, "{r:?}");
        r.json()
    }

    /// `/query?PARAMS`, which must answer 200.
    fn query(&self, params: &[(&str, &str)]) -> Value {
        let r = self.get(&format!("/query?{}", qs(params)));
        assert_eq!(r.status, 200, "{params:?}: {r:?}");
        r.json()
    }

    /// `/query?PARAMS`, which must answer `status` with `code`; the message.
    fn refused(&self, params: &[(&str, &str)], status: u16, code: &str) -> String {
        let r = self.get(&format!("/query?{}", qs(params)));
        assert_eq!(r.status, status, "{params:?}: {r:?}");
        let v = r.json();
        assert_eq!(v["code"], code, "{params:?}: {v}");
        v["message"].as_str().unwrap().to_owned()
    }

    /// `[done, total]` embedded, and whether embedding is under way.
    fn progress(&self) -> Option<(u64, u64, bool)> {
        let e = &self.status()["index"]["embedding"];
        Some((
            e["embedded"][0].as_u64()?,
            e["embedded"][1].as_u64()?,
            e["embedding"].as_bool()?,
        ))
    }

    /// Waits until the index is idle and every section of it embedded, twice a poll of
    /// the embedder apart (it looks for a new commit every half second); the sections.
    fn embedded(&self) -> u64 {
        let settled = || {
            let s = self.status();
            let idle = s["index"]["indexing"] == false && s["index"]["pending_changes"] == false;
            let (done, total, busy) = self.progress()?;
            (idle && !busy && done == total && total > 0).then_some(total)
        };
        wait_for(WAIT, "every section embedded", || {
            let total = settled()?;
            std::thread::sleep(Duration::from_millis(700));
            (settled() == Some(total)).then_some(total)
        })
    }

    fn kill(self, t: &mut TestEnv) {
        signal(self.pid, Signal::SIGKILL);
        t.wait_child(self.pid, WAIT);
    }

    fn stop(self, t: &mut TestEnv) {
        signal(self.pid, Signal::SIGTERM);
        assert_eq!(t.wait_child(self.pid, WAIT), Some(0), "clean exit");
    }
}

/// A project with the fixture and `config`, its resident, every section embedded.
fn served(config: Value) -> Option<(TestEnv, Resident, u64)> {
    let model = test_model()?;
    let mut t = TestEnv::new();
    write_docs(&t);
    let mut config = config;
    config["embedding_model"] = json!(model);
    configure(&t, &config);
    let r = Resident::start(&mut t);
    let total = r.embedded();
    Some((t, r, total))
}

#[test]
fn a_resident_searches_by_words_by_meaning_or_both() {
    let Some((t, r, total)) = served(json!({})) else {
        return;
    };
    let status = r.status();
    assert_eq!(total, FIXTURE_SECTIONS);
    assert_eq!(status["index"]["chunks"], json!(total), "{status}");
    assert_eq!(
        status["index"]["embedding"]["model"], "all-MiniLM-L6-v2",
        "{status}"
    );
    assert!(status["index"]["embedding"]["error"].is_null(), "{status}");

    // Each mode answers and says it ran; hybrid by default once all is embedded.
    for mode in ["lexical", "semantic", "hybrid"] {
        let v = r.query(&[("q", "bake bread"), ("mode", mode)]);
        assert_eq!(v["mode"], mode, "{v}");
        assert_eq!(ids(&v)[0], "docs/kitchen.md#bread", "{mode}: {v}");
        assert!(v["hits"][0].get("ranks").is_none(), "no explain: {v}");
        assert_eq!(v["index"]["embedding"]["embedded"], json!([total, total]));
    }
    assert_eq!(r.query(&[("q", "bake bread")])["mode"], "hybrid");

    // A question in other words: found by meaning, not by words.
    let lexical = r.query(&[("q", PARAPHRASE), ("mode", "lexical"), ("explain", "true")]);
    assert!(!ids(&lexical).contains(&ANSWER.into()), "{lexical:#}");
    for h in lexical["hits"].as_array().unwrap() {
        assert!(h["ranks"]["lexical"].is_u64() && h["ranks"]["vector"].is_null());
    }
    let semantic = r.query(&[("q", PARAPHRASE), ("mode", "semantic"), ("explain", "true")]);
    assert_eq!(ids(&semantic)[0], ANSWER, "{semantic:#}");
    assert_eq!(
        semantic["hits"][0]["ranks"],
        json!({"lexical": null, "vector": 1})
    );
    let hybrid = r.query(&[("q", PARAPHRASE), ("explain", "1")]);
    assert_eq!(hybrid["mode"], "hybrid");
    let at = ids(&hybrid)
        .iter()
        .position(|id| id == ANSWER)
        .unwrap_or_else(|| panic!("{hybrid:#}"));
    assert_eq!(
        hybrid["hits"][at]["ranks"],
        json!({"lexical": null, "vector": 1})
    );
    for h in hybrid["hits"].as_array().unwrap() {
        assert!(h["ranks"]["lexical"].is_u64() || h["ranks"]["vector"].is_u64());
    }

    // The CLI, through the resident.
    let text = t.ok(&["query", "--mode", "semantic", "--explain", "--", PARAPHRASE]);
    let first = text.lines().next().unwrap_or_default();
    assert!(first.ends_with(ANSWER), "{text}");
    assert!(text.contains("rank by words -, by meaning #1"), "{text}");
    assert!(
        text.contains(&format!(
            "mode: semantic ({total} of {total} sections embedded, all-MiniLM-L6-v2)"
        )),
        "{text}"
    );
    let v = t.json(&["query", "--json", "--mode", "lexical", "--", "bake bread"]);
    assert_eq!(v["mode"], "lexical", "{v}");
    let out = t.run(&["query", "--mode", "fuzzy", "bread"]);
    assert_eq!(out.status.code(), Some(2));

    // search_docs over MCP at /mcp.
    if let Some(py) = crate::mcp::python() {
        let calls = json!([
            ["search_docs", {"query": PARAPHRASE, "mode": "semantic", "explain": true, "limit": 3}],
            ["search_docs", {"query": "bake bread", "mode": "lexical"}],
            ["search_docs", {"query": "bake bread"}],
            ["search_docs", {"query": "bake bread", "mode": "fuzzy"}],
            ["search_docs", {"query": "bake bread", "explain": "yes"}],
        ])
        .to_string();
        let url = format!("http://{}/mcp", r.addr);
        let out = crate::mcp::client(&t, &py, &["calls", "http", &url, &r.token, &calls]);
        let s = &out[0]["structured"];
        assert_eq!(s["mode"], "semantic", "{out:#}");
        assert_eq!(s["hits"][0]["id"], ANSWER, "{out:#}");
        assert_eq!(s["hits"][0]["ranks"]["vector"], 1, "{out:#}");
        assert_eq!(out[1]["structured"]["mode"], "lexical", "{out:#}");
        assert_eq!(out[2]["structured"]["mode"], "hybrid", "{out:#}");
        for bad in &out.as_array().unwrap()[3..] {
            assert_eq!(bad["error"], true, "{out:#}");
        }
        assert!(out[3]["text"].as_str().unwrap().contains("mode must be"));
    }
    // Odd sections (no text, Japanese) were embedded like the others.
    let v = r.query(&[("q", "分散トレース"), ("mode", "semantic")]);
    assert!(!ids(&v).is_empty(), "{v}");
}

/// What a hostile client can send with a mode: answers, never a panic, and the filters
/// of the query language hold whatever the ranking.
#[test]
fn odd_requests_in_every_mode() {
    let Some((t, r, _)) = served(json!({"max_hits_per_file": 10})) else {
        return;
    };
    // A query past the limit is refused before it is embedded; a huge POST body too.
    let long = "why ".repeat(1100);
    for mode in ["semantic", "hybrid"] {
        r.refused(&[("q", &long), ("mode", mode)], 400, "bad_query");
    }
    let body = json!({"q": "x".repeat(300_000), "mode": "semantic"}).to_string();
    let reply = raw(
        &r.addr,
        format!(
            "POST /query HTTP/1.1\r\nHost: {}\r\nAuthorization: Bearer {}\r\n\
             Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            r.addr,
            r.token,
            body.len()
        )
        .as_bytes(),
    );
    assert_eq!(reply.status, 400, "{}", reply.head);
    assert_eq!(reply.json()["code"], "bad_query");

    // Only punctuation means nothing, by meaning as by words; no words at all is a 400
    // in every mode.
    for mode in ["lexical", "semantic", "hybrid"] {
        let v = r.query(&[("q", "?! ... --"), ("mode", mode)]);
        assert_eq!(ids(&v), Vec::<String>::new(), "{mode}: {v}");
        assert_eq!(v["mode"], mode);
        for q in ["   ", "-bread", "path:docs/"] {
            r.refused(&[("q", q), ("mode", mode)], 400, "bad_query");
        }
    }

    // Exclusions, phrases and path prefixes hold for the hits found by meaning.
    for mode in ["semantic", "hybrid"] {
        let v = r.query(&[("q", "bake bread -dough"), ("mode", mode)]);
        assert!(!ids(&v).contains(&"docs/kitchen.md#bread".into()), "{v:#}");
        assert!(!ids(&v).is_empty(), "{v:#}");
        let v = r.query(&[("q", "\"remote storage\" nightly copies"), ("mode", mode)]);
        assert_eq!(ids(&v), ["docs/ops.md#backups"], "{mode}: {v:#}");
        for prefix in [
            vec![("path_prefix", "docs/garden")],
            vec![("path_prefix", "./docs/garden.md")],
        ] {
            let mut params = vec![("q", PARAPHRASE), ("mode", mode)];
            params.extend(prefix);
            let v = r.query(&params);
            let found = ids(&v);
            assert!(!found.is_empty(), "{mode}: {v:#}");
            assert!(
                found.iter().all(|id| id.starts_with("docs/garden.md#")),
                "{v:#}"
            );
        }
        let v = r.query(&[
            ("q", &format!("{PARAPHRASE} path:docs/travel")),
            ("mode", mode),
        ]);
        assert!(!ids(&v).is_empty(), "{v:#}");
        assert!(
            ids(&v).iter().all(|id| id.starts_with("docs/travel.md#")),
            "{v:#}"
        );
    }

    // Pages in order, without gaps or repeats; a budget ends a page early and the next
    // one goes on from there.
    for mode in ["lexical", "semantic", "hybrid"] {
        let q = "water the plants and bake some bread";
        let all = ids(&r.query(&[("q", q), ("mode", mode), ("limit", "50")]));
        for (limit, budget) in [("2", None), ("3", Some("60"))] {
            let (mut paged, mut offset) = (Vec::new(), 0);
            loop {
                let at = offset.to_string();
                let mut params = vec![("q", q), ("mode", mode), ("limit", limit), ("offset", &at)];
                if let Some(b) = budget {
                    params.push(("max_tokens", b));
                }
                let v = r.query(&params);
                assert!(!ids(&v).is_empty(), "{params:?}: {v:#}");
                paged.extend(ids(&v));
                match v["next_offset"].as_u64() {
                    Some(n) => offset = n,
                    None => break,
                }
            }
            assert_eq!(paged, all, "{mode} by {limit}, budget {budget:?}");
        }
    }

    // Modes changing from request to request, many at once, each with its own query
    // (so each is embedded), while files change under them.
    let writer = {
        let docs = t.project.join("docs");
        std::thread::spawn(move || {
            for i in 0..10 {
                std::fs::write(docs.join("churn.md"), format!("# Churn\n\nRevision {i}.\n"))
                    .unwrap();
                std::thread::sleep(Duration::from_millis(100));
            }
        })
    };
    let r = &r;
    std::thread::scope(|s| {
        for n in 0..6 {
            s.spawn(move || {
                for i in 0..6 {
                    let mode = ["lexical", "semantic", "hybrid"][(n + i) % 3];
                    let q = format!("how do I look after {n} roses in week {i}");
                    let v = r.query(&[("q", &q), ("mode", mode), ("explain", "true")]);
                    assert_eq!(v["mode"], mode, "{v}");
                }
            });
        }
    });
    writer.join().unwrap();
    assert!(alive(r.pid));
}

#[test]
fn without_a_model_search_by_meaning_says_how_to_get_one() {
    let mut t = TestEnv::new();
    write_docs(&t);
    configure(&t, &json!({}));
    let r = Resident::start(&mut t);
    let v = wait_for(WAIT, "the first index", || {
        let v = r.query(&[("q", "bake bread")]);
        (!ids(&v).is_empty()).then_some(v)
    });
    assert_eq!(v["mode"], "lexical", "{v}");
    assert!(v["index"].get("embedding").is_none(), "{v}");
    for mode in ["semantic", "hybrid"] {
        let message = r.refused(&[("q", "bake bread"), ("mode", mode)], 400, "no_model");
        for needle in ["embedding_model", "doc-serve model fetch", "mode=lexical"] {
            assert!(message.contains(needle), "{message}");
        }
    }
    let v = r.query(&[
        ("q", "bake bread"),
        ("mode", "lexical"),
        ("explain", "true"),
    ]);
    assert_eq!(v["hits"][0]["ranks"], json!({"lexical": 1, "vector": null}));
    let message = r.refused(&[("q", "bread"), ("mode", "fuzzy")], 400, "bad_parameter");
    assert!(message.contains("lexical, semantic or hybrid"), "{message}");
    r.stop(&mut t);

    // Standalone, the same.
    let out = t.run(&["query", "--mode", "semantic", "bake bread"]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("embedding_model"), "{err}");
    let v = t.json(&["query", "--json", "bake bread"]);
    assert_eq!(v["mode"], "lexical", "{v}");
}

/// Files of a model directory replaced (`Some`: by these bytes) or left out (`None`).
type Replaced<'a> = &'a [(&'a str, Option<&'a [u8]>)];

/// A model directory made of the test model's files, some of them replaced.
fn model_copy(from: &Path, to: &Path, replace: Replaced) {
    std::fs::create_dir_all(to.join("1_Pooling")).unwrap();
    for f in [
        "config.json",
        "tokenizer.json",
        "model.safetensors",
        "sentence_bert_config.json",
        "1_Pooling/config.json",
    ] {
        match replace.iter().find(|(name, _)| *name == f) {
            Some((_, Some(bytes))) => std::fs::write(to.join(f), bytes).unwrap(),
            Some((_, None)) => {}
            None => std::os::unix::fs::symlink(from.join(f), to.join(f)).unwrap(),
        }
    }
}

#[test]
fn bad_model_files_are_named_and_words_still_search() {
    let Some(model) = test_model() else { return };
    let mut t = TestEnv::new();
    write_docs(&t);
    let models = t.root().join("models");
    let weights = std::fs::read(model.join("model.safetensors")).unwrap();
    let garbage: Vec<u8> = (0..=255u8).cycle().take(5000).collect();
    let cases: [(&str, Replaced, &str); 5] = [
        ("missing", &[], "no such directory"),
        (
            "no-weights",
            &[("model.safetensors", None)],
            "model.safetensors is missing",
        ),
        (
            "cut-weights",
            &[("model.safetensors", Some(&weights[..1 << 20]))],
            "model.safetensors cannot be read",
        ),
        (
            "bad-config",
            &[("config.json", Some(b"{\"hidden_size\": 3"))],
            "config.json",
        ),
        (
            "bad-tokenizer",
            &[("tokenizer.json", Some(&garbage))],
            "tokenizer.json",
        ),
    ];
    for (name, replace, why) in cases {
        let dir = models.join(name);
        if name != "missing" {
            model_copy(&model, &dir, replace);
        }
        configure(&t, &json!({ "embedding_model": dir }));
        refused_for(&mut t, &dir.display().to_string(), why);
    }
    // A known model by name, not fetched: the error says to fetch it.
    configure(&t, &json!({ "embedding_model": "all-MiniLM-L6-v2" }));
    let cache = t
        .root()
        .join("home/.cache/doc-serve/models/all-MiniLM-L6-v2");
    refused_for(
        &mut t,
        &cache.display().to_string(),
        "run `doc-serve model fetch all-MiniLM-L6-v2`",
    );
}

/// The model is loaded by the embedder, after the resident answers: here its
/// sentence_bert_config.json is a FIFO, so loading waits until the test writes it.
/// Meanwhile searches by words answer and /status says embedding is under way; then
/// every section is embedded and a search by meaning finds the paraphrase.
#[test]
fn a_resident_answers_while_its_model_loads() {
    let Some(model) = test_model() else { return };
    let mut t = TestEnv::new();
    write_docs(&t);
    let dir = t.root().join("models/slow");
    model_copy(&model, &dir, &[("sentence_bert_config.json", None)]);
    let fifo = dir.join("sentence_bert_config.json");
    nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
    configure(&t, &json!({ "embedding_model": dir }));
    let r = Resident::start(&mut t);
    let v = wait_for(WAIT, "the first index", || {
        let v = r.query(&[("q", "bake bread")]);
        (!ids(&v).is_empty()).then_some(v)
    });
    assert_eq!(v["mode"], "lexical", "{v}");
    let e = &r.status()["index"]["embedding"];
    assert_eq!(e["embedding"], true, "{e}");
    assert_eq!(e["embedded"], json!([0, 0]), "{e}");
    assert_eq!(e["error"], Value::Null, "{e}");
    // Opens once the loader has it open for reading.
    std::fs::write(
        &fifo,
        std::fs::read(model.join("sentence_bert_config.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(r.embedded(), FIXTURE_SECTIONS);
    let v = r.query(&[("q", PARAPHRASE), ("mode", "semantic")]);
    assert_eq!(ids(&v)[0], ANSWER, "{v}");
    r.stop(&mut t);
}

/// The resident of `t`, whose model cannot be used, says why (naming `path`) in
/// /status and to a search by meaning, searches by words, and exits cleanly; a
/// standalone search by meaning gives the same reason.
fn refused_for(t: &mut TestEnv, path: &str, why: &str) {
    let r = Resident::start(t);
    let error = wait_for(WAIT, "the model's error in /status", || {
        r.status()["index"]["embedding"]["error"]
            .as_str()
            .map(String::from)
    });
    assert!(error.contains(path) && error.contains(why), "{error}");
    let v = wait_for(WAIT, "the first index", || {
        let v = r.query(&[("q", "bake bread")]);
        (!ids(&v).is_empty()).then_some(v)
    });
    assert_eq!(v["mode"], "lexical", "{v}");
    assert_eq!(v["index"]["embedding"]["error"], json!(error));
    for mode in ["semantic", "hybrid"] {
        let message = r.refused(&[("q", "bread"), ("mode", mode)], 400, "no_model");
        assert!(message.contains(path) && message.contains(why), "{message}");
        assert!(message.contains("doc-serve model fetch"), "{message}");
    }
    r.stop(t);
    let err = std::fs::read_to_string(t.root().join("serve.err")).unwrap();
    assert!(!err.contains("panicked"), "{err}");
    let out = t.run(&["query", "--mode", "semantic", "bread"]);
    assert_eq!(out.status.code(), Some(2), "{path}");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains(path) && err.contains(why), "{err}");
}

/// A kill -9 in the middle of embedding, a store with garbage after its last record or
/// cut in the middle of one: the store opens and catches up, and a standalone search
/// by meaning reads it meanwhile.
#[test]
fn a_kill_mid_embedding_and_a_damaged_store_catch_up() {
    let Some(model) = test_model() else { return };
    let mut t = TestEnv::new();
    write_docs(&t);
    write_bulk(&t, 10, 20);
    let config = |threads: usize| json!({"embedding_model": model, "embedding_threads": threads, "max_hits_per_file": 1000});
    configure(&t, &config(1));
    let r = Resident::start(&mut t);
    wait_for(WAIT, "embedding under way", || {
        let (done, total, _) = r.progress()?;
        (done > 0 && done < total).then_some(())
    });
    r.kill(&mut t);

    // Started again: it goes on from what was stored, while a standalone search by
    // meaning reads the store being written.
    let r = Resident::start(&mut t);
    let (done, total) = wait_for(WAIT, "embedding counted", || {
        let (done, total, _) = r.progress()?;
        (total > 0).then_some((done, total))
    });
    assert!(
        done > 0,
        "what was stored before the kill counts: {done}/{total}"
    );
    let standalone = (0..20)
        .find_map(|_| {
            // Without runtime.json (written again within a second) the CLI finds the
            // lifetime lock held and answers from the disk.
            let _ = std::fs::remove_file(t.state_file("runtime.json"));
            let out = t.run(&["query", "--json", "--mode", "semantic", "--", "bread oven"]);
            let v: Value = serde_json::from_slice(&out.stdout).ok()?;
            let watcher = v["index"]["watcher"].as_str()?.to_owned();
            watcher.starts_with("none").then_some(v)
        })
        .expect("a standalone answer");
    assert_eq!(standalone["mode"], "semantic", "{standalone}");
    assert!(!ids(&standalone).is_empty(), "{standalone}");
    let total = r.embedded();
    let path = store(&t);
    assert_eq!(size(&path), HEADER + total * RECORD, "each vector once");
    r.kill(&mut t);

    // Garbage after the last record: read up to it, nothing embedded again.
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .open(&path)
        .unwrap();
    f.write_all(&[0xA5; 1000]).unwrap();
    drop(f);
    let r = Resident::start(&mut t);
    assert_eq!(r.embedded(), total);
    assert_eq!(r.query(&[("q", "bread oven")])["mode"], "hybrid");
    wait_for(WAIT, "the garbage cut off", || {
        (size(&path) == HEADER + total * RECORD).then_some(())
    });
    r.kill(&mut t);

    // Cut in the middle of a record: that one is embedded again, the tail cut off.
    let f = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
    f.set_len(HEADER + (total - 1) * RECORD + 100).unwrap();
    drop(f);
    configure(&t, &config(2));
    let r = Resident::start(&mut t);
    assert_eq!(r.embedded(), total);
    assert_eq!(size(&path), HEADER + total * RECORD);

    // More candidates than one side brings to the fusion: pages still follow one list,
    // and a path prefix still finds its sections however far they rank.
    let q = "bread oven";
    for mode in ["semantic", "hybrid"] {
        let all = ids(&r.query(&[("q", q), ("mode", mode), ("limit", "400")]));
        assert!(all.len() > 150, "{mode}: {}", all.len());
        let (mut paged, mut offset) = (Vec::new(), 0);
        loop {
            let at = offset.to_string();
            let v = r.query(&[("q", q), ("mode", mode), ("limit", "40"), ("offset", &at)]);
            paged.extend(ids(&v));
            match v["next_offset"].as_u64() {
                Some(n) => offset = n,
                None => break,
            }
        }
        assert_eq!(paged.len(), all.len(), "{mode}");
        assert!(paged == all, "{mode}: pages differ from the whole list");
        let v = r.query(&[("q", q), ("mode", mode), ("path_prefix", "docs/travel.md")]);
        let found = ids(&v);
        assert!(found.len() >= 2, "{mode}: {v:#}");
        assert!(
            found.iter().all(|id| id.starts_with("docs/travel.md#")),
            "{v:#}"
        );
    }
    r.stop(&mut t);
}

/// Files deleted while their sections are being embedded: the embedder turns to what
/// the new commit holds instead of embedding the rest of what is gone.
#[test]
fn a_commit_mid_embedding_turns_the_embedder_to_what_is_live() {
    let Some(model) = test_model() else { return };
    let mut t = TestEnv::new();
    write_docs(&t);
    write_bulk(&t, 8, 20);
    configure(
        &t,
        &json!({"embedding_model": model, "embedding_threads": 1}),
    );
    let r = Resident::start(&mut t);
    let before = wait_for(WAIT, "embedding under way", || {
        let (done, total, _) = r.progress()?;
        (done > 0 && done < total).then_some(total)
    });
    for f in 0..8 {
        std::fs::remove_file(t.project.join(format!("docs/bulk{f}.md"))).unwrap();
    }
    let mut most = 0;
    wait_for(WAIT, "what is left embedded", || {
        let (done, total, busy) = r.progress()?;
        most = most.max(done);
        (total < before && done == total && !busy).then_some(())
    });
    assert!(
        most < before,
        "every section of the deleted files was embedded"
    );
    assert_eq!(r.embedded(), FIXTURE_SECTIONS);
    r.stop(&mut t);
}

/// Another model (here the test model with a config.json of its own, in a directory
/// relative to the project root) has a store of its own; a switch in config.json waits
/// for a restart, which embeds again; switching back embeds nothing.
#[test]
fn another_model_has_its_own_vectors() {
    let Some((mut t, r, total)) = served(json!({})) else {
        return;
    };
    let model = test_model().unwrap();
    let first = store(&t);
    assert_eq!(size(&first), HEADER + total * RECORD);

    let mut config: Value =
        serde_json::from_slice(&std::fs::read(model.join("config.json")).unwrap()).unwrap();
    config["doc_serve_test"] = json!("another model");
    let config = config.to_string();
    model_copy(
        &model,
        &t.project.join("models/other"),
        &[("config.json", Some(config.as_bytes()))],
    );
    configure(&t, &json!({"embedding_model": "models/other"}));
    wait_for(WAIT, "restart_needed", || {
        (r.status()["settings"]["restart_needed"] == json!(["embedding_model"])).then_some(())
    });
    // Still the first model until then.
    let v = r.query(&[("q", PARAPHRASE), ("mode", "semantic")]);
    assert_eq!(v["index"]["embedding"]["model"], "all-MiniLM-L6-v2");
    r.stop(&mut t);
    // Standalone, the new model has nothing embedded yet, and the CLI says why.
    let out = t.run(&["query", "--mode", "semantic", "--", PARAPHRASE]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&format!("0 of {total} sections are embedded"))
            && err.contains("doc-serve start"),
        "{err}"
    );

    let r = Resident::start(&mut t);
    assert_eq!(r.embedded(), total);
    assert_eq!(r.status()["index"]["embedding"]["model"], "other");
    let both = stores(&t);
    assert_eq!(both.len(), 2, "{both:?}");
    let second = both.iter().find(|p| **p != first).unwrap();
    assert_eq!(size(second), HEADER + total * RECORD);
    assert_eq!(size(&first), HEADER + total * RECORD);
    let v = r.query(&[("q", PARAPHRASE), ("mode", "semantic")]);
    assert_eq!(ids(&v)[0], ANSWER, "{v:#}");
    r.stop(&mut t);

    // Back to the first: its vectors are all there.
    configure(&t, &json!({"embedding_model": model}));
    let r = Resident::start(&mut t);
    assert_eq!(r.embedded(), total);
    assert_eq!(
        size(&first),
        HEADER + total * RECORD,
        "nothing embedded again"
    );
    r.stop(&mut t);
}

/// A file just under max_file_bytes that is one giant section: embedded (its start),
/// the rest of the project too.
#[test]
fn a_giant_section_is_embedded_from_its_start() {
    let Some(model) = test_model() else { return };
    let mut t = TestEnv::new();
    write_docs(&t);
    let word = format!("{} ", "z".repeat(1150));
    let giant = format!(
        "# Giant\n\nThe giant section starts here. {}\n",
        word.repeat(500)
    );
    assert!(giant.len() < 600_000);
    std::fs::write(t.project.join("docs/giant.md"), &giant).unwrap();
    configure(
        &t,
        &json!({"embedding_model": model, "max_file_bytes": 600_000}),
    );
    let r = Resident::start(&mut t);
    let total = r.embedded();
    let status = r.status();
    assert_eq!(status["index"]["chunks"], json!(total), "{status}");
    let v = r.query(&[
        ("q", "where the giant section starts"),
        ("mode", "semantic"),
    ]);
    assert_eq!(ids(&v)[0], "docs/giant.md#giant", "{v:#}");
    r.stop(&mut t);
}

/// Past `ann_min_sections` vectors a resident's searches by meaning read an
/// approximate index (HNSW), built in the background once every section is embedded:
/// they answer as the exact search (a standalone search compares every vector), with
/// and without a path filter. A section embedded since is searched exactly until the
/// index is built again; a compaction has it built again.
#[test]
fn an_approximate_index_answers_as_the_exact_search() {
    let Some(model) = test_model() else { return };
    let mut t = TestEnv::new();
    write_docs(&t);
    write_bulk(&t, 8, 25);
    configure(
        &t,
        &json!({ "embedding_model": model, "ann_min_sections": 1 }),
    );
    let r = Resident::start(&mut t);
    let total = r.embedded();
    let indexed = |r: &Resident| r.status()["index"]["embedding"]["approximate"].as_u64();
    let approximate = wait_for(WAIT, "the approximate index", || indexed(&r));
    assert_eq!(approximate, total);
    let queries = [
        PARAPHRASE,
        "sourdough starter with rye flour",
        "how long should tea leaves steep",
        "when to cut back rose bushes",
    ];
    let semantic = |q: &str, extra: &[(&str, &str)]| {
        let mut params = vec![("q", q), ("mode", "semantic"), ("limit", "10")];
        params.extend_from_slice(extra);
        ids(&r.query(&params))
    };
    let found: Vec<Vec<String>> = queries.iter().map(|q| semantic(q, &[])).collect();
    assert_eq!(found[0][0], ANSWER, "{found:?}");
    let filtered = semantic("bread", &[("path_prefix", "docs/kitchen.md")]);
    assert_eq!(filtered.len(), 3, "{filtered:?}");
    assert!(
        filtered.iter().all(|id| id.starts_with("docs/kitchen.md")),
        "{filtered:?}"
    );
    r.stop(&mut t);
    for (q, approximate) in queries.iter().zip(&found) {
        let v = t.json(&["query", "--json", "--mode", "semantic", "--limit", "10", q]);
        assert_eq!(&ids(&v), approximate, "{q}");
    }
    let v = t.json(&[
        "query",
        "--json",
        "--mode",
        "semantic",
        "--path-prefix",
        "docs/kitchen.md",
        "bread",
    ]);
    assert_eq!(ids(&v), filtered);

    let r = Resident::start(&mut t);
    assert_eq!(r.embedded(), total);
    wait_for(WAIT, "the index built again", || {
        (indexed(&r) == Some(total)).then_some(())
    });
    std::fs::write(
        t.project.join("docs/brewing.md"),
        "# Brewing\n\n## Coffee\n\nGrind the beans coarsely, let them sit in hot water for \
         four minutes, then press the plunger down slowly.\n",
    )
    .unwrap();
    assert_eq!(r.embedded(), total + 2);
    let v = r.query(&[
        ("q", "making coffee in a french press"),
        ("mode", "semantic"),
    ]);
    assert_eq!(ids(&v)[0], "docs/brewing.md#coffee", "{v:#}");
    assert_eq!(indexed(&r), Some(total), "two new vectors are not a tenth");

    for f in 0..8 {
        std::fs::remove_file(t.project.join(format!("docs/bulk{f}.md"))).unwrap();
    }
    let live = wait_for(
        WAIT,
        "the store compacted and its index built again",
        || {
            let live = r.embedded();
            (live < total && indexed(&r) == Some(live)).then_some(live)
        },
    );
    assert_eq!(size(&store(&t)), HEADER + live * RECORD);
    let v = r.query(&[("q", PARAPHRASE), ("mode", "semantic")]);
    assert_eq!(ids(&v)[0], ANSWER, "{v:#}");
    r.stop(&mut t);
}

/// An edit embeds the sections it changed and no other; deleted files' vectors are
/// dropped once they are a quarter of the store; a data dir deleted under the resident
/// is built again, vectors included.
#[test]
fn edits_embed_what_changed_and_deletions_are_compacted() {
    let Some((mut t, mut r, total)) = served(json!({})) else {
        return;
    };
    let path = store(&t);
    assert_eq!(size(&path), HEADER + total * RECORD);

    let garden = t.project.join("docs/garden.md");
    let text = std::fs::read_to_string(&garden).unwrap().replace(
        "Water tomato plants at the base every morning during dry weather.",
        "Stake tomato plants and pinch out the side shoots.",
    );
    std::fs::write(&garden, text).unwrap();
    wait_for(WAIT, "the edited section embedded", || {
        (size(&path) == HEADER + (total + 1) * RECORD).then_some(())
    });
    assert_eq!(r.embedded(), total);
    assert_eq!(
        size(&path),
        HEADER + (total + 1) * RECORD,
        "one more vector"
    );
    let v = r.query(&[("q", "supporting tomato stems"), ("mode", "semantic")]);
    assert_eq!(ids(&v)[0], "docs/garden.md#tomatoes", "{v:#}");

    for f in ["kitchen.md", "travel.md", "garden.md"] {
        std::fs::remove_file(t.project.join("docs").join(f)).unwrap();
    }
    let live = wait_for(WAIT, "the deleted files' vectors dropped", || {
        let live = r.embedded();
        (live < total && size(&path) == HEADER + live * RECORD).then_some(live)
    });
    let v = r.query(&[("q", "bake bread"), ("mode", "semantic")]);
    assert!(
        ids(&v).iter().all(|id| !id.starts_with("docs/kitchen.md")),
        "{v:#}"
    );

    // `git clean -fdX` of the data dir: the same resident builds it again.
    std::fs::remove_dir_all(t.state_file("data")).unwrap();
    wait_for(WAIT, "the resident to serve again in place", || {
        let events = t.events();
        events
            .iter()
            .any(|e| e["event"] == "state_replaced")
            .then_some(())
    });
    r.find(&t);
    wait_for(WAIT, "the index built again", || {
        (r.status()["index"]["chunks"] == json!(live)).then_some(())
    });
    assert_eq!(r.embedded(), live);
    assert_eq!(size(&store(&t)), HEADER + live * RECORD);
    let v = r.query(&[("q", PARAPHRASE), ("mode", "semantic")]);
    assert_eq!(ids(&v)[0], ANSWER, "{v:#}");
    r.stop(&mut t);
    let err = std::fs::read_to_string(t.root().join("serve.err")).unwrap();
    assert!(!err.contains("panicked"), "{err}");

    // A damaged header: the store is begun again.
    let path = store(&t);
    let mut bytes = std::fs::read(&path).unwrap();
    bytes[..8].copy_from_slice(b"garbage!");
    std::fs::write(&path, bytes).unwrap();
    let r = Resident::start(&mut t);
    assert_eq!(r.embedded(), live);
    assert_eq!(size(&path), HEADER + live * RECORD);
    r.stop(&mut t);

    // The store made a link to a file elsewhere: never written through, the error
    // names it, words still search; once it is removed, the vectors are made again.
    let precious = t.root().join("precious.txt");
    std::fs::write(&precious, "keep me").unwrap();
    std::fs::remove_file(&path).unwrap();
    std::os::unix::fs::symlink(&precious, &path).unwrap();
    let r = Resident::start(&mut t);
    let error = wait_for(WAIT, "the store's error in /status", || {
        r.status()["index"]["embedding"]["error"]
            .as_str()
            .map(String::from)
    });
    assert!(error.contains(&path.display().to_string()), "{error}");
    assert!(error.contains("symbolic link"), "{error}");
    let v = r.query(&[("q", "bake bread")]);
    assert_eq!(v["mode"], "lexical", "{v}");
    std::fs::remove_file(&path).unwrap();
    assert_eq!(r.embedded(), live);
    assert_eq!(std::fs::read_to_string(&precious).unwrap(), "keep me");
    assert!(r.status()["index"]["embedding"]["error"].is_null());
    r.stop(&mut t);
}
