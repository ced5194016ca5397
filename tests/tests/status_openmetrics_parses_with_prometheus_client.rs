//! `?openmetrics` as Prometheus' own Python client parses it
//! (`prometheus_client.openmetrics.parser`, from the test venv): the whole exposition is
//! accepted, and bob's request duration histogram has buckets consistent with the requests
//! sent (three fast, two of 300 ms, one of 1.2 s), as do its responses by class and its queue
//! wait histogram.

use std::collections::HashMap;
use std::process::Command;
use std::time::Duration;

use plexer_tests::django::venv_python;
use plexer_tests::{PlexerRequest, PlexerServe, Scratch, ServeSetup, run};

/// Reads the exposition on stdin and prints each sample as JSON: name, labels, value.
const PARSE: &str = "
import json, sys
from prometheus_client.openmetrics.parser import text_string_to_metric_families
samples = []
for family in text_string_to_metric_families(sys.stdin.read()):
    for s in family.samples:
        samples.append({'name': s.name, 'labels': s.labels, 'value': s.value, 'type': family.type})
print(json.dumps(samples))
";

struct Sample {
    name: String,
    labels: HashMap<String, String>,
    value: f64,
    kind: String,
}

impl Sample {
    fn from_json(sample: &serde_json::Value) -> Self {
        let labels = sample["labels"].as_object().expect("labels");
        Sample {
            name: sample["name"].as_str().expect("a name").to_owned(),
            labels: labels
                .iter()
                .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_owned()))
                .collect(),
            value: sample["value"].as_f64().expect("a value"),
            kind: sample["type"].as_str().unwrap_or_default().to_owned(),
        }
    }
}

fn value(samples: &[Sample], name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    samples
        .iter()
        .find(|s| {
            s.name == name
                && s.labels.len() == labels.len()
                && labels
                    .iter()
                    .all(|(k, v)| s.labels.get(*k).map(String::as_str) == Some(v))
        })
        .map(|s| s.value)
}

#[test]
fn buckets_parsed_by_prometheus_client_match_the_requests_sent() {
    let scratch = Scratch::new();
    let plexer = PlexerServe::start(&scratch, ServeSetup::default());
    let bob = plexer.cookie("bob");
    for uri in [
        "/a",
        "/b",
        "/c",
        "/d?sleep=300",
        "/e?sleep=300",
        "/f?sleep=1200",
    ] {
        plexer.get(Some(&bob), uri);
    }
    let finished = PlexerRequest::new(plexer.addr(), "/plexer-status?openmetrics").run();
    finished.assert_success();
    let body = plexer_tests::CgiResponse::parse(&finished.stdout).body;

    let mut parse = Command::new(venv_python());
    parse.args(["-c", PARSE]);
    let parsed = run(&mut parse, &body, Duration::from_secs(30));
    assert!(
        parsed.code() == Some(0),
        "prometheus_client refused the exposition (or is missing: `make deps` installs \
         tests/requirements.txt): {}\n{}",
        parsed.stderr_text(),
        String::from_utf8_lossy(&body)
    );
    let parsed: serde_json::Value = serde_json::from_slice(&parsed.stdout).expect("the samples");
    let samples: Vec<Sample> = parsed
        .as_array()
        .expect("a list")
        .iter()
        .map(Sample::from_json)
        .collect();
    let bucket = |name: &str, le: &str| {
        value(
            &samples,
            &format!("{name}_bucket"),
            &[("account", "bob"), ("le", le)],
        )
    };
    let duration = "plexer_request_duration_seconds";
    assert!(
        samples
            .iter()
            .any(|s| s.name == format!("{duration}_count") && s.kind == "histogram")
    );
    assert_eq!(
        value(
            &samples,
            &format!("{duration}_count"),
            &[("account", "bob")]
        ),
        Some(6.0)
    );
    // Three fast ones, two within 0.5 s, one within 2.5 s: cumulative, as `le` says.
    assert_eq!(bucket(duration, "0.25"), Some(3.0));
    assert_eq!(bucket(duration, "1.0"), Some(5.0));
    assert_eq!(bucket(duration, "2.5"), Some(6.0));
    assert_eq!(bucket(duration, "+Inf"), Some(6.0));
    let sum = value(&samples, &format!("{duration}_sum"), &[("account", "bob")]).unwrap();
    assert!((1.8..10.0).contains(&sum), "{sum}");
    // sue got nothing: a histogram of zeros, not a missing one.
    let sue = value(
        &samples,
        &format!("{duration}_count"),
        &[("account", "sue")],
    );
    assert_eq!(sue, Some(0.0));
    let responses = |class: &str| {
        value(
            &samples,
            "plexer_account_responses_total",
            &[("account", "bob"), ("class", class)],
        )
    };
    assert_eq!(responses("2xx"), Some(6.0));
    assert_eq!(responses("5xx"), Some(0.0));
    let waited = "plexer_request_queue_wait_seconds";
    assert_eq!(bucket(waited, "+Inf"), Some(6.0));
    assert!(
        value(
            &samples,
            "plexer_account_requests_in_flight",
            &[("account", "bob")]
        ) == Some(0.0)
    );
    assert!(
        value(&samples, "plexer_account_rss_bytes", &[("account", "bob")]).is_some_and(|b| b > 0.0)
    );
    assert!(samples.iter().all(|s| !s.labels.contains_key("uri")));
}
