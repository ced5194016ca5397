//! The kernel's socket tables as text, `/proc/PID/net/{tcp,tcp6,udp,udp6,unix}` (proc(5)), and
//! the entries both they and sock_diag ([`super::sock_diag`]) describe sockets with.
//!
//! The tables are the fallback: they are slow to read (the kernel walks its whole TCP hash
//! table for every read), they do not name a unix socket's peer, and a local user can forge
//! lines in them through a socket's name. The audit reads them where netlink is refused, and for
//! a process in another network namespace, whose tables it reads through that pid's own `net`
//! directory.

use std::ffi::OsString;
use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::os::unix::ffi::OsStringExt;
use std::path::{Path, PathBuf};

use super::descriptor::UnixName;
use super::error::AuditError;

/// `TCP_LISTEN` in the kernel's `tcp_states.h`; unix_diag reports a listening unix socket
/// with it too.
pub(crate) const TCP_LISTEN: u8 = 0x0A;
/// `TCP_CLOSE`: a socket that was never connected, or whose connection is gone.
pub(crate) const TCP_CLOSE: u8 = 0x07;
/// `TCP_ESTABLISHED`: unix_diag's state of a connected unix socket.
pub(crate) const TCP_ESTABLISHED: u8 = 0x01;
/// `__SO_ACCEPTCON` in the Flags column of `/proc/net/unix`: the socket listens.
const UNIX_ACCEPTCON: u32 = 0x0001_0000;
/// `SS_CONNECTED` in the St column of `/proc/net/unix`.
const SS_CONNECTED: u8 = 3;

/// A TCP or UDP socket, from `/proc/net/{tcp,udp}[6]` or from inet_diag.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct InetEntry {
    pub(crate) local: SocketAddr,
    pub(crate) remote: SocketAddr,
    pub(crate) state: u8,
    pub(crate) inode: u64,
    /// The user that created the socket.
    pub(crate) uid: Option<u32>,
}

/// A unix socket, from `/proc/net/unix` or from unix_diag.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct UnixEntry {
    pub(crate) kind: SocketKind,
    pub(crate) state: UnixState,
    pub(crate) inode: u64,
    /// Its own address; an accepted connection carries its listener's.
    pub(crate) name: UnixName,
    /// The inode of the socket at the other end (unix_diag only).
    pub(crate) peer: Option<u64>,
    /// The user that created the socket (unix_diag only).
    pub(crate) uid: Option<u32>,
}

/// `SOCK_STREAM`, `SOCK_DGRAM` or `SOCK_SEQPACKET`: only a stream or a sequenced-packet socket
/// is a connection two processes could share a conversation on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum SocketKind {
    Stream,
    Datagram,
    SeqPacket,
    Other(u16),
}

impl SocketKind {
    pub(crate) fn from_type(socket_type: impl Into<u16>) -> Self {
        match socket_type.into() {
            1 => SocketKind::Stream,
            2 => SocketKind::Datagram,
            5 => SocketKind::SeqPacket,
            other => SocketKind::Other(other),
        }
    }
}

/// Where a unix socket is in its life. `/proc/net/unix` and unix_diag spell it differently
/// (a socket's `SS_*` state and flags, against the `TCP_*` state of its `sock`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum UnixState {
    Listening,
    Connected,
    Unconnected,
}

impl UnixState {
    /// From unix_diag's `udiag_state`.
    pub(crate) fn from_diag(state: u8) -> Self {
        match state {
            TCP_LISTEN => UnixState::Listening,
            TCP_ESTABLISHED => UnixState::Connected,
            _ => UnixState::Unconnected,
        }
    }
}

#[derive(Debug, PartialEq, Eq)]
pub(crate) struct ParseError {
    pub(crate) line_no: usize,
    pub(crate) line: String,
    pub(crate) reason: &'static str,
}

/// The TCP, UDP and unix sockets of one network namespace, read from its `/proc/PID/net`
/// tables.
#[derive(Debug, Default)]
pub(crate) struct ProcTables {
    pub(crate) tcp4: Vec<InetEntry>,
    pub(crate) tcp6: Vec<InetEntry>,
    pub(crate) udp4: Vec<InetEntry>,
    pub(crate) udp6: Vec<InetEntry>,
    pub(crate) unix: Vec<UnixEntry>,
}

