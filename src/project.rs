//! Which directory is the project, and where its state lives (see the README, "Project root" and "State directory").
//!
//! Resolution is deterministic and resolves symlinks first: an explicit path
//! (`--path`, then `DOC_SERVE_PROJECT`); the nearest ancestor with an initialised state
//! dir (so a monorepo sub-project is not swallowed by the git root); the git top-level
//! (a `.git` directory, or the `.git` file of a worktree or submodule); the nearest
//! `.claude/`; the nearest `pyproject.toml`; the current directory.
//!
//! This module computes paths; the only thing it creates is the state dir itself.

use std::fmt;
use std::path::{Path, PathBuf};

use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::error::{Error, Result};

/// Why a directory was chosen as the project root.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RootReason {
    /// `--path` on the command line.
    Flag,
    /// The `DOC_SERVE_PROJECT` environment variable.
    Env,
    /// The root registered for `serve --instance SLUG`.
    Instance,
    /// An ancestor holding `.claude/doc-serve/config.json`.
    StateDir,
    /// The git top-level (including worktrees and submodules).
    Git,
    /// The nearest ancestor holding `.claude/`.
    ClaudeDir,
    /// The nearest ancestor holding `pyproject.toml`.
    Pyproject,
    /// None of the above: the current directory.
    CurrentDir,
    /// Not a project: the per-user shared daemon, whose state dir is `~/.doc-serve`.
    SharedDaemon,
    /// Registered with the shared daemon.
    Registered,
}

impl fmt::Display for RootReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            RootReason::Flag => "given with --path",
            RootReason::Env => "given by DOC_SERVE_PROJECT",
            RootReason::Instance => "registered for the supervisor instance",
            RootReason::StateDir => "nearest directory with .claude/doc-serve/config.json",
            RootReason::Git => "git top-level",
            RootReason::ClaudeDir => "nearest directory with .claude/",
            RootReason::Pyproject => "nearest directory with pyproject.toml",
            RootReason::CurrentDir => "current directory (no project marker found)",
            RootReason::SharedDaemon => "the shared daemon's home",
            RootReason::Registered => "registered with the shared daemon",
        })
    }
}

/// A resolved project: its canonical root and where its state lives.
#[derive(Debug, Clone)]
pub struct Project {
    pub root: PathBuf,
    pub reason: RootReason,
    pub state_dir: PathBuf,
}

/// A reason, and the test that a directory carries its marker.
type Marker<'a> = (RootReason, &'a dyn Fn(&Path) -> bool);

/// The state dir of a project, relative to its root.
pub const STATE_DIR: &str = ".claude/doc-serve";
/// The shared daemon's state dir, relative to the home directory.
pub const SHARED_DIR: &str = ".doc-serve";

impl Project {
    /// Resolves the project root.
    ///
    /// `explicit` is `--path` or `DOC_SERVE_PROJECT` with its reason; `home` is skipped
    /// as a `.claude/` marker because `~/.claude` is the assistant's per-user config,
    /// not a project.
    pub fn resolve(
        explicit: Option<(&Path, RootReason)>,
        cwd: &Path,
        home: Option<&Path>,
    ) -> Result<Project> {
        if let Some((path, reason)) = explicit {
            let abs = cwd.join(path);
            let root = abs
                .canonicalize()
                .map_err(|e| Error::io(format!("project root {} ({reason})", abs.display()), e))?;
            if !root.is_dir() {
                return Err(Error::Setting {
                    name: reason_name(reason).into(),
                    message: format!("{} is not a directory", root.display()),
                });
            }
            return Ok(Project::at(root, reason));
        }
        let cwd = cwd
            .canonicalize()
            .map_err(|e| Error::io(format!("current directory {}", cwd.display()), e))?;
        let home = home.and_then(|h| h.canonicalize().ok());
        let markers: [Marker; 4] = [
            (RootReason::StateDir, &|d| {
                d.join(STATE_DIR).join("config.json").is_file()
            }),
            (RootReason::Git, &|d| d.join(".git").exists()),
            (RootReason::ClaudeDir, &|d| {
                d.join(".claude").is_dir() && Some(d) != home.as_deref()
            }),
            (RootReason::Pyproject, &|d| {
                d.join("pyproject.toml").is_file()
            }),
        ];
        for (reason, found) in markers {
            if let Some(dir) = cwd.ancestors().find(|d| found(d)) {
                return Ok(Project::at(dir.to_path_buf(), reason));
            }
        }
        Ok(Project::at(cwd, RootReason::CurrentDir))
    }

