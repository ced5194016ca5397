//! One request's exchange between the web server's connection and a backend connection, as
//! values: what each side's events do to the other side's codec, and when and how the request
//! ends. No I/O: the relay loop ([`super::attempt`]) reads and writes, and asks this what
//! follows. Each phase is an enum with one transition:
//!
//! - the request's body from the web server ([`Upload`]): streaming, then ended;
//! - the backend's response ([`Response`]): its head being parsed, then the body;
//! - whether the request may go again on a new connection ([`Retry`]): possible while a kept
//!   connection has answered nothing, impossible from the first byte back (or a body too long
//!   to keep);
//! - whether the backend still reads ([`BackendInput`]): open, then refused;
//! - whether anything reached the backend ([`Reached`]): nothing, then something.

use std::io;

use bytes::Bytes;
use plexer_fcgi::cgi::{HeadParser, ResponseHead};
use plexer_fcgi::{
    ClientConnection, ClientEvent, Limits, Outbox, Params, Role, ServerConnection, ServerEvent,
};

use super::{Ended, Stalled};
use crate::app_stderr::StderrLines;

/// Request body kept to send again should a kept connection turn out closed; a longer body
/// is not kept, and its request is not sent again.
pub(super) const RESEND_LIMIT: usize = 64 * 1024;

/// What a request sent on a connection that turned out closed had taken from the web server,
/// to send again on a new connection.
#[derive(Debug, Default, PartialEq, Eq)]
pub(super) struct Resend {
    stdin: Vec<Bytes>,
    stdin_bytes: usize,
    upload: Upload,
}

/// A kept connection closed before the app answered anything: `resend` goes on a new
/// connection; `why` is what the closed connection said.
#[derive(Debug)]
pub(super) struct Unsent {
    pub(super) resend: Resend,
    pub(super) why: String,
}

/// The request's body from the web server.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(super) enum Upload {
    #[default]
    Streaming,
    /// The empty STDIN record came: the backend has the whole request.
    Ended,
}

/// The backend's response.
#[derive(Debug)]
enum Response {
    /// Its CGI head is being read; nothing went to the web server yet.
    Head(HeadParser),
    /// The head went to the web server (rewritten); the body follows as it comes.
    Body,
}

/// Whether the request may go again on a new connection.
#[derive(Debug)]
enum Retry {
    /// The app answered, or the connection was new, or the body outgrew [`RESEND_LIMIT`].
    Impossible,
    /// A kept connection has answered nothing: what was sent is kept. `unread`: the app reset
    /// the connection with our bytes unread, so it never saw the request.
    Possible { sent: Resend, unread: bool },
}

/// Whether the backend still reads what is sent to it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum BackendInput {
    Open,
    /// It stopped reading (an app may, once it has answered, §6.2): what the web server still
    /// sends is dropped.
    Refused,
}

/// Whether anything of the request reached the backend: given up before, it never ran.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Reached {
    Nothing,
    Something,
}

/// What the relay does after the web server's events.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum FrontStep {
    Continue,
    /// The web server asked to end the request (ABORT_REQUEST, §5.4): it waits for the
    /// request's END_REQUEST, and the connection goes on.
    Aborted,
    /// The web server broke the protocol: the connection is over.
    Abandon,
}

/// What the relay loop does after [`Exchange::pump`].
#[derive(Debug)]
pub(super) enum Pump {
    /// Wait for the sockets.
    Wait,
    /// The web server sent ABORT_REQUEST for the request.
    Aborted,
    /// The web server broke the protocol.
    Abandon,
    Ended(Ended),
}

/// One request between the two codecs.
#[derive(Debug)]
pub(super) struct Exchange {
    front_id: u16,
    backend_id: u16,
    upload: Upload,
    response: Response,
    retry: Retry,
    backend_input: BackendInput,
    reached: Reached,
    status: u16,
    body_bytes: u64,
}

