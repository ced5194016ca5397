//! One request relayed between the web server and a backend, with backpressure both ways.
//!
//! The web server's STDIN records go to the backend as the same `Bytes` (no copy of the body),
//! and the backend's STDOUT comes back the same way, after its CGI head has been parsed and
//! rewritten (see [`crate::responses::rewrite_head`]). Neither side is read while the other's
//! pending writes exceed [`HIGH_WATER`], so a 1 GiB upload or download passes in constant memory.
//!
//! How it ends, and what the caller does with the worker:
//! - [`Ended::Completed`]: END_REQUEST went to the web server; the worker is fine.
//! - [`Ended::ClientGone`]: the web server closed or aborted (its client left); the backend is
//!   sent ABORT_REQUEST and given [`ABORT_WAIT`] to end the request, after which its worker is
//!   free again, or else not trusted.
//! - [`Ended::TimedOut`]: `request_timeout` passed: 504 if the head was not sent yet.
//! - [`Ended::BackendFailed`]: the backend died or broke the protocol: 502 if the head was not
//!   sent yet; after it, the web server's connection is closed so the client sees the response
//!   cut short rather than complete.
//! - [`Ended::Stalled`]: the web server stopped sending the request's body for `body_timeout`
//!   (408), or stopped taking the answer for `send_timeout`; the backend is told as when the
//!   client leaves, so a slow body never holds a worker to the end of `request_timeout`.
//!
//! [`relay`] asks the backend to keep the connection (FCGI_KEEP_CONN). On a kept connection the
//! app may have closed it (or close it as the request arrives) and answer nothing: the race
//! every keep-alive client meets. Like nginx, the request then goes again, once, on a new
//! connection, when it cannot have been read (the connection was reset with it unread) or its
//! method is idempotent.

use std::io::IoSlice;
use std::time::{Duration, Instant};

use bytes::Buf;
use plexer_fcgi::cgi::ResponseHead;
use plexer_fcgi::{ClientConnection, ClientEvent, Limits, Outbox, Params, ServerConnection};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use crate::app_stderr::StderrLines;
use exchange::{Exchange, Pump, Resend, Unsent};

mod exchange;

/// Pending bytes for one side above which the other side is not read.
pub(crate) const HIGH_WATER: usize = 256 * 1024;
const READ_CHUNK: usize = 64 * 1024;
/// Room asked for before each read: a small response costs a small buffer (its record bodies
/// keep the buffer they were read into alive until written, so a 64 KiB buffer per read was a
/// 64 KiB allocation per request); a read that fills its room makes the next one 4 times larger,
/// up to [`READ_CHUNK`], so a large body still moves in large reads.
pub(crate) struct ReadRoom(usize);

impl ReadRoom {
    pub(crate) fn new() -> Self {
        Self(4 * 1024)
    }

    /// Makes room in `buf` for the next read.
    pub(crate) fn make(&self, buf: &mut bytes::BytesMut) {
        buf.reserve(self.0);
    }

    /// Notes that a read brought `n` bytes.
    pub(crate) fn after_read(&mut self, n: usize) {
        if n >= self.0 {
            self.0 = (self.0 * 4).min(READ_CHUNK);
        }
    }
}

impl Default for ReadRoom {
    fn default() -> Self {
        Self::new()
    }
}

/// A connection to the backend could not be made: `to` says to what.
#[derive(Debug, thiserror::Error)]
#[error("cannot connect to {to}: {source}")]
pub(crate) struct ConnectFailed {
    pub to: String,
    pub source: std::io::Error,
}

/// The web server's connection: its protocol state, its socket halves, what waits to be
/// written to it, and how long it may keep plexer waiting.
pub(crate) struct Front<R, W> {
    pub conn: ServerConnection,
    pub rd: R,
    pub wr: W,
    pub pending: Outbox,
    pub timeouts: FrontTimeouts,
    pub entry: Entry,
}

/// Which of plexer's sockets a web-server connection came in on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Entry {
    /// `listen:`: requests are routed to accounts.
    Listen,
    /// `status_listen:`: the status page and ping only.
    Status,
}

