//! Tokenisation: words, and code identifiers found both whole and by their parts.
//!
//! Documentation is full of `snake_case`, `CamelCase`, `foo::bar`, `path.to.thing` and
//! `--flags`. A plain word tokenizer splits them into fragments and loses the whole; a
//! whitespace tokenizer keeps the whole and loses the parts. [`CodeTokenizer`] emits
//! both: the whole compound at position p and its parts at p, p+1, ..., so a search for
//! `snake_case`, for `snake`, or for the phrase "snake case" all match. The same
//! analyzer runs on queries, so query and document tokens agree.

use std::borrow::Cow;
use std::cell::RefCell;

use hashbrown::hash_map::{EntryRef, HashMap};
use rust_stemmers::{Algorithm, Stemmer};
use rustc_hash::FxBuildHasher;
use tantivy::tokenizer::{
    LowerCaser, RemoveLongFilter, TextAnalyzer, Token, TokenFilter, TokenStream, Tokenizer,
};

/// Name of the stemmed analyzer (English), used for the main text fields.
pub const STEMMED: &str = "ds_stemmed";
/// Name of the unstemmed analyzer, used for the exact fields.
pub const EXACT: &str = "ds_exact";

/// Tokens longer than this (bytes) are dropped: hashes and base64 blobs are noise.
pub const MAX_TOKEN: usize = 80;

/// The stemmed analyzer of documents.
pub fn stemmed() -> TextAnalyzer {
    stemmed_with(CodeTokenizer::default())
}

/// The unstemmed analyzer of documents.
pub fn exact() -> TextAnalyzer {
    exact_with(CodeTokenizer::default())
}

fn stemmed_with(tokenizer: CodeTokenizer) -> TextAnalyzer {
    TextAnalyzer::builder(tokenizer)
        .filter(RemoveLongFilter::limit(MAX_TOKEN))
        .filter(LowerCaser)
        .filter(CachedStemmer)
        .build()
}

fn exact_with(tokenizer: CodeTokenizer) -> TextAnalyzer {
    TextAnalyzer::builder(tokenizer)
        .filter(RemoveLongFilter::limit(MAX_TOKEN))
        .filter(LowerCaser)
        .build()
}

thread_local! {
    /// The analyzers queries go through (see [`CodeTokenizer::query`]), kept on a
    /// thread: [`CachedStemmer`] remembers the words earlier queries stemmed.
    static QUERY_ANALYZERS: RefCell<[TextAnalyzer; 2]> = RefCell::new([
        stemmed_with(CodeTokenizer { query: true }),
        exact_with(CodeTokenizer { query: true }),
    ]);
}

/// `(position, text)` of each token of the query text `text` through the analyzer
/// named `name` ([`STEMMED`] or [`EXACT`]); `None` for another name.
pub fn tokens(name: &str, text: &str) -> Option<Vec<(usize, String)>> {
    let which = [STEMMED, EXACT].iter().position(|n| *n == name)?;
    let mut out = Vec::new();
    QUERY_ANALYZERS.with_borrow_mut(|analyzers| {
        let mut stream = analyzers[which].token_stream(text);
        while let Some(t) = stream.next() {
            out.push((t.position, t.text.clone()));
        }
    });
    Some(out)
}

/// The tokens of [`exact`] without its boxed stream: `(from, to, lowercased text)`
/// for each, in order. For hot loops that tokenize many short stretches.
pub fn for_each_exact(text: &str, mut f: impl FnMut(usize, usize, &str)) {
    // A plain word (optionally capitalised, perhaps ending a sentence) is its own only
    // token. Most stretches a snippet tokenizes are one: they skip the span analysis.
    let word = text.trim_end_matches(['.', ':', '-']).as_bytes();
    let plain = !word.is_empty()
        && word.len() < MAX_TOKEN
        && word.iter().all(u8::is_ascii_alphanumeric)
        && !word.iter().skip(1).any(u8::is_ascii_uppercase);
    if plain {
        let mut buf = [0u8; MAX_TOKEN];
        let lower = &mut buf[..word.len()];
        lower.copy_from_slice(word);
        lower.make_ascii_lowercase();
        f(
            0,
            word.len(),
            std::str::from_utf8(lower).unwrap_or_default(),
        );
        return;
    }
    // Taken, not borrowed: `f` may tokenize too.
    let mut scratch = SCRATCH.take();
    scratch.fill(text, false);
    for &(from, to, _) in &scratch.spans {
        let word = &text[from..to];
        if word.len() >= MAX_TOKEN {
            continue;
        }
        let lower = &mut scratch.lower;
        lower.clear();
        if word.is_ascii() {
            lower.push_str(word);
            lower.make_ascii_lowercase();
        } else {
            // As tantivy's LowerCaser: char by char, no final-sigma rule.
            lower.extend(word.chars().flat_map(char::to_lowercase));
        }
        f(from, to, lower);
    }
    SCRATCH.set(scratch);
}

