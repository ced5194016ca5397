//! A std-only driver for simple FastCGI applications: one thread, one connection and one request
//! at a time, like php-cgi. It is what a forked worker of a prefork pool runs, so it starts no
//! threads and no runtime.
//!
//! - [`Listener::from_fd0`] finds the listening socket a web server or supervisor hands over as
//!   descriptor 0 (`FCGI_LISTENSOCK_FILENO`, §2.2): fd 0 is a socket and `getpeername` fails
//!   with `ENOTCONN`.
//! - [`Listener::accept`] honours `FCGI_WEB_SERVER_ADDRS` (§3.2): with it set, a TCP peer whose
//!   address is not listed is closed at once, and so is any non-TCP peer, as the spec says.
//! - [`serve_connection`] runs the [`ServerConnection`] state machine over a blocking stream and
//!   calls the handler once per request. The handler reads the body as a stream
//!   ([`Request`] is [`Read`]) and writes the response as it goes; the driver ends the request,
//!   closing STDOUT and sending END_REQUEST, when the handler returns.

use std::collections::VecDeque;
use std::io::{self, IoSlice, Read, Write};
use std::net::{IpAddr, TcpListener, TcpStream};
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::net::{UnixListener, UnixStream};

use bytes::{Buf, Bytes};

use crate::address::Address;
use crate::error::{Error, LimitExceeded, ProtocolError};
use crate::server::{RequestHead, ServerConfig, ServerConnection, ServerEvent};
use crate::stream::StreamState;

/// The response is pushed to the socket once this much is queued.
const FLUSH_AT: usize = 64 * 1024;

/// A listening socket of either family.
#[derive(Debug)]
pub enum Listener {
    Unix(UnixListener),
    Tcp(TcpListener),
}

/// An accepted connection of either family.
#[derive(Debug)]
pub enum Stream {
    Unix(UnixStream),
    Tcp(TcpStream),
}

impl Listener {
    /// The listening socket on descriptor 0, or `None` when fd 0 is not one (the application
    /// was started from a shell, not by a web server or supervisor).
    pub fn from_fd0() -> io::Result<Option<Self>> {
        let fd = match io::stdin().as_fd().try_clone_to_owned() {
            Ok(fd) => fd,
            Err(err) if err.raw_os_error() == Some(9) => return Ok(None), // EBADF: fd 0 closed
            Err(err) => return Err(err),
        };
        Self::from_listening_fd(fd)
    }

    /// Wraps a descriptor when it is a listening socket: a socket with no peer.
    pub fn from_listening_fd(fd: OwnedFd) -> io::Result<Option<Self>> {
        let not_connected = |err: &io::Error| err.kind() == io::ErrorKind::NotConnected;
        let tcp = TcpStream::from(fd.try_clone()?);
        if tcp.local_addr().is_ok() {
            return Ok(match tcp.peer_addr() {
                Err(err) if not_connected(&err) => Some(Self::Tcp(TcpListener::from(fd))),
                _ => None,
            });
        }
        let unix = UnixStream::from(fd.try_clone()?);
        if unix.local_addr().is_ok() {
            return Ok(match unix.peer_addr() {
                Err(err) if not_connected(&err) => Some(Self::Unix(UnixListener::from(fd))),
                _ => None,
            });
        }
        Ok(None)
    }

    /// Binds `addr`.
    pub fn bind(addr: &Address) -> io::Result<Self> {
        match addr {
            Address::Unix(path) => UnixListener::bind(path).map(Self::Unix),
            Address::Tcp(hostport) => TcpListener::bind(hostport).map(Self::Tcp),
        }
    }

    /// Waits for the next connection the `FCGI_WEB_SERVER_ADDRS` allow-list lets in.
    pub fn accept(&self) -> io::Result<Stream> {
        let allowed = web_server_addrs();
        loop {
            let stream = match self {
                Self::Unix(l) => Stream::Unix(l.accept()?.0),
                Self::Tcp(l) => Stream::Tcp(l.accept()?.0),
            };
            let Some(allowed) = &allowed else {
                return Ok(stream);
            };
            // §3.2: a peer not in the list, including any non-TCP peer, is closed.
            if let Stream::Tcp(tcp) = &stream
                && tcp
                    .peer_addr()
                    .is_ok_and(|peer| allowed.contains(&peer.ip()))
            {
                return Ok(stream);
            }
        }
    }
}

