// The bodies of the fuzz targets. fuzz/fuzz_targets/*.rs `include!` this file, and
// tests/fuzz_corpus_replays.rs runs every file of fuzz/corpus/ through the same functions, so an
// input that once broke the codec stays a test on stable Rust without cargo-fuzz.
//
// (Plain comments only: a file pulled in with `include!` cannot carry inner doc comments.)
//
// Each body checks more than "does not panic": the same input fed whole and fed in small reads
// must give the same events, the same answer bytes and the same error (a stream's value "is
// independent of how it is split", §3.3, and so is the wire's), and what the codec writes back
// must itself be well-formed records.
//
// Input layout of the two connection targets: byte 0 chooses the configuration, the rest is
// what the peer sent.
//   bit 0       multiplexing on (server: ServerConfig::multiplex; client: nothing, the input
//               must say FCGI_MPXS_CONNS=1 itself)
//   bit 1       small limits, so that the fuzzer reaches them
//   bit 2       server: answer each request as soon as its head arrives, not at its StdinEnd
//   bits 3..=7  the size of the small reads, 1 to 32 bytes

use bytes::{Buf, Bytes, BytesMut};
use plexer_fcgi::record::decode_record;
use plexer_fcgi::{
    ClientConnection, ClientEvent, Limits, Params, RecordType, Role, ServerConfig,
    ServerConnection, ServerEvent,
};

/// The application side: decode everything, answer every request with a little STDOUT and
/// END_REQUEST, as a real responder would.
pub(crate) fn server_decode(input: &[u8]) {
    let Some((&control, wire)) = input.split_first() else {
        return;
    };
    let whole = server_transcript(control, wire, wire.len().max(1));
    let split = server_transcript(control, wire, read_size(control));
    assert_eq!(whole, split, "the read boundaries changed what was decoded");
}

/// The web-server side: one request in flight (more once the input says FCGI_MPXS_CONNS=1), a
/// new one begun whenever the last ends, everything the application sent decoded.
pub(crate) fn client_decode(input: &[u8]) {
    let Some((&control, wire)) = input.split_first() else {
        return;
    };
    let whole = client_transcript(control, wire, wire.len().max(1));
    let split = client_transcript(control, wire, read_size(control));
    assert_eq!(whole, split, "the read boundaries changed what was decoded");
}

/// A PARAMS body with the default limits: what decodes re-encodes canonically (never longer
/// than the input) and decodes back to the same pairs; what fails is the peer's fault.
pub(crate) fn params_decode(input: &[u8]) {
    let limits = Limits::default();
    match Params::decode(Bytes::copy_from_slice(input), RecordType::Params, &limits) {
        Ok(params) => {
            assert!(
                params.len() * 2 <= input.len(),
                "each pair takes at least two bytes"
            );
            let mut canonical = BytesMut::new();
            params
                .encode(&mut canonical)
                .expect("decoded pairs re-encode");
            assert!(
                canonical.len() <= input.len(),
                "the canonical form is the shortest"
            );
            let again = Params::decode(canonical.freeze(), RecordType::Params, &limits)
                .expect("canonical output decodes");
            assert_eq!(again, params);
        }
        Err(err) => {
            assert!(err.is_peer_fault(), "{err}");
            assert!(!err.to_string().is_empty());
        }
    }
}

fn read_size(control: u8) -> usize {
    usize::from(control >> 3) + 1
}

fn fuzz_limits(control: u8) -> Limits {
    if control & 2 == 0 {
        return Limits::default();
    }
    Limits {
        max_params_bytes: 512,
        max_name_value_len: 200,
        max_requests_per_connection: 3,
        ..Limits::default()
    }
}

