//! The dashboard stays light with 10,000 accounts: `?html` answers its first page of 50 rows
//! in under a second, and so do the next page and a filter. The accounts are `socket:` apps
//! pointing at one hello (no worker is started for them), as many as a big site has.

use std::time::{Duration, Instant};

use plexer_tests::hello::Listen;
use plexer_tests::http::{self, HttpResponse};
use plexer_tests::{Addr, Hello, PlexerServe, Scratch, ServeSetup};

const ACCOUNTS: usize = 10_000;

/// GET `path` through the HTTP front, and how long it took.
fn timed_get(port: u16, path: &str) -> (HttpResponse, Duration) {
    let started = Instant::now();
    let response = http::request11(port, "GET", path, &[], b"");
    (response, started.elapsed())
}

#[test]
fn the_first_page_of_ten_thousand_accounts_answers_in_under_a_second() {
    let scratch = Scratch::new();
    let app = Hello::builder().listen(Listen::SocketUnix).start(&scratch);
    let path = app.addr().unix_path().unwrap().display().to_string();
    let text = format!("socket: unix:{path}\n");
    let names: Vec<String> = (0..ACCOUNTS).map(|i| format!("a{i:05}")).collect();
    let mut accounts: Vec<(&str, &str)> =
        names.iter().map(|n| (n.as_str(), text.as_str())).collect();
    accounts.push(("login", "{}"));
    let Addr::Tcp(http) = Addr::free_tcp_port() else {
        unreachable!("free_tcp_port gives a TCP address")
    };
    let front = http.to_string();
    let plexer = PlexerServe::start(
        &scratch,
        ServeSetup {
            accounts: &accounts,
            args: &["--http", &front],
            ..ServeSetup::default()
        },
    );
    let loaded = || plexer.status_json()["accounts"].as_array().map(Vec::len);
    plexer_tests::wait_until(
        "every account loaded",
        || loaded() == Some(ACCOUNTS + 1),
        Duration::from_secs(60),
    );

    for (path, first_row, shown) in [
        (
            "/plexer-status?html",
            "a00000",
            "page 1 of 201 (10001 accounts)",
        ),
        (
            "/plexer-status?html&page=2",
            "a00050",
            "page 2 of 201 (10001 accounts)",
        ),
        (
            "/plexer-status?html&q=a0999",
            "a09990",
            "page 1 of 1 (10 accounts)",
        ),
    ] {
        let (response, took) = timed_get(http.port(), path);
        let page = response.text();
        assert_eq!(response.status, 200, "{path}: {page}");
        assert!(took < Duration::from_secs(1), "{path} took {took:?}");
        assert!(page.contains(shown), "{path}: {page}");
        let rows = page.matches("<tr data-account=").count();
        assert_eq!(rows, if path.contains("q=") { 10 } else { 50 }, "{path}");
        let first = page.find("<tr data-account=").unwrap();
        assert!(
            page[first..].starts_with(&format!("<tr data-account=\"{first_row}\"")),
            "{path}: {page}"
        );
        assert!(page.len() < 200 * 1024, "{path}: {} bytes", page.len());
    }
}
