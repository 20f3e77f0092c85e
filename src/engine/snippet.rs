//! Snippets: a short passage of a section's body around the query's words, with
//! highlight offsets.
//!
//! tantivy's `SnippetGenerator` stems every word of the text it is given, which cost
//! several times more than the search itself. Here the body is tokenized unstemmed (the
//! exact analyzer: code-aware, lowercased) and a token is stemmed only when it could
//! stem to one of the query's stems: English stemming rewrites at most the last letter
//! of what it keeps (`memory` to `memori`), so a candidate starts with the stem's
//! [`prefix`]. The passage is the run of at most
//! [`MAX_CHARS`] characters holding the most distinct query words, with a little text
//! before its first match.

use std::cell::RefCell;

use memchr::memmem::Finder;
use rust_stemmers::{Algorithm, Stemmer};

use super::analyzer;

/// Longest snippet, in characters.
pub const MAX_CHARS: usize = 240;
/// Characters of context kept before the first highlighted word.
const LEAD_CHARS: usize = 40;
/// Fewest bytes of a stem a candidate token must start with.
const PREFIX: usize = 2;

thread_local! {
    /// Tokens already stemmed, and their stems: queries share most of their words,
    /// and stemming one costs far more than a lookup.
    static STEMMED: RefCell<analyzer::StemCache> = RefCell::default();
}

pub struct Snippets {
    stems: Vec<String>,
    stemmer: Stemmer,
    /// Searchers for the [`prefix`] of each stem, when all are ASCII.
    prefixes: Option<Vec<Finder<'static>>>,
    /// Every stem is a plain ASCII word (letters and digits).
    plain: bool,
    /// A body lowercased (ASCII), kept for its allocation.
    lower: String,
    /// The compounds of a body to tokenize, kept for its allocation.
    spans: Vec<(usize, usize)>,
    /// The tokens [`Snippets::plain_matches`] reads, kept for its allocation.
    tokens: Vec<(usize, usize)>,
}

/// A snippet and its highlights as `[start, end)` character offsets into it.
pub type Snippet = (String, Vec<[usize; 2]>);

impl Snippets {
    /// `stems`: the query's words through the stemmed analyzer. Bodies are read with
    /// the exact analyzer's tokens ([`analyzer::for_each_exact`]).
    pub fn new(mut stems: Vec<String>) -> Snippets {
        stems.sort();
        stems.dedup();
        let prefixes = stems.iter().all(|s| s.is_ascii()).then(|| {
            stems
                .iter()
                .map(|s| Finder::new(prefix(s)).into_owned())
                .collect()
        });
        let plain = stems
            .iter()
            .all(|s| s.bytes().all(|b| b.is_ascii_alphanumeric()));
        Snippets {
            stems,
            stemmer: Stemmer::create(Algorithm::English),
            prefixes,
            plain,
            lower: String::new(),
            spans: Vec::new(),
            tokens: Vec::new(),
        }
    }

    /// Which query stem `token` (lowercased, unstemmed) stands for, if any.
    fn stem_of(&self, token: &str) -> Option<usize> {
        let mut candidate = false;
        for (i, s) in self.stems.iter().enumerate() {
            if token.as_bytes().starts_with(prefix(s)) {
                if token == s {
                    return Some(i);
                }
                candidate = true;
            }
        }
        if !candidate {
            return None;
        }
        STEMMED.with_borrow_mut(|stemmed| {
            let stem = stemmed.stem(&self.stemmer, token).unwrap_or(token);
            self.stems
                .iter()
                .position(|s| s == stem && token.as_bytes().starts_with(prefix(s)))
        })
    }

