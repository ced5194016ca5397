//! Any local user can bind a unix socket under any name, and `/proc/net/unix` prints names
//! byte for byte: a newline, a byte that is not UTF-8, or a whole forged record inside a name
//! must neither make the audit fail nor hide a database handle from it.

mod audit_support;

use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::fs::MetadataExt;
use std::os::unix::net::{UnixListener, UnixStream};

use audit_support::finding_for;
use nix::sys::socket::{AddressFamily, SockFlag, SockType, UnixAddr, bind, socket};
use plexer_prefork::audit::{AuditPolicy, Database, audit_process};

fn bind_abstract(name: &[u8]) -> OwnedFd {
    let socket = socket(
        AddressFamily::Unix,
        SockType::Stream,
        SockFlag::SOCK_CLOEXEC,
        None,
    )
    .unwrap();
    bind(socket.as_raw_fd(), &UnixAddr::new_abstract(name).unwrap()).unwrap();
    socket
}

#[test]
fn names_with_newlines_stray_bytes_and_forged_records_change_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().canonicalize().unwrap().join(".s.PGSQL.5432");
    let _listener = UnixListener::bind(&path).unwrap();
    let client = UnixStream::connect(&path).unwrap();
    let client_inode = std::fs::metadata(format!("/proc/self/fd/{}", client.as_raw_fd()))
        .unwrap()
        .ino();

    let pid = std::process::id();
    let _newline = bind_abstract(format!("plexer-test-{pid}\nnot a record\n").as_bytes());
    let _stray_byte = bind_abstract(format!("plexer-test-{pid}-caf\u{e9}").as_bytes());
    let _not_utf8 =
        bind_abstract(&[b"plexer-test-".as_slice(), &pid.to_be_bytes(), b"\xff"].concat());
    // A record passing the database connection off as a listener, which is never a finding.
    let forged = format!(
        "plexer-test-{pid}-forged\n0000000000000000: 00000002 00000000 00010000 0001 01 \
         {client_inode} /tmp/harmless\n\u{fffd}"
    );
    let _forged = bind_abstract(forged.as_bytes());

    let report = audit_process(None, &AuditPolicy::new())
        .unwrap_or_else(|e| panic!("the audit failed: {e}"));

    let finding = finding_for(&report, client.as_raw_fd())
        .unwrap_or_else(|| panic!("the forged record hid the connection:\n{report}"));
    assert_eq!(finding.database(), &Database::PostgreSql);
}
