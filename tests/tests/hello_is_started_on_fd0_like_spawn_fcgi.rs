//! `hello` follows the conventions spawn-fcgi, php-fpm and `plexer spawn` rely on: the
//! listening socket arrives as descriptor 0 (FastCGI spec §2.2, `FCGI_LISTENSOCK_FILENO`), of
//! either family; without one it refuses to start; and `FCGI_WEB_SERVER_ADDRS` (§3.2) limits
//! which TCP peers it answers.

use std::io::{ErrorKind, Read};
use std::process::{Command, Stdio};
use std::time::Duration;

use plexer_tests::hello::Listen;
use plexer_tests::process::run_keeping_stdin;
use plexer_tests::{Addr, Hello, Scratch, build, run};

#[test]
fn a_listening_tcp_socket_on_fd0_is_served() {
    let scratch = Scratch::new();
    let hello = Hello::builder().listen(Listen::Fd0Tcp).start(&scratch);
    let Addr::Tcp(addr) = hello.addr() else {
        panic!("expected a TCP address, got {}", hello.addr());
    };
    assert!(addr.ip().is_loopback());

    let (_, answer) = hello.get("/over-tcp?x=1");
    assert_eq!(answer.pid(), hello.pid());
    assert_eq!(answer.get("uri"), "/over-tcp?x=1");
}

#[test]
fn a_listening_unix_socket_on_fd0_is_served() {
    let scratch = Scratch::new();
    let hello = Hello::builder().listen(Listen::Fd0Unix).start(&scratch);

    let (cgi, answer) = hello.get("/over-unix");
    assert_eq!(cgi.header("X-Hello-Pid"), Some(&*hello.pid().to_string()));
    assert_eq!(answer.get("uri"), "/over-unix");
}

#[test]
fn the_socket_flag_binds_unix_and_tcp_addresses() {
    let scratch = Scratch::new();
    for listen in [Listen::SocketUnix, Listen::SocketTcp] {
        let hello = Hello::builder().listen(listen).start(&scratch);
        let (_, answer) = hello.get("/bound-by-hello");
        assert_eq!(answer.pid(), hello.pid(), "{listen:?}");
    }
}

#[test]
fn without_a_socket_on_fd0_or_a_socket_flag_it_exits_2_with_its_usage() {
    let mut command = Command::new(build::hello());
    command.stdin(Stdio::null());
    let out = run_keeping_stdin(&mut command, Duration::from_secs(10));

    assert_eq!(out.code(), Some(2), "{out}");
    let stderr = out.stderr_text();
    assert!(
        stderr.contains("descriptor 0 is not a listening socket and no --socket given"),
        "{out}"
    );
    assert!(stderr.contains("usage: hello [--socket"), "{out}");
    assert!(out.stdout.is_empty(), "{out}");

    // A pipe on fd 0 is no listening socket either.
    let out = run(
        &mut Command::new(build::hello()),
        b"",
        Duration::from_secs(10),
    );
    assert_eq!(out.code(), Some(2), "{out}");
}

#[test]
fn fcgi_web_server_addrs_without_our_address_closes_the_connection_unanswered() {
    let scratch = Scratch::new();
    let hello = Hello::builder()
        .listen(Listen::Fd0Tcp)
        .env("FCGI_WEB_SERVER_ADDRS", "127.0.0.2")
        .start(&scratch);

    let mut conn = hello
        .addr()
        .connect(Duration::from_secs(5))
        .expect("the kernel accepts the connection into the backlog");
    let mut got = Vec::new();
    match conn.read_to_end(&mut got) {
        Ok(_) => {}
        // A close with unread bytes in the socket turns into a reset; either way, no answer.
        Err(err) if err.kind() == ErrorKind::ConnectionReset => {}
        Err(err) => panic!("expected hello to close the connection, got {err}"),
    }
    assert!(got.is_empty(), "hello answered a peer not in the list");

    // And a real request gets no answer either.
    let err = hello
        .request("GET", "/refused", &[], b"")
        .expect_err("a peer not in FCGI_WEB_SERVER_ADDRS is refused");
    assert!(
        matches!(
            err.kind(),
            ErrorKind::UnexpectedEof | ErrorKind::ConnectionReset | ErrorKind::BrokenPipe
        ),
        "{err}"
    );
    hello_still_runs(hello);
}

#[test]
fn fcgi_web_server_addrs_with_our_address_answers() {
    let scratch = Scratch::new();
    let hello = Hello::builder()
        .listen(Listen::Fd0Tcp)
        .env("FCGI_WEB_SERVER_ADDRS", "127.0.0.2, 127.0.0.1")
        .start(&scratch);

    let (_, answer) = hello.get("/allowed");
    assert_eq!(answer.get("uri"), "/allowed");
}

fn hello_still_runs(mut hello: Hello) {
    hello.process().assert_running();
}
