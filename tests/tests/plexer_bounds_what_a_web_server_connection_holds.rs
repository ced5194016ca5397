//! What one web-server connection can hold is bounded: a request whose body stops arriving
//! ends at `body_timeout` with a 408 and frees its worker; a peer that stops reading the answer
//! is given up after `send_timeout`; a peer that sends records without reading the answers
//! stops being read; past `max_connections` a new connection is closed as it arrives (on the
//! FastCGI socket and on the development HTTP front); and params that leave no room for the
//! ones plexer adds are refused with a 431, never by losing the worker.

use std::io::{ErrorKind, Read, Write};
use std::os::unix::net::UnixStream;
use std::time::{Duration, Instant};

use plexer_tests::{CgiResponse, PlexerServe, Scratch, ServeSetup, addr, cgi, wire};

const CONFIG: &str = "login: { account: login }\nbody_timeout: 1s\nsend_timeout: 1s\n\
                      max_connections: 4\n";

/// plexer with bob's account on one worker, short timeouts, and room for 4 connections.
fn bounded(scratch: &Scratch, args: &[&str]) -> PlexerServe {
    PlexerServe::start(
        scratch,
        ServeSetup {
            accounts: &[("login", "{}"), ("bob", "users: [bob]\nmax_children: 1")],
            config_extra: CONFIG,
            pool_extra: "  request_timeout: 30s\n",
            args,
        },
    )
}

/// The params of a request for `uri` as bob, with `extra` pairs.
fn params(plexer: &PlexerServe, method: &str, uri: &str, body_len: usize) -> Vec<(String, String)> {
    let mut params = cgi::params_for(method, uri, body_len);
    params.push(("HTTP_COOKIE".into(), plexer.cookie("bob")));
    params
}

fn pairs(params: &[(String, String)]) -> Vec<(&str, &str)> {
    params
        .iter()
        .map(|(n, v)| (n.as_str(), v.as_str()))
        .collect()
}

fn connect(plexer: &PlexerServe) -> UnixStream {
    let conn = UnixStream::connect(&plexer.socket).expect("connect to plexer");
    conn.set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    conn
}

/// BEGIN_REQUEST and the whole PARAMS stream of request 1.
fn head(params: &[(&str, &str)]) -> Vec<u8> {
    let pairs: Vec<u8> = params
        .iter()
        .flat_map(|(n, v)| wire::name_value(n.as_bytes(), v.as_bytes()))
        .collect();
    let mut out = wire::begin_request(1, wire::RESPONDER, false);
    out.extend(wire::stream(wire::kind::PARAMS, 1, &pairs));
    out
}

/// bob's next request is served within `within`: its worker is free.
fn bob_is_served_within(plexer: &PlexerServe, within: Duration) -> u32 {
    let started = Instant::now();
    let (response, answer) = plexer.get(Some(&plexer.cookie("bob")), "/next");
    assert_eq!(
        answer.get("account"),
        "bob",
        "bob's app answered: {response:?}"
    );
    assert!(
        started.elapsed() < within,
        "bob waited {:?} for a worker: the stalled request still held it",
        started.elapsed()
    );
    answer.pid()
}

#[test]
fn a_body_that_stops_arriving_gets_a_408_and_frees_the_worker() {
    let scratch = Scratch::new();
    let plexer = bounded(&scratch, &[]);
    let params = params(&plexer, "POST", "/upload", 1000);
    let mut conn = connect(&plexer);
    let mut sent = head(&pairs(&params));
    sent.extend(wire::record(wire::kind::STDIN, 1, &[b'x'; 10]));
    conn.write_all(&sent).unwrap();
    let started = Instant::now();
    let raw = wire::read_response(&mut conn, 1).expect("an answer, not a hang");
    let response = CgiResponse::parse(&raw.stdout);
    assert_eq!(
        response.status(),
        Some("408 Request Timeout"),
        "{response:?}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "the 408 came after {:?}, not at body_timeout (1s)",
        started.elapsed()
    );
    assert_eq!(
        conn.read(&mut [0; 16]).unwrap(),
        0,
        "the connection closes after the 408: the rest of that body belongs to no request"
    );
    bob_is_served_within(&plexer, Duration::from_secs(5));
}

#[test]
fn a_request_head_that_stops_arriving_closes_its_connection() {
    let scratch = Scratch::new();
    let plexer = bounded(&scratch, &[]);
    let mut conn = connect(&plexer);
    let begun = wire::begin_request(1, wire::RESPONDER, false);
    conn.write_all(&begun).unwrap();
    conn.write_all(&wire::record(
        wire::kind::PARAMS,
        1,
        &wire::name_value(b"A", b"b"),
    ))
    .unwrap();
    let started = Instant::now();
    let got = conn.read(&mut [0; 64]);
    assert!(
        matches!(got, Ok(0))
            || got
                .as_ref()
                .is_err_and(|e| e.kind() == ErrorKind::ConnectionReset),
        "the connection is closed, got {got:?}"
    );
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_millis(900) && waited < Duration::from_secs(5),
        "closed after {waited:?}, not at body_timeout (1s)"
    );
}

