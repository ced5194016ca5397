//! What can go wrong, told apart by whose fault it is: the peer broke the protocol
//! ([`ProtocolError`]), the peer pushed past one of our bounds ([`LimitExceeded`]), our own
//! caller asked for something the protocol state forbids ([`UsageError`]), or the transport
//! failed ([`Error::Io`], from the drivers only: the sans-io core does no I/O).
//!
//! Every message names what was wrong in the terms of the spec, so that a log line is enough to
//! find the broken peer. A protocol or limit error ends that one connection; nothing else in the
//! process is affected.

use crate::protocol::RecordType;

/// The peer sent something FastCGI 1.0 does not allow.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ProtocolError {
    #[error("bad FastCGI version {0}: only version 1 exists (is this really a FastCGI peer?)")]
    BadVersion(u8),
    #[error("{record_type} body of {len} bytes, the spec fixes it at {expected}")]
    BadBodyLength {
        record_type: RecordType,
        len: usize,
        expected: usize,
    },
    #[error("{stream} stream ends inside a name-value pair: {missing} more bytes were announced")]
    TruncatedNameValue { stream: RecordType, missing: usize },
    #[error("a second BEGIN_REQUEST for request {0}, which is still active")]
    DuplicateBegin(u16),
    #[error("{record_type} record for request {request_id} {reason}")]
    UnexpectedRecord {
        record_type: RecordType,
        request_id: u16,
        reason: &'static str,
    },
    #[error("{record_type} record for request {request_id}, which is not active")]
    UnknownRequestId {
        record_type: RecordType,
        request_id: u16,
    },
    #[error("connection closed inside a record ({buffered} bytes of it arrived)")]
    TruncatedRecord { buffered: usize },
    #[error("connection closed before the input of request {0} ended")]
    InputUnfinished(u16),
    #[error("connection closed before END_REQUEST of request {0}")]
    MissingEndRequest(u16),
    #[error("GET_VALUES_RESULT value of {name} is not a decimal number")]
    BadValue { name: String },
}

/// The peer pushed past a configured bound (see [`crate::Limits`]).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum LimitExceeded {
    #[error("params over the {limit}-byte limit (max_params_bytes)")]
    ParamsBytes { limit: usize },
    #[error("a name or value of {len} bytes, over the {limit}-byte limit (max_name_value_len)")]
    NameValueLength { len: usize, limit: usize },
    #[error("more than {limit} name-value pairs (max_params_count)")]
    ParamsCount { limit: usize },
    #[error("more than {limit} requests in flight on one connection (max_requests_per_connection)")]
    RequestsInFlight { limit: usize },
    #[error("stdin over the {limit}-byte buffer limit (max_stdin_buffered)")]
    StdinBuffered { limit: usize },
    #[error("a CGI response header block over the {limit}-byte limit (max_response_head)")]
    ResponseHead { limit: usize },
}

/// Our caller asked for something the protocol state forbids; a bug on this side, not the peer's.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum UsageError {
    #[error("request {0} is not active on this connection")]
    NotActive(u16),
    #[error(
        "a request is already in flight and the application said FCGI_MPXS_CONNS=0: \
         open another connection"
    )]
    WouldMultiplex,
    #[error("all 65535 request ids are in use on this connection")]
    NoFreeRequestId,
    #[error("a name or value of {0} bytes cannot be encoded: the limit is 2^31 - 1")]
    NameValueTooLong(usize),
    #[error("a discrete record of {0} bytes: one record carries at most 65535")]
    RecordTooLong(usize),
    #[error("the {0} stream of this request was already closed")]
    StreamClosed(RecordType),
}

/// Every error of this crate.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    #[error("FastCGI protocol violation by the peer: {0}")]
    Protocol(ProtocolError),
    #[error("FastCGI peer exceeded a limit: {0}")]
    Limit(LimitExceeded),
    #[error(transparent)]
    Usage(#[from] UsageError),
    #[error("FastCGI connection I/O failed: {0}")]
    Io(std::io::Error),
}

// Plain `From` impls rather than `#[from]`: the inner error is already part of the message, and
// as a `source` too it would be printed twice by anyone who prints the whole chain.
impl From<ProtocolError> for Error {
    fn from(error: ProtocolError) -> Self {
        Self::Protocol(error)
    }
}

impl From<LimitExceeded> for Error {
    fn from(error: LimitExceeded) -> Self {
        Self::Limit(error)
    }
}

impl From<std::io::Error> for Error {
    fn from(error: std::io::Error) -> Self {
        Self::Io(error)
    }
}

impl Error {
    /// True when the peer is at fault (a protocol violation or a limit), as opposed to the
    /// transport or this side's own use of the API.
    pub fn is_peer_fault(&self) -> bool {
        matches!(self, Self::Protocol(_) | Self::Limit(_))
    }
}

impl From<Error> for std::io::Error {
    fn from(error: Error) -> Self {
        match error {
            Error::Io(io) => io,
            other => std::io::Error::new(std::io::ErrorKind::InvalidData, other),
        }
    }
}
