//! Summaries of timed repetitions for the process benchmarks (`plexer-bench-pool`,
//! `plexer-bench-accounts`, `plexer-bench-cluster`): the median and the spread, formatted the
//! way docs/benchmarks.md prints them.

use std::time::Duration;

/// The median and spread of one set of timed repetitions.
#[derive(Clone, Copy, Debug)]
pub struct Summary {
    pub runs: usize,
    pub median: Duration,
    pub min: Duration,
    pub p90: Duration,
    /// Only as good as the run count: of fewer than 100 samples it is the largest but one or
    /// the largest.
    pub p99: Duration,
    pub max: Duration,
}

impl Summary {
    /// Sorts `samples` and summarises them; `None` when there are none.
    pub fn of(samples: &mut [Duration]) -> Option<Self> {
        if samples.is_empty() {
            return None;
        }
        samples.sort_unstable();
        let n = samples.len();
        // The median of an even count is the mean of the middle two.
        let median = if n % 2 == 1 {
            samples[n / 2]
        } else {
            (samples[n / 2 - 1] + samples[n / 2]) / 2
        };
        // Nearest rank: the smallest sample with at least P % of the samples at or below it.
        let rank = |percent: usize| samples[(n * percent).div_ceil(100).saturating_sub(1)];
        Some(Self {
            runs: n,
            median,
            min: samples[0],
            p90: rank(90),
            p99: rank(99),
            max: samples[n - 1],
        })
    }
}

/// `1.23 ms`, `456 µs`, `12.3 s`: three significant digits, the unit that fits.
pub fn human(d: Duration) -> String {
    let ns = d.as_nanos() as f64;
    let (value, unit) = if ns >= 1e9 {
        (ns / 1e9, "s")
    } else if ns >= 1e6 {
        (ns / 1e6, "ms")
    } else if ns >= 1e3 {
        (ns / 1e3, "µs")
    } else {
        (ns, "ns")
    };
    let decimals = if value >= 100.0 {
        0
    } else if value >= 10.0 {
        1
    } else {
        2
    };
    format!("{value:.decimals$} {unit}")
}

/// `a ÷ b` as `2.31×`, or `—` when either is missing.
pub fn ratio(a: Option<Duration>, b: Option<Duration>) -> String {
    match (a, b) {
        (Some(a), Some(b)) if !b.is_zero() => {
            format!("{:.2}×", a.as_secs_f64() / b.as_secs_f64())
        }
        _ => "—".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn median_and_p90_of_ten() {
        let mut samples: Vec<Duration> = (1..=10).rev().map(Duration::from_millis).collect();
        let s = Summary::of(&mut samples).unwrap();
        assert_eq!(s.median, Duration::from_micros(5500));
        assert_eq!(s.p90, Duration::from_millis(9));
        assert_eq!(s.p99, Duration::from_millis(10));
        assert_eq!(s.min, Duration::from_millis(1));
        assert_eq!(s.max, Duration::from_millis(10));
    }

    #[test]
    fn p99_of_two_hundred_is_the_198th() {
        let mut samples: Vec<Duration> = (1..=200).map(Duration::from_millis).collect();
        let s = Summary::of(&mut samples).unwrap();
        assert_eq!(s.p90, Duration::from_millis(180));
        assert_eq!(s.p99, Duration::from_millis(198));
    }

    #[test]
    fn human_picks_the_unit() {
        assert_eq!(human(Duration::from_nanos(1_234_000)), "1.23 ms");
        assert_eq!(human(Duration::from_micros(456)), "456 µs");
        assert_eq!(human(Duration::from_millis(23_900)), "23.9 s");
    }
}
