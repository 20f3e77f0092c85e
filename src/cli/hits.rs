//! `doc-serve query`'s answer for people (README, "Terminal output"): each hit starts
//! with `path:line:`, which terminals and editors turn into a link, then its heading
//! trail; the snippet follows on its own line, matched words coloured and markup noise
//! left out ([`markup`]). With colour on a terminal that shows them, `path:line` is
//! also an OSC 8 link to the file.
//!
//! "No results" is not an answer: it goes to stderr, so stdout stays empty for pipes.

use std::collections::HashMap;
use std::io::{self, IsTerminal as _, Write};
use std::path::{Component, Path};

use super::markup::{self, printable};
use super::output;
use crate::api::SearchReply;
use crate::engine::search::Hit;
use crate::terminal::{Hyperlinks, TermEnv, When};

/// ripgrep's colours: paths magenta, line numbers green, matches bold red.
const PATH: &str = "35";
const LINE: &str = "32";
const MATCH: &str = "1;31";

/// How hits are shown on stdout.
pub struct Look {
    pub colour: bool,
    pub links: Option<Hyperlinks>,
}

impl Look {
    /// From `--color` and `--hyperlink`, for stdout as it is.
    pub fn new(term: &TermEnv, color: When, hyperlink: When) -> Look {
        let colour = term.colour(color, io::stdout().is_terminal());
        Look {
            colour,
            links: term.hyperlinks(hyperlink, colour),
        }
    }

    fn paint(&self, style: &str, text: &str) -> String {
        if self.colour {
            format!("\x1b[{style}m{text}\x1b[0m")
        } else {
            text.to_owned()
        }
    }
}

/// Most bytes of documents read to place one answer's hits (`-n 1000` over large
/// files); hits past it point at their section's first line.
const READ_BUDGET: u64 = 32 << 20;

/// The line of each hit's first matched word in its file under `root`: its snippet is
/// looked for among the section's lines. The section's first line when it is not there
/// (the file changed since it was indexed, is gone, or is over `max_bytes`). Each file
/// is read once.
pub fn match_lines(root: &Path, hits: &[Hit], max_bytes: u64) -> Vec<u64> {
    let mut docs: HashMap<&str, Option<Doc>> = HashMap::new();
    let mut budget = READ_BUDGET;
    hits.iter()
        .map(|hit| {
            let doc = docs.entry(&hit.path).or_insert_with(|| {
                let doc = Doc::read(root, &hit.path, max_bytes.min(budget))?;
                budget -= doc.text.len() as u64;
                Some(doc)
            });
            doc.as_ref()
                .and_then(|d| d.match_line(hit))
                .unwrap_or(hit.line_start)
        })
        .collect()
}

/// A document's text with its line breaks made `\n` (as sections hold them), and where
/// each line starts.
struct Doc {
    text: String,
    starts: Vec<usize>,
}

impl Doc {
    fn read(root: &Path, path: &str, max_bytes: u64) -> Option<Doc> {
        let path = Path::new(path);
        if !path.components().all(|c| matches!(c, Component::Normal(_))) {
            return None;
        }
        // Regular files only, without blocking: a FIFO put where a document was would
        // hang the query.
        let bytes = crate::fsutil::read_small(&root.join(path), max_bytes).ok()??;
        let mut text = String::from_utf8_lossy(&bytes).into_owned();
        if text.contains('\r') {
            text = text.replace("\r\n", "\n").replace('\r', "\n");
        }
        let starts = std::iter::once(0)
            .chain(text.match_indices('\n').map(|(i, _)| i + 1))
            .collect();
        Some(Doc { text, starts })
    }

    fn match_line(&self, hit: &Hit) -> Option<u64> {
        let from = usize::try_from(hit.line_start.checked_sub(1)?).ok()?;
        let to = usize::try_from(hit.line_end).ok()?;
        if from >= to {
            return None;
        }
        let begin = *self.starts.get(from)?;
        let end = self.starts.get(to).map_or(self.text.len(), |s| s - 1);
        let section = self.text.get(begin..end)?;
        let at = section.find(&hit.snippet)?;
        let word = hit.highlights.first().map_or(0, |h| h[0]);
        let within = hit
            .snippet
            .chars()
            .take(word)
            .filter(|c| *c == '\n')
            .count();
        Some(hit.line_start + (section[..at].matches('\n').count() + within) as u64)
    }
}

