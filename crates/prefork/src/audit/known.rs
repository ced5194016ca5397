//! The databases the audit knows without being told: by what answers (the server's command
//! name, or the user it runs as), by their customary TCP ports, and by the names of their unix
//! sockets.

use std::fmt;
use std::path::Path;

use super::local_peer::LocalPeer;

/// The database behind a handle, named the way its operators name it.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Database {
    PostgreSql,
    MySql,
    Redis,
    MongoDb,
    Memcached,
    SqlServer,
    Oracle,
    CockroachDb,
    Cassandra,
    ClickHouse,
    Elasticsearch,
    CouchDb,
    Neo4j,
    /// A PostgreSQL connection pooler: a connection to it carries a PostgreSQL session.
    PgBouncer,
    Valkey,
    Sqlite,
    /// An endpoint or socket the [`AuditPolicy`](super::AuditPolicy) declared, under the name
    /// given there.
    Declared(String),
}

impl fmt::Display for Database {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Database::PostgreSql => "PostgreSQL",
            Database::MySql => "MySQL/MariaDB",
            Database::Redis => "Redis",
            Database::MongoDb => "MongoDB",
            Database::Memcached => "memcached",
            Database::SqlServer => "Microsoft SQL Server",
            Database::Oracle => "Oracle",
            Database::CockroachDb => "CockroachDB",
            Database::Cassandra => "Cassandra",
            Database::ClickHouse => "ClickHouse",
            Database::Elasticsearch => "Elasticsearch",
            Database::CouchDb => "CouchDB",
            Database::Neo4j => "Neo4j",
            Database::PgBouncer => "PgBouncer",
            Database::Valkey => "Valkey",
            Database::Sqlite => "SQLite",
            Database::Declared(name) => name,
        })
    }
}

/// Server ports, matched against the *peer* of a connected TCP socket, so that a database
/// server's own accepted connections (local port 5432) are not mistaken for clients.
///
/// ClickHouse's native port 9000 is left out on purpose: it is also php-fpm's customary
/// FastCGI port, and a FastCGI manager would flag every connection to its own workers.
/// Operators who run ClickHouse there declare it in the policy.
const PORTS: &[(u16, Database)] = &[
    (5432, Database::PostgreSql),
    (3306, Database::MySql),
    (6379, Database::Redis),
    (27017, Database::MongoDb),
    (11211, Database::Memcached),
    (1433, Database::SqlServer),
    (1521, Database::Oracle),
    (26257, Database::CockroachDb),
    (9042, Database::Cassandra),
    (8123, Database::ClickHouse),
    (9200, Database::Elasticsearch),
    (5984, Database::CouchDb),
    (7687, Database::Neo4j),
];

/// Socket file names as the servers' packaged defaults create them.
const UNIX_SOCKETS: &[(&str, Database)] = &[
    (".s.PGSQL.*", Database::PostgreSql),
    ("mysqld.sock", Database::MySql),
    ("mysql.sock", Database::MySql),
    ("redis.sock", Database::Redis),
    ("redis-server*.sock", Database::Redis),
    ("memcached.sock", Database::Memcached),
    ("mongodb-*.sock", Database::MongoDb),
];

/// Servers by command name (`/proc/PID/comm`, cut by the kernel at 15 bytes) or program file
/// name. A server's backends keep its name: every PostgreSQL backend is `postgres`.
const PROGRAMS: &[(&str, Database)] = &[
    ("postgres", Database::PostgreSql),
    ("postmaster", Database::PostgreSql),
    ("pgpool", Database::PostgreSql),
    ("pgbouncer", Database::PgBouncer),
    ("mysqld", Database::MySql),
    ("mariadbd", Database::MySql),
    ("proxysql", Database::MySql),
    ("redis-server", Database::Redis),
    ("keydb-server", Database::Redis),
    ("valkey-server", Database::Valkey),
    ("mongod", Database::MongoDb),
    ("mongos", Database::MongoDb),
    ("memcached", Database::Memcached),
    ("sqlservr", Database::SqlServer),
    ("oracle", Database::Oracle),
    ("cockroach", Database::CockroachDb),
    ("clickhouse", Database::ClickHouse),
    ("clickhouse-server", Database::ClickHouse),
    ("clickhouse-serv", Database::ClickHouse),
];

/// The users Debian's packages run the servers as: what is left to go by when the process
/// itself cannot be looked into.
const USERS: &[(&str, Database)] = &[
    ("postgres", Database::PostgreSql),
    ("mysql", Database::MySql),
    ("redis", Database::Redis),
    ("valkey", Database::Valkey),
    ("mongodb", Database::MongoDb),
    ("memcache", Database::Memcached),
    ("clickhouse", Database::ClickHouse),
];

