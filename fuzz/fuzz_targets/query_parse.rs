//! The query language and the search behind it; see `fuzz/harness/query.rs`.
#![no_main]

use std::sync::OnceLock;

#[path = "../harness/fixture.rs"]
mod fixture;
#[path = "../harness/query.rs"]
mod query;

static FIXTURE: OnceLock<query::Fixture> = OnceLock::new();

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    query::check(FIXTURE.get_or_init(query::Fixture::new), data);
});
