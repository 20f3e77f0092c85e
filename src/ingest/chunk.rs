//! Section chunker: turns one documentation file's text into a title and a
//! list of section-sized [`Chunk`]s for the BM25 index.
//!
//! Owns: front-matter and title extraction, heading detection for Markdown,
//! reStructuredText and AsciiDoc (plain text has none), the heading trail of
//! each section, and splitting long sections into overlapping pieces with
//! exact 1-based line ranges, so a search hit can point back at source lines.
//!
//! Must not: do I/O, know about tantivy or the index schema, or log. Callers
//! read the file, pick a [`Format`] (usually [`Format::from_path`]) and pass
//! the text in; the result is plain data.
//!
//! Heading detection (the private `headings` module, `chunk/headings.rs`) is a small line
//! scanner per format, not a full parser: it knows just enough block
//! structure (code fences, literal blocks, delimited blocks) not to mistake
//! code for headings. Everything here never panics, and runs in time linear
//! in the input.

use std::path::Path;

pub mod anchor;
mod headings;

use anchor::Anchors;
use headings::{Scan, scan};

/// Markup language of a source file; decides how headings are recognised.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Format {
    Markdown,
    Rst,
    AsciiDoc,
    Text,
}

impl ChunkOptions {
    /// What decides a file's chunks besides its text: the chunker's version and
    /// these options. A file indexed under another is chunked again.
    pub fn key(&self) -> String {
        format!(
            "v{CHUNKER_VERSION}/{}/{}",
            self.chunk_size, self.chunk_overlap
        )
    }
}

impl Format {
    /// Picks the format from the file extension (case-insensitive); unknown
    /// or missing extensions are plain text.
    pub fn from_path(path: &Path) -> Format {
        let ext = path.extension().and_then(|e| e.to_str());
        match ext.map(str::to_ascii_lowercase).as_deref() {
            Some("md" | "markdown" | "mdx") => Format::Markdown,
            Some("rst" | "rest") => Format::Rst,
            Some("adoc" | "asciidoc" | "asc") => Format::AsciiDoc,
            _ => Format::Text,
        }
    }
}

/// The version of what [`chunk`] makes of a text: bumped whenever a change here
/// changes the chunks of some file, so that indexed files are chunked again.
const CHUNKER_VERSION: u32 = 4;

/// Piece sizes, in words (whitespace-separated tokens).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChunkOptions {
    /// Sections longer than this are split; 0 is treated as 1.
    pub chunk_size: usize,
    /// Words repeated at the start of the next piece; clamped to
    /// `chunk_size - 1` so every piece adds at least one new word. Output
    /// grows by about `chunk_size / (chunk_size - chunk_overlap)`.
    pub chunk_overlap: usize,
}

/// One searchable unit: a section, or a piece of a long section.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Chunk {
    /// Heading trail, outermost first, including this section's own heading;
    /// empty before the first heading.
    pub headings: Vec<String>,
    /// The section's anchor, unique in the file (see [`anchor`]); the pieces of a
    /// split section share it.
    pub anchor: String,
    /// 1-based, inclusive; the (first) heading line for a section's first piece.
    pub line_start: usize,
    /// 1-based, inclusive.
    pub line_end: usize,
    /// The section body without its heading lines, trimmed of surrounding
    /// blank lines; lines are joined with `\n`.
    pub text: String,
}

/// A chunked file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Document {
    pub title: String,
    pub chunks: Vec<Chunk>,
}

/// Chunks `text`. The title comes from front matter, else the first level-1
/// heading, else `fallback_title` (the caller passes the file stem).
pub fn chunk(text: &str, format: Format, fallback_title: &str, opts: &ChunkOptions) -> Document {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let lines = split_lines(text);
    let (body_start, front_title) = front_matter(&lines, format);
    let scan = scan(format, &lines, body_start);
    let title = front_title
        .or_else(|| {
            let h1 = scan.headings.iter().find(|h| h.level == 1);
            h1.map(|h| h.text.clone()).filter(|t| !t.is_empty())
        })
        .unwrap_or_else(|| fallback_title.to_string());
    let mut chunks = build_chunks(&lines, body_start, &scan, opts);
    if chunks.is_empty() && body_start > 0 {
        // Nothing but front matter: it is the one section, so that the file can
        // still be found (by its title, its description...).
        let mut sections = Sections::new(&lines, &scan, opts);
        sections.push(&[], anchor::TOP, None, 1, body_start - 1);
        chunks = sections.out;
    }
    Document { title, chunks }
}

/// Splits on `\n`, `\r\n` and a lone `\r`; a final terminator does not start
/// an extra empty line. Line `i` here is line `i + 1` for the caller. Whatever
/// shows a file's lines by number splits them with this, so that they are the
/// lines of a hit's line range.
pub fn split_lines(text: &str) -> Vec<&str> {
    let mut lines = Vec::new();
    let bytes = text.as_bytes();
    let (mut start, mut i) = (0, 0);
    while i < bytes.len() {
        let width = match (bytes[i], bytes.get(i + 1)) {
            (b'\r', Some(b'\n')) => 2,
            (b'\r' | b'\n', _) => 1,
            _ => 0,
        };
        if width == 0 {
            i += 1;
            continue;
        }
        // Terminators are ASCII, so these offsets are char boundaries.
        lines.push(text.get(start..i).unwrap_or_default());
        i += width;
        start = i;
    }
    if start < bytes.len() {
        lines.push(text.get(start..).unwrap_or_default());
    }
    lines
}

fn is_blank(line: &str) -> bool {
    line.trim().is_empty()
}

/// Leading whitespace width in columns, tabs stopping at multiples of 4
/// (CommonMark's rule, which is what "indented 4+ spaces" means with tabs).
fn indent_width(line: &str) -> usize {
    let mut width = 0;
    for c in line.chars() {
        match c {
            ' ' => width += 1,
            '\t' => width += 4 - width % 4,
            _ => break,
        }
    }
    width
}

// ---------------------------------------------------------------------------
// Front matter

