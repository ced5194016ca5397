//! The running set: config, keys, accounts and their pools, as one immutable snapshot that a
//! change replaces whole.
//!
//! Each request takes the current snapshot once and routes with it, so it never sees half a
//! change; a request that started on an account that a change then retired keeps its own
//! reference and finishes there. Changes are made only by [`crate::accounts::Manager`].

use std::collections::{BTreeMap, HashMap};
use std::num::NonZeroUsize;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use plexer_fcgi::Limits;
use plexer_prefork::pool::PoolState;
use plexer_prefork::supervisor::PoolHandle;

use crate::account::AccountName;
use crate::authorizer::cache::DecisionCache;
use crate::config::{AuditMode, AuthorizerCache, Config, DumpCommand};
use crate::cookie::Keys;
use crate::in_flight::InFlight;
use crate::metrics::{Histogram, History, RequestsInFlight, StatusClasses, Totals, Tracker};
use crate::registry::{RefusedFile, Registry};
use crate::slowlog::SlowLog;
use crate::upstream::External;

/// Counters of one account, for the status page; kept across reloads of the account. A
/// request touches only atomics here (crate::metrics); `history` is written by the sampler
/// every `status_sample_interval` and read by the page, never by a request.
#[derive(Default)]
pub struct AccountCounters {
    pub requests: AtomicU64,
    pub errors: AtomicU64,
    /// Requests that took longer than the account's `request_slowlog_timeout`.
    pub slow: AtomicU64,
    /// From routing to the last byte, for every request answered (by the app or by plexer).
    pub duration: Histogram,
    /// From asking the pool for a worker to having one (pools only).
    pub queue_wait: Histogram,
    pub responses: StatusClasses,
    pub in_flight: RequestsInFlight,
    pub history: Mutex<Tracker>,
}

impl AccountCounters {
    /// A request ended with `status` after `took`: its class and its duration.
    #[inline]
    pub fn answered(&self, status: u16, took: Duration) {
        self.responses.count(status);
        self.duration.observe(took);
    }

    /// The cumulative counters the history samples.
    pub fn totals(&self) -> Totals {
        Totals {
            requests: self.requests.load(Ordering::Relaxed),
            errors: self.errors.load(Ordering::Relaxed),
            slow: self.slow.load(Ordering::Relaxed),
            duration: self.duration.snapshot(),
        }
    }

    /// The account's history, also when a sampler panicked holding it.
    pub fn history(&self) -> MutexGuard<'_, Tracker> {
        self.history.lock().unwrap_or_else(|e| e.into_inner())
    }
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
    /// What the slowlog runs for the worker of a slow request (`slowlog_dump`).
    pub slowlog_dump: Option<DumpCommand>,
    /// What each busy worker is serving.
    pub in_flight: InFlight,
    /// The outside fork-safety audit of this generation's processes.
    pub audit: AuditMode,
    /// Its workers' sockets, removed once it stopped.
    pub sockets_dir: Option<PathBuf>,
    /// Why its workers could connect to `listen:` themselves, when they could.
    pub exposed: Option<String>,
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
            slowlog_dump: None,
            in_flight: InFlight::default(),
            audit: AuditMode::Off,
            sockets_dir: None,
            exposed: self.exposed.clone(),
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
    /// The authorizer's cache and counters (`route.by: authorizer`).
    pub(crate) authorizer: AuthorizerState,
    /// The last slow requests and the slowlog file.
    pub(crate) slowlog: Arc<SlowLog>,
    /// One line per relayed request, gathered and written in batches.
    pub(crate) access_log: crate::access_log::AccessLog,
    /// All of plexer's last 15 minutes, the sum of every account's samples.
    pub(crate) history: Mutex<History>,
}

/// What asking the authorizer did, and the cache of its decisions for the config in force.
#[derive(Default)]
pub(crate) struct AuthorizerState {
    /// Round trips to the authorizer.
    pub asked: AtomicU64,
    /// Round trips that gave no answer (a 502 or 503 for the request).
    pub failures: AtomicU64,
    cache: Mutex<Option<(AuthorizerCache, Arc<DecisionCache>)>>,
}

impl AuthorizerState {
    /// The cache for `config`: the same one while the config says the same, a new one when a
    /// reload changed it.
    pub(crate) fn cache_for(&self, config: &AuthorizerCache) -> Arc<DecisionCache> {
        let mut current = self.cache.lock().unwrap_or_else(|e| e.into_inner());
        match &*current {
            Some((made_for, cache)) if made_for == config => Arc::clone(cache),
            _ => {
                let entries = NonZeroUsize::new(config.max_entries).unwrap_or(NonZeroUsize::MIN);
                let cache = Arc::new(DecisionCache::new(entries, config.ttl.0));
                *current = Some((config.clone(), Arc::clone(&cache)));
                cache
            }
        }
    }

    /// The cache in use, if any, for the status page.
    pub(crate) fn current_cache(&self) -> Option<Arc<DecisionCache>> {
        let current = self.cache.lock().unwrap_or_else(|e| e.into_inner());
        current.as_ref().map(|(_, cache)| Arc::clone(cache))
    }
}

impl State {
    pub fn new(snapshot: Snapshot) -> Self {
        Self {
            live: ArcSwap::from_pointee(snapshot),
            started: Instant::now(),
            limits: Limits::default(),
            authorizer: AuthorizerState::default(),
            slowlog: Arc::default(),
            access_log: Default::default(),
            history: Mutex::default(),
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
