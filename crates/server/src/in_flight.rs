//! The request each busy worker of one account generation is serving, for the status page's
//! `&full` (php-fpm's "request URI" and "request duration" of a process).
//!
//! A request is entered when it is sent to its worker and leaves when the guard drops, on
//! every way a request ends. The slowlog's watcher ([`crate::slowlog`]) looks here on its tick
//! and marks each request it recorded, so that a request is recorded once, while it runs, and
//! its end knows it was.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Worker pid → its current request.
type ByWorker = HashMap<i32, Current, BuildHasherDefault<PidHasher>>;

/// The request a worker serves.
struct Current {
    /// The path, without the query string.
    uri: Box<str>,
    since: Instant,
    slow: Slow,
}

/// Whether the slowlog recorded a request as slow: once per request, the first tick that finds
/// it past the threshold.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Slow {
    /// Not (yet) past the threshold, or past it since the last tick.
    NotYet,
    /// Recorded (and counted) while it ran.
    Recorded,
}

impl Current {
    /// Whether the request is to be recorded now: past `after` at `now`, and not recorded yet.
    fn due(&self, after: Duration, now: Instant) -> bool {
        self.slow == Slow::NotYet && now.saturating_duration_since(self.since) >= after
    }
}

/// A request found past the slowlog's threshold, to record.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Stuck {
    pub worker: i32,
    pub uri: String,
    pub since: Instant,
}

/// Worker pid → its current request's URI and start.
#[derive(Default)]
pub struct InFlight {
    by_worker: Mutex<ByWorker>,
}

/// Hashes a pid by one multiplication. The keys are pids the kernel gave our own workers,
/// never a client's text, so SipHash's defence against chosen keys buys nothing here, and it
/// ran twice per request.
#[derive(Default)]
struct PidHasher(u64);

impl Hasher for PidHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for &byte in bytes {
            self.0 = (self.0 << 8 | u64::from(byte)).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        }
    }

    fn write_i32(&mut self, pid: i32) {
        // Fibonacci hashing: the high bits, which hashbrown uses, depend on every bit.
        self.0 = u64::from(pid as u32).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    }
}

/// Removes its request from [`InFlight`] when dropped.
pub struct Serving<'a> {
    in_flight: &'a InFlight,
    worker: i32,
}

impl InFlight {
    /// Notes that `worker` serves `uri` (a path) since `since`, until the guard drops.
    pub fn begin(&self, worker: i32, uri: &str, since: Instant) -> Serving<'_> {
        let current = Current {
            uri: uri.into(),
            since,
            slow: Slow::NotYet,
        };
        self.lock().insert(worker, current);
        Serving {
            in_flight: self,
            worker,
        }
    }

    /// The URI `worker` is serving and for how long, when it serves one.
    pub fn current(&self, worker: i32) -> Option<(String, Duration)> {
        self.lock()
            .get(&worker)
            .map(|current| (current.uri.to_string(), current.since.elapsed()))
    }

    /// The requests past `after` at `now` not recorded yet, each marked recorded: the slowlog's
    /// tick. Without a request in flight this takes the lock and nothing else.
    pub fn newly_slow(&self, after: Duration, now: Instant) -> Vec<Stuck> {
        let mut by_worker = self.lock();
        by_worker
            .iter_mut()
            .filter(|(_, current)| current.due(after, now))
            .map(|(&worker, current)| {
                current.slow = Slow::Recorded;
                Stuck {
                    worker,
                    uri: current.uri.to_string(),
                    since: current.since,
                }
            })
            .collect()
    }

    /// Whether `worker` still serves the request it began at `since`.
    pub fn still_serving(&self, worker: i32, since: Instant) -> bool {
        self.lock()
            .get(&worker)
            .is_some_and(|current| current.since == since)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, ByWorker> {
        self.by_worker.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl Serving<'_> {
    /// Ends the request, saying whether the slowlog recorded it.
    pub fn end(self) -> Slow {
        let slow = self.in_flight.lock().remove(&self.worker).map(|c| c.slow);
        // Removed just above: the guard has nothing left to do.
        std::mem::forget(self);
        slow.unwrap_or(Slow::NotYet)
    }
}

impl Drop for Serving<'_> {
    fn drop(&mut self) {
        self.in_flight.lock().remove(&self.worker);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_request_is_current_until_its_guard_drops() {
        let in_flight = InFlight::default();
        assert!(in_flight.current(7).is_none());
        let serving = in_flight.begin(7, "/a?b=1", Instant::now());
        let (uri, age) = in_flight.current(7).expect("serving");
        assert_eq!(uri, "/a?b=1");
        assert!(age < Duration::from_secs(5));
        assert!(in_flight.current(8).is_none());
        drop(serving);
        assert!(in_flight.current(7).is_none());
    }

    #[test]
    fn a_slow_request_is_due_once_and_its_end_knows_it_was_recorded() {
        let in_flight = InFlight::default();
        let start = Instant::now();
        let after = Duration::from_secs(1);
        let slow = in_flight.begin(7, "/slow", start);
        let quick = in_flight.begin(8, "/quick", start + Duration::from_millis(900));
        assert!(
            in_flight
                .newly_slow(after, start + Duration::from_millis(999))
                .is_empty()
        );
        let due = in_flight.newly_slow(after, start + Duration::from_millis(1000));
        let stuck = Stuck {
            worker: 7,
            uri: "/slow".into(),
            since: start,
        };
        assert_eq!(due, vec![stuck]);
        // Later ticks find it again, recorded: never a second entry for one request.
        let later = start + Duration::from_secs(5);
        let due: Vec<i32> = in_flight
            .newly_slow(after, later)
            .iter()
            .map(|s| s.worker)
            .collect();
        assert_eq!(due, vec![8]);
        assert!(in_flight.newly_slow(after, later).is_empty());
        assert!(in_flight.still_serving(7, start));
        assert!(!in_flight.still_serving(7, later));
        assert_eq!(slow.end(), Slow::Recorded);
        assert!(!in_flight.still_serving(7, start));
        // The same worker's next request is a request of its own.
        let next = in_flight.begin(7, "/next", later);
        assert_eq!(in_flight.newly_slow(after, later + after).len(), 1);
        assert_eq!(next.end(), Slow::Recorded);
        drop(quick);
        let unseen = in_flight.begin(9, "/ends-before-a-tick", start);
        assert_eq!(unseen.end(), Slow::NotYet);
    }
}
