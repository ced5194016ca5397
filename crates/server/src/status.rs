//! The status page (`status_path`), answered by plexer itself, so it works while every worker
//! of every account is busy (php-fpm's is served by a worker, and counts itself as active).
//!
//! Per account: its state, workers starting/idle/busy, requests routed to it, errors plexer
//! answered for it, slow requests (longer than `request_slowlog_timeout`), the queue now and at
//! most, how often max_children was reached, failures, and seconds since the last spawn and
//! failure; with `full`, every worker: pid, state, for how long, requests served, its limit,
//! its resident memory, and the URI of the request it serves and for how long. Then every
//! account file refused (`refused`: file, account, line, reason): its account does not run, or
//! runs the version of the file before the refused edit.
//!
//! And per account, from its atomics (crate::metrics): the requests in flight, responses by
//! status class, the request duration and queue wait histograms, and from its history the last
//! minute (rate, errors, slow, p50, p99); with `?openmetrics`, `?html` or `&full`, its
//! workers' resident memory and CPU seconds from /proc, read on a blocking thread. At the top:
//! a summary of all accounts and plexer's own last 15 minutes; with `&account=NAME`, that
//! account's too.
//!
//! Then `slow`: the last slow requests the slowlog recorded, with their workers' stacks
//! ([`crate::slowlog`]; in `?json` and `?html`, and `plexer status --slow`).
//!
//! Formats: text (default), `?json` (the report as it is), `?openmetrics` (OpenMetrics 1.0
//! text for Prometheus, accounts and workers as labels; `status/openmetrics.rs`) and `?html` (a
//! dashboard that refreshes itself; `status/html.rs`). Every format is written from the JSON
//! [`report`] alone, so a field added there reaches all of them.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use bytes::Bytes;
use plexer_prefork::pool::{Worker, WorkerState};
use serde_json::{Value, json};

use crate::live::{AccountCounters, Generation, Snapshot, State, Target};
use crate::metrics::histogram::bounds_seconds;
use crate::metrics::{HistogramSnapshot, History, STATUS_CLASSES, Sample};
use crate::registry::RefusedFile;
use crate::responses::plain;
use crate::router::StatusFormat;

mod chart;
mod html;
mod openmetrics;
mod procfs;
#[cfg(test)]
mod sample_report;
pub(crate) mod sampler;
mod view;

/// How much a report holds beyond the counters.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Detail {
    /// Every worker (`&full`).
    pub workers: bool,
    /// Memory and CPU per account, from /proc.
    pub proc: bool,
    /// The histograms and responses by class: for JSON and OpenMetrics; the dashboard shows
    /// percentiles of the history instead, and leaves out 40 numbers per account.
    pub histograms: bool,
    /// The history of this account too (`&account=NAME`).
    pub history_of: Option<String>,
}

impl Detail {
    /// What a format needs: OpenMetrics and the dashboard show memory and CPU, so they read
    /// /proc; the others only with `&full`.
    pub fn of(format: StatusFormat, full: bool, history_of: Option<String>) -> Self {
        let proc = full || matches!(format, StatusFormat::OpenMetrics | StatusFormat::Html);
        let histograms = matches!(format, StatusFormat::Json | StatusFormat::OpenMetrics);
        Detail {
            workers: full,
            proc,
            histograms,
            history_of,
        }
    }
}

/// The whole CGI response for the status page.
pub async fn render(
    snapshot: Arc<Snapshot>,
    state: &State,
    format: StatusFormat,
    full: bool,
    query: &str,
) -> Bytes {
    let view = view::View::parse(query);
    if format == StatusFormat::Html && view.account.is_none() {
        let since = state.since();
        let (mut report, rows) = tokio::task::spawn_blocking(move || dashboard(&snapshot, &since))
            .await
            .expect("the dashboard does not panic");
        merge(&mut report, json!({ "slow": slow_entries(state) }));
        return typed(
            "text/html; charset=utf-8",
            &html::html(&report, Some(&rows), &view),
        );
    }
    let detail = Detail::of(format, full, view.account.clone());
    let report = report_with_state(snapshot, state, detail).await;
    match format {
        StatusFormat::Json => typed("application/json", &report.to_string()),
        StatusFormat::OpenMetrics => typed(
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
            &openmetrics::openmetrics(&report),
        ),
        StatusFormat::Html => typed(
            "text/html; charset=utf-8",
            &html::html(&report, None, &view),
        ),
        StatusFormat::Text => plain(200, "OK", &[], &text(&report)),
    }
}

