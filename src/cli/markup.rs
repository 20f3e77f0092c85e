//! A snippet as a person reads it on a terminal: one line, its matched words marked,
//! without markup that says nothing there (README, "Terminal output").
//!
//! Left out: code fence lines (```` ``` ````, `~~~`), HTML tags and comments, and
//! mdBook directives (`{{#include file.rs}}`), even where a matched word is inside
//! them (an include's path often names the topic searched for); a snippet that is
//! nothing but noise is shown as it is. Control characters become U+FFFD, so a
//! document can never send escape sequences to the terminal. Only the human view goes
//! through here; `--json` gives the snippet exactly as the index holds it.

/// A run of the shown text, matched or not.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Run {
    pub text: String,
    pub matched: bool,
}

/// What becomes of each character of the snippet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fate {
    Keep,
    Drop,
    /// Dropped, but it separated words (a `<br>`, a `</td>`): shown as a space.
    Space,
}

/// `snippet` with `highlights` (`[start, end)` character offsets) as shown: runs of
/// text, whitespace collapsed to single spaces, noise left out unless it is all there
/// is. Offsets past the end or reversed are ignored.
pub fn readable(snippet: &str, highlights: &[[usize; 2]]) -> Vec<Run> {
    let chars: Vec<char> = snippet.chars().collect();
    let mut matched = vec![false; chars.len()];
    for &[start, end] in highlights {
        let end = end.min(chars.len());
        if start < end {
            matched[start..end].fill(true);
        }
    }
    let mut fate = vec![Fate::Keep; chars.len()];
    let mut mark = |from: usize, to: usize, space: bool| {
        fate[from..to].fill(Fate::Drop);
        if space && from < to {
            fate[from] = Fate::Space;
        }
    };
    for (from, to) in lines(&chars) {
        if is_fence(&chars[from..to]) {
            mark(from, to, true);
        }
    }
    let mut i = 0;
    while i < chars.len() {
        let noise = match chars[i] {
            '{' => directive(&chars, i).map(|end| (end, true)),
            '<' => tag(&chars, i),
            _ => None,
        };
        match noise {
            Some((end, space)) => {
                mark(i, end, space);
                i = end;
            }
            None => i += 1,
        }
    }
    let runs = collapse(&chars, &matched, &fate);
    if runs.is_empty() {
        // Nothing but noise (a section that is one include): better the noise than a
        // hit that shows nothing of why it matched.
        return collapse(&chars, &matched, &vec![Fate::Keep; chars.len()]);
    }
    runs
}

/// `text` safe to print: control characters (escapes among them) become U+FFFD and
/// line breaks spaces.
pub fn printable(text: &str) -> String {
    text.chars()
        .map(|c| match c {
            '\n' | '\r' | '\t' => ' ',
            c if c.is_control() => '\u{FFFD}',
            c => c,
        })
        .collect()
}

/// `[from, to)` of each line, without its `\n`.
fn lines(chars: &[char]) -> Vec<(usize, usize)> {
    let mut out = Vec::new();
    let mut from = 0;
    for (i, c) in chars.iter().enumerate() {
        if *c == '\n' {
            out.push((from, i));
            from = i + 1;
        }
    }
    out.push((from, chars.len()));
    out
}

/// A code fence line: ```` ``` ```` or `~~~`, with or without an info string.
fn is_fence(line: &[char]) -> bool {
    let text: String = line.iter().collect();
    let text = text.trim_start();
    text.starts_with("```") || text.starts_with("~~~")
}

/// The end of an mdBook directive `{{#name ...}}` starting at `at`: after its `}}`, or
/// at the end of its line when the snippet cuts it.
fn directive(chars: &[char], at: usize) -> Option<usize> {
    if chars.get(at..at + 3)? != ['{', '{', '#'] {
        return None;
    }
    let mut i = at + 3;
    while i < chars.len() && chars[i] != '\n' {
        if chars[i] == '}' && chars.get(i + 1) == Some(&'}') {
            return Some(i + 2);
        }
        i += 1;
    }
    Some(i)
}