/// Returns the index of the first body line and the front-matter title.
/// Front matter (Markdown and AsciiDoc only: in reStructuredText `---` lines
/// are a title's adornment) is YAML between `---` lines (closed by `---` or
/// `...`) or TOML between `+++` lines, at the very first line, and starts with
/// a key (`key: value`, `key = value`, `[table]`) after any blank lines and
/// `#` comments, or is empty. Unterminated, or holding anything else (text
/// between two rules), it is not front matter at all and the lines stay body
/// text.
fn front_matter(lines: &[&str], format: Format) -> (usize, Option<String>) {
    if !matches!(format, Format::Markdown | Format::AsciiDoc) {
        return (0, None);
    }
    let (fence, sep) = match lines.first().map(|l| l.trim_end()) {
        Some("---") => ("---", ':'),
        Some("+++") => ("+++", '='),
        _ => return (0, None),
    };
    let closes = |l: &&str| {
        let t = l.trim_end();
        t == fence || (fence == "---" && t == "...")
    };
    let Some(close) = lines.iter().skip(1).position(closes).map(|p| p + 1) else {
        return (0, None);
    };
    let inner = lines.get(1..close).unwrap_or_default();
    // Blank lines and comments may come first; then a key, or nothing at all.
    let significant = inner
        .iter()
        .find(|l| !is_blank(l) && !l.trim_start().starts_with('#'));
    let empty = inner.iter().all(|l| is_blank(l));
    if !empty && !significant.is_some_and(|l| starts_with_key(l, sep)) {
        return (0, None);
    }
    let title = inner.iter().find_map(|l| front_matter_title(l, sep));
    (close + 1, title)
}

/// An unindented `key: value` (YAML, `sep` ':') or `key = value` or `[table]`
/// (TOML, `sep` '='), the key plain or quoted.
fn starts_with_key(line: &str, sep: char) -> bool {
    let line = line.trim_end();
    if sep == '=' && line.starts_with('[') && line.ends_with(']') {
        return true;
    }
    let Some((key, value)) = line.split_once(sep) else {
        return false;
    };
    // YAML wants a space after the colon (`http://x` is no key); TOML allows
    // spaces before the `=`.
    let spaced = sep != ':' || value.is_empty() || value.starts_with([' ', '\t']);
    let key = if sep == '=' { key.trim_end() } else { key };
    let key = key.trim_matches(|c| c == '"' || c == '\'');
    spaced
        && !key.is_empty()
        && key
            .chars()
            .all(|c| c.is_alphanumeric() || matches!(c, '_' | '-' | '.'))
}

/// `title: X` (YAML) or `title = "X"` (TOML) on an unindented (top-level)
/// line, with quotes removed.
fn front_matter_title(line: &str, sep: char) -> Option<String> {
    let value = line.strip_prefix("title")?.trim_start().strip_prefix(sep)?;
    let value = value.trim();
    let title = if let Some(inner) = value.strip_prefix('"') {
        let end = inner.rfind('"').unwrap_or(inner.len());
        inner.get(..end).unwrap_or(inner).replace("\\\"", "\"")
    } else if let Some(inner) = value.strip_prefix('\'') {
        let end = inner.rfind('\'').unwrap_or(inner.len());
        inner.get(..end).unwrap_or(inner).replace("''", "'")
    } else if value.starts_with(['|', '>']) {
        // A YAML block scalar; its text is on the following lines. Rare for
        // titles, so fall back to the heading instead of parsing YAML.
        return None;
    } else {
        // Unquoted YAML: ` #` starts a comment.
        value.split(" #").next().unwrap_or(value).trim().to_string()
    };
    let title = title.trim().to_string();
    (!title.is_empty()).then_some(title)
}

// ---------------------------------------------------------------------------
// Sections and splitting

fn build_chunks(lines: &[&str], body_start: usize, scan: &Scan, opts: &ChunkOptions) -> Vec<Chunk> {
    let mut sections = Sections::new(lines, scan, opts);
    let preamble_end = scan.headings.first().map_or(lines.len(), |h| h.first);
    sections.push(&[], anchor::TOP, None, body_start, preamble_end);
    let mut anchors = Anchors::new();
    let mut levels: Vec<usize> = Vec::new();
    let mut trail: Vec<String> = Vec::new();
    for (k, h) in scan.headings.iter().enumerate() {
        // A heading closes every open section at its level or deeper;
        // skipped levels simply leave no entry.
        while levels.last().is_some_and(|&l| l >= h.level) {
            levels.pop();
            trail.pop();
        }
        levels.push(h.level);
        trail.push(h.text.clone());
        let end = scan
            .headings
            .get(k + 1)
            .map_or(lines.len(), |next| next.first);
        // A heading cut to size keeps its lines in the body, so that none of its
        // words is lost to search.
        let body = if h.cut { h.first } else { h.last + 1 };
        let anchor = anchors.next(&h.text);
        sections.push(&trail, &anchor, Some((h.first, h.last)), body, end);
    }
    sections.out
}

/// A word's position: line index and byte range within the line.
#[derive(Clone, Copy)]
struct Word {
    line: usize,
    start: usize,
    end: usize,
}

/// What lies between two consecutive words; better places to cut rank higher.
#[derive(Clone, Copy)]
enum Boundary {
    /// Same line.
    Word,
    /// Next line, both lines inside the same code block.
    BlockLine,
    /// Next line, no blank line between.
    Line,
    /// Blank line(s) between, outside code blocks.
    Paragraph,
}

/// Cut preference. A cut that leaves the piece at least half full ("full")
/// beats one that does not, except that any cut outside a code block beats
/// one inside: keeping code whole matters more than even piece sizes.
fn rank(boundary: Boundary, full: bool) -> u8 {
    match (boundary, full) {
        (Boundary::Paragraph, true) => 6,
        (Boundary::Line, true) => 5,
        (Boundary::Paragraph, false) => 4,
        (Boundary::Line, false) => 3,
        (Boundary::BlockLine, true) => 2,
        (Boundary::BlockLine, false) => 1,
        (Boundary::Word, _) => 0,
    }
}

struct Sections<'a> {
    lines: &'a [&'a str],
    block: &'a [u32],
    size: usize,
    overlap: usize,
    out: Vec<Chunk>,
}