#[test]
fn a_web_server_that_stops_reading_the_answer_is_given_up_and_the_worker_freed() {
    let scratch = Scratch::new();
    let plexer = bounded(&scratch, &[]);
    let params = params(&plexer, "GET", "/big?bytes=200000000", 0);
    let mut conn = connect(&plexer);
    conn.write_all(&wire::request(1, &pairs(&params), b"", false))
        .unwrap();
    // Nothing is read from `conn`: the answer backs up in plexer.
    std::thread::sleep(Duration::from_millis(300));
    bob_is_served_within(&plexer, Duration::from_secs(8));
    drop(conn);
}

#[test]
fn records_sent_without_reading_the_answers_stop_being_read() {
    let scratch = Scratch::new();
    let mut plexer = bounded(&scratch, &[]);
    let params = params(&plexer, "GET", "/slow?sleep=4000", 0);
    let mut conn = connect(&plexer);
    conn.write_all(&wire::request(1, &pairs(&params), b"", false))
        .unwrap();
    plexer.wait_busy("bob");
    // GET_VALUES records, each answered, none of the answers read.
    let probe = wire::record(
        wire::kind::GET_VALUES,
        0,
        &wire::name_value(b"FCGI_MAX_CONNS", b""),
    );
    let batch: Vec<u8> = probe.repeat(1024);
    conn.set_nonblocking(true).unwrap();
    let (mut sent, started) = (0usize, Instant::now());
    while started.elapsed() < Duration::from_secs(2) && sent < 64 << 20 {
        match conn.write(&batch) {
            Ok(n) => sent += n,
            Err(err) if err.kind() == ErrorKind::WouldBlock => {
                std::thread::sleep(Duration::from_millis(5))
            }
            Err(err) => panic!("writing records: {err}"),
        }
    }
    assert!(
        sent < 4 << 20,
        "plexer read {sent} bytes of records whose answers nobody read: its queue grows"
    );
    plexer.process.assert_running();
}

/// Whether a connection made now is closed by plexer at once.
fn closed_at_once(mut conn: impl Read) -> bool {
    match conn.read(&mut [0; 16]) {
        Ok(0) => true,
        Err(err) if err.kind() == ErrorKind::ConnectionReset => true,
        Err(err) if err.kind() == ErrorKind::WouldBlock || err.kind() == ErrorKind::TimedOut => {
            false
        }
        other => panic!("unexpected read on an idle connection: {other:?}"),
    }
}

#[test]
fn connections_past_max_connections_are_closed_as_they_arrive() {
    let scratch = Scratch::new();
    let port = addr::free_port();
    let http = format!("127.0.0.1:{port}");
    let plexer = bounded(&scratch, &["--http", &http]);
    let idle: Vec<UnixStream> = (0..4).map(|_| connect(&plexer)).collect();
    let fifth = connect(&plexer);
    fifth
        .set_read_timeout(Some(Duration::from_secs(2)))
        .unwrap();
    assert!(closed_at_once(&fifth), "a fifth connection is closed");
    drop(idle);
    // The four closed: their tasks end and make room again.
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let conn = connect(&plexer);
        conn.set_read_timeout(Some(Duration::from_millis(300)))
            .unwrap();
        if !closed_at_once(&conn) {
            break;
        }
        assert!(Instant::now() < deadline, "room never came back");
    }
    let cookie = plexer.cookie("bob");
    assert_eq!(plexer.account_of(Some(&cookie)), "bob");

    // The development HTTP front counts its own connections the same way.
    let tcp = |timeout| {
        let conn = std::net::TcpStream::connect(&http).expect("connect to the HTTP front");
        conn.set_read_timeout(Some(timeout)).unwrap();
        conn
    };
    let idle: Vec<_> = (0..4).map(|_| tcp(Duration::from_secs(2))).collect();
    assert!(
        closed_at_once(tcp(Duration::from_secs(2))),
        "a fifth HTTP connection is closed"
    );
    drop(idle);
}

#[test]
fn params_leaving_no_room_for_plexers_own_get_a_431_and_keep_the_worker() {
    let scratch = Scratch::new();
    let plexer = bounded(&scratch, &["--log-format", "json"]);
    let worker = bob_is_served_within(&plexer, Duration::from_secs(10));
    let mut params = params(&plexer, "GET", "/full", 0);
    let pairs_now: usize = pairs(&params)
        .iter()
        .map(|(n, v)| wire::name_value(n.as_bytes(), v.as_bytes()).len())
        .sum();
    // Filler up to 8 bytes under the 1 MiB limit: plexer's PLEXER_ACCOUNT=bob does not fit.
    // Each filler pair is a 1-byte name length, a 4-byte value length, the name, the value.
    let mut left = (1 << 20) - 8 - pairs_now;
    for n in 0.. {
        let name = format!("HTTP_X_FILL_{n}");
        let overhead = 5 + name.len();
        let value_len = match left - overhead {
            whole if whole > 300 << 10 => 200 << 10,
            last => last,
        };
        left -= overhead + value_len;
        params.push((name, "f".repeat(value_len)));
        if left == 0 {
            break;
        }
    }
    let mut conn = connect(&plexer);
    let raw = wire::exchange(&mut conn, &pairs(&params), b"").expect("an answer");
    let response = CgiResponse::parse(&raw.stdout);
    assert_eq!(
        response.status(),
        Some("431 Request Header Fields Too Large"),
        "{}",
        response.body_text()
    );
    assert_eq!(
        bob_is_served_within(&plexer, Duration::from_secs(5)),
        worker,
        "the worker that never saw the request serves on"
    );
}
