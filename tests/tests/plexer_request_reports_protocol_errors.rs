//! `plexer request` against a FastCGI server that breaks the protocol (a fake one, scripted
//! here): it exits non-zero, promptly, with a message that names what the server did wrong.
//! So does a connect that fails, naming the address.

use std::net::{Ipv4Addr, TcpListener};

use plexer_tests::fake::{FakeServer, Then};
use plexer_tests::wire::{self, kind};
use plexer_tests::{Addr, Finished, PlexerRequest, Scratch};

/// Runs `plexer request` against a fake server that answers `answer`, then does `then`.
fn against_fake(answer: Vec<u8>, then: Then) -> Finished {
    let scratch = Scratch::new();
    let fake = FakeServer::start(&scratch, answer, then);
    let out = PlexerRequest::new(fake.addr(), "/broken?x=1").run();
    let received = fake.join().expect("the fake server saw a whole request");
    assert_eq!(
        received.first().map(|r| r.kind),
        Some(kind::BEGIN_REQUEST),
        "plexer request starts with BEGIN_REQUEST: {received:?}"
    );
    out
}

/// Asserts a non-zero exit whose stderr contains every one of `phrases` (ignoring case).
fn assert_reports(out: &Finished, phrases: &[&str]) {
    out.assert_failure();
    let stderr = out.stderr_text().to_lowercase();
    for phrase in phrases {
        assert!(
            stderr.contains(&phrase.to_lowercase()),
            "stderr should mention {phrase:?}: {out}"
        );
    }
}

#[test]
fn a_record_of_version_7_is_reported_as_a_bad_version() {
    let answer = wire::record_with_version(7, kind::STDOUT, 1, b"Status: 200 OK\r\n\r\nhi");
    let out = against_fake(answer, Then::WaitForClientClose);
    assert_reports(&out, &["protocol violation", "version 7"]);
}

#[test]
fn an_end_request_of_5_bytes_is_reported_with_its_length() {
    let mut answer = wire::record(kind::STDOUT, 1, b"Content-Type: text/plain\r\n\r\nhi");
    answer.extend(wire::record(kind::END_REQUEST, 1, &[0, 0, 0, 0, 0]));
    let out = against_fake(answer, Then::WaitForClientClose);
    assert_reports(&out, &["protocol violation", "END_REQUEST", "5 bytes"]);
}

#[test]
fn a_stdout_record_with_request_id_0_is_reported() {
    let mut answer = wire::record(kind::STDOUT, 0, b"Content-Type: text/plain\r\n\r\nhi");
    answer.extend(wire::end_request(1, 0, wire::REQUEST_COMPLETE));
    let out = against_fake(answer, Then::WaitForClientClose);
    assert_reports(&out, &["protocol violation", "STDOUT", "request 0"]);
}

#[test]
fn a_close_before_end_request_is_reported() {
    let answer = wire::record(kind::STDOUT, 1, b"Content-Type: text/plain\r\n\r\npartial");
    let out = against_fake(answer, Then::Close);
    assert_reports(&out, &["closed before END_REQUEST"]);
}

#[test]
fn a_well_behaved_fake_server_gets_exit_0_and_its_stdout_verbatim() {
    // The control for the four above: the same fake server, answering correctly.
    let head = b"Status: 299 Fine\r\nX-Fake: 1\r\n\r\nbody bytes";
    let mut answer = wire::stream(kind::STDOUT, 1, head);
    answer.extend(wire::record(kind::STDERR, 1, b"a warning"));
    answer.extend(wire::end_request(1, 0, wire::REQUEST_COMPLETE));
    let out = against_fake(answer, Then::WaitForClientClose);
    out.assert_success();
    assert_eq!(out.stdout, head, "{out}");
    assert!(out.stderr_text().contains("a warning"), "{out}");
}

#[test]
fn a_missing_unix_socket_is_reported_with_its_path() {
    let scratch = Scratch::new();
    let missing = scratch.join("nobody-listens-here.sock");

    let out = PlexerRequest::new(Addr::Unix(missing.clone()), "/").run();

    assert_reports(&out, &[missing.to_str().expect("UTF-8 path")]);
}

#[test]
fn a_refused_tcp_connect_is_reported_with_its_address() {
    let port = {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).expect("bind 127.0.0.1:0");
        listener.local_addr().expect("local address").port()
    }; // closed again: nothing listens on it now
    let out = PlexerRequest::new(format!("tcp:127.0.0.1:{port}"), "/").run();
    assert_reports(&out, &[&format!("127.0.0.1:{port}")]);
}