/// `FCGI_WEB_SERVER_ADDRS`, when set: the addresses that may connect. Entries that do not parse
/// are left out, so a typo narrows the list rather than opening it.
fn web_server_addrs() -> Option<Vec<IpAddr>> {
    let list = std::env::var("FCGI_WEB_SERVER_ADDRS").ok()?;
    Some(
        list.split(',')
            .filter_map(|addr| addr.trim().parse().ok())
            .collect(),
    )
}

impl Stream {
    /// Connects to `addr`.
    pub fn connect(addr: &Address) -> io::Result<Self> {
        match addr {
            Address::Unix(path) => UnixStream::connect(path).map(Self::Unix),
            Address::Tcp(hostport) => TcpStream::connect(hostport).map(Self::Tcp),
        }
    }

    /// A second handle to the same connection, e.g. to write on one thread and read on another.
    pub fn try_clone(&self) -> io::Result<Self> {
        match self {
            Self::Unix(s) => s.try_clone().map(Self::Unix),
            Self::Tcp(s) => s.try_clone().map(Self::Tcp),
        }
    }

    /// Closes the writing half, so the peer reads end-of-file.
    pub fn shutdown_write(&self) -> io::Result<()> {
        match self {
            Self::Unix(s) => s.shutdown(std::net::Shutdown::Write),
            Self::Tcp(s) => s.shutdown(std::net::Shutdown::Write),
        }
    }
}

impl Read for Stream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Self::Unix(s) => s.read(buf),
            Self::Tcp(s) => s.read(buf),
        }
    }
}

impl Write for Stream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Self::Unix(s) => s.write(buf),
            Self::Tcp(s) => s.write(buf),
        }
    }

    fn write_vectored(&mut self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
        match self {
            Self::Unix(s) => s.write_vectored(bufs),
            Self::Tcp(s) => s.write_vectored(bufs),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// One connection: the protocol state and its socket.
struct Connection<S> {
    stream: S,
    protocol: ServerConnection,
    /// Where socket reads land before the protocol takes them; one per connection, not per read.
    chunk: Box<[u8]>,
}

impl<S: Read + Write> Connection<S> {
    /// The next event, reading from the socket as needed; `None` when the peer closed cleanly,
    /// or when this side must close (a request without `FCGI_KEEP_CONN` ended or was refused,
    /// §5.1): its answer is flushed first, and nothing after it is read.
    fn next_event(&mut self) -> Result<Option<ServerEvent>, Error> {
        loop {
            if let Some(event) = self.protocol.poll_event()? {
                return Ok(Some(event));
            }
            if self.protocol.is_closing() {
                self.flush()?;
                return Ok(None);
            }
            // Management answers (GET_VALUES_RESULT, ...) go out before we block on reading.
            self.flush()?;
            let n = match self.stream.read(&mut self.chunk) {
                Ok(n) => n,
                Err(err) if err.kind() == io::ErrorKind::Interrupted => continue,
                Err(err) => return Err(err.into()),
            };
            if n == 0 {
                self.protocol.on_eof()?;
                return Ok(None);
            }
            self.protocol.receive(&self.chunk[..n]);
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        let outbox = self.protocol.outbox();
        while outbox.has_remaining() {
            let mut slices = [IoSlice::new(&[]); 64];
            let count = outbox.io_slices(&mut slices);
            let n = match self.stream.write_vectored(&slices[..count]) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(n) => n,
                Err(err) if err.kind() == io::ErrorKind::Interrupted => continue,
                Err(err) => return Err(err),
            };
            outbox.advance(n);
        }
        Ok(())
    }
}

/// Which of its body streams a [`Request`] reads.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Body {
    Stdin,
    Data,
}

/// One request, handed to the handler: its params, its body as a [`Read`], and the response.
pub struct Request<'c, S> {
    head: RequestHead,
    conn: &'c mut Connection<S>,
    stdin: Pending,
    data: Pending,
    aborted: bool,
    /// Whether any of the response went out: a failing handler's 500 only fits before it.
    stdout_started: bool,
    exit_status: u32,
    /// A transport or protocol failure seen while serving; it ends the connection.
    failure: Option<Error>,
}

