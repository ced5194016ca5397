//! The slowlog: each request that passes its pool's `request_slowlog_timeout` is recorded
//! once, while it still runs, with what can be seen of its stuck worker: the kernel's view
//! (`/proc/PID/wchan`, and `/proc/PID/stack` where readable) and the app's own stack from the
//! pool's `slowlog_dump` command (py-spy for Python, gdb for native code, anything that takes a
//! pid). php-fpm's slowlog does this for PHP only, by ptrace; a dumper per pool does it for
//! any language. CONTRACT.md, "Slow requests, with the stuck worker's stack".
//!
//! Which requests, and when, is decided by `crate::slow_watch` on a tick; this module records
//! them: `record` reads /proc on a blocking thread, runs the dumper (`dump.rs`) off the
//! relaying path, keeps the last [`MAX_RECENT`] entries for the status page and `plexer status
//! --slow`, and appends each to the `slowlog:` file (`sink.rs`).

mod dump;
mod entry;
mod sink;

use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::SystemTime;

use plexer_prefork::supervisor::Supervisor;
use tokio::sync::Semaphore;

use crate::config::DumpCommand;
pub use dump::{DUMP_TIMEOUT, MAX_DUMP_OUTPUT};
pub(crate) use entry::utc;
pub use entry::{Dump, Entry};
pub(crate) use sink::Sink;
pub use sink::SlowlogFileError;

/// Entries kept in memory for the status page.
pub const MAX_RECENT: usize = 100;

/// Dumps run at once: a pool whose workers all stick at once (a database gone) gets this many
/// stacks, not a dumper per worker.
pub const MAX_DUMPS_AT_ONCE: usize = 4;

/// The slowlog's state, shared by every connection: the last entries and the file.
pub(crate) struct SlowLog {
    recent: Mutex<VecDeque<Arc<Entry>>>,
    sink: Mutex<Sink>,
    dumps: Arc<Semaphore>,
}

impl Default for SlowLog {
    fn default() -> Self {
        Self {
            recent: Mutex::default(),
            sink: Mutex::default(),
            dumps: Arc::new(Semaphore::new(MAX_DUMPS_AT_ONCE)),
        }
    }
}

/// A request found past its threshold, as the watcher hands it over.
pub(crate) struct Found {
    pub account: String,
    pub generation: u64,
    pub pid: i32,
    pub uri: String,
    pub seconds: f64,
    pub at: SystemTime,
    pub dump: Option<DumpCommand>,
}

impl SlowLog {
    /// The entries in memory, oldest first.
    pub(crate) fn recent(&self) -> Vec<Arc<Entry>> {
        lock(&self.recent).iter().cloned().collect()
    }

    /// Writes to `sink` from now on (the file opened at the start).
    pub(crate) fn use_sink(&self, sink: Sink) {
        *lock(&self.sink) = sink;
    }

    /// Opens `path` (a reload changed `slowlog:`, SIGUSR1), or closes the file for `None`. On
    /// failure the file open before stays in use.
    fn open(&self, path: Option<&Path>) -> Result<(), SlowlogFileError> {
        self.use_sink(Sink::open(path)?);
        Ok(())
    }

    /// The file in use, if any.
    pub(crate) fn path(&self) -> Option<PathBuf> {
        lock(&self.sink).path().map(Path::to_owned)
    }

    /// Opens the file again at its path (SIGUSR1, after a rotation), on a blocking thread.
    pub(crate) fn reopen_in_background(self: &Arc<Self>) {
        self.open_in_background(self.path());
    }

    /// Opens `path` instead of the file in use, on a blocking thread; a failure is logged and
    /// leaves the file in use as it was.
    pub(crate) fn open_in_background(self: &Arc<Self>, path: Option<PathBuf>) {
        let log = Arc::clone(self);
        tokio::task::spawn_blocking(move || match log.open(path.as_deref()) {
            Ok(()) => {
                let shown = path.as_deref().map(Path::display);
                tracing::info!(slowlog = ?shown.map(|p| p.to_string()), "slowlog file opened");
            }
            Err(err) => tracing::error!("{err}; slow requests go on to the status page only"),
        });
    }

    fn keep(&self, entry: &Arc<Entry>) {
        let mut recent = lock(&self.recent);
        if recent.len() == MAX_RECENT {
            recent.pop_front();
        }
        recent.push_back(Arc::clone(entry));
    }

    fn write(&self, entry: &Entry) {
        let mut sink = lock(&self.sink);
        if let Err(err) = sink.write(&entry.text()) {
            let path = sink.path().map(|p| p.display().to_string());
            tracing::warn!(slowlog = ?path, error = %err, "cannot write to the slowlog file");
        }
    }
}

/// Records `found`: the kernel's view first (a dumper stops the worker, which changes it),
/// then the dump unless `still_running` says the request ended, then the entry is kept and
/// written. Runs as a task of its own; nothing here blocks the runtime's thread.
pub(crate) async fn record(
    log: Arc<SlowLog>,
    supervisor: Supervisor,
    found: Found,
    still_running: impl Fn() -> bool + Send + 'static,
) {
    let pid = found.pid;
    let (wchan, kernel_stack) = tokio::task::spawn_blocking(move || kernel_view(pid))
        .await
        .unwrap_or_default();
    let dump = match &found.dump {
        None => Dump::NotConfigured,
        Some(command) if !still_running() => Dump::RequestEnded {
            command: command.shown(pid),
        },
        Some(command) => match Arc::clone(&log.dumps).try_acquire_owned() {
            Ok(_permit) => dump::run(&supervisor, command, pid).await,
            Err(_) => Dump::Skipped {
                command: command.shown(pid),
                running: MAX_DUMPS_AT_ONCE,
            },
        },
    };
    let entry = Arc::new(Entry {
        time: utc(found.at),
        account: found.account,
        generation: found.generation,
        pid,
        uri: found.uri,
        seconds: found.seconds,
        wchan,
        kernel_stack,
        dump,
    });
    log.keep(&entry);
    let _ = tokio::task::spawn_blocking(move || log.write(&entry)).await;
}

/// `/proc/PID/wchan` and `/proc/PID/stack`, each `None` when unreadable or empty.
fn kernel_view(pid: i32) -> (Option<String>, Option<String>) {
    let read = |name: &str| {
        std::fs::read_to_string(format!("/proc/{pid}/{name}"))
            .ok()
            .map(|text| text.trim_end().to_owned())
            .filter(|text| !text.is_empty())
    };
    (read("wchan"), read("stack"))
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}
