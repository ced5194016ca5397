//! The application side of one connection (§3.3, §4, §5, §6), sans-io.
//!
//! Feed it the bytes the web server sent ([`ServerConnection::read_buf`]); take
//! [`ServerEvent`]s out ([`ServerConnection::poll_event`]); answer with
//! [`ServerConnection::stdout`], [`ServerConnection::stderr`] and
//! [`ServerConnection::end_request`]; write out what [`ServerConnection::outbox`] holds.
//!
//! What the library does by itself, as the spec puts on it rather than on the application:
//! - GET_VALUES is answered "by the application library, not the application proper" (§4.1),
//!   with the [`ServerConfig`] values; unknown names are left out.
//! - Any other management record gets UNKNOWN_TYPE (§4.2).
//! - A role it does not know gets END_REQUEST with UNKNOWN_ROLE (§5.1).
//! - A second request while one is active gets END_REQUEST with CANT_MPX_CONN, unless the
//!   config multiplexes (§5.5). With multiplexing on, interleaved requests decode independently,
//!   bounded by [`Limits::max_requests_per_connection`].
//! - Records for an inactive request id are ignored, except BEGIN_REQUEST (§3.3): late STDIN or
//!   ABORT after END_REQUEST is legal noise.
//! - Every request's STDOUT stream is closed with its empty record, and STDERR too if it was
//!   used, before END_REQUEST (§6.1; nginx reports "upstream prematurely closed FastCGI stdout"
//!   otherwise).

use bytes::{Bytes, BytesMut};

use crate::error::{Error, LimitExceeded, ProtocolError, UsageError};
use crate::limits::Limits;
use crate::outbox::Outbox;
use crate::params::{Params, StreamCollector, encode_pair};
use crate::protocol::{self, KEEP_CONN, NULL_REQUEST_ID, ProtocolStatus, RecordType, Role};
use crate::record::{Record, check_clean_eof, decode_record};
use crate::stream::{AfterEnd, Arrival, StreamState};

/// What an application says of itself in GET_VALUES_RESULT, and how it treats a connection.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServerConfig {
    pub limits: Limits,
    /// `FCGI_MAX_CONNS`: connections the application accepts at once.
    pub max_conns: u32,
    /// `FCGI_MAX_REQS`: requests the application serves at once.
    pub max_reqs: u32,
    /// `FCGI_MPXS_CONNS`: whether one connection may carry several requests at once.
    pub multiplex: bool,
}

impl Default for ServerConfig {
    /// A single-threaded application that serves one request at a time, like php-cgi.
    fn default() -> Self {
        Self {
            limits: Limits::default(),
            max_conns: 1,
            max_reqs: 1,
            multiplex: false,
        }
    }
}

/// A request whose PARAMS stream is complete.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RequestHead {
    pub id: u16,
    pub role: Role,
    /// The web server keeps the connection open after this request (`FCGI_KEEP_CONN`).
    pub keep_conn: bool,
    pub params: Params,
}

/// What the web server asked for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ServerEvent {
    /// A request's BEGIN_REQUEST and whole PARAMS stream arrived.
    Request(RequestHead),
    /// Part of a request's body; never empty.
    Stdin { id: u16, data: Bytes },
    /// The request's body is complete.
    StdinEnd { id: u16 },
    /// Part of a FILTER request's file; never empty.
    Data { id: u16, data: Bytes },
    /// The FILTER request's file is complete.
    DataEnd { id: u16 },
    /// The web server gave up on the request: end it "as soon as possible" (§5.4).
    Abort { id: u16 },
}

/// Where a request's input stands.
#[derive(Debug)]
enum Input {
    Params(StreamCollector),
    /// PARAMS ended; STDIN and DATA stream until their own end records.
    Body {
        stdin: StreamState,
        data: StreamState,
    },
}

#[derive(Debug)]
struct Active {
    id: u16,
    role: Role,
    keep_conn: bool,
    input: Input,
    stderr: ErrorStream,
}

/// STDERR, opened by its first bytes; an opened one needs its end record.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum ErrorStream {
    Unused,
    Open,
}

/// One connection from a web server, seen from the application.
#[derive(Debug)]
pub struct ServerConnection {
    config: ServerConfig,
    read_buf: BytesMut,
    outbox: Outbox,
    active: Vec<Active>,
    closing: bool,
}

