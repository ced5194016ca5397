//! The four exchanges of the FastCGI 1.0 specification's Appendix B, "Typical Protocol Message
//! Flow", as golden vectors: the web server's records go into a [`ServerConnection`], the
//! application's records into a [`ClientConnection`], and what each side emits is compared with
//! the records the spec lists (byte for byte for example 1).
//!
//! The spec shows long strings cut short with `" ... "`; these tests complete them with the
//! same two params (`SERVER_PORT`, `SERVER_ADDR`) and one short page, [`PAGE`]. Its padding
//! notation is ignored there; the crate's encoder pads every record to a multiple of 8 bytes as
//! §3.3 recommends, and the hand-framed input here does the same.

mod support;

use bytes::Bytes;
use plexer_fcgi::protocol::{HEADER_LEN, KEEP_CONN, MPXS_CONNS};
use plexer_fcgi::{
    ClientConnection, ClientEvent, Limits, Params, ProtocolStatus, RecordType, RequestHead, Role,
    ServerConfig, ServerConnection, ServerEvent,
};
use support::{
    Reads, begin_body, decode_all, drain, end_body, feed_client, feed_server, header_bytes,
    nv_stream, request_seen, shapes,
};

/// `"\013\002SERVER_PORT80\013\016SERVER_ADDR199.170.183.42"`: the params of every example.
const PARAMS_BODY: &[u8] = b"\x0b\x02SERVER_PORT80\x0b\x0eSERVER_ADDR199.170.183.42";
/// `"Content-type: text/html\r\n\r\n<html>\n<head> ... "`, completed.
const PAGE: &[u8] =
    b"Content-type: text/html\r\n\r\n<html>\n<head>\n<title>Appendix B</title>\n</head>\n</html>\n";
const STDIN_BODY: &[u8] = b"quantity=100&item=3047936";

/// A record with the padding the spec recommends (to a multiple of 8), padding bytes zero as
/// our encoder writes them.
fn aligned(record_type: RecordType, id: u16, content: &[u8]) -> Vec<u8> {
    let padding = content.len().wrapping_neg() & 7;
    let header = header_bytes(record_type, id, content.len() as u16, padding as u8);
    [&header[..], content, &[0; 7][..padding]].concat()
}

fn spec_params() -> Params {
    [("SERVER_PORT", "80"), ("SERVER_ADDR", "199.170.183.42")]
        .into_iter()
        .collect()
}

fn complete(app_status: u32) -> Vec<u8> {
    end_body(app_status, ProtocolStatus::RequestComplete).to_vec()
}

/// Example 1, web server to application: `{FCGI_BEGIN_REQUEST, 1, {FCGI_RESPONDER, 0}}`,
/// the params, `{FCGI_PARAMS, 1, ""}`, `{FCGI_STDIN, 1, ""}`.
#[rustfmt::skip]
fn example_1_request_bytes() -> Vec<u8> {
    [
        &[1, 1, 0, 1, 0, 8, 0, 0][..],             // BEGIN_REQUEST, id 1, 8 bytes, no padding
        &[0, 1, 0, 0, 0, 0, 0, 0],                 //   role RESPONDER, flags 0, reserved
        &[1, 4, 0, 1, 0, 42, 6, 0],                // PARAMS, id 1, 42 bytes, 6 of padding
        &[11, 2], b"SERVER_PORT", b"80",
        &[11, 14], b"SERVER_ADDR", b"199.170.183.42",
        &[0; 6],
        &[1, 4, 0, 1, 0, 0, 0, 0],                 // PARAMS, id 1, empty: end of stream
        &[1, 5, 0, 1, 0, 0, 0, 0],                 // STDIN, id 1, empty: end of stream
    ]
    .concat()
}

/// Example 1, application to web server: the page, `{FCGI_STDOUT, 1, ""}`,
/// `{FCGI_END_REQUEST, 1, {0, FCGI_REQUEST_COMPLETE}}`.
#[rustfmt::skip]
fn example_1_response_bytes() -> Vec<u8> {
    assert_eq!(PAGE.len(), 83);
    [
        &[1, 6, 0, 1, 0, 83, 5, 0][..],            // STDOUT, id 1, 83 bytes, 5 of padding
        PAGE,
        &[0; 5],
        &[1, 6, 0, 1, 0, 0, 0, 0],                 // STDOUT, id 1, empty: end of stream
        &[1, 3, 0, 1, 0, 8, 0, 0],                 // END_REQUEST, id 1, 8 bytes
        &[0, 0, 0, 0, 0, 0, 0, 0],                 //   appStatus 0, REQUEST_COMPLETE, reserved
    ]
    .concat()
}

