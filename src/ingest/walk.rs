//! Which files are sources: the walk of the root.
//!
//! `.gitignore` and `.ignore` are respected (with or without a git repository), hidden
//! directories are skipped, and doc-serve's own files (the state dir, see
//! [`super::private`]) never appear, by any name. Symlinks are followed only while they
//! stay inside the root and lead to what the walk would list by its own path (see
//! [`super::rules`]); the walker detects loops and reports them as skipped. Binary
//! files (a NUL byte) and files over the size cap are skipped with a reason; invalid
//! UTF-8 is decoded lossily; a file that vanishes mid-walk is no error.

use std::fs::Metadata;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::UNIX_EPOCH;

use globset::{GlobSet, GlobSetBuilder};
use serde::{Deserialize, Serialize};

use super::private::{Private, Refusal, opened_path, refusal};
use super::rules::{LeftOut, Rules, Trail, is_repo_top, not_walked};
use crate::config::{Config, Environment};
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
    /// The walk could not read it (a directory without permission, an I/O error):
    /// what is under it may be a source, unseen.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub unreadable: bool,
}

#[derive(Clone)]
pub struct Sources {
    root: PathBuf,
    /// The state dir, the index and log dirs, the shared daemon's home.
    private: Private,
    include: GlobSet,
    exclude: GlobSet,
    max_bytes: u64,
    /// The root is inside a repository whose top is above it (`--path repo/docs`):
    /// ignore files are then read from the directories above the root too, as git
    /// reads them (see [`Sources::walk`]).
    in_repo: bool,
    /// The live token of the resident (or shared daemon) serving these sources, once
    /// it has one: a file holding it is never a source. Hard links and copies of
    /// runtime.json outlive the file's inode (a resident writes runtime.json again,
    /// with the same token, when it is deleted); the token in them does not.
    /// The secrets no source may hold: the token, the browser sessions' key.
    token: Arc<OnceLock<Vec<String>>>,
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
        let glob = crate::config::source_glob(p);
        let glob = glob.map_err(|e| Error::Setting {
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
        // The shared daemon writes its home whether or not this project uses it; a
        // `DOC_SERVE_*` variable that is not UTF-8 has failed the command before this.
        let shared_home = Environment::capture()
            .ok()
            .and_then(|env| env.home)
            .map(|home| crate::daemon::Home::new(&home).dir().to_path_buf());
        let private = [&config.data_dir, &config.log_dir]
            .into_iter()
            .map(|dir| state_dir.join(dir))
            .chain([state_dir.to_path_buf()])
            .chain(shared_home);
        Ok(Sources {
            root: root.to_path_buf(),
            private: Private::new(private),
            include: globset(&config.include, "include")?,
            exclude: globset(&config.exclude, "exclude")?,
            max_bytes: config.max_file_bytes,
            in_repo: !is_repo_top(root) && root.ancestors().skip(1).any(is_repo_top),
            token: Arc::default(),
        })
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// doc-serve's own files, never sources.
    pub fn private(&self) -> &Private {
        &self.private
    }

    /// Whether `path` is doc-serve's own, by whatever name (see [`super::private`]).
    pub fn off_limits(&self, path: &Path) -> bool {
        let places = self.private.now();
        match std::fs::metadata(path) {
            Ok(meta) => places.refusal(path, &meta).is_some(),
            Err(_) => places.holding(path).is_some(),
        }
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
        let places = Arc::new(self.private.now());
        let refused = Arc::new(Mutex::new(Vec::new()));
        // The rules are read when a link is first met: a tree without links pays nothing.
        let links = Mutex::new((Trail::default(), None));
        let walker = ignore::WalkBuilder::new(&self.root)
            .hidden(true)
            .git_ignore(true)
            .git_exclude(true)
            .ignore(true)
            // Below the top of a repository, git's ignore files above the root apply
            // up to that top, and none above it (so requiring a repository); `.ignore`
            // files apply from every directory above, as in ripgrep. Anywhere else,
            // nothing above the root is read, and a `.gitignore` applies with or
            // without a repository.
            .parents(self.in_repo)
            .require_git(self.in_repo)
            .follow_links(true)
            .filter_entry({
                let (sources, places, refused) = (self.clone(), places.clone(), refused.clone());
                move |e| {
                    let judged = match refusal(&sources.root, e, &places) {
                        Refusal::None => {
                            let mut links = links.lock().unwrap_or_else(|p| p.into_inner());
                            let (trail, rules) = &mut *links;
                            sources.link_refusal(e, trail, rules)
                        }
                        other => other,
                    };
                    match judged {
                        Refusal::None => true,
                        Refusal::Silent => false,
                        Refusal::Reported(reason) => {
                            let mut refused = refused.lock().unwrap_or_else(|p| p.into_inner());
                            refused.push((e.path().to_path_buf(), reason));
                            false
                        }
                    }
                }
            })
            .build();
        let mut skipped = Vec::new();
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
                        unreadable: true,
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
            let Ok(meta) = std::fs::metadata(entry.path()) else {
                continue; // deleted mid-walk
            };
            let (size, mtime_ns) = size_and_mtime(&meta);
            if let Some(reason) = places.hard_link_refusal(&meta) {
                skipped.push(Skipped {
                    path: rel,
                    reason,
                    unreadable: false,
                });
            } else if size > self.max_bytes {
                skipped.push(Skipped {
                    path: rel,
                    reason: format!("{size} bytes, over the {} byte cap", self.max_bytes),
                    unreadable: false,
                });
            } else {
                files.push(SourceFile {
                    rel,
                    abs: entry.path().to_path_buf(),
                    size,
                    mtime_ns,
                });
            }
        }
        let refused = std::mem::take(&mut *refused.lock().unwrap_or_else(|p| p.into_inner()));
        skipped.extend(refused.into_iter().map(|(path, reason)| Skipped {
            path: self.relative(&path).unwrap_or_default(),
            reason,
            unreadable: false,
        }));
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
                    unreadable: false,
                }),
                _ => kept.push(f),
            }
        }
        (kept, skipped)
    }

    /// The source file at `path` (absolute), if it is one: inside the root (after
    /// symlinks), not doc-serve's own (by any name), wanted by the globs,
    /// [`Sources::lists`] (as the walk would list it), and under the size cap.
    pub fn source_at(&self, path: &Path) -> Option<SourceFile> {
        let rel = self.relative(path)?;
        if self.private.names(path) || !self.wants(&rel) {
            return None;
        }
        let real = path.canonicalize().ok()?;
        let meta = std::fs::metadata(&real).ok()?;
        if !real.starts_with(&self.root)
            || !meta.is_file()
            || self.private.now().refusal(&real, &meta).is_some()
            || !self.lists(path, &real)
        {
            return None;
        }
        let (size, mtime_ns) = size_and_mtime(&meta);
        (size <= self.max_bytes).then(|| SourceFile {
            rel,
            abs: path.to_path_buf(),
            size,
            mtime_ns,
        })
    }

    /// Whether the walk lists the file at `path` (absolute, by the names the walk goes
    /// through), which resolves to `real`: its own path passes the ignore and hidden
    /// rules; and when a symlink is on the way (`real` is another path), `real` is
    /// inside the root and passes them too by its own path, is not excluded, and no
    /// link on the way closes a loop. See [`super::rules`].
    pub fn lists(&self, path: &Path, real: &Path) -> bool {
        let Ok(rel) = path.strip_prefix(&self.root) else {
            return false;
        };
        let mut rules = Rules::new(&self.root, self.in_repo);
        if rules.left_out(rel, false).is_some() {
            return false;
        }
        path == real
            || (real.starts_with(&self.root)
                && self.target_left_out(real, false, &mut rules).is_none()
                && !not_walked(&self.root, rel))
    }

    /// How the walk treats `e` by where it leads, when it is a symlink or below one:
    /// left out (reported) when what it leads to is; an entry with no link on its way
    /// is not looked at further.
    fn link_refusal(
        &self,
        e: &ignore::DirEntry,
        trail: &mut Trail,
        rules: &mut Option<Rules>,
    ) -> Refusal {
        trail.leave(e.path());
        let real = if e.path_is_symlink() {
            match e.path().canonicalize() {
                Ok(real) => real,
                Err(_) => return Refusal::Silent, // gone since it was listed
            }
        } else {
            match trail.below(e.path()) {
                Some(real) => real,
                None => return Refusal::None,
            }
        };
        let is_dir = e.file_type().is_some_and(|t| t.is_dir());
        let rules = rules.get_or_insert_with(|| Rules::new(&self.root, self.in_repo));
        if let Some((rel, why)) = self.target_left_out(&real, is_dir, rules) {
            return Refusal::Reported(format!("it leads to {rel}, which is {}", why.as_str()));
        }
        if is_dir && e.path_is_symlink() {
            trail.enter(e.path(), real);
        }
        Refusal::None
    }

    /// Why the walk would leave out `real` (a resolved path inside the root) by its own
    /// path, with that path: ignored or hidden, or, a file, excluded. The include globs
    /// are not asked: a link is a source by its own name.
    fn target_left_out(
        &self,
        real: &Path,
        is_dir: bool,
        rules: &mut Rules,
    ) -> Option<(String, LeftOut)> {
        let rel = self.relative(real)?;
        let why = rules
            .left_out(real.strip_prefix(&self.root).ok()?, is_dir)
            .or_else(|| (!is_dir && self.exclude.is_match(&rel)).then_some(LeftOut::Excluded))?;
        Some((rel, why))
    }

    /// The file a root-relative path (as [`Sources::relative`] writes it) names: where
    /// a name on the way is not UTF-8, the path shows it read lossily, and stands for
    /// the first name by bytes that reads so (the one the walk keeps).
    pub fn resolve(&self, rel: &str) -> PathBuf {
        let direct = self.root.join(rel);
        if !rel.contains('\u{FFFD}') || direct.symlink_metadata().is_ok() {
            return direct;
        }
        let mut path = self.root.clone();
        for part in rel.split('/') {
            let next = path.join(part);
            let lossy = part.contains('\u{FFFD}') && next.symlink_metadata().is_err();
            let first = lossy
                .then(|| {
                    let names = std::fs::read_dir(&path).into_iter().flatten().flatten();
                    names
                        .map(|e| e.file_name())
                        .filter(|name| name.to_string_lossy() == part)
                        .min()
                })
                .flatten();
            path = first.map_or(next, |name| path.join(name));
        }
        path
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
        std::fs::metadata(path).ok().map(|m| size_and_mtime(&m))
    }

    /// Reads a source: `Ok(None)` when gone, `Err(reason)` when it must be skipped.
    /// What was opened is checked once more, by the file the descriptor holds: a name
    /// turned into a link to doc-serve's own files since it was listed is refused.
    /// Keeps every file holding one of `secrets` (the token, the session key) out,
    /// from now on, in every clone of these sources (the walk, the watcher's updates,
    /// `/documents`).
    pub fn guard_secrets(&self, secrets: &[String]) {
        let _ = self.token.set(secrets.to_vec());
    }

    /// New sources (the settings changed) keep the token these keep out.
    pub fn keep_token_of(&mut self, before: &Sources) {
        self.token = before.token.clone();
    }

    /// Why `bytes` may not be served or indexed, if they hold the live token or the
    /// session key.
    pub fn holds_token(&self, bytes: &[u8]) -> Option<String> {
        self.token
            .get()?
            .iter()
            .filter(|secret| !secret.is_empty())
            .any(|secret| memchr::memmem::find(bytes, secret.as_bytes()).is_some())
            .then(|| {
                "it holds doc-serve's token or session key (a copy or link of runtime.json \
                 or session.key)"
                    .into()
            })
    }

    pub fn read(&self, file: &SourceFile) -> std::result::Result<Option<String>, String> {
        let opened = match std::fs::File::open(&file.abs) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(format!("cannot read: {e}")),
        };
        let meta = opened.metadata().map_err(|e| format!("cannot read: {e}"))?;
        let real = opened_path(&opened).unwrap_or_else(|| file.abs.clone());
        if let Some(why) = self.private.now().refusal(&real, &meta) {
            return Err(why);
        }
        let mut bytes = Vec::new();
        opened
            .take(self.max_bytes.saturating_add(1))
            .read_to_end(&mut bytes)
            .map_err(|e| format!("cannot read: {e}"))?;
        if bytes.len() as u64 > self.max_bytes {
            return Err(format!(
                "{} bytes, over the {} byte cap",
                meta.len().max(bytes.len() as u64),
                self.max_bytes
            ));
        }
        if bytes.contains(&0) {
            return Err("binary (contains NUL bytes)".into());
        }
        if let Some(why) = self.holds_token(&bytes) {
            return Err(why);
        }
        Ok(Some(match String::from_utf8(bytes) {
            Ok(s) => s,
            Err(e) => String::from_utf8_lossy(e.as_bytes()).into_owned(),
        }))
    }
}

/// (size, mtime in ns) of a file's metadata.
fn size_and_mtime(meta: &Metadata) -> (u64, u64) {
    let mtime = meta
        .modified()
        .ok()
        .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
        .map_or(0, |d| d.as_nanos() as u64);
    (meta.len(), mtime)
}
