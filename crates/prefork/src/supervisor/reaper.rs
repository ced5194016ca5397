//! Reaps every child of the supervisor on SIGCHLD and hands each exit to its pool.
//!
//! `waitpid(-1, WNOHANG)` in a loop: one SIGCHLD may stand for several exits, and as the
//! subreaper the supervisor also inherits its workers' orphaned children, which must be reaped
//! even though no pool knows them.

use std::sync::Weak;

use nix::errno::Errno;
use nix::sys::wait::{WaitPidFlag, WaitStatus, waitpid};
use tokio::signal::unix::{SignalKind, signal};

use super::{SupervisorInner, lock};
use crate::pool::Exit;

pub(super) fn spawn(supervisor: Weak<SupervisorInner>) -> std::io::Result<()> {
    let mut sigchld = signal(SignalKind::child())?;
    tokio::spawn(async move {
        loop {
            // Reap first: children may have exited before the handler was installed.
            reap_all(&supervisor);
            if sigchld.recv().await.is_none() || supervisor.strong_count() == 0 {
                return;
            }
        }
    });
    Ok(())
}

fn reap_all(supervisor: &Weak<SupervisorInner>) {
    let supervisor = supervisor.upgrade();
    loop {
        // The pid map is held across waitpid: a spawn holds it from the fork until the pool
        // knows the pid, and std's spawn waits for a child whose exec failed itself, so that
        // child must not be reaped here meanwhile (std panics when its wait finds no child).
        let by_pid = supervisor.as_ref().map(|s| lock(&s.by_pid));
        let (pid, exit) = match waitpid(None, Some(WaitPidFlag::WNOHANG)) {
            Ok(WaitStatus::Exited(pid, code)) => (pid, Exit::Code(code)),
            Ok(WaitStatus::Signaled(pid, signal, _)) => (pid, Exit::Signal(signal as i32)),
            Ok(WaitStatus::StillAlive) | Err(Errno::ECHILD) => return,
            Ok(_) | Err(Errno::EINTR) => continue, // stopped/continued: not an exit
            Err(err) => {
                tracing::error!(error = %err, "waitpid failed");
                return;
            }
        };
        if let Some(by_pid) = by_pid {
            SupervisorInner::dispatch_exit(by_pid, pid, exit);
        }
    }
}