#[test]
fn example_1_the_web_server_side_emits_the_spec_bytes() {
    let mut client = ClientConnection::new(Limits::default());
    let id = client
        .begin_request(Role::Responder, false, &spec_params())
        .unwrap();
    assert_eq!(id, 1, "the web server keeps request ids small");
    client.stdin_end(id).unwrap();
    assert_eq!(drain(client.outbox()), example_1_request_bytes());
}

#[test]
fn example_1_the_application_decodes_the_request_and_emits_the_spec_bytes() {
    let mut server = ServerConnection::new(ServerConfig::default());
    let events = feed_server(&mut server, &example_1_request_bytes(), &Reads::whole()).unwrap();
    assert_eq!(
        events,
        [
            ServerEvent::Request(RequestHead {
                id: 1,
                role: Role::Responder,
                keep_conn: false,
                params: spec_params(),
            }),
            ServerEvent::StdinEnd { id: 1 },
        ]
    );
    server.stdout(1, Bytes::from_static(PAGE)).unwrap();
    server.end_request(1, 0).unwrap();
    assert_eq!(drain(server.outbox()), example_1_response_bytes());
    assert!(
        server.is_closing(),
        "flags 0: the application closes after the request"
    );
}

#[test]
fn example_1_the_web_server_decodes_the_response() {
    let mut client = ClientConnection::new(Limits::default());
    client
        .begin_request(Role::Responder, false, &spec_params())
        .unwrap();
    let events = feed_client(&mut client, &example_1_response_bytes(), &Reads::bytewise()).unwrap();
    assert_eq!(
        events,
        [
            ClientEvent::Stdout {
                id: 1,
                data: Bytes::from_static(PAGE)
            },
            ClientEvent::End {
                id: 1,
                app_status: 0,
                protocol_status: ProtocolStatus::RequestComplete
            },
        ]
    );
    assert_eq!(client.in_flight(), 0);
    assert_eq!(client.on_eof(), Ok(()));
}

/// Example 2: data on stdin, and the params split after `"\013\002SERVER_PORT80\013\016SER"`,
/// inside a name.
fn example_2_request() -> Vec<u8> {
    let split = b"\x0b\x02SERVER_PORT80\x0b\x0eSER".len();
    assert_eq!(&PARAMS_BODY[..split], b"\x0b\x02SERVER_PORT80\x0b\x0eSER");
    [
        aligned(RecordType::BeginRequest, 1, &begin_body(Role::Responder, 0)),
        aligned(RecordType::Params, 1, &PARAMS_BODY[..split]),
        aligned(RecordType::Params, 1, &PARAMS_BODY[split..]),
        aligned(RecordType::Params, 1, b""),
        aligned(RecordType::Stdin, 1, STDIN_BODY),
        aligned(RecordType::Stdin, 1, b""),
    ]
    .concat()
}

#[test]
fn example_2_a_name_split_across_params_records_and_stdin_data_decode() {
    let mut server = ServerConnection::new(ServerConfig::default());
    let events = feed_server(&mut server, &example_2_request(), &Reads::whole()).unwrap();
    assert_eq!(
        events,
        [
            ServerEvent::Request(RequestHead {
                id: 1,
                role: Role::Responder,
                keep_conn: false,
                params: spec_params(),
            }),
            ServerEvent::Stdin {
                id: 1,
                data: Bytes::from_static(STDIN_BODY)
            },
            ServerEvent::StdinEnd { id: 1 },
        ]
    );
    server.stdout(1, Bytes::from_static(PAGE)).unwrap();
    server.end_request(1, 0).unwrap();
    assert_eq!(
        drain(server.outbox()),
        example_1_response_bytes(),
        "same response as example 1"
    );
}

#[test]
fn example_2_the_web_server_side_sends_the_same_streams() {
    let mut client = ClientConnection::new(Limits::default());
    let id = client
        .begin_request(Role::Responder, false, &spec_params())
        .unwrap();
    client.stdin(id, Bytes::from_static(STDIN_BODY)).unwrap();
    client.stdin_end(id).unwrap();
    let ours = decode_all(&drain(client.outbox()));
    // Our encoder sends the params in one record; the stream values are what must match.
    assert_eq!(
        shapes(&ours),
        [
            (
                RecordType::BeginRequest,
                1,
                begin_body(Role::Responder, 0).to_vec()
            ),
            (RecordType::Params, 1, PARAMS_BODY.to_vec()),
            (RecordType::Params, 1, vec![]),
            (RecordType::Stdin, 1, STDIN_BODY.to_vec()),
            (RecordType::Stdin, 1, vec![]),
        ]
    );
    let spec = request_seen(
        &feed_server(
            &mut ServerConnection::new(ServerConfig::default()),
            &example_2_request(),
            &Reads::whole(),
        )
        .unwrap(),
    );
    let mut server = ServerConnection::new(ServerConfig::default());
    let wire: Vec<u8> = ours
        .iter()
        .flat_map(|r| aligned(r.record_type, r.request_id, &r.body))
        .collect();
    assert_eq!(
        request_seen(&feed_server(&mut server, &wire, &Reads::whole()).unwrap()),
        spec
    );
}

