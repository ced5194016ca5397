//! The edge cases real FastCGI implementations got wrong (peers.md §1.8), one test or more per
//! row that concerns a codec, then malformed input: each must give a typed error whose message
//! names the problem, in any read split, and never a panic.
//!
//! Rows skipped: 14 (several `Set-Cookie` headers joined with ",") is about parsing the CGI
//! header block, not records; 17 (large STDERR filling nginx's header buffer) is about a web
//! server's buffers.

mod support;

use bytes::{Bytes, BytesMut};
use plexer_fcgi::params::encode_pair;
use plexer_fcgi::protocol::{MAX_CONNS, MAX_REQS, MPXS_CONNS};
use plexer_fcgi::{
    ClientConnection, ClientEvent, Error, LimitExceeded, Limits, Params, ProtocolError,
    ProtocolStatus, RecordType, Role, ServerConfig, ServerConnection, ServerEvent, UsageError,
};
use support::{
    Framing, Reads, begin, begin_body, client_error, decode_all, drain, end_body, feed_client,
    feed_server, nv_stream, params_records, record, request_seen, response_seen, server_error,
    shapes,
};

fn server() -> ServerConnection {
    ServerConnection::new(ServerConfig::default())
}

fn server_with(limits: Limits) -> ServerConnection {
    ServerConnection::new(ServerConfig {
        limits,
        ..ServerConfig::default()
    })
}

/// A client with request 1 in flight.
fn client_in_flight() -> ClientConnection {
    let mut client = ClientConnection::new(Limits::default());
    assert_eq!(
        client.begin_request(Role::Responder, true, &Params::new()),
        Ok(1)
    );
    client
}

/// A head, its params in one record, and an empty stdin.
fn simple_request(id: u16, keep_conn: bool, pairs: &[(&str, &str)]) -> Vec<u8> {
    [
        begin(id, Role::Responder, keep_conn),
        params_records(id, pairs),
        record(RecordType::Stdin, id, b"", 0),
    ]
    .concat()
}

/// Both streams' end and END_REQUEST, as an application sends them.
fn response_tail(id: u16, app_status: u32) -> Vec<u8> {
    [
        record(RecordType::Stdout, id, b"", 0),
        record(
            RecordType::EndRequest,
            id,
            &end_body(app_status, ProtocolStatus::RequestComplete),
            0,
        ),
    ]
    .concat()
}

// Row 1: replies with request id 0, or another id than the request's, are refused (urweb#57).

#[test]
fn row_1_the_web_server_side_refuses_stdout_with_request_id_0() {
    let err = client_error(
        &mut client_in_flight(),
        &record(RecordType::Stdout, 0, b"Status: 200\r\n\r\n", 0),
    );
    assert!(
        err.to_string()
            .contains("STDOUT record for request 0 uses the management id 0"),
        "{err}"
    );
    assert!(err.is_peer_fault());
}

#[test]
fn row_1_the_web_server_side_refuses_end_request_with_request_id_0() {
    let wire = record(
        RecordType::EndRequest,
        0,
        &end_body(0, ProtocolStatus::RequestComplete),
        0,
    );
    let err = client_error(&mut client_in_flight(), &wire);
    assert!(
        err.to_string()
            .contains("END_REQUEST record for request 0 uses the management id 0"),
        "{err}"
    );
}

#[test]
fn row_1_the_web_server_side_refuses_replies_for_another_request_id() {
    for (record_type, body) in [
        (RecordType::Stdout, &b"x"[..]),
        (RecordType::Stderr, &b"x"[..]),
        (
            RecordType::EndRequest,
            &end_body(0, ProtocolStatus::RequestComplete)[..],
        ),
    ] {
        let mut client = client_in_flight();
        let err = client_error(&mut client, &record(record_type, 257, body, 0));
        assert_eq!(
            err.to_string(),
            format!(
                "FastCGI protocol violation by the peer: {record_type} record for request 257, \
                 which is not active"
            )
        );
        assert_eq!(client.in_flight(), 1, "request 1 is still waited for");
    }
}

#[test]
fn row_1_replies_after_end_request_are_refused_too() {
    let mut client = client_in_flight();
    let mut wire = response_tail(1, 0);
    wire.extend(record(RecordType::Stdout, 1, b"late", 0));
    let err = client_error(&mut client, &wire);
    assert!(
        err.to_string().contains("request 1, which is not active"),
        "{err}"
    );
}

// Row 2: a name-value pair split across PARAMS records is reassembled (opentelemetry-ebpf#3534).

#[test]
fn row_2_a_pair_split_inside_its_four_byte_lengths_is_reassembled() {
    let name = vec![b'N'; 200];
    let value = vec![b'V'; 70_000];
    let mut stream = Vec::new();
    encode_pair_vec(&mut stream, &name, &value);
    // Cut inside the name's length, inside the value's length, inside the name, then wherever.
    let cuts = [1, 2, 5, 7, 100, 65_000];
    let mut wire = begin(1, Role::Responder, false);
    let mut at = 0;
    for cut in cuts.into_iter().chain([stream.len()]) {
        wire.extend(record(RecordType::Params, 1, &stream[at..cut], 3));
        at = cut;
    }
    wire.extend(record(RecordType::Params, 1, b"", 0));
    let events = feed_server(&mut server(), &wire, &Reads::whole()).unwrap();
    let params = request_seen(&events).params;
    assert_eq!(params.len(), 1);
    assert_eq!(params.iter().next(), Some((&name[..], &value[..])));
}

