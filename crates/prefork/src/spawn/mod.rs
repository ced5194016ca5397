//! Starting one worker process (fork, then exec) the way FastCGI applications expect.
//!
//! FastCGI §2.2: the application starts with descriptor 0 a listening socket
//! (`FCGI_LISTENSOCK_FILENO`). spawn-fcgi and php-fpm add the rest of what an operator expects,
//! and so does this module: stdout and stderr captured (pipes the pool logs), every other
//! descriptor closed (a worker never inherits what it was not meant to have, least of all a
//! database connection of the supervisor), privileges dropped to the pool's user and group with
//! its supplementary groups, chroot, chdir, rlimits, a clean environment, its own process group
//! (so a stop reaches the worker's own children), and `PR_SET_PDEATHSIG` so that a worker dies
//! with its supervisor, even when the supervisor is killed with SIGKILL.
//!
//! The child is started by [`vfork`] (`clone(CLONE_VM | CLONE_VFORK)`, no copy of plexer's page
//! tables) and runs the steps of [`ChildSetup::apply`] between clone and exec. The process that
//! clones here may run threads (plexer's async runtime), and the child shares its memory, so
//! the steps may only make async-signal-safe calls: everything they need (C strings, ids,
//! limits, argv and the environment) is prepared in the parent, and they allocate nothing, take
//! no lock and log nothing. The order matters and follows php-fpm's and std's: limits, chroot,
//! chdir, then groups, gid and uid last, since after `setuid` the worker may no longer be
//! allowed the others.

use std::ffi::{CString, OsString};
use std::io::Write;
use std::os::fd::OwnedFd;
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::os::unix::fs::PermissionsExt;
use std::panic::AssertUnwindSafe;
use std::path::{Path, PathBuf};
use std::process::{ChildStderr, ChildStdout};

use nix::errno::Errno;
use nix::fcntl::OFlag;
use nix::libc;
use nix::sys::prctl;
use nix::sys::resource::{Resource, rlim_t, setrlimit};
use nix::sys::signal::{SigSet, SigmaskHow, Signal, sigprocmask};
use nix::unistd::pipe2;
use nix::unistd::{
    Gid, Group, Pid, Uid, User, chdir, chroot, getppid, setgid, setgroups, setsid, setuid,
};

/// Who a worker runs as.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Identity {
    pub uid: Uid,
    pub gid: Gid,
    /// Supplementary groups, set with `setgroups` (std's `Command::uid` would drop them all).
    pub groups: Vec<Gid>,
}

impl Identity {
    /// Looks up `user` (a name or a number), its primary group unless `group` overrides it, and
    /// the supplementary groups the user belongs to, as `initgroups` would.
    pub fn resolve(user: &str, group: Option<&str>) -> Result<Self, SpawnError> {
        let unknown_user = || SpawnError::UnknownUser(user.to_owned());
        let (uid, name, primary) = match user.parse::<u32>() {
            Ok(id) => {
                let found = User::from_uid(Uid::from_raw(id)).map_err(|_| unknown_user())?;
                let name = found.as_ref().map(|u| u.name.clone());
                (Uid::from_raw(id), name, found.map(|u| u.gid))
            }
            Err(_) => {
                let found = User::from_name(user)
                    .map_err(|_| unknown_user())?
                    .ok_or_else(unknown_user)?;
                (found.uid, Some(found.name), Some(found.gid))
            }
        };
        let gid = match group {
            Some(group) => resolve_group(group)?,
            None => primary.ok_or_else(|| SpawnError::NoGroup(user.to_owned()))?,
        };
        let mut groups = match name {
            Some(name) => {
                let cname = CString::new(name).map_err(|_| unknown_user())?;
                nix::unistd::getgrouplist(&cname, gid).map_err(|_| unknown_user())?
            }
            None => vec![gid],
        };
        groups.sort_unstable_by_key(|g| g.as_raw());
        groups.dedup();
        Ok(Self { uid, gid, groups })
    }
}

/// A user's id, by name or number.
pub fn resolve_user(user: &str) -> Result<Uid, SpawnError> {
    if let Ok(id) = user.parse::<u32>() {
        return Ok(Uid::from_raw(id));
    }
    User::from_name(user)
        .ok()
        .flatten()
        .map(|found| found.uid)
        .ok_or_else(|| SpawnError::UnknownUser(user.to_owned()))
}