/// Example 3: the application logs to stderr, sends the page in two STDOUT records around it,
/// and exits 938.
fn example_3_response() -> Vec<(RecordType, u16, Vec<u8>)> {
    let (head, rest) = PAGE.split_at(PAGE.windows(3).position(|w| w == b"<ht").unwrap() + 3);
    assert_eq!(head, b"Content-type: text/html\r\n\r\n<ht");
    vec![
        (RecordType::Stdout, 1, head.to_vec()),
        (
            RecordType::Stderr,
            1,
            b"config error: missing SI_UID\n".to_vec(),
        ),
        (RecordType::Stdout, 1, rest.to_vec()),
        (RecordType::Stdout, 1, vec![]),
        (RecordType::Stderr, 1, vec![]),
        (RecordType::EndRequest, 1, complete(938)),
    ]
}

#[test]
fn example_3_the_application_emits_stderr_between_stdout_and_closes_both_streams() {
    let mut server = ServerConnection::new(ServerConfig::default());
    feed_server(&mut server, &example_1_request_bytes(), &Reads::whole()).unwrap();
    let expected = example_3_response();
    server
        .stdout(1, Bytes::from(expected[0].2.clone()))
        .unwrap();
    server
        .stderr(1, Bytes::from(expected[1].2.clone()))
        .unwrap();
    server
        .stdout(1, Bytes::from(expected[2].2.clone()))
        .unwrap();
    server.end_request(1, 938).unwrap();
    let wire = drain(server.outbox());
    assert_eq!(shapes(&decode_all(&wire)), expected);
    let aligned_spec: Vec<u8> = expected
        .iter()
        .flat_map(|(t, id, body)| aligned(*t, *id, body))
        .collect();
    assert_eq!(wire, aligned_spec, "every record padded to a multiple of 8");
    assert_eq!(wire.len() % 8, 0);
}

#[test]
fn example_3_the_web_server_decodes_stdout_and_stderr_and_the_exit_status() {
    let wire: Vec<u8> = example_3_response()
        .iter()
        .flat_map(|(t, id, body)| aligned(*t, *id, body))
        .collect();
    let mut client = ClientConnection::new(Limits::default());
    client
        .begin_request(Role::Responder, false, &spec_params())
        .unwrap();
    let events = feed_client(&mut client, &wire, &Reads::whole()).unwrap();
    let spec = example_3_response();
    assert_eq!(
        events,
        [
            ClientEvent::Stdout {
                id: 1,
                data: Bytes::from(spec[0].2.clone())
            },
            ClientEvent::Stderr {
                id: 1,
                data: Bytes::from(spec[1].2.clone())
            },
            ClientEvent::Stdout {
                id: 1,
                data: Bytes::from(spec[2].2.clone())
            },
            ClientEvent::End {
                id: 1,
                app_status: 938,
                protocol_status: ProtocolStatus::RequestComplete
            },
        ]
    );
}

/// Example 4, web server to application, in the spec's time order, cut where the application
/// writes: two requests on one connection, request 2's PARAMS begun before request 1's STDIN.
fn example_4_request_parts() -> [Vec<u8>; 2] {
    let keep = begin_body(Role::Responder, KEEP_CONN);
    [
        [
            aligned(RecordType::BeginRequest, 1, &keep),
            aligned(RecordType::Params, 1, PARAMS_BODY),
            aligned(RecordType::Params, 1, b""),
            aligned(RecordType::BeginRequest, 2, &keep),
            aligned(RecordType::Params, 2, PARAMS_BODY),
            aligned(RecordType::Stdin, 1, b""),
        ]
        .concat(),
        [
            aligned(RecordType::Params, 2, b""),
            aligned(RecordType::Stdin, 2, b""),
        ]
        .concat(),
    ]
}

/// Example 4, application to web server: request 2 finishes first.
fn example_4_response() -> Vec<(RecordType, u16, Vec<u8>)> {
    let head_len = PAGE.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
    vec![
        (RecordType::Stdout, 1, PAGE[..head_len].to_vec()),
        (RecordType::Stdout, 2, PAGE.to_vec()),
        (RecordType::Stdout, 2, vec![]),
        (RecordType::EndRequest, 2, complete(0)),
        (RecordType::Stdout, 1, PAGE[head_len..].to_vec()),
        (RecordType::Stdout, 1, vec![]),
        (RecordType::EndRequest, 1, complete(0)),
    ]
}

