//! Reading a source back (`/documents`, `read_doc`; README "HTTP API"): the whole file,
//! a range of its lines, the section under a heading or the section of an id
//! (`path#anchor`, as hits carry it), cut to a token budget, with the sections before
//! and after it so that a reader can widen its view; or rendered for a person to read
//! (`/render`, [`render`]).
//!
//! Owns the rules of what may be read: only what the walk lists (see [`load`]). Lines
//! are numbered as the chunker numbers them ([`chunk::split_lines`]), and sections are
//! the chunker's, so every hit's line range and id read back. Knows nothing of HTTP:
//! [`ReadError::code`] names the stable code a transport answers with.

use std::io::Read;
use std::path::{Component, Path};

use serde::{Deserialize, Serialize};

use super::chunk;
use super::walk::Sources;
use crate::tokens::{BYTES_PER_TOKEN, json_len};
use outline::{holding, outline, under_heading};

mod outline;
pub mod render;

pub use render::Rendered;

/// What to read: the file at `path` (relative to the root, as hits show it), which
/// part of it, and at most how many tokens of text (see [`crate::tokens`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Want {
    /// May be empty when `scope` is a whole id (`path#anchor`): the id names the file.
    pub path: String,
    pub scope: Scope,
    pub max_tokens: Option<usize>,
}

/// Which part of a file to read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scope {
    /// Lines `start..=end`, counted from 1; an open end is the first or last line, so
    /// both open is the whole file.
    Lines {
        start: Option<usize>,
        end: Option<usize>,
    },
    /// The section under a heading, subsections included: the heading itself or the
    /// end of its trail (`Install > Linux`), case-insensitively; the first such.
    Heading(String),
    /// One section, to the next heading of any level: by its id `path#anchor`, or by
    /// its anchor alone (the path given in [`Want::path`]).
    Section(String),
}

impl Default for Scope {
    fn default() -> Self {
        Scope::Lines {
            start: None,
            end: None,
        }
    }
}

/// A section as a neighbour of what was read.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SectionRef {
    /// `path#anchor`: read it with [`Scope::Section`].
    pub id: String,
    /// Its heading trail, outermost first; empty for the text before the first heading.
    pub headings: Vec<String>,
    pub line_start: usize,
    pub line_end: usize,
}

/// What was read.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Part {
    pub path: String,
    /// The id of the section holding the first line returned.
    pub id: String,
    /// The lines returned, 1-based, inclusive (an empty file: 1 and 0).
    pub line_start: usize,
    pub line_end: usize,
    pub total_lines: usize,
    /// The heading trail of the section holding the first line returned.
    pub headings: Vec<String>,
    pub text: String,
    /// The budget left part of what was asked for out: lines from `next_line` on, or
    /// (a single line over the budget) the rest of the line returned.
    pub truncated: bool,
    /// The first line asked for but not returned, when cut.
    pub next_line: Option<usize>,
    /// The section before the one holding the first line returned.
    pub previous: Option<SectionRef>,
    /// The first section starting after the last line returned.
    pub next: Option<SectionRef>,
}

/// Why a read has no answer; [`ReadError::code`] is its stable code.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    #[error("no document {path:?} in this project")]
    NotFound { path: String },
    /// Said as a missing file is: the file is not a document, and whether it exists
    /// is not for the answer to tell.
    #[error("no document {path:?} in this project")]
    Binary { path: String },
    #[error("{path} is over {max} bytes")]
    TooLarge { path: String, max: u64 },
    #[error("{path} has no heading {heading:?}")]
    NoSuchHeading { path: String, heading: String },
    #[error("{}", no_such_section(path, anchor, sections))]
    NoSuchSection {
        path: String,
        anchor: String,
        /// The file's sections now.
        sections: Vec<SectionRef>,
    },
    #[error("{}", bad_range(*start, *end, *total))]
    BadRange {
        start: usize,
        end: usize,
        total: usize,
    },
    #[error("{0}")]
    BadParameter(String),
}

/// What is wrong with lines `start`-`end` of a file of `total` lines.
fn bad_range(start: usize, end: usize, total: usize) -> String {
    if start > total {
        format!("line {start} is past the end: the file has {total} lines")
    } else {
        format!("lines {start}-{end} run backwards: give the first line, then the last")
    }
}

impl ReadError {
    /// The stable code of the error, as `/documents` answers it.
    pub fn code(&self) -> &'static str {
        match self {
            ReadError::NotFound { .. } | ReadError::Binary { .. } => "not_found",
            ReadError::TooLarge { .. } => "document_too_large",
            ReadError::NoSuchHeading { .. } => "no_such_heading",
            ReadError::NoSuchSection { .. } => "no_such_section",
            ReadError::BadRange { .. } => "bad_range",
            ReadError::BadParameter(_) => "bad_parameter",
        }
    }
}