/// A group's id, by name or number.
pub fn resolve_group(group: &str) -> Result<Gid, SpawnError> {
    let unknown = || SpawnError::UnknownGroup(group.to_owned());
    if let Ok(id) = group.parse::<u32>() {
        return Ok(Gid::from_raw(id));
    }
    Ok(Group::from_name(group)
        .map_err(|_| unknown())?
        .ok_or_else(unknown)?
        .gid)
}

/// Everything needed to start one worker of a pool.
#[derive(Clone, Debug, Default)]
pub struct WorkerCommand {
    pub program: PathBuf,
    pub args: Vec<OsString>,
    /// Start from an empty environment (php-fpm's `clear_env`, its default too).
    pub clear_env: bool,
    pub env: Vec<(OsString, OsString)>,
    pub identity: Option<Identity>,
    pub chroot: Option<PathBuf>,
    pub chdir: Option<PathBuf>,
    pub rlimits: Vec<(Resource, rlim_t)>,
}

/// Under which scheduling policy a worker starts.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum WorkerScheduling {
    /// The spawning thread's, as fork and exec pass it on: the policy plexer was started with
    /// (systemd's `CPUSchedulingPolicy=`, `chrt`) is the whole service's.
    #[default]
    Inherited,
    /// `SCHED_OTHER`, the kernel's normal policy, whatever the spawning thread runs under:
    /// plexer's relaying threads may run under `SCHED_BATCH` (`scheduling: batch`), which is
    /// theirs and not their workers'.
    Normal,
}

/// A started worker: its pid and the pipes of its stdout and stderr. The caller reaps the pid
/// with `waitpid` (the supervisor is its children's subreaper).
#[derive(Debug)]
pub struct SpawnedWorker {
    pub pid: Pid,
    pub stdout: ChildStdout,
    pub stderr: ChildStderr,
}

impl SpawnedWorker {
    pub fn into_parts(self) -> (Pid, ChildStdout, ChildStderr) {
        (self.pid, self.stdout, self.stderr)
    }
}

