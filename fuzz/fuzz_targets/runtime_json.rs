//! runtime.json reading; see `fuzz/harness/runtime.rs`.
#![no_main]

use std::sync::OnceLock;

#[path = "../harness/runtime.rs"]
mod runtime;

static FIXTURE: OnceLock<runtime::Fixture> = OnceLock::new();

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    runtime::check(FIXTURE.get_or_init(runtime::Fixture::new), data);
});
