//! The slowlog file (`slowlog:`): opened once, appended to entry by entry, opened again on
//! SIGUSR1 after a rotation moved it, as nginx and php-fpm reopen theirs.

use std::fs::File;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

/// Why the slowlog file cannot be opened.
#[derive(Debug, thiserror::Error)]
#[error("cannot open the slowlog file {}: {error} (check slowlog: in the config)", path.display())]
pub struct SlowlogFileError {
    pub path: PathBuf,
    pub error: std::io::Error,
}

/// Where entries are written.
#[derive(Debug, Default)]
pub(crate) enum Sink {
    /// No `slowlog:`: entries go to the status page only.
    #[default]
    Off,
    Open {
        path: PathBuf,
        file: File,
    },
}

impl Sink {
    /// Opens `path` for appending, creating it (mode 0640: stacks name the app's code) when
    /// missing; `None` is no file.
    pub(crate) fn open(path: Option<&Path>) -> Result<Self, SlowlogFileError> {
        let Some(path) = path else {
            return Ok(Self::Off);
        };
        let file = File::options()
            .append(true)
            .create(true)
            .mode(0o640)
            .open(path)
            .map_err(|error| SlowlogFileError {
                path: path.to_owned(),
                error,
            })?;
        Ok(Self::Open {
            path: path.to_owned(),
            file,
        })
    }

    pub(crate) fn path(&self) -> Option<&Path> {
        match self {
            Self::Off => None,
            Self::Open { path, .. } => Some(path),
        }
    }

    /// Appends `text` in one write, so that entries of one plexer never interleave.
    pub(crate) fn write(&mut self, text: &str) -> std::io::Result<()> {
        match self {
            Self::Off => Ok(()),
            Self::Open { file, .. } => file.write_all(text.as_bytes()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_append_and_a_reopen_after_a_rename_starts_a_new_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("slow.log");
        let mut sink = Sink::open(Some(&path)).unwrap();
        sink.write("one\n").unwrap();
        let rotated = dir.path().join("slow.log.1");
        std::fs::rename(&path, &rotated).unwrap();
        sink.write("two\n").unwrap();
        let mut sink = Sink::open(sink.path()).unwrap();
        sink.write("three\n").unwrap();
        assert_eq!(std::fs::read_to_string(&rotated).unwrap(), "one\ntwo\n");
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "three\n");
        let missing = Sink::open(Some(&dir.path().join("no/such/dir/slow.log")));
        assert!(missing.unwrap_err().to_string().contains("no/such/dir"));
        assert!(matches!(Sink::open(None), Ok(Sink::Off)));
    }
}
