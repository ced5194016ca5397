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
//!
//! [`relay`] asks the backend to keep the connection (FCGI_KEEP_CONN). On a kept connection the
//! app may have closed it (or close it as the request arrives) and answer nothing: the race
//! every keep-alive client meets. Like nginx, the request then goes again, once, on a new
//! connection, when it cannot have been read (the connection was reset with it unread) or its
//! method is idempotent.

use std::io::IoSlice;
use std::time::Instant;

use bytes::{Buf, Bytes};
use plexer_fcgi::cgi::{HeadParser, ResponseHead};
use plexer_fcgi::{
    ClientConnection, ClientEvent, Limits, Outbox, Params, Role, ServerConnection, ServerEvent,
};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use crate::app_stderr::StderrLines;

/// Pending bytes for one side above which the other side is not read.
pub const HIGH_WATER: usize = 256 * 1024;
const READ_CHUNK: usize = 64 * 1024;
/// Room asked for before each read: a small response costs a small buffer (its record bodies
/// keep the buffer they were read into alive until written, so a 64 KiB buffer per read was a
/// 64 KiB allocation per request); a read that fills its room makes the next one 4 times larger,
/// up to [`READ_CHUNK`], so a large body still moves in large reads.
pub struct ReadRoom(usize);

impl ReadRoom {
    pub fn new() -> Self {
        Self(4 * 1024)
    }

    /// Makes room in `buf` for the next read.
    pub fn make(&self, buf: &mut bytes::BytesMut) {
        buf.reserve(self.0);
    }

