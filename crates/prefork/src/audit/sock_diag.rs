//! The kernel's socket diagnostics over netlink (`NETLINK_SOCK_DIAG`, sock_diag(7)): what `ss`
//! asks, and what `/proc/net` cannot say.
//!
//! `/proc/net/unix` lists a socket's own name but not its peer, so for another process a
//! client's connection to `/run/postgresql/.s.PGSQL.5432` reads as "a unix socket"; unix_diag
//! answers with the peer's inode (`UDIAG_SHOW_PEER`), and the peer, an accepted socket, carries
//! the server's path. It also looks a socket up by inode alone, so an audit asks for just the
//! sockets it holds. TCP and UDP have no lookup by inode: their tables are dumped, which walks
//! the kernel's hash table once (about 2 ms on a 24 GiB machine, against 5 to 7 ms to read
//! `/proc/net/tcp`), and only for the families the audited sockets are in.
//!
//! The requests and answers are plain structs of the kernel's uapi headers
//! (`linux/sock_diag.h`, `unix_diag.h`, `inet_diag.h`), in native byte order except for
//! addresses and ports, which are in network order. Encoding and parsing are functions on byte
//! slices, tested without a kernel; [`SockDiag`] only sends and receives.

use std::ffi::OsStr;
use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::time::Duration;

use nix::sys::socket::{
    AddressFamily, MsgFlags, SockFlag, SockProtocol, SockType, recv, send, setsockopt, socket,
    sockopt,
};
use nix::sys::time::TimeVal;

use super::descriptor::UnixName;
use super::proc_net::{InetEntry, SocketKind, UnixEntry, UnixState};

const SOCK_DIAG_BY_FAMILY: u16 = 20;
const NLMSG_ERROR: u16 = 2;
const NLMSG_DONE: u16 = 3;
const NLM_F_REQUEST: u16 = 0x01;
/// `NLM_F_ROOT | NLM_F_MATCH`: every socket of the family.
const NLM_F_DUMP: u16 = 0x300;
const NLMSG_HDRLEN: usize = 16;

const AF_UNIX: u8 = 1;
const AF_INET: u8 = 2;
const AF_INET6: u8 = 10;
const IPPROTO_TCP: u8 = 6;
const IPPROTO_UDP: u8 = 17;

const UDIAG_SHOW_NAME: u32 = 0x01;
const UDIAG_SHOW_PEER: u32 = 0x04;
const UDIAG_SHOW_UID: u32 = 0x40;
const UNIX_DIAG_NAME: u16 = 0;
const UNIX_DIAG_PEER: u16 = 2;
const UNIX_DIAG_UID: u16 = 7;
/// `INET_DIAG_NOCOOKIE`: look the socket up by inode alone.
const NO_COOKIE: u32 = !0;

/// `struct unix_diag_msg`: family, type, state, pad, inode, cookie.
const UNIX_DIAG_MSG_LEN: usize = 16;
/// `struct inet_diag_msg`: family, state, timer, retrans, id (48 bytes), expires, rqueue,
/// wqueue, uid, inode.
const INET_DIAG_MSG_LEN: usize = 72;

/// Every TCP state but `TIME_WAIT` (6) and `NEW_SYN_RECV` (12), whose sockets no descriptor
/// holds (their inode is 0).
const TCP_STATES_HELD: u32 = 0x0FFF & !(1 << 6) & !(1 << 12);

/// How long the kernel may take to answer: it always answers at once, so this only keeps a
/// broken netlink from hanging an audit.
const ANSWER_TIMEOUT: Duration = Duration::from_secs(2);

/// The receive buffer: the kernel fills a dump's messages up to 32 KiB per read (as for `ss`).
const RECV_BUFFER: usize = 64 * 1024;

/// A TCP or UDP table of one address family, as the kernel dumps it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) enum InetTable {
    Tcp4,
    Tcp6,
    Udp4,
    Udp6,
}

impl InetTable {
    fn family_and_protocol(self) -> (u8, u8) {
        match self {
            InetTable::Tcp4 => (AF_INET, IPPROTO_TCP),
            InetTable::Tcp6 => (AF_INET6, IPPROTO_TCP),
            InetTable::Udp4 => (AF_INET, IPPROTO_UDP),
            InetTable::Udp6 => (AF_INET6, IPPROTO_UDP),
        }
    }

