//! Ranked search: BM25 over title, headings and body, stemmed and exact.
//!
//! Every word is a SHOULD clause across the fields (title > headings > body, the exact
//! unstemmed fields adding weight to literal matches), plus a bonus clause that only
//! documents holding every word satisfy: all-terms matches rank first, partial matches
//! still come back. Phrases are MUST clauses, exclusions MUST_NOT, path prefixes a
//! filter. One file cannot take more than `max_per_file` of the hits, and its pieces
//! that overlap are one hit (see [`super::page`]); an answer is one page of that list.

use std::collections::HashMap;
use std::ops::Bound;
use std::sync::Arc;
use std::time::Instant;

use serde::{Deserialize, Serialize};
use tantivy::collector::{Count, TopDocs};
use tantivy::query::{
    BooleanQuery, BooleanWeight, BoostQuery, ConstScoreQuery, EnableScoring, Occur, Query,
    RangeQuery, ScoreCombiner, Scorer, Weight,
};
use tantivy::schema::Field;
use tantivy::schema::document::{
    DeserializeError, DocumentDeserialize, DocumentDeserializer, ValueDeserialize,
    ValueDeserializer, ValueVisitor,
};
use tantivy::{Score, Term};

use super::bm25::{PhraseQuery, TermQuery};
use super::page::{Kept, Verdict};
use super::query::{self, Parsed};
use super::snippet::Snippets;
use super::{Engine, EngineError, Result, analyzer, words};
use crate::tokens::BYTES_PER_TOKEN;

/// Longest query accepted, in bytes; longer is a 400, not a slow scan.
pub const MAX_QUERY_BYTES: usize = 4096;
/// Answers with more hits than this are not kept for a repeated request.
const KEEP_HITS: usize = 50;
/// Most words a query may have.
const MAX_TERMS: usize = 64;
/// Most hits one answer gives; a larger `limit` gives this many.
pub const MAX_LIMIT: usize = 1000;
/// How deep pages reach: `offset + limit` at most this many hits, so that no request
/// makes a search read every match it has.
pub const MAX_DEPTH: usize = 10_000;

/// How a search ranks: by words (BM25), by meaning (the nearest section vectors), or
/// both fused.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    #[default]
    Lexical,
    Semantic,
    Hybrid,
}

impl Mode {
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Lexical => "lexical",
            Mode::Semantic => "semantic",
            Mode::Hybrid => "hybrid",
        }
    }
}

/// The candidates of a search by meaning, best first, with each one's ranks.
struct Fused {
    top: Vec<(Score, tantivy::DocAddress)>,
    ranks: HashMap<tantivy::DocAddress, Ranks>,
    /// A larger `want` would bring more.
    more: bool,
    /// Sections found: by words, and those only the vectors brought (semantic: the
    /// candidates read).
    matches: usize,
}

/// Candidates each side of a hybrid search brings to the fusion, at least.
const FUSED_CANDIDATES: usize = 100;
/// Reciprocal rank fusion: a hit scores `weight / (RRF_K + rank)` from each side.
/// Chosen on SciFact's train split (bench/relevance.py --fusion, all-MiniLM-L6-v2):
/// k 10 with equal weights gave nDCG@10 0.7210, the customary k 60 0.7121 (lexical
/// alone 0.6861, semantic alone 0.6597); a vector weight of 0.75 or 1.25 scored lower.
const RRF_K: f32 = 10.0;
const LEXICAL_WEIGHT: f32 = 1.0;
const VECTOR_WEIGHT: f32 = 1.0;

/// The nearest stored vectors to the query, best first, at most as many as asked, of
/// the given keys only when there are: `(key, cosine)`. A longer list starts with a
/// shorter one.
pub type Nearest<'a> = &'a dyn Fn(
    usize,
    Option<&std::collections::HashSet<crate::embed::store::Key>>,
) -> Vec<(crate::embed::store::Key, f32)>;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    pub q: String,
    pub limit: usize,
    /// Hits of the whole ranked list to skip: the answer is hits `offset..offset+limit`.
    pub offset: usize,
    pub path_prefix: Option<String>,
    pub max_per_file: usize,
    /// The most the hits may take, in estimated tokens (see [`crate::tokens`]): the best
    /// hits that fit, or the first alone with its snippet cut.
    pub max_tokens: Option<usize>,
    pub mode: Mode,
    /// Each hit says its rank on each side (see [`Ranks`]).
    pub explain: bool,
}

/// Where a hit ranked on each side of a search (1 is first); `None` when that side
/// did not bring it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ranks {
    pub lexical: Option<usize>,
    pub vector: Option<usize>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Hit {
    /// The section's id, `path#anchor`: `/documents` reads the section back by it.
    /// (Empty in an answer from a resident that predates ids.)
    #[serde(default)]
    pub id: String,
    pub path: String,
    pub title: String,
    pub headings: Vec<String>,
    pub line_start: u64,
    pub line_end: u64,
    pub score: f32,
    pub snippet: String,
    /// `[start, end)` character offsets of the matched words in `snippet`.
    pub highlights: Vec<[usize; 2]>,
    /// With `explain`: the hit's rank by words and by meaning.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ranks: Option<Ranks>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Response {
    pub query: String,
    /// How the hits were ranked.
    #[serde(default)]
    pub mode: Mode,
    /// Shared: an answer kept for a repeated request is not copied hit by hit.
    pub hits: Arc<[Hit]>,
    /// Sections matching the query before the per-file cap, merging and the limit.
    pub total_matches: usize,
    /// The request's `offset`: `hits` start there in the whole ranked list.
    #[serde(default)]
    pub offset: usize,
    /// Where the next page starts; `None` exactly when no hit follows these.
    #[serde(default)]
    pub next_offset: Option<usize>,
    /// Hits were left out, or the one hit's snippet cut, to fit `max_tokens`.
    #[serde(default)]
    pub truncated: bool,
    pub took_ms: f64,
}

struct Weights {
    field: Field,
    boost: f32,
    analyzer: &'static str,
}

/// A section's stored fields as a hit takes them: each value read once, into a value
/// the hit can own (a `TantivyDocument` copies every string into itself, and a hit
/// would copy them again).
pub(super) struct StoredSection(Vec<(Field, Stored)>);

enum Stored {
    Text(String),
    Number(u64),
}