    /// Notes that a read brought `n` bytes.
    pub fn after_read(&mut self, n: usize) {
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

/// Request body kept to send again should a kept connection turn out closed; a longer body
/// is not kept, and its request is not sent again.
const RESEND_LIMIT: usize = 64 * 1024;

/// The web server's connection: its protocol state, its socket halves, and what waits to be
/// written to it.
pub struct Front<R, W> {
    pub conn: ServerConnection,
    pub rd: R,
    pub wr: W,
    pub pending: Outbox,
}

/// How a relayed request ended.
#[derive(Debug)]
pub enum Ended {
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
    TimedOut {
        head_sent: bool,
    },
    BackendFailed {
        head_sent: bool,
        why: String,
    },
}

/// A kept connection closed before the app answered anything: `resend` goes on a new
/// connection; `why` is what the closed connection said.
struct Unsent {
    resend: Resend,
    why: String,
}

/// What a request sent on a connection that turned out closed had taken from the web server,
/// to send again on a new connection.
#[derive(Debug, Default)]
struct Resend {
    stdin: Vec<Bytes>,
    stdin_bytes: usize,
    stdin_ended: bool,
}

/// What the relay needs to rewrite the response head; `rewrite` is called once with the head.
/// `account` and `worker` go with every STDERR line logged.
pub struct Relay<'a> {
    pub front_id: u16,
    pub account: &'a str,
    pub worker: Option<i32>,
    pub params: &'a Params,
    pub limits: &'a Limits,
    pub deadline: Instant,
    pub rewrite: &'a (dyn Fn(&mut ResponseHead) + Sync),
}

/// Whether a request may be sent twice (nginx's rule: all but POST, LOCK and PATCH).
fn idempotent(params: &Params) -> bool {
    !matches!(
        params.get_str("REQUEST_METHOD"),
        Some("POST" | "LOCK" | "PATCH")
    )
}

/// Whether a socket error says the app closed with our bytes unread (Linux resets a unix or
/// TCP connection closed with unread data), so it never read the request.
fn unread(err: &std::io::Error) -> bool {
    matches!(
        err.kind(),
        std::io::ErrorKind::ConnectionReset | std::io::ErrorKind::BrokenPipe
    )
}

/// Writes some of `outbox` with one vectored write.
pub async fn write_some<W: AsyncWrite + Unpin>(
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
pub async fn flush<W: AsyncWrite + Unpin>(wr: &mut W, outbox: &mut Outbox) -> std::io::Result<()> {
    while !outbox.is_empty() {
        write_some(wr, outbox).await?;
    }
    wr.flush().await
}

/// One attempt of a request on `backend` (`kept`: the connection carried an earlier one),
/// sending first what an earlier attempt took from the web server. `Err` only on a kept
/// connection the app had closed before it answered anything.
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
    let (mut brd, mut bwr) = tokio::io::split(backend);
    let fid = relay.front_id;
    let mut bconn = ClientConnection::new(relay.limits.clone());
    let bid = match bconn.begin_request(Role::Responder, true, relay.params) {
        Ok(id) => id,
        Err(err) => {
            return Ok(Ended::BackendFailed {
                head_sent: false,
                why: err.to_string(),
            });
        }
    };
    let Resend {
        stdin: earlier_stdin,
        mut stdin_ended,
        ..
    } = earlier;
    for data in earlier_stdin {
        let _ = bconn.stdin(bid, data);
    }
    if stdin_ended {
        let _ = bconn.stdin_end(bid);
    }
    // While the app has said nothing on a kept connection, what it was sent is kept.
    let mut resend = kept.then(Resend::default);
    let mut request_unread = false;
    // Nothing of this request has reached the backend yet: given up now, it never ran.
    let mut sent_any = false;
    let mut bpending = Outbox::new();
    let (mut front_room, mut backend_room) = (ReadRoom::new(), ReadRoom::new());
    let mut head = Some(HeadParser::new(relay.limits));
    let mut backend_writable = true;
    let (mut status, mut body_bytes) = (0u16, 0u64);
    let rewrite = relay.rewrite;
    let mut stderr_lines = StderrLines::new(relay.account, relay.worker);
    let sleep = tokio::time::sleep_until(relay.deadline.into());
    tokio::pin!(sleep);
    let failed = |head: &Option<HeadParser>, why: String| Ended::BackendFailed {
        head_sent: head.is_none(),
        why,
    };
    loop {
        // What the web server sent for this request goes to the backend.
        loop {
            match front.conn.poll_event() {
                Ok(Some(ServerEvent::Stdin { id, data })) if id == fid => {
                    if let Some(kept) = resend.as_mut() {
                        kept.stdin_bytes += data.len();
                        kept.stdin.push(data.clone());
                        if kept.stdin_bytes > RESEND_LIMIT {
                            resend = None;
                        }
                    }
                    let _ = bconn.stdin(bid, data);
                }
                Ok(Some(ServerEvent::StdinEnd { id })) if id == fid => {
                    let _ = bconn.stdin_end(bid);
                    stdin_ended = true;
                    if let Some(kept) = resend.as_mut() {
                        kept.stdin_ended = true;
                    }
                }
                Ok(Some(ServerEvent::Abort { id })) if id == fid => {
                    return Ok(abandon(sent_any, bconn, bid, &mut brd, &mut bwr, bpending).await);
                }
                Ok(Some(_)) => {} // DATA of a FILTER request: a responder backend takes none
                Ok(None) => break,
                Err(err) => {
                    tracing::warn!(error = %err, "the web server broke the protocol");
                    return Ok(abandon(sent_any, bconn, bid, &mut brd, &mut bwr, bpending).await);
                }
            }
        }
        if backend_writable {
            bpending.append(bconn.outbox());
        } else {
            // The backend stopped reading: what the web server still sends is dropped, not kept.
            *bconn.outbox() = Outbox::new();
        }
        // What the backend sent goes to the web server.
        loop {
            match bconn.poll_event() {
                Ok(Some(ClientEvent::Stdout { data, .. })) => match head.as_mut() {
                    None => {
                        body_bytes += data.len() as u64;
                        let _ = front.conn.stdout(fid, data);
                    }
                    Some(parser) => match parser.push(data) {
                        Ok(None) => {}
                        Ok(Some((mut parsed, rest))) => {
                            rewrite(&mut parsed);
                            status = parsed.status;
                            body_bytes += rest.len() as u64;
                            let _ = front.conn.stdout(fid, parsed.encode());
                            let _ = front.conn.stdout(fid, rest);
                            head = None;
                        }
                        Err(err) => return Ok(failed(&head, format!("its response head: {err}"))),
                    },
                },
                Ok(Some(ClientEvent::Stderr { data, .. })) => {
                    stderr_lines.push(&data);
                    let _ = front.conn.stderr(fid, data);
                }
                Ok(Some(ClientEvent::End { app_status, .. })) => {
                    if head.is_some() {
                        return Ok(failed(
                            &head,
                            "it ended the request without a response head".into(),
                        ));
                    }
                    let _ = front.conn.end_request(fid, app_status);
                    front.pending.append(front.conn.outbox());
                    // Reusable only when the backend took the whole request and said no more.
                    let reusable = stdin_ended
                        && backend_writable
                        && bpending.is_empty()
                        && bconn.outbox().is_empty();
                    return Ok(Ended::Completed {
                        app_status,
                        status,
                        body_bytes,
                        reusable,
                    });
                }
                Ok(Some(_)) => {}
                Ok(None) => break,
                Err(err) => return Ok(failed(&head, err.to_string())),
            }
        }
        front.pending.append(front.conn.outbox());

        front_room.make(front.conn.read_buf());
        backend_room.make(bconn.read_buf());
        tokio::select! {
            read = front.rd.read_buf(front.conn.read_buf()), if bpending.len() < HIGH_WATER => {
                match read {
                    Ok(n) if n > 0 => front_room.after_read(n),
                    _ => return Ok(abandon(sent_any, bconn, bid, &mut brd, &mut bwr, bpending).await),
                }
            }
            read = brd.read_buf(bconn.read_buf()), if front.pending.len() < HIGH_WATER => {
                let why = match read {
                    Ok(0) => match bconn.on_eof() {
                        Err(err) => err.to_string(),
                        Ok(()) => "it closed the connection".into(),
                    },
                    Ok(n) => {
                        backend_room.after_read(n);
                        resend = None;
                        continue;
                    }
                    Err(err) => {
                        request_unread |= unread(&err);
                        format!("reading from it: {err}")
                    }
                };
                return match resend {
                    Some(resend) if request_unread || idempotent(relay.params) => {
                        Err(Unsent { resend, why })
                    }
                    _ => Ok(failed(&head, why)),
                };
            }
            written = write_some(&mut front.wr, &mut front.pending), if !front.pending.is_empty() => {
                if written.is_err() {
                    return Ok(abandon(sent_any, bconn, bid, &mut brd, &mut bwr, bpending).await);
                }
            }
            written = write_some(&mut bwr, &mut bpending), if !bpending.is_empty() => {
                // An app may stop reading its input once it has answered (§6.2): stop sending
                // and keep reading its response.
                match written {
                    Ok(()) => sent_any = true,
                    Err(err) => {
                        request_unread |= unread(&err);
                        backend_writable = false;
                        bpending = Outbox::new();
                    }
                }
            }
            () = &mut sleep => return Ok(Ended::TimedOut { head_sent: head.is_none() }),
        }
    }
}

/// Relays one request on `backend` until it ends (`kept`: the connection carried an earlier
/// request). When the app had closed a kept connection before it read the request, the request
/// goes once more on a connection from `reconnect`, which replaces `backend`.
pub async fn relay<R, W, B>(
    front: &mut Front<R, W>,
    backend: &mut B,
    kept: bool,
    relay: Relay<'_>,
    reconnect: impl AsyncFnOnce() -> Result<B, String>,
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
        Err(why) => Ok(Ended::BackendFailed {
            head_sent: false,
            why,
        }),
    };
    // A new connection is never a kept one, so this attempt does not end unsent.
    ended.unwrap_or_else(|Unsent { why, .. }| Ended::BackendFailed {
        head_sent: false,
        why,
    })
}

