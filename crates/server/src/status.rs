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
//! Then `slow`: the last slow requests the slowlog recorded, with their workers' stacks
//! ([`crate::slowlog`]; in `?json` and `?html`, and `plexer status --slow`).
//!
//! Formats: text (default), `?json` (the report as it is), `?openmetrics` (OpenMetrics 1.0
//! text for Prometheus, accounts and workers as labels; `status/openmetrics.rs`) and `?html` (a
//! page that refreshes itself; `status/html.rs`). Every format is written from the JSON
//! [`report`] alone, so a field added there reaches all of them.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Instant;

use bytes::Bytes;
use plexer_prefork::pool::{Worker, WorkerState};
use serde_json::{Value, json};

use crate::live::{Snapshot, State, Target};
use crate::registry::RefusedFile;
use crate::responses::plain;
use crate::router::StatusFormat;

mod html;
mod openmetrics;
#[cfg(test)]
mod sample_report;

/// The whole CGI response for the status page.
pub async fn render(
    snapshot: Arc<Snapshot>,
    state: &State,
    format: StatusFormat,
    full: bool,
) -> Bytes {
    let report = report_with_state(snapshot, state, full).await;
    match format {
        StatusFormat::Json => typed("application/json", &report.to_string()),
        StatusFormat::OpenMetrics => typed(
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
            &openmetrics::openmetrics(&report),
        ),
        StatusFormat::Html => typed("text/html; charset=utf-8", &html::html(&report)),
        StatusFormat::Text => plain(200, "OK", &[], &text(&report)),
    }
}

/// A 200 with `body` as `content_type`: the page is a snapshot, never cached.
fn typed(content_type: &str, body: &str) -> Bytes {
    crate::responses::typed(200, "OK", content_type, &[], body)
}

/// [`report`] on a blocking thread when `full`, which reads /proc for every worker: the
/// runtime's one thread relays every request.
pub async fn report_off_thread(snapshot: Arc<Snapshot>, started: Instant, full: bool) -> Value {
    if !full {
        return report(&snapshot, started, false);
    }
    tokio::task::spawn_blocking(move || report(&snapshot, started, true))
        .await
        .expect("the status report does not panic")
}

/// [`report_off_thread`], with what the shared state counts (the authorizer's round trips and
/// cache).
pub async fn report_with_state(snapshot: Arc<Snapshot>, state: &State, full: bool) -> Value {
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
    let slow = state.slowlog.recent();
    let mut report = report_off_thread(snapshot, state.started, full).await;
    if let Some(authorizer) = authorizer {
        merge(&mut report, json!({ "authorizer": authorizer }));
    }
    let slow: Vec<&crate::slowlog::Entry> = slow.iter().map(|entry| &**entry).collect();
    merge(
        &mut report,
        json!({ "slow": serde_json::to_value(slow).unwrap_or_default() }),
    );
    report
}

fn seconds_since(at: Option<Instant>) -> Value {
    at.map_or(Value::Null, |at| json!(at.elapsed().as_secs()))
}

/// The page's data, one object per account.
pub fn report(snapshot: &Snapshot, started: Instant, full: bool) -> Value {
    let mut accounts = Vec::new();
    for account in snapshot.registry.accounts() {
        let running = snapshot.running.get(&account.name);
        let mut entry = json!({
            "account": account.name.as_str(),
            "requests": running.map_or(0, |r| r.counters.requests.load(Ordering::Relaxed)),
            "errors": running.map_or(0, |r| r.counters.errors.load(Ordering::Relaxed)),
            "slow_requests": running.map_or(0, |r| r.counters.slow.load(Ordering::Relaxed)),
            "generation": running.map(|r| r.generation),
        });
        match running.map(|r| &r.target) {
            Some(Target::Pool(pool)) => {
                let status = pool.status();
                let count = |name: &str| {
                    let named = |w: &&Worker| worker_state(w.state) == name;
                    status.workers.iter().filter(named).count()
                };
                let fields = json!({
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
                    "last_failure_seconds_ago": seconds_since(status.stats.last_failure.as_ref().map(|(at, _)| *at)),
                    "last_failure": status.stats.last_failure.as_ref().map(|(_, why)| why.clone()),
                });
                merge(&mut entry, fields);
                if full {
                    let workers: Vec<Value> = status
                        .workers
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
                                "rss_bytes": w.pid.and_then(rss_bytes),
                                "uri": uri,
                                "request_seconds": age.map(|age| age.as_secs_f64()),
                            })
                        })
                        .collect();
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
        if let Some(why) = running.and_then(|r| r.exposed.as_deref()) {
            merge(&mut entry, json!({ "warning": why }));
        }
        accounts.push(entry);
    }
    let refused: Vec<Value> = snapshot
        .refused
        .values()
        .map(RefusedFile::to_json)
        .collect();
    json!({
        "uptime_seconds": started.elapsed().as_secs(),
        "accounts": accounts,
        "refused": refused,
    })
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

/// A process's resident memory, from /proc/PID/statm (in pages).
fn rss_bytes(pid: nix::unistd::Pid) -> Option<u64> {
    let statm = std::fs::read_to_string(format!("/proc/{pid}/statm")).ok()?;
    let pages: u64 = statm.split_whitespace().nth(1)?.parse().ok()?;
    let page = nix::unistd::sysconf(nix::unistd::SysconfVar::PAGE_SIZE)
        .ok()
        .flatten()
        .and_then(|p| u64::try_from(p).ok())
        .unwrap_or(4096);
    Some(pages * page)
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
            if key == "workers" {
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