/// How long the web server may keep plexer waiting: for the rest of a request it began
/// (`body_timeout`), and to take some of an answer (`send_timeout`). Each runs from the last
/// byte that moved, as nginx's `client_body_timeout` and `send_timeout` do.
#[derive(Clone, Copy, Debug)]
pub(crate) struct FrontTimeouts {
    pub body: Duration,
    pub send: Duration,
}

/// What the web server keeps plexer waiting for, when it does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Stalled {
    /// The rest of a request: its params, its body.
    Request,
    /// To take the answer plexer has for it.
    Answer,
}

impl FrontTimeouts {
    /// When waiting for `stalled` ends the connection, the last byte having moved at
    /// `progress`; `None`: plexer waits for nothing from the web server.
    #[inline]
    pub(crate) fn deadline(&self, stalled: Option<Stalled>, progress: Instant) -> Option<Instant> {
        Some(match stalled? {
            Stalled::Request => progress + self.body,
            Stalled::Answer => progress + self.send,
        })
    }
}

/// Whom a connection waits for: the web server to read what is pending for it, else to send
/// the rest of what it began (`request_open`).
#[inline]
pub(crate) fn waiting_for(pending: &Outbox, request_open: bool) -> Option<Stalled> {
    if !pending.is_empty() {
        Some(Stalled::Answer)
    } else if request_open {
        Some(Stalled::Request)
    } else {
        None
    }
}

/// Until `deadline`, or forever without one.
pub(crate) async fn until(deadline: Option<Instant>) {
    match deadline {
        Some(deadline) => tokio::time::sleep_until(deadline.into()).await,
        None => std::future::pending().await,
    }
}

/// How a relayed request ended.
#[derive(Debug)]
pub(crate) enum Ended {
    /// `status` and `body_bytes` are the response's, for the access log; `reusable`: the
    /// backend connection may carry the next request.
    Completed {
        app_status: u32,
        status: u16,
        body_bytes: u64,
        reusable: bool,
    },
    /// The web server gave up on the request (its client left). `worker_free`: the backend
    /// was told (ABORT_REQUEST) and ended the request within [`ABORT_WAIT`], so the worker
    /// may serve again; otherwise it is not trusted.
    ClientGone {
        worker_free: bool,
    },
    /// The web server sent ABORT_REQUEST and waits for the request's END_REQUEST on a
    /// connection that goes on; `worker_free` as for [`Ended::ClientGone`].
    Aborted {
        worker_free: bool,
    },
    TimedOut {
        head_sent: bool,
    },
    BackendFailed {
        head_sent: bool,
        why: String,
    },
    /// The web server kept plexer waiting past its timeout (see [`FrontTimeouts`]);
    /// `worker_free` as for [`Ended::ClientGone`].
    Stalled {
        stalled: Stalled,
        head_sent: bool,
        worker_free: bool,
    },
}

/// What the relay needs to rewrite the response head; `rewrite` is called once with the head.
/// `account` and `worker` go with every STDERR line logged.
pub(crate) struct Relay<'a> {
    pub front_id: u16,
    pub account: &'a str,
    pub worker: Option<i32>,
    pub params: &'a Params,
    pub limits: &'a Limits,
    pub deadline: Instant,
    pub rewrite: &'a (dyn Fn(&mut ResponseHead) + Sync),
}

impl Relay<'_> {
    /// The exchange of this request on a backend connection (`kept`: it carried an earlier
    /// request), sending first what an earlier attempt took from the web server.
    fn begin(
        &self,
        kept: bool,
        earlier: Resend,
        backend: &mut ClientConnection,
    ) -> Result<Exchange, Ended> {
        Exchange::begin(
            self.front_id,
            self.params,
            self.limits,
            kept,
            earlier,
            backend,
        )
    }
}

/// Writes some of `outbox` with one vectored write.
pub(crate) async fn write_some<W: AsyncWrite + Unpin>(
    wr: &mut W,
    outbox: &mut Outbox,
) -> std::io::Result<()> {
    let mut slices = [IoSlice::new(&[]); 64];
    let count = outbox.io_slices(&mut slices);
    let n = wr.write_vectored(&slices[..count]).await?;
    if n == 0 {
        return Err(std::io::ErrorKind::WriteZero.into());
    }
    outbox.advance(n);
    Ok(())
}

