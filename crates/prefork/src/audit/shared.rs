//! The pool audit: what the processes of one pool hold in common.
//!
//! Apps that fork by themselves (flup's prefork server, gunicorn with `--preload`) never pass
//! through [`assert_fork_safe`](super::assert_fork_safe); what gives them away afterwards is
//! one connection held by two processes, which can only come from inheritance. So a round
//! lists every descriptor of every process of the pool, keeps what two of them hold, and
//! classifies only that: a pool of eight workers holding a few sockets each costs a few
//! `readlink`s per process and one look at the kernel's socket tables.
//!
//! What is shared, and what it means:
//! - a connection whose far end is a database (declared, identified by the process that
//!   answers, or by its well-known port or socket name): certainly a shared session;
//! - a connection to anything else: still one conversation for two processes, reported with
//!   what is known of the peer;
//! - an SQLite file: one open file description (asked of the kernel with `kcmp(2)`) is one
//!   connection inherited; two descriptions are each process's own, which SQLite handles;
//! - listening sockets (the FastCGI socket on descriptor 0), datagram sockets (syslog), pipes,
//!   other files, and the standard output and error: shared by design, never reported.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt;
use std::os::fd::RawFd;
use std::path::PathBuf;

use nix::unistd::Pid;

use super::classify::{self, Target};
use super::descriptor::{Descriptor, DescriptorKind, Identity};
use super::error::AuditError;
use super::finding::{DbHandle, Named, finding_of};
use super::kcmp::{SameFile, same_open_file};
use super::known::Database;
use super::local_peer::{LocalPeer, PeerFinder};
use super::note::AuditNote;
use super::policy::AuditPolicy;
use super::process_table::ProcessTable;
use super::sock_diag::InetTable;
use super::socket_tables::{Protocol, TableCache};
use super::sqlite::{self, SqlitePart};

/// Something two or more processes of one pool hold, which only inheritance explains.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Shared {
    /// A database handle.
    Database(SharedHandle),
    /// A connection to a peer that is not known to be a database.
    Connection(SharedConnection),
}

impl Shared {
    /// What is shared, the same from one round to the next while it stays shared.
    pub(crate) fn identity(&self) -> Identity {
        match self {
            Shared::Database(handle) => handle.identity,
            Shared::Connection(connection) => connection.identity,
        }
    }

    /// A PostgreSQL connection (`database`) or one to an unknown peer, on socket `inode`.
    #[cfg(test)]
    pub(crate) fn for_test(inode: u64, database: bool, certain: bool) -> Shared {
        let holders = vec![(Pid::from_raw(10), 5), (Pid::from_raw(11), 5)];
        let local = "127.0.0.1:40000".parse().unwrap();
        let peer = "127.0.0.1:5432".parse().unwrap();
        let identity = Identity::Socket(inode);
        if database {
            Shared::Database(SharedHandle {
                handle: DbHandle::Tcp { local, peer },
                database: Database::PostgreSql,
                answered_by: None,
                holders,
                identity,
                certain,
            })
        } else {
            Shared::Connection(SharedConnection {
                kind: DescriptorKind::TcpConnection { local, peer },
                peer: None,
                holders,
                identity,
            })
        }
    }

    /// The distinct pids holding it.
    pub fn pids(&self) -> Vec<Pid> {
        match self {
            Shared::Database(handle) => handle.pids(),
            Shared::Connection(connection) => distinct_pids(&connection.holders),
        }
    }
}

impl fmt::Display for Shared {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Shared::Database(handle) => handle.fmt(f),
            Shared::Connection(connection) => connection.fmt(f),
        }
    }
}

/// One database handle found in two or more processes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SharedHandle {
    handle: DbHandle,
    database: Database,
    answered_by: Option<LocalPeer>,
    holders: Vec<(Pid, RawFd)>,
    identity: Identity,
    certain: bool,
}

impl SharedHandle {
    pub fn handle(&self) -> &DbHandle {
        &self.handle
    }

    pub fn database(&self) -> &Database {
        &self.database
    }

    /// The server process, when the database was recognised by what answers.
    pub fn answered_by(&self) -> Option<&LocalPeer> {
        self.answered_by.as_ref()
    }

