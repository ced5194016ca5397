//! The running set: config, keys, accounts and their pools, as one immutable snapshot that a
//! change replaces whole.
//!
//! Each request takes the current snapshot once and routes with it, so it never sees half a
//! change; a request that started on an account that a change then retired keeps its own
//! reference and finishes there. Changes are made only by [`crate::accounts::Manager`].

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use plexer_fcgi::Limits;
use plexer_prefork::pool::PoolState;
use plexer_prefork::supervisor::PoolHandle;

use crate::account::AccountName;
use crate::config::{AuditMode, Config};
use crate::cookie::Keys;
use crate::in_flight::InFlight;
use crate::registry::{RefusedFile, Registry};
use crate::upstream::External;

/// Counters of one account, for the status page; kept across reloads of the account.
#[derive(Default)]
pub struct AccountCounters {
    pub requests: AtomicU64,
    pub errors: AtomicU64,
    /// Requests that took longer than the account's `request_slowlog_timeout`.
    pub slow: AtomicU64,
}

/// Where an account's requests go, once started.
pub enum Target {
    /// Workers plexer runs.
    Pool(PoolHandle),
    /// An app someone else runs.
    External(Arc<External>),
    /// Stopped by plexer (the fork-safety audit); requests get a 503 until the operator
    /// reloads the account.
    Stopped { why: String },
}

/// One generation of an account: what it runs, and its counters.
pub struct Generation {
    pub target: Target,
    pub counters: Arc<AccountCounters>,
    /// Counts up per start or reload of the account, for the status page and the log.
    pub generation: u64,
    /// The plexer's own timer for one request; 504 when it passes.
    pub request_timeout: Duration,
    /// Longer requests are counted and logged as slow; `None`: not counted.
    pub slow_request: Option<Duration>,
    /// What each busy worker is serving.
    pub in_flight: InFlight,
    /// The outside fork-safety audit of this generation's processes.
    pub audit: AuditMode,
    /// Its workers' sockets, removed once it stopped.
    pub sockets_dir: Option<PathBuf>,
}

impl Generation {
    /// This generation stopped (by the audit) for `why`: its requests get a 503 until the
    /// operator reloads the account; its counters go on.
    pub fn stopped(&self, why: String) -> Self {
        Self {
            target: Target::Stopped { why },
            counters: Arc::clone(&self.counters),
            generation: self.generation,
            request_timeout: self.request_timeout,
            slow_request: self.slow_request,
            in_flight: InFlight::default(),
            audit: AuditMode::Off,
            sockets_dir: None,
        }
    }

    pub fn pool(&self) -> Option<&PoolHandle> {
        match &self.target {
            Target::Pool(pool) => Some(pool),
            _ => None,
        }
    }
}

/// Everything a request is routed with.
pub struct Snapshot {
    pub config: Arc<Config>,
    pub keys: Arc<Keys>,
    pub registry: Registry,
    pub running: HashMap<AccountName, Arc<Generation>>,
    /// Account files that do not run as written, by file; an account whose new version was
    /// refused runs its previous one and is also listed here.
    pub refused: BTreeMap<PathBuf, RefusedFile>,
}

/// What every connection shares.
pub struct State {
    live: ArcSwap<Snapshot>,
    pub started: Instant,
    pub limits: Limits,
}

impl State {
    pub fn new(snapshot: Snapshot) -> Self {
        Self {
            live: ArcSwap::from_pointee(snapshot),
            started: Instant::now(),
            limits: Limits::default(),
        }
    }

    /// The current snapshot, to route one request with.
    pub fn snapshot(&self) -> Arc<Snapshot> {
        self.live.load_full()
    }

    /// Whether `snapshot` is still the current one.
    pub fn is_current(&self, snapshot: &Arc<Snapshot>) -> bool {
        Arc::ptr_eq(&self.live.load(), snapshot)
    }

    /// Replaces the snapshot; only the accounts manager calls this, under its lock.
    pub(crate) fn publish(&self, snapshot: Snapshot) {
        self.live.store(Arc::new(snapshot));
    }
}

/// A pool's state in a word or two, and why when it failed.
pub(crate) fn pool_state(state: &PoolState) -> String {
    match state {
        PoolState::Running => "running".to_owned(),
        PoolState::Failed { reason } => format!("failed: {reason}"),
        PoolState::Draining { .. } => "draining".to_owned(),
        PoolState::Stopped => "stopped".to_owned(),
    }
}
