//! Heading scanners for the section chunker (`super`): one small line scanner per markup
//! format. Each finds section headings (line range, level, text) and marks
//! the lines of code/literal/delimited blocks, which hide headings and which
//! the splitter avoids cutting inside. No I/O; linear time; never panics.

use super::{Format, indent_width, is_blank};

/// Headings longer than this are cut: the trail is cloned into every chunk
/// of a section, so an accidental giant heading (a long paragraph over a
/// `---` line is a Setext heading) must not multiply memory. The lines of a
/// cut heading stay in its section's body, so its words are still found.
pub(super) const MAX_HEADING_CHARS: usize = 300;

pub(super) struct Heading {
    /// 0-based first line (Setext paragraph start, rst overline).
    pub(super) first: usize,
    /// 0-based last line (underline, or `first` for one-line headings).
    pub(super) last: usize,
    /// 1 is the outermost level.
    pub(super) level: usize,
    pub(super) text: String,
    /// `text` was cut to [`MAX_HEADING_CHARS`].
    pub(super) cut: bool,
}

/// What a scanner found: headings in line order, and for every line the id
/// of the code/literal block it belongs to (0 = none). The splitter uses the
/// ids to avoid cutting inside a block.
pub(super) struct Scan {
    pub(super) headings: Vec<Heading>,
    pub(super) block: Vec<u32>,
}

impl Scan {
    pub(super) fn new(lines: usize) -> Self {
        Scan {
            headings: Vec::new(),
            block: vec![0; lines],
        }
    }

    fn heading(&mut self, first: usize, last: usize, level: usize, text: &str) {
        let (text, cut) = match text.char_indices().nth(MAX_HEADING_CHARS) {
            Some((cut, _)) => (text.get(..cut).unwrap_or(text).trim_end(), true),
            None => (text, false),
        };
        self.headings.push(Heading {
            first,
            last,
            level,
            text: text.to_string(),
            cut,
        });
    }

    fn mark(&mut self, line: usize, block: u32) {
        if let Some(slot) = self.block.get_mut(line) {
            *slot = block;
        }
    }

    /// True when `line` directly follows the previous heading's last line.
    fn follows_heading(&self, line: usize) -> bool {
        self.headings.last().is_some_and(|h| h.last + 1 == line)
    }
}

pub(super) fn scan(format: Format, lines: &[&str], start: usize) -> Scan {
    match format {
        Format::Markdown => Markdown::new(lines).run(start),
        Format::Rst => scan_rst(lines, start),
        Format::AsciiDoc => scan_asciidoc(lines, start),
        Format::Text => Scan::new(lines.len()),
    }
}

/// Strips a trailing closing sequence (`## Title ##`, `== Title ==`): only
/// when separated by whitespace, or when the whole text is the sequence.
fn strip_closing(text: &str, marker: char) -> &str {
    let without = text.trim_end_matches(marker);
    if without.is_empty() {
        ""
    } else if without.ends_with([' ', '\t']) {
        without.trim_end()
    } else {
        text
    }
}

/// Strips a trailing attribute block such as `{#custom-id}`, `{.class}` or
/// kramdown's `{: #id}`, which renderers do not show.
fn strip_attributes(text: &str) -> &str {
    let text = text.trim_end();
    if !text.ends_with('}') {
        return text;
    }
    match text.rfind('{') {
        Some(open) if text[open + 1..].starts_with(['#', '.', ':']) => text[..open].trim_end(),
        _ => text,
    }
}

// --- Markdown --------------------------------------------------------------

/// The paragraph open before the current line, which decides whether a `---`
/// or `===` line is a Setext underline.
#[derive(Clone, Copy)]
enum Para {
    None,
    /// A plain paragraph starting at this line: may become a Setext heading.
    Plain(usize),
    /// A list item or block quote paragraph: an underline after it is not a
    /// heading (CommonMark: lazy continuation never makes a Setext heading).
    Container,
}

struct Markdown<'a> {
    lines: &'a [&'a str],
    scan: Scan,
    fence: Option<(char, usize)>,
    /// Inside an HTML block (see [`html_block`]): the text that ends it.
    html_end: Option<&'static str>,
    para: Para,
    block: u32,
}