/// Input bytes that arrived for one stream of the request and were not read yet.
struct Pending {
    chunks: VecDeque<Bytes>,
    buffered: usize,
    stream: StreamState,
}

impl Pending {
    fn new(stream: StreamState) -> Self {
        Pending {
            chunks: VecDeque::new(),
            buffered: 0,
            stream,
        }
    }
}

impl<S: Read + Write> Request<'_, S> {
    pub fn id(&self) -> u16 {
        self.head.id
    }

    pub fn head(&self) -> &RequestHead {
        &self.head
    }

    pub fn params(&self) -> &crate::Params {
        &self.head.params
    }

    /// The last value of param `name` as text, if it is UTF-8.
    pub fn param(&self, name: &str) -> Option<&str> {
        self.head.params.get_str(name)
    }

    /// True once the web server sent ABORT_REQUEST for this request.
    pub fn is_aborted(&self) -> bool {
        self.aborted
    }

    /// The CGI exit code sent in END_REQUEST (default 0).
    pub fn set_exit_status(&mut self, status: u32) {
        self.exit_status = status;
    }

    /// Appends response bytes (CGI headers first, then the body).
    pub fn write_stdout(&mut self, data: &[u8]) -> io::Result<()> {
        self.stdout_started |= !data.is_empty();
        self.conn
            .protocol
            .stdout_slice(self.head.id, data)
            .map_err(Error::from)?;
        self.flush_when_full()
    }

    /// Appends bytes to the request's error stream (the web server logs them).
    pub fn write_stderr(&mut self, data: &[u8]) -> io::Result<()> {
        self.conn
            .protocol
            .stderr_slice(self.head.id, data)
            .map_err(Error::from)?;
        self.flush_when_full()
    }

    /// Sends what is queued now rather than when the request ends.
    pub fn flush(&mut self) -> io::Result<()> {
        self.conn.flush()
    }

    fn flush_when_full(&mut self) -> io::Result<()> {
        if self.conn.protocol.outbox().len() >= FLUSH_AT {
            self.conn.flush()?;
        }
        Ok(())
    }

    /// Reads the rest of the body into memory, refusing bodies over
    /// [`crate::Limits::max_stdin_buffered`]. A request the web server aborted is an error
    /// (`ConnectionAborted`), never a shorter body.
    pub fn read_body(&mut self) -> Result<Vec<u8>, Error> {
        let limit = self.conn.protocol_limits().max_stdin_buffered;
        let mut body = Vec::new();
        loop {
            let chunk = self.next_input(Body::Stdin)?;
            if chunk.is_empty() {
                return Ok(body);
            }
            if body.len() + chunk.len() > limit {
                return Err(LimitExceeded::StdinBuffered { limit }.into());
            }
            body.extend_from_slice(&chunk);
        }
    }

    /// A reader of a FILTER request's DATA stream (§6.4).
    pub fn data_reader(&mut self) -> impl Read + '_ {
        DataReader(self)
    }

    /// The next piece of `input`, empty at its end. Events for the other stream are kept,
    /// bounded by `max_stdin_buffered`.
    fn next_chunk(&mut self, input: Body) -> Result<Bytes, Error> {
        loop {
            let pending = match input {
                Body::Stdin => &mut self.stdin,
                Body::Data => &mut self.data,
            };
            if let Some(chunk) = pending.chunks.pop_front() {
                pending.buffered -= chunk.len();
                return Ok(chunk);
            }
            if !pending.stream.is_open() || self.aborted {
                return Ok(Bytes::new());
            }
            let id = self.head.id;
            let event = self
                .conn
                .next_event()?
                .ok_or(ProtocolError::InputUnfinished(id))?;
            let limit = self.conn.protocol_limits().max_stdin_buffered;
            let (target, chunk) = match event {
                ServerEvent::Stdin { id: i, data } if i == id => (&mut self.stdin, Some(data)),
                ServerEvent::StdinEnd { id: i } if i == id => (&mut self.stdin, None),
                ServerEvent::Data { id: i, data } if i == id => (&mut self.data, Some(data)),
                ServerEvent::DataEnd { id: i } if i == id => (&mut self.data, None),
                ServerEvent::Abort { id: i } if i == id => {
                    self.aborted = true;
                    continue;
                }
                // Without multiplexing no other request can be active.
                _ => continue,
            };
            match chunk {
                Some(chunk) => {
                    target.buffered += chunk.len();
                    if target.buffered > limit {
                        return Err(LimitExceeded::StdinBuffered { limit }.into());
                    }
                    target.chunks.push_back(chunk);
                }
                None => target.stream = StreamState::Ended,
            }
        }
    }

    /// [`next_chunk`](Self::next_chunk) for the application: a protocol or transport failure
    /// is recorded (it ends the connection however the handler takes it; the handler gets its
    /// description), a limit is the request's own error, and an aborted request's end is an
    /// error (`ConnectionAborted`), never the end of its input.
    fn next_input(&mut self, input: Body) -> Result<Bytes, Error> {
        let chunk = match self.next_chunk(input) {
            Ok(chunk) => chunk,
            Err(err @ Error::Limit(_)) => return Err(err),
            Err(err) => {
                let returned = io::Error::new(io::ErrorKind::InvalidData, err.to_string());
                self.failure.get_or_insert(err);
                return Err(Error::Io(returned));
            }
        };
        if self.aborted && chunk.is_empty() {
            return Err(Error::Io(io::Error::new(
                io::ErrorKind::ConnectionAborted,
                "the web server aborted the request",
            )));
        }
        Ok(chunk)
    }

    fn read_input(&mut self, input: Body, buf: &mut [u8]) -> io::Result<usize> {
        let chunk = match self.next_input(input) {
            Ok(chunk) => chunk,
            Err(Error::Io(err)) => return Err(err),
            // Read has no way to say "this request only": the connection ends.
            Err(err) => {
                let returned = io::Error::new(io::ErrorKind::InvalidData, err.to_string());
                self.failure.get_or_insert(err);
                return Err(returned);
            }
        };
        let n = chunk.len().min(buf.len());
        buf[..n].copy_from_slice(&chunk[..n]);
        if n < chunk.len() {
            let pending = match input {
                Body::Stdin => &mut self.stdin,
                Body::Data => &mut self.data,
            };
            pending.buffered += chunk.len() - n;
            pending.chunks.push_front(chunk.slice(n..));
        }
        Ok(n)
    }
}