impl ServerConnection {
    pub fn new(config: ServerConfig) -> Self {
        Self {
            config,
            read_buf: BytesMut::with_capacity(8192),
            outbox: Outbox::new(),
            active: Vec::new(),
            closing: false,
        }
    }

    /// Where to put bytes read from the web server.
    pub fn read_buf(&mut self) -> &mut BytesMut {
        &mut self.read_buf
    }

    /// Copies bytes read from the web server into the read buffer.
    pub fn receive(&mut self, bytes: &[u8]) {
        self.read_buf.extend_from_slice(bytes);
    }

    /// Encoded records waiting to be written to the web server.
    pub fn outbox(&mut self) -> &mut Outbox {
        &mut self.outbox
    }

    /// True once a request without `FCGI_KEEP_CONN` ended: flush the outbox, then close (§5.1).
    pub fn is_closing(&self) -> bool {
        self.closing
    }

    /// The bounds this connection enforces.
    pub fn limits(&self) -> &Limits {
        &self.config.limits
    }

    /// Requests begun and not yet ended by the application.
    pub fn active_requests(&self) -> usize {
        self.active.len()
    }

    /// Call when the web server closed its side: fails when it stopped inside a record.
    pub fn on_eof(&self) -> Result<(), ProtocolError> {
        check_clean_eof(&self.read_buf)
    }

    /// The next event the buffered bytes make, answering management records on the way.
    pub fn poll_event(&mut self) -> Result<Option<ServerEvent>, Error> {
        // Closing (§5.1): what the peer sent after the last request is not ours to serve.
        while !self.closing
            && let Some(record) = decode_record(&mut self.read_buf)?
        {
            if let Some(event) = self.on_record(record)? {
                return Ok(Some(event));
            }
        }
        Ok(None)
    }

    fn on_record(&mut self, record: Record) -> Result<Option<ServerEvent>, Error> {
        if record.is_management() {
            self.on_management(record)?;
            return Ok(None);
        }
        let id = record.request_id;
        if record.record_type == RecordType::BeginRequest {
            return self.on_begin(record).map(|()| None);
        }
        let Some(index) = self.active.iter().position(|a| a.id == id) else {
            return Ok(None); // §3.3: records for an inactive id are ignored
        };
        let limits = &self.config.limits;
        let request = &mut self.active[index];
        let unexpected = |reason| ProtocolError::UnexpectedRecord {
            record_type: record.record_type,
            request_id: id,
            reason,
        };
        let empty = record.body.is_empty();
        let event = match (record.record_type, &mut request.input) {
            (RecordType::Params, Input::Params(collector)) if !empty => {
                collector.push(record.body, limits.max_params_bytes)?;
                None
            }
            (RecordType::Params, Input::Params(collector)) => {
                let body = std::mem::take(collector).finish();
                let params = Params::decode(body, RecordType::Params, limits)?;
                request.input = Input::Body {
                    stdin: StreamState::Open,
                    data: StreamState::Open,
                };
                Some(ServerEvent::Request(RequestHead {
                    id,
                    role: request.role,
                    keep_conn: request.keep_conn,
                    params,
                }))
            }
            (RecordType::Params, Input::Body { .. }) => {
                return Err(unexpected("arrived after its PARAMS stream ended").into());
            }
            (RecordType::Stdin | RecordType::Data, Input::Params(_)) => {
                return Err(unexpected("arrived before its PARAMS stream ended").into());
            }
            (kind @ (RecordType::Stdin | RecordType::Data), Input::Body { stdin, data }) => {
                let (stream, after_end) = match kind {
                    RecordType::Stdin => (stdin, "arrived after its STDIN stream ended"),
                    _ => (data, "arrived after its DATA stream ended"),
                };
                match stream.receive(empty) {
                    Ok(Arrival::Bytes) => Some(input_bytes(kind, id, record.body)),
                    Ok(Arrival::End) => Some(input_end(kind, id)),
                    Ok(Arrival::EndAgain) => None,
                    Err(AfterEnd) => return Err(unexpected(after_end).into()),
                }
            }
            (RecordType::AbortRequest, _) => Some(ServerEvent::Abort { id }),
            // A type no web server sends (END_REQUEST, STDOUT, ...), for a live request.
            (RecordType::Other(_), _) => None, // undefined application types: dropped, §4.2 is silent
            _ => return Err(unexpected("is never sent by a web server").into()),
        };
        Ok(event)
    }

