//! Where an index's bytes go: per field and part (term dictionary, postings, positions,
//! norms, fast columns, stored values), for `doc-serve status --space`.
//!
//! The parts are tantivy's own accounting of each segment's files. The doc store is one
//! stream for all fields, so its split by field is measured by reading every stored
//! document and adding up the bytes of each field's values (as stored, before any
//! compression of the store's blocks).

use std::path::{Path, PathBuf};

use serde::Serialize;
use tantivy::schema::OwnedValue;
use tantivy::{Searcher, TantivyDocument};

use super::{Engine, Result, io};

/// An index's size on disk, broken down.
#[derive(Debug, Serialize)]
pub struct Space {
    /// The index measured: this doc-serve version's, in the data dir.
    pub dir: PathBuf,
    /// Every file under the index's directory.
    pub on_disk: u64,
    pub segments: usize,
    /// Documents (sections and file records), deleted ones left out.
    pub docs: u64,
    /// One row per field of the schema, in schema order.
    pub fields: Vec<FieldSpace>,
    /// The doc store: its blocks and their offsets, as on disk.
    pub store: u64,
    pub store_offsets: u64,
    /// The bits marking deleted documents.
    pub deletes: u64,
    /// What the parts above leave: meta.json, per-segment footers, files of a batch
    /// not committed (removed when the next batch starts) and the like.
    pub other: u64,
    /// Other indexes beside it in the data dir: another doc-serve version's, which a
    /// resident removes once no commit has touched it for a week.
    pub others: Vec<OtherIndex>,
}

/// An index of another schema in the same data dir.
#[derive(Debug, Serialize)]
pub struct OtherIndex {
    pub dir: PathBuf,
    pub on_disk: u64,
}

/// One field's bytes in each part of the index.
#[derive(Debug, Default, Serialize)]
pub struct FieldSpace {
    pub field: String,
    pub terms: u64,
    pub postings: u64,
    pub positions: u64,
    pub norms: u64,
    pub fast: u64,
    /// The bytes of its stored values, before the store's compression.
    pub stored_raw: u64,
}

impl FieldSpace {
    /// Its bytes on disk (without the store, which is shared).
    pub fn indexed(&self) -> u64 {
        self.terms + self.postings + self.positions + self.norms + self.fast
    }
}

impl Engine {
    /// The breakdown of the index as the current reader sees it.
    pub fn space(&self) -> Result<Space> {
        let searcher = self.searcher();
        let usage = searcher
            .space_usage()
            .map_err(io(format!("cannot measure {}", self.dir().display())))?;
        let schema = searcher.schema();
        let mut fields: Vec<FieldSpace> = schema
            .fields()
            .map(|(_, entry)| FieldSpace {
                field: entry.name().to_owned(),
                ..FieldSpace::default()
            })
            .collect();
        let add = |part: &tantivy::space_usage::PerFieldSpaceUsage,
                   fields: &mut Vec<FieldSpace>,
                   pick: fn(&mut FieldSpace) -> &mut u64| {
            for (field, used) in part.fields() {
                if let Some(row) = fields.get_mut(field.field_id() as usize) {
                    *pick(row) += used.total().get_bytes();
                }
            }
        };
        let (mut store, mut store_offsets, mut deletes, mut parts) = (0, 0, 0, 0);
        for seg in usage.segments() {
            add(seg.termdict(), &mut fields, |f| &mut f.terms);
            add(seg.postings(), &mut fields, |f| &mut f.postings);
            add(seg.positions(), &mut fields, |f| &mut f.positions);
            add(seg.fieldnorms(), &mut fields, |f| &mut f.norms);
            add(seg.fast_fields(), &mut fields, |f| &mut f.fast);
            store += seg.store().data_usage().get_bytes();
            store_offsets += seg.store().offsets_usage().get_bytes();
            deletes += seg.deletes().get_bytes();
            parts += seg.total().get_bytes();
        }
        add_stored_raw(&searcher, &mut fields)?;
        let on_disk = dir_bytes(self.dir());
        let others = match self.dir().parent() {
            Some(data_dir) => std::fs::read_dir(data_dir)
                .into_iter()
                .flatten()
                .flatten()
                .filter(|e| {
                    e.file_name().to_str().is_some_and(super::is_index_name)
                        && e.path() != self.dir()
                })
                .map(|e| OtherIndex {
                    on_disk: dir_bytes(&e.path()),
                    dir: e.path(),
                })
                .collect(),
            None => Vec::new(),
        };
        Ok(Space {
            dir: self.dir().to_path_buf(),
            on_disk,
            others,
            segments: usage.segments().len(),
            docs: searcher.num_docs(),
            fields,
            store,
            store_offsets,
            deletes,
            other: on_disk.saturating_sub(parts),
        })
    }
}