impl<'a> Sections<'a> {
    fn new(lines: &'a [&'a str], scan: &'a Scan, opts: &ChunkOptions) -> Self {
        let size = opts.chunk_size.max(1);
        Sections {
            lines,
            block: &scan.block,
            size,
            overlap: opts.chunk_overlap.min(size - 1),
            out: Vec::new(),
        }
    }

    /// Emits the chunk(s) for body lines `from..to` under `headings`;
    /// `heading` is the heading's own line range, if any.
    fn push(
        &mut self,
        headings: &[String],
        anchor: &str,
        heading: Option<(usize, usize)>,
        from: usize,
        to: usize,
    ) {
        let body = self.lines.get(from..to).unwrap_or_default();
        let first = body.iter().position(|l| !is_blank(l));
        let last = body.iter().rposition(|l| !is_blank(l));
        let (Some(first), Some(last)) = (first, last) else {
            // Keep an empty section: its heading alone is still searchable.
            if let Some((h_first, h_last)) = heading {
                self.emit(headings, anchor, h_first, h_last, String::new());
            }
            return;
        };
        let (first, last) = (from + first, from + last);
        let start_line = heading.map_or(first, |(h_first, _)| h_first);
        let body = self.lines.get(first..=last).unwrap_or_default();
        let word_count: usize = body.iter().map(|l| l.split_whitespace().count()).sum();
        if word_count <= self.size {
            self.emit(headings, anchor, start_line, last, body.join("\n"));
            return;
        }
        let words = words_in(self.lines, first, last);
        for (k, (s, c)) in self.split(&words).into_iter().enumerate() {
            let line_start = if k == 0 { start_line } else { words[s].line };
            let text = self.piece_text(&words, s, c);
            self.emit(headings, anchor, line_start, words[c - 1].line, text);
        }
    }

    fn emit(&mut self, headings: &[String], anchor: &str, first: usize, last: usize, text: String) {
        self.out.push(Chunk {
            headings: headings.to_vec(),
            anchor: anchor.to_owned(),
            line_start: first + 1,
            line_end: last + 1,
            text,
        });
    }

    /// Word ranges `[s, c)` of the pieces of an over-long body. Each piece
    /// after the first starts with the last ~`overlap` words of the one
    /// before, and always adds at least one new word, so this terminates.
    fn split(&self, words: &[Word]) -> Vec<(usize, usize)> {
        let n = words.len();
        let mut pieces = Vec::new();
        let (mut s, mut overlap) = (0, 0);
        while n - s > self.size {
            let c = self.pick_cut(words, s, overlap);
            pieces.push((s, c));
            let next = self.overlap_start(words, s, c);
            overlap = c - next;
            s = next;
        }
        pieces.push((s, n));
        pieces
    }

    /// Best end `c` for a piece starting at `s` whose first `overlap` words
    /// repeat the previous piece: the latest cut of the highest rank that
    /// adds at least one new word and stays within `size`. Needs
    /// `words.len() - s > size`, so `words[c]` exists.
    fn pick_cut(&self, words: &[Word], s: usize, overlap: usize) -> usize {
        let hi = s + self.size;
        let lo = (s + overlap + 1).min(hi);
        let full_from = s + overlap + (self.size.saturating_sub(overlap) / 2).max(1);
        let mut best = (0, hi);
        for c in (lo..=hi).rev() {
            let r = rank(self.boundary(words, c), c >= full_from);
            if r > best.0 {
                best = (r, c);
                if r == 6 {
                    break;
                }
            }
        }
        best.1
    }

    fn boundary(&self, words: &[Word], c: usize) -> Boundary {
        let (p, q) = (words[c - 1].line, words[c].line);
        let block = |l: usize| self.block.get(l).copied().unwrap_or(0);
        if p == q {
            Boundary::Word
        } else if block(p) != 0 && block(p) == block(q) {
            Boundary::BlockLine
        } else if q > p + 1 {
            // Lines between two consecutive words hold no words: blank.
            Boundary::Paragraph
        } else {
            Boundary::Line
        }
    }

    /// Where the piece after cut `c` starts: `overlap` words back, moved to
    /// the start of that line when it costs at most half as many extra words
    /// again (whole lines read better) and keeps the repeat within half a
    /// piece; never at or before `s`.
    fn overlap_start(&self, words: &[Word], s: usize, c: usize) -> usize {
        let want = c.saturating_sub(self.overlap).max(s + 1);
        let Some(line) = words.get(want).map(|w| w.line) else {
            return want;
        };
        let extra = (self.overlap / 2).min((self.size / 2).saturating_sub(c - want));
        let mut start = want;
        while start > s + 1 && want - start < extra && words[start - 1].line == line {
            start -= 1;
        }
        if words[start - 1].line != line {
            start
        } else {
            want
        }
    }

    /// Text of words `[s, c)`: whole lines (with their indentation) except
    /// where the piece starts or ends mid-line.
    fn piece_text(&self, words: &[Word], s: usize, c: usize) -> String {
        let (first, last) = (words[s], words[c - 1]);
        let mid_start = s > 0 && words[s - 1].line == first.line;
        let mid_end = words.get(c).is_some_and(|w| w.line == last.line);
        let mut text = String::new();
        for l in first.line..=last.line {
            let line = self.lines.get(l).copied().unwrap_or_default();
            let from = if l == first.line && mid_start {
                first.start
            } else {
                0
            };
            let to = if l == last.line && mid_end {
                last.end
            } else {
                line.len()
            };
            if l > first.line {
                text.push('\n');
            }
            text.push_str(line.get(from..to).unwrap_or_default());
        }
        text
    }
}