    fn on_begin(&mut self, record: Record) -> Result<(), Error> {
        let id = record.request_id;
        let body = record.eight_byte_body()?;
        if self.active.iter().any(|a| a.id == id) {
            return Err(ProtocolError::DuplicateBegin(id).into());
        }
        let role = Role::from(u16::from_be_bytes([body[0], body[1]]));
        let keep_conn = body[2] & KEEP_CONN != 0;
        if let Role::Other(_) = role {
            self.reject(id, ProtocolStatus::UnknownRole, keep_conn);
            return Ok(());
        }
        if !self.active.is_empty() && !self.config.multiplex {
            self.reject(id, ProtocolStatus::CantMpxConn, keep_conn);
            return Ok(());
        }
        let limit = self.config.limits.max_requests_per_connection;
        if self.active.len() >= limit {
            return Err(LimitExceeded::RequestsInFlight { limit }.into());
        }
        self.active.push(Active {
            id,
            role,
            keep_conn,
            input: Input::Params(StreamCollector::default()),
            stderr: ErrorStream::Unused,
        });
        Ok(())
    }

    /// Refuses a request that never became active: END_REQUEST only (§5.5).
    fn reject(&mut self, id: u16, status: ProtocolStatus, keep_conn: bool) {
        self.outbox
            .push_record_slice(RecordType::EndRequest, id, &end_body(0, status));
        // Without KEEP_CONN the connection closes after this answer, but never under another
        // request that is still active.
        if !keep_conn && self.active.is_empty() {
            self.closing = true;
        }
    }

    fn on_management(&mut self, record: Record) -> Result<(), Error> {
        if record.record_type != RecordType::GetValues {
            let mut body = [0u8; 8];
            body[0] = record.record_type.code();
            self.outbox
                .push_record_slice(RecordType::UnknownType, NULL_REQUEST_ID, &body);
            return Ok(());
        }
        let asked = Params::decode(record.body, RecordType::GetValues, &self.config.limits)?;
        let mut answer = BytesMut::new();
        // Each known name is answered once, however often it is asked for, so the answer is
        // three pairs at most and always fits one record. Unknown names are left out (§4.1).
        for (name, value) in [
            (protocol::MAX_CONNS, self.config.max_conns.to_string()),
            (protocol::MAX_REQS, self.config.max_reqs.to_string()),
            (
                protocol::MPXS_CONNS,
                u8::from(self.config.multiplex).to_string(),
            ),
        ] {
            if asked.iter().any(|(asked, _)| asked == name.as_bytes()) {
                encode_pair(&mut answer, name.as_bytes(), value.as_bytes())?;
            }
        }
        self.outbox.push_record(
            RecordType::GetValuesResult,
            NULL_REQUEST_ID,
            answer.freeze(),
        );
        Ok(())
    }

    fn active_mut(&mut self, id: u16) -> Result<&mut Active, UsageError> {
        self.active
            .iter_mut()
            .find(|a| a.id == id)
            .ok_or(UsageError::NotActive(id))
    }

    /// Queues response bytes (CGI headers, then the body) for request `id`.
    pub fn stdout(&mut self, id: u16, data: Bytes) -> Result<(), UsageError> {
        self.active_mut(id)?;
        self.outbox.push_stream(RecordType::Stdout, id, data);
        Ok(())
    }

    /// [`stdout`](Self::stdout) for borrowed bytes, copied once into the outbox.
    pub fn stdout_slice(&mut self, id: u16, data: &[u8]) -> Result<(), UsageError> {
        self.active_mut(id)?;
        self.outbox.push_stream_slice(RecordType::Stdout, id, data);
        Ok(())
    }

    /// Queues error-log bytes for request `id`.
    pub fn stderr(&mut self, id: u16, data: Bytes) -> Result<(), UsageError> {
        if self.open_stderr(id, data.len())? {
            self.outbox.push_stream(RecordType::Stderr, id, data);
        }
        Ok(())
    }

