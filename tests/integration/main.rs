//! Integration tests: the real `doc-serve` binary in a temp HOME/XDG tree.

mod activation;
mod bad_input;
mod clients;
mod concurrency;
mod config;
mod crash;
mod doctor;
mod full_disk;
mod fuzz_regressions;
mod http;
mod lifecycle;
mod load;
mod logging;
mod mcp;
mod own_files;
mod packaging;
mod project;
mod reload;
mod search;
mod sections;
mod shared;
mod stale;
mod supervisor;
mod transports;
mod users;
mod util;
