//! Shared helpers for the codec's integration tests: records built by hand (so padding and
//! record boundaries are the test's choice, not the encoder's), connections fed in arbitrary
//! read splits, and the event streams folded into what a caller would see.
//!
//! Each test file uses only some of these, hence the `dead_code` allowance.
#![allow(dead_code)]

pub(crate) mod fuzz_bodies;

use bytes::{Buf, Bytes, BytesMut};
use plexer_fcgi::outbox::Outbox;
use plexer_fcgi::protocol::{HEADER_LEN, Header, MAX_CONTENT_LEN, VERSION_1};
use plexer_fcgi::record::decode_record;
use plexer_fcgi::{
    ClientConnection, ClientEvent, Error, Params, ProtocolStatus, Record, RecordType, Role,
    ServerConnection, ServerEvent,
};
use proptest::prelude::*;

/// One record, framed by hand: any content length up to 65535, any padding up to 255, the
/// padding bytes non-zero so that a receiver which reads them as content is caught.
pub(crate) fn record(record_type: RecordType, id: u16, content: &[u8], padding: u8) -> Vec<u8> {
    assert!(
        content.len() <= MAX_CONTENT_LEN,
        "one record carries at most 65535 bytes"
    );
    let header = Header {
        version: VERSION_1,
        record_type,
        request_id: id,
        content_length: content.len() as u16,
        padding_length: padding,
    };
    let mut wire = Vec::with_capacity(header.record_len());
    wire.extend_from_slice(&header.to_bytes());
    wire.extend_from_slice(content);
    wire.extend(std::iter::repeat_n(0xa5, usize::from(padding)));
    wire
}

/// `FCGI_BeginRequestBody` (§5.1).
pub(crate) fn begin_body(role: Role, flags: u8) -> [u8; 8] {
    let [r0, r1] = role.code().to_be_bytes();
    [r0, r1, flags, 0, 0, 0, 0, 0]
}

/// `FCGI_EndRequestBody` (§5.5).
pub(crate) fn end_body(app_status: u32, status: ProtocolStatus) -> [u8; 8] {
    let [a, b, c, d] = app_status.to_be_bytes();
    [a, b, c, d, status.code(), 0, 0, 0]
}

/// A BEGIN_REQUEST record with the encoder's padding.
pub(crate) fn begin(id: u16, role: Role, keep_conn: bool) -> Vec<u8> {
    record(
        RecordType::BeginRequest,
        id,
        &begin_body(role, u8::from(keep_conn)),
        0,
    )
}

/// Appends one name-value length (§3.4); `long` forces the 4-byte form even below 128.
pub(crate) fn put_length(dst: &mut Vec<u8>, len: usize, long: bool) {
    if len <= 127 && !long {
        dst.push(len as u8);
    } else {
        dst.extend_from_slice(&(len as u32 | 0x8000_0000).to_be_bytes());
    }
}

/// Name-value pairs encoded by hand, `long_forms[i]` choosing the 4-byte form for pair `i`'s
/// name and value lengths (cycled; empty means canonical everywhere).
pub(crate) fn nv_stream(pairs: &[(Vec<u8>, Vec<u8>)], long_forms: &[(bool, bool)]) -> Vec<u8> {
    let mut out = Vec::new();
    for (i, (name, value)) in pairs.iter().enumerate() {
        let (long_name, long_value) = if long_forms.is_empty() {
            (false, false)
        } else {
            long_forms[i % long_forms.len()]
        };
        put_length(&mut out, name.len(), long_name);
        put_length(&mut out, value.len(), long_value);
        out.extend_from_slice(name);
        out.extend_from_slice(value);
    }
    out
}

/// PARAMS in one record (none when there are no pairs) plus the empty end record, canonical
/// lengths.
pub(crate) fn params_records(id: u16, pairs: &[(&str, &str)]) -> Vec<u8> {
    let owned: Vec<_> = pairs
        .iter()
        .map(|(n, v)| (n.as_bytes().to_vec(), v.as_bytes().to_vec()))
        .collect();
    let body = nv_stream(&owned, &[]);
    let mut wire = Vec::new();
    if !body.is_empty() {
        wire.extend(record(RecordType::Params, id, &body, 0));
    }
    wire.extend(record(RecordType::Params, id, b"", 0));
    wire
}

