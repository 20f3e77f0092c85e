//! BM25 with doc-serve's own k1 and b, for both ways a query is scored.
//!
//! tantivy's `Bm25Weight`, which its `TermQuery` and `PhraseQuery` build, fixes k1 = 1.2
//! and b = 0.75. [`Bm25`] is the same formula (Lucene's idf, the field lengths tantivy's
//! field norms store) with [`K1`] and [`B`] instead. [`super::words`] scores postings
//! with it a term at a time; [`TermQuery`] and [`PhraseQuery`] here score with it as
//! tantivy scorers, for queries with phrases or many words. Both read tantivy's postings
//! and norms. tantivy's phrase scorer is not public, so phrases are matched here, as it
//! matches them (positions intersected, no slop).

use tantivy::fieldnorm::FieldNormReader;
use tantivy::postings::{Postings, SegmentPostings};
use tantivy::query::{
    Bm25StatisticsProvider, EmptyScorer, EnableScoring, Explanation, Query, Scorer, Weight,
};
use tantivy::schema::{Field, IndexRecordOption};
use tantivy::{DocId, DocSet, Score, SegmentReader, TERMINATED, TantivyError, Term};

/// Term saturation (k1) and length normalisation (b), chosen on SciFact's train split
/// (809 queries, bench/relevance.py; BENCHMARKS.md): nDCG@10 0.6861 here, against
/// 0.6829 with tantivy's 1.2 and 0.75 and 0.6835 with Anserini's flat 0.9 and 0.4. Over
/// k1 0.3-2.0 and b 0.3-0.9 it is within 0.003 of the best for k1 0.6-0.9 at every b,
/// and 0.004 or more below it at k1 0.3 and at k1 1.5 and 2.0.
const K1: Score = 0.6;
const B: Score = 0.4;

/// The BM25 weight of a term, or of a phrase, in one field.
#[derive(Clone)]
pub(super) struct Bm25 {
    /// idf × (k1 + 1) × boost.
    weight: Score,
    /// k1 × (1 - b + b × length / average length), by field norm id.
    norm: [Score; 256],
}

impl Bm25 {
    /// The weight of a term found in `doc_freq` of `docs` documents, in a field
    /// holding `tokens` tokens over all of them.
    pub fn term(doc_freq: u64, docs: u64, tokens: u64) -> Bm25 {
        Bm25::with(K1, B, idf(doc_freq, docs), average(tokens, docs))
    }

    /// The arithmetic of tantivy's `Bm25Weight`, step for step, so that with its
    /// constants the scores are its scores to the bit (see the test below).
    fn with(k1: Score, b: Score, idf: Score, average: Score) -> Bm25 {
        let mut norm = [0.0; 256];
        for (id, n) in norm.iter_mut().enumerate() {
            let length = FieldNormReader::id_to_fieldnorm(id as u8) as Score;
            *n = k1 * (1.0 - b + b * length / average);
        }
        Bm25 {
            weight: idf * (1.0 + k1),
            norm,
        }
    }

    pub fn boost_by(&self, boost: Score) -> Bm25 {
        Bm25 {
            weight: self.weight * boost,
            norm: self.norm,
        }
    }

    /// The score of `freq` occurrences in a field whose length has norm id `norm_id`.
    #[inline]
    pub fn score(&self, norm_id: u8, freq: u32) -> Score {
        let freq = freq as Score;
        self.weight * (freq / (freq + self.norm[norm_id as usize]))
    }
}

/// Lucene's idf: ln(1 + (N - n + 0.5) / (n + 0.5)).
fn idf(doc_freq: u64, docs: u64) -> Score {
    // Never below zero, should a count of documents lag its terms'.
    let x = (docs.saturating_sub(doc_freq) as Score + 0.5) / (doc_freq as Score + 0.5);
    (1.0 + x).ln()
}

/// The average length of a field, in tokens; 0 documents count as one.
fn average(tokens: u64, docs: u64) -> Score {
    tokens as Score / docs.max(1) as Score
}

