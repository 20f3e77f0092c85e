//! The walk's ignore and hidden rules for one path, and what they say of a path that
//! passes through a symlink.
//!
//! The walk ([`super::walk::Sources::walk`]) leaves out what the `ignore` crate
//! leaves out by the names it walks. The readers that check one path (the watcher's
//! paths, `/documents`) decide the same here ([`Rules::left_out`]). A symlink is
//! judged by where it leads too: a path through one is a source only if the file it
//! leads to, by its own path in the root, is not ignored, hidden or excluded either,
//! and no link on the way leads back to a directory on that way (a loop, which the
//! walk does not enter). Without this a link such as `docs/s -> ../secret` put a
//! gitignored or hidden file in search results and `/documents`. A path with no
//! symlink on it pays for none of this.

use std::collections::HashMap;
use std::os::unix::fs::MetadataExt;
use std::path::{Component, Path, PathBuf};
use std::sync::Arc;

use ignore::Match;
use ignore::gitignore::{Gitignore, GitignoreBuilder};

/// Whether `dir` is the top of a repository (git's, or Jujutsu's), as the `ignore`
/// crate tells.
pub fn is_repo_top(dir: &Path) -> bool {
    dir.join(".git").exists() || dir.join(".jj").exists()
}

/// Why the walk leaves a path out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LeftOut {
    Ignored,
    Hidden,
    /// Matched by the `exclude` globs (for the file a link leads to).
    Excluded,
}

impl LeftOut {
    pub fn as_str(self) -> &'static str {
        match self {
            LeftOut::Ignored => "ignored",
            LeftOut::Hidden => "hidden",
            LeftOut::Excluded => "excluded",
        }
    }
}

/// The ignore files of a root, read once per directory: one [`Rules`] serves a walk,
/// or the check of one path.
pub struct Rules {
    root: PathBuf,
    /// See [`super::walk::Sources`]: git's files above the root apply.
    in_repo: bool,
    global: Gitignore,
    /// The directories above the root, the outermost first (with `in_repo` only).
    above: Vec<Arc<IgnoreFiles>>,
    dirs: HashMap<PathBuf, Arc<IgnoreFiles>>,
}

impl Rules {
    pub fn new(root: &Path, in_repo: bool) -> Rules {
        let mut above: Vec<&Path> = if in_repo {
            root.ancestors().skip(1).collect()
        } else {
            Vec::new()
        };
        above.reverse();
        Rules {
            root: root.to_path_buf(),
            in_repo,
            global: Gitignore::global().0,
            above: above
                .into_iter()
                .map(|d| Arc::new(IgnoreFiles::read(d)))
                .collect(),
            dirs: HashMap::new(),
        }
    }

    /// Why the walk leaves out `rel` (relative to the root, by the names it walks; a
    /// directory when `is_dir`, else a file), if it does, decided as the walk decides (the `ignore` crate's rules, with git's
    /// files read with or without a repository): going down from the root, a
    /// directory left out is not entered, so nothing under it is listed whatever
    /// deeper files say. A path is left out when ignored, or when hidden (its name
    /// starts with `.`) unless an ignore file re-includes it; its verdict is the
    /// deepest `.ignore`'s that has one, else the deepest `.gitignore`'s, else
    /// `.git/info/exclude`'s, else the global gitignore's. A name that is not a plain
    /// one (`..`) is left out as hidden.
    pub fn left_out(&mut self, rel: &Path, is_dir: bool) -> Option<LeftOut> {
        let mut parts = Vec::new();
        for part in rel.components() {
            match part {
                Component::Normal(name) => parts.push(name),
                _ => return Some(LeftOut::Hidden),
            }
        }
        let mut levels = self.above.clone();
        let mut dir = self.root.clone();
        for (i, part) in parts.iter().enumerate() {
            levels.push(self.files_of(&dir));
            let path = dir.join(part);
            let v = verdict(
                &levels,
                &self.global,
                &path,
                is_dir || i + 1 < parts.len(),
                self.in_repo,
            );
            if v.is_ignore() {
                return Some(LeftOut::Ignored);
            }
            if part.as_encoded_bytes().starts_with(b".") && !v.is_whitelist() {
                return Some(LeftOut::Hidden);
            }
            dir = path;
        }
        None
    }

    fn files_of(&mut self, dir: &Path) -> Arc<IgnoreFiles> {
        self.dirs
            .entry(dir.to_path_buf())
            .or_insert_with(|| Arc::new(IgnoreFiles::read(dir)))
            .clone()
    }
}

/// Whether the walk never reaches `rel` because of a symlink on the way from `root`
/// (through its directories, not its last name): one that leads out of the root (the
/// walk does not follow it, even when the path comes back in: `docs/slash -> /`), or to
/// a directory on that way, the root included (the walk reports such a link as a loop
/// and does not enter it; walkdir compares each followed link with the directories
/// above it by device and inode). A directory on the way that cannot be looked at
/// counts too: the walk would not list what is under it either.
pub fn not_walked(root: &Path, rel: &Path) -> bool {
    let id = |m: std::fs::Metadata| (m.dev(), m.ino());
    let Ok(top) = std::fs::metadata(root) else {
        return true;
    };
    let mut seen = vec![id(top)];
    let parts: Vec<Component> = rel.components().collect();
    let mut dir = root.to_path_buf();
    for part in parts.iter().take(parts.len().saturating_sub(1)) {
        dir.push(part);
        let (Ok(own), Ok(meta)) = (std::fs::symlink_metadata(&dir), std::fs::metadata(&dir)) else {
            return true;
        };
        let here = id(meta);
        if own.file_type().is_symlink()
            && (seen.contains(&here)
                || !dir.canonicalize().is_ok_and(|real| real.starts_with(root)))
        {
            return true;
        }
        seen.push(here);
    }
    false
}

