//! Writing the index: one batch at a time, under the cross-process lock.
//!
//! A [`Lease`] is the index lock plus a tantivy `IndexWriter`, taken for one batch and
//! dropped after its commit, so a writer in another process gets its turn between
//! batches. tantivy's own `.tantivy-writer.lock` is never touched: if it is busy despite
//! our flock (another process with coordination "none"), we wait like for our lock.
//! Dropping a lease without [`Lease::commit`] rolls the batch back and removes what it
//! wrote: on a full disk, the files of a batch that could not be committed would
//! otherwise hold the space the next attempt needs. A lease also starts by removing
//! the files no commit refers to (left by a writer that failed or was killed).

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::time::Instant;

use tantivy::indexer::NoMergePolicy;
use tantivy::schema::Term;
use tantivy::{IndexWriter, Opstamp, TantivyDocument, TantivyError};

use super::schema::{KIND_CHUNK, KIND_FILE};
use super::{Engine, EngineError, FileRecord, Result};
use crate::flock::FileLock;

/// Memory for one writer; tantivy splits it among its indexing threads.
const WRITER_MEMORY: usize = 96 << 20;
/// Most indexing threads of one writer. Each makes its own segment at every commit,
/// and a query's fixed cost grows with the number of segments (on the 47.9 MB corpus,
/// six segments took twice as long to search as two).
const MAX_WRITER_THREADS: usize = 4;
const SMALL_WRITER_MEMORY: usize = 16 << 20;

/// Past this many segments, a commit merges all but the largest. tantivy's own merge
/// policy runs merges in the background, which a writer that lives for one batch
/// would either wait for at every commit (seconds, for one changed file) or abandon.
const MAX_SEGMENTS: usize = 8;

/// How long a failed batch's files are waited for, at most (see `Drop for Lease`).
const SETTLE: std::time::Duration = std::time::Duration::from_secs(5);

/// What is indexed of one file: its title and its sections, in order. Ingest makes it
/// of a chunked file (borrowing its text); the engine knows nothing of formats or
/// chunking.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileSections<'a> {
    pub title: &'a str,
    pub sections: Vec<Section<'a>>,
}

/// One searchable unit: a section, or a piece of a long section.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Section<'a> {
    /// Heading trail, outermost first, including this section's own heading;
    /// empty before the first heading.
    pub headings: &'a [String],
    /// The section's anchor in its file (the part of its id after `#`).
    pub anchor: &'a str,
    /// 1-based, inclusive.
    pub line_start: usize,
    /// 1-based, inclusive.
    pub line_end: usize,
    pub text: &'a str,
}

pub struct Lease<'e> {
    engine: &'e Engine,
    writer: IndexWriter,
    _lock: Option<FileLock>,
    pub changed: usize,
    committed: bool,
    /// A write failed: indexing threads of this batch may still be finishing.
    failed: bool,
}

impl Engine {
    /// Takes the index lock and a writer, waiting up to the lock timeout for either.
    pub fn lease(&self) -> Result<Lease<'_>> {
        self.lease_sized(None)
    }

    /// A lease for a handful of files: one indexing thread and a small arena start
    /// faster, which is most of the latency of applying a single saved file.
    pub fn small_lease(&self) -> Result<Lease<'_>> {
        self.lease_sized(Some((1, SMALL_WRITER_MEMORY)))
    }

    fn lease_sized(&self, size: Option<(usize, usize)>) -> Result<Lease<'_>> {
        let deadline = Instant::now() + self.write.lock_timeout;
        let lock = Self::lock(&self.lock_file, &self.write)?;
        self.still_in_place()?;
        let writer = loop {
            let writer = match size {
                Some((threads, memory)) => self.index.writer_with_num_threads(threads, memory),
                None => {
                    let threads = std::thread::available_parallelism()
                        .map_or(1, |n| n.get())
                        .min(MAX_WRITER_THREADS);
                    self.index.writer_with_num_threads(threads, WRITER_MEMORY)
                }
            };
            match writer {
                Ok(w) => break w,
                Err(TantivyError::LockFailure(..)) if Instant::now() < deadline => {
                    std::thread::sleep(std::time::Duration::from_millis(20));
                }
                Err(TantivyError::LockFailure(..)) => {
                    return Err(EngineError::Busy {
                        path: self.dir.join(".tantivy-writer.lock"),
                        timeout: self.write.lock_timeout,
                    });
                }
                Err(e) => return Err(EngineError::writing(&self.dir, e)),
            }
        };
        writer.set_merge_policy(Box::new(NoMergePolicy));
        remove_uncommitted_deletes(&self.dir, self.index.load_metas()?.opstamp);
        let lease = Lease {
            engine: self,
            writer,
            _lock: lock,
            changed: 0,
            committed: false,
            failed: false,
        };
        lease.collect_garbage();
        // What the lease reads (records to compare with) is then what it writes over:
        // nobody else commits while the lock is held.
        self.reload()?;
        Ok(lease)
    }
}

