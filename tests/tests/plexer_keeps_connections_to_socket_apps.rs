//! Accounts whose `socket:` names an app someone else runs: plexer keeps its connections to the
//! app open between requests (FCGI_KEEP_CONN), never opens more than the account's
//! `max_children` (a kept connection holds one of the app's processes, and a request on one
//! more would starve behind it), and copes with an app that closes after each request or
//! closes a kept connection just as the next request arrives.

use std::process::Command;
use std::time::Duration;

use plexer_tests::hello::Listen;
use plexer_tests::{Hello, PlexerServe, Running, Scratch, ServeSetup, wait};

#[test]
fn a_one_process_app_serves_concurrent_requests_one_after_another_on_a_kept_connection() {
    let scratch = Scratch::new();
    let app = Hello::builder().listen(Listen::SocketUnix).start(&scratch);
    let path = app.addr().unix_path().unwrap().display().to_string();
    let account = format!("users: [ext]\nsocket: unix:{path}\nmax_children: 1\n");
    let plexer = PlexerServe::start(
        &scratch,
        ServeSetup {
            accounts: &[("login", "{}"), ("ext", &account)],
            ..ServeSetup::default()
        },
    );
    let ext = plexer.cookie("ext");
    // hello serves one connection at a time: had plexer opened a second connection while
    // keeping the first, the second request would wait behind the idle first one for ever.
    let answers: Vec<_> = std::thread::scope(|s| {
        let requests: Vec<_> = (0..3)
            .map(|i| {
                s.spawn({
                    let (plexer, ext) = (&plexer, &ext);
                    move || plexer.get(Some(ext), &format!("/c{i}?sleep=200"))
                })
            })
            .collect();
        requests.into_iter().map(|r| r.join().unwrap()).collect()
    });
    for (_, answer) in &answers {
        assert_eq!(answer.get("account"), "ext");
    }
    // One process, one kept connection: its request counter counts every request.
    let (_, last) = plexer.get(Some(&ext), "/last");
    assert_eq!(
        last.requests(),
        4,
        "all four requests came on one connection"
    );
}

/// The python FastCGI app `source` on a unix socket, and a plexer whose account `ext` routes
/// to it with `max_children`; with the cookie of `ext`.
fn behind_plexer(
    scratch: &Scratch,
    name: &str,
    source: &str,
    max_children: usize,
) -> (Running, PlexerServe, String) {
    let socket = scratch.join(format!("{name}.sock"));
    let mut command = Command::new("python3");
    command.args(["-c", source]).arg(&socket);
    let app = Running::spawn(
        &format!("{name} app"),
        &mut command,
        &scratch.join(format!("{name}.log")),
    );
    wait::wait_until_listening(name, &socket, Duration::from_secs(10));
    let account = format!(
        "users: [ext]\nsocket: unix:{}\nmax_children: {max_children}\n",
        socket.display()
    );
    let plexer = PlexerServe::start(
        scratch,
        ServeSetup {
            accounts: &[("login", "{}"), ("ext", &account)],
            ..ServeSetup::default()
        },
    );
    let ext = plexer.cookie("ext");
    (app, plexer, ext)
}

/// A FastCGI app that answers and then closes the connection, whatever FCGI_KEEP_CONN says.
const CLOSING_APP: &str = r#"
import socket, struct, sys, os
path = sys.argv[1]
server = socket.socket(socket.AF_UNIX)
server.bind(path)
server.listen(16)
served = 0
def records(conn):
    buf = b""
    while True:
        while len(buf) >= 8:
            _, kind, rid, clen, plen, _ = struct.unpack(">BBHHBB", buf[:8])
            if len(buf) < 8 + clen + plen:
                break
            yield kind, rid, buf[8:8 + clen]
            buf = buf[8 + clen + plen:]
        data = conn.recv(65536)
        if not data:
            return
        buf += data
def record(kind, rid, body):
    return struct.pack(">BBHHBB", 1, kind, rid, len(body), 0, 0) + body
while True:
    conn, _ = server.accept()
    for kind, rid, body in records(conn):
        if kind == 5 and body == b"":
            served += 1
            out = b"Content-Type: text/plain\r\n\r\nclosing app, request %d\n" % served
            conn.sendall(record(6, rid, out) + record(6, rid, b"") + record(3, rid, bytes(8)))
            break
    conn.close()
"#;