    /// Byte ranges in `body` of tokens matching a query stem, with the stem's index.
    ///
    /// With ASCII stems (nearly always), only the compounds (see the analyzer) holding
    /// an ASCII-case-insensitive occurrence of a stem's [`prefix`] are read: a token
    /// can only stem to a stem it starts like. With plain stems, only the tokens
    /// starting at those occurrences ([`Snippets::plain_matches`]); otherwise those
    /// compounds are tokenized. With other stems, the stretch [`Snippets::region`]
    /// picks is tokenized whole.
    fn matches(&mut self, body: &str) -> Vec<(usize, usize, usize)> {
        let mut out = Vec::new();
        let Some(prefixes) = &self.prefixes else {
            let (base, region) = self.region(body);
            self.matches_in(region, base, &mut out);
            return out;
        };
        self.lower.clear();
        self.lower.push_str(body);
        self.lower.make_ascii_lowercase();
        let mut spans = std::mem::take(&mut self.spans);
        spans.clear();
        for prefix in prefixes {
            for at in prefix.find_iter(self.lower.as_bytes()) {
                if starts_part(body, at) {
                    spans.push((at, at + prefix.needle().len()));
                }
            }
        }
        if self.plain && self.plain_matches(body, &spans, &mut out) {
            self.spans = spans;
            return out;
        }
        for span in &mut spans {
            *span = compound_around(body.as_bytes(), span.0, span.1);
        }
        spans.sort_unstable();
        // Overlapping compounds merged in place.
        let mut kept = 0;
        for i in 0..spans.len() {
            let (from, to) = spans[i];
            if kept > 0 && from <= spans[kept - 1].1 {
                spans[kept - 1].1 = spans[kept - 1].1.max(to);
            } else {
                spans[kept] = (from, to);
                kept += 1;
            }
        }
        for &(from, to) in &spans[..kept] {
            self.matches_in(&body[from..to], from, &mut out);
        }
        self.spans = spans;
        out
    }

    /// With plain stems (letters and digits), the tokens that can match are the parts
    /// of compounds (split at non-alphanumerics and camelCase, see the analyzer) and
    /// the runs of letters and digits of several parts (`JavaScript`, and `HashMap` in
    /// `std::collections::HashMap`), and each starts where a stem's prefix occurs.
    /// Reads the tokens at `found` (the prefixes' occurrences that can start a part)
    /// into `out` as [`Snippets::matches_in`] would, unless a non-ASCII character is
    /// next to one of them: then false.
    fn plain_matches(
        &mut self,
        body: &str,
        found: &[(usize, usize)],
        out: &mut Vec<(usize, usize, usize)>,
    ) -> bool {
        self.tokens.clear();
        for &(at, _) in found {
            if !plain_tokens(body.as_bytes(), at, &mut self.tokens) {
                return false;
            }
        }
        // In the analyzer's order: by start, a compound before its first part.
        self.tokens
            .sort_unstable_by_key(|&(from, to)| (from, std::cmp::Reverse(to)));
        self.tokens.dedup();
        for &(from, to) in &self.tokens {
            if to - from >= analyzer::MAX_TOKEN {
                continue;
            }
            if let Some(i) = self.stem_of(&self.lower[from..to]) {
                push_match(out, (from, to, i));
            }
        }
        true
    }

    /// Appends the matches among the tokens of `text`, which starts at `base`.
    fn matches_in(&mut self, text: &str, base: usize, out: &mut Vec<(usize, usize, usize)>) {
        analyzer::for_each_exact(text, |from, to, token| {
            let Some(i) = self.stem_of(token) else {
                return;
            };
            push_match(out, (base + from, base + to, i));
        });
    }

