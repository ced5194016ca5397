//! Whether two processes' descriptors are one open file description: what tells an SQLite
//! file opened before fork (one description, inherited, sharing its locks and offsets) from
//! the same file opened by each process (two descriptions, which SQLite handles).
//!
//! `kcmp(2)` with `KCMP_FILE` answers exactly, and needs what reading `/proc/PID/fd` already
//! needs (`PTRACE_MODE_READ` on both processes). Where it is refused (a seccomp filter, such as
//! Docker's default profile, or a kernel without `CONFIG_KCMP`), `/proc/PID/fdinfo` can still
//! prove two descriptions apart (their offsets or flags differ), never the same.

// The one system call nix does not wrap; see the SAFETY comment.
#![allow(unsafe_code)]

use std::io;
use std::os::fd::RawFd;

use nix::libc;
use nix::unistd::Pid;

/// `KCMP_FILE` in `linux/kcmp.h`.
const KCMP_FILE: libc::c_int = 0;

/// What is known of two descriptors.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum SameFile {
    /// One open file description: inherited (or passed).
    Same,
    /// Two descriptions: each process opened the file itself.
    Different,
    /// kcmp is refused and fdinfo cannot tell.
    Unknown,
}

/// Compares descriptor `a.1` of process `a.0` with `b.1` of `b.0`. The error is kcmp's
/// refusal, returned beside the fallback's answer so that the caller can say so once.
pub(crate) fn same_open_file(a: (Pid, RawFd), b: (Pid, RawFd)) -> (SameFile, Option<io::Error>) {
    match kcmp_file(a, b) {
        Ok(same) => (
            if same {
                SameFile::Same
            } else {
                SameFile::Different
            },
            None,
        ),
        Err(error) => (by_fdinfo(a, b), Some(error)),
    }
}

fn kcmp_file((pid1, fd1): (Pid, RawFd), (pid2, fd2): (Pid, RawFd)) -> io::Result<bool> {
    // SAFETY: kcmp takes five integers and reads or writes no memory of this process; any
    // values are safe to pass (bad ones are refused with an errno).
    let result = unsafe {
        libc::syscall(
            libc::SYS_kcmp,
            pid1.as_raw(),
            pid2.as_raw(),
            KCMP_FILE,
            fd1 as libc::c_ulong,
            fd2 as libc::c_ulong,
        )
    };
    match result {
        // 0: equal; 1 and 2 order two different ones; 3: different, with no order to tell.
        0 => Ok(true),
        1..=3 => Ok(false),
        _ => Err(io::Error::last_os_error()),
    }
}

/// The fallback: one description has one offset and one set of flags, so differing ones prove
/// two descriptions.
fn by_fdinfo(a: (Pid, RawFd), b: (Pid, RawFd)) -> SameFile {
    match (fdinfo(a), fdinfo(b)) {
        (Some(a), Some(b)) if a != b => SameFile::Different,
        _ => SameFile::Unknown,
    }
}

/// The `pos` and `flags` lines of `/proc/PID/fdinfo/FD`.
fn fdinfo((pid, fd): (Pid, RawFd)) -> Option<(String, String)> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/fdinfo/{fd}")).ok()?;
    parse_fdinfo(&text)
}

fn parse_fdinfo(text: &str) -> Option<(String, String)> {
    let field = |name: &str| {
        text.lines()
            .find_map(|line| line.strip_prefix(name)?.strip_prefix(':'))
            .map(|value| value.trim().to_owned())
    };
    Some((field("pos")?, field("flags")?))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::AsRawFd;
    use std::os::unix::process::CommandExt;
    use std::process::{Command, Stdio};

    #[test]
    fn fdinfo_offsets_and_flags_are_read() {
        let text = "pos:\t4096\nflags:\t02100002\nmnt_id:\t27\nino:\t1234\n";
        assert_eq!(parse_fdinfo(text), Some(("4096".into(), "02100002".into())));
        assert_eq!(parse_fdinfo("flags:\t0\n"), None);
    }

    /// A child that inherits descriptor 10 from this process, and opens the same file itself
    /// on descriptor 4.
    #[test]
    fn an_inherited_descriptor_is_the_same_open_file_and_a_reopened_one_is_not() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("app.db");
        std::fs::write(&path, b"SQLite format 3\0").unwrap();
        let file = std::fs::File::open(&path).unwrap();
        let inherited = file.as_raw_fd();
        let mut command = Command::new("sh");
        command
            .arg("-c")
            .arg(format!(
                "exec 4<'{}'; echo ready; exec sleep 30",
                path.display()
            ))
            .stdout(Stdio::piped());
        // SAFETY: dup2 is async-signal-safe; the hook touches nothing else.
        unsafe {
            command.pre_exec(move || {
                libc::dup2(inherited, 10);
                Ok(())
            });
        }
        let mut child = command.spawn().unwrap();
        let mut ready = [0u8; 6];
        io::Read::read_exact(child.stdout.as_mut().unwrap(), &mut ready).unwrap();
        let child_pid = Pid::from_raw(child.id() as i32);
        let me = nix::unistd::getpid();

        let (inherited_answer, refused) = same_open_file((me, inherited), (child_pid, 10));
        let (reopened_answer, _) = same_open_file((me, inherited), (child_pid, 4));
        let _ = child.kill();
        let _ = child.wait();

        match refused {
            None => {
                assert_eq!(inherited_answer, SameFile::Same);
                assert_eq!(reopened_answer, SameFile::Different);
            }
            // Where kcmp is refused the fallback never claims "the same".
            Some(_) => assert_ne!(inherited_answer, SameFile::Same),
        }
    }
}
