//! The supervisor (feature `tokio`): runs [`Pool`]s of real worker processes inside an async
//! process such as `plexer serve`.
//!
//! Which processes fork here, and how: workers are started with fork **and exec**
//! ([`crate::spawn`], through `std::process::Command`), so the multi-threaded runtime around
//! this module is never copied into a child that goes on running Rust code. Fork without exec
//! happens only in the prefork library's single-threaded parent, never here.
//!
//! - For the pools the plexer serves, each worker gets its own listening socket, bound by the
//!   supervisor under the pool's socket directory before the worker starts (mode 0600: only the
//!   supervisor's user connects; the worker holds the descriptor). A request that
//!   [`PoolHandle::acquire`]s a worker connects to that socket, so the pool knows exactly which
//!   worker is busy with what. `plexer spawn` instead gives every worker the one shared socket
//!   the web server connects to ([`Sockets::Shared`]), as spawn-fcgi does.
//! - Exits are reaped on SIGCHLD with `waitpid(-1)`, and the supervisor is a subreaper
//!   (`PR_SET_CHILD_SUBREAPER`), so a worker's orphaned children are reaped too rather than
//!   left to init. Do not mix this with `tokio::process` in the same process: its reaper and
//!   this one would take each other's exit statuses. A process started for another purpose (the
//!   plexer's slowlog dumper) is started here too, as a [`Helper`], so its exit comes back.
//! - Worker stdout and stderr are read line by line and logged with the pool, the pid and the
//!   stream; a line is never cut below [`MAX_LOG_LINE`] bytes.
//! - Stopping a worker signals its process group, so its own children stop with it. On a shared
//!   socket, where the pool cannot see which worker serves a request, a worker is stopped only
//!   once it holds no connection (see `shared_stop`), so a graceful stop loses no request.

mod helper;
mod output;
mod reaper;
mod shared_stop;

use std::collections::HashMap;
use std::io;
use std::os::fd::OwnedFd;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixListener;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;
use tokio::net::UnixStream;
use tokio::sync::{Notify, oneshot, watch};

use crate::pool::{
    Acquire, Action, Exit, Outcome, Pool, PoolSettings, PoolState, PoolStats, Refusal,
    SettingsError, WaiterId, Worker, WorkerId,
};
use crate::spawn::{WorkerCommand, WorkerScheduling, spawn_worker};

pub use helper::Helper;
pub use output::{MAX_LOG_LINE, printable_line};

/// Where a pool's workers listen.
pub enum Sockets {
    /// One private socket per worker in this directory: the plexer hands each request to a
    /// chosen worker, so the pool knows every worker's state.
    PerWorker(PathBuf),
    /// One socket the web server connects to, shared by every worker (spawn-fcgi's model): the
    /// workers accept in turn, and the pool only keeps them running.
    Shared(Arc<OwnedFd>),
}

/// Owns the reaper and knows which pool each worker pid belongs to.
#[derive(Clone)]
pub struct Supervisor {
    inner: Arc<SupervisorInner>,
}

struct SupervisorInner {
    by_pid: Mutex<HashMap<Pid, Owner>>,
    /// Under which policy workers and helpers start.
    scheduling: WorkerScheduling,
}

/// Whose a child process is, for its exit.
enum Owner {
    /// A worker of this pool.
    Pool(Weak<PoolShared>),
    /// A helper: its exit goes to whoever holds the [`Helper`].
    Helper(oneshot::Sender<Exit>),
}

/// Why the supervisor could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SupervisorError {
    #[error("cannot become the subreaper of the workers' children: {0}")]
    Subreaper(nix::Error),
    #[error("cannot watch SIGCHLD to reap workers: {0}")]
    Signal(io::Error),
    // `error`, not `source`: the messages carry the cause, and a chain would repeat it.
    #[error("bad pool settings for {pool}: {error}")]
    Settings { pool: String, error: SettingsError },
    #[error("cannot create the socket directory {path:?} of pool {pool}: {error}")]
    SocketDir {
        pool: String,
        path: PathBuf,
        error: io::Error,
    },
}

impl Supervisor {
    /// Starts reaping. Must be called inside a tokio runtime with signal and time enabled.
    /// Workers and helpers inherit the spawning thread's scheduling policy.
    pub fn start() -> Result<Self, SupervisorError> {
        Self::start_with(WorkerScheduling::Inherited)
    }