/// Why a worker could not be started.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SpawnError {
    #[error("user {0:?} does not exist: create it or fix `user:` in the pool")]
    UnknownUser(String),
    #[error("group {0:?} does not exist: create it or fix `group:` in the pool")]
    UnknownGroup(String),
    #[error("user id {0} has no entry to take a primary group from: set `group:` in the pool")]
    NoGroup(String),
    #[error(
        "the pool sets user/group but plexer runs as uid {0}: only root can switch users; \
         run plexer as root or drop `user:`/`group:`"
    )]
    NotRoot(u32),
    #[error("{what} {path:?} contains a NUL byte")]
    NulInPath { what: &'static str, path: PathBuf },
    #[error("{what} {text:?} contains a NUL byte")]
    Nul { what: &'static str, text: String },
    // `error`, not `source`: the message carries the cause, and a chain would repeat it.
    #[error("cannot start {program:?}: {error}")]
    Exec {
        program: PathBuf,
        error: std::io::Error,
    },
}

/// systemd's variables (sd_listen_fds(3), sd_notify(3)) address the supervisor. A worker that
/// inherited them could take a descriptor 3 it does not have, or notify systemd in the
/// supervisor's name; the pool's own `env` may still set them on purpose.
pub(crate) const SUPERVISOR_ONLY_ENV: [&str; 6] = [
    "LISTEN_PID",
    "LISTEN_FDS",
    "LISTEN_FDNAMES",
    "NOTIFY_SOCKET",
    "WATCHDOG_PID",
    "WATCHDOG_USEC",
];

/// Starts `command` with `listener` as its descriptor 0. The listener must be a blocking
/// socket: `O_NONBLOCK` lives on the open file description the worker shares, and a C FastCGI
/// app that finds its accept() returning EAGAIN spins or dies.
pub fn spawn_worker(
    command: &WorkerCommand,
    listener: OwnedFd,
    scheduling: WorkerScheduling,
) -> Result<SpawnedWorker, SpawnError> {
    let exec_failed = |error: std::io::Error| SpawnError::Exec {
        program: command.program.clone(),
        error,
    };
    let setup = ChildSetup::prepare(command, scheduling)?;
    let program = find_program(command).map_err(exec_failed)?;
    let args = std::iter::once(command.program.as_os_str())
        .chain(command.args.iter().map(OsString::as_os_str))
        .map(|arg| c_string("argument", arg.as_bytes()))
        .collect::<Result<Vec<_>, _>>()?;
    let env = environment(command)?;
    let (out_read, out_write) = pipe2(OFlag::O_CLOEXEC).map_err(|e| exec_failed(e.into()))?;
    let (err_read, err_write) = pipe2(OFlag::O_CLOEXEC).map_err(|e| exec_failed(e.into()))?;
    let launch = vfork::Launch::new(
        program,
        args,
        env,
        setup,
        [&listener, &out_write, &err_write],
    );
    let pid = match vfork::clone_and_exec(&launch) {
        Ok(pid) => Pid::from_raw(pid),
        Err((pid, errno)) => {
            if pid > 0 {
                let _ = nix::sys::wait::waitpid(Pid::from_raw(pid), None);
            }
            return Err(exec_failed(errno.into()));
        }
    };
    Ok(SpawnedWorker {
        pid,
        stdout: ChildStdout::from(out_read),
        stderr: ChildStderr::from(err_read),
    })
}

/// The program to exec: a path as written, or a bare name looked up in `PATH` (the pool's own
/// `PATH` when its `env` sets one, else plexer's), as a shell or std's `Command` would.
fn find_program(command: &WorkerCommand) -> std::io::Result<CString> {
    let program = command.program.as_os_str();
    let to_c = |bytes: &[u8]| {
        CString::new(bytes).map_err(|_| std::io::Error::from(std::io::ErrorKind::InvalidInput))
    };
    if program.as_bytes().contains(&b'/') {
        return to_c(program.as_bytes());
    }
    let path = command
        .env
        .iter()
        .find(|(name, _)| name == "PATH")
        .map(|(_, value)| value.clone())
        .or_else(|| std::env::var_os("PATH"))
        .unwrap_or_else(|| "/usr/local/bin:/usr/bin:/bin".into());
    for dir in std::env::split_paths(&path) {
        let candidate = dir.join(program);
        let executable = std::fs::metadata(&candidate)
            .is_ok_and(|meta| meta.is_file() && meta.permissions().mode() & 0o111 != 0);
        if executable {
            return to_c(candidate.as_os_str().as_bytes());
        }
    }
    Err(std::io::ErrorKind::NotFound.into())
}

/// The worker's environment: plexer's (unless `clear_env`) without the supervisor's own
/// variables, then the pool's `env` over it.
fn environment(command: &WorkerCommand) -> Result<Vec<CString>, SpawnError> {
    let mut vars: Vec<(OsString, OsString)> = match command.clear_env {
        true => Vec::new(),
        false => std::env::vars_os()
            .filter(|(name, _)| !SUPERVISOR_ONLY_ENV.iter().any(|n| name == n))
            .collect(),
    };
    for (name, value) in &command.env {
        vars.retain(|(existing, _)| existing != name);
        vars.push((name.clone(), value.clone()));
    }
    vars.into_iter()
        .map(|(name, value)| {
            let mut pair = name.into_vec();
            pair.push(b'=');
            pair.extend(value.into_vec());
            c_string("environment variable", &pair)
        })
        .collect()
}

fn c_string(what: &'static str, bytes: &[u8]) -> Result<CString, SpawnError> {
    CString::new(bytes).map_err(|_| SpawnError::Nul {
        what,
        text: String::from_utf8_lossy(bytes).into_owned(),
    })
}

/// Forks without exec: the child runs `child` and exits with what it returns, or with 101
/// (Rust's status for a panic) if it panics.
///
/// This is how [`crate::prefork`] starts workers that share a preloaded application. It is
/// sound only in a single-threaded process, since the child gets a copy of this thread alone
/// and any lock another thread held stays locked forever; so it checks `/proc/self/task` first
/// and refuses otherwise. The caller runs the fork-safety audit before, for the descriptors.
pub fn fork_without_exec(child: impl FnOnce() -> i32) -> Result<Pid, ForkError> {
    crate::audit::check_single_threaded(Path::new("/proc/self/task"))
        .map_err(ForkError::Threaded)?;
    // SAFETY: the process has one thread (checked just above, and nothing in between starts
    // one), so the child's copy of the address space has no lock held by a thread that no
    // longer exists, and it may run ordinary Rust code, allocation included.
    match unsafe { nix::unistd::fork() }.map_err(ForkError::Fork)? {
        nix::unistd::ForkResult::Parent { child } => Ok(child),
        nix::unistd::ForkResult::Child => {
            // Every frame below this one is the parent's: a panic unwinding into them would
            // run the parent's guards (temporary directories, pidfiles, sockets) in the child.
            let code = std::panic::catch_unwind(AssertUnwindSafe(child)).unwrap_or(101);
            // Rust's stdout is buffered (stderr is not), and _exit flushes nothing.
            let _ = std::io::stdout().flush();
            // SAFETY: _exit ends the process at once, skipping the parent's atexit handlers,
            // which belong to the parent as much as its destructors do.
            unsafe { libc::_exit(code) }
        }
    }
}

/// Why [`fork_without_exec`] did not fork.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ForkError {
    #[error(transparent)]
    Threaded(crate::audit::ForkRefused),
    #[error("fork failed: {0}")]
    Fork(nix::Error),
}