/// HTML elements written in docs. Only these count as tags, and only in lower case:
/// `Vec<T>`, `Option<String>` and `<https://...>` are text.
const ELEMENTS: &[&str] = &[
    "a",
    "abbr",
    "article",
    "aside",
    "audio",
    "b",
    "blockquote",
    "br",
    "button",
    "caption",
    "center",
    "cite",
    "code",
    "col",
    "colgroup",
    "dd",
    "del",
    "details",
    "div",
    "dl",
    "dt",
    "em",
    "embed",
    "figcaption",
    "figure",
    "font",
    "footer",
    "form",
    "h1",
    "h2",
    "h3",
    "h4",
    "h5",
    "h6",
    "header",
    "hr",
    "i",
    "iframe",
    "img",
    "input",
    "ins",
    "kbd",
    "label",
    "li",
    "link",
    "main",
    "mark",
    "meta",
    "nav",
    "noscript",
    "object",
    "ol",
    "p",
    "picture",
    "pre",
    "q",
    "s",
    "samp",
    "script",
    "section",
    "small",
    "source",
    "span",
    "strong",
    "style",
    "sub",
    "summary",
    "sup",
    "svg",
    "table",
    "tbody",
    "td",
    "template",
    "tfoot",
    "th",
    "thead",
    "tr",
    "tt",
    "u",
    "ul",
    "var",
    "video",
    "wbr",
];

/// Elements inside a line of text: leaving them out leaves no space.
const INLINE: &[&str] = &[
    "a", "abbr", "b", "cite", "code", "del", "em", "font", "i", "ins", "kbd", "mark", "q", "s",
    "samp", "small", "span", "strong", "sub", "sup", "tt", "u", "var",
];

/// The end of an HTML tag or comment starting at `at` (after its `>`), and whether it
/// separated words. A comment the snippet cuts runs to the end.
fn tag(chars: &[char], at: usize) -> Option<(usize, bool)> {
    if chars.get(at..at + 4) == Some(&['<', '!', '-', '-']) {
        let end = (at + 4..chars.len())
            .find(|&i| chars.get(i..i + 3) == Some(&['-', '-', '>']))
            .map_or(chars.len(), |i| i + 3);
        return Some((end, true));
    }
    let mut i = at + 1;
    if chars.get(i) == Some(&'/') {
        i += 1;
    }
    let name_start = i;
    while i < chars.len() && (chars[i].is_ascii_lowercase() || chars[i].is_ascii_digit()) {
        i += 1;
    }
    let name: String = chars[name_start..i].iter().collect();
    if !ELEMENTS.contains(&name.as_str()) {
        return None;
    }
    // After the name: the end, or attributes after a space, or `/>`.
    match chars.get(i) {
        Some('>' | '/') => {}
        Some(c) if c.is_whitespace() => {}
        _ => return None,
    }
    let mut quote = None;
    while i < chars.len() {
        match (quote, chars[i]) {
            (None, '>') => return Some((i + 1, !INLINE.contains(&name.as_str()))),
            (None, '<') => return None,
            (None, q @ ('"' | '\'')) => quote = Some(q),
            (Some(q), c) if c == q => quote = None,
            _ => {}
        }
        i += 1;
    }
    None
}

/// The kept characters as runs, whitespace collapsed and trimmed.
fn collapse(chars: &[char], matched: &[bool], fate: &[Fate]) -> Vec<Run> {
    let mut runs: Vec<Run> = Vec::new();
    let mut space = false;
    for (i, &c) in chars.iter().enumerate() {
        let c = match fate[i] {
            Fate::Drop => continue,
            Fate::Space => ' ',
            Fate::Keep => c,
        };
        if c.is_whitespace() {
            space = !runs.is_empty();
            continue;
        }
        let c = if c.is_control() { '\u{FFFD}' } else { c };
        if std::mem::take(&mut space) {
            // Inside a highlight (between two matched words) the space is matched too.
            let inside = matched[i] && runs.last().is_some_and(|r| r.matched);
            push(&mut runs, ' ', inside);
        }
        push(&mut runs, c, matched[i]);
    }
    runs
}

