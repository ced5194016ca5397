//! Short-lived helper processes started for the supervisor's user, such as the plexer's slowlog
//! dumper (`py-spy dump --pid N`).
//!
//! They are started here, not with `tokio::process`, because the reaper takes the exit of every
//! child with `waitpid(-1)`: a helper's exit would be lost to anyone else, and std's spawn,
//! which waits itself for a child whose exec failed, would find that child already reaped. So a
//! helper is spawned with the pid map locked, as a worker is, and its exit is handed back.
//!
//! A helper runs as the supervisor's own user, with the program and arguments given (never a
//! shell), stdin `/dev/null`, stdout and stderr into one pipe, and in a process group of its
//! own, so [`Helper::kill`] reaches whatever it started.

use std::ffi::{OsStr, OsString};
use std::io;
use std::os::fd::OwnedFd;
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};

use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;
use tokio::sync::oneshot;

use super::{Owner, Supervisor, lock};
use crate::pool::Exit;
use crate::spawn::{self, SUPERVISOR_ONLY_ENV, WorkerScheduling};

/// A helper process the supervisor started; see the module documentation.
#[derive(Debug)]
pub struct Helper {
    pid: Pid,
    output: Option<OwnedFd>,
    exited: oneshot::Receiver<Exit>,
}

impl Supervisor {
    /// Starts `program` with `args` as a [`Helper`]. Fails as `Command::spawn` does (a program
    /// that does not exist or may not be run), or when no pipe can be made.
    pub fn spawn_helper(&self, program: &OsStr, args: &[OsString]) -> io::Result<Helper> {
        let (reader, writer) = io::pipe()?;
        let mut command = Command::new(program);
        command
            .args(args)
            .stdin(Stdio::null())
            .stdout(writer.try_clone()?)
            .stderr(writer)
            .process_group(0);
        // systemd's variables address the supervisor, as for a worker (spawn.rs).
        for name in SUPERVISOR_ONLY_ENV {
            command.env_remove(name);
        }
        if self.inner.scheduling == WorkerScheduling::Normal {
            spawn::start_under_normal_policy(&mut command);
        }
        let (exit_tx, exit_rx) = oneshot::channel();
        // Locked from the fork until the pid is known: the reaper takes this lock before it
        // waits, so it can neither lose this exit nor take a failed exec's child from std.
        let mut by_pid = lock(&self.inner.by_pid);
        let child = command.spawn()?;
        let pid = Pid::from_raw(child.id() as i32);
        by_pid.insert(pid, Owner::Helper(exit_tx));
        drop(by_pid);
        // The command holds our copies of the pipe's write end: closed here, the output ends
        // when the helper's (and its children's) copies close. The `Child` is dropped without a
        // wait, which the reaper does.
        drop(command);
        Ok(Helper {
            pid,
            output: Some(reader.into()),
            exited: exit_rx,
        })
    }
}

impl Helper {
    pub fn pid(&self) -> Pid {
        self.pid
    }

    /// The read end of the helper's stdout and stderr, once.
    pub fn take_output(&mut self) -> Option<OwnedFd> {
        self.output.take()
    }

    /// Waits until the helper exited; `None` when the supervisor stopped first.
    pub async fn exited(&mut self) -> Option<Exit> {
        (&mut self.exited).await.ok()
    }

    /// Kills the helper and its process group at once (SIGKILL).
    pub fn kill(&self) {
        if let Err(err) = killpg(self.pid, Signal::SIGKILL) {
            tracing::debug!(pid = %self.pid, error = %err, "helper not killed (already gone?)");
        }
    }
}
