//! Reconciliation: make the index equal to the source files on disk.
//!
//! Change detection is cheap first (size and mtime against what the index recorded),
//! exact second (SHA-256 of the content). Files are read while the index lock is held,
//! so whatever a batch commits is the disk's content at that moment, even with several
//! processes writing: a later change is the next event's business. Work is committed in
//! batches, each a lease of its own, so other writers get their turn in between.

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::chunk::{self, ChunkOptions, Format};
use super::walk::{self, Skipped, SourceFile, Sources};
use crate::config::Config;
use crate::engine::writer::{FileSections, Lease, Section};
use crate::engine::{Engine, EngineError, FileRecord, Result, WriteOptions};
use crate::project::Project;

/// Files per batch, and bytes per batch: bounds how long one writer holds the lock.
/// Each batch's commit adds a segment per indexing thread, and every query pays for
/// every segment (term lookups, postings opened): bytes, not a low file count, should
/// end a batch. On the 47.9 MB corpus, batches of 64 MiB (one) left 2 segments where
/// 32 MiB left 4, in the same time, and two-word queries took 9% less.
const BATCH_FILES: usize = 10_000;
const BATCH_BYTES: u64 = 64 << 20;

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Summary {
    pub full: bool,
    pub scanned: usize,
    pub added: usize,
    pub updated: usize,
    pub removed: usize,
    pub unchanged: usize,
    pub chunks: usize,
    pub skipped: Vec<Skipped>,
    pub batches: usize,
    pub took_ms: f64,
}

#[derive(Debug, Clone, Copy)]
pub struct Progress {
    pub done: usize,
    pub total: usize,
}

pub struct Indexer {
    pub sources: Sources,
    pub engine: Arc<Engine>,
    pub chunking: ChunkOptions,
    /// Set to abandon work: the batch in progress is rolled back.
    pub cancel: Arc<AtomicBool>,
}

/// How `config` has files chunked.
pub fn chunk_options(config: &Config) -> ChunkOptions {
    ChunkOptions {
        chunk_size: config.chunk_size,
        chunk_overlap: config.chunk_overlap,
    }
}

/// A chunked file as the engine indexes it.
impl<'a> From<&'a chunk::Document> for FileSections<'a> {
    fn from(doc: &'a chunk::Document) -> FileSections<'a> {
        let section = |c: &'a chunk::Chunk| Section {
            headings: &c.headings,
            anchor: &c.anchor,
            line_start: c.line_start,
            line_end: c.line_end,
            text: &c.text,
        };
        FileSections {
            title: &doc.title,
            sections: doc.chunks.iter().map(section).collect(),
        }
    }
}

/// What bringing an index holding `manifest` in line with `files` (the walk's) takes.
pub struct Plan<'a> {
    /// Files to read: not indexed, or their size, mtime or chunking (a
    /// [`ChunkOptions::key`]) differ from what was indexed; with `full`, all.
    pub read: Vec<&'a SourceFile>,
    /// Indexed paths no longer among the files.
    pub gone: Vec<String>,
    pub unchanged: usize,
}

pub fn plan<'a>(
    manifest: &HashMap<String, FileRecord>,
    files: &'a [SourceFile],
    chunking: &str,
    full: bool,
) -> Plan<'a> {
    let on_disk: HashSet<&str> = files.iter().map(|f| f.rel.as_str()).collect();
    let gone = manifest
        .keys()
        .filter(|p| !on_disk.contains(p.as_str()))
        .cloned()
        .collect();
    let (read, kept): (Vec<&SourceFile>, Vec<&SourceFile>) = files.iter().partition(|f| {
        full || manifest
            .get(&f.rel)
            .is_none_or(|r| r.size != f.size || r.mtime_ns != f.mtime_ns || r.chunking != chunking)
    });
    Plan {
        read,
        gone,
        unchanged: kept.len(),
    }
}

impl Indexer {
    /// The engine and sources of a project, as configured.
    pub fn open(project: &Project, config: &Config) -> Result<Indexer> {
        let write = WriteOptions {
            coordination: config.coordination_mode,
            lock_timeout: config.lock_timeout,
        };
        let engine = Engine::open(&project.state_path(&config.data_dir), write)?;
        Ok(Indexer {
            sources: Sources::new(&project.root, &project.state_dir, config)?,
            engine: Arc::new(engine),
            chunking: chunk_options(config),
            cancel: Arc::new(AtomicBool::new(false)),
        })
    }