/// The weight of `terms` (one field's; a phrase's idf is the sum of its terms'), from
/// the statistics of the whole index.
fn weight_of(
    stats: &dyn Bm25StatisticsProvider,
    field: Field,
    terms: &[Term],
) -> tantivy::Result<Bm25> {
    let docs = stats.total_num_docs()?;
    let mut idf_sum = 0.0;
    for term in terms {
        idf_sum += idf(stats.doc_freq(term)?, docs);
    }
    let average = average(stats.total_num_tokens(field)?, docs);
    Ok(Bm25::with(K1, B, idf_sum, average))
}

/// The field norms of `field` in `reader` when scoring (every length 1 without them,
/// as tantivy does).
fn norms(reader: &SegmentReader, field: Field) -> tantivy::Result<FieldNormReader> {
    Ok(reader
        .fieldnorms_readers()
        .get_field(field)?
        .unwrap_or_else(|| FieldNormReader::constant(reader.max_doc(), 1)))
}

/// tantivy's `TermQuery` scored with [`Bm25`].
#[derive(Clone, Debug)]
pub(super) struct TermQuery(pub Term);

impl Query for TermQuery {
    fn weight(&self, scoring: EnableScoring<'_>) -> tantivy::Result<Box<dyn Weight>> {
        let bm25 = match scoring {
            EnableScoring::Enabled {
                statistics_provider,
                ..
            } => Some(weight_of(
                statistics_provider,
                self.0.field(),
                std::slice::from_ref(&self.0),
            )?),
            EnableScoring::Disabled { .. } => None,
        };
        Ok(Box::new(TermWeight {
            term: self.0.clone(),
            bm25,
        }))
    }

    fn query_terms<'a>(&'a self, visitor: &mut dyn FnMut(&'a Term, bool)) {
        visitor(&self.0, false);
    }
}

/// `None`: scoring is off, the term only matches.
struct TermWeight {
    term: Term,
    bm25: Option<Bm25>,
}

impl Weight for TermWeight {
    fn scorer(&self, reader: &SegmentReader, boost: Score) -> tantivy::Result<Box<dyn Scorer>> {
        let field = self.term.field();
        let option = match self.bm25 {
            Some(_) => IndexRecordOption::WithFreqs,
            None => IndexRecordOption::Basic,
        };
        let Some(postings) = reader
            .inverted_index(field)?
            .read_postings(&self.term, option)?
        else {
            return Ok(Box::new(EmptyScorer));
        };
        Ok(match &self.bm25 {
            Some(bm25) => Box::new(TermScorer {
                postings,
                norms: norms(reader, field)?,
                bm25: bm25.boost_by(boost),
            }),
            None => Box::new(Unscored(postings)),
        })
    }

    fn explain(&self, reader: &SegmentReader, doc: DocId) -> tantivy::Result<Explanation> {
        explain(self.scorer(reader, 1.0)?, doc)
    }
}

struct TermScorer {
    postings: SegmentPostings,
    norms: FieldNormReader,
    bm25: Bm25,
}

impl DocSet for TermScorer {
    fn advance(&mut self) -> DocId {
        self.postings.advance()
    }

    fn seek(&mut self, target: DocId) -> DocId {
        self.postings.seek(target)
    }

    fn doc(&self) -> DocId {
        self.postings.doc()
    }

    fn size_hint(&self) -> u32 {
        self.postings.size_hint()
    }
}

impl Scorer for TermScorer {
    fn score(&mut self) -> Score {
        let doc = self.postings.doc();
        self.bm25
            .score(self.norms.fieldnorm_id(doc), self.postings.term_freq())
    }
}

/// Documents that match, each scoring 1 (scoring is off).
struct Unscored(SegmentPostings);

impl DocSet for Unscored {
    fn advance(&mut self) -> DocId {
        self.0.advance()
    }

    fn seek(&mut self, target: DocId) -> DocId {
        self.0.seek(target)
    }

    fn doc(&self) -> DocId {
        self.0.doc()
    }

    fn size_hint(&self) -> u32 {
        self.0.size_hint()
    }
}

impl Scorer for Unscored {
    fn score(&mut self) -> Score {
        1.0
    }
}

/// tantivy's `PhraseQuery` (no slop) scored with [`Bm25`]: the number of times a
/// document holds the phrase scores as a term's frequency does, with the sum of the
/// terms' idf as tantivy's has it.
#[derive(Clone, Debug)]
pub(super) struct PhraseQuery {
    /// At least two, of one field, by position.
    terms: Vec<(usize, Term)>,
}

