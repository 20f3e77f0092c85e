//! Plain-word queries, scored a term at a time.
//!
//! The ranking is [`super::search`]'s: a section scores the sum of its words' BM25
//! scores ([`super::bm25`]) over the fields, doubled when it holds every word. Instead of a union of
//! scorers advanced document by document, each term's postings are read block by block
//! into a table of scores and matched words, one window of a segment's documents at a
//! time. Every match is still scored, so the top hits and the total are exact, at a
//! fraction of the cost per posting.
//! Queries with phrases go through scorers: tantivy's boolean queries over
//! [`super::bm25`]'s terms and phrases.

use std::cell::RefCell;
use std::cmp::Ordering;
use std::sync::Arc;

use tantivy::directory::OwnedBytes;
use tantivy::fieldnorm::FieldNormReader;
use tantivy::postings::{BlockSegmentPostings, TermInfo};
use tantivy::query::Weight;
use tantivy::schema::{Field, IndexRecordOption};
use tantivy::{DocAddress, DocId, InvertedIndexReader, Score, Searcher, SegmentReader, Term};

use super::bm25::Bm25;

/// Most words a query scored here may have: one bit each in [`Cell`], which stays at
/// 8 bytes a document. Longer queries go through the scorers.
pub(super) const MAX_WORDS: usize = 32;

/// A word's terms: every token of it in every field, with the field's boost.
pub(super) type Word = Vec<(Term, Score)>;

/// The best sections, best first, and how many matched.
pub(super) type Top = (Vec<(Score, DocAddress)>, usize);

/// A term's postings in one segment, if it occurs there.
type Found = Option<(Arc<InvertedIndexReader>, TermInfo)>;

/// Sections that must or must not match besides the words (path prefixes, exclusions).
pub(super) struct Filters {
    pub require: Option<Box<dyn Weight>>,
    pub exclude: Option<Box<dyn Weight>>,
}

/// The best `want` sections for `words` (score, then address, as tantivy's `TopDocs`
/// orders them) and how many sections matched.
pub(super) fn top(
    searcher: &Searcher,
    words: &[Word],
    filters: &Filters,
    want: usize,
) -> tantivy::Result<Top> {
    debug_assert!(!words.is_empty() && words.len() <= MAX_WORDS);
    let segments = searcher.segment_readers();
    // Each term is looked up once per segment: its postings there, and its document
    // frequency over the index for the BM25 weight.
    let mut found: Vec<Vec<Found>> = Vec::new();
    let mut doc_freq: Vec<u64> = vec![0; words.iter().map(Vec::len).sum()];
    for segment in segments {
        let mut here = Vec::with_capacity(doc_freq.len());
        for (i, (term, _)) in words.iter().flatten().enumerate() {
            let reader = segment.inverted_index(term.field())?;
            let info = reader.get_term_info(term)?;
            if let Some(info) = &info {
                doc_freq[i] += u64::from(info.doc_freq);
            }
            here.push(info.map(|info| (reader, info)));
        }
        found.push(here);
    }
    let num_docs: u64 = segments.iter().map(|s| u64::from(s.max_doc())).sum();
    // Tokens of each field over the index, for its average length.
    let mut tokens_of: Vec<(Field, u64)> = Vec::new();
    let mut weights = Vec::with_capacity(doc_freq.len());
    for ((term, boost), df) in words.iter().flatten().zip(&doc_freq) {
        let field = term.field();
        let tokens = match tokens_of.iter().find(|(f, _)| *f == field) {
            Some((_, tokens)) => *tokens,
            None => {
                let mut tokens = 0;
                for segment in segments {
                    tokens += segment.inverted_index(field)?.total_num_tokens();
                }
                tokens_of.push((field, tokens));
                tokens
            }
        };
        weights.push(Bm25::term(*df, num_docs, tokens).boost_by(*boost));
    }
    // The word of each term, as a bit.
    let bits: Vec<u32> = words
        .iter()
        .enumerate()
        .flat_map(|(i, w)| std::iter::repeat_n(1 << i, w.len()))
        .collect();
    let all: u32 = if words.len() == MAX_WORDS {
        u32::MAX
    } else {
        (1 << words.len()) - 1
    };
    // As in [`super::search`], one word alone is not doubled.
    let double = words.len() > 1;
    let mut best = Best::new(want);
    let mut total = 0;
    TABLE.with_borrow_mut(|table| -> tantivy::Result<()> {
        for (ord, (segment, found)) in segments.iter().zip(&found).enumerate() {
            let mut cursors = Vec::with_capacity(found.len());
            let terms = words.iter().flatten().zip(&weights).zip(&bits);
            for ((((term, _), weight), bit), found) in terms.zip(found) {
                if let Some((index, info)) = found {
                    let postings = index
                        .read_block_postings_from_terminfo(info, IndexRecordOption::WithFreqs)?;
                    cursors.push(Cursor::new(segment, term.field(), postings, weight, *bit)?);
                }
            }
            let require = docs_of(filters.require.as_deref(), segment)?;
            let exclude = docs_of(filters.exclude.as_deref(), segment)?;
            let alive = segment.alive_bitset();
            let filtered = alive.is_some() || require.is_some() || exclude.is_some();
            let score = |cell: Cell| {
                if double && cell.words == all {
                    2.0 * cell.score
                } else {
                    cell.score
                }
            };
            let max_doc = segment.max_doc();
            let window = window();
            let mut start = 0;
            while start < max_doc {
                let end = max_doc.min(start.saturating_add(window));
                table.reset(end - start);
                for cursor in &mut cursors {
                    cursor.feed(table, start, end);
                }
                let at = |doc: DocId| DocAddress::new(ord as u32, start + doc);
                if !filtered {
                    // Most searches: every section touched counts and is offered.
                    total += table.touched;
                    table.drain(|doc, cell| best.offer(score(cell), at(doc)));
                } else {
                    table.drain(|doc, cell| {
                        let d = (start + doc) as usize;
                        if alive.is_some_and(|a| a.is_deleted(start + doc))
                            || require.as_ref().is_some_and(|r| !r[d])
                            || exclude.as_ref().is_some_and(|x| x[d])
                        {
                            return;
                        }
                        total += 1;
                        best.offer(score(cell), at(doc));
                    });
                }
                start = end;
            }
        }
        Ok(())
    })?;
    Ok((best.into_sorted(), total))
}

