//! A connection to PostgreSQL's unix socket (`.s.PGSQL.5432`) is a finding, on the client's
//! side by its peer's path and on the server's side by its own.

mod audit_support;

use std::os::fd::AsRawFd;
use std::os::unix::net::{UnixListener, UnixStream};

use audit_support::{descriptor_for, finding_for};
use plexer_prefork::audit::{AuditPolicy, Database, DescriptorKind, UnixName, audit_process};

#[test]
fn client_of_postgres_socket_is_a_finding() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().canonicalize().unwrap().join(".s.PGSQL.5432");
    let listener = UnixListener::bind(&path).unwrap();
    let client = UnixStream::connect(&path).unwrap();
    let (server_side, _) = listener.accept().unwrap();

    let report = audit_process(None, &AuditPolicy::new()).unwrap();

    let fd = client.as_raw_fd();
    assert_eq!(
        descriptor_for(&report, fd).kind(),
        &DescriptorKind::UnixConnection {
            local: UnixName::Unnamed,
            peer: Some(UnixName::Path(path.clone())),
        }
    );
    let finding = finding_for(&report, fd).unwrap_or_else(|| panic!("no finding:\n{report}"));
    assert_eq!(finding.database(), &Database::PostgreSql);
    assert_eq!(
        finding.to_string(),
        format!(
            "fd {fd} is a unix-socket connection to {} (PostgreSQL) opened before fork; \
             open it in post_fork",
            path.display()
        )
    );

    let server_fd = server_side.as_raw_fd();
    assert_eq!(
        finding_for(&report, server_fd).map(ToString::to_string),
        Some(format!(
            "fd {server_fd} is a unix-socket connection on {} (PostgreSQL) opened before fork; \
             open it in post_fork",
            path.display()
        ))
    );
    assert!(finding_for(&report, listener.as_raw_fd()).is_none());
}

#[test]
fn declared_socket_patterns_are_findings_and_others_are_not() {
    let dir = tempfile::tempdir().unwrap();
    let app_db = dir.path().join("app-db.sock");
    let other = dir.path().join("other.sock");
    let _app_listener = UnixListener::bind(&app_db).unwrap();
    let _other_listener = UnixListener::bind(&other).unwrap();
    let to_app_db = UnixStream::connect(&app_db).unwrap();
    let to_other = UnixStream::connect(&other).unwrap();
    let policy = AuditPolicy::new().database_socket("*-db.sock", "app database");

    let report = audit_process(None, &policy).unwrap();

    let finding = finding_for(&report, to_app_db.as_raw_fd()).expect("declared socket");
    assert_eq!(
        finding.database(),
        &Database::Declared("app database".into())
    );
    assert!(
        finding_for(&report, to_other.as_raw_fd()).is_none(),
        "{report}"
    );
}
