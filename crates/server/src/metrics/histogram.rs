//! A histogram of durations in fixed buckets, written with two atomic adds per observation and
//! read as a [`HistogramSnapshot`], from which percentiles and differences are computed without
//! I/O.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Upper bounds of the finite buckets, in microseconds: 1 ms to 60 s, Prometheus' classic
/// 1-2.5-5 steps, then 30 s and 60 s for the requests an operator hunts (a request_timeout is
/// often 30 or 60 s). A last bucket, +Inf, takes the rest.
pub(crate) const BOUNDS_MICROS: [u64; 15] = [
    1_000, 2_500, 5_000, 10_000, 25_000, 50_000, 100_000, 250_000, 500_000, 1_000_000, 2_500_000,
    5_000_000, 10_000_000, 30_000_000, 60_000_000,
];

/// Buckets in all, +Inf included.
pub(crate) const BUCKETS: usize = BOUNDS_MICROS.len() + 1;

/// Counts per bucket (not cumulative) and the sum, as atomics.
#[derive(Default)]
pub struct Histogram {
    counts: [AtomicU64; BUCKETS],
    sum_micros: AtomicU64,
}

impl Histogram {
    /// Counts one duration: a binary search of 15 bounds and two relaxed adds.
    #[inline]
    pub fn observe(&self, took: Duration) {
        let micros = u64::try_from(took.as_micros()).unwrap_or(u64::MAX);
        self.counts[bucket_of(micros)].fetch_add(1, Ordering::Relaxed);
        self.sum_micros.fetch_add(micros, Ordering::Relaxed);
    }

    /// The counts now. Each load is atomic, the whole is not: a request counted between two
    /// loads shows in one and not the other, which a page of rates does not notice.
    pub fn snapshot(&self) -> HistogramSnapshot {
        HistogramSnapshot {
            counts: std::array::from_fn(|i| self.counts[i].load(Ordering::Relaxed)),
            sum_micros: self.sum_micros.load(Ordering::Relaxed),
        }
    }
}

/// The bucket of a duration: the first whose bound it does not pass (`le` is inclusive).
#[inline]
pub(crate) fn bucket_of(micros: u64) -> usize {
    BOUNDS_MICROS.partition_point(|&bound| bound < micros)
}

/// Bucket counts (not cumulative) and their sum, at one moment or between two.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct HistogramSnapshot {
    pub counts: [u64; BUCKETS],
    pub sum_micros: u64,
}

impl HistogramSnapshot {
    pub fn count(&self) -> u64 {
        self.counts.iter().sum()
    }

    pub fn sum_seconds(&self) -> f64 {
        self.sum_micros as f64 / 1e6
    }

    /// What was counted since `earlier`; a counter that went backwards (it cannot, but a
    /// subtraction must not wrap) counts 0.
    pub fn since(&self, earlier: &Self) -> Self {
        Self {
            counts: std::array::from_fn(|i| self.counts[i].saturating_sub(earlier.counts[i])),
            sum_micros: self.sum_micros.saturating_sub(earlier.sum_micros),
        }
    }

    pub fn add(&mut self, other: &Self) {
        for (mine, theirs) in self.counts.iter_mut().zip(other.counts) {
            *mine += theirs;
        }
        self.sum_micros += other.sum_micros;
    }

    /// Cumulative counts, one per bucket, as OpenMetrics writes them (`le` inclusive).
    pub fn cumulative(&self) -> [u64; BUCKETS] {
        let mut total = 0;
        std::array::from_fn(|i| {
            total += self.counts[i];
            total
        })
    }

    /// The `q`-quantile in microseconds, as Prometheus' `histogram_quantile` estimates it:
    /// linear within the bucket the rank falls in, from 0 for the first bucket; a rank in +Inf
    /// is the last finite bound. `None` without observations.
    pub fn quantile_micros(&self, q: f64) -> Option<u64> {
        let total = self.count();
        if total == 0 {
            return None;
        }
        let rank = q.clamp(0.0, 1.0) * total as f64;
        let mut below = 0u64;
        for (i, &count) in self.counts.iter().enumerate() {
            if count > 0 && (below + count) as f64 >= rank {
                let Some(&upper) = BOUNDS_MICROS.get(i) else {
                    return Some(BOUNDS_MICROS[BOUNDS_MICROS.len() - 1]);
                };
                let lower = if i == 0 { 0 } else { BOUNDS_MICROS[i - 1] };
                let within = ((rank - below as f64) / count as f64).clamp(0.0, 1.0);
                return Some(lower + ((upper - lower) as f64 * within).round() as u64);
            }
            below += count;
        }
        Some(BOUNDS_MICROS[BOUNDS_MICROS.len() - 1])
    }
}

/// The finite bounds in seconds, for OpenMetrics' `le` and the JSON report.
pub(crate) fn bounds_seconds() -> impl Iterator<Item = f64> {
    BOUNDS_MICROS.iter().map(|&micros| micros as f64 / 1e6)
}
