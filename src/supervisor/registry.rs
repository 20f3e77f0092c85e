//! The instance registry: which project root each supervised instance serves.
//!
//! Supervisor instances are named by short slugs (`doc-serve@docs-site`), never by
//! escaped paths, which break socket file names and the 108-byte `sun_path` limit. This
//! file maps each slug to its project root, socket and optional TCP port. It lives in
//! `$XDG_CONFIG_HOME/doc-serve/instances.json` and is rewritten atomically under an
//! flock on `instances.lock`, so two installs running at once never lose an entry.

use std::collections::BTreeMap;
use std::fs::File;
use std::path::{Path, PathBuf};

use nix::fcntl::{Flock, FlockArg};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::fsutil;

pub const SCHEMA_VERSION: u32 = 1;
/// Longest slug: leaves room in `sun_path` for the runtime dir.
pub const MAX_SLUG: usize = 40;
/// The shared daemon's name (`shared.sock`, `dev.doc-serve.shared`): never an instance.
pub const RESERVED: &str = "shared";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Supervisor {
    Systemd,
    Launchd,
}

impl Supervisor {
    pub fn name(self) -> &'static str {
        match self {
            Supervisor::Systemd => "systemd",
            Supervisor::Launchd => "launchd",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Instance {
    pub slug: String,
    pub root: PathBuf,
    pub supervisor: Supervisor,
    /// The Unix socket the supervisor listens on for this instance.
    pub socket_path: PathBuf,
    /// A TCP listener on 127.0.0.1, when one was asked for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tcp_port: Option<u16>,
}

#[derive(Debug, Default, Serialize, Deserialize)]
pub struct Registry {
    pub schema_version: u32,
    #[serde(default)]
    pub instances: BTreeMap<String, Instance>,
}

impl Registry {
    /// `<config home>/doc-serve/instances.json`.
    pub fn file(config_home: &Path) -> PathBuf {
        config_home.join("doc-serve").join("instances.json")
    }

    /// Reads the registry; a missing file is an empty registry.
    pub fn load(path: &Path) -> Result<Registry> {
        let bytes = match std::fs::read(path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Ok(Registry {
                    schema_version: SCHEMA_VERSION,
                    ..Registry::default()
                });
            }
            Err(e) => return Err(Error::io(format!("cannot read {}", path.display()), e)),
        };
        let bad = |message: String| Error::Config {
            path: path.to_owned(),
            message,
        };
        let reg: Registry = serde_json::from_slice(&bytes).map_err(|e| bad(e.to_string()))?;
        if reg.schema_version != SCHEMA_VERSION {
            return Err(bad(format!(
                "schema_version {} is not supported by this doc-serve (it reads {SCHEMA_VERSION})",
                reg.schema_version
            )));
        }
        Ok(reg)
    }

    /// Loads the registry under its lock, lets `change` edit it, and saves it
    /// atomically when `change` succeeds.
    pub fn update<T>(path: &Path, change: impl FnOnce(&mut Registry) -> Result<T>) -> Result<T> {
        let dir = path.parent().unwrap_or(Path::new("."));
        fsutil::create_private_dir(dir)?;
        let lock_path = dir.join("instances.lock");
        let file = File::options()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .map_err(|e| Error::io(format!("cannot open {}", lock_path.display()), e))?;
        let _lock = Flock::lock(file, FlockArg::LockExclusive).map_err(|(_, e)| {
            Error::io(format!("cannot lock {}", lock_path.display()), e.into())
        })?;
        let mut reg = Registry::load(path)?;
        let out = change(&mut reg)?;
        let mut json = serde_json::to_vec_pretty(&reg).unwrap_or_default();
        json.push(b'\n');
        fsutil::write_atomic(path, &json, 0o600)?;
        Ok(out)
    }

    /// The instance of `root` under `supervisor`, if one is registered.
    pub fn by_root(&self, root: &Path, supervisor: Supervisor) -> Option<&Instance> {
        self.instances
            .values()
            .find(|i| i.root == root && i.supervisor == supervisor)
    }

    /// A slug for `root` that no other root uses: its directory name, made a slug,
    /// with `-2`, `-3`, ... appended while taken.
    pub fn free_slug(&self, root: &Path) -> String {
        let base = slugify(
            root.file_name()
                .map(|n| n.to_string_lossy())
                .as_deref()
                .unwrap_or("project"),
        );
        let free = |s: &str| s != RESERVED && self.instances.get(s).is_none_or(|i| i.root == root);
        if free(&base) {
            return base;
        }
        (2..)
            .map(|n| {
                let suffix = format!("-{n}");
                let keep = MAX_SLUG - suffix.len();
                format!(
                    "{}{suffix}",
                    base[..base.len().min(keep)].trim_end_matches('-')
                )
            })
            .find(|s| free(s))
            .unwrap_or(base)
    }
}

/// `name` as a slug: lowercase ASCII letters, digits and single dashes.
pub fn slugify(name: &str) -> String {
    let mut out = String::new();
    for c in name.chars().flat_map(char::to_lowercase) {
        if c.is_ascii_alphanumeric() {
            out.push(c);
        } else if !out.ends_with('-') && !out.is_empty() {
            out.push('-');
        }
        if out.len() >= MAX_SLUG {
            break;
        }
    }
    let out = out.trim_end_matches('-');
    if out.is_empty() {
        "project".into()
    } else {
        out.into()
    }
}

/// Checks a slug given with `--name` or `--instance`.
pub fn check_slug(slug: &str) -> Result<()> {
    let ok = !slug.is_empty()
        && slug.len() <= MAX_SLUG
        && slug
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !slug.starts_with('-')
        && !slug.ends_with('-')
        && slug != RESERVED;
    if ok {
        Ok(())
    } else {
        Err(Error::Setting {
            name: "instance name".into(),
            message: format!(
                "{slug:?} is not a slug: use 1-{MAX_SLUG} lowercase letters, digits and \
                 inner dashes, e.g. \"my-docs\" (\"{RESERVED}\" names the shared daemon)"
            ),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn instance(slug: &str, root: &str) -> Instance {
        Instance {
            slug: slug.into(),
            root: root.into(),
            supervisor: Supervisor::Systemd,
            socket_path: format!("/run/user/1/doc-serve/{slug}.sock").into(),
            tcp_port: None,
        }
    }

    #[test]
    fn slugs() {
        assert_eq!(slugify("My Docs_Site!"), "my-docs-site");
        assert_eq!(slugify("---"), "project");
        assert_eq!(slugify("Ünïcode"), "n-code");
        assert_eq!(slugify(&"a".repeat(99)).len(), MAX_SLUG);
        assert!(check_slug("docs-2").is_ok());
        for bad in ["", "-a", "a-", "A", "a/b", "a.b", "shared", &"a".repeat(41)] {
            assert!(check_slug(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn free_slug_keeps_roots_apart() {
        let mut reg = Registry::default();
        assert_eq!(reg.free_slug(Path::new("/src/app")), "app");
        reg.instances
            .insert("app".into(), instance("app", "/src/app"));
        assert_eq!(reg.free_slug(Path::new("/src/app")), "app");
        assert_eq!(reg.free_slug(Path::new("/other/app")), "app-2");
        reg.instances
            .insert("app-2".into(), instance("app-2", "/other/app"));
        assert_eq!(reg.free_slug(Path::new("/third/App")), "app-3");
        assert_eq!(reg.free_slug(Path::new("/src/shared")), "shared-2");
    }

    #[test]
    fn update_round_trips_and_rejects_garbage() {
        let dir = tempfile::tempdir().unwrap();
        let path = Registry::file(dir.path());
        Registry::update(&path, |r| {
            r.instances
                .insert("app".into(), instance("app", "/src/app"));
            Ok(())
        })
        .unwrap();
        let reg = Registry::load(&path).unwrap();
        assert_eq!(reg.instances["app"].root, Path::new("/src/app"));
        assert!(
            reg.by_root(Path::new("/src/app"), Supervisor::Systemd)
                .is_some()
        );
        assert!(
            reg.by_root(Path::new("/src/app"), Supervisor::Launchd)
                .is_none()
        );
        std::fs::write(&path, "{ nope").unwrap();
        let err = Registry::load(&path).unwrap_err().to_string();
        assert!(err.contains("instances.json"), "{err}");
        std::fs::write(&path, r#"{"schema_version": 9}"#).unwrap();
        let err = Registry::load(&path).unwrap_err().to_string();
        assert!(err.contains("schema_version 9"), "{err}");
    }
}
