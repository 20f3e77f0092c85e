//! From files on disk to index updates: walking the sources, chunking them by
//! section, reconciling the index with the disk, and watching for changes; and reading
//! a source back, whole or by lines, heading or section id.
//!
//! Nothing here knows about HTTP or tokio; the server runs it on a thread of its own.

pub mod chunk;
pub mod private;
pub mod read;
pub mod rules;
pub mod sync;
pub mod walk;
pub mod watcher;