impl<'a> Markdown<'a> {
    fn new(lines: &'a [&'a str]) -> Self {
        Markdown {
            lines,
            scan: Scan::new(lines.len()),
            fence: None,
            html_end: None,
            para: Para::None,
            block: 0,
        }
    }

    fn run(mut self, start: usize) -> Scan {
        let lines = self.lines;
        for (i, &line) in lines.iter().enumerate().skip(start) {
            if self.in_code(i, line) {
                continue;
            }
            if is_blank(line) {
                self.para = Para::None;
            } else if indent_width(line) < 4 {
                self.para = self.block_start(i, line);
            }
            // Indented 4+: indented code, or a continuation of the open
            // paragraph; never a heading or underline either way.
        }
        self.scan
    }

    /// Consumes lines inside a fenced code block or an HTML block.
    fn in_code(&mut self, i: usize, line: &str) -> bool {
        if let Some((ch, len)) = self.fence {
            self.scan.mark(i, self.block);
            if closes_fence(line, ch, len) {
                self.fence = None;
            }
            return true;
        }
        if let Some(end) = self.html_end {
            self.scan.mark(i, self.block);
            if contains_ignoring_case(line, end) {
                self.html_end = None;
            }
            return true;
        }
        false
    }

    /// Classifies a non-blank line indented at most 3 columns and returns
    /// the paragraph state after it.
    fn block_start(&mut self, i: usize, line: &str) -> Para {
        if let Some(fence) = open_fence(line) {
            self.open_block(i);
            self.fence = Some(fence);
            return Para::None;
        }
        if let Some((end, rest)) = html_block(line) {
            self.open_block(i);
            self.html_end = (!contains_ignoring_case(rest, end)).then_some(end);
            return Para::None;
        }
        if let Some((level, text)) = atx_heading(line) {
            self.scan.heading(i, i, level, text);
            return Para::None;
        }
        if let (Para::Plain(first), Some(level)) = (self.para, setext_level(line)) {
            // CommonMark: the whole paragraph is the heading text.
            let para = self.lines.get(first..i).unwrap_or_default();
            let text: Vec<&str> = para.iter().map(|l| l.trim()).collect();
            self.scan
                .heading(first, i, level, strip_attributes(&text.join(" ")));
            return Para::None;
        }
        if is_thematic_break(line) {
            return Para::None;
        }
        if starts_container(line) {
            return Para::Container;
        }
        match self.para {
            Para::None => Para::Plain(i),
            open => open,
        }
    }

    fn open_block(&mut self, i: usize) {
        self.block += 1;
        self.scan.mark(i, self.block);
    }
}

/// The HTML blocks whose lines are never Markdown (CommonMark's kinds 1 and 2): a
/// comment, or a `<pre>`, `<script>`, `<style>` or `<textarea>` element, each up to the
/// line holding its end. Returns that end and the rest of the opening line.
fn html_block(line: &str) -> Option<(&'static str, &str)> {
    let t = line.trim_start();
    if let Some(rest) = t.strip_prefix("<!--") {
        return Some(("-->", rest));
    }
    let rest = t.strip_prefix('<')?;
    [
        ("pre", "</pre>"),
        ("script", "</script>"),
        ("style", "</style>"),
        ("textarea", "</textarea>"),
    ]
    .into_iter()
    .find_map(|(tag, end)| {
        let after = rest
            .get(..tag.len())
            .filter(|head| head.eq_ignore_ascii_case(tag))
            .map(|_| &rest[tag.len()..])?;
        (after.is_empty() || after.starts_with([' ', '\t', '>'])).then_some((end, after))
    })
}

/// Whether `text` holds `needle` (lowercase ASCII), in any case.
fn contains_ignoring_case(text: &str, needle: &str) -> bool {
    text.as_bytes()
        .windows(needle.len())
        .any(|w| w.eq_ignore_ascii_case(needle.as_bytes()))
}

/// `#`..`######` then a space, tab or end of line; the caller has checked
/// the indent is at most 3 spaces.
fn atx_heading(line: &str) -> Option<(usize, &str)> {
    let t = line.trim_start();
    let level = t.bytes().take_while(|&b| b == b'#').count();
    let rest = t.get(level..)?;
    if level == 0 || level > 6 || !(rest.is_empty() || rest.starts_with([' ', '\t'])) {
        return None;
    }
    Some((level, strip_attributes(strip_closing(rest.trim(), '#'))))
}

/// Opening code fence: 3+ backticks or tildes; a backtick fence's info
/// string may not contain a backtick (that is inline code, not a fence).
fn open_fence(line: &str) -> Option<(char, usize)> {
    let t = line.trim_start();
    let ch = t.chars().next().filter(|c| matches!(c, '`' | '~'))?;
    let len = t.bytes().take_while(|&b| b == ch as u8).count();
    let info = t.get(len..)?;
    (len >= 3 && !(ch == '`' && info.contains('`'))).then_some((ch, len))
}

/// A closing fence uses the same char, is at least as long, and has nothing
/// after it but whitespace.
fn closes_fence(line: &str, ch: char, len: usize) -> bool {
    let t = line.trim();
    indent_width(line) < 4 && t.len() >= len && t.chars().all(|c| c == ch)
}

