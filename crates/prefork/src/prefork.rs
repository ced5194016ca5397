//! flup's prefork server, done right, for Rust FastCGI applications.
//!
//! The application loads once in a single-threaded parent (everything it does before
//! [`Prefork::run`]: read config, build templates, warm caches, whatever is worth sharing
//! copy-on-write), then the parent forks the workers. Each worker runs the closure given to
//! `run`: its `post_fork` part first, which opens the worker's own connections, then its
//! serving loop on the shared listening socket.
//!
//! Django under flup imported the project and then forked: a database connection opened at
//! import was one socket shared by every child, and "if one process sends a request, another
//! can receive a reply" (seed 000). So before **every** fork, the first and every respawn,
//! the parent runs the fork-safety audit on itself and refuses to fork while it holds a
//! database handle, naming the descriptor and the fix:
//!
//! ```text
//! fd 7 is a TCP connection to 127.0.0.1:5432 (PostgreSQL) opened before fork; open it in post_fork
//! ```
//!
//! Which process forks without exec: only the parent running [`Prefork::run`], and
//! [`crate::spawn::fork_without_exec`] checks it is single-threaded before each fork. It uses no
//! async runtime and no thread: signals are blocked and taken with `sigwait`, so nothing runs
//! behind the loop's back.

use std::os::fd::OwnedFd;
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::sys::signal::{SigSet, SigmaskHow, Signal, kill, sigprocmask};
use nix::sys::wait::{WaitPidFlag, WaitStatus, waitpid};
use nix::unistd::Pid;

use crate::audit::{AuditPolicy, ForkRefused, assert_fork_safe};
use crate::pool::MIN_LIFETIME;
use crate::spawn::{ForkError, fork_without_exec};

/// Why the prefork server stopped with an error.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PreforkError {
    #[error(transparent)]
    Refused(ForkRefused),
    #[error("{0}")]
    Fork(#[source] ForkError),
    #[error(
        "{failures} workers failed within {window:?}, the last {last}: fix the app's start-up, \
         then start it again"
    )]
    CrashLoop {
        failures: usize,
        window: Duration,
        last: String,
    },
    #[error("cannot manage signals: {0}")]
    Signals(#[source] nix::Error),
}

/// A prefork server: N workers forked from this process, kept running.
pub struct Prefork {
    listener: OwnedFd,
    workers: usize,
    policy: AuditPolicy,
    stop_timeout: Duration,
    crash_window: Duration,
    crash_failures: usize,
}

impl Prefork {
    /// Workers serve `listener` (a listening socket, which the audit allows).
    pub fn new(listener: OwnedFd, workers: usize) -> Self {
        Self {
            listener,
            workers: workers.max(1),
            policy: AuditPolicy::new(),
            stop_timeout: Duration::from_secs(10),
            crash_window: Duration::from_secs(60),
            crash_failures: 10,
        }
    }

    /// The audit's policy: more database endpoints, descriptors the app declares safe.
    pub fn policy(mut self, policy: AuditPolicy) -> Self {
        self.policy = policy;
        self
    }

    /// Forks the workers and keeps them running until SIGTERM, SIGINT or SIGQUIT, when they
    /// get SIGTERM and `run` returns once they exited. Each worker calls `worker` with the
    /// listening socket and exits with what it returns.
    ///
    /// # Errors
    /// [`PreforkError::Refused`] when this process holds a database handle or runs threads,
    /// before the first fork or any respawn (the workers already running are stopped first).
    pub fn run(self, worker: impl Fn(&OwnedFd) -> i32) -> Result<(), PreforkError> {
        let signals = [
            Signal::SIGCHLD,
            Signal::SIGTERM,
            Signal::SIGINT,
            Signal::SIGQUIT,
        ]
        .into_iter()
        .collect::<SigSet>();
        sigprocmask(SigmaskHow::SIG_BLOCK, Some(&signals), None).map_err(PreforkError::Signals)?;
        // Each worker with when it was forked: one that lived a while and exited 0 recycled itself.
        let mut children: Vec<(Pid, Instant)> = Vec::new();
        let mut failures: Vec<Instant> = Vec::new();
        let outcome = loop {
            if let Err(err) = self.fill(&mut children, &signals, &worker) {
                break Err(err);
            }
            match signals.wait().map_err(PreforkError::Signals) {
                Ok(Signal::SIGCHLD) => {
                    if let Err(err) = self.reap(&mut children, &mut failures) {
                        break Err(err);
                    }
                }
                Ok(_) => break Ok(()),
                Err(err) => break Err(err),
            }
        };
        let pids: Vec<Pid> = children.iter().map(|&(pid, _)| pid).collect();
        self.stop(&pids);
        let _ = sigprocmask(SigmaskHow::SIG_UNBLOCK, Some(&signals), None);
        outcome
    }

