//! Socket addresses as plexer's CLI and config write them (`unix:/path`, `tcp:127.0.0.1:9000`),
//! and blocking connections to them.

use std::fmt;
use std::io::{self, Read, Write};
use std::net::{Ipv4Addr, Shutdown, SocketAddr, TcpListener, TcpStream};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// A loopback TCP port that was free a moment ago, for servers that bind their own.
pub fn free_port() -> u16 {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).expect("bind 127.0.0.1:0");
    listener.local_addr().expect("local address").port()
}

/// Where a FastCGI server listens.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Addr {
    Unix(PathBuf),
    Tcp(SocketAddr),
}

impl Addr {
    /// A loopback TCP port that was free a moment ago, for programs that insist on binding
    /// their own socket. (Prefer handing over a bound listener where the program allows it.)
    pub fn free_tcp_port() -> Self {
        Self::Tcp(SocketAddr::from((Ipv4Addr::LOCALHOST, free_port())))
    }

    pub fn unix_path(&self) -> Option<&Path> {
        match self {
            Self::Unix(path) => Some(path),
            Self::Tcp(_) => None,
        }
    }

    /// The form libfcgi's `cgi-fcgi -connect` and `php-cgi -b` take: a path, or `host:port`.
    pub fn bare(&self) -> String {
        match self {
            Self::Unix(path) => path.display().to_string(),
            Self::Tcp(addr) => addr.to_string(),
        }
    }

    /// Connects, with `timeout` on every read and write of the connection.
    pub fn connect(&self, timeout: Duration) -> io::Result<Conn> {
        let conn = match self {
            Self::Unix(path) => Conn::Unix(UnixStream::connect(path)?),
            Self::Tcp(addr) => Conn::Tcp(TcpStream::connect_timeout(addr, timeout)?),
        };
        conn.set_timeouts(Some(timeout))?;
        Ok(conn)
    }
}

impl fmt::Display for Addr {
    /// `unix:/path` or `tcp:127.0.0.1:PORT`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Unix(path) => write!(f, "unix:{}", path.display()),
            Self::Tcp(addr) => write!(f, "tcp:{addr}"),
        }
    }
}

/// A blocking connection of either family.
#[derive(Debug)]
pub enum Conn {
    Unix(UnixStream),
    Tcp(TcpStream),
}

impl Conn {
    pub fn set_timeouts(&self, timeout: Option<Duration>) -> io::Result<()> {
        match self {
            Self::Unix(s) => {
                s.set_read_timeout(timeout)?;
                s.set_write_timeout(timeout)
            }
            Self::Tcp(s) => {
                s.set_read_timeout(timeout)?;
                s.set_write_timeout(timeout)
            }
        }
    }

    /// Half-closes the connection: the peer reads EOF, replies can still come back.
    pub fn shutdown_write(&self) -> io::Result<()> {
        match self {
            Self::Unix(s) => s.shutdown(Shutdown::Write),
            Self::Tcp(s) => s.shutdown(Shutdown::Write),
        }
    }
}

impl Read for Conn {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Self::Unix(s) => s.read(buf),
            Self::Tcp(s) => s.read(buf),
        }
    }
}

impl Write for Conn {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Self::Unix(s) => s.write(buf),
            Self::Tcp(s) => s.write(buf),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}
