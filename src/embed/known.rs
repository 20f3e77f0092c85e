//! Models doc-serve knows by name: where `doc-serve model fetch` gets them, the SHA-256
//! of every file it downloads, and the cache directory they are installed in.

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
    /// Tokens of a text the model reads (sentence-transformers' `max_seq_length`).
    pub max_tokens: usize,
    pub files: &'static [KnownFile],
    pub about: &'static str,
}

pub const KNOWN: &[Known] = &[Known {
    name: "all-MiniLM-L6-v2",
    repo: "sentence-transformers/all-MiniLM-L6-v2",
    revision: "1110a243fdf4706b3f48f1d95db1a4f5529b4d41",
    pooling: Pooling::Mean,
    dim: 384,
    max_tokens: 256,
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
        KnownFile {
            name: "1_Pooling/config.json",
            sha256: "4be450dde3b0273bb9787637cfbd28fe04a7ba6ab9d36ac48e92b11e350ffc23",
            size: 190,
        },
        KnownFile {
            name: "sentence_bert_config.json",
            sha256: "fc1993fde0a95c24ec6c022539d41cf6e2f7c9721e5415d6fb6897472a9cd4b7",
            size: 53,
        },
    ],
    about: "English, 384 dimensions, 256 tokens; Apache-2.0",
}];

/// The known models' names, for messages: `a, b`.
pub fn names() -> String {
    KNOWN.iter().map(|k| k.name).collect::<Vec<_>>().join(", ")
}

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

/// The longest text a known model reads, by its directory's name: the fallback when
/// the directory lacks `sentence_bert_config.json`.
pub fn max_tokens_by_name(dir: &Path) -> Option<usize> {
    dir.file_name()
        .and_then(|n| find(&n.to_string_lossy()))
        .map(|k| k.max_tokens)
}

/// Where known models are installed, one directory each: `$DOC_SERVE_MODEL_DIR`, else
/// `$XDG_CACHE_HOME/doc-serve/models`, else `~/.cache/doc-serve/models` (see the
/// README, "Configuration"). `None` when none of these is set (relative XDG and HOME
/// values are ignored, as the XDG base directory spec says).
pub fn cache_dir() -> Option<PathBuf> {
    let var = |name: &str| std::env::var_os(name).filter(|v| !v.is_empty());
    if let Some(dir) = var("DOC_SERVE_MODEL_DIR") {
        // Relative to the current directory, as a relative path given on the command
        // line would be.
        return Some(std::path::absolute(&dir).unwrap_or_else(|_| PathBuf::from(dir)));
    }
    let absolute = |name: &str| var(name).map(PathBuf::from).filter(|p| p.is_absolute());
    absolute("XDG_CACHE_HOME")
        .or_else(|| absolute("HOME").map(|h| h.join(".cache")))
        .map(|c| c.join("doc-serve").join("models"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_known_models_length_is_its_own_without_sentence_bert_config() {
        assert_eq!(
            max_tokens_by_name(Path::new("/m/all-minilm-l6-v2")),
            Some(256)
        );
        assert_eq!(max_tokens_by_name(Path::new("/m/mine")), None);
        let test_model =
            Path::new(env!("CARGO_MANIFEST_DIR")).join("target/models/all-MiniLM-L6-v2");
        if !test_model.join("model.safetensors").exists() {
            assert!(
                std::env::var_os("CI").is_none(),
                "the test model is required in CI: run tests/embed/setup"
            );
            eprintln!("SKIP: no test model (run tests/embed/setup)");
            return;
        }
        // The three files a model needs, linked, and nothing of sentence-transformers'.
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("all-MiniLM-L6-v2");
        std::fs::create_dir(&dir).unwrap();
        for f in super::super::MODEL_FILES {
            std::os::unix::fs::symlink(test_model.join(f), dir.join(f)).unwrap();
        }
        let m = super::super::Model::load(&dir, 1).unwrap();
        assert_eq!(m.max_tokens(), 256);
    }
}
