//! The sockets an audit looks at, by inode: `/proc/PID/fd/N` only says `socket:[INODE]`, and
//! this is where an inode gets its protocol, its state, its addresses and the socket at its
//! other end.
//!
//! Asked of the kernel for just the inodes needed: the socket's protocol from its
//! `system.sockprotoname` attribute, a unix socket (and its peer) by inode from unix_diag, and
//! only the TCP or UDP tables of the families the sockets are in ([`super::sock_diag`]). Where
//! netlink is refused, or the process lives in another network namespace, the `/proc/PID/net`
//! tables are read instead ([`super::proc_net`]), and a unix client's peer stays unknown.
//!
//! One [`TableCache`] serves one round of audits: the processes of a pool share their network
//! namespace, so what was asked for one is reused for the next, and asked again only for an
//! inode not seen yet.

use std::collections::{HashMap, HashSet};
use std::io;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use super::error::AuditError;
use super::note::AuditNote;
use super::proc_net::{InetEntry, ProcTables, TCP_LISTEN, UnixEntry};
use super::sock_diag::{InetTable, SockDiag};

/// What `system.sockprotoname` says a socket is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Protocol {
    Unix,
    Inet(InetTable),
    /// Netlink, packet, raw, SCTP, …: nothing the audit looks into.
    Other(String),
    /// The attribute could not be read: any table may hold it.
    Unknown,
}

impl Protocol {
    /// Reads the attribute through `/proc/PID/fd/N`, which reaches the socket itself.
    pub(crate) fn of(fd_path: &Path) -> Protocol {
        let mut name = [0u8; 32];
        let Ok(len) = rustix::fs::getxattr(fd_path, "system.sockprotoname", &mut name[..]) else {
            return Protocol::Unknown;
        };
        let name = &name[..len];
        let name = name.strip_suffix(b"\0").unwrap_or(name);
        match name {
            // Linux 6.x names the stream flavour apart; older kernels call every unix socket UNIX.
            b"UNIX" | b"UNIX-STREAM" => Protocol::Unix,
            b"TCP" => Protocol::Inet(InetTable::Tcp4),
            b"TCPv6" => Protocol::Inet(InetTable::Tcp6),
            b"UDP" => Protocol::Inet(InetTable::Udp4),
            b"UDPv6" => Protocol::Inet(InetTable::Udp6),
            other => Protocol::Other(String::from_utf8_lossy(other).into_owned()),
        }
    }
}

/// A socket the audit may be asked about: its inode and what it is.
pub(crate) type Wanted = (u64, Protocol);

/// What is known of the sockets of one network namespace.
#[derive(Debug, Default)]
pub(crate) struct SocketTables {
    inet: HashMap<InetTable, HashMap<u64, InetEntry>>,
    unix: HashMap<u64, UnixEntry>,
    /// Unix socket inodes `/proc/net/unix` listed more than once: all but one of the records
    /// was forged inside a socket name, and nothing tells which, so none of them is kept.
    ambiguous_unix: HashSet<u64>,
}

impl SocketTables {
    pub(crate) fn tcp(&self, inode: u64) -> Option<&InetEntry> {
        [InetTable::Tcp4, InetTable::Tcp6]
            .iter()
            .find_map(|table| self.inet.get(table)?.get(&inode))
    }

    pub(crate) fn udp(&self, inode: u64) -> Option<&InetEntry> {
        [InetTable::Udp4, InetTable::Udp6]
            .iter()
            .find_map(|table| self.inet.get(table)?.get(&inode))
    }

    pub(crate) fn unix(&self, inode: u64) -> Option<&UnixEntry> {
        self.unix.get(&inode)
    }

    pub(crate) fn is_ambiguous_unix(&self, inode: u64) -> bool {
        self.ambiguous_unix.contains(&inode)
    }

    fn knows(&self, inode: u64) -> bool {
        self.tcp(inode).is_some()
            || self.udp(inode).is_some()
            || self.unix.contains_key(&inode)
            || self.ambiguous_unix.contains(&inode)
    }

    /// The socket at the other end of a TCP connection on this host: the server's accepted
    /// connection when it is in the table, else the listener that will accept it. `None` for
    /// a peer elsewhere (or in another network namespace).
    pub(crate) fn tcp_far_end(&self, local: SocketAddr, peer: SocketAddr) -> Option<&InetEntry> {
        let tables = [InetTable::Tcp4, InetTable::Tcp6];
        let entries = || {
            tables
                .iter()
                .filter_map(|table| self.inet.get(table))
                .flat_map(HashMap::values)
        };
        entries()
            .find(|e| e.local == peer && e.remote == local)
            .or_else(|| {
                entries().find(|e| {
                    e.state == TCP_LISTEN
                        && e.local.port() == peer.port()
                        && (e.local.ip() == peer.ip() || e.local.ip().is_unspecified())
                })
            })
    }