    /// The snippet of `body`: the best passage around the query's words, or the start
    /// of the body when none of them occurs in it (the match was in the title or the
    /// headings).
    pub fn of(&mut self, body: &str) -> Snippet {
        let matches = self.matches(body);
        // Nearly every body is ASCII: then bytes count characters.
        let ascii = body.is_ascii();
        let at = char_offsets(body, &matches, ascii);
        let Some((first, from, to)) = best_run(body, &matches, &at) else {
            return (head(body, MAX_CHARS).to_owned(), Vec::new());
        };
        // The passage's first character, counted from the start of the body. It is
        // before the first match, or after it when a long word was cut (see
        // [`word_start`]).
        let first_match = matches[first].0;
        let base = if ascii {
            from
        } else if from <= first_match {
            at[first][0] - count_chars(&body[from..first_match])
        } else {
            at[first][0] + count_chars(&body[first_match..from])
        };
        let mut highlights: Vec<[usize; 2]> = Vec::new();
        for (_, [start, end]) in matches
            .iter()
            .zip(&at)
            .filter(|(m, _)| m.0 >= from && m.1 <= to)
        {
            match highlights.last_mut() {
                // Touching matches are one highlight: the pairs of a CJK word
                // (トレ|ース) read as the word.
                Some(last) if last[1] == start - base => last[1] = end - base,
                _ => highlights.push([start - base, end - base]),
            }
        }
        (body[from..to].to_owned(), highlights)
    }
}

/// The character offsets in `body` of each match's start and end (`matches` are in
/// order and do not overlap), counted in one pass; the byte offsets when `ascii` (the
/// body is).
fn char_offsets(body: &str, matches: &[(usize, usize, usize)], ascii: bool) -> Vec<[usize; 2]> {
    if ascii {
        return matches.iter().map(|m| [m.0, m.1]).collect();
    }
    let (mut byte, mut chars) = (0, 0);
    matches
        .iter()
        .map(|m| {
            let start = chars + count_chars(&body[byte..m.0]);
            chars = start + count_chars(&body[m.0..m.1]);
            byte = m.1;
            [start, chars]
        })
        .collect()
}

fn count_chars(s: &str) -> usize {
    s.chars().count()
}

impl Snippets {
    /// The part of `body` worth tokenizing when a stem is not ASCII, and where it
    /// starts: all of a short body;
    /// of a long one, a stretch from a little before the first place a query stem
    /// occurs as plain text (an ASCII one in any case), which is where its matches
    /// almost always are. Tokenizing whole long sections cost more than the search.
    fn region<'b>(&self, body: &'b str) -> (usize, &'b str) {
        if body.len() <= REGION_BYTES {
            return (0, body);
        }
        let first = self
            .stems
            .iter()
            .filter_map(|s| {
                if s.is_ascii() {
                    find_ascii_ci(body, s)
                } else {
                    // CJK pairs and the like: lowercasing aside, as they are written.
                    body.find(s.as_str())
                }
            })
            .min();
        let Some(at) = first else {
            return (0, body);
        };
        let from = floor_boundary(body, at.saturating_sub(REGION_BYTES / 4));
        let to = floor_boundary(body, (from + REGION_BYTES).min(body.len()));
        (from, &body[from..to])
    }
}

/// The bytes a token must start with to stem to `stem`: all but its last (English
/// stemming may have turned a final `y` into `i`, or dropped or added an `e`: `cry`
/// to `cri`, `using` to `use`), and at least [`PREFIX`]; of a stem of three letters
/// ending in `ie`, which the stemmer makes of `dying`, `lying`, `tying` and `vying`,
/// the first letter. Each of the 56,520 distinct words of letters in the test corpus
/// starts like this with the stem it stems to (with at least 3 bytes, 33 did not:
/// `cry`, `using`, `dying`...).
fn prefix(stem: &str) -> &[u8] {
    if stem.len() == 3 && stem.ends_with("ie") {
        return &stem.as_bytes()[..1];
    }
    let n = stem.len();
    &stem.as_bytes()[..n.saturating_sub(1).max(PREFIX).min(n)]
}

