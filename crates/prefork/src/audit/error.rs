//! What can go wrong in an audit, and why a fork is refused.

use std::fmt;
use std::io;
use std::path::PathBuf;

use nix::unistd::Pid;

use super::finding::Finding;

/// The audit could not look at a process.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AuditError {
    #[error(
        "cannot list the open descriptors of pid {pid} in {}; check that the process exists and \
         that you may inspect it (same user, or root)",
        path.display()
    )]
    ListDescriptors {
        pid: Pid,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error(
        "cannot read {}; the audit needs /proc mounted to classify sockets",
        path.display()
    )]
    ReadProc {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error(
        "cannot understand line {line_no} of {} ({line:?}): {reason}; the audit fails rather \
         than miss a database socket on it, so please report this kernel's format",
        path.display()
    )]
    Parse {
        path: PathBuf,
        line_no: usize,
        line: String,
        reason: &'static str,
    },
}

impl AuditError {
    /// The process is gone: it holds nothing, so a cross-process check skips it.
    pub(crate) fn is_gone_process(&self) -> bool {
        matches!(self, AuditError::ListDescriptors { source, .. }
            if source.kind() == io::ErrorKind::NotFound
                || source.raw_os_error() == Some(nix::libc::ESRCH))
    }
}

/// Why the prefork parent must not fork now.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ForkRefused {
    #[error(
        "refusing to fork: this process runs {threads} threads, and a process that forks \
         without exec must not run threads or an async runtime (the child would get only the \
         forking thread, and any lock another thread held stays locked forever); fork from a \
         single-threaded process started before any thread or runtime"
    )]
    Threaded { threads: usize },
    #[error(
        "refusing to fork: cannot count this process's threads in {}; mount /proc so the \
         prefork parent can check it is single-threaded",
        path.display()
    )]
    CannotCountThreads {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error(
        "refusing to fork: every worker would inherit {}, and one worker could read another's \
         reply:{}",
        Count(findings.len()),
        Lines(findings)
    )]
    InheritedDbHandles { findings: Vec<Finding> },
    #[error("refusing to fork: the fork-safety audit failed")]
    Audit(#[from] AuditError),
}

struct Count(usize);

impl fmt::Display for Count {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            1 => f.write_str("a database handle"),
            n => write!(f, "{n} database handles"),
        }
    }
}

struct Lines<'a>(&'a [Finding]);

impl fmt::Display for Lines<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for finding in self.0 {
            write!(f, "\n  {finding}")?;
        }
        Ok(())
    }
}
