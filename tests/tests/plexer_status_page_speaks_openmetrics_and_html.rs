//! `plexer serve` answers `?openmetrics` and `?html` on its status page itself, with the right
//! Content-Type, while every worker of an account is busy and a request waits in its queue;
//! with `&full` each busy worker shows the URI it serves and for how long, and a request longer
//! than `request_slowlog_timeout` is counted as slow (the time it waited in the queue is not).

use std::time::Duration;

use plexer_tests::log_events::{Event, events};
use plexer_tests::{CgiResponse, PlexerRequest, PlexerServe, Scratch, ServeSetup};

/// bob has one worker, and lets a request wait long enough to be seen in the queue.
const ACCOUNTS: &[(&str, &str)] = &[
    ("login", "{}"),
    (
        "bob",
        "users: [bob]\nmax_children: 1\nqueue_timeout: 20s\nrequest_slowlog_timeout: 1s",
    ),
    ("sue", "users: [sue]"),
];

fn status(plexer: &PlexerServe, query: &str) -> CgiResponse {
    let finished = PlexerRequest::new(plexer.addr(), &format!("/plexer-status?{query}")).run();
    finished.assert_success();
    CgiResponse::parse(&finished.stdout)
}

/// Polls `?openmetrics&full` until its text contains `line`; bounded.
fn wait_for_metric(plexer: &PlexerServe, line: &str) -> String {
    let mut last = String::new();
    for _ in 0..200 {
        last = String::from_utf8_lossy(&status(plexer, "openmetrics&full").body).into_owned();
        if last.lines().any(|l| l == line) {
            return last;
        }
        std::thread::sleep(Duration::from_millis(25));
    }
    panic!("no {line:?} in the status page:\n{last}\n{}", plexer.log());
}

#[test]
fn openmetrics_and_html_while_every_worker_of_an_account_is_busy() {
    let scratch = Scratch::new();
    let plexer = PlexerServe::start(
        &scratch,
        ServeSetup {
            accounts: ACCOUNTS,
            args: &["--log-format", "json"],
            ..ServeSetup::default()
        },
    );
    let bob = plexer.cookie("bob");
    let request = |uri: &str| {
        let request = PlexerRequest::new(plexer.addr(), uri).cookie(&bob);
        std::thread::spawn(move || request.run())
    };
    let slow = request("/slow?sleep=2000");
    wait_for_metric(
        &plexer,
        r#"plexer_account_workers{account="bob",state="busy"} 1"#,
    );
    let queued = request("/queued");
    let metrics = wait_for_metric(&plexer, r#"plexer_account_queue{account="bob"} 1"#);

    let response = status(&plexer, "openmetrics&full");
    assert_eq!(
        response.header("Content-Type"),
        Some("application/openmetrics-text; version=1.0.0; charset=utf-8")
    );
    assert!(metrics.ends_with("\n# EOF\n"), "{metrics}");
    for line in [
        r#"plexer_account_max_children{account="bob"} 1"#,
        r#"plexer_account_workers{account="bob",state="idle"} 0"#,
        r#"plexer_account_up{account="bob"} 1"#,
        r#"plexer_account_state{account="bob",state="running"} 1"#,
        "# TYPE plexer_uptime_seconds gauge",
    ] {
        assert!(
            metrics.lines().any(|l| l == line),
            "no {line:?} in\n{metrics}"
        );
    }
    let busy_worker = metrics.lines().find(|l| {
        l.starts_with(r#"plexer_worker_state{account="bob",pid=""#)
            && l.contains(r#"state="busy"} 1"#)
    });
    assert!(busy_worker.is_some(), "no busy worker series in\n{metrics}");
    assert!(
        metrics
            .lines()
            .all(|l| l.starts_with("# ") || l.starts_with("plexer_")),
        "{metrics}"
    );

    // The busy worker's request, in every format.
    let json: serde_json::Value =
        serde_json::from_slice(&status(&plexer, "json&full").body).expect("the status page's json");
    let bob_json = &json["accounts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["account"] == "bob")
        .unwrap()["workers"][0];
    // The path only: a query string may carry what a tenant would not show the operator.
    assert_eq!(bob_json["uri"], "/slow", "{json}");
    let age = bob_json["request_seconds"].as_f64().unwrap();
    assert!((0.0..3.0).contains(&age), "{json}");
    let text = String::from_utf8_lossy(&status(&plexer, "full").body).into_owned();
    assert!(text.contains(": /slow for "), "{text}");
    assert!(!text.contains("sleep=2000"), "{text}");

    let page = status(&plexer, "html");
    assert_eq!(
        page.header("Content-Type"),
        Some("text/html; charset=utf-8")
    );
    let html = String::from_utf8_lossy(&page.body);
    assert!(html.starts_with("<!DOCTYPE html>"), "{html}");
    assert!(
        html.contains(r#"<noscript><meta http-equiv="refresh" content="5"></noscript>"#),
        "{html}"
    );
    for name in ["login", "bob", "sue"] {
        assert!(
            html.contains(&format!("<tr data-account=\"{name}\">")),
            "{html}"
        );
    }
    // bob's one worker is busy, and one request waits in its queue.
    assert!(html.contains(r#"<b>1</b> busy"#), "{html}");
    assert!(html.contains(r#"<b>1</b> queued"#), "{html}");
    // bob's own page, with every worker.
    let page = status(&plexer, "html&full&account=bob");
    let html = String::from_utf8_lossy(&page.body);
    assert!(
        html.contains(r#"<tr><th>queue</th><td class="num">1</td></tr>"#),
        "{html}"
    );
    assert!(html.contains(r#"<th>pid</th><th>state</th>"#), "{html}");
    assert!(html.contains(r#"<td class="ok">busy</td>"#), "{html}");
    assert!(html.contains("<td>/slow</td>"), "{html}");
    assert!(!html.contains("sleep=2000"), "{html}");

    // Both of bob's requests are then served by the one worker.
    slow.join().unwrap().assert_success();
    let queued = queued.join().unwrap();
    queued.assert_success();
    assert!(
        CgiResponse::parse(&queued.stdout)
            .status()
            .is_none_or(|s| s.starts_with("200"))
    );
    // The 2 s request was slow; the one that waited 2 s for the worker and then took none
    // was not.
    let metrics = wait_for_metric(
        &plexer,
        r#"plexer_account_slow_requests_total{account="bob"} 1"#,
    );
    assert!(
        metrics
            .lines()
            .any(|l| l == r#"plexer_account_slow_requests_total{account="sue"} 0"#),
        "{metrics}"
    );
    let log = plexer.log();
    let slow: Vec<Event> = events(&log)
        .into_iter()
        .filter(|e| e.target() == "plexer::slow")
        .collect();
    assert_eq!(slow.len(), 1, "{log}");
    // Logged as it passed the threshold, with the path only (the slowlog never records a
    // query string).
    assert!(
        slow[0].has("uri", "/slow") && slow[0].has("account", "bob"),
        "{log}"
    );
}