/// The byte range of the compound (a run of word bytes, non-ASCII bytes and the
/// connectors `.`, `:`, `-`) around `from..to`. It starts and ends at char boundaries:
/// it stops only at ASCII bytes or the ends of `text`.
fn compound_around(text: &[u8], from: usize, to: usize) -> (usize, usize) {
    let inside = |b: u8| b.is_ascii_alphanumeric() || b >= 0x80 || b"_.:-".contains(&b);
    let start = text[..from]
        .iter()
        .rposition(|&b| !inside(b))
        .map_or(0, |i| i + 1);
    let end = text[to..]
        .iter()
        .position(|&b| !inside(b))
        .map_or(text.len(), |i| to + i);
    (start, end)
}

/// Adds a match after those in `out`: a compound and its first part share a start,
/// and the longer is kept; a token inside a match already kept is not one more, and
/// one reaching past it extends it (the overlapping pairs of a CJK word: 日本|本語).
fn push_match(out: &mut Vec<(usize, usize, usize)>, (from, to, i): (usize, usize, usize)) {
    match out.last_mut() {
        Some(last) if from < last.1 => last.1 = last.1.max(to),
        _ => out.push((from, to, i)),
    }
}

/// The tokens a plain stem can match that start at `at` (where a part starts) into
/// `out`: the part, and the run of letters and digits it starts when that is several
/// parts (the analyzer's `parts` makes such a run a token, or it is the compound).
/// False when that depends on a non-ASCII character.
fn plain_tokens(text: &[u8], at: usize, out: &mut Vec<(usize, usize)>) -> bool {
    let Some(end) = part_end(text, at) else {
        return false;
    };
    out.push((at, end));
    let alnum = |c: &u8| c.is_ascii_alphanumeric();
    if at > 0 && alnum(&text[at - 1]) {
        // A later part of its run.
        return true;
    }
    let run_end = text[at..]
        .iter()
        .position(|c| !alnum(c))
        .map_or(text.len(), |i| at + i);
    if run_end == end {
        return true;
    }
    // A non-ASCII letter on either side would be part of the run.
    let ascii = |i: Option<usize>| i.and_then(|i| text.get(i)).is_none_or(u8::is_ascii);
    if !ascii(at.checked_sub(1)) || !ascii(Some(run_end)) {
        return false;
    }
    out.push((at, run_end));
    true
}

/// The end of the part (a run of letters and digits, split at camelCase, as the
/// analyzer splits compounds) that starts at `at`; `None` when a non-ASCII character
/// could be part of it or decide where it ends.
fn part_end(text: &[u8], at: usize) -> Option<usize> {
    let mut end = at + 1;
    while let Some(&c) = text.get(end) {
        if !c.is_ascii() {
            return None;
        }
        if !c.is_ascii_alphanumeric() {
            break;
        }
        let prev = text[end - 1];
        if c.is_ascii_uppercase() {
            if prev.is_ascii_lowercase() {
                break;
            }
            // `HTTPServer`: an acronym ends before a capitalised word.
            if prev.is_ascii_uppercase() {
                match text.get(end + 1) {
                    Some(n) if !n.is_ascii() => return None,
                    Some(n) if n.is_ascii_lowercase() => break,
                    _ => {}
                }
            }
        }
        end += 1;
    }
    Some(end)
}

/// Whether a token can start at `at` (a char boundary), as the analyzer splits text: at
/// the start, after a character that is not alphanumeric, or at a camelCase boundary.
/// A stem's prefix found inside a word (`han` in `than`) is no match.
fn starts_part(text: &str, at: usize) -> bool {
    let Some(prev) = text[..at].chars().next_back() else {
        return true;
    };
    if !prev.is_alphanumeric() {
        return true;
    }
    let mut rest = text[at..].chars();
    let (Some(c), next) = (rest.next(), rest.next()) else {
        return false;
    };
    c.is_uppercase()
        && (prev.is_lowercase() || (prev.is_uppercase() && next.is_some_and(char::is_lowercase)))
}

/// Bytes of a long body that [`Snippets::region`] keeps.
const REGION_BYTES: usize = 1600;

