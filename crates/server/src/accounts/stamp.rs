//! What an account's source looked like when it was applied: a file's stamp tells a touched
//! or edited file from one left alone; a table row's version tells a changed row.

use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

/// An account whose source's stamp differs from the one applied changed since, and is applied
/// again.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Stamp {
    File {
        modified_ns: i128,
        len: u64,
        inode: u64,
    },
    /// The row's `version`, from the table's sequence: it grows with every change.
    Row { version: i64 },
}

impl Stamp {
    pub(crate) fn of(path: &Path) -> io::Result<Self> {
        let meta = std::fs::metadata(path)?;
        Ok(Self::File {
            modified_ns: i128::from(meta.mtime()) * 1_000_000_000 + i128::from(meta.mtime_nsec()),
            len: meta.len(),
            inode: meta.ino(),
        })
    }
}