    /// The distinct pids holding it, in the order they were given.
    pub fn pids(&self) -> Vec<Pid> {
        distinct_pids(&self.holders)
    }

    /// One socket in several processes is certainly one connection shared; so is one open
    /// SQLite file description. An SQLite file whose descriptions could not be compared
    /// (`kcmp(2)` refused) may be each process's own, and is only possibly shared.
    pub fn is_certainly_shared(&self) -> bool {
        self.certain
    }
}

impl fmt::Display for SharedHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let db = Named(&self.database, self.answered_by.as_ref());
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
                let path = path.display();
                if self.certain {
                    write!(
                        f,
                        "{part} {path} is one open file shared by {pids}: it was opened \
                         before fork, and their locks and writes can corrupt the {what} \
                         (SQLite's how-to-corrupt §2.6); open it after fork"
                    )
                } else {
                    write!(
                        f,
                        "{part} {path} is open in {pids}: safe only if each opened it itself; \
                         if it was opened before fork they share one connection and can \
                         corrupt the {what} (SQLite's how-to-corrupt §2.6); open it after fork"
                    )
                }
            }
        }
    }
}

/// One connection to something not known to be a database, held by two or more processes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SharedConnection {
    kind: DescriptorKind,
    peer: Option<LocalPeer>,
    holders: Vec<(Pid, RawFd)>,
    identity: Identity,
}

impl SharedConnection {
    pub fn kind(&self) -> &DescriptorKind {
        &self.kind
    }

    /// The process answering it, where it is on this host and could be seen.
    pub fn peer(&self) -> Option<&LocalPeer> {
        self.peer.as_ref()
    }
}

impl fmt::Display for SharedConnection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let pids = PidList(distinct_pids(&self.holders));
        write!(f, "{}", self.kind)?;
        if let Some(peer) = &self.peer {
            write!(f, " (answered by {peer})")?;
        }
        write!(
            f,
            " is shared by {pids}: one process can read the other's reply; open connections \
             after fork"
        )
    }
}

