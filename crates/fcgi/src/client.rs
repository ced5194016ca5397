//! The web-server side of one connection (§3.3, §4, §5), sans-io.
//!
//! Start a request with [`ClientConnection::begin_request`] (BEGIN_REQUEST and the whole PARAMS
//! stream), send its body with [`ClientConnection::stdin`] and [`ClientConnection::stdin_end`],
//! write out the [`ClientConnection::outbox`], feed back what the application sent
//! ([`ClientConnection::read_buf`]) and take [`ClientEvent`]s out
//! ([`ClientConnection::poll_event`]).
//!
//! This side is strict where nginx is, because a lenient relay would hide a broken backend:
//! a reply for a request id that is not active (urweb sent id 0 to every request, urweb#57), a
//! record type no application sends, or a close before END_REQUEST are errors. It never puts a
//! second request on a connection unless the application said `FCGI_MPXS_CONNS=1`, since most
//! applications that say 0 really break (Cherokee and Jetty pulled multiplexing for that).

use bytes::{Bytes, BytesMut};

use crate::error::{Error, ProtocolError, UsageError};
use crate::limits::Limits;
use crate::outbox::Outbox;
use crate::params::{Params, encode_pair};
use crate::protocol::{
    HEADER_LEN, KEEP_CONN, MAX_CONTENT_LEN, NULL_REQUEST_ID, ProtocolStatus, RecordType, Role,
};
use crate::record::{Record, check_clean_eof, decode_record};
use crate::stream::StreamState;

/// What the application sent.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ClientEvent {
    /// Part of the response (CGI headers, then body); never empty.
    Stdout { id: u16, data: Bytes },
    /// Part of the application's error output; never empty.
    Stderr { id: u16, data: Bytes },
    /// The request is over; its id is free again.
    End {
        id: u16,
        app_status: u32,
        protocol_status: ProtocolStatus,
    },
    /// The answer to [`ClientConnection::get_values`].
    Values(Params),
    /// The application did not know a management record type we sent.
    UnknownType(u8),
}

#[derive(Debug)]
struct InFlight {
    id: u16,
    stdin: StreamState,
    /// A FILTER request's file; ended from the start for the other roles.
    data: StreamState,
}

/// One connection to an application, seen from the web server.
#[derive(Debug)]
pub struct ClientConnection {
    limits: Limits,
    read_buf: BytesMut,
    outbox: Outbox,
    in_flight: Vec<InFlight>,
    multiplex: bool,
}

impl ClientConnection {
    pub fn new(limits: Limits) -> Self {
        Self {
            limits,
            // Sized by the reader's first reserve, not here: a 16 KiB buffer grown to the
            // reader's size at once would be two allocations per connection.
            read_buf: BytesMut::new(),
            outbox: Outbox::new(),
            in_flight: Vec::new(),
            multiplex: false,
        }
    }

    /// Where to put bytes read from the application.
    pub fn read_buf(&mut self) -> &mut BytesMut {
        &mut self.read_buf
    }

    /// Copies bytes read from the application into the read buffer.
    pub fn receive(&mut self, bytes: &[u8]) {
        self.read_buf.extend_from_slice(bytes);
    }

    /// Encoded records waiting to be written to the application.
    pub fn outbox(&mut self) -> &mut Outbox {
        &mut self.outbox
    }

    /// Requests begun and not yet ended by the application.
    pub fn in_flight(&self) -> usize {
        self.in_flight.len()
    }

    /// Whether the application said `FCGI_MPXS_CONNS=1`.
    pub fn multiplexes(&self) -> bool {
        self.multiplex
    }