    /// Brings the index in line with the disk; `full` re-reads every file.
    pub fn reconcile(&self, full: bool, progress: &mut dyn FnMut(Progress)) -> Result<Summary> {
        let started = Instant::now();
        self.check_root()?;
        self.engine.reload()?;
        let manifest = self.engine.manifest()?;
        let (files, skipped) = self.sources.walk();
        // Files chunked with other settings (or by an older chunker) are chunked again.
        let Plan {
            read: todo,
            gone,
            unchanged,
        } = plan(&manifest, &files, &self.chunking.key(), full);
        let mut summary = Summary {
            full,
            scanned: files.len(),
            skipped,
            unchanged,
            ..Summary::default()
        };
        let total = todo.len() + gone.len();
        let mut done = 0;
        progress(Progress { done, total });

        if !gone.is_empty() {
            let mut lease = self.engine.lease()?;
            // A root that vanished during the walk also looks like files gone.
            self.check_root()?;
            for path in &gone {
                // Re-checked under the lock: it may have come back since the walk. A
                // file still there but no longer a source (grown past the size cap,
                // newly ignored or excluded) goes too, or its old text would stay.
                if self
                    .sources
                    .source_at(&self.sources.root().join(path))
                    .is_none()
                {
                    lease.delete(path);
                    summary.removed += 1;
                }
            }
            lease.commit()?;
            summary.batches += 1;
            done += gone.len();
            progress(Progress { done, total });
        }

        for batch in batches(&todo) {
            let mut lease = self.engine.lease()?;
            for file in batch {
                if self.cancel.load(Ordering::Relaxed) {
                    return Err(EngineError::Cancelled);
                }
                let known = manifest.get(&file.rel);
                let outcome = self.index_file(&mut lease, file, known, full)?;
                summary.count(&mut lease, &file.rel, outcome, known.is_some());
                done += 1;
                progress(Progress { done, total });
            }
            lease.commit()?;
            summary.batches += 1;
        }
        summary.took_ms = started.elapsed().as_secs_f64() * 1000.0;
        Ok(summary)
    }

    /// Applies changes to the given paths (from the watcher) without walking the tree.
    /// A directory, a vanished directory or an ignore file among them needs the walk:
    /// then this is a plain reconciliation.
    pub fn update_paths(&self, paths: &[PathBuf]) -> Result<Summary> {
        let started = Instant::now();
        let needs_walk = paths.iter().any(|p| {
            p.is_dir()
                || p.file_name()
                    .is_some_and(|n| n == ".gitignore" || n == ".ignore")
                || (!p.exists() && p.extension().is_none())
        });
        if needs_walk {
            return self.reconcile(false, &mut |_| {});
        }
        self.check_root()?;
        let mut summary = Summary {
            scanned: paths.len(),
            ..Summary::default()
        };
        let mut lease = self.engine.small_lease()?;
        for path in paths {
            // A name that reads the same as another (not UTF-8) stands for the one the
            // walk keeps: a change to a skipped twin must not remove or replace it.
            let path = &walk::first_of_lossy_name(path);
            let Some(rel) = self.sources.relative(path) else {
                continue;
            };
            let known = self.engine.record(&rel)?;
            match self.sources.source_at(path) {
                Some(file) => {
                    let outcome = self.index_file(&mut lease, &file, known.as_ref(), false)?;
                    summary.count(&mut lease, &rel, outcome, known.is_some());
                }
                None if known.is_some() => {
                    lease.delete(&rel);
                    summary.removed += 1;
                }
                None => {}
            }
        }
        lease.commit()?;
        summary.batches = 1;
        summary.took_ms = started.elapsed().as_secs_f64() * 1000.0;
        Ok(summary)
    }

