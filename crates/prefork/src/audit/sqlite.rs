//! Recognising open SQLite files: by their header where it can be read, by their name where it
//! cannot, and by name for the `-wal`, `-shm` and `-journal` companions, whose own headers are
//! not SQLite's.

use std::collections::HashSet;
use std::fmt;
use std::fs::OpenOptions;
use std::io::Read;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use nix::fcntl::OFlag;

/// The first 16 bytes of every SQLite 3 database (<https://www.sqlite.org/fileformat.html> §1.3.1).
const MAGIC: &[u8; 16] = b"SQLite format 3\0";

const DATABASE_SUFFIXES: &[&str] = &[".db", ".sqlite", ".sqlite3"];

/// What the start of an open regular file says.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Header {
    Sqlite,
    /// Zero bytes: what `sqlite3_open` leaves until the first write.
    Empty,
    Other,
    /// Not read: no permission, or reading would have dropped the process's POSIX locks.
    Unread,
}

/// Which of SQLite's files a descriptor holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum SqlitePart {
    Database,
    WriteAheadLog,
    SharedMemory,
    Journal,
}

impl fmt::Display for SqlitePart {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            SqlitePart::Database => "SQLite database",
            SqlitePart::WriteAheadLog => "SQLite write-ahead log",
            SqlitePart::SharedMemory => "SQLite shared-memory index",
            SqlitePart::Journal => "SQLite rollback journal",
        })
    }
}

/// Reads the header through `/proc/PID/fd/N`, which reaches the file even when it was deleted
/// or lives in another mount namespace. The fresh descriptor leaves the process's own file
/// offset alone; `O_NONBLOCK` keeps a file under a lease from stalling the audit.
pub(crate) fn read_header(fd_link: &Path) -> Header {
    let Ok(mut file) = OpenOptions::new()
        .read(true)
        .custom_flags((OFlag::O_NONBLOCK | OFlag::O_NOCTTY).bits())
        .open(fd_link)
    else {
        return Header::Unread;
    };
    let mut buf = [0u8; MAGIC.len()];
    let mut filled = 0;
    while filled < buf.len() {
        match file.read(&mut buf[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(_) => return Header::Unread,
        }
    }
    match filled {
        0 => Header::Empty,
        _ if &buf == MAGIC => Header::Sqlite,
        _ => Header::Other,
    }
}

pub(crate) fn has_database_name(path: &Path) -> bool {
    let name = file_name(path);
    DATABASE_SUFFIXES
        .iter()
        .any(|suffix| name.len() > suffix.len() && name.to_ascii_lowercase().ends_with(suffix))
}

/// The main database file a companion belongs to, and which companion it is.
fn companion_of(path: &Path) -> Option<(PathBuf, SqlitePart)> {
    let name = file_name(path);
    [
        ("-wal", SqlitePart::WriteAheadLog),
        ("-shm", SqlitePart::SharedMemory),
        ("-journal", SqlitePart::Journal),
    ]
    .into_iter()
    .find_map(|(suffix, part)| {
        let stem = name.strip_suffix(suffix).filter(|s| !s.is_empty())?;
        Some((path.with_file_name(stem), part))
    })
}

/// Decides whether a main database file is SQLite. The header decides when it was read, so a
/// `notes.db` of something else is left alone and an oddly named database is caught; when it
/// could not be read (or the file is still empty) the name decides, failing closed.
pub(crate) fn is_database(path: &Path, header: Header) -> bool {
    match header {
        Header::Sqlite => true,
        Header::Other => false,
        Header::Empty | Header::Unread => has_database_name(path),
    }
}

/// Decides whether a file is one of SQLite's companions: a `-wal`, `-shm` or `-journal` whose
/// stem has a database name, or is a database this process has open.
pub(crate) fn companion_part(path: &Path, open_databases: &HashSet<PathBuf>) -> Option<SqlitePart> {
    let (stem, part) = companion_of(path)?;
    (has_database_name(&stem) || open_databases.contains(&stem)).then_some(part)
}

fn file_name(path: &Path) -> &str {
    path.file_name().and_then(|n| n.to_str()).unwrap_or("")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_with_database_suffixes() {
        assert!(has_database_name(Path::new("/srv/bob/app.db")));
        assert!(has_database_name(Path::new("/srv/bob/APP.SQLite3")));
        assert!(!has_database_name(Path::new("/srv/bob/.db")));
        assert!(!has_database_name(Path::new("/srv/bob/app.dbx")));
    }

    #[test]
    fn header_decides_over_name() {
        assert!(is_database(Path::new("/x/data.bin"), Header::Sqlite));
        assert!(!is_database(Path::new("/x/notes.db"), Header::Other));
        assert!(is_database(Path::new("/x/new.db"), Header::Empty));
        assert!(is_database(Path::new("/x/locked.sqlite"), Header::Unread));
        assert!(!is_database(Path::new("/x/locked.bin"), Header::Unread));
    }

    #[test]
    fn companions_count_by_name_or_by_open_database() {
        let none = HashSet::new();
        assert_eq!(
            companion_part(Path::new("/x/app.db-wal"), &none),
            Some(SqlitePart::WriteAheadLog)
        );
        assert_eq!(
            companion_part(Path::new("/x/app.sqlite-journal"), &none),
            Some(SqlitePart::Journal)
        );
        assert_eq!(
            companion_part(Path::new("/var/log/sys-journal"), &none),
            None
        );
        let open = HashSet::from([PathBuf::from("/x/data.bin")]);
        assert_eq!(
            companion_part(Path::new("/x/data.bin-shm"), &open),
            Some(SqlitePart::SharedMemory)
        );
    }

    #[test]
    fn header_is_read_from_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let sqlite = dir.path().join("odd.name");
        let mut bytes = MAGIC.to_vec();
        bytes.extend_from_slice(&[0x10, 0x00, 0x01, 0x01]);
        std::fs::write(&sqlite, &bytes).unwrap();
        let empty = dir.path().join("empty.db");
        std::fs::write(&empty, b"").unwrap();
        let text = dir.path().join("notes.db");
        std::fs::write(&text, b"buy milk").unwrap();
        assert_eq!(read_header(&sqlite), Header::Sqlite);
        assert_eq!(read_header(&empty), Header::Empty);
        assert_eq!(read_header(&text), Header::Other);
        assert_eq!(read_header(&dir.path().join("missing")), Header::Unread);
    }
}
