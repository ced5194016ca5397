//! The access log: `access_log: FILE` gathers lines and writes them at least every second and
//! at exit, in nginx's shape; SIGUSR1 reopens the file (logrotate); `access_log: off` writes
//! none.

use std::time::Duration;

use nix::sys::signal::Signal;
use plexer_tests::{PlexerServe, Scratch, ServeSetup, wait_until};

fn lines(path: &std::path::Path) -> Vec<String> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(str::to_owned)
        .collect()
}

#[test]
fn a_file_gets_every_request_reopens_on_sigusr1_and_is_flushed_at_exit() {
    let scratch = Scratch::new();
    let path = scratch.join("access.log");
    let extra = format!(
        "login: {{ account: login }}\naccess_log: {}\n",
        path.display()
    );
    let mut plexer = PlexerServe::start(
        &scratch,
        ServeSetup {
            accounts: &[("login", "{}"), ("bob", "users: [bob]")],
            config_extra: &extra,
            ..ServeSetup::default()
        },
    );
    let bob = plexer.cookie("bob");
    for uri in ["/a", "/b?x=1", "/c"] {
        plexer.get(Some(&bob), uri);
    }
    wait_until(
        "three lines in the access log",
        || lines(&path).len() == 3,
        Duration::from_secs(5),
    );
    let first = &lines(&path)[0];
    assert!(first.starts_with("127.0.0.1 - - ["), "{first}");
    assert!(first.contains("] \"GET /a HTTP/1.1\" 200 "), "{first}");
    assert!(first.contains(" account=bob worker="), "{first}");

    std::fs::rename(&path, scratch.join("access.log.1")).unwrap();
    plexer.process.signal(Signal::SIGUSR1);
    wait_until(
        "the file reopened",
        || path.exists(),
        Duration::from_secs(5),
    );
    plexer.get(Some(&bob), "/after-rotate");
    plexer.get(Some(&bob), "/last");
    plexer.process.signal(Signal::SIGTERM);
    let exited = plexer.process.wait_exit(Duration::from_secs(10));
    assert_eq!(exited.and_then(|s| s.code()), Some(0));
    let after = lines(&path);
    assert_eq!(after.len(), 2, "{after:?}");
    assert!(
        after[1].contains("\"GET /last HTTP/1.1\""),
        "flushed at exit: {after:?}"
    );
}

#[test]
fn off_writes_no_access_line() {
    let scratch = Scratch::new();
    let plexer = PlexerServe::start(
        &scratch,
        ServeSetup {
            accounts: &[("login", "{}"), ("bob", "users: [bob]")],
            config_extra: "login: { account: login }\naccess_log: off\n",
            args: &["--log-format", "json"],
            ..ServeSetup::default()
        },
    );
    let bob = plexer.cookie("bob");
    plexer.get(Some(&bob), "/quiet");
    std::thread::sleep(Duration::from_millis(1500));
    assert!(!plexer.log().contains("plexer::access"), "{}", plexer.log());
}