impl Exchange {
    /// Begins the request on `backend` (`kept`: the connection carried an earlier request),
    /// sending first what an earlier attempt took from the web server. `Err` when the request
    /// cannot even be encoded.
    #[inline]
    pub(super) fn begin(
        front_id: u16,
        params: &Params,
        limits: &Limits,
        kept: bool,
        earlier: Resend,
        backend: &mut ClientConnection,
    ) -> Result<Self, Ended> {
        let backend_id = backend
            .begin_request(Role::Responder, true, params)
            .map_err(|err| Ended::BackendFailed {
                head_sent: false,
                why: err.to_string(),
            })?;
        let Resend { stdin, upload, .. } = earlier;
        for data in stdin {
            let _ = backend.stdin(backend_id, data);
        }
        if upload == Upload::Ended {
            let _ = backend.stdin_end(backend_id);
        }
        let retry = match kept {
            true => Retry::Possible {
                sent: Resend::default(),
                unread: false,
            },
            false => Retry::Impossible,
        };
        Ok(Exchange {
            front_id,
            backend_id,
            upload,
            response: Response::Head(HeadParser::new(limits)),
            retry,
            backend_input: BackendInput::Open,
            reached: Reached::Nothing,
            status: 0,
            body_bytes: 0,
        })
    }

    #[inline]
    pub(super) fn backend_id(&self) -> u16 {
        self.backend_id
    }

    /// Whether anything of the request went out to the backend.
    #[inline]
    pub(super) fn reached_backend(&self) -> bool {
        self.reached == Reached::Something
    }

    /// Passes what each codec decoded to the other: the web server's body to the backend's
    /// codec and on to `back_pending`, the backend's response to the front codec.
    #[inline]
    pub(super) fn pump(
        &mut self,
        front: &mut ServerConnection,
        backend: &mut ClientConnection,
        back_pending: &mut Outbox,
        rewrite: &(dyn Fn(&mut ResponseHead) + Sync),
        stderr: &mut StderrLines<'_>,
    ) -> Pump {
        match self.front_events(front, backend) {
            FrontStep::Continue => {}
            FrontStep::Aborted => return Pump::Aborted,
            FrontStep::Abandon => return Pump::Abandon,
        }
        self.queue_for_backend(backend, back_pending);
        let unsent = !back_pending.is_empty();
        match self.backend_events(backend, front, rewrite, stderr, unsent) {
            Some(ended) => Pump::Ended(ended),
            None => Pump::Wait,
        }
    }

    /// Takes every event the web server's connection has ready.
    #[inline]
    pub(super) fn front_events(
        &mut self,
        front: &mut ServerConnection,
        backend: &mut ClientConnection,
    ) -> FrontStep {
        loop {
            match front.poll_event() {
                Ok(Some(event)) => match self.front_event(event, backend) {
                    FrontStep::Continue => {}
                    stop => return stop,
                },
                Ok(None) => return FrontStep::Continue,
                Err(err) => {
                    tracing::warn!(error = %err, "the web server broke the protocol");
                    return FrontStep::Abandon;
                }
            }
        }
    }

    /// What one event of the web server's does: its body goes to the backend.
    #[inline]
    fn front_event(&mut self, event: ServerEvent, backend: &mut ClientConnection) -> FrontStep {
        match event {
            ServerEvent::Stdin { id, data } if id == self.front_id => {
                if let Retry::Possible { sent, .. } = &mut self.retry {
                    sent.stdin_bytes += data.len();
                    sent.stdin.push(data.clone());
                    if sent.stdin_bytes > RESEND_LIMIT {
                        self.retry = Retry::Impossible;
                    }
                }
                let _ = backend.stdin(self.backend_id, data);
            }
            ServerEvent::StdinEnd { id } if id == self.front_id => {
                let _ = backend.stdin_end(self.backend_id);
                self.upload = Upload::Ended;
                if let Retry::Possible { sent, .. } = &mut self.retry {
                    sent.upload = Upload::Ended;
                }
            }
            ServerEvent::Abort { id } if id == self.front_id => return FrontStep::Aborted,
            // DATA of a FILTER request: a responder backend takes none.
            _ => {}
        }
        FrontStep::Continue
    }

