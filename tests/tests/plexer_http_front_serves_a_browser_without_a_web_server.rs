//! `plexer serve --http 127.0.0.1:PORT`: the development HTTP/1.1 front routes like nginx in
//! front of plexer would. Without a cookie a request reaches the login app; the login app's
//! choice comes back as a signed cookie, next to the app's own Set-Cookie; with the cookie the
//! next request lands on that account; 20 MiB go up and 8 MiB come down intact; a chunked
//! upload without a length is refused with 411; plexer's own pages answer through it; a busy
//! port refuses the start, naming the address; an app that dies mid-response leaves the
//! client a response cut short (or none), never one that looks complete.

use std::time::Duration;

use plexer_tests::http::{self, HttpResponse};
use plexer_tests::log_events::find;
use plexer_tests::{
    Addr, HelloAnswer, PlexerServe, Scratch, ServeFiles, ServeSetup, build, fnv1a64, pattern_bytes,
    run,
};

/// Fields drop in order: plexer stops (and prints its log on failure) before the scratch
/// directory with its log goes.
struct Site {
    plexer: PlexerServe,
    port: u16,
    _scratch: Scratch,
}

fn site() -> Site {
    let scratch = Scratch::new();
    let Addr::Tcp(addr) = Addr::free_tcp_port() else {
        unreachable!("free_tcp_port gives a TCP address")
    };
    let http = addr.to_string();
    let plexer = PlexerServe::start(
        &scratch,
        ServeSetup {
            args: &["--http", &http, "--log-format", "json"],
            ..ServeSetup::default()
        },
    );
    plexer_tests::wait_until(
        "the HTTP front listens",
        || std::net::TcpStream::connect(addr).is_ok(),
        Duration::from_secs(10),
    );
    Site {
        plexer,
        port: addr.port(),
        _scratch: scratch,
    }
}

fn get(site: &Site, path: &str, headers: &[(&str, &str)]) -> (HttpResponse, HelloAnswer) {
    let response = http::request11(site.port, "GET", path, headers, b"");
    assert_eq!(
        response.status,
        200,
        "GET {path}: {}\n--- plexer's log ---\n{}",
        response.text(),
        site.plexer.log()
    );
    let answer = HelloAnswer::parse(&response.body);
    (response, answer)
}

#[test]
fn login_sets_the_cookie_and_the_cookie_routes_the_next_request() {
    let site = site();
    let (_, anonymous) = get(&site, "/start", &[]);
    assert_eq!(anonymous.get("account"), "login");

    let (login, answer) = get(&site, "/login?login=bob&set_cookie=theme%3Ddark", &[]);
    assert_eq!(answer.get("account"), "login");
    assert!(
        login.header("X-Plexer-User").is_none(),
        "plexer takes the header out"
    );
    let cookies = login.headers_named("Set-Cookie");
    assert_eq!(
        cookies.len(),
        2,
        "two Set-Cookie lines, kept apart: {cookies:?}"
    );
    assert!(cookies.contains(&"theme=dark"), "{cookies:?}");
    let routing = cookies
        .iter()
        .find(|c| c.starts_with("plexer_account=bob."))
        .unwrap_or_else(|| panic!("no routing cookie for bob in {cookies:?}"));
    assert!(routing.contains("HttpOnly"), "{routing}");
    let pair = routing.split(';').next().expect("NAME=VALUE first");

    let (_, bob) = get(&site, "/account/page?x=1", &[("Cookie", pair)]);
    assert_eq!(bob.get("account"), "bob");
    // The login app chose by user, so the app is told who (the quickstart's `user:` line).
    assert_eq!(bob.get("user"), "bob");
    assert_eq!(bob.get("uri"), "/account/page?x=1");
    let (_, again) = get(&site, "/", &[("Cookie", "theme=dark"), ("Cookie", pair)]);
    assert_eq!(
        again.get("account"),
        "bob",
        "repeated Cookie headers are joined"
    );
}

#[test]
fn large_bodies_pass_both_ways_intact() {
    let site = site();
    let upload = pattern_bytes(20 << 20, 7);
    let response = http::request11(
        site.port,
        "POST",
        "/upload",
        &[("Content-Type", "application/octet-stream")],
        &upload,
    );
    assert_eq!(response.status, 200, "{}", response.text());
    let answer = HelloAnswer::parse(&response.body);
    assert_eq!(answer.body_bytes(), upload.len() as u64);
    assert_eq!(answer.body_fnv1a64(), format!("{:016x}", fnv1a64(&upload)));

    let size = 8 << 20;
    let download = http::request11(site.port, "GET", &format!("/?bytes={size}"), &[], b"");
    assert_eq!(download.status, 200);
    assert_eq!(download.body.len(), size);
    let expected: Vec<u8> = (b'a'..=b'z').cycle().take(size).collect();
    assert!(download.body == expected, "the download arrives unchanged");
}

#[test]
fn a_body_without_a_length_is_refused_and_plexers_pages_answer() {
    let site = site();
    let response = http::request11(
        site.port,
        "POST",
        "/upload",
        &[("Transfer-Encoding", "chunked")],
        b"5\r\nhello\r\n0\r\n\r\n",
    );
    assert_eq!(response.status, 411, "{}", response.text());
    assert!(response.text().contains("Content-Length"));

    let ping = http::request11(site.port, "GET", "/plexer-ping", &[], b"");
    assert_eq!((ping.status, ping.text().trim()), (200, "pong"));
    let status = http::request(site.port, "GET", "/plexer-status?json", &[], b"");
    assert_eq!(status.status, 200, "over HTTP/1.0 too: {}", status.text());
    assert!(status.text().contains("\"login\""), "{}", status.text());
}

#[test]
fn an_app_dying_mid_response_cuts_the_http_response_short() {
    let site = site();
    let raw = http::exchange("HTTP/1.1", site.port, "GET", "/?crash=1", &[], b"");
    let text = String::from_utf8_lossy(&raw);
    // hyper drops what it had buffered when it cuts a connection, so the client may get the
    // head and part of the body, or nothing; never a response that looks complete.
    if !raw.is_empty() {
        assert!(text.starts_with("HTTP/1.1 200"), "the head was out: {text}");
        assert!(
            text.contains("transfer-encoding: chunked") && !text.ends_with("0\r\n\r\n"),
            "no last chunk, so the client knows the body is incomplete: {text:?}"
        );
    }
    let log = site.plexer.log();
    assert!(
        find(&log, |e| e.has("cut_short", "true")).is_some(),
        "the front saw the head, then the end: {log}"
    );
}

#[test]
fn a_busy_port_refuses_the_start_and_names_the_address() {
    let scratch = Scratch::new();
    let files = ServeFiles::write(&scratch, &ServeSetup::default());
    let taken = std::net::TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    let addr = taken.local_addr().expect("local address");
    let mut command = build::serve_command(build::plexer());
    command
        .arg("-c")
        .arg(&files.config)
        .args(["--http", &addr.to_string()]);
    let finished = run(&mut command, b"", Duration::from_secs(15));
    assert!(!finished.status.success());
    let stderr = String::from_utf8_lossy(&finished.stderr);
    assert!(
        stderr.contains(&format!("cannot listen for HTTP on {addr}")),
        "{stderr}"
    );
    assert!(!files.socket.exists(), "plexer's own socket is gone again");
}