fn encode_pair_vec(dst: &mut Vec<u8>, name: &[u8], value: &[u8]) {
    let mut buf = BytesMut::new();
    encode_pair(&mut buf, name, value).unwrap();
    dst.extend_from_slice(&buf);
}

// Row 3: CGI headers split across STDOUT records decode as one stream (h2o#958: PHP headers over
// 8 KB in several records).

#[test]
fn row_3_a_header_block_over_8_kib_split_across_stdout_records_is_one_stream() {
    let mut head = b"Status: 200 OK\r\nContent-Type: text/html\r\n".to_vec();
    for i in 0..200 {
        head.extend(format!("X-Header-{i}: {}\r\n", "v".repeat(40)).bytes());
    }
    head.extend_from_slice(b"\r\n<html>body</html>");
    assert!(head.len() > 8192);
    // Cut between "\r" and "\n", inside a name, and right after the blank line's first byte.
    let blank = head.windows(4).position(|w| w == b"\r\n\r\n").unwrap();
    let cuts = [15, 20, 4096, 8191, blank + 1, blank + 3, head.len()];
    let mut wire = Vec::new();
    let mut at = 0;
    for (i, cut) in cuts.into_iter().enumerate() {
        wire.extend(record(RecordType::Stdout, 1, &head[at..cut], i as u8));
        at = cut;
    }
    wire.extend(response_tail(1, 0));
    let seen =
        response_seen(&feed_client(&mut client_in_flight(), &wire, &Reads::whole()).unwrap());
    assert_eq!(seen.stdout, head);
    assert_eq!(seen.end, Some((1, 0, ProtocolStatus::RequestComplete)));
}

// Row 4: stdin split into many records is delivered whole (hhvm#2933).

#[test]
fn row_4_stdin_in_a_thousand_tiny_records_is_delivered_whole() {
    let body = support::pseudo_bytes(4, 3000);
    let framing = Framing {
        sizes: vec![1, 2, 3, 5, 7],
        pads: vec![0, 1, 255, 6],
    };
    let mut wire = begin(1, Role::Responder, false);
    wire.extend(params_records(1, &[("CONTENT_LENGTH", "3000")]));
    wire.extend(framing.stream(RecordType::Stdin, 1, &body));
    let seen = request_seen(&feed_server(&mut server(), &wire, &Reads::whole()).unwrap());
    assert_eq!(seen.stdin, body);
    assert!(seen.stdin_ended);
}

#[test]
fn row_4_a_large_body_sent_in_uneven_pieces_arrives_whole_and_empty_pieces_do_not_end_it() {
    let body = support::pseudo_bytes(5, 300_000);
    let mut client = ClientConnection::new(Limits::default());
    let id = client
        .begin_request(Role::Responder, false, &Params::new())
        .unwrap();
    for piece in body.chunks(70_001) {
        client.stdin(id, Bytes::copy_from_slice(piece)).unwrap();
        client.stdin(id, Bytes::new()).unwrap(); // must not send the stream's end record
    }
    client.stdin_end(id).unwrap();
    let wire = drain(client.outbox());
    let empty_stdin = decode_all(&wire)
        .iter()
        .filter(|r| r.record_type == RecordType::Stdin && r.body.is_empty())
        .count();
    assert_eq!(empty_stdin, 1, "one end record, at the end");
    let seen = request_seen(&feed_server(&mut server(), &wire, &Reads::whole()).unwrap());
    assert_eq!(seen.stdin, body);
    assert!(seen.stdin_ended);
}

// Row 5: no fixed 8 KB params buffer (fcgi2#13).

#[test]
fn row_5_sixty_kib_of_params_decode() {
    let pairs: Vec<(String, String)> = (0..600)
        .map(|i| (format!("HTTP_X_PARAM_{i}"), "p".repeat(80 + i % 50)))
        .collect();
    let params: Params = pairs.iter().map(|(n, v)| (n.clone(), v.clone())).collect();
    let mut encoded = BytesMut::new();
    params.encode(&mut encoded).unwrap();
    assert!(encoded.len() > 60_000);
    let mut client = ClientConnection::new(Limits::default());
    client
        .begin_request(Role::Responder, false, &params)
        .unwrap();
    client.stdin_end(1).unwrap();
    let seen = request_seen(
        &feed_server(&mut server(), &drain(client.outbox()), &Reads::whole()).unwrap(),
    );
    assert_eq!(seen.params, params);
}