/// Byte offset of the first ASCII-case-insensitive occurrence of `needle`.
fn find_ascii_ci(hay: &str, needle: &str) -> Option<usize> {
    let (h, n) = (hay.as_bytes(), needle.as_bytes());
    if n.is_empty() || !needle.is_ascii() || n.len() > h.len() {
        return None;
    }
    h.windows(n.len()).position(|w| w.eq_ignore_ascii_case(n))
}

/// The largest char boundary at or below `i`.
fn floor_boundary(s: &str, mut i: usize) -> usize {
    while i > 0 && !s.is_char_boundary(i) {
        i -= 1;
    }
    i
}

/// The passage: the run of matches within [`MAX_CHARS`] with the most distinct stems
/// (then the most matches), from a little before its first match. Its first match, and
/// its byte range. `at`: the matches' character offsets (see [`char_offsets`]).
fn best_run(
    body: &str,
    matches: &[(usize, usize, usize)],
    at: &[[usize; 2]],
) -> Option<(usize, usize, usize)> {
    let mut best: Option<(usize, usize, usize)> = None; // (distinct, count, first match)
    let mut distinct: Vec<usize> = Vec::new();
    for i in 0..matches.len() {
        distinct.clear();
        let mut count = 0;
        for (n, end) in matches[i..].iter().zip(&at[i..]) {
            if end[1] - at[i][0] > MAX_CHARS - LEAD_CHARS {
                break;
            }
            count += 1;
            if !distinct.contains(&n.2) {
                distinct.push(n.2);
            }
        }
        let score = (distinct.len(), count, i);
        if best.is_none_or(|b| (score.0, score.1) > (b.0, b.1)) {
            best = Some(score);
        }
    }
    let (_, _, first) = best?;
    let from = word_start(body, back_chars(body, matches[first].0, LEAD_CHARS));
    let to = from + head(&body[from..], MAX_CHARS).len();
    Some((first, from, to))
}

/// The byte offset `n` characters before `at`.
fn back_chars(s: &str, at: usize, n: usize) -> usize {
    s[..at]
        .char_indices()
        .rev()
        .nth(n.saturating_sub(1))
        .map_or(0, |(i, _)| i)
}

/// Moves `at` forward past a partial word to the next word's start (not past `limit`
/// characters: a very long word is cut instead).
fn word_start(s: &str, at: usize) -> usize {
    if at == 0 || s[..at].ends_with(char::is_whitespace) {
        return at;
    }
    match s[at..]
        .char_indices()
        .take(20)
        .find(|(_, c)| c.is_whitespace())
    {
        Some((i, c)) => at + i + c.len_utf8(),
        None => at,
    }
}

