//! A server a benchmark started (nginx, `plexer serve`, `plexer spawn`): in a process group of
//! its own, its output in a log file, and stopped with its children when the guard is dropped,
//! also when the benchmark fails. Every wait on it has a deadline and fails, with its log, as
//! soon as it exits.

use std::fs::{self, File};
use std::io;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::sys::signal::{Signal, kill, killpg};
use nix::unistd::Pid;

/// How long a server gets to stop after SIGTERM before its group is killed.
const STOP_TIMEOUT: Duration = Duration::from_secs(5);
/// How long a server gets to be ready ([`Server::wait_ready`]).
const READY_TIMEOUT: Duration = Duration::from_secs(10);
/// How often a wait polls: short, since some waits are what a benchmark measures.
const POLL: Duration = Duration::from_millis(2);

/// A running server; SIGTERM, then SIGKILL to its process group, on drop.
#[derive(Debug)]
pub struct Server {
    name: String,
    child: Child,
    log: PathBuf,
}

impl Server {
    /// Spawns `command` with stdin from /dev/null and stdout and stderr to `log`.
    pub fn spawn(name: &str, command: &mut Command, log: &Path) -> io::Result<Self> {
        let out = File::create(log)?;
        let child = command
            .stdin(Stdio::null())
            .stdout(out.try_clone()?)
            .stderr(out)
            .process_group(0)
            .spawn()
            .map_err(|err| io::Error::other(format!("cannot start {name} ({command:?}): {err}")))?;
        Ok(Self {
            name: name.to_owned(),
            child,
            log: log.to_owned(),
        })
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Everything it wrote so far.
    pub fn log(&self) -> String {
        fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Polls `ready` for up to 10 s; fails with the server's log if it exited or never got
    /// ready.
    pub fn wait_ready(&mut self, what: &str, ready: impl FnMut() -> bool) -> io::Result<()> {
        self.wait_until(what, READY_TIMEOUT, ready)
    }

    /// Polls `cond` for up to `within`; fails with the server's log if it exited first or
    /// `cond` never held.
    pub fn wait_until(
        &mut self,
        what: &str,
        within: Duration,
        mut cond: impl FnMut() -> bool,
    ) -> io::Result<()> {
        let started = Instant::now();
        while !cond() {
            self.check_running(what)?;
            if started.elapsed() > within {
                return Err(io::Error::other(format!(
                    "{} did not get to {what} within {within:?}; its log:\n{}",
                    self.name,
                    self.log()
                )));
            }
            std::thread::sleep(POLL);
        }
        Ok(())
    }

    /// Fails, with the server's log, if it has exited (`what` is what it did not get to).
    pub fn check_running(&mut self, what: &str) -> io::Result<()> {
        match self.child.try_wait()? {
            None => Ok(()),
            Some(status) => Err(io::Error::other(format!(
                "{} exited ({status}) before {what}; its log:\n{}",
                self.name,
                self.log()
            ))),
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let pid = Pid::from_raw(self.pid() as i32);
        let _ = kill(pid, Signal::SIGTERM);
        let started = Instant::now();
        while started.elapsed() < STOP_TIMEOUT {
            if matches!(self.child.try_wait(), Ok(Some(_)) | Err(_)) {
                break;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        // Whatever is left in its group (the server itself if it did not stop, or workers
        // it left behind) goes too.
        match killpg(pid, Signal::SIGKILL) {
            Ok(()) | Err(Errno::ESRCH) => {}
            Err(err) => eprintln!("{} ({pid}): cannot kill its group: {err}", self.name),
        }
        let _ = self.child.wait();
    }
}

/// Waits for SIGINT or SIGTERM and names it: a benchmark selects on this beside its work, so
/// that an interrupted run unwinds and every [`Server`] it started is stopped by its guard
/// (they run in process groups of their own, which a terminal's Ctrl-C does not reach).
pub async fn interrupted() -> &'static str {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut int), Ok(mut term)) = (
        signal(SignalKind::interrupt()),
        signal(SignalKind::terminate()),
    ) else {
        // Without handlers the default action (exit) stays; nothing to wait for here.
        return std::future::pending().await;
    };
    tokio::select! {
        _ = int.recv() => "SIGINT",
        _ = term.recv() => "SIGTERM",
    }
}