fn server_transcript(control: u8, wire: &[u8], read: usize) -> Vec<String> {
    let limits = fuzz_limits(control);
    let max_in_flight = limits.max_requests_per_connection;
    let answer_at_head = control & 4 != 0;
    let mut conn = ServerConnection::new(ServerConfig {
        limits,
        multiplex: control & 1 != 0,
        ..ServerConfig::default()
    });
    let mut transcript = Vec::new();
    let mut failed = false;
    'feed: for chunk in wire.chunks(read) {
        conn.read_buf().extend_from_slice(chunk);
        loop {
            let event = match conn.poll_event() {
                Ok(Some(event)) => event,
                Ok(None) => break,
                Err(err) => {
                    assert!(err.is_peer_fault(), "{err}");
                    transcript.push(format!("error: {err}"));
                    failed = true;
                    break 'feed;
                }
            };
            assert!(conn.active_requests() <= max_in_flight);
            transcript.push(format!("{event:?}"));
            let finish = match &event {
                ServerEvent::Request(head) if answer_at_head => Some(head.id),
                ServerEvent::Request(_) => None,
                ServerEvent::Stdin { data, .. } | ServerEvent::Data { data, .. } => {
                    assert!(!data.is_empty(), "stream events are never empty");
                    None
                }
                ServerEvent::StdinEnd { id } | ServerEvent::Abort { id } => Some(*id),
                ServerEvent::DataEnd { .. } => None,
            };
            if let Some(id) = finish {
                // The id just produced an event, so it is active and these cannot fail.
                conn.stdout(id, Bytes::from_static(b"Status: 200\r\n\r\nok"))
                    .expect("stdout for an active request");
                conn.stderr(id, Bytes::from_static(b"note"))
                    .expect("stderr for an active request");
                conn.end_request(id, 0).expect("end an active request");
            }
        }
    }
    transcript.push(format!("closing: {}", conn.is_closing()));
    if !failed {
        // After an error the connection is dropped; how much of the rest was read is moot.
        transcript.push(format!("eof: {:?}", conn.on_eof()));
    }
    let outbox = conn.outbox();
    transcript.push(format!(
        "{:?}",
        written_records(outbox.copy_to_bytes(outbox.remaining()))
    ));
    transcript
}

fn client_transcript(control: u8, wire: &[u8], read: usize) -> Vec<String> {
    let mut conn = ClientConnection::new(fuzz_limits(control));
    let params: Params = [("REQUEST_METHOD", "GET"), ("SCRIPT_NAME", "/fuzz")]
        .into_iter()
        .collect();
    let begin = |conn: &mut ClientConnection| {
        let id = conn
            .begin_request(Role::Responder, true, &params)
            .expect("a request can begin when none is in flight, or when multiplexing");
        conn.stdin_end(id).expect("stdin of a new request is open");
    };
    begin(&mut conn);
    let mut transcript = Vec::new();
    let mut failed = false;
    'feed: for chunk in wire.chunks(read) {
        conn.read_buf().extend_from_slice(chunk);
        loop {
            let before = conn.in_flight();
            let event = match conn.poll_event() {
                Ok(Some(event)) => event,
                Ok(None) => break,
                Err(err) => {
                    assert!(err.is_peer_fault(), "{err}");
                    transcript.push(format!("error: {err}"));
                    failed = true;
                    break 'feed;
                }
            };
            transcript.push(format!("{event:?}"));
            match &event {
                ClientEvent::Stdout { data, .. } | ClientEvent::Stderr { data, .. } => {
                    assert!(!data.is_empty(), "stream events are never empty");
                }
                ClientEvent::End { .. } => assert_eq!(conn.in_flight() + 1, before),
                ClientEvent::Values(_) | ClientEvent::UnknownType(_) => {}
            }
            if conn.in_flight() == 0 || (conn.multiplexes() && conn.in_flight() < 3) {
                begin(&mut conn);
            }
        }
    }
    if !failed {
        transcript.push(format!("eof: {:?}", conn.on_eof()));
    }
    let outbox = conn.outbox();
    transcript.push(format!(
        "{:?}",
        written_records(outbox.copy_to_bytes(outbox.remaining()))
    ));
    transcript
}

/// What a connection wrote, cut into records: it must be nothing but whole version-1 records.
fn written_records(wire: Bytes) -> Vec<(RecordType, u16, usize)> {
    let mut buf = BytesMut::from(&wire[..]);
    let mut records = Vec::new();
    while let Some(record) = decode_record(&mut buf).expect("the codec writes valid records") {
        records.push((record.record_type, record.request_id, record.body.len()));
    }
    assert!(buf.is_empty(), "the codec wrote a partial record");
    records
}
