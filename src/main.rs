//! The `doc-serve` binary: run the CLI, print the error chain, map to an exit code.

use doc_serve::error::exit;

fn main() {
    doc_serve::embed::init_process();
    let code = match doc_serve::cli::run() {
        Ok(code) => code,
        Err(err) => {
            eprintln!("doc-serve: error: {err:#}");
            exit::ERROR
        }
    };
    std::process::exit(code);
}
