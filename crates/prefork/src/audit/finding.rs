//! Which descriptors are database handles, and how to say so.

use std::collections::HashSet;
use std::fmt;
use std::net::SocketAddr;
use std::os::fd::RawFd;
use std::path::PathBuf;

use super::descriptor::{Descriptor, DescriptorKind, Identity, UnixName};
use super::known::{self, Database};
use super::local_peer::LocalPeer;
use super::policy::AuditPolicy;
use super::sqlite::{self, SqlitePart};

/// A database handle that a fork would hand to every child.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Finding {
    pub(crate) fd: RawFd,
    pub(crate) handle: DbHandle,
    pub(crate) database: Database,
    /// The process the database was recognised by, when it was by what answers.
    pub(crate) answered_by: Option<LocalPeer>,
    pub(crate) identity: Option<Identity>,
}

impl Finding {
    pub fn fd(&self) -> RawFd {
        self.fd
    }

    pub fn handle(&self) -> &DbHandle {
        &self.handle
    }

    pub fn database(&self) -> &Database {
        &self.database
    }

    /// The server process, when the database was recognised by what answers rather than by
    /// its port or socket name.
    pub fn answered_by(&self) -> Option<&LocalPeer> {
        self.answered_by.as_ref()
    }
}

/// "PostgreSQL", or "PostgreSQL: postgres, pid 4242, user postgres" when the process told.
pub(crate) struct Named<'a>(pub(crate) &'a Database, pub(crate) Option<&'a LocalPeer>);

impl fmt::Display for Named<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.1 {
            Some(peer) => write!(f, "{}: {peer}", self.0),
            None => self.0.fmt(f),
        }
    }
}

/// The kind of database handle found.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum DbHandle {
    Tcp {
        local: SocketAddr,
        peer: SocketAddr,
    },
    /// A unix-socket connection recognised by its peer's path or, when the peer cannot be
    /// known, by its own (a server's accepted connections carry the listener's path).
    Unix {
        name: UnixName,
        by_peer: bool,
    },
    Sqlite {
        path: PathBuf,
        part: SqlitePart,
    },
}

impl fmt::Display for Finding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let fd = self.fd;
        let db = Named(&self.database, self.answered_by.as_ref());
        match &self.handle {
            DbHandle::Tcp { peer, .. } => write!(f, "fd {fd} is a TCP connection to {peer} ({db})"),
            DbHandle::Unix {
                name,
                by_peer: true,
            } => write!(f, "fd {fd} is a unix-socket connection to {name} ({db})"),
            DbHandle::Unix {
                name,
                by_peer: false,
            } => write!(f, "fd {fd} is a unix-socket connection on {name} ({db})"),
            DbHandle::Sqlite { path, part } => {
                write!(f, "fd {fd} is the {part} {}", path.display())
            }
        }?;
        f.write_str(" opened before fork; open it in post_fork")
    }
}

/// Picks the findings out of a process's descriptors. Listening sockets are never findings:
/// sharing a listener is what a prefork server is for.
pub(crate) fn findings(descriptors: &[Descriptor], policy: &AuditPolicy) -> Vec<Finding> {
    // Companions are recognised by their database's name, or by their database being open
    // here; the second needs every database found first.
    let open_databases: HashSet<PathBuf> = descriptors
        .iter()
        .filter_map(|d| match &d.kind {
            DescriptorKind::File { path, .. } if sqlite::is_database(path, d.header) => {
                Some(path.clone())
            }
            _ => None,
        })
        .collect();

    descriptors
        .iter()
        .filter(|d| !policy.is_allowed(d.fd))
        .filter_map(|d| finding_of(d, policy, &open_databases))
        .collect()
}

/// The finding a descriptor makes on its own, if it is a database handle.
pub(crate) fn finding_of(
    descriptor: &Descriptor,
    policy: &AuditPolicy,
    open_databases: &HashSet<PathBuf>,
) -> Option<Finding> {
    let (handle, database, answered_by) = handle_of(descriptor, policy, open_databases)?;
    Some(Finding {
        fd: descriptor.fd,
        handle,
        database,
        answered_by,
        identity: descriptor.identity,
    })
}

/// What the process at the far end is, when it is a database.
fn by_what_answers(descriptor: &Descriptor) -> Option<(Database, Option<LocalPeer>)> {
    let peer = descriptor.peer.as_ref()?;
    Some((known::database_of_peer(peer)?, Some(peer.clone())))
}