/// How a test cuts a stream into records: record `i` carries `sizes[i % n]` bytes (or what is
/// left) and `pads[i % m]` bytes of padding. After [`Framing::TINY_RECORDS`] records the sizes
/// are raised to at least 4096, which keeps 1-byte records in every case without letting a
/// 140 KB stream turn into 140 000 records in a debug build.
#[derive(Clone, Debug)]
pub(crate) struct Framing {
    pub(crate) sizes: Vec<usize>,
    pub(crate) pads: Vec<u8>,
}

impl Framing {
    const TINY_RECORDS: usize = 256;

    /// Every record at its largest, no padding: how an encoder that fills records would do it.
    pub(crate) fn whole() -> Self {
        Self {
            sizes: vec![MAX_CONTENT_LEN],
            pads: vec![0],
        }
    }

    /// The non-empty records of a stream carrying `data` (none for empty data).
    pub(crate) fn records(&self, record_type: RecordType, id: u16, data: &[u8]) -> Vec<Vec<u8>> {
        let mut out = Vec::new();
        let mut rest = data;
        let mut i = 0;
        while !rest.is_empty() {
            let mut size = self.sizes[i % self.sizes.len()].clamp(1, MAX_CONTENT_LEN);
            if i >= Self::TINY_RECORDS {
                size = size.max(4096);
            }
            let (piece, tail) = rest.split_at(size.min(rest.len()));
            out.push(record(record_type, id, piece, self.pad(i)));
            rest = tail;
            i += 1;
        }
        out
    }

    /// A whole stream: its non-empty records, then the empty record that ends it (§3.3).
    pub(crate) fn stream(&self, record_type: RecordType, id: u16, data: &[u8]) -> Vec<u8> {
        let mut out = self.records(record_type, id, data).concat();
        out.extend(record(record_type, id, b"", self.pad(usize::MAX)));
        out
    }

    pub(crate) fn pad(&self, i: usize) -> u8 {
        self.pads[i % self.pads.len()]
    }
}

/// Record content sizes from 1 byte to 65535, biased towards the small and the largest.
pub(crate) fn framing() -> impl Strategy<Value = Framing> {
    let size = prop_oneof![
        3 => 1usize..=8,
        3 => 1usize..=300,
        1 => 1usize..=MAX_CONTENT_LEN,
        1 => (MAX_CONTENT_LEN - 16)..=MAX_CONTENT_LEN,
    ];
    (
        proptest::collection::vec(size, 1..8),
        proptest::collection::vec(any::<u8>(), 1..8),
    )
        .prop_map(|(sizes, pads)| Framing { sizes, pads })
}

/// How a test cuts the wire into reads: chunk `i` is `sizes[i % n]` bytes. After
/// [`Reads::TINY_READS`] reads the sizes are raised to at least 4096, for the same reason as
/// [`Framing`].
#[derive(Clone, Debug)]
pub(crate) struct Reads {
    pub(crate) sizes: Vec<usize>,
}

impl Reads {
    const TINY_READS: usize = 4096;

    pub(crate) fn whole() -> Self {
        Self {
            sizes: vec![usize::MAX],
        }
    }

    pub(crate) fn bytewise() -> Self {
        Self { sizes: vec![1] }
    }

    pub(crate) fn chunks<'a>(&self, wire: &'a [u8]) -> Vec<&'a [u8]> {
        let mut out = Vec::new();
        let mut rest = wire;
        while !rest.is_empty() {
            let mut size = self.sizes[out.len() % self.sizes.len()].max(1);
            if out.len() >= Self::TINY_READS {
                size = size.max(4096);
            }
            let (chunk, tail) = rest.split_at(size.min(rest.len()));
            out.push(chunk);
            rest = tail;
        }
        out
    }
}

/// Read sizes from 1 byte (a feed per byte is among them) to far more than one record.
pub(crate) fn reads() -> impl Strategy<Value = Reads> {
    let size = prop_oneof![
        2 => Just(1usize),
        3 => 1usize..=16,
        2 => 1usize..=9000,
        1 => 60_000usize..=200_000,
    ];
    proptest::collection::vec(size, 1..8).prop_map(|sizes| Reads { sizes })
}