impl StoredSection {
    /// The texts of `field`, each taken out as it is reached.
    fn texts(&mut self, field: Field) -> impl Iterator<Item = String> + '_ {
        self.0.iter_mut().filter_map(move |(f, v)| match v {
            Stored::Text(t) if *f == field => Some(std::mem::take(t)),
            _ => None,
        })
    }

    /// The first text of `field` (empty if none).
    pub(super) fn take(&mut self, field: Field) -> String {
        self.texts(field).next().unwrap_or_default()
    }

    /// Every text of `field`.
    pub(super) fn take_all(&mut self, field: Field) -> Vec<String> {
        self.texts(field).collect()
    }

    /// The first number of `field` (0 if none).
    fn number(&self, field: Field) -> u64 {
        self.0
            .iter()
            .find_map(|(f, v)| match v {
                Stored::Number(n) if *f == field => Some(*n),
                _ => None,
            })
            .unwrap_or_default()
    }
}

impl DocumentDeserialize for StoredSection {
    fn deserialize<'de, D>(mut doc: D) -> std::result::Result<Self, DeserializeError>
    where
        D: DocumentDeserializer<'de>,
    {
        let mut fields = Vec::with_capacity(doc.size_hint());
        while let Some(entry) = doc.next_field()? {
            fields.push(entry);
        }
        Ok(StoredSection(fields))
    }
}

impl ValueDeserialize for Stored {
    /// Only text and u64 fields are stored (see [`super::schema`]); a value of another
    /// type is an error, not a panic.
    fn deserialize<'de, D>(value: D) -> std::result::Result<Self, DeserializeError>
    where
        D: ValueDeserializer<'de>,
    {
        struct Visitor;
        impl ValueVisitor for Visitor {
            type Value = Stored;
            fn visit_string(&self, text: String) -> std::result::Result<Stored, DeserializeError> {
                Ok(Stored::Text(text))
            }
            fn visit_u64(&self, n: u64) -> std::result::Result<Stored, DeserializeError> {
                Ok(Stored::Number(n))
            }
        }
        value.deserialize_any(Visitor)
    }
}

/// A quick search (see [`Engine::is_quick`]): at most this many runs of letters and
/// digits, on an index of at most this many live sections.
const QUICK_RUNS: usize = 8;
const QUICK_SECTIONS: u64 = 100_000;

/// The length of `hit` in JSON, as an answer carries it.
fn json_bytes(hit: &Hit) -> usize {
    serde_json::to_vec(hit).map_or(0, |v| v.len())
}

/// Cuts `hit`'s snippet so that its JSON takes about `budget` bytes (on a character
/// boundary; the highlights past the cut go with it).
fn cut_snippet(hit: &mut Hit, budget: usize) {
    let snippet = std::mem::take(&mut hit.snippet);
    let highlights = std::mem::take(&mut hit.highlights);
    let room = budget.saturating_sub(json_bytes(hit));
    let mut at = room.min(snippet.len());
    while !snippet.is_char_boundary(at) {
        at -= 1;
    }
    let chars = snippet[..at].chars().count();
    hit.snippet = snippet[..at].to_owned();
    hit.highlights = highlights
        .into_iter()
        .filter(|[_, end]| *end <= chars)
        .collect();
}

impl Engine {
    /// Whether searching `req` is a small job: no quotes (phrases read positions), at
    /// most [`QUICK_RUNS`] runs of letters and digits in the whole query (they bound
    /// its tokens: `a-b-c` is one word of three, and exclusions and path prefixes cost
    /// too), on an index of at most [`QUICK_SECTIONS`] sections. On the 48 MB test
    /// corpus (60k sections) a typical one takes 0.3-0.6 ms, and eight of the commonest
    /// English words about 4 ms. A page deeper than one answer can hold
    /// ([`MAX_LIMIT`]) reads more sections than that, and is not quick. The server runs
    /// quick searches on the thread that read the request: handing one to another
    /// thread costs about as much.
    pub fn is_quick(&self, req: &Request) -> bool {
        let runs = req
            .q
            .split(|c: char| !c.is_alphanumeric())
            .filter(|run| !run.is_empty())
            .count();
        req.q.len() <= MAX_QUERY_BYTES
            && !req.q.contains('"')
            && runs <= QUICK_RUNS
            && req.offset.saturating_add(req.limit.clamp(1, MAX_LIMIT)) <= MAX_LIMIT
            && self.searcher().num_docs() <= QUICK_SECTIONS
    }

    /// The answer to `req` from the current reader; a request already answered from
    /// the same commit is answered again without searching (see [`super::recent`]).
    pub fn search(&self, req: &Request) -> Result<Response> {
        let started = Instant::now();
        let searcher = self.searcher();
        let generation = searcher.generation().generation_id();
        if let Some(mut answer) = self.recent.answer(generation, req) {
            answer.took_ms = started.elapsed().as_secs_f64() * 1000.0;
            return Ok(answer);
        }
        let answer = self.search_in(&searcher, req, started, None)?;
        // Big answers are not worth their memory: the kept ones stay small.
        if answer.hits.len() <= KEEP_HITS {
            self.recent.keep(generation, req, &answer);
        }
        Ok(answer)
    }

    /// The answer to a semantic or hybrid `req`, whose vector side `nearest` gives;
    /// never kept for a repeated request (vectors arrive between commits).
    pub fn search_near(&self, req: &Request, nearest: Nearest) -> Result<Response> {
        let started = Instant::now();
        let searcher = self.searcher();
        self.search_in(&searcher, req, started, Some(nearest))
    }

