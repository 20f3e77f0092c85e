//! The shared daemon's home, `~/.doc-serve/` (README, "Shared daemon"): the projects registered with
//! it, where each one's index lives, and the settings it is indexed with.
//!
//! A registered project is `projects/<id>/project.json` (its canonical root) beside
//! its `data/` and `logs/`. The id is the project id of the root, so a second root with
//! the same id (a hash collision, or a record edited by hand) is refused, never merged.
//! The daemon and a standalone client of a shared-mode project use the same functions,
//! so both read and write the same index.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::config::{Config, Environment, Flags};
use crate::error::{Error, Result};
use crate::fsutil;
use crate::project::{self, Project, RootReason};

/// The record of one registered project.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Registration {
    pub id: String,
    pub root: PathBuf,
    pub registered_at: String,
}

/// Why a root cannot be registered.
#[derive(Debug, thiserror::Error)]
pub enum RegisterError {
    #[error("{0}")]
    BadRoot(String),
    #[error(
        "project id {id} is already registered for {}; refusing to merge {} into it \
         (remove {} to re-register)",
        registered.display(), root.display(), record.display()
    )]
    Collision {
        id: String,
        root: PathBuf,
        registered: PathBuf,
        record: PathBuf,
    },
    #[error(transparent)]
    Io(#[from] Error),
}

/// `~/.doc-serve/`, as the daemon's state dir.
#[derive(Debug, Clone)]
pub struct Home {
    pub daemon: Project,
}

impl Home {
    pub fn new(home: &Path) -> Home {
        Home {
            daemon: Project::shared_daemon(home),
        }
    }

    /// `~/.doc-serve`, from the environment's home directory.
    pub fn of(env: &Environment) -> Result<Home> {
        let home = env.home.as_deref().ok_or_else(|| Error::Setting {
            name: "HOME".into(),
            message: "is not set; the shared daemon keeps its state in ~/.doc-serve".into(),
        })?;
        Ok(Home::new(home))
    }

    pub fn dir(&self) -> &Path {
        &self.daemon.state_dir
    }

    pub fn project_dir(&self, id: &str) -> PathBuf {
        self.dir().join("projects").join(id)
    }

    fn record_file(&self, id: &str) -> PathBuf {
        self.project_dir(id).join("project.json")
    }

    /// The registration of `id`, if any. A record that cannot be read is an error
    /// naming the file.
    pub fn registration(&self, id: &str) -> Result<Option<Registration>> {
        let file = self.record_file(id);
        let text = match std::fs::read(&file) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(Error::io(format!("cannot read {}", file.display()), e)),
        };
        serde_json::from_slice(&text)
            .map(Some)
            .map_err(|e| Error::Config {
                path: file,
                message: format!("not a project record: {e}"),
            })
    }

    /// Every registered project, and every record that could not be read.
    pub fn registrations(&self) -> (Vec<Registration>, Vec<Error>) {
        let (mut found, mut bad) = (Vec::new(), Vec::new());
        let Ok(entries) = std::fs::read_dir(self.dir().join("projects")) else {
            return (found, bad);
        };
        for entry in entries.flatten() {
            let id = entry.file_name().to_string_lossy().into_owned();
            match self.registration(&id) {
                Ok(Some(r)) if r.id == id => found.push(r),
                Ok(Some(r)) => bad.push(Error::Config {
                    path: self.record_file(&id),
                    message: format!("records id {}, not {id}", r.id),
                }),
                Ok(None) => {}
                Err(e) => bad.push(e),
            }
        }
        found.sort_by(|a, b| a.id.cmp(&b.id));
        (found, bad)
    }

    /// Registers `root` (any path to a directory); `true` when it was new.
    pub fn register(&self, root: &Path) -> Result<(Registration, bool), RegisterError> {
        let canonical = root
            .canonicalize()
            .map_err(|e| RegisterError::BadRoot(format!("project root {}: {e}", root.display())))?;
        if !canonical.is_dir() {
            return Err(RegisterError::BadRoot(format!(
                "project root {} is not a directory",
                canonical.display()
            )));
        }
        let id = project::project_id(&canonical);
        if let Some(existing) = self.registration(&id)? {
            if existing.root == canonical {
                return Ok((existing, false));
            }
            return Err(RegisterError::Collision {
                record: self.record_file(&id),
                id,
                root: canonical,
                registered: existing.root,
            });
        }
        fsutil::create_private_dir(&self.project_dir(&id))?;
        let record = Registration {
            id: id.clone(),
            root: canonical,
            registered_at: crate::events::now_rfc3339(),
        };
        let mut text = serde_json::to_vec_pretty(&record).unwrap_or_default();
        text.push(b'\n');
        fsutil::write_atomic(&self.record_file(&id), &text, 0o600)?;
        Ok((record, true))
    }

    /// The settings a registered project is indexed with: its own config.json and the
    /// environment, with the index and logs in the daemon's home and the chunking of
    /// `daemon` (shared_config.json).
    pub fn project_config(
        &self,
        env: &Environment,
        daemon: &Config,
        project: &Project,
    ) -> Result<Config> {
        let mut config = Config::load(&project.config_file(), env, &Flags::default())?;
        self.place(&mut config, daemon, project);
        Ok(config)
    }

    /// Puts a registered project's index and logs in the daemon's home, chunked as
    /// `daemon` says.
    pub fn place(&self, config: &mut Config, daemon: &Config, project: &Project) {
        let dir = self.project_dir(&project.id());
        config.data_dir = dir.join("data");
        config.log_dir = dir.join("logs");
        config.chunk_size = daemon.chunk_size;
        config.chunk_overlap = daemon.chunk_overlap;
    }
}

/// A registered project, as a [`Project`].
pub fn project(reg: &Registration) -> Project {
    Project::at(reg.root.clone(), RootReason::Registered)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn register_is_idempotent_and_refuses_collisions() {
        let t = tempfile::tempdir().unwrap();
        let home = Home::new(t.path());
        let root = t.path().join("proj");
        std::fs::create_dir(&root).unwrap();
        let (reg, new) = home.register(&root).unwrap();
        assert!(new);
        assert_eq!(reg.root, root.canonicalize().unwrap());
        let (again, new) = home.register(&root.join(".")).unwrap();
        assert!(!new);
        assert_eq!(again, reg);
        assert_eq!(home.registrations().0, vec![reg.clone()]);

        // A record naming another root under this id: refused, never merged.
        let other = t.path().join("other");
        std::fs::create_dir(&other).unwrap();
        let forged = Registration {
            root: other.canonicalize().unwrap(),
            ..reg.clone()
        };
        std::fs::write(
            home.record_file(&reg.id),
            serde_json::to_vec(&forged).unwrap(),
        )
        .unwrap();
        let err = home.register(&root).unwrap_err();
        assert!(matches!(err, RegisterError::Collision { .. }), "{err}");
        assert!(err.to_string().contains("refusing to merge"), "{err}");

        assert!(matches!(
            home.register(&t.path().join("missing")),
            Err(RegisterError::BadRoot(_))
        ));
        std::fs::write(home.record_file(&reg.id), "{").unwrap();
        let (ok, bad) = home.registrations();
        assert!(ok.is_empty());
        assert_eq!(bad.len(), 1);
    }
}