    /// [`stderr`](Self::stderr) for borrowed bytes, copied once into the outbox.
    pub fn stderr_slice(&mut self, id: u16, data: &[u8]) -> Result<(), UsageError> {
        if self.open_stderr(id, data.len())? {
            self.outbox.push_stream_slice(RecordType::Stderr, id, data);
        }
        Ok(())
    }

    /// Whether `len` bytes of STDERR are to be queued for request `id`; the stream then needs
    /// its end record when the request ends.
    fn open_stderr(&mut self, id: u16, len: usize) -> Result<bool, UsageError> {
        let request = self.active_mut(id)?;
        if len > 0 {
            request.stderr = ErrorStream::Open;
        }
        Ok(len > 0)
    }

    /// Ends request `id` with `app_status` (the CGI exit code): closes its streams, queues
    /// END_REQUEST(REQUEST_COMPLETE), and makes the id inactive.
    pub fn end_request(&mut self, id: u16, app_status: u32) -> Result<(), UsageError> {
        self.end_request_with(id, app_status, ProtocolStatus::RequestComplete)
    }

    /// Ends request `id` with a protocol status of the application's choosing, e.g.
    /// OVERLOADED when it ran out of database connections.
    pub fn end_request_with(
        &mut self,
        id: u16,
        app_status: u32,
        status: ProtocolStatus,
    ) -> Result<(), UsageError> {
        let index = self
            .active
            .iter()
            .position(|a| a.id == id)
            .ok_or(UsageError::NotActive(id))?;
        let request = self.active.swap_remove(index);
        self.outbox.push_stream_end(RecordType::Stdout, id);
        if request.stderr == ErrorStream::Open {
            self.outbox.push_stream_end(RecordType::Stderr, id);
        }
        self.outbox
            .push_record_slice(RecordType::EndRequest, id, &end_body(app_status, status));
        if !request.keep_conn {
            self.closing = true;
        }
        Ok(())
    }
}

/// The event of bytes of a STDIN or DATA stream.
fn input_bytes(kind: RecordType, id: u16, data: Bytes) -> ServerEvent {
    match kind {
        RecordType::Stdin => ServerEvent::Stdin { id, data },
        _ => ServerEvent::Data { id, data },
    }
}

/// The event of the end of a STDIN or DATA stream.
fn input_end(kind: RecordType, id: u16) -> ServerEvent {
    match kind {
        RecordType::Stdin => ServerEvent::StdinEnd { id },
        _ => ServerEvent::DataEnd { id },
    }
}

