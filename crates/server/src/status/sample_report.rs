//! A hand-built report, shaped as [`super::report`] writes it, for the format tests.

use serde_json::{Value, json};

/// bob runs a pool (one busy worker whose URI needs escaping, one idle, one not yet started),
/// sue is an external app, ann's pool failed with a reason that needs escaping; two account
/// files are refused, one with a reason that needs escaping.
pub(super) fn sample_report() -> Value {
    json!({
        "uptime_seconds": 3725,
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
                "socket": "unix:/run/sue.sock",
            },
            {
                "account": "ann", "requests": 0, "errors": 3,
                "state": "failed: exited with status 1 <before accepting> & \"gave up\"",
                "max_children": 4, "starting": 0, "idle": 0, "busy": 0, "stopping": 0,
                "accepted": 0, "queue": 0, "max_queue": 0, "max_children_reached": 0,
                "failures": 5, "last_spawn_seconds_ago": 9, "last_failure_seconds_ago": 9,
                "last_failure": "exited with status 1",
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
    })
}
