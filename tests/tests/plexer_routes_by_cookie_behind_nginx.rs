//! plexer behind a real nginx (Debian's, `fastcgi_keep_conn on`, upstream keepalive), with
//! three accounts running `hello`: each request lands on its own account's workers, also when
//! requests of different accounts alternate on nginx's kept-alive connections; no valid cookie
//! means the login app; nothing a client sends can claim an account; the login app's choice
//! becomes a signed cookie.

use plexer_tests::http::{self, HttpResponse};
use plexer_tests::{HelloAnswer, Nginx};

type Site = plexer_tests::Site<Nginx>;

fn get(site: &Site, path: &str, headers: &[(&str, &str)]) -> (HttpResponse, HelloAnswer) {
    let response = http::get(site.port(), path, headers);
    let answer = HelloAnswer::parse(&response.body);
    (response, answer)
}

fn account_of(site: &Site, headers: &[(&str, &str)]) -> String {
    let (response, answer) = get(site, "/page", headers);
    assert_eq!(response.status, 200, "{}", response.text());
    answer.get("account").to_owned()
}

#[test]
fn each_request_lands_on_its_own_accounts_workers_even_alternating() {
    let site = Site::behind_nginx();
    let bob = site.plexer.cookie("bob");
    let sue = site.plexer.cookie("sue");
    let mut pids = std::collections::HashMap::new();
    for round in 0..10 {
        for (cookie, account) in [(&bob, "bob"), (&sue, "sue")] {
            let (response, answer) = get(&site, &format!("/r{round}"), &[("Cookie", cookie)]);
            assert_eq!(response.status, 200);
            assert_eq!(answer.get("account"), account, "round {round}");
            assert_eq!(response.header("X-Hello-Account"), Some(account));
            pids.entry(account)
                .or_insert_with(Vec::new)
                .push(answer.pid());
        }
    }
    let bob_pids = &pids["bob"];
    let sue_pids = &pids["sue"];
    assert!(
        bob_pids.iter().all(|p| !sue_pids.contains(p)),
        "no worker serves both accounts"
    );
}

#[test]
fn without_a_valid_cookie_requests_go_to_the_login_app() {
    let site = Site::behind_nginx();
    let good = site.plexer.cookie("bob");
    let value = good.strip_prefix("plexer_account=").unwrap();
    let signature = value.rsplit('.').next().unwrap();
    let expiry = value.split('.').nth(1).unwrap();
    let forged = format!("plexer_account=bob.{expiry}.{}", "A".repeat(43));
    let tampered = format!("plexer_account=sue.{expiry}.{signature}");
    let expired = format!("plexer_account=bob.1.{signature}");
    let unknown = site.plexer.cookie("ghost");
    for headers in [
        vec![],
        vec![("Cookie", forged.as_str())],
        vec![("Cookie", tampered.as_str())],
        vec![("Cookie", expired.as_str())],
        vec![("Cookie", unknown.as_str())],
        vec![("Cookie", "plexer_account=bob")],
        // A header that claims an account reaches nginx as HTTP_X_PLEXER_ACCOUNT: dropped.
        vec![("X-Plexer-Account", "bob"), ("X-Plexer-User", "bob")],
    ] {
        assert_eq!(account_of(&site, &headers), "login", "{headers:?}");
    }
    assert_eq!(account_of(&site, &[("Cookie", good.as_str())]), "bob");
}

#[test]
fn the_login_apps_choice_becomes_a_signed_cookie_that_routes() {
    let site = Site::behind_nginx();
    let (response, answer) = get(&site, "/signin?login=sue", &[]);
    assert_eq!(answer.get("account"), "login");
    assert_eq!(
        response.header("X-Plexer-User"),
        None,
        "plexer removes the login header"
    );
    let set_cookie = response.header("Set-Cookie").expect("a routing cookie");
    assert!(set_cookie.contains("HttpOnly") && set_cookie.contains("SameSite=Lax"));
    let cookie = set_cookie.split(';').next().unwrap().to_owned();
    assert_eq!(account_of(&site, &[("Cookie", &cookie)]), "sue");

    // Another account's app cannot choose an account.
    let bob = site.plexer.cookie("bob");
    let (response, _) = get(&site, "/x?login=sue", &[("Cookie", &bob)]);
    assert_eq!(response.header("Set-Cookie"), None);
    assert_eq!(response.header("X-Plexer-User"), None);

    let (response, _) = get(&site, "/signout?logout=1", &[]);
    assert!(response.header("Set-Cookie").unwrap().contains("Max-Age=0"));
}

#[test]
fn the_status_page_and_ping_are_answered_by_plexer() {
    let site = Site::behind_nginx();
    let bob = site.plexer.cookie("bob");
    get(&site, "/", &[("Cookie", &bob)]);
    let status = http::get(site.port(), "/plexer-status?json&full", &[]);
    assert_eq!(status.status, 200, "{}", status.text());
    assert_eq!(status.header("Content-Type"), Some("application/json"));
    let text = status.text();
    assert!(text.contains("\"account\":\"bob\""), "{text}");
    assert!(text.contains("\"workers\":[{\"pid\":"), "{text}");
    let ping = http::get(site.port(), "/plexer-ping", &[]);
    assert_eq!((ping.status, ping.text().trim()), (200, "pong"));
}