/// Stream contents: mostly small, sometimes over two full records (built from a seed, since
/// drawing 140 000 bytes one by one is slow in a debug build).
pub(crate) fn payload() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        4 => proptest::collection::vec(any::<u8>(), 0..700),
        1 => (any::<u64>(), 60_000usize..=140_000).prop_map(|(seed, len)| pseudo_bytes(seed, len)),
    ]
}

/// Up to 12 pairs whose names and values run 0..300 bytes, so that all four length forms
/// (1+1, 1+4, 4+1, 4+4) occur.
pub(crate) fn nv_pairs() -> impl Strategy<Value = Vec<(Vec<u8>, Vec<u8>)>> {
    let bytes = || proptest::collection::vec(any::<u8>(), 0..300);
    proptest::collection::vec((bytes(), bytes()), 0..12)
}

/// Deterministic filler bytes (xorshift64*).
pub(crate) fn pseudo_bytes(seed: u64, len: usize) -> Vec<u8> {
    let mut state = seed | 1;
    (0..len)
        .map(|_| {
            state ^= state >> 12;
            state ^= state << 25;
            state ^= state >> 27;
            (state.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 56) as u8
        })
        .collect()
}

pub(crate) fn params_of(pairs: &[(Vec<u8>, Vec<u8>)]) -> Params {
    pairs
        .iter()
        .map(|(n, v)| (Bytes::copy_from_slice(n), Bytes::copy_from_slice(v)))
        .collect()
}

/// Everything queued in an outbox, as one byte string.
pub(crate) fn drain(outbox: &mut Outbox) -> Vec<u8> {
    outbox.copy_to_bytes(outbox.remaining()).to_vec()
}

/// Cuts encoder output into records; panics on anything that is not whole, valid records.
pub(crate) fn decode_all(wire: &[u8]) -> Vec<Record> {
    let mut buf = BytesMut::from(wire);
    let records: Vec<_> =
        std::iter::from_fn(|| decode_record(&mut buf).expect("encoder output decodes")).collect();
    assert!(
        buf.is_empty(),
        "{} bytes left after the last record",
        buf.len()
    );
    records
}

/// Records as (type, id, body) for comparisons with a spec listing.
pub(crate) fn shapes(records: &[Record]) -> Vec<(RecordType, u16, Vec<u8>)> {
    records
        .iter()
        .map(|r| (r.record_type, r.request_id, r.body.to_vec()))
        .collect()
}

/// Feeds `wire` to the application side in the given reads, taking every event after each read.
pub(crate) fn feed_server(
    conn: &mut ServerConnection,
    wire: &[u8],
    reads: &Reads,
) -> Result<Vec<ServerEvent>, Error> {
    let mut events = Vec::new();
    for chunk in reads.chunks(wire) {
        conn.receive(chunk);
        while let Some(event) = conn.poll_event()? {
            events.push(event);
        }
    }
    Ok(events)
}

/// Feeds `wire` to the web-server side in the given reads, taking every event after each read.
pub(crate) fn feed_client(
    conn: &mut ClientConnection,
    wire: &[u8],
    reads: &Reads,
) -> Result<Vec<ClientEvent>, Error> {
    let mut events = Vec::new();
    for chunk in reads.chunks(wire) {
        conn.read_buf().extend_from_slice(chunk);
        while let Some(event) = conn.poll_event()? {
            events.push(event);
        }
    }
    Ok(events)
}

/// Feeds `wire` whole and returns the first error; panics if there is none.
pub(crate) fn server_error(conn: &mut ServerConnection, wire: &[u8]) -> Error {
    match feed_server(conn, wire, &Reads::whole()) {
        Ok(events) => panic!("no error; events: {events:?}"),
        Err(err) => err,
    }
}

/// Feeds `wire` whole and returns the first error; panics if there is none.
pub(crate) fn client_error(conn: &mut ClientConnection, wire: &[u8]) -> Error {
    match feed_client(conn, wire, &Reads::whole()) {
        Ok(events) => panic!("no error; events: {events:?}"),
        Err(err) => err,
    }
}

/// One request as the application sees it, whatever the record and read boundaries were.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct RequestSeen {
    pub(crate) id: u16,
    pub(crate) role: Role,
    pub(crate) keep_conn: bool,
    pub(crate) params: Params,
    pub(crate) stdin: Vec<u8>,
    pub(crate) stdin_ended: bool,
    pub(crate) data: Vec<u8>,
    pub(crate) data_ended: bool,
    pub(crate) aborted: bool,
}

