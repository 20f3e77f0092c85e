//! Which files are sources: the walk of the root.
//!
//! `.gitignore` and `.ignore` are respected (with or without a git repository), hidden
//! directories are skipped, and the state dir never appears. Symlinks are followed only
//! while they stay inside the root; the walker detects loops and reports them as
//! skipped. Binary files (a NUL byte) and files over the size cap are skipped with a
//! reason; invalid UTF-8 is decoded lossily; a file that vanishes mid-walk is no error.

use std::path::{Path, PathBuf};
use std::time::UNIX_EPOCH;

use globset::{Glob, GlobSet, GlobSetBuilder};
use serde::{Deserialize, Serialize};

use crate::config::Config;
use crate::error::{Error, Result};

#[derive(Debug, Clone)]
pub struct SourceFile {
    /// Path relative to the root, `/`-separated.
    pub rel: String,
    pub abs: PathBuf,
    pub size: u64,
    pub mtime_ns: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Skipped {
    pub path: String,
    pub reason: String,
}

#[derive(Clone)]
pub struct Sources {
    root: PathBuf,
    state_dir: PathBuf,
    include: GlobSet,
    exclude: GlobSet,
    max_bytes: u64,
}

/// For a name that is not UTF-8, the name the walk keeps among those in its directory
/// that read the same once decoded lossily (the first by bytes); otherwise, or when
/// no such name exists any more, `path` itself.
pub fn first_of_lossy_name(path: &Path) -> PathBuf {
    let (Some(dir), Some(name)) = (path.parent(), path.file_name()) else {
        return path.to_path_buf();
    };
    if name.to_str().is_some() {
        return path.to_path_buf();
    }
    let lossy = name.to_string_lossy();
    std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.file_name())
        .filter(|other| other.to_string_lossy() == lossy)
        .min()
        .map_or_else(|| path.to_path_buf(), |first| dir.join(first))
}

/// The entry a walk error is about: the link that closes a loop, or the path that
/// could not be read.
fn error_path(e: &ignore::Error) -> Option<&Path> {
    match e {
        ignore::Error::Loop { child, .. } => Some(child),
        ignore::Error::WithPath { path, .. } => Some(path),
        ignore::Error::WithDepth { err, .. } | ignore::Error::WithLineNumber { err, .. } => {
            error_path(err)
        }
        ignore::Error::Partial(errs) => errs.iter().find_map(error_path),
        _ => None,
    }
}

fn globset(patterns: &[String], key: &str) -> Result<GlobSet> {
    let mut b = GlobSetBuilder::new();
    for p in patterns {
        let glob = Glob::new(p).map_err(|e| Error::Setting {
            name: key.into(),
            message: format!("bad glob {p:?}: {e}"),
        })?;
        b.add(glob);
    }
    b.build().map_err(|e| Error::Setting {
        name: key.into(),
        message: e.to_string(),
    })
}