impl PhraseQuery {
    /// `None` unless `terms` are at least two, all of one field.
    pub fn new(mut terms: Vec<(usize, Term)>) -> Option<PhraseQuery> {
        let field = terms.first()?.1.field();
        if terms.len() < 2 || terms.iter().any(|(_, t)| t.field() != field) {
            return None;
        }
        terms.sort_by_key(|&(offset, _)| offset);
        Some(PhraseQuery { terms })
    }

    fn field(&self) -> Field {
        self.terms[0].1.field()
    }
}

impl Query for PhraseQuery {
    fn weight(&self, scoring: EnableScoring<'_>) -> tantivy::Result<Box<dyn Weight>> {
        let field = self.field();
        let entry = scoring.schema().get_field_entry(field);
        let positions = entry
            .field_type()
            .get_index_record_option()
            .is_some_and(IndexRecordOption::has_positions);
        if !positions {
            return Err(TantivyError::SchemaError(format!(
                "a phrase needs positions, and field {:?} has none",
                entry.name()
            )));
        }
        let bm25 = match scoring {
            EnableScoring::Enabled {
                statistics_provider,
                ..
            } => {
                let terms: Vec<Term> = self.terms.iter().map(|(_, t)| t.clone()).collect();
                Some(weight_of(statistics_provider, field, &terms)?)
            }
            EnableScoring::Disabled { .. } => None,
        };
        Ok(Box::new(PhraseWeight {
            query: self.clone(),
            bm25,
        }))
    }

    fn query_terms<'a>(&'a self, visitor: &mut dyn FnMut(&'a Term, bool)) {
        for (_, term) in &self.terms {
            visitor(term, true);
        }
    }
}

/// `None`: scoring is off, the phrase only matches.
struct PhraseWeight {
    query: PhraseQuery,
    bm25: Option<Bm25>,
}

impl Weight for PhraseWeight {
    fn scorer(&self, reader: &SegmentReader, boost: Score) -> tantivy::Result<Box<dyn Scorer>> {
        let field = self.query.field();
        let index = reader.inverted_index(field)?;
        let last = self.query.terms.iter().map(|(o, _)| *o).max().unwrap_or(0);
        let mut terms = Vec::with_capacity(self.query.terms.len());
        for (offset, term) in &self.query.terms {
            match index.read_postings(term, IndexRecordOption::WithFreqsAndPositions)? {
                // Shifted so that a phrase's terms all land on one position; offsets
                // are token positions in a query of at most a few thousand bytes.
                Some(p) => terms.push(((last - offset) as u32, p)),
                None => return Ok(Box::new(EmptyScorer)),
            }
        }
        let (norms, bm25) = match &self.bm25 {
            Some(bm25) => (norms(reader, field)?, Some(bm25.boost_by(boost))),
            None => (FieldNormReader::constant(reader.max_doc(), 1), None),
        };
        Ok(Box::new(PhraseScorer::new(terms, norms, bm25)))
    }

    fn explain(&self, reader: &SegmentReader, doc: DocId) -> tantivy::Result<Explanation> {
        explain(self.scorer(reader, 1.0)?, doc)
    }
}

/// The documents holding a phrase, scored by how many times they hold it.
struct PhraseScorer {
    /// Each term's shift and postings, the rarest first.
    terms: Vec<(u32, SegmentPostings)>,
    doc: DocId,
    /// How many times `doc` holds the phrase.
    count: u32,
    norms: FieldNormReader,
    bm25: Option<Bm25>,
    positions: Vec<u32>,
    others: Vec<u32>,
}

impl PhraseScorer {
    /// `terms`: at least one.
    fn new(
        mut terms: Vec<(u32, SegmentPostings)>,
        norms: FieldNormReader,
        bm25: Option<Bm25>,
    ) -> Self {
        terms.sort_by_key(|(_, p)| p.size_hint());
        let first = terms.first().map_or(TERMINATED, |(_, p)| p.doc());
        let mut scorer = PhraseScorer {
            terms,
            doc: TERMINATED,
            count: 0,
            norms,
            bm25,
            positions: Vec::new(),
            others: Vec::new(),
        };
        scorer.doc = scorer.settle(first);
        scorer
    }