    pub(crate) fn is_tcp(self) -> bool {
        matches!(self, InetTable::Tcp4 | InetTable::Tcp6)
    }
}

/// A netlink socket for socket diagnostics, in this process's network namespace.
#[derive(Debug)]
pub(crate) struct SockDiag {
    socket: OwnedFd,
    seq: u32,
    buffer: Vec<u8>,
}

impl SockDiag {
    /// Fails where netlink is refused: a seccomp filter, or a kernel without sock_diag.
    pub(crate) fn open() -> io::Result<Self> {
        let socket = socket(
            AddressFamily::Netlink,
            SockType::Datagram,
            SockFlag::SOCK_CLOEXEC,
            SockProtocol::NetlinkSockDiag,
        )?;
        let timeout = TimeVal::new(ANSWER_TIMEOUT.as_secs() as _, 0);
        setsockopt(&socket, sockopt::ReceiveTimeout, &timeout)?;
        Ok(SockDiag {
            socket,
            seq: 0,
            buffer: vec![0; RECV_BUFFER],
        })
    }

    /// The unix socket with this inode, with its name, its peer's inode and its owner;
    /// `None` when there is none (it was closed, or it is not a unix socket).
    pub(crate) fn unix(&mut self, inode: u64) -> io::Result<Option<UnixEntry>> {
        // The kernel's inode numbers for sockets are 32-bit (`get_next_ino`).
        let Ok(inode32) = u32::try_from(inode) else {
            return Ok(None);
        };
        self.seq = self.seq.wrapping_add(1);
        let request = encode_unix_lookup(self.seq, inode32);
        let mut found = None;
        match self.exchange(&request, false, |message| {
            if let Answer::Unix(entry) = message {
                found = Some(entry);
            }
        }) {
            Ok(()) => Ok(found),
            Err(e) if e.raw_os_error() == Some(nix::libc::ENOENT) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Every socket of `table` that a descriptor can hold.
    pub(crate) fn dump(&mut self, table: InetTable) -> io::Result<Vec<InetEntry>> {
        self.seq = self.seq.wrapping_add(1);
        let (family, protocol) = table.family_and_protocol();
        let states = if table.is_tcp() { TCP_STATES_HELD } else { !0 };
        let request = encode_inet_dump(self.seq, family, protocol, states);
        let mut entries = Vec::new();
        self.exchange(&request, true, |message| {
            if let Answer::Inet(entry) = message
                && entry.inode != 0
            {
                entries.push(entry);
            }
        })?;
        Ok(entries)
    }

    /// Sends one request and hands every answer to it to `each`, until the last: a dump ends
    /// with `NLMSG_DONE`, a lookup with its one answer.
    fn exchange(
        &mut self,
        request: &[u8],
        dump: bool,
        mut each: impl FnMut(Answer),
    ) -> io::Result<()> {
        let fd = self.socket.as_raw_fd();
        send(fd, request, MsgFlags::empty())?;
        loop {
            let n = match recv(fd, &mut self.buffer, MsgFlags::empty()) {
                Ok(n) => n,
                Err(nix::errno::Errno::EINTR) => continue,
                Err(e) => return Err(e.into()),
            };
            let mut answered = false;
            for message in parse_answers(&self.buffer[..n], self.seq) {
                match message? {
                    Answer::Done => return Ok(()),
                    Answer::Error(0) => return Ok(()),
                    Answer::Error(errno) => return Err(io::Error::from_raw_os_error(errno)),
                    other => {
                        answered = true;
                        each(other);
                    }
                }
            }
            if answered && !dump {
                return Ok(());
            }
        }
    }
}

/// One message of an answer.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Answer {
    Unix(UnixEntry),
    Inet(InetEntry),
    /// The end of a dump.
    Done,
    /// `NLMSG_ERROR`: 0 acknowledges, anything else is an errno.
    Error(i32),
    /// A message of another request (an earlier one that timed out), skipped.
    Stale,
}

/// Why an answer could not be read: a kernel that speaks another layout.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Malformed(pub(crate) &'static str);

impl From<Malformed> for io::Error {
    fn from(m: Malformed) -> io::Error {
        io::Error::new(
            io::ErrorKind::InvalidData,
            format!("sock_diag answer not understood: {}", m.0),
        )
    }
}

fn header(buf: &mut Vec<u8>, len: usize, flags: u16, seq: u32) {
    buf.extend_from_slice(&(len as u32).to_ne_bytes());
    buf.extend_from_slice(&SOCK_DIAG_BY_FAMILY.to_ne_bytes());
    buf.extend_from_slice(&flags.to_ne_bytes());
    buf.extend_from_slice(&seq.to_ne_bytes());
    buf.extend_from_slice(&0u32.to_ne_bytes()); // the kernel's port id
}

/// `nlmsghdr` + `struct unix_diag_req` asking for one socket by inode.
pub(crate) fn encode_unix_lookup(seq: u32, inode: u32) -> Vec<u8> {
    let len = NLMSG_HDRLEN + 24;
    let mut buf = Vec::with_capacity(len);
    header(&mut buf, len, NLM_F_REQUEST, seq);
    buf.extend_from_slice(&[AF_UNIX, 0, 0, 0]); // family, protocol, pad
    buf.extend_from_slice(&(!0u32).to_ne_bytes()); // every state
    buf.extend_from_slice(&inode.to_ne_bytes());
    buf.extend_from_slice(&(UDIAG_SHOW_NAME | UDIAG_SHOW_PEER | UDIAG_SHOW_UID).to_ne_bytes());
    buf.extend_from_slice(&NO_COOKIE.to_ne_bytes());
    buf.extend_from_slice(&NO_COOKIE.to_ne_bytes());
    buf
}

/// `nlmsghdr` + `struct inet_diag_req_v2` dumping a family's sockets in `states`.
pub(crate) fn encode_inet_dump(seq: u32, family: u8, protocol: u8, states: u32) -> Vec<u8> {
    let len = NLMSG_HDRLEN + 56;
    let mut buf = Vec::with_capacity(len);
    header(&mut buf, len, NLM_F_REQUEST | NLM_F_DUMP, seq);
    buf.extend_from_slice(&[family, protocol, 0, 0]); // family, protocol, ext, pad
    buf.extend_from_slice(&states.to_ne_bytes());
    buf.resize(len, 0); // inet_diag_sockid: every field a wildcard
    buf
}

/// The messages in one datagram from the kernel, each `nlmsghdr` aligned to 4 bytes.
pub(crate) fn parse_answers(
    mut datagram: &[u8],
    seq: u32,
) -> impl Iterator<Item = Result<Answer, Malformed>> + '_ {
    std::iter::from_fn(move || {
        if datagram.len() < NLMSG_HDRLEN {
            return None;
        }
        let len = u32_at(datagram, 0) as usize;
        if len < NLMSG_HDRLEN || len > datagram.len() {
            datagram = &[];
            return Some(Err(Malformed("message length outside the datagram")));
        }
        let kind = u16::from_ne_bytes([datagram[4], datagram[5]]);
        let message_seq = u32_at(datagram, 8);
        let body = &datagram[NLMSG_HDRLEN..len];
        datagram = datagram.get(align4(len)..).unwrap_or_default();
        Some(if message_seq != seq {
            Ok(Answer::Stale)
        } else {
            parse_answer(kind, body)
        })
    })
}

