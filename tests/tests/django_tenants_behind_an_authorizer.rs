//! The seeds' case with FastCGI's own middleware: the Django example on authorizer.yaml
//! (route.by: authorizer) behind a real nginx. Users sign in with Django's ordinary login form
//! and sessions on the auth account; before every request plexer asks the auth app, in the
//! AUTHORIZER role, whose it is, and the request reaches the user's tenant with no plexer cookie
//! at all. Signing out sends them back to the sign-in page.

use plexer_tests::django::{DjangoSite, PASSWORD, account_shown, csrf_token};
use plexer_tests::{Browser, Nginx, Scratch};

const ACME_NOTE: &str = "Acme's plan, known to the authorizer only by alice's session";

/// Follows the authorizer's redirect to the sign-in page and signs in there.
fn sign_in(
    browser: &mut Browser,
    username: &str,
    password: &str,
) -> plexer_tests::http::HttpResponse {
    let home = browser.get("/");
    assert_eq!(home.status, 302, "{}", home.text());
    assert_eq!(home.header("Location"), Some("/login/?next=/"));
    let page = browser.get("/login/?next=/");
    assert_eq!(page.status, 200, "{}", page.text());
    assert!(page.text().contains("<h1>Sign in</h1>"), "{}", page.text());
    let token = csrf_token(&page);
    browser.post_form(
        "/login/",
        &[
            ("csrfmiddlewaretoken", &token),
            ("username", username),
            ("password", password),
        ],
    )
}

#[test]
fn django_sessions_pick_each_users_tenant_through_the_authorizer() {
    let scratch = Scratch::new();
    let site = DjangoSite::start_with_authorizer(&scratch);
    let nginx = Nginx::start(&scratch, &site.plexer.socket);

    // A wrong password: Django's form again, and no session.
    let mut alice = Browser::new(nginx.port);
    let denied = sign_in(&mut alice, "alice", "not her password");
    assert_eq!(denied.status, 200, "{}", denied.text());
    assert!(denied.text().contains("Wrong username or password."));
    assert_eq!(alice.cookie("sessionid"), None);

    // The right one: Django's session, and no plexer cookie ever.
    let signed_in = sign_in(&mut alice, "alice", PASSWORD);
    assert_eq!(signed_in.status, 302, "{}", signed_in.text());
    assert!(alice.cookie("sessionid").is_some(), "Django's session");
    let home = alice.get("/");
    assert_eq!(home.status, 200, "{}", home.text());
    assert_eq!(account_shown(&home), "acme");
    let token = csrf_token(&home);
    let added = alice.post_form(
        "/notes/",
        &[("csrfmiddlewaretoken", &token), ("text", ACME_NOTE)],
    );
    assert_eq!(added.status, 302, "{}", added.text());
    assert!(alice.get("/").text().contains("known to the authorizer"));
    assert_eq!(
        alice.cookie("plexer_account"),
        None,
        "no plexer cookie at all"
    );

    // Grace of globex: her tenant, none of acme's notes.
    let mut grace = Browser::new(nginx.port);
    assert_eq!(sign_in(&mut grace, "grace", PASSWORD).status, 302);
    let home = grace.get("/");
    assert_eq!(account_shown(&home), "globex");
    assert!(!home.text().contains("known to the authorizer"));
    assert_eq!(site.notes_in("acme.sqlite3"), [ACME_NOTE]);
    assert!(site.notes_in("globex.sqlite3").is_empty());

    // Signed-in users' GETs reused the auth app's decisions (authorizer.cache, keyed by
    // Django's session cookie); their POSTs were asked every time.
    let stats = site.plexer.status_json()["authorizer"].clone();
    assert!(stats["cache_hits"].as_u64() > Some(0), "{stats}");

    // A session cookie a client makes up is no session: the sign-in page.
    let mut mallory = Browser::new(nginx.port);
    mallory.set_cookie("sessionid", "made-up-session-key");
    assert_eq!(mallory.get("/").status, 302);

    // Signing out (a POST to /logout/, which the authorizer sends to the auth app) ends the
    // session, and the next request is sent to the sign-in page again.
    let token = csrf_token(&alice.get("/"));
    let out = alice.post_form("/logout/", &[("csrfmiddlewaretoken", &token)]);
    assert_eq!(out.status, 302, "{}", out.text());
    assert_eq!(out.header("Location"), Some("/login/"));
    let after = alice.get("/");
    assert_eq!(after.status, 302, "{}", after.text());
    assert_eq!(after.header("Location"), Some("/login/?next=/"));
}