    /// [`start`](Self::start), with workers and helpers started under `scheduling`.
    pub fn start_with(scheduling: WorkerScheduling) -> Result<Self, SupervisorError> {
        nix::sys::prctl::set_child_subreaper(true).map_err(SupervisorError::Subreaper)?;
        let inner = Arc::new(SupervisorInner {
            by_pid: Mutex::new(HashMap::new()),
            scheduling,
        });
        reaper::spawn(Arc::downgrade(&inner)).map_err(SupervisorError::Signal)?;
        Ok(Self { inner })
    }

    /// Starts a pool whose workers run `command` and listen on `sockets`. A per-worker socket
    /// directory is made mode 0700: only plexer connects to those sockets (the workers get
    /// theirs as fd 0), so no tenant needs to look in.
    pub fn add_pool(
        &self,
        name: &str,
        settings: PoolSettings,
        command: WorkerCommand,
        sockets: Sockets,
    ) -> Result<PoolHandle, SupervisorError> {
        if let Sockets::PerWorker(dir) = &sockets {
            private_dir(dir).map_err(|error| SupervisorError::SocketDir {
                pool: name.to_owned(),
                path: dir.clone(),
                error,
            })?;
        }
        let seed = u64::from(std::process::id()) ^ name.len() as u64 ^ now_nanos();
        let pool = Pool::new(settings, Instant::now(), seed).map_err(|error| {
            SupervisorError::Settings {
                pool: name.to_owned(),
                error,
            }
        })?;
        let (stopped_tx, _) = watch::channel(false);
        let shared = Arc::new(PoolShared {
            name: name.to_owned(),
            command,
            sockets,
            supervisor: Arc::downgrade(&self.inner),
            core: Mutex::new(Core {
                pool,
                waiters: HashMap::new(),
                next_waiter: 1,
                sockets: HashMap::new(),
                connections: HashMap::new(),
            }),
            wake: Notify::new(),
            stopped: stopped_tx,
        });
        tokio::spawn(drive(Arc::clone(&shared)));
        Ok(PoolHandle { shared })
    }
}

impl SupervisorInner {
    /// Hands an exit to its pool, with the pid map held (see `PoolShared::spawn`).
    fn dispatch_exit(mut by_pid: MutexGuard<'_, HashMap<Pid, Owner>>, pid: Pid, exit: Exit) {
        let pool = match by_pid.remove(&pid) {
            Some(Owner::Pool(pool)) => pool.upgrade(),
            Some(Owner::Helper(exited)) => {
                // Nobody waiting any more is fine: the helper was given up on.
                let _ = exited.send(exit);
                return;
            }
            None => None,
        };
        let Some(pool) = pool else {
            tracing::debug!(%pid, %exit, "reaped a process of no pool (an orphan we adopted)");
            return;
        };
        pool.on_exit(pid, exit);
        drop(by_pid);
    }
}

/// What a queued request receives.
type Grant = Result<WorkerId, Refusal>;

struct Core {
    pool: Pool,
    waiters: HashMap<WaiterId, oneshot::Sender<Grant>>,
    next_waiter: WaiterId,
    sockets: HashMap<WorkerId, PathBuf>,
    /// A kept-alive connection to an idle worker, for its next request: a new connection per
    /// request costs the plexer a third of its time (socket, connect, accept, close).
    connections: HashMap<WorkerId, UnixStream>,
}

struct PoolShared {
    name: String,
    command: WorkerCommand,
    sockets: Sockets,
    supervisor: Weak<SupervisorInner>,
    core: Mutex<Core>,
    /// Wakes the driver when the pool has new actions.
    wake: Notify,
    stopped: watch::Sender<bool>,
}

/// A pool as the rest of the program uses it; cheap to clone.
#[derive(Clone)]
pub struct PoolHandle {
    shared: Arc<PoolShared>,
}

/// A worker held for one request. Release it with the request's [`Outcome`]; dropping it
/// unreleased counts as [`Outcome::Broken`], since nobody can say the worker is fine.
pub struct Lease {
    shared: Arc<PoolShared>,
    worker: WorkerId,
    pid: Option<Pid>,
    socket: PathBuf,
    released: bool,
}

/// A snapshot of a pool for the status page.
#[derive(Clone, Debug)]
pub struct PoolStatus {
    pub name: String,
    pub state: PoolState,
    pub settings: PoolSettings,
    pub workers: Vec<Worker>,
    pub queue_len: usize,
    pub stats: PoolStats,
}

impl PoolHandle {
    pub fn name(&self) -> &str {
        &self.shared.name
    }

