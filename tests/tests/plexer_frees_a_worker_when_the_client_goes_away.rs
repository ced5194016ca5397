//! A client that goes away mid-request frees its worker: plexer sends the app ABORT_REQUEST
//! and waits briefly for it to end the request; a worker that ends it serves the next request
//! (php-fpm leaves it busy to the end), and one that does not within the wait is replaced.

use std::io::Write;
use std::time::Duration;

use plexer_tests::{Addr, PlexerServe, Scratch, ServeSetup, cgi, wait_until, wire};

/// Sends a request for `uri` as bob and closes the connection before the answer.
fn send_and_leave(plexer: &PlexerServe, cookie: &str, uri: &str) {
    let mut params = cgi::params_for("GET", uri, 0);
    params.push(("HTTP_COOKIE".into(), cookie.into()));
    let pairs: Vec<(&str, &str)> = params
        .iter()
        .map(|(n, v)| (n.as_str(), v.as_str()))
        .collect();
    let mut conn = Addr::Unix(plexer.socket.clone())
        .connect(Duration::from_secs(5))
        .unwrap();
    conn.write_all(&wire::request(1, &pairs, b"", false))
        .unwrap();
    plexer.wait_busy("bob");
}

fn one_worker(scratch: &Scratch) -> PlexerServe {
    PlexerServe::start(
        scratch,
        ServeSetup {
            accounts: &[("login", ""), ("bob", "users: [bob]\nmax_children: 1")],
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
        || plexer.log().contains("the worker is free again"),
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
        || plexer.log().contains("the worker is stopped"),
        Duration::from_secs(5),
    );
    let next = plexer.get(Some(&bob), "/next").1.pid();
    assert_ne!(
        next, worker,
        "the stuck worker was replaced, not waited for"
    );
}