    /// Why this root is too broad to index unless it is named: the home directory, or
    /// a directory above it (`/`), reached by a marker that does not say "a project"
    /// (a dotfiles `.git` in the home directory) or as the current directory. A root
    /// given with `--path` or `DOC_SERVE_PROJECT`, registered, or initialised
    /// (`.claude/doc-serve/config.json`) is the user's choice and is never refused.
    pub fn too_broad(&self, home: Option<&Path>) -> Option<String> {
        let named = matches!(
            self.reason,
            RootReason::Flag
                | RootReason::Env
                | RootReason::Instance
                | RootReason::StateDir
                | RootReason::SharedDaemon
                | RootReason::Registered
        );
        if named {
            return None;
        }
        let home = home.and_then(|h| h.canonicalize().ok());
        let what = if self.root.parent().is_none() {
            "the filesystem root"
        } else if home.as_deref() == Some(self.root.as_path()) {
            "your home directory"
        } else if home.is_some_and(|h| h.starts_with(&self.root)) {
            "above your home directory"
        } else {
            return None;
        };
        Some(format!(
            "{} is {what} ({}): doc-serve would index everything under it. Run doc-serve in \
             a project (a git repository, or a directory holding .claude/), or name this \
             one if that is what you want: --path {} (or DOC_SERVE_PROJECT)",
            self.root.display(),
            self.reason,
            self.root.display()
        ))
    }

    /// A project at an already canonical root.
    pub fn at(root: PathBuf, reason: RootReason) -> Project {
        let state_dir = root.join(STATE_DIR);
        Project {
            root,
            reason,
            state_dir,
        }
    }

    /// The shared daemon's files, in `home/.doc-serve`: discovery (runtime.json, lock,
    /// PID file), shared_config.json and the registered projects work as a project's
    /// state dir does, so `start`, `stop` and `status` handle the daemon as they handle
    /// a resident.
    pub fn shared_daemon(home: &Path) -> Project {
        let home = home.canonicalize().unwrap_or_else(|_| home.to_path_buf());
        Project {
            state_dir: home.join(SHARED_DIR),
            root: home,
            reason: RootReason::SharedDaemon,
        }
    }

    pub fn is_shared_daemon(&self) -> bool {
        self.reason == RootReason::SharedDaemon
    }

    /// `p_` + the first 8 hex digits of SHA-256 of the canonical root (see the README, "State directory").
    pub fn id(&self) -> String {
        project_id(&self.root)
    }

    /// config.json, or shared_config.json for the shared daemon.
    pub fn config_file(&self) -> PathBuf {
        let name = if self.is_shared_daemon() {
            "shared_config.json"
        } else {
            "config.json"
        };
        self.state_dir.join(name)
    }
    pub fn runtime_file(&self) -> PathBuf {
        self.state_dir.join("runtime.json")
    }
    pub fn lock_file(&self) -> PathBuf {
        self.state_dir.join("doc-serve.lock")
    }
    pub fn pid_file(&self) -> PathBuf {
        self.state_dir.join("doc-serve.pid")
    }
    /// Serialises `doc-serve start` runs so that racing starts spawn one resident.
    pub fn start_lock_file(&self) -> PathBuf {
        self.state_dir.join("start.lock")
    }
    /// Creates the state dir (0700) and its .gitignore, which keeps everything but
    /// config.json out of git.
    pub fn create_state_dir(&self) -> Result<()> {
        crate::fsutil::create_private_dir(&self.state_dir)?;
        let ignore = self.state_dir.join(".gitignore");
        if !ignore.exists() {
            let text =
                "# doc-serve state: local to this machine, except config.json\n*\n!config.json\n";
            crate::fsutil::write_atomic(&ignore, text.as_bytes(), 0o600)?;
        }
        Ok(())
    }

    /// A directory named in config, relative to the state dir unless absolute.
    pub fn state_path(&self, configured: &Path) -> PathBuf {
        self.state_dir.join(configured)
    }
}

/// `p_` + the first 8 hex digits of SHA-256 of `root`'s bytes.
pub fn project_id(root: &Path) -> String {
    use std::os::unix::ffi::OsStrExt;
    let digest = Sha256::digest(root.as_os_str().as_bytes());
    let hex: String = digest[..4].iter().map(|b| format!("{b:02x}")).collect();
    format!("p_{hex}")
}