    /// Waits for a worker, for at most the pool's `queue_timeout`.
    pub async fn acquire(&self) -> Result<Lease, Refusal> {
        let (waiter, rx) = {
            let mut core = lock(&self.shared.core);
            let waiter = core.next_waiter;
            core.next_waiter += 1;
            match core.pool.acquire(waiter, Instant::now()) {
                Acquire::Worker(worker) => {
                    drop(core);
                    self.shared.wake.notify_one();
                    return Ok(self.lease(worker));
                }
                Acquire::Refused(refusal) => return Err(refusal),
                Acquire::Queued => {
                    let (tx, rx) = oneshot::channel();
                    core.waiters.insert(waiter, tx);
                    (waiter, rx)
                }
            }
        };
        self.shared.wake.notify_one();
        // If this future is dropped while waiting, the guard takes the request off the queue,
        // and gives back a worker granted in the meantime.
        let mut guard = CancelOnDrop {
            shared: &self.shared,
            waiter,
            rx: Some(rx),
        };
        let grant = guard.rx.as_mut().expect("set just above").await;
        guard.rx = None;
        match grant {
            Ok(Ok(worker)) => Ok(self.lease(worker)),
            Ok(Err(refusal)) => Err(refusal),
            // The driver dropped the sender: the pool stopped.
            Err(_) => Err(Refusal::Draining),
        }
    }

    fn lease(&self, worker: WorkerId) -> Lease {
        let core = lock(&self.shared.core);
        let socket = core.sockets.get(&worker).cloned().unwrap_or_default();
        let pid = core.pool.worker(worker).and_then(|w| w.pid);
        Lease {
            shared: Arc::clone(&self.shared),
            worker,
            pid,
            socket,
            released: false,
        }
    }

    pub fn status(&self) -> PoolStatus {
        let core = lock(&self.shared.core);
        PoolStatus {
            name: self.shared.name.clone(),
            state: core.pool.state().clone(),
            settings: core.pool.settings().clone(),
            workers: core.pool.workers().to_vec(),
            queue_len: core.pool.queue_len(),
            stats: core.pool.stats().clone(),
        }
    }

    /// How many workers the pool has now, in any state (cheaper than [`status`](Self::status),
    /// which copies every worker and the settings: a node's heartbeat asks every pool).
    pub fn worker_count(&self) -> usize {
        lock(&self.shared.core).pool.workers().len()
    }

    /// How many workers failed so far (cheaper than [`status`](Self::status) for one number).
    pub fn failures(&self) -> u64 {
        lock(&self.shared.core).pool.stats().failures
    }

    /// The operator's override after a crash loop.
    pub fn reset(&self) {
        lock(&self.shared.core).pool.reset(Instant::now());
        self.shared.wake.notify_one();
    }

    /// Stops the pool: requests in flight finish within `timeout`, then every worker is gone.
    /// Returns once the last worker exited.
    pub async fn drain(&self, timeout: Duration) {
        let mut stopped = self.shared.stopped.subscribe();
        lock(&self.shared.core).pool.drain(Instant::now(), timeout);
        self.shared.wake.notify_one();
        // The driver flags `stopped` once the pool reached PoolState::Stopped.
        let _ = stopped.wait_for(|stopped| *stopped).await;
    }
}

struct CancelOnDrop<'a> {
    shared: &'a PoolShared,
    waiter: WaiterId,
    /// Taken once the grant was read: a guard that still holds it was dropped while waiting.
    rx: Option<oneshot::Receiver<Grant>>,
}

impl Drop for CancelOnDrop<'_> {
    fn drop(&mut self) {
        let Some(mut rx) = self.rx.take() else {
            return;
        };
        // Closed first, so that a grant sent from now on fails and is handed back by the
        // driver; one sent before is read here and handed back as unused.
        rx.close();
        let mut core = lock(&self.shared.core);
        core.waiters.remove(&self.waiter);
        core.pool.cancel(self.waiter);
        if let Ok(Ok(worker)) = rx.try_recv() {
            core.pool.release(worker, Outcome::Unused, Instant::now());
            drop(core);
            self.shared.wake.notify_one();
        }
    }
}

impl Lease {
    pub fn pid(&self) -> Option<Pid> {
        self.pid
    }

    /// The worker's private socket.
    pub fn socket(&self) -> &Path {
        &self.socket
    }

    pub fn release(mut self, outcome: Outcome) {
        self.finish(outcome);
    }

    /// The connection kept open to this worker by its last request, if it is still open.
    pub fn take_connection(&self) -> Option<UnixStream> {
        let connection = lock(&self.shared.core).connections.remove(&self.worker)?;
        is_open(&connection).then_some(connection)
    }

