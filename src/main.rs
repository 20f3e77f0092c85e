//! The `doc-serve` binary: run the CLI, print the error chain, map to an exit code.

use doc_serve::error::exit;

fn main() {
    map_large_blocks();
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

/// Gives every block of 128 KiB or more its own mapping, unmapped when it is freed.
/// glibc's threshold for that otherwise rises each time such a block is freed (up to
/// 32 MiB), and from then on those blocks come from the heap, which keeps their pages:
/// over a full index, the writer's memory, freed at the end of every batch, piled up
/// (767 MB of docs: the heap grew to 587 MiB and the peak RSS to 955 MiB; with this,
/// 202 MiB and about 480 MiB, in about the same time; BENCHMARKS.md, Scale). A
/// threshold set in the environment (`MALLOC_MMAP_THRESHOLD_`, `GLIBC_TUNABLES`) is
/// left as it is.
fn map_large_blocks() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        let tunables = std::env::var("GLIBC_TUNABLES").unwrap_or_default();
        if std::env::var_os("MALLOC_MMAP_THRESHOLD_").is_some()
            || tunables.contains("mmap_threshold")
        {
            return;
        }
        // SAFETY: mallopt only sets an allocator parameter; it is called before any
        // other thread exists.
        unsafe {
            libc::mallopt(libc::M_MMAP_THRESHOLD, 128 << 10);
        }
    }
}
