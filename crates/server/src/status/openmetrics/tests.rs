use serde_json::json;

use super::openmetrics;
use crate::status::sample_report::sample_report;

#[derive(Debug)]
struct Sample {
    name: String,
    labels: Vec<(String, String)>,
    value: f64,
}

/// Checks `text` line by line against the OpenMetrics 1.0 text format as far as plexer uses it:
/// `# HELP`/`# TYPE`/`# UNIT` lines, samples of the family last declared (a counter's with
/// `_total`, a histogram's with `_bucket`, `_sum` and `_count`), label values with their escapes, numeric values, every name prefixed `plexer_`,
/// and `# EOF` as the last line. Returns the samples.
fn parse(text: &str) -> Result<Vec<Sample>, String> {
    let body = text
        .strip_suffix("# EOF\n")
        .ok_or("the exposition does not end with `# EOF`")?;
    let mut family: Option<(String, String)> = None;
    let mut declared = Vec::new();
    let mut samples = Vec::new();
    for line in body.lines() {
        if let Some(meta) = line.strip_prefix("# ") {
            let (kind, rest) = meta
                .split_once(' ')
                .ok_or(format!("bare comment: {line}"))?;
            let (name, value) = rest.split_once(' ').ok_or(format!("no value: {line}"))?;
            check_name(name)?;
            match kind {
                "HELP" if value.ends_with("..") => {
                    return Err(format!("HELP text ends in two periods: {line}"));
                }
                "HELP" | "UNIT" => {}
                "TYPE" => {
                    let types = [
                        "counter",
                        "gauge",
                        "histogram",
                        "info",
                        "stateset",
                        "unknown",
                    ];
                    if !types.contains(&value) {
                        return Err(format!("unknown type: {line}"));
                    }
                    if declared.contains(&name.to_owned()) {
                        return Err(format!("family declared twice: {line}"));
                    }
                    declared.push(name.to_owned());
                    family = Some((name.to_owned(), value.to_owned()));
                }
                _ => return Err(format!("unknown comment: {line}")),
            }
            continue;
        }
        let sample = parse_sample(line)?;
        let (family, kind) = family
            .as_ref()
            .ok_or(format!("sample before TYPE: {line}"))?;
        let expected = match kind.as_str() {
            "counter" => format!("{family}_total"),
            _ => family.clone(),
        };
        let histogram_part = kind == "histogram"
            && ["_bucket", "_sum", "_count"]
                .iter()
                .any(|suffix| sample.name == format!("{family}{suffix}"));
        if sample.name != expected && !histogram_part {
            return Err(format!("sample outside its family {family}: {line}"));
        }
        samples.push(sample);
    }
    Ok(samples)
}

fn check_name(name: &str) -> Result<(), String> {
    let valid = name
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':');
    if !valid || !name.starts_with("plexer_") {
        return Err(format!("bad metric name {name:?}"));
    }
    Ok(())
}

fn parse_sample(line: &str) -> Result<Sample, String> {
    let bad = || format!("bad sample line: {line}");
    let name_end = line.find(['{', ' ']).ok_or_else(bad)?;
    let name = &line[..name_end];
    check_name(name)?;
    let mut rest = &line[name_end..];
    let mut labels = Vec::new();
    if let Some(inner) = rest.strip_prefix('{') {
        rest = inner;
        while !rest.starts_with('}') {
            let (key, after) = rest.split_once("=\"").ok_or_else(bad)?;
            if key.is_empty() || !key.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
                return Err(bad());
            }
            let mut value = String::new();
            let mut chars = after.char_indices();
            let end = loop {
                match chars.next().ok_or_else(bad)? {
                    (at, '"') => break at,
                    (_, '\\') => match chars.next().ok_or_else(bad)?.1 {
                        'n' => value.push('\n'),
                        c @ ('\\' | '"') => value.push(c),
                        _ => return Err(bad()),
                    },
                    (_, c) => value.push(c),
                }
            };
            labels.push((key.to_owned(), value));
            rest = &after[end + 1..];
            rest = rest.strip_prefix(',').unwrap_or(rest);
        }
        rest = &rest[1..];
    }
    let value = rest
        .strip_prefix(' ')
        .and_then(|v| v.parse().ok())
        .ok_or_else(bad)?;
    Ok(Sample {
        name: name.to_owned(),
        labels,
        value,
    })
}