fn parse_answer(kind: u16, body: &[u8]) -> Result<Answer, Malformed> {
    match kind {
        NLMSG_DONE => Ok(Answer::Done),
        NLMSG_ERROR => {
            let code = body.get(..4).ok_or(Malformed("short NLMSG_ERROR"))?;
            Ok(Answer::Error(-i32::from_ne_bytes(
                code.try_into().unwrap_or_default(),
            )))
        }
        SOCK_DIAG_BY_FAMILY => match body.first() {
            Some(&AF_UNIX) => parse_unix(body).map(Answer::Unix),
            Some(&(AF_INET | AF_INET6)) => parse_inet(body).map(Answer::Inet),
            _ => Err(Malformed("an answer of an unknown family")),
        },
        _ => Err(Malformed("an unknown message type")),
    }
}

/// `struct unix_diag_msg` and its attributes.
pub(crate) fn parse_unix(body: &[u8]) -> Result<UnixEntry, Malformed> {
    if body.len() < UNIX_DIAG_MSG_LEN {
        return Err(Malformed("short unix_diag_msg"));
    }
    let mut entry = UnixEntry {
        kind: SocketKind::from_type(body[1]),
        state: UnixState::from_diag(body[2]),
        inode: u64::from(u32_at(body, 4)),
        name: UnixName::Unnamed,
        peer: None,
        uid: None,
    };
    for (kind, value) in attributes(&body[UNIX_DIAG_MSG_LEN..]) {
        match kind {
            UNIX_DIAG_NAME => entry.name = unix_name(value),
            UNIX_DIAG_PEER if value.len() >= 4 => {
                // 0 is an unnamed peer that is gone.
                entry.peer = Some(u64::from(u32_at(value, 0))).filter(|&peer| peer != 0);
            }
            UNIX_DIAG_UID if value.len() >= 4 => entry.uid = Some(u32_at(value, 0)),
            _ => {}
        }
    }
    Ok(entry)
}