fn reason_name(reason: RootReason) -> &'static str {
    match reason {
        RootReason::Env => "DOC_SERVE_PROJECT",
        RootReason::Instance => "the instance registry",
        _ => "--path",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;

    fn resolve(cwd: &Path, home: Option<&Path>) -> Project {
        Project::resolve(None, cwd, home).unwrap()
    }

    #[test]
    fn order_of_markers() {
        let t = tempfile::tempdir().unwrap();
        let top = t.path().canonicalize().unwrap();
        let sub = top.join("a/b/c");
        fs::create_dir_all(&sub).unwrap();
        assert_eq!(resolve(&sub, None).reason, RootReason::CurrentDir);
        assert_eq!(resolve(&sub, None).root, sub);

        fs::write(top.join("a/pyproject.toml"), "").unwrap();
        assert_eq!(resolve(&sub, None).root, top.join("a"));
        assert_eq!(resolve(&sub, None).reason, RootReason::Pyproject);

        fs::create_dir(top.join(".claude")).unwrap();
        assert_eq!(resolve(&sub, None).root, top);
        assert_eq!(resolve(&sub, None).reason, RootReason::ClaudeDir);
        // The home directory's .claude is the assistant's config, not a project.
        assert_eq!(resolve(&sub, Some(&top)).reason, RootReason::Pyproject);

        // A worktree or submodule has a .git file.
        fs::write(top.join("a/b/.git"), "gitdir: /elsewhere\n").unwrap();
        assert_eq!(resolve(&sub, None).root, top.join("a/b"));
        assert_eq!(resolve(&sub, None).reason, RootReason::Git);

        fs::create_dir_all(top.join("a/b/c/.claude/doc-serve")).unwrap();
        fs::write(top.join("a/b/c/.claude/doc-serve/config.json"), "{}").unwrap();
        assert_eq!(resolve(&sub, None).root, sub);
        assert_eq!(resolve(&sub, None).reason, RootReason::StateDir);
    }

    #[test]
    fn symlinks_are_resolved() {
        let t = tempfile::tempdir().unwrap();
        let real = t.path().canonicalize().unwrap().join("real");
        fs::create_dir(&real).unwrap();
        let link = t.path().join("link");
        std::os::unix::fs::symlink(&real, &link).unwrap();
        let p = Project::resolve(Some((&link, RootReason::Flag)), t.path(), None).unwrap();
        assert_eq!(p.root, real);
        assert_eq!(p.id(), project_id(&real));
    }

    #[test]
    fn explicit_missing_root_is_an_error() {
        let t = tempfile::tempdir().unwrap();
        let err = Project::resolve(Some((Path::new("nope"), RootReason::Env)), t.path(), None)
            .unwrap_err();
        assert!(err.to_string().contains("DOC_SERVE_PROJECT"), "{err}");
    }

    #[test]
    fn project_id_shape() {
        let id = project_id(Path::new("/home/u/proj"));
        assert_eq!(id.len(), 10);
        assert!(id.starts_with("p_"));
    }

    #[test]
    fn home_and_root_must_be_named() {
        let t = tempfile::tempdir().unwrap();
        let home = t.path().canonicalize().unwrap().join("home");
        fs::create_dir_all(home.join("src/app")).unwrap();
        let at = |dir: &Path| resolve(dir, Some(&home));
        assert!(
            at(&home)
                .too_broad(Some(&home))
                .unwrap()
                .contains("home directory")
        );
        assert!(
            at(t.path())
                .too_broad(Some(&home))
                .unwrap()
                .contains("above your home")
        );
        assert!(at(&home.join("src/app")).too_broad(Some(&home)).is_none());
        let root = Project::at(PathBuf::from("/"), RootReason::CurrentDir);
        assert!(root.too_broad(None).unwrap().contains("filesystem root"));
        // A dotfiles repository makes the home directory a git top-level: still refused.
        fs::create_dir(home.join(".git")).unwrap();
        assert_eq!(at(&home.join("src")).reason, RootReason::Git);
        assert!(at(&home.join("src")).too_broad(Some(&home)).is_some());
        for reason in [RootReason::Flag, RootReason::Env] {
            let named = Project::resolve(Some((&home, reason)), t.path(), Some(&home)).unwrap();
            assert!(named.too_broad(Some(&home)).is_none());
        }
        fs::create_dir_all(home.join(STATE_DIR)).unwrap();
        fs::write(home.join(STATE_DIR).join("config.json"), "{}").unwrap();
        assert!(at(&home).too_broad(Some(&home)).is_none());
    }
}
