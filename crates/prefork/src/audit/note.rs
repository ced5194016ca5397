//! What kept an audit from seeing everything. A note is reported (once, by whoever repeats
//! audits), never a finding, and never a reason to stop a pool: the audit falls back to what it
//! can still read.

use std::fmt;

use nix::unistd::Pid;

/// A limit an audit ran into, and what it did instead.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum AuditNote {
    /// `NETLINK_SOCK_DIAG` could not be used (a seccomp filter, a kernel without it).
    NetlinkRefused { error: String },
    /// A process's descriptors could not be listed: another user's, without root.
    Uninspectable { pid: Pid, error: String },
    /// Some processes could not be looked into while looking for who answers a connection.
    PeersHidden,
    /// `kcmp(2)` is refused, so one SQLite file open in several processes may or may not be
    /// one open file.
    KcmpRefused { error: String },
    /// A round of the audit failed as a whole (say, a `/proc/net` table not understood).
    RoundFailed { error: String },
}

impl AuditNote {
    /// Notes of one kind say the same thing: a repeated audit reports each kind once.
    pub fn kind(&self) -> std::mem::Discriminant<AuditNote> {
        std::mem::discriminant(self)
    }
}

impl fmt::Display for AuditNote {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AuditNote::NetlinkRefused { error } => write!(
                f,
                "the fork-safety audit cannot use netlink sock_diag ({error}); it reads \
                 /proc/net instead, which is slower and does not name the peer of another \
                 process's unix socket, so a database behind one is found by its socket's \
                 name only"
            ),
            AuditNote::Uninspectable { pid, error } => write!(
                f,
                "the fork-safety audit cannot list the descriptors of pid {pid} ({error}), so \
                 that process is left out; run plexer as root, or as the user its workers run as"
            ),
            AuditNote::PeersHidden => f.write_str(
                "the fork-safety audit cannot look into some processes (another user's, or \
                 /proc mounted with hidepid), so a local server they run is known by its \
                 port, its socket's name or the user it runs as only; run plexer as root to \
                 identify every server",
            ),
            AuditNote::KcmpRefused { error } => write!(
                f,
                "the fork-safety audit cannot use kcmp(2) ({error}), so it cannot tell an \
                 SQLite file opened before fork from one each process opened; such files are \
                 reported as possibly shared, and never stop a pool"
            ),
            AuditNote::RoundFailed { error } => write!(
                f,
                "a round of the fork-safety audit failed and was skipped: {error}"
            ),
        }
    }
}
