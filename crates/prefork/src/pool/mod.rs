//! One pool's decisions, sans-io: how many workers to run, which one gets a request, when one
//! is recycled, stopped, killed or respawned, and when the pool gives up.
//!
//! The caller (plexer's async supervisor, or a test) owns the processes and the clock. It tells
//! the pool what happened ([`Pool::acquire`], [`Pool::release`], [`Pool::spawned`],
//! [`Pool::exited`], [`Pool::tick`]) and carries out the [`Action`]s the pool asks for. Keeping
//! the decisions free of I/O lets tests check php-fpm's known faults deterministically, and
//! lets the driver stay a thin loop.
//!
//! Because the plexer hands every request to a chosen idle worker, the pool knows each worker's
//! state exactly, which php-fpm's shared accept queue cannot. That is what makes these work for
//! any application: recycling after `max_requests` with jitter, killing only the stuck worker
//! on `request_timeout`, a bounded queue with `queue_timeout` and a 503 instead of a hang, and
//! reaping idle workers reliably (the most recently idle worker is chosen first, so the others
//! stay idle long enough to be reaped, unlike kernel round robin: php-src #12798).

mod settings;

use std::collections::VecDeque;
use std::fmt;
use std::time::{Duration, Instant};

use nix::unistd::Pid;

pub use settings::{
    MAX_CHILDREN, MAX_DURATION, MAX_JITTER, MAX_QUEUE, Pm, PoolSettings, SettingsError,
};

/// A worker that exits with status 0 sooner than this after it started counts as failed: an
/// intentional exit (a request limit reached) takes longer, and a command that exits at once
/// must back off rather than respawn in a loop.
pub const MIN_LIFETIME: Duration = Duration::from_secs(1);

/// A worker's identity within its pool, never reused.
pub type WorkerId = u64;
/// A request waiting for a worker, named by the caller.
pub type WaiterId = u64;

/// Where a worker is in its life.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WorkerState {
    /// Asked for with [`Action::Spawn`]; no process yet.
    Starting,
    Idle,
    Busy,
    /// Asked to exit ([`Action::Terminate`]): it has `stop_timeout` to finish, then it is
    /// killed.
    Stopping,
    /// Killed ([`Action::Kill`]), or stopped before it started: waiting for its exit.
    Killed,
}

impl WorkerState {
    /// On its way out, asked or killed.
    pub fn is_leaving(self) -> bool {
        matches!(self, WorkerState::Stopping | WorkerState::Killed)
    }
}

/// One worker as the pool sees it.
#[derive(Clone, Debug)]
pub struct Worker {
    pub id: WorkerId,
    pub pid: Option<Pid>,
    pub state: WorkerState,
    /// When it entered `state`.
    pub since: Instant,
    /// Requests it finished.
    pub served: u64,
    /// It is recycled after this many requests (0: never).
    pub limit: u64,
    pub started: Instant,
}

/// The pool as a whole.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PoolState {
    Running,
    /// Workers failed too often; no worker is started until [`Pool::reset`].
    Failed {
        reason: String,
    },
    /// Finishing in-flight requests before stopping, until `deadline`.
    Draining {
        deadline: Instant,
    },
    /// Every worker exited after a drain.
    Stopped,
}

/// How a worker process ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Exit {
    Code(i32),
    Signal(i32),
}

impl fmt::Display for Exit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Code(code) => write!(f, "exited with status {code}"),
            Self::Signal(signal) => write!(f, "was killed by signal {signal}"),
        }
    }
}

/// How a request the worker served ended, as its caller saw it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    Done,
    /// The worker was handed over but never used (the request went away first): it is idle
    /// again and nothing counts.
    Unused,
    /// The connection failed or the worker broke the protocol: it is not trusted again.
    Broken,
    /// The request passed `request_timeout`: the worker is stuck and is killed.
    TimedOut,
}

/// What [`Pool::acquire`] gave.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Acquire {
    Worker(WorkerId),
    /// The request waits; an [`Action::Assign`] or [`Action::Expire`] follows.
    Queued,
    Refused(Refusal),
}

/// Why a request gets no worker: each becomes a 503.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error("the account's workers keep failing ({0})")]
    Failed(String),
    #[error("the account is draining")]
    Draining,
    #[error("{limit} requests already wait for a worker (max_queue)")]
    QueueFull { limit: usize },
    #[error("no worker freed up within queue_timeout ({timeout:?})")]
    QueueTimeout { timeout: Duration },
}

