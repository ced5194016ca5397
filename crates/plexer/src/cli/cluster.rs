//! `plexer status --cluster`: every node of the shared registry, one line each.

use std::io::Write;
use std::path::Path;
use std::process::ExitCode;

use anyhow::Context;
use plexer_server::control::client;
use plexer_server::control::protocol::Request;
use serde_json::Value;

pub(crate) fn status(socket: &Path, json: bool) -> anyhow::Result<ExitCode> {
    let response = client::call(socket, &Request::Cluster)?;
    if !response.ok {
        writeln!(std::io::stderr().lock(), "plexer: {}", response.message)?;
        return Ok(ExitCode::FAILURE);
    }
    let data = response.data.context("the cluster answer has no data")?;
    let mut out = std::io::stdout().lock();
    if json {
        writeln!(out, "{}", serde_json::to_string_pretty(&data)?)?;
    } else {
        write!(out, "{}", table(&data))?;
    }
    Ok(ExitCode::SUCCESS)
}

/// One line per node: name (`*` for this one), listen, when seen, accounts, workers, and the
/// accounts with workers there.
fn table(data: &Value) -> String {
    let mut text = format!(
        "{:<20} {:<24} {:>12} {:>9} {:>8}  SERVING\n",
        "NODE", "LISTEN", "SEEN", "ACCOUNTS", "WORKERS"
    );
    let empty = Vec::new();
    for node in data["nodes"].as_array().unwrap_or(&empty) {
        let status = &node["status"];
        let mark = if node["this"] == true { "*" } else { "" };
        let name = format!("{}{mark}", node["node"].as_str().unwrap_or("?"));
        let seen = match node["seen_lately"] == true {
            true => format!("{}s ago", node["seen_seconds_ago"]),
            false => format!(
                "NOT SEEN {}s",
                node["seen_seconds_ago"].as_f64().unwrap_or(0.0).round()
            ),
        };
        let serving: Vec<&str> = status["serving"]
            .as_array()
            .unwrap_or(&empty)
            .iter()
            .filter_map(Value::as_str)
            .collect();
        let more = status["serving_more"].as_u64().unwrap_or(0);
        let mut serving = serving.join(" ");
        if more > 0 {
            serving.push_str(&format!(" (+{more})"));
        }
        // Values as text first: a JSON value ignores width and alignment.
        let (accounts, workers) = (
            status["accounts"].to_string(),
            status["workers"].to_string(),
        );
        text.push_str(&format!(
            "{name:<20} {:<24} {seen:>12} {accounts:>9} {workers:>8}  {serving}\n",
            node["listen"].as_str().unwrap_or(""),
        ));
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_late_node_says_so_and_this_node_is_marked() {
        let data = serde_json::json!({"nodes": [
            {"node": "web1", "this": true, "listen": "10.0.0.2:9000", "seen_seconds_ago": 0.5,
             "seen_lately": true, "status": {"accounts": 100, "workers": 3, "serving": ["a", "b"], "serving_more": 0}},
            {"node": "web2", "this": false, "listen": "10.0.1.2:9000", "seen_seconds_ago": 42.0,
             "seen_lately": false, "status": {"accounts": 100, "workers": 0, "serving": [], "serving_more": 0}},
        ]});
        let text = table(&data);
        assert!(text.contains("web1*"), "{text}");
        assert!(text.contains("a b"), "{text}");
        assert!(text.contains("NOT SEEN 42s"), "{text}");
        // Numbers line up under their headings.
        let heading = text.lines().next().unwrap();
        let line = text.lines().nth(1).unwrap();
        let column_end = heading.find("ACCOUNTS").unwrap() + "ACCOUNTS".len();
        assert_eq!(&line[column_end - 3..column_end], "100", "{text}");
    }
}