    /// Starts a request: BEGIN_REQUEST, then the PARAMS stream split over as many records as it
    /// needs, then its empty end record. Returns the request id, the smallest one free ("the Web
    /// server attempts to keep request IDs small", §3.3): 1 unless multiplexing.
    pub fn begin_request(
        &mut self,
        role: Role,
        keep_conn: bool,
        params: &Params,
    ) -> Result<u16, UsageError> {
        if !self.in_flight.is_empty() && !self.multiplex {
            return Err(UsageError::WouldMultiplex);
        }
        let id = (1..=u16::MAX)
            .find(|id| self.in_flight.iter().all(|r| r.id != *id))
            .ok_or(UsageError::NoFreeRequestId)?;
        let len = params.encoded_len()?; // checked before anything is queued
        let [r0, r1] = role.code().to_be_bytes();
        let flags = if keep_conn { KEEP_CONN } else { 0 };
        // BEGIN_REQUEST, one PARAMS record (padding at most 7) and its end record.
        self.outbox
            .reserve(3 * HEADER_LEN + 8 + len.min(MAX_CONTENT_LEN) + 7);
        self.outbox.push_record_slice(
            RecordType::BeginRequest,
            id,
            &[r0, r1, flags, 0, 0, 0, 0, 0],
        );
        if len <= MAX_CONTENT_LEN {
            // One record, which is all nginx ever sends: encoded in place, no buffer of its own.
            if len > 0 {
                self.outbox
                    .push_record_with(RecordType::Params, id, len, |dst| {
                        params.encode_checked(dst, len);
                        Ok::<(), UsageError>(())
                    })?;
            }
        } else {
            let mut encoded = BytesMut::new();
            params.encode_checked(&mut encoded, len);
            self.outbox
                .push_stream(RecordType::Params, id, encoded.freeze());
        }
        self.outbox.push_stream_end(RecordType::Params, id);
        self.in_flight.push(InFlight {
            id,
            stdin: StreamState::Open,
            data: if role == Role::Filter {
                StreamState::Open
            } else {
                StreamState::Ended
            },
        });
        Ok(id)
    }

    fn request_mut(&mut self, id: u16) -> Result<&mut InFlight, UsageError> {
        self.in_flight
            .iter_mut()
            .find(|r| r.id == id)
            .ok_or(UsageError::NotActive(id))
    }

    /// Queues part of the request body. Empty `data` queues nothing.
    pub fn stdin(&mut self, id: u16, data: Bytes) -> Result<(), UsageError> {
        if !self.request_mut(id)?.stdin.is_open() {
            return Err(UsageError::StreamClosed(RecordType::Stdin));
        }
        self.outbox.push_stream(RecordType::Stdin, id, data);
        Ok(())
    }

    /// Ends the request body (the empty STDIN record, sent even for a request without a body).
    pub fn stdin_end(&mut self, id: u16) -> Result<(), UsageError> {
        let request = self.request_mut(id)?;
        if request.stdin.end().is_err() {
            return Err(UsageError::StreamClosed(RecordType::Stdin));
        }
        self.outbox.push_stream_end(RecordType::Stdin, id);
        Ok(())
    }

    /// Queues part of a FILTER request's file.
    pub fn data(&mut self, id: u16, data: Bytes) -> Result<(), UsageError> {
        if !self.request_mut(id)?.data.is_open() {
            return Err(UsageError::StreamClosed(RecordType::Data));
        }
        self.outbox.push_stream(RecordType::Data, id, data);
        Ok(())
    }

    /// Ends a FILTER request's file.
    pub fn data_end(&mut self, id: u16) -> Result<(), UsageError> {
        let request = self.request_mut(id)?;
        if request.data.end().is_err() {
            return Err(UsageError::StreamClosed(RecordType::Data));
        }
        self.outbox.push_stream_end(RecordType::Data, id);
        Ok(())
    }

    /// Asks the application to stop request `id` (§5.4); it stays in flight until its
    /// END_REQUEST arrives.
    pub fn abort(&mut self, id: u16) -> Result<(), UsageError> {
        self.request_mut(id)?;
        self.outbox
            .push_record_slice(RecordType::AbortRequest, id, &[]);
        Ok(())
    }

    /// Asks the application for the named values (§4.1), e.g. [`crate::protocol::MPXS_CONNS`].
    /// GET_VALUES is one discrete record, so the names must fit in 65535 bytes.
    pub fn get_values(&mut self, names: &[&str]) -> Result<(), UsageError> {
        let mut body = BytesMut::new();
        for name in names {
            encode_pair(&mut body, name.as_bytes(), b"")?;
        }
        if body.len() > MAX_CONTENT_LEN {
            return Err(UsageError::RecordTooLong(body.len()));
        }
        self.outbox
            .push_record_slice(RecordType::GetValues, NULL_REQUEST_ID, &body);
        Ok(())
    }

    /// The application closed its side. Fine between requests; an error inside a record or
    /// while a request waits for its END_REQUEST.
    pub fn on_eof(&self) -> Result<(), ProtocolError> {
        check_clean_eof(&self.read_buf)?;
        match self.in_flight.first() {
            Some(request) => Err(ProtocolError::MissingEndRequest(request.id)),
            None => Ok(()),
        }
    }

