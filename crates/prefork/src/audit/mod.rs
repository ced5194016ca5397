//! The fork-safety audit: which open descriptors of a process are database handles that a
//! fork would hand to every child.
//!
//! A prefork server imports the application and then forks. A database connection the import
//! opened is then one socket shared by every child: "if one process sends a request, another
//! can receive a reply; also, if one process closes it, others have a desynchronized database
//! handle" (seed 000: flup under Django's `runfcgi`, Django ticket #13215). libpq's
//! documentation says the same: "forking a process with open libpq connections can lead to
//! unpredictable results because the parent and child processes share the same sockets".
//! SQLite lists carrying an open connection across `fork` among the ways to corrupt a
//! database (<https://www.sqlite.org/howtocorrupt.html> §2.6).
//!
//! So the prefork parent refuses to fork ([`assert_fork_safe`]) rather than close the handle
//! for the app: closing runs the protocol's goodbye over the shared session and breaks it for
//! the parent too, which is why Celery closes only the fd. The message names the descriptor
//! and says where the open belongs:
//!
//! ```text
//! fd 7 is a TCP connection to 127.0.0.1:5432 (PostgreSQL) opened before fork; open it in post_fork
//! ```
//!
//! The same audit looks at other processes (`plexer audit-fds --pid PID`, [`audit_process`])
//! and, for apps that fork by themselves, finds one handle held by several of them
//! ([`shared_db_handles`]).
//!
//! What it reads: `/proc/PID/fd` for the descriptors; for sockets, the kernel's socket tables
//! by netlink `sock_diag` (`/proc/PID/net/*` where netlink is refused), which give a unix
//! socket's peer and a local TCP connection's server socket; `/proc/*/fd` again to find the
//! process answering at that end, whose name tells what it is (`postgres`, `redis-server`)
//! whatever port or path it was given; the first 16 bytes of open regular files for SQLite's
//! header; and `kcmp(2)` to tell one inherited open file from two opens of it. Linux only.

// kcmp.rs holds the one `unsafe` block: a system call nix does not wrap.
#![deny(unsafe_code)]

mod classify;
mod descriptor;
mod error;
mod finding;
mod kcmp;
mod known;
mod local_peer;
mod note;
mod policy;
mod proc_locks;
mod proc_net;
mod process_table;
mod report;
mod shared;
mod sock_diag;
mod socket_tables;
mod sqlite;
mod threads;
mod watch;

use std::path::Path;

use nix::unistd::Pid;

pub use descriptor::{Descriptor, DescriptorKind, UnixName};
pub use error::{AuditError, ForkRefused};
pub use finding::{DbHandle, Finding};
pub use known::Database;
pub use local_peer::LocalPeer;
pub use note::AuditNote;
pub use policy::{AuditPolicy, EndpointParseError, TcpEndpoint};
pub use process_table::ProcessTable;
pub use report::AuditReport;
pub use shared::{AuditRound, Shared, SharedConnection, SharedHandle, shared_db_handles};
pub use sqlite::SqlitePart;
pub use threads::check_single_threaded;
pub use watch::{
    AuditMode, AuditModeParseError, CONFIRM_AFTER, LOOK_EVERY, NoteLog, PoolAuditor, Verdict,
};

pub(crate) use socket_tables::TableCache;

/// Lists and classifies every open descriptor of `pid` (this process when `None`) and picks
/// out the database handles.
pub fn audit_process(pid: Option<Pid>, policy: &AuditPolicy) -> Result<AuditReport, AuditError> {
    audit_with(pid, policy, &mut TableCache::default())
}

/// [`audit_process`] with socket tables kept across the processes of one audit.
pub(crate) fn audit_with(
    pid: Option<Pid>,
    policy: &AuditPolicy,
    cache: &mut TableCache,
) -> Result<AuditReport, AuditError> {
    let target = classify::Target::new(pid);
    let _span = tracing::debug_span!("audit_fds", pid = target.pid.as_raw()).entered();
    let mut descriptors = classify::descriptors(&target, cache)?;
    let mut peers = local_peer::PeerFinder::default();
    for descriptor in descriptors.iter_mut().filter(|d| d.is_connection()) {
        if let Some(far) = descriptor.far_end {
            descriptor.peer = peers.find(far);
        }
    }
    let findings = finding::findings(&descriptors, policy);
    for finding in &findings {
        tracing::debug!(fd = finding.fd(), "{finding}");
    }
    tracing::debug!(
        descriptors = descriptors.len(),
        findings = findings.len(),
        "audited open descriptors"
    );
    Ok(AuditReport::new(target.pid, descriptors, findings, policy))
}

/// The sockets of another process, classified as its audit would, with the socket tables
/// kept in `cache` across the processes of one check. Reads no file: for checks repeated
/// every few milliseconds, such as whether a worker is serving a request.
#[cfg(feature = "tokio")] // the supervisor's only
pub(crate) fn sockets_of(pid: Pid, cache: &mut TableCache) -> Result<Vec<Descriptor>, AuditError> {
    classify::sockets(&classify::Target::new(Some(pid)), cache)
}

/// The prefork parent's check before every fork: this process runs one thread, and holds no
/// database handle the policy does not allow.
pub fn assert_fork_safe(policy: &AuditPolicy) -> Result<(), ForkRefused> {
    check_single_threaded(Path::new("/proc/self/task"))?;
    let report = audit_process(None, policy)?;
    if report.is_clean() {
        Ok(())
    } else {
        Err(ForkRefused::InheritedDbHandles {
            findings: report.into_findings(),
        })
    }
}
