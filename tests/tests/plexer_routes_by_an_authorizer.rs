//! `route.by: authorizer`: plexer asks the app of `authorizer.account` in FastCGI's AUTHORIZER
//! role (spec §6.3) and routes by its answer. `hello` answers as an authorizer by its cookie
//! `hello_session=ACCOUNT[:USER]` (examples/hello/main.rs).

use std::time::{Duration, Instant};

use plexer_tests::hello::{Hello, Listen};
use plexer_tests::log_events::find;
use plexer_tests::{PlexerServe, Scratch, ServeSetup};

const ACCOUNTS: &[(&str, &str)] = &[
    ("login", "{}"),
    ("auth", "{}"),
    ("bob", "users: [bob]"),
    ("sue", "users: [sue]"),
];

fn with_authorizer(scratch: &Scratch, authorizer: &str) -> PlexerServe {
    let extra = format!(
        "login: {{ account: login }}\nroute: {{ by: authorizer }}\nauthorizer: {authorizer}\n"
    );
    PlexerServe::start(
        scratch,
        ServeSetup {
            accounts: ACCOUNTS,
            config_extra: &extra,
            args: &["--log-format", "json"],
            ..ServeSetup::default()
        },
    )
}

fn authorizer_stats(plexer: &PlexerServe) -> serde_json::Value {
    plexer.status_json()["authorizer"].clone()
}

#[test]
fn an_authorizers_200_routes_to_its_account_with_its_user_and_its_variables() {
    let scratch = Scratch::new();
    let plexer = with_authorizer(&scratch, "{ account: auth }");
    let (response, answer) =
        plexer.get(Some("hello_session=bob:alice.smith@example.org"), "/notes");
    assert_eq!(answer.get("account"), "bob", "{response:?}");
    assert_eq!(answer.get("user"), "alice.smith@example.org");
    assert!(
        answer.fields.contains_key("hello_authorized_by"),
        "an ordinary variable reaches the app as a param: {:?}",
        answer.fields
    );
    for forged in ["http_x_forged", "plexer_secret"] {
        assert!(
            !answer.fields.contains_key(forged),
            "{forged} is dropped: {:?}",
            answer.fields
        );
    }
    let log = plexer.log();
    assert!(
        find(&log, |e| e
            .text("dropped")
            .is_some_and(|d| d.contains("HTTP_X_FORGED")))
        .is_some(),
        "the drop is logged, naming the variable"
    );
    // The user need not be in the account's users: the authorizer is trusted.
    let (_, answer) = plexer.get(Some("hello_session=sue:nobody-listed"), "/");
    assert_eq!(
        (answer.get("account"), answer.get("user")),
        ("sue", "nobody-listed")
    );
}

#[test]
fn an_authorizers_denials_reach_the_client_as_written() {
    let scratch = Scratch::new();
    let plexer = with_authorizer(&scratch, "{ account: auth }");
    let (redirect, _) = plexer.get(None, "/notes");
    assert_eq!(redirect.status(), Some("302 Found"), "{redirect:?}");
    assert_eq!(redirect.header("Location"), Some("/login"));
    // A 200 naming no account goes where a request without a valid cookie goes.
    let (_, answer) = plexer.get(None, "/login");
    assert_eq!(answer.get("account"), "login");
    let (unauthorized, _) = plexer.get(Some("hello_session=bob"), "/x?deny=401");
    assert_eq!(unauthorized.status(), Some("401 Unauthorized"));
    assert_eq!(
        unauthorized.header("WWW-Authenticate"),
        Some("Basic realm=\"hello\"")
    );
    assert_eq!(unauthorized.body_text(), "sign in\n");
    assert!(unauthorized.header("Variable-PLEXER_ACCOUNT").is_none());
}

