//! A TCP connection to a database port, held when the prefork parent would fork, is reported
//! with its descriptor, its peer and what to do; once closed, the audit passes.

mod audit_support;

use std::net::{TcpListener, TcpStream};
use std::os::fd::AsRawFd;

use audit_support::{descriptor_for, finding_for};
use plexer_prefork::audit::{AuditPolicy, DescriptorKind, TcpEndpoint, audit_process};

#[test]
fn connection_to_declared_database_port_is_a_finding_until_closed() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let db = listener.local_addr().unwrap();
    let policy = AuditPolicy::new().database_endpoint(TcpEndpoint::Port(db.port()), "PostgreSQL");

    let stream = TcpStream::connect(db).unwrap();
    let fd = stream.as_raw_fd();
    let report = audit_process(None, &policy).unwrap();

    let finding = finding_for(&report, fd).unwrap_or_else(|| panic!("no finding:\n{report}"));
    assert_eq!(
        finding.to_string(),
        format!(
            "fd {fd} is a TCP connection to 127.0.0.1:{} (PostgreSQL) opened before fork; \
             open it in post_fork",
            db.port()
        )
    );
    assert_eq!(
        descriptor_for(&report, fd).kind(),
        &DescriptorKind::TcpConnection {
            local: stream.local_addr().unwrap(),
            peer: db,
        }
    );
    assert_eq!(report.findings().len(), 1, "{report}");
    assert!(!report.is_clean());
    let listing = report.to_string();
    assert!(
        listing.lines().any(
            |line| line.starts_with(&format!("fd {fd}: TCP connection "))
                && line.ends_with(&format!("FINDING: {finding}"))
        ),
        "{listing}"
    );

    drop(stream);
    let report = audit_process(None, &policy).unwrap();
    assert!(report.is_clean(), "{report}");
    assert!(finding_for(&report, fd).is_none());
}
