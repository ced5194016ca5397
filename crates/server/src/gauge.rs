//! Counting what is open (connections, connections with a request in flight) and saying
//! when a limit turns new ones away.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// How many of something there are now (connections open, connections with a request in
/// flight): two atomic operations per entry; a stop looks every 10 ms.
#[derive(Clone, Default)]
pub(crate) struct Gauge(Arc<AtomicUsize>);

/// One entry counted while it lives.
pub(crate) struct GaugeGuard(Arc<AtomicUsize>);

impl Gauge {
    pub(crate) fn enter(&self) -> GaugeGuard {
        self.0.fetch_add(1, Ordering::Relaxed);
        GaugeGuard(Arc::clone(&self.0))
    }

    /// Counts one more unless there are `max` already.
    pub(crate) fn enter_below(&self, max: usize) -> Option<GaugeGuard> {
        let guard = self.enter();
        (self.count() <= max).then_some(guard)
    }

    pub(crate) fn count(&self) -> usize {
        self.0.load(Ordering::Relaxed)
    }

    /// Until there is none.
    pub(crate) async fn idle(&self) {
        while self.count() > 0 {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}

impl Drop for GaugeGuard {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Says, at most once a minute, that connections were closed as they arrived because
/// `max_connections` were open.
#[derive(Default)]
pub(crate) struct OverLimit {
    refused: u64,
    said: Option<Instant>,
}

impl OverLimit {
    pub(crate) fn refused(&mut self, max: usize, front: &str) {
        self.refused += 1;
        if self
            .said
            .is_none_or(|said| said.elapsed() >= Duration::from_secs(60))
        {
            tracing::warn!(
                max_connections = max,
                refused = self.refused,
                "{front}: max_connections connections are open: new ones are closed as they \
                 arrive; raise max_connections, or find who opens so many"
            );
            self.said = Some(Instant::now());
            self.refused = 0;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_gauge_counts_what_lives_and_turns_away_past_its_max() {
        let gauge = Gauge::default();
        let first = gauge.enter_below(2).expect("room for one");
        let second = gauge.enter_below(2).expect("room for two");
        assert!(gauge.enter_below(2).is_none(), "a third is over the max");
        assert_eq!(gauge.count(), 2, "the one turned away is not counted");
        drop(first);
        let third = gauge.enter_below(2).expect("room again once one left");
        drop((second, third));
        assert_eq!(gauge.count(), 0);
    }
}