/// The documents of `weight` in `segment`, when there is a filter.
fn docs_of(
    weight: Option<&dyn Weight>,
    segment: &SegmentReader,
) -> tantivy::Result<Option<Vec<bool>>> {
    let Some(weight) = weight else {
        return Ok(None);
    };
    let mut set = vec![false; segment.max_doc() as usize];
    weight.for_each_no_score(segment, &mut |docs| {
        for &doc in docs {
            set[doc as usize] = true;
        }
    })?;
    Ok(Some(set))
}

/// Documents scored at a time: the table holds the entries of one window of a
/// segment's documents (8 bytes each, 128 KiB), so that it stays in a core's cache
/// however big the segment. On 16 copies of the 47.9 MB corpus (1.0M sections, the
/// biggest segment 354k), a search's took_ms p50 went 892 -> 621 µs against a table
/// for the whole segment (paired A/B, 6 rounds of the 325 distinct two-word queries,
/// bench/ab.py); at 1x, where segments hold about 32k sections, it did not move.
const WINDOW: DocId = 1 << 14;

#[cfg(not(test))]
fn window() -> DocId {
    WINDOW
}

#[cfg(test)]
fn window() -> DocId {
    TEST_WINDOW.with(std::cell::Cell::get)
}

#[cfg(test)]
thread_local! {
    /// The window the tests score in, to compare windows of any size with a whole
    /// segment.
    pub(super) static TEST_WINDOW: std::cell::Cell<DocId> = const { std::cell::Cell::new(WINDOW) };
}

/// One term's postings in a segment, read a window at a time.
struct Cursor<'w> {
    postings: BlockSegmentPostings,
    /// Where the current block's unread postings start.
    at: usize,
    /// The field's norm ids, one byte a document: indexing a slice is cheaper than
    /// `FieldNormReader`'s match per posting.
    norms: OwnedBytes,
    weight: &'w Bm25,
    bit: u32,
}

impl<'w> Cursor<'w> {
    fn new(
        segment: &SegmentReader,
        field: Field,
        postings: BlockSegmentPostings,
        weight: &'w Bm25,
        bit: u32,
    ) -> tantivy::Result<Self> {
        let norms = match segment
            .fieldnorms_readers()
            .get_inner_file()
            .open_read(field)
        {
            Some(file) => file.read_bytes()?,
            None => OwnedBytes::new(vec![
                FieldNormReader::fieldnorm_to_id(1);
                segment.max_doc() as usize
            ]),
        };
        Ok(Cursor {
            postings,
            at: 0,
            norms,
            weight,
            bit,
        })
    }

    /// Adds the postings of documents `start..end` to `table`, which holds that window
    /// (those before `start` were added before).
    fn feed(&mut self, table: &mut Table, start: DocId, end: DocId) {
        let norms = self.norms.as_slice();
        loop {
            let docs = self.postings.docs();
            let Some(&last) = docs.last() else {
                return;
            };
            let from = self.at;
            let to = if last < end {
                docs.len()
            } else {
                from + docs[from..].partition_point(|&doc| doc < end)
            };
            let freqs = &self.postings.freqs()[from..to];
            for (&doc, &freq) in docs[from..to].iter().zip(freqs) {
                let norm = norms.get(doc as usize).copied().unwrap_or(0);
                table.add_one(doc - start, self.bit, self.weight.score(norm, freq));
            }
            if to < docs.len() {
                self.at = to;
                return;
            }
            self.postings.advance();
            self.at = 0;
        }
    }
}

thread_local! {
    /// Kept between queries on a thread: clearing what one query touched is cheaper
    /// than a fresh table per window.
    static TABLE: RefCell<Table> = RefCell::default();
}

