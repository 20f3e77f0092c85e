//! The fuzz targets' checks, one module per target, shared by `fuzz/fuzz_targets/*`
//! (each includes the files it needs with `#[path]`) and by the regression test
//! `tests/integration/fuzz_regressions.rs` (which includes this file), so a saved
//! input is replayed through exactly the code that found it.

pub mod chunk;
pub mod config;
mod fixture;
pub mod http;
pub mod query;
pub mod runtime;
