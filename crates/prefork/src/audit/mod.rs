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
//! What it reads: `/proc/PID/fd` for the descriptors, `/proc/PID/net/{tcp,tcp6,udp,udp6,unix}`
//! for sockets by inode, `getpeername` for the audit's own sockets (the only way to learn a
//! unix client's peer), and the first 16 bytes of open regular files for SQLite's header.
//! Linux only: it is the `/proc` layout of proc(5).

#![forbid(unsafe_code)]

mod classify;
mod descriptor;
mod error;
mod finding;
mod known;
mod policy;
mod proc_locks;
mod proc_net;
mod proc_stat;
mod report;
mod shared;
mod sqlite;
mod threads;

use std::collections::HashMap;
use std::path::Path;

use nix::unistd::Pid;

pub use descriptor::{Descriptor, DescriptorKind, UnixName};
pub use error::{AuditError, ForkRefused};
pub use finding::{DbHandle, Finding};
pub use known::Database;
pub use policy::{AuditPolicy, EndpointParseError, TcpEndpoint};
pub use report::AuditReport;
pub use shared::{SharedHandle, shared_db_handles, shared_db_handles_each};
pub use sqlite::SqlitePart;
pub use threads::check_single_threaded;

pub(crate) use proc_net::TableCache;

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
    let descriptors = classify::descriptors(&target, cache)?;
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

/// Every process whose process group is one of `groups`, from /proc.
pub fn processes_in_groups(groups: &[Pid]) -> Vec<Pid> {
    processes_by_group(groups).into_values().flatten().collect()
}

/// The processes of each of `groups`, from one pass over /proc: an audit of many pools reads
/// /proc once, not once per pool. Without /proc, each group is its leader alone.
pub fn processes_by_group(groups: &[Pid]) -> HashMap<Pid, Vec<Pid>> {
    let mut by_group: HashMap<Pid, Vec<Pid>> = HashMap::new();
    let Ok(entries) = std::fs::read_dir("/proc") else {
        for &group in groups {
            by_group.entry(group).or_default().push(group);
        }
        return by_group;
    };
    let pids = entries.filter_map(|entry| entry.ok()?.file_name().to_str()?.parse().ok());
    for pid in pids.map(Pid::from_raw) {
        // A process that exited since the listing is in no group any more.
        if let Some(group) = proc_stat::process_group(pid).filter(|g| groups.contains(g)) {
            by_group.entry(group).or_default().push(pid);
        }
    }
    by_group
}