    /// Moves what the backend's codec encoded to `pending`, or drops it once the backend
    /// stopped reading.
    #[inline]
    pub(super) fn queue_for_backend(&self, backend: &mut ClientConnection, pending: &mut Outbox) {
        match self.backend_input {
            BackendInput::Open => pending.append(backend.outbox()),
            BackendInput::Refused => *backend.outbox() = Outbox::new(),
        }
    }

    /// Takes every event the backend's connection has ready; `Some` when the request ended.
    /// `unsent`: bytes for the backend wait to be written (then it is not reusable).
    #[inline]
    pub(super) fn backend_events(
        &mut self,
        backend: &mut ClientConnection,
        front: &mut ServerConnection,
        rewrite: &(dyn Fn(&mut ResponseHead) + Sync),
        stderr: &mut StderrLines<'_>,
        unsent: bool,
    ) -> Option<Ended> {
        loop {
            let event = match backend.poll_event() {
                Ok(Some(event)) => event,
                Ok(None) => return None,
                Err(err) => return Some(self.failed(err.to_string())),
            };
            let nothing_unsent = !unsent && backend.outbox().is_empty();
            if let Some(ended) = self.backend_event(event, front, rewrite, stderr, nothing_unsent) {
                return Some(ended);
            }
        }
    }

    /// What one event of the backend's does: its response goes to the web server.
    #[inline]
    fn backend_event(
        &mut self,
        event: ClientEvent,
        front: &mut ServerConnection,
        rewrite: &(dyn Fn(&mut ResponseHead) + Sync),
        stderr: &mut StderrLines<'_>,
        nothing_unsent: bool,
    ) -> Option<Ended> {
        match event {
            ClientEvent::Stdout { data, .. } => self.response_bytes(data, front, rewrite),
            ClientEvent::Stderr { data, .. } => {
                stderr.push(&data);
                let _ = front.stderr(self.front_id, data);
                None
            }
            ClientEvent::End { app_status, .. } => {
                Some(self.end(app_status, front, nothing_unsent))
            }
            _ => None,
        }
    }

    /// Response bytes: the head is parsed and rewritten once whole; the body passes as is.
    #[inline]
    fn response_bytes(
        &mut self,
        data: Bytes,
        front: &mut ServerConnection,
        rewrite: &(dyn Fn(&mut ResponseHead) + Sync),
    ) -> Option<Ended> {
        let Response::Head(parser) = &mut self.response else {
            self.body_bytes += data.len() as u64;
            let _ = front.stdout(self.front_id, data);
            return None;
        };
        match parser.push(data) {
            Ok(None) => None,
            Ok(Some((mut head, rest))) => {
                rewrite(&mut head);
                self.status = head.status;
                self.body_bytes += rest.len() as u64;
                let _ = front.stdout(self.front_id, head.encode());
                let _ = front.stdout(self.front_id, rest);
                self.response = Response::Body;
                None
            }
            Err(err) => Some(self.failed(format!("its response head: {err}"))),
        }
    }

    /// The backend's END_REQUEST: the response is complete when its head came.
    #[inline]
    fn end(&self, app_status: u32, front: &mut ServerConnection, nothing_unsent: bool) -> Ended {
        if let Response::Head(_) = self.response {
            return self.failed("it ended the request without a response head".into());
        }
        let _ = front.end_request(self.front_id, app_status);
        Ended::Completed {
            app_status,
            status: self.status,
            body_bytes: self.body_bytes,
            // Reusable only when the backend took the whole request and said no more.
            reusable: self.upload == Upload::Ended
                && self.backend_input == BackendInput::Open
                && nothing_unsent,
        }
    }

    /// Bytes came from the backend: it answered, so the request can no longer go again.
    #[inline]
    pub(super) fn backend_answered(&mut self) {
        self.retry = Retry::Impossible;
    }

