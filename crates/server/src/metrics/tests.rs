use std::time::Duration;

use super::histogram::{BOUNDS_MICROS, bucket_of};
use super::history::{History, SLOTS, Totals, Tracker};
use super::*;

fn histogram_of(millis: &[u64]) -> HistogramSnapshot {
    let histogram = Histogram::default();
    for &ms in millis {
        histogram.observe(Duration::from_millis(ms));
    }
    histogram.snapshot()
}

#[test]
fn a_duration_goes_to_the_first_bucket_whose_bound_it_does_not_pass() {
    assert_eq!(bucket_of(0), 0);
    assert_eq!(bucket_of(1_000), 0, "le is inclusive");
    assert_eq!(bucket_of(1_001), 1);
    assert_eq!(bucket_of(60_000_000), 14);
    assert_eq!(bucket_of(60_000_001), 15, "+Inf");
    assert_eq!(bucket_of(u64::MAX), 15);
    for (i, &bound) in BOUNDS_MICROS.iter().enumerate() {
        assert_eq!(bucket_of(bound), i);
        assert_eq!(bucket_of(bound + 1), i + 1);
    }
}

#[test]
fn cumulative_counts_and_sum_follow_the_observations() {
    let snapshot = histogram_of(&[0, 3, 3, 700, 90_000]);
    assert_eq!(snapshot.count(), 5);
    assert_eq!(snapshot.sum_micros, 90_706_000);
    let cumulative = snapshot.cumulative();
    assert_eq!(cumulative[0], 1, "0 ms");
    assert_eq!(cumulative[2], 3, "3 ms in le=0.005");
    assert_eq!(cumulative[8], 3);
    assert_eq!(cumulative[9], 4, "700 ms in le=1");
    assert_eq!(cumulative[14], 4);
    assert_eq!(cumulative[15], 5, "90 s in +Inf");
}

#[test]
fn percentiles_interpolate_within_a_bucket_as_prometheus_does() {
    assert_eq!(histogram_of(&[]).quantile_micros(0.5), None);
    // 100 requests of 30 ms: every rank is in (25 ms, 50 ms].
    let snapshot = histogram_of(&[30; 100]);
    assert_eq!(snapshot.quantile_micros(0.5), Some(37_500));
    assert_eq!(snapshot.quantile_micros(0.99), Some(49_750));
    // 99 fast and 1 very slow: p50 is fast, p99 at the edge of the fast bucket, p100 slow.
    let mut millis = vec![1; 99];
    millis.push(20_000);
    let snapshot = histogram_of(&millis);
    assert_eq!(snapshot.quantile_micros(0.5), Some(505));
    assert_eq!(snapshot.quantile_micros(0.99), Some(1_000));
    assert_eq!(snapshot.quantile_micros(1.0), Some(30_000_000));
    // Past the last bound, the last bound: a histogram cannot say more.
    assert_eq!(
        histogram_of(&[100_000]).quantile_micros(0.5),
        Some(60_000_000)
    );
}

#[test]
fn a_difference_of_snapshots_is_what_happened_between_them() {
    let earlier = histogram_of(&[1, 2]);
    let later = histogram_of(&[1, 2, 40]);
    let between = later.since(&earlier);
    assert_eq!(between.count(), 1);
    assert_eq!(between.quantile_micros(0.5), Some(37_500));
    assert_eq!(earlier.since(&later).count(), 0, "never below 0");
}

#[test]
fn status_classes_count_plexers_own_answers_and_ignore_what_is_no_status() {
    let classes = StatusClasses::default();
    for status in [200, 204, 302, 404, 431, 502, 503, 504, 99, 600, 0] {
        classes.count(status);
    }
    assert_eq!(classes.read(), [0, 2, 1, 2, 3]);
    assert_eq!(class_index(100), Some(0));
    assert_eq!(class_index(599), Some(4));
}

#[test]
fn requests_in_flight_leave_when_their_guard_drops() {
    let in_flight = RequestsInFlight::default();
    let first = in_flight.enter();
    let second = in_flight.enter();
    assert_eq!(in_flight.now(), 2);
    drop(first);
    drop(second);
    assert_eq!(in_flight.now(), 0);
}

fn totals(requests: u64, errors: u64, millis: &[u64]) -> Totals {
    Totals {
        requests,
        errors,
        slow: 0,
        duration: histogram_of(millis),
    }
}

#[test]
fn the_ring_keeps_the_last_90_samples_oldest_first() {
    let mut history = History::default();
    assert_eq!(history.samples().count(), 0);
    for i in 0..(SLOTS as u64 + 5) {
        history.push(&totals(i, 0, &[]), i, 6);
    }
    let requests: Vec<u32> = history.samples().map(|s| s.requests).collect();
    assert_eq!(requests.len(), SLOTS);
    assert_eq!(requests[0], 5);
    assert_eq!(*requests.last().unwrap(), SLOTS as u32 + 4);
    assert_eq!(history.samples().last().unwrap().busy, SLOTS as u16 + 4);
}

#[test]
fn the_last_minute_sums_the_latest_samples_and_takes_percentiles_of_whole_windows() {
    let mut history = History::default();
    history.push(&totals(10, 1, &[30; 10]), 1, 3);
    history.push(&totals(20, 0, &[30; 20]), 2, 3);
    assert_eq!(
        history.window_quantiles(),
        (None, None),
        "no whole window yet"
    );
    history.push(&totals(30, 2, &[3; 30]), 0, 3);
    let (p50, p99) = history.window_quantiles();
    // 60 requests, half at 3 ms: the median is the top of their bucket, 5 ms.
    assert_eq!(p50.map(|m| m.get()), Some(5_000));
    assert!(p99.is_some_and(|m| m.get() > 25_000));
    let recent = history.recent(2);
    assert_eq!((recent.requests, recent.errors, recent.samples), (50, 2, 2));
    assert_eq!(history.recent(100).samples, 3, "fewer while the ring fills");
    let last = history.samples().last().copied().unwrap();
    assert_eq!(last.p50_micros.map(|m| m.get()), Some(3_750));
}

#[test]
fn a_tracker_samples_what_moved_since_the_previous_sample() {
    let mut tracker = Tracker::default();
    let delta = tracker.sample(totals(5, 1, &[1, 1]), 1, 6);
    assert_eq!((delta.requests, delta.errors), (5, 1));
    let delta = tracker.sample(totals(7, 1, &[1, 1, 1]), 0, 6);
    assert_eq!(
        (delta.requests, delta.errors, delta.duration.count()),
        (2, 0, 1)
    );
    let samples: Vec<u32> = tracker.history.samples().map(|s| s.requests).collect();
    assert_eq!(samples, [5, 2]);
}

#[test]
fn an_accounts_history_has_a_fixed_size_whatever_its_traffic() {
    // What docs/operations.md states: about 2.1 KiB per account.
    let size = size_of::<Tracker>();
    assert!((2_000..2_300).contains(&size), "{size} bytes");
    assert_eq!(size_of::<Sample>(), 20);
}