/// Removes the delete files of a writer that died before its commit. Their names carry
/// the commit's opstamp (`<segment>.<opstamp>.del`), and the next writer counts from the
/// last commit's opstamp again, so it would reach the same names and tantivy would
/// refuse to write them ("file already exists"): the index could not change any more.
/// Only opstamps past the last commit are removed: no commit refers to them, and no
/// writer but ours runs while we hold tantivy's writer lock.
fn remove_uncommitted_deletes(dir: &Path, committed: Opstamp) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some((segment, opstamp)) = name
            .to_str()
            .and_then(|n| n.strip_suffix(".del"))
            .and_then(|n| n.split_once('.'))
        else {
            continue;
        };
        let uncommitted = opstamp.parse::<Opstamp>().is_ok_and(|o| o > committed);
        if uncommitted && segment.len() == 32 && segment.bytes().all(|b| b.is_ascii_hexdigit()) {
            match std::fs::remove_file(entry.path()) {
                Ok(()) => tracing::warn!(
                    "removed {}: left by a writer that died before its commit",
                    entry.path().display()
                ),
                Err(e) => tracing::warn!("cannot remove {}: {e}", entry.path().display()),
            }
        }
    }
}

impl Lease<'_> {
    /// Replaces everything indexed for `path` with `doc`'s sections and `record`.
    pub fn upsert<'d>(
        &mut self,
        path: &str,
        record: &FileRecord,
        doc: impl Into<FileSections<'d>>,
    ) -> Result<()> {
        let doc = doc.into();
        self.delete(path);
        self.add_record(path, record)?;
        let f = self.engine.fields;
        for chunk in doc.sections {
            let mut d = TantivyDocument::new();
            d.add_text(f.kind, KIND_CHUNK);
            d.add_text(f.path, path);
            d.add_text(f.title, doc.title);
            d.add_text(f.title_exact, doc.title);
            // The document title usually is the first heading too: index it once.
            let below_title = match chunk.headings.first() {
                Some(first) if first == doc.title => &chunk.headings[1..],
                _ => chunk.headings,
            };
            for h in below_title {
                d.add_text(f.headings, h);
                d.add_text(f.headings_exact, h);
            }
            d.add_text(f.body, chunk.text);
            d.add_u64(f.line_start, chunk.line_start as u64);
            d.add_u64(f.line_end, chunk.line_end as u64);
            d.add_text(f.anchor, chunk.anchor);
            let text = crate::embed::store::section_text(doc.title, below_title, chunk.text);
            d.add_bytes(f.vkey, &crate::embed::store::key_of(&text));
            self.add(d)?;
        }
        Ok(())
    }

    /// Replaces only the file record of `path` (its sections stay): for a file whose
    /// size or mtime changed but whose content did not, so it is not read again.
    pub fn update_record(&mut self, path: &str, record: &FileRecord) -> Result<()> {
        let query = Box::new(self.engine.record_query(path));
        self.writer
            .delete_query(query)
            .map_err(|e| self.failed(e))?;
        self.changed += 1;
        self.add_record(path, record)
    }

    fn add_record(&mut self, path: &str, record: &FileRecord) -> Result<()> {
        let f = self.engine.fields;
        let mut file = TantivyDocument::new();
        file.add_text(f.kind, KIND_FILE);
        file.add_text(f.path, path);
        file.add_text(f.hash, &record.hash);
        file.add_text(f.chunking, &record.chunking);
        file.add_u64(f.size, record.size);
        file.add_u64(f.mtime_ns, record.mtime_ns);
        self.add(file)
    }

    fn add(&mut self, doc: TantivyDocument) -> Result<()> {
        match self.writer.add_document(doc) {
            Ok(_) => Ok(()),
            Err(e) => Err(self.failed(e)),
        }
    }

    /// What a failed write means. A document refused because an indexing thread died
    /// (it could not write its segment: a full disk) says only "An index writer was
    /// killed": the thread's own error is collected by preparing a commit, which
    /// joins the threads.
    fn failed(&mut self, e: TantivyError) -> EngineError {
        self.failed = true;
        let e = match e {
            TantivyError::ErrorInThread(_) => match self.writer.prepare_commit() {
                Err(cause) => cause,
                Ok(prepared) => {
                    let _ = prepared.abort();
                    e
                }
            },
            e => e,
        };
        EngineError::writing(&self.engine.dir, e)
    }

    /// Removes the files no commit refers to (see the module doc); a failure is a
    /// warning, as it only leaves them for the next lease. On a full disk the files
    /// go, but their list cannot be written again: the next collection finishes that,
    /// and the error that matters is the batch's.
    fn collect_garbage(&self) {
        if let Err(e) = self.writer.garbage_collect_files().wait() {
            match EngineError::writing(&self.engine.dir, e) {
                e @ EngineError::Full { .. } => tracing::debug!("{e}"),
                e => tracing::warn!("cannot remove unused files of the index: {e}"),
            }
        }
    }

    /// Removes everything indexed for `path`.
    pub fn delete(&mut self, path: &str) {
        self.writer
            .delete_term(Term::from_field_text(self.engine.fields.path, path));
        self.changed += 1;
    }

    /// Commits the batch (recording who wrote it), merges, and reloads our reader so
    /// this process reads its own writes at once.
    pub fn commit(mut self) -> Result<()> {
        let mut merged = false;
        if self.changed > 0 {
            let payload = serde_json::json!({
                "pid": std::process::id(),
                "at": crate::events::now_rfc3339(),
                "changed": self.changed,
            });
            let dir = &self.engine.dir;
            let committed = self.writer.prepare_commit().and_then(|mut prepared| {
                prepared.set_payload(&payload.to_string());
                prepared.commit()
            });
            if let Err(e) = committed {
                self.failed = true;
                return Err(EngineError::writing(dir, e));
            }
            self.committed = true;
            // The batch is in: a merge that fails (no room for the merged segment)
            // leaves the segments as they were, and its partial files to the
            // collection below.
            merged = self.compact().unwrap_or_else(|e| {
                tracing::warn!("cannot merge index segments: {e}");
                true
            });
        }
        self.engine.reload()?;
        if merged {
            // tantivy collects the merged-away files at the end of the merge, but not
            // those our reader still had open: now that it has moved on, they can go
            // (without this they stayed until the next commit; on a 192 MB corpus,
            // 178 MB of them).
            self.collect_garbage();
        }
        Ok(())
    }

    /// Merges small segments once there are [`MAX_SEGMENTS`] of them (small: under a
    /// tenth of the documents), so that one saved file never pays for rewriting the
    /// big segments; past twice that many segments of any size, merges all but the
    /// largest. Either way in two merges at once. True when it merged.
    fn compact(&mut self) -> Result<bool> {
        let mut metas = self.engine.index.searchable_segment_metas()?;
        let total: u32 = metas.iter().map(|m| m.num_docs()).sum();
        metas.sort_by_key(|m| m.num_docs());
        let small = metas
            .iter()
            .take_while(|m| m.num_docs() < total / 10)
            .count();
        if small >= MAX_SEGMENTS {
            metas.truncate(small);
        } else if metas.len() > 2 * MAX_SEGMENTS {
            metas.pop();
        } else {
            return Ok(false);
        }
        // Two merges at once, of halves alike in size (the segments, smallest first,
        // dealt out in turn), keep two cores busy where one merge kept one. Both are
        // waited for, even after one failed.
        let merges = [0, 1].map(|k| {
            let ids: Vec<_> = metas.iter().skip(k).step_by(2).map(|m| m.id()).collect();
            self.writer.merge(&ids)
        });
        for result in merges.map(|m| m.wait()) {
            result.map_err(|e| EngineError::writing(&self.engine.dir, e))?;
        }
        Ok(true)
    }
}