/// `FCGI_EndRequestBody` (§5.5).
pub(crate) fn end_body(app_status: u32, status: ProtocolStatus) -> [u8; 8] {
    let [a, b, c, d] = app_status.to_be_bytes();
    [a, b, c, d, status.code(), 0, 0, 0]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::outbox::encode_record;
    use bytes::Buf;

    fn begin(id: u16, role: u16, flags: u8) -> Bytes {
        let [r0, r1] = role.to_be_bytes();
        encode_record(
            RecordType::BeginRequest,
            id,
            &[r0, r1, flags, 0, 0, 0, 0, 0],
        )
    }

    fn params(id: u16, pairs: &[(&str, &str)]) -> Vec<u8> {
        let mut body = BytesMut::new();
        for (n, v) in pairs {
            encode_pair(&mut body, n.as_bytes(), v.as_bytes()).unwrap();
        }
        let mut wire = encode_record(RecordType::Params, id, &body).to_vec();
        wire.extend_from_slice(&encode_record(RecordType::Params, id, b""));
        wire
    }

    fn written(conn: &mut ServerConnection) -> Vec<Record> {
        let outbox = conn.outbox();
        let mut wire = BytesMut::from(&outbox.copy_to_bytes(outbox.remaining())[..]);
        std::iter::from_fn(|| decode_record(&mut wire).unwrap()).collect()
    }

    #[test]
    fn a_responder_request_streams_params_then_stdin() {
        let mut conn = ServerConnection::new(ServerConfig::default());
        conn.receive(&begin(1, 1, KEEP_CONN));
        conn.receive(&params(1, &[("REQUEST_URI", "/x")]));
        conn.receive(&encode_record(RecordType::Stdin, 1, b"body"));
        conn.receive(&encode_record(RecordType::Stdin, 1, b""));
        let Some(ServerEvent::Request(head)) = conn.poll_event().unwrap() else {
            panic!("expected the request head");
        };
        assert_eq!(
            (head.id, head.role, head.keep_conn),
            (1, Role::Responder, true)
        );
        assert_eq!(head.params.get("REQUEST_URI"), Some(&b"/x"[..]));
        assert_eq!(
            conn.poll_event().unwrap(),
            Some(ServerEvent::Stdin {
                id: 1,
                data: Bytes::from_static(b"body")
            })
        );
        assert_eq!(
            conn.poll_event().unwrap(),
            Some(ServerEvent::StdinEnd { id: 1 })
        );
        assert_eq!(conn.poll_event().unwrap(), None);
        conn.stdout(1, Bytes::from_static(b"Status: 200\r\n\r\nok"))
            .unwrap();
        conn.end_request(1, 0).unwrap();
        let types: Vec<_> = written(&mut conn).iter().map(|r| r.record_type).collect();
        assert_eq!(
            types,
            [
                RecordType::Stdout,
                RecordType::Stdout,
                RecordType::EndRequest
            ]
        );
        assert!(!conn.is_closing(), "keep_conn keeps it open");
        // Late STDIN for the ended request is ignored (§3.3).
        conn.receive(&encode_record(RecordType::Stdin, 1, b"late"));
        assert_eq!(conn.poll_event().unwrap(), None);
    }

    #[test]
    fn get_values_is_answered_by_the_library() {
        let mut conn = ServerConnection::new(ServerConfig::default());
        let mut body = BytesMut::new();
        for name in [
            "FCGI_MAX_CONNS",
            "FCGI_MAX_REQS",
            "FCGI_MPXS_CONNS",
            "UNKNOWN",
        ] {
            encode_pair(&mut body, name.as_bytes(), b"").unwrap();
        }
        conn.receive(&encode_record(RecordType::GetValues, 0, &body));
        assert_eq!(conn.poll_event().unwrap(), None);
        let records = written(&mut conn);
        assert_eq!(records.len(), 1);
        assert_eq!(records[0].record_type, RecordType::GetValuesResult);
        let values = Params::decode(
            records[0].body.clone(),
            RecordType::GetValuesResult,
            &Limits::default(),
        )
        .unwrap();
        assert_eq!(values.get("FCGI_MPXS_CONNS"), Some(&b"0"[..]));
        assert_eq!(values.get("FCGI_MAX_REQS"), Some(&b"1"[..]));
        assert_eq!(values.get("UNKNOWN"), None);
    }

    #[test]
    fn unknown_management_types_get_unknown_type() {
        let mut conn = ServerConnection::new(ServerConfig::default());
        conn.receive(&encode_record(RecordType::Other(42), 0, b"??"));
        assert_eq!(conn.poll_event().unwrap(), None);
        let records = written(&mut conn);
        assert_eq!(records[0].record_type, RecordType::UnknownType);
        assert_eq!(&records[0].body[..], &[42, 0, 0, 0, 0, 0, 0, 0]);
    }

    #[test]
    fn unknown_roles_and_concurrent_requests_are_refused_on_the_wire() {
        let mut conn = ServerConnection::new(ServerConfig::default());
        conn.receive(&begin(1, 9, KEEP_CONN));
        conn.receive(&begin(2, 1, KEEP_CONN));
        conn.receive(&begin(3, 1, KEEP_CONN));
        assert_eq!(conn.poll_event().unwrap(), None);
        let records = written(&mut conn);
        assert_eq!(records.len(), 2);
        assert_eq!((records[0].request_id, records[0].body[4]), (1, 3)); // UNKNOWN_ROLE
        assert_eq!((records[1].request_id, records[1].body[4]), (3, 1)); // CANT_MPX_CONN
        assert_eq!(conn.active_requests(), 1);
    }

    #[test]
    fn a_refused_request_without_keep_conn_does_not_close_under_the_active_one() {
        let mut conn = ServerConnection::new(ServerConfig::default());
        conn.receive(&begin(1, 1, KEEP_CONN));
        conn.receive(&begin(2, 1, 0));
        assert_eq!(conn.poll_event().unwrap(), None);
        assert!(!conn.is_closing());
        assert_eq!(conn.stderr(2, Bytes::new()), Err(UsageError::NotActive(2)));
    }

    #[test]
    fn multiplexed_requests_decode_independently_within_the_limit() {
        let config = ServerConfig {
            multiplex: true,
            limits: Limits {
                max_requests_per_connection: 2,
                ..Limits::default()
            },
            ..ServerConfig::default()
        };
        let mut conn = ServerConnection::new(config);
        conn.receive(&begin(1, 1, KEEP_CONN));
        conn.receive(&begin(2, 1, KEEP_CONN));
        conn.receive(&params(2, &[("A", "2")]));
        conn.receive(&params(1, &[("A", "1")]));
        let first = conn.poll_event().unwrap();
        assert!(matches!(
            first,
            Some(ServerEvent::Request(RequestHead { id: 2, .. }))
        ));
        let second = conn.poll_event().unwrap();
        assert!(matches!(
            second,
            Some(ServerEvent::Request(RequestHead { id: 1, .. }))
        ));
        conn.receive(&begin(3, 1, KEEP_CONN));
        let err = conn.poll_event().unwrap_err();
        assert!(matches!(
            err,
            Error::Limit(LimitExceeded::RequestsInFlight { limit: 2 })
        ));
    }

    #[test]
    fn malformed_input_names_what_was_wrong() {
        let cases: [(Vec<u8>, &str); 4] = [
            (
                encode_record(RecordType::BeginRequest, 1, &[0, 1, 0, 0, 0]).to_vec(),
                "BEGIN_REQUEST body of 5 bytes, the spec fixes it at 8",
            ),
            (
                [begin(1, 1, 0).to_vec(), begin(1, 1, 0).to_vec()].concat(),
                "a second BEGIN_REQUEST for request 1",
            ),
            (
                [
                    begin(1, 1, 0).to_vec(),
                    encode_record(RecordType::Stdin, 1, b"x").to_vec(),
                ]
                .concat(),
                "STDIN record for request 1 arrived before its PARAMS stream ended",
            ),
            (vec![7, 1, 0, 1, 0, 0, 0, 0], "bad FastCGI version 7"),
        ];
        for (wire, message) in cases {
            let mut conn = ServerConnection::new(ServerConfig::default());
            conn.receive(&wire);
            let err = loop {
                match conn.poll_event() {
                    Ok(Some(_)) => continue,
                    Ok(None) => panic!("no error for {message}"),
                    Err(err) => break err,
                }
            };
            assert!(err.to_string().contains(message), "{err} !~ {message}");
            assert!(err.is_peer_fault());
        }
    }

    #[test]
    fn params_over_the_limit_are_refused() {
        let config = ServerConfig {
            limits: Limits {
                max_params_bytes: 10,
                ..Limits::default()
            },
            ..ServerConfig::default()
        };
        let mut conn = ServerConnection::new(config);
        conn.receive(&begin(1, 1, 0));
        conn.receive(&params(1, &[("NAME", "a long enough value")]));
        let err = conn.poll_event().unwrap_err();
        assert_eq!(
            err.to_string(),
            "FastCGI peer exceeded a limit: params over the 10-byte limit (max_params_bytes)"
        );
    }

    #[test]
    fn without_keep_conn_the_connection_closes_after_the_request() {
        let mut conn = ServerConnection::new(ServerConfig::default());
        conn.receive(&begin(1, 1, 0));
        conn.receive(&params(1, &[]));
        assert!(conn.poll_event().unwrap().is_some());
        conn.stderr(1, Bytes::from_static(b"warn")).unwrap();
        conn.end_request(1, 3).unwrap();
        assert!(conn.is_closing());
        let records = written(&mut conn);
        let types: Vec<_> = records.iter().map(|r| r.record_type).collect();
        assert_eq!(
            types,
            [
                RecordType::Stderr,
                RecordType::Stdout,
                RecordType::Stderr,
                RecordType::EndRequest
            ]
        );
        assert_eq!(&records[3].body[..], &[0, 0, 0, 3, 0, 0, 0, 0]);
        assert_eq!(conn.end_request(1, 0), Err(UsageError::NotActive(1)));
    }
}
