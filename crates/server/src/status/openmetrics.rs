//! The status page as OpenMetrics 1.0 text (`?openmetrics`), for Prometheus to scrape, written
//! by the `prometheus-client` crate so names, escaping and `# EOF` follow the spec
//! (OpenMetrics 1.0, "Text format").
//!
//! Built from [`super::report`]'s JSON alone, so it follows whatever the report holds: every
//! account is a label (`account="bob"`), fields an account lacks (an external app has no pool)
//! give no sample, and optional fields (`slow_requests`, a worker's `rss_bytes`) give a metric
//! only when some account reports them. With `&full`, every worker with a pid is a series too;
//! unlike php-fpm's, whose OpenMetrics output ignores `full` (php-src #9494).
//!
//! Per account also: `plexer_request_duration_seconds` and `plexer_request_queue_wait_seconds`
//! (histograms, 1 ms to 60 s), `plexer_account_responses_total{class="2xx"}` (plexer's own
//! answers included), `plexer_account_requests_in_flight`, and the workers' memory and CPU
//! (`plexer_account_rss_bytes`, `plexer_account_cpu_seconds`, from /proc). Labels are the
//! account, the state, the class, and with `&full` the pid: never a URI, so the series grow
//! with the accounts and nothing else.

use std::sync::atomic::AtomicU64;
use std::sync::{Arc, OnceLock};

use prometheus_client::encoding::text::encode;
use prometheus_client::encoding::{EncodeMetric, MetricEncoder, NoLabelSet};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::{MetricType, TypedMetric};
use prometheus_client::registry::{Registry, Unit};
use serde_json::Value;

