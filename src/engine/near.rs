//! What the vector side of search needs of the index: the content key of every live
//! section (what is to be embedded), the text of a section as it is embedded, and the
//! sections that hold a key (where a near vector's hits are).

use std::collections::HashMap;

use tantivy::collector::DocSetCollector;
use tantivy::query::TermQuery;
use tantivy::schema::IndexRecordOption;
use tantivy::{DocAddress, DocSet, Searcher, TERMINATED, Term};

use super::search::StoredSection;
use super::{Engine, Result};
use crate::embed::store::{Key, section_text};

/// A key's hex form back to its bytes.
fn key_of_hex(hex: &[u8]) -> Option<Key> {
    if hex.len() != 32 {
        return None;
    }
    let mut key = [0; 16];
    for (i, pair) in hex.chunks_exact(2).enumerate() {
        let s = std::str::from_utf8(pair).ok()?;
        key[i] = u8::from_str_radix(s, 16).ok()?;
    }
    Some(key)
}

impl Engine {
    /// Every key held by a live section of `searcher`, with one section holding it.
    pub fn vector_keys(&self, searcher: &Searcher) -> Result<HashMap<Key, DocAddress>> {
        let mut out = HashMap::new();
        for (ord, segment) in searcher.segment_readers().iter().enumerate() {
            let index = segment.inverted_index(self.fields.vkey)?;
            let alive = segment.alive_bitset();
            let mut terms = index
                .terms()
                .stream()
                .map_err(super::io("cannot read the index"))?;
            while terms.advance() {
                let Some(key) = key_of_hex(terms.key()) else {
                    continue;
                };
                if out.contains_key(&key) {
                    continue;
                }
                let mut postings = index
                    .read_postings_from_terminfo(terms.value(), IndexRecordOption::Basic)
                    .map_err(super::io("cannot read the index"))?;
                let mut doc = postings.doc();
                while doc != TERMINATED {
                    if alive.is_none_or(|a| a.is_alive(doc)) {
                        out.insert(key, DocAddress::new(ord as u32, doc));
                        break;
                    }
                    doc = postings.advance();
                }
            }
        }
        Ok(out)
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

    /// The live sections holding each of `near`'s keys, with its score, best first.
    pub(super) fn sections_of(
        &self,
        searcher: &Searcher,
        near: &[(Key, f32)],
    ) -> Result<Vec<(f32, DocAddress)>> {
        let mut out = Vec::with_capacity(near.len());
        for (key, score) in near {
            let term = Term::from_field_text(self.fields.vkey, &super::hex(key));
            let q = TermQuery::new(term, IndexRecordOption::Basic);
            let mut docs: Vec<DocAddress> =
                searcher.search(&q, &DocSetCollector)?.into_iter().collect();
            docs.sort();
            out.extend(docs.into_iter().map(|d| (*score, d)));
        }
        Ok(out)
    }
}
