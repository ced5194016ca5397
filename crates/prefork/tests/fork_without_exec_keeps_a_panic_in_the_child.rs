//! A forked worker that panics must end there: the frames below its closure are the parent's,
//! and unwinding into them would run the parent's guards (temporary directories, pidfiles,
//! sockets) in the worker.

use std::panic::AssertUnwindSafe;
use std::path::PathBuf;

use nix::libc;
use nix::sys::wait::{WaitStatus, waitpid};
use nix::unistd::{ForkResult, fork};
use plexer_prefork::spawn::fork_without_exec;

/// Writes its file when dropped.
struct Guard(PathBuf);

impl Drop for Guard {
    fn drop(&mut self) {
        let _ = std::fs::write(&self.0, "dropped");
    }
}

/// The status the stand-in parent exits with when the worker ran the parent's guard.
const GUARD_RAN: i32 = 3;

#[test]
fn a_panicking_worker_exits_101_without_running_the_parents_destructors() {
    let dir = tempfile::tempdir().unwrap();
    let marker = dir.path().join("dropped");
    // fork_without_exec refuses a threaded process, and the test harness runs threads: a
    // forked copy of this process, which has one thread, stands in for the prefork parent.
    // SAFETY: the copy only forks again, waits and exits; it takes no lock another thread
    // of the harness could hold.
    match unsafe { fork() }.unwrap() {
        ForkResult::Child => {
            let code = std::panic::catch_unwind(AssertUnwindSafe(|| {
                let _guard = Guard(marker.clone());
                let worker = fork_without_exec(|| panic!("the worker panics")).unwrap();
                let code = match waitpid(worker, None) {
                    Ok(WaitStatus::Exited(_, code)) => code,
                    _ => 1,
                };
                // Looked at before this frame's own guard runs.
                if marker.exists() { GUARD_RAN } else { code }
            }))
            .unwrap_or(2);
            // SAFETY: ends the copy without running the harness's exit handlers.
            unsafe { libc::_exit(code) }
        }
        ForkResult::Parent { child } => {
            assert_eq!(
                waitpid(child, None).unwrap(),
                WaitStatus::Exited(child, 101),
                "{GUARD_RAN} means the worker unwound into its parent's frames"
            );
        }
    }
}
