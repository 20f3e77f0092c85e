//! A document rendered for a person reading it (`/render/{path}`; README "HTTP API"):
//! Markdown as a neutral tree of a few allowed tags ([`tree`]), which a page builds
//! with createElement and textContent; reStructuredText, AsciiDoc and plain text as
//! one `pre` per section. The file is read by the rules of every read ([`super::load`]),
//! and the outline is the reader's ([`super::outline`]), so its ids, and the ids of the
//! headings in the tree, are the ids hits carry.
//!
//! Nothing in the tree can run: raw HTML is a `raw` node holding its text, a link keeps
//! only an http, https or mailto address or a project path ([`link`]), an image is its
//! alt text and address, never an image to load. The tree is bounded in depth and size
//! ([`tree::MAX_DEPTH`], [`tree::MAX_NODES`]); a file over [`WHOLE_MAX`] bytes is
//! rendered one section at a time.

mod link;
mod tree;

use std::collections::HashMap;
use std::path::Path;

use serde::Serialize;

use super::outline::{Section, outline};
use super::{ReadError, chunk};
use crate::ingest::chunk::Format;
pub use tree::{El, Extra, Node};

/// Every tag a rendered node may have (README, "HTTP API").
#[rustfmt::skip]
pub const TAGS: &[&str] = &[
    "p", "h1", "h2", "h3", "h4", "h5", "h6", "blockquote", "pre", "code", "ul", "ol", "li",
    "table", "thead", "tbody", "tr", "th", "td", "em", "strong", "del", "br", "hr", "a", "sup",
    "task", "raw", "image",
];

/// Files up to this size are rendered whole; a larger one, only the section asked for
/// (the first without one), itself cut after this many bytes.
pub const WHOLE_MAX: usize = 1 << 20;

/// A rendered document.
#[derive(Debug, Clone, Serialize)]
pub struct Rendered {
    pub path: String,
    /// `markdown`, or `text` (reStructuredText, AsciiDoc, plain text).
    pub format: &'static str,
    pub total_lines: usize,
    /// Only part of the file is here: one section of a large file, or the nodes that
    /// fit ([`tree::MAX_NODES`]).
    pub truncated: bool,
    /// Every section of the file.
    pub outline: Vec<OutlineEntry>,
    pub blocks: Vec<Node>,
}

/// A section in the outline.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct OutlineEntry {
    /// `path#anchor`, as hits carry it.
    pub id: String,
    /// How deep its heading is in the trail, the document's title included (1 for the
    /// outermost); 0 for the text before the first heading.
    pub level: usize,
    /// Its own heading; empty before the first heading.
    pub title: String,
    /// Its heading trail as hits show it (after the document's title).
    pub headings: Vec<String>,
    pub line_start: usize,
    pub line_end: usize,
}

/// Renders `text`, the file `path`: whole, or when over [`WHOLE_MAX`] bytes only the
/// section of `anchor` (the first without one). An anchor the file has not is
/// `no_such_section`, whatever the file's size.
pub(super) fn render(path: &str, text: &str, anchor: Option<&str>) -> Result<Rendered, ReadError> {
    let total = chunk::split_lines(text).len();
    let sections = outline(text, Path::new(path), total);
    let asked = match anchor {
        None => 0,
        Some(anchor) => {
            let wanted = anchor.to_lowercase();
            match sections.iter().position(|s| s.anchor == wanted) {
                Some(at) => at,
                None => {
                    return Err(ReadError::NoSuchSection {
                        path: path.to_owned(),
                        anchor: anchor.to_owned(),
                        sections: sections.into_iter().map(|s| s.into_ref(path)).collect(),
                    });
                }
            }
        }
    };
    let starts = tree::line_starts(text);
    let (first, range, mut truncated) = if text.len() > WHOLE_MAX {
        let s = &sections[asked];
        (s.line_start, cut(text, &starts, s), true)
    } else {
        (1, 0..text.len(), false)
    };
    let part = text.get(range).unwrap_or_default();
    let markdown = Format::from_path(Path::new(path)) == Format::Markdown;
    let blocks = if markdown {
        let ids: HashMap<usize, String> = sections
            .iter()
            .filter(|s| !s.headings.is_empty())
            .map(|s| (s.line_start, s.id(path)))
            .collect();
        let (blocks, cut) = tree::build(&tree::Source {
            text: part,
            base: first - 1,
            ids: &ids,
            here: path,
        });
        truncated |= cut;
        blocks
    } else {
        plain(part, first, &sections)
    };
    Ok(Rendered {
        path: path.to_owned(),
        format: if markdown { "markdown" } else { "text" },
        total_lines: total,
        truncated,
        outline: sections.iter().map(|s| entry(s, path)).collect(),
        blocks,
    })
}

/// The bytes of section `s` of a large file, cut after [`WHOLE_MAX`] of them (on a
/// character boundary; the end of a cut section is not worth a line lost).
fn cut(text: &str, starts: &[usize], s: &Section) -> std::ops::Range<usize> {
    let at = |line: usize| {
        starts
            .get(line.saturating_sub(1))
            .copied()
            .unwrap_or(text.len())
    };
    let begin = at(s.line_start);
    let mut end = at(s.line_end.saturating_add(1)).min(begin.saturating_add(WHOLE_MAX));
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    begin..end.max(begin)
}

/// `part`, which starts at line `first`, as one `pre` per section (and one for any
/// lines before the first section: front matter).
fn plain(part: &str, first: usize, sections: &[Section]) -> Vec<Node> {
    let lines = chunk::split_lines(part);
    let last = first + lines.len();
    let mut pieces: Vec<(usize, usize)> = Vec::new();
    if let Some(s) = sections.first()
        && s.line_start > first
    {
        pieces.push((first, s.line_start - 1));
    }
    pieces.extend(sections.iter().map(|s| (s.line_start, s.line_end)));
    pieces
        .into_iter()
        .filter_map(|(start, end)| {
            let (start, end) = (start.max(first), end.min(last - 1));
            let text = lines
                .get(start - first..end.checked_sub(first - 1)?)?
                .join("\n");
            let mut el = El::new("pre", Some(start));
            el.c.push(Node::Text(text));
            Some(Node::El(Box::new(el)))
        })
        .collect()
}

fn entry(s: &Section, path: &str) -> OutlineEntry {
    OutlineEntry {
        id: s.id(path),
        level: s.headings.len(),
        title: s.headings.last().cloned().unwrap_or_default(),
        headings: s.trail(),
        line_start: s.line_start,
        line_end: s.line_end,
    }
}

#[cfg(test)]
mod tests;