/// A 200 with `body` as `content_type`: the page is a snapshot, never cached.
fn typed(content_type: &str, body: &str) -> Bytes {
    crate::responses::typed(200, "OK", content_type, &[], body)
}

/// What a report is made of besides the snapshot: when plexer started, and its history.
#[derive(Clone)]
pub struct Since {
    pub started: Instant,
    pub history: History,
}

/// [`report`] on a blocking thread when it reads /proc: the runtime's one thread relays
/// every request, and 10,000 accounts' workers take a while to read.
pub async fn report_off_thread(snapshot: Arc<Snapshot>, since: Since, detail: Detail) -> Value {
    if !detail.proc {
        return report(&snapshot, &since, &detail);
    }
    tokio::task::spawn_blocking(move || report(&snapshot, &since, &detail))
        .await
        .expect("the status report does not panic")
}

/// [`report_off_thread`], with what the shared state counts (the authorizer's round trips and
/// cache).
pub async fn report_with_state(snapshot: Arc<Snapshot>, state: &State, detail: Detail) -> Value {
    let authorizer = snapshot.config.authorizer.is_some().then(|| {
        let stats = &state.authorizer;
        let cache = stats.current_cache();
        json!({
            "asked": stats.asked.load(Ordering::Relaxed),
            "failures": stats.failures.load(Ordering::Relaxed),
            "cache_hits": cache.as_ref().map_or(0, |c| c.hits.load(Ordering::Relaxed)),
            "cache_misses": cache.as_ref().map_or(0, |c| c.misses.load(Ordering::Relaxed)),
            "cache_entries": cache.as_ref().map_or(0, |c| c.len()),
        })
    });
    let slow = slow_entries(state);
    let since = state.since();
    let mut report = report_off_thread(snapshot, since, detail).await;
    if let Some(authorizer) = authorizer {
        merge(&mut report, json!({ "authorizer": authorizer }));
    }
    merge(&mut report, json!({ "slow": slow }));
    report
}

/// The last slow requests the slowlog recorded, as the page shows them.
fn slow_entries(state: &State) -> Value {
    let recent = state.slowlog.recent();
    let entries: Vec<&crate::slowlog::Entry> = recent.iter().map(|entry| &**entry).collect();
    serde_json::to_value(entries).unwrap_or_default()
}

impl State {
    fn since(&self) -> Since {
        let history = self.history.lock().unwrap_or_else(|e| e.into_inner());
        Since {
            started: self.started,
            history: history.clone(),
        }
    }
}

/// The dashboard's data: the report without its accounts, which are rows read straight from
/// the counters instead, with no JSON between: 10,000 accounts are 10,000 small structs.
fn dashboard(snapshot: &Snapshot, since: &Since) -> (Value, Vec<view::Row>) {
    let interval = snapshot.config.status_sample_interval.0;
    let window = sampler::window(interval);
    let rows: Vec<view::Row> = snapshot
        .registry
        .accounts()
        .map(|account| {
            let running = snapshot.running.get(&account.name);
            row(account.name.as_str(), running, window, interval)
        })
        .collect();
    let sum = |pick: fn(&view::Row) -> u64| rows.iter().map(pick).sum::<u64>();
    let mut summary = recent_json(&since.history, window, interval);
    merge(
        &mut summary,
        json!({
            "busy": sum(|r| r.busy),
            "idle": sum(|r| r.idle),
            "queue": sum(|r| r.queue),
            "in_flight": sum(|r| r.in_flight),
        }),
    );
    let refused: Vec<Value> = snapshot
        .refused
        .values()
        .map(RefusedFile::to_json)
        .collect();
    let report = json!({
        "uptime_seconds": since.started.elapsed().as_secs(),
        "sample_interval_seconds": interval.as_secs_f64(),
        "summary": summary,
        "history": history_json(&since.history),
        "refused": refused,
    });
    (report, rows)
}