/// What the pool asks its driver to do.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Action {
    /// Start a worker process; report with [`Pool::spawned`] or [`Pool::spawn_failed`].
    Spawn(WorkerId),
    /// Ask an idle worker to exit (SIGTERM).
    Terminate { id: WorkerId, pid: Pid },
    /// Kill a worker now (SIGKILL): stuck, or past its stop or drain deadline.
    Kill { id: WorkerId, pid: Pid },
    /// A waiting request gets this worker.
    Assign { waiter: WaiterId, worker: WorkerId },
    /// A waiting request waited `queue_timeout`, or the pool stopped serving: answer 503.
    Expire { waiter: WaiterId, why: Refusal },
}

/// Counters for the status page.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PoolStats {
    /// Requests handed a worker.
    pub accepted: u64,
    /// Times a request had to wait because `max_children` were all running.
    pub max_children_reached: u64,
    /// The longest the queue has been.
    pub max_queue: usize,
    pub spawned: u64,
    pub failures: u64,
    pub last_spawn: Option<Instant>,
    pub last_failure: Option<(Instant, String)>,
}

#[derive(Clone, Copy, Debug)]
struct Waiter {
    id: WaiterId,
    since: Instant,
}

/// One pool's state and decisions.
#[derive(Debug)]
pub struct Pool {
    settings: PoolSettings,
    state: PoolState,
    workers: Vec<Worker>,
    waiters: VecDeque<Waiter>,
    actions: VecDeque<Action>,
    stats: PoolStats,
    next_id: WorkerId,
    /// Failures within the crash-loop window, oldest first.
    recent_failures: VecDeque<Instant>,
    backoff: Duration,
    /// No worker starts before this after a failure.
    respawn_at: Option<Instant>,
    rng: u64,
}

impl Pool {
    /// A running pool; `seed` feeds the `max_requests` jitter.
    pub fn new(settings: PoolSettings, now: Instant, seed: u64) -> Result<Self, SettingsError> {
        settings.validate()?;
        let mut pool = Self {
            backoff: settings.backoff_initial,
            settings,
            state: PoolState::Running,
            workers: Vec::new(),
            waiters: VecDeque::new(),
            actions: VecDeque::new(),
            stats: PoolStats::default(),
            next_id: 1,
            recent_failures: VecDeque::new(),
            respawn_at: None,
            rng: seed | 1,
        };
        let start = match pool.settings.pm {
            Pm::Static => pool.settings.max_children,
            Pm::Dynamic { start, .. } => start,
            Pm::Ondemand { .. } => 0,
        };
        for _ in 0..start {
            pool.start_worker(now);
        }
        pool.maintain(now);
        Ok(pool)
    }

    pub fn settings(&self) -> &PoolSettings {
        &self.settings
    }

    pub fn state(&self) -> &PoolState {
        &self.state
    }

    pub fn workers(&self) -> &[Worker] {
        &self.workers
    }

    pub fn worker(&self, id: WorkerId) -> Option<&Worker> {
        self.workers.iter().find(|w| w.id == id)
    }

    pub fn stats(&self) -> &PoolStats {
        &self.stats
    }

    /// Requests waiting for a worker.
    pub fn queue_len(&self) -> usize {
        self.waiters.len()
    }