#[test]
fn the_cache_keeps_a_200_for_its_ttl_and_never_a_denial() {
    let scratch = Scratch::new();
    let plexer = with_authorizer(
        &scratch,
        "{ account: auth, cache: { cookie: hello_session, ttl: 2s } }",
    );
    for _ in 0..3 {
        assert_eq!(plexer.account_of(Some("hello_session=bob")), "bob");
    }
    let stats = authorizer_stats(&plexer);
    assert_eq!(
        (stats["asked"].as_u64(), stats["cache_hits"].as_u64()),
        (Some(1), Some(2)),
        "{stats}"
    );
    // A denial is asked again every time: a user who signs in is not sent back for `ttl`.
    let (denied, _) = plexer.get(Some("hello_session=sue"), "/?deny=401");
    assert_eq!(denied.status(), Some("401 Unauthorized"));
    assert_eq!(plexer.account_of(Some("hello_session=sue")), "sue");
    assert_eq!(authorizer_stats(&plexer)["asked"].as_u64(), Some(3));
    // Without the cookie nothing is kept.
    plexer.get(None, "/login");
    plexer.get(None, "/login");
    assert_eq!(authorizer_stats(&plexer)["asked"].as_u64(), Some(5));
    // Past ttl the authorizer is asked again.
    std::thread::sleep(Duration::from_millis(2100));
    assert_eq!(plexer.account_of(Some("hello_session=bob")), "bob");
    let stats = authorizer_stats(&plexer);
    assert_eq!(stats["asked"].as_u64(), Some(6), "{stats}");
}

#[test]
fn an_unknown_account_gets_a_403_and_a_log_line_naming_it() {
    let scratch = Scratch::new();
    let plexer = with_authorizer(&scratch, "{ account: auth }");
    let (response, _) = plexer.get(Some("hello_session=carol"), "/");
    assert_eq!(response.status(), Some("403 Forbidden"));
    let log = plexer.log();
    assert!(
        find(&log, |e| e.has("named", "carol")).is_some(),
        "the log names it: {log}"
    );
}

#[test]
fn an_authorizer_too_slow_or_answering_garbage_gets_a_503_or_502_never_an_account() {
    let scratch = Scratch::new();
    let plexer = with_authorizer(&scratch, "{ account: auth, timeout: 1s }");
    let started = Instant::now();
    let (slow, _) = plexer.get(Some("hello_session=bob"), "/?sleep=3000");
    assert!(
        slow.status().is_some_and(|s| s.starts_with("503")),
        "{slow:?}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "at authorizer.timeout"
    );
    let (garbage, _) = plexer.get(Some("hello_session=bob"), "/?garbage=1");
    assert!(
        garbage.status().is_some_and(|s| s.starts_with("502")),
        "{garbage:?}"
    );
    assert_eq!(authorizer_stats(&plexer)["failures"].as_u64(), Some(2));
}

#[test]
fn an_authorizer_killed_mid_load_gives_503s_and_nothing_is_routed_elsewhere() {
    let scratch = Scratch::new();
    let authorizer = Hello::builder().listen(Listen::SocketUnix).start(&scratch);
    let socket = authorizer
        .addr()
        .unix_path()
        .expect("a unix socket")
        .to_owned();
    let auth = format!("socket: unix:{}", socket.display());
    let accounts = [
        ACCOUNTS[0],
        ("auth", auth.as_str()),
        ACCOUNTS[2],
        ACCOUNTS[3],
    ];
    let plexer = PlexerServe::start(
        &scratch,
        ServeSetup {
            accounts: &accounts,
            config_extra: "login: { account: login }\nroute: { by: authorizer }\n\
                           authorizer: { account: auth, timeout: 2s }\n",
            ..ServeSetup::default()
        },
    );
    let mut authorizer = Some(authorizer);
    let (mut served, mut unavailable) = (0, 0);
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(3) {
        if started.elapsed() > Duration::from_secs(1) {
            drop(authorizer.take()); // killed and reaped
        }
        let (response, answer) = plexer.get(Some("hello_session=bob"), "/load");
        match response.status() {
            Some(s) if s.starts_with("503") => unavailable += 1,
            _ => {
                assert_eq!(answer.get("account"), "bob", "{response:?}");
                served += 1;
            }
        }
    }
    assert!(
        served > 0 && unavailable > 0,
        "served {served}, 503 {unavailable}"
    );
    let failures = authorizer_stats(&plexer)["failures"].as_u64().unwrap_or(0);
    assert_eq!(
        failures, unavailable,
        "each 503 is an authorizer failure, counted"
    );
}
