//! Section anchors: the `anchor` of a section id `path#anchor` (README, "HTTP API").
//!
//! An anchor is the GitHub-style slug of the section's own heading, made unique within
//! its file the way GitHub makes them (`example`, `example-1`, `example-2`), so that an
//! id stays the same while lines move around it. Text before the first heading is
//! `top`, a name always taken first: a heading `Top` is `top-1` whether the file has
//! such text or not, so adding an introduction later changes no other id.

use rustc_hash::FxHashMap;

/// The anchor of the text before the first heading.
pub const TOP: &str = "top";

/// A heading whose slug is empty (only punctuation or symbols) gets this instead: an
/// id `path#` would read as a path alone.
const EMPTY: &str = "section";

/// GitHub's slug of a heading: lower case; letters, digits, `-`, `_` and spaces kept,
/// everything else dropped; each space becomes `-` (github-slugger: `a  b` is `a--b`).
pub fn slug(heading: &str) -> String {
    let mut out = String::with_capacity(heading.len());
    for c in heading.trim().chars().flat_map(char::to_lowercase) {
        if c.is_alphanumeric() || c == '-' || c == '_' {
            out.push(c);
        } else if c == ' ' {
            out.push('-');
        }
    }
    if out.is_empty() {
        out.push_str(EMPTY);
    }
    out
}

/// The anchors given so far in one file; see [`Anchors::next`].
pub(crate) struct Anchors {
    /// For each slug seen: how many times its plain form was taken again.
    seen: FxHashMap<String, usize>,
}

impl Anchors {
    /// A file's anchors, [`TOP`] already taken.
    pub(crate) fn new() -> Self {
        let mut seen = FxHashMap::default();
        seen.insert(TOP.to_owned(), 0);
        Anchors { seen }
    }

    /// The anchor of the next heading, `text`: its slug, or the slug with the first
    /// free `-N` after it (github-slugger's rule: a heading `a-1` after two `a` is
    /// `a-1-1`).
    pub(crate) fn next(&mut self, text: &str) -> String {
        let base = slug(text);
        let mut anchor = base.clone();
        while self.seen.contains_key(&anchor) {
            let n = self.seen.entry(base.clone()).or_insert(0);
            *n += 1;
            anchor = format!("{base}-{n}");
        }
        self.seen.insert(anchor.clone(), 0);
        anchor
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slugs_as_github_makes_them() {
        assert_eq!(slug("Install"), "install");
        assert_eq!(slug("Install on Linux!"), "install-on-linux");
        assert_eq!(slug("  `read_doc` (MCP) "), "read_doc-mcp");
        assert_eq!(slug("a - b"), "a---b");
        assert_eq!(slug("C++ & Rust: 2.0"), "c--rust-20");
        assert_eq!(slug("Ünïcödé Straße 日本"), "ünïcödé-straße-日本");
        assert_eq!(slug("!!!"), "section");
        assert_eq!(slug(""), "section");
    }

    #[test]
    fn repeats_get_the_first_free_number() {
        let mut a = Anchors::new();
        let got: Vec<String> = [
            "Example",
            "Example",
            "example",
            "Example 1",
            "Top",
            "top",
            "!",
        ]
        .iter()
        .map(|h| a.next(h))
        .collect();
        assert_eq!(
            got,
            [
                "example",
                "example-1",
                "example-2",
                "example-1-1",
                "top-1",
                "top-2",
                "section"
            ]
        );
    }
}