fn head(id: u16) -> ServerEvent {
    ServerEvent::Request(RequestHead {
        id,
        role: Role::Responder,
        keep_conn: true,
        params: spec_params(),
    })
}

#[test]
fn example_4_a_multiplexing_application_finishes_two_requests_out_of_order() {
    let mut server = ServerConnection::new(ServerConfig {
        multiplex: true,
        max_reqs: 2,
        ..ServerConfig::default()
    });
    let [first, second] = example_4_request_parts();
    let response = example_4_response();

    let events = feed_server(&mut server, &first, &Reads::whole()).unwrap();
    assert_eq!(events, [head(1), ServerEvent::StdinEnd { id: 1 }]);
    assert_eq!(
        server.active_requests(),
        2,
        "request 2 is active, its PARAMS still open"
    );
    server
        .stdout(1, Bytes::from(response[0].2.clone()))
        .unwrap();

    let events = feed_server(&mut server, &second, &Reads::whole()).unwrap();
    assert_eq!(events, [head(2), ServerEvent::StdinEnd { id: 2 }]);
    server.stdout(2, Bytes::from_static(PAGE)).unwrap();
    server.end_request(2, 0).unwrap();
    server
        .stdout(1, Bytes::from(response[4].2.clone()))
        .unwrap();
    server.end_request(1, 0).unwrap();

    let wire = drain(server.outbox());
    assert_eq!(shapes(&decode_all(&wire)), response);
    assert_eq!(server.active_requests(), 0);
    assert!(
        !server.is_closing(),
        "FCGI_KEEP_CONN: the web server owns the connection"
    );
}

#[test]
fn example_4_the_web_server_decodes_the_out_of_order_replies_once_mpxs_conns_is_1() {
    let mut client = ClientConnection::new(Limits::default());
    let mut values = Vec::new();
    values.extend(nv_stream(
        &[(MPXS_CONNS.as_bytes().to_vec(), b"1".to_vec())],
        &[],
    ));
    let events = feed_client(
        &mut client,
        &aligned(RecordType::GetValuesResult, 0, &values),
        &Reads::whole(),
    )
    .unwrap();
    let [ClientEvent::Values(got)] = &events[..] else {
        panic!("expected the values: {events:?}");
    };
    assert_eq!(got.get(MPXS_CONNS), Some(&b"1"[..]));
    assert!(client.multiplexes());

    assert_eq!(
        client.begin_request(Role::Responder, true, &spec_params()),
        Ok(1)
    );
    assert_eq!(
        client.begin_request(Role::Responder, true, &spec_params()),
        Ok(2)
    );
    client.stdin_end(1).unwrap();
    client.stdin_end(2).unwrap();
    let keep = begin_body(Role::Responder, KEEP_CONN).to_vec();
    assert_eq!(
        shapes(&decode_all(&drain(client.outbox()))),
        [
            (RecordType::BeginRequest, 1, keep.clone()),
            (RecordType::Params, 1, PARAMS_BODY.to_vec()),
            (RecordType::Params, 1, vec![]),
            (RecordType::BeginRequest, 2, keep),
            (RecordType::Params, 2, PARAMS_BODY.to_vec()),
            (RecordType::Params, 2, vec![]),
            (RecordType::Stdin, 1, vec![]),
            (RecordType::Stdin, 2, vec![]),
        ]
    );

    let wire: Vec<u8> = example_4_response()
        .iter()
        .flat_map(|(t, id, body)| aligned(*t, *id, body))
        .collect();
    let events = feed_client(&mut client, &wire, &Reads::bytewise()).unwrap();
    let end = |id| ClientEvent::End {
        id,
        app_status: 0,
        protocol_status: ProtocolStatus::RequestComplete,
    };
    let head_len = PAGE.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
    assert_eq!(
        events,
        [
            ClientEvent::Stdout {
                id: 1,
                data: Bytes::from_static(&PAGE[..head_len])
            },
            ClientEvent::Stdout {
                id: 2,
                data: Bytes::from_static(PAGE)
            },
            end(2),
            ClientEvent::Stdout {
                id: 1,
                data: Bytes::from_static(&PAGE[head_len..])
            },
            end(1),
        ]
    );
    assert_eq!(client.in_flight(), 0);
    assert_eq!(client.on_eof(), Ok(()));
}

/// Every record of the examples is 8-aligned on the wire, as the spec recommends; the headers
/// of the golden bytes are where the test says they are.
#[test]
fn the_golden_bytes_are_whole_aligned_records() {
    for wire in [example_1_request_bytes(), example_1_response_bytes()] {
        assert_eq!(wire.len() % 8, 0);
        let records = decode_all(&wire);
        let framed: usize = records
            .iter()
            .map(|r| HEADER_LEN + r.body.len().next_multiple_of(8))
            .sum();
        assert_eq!(framed, wire.len());
    }
}
