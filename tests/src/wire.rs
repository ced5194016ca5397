//! FastCGI 1.0 records written and read by hand (spec §3.3, §8), deliberately independent of
//! `plexer-fcgi`: a test that checks the codec against itself proves nothing, and a fake peer
//! must be able to write what the codec never would (a bad version, a short END_REQUEST).

use std::io::{self, Read, Write};

/// `FCGI_VERSION_1`, the only version there is.
pub const VERSION_1: u8 = 1;

/// Record types (§8).
pub mod kind {
    pub const BEGIN_REQUEST: u8 = 1;
    pub const ABORT_REQUEST: u8 = 2;
    pub const END_REQUEST: u8 = 3;
    pub const PARAMS: u8 = 4;
    pub const STDIN: u8 = 5;
    pub const STDOUT: u8 = 6;
    pub const STDERR: u8 = 7;
    pub const DATA: u8 = 8;
    pub const GET_VALUES: u8 = 9;
    pub const GET_VALUES_RESULT: u8 = 10;
    pub const UNKNOWN_TYPE: u8 = 11;
}

/// `FCGI_RESPONDER`.
pub const RESPONDER: u16 = 1;
/// `FCGI_KEEP_CONN`, the one BEGIN_REQUEST flag.
pub const KEEP_CONN: u8 = 1;
/// `FCGI_REQUEST_COMPLETE`.
pub const REQUEST_COMPLETE: u8 = 0;

/// One record as it came off the wire.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RawRecord {
    pub version: u8,
    pub kind: u8,
    pub id: u16,
    pub content: Vec<u8>,
}

/// A version-1 record, padded to a multiple of 8 bytes as the spec recommends.
pub fn record(kind: u8, id: u16, content: &[u8]) -> Vec<u8> {
    record_with_version(VERSION_1, kind, id, content)
}

/// A record with any version byte: for peers that break the protocol on purpose.
pub fn record_with_version(version: u8, kind: u8, id: u16, content: &[u8]) -> Vec<u8> {
    let len = u16::try_from(content.len()).expect("a record body is at most 65535 bytes");
    let padding = (8 - content.len() % 8) % 8;
    let [id_hi, id_lo] = id.to_be_bytes();
    let [len_hi, len_lo] = len.to_be_bytes();
    let mut out = vec![
        version,
        kind,
        id_hi,
        id_lo,
        len_hi,
        len_lo,
        padding as u8,
        0,
    ];
    out.extend_from_slice(content);
    out.resize(out.len() + padding, 0);
    out
}

/// A whole stream: `data` in records of at most 65535 bytes, then the empty record that
/// ends it.
pub fn stream(kind: u8, id: u16, data: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    for chunk in data.chunks(0xffff) {
        out.extend(record(kind, id, chunk));
    }
    out.extend(record(kind, id, &[]));
    out
}

/// One name-value pair, in the 1- or 4-byte length forms (§3.4).
pub fn name_value(name: &[u8], value: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    for len in [name.len(), value.len()] {
        if len < 0x80 {
            out.push(len as u8);
        } else {
            out.extend((len as u32 | 0x8000_0000).to_be_bytes());
        }
    }
    out.extend_from_slice(name);
    out.extend_from_slice(value);
    out
}

/// BEGIN_REQUEST's body: role, flags, five reserved bytes.
pub fn begin_request(id: u16, role: u16, keep_conn: bool) -> Vec<u8> {
    let [r0, r1] = role.to_be_bytes();
    let flags = if keep_conn { KEEP_CONN } else { 0 };
    record(kind::BEGIN_REQUEST, id, &[r0, r1, flags, 0, 0, 0, 0, 0])
}

/// END_REQUEST's 8-byte body: the app status, the protocol status, three reserved bytes.
pub fn end_request(id: u16, app_status: u32, protocol_status: u8) -> Vec<u8> {
    let mut body = app_status.to_be_bytes().to_vec();
    body.extend([protocol_status, 0, 0, 0]);
    record(kind::END_REQUEST, id, &body)
}

