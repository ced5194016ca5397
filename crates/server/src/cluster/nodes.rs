//! This node as `plexer_nodes` records it, and the cluster as `plexer status --cluster` shows
//! it: every node, its accounts and workers, and the nodes not seen lately.

use serde_json::{Value, json};

use super::sync::HEARTBEAT_EVERY;
use super::table::NodeRow;
use crate::live::{Snapshot, Target};

/// The most account names a heartbeat lists as served here; the rest are counted.
const MAX_LISTED: usize = 1000;

/// A node whose heartbeat is older than this many heartbeats is "not seen lately": it is down,
/// cut off, or cannot reach PostgreSQL.
const LATE_AFTER_HEARTBEATS: u32 = 5;

/// What a heartbeat says of this node: its accounts, the workers it runs, and the accounts
/// that have workers here now (with ondemand pools, the accounts the front sends here).
pub fn status_of(snapshot: &Snapshot) -> Value {
    let mut workers = 0;
    let mut serving = Vec::new();
    for (name, running) in &snapshot.running {
        if let Target::Pool(pool) = &running.target {
            let count = pool.worker_count();
            if count > 0 {
                workers += count;
                serving.push(name.as_str());
            }
        }
    }
    serving.sort_unstable();
    let more = serving.len().saturating_sub(MAX_LISTED);
    serving.truncate(MAX_LISTED);
    json!({
        "accounts": snapshot.registry.len(),
        "refused": snapshot.refused.len(),
        "workers": workers,
        "serving": serving,
        "serving_more": more,
        "version": env!("CARGO_PKG_VERSION"),
    })
}

/// The nodes table as `plexer status --cluster` prints it (and `--json` gives it).
pub fn report(nodes: &[NodeRow], this_node: &str) -> Value {
    let late_after = (HEARTBEAT_EVERY * LATE_AFTER_HEARTBEATS).as_secs_f64();
    let nodes: Vec<Value> = nodes
        .iter()
        .map(|node| {
            // A node's status is its own JSON; a row written by hand may hold anything.
            let status: Value = serde_json::from_str(&node.status)
                .unwrap_or_else(|_| json!({ "unreadable": node.status }));
            json!({
                "node": node.name,
                "this": node.name == this_node,
                "listen": node.listen,
                "seen_seconds_ago": (node.seen_seconds_ago * 10.0).round() / 10.0,
                "seen_lately": node.seen_seconds_ago <= late_after,
                "status": status,
            })
        })
        .collect();
    json!({ "late_after_seconds": late_after, "nodes": nodes })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_node_not_seen_for_five_heartbeats_is_late_and_bad_status_is_shown_as_text() {
        let row = |name: &str, ago: f64, status: &str| NodeRow {
            name: name.into(),
            listen: "10.0.0.1:9000".into(),
            status: status.into(),
            seen_seconds_ago: ago,
        };
        let report = report(
            &[
                row("web1", 0.4, r#"{"accounts": 3}"#),
                row("web2", 60.0, "garbage"),
            ],
            "web1",
        );
        let nodes = report["nodes"].as_array().unwrap();
        assert_eq!(nodes[0]["seen_lately"], true);
        assert_eq!(nodes[0]["this"], true);
        assert_eq!(nodes[0]["status"]["accounts"], 3);
        assert_eq!(nodes[1]["seen_lately"], false);
        assert_eq!(nodes[1]["status"]["unreadable"], "garbage");
    }
}