/// Adds the bytes of each field's stored values, over every live document, to its row.
fn add_stored_raw(searcher: &Searcher, fields: &mut [FieldSpace]) -> Result<()> {
    for reader in searcher.segment_readers() {
        let store = reader
            .get_store_reader(1)
            .map_err(io("cannot read the doc store"))?;
        for doc in store.iter::<TantivyDocument>(reader.alive_bitset()) {
            for (field, value) in doc?.field_values() {
                let bytes = match OwnedValue::from(value) {
                    OwnedValue::Str(s) => s.len() as u64,
                    OwnedValue::Bytes(b) => b.len() as u64,
                    _ => 8,
                };
                if let Some(row) = fields.get_mut(field.field_id() as usize) {
                    row.stored_raw += bytes;
                }
            }
        }
    }
    Ok(())
}

/// The size of every file under `dir` (links not followed).
fn dir_bytes(dir: &Path) -> u64 {
    std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| match e.file_type() {
            Ok(t) if t.is_dir() => dir_bytes(&e.path()),
            Ok(t) if t.is_file() => e.metadata().map_or(0, |m| m.len()),
            _ => 0,
        })
        .sum()
}

#[cfg(test)]
mod tests {
    use crate::config::CoordinationMode;
    use crate::engine::{Engine, FileRecord, WriteOptions};
    use crate::ingest::chunk::{self, ChunkOptions, Format};

    #[test]
    fn every_part_is_counted_and_the_body_is_stored() {
        let dir = tempfile::tempdir().unwrap();
        let write = WriteOptions {
            coordination: CoordinationMode::None,
            lock_timeout: std::time::Duration::from_secs(5),
        };
        let engine = Engine::open(dir.path(), write).unwrap();
        let opts = ChunkOptions {
            chunk_size: 40,
            chunk_overlap: 5,
        };
        let text = "# Title\n\nSome body text about borrowing.\n";
        let mut lease = engine.small_lease().unwrap();
        let doc = chunk::chunk(text, Format::Markdown, "f", &opts);
        lease.upsert("a.md", &FileRecord::default(), &doc).unwrap();
        lease.commit().unwrap();
        engine.reload().unwrap();

        let space = engine.space().unwrap();
        let field = |name: &str| space.fields.iter().find(|f| f.field == name).unwrap();
        assert!(space.segments >= 1 && space.docs >= 2, "{space:?}");
        let body = field("body");
        assert!(body.postings > 0 && body.positions > 0, "{space:?}");
        assert_eq!(
            body.stored_raw,
            "Some body text about borrowing.".len() as u64
        );
        assert_eq!(field("title_exact").stored_raw, 0, "not stored");
        assert!(space.store > body.stored_raw, "{space:?}");
        let parts: u64 = space.fields.iter().map(|f| f.indexed()).sum::<u64>()
            + space.store
            + space.store_offsets
            + space.deletes
            + space.other;
        assert!(
            parts >= space.on_disk && space.on_disk > space.store,
            "{space:?}"
        );
    }
}