#[test]
fn an_app_that_closes_after_each_request_is_served_on_a_new_connection_each_time() {
    let scratch = Scratch::new();
    let (_app, plexer, ext) = behind_plexer(&scratch, "closing", CLOSING_APP, 2);
    for i in 1..=5 {
        let (response, _) = plexer.get(Some(&ext), "/x");
        assert!(
            response
                .body_text()
                .contains(&format!("closing app, request {i}")),
            "request {i}: {}",
            response.body_text()
        );
    }
}

/// A FastCGI app that answers, waits 300 ms without reading, and then closes the connection:
/// a request plexer sends on the kept connection meanwhile is never read. The answer says how
/// many body bytes the request brought.
const LINGERING_APP: &str = r#"
import socket, struct, sys, time
path = sys.argv[1]
server = socket.socket(socket.AF_UNIX)
server.bind(path)
server.listen(16)
served = 0
def record(kind, rid, body):
    return struct.pack(">BBHHBB", 1, kind, rid, len(body), 0, 0) + body
while True:
    conn, _ = server.accept()
    buf, body = b"", 0
    while True:
        data = conn.recv(65536)
        if not data:
            break
        buf += data
        answered = False
        while len(buf) >= 8:
            _, kind, rid, clen, plen, _ = struct.unpack(">BBHHBB", buf[:8])
            if len(buf) < 8 + clen + plen:
                break
            content, buf = buf[8:8 + clen], buf[8 + clen + plen:]
            if kind == 5 and content:
                body += len(content)
            elif kind == 5:
                served += 1
                out = b"Content-Type: text/plain\r\n\r\nrequest %d, %d body bytes\n" % (served, body)
                conn.sendall(record(6, rid, out) + record(6, rid, b"") + record(3, rid, bytes(8)))
                answered = True
        if answered:
            time.sleep(0.3)
            break
    conn.close()
"#;

#[test]
fn a_kept_connection_closed_as_the_next_request_arrives_gets_that_request_again_on_a_new_one() {
    let scratch = Scratch::new();
    let (_app, plexer, ext) = behind_plexer(&scratch, "lingering", LINGERING_APP, 1);
    let (first, _) = plexer.get(Some(&ext), "/first");
    assert!(
        first.body_text().contains("request 1,"),
        "{}",
        first.body_text()
    );
    // Within the app's 300 ms: sent on the kept connection, which the app then closes with the
    // request unread. A POST is sent again only because it was provably not read.
    let second = plexer.post(Some(&ext), "/second", &[b'x'; 3000]);
    assert!(
        second.body_text().contains("request 2, 3000 body bytes"),
        "{}",
        second.body_text()
    );
    let (third, _) = plexer.get(Some(&ext), "/third");
    assert!(
        third.body_text().contains("request 3,"),
        "{}",
        third.body_text()
    );
}

/// SIGTERM drains every request in flight, not only the managed pools': a request to a
/// `socket:` account that is being served when plexer is told to stop gets its whole answer,
/// and so does one to a managed account.
#[test]
fn sigterm_lets_requests_to_socket_apps_and_pools_finish() {
    let scratch = Scratch::new();
    let app = Hello::builder().listen(Listen::SocketUnix).start(&scratch);
    let path = app.addr().unix_path().unwrap().display().to_string();
    let account = format!("users: [ext]\nsocket: unix:{path}\nmax_children: 1\n");
    let mut plexer = PlexerServe::start(
        &scratch,
        ServeSetup {
            accounts: &[("login", "{}"), ("bob", "users: [bob]"), ("ext", &account)],
            ..ServeSetup::default()
        },
    );
    let (ext, bob) = (plexer.cookie("ext"), plexer.cookie("bob"));
    let answers = std::thread::scope(|s| {
        let external = s.spawn(|| plexer.get(Some(&ext), "/ext?sleep=1500"));
        // Over well before the app's: the pools' drain alone would not wait for the app.
        let managed = s.spawn(|| plexer.get(Some(&bob), "/bob?sleep=600"));
        std::thread::sleep(Duration::from_millis(400)); // both being served
        plexer.process.signal(nix::sys::signal::Signal::SIGTERM);
        [external.join().unwrap(), managed.join().unwrap()]
    });
    for (response, answer) in &answers {
        assert_eq!(response.status(), Some("200"));
        assert!(
            answer.get("uri").contains("?sleep="),
            "{}",
            answer.get("uri")
        );
    }
    assert_eq!(answers[0].1.get("account"), "ext");
    assert_eq!(answers[1].1.get("account"), "bob");
    let status = plexer.process.wait_exit(Duration::from_secs(10));
    assert!(status.is_some_and(|s| s.success()), "{}", plexer.log());
}
