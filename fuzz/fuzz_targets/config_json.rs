//! config.json loading; see `fuzz/harness/config.rs`.
#![no_main]

use std::sync::OnceLock;

#[path = "../harness/config.rs"]
mod config;

static FIXTURE: OnceLock<config::Fixture> = OnceLock::new();

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    config::check(FIXTURE.get_or_init(config::Fixture::new), data);
});
