//! What a prefork server shares on purpose is never a finding: listening sockets, even on a
//! database port, and the descriptors the caller declares.

mod audit_support;

use std::net::{TcpListener, TcpStream};
use std::os::fd::AsRawFd;
use std::os::unix::net::UnixListener;

use audit_support::{descriptor_for, finding_for};
use plexer_prefork::audit::{AuditPolicy, DescriptorKind, TcpEndpoint, UnixName, audit_process};

#[test]
fn listening_sockets_on_database_addresses_are_allowed() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let socket_path = dir.path().join(".s.PGSQL.5432");
    let unix_listener = UnixListener::bind(&socket_path).unwrap();
    let policy = AuditPolicy::new().database_endpoint(TcpEndpoint::Addr(addr), "PostgreSQL");

    let report = audit_process(None, &policy).unwrap();

    assert_eq!(
        descriptor_for(&report, listener.as_raw_fd()).kind(),
        &DescriptorKind::TcpListener { local: addr }
    );
    assert_eq!(
        descriptor_for(&report, unix_listener.as_raw_fd()).kind(),
        &DescriptorKind::UnixListener {
            name: UnixName::Path(socket_path.canonicalize().unwrap())
        }
    );
    assert!(
        finding_for(&report, listener.as_raw_fd()).is_none(),
        "{report}"
    );
    assert!(
        finding_for(&report, unix_listener.as_raw_fd()).is_none(),
        "{report}"
    );
}

#[test]
fn declared_descriptors_are_listed_but_not_findings() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let db = listener.local_addr().unwrap();
    let stream = TcpStream::connect(db).unwrap();
    let fd = stream.as_raw_fd();
    let strict = AuditPolicy::new().database_endpoint(TcpEndpoint::Port(db.port()), "Redis");
    assert!(finding_for(&audit_process(None, &strict).unwrap(), fd).is_some());

    let report = audit_process(None, &strict.allow_fd(fd)).unwrap();

    assert!(finding_for(&report, fd).is_none(), "{report}");
    let listing = report.to_string();
    let line = listing
        .lines()
        .find(|line| line.starts_with(&format!("fd {fd}: ")))
        .unwrap();
    assert!(line.ends_with("(allowed by policy)"), "{line}");
}
