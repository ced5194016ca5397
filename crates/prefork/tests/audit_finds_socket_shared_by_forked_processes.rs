//! An app that connects and then forks by itself leaves one socket in two processes; the
//! supervisor's external check names it and both pids.

mod audit_support;

use std::net::TcpListener;

use audit_support::spawn_python;
use nix::unistd::Pid;
use plexer_prefork::audit::{AuditPolicy, DbHandle, TcpEndpoint, shared_db_handles};

#[test]
fn socket_inherited_across_fork_is_shared_by_both_pids() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let db = listener.local_addr().unwrap();
    let mut parent = spawn_python(&format!(
        "import os, socket, time\n\
         s = socket.create_connection(('127.0.0.1', {}))\n\
         pid = os.fork()\n\
         if pid:\n    print(pid, flush=True)\n\
         time.sleep(30)\n",
        db.port()
    ));
    let child = Pid::from_raw(parent.read_line().parse().unwrap());
    parent.adopt_grandchild(child);
    let (_server_side, client_addr) = listener.accept().unwrap();
    let policy = AuditPolicy::new().database_endpoint(TcpEndpoint::Port(db.port()), "PostgreSQL");
    // No process can have pid_max as its pid: a pid that is gone is skipped, not an error.
    let gone: i32 = std::fs::read_to_string("/proc/sys/kernel/pid_max")
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    let me = nix::unistd::getpid();

    let shared =
        shared_db_handles(&[parent.pid(), me, Pid::from_raw(gone), child], &policy).unwrap();

    assert_eq!(shared.len(), 1, "{shared:?}");
    let handle = &shared[0];
    assert_eq!(handle.pids(), [parent.pid(), child]);
    assert!(handle.is_certainly_shared());
    assert_eq!(
        handle.handle(),
        &DbHandle::Tcp {
            local: client_addr,
            peer: db
        }
    );
    assert_eq!(
        handle.to_string(),
        format!(
            "TCP connection {client_addr} -> {db} (PostgreSQL) is shared by pids {} and {child}: \
             one process can read the other's reply; open connections after fork",
            parent.pid()
        )
    );
}
