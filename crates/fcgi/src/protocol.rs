//! The protocol's numbers and the 8-byte record header (FastCGI 1.0 §3.3 and §8).
//!
//! "All data that flows between the application and the Web server is carried in records":
//! a fixed 8-byte header (`version`, `type`, `requestId`, `contentLength`, `paddingLength`,
//! `reserved`), up to 65535 bytes of content, and up to 255 bytes of padding that "the receiver
//! ignores". Everything here is plain data; decoding and validation live in [`crate::record`].

use std::fmt;

/// `FCGI_VERSION_1`, the only version there is.
pub const VERSION_1: u8 = 1;
/// `FCGI_HEADER_LEN`: "future versions of the protocol will not reduce this number".
pub const HEADER_LEN: usize = 8;
/// The most content one record can carry (`contentLength` is 16 bits).
pub const MAX_CONTENT_LEN: usize = 0xffff;
/// `FCGI_NULL_REQUEST_ID`: the id of management records (§3.3).
pub const NULL_REQUEST_ID: u16 = 0;
/// `FCGI_LISTENSOCK_FILENO`: an application started by its web server finds its listening
/// socket on descriptor 0 (§2.2).
pub const LISTENSOCK_FILENO: i32 = 0;
/// `FCGI_KEEP_CONN`, the one defined bit of `FCGI_BeginRequestBody.flags` (§5.1).
pub const KEEP_CONN: u8 = 1;

/// The names a `FCGI_GET_VALUES` record may ask about (§4.1).
pub const MAX_CONNS: &str = "FCGI_MAX_CONNS";
/// See [`MAX_CONNS`].
pub const MAX_REQS: &str = "FCGI_MAX_REQS";
/// See [`MAX_CONNS`].
pub const MPXS_CONNS: &str = "FCGI_MPXS_CONNS";

/// A record's `type` (§8, Appendix A). Unknown codes are kept, not rejected: §4.2 asks an
/// application to answer an unknown management type with `FCGI_UNKNOWN_TYPE`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum RecordType {
    BeginRequest,
    AbortRequest,
    EndRequest,
    Params,
    Stdin,
    Stdout,
    Stderr,
    Data,
    GetValues,
    GetValuesResult,
    UnknownType,
    /// A type this version of the protocol does not define.
    Other(u8),
}

impl RecordType {
    /// The type's code on the wire.
    pub fn code(self) -> u8 {
        match self {
            Self::BeginRequest => 1,
            Self::AbortRequest => 2,
            Self::EndRequest => 3,
            Self::Params => 4,
            Self::Stdin => 5,
            Self::Stdout => 6,
            Self::Stderr => 7,
            Self::Data => 8,
            Self::GetValues => 9,
            Self::GetValuesResult => 10,
            Self::UnknownType => 11,
            Self::Other(code) => code,
        }
    }
}

impl From<u8> for RecordType {
    fn from(code: u8) -> Self {
        match code {
            1 => Self::BeginRequest,
            2 => Self::AbortRequest,
            3 => Self::EndRequest,
            4 => Self::Params,
            5 => Self::Stdin,
            6 => Self::Stdout,
            7 => Self::Stderr,
            8 => Self::Data,
            9 => Self::GetValues,
            10 => Self::GetValuesResult,
            11 => Self::UnknownType,
            other => Self::Other(other),
        }
    }
}

impl fmt::Display for RecordType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = match self {
            Self::BeginRequest => "BEGIN_REQUEST",
            Self::AbortRequest => "ABORT_REQUEST",
            Self::EndRequest => "END_REQUEST",
            Self::Params => "PARAMS",
            Self::Stdin => "STDIN",
            Self::Stdout => "STDOUT",
            Self::Stderr => "STDERR",
            Self::Data => "DATA",
            Self::GetValues => "GET_VALUES",
            Self::GetValuesResult => "GET_VALUES_RESULT",
            Self::UnknownType => "UNKNOWN_TYPE",
            Self::Other(code) => return write!(f, "record type {code}"),
        };
        f.write_str(name)
    }
}

/// `FCGI_BeginRequestBody.role` (§6).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Role {
    /// CGI/1.1: params, stdin, then the response (§6.2). The only role nginx sends.
    Responder,
    /// Params only; a 200 allows, anything else is the deny response (§6.3).
    Authorizer,
    /// Params, stdin, then the file as DATA (§6.4).
    Filter,
    /// A role this version does not define: answered with `FCGI_UNKNOWN_ROLE` (§5.1).
    Other(u16),
}

