//! Starting a worker without copying plexer's page tables: `clone(CLONE_VM | CLONE_VFORK)`,
//! the way glibc's posix_spawn starts a program, with every pre-exec step a worker needs that
//! posix_spawn cannot take (PDEATHSIG, rlimits, chroot, supplementary groups, uid).
//!
//! A fork copies the address space's page tables, and every page plexer then writes faults and
//! is copied: with 10,000 accounts plexer holds 55 MiB, and starting workers while account
//! files change was the p99 of requests (docs/benchmarks.md). With `CLONE_VM` the child runs in
//! plexer's own memory on a stack of its own, and `CLONE_VFORK` suspends the calling thread
//! until the child has exec'd (or exited), so nothing is copied.
//!
//! The price is what the child may do: it shares memory with every thread of plexer, so it
//! allocates nothing, takes no lock and touches nothing but what the parent prepared (the
//! [`Launch`] it gets a pointer to) and its own stack. Signals stay blocked from before the
//! clone until the child has put every caught signal back to its default (a handler of
//! plexer's must never run in the child, on plexer's memory); then the mask is emptied and the
//! program exec'd. An exec that fails leaves its errno where the parent reads it.

use std::ffi::{CString, c_char, c_int, c_void};
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::sync::atomic::{AtomicI32, Ordering};

use nix::errno::Errno;
use nix::libc;
use nix::sys::signal::{SigSet, SigmaskHow, pthread_sigmask};

use super::ChildSetup;

/// The child's stack: the pre-exec steps are a few syscalls deep.
const STACK_SIZE: usize = 256 * 1024;

/// Everything the child reads, built in the parent before the clone.
pub(super) struct Launch {
    pub program: CString,
    /// argv and envp as C wants them: pointers into `_strings`, then a null pointer.
    pub argv: Vec<*const c_char>,
    pub envp: Vec<*const c_char>,
    pub _strings: Vec<CString>,
    pub setup: ChildSetup,
    /// Descriptors that become the worker's 0, 1 and 2.
    pub stdio: [RawFd; 3],
    /// The errno of a failed step or exec; 0 while none failed.
    pub failed: AtomicI32,
}

impl Launch {
    /// Builds argv/envp: `strings` are the program's arguments (argv[0] first), then `env`.
    pub(super) fn new(
        program: CString,
        args: Vec<CString>,
        env: Vec<CString>,
        setup: ChildSetup,
        stdio: [&OwnedFd; 3],
    ) -> Self {
        let argv = args
            .iter()
            .map(|a| a.as_ptr())
            .chain([std::ptr::null()])
            .collect();
        let envp = env
            .iter()
            .map(|e| e.as_ptr())
            .chain([std::ptr::null()])
            .collect();
        let mut strings = args;
        strings.extend(env);
        Self {
            program,
            argv,
            envp,
            _strings: strings,
            setup,
            stdio: stdio.map(AsRawFd::as_raw_fd),
            failed: AtomicI32::new(0),
        }
    }
}

/// Clones a child that runs `launch` and execs; returns its pid once it has exec'd, or the
/// errno of the step that failed (the child has then exited; the caller reaps it).
pub(super) fn clone_and_exec(launch: &Launch) -> Result<libc::pid_t, (libc::pid_t, Errno)> {
    let mut stack = vec![0u8; STACK_SIZE];
    // The stack grows down on every architecture Linux runs plexer on; 16-byte aligned.
    let top = (stack.as_mut_ptr() as usize + STACK_SIZE) & !15;
    let mut old = SigSet::empty();
    // Blocked from here until the child has reset every handler: see the module docs.
    let _ = pthread_sigmask(
        SigmaskHow::SIG_SETMASK,
        Some(&SigSet::all()),
        Some(&mut old),
    );
    // SAFETY: the child runs `child_main` on its own stack (`stack`, alive until clone returns,
    // which with CLONE_VFORK is after the child exec'd or exited) and reads only `launch`, which
    // outlives the call; it allocates nothing and takes no lock (see `child_main`).
    let pid = unsafe {
        libc::clone(
            child_main,
            top as *mut c_void,
            libc::CLONE_VM | libc::CLONE_VFORK | libc::SIGCHLD,
            launch as *const Launch as *mut c_void,
        )
    };
    let cloned = Errno::last();
    let _ = pthread_sigmask(SigmaskHow::SIG_SETMASK, Some(&old), None);
    drop(stack);
    if pid == -1 {
        return Err((-1, cloned));
    }
    match launch.failed.load(Ordering::Acquire) {
        0 => Ok(pid),
        errno => Err((pid, Errno::from_raw(errno))),
    }
}

/// The child, between clone and exec.
extern "C" fn child_main(arg: *mut c_void) -> c_int {
    // SAFETY: `arg` is the `&Launch` the parent passed, alive while the parent is suspended.
    let launch = unsafe { &*(arg as *const Launch) };
    let errno = prepare_and_exec(launch);
    launch.failed.store(errno as i32, Ordering::Release);
    // SAFETY: _exit ends the child without running anything of the parent's.
    unsafe { libc::_exit(127) }
}

/// Every step, then exec: returns only when one failed, with its errno.
fn prepare_and_exec(launch: &Launch) -> Errno {
    default_every_caught_signal();
    for (target, &fd) in launch.stdio.iter().enumerate() {
        if let Err(errno) = place_descriptor(fd, target as RawFd) {
            return errno;
        }
    }
    // Session, PDEATHSIG, the empty signal mask, rlimits, chroot, chdir, groups, gid, uid,
    // descriptors above 2 closed at exec.
    if let Err(err) = launch.setup.apply() {
        return Errno::from_raw(err.raw_os_error().unwrap_or(libc::EINVAL));
    }
    // SAFETY: program, argv and envp are NUL-terminated strings and null-terminated arrays the
    // parent built and keeps alive.
    unsafe {
        libc::execve(
            launch.program.as_ptr(),
            launch.argv.as_ptr(),
            launch.envp.as_ptr(),
        )
    };
    Errno::last()
}

/// Puts every signal with a handler back to its default. A signal plexer ignores stays
/// ignored, as exec would keep it.
fn default_every_caught_signal() {
    for signal in 1..libc::SIGRTMAX() {
        // SAFETY: sigaction(2) reads and writes the kernel's table only; `current` is ours.
        unsafe {
            let mut current: libc::sigaction = std::mem::zeroed();
            if libc::sigaction(signal, std::ptr::null(), &mut current) != 0 {
                continue; // SIGKILL, SIGSTOP, or a number glibc keeps for itself
            }
            if current.sa_sigaction != libc::SIG_DFL && current.sa_sigaction != libc::SIG_IGN {
                let mut default: libc::sigaction = std::mem::zeroed();
                default.sa_sigaction = libc::SIG_DFL;
                libc::sigaction(signal, &default, std::ptr::null_mut());
            }
        }
    }
}

/// Makes `fd` the child's descriptor `target`, open across exec.
fn place_descriptor(fd: RawFd, target: RawFd) -> Result<(), Errno> {
    // SAFETY: dup2 and fcntl are plain syscalls on descriptor numbers.
    let placed = unsafe {
        if fd == target {
            libc::fcntl(fd, libc::F_SETFD, 0)
        } else {
            libc::dup2(fd, target)
        }
    };
    match placed {
        -1 => Err(Errno::last()),
        _ => Ok(()),
    }
}