    /// The fused candidates of a semantic or hybrid search, best first, and each one's
    /// ranks. The query's filters hold on both sides (see [`Engine::allowed`]). Hybrid
    /// fuses the best [`FUSED_CANDIDATES`] of each side and goes on with the rest of the
    /// lexical list in its order: the list does not depend on `want`, so every page of
    /// an answer reads the same one (a deeper page only reads more of it).
    fn fused(
        &self,
        searcher: &tantivy::Searcher,
        req: &Request,
        parsed: &Parsed,
        want: usize,
        nearest: Nearest,
    ) -> Result<Fused> {
        let n = want.max(FUSED_CANDIDATES);
        let allowed = self.allowed(searcher, parsed)?;
        let keep = allowed.as_ref().map(|a| &a.keys);
        let mut ranks: HashMap<tantivy::DocAddress, Ranks> = HashMap::new();
        if req.mode == Mode::Semantic {
            let near = nearest(n, keep);
            let vector = self.sections_of(searcher, &near, allowed.as_ref())?;
            for (i, (_, addr)) in vector.iter().enumerate() {
                ranks.entry(*addr).or_default().vector.get_or_insert(i + 1);
            }
            return Ok(Fused {
                matches: vector.len(),
                top: vector,
                ranks,
                more: near.len() == n,
            });
        }
        let near = nearest(FUSED_CANDIDATES, keep);
        let vector = self.sections_of(searcher, &near, allowed.as_ref())?;
        let (lexical, matched) = self.top(searcher, parsed, n, true)?.unwrap_or_default();
        let mut scores: HashMap<tantivy::DocAddress, Score> = HashMap::new();
        let mut by_meaning_only = 0;
        for (i, (_, addr)) in lexical.iter().take(FUSED_CANDIDATES).enumerate() {
            *scores.entry(*addr).or_default() += LEXICAL_WEIGHT / (RRF_K + (i + 1) as f32);
            ranks.entry(*addr).or_default().lexical.get_or_insert(i + 1);
        }
        for (i, (_, addr)) in vector.iter().enumerate() {
            let r = ranks.entry(*addr).or_default();
            if r.vector.is_none() {
                by_meaning_only += usize::from(r.lexical.is_none());
                r.vector = Some(i + 1);
                *scores.entry(*addr).or_default() += VECTOR_WEIGHT / (RRF_K + (i + 1) as f32);
            }
        }
        let mut fused: Vec<(Score, tantivy::DocAddress)> =
            scores.into_iter().map(|(a, s)| (s, a)).collect();
        fused.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
        // Past the fused candidates, the lexical list in its order, scored below them.
        let mut floor = fused.last().map_or(Score::INFINITY, |&(s, _)| s);
        for (i, &(_, addr)) in lexical.iter().enumerate().skip(FUSED_CANDIDATES) {
            if ranks.contains_key(&addr) {
                continue;
            }
            floor = floor.min(LEXICAL_WEIGHT / (RRF_K + (i + 1) as f32));
            ranks.entry(addr).or_default().lexical = Some(i + 1);
            fused.push((floor, addr));
        }
        Ok(Fused {
            top: fused,
            ranks,
            more: lexical.len() < matched,
            matches: matched + by_meaning_only,
        })
    }

    fn search_in(
        &self,
        searcher: &tantivy::Searcher,
        req: &Request,
        started: Instant,
        nearest: Option<Nearest>,
    ) -> Result<Response> {
        if req.q.len() > MAX_QUERY_BYTES {
            return Err(EngineError::BadQuery(format!(
                "query is {} bytes; the limit is {MAX_QUERY_BYTES}",
                req.q.len()
            )));
        }
        let limit = req.limit.clamp(1, MAX_LIMIT);
        // Where the page ends in the whole list of hits.
        let depth = req
            .offset
            .checked_add(limit)
            .filter(|&d| d <= MAX_DEPTH)
            .ok_or_else(|| {
                EngineError::BadQuery(format!(
                    "offset {} and limit {limit} reach past hit {MAX_DEPTH}, the deepest \
                     a search pages; narrow the query (more words, path:) instead",
                    req.offset
                ))
            })?;
        let mut parsed = query::parse(&req.q);
        if let Some(p) = req.path_prefix.as_deref().filter(|p| !p.is_empty()) {
            parsed
                .path_prefixes
                .push(p.trim_start_matches("./").to_owned());
        }
        let nearest = nearest.filter(|_| req.mode != Mode::Lexical);
        if !parsed.has_positive_terms() {
            return Err(EngineError::BadQuery(
                "the query has no words to search for".into(),
            ));
        }
        if parsed.words.len() + parsed.phrases.len() > MAX_TERMS {
            return Err(EngineError::BadQuery(format!(
                "the query has more than {MAX_TERMS} terms"
            )));
        }
        let f = &self.fields;
        let mut stems = Vec::new();
        for text in parsed.words.iter().chain(&parsed.phrases) {
            stems.extend(
                self.tokens(analyzer::STEMMED, text)?
                    .into_iter()
                    .map(|(_, t)| t),
            );
        }
        let mut snippets = Snippets::new(stems);
        let mut truncated = false;
        let mode = if nearest.is_some() {
            req.mode
        } else {
            Mode::Lexical
        };
        let answer = |hits: Vec<Hit>, total_matches, next_offset, truncated| Response {
            query: req.q.clone(),
            mode,
            hits: hits.into(),
            total_matches,
            offset: req.offset,
            next_offset,
            truncated,
            took_ms: started.elapsed().as_secs_f64() * 1000.0,
        };
        // With a budget, each hit's JSON is measured as it is made: the hits that do
        // not fit are never read further (no snippet), and the answer says where the
        // next page starts.
        let budget = req.max_tokens.map(|t| t.saturating_mul(BYTES_PER_TOKEN));
        let mut used = 0;
        let mut depth = depth;
        // The hits up to the end of the page, and one more that says whether another
        // page follows; only the page's own hits get a snippet. Twice as many of the
        // best sections is nearly always enough. When one file holds so many of them that
        // the cap per file leaves too few, the search runs once more for every match,
        // and the hits go on from where the first run's candidates ended: both rank
        // alike (score, then address), so the first run's candidates are the start of
        // the second's, and the verdicts on them stand.
        let mut want = 2 * (depth + 1);
        let mut kept = Kept::new(req.max_per_file);
        let mut hits: Vec<Hit> = Vec::new();
        let mut done = 0;
        let mut fused = None;
        let mut matches = None;
        loop {
            let top = match nearest {
                // "More" is one past the candidates: not the last run.
                Some(nearest) => {
                    let f = self.fused(searcher, req, &parsed, want, nearest)?;
                    let total = f.top.len() + usize::from(f.more);
                    (fused, matches) = (Some(f.ranks), Some(f.matches));
                    Some((f.top, total))
                }
                None => self.top(searcher, &parsed, want, true)?,
            };
            let Some((top, total)) = top else {
                // Only punctuation: nothing can match, and that is an answer, not an
                // error.
                return Ok(answer(Vec::new(), 0, None, false));
            };
            let last = top.len() < want || top.len() >= total;
            for &(score, addr) in &top[done.min(top.len())..] {
                let mut doc: StoredSection = searcher.doc(addr)?;
                let path = doc.take(f.path);
                let (start, end) = (doc.number(f.line_start), doc.number(f.line_end));
                let n = match kept.offer(&path, start, end) {
                    Verdict::Hit(n) => n,
                    Verdict::Capped => continue,
                    Verdict::Merged { into, start, end } => {
                        let on_page = into.checked_sub(req.offset);
                        if let Some(hit) = on_page.and_then(|i| hits.get_mut(i)) {
                            (hit.line_start, hit.line_end) = (start, end);
                        }
                        continue;
                    }
                };
                if n < req.offset {
                    continue;
                }
                if n == depth {
                    return Ok(answer(hits, matches.unwrap_or(total), Some(n), truncated));
                }
                let (snippet, highlights) = snippets.of(&doc.take(f.body));
                hits.push(Hit {
                    id: format!("{path}#{}", doc.take(f.anchor)),
                    title: doc.take(f.title),
                    headings: doc.take_all(f.headings),
                    line_start: start,
                    line_end: end,
                    score,
                    snippet,
                    highlights,
                    path,
                    ranks: req.explain.then(|| match &fused {
                        Some(ranks) => ranks.get(&addr).copied().unwrap_or_default(),
                        None => Ranks {
                            lexical: Some(n + 1),
                            vector: None,
                        },
                    }),
                });
                let first = hits.len() == 1;
                if let (Some(budget), Some(hit)) = (budget, hits.last_mut()) {
                    let cost = json_bytes(hit);
                    if used + cost > budget {
                        truncated = true;
                        if !first {
                            hits.pop();
                            return Ok(answer(hits, matches.unwrap_or(total), Some(n), truncated));
                        }
                        // Not even the first fits: it stays, cut, and the page ends
                        // after it.
                        cut_snippet(hit, budget);
                        depth = n + 1;
                    }
                    used += cost;
                }
            }
            if last {
                return Ok(answer(hits, matches.unwrap_or(total), None, truncated));
            }
            done = top.len();
            // A search by meaning reads four times as far (its list has no count).
            want = match nearest {
                Some(_) => want.saturating_mul(4),
                None => total,
            };
        }
    }