    /// The first document from `target` on that holds the phrase.
    fn settle(&mut self, mut target: DocId) -> DocId {
        loop {
            target = self.align(target);
            if target == TERMINATED {
                return TERMINATED;
            }
            self.count = self.count_here();
            if self.count > 0 {
                return target;
            }
            target += 1;
        }
    }

    /// The first document from `target` on that holds every term.
    fn align(&mut self, mut target: DocId) -> DocId {
        'again: loop {
            for (_, postings) in &mut self.terms {
                // A term's postings may already be past `target` (never seek back).
                let doc = match postings.doc() {
                    doc if doc >= target => doc,
                    _ => postings.seek(target),
                };
                if doc > target {
                    target = doc;
                    continue 'again;
                }
            }
            return target;
        }
    }

    /// How many times the current document, which holds every term, holds the phrase:
    /// the positions of the first term, shifted, that every other term's shifted
    /// positions hold too.
    fn count_here(&mut self) -> u32 {
        let Some(((shift, first), rest)) = self.terms.split_first_mut() else {
            return 0;
        };
        first.positions_with_offset(*shift, &mut self.positions);
        for (shift, postings) in rest {
            if self.positions.is_empty() {
                break;
            }
            postings.positions_with_offset(*shift, &mut self.others);
            keep_common(&mut self.positions, &self.others);
        }
        self.positions.len() as u32
    }
}

/// Keeps the elements of sorted `a` that sorted `b` holds (a repeated one, as often
/// as both hold it).
fn keep_common(a: &mut Vec<u32>, b: &[u32]) {
    let (mut i, mut j, mut kept) = (0, 0, 0);
    while i < a.len() && j < b.len() {
        match a[i].cmp(&b[j]) {
            std::cmp::Ordering::Less => i += 1,
            std::cmp::Ordering::Greater => j += 1,
            std::cmp::Ordering::Equal => {
                a[kept] = a[i];
                kept += 1;
                i += 1;
                j += 1;
            }
        }
    }
    a.truncate(kept);
}

impl DocSet for PhraseScorer {
    fn advance(&mut self) -> DocId {
        if self.doc != TERMINATED {
            self.doc = self.settle(self.doc + 1);
        }
        self.doc
    }

    fn seek(&mut self, target: DocId) -> DocId {
        if self.doc < target {
            self.doc = self.settle(target);
        }
        self.doc
    }

    fn doc(&self) -> DocId {
        self.doc
    }

    fn size_hint(&self) -> u32 {
        self.terms.first().map_or(0, |(_, p)| p.size_hint())
    }
}

impl Scorer for PhraseScorer {
    fn score(&mut self) -> Score {
        match &self.bm25 {
            Some(bm25) => bm25.score(self.norms.fieldnorm_id(self.doc), self.count),
            None => 1.0,
        }
    }
}

/// `doc`'s score by `scorer`, or an error if it does not match.
fn explain(mut scorer: Box<dyn Scorer>, doc: DocId) -> tantivy::Result<Explanation> {
    if scorer.doc() > doc || scorer.seek(doc) != doc {
        return Err(TantivyError::InvalidArgument(format!(
            "document {doc} does not match"
        )));
    }
    Ok(Explanation::new("BM25", scorer.score()))
}

#[cfg(test)]
mod tests {
    use super::*;

    use tantivy::query::Bm25Weight;

    /// With tantivy's constants, the arithmetic is tantivy's to the bit: only k1 and
    /// b differ from what its scorers computed.
    #[test]
    fn with_tantivys_constants_the_scores_are_tantivys() {
        for (doc_freq, docs, average) in [(1, 1, 1.0), (3, 5183, 201.7), (900, 1000, 3.25)] {
            let ours = Bm25::with(1.2, 0.75, idf(doc_freq, docs), average).boost_by(0.6);
            let theirs =
                Bm25Weight::for_one_term_without_explain(doc_freq, docs, average).boost_by(0.6);
            for id in 0..=255u8 {
                for freq in [1, 2, 7, 1000] {
                    assert_eq!(
                        ours.score(id, freq).to_bits(),
                        theirs.score(id, freq).to_bits(),
                        "{doc_freq} of {docs}, norm {id}, freq {freq}"
                    );
                }
            }
        }
    }