impl ProcTables {
    pub(crate) fn load(net_dir: &Path) -> Result<Self, AuditError> {
        let inet = |file: &str, v6| -> Result<Vec<InetEntry>, AuditError> {
            let path = net_dir.join(file);
            // A kernel without IPv6 has no tcp6 or udp6; the sockets it cannot have need no table.
            let Some(text) = read_table(&path)? else {
                return Ok(Vec::new());
            };
            let entries = parse_inet(&text, v6).map_err(|e| parse_failure(path, e))?;
            // Inode 0 is a connection no descriptor holds (TIME_WAIT, not yet accepted).
            Ok(entries.into_iter().filter(|e| e.inode != 0).collect())
        };
        Ok(ProcTables {
            tcp4: inet("tcp", false)?,
            tcp6: inet("tcp6", true)?,
            udp4: inet("udp", false)?,
            udp6: inet("udp6", true)?,
            unix: Self::load_unix(net_dir)?,
        })
    }

    /// `/proc/PID/net/unix` alone.
    pub(crate) fn load_unix(net_dir: &Path) -> Result<Vec<UnixEntry>, AuditError> {
        let path = net_dir.join("unix");
        match read_table(&path)? {
            Some(text) => parse_unix(&text).map_err(|e| parse_failure(path, e)),
            None => Ok(Vec::new()),
        }
    }
}

/// The table's raw bytes: `/proc/net/unix` prints socket names byte for byte, so it need not
/// be UTF-8.
fn read_table(path: &Path) -> Result<Option<Vec<u8>>, AuditError> {
    match std::fs::read(path) {
        Ok(text) => Ok(Some(text)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(AuditError::ReadProc {
            path: path.to_owned(),
            source,
        }),
    }
}

fn parse_failure(path: PathBuf, e: ParseError) -> AuditError {
    AuditError::Parse {
        path,
        line_no: e.line_no,
        line: e.line,
        reason: e.reason,
    }
}

/// One line of a table after its header.
#[derive(Clone, Copy)]
struct Row<'a> {
    /// Counted from 1, header included, as an editor shows it.
    line_no: usize,
    text: &'a [u8],
}

impl<'a> Row<'a> {
    fn is_blank(&self) -> bool {
        self.text.trim_ascii().is_empty()
    }

    fn fail(&self, reason: &'static str) -> ParseError {
        ParseError {
            line_no: self.line_no,
            line: String::from_utf8_lossy(self.text).into_owned(),
            reason,
        }
    }

    /// The first `N` whitespace-separated columns, and the rest of the row from the separator
    /// after the last of them; `None` when the row has fewer. The kernel prints the columns in
    /// ASCII: one that is not text reads as empty, which no column parses as.
    fn columns<const N: usize>(&self) -> Option<([&'a str; N], &'a [u8])> {
        let mut rest = self.text;
        let mut columns = [""; N];
        for column in &mut columns {
            let trimmed = rest.trim_ascii_start();
            let end = trimmed
                .iter()
                .position(u8::is_ascii_whitespace)
                .unwrap_or(trimmed.len());
            if end == 0 {
                return None;
            }
            *column = std::str::from_utf8(&trimmed[..end]).unwrap_or_default();
            rest = &trimmed[end..];
        }
        Some((columns, rest))
    }
}

/// Every line of `text` after the header; the final newline ends the last row rather than
/// starting an empty one.
fn rows(text: &[u8]) -> impl Iterator<Item = Row<'_>> {
    let text = text.strip_suffix(b"\n").unwrap_or(text);
    text.split(|&byte| byte == b'\n')
        .enumerate()
        .skip(1)
        .map(|(index, text)| Row {
            line_no: index + 1,
            text,
        })
}