fn value(samples: &[Sample], name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    samples
        .iter()
        .find(|s| {
            s.name == name
                && s.labels.len() == labels.len()
                && labels
                    .iter()
                    .all(|(k, v)| s.labels.iter().any(|(sk, sv)| sk == k && sv == v))
        })
        .map(|s| s.value)
}

#[test]
fn every_line_parses_and_accounts_are_labels() {
    let text = openmetrics(&sample_report());
    let samples = parse(&text).unwrap_or_else(|why| panic!("{why}\n{text}"));
    let bob = [("account", "bob")];
    assert_eq!(value(&samples, "plexer_uptime_seconds", &[]), Some(3725.0));
    assert_eq!(
        value(&samples, "plexer_account_requests_total", &bob),
        Some(12.0)
    );
    assert_eq!(
        value(&samples, "plexer_account_errors_total", &bob),
        Some(1.0)
    );
    assert_eq!(
        value(&samples, "plexer_account_accepted_total", &bob),
        Some(11.0)
    );
    assert_eq!(
        value(&samples, "plexer_account_slow_requests_total", &bob),
        Some(1.0)
    );
    assert_eq!(
        value(&samples, "plexer_account_max_children_reached_total", &bob),
        Some(2.0)
    );
    assert_eq!(value(&samples, "plexer_account_queue", &bob), Some(3.0));
    assert_eq!(value(&samples, "plexer_account_max_queue", &bob), Some(4.0));
    assert_eq!(
        value(&samples, "plexer_account_max_children", &bob),
        Some(2.0)
    );
    let busy = [("account", "bob"), ("state", "busy")];
    assert_eq!(value(&samples, "plexer_account_workers", &busy), Some(1.0));
    assert_eq!(value(&samples, "plexer_account_up", &bob), Some(1.0));
    let failures = [("account", "ann")];
    assert_eq!(
        value(&samples, "plexer_account_failures_total", &failures),
        Some(5.0)
    );
    assert_eq!(value(&samples, "plexer_account_up", &failures), Some(0.0));
    let failed = [("account", "ann"), ("state", "failed")];
    assert_eq!(value(&samples, "plexer_account_state", &failed), Some(1.0));
    let running = [("account", "ann"), ("state", "running")];
    assert_eq!(value(&samples, "plexer_account_state", &running), Some(0.0));
    // An external app has no pool: it is up, and has no pool samples.
    let sue = [("account", "sue")];
    assert_eq!(value(&samples, "plexer_account_up", &sue), Some(1.0));
    assert_eq!(
        value(&samples, "plexer_account_requests_total", &sue),
        Some(5.0)
    );
    assert_eq!(value(&samples, "plexer_account_queue", &sue), None);
}

#[test]
fn full_adds_a_series_per_worker_with_a_pid() {
    let text = openmetrics(&sample_report());
    let samples = parse(&text).unwrap_or_else(|why| panic!("{why}\n{text}"));
    let worker = [("account", "bob"), ("pid", "101")];
    assert_eq!(
        value(&samples, "plexer_worker_requests", &worker),
        Some(7.0)
    );
    assert_eq!(
        value(&samples, "plexer_worker_max_requests", &worker),
        Some(500.0)
    );
    assert_eq!(
        value(&samples, "plexer_worker_state_age_seconds", &worker),
        Some(2.5)
    );
    assert_eq!(
        value(&samples, "plexer_worker_rss_bytes", &worker),
        Some(1_048_576.0)
    );
    let busy = [("account", "bob"), ("pid", "101"), ("state", "busy")];
    assert_eq!(value(&samples, "plexer_worker_state", &busy), Some(1.0));
    let idle = [("account", "bob"), ("pid", "101"), ("state", "idle")];
    assert_eq!(value(&samples, "plexer_worker_state", &idle), Some(0.0));
    // The worker being spawned has no pid, so no series of its own.
    let per_worker = samples
        .iter()
        .filter(|s| s.name == "plexer_worker_requests")
        .count();
    assert_eq!(per_worker, 2, "{text}");
}

#[test]
fn without_full_or_optional_fields_those_metrics_are_absent() {
    let report = json!({
        "uptime_seconds": 1,
        "accounts": [{ "account": "bob", "requests": 0, "errors": 0, "state": "not running" }],
    });
    let text = openmetrics(&report);
    let samples = parse(&text).unwrap_or_else(|why| panic!("{why}\n{text}"));
    assert!(!text.contains("plexer_worker_"), "{text}");
    assert!(!text.contains("slow_requests"), "{text}");
    let bob = [("account", "bob")];
    assert_eq!(value(&samples, "plexer_account_up", &bob), Some(0.0));
    let state = [("account", "bob"), ("state", "not running")];
    assert_eq!(value(&samples, "plexer_account_state", &state), Some(1.0));
}