impl<S> Connection<S> {
    fn protocol_limits(&self) -> &crate::Limits {
        self.protocol.limits()
    }
}

impl<S: Read + Write> Read for Request<'_, S> {
    /// Reads the request body (STDIN); 0 at its end.
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.read_input(Body::Stdin, buf)
    }
}

struct DataReader<'r, 'c, S>(&'r mut Request<'c, S>);

impl<S: Read + Write> Read for DataReader<'_, '_, S> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.0.read_input(Body::Data, buf)
    }
}

/// Serves requests on `stream` one after another until the web server closes it, or a request
/// without `FCGI_KEEP_CONN` ends. `handler` is called once per request; when it returns an
/// error, the error goes to the request's STDERR and the exit status becomes 1 unless set.
///
/// Multiplexing is off whatever `config` says: this driver serves one request at a time, and a
/// concurrent BEGIN_REQUEST gets CANT_MPX_CONN.
pub fn serve_connection<S, H>(stream: S, config: &ServerConfig, mut handler: H) -> Result<(), Error>
where
    S: Read + Write,
    H: FnMut(&mut Request<'_, S>) -> io::Result<()>,
{
    let config = ServerConfig {
        multiplex: false,
        ..config.clone()
    };
    let mut conn = Connection {
        stream,
        protocol: ServerConnection::new(config),
        chunk: vec![0; 16 * 1024].into_boxed_slice(),
    };
    while let Some(event) = conn.next_event()? {
        let head = match event {
            ServerEvent::Request(head) => head,
            // Aborted before its params ended, so no handler saw it: it is ended here (a
            // request the handler already ended is not active, and that is fine).
            ServerEvent::Abort { id } => {
                let _ = conn.protocol.end_request(id, 0);
                continue;
            }
            _ => continue, // input of a request the handler already ended
        };
        let id = head.id;
        let filter = head.role == crate::Role::Filter;
        let mut request = Request {
            head,
            conn: &mut conn,
            stdin: Pending::new(StreamState::Open),
            // Only a FILTER request has a DATA stream (§6.4): for the others it is over.
            data: Pending::new(if filter {
                StreamState::Open
            } else {
                StreamState::Ended
            }),
            aborted: false,
            stdout_started: false,
            exit_status: 0,
            failure: None,
        };
        let outcome = handler(&mut request);
        if let Some(failure) = request.failure.take() {
            return Err(failure);
        }
        let mut status = request.exit_status;
        if let Err(err) = outcome {
            if !request.stdout_started && !request.aborted {
                // Nothing was written: give the web server a response rather than none.
                let _ = request.write_stdout(b"Status: 500 Internal Server Error\r\n\r\n");
            }
            let _ = request.write_stderr(format!("{err}\n").as_bytes());
            status = status.max(1);
        }
        conn.protocol.end_request(id, status)?;
        conn.flush()?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::client::{ClientConnection, ClientEvent};
    use crate::{Limits, Outbox, Params, RecordType, Role};

    /// A stream that reads from a fixed buffer and records what is written.
    struct Wire {
        input: io::Cursor<Vec<u8>>,
        output: Vec<u8>,
    }

    impl Read for Wire {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            self.input.read(buf)
        }
    }

    impl Write for Wire {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            self.output.extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    fn requests(bodies: &[&[u8]], keep_conn: bool) -> Vec<u8> {
        let mut wire = Vec::new();
        for body in bodies {
            let mut client = ClientConnection::new(Limits::default());
            let params: Params = [("REQUEST_URI", "/echo")].into_iter().collect();
            let id = client
                .begin_request(Role::Responder, keep_conn, &params)
                .unwrap();
            client.stdin(id, Bytes::copy_from_slice(body)).unwrap();
            client.stdin_end(id).unwrap();
            let out = client.outbox();
            wire.extend_from_slice(&out.copy_to_bytes(out.remaining()));
        }
        wire
    }

    fn responses(output: &[u8], count: usize) -> Vec<(Vec<u8>, u32)> {
        let mut client = ClientConnection::new(Limits::default());
        client.receive(output);
        let mut got = Vec::new();
        for _ in 0..count {
            client
                .begin_request(Role::Responder, true, &Params::new())
                .unwrap();
            let mut stdout = Vec::new();
            loop {
                match client.poll_event().unwrap().expect("a whole response") {
                    ClientEvent::Stdout { data, .. } => stdout.extend_from_slice(&data),
                    ClientEvent::End { app_status, .. } => {
                        got.push((stdout, app_status));
                        break;
                    }
                    _ => {}
                }
            }
        }
        got
    }

    #[test]
    fn serves_keep_alive_requests_in_turn_with_streamed_bodies() {
        let wire = requests(&[b"first", b"second body"], true);
        let mut stream = Wire {
            input: io::Cursor::new(wire),
            output: Vec::new(),
        };
        serve_connection(&mut stream, &ServerConfig::default(), |req| {
            let mut body = Vec::new();
            req.read_to_end(&mut body)?;
            req.write_stdout(b"Content-Type: text/plain\r\n\r\n")?;
            req.write_stdout(&body)
        })
        .unwrap();
        let got = responses(&stream.output, 2);
        assert!(got[0].0.ends_with(b"first"));
        assert!(got[1].0.ends_with(b"second body"));
    }

    #[test]
    fn a_failing_handler_gets_a_500_and_exit_status_1() {
        let wire = requests(&[b""], false);
        let mut stream = Wire {
            input: io::Cursor::new(wire),
            output: Vec::new(),
        };
        serve_connection(&mut stream, &ServerConfig::default(), |_| {
            Err(io::Error::other("boom"))
        })
        .unwrap();
        let got = responses(&stream.output, 1);
        assert!(got[0].0.starts_with(b"Status: 500"));
        assert_eq!(got[0].1, 1);
    }

    #[test]
    fn a_handler_failing_after_its_head_gets_no_500_inside_its_body() {
        let wire = requests(&[b"body"], false);
        let mut stream = Wire {
            input: io::Cursor::new(wire),
            output: Vec::new(),
        };
        serve_connection(&mut stream, &ServerConfig::default(), |req| {
            req.write_stdout(b"Content-Type: text/plain\r\n\r\npartial")?;
            // Reading flushes what was written, as a real handler's input does.
            let mut body = Vec::new();
            req.read_to_end(&mut body)?;
            Err(io::Error::other("boom"))
        })
        .unwrap();
        let got = responses(&stream.output, 1);
        assert_eq!(got[0].0, b"Content-Type: text/plain\r\n\r\npartial");
        assert_eq!(got[0].1, 1);
    }

    #[test]
    fn a_request_aborted_before_its_params_ended_is_ended_without_the_handler() {
        let mut wire = Vec::new();
        let begin = [0u8, 1, 1, 0, 0, 0, 0, 0]; // RESPONDER, KEEP_CONN
        let partial_params = [1u8, 1, b'a', b'b'];
        for (record_type, body) in [
            (RecordType::BeginRequest, &begin[..]),
            (RecordType::Params, &partial_params[..]),
            (RecordType::AbortRequest, &[][..]),
        ] {
            let mut out = Outbox::new();
            out.push_record_slice(record_type, 1, body);
            wire.extend_from_slice(&out.copy_to_bytes(out.remaining()));
        }
        wire.extend(requests(&[b"next"], true));
        let mut stream = Wire {
            input: io::Cursor::new(wire),
            output: Vec::new(),
        };
        let mut handled = 0;
        serve_connection(&mut stream, &ServerConfig::default(), |req| {
            handled += 1;
            req.write_stdout(b"Content-Type: text/plain\r\n\r\nok")
        })
        .unwrap();
        assert_eq!(handled, 1, "only the second request reached the handler");
        let got = responses(&stream.output, 2);
        assert_eq!(got[0], (Vec::new(), 0), "the aborted one was ended");
        assert!(got[1].0.ends_with(b"ok"));
    }

    #[test]
    fn read_body_of_an_aborted_request_is_an_error_not_a_shorter_body() {
        let mut client = ClientConnection::new(Limits::default());
        let params: Params = [("REQUEST_URI", "/upload")].into_iter().collect();
        let id = client
            .begin_request(Role::Responder, true, &params)
            .unwrap();
        client.stdin(id, Bytes::from_static(b"half of it")).unwrap();
        client.abort(id).unwrap();
        let out = client.outbox();
        let mut stream = Wire {
            input: io::Cursor::new(out.copy_to_bytes(out.remaining()).to_vec()),
            output: Vec::new(),
        };
        let mut seen = None;
        serve_connection(&mut stream, &ServerConfig::default(), |req| {
            seen = Some(req.read_body().map_err(|err| err.to_string()));
            Ok(())
        })
        .unwrap();
        let err = seen.expect("the handler ran").unwrap_err();
        assert!(err.contains("aborted"), "{err}");
    }

    #[test]
    fn a_refused_request_without_keep_conn_closes_the_connection_unread() {
        // An unknown role without FCGI_KEEP_CONN is refused (§5.5) and the connection closes
        // (§5.1): what follows is not read, and no handler runs.
        let mut wire = vec![1, 1, 0, 1, 0, 8, 0, 0, 0, 9, 0, 0, 0, 0, 0, 0];
        wire.extend(requests(&[b"never"], true));
        let mut stream = Wire {
            input: io::Cursor::new(wire),
            output: Vec::new(),
        };
        let mut handled = 0;
        serve_connection(&mut stream, &ServerConfig::default(), |_| {
            handled += 1;
            Ok(())
        })
        .unwrap();
        assert_eq!(handled, 0);
        assert_eq!(stream.output.len(), 16, "END_REQUEST (UNKNOWN_ROLE) only");
        assert_eq!(stream.output[1], 3, "an END_REQUEST record");
    }

    #[test]
    fn read_body_refuses_more_than_the_buffer_limit() {
        let wire = requests(&[&[b'x'; 100]], false);
        let mut stream = Wire {
            input: io::Cursor::new(wire),
            output: Vec::new(),
        };
        let config = ServerConfig {
            limits: Limits {
                max_stdin_buffered: 10,
                ..Limits::default()
            },
            ..ServerConfig::default()
        };
        let mut seen = None;
        serve_connection(&mut stream, &config, |req| {
            seen = Some(req.read_body().unwrap_err().to_string());
            Ok(())
        })
        .unwrap();
        assert_eq!(
            seen.as_deref(),
            Some(
                "FastCGI peer exceeded a limit: stdin over the 10-byte buffer limit \
                 (max_stdin_buffered)"
            )
        );
    }
}