    fn add_unix(&mut self, entries: Vec<UnixEntry>) {
        for entry in entries {
            if self.ambiguous_unix.contains(&entry.inode) {
                continue;
            }
            if self.unix.remove(&entry.inode).is_some() {
                self.ambiguous_unix.insert(entry.inode);
            } else {
                self.unix.insert(entry.inode, entry);
            }
        }
    }

    fn set_inet(&mut self, table: InetTable, entries: Vec<InetEntry>) {
        self.inet
            .insert(table, entries.into_iter().map(|e| (e.inode, e)).collect());
    }

    fn load_proc(&mut self, net_dir: &Path) -> Result<(), AuditError> {
        let tables = ProcTables::load(net_dir)?;
        self.set_inet(InetTable::Tcp4, tables.tcp4);
        self.set_inet(InetTable::Tcp6, tables.tcp6);
        self.set_inet(InetTable::Udp4, tables.udp4);
        self.set_inet(InetTable::Udp6, tables.udp6);
        self.unix.clear();
        self.ambiguous_unix.clear();
        self.add_unix(tables.unix);
        Ok(())
    }

    /// Asks sock_diag for every wanted socket not known yet, and for the peer of every unix
    /// one. An error is netlink failing, not a socket missing.
    fn ask_kernel(&mut self, diag: &mut SockDiag, wanted: &[Wanted]) -> io::Result<()> {
        let mut dumps: HashSet<InetTable> = HashSet::new();
        for (inode, protocol) in wanted {
            if self.knows(*inode) {
                continue;
            }
            match protocol {
                Protocol::Unix => {
                    self.ask_unix(diag, *inode)?;
                }
                Protocol::Inet(table) => {
                    dumps.insert(*table);
                }
                Protocol::Unknown => {
                    if !self.ask_unix(diag, *inode)? {
                        dumps.extend([
                            InetTable::Tcp4,
                            InetTable::Tcp6,
                            InetTable::Udp4,
                            InetTable::Udp6,
                        ]);
                    }
                }
                Protocol::Other(_) => {}
            }
        }
        for table in dumps {
            let entries = diag.dump(table)?;
            self.set_inet(table, entries);
        }
        Ok(())
    }

    /// Looks a unix socket up, and its peer, whose name is the server's path when the socket
    /// is a client. Whether the socket was found.
    fn ask_unix(&mut self, diag: &mut SockDiag, inode: u64) -> io::Result<bool> {
        let Some(entry) = diag.unix(inode)? else {
            return Ok(false);
        };
        let peer = entry.peer;
        self.unix.insert(inode, entry);
        if let Some(peer) = peer
            && !self.unix.contains_key(&peer)
            && let Some(peer_entry) = diag.unix(peer)?
        {
            self.unix.insert(peer, peer_entry);
        }
        Ok(true)
    }
}

/// The sock_diag socket, opened on first use; refused once, never asked again.
#[derive(Debug, Default)]
enum Netlink {
    #[default]
    Unopened,
    Open(SockDiag),
    Refused,
}

/// The socket tables of one round of audits, by network namespace.
#[derive(Debug, Default)]
pub(crate) struct TableCache {
    by_namespace: HashMap<Option<PathBuf>, SocketTables>,
    own_namespace: Option<Option<PathBuf>>,
    netlink: Netlink,
    notes: Vec<AuditNote>,
}

impl TableCache {
    /// The tables of the process under `proc_dir`, holding every socket of `wanted` that still
    /// exists.
    pub(crate) fn tables(
        &mut self,
        proc_dir: &Path,
        wanted: &[Wanted],
    ) -> Result<&SocketTables, AuditError> {
        let namespace = std::fs::read_link(proc_dir.join("ns/net")).ok();
        let own = self
            .own_namespace
            .get_or_insert_with(|| std::fs::read_link("/proc/self/ns/net").ok())
            .clone();
        let same_namespace = namespace.is_some() && namespace == own;
        if same_namespace && self.ask_kernel(&namespace, wanted) {
            let tables = self.by_namespace.entry(namespace.clone()).or_default();
            // A unix socket unix_diag did not find (a kernel without unix_diag) is read from
            // /proc/net/unix, without its peer.
            let missing_unix = wanted
                .iter()
                .any(|(inode, protocol)| *protocol == Protocol::Unix && !tables.knows(*inode));
            if missing_unix {
                let entries = ProcTables::load_unix(&proc_dir.join("net"))?;
                tables.add_unix(entries);
            }
        } else {
            let tables = self.by_namespace.entry(namespace.clone()).or_default();
            let relevant = |protocol: &Protocol| !matches!(protocol, Protocol::Other(_));
            if wanted
                .iter()
                .any(|(inode, protocol)| relevant(protocol) && !tables.knows(*inode))
            {
                tables.load_proc(&proc_dir.join("net"))?;
            }
        }
        Ok(self.by_namespace.entry(namespace).or_default())
    }

