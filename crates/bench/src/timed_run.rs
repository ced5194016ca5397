//! A command a benchmark times (`plexer accounts add`, say): run to completion with its wall
//! time taken the moment it exits, and killed if it outlives a deadline, so that a hung command
//! fails the benchmark instead of hanging it.
//!
//! Polling `try_wait` would add up to a poll interval to every figure; here the calling thread
//! blocks in `waitid(WNOWAIT)` (woken by the exit itself) while a watchdog thread holds the
//! deadline. The child is reaped only after the watchdog is done, so its pid cannot have been
//! reused by the time the watchdog signals it.

use std::io;
use std::process::{Command, ExitStatus};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::sys::wait::{Id, WaitPidFlag, waitid};
use nix::unistd::Pid;

/// Runs `command` and returns how it exited and how long it took from the spawn; an error if
/// it could not start, or ran longer than `timeout` (it is killed then).
pub fn timed_run(command: &mut Command, timeout: Duration) -> io::Result<(ExitStatus, Duration)> {
    let started = Instant::now();
    let mut child = command.spawn()?;
    let pid = Pid::from_raw(child.id() as i32);
    let (exited, exit_seen) = mpsc::channel::<()>();
    let watchdog = thread::spawn(move || {
        let late = exit_seen.recv_timeout(timeout).is_err();
        if late {
            let _ = kill(pid, Signal::SIGKILL);
        }
        late
    });
    let waited = waitid(Id::Pid(pid), WaitPidFlag::WEXITED | WaitPidFlag::WNOWAIT);
    let took = started.elapsed();
    let _ = exited.send(());
    let killed = watchdog.join().unwrap_or(true);
    let status = child.wait()?;
    waited.map_err(io::Error::from)?;
    if killed {
        return Err(io::Error::new(
            io::ErrorKind::TimedOut,
            format!("{command:?} still ran after {timeout:?}: killed ({status})"),
        ));
    }
    Ok((status, took))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_quick_command_is_timed_and_a_slow_one_killed() {
        let (status, took) = timed_run(&mut Command::new("true"), Duration::from_secs(10)).unwrap();
        assert!(status.success());
        assert!(took < Duration::from_secs(5), "{took:?}");

        let started = Instant::now();
        let err =
            timed_run(Command::new("sleep").arg("30"), Duration::from_millis(200)).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::TimedOut, "{err}");
        assert!(started.elapsed() < Duration::from_secs(10));
    }
}