    /// A root that vanished (renamed, unmounted, deleted) is an error, not a tree
    /// without files: treating it as one would empty an index kept outside it (the
    /// shared daemon's, or a `data_dir` elsewhere) until the root comes back.
    fn check_root(&self) -> Result<()> {
        let root = self.sources.root();
        match std::fs::metadata(root) {
            Ok(m) if m.is_dir() => Ok(()),
            Ok(_) => Err(EngineError::Io {
                context: format!(
                    "the project root {} is no longer a directory",
                    root.display()
                ),
                cause: std::io::ErrorKind::NotADirectory.into(),
            }),
            Err(cause) => Err(EngineError::Io {
                context: format!("the project root {} has vanished", root.display()),
                cause,
            }),
        }
    }

    /// Indexes one file. A file that cannot be indexed is an [`Outcome::Skipped`]; an
    /// error is the index's (a full disk), and ends the batch.
    fn index_file(
        &self,
        lease: &mut Lease<'_>,
        file: &SourceFile,
        known: Option<&FileRecord>,
        full: bool,
    ) -> Result<Outcome> {
        // Size and mtime before the text: a write in between leaves a newer mtime than
        // the one recorded, so the file is read again next time, never the reverse.
        let (size, mtime_ns) = self
            .sources
            .stat(&file.abs)
            .unwrap_or((file.size, file.mtime_ns));
        let text = match self.sources.read(file) {
            Ok(text) => text,
            Err(reason) => return Ok(Outcome::Skipped(reason)),
        };
        let Some(text) = text else {
            if known.is_some() {
                lease.delete(&file.rel);
            }
            return Ok(Outcome::Vanished);
        };
        let hash = hex(&Sha256::digest(text.as_bytes()));
        let record = FileRecord {
            hash,
            size,
            mtime_ns,
            chunking: self.chunking.key(),
        };
        if let Some(known) =
            known.filter(|k| !full && k.hash == record.hash && k.chunking == record.chunking)
        {
            // The same text: its sections stand. A new size or mtime (a `touch`, a
            // checkout) is recorded, or every reconciliation would read it again.
            if known == &record {
                return Ok(Outcome::Unchanged);
            }
            // `known` was read before this lease's lock was taken: another process
            // may have indexed other text since (the lease reloaded the reader). Only
            // a record still saying this text is rewritten in place; otherwise the
            // file is indexed again.
            let current = self.engine.record(&file.rel)?;
            if current.is_some_and(|c| c.hash == record.hash && c.chunking == record.chunking) {
                lease.update_record(&file.rel, &record)?;
                return Ok(Outcome::Unchanged);
            }
        }
        let stem = file.rel.rsplit('/').next().unwrap_or(&file.rel);
        let stem = stem.rsplit_once('.').map_or(stem, |(s, _)| s);
        let doc = chunk::chunk(&text, Format::from_path(&file.abs), stem, &self.chunking);
        lease.upsert(&file.rel, &record, &doc)?;
        Ok(Outcome::Indexed(doc.chunks.len()))
    }
}

/// What [`Indexer::index_file`] did with a file.
enum Outcome {
    /// Its sections were (re)written: this many.
    Indexed(usize),
    /// The index already held its content.
    Unchanged,
    /// It was gone by the time it was read: what the index held of it is removed.
    Vanished,
    /// It cannot be indexed, for this reason.
    Skipped(String),
}

impl Summary {
    /// Counts what became of the file `rel`, which the index held (`known`) or not;
    /// what it held of a skipped file goes.
    fn count(&mut self, lease: &mut Lease<'_>, rel: &str, outcome: Outcome, known: bool) {
        match outcome {
            Outcome::Skipped(reason) => {
                if known {
                    lease.delete(rel);
                }
                tracing::info!("skipped {rel}: {reason}");
                self.skipped.push(Skipped {
                    path: rel.to_owned(),
                    reason,
                    unreadable: false,
                });
            }
            Outcome::Indexed(chunks) => {
                self.chunks += chunks;
                if known {
                    self.updated += 1;
                } else {
                    self.added += 1;
                }
            }
            Outcome::Unchanged => self.unchanged += 1,
            Outcome::Vanished if known => self.removed += 1,
            Outcome::Vanished => {}
        }
    }
}