    /// Releases the worker after a request that went well, keeping `connection` open for the
    /// worker's next request (the request was sent with FCGI_KEEP_CONN).
    pub fn release_keeping(mut self, connection: UnixStream) {
        if is_open(&connection) {
            let mut core = lock(&self.shared.core);
            if core.sockets.contains_key(&self.worker) {
                core.connections.insert(self.worker, connection);
            }
        }
        self.finish(Outcome::Done);
    }

    fn finish(&mut self, outcome: Outcome) {
        if std::mem::replace(&mut self.released, true) {
            return;
        }
        lock(&self.shared.core)
            .pool
            .release(self.worker, outcome, Instant::now());
        self.shared.wake.notify_one();
    }
}

/// Whether the worker still holds its end: an app that closes after each request despite
/// FCGI_KEEP_CONN, or one that exited, has sent its FIN by now.
fn is_open(connection: &UnixStream) -> bool {
    let mut byte = [0u8; 1];
    matches!(connection.try_read(&mut byte), Err(err) if err.kind() == io::ErrorKind::WouldBlock)
}

impl Drop for Lease {
    fn drop(&mut self) {
        self.finish(Outcome::Broken);
    }
}

impl PoolShared {
    fn on_exit(&self, pid: Pid, exit: Exit) {
        let mut core = lock(&self.core);
        let worker = core
            .pool
            .workers()
            .iter()
            .find(|w| w.pid == Some(pid))
            .map(|w| w.id);
        if let Some(worker) = worker {
            core.connections.remove(&worker);
        }
        if let Some(path) = worker.and_then(|w| core.sockets.remove(&w)) {
            let _ = std::fs::remove_file(path);
        }
        tracing::info!(pool = %self.name, %pid, "worker {exit}");
        core.pool.exited(pid, exit, Instant::now());
        drop(core);
        self.wake.notify_one();
    }

    /// Carries out one action; the pool may decide more, which the driver picks up next turn.
    fn execute(self: &Arc<Self>, action: Action) {
        match action {
            Action::Spawn(worker) => self.spawn(worker),
            // On a shared socket the pool cannot know which worker is mid-request, so each is
            // stopped only once it is seen holding no connection (shared_stop.rs).
            Action::Terminate { pid, .. } if matches!(self.sockets, Sockets::Shared(_)) => {
                shared_stop::terminate_when_idle(self.name.clone(), pid);
            }
            Action::Terminate { pid, .. } => signal_group(&self.name, pid, Signal::SIGTERM),
            Action::Kill { pid, .. } => signal_group(&self.name, pid, Signal::SIGKILL),
            Action::Assign { waiter, worker } => {
                let sender = lock(&self.core).waiters.remove(&waiter);
                let delivered = sender.is_some_and(|tx| tx.send(Ok(worker)).is_ok());
                if !delivered {
                    lock(&self.core)
                        .pool
                        .release(worker, Outcome::Unused, Instant::now());
                }
            }
            Action::Expire { waiter, why } => {
                if let Some(tx) = lock(&self.core).waiters.remove(&waiter) {
                    let _ = tx.send(Err(why));
                }
            }
        }
    }

    fn spawn(self: &Arc<Self>, worker: WorkerId) {
        let (listener, path) = match &self.sockets {
            Sockets::PerWorker(dir) => {
                // The directory is the pool's own: the worker's number is name enough, and a
                // unix socket path has 107 bytes at most.
                let path = dir.join(format!("{worker}.sock"));
                (bind_private(&path).map(OwnedFd::from), Some(path))
            }
            Sockets::Shared(fd) => (fd.try_clone(), None),
        };
        // The pid map stays locked from the fork until the pool knows the pid: the reaper takes
        // the same lock before it hands an exit to a pool, so a worker that dies at once is
        // reaped, then looked up, and never lost in between.
        let supervisor = self.supervisor.upgrade();
        let mut by_pid = supervisor.as_ref().map(|s| lock(&s.by_pid));
        let scheduling = supervisor
            .as_ref()
            .map_or_else(Default::default, |s| s.scheduling);
        let started = listener.and_then(|fd| {
            spawn_worker(&self.command, fd, scheduling)
                .map_err(|err| io::Error::other(err.to_string()))
        });
        let now = Instant::now();
        let (pid, stdout, stderr) = match started {
            Ok(spawned) => spawned.into_parts(),
            Err(err) => {
                drop(by_pid);
                if let Some(path) = path {
                    let _ = std::fs::remove_file(path);
                }
                tracing::error!(pool = %self.name, error = %err, "cannot start a worker");
                lock(&self.core)
                    .pool
                    .spawn_failed(worker, err.to_string(), now);
                return;
            }
        };
        if let Some(by_pid) = by_pid.as_mut() {
            by_pid.insert(pid, Owner::Pool(Arc::downgrade(self)));
        }
        let mut core = lock(&self.core);
        let wanted = core.pool.spawned(worker, pid, now);
        if wanted && let Some(path) = &path {
            core.sockets.insert(worker, path.clone());
        }
        drop(core);
        drop(by_pid);
        output::forward(&self.name, pid, "stdout", stdout);
        output::forward(&self.name, pid, "stderr", stderr);
        if wanted {
            tracing::info!(pool = %self.name, %pid, "worker started");
        } else {
            // The pool stopped serving while this spawn was on its way.
            tracing::info!(pool = %self.name, %pid, "worker no longer wanted; stopping it");
            signal_group(&self.name, pid, Signal::SIGTERM);
            if let Some(path) = path {
                let _ = std::fs::remove_file(path);
            }
        }
    }
}