    /// Asks netlink; false when it is refused (now or before), so /proc must be read.
    fn ask_kernel(&mut self, namespace: &Option<PathBuf>, wanted: &[Wanted]) -> bool {
        if let Netlink::Unopened = self.netlink {
            self.netlink = match SockDiag::open() {
                Ok(diag) => Netlink::Open(diag),
                Err(error) => {
                    self.refused(error);
                    Netlink::Refused
                }
            };
        }
        let Netlink::Open(diag) = &mut self.netlink else {
            return false;
        };
        let tables = self.by_namespace.entry(namespace.clone()).or_default();
        match tables.ask_kernel(diag, wanted) {
            Ok(()) => true,
            Err(error) => {
                self.netlink = Netlink::Refused;
                self.refused(error);
                false
            }
        }
    }

    fn refused(&mut self, error: io::Error) {
        self.notes.push(AuditNote::NetlinkRefused {
            error: error.to_string(),
        });
    }

    /// What limited the audits so far, each once.
    pub(crate) fn take_notes(&mut self) -> Vec<AuditNote> {
        std::mem::take(&mut self.notes)
    }
}

#[cfg(test)]
mod tests {
    use super::super::proc_net::parse_unix;
    use super::*;
    use crate::audit::UnixName;

    #[test]
    fn an_inode_listed_twice_is_trusted_in_neither_record() {
        // The second record is forged inside the first one's name, to pass a database
        // connection (12659) off as a listener.
        let text = b"Num       RefCount Protocol Flags    Type St Inode Path
00000000e16b7603: 00000003 00000000 00000000 0001 03 12659 /tmp/.s.PGSQL.5432
000000005c984fbf: 00000002 00000000 00010000 0001 01 12657 @x
0: 00000002 00000000 00010000 0001 01 12659 /tmp/harmless
";
        let mut tables = SocketTables::default();
        tables.add_unix(parse_unix(text).unwrap());
        assert!(tables.unix(12659).is_none());
        assert!(tables.is_ambiguous_unix(12659));
        assert!(
            tables.knows(12659),
            "the cache must not read the tables again for it"
        );
        assert_eq!(
            tables.unix(12657).unwrap().name,
            UnixName::Abstract("x".into())
        );
    }

    #[test]
    fn the_far_end_of_a_local_connection_is_its_accepted_socket_or_the_listener() {
        let entry = |local: &str, remote: &str, state, inode| InetEntry {
            local: local.parse().unwrap(),
            remote: remote.parse().unwrap(),
            state,
            inode,
            uid: Some(105),
        };
        let mut tables = SocketTables::default();
        tables.set_inet(
            InetTable::Tcp4,
            vec![
                entry("0.0.0.0:54321", "0.0.0.0:0", TCP_LISTEN, 1),
                entry("127.0.0.1:54321", "127.0.0.1:40000", 1, 2),
                entry("127.0.0.1:40000", "127.0.0.1:54321", 1, 3),
                entry("127.0.0.1:40001", "127.0.0.1:54321", 1, 4),
            ],
        );
        let far = |local: &str, peer: &str| {
            tables
                .tcp_far_end(local.parse().unwrap(), peer.parse().unwrap())
                .map(|e| e.inode)
        };
        assert_eq!(far("127.0.0.1:40000", "127.0.0.1:54321"), Some(2));
        // Not accepted yet: the listener on the wildcard address answers.
        assert_eq!(far("127.0.0.1:40001", "127.0.0.1:54321"), Some(1));
        assert_eq!(far("10.0.0.2:40002", "10.9.9.9:5432"), None);
    }

    #[test]
    fn protocols_are_read_from_the_socket() {
        let tcp = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let udp = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let (unix, _) = std::os::unix::net::UnixStream::pair().unwrap();
        let of = |fd: &dyn std::os::fd::AsRawFd| {
            Protocol::of(Path::new(&format!("/proc/self/fd/{}", fd.as_raw_fd())))
        };
        assert_eq!(of(&tcp), Protocol::Inet(InetTable::Tcp4));
        assert_eq!(of(&udp), Protocol::Inet(InetTable::Udp4));
        assert_eq!(of(&unix), Protocol::Unix);
        let file = std::fs::File::open("/proc/self/stat").unwrap();
        assert_eq!(of(&file), Protocol::Unknown);
    }
}
