//! doc-serve's own files, which are never sources.
//!
//! The project's state dir (runtime.json holds the live token; logs/events.jsonl; the
//! index), the index and log dirs wherever config.json puts them, and the shared
//! daemon's home (`~/.doc-serve`) are never walked, watched, indexed or served, by
//! whatever name they are reached. A path is judged after its symlinks are resolved; a
//! directory also by its device and inode (a link to a parent of the state dir, a bind
//! mount); a file with more than one name by its device and inode against the files of
//! these places (a hard link). Without this a link in the tree put the token in search
//! results, and our own writes seen through a link triggered the next indexing, forever.
//!
//! One rule for every reader: the walk ([`super::walk::Sources::walk`]), the check of a
//! single path (the watcher's paths, `/documents`) and the reading of a file.

use std::collections::HashSet;
use std::fs::Metadata;
use std::os::unix::fs::MetadataExt;
use std::path::{Component, Path, PathBuf};
use std::sync::OnceLock;

/// Files of the places looked at for hard links, at most: the index of a big project
/// has a few hundred, the shared daemon's home a few hundred per project.
const MAX_SCANNED: usize = 200_000;

/// Where doc-serve keeps its own files, as configured (absolute paths).
#[derive(Debug, Clone, Default)]
pub struct Private {
    dirs: Vec<PathBuf>,
}

impl Private {
    pub fn new(dirs: impl IntoIterator<Item = PathBuf>) -> Private {
        let mut out: Vec<PathBuf> = Vec::new();
        for dir in dirs.into_iter().map(|d| lexical(&d)) {
            if !out.contains(&dir) {
                out.push(dir);
            }
        }
        Private { dirs: out }
    }

    /// The places as the disk has them now (a directory made or linked since counts).
    pub fn now(&self) -> Places {
        let mut paths = self.dirs.clone();
        let mut ids = Vec::new();
        for dir in &self.dirs {
            if let Ok(real) = dir.canonicalize()
                && !paths.contains(&real)
            {
                paths.push(real);
            }
            if let Ok(m) = std::fs::metadata(dir) {
                ids.push((m.dev(), m.ino()));
            }
        }
        Places {
            paths,
            ids,
            linked: OnceLock::new(),
        }
    }

    /// Whether `path` (a directory's name as given, not resolved) is one of the places:
    /// the cheap test, for a path that names one directly.
    pub fn names(&self, path: &Path) -> bool {
        self.dirs.iter().any(|d| path.starts_with(d))
    }
}

/// [`Private`] at one moment: each place by its names (as configured and resolved)
/// and its identity; the identities of its files with several names are looked up
/// once, when a file with several names is first met.
pub struct Places {
    paths: Vec<PathBuf>,
    ids: Vec<(u64, u64)>,
    linked: OnceLock<HashSet<(u64, u64)>>,
}

impl Places {
    /// The place `path` is in, after resolving its symlinks (a path that does not
    /// exist is resolved as far as it does, as for the file of a removal event).
    pub fn holding(&self, path: &Path) -> Option<PathBuf> {
        self.holding_real(path)
            .or_else(|| self.holding_real(&resolve(path)))
    }

    /// The place `real` (a path without symlinks) is in: one of ours, or the state
    /// dir of any other project in the tree (`<dir>/.claude/doc-serve`: a sub-project's
    /// resident keeps its token there, whatever its .gitignore says).
    pub fn holding_real(&self, real: &Path) -> Option<PathBuf> {
        if let Some(place) = self.paths.iter().find(|p| real.starts_with(p)) {
            return Some(place.clone());
        }
        let mut prefix = PathBuf::new();
        let mut after_claude = false;
        for c in real.components() {
            prefix.push(c);
            if after_claude && c.as_os_str() == "doc-serve" {
                return Some(prefix);
            }
            after_claude = c.as_os_str() == ".claude";
        }
        None
    }

    /// Whether the directory `meta` describes (symlinks followed) is one of the places.
    pub fn is_place(&self, meta: &Metadata) -> bool {
        self.ids.contains(&(meta.dev(), meta.ino()))
    }

    /// Whether the file `meta` describes is also a file of one of the places: a hard
    /// link to runtime.json, say. A file with one name cannot be.
    pub fn shares_file(&self, meta: &Metadata) -> bool {
        meta.is_file()
            && meta.nlink() > 1
            && self
                .linked
                .get_or_init(|| self.files_with_several_names())
                .contains(&(meta.dev(), meta.ino()))
    }

    /// Why a file at `path` with metadata `meta` (symlinks followed) is not a source,
    /// if it is doc-serve's own.
    pub fn refusal(&self, path: &Path, meta: &Metadata) -> Option<String> {
        if let Some(place) = self.holding(path) {
            return Some(leads_into(&place));
        }
        if self.is_place(meta) {
            return Some(A_PLACE.into());
        }
        self.hard_link_refusal(meta)
    }

    /// Why the file `meta` describes is not a source, if it is a hard link to one of
    /// doc-serve's own files.
    pub fn hard_link_refusal(&self, meta: &Metadata) -> Option<String> {
        self.shares_file(meta).then(|| {
            "it is a hard link to a file doc-serve keeps for itself (never indexed)".into()
        })
    }