    /// With tantivy's constants, a term or phrase matches the documents tantivy's
    /// `TermQuery` and `PhraseQuery` match, scoring what they score: phrases counted
    /// as tantivy counts them, with gaps, repeats and overlaps.
    #[test]
    fn with_tantivys_constants_terms_and_phrases_score_as_tantivys() {
        use std::collections::HashMap;
        use tantivy::collector::TopDocs;
        use tantivy::schema::{Schema, TEXT};
        use tantivy::{DocAddress, Index, IndexWriter, doc};

        let mut schema = Schema::builder();
        let text = schema.add_text_field("text", TEXT);
        let index = Index::create_in_ram(schema.build());
        let mut writer: IndexWriter = index.writer_with_num_threads(1, 15_000_000).unwrap();
        for t in [
            "a c",
            "a a b d a b c",
            " a b",
            "a b a b a b",
            "b a x b a",
            "a x b a x b c",
            "x y z",
            "a a a a",
        ] {
            writer.add_document(doc!(text => t)).unwrap();
        }
        writer.commit().unwrap();
        let searcher = index.reader().unwrap().searcher();
        let term = |w: &str| Term::from_field_text(text, w);
        let theirs = |q: &dyn Query| -> HashMap<DocAddress, u32> {
            let top = searcher.search(q, &TopDocs::with_limit(100)).unwrap();
            top.into_iter().map(|(s, d)| (d, s.to_bits())).collect()
        };
        // Ours, with tantivy's k1 and b.
        let ours = |weight: &dyn Weight| -> HashMap<DocAddress, u32> {
            let mut found = HashMap::new();
            for (ord, segment) in searcher.segment_readers().iter().enumerate() {
                let mut scorer = weight.scorer(segment, 1.0).unwrap();
                while scorer.doc() != TERMINATED {
                    let addr = DocAddress::new(ord as u32, scorer.doc());
                    found.insert(addr, scorer.score().to_bits());
                    scorer.advance();
                }
            }
            found
        };
        let bm25 = |terms: &[Term]| {
            let docs = searcher.total_num_docs().unwrap();
            let idf_sum = terms
                .iter()
                .map(|t| idf(searcher.doc_freq(t).unwrap(), docs))
                .sum();
            let tokens = searcher.total_num_tokens(text).unwrap();
            Bm25::with(1.2, 0.75, idf_sum, average(tokens, docs))
        };
        for w in ["a", "b", "x", "nothing"] {
            let mine = TermWeight {
                term: term(w),
                bm25: Some(bm25(&[term(w)])),
            };
            let q = tantivy::query::TermQuery::new(term(w), IndexRecordOption::WithFreqs);
            assert_eq!(ours(&mine), theirs(&q), "{w}");
        }
        for phrase in [
            &[(0, "a"), (1, "b")][..],
            &[(0, "b"), (1, "a")],
            &[(0, "a"), (1, "a")],
            &[(0, "a"), (2, "b")],
            &[(0, "a"), (1, "b"), (2, "c")],
            &[(0, "a"), (1, "x"), (2, "b"), (3, "a")],
            &[(0, "a"), (1, "nothing")],
        ] {
            let terms: Vec<(usize, Term)> = phrase.iter().map(|(o, w)| (*o, term(w))).collect();
            let plain: Vec<Term> = terms.iter().map(|(_, t)| t.clone()).collect();
            let mine = PhraseWeight {
                query: PhraseQuery::new(terms.clone()).unwrap(),
                bm25: Some(bm25(&plain)),
            };
            let q = tantivy::query::PhraseQuery::new_with_offset(terms);
            let expected = theirs(&q);
            assert_eq!(ours(&mine), expected, "{phrase:?}");
        }
        // The premise: phrases that match, more than once in a document, and not.
        let ab = tantivy::query::PhraseQuery::new(vec![term("a"), term("b")]);
        assert_eq!(theirs(&ab).len(), 3);
        assert!(PhraseQuery::new(vec![(0, term("a"))]).is_none());
    }
}