    fn weights(&self) -> [Weights; 5] {
        let f = &self.fields;
        let w = |field, boost, analyzer| Weights {
            field,
            boost,
            analyzer,
        };
        [
            // Tuned on SciFact (train): title and headings are short fields, so BM25's
            // length normalisation already scores a word there far above the same word
            // in a long body; larger weights on top of that cost 0.05-0.16 nDCG@10.
            w(f.title, 0.6, analyzer::STEMMED),
            w(f.headings, 0.8, analyzer::STEMMED),
            w(f.body, 1.0, analyzer::STEMMED),
            w(f.title_exact, 0.1, analyzer::EXACT),
            w(f.headings_exact, 0.1, analyzer::EXACT),
        ]
    }

    /// Tokens of `text` with their positions.
    fn tokens(&self, analyzer: &str, text: &str) -> Result<Vec<(usize, String)>> {
        analyzer::tokens(analyzer, text)
            .ok_or_else(|| EngineError::BadQuery(format!("analyzer {analyzer} is not known")))
    }

    /// The best `want` sections for `parsed` (score, then address) and how many
    /// matched; `None` when no word of it yields a searchable token. Without phrases,
    /// with at most [`words::MAX_WORDS`] words, and unless `by_terms` is false, scored
    /// a term at a time (see [`words`]).
    fn top(
        &self,
        searcher: &tantivy::Searcher,
        parsed: &Parsed,
        want: usize,
        by_terms: bool,
    ) -> Result<Option<words::Top>> {
        let ranked = self.ranked_words(parsed)?;
        let by_terms = by_terms && parsed.phrases.is_empty() && ranked.len() <= words::MAX_WORDS;
        if !by_terms {
            let Some(query) = self.build(parsed, &ranked)? else {
                return Ok(None);
            };
            return Ok(Some(
                searcher.search(&query, &(TopDocs::with_limit(want), Count))?,
            ));
        }
        let mut terms = Vec::new();
        for w in &ranked {
            let word = self.word_terms(w)?;
            if !word.is_empty() {
                terms.push(word);
            }
        }
        if terms.is_empty() {
            return Ok(None);
        }
        let scoring = EnableScoring::disabled_from_searcher(searcher);
        let weight = |q: Option<Box<dyn Query>>| q.map(|q| q.weight(scoring)).transpose();
        let filters = words::Filters {
            require: weight(self.prefix_query(parsed)?)?,
            exclude: weight(self.excluded_query(parsed)?)?,
        };
        Ok(Some(words::top(searcher, &terms, &filters, want)?))
    }

    /// The words of a query as they are ranked: a word with CJK in it stands for each
    /// of its tokens (pairs of characters, see [`analyzer::is_cjk`]), so a section
    /// holding every pair of a CJK word ranks as one holding every word, above one
    /// holding some (`トレーニング` shares two of the three pairs of `トレース`).
    fn ranked_words(&self, parsed: &Parsed) -> Result<Vec<String>> {
        let mut out = Vec::with_capacity(parsed.words.len());
        for w in &parsed.words {
            if w.chars().any(analyzer::is_cjk) {
                out.extend(self.tokens(analyzer::EXACT, w)?.into_iter().map(|(_, t)| t));
            } else {
                out.push(w.clone());
            }
        }
        Ok(out)
    }

    /// Every token of `word` in every field, with the field's boost.
    fn word_terms(&self, word: &str) -> Result<words::Word> {
        let stemmed = self.tokens(analyzer::STEMMED, word)?;
        let exact = self.tokens(analyzer::EXACT, word)?;
        let mut terms = Vec::new();
        for w in self.weights() {
            let tokens = if w.analyzer == analyzer::STEMMED {
                &stemmed
            } else {
                &exact
            };
            for (_, token) in tokens {
                terms.push((Term::from_field_text(w.field, token), w.boost));
            }
        }
        Ok(terms)
    }

    /// A word matched anywhere: SHOULD over every field and every token of the word.
    fn word_query(&self, word: &str) -> Result<Option<Box<dyn Query>>> {
        let clauses: Vec<(Occur, Box<dyn Query>)> = self
            .word_terms(word)?
            .into_iter()
            .map(|(term, boost)| {
                let q = TermQuery(term);
                (
                    Occur::Should,
                    Box::new(BoostQuery::new(Box::new(q), boost)) as Box<dyn Query>,
                )
            })
            .collect();
        Ok((!clauses.is_empty()).then(|| Box::new(BooleanQuery::new(clauses)) as Box<dyn Query>))
    }

    /// A phrase in any of the stemmed fields.
    pub(super) fn phrase_query(&self, phrase: &str) -> Result<Option<Box<dyn Query>>> {
        let mut clauses: Vec<(Occur, Box<dyn Query>)> = Vec::new();
        for w in self
            .weights()
            .into_iter()
            .filter(|w| w.analyzer == analyzer::STEMMED)
        {
            // An identifier yields its whole form and its first part at one position;
            // keep the parts, which is what the document's positions line up with.
            let mut by_pos: Vec<(usize, String)> = Vec::new();
            for (pos, tok) in self.tokens(w.analyzer, phrase)? {
                match by_pos.last_mut() {
                    Some(last) if last.0 == pos => last.1 = tok,
                    _ => by_pos.push((pos, tok)),
                }
            }
            let q: Box<dyn Query> = match by_pos.len() {
                0 => continue,
                1 => Box::new(TermQuery(Term::from_field_text(w.field, &by_pos[0].1))),
                _ => {
                    let base = by_pos[0].0;
                    let terms = by_pos
                        .iter()
                        .map(|(p, t)| (p - base, Term::from_field_text(w.field, t)))
                        .collect();
                    // Two terms or more, of one field.
                    match PhraseQuery::new(terms) {
                        Some(q) => Box::new(q),
                        None => continue,
                    }
                }
            };
            clauses.push((Occur::Should, Box::new(BoostQuery::new(q, w.boost))));
        }
        Ok((!clauses.is_empty()).then(|| Box::new(BooleanQuery::new(clauses)) as Box<dyn Query>))
    }

