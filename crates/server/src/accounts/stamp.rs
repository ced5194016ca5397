//! What an account's source looked like when it was applied: a file's stamp tells a touched
//! or edited file from one left alone; a table row's version and spec tell a changed row.

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
    /// The row's `version`, from the table's sequence, which grows with every change; and a
    /// hash of its spec, for a table restored from a backup, whose sequence may hand out a
    /// version again with another spec.
    Row { version: i64, spec_hash: u64 },
}

impl Stamp {
    pub(crate) fn of_row(version: i64, spec: &str) -> Self {
        use std::hash::{Hash, Hasher};
        let mut hasher = std::collections::hash_map::DefaultHasher::new();
        spec.hash(&mut hasher);
        Self::Row {
            version,
            spec_hash: hasher.finish(),
        }
    }

    pub(crate) fn of(path: &Path) -> io::Result<Self> {
        let meta = std::fs::metadata(path)?;
        Ok(Self::File {
            modified_ns: i128::from(meta.mtime()) * 1_000_000_000 + i128::from(meta.mtime_nsec()),
            len: meta.len(),
            inode: meta.ino(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_row_with_the_same_version_and_another_spec_is_a_change() {
        let applied = Stamp::of_row(7, "{}");
        assert_eq!(applied, Stamp::of_row(7, "{}"));
        assert_ne!(applied, Stamp::of_row(8, "{}"));
        assert_ne!(applied, Stamp::of_row(7, "pm: static"));
    }
}