#[test]
fn label_values_are_escaped() {
    let report = json!({
        "uptime_seconds": 1,
        "accounts": [{ "account": "a\"b\\c\nd", "requests": 1, "errors": 0, "state": "running" }],
    });
    let text = openmetrics(&report);
    assert!(text.contains(r#"account="a\"b\\c\nd""#), "{text}");
    let samples = parse(&text).unwrap_or_else(|why| panic!("{why}\n{text}"));
    let odd = [("account", "a\"b\\c\nd")];
    assert_eq!(
        value(&samples, "plexer_account_requests_total", &odd),
        Some(1.0)
    );
}

#[test]
fn the_parser_refuses_what_is_not_openmetrics() {
    for broken in [
        "# TYPE plexer_x gauge\nplexer_x 1\n",
        "# TYPE other gauge\nother 1\n# EOF\n",
        "# TYPE plexer_x gauge\nplexer_y 1\n# EOF\n",
        "# TYPE plexer_x gauge\nplexer_x{a=\"1} 1\n# EOF\n",
        "# TYPE plexer_x gauge\nplexer_x one\n# EOF\n",
        "# TYPE plexer_x counter\nplexer_x 1\n# EOF\n",
        "# HELP plexer_x Twice..\n# TYPE plexer_x gauge\nplexer_x 1\n# EOF\n",
    ] {
        assert!(parse(broken).is_err(), "accepted {broken:?}");
    }
}

#[test]
fn refused_account_files_are_a_gauge_zero_when_there_are_none() {
    let samples = parse(&openmetrics(&sample_report())).unwrap();
    assert_eq!(value(&samples, "plexer_accounts_refused", &[]), Some(2.0));
    let none = json!({ "uptime_seconds": 1, "accounts": [], "refused": [] });
    let samples = parse(&openmetrics(&none)).unwrap();
    assert_eq!(value(&samples, "plexer_accounts_refused", &[]), Some(0.0));
}

#[test]
fn histograms_responses_and_usage_per_account() {
    let samples = parse(&openmetrics(&sample_report())).unwrap();
    let bob = |name: &str, extra: &[(&str, &str)]| {
        let mut labels = vec![("account", "bob")];
        labels.extend_from_slice(extra);
        value(&samples, name, &labels)
    };
    let duration = "plexer_request_duration_seconds";
    assert_eq!(bob(&format!("{duration}_count"), &[]), Some(11.0));
    assert_eq!(bob(&format!("{duration}_sum"), &[]), Some(2.75));
    assert_eq!(
        bob(&format!("{duration}_bucket"), &[("le", "0.001")]),
        Some(0.0)
    );
    assert_eq!(
        bob(&format!("{duration}_bucket"), &[("le", "0.025")]),
        Some(6.0)
    );
    assert_eq!(
        bob(&format!("{duration}_bucket"), &[("le", "60.0")]),
        Some(10.0)
    );
    assert_eq!(
        bob(&format!("{duration}_bucket"), &[("le", "+Inf")]),
        Some(11.0)
    );
    let wait = "plexer_request_queue_wait_seconds";
    assert_eq!(bob(&format!("{wait}_bucket"), &[("le", "0.5")]), Some(10.0));
    let responses = "plexer_account_responses_total";
    assert_eq!(bob(responses, &[("class", "2xx")]), Some(10.0));
    assert_eq!(bob(responses, &[("class", "5xx")]), Some(1.0));
    assert_eq!(bob("plexer_account_requests_in_flight", &[]), Some(2.0));
    assert_eq!(bob("plexer_account_rss_bytes", &[]), Some(3_145_728.0));
    assert_eq!(bob("plexer_account_cpu_seconds", &[]), Some(1.25));
    // An account without histograms (sue, in this report) has no series; no URI is a label.
    let sue = [("account", "sue")];
    assert_eq!(value(&samples, &format!("{duration}_count"), &sue), None);
    assert!(
        samples
            .iter()
            .all(|s| s.labels.iter().all(|(k, _)| k != "uri"))
    );
}