    /// The query, or `None` when no word of it yields a searchable token. `ranked`:
    /// its words as [`Engine::ranked_words`] gives them.
    fn build(&self, p: &Parsed, ranked: &[String]) -> Result<Option<Box<dyn Query>>> {
        let mut clauses: Vec<(Occur, Box<dyn Query>)> = Vec::new();
        let mut words = Vec::new();
        for w in ranked {
            if let Some(q) = self.word_query(w)? {
                words.push(q);
            }
        }
        let positive: Option<Box<dyn Query>> = match words.len() {
            0 => None,
            1 => words.pop(),
            _ => Some(Box::new(AllTermsFirst(words))),
        };
        let mut phrases = Vec::new();
        for ph in &p.phrases {
            if let Some(q) = self.phrase_query(ph)? {
                phrases.push((Occur::Must, q));
            }
        }
        if positive.is_none() && phrases.is_empty() {
            return Ok(None);
        }
        // Without phrases, at least one word must match; with them, words only rank.
        let occur = if phrases.is_empty() {
            Occur::Must
        } else {
            Occur::Should
        };
        if let Some(q) = positive {
            clauses.push((occur, q));
        }
        clauses.extend(phrases);
        if let Some(q) = self.excluded_query(p)? {
            clauses.push((Occur::MustNot, q));
        }
        // No `kind = chunk` filter: file records hold no title, heading or body text,
        // so the required word or phrase clauses above never match them, and the
        // filter would cost an intersection with nearly every document.
        if let Some(q) = self.prefix_query(p)? {
            clauses.push((Occur::Must, Box::new(ConstScoreQuery::new(q, 0.0))));
        }
        Ok(Some(Box::new(BooleanQuery::new(clauses))))
    }

    /// Sections holding any of the excluded words or phrases.
    pub(super) fn excluded_query(&self, p: &Parsed) -> Result<Option<Box<dyn Query>>> {
        let mut clauses: Vec<(Occur, Box<dyn Query>)> = Vec::new();
        for ex in &p.excluded {
            if let Some(q) = self.phrase_query(ex)? {
                clauses.push((Occur::Should, q));
            }
        }
        Ok((!clauses.is_empty()).then(|| Box::new(BooleanQuery::new(clauses)) as Box<dyn Query>))
    }

    /// Sections under any of the path prefixes.
    pub(super) fn prefix_query(&self, p: &Parsed) -> Result<Option<Box<dyn Query>>> {
        let mut clauses: Vec<(Occur, Box<dyn Query>)> = Vec::new();
        for prefix in &p.path_prefixes {
            // The paths from `prefix` up to `prefix` and a 0xFF byte, which no UTF-8
            // text holds: exactly those starting with it, whatever its length (a
            // regex would have a size limit).
            let from = Term::from_field_text(self.fields.path, prefix);
            let mut to = from.clone();
            to.append_bytes(&[0xFF]);
            let q = RangeQuery::new(Bound::Included(from), Bound::Excluded(to));
            clauses.push((Occur::Should, Box::new(q)));
        }
        Ok((!clauses.is_empty()).then(|| Box::new(BooleanQuery::new(clauses)) as Box<dyn Query>))
    }
}

/// Words ranked together: a section scores the sum of its words' scores, doubled when
/// it holds every word, so all-terms matches rank first and partial ones still come
/// back. One pass over each word's postings (a bonus clause requiring every word would
/// score each of them twice).
#[derive(Debug)]
struct AllTermsFirst(Vec<Box<dyn Query>>);

impl Clone for AllTermsFirst {
    fn clone(&self) -> Self {
        AllTermsFirst(self.0.iter().map(|q| q.box_clone()).collect())
    }
}

impl Query for AllTermsFirst {
    fn weight(&self, scoring: EnableScoring<'_>) -> tantivy::Result<Box<dyn Weight>> {
        let words = self
            .0
            .iter()
            .map(|q| Ok((Occur::Should, q.weight(scoring)?)))
            .collect::<tantivy::Result<_>>()?;
        let all = self.0.len() as u32;
        Ok(Box::new(BooleanWeight::new(
            words,
            scoring.is_scoring_enabled(),
            Box::new(move || AllTermsBonus {
                all,
                ..AllTermsBonus::default()
            }),
        )))
    }

    fn query_terms<'a>(&'a self, visitor: &mut dyn FnMut(&'a Term, bool)) {
        for q in &self.0 {
            q.query_terms(visitor);
        }
    }
}

/// The score of [`AllTermsFirst`]: called once per matching word.
#[derive(Default, Clone, Copy)]
struct AllTermsBonus {
    all: u32,
    matched: u32,
    sum: Score,
}

impl ScoreCombiner for AllTermsBonus {
    fn update<S: Scorer>(&mut self, scorer: &mut S) {
        self.matched += 1;
        self.sum += scorer.score();
    }

    fn clear(&mut self) {
        self.matched = 0;
        self.sum = 0.0;
    }

    fn score(&self) -> Score {
        if self.matched >= self.all {
            2.0 * self.sum
        } else {
            self.sum
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;
    use crate::config::CoordinationMode;
    use crate::engine::{FileRecord, WriteOptions};
    use crate::ingest::chunk::{self, ChunkOptions, Format};
    use tantivy::{DocAddress, DocId};

    /// Pseudo-random Markdown over a small vocabulary, so that words share sections
    /// in every combination, with identifiers and headings among them.
    fn corpus(files: usize, seed: u64) -> Vec<(String, String)> {
        const VOCAB: &[&str] = &[
            "error",
            "errors",
            "handling",
            "handle",
            "runtime",
            "tokio",
            "spawn",
            "borrow",
            "borrowing",
            "lifetime",
            "trait",
            "closure",
            "iterator",
            "async",
            "snake_case",
            "CamelCase",
            "foo::bar",
            "--flag",
            "トレース",
            "分散トレースと",
            "トレーニング",
            "index",
            "query",
            "the",
            "a",
        ];
        let mut x = seed;
        let mut next = move |n: usize| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x % n as u64) as usize
        };
        (0..files)
            .map(|f| {
                let mut text = format!("# {} {}\n\n", VOCAB[next(VOCAB.len())], f);
                for _ in 0..1 + next(4) {
                    text.push_str(&format!("## {}\n\n", VOCAB[next(VOCAB.len())]));
                    for _ in 0..next(60) {
                        text.push_str(VOCAB[next(VOCAB.len())]);
                        text.push(' ');
                    }
                    text.push_str("\n\n");
                }
                (format!("docs/{}/f{f}.md", ["a", "b"][f % 2]), text)
            })
            .collect()
    }

