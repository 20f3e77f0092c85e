//! Watching the root for changes (notify: inotify, FSEvents, ...).
//!
//! The watcher passes on the paths that changed; the indexer updates just those files,
//! or reconciles the whole tree when a directory or an ignore file changed, or when
//! events were lost. Events under the
//! state dir (our own index writes) and `.git/` are dropped, or every commit would
//! trigger the next. Access events (a file opened or read) are dropped too.

use std::path::{Path, PathBuf};

use notify::{EventKind, RecommendedWatcher, RecursiveMode, Watcher};

/// Starts watching `root`; `on_change` runs on the watcher's thread for each relevant
/// event, with the paths it names, or `None` when events were lost (reconcile all).
pub fn watch(
    root: &Path,
    state_dir: &Path,
    on_change: impl Fn(Option<Vec<PathBuf>>) + Send + 'static,
) -> notify::Result<RecommendedWatcher> {
    let state_dir: PathBuf = state_dir.to_path_buf();
    let git_dir = root.join(".git");
    let mut watcher = notify::recommended_watcher(move |res: notify::Result<notify::Event>| {
        let Ok(event) = res else {
            // Overflow or a watch error: a reconcile catches whatever was missed.
            on_change(None);
            return;
        };
        if matches!(event.kind, EventKind::Access(_)) {
            return;
        }
        if event.need_rescan() {
            on_change(None);
            return;
        }
        let paths: Vec<PathBuf> = event
            .paths
            .into_iter()
            .filter(|p| !p.starts_with(&state_dir) && !p.starts_with(&git_dir))
            .collect();
        if !paths.is_empty() {
            on_change(Some(paths));
        }
    })?;
    watcher.watch(root, RecursiveMode::Recursive)?;
    Ok(watcher)
}