/// The first `n` characters of `s`, cut back to the last whitespace when there is one
/// in the final stretch so that no word is cut in half.
fn head(s: &str, n: usize) -> &str {
    let cut = if s.len() <= n {
        None
    } else if s.as_bytes()[..=n].is_ascii() {
        Some(n)
    } else {
        s.char_indices().nth(n).map(|(i, _)| i)
    };
    let Some(cut) = cut else {
        return s;
    };
    let prefix = &s[..cut];
    match prefix.rfind(char::is_whitespace) {
        Some(ws) if cut - ws < 30 => prefix[..ws].trim_end(),
        _ => prefix,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::analyzer;

    /// The snippets of a query of `words`, stemmed as a query is.
    fn snippets(words: &[&str]) -> Snippets {
        let stems = words
            .iter()
            .flat_map(|w| analyzer::tokens(analyzer::STEMMED, w).unwrap())
            .map(|(_, t)| t)
            .collect();
        Snippets::new(stems)
    }

    fn highlighted(s: &Snippet) -> Vec<String> {
        let chars: Vec<char> = s.0.chars().collect();
        s.1.iter()
            .map(|[a, b]| chars[*a..*b].iter().collect())
            .collect()
    }

    #[test]
    fn highlights_stemmed_and_exact_forms() {
        let mut s = snippets(&["borrowing", "references"]);
        let body = "Rust's rules: a Reference borrows; one borrowed value, many references.";
        let snip = s.of(body);
        assert_eq!(snip.0, body);
        assert_eq!(
            highlighted(&snip),
            ["Reference", "borrows", "borrowed", "references"]
        );
    }

    /// Short words that do not start like their own stem (`cry` → `cri`, `dying` →
    /// `die`) are highlighted in every form, the word itself included.
    #[test]
    fn short_words_are_highlighted_in_every_form() {
        for (word, body, expected) in [
            (
                "cry",
                "the baby cries and babies cry",
                &["cries", "cry"][..],
            ),
            ("try", "try tries trying", &["try", "tries", "trying"]),
            ("fly", "flies fly", &["flies", "fly"]),
            ("skies", "sky and skies", &["sky", "skies"]),
            (
                "dying",
                "the process is dying, dies, died",
                &["dying", "dies", "died"],
            ),
            ("lying", "lying lies", &["lying", "lies"]),
            ("tying", "tying ties", &["tying", "ties"]),
            ("vying", "still vying", &["vying"]),
            ("using", "use it using this", &["use", "using"]),
            ("any", "any of many", &["any"]),
        ] {
            let snip = snippets(&[word]).of(body);
            assert_eq!(highlighted(&snip), expected, "{word} in {body:?}");
        }
    }

    /// A CJK word is matched by its pairs of characters; touching pairs are one
    /// highlight.
    #[test]
    fn cjk_words_are_highlighted_whole() {
        let mut s = snippets(&["トレース"]);
        let snip = s.of("分散トレースとメトリクス。トレーサーのトレース");
        assert_eq!(highlighted(&snip), ["トレース", "トレー", "トレース"]);
        let mut s = snippets(&["日本語"]);
        assert_eq!(highlighted(&s.of("これは日本語の文書")), ["日本語"]);
        // A single character matches alone.
        let mut s = snippets(&["値"]);
        assert_eq!(highlighted(&s.of("デフォルト値の")), ["値"]);
    }

    #[test]
    fn passage_is_the_densest_run() {
        let mut s = snippets(&["tokio", "runtime"]);
        let filler = "lorem ipsum dolor sit amet ".repeat(20);
        let body = format!("tokio once. {filler} the tokio runtime starts here. {filler}");
        let snip = s.of(&body);
        assert!(snip.0.chars().count() <= MAX_CHARS);
        assert!(snip.0.contains("the tokio runtime starts"), "{}", snip.0);
        assert_eq!(highlighted(&snip), ["tokio", "runtime"]);
    }

    #[test]
    fn non_ascii_passages_count_characters() {
        let mut s = snippets(&["tokio", "runtime"]);
        let before = "é—ü ".repeat(80);
        let body = format!("{before}“the tokio runtime” — naïve tokio {before} runtime");
        let snip = s.of(&body);
        assert!(snip.0.chars().count() <= MAX_CHARS);
        assert!(
            snip.0.contains("“the tokio runtime” — naïve tokio"),
            "{}",
            snip.0
        );
        assert_eq!(highlighted(&snip), ["tokio", "runtime", "tokio"]);
    }

    #[test]
    fn identifiers_and_non_ascii() {
        let mut s = snippets(&["snake_case", "naïve"]);
        let body = "Call snake_case_fn and the naïve café.";
        assert_eq!(highlighted(&s.of(body)), ["snake", "case", "naïve"]);
        let mut s = snippets(&["snake_case"]);
        assert_eq!(highlighted(&s.of("use snake_case here")), ["snake_case"]);
    }

    #[test]
    fn scanning_finds_what_tokenizing_everything_finds() {
        let bodies = [
            "Reference borrows: std::borrow::Borrow, the BorrowChecker and --borrow-mode.",
            "un-borrowed.references;borrowing_rules re-borrow REFERENCES ref refs",
            "naïve café: borrowing über alles — references…borrowed",
            "IoBorrow HTTPBorrowing XMLRefs refBorrow BORROWED utf8Borrow 2Borrow réborrow éBorrow",
            "unborrowed prefs therefore deref_refs refs2 x.refs::Borrow_ref",
            "BORROWReferences REFSBorrowed RefsBORROW borrowRefsX BorrowR refS",
            "borrowingborrowingborrowingborrowingborrowingborrowingborrowingborrowingborrowing",
            "BorrowÉ refsé Refsñx borrowΣ ÉBorrow",
            "",
        ];
        for words in [
            &["borrowing", "references"][..],
            &["ref", "b"],
            &["borrow_checker"],
        ] {
            let mut s = snippets(words);
            for body in bodies {
                let mut all = Vec::new();
                s.matches_in(body, 0, &mut all);
                assert_eq!(s.matches(body), all, "{words:?} in {body:?}");
            }
        }
    }

    /// The same over many random strings of letters (both cases), digits,
    /// connectors, spaces and a non-ASCII letter.
    #[test]
    fn scanning_finds_what_tokenizing_everything_finds_at_random() {
        const ALPHABET: &[&str] = &[
            "Java", "java", "Script", "script", "Ref", "ref", "REF", "s", "S", "x", "1", "_", ".",
            "::", ":", "-", "--", " ", "(", "é",
        ];
        let mut state: u64 = 0x9E37_79B9_7F4A_7C15;
        let mut next = move |n: usize| {
            state = state
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            (state >> 33) as usize % n
        };
        let mut plain_read = 0;
        for words in [
            &["ref"][..],
            &["refs", "java"],
            &["javascript", "script"],
            &["jav", "r"],
        ] {
            let mut s = snippets(words);
            for _ in 0..20_000 {
                let len = 1 + next(10);
                let body: String = (0..len).map(|_| ALPHABET[next(ALPHABET.len())]).collect();
                let mut all = Vec::new();
                s.matches_in(&body, 0, &mut all);
                assert_eq!(s.matches(&body), all, "{words:?} in {body:?}");
                plain_read += usize::from(!body.contains('é') && !all.is_empty());
            }
        }
        assert!(plain_read > 10_000, "{plain_read}");
    }

    #[test]
    fn no_match_gives_the_head_without_cutting_words() {
        let mut s = snippets(&["absent"]);
        let body = "word ".repeat(100);
        let snip = s.of(&body);
        assert!(snip.1.is_empty());
        assert!(snip.0.chars().count() <= MAX_CHARS);
        assert!(snip.0.ends_with("word"));
        assert_eq!(s.of("").0, "");
    }

    #[test]
    fn long_bodies_are_searched_near_the_first_stem() {
        let mut s = snippets(&["tokio"]);
        let filler = "lorem ipsum dolor sit amet ".repeat(200);
        let body = format!("{filler} here Tokio starts the runtime. {filler}");
        let snip = s.of(&body);
        assert!(snip.0.contains("Tokio starts"), "{}", snip.0);
        assert_eq!(highlighted(&snip), ["Tokio"]);
        // A stem that is not plain text in the body (stemming changed the ending):
        // the whole body is searched.
        let mut s = snippets(&["happy"]);
        let body = format!("{filler} we are happy here. {filler}");
        assert_eq!(highlighted(&s.of(&body)), ["happy"]);
        assert_eq!(find_ascii_ci("Hello World", "world"), Some(6));
        assert_eq!(find_ascii_ci("naïve", "ïve"), None);
        assert_eq!(floor_boundary("aé", 2), 1);
    }

    #[test]
    fn helpers_respect_char_boundaries() {
        let s = "ééé abc";
        assert_eq!(back_chars(s, 6, 2), 2);
        assert_eq!(back_chars(s, 6, 10), 0);
        assert_eq!(word_start(s, 2), 7);
        assert_eq!(head("aé b", 2), "aé");
    }
}