fn batches<'a>(files: &'a [&'a SourceFile]) -> Vec<&'a [&'a SourceFile]> {
    let mut out = Vec::new();
    let mut start = 0;
    let mut bytes = 0;
    for (i, f) in files.iter().enumerate() {
        if i > start && (i - start >= BATCH_FILES || bytes + f.size > BATCH_BYTES) {
            out.push(&files[start..i]);
            start = i;
            bytes = 0;
        }
        bytes += f.size;
    }
    if start < files.len() {
        out.push(&files[start..]);
    }
    out
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::project::RootReason;

    /// A touched file's record is rewritten in place only while the index still holds
    /// the text it was read with. Here another writer indexes other text after the
    /// manifest was read, and the file is then put back (with a new mtime): it is
    /// indexed again, not left with the other writer's sections under its record.
    #[test]
    fn a_stale_manifest_never_pairs_a_record_with_other_text() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().canonicalize().unwrap();
        let file = root.join("x.md");
        std::fs::write(&file, "# X\n\nalpha\n").unwrap();
        let project = Project::at(root.clone(), RootReason::Flag);
        let config = Config::default();
        let a = Indexer::open(&project, &config).unwrap();
        a.reconcile(false, &mut |_| {}).unwrap();
        let manifest = a.engine.manifest().unwrap();

        std::fs::write(&file, "# X\n\nbravo\n").unwrap();
        let b = Indexer::open(&project, &config).unwrap();
        assert_eq!(b.reconcile(false, &mut |_| {}).unwrap().updated, 1);
        std::fs::write(&file, "# X\n\nalpha\n").unwrap();
        let later = std::time::SystemTime::now() + std::time::Duration::from_secs(60);
        std::fs::File::options()
            .write(true)
            .open(&file)
            .unwrap()
            .set_modified(later)
            .unwrap();

        let (files, _) = a.sources.walk();
        let mut lease = a.engine.small_lease().unwrap();
        let outcome = a
            .index_file(&mut lease, &files[0], manifest.get("x.md"), false)
            .unwrap();
        lease.commit().unwrap();
        assert!(matches!(outcome, Outcome::Indexed(1)));
        let hits = |word: &str| {
            let req = crate::engine::search::Request {
                q: word.into(),
                limit: 10,
                offset: 0,
                path_prefix: None,
                max_per_file: 3,
                max_tokens: None,
                mode: Default::default(),
                explain: false,
            };
            a.engine.search(&req).unwrap().hits.len()
        };
        assert_eq!((hits("alpha"), hits("bravo")), (1, 0));
    }

    /// A file gone between the walk and its reading is counted as removed when the
    /// index held it (and not at all when it did not), never as unchanged.
    #[test]
    fn a_file_gone_before_it_is_read_counts_as_removed() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().canonicalize().unwrap();
        std::fs::write(root.join("a.md"), "# A\n\nalpha\n").unwrap();
        std::fs::write(root.join("b.md"), "# B\n\nbeta\n").unwrap();
        let project = Project::at(root.clone(), RootReason::Flag);
        let mut config = Config::default();
        config.coordination_mode = crate::config::CoordinationMode::None;
        let indexer = Indexer::open(&project, &config).unwrap();
        indexer.reconcile(false, &mut |_| {}).unwrap();
        let (files, _) = indexer.sources.walk();
        std::fs::write(root.join("c.md"), "# C\n").unwrap();
        let (with_c, _) = indexer.sources.walk();
        let c = with_c.into_iter().find(|f| f.rel == "c.md").unwrap();
        for f in [&root.join("a.md"), &c.abs] {
            std::fs::remove_file(f).unwrap();
        }
        let manifest = indexer.engine.manifest().unwrap();
        let mut summary = Summary::default();
        let mut lease = indexer.engine.small_lease().unwrap();
        for file in files.iter().chain([&c]) {
            let known = manifest.get(&file.rel);
            let outcome = indexer.index_file(&mut lease, file, known, false).unwrap();
            summary.count(&mut lease, &file.rel, outcome, known.is_some());
        }
        lease.commit().unwrap();
        assert_eq!(
            (summary.removed, summary.unchanged, summary.added),
            (1, 1, 0)
        );
        assert_eq!(
            indexer
                .engine
                .manifest()
                .unwrap()
                .keys()
                .collect::<Vec<_>>(),
            ["b.md"]
        );
    }
}
