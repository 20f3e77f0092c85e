//! The sections of a file as [`super::read`] sees them: the chunker's, unsplit, so
//! that they are the sections hits point at; the one holding a line; the one under a
//! heading.

use std::path::Path;

use super::SectionRef;
use crate::ingest::chunk::{self, ChunkOptions, Format};

/// One section of a file, as the chunker makes them (unsplit).
pub(super) struct Section {
    pub(super) anchor: String,
    /// The whole trail, which a heading is matched against.
    pub(super) headings: Vec<String>,
    /// Where the trail shown starts: after the document's title when the trail starts
    /// with it, as a hit's `headings` (the title is the hit's `title`).
    pub(super) shown: usize,
    pub(super) line_start: usize,
    pub(super) line_end: usize,
}

impl Section {
    pub(super) fn id(&self, path: &str) -> String {
        format!("{path}#{}", self.anchor)
    }

    /// The trail as answers show it (see [`Section::shown`]).
    pub(super) fn trail(&self) -> Vec<String> {
        self.headings[self.shown.min(self.headings.len())..].to_vec()
    }

    pub(super) fn to_ref(&self, path: &str) -> SectionRef {
        SectionRef {
            id: self.id(path),
            headings: self.trail(),
            line_start: self.line_start,
            line_end: self.line_end,
        }
    }

    pub(super) fn into_ref(self, path: &str) -> SectionRef {
        self.to_ref(path)
    }
}

/// The sections of `text`, in order; never empty: a file without any (blank, or
/// empty) is one section, `top`, of all its lines.
pub(super) fn outline(text: &str, path: &Path, total: usize) -> Vec<Section> {
    let whole = ChunkOptions {
        chunk_size: usize::MAX,
        chunk_overlap: 0,
    };
    // The title the file is indexed with: its file stem when nothing else names it.
    let name = path.to_str().unwrap_or_default();
    let stem = name.rsplit('/').next().unwrap_or(name);
    let stem = stem.rsplit_once('.').map_or(stem, |(s, _)| s);
    let doc = chunk::chunk(text, Format::from_path(path), stem, &whole);
    let title = doc.title;
    let mut sections: Vec<Section> = doc
        .chunks
        .into_iter()
        .map(|c| Section {
            anchor: c.anchor,
            shown: usize::from(c.headings.first() == Some(&title)),
            headings: c.headings,
            line_start: c.line_start,
            line_end: c.line_end,
        })
        .collect();
    if sections.is_empty() {
        sections.push(Section {
            anchor: chunk::anchor::TOP.to_owned(),
            headings: Vec::new(),
            shown: 0,
            line_start: 1,
            line_end: total,
        });
    }
    sections
}

/// The section holding `line`: the last starting at or before it (lines before the
/// first section, front matter or blank lines, count to the first).
pub(super) fn holding(outline: &[Section], line: usize) -> usize {
    outline
        .iter()
        .rposition(|s| s.line_start <= line)
        .unwrap_or(0)
}

/// The first section under `heading` (see [`Scope::Heading`]) and the last line of it
/// with its subsections.
pub(super) fn under_heading(outline: &[Section], heading: &str) -> Option<(usize, usize)> {
    let wanted: Vec<String> = heading
        .split('>')
        .map(|s| s.trim().to_lowercase())
        .filter(|s| !s.is_empty())
        .collect();
    let matches = |trail: &[String]| {
        !wanted.is_empty()
            && trail.len() >= wanted.len()
            && trail[trail.len() - wanted.len()..]
                .iter()
                .zip(&wanted)
                .all(|(t, w)| t.trim().to_lowercase() == *w)
    };
    // The section, then its subsections (a longer trail under it); a sibling of the
    // same name is another section.
    let at = outline.iter().position(|s| matches(&s.headings))?;
    let trail = &outline[at].headings;
    let end = outline[at + 1..]
        .iter()
        .take_while(|s| s.headings.len() > trail.len() && s.headings[..trail.len()] == trail[..])
        .fold(outline[at].line_end, |end, s| end.max(s.line_end));
    Some((at, end))
}