    /// The next event the buffered bytes make.
    pub fn poll_event(&mut self) -> Result<Option<ClientEvent>, Error> {
        while let Some(record) = decode_record(&mut self.read_buf)? {
            if let Some(event) = self.on_record(record)? {
                return Ok(Some(event));
            }
        }
        Ok(None)
    }

    fn on_record(&mut self, record: Record) -> Result<Option<ClientEvent>, Error> {
        let id = record.request_id;
        if record.is_management() {
            return self.on_management(record);
        }
        let Some(index) = self.in_flight.iter().position(|r| r.id == id) else {
            return Err(ProtocolError::UnknownRequestId {
                record_type: record.record_type,
                request_id: id,
            }
            .into());
        };
        Ok(match record.record_type {
            // The empty records that end STDOUT and STDERR carry nothing a caller needs: the
            // response is complete at END_REQUEST, which some applications send without them.
            RecordType::Stdout | RecordType::Stderr if record.body.is_empty() => None,
            RecordType::Stdout => Some(ClientEvent::Stdout {
                id,
                data: record.body,
            }),
            RecordType::Stderr => Some(ClientEvent::Stderr {
                id,
                data: record.body,
            }),
            RecordType::EndRequest => {
                let body = record.eight_byte_body()?;
                self.in_flight.swap_remove(index);
                Some(ClientEvent::End {
                    id,
                    app_status: u32::from_be_bytes([body[0], body[1], body[2], body[3]]),
                    protocol_status: ProtocolStatus::from(body[4]),
                })
            }
            record_type => {
                return Err(ProtocolError::UnexpectedRecord {
                    record_type,
                    request_id: id,
                    reason: "is never sent by an application",
                }
                .into());
            }
        })
    }