/// Parses `/proc/net/tcp`, `tcp6`, `udp` or `udp6`. Fails on any line it does not understand:
/// an audit that skipped it could miss the one database connection on it.
pub(crate) fn parse_inet(text: &[u8], v6: bool) -> Result<Vec<InetEntry>, ParseError> {
    rows(text)
        .filter(|row| !row.is_blank())
        .map(|row| {
            let ([_, local, remote, state, _, _, _, uid, _, inode], _) = row
                .columns()
                .ok_or_else(|| row.fail("fewer than 10 columns"))?;
            Ok(InetEntry {
                local: parse_inet_addr(local, v6).ok_or_else(|| row.fail("bad local_address"))?,
                remote: parse_inet_addr(remote, v6).ok_or_else(|| row.fail("bad rem_address"))?,
                state: u8::from_str_radix(state, 16).map_err(|_| row.fail("bad st"))?,
                inode: inode.parse().map_err(|_| row.fail("bad inode"))?,
                uid: Some(uid.parse().map_err(|_| row.fail("bad uid"))?),
            })
        })
        .collect()
}

/// The kernel prints each 32-bit word of the address as a native-endian integer holding bytes
/// in network order, and the port already in host order.
fn parse_inet_addr(field: &str, v6: bool) -> Option<SocketAddr> {
    let (addr, port) = field.split_once(':')?;
    let port = u16::from_str_radix(port, 16).ok()?;
    let word = |hex: &str| u32::from_str_radix(hex, 16).ok().map(u32::to_ne_bytes);
    let ip = match (v6, addr.len()) {
        (false, 8) => IpAddr::V4(Ipv4Addr::from(word(addr)?)),
        (true, 32) => {
            let mut bytes = [0u8; 16];
            for (i, chunk) in bytes.chunks_exact_mut(4).enumerate() {
                chunk.copy_from_slice(&word(addr.get(i * 8..i * 8 + 8)?)?);
            }
            // A v4 peer reached through a v6 socket reads as ::ffff:a.b.c.d; show and match it
            // as the v4 address it is.
            Ipv6Addr::from(bytes).to_canonical()
        }
        _ => return None,
    };
    Some(SocketAddr::new(ip, port))
}

/// A record of `/proc/net/unix` whose name may go on over the lines after it.
struct UnixRecord {
    flags: u32,
    socket_type: u16,
    state: u8,
    inode: u64,
    name: Vec<u8>,
}

/// Parses `/proc/net/unix`: `Num RefCount Protocol Flags Type St Inode [Path]`.
///
/// The kernel prints a name byte for byte (only NULs become `@`), so any local user can bind
/// a name holding a newline: the lines after it that are not records belong to that name.
/// Such a name can also hold a line that reads as a record; the socket tables trust no inode
/// listed twice.
pub(crate) fn parse_unix(text: &[u8]) -> Result<Vec<UnixEntry>, ParseError> {
    let mut records: Vec<UnixRecord> = Vec::new();
    for row in rows(text) {
        match (unix_record(row), records.last_mut()) {
            (Ok(record), _) => records.push(record),
            (Err(_), Some(last)) => {
                last.name.push(b'\n');
                last.name.extend_from_slice(row.text);
            }
            (Err(_), None) if row.is_blank() => {}
            // The first record must read as one: a table that starts otherwise is not understood.
            (Err(e), None) => return Err(e),
        }
    }
    Ok(records.into_iter().map(UnixRecord::into_entry).collect())
}

fn unix_record(row: Row<'_>) -> Result<UnixRecord, ParseError> {
    let ([_, _, _, flags, socket_type, state, inode], rest) = row
        .columns()
        .ok_or_else(|| row.fail("fewer than 7 columns"))?;
    Ok(UnixRecord {
        flags: u32::from_str_radix(flags, 16).map_err(|_| row.fail("bad Flags"))?,
        socket_type: u16::from_str_radix(socket_type, 16).map_err(|_| row.fail("bad Type"))?,
        state: u8::from_str_radix(state, 16).map_err(|_| row.fail("bad St"))?,
        inode: inode.parse().map_err(|_| row.fail("bad Inode"))?,
        // The name is everything after one separating space, so a name with spaces survives.
        name: rest.strip_prefix(b" ").unwrap_or(rest).to_vec(),
    })
}