    fn files_with_several_names(&self) -> HashSet<(u64, u64)> {
        let mut found = HashSet::new();
        let mut todo: Vec<PathBuf> = self.paths.clone();
        // A place inside another (data/ in the state dir), or named twice: once.
        let mut dirs_done = HashSet::new();
        let mut seen = 0;
        while let Some(dir) = todo.pop() {
            let id = std::fs::symlink_metadata(&dir).map(|m| (m.dev(), m.ino()));
            if id.is_ok_and(|id| !dirs_done.insert(id)) {
                continue;
            }
            for entry in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
                seen += 1;
                if seen > MAX_SCANNED {
                    return found;
                }
                // Not following links: what they lead to is judged by its own path.
                let Ok(meta) = entry.metadata() else { continue };
                if meta.is_dir() {
                    todo.push(entry.path());
                } else if meta.is_file() && meta.nlink() > 1 {
                    found.insert((meta.dev(), meta.ino()));
                }
            }
        }
        found
    }
}

const A_PLACE: &str = "it is a directory where doc-serve keeps its own files (never indexed)";

fn leads_into(place: &Path) -> String {
    format!(
        "it leads into {}, where doc-serve keeps its own files (never indexed)",
        place.display()
    )
}

/// How the walk treats an entry of doc-serve's own files.
pub enum Refusal {
    /// Not doc-serve's (it may still be a source).
    None,
    /// doc-serve's, by its own name (the state dir in its place): left out unsaid.
    Silent,
    /// doc-serve's by another name (a link, a bind mount): reported as skipped.
    Reported(String),
}

/// Whether the walk of `root` enters or lists `e`: not doc-serve's own files (a link
/// by what it leads to, a directory also by its identity), and not a link leading out
/// of the root. Directories are judged here, so nothing below a refused one is even
/// listed; a file's hard links are judged as it is listed.
pub fn refusal(root: &Path, e: &ignore::DirEntry, places: &Places) -> Refusal {
    if places.holding_real(e.path()).is_some() {
        return Refusal::Silent;
    }
    if e.path_is_symlink() {
        let Ok(real) = e.path().canonicalize() else {
            return Refusal::Silent; // dangling
        };
        if !real.starts_with(root) {
            return Refusal::Silent;
        }
        if let Some(place) = places.holding_real(&real) {
            return Refusal::Reported(leads_into(&place));
        }
    }
    let is_dir = e.file_type().is_some_and(|t| t.is_dir());
    if is_dir && e.metadata().is_ok_and(|m| places.is_place(&m)) {
        return Refusal::Reported(A_PLACE.into());
    }
    Refusal::None
}

/// The path of the file an open descriptor holds (symlinks resolved when it was
/// opened), where the system tells it.
pub fn opened_path(file: &std::fs::File) -> Option<PathBuf> {
    #[cfg(target_os = "linux")]
    {
        use std::os::fd::AsRawFd;
        std::fs::read_link(format!("/proc/self/fd/{}", file.as_raw_fd())).ok()
    }
    #[cfg(not(target_os = "linux"))]
    {
        let _ = file;
        None
    }
}

/// `path` with its symlinks resolved as far as it exists, the rest kept as written.
fn resolve(path: &Path) -> PathBuf {
    let mut base = path;
    let mut rest = Vec::new();
    loop {
        if let Ok(real) = base.canonicalize() {
            return rest.iter().rev().fold(real, |p, part| p.join(part));
        }
        match (base.parent(), base.file_name()) {
            (Some(parent), Some(name)) => {
                rest.push(name.to_owned());
                base = parent;
            }
            _ => return path.to_path_buf(),
        }
    }
}

/// `path` without `.` and `..` (resolved by name: a configured directory such as
/// `state_dir/../../idx`).
fn lexical(path: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for c in path.components() {
        match c {
            Component::CurDir => {}
            Component::ParentDir => {
                out.pop();
            }
            other => out.push(other),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn links_of_every_kind_are_judged_by_what_they_lead_to() {
        let t = tempfile::tempdir().unwrap();
        let root = t.path().canonicalize().unwrap();
        let state = root.join(".claude/doc-serve");
        std::fs::create_dir_all(state.join("logs")).unwrap();
        std::fs::write(state.join("runtime.json"), "{}").unwrap();
        std::fs::write(root.join("a.md"), "# A").unwrap();
        let link = |target: &Path, name: &str| {
            std::os::unix::fs::symlink(target, root.join(name)).unwrap();
            root.join(name)
        };
        let private = Private::new([state.clone(), state.join("data/../logs")]);
        assert_eq!(private.dirs, [state.clone(), state.join("logs")]);
        let places = private.now();
        let meta = |p: &Path| std::fs::metadata(p).unwrap();

        let token = link(&state.join("runtime.json"), "token.md");
        let relative = link(Path::new(".claude/doc-serve/logs"), "logs");
        let parent = link(Path::new(".claude"), "c");
        let chain = link(&token, "chain.md");
        for p in [&token, &relative, &chain, &relative.join("gone.jsonl")] {
            assert!(places.refusal(p, &meta(&token)).is_some(), "{p:?}");
        }
        // Through a link to a parent of the state dir, the state dir is met by name.
        assert!(places.holding(&parent.join("doc-serve")).is_some());
        assert!(places.is_place(&meta(&parent.join("doc-serve"))));
        assert!(!places.is_place(&meta(&parent)));
        assert!(
            places
                .refusal(&root.join("a.md"), &meta(&root.join("a.md")))
                .is_none()
        );

        let hard = root.join("hard.md");
        std::fs::hard_link(state.join("runtime.json"), &hard).unwrap();
        let refused = places.refusal(&hard, &meta(&hard)).unwrap();
        assert!(refused.contains("hard link"), "{refused}");
        // Two names, neither of them ours.
        std::fs::hard_link(root.join("a.md"), root.join("b.md")).unwrap();
        assert!(!places.shares_file(&meta(&root.join("b.md"))));
    }
}