/// Folds the events of one request, checking the order the API promises: the head first and
/// once, stream pieces never empty, nothing after a stream's end.
pub(crate) fn request_seen(events: &[ServerEvent]) -> RequestSeen {
    let Some((ServerEvent::Request(head), rest)) = events.split_first() else {
        panic!("the first event is not the request head: {events:?}");
    };
    let mut seen = RequestSeen {
        id: head.id,
        role: head.role,
        keep_conn: head.keep_conn,
        params: head.params.clone(),
        stdin: Vec::new(),
        stdin_ended: false,
        data: Vec::new(),
        data_ended: false,
        aborted: false,
    };
    for event in rest {
        match event {
            ServerEvent::Request(_) => panic!("a second head for one request"),
            ServerEvent::Stdin { id, data } => {
                assert_eq!(*id, seen.id);
                assert!(!data.is_empty(), "Stdin events are never empty");
                assert!(!seen.stdin_ended, "Stdin after StdinEnd");
                seen.stdin.extend_from_slice(data);
            }
            ServerEvent::StdinEnd { id } => {
                assert_eq!(*id, seen.id);
                assert!(!seen.stdin_ended, "StdinEnd twice");
                seen.stdin_ended = true;
            }
            ServerEvent::Data { id, data } => {
                assert_eq!(*id, seen.id);
                assert!(!data.is_empty(), "Data events are never empty");
                assert!(!seen.data_ended, "Data after DataEnd");
                seen.data.extend_from_slice(data);
            }
            ServerEvent::DataEnd { id } => {
                assert_eq!(*id, seen.id);
                assert!(!seen.data_ended, "DataEnd twice");
                seen.data_ended = true;
            }
            ServerEvent::Abort { id } => {
                assert_eq!(*id, seen.id);
                seen.aborted = true;
            }
        }
    }
    seen
}

/// One response as the web server sees it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct ResponseSeen {
    pub(crate) stdout: Vec<u8>,
    pub(crate) stderr: Vec<u8>,
    pub(crate) end: Option<(u16, u32, ProtocolStatus)>,
}

/// Folds the events of one response: pieces never empty, nothing after END_REQUEST.
pub(crate) fn response_seen(events: &[ClientEvent]) -> ResponseSeen {
    let mut seen = ResponseSeen::default();
    for event in events {
        assert!(seen.end.is_none(), "{event:?} after the end of the request");
        match event {
            ClientEvent::Stdout { data, .. } => {
                assert!(!data.is_empty(), "Stdout events are never empty");
                seen.stdout.extend_from_slice(data);
            }
            ClientEvent::Stderr { data, .. } => {
                assert!(!data.is_empty(), "Stderr events are never empty");
                seen.stderr.extend_from_slice(data);
            }
            ClientEvent::End {
                id,
                app_status,
                protocol_status,
            } => seen.end = Some((*id, *app_status, *protocol_status)),
            other => panic!("unexpected {other:?}"),
        }
    }
    seen
}

/// A record header's bytes, for hand-written golden vectors.
pub(crate) fn header_bytes(
    record_type: RecordType,
    id: u16,
    len: u16,
    pad: u8,
) -> [u8; HEADER_LEN] {
    Header {
        version: VERSION_1,
        record_type,
        request_id: id,
        content_length: len,
        padding_length: pad,
    }
    .to_bytes()
}

/// Interleaves two record lists, taking from `a` where `pick[i % n]` is true (order within
/// each list kept).
pub(crate) fn interleave(a: Vec<Vec<u8>>, b: Vec<Vec<u8>>, pick: &[bool]) -> Vec<u8> {
    let mut a = a.into_iter().peekable();
    let mut b = b.into_iter().peekable();
    let mut out = Vec::new();
    let mut i = 0;
    loop {
        let from_a = match (a.peek(), b.peek()) {
            (None, None) => return out,
            (Some(_), None) => true,
            (None, Some(_)) => false,
            (Some(_), Some(_)) => pick.is_empty() || pick[i % pick.len()],
        };
        let next = if from_a { a.next() } else { b.next() };
        out.extend(next.into_iter().flatten());
        i += 1;
    }
}