impl UnixRecord {
    fn into_entry(self) -> UnixEntry {
        let name = if self.name.is_empty() {
            UnixName::Unnamed
        } else if let Some(abstract_name) = self.name.strip_prefix(b"@") {
            // The kernel marks the abstract namespace with '@' (and prints its NULs as '@').
            UnixName::Abstract(String::from_utf8_lossy(abstract_name).into_owned())
        } else {
            UnixName::Path(PathBuf::from(OsString::from_vec(self.name)))
        };
        let state = if self.flags & UNIX_ACCEPTCON != 0 {
            UnixState::Listening
        } else if self.state == SS_CONNECTED {
            UnixState::Connected
        } else {
            UnixState::Unconnected
        };
        UnixEntry {
            kind: SocketKind::from_type(self.socket_type),
            state,
            inode: self.inode,
            name,
            peer: None,
            uid: None,
        }
    }
}

#[cfg(all(test, target_endian = "little"))]
mod tests {
    use super::*;

    // Captured on Linux 6.x (x86_64) from a process holding: a listener on 127.0.0.1:44695 and
    // a client connected to it, a v6 listener on [::1]:34535 with a client, and a v6 socket
    // connected to the v4 listener through ::ffff:127.0.0.1.
    const TCP: &str = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode                                                     
   0: 0100007F:AE97 00000000:0000 0A 00000000:00000002 00:00000000 00000000     0        0 12646 3 000000000b68353a 100 0 0 10 0                     
   1: 00000000:07E8 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 27 1 00000000bb42aa62 100 0 0 10 0                        
   2: 0100007F:AE97 0100007F:B0D0 01 00000000:00000000 00:00000000 00000000     0        0 0 1 000000000394ee61 20 0 0 10 -1                         
   4: 0100007F:B0C8 0100007F:AE97 01 00000000:00000000 00:00000000 00000000     0        0 12647 2 00000000b8595014 20 0 0 10 -1                     
";
    const TCP6: &str = "  sl  local_address                         remote_address                        st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 00000000000000000000000001000000:86E7 00000000000000000000000000000000:0000 0A 00000000:00000001 00:00000000 00000000     0        0 12648 2 00000000f341e16d 100 0 0 10 0
   2: 00000000000000000000000001000000:98EA 00000000000000000000000001000000:86E7 01 00000000:00000000 00:00000000 00000000     0        0 12654 2 00000000da0d03db 20 0 0 10 -1
   3: 0000000000000000FFFF00000100007F:B0D0 0000000000000000FFFF00000100007F:AE97 01 00000000:00000000 00:00000000 00000000     0        0 12655 2 000000001dd3d2c1 20 0 0 10 -1
";
    const UDP: &str = "   sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode ref pointer drops            
 7932: 0100007F:E930 0100007F:0035 01 00000000:00000000 00:00000000 00000000     0        0 12656 2 00000000c7852b85 0         
";
    // A PostgreSQL-style listener, its accepted connection (which carries the listener's path),
    // the client (which carries none), a socketpair end, and an abstract listener.
    const UNIX: &str = "Num       RefCount Protocol Flags    Type St Inode Path
00000000e16b7603: 00000003 00000000 00000000 0001 03 12659 /tmp/tmpf14yegl0/.s.PGSQL.5432
000000005ee7fc5b: 00000003 00000000 00000000 0001 03 12658
0000000043358f94: 00000003 00000000 00000000 0001 03  1668
000000005c984fbf: 00000002 00000000 00010000 0001 01 12657 /tmp/tmpf14yegl0/.s.PGSQL.5432
00000000a832a846: 00000002 00000000 00010000 0001 01 12660 @plexer-abstract
00000000a832a847: 00000002 00000000 00010000 0001 01 12661 /tmp/with space/db.sock
";

