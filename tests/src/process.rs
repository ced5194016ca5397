//! Processes a test starts: servers that run until the test ends ([`Running`]), and commands
//! that run to completion within a deadline ([`run`]).

use std::fmt;
use std::fs::{self, File};
use std::io::{Read, Write};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;

use crate::wait;

/// A server process that lives until the guard is dropped.
///
/// It runs in a process group of its own, so that dropping the guard (also while a test
/// panics) kills it and whatever it forked with one `killpg(SIGKILL)`, then reaps it. Its
/// stdout and stderr go to a log file; when the test is panicking the log is printed, since
/// it usually says why.
#[derive(Debug)]
pub struct Running {
    name: String,
    child: Child,
    log: PathBuf,
    exit: Option<ExitStatus>,
}

impl Running {
    /// Spawns `command` (set its stdin: the default inherits the test's) with stdout and
    /// stderr appended to `log`.
    pub fn spawn(name: &str, command: &mut Command, log: &Path) -> Self {
        let out = File::options()
            .create(true)
            .append(true)
            .open(log)
            .unwrap_or_else(|err| panic!("cannot open the log {log:?}: {err}"));
        let err = out.try_clone().expect("clone the log file");
        command.stdout(out).stderr(err).process_group(0);
        let child = command
            .spawn()
            .unwrap_or_else(|err| panic!("cannot start {name} ({command:?}): {err}"));
        Self {
            name: name.to_owned(),
            child,
            log: log.to_path_buf(),
            exit: None,
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// Everything the process wrote to stdout and stderr so far.
    pub fn log(&self) -> String {
        fs::read(&self.log)
            .map(|bytes| String::from_utf8_lossy(&bytes).into_owned())
            .unwrap_or_default()
    }

    pub fn log_path(&self) -> &Path {
        &self.log
    }

    /// The exit status, if the process has exited (it is reaped then).
    pub fn try_exit(&mut self) -> Option<ExitStatus> {
        if self.exit.is_none() {
            self.exit = self.child.try_wait().expect("waitpid on a child");
        }
        self.exit
    }

    /// Panics, with the log, if the process has exited.
    pub fn assert_running(&mut self) {
        if let Some(status) = self.try_exit() {
            panic!(
                "{} (pid {}) exited: {}\n--- its output ---\n{}",
                self.name,
                self.pid(),
                describe(status),
                self.log()
            );
        }
    }

    /// Sends `signal` to the process alone (not its group).
    pub fn signal(&self, signal: Signal) {
        let _ = nix::sys::signal::kill(self.pgid(), signal);
    }

    /// Kills the process group and reaps the process; returns how it ended.
    pub fn kill(&mut self) -> ExitStatus {
        // The group outlives its leader while children remain, so kill it even after an exit.
        let _ = killpg(self.pgid(), Signal::SIGKILL);
        if let Some(status) = self.exit {
            return status;
        }
        let status = self.child.wait().expect("waitpid on a killed child");
        self.exit = Some(status);
        status
    }

    /// Waits up to `timeout` for the process to exit by itself.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<ExitStatus> {
        wait::wait_for_value(|| self.try_exit(), timeout)
    }

    fn pgid(&self) -> Pid {
        Pid::from_raw(self.child.id() as i32)
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        self.kill();
        if thread::panicking() {
            eprintln!(
                "--- output of {} (pid {}), {} ---\n{}--- end of {} output ---",
                self.name,
                self.pid(),
                self.log.display(),
                self.log(),
                self.name
            );
        }
    }
}

/// How a command run by [`run`] ended.
#[derive(Debug)]
pub struct Finished {
    pub command: String,
    pub status: ExitStatus,
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
}

impl Finished {
    pub fn stdout_text(&self) -> String {
        String::from_utf8_lossy(&self.stdout).into_owned()
    }

    pub fn stderr_text(&self) -> String {
        String::from_utf8_lossy(&self.stderr).into_owned()
    }

    /// The exit code, `None` when a signal ended it.
    pub fn code(&self) -> Option<i32> {
        self.status.code()
    }

    /// Panics, showing both streams, unless the command exited 0.
    pub fn assert_success(&self) -> &Self {
        assert!(self.status.success(), "expected success: {self}");
        self
    }

    /// Panics, showing both streams, unless the command exited with a non-zero code (a
    /// signal does not count: a crash is not a reported error).
    pub fn assert_failure(&self) -> &Self {
        assert!(
            matches!(self.code(), Some(code) if code != 0),
            "expected a non-zero exit code: {self}"
        );
        self
    }
}

impl fmt::Display for Finished {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} {}\n--- stdout ---\n{}\n--- stderr ---\n{}\n--- end ---",
            self.command,
            describe(self.status),
            truncate(&self.stdout_text(), 4000),
            truncate(&self.stderr_text(), 4000)
        )
    }
}