mod vfork;

/// What the child does between clone and exec, prepared in the parent.
struct ChildSetup {
    parent: Pid,
    rlimits: Vec<(Resource, rlim_t)>,
    chroot: Option<CString>,
    chdir: Option<CString>,
    identity: Option<Identity>,
    /// [`WorkerScheduling::Normal`]: the worker puts itself under SCHED_OTHER before exec.
    scheduling: WorkerScheduling,
}

impl ChildSetup {
    fn prepare(command: &WorkerCommand, scheduling: WorkerScheduling) -> Result<Self, SpawnError> {
        let c_path = |what, path: &Path| {
            CString::new(path.as_os_str().as_bytes()).map_err(|_| SpawnError::NulInPath {
                what,
                path: path.to_owned(),
            })
        };
        let identity = match &command.identity {
            // Running as the target user already: nothing to switch (and no right to).
            Some(id) if id.uid == Uid::effective() && id.gid == Gid::effective() => None,
            Some(_) if !Uid::effective().is_root() => {
                return Err(SpawnError::NotRoot(Uid::effective().as_raw()));
            }
            other => other.clone(),
        };
        // Inside a chroot the working directory must be re-entered; `/` when none was given.
        let chdir = match (&command.chroot, &command.chdir) {
            (_, Some(dir)) => Some(c_path("chdir", dir)?),
            (Some(_), None) => Some(CString::from(c"/")),
            (None, None) => None,
        };
        Ok(Self {
            parent: nix::unistd::getpid(),
            rlimits: command.rlimits.clone(),
            chroot: command
                .chroot
                .as_deref()
                .map(|dir| c_path("chroot", dir))
                .transpose()?,
            chdir,
            identity,
            scheduling,
        })
    }

    /// Runs in the child. Async-signal-safe calls only; see the SAFETY comment at the call.
    fn apply(&self) -> std::io::Result<()> {
        // The worker leads a session (and so a process group, which stopping it signals) of
        // its own: whatever it forks stays in the session even when it moves to a process
        // group of its own, as flup's prefork children do, so the pool audit still finds it.
        // (Command::process_group would run first, and setsid refuses a group leader.)
        setsid()?;
        // Die with the supervisor. If it died between fork and here, the signal will never
        // come, so check the parent is still the one that forked us.
        prctl::set_pdeathsig(Signal::SIGKILL)?;
        if getppid() != self.parent {
            // SAFETY: _exit is async-signal-safe and ends the child without running anything
            // of the parent's (no atexit handlers, no destructors).
            unsafe { libc::_exit(1) };
        }
        // A supervisor that blocks signals for its own handling must not pass that mask on.
        sigprocmask(SigmaskHow::SIG_SETMASK, Some(&SigSet::empty()), None)?;
        if self.scheduling == WorkerScheduling::Normal {
            normal_policy()?;
        }
        for &(resource, limit) in &self.rlimits {
            setrlimit(resource, limit, limit)?;
        }
        if let Some(dir) = &self.chroot {
            chroot(dir.as_c_str())?;
        }
        if let Some(dir) = &self.chdir {
            chdir(dir.as_c_str())?;
        }
        if let Some(id) = &self.identity {
            setgroups(&id.groups)?;
            setgid(id.gid)?;
            setuid(id.uid)?;
        }
        close_other_descriptors_at_exec()
    }
}