fn setext_level(line: &str) -> Option<usize> {
    let t = line.trim();
    if t.is_empty() {
        None
    } else if t.bytes().all(|b| b == b'=') {
        Some(1)
    } else if t.bytes().all(|b| b == b'-') {
        Some(2)
    } else {
        None
    }
}

/// `---`, `***`, `___`, possibly spaced (`- - -`).
fn is_thematic_break(line: &str) -> bool {
    let t = line.trim();
    let Some(ch) = t.chars().next().filter(|c| matches!(c, '-' | '*' | '_')) else {
        return false;
    };
    let marks = t.chars().filter(|&c| c == ch).count();
    marks >= 3 && t.chars().all(|c| c == ch || c == ' ' || c == '\t')
}

/// Block quote or list item marker.
fn starts_container(line: &str) -> bool {
    let t = line.trim_start();
    if t.starts_with('>') {
        return true;
    }
    let rest = match t.strip_prefix(['-', '*', '+']) {
        Some(rest) => rest,
        None => {
            let digits = t.bytes().take_while(u8::is_ascii_digit).count();
            let after = t.get(digits..).and_then(|r| r.strip_prefix(['.', ')']));
            match after {
                Some(rest) if (1..=9).contains(&digits) => rest,
                _ => return false,
            }
        }
    };
    rest.is_empty() || rest.starts_with([' ', '\t'])
}

// --- reStructuredText -------------------------------------------------------

/// Characters allowed in section adornments (the docutils-recommended set).
const RST_ADORNMENT: &str = "=-~^\"'`#*+:._<>";
/// An adornment shorter than its title still makes a title from this length on.
const RST_SHORT_ADORNMENT: usize = 4;

fn scan_rst(lines: &[&str], start: usize) -> Scan {
    let mut scan = Scan::new(lines.len());
    // Docutils assigns levels in the order adornment styles first appear.
    let mut styles: Vec<(char, bool)> = Vec::new();
    let mut literal: Option<usize> = None;
    let mut block = 0;
    let mut i = start;
    while i < lines.len() {
        let line = lines[i];
        if let Some(base) = literal {
            if is_blank(line) || indent_width(line) > base {
                scan.mark(i, block);
                i += 1;
                continue;
            }
            literal = None;
        }
        // A title starts a paragraph: mid-paragraph it is a docutils error,
        // and rendered as text.
        let starts_para = i == start || is_blank(lines[i - 1]) || scan.follows_heading(i);
        if let Some(title) = rst_title(lines, i).filter(|_| starts_para) {
            let style = (title.adornment, title.overline);
            let level = match styles.iter().position(|s| *s == style) {
                Some(pos) => pos + 1,
                None => {
                    styles.push(style);
                    styles.len()
                }
            };
            scan.heading(i, title.last, level, title.text);
            i = title.last + 1;
            continue;
        }
        if opens_rst_literal(line) {
            literal = Some(indent_width(line));
            block += 1;
        }
        i += 1;
    }
    scan
}

struct RstTitle<'a> {
    text: &'a str,
    adornment: char,
    overline: bool,
    last: usize,
}

/// A section title starting at line `i`: overline + text + matching
/// underline, or (unindented) text + underline. The adornment must be at
/// least as long as the title text, or (as docutils has it, with a warning)
/// at least [`RST_SHORT_ADORNMENT`] characters. A lone adornment line between
/// blank lines (a transition) matches neither form.
fn rst_title<'a>(lines: &[&'a str], i: usize) -> Option<RstTitle<'a>> {
    let line = *lines.get(i)?;
    let next = *lines.get(i + 1)?;
    if let Some((ch, len)) = rst_adornment(line) {
        let under = rst_adornment(lines.get(i + 2)?)?;
        let text = next.trim();
        let fits = !text.is_empty() && (text.chars().count() <= len || len >= RST_SHORT_ADORNMENT);
        return (under == (ch, len) && fits && rst_adornment(next).is_none()).then_some(RstTitle {
            text,
            adornment: ch,
            overline: true,
            last: i + 2,
        });
    }
    if line.starts_with(char::is_whitespace) || is_blank(line) {
        return None;
    }
    let (ch, len) = rst_adornment(next)?;
    let text = line.trim();
    (text.chars().count() <= len || len >= RST_SHORT_ADORNMENT).then_some(RstTitle {
        text,
        adornment: ch,
        overline: false,
        last: i + 1,
    })
}

/// A line of one repeated adornment character at column 0.
fn rst_adornment(line: &str) -> Option<(char, usize)> {
    let t = line.trim_end();
    let ch = t.chars().next().filter(|c| RST_ADORNMENT.contains(*c))?;
    t.chars().all(|c| c == ch).then_some((ch, t.len()))
}

