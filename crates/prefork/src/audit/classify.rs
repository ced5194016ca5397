//! Walks `/proc/PID/fd` and classifies every descriptor.
//!
//! Sockets are classified from what the kernel says of them ([`super::socket_tables`]):
//! protocol, state, addresses, and the socket at the other end. The audit's own sockets are
//! also asked directly (`getsockname`, `getpeername`) where the tables may be stale or say
//! less; `SO_ACCEPTCONN` and `SO_PROTOCOL` would need a `BorrowedFd`, which cannot be made
//! from a number without `unsafe`, and the tables say the same thing.

use std::collections::HashSet;
use std::io;
use std::net::SocketAddr;
use std::os::fd::RawFd;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::sys::socket::{SockaddrLike, SockaddrStorage, UnixAddr, getpeername, getsockname};
use nix::sys::stat::{major, minor};
use nix::unistd::Pid;

use super::descriptor::{Descriptor, DescriptorKind, FarEnd, Identity, UnixName};
use super::error::AuditError;
use super::proc_locks::{LockedFile, posix_locks_held_by};
use super::proc_net::{InetEntry, SocketKind, TCP_CLOSE, TCP_LISTEN, UnixEntry, UnixState};
use super::socket_tables::{Protocol, SocketTables, TableCache, Wanted};
use super::sqlite::{self, Header};

/// The process being audited.
pub(crate) struct Target {
    pub(crate) pid: Pid,
    /// The audit's own process: its descriptors can be asked directly.
    own: bool,
    proc_dir: PathBuf,
}

impl Target {
    pub(crate) fn new(pid: Option<Pid>) -> Self {
        let me = nix::unistd::getpid();
        match pid {
            None => Target {
                pid: me,
                own: true,
                proc_dir: PathBuf::from("/proc/self"),
            },
            Some(pid) => Target {
                pid,
                own: pid == me,
                proc_dir: PathBuf::from(format!("/proc/{pid}")),
            },
        }
    }
}

pub(crate) fn descriptors(
    target: &Target,
    cache: &mut TableCache,
) -> Result<Vec<Descriptor>, AuditError> {
    let fd_dir = target.proc_dir.join("fd");
    let links = read_links(target, &fd_dir)?;
    let empty = SocketTables::default();
    let tables = socket_tables(target, &fd_dir, &links, cache, &empty)?;
    let locked = if target.own {
        own_posix_locks(target.pid)
    } else {
        // Another process's locks are its own: our open and close cannot drop them.
        Some(HashSet::new())
    };

    let mut descriptors = Vec::with_capacity(links.len());
    for (fd, link) in links {
        let fd_path = fd_dir.join(fd.to_string());
        if let Some(descriptor) = classify(target, fd, &link, &fd_path, tables, locked.as_ref()) {
            descriptors.push(descriptor);
        }
    }
    Ok(descriptors)
}

/// The sockets among the descriptors, classified as [`descriptors`] would: no file is
/// looked at, which makes it cheap enough to repeat every few milliseconds.
#[cfg(feature = "tokio")] // the supervisor's only
pub(crate) fn sockets(
    target: &Target,
    cache: &mut TableCache,
) -> Result<Vec<Descriptor>, AuditError> {
    let fd_dir = target.proc_dir.join("fd");
    let links = read_links(target, &fd_dir)?;
    let empty = SocketTables::default();
    let tables = socket_tables(target, &fd_dir, &links, cache, &empty)?;
    Ok(links
        .iter()
        .filter_map(|(fd, link)| Some(socket_descriptor(target, *fd, socket_inode(link)?, tables)))
        .collect())
}

/// Classifies only the descriptors `fds` of a process whose links were read before
/// (`links`): the sockets a pool's processes share, say.
pub(crate) fn some_descriptors(
    target: &Target,
    links: &[(RawFd, String)],
    cache: &mut TableCache,
) -> Result<Vec<Descriptor>, AuditError> {
    let fd_dir = target.proc_dir.join("fd");
    let empty = SocketTables::default();
    let tables = socket_tables(target, &fd_dir, links, cache, &empty)?;
    let no_locks = HashSet::new();
    Ok(links
        .iter()
        .filter_map(|(fd, link)| {
            let fd_path = fd_dir.join(fd.to_string());
            classify(target, *fd, link, &fd_path, tables, Some(&no_locks))
        })
        .collect())
}

fn socket_tables<'a>(
    target: &Target,
    fd_dir: &Path,
    links: &[(RawFd, String)],
    cache: &'a mut TableCache,
    empty: &'a SocketTables,
) -> Result<&'a SocketTables, AuditError> {
    let wanted: Vec<Wanted> = links
        .iter()
        .filter_map(|(fd, link)| {
            let inode = socket_inode(link)?;
            Some((inode, Protocol::of(&fd_dir.join(fd.to_string()))))
        })
        .collect();
    if wanted.is_empty() {
        Ok(empty)
    } else {
        cache.tables(&target.proc_dir, &wanted)
    }
}

