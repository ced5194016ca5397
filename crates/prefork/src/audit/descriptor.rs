//! One open descriptor and what it refers to.

use std::fmt;
use std::net::SocketAddr;
use std::os::fd::RawFd;
use std::path::PathBuf;

use super::local_peer::LocalPeer;
use super::sqlite::Header;

/// An open descriptor of the audited process.
#[derive(Clone, Debug)]
pub struct Descriptor {
    pub(crate) fd: RawFd,
    pub(crate) kind: DescriptorKind,
    /// What two processes holding "the same" handle have in common.
    pub(crate) identity: Option<Identity>,
    pub(crate) header: Header,
    /// For a connection on this host: the socket at the other end.
    pub(crate) far_end: Option<FarEnd>,
    /// Who answers at that end, once looked up.
    pub(crate) peer: Option<LocalPeer>,
}

impl Descriptor {
    pub(crate) fn new(fd: RawFd, kind: DescriptorKind) -> Self {
        Descriptor {
            fd,
            kind,
            identity: None,
            header: Header::Unread,
            far_end: None,
            peer: None,
        }
    }

    pub fn fd(&self) -> RawFd {
        self.fd
    }

    pub fn kind(&self) -> &DescriptorKind {
        &self.kind
    }

    /// The process on this host at the other end of a connection, where it could be found.
    pub fn peer(&self) -> Option<&LocalPeer> {
        self.peer.as_ref()
    }

    /// A connection a conversation runs over: a TCP connection, or a connected unix stream or
    /// sequenced-packet socket. Only these can be shared to ill effect; listening sockets
    /// and datagram sockets (syslog) can be shared safely.
    pub(crate) fn is_connection(&self) -> bool {
        matches!(
            self.kind,
            DescriptorKind::TcpConnection { .. } | DescriptorKind::UnixConnection { .. }
        )
    }
}

impl fmt::Display for Descriptor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "fd {}: {}", self.fd, self.kind)?;
        match &self.peer {
            Some(peer) => write!(f, " (answered by {peer})"),
            None => Ok(()),
        }
    }
}

/// The socket at the other end of a connection on this host: a unix socket's peer, or the
/// server's accepted connection (or listener) of a TCP connection to an address here.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) struct FarEnd {
    pub(crate) inode: u64,
    /// The user that created that socket, where the kernel says.
    pub(crate) uid: Option<u32>,
}

/// A socket inode names one socket however many processes hold it; a file is named by its
/// device and inode, which two processes also share when each opened the file itself.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) enum Identity {
    Socket(u64),
    File { dev: u64, ino: u64 },
}

/// What a descriptor refers to.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum DescriptorKind {
    TcpListener {
        local: SocketAddr,
    },
    TcpConnection {
        local: SocketAddr,
        peer: SocketAddr,
    },
    /// Bound or fresh, or its connection is gone: no peer.
    TcpUnconnected {
        local: SocketAddr,
    },
    Udp {
        local: SocketAddr,
        peer: Option<SocketAddr>,
    },
    UnixListener {
        name: UnixName,
    },
    /// A connected stream or sequenced-packet socket. `peer` is `None` when it cannot be
    /// known: where netlink is refused, `/proc/net/unix` lists a socket's own name but not its
    /// peer's, so for another process a client's peer stays unknown.
    UnixConnection {
        local: UnixName,
        peer: Option<UnixName>,
    },
    /// A unix datagram socket, connected to `peer` or not (a syslog client's `/dev/log`).
    UnixDatagram {
        local: UnixName,
        peer: Option<UnixName>,
    },
    UnixUnconnected {
        local: UnixName,
    },
    /// Another process's unix socket whose inode `/proc/net/unix` lists more than once: a
    /// socket name there held a forged record, so whether it listens, is connected, and its
    /// name are all unknown.
    UnixAmbiguous {
        inode: u64,
    },
    /// A socket of another family (netlink, packet, …) or one missing from the tables.
    OtherSocket {
        inode: u64,
        family: Option<String>,
    },
    Pipe {
        inode: u64,
    },
    /// A named pipe opened by path.
    Fifo {
        path: PathBuf,
    },
    File {
        path: PathBuf,
        deleted: bool,
    },
    Directory {
        path: PathBuf,
    },
    Device {
        path: PathBuf,
    },
    /// `anon_inode:[eventpoll]`, `anon_inode:[eventfd]`, `anon_inode:inotify`, …
    AnonInode {
        name: String,
    },
    Other {
        target: String,
    },
}

