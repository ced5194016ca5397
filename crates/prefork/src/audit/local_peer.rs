//! Who answers at the other end of a connection on this host: the process holding the socket
//! there, found by its inode in `/proc/*/fd`, as `ss -p` and `lsof` find it.
//!
//! A database is then known by what it is (its command name or program: `postgres`,
//! `redis-server`), whatever port or socket path it was given. Where the process cannot be
//! looked into (another user's, as a non-root audit; `/proc` mounted with `hidepid`), the
//! socket's owner still says something: Debian runs PostgreSQL as `postgres` and Redis as
//! `redis`.

use std::collections::HashMap;
use std::fmt;
use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;

use nix::unistd::{Pid, Uid, User};

use super::descriptor::FarEnd;

/// The process on this host at the other end of a connection, as far as it could be seen.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct LocalPeer {
    pid: Option<Pid>,
    /// Its command name (`/proc/PID/comm`, at most 15 bytes).
    name: Option<String>,
    /// Its program, where `/proc/PID/exe` may be read.
    program: Option<PathBuf>,
    /// The user owning the far socket.
    user: Option<String>,
}

impl LocalPeer {
    pub fn pid(&self) -> Option<Pid> {
        self.pid
    }

    /// The command name, where the process was found.
    pub fn name(&self) -> Option<&str> {
        self.name.as_deref()
    }

    /// The program's file name, where it could be read.
    pub fn program_name(&self) -> Option<&str> {
        self.program.as_deref()?.file_name()?.to_str()
    }

    pub fn user(&self) -> Option<&str> {
        self.user.as_deref()
    }

    #[cfg(test)]
    pub(crate) fn for_test(pid: Option<i32>, name: Option<&str>, user: Option<&str>) -> Self {
        LocalPeer {
            pid: pid.map(Pid::from_raw),
            name: name.map(str::to_owned),
            program: None,
            user: user.map(str::to_owned),
        }
    }
}

impl fmt::Display for LocalPeer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (&self.name, self.pid, &self.user) {
            (Some(name), Some(pid), Some(user)) => write!(f, "{name}, pid {pid}, user {user}"),
            (Some(name), Some(pid), None) => write!(f, "{name}, pid {pid}"),
            (None, Some(pid), _) => write!(f, "pid {pid}"),
            (_, None, Some(user)) => write!(f, "a process of user {user}"),
            _ => f.write_str("an unknown process"),
        }
    }
}

/// Looks processes up by socket inode, for one round of audits. The processes of the socket's
/// owner are read once, every socket they hold indexed, so that a round with many connections
/// reads `/proc` once per owner and not once per connection.
#[derive(Debug, Default)]
pub(crate) struct PeerFinder {
    /// By the user whose processes were read (`None`: every process): socket inode → holder.
    holders: HashMap<Option<u32>, HashMap<u64, Pid>>,
    /// Some process could not be looked into.
    hidden: bool,
}

impl PeerFinder {
    /// Who holds the socket `far`, or at least who owns it; `None` when nothing is known.
    pub(crate) fn find(&mut self, far: FarEnd) -> Option<LocalPeer> {
        let user = far.uid.and_then(user_name);
        let holders = match self.holders.get(&far.uid) {
            Some(holders) => holders,
            None => {
                let (holders, hidden) = index_sockets(far.uid);
                self.hidden |= hidden;
                self.holders.entry(far.uid).or_insert(holders)
            }
        };
        let Some(&pid) = holders.get(&far.inode) else {
            return user.map(owner_only);
        };
        let dir = PathBuf::from(format!("/proc/{pid}"));
        Some(LocalPeer {
            pid: Some(pid),
            name: std::fs::read_to_string(dir.join("comm"))
                .ok()
                .map(|comm| comm.trim_end_matches('\n').to_owned()),
            program: std::fs::read_link(dir.join("exe")).ok(),
            user,
        })
    }

    /// Whether some process could not be looked into, so that a peer may have been missed.
    pub(crate) fn saw_hidden_processes(&self) -> bool {
        self.hidden
    }
}

/// Every socket held by the processes of user `uid` (every process when `None`), by inode,
/// and whether some process could not be looked into. /proc/PID belongs to the process's
/// user, and only the socket owner's processes can hold it (short of descriptor passing),
/// which skips most of the host.
fn index_sockets(uid: Option<u32>) -> (HashMap<u64, Pid>, bool) {
    let mut holders = HashMap::new();
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return (holders, true);
    };
    let mut hidden = false;
    for entry in entries.flatten() {
        let Some(pid) = entry.file_name().to_str().and_then(|n| n.parse().ok()) else {
            continue;
        };
        let dir = entry.path();
        if let Some(uid) = uid
            && std::fs::metadata(&dir).is_ok_and(|meta| meta.uid() != uid)
        {
            continue;
        }
        match std::fs::read_dir(dir.join("fd")) {
            Ok(fds) => {
                for fd in fds.flatten() {
                    let Ok(link) = std::fs::read_link(fd.path()) else {
                        continue;
                    };
                    if let Some(inode) = link.to_str().and_then(super::classify::socket_inode) {
                        // The first holder found stays: any holder answers for the socket.
                        holders.entry(inode).or_insert(Pid::from_raw(pid));
                    }
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(_) => hidden = true,
        }
    }
    (holders, hidden)
}

fn owner_only(user: String) -> LocalPeer {
    LocalPeer {
        pid: None,
        name: None,
        program: None,
        user: Some(user),
    }
}

fn user_name(uid: u32) -> Option<String> {
    User::from_uid(Uid::from_raw(uid))
        .ok()
        .flatten()
        .map(|user| user.name)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::AsRawFd;

    #[test]
    fn the_holder_of_a_socket_is_found_by_its_inode() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let inode = std::fs::metadata(format!("/proc/self/fd/{}", listener.as_raw_fd()))
            .unwrap()
            .ino();
        let me = nix::unistd::getpid();
        let uid = Uid::effective().as_raw();
        let mut finder = PeerFinder::default();
        let peer = finder
            .find(FarEnd {
                inode,
                uid: Some(uid),
            })
            .expect("this process holds it");
        assert_eq!(peer.pid(), Some(me));
        let comm = std::fs::read_to_string("/proc/self/comm").unwrap();
        assert_eq!(peer.name(), Some(comm.trim_end()));
        assert_eq!(peer.user(), user_name(uid).as_deref());
    }

    #[test]
    fn a_socket_nobody_holds_names_its_owner_at_most() {
        let mut finder = PeerFinder::default();
        let peer = finder.find(FarEnd {
            inode: u64::from(u32::MAX) + 7,
            uid: Some(0),
        });
        assert_eq!(peer, Some(owner_only("root".into())));
        assert_eq!(peer.unwrap().to_string(), "a process of user root");
        assert_eq!(
            finder.find(FarEnd {
                inode: u64::from(u32::MAX) + 8,
                uid: None
            }),
            None
        );
    }

    #[test]
    fn peers_read_as_english() {
        let peer = LocalPeer::for_test(Some(4242), Some("postgres"), Some("postgres"));
        assert_eq!(peer.to_string(), "postgres, pid 4242, user postgres");
        assert_eq!(
            LocalPeer::for_test(Some(7), None, None).to_string(),
            "pid 7"
        );
    }
}