fn push(runs: &mut Vec<Run>, c: char, matched: bool) {
    match runs.last_mut() {
        Some(run) if run.matched == matched => run.text.push(c),
        _ => runs.push(Run {
            text: c.to_string(),
            matched,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The runs as text, matched words in brackets.
    fn shown(snippet: &str, highlights: &[[usize; 2]]) -> String {
        readable(snippet, highlights)
            .iter()
            .map(|r| {
                if r.matched {
                    format!("[{}]", r.text)
                } else {
                    r.text.clone()
                }
            })
            .collect()
    }

    /// The character offsets of `word`'s first occurrence in `text`.
    fn at(text: &str, word: &str) -> [usize; 2] {
        let byte = text.find(word).unwrap();
        let start = text[..byte].chars().count();
        [start, start + word.chars().count()]
    }

    #[test]
    fn fences_and_directives_leave_only_their_content() {
        let s =
            "Run it:\n\n```rust,ignore\nfn main() {}\n```\n\n{{#include ../src/lib.rs:5}}\nDone";
        assert_eq!(shown(s, &[at(s, "main")]), "Run it: fn [main]() {} Done");
        let s = "~~~\nplain\n~~~";
        assert_eq!(shown(s, &[]), "plain");
        // Nothing but noise: shown as it is.
        let s = "{{#include ../word.rs}}\n";
        assert_eq!(shown(s, &[at(s, "word")]), "{{#include ../[word].rs}}");
        // Cut by the snippet's end, still left out.
        let s = "words then {{#rustdoc_include ../listings/ch01/src/ma";
        assert_eq!(shown(s, &[]), "words then");
    }

    #[test]
    fn html_tags_go_but_generics_and_autolinks_stay() {
        let s = "<details>\n<summary>Click <b>here</b></summary>\n<p align=\"center\">a<br/>b</p><!-- note -->x";
        assert_eq!(shown(s, &[]), "Click here a b x");
        let s = "Vec<T> and Option<String> at <https://example.com>, if a < b, <A> or <p";
        assert_eq!(shown(s, &[]), s);
        let s = "<img src=\"a>b.png\" alt='x'>cap";
        assert_eq!(shown(s, &[]), "cap");
        let s = "text <!-- cut by the end";
        assert_eq!(shown(s, &[]), "text");
    }

    #[test]
    fn noise_goes_even_where_a_word_matched_in_it() {
        let s = "see {{#include install.rs}}\n```toml\nkey = 1\n```\ninstall it";
        assert_eq!(
            shown(s, &[at(s, "install"), at(s, "toml"), at(s, "install it")]),
            "see key = 1 [install it]"
        );
        let s = "<div class=\"warning\">careful</div>";
        assert_eq!(shown(s, &[at(s, "warning")]), "careful");
    }

    #[test]
    fn highlights_follow_the_text_and_bad_offsets_are_ignored() {
        let s = "<p>\n  héllo   wörld\n</p>";
        assert_eq!(shown(s, &[at(s, "wörld")]), "héllo [wörld]");
        assert_eq!(shown("abc", &[[2, 99], [5, 1], [7, 9]]), "ab[c]");
        assert_eq!(shown("", &[[0, 1]]), "");
    }

    #[test]
    fn control_characters_never_reach_the_terminal() {
        let s = "a\x1b]8;;file:///etc/passwd\x1b\\b\x07c\u{9b}d";
        let text = shown(s, &[]);
        assert!(!text.chars().any(char::is_control), "{text:?}");
        assert_eq!(printable("x\x1b[31my\nz"), "x\u{FFFD}[31my z");
    }
}