    const OPTS: ChunkOptions = ChunkOptions {
        chunk_size: 40,
        chunk_overlap: 5,
    };

    /// An empty index in `dir`, without the cross-process lock.
    fn open(dir: &std::path::Path) -> Engine {
        let write = WriteOptions {
            coordination: CoordinationMode::None,
            lock_timeout: std::time::Duration::from_secs(5),
        };
        Engine::open(dir, write).unwrap()
    }

    /// An engine of four segments, one a batch, each batch rewriting some files of the
    /// ones before: some sections are deleted.
    fn segmented(dir: &std::path::Path) -> Engine {
        let engine = open(dir);
        let (opts, record) = (OPTS, FileRecord::default());
        for batch in 0..4 {
            let mut lease = engine.small_lease().unwrap();
            for (path, text) in corpus(120 - 20 * batch as usize, batch + 1) {
                let doc = chunk::chunk(&text, Format::Markdown, "f", &opts);
                lease.upsert(&path, &record, &doc).unwrap();
            }
            lease.commit().unwrap();
        }
        engine.reload().unwrap();
        let searcher = engine.searcher();
        assert!(searcher.segment_readers().len() > 1);
        assert!(
            searcher
                .segment_readers()
                .iter()
                .any(|s| s.num_deleted_docs() > 0)
        );
        engine
    }

    /// Plain words with identifiers, CJK, exclusions and path prefixes.
    const MIXED_QUERIES: &[&str] = &[
        "error",
        "error handling",
        "borrowing lifetime closure",
        "snake_case tokio",
        "CamelCase foo::bar --flag",
        "the a",
        "runtime -spawn",
        "iterator trait path:docs/a",
        "async -\"error handling\" path:docs/b/",
        "zanzibar error",
        "トレース error",
        "トレース",
        "分散トレース -トレーニング",
        "zanzibar",
    ];

    /// Term-at-a-time scoring ranks exactly as the scorers do (tantivy's boolean
    /// queries over [`super::bm25`]'s term scorers), over several
    /// segments with deleted sections, with exclusions and path prefixes.
    #[test]
    fn scoring_by_terms_matches_the_scorers() {
        let dir = tempfile::tempdir().unwrap();
        let engine = segmented(dir.path());
        let searcher = engine.searcher();
        // As many words as a query scored by terms may have.
        let longest = ["error handling tokio borrow"; 8].join(" ");
        for q in MIXED_QUERIES.iter().copied().chain([longest.as_str()]) {
            let parsed = query::parse(q);
            let by_terms = engine.top(&searcher, &parsed, 60, true).unwrap();
            let scorers = engine.top(&searcher, &parsed, 60, false).unwrap();
            let (Some((a, a_total)), Some((b, b_total))) = (by_terms, scorers) else {
                panic!("{q}: no query");
            };
            assert_eq!(a_total, b_total, "{q}");
            assert_eq!(a.len(), b.len(), "{q}");
            let close = |x: f32, y: f32| (x - y).abs() <= 1e-4 * x.abs().max(1.0);
            for ((x, _), (y, _)) in a.iter().zip(&b) {
                assert!(close(*x, *y), "{q}: {a:?} vs {b:?}");
            }
            // Sums in another order can break a tie differently, and only a tie.
            let b_scores: HashMap<DocAddress, f32> = b.iter().map(|(s, d)| (*d, *s)).collect();
            let last = a.last().map_or(0.0, |(s, _)| *s);
            for (score, addr) in &a {
                if !close(*score, last) {
                    let other = b_scores.get(addr);
                    assert!(other.is_some_and(|o| close(*o, *score)), "{q}: {addr:?}");
                }
            }
        }
    }

    /// Scored a window of documents at a time, a search answers as when each segment
    /// is scored whole, to the bit: scores, order and total, windows of any size.
    #[test]
    fn scoring_in_windows_answers_as_scoring_whole_segments() {
        let dir = tempfile::tempdir().unwrap();
        let engine = segmented(dir.path());
        let searcher = engine.searcher();
        let biggest = searcher.segment_readers().iter().map(|s| s.max_doc()).max();
        assert!(biggest > Some(64), "{biggest:?}");
        let top = |q: &str, want, window| {
            words::TEST_WINDOW.with(|w| w.set(window));
            let parsed = query::parse(q);
            let (hits, total) = engine.top(&searcher, &parsed, want, true).unwrap().unwrap();
            let hits: Vec<_> = hits.iter().map(|(s, a)| (s.to_bits(), *a)).collect();
            (hits, total)
        };
        for q in MIXED_QUERIES {
            for want in [1, 11, 60] {
                let whole = top(q, want, DocId::MAX);
                for window in [1, 7, 64] {
                    assert_eq!(
                        top(q, want, window),
                        whole,
                        "{q}, want {want}, window {window}"
                    );
                }
            }
        }
    }

    #[test]
    fn quick_searches_are_few_plain_words() {
        let dir = tempfile::tempdir().unwrap();
        let engine = open(dir.path());
        let req = |q: &str| Request {
            q: q.to_owned(),
            limit: 10,
            offset: 0,
            path_prefix: None,
            max_per_file: 3,
            max_tokens: None,
            mode: Default::default(),
            explain: false,
        };
        let eight = "a b c d e f g h";
        assert!(engine.is_quick(&req("error handling -tokio path:docs/")));
        assert!(engine.is_quick(&req(eight)));
        assert!(!engine.is_quick(&req(&format!("{eight} i"))));
        assert!(!engine.is_quick(&req("\"error handling\"")));
        assert!(!engine.is_quick(&req("error -\"error handling\"")));
        // One word of many tokens, many exclusions, many path prefixes.
        assert!(!engine.is_quick(&req(&"the-".repeat(9))));
        assert!(!engine.is_quick(&req("error -a -b -c -d -e -f -g -h")));
        assert!(!engine.is_quick(&req("error path:a/b path:c/d path:e/f path:g")));
        assert!(!engine.is_quick(&req(&"a".repeat(MAX_QUERY_BYTES + 1))));
        // A deep page reads more sections than a page can hold.
        let deep = |offset, limit| Request {
            offset,
            limit,
            ..req("error")
        };
        assert!(engine.is_quick(&deep(990, 10)));
        assert!(engine.is_quick(&deep(0, 5000)));
        assert!(!engine.is_quick(&deep(991, 10)));
        assert!(!engine.is_quick(&deep(usize::MAX, 10)));
    }

