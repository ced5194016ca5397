//! The last 15 minutes of an account, or of all of plexer, for the dashboard's charts: a ring
//! of [`SLOTS`] samples of fixed size, each what one sampling interval (10 s by default,
//! `status_sample_interval`) saw. Written by one background task, read by the status page;
//! nothing here runs on a request's path, and nothing does I/O or reads a clock: the caller
//! hands in the counters and the busy workers it read.
//!
//! Size, per account: [`SLOTS`] × 20 bytes of samples plus two histogram snapshots (the
//! counters at the previous sample, and the current window's sum) — about 2.1 KiB, fixed
//! whatever the traffic (docs/operations.md; measured in docs/benchmarks.md).

use std::num::NonZeroU32;

use super::HistogramSnapshot;

/// Samples kept: 90, 15 minutes at the default interval of 10 s.
pub(crate) const SLOTS: usize = 90;

/// One interval of one account (or of all): the requests routed, the errors plexer answered,
/// the slow requests, the percentiles of the requests that ended, and the busy workers at its
/// end.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Sample {
    pub requests: u32,
    pub errors: u32,
    /// `None`: no request ended in the interval.
    pub p50_micros: Option<NonZeroU32>,
    pub p99_micros: Option<NonZeroU32>,
    pub busy: u16,
    pub slow: u16,
}

impl Sample {
    /// The sample of an interval whose counters moved by `delta`; counts beyond the fields'
    /// range are kept at their maximum (4 billion requests in an interval, 65,535 busy).
    pub fn of(delta: &Totals, busy: u64) -> Self {
        let quantile = |q| delta.duration.quantile_micros(q).map(saturate_nonzero);
        Self {
            requests: u32::try_from(delta.requests).unwrap_or(u32::MAX),
            errors: u32::try_from(delta.errors).unwrap_or(u32::MAX),
            p50_micros: quantile(0.5),
            p99_micros: quantile(0.99),
            busy: u16::try_from(busy).unwrap_or(u16::MAX),
            slow: u16::try_from(delta.slow).unwrap_or(u16::MAX),
        }
    }
}

fn saturate_nonzero(micros: u64) -> NonZeroU32 {
    NonZeroU32::new(u32::try_from(micros).unwrap_or(u32::MAX).max(1)).unwrap_or(NonZeroU32::MIN)
}

/// An account's counters at one moment (cumulative), or what they moved by between two.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Totals {
    pub requests: u64,
    pub errors: u64,
    pub slow: u64,
    pub duration: HistogramSnapshot,
}

impl Totals {
    /// What moved since `earlier`, never below 0.
    pub fn since(&self, earlier: &Self) -> Self {
        Self {
            requests: self.requests.saturating_sub(earlier.requests),
            errors: self.errors.saturating_sub(earlier.errors),
            slow: self.slow.saturating_sub(earlier.slow),
            duration: self.duration.since(&earlier.duration),
        }
    }

    pub fn add(&mut self, other: &Self) {
        self.requests += other.requests;
        self.errors += other.errors;
        self.slow += other.slow;
        self.duration.add(&other.duration);
    }
}

/// Sums over the latest samples (the dashboard's "last minute").
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Recent {
    pub requests: u64,
    pub errors: u64,
    pub slow: u64,
    /// Samples summed: fewer than asked while the ring fills.
    pub samples: usize,
}

/// The ring, and the window its percentiles are taken over.
#[derive(Clone, Debug)]
pub struct History {
    slots: [Sample; SLOTS],
    /// Where the next sample goes.
    next: u16,
    filled: u16,
    /// The durations of the window being summed, and how many samples it holds.
    window: HistogramSnapshot,
    window_samples: u16,
    /// p50 and p99 of the last whole window.
    window_quantiles: (Option<NonZeroU32>, Option<NonZeroU32>),
}

impl Default for History {
    fn default() -> Self {
        Self {
            slots: [Sample::default(); SLOTS],
            next: 0,
            filled: 0,
            window: HistogramSnapshot::default(),
            window_samples: 0,
            window_quantiles: (None, None),
        }
    }
}

impl History {
    /// Adds the interval whose counters moved by `delta`, with `busy` workers at its end;
    /// every `window` samples, the percentiles of the window just ended replace the last.
    pub fn push(&mut self, delta: &Totals, busy: u64, window: usize) {
        self.slots[usize::from(self.next)] = Sample::of(delta, busy);
        self.next = (self.next + 1) % SLOTS as u16;
        self.filled = (self.filled + 1).min(SLOTS as u16);
        self.window.add(&delta.duration);
        self.window_samples += 1;
        if usize::from(self.window_samples) >= window.max(1) {
            let quantile = |q| self.window.quantile_micros(q).map(saturate_nonzero);
            self.window_quantiles = (quantile(0.5), quantile(0.99));
            self.window = HistogramSnapshot::default();
            self.window_samples = 0;
        }
    }

    /// The samples, oldest first.
    pub fn samples(&self) -> impl Iterator<Item = &Sample> + '_ {
        let filled = usize::from(self.filled);
        let start = (usize::from(self.next) + SLOTS - filled) % SLOTS;
        (0..filled).map(move |i| &self.slots[(start + i) % SLOTS])
    }

    /// Sums of the latest `n` samples.
    pub fn recent(&self, n: usize) -> Recent {
        let filled = usize::from(self.filled);
        let skip = filled.saturating_sub(n);
        self.samples()
            .skip(skip)
            .fold(Recent::default(), |mut sum, sample| {
                sum.requests += u64::from(sample.requests);
                sum.errors += u64::from(sample.errors);
                sum.slow += u64::from(sample.slow);
                sum.samples += 1;
                sum
            })
    }

    /// p50 and p99 of the last whole window, in microseconds.
    pub fn window_quantiles(&self) -> (Option<NonZeroU32>, Option<NonZeroU32>) {
        self.window_quantiles
    }
}

/// One account's history, and its counters at the previous sample, from which each interval's
/// movement is taken.
#[derive(Clone, Debug, Default)]
pub struct Tracker {
    last: Totals,
    pub history: History,
}

impl Tracker {
    /// Samples the counters `now` (cumulative) with `busy` workers; returns what moved, for
    /// plexer's own history.
    pub fn sample(&mut self, now: Totals, busy: u64, window: usize) -> Totals {
        let delta = now.since(&self.last);
        self.last = now;
        self.history.push(&delta, busy, window);
        delta
    }
}
