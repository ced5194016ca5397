//! Connections to the apps that someone else runs (`socket:` accounts): kept-alive
//! connections (FCGI_KEEP_CONN), reused request after request, so the plexer's hop does not
//! pay a connect per request; an app that closes after each request anyway is noticed before
//! its connection is reused, and a new one is made.
//!
//! At most `max_children` connections are open at once, and a request waits for one (up to
//! `queue_timeout`, then a 503). Apps like php-cgi and spawn-fcgi's serve one connection per
//! process, and a kept-alive connection holds its process: with more connections than
//! processes, a request on a new connection would starve behind an idle one, which is what
//! nginx's upstream keepalive does to php-fpm. So `max_children` of a `socket:` account must
//! not exceed the app's processes.

use std::sync::Mutex;
use std::time::Duration;

use tokio::sync::{Semaphore, SemaphorePermit};

use plexer_fcgi::Address;
use tokio::net::{TcpStream, UnixStream};
use tokio_util::either::Either;

/// How long a connect may take before the request gets a 502.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// An app someone else runs, and the idle connections to it.
pub struct External {
    pub address: Address,
    idle: Mutex<Vec<Upstream>>,
    /// One permit per connection that may be open.
    slots: Semaphore,
    max_connections: usize,
    queue_timeout: Duration,
}

/// A connection held for one request, with its slot.
pub struct Leased<'a> {
    pub stream: Upstream,
    /// The connection carried an earlier request.
    pub kept: bool,
    _slot: SemaphorePermit<'a>,
}

/// Why no connection was had.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    #[error("all {0} connections to the app are busy and none freed up within {1:?}")]
    Busy(usize, Duration),
    #[error(transparent)]
    Io(#[from] std::io::Error),
}

impl External {
    /// `max_connections`: the app's processes (the account's `max_children`).
    pub fn new(address: Address, max_connections: usize, queue_timeout: Duration) -> Self {
        Self {
            address,
            idle: Mutex::new(Vec::new()),
            slots: Semaphore::new(max_connections.max(1)),
            max_connections: max_connections.max(1),
            queue_timeout,
        }
    }

    /// A kept connection that is still open, or a new one, once a slot is free.
    pub async fn connection(&self) -> Result<Leased<'_>, ConnectError> {
        let slot = tokio::time::timeout(self.queue_timeout, self.slots.acquire())
            .await
            .map_err(|_| ConnectError::Busy(self.max_connections, self.queue_timeout))?
            .expect("the semaphore is never closed");
        let (stream, kept) = self.open().await?;
        Ok(Leased {
            stream,
            kept,
            _slot: slot,
        })
    }

    /// A kept connection (true) or a new one (false).
    async fn open(&self) -> std::io::Result<(Upstream, bool)> {
        loop {
            let kept = self.idle.lock().unwrap_or_else(|e| e.into_inner()).pop();
            match kept {
                Some(connection) if is_open(&connection) => return Ok((connection, true)),
                Some(_closed) => continue,
                None => break,
            }
        }
        Ok((connect(&self.address).await?, false))
    }

    /// Keeps a connection whose request went well, for the next one; its slot is freed.
    pub fn keep(&self, leased: Leased<'_>) {
        if is_open(&leased.stream) {
            self.idle
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .push(leased.stream);
        }
    }
}

/// A new connection to `address`, given [`CONNECT_TIMEOUT`].
pub(crate) async fn connect(address: &Address) -> std::io::Result<Upstream> {
    let connecting = async {
        Ok(match address {
            Address::Unix(path) => Either::Left(UnixStream::connect(path).await?),
            Address::Tcp(hostport) => {
                let stream = TcpStream::connect(hostport).await?;
                let _ = stream.set_nodelay(true);
                Either::Right(stream)
            }
        })
    };
    tokio::time::timeout(CONNECT_TIMEOUT, connecting)
        .await
        .unwrap_or_else(|_| Err(std::io::ErrorKind::TimedOut.into()))
}

/// A connection to an app of either family.
pub(crate) type Upstream = Either<UnixStream, TcpStream>;

/// Whether the app still holds its end of `connection`: one that closed has sent its FIN by
/// now.
fn is_open(connection: &Upstream) -> bool {
    let mut byte = [0u8; 1];
    let read = match connection {
        Either::Left(s) => s.try_read(&mut byte),
        Either::Right(s) => s.try_read(&mut byte),
    };
    matches!(read, Err(err) if err.kind() == std::io::ErrorKind::WouldBlock)
}