#[test]
fn row_5_a_200_kib_cookie_decodes_with_the_default_limits() {
    let cookie = "k=v; ".repeat(40 * 1024);
    assert_eq!(cookie.len(), 200 * 1024);
    assert!(cookie.len() <= Limits::DEFAULT_MAX_NAME_VALUE_LEN);
    let params: Params = [
        ("REQUEST_METHOD".to_string(), "GET".to_string()),
        ("HTTP_COOKIE".to_string(), cookie.clone()),
    ]
    .into_iter()
    .collect();
    let mut client = ClientConnection::new(Limits::default());
    client
        .begin_request(Role::Responder, false, &params)
        .unwrap();
    client.stdin_end(1).unwrap();
    let wire = drain(client.outbox());
    let params_records = decode_all(&wire)
        .iter()
        .filter(|r| r.record_type == RecordType::Params && !r.body.is_empty())
        .count();
    assert_eq!(
        params_records, 4,
        "200 KiB take four records: the value straddles them"
    );
    let seen = request_seen(&feed_server(&mut server(), &wire, &Reads::whole()).unwrap());
    assert_eq!(seen.params.get_str("HTTP_COOKIE"), Some(cookie.as_str()));
    assert_eq!(seen.params.get_str("REQUEST_METHOD"), Some("GET"));
}

// Row 6: names of 128 bytes and more use the 4-byte length on output (nginx/nginx#1648).

#[test]
fn row_6_lengths_from_128_use_the_four_byte_form_on_the_wire() {
    let n127 = "a".repeat(127);
    let n128 = "b".repeat(128);
    let v300 = "c".repeat(300);
    let params: Params = [
        (n127, "x".to_string()),
        (n128, "y".to_string()),
        ("Z".to_string(), v300),
    ]
    .into_iter()
    .collect();
    let mut client = ClientConnection::new(Limits::default());
    client
        .begin_request(Role::Responder, false, &params)
        .unwrap();
    let records = decode_all(&drain(client.outbox()));
    let body = &records[1].body;
    assert_eq!(records[1].record_type, RecordType::Params);
    assert_eq!(&body[..2], &[127, 1], "127 still fits one byte");
    let second = 2 + 127 + 1;
    assert_eq!(&body[second..second + 5], &[0x80, 0, 0, 128, 1]);
    let third = second + 5 + 128 + 1;
    assert_eq!(&body[third..third + 5], &[1, 0x80, 0, 0x01, 0x2c]);
    assert_eq!(body.len(), third + 5 + 1 + 300);
}

// Row 7: GET_VALUES mid-connection is answered and does not kill the connection (PHP #76922).

fn get_values_record(names: &[&str]) -> Vec<u8> {
    let pairs: Vec<_> = names
        .iter()
        .map(|n| (n.as_bytes().to_vec(), Vec::new()))
        .collect();
    record(RecordType::GetValues, 0, &nv_stream(&pairs, &[]), 5)
}

fn answered_values(conn: &mut ServerConnection) -> Params {
    let records = decode_all(&drain(conn.outbox()));
    let [answer] = &records[..] else {
        panic!("expected one GET_VALUES_RESULT: {records:?}");
    };
    assert_eq!(
        (answer.record_type, answer.request_id),
        (RecordType::GetValuesResult, 0)
    );
    Params::decode(
        answer.body.clone(),
        RecordType::GetValuesResult,
        &Limits::default(),
    )
    .expect("the answer is well-formed name-value pairs")
}

#[test]
fn row_7_get_values_between_params_records_is_answered_and_the_request_goes_on() {
    let mut conn = server();
    let mut wire = begin(1, Role::Responder, true);
    let stream = nv_stream(&[(b"SCRIPT_NAME".to_vec(), b"/index.php".to_vec())], &[]);
    wire.extend(record(RecordType::Params, 1, &stream[..4], 0));
    wire.extend(get_values_record(&[
        MPXS_CONNS,
        MAX_REQS,
        MAX_CONNS,
        "FCGI_UNKNOWN",
    ]));
    wire.extend(record(RecordType::Params, 1, &stream[4..], 0));
    wire.extend(record(RecordType::Params, 1, b"", 0));
    wire.extend(record(RecordType::Stdin, 1, b"", 0));
    let seen = request_seen(&feed_server(&mut conn, &wire, &Reads::bytewise()).unwrap());
    assert_eq!(seen.params.get_str("SCRIPT_NAME"), Some("/index.php"));
    assert!(seen.stdin_ended);
    let values = answered_values(&mut conn);
    assert_eq!(values.get_str(MPXS_CONNS), Some("0"));
    assert_eq!(values.get_str(MAX_REQS), Some("1"));
    assert_eq!(values.get_str(MAX_CONNS), Some("1"));
    assert_eq!(values.len(), 3, "unknown names are left out (§4.1)");
    conn.end_request(1, 0).unwrap();
    assert!(!conn.is_closing());
}

#[test]
fn row_7_a_connection_that_answered_get_values_serves_the_next_request() {
    let mut client = ClientConnection::new(Limits::default());
    let mut conn = server();
    client.get_values(&[MPXS_CONNS]).unwrap();
    let asked = drain(client.outbox());
    assert!(
        feed_server(&mut conn, &asked, &Reads::whole())
            .unwrap()
            .is_empty()
    );
    let answer = drain(conn.outbox());
    let events = feed_client(&mut client, &answer, &Reads::whole()).unwrap();
    assert!(matches!(&events[..], [ClientEvent::Values(v)] if v.get_str(MPXS_CONNS) == Some("0")));
    assert!(!client.multiplexes());

    let id = client
        .begin_request(Role::Responder, true, &Params::new())
        .unwrap();
    client.stdin_end(id).unwrap();
    let events = feed_server(&mut conn, &drain(client.outbox()), &Reads::whole()).unwrap();
    assert_eq!(request_seen(&events).id, id);
}