/// Lists the descriptors and reads every link before anything else is opened, so that the
/// directory handle of the listing, and whatever the audit opens later, never appear as the
/// audited process's own: the listing's handle is closed by then and its link is gone.
pub(crate) fn read_links(
    target: &Target,
    fd_dir: &Path,
) -> Result<Vec<(RawFd, String)>, AuditError> {
    let list_failed = |source| AuditError::ListDescriptors {
        pid: target.pid,
        path: fd_dir.to_owned(),
        source,
    };
    let mut fds: Vec<RawFd> = std::fs::read_dir(fd_dir)
        .map_err(list_failed)?
        .filter_map(|entry| entry.ok()?.file_name().to_str()?.parse().ok())
        .collect();
    fds.sort_unstable();

    let mut links = Vec::with_capacity(fds.len());
    for fd in fds {
        match std::fs::read_link(fd_dir.join(fd.to_string())) {
            Ok(link) => links.push((fd, link.to_string_lossy().into_owned())),
            // Closed while we looked: nothing left to inherit.
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(list_failed(e)),
        }
    }
    Ok(links)
}

fn own_posix_locks(pid: Pid) -> Option<HashSet<LockedFile>> {
    let text = std::fs::read_to_string("/proc/locks").ok()?;
    posix_locks_held_by(&text, pid.as_raw())
}

pub(crate) fn socket_inode(link: &str) -> Option<u64> {
    link.strip_prefix("socket:[")?
        .strip_suffix(']')?
        .parse()
        .ok()
}

fn classify(
    target: &Target,
    fd: RawFd,
    link: &str,
    fd_path: &Path,
    tables: &SocketTables,
    locked: Option<&HashSet<LockedFile>>,
) -> Option<Descriptor> {
    let simple = |kind| Descriptor::new(fd, kind);
    if let Some(inode) = socket_inode(link) {
        return Some(socket_descriptor(target, fd, inode, tables));
    }
    if let Some(inode) = link
        .strip_prefix("pipe:[")
        .and_then(|s| s.strip_suffix(']'))
    {
        return Some(simple(match inode.parse() {
            Ok(inode) => DescriptorKind::Pipe { inode },
            Err(_) => DescriptorKind::Other {
                target: link.to_owned(),
            },
        }));
    }
    if let Some(name) = link.strip_prefix("anon_inode:") {
        return Some(simple(DescriptorKind::AnonInode {
            name: name.to_owned(),
        }));
    }
    if !link.starts_with('/') {
        return Some(simple(DescriptorKind::Other {
            target: link.to_owned(),
        }));
    }
    classify_path(target, fd, link, fd_path, locked)
}

fn socket_descriptor(target: &Target, fd: RawFd, inode: u64, tables: &SocketTables) -> Descriptor {
    let (kind, far_end) = classify_socket(target, fd, inode, tables);
    Descriptor {
        identity: Some(Identity::Socket(inode)),
        far_end,
        ..Descriptor::new(fd, kind)
    }
}

fn classify_path(
    target: &Target,
    fd: RawFd,
    link: &str,
    fd_path: &Path,
    locked: Option<&HashSet<LockedFile>>,
) -> Option<Descriptor> {
    let (path, deleted) = match link.strip_suffix(" (deleted)") {
        Some(path) => (PathBuf::from(path), true),
        None => (PathBuf::from(link), false),
    };
    // stat through the fd link reaches the open file itself, deleted or not.
    let meta = match std::fs::metadata(fd_path) {
        Ok(meta) => meta,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return None,
        // Not allowed to look: keep what the link says, and let the name decide.
        Err(_) => return Some(Descriptor::new(fd, DescriptorKind::File { path, deleted })),
    };
    let file_type = meta.file_type();
    let kind = if file_type.is_file() {
        DescriptorKind::File { path, deleted }
    } else if file_type.is_dir() {
        DescriptorKind::Directory { path }
    } else if file_type.is_char_device() || file_type.is_block_device() {
        DescriptorKind::Device { path }
    } else if file_type.is_fifo() {
        DescriptorKind::Fifo { path }
    } else {
        DescriptorKind::Other {
            target: link.to_owned(),
        }
    };
    let header = if file_type.is_file() {
        let key = (major(meta.dev()), minor(meta.dev()), meta.ino());
        let may_read = !target.own || locked.is_some_and(|held| !held.contains(&key));
        if may_read {
            sqlite::read_header(fd_path)
        } else {
            Header::Unread
        }
    } else {
        Header::Unread
    };
    Some(Descriptor {
        identity: Some(Identity::File {
            dev: meta.dev(),
            ino: meta.ino(),
        }),
        header,
        ..Descriptor::new(fd, kind)
    })
}

fn classify_socket(
    target: &Target,
    fd: RawFd,
    inode: u64,
    tables: &SocketTables,
) -> (DescriptorKind, Option<FarEnd>) {
    if let Some(entry) = tables.tcp(inode) {
        return classify_tcp(target, fd, entry, tables);
    }
    if let Some(entry) = tables.udp(inode) {
        let peer = match target.own {
            true => own_inet_peer(fd).ok(),
            false => (entry.remote.port() != 0).then_some(entry.remote),
        };
        let kind = DescriptorKind::Udp {
            local: entry.local,
            peer,
        };
        return (kind, None);
    }
    if let Some(entry) = tables.unix(inode) {
        return classify_unix(target, fd, entry, tables);
    }
    if tables.is_ambiguous_unix(inode) {
        return (classify_ambiguous_unix(target, fd, inode), None);
    }
    let family = target
        .own
        .then(|| getsockname::<SockaddrStorage>(fd).ok()?.family())
        .flatten()
        .map(|family| format!("{family:?}"));
    (DescriptorKind::OtherSocket { inode, family }, None)
}

