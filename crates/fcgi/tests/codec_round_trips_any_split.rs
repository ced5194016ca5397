//! A stream's value "is independent of how many records it contains or how its bytes are divided
//! among the non-empty records" (FastCGI 1.0 §3.3), and the wire's meaning is independent of how
//! the kernel cuts it into reads. These properties encode a request or a response with the
//! crate's own encoder, then re-frame the same logical streams by hand (records of 1 to 65535
//! bytes, padding of 0 to 255 bytes, name-value pairs straddling records, 4-byte lengths for
//! short names) and feed the wire in arbitrary reads down to one byte: what the other side
//! decodes must not change.
//!
//! peers.md §1.8 rows 2, 3 and 4 are the bugs this guards against.

mod support;

use bytes::{Bytes, BytesMut};
use plexer_fcgi::protocol::KEEP_CONN;
use plexer_fcgi::{
    ClientConnection, Limits, Params, ProtocolStatus, RecordType, Role, ServerConfig,
    ServerConnection,
};
use proptest::prelude::*;
use support::{
    Framing, Reads, begin_body, drain, end_body, feed_client, feed_server, framing, interleave,
    nv_pairs, nv_stream, params_of, payload, reads, record, request_seen, response_seen,
};

/// What the application decodes from the crate's own encoding, fed in one read.
fn reference_request(
    params: &Params,
    keep_conn: bool,
    stdin: &[u8],
    data: &[u8],
) -> support::RequestSeen {
    let mut client = ClientConnection::new(Limits::default());
    let id = client
        .begin_request(Role::Filter, keep_conn, params)
        .unwrap();
    client.stdin(id, Bytes::copy_from_slice(stdin)).unwrap();
    client.stdin_end(id).unwrap();
    client.data(id, Bytes::copy_from_slice(data)).unwrap();
    client.data_end(id).unwrap();
    let wire = drain(client.outbox());
    let mut server = ServerConnection::new(ServerConfig::default());
    request_seen(&feed_server(&mut server, &wire, &Reads::whole()).unwrap())
}

/// What the web server decodes from the crate's own encoding of a response, fed in one read.
fn reference_response(stdout: &[u8], stderr: &[u8], app_status: u32) -> support::ResponseSeen {
    let mut server = ServerConnection::new(ServerConfig::default());
    let mut head = record(
        RecordType::BeginRequest,
        1,
        &begin_body(Role::Responder, 0),
        0,
    );
    head.extend(Framing::whole().stream(RecordType::Params, 1, b""));
    feed_server(&mut server, &head, &Reads::whole()).unwrap();
    server.stdout(1, Bytes::copy_from_slice(stdout)).unwrap();
    server.stderr(1, Bytes::copy_from_slice(stderr)).unwrap();
    server.end_request(1, app_status).unwrap();
    let wire = drain(server.outbox());
    response_seen(&feed_client(&mut begun_client(), &wire, &Reads::whole()).unwrap())
}