/// §4.1's three names answered once each, whatever the asking: the answer is one record of
/// well-formed pairs. Asking for one name 3800 times fits one GET_VALUES record (64 600 bytes),
/// but answering every copy would take 68 400.
#[test]
fn row_7_get_values_asking_one_name_thousands_of_times_gets_a_well_formed_answer() {
    let names = vec![MPXS_CONNS; 3800];
    let mut conn = server();
    assert!(
        feed_server(&mut conn, &get_values_record(&names), &Reads::whole())
            .unwrap()
            .is_empty()
    );
    let values = answered_values(&mut conn);
    assert_eq!(values.get_str(MPXS_CONNS), Some("0"));
}

// Row 8: keep-alive works past the first request; state and padding reset (hhvm#2522,
// reyk/httpd#49, HyperFastCgi#55).

#[test]
fn row_8_three_requests_in_a_row_with_odd_padding_all_decode_with_fresh_state() {
    let mut conn = server();
    let odd = Framing {
        sizes: vec![3, 1, 250],
        pads: vec![1, 255, 7, 0, 13],
    };
    for (round, pairs) in [
        vec![
            (b"A".to_vec(), b"1".to_vec()),
            (b"DUP".to_vec(), b"x".to_vec()),
        ],
        vec![(b"B".to_vec(), vec![b'2'; 200])],
        vec![],
    ]
    .into_iter()
    .enumerate()
    {
        let keep_conn = round < 2;
        let stdin = vec![b'0' + round as u8; 10 + round * 100];
        let mut wire = record(
            RecordType::BeginRequest,
            1,
            &begin_body(Role::Responder, u8::from(keep_conn)),
            odd.pad(round),
        );
        wire.extend(odd.stream(
            RecordType::Params,
            1,
            &nv_stream(&pairs, &[(round == 1, false)]),
        ));
        wire.extend(odd.stream(RecordType::Stdin, 1, &stdin));
        let seen =
            request_seen(&feed_server(&mut conn, &wire, &Reads { sizes: vec![5, 9] }).unwrap());
        assert_eq!(seen.params, support::params_of(&pairs), "round {round}");
        assert_eq!(seen.stdin, stdin, "round {round}");
        assert_eq!(seen.keep_conn, keep_conn);
        conn.stdout(1, Bytes::from_static(b"Status: 204\r\n\r\n"))
            .unwrap();
        conn.end_request(1, 0).unwrap();
        assert_eq!(conn.active_requests(), 0);
        assert_eq!(conn.is_closing(), !keep_conn, "round {round}");
        assert_eq!(conn.on_eof(), Ok(()), "nothing buffered between requests");
    }
    let ends = decode_all(&drain(conn.outbox()))
        .iter()
        .filter(|r| r.record_type == RecordType::EndRequest)
        .count();
    assert_eq!(ends, 3);
}

#[test]
fn row_8_the_web_server_side_reuses_its_connection_and_request_id() {
    let mut client = ClientConnection::new(Limits::default());
    for round in 0..3u8 {
        let id = client
            .begin_request(Role::Responder, true, &Params::new())
            .unwrap();
        assert_eq!(id, 1, "the smallest free id again");
        client.stdin_end(id).unwrap();
        drain(client.outbox());
        let mut wire = record(RecordType::Stdout, 1, &[b'a' + round; 9], 255 - round);
        wire.extend(record(RecordType::Stdout, 1, b"", round));
        wire.extend(record(
            RecordType::EndRequest,
            1,
            &end_body(u32::from(round), ProtocolStatus::RequestComplete),
            round * 3,
        ));
        let seen =
            response_seen(&feed_client(&mut client, &wire, &Reads { sizes: vec![7] }).unwrap());
        assert_eq!(seen.stdout, [b'a' + round; 9]);
        assert_eq!(
            seen.end,
            Some((1, u32::from(round), ProtocolStatus::RequestComplete))
        );
        assert_eq!(client.in_flight(), 0);
        assert_eq!(client.on_eof(), Ok(()));
    }
}

// Row 9: an application that says FCGI_MPXS_CONNS=0 refuses a second request with
// CANT_MPX_CONN and keeps serving the first; the web-server side never sends one.

#[test]
fn row_9_a_second_concurrent_request_gets_cant_mpx_conn_and_the_first_goes_on() {
    let mut conn = server();
    let mut wire = begin(1, Role::Responder, true);
    wire.extend(begin(2, Role::Responder, true));
    wire.extend(params_records(2, &[("IGNORED", "yes")])); // for an inactive id: ignored
    wire.extend(params_records(1, &[("SCRIPT_NAME", "/one")]));
    wire.extend(record(RecordType::Stdin, 1, b"", 0));
    let seen = request_seen(&feed_server(&mut conn, &wire, &Reads::whole()).unwrap());
    assert_eq!(seen.id, 1);
    assert_eq!(seen.params.get_str("SCRIPT_NAME"), Some("/one"));
    assert_eq!(
        drain(conn.outbox()),
        [1, 3, 0, 2, 0, 8, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0],
        "END_REQUEST for id 2: appStatus 0, FCGI_CANT_MPX_CONN"
    );
    assert_eq!(conn.active_requests(), 1);
    assert!(!conn.is_closing());
}

