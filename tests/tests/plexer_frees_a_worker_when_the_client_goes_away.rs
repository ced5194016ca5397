//! A client that goes away mid-request frees its worker: plexer sends the app ABORT_REQUEST
//! and waits briefly for it to end the request; a worker that ends it serves the next request
//! (php-fpm leaves it busy to the end), and one that does not within the wait is replaced. A
//! client that goes away while its request waits for a worker never costs a worker at all.

use std::io::Write;
use std::time::Duration;

use plexer_tests::log_events::{Event, events, find};
use plexer_tests::{PlexerServe, Scratch, ServeSetup, cgi, wait_until, wire};

/// Sends a GET of `uri` with `cookie` and returns the connection, the answer unread.
fn send(plexer: &PlexerServe, cookie: &str, uri: &str) -> std::os::unix::net::UnixStream {
    let mut params = cgi::params_for("GET", uri, 0);
    params.push(("HTTP_COOKIE".into(), cookie.into()));
    let pairs: Vec<(&str, &str)> = params
        .iter()
        .map(|(n, v)| (n.as_str(), v.as_str()))
        .collect();
    let mut conn = std::os::unix::net::UnixStream::connect(&plexer.socket).unwrap();
    conn.write_all(&wire::request(1, &pairs, b"", false))
        .unwrap();
    conn
}

/// Sends a request for `uri` as bob and closes the connection before the answer.
fn send_and_leave(plexer: &PlexerServe, cookie: &str, uri: &str) {
    let _conn = send(plexer, cookie, uri);
    plexer.wait_busy("bob");
}

fn one_worker(scratch: &Scratch) -> PlexerServe {
    PlexerServe::start(
        scratch,
        ServeSetup {
            accounts: &[("login", "{}"), ("bob", "users: [bob]\nmax_children: 1")],
            args: &["--log-format", "json"],
            ..ServeSetup::default()
        },
    )
}

#[test]
fn a_worker_that_ends_the_abandoned_request_serves_the_next_one() {
    let scratch = Scratch::new();
    let plexer = one_worker(&scratch);
    let bob = plexer.cookie("bob");
    let worker = plexer.get(Some(&bob), "/warm").1.pid();
    send_and_leave(&plexer, &bob, "/slow?sleep=600");
    wait_until(
        "plexer notices the client left",
        || find(&plexer.log(), |e| e.has("worker_free", "true")).is_some(),
        Duration::from_secs(5),
    );
    assert_eq!(plexer.get(Some(&bob), "/next").1.pid(), worker);
}

#[test]
fn a_worker_still_busy_after_the_wait_is_replaced_and_the_account_serves_on() {
    let scratch = Scratch::new();
    let plexer = one_worker(&scratch);
    let bob = plexer.cookie("bob");
    let worker = plexer.get(Some(&bob), "/warm").1.pid();
    send_and_leave(&plexer, &bob, "/stuck?sleep=20000");
    wait_until(
        "plexer gives up on the worker",
        || find(&plexer.log(), |e| e.has("worker_free", "false")).is_some(),
        Duration::from_secs(5),
    );
    let next = plexer.get(Some(&bob), "/next").1.pid();
    assert_ne!(
        next, worker,
        "the stuck worker was replaced, not waited for"
    );
}

#[test]
fn a_request_whose_client_left_while_it_waited_never_reaches_a_worker() {
    let scratch = Scratch::new();
    let plexer = one_worker(&scratch);
    let bob = plexer.cookie("bob");
    let warm = plexer.get(Some(&bob), "/warm").1;
    // The one worker is busy for 800 ms; a second request waits for it, then its client leaves.
    std::thread::scope(|s| {
        let busy = s.spawn(|| plexer.get(Some(&bob), "/busy?sleep=800"));
        plexer.wait_busy("bob");
        let conn = send(&plexer, &bob, "/abandoned");
        wait_until(
            "the request waits in bob's queue",
            || {
                plexer.status_json()["accounts"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .any(|a| a["account"] == "bob" && a["queue"] == 1)
            },
            Duration::from_secs(5),
        );
        drop(conn);
        wait_until(
            "plexer notices the client left",
            || find(&plexer.log(), |e| e.has("waited_for", "a worker")).is_some(),
            Duration::from_secs(5),
        );
        busy.join().unwrap();
    });
    // The worker served /warm, /busy and now /next: never /abandoned.
    let next = plexer.get(Some(&bob), "/next").1;
    assert_eq!(next.pid(), warm.pid());
    assert_eq!(next.requests(), warm.requests() + 2, "{}", plexer.log());
    // The access log is written in batches, at least every second.
    let access = |e: &Event| e.target() == "plexer::access" && e.has("uri", "/next");
    wait_until(
        "the access log has /next",
        || find(&plexer.log(), access).is_some(),
        Duration::from_secs(5),
    );
    // Lines go out in order: with /next written, /abandoned would have been too.
    let served = |e: &Event| e.target() == "plexer::access" && e.has("uri", "/abandoned");
    assert!(
        !events(&plexer.log()).iter().any(served),
        "{}",
        plexer.log()
    );
}

/// FCGI_ABORT_REQUEST (§5.4) from the web server on a kept connection: plexer ends the request
/// with its END_REQUEST, frees the worker, and the same connection carries the next request.
#[test]
fn an_abort_is_answered_with_end_request_and_the_connection_goes_on() {
    use std::io::Read;
    let scratch = Scratch::new();
    let plexer = one_worker(&scratch);
    let bob = plexer.cookie("bob");
    let worker = plexer.get(Some(&bob), "/warm").1.pid();
    let request = |uri: &str| {
        let mut params = cgi::params_for("GET", uri, 0);
        params.push(("HTTP_COOKIE".into(), bob.clone()));
        params
    };
    // Ends within ABORT_WAIT, so the worker is free again.
    let slow = request("/slow?sleep=600");
    let mut conn = std::os::unix::net::UnixStream::connect(&plexer.socket).unwrap();
    conn.set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    conn.write_all(&wire::request(1, &as_refs(&slow), b"", true))
        .unwrap();
    plexer.wait_busy("bob");
    conn.write_all(&wire::record(wire::kind::ABORT_REQUEST, 1, b""))
        .unwrap();
    let aborted =
        wire::read_response(&mut conn, 1).expect("an END_REQUEST for the aborted request");
    assert_eq!(aborted.protocol_status, 0, "REQUEST_COMPLETE");
    let next = request("/next");
    conn.write_all(&wire::request(1, &as_refs(&next), b"", true))
        .unwrap();
    let answered = wire::read_response(&mut conn, 1).expect("the kept connection serves on");
    let text = String::from_utf8_lossy(&answered.stdout);
    assert!(
        text.contains(&format!("pid: {worker}")),
        "the freed worker: {text}"
    );
    let mut rest = [0u8; 1];
    conn.set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    assert!(
        conn.read(&mut rest).is_err(),
        "nothing more, and still open"
    );
}

fn as_refs(params: &[(String, String)]) -> Vec<(&str, &str)> {
    params
        .iter()
        .map(|(n, v)| (n.as_str(), v.as_str()))
        .collect()
}