/// Most section ids a `no_such_section` message lists.
const LISTED: usize = 50;

fn no_such_section(path: &str, anchor: &str, sections: &[SectionRef]) -> String {
    let mut ids: Vec<&str> = sections
        .iter()
        .take(LISTED)
        .map(|s| s.id.as_str())
        .collect();
    let more = format!("and {} more", sections.len().saturating_sub(LISTED));
    if sections.len() > LISTED {
        ids.push(&more);
    }
    format!(
        "{path} has no section {anchor:?} (it was renamed or removed, or the id is \
         mistyped); its sections now: {}",
        ids.join(", ")
    )
}

/// Reads what `want` names. See the module doc and [`load`] for what may be read.
pub fn read(sources: &Sources, want: &Want) -> Result<Part, ReadError> {
    let (path, anchor) = target(want)?;
    for (name, value) in [
        ("max_tokens", want.max_tokens),
        ("start", lines_bound(&want.scope, true)),
        ("end", lines_bound(&want.scope, false)),
    ] {
        if value == Some(0) {
            return Err(ReadError::BadParameter(format!(
                "{name} must be a whole number of at least 1, not 0"
            )));
        }
    }
    let text = load(sources, path)?;
    let lines = chunk::split_lines(&text);
    let total = lines.len();
    // The format by the name the file is indexed under (a link's own).
    let outline = outline(&text, Path::new(path), total);
    let (first, last, at) = match &want.scope {
        Scope::Lines { start, end } => {
            let first = start.unwrap_or(1);
            (
                first,
                end.unwrap_or(total).min(total),
                holding(&outline, first),
            )
        }
        Scope::Heading(h) => {
            let (at, end) = under_heading(&outline, h).ok_or_else(|| ReadError::NoSuchHeading {
                path: path.to_owned(),
                heading: h.clone(),
            })?;
            (outline[at].line_start, end.min(total), at)
        }
        Scope::Section(_) => {
            let wanted = anchor.to_lowercase();
            let Some(at) = outline.iter().position(|s| s.anchor == wanted) else {
                return Err(ReadError::NoSuchSection {
                    path: path.to_owned(),
                    anchor: anchor.to_owned(),
                    sections: outline.into_iter().map(|s| s.into_ref(path)).collect(),
                });
            };
            (outline[at].line_start, outline[at].line_end.min(total), at)
        }
    };
    if first > last && total > 0 {
        return Err(ReadError::BadRange {
            start: first,
            end: lines_bound(&want.scope, false).unwrap_or(last),
            total,
        });
    }
    let asked = lines.get(first.saturating_sub(1)..last).unwrap_or_default();
    let (text, returned, cut_line) = fit(asked, want.max_tokens);
    let line_end = if total == 0 {
        last
    } else {
        first + returned - 1
    };
    let truncated = cut_line || returned < asked.len();
    let section = &outline[at];
    Ok(Part {
        path: path.to_owned(),
        id: section.id(path),
        line_start: first.min(total.max(1)),
        line_end,
        total_lines: total,
        headings: section.trail(),
        text,
        truncated,
        next_line: (truncated && line_end < last).then_some(line_end + 1),
        previous: at.checked_sub(1).map(|k| outline[k].to_ref(path)),
        next: outline[at + 1..]
            .iter()
            .find(|s| s.line_start > line_end)
            .map(|s| s.to_ref(path)),
    })
}

/// Renders the document `path` for a person to read (see [`render`]): the whole file,
/// or, for a large one, the section `section` names (`path#anchor`, or the anchor
/// alone). What may be read is what [`read`] may read.
pub fn render(sources: &Sources, path: &str, section: Option<&str>) -> Result<Rendered, ReadError> {
    let anchor = match section {
        Some(id) => {
            let want = Want {
                path: path.to_owned(),
                scope: Scope::Section(id.to_owned()),
                max_tokens: None,
            };
            Some(target(&want)?.1.to_owned())
        }
        None => None,
    };
    let text = load(sources, path)?;
    render::render(path, &text, anchor.as_deref())
}