#[test]
fn row_9_the_web_server_side_will_not_multiplex_unless_told_mpxs_conns_is_1() {
    let mut client = client_in_flight();
    assert_eq!(
        client.begin_request(Role::Responder, true, &Params::new()),
        Err(UsageError::WouldMultiplex)
    );
    let said_no = record(
        RecordType::GetValuesResult,
        0,
        &nv_stream(&[(MPXS_CONNS.as_bytes().to_vec(), b"0".to_vec())], &[]),
        0,
    );
    feed_client(&mut client, &said_no, &Reads::whole()).unwrap();
    assert_eq!(
        client.begin_request(Role::Responder, true, &Params::new()),
        Err(UsageError::WouldMultiplex)
    );
    assert_eq!(client.in_flight(), 1);
}

// Row 10: in-flight request ids are bounded (golang/go#81548).

#[test]
fn row_10_in_flight_requests_past_the_limit_are_refused_without_growing() {
    let limit = 4;
    let mut conn = ServerConnection::new(ServerConfig {
        multiplex: true,
        limits: Limits {
            max_requests_per_connection: limit,
            ..Limits::default()
        },
        ..ServerConfig::default()
    });
    let mut wire = Vec::new();
    for id in 1..=limit as u16 {
        wire.extend(begin(id, Role::Responder, true));
    }
    assert!(
        feed_server(&mut conn, &wire, &Reads::whole())
            .unwrap()
            .is_empty()
    );
    assert_eq!(conn.active_requests(), limit);
    let err = server_error(&mut conn, &begin(1000, Role::Responder, true));
    assert!(matches!(
        err,
        Error::Limit(LimitExceeded::RequestsInFlight { limit: 4 })
    ));
    assert_eq!(
        err.to_string(),
        "FastCGI peer exceeded a limit: more than 4 requests in flight on one connection \
         (max_requests_per_connection)"
    );
    assert_eq!(
        conn.active_requests(),
        limit,
        "the refused request took no slot"
    );
}

#[test]
fn row_10_an_ended_request_frees_its_slot() {
    let mut conn = ServerConnection::new(ServerConfig {
        multiplex: true,
        limits: Limits {
            max_requests_per_connection: 2,
            ..Limits::default()
        },
        ..ServerConfig::default()
    });
    let wire = [simple_request(1, true, &[]), simple_request(2, true, &[])].concat();
    assert_eq!(
        feed_server(&mut conn, &wire, &Reads::whole())
            .unwrap()
            .len(),
        4
    );
    conn.end_request(1, 0).unwrap();
    // An abort frees nothing by itself: the application's END_REQUEST does (§5.4).
    let wire = [
        record(RecordType::AbortRequest, 2, b"", 0),
        simple_request(3, true, &[]),
    ]
    .concat();
    let events = feed_server(&mut conn, &wire, &Reads::whole()).unwrap();
    assert_eq!(events[0], ServerEvent::Abort { id: 2 });
    assert_eq!(request_seen(&events[1..]).id, 3);
    assert_eq!(conn.active_requests(), 2);
    let err = server_error(&mut conn, &begin(4, Role::Responder, true));
    assert!(matches!(
        err,
        Error::Limit(LimitExceeded::RequestsInFlight { limit: 2 })
    ));
}

// Row 11: records for a request after its END_REQUEST are ignored, not an error (golang/go
// PR #42840: the id freed before the empty STDIN arrived).

#[test]
fn row_11_stdin_and_abort_after_end_request_are_ignored_without_error() {
    let mut conn = server();
    let mut wire = begin(1, Role::Responder, true);
    wire.extend(params_records(1, &[("CONTENT_LENGTH", "10")]));
    wire.extend(record(RecordType::Stdin, 1, b"01234", 0));
    let events = feed_server(&mut conn, &wire, &Reads::whole()).unwrap();
    assert_eq!(events.len(), 2);
    // A responder need not read all of stdin before it answers (§6.2).
    conn.stdout(1, Bytes::from_static(b"Status: 413\r\n\r\n"))
        .unwrap();
    conn.end_request(1, 0).unwrap();
    let answered = drain(conn.outbox());

    let late = [
        record(RecordType::Stdin, 1, b"56789", 0),
        record(RecordType::Stdin, 1, b"", 0),
        record(RecordType::Data, 1, b"d", 0),
        record(RecordType::AbortRequest, 1, b"", 0),
        record(RecordType::Params, 1, b"", 0),
    ]
    .concat();
    assert!(
        feed_server(&mut conn, &late, &Reads::whole())
            .unwrap()
            .is_empty()
    );
    assert!(
        conn.outbox().is_empty(),
        "nothing answered to ignored records"
    );
    assert_eq!(
        shapes(&decode_all(&answered)).last().unwrap().0,
        RecordType::EndRequest
    );

    // And the id can begin again.
    let events = feed_server(&mut conn, &simple_request(1, true, &[]), &Reads::whole()).unwrap();
    assert_eq!(request_seen(&events).id, 1);
}

// Row 12: ABORT_REQUEST reaches the application, which ends the request (cherokee#84).