impl Drop for Lease<'_> {
    /// A batch not committed (an error, a cancel) is rolled back, and the files it
    /// wrote are removed while the lock is still held. After a failed write, tantivy
    /// stops joining the batch's indexing threads at the first that failed; the others
    /// may still be writing their segments, which count as alive (not collected) until
    /// they end: the collection is repeated until no file is left that the last commit
    /// does not name, for up to [`SETTLE`]. What is left then goes at the next lease.
    fn drop(&mut self) {
        if self.committed || self.changed == 0 {
            return;
        }
        if let Err(e) = self.writer.rollback() {
            tracing::warn!(
                "cannot roll back a batch of the index in {}: {e}",
                self.engine.dir.display()
            );
            return;
        }
        let deadline = Instant::now() + SETTLE;
        loop {
            self.collect_garbage();
            if !self.failed || self.uncommitted_files() == 0 || Instant::now() >= deadline {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
    }
}

impl Lease<'_> {
    /// How many of the index's files the last commit does not name.
    fn uncommitted_files(&self) -> usize {
        let index = &self.engine.index;
        let Ok(metas) = index.searchable_segment_metas() else {
            return 0;
        };
        let committed: HashSet<PathBuf> = metas.iter().flat_map(|m| m.list_files()).collect();
        index
            .directory()
            .list_managed_files()
            .iter()
            .filter(|f| !committed.contains(*f) && f.as_os_str() != "meta.json")
            .count()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_delete_files_past_the_last_commit_are_removed() {
        let dir = tempfile::tempdir().unwrap();
        let seg = "e58c19370f884fcca3b78a872dd0b51c";
        let names = [
            format!("{seg}.5.del"),
            format!("{seg}.4.del"),
            format!("{seg}.idx"),
            "meta.json".to_string(),
            "notes.12.del".to_string(),
        ];
        for n in &names {
            std::fs::write(dir.path().join(n), b"x").unwrap();
        }
        remove_uncommitted_deletes(dir.path(), 4);
        let mut left: Vec<String> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        left.sort();
        let mut want: Vec<String> = names[1..].to_vec();
        want.sort();
        assert_eq!(left, want);
    }
}