/// Per document of a window: the score so far and a bit per word matched.
#[derive(Default)]
struct Table {
    cells: Vec<Cell>,
    /// Documents with a nonzero entry, in the order first matched: the first
    /// `touched` of `order`, which has room for every document of the window and one
    /// more, so that a posting appends its document without a branch.
    order: Vec<DocId>,
    touched: usize,
}

/// One document's entry, both halves in one place: one bounds check and one cache
/// line a posting, and a table of 128 KiB for 16k sections.
#[derive(Default, Clone, Copy)]
struct Cell {
    score: Score,
    words: u32,
}

impl Table {
    /// The documents matched so far, in the order first matched.
    #[cfg(test)]
    fn touched(&self) -> &[DocId] {
        &self.order[..self.touched]
    }

    /// Hands each document matched so far to `f` with its entry, in the order first
    /// matched, and empties the table: each entry is cleared while it is at hand, which
    /// costs less than going over them again for the next query.
    fn drain(&mut self, mut f: impl FnMut(DocId, Cell)) {
        for &doc in &self.order[..self.touched] {
            f(doc, std::mem::take(&mut self.cells[doc as usize]));
        }
        self.touched = 0;
    }

    /// Empties the table for a window of `len` documents: [`Table::drain`] has, unless
    /// a query was interrupted by a panic.
    fn reset(&mut self, len: DocId) {
        for &doc in &self.order[..self.touched] {
            self.cells[doc as usize] = Cell::default();
        }
        self.touched = 0;
        let len = len as usize;
        if self.cells.len() < len {
            self.cells.resize(len, Cell::default());
        }
        // One more than there are documents: a posting of a document already touched
        // writes one past the last, when every one is.
        if self.order.len() <= len {
            self.order.resize(len + 1, 0);
        }
    }

    /// One posting: `doc` holds the word of `bit`, scoring `score`.
    #[inline]
    fn add_one(&mut self, doc: DocId, bit: u32, score: Score) {
        let cell = &mut self.cells[doc as usize];
        self.order[self.touched] = doc;
        self.touched += usize::from(cell.words == 0);
        cell.words |= bit;
        cell.score += score;
    }
}

/// The best `want` of the offered documents.
struct Best {
    want: usize,
    ranked: Vec<Ranked>,
    /// The `want`-th best at the last cut: nothing worse can make it.
    floor: Ranked,
}

impl Best {
    fn new(want: usize) -> Self {
        Best {
            want,
            ranked: Vec::new(),
            floor: Ranked(Score::NEG_INFINITY, DocAddress::new(u32::MAX, u32::MAX)),
        }
    }

    #[inline]
    fn offer(&mut self, score: Score, addr: DocAddress) {
        // Most offers fall below the floor: the score alone says so.
        if score < self.floor.0 {
            return;
        }
        let r = Ranked(score, addr);
        if r <= self.floor {
            return;
        }
        self.ranked.push(r);
        if self.ranked.len() >= 2 * self.want.max(16) {
            self.cut();
        }
    }

    /// Keeps the best `want`, in no order.
    fn cut(&mut self) {
        if self.want == 0 {
            self.ranked.clear();
        } else if self.ranked.len() > self.want {
            let (_, nth, _) = self
                .ranked
                .select_nth_unstable_by(self.want - 1, |a, b| b.cmp(a));
            self.floor = Ranked(nth.0, nth.1);
            self.ranked.truncate(self.want);
        }
    }

    fn into_sorted(mut self) -> Vec<(Score, DocAddress)> {
        self.cut();
        self.ranked.sort_unstable_by(|a, b| b.cmp(a));
        self.ranked.into_iter().map(|Ranked(s, a)| (s, a)).collect()
    }
}

/// Greater is better: a higher score, then a lower address.
#[derive(PartialEq)]
struct Ranked(Score, DocAddress);

impl Eq for Ranked {}

impl PartialOrd for Ranked {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Ranked {
    fn cmp(&self, other: &Self) -> Ordering {
        self.0
            .total_cmp(&other.0)
            .then_with(|| other.1.cmp(&self.1))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every document of a segment matched, by several words: the list of touched
    /// documents is full, a posting still writes one past its end, and draining it
    /// leaves it empty.
    #[test]
    fn a_table_whose_every_document_matches() {
        let mut table = Table::default();
        for max_doc in [3, 2, 5] {
            table.reset(max_doc);
            for bit in [1, 2, 4] {
                for doc in 0..max_doc {
                    table.add_one(doc, bit, 1.0);
                }
            }
            let expected: Vec<DocId> = (0..max_doc).collect();
            assert_eq!(table.touched(), expected);
            let mut drained = Vec::new();
            table.drain(|doc, cell| {
                assert_eq!((cell.words, cell.score), (7, 3.0));
                drained.push(doc);
            });
            assert_eq!(drained, expected);
            // Drained is empty: nothing left for the next query to clear.
            assert!(table.touched().is_empty());
            assert!(table.cells.iter().all(|c| c.words == 0 && c.score == 0.0));
        }
    }
}