/// The database a local peer is, by its command name or program, else by its user.
pub(crate) fn database_of_peer(peer: &LocalPeer) -> Option<Database> {
    let named = |name: &str| {
        PROGRAMS
            .iter()
            .find(|(program, _)| *program == name)
            .map(|(_, db)| db.clone())
    };
    peer.name()
        .and_then(named)
        .or_else(|| peer.program_name().and_then(named))
        .or_else(|| {
            let user = peer.user()?;
            USERS
                .iter()
                .find(|(known, _)| *known == user)
                .map(|(_, db)| db.clone())
        })
}

pub(crate) fn database_on_port(port: u16) -> Option<Database> {
    PORTS
        .iter()
        .find(|(known, _)| *known == port)
        .map(|(_, db)| db.clone())
}

pub(crate) fn database_at_socket(name: &str) -> Option<Database> {
    UNIX_SOCKETS
        .iter()
        .find(|(pattern, _)| socket_matches(pattern, name))
        .map(|(_, db)| db.clone())
}

/// A pattern with a `/` is held against the whole name; one without, against its last
/// component, so `.s.PGSQL.*` finds PostgreSQL's socket in whatever directory it was put.
pub(crate) fn socket_matches(pattern: &str, name: &str) -> bool {
    if pattern.contains('/') {
        glob(pattern, name)
    } else {
        let file_name = Path::new(name)
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or(name);
        glob(pattern, file_name)
    }
}

/// `*` matches any run of characters and `?` any one; nothing else is special. Socket names
/// need no more, and a glob crate would be a dependency for ten lines.
pub(crate) fn glob(pattern: &str, text: &str) -> bool {
    let pattern: Vec<char> = pattern.chars().collect();
    let text: Vec<char> = text.chars().collect();
    let (mut p, mut t) = (0, 0);
    // Where the last `*` was, and the text position it currently swallows up to; backtracking
    // to it alone keeps the match linear in practice.
    let mut star: Option<(usize, usize)> = None;
    while t < text.len() {
        match pattern.get(p) {
            Some('*') => {
                star = Some((p, t));
                p += 1;
            }
            Some('?') => {
                p += 1;
                t += 1;
            }
            Some(c) if *c == text[t] => {
                p += 1;
                t += 1;
            }
            _ => match star {
                Some((star_p, star_t)) => {
                    p = star_p + 1;
                    t = star_t + 1;
                    star = Some((star_p, star_t + 1));
                }
                None => return false,
            },
        }
    }
    pattern[p..].iter().all(|c| *c == '*')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn glob_matches_stars_and_question_marks() {
        assert!(glob(".s.PGSQL.*", ".s.PGSQL.5432"));
        assert!(glob("redis-server*.sock", "redis-server.sock"));
        assert!(glob("redis-server*.sock", "redis-server-6380.sock"));
        assert!(glob("a?c", "abc"));
        assert!(glob("*", ""));
        assert!(!glob(".s.PGSQL.*", ".s.PGSQL"));
        assert!(!glob("mysql.sock", "mysqld.sock"));
        assert!(!glob("a*b", "acbd"));
    }

    #[test]
    fn socket_patterns_without_slash_match_the_file_name() {
        assert_eq!(
            database_at_socket("/run/postgresql/.s.PGSQL.5433"),
            Some(Database::PostgreSql)
        );
        assert_eq!(
            database_at_socket("/var/run/mysqld/mysqld.sock"),
            Some(Database::MySql)
        );
        assert_eq!(
            database_at_socket("/tmp/mongodb-27017.sock"),
            Some(Database::MongoDb)
        );
        assert_eq!(database_at_socket("/run/php/php-fpm.sock"), None);
        assert!(socket_matches("/srv/*/db.sock", "/srv/bob/db.sock"));
        assert!(!socket_matches("/srv/*/db.sock", "/elsewhere/db.sock"));
    }

    #[test]
    fn servers_are_known_by_name_or_by_their_user() {
        let peer = |name, user| LocalPeer::for_test(Some(7), name, user);
        assert_eq!(
            database_of_peer(&peer(Some("postgres"), Some("postgres"))),
            Some(Database::PostgreSql)
        );
        assert_eq!(
            database_of_peer(&peer(Some("redis-server"), Some("root"))),
            Some(Database::Redis)
        );
        assert_eq!(
            database_of_peer(&peer(None, Some("mysql"))),
            Some(Database::MySql)
        );
        assert_eq!(database_of_peer(&peer(Some("nc"), Some("root"))), None);
        assert_eq!(database_of_peer(&peer(Some("python3"), None)), None);
    }

    #[test]
    fn php_fpm_port_is_not_a_database() {
        assert_eq!(database_on_port(9000), None);
        assert_eq!(database_on_port(5432), Some(Database::PostgreSql));
    }
}
