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
use std::path::{Path, PathBuf};

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

/// Looks processes up by socket inode, remembering what it found for one round of audits.
#[derive(Debug, Default)]
pub(crate) struct PeerFinder {
    found: HashMap<u64, Option<LocalPeer>>,
    /// Some process could not be looked into.
    hidden: bool,
}

impl PeerFinder {
    /// Who holds the socket `far`, or at least who owns it; `None` when nothing is known.
    pub(crate) fn find(&mut self, far: FarEnd) -> Option<LocalPeer> {
        if let Some(known) = self.found.get(&far.inode) {
            return known.clone();
        }
        let peer = self.search(far);
        self.found.insert(far.inode, peer.clone());
        peer
    }

    /// Whether some process could not be looked into, so that a peer may have been missed.
    pub(crate) fn saw_hidden_processes(&self) -> bool {
        self.hidden
    }

    fn search(&mut self, far: FarEnd) -> Option<LocalPeer> {
        let user = far.uid.and_then(user_name);
        let link = format!("socket:[{}]", far.inode);
        let Ok(entries) = std::fs::read_dir("/proc") else {
            self.hidden = true;
            return user.map(owner_only);
        };
        for entry in entries.flatten() {
            let Some(pid) = entry.file_name().to_str().and_then(|n| n.parse().ok()) else {
                continue;
            };
            let dir = entry.path();
            // /proc/PID belongs to the process's user: only the socket owner's processes can
            // hold it (short of descriptor passing), which skips most of the host.
            if let Some(uid) = far.uid
                && std::fs::metadata(&dir).is_ok_and(|meta| meta.uid() != uid)
            {
                continue;
            }
            match holds(&dir, &link) {
                Some(true) => {
                    return Some(LocalPeer {
                        pid: Some(Pid::from_raw(pid)),
                        name: std::fs::read_to_string(dir.join("comm"))
                            .ok()
                            .map(|comm| comm.trim_end_matches('\n').to_owned()),
                        program: std::fs::read_link(dir.join("exe")).ok(),
                        user,
                    });
                }
                Some(false) => {}
                None => self.hidden = true,
            }
        }
        user.map(owner_only)
    }
}

fn owner_only(user: String) -> LocalPeer {
    LocalPeer {
        pid: None,
        name: None,
        program: None,
        user: Some(user),
    }
}

/// Whether the process under `dir` holds a descriptor linking to `link`; `None` when its
/// descriptors cannot be listed (another user's, or it exited meanwhile).
fn holds(dir: &Path, link: &str) -> Option<bool> {
    let fd_dir = dir.join("fd");
    let entries = match std::fs::read_dir(&fd_dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Some(false),
        Err(_) => return None,
    };
    Some(entries.flatten().any(|entry| {
        std::fs::read_link(entry.path()).is_ok_and(|target| target.as_os_str() == link)
    }))
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