/// `sun_path` as the kernel keeps it: a leading NUL marks the abstract namespace; a path may
/// end with the NUL that `bind` counted.
fn unix_name(value: &[u8]) -> UnixName {
    match value.split_first() {
        None => UnixName::Unnamed,
        Some((0, rest)) => UnixName::Abstract(String::from_utf8_lossy(rest).into_owned()),
        Some(_) => {
            let end = value.iter().position(|&b| b == 0).unwrap_or(value.len());
            UnixName::Path(OsStr::from_bytes(&value[..end]).into())
        }
    }
}

/// `struct inet_diag_msg`.
pub(crate) fn parse_inet(body: &[u8]) -> Result<InetEntry, Malformed> {
    if body.len() < INET_DIAG_MSG_LEN {
        return Err(Malformed("short inet_diag_msg"));
    }
    let v6 = body[0] == AF_INET6;
    // inet_diag_sockid at offset 4: sport, dport (big-endian), src[16], dst[16], if, cookie.
    let address = |offset: usize, port_offset: usize| {
        let port = u16::from_be_bytes([body[port_offset], body[port_offset + 1]]);
        let ip = if v6 {
            let mut bytes = [0u8; 16];
            bytes.copy_from_slice(&body[offset..offset + 16]);
            Ipv6Addr::from(bytes).to_canonical()
        } else {
            IpAddr::V4(Ipv4Addr::new(
                body[offset],
                body[offset + 1],
                body[offset + 2],
                body[offset + 3],
            ))
        };
        SocketAddr::new(ip, port)
    };
    Ok(InetEntry {
        local: address(8, 4),
        remote: address(24, 6),
        state: body[1],
        uid: Some(u32_at(body, 64)),
        inode: u64::from(u32_at(body, 68)),
    })
}

/// The `rtattr`s after a message's fixed part: (type, value), each aligned to 4 bytes.
fn attributes(mut rest: &[u8]) -> impl Iterator<Item = (u16, &[u8])> {
    std::iter::from_fn(move || {
        if rest.len() < 4 {
            return None;
        }
        let len = usize::from(u16::from_ne_bytes([rest[0], rest[1]]));
        let kind = u16::from_ne_bytes([rest[2], rest[3]]);
        if len < 4 || len > rest.len() {
            return None;
        }
        let value = &rest[4..len];
        rest = rest.get(align4(len)..).unwrap_or_default();
        Some((kind, value))
    })
}

fn u32_at(bytes: &[u8], offset: usize) -> u32 {
    u32::from_ne_bytes(bytes[offset..offset + 4].try_into().expect("4 bytes"))
}

fn align4(len: usize) -> usize {
    (len + 3) & !3
}

// The captured answers are little-endian, as netlink is on the machine they came from.
#[cfg(all(test, target_endian = "little"))]
mod tests;
