//! Open SQLite files are findings: by their 16-byte header whatever their name, by name for
//! the -wal/-shm/-journal companions, and a `*.db` that is not SQLite is left alone.

mod audit_support;

use std::fs::File;
use std::os::fd::AsRawFd;
use std::path::Path;

use audit_support::{descriptor_for, finding_for};
use plexer_prefork::audit::{AuditPolicy, DescriptorKind, audit_process};

fn write_sqlite(path: &Path) -> File {
    let mut bytes = b"SQLite format 3\0".to_vec();
    bytes.extend_from_slice(&[0x10, 0x00, 0x01, 0x01, 0x00, 0x40, 0x20, 0x20]);
    bytes.resize(4096, 0);
    std::fs::write(path, bytes).unwrap();
    File::open(path).unwrap()
}

#[test]
fn sqlite_files_are_findings_and_other_db_files_are_not() {
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path().canonicalize().unwrap();
    let app_db = dir.join("app.db");
    let database = write_sqlite(&app_db);
    let oddly_named = write_sqlite(&dir.join("data.bin"));
    std::fs::write(dir.join("app.db-wal"), b"\x37\x7f\x06\x82").unwrap();
    let wal = File::open(dir.join("app.db-wal")).unwrap();
    std::fs::write(dir.join("notes.db"), b"not a database, just notes").unwrap();
    let notes = File::open(dir.join("notes.db")).unwrap();

    let report = audit_process(None, &AuditPolicy::new()).unwrap();

    let fd = database.as_raw_fd();
    assert_eq!(
        finding_for(&report, fd).map(ToString::to_string),
        Some(format!(
            "fd {fd} is the SQLite database {} opened before fork; open it in post_fork",
            app_db.display()
        )),
        "{report}"
    );
    assert!(
        finding_for(&report, oddly_named.as_raw_fd()).is_some(),
        "{report}"
    );
    let wal_fd = wal.as_raw_fd();
    assert_eq!(
        finding_for(&report, wal_fd).map(ToString::to_string),
        Some(format!(
            "fd {wal_fd} is the SQLite write-ahead log {}/app.db-wal opened before fork; \
             open it in post_fork",
            dir.display()
        ))
    );
    assert_eq!(
        descriptor_for(&report, notes.as_raw_fd()).kind(),
        &DescriptorKind::File {
            path: dir.join("notes.db"),
            deleted: false
        }
    );
    assert!(
        finding_for(&report, notes.as_raw_fd()).is_none(),
        "{report}"
    );
}