/// One account's row, as [`view::Row::from_report`] reads it from the report.
fn row(
    name: &str,
    running: Option<&Arc<Generation>>,
    window: usize,
    interval: Duration,
) -> view::Row {
    let mut row = view::Row {
        account: name.to_owned(),
        state: "not running".to_owned(),
        ..view::Row::default()
    };
    let Some(running) = running else {
        return row;
    };
    let counters = &running.counters;
    row.errors = counters.errors.load(Ordering::Relaxed);
    row.in_flight = counters.in_flight.now();
    let recent = recent_json(&counters.history().history, window, interval);
    row.rate = recent["requests_per_second"].as_f64().unwrap_or(0.0);
    row.errors_recent = recent["errors"].as_u64().unwrap_or(0);
    row.p50_seconds = recent["p50_seconds"].as_f64();
    row.p99_seconds = recent["p99_seconds"].as_f64();
    match &running.target {
        Target::Pool(pool) => {
            let status = pool.status();
            let count = |state| status.workers.iter().filter(|w| w.state == state).count();
            row.state = crate::live::pool_state(&status.state);
            row.busy = count(WorkerState::Busy) as u64;
            row.idle = count(WorkerState::Idle) as u64;
            row.max_children = Some(status.settings.max_children as u64);
            row.queue = status.queue_len as u64;
            row.rss_bytes = procfs::account_usage(&status.workers)["rss_bytes"].as_u64();
        }
        Target::External(_) => row.state = "external".to_owned(),
        Target::Stopped { why } => row.state = format!("stopped: {why}"),
    }
    row
}

fn seconds_since(at: Option<Instant>) -> Value {
    at.map_or(Value::Null, |at| json!(at.elapsed().as_secs()))
}

/// The page's data: a summary, plexer's history, one object per account, the refused files.
pub fn report(snapshot: &Snapshot, since: &Since, detail: &Detail) -> Value {
    let interval = snapshot.config.status_sample_interval.0;
    let window = sampler::window(interval);
    let accounts: Vec<Value> = snapshot
        .registry
        .accounts()
        .map(|account| {
            let running = snapshot.running.get(&account.name);
            account_entry(account.name.as_str(), running, detail, interval)
        })
        .collect();
    let refused: Vec<Value> = snapshot
        .refused
        .values()
        .map(RefusedFile::to_json)
        .collect();
    json!({
        "uptime_seconds": since.started.elapsed().as_secs(),
        "sample_interval_seconds": interval.as_secs_f64(),
        "histogram_buckets_seconds": bounds_seconds().collect::<Vec<_>>(),
        "summary": summary(&accounts, &since.history, window, interval),
        "history": history_json(&since.history),
        "accounts": accounts,
        "refused": refused,
    })
}

/// One account: its counters, its pool or app, its last minute, and what `detail` adds.
fn account_entry(
    name: &str,
    running: Option<&Arc<Generation>>,
    detail: &Detail,
    interval: Duration,
) -> Value {
    let counter = |pick: fn(&AccountCounters) -> u64| running.map_or(0, |r| pick(&r.counters));
    let mut entry = json!({
        "account": name,
        "requests": counter(|c| c.requests.load(Ordering::Relaxed)),
        "errors": counter(|c| c.errors.load(Ordering::Relaxed)),
        "slow_requests": counter(|c| c.slow.load(Ordering::Relaxed)),
        "in_flight": counter(|c| c.in_flight.now()),
        "generation": running.map(|r| r.generation),
    });
    match running.map(|r| &r.target) {
        Some(Target::Pool(pool)) => {
            let status = pool.status();
            merge(&mut entry, pool_fields(&status));
            if detail.proc {
                merge(&mut entry, procfs::account_usage(&status.workers));
            }
            if detail.workers {
                let workers = workers_json(&status.workers, running);
                merge(&mut entry, json!({ "workers": workers }));
            }
        }
        Some(Target::External(external)) => {
            merge(
                &mut entry,
                json!({ "state": "external", "socket": external.address.to_string() }),
            );
        }
        Some(Target::Stopped { why }) => {
            merge(&mut entry, json!({ "state": format!("stopped: {why}") }));
        }
        None => merge(&mut entry, json!({ "state": "not running" })),
    }
    if let Some(running) = running {
        let counters = &running.counters;
        merge(&mut entry, metrics_json(counters, interval, detail, name));
    }
    if let Some(why) = running.and_then(|r| r.exposed.as_deref()) {
        merge(&mut entry, json!({ "warning": why }));
    }
    entry
}