fn classify_tcp(
    target: &Target,
    fd: RawFd,
    entry: &InetEntry,
    tables: &SocketTables,
) -> (DescriptorKind, Option<FarEnd>) {
    if entry.state == TCP_LISTEN {
        return (DescriptorKind::TcpListener { local: entry.local }, None);
    }
    let (local, peer) = if target.own {
        let local = own_inet_name(fd).unwrap_or(entry.local);
        match own_inet_peer(fd) {
            Ok(peer) => (local, peer),
            Err(_) => return (DescriptorKind::TcpUnconnected { local }, None),
        }
    } else if entry.state == TCP_CLOSE && entry.remote.port() == 0 {
        // A socket in CLOSE with no peer was never connected; every other state (including
        // CLOSE_WAIT, a connection the server already ended) still holds one.
        return (DescriptorKind::TcpUnconnected { local: entry.local }, None);
    } else {
        (entry.local, entry.remote)
    };
    let far_end = tables.tcp_far_end(local, peer).map(|far| FarEnd {
        inode: far.inode,
        uid: far.uid,
    });
    (DescriptorKind::TcpConnection { local, peer }, far_end)
}

fn classify_unix(
    target: &Target,
    fd: RawFd,
    entry: &UnixEntry,
    tables: &SocketTables,
) -> (DescriptorKind, Option<FarEnd>) {
    let local = entry.name.clone();
    if entry.state == UnixState::Listening {
        return (DescriptorKind::UnixListener { name: local }, None);
    }
    let far = entry.peer.map(|inode| FarEnd {
        inode,
        uid: tables.unix(inode).and_then(|peer| peer.uid),
    });
    // sock_diag names the peer by its socket; without it, only a socket's own holder can ask.
    let peer_name = || match entry.peer.and_then(|inode| tables.unix(inode)) {
        Some(peer) => Some(peer.name.clone()),
        None if target.own => getpeername::<UnixAddr>(fd)
            .ok()
            .map(|peer| unix_name(&peer)),
        None => None,
    };
    let kind = match (entry.kind, entry.state) {
        (SocketKind::Datagram, _) => DescriptorKind::UnixDatagram {
            local,
            peer: peer_name(),
        },
        (_, UnixState::Connected) => DescriptorKind::UnixConnection {
            local,
            peer: peer_name(),
        },
        // /proc/net/unix may list the audit's own connected socket as unconnected only in a
        // race; asking it settles that.
        _ if target.own => own_unix(fd, local),
        _ => DescriptorKind::UnixUnconnected { local },
    };
    (kind, far)
}

/// A unix socket the table lists twice, so that neither record can be trusted. The audit's
/// own socket is asked directly instead; another process's stays unknown.
fn classify_ambiguous_unix(target: &Target, fd: RawFd, inode: u64) -> DescriptorKind {
    match target.own.then(|| getsockname::<UnixAddr>(fd)) {
        // Without the table a listener reads as unconnected; neither is a database handle.
        Some(Ok(local)) => own_unix(fd, unix_name(&local)),
        _ => DescriptorKind::UnixAmbiguous { inode },
    }
}

fn own_unix(fd: RawFd, local: UnixName) -> DescriptorKind {
    match getpeername::<UnixAddr>(fd) {
        Ok(peer) => DescriptorKind::UnixConnection {
            local,
            peer: Some(unix_name(&peer)),
        },
        Err(Errno::ENOTCONN) => DescriptorKind::UnixUnconnected { local },
        Err(_) => DescriptorKind::UnixConnection { local, peer: None },
    }
}

fn unix_name(addr: &UnixAddr) -> UnixName {
    if let Some(path) = addr.path() {
        return UnixName::Path(path.to_owned());
    }
    match addr.as_abstract() {
        Some(name) => UnixName::Abstract(String::from_utf8_lossy(name).into_owned()),
        None => UnixName::Unnamed,
    }
}

fn own_inet_peer(fd: RawFd) -> Result<SocketAddr, Errno> {
    inet_addr(getpeername::<SockaddrStorage>(fd)?).ok_or(Errno::EAFNOSUPPORT)
}

fn own_inet_name(fd: RawFd) -> Option<SocketAddr> {
    inet_addr(getsockname::<SockaddrStorage>(fd).ok()?)
}

fn inet_addr(addr: SockaddrStorage) -> Option<SocketAddr> {
    let addr = if let Some(v4) = addr.as_sockaddr_in() {
        SocketAddr::from(*v4)
    } else {
        SocketAddr::from(*addr.as_sockaddr_in6()?)
    };
    Some(SocketAddr::new(addr.ip().to_canonical(), addr.port()))
}
