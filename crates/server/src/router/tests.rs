use std::path::Path;

use super::*;
use crate::config::PoolKeys;
use crate::registry::{AccountRules, Registry};
use crate::user::UserName;

const KEY: &str = "0123456789abcdef0123456789abcdef-router-key";
const NOW: u64 = 1_000_000;

fn config(extra: &str) -> Config {
    let text = format!(
        "listen: unix:/run/p.sock\naccounts_dir: /a\nruntime_dir: /r\nsecret_file: /s\n{extra}"
    );
    Config::parse(&text, Path::new("plexer.yaml")).unwrap()
}

fn registry() -> Registry {
    let template = PoolKeys {
        command: Some(vec!["/bin/true".into()]),
        ..PoolKeys::default()
    };
    let mut registry = Registry::default();
    for (name, text) in [
        ("bob", "users: [bob, b@example.com]"),
        ("sue", "users: [sue]"),
        ("login", "{}"),
    ] {
        let file = format!("/a/{name}.yaml");
        registry
            .insert(
                Registry::account(
                    Path::new(&file),
                    text,
                    &AccountRules::with_template(template.clone()),
                )
                .unwrap(),
            )
            .unwrap();
    }
    registry
}

fn keys() -> Keys {
    Keys::parse(KEY, "secret").unwrap()
}

fn params(pairs: &[(&str, &str)]) -> Params {
    pairs
        .iter()
        .map(|(n, v)| (n.to_string(), v.to_string()))
        .collect()
}

fn decide(config: &Config, pairs: &[(&str, &str)]) -> Decision {
    let mut params = params(pairs);
    strip_claims(&mut params);
    route(config, &keys(), &registry(), &params, NOW)
}

fn account(name: &str) -> Decision {
    Decision::Account {
        account: AccountName::new(name).unwrap(),
        user: None,
    }
}

fn login() -> Decision {
    Decision::Login {
        account: AccountName::new("login").unwrap(),
    }
}

fn cookie(name: &str, expiry: u64) -> String {
    format!(
        "plexer_account={}",
        keys().sign(&AccountName::new(name).unwrap(), None, expiry)
    )
}

/// A four-part routing cookie of account `name` for `user`.
fn cookie_for(name: &str, user: &str, expiry: u64) -> String {
    let user = UserName::new(user).unwrap();
    format!(
        "plexer_account={}",
        keys().sign(&AccountName::new(name).unwrap(), Some(&user), expiry)
    )
}

fn account_as(name: &str, user: &str) -> Decision {
    Decision::Account {
        account: AccountName::new(name).unwrap(),
        user: Some(user.into()),
    }
}

#[test]
fn claims_in_params_are_dropped_whatever_their_case() {
    let mut params = params(&[
        ("PLEXER_ACCOUNT", "bob"),
        ("plexer_user", "bob"),
        ("HTTP_X_PLEXER_ACCOUNT", "bob"),
        ("Http_X_Plexer_User", "bob"),
        ("HTTP_X_PLEXERATOR", "kept"),
        ("REQUEST_URI", "/"),
    ]);
    assert_eq!(strip_claims(&mut params), 4);
    let names: Vec<&[u8]> = params.iter().map(|(n, _)| n).collect();
    assert_eq!(names, [&b"HTTP_X_PLEXERATOR"[..], b"REQUEST_URI"]);
}

#[test]
fn a_valid_cookie_routes_to_its_account() {
    let config = config("login: { account: login }");
    let cookie = cookie("bob", NOW + 60);
    assert_eq!(
        decide(&config, &[("HTTP_COOKIE", &cookie), ("REQUEST_URI", "/x")]),
        account("bob")
    );
}

