//! One HTTP/1.1 connection to a resident; see `fuzz/harness/http.rs`.
#![no_main]

use std::sync::OnceLock;

#[path = "../harness/fixture.rs"]
mod fixture;
#[path = "../harness/http.rs"]
mod http;

static FIXTURE: OnceLock<http::Fixture> = OnceLock::new();

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    http::check(FIXTURE.get_or_init(http::Fixture::new), data);
});
