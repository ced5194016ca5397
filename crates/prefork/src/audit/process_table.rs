//! Which processes belong to a pool: its workers, and everything they started.
//!
//! One pass over `/proc/PID/stat` (proc(5): `pid (comm) state ppid pgrp session …`) gives
//! every process's parent, process group and session. A worker starts its own session, so
//! its children are in it even when they move to process groups of their own, as flup's
//! prefork children do (`os.setpgid(pid, pid)`); and a child that started a session of its
//! own is still found by its parent.
//!
//! `comm` is the process's name as it set it, cut at 15 bytes: it may hold spaces and `)`,
//! and a cut through a multi-byte character leaves bytes that are not UTF-8. So the file is
//! read as bytes, and only what follows the last `)` is read as text.

use std::collections::{HashMap, HashSet};

use nix::unistd::Pid;

/// Every process's parent, process group and session, read at one moment.
#[derive(Debug, Default)]
pub struct ProcessTable {
    processes: Vec<Stat>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Stat {
    pid: Pid,
    parent: Pid,
    group: Pid,
    session: Pid,
}

impl ProcessTable {
    /// Reads `/proc`; a process that exits meanwhile is left out. Without `/proc` the table
    /// is empty, and every pool is its leaders alone.
    pub fn read() -> Self {
        let Ok(entries) = std::fs::read_dir("/proc") else {
            return ProcessTable::default();
        };
        let processes = entries
            .filter_map(|entry| {
                let pid: i32 = entry.ok()?.file_name().to_str()?.parse().ok()?;
                parse_stat(&std::fs::read(format!("/proc/{pid}/stat")).ok()?)
            })
            .collect();
        ProcessTable { processes }
    }

    /// The processes of the pool whose workers are `leaders`: the leaders, the processes in
    /// their sessions or process groups, and every descendant of any of these.
    pub fn members(&self, leaders: &[Pid]) -> Vec<Pid> {
        let leaders: HashSet<Pid> = leaders.iter().copied().collect();
        let mut members: Vec<Pid> = self
            .processes
            .iter()
            .filter(|p| {
                leaders.contains(&p.pid)
                    || leaders.contains(&p.session)
                    || leaders.contains(&p.group)
            })
            .map(|p| p.pid)
            .collect();
        let mut children: HashMap<Pid, Vec<Pid>> = HashMap::new();
        for p in &self.processes {
            children.entry(p.parent).or_default().push(p.pid);
        }
        let mut seen: HashSet<Pid> = members.iter().copied().collect();
        let mut next = 0;
        while next < members.len() {
            for &child in children.get(&members[next]).into_iter().flatten() {
                if seen.insert(child) {
                    members.push(child);
                }
            }
            next += 1;
        }
        // A leader missing from the table (no /proc, or it just started) is still audited.
        for &leader in &leaders {
            if seen.insert(leader) {
                members.push(leader);
            }
        }
        members
    }
}

fn parse_stat(stat: &[u8]) -> Option<Stat> {
    let comm_start = stat.iter().position(|&byte| byte == b'(')?;
    let comm_end = stat.iter().rposition(|&byte| byte == b')')?;
    let pid = std::str::from_utf8(&stat[..comm_start]).ok()?.trim();
    let fields = std::str::from_utf8(&stat[comm_end + 1..]).ok()?;
    let mut fields = fields.split_ascii_whitespace().skip(1); // the state
    let mut next = || -> Option<Pid> { Some(Pid::from_raw(fields.next()?.parse().ok()?)) };
    Some(Stat {
        pid: Pid::from_raw(pid.parse().ok()?),
        parent: next()?,
        group: next()?,
        session: next()?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stat(pid: i32, parent: i32, group: i32, session: i32) -> Stat {
        Stat {
            pid: Pid::from_raw(pid),
            parent: Pid::from_raw(parent),
            group: Pid::from_raw(group),
            session: Pid::from_raw(session),
        }
    }

    #[test]
    fn the_fields_follow_the_last_parenthesis_whatever_the_name_holds() {
        let plain = b"4242 (php-cgi) S 1 4240 4240 0 -1 4194560 120 0 0 0";
        assert_eq!(parse_stat(plain), Some(stat(4242, 1, 4240, 4240)));
        // "worker ) café…" cut at 15 bytes, through the 'é'.
        let cut = b"4243 (worker ) caf\xc3) S 1 4241 4239 0 -1 4194560 120 0 0 0";
        assert_eq!(parse_stat(cut), Some(stat(4243, 1, 4241, 4239)));
        assert_eq!(parse_stat(b"4244 (no end"), None);
    }

    #[test]
    fn a_pool_is_its_workers_their_sessions_groups_and_descendants() {
        let table = ProcessTable {
            processes: vec![
                stat(100, 1, 100, 100),   // the worker, leading its session
                stat(101, 100, 101, 100), // flup's child, in a group of its own
                stat(102, 100, 100, 102), // a child that started its own session
                stat(103, 102, 103, 102), // and its child
                stat(104, 1, 104, 100),   // reparented, still in the worker's session
                stat(200, 1, 200, 200),   // another pool's worker
                stat(201, 200, 200, 200),
            ],
        };
        let mut members = table.members(&[Pid::from_raw(100)]);
        members.sort();
        assert_eq!(
            members,
            [100, 101, 102, 103, 104].map(Pid::from_raw).to_vec()
        );
        assert_eq!(
            ProcessTable::default().members(&[Pid::from_raw(9)]),
            [Pid::from_raw(9)]
        );
    }

    #[test]
    fn this_process_is_read_with_its_own_group_and_session() {
        let me = nix::unistd::getpid();
        let table = ProcessTable::read();
        let mine = table.processes.iter().find(|p| p.pid == me).unwrap();
        assert_eq!(mine.group, nix::unistd::getpgrp());
        assert_eq!(mine.session, nix::unistd::getsid(None).unwrap());
        assert_eq!(mine.parent, nix::unistd::getppid());
    }
}