#[test]
fn plexer_user_comes_only_from_a_valid_four_part_cookie() {
    let config = config("login: { account: login }");
    let at = |header: &str| decide(&config, &[("HTTP_COOKIE", header), ("REQUEST_URI", "/x")]);
    for user in ["bob", "b@example.com", "Zoë Smith", "a.b|c"] {
        assert_eq!(
            at(&cookie_for("bob", user, NOW + 60)),
            account_as("bob", user)
        );
    }
    // The three-part form still routes, and names no user.
    assert_eq!(at(&cookie("bob", NOW + 60)), account("bob"));
    // A claim beside a three-part cookie names no user either: claims are stripped first.
    assert_eq!(
        decide(
            &config,
            &[
                ("HTTP_COOKIE", &cookie("bob", NOW + 60)),
                ("PLEXER_USER", "admin"),
                ("HTTP_X_PLEXER_USER", "admin"),
            ]
        ),
        account("bob")
    );
    // The cookie's user is not checked against `users`: it is what the login app said.
    assert_eq!(
        at(&cookie_for("sue", "bob", NOW + 60)),
        account_as("sue", "bob")
    );
    // A four-part cookie with another user swapped in, or expired, or forged, routes nowhere.
    let good = cookie_for("bob", "bob", NOW + 60);
    let [account_part, expiry, _, signature]: [&str; 4] = good
        .strip_prefix("plexer_account=")
        .unwrap()
        .split('.')
        .collect::<Vec<_>>()
        .try_into()
        .unwrap();
    let admin = base64::Engine::encode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, "admin");
    for header in [
        format!("plexer_account={account_part}.{expiry}.{admin}.{signature}"),
        format!("plexer_account={account_part}.{expiry}.{signature}"),
        cookie_for("bob", "bob", NOW),
        format!(
            "plexer_account={}",
            Keys::parse(&"z".repeat(40), "other").unwrap().sign(
                &AccountName::new("bob").unwrap(),
                Some(&UserName::new("bob").unwrap()),
                NOW + 60
            )
        ),
    ] {
        assert_eq!(at(&header), login(), "{header}");
    }
}

#[test]
fn a_cookie_expiring_further_ahead_than_max_age_goes_to_login_in_both_forms() {
    // route.max_age 1h: an expiry up to 1h and 5 minutes ahead is accepted, no further.
    let config = config("login: { account: login }\nroute: { max_age: 1h }");
    let at = |header: &str| decide(&config, &[("HTTP_COOKIE", header)]);
    let limit = NOW + 3600 + 300;
    assert_eq!(at(&cookie("bob", limit)), account("bob"));
    assert_eq!(
        at(&cookie_for("bob", "bob", limit)),
        account_as("bob", "bob")
    );
    assert_eq!(at(&cookie("bob", limit + 1)), login());
    assert_eq!(at(&cookie_for("bob", "bob", limit + 1)), login());
    assert_eq!(at(&cookie("bob", u64::MAX)), login());
}

#[test]
fn no_bad_cookie_ever_reaches_an_account() {
    let config = config("login: { account: login }");
    let good = keys().sign(&AccountName::new("bob").unwrap(), None, NOW + 60);
    let signature = good.rsplit('.').next().unwrap();
    let other_key = Keys::parse(&"z".repeat(40), "other").unwrap().sign(
        &AccountName::new("bob").unwrap(),
        None,
        NOW + 60,
    );
    for header in [
        String::new(),
        "plexer_account=bob".into(),
        format!("plexer_account=sue.{}.{signature}", NOW + 60),
        format!("plexer_account={other_key}"),
        cookie("bob", NOW),
        cookie("ghost", NOW + 60),
        format!("plexer_account={good}; plexer_account={good}"),
        format!("other_cookie={good}"),
    ] {
        assert_eq!(
            decide(&config, &[("HTTP_COOKIE", &header)]),
            login(),
            "{header}"
        );
    }
    // A header or a param claiming an account changes nothing.
    assert_eq!(
        decide(
            &config,
            &[("HTTP_X_PLEXER_ACCOUNT", "bob"), ("PLEXER_ACCOUNT", "bob")]
        ),
        login()
    );
}

#[test]
fn without_a_login_app_a_redirect_or_a_403() {
    assert_eq!(
        decide(&config("login: { redirect: /signin }"), &[]),
        Decision::Redirect("/signin".into())
    );
    assert_eq!(decide(&config(""), &[]), Decision::Forbidden);
}

#[test]
fn remote_user_host_and_path_prefix_route_only_to_known_accounts() {
    let by_user = config("route: { by: remote_user }");
    assert_eq!(
        decide(&by_user, &[("REMOTE_USER", "b@example.com")]),
        Decision::Account {
            account: AccountName::new("bob").unwrap(),
            user: Some("b@example.com".into())
        }
    );
    assert_eq!(
        decide(&by_user, &[("REMOTE_USER", "mallory")]),
        Decision::Forbidden
    );

    let by_host = config("route: { by: host }");
    assert_eq!(
        decide(&by_host, &[("HTTP_HOST", "Sue.example.com:8080")]),
        account("sue")
    );
    assert_eq!(
        decide(&by_host, &[("HTTP_HOST", "ghost.example.com")]),
        Decision::Forbidden
    );

    let by_path = config("route: { by: path_prefix }");
    assert_eq!(
        decide(&by_path, &[("DOCUMENT_URI", "/bob/page")]),
        account("bob")
    );
    assert_eq!(
        decide(&by_path, &[("DOCUMENT_URI", "/../etc/passwd")]),
        Decision::Forbidden
    );
    assert_eq!(
        decide(&by_path, &[("DOCUMENT_URI", "/ghost/x")]),
        Decision::Forbidden
    );
}

