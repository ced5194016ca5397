//! The user in the routing cookie (CONTRACT.md, "Who is signed in"), behind a real nginx and a
//! real lighttpd, with `hello` as every app (it prints `user:` from `PLEXER_USER`): the login
//! app answering `X-Plexer-User` gets the client the four-part cookie, and the account's app
//! then sees `PLEXER_USER` on every request of it; `plexer cookie sign --user` makes one too,
//! for any user name; the three-part cookie still routes, with no user; a cookie whose expiry
//! lies further ahead than `route.max_age` allows, or whose user was swapped, goes to the login
//! app; no request header can name a user.

use plexer_tests::http::{self, HttpResponse};
use plexer_tests::site::Front;
use plexer_tests::{HelloAnswer, Site};

fn get<F: Front>(site: &Site<F>, path: &str, cookie: Option<&str>) -> (HttpResponse, HelloAnswer) {
    let headers: Vec<(&str, &str)> = cookie.iter().map(|c| ("Cookie", *c)).collect();
    let response = http::get(site.port(), path, &headers);
    assert_eq!(response.status, 200, "GET {path}: {}", response.text());
    let answer = HelloAnswer::parse(&response.body);
    (response, answer)
}

/// (account, user) as the app saw them.
fn seen<F: Front>(site: &Site<F>, cookie: &str) -> (String, String) {
    let (_, answer) = get(site, "/notes", Some(cookie));
    (
        answer.get("account").to_owned(),
        answer.get("user").to_owned(),
    )
}

fn who(account: &str, user: &str) -> (String, String) {
    (account.to_owned(), user.to_owned())
}

fn signing_in_by_user_lets_the_app_see_the_user<F: Front>(site: &Site<F>) {
    let (response, answer) = get(site, "/signin?login=bob", None);
    assert_eq!((answer.get("account"), answer.get("user")), ("login", "-"));
    assert_eq!(response.header("X-Plexer-User"), None, "plexer removes it");
    let set_cookie = response.header("Set-Cookie").expect("a routing cookie");
    let cookie = set_cookie.split(';').next().unwrap().to_owned();
    let value = cookie.strip_prefix("plexer_account=").unwrap();
    let parts: Vec<&str> = value.split('.').collect();
    assert_eq!(parts.len(), 4, "ACCOUNT.EXPIRY.USER.SIGNATURE: {value}");
    assert_eq!(
        (parts[0], parts[2]),
        ("bob", "Ym9i"),
        "USER is base64url of bob"
    );
    for _ in 0..3 {
        assert_eq!(
            seen(site, &cookie),
            who("bob", "bob"),
            "on every request of it"
        );
    }

    // Any user name `plexer cookie sign --user` takes: dots, @, spaces, non-ASCII.
    let odd = "Zoë b.o@example.com";
    let signed = site.plexer.cookie_for_user("sue", odd);
    assert_eq!(seen(site, &signed), who("sue", odd));

    // The three-part cookie still routes, with no user; a header naming one changes nothing.
    let three = site.plexer.cookie("bob");
    assert_eq!(three.split('.').count(), 3, "{three}");
    assert_eq!(seen(site, &three), who("bob", "-"));
    let headers = [("Cookie", three.as_str()), ("X-Plexer-User", "admin")];
    let answer = HelloAnswer::parse(&http::get(site.port(), "/", &headers).body);
    assert_eq!((answer.get("account"), answer.get("user")), ("bob", "-"));
}

fn cookies_past_max_age_or_with_a_swapped_user_go_to_login<F: Front>(site: &Site<F>) {
    // Signed with plexer's own key, under a route.max_age of 30 days (plexer's is 12 h).
    for user in [None, Some("bob")] {
        let far = site.plexer.cookie_with_max_age("bob", user, "30d");
        assert_eq!(seen(site, &far), who("login", "-"), "{user:?}: {far}");
    }
    // 12 h and 1 minute is inside route.max_age and the 5 minutes of leeway.
    let near = site.plexer.cookie_with_max_age("bob", Some("bob"), "721m");
    assert_eq!(seen(site, &near), who("bob", "bob"));

    let good = site.plexer.cookie_for_user("bob", "bob");
    let parts: Vec<&str> = good.split('.').collect();
    let [account, expiry, _, signature] = parts[..] else {
        panic!("four parts: {good}");
    };
    // "YWRtaW4" is base64url of "admin".
    let swapped = format!("{account}.{expiry}.YWRtaW4.{signature}");
    let dropped = format!("{account}.{expiry}.{signature}");
    for cookie in [swapped, dropped] {
        assert_eq!(seen(site, &cookie), who("login", "-"), "{cookie}");
    }
}

#[test]
fn signing_in_by_user_lets_the_app_see_the_user_behind_nginx() {
    signing_in_by_user_lets_the_app_see_the_user(&Site::behind_nginx());
}

#[test]
fn signing_in_by_user_lets_the_app_see_the_user_behind_lighttpd() {
    signing_in_by_user_lets_the_app_see_the_user(&Site::behind_lighttpd());
}

#[test]
fn cookies_past_max_age_or_with_a_swapped_user_go_to_login_behind_nginx() {
    cookies_past_max_age_or_with_a_swapped_user_go_to_login(&Site::behind_nginx());
}

#[test]
fn cookies_past_max_age_or_with_a_swapped_user_go_to_login_behind_lighttpd() {
    cookies_past_max_age_or_with_a_swapped_user_go_to_login(&Site::behind_lighttpd());
}
