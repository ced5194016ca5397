//! The background task that fills the dashboard's history: every `status_sample_interval`
//! (10 s by default) it reads each account's counters and busy workers into the account's
//! ring ([`crate::metrics::history`]) and their sum into plexer's own. The reading runs on a
//! blocking thread, as the `&full` report does: 10,000 accounts take milliseconds, which the
//! runtime's relaying thread never waits for.

use std::sync::Arc;
use std::time::Duration;

use plexer_prefork::pool::WorkerState;

use crate::live::{Snapshot, State, Target};
use crate::metrics::{SLOTS, Totals};

/// Samples in the dashboard's "last minute" (its rates, its p50 and p99) at `interval`.
pub(crate) fn window(interval: Duration) -> usize {
    let per_minute = 60_000 / interval.as_millis().max(1);
    usize::try_from(per_minute).unwrap_or(SLOTS).clamp(1, SLOTS)
}

/// Samples every `interval`, until the runtime stops.
pub(crate) async fn run(state: Arc<State>) {
    let interval = state.snapshot().config.status_sample_interval.0;
    let mut ticks = tokio::time::interval_at(tokio::time::Instant::now() + interval, interval);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticks.tick().await;
        let state = Arc::clone(&state);
        let sampled = tokio::task::spawn_blocking(move || {
            sample_all(&state.snapshot(), &state, window(interval));
        });
        if sampled.await.is_err() {
            tracing::warn!("sampling the status page's history failed; it goes on");
        }
    }
}

/// One sample of every running account, and of all of them together.
fn sample_all(snapshot: &Snapshot, state: &State, window: usize) {
    let mut all = Totals::default();
    let mut all_busy = 0;
    for running in snapshot.running.values() {
        let busy = match &running.target {
            Target::Pool(pool) => pool
                .status()
                .workers
                .iter()
                .filter(|w| w.state == WorkerState::Busy)
                .count() as u64,
            _ => running.counters.in_flight.now(),
        };
        let totals = running.counters.totals();
        let delta = running.counters.history().sample(totals, busy, window);
        all.add(&delta);
        all_busy += busy;
    }
    let mut history = state.history.lock().unwrap_or_else(|e| e.into_inner());
    history.push(&all, all_busy, window);
}