impl fmt::Display for DescriptorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DescriptorKind::TcpListener { local } => write!(f, "TCP listening socket {local}"),
            DescriptorKind::TcpConnection { local, peer } => {
                write!(f, "TCP connection {local} -> {peer}")
            }
            DescriptorKind::TcpUnconnected { local } => {
                write!(f, "TCP socket {local} (not connected)")
            }
            DescriptorKind::Udp { local, peer: None } => write!(f, "UDP socket {local}"),
            DescriptorKind::Udp {
                local,
                peer: Some(peer),
            } => write!(f, "UDP socket {local} -> {peer}"),
            DescriptorKind::UnixListener { name } => write!(f, "unix listening socket {name}"),
            DescriptorKind::UnixConnection { local, peer } => match (local, peer) {
                (UnixName::Unnamed, Some(UnixName::Unnamed)) => {
                    f.write_str("unix socket connected to an unnamed peer (socketpair)")
                }
                (local, Some(UnixName::Unnamed)) => {
                    write!(
                        f,
                        "unix socket connection on {local} from an unnamed client"
                    )
                }
                (_, Some(peer)) => write!(f, "unix socket connection to {peer}"),
                (UnixName::Unnamed, None) => f.write_str("unix socket (peer unknown)"),
                (local, None) => write!(f, "unix socket connection on {local} (peer unknown)"),
            },
            DescriptorKind::UnixDatagram { local, peer } => {
                f.write_str("unix datagram socket")?;
                if *local != UnixName::Unnamed {
                    write!(f, " {local}")?;
                }
                match peer {
                    Some(peer) => write!(f, " -> {peer}"),
                    None => Ok(()),
                }
            }
            DescriptorKind::UnixUnconnected { local } => {
                write!(f, "unix socket {local} (not connected)")
            }
            DescriptorKind::UnixAmbiguous { inode } => write!(
                f,
                "unix socket:[{inode}] (listed more than once in /proc/net/unix, so unknown)"
            ),
            DescriptorKind::OtherSocket {
                inode,
                family: Some(family),
            } => write!(f, "{family} socket:[{inode}]"),
            DescriptorKind::OtherSocket {
                inode,
                family: None,
            } => write!(f, "socket:[{inode}] (not TCP, UDP or unix)"),
            DescriptorKind::Pipe { inode } => write!(f, "pipe:[{inode}]"),
            DescriptorKind::Fifo { path } => write!(f, "named pipe {}", path.display()),
            DescriptorKind::File { path, deleted } => {
                write!(f, "file {}", path.display())?;
                if *deleted {
                    f.write_str(" (deleted)")?;
                }
                Ok(())
            }
            DescriptorKind::Directory { path } => write!(f, "directory {}", path.display()),
            DescriptorKind::Device { path } => write!(f, "device {}", path.display()),
            DescriptorKind::AnonInode { name } => write!(f, "anon inode {name}"),
            DescriptorKind::Other { target } => f.write_str(target),
        }
    }
}

/// The address of a unix socket.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum UnixName {
    Path(PathBuf),
    /// Linux's abstract namespace, shown with a leading `@`; bytes that are not UTF-8 read as
    /// U+FFFD.
    Abstract(String),
    Unnamed,
}

impl UnixName {
    /// The text the database patterns are matched against.
    pub(crate) fn pattern_text(&self) -> Option<String> {
        match self {
            UnixName::Path(path) => Some(path.to_string_lossy().into_owned()),
            UnixName::Abstract(name) => Some(name.clone()),
            UnixName::Unnamed => None,
        }
    }
}

impl fmt::Display for UnixName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            UnixName::Path(path) => path.display().fmt(f),
            UnixName::Abstract(name) => write!(f, "@{name}"),
            UnixName::Unnamed => f.write_str("(unnamed)"),
        }
    }
}
