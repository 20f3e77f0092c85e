//! What the vector side of search needs of the index: the content key of every live
//! section (what is to be embedded), the text of a section as it is embedded, the
//! sections that hold a key (where a near vector's hits are), and which of them the
//! query's filters let through: path prefixes, phrases and exclusions hold for the hits
//! found by meaning as for those found by words.

use std::collections::{HashMap, HashSet};

use tantivy::collector::DocSetCollector;
use tantivy::query::{AllQuery, BooleanQuery, EnableScoring, Occur, Query, TermQuery};
use tantivy::schema::IndexRecordOption;
use tantivy::{DocAddress, DocId, DocSet, Searcher, SegmentReader, TERMINATED, Term};

use super::query::{self, Parsed};
use super::search::{MAX_QUERY_BYTES, StoredSection};
use super::{Engine, EngineError, Result};
use crate::embed::store::{Key, section_text};

/// The text of query `q` that a search by meaning embeds: its words and phrases, without
/// the operators (`-word`, `path:`, quotes); `None` when that holds no letter or digit
/// (punctuation means nothing, by meaning as by words). A query over the length limit
/// is refused here, before anything is embedded.
pub fn meaning_of(q: &str) -> Result<Option<String>> {
    if q.len() > MAX_QUERY_BYTES {
        return Err(EngineError::BadQuery(format!(
            "query is {} bytes; the limit is {MAX_QUERY_BYTES}",
            q.len()
        )));
    }
    let parsed = query::parse(q);
    let text = parsed
        .words
        .iter()
        .chain(&parsed.phrases)
        .map(String::as_str)
        .collect::<Vec<_>>()
        .join(" ");
    Ok(text.chars().any(char::is_alphanumeric).then_some(text))
}

/// The sections a query's filters let through, and the keys they hold.
pub(super) struct Allowed {
    pub keys: HashSet<Key>,
    /// By segment, by document.
    docs: Vec<Vec<bool>>,
}

impl Allowed {
    fn contains(&self, addr: DocAddress) -> bool {
        self.docs
            .get(addr.segment_ord as usize)
            .and_then(|d| d.get(addr.doc_id as usize))
            .is_some_and(|&ok| ok)
    }
}

impl Engine {
    /// Every key held by a live section of `searcher`, with one section holding it.
    pub fn vector_keys(&self, searcher: &Searcher) -> Result<HashMap<Key, DocAddress>> {
        let mut out = HashMap::new();
        for (ord, segment) in searcher.segment_readers().iter().enumerate() {
            self.live_keys(
                segment,
                |_| true,
                |key, doc| {
                    out.entry(key).or_insert(DocAddress::new(ord as u32, doc));
                },
            )?;
        }
        Ok(out)
    }

    /// Each key held by a live section of `segment` that `through` lets pass, with the
    /// first such section.
    fn live_keys(
        &self,
        segment: &SegmentReader,
        through: impl Fn(DocId) -> bool,
        mut found: impl FnMut(Key, DocId),
    ) -> Result<()> {
        let index = segment.inverted_index(self.fields.vkey)?;
        let alive = segment.alive_bitset();
        let mut terms = index
            .terms()
            .stream()
            .map_err(super::io("cannot read the index"))?;
        while terms.advance() {
            let Ok(key) = Key::try_from(terms.key()) else {
                continue;
            };
            let mut postings = index
                .read_postings_from_terminfo(terms.value(), IndexRecordOption::Basic)
                .map_err(super::io("cannot read the index"))?;
            let mut doc = postings.doc();
            while doc != TERMINATED {
                if through(doc) && alive.is_none_or(|a| a.is_alive(doc)) {
                    found(key, doc);
                    break;
                }
                doc = postings.advance();
            }
        }
        Ok(())
    }

    /// The text each section is embedded from (see [`section_text`]).
    pub fn embedding_texts(
        &self,
        searcher: &Searcher,
        addrs: &[DocAddress],
    ) -> Result<Vec<String>> {
        let f = &self.fields;
        addrs
            .iter()
            .map(|&addr| {
                let mut doc: StoredSection = searcher.doc(addr)?;
                let title = doc.take(f.title);
                let headings = doc.take_all(f.headings);
                Ok(section_text(&title, &headings, &doc.take(f.body)))
            })
            .collect()
    }

    /// The live sections holding each of `near`'s keys, with its score, best first;
    /// only those in `allowed`, when given.
    pub(super) fn sections_of(
        &self,
        searcher: &Searcher,
        near: &[(Key, f32)],
        allowed: Option<&Allowed>,
    ) -> Result<Vec<(f32, DocAddress)>> {
        let mut out = Vec::with_capacity(near.len());
        for (key, score) in near {
            let term = Term::from_field_bytes(self.fields.vkey, key);
            let q = TermQuery::new(term, IndexRecordOption::Basic);
            let mut docs: Vec<DocAddress> = searcher
                .search(&q, &DocSetCollector)?
                .into_iter()
                .filter(|d| allowed.is_none_or(|a| a.contains(*d)))
                .collect();
            docs.sort();
            out.extend(docs.into_iter().map(|d| (*score, d)));
        }
        Ok(out)
    }

    /// The sections `parsed`'s filters let through (under a path prefix, holding every
    /// phrase, none of the excluded words), and their keys; `None` when it has none.
    /// One pass over the key field: about as long as counting what is embedded.
    pub(super) fn allowed(&self, searcher: &Searcher, parsed: &Parsed) -> Result<Option<Allowed>> {
        let mut clauses: Vec<(Occur, Box<dyn Query>)> = Vec::new();
        if let Some(q) = self.prefix_query(parsed)? {
            clauses.push((Occur::Must, q));
        }
        for phrase in &parsed.phrases {
            if let Some(q) = self.phrase_query(phrase)? {
                clauses.push((Occur::Must, q));
            }
        }
        if let Some(q) = self.excluded_query(parsed)? {
            if clauses.is_empty() {
                clauses.push((Occur::Must, Box::new(AllQuery)));
            }
            clauses.push((Occur::MustNot, q));
        }
        if clauses.is_empty() {
            return Ok(None);
        }
        let weight =
            BooleanQuery::new(clauses).weight(EnableScoring::disabled_from_searcher(searcher))?;
        let mut allowed = Allowed {
            keys: HashSet::new(),
            docs: Vec::new(),
        };
        for segment in searcher.segment_readers() {
            let mut docs = vec![false; segment.max_doc() as usize];
            let mut scorer = weight.scorer(segment, 1.0)?;
            let mut doc = scorer.doc();
            while doc != TERMINATED {
                if let Some(d) = docs.get_mut(doc as usize) {
                    *d = true;
                }
                doc = scorer.advance();
            }
            let through = |doc: DocId| docs.get(doc as usize).is_some_and(|&ok| ok);
            self.live_keys(segment, through, |key, _| {
                allowed.keys.insert(key);
            })?;
            allowed.docs.push(docs);
        }
        Ok(Some(allowed))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_query_means_its_words_and_phrases() {
        let m = |q: &str| meaning_of(q).unwrap();
        assert_eq!(
            m(r#"restart "on failure" -docker path:docs/ops"#).as_deref(),
            Some("restart on failure")
        );
        assert_eq!(m("?! ... --"), None);
        assert_eq!(m("-bread path:docs/"), None);
        assert_eq!(m("分散トレース").as_deref(), Some("分散トレース"));
        assert!(meaning_of(&"why ".repeat(1100)).is_err());
    }
}