thread_local! {
    /// [`for_each_exact`]'s buffers, kept between calls on a thread.
    static SCRATCH: std::cell::Cell<Scratch> = std::cell::Cell::default();
}

/// Buffers for computing spans; their allocations are reused.
#[derive(Default)]
struct Scratch {
    compounds: Vec<(usize, usize)>,
    /// (from, to, position within the compound).
    pieces: Vec<(usize, usize, usize)>,
    spans: Vec<(usize, usize, usize)>,
    lower: String,
}

impl Scratch {
    /// (from, to, position) of every token of `text` into `self.spans`: each compound
    /// whole (when it has several parts) and its parts, the whole sharing the first
    /// part's position; a run of CJK as [`cjk_pieces`] cuts it (`query`: of a query).
    fn fill(&mut self, text: &str, query: bool) {
        compounds(text, &mut self.compounds);
        self.spans.clear();
        let mut position = 0;
        for &(start, end) in &self.compounds {
            let pieces = &mut self.pieces;
            let first = text[start..].chars().next().unwrap_or(' ');
            if is_cjk(first) {
                // No whole: a stretch of a sentence no query spells out.
                cjk_pieces(&text[start..end], start, query, pieces);
            } else {
                parts(&text[start..end], start, pieces);
                if !(pieces.len() == 1 && (pieces[0].0, pieces[0].1) == (start, end)) {
                    self.spans.push((start, end, position));
                }
            }
            let mut width = 0;
            for &(from, to, k) in pieces.iter() {
                self.spans.push((from, to, position + k));
                width = width.max(k + 1);
            }
            position += width.max(1);
        }
    }
}

/// Splits text into words and identifiers (see the module doc).
#[derive(Clone, Default)]
pub struct CodeTokenizer {
    /// Tokenizes a query: a run of CJK of several characters is only its pairs (a
    /// document's has its single characters too, see [`cjk_pieces`]).
    pub query: bool,
}

/// Spans are computed up front (no allocation per token); one [`Token`] is reused.
pub struct CodeTokenStream<'a> {
    text: &'a str,
    spans: Vec<(usize, usize, usize)>,
    next: usize,
    token: Token,
}

impl Tokenizer for CodeTokenizer {
    type TokenStream<'a> = CodeTokenStream<'a>;

    fn token_stream<'a>(&'a mut self, text: &'a str) -> CodeTokenStream<'a> {
        CodeTokenStream {
            text,
            spans: spans(text, self.query),
            next: 0,
            token: Token::default(),
        }
    }
}

impl TokenStream for CodeTokenStream<'_> {
    fn advance(&mut self) -> bool {
        let Some(&(from, to, position)) = self.spans.get(self.next) else {
            return false;
        };
        self.next += 1;
        self.token.offset_from = from;
        self.token.offset_to = to;
        self.token.position = position;
        self.token.position_length = 1;
        self.token.text.clear();
        self.token.text.push_str(&self.text[from..to]);
        true
    }
    fn token(&self) -> &Token {
        &self.token
    }
    fn token_mut(&mut self) -> &mut Token {
        &mut self.token
    }
}

/// Most words a [`CachedStemmer`] remembers (then it forgets them all and starts again).
const MAX_STEMS: usize = 1 << 14;

/// English stemming (as tantivy's `Stemmer`) that remembers the stem of each word it
/// has seen. Prose repeats its words, and looking one up costs a fraction of stemming
/// it, which was a third of a full index's time. tantivy clones an analyzer for each
/// field of each segment it writes, so a cache lives as long as that segment's writer;
/// a clone starts empty.
#[derive(Clone, Copy, Default)]
pub struct CachedStemmer;