#[test]
fn row_12_abort_request_yields_abort_and_the_application_ends_the_request() {
    let mut client = ClientConnection::new(Limits::default());
    let mut conn = server();
    let id = client
        .begin_request(Role::Responder, true, &Params::new())
        .unwrap();
    client.stdin(id, Bytes::from_static(b"partial")).unwrap();
    client.abort(id).unwrap();
    let events = feed_server(&mut conn, &drain(client.outbox()), &Reads::whole()).unwrap();
    let seen = request_seen(&events);
    assert!(seen.aborted);
    assert!(!seen.stdin_ended, "an abort is not the end of stdin");
    assert_eq!(events.last(), Some(&ServerEvent::Abort { id }));

    assert_eq!(
        client.in_flight(),
        1,
        "in flight until the application's END_REQUEST"
    );
    conn.end_request(id, 130).unwrap();
    let events = feed_client(&mut client, &drain(conn.outbox()), &Reads::whole()).unwrap();
    assert_eq!(
        events,
        [ClientEvent::End {
            id,
            app_status: 130,
            protocol_status: ProtocolStatus::RequestComplete
        }]
    );
    assert_eq!(client.in_flight(), 0);
}

#[test]
fn row_12_abort_before_the_params_end_still_reaches_the_application() {
    let mut conn = server();
    let mut wire = begin(9, Role::Responder, true);
    wire.extend(record(RecordType::Params, 9, b"\x01", 0));
    wire.extend(record(RecordType::AbortRequest, 9, b"", 0));
    let events = feed_server(&mut conn, &wire, &Reads::whole()).unwrap();
    assert_eq!(events, [ServerEvent::Abort { id: 9 }]);
    conn.end_request(9, 0).unwrap();
    assert_eq!(conn.active_requests(), 0);
}

// Row 13: duplicate params: the last wins for get(), and a router can drop every copy
// (hhvm#1938 first-wins vs php-fpm last-wins).

#[test]
fn row_13_duplicate_params_keep_their_order_get_returns_the_last_and_remove_all_drops_all() {
    let wire = simple_request(
        1,
        false,
        &[
            ("SCRIPT_FILENAME", "/srv/a.php"),
            ("HTTP_HOST", "example.org"),
            ("SCRIPT_FILENAME", "/srv/b.php"),
        ],
    );
    let mut params =
        request_seen(&feed_server(&mut server(), &wire, &Reads::whole()).unwrap()).params;
    let names: Vec<_> = params.iter().map(|(n, _)| n.to_vec()).collect();
    assert_eq!(
        names,
        [&b"SCRIPT_FILENAME"[..], b"HTTP_HOST", b"SCRIPT_FILENAME"]
    );
    assert_eq!(params.get_str("SCRIPT_FILENAME"), Some("/srv/b.php"));
    params.remove_all("SCRIPT_FILENAME");
    assert_eq!(params.get("SCRIPT_FILENAME"), None);
    assert_eq!(params.len(), 1);
    assert_eq!(params.get_str("HTTP_HOST"), Some("example.org"));
}

// Row 15: every response ends with the empty STDOUT record, then END_REQUEST (nginx only reuses
// a keepalive connection after both).

#[test]
fn row_15_every_way_of_ending_a_request_closes_stdout_before_end_request() {
    type Answer = fn(&mut ServerConnection, u16);
    let answers: [(&str, Answer); 4] = [
        ("stdout only", |c, id| {
            c.stdout(id, Bytes::from_static(b"Status: 200\r\n\r\nok"))
                .unwrap();
            c.end_request(id, 0).unwrap();
        }),
        ("stdout and stderr", |c, id| {
            c.stderr(id, Bytes::from_static(b"warning")).unwrap();
            c.stdout(id, Bytes::from(vec![b'x'; 70_000])).unwrap();
            c.end_request(id, 1).unwrap();
        }),
        ("overloaded", |c, id| {
            c.end_request_with(id, 0, ProtocolStatus::Overloaded)
                .unwrap();
        }),
        ("after an abort", |c, id| {
            c.stdout(id, Bytes::from_static(b"Status: 499\r\n\r\n"))
                .unwrap();
            c.end_request(id, 0).unwrap();
        }),
    ];
    for (what, answer) in answers {
        let mut conn = server();
        let mut wire = simple_request(1, true, &[]);
        if what == "after an abort" {
            wire.extend(record(RecordType::AbortRequest, 1, b"", 0));
        }
        let events = feed_server(&mut conn, &wire, &Reads::whole()).unwrap();
        assert_eq!(request_seen(&events).aborted, what == "after an abort");
        answer(&mut conn, 1);
        let records = decode_all(&drain(conn.outbox()));
        let last = records.last().unwrap();
        assert_eq!(last.record_type, RecordType::EndRequest, "{what}");
        let stdout: Vec<_> = records
            .iter()
            .filter(|r| r.record_type == RecordType::Stdout)
            .collect();
        assert!(
            stdout.last().unwrap().body.is_empty(),
            "{what}: STDOUT ends empty"
        );
        assert_eq!(
            stdout.iter().filter(|r| r.body.is_empty()).count(),
            1,
            "{what}: one end record"
        );
        let stderr: Vec<_> = records
            .iter()
            .filter(|r| r.record_type == RecordType::Stderr)
            .collect();
        if let Some(end) = stderr.last() {
            assert!(end.body.is_empty(), "{what}: a used STDERR is closed too");
        }
        assert!(records.iter().all(|r| r.request_id == 1));
    }
}