    /// The actions decided since the last call, in order.
    pub fn take_actions(&mut self) -> impl Iterator<Item = Action> + '_ {
        self.actions.drain(..)
    }

    /// The next time after `now` at which [`Pool::tick`] may have something to do. Timers at
    /// or before `now` are left out: `tick` has seen them, and one it did not act on (an idle
    /// worker past `spare_grace` but within `max_spare`, a backoff of a failed pool) would
    /// otherwise wake the driver again at once, for ever.
    pub fn next_deadline(&self, now: Instant) -> Option<Instant> {
        let settings = &self.settings;
        let queue = self
            .waiters
            .front()
            .map(|w| w.since + settings.queue_timeout);
        let workers = self
            .workers
            .iter()
            .filter_map(|w| match (w.state, settings.pm) {
                (WorkerState::Stopping, _) => Some(w.since + settings.stop_timeout),
                (WorkerState::Idle, Pm::Ondemand { idle_timeout }) => Some(w.since + idle_timeout),
                (WorkerState::Idle, Pm::Dynamic { .. }) => Some(w.since + settings.spare_grace),
                _ => None,
            });
        let drain = match self.state {
            PoolState::Draining { deadline } => Some(deadline),
            _ => None,
        };
        queue
            .into_iter()
            .chain(workers)
            .chain(drain)
            .chain(self.respawn_at)
            .filter(|&at| at > now)
            .min()
    }

    /// A request wants a worker.
    pub fn acquire(&mut self, waiter: WaiterId, now: Instant) -> Acquire {
        match &self.state {
            PoolState::Failed { reason } => {
                return Acquire::Refused(Refusal::Failed(reason.clone()));
            }
            PoolState::Draining { .. } | PoolState::Stopped => {
                return Acquire::Refused(Refusal::Draining);
            }
            PoolState::Running => {}
        }
        if let Some(worker) = self.take_idle_worker(now) {
            self.maintain(now); // a dynamic pool replaces the spare it just gave out
            return Acquire::Worker(worker);
        }
        if self.waiters.len() >= self.settings.max_queue {
            return Acquire::Refused(Refusal::QueueFull {
                limit: self.settings.max_queue,
            });
        }
        if self.live_workers() >= self.settings.max_children {
            self.stats.max_children_reached += 1;
        }
        self.waiters.push_back(Waiter {
            id: waiter,
            since: now,
        });
        self.stats.max_queue = self.stats.max_queue.max(self.waiters.len());
        self.maintain(now);
        Acquire::Queued
    }

    /// A waiting request gave up (its client left). False when it is not waiting any more: an
    /// [`Action::Assign`] for it is on its way and the worker must be released.
    pub fn cancel(&mut self, waiter: WaiterId) -> bool {
        let before = self.waiters.len();
        self.waiters.retain(|w| w.id != waiter);
        self.waiters.len() != before
    }

    /// A request on `worker` ended.
    pub fn release(&mut self, worker: WorkerId, outcome: Outcome, now: Instant) {
        let draining = !matches!(self.state, PoolState::Running);
        let Some(w) = self.workers.iter_mut().find(|w| w.id == worker) else {
            return; // it exited meanwhile
        };
        if w.state != WorkerState::Busy {
            return;
        }
        match outcome {
            Outcome::Done => {
                w.served += 1;
                // A worker that served a request has proven the command works.
                self.backoff = self.settings.backoff_initial;
                if w.limit > 0 && w.served >= w.limit || draining {
                    Self::stop(&mut self.actions, w, now);
                } else {
                    w.state = WorkerState::Idle;
                    w.since = now;
                }
            }
            Outcome::Unused if draining => Self::stop(&mut self.actions, w, now),
            Outcome::Unused => {
                w.state = WorkerState::Idle;
                w.since = now;
            }
            Outcome::Broken | Outcome::TimedOut => Self::kill(&mut self.actions, w, now),
        }
        self.maintain(now);
    }

    /// The driver started the process of worker `id`. Its socket was bound before the spawn, so
    /// it can take a request at once. False when the pool no longer wants that worker (it
    /// stopped serving before the spawn happened): the driver must stop the process.
    pub fn spawned(&mut self, id: WorkerId, pid: Pid, now: Instant) -> bool {
        let wanted = match self.workers.iter_mut().find(|w| w.id == id) {
            Some(w) => {
                w.pid = Some(pid);
                if w.state == WorkerState::Starting {
                    w.state = WorkerState::Idle;
                    w.since = now;
                }
                true
            }
            None => false,
        };
        self.maintain(now);
        wanted
    }

    /// The driver could not start worker `id`: a failure like a crash.
    pub fn spawn_failed(&mut self, id: WorkerId, reason: String, now: Instant) {
        self.workers.retain(|w| w.id != id);
        self.record_failure(format!("could not start: {reason}"), now);
        self.maintain(now);
    }

    /// A worker process ended. Expected after [`Action::Terminate`] or [`Action::Kill`], and
    /// after an intentional exit with status 0 (FastCGI §7, e.g. php-cgi's own request limit)
    /// by an idle worker that lived at least [`MIN_LIFETIME`] or served a request (php-cgi's
    /// default limit of 500 is reached in under a second at a few hundred requests a second);
    /// any other end is a failure that delays the next spawn, so that a command that exits at
    /// once cannot spin.
    pub fn exited(&mut self, pid: Pid, exit: Exit, now: Instant) {
        let Some(index) = self.workers.iter().position(|w| w.pid == Some(pid)) else {
            return;
        };
        let worker = self.workers.swap_remove(index);
        let lived = now.saturating_duration_since(worker.started) >= MIN_LIFETIME;
        let expected = worker.state.is_leaving()
            || (exit == Exit::Code(0)
                && worker.state == WorkerState::Idle
                && (lived || worker.served > 0));
        if !expected {
            let during = if worker.state == WorkerState::Busy {
                " during a request"
            } else {
                ""
            };
            self.record_failure(format!("worker {pid} {exit}{during}"), now);
        }
        self.maintain(now);
    }

    /// Time passed: expire waiters, reap idle workers, escalate stops, respawn after backoff.
    pub fn tick(&mut self, now: Instant) {
        self.maintain(now);
    }

    /// Stops serving: waiting requests get a 503, idle workers stop now, busy ones after their
    /// request or `timeout` after `now`, when they are killed. A `timeout` over
    /// [`MAX_DURATION`] (`Duration::MAX` for "no limit") waits that long.
    pub fn drain(&mut self, now: Instant, timeout: Duration) {
        self.state = if self.workers.is_empty() {
            PoolState::Stopped
        } else {
            PoolState::Draining {
                deadline: now + timeout.min(MAX_DURATION),
            }
        };
        self.maintain(now);
    }

    /// The operator's override (`plexer accounts reload NAME`): forget past failures and start
    /// workers again.
    pub fn reset(&mut self, now: Instant) {
        if let PoolState::Failed { .. } = self.state {
            self.state = PoolState::Running;
        }
        self.recent_failures.clear();
        self.backoff = self.settings.backoff_initial;
        self.respawn_at = None;
        if self.state == PoolState::Running
            && let Pm::Dynamic { start, .. } = self.settings.pm
        {
            let missing = start.saturating_sub(self.live_workers());
            for _ in 0..missing {
                self.start_worker(now);
            }
        }
        self.maintain(now);
    }

    fn live_workers(&self) -> usize {
        self.workers
            .iter()
            .filter(|w| !w.state.is_leaving())
            .count()
    }

    fn count(&self, state: WorkerState) -> usize {
        self.workers.iter().filter(|w| w.state == state).count()
    }

    /// The most recently idle worker, made busy.
    fn take_idle_worker(&mut self, now: Instant) -> Option<WorkerId> {
        let worker = self
            .workers
            .iter_mut()
            .filter(|w| w.state == WorkerState::Idle)
            .max_by_key(|w| w.since)?;
        worker.state = WorkerState::Busy;
        worker.since = now;
        self.stats.accepted += 1;
        Some(worker.id)
    }

    fn start_worker(&mut self, now: Instant) {
        let id = self.next_id;
        self.next_id += 1;
        let limit = match self.settings.max_requests {
            0 => 0,
            max => max.saturating_add(self.jitter()),
        };
        self.workers.push(Worker {
            id,
            pid: None,
            state: WorkerState::Starting,
            since: now,
            served: 0,
            limit,
            started: now,
        });
        self.stats.spawned += 1;
        self.stats.last_spawn = Some(now);
        self.actions.push_back(Action::Spawn(id));
    }

    /// 0..=max_requests_jitter, from a xorshift64 generator: spread, not secrecy, is the point.
    fn jitter(&mut self) -> u64 {
        let span = self.settings.max_requests_jitter;
        if span == 0 {
            return 0;
        }
        self.rng ^= self.rng << 13;
        self.rng ^= self.rng >> 7;
        self.rng ^= self.rng << 17;
        // Saturating: a span of u64::MAX would otherwise wrap to a division by zero.
        self.rng % span.saturating_add(1)
    }

    fn stop(actions: &mut VecDeque<Action>, worker: &mut Worker, now: Instant) {
        worker.since = now;
        worker.state = match worker.pid {
            Some(pid) => {
                actions.push_back(Action::Terminate { id: worker.id, pid });
                WorkerState::Stopping
            }
            None => WorkerState::Killed, // never started: nothing to stop
        };
    }

    fn kill(actions: &mut VecDeque<Action>, worker: &mut Worker, now: Instant) {
        worker.state = WorkerState::Killed;
        worker.since = now;
        if let Some(pid) = worker.pid {
            actions.push_back(Action::Kill { id: worker.id, pid });
        }
    }

    fn record_failure(&mut self, reason: String, now: Instant) {
        self.stats.failures += 1;
        self.stats.last_failure = Some((now, reason.clone()));
        let window = self.settings.crash_loop_window;
        self.recent_failures.push_back(now);
        while self
            .recent_failures
            .front()
            .is_some_and(|&at| now.duration_since(at) > window)
        {
            self.recent_failures.pop_front();
        }
        if self.recent_failures.len() >= self.settings.crash_loop_failures
            && self.state == PoolState::Running
        {
            self.state = PoolState::Failed {
                reason: format!(
                    "{} worker failures within {}s, the last: {reason}; fix the app, then \
                     `plexer accounts reload` to try again",
                    self.recent_failures.len(),
                    window.as_secs()
                ),
            };
            return;
        }
        self.respawn_at = Some(now + self.backoff);
        self.backoff = (self.backoff * 2).min(self.settings.backoff_max);
    }

    /// Brings the pool in line with its settings and the time; every public entry ends here.
    fn maintain(&mut self, now: Instant) {
        self.expire_waiters(now);
        self.escalate_stops(now);
        match self.state {
            PoolState::Running => {
                self.assign_waiters(now);
                self.reap_idle(now);
                self.grow(now);
            }
            PoolState::Failed { .. } | PoolState::Draining { .. } | PoolState::Stopped => {
                self.stop_serving(now);
            }
        }
    }

    fn expire_waiters(&mut self, now: Instant) {
        let timeout = self.settings.queue_timeout;
        let why = match &self.state {
            PoolState::Running => Refusal::QueueTimeout { timeout },
            PoolState::Failed { reason } => Refusal::Failed(reason.clone()),
            PoolState::Draining { .. } | PoolState::Stopped => Refusal::Draining,
        };
        let serving = self.state == PoolState::Running;
        while let Some(waiter) = self.waiters.front() {
            if serving && now.duration_since(waiter.since) < timeout {
                break;
            }
            self.actions.push_back(Action::Expire {
                waiter: waiter.id,
                why: why.clone(),
            });
            self.waiters.pop_front();
        }
    }

    fn escalate_stops(&mut self, now: Instant) {
        let timeout = self.settings.stop_timeout;
        let drain_over = matches!(self.state, PoolState::Draining { deadline } if now >= deadline);
        for w in &mut self.workers {
            let overdue = w.state.is_leaving() && now.duration_since(w.since) >= timeout;
            // At the drain's deadline every worker still there goes: busy ones, and stopping
            // ones that a graceful stop (a shared socket's) would otherwise wait for.
            let cut_off = drain_over
                && matches!(
                    w.state,
                    WorkerState::Busy | WorkerState::Stopping | WorkerState::Killed
                );
            if (overdue || cut_off) && w.state != WorkerState::Killed {
                Self::kill(&mut self.actions, w, now);
            }
        }
    }

    fn assign_waiters(&mut self, now: Instant) {
        while !self.waiters.is_empty() {
            let Some(worker) = self.take_idle_worker(now) else {
                break;
            };
            let waiter = self.waiters.pop_front().expect("checked non-empty");
            self.actions.push_back(Action::Assign {
                waiter: waiter.id,
                worker,
            });
        }
    }

    /// Stops idle workers the mode no longer wants: ondemand after `idle_timeout`, dynamic
    /// above `max_spare` after `spare_grace` (longest idle first).
    fn reap_idle(&mut self, now: Instant) {
        let (grace, keep) = match self.settings.pm {
            Pm::Static => return,
            Pm::Ondemand { idle_timeout } => (idle_timeout, 0),
            Pm::Dynamic { max_spare, .. } => (self.settings.spare_grace, max_spare),
        };
        let mut excess = self.count(WorkerState::Idle).saturating_sub(keep);
        if excess == 0 {
            return;
        }
        let mut idle: Vec<&mut Worker> = self
            .workers
            .iter_mut()
            .filter(|w| w.state == WorkerState::Idle)
            .collect();
        idle.sort_by_key(|w| w.since);
        for w in idle {
            if excess == 0 || now.duration_since(w.since) < grace {
                break;
            }
            Self::stop(&mut self.actions, w, now);
            excess -= 1;
        }
    }

    /// Starts as many workers as the mode and the waiting requests need, all at once, within
    /// `max_children` and after any respawn backoff.
    fn grow(&mut self, now: Instant) {
        if self.respawn_at.is_some_and(|at| now < at) {
            return;
        }
        self.respawn_at = None;
        let live = self.live_workers();
        let ready = self.count(WorkerState::Idle) + self.count(WorkerState::Starting);
        let waiting = self.waiters.len();
        let wanted = match self.settings.pm {
            Pm::Static => self.settings.max_children.saturating_sub(live),
            Pm::Dynamic { min_spare, .. } => (waiting + min_spare).saturating_sub(ready),
            Pm::Ondemand { .. } => waiting.saturating_sub(ready),
        };
        let room = self.settings.max_children.saturating_sub(live);
        for _ in 0..wanted.min(room) {
            self.start_worker(now);
        }
    }

    fn stop_serving(&mut self, now: Instant) {
        for w in &mut self.workers {
            if w.state == WorkerState::Idle || w.state == WorkerState::Starting {
                Self::stop(&mut self.actions, w, now);
            }
        }
        // Workers asked for but never started have nothing to wait for.
        self.workers
            .retain(|w| !(w.state.is_leaving() && w.pid.is_none()));
        if matches!(self.state, PoolState::Draining { .. }) && self.workers.is_empty() {
            self.state = PoolState::Stopped;
        }
    }
}

#[cfg(test)]
mod tests;
