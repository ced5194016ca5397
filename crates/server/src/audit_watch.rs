//! The fork-safety audit from outside, for every pool the plexer runs: apps that fork by
//! themselves (flup's prefork server, any language) cannot be audited before their fork, so
//! the plexer looks at each pool's processes — the workers and whatever they forked — and
//! finds one database connection held by two of them. `audit: strict` stops the account until
//! the operator reloads it, `warn` logs each finding once, `off` skips.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use nix::unistd::Pid;
use plexer_prefork::audit::{AuditPolicy, processes_by_group, shared_db_handles_each};

use crate::account::AccountName;
use crate::accounts::Manager;
use crate::config::AuditMode;
use crate::live::Running;

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
        let policy = AuditPolicy::new().declaring(&snapshot.config.audit_databases);
        // The pools to look at, and their workers (each leads its process group).
        let pools: Vec<_> = snapshot
            .running
            .iter()
            .filter(|(_, running)| running.audit != AuditMode::Off)
            .filter_map(|(name, running)| {
                let groups: Vec<_> = running
                    .pool()?
                    .status()
                    .workers
                    .iter()
                    .filter_map(|w| w.pid)
                    .collect();
                (!groups.is_empty()).then(|| (name.clone(), Arc::clone(running), groups))
            })
            .collect();
        if pools.is_empty() {
            continue;
        }
        // /proc is read off the relay's thread: with many pools a pass takes a while.
        let audited = tokio::task::spawn_blocking(move || findings(pools, &policy)).await;
        for (name, running, finding) in audited.unwrap_or_default() {
            match running.audit {
                AuditMode::Strict => {
                    let why = format!("{finding} (audit: strict)");
                    manager.stop_for_audit(&name, running.generation, why).await;
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

/// The pools whose processes share a database connection, each with its first finding: one
/// pass over /proc for the processes, one read of the socket tables for all pools.
fn findings(
    pools: Vec<(AccountName, Arc<Running>, Vec<Pid>)>,
    policy: &AuditPolicy,
) -> Vec<(AccountName, Arc<Running>, String)> {
    let all: Vec<_> = pools
        .iter()
        .flat_map(|(_, _, g)| g.iter().copied())
        .collect();
    let mut by_group = processes_by_group(&all);
    let sets: Vec<Vec<Pid>> = pools
        .iter()
        .map(|(_, _, groups)| {
            groups
                .iter()
                .flat_map(|g| by_group.remove(g).unwrap_or_default())
                .collect()
        })
        .collect();
    let audited = shared_db_handles_each(&sets, policy);
    pools
        .into_iter()
        .zip(audited)
        .filter_map(|((name, running, _), shared)| match shared {
            Ok(shared) => Some((name, running, shared.first()?.to_string())),
            Err(err) => {
                tracing::debug!(error = %err, "audit skipped this round");
                None
            }
        })
        .collect()
}