#[test]
fn status_and_ping_are_answered_by_plexer_and_status_only_for_allowed_clients() {
    let config = config("login: { account: login }");
    assert_eq!(
        decide(&config, &[("DOCUMENT_URI", "/plexer-ping")]),
        Decision::Ping
    );
    assert_eq!(
        decide(
            &config,
            &[
                ("DOCUMENT_URI", "/plexer-status"),
                ("QUERY_STRING", "json&full"),
                ("REMOTE_ADDR", "127.0.0.1")
            ]
        ),
        Decision::Status {
            format: StatusFormat::Json,
            full: true,
            query: "json&full".into()
        }
    );
    assert_eq!(
        decide(
            &config,
            &[
                ("REQUEST_URI", "/plexer-status?html"),
                ("REMOTE_ADDR", "::1")
            ]
        ),
        Decision::Status {
            format: StatusFormat::Html,
            full: false,
            query: "html".into()
        }
    );
    assert_eq!(
        decide(
            &config,
            &[
                ("DOCUMENT_URI", "/plexer-status"),
                ("REMOTE_ADDR", "10.1.2.3")
            ]
        ),
        Decision::StatusForbidden
    );
    assert_eq!(
        decide(&config, &[("DOCUMENT_URI", "/plexer-status")]),
        Decision::StatusForbidden
    );
}

#[test]
fn bytes_that_are_not_utf8_never_move_a_request_elsewhere() {
    let with_login = config("login: { account: login }");
    // Another cookie's odd bytes do not hide the routing cookie.
    let mut with_cookie = params(&[("DOCUMENT_URI", "/x")]);
    let mut header = b"theme=\xff\xfe; ".to_vec();
    header.extend_from_slice(cookie("bob", NOW + 60).as_bytes());
    with_cookie.push("HTTP_COOKIE", header);
    assert_eq!(
        route(&with_login, &keys(), &registry(), &with_cookie, NOW),
        account("bob")
    );
    // A decoded path that is not UTF-8 matches no account, not the raw REQUEST_URI's.
    let by_path = config("route: { by: path_prefix }\nlogin: { account: login }");
    let mut params = params(&[("REQUEST_URI", "/bob/x%FF")]);
    params.push("DOCUMENT_URI", b"/bob/x\xff".to_vec());
    assert_eq!(route(&by_path, &keys(), &registry(), &params, NOW), login());
}

#[test]
fn a_raw_uri_with_dot_segments_matches_no_account_and_a_decoded_question_mark_is_path() {
    let by_path = config("route: { by: path_prefix }\nlogin: { account: login }");
    // Without DOCUMENT_URI the raw REQUEST_URI is read; /sue/../bob/x is bob's to the web
    // server, so it is no one's here.
    assert_eq!(
        decide(&by_path, &[("REQUEST_URI", "/sue/../bob/x")]),
        login()
    );
    assert_eq!(
        decide(&by_path, &[("REQUEST_URI", "/bob/x?y=1")]),
        account("bob")
    );
    let with_login = config("login: { account: login }");
    assert_eq!(
        decide(&with_login, &[("DOCUMENT_URI", "/plexer-ping?x")]),
        login(),
        "%3F in the path is not a query"
    );
}

#[test]
fn host_routing_follows_the_name_the_web_server_matched() {
    let by_host = config("route: { by: host }");
    // An absolute-form request line chose bob's server block; the Host header says sue.
    let both = [
        ("SERVER_NAME", "bob.example.com"),
        ("HTTP_HOST", "sue.example.com"),
    ];
    assert_eq!(decide(&by_host, &both), account("bob"));
    // A catch-all block names no host: the Host header does.
    for catch_all in ["_", "*.example.com", ""] {
        let params = [("SERVER_NAME", catch_all), ("HTTP_HOST", "sue.example.com")];
        assert_eq!(decide(&by_host, &params), account("sue"), "{catch_all:?}");
    }
    let v6 = [("HTTP_HOST", "[::1]:8080")];
    assert_eq!(decide(&by_host, &v6), Decision::Forbidden);
}