/// The symlinked directories the walk is inside, with where they lead. The walk goes
/// depth first and meets a directory before what is in it, so a link an entry is not
/// below is done with.
#[derive(Default)]
pub struct Trail(Vec<(PathBuf, PathBuf)>);

impl Trail {
    /// Forgets the links `path` is not below: the walk is done with them.
    pub fn leave(&mut self, path: &Path) {
        while self
            .0
            .last()
            .is_some_and(|(link, _)| !path.starts_with(link))
        {
            self.0.pop();
        }
    }

    /// Where `path` (below the innermost link entered, if any) leads.
    pub fn below(&self, path: &Path) -> Option<PathBuf> {
        let (link, real) = self.0.last()?;
        Some(real.join(path.strip_prefix(link).ok()?))
    }

    pub fn enter(&mut self, link: &Path, real: PathBuf) {
        self.0.push((link.to_path_buf(), real));
    }
}

/// The ignore files of one directory.
struct IgnoreFiles {
    ignore: Gitignore,
    git_ignore: Gitignore,
    git_exclude: Gitignore,
    /// The directory is the top of a repository.
    repo_top: bool,
}

impl IgnoreFiles {
    fn read(dir: &Path) -> IgnoreFiles {
        let one = |file: PathBuf| {
            let mut b = GitignoreBuilder::new(dir);
            if file.is_file() {
                // A line that is not a valid glob is skipped, as the walk does.
                let _ = b.add(file);
            }
            b.build().unwrap_or_else(|_| Gitignore::empty())
        };
        IgnoreFiles {
            ignore: one(dir.join(".ignore")),
            git_ignore: one(dir.join(".gitignore")),
            git_exclude: one(dir.join(".git/info/exclude")),
            repo_top: is_repo_top(dir),
        }
    }
}

/// What the ignore files of `levels` (the outermost first) and the global gitignore
/// say of `path`; see [`Rules::left_out`]. With `in_repo` (the walk then requires a
/// repository), git's files are read only up to the top of the innermost repository
/// holding `path`; else (it does not) a nested repository cuts off nothing.
fn verdict(
    levels: &[Arc<IgnoreFiles>],
    global: &Gitignore,
    path: &Path,
    is_dir: bool,
    in_repo: bool,
) -> Match<()> {
    let matched = |gi: &Gitignore| gi.matched(path, is_dir).map(|_| ());
    let deepest = |pick: fn(&IgnoreFiles) -> &Gitignore, git: bool| {
        let mut found = Match::None;
        for level in levels.iter().rev() {
            found = matched(pick(level));
            if !found.is_none() || (git && in_repo && level.repo_top) {
                break;
            }
        }
        found
    };
    deepest(|l| &l.ignore, false)
        .or(deepest(|l| &l.git_ignore, true))
        .or(deepest(|l| &l.git_exclude, true))
        .or(matched(global))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loops_and_left_out_paths_through_links() {
        let t = tempfile::tempdir().unwrap();
        let root = t.path().canonicalize().unwrap();
        for dir in ["docs/deep", "secret", ".private"] {
            std::fs::create_dir_all(root.join(dir)).unwrap();
        }
        std::fs::write(root.join(".gitignore"), "secret/\n").unwrap();
        let link = |target: &str, name: &str| {
            std::os::unix::fs::symlink(target, root.join(name)).unwrap();
        };
        link("..", "docs/up");
        link("../..", "docs/deep/root");
        link("../secret", "docs/s");
        link("deep", "docs/d");
        let loops = |rel: &str| not_walked(&root, Path::new(rel));
        assert!(loops("docs/up/a.md"));
        assert!(loops("docs/up/docs/a.md"));
        assert!(loops("docs/deep/root/a.md"));
        assert!(!loops("docs/s/key.md"));
        assert!(!loops("docs/d/a.md"));
        assert!(!loops("docs/up"), "the last name is not entered");
        assert!(loops("docs/gone/a.md"));

        let mut rules = Rules::new(&root, false);
        let mut out = |rel: &str| rules.left_out(Path::new(rel), false);
        assert_eq!(out("secret/key.md"), Some(LeftOut::Ignored));
        assert_eq!(out(".private/p.md"), Some(LeftOut::Hidden));
        assert_eq!(out("docs/../secret"), Some(LeftOut::Hidden));
        assert_eq!(out("docs/s/key.md"), None, "by its own name");
        assert_eq!(out("docs/a.md"), None);
        assert_eq!(out("secret"), None, "a file of that name");
        assert_eq!(
            rules.left_out(Path::new("secret"), true),
            Some(LeftOut::Ignored)
        );
    }
}