/// A pool's state and counts.
fn pool_fields(status: &plexer_prefork::supervisor::PoolStatus) -> Value {
    let count = |name: &str| {
        let named = |w: &&Worker| worker_state(w.state) == name;
        status.workers.iter().filter(named).count()
    };
    let last_failure = status.stats.last_failure.as_ref();
    json!({
        "state": crate::live::pool_state(&status.state),
        "max_children": status.settings.max_children,
        "starting": count("starting"),
        "idle": count("idle"),
        "busy": count("busy"),
        "stopping": count("stopping"),
        "accepted": status.stats.accepted,
        "queue": status.queue_len,
        "max_queue": status.stats.max_queue,
        "max_children_reached": status.stats.max_children_reached,
        "failures": status.stats.failures,
        "last_spawn_seconds_ago": seconds_since(status.stats.last_spawn),
        "last_failure_seconds_ago": seconds_since(last_failure.map(|(at, _)| *at)),
        "last_failure": last_failure.map(|(_, why)| why.clone()),
    })
}

/// `&full`: every worker, with the request it serves.
fn workers_json(workers: &[Worker], running: Option<&Arc<Generation>>) -> Vec<Value> {
    workers
        .iter()
        .map(|w| {
            let pid = w.pid.map(|p| p.as_raw());
            let current = pid.and_then(|pid| running?.in_flight.current(pid));
            let (uri, age) = current.unzip();
            json!({
                "pid": pid,
                "state": worker_state(w.state),
                "seconds_in_state": w.since.elapsed().as_secs_f64(),
                "requests": w.served,
                "max_requests": w.limit,
                "rss_bytes": w.pid.and_then(procfs::rss_bytes),
                "cpu_seconds": w.pid.and_then(procfs::cpu_seconds),
                "uri": uri,
                "request_seconds": age.map(|age| age.as_secs_f64()),
            })
        })
        .collect()
}

/// An account's last minute, and as `detail` asks its responses and histograms, and its
/// history.
fn metrics_json(
    counters: &AccountCounters,
    interval: Duration,
    detail: &Detail,
    name: &str,
) -> Value {
    let tracker = counters.history();
    let window = sampler::window(interval);
    let mut fields = json!({ "recent": recent_json(&tracker.history, window, interval) });
    if detail.histograms || detail.history_of.as_deref() == Some(name) {
        let classes = counters.responses.read();
        let responses: serde_json::Map<String, Value> = STATUS_CLASSES
            .iter()
            .zip(classes)
            .map(|(class, n)| ((*class).to_owned(), json!(n)))
            .collect();
        merge(
            &mut fields,
            json!({
                "responses": responses,
                "request_duration": histogram_json(&counters.duration.snapshot()),
                "queue_wait": histogram_json(&counters.queue_wait.snapshot()),
            }),
        );
    }
    if detail.history_of.as_deref() == Some(name) {
        merge(
            &mut fields,
            json!({ "history": history_json(&tracker.history) }),
        );
    }
    fields
}

/// Cumulative counts per bucket (the bounds are the report's `histogram_buckets_seconds`,
/// then +Inf), their count and sum.
fn histogram_json(histogram: &HistogramSnapshot) -> Value {
    json!({
        "count": histogram.count(),
        "sum_seconds": histogram.sum_seconds(),
        "buckets": histogram.cumulative(),
    })
}

/// The last minute of a history: rates over the samples it holds, percentiles of the last
/// whole minute.
fn recent_json(history: &History, window: usize, interval: Duration) -> Value {
    let recent = history.recent(window);
    let seconds = (recent.samples as f64 * interval.as_secs_f64()).max(f64::MIN_POSITIVE);
    let rate = |n: u64| {
        if recent.samples == 0 {
            0.0
        } else {
            n as f64 / seconds
        }
    };
    let (p50, p99) = history.window_quantiles();
    json!({
        "requests_per_second": rate(recent.requests),
        "errors_per_second": rate(recent.errors),
        "errors": recent.errors,
        "slow": recent.slow,
        "p50_seconds": p50.map(|m| f64::from(m.get()) / 1e6),
        "p99_seconds": p99.map(|m| f64::from(m.get()) / 1e6),
    })
}

