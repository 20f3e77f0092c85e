//! Models doc-serve knows by name: where `doc-serve model fetch` gets them, and the
//! SHA-256 of every file it downloads.

use std::path::{Path, PathBuf};

use super::Pooling;

pub struct KnownFile {
    pub name: &'static str,
    pub sha256: &'static str,
    /// Bytes, for progress and a first check.
    pub size: u64,
}

pub struct Known {
    pub name: &'static str,
    /// The Hugging Face repository and the commit the hashes are of.
    pub repo: &'static str,
    pub revision: &'static str,
    pub pooling: Pooling,
    pub dim: usize,
    pub files: &'static [KnownFile],
    pub about: &'static str,
}

pub const KNOWN: &[Known] = &[Known {
    name: "all-MiniLM-L6-v2",
    repo: "sentence-transformers/all-MiniLM-L6-v2",
    revision: "main",
    pooling: Pooling::Mean,
    dim: 384,
    files: &[
        KnownFile {
            name: "config.json",
            sha256: "953f9c0d463486b10a6871cc2fd59f223b2c70184f49815e7efbcab5d8908b41",
            size: 612,
        },
        KnownFile {
            name: "tokenizer.json",
            sha256: "be50c3628f2bf5bb5e3a7f17b1f74611b2561a3a27eeab05e5aa30f411572037",
            size: 466_247,
        },
        KnownFile {
            name: "model.safetensors",
            sha256: "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db",
            size: 90_868_376,
        },
    ],
    about: "English, 384 dimensions, 256 tokens; Apache-2.0",
}];

/// The known model called `name` (case-insensitive).
pub fn find(name: &str) -> Option<&'static Known> {
    KNOWN.iter().find(|k| k.name.eq_ignore_ascii_case(name))
}

/// The directory `setting` names: a known model's in `cache`, or the path itself.
pub fn resolve(setting: &str, cache: &Path) -> PathBuf {
    match find(setting) {
        Some(k) if !setting.contains('/') => cache.join(k.name),
        _ => PathBuf::from(setting),
    }
}

/// The pooling of a known model by its directory's name; mean otherwise (what
/// sentence-transformers does without a pooling configuration).
pub fn pooling_by_name(dir: &Path) -> Pooling {
    dir.file_name()
        .and_then(|n| find(&n.to_string_lossy()))
        .map_or(Pooling::Mean, |k| k.pooling)
}

/// Where `doc-serve model fetch` installs models: `$DOC_SERVE_MODEL_DIR`, else
/// `$XDG_CACHE_HOME/doc-serve/models`, else `~/.cache/doc-serve/models`.
pub fn cache_dir() -> Option<PathBuf> {
    let set = |v: &str| {
        std::env::var_os(v)
            .filter(|s| !s.is_empty())
            .map(PathBuf::from)
    };
    set("DOC_SERVE_MODEL_DIR")
        .or_else(|| set("XDG_CACHE_HOME").map(|d| d.join("doc-serve").join("models")))
        .or_else(|| set("HOME").map(|d| d.join(".cache").join("doc-serve").join("models")))
}
