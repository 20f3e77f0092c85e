//! `query_parse`: the query language ([`query::parse`]) and the whole search path
//! behind it (analyzers, query building, path-prefix regexes, snippets) on a small
//! real index.
//!
//! Input: UTF-8 (decoded lossily) as `QUERY[\0PATH_PREFIX]`; the result limit, the
//! offset and the per-file cap are taken from the input's length so they vary too.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;

use doc_serve::engine::query;
use doc_serve::engine::search::{MAX_QUERY_BYTES, Request};
use doc_serve::engine::{Engine, EngineError};

use super::fixture;

/// The index searched; the temp dir goes with it.
pub struct Fixture {
    engine: Arc<Engine>,
    root: PathBuf,
    _dir: tempfile::TempDir,
}

impl Fixture {
    pub fn new() -> Fixture {
        let dir = tempfile::tempdir().expect("temp dir");
        let indexed = fixture::indexed(dir.path());
        Fixture {
            engine: indexed.indexer.engine.clone(),
            root: indexed.project.root,
            _dir: dir,
        }
    }
}

pub fn check(fixture: &Fixture, data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let (q, prefix) = match text.split_once('\0') {
        Some((q, p)) => (q, Some(p)),
        None => (&*text, None),
    };
    check_parse(q);
    let req = Request {
        q: q.to_owned(),
        limit: 1 + data.len() % 16,
        offset: data.len() % 3,
        path_prefix: prefix.map(str::to_owned),
        max_per_file: 1 + data.len() % 4,
        max_tokens: None,
        mode: Default::default(),
        explain: data.len().is_multiple_of(2),
    };
    check_search(fixture, &req);
}

/// Every item is a non-empty piece of the query, words hold no whitespace, phrases are
/// trimmed, and parsing is deterministic.
fn check_parse(q: &str) {
    let p = query::parse(q);
    for w in &p.words {
        assert!(
            !w.is_empty() && q.contains(w.as_str()),
            "word {w:?} of {q:?}"
        );
        assert!(!w.contains(char::is_whitespace), "word {w:?} of {q:?}");
    }
    for ph in p.phrases.iter().chain(&p.excluded) {
        assert!(!ph.is_empty() && q.contains(ph.as_str()), "{ph:?} of {q:?}");
        assert_eq!(ph.trim(), ph, "untrimmed phrase of {q:?}");
    }
    for prefix in &p.path_prefixes {
        assert!(
            q.contains(prefix.as_str()),
            "path prefix {prefix:?} of {q:?}"
        );
    }
    assert_eq!(
        p.has_positive_terms(),
        !p.words.is_empty() || !p.phrases.is_empty()
    );
    assert_eq!(query::parse(q), p, "parse is not deterministic on {q:?}");
}

/// A search either answers or rejects the query as bad (a 400 for a client): any
/// other error would be a 500 caused by user input. An answer respects the limit,
/// the per-file cap, the path prefixes and its own snippets' bounds, and its hits are
/// source files.
fn check_search(fixture: &Fixture, req: &Request) {
    let resp = match fixture.engine.search(req) {
        Ok(resp) => resp,
        Err(EngineError::BadQuery(_)) => return,
        Err(e) => panic!("search for {req:?} failed with a non-query error: {e}"),
    };
    assert!(req.q.len() <= MAX_QUERY_BYTES, "over-long query answered");
    assert!(resp.hits.len() <= req.limit.clamp(1, 1000), "{req:?}");
    assert!(resp.hits.len() <= resp.total_matches, "{req:?}");
    assert_eq!(resp.offset, req.offset, "{req:?}");
    if let Some(next) = resp.next_offset {
        assert_eq!(next, req.offset + resp.hits.len(), "{req:?}");
    }
    let mut prefixes = query::parse(&req.q).path_prefixes;
    if let Some(p) = req.path_prefix.as_deref().filter(|p| !p.is_empty()) {
        prefixes.push(p.trim_start_matches("./").to_owned());
    }
    let mut per_file: HashMap<&str, usize> = HashMap::new();
    let mut last_score = f32::INFINITY;
    for hit in resp.hits.iter() {
        assert!(
            fixture.root.join(&hit.path).is_file(),
            "hit {} is no file",
            hit.path
        );
        let n = per_file.entry(&hit.path).or_default();
        *n += 1;
        assert!(*n <= req.max_per_file, "per-file cap broken for {req:?}");
        assert!(
            prefixes.is_empty() || prefixes.iter().any(|p| hit.path.starts_with(p.as_str())),
            "hit {} is outside the prefixes {prefixes:?}",
            hit.path
        );
        assert!(hit.score.is_finite() && hit.score <= last_score, "{req:?}");
        last_score = hit.score;
        assert!(
            1 <= hit.line_start && hit.line_start <= hit.line_end,
            "{hit:?}"
        );
        let chars = hit.snippet.chars().count();
        for &[from, to] in &hit.highlights {
            assert!(
                from < to && to <= chars,
                "highlight out of its snippet: {hit:?}"
            );
        }
    }
}