/// Writes all of `outbox`.
pub(crate) async fn flush<W: AsyncWrite + Unpin>(
    wr: &mut W,
    outbox: &mut Outbox,
) -> std::io::Result<()> {
    while !outbox.is_empty() {
        write_some(wr, outbox).await?;
    }
    wr.flush().await
}

/// Writes all that is pending for the web server, which must take some of it every
/// `send_timeout`: a peer that never reads fails the write rather than holding the task.
pub(crate) async fn flush_front<R, W: AsyncWrite + Unpin>(
    front: &mut Front<R, W>,
) -> std::io::Result<()> {
    let patience = front.timeouts.send;
    while !front.pending.is_empty() {
        tokio::time::timeout(patience, write_some(&mut front.wr, &mut front.pending))
            .await
            .map_err(|_| std::io::Error::from(std::io::ErrorKind::TimedOut))??;
    }
    front.wr.flush().await
}

/// Why the relay stopped hearing from the web server.
enum FrontGone {
    /// Its connection closed or failed: its client left.
    Closed,
    /// It sent ABORT_REQUEST.
    Aborted,
    /// It kept plexer waiting past its timeout.
    Stalled(Stalled),
}

/// One attempt of a request on `backend` (`kept`: the connection carried an earlier one),
/// sending first what an earlier attempt took from the web server. `Err` only on a kept
/// connection the app had closed before it answered anything. The decisions are
/// [`Exchange`]'s; this loop only moves bytes.
async fn attempt<R, W, B>(
    front: &mut Front<R, W>,
    backend: &mut B,
    relay: &Relay<'_>,
    kept: bool,
    earlier: Resend,
) -> Result<Ended, Unsent>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
    B: AsyncRead + AsyncWrite + Unpin,
{
    let (mut back_rd, mut back_wr) = tokio::io::split(backend);
    let mut back_conn = ClientConnection::new(relay.limits.clone());
    let mut exchange = match relay.begin(kept, earlier, &mut back_conn) {
        Ok(exchange) => exchange,
        Err(ended) => return Ok(ended),
    };
    let mut back_pending = Outbox::new();
    let (mut front_room, mut back_room) = (ReadRoom::new(), ReadRoom::new());
    let mut stderr_lines = StderrLines::new(relay.account, relay.worker);
    let sleep = tokio::time::sleep_until(relay.deadline.into());
    tokio::pin!(sleep);
    // When a byte last moved between plexer and the web server.
    let mut progress = Instant::now();
    let gone = loop {
        let pumped = exchange.pump(
            &mut front.conn,
            &mut back_conn,
            &mut back_pending,
            relay.rewrite,
            &mut stderr_lines,
        );
        front.pending.append(front.conn.outbox());
        match pumped {
            Pump::Wait => {}
            Pump::Ended(ended) => return Ok(ended),
            Pump::Abandon => break FrontGone::Closed,
            Pump::Aborted => break FrontGone::Aborted,
        }
        front_room.make(front.conn.read_buf());
        back_room.make(back_conn.read_buf());
        // The body is the web server's to send only while the backend takes it.
        let body_due = exchange.awaits_body() && back_pending.len() < HIGH_WATER;
        let waiting = waiting_for(&front.pending, body_due);
        let stall = front.timeouts.deadline(waiting, progress);
        tokio::select! {
            // Neither is the web server read while what plexer owes it is over HIGH_WATER:
            // a peer that sends records and never reads the answers is not answered without
            // bound.
            read = front.rd.read_buf(front.conn.read_buf()), if back_pending.len() < HIGH_WATER && front.pending.len() < HIGH_WATER => {
                if let Ok(n @ 1..) = read {
                    front_room.after_read(n);
                    progress = Instant::now();
                    continue;
                }
            }
            read = back_rd.read_buf(back_conn.read_buf()), if front.pending.len() < HIGH_WATER => {
                match exchange.backend_read(read, &back_conn, relay.params) {
                    Ok(n) => back_room.after_read(n),
                    Err(closed) => return closed,
                }
                continue;
            }
            written = write_some(&mut front.wr, &mut front.pending), if !front.pending.is_empty() => {
                if written.is_ok() {
                    progress = Instant::now();
                    continue;
                }
            }
            written = write_some(&mut back_wr, &mut back_pending), if !back_pending.is_empty() => {
                exchange.backend_written(written, &mut back_pending);
                continue;
            }
            () = until(stall) => {
                break FrontGone::Stalled(waiting.expect("armed only while waiting"));
            }
            () = &mut sleep => return Ok(exchange.timed_out()),
        }
        // The web server's connection closed or failed: its client left.
        break FrontGone::Closed;
    };
    let backend = (back_conn, &mut back_rd, &mut back_wr, back_pending);
    let worker_free = abandon(&exchange, backend).await;
    Ok(match gone {
        FrontGone::Closed => Ended::ClientGone { worker_free },
        FrontGone::Aborted => Ended::Aborted { worker_free },
        FrontGone::Stalled(stalled) => exchange.stalled(stalled, worker_free),
    })
}

