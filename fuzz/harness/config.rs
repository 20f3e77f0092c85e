//! `config_json`: config.json as `doc-serve` reads it ([`Config::load`], from a file).
//!
//! A load either fails with a message or gives a config that passed validation, and a
//! loaded config written back as JSON loads again to the same settings.

use std::path::PathBuf;

use doc_serve::config::{Config, Environment, Flags};

/// A private temp dir for the file under test.
pub struct Fixture {
    dir: tempfile::TempDir,
}

impl Fixture {
    pub fn new() -> Fixture {
        Fixture {
            dir: tempfile::tempdir().expect("temp dir"),
        }
    }

    fn load(&self, bytes: &[u8]) -> (PathBuf, Result<Config, String>) {
        let path = self.dir.path().join("config.json");
        std::fs::write(&path, bytes).expect("write config.json");
        let loaded = Config::load(&path, &Environment::default(), &Flags::default());
        (path, loaded.map_err(|e| e.to_string()))
    }
}

pub fn check(fixture: &Fixture, data: &[u8]) {
    let (path, loaded) = fixture.load(data);
    let config = match loaded {
        Ok(c) => c,
        Err(message) => {
            assert!(!message.is_empty(), "an error without a message");
            return;
        }
    };
    assert!(config.chunk_size > 0 && config.chunk_overlap < config.chunk_size);
    for zero in [
        config.start_timeout.is_zero(),
        config.request_timeout.is_zero(),
        config.max_connections == 0,
        config.max_body_bytes == 0,
        config.max_file_bytes == 0,
        config.max_hits_per_file == 0,
        config.max_concurrent_indexing == 0,
        config.max_open_projects == 0,
    ] {
        assert!(!zero, "a zero limit passed validation: {config:?}");
    }
    for w in &config.warnings {
        assert!(
            w.contains(&*path.to_string_lossy()),
            "warning without its file: {w}"
        );
    }
    let json = serde_json::to_vec(&config).expect("Config serialises");
    let (_, again) = fixture.load(&json);
    let again = again.unwrap_or_else(|e| panic!("a loaded config does not load back: {e}"));
    assert_eq!(
        serde_json::to_value(&again).expect("Config serialises"),
        serde_json::to_value(&config).expect("Config serialises"),
        "config.json round trip"
    );
}