impl Sources {
    pub fn new(root: &Path, state_dir: &Path, config: &Config) -> Result<Sources> {
        Ok(Sources {
            root: root.to_path_buf(),
            state_dir: state_dir.to_path_buf(),
            include: globset(&config.include, "include")?,
            exclude: globset(&config.exclude, "exclude")?,
            max_bytes: config.max_file_bytes,
        })
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    pub fn state_dir(&self) -> &Path {
        &self.state_dir
    }

    /// Files larger than this are not sources.
    pub fn max_bytes(&self) -> u64 {
        self.max_bytes
    }

    /// Whether a root-relative path is a source by name (include and not exclude).
    pub fn wants(&self, rel: &str) -> bool {
        self.include.is_match(rel) && !self.exclude.is_match(rel)
    }

    /// Every source file now on disk, and what was skipped and why.
    pub fn walk(&self) -> (Vec<SourceFile>, Vec<Skipped>) {
        let mut files = Vec::new();
        let mut skipped = Vec::new();
        let state_dir = self.state_dir.clone();
        let root = self.root.clone();
        let walker = ignore::WalkBuilder::new(&self.root)
            .hidden(true)
            .git_ignore(true)
            .git_exclude(true)
            .ignore(true)
            .parents(false)
            .require_git(false)
            .follow_links(true)
            // A followed link must not lead out of the root (checked for directories
            // here, so nothing below an escaping link is even listed).
            .filter_entry(move |e| {
                e.path() != state_dir
                    && (!e.path_is_symlink()
                        || e.path()
                            .canonicalize()
                            .is_ok_and(|real| real.starts_with(&root)))
            })
            .build();
        for entry in walker {
            let entry = match entry {
                Ok(e) => e,
                Err(e) => {
                    let path = error_path(&e)
                        .map(|p| self.relative(p).unwrap_or_else(|| p.display().to_string()))
                        .unwrap_or_default();
                    skipped.push(Skipped {
                        path,
                        reason: e.to_string(),
                    });
                    continue;
                }
            };
            if !entry.file_type().is_some_and(|t| t.is_file()) {
                continue;
            }
            let Some(rel) = self.relative(entry.path()) else {
                continue;
            };
            if !self.wants(&rel) {
                continue;
            }
            match self.stat(entry.path()) {
                Some((size, _)) if size > self.max_bytes => skipped.push(Skipped {
                    path: rel,
                    reason: format!("{size} bytes, over the {} byte cap", self.max_bytes),
                }),
                Some((size, mtime_ns)) => files.push(SourceFile {
                    rel,
                    abs: entry.path().to_path_buf(),
                    size,
                    mtime_ns,
                }),
                None => {} // deleted mid-walk
            }
        }
        // Names that are not UTF-8 are read lossily, so two of them can read the same:
        // the first by its bytes is the source, the others are skipped (else each run
        // would index one over the other).
        files.sort_by(|a, b| {
            a.rel
                .cmp(&b.rel)
                .then_with(|| a.abs.as_os_str().cmp(b.abs.as_os_str()))
        });
        let mut kept: Vec<SourceFile> = Vec::with_capacity(files.len());
        for f in files {
            match kept.last() {
                Some(k) if k.rel == f.rel => skipped.push(Skipped {
                    reason: format!(
                        "its name {:?} is not valid UTF-8 and reads the same as {:?}, \
                         which is indexed",
                        f.abs.file_name().unwrap_or_default(),
                        k.abs.file_name().unwrap_or_default()
                    ),
                    path: f.rel,
                }),
                _ => kept.push(f),
            }
        }
        (kept, skipped)
    }

    /// The source file at `path` (absolute), if it is one: inside the root (after
    /// symlinks), not hidden, not in the state dir, wanted by the globs, not ignored by
    /// a `.gitignore` or `.ignore` on the way down from the root, and under the size cap.
    pub fn source_at(&self, path: &Path) -> Option<SourceFile> {
        let rel = self.relative(path)?;
        if path.starts_with(&self.state_dir)
            || rel.split('/').any(|c| c.starts_with('.'))
            || !self.wants(&rel)
        {
            return None;
        }
        if !path.canonicalize().ok()?.starts_with(&self.root)
            || !path.is_file()
            || self.ignored(&rel)
        {
            return None;
        }
        let (size, mtime_ns) = self.stat(path)?;
        (size <= self.max_bytes).then(|| SourceFile {
            rel,
            abs: path.to_path_buf(),
            size,
            mtime_ns,
        })
    }

    /// Whether ignore files from the root down to `rel`'s directory exclude it; the
    /// deepest file that says anything decides, as in git.
    fn ignored(&self, rel: &str) -> bool {
        let mut dirs = vec![self.root.clone()];
        let parts: Vec<&str> = rel.split('/').collect();
        for part in &parts[..parts.len().saturating_sub(1)] {
            let next = dirs[dirs.len() - 1].join(part);
            dirs.push(next);
        }
        for dir in dirs.iter().rev() {
            let mut b = ignore::gitignore::GitignoreBuilder::new(dir);
            for name in [".gitignore", ".ignore"] {
                let f = dir.join(name);
                if f.is_file() {
                    let _ = b.add(f);
                }
            }
            let Ok(matcher) = b.build() else { continue };
            let Ok(sub) = self.root.join(rel).strip_prefix(dir).map(Path::to_path_buf) else {
                continue;
            };
            let m = matcher.matched_path_or_any_parents(&sub, false);
            if m.is_ignore() {
                return true;
            }
            if m.is_whitelist() {
                return false;
            }
        }
        false
    }

    /// `path` relative to the root, `/`-separated; `None` outside the root.
    pub fn relative(&self, path: &Path) -> Option<String> {
        let rel = path.strip_prefix(&self.root).ok()?;
        let parts: Vec<String> = rel
            .components()
            .map(|c| c.as_os_str().to_string_lossy().into_owned())
            .collect();
        (!parts.is_empty()).then(|| parts.join("/"))
    }

    /// (size, mtime in ns), following symlinks; `None` when the file is gone.
    pub fn stat(&self, path: &Path) -> Option<(u64, u64)> {
        let meta = std::fs::metadata(path).ok()?;
        let mtime = meta
            .modified()
            .ok()?
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64);
        Some((meta.len(), mtime))
    }

    /// Reads a source: `Ok(None)` when gone, `Err(reason)` when it must be skipped.
    pub fn read(&self, file: &SourceFile) -> std::result::Result<Option<String>, String> {
        let bytes = match std::fs::read(&file.abs) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(format!("cannot read: {e}")),
        };
        if bytes.len() as u64 > self.max_bytes {
            return Err(format!(
                "{} bytes, over the {} byte cap",
                bytes.len(),
                self.max_bytes
            ));
        }
        if bytes.contains(&0) {
            return Err("binary (contains NUL bytes)".into());
        }
        Ok(Some(match String::from_utf8(bytes) {
            Ok(s) => s,
            Err(e) => String::from_utf8_lossy(e.as_bytes()).into_owned(),
        }))
    }
}
