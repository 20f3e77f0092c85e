//! The index schema: one document per section ("chunk") plus one per file ("file").
//!
//! File documents carry what change detection needs (size, mtime, content hash), so the
//! manifest of what is indexed lives in the same commits as the chunks and can never
//! disagree with them, even after a crash. Changing anything here, or in the analyzer,
//! changes the index directory: it is `index-v<N>-<fingerprint of the schema>/`, so a
//! build with another schema builds a fresh index beside the old one instead of failing
//! on it. Bump [`SCHEMA_VERSION`] for changes the schema does not show (the analyzers).

use tantivy::schema::{
    Field, INDEXED, IndexRecordOption, STORED, STRING, Schema, TextFieldIndexing, TextOptions,
};

use super::analyzer;

pub const SCHEMA_VERSION: u32 = 4;

pub const KIND_CHUNK: &str = "chunk";
pub const KIND_FILE: &str = "file";

#[derive(Debug, Clone, Copy)]
pub struct Fields {
    pub kind: Field,
    /// Path relative to the root, `/`-separated; the key of every update.
    pub path: Field,
    pub title: Field,
    pub title_exact: Field,
    /// One value per heading of the trail, outermost first.
    pub headings: Field,
    pub headings_exact: Field,
    // Bodies have no exact twin: it doubled indexing time for 0.003 nDCG@10 on SciFact.
    pub body: Field,
    pub line_start: Field,
    pub line_end: Field,
    /// The section's anchor in its file (see [`crate::ingest::chunk::anchor`]): a hit's
    /// id is `path#anchor`.
    pub anchor: Field,
    /// File documents only: SHA-256 of the content, size, and mtime in nanoseconds.
    pub hash: Field,
    /// File documents only: how the file was chunked ([`crate::ingest::chunk::ChunkOptions::key`]).
    pub chunking: Field,
    pub size: Field,
    pub mtime_ns: Field,
    /// Sections only: the key of the text the section is embedded from (see
    /// [`crate::embed::store::key_of`]), its 16 bytes as the term: how a stored vector
    /// finds its sections.
    pub vkey: Field,
}

/// A stemmed field: positions for phrases, and its text stored for hits and snippets.
fn stemmed() -> TextOptions {
    let indexing = TextFieldIndexing::default()
        .set_tokenizer(analyzer::STEMMED)
        .set_index_option(IndexRecordOption::WithFreqsAndPositions);
    TextOptions::default()
        .set_indexing_options(indexing)
        .set_stored()
}

/// An exact twin of a stemmed field: scored, never in a phrase (phrases match the
/// stemmed fields), so without positions, and not stored.
fn exact() -> TextOptions {
    let indexing = TextFieldIndexing::default()
        .set_tokenizer(analyzer::EXACT)
        .set_index_option(IndexRecordOption::WithFreqs);
    TextOptions::default().set_indexing_options(indexing)
}

pub fn build() -> (Schema, Fields) {
    let mut s = Schema::builder();
    let fields = Fields {
        kind: s.add_text_field("kind", STRING),
        path: s.add_text_field("path", STRING | STORED),
        title: s.add_text_field("title", stemmed()),
        title_exact: s.add_text_field("title_exact", exact()),
        headings: s.add_text_field("headings", stemmed()),
        headings_exact: s.add_text_field("headings_exact", exact()),
        body: s.add_text_field("body", stemmed()),
        line_start: s.add_u64_field("line_start", STORED),
        line_end: s.add_u64_field("line_end", STORED),
        anchor: s.add_text_field("anchor", STORED),
        hash: s.add_text_field("hash", STORED),
        chunking: s.add_text_field("chunking", STORED),
        size: s.add_u64_field("size", STORED | INDEXED),
        mtime_ns: s.add_u64_field("mtime_ns", STORED),
        vkey: s.add_bytes_field("vkey", INDEXED),
    };
    (s.build(), fields)
}