/// Positions of the whitespace-separated words on lines `a..=b`, matching
/// `str::split_whitespace`.
fn words_in(lines: &[&str], a: usize, b: usize) -> Vec<Word> {
    let mut words = Vec::new();
    for (line_no, line) in lines.iter().enumerate().take(b + 1).skip(a) {
        let mut start = None;
        for (idx, ch) in line.char_indices() {
            match (ch.is_whitespace(), start) {
                (true, Some(s)) => {
                    words.push(Word {
                        line: line_no,
                        start: s,
                        end: idx,
                    });
                    start = None;
                }
                (false, None) => start = Some(idx),
                _ => {}
            }
        }
        if let Some(s) = start {
            words.push(Word {
                line: line_no,
                start: s,
                end: line.len(),
            });
        }
    }
    words
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    const WHOLE: ChunkOptions = ChunkOptions {
        chunk_size: 10_000,
        chunk_overlap: 0,
    };

    fn run(text: &str, format: Format) -> Document {
        chunk(text, format, "stem", &WHOLE)
    }

    fn trails(doc: &Document) -> Vec<String> {
        doc.chunks.iter().map(|c| c.headings.join(" > ")).collect()
    }

    fn texts(doc: &Document) -> Vec<&str> {
        doc.chunks.iter().map(|c| c.text.as_str()).collect()
    }

    fn ranges(doc: &Document) -> Vec<(usize, usize)> {
        doc.chunks
            .iter()
            .map(|c| (c.line_start, c.line_end))
            .collect()
    }

    #[test]
    fn format_from_extension() {
        let f = |p: &str| Format::from_path(Path::new(p));
        assert_eq!(f("docs/README.md"), Format::Markdown);
        assert_eq!(f("x.MDX"), Format::Markdown);
        assert_eq!(f("x.markdown"), Format::Markdown);
        assert_eq!(f("x.rst"), Format::Rst);
        assert_eq!(f("x.rest"), Format::Rst);
        assert_eq!(f("x.adoc"), Format::AsciiDoc);
        assert_eq!(f("x.asciidoc"), Format::AsciiDoc);
        assert_eq!(f("x.asc"), Format::AsciiDoc);
        assert_eq!(f("x.txt"), Format::Text);
        assert_eq!(f("Makefile"), Format::Text);
        assert_eq!(f(".md"), Format::Text);
    }

    #[test]
    fn line_splitting_handles_every_terminator() {
        assert!(split_lines("").is_empty());
        assert_eq!(split_lines("a"), ["a"]);
        assert_eq!(split_lines("a\n"), ["a"]);
        assert_eq!(split_lines("a\n\n"), ["a", ""]);
        assert_eq!(split_lines("a\r\n\r\nb"), ["a", "", "b"]);
        assert_eq!(split_lines("a\rb\r"), ["a", "b"]);
        assert_eq!(split_lines("\r"), [""]);
    }

    #[test]
    fn markdown_fences_hide_headings() {
        let text = "# Guide\n\n```sh\n# not a heading\n```\n\n## Install\n\n~~~~\n# inside\n~~~\n\
                    ## still inside\n~~~~~\n\n### Deep\n````\n# unterminated fence runs to the end\n";
        let doc = run(text, Format::Markdown);
        assert_eq!(doc.title, "Guide");
        assert_eq!(
            trails(&doc),
            ["Guide", "Guide > Install", "Guide > Install > Deep"]
        );
        assert_eq!(doc.chunks[0].text, "```sh\n# not a heading\n```");
        assert!(doc.chunks[1].text.contains("## still inside"));
        assert_eq!(ranges(&doc), [(1, 5), (7, 13), (15, 17)]);
    }

    #[test]
    fn backtick_with_backtick_info_is_not_a_fence() {
        let doc = run("``` a`b\n# Real\n", Format::Markdown);
        assert_eq!(trails(&doc), ["", "Real"]);
    }

    #[test]
    fn markdown_setext_thematic_break_and_front_matter() {
        let text = "---\ntitle: \"Front Title\"\ntags: [a]\n---\nIntro para\n\n---\n\n\
                    Setext One\n==========\nbody\n\nSetext Two\ncontinued\n---\n\n- item\n---\ntail\n";
        let doc = run(text, Format::Markdown);
        assert_eq!(doc.title, "Front Title");
        assert_eq!(
            trails(&doc),
            ["", "Setext One", "Setext One > Setext Two continued"]
        );
        assert_eq!(
            texts(&doc),
            ["Intro para\n\n---", "body", "- item\n---\ntail"]
        );
        assert_eq!(ranges(&doc), [(5, 7), (9, 11), (13, 19)]);
    }

    #[test]
    fn markdown_atx_details() {
        let text = "  # Spaced #\n#hashtag\n    # continuation\n\n    # indented code\n\
                    ## Closing ##\n### With id {#custom-id}\n#### Not closing#\n#\n####### seven\n";
        let doc = run(text, Format::Markdown);
        assert_eq!(doc.title, "Spaced");
        let names: Vec<&str> = doc
            .chunks
            .iter()
            .filter_map(|c| c.headings.last())
            .map(String::as_str)
            .collect();
        assert_eq!(names, ["Spaced", "Closing", "With id", "Not closing#", ""]);
        assert_eq!(
            doc.chunks[0].text,
            "#hashtag\n    # continuation\n\n    # indented code"
        );
        assert_eq!(doc.chunks[4].text, "####### seven");
    }

    #[test]
    fn markdown_containers_and_comments_are_not_headings() {
        let doc = run(
            "- item\n---\n> quote\n===\n<!--\n# hidden\n-->\n# Shown\n",
            Format::Markdown,
        );
        assert_eq!(trails(&doc), ["", "Shown"]);
        assert_eq!(
            doc.chunks[0].text,
            "- item\n---\n> quote\n===\n<!--\n# hidden\n-->"
        );
        assert_eq!(doc.chunks[1].text, "");
    }

    /// Raw HTML elements hold no Markdown: a `#` line in a `<pre>`, `<script>`, `<style>`
    /// or `<textarea>` is text, up to the line that closes the element (any case).
    #[test]
    fn raw_html_blocks_are_not_headings() {
        let doc = run(
            "<pre>\n# not a heading\n</pre>\n# One\n<SCRIPT type=x>\n# no\n</Script>\n\
             # Two\n<style># same line</style>\n# Three\n<prefix>\n# Four\n",
            Format::Markdown,
        );
        assert_eq!(trails(&doc), ["", "One", "Two", "Three", "Four"]);
        assert_eq!(doc.chunks[0].text, "<pre>\n# not a heading\n</pre>");
        assert_eq!(doc.chunks[1].text, "<SCRIPT type=x>\n# no\n</Script>");
        // Unclosed, it runs to the end, as in CommonMark.
        let doc = run("# A\n<textarea>\n# b\n", Format::Markdown);
        assert_eq!(trails(&doc), ["A"]);
    }

    #[test]
    fn skipped_levels_and_empty_sections() {
        let text = "# A\n### C\ntext c\n## B\n\n\n# D\n";
        let doc = run(text, Format::Markdown);
        assert_eq!(trails(&doc), ["A", "A > C", "A > B", "D"]);
        assert_eq!(texts(&doc), ["", "text c", "", ""]);
        assert_eq!(ranges(&doc), [(1, 1), (2, 3), (4, 4), (7, 7)]);
    }

    #[test]
    fn setext_empty_section_range_includes_underline() {
        let doc = run("Title\n=====\n\nSub\n---\n", Format::Markdown);
        assert_eq!(ranges(&doc), [(1, 2), (4, 5)]);
    }

    #[test]
    fn crlf_lone_cr_and_bom() {
        let text = "\u{feff}# Title\r\n\r\nline one\r\nline two\r\n## Sub\rlone cr body\r";
        let doc = run(text, Format::Markdown);
        assert_eq!(doc.title, "Title");
        assert_eq!(texts(&doc), ["line one\nline two", "lone cr body"]);
        assert_eq!(ranges(&doc), [(1, 4), (5, 6)]);
        let fm = run("\u{feff}---\r\ntitle: CR\r\n---\r\nx\r\n", Format::Markdown);
        assert_eq!(fm.title, "CR");
        assert_eq!(ranges(&fm), [(4, 4)]);
    }

    #[test]
    fn titles_and_fallbacks() {
        let title = |t: &str| run(t, Format::Markdown).title;
        assert_eq!(
            title("+++\ntitle = 'Hugo Page'\ndraft = true\n+++\n# Heading\n"),
            "Hugo Page"
        );
        assert_eq!(title("---\ntitle: Plain # comment\n...\n# H\n"), "Plain");
        assert_eq!(title("---\ntitle: 'It''s'\n---\n"), "It's");
        assert_eq!(
            title("---\nlayout: x\n---\n# From Heading\n"),
            "From Heading"
        );
        assert_eq!(title("---\ntitle: >\n  folded\n---\n# H\n"), "H");
        assert_eq!(title("no headings here\n"), "stem");
        assert_eq!(title("## Only h2\n"), "stem");
        assert_eq!(title("## First\n# Second\n"), "Second");
        assert_eq!(title(""), "stem");
        // Unterminated front matter is body text, not front matter.
        let doc = run("---\ntitle: Nope\n# Real\n", Format::Markdown);
        assert_eq!(doc.title, "Real");
        assert_eq!(texts(&doc), ["---\ntitle: Nope", ""]);
    }

    #[test]
    fn only_what_looks_like_front_matter_is_front_matter() {
        // Nothing but front matter: it is the one section, so the file is found.
        let doc = run(
            "---\ntitle: Only Front\ndescription: described\n---\n\n",
            Format::Markdown,
        );
        assert_eq!(doc.title, "Only Front");
        assert_eq!(texts(&doc), ["title: Only Front\ndescription: described"]);
        assert_eq!(ranges(&doc), [(2, 3)]);
        assert!(run("---\n---\n", Format::Markdown).chunks.is_empty());
        // Comments and blank lines may open it (Jekyll).
        let doc = run(
            "---\n# comment\n\nlayout: post\ntitle: Foo\n---\nbody\n",
            Format::Markdown,
        );
        assert_eq!(doc.title, "Foo");
        assert_eq!(texts(&doc), ["body"]);
        // Text between two rules is text: a heading and a paragraph.
        let doc = run("---\n\n# Welcome\n\nswallowed\n\n---\n", Format::Markdown);
        assert_eq!(doc.title, "Welcome");
        assert_eq!(texts(&doc), ["---", "swallowed\n\n---"]);
        let doc = run("---\nhttp://example.com\n\n---\nbody\n", Format::Markdown);
        assert_eq!(texts(&doc), ["---\nhttp://example.com\n\n---\nbody"]);
        // TOML keys and tables.
        for toml in [
            "+++\n[params]\nx = 1\n+++\nbody\n",
            "+++\ndate=2024\n+++\nbody\n",
        ] {
            assert_eq!(texts(&run(toml, Format::Markdown)), ["body"], "{toml:?}");
        }
        // In reStructuredText and plain text, `---` lines are never front matter:
        // this is an overlined title.
        let doc = run("---\nAPI\n---\n\nbody\n", Format::Rst);
        assert_eq!(doc.title, "API");
        assert_eq!(texts(&doc), ["body"]);
        let doc = run("---\ntitle: notes\n---\nmore\n", Format::Text);
        assert_eq!(texts(&doc), ["---\ntitle: notes\n---\nmore"]);
        // AsciiDoc pages (Hugo's) may carry front matter.
        let doc = run("---\ntitle: Adoc\n---\n== Part\ntext\n", Format::AsciiDoc);
        assert_eq!(doc.title, "Adoc");
        assert_eq!(trails(&doc), ["Part"]);
    }

    #[test]
    fn empty_and_blank_inputs() {
        for text in ["", " ", "\n\n\t\n", "\u{feff}", "\r\r\n"] {
            for format in [
                Format::Markdown,
                Format::Rst,
                Format::AsciiDoc,
                Format::Text,
            ] {
                let doc = run(text, format);
                assert_eq!(doc.title, "stem");
                assert!(doc.chunks.is_empty(), "{text:?} {format:?}");
            }
        }
    }

    #[test]
    fn giant_unicode_heading_is_capped_on_a_char_boundary() {
        let text = format!("# {}\nbody\n", "é".repeat(5000));
        let doc = run(&text, Format::Markdown);
        assert_eq!(doc.title.chars().count(), headings::MAX_HEADING_CHARS);
        // The cut heading's line stays in the body: none of its words is lost.
        assert_eq!(doc.chunks[0].text, format!("# {}\nbody", "é".repeat(5000)));
        assert_eq!(ranges(&doc), [(1, 2)]);
        // A long paragraph over a `---` line is a Setext heading, also kept whole.
        let words: Vec<String> = (0..80).map(|k| format!("w{k}")).collect();
        let text = format!("# Doc\n\n{} last\n---\n\nbody\n", words.join(" "));
        let doc = run(&text, Format::Markdown);
        assert_eq!(trails(&doc).len(), 2);
        assert!(doc.chunks[1].text.starts_with("w0 w1"), "{doc:?}");
        assert!(doc.chunks[1].text.contains("w79 last\n---\n\nbody"));
    }

    #[test]
    fn rst_adornment_shorter_than_its_title() {
        // docutils: from 4 characters on, a title with a warning; shorter, text.
        let doc = run("Installation Guide\n=====\n\nbody\n", Format::Rst);
        assert_eq!(doc.title, "Installation Guide");
        let doc = run("~~~~\nLonger overline\n~~~~\n\nbody\n", Format::Rst);
        assert_eq!(doc.title, "Longer overline");
        let doc = run("Installation Guide\n===\n\nbody\n", Format::Rst);
        assert_eq!(doc.title, "stem");
    }

    const RST: &str = "=======\n Title\n=======\n\nIntro.\n\nSection\n=======\n\nSub\n---\n\nText.\n\n\
                       ----\n\nMore text.\n\nSection 2\n=========\n\nExample::\n\n    Not a title\n    ===========\n\n\
                       .. code-block:: python\n\n    Also not\n    --------\n\nShort title\n---\n";

    #[test]
    fn rst_levels_by_first_seen_style() {
        let doc = run(RST, Format::Rst);
        assert_eq!(doc.title, "Title");
        assert_eq!(
            trails(&doc),
            [
                "Title",
                "Title > Section",
                "Title > Section > Sub",
                "Title > Section 2"
            ]
        );
        assert_eq!(ranges(&doc)[0], (1, 5));
        assert_eq!(doc.chunks[2].text, "Text.\n\n----\n\nMore text.");
        assert!(
            doc.chunks[3]
                .text
                .contains("    Not a title\n    ===========")
        );
        assert!(doc.chunks[3].text.contains("    Also not\n    --------"));
        assert!(doc.chunks[3].text.ends_with("Short title\n---"));
    }

    #[test]
    fn rst_style_order_is_per_document() {
        let doc = run(
            "First\n-----\n\nSecond\n======\n\nThird\n-----\n",
            Format::Rst,
        );
        assert_eq!(trails(&doc), ["First", "First > Second", "Third"]);
        assert_eq!(doc.title, "First");
    }

    #[test]
    fn rst_title_must_start_a_paragraph_and_transitions_are_not_titles() {
        let doc = run("para line\nText\n====\n\n=====\n\nafter\n", Format::Rst);
        assert!(doc.chunks.iter().all(|c| c.headings.is_empty()));
        assert_eq!(doc.title, "stem");
        let doc = run("=====\nover\n-----\n", Format::Rst);
        assert_eq!(trails(&doc), [""], "mismatched overline and underline");
    }

    const ADOC: &str = "= Doc Title\n:toc:\n\nPreamble text.\n\n== Section A\n\n----\n== not a title\n----\n\n\
                        === Sub A1\n\n====\n== hidden in example\n====\n\n////\n== hidden in comment\n////\n\n\
                        # Markdown Style\ntext\n== mid paragraph stays text\n\n[[b]]\n== Section B ==\n";

    #[test]
    fn asciidoc_titles_and_delimited_blocks() {
        let doc = run(ADOC, Format::AsciiDoc);
        assert_eq!(doc.title, "Doc Title");
        assert_eq!(
            trails(&doc),
            [
                "Doc Title",
                "Doc Title > Section A",
                "Doc Title > Section A > Sub A1",
                "Markdown Style",
                "Markdown Style > Section B",
            ]
        );
        assert_eq!(doc.chunks[0].text, ":toc:\n\nPreamble text.");
        assert_eq!(doc.chunks[1].text, "----\n== not a title\n----");
        assert!(
            doc.chunks[3]
                .text
                .ends_with("== mid paragraph stays text\n\n[[b]]")
        );
        assert_eq!(ranges(&doc)[4], (27, 27));
    }

    /// Two-line titles (the underline as long as the title, give or take one), as in
    /// git's manual pages: an underline no longer opens a delimited block that would
    /// hide the titles after it.
    #[test]
    fn asciidoc_two_line_titles() {
        let text = "git-add(1)\n==========\n\nNAME\n----\ngit-add - Add files\n\n\
                    OPTIONS\n-------\n-n::\n\tDry run.\n\nDetails\n~~~~~~\ntext\n\n\
                    not a title, too short\n-----\ncode\n-----\n\n.Block title\n------------\n";
        let doc = run(text, Format::AsciiDoc);
        assert_eq!(doc.title, "git-add(1)");
        assert_eq!(
            trails(&doc),
            [
                "git-add(1)",
                "git-add(1) > NAME",
                "git-add(1) > OPTIONS",
                "git-add(1) > OPTIONS > Details",
            ]
        );
        assert_eq!(ranges(&doc)[..2], [(1, 2), (4, 6)]);
        assert!(
            doc.chunks[3]
                .text
                .ends_with("code\n-----\n\n.Block title\n------------")
        );
        // Inside a paragraph, a line and a rule are text.
        let doc = run("= T\n\nsome text\nSection\n-------\n", Format::AsciiDoc);
        assert_eq!(trails(&doc), ["T"]);
    }

    #[test]
    fn asciidoc_nested_and_fenced_blocks() {
        let text = "======\n====\n== inner\n====\n== still hidden\n======\n```ruby\n== code\n```\n\n== Shown\n";
        let doc = run(text, Format::AsciiDoc);
        assert_eq!(trails(&doc), ["", "Shown"]);
    }

    #[test]
    fn text_has_no_headings() {
        let doc = run("# Not a heading\n\npara\n", Format::Text);
        assert_eq!(doc.title, "stem");
        assert_eq!(trails(&doc), [""]);
        assert_eq!(ranges(&doc), [(1, 3)]);
    }

    fn anchors(doc: &Document) -> Vec<&str> {
        doc.chunks.iter().map(|c| c.anchor.as_str()).collect()
    }

    /// Every format: the slug of the section's own heading, repeats numbered in
    /// order, and `top` for the text before the first heading.
    #[test]
    fn anchors_are_unique_slugs_of_own_headings() {
        let md = "Intro.\n\n# Guide\n\n## Example\n\n### Example\n\n## Example\n\n## Top\n";
        let doc = run(md, Format::Markdown);
        assert_eq!(
            anchors(&doc),
            ["top", "guide", "example", "example-1", "example-2", "top-1"]
        );
        let rst = "Guide\n=====\n\nExample\n-------\n\nExample\n-------\n";
        assert_eq!(
            anchors(&run(rst, Format::Rst)),
            ["guide", "example", "example-1"]
        );
        let adoc = "= Guide\n\n== Set-up & Use\n\n== Set-up & Use\n";
        assert_eq!(
            anchors(&run(adoc, Format::AsciiDoc)),
            ["guide", "set-up--use", "set-up--use-1"]
        );
        assert_eq!(anchors(&run("# Not\n\ntext\n", Format::Text)), ["top"]);
        // `top` is taken even where no text precedes the first heading.
        assert_eq!(anchors(&run("# Top\n", Format::Markdown)), ["top-1"]);
        // A file of front matter alone is its `top` section.
        let front = "---\ntitle: T\n---\n";
        assert_eq!(anchors(&run(front, Format::Markdown)), ["top"]);
    }

    /// An anchor does not depend on where the section is or what is around it.
    #[test]
    fn anchors_survive_edits_elsewhere() {
        let before = run("# A\n\nx\n\n## B\n\ny\n", Format::Markdown);
        let after = run(
            "Intro.\n\n# A\n\nx\nmore\nlines\n\n## B\n\ny\n",
            Format::Markdown,
        );
        assert_eq!(before.chunks[1].anchor, "b");
        assert_eq!(after.chunks[2].anchor, "b");
        assert_ne!(before.chunks[1].line_start, after.chunks[2].line_start);
    }

    #[test]
    fn pieces_of_a_split_section_share_its_anchor() {
        let text = "lead in\n\n# H\np1a p1b p1c\n\np2a p2b p2c\n\np3a p3b p3c\n# H\nz\n";
        let doc = chunk(text, Format::Markdown, "s", &opts(3, 0));
        assert_eq!(anchors(&doc), ["top", "h", "h", "h", "h-1"]);
        let doc = chunk(&"w ".repeat(20), Format::Text, "s", &opts(4, 1));
        assert!(doc.chunks.len() > 1 && doc.chunks.iter().all(|c| c.anchor == "top"));
    }

    fn opts(chunk_size: usize, chunk_overlap: usize) -> ChunkOptions {
        ChunkOptions {
            chunk_size,
            chunk_overlap,
        }
    }

    #[test]
    fn long_section_splits_on_paragraphs() {
        let text = "# H\np1a p1b p1c\n\np2a p2b p2c\n\np3a p3b p3c\n";
        let doc = chunk(text, Format::Markdown, "s", &opts(6, 0));
        assert_eq!(texts(&doc), ["p1a p1b p1c\n\np2a p2b p2c", "p3a p3b p3c"]);
        assert_eq!(ranges(&doc), [(1, 4), (6, 6)]);
        assert!(doc.chunks.iter().all(|c| c.headings == ["H"]));
    }

    #[test]
    fn overlap_repeats_whole_lines() {
        let text = "# H\na1 a2\nb1 b2\nc1 c2\nd1 d2\n";
        let doc = chunk(text, Format::Markdown, "s", &opts(4, 2));
        assert_eq!(
            texts(&doc),
            ["a1 a2\nb1 b2", "b1 b2\nc1 c2", "c1 c2\nd1 d2"]
        );
        assert_eq!(ranges(&doc), [(1, 3), (3, 4), (4, 5)]);
    }

    #[test]
    fn overlong_line_splits_on_words() {
        let line: Vec<String> = (1..=10).map(|i| format!("w{i}")).collect();
        let doc = chunk(&line.join(" "), Format::Text, "s", &opts(4, 1));
        assert_eq!(texts(&doc), ["w1 w2 w3 w4", "w4 w5 w6 w7", "w7 w8 w9 w10"]);
        assert_eq!(ranges(&doc), [(1, 1), (1, 1), (1, 1)]);
    }

    #[test]
    fn code_fence_is_kept_whole_when_possible() {
        let text = "# H\nintro words here\n```\nc1 c2\nc3 c4\n\nc5 c6\n```\nafter words\n";
        let doc = chunk(text, Format::Markdown, "s", &opts(8, 0));
        assert_eq!(
            texts(&doc),
            [
                "intro words here",
                "```\nc1 c2\nc3 c4\n\nc5 c6\n```",
                "after words"
            ]
        );
        assert_eq!(ranges(&doc), [(1, 2), (3, 8), (9, 9)]);
    }

    #[test]
    fn degenerate_sizes_terminate() {
        let text: Vec<String> = (0..50).map(|i| format!("w{i}")).collect();
        let text = text.join("\n");
        for (size, overlap) in [(3, 100), (3, 3), (0, 0), (0, usize::MAX), (1, 1)] {
            let doc = chunk(&text, Format::Text, "s", &opts(size, overlap));
            assert!(
                doc.chunks.len() <= 50,
                "{size}/{overlap}: {}",
                doc.chunks.len()
            );
            for c in &doc.chunks {
                assert!(c.text.split_whitespace().count() <= size.max(1));
            }
        }
        let doc = chunk(&text, Format::Text, "s", &opts(usize::MAX, usize::MAX));
        assert_eq!(doc.chunks.len(), 1);
    }

    use crate::testing::Rng;

    #[rustfmt::skip]
    const FRAGMENTS: &[&str] = &[
        "", "", "", "   ", "\t", "# Title", "## Sub {#id}", "###### Deep ##", "#hashtag",
        "    # indented", "```", "```rust", "~~~", "````", "---", "===", "***", "- item", "> quote",
        "1. one", "+++", "title: Front", "title = \"T\"", "...", "<!--", "-->", "Title", "=====",
        "-----", "~~~~~", "Example::", ".. code-block:: python", "    code = 1", "= Doc",
        "== Section", "=== Sub ===", "----", "....", "====", "////", "|===", "[[anchor]]", ":toc:",
        "ünïcödé 日本語 テキスト ✓", "tab\tseparated\twords", "trailing   ", "\u{feff}x", "a", "é",
    ];

    const VOCAB: &[&str] = &["alpha", "β", "日本", "x", "#", "=", "::", "```", "--", "é✓"];

    fn random_doc(rng: &mut Rng) -> String {
        let mut text = String::new();
        for _ in 0..rng.below(40) {
            match rng.below(12) {
                // Numbered words: a line cut mid-line must map back to
                // its source position unambiguously in `source_spans`.
                0 | 1 => {
                    let words: Vec<String> = (0..=rng.below(25))
                        .map(|k| format!("{}{k}", VOCAB[rng.below(VOCAB.len())]))
                        .collect();
                    text.push_str(&words.join(["  ", " ", "\t"][rng.below(3)]));
                }
                2 if rng.below(10) == 0 => {
                    let words: Vec<String> = (0..300).map(|k| format!("long{k}")).collect();
                    text.push_str(&words.join(" "));
                }
                _ => text.push_str(FRAGMENTS[rng.below(FRAGMENTS.len())]),
            }
            text.push_str(["\n", "\n", "\n", "\r\n", "\r"][rng.below(5)]);
        }
        if rng.below(3) == 0 {
            text.pop();
        }
        text
    }

    /// Maps a chunk's text back onto source lines: it must end at
    /// `line_end`, start at or after `line_start`, and be whole source lines
    /// except a suffix of the first and a prefix of the last. Returns the
    /// byte span of each source line it covers. Pieces come in source order,
    /// so `cursor` (per line: just past the last piece start on it)
    /// disambiguates repeated text.
    fn source_spans(c: &Chunk, lines: &[&str], cursor: &mut [usize]) -> Vec<(usize, usize, usize)> {
        let parts: Vec<&str> = c.text.split('\n').collect();
        let first = c.line_end - parts.len();
        assert!(first + 1 >= c.line_start, "{c:?}");
        let last = parts.len() - 1;
        let mut spans = Vec::new();
        for (k, part) in parts.iter().enumerate() {
            let (line, src) = (first + k, lines[first + k]);
            let from = if last == 0 {
                // The first match at or after the cursor on word boundaries.
                let at_word = |from: usize| {
                    let before = src[..from].chars().next_back();
                    let after = src[from + part.len()..].chars().next();
                    before.is_none_or(char::is_whitespace) && after.is_none_or(char::is_whitespace)
                };
                let mut matches = src.match_indices(part).map(|(from, _)| from);
                let found = matches.find(|&from| from >= cursor[line] && at_word(from));
                found.expect("single-line text is in its line")
            } else if k == 0 {
                assert!(src.ends_with(part), "{c:?}");
                src.len() - part.len()
            } else {
                assert!(src.starts_with(part), "{c:?}");
                assert!(k == last || src == *part, "{c:?}");
                0
            };
            if k == 0 {
                // The next piece starting on this line starts further right.
                cursor[line] = from + src[from..].chars().next().map_or(0, char::len_utf8);
            }
            spans.push((line, from, from + part.len()));
        }
        spans
    }

    /// Line-range invariants, chunk text faithful to the source, and every
    /// non-blank body line (not front matter, not a heading line) either
    /// whole in a chunk or, if long enough to be cut mid-line, every word
    /// of it covered by some chunk.
    fn check_invariants(text: &str, format: Format, opts: &ChunkOptions) {
        let doc = chunk(text, format, "stem", opts);
        let body = text.strip_prefix('\u{feff}').unwrap_or(text);
        let lines = split_lines(body);
        let normalized = body.replace("\r\n", "\n").replace('\r', "\n");
        assert_eq!(lines.len(), normalized.lines().count());
        let mut covered: Vec<Vec<(usize, usize)>> = vec![Vec::new(); lines.len()];
        let mut cursor = vec![0; lines.len()];
        for c in &doc.chunks {
            assert!(c.line_start >= 1 && c.line_start <= c.line_end && c.line_end <= lines.len());
            assert!(!c.text.contains('\r'));
            if !c.text.is_empty() {
                for (line, from, to) in source_spans(c, &lines, &mut cursor) {
                    covered[line].push((from, to));
                }
            }
        }
        let starts: Vec<usize> = doc.chunks.iter().map(|c| c.line_start).collect();
        assert!(starts.is_sorted());
        // One anchor per section: pieces in a row share it, no other section has it.
        let mut seen = HashSet::new();
        for (k, c) in doc.chunks.iter().enumerate() {
            let piece = k > 0 && doc.chunks[k - 1].anchor == c.anchor;
            assert!(piece || seen.insert(&c.anchor), "{:#?}", doc.chunks);
            assert!(!c.anchor.is_empty() && !c.anchor.contains('#'));
        }
        let (start, _) = front_matter(&lines, format);
        let scan = scan(format, &lines, start);
        // A cut heading's lines are in its section's text, and must be found there.
        let heading_lines: HashSet<usize> = scan
            .headings
            .iter()
            .filter(|h| !h.cut)
            .flat_map(|h| h.first..=h.last)
            .collect();
        // A file of nothing but front matter keeps it (between its fences) as its
        // one section.
        let front_only = start > 0 && build_chunks(&lines, start, &scan, opts).is_empty();
        let checked = |i: usize| {
            if front_only {
                i >= 1 && i + 1 < start
            } else {
                i >= start
            }
        };
        // A piece starts with at most max(overlap, size / 2) old words, so
        // only a line longer than the rest of a piece may be cut mid-line.
        let size = opts.chunk_size.max(1);
        let may_cut = size - opts.chunk_overlap.min(size - 1).max(size / 2);
        for (i, line) in lines.iter().enumerate() {
            if !checked(i) || is_blank(line) || heading_lines.contains(&i) {
                continue;
            }
            let whole = doc.chunks.iter().any(|c| {
                (c.line_start..=c.line_end).contains(&(i + 1)) && c.text.contains(line.trim())
            });
            let words = words_in(&lines, i, i);
            let pieces = words.len() > may_cut
                && words.iter().all(|w| {
                    covered[i]
                        .iter()
                        .any(|&(from, to)| from <= w.start && w.end <= to)
                });
            assert!(
                whole || pieces,
                "line {} {line:?} lost from {text:?} {format:?} {opts:?} {:#?}",
                i + 1,
                doc.chunks
            );
        }
    }

    fn iterations() -> usize {
        std::env::var("CHUNK_FUZZ_ITERS")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(2000)
    }

    /// Deterministic by default; `CHUNK_FUZZ_SEED` and `CHUNK_FUZZ_ITERS`
    /// widen the search (`cargo test --release randomized`).
    #[test]
    fn randomized_inputs_keep_invariants() {
        let seed = std::env::var("CHUNK_FUZZ_SEED")
            .ok()
            .and_then(|v| v.parse().ok());
        let mut rng = Rng(seed.unwrap_or(0x9e37_79b9_7f4a_7c15));
        let formats = [
            Format::Markdown,
            Format::Rst,
            Format::AsciiDoc,
            Format::Text,
        ];
        for _ in 0..iterations() {
            let text = random_doc(&mut rng);
            let opts = opts(rng.below(40), rng.below(50));
            for format in formats {
                check_invariants(&text, format, &opts);
            }
        }
    }
}
