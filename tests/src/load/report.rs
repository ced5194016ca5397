//! What a load run saw, per connection, so that "every connection made progress" and "a few
//! connections did all the work while the rest starved" tell apart.

use std::time::Duration;

/// What one client connection saw.
#[derive(Clone, Debug, Default)]
pub struct ConnectionTally {
    /// Requests answered with a 200.
    pub ok: u64,
    pub timeouts: u64,
    /// Anything else: refused or reset connections, non-200 answers, unreadable responses.
    pub errors: u64,
    pub first_error: Option<String>,
    /// The time to each 200 answer, from the first byte sent.
    pub latencies: Vec<Duration>,
}

impl ConnectionTally {
    pub(crate) fn note_error(&mut self, why: String) {
        self.errors += 1;
        self.first_error.get_or_insert(why);
    }
}

/// What a whole run saw.
#[derive(Debug)]
pub struct LoadReport {
    pub connections: Vec<ConnectionTally>,
    pub elapsed: Duration,
}

impl LoadReport {
    pub fn ok(&self) -> u64 {
        self.connections.iter().map(|c| c.ok).sum()
    }

    pub fn timeouts(&self) -> u64 {
        self.connections.iter().map(|c| c.timeouts).sum()
    }

    pub fn errors(&self) -> u64 {
        self.connections.iter().map(|c| c.errors).sum()
    }

    /// Answered requests per second of the run.
    pub fn per_second(&self) -> f64 {
        self.ok() as f64 / self.elapsed.as_secs_f64()
    }

    /// Connections that got at least one answer.
    pub fn progressed(&self) -> usize {
        self.connections.iter().filter(|c| c.ok > 0).count()
    }

    /// Connections that saw at least one request time out.
    pub fn starved(&self) -> usize {
        self.connections.iter().filter(|c| c.timeouts > 0).count()
    }

    /// The first error any connection saw, for a failure message.
    pub fn first_error(&self) -> Option<&str> {
        self.connections
            .iter()
            .find_map(|c| c.first_error.as_deref())
    }

    /// The latency at quantile `q` (0.0 to 1.0) of the answered requests, nearest rank.
    pub fn latency(&self, q: f64) -> Option<Duration> {
        let mut all: Vec<Duration> = self
            .connections
            .iter()
            .flat_map(|c| c.latencies.iter().copied())
            .collect();
        if all.is_empty() {
            return None;
        }
        all.sort_unstable();
        let rank = ((all.len() as f64 * q).ceil() as usize).clamp(1, all.len());
        Some(all[rank - 1])
    }

    /// One line for a test's output: counts, throughput, latencies.
    pub fn summary(&self) -> String {
        let ms = |d: Option<Duration>| {
            d.map_or("-".into(), |d| format!("{:.1} ms", d.as_secs_f64() * 1e3))
        };
        format!(
            "{} answered ({:.0}/s), {} timed out, {} errors, {}/{} connections made progress, \
             {} saw a timeout, latency p50 {} p99 {} max {}",
            self.ok(),
            self.per_second(),
            self.timeouts(),
            self.errors(),
            self.progressed(),
            self.connections.len(),
            self.starved(),
            ms(self.latency(0.5)),
            ms(self.latency(0.99)),
            ms(self.latency(1.0)),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report(latencies_ms: &[u64]) -> LoadReport {
        let tally = ConnectionTally {
            ok: latencies_ms.len() as u64,
            latencies: latencies_ms
                .iter()
                .copied()
                .map(Duration::from_millis)
                .collect(),
            ..ConnectionTally::default()
        };
        LoadReport {
            connections: vec![tally, ConnectionTally::default()],
            elapsed: Duration::from_secs(1),
        }
    }

    #[test]
    fn quantiles_are_nearest_rank() {
        let report = report(&[4, 1, 3, 2]);
        assert_eq!(report.latency(0.5), Some(Duration::from_millis(2)));
        assert_eq!(report.latency(1.0), Some(Duration::from_millis(4)));
        assert_eq!(report.progressed(), 1);
    }

    #[test]
    fn quantiles_of_ten_are_nearest_rank() {
        assert_eq!(report(&[]).latency(0.5), None);
        let ten: Vec<u64> = (1..=10).collect();
        let ten = report(&ten);
        assert_eq!(ten.latency(0.5), Some(Duration::from_millis(5)));
        assert_eq!(ten.latency(0.99), Some(Duration::from_millis(10)));
        assert_eq!(ten.per_second(), 10.0);
    }
}