/// A paragraph ending in `::` (literal block) or a code directive: the
/// indented lines after it are code, not markup.
fn opens_rst_literal(line: &str) -> bool {
    let t = line.trim();
    match t.strip_prefix(".. ").and_then(|d| d.split_once("::")) {
        Some((name, _)) => matches!(name.trim(), "code" | "code-block" | "sourcecode"),
        None => t.ends_with("::"),
    }
}

// --- AsciiDoc -----------------------------------------------------------------

fn scan_asciidoc(lines: &[&str], start: usize) -> Scan {
    let mut scan = Scan::new(lines.len());
    let mut closer: Option<&str> = None;
    let mut block = 0;
    let mut underline = None;
    for (i, &line) in lines.iter().enumerate().skip(start) {
        let t = line.trim_end();
        if let Some(close) = closer {
            scan.mark(i, block);
            if t == close {
                closer = None;
            }
            continue;
        }
        if underline == Some(i) {
            continue;
        }
        if let Some(level) = lines
            .get(i + 1)
            .and_then(|next| adoc_two_line_title(t, next.trim_end()))
            .filter(|_| adoc_may_title(lines, i, start, &scan))
        {
            scan.heading(i, i + 1, level, t.trim());
            underline = Some(i + 1);
            continue;
        }
        if let Some(close) = adoc_delimiter(t) {
            block += 1;
            scan.mark(i, block);
            closer = Some(close);
            continue;
        }
        if let Some((level, text)) =
            adoc_heading(t).filter(|_| adoc_may_title(lines, i, start, &scan))
        {
            scan.heading(i, i, level, text);
        }
    }
    scan
}

/// The line that closes a delimited block opened by `t`: the same line for
/// `----`, `....`, `====`, `****`, `____`, `++++`, `////`, backticks (4+ of
/// one char) and tables (`|===`), or ```` ``` ```` for a Markdown-style fence.
fn adoc_delimiter(t: &str) -> Option<&str> {
    let ch = t.chars().next()?;
    if "-.=*_+/`".contains(ch) && t.len() >= 4 && t.chars().all(|c| c == ch) {
        return Some(t);
    }
    if t.starts_with("```") {
        return Some("```");
    }
    let table = t
        .get(1..)
        .filter(|r| r.len() >= 3 && r.chars().all(|c| c == '='));
    (matches!(ch, '|' | ',' | ':' | '!') && table.is_some()).then_some(t)
}

/// `= Title` (level 1, the document title) .. `====== Title`, or the same
/// with `#`; a symmetric closing sequence is stripped.
fn adoc_heading(t: &str) -> Option<(usize, &str)> {
    let marker = t.chars().next().filter(|c| matches!(c, '=' | '#'))?;
    let level = t.bytes().take_while(|&b| b == marker as u8).count();
    let rest = t.get(level..)?;
    if level > 6 || !rest.starts_with([' ', '\t']) {
        return None;
    }
    let text = strip_closing(rest.trim(), marker);
    (!text.is_empty()).then_some((level, text))
}

/// The level of a two-line title, `t` underlined by `next`: one of `=`, `-`, `~`, `^`,
/// `+` (levels 1 to 5), as long as the title give or take one character, as
/// Asciidoctor reads it. The title must hold a letter or digit and not read as a
/// block title (`.Title`), block attributes, a comment, an attribute entry or a
/// one-line title.
fn adoc_two_line_title(t: &str, next: &str) -> Option<usize> {
    let ch = next.chars().next()?;
    let level = "=-~^+".find(ch)? + 1;
    let (width, title) = (next.len(), t.trim_start());
    if !next.bytes().all(|b| b == ch as u8) || width < 2 {
        return None;
    }
    let plain = title.chars().any(char::is_alphanumeric)
        && !title.starts_with(['.', '[', ':'])
        && !title.starts_with("//")
        && adoc_heading(t).is_none()
        && adoc_delimiter(t).is_none();
    (plain && t.chars().count().abs_diff(width) < 2).then_some(level)
}

/// Asciidoctor reads a title only at a block boundary: inside a paragraph
/// `== x` is text. Block attributes (`[[id]]`, `[discrete]`), comments and
/// attribute entries may sit directly above a title.
fn adoc_may_title(lines: &[&str], i: usize, start: usize, scan: &Scan) -> bool {
    if i == start || scan.follows_heading(i) {
        return true;
    }
    // Here `i > start >= 0`, so `i - 1` is a line.
    let prev = lines.get(i - 1).map_or("", |l| l.trim());
    let after_block = scan.block.get(i - 1).is_some_and(|&b| b != 0);
    prev.is_empty() || after_block || prev.starts_with(['[', ':']) || prev.starts_with("//")
}
