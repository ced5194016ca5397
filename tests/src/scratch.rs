//! The per-test temporary directory: every socket, script, config and log a test makes lives
//! here, and goes away with it.

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

use tempfile::TempDir;

/// A unix socket path must fit `sockaddr_un.sun_path` (108 bytes on Linux, with the NUL).
const MAX_SOCKET_PATH: usize = 100;

/// A temporary directory, removed on drop, unless `PLEXER_KEEP_SCRATCH=1` is set (then its path
/// is printed, for looking at the logs of a failed test).
#[derive(Debug)]
pub struct Scratch {
    dir: Option<TempDir>,
    names: AtomicUsize,
}

impl Scratch {
    /// A fresh directory under `$TMPDIR`, or under `/tmp` when `$TMPDIR` is too long for the
    /// sockets that will be made in it.
    pub fn new() -> Self {
        let mut base = std::env::temp_dir();
        if base.as_os_str().len() > MAX_SOCKET_PATH - 40 {
            base = PathBuf::from("/tmp");
        }
        let dir = tempfile::Builder::new()
            .prefix("plexer-e2e-")
            .tempdir_in(&base)
            .unwrap_or_else(|err| panic!("cannot make a temporary directory in {base:?}: {err}"));
        Self {
            dir: Some(dir),
            names: AtomicUsize::new(0),
        }
    }

    pub fn path(&self) -> &Path {
        self.dir.as_ref().expect("present until drop").path()
    }

    /// `name` inside the directory.
    pub fn join(&self, name: impl AsRef<Path>) -> PathBuf {
        self.path().join(name)
    }

    /// A path for a new file or socket, unique within this directory: `STEM-N.EXT`.
    pub fn unique(&self, stem: &str, ext: &str) -> PathBuf {
        let n = self.names.fetch_add(1, Ordering::Relaxed);
        let path = self.join(format!("{stem}-{n}.{ext}"));
        assert!(
            path.as_os_str().len() <= MAX_SOCKET_PATH,
            "{path:?} is too long for a unix socket"
        );
        path
    }

    /// A path for a new unix socket, unique within this directory.
    pub fn socket_path(&self, stem: &str) -> PathBuf {
        self.unique(stem, "sock")
    }

    /// Writes `contents` to `name` in the directory and returns its path.
    pub fn write(&self, name: impl AsRef<Path>, contents: impl AsRef<[u8]>) -> PathBuf {
        let path = self.join(name);
        fs::write(&path, contents).unwrap_or_else(|err| panic!("cannot write {path:?}: {err}"));
        path
    }
}

impl Default for Scratch {
    fn default() -> Self {
        Self::new()
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        if std::env::var_os("PLEXER_KEEP_SCRATCH").is_some_and(|v| v == "1")
            && let Some(dir) = self.dir.take()
        {
            eprintln!("kept scratch directory {}", dir.keep().display());
        }
    }
}

/// Mode 0600: what a secret must have for plexer to take it.
pub fn make_private(path: &Path) {
    use std::os::unix::fs::PermissionsExt;
    fs::set_permissions(path, fs::Permissions::from_mode(0o600))
        .unwrap_or_else(|err| panic!("chmod 600 {}: {err}", path.display()));
}