/// Writes the hits, one `path:line:` line and one snippet line each, then the notes
/// that follow a list (mode, budget, next page). `lines[i]` is hit `i`'s line (see
/// [`match_lines`]); `root` makes the links absolute.
pub fn print(
    out: &mut dyn Write,
    answer: &SearchReply,
    look: &Look,
    root: &Path,
    lines: &[u64],
) -> io::Result<()> {
    for (i, h) in answer.response.hits.iter().enumerate() {
        let line = lines.get(i).copied().unwrap_or(h.line_start);
        let path = printable(&h.path);
        let mut place = format!(
            "{}:{}",
            look.paint(PATH, &path),
            look.paint(LINE, &line.to_string())
        );
        if let Some(links) = &look.links {
            place = Hyperlinks::wrap(&links.url(&root.join(&h.path), line), &place);
        }
        let trail = if h.headings.is_empty() {
            h.title.clone()
        } else {
            h.headings.join(" > ")
        };
        writeln!(
            out,
            "{place}: {}  (lines {}-{}, {:.2})  {}",
            printable(&trail),
            h.line_start,
            h.line_end,
            h.score,
            printable(&h.id)
        )?;
        let runs = markup::readable(&h.snippet, &h.highlights);
        if !runs.is_empty() {
            let snippet: String = runs
                .iter()
                .map(|r| {
                    if r.matched {
                        look.paint(MATCH, &r.text)
                    } else {
                        r.text.clone()
                    }
                })
                .collect();
            writeln!(out, "    {snippet}")?;
        }
        if let Some(r) = &h.ranks {
            let rank = |r: Option<usize>| r.map_or("-".to_owned(), |n| format!("#{n}"));
            writeln!(
                out,
                "    rank by words {}, by meaning {}",
                rank(r.lexical),
                rank(r.vector)
            )?;
        }
    }
    for line in footer(answer) {
        writeln!(out, "{line}")?;
    }
    Ok(())
}

/// An answer without hits, on stderr: what found nothing, and how it was searched.
pub fn print_none(answer: &SearchReply) {
    let resp = &answer.response;
    // {:?} shows a control character in the query escaped.
    if resp.offset > 0 {
        output::note(&format!(
            "no results for {:?} past {}",
            resp.query, resp.offset
        ));
    } else {
        output::note(&format!("no results for {:?}", resp.query));
    }
    for line in footer(answer) {
        output::note(&line);
    }
}

/// The lines after the hits: the search mode (when it is not plain words, or ranks
/// were asked for), a cut to fit `--max-tokens`, where the next page starts.
fn footer(answer: &SearchReply) -> Vec<String> {
    let resp = &answer.response;
    let mut lines = Vec::new();
    if resp.hits.iter().any(|h| h.ranks.is_some()) || resp.mode != Default::default() {
        let embedded = match &answer.index.embedding {
            Some(e) => format!(
                " ({} of {} sections embedded, {})",
                e.embedded[0],
                e.embedded[1],
                printable(&e.model)
            ),
            None => String::new(),
        };
        lines.push(format!("mode: {}{embedded}", resp.mode.as_str()));
    }
    if resp.truncated {
        lines.push("(cut to fit --max-tokens: more hits may match)".to_owned());
    }
    if let Some(next) = resp.next_offset {
        lines.push(format!("more: --offset {next}"));
    }
    lines
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hit(path: &str, lines: (u64, u64), snippet: &str, word: &str) -> Hit {
        let at = snippet
            .find(word)
            .map_or(0, |b| snippet[..b].chars().count());
        Hit {
            id: String::new(),
            path: path.into(),
            title: String::new(),
            headings: Vec::new(),
            line_start: lines.0,
            line_end: lines.1,
            score: 1.0,
            snippet: snippet.into(),
            highlights: vec![[at, at + word.chars().count()]],
            ranks: None,
        }
    }

    #[test]
    fn a_hit_points_at_its_first_matched_word_whatever_the_line_breaks() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("crlf.md"),
            "# T\r\n\r\nintro\r\nthe word\r\nend\r\n",
        )
        .unwrap();
        std::fs::write(dir.path().join("cr.md"), "# T\r\rintro\rthe word\r").unwrap();
        let hits = [
            hit("crlf.md", (1, 5), "intro\nthe word\nend", "word"),
            hit("cr.md", (1, 4), "intro\nthe word", "word"),
            // Not its text any more, not a file, outside the root: the first line.
            hit("crlf.md", (2, 5), "gone", "gone"),
            hit("none.md", (3, 5), "x", "x"),
            hit("../crlf.md", (2, 5), "the word", "word"),
            hit("/etc/passwd", (2, 5), "root", "root"),
            hit("crlf.md", (9, 12), "the word", "word"),
            hit("crlf.md", (0, 0), "the word", "word"),
        ];
        let lines = match_lines(dir.path(), &hits, 1 << 20);
        assert_eq!(lines, [4, 4, 2, 3, 2, 2, 9, 0]);
        // Over the size limit: the first line.
        assert_eq!(match_lines(dir.path(), &hits[..1], 8), [1]);
    }
}
