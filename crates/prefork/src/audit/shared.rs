//! The external check: database handles held by several processes at once.
//!
//! Apps that fork by themselves (flup's prefork server, gunicorn with `--preload`) never pass
//! through [`assert_fork_safe`](super::assert_fork_safe); what gives them away afterwards is
//! one socket inode held by two processes, which can only come from inheritance.

use std::collections::HashMap;
use std::fmt;
use std::os::fd::RawFd;

use nix::unistd::Pid;

use super::descriptor::Identity;
use super::error::AuditError;
use super::finding::{DbHandle, Finding};
use super::known::Database;
use super::policy::AuditPolicy;
use super::proc_net::TableCache;
use super::{audit_with, sqlite::SqlitePart};

/// One database handle found in two or more processes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SharedHandle {
    handle: DbHandle,
    database: Database,
    holders: Vec<(Pid, RawFd)>,
}

impl SharedHandle {
    pub fn handle(&self) -> &DbHandle {
        &self.handle
    }

    pub fn database(&self) -> &Database {
        &self.database
    }

    /// The distinct pids holding it, in the order they were given.
    pub fn pids(&self) -> Vec<Pid> {
        let mut pids: Vec<Pid> = Vec::new();
        for (pid, _) in &self.holders {
            if !pids.contains(pid) {
                pids.push(*pid);
            }
        }
        pids
    }

    /// One socket in several processes is certainly one connection shared. One SQLite file
    /// open in several is normal when each opened it, and only the open descriptions (which
    /// `/proc` does not expose) could tell inherited from independent.
    pub fn is_certainly_shared(&self) -> bool {
        !matches!(self.handle, DbHandle::Sqlite { .. })
    }
}

impl fmt::Display for SharedHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let db = &self.database;
        let pids = PidList(self.pids());
        match &self.handle {
            DbHandle::Tcp { local, peer } => write!(
                f,
                "TCP connection {local} -> {peer} ({db}) is shared by {pids}: one process can \
                 read the other's reply; open connections after fork"
            ),
            DbHandle::Unix { name, by_peer } => {
                let preposition = if *by_peer { "to" } else { "on" };
                write!(
                    f,
                    "unix-socket connection {preposition} {name} ({db}) is shared by {pids}: one \
                     process can read the other's reply; open connections after fork"
                )
            }
            DbHandle::Sqlite { path, part } => {
                let what = match part {
                    SqlitePart::Database => "database",
                    _ => "file",
                };
                write!(
                    f,
                    "{part} {} is open in {pids}: safe only if each opened it itself; if it was \
                     opened before fork they share one connection and can corrupt the {what} \
                     (SQLite's how-to-corrupt §2.6); open it after fork",
                    path.display()
                )
            }
        }
    }
}

struct PidList(Vec<Pid>);

impl fmt::Display for PidList {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("pids ")?;
        let n = self.0.len();
        for (i, pid) in self.0.iter().enumerate() {
            match i {
                0 => {}
                _ if i + 1 == n => f.write_str(" and ")?,
                _ => f.write_str(", ")?,
            }
            write!(f, "{pid}")?;
        }
        Ok(())
    }
}

/// Audits every pid and returns the database handles two or more of them hold. A pid that has
/// exited is skipped: it holds nothing any more.
pub fn shared_db_handles(
    pids: &[Pid],
    policy: &AuditPolicy,
) -> Result<Vec<SharedHandle>, AuditError> {
    shared_within(pids, policy, &mut TableCache::default())
}

/// [`shared_db_handles`] for each of several sets of pids (the pools of a plexer), reading
/// each network namespace's socket tables once for all of them.
pub fn shared_db_handles_each(
    sets: &[Vec<Pid>],
    policy: &AuditPolicy,
) -> Vec<Result<Vec<SharedHandle>, AuditError>> {
    let mut tables = TableCache::default();
    sets.iter()
        .map(|pids| shared_within(pids, policy, &mut tables))
        .collect()
}

fn shared_within(
    pids: &[Pid],
    policy: &AuditPolicy,
    tables: &mut TableCache,
) -> Result<Vec<SharedHandle>, AuditError> {
    // Every descriptor is indexed by what it refers to, not only the findings: a process can
    // recognise a database handle that another holder of the same socket cannot (only a
    // socket's own holder learns a unix peer, by getpeername), and the handle is shared all
    // the same.
    let mut holders: HashMap<Identity, Vec<(Pid, RawFd)>> = HashMap::new();
    let mut findings: Vec<(Identity, Finding)> = Vec::new();
    for &pid in pids {
        let report = match audit_with(Some(pid), policy, tables) {
            Ok(report) => report,
            Err(e) if e.is_gone_process() => continue,
            Err(e) => return Err(e),
        };
        for descriptor in report.descriptors() {
            if let Some(identity) = descriptor.identity {
                holders
                    .entry(identity)
                    .or_default()
                    .push((pid, descriptor.fd));
            }
        }
        for finding in report.into_findings() {
            if let Some(identity) = finding.identity
                && !findings.iter().any(|(known, _)| *known == identity)
            {
                findings.push((identity, finding));
            }
        }
    }
    Ok(findings
        .into_iter()
        .filter_map(|(identity, finding)| {
            let shared = SharedHandle {
                handle: finding.handle,
                database: finding.database,
                holders: holders.remove(&identity)?,
            };
            (shared.pids().len() >= 2).then_some(shared)
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pid_lists_read_as_english() {
        let pids = |raw: &[i32]| PidList(raw.iter().copied().map(Pid::from_raw).collect());
        assert_eq!(pids(&[1201, 1202]).to_string(), "pids 1201 and 1202");
        assert_eq!(pids(&[1, 2, 3]).to_string(), "pids 1, 2 and 3");
    }

    #[test]
    fn shared_tcp_message_names_both_ends_and_the_remedy() {
        let shared = SharedHandle {
            handle: DbHandle::Tcp {
                local: "127.0.0.1:41234".parse().unwrap(),
                peer: "127.0.0.1:5432".parse().unwrap(),
            },
            database: Database::PostgreSql,
            holders: vec![(Pid::from_raw(1201), 7), (Pid::from_raw(1202), 7)],
        };
        assert_eq!(
            shared.to_string(),
            "TCP connection 127.0.0.1:41234 -> 127.0.0.1:5432 (PostgreSQL) is shared by pids \
             1201 and 1202: one process can read the other's reply; open connections after fork"
        );
    }
}
