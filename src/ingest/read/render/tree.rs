//! Markdown into the neutral tree of [`super`]: pulldown-cmark's events, folded into
//! nodes of the allowed tags with an explicit stack (no recursion, whatever the
//! nesting). At most [`MAX_DEPTH`] elements deep: the content of a deeper element goes
//! to the deepest one, so the tree, its JSON and any page walking it stay shallow. At
//! most [`MAX_NODES`] nodes: the rest of the text is left out, and said to be.

use std::collections::HashMap;

use pulldown_cmark::{
    Alignment, BlockQuoteKind, CodeBlockKind, Event, HeadingLevel, Options, Parser, Tag, TagEnd,
};
use serde::ser::{Serialize, SerializeMap, Serializer};

use super::link::{Target, classify};

/// The most elements open at once. Real documents nest a dozen deep;
/// the JSON of 32 is about 66 levels, under the 128 that serde_json reads by default.
pub(super) const MAX_DEPTH: usize = 32;

/// The most nodes (elements and texts) of one answer: about 20 MB at worst.
pub(super) const MAX_NODES: usize = 200_000;

/// A node of the tree: text, or an element of an allowed tag.
#[derive(Debug, Clone, PartialEq)]
pub enum Node {
    Text(String),
    El(Box<El>),
}

/// An element: its tag, the line its block starts at, its children and its extras.
#[derive(Debug, Clone, PartialEq)]
pub struct El {
    pub t: &'static str,
    pub line: Option<usize>,
    pub c: Vec<Node>,
    pub extras: Vec<(&'static str, Extra)>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Extra {
    Text(String),
    Number(u64),
    Flag(bool),
}

impl El {
    pub(super) fn new(t: &'static str, line: Option<usize>) -> El {
        El {
            t,
            line,
            c: Vec::new(),
            extras: Vec::new(),
        }
    }

    fn with(mut self, name: &'static str, value: Extra) -> El {
        self.extras.push((name, value));
        self
    }

    /// All the text under this element (an image's, which holds no elements).
    fn take_text(&mut self) -> String {
        self.c
            .drain(..)
            .map(|n| match n {
                Node::Text(s) => s,
                Node::El(_) => String::new(),
            })
            .collect()
    }
}

impl Serialize for Node {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Node::Text(text) => s.serialize_str(text),
            Node::El(el) => {
                let mut map = s.serialize_map(None)?;
                map.serialize_entry("t", el.t)?;
                if let Some(line) = el.line {
                    map.serialize_entry("line", &line)?;
                }
                if !el.c.is_empty() {
                    map.serialize_entry("c", &el.c)?;
                }
                for (name, value) in &el.extras {
                    match value {
                        Extra::Text(v) => map.serialize_entry(name, v)?,
                        Extra::Number(v) => map.serialize_entry(name, v)?,
                        Extra::Flag(v) => map.serialize_entry(name, v)?,
                    }
                }
                map.end()
            }
        }
    }
}

/// What a part of a Markdown file is made into.
pub(super) struct Source<'a> {
    pub text: &'a str,
    /// Lines of the file before `text` (0 for the whole file).
    pub base: usize,
    /// Section ids by the line their heading is on.
    pub ids: &'a HashMap<usize, String>,
    /// The file's path from the root, for its relative links.
    pub here: &'a str,
}

/// The blocks of `src`, and whether [`MAX_NODES`] left some out.
pub(super) fn build(src: &Source) -> (Vec<Node>, bool) {
    let options = Options::ENABLE_TABLES
        | Options::ENABLE_STRIKETHROUGH
        | Options::ENABLE_TASKLISTS
        | Options::ENABLE_FOOTNOTES
        | Options::ENABLE_GFM
        | Options::ENABLE_MATH
        | Options::ENABLE_YAML_STYLE_METADATA_BLOCKS
        | Options::ENABLE_PLUSES_DELIMITED_METADATA_BLOCKS;
    let mut b = Builder {
        src,
        starts: line_starts(src.text),
        root: Vec::new(),
        els: Vec::new(),
        frames: Vec::new(),
        nodes: 0,
        table: Table::default(),
    };
    let mut cut = false;
    for (event, range) in Parser::new_ext(src.text, options).into_offset_iter() {
        if b.nodes >= MAX_NODES {
            cut = true;
            break;
        }
        let line = b.line(range.start);
        b.event(event, line);
    }
    while !b.frames.is_empty() {
        b.end();
    }
    (b.root, cut)
}

/// Adds text to `nodes`, to the text before it if any; whether that made a node.
fn push_text(nodes: &mut Vec<Node>, s: &str) -> bool {
    if let Some(Node::Text(last)) = nodes.last_mut() {
        last.push_str(s);
        return false;
    }
    nodes.push(Node::Text(s.to_owned()));
    true
}