    fn on_management(&mut self, record: Record) -> Result<Option<ClientEvent>, Error> {
        match record.record_type {
            RecordType::GetValuesResult => {
                let values =
                    Params::decode(record.body, RecordType::GetValuesResult, &self.limits)?;
                if let Some(mpxs) = values.get(crate::protocol::MPXS_CONNS) {
                    self.multiplex = match mpxs {
                        b"0" => false,
                        b"1" => true,
                        _ => {
                            return Err(ProtocolError::BadValue {
                                name: crate::protocol::MPXS_CONNS.into(),
                            }
                            .into());
                        }
                    };
                }
                Ok(Some(ClientEvent::Values(values)))
            }
            RecordType::UnknownType => {
                let body = record.eight_byte_body()?;
                Ok(Some(ClientEvent::UnknownType(body[0])))
            }
            record_type => Err(ProtocolError::UnexpectedRecord {
                record_type,
                request_id: NULL_REQUEST_ID,
                reason: "uses the management id 0: a reply must carry its request's id",
            }
            .into()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::outbox::encode_record;
    use crate::server::{ServerConfig, ServerConnection, ServerEvent};
    use bytes::Buf;

    /// Moves whatever `client` queued into `server`, and back.
    fn exchange(client: &mut ClientConnection, server: &mut ServerConnection) {
        let out = client.outbox();
        let bytes = out.copy_to_bytes(out.remaining());
        server.receive(&bytes);
    }

    fn answer(server: &mut ServerConnection, client: &mut ClientConnection) {
        let out = server.outbox();
        let bytes = out.copy_to_bytes(out.remaining());
        client.receive(&bytes);
    }

    #[test]
    fn a_request_round_trips_through_both_sides() {
        let mut client = ClientConnection::new(Limits::default());
        let mut server = ServerConnection::new(ServerConfig::default());
        let params: Params = [("REQUEST_METHOD", "POST"), ("CONTENT_LENGTH", "3")]
            .into_iter()
            .collect();
        let id = client
            .begin_request(Role::Responder, true, &params)
            .unwrap();
        assert_eq!(id, 1);
        client.stdin(id, Bytes::from_static(b"abc")).unwrap();
        client.stdin_end(id).unwrap();
        exchange(&mut client, &mut server);
        let Some(ServerEvent::Request(head)) = server.poll_event().unwrap() else {
            panic!("no request");
        };
        assert_eq!(head.params, params);
        assert!(matches!(
            server.poll_event().unwrap(),
            Some(ServerEvent::Stdin { .. })
        ));
        assert!(matches!(
            server.poll_event().unwrap(),
            Some(ServerEvent::StdinEnd { .. })
        ));
        server
            .stdout(1, Bytes::from_static(b"Status: 201\r\n\r\n"))
            .unwrap();
        server.stderr(1, Bytes::from_static(b"note")).unwrap();
        server.end_request(1, 0).unwrap();
        answer(&mut server, &mut client);
        let events: Vec<_> = std::iter::from_fn(|| client.poll_event().unwrap()).collect();
        assert_eq!(events.len(), 3);
        assert!(matches!(
            events[2],
            ClientEvent::End {
                id: 1,
                app_status: 0,
                ..
            }
        ));
        assert_eq!(client.in_flight(), 0);
        assert_eq!(client.on_eof(), Ok(()));
    }

    #[test]
    fn never_multiplexes_unless_the_application_says_it_can() {
        let mut client = ClientConnection::new(Limits::default());
        client
            .begin_request(Role::Responder, true, &Params::new())
            .unwrap();
        assert_eq!(
            client.begin_request(Role::Responder, true, &Params::new()),
            Err(UsageError::WouldMultiplex)
        );
        client.receive(&{
            let mut body = BytesMut::new();
            encode_pair(&mut body, b"FCGI_MPXS_CONNS", b"1").unwrap();
            encode_record(RecordType::GetValuesResult, 0, &body)
        });
        assert!(matches!(
            client.poll_event().unwrap(),
            Some(ClientEvent::Values(_))
        ));
        assert_eq!(
            client.begin_request(Role::Responder, true, &Params::new()),
            Ok(2)
        );
    }

    #[test]
    fn get_values_is_always_one_record_even_when_empty() {
        let mut client = ClientConnection::new(Limits::default());
        client.get_values(&[]).unwrap();
        let out = client.outbox();
        assert_eq!(
            &out.copy_to_bytes(out.remaining())[..],
            &[1, 9, 0, 0, 0, 0, 0, 0]
        );
        let too_many = vec!["FCGI_MPXS_CONNS"; 4000];
        assert_eq!(
            client.get_values(&too_many),
            Err(UsageError::RecordTooLong(68_000))
        );
    }

    #[test]
    fn replies_with_the_wrong_id_are_refused() {
        let mut client = ClientConnection::new(Limits::default());
        client
            .begin_request(Role::Responder, false, &Params::new())
            .unwrap();
        client.receive(&encode_record(
            RecordType::Stdout,
            0,
            b"Status: 200\r\n\r\n",
        ));
        let err = client.poll_event().unwrap_err();
        assert!(
            err.to_string().contains("uses the management id 0"),
            "{err}"
        );

        let mut client = ClientConnection::new(Limits::default());
        client
            .begin_request(Role::Responder, false, &Params::new())
            .unwrap();
        client.receive(&encode_record(RecordType::Stdout, 2, b"x"));
        let err = client.poll_event().unwrap_err();
        assert_eq!(
            err.to_string(),
            "FastCGI protocol violation by the peer: STDOUT record for request 2, which is not active"
        );
    }

    #[test]
    fn a_close_before_end_request_is_an_error() {
        let mut client = ClientConnection::new(Limits::default());
        client
            .begin_request(Role::Responder, false, &Params::new())
            .unwrap();
        client.receive(&encode_record(RecordType::Stdout, 1, b"partial"));
        assert!(client.poll_event().unwrap().is_some());
        assert_eq!(client.on_eof(), Err(ProtocolError::MissingEndRequest(1)));
    }

    #[test]
    fn end_request_must_be_eight_bytes() {
        let mut client = ClientConnection::new(Limits::default());
        client
            .begin_request(Role::Responder, false, &Params::new())
            .unwrap();
        client.receive(&encode_record(RecordType::EndRequest, 1, &[0, 0, 0, 0, 0]));
        let err = client.poll_event().unwrap_err();
        assert!(
            err.to_string()
                .contains("END_REQUEST body of 5 bytes, the spec fixes it at 8"),
            "{err}"
        );
    }

    #[test]
    fn streams_cannot_be_used_after_they_end() {
        let mut client = ClientConnection::new(Limits::default());
        let id = client
            .begin_request(Role::Responder, false, &Params::new())
            .unwrap();
        client.stdin_end(id).unwrap();
        assert_eq!(
            client.stdin(id, Bytes::from_static(b"x")),
            Err(UsageError::StreamClosed(RecordType::Stdin))
        );
        assert_eq!(
            client.data(id, Bytes::from_static(b"x")),
            Err(UsageError::StreamClosed(RecordType::Data)),
            "only FILTER requests have a DATA stream"
        );
    }
}