/// Binds a worker's private socket, readable and writable by the supervisor's user only.
fn bind_private(path: &Path) -> io::Result<UnixListener> {
    match std::fs::remove_file(path) {
        Ok(()) => {}
        Err(err) if err.kind() == io::ErrorKind::NotFound => {}
        Err(err) => return Err(err),
    }
    let listener = UnixListener::bind(path)?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))?;
    Ok(listener)
}

fn signal_group(pool: &str, pid: Pid, signal: Signal) {
    // The worker leads its own process group (spawn.rs), so this reaches its children too.
    if let Err(err) = killpg(pid, signal) {
        tracing::debug!(pool, %pid, ?signal, error = %err, "signal not delivered (already gone?)");
    }
}

/// The driver of one pool: carries out its actions and wakes it at its deadlines.
async fn drive(shared: Arc<PoolShared>) {
    loop {
        let (actions, deadline, state) = {
            let mut core = lock(&shared.core);
            let now = Instant::now();
            core.pool.tick(now);
            let actions: Vec<Action> = core.pool.take_actions().collect();
            (
                actions,
                core.pool.next_deadline(now),
                core.pool.state().clone(),
            )
        };
        if !actions.is_empty() {
            for action in actions {
                shared.execute(action);
            }
            continue;
        }
        if state == PoolState::Stopped {
            let _ = shared.stopped.send(true);
            // Whoever still waits learns the pool is gone.
            lock(&shared.core).waiters.clear();
            return;
        }
        let sleep = deadline.map_or(Duration::from_secs(3600), |at| {
            at.saturating_duration_since(Instant::now())
        });
        tokio::select! {
            () = shared.wake.notified() => {}
            () = tokio::time::sleep(sleep) => {}
        }
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while holding the lock leaves plain data behind, still consistent enough to stop.
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn now_nanos() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos().into())
}

/// Creates `dir` mode 0700 (its parents as the umask makes them), or takes it when it is
/// already a directory of that mode; a symlink or anything else in its place is refused, so
/// the sockets never land where another user pointed.
fn private_dir(dir: &Path) -> io::Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    if let Some(parent) = dir.parent() {
        std::fs::create_dir_all(parent)?;
    }
    match std::fs::DirBuilder::new().mode(0o700).create(dir) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
        Err(e) => return Err(e),
    }
    let meta = std::fs::symlink_metadata(dir)?;
    if !meta.is_dir() {
        return Err(io::Error::other(
            "not a directory (a symlink or a file is in its place)",
        ));
    }
    if meta.permissions().mode() & 0o7777 != 0o700 {
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))?;
    }
    Ok(())
}

#[cfg(test)]
mod private_dir_tests {
    use super::*;

    fn mode(path: &Path) -> u32 {
        std::fs::symlink_metadata(path)
            .unwrap()
            .permissions()
            .mode()
            & 0o7777
    }

    #[test]
    fn worker_socket_directories_are_private_and_never_a_symlink() {
        let root = tempfile::tempdir().unwrap();
        let dir = root.path().join("workers/bob.1");
        private_dir(&dir).unwrap();
        assert_eq!(mode(&dir), 0o700);
        // One that exists, too open: made private.
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
        private_dir(&dir).unwrap();
        assert_eq!(mode(&dir), 0o700);
        // A symlink in its place is refused, and what it points to is left alone.
        let elsewhere = root.path().join("elsewhere");
        std::fs::create_dir(&elsewhere).unwrap();
        std::fs::set_permissions(&elsewhere, std::fs::Permissions::from_mode(0o755)).unwrap();
        let link = root.path().join("workers/bob.2");
        std::os::unix::fs::symlink(&elsewhere, &link).unwrap();
        assert!(private_dir(&link).is_err());
        assert_eq!(mode(&elsewhere), 0o755);
    }
}
