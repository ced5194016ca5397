//! A pool's settings, with php-fpm's meanings (research/php-fpm.md §1.1, §1.3) and its faults
//! left out.

use std::time::Duration;

/// The longest any of a pool's durations may be (the configuration's own limit too): it keeps
/// `Instant + duration` far from overflowing, which would panic in the pool's driver.
pub const MAX_DURATION: Duration = Duration::from_secs(365 * 86_400);

/// How many workers a pool keeps (php-fpm's `pm`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Pm {
    /// Always `max_children` workers.
    Static,
    /// Between `min_spare` and `max_spare` idle workers, `start` at first. Unlike php-fpm, which
    /// adds at most `min_spare - idle` workers a second (40 parallel 6-second requests took
    /// 23.9 s there), the pool starts at once as many workers as waiting requests need.
    Dynamic {
        start: usize,
        min_spare: usize,
        max_spare: usize,
    },
    /// No worker until a request comes; a worker idle for `idle_timeout` is stopped, down to
    /// zero.
    Ondemand { idle_timeout: Duration },
}

/// Everything that decides a pool's behaviour.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PoolSettings {
    pub pm: Pm,
    /// The most workers at once (php-fpm's `pm.max_children`).
    pub max_children: usize,
    /// Recycle a worker after this many requests; 0 never does.
    pub max_requests: u64,
    /// Each worker's limit is `max_requests` plus a random 0..=jitter, so that workers started
    /// together do not all restart together (php-fpm bug 68824).
    pub max_requests_jitter: u64,
    /// How long a request may wait for a free worker before it gets a 503.
    pub queue_timeout: Duration,
    /// The most requests that may wait at once; more get a 503 at once.
    pub max_queue: usize,
    /// First respawn delay after a worker failed; doubles per failure up to `backoff_max`.
    pub backoff_initial: Duration,
    pub backoff_max: Duration,
    /// This many failures within `crash_loop_window` mark the pool failed until an operator
    /// resets it (`plexer accounts reload NAME`).
    pub crash_loop_failures: usize,
    pub crash_loop_window: Duration,
    /// How long a stopped worker gets to exit after SIGTERM before SIGKILL.
    pub stop_timeout: Duration,
    /// A dynamic pool stops a spare worker only after it was idle this long, so a burst that
    /// comes in waves does not restart workers between waves.
    pub spare_grace: Duration,
}

impl Default for PoolSettings {
    fn default() -> Self {
        Self {
            pm: Pm::Ondemand {
                idle_timeout: Duration::from_secs(10),
            },
            max_children: 4,
            max_requests: 500,
            max_requests_jitter: 50,
            queue_timeout: Duration::from_secs(5),
            max_queue: 1024,
            backoff_initial: Duration::from_millis(100),
            backoff_max: Duration::from_secs(30),
            crash_loop_failures: 10,
            crash_loop_window: Duration::from_secs(60),
            stop_timeout: Duration::from_secs(10),
            spare_grace: Duration::from_secs(1),
        }
    }
}

/// A setting that cannot work.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SettingsError {
    #[error("max_children is 0: a pool needs at least one worker")]
    NoChildren,
    #[error("pm dynamic needs min_spare <= start <= max_spare <= max_children, got {0}")]
    DynamicRange(String),
    #[error("max_queue is 0: a request that finds every worker busy could never wait")]
    NoQueue,
    #[error(
        "{key} is {value:?}, over the {} days any pool duration may be; give a shorter one",
        MAX_DURATION.as_secs() / 86_400
    )]
    TooLong { key: &'static str, value: Duration },
    #[error("{key} is {value}, over the {limit} it may be; give a smaller one")]
    TooMany {
        key: &'static str,
        value: u64,
        limit: u64,
    },
}

/// The most workers one pool may have: far beyond what one machine runs.
pub const MAX_CHILDREN: usize = 65_536;
/// The most requests that may wait for a worker of one pool.
pub const MAX_QUEUE: usize = 1 << 20;
/// The most `max_requests` may be moved by its jitter.
pub const MAX_JITTER: u64 = u32::MAX as u64;

impl PoolSettings {
    /// Checks the settings together; every message says which key to change.
    pub fn validate(&self) -> Result<(), SettingsError> {
        if self.max_children == 0 {
            return Err(SettingsError::NoChildren);
        }
        if self.max_queue == 0 {
            return Err(SettingsError::NoQueue);
        }
        let counts = [
            (
                "max_children",
                self.max_children as u64,
                MAX_CHILDREN as u64,
            ),
            ("max_queue", self.max_queue as u64, MAX_QUEUE as u64),
            ("max_requests_jitter", self.max_requests_jitter, MAX_JITTER),
        ];
        if let Some((key, value, limit)) =
            counts.into_iter().find(|&(_, value, limit)| value > limit)
        {
            return Err(SettingsError::TooMany { key, value, limit });
        }
        if let Some((key, value)) = self.durations().find(|&(_, value)| value > MAX_DURATION) {
            return Err(SettingsError::TooLong { key, value });
        }
        if let Pm::Dynamic {
            start,
            min_spare,
            max_spare,
        } = self.pm
            && !(min_spare <= start && start <= max_spare && max_spare <= self.max_children)
        {
            return Err(SettingsError::DynamicRange(format!(
                "min_spare {min_spare}, start {start}, max_spare {max_spare}, max_children {}",
                self.max_children
            )));
        }
        Ok(())
    }

    /// Every duration of the settings, by key.
    fn durations(&self) -> impl Iterator<Item = (&'static str, Duration)> {
        let idle_timeout = match self.pm {
            Pm::Ondemand { idle_timeout } => Some(("idle_timeout", idle_timeout)),
            Pm::Static | Pm::Dynamic { .. } => None,
        };
        [
            ("queue_timeout", self.queue_timeout),
            ("backoff_initial", self.backoff_initial),
            ("backoff_max", self.backoff_max),
            ("crash_loop_window", self.crash_loop_window),
            ("stop_timeout", self.stop_timeout),
            ("spare_grace", self.spare_grace),
        ]
        .into_iter()
        .chain(idle_timeout)
    }
}