#[test]
fn path_prefix_decodes_a_raw_path_once_and_refuses_what_stays_ambiguous() {
    let by_path = config("route: { by: path_prefix }");
    let raw = |uri: &'static str| decide(&by_path, &[("REQUEST_URI", uri)]);
    assert_eq!(raw("/%62ob/x?y=1"), account("bob"));
    // Dot segments and slashes in disguise: the web server may have applied another path.
    for ambiguous in [
        "/sue/%2e%2e/bob/x",
        "/sue/%2E./bob",
        "/bob%2fsue/x",
        "/bob%5csue/x",
        "/%zzbob/x",
        "/%+ab/x",
        "/bob/%",
        "/%ff/x",
    ] {
        assert_eq!(raw(ambiguous), Decision::Forbidden, "{ambiguous}");
    }
    // The web server's DOCUMENT_URI is decoded already: never decoded twice.
    let once = [("DOCUMENT_URI", "/%62ob/x")];
    assert_eq!(decide(&by_path, &once), Decision::Forbidden);
}

#[test]
fn a_trusted_param_sent_twice_is_refused_whoever_would_win() {
    let by_user = config("route: { by: remote_user }");
    for name in ["REMOTE_USER", "REMOTE_ADDR", "HTTP_COOKIE"] {
        let params = [(name, "b@example.com"), (name, "mallory")];
        assert_eq!(
            decide(&by_user, &params),
            Decision::Duplicated(name),
            "{name}"
        );
    }
}

#[test]
fn with_status_listen_the_page_is_never_opened_by_a_param_on_the_listen_socket() {
    let config = config("login: { account: login }\nstatus_listen: unix:/run/status.sock");
    let from_loopback = [
        ("DOCUMENT_URI", "/plexer-status"),
        ("QUERY_STRING", "json"),
        ("REMOTE_ADDR", "127.0.0.1"),
    ];
    assert_eq!(
        decide(&config, &from_loopback),
        Decision::StatusForbidden,
        "REMOTE_ADDR, which a tenant reaching listen: could send, opens nothing"
    );
    // On the status socket whoever connects sees the page, whatever REMOTE_ADDR says.
    let on_status = |pairs: &[(&str, &str)]| route_status_socket(&config, &params(pairs));
    assert_eq!(
        on_status(&[("DOCUMENT_URI", "/plexer-status"), ("QUERY_STRING", "json")]),
        Decision::Status {
            format: StatusFormat::Json,
            full: false,
            query: "json".into()
        }
    );
    assert_eq!(
        on_status(&[("DOCUMENT_URI", "/plexer-ping")]),
        Decision::Ping
    );
    // Nothing else is served there: it never reaches an account.
    assert_eq!(
        on_status(&[
            ("DOCUMENT_URI", "/x"),
            ("HTTP_COOKIE", "plexer_account=bob")
        ]),
        Decision::Forbidden
    );
}

#[test]
fn the_authorizers_200_routes_to_a_known_account_only() {
    use crate::authorizer::Allowed;
    let config = config(
        "login: { account: login }\nroute: { by: authorizer }\nauthorizer: { account: login }",
    );
    assert_eq!(
        decide(
            &config,
            &[("DOCUMENT_URI", "/x"), ("HTTP_COOKIE", "anything")]
        ),
        Decision::AskAuthorizer,
        "nothing in the request routes it but the authorizer"
    );
    let allowed = |account: Option<&str>, user: Option<&str>| Allowed {
        account: account.map(str::to_owned),
        user: user.map(str::to_owned),
        params: Vec::new(),
        dropped: Vec::new(),
    };
    let registry = registry();
    assert_eq!(
        after_authorizer(
            &config,
            &registry,
            &allowed(Some("bob"), Some("not-in-users"))
        ),
        Decision::Account {
            account: AccountName::new("bob").unwrap(),
            user: Some("not-in-users".into())
        },
        "the user need not be in the account's users: the authorizer is trusted"
    );
    assert_eq!(
        after_authorizer(&config, &registry, &allowed(None, None)),
        Decision::Login {
            account: AccountName::new("login").unwrap()
        }
    );
    for named in ["carol", "../etc", "Bob"] {
        assert_eq!(
            after_authorizer(&config, &registry, &allowed(Some(named), None)),
            Decision::NoSuchAccount(named.into())
        );
    }
}
