//! `plexer audit-fds --pid PID`: another process's connection to a database is found through
//! that process's /proc/PID/net tables.

mod audit_support;

use std::net::TcpListener;

use audit_support::spawn_python;
use plexer_prefork::audit::{AuditPolicy, DbHandle, TcpEndpoint, audit_process};

#[test]
fn tcp_connection_of_another_process_is_a_finding() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let db = listener.local_addr().unwrap();
    let mut child = spawn_python(&format!(
        "import socket, time\n\
         s = socket.create_connection(('127.0.0.1', {}))\n\
         print(s.fileno(), flush=True)\n\
         time.sleep(30)\n",
        db.port()
    ));
    let fd: i32 = child.read_line().parse().unwrap();
    let (_server_side, child_addr) = listener.accept().unwrap();
    let policy = AuditPolicy::new().database_endpoint(TcpEndpoint::Port(db.port()), "PostgreSQL");

    let report = audit_process(Some(child.pid()), &policy).unwrap();

    assert_eq!(report.pid(), child.pid());
    assert_eq!(report.findings().len(), 1, "{report}");
    let finding = &report.findings()[0];
    assert_eq!(finding.fd(), fd);
    assert_eq!(
        finding.handle(),
        &DbHandle::Tcp {
            local: child_addr,
            peer: db
        }
    );
    assert_eq!(
        finding.to_string(),
        format!(
            "fd {fd} is a TCP connection to {db} (PostgreSQL) opened before fork; \
             open it in post_fork"
        )
    );
}