/// A connection is a database's when the operator declared it, when the process answering it
/// is one, or by its well-known port or socket name: any of these, since a proxy on a
/// database's port (HAProxy on 5432) is as much a database connection as the server itself.
/// A TCP peer the operator declared keeps the operator's name; a unix peer is named by its
/// process first, then by its socket's name.
fn handle_of(
    descriptor: &Descriptor,
    policy: &AuditPolicy,
    open_databases: &HashSet<PathBuf>,
) -> Option<(DbHandle, Database, Option<LocalPeer>)> {
    match &descriptor.kind {
        DescriptorKind::TcpConnection { local, peer } => {
            let (database, answered_by) = policy
                .declared_at(*peer)
                .map(|db| (db, None))
                .or_else(|| by_what_answers(descriptor))
                .or_else(|| Some((known::database_on_port(peer.port())?, None)))?;
            let handle = DbHandle::Tcp {
                local: *local,
                peer: *peer,
            };
            Some((handle, database, answered_by))
        }
        DescriptorKind::UnixConnection { local, peer } => {
            let by_peer_name = peer.as_ref().and_then(|peer| {
                let db = policy.database_at_socket(&peer.pattern_text()?)?;
                Some((peer.clone(), true, db, None))
            });
            let by_process = || {
                let (db, answered_by) = by_what_answers(descriptor)?;
                let name = peer.clone().unwrap_or(UnixName::Unnamed);
                Some((name, true, db, answered_by))
            };
            // A server's accepted connection carries its listener's name.
            let by_own_name = || {
                let db = policy.database_at_socket(&local.pattern_text()?)?;
                Some((local.clone(), false, db, None))
            };
            // The process is the more precise: PgBouncer's socket is named like PostgreSQL's.
            let (name, by_peer, db, answered_by) =
                by_process().or(by_peer_name).or_else(by_own_name)?;
            Some((DbHandle::Unix { name, by_peer }, db, answered_by))
        }
        DescriptorKind::File { path, .. } => {
            let part = sqlite::companion_part(path, open_databases).or_else(|| {
                sqlite::is_database(path, descriptor.header).then_some(SqlitePart::Database)
            })?;
            Some((
                DbHandle::Sqlite {
                    path: path.clone(),
                    part,
                },
                Database::Sqlite,
                None,
            ))
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audit::sqlite::Header;

    fn descriptor(fd: RawFd, kind: DescriptorKind, header: Header) -> Descriptor {
        Descriptor {
            header,
            ..Descriptor::new(fd, kind)
        }
    }

    #[test]
    fn messages_follow_the_one_line_style() {
        let policy = AuditPolicy::new();
        let descriptors = [
            descriptor(
                7,
                DescriptorKind::TcpConnection {
                    local: "127.0.0.1:41234".parse().unwrap(),
                    peer: "127.0.0.1:5432".parse().unwrap(),
                },
                Header::Unread,
            ),
            descriptor(
                5,
                DescriptorKind::File {
                    path: "/srv/bob/app.db".into(),
                    deleted: false,
                },
                Header::Sqlite,
            ),
            descriptor(
                6,
                DescriptorKind::File {
                    path: "/srv/bob/app.db-wal".into(),
                    deleted: false,
                },
                Header::Other,
            ),
            descriptor(
                8,
                DescriptorKind::UnixConnection {
                    local: UnixName::Unnamed,
                    peer: Some(UnixName::Path("/run/postgresql/.s.PGSQL.5432".into())),
                },
                Header::Unread,
            ),
            descriptor(
                9,
                DescriptorKind::UnixConnection {
                    local: UnixName::Path("/run/mysqld/mysqld.sock".into()),
                    peer: None,
                },
                Header::Unread,
            ),
        ];
        let messages: Vec<String> = findings(&descriptors, &policy)
            .iter()
            .map(ToString::to_string)
            .collect();
        assert_eq!(
            messages,
            [
                "fd 7 is a TCP connection to 127.0.0.1:5432 (PostgreSQL) opened before fork; \
                 open it in post_fork",
                "fd 5 is the SQLite database /srv/bob/app.db opened before fork; open it in post_fork",
                "fd 6 is the SQLite write-ahead log /srv/bob/app.db-wal opened before fork; \
                 open it in post_fork",
                "fd 8 is a unix-socket connection to /run/postgresql/.s.PGSQL.5432 (PostgreSQL) \
                 opened before fork; open it in post_fork",
                "fd 9 is a unix-socket connection on /run/mysqld/mysqld.sock (MySQL/MariaDB) \
                 opened before fork; open it in post_fork",
            ]
        );
    }

    #[test]
    fn listeners_local_ports_and_allowed_fds_are_not_findings() {
        let descriptors = [
            descriptor(
                0,
                DescriptorKind::TcpListener {
                    local: "127.0.0.1:5432".parse().unwrap(),
                },
                Header::Unread,
            ),
            descriptor(
                3,
                DescriptorKind::UnixListener {
                    name: UnixName::Path("/run/postgresql/.s.PGSQL.5432".into()),
                },
                Header::Unread,
            ),
            // A PostgreSQL server's accepted connection: local port 5432, client peer.
            descriptor(
                4,
                DescriptorKind::TcpConnection {
                    local: "127.0.0.1:5432".parse().unwrap(),
                    peer: "127.0.0.1:41234".parse().unwrap(),
                },
                Header::Unread,
            ),
            descriptor(
                5,
                DescriptorKind::TcpConnection {
                    local: "127.0.0.1:41235".parse().unwrap(),
                    peer: "127.0.0.1:6379".parse().unwrap(),
                },
                Header::Unread,
            ),
        ];
        assert!(findings(&descriptors, &AuditPolicy::new().allow_fd(5)).is_empty());
        assert_eq!(findings(&descriptors, &AuditPolicy::new()).len(), 1);
    }
}