    /// A path prefix is taken literally, at any length.
    #[test]
    fn path_prefixes_are_literal_at_any_length() {
        let dir = tempfile::tempdir().unwrap();
        let engine = open(dir.path());
        let (opts, record) = (OPTS, FileRecord::default());
        let long = format!("docs/{}/", "x".repeat(3000));
        let mut lease = engine.small_lease().unwrap();
        for path in ["docs/a.b-c/one.md", "docs/aXb-c/two.md", "docs/é/three.md"]
            .into_iter()
            .map(String::from)
            .chain([format!("{long}four.md")])
        {
            let doc = chunk::chunk("# Title\n\nneedle\n", Format::Markdown, "f", &opts);
            lease.upsert(&path, &record, &doc).unwrap();
        }
        lease.commit().unwrap();
        engine.reload().unwrap();
        let paths = |prefix: &str| -> Vec<String> {
            let req = Request {
                q: "needle".into(),
                limit: 10,
                offset: 0,
                path_prefix: Some(prefix.into()),
                max_per_file: 3,
                max_tokens: None,
                mode: Default::default(),
                explain: false,
            };
            let mut paths: Vec<String> = engine
                .search(&req)
                .unwrap()
                .hits
                .iter()
                .map(|h| h.path.clone())
                .collect();
            paths.sort();
            paths
        };
        assert_eq!(paths("docs/a.b-c"), ["docs/a.b-c/one.md"]);
        assert_eq!(paths("docs/a.*"), Vec::<String>::new());
        assert_eq!(paths("docs/é"), ["docs/é/three.md"]);
        assert_eq!(paths(&long), [format!("{long}four.md")]);
        assert_eq!(paths(&format!("{long}{long}")), Vec::<String>::new());
        assert_eq!(paths("docs/").len(), 4);
    }

    /// An index of `files` chunked with `opts`, committed and visible.
    fn indexed(dir: &std::path::Path, files: &[(String, String)], opts: &ChunkOptions) -> Engine {
        let engine = open(dir);
        let mut lease = engine.small_lease().unwrap();
        for (path, text) in files {
            let doc = chunk::chunk(text, Format::Markdown, "f", opts);
            lease.upsert(path, &FileRecord::default(), &doc).unwrap();
        }
        lease.commit().unwrap();
        engine.reload().unwrap();
        engine
    }

    fn paged(q: &str, limit: usize, offset: usize, max_per_file: usize) -> Request {
        Request {
            q: q.to_owned(),
            limit,
            offset,
            path_prefix: None,
            max_per_file,
            max_tokens: None,
            mode: Default::default(),
            explain: false,
        }
    }

    /// Every page of `limit` hits, from offset 0 until one says that none follows.
    fn every_page(engine: &Engine, q: &str, limit: usize, max_per_file: usize) -> Vec<Response> {
        let mut pages = Vec::new();
        let mut offset = 0;
        loop {
            let page = engine
                .search(&paged(q, limit, offset, max_per_file))
                .unwrap();
            assert_eq!(page.offset, offset, "{q}");
            let next = page.next_offset;
            pages.push(page);
            match next {
                Some(n) => offset = n,
                None => return pages,
            }
        }
    }

    /// Hits of one file never overlap, and no file has more than its share.
    fn check_files(hits: &[Hit], max_per_file: usize, what: &str) {
        let mut by_file: HashMap<&str, Vec<(u64, u64)>> = HashMap::new();
        for h in hits {
            let lines = by_file.entry(&h.path).or_default();
            for &(s, e) in lines.iter() {
                assert!(
                    h.line_end < s || e < h.line_start,
                    "{what}: {}:{}-{} overlaps {s}-{e}",
                    h.path,
                    h.line_start,
                    h.line_end
                );
            }
            lines.push((h.line_start, h.line_end));
            assert!(lines.len() <= max_per_file, "{what}: {}", h.path);
        }
    }

    /// A budget keeps the best hits whose JSON fits, reads no snippet past them, says so,
    /// and points the next page at the first hit left out; a budget below one hit keeps
    /// that hit, cut. Paging on from `next_offset` leaves no gap.
    #[test]
    fn a_budget_keeps_the_best_hits_that_fit() {
        let dir = tempfile::tempdir().unwrap();
        let engine = indexed(dir.path(), &corpus(60, 7), &OPTS);
        let whole = engine.search(&paged("error", 20, 0, 3)).unwrap();
        assert!(whole.hits.len() >= 6 && !whole.truncated);
        let sizes: Vec<usize> = whole.hits.iter().map(json_bytes).collect();
        // Room for the first three hits and half of the fourth.
        let room = sizes[..3].iter().sum::<usize>() + sizes[3] / 2;
        let budgeted = |max_tokens, offset| {
            engine
                .search(&Request {
                    max_tokens: Some(max_tokens),
                    ..paged("error", 20, offset, 3)
                })
                .unwrap()
        };
        let cut = budgeted(room / BYTES_PER_TOKEN, 0);
        assert_eq!(cut.hits[..], whole.hits[..3]);
        assert!(cut.truncated);
        assert_eq!(cut.next_offset, Some(3));
        let rest = engine.search(&paged("error", 17, 3, 3)).unwrap();
        assert_eq!(rest.hits[..], whole.hits[3..]);

        let one = budgeted(10, 0);
        assert_eq!(one.hits.len(), 1);
        assert!(one.truncated && one.next_offset == Some(1));
        let hit = &one.hits[0];
        assert!(whole.hits[0].snippet.starts_with(&hit.snippet));
        assert!(hit.snippet.len() < whole.hits[0].snippet.len());
        let chars = hit.snippet.chars().count();
        assert!(hit.highlights.iter().all(|[_, end]| *end <= chars));

        // A budget that holds everything changes nothing.
        let roomy = budgeted(1_000_000, 0);
        assert_eq!(roomy.hits[..], whole.hits[..]);
        assert!(!roomy.truncated);
    }