/// Relays one request on `backend` until it ends (`kept`: the connection carried an earlier
/// request). When the app had closed a kept connection before it read the request, the request
/// goes once more on a connection from `reconnect`, which replaces `backend`.
pub(crate) async fn relay<R, W, B>(
    front: &mut Front<R, W>,
    backend: &mut B,
    kept: bool,
    relay: Relay<'_>,
    reconnect: impl AsyncFnOnce() -> Result<B, ConnectFailed>,
) -> Ended
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
    B: AsyncRead + AsyncWrite + Unpin,
{
    let Unsent { resend, why } =
        match attempt(front, backend, &relay, kept, Resend::default()).await {
            Ok(ended) => return ended,
            Err(unsent) => unsent,
        };
    tracing::debug!(
        account = relay.account,
        worker = relay.worker,
        "kept connection closed ({why}): the request goes again on a new one"
    );
    let ended = match reconnect().await {
        Ok(fresh) => {
            *backend = fresh;
            attempt(front, backend, &relay, false, resend).await
        }
        Err(failed) => Ok(Ended::BackendFailed {
            head_sent: false,
            why: failed.to_string(),
        }),
    };
    // A new connection is never a kept one, so this attempt does not end unsent.
    ended.unwrap_or_else(|Unsent { why, .. }| Ended::BackendFailed {
        head_sent: false,
        why,
    })
}

/// How long a backend gets to end a request the web server gave up on.
pub(crate) const ABORT_WAIT: Duration = Duration::from_secs(1);

/// The web server gave up on the request: tell the backend (ABORT_REQUEST) and wait briefly
/// for its END_REQUEST, dropping whatever it still sends, so that the worker is free again
/// rather than busy with a request nobody wants (php-fpm leaves it busy to the end). When
/// nothing of the request reached the backend yet, there is nothing to abort: the worker never
/// saw it. Whether the worker is free again.
async fn abandon<BR, BW>(
    exchange: &Exchange,
    (mut back_conn, back_rd, back_wr, mut back_pending): (
        ClientConnection,
        &mut BR,
        &mut BW,
        Outbox,
    ),
) -> bool
where
    BR: AsyncRead + Unpin,
    BW: AsyncWrite + Unpin,
{
    if !exchange.reached_backend() {
        return true;
    }
    let id = exchange.backend_id();
    let ended = async {
        if back_conn.abort(id).is_ok() {
            back_pending.append(back_conn.outbox());
        }
        flush(back_wr, &mut back_pending).await.ok()?;
        loop {
            while let Some(event) = back_conn.poll_event().ok()? {
                if let ClientEvent::End { .. } = event {
                    return Some(());
                }
            }
            back_conn.read_buf().reserve(READ_CHUNK);
            if back_rd.read_buf(back_conn.read_buf()).await.ok()? == 0 {
                return None;
            }
        }
    };
    matches!(tokio::time::timeout(ABORT_WAIT, ended).await, Ok(Some(())))
}