impl TokenFilter for CachedStemmer {
    type Tokenizer<T: Tokenizer> = CachedStemmerFilter<T>;

    fn transform<T: Tokenizer>(self, inner: T) -> CachedStemmerFilter<T> {
        CachedStemmerFilter {
            inner,
            stems: StemCache::default(),
        }
    }
}

/// Words and their stems (`None` for a word that is its own stem, as most are); all
/// forgotten at once past [`MAX_STEMS`].
#[derive(Default)]
pub struct StemCache(HashMap<Box<str>, Option<Box<str>>, FxBuildHasher>);

impl StemCache {
    /// The stem of `word` (lowercased) when it is not the word itself; one lookup for
    /// a word seen before, as most are.
    pub fn stem(&mut self, stemmer: &Stemmer, word: &str) -> Option<&str> {
        if self.0.len() >= MAX_STEMS {
            self.0.clear();
        }
        let stem = match self.0.entry_ref(word) {
            EntryRef::Occupied(seen) => seen.into_mut(),
            EntryRef::Vacant(new) => new.insert(match stemmer.stem(word) {
                Cow::Borrowed(same) if same == word => None,
                stem => Some(stem.into()),
            }),
        };
        stem.as_deref()
    }
}

pub struct CachedStemmerFilter<T> {
    inner: T,
    stems: StemCache,
}

impl<T: Clone> Clone for CachedStemmerFilter<T> {
    fn clone(&self) -> Self {
        CachedStemmerFilter {
            inner: self.inner.clone(),
            stems: StemCache::default(),
        }
    }
}

impl<T: Tokenizer> Tokenizer for CachedStemmerFilter<T> {
    type TokenStream<'a> = CachedStemmerStream<'a, T::TokenStream<'a>>;

    fn token_stream<'a>(&'a mut self, text: &'a str) -> Self::TokenStream<'a> {
        CachedStemmerStream {
            tail: self.inner.token_stream(text),
            stemmer: Stemmer::create(Algorithm::English),
            stems: &mut self.stems,
        }
    }
}

pub struct CachedStemmerStream<'a, S> {
    tail: S,
    stemmer: Stemmer,
    stems: &'a mut StemCache,
}

impl<S: TokenStream> TokenStream for CachedStemmerStream<'_, S> {
    fn advance(&mut self) -> bool {
        if !self.tail.advance() {
            return false;
        }
        let text = &mut self.tail.token_mut().text;
        if let Some(stem) = self.stems.stem(&self.stemmer, text) {
            text.clear();
            text.push_str(stem);
        }
        true
    }
    fn token(&self) -> &Token {
        self.tail.token()
    }
    fn token_mut(&mut self) -> &mut Token {
        self.tail.token_mut()
    }
}

fn is_word(c: char) -> bool {
    c.is_alphanumeric() || c == '_'
}

/// Byte ranges of compounds: `[-|--]word(connector word)*`, connectors `::` `.` `-`.
fn compounds(text: &str, out: &mut Vec<(usize, usize)>) {
    out.clear();
    let bytes = text.as_bytes();
    let mut chars = text.char_indices().peekable();
    while let Some((start, c)) = chars.next() {
        let dashes = if c == '-' {
            // A leading `-` or `--` counts only right before a word character.
            let rest = &text[start..];
            let n = if rest.starts_with("--") { 2 } else { 1 };
            match rest[n..].chars().next() {
                Some(d) if is_word(d) && !is_cjk(d) => n,
                _ => continue,
            }
        } else if is_word(c) {
            0
        } else {
            continue;
        };
        for _ in 1..dashes {
            chars.next();
        }
        // Dashes are one byte each; otherwise the compound starts with `c`.
        let mut end = if dashes > 0 {
            start + dashes
        } else {
            start + c.len_utf8()
        };
        // A compound is all CJK or has none: where the script changes, one ends and
        // the next begins (`OpenTelemetryコレクター` is two).
        let cjk = is_cjk(c);
        let same = |d: char| is_word(d) && is_cjk(d) == cjk;
        loop {
            // Consume word characters.
            while let Some(&(i, d)) = chars.peek() {
                if !same(d) {
                    break;
                }
                end = i + d.len_utf8();
                chars.next();
            }
            // A connector continues the compound only if a word character follows it.
            let rest = &text[end..];
            let conn = if rest.starts_with("::") {
                2
            } else if rest.starts_with('.') || rest.starts_with('-') {
                1
            } else {
                0
            };
            if cjk || conn == 0 || !rest[conn..].chars().next().is_some_and(same) {
                break;
            }
            for _ in 0..conn {
                chars.next();
            }
            end += conn;
        }
        if end > start
            && bytes[start..end]
                .iter()
                .any(|b| b.is_ascii_alphanumeric() || *b >= 0x80)
        {
            out.push((start, end));
        }
    }
}

