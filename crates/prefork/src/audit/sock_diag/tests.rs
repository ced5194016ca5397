//! Answers captured from Linux 6.18 (x86_64, so native byte order is little-endian), and one
//! live exchange with the kernel.

use std::os::fd::AsRawFd;
use std::os::unix::fs::MetadataExt;
use std::os::unix::net::{UnixListener, UnixStream};

use super::*;

fn hex(text: &str) -> Vec<u8> {
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&text[i..i + 2], 16).unwrap())
        .collect()
}

/// A client (inode 20865) connected to `/tmp/cap/.s.PGSQL.5432`: no name of its own, its peer
/// is the accepted socket 20866, owned by uid 0. Sequence number 7.
const UNIX_CLIENT: &str = "380000001400000007000000b14c000001010100815100000110000000000000\
                           080002008251000005000600000000000800070000000000";
/// The accepted socket 20866: it carries the listener's path (with the NUL `bind` counted).
const UNIX_ACCEPTED: &str = "540000001400000007000000b14c0000010101008251000002100000000000001b\
                             0000002f746d702f6361702f2e732e504753514c2e35343332000008000200815100\
                             0005000600000000000800070000000000";
/// A lookup of an inode that is no unix socket: NLMSG_ERROR with -ENOENT.
const UNIX_MISSING: &str = "3c0000000200000007000000b14c0000feffffff2800000014000100070000000000\
                            000001000000ffffffff3f420f0045000000ffffffffffffffff";
/// A listener in the abstract namespace, `@plexer-test`.
const UNIX_ABSTRACT: &str = "400000001400000007000000b14c000001010a008651000003100000000000001000\
                             000000706c657865722d7465737405000600000000000800070000000000";
/// From a TCP dump: the client 127.0.0.1:58870 -> 127.0.0.1:36549 (inode 20873), then the
/// dump's end.
const TCP_CLIENT: &str = "7c0000001400020007000000b14c000002010000e5f68ec57f000001000000000000\
                          0000000000007f000001000000000000000000000000000000000710000000000000\
                          0000000000000000000000000000000089510000050008000000000008000f000000\
                          00000c00150001000000000000000600160052000000";
const DONE: &str = "140000000300020007000000b14c000000000000";

fn only(datagram: &[u8]) -> Answer {
    let mut answers: Vec<Answer> = parse_answers(datagram, 7).map(Result::unwrap).collect();
    assert_eq!(answers.len(), 1, "{answers:?}");
    answers.remove(0)
}

#[test]
fn a_unix_client_names_its_peer_by_inode() {
    let Answer::Unix(client) = only(&hex(UNIX_CLIENT)) else {
        panic!("not a unix answer")
    };
    assert_eq!(
        client,
        UnixEntry {
            kind: SocketKind::Stream,
            state: UnixState::Connected,
            inode: 20865,
            name: UnixName::Unnamed,
            peer: Some(20866),
            uid: Some(0),
        }
    );
}

#[test]
fn the_accepted_peer_carries_the_servers_path() {
    let Answer::Unix(accepted) = only(&hex(UNIX_ACCEPTED)) else {
        panic!("not a unix answer")
    };
    assert_eq!(
        accepted.name,
        UnixName::Path("/tmp/cap/.s.PGSQL.5432".into())
    );
    assert_eq!(accepted.peer, Some(20865));
    assert_eq!(accepted.state, UnixState::Connected);
}

#[test]
fn abstract_names_and_listeners_are_told_apart() {
    let Answer::Unix(listener) = only(&hex(UNIX_ABSTRACT)) else {
        panic!("not a unix answer")
    };
    assert_eq!(listener.name, UnixName::Abstract("plexer-test".into()));
    assert_eq!(listener.state, UnixState::Listening);
    assert_eq!(listener.peer, None);
}

#[test]
fn a_missing_inode_is_enoent() {
    assert_eq!(only(&hex(UNIX_MISSING)), Answer::Error(nix::libc::ENOENT));
}

