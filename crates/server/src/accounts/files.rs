//! The registry on disk: account files written so that a crash or a full disk never leaves a
//! half-written one.

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

/// A failed write of the registry; the old file, if any, is untouched.
#[derive(Debug, thiserror::Error)]
#[error("cannot {doing} {}: {error}; nothing was changed", path.display())]
pub struct WriteError {
    doing: &'static str,
    path: PathBuf,
    error: io::Error,
}

/// Writes `text` as `dir/NAME.yaml`: a temporary file first, synced, renamed over the old one,
/// then the directory synced, so that the file is either the old one or the new one, also after
/// a crash. Mode 0600: an account's `env` may hold secrets, and other accounts' workers may
/// run as other users on the same machine.
pub(crate) fn write_atomically(dir: &Path, name: &str, text: &str) -> Result<PathBuf, WriteError> {
    let path = dir.join(format!("{name}.yaml"));
    // Hidden, so the watcher and the loader skip it while it is written.
    let temporary = dir.join(format!(".{name}.yaml.{}.tmp", std::process::id()));
    // Left by a plexer killed mid-write (with this pid again, as PID 1 in a container would
    // be); writes are made one at a time, so no other write owns it.
    let _ = std::fs::remove_file(&temporary);
    let fail = |doing, path: &Path| {
        let path = path.to_owned();
        move |error| WriteError { doing, path, error }
    };
    let written = (|| {
        let mut file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&temporary)?;
        file.write_all(text.as_bytes())?;
        file.sync_all()
    })();
    if let Err(source) = written {
        let _ = std::fs::remove_file(&temporary);
        return Err(fail("write", &temporary)(source));
    }
    if let Err(source) = std::fs::rename(&temporary, &path) {
        let _ = std::fs::remove_file(&temporary);
        return Err(fail("rename into place", &path)(source));
    }
    // The new file is in place: a failed sync makes it less durable, not undone.
    if let Err(err) = sync_dir(dir) {
        tracing::warn!(path = %path.display(), error = %err, "written, but the directory could not be synced: the change may not survive a crash");
    }
    Ok(path)
}

/// Removes `path` and syncs its directory, so that a removal survives a crash.
pub(crate) fn remove_durably(path: &Path) -> Result<(), WriteError> {
    let fail = |error| WriteError {
        doing: "remove",
        path: path.to_owned(),
        error,
    };
    match std::fs::remove_file(path) {
        Ok(()) => {}
        Err(err) if err.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(err) => return Err(fail(err)),
    }
    if let Err(err) = sync_dir(path.parent().unwrap_or(Path::new("."))) {
        tracing::warn!(path = %path.display(), error = %err, "removed, but the directory could not be synced: the removal may not survive a crash");
    }
    Ok(())
}

fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::accounts::stamp::Stamp;

    #[test]
    fn a_write_replaces_the_file_whole_and_leaves_no_temporary() {
        let dir = tempfile::tempdir().unwrap();
        let first = write_atomically(dir.path(), "bob", "users: [bob]\n").unwrap();
        let stamp = Stamp::of(&first).unwrap();
        write_atomically(dir.path(), "bob", "users: [bob, b]\n").unwrap();
        assert_eq!(
            std::fs::read_to_string(&first).unwrap(),
            "users: [bob, b]\n"
        );
        assert_ne!(Stamp::of(&first).unwrap(), stamp);
        let names: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, ["bob.yaml"]);
    }

    #[test]
    fn a_failed_write_keeps_the_old_file_and_says_what_failed() {
        let dir = tempfile::tempdir().unwrap();
        let path = write_atomically(dir.path(), "bob", "users: [bob]\n").unwrap();
        // A directory where the temporary file goes makes the write fail, as a full or
        // read-only disk would.
        std::fs::create_dir(
            dir.path()
                .join(format!(".bob.yaml.{}.tmp", std::process::id())),
        )
        .unwrap();
        let err = write_atomically(dir.path(), "bob", "users: [x]\n").unwrap_err();
        assert!(err.to_string().contains("cannot write"), "{err}");
        assert!(err.to_string().ends_with("nothing was changed"), "{err}");
        assert_eq!(std::fs::read_to_string(path).unwrap(), "users: [bob]\n");
    }

    #[test]
    fn removing_a_missing_file_is_not_an_error() {
        let dir = tempfile::tempdir().unwrap();
        remove_durably(&dir.path().join("gone.yaml")).unwrap();
    }
}
