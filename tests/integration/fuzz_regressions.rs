//! Fuzz inputs replayed in process: every file in `fuzz/regressions/<target>/` (inputs
//! that once crashed a target, and tricky ones kept on purpose) and in
//! `fuzz/seeds/<target>/`, through the same checks the fuzz targets run
//! (`fuzz/harness/`), so a fixed crash stays fixed without nightly or libFuzzer.

use std::path::{Path, PathBuf};

#[path = "../../fuzz/harness/mod.rs"]
mod harness;

/// The saved inputs of `target`, by path; at least one regression file, so the
/// replay always does something.
fn inputs(target: &str) -> Vec<(PathBuf, Vec<u8>)> {
    let fuzz = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz");
    let mut out = Vec::new();
    for dir in ["regressions", "seeds"] {
        let Ok(entries) = std::fs::read_dir(fuzz.join(dir).join(target)) else {
            assert_ne!(dir, "regressions", "fuzz/regressions/{target}/ is missing");
            continue;
        };
        for entry in entries {
            let path = entry.unwrap().path();
            if path.is_file() {
                let bytes = std::fs::read(&path).unwrap();
                out.push((path, bytes));
            }
        }
    }
    out.sort();
    assert!(
        out.iter()
            .any(|(p, _)| p.components().any(|c| c.as_os_str() == "regressions")),
        "no regression inputs for {target}"
    );
    out
}

/// Runs `check` on each input, naming the file first so a failure says which one.
fn replay(target: &str, mut check: impl FnMut(&[u8])) {
    for (path, bytes) in inputs(target) {
        eprintln!("replaying {}", path.display());
        check(&bytes);
    }
}

#[test]
fn query_parse() {
    let fixture = harness::query::Fixture::new();
    replay("query_parse", |data| harness::query::check(&fixture, data));
}

#[test]
fn chunk() {
    replay("chunk", harness::chunk::check);
}

#[test]
fn config_json() {
    let fixture = harness::config::Fixture::new();
    replay("config_json", |data| harness::config::check(&fixture, data));
}

#[test]
fn runtime_json() {
    let fixture = harness::runtime::Fixture::new();
    replay("runtime_json", |data| {
        harness::runtime::check(&fixture, data)
    });
}

#[test]
fn http_request() {
    let fixture = harness::http::Fixture::new();
    replay("http_request", |data| harness::http::check(&fixture, data));
}
