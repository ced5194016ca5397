//! The slowlog's watcher: on a tick, looks at what every generation's busy workers serve
//! ([`crate::in_flight`]) and hands each request found past its pool's
//! `request_slowlog_timeout` to [`crate::slowlog::record`], once per request, while it runs.
//!
//! A tick rather than a timer per request keeps the request path as it was (the cost per
//! request is one enum in the in-flight entry): with nothing slow a tick takes each watched
//! generation's in-flight lock once and finds nothing. The generations watched are those of the
//! running set and those retired but still finishing requests, so a reload does not hide a
//! stuck request of the generation it replaced.

use std::collections::HashSet;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant, SystemTime};

use plexer_prefork::supervisor::Supervisor;
use tokio::time::MissedTickBehavior;

use crate::account::AccountName;
use crate::in_flight::Stuck;
use crate::live::{Generation, Snapshot, State};
use crate::slowlog::{self, Found};

/// How often in-flight requests are looked at: a slow request is recorded within this much of
/// passing its threshold (php-fpm checks once a second).
pub(crate) const TICK: Duration = Duration::from_millis(200);

/// Watches until the task is dropped.
pub(crate) async fn run(state: Arc<State>, supervisor: Supervisor) {
    let mut watched = Watched::default();
    let mut tick = tokio::time::interval(TICK);
    tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        watched.follow(&state);
        for (account, generation, stuck) in watched.newly_slow(Instant::now()) {
            found(&state, &supervisor, account, &generation, stuck);
        }
    }
}

/// The generations watched.
#[derive(Default)]
struct Watched {
    /// The snapshot last taken in, to notice a new one; weak, so that it holds nothing up.
    snapshot: Weak<Snapshot>,
    generations: Vec<(AccountName, Arc<Generation>)>,
}

impl Watched {
    /// Takes in the generations of a new snapshot, and follows a changed `slowlog:`.
    fn follow(&mut self, state: &State) {
        let snapshot = state.snapshot();
        // The weak reference keeps the old snapshot's allocation, so no new one can have its
        // address: equal pointers are the same snapshot.
        if std::ptr::eq(self.snapshot.as_ptr(), Arc::as_ptr(&snapshot)) {
            return;
        }
        self.snapshot = Arc::downgrade(&snapshot);
        let known: HashSet<*const Generation> = self
            .generations
            .iter()
            .map(|(_, g)| Arc::as_ptr(g))
            .collect();
        for (account, generation) in &snapshot.running {
            if !known.contains(&Arc::as_ptr(generation)) {
                self.generations
                    .push((account.clone(), Arc::clone(generation)));
            }
        }
        if snapshot.config.slowlog != state.slowlog.path() {
            state
                .slowlog
                .open_in_background(snapshot.config.slowlog.clone());
        }
    }

    /// Every request past its generation's threshold at `now` and not recorded yet. A
    /// generation held by nobody else (retired, its last request over) is let go.
    fn newly_slow(&mut self, now: Instant) -> Vec<(AccountName, Arc<Generation>, Stuck)> {
        self.generations
            .retain(|(_, generation)| Arc::strong_count(generation) > 1);
        let mut found = Vec::new();
        for (account, generation) in &self.generations {
            let Some(after) = generation.slow_request else {
                continue;
            };
            for stuck in generation.in_flight.newly_slow(after, now) {
                found.push((account.clone(), Arc::clone(generation), stuck));
            }
        }
        found
    }
}

/// Counts a slow request, logs it, and records it in a task of its own.
fn found(
    state: &State,
    supervisor: &Supervisor,
    account: AccountName,
    generation: &Arc<Generation>,
    stuck: Stuck,
) {
    generation.counters.slow.fetch_add(1, Ordering::Relaxed);
    let seconds = stuck.since.elapsed().as_secs_f64();
    tracing::warn!(target: "plexer::slow", account = %account, worker = stuck.worker, uri = %stuck.uri, seconds, "slow request: still running past request_slowlog_timeout");
    let found = Found {
        account: account.as_str().to_owned(),
        generation: generation.generation,
        pid: stuck.worker,
        uri: stuck.uri,
        seconds,
        at: SystemTime::now(),
        dump: generation.slowlog_dump.clone(),
    };
    let (weak, worker, since) = (Arc::downgrade(generation), stuck.worker, stuck.since);
    let still_running = move || {
        weak.upgrade()
            .is_some_and(|g| g.in_flight.still_serving(worker, since))
    };
    tokio::spawn(slowlog::record(
        Arc::clone(&state.slowlog),
        supervisor.clone(),
        found,
        still_running,
    ));
}
