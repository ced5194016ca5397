//! The fork-safety audit from outside, in `plexer serve`: an account whose app connects to its
//! database and then forks (as Django under flup's prefork server did) is caught; with
//! `audit: strict` the account is stopped and its requests get a 503 that says why, while the
//! other accounts serve on; with `audit: warn` it is logged and left running.

use std::net::TcpListener;
use std::time::Duration;

use plexer_tests::log_events::{Event, find};
use plexer_tests::{PlexerServe, Scratch, ServeSetup, wait_until};

/// An account file whose app imports, connects to the database at `port`, then forks: two
/// processes of the pool share one connection.
fn connect_then_fork(port: u16, audit: &str) -> String {
    format!(
        "users: [forky]\npm: static\nmax_children: 1\naudit: {audit}\ncommand: [python3, -c, \
         \"import os, socket, time\\ndb = socket.create_connection(('127.0.0.1', {port}))\\n\
         os.fork()\\ntime.sleep(60)\\n\"]\n"
    )
}

fn start(scratch: &Scratch, port: u16, audit: &str) -> PlexerServe {
    let forky = connect_then_fork(port, audit);
    let config_extra = format!("login: {{ account: login }}\naudit_databases: [{port}]\n");
    PlexerServe::start(
        scratch,
        ServeSetup {
            accounts: &[("login", "{}"), ("bob", "users: [bob]"), ("forky", &forky)],
            config_extra: &config_extra,
            args: &["--log-format", "json"],
            ..ServeSetup::default()
        },
    )
}

#[test]
fn strict_stops_the_account_whose_processes_share_a_connection_and_only_it() {
    let scratch = Scratch::new();
    let database = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = database.local_addr().unwrap().port();
    let plexer = start(&scratch, port, "strict");
    let stopped = |e: &Event| e.has("stopped_by", "audit") && e.has("account", "forky");
    wait_until(
        "the audit stops forky",
        || find(&plexer.log(), stopped).is_some(),
        Duration::from_secs(15),
    );
    let log = plexer.log();
    let finding = find(&log, stopped).unwrap().text("finding").unwrap();
    assert!(finding.contains("is shared by pids"), "{log}");
    assert!(finding.contains(&format!("127.0.0.1:{port}")), "{log}");
    let (response, _) = plexer.get(Some(&plexer.cookie("forky")), "/");
    assert_eq!(response.status(), Some("503 Service Unavailable"));
    assert!(
        response.body_text().contains("is shared by pids"),
        "{}",
        response.body_text()
    );
    assert_eq!(plexer.account_of(Some(&plexer.cookie("bob"))), "bob");
    let listed = plexer.accounts(&["list"]).stdout_text();
    assert!(listed.contains("stopped:"), "{listed}");
}

#[test]
fn warn_logs_the_shared_connection_and_keeps_the_account() {
    let scratch = Scratch::new();
    let database = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = database.local_addr().unwrap().port();
    let plexer = start(&scratch, port, "warn");
    let warned = |e: &Event| e.has("audit", "warn") && e.has("account", "forky");
    wait_until(
        "the audit warns",
        || find(&plexer.log(), warned).is_some(),
        Duration::from_secs(15),
    );
    let finding = find(&plexer.log(), warned)
        .unwrap()
        .text("finding")
        .unwrap();
    assert!(finding.contains(&format!("127.0.0.1:{port}")), "{finding}");
    let stopped = |e: &Event| e.has("stopped_by", "audit");
    assert!(find(&plexer.log(), stopped).is_none(), "{}", plexer.log());
    let listed = plexer.accounts(&["list"]).stdout_text();
    assert!(!listed.contains("stopped:"), "{listed}");
}