    /// A read from the backend: the bytes it brought, or how the request ends now that the
    /// backend's connection did (`Err(Err(_))`: it goes again on a new connection).
    #[inline]
    pub(super) fn backend_read(
        &mut self,
        read: io::Result<usize>,
        conn: &ClientConnection,
        params: &Params,
    ) -> Result<usize, Result<Ended, Unsent>> {
        let (why, unread) = match read {
            Ok(0) => match conn.on_eof() {
                Err(err) => (err.to_string(), false),
                Ok(()) => ("it closed the connection".into(), false),
            },
            Ok(n) => {
                self.backend_answered();
                return Ok(n);
            }
            Err(err) => (format!("reading from it: {err}"), unread(&err)),
        };
        Err(self.backend_closed(why, unread, params))
    }

    /// A write to the backend: an app may stop reading its input once it has answered
    /// (§6.2), and then what waits for it is dropped while its response is still read.
    #[inline]
    pub(super) fn backend_written(&mut self, written: io::Result<()>, pending: &mut Outbox) {
        match written {
            Ok(()) => self.backend_wrote(),
            Err(err) => {
                self.backend_refused_input(unread(&err));
                *pending = Outbox::new();
            }
        }
    }

    /// A write to the backend went out.
    #[inline]
    pub(super) fn backend_wrote(&mut self) {
        self.reached = Reached::Something;
    }

    /// A write to the backend failed: it stopped reading. `unread`: it reset the connection
    /// with our bytes unread.
    #[inline]
    pub(super) fn backend_refused_input(&mut self, unread: bool) {
        self.backend_input = BackendInput::Refused;
        self.note_unread(unread);
    }

    /// The backend's connection ended (`why`) before the request did: the request goes again
    /// on a new connection when it may (`Err`): when the app never read it, or its method
    /// (in `params`) is idempotent. Else it failed.
    pub(super) fn backend_closed(
        &mut self,
        why: String,
        unread: bool,
        params: &Params,
    ) -> Result<Ended, Unsent> {
        self.note_unread(unread);
        match std::mem::replace(&mut self.retry, Retry::Impossible) {
            Retry::Possible { sent, unread } if unread || idempotent(params) => {
                Err(Unsent { resend: sent, why })
            }
            _ => Ok(self.failed(why)),
        }
    }

    #[inline]
    fn note_unread(&mut self, now_unread: bool) {
        if let Retry::Possible { unread, .. } = &mut self.retry {
            *unread |= now_unread;
        }
    }

    /// `request_timeout` passed.
    #[inline]
    pub(super) fn timed_out(&self) -> Ended {
        Ended::TimedOut {
            head_sent: self.head_sent(),
        }
    }

    /// The backend failed (`why`).
    #[inline]
    pub(super) fn failed(&self, why: String) -> Ended {
        Ended::BackendFailed {
            head_sent: self.head_sent(),
            why,
        }
    }

    /// The web server kept plexer waiting past its timeout.
    #[inline]
    pub(super) fn stalled(&self, stalled: Stalled, worker_free: bool) -> Ended {
        Ended::Stalled {
            stalled,
            head_sent: self.head_sent(),
            worker_free,
        }
    }

    /// Whether the rest of the request's body is still to come from the web server.
    #[inline]
    pub(super) fn awaits_body(&self) -> bool {
        self.upload == Upload::Streaming
    }

    #[inline]
    fn head_sent(&self) -> bool {
        matches!(self.response, Response::Body)
    }
}

/// Whether a socket error says the app closed with our bytes unread (Linux resets a unix or
/// TCP connection closed with unread data), so it never read the request.
fn unread(err: &io::Error) -> bool {
    matches!(
        err.kind(),
        io::ErrorKind::ConnectionReset | io::ErrorKind::BrokenPipe
    )
}

/// Whether a request may be sent twice (nginx's rule: all but POST, LOCK and PATCH).
fn idempotent(params: &Params) -> bool {
    !matches!(
        params.get_str("REQUEST_METHOD"),
        Some("POST" | "LOCK" | "PATCH")
    )
}

#[cfg(test)]
mod tests;
