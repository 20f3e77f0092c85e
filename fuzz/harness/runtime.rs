//! `runtime_json`: runtime.json as clients read it ([`RuntimeFile::read`], from a file).
//!
//! Reading never fails outright: it classifies the file. A file read as valid has the
//! supported schema version, and writing that state back reads again to the same state.

use doc_serve::discovery::runtime::{RuntimeFile, SCHEMA_VERSION};

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
}

pub fn check(fixture: &Fixture, data: &[u8]) {
    let path = fixture.dir.path().join("runtime.json");
    std::fs::write(&path, data).expect("write runtime.json");
    let read = RuntimeFile::read(&path);
    assert!(!read.describe().is_empty());
    let state = match read {
        RuntimeFile::Valid(state) => state,
        RuntimeFile::Missing => panic!("a file that exists read as missing"),
        RuntimeFile::Garbage(why) => {
            assert!(!why.is_empty(), "garbage without a reason");
            return;
        }
        RuntimeFile::UnknownVersion(v) => {
            assert_ne!(
                v.as_u64(),
                Some(SCHEMA_VERSION),
                "known version read as unknown"
            );
            return;
        }
    };
    assert_eq!(state.schema_version, SCHEMA_VERSION);
    let copy = fixture.dir.path().join("runtime-copy.json");
    state.write(&copy).expect("write runtime.json back");
    match RuntimeFile::read(&copy) {
        RuntimeFile::Valid(again) => assert_eq!(again, state, "runtime.json round trip"),
        other => panic!("a valid runtime.json written back reads as {other:?}"),
    }
}
