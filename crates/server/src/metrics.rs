//! What the status page measures of every request, kept on the hot path with atomics alone
//! (no lock, no allocation): a request's duration and its wait for a worker as fixed-bucket
//! histograms, its response's status class, and the requests in flight; and, off that path,
//! the last 15 minutes of each account in a ring buffer of fixed size, which a background task
//! fills ([`history`]).
//!
//! The buckets are Prometheus' classic shape from 1 ms to 60 s, so a scrape needs no
//! conversion, and percentiles come from them the way `histogram_quantile` computes them
//! (linear within a bucket): a page and a Prometheus graph of the same data agree.

pub(crate) mod histogram;
pub(crate) mod history;

use std::sync::atomic::{AtomicU64, Ordering};

pub(crate) use histogram::{Histogram, HistogramSnapshot};
pub(crate) use history::{History, SLOTS, Sample, Totals, Tracker};

/// Responses by status class, 1xx to 5xx, plexer's own answers included.
#[derive(Default)]
pub struct StatusClasses([AtomicU64; 5]);

impl StatusClasses {
    /// Counts one response of `status`; a status outside 100..=599 (a broken app's) counts
    /// nowhere rather than in a class it is not.
    #[inline]
    pub fn count(&self, status: u16) {
        if let Some(class) = class_index(status) {
            self.0[class].fetch_add(1, Ordering::Relaxed);
        }
    }

    /// `[1xx, 2xx, 3xx, 4xx, 5xx]` now.
    pub fn read(&self) -> [u64; 5] {
        std::array::from_fn(|i| self.0[i].load(Ordering::Relaxed))
    }
}

/// The class names, in [`StatusClasses::read`]'s order.
pub(crate) const STATUS_CLASSES: [&str; 5] = ["1xx", "2xx", "3xx", "4xx", "5xx"];

/// `404` → index 3 (`4xx`).
pub(crate) fn class_index(status: u16) -> Option<usize> {
    match status {
        100..=599 => Some(usize::from(status / 100 - 1)),
        _ => None,
    }
}

/// Requests of one account being served now: entered when routed, left when the guard drops,
/// on every way a request ends.
#[derive(Default)]
pub struct RequestsInFlight(AtomicU64);

/// One request counted in [`RequestsInFlight`] while it lives.
pub struct InFlightGuard<'a>(&'a AtomicU64);

impl RequestsInFlight {
    #[inline]
    pub fn enter(&self) -> InFlightGuard<'_> {
        self.0.fetch_add(1, Ordering::Relaxed);
        InFlightGuard(&self.0)
    }

    pub fn now(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

impl Drop for InFlightGuard<'_> {
    #[inline]
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests;
