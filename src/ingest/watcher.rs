//! Watching the root for changes (notify: inotify, FSEvents, ...).
//!
//! The watcher passes on the paths that changed; the indexer updates just those files,
//! or reconciles the whole tree when a directory or an ignore file changed, or when
//! events were lost. Events in doc-serve's own files (the state dir: our own index and
//! log writes; see [`super::private`]), and in any other project's state dir in the
//! tree, are dropped, or every commit would trigger the next. The watch does not
//! follow links, so an event names where the change happened. Events in `.git/` are
//! dropped too. Access
//! events (a file opened or read) are dropped, except a close after writing: with a
//! rename into place or a removal, it says the change is complete ("settled"), so the
//! indexer need not wait out the whole debounce.

use std::path::{Path, PathBuf};

use notify::event::{AccessKind, AccessMode, ModifyKind};
use notify::{EventKind, RecommendedWatcher, RecursiveMode, Watcher};

use super::private::Private;

/// What the watcher saw.
#[derive(Debug)]
pub struct Change {
    /// The paths an event names, or `None` when events were lost (reconcile all).
    pub paths: Option<Vec<PathBuf>>,
    /// The writer is done with these paths: closed after writing, renamed or removed.
    pub settled: bool,
}

/// Starts watching `root`; `on_change` runs on the watcher's thread for each relevant
/// event.
pub fn watch(
    root: &Path,
    private: &Private,
    on_change: impl Fn(Change) + Send + 'static,
) -> notify::Result<RecommendedWatcher> {
    let private = private.clone();
    let git_dir = root.join(".git");
    let handler = move |res: notify::Result<notify::Event>| {
        let lost = Change {
            paths: None,
            settled: true,
        };
        let Ok(event) = res else {
            // Overflow or a watch error: a reconcile catches whatever was missed.
            on_change(lost);
            return;
        };
        let settled = match event.kind {
            EventKind::Access(AccessKind::Close(AccessMode::Write)) => true,
            EventKind::Access(_) => return,
            EventKind::Modify(ModifyKind::Name(_)) | EventKind::Remove(_) => true,
            _ => false,
        };
        if event.need_rescan() {
            on_change(lost);
            return;
        }
        // By name first (the state dir's own events, the most frequent), then by what
        // the name leads to.
        // Links are not followed, so a path here is where the change happened: a
        // name in one of our places is our own write. A link itself changing (made,
        // renamed over a file, removed) is judged by the indexer, by what it leads to.
        let mut places = None;
        let paths: Vec<PathBuf> = event
            .paths
            .into_iter()
            .filter(|p| !p.starts_with(&git_dir) && !private.names(p))
            .filter(|p| {
                let places = places.get_or_insert_with(|| private.now());
                places.holding_real(p).is_none()
            })
            .collect();
        if !paths.is_empty() {
            on_change(Change {
                paths: Some(paths),
                settled,
            });
        }
    };
    // Not following symlinks: a link to `/` or `/usr` would add a watch per directory
    // there (or fail on /proc and leave no watcher at all), and one back up the tree
    // would watch it twice. A file reached through a linked directory is caught up by
    // the periodic reconciliation.
    let config = notify::Config::default().with_follow_symlinks(false);
    let mut watcher = RecommendedWatcher::new(handler, config)?;
    watcher.watch(root, RecursiveMode::Recursive)?;
    Ok(watcher)
}