type Labels = Vec<(&'static str, String)>;
type Counters = Family<Labels, Counter>;
type Gauges = Family<Labels, Gauge>;
type SecondsGauges = Family<Labels, Gauge<f64, AtomicU64>>;

/// Account fields that only grow while plexer runs: (report key, metric name, help).
const ACCOUNT_COUNTERS: &[(&str, &str, &str)] = &[
    (
        "requests",
        "account_requests",
        "Requests routed to the account",
    ),
    (
        "errors",
        "account_errors",
        "Requests plexer answered itself with a 502, 503 or 504",
    ),
    ("accepted", "account_accepted", "Requests handed a worker"),
    (
        "max_children_reached",
        "account_max_children_reached",
        "Times a request waited because max_children workers were running",
    ),
    (
        "failures",
        "account_failures",
        "Workers that failed to start or died unexpectedly",
    ),
    (
        "slow_requests",
        "account_slow_requests",
        "Requests that ran longer than the slow threshold",
    ),
];

/// Account fields that go up and down, or are settings: (report key, metric name, help).
const ACCOUNT_GAUGES: &[(&str, &str, &str)] = &[
    (
        "in_flight",
        "account_requests_in_flight",
        "Requests of the account being served now, waiting for a worker included",
    ),
    (
        "rss_bytes",
        "account_rss_bytes",
        "Resident memory of the account's workers, summed (shared pages once per worker)",
    ),
    (
        "queue",
        "account_queue",
        "Requests waiting for a free worker now",
    ),
    (
        "max_queue",
        "account_max_queue",
        "The longest the queue has been",
    ),
    (
        "max_children",
        "account_max_children",
        "The configured limit of workers",
    ),
];

/// The report's per-state worker counts, which are also a worker's possible states.
const WORKER_STATES: [&str; 4] = ["starting", "idle", "busy", "stopping"];

/// An account's possible states; `failed: REASON` in the report is `failed` here.
const ACCOUNT_STATES: [&str; 6] = [
    "running",
    "draining",
    "failed",
    "stopped",
    "external",
    "not running",
];

/// The whole exposition, ending in `# EOF`.
pub(crate) fn openmetrics(report: &Value) -> String {
    let accounts = report["accounts"].as_array().map_or(&[][..], Vec::as_slice);
    let reported = |key: &str| accounts.iter().any(|a| !a[key].is_null());
    let mut registry = Registry::with_prefix("plexer");

    let uptime = Gauge::<i64>::default();
    uptime.set(report["uptime_seconds"].as_i64().unwrap_or(0));
    registry.register_with_unit(
        "uptime",
        "Seconds since plexer started",
        Unit::Seconds,
        uptime,
    );

    for &(key, name, help) in ACCOUNT_COUNTERS.iter().filter(|(key, ..)| reported(key)) {
        let family = Counters::default();
        for (labels, account) in labelled(accounts) {
            if let Some(value) = account[key].as_u64() {
                family.get_or_create(&labels).inc_by(value);
            }
        }
        registry.register(name, help, family);
    }
    for &(key, name, help) in ACCOUNT_GAUGES.iter().filter(|(key, ..)| reported(key)) {
        let family = Gauges::default();
        for (labels, account) in labelled(accounts) {
            if let Some(value) = account[key].as_i64() {
                family.get_or_create(&labels).set(value);
            }
        }
        registry.register(name, help, family);
    }

    register_request_metrics(&mut registry, report, accounts);

    let workers = Gauges::default();
    let up = Gauges::default();
    let states = Gauges::default();
    for (labels, account) in labelled(accounts) {
        for state in WORKER_STATES {
            if let Some(count) = account[state].as_i64() {
                workers
                    .get_or_create(&with(&labels, "state", state))
                    .set(count);
            }
        }
        let current = account_state(account);
        up.get_or_create(&labels)
            .set(i64::from(matches!(current, "running" | "external")));
        for state in ACCOUNT_STATES {
            states
                .get_or_create(&with(&labels, "state", state))
                .set(i64::from(state == current));
        }
    }
    registry.register("account_workers", "Workers by state", workers);
    registry.register(
        "account_up",
        "1 while the account takes requests (its pool runs, or it is an external app)",
        up,
    );
    registry.register(
        "account_state",
        "The account's state: 1 for the current one, 0 for the others",
        states,
    );

    if reported("workers") {
        register_workers(&mut registry, accounts);
    }

    let refused = Gauge::<i64>::default();
    let files = report["refused"].as_array().map_or(0, Vec::len);
    refused.set(i64::try_from(files).unwrap_or(i64::MAX));
    registry.register(
        "accounts_refused",
        "Account files refused: their accounts do not run as the files stand",
        refused,
    );

    let mut out = String::new();
    encode(&mut out, &registry).expect("encoding into a String cannot fail");
    out
}

/// The histograms, the responses by class, and CPU seconds, per account.
fn register_request_metrics(registry: &mut Registry, report: &Value, accounts: &[Value]) {
    let bounds: Vec<f64> = report["histogram_buckets_seconds"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_f64)
        .collect();
    for (key, name, help) in [
        (
            "request_duration",
            "request_duration",
            "Time from routing a request to its last byte, plexer's own answers included",
        ),
        (
            "queue_wait",
            "request_queue_wait",
            "Time a request waited for a worker of the account's pool",
        ),
    ] {
        let family = Family::<Labels, Fixed>::default();
        for (labels, account) in labelled(accounts) {
            if let Some(histogram) = Fixed::from_report(&account[key], &bounds) {
                family.get_or_create(&labels).set(histogram);
            }
        }
        registry.register_with_unit(name, help, Unit::Seconds, family);
    }
    let responses = Counters::default();
    let cpu = SecondsGauges::default();
    let mut any_cpu = false;
    for (labels, account) in labelled(accounts) {
        if let Some(classes) = account["responses"].as_object() {
            for (class, count) in classes {
                let labels = with(&labels, "class", class);
                responses
                    .get_or_create(&labels)
                    .inc_by(count.as_u64().unwrap_or(0));
            }
        }
        if let Some(seconds) = account["cpu_seconds"].as_f64() {
            cpu.get_or_create(&labels).set(seconds);
            any_cpu = true;
        }
    }
    registry.register(
        "account_responses",
        "Responses by status class, the ones plexer answers itself (502, 503, 504) included",
        responses,
    );
    if any_cpu {
        registry.register_with_unit(
            "account_cpu",
            "User and system CPU time of the account's workers running now (it falls when a \
             worker is replaced)",
            Unit::Seconds,
            cpu,
        );
    }
}

/// A histogram counted elsewhere (the account's atomics), written as the report has it.
#[derive(Clone, Debug, Default)]
struct Fixed(Arc<OnceLock<FixedCounts>>);

#[derive(Debug)]
struct FixedCounts {
    sum: f64,
    count: u64,
    /// (upper bound, count in this bucket alone), +Inf last.
    buckets: Vec<(f64, u64)>,
}

impl Fixed {
    /// From the report's cumulative `buckets`, one per bound and then +Inf.
    fn from_report(histogram: &Value, bounds: &[f64]) -> Option<FixedCounts> {
        let cumulative: Vec<u64> = histogram["buckets"]
            .as_array()?
            .iter()
            .map(|n| n.as_u64().unwrap_or(0))
            .collect();
        if cumulative.len() != bounds.len() + 1 {
            return None;
        }
        let upper = bounds.iter().copied().chain([f64::INFINITY]);
        let mut below = 0;
        let buckets = upper
            .zip(&cumulative)
            .map(|(bound, &total)| {
                let alone = total.saturating_sub(below);
                below = total;
                (bound, alone)
            })
            .collect();
        Some(FixedCounts {
            sum: histogram["sum_seconds"].as_f64().unwrap_or(0.0),
            count: histogram["count"].as_u64().unwrap_or(0),
            buckets,
        })
    }

    fn set(&self, counts: FixedCounts) {
        let _ = self.0.set(counts);
    }
}

impl TypedMetric for Fixed {
    const TYPE: MetricType = MetricType::Histogram;
}

impl EncodeMetric for Fixed {
    fn encode(&self, mut encoder: MetricEncoder<'_>) -> Result<(), std::fmt::Error> {
        match self.0.get() {
            Some(h) => encoder.encode_histogram::<NoLabelSet>(h.sum, h.count, &h.buckets, None),
            None => Ok(()),
        }
    }

    fn metric_type(&self) -> MetricType {
        Self::TYPE
    }
}

/// `&full`: a series per worker, labelled by account and pid.
fn register_workers(registry: &mut Registry, accounts: &[Value]) {
    let served = Gauges::default();
    let limit = Gauges::default();
    let state = Gauges::default();
    let age = SecondsGauges::default();
    let rss = Gauges::default();
    let mut any_rss = false;
    for (labels, account) in labelled(accounts) {
        for worker in account["workers"].as_array().into_iter().flatten() {
            // A worker still being spawned has no pid yet; account_workers counts it.
            let Some(pid) = worker["pid"].as_i64() else {
                continue;
            };
            let labels = with(&labels, "pid", &pid.to_string());
            if let Some(requests) = worker["requests"].as_i64() {
                served.get_or_create(&labels).set(requests);
            }
            if let Some(max) = worker["max_requests"].as_i64() {
                limit.get_or_create(&labels).set(max);
            }
            let current = worker["state"].as_str().unwrap_or_default();
            for candidate in WORKER_STATES {
                state
                    .get_or_create(&with(&labels, "state", candidate))
                    .set(i64::from(candidate == current));
            }
            if let Some(seconds) = worker["seconds_in_state"].as_f64() {
                age.get_or_create(&labels).set(seconds);
            }
            if let Some(bytes) = worker["rss_bytes"].as_i64() {
                rss.get_or_create(&labels).set(bytes);
                any_rss = true;
            }
        }
    }
    registry.register("worker_requests", "Requests this worker has served", served);
    registry.register(
        "worker_max_requests",
        "Requests after which this worker is recycled",
        limit,
    );
    registry.register(
        "worker_state",
        "The worker's state: 1 for the current one, 0 for the others",
        state,
    );
    registry.register_with_unit(
        "worker_state_age",
        "Seconds in the current state; for a busy worker, the age of its current request",
        Unit::Seconds,
        age,
    );
    if any_rss {
        registry.register_with_unit(
            "worker_rss",
            "Resident memory of the worker",
            Unit::Bytes,
            rss,
        );
    }
}

/// Each account with its `account="NAME"` label.
fn labelled(accounts: &[Value]) -> impl Iterator<Item = (Labels, &Value)> {
    accounts.iter().map(|account| {
        let name = account["account"].as_str().unwrap_or_default().to_owned();
        (vec![("account", name)], account)
    })
}

fn with(labels: &Labels, key: &'static str, value: &str) -> Labels {
    let mut labels = labels.clone();
    labels.push((key, value.to_owned()));
    labels
}

/// The state word of the report's `state` (`failed: REASON` is `failed`).
fn account_state(account: &Value) -> &str {
    let state = account["state"].as_str().unwrap_or("not running");
    state.split(':').next().unwrap_or(state)
}

#[cfg(test)]
mod tests;