// Row 16: an empty response still sends the empty STDOUT record (nginx: "upstream prematurely
// closed FastCGI stdout").

#[test]
fn row_16_an_empty_response_still_sends_the_empty_stdout_record() {
    let mut conn = server();
    feed_server(&mut conn, &simple_request(3, false, &[]), &Reads::whole()).unwrap();
    conn.stdout(3, Bytes::new()).unwrap(); // queues nothing: it would end the stream early
    conn.end_request(3, 0).unwrap();
    assert_eq!(
        drain(conn.outbox()),
        [
            [1, 6, 0, 3, 0, 0, 0, 0].as_slice(),
            &[1, 3, 0, 3, 0, 8, 0, 0],
            &[0, 0, 0, 0, 0, 0, 0, 0],
        ]
        .concat()
    );
}

// Malformed input: a typed error whose message names the problem, in any read split.

/// Feeds `wire` whole and one byte at a time; both must fail with the same message.
fn server_fails_with(make: impl Fn() -> ServerConnection, wire: &[u8], message: &str) -> Error {
    let whole = server_error(&mut make(), wire);
    let bytewise = feed_server(&mut make(), wire, &Reads::bytewise()).unwrap_err();
    assert_eq!(whole.to_string(), bytewise.to_string());
    assert!(whole.to_string().contains(message), "{whole} !~ {message}");
    assert!(whole.is_peer_fault(), "{whole}");
    whole
}

fn client_fails_with(wire: &[u8], message: &str) -> Error {
    let whole = client_error(&mut client_in_flight(), wire);
    let bytewise = feed_client(&mut client_in_flight(), wire, &Reads::bytewise()).unwrap_err();
    assert_eq!(whole.to_string(), bytewise.to_string());
    assert!(whole.to_string().contains(message), "{whole} !~ {message}");
    assert!(whole.is_peer_fault(), "{whole}");
    whole
}

#[test]
fn a_bad_version_is_refused_on_both_sides() {
    // Version 0 is what a desynchronised peer sends (HyperFastCgi#55).
    let mut wire = begin(1, Role::Responder, false);
    wire[0] = 0;
    let err = server_fails_with(
        server,
        &wire,
        "bad FastCGI version 0: only version 1 exists",
    );
    assert!(matches!(err, Error::Protocol(ProtocolError::BadVersion(0))));
    let mut wire = record(RecordType::Stdout, 1, b"x", 0);
    wire[0] = 2;
    client_fails_with(&wire, "bad FastCGI version 2: only version 1 exists");
}

#[test]
fn a_begin_request_body_of_5_bytes_is_refused() {
    let wire = record(RecordType::BeginRequest, 1, &[0, 1, 0, 0, 0], 3);
    let err = server_fails_with(
        server,
        &wire,
        "BEGIN_REQUEST body of 5 bytes, the spec fixes it at 8",
    );
    assert!(matches!(
        err,
        Error::Protocol(ProtocolError::BadBodyLength {
            len: 5,
            expected: 8,
            ..
        })
    ));
}

#[test]
fn an_end_request_body_of_5_bytes_is_refused() {
    let wire = record(RecordType::EndRequest, 1, &[0, 0, 0, 0, 0], 3);
    client_fails_with(&wire, "END_REQUEST body of 5 bytes, the spec fixes it at 8");
}

#[test]
fn an_unknown_type_body_of_the_wrong_size_is_refused() {
    let wire = record(RecordType::UnknownType, 0, &[42], 0);
    client_fails_with(
        &wire,
        "UNKNOWN_TYPE body of 1 bytes, the spec fixes it at 8",
    );
}

#[test]
fn params_over_the_limit_are_refused_and_the_limit_itself_is_allowed() {
    let limits = Limits {
        max_params_bytes: 1000,
        ..Limits::default()
    };
    // One byte of name length, four of value length (the value is over 127), one of name.
    let value = "v".repeat(1000 - 1 - 4 - 1);
    let at_limit = simple_request(1, false, &[("N", value.as_str())]);
    let seen = request_seen(
        &feed_server(&mut server_with(limits.clone()), &at_limit, &Reads::whole()).unwrap(),
    );
    assert_eq!(seen.params.get_str("N"), Some(value.as_str()));

    // One byte more, spread over many records so that no single record is over.
    let pairs = [(b"N".to_vec(), vec![b'v'; 1000 - 1 - 4 - 1 + 1])];
    let mut wire = begin(1, Role::Responder, false);
    wire.extend(
        Framing {
            sizes: vec![100],
            pads: vec![1],
        }
        .stream(RecordType::Params, 1, &nv_stream(&pairs, &[])),
    );
    let err = server_fails_with(
        || server_with(limits.clone()),
        &wire,
        "params over the 1000-byte limit (max_params_bytes)",
    );
    assert!(matches!(
        err,
        Error::Limit(LimitExceeded::ParamsBytes { limit: 1000 })
    ));
}