/// The samples, oldest first, as the charts draw them.
fn history_json(history: &History) -> Value {
    let seconds = |m: Option<std::num::NonZeroU32>| m.map(|m| f64::from(m.get()) / 1e6);
    let samples: Vec<Value> = history
        .samples()
        .map(|s: &Sample| {
            json!({
                "requests": s.requests, "errors": s.errors, "slow": s.slow, "busy": s.busy,
                "p50_seconds": seconds(s.p50_micros), "p99_seconds": seconds(s.p99_micros),
            })
        })
        .collect();
    Value::Array(samples)
}

/// All accounts at a glance: rates and percentiles from plexer's history, workers and queue
/// summed from the accounts.
fn summary(accounts: &[Value], history: &History, window: usize, interval: Duration) -> Value {
    let sum = |key: &str| accounts.iter().filter_map(|a| a[key].as_u64()).sum::<u64>();
    let mut summary = recent_json(history, window, interval);
    merge(
        &mut summary,
        json!({
            "busy": sum("busy"),
            "idle": sum("idle"),
            "queue": sum("queue"),
            "in_flight": sum("in_flight"),
        }),
    );
    summary
}

/// A worker's state as the page names it (and OpenMetrics' `WORKER_STATES`).
pub fn worker_state(state: WorkerState) -> &'static str {
    match state {
        WorkerState::Starting => "starting",
        WorkerState::Idle => "idle",
        WorkerState::Busy => "busy",
        // Asked or killed: the page counts both as on their way out.
        WorkerState::Stopping | WorkerState::Killed => "stopping",
    }
}

fn merge(into: &mut Value, from: Value) {
    if let (Value::Object(into), Value::Object(from)) = (into, from) {
        into.extend(from);
    }
}

/// One `key: value` line per field, a blank line between accounts, workers indented.
pub fn text(report: &Value) -> String {
    let mut out = format!("uptime: {}s\n", report["uptime_seconds"]);
    for account in report["accounts"].as_array().into_iter().flatten() {
        out.push('\n');
        let Value::Object(fields) = account else {
            continue;
        };
        for (key, value) in fields {
            // Workers follow; histograms and the history are for JSON and the dashboard.
            if matches!(value, Value::Object(_) | Value::Array(_)) {
                continue;
            }
            let shown = match value {
                Value::String(s) => s.clone(),
                Value::Null => "-".into(),
                other => other.to_string(),
            };
            out.push_str(&format!("{}: {shown}\n", key.replace('_', " ")));
        }
        for worker in fields
            .get("workers")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            out.push_str(&format!(
                "  worker pid {} {} for {:.1}s, {} requests (limit {})",
                worker["pid"],
                worker["state"].as_str().unwrap_or("-"),
                worker["seconds_in_state"].as_f64().unwrap_or(0.0),
                worker["requests"],
                worker["max_requests"]
            ));
            if let Some(uri) = worker["uri"].as_str() {
                let seconds = worker["request_seconds"].as_f64().unwrap_or(0.0);
                out.push_str(&format!(": {} for {seconds:.1}s", uri.escape_debug()));
            }
            out.push('\n');
        }
    }
    for refused in report["refused"].as_array().into_iter().flatten() {
        out.push_str(&format!(
            "\nrefused: {}\n",
            refused["reason"].as_str().unwrap_or("-")
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_text_page_ends_with_each_refused_file_and_its_reason() {
        let page = text(&sample_report::sample_report());
        assert!(
            page.ends_with(
                "\nrefused: /etc/plexer/accounts.d/eve.yaml:2:1: did not find expected ',' or \
                 ']'\n\nrefused: /etc/plexer/accounts.d/Bad.yaml: the file name is bad account \
                 name \"Bad\" <b>\n"
            ),
            "{page}"
        );
    }
}