/// Where each line of `text` starts, as [`crate::ingest::chunk::split_lines`] splits them.
pub(super) fn line_starts(text: &str) -> Vec<usize> {
    let bytes = text.as_bytes();
    let mut starts = vec![0];
    let mut i = 0;
    while i < bytes.len() {
        match (bytes[i], bytes.get(i + 1)) {
            (b'\r', Some(b'\n')) => i += 2,
            (b'\r' | b'\n', _) => i += 1,
            _ => {
                i += 1;
                continue;
            }
        }
        starts.push(i);
    }
    starts
}

#[derive(Default)]
struct Table {
    aligns: Vec<Alignment>,
    head: bool,
    column: usize,
}

struct Builder<'a> {
    src: &'a Source<'a>,
    starts: Vec<usize>,
    /// The blocks made so far.
    root: Vec<Node>,
    /// The open elements, outermost first.
    els: Vec<El>,
    /// For each open tag, how many elements it opened (0 when it opened none: a link
    /// leading nowhere, a tag past [`MAX_DEPTH`], anything inside an image).
    frames: Vec<usize>,
    nodes: usize,
    table: Table,
}

impl Builder<'_> {
    fn line(&self, offset: usize) -> usize {
        self.src.base + self.starts.partition_point(|&s| s <= offset)
    }

    /// Where a node goes now: into the innermost open element, or the root.
    fn children(&mut self) -> &mut Vec<Node> {
        match self.els.last_mut() {
            Some(el) => &mut el.c,
            None => &mut self.root,
        }
    }

    fn in_image(&self) -> bool {
        self.els.last().is_some_and(|e| e.t == "image")
    }

    fn text(&mut self, s: &str) {
        if push_text(self.children(), s) {
            self.nodes += 1;
        }
    }

    /// An element with no children of its own (`br`, `hr`, `task`).
    fn leaf(&mut self, el: El) {
        self.nodes += 1;
        self.children().push(Node::El(Box::new(el)));
    }

    /// An inline element holding only `text` (`code`, `raw`, `sup`).
    fn atom(&mut self, t: &'static str, text: &str) {
        if self.in_image() {
            return self.text(text);
        }
        let mut el = El::new(t, None);
        el.c.push(Node::Text(text.to_owned()));
        self.nodes += 1;
        self.leaf(el);
    }

    /// Opens the elements `els` (outermost first) for one tag, as deep as allowed.
    fn open(&mut self, els: impl IntoIterator<Item = El>) {
        let mut opened = 0;
        if !self.in_image() {
            for el in els {
                if self.els.len() >= MAX_DEPTH {
                    break;
                }
                self.nodes += 1;
                self.els.push(el);
                opened += 1;
            }
        }
        self.frames.push(opened);
    }

    fn end(&mut self) {
        let opened = self.frames.pop().unwrap_or(0);
        for _ in 0..opened {
            let Some(mut el) = self.els.pop() else { return };
            if el.t == "image" {
                let alt = el.take_text();
                el.extras.insert(0, ("alt", Extra::Text(alt)));
            }
            if el.t == "thead" {
                self.table.head = false;
            }
            self.children().push(Node::El(Box::new(el)));
        }
    }

    fn event(&mut self, event: Event, line: usize) {
        match event {
            Event::Start(tag) => self.start(tag, line),
            Event::End(TagEnd::Table) => {
                self.end();
                self.table = Table::default();
            }
            Event::End(_) => self.end(),
            Event::Text(s) | Event::Html(s) => self.text(&s),
            Event::Code(s) | Event::InlineMath(s) | Event::DisplayMath(s) => self.atom("code", &s),
            Event::InlineHtml(s) => self.atom("raw", &s),
            Event::FootnoteReference(label) => self.atom("sup", &format!("[{label}]")),
            Event::SoftBreak => self.text("\n"),
            Event::HardBreak if self.in_image() => self.text(" "),
            Event::HardBreak => self.leaf(El::new("br", None)),
            Event::Rule => self.leaf(El::new("hr", Some(line))),
            Event::TaskListMarker(_) if self.in_image() => {}
            Event::TaskListMarker(checked) => {
                self.leaf(El::new("task", None).with("checked", Extra::Flag(checked)));
            }
        }
    }

    fn start(&mut self, tag: Tag, line: usize) {
        let block = |t| El::new(t, Some(line));
        match tag {
            Tag::Paragraph => self.open([block("p")]),
            Tag::Heading { level, .. } => {
                let mut el = block(heading(level));
                if let Some(id) = self.src.ids.get(&line) {
                    el = el.with("id", Extra::Text(id.clone()));
                }
                self.open([el]);
            }
            Tag::BlockQuote(kind) => {
                self.open([block("blockquote")]);
                if let Some(kind) = kind.filter(|_| self.frames.last() == Some(&1)) {
                    // GitHub's alerts (`> [!NOTE]`): the marker is gone, its name shown.
                    let mut strong = El::new("strong", None);
                    strong.c.push(Node::Text(alert(kind).into()));
                    let mut p = block("p");
                    p.c.push(Node::El(Box::new(strong)));
                    self.nodes += 2;
                    self.leaf(p);
                }
            }
            Tag::CodeBlock(kind) => {
                let mut el = block("pre");
                if let CodeBlockKind::Fenced(info) = kind
                    && let Some(lang) = language(&info)
                {
                    el = el.with("lang", Extra::Text(lang.to_owned()));
                }
                self.open([el]);
            }
            Tag::HtmlBlock => self.open([block("raw")]),
            Tag::MetadataBlock(_) => self.open([block("pre")]),
            Tag::List(Some(start)) => self.open([block("ol").with("start", Extra::Number(start))]),
            Tag::List(None) => self.open([block("ul")]),
            Tag::Item => self.open([block("li")]),
            Tag::FootnoteDefinition(label) => {
                self.open([block("blockquote")]);
                if self.frames.last() == Some(&1) {
                    self.atom("sup", &format!("[{label}]"));
                }
            }
            Tag::Table(aligns) => {
                self.table.aligns = aligns;
                self.open([block("table")]);
            }
            Tag::TableHead => {
                self.table.head = true;
                self.table.column = 0;
                self.open([block("thead"), block("tr")]);
            }
            Tag::TableRow => {
                self.table.column = 0;
                if self.els.last().is_some_and(|e| e.t == "table")
                    && self.els.len() < MAX_DEPTH
                    && let Some(opened) = self.frames.last_mut()
                {
                    // The body's rows follow the head straight in the table: they go in
                    // a tbody, opened with the first and closed with the table.
                    *opened += 1;
                    self.nodes += 1;
                    self.els.push(block("tbody"));
                }
                self.open([block("tr")]);
            }
            Tag::TableCell => {
                let mut el = block(if self.table.head { "th" } else { "td" });
                let align = match self.table.aligns.get(self.table.column) {
                    Some(Alignment::Left) => Some("left"),
                    Some(Alignment::Center) => Some("center"),
                    Some(Alignment::Right) => Some("right"),
                    _ => None,
                };
                if let Some(align) = align {
                    el = el.with("align", Extra::Text(align.into()));
                }
                self.table.column += 1;
                self.open([el]);
            }
            Tag::Emphasis => self.open([El::new("em", None)]),
            Tag::Strong => self.open([El::new("strong", None)]),
            Tag::Strikethrough => self.open([El::new("del", None)]),
            Tag::Superscript => self.open([El::new("sup", None)]),
            Tag::Link {
                link_type,
                dest_url,
                ..
            } => match classify(&dest_url, link_type, self.src.here) {
                Some(target) => self.open([anchor(target)]),
                None => self.open([]),
            },
            Tag::Image {
                link_type,
                dest_url,
                ..
            } => {
                let mut el = El::new("image", None);
                match classify(&dest_url, link_type, self.src.here) {
                    Some(Target::Href(h)) if !is_mailto(&h) => {
                        el = el.with("src", Extra::Text(h));
                    }
                    Some(Target::Doc { .. }) => {
                        el = el.with("src", Extra::Text(dest_url.to_string()));
                    }
                    _ => {}
                }
                self.open([el]);
            }
            // Not enabled; their content is kept.
            Tag::Subscript
            | Tag::DefinitionList
            | Tag::DefinitionListTitle
            | Tag::DefinitionListDefinition => self.open([]),
        }
    }
}

