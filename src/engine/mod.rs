//! The search engine: a tantivy index of sections, safe to share between processes.
//!
//! No tokio and no sockets here: callers on an async runtime run these functions in
//! `spawn_blocking`. One [`Engine`] per process holds the index and one reader for the
//! life of the process (a searcher per request). Writes go through [`writer`], which
//! serialises writers of every process with a flock on `data/.index.lock` and holds a
//! tantivy `IndexWriter` only for the length of a batch.

pub mod analyzer;
mod bm25;
mod disk;
pub mod near;
mod page;
pub mod query;
mod recent;
pub mod schema;
pub mod search;
pub mod snippet;
mod space;
mod words;
pub mod writer;

pub use space::Space;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use tantivy::collector::DocSetCollector;
use tantivy::directory::MmapDirectory;
use tantivy::query::TermQuery;
use tantivy::schema::{IndexRecordOption, Value};
use tantivy::{Index, IndexReader, ReloadPolicy, TantivyDocument, Term};

use crate::config::CoordinationMode;
use crate::flock;
use schema::{Fields, KIND_FILE, SCHEMA_VERSION};

#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    /// Not also a `source()`: an error chain printed it twice.
    #[error("index error: {0}")]
    Tantivy(tantivy::TantivyError),
    /// The disk of the index is full (or the user's quota spent): what a failed batch
    /// wrote is removed, what was committed stays.
    #[error(
        "cannot write the index in {}: {what}; free some space on that disk, or set \
         data_dir to another one (what is indexed stays, and indexing resumes once there \
         is room)",
        dir.display()
    )]
    Full { dir: PathBuf, what: &'static str },
    /// The cause is in the message, not also a `source()`, or an error chain would
    /// print it twice.
    #[error("{context}: {cause}")]
    Io {
        context: String,
        cause: std::io::Error,
    },
    /// Another process held the index lock for the whole lock timeout.
    #[error("the index is busy: another writer held {} for {timeout:?}", path.display())]
    Busy { path: PathBuf, timeout: Duration },
    #[error("{0}")]
    BadQuery(String),
    #[error("indexing was cancelled")]
    Cancelled,
    #[error(transparent)]
    Config(#[from] crate::error::Error),
}

pub type Result<T, E = EngineError> = std::result::Result<T, E>;

impl From<tantivy::TantivyError> for EngineError {
    fn from(e: tantivy::TantivyError) -> EngineError {
        EngineError::Tantivy(e)
    }
}

fn io(context: impl Into<String>) -> impl FnOnce(std::io::Error) -> EngineError {
    let context = context.into();
    move |cause| EngineError::Io { context, cause }
}

/// Lower-case hex of `bytes`.
pub(crate) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Bytes of stored sections kept together in the doc store, LZ4-compressed; a hit's
/// section is read by decompressing its block. On the 47.9 MB corpus the store takes
/// 61.2 MB uncompressed, 36.1 MB in LZ4 blocks of 2 KiB, 33.5 MB at 4 KiB and 29.4 MB
/// at 16 KiB; each hit read decompresses one block, and a query's took_ms over the 325
/// distinct two-word queries moved 1.02x at 4 KiB against no compression (paired
/// A/B of 10 rounds, bench/ab.py). An index keeps the block size and compression it
/// was created with.
const DOCSTORE_BLOCK_BYTES: usize = 4096;

/// Creates the empty index `data_dir/name`: built in a private temp directory, then
/// renamed into place. The rename is atomic, so of several processes creating it at
/// once, one wins and the others open the winner's; nobody waits for a lock (the
/// shared daemon counts the index lock's holders as indexing jobs).
fn create_in_place(data_dir: &Path, name: &str, schema: &tantivy::schema::Schema) -> Result<()> {
    crate::fsutil::create_dir_if_missing(data_dir)?;
    remove_abandoned_builds(data_dir, name);
    let tmp = crate::fsutil::temp_path(data_dir, name);
    crate::fsutil::create_private_dir(&tmp)?;
    let built = MmapDirectory::open(&tmp)
        .map_err(tantivy::TantivyError::from)
        .and_then(|d| {
            Index::create(
                d,
                schema.clone(),
                tantivy::IndexSettings {
                    docstore_blocksize: DOCSTORE_BLOCK_BYTES,
                    docstore_compression: tantivy::store::Compressor::Lz4,
                    ..Default::default()
                },
            )
        });
    if let Err(e) = built {
        let _ = std::fs::remove_dir_all(&tmp);
        return Err(EngineError::writing(data_dir, e));
    }
    let dir = data_dir.join(name);
    // An empty directory in the way (an older doc-serve made it first) is replaced;
    // a complete index in the way means another process won.
    let result = std::fs::rename(&tmp, &dir);
    if result.is_err() {
        let _ = std::fs::remove_dir_all(&tmp);
    }
    match result {
        Ok(()) => Ok(()),
        Err(_) if dir.join("meta.json").exists() => Ok(()),
        Err(e) => Err(EngineError::Io {
            context: format!("cannot move a new index into {}", dir.display()),
            cause: e,
        }),
    }
}

/// The directory of this build's index: `index-v<N>-<fingerprint>`. The schema's own
/// fingerprint is in the name: an index written with any other schema or analyzer
/// set-up is never opened, a fresh one is built beside it.
fn index_name(schema: &tantivy::schema::Schema) -> String {
    use sha2::Digest;
    let json = serde_json::to_vec(schema).unwrap_or_default();
    let digest = sha2::Sha256::digest(&json);
    let fingerprint: String = digest[..4].iter().map(|b| format!("{b:02x}")).collect();
    format!("index-v{SCHEMA_VERSION}-{fingerprint}")
}

/// Removes the temp directories of [`create_in_place`] runs whose process is gone (a
/// crash mid-creation); those of live processes may still be renamed into place.
fn remove_abandoned_builds(data_dir: &Path, name: &str) {
    let Ok(entries) = std::fs::read_dir(data_dir) else {
        return;
    };
    let prefix = format!(".{name}.");
    for entry in entries.flatten() {
        let file = entry.file_name().to_string_lossy().into_owned();
        let Some(rest) = file
            .strip_prefix(&prefix)
            .and_then(|r| r.strip_suffix(".tmp"))
        else {
            continue;
        };
        let pid = rest.split('.').next().and_then(|p| p.parse::<u32>().ok());
        if pid.is_some_and(|p| !crate::process::exists(p)) {
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
}

/// How long an index of another schema may sit unused beside the current one before a
/// resident removes it.
pub const SUPERSEDED_AFTER: Duration = Duration::from_secs(7 * 24 * 3600);

/// Removes the indexes of other schemas in `data_dir` (`index-v<N>-<fingerprint>`
/// beside `current`) that no commit has touched for [`SUPERSEDED_AFTER`]: an upgrade
/// builds a fresh index and never opens the old one again, so without this every
/// upgrade would leave a copy behind. One still in use (by another doc-serve version
/// on the same project) commits, and stays. Returns the names removed.
pub fn remove_superseded(data_dir: &Path, current: &str) -> Vec<String> {
    let Ok(entries) = std::fs::read_dir(data_dir) else {
        return Vec::new();
    };
    let mut removed = Vec::new();
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if name == current || !is_index_name(&name) {
            continue;
        }
        let idle = std::fs::metadata(entry.path().join("meta.json"))
            .and_then(|m| m.modified())
            .ok()
            .and_then(|t| t.elapsed().ok());
        if idle.is_none_or(|idle| idle < SUPERSEDED_AFTER) {
            continue;
        }
        match std::fs::remove_dir_all(entry.path()) {
            Ok(()) => removed.push(name),
            Err(e) => tracing::warn!("cannot remove the superseded index {name}: {e}"),
        }
    }
    removed
}

/// Whether `name` is an index directory's: `index-v<N>-<fingerprint>`.
fn is_index_name(name: &str) -> bool {
    name.strip_prefix("index-v").is_some_and(|rest| {
        rest.split_once('-').is_some_and(|(v, fp)| {
            v.bytes().all(|b| b.is_ascii_digit())
                && fp.len() == 8
                && fp.bytes().all(|b| b.is_ascii_hexdigit())
        })
    })
}

/// How writes are coordinated between processes.
#[derive(Debug, Clone)]
pub struct WriteOptions {
    pub coordination: CoordinationMode,
    pub lock_timeout: Duration,
}

/// What is indexed for one file.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FileRecord {
    pub hash: String,
    pub size: u64,
    pub mtime_ns: u64,
    /// How the file was cut into sections (ingest's `ChunkOptions::key`).
    pub chunking: String,
}

pub struct Engine {
    index: Index,
    reader: IndexReader,
    fields: Fields,
    dir: PathBuf,
    /// `dir`'s device and inode when opened (see [`Engine::still_in_place`]).
    dir_id: Option<(u64, u64)>,
    lock_file: PathBuf,
    write: WriteOptions,
    recent: recent::Recent,
}

impl Engine {
    /// Opens the index under `data_dir`, creating it if needed (see [`create_in_place`]).
    pub fn open(data_dir: &Path, write: WriteOptions) -> Result<Engine> {
        let (schema, _) = schema::build();
        let name = index_name(&schema);
        if !data_dir.join(&name).join("meta.json").exists() {
            create_in_place(data_dir, &name, &schema)?;
        }
        Engine::open_dir(data_dir, write)
    }

    /// Opens the index under `data_dir` for reading only; `None` when this build's
    /// schema has no index there yet. Creates and changes nothing.
    pub fn open_existing(data_dir: &Path) -> Result<Option<Engine>> {
        let (schema, _) = schema::build();
        if !data_dir
            .join(index_name(&schema))
            .join("meta.json")
            .exists()
        {
            return Ok(None);
        }
        let write = WriteOptions {
            coordination: CoordinationMode::FileLock,
            lock_timeout: Duration::ZERO,
        };
        Engine::open_dir(data_dir, write).map(Some)
    }

    fn open_dir(data_dir: &Path, write: WriteOptions) -> Result<Engine> {
        let (schema, fields) = schema::build();
        let dir = data_dir.join(index_name(&schema));
        let lock_file = data_dir.join(".index.lock");
        let directory = MmapDirectory::open(&dir).map_err(tantivy::TantivyError::from)?;
        let index = Index::open(directory)?;
        index
            .tokenizers()
            .register(analyzer::STEMMED, analyzer::stemmed());
        index
            .tokenizers()
            .register(analyzer::EXACT, analyzer::exact());
        // Other processes' commits show up within about half a second (meta.json is polled).
        let reader = index
            .reader_builder()
            .reload_policy(ReloadPolicy::OnCommitWithDelay)
            .try_into()?;
        let dir_id = crate::fsutil::file_id(&dir);
        Ok(Engine {
            index,
            reader,
            fields,
            dir,
            dir_id,
            lock_file,
            write,
            recent: recent::Recent::default(),
        })
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Fails when the index directory at this engine's path is no longer the one it
    /// opened (`git clean -fdX`, the state dir deleted): writing through paths would
    /// then add this engine's segments to whatever index is there now, under a lock
    /// file that is not the other writers' either.
    pub fn still_in_place(&self) -> Result<()> {
        if crate::fsutil::file_id(&self.dir) == self.dir_id {
            return Ok(());
        }
        Err(EngineError::Io {
            context: format!(
                "the index directory {} was removed or replaced after it was opened",
                self.dir.display()
            ),
            cause: std::io::ErrorKind::NotFound.into(),
        })
    }

    pub fn fields(&self) -> &Fields {
        &self.fields
    }

    /// Takes the cross-process index lock, waiting up to the lock timeout.
    fn lock(path: &Path, write: &WriteOptions) -> Result<Option<flock::FileLock>> {
        if write.coordination == CoordinationMode::None {
            return Ok(None);
        }
        match flock::lock_fair_within(path, write.lock_timeout)
            .map_err(io(format!("cannot lock {}", path.display())))?
        {
            Some(l) => Ok(Some(l)),
            None => Err(EngineError::Busy {
                path: path.to_path_buf(),
                timeout: write.lock_timeout,
            }),
        }
    }

    /// Picks up commits made since the last reload (by us or another process).
    pub fn reload(&self) -> Result<()> {
        Ok(self.reader.reload()?)
    }

    pub fn searcher(&self) -> tantivy::Searcher {
        self.reader.searcher()
    }

    /// Every indexed file and what was indexed of it, from the current reader.
    pub fn manifest(&self) -> Result<HashMap<String, FileRecord>> {
        let searcher = self.reader.searcher();
        let f = &self.fields;
        let q = TermQuery::new(
            Term::from_field_text(f.kind, KIND_FILE),
            IndexRecordOption::Basic,
        );
        let mut out = HashMap::new();
        for addr in searcher.search(&q, &DocSetCollector)? {
            let doc: TantivyDocument = searcher.doc(addr)?;
            let text = |field| {
                doc.get_first(field)
                    .and_then(|v| v.as_str())
                    .unwrap_or_default()
                    .to_owned()
            };
            let num = |field| {
                doc.get_first(field)
                    .and_then(|v| v.as_u64())
                    .unwrap_or_default()
            };
            out.insert(
                text(f.path),
                FileRecord {
                    hash: text(f.hash),
                    size: num(f.size),
                    mtime_ns: num(f.mtime_ns),
                    chunking: text(f.chunking),
                },
            );
        }
        Ok(out)
    }

    /// The file record of `path` (not its sections).
    fn record_query(&self, path: &str) -> tantivy::query::BooleanQuery {
        let term = |field, text| -> Box<dyn tantivy::query::Query> {
            Box::new(TermQuery::new(
                Term::from_field_text(field, text),
                IndexRecordOption::Basic,
            ))
        };
        let f = &self.fields;
        tantivy::query::BooleanQuery::intersection(vec![
            term(f.kind, KIND_FILE),
            term(f.path, path),
        ])
    }

    /// What is indexed for one file, if anything.
    pub fn record(&self, path: &str) -> Result<Option<FileRecord>> {
        let searcher = self.reader.searcher();
        let f = &self.fields;
        let q = self.record_query(path);
        let Some(addr) = searcher.search(&q, &DocSetCollector)?.into_iter().next() else {
            return Ok(None);
        };
        let doc: TantivyDocument = searcher.doc(addr)?;
        let text = |field| {
            doc.get_first(field)
                .and_then(|v| v.as_str())
                .unwrap_or_default()
                .to_owned()
        };
        let num = |field| {
            doc.get_first(field)
                .and_then(|v| v.as_u64())
                .unwrap_or_default()
        };
        Ok(Some(FileRecord {
            hash: text(f.hash),
            size: num(f.size),
            mtime_ns: num(f.mtime_ns),
            chunking: text(f.chunking),
        }))
    }

    /// When the last commit was made, as its payload says (see `Lease::commit`).
    pub fn last_commit_at(&self) -> Option<String> {
        let payload = self.index.load_metas().ok()?.payload?;
        let v: serde_json::Value = serde_json::from_str(&payload).ok()?;
        v["at"].as_str().map(String::from)
    }

    /// (files, chunks) in the current reader.
    pub fn counts(&self) -> Result<(u64, u64)> {
        let searcher = self.reader.searcher();
        let generation = searcher.generation().generation_id();
        self.recent.counts(generation, || {
            let q = TermQuery::new(
                Term::from_field_text(self.fields.kind, KIND_FILE),
                IndexRecordOption::Basic,
            );
            let files = searcher.search(&q, &tantivy::collector::Count)? as u64;
            Ok((files, searcher.num_docs().saturating_sub(files)))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn abandoned_builds_of_dead_processes_are_removed() {
        let t = tempfile::tempdir().unwrap();
        let name = "index-v1-abcd";
        // A PID above the kernel's maximum (4194304) never exists.
        let dead = t.path().join(format!(".{name}.4294967.0000abcd.tmp"));
        let live = t
            .path()
            .join(format!(".{name}.{}.0000abcd.tmp", std::process::id()));
        let other = t.path().join(".index-v2-ffff.4294967.0000abcd.tmp");
        for d in [&dead, &live, &other] {
            std::fs::create_dir(d).unwrap();
        }
        let (schema, _) = schema::build();
        create_in_place(t.path(), name, &schema).unwrap();
        assert!(!dead.exists());
        assert!(live.exists(), "a live process's build is left alone");
        assert!(
            other.exists(),
            "another index's builds are not ours to judge"
        );
        assert!(t.path().join(name).join("meta.json").exists());
    }
}
