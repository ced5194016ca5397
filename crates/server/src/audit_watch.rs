//! The fork-safety audit from outside, for every pool the plexer runs: apps that fork by
//! themselves (flup's prefork server, any language) cannot be audited before their fork, so
//! the plexer looks at each pool's processes — the workers and whatever they forked — and
//! finds one connection held by two of them. A shared database handle stops the account with
//! `audit: strict` until the operator reloads it; everything else is logged once; `off` skips.
//! What is found and when it is acted on is `plexer_prefork::audit`'s [`PoolAuditor`].

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use nix::unistd::Pid;
use plexer_prefork::audit::{
    AuditMode, AuditPolicy, AuditRound, LOOK_EVERY, NoteLog, PoolAuditor, Verdict,
};

use crate::account::AccountName;
use crate::accounts::Manager;
use crate::live::Generation;

/// One generation of one account: a reload starts its audit afresh.
type PoolKey = (AccountName, u64);

/// A pool being looked at this round, with the audit's memory of it.
struct Watched {
    key: PoolKey,
    running: Arc<Generation>,
    workers: Vec<Pid>,
    auditor: PoolAuditor,
    verdicts: Vec<Verdict>,
}

/// Audits every pool until the task is dropped.
pub(crate) async fn run(manager: Arc<Manager>) {
    let mut auditors: HashMap<PoolKey, PoolAuditor> = HashMap::new();
    let mut notes = NoteLog::default();
    loop {
        let mut pools = watched(&manager, &mut auditors);
        if !pools.is_empty() {
            let policy =
                AuditPolicy::new().declaring(&manager.state().snapshot().config.audit_databases);
            // /proc is read off the relay's thread: with many pools a round takes a while.
            let looked = tokio::task::spawn_blocking(move || {
                let mut round = AuditRound::start();
                for pool in &mut pools {
                    pool.verdicts = pool.auditor.look(&mut round, &pool.workers, &policy);
                }
                (pools, round.take_notes())
            })
            .await;
            if let Ok((pools, notes_now)) = looked {
                for note in notes.first_time(notes_now) {
                    tracing::warn!("{note}");
                }
                for pool in pools {
                    act(&manager, &pool).await;
                    auditors.insert(pool.key, pool.auditor);
                }
            }
        }
        tokio::time::sleep(next_look(&auditors)).await;
    }
}

/// The pools to look at now, each with its auditor taken out of `auditors`; the auditors of
/// generations that are gone are dropped.
fn watched(manager: &Manager, auditors: &mut HashMap<PoolKey, PoolAuditor>) -> Vec<Watched> {
    let snapshot = manager.state().snapshot();
    let pools: Vec<Watched> = snapshot
        .running
        .iter()
        .filter(|(_, running)| running.audit != AuditMode::Off)
        .filter_map(|(name, running)| {
            let workers: Vec<Pid> = running
                .pool()?
                .status()
                .workers
                .iter()
                .filter_map(|w| w.pid)
                .collect();
            let key = (name.clone(), running.generation);
            let auditor = auditors
                .remove(&key)
                .unwrap_or_else(|| PoolAuditor::new(running.audit));
            (!workers.is_empty()).then(|| Watched {
                key,
                running: Arc::clone(running),
                workers,
                auditor,
                verdicts: Vec::new(),
            })
        })
        .collect();
    auditors.clear();
    pools
}

async fn act(manager: &Manager, pool: &Watched) {
    let (name, generation) = &pool.key;
    for verdict in &pool.verdicts {
        match verdict {
            Verdict::Stop(finding) => {
                let why = format!("{finding} (audit: strict)");
                manager.stop_for_audit(name, *generation, why).await;
                return;
            }
            Verdict::Warn(finding) => {
                tracing::warn!(account = %name, audit = %pool.running.audit, finding = %finding, "the fork-safety audit: {finding} (audit: {})", pool.running.audit);
            }
        }
    }
}

/// Soon when any pool has something awaiting a second look.
fn next_look(auditors: &HashMap<PoolKey, PoolAuditor>) -> Duration {
    auditors
        .values()
        .map(PoolAuditor::next_look)
        .min()
        .unwrap_or(LOOK_EVERY)
}