    /// Forks until `workers` run, auditing before each fork.
    fn fill(
        &self,
        children: &mut Vec<(Pid, Instant)>,
        signals: &SigSet,
        worker: &impl Fn(&OwnedFd) -> i32,
    ) -> Result<(), PreforkError> {
        while children.len() < self.workers {
            assert_fork_safe(&self.policy).map_err(PreforkError::Refused)?;
            let pid = fork_without_exec(|| {
                // The worker takes signals the ordinary way again.
                let _ = sigprocmask(SigmaskHow::SIG_UNBLOCK, Some(signals), None);
                worker(&self.listener)
            })
            .map_err(PreforkError::Fork)?;
            tracing::info!(%pid, "worker forked");
            children.push((pid, Instant::now()));
        }
        Ok(())
    }

    /// Reaps exited workers; a failure within the crash window counts towards giving up, and
    /// delays the respawn a little more each time. A worker that lived at least
    /// [`MIN_LIFETIME`] and exited 0 recycled itself (its own max requests): no failure, as in
    /// the supervisor's pools.
    fn reap(
        &self,
        children: &mut Vec<(Pid, Instant)>,
        failures: &mut Vec<Instant>,
    ) -> Result<(), PreforkError> {
        loop {
            let (pid, how, clean) = match waitpid(None, Some(WaitPidFlag::WNOHANG)) {
                Ok(WaitStatus::Exited(pid, code)) => {
                    (pid, format!("exited with status {code}"), code == 0)
                }
                Ok(WaitStatus::Signaled(pid, signal, _)) => {
                    (pid, format!("was killed by {signal}"), false)
                }
                Ok(WaitStatus::StillAlive) | Err(Errno::ECHILD) => return Ok(()),
                Ok(_) | Err(Errno::EINTR) => continue,
                Err(err) => return Err(PreforkError::Signals(err)),
            };
            let lived = children
                .iter()
                .find(|&&(child, _)| child == pid)
                .map(|&(_, forked)| forked.elapsed());
            children.retain(|&(child, _)| child != pid);
            if clean && lived.is_some_and(|lived| lived >= MIN_LIFETIME) {
                tracing::info!(%pid, "worker {how}: it recycled itself; forking another");
                continue;
            }
            tracing::warn!(%pid, "worker {how}");
            let now = Instant::now();
            failures.retain(|at| now.duration_since(*at) < self.crash_window);
            failures.push(now);
            if failures.len() >= self.crash_failures {
                return Err(PreforkError::CrashLoop {
                    failures: failures.len(),
                    window: self.crash_window,
                    last: format!("worker {pid} {how}"),
                });
            }
            // 50 ms, doubling with each recent failure, at most 5 s.
            let shift = u32::try_from(failures.len()).unwrap_or(u32::MAX).min(7);
            std::thread::sleep(Duration::from_millis(50 << shift).min(Duration::from_secs(5)));
        }
    }

    /// SIGTERM to every worker, SIGKILL to those still there after `stop_timeout`.
    fn stop(&self, children: &[Pid]) {
        for &pid in children {
            let _ = kill(pid, Signal::SIGTERM);
        }
        let deadline = Instant::now() + self.stop_timeout;
        let mut left: Vec<Pid> = children.to_vec();
        while !left.is_empty() {
            left.retain(|&pid| {
                !matches!(
                    waitpid(pid, Some(WaitPidFlag::WNOHANG)),
                    Ok(WaitStatus::Exited(..) | WaitStatus::Signaled(..)) | Err(_)
                )
            });
            if Instant::now() >= deadline {
                for &pid in &left {
                    let _ = kill(pid, Signal::SIGKILL);
                    let _ = waitpid(pid, None);
                }
                return;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}
