//! Watches accounts_dir, so that a file dropped in, touched or deleted by hand is applied as
//! `plexer accounts` would apply it (uWSGI's Emperor does the same with its vassals).
//!
//! Events only say "look again": the manager compares every file with what it applied, so a
//! burst of events (an editor's save, a copy of 1,000 files) becomes a few passes, and our own
//! writes through the control socket are seen as unchanged.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use notify::{RecursiveMode, Watcher};
use tokio::sync::mpsc;

use crate::accounts::Manager;

/// Events closer together than this are one pass.
const SETTLE: Duration = Duration::from_millis(100);

/// Starts watching `dir`; the returned watcher must be kept alive. Without inotify (limits,
/// an odd filesystem) the plexer runs on, with SIGHUP and the control socket.
pub(crate) fn watch(dir: &Path, manager: Arc<Manager>) -> Option<notify::RecommendedWatcher> {
    let (tx, mut rx) = mpsc::unbounded_channel();
    // A file written after the manager's first read and before the watch began raised no
    // event: one pass once the watch is on applies it.
    let look_once = tx.clone();
    let watcher = notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
        if let Ok(event) = event
            && !event.kind.is_access()
        {
            let _ = tx.send(());
        }
    });
    let mut watcher = match watcher {
        Ok(watcher) => watcher,
        Err(err) => {
            tracing::warn!(error = %err, "cannot watch accounts_dir: changes apply on SIGHUP");
            return None;
        }
    };
    if let Err(err) = watcher.watch(dir, RecursiveMode::NonRecursive) {
        tracing::warn!(dir = %dir.display(), error = %err, "cannot watch accounts_dir: changes apply on SIGHUP");
        return None;
    }
    let _ = look_once.send(());
    tokio::spawn(async move {
        while rx.recv().await.is_some() {
            tokio::time::sleep(SETTLE).await;
            while rx.try_recv().is_ok() {}
            manager.apply_dir().await;
        }
    });
    Some(watcher)
}