#[test]
fn a_tcp_dump_gives_addresses_in_network_order_and_ends() {
    let mut datagram = hex(TCP_CLIENT);
    datagram.extend_from_slice(&hex(DONE));
    let answers: Vec<Answer> = parse_answers(&datagram, 7).map(Result::unwrap).collect();
    assert_eq!(
        answers,
        [
            Answer::Inet(InetEntry {
                local: "127.0.0.1:58870".parse().unwrap(),
                remote: "127.0.0.1:36549".parse().unwrap(),
                state: super::super::proc_net::TCP_ESTABLISHED,
                inode: 20873,
                uid: Some(0),
            }),
            Answer::Done,
        ]
    );
}

#[test]
fn answers_to_another_request_are_skipped() {
    assert_eq!(
        parse_answers(&hex(UNIX_CLIENT), 8)
            .map(Result::unwrap)
            .collect::<Vec<_>>(),
        [Answer::Stale]
    );
}

#[test]
fn truncated_answers_are_errors_not_panics() {
    let full = hex(UNIX_ACCEPTED);
    for cut in 0..full.len() {
        // Whatever the cut, parsing ends without a panic; a cut header is an error.
        let _ = parse_answers(&full[..cut], 7).collect::<Vec<_>>();
    }
    let mut lying = hex(UNIX_CLIENT);
    lying[0] = 0xff; // a length beyond the datagram
    assert!(parse_answers(&lying, 7).any(|answer| answer.is_err()));
    assert!(parse_unix(&[1, 1, 1]).is_err());
    assert!(parse_inet(&[2; 20]).is_err());
}

#[test]
fn requests_have_the_kernels_layout() {
    let lookup = encode_unix_lookup(9, 20865);
    assert_eq!(lookup.len(), 40);
    assert_eq!(u32_at(&lookup, 0), 40); // nlmsg_len
    assert_eq!(lookup[16], AF_UNIX);
    assert_eq!(u32_at(&lookup, 24), 20865); // udiag_ino
    assert_eq!(
        u32_at(&lookup, 28),
        UDIAG_SHOW_NAME | UDIAG_SHOW_PEER | UDIAG_SHOW_UID
    );
    let dump = encode_inet_dump(9, AF_INET6, IPPROTO_TCP, TCP_STATES_HELD);
    assert_eq!(dump.len(), 72);
    assert_eq!(
        u16::from_ne_bytes([dump[6], dump[7]]),
        NLM_F_REQUEST | NLM_F_DUMP
    );
    assert_eq!(&dump[16..18], &[AF_INET6, IPPROTO_TCP]);
}

#[test]
fn the_kernel_names_the_peer_of_a_unix_connection() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("redis.sock");
    let listener = UnixListener::bind(&path).unwrap();
    let client = UnixStream::connect(&path).unwrap();
    let (accepted, _) = listener.accept().unwrap();
    let inode = |fd: &dyn AsRawFd| {
        std::fs::metadata(format!("/proc/self/fd/{}", fd.as_raw_fd()))
            .unwrap()
            .ino()
    };
    let mut diag = SockDiag::open().expect("netlink sock_diag is available here");
    let entry = diag.unix(inode(&client)).unwrap().expect("the client");
    assert_eq!(entry.state, UnixState::Connected);
    assert_eq!(entry.peer, Some(inode(&accepted)));
    let peer = diag.unix(inode(&accepted)).unwrap().expect("the peer");
    assert_eq!(peer.name, UnixName::Path(path));
    assert_eq!(
        diag.unix(inode(&listener)).unwrap().unwrap().state,
        UnixState::Listening
    );
    // A regular file's inode is no socket.
    let file = std::fs::File::open("/proc/self/stat").unwrap();
    assert_eq!(diag.unix(inode(&file)).unwrap(), None);

    let tcp = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let stream = std::net::TcpStream::connect(tcp.local_addr().unwrap()).unwrap();
    let dumped = diag.dump(InetTable::Tcp4).unwrap();
    let found = dumped
        .iter()
        .find(|e| e.inode == inode(&stream))
        .expect("the client in the dump");
    assert_eq!(found.remote, tcp.local_addr().unwrap());
    assert_eq!(found.local, stream.local_addr().unwrap());
}
