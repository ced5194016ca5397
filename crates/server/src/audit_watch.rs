//! The fork-safety audit from outside, for every pool the plexer runs: apps that fork by
//! themselves (flup's prefork server, any language) cannot be audited before their fork, so
//! the plexer looks at each pool's processes — the workers and whatever they forked — and
//! finds one database connection held by two of them. `audit: strict` stops the account until
//! the operator reloads it, `warn` logs each finding once, `off` skips.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use plexer_prefork::audit::{AuditPolicy, processes_in_groups, shared_db_handles};
use plexer_prefork::supervisor::PoolHandle;

use crate::accounts::Manager;
use crate::config::AuditMode;
use crate::live::Target;

/// How often the pools are looked at: a few /proc reads per process.
const EVERY: Duration = Duration::from_secs(2);

/// Audits every pool until the task is dropped.
pub async fn run(manager: Arc<Manager>) {
    let mut reported = BTreeSet::new();
    let mut tick = tokio::time::interval(EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let snapshot = manager.state().snapshot();
        let policy =
            snapshot
                .config
                .audit_databases
                .iter()
                .fold(AuditPolicy::new(), |policy, &endpoint| {
                    policy.database_endpoint(endpoint, format!("declared database {endpoint}"))
                });
        for (name, running) in &snapshot.running {
            let Target::Pool(pool) = &running.target else {
                continue;
            };
            if running.audit == AuditMode::Off {
                continue;
            }
            let Some(finding) = finding(pool, &policy) else {
                continue;
            };
            match running.audit {
                AuditMode::Strict => {
                    let why = format!("{finding} (audit: strict)");
                    manager.stop_for_audit(name, running.generation, why).await;
                }
                AuditMode::Warn | AuditMode::Off => {
                    if reported.insert(finding.clone()) {
                        tracing::warn!(account = %name, "{finding} (audit: warn)");
                    }
                }
            }
        }
    }
}

/// One database connection shared by the pool's processes, described.
fn finding(pool: &PoolHandle, policy: &AuditPolicy) -> Option<String> {
    let groups: Vec<_> = pool.status().workers.iter().filter_map(|w| w.pid).collect();
    if groups.is_empty() {
        return None;
    }
    let pids = processes_in_groups(&groups);
    match shared_db_handles(&pids, policy) {
        Ok(shared) => shared.first().map(ToString::to_string),
        Err(err) => {
            tracing::debug!(error = %err, "audit skipped this round");
            None
        }
    }
}