impl Role {
    /// The role's code on the wire.
    pub fn code(self) -> u16 {
        match self {
            Self::Responder => 1,
            Self::Authorizer => 2,
            Self::Filter => 3,
            Self::Other(code) => code,
        }
    }
}

impl From<u16> for Role {
    fn from(code: u16) -> Self {
        match code {
            1 => Self::Responder,
            2 => Self::Authorizer,
            3 => Self::Filter,
            other => Self::Other(other),
        }
    }
}

/// `FCGI_EndRequestBody.protocolStatus` (§5.5).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ProtocolStatus {
    /// Normal end of the request.
    RequestComplete,
    /// A second request on a connection the application handles one at a time.
    CantMpxConn,
    /// The application ran out of some resource, e.g. database connections.
    Overloaded,
    /// The application does not play the role the web server asked for.
    UnknownRole,
    /// A status this version does not define.
    Other(u8),
}

impl ProtocolStatus {
    /// The status's code on the wire.
    pub fn code(self) -> u8 {
        match self {
            Self::RequestComplete => 0,
            Self::CantMpxConn => 1,
            Self::Overloaded => 2,
            Self::UnknownRole => 3,
            Self::Other(code) => code,
        }
    }
}

impl From<u8> for ProtocolStatus {
    fn from(code: u8) -> Self {
        match code {
            0 => Self::RequestComplete,
            1 => Self::CantMpxConn,
            2 => Self::Overloaded,
            3 => Self::UnknownRole,
            other => Self::Other(other),
        }
    }
}

/// The 8-byte record header, as read: nothing is validated here.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Header {
    pub version: u8,
    pub record_type: RecordType,
    pub request_id: u16,
    pub content_length: u16,
    pub padding_length: u8,
}

impl Header {
    /// A version-1 header whose padding rounds the record up to a multiple of 8 bytes, as
    /// §3.3 recommends ("so that the data following the record are aligned").
    pub fn new(record_type: RecordType, request_id: u16, content_length: u16) -> Self {
        Self {
            version: VERSION_1,
            record_type,
            request_id,
            content_length,
            padding_length: (content_length.wrapping_neg() & 7) as u8,
        }
    }

    /// Reads a header from its 8 bytes; the reserved byte is ignored as §8 says.
    pub fn parse(bytes: &[u8; HEADER_LEN]) -> Self {
        Self {
            version: bytes[0],
            record_type: RecordType::from(bytes[1]),
            request_id: u16::from_be_bytes([bytes[2], bytes[3]]),
            content_length: u16::from_be_bytes([bytes[4], bytes[5]]),
            padding_length: bytes[6],
        }
    }

    /// The header's 8 bytes, reserved byte zero.
    pub fn to_bytes(self) -> [u8; HEADER_LEN] {
        let [id_hi, id_lo] = self.request_id.to_be_bytes();
        let [len_hi, len_lo] = self.content_length.to_be_bytes();
        [
            self.version,
            self.record_type.code(),
            id_hi,
            id_lo,
            len_hi,
            len_lo,
            self.padding_length,
            0,
        ]
    }

    /// Header, content and padding together.
    pub fn record_len(self) -> usize {
        HEADER_LEN + usize::from(self.content_length) + usize::from(self.padding_length)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_code_round_trips() {
        for code in 0..=u8::MAX {
            assert_eq!(RecordType::from(code).code(), code);
            assert_eq!(ProtocolStatus::from(code).code(), code);
        }
        for code in [0u16, 1, 2, 3, 4, 0xffff] {
            assert_eq!(Role::from(code).code(), code);
        }
    }

    #[test]
    fn header_is_big_endian_with_zero_reserved_byte() {
        let header = Header {
            version: 1,
            record_type: RecordType::Stdout,
            request_id: 0x0102,
            content_length: 0x0304,
            padding_length: 5,
        };
        assert_eq!(header.to_bytes(), [1, 6, 1, 2, 3, 4, 5, 0]);
        assert_eq!(Header::parse(&[1, 6, 1, 2, 3, 4, 5, 99]), header);
    }

    #[test]
    fn padding_aligns_records_to_eight_bytes() {
        for len in [0u16, 1, 7, 8, 9, 65535] {
            let header = Header::new(RecordType::Stdin, 1, len);
            assert_eq!(header.record_len() % 8, 0, "content {len}");
            assert!(header.padding_length < 8);
        }
    }
}