/// Puts the calling thread under SCHED_OTHER. From SCHED_BATCH that needs no privilege, and
/// the nice value is kept. Async-signal-safe: one syscall, `param` on the caller's stack.
pub fn normal_policy() -> std::io::Result<()> {
    let param = libc::sched_param { sched_priority: 0 };
    // SAFETY: a plain syscall on the calling thread; it only reads `param`.
    match unsafe { libc::sched_setscheduler(0, libc::SCHED_OTHER, &param) } {
        0 => Ok(()),
        _ => Err(std::io::Error::last_os_error()),
    }
}

/// Makes `command`'s child put itself under SCHED_OTHER before exec, as a worker does with
/// [`WorkerScheduling::Normal`].
pub(crate) fn start_under_normal_policy(command: &mut std::process::Command) {
    use std::os::unix::process::CommandExt;
    // SAFETY: the hook runs in the forked child before exec and makes one syscall, which
    // allocates nothing and takes no lock.
    unsafe { command.pre_exec(normal_policy) };
}

/// Marks every descriptor from 3 up close-on-exec, so the worker starts with 0, 1 and 2 only.
/// Marking rather than closing keeps std's own exec-error pipe working until exec.
fn close_other_descriptors_at_exec() -> std::io::Result<()> {
    // SAFETY: close_range(2) is a plain syscall; it touches only the descriptor table.
    let done = unsafe {
        libc::syscall(
            libc::SYS_close_range,
            3 as libc::c_uint,
            libc::c_uint::MAX,
            libc::CLOSE_RANGE_CLOEXEC,
        )
    };
    if done == 0 {
        return Ok(());
    }
    // Kernels before 5.11 lack CLOSE_RANGE_CLOEXEC: mark each descriptor up to the limit.
    let limit = nix::sys::resource::getrlimit(Resource::RLIMIT_NOFILE)
        .map(|(soft, _)| soft.min(1 << 20))
        .unwrap_or(1024) as libc::c_int;
    for fd in 3..limit {
        // SAFETY: fcntl(F_SETFD) on a descriptor number is async-signal-safe; a number that is
        // not open fails with EBADF, which is ignored.
        let result = unsafe { libc::fcntl(fd, libc::F_SETFD, libc::FD_CLOEXEC) };
        if result == -1 && Errno::last() != Errno::EBADF {
            return Err(Errno::last().into());
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;
    use std::os::unix::net::UnixListener;

    fn listener(dir: &Path) -> OwnedFd {
        OwnedFd::from(UnixListener::bind(dir.join("w.sock")).unwrap())
    }

    fn run(command: WorkerCommand) -> (String, String) {
        let dir = tempfile::tempdir().unwrap();
        let worker =
            spawn_worker(&command, listener(dir.path()), WorkerScheduling::Inherited).unwrap();
        let (pid, mut stdout, mut stderr) = worker.into_parts();
        let mut out = String::new();
        let mut err = String::new();
        stdout.read_to_string(&mut out).unwrap();
        stderr.read_to_string(&mut err).unwrap();
        nix::sys::wait::waitpid(pid, None).unwrap();
        (out, err)
    }

    fn sh(script: &str) -> WorkerCommand {
        WorkerCommand {
            program: "/bin/sh".into(),
            args: vec!["-c".into(), script.into()],
            ..WorkerCommand::default()
        }
    }

    /// The policy of a worker started as `scheduling` says from a thread under SCHED_BATCH
    /// (field 41 of the stat of `cut`, which the worker's shell execs last).
    fn worker_policy_from_a_batch_thread(scheduling: WorkerScheduling) -> String {
        std::thread::spawn(move || {
            let param = libc::sched_param { sched_priority: 0 };
            // SAFETY: a plain syscall on this test's own thread; batch needs no privilege.
            assert_eq!(
                unsafe { libc::sched_setscheduler(0, libc::SCHED_BATCH, &param) },
                0
            );
            let dir = tempfile::tempdir().unwrap();
            let command = sh("exec cut -d' ' -f41 /proc/self/stat");
            let worker = spawn_worker(&command, listener(dir.path()), scheduling).unwrap();
            let (pid, mut stdout, _) = worker.into_parts();
            let mut out = String::new();
            stdout.read_to_string(&mut out).unwrap();
            nix::sys::wait::waitpid(pid, None).unwrap();
            out.trim().to_owned()
        })
        .join()
        .unwrap()
    }

    #[test]
    fn a_worker_starts_under_the_normal_policy_when_asked_and_inherits_otherwise() {
        assert_eq!(
            worker_policy_from_a_batch_thread(WorkerScheduling::Normal),
            libc::SCHED_OTHER.to_string(),
            "scheduling: batch is plexer's relaying threads', not their workers'"
        );
        assert_eq!(
            worker_policy_from_a_batch_thread(WorkerScheduling::Inherited),
            libc::SCHED_BATCH.to_string(),
            "a policy plexer was started with (chrt -b) is the whole service's"
        );
    }

    #[test]
    fn the_worker_gets_the_listener_on_fd0_and_nothing_above_2() {
        // A descriptor the parent holds without CLOEXEC must still not reach the worker.
        let leaked =
            nix::fcntl::open("/dev/null", OFlag::O_RDONLY, nix::sys::stat::Mode::empty()).unwrap();
        let (out, _) = run(sh("ls /proc/self/fd; readlink /proc/self/fd/0"));
        drop(leaked);
        let fds: Vec<&str> = out
            .lines()
            .take_while(|l| l.parse::<u32>().is_ok())
            .collect();
        // `ls` itself opens the directory it lists, as fd 3.
        assert_eq!(fds, ["0", "1", "2", "3"], "{out}");
        assert!(out.contains("socket:["), "fd 0 is a socket: {out}");
    }

    #[test]
    fn clear_env_keeps_only_the_pool_env() {
        let mut command = sh("env");
        command.clear_env = true;
        command.env = vec![("APP_ACCOUNT".into(), "bob".into())];
        let (out, _) = run(command);
        let vars: Vec<&str> = out.lines().filter(|l| !l.starts_with("PWD=")).collect();
        assert_eq!(vars, ["APP_ACCOUNT=bob"]);
    }

    #[test]
    fn chdir_rlimits_and_session_apply() {
        let dir = tempfile::tempdir().unwrap();
        let mut command = sh("pwd; ulimit -n; ps -o pgid= -p $$; echo $$; ps -o sid= -p $$");
        command.chdir = Some(dir.path().to_owned());
        command.rlimits = vec![(Resource::RLIMIT_NOFILE, 123)];
        let (out, _) = run(command);
        let lines: Vec<&str> = out.lines().map(str::trim).collect();
        assert_eq!(
            lines[0],
            dir.path().canonicalize().unwrap().to_str().unwrap()
        );
        assert_eq!(lines[1], "123");
        assert_eq!(lines[2], lines[3], "the worker leads its own process group");
        assert_eq!(lines[4], lines[3], "and its own session");
    }

    #[test]
    fn a_missing_program_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let command = WorkerCommand {
            program: "/nonexistent/app.fcgi".into(),
            ..WorkerCommand::default()
        };
        let err =
            spawn_worker(&command, listener(dir.path()), WorkerScheduling::Inherited).unwrap_err();
        assert!(
            err.to_string()
                .starts_with("cannot start \"/nonexistent/app.fcgi\": No such file"),
            "{err}"
        );
    }

    #[test]
    fn identities_resolve_with_supplementary_groups() {
        let root = Identity::resolve("root", None).unwrap();
        assert_eq!((root.uid.as_raw(), root.gid.as_raw()), (0, 0));
        assert!(root.groups.contains(&Gid::from_raw(0)));
        let by_number = Identity::resolve("0", Some("0")).unwrap();
        assert_eq!(by_number.uid, root.uid);
        assert!(matches!(
            Identity::resolve("no-such-user-here", None),
            Err(SpawnError::UnknownUser(_))
        ));
        assert!(matches!(
            Identity::resolve("root", Some("no-such-group-here")),
            Err(SpawnError::UnknownGroup(_))
        ));
    }

    #[test]
    fn workers_run_as_the_pool_user_when_the_supervisor_is_root() {
        if !Uid::effective().is_root() {
            return; // only root can switch users; the CI machine runs as root
        }
        let mut command = sh("id -u; id -g; id -G");
        command.identity = Some(Identity::resolve("nobody", Some("nogroup")).unwrap());
        let (out, _) = run(command);
        let nobody = User::from_name("nobody").unwrap().unwrap();
        let nogroup = Group::from_name("nogroup").unwrap().unwrap();
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(lines[0], nobody.uid.to_string());
        assert_eq!(lines[1], nogroup.gid.to_string());
        assert!(
            !lines[2].split(' ').any(|g| g == "0"),
            "root's groups dropped: {out}"
        );
    }
}