/// How long a backend gets to end a request the web server gave up on.
pub const ABORT_WAIT: std::time::Duration = std::time::Duration::from_secs(1);

/// The web server gave up on the request: tell the backend (ABORT_REQUEST) and wait briefly
/// for its END_REQUEST, dropping whatever it still sends, so that the worker is free again
/// rather than busy with a request nobody wants (php-fpm leaves it busy to the end). When
/// nothing of the request reached the backend yet (`sent_any` false), there is nothing to
/// abort: the worker never saw it.
async fn abandon<BR, BW>(
    sent_any: bool,
    mut bconn: ClientConnection,
    bid: u16,
    brd: &mut BR,
    bwr: &mut BW,
    mut bpending: Outbox,
) -> Ended
where
    BR: AsyncRead + Unpin,
    BW: AsyncWrite + Unpin,
{
    if !sent_any {
        return Ended::ClientGone { worker_free: true };
    }
    let ended = async {
        if bconn.abort(bid).is_ok() {
            bpending.append(bconn.outbox());
        }
        flush(bwr, &mut bpending).await.ok()?;
        loop {
            while let Some(event) = bconn.poll_event().ok()? {
                if let ClientEvent::End { .. } = event {
                    return Some(());
                }
            }
            bconn.read_buf().reserve(READ_CHUNK);
            if brd.read_buf(bconn.read_buf()).await.ok()? == 0 {
                return None;
            }
        }
    };
    let worker_free = matches!(tokio::time::timeout(ABORT_WAIT, ended).await, Ok(Some(())));
    Ended::ClientGone { worker_free }
}
