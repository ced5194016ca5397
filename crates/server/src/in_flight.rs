//! The request each busy worker of one account generation is serving, for the status page's
//! `&full` (php-fpm's "request URI" and "request duration" of a process).
//!
//! A request is entered when it is sent to its worker and leaves when the guard drops, on
//! every way a request ends.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Worker pid → its current request's URI and start.
type ByWorker = HashMap<i32, (Box<str>, Instant), BuildHasherDefault<PidHasher>>;

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
    /// Notes that `worker` serves `uri` since `since`, until the guard drops.
    pub fn begin(&self, worker: i32, uri: &str, since: Instant) -> Serving<'_> {
        self.lock().insert(worker, (uri.into(), since));
        Serving {
            in_flight: self,
            worker,
        }
    }

    /// The URI `worker` is serving and for how long, when it serves one.
    pub fn current(&self, worker: i32) -> Option<(String, Duration)> {
        self.lock()
            .get(&worker)
            .map(|(uri, since)| (uri.to_string(), since.elapsed()))
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, ByWorker> {
        self.by_worker.lock().unwrap_or_else(|e| e.into_inner())
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
}