fn is_mailto(href: &str) -> bool {
    href.get(..7)
        .is_some_and(|s| s.eq_ignore_ascii_case("mailto:"))
}

fn anchor(target: Target) -> El {
    let el = El::new("a", None);
    match target {
        Target::Href(href) => el.with("href", Extra::Text(href)),
        Target::Doc { doc, anchor } => {
            let el = el.with("doc", Extra::Text(doc));
            match anchor {
                Some(a) => el.with("anchor", Extra::Text(a)),
                None => el,
            }
        }
    }
}

fn heading(level: HeadingLevel) -> &'static str {
    match level {
        HeadingLevel::H1 => "h1",
        HeadingLevel::H2 => "h2",
        HeadingLevel::H3 => "h3",
        HeadingLevel::H4 => "h4",
        HeadingLevel::H5 => "h5",
        HeadingLevel::H6 => "h6",
    }
}

fn alert(kind: BlockQuoteKind) -> &'static str {
    match kind {
        BlockQuoteKind::Note => "Note",
        BlockQuoteKind::Tip => "Tip",
        BlockQuoteKind::Important => "Important",
        BlockQuoteKind::Warning => "Warning",
        BlockQuoteKind::Caution => "Caution",
    }
}

/// A fence's language: the first word of its info string, when it is a plain name.
fn language(info: &str) -> Option<&str> {
    let word = info.split_whitespace().next()?;
    let word = word.split(['{', ',']).next().unwrap_or(word);
    (!word.is_empty()
        && word.len() <= 32
        && word
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'+' | b'-')))
    .then_some(word)
}