fn distinct_pids(holders: &[(Pid, RawFd)]) -> Vec<Pid> {
    let mut pids: Vec<Pid> = Vec::new();
    for (pid, _) in holders {
        if !pids.contains(pid) {
            pids.push(*pid);
        }
    }
    pids
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

/// One look at any number of pools: the process table, the socket tables and the processes
/// answering connections are read once for all of them.
#[derive(Debug)]
pub struct AuditRound {
    processes: ProcessTable,
    tables: TableCache,
    peers: PeerFinder,
    notes: Vec<AuditNote>,
}

impl AuditRound {
    /// Reads the process table now; the rest is read as the pools need it.
    pub fn start() -> Self {
        AuditRound::over(ProcessTable::read())
    }

    fn over(processes: ProcessTable) -> Self {
        AuditRound {
            processes,
            tables: TableCache::default(),
            peers: PeerFinder::default(),
            notes: Vec::new(),
        }
    }

    /// The processes of the pool whose workers are `workers`: the workers and every process
    /// they started, wherever it moved (its own process group, as flup's children do).
    pub fn members(&self, workers: &[Pid]) -> Vec<Pid> {
        self.processes.members(workers)
    }

    /// What the processes of the pool whose workers are `workers` share.
    pub fn audit_pool(
        &mut self,
        workers: &[Pid],
        policy: &AuditPolicy,
    ) -> Result<Vec<Shared>, AuditError> {
        let members = self.members(workers);
        self.shared_among(&members, policy)
    }

    pub(crate) fn note(&mut self, note: AuditNote) {
        self.notes.push(note);
    }

    /// What limited the round's view, once each: falls back the audit took.
    pub fn take_notes(&mut self) -> Vec<AuditNote> {
        let mut notes = std::mem::take(&mut self.notes);
        notes.extend(self.tables.take_notes());
        if self.peers.saw_hidden_processes() {
            notes.push(AuditNote::PeersHidden);
        }
        let mut kinds = HashSet::new();
        notes.retain(|note| kinds.insert(note.kind()));
        notes
    }

    fn shared_among(
        &mut self,
        members: &[Pid],
        policy: &AuditPolicy,
    ) -> Result<Vec<Shared>, AuditError> {
        let held = self.held_twice(members, policy);
        let mut classified: Vec<(Descriptor, Vec<(Pid, RawFd)>)> = Vec::new();
        for (pid, links) in held.first_holders() {
            let target = Target::new(Some(pid));
            let descriptors = match classify::some_descriptors(&target, &links, &mut self.tables) {
                Ok(descriptors) => descriptors,
                Err(e) if e.is_gone_process() => continue,
                Err(e) => return Err(e),
            };
            let link_of: HashMap<RawFd, &str> = links
                .iter()
                .map(|(fd, link)| (*fd, link.as_str()))
                .collect();
            for descriptor in descriptors {
                let link = link_of.get(&descriptor.fd).copied().unwrap_or_default();
                let holders = held.holders_of(pid, descriptor.fd, link);
                classified.push((descriptor, holders));
            }
        }
        // Companion files (`-wal`, `-journal`) are known by their database being open too.
        let databases: HashSet<PathBuf> = classified
            .iter()
            .filter_map(|(d, _)| match &d.kind {
                DescriptorKind::File { path, .. } if sqlite::is_database(path, d.header) => {
                    Some(path.clone())
                }
                _ => None,
            })
            .collect();

        let mut shared = Vec::new();
        for (mut descriptor, holders) in classified {
            if descriptor.is_connection() {
                // Both ends in the pool: a socketpair the app made to talk to itself, unless
                // it goes to a database all the same.
                let far = descriptor.far_end;
                let internal = far.is_some_and(|far| held.sockets.contains(&far.inode));
                if let (Some(far), false) = (far, internal) {
                    descriptor.peer = self.peers.find(far);
                }
                let connection = shared_connection(descriptor, holders, policy, &databases);
                if internal && matches!(connection, Shared::Connection(_)) {
                    continue;
                }
                shared.push(connection);
            } else if let DescriptorKind::File { .. } = descriptor.kind {
                shared.extend(self.shared_file(&descriptor, holders, policy, &databases));
            }
        }
        Ok(shared)
    }

    /// Every socket and file two processes of `members` hold, by what its link says.
    fn held_twice(&mut self, members: &[Pid], policy: &AuditPolicy) -> HeldTwice {
        let mut by_link: BTreeMap<String, Vec<(Pid, RawFd)>> = BTreeMap::new();
        let mut sockets = HashSet::new();
        for &pid in members {
            let target = Target::new(Some(pid));
            let fd_dir = PathBuf::from(format!("/proc/{pid}/fd"));
            let links = match classify::read_links(&target, &fd_dir) {
                Ok(links) => links,
                Err(e) if e.is_gone_process() => continue,
                Err(e) => {
                    self.notes.push(AuditNote::Uninspectable {
                        pid,
                        error: e.to_string(),
                    });
                    continue;
                }
            };
            for (fd, link) in links {
                if let Some(inode) = classify::socket_inode(&link) {
                    sockets.insert(inode);
                }
                // The standard output and error are shared by design, even when they are a
                // socket (systemd's journal stream); fd 0, the FastCGI socket, is a listener.
                let standard = fd == 1 || fd == 2;
                let candidate = link.starts_with("socket:[") || link.starts_with('/');
                if !standard && candidate && !policy.is_allowed(fd) {
                    by_link.entry(link).or_default().push((pid, fd));
                }
            }
        }
        by_link.retain(|link, holders| {
            distinct_pids(holders).len() >= 2 && may_be_a_connection(link, holders[0])
        });
        HeldTwice { by_link, sockets }
    }

    /// An SQLite file open in several processes: shared when one open description is.
    fn shared_file(
        &mut self,
        descriptor: &Descriptor,
        holders: Vec<(Pid, RawFd)>,
        policy: &AuditPolicy,
        databases: &HashSet<PathBuf>,
    ) -> Option<Shared> {
        let finding = finding_of(descriptor, policy, databases)?;
        let (holders, certain) = self.same_description(holders)?;
        Some(Shared::Database(SharedHandle {
            handle: finding.handle,
            database: finding.database,
            answered_by: None,
            holders,
            identity: descriptor.identity?,
            certain,
        }))
    }

    /// The holders that share one open file description, and whether that is known (`kcmp`)
    /// or only not ruled out. `None` when every process opened the file itself.
    fn same_description(
        &mut self,
        holders: Vec<(Pid, RawFd)>,
    ) -> Option<(Vec<(Pid, RawFd)>, bool)> {
        // Sorted into classes of one description each, by comparing with each class's first.
        let mut classes: Vec<(Vec<(Pid, RawFd)>, SameFile)> = Vec::new();
        for holder in holders {
            let mut placed = false;
            for (class, how) in &mut classes {
                let (answer, refused) = same_open_file(class[0], holder);
                if let Some(error) = refused {
                    self.notes.push(AuditNote::KcmpRefused {
                        error: error.to_string(),
                    });
                }
                if answer != SameFile::Different {
                    class.push(holder);
                    *how = answer;
                    placed = true;
                    break;
                }
            }
            if !placed {
                classes.push((vec![holder], SameFile::Different));
            }
        }
        let shared = |(class, _): &(Vec<(Pid, RawFd)>, SameFile)| distinct_pids(class).len() >= 2;
        // A proven class first: it stops the pool where a possible one only warns.
        let mut classes: Vec<_> = classes.into_iter().filter(shared).collect();
        classes.sort_by_key(|(_, how)| *how != SameFile::Same);
        let (class, how) = classes.into_iter().next()?;
        Some((class, how == SameFile::Same))
    }
}

/// A connection held twice: a database handle when the database is known, else a connection.
fn shared_connection(
    descriptor: Descriptor,
    holders: Vec<(Pid, RawFd)>,
    policy: &AuditPolicy,
    databases: &HashSet<PathBuf>,
) -> Shared {
    let identity = descriptor.identity.unwrap_or(Identity::Socket(0));
    match finding_of(&descriptor, policy, databases) {
        Some(finding) => Shared::Database(SharedHandle {
            handle: finding.handle,
            database: finding.database,
            answered_by: finding.answered_by,
            holders,
            identity,
            certain: true,
        }),
        None => Shared::Connection(SharedConnection {
            kind: descriptor.kind,
            peer: descriptor.peer,
            holders,
            identity,
        }),
    }
}

/// Whether a shared link may be a connection or a file, by the socket's protocol: UDP and
/// the rest (netlink, packet) are never findings, and need no socket table read.
fn may_be_a_connection(link: &str, (pid, fd): (Pid, RawFd)) -> bool {
    if classify::socket_inode(link).is_none() {
        return true;
    }
    let fd_path = PathBuf::from(format!("/proc/{pid}/fd/{fd}"));
    matches!(
        Protocol::of(&fd_path),
        Protocol::Unix | Protocol::Inet(InetTable::Tcp4 | InetTable::Tcp6) | Protocol::Unknown
    )
}

/// The links two or more processes hold, and who holds each.
struct HeldTwice {
    /// Every holder of each shared link, the first holder first.
    by_link: BTreeMap<String, Vec<(Pid, RawFd)>>,
    /// Every socket any process of the pool holds, shared or not, by inode.
    sockets: HashSet<u64>,
}

impl HeldTwice {
    /// Each shared link is classified once, in the first process holding it: the links to
    /// classify, by process.
    fn first_holders(&self) -> BTreeMap<Pid, Vec<(RawFd, String)>> {
        let mut by_pid: BTreeMap<Pid, Vec<(RawFd, String)>> = BTreeMap::new();
        for (link, holders) in &self.by_link {
            let (pid, fd) = holders[0];
            by_pid.entry(pid).or_default().push((fd, link.clone()));
        }
        by_pid
    }

    /// Every holder of what descriptor `fd` of `pid` refers to, by its link: one lookup.
    fn holders_of(&self, pid: Pid, fd: RawFd, link: &str) -> Vec<(Pid, RawFd)> {
        self.by_link
            .get(link)
            .filter(|holders| holders[0] == (pid, fd))
            .cloned()
            .unwrap_or_default()
    }
}

/// Audits every pid and returns the database handles two or more of them hold. A pid that has
/// exited is skipped: it holds nothing any more.
pub fn shared_db_handles(
    pids: &[Pid],
    policy: &AuditPolicy,
) -> Result<Vec<SharedHandle>, AuditError> {
    let mut round = AuditRound::over(ProcessTable::default());
    let shared = round.shared_among(pids, policy)?;
    Ok(shared
        .into_iter()
        .filter_map(|shared| match shared {
            Shared::Database(handle) => Some(handle),
            Shared::Connection(_) => None,
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pid(raw: i32) -> Pid {
        Pid::from_raw(raw)
    }

    #[test]
    fn pid_lists_read_as_english() {
        let pids = |raw: &[i32]| PidList(raw.iter().copied().map(Pid::from_raw).collect());
        assert_eq!(pids(&[1201, 1202]).to_string(), "pids 1201 and 1202");
        assert_eq!(pids(&[1, 2, 3]).to_string(), "pids 1, 2 and 3");
    }

    #[test]
    fn shared_tcp_message_names_both_ends_the_server_and_the_remedy() {
        let shared = SharedHandle {
            handle: DbHandle::Tcp {
                local: "127.0.0.1:41234".parse().unwrap(),
                peer: "127.0.0.1:6543".parse().unwrap(),
            },
            database: Database::PostgreSql,
            answered_by: Some(LocalPeer::for_test(
                Some(900),
                Some("postgres"),
                Some("postgres"),
            )),
            holders: vec![(pid(1201), 7), (pid(1202), 7)],
            identity: Identity::Socket(1),
            certain: true,
        };
        assert_eq!(
            shared.to_string(),
            "TCP connection 127.0.0.1:41234 -> 127.0.0.1:6543 (PostgreSQL: postgres, pid 900, \
             user postgres) is shared by pids 1201 and 1202: one process can read the other's \
             reply; open connections after fork"
        );
    }

    #[test]
    fn a_shared_connection_to_an_unknown_peer_says_who_answers() {
        let shared = SharedConnection {
            kind: DescriptorKind::TcpConnection {
                local: "127.0.0.1:41234".parse().unwrap(),
                peer: "127.0.0.1:7000".parse().unwrap(),
            },
            peer: Some(LocalPeer::for_test(Some(77), Some("cached"), Some("app"))),
            holders: vec![(pid(10), 5), (pid(11), 5), (pid(12), 5)],
            identity: Identity::Socket(2),
        };
        assert_eq!(
            shared.to_string(),
            "TCP connection 127.0.0.1:41234 -> 127.0.0.1:7000 (answered by cached, pid 77, \
             user app) is shared by pids 10, 11 and 12: one process can read the other's \
             reply; open connections after fork"
        );
    }

    /// A child inherits descriptor 10 from this process and opens the same file itself on 4:
    /// the inherited pair is one description, the reopened one is the child's own.
    #[test]
    #[allow(unsafe_code)] // the child's pre_exec hook
    fn a_file_open_in_two_processes_is_shared_only_as_one_description() {
        use std::os::fd::AsRawFd;
        use std::os::unix::process::CommandExt;

        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("app.db");
        std::fs::write(&path, b"SQLite format 3\0").unwrap();
        let file = std::fs::File::open(&path).unwrap();
        let inherited = file.as_raw_fd();
        let mut command = std::process::Command::new("sh");
        command
            .arg("-c")
            .arg(format!(
                "exec 4<'{}'; echo ready; exec sleep 30",
                path.display()
            ))
            .stdout(std::process::Stdio::piped());
        // SAFETY: dup2 is async-signal-safe; the hook touches nothing else.
        unsafe {
            command.pre_exec(move || {
                nix::libc::dup2(inherited, 10);
                Ok(())
            });
        }
        let mut child = command.spawn().unwrap();
        let mut ready = [0u8; 6];
        std::io::Read::read_exact(child.stdout.as_mut().unwrap(), &mut ready).unwrap();
        let child_pid = pid(child.id() as i32);
        let me = nix::unistd::getpid();

        let mut round = AuditRound::over(ProcessTable::default());
        let inherited_pair = round.same_description(vec![(me, inherited), (child_pid, 10)]);
        let reopened_pair = round.same_description(vec![(me, inherited), (child_pid, 4)]);
        let kcmp_refused = !round.take_notes().is_empty();
        let _ = child.kill();
        let _ = child.wait();

        let (holders, certain) = inherited_pair.expect("one description in two processes");
        assert_eq!(holders, vec![(me, inherited), (child_pid, 10)]);
        assert_eq!(certain, !kcmp_refused);
        if !kcmp_refused {
            assert_eq!(reopened_pair, None);
        }
    }
}
