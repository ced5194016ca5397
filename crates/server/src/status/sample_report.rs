//! A hand-built report, shaped as [`super::report`] writes it, for the format tests.

use serde_json::{Value, json};

/// bob runs a pool (one busy worker whose URI needs escaping, one idle, one not yet started),
/// sue is an external app, ann's pool failed with a reason that needs escaping; two account
/// files are refused, one with a reason that needs escaping. bob served requests in the last
/// minute; ann answered errors.
pub(super) fn sample_report() -> Value {
    let buckets = [
        0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
    ];
    let sample = |requests: u32, p50: Option<f64>| {
        json!({ "requests": requests, "errors": 0, "slow": 0, "busy": 1,
                "p50_seconds": p50, "p99_seconds": p50.map(|p| p * 2.0) })
    };
    let history = vec![
        sample(3, Some(0.01)),
        sample(0, None),
        sample(7, Some(0.02)),
    ];
    let bob_metrics = json!({
                "in_flight": 2, "rss_bytes": 3_145_728, "cpu_seconds": 1.25,
        "responses": { "1xx": 0, "2xx": 10, "3xx": 0, "4xx": 0, "5xx": 1 },
        "request_duration": {
            "count": 11, "sum_seconds": 2.75,
            "buckets": [0, 0, 0, 2, 6, 8, 9, 9, 9, 10, 10, 10, 10, 10, 10, 11],
        },
        "queue_wait": {
            "count": 11, "sum_seconds": 0.5,
            "buckets": [9, 9, 9, 9, 9, 9, 9, 9, 10, 11, 11, 11, 11, 11, 11, 11],
        },
        "recent": {
            "requests_per_second": 0.5, "errors_per_second": 0.0, "errors": 0,
            "slow": 1, "p50_seconds": 0.25, "p99_seconds": 0.5,
        },
        "history": history,
    });
    let mut report = json!({
        "uptime_seconds": 3725,
        "sample_interval_seconds": 10.0,
        "histogram_buckets_seconds": buckets,
        "summary": {
            "requests_per_second": 1.5, "errors_per_second": 0.1, "errors": 6, "slow": 1,
            "p50_seconds": 0.01, "p99_seconds": 0.4, "busy": 1, "idle": 1, "queue": 3,
            "in_flight": 2,
        },
        "history": history,
        "accounts": [
            {
                "account": "bob", "requests": 12, "errors": 1, "state": "running",
                "max_children": 2, "starting": 1, "idle": 1, "busy": 1, "stopping": 0,
                "accepted": 11, "queue": 3, "max_queue": 4, "max_children_reached": 2,
                "failures": 0, "slow_requests": 1, "last_spawn_seconds_ago": 5,
                "last_failure_seconds_ago": null, "last_failure": null,
                "workers": [
                    {
                        "pid": 101, "state": "busy", "seconds_in_state": 2.5, "requests": 7,
                        "max_requests": 500, "rss_bytes": 1_048_576,
                        "uri": "/<script>alert('x')</script>?a=1&b=\"2\"",
                    },
                    {
                        "pid": 102, "state": "idle", "seconds_in_state": 0.25, "requests": 4,
                        "max_requests": 500, "rss_bytes": 2_097_152, "uri": null,
                    },
                    {
                        "pid": null, "state": "starting", "seconds_in_state": 0.0,
                        "requests": 0, "max_requests": 500,
                    },
                ],
            },
            {
                "account": "sue", "requests": 5, "errors": 0, "state": "external",
                "socket": "unix:/run/sue.sock", "in_flight": 0,
                "recent": { "requests_per_second": 1.0, "errors": 0 },
            },
            {
                "account": "ann", "requests": 0, "errors": 3,
                "state": "failed: exited with status 1 <before accepting> & \"gave up\"",
                "max_children": 4, "starting": 0, "idle": 0, "busy": 0, "stopping": 0,
                "accepted": 0, "queue": 0, "max_queue": 0, "max_children_reached": 0,
                "failures": 5, "last_spawn_seconds_ago": 9, "last_failure_seconds_ago": 9,
                "last_failure": "exited with status 1",
                "recent": { "requests_per_second": 0.0, "errors_per_second": 0.05, "errors": 3 },
                "workers": [],
            },
        ],
        "refused": [
            {
                "file": "/etc/plexer/accounts.d/eve.yaml", "account": "eve", "line": 2,
                "reason": "/etc/plexer/accounts.d/eve.yaml:2:1: did not find expected ',' or ']'",
            },
            {
                "file": "/etc/plexer/accounts.d/Bad.yaml", "account": null, "line": null,
                "reason": "/etc/plexer/accounts.d/Bad.yaml: the file name is bad account name \"Bad\" <b>",
            },
        ],
    });
    let bob = report["accounts"][0].as_object_mut().expect("bob");
    bob.extend(bob_metrics.as_object().expect("an object").clone());
    report
}
