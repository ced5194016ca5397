//! Helpers shared by the audit's integration tests: python children that are always killed,
//! and finding look-ups by descriptor.
#![allow(dead_code)] // each test binary uses its own subset

use std::io::{BufRead, BufReader};
use std::os::fd::RawFd;
use std::process::{Child, ChildStdout, Command, Stdio};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use plexer_prefork::audit::{AuditReport, Descriptor, Finding};

/// A child process killed and reaped when the test ends, pass or fail, together with any
/// grandchildren it reported.
pub(crate) struct ChildGuard {
    child: Child,
    stdout: BufReader<ChildStdout>,
    grandchildren: Vec<Pid>,
}

impl ChildGuard {
    pub(crate) fn pid(&self) -> Pid {
        Pid::from_raw(self.child.id() as i32)
    }

    /// Reads the next line the child printed; panics if it exited first.
    pub(crate) fn read_line(&mut self) -> String {
        let mut line = String::new();
        self.stdout.read_line(&mut line).expect("read child stdout");
        assert!(
            !line.is_empty(),
            "child exited early: {:?}",
            self.child.try_wait()
        );
        line.trim_end().to_owned()
    }

    /// Kills this pid too on drop: it must be the child's own child, so that it stays a zombie
    /// (its pid not reusable) until the child is killed after it.
    pub(crate) fn adopt_grandchild(&mut self, pid: Pid) {
        self.grandchildren.push(pid);
    }
}

impl Drop for ChildGuard {
    fn drop(&mut self) {
        for pid in &self.grandchildren {
            let _ = kill(*pid, Signal::SIGKILL);
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs `python3 -c script`; the script talks back on stdout.
pub(crate) fn spawn_python(script: &str) -> ChildGuard {
    let mut child = Command::new("python3")
        .arg("-c")
        .arg(script)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("python3 is needed by the audit's tests");
    let stdout = BufReader::new(child.stdout.take().expect("piped stdout"));
    ChildGuard {
        child,
        stdout,
        grandchildren: Vec::new(),
    }
}

pub(crate) fn finding_for(report: &AuditReport, fd: RawFd) -> Option<&Finding> {
    report.findings().iter().find(|f| f.fd() == fd)
}

pub(crate) fn descriptor_for(report: &AuditReport, fd: RawFd) -> &Descriptor {
    report
        .descriptors()
        .iter()
        .find(|d| d.fd() == fd)
        .unwrap_or_else(|| panic!("fd {fd} missing from the report:\n{report}"))
}
