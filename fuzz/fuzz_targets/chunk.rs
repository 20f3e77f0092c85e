//! The chunkers of every format; see `fuzz/harness/chunk.rs`.
#![no_main]

#[path = "../harness/chunk.rs"]
mod chunk;

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    chunk::check(data);
});