/// The path to read and the anchor asked for (empty unless by section). A whole id
/// splits at its last `#`: a path may hold one, an anchor never does.
fn target(want: &Want) -> Result<(&str, &str), ReadError> {
    let Scope::Section(id) = &want.scope else {
        if want.path.is_empty() {
            return Err(ReadError::BadParameter(
                "give the document's path (/documents/PATH), or a section id".into(),
            ));
        }
        return Ok((&want.path, ""));
    };
    let (in_id, anchor) = id.rsplit_once('#').unwrap_or(("", id));
    if anchor.is_empty() {
        return Err(ReadError::BadParameter(format!(
            "section {id:?} has no anchor after its last '#': give path#anchor or the anchor \
             alone"
        )));
    }
    match (want.path.as_str(), in_id) {
        ("", "") => Err(ReadError::BadParameter(format!(
            "section {id:?} names no document: give its whole id, path#anchor, or the path"
        ))),
        (path, "") => Ok((path, anchor)),
        ("", path) => Ok((path, anchor)),
        (path, other) if path == other => Ok((path, anchor)),
        (path, other) => Err(ReadError::BadParameter(format!(
            "section {id:?} is a section of {other}, not of {path}: give its anchor alone \
             ({anchor:?}) or the document it names"
        ))),
    }
}

fn lines_bound(scope: &Scope, start: bool) -> Option<usize> {
    match scope {
        Scope::Lines { start: s, .. } if start => *s,
        Scope::Lines { end, .. } => *end,
        _ => None,
    }
}

/// `lines` cut to fit `max_tokens` (see [`crate::tokens`]): the text, how many lines
/// it holds, and whether its one line was cut. Measured as the answer carries the text,
/// in JSON (a quote or a backslash takes two bytes there, a control character six):
/// whole lines while they fit, and always at least one: a first line over the budget
/// is cut at the budget (on a character boundary).
fn fit(lines: &[&str], max_tokens: Option<usize>) -> (String, usize, bool) {
    let budget = max_tokens.map_or(usize::MAX, |t| t.saturating_mul(BYTES_PER_TOKEN));
    let mut used: usize = 0;
    let mut taken = 0;
    for (k, line) in lines.iter().enumerate() {
        // The line, and the `\n` before it.
        let cost = json_len(line) + if k > 0 { 2 } else { 0 };
        if used.saturating_add(cost) > budget {
            break;
        }
        used += cost;
        taken = k + 1;
    }
    match lines.first() {
        Some(line) if taken == 0 => {
            let mut room = budget;
            let at = line
                .char_indices()
                .find(|(_, c)| {
                    let cost = json_len(c.encode_utf8(&mut [0; 4]));
                    let over = cost > room;
                    room = room.saturating_sub(cost);
                    over
                })
                .map_or(line.len(), |(at, _)| at);
            (line[..at].to_owned(), 1, true)
        }
        _ => (lines[..taken].join("\n"), taken, false),
    }
}

/// The text of the source `rel`, without a BOM. Only what the walk lists: source
/// files (the include globs) inside the root; `..`, absolute paths, doc-serve's own
/// files by any name (see [`super::private`]), files holding the live token,
/// symlinks leading out, through a loop or to what the walk leaves out (see
/// [`super::rules`]) are all "not found"; so are binary files (as the walk skips them).
fn load(sources: &Sources, rel: &str) -> Result<String, ReadError> {
    let not_found = || ReadError::NotFound {
        path: rel.to_owned(),
    };
    let root = sources.root();
    let relp = Path::new(rel);
    // As the walk writes paths: `/`-separated names, no `.`, `..` or empty ones (`a/./b`
    // and `a//b` would read `a/b` under another name, and answer with it).
    let plain = !rel.is_empty()
        && !rel.contains('\0')
        && relp.components().all(|c| matches!(c, Component::Normal(_)))
        && rel.split('/').all(|name| !name.is_empty() && name != ".");
    if !plain || !sources.wants(rel) {
        return Err(not_found());
    }
    let path = sources.resolve(rel);
    let real = path.canonicalize().map_err(|_| not_found())?;
    if !real.starts_with(root)
        || sources.off_limits(&real)
        || !real.is_file()
        || !sources.lists(&path, &real)
    {
        return Err(not_found());
    }
    let max = sources.max_bytes();
    let mut buf = Vec::new();
    std::fs::File::open(&real)
        .and_then(|f| f.take(max.saturating_add(1)).read_to_end(&mut buf))
        .map_err(|_| not_found())?;
    if buf.len() as u64 > max {
        return Err(ReadError::TooLarge {
            path: rel.to_owned(),
            max,
        });
    }
    if sources.holds_token(&buf).is_some() {
        return Err(not_found());
    }
    if buf.contains(&0) {
        // Not indexed either (see [`Sources::read`]).
        return Err(ReadError::Binary {
            path: rel.to_owned(),
        });
    }
    let mut text = match String::from_utf8(buf) {
        Ok(text) => text,
        Err(e) => String::from_utf8_lossy(e.as_bytes()).into_owned(),
    };
    if text.starts_with('\u{feff}') {
        text.drain(..'\u{feff}'.len_utf8());
    }
    Ok(text)
}

#[cfg(test)]
mod tests;