/// Whether `c` is written without spaces between words: Han, Hiragana, Katakana and
/// Hangul. Runs of these are cut into overlapping pairs (see [`parts`]).
pub fn is_cjk(c: char) -> bool {
    matches!(c as u32,
        0x1100..=0x11FF // Hangul Jamo
        | 0x3005..=0x3007 // 々 〆 〇
        | 0x303B // 〻
        | 0x3040..=0x30FF // Hiragana, Katakana
        | 0x3130..=0x318F // Hangul compatibility Jamo
        | 0x31F0..=0x31FF // Katakana phonetic extensions
        | 0x3400..=0x4DBF // Han extension A
        | 0x4E00..=0x9FFF // Han
        | 0xAC00..=0xD7AF // Hangul syllables
        | 0xF900..=0xFAFF // Han compatibility
        | 0xFF66..=0xFF9F // half-width Katakana
        | 0x20000..=0x323AF // Han extensions B to H, compatibility supplement
    )
}

/// Parts of a compound into `out`, each with its position in the compound: split on
/// non-alphanumerics, then on camelCase boundaries. A piece between non-alphanumerics
/// that camelCase splits is a part whole too, at its first part's position (as the
/// compound is), unless it is the whole compound: `std::collections::HashMap` has
/// `HashMap` as well as `Hash` and `Map`. `base` is the compound's offset in the whole
/// text.
fn parts(text: &str, base: usize, out: &mut Vec<(usize, usize, usize)>) {
    out.clear();
    // The run of alphanumerics in progress: where it starts, and where its first part
    // is in `out`.
    let mut run: Option<(usize, usize)> = None;
    let mut start: Option<usize> = None;
    let mut k = 0;
    let mut prev = ' ';
    let mut chars = text.char_indices().peekable();
    let mut push = |out: &mut Vec<(usize, usize, usize)>, from: usize, to: usize| {
        out.push((base + from, base + to, k));
        k += 1;
    };
    // A run split into several parts goes in whole before them.
    let end_run = |out: &mut Vec<(usize, usize, usize)>, run: (usize, usize), to: usize| {
        let (from, first) = run;
        if out.len() - first > 1 && (from, to) != (0, text.len()) {
            out.insert(first, (base + from, base + to, out[first].2));
        }
    };
    while let Some((i, c)) = chars.next() {
        if !c.is_alphanumeric() {
            if let Some(s) = start.take() {
                push(out, s, i);
            }
            if let Some(r) = run.take() {
                end_run(out, r, i);
            }
        } else if let Some(s) = start {
            let next = chars.peek().map(|x| x.1);
            // fooBar | HTTPServer: split before an upper-case letter that follows a
            // lower-case one, or that starts a capitalised word after an acronym.
            let boundary = c.is_uppercase()
                && (prev.is_lowercase()
                    || (prev.is_uppercase() && next.is_some_and(char::is_lowercase)));
            if boundary {
                push(out, s, i);
                start = Some(i);
            }
        } else {
            start = Some(i);
            run = Some((i, out.len()));
        }
        prev = c;
    }
    if let Some(s) = start {
        push(out, s, text.len());
    }
    if let Some(r) = run {
        end_run(out, r, text.len());
    }
}

