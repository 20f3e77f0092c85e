//! `chunk`: the section chunker for every format, on arbitrary bytes decoded lossily.
//!
//! Each input is chunked as Markdown, reStructuredText, AsciiDoc and plain text, with
//! the default piece size and with a tiny one (taken from the input's length) so that
//! splitting and overlap run too. What must hold: line ranges are 1-based, ordered and
//! inside the input; a chunk's words are, in order, words of its own lines; and every
//! non-blank line after the front matter is in some chunk (no text is unsearchable).

use doc_serve::ingest::chunk::{ChunkOptions, Format, chunk};

const FORMATS: [Format; 4] = [
    Format::Markdown,
    Format::Rst,
    Format::AsciiDoc,
    Format::Text,
];

pub fn check(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let small = 1 + data.len() % 7;
    let options = [
        ChunkOptions {
            chunk_size: 512,
            chunk_overlap: 50,
        },
        ChunkOptions {
            chunk_size: small,
            chunk_overlap: data.len() % 5,
        },
    ];
    let lines = split_lines(&text);
    for format in FORMATS {
        for opts in &options {
            check_one(&text, &lines, format, opts);
        }
    }
}

fn check_one(text: &str, lines: &[&str], format: Format, opts: &ChunkOptions) {
    let doc = chunk(text, format, "fallback", opts);
    assert!(!doc.title.is_empty(), "{format:?}: empty title");
    let mut last_start = 0;
    // +1 where a chunk's lines start, -1 past where they end.
    let mut cover = vec![0i64; lines.len() + 1];
    for c in &doc.chunks {
        let what = || format!("{format:?} {opts:?}: chunk {}-{}", c.line_start, c.line_end);
        assert!(c.line_start >= 1, "{}", what());
        assert!(c.line_start <= c.line_end, "{}", what());
        assert!(
            c.line_end <= lines.len(),
            "{} of {} lines",
            what(),
            lines.len()
        );
        assert!(c.line_start >= last_start, "{}: out of order", what());
        last_start = c.line_start;
        let own = &lines[c.line_start - 1..c.line_end];
        cover[c.line_start - 1] += 1;
        cover[c.line_end] -= 1;
        let mut source = own.iter().flat_map(|l| l.split_whitespace());
        for word in c.text.split_whitespace() {
            assert!(
                source.any(|w| w == word),
                "{}: word {word:?} is not from its lines",
                what()
            );
        }
    }
    check_covered(lines, &cover, &format!("{format:?} {opts:?}"));
}

/// Nothing is lost: every non-blank line after the front matter is in some chunk.
fn check_covered(lines: &[&str], cover: &[i64], what: &str) {
    let start = body_start(lines);
    let mut depth = 0;
    for (i, line) in lines.iter().enumerate() {
        depth += cover[i];
        assert!(
            depth > 0 || i < start || line.trim().is_empty(),
            "{what}: line {} ({line:?}) is in no chunk",
            i + 1
        );
    }
}

/// The first line after front matter: `---` closed by `---` or `...`, or `+++` closed
/// by `+++`, opening on the first line (the module doc of `ingest::chunk`).
fn body_start(lines: &[&str]) -> usize {
    let fence = match lines.first().map(|l| l.trim_end()) {
        Some(f @ ("---" | "+++")) => f,
        _ => return 0,
    };
    let closes = |l: &&str| {
        let t = l.trim_end();
        t == fence || (fence == "---" && t == "...")
    };
    lines.iter().skip(1).position(closes).map_or(0, |p| p + 2)
}

/// Lines as the chunker numbers them: split on `\n`, `\r\n` and a lone `\r`, after a
/// leading BOM; a final terminator does not start another line.
fn split_lines(text: &str) -> Vec<&str> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut lines = Vec::new();
    let mut rest = text;
    while let Some(at) = rest.find(['\r', '\n']) {
        lines.push(&rest[..at]);
        let width = if rest[at..].starts_with("\r\n") { 2 } else { 1 };
        rest = &rest[at + width..];
    }
    if !rest.is_empty() {
        lines.push(rest);
    }
    lines
}