#[test]
fn one_name_or_value_over_its_length_limit_is_refused() {
    let limits = Limits {
        max_name_value_len: 100,
        ..Limits::default()
    };
    let ok = simple_request(1, false, &[("N", "v".repeat(100).as_str())]);
    feed_server(&mut server_with(limits.clone()), &ok, &Reads::whole())
        .expect("100 bytes is within the limit");
    for (name, value) in [
        ("N".to_string(), "v".repeat(101)),
        ("n".repeat(101), "v".to_string()),
    ] {
        let wire = simple_request(1, false, &[(name.as_str(), value.as_str())]);
        let err = server_fails_with(
            || server_with(limits.clone()),
            &wire,
            "a name or value of 101 bytes, over the 100-byte limit (max_name_value_len)",
        );
        assert!(matches!(
            err,
            Error::Limit(LimitExceeded::NameValueLength {
                len: 101,
                limit: 100
            })
        ));
    }
}

#[test]
fn a_31_bit_length_in_a_tiny_stream_is_refused_without_allocating_it() {
    let tiny = [0xff, 0xff, 0xff, 0xff, 1, b'N', b'v'];
    let mut wire = begin(1, Role::Responder, false);
    wire.extend(record(RecordType::Params, 1, &tiny, 0));
    wire.extend(record(RecordType::Params, 1, b"", 0));
    server_fails_with(
        server,
        &wire,
        "a name or value of 2147483647 bytes, over the 262144-byte limit (max_name_value_len)",
    );
    // With the length limit lifted, the stream's own end is the bound.
    let unbounded = || {
        server_with(Limits {
            max_name_value_len: usize::MAX,
            ..Limits::default()
        })
    };
    let err = server_fails_with(
        unbounded,
        &wire,
        "PARAMS stream ends inside a name-value pair: 2147483646 more bytes were announced",
    );
    assert!(matches!(
        err,
        Error::Protocol(ProtocolError::TruncatedNameValue {
            stream: RecordType::Params,
            ..
        })
    ));
}

#[test]
fn a_params_stream_ending_inside_a_length_is_refused() {
    let mut wire = begin(1, Role::Responder, false);
    wire.extend(record(RecordType::Params, 1, &[1, 0x80, 0], 0));
    wire.extend(record(RecordType::Params, 1, b"", 0));
    server_fails_with(
        server,
        &wire,
        "PARAMS stream ends inside a name-value pair: 2 more bytes",
    );
}

#[test]
fn records_a_web_server_never_sends_are_refused_by_name() {
    let mut wire = simple_request(1, true, &[]);
    wire.extend(record(RecordType::Stdout, 1, b"x", 0));
    server_fails_with(
        server,
        &wire,
        "STDOUT record for request 1 is never sent by a web server",
    );
    let mut wire = begin(1, Role::Responder, true);
    wire.extend(record(RecordType::Stdin, 1, b"x", 0));
    server_fails_with(
        server,
        &wire,
        "STDIN record for request 1 arrived before its PARAMS stream ended",
    );
    let mut wire = simple_request(1, true, &[]);
    wire.extend(record(RecordType::Stdin, 1, b"x", 0));
    server_fails_with(
        server,
        &wire,
        "STDIN record for request 1 arrived after its STDIN stream ended",
    );
}

#[test]
fn a_repeated_end_of_stdin_is_ignored() {
    // fastcgi-client 0.12 ends STDIN twice; the request is served all the same.
    let mut wire = simple_request(1, true, &[]);
    wire.extend(record(RecordType::Stdin, 1, b"", 0));
    let mut conn = server();
    conn.read_buf().extend_from_slice(&wire);
    let mut ends = 0;
    while let Some(event) = conn.poll_event().expect("no protocol error") {
        if matches!(event, ServerEvent::StdinEnd { .. }) {
            ends += 1;
        }
    }
    assert_eq!(ends, 1);
}

#[test]
fn records_an_application_never_sends_are_refused_by_name() {
    client_fails_with(
        &record(RecordType::Stdin, 1, b"x", 0),
        "STDIN record for request 1 is never sent by an application",
    );
    client_fails_with(
        &record(RecordType::GetValues, 0, b"", 0),
        "GET_VALUES record for request 0 uses the management id 0",
    );
}

#[test]
fn an_mpxs_conns_value_that_is_not_0_or_1_is_refused() {
    let wire = record(
        RecordType::GetValuesResult,
        0,
        &nv_stream(&[(MPXS_CONNS.as_bytes().to_vec(), b"yes".to_vec())], &[]),
        0,
    );
    client_fails_with(
        &wire,
        "GET_VALUES_RESULT value of FCGI_MPXS_CONNS is not a decimal number",
    );
}

#[test]
fn a_close_inside_a_record_or_before_end_request_is_reported() {
    let mut conn = server();
    let wire = begin(1, Role::Responder, true);
    conn.receive(&wire[..11]);
    assert_eq!(conn.poll_event().unwrap(), None);
    let err = conn.on_eof().unwrap_err();
    assert_eq!(
        err.to_string(),
        "connection closed inside a record (11 bytes of it arrived)"
    );

    let mut client = client_in_flight();
    feed_client(
        &mut client,
        &record(RecordType::Stdout, 1, b"half a page", 0),
        &Reads::whole(),
    )
    .unwrap();
    let err = client.on_eof().unwrap_err();
    assert_eq!(
        err.to_string(),
        "connection closed before END_REQUEST of request 1"
    );
}
