//! What the caller tells the audit: which descriptors are its own, and which endpoints beyond
//! the well-known ones are databases.

use std::collections::BTreeSet;
use std::fmt;
use std::net::SocketAddr;
use std::os::fd::RawFd;
use std::str::FromStr;

use super::known::{self, Database};

/// The rules an audit applies on top of the built-in list of databases.
///
/// ```
/// use plexer_prefork::audit::{AuditPolicy, TcpEndpoint};
///
/// let policy = AuditPolicy::new()
///     .allow_fd(0)
///     .database_endpoint("10.0.0.5:6432".parse::<TcpEndpoint>().unwrap(), "PgBouncer")
///     .database_socket("/srv/*/db.sock", "app database");
/// assert!(policy.is_allowed(0));
/// ```
#[derive(Clone, Debug, Default)]
pub struct AuditPolicy {
    allow_fds: BTreeSet<RawFd>,
    endpoints: Vec<(TcpEndpoint, String)>,
    sockets: Vec<(String, String)>,
}

impl AuditPolicy {
    pub fn new() -> Self {
        Self::default()
    }

    /// Declares a descriptor the caller opened on purpose and knows to be safe to inherit;
    /// it is listed in the report but never a finding. The same number is allowed in every
    /// process a cross-process check looks at.
    pub fn allow_fd(mut self, fd: RawFd) -> Self {
        self.allow_fds.insert(fd);
        self
    }

    /// Declares a database server: a connected TCP socket whose peer is `endpoint` is a
    /// finding, reported under `name`. Declared endpoints win over the built-in names.
    pub fn database_endpoint(mut self, endpoint: TcpEndpoint, name: impl Into<String>) -> Self {
        self.endpoints.push((endpoint, name.into()));
        self
    }

    /// Declares each of `endpoints` (the operator's `--database` / `audit_databases`) as a
    /// database server, named after itself.
    pub fn declaring(self, endpoints: &[TcpEndpoint]) -> Self {
        endpoints.iter().fold(self, |policy, &endpoint| {
            policy.database_endpoint(endpoint, format!("declared database {endpoint}"))
        })
    }

    /// Declares a database's unix socket by path or glob (`*`, `?`). A pattern with a `/` is
    /// matched against the whole path, one without against the file name.
    pub fn database_socket(mut self, pattern: impl Into<String>, name: impl Into<String>) -> Self {
        self.sockets.push((pattern.into(), name.into()));
        self
    }

    pub fn is_allowed(&self, fd: RawFd) -> bool {
        self.allow_fds.contains(&fd)
    }

    /// The database the operator declared at `peer`.
    pub(crate) fn declared_at(&self, peer: SocketAddr) -> Option<Database> {
        let peer = SocketAddr::new(peer.ip().to_canonical(), peer.port());
        self.endpoints
            .iter()
            .find(|(endpoint, _)| endpoint.matches(peer))
            .map(|(_, name)| Database::Declared(name.clone()))
    }

    #[cfg(test)]
    fn database_at(&self, peer: SocketAddr) -> Option<Database> {
        self.declared_at(peer)
            .or_else(|| known::database_on_port(peer.port()))
    }

    pub(crate) fn database_at_socket(&self, name: &str) -> Option<Database> {
        self.sockets
            .iter()
            .find(|(pattern, _)| known::socket_matches(pattern, name))
            .map(|(_, db)| Database::Declared(db.clone()))
            .or_else(|| known::database_at_socket(name))
    }
}

/// A database server's TCP endpoint: any host on a port, or one address.
///
/// Parsed from `5432`, `127.0.0.1:5432` or `[::1]:5432`. Host names are refused rather than
/// resolved: a policy that does DNS would audit against whatever the name meant at start-up.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum TcpEndpoint {
    Port(u16),
    Addr(SocketAddr),
}

impl TcpEndpoint {
    fn matches(&self, peer: SocketAddr) -> bool {
        match self {
            TcpEndpoint::Port(port) => peer.port() == *port,
            TcpEndpoint::Addr(addr) => {
                addr.port() == peer.port() && addr.ip().to_canonical() == peer.ip()
            }
        }
    }
}

impl From<u16> for TcpEndpoint {
    fn from(port: u16) -> Self {
        TcpEndpoint::Port(port)
    }
}

impl From<SocketAddr> for TcpEndpoint {
    fn from(addr: SocketAddr) -> Self {
        TcpEndpoint::Addr(addr)
    }
}

impl fmt::Display for TcpEndpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TcpEndpoint::Port(port) => write!(f, "port {port}"),
            TcpEndpoint::Addr(addr) => addr.fmt(f),
        }
    }
}

impl FromStr for TcpEndpoint {
    type Err = EndpointParseError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if let Ok(port) = s.parse::<u16>() {
            return Ok(TcpEndpoint::Port(port));
        }
        s.parse::<SocketAddr>()
            .map(TcpEndpoint::Addr)
            .map_err(|_| EndpointParseError {
                input: s.to_owned(),
            })
    }
}

/// A database endpoint in the policy that is neither a port nor an IP address with a port.
#[derive(Debug, thiserror::Error)]
#[error(
    "`{input}` is not a database endpoint; write a port (`5432`), or an IP address and port \
     (`127.0.0.1:5432`, `[::1]:5432`); host names are not resolved"
)]
pub struct EndpointParseError {
    input: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_parse_from_port_or_address() {
        assert_eq!(
            "5432".parse::<TcpEndpoint>().unwrap(),
            TcpEndpoint::Port(5432)
        );
        assert_eq!(
            "[::1]:6432".parse::<TcpEndpoint>().unwrap(),
            TcpEndpoint::Addr("[::1]:6432".parse().unwrap())
        );
        let err = "db.example:5432".parse::<TcpEndpoint>().unwrap_err();
        assert!(err.to_string().contains("host names are not resolved"));
    }

    #[test]
    fn declared_endpoints_win_and_match_mapped_addresses() {
        let policy = AuditPolicy::new()
            .database_endpoint(TcpEndpoint::Port(5432), "main db")
            .database_endpoint("127.0.0.1:7000".parse().unwrap(), "cache");
        assert_eq!(
            policy.database_at("10.1.1.1:5432".parse().unwrap()),
            Some(Database::Declared("main db".into()))
        );
        assert_eq!(
            policy.database_at("[::ffff:127.0.0.1]:7000".parse().unwrap()),
            Some(Database::Declared("cache".into()))
        );
        assert_eq!(policy.database_at("127.0.0.2:7000".parse().unwrap()), None);
        assert_eq!(
            policy.database_at("10.1.1.1:3306".parse().unwrap()),
            Some(Database::MySql)
        );
    }
}