    fn addr(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    #[test]
    fn tcp_table_gives_listeners_and_connections_by_inode() {
        let entries = parse_inet(TCP.as_bytes(), false).unwrap();
        assert_eq!(entries.len(), 4);
        assert_eq!(
            entries[0],
            InetEntry {
                local: addr("127.0.0.1:44695"),
                remote: addr("0.0.0.0:0"),
                state: TCP_LISTEN,
                inode: 12646,
                uid: Some(0),
            }
        );
        assert_eq!(entries[1].local, addr("0.0.0.0:2024"));
        assert_eq!(
            entries[3],
            InetEntry {
                local: addr("127.0.0.1:45256"),
                remote: addr("127.0.0.1:44695"),
                state: TCP_ESTABLISHED,
                inode: 12647,
                uid: Some(0),
            }
        );
    }

    #[test]
    fn tcp6_table_decodes_loopback_and_mapped_v4() {
        let entries = parse_inet(TCP6.as_bytes(), true).unwrap();
        assert_eq!(entries[0].local, addr("[::1]:34535"));
        assert_eq!(entries[1].remote, addr("[::1]:34535"));
        assert_eq!(entries[2].local, addr("127.0.0.1:45264"));
        assert_eq!(entries[2].remote, addr("127.0.0.1:44695"));
    }

    #[test]
    fn udp_table_gives_connected_peer() {
        let entries = parse_inet(UDP.as_bytes(), false).unwrap();
        assert_eq!(entries[0].local, addr("127.0.0.1:59696"));
        assert_eq!(entries[0].remote, addr("127.0.0.1:53"));
        assert_eq!(entries[0].inode, 12656);
    }

    #[test]
    fn unix_table_gives_paths_flags_and_states() {
        let entries = parse_unix(UNIX.as_bytes()).unwrap();
        assert_eq!(entries.len(), 6);
        assert_eq!(
            entries[0].name,
            UnixName::Path("/tmp/tmpf14yegl0/.s.PGSQL.5432".into())
        );
        assert_eq!(entries[0].state, UnixState::Connected);
        assert_eq!(entries[0].kind, SocketKind::Stream);
        assert_eq!(entries[1].name, UnixName::Unnamed);
        assert_eq!(entries[2].inode, 1668);
        assert_eq!(entries[3].state, UnixState::Listening);
        assert_eq!(
            entries[4].name,
            UnixName::Abstract("plexer-abstract".into())
        );
        assert_eq!(
            entries[5].name,
            UnixName::Path("/tmp/with space/db.sock".into())
        );
    }

    #[test]
    fn unix_names_with_newlines_and_stray_bytes_stay_one_name() {
        // Anyone may bind such names; the kernel prints them raw.
        let mut text = b"Num       RefCount Protocol Flags    Type St Inode Path
00000000e16b7603: 00000003 00000000 00000000 0001 03 12659 /tmp/.s.PGSQL.5432
000000005c984fbf: 00000002 00000000 00010000 0001 01 12657 @evil\nline two\n
00000000a832a846: 00000002 00000000 00010000 0001 01 12660 /tmp/caf\xe9\n
00000000a832a847: 00000002 00000000 00010000 0001 01 12661 @bad\xff
"
        .to_vec();
        let entries = parse_unix(&text).unwrap();
        assert_eq!(entries.len(), 4);
        assert_eq!(entries[0].inode, 12659);
        assert_eq!(
            entries[1].name,
            UnixName::Abstract("evil\nline two\n".into())
        );
        assert_eq!(entries[1].state, UnixState::Listening);
        assert_eq!(
            entries[2].name,
            UnixName::Path(PathBuf::from(OsString::from_vec(
                b"/tmp/caf\xe9\n".to_vec()
            )))
        );
        assert_eq!(entries[3].name, UnixName::Abstract("bad\u{FFFD}".into()));

        // A name that ends the table keeps its trailing newline too.
        text.extend_from_slice(b"00000000a832a848: 00000002 00000000 00000000 0001 01 12662 x\n\n");
        let entries = parse_unix(&text).unwrap();
        assert_eq!(entries[4].name, UnixName::Path("x\n".into()));
    }

    #[test]
    fn malformed_lines_fail_closed() {
        let text = "  sl  local_address rem_address st\n   0: 0100007F:AE97 garbage 0A\n";
        let err = parse_inet(text.as_bytes(), false).unwrap_err();
        assert_eq!(err.line_no, 2);
        let text = "  sl  local_address\n   0: 0100007F:AE97 00000000:0000 0A 0:0 0:0 0 0 0 nope\n";
        assert_eq!(
            parse_inet(text.as_bytes(), false).unwrap_err().reason,
            "bad inode"
        );
        let text = "Num RefCount\n0000: 00000002 00000000 00010000 0001\n";
        assert_eq!(
            parse_unix(text.as_bytes()).unwrap_err().reason,
            "fewer than 7 columns"
        );
        // A v4 address in a v6 table is a table we misread, not a socket to skip.
        assert!(parse_inet(TCP.as_bytes(), true).is_err());
    }
}