    /// Pages of an unchanged index are one ranked list cut into pieces: together they
    /// hold the hits one big page holds, in its order, without a duplicate, and only
    /// the last says that nothing follows. Over overlapping pieces (every section of
    /// the corpus is one line, so a split one is pieces of the same line), through
    /// both scoring paths.
    #[test]
    fn pages_together_are_the_whole_list() {
        let dir = tempfile::tempdir().unwrap();
        let engine = indexed(dir.path(), &corpus(60, 7), &OPTS);
        for q in [
            "error",
            "borrow -tokio",
            "the a",
            "\"error handling\"",
            "zanzibar",
        ] {
            for max_per_file in [1, 3] {
                let whole = engine
                    .search(&paged(q, MAX_LIMIT, 0, max_per_file))
                    .unwrap();
                let all = &whole.hits[..];
                assert_eq!(whole.next_offset, None, "{q}");
                assert!(all.len() < MAX_LIMIT, "{q}: the corpus is small");
                check_files(all, max_per_file, q);
                for limit in [1, 4, 10] {
                    let what = format!("{q} by {limit}, {max_per_file} a file");
                    let pages = every_page(&engine, q, limit, max_per_file);
                    let mut seen = Vec::new();
                    for (i, page) in pages.iter().enumerate() {
                        assert_eq!(page.total_matches, whole.total_matches, "{what}");
                        let is_last = i + 1 == pages.len();
                        // Full pages, but for the last; the next one starts after this.
                        if !is_last {
                            assert_eq!(page.hits.len(), limit, "{what}");
                            assert_eq!(page.next_offset, Some(seen.len() + limit), "{what}");
                        }
                        seen.extend(page.hits.iter().cloned());
                    }
                    assert_eq!(seen.len(), all.len(), "{what}");
                    check_files(&seen, max_per_file, &what);
                    for (p, w) in seen.iter().zip(all) {
                        assert_eq!(
                            (&p.path, p.score, &p.snippet, &p.headings),
                            (&w.path, w.score, &w.snippet, &w.headings),
                            "{what}"
                        );
                        // A bigger page may see more pieces merged into a hit.
                        assert!(
                            w.line_start <= p.line_start && p.line_end <= w.line_end,
                            "{what}: {p:?} vs {w:?}"
                        );
                    }
                }
                // The end, exactly: a page ending on the last hit says none follows, one
                // ending just before it says where it starts; past the end is empty.
                let n = all.len();
                if n > 1 {
                    let at = |limit, offset| {
                        let r = engine.search(&paged(q, limit, offset, max_per_file));
                        let r = r.unwrap();
                        (r.hits.len(), r.next_offset)
                    };
                    assert_eq!(at(n, 0), (n, None), "{q}");
                    assert_eq!(at(n - 1, 0), (n - 1, Some(n - 1)), "{q}");
                    assert_eq!(at(1, n - 1), (1, None), "{q}");
                    assert_eq!(at(3, n), (0, None), "{q}");
                    assert_eq!(at(3, n + 5), (0, None), "{q}");
                }
            }
        }
    }

    /// Pages reach [`MAX_DEPTH`] hits deep, and no further: a deeper one is a bad query
    /// that says so, never a search of every match.
    #[test]
    fn pages_end_at_the_deepest_hit() {
        let dir = tempfile::tempdir().unwrap();
        let engine = indexed(dir.path(), &corpus(4, 1), &OPTS);
        let search = |limit, offset| engine.search(&paged("error", limit, offset, 3));
        assert!(search(10, MAX_DEPTH - 10).is_ok());
        assert!(
            search(5000, MAX_DEPTH - MAX_LIMIT).is_ok(),
            "limit is clamped first"
        );
        for (limit, offset) in [(10, MAX_DEPTH - 9), (1, MAX_DEPTH), (10, usize::MAX)] {
            match search(limit, offset) {
                Err(EngineError::BadQuery(m)) => assert!(m.contains("offset"), "{m}"),
                other => panic!("{limit} at {offset}: {other:?}"),
            }
        }
    }

    /// A long section cut into pieces that share lines is one hit, of their lines
    /// together; a piece merged so does not count against the cap per file, and never
    /// shows up on a later page.
    #[test]
    fn overlapping_pieces_are_one_hit() {
        let opts = ChunkOptions {
            chunk_size: 20,
            chunk_overlap: 6,
        };
        let mut long = String::from("# Long\n\n");
        for i in 0..8 {
            long.push_str(&format!("needle alpha{i} beta gamma\n"));
        }
        long.push_str("\n## Apart\n\nneedle and many other words that are about other things\n");
        let files = [
            ("docs/long.md".to_owned(), long.clone()),
            (
                "docs/other.md".to_owned(),
                "# Other\n\nneedle and words\n".to_owned(),
            ),
        ];
        // The premise: two pieces of one section that share lines, and a section apart.
        let chunks = chunk::chunk(&long, Format::Markdown, "f", &opts).chunks;
        let lines: Vec<(u64, u64)> = chunks
            .iter()
            .map(|c| (c.line_start as u64, c.line_end as u64))
            .collect();
        assert_eq!(lines.len(), 3, "{lines:?}");
        let ((a, b), (c, d), apart) = (lines[0], lines[1], lines[2]);
        assert!(a < c && c <= b && b < d && d < apart.0, "{lines:?}");
        let dir = tempfile::tempdir().unwrap();
        let engine = indexed(dir.path(), &files, &opts);
        let of_long = |hits: &[Hit]| -> Vec<(u64, u64)> {
            let mut v: Vec<(u64, u64)> = hits
                .iter()
                .filter(|h| h.path == "docs/long.md")
                .map(|h| (h.line_start, h.line_end))
                .collect();
            v.sort();
            v
        };
        for max_per_file in [1, 2] {
            let r = engine
                .search(&paged("needle", 10, 0, max_per_file))
                .unwrap();
            assert_eq!(r.total_matches, 4, "every section matches, merged or not");
            let want = if max_per_file == 1 {
                vec![(a, d)]
            } else {
                vec![(a, d), apart]
            };
            assert_eq!(of_long(&r.hits), want, "{:?}", r.hits);
            assert_eq!(r.hits.len(), 1 + want.len());
            // Page by page: the same hits, each once.
            let pages = every_page(&engine, "needle", 1, max_per_file);
            let seen: Vec<Hit> = pages.iter().flat_map(|p| p.hits.iter().cloned()).collect();
            assert_eq!(seen.len(), r.hits.len(), "{seen:?}");
            assert_eq!(of_long(&seen).len(), want.len(), "{seen:?}");
        }
        // Sections apart are never merged.
        let r = engine.search(&paged("needle", 10, 0, 3)).unwrap();
        assert_eq!(of_long(&r.hits), [(a, d), apart]);
    }
}