/// Runs `command` to completion with `stdin` as its input, and panics if it takes longer than
/// `timeout` (after killing it, and with what it had written so far).
pub fn run(command: &mut Command, stdin: &[u8], timeout: Duration) -> Finished {
    run_inner(command, Some(stdin), timeout)
}

/// [`run`], with stdin left as `command` set it (e.g. `/dev/null`, or a socket).
pub fn run_keeping_stdin(command: &mut Command, timeout: Duration) -> Finished {
    run_inner(command, None, timeout)
}

fn run_inner(command: &mut Command, stdin: Option<&[u8]>, timeout: Duration) -> Finished {
    if stdin.is_some() {
        command.stdin(Stdio::piped());
    }
    let shown = format!("{command:?}");
    let mut child = command
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .spawn()
        .unwrap_or_else(|err| panic!("cannot run {shown}: {err}"));
    let writer = child.stdin.take().zip(stdin).map(|(mut input, stdin)| {
        let stdin = stdin.to_vec();
        // A command that does not read its input must not block the test: write from a
        // thread and ignore EPIPE.
        thread::spawn(move || {
            let _ = input.write_all(&stdin);
        })
    });
    let out = drain(child.stdout.take().expect("piped stdout"));
    let err = drain(child.stderr.take().expect("piped stderr"));

    let deadline = Instant::now() + timeout;
    let status = loop {
        if let Some(status) = child.try_wait().expect("waitpid") {
            break Some(status);
        }
        if Instant::now() >= deadline {
            break None;
        }
        thread::sleep(Duration::from_millis(5));
    };
    // Also after an exit: a process the command left in its group (a grandchild) may hold the
    // pipes open, and the readers would wait for their end for ever.
    let _ = killpg(Pid::from_raw(child.id() as i32), Signal::SIGKILL);
    let Some(status) = status else {
        let _ = child.wait();
        let finished = Finished {
            stdout: join_reader(out, &shown, "stdout"),
            stderr: join_reader(err, &shown, "stderr"),
            command: shown,
            status: ExitStatus::from_raw(9),
        };
        panic!("still running after {timeout:?}, killed: {finished}");
    };
    // The writer ignores errors and ends once no one holds the pipe's other end; one that
    // does not is left behind rather than waited for.
    if let Some(writer) = writer
        && wait::wait_for(|| writer.is_finished(), PIPE_GRACE)
    {
        let _ = writer.join();
    }
    Finished {
        stdout: join_reader(out, &shown, "stdout"),
        stderr: join_reader(err, &shown, "stderr"),
        command: shown,
        status,
    }
}

/// How long the pipes may stay open after the command's group is killed: only a process that
/// left the group (a daemon in a session of its own) still holds them then.
const PIPE_GRACE: Duration = Duration::from_secs(5);

/// What a [`drain`] thread read, once the pipe has ended; panics if it does not end within
/// [`PIPE_GRACE`].
fn join_reader(reader: thread::JoinHandle<Vec<u8>>, shown: &str, pipe: &str) -> Vec<u8> {
    assert!(
        wait::wait_for(|| reader.is_finished(), PIPE_GRACE),
        "the {pipe} of {shown} is still open {PIPE_GRACE:?} after its process group was \
         killed: a process outside the group holds it"
    );
    reader
        .join()
        .unwrap_or_else(|_| panic!("the {pipe} reader"))
}

fn drain(mut pipe: impl Read + Send + 'static) -> thread::JoinHandle<Vec<u8>> {
    thread::spawn(move || {
        let mut bytes = Vec::new();
        let _ = pipe.read_to_end(&mut bytes);
        bytes
    })
}

/// `exit status 2`, or `killed by signal 9`.
pub fn describe(status: ExitStatus) -> String {
    match (status.code(), status.signal()) {
        (Some(code), _) => format!("exited with status {code}"),
        (None, Some(signal)) => format!("killed by signal {signal}"),
        _ => format!("{status}"),
    }
}

fn truncate(text: &str, max: usize) -> String {
    if text.len() <= max {
        return text.to_owned();
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}… ({} bytes in all)", &text[..end], text.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_grandchild_holding_the_pipes_does_not_hold_up_run() {
        let started = Instant::now();
        let mut command = Command::new("/bin/sh");
        command.args(["-c", "sleep 60 & echo started"]);
        let finished = run(&mut command, b"", Duration::from_secs(30));
        finished.assert_success();
        assert_eq!(finished.stdout_text(), "started\n");
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "run waited for the grandchild: {:?}",
            started.elapsed()
        );
    }
}