/// The pieces of a run of CJK (see [`is_cjk`]), which has no spaces to split words
/// at, each with its position in the run: as Lucene's CJK analyzer, each pair of
/// neighbours, and in a document each character alone too, at the position of the
/// pair it starts. A query's run of several characters is its pairs only, so a word
/// inside a sentence is found by its pairs (and not by every text sharing a
/// character); a query's single character matches the document's single ones. `base`
/// is the run's offset in the whole text.
fn cjk_pieces(text: &str, base: usize, query: bool, out: &mut Vec<(usize, usize, usize)>) {
    out.clear();
    let lone = text.chars().nth(1).is_none();
    let mut chars = text.char_indices().peekable();
    let mut k = 0;
    while let Some((i, c)) = chars.next() {
        let end = i + c.len_utf8();
        if let Some(&(_, d)) = chars.peek() {
            out.push((base + i, base + end + d.len_utf8(), k));
        }
        if lone || !query {
            out.push((base + i, base + end, k));
        }
        k += 1;
    }
}

/// (from, to, position) of every token (see [`Scratch::fill`]).
fn spans(text: &str, query: bool) -> Vec<(usize, usize, usize)> {
    let mut scratch = Scratch::default();
    scratch.fill(text, query);
    scratch.spans
}

#[cfg(test)]
mod tests {
    use super::*;

    fn texts(analyzer: &mut TextAnalyzer, s: &str) -> Vec<(String, usize)> {
        let mut stream = analyzer.token_stream(s);
        let mut out = Vec::new();
        while stream.advance() {
            let t = stream.token();
            out.push((t.text.clone(), t.position));
        }
        out
    }

    fn words(s: &str) -> Vec<String> {
        texts(&mut exact(), s).into_iter().map(|(t, _)| t).collect()
    }

    #[test]
    fn identifiers_whole_and_parts() {
        assert_eq!(words("snake_case"), ["snake_case", "snake", "case"]);
        assert_eq!(words("CamelCase"), ["camelcase", "camel", "case"]);
        assert_eq!(words("HTTPServer"), ["httpserver", "http", "server"]);
        assert_eq!(
            words("std::fs::read"),
            ["std::fs::read", "std", "fs", "read"]
        );
        // A camelCase piece of a longer compound is a part whole too, so a search
        // for `hashmap` finds it; its position is its first part's.
        assert_eq!(
            words("std::collections::HashMap"),
            [
                "std::collections::hashmap",
                "std",
                "collections",
                "hashmap",
                "hash",
                "map"
            ]
        );
        let positions: Vec<_> = texts(&mut exact(), "std::collections::HashMap")
            .into_iter()
            .map(|(_, p)| p)
            .collect();
        assert_eq!(positions, [0, 0, 1, 2, 2, 3]);
        assert_eq!(
            words("config.maxRetryCount"),
            [
                "config.maxretrycount",
                "config",
                "maxretrycount",
                "max",
                "retry",
                "count"
            ]
        );
        assert_eq!(words("--dry-run"), ["--dry-run", "dry", "run"]);
        assert_eq!(words("use -v now"), ["use", "-v", "v", "now"]);
        assert_eq!(words("a.b end."), ["a.b", "a", "b", "end"]);
        assert_eq!(words("x - y"), ["x", "y"]);
        assert_eq!(words("naïve Ünïcode"), ["naïve", "ünïcode"]);
        assert_eq!(words("__init__"), ["__init__", "init"]);
        assert_eq!(words("___ -- :: ."), Vec::<String>::new());
    }

    fn query_words(s: &str) -> Vec<String> {
        texts(&mut exact_with(CodeTokenizer { query: true }), s)
            .into_iter()
            .map(|(t, _)| t)
            .collect()
    }