/// A whole RESPONDER request: BEGIN_REQUEST, the PARAMS stream, the STDIN stream.
pub fn request(id: u16, params: &[(&str, &str)], body: &[u8], keep_conn: bool) -> Vec<u8> {
    let mut out = begin_request(id, RESPONDER, keep_conn);
    let pairs: Vec<u8> = params
        .iter()
        .flat_map(|(name, value)| name_value(name.as_bytes(), value.as_bytes()))
        .collect();
    out.extend(stream(kind::PARAMS, id, &pairs));
    out.extend(stream(kind::STDIN, id, body));
    out
}

/// The next record, or `None` when the peer closed the connection between records.
pub fn read_record(reader: &mut impl Read) -> io::Result<Option<RawRecord>> {
    let mut header = [0u8; 8];
    let mut got = 0;
    while got < header.len() {
        match reader.read(&mut header[got..]) {
            Ok(0) if got == 0 => return Ok(None),
            Ok(0) => return Err(io::ErrorKind::UnexpectedEof.into()),
            Ok(n) => got += n,
            Err(err) if err.kind() == io::ErrorKind::Interrupted => {}
            Err(err) => return Err(err),
        }
    }
    let len = usize::from(u16::from_be_bytes([header[4], header[5]]));
    let padding = usize::from(header[6]);
    let mut content = vec![0; len + padding];
    reader.read_exact(&mut content)?;
    content.truncate(len);
    Ok(Some(RawRecord {
        version: header[0],
        kind: header[1],
        id: u16::from_be_bytes([header[2], header[3]]),
        content,
    }))
}

/// What an application answered to one request.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RawResponse {
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
    pub app_status: u32,
    pub protocol_status: u8,
}

/// Reads records of request `id` up to its END_REQUEST. A close before it is an
/// `UnexpectedEof` error.
pub fn read_response(reader: &mut impl Read, id: u16) -> io::Result<RawResponse> {
    let mut response = RawResponse::default();
    loop {
        let Some(record) = read_record(reader)? else {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "the application closed the connection before END_REQUEST",
            ));
        };
        if record.id != id {
            return Err(io::Error::other(format!(
                "a record for request {} while waiting for request {id}: {record:?}",
                record.id
            )));
        }
        match record.kind {
            kind::STDOUT => response.stdout.extend(&record.content),
            kind::STDERR => response.stderr.extend(&record.content),
            kind::END_REQUEST if record.content.len() == 8 => {
                let c = &record.content;
                response.app_status = u32::from_be_bytes([c[0], c[1], c[2], c[3]]);
                response.protocol_status = c[4];
                return Ok(response);
            }
            _ => return Err(io::Error::other(format!("unexpected record {record:?}"))),
        }
    }
}

/// Sends one request on `conn` and reads its response.
pub fn exchange(
    conn: &mut (impl Read + Write),
    params: &[(&str, &str)],
    body: &[u8],
) -> io::Result<RawResponse> {
    conn.write_all(&request(1, params, body, false))?;
    read_response(conn, 1)
}

/// How a server met a GET_VALUES probe.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Probe {
    /// It answered with GET_VALUES_RESULT: it serves FastCGI on this connection.
    Answered(Vec<u8>),
    /// It accepted the connection and closed it (e.g. an `FCGI_WEB_SERVER_ADDRS` refusal).
    Closed,
}

/// Sends a GET_VALUES management record (§4.1) and waits for the reply or the close.
pub fn probe(conn: &mut (impl Read + Write)) -> io::Result<Probe> {
    let query: Vec<u8> = ["FCGI_MAX_CONNS", "FCGI_MAX_REQS", "FCGI_MPXS_CONNS"]
        .iter()
        .flat_map(|name| name_value(name.as_bytes(), b""))
        .collect();
    if let Err(err) = conn.write_all(&record(kind::GET_VALUES, 0, &query)) {
        // The server may have closed before our write landed.
        return match err.kind() {
            io::ErrorKind::BrokenPipe | io::ErrorKind::ConnectionReset => Ok(Probe::Closed),
            _ => Err(err),
        };
    }
    match read_record(conn) {
        Ok(Some(record)) if record.kind == kind::GET_VALUES_RESULT => {
            Ok(Probe::Answered(record.content))
        }
        Ok(Some(record)) => Err(io::Error::other(format!(
            "unexpected answer to GET_VALUES: {record:?}"
        ))),
        Ok(None) => Ok(Probe::Closed),
        Err(err) if err.kind() == io::ErrorKind::ConnectionReset => Ok(Probe::Closed),
        Err(err) => Err(err),
    }
}