fn begun_client() -> ClientConnection {
    let mut client = ClientConnection::new(Limits::default());
    assert_eq!(
        client.begin_request(Role::Responder, false, &Params::new()),
        Ok(1)
    );
    client
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    /// PARAMS, STDIN and DATA of a FILTER request, re-framed and re-read any way.
    #[test]
    fn requests_decode_the_same_however_records_and_reads_are_split(
        pairs in nv_pairs(),
        long_forms in proptest::collection::vec(any::<(bool, bool)>(), 0..6),
        stdin in payload(),
        data in payload(),
        id in 1u16..=u16::MAX,
        keep_conn in any::<bool>(),
        begin_padding in any::<u8>(),
        params_framing in framing(),
        body_framing in framing(),
        order in proptest::collection::vec(any::<bool>(), 0..8),
        reads in reads(),
    ) {
        let params = params_of(&pairs);
        let reference = reference_request(&params, keep_conn, &stdin, &data);
        prop_assert_eq!(&reference.params, &params);
        prop_assert_eq!(&reference.stdin, &stdin);
        prop_assert_eq!(&reference.data, &data);

        let flags = if keep_conn { KEEP_CONN } else { 0 };
        let mut wire = record(
            RecordType::BeginRequest,
            id,
            &begin_body(Role::Filter, flags),
            begin_padding,
        );
        wire.extend(params_framing.stream(RecordType::Params, id, &nv_stream(&pairs, &long_forms)));
        // STDIN and DATA may interleave; each stream's order is its own.
        let mut stdin_records = body_framing.records(RecordType::Stdin, id, &stdin);
        stdin_records.push(record(RecordType::Stdin, id, b"", body_framing.pad(1)));
        let mut data_records = body_framing.records(RecordType::Data, id, &data);
        data_records.push(record(RecordType::Data, id, b"", body_framing.pad(2)));
        wire.extend(interleave(stdin_records, data_records, &order));

        let mut server = ServerConnection::new(ServerConfig::default());
        let events = feed_server(&mut server, &wire, &reads).unwrap();
        let seen = request_seen(&events);
        prop_assert_eq!(seen.id, id);
        prop_assert_eq!(
            support::RequestSeen { id: reference.id, ..seen },
            reference
        );
        prop_assert!(server.on_eof().is_ok(), "nothing left over");
    }

    /// STDOUT and STDERR of a response, interleaved, re-framed and re-read any way.
    #[test]
    fn responses_decode_the_same_however_records_and_reads_are_split(
        stdout in payload(),
        stderr in payload(),
        app_status in any::<u32>(),
        framing in framing(),
        order in proptest::collection::vec(any::<bool>(), 0..8),
        end_padding in any::<u8>(),
        reads in reads(),
    ) {
        let reference = reference_response(&stdout, &stderr, app_status);
        prop_assert_eq!(&reference.stdout, &stdout);
        prop_assert_eq!(&reference.stderr, &stderr);
        prop_assert_eq!(reference.end, Some((1, app_status, ProtocolStatus::RequestComplete)));

        let mut stdout_records = framing.records(RecordType::Stdout, 1, &stdout);
        stdout_records.push(record(RecordType::Stdout, 1, b"", framing.pad(3)));
        let mut stderr_records = framing.records(RecordType::Stderr, 1, &stderr);
        stderr_records.push(record(RecordType::Stderr, 1, b"", framing.pad(4)));
        let mut wire = interleave(stdout_records, stderr_records, &order);
        wire.extend(record(
            RecordType::EndRequest,
            1,
            &end_body(app_status, ProtocolStatus::RequestComplete),
            end_padding,
        ));

        let mut client = begun_client();
        let seen = response_seen(&feed_client(&mut client, &wire, &reads).unwrap());
        prop_assert_eq!(seen, reference);
        prop_assert_eq!(client.in_flight(), 0);
        prop_assert_eq!(client.on_eof(), Ok(()));
    }

    /// The canonical encoding decodes back to the same pairs, in order, duplicates kept.
    #[test]
    fn params_decode_what_params_encode(pairs in nv_pairs()) {
        let params = params_of(&pairs);
        let mut wire = BytesMut::new();
        params.encode(&mut wire).unwrap();
        prop_assert_eq!(&wire[..], &nv_stream(&pairs, &[])[..], "canonical lengths");
        let decoded = Params::decode(wire.freeze(), RecordType::Params, &Limits::default()).unwrap();
        prop_assert_eq!(decoded, params);
    }

    /// Any mix of 1-byte and 4-byte lengths decodes to the same pairs (§3.4 does not forbid
    /// the long form for short lengths), and re-encodes canonically.
    #[test]
    fn params_decode_non_canonical_lengths(
        pairs in nv_pairs(),
        long_forms in proptest::collection::vec(any::<(bool, bool)>(), 1..6),
    ) {
        let wire = Bytes::from(nv_stream(&pairs, &long_forms));
        let decoded = Params::decode(wire, RecordType::Params, &Limits::default()).unwrap();
        prop_assert_eq!(&decoded, &params_of(&pairs));
        let mut canonical = BytesMut::new();
        decoded.encode(&mut canonical).unwrap();
        prop_assert_eq!(&canonical[..], &nv_stream(&pairs, &[])[..]);
    }
}

/// Every cut of a stream holding all four length forms, between two PARAMS records, decodes
/// the same: the cut falls inside lengths, names and values alike.
#[test]
fn a_name_value_pair_cut_anywhere_between_two_records_decodes() {
    let long = vec![b'n'; 130];
    let pairs = vec![
        (b"SERVER_PORT".to_vec(), b"80".to_vec()),
        (b"HTTP_COOKIE".to_vec(), vec![b'c'; 200]),
        (long.clone(), b"v".to_vec()),
        (long, vec![b'w'; 128]),
    ];
    let expected = params_of(&pairs);
    for long_forms in [&[][..], &[(true, true)][..]] {
        let stream = nv_stream(&pairs, long_forms);
        for cut in 1..stream.len() {
            let mut wire = record(
                RecordType::BeginRequest,
                1,
                &begin_body(Role::Responder, 0),
                0,
            );
            wire.extend(record(RecordType::Params, 1, &stream[..cut], 7));
            wire.extend(record(RecordType::Params, 1, &stream[cut..], 0));
            wire.extend(record(RecordType::Params, 1, b"", 3));
            let mut server = ServerConnection::new(ServerConfig::default());
            let events = feed_server(&mut server, &wire, &Reads::whole()).unwrap();
            assert_eq!(request_seen(&events).params, expected, "cut at {cut}");
        }
    }
}

/// The same request fed one byte per read, with every record one byte long and padded by 255:
/// the most fragmented legal wire there is.
#[test]
fn one_byte_records_fed_one_byte_at_a_time_decode() {
    let pairs = vec![
        (b"REQUEST_METHOD".to_vec(), b"POST".to_vec()),
        (vec![b'N'; 200], vec![b'V'; 300]),
    ];
    let one_byte = Framing {
        sizes: vec![1],
        pads: vec![255],
    };
    let mut wire = record(
        RecordType::BeginRequest,
        7,
        &begin_body(Role::Responder, 1),
        255,
    );
    wire.extend(one_byte.stream(RecordType::Params, 7, &nv_stream(&pairs, &[(true, false)])));
    wire.extend(one_byte.stream(RecordType::Stdin, 7, b"quantity=100&item=3047936"));
    let mut server = ServerConnection::new(ServerConfig::default());
    let seen = request_seen(&feed_server(&mut server, &wire, &Reads::bytewise()).unwrap());
    assert_eq!(seen.params, params_of(&pairs));
    assert_eq!(seen.stdin, b"quantity=100&item=3047936");
    assert!(seen.stdin_ended && seen.keep_conn);
    assert_eq!(seen.id, 7);
}
