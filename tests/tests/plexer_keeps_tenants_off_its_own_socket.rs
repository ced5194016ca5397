//! A tenant whose workers could connect to plexer's `listen:` socket could speak FastCGI as the
//! web server does and set any param. plexer says so at start, in `--check` and on the status
//! page; where the route trusts such a param (`remote_user`, `host`, `path_prefix`) it refuses
//! the account unless `allow_shared_user: true`. With `status_listen` the status page has a
//! socket of its own, and no `REMOTE_ADDR` sent to `listen:` opens it.

use std::time::Duration;

use plexer_tests::process::run;
use plexer_tests::{Addr, CgiResponse, PlexerServe, Scratch, ServeSetup, build, wire};

/// Accounts whose workers run as `nobody`, which the test config's `listen_mode: "0666"` lets
/// connect to the listen socket.
const AS_NOBODY: &str = "  user: nobody\n  group: nogroup\n";

fn check(scratch: &Scratch, config_extra: &str) -> plexer_tests::Finished {
    let setup = ServeSetup {
        config_extra,
        pool_extra: AS_NOBODY,
        ..ServeSetup::default()
    };
    let files = plexer_tests::serve::ServeFiles::write(scratch, &setup);
    let mut command = build::serve_command(build::plexer());
    command.arg("-c").arg(&files.config).arg("--check");
    run(&mut command, b"", Duration::from_secs(20))
}

#[test]
fn check_refuses_a_tenant_that_could_send_remote_user_itself_unless_allowed() {
    let scratch = Scratch::new();
    let refused = check(
        &scratch,
        "login: { account: login }\nroute: { by: remote_user }\n",
    );
    let said = format!("{}{}", refused.stdout_text(), refused.stderr_text());
    assert!(!refused.status.success(), "refused: {said}");
    assert!(said.contains("REMOTE_USER"), "names the param: {said}");
    assert!(
        said.contains("user: \"{account}\""),
        "names the fix: {said}"
    );
    assert!(
        said.contains("allow_shared_user"),
        "names the way out: {said}"
    );

    let scratch = Scratch::new();
    let allowed = check(
        &scratch,
        "login: { account: login }\nroute: { by: remote_user }\nallow_shared_user: true\n",
    );
    let said = format!("{}{}", allowed.stdout_text(), allowed.stderr_text());
    assert!(allowed.status.success(), "allowed when written: {said}");
    assert!(
        said.contains("could connect to plexer"),
        "and still warned about: {said}"
    );
}

#[test]
fn a_tenant_that_could_reach_the_socket_is_named_on_the_status_page() {
    let scratch = Scratch::new();
    let plexer = PlexerServe::start(
        &scratch,
        ServeSetup {
            pool_extra: AS_NOBODY,
            ..ServeSetup::default()
        },
    );
    let status = plexer.status_json();
    let bob = status["accounts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["account"] == "bob")
        .expect("bob on the status page");
    let warning = bob["warning"].as_str().unwrap_or_default();
    assert!(
        warning.contains("every user connect") && warning.contains("status_listen"),
        "{status:#}"
    );
    assert!(plexer.log().contains("could connect to plexer"));
    // The cookie cannot be forged, so bob serves on.
    assert_eq!(plexer.account_of(Some(&plexer.cookie("bob"))), "bob");
}

fn status_request(socket: &std::path::Path, remote_addr: &str) -> CgiResponse {
    let mut conn = Addr::Unix(socket.to_owned())
        .connect(Duration::from_secs(5))
        .unwrap();
    let params = [
        ("REQUEST_METHOD", "GET"),
        ("REQUEST_URI", "/plexer-status?json"),
        ("DOCUMENT_URI", "/plexer-status"),
        ("QUERY_STRING", "json"),
        ("REMOTE_ADDR", remote_addr),
    ];
    let raw = wire::exchange(&mut conn, &params, b"").unwrap();
    CgiResponse::parse(&raw.stdout)
}

#[test]
fn with_status_listen_no_remote_addr_sent_to_listen_opens_the_status_page() {
    let scratch = Scratch::new();
    let status_socket = scratch.join("plexer").join("status.sock");
    let extra = format!(
        "login: {{ account: login }}\nstatus_listen: unix:{}\nstatus_listen_mode: \"0600\"\n",
        status_socket.display()
    );
    let plexer = PlexerServe::start(
        &scratch,
        ServeSetup {
            config_extra: &extra,
            ..ServeSetup::default()
        },
    );
    let forged = status_request(&plexer.socket, "127.0.0.1");
    assert_eq!(forged.status(), Some("403 Forbidden"), "{forged:?}");
    let own = status_request(&status_socket, "203.0.113.9");
    assert_eq!(own.status(), Some("200 OK"), "{}", own.body_text());
    assert!(own.body_text().contains("\"accounts\""));
    let mode = std::os::unix::fs::PermissionsExt::mode(
        &std::fs::metadata(&status_socket).unwrap().permissions(),
    );
    assert_eq!(mode & 0o777, 0o600, "status_listen_mode applies");
}