    /// CJK runs become their overlapping pairs (and, in documents, single characters
    /// at the positions of the pairs they start), so that a word inside a sentence
    /// (no spaces) is found: トレース in 分散トレースと shares トレ, レー and ース
    /// with it.
    #[test]
    fn cjk_runs_become_pairs() {
        assert_eq!(query_words("日本語"), ["日本", "本語"]);
        assert_eq!(words("日本語"), ["日本", "日", "本語", "本", "語"]);
        assert_eq!(
            query_words("分散トレースと"),
            ["分散", "散ト", "トレ", "レー", "ース", "スと"]
        );
        assert_eq!(query_words("木 の"), ["木", "の"]);
        assert_eq!(words("木 の"), ["木", "の"]);
        assert_eq!(query_words("様々な"), ["様々", "々な"]);
        // Where the script changes, a compound ends: the Latin one is whole too.
        assert_eq!(
            query_words("Rustのコード OpenTelemetryコレクター"),
            [
                "rust",
                "のコ",
                "コー",
                "ード",
                "opentelemetry",
                "open",
                "telemetry",
                "コレ",
                "レク",
                "クタ",
                "ター"
            ]
        );
        assert_eq!(query_words("한국어 문서"), ["한국", "국어", "문서"]);
        let positions = |t: Vec<(String, usize)>| t.into_iter().map(|x| x.1).collect::<Vec<_>>();
        let query = texts(
            &mut exact_with(CodeTokenizer { query: true }),
            "JSONでトレース span",
        );
        assert_eq!(positions(query), [0, 1, 2, 3, 4, 5]);
        // A document's single characters share the positions of the pairs they start,
        // so phrases line up either way ("JSONで", "でトレ").
        let doc = texts(&mut exact(), "JSONでトレース span");
        assert_eq!(positions(doc), [0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 6]);
    }

    #[test]
    fn positions_allow_phrases_over_parts() {
        let t = texts(&mut exact(), "the snake_case name");
        assert_eq!(
            t,
            [
                ("the".into(), 0),
                ("snake_case".into(), 1),
                ("snake".into(), 1),
                ("case".into(), 2),
                ("name".into(), 3)
            ]
        );
    }

    #[test]
    fn stemming() {
        let t: Vec<String> = texts(&mut stemmed(), "Running indexes")
            .into_iter()
            .map(|x| x.0)
            .collect();
        assert_eq!(t, ["run", "index"]);
    }

    #[test]
    fn cached_stemming_is_tantivy_stemming() {
        let mut reference = TextAnalyzer::builder(CodeTokenizer::default())
            .filter(RemoveLongFilter::limit(MAX_TOKEN))
            .filter(LowerCaser)
            .filter(tantivy::tokenizer::Stemmer::default())
            .build();
        // More distinct words than the cache holds, so it is emptied along the way,
        // and every word twice, so the second is a lookup.
        let suffixes = ["", "s", "ing", "ed", "ies", "ational", "ness", "ly"];
        let mut text = String::from("Running indexes snake_case HTTPServer Ünïcödé CAFÉS ");
        for n in 0..MAX_STEMS {
            let root: String = format!("{n:x}")
                .bytes()
                .map(|b| char::from(b'a' + b % 26))
                .collect();
            let word = format!("{root}{} ", suffixes[n % suffixes.len()]);
            text.push_str(&word);
            text.push_str(&word);
        }
        let mut cached = stemmed();
        for _ in 0..2 {
            assert_eq!(texts(&mut cached, &text), texts(&mut reference, &text));
        }
    }

    #[test]
    fn for_each_exact_is_the_exact_analyzer() {
        for s in [
            "Reference borrows: std::borrow::Borrow, the BorrowChecker and --borrow-mode.",
            "naïve ÜBER Straße ΣΊΣΥΦΟΣ 日本語 a.b end. __init__ -v",
            "分散トレースとメトリクス Rustのコード 木 한국어 様々な OpenTelemetryコレクター -日本",
            &"y".repeat(79),
            &"z".repeat(80),
            "",
            // One plain word, alone (the fast path) or not.
            "Errors.",
            "handling:",
            "word-",
            "x9",
            "2024",
            "HTTP",
            "camelCase",
            "...",
            "-v",
            "a.b.",
            &"Q".repeat(80),
        ] {
            let mut want = Vec::new();
            let mut a = exact();
            let mut stream = a.token_stream(s);
            while stream.advance() {
                let t = stream.token();
                want.push((t.offset_from, t.offset_to, t.text.clone()));
            }
            let mut got = Vec::new();
            for_each_exact(s, |from, to, text| got.push((from, to, text.to_owned())));
            assert_eq!(got, want, "{s:?}");
        }
    }

    #[test]
    fn never_panics_on_odd_text() {
        for s in [
            "",
            "-",
            "--",
            "a-",
            "-é",
            "é::",
            "::a",
            "a::",
            "a..b",
            "\u{0}\u{ffff}",
            "--é-ü",
        ] {
            let _ = words(s);
        }
        let long = "x".repeat(200);
        assert!(words(&long).is_empty());
    }
}
