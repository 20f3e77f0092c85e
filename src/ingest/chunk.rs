//! PLACEHOLDER until the real chunker lands.
use std::path::Path;
pub enum Format {
    Markdown,
    Rst,
    AsciiDoc,
    Text,
}
impl Format {
    pub fn from_path(_p: &Path) -> Format {
        Format::Markdown
    }
}
pub struct ChunkOptions {
    pub chunk_size: usize,
    pub chunk_overlap: usize,
}
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Chunk {
    pub headings: Vec<String>,
    pub line_start: usize,
    pub line_end: usize,
    pub text: String,
}
pub struct Document {
    pub title: String,
    pub chunks: Vec<Chunk>,
}
pub fn chunk(text: &str, _format: Format, fallback_title: &str, _opts: &ChunkOptions) -> Document {
    let n = text.lines().count().max(1);
    Document {
        title: fallback_title.into(),
        chunks: vec![Chunk {
            headings: vec![],
            line_start: 1,
            line_end: n,
            text: text.into(),
        }],
    }
}
