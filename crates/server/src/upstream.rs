//! Connections to the apps that someone else runs (`socket:` accounts): a few kept-alive
//! connections (FCGI_KEEP_CONN), reused request after request, so the plexer's hop does not
//! pay a connect per request; an app that closes after each request anyway is noticed before
//! its connection is reused, and a new one is made.

use std::sync::Mutex;
use std::time::Duration;

use plexer_fcgi::Address;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpStream, UnixStream};

/// Idle connections kept per app: enough for the requests in flight of a busy account.
const MAX_IDLE: usize = 8;

/// How long a connect may take before the request gets a 502.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// An app someone else runs, and the idle connections to it.
pub struct External {
    pub address: Address,
    idle: Mutex<Vec<Upstream>>,
}

impl External {
    pub fn new(address: Address) -> Self {
        Self {
            address,
            idle: Mutex::new(Vec::new()),
        }
    }

    /// A kept connection that is still open, or a new one.
    pub async fn connection(&self) -> std::io::Result<Upstream> {
        loop {
            let kept = self.idle.lock().unwrap_or_else(|e| e.into_inner()).pop();
            match kept {
                Some(connection) if connection.is_open() => return Ok(connection),
                Some(_closed) => continue,
                None => break,
            }
        }
        let connecting = async {
            Ok(match &self.address {
                Address::Unix(path) => Upstream::Unix(UnixStream::connect(path).await?),
                Address::Tcp(hostport) => {
                    let stream = TcpStream::connect(hostport).await?;
                    let _ = stream.set_nodelay(true);
                    Upstream::Tcp(stream)
                }
            })
        };
        tokio::time::timeout(CONNECT_TIMEOUT, connecting)
            .await
            .unwrap_or_else(|_| Err(std::io::ErrorKind::TimedOut.into()))
    }

    /// Keeps a connection whose request went well, for the next one.
    pub fn keep(&self, connection: Upstream) {
        if !connection.is_open() {
            return;
        }
        let mut idle = self.idle.lock().unwrap_or_else(|e| e.into_inner());
        if idle.len() < MAX_IDLE {
            idle.push(connection);
        }
    }
}

/// A connection to an app of either family.
pub enum Upstream {
    Unix(UnixStream),
    Tcp(TcpStream),
}

impl Upstream {
    /// Whether the app still holds its end: one that closed has sent its FIN by now.
    fn is_open(&self) -> bool {
        let mut byte = [0u8; 1];
        let read = match self {
            Self::Unix(s) => s.try_read(&mut byte),
            Self::Tcp(s) => s.try_read(&mut byte),
        };
        matches!(read, Err(err) if err.kind() == std::io::ErrorKind::WouldBlock)
    }
}

impl AsyncRead for Upstream {
    fn poll_read(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        match self.get_mut() {
            Self::Unix(s) => std::pin::Pin::new(s).poll_read(cx, buf),
            Self::Tcp(s) => std::pin::Pin::new(s).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Upstream {
    fn poll_write(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        match self.get_mut() {
            Self::Unix(s) => std::pin::Pin::new(s).poll_write(cx, buf),
            Self::Tcp(s) => std::pin::Pin::new(s).poll_write(cx, buf),
        }
    }

    fn poll_write_vectored(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> std::task::Poll<std::io::Result<usize>> {
        match self.get_mut() {
            Self::Unix(s) => std::pin::Pin::new(s).poll_write_vectored(cx, bufs),
            Self::Tcp(s) => std::pin::Pin::new(s).poll_write_vectored(cx, bufs),
        }
    }

    fn is_write_vectored(&self) -> bool {
        true
    }

    fn poll_flush(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        match self.get_mut() {
            Self::Unix(s) => std::pin::Pin::new(s).poll_flush(cx),
            Self::Tcp(s) => std::pin::Pin::new(s).poll_flush(cx),
        }
    }

    fn poll_shutdown(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        match self.get_mut() {
            Self::Unix(s) => std::pin::Pin::new(s).poll_shutdown(cx),
            Self::Tcp(s) => std::pin::Pin::new(s).poll_shutdown(cx),
        }
    }
}
