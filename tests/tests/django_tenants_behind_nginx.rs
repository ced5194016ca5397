//! The seeds' own case, end to end: the Django example (examples/django: Django under flup,
//! one account per tenant, each with its own SQLite database) behind plexer and a real nginx,
//! all on the shipped configs. A user signs in on the login account's page (Django's auth, the
//! users database), plexer turns the app's `X-Plexer-User` into its routing cookie, and every
//! request of theirs lands on their tenant's workers, which see only that tenant's database.

use plexer_tests::django::{DjangoSite, account_shown, csrf_token, sign_in, sign_in_to_tenant};
use plexer_tests::{Browser, Nginx, Scratch};

const ACME_NOTE: &str = "Acme's launch plan: rockets & roller skates";

#[test]
fn each_tenant_signs_in_to_its_own_app_and_database() {
    let scratch = Scratch::new();
    let site = DjangoSite::start(&scratch);
    let nginx = Nginx::start(&scratch, &site.plexer.socket);

    // A wrong password: the sign-in page again, and no routing cookie.
    let mut alice = Browser::new(nginx.port);
    let denied = sign_in(&mut alice, "alice", "not her password");
    assert_eq!(denied.status, 403, "{}", denied.text());
    assert!(denied.text().contains("Wrong username or password."));
    assert_eq!(alice.cookie("plexer_account"), None);

    // The right one: a redirect home, the app's X-Plexer-User turned into plexer's cookie.
    let signed_in = sign_in_to_tenant(&mut alice, "alice", "acme");
    assert_eq!(signed_in.header("Location"), Some("/"));

    // Home is now acme's notes; add one.
    let home = alice.get("/");
    assert_eq!(home.status, 200, "{}", home.text());
    assert_eq!(account_shown(&home), "acme");
    assert!(home.text().contains("No notes yet."));
    let token = csrf_token(&home);
    let added = alice.post_form(
        "/notes/",
        &[("csrfmiddlewaretoken", &token), ("text", ACME_NOTE)],
    );
    assert_eq!(added.status, 302, "{}", added.text());
    let home = alice.get("/");
    assert!(
        home.text().contains("rockets &amp; roller skates"),
        "{}",
        home.text()
    );

    // Django routes on the path, so nginx's PATH_INFO reached it: /notes/ takes only POST,
    // and an unknown path is Django's 404, not the notes page.
    assert_eq!(alice.get("/notes/").status, 405);
    assert_eq!(alice.get("/no-such-page").status, 404);

    // Grace of globex signs in: her own tenant, and none of acme's notes.
    let mut grace = Browser::new(nginx.port);
    sign_in_to_tenant(&mut grace, "grace", "globex");
    let home = grace.get("/");
    assert_eq!(account_shown(&home), "globex");
    assert!(home.text().contains("No notes yet."), "{}", home.text());
    assert!(!home.text().contains("roller skates"));

    // Acme's note is in acme's database file, and in no other.
    assert_eq!(site.notes_in("acme.sqlite3"), [ACME_NOTE]);
    assert!(site.notes_in("globex.sqlite3").is_empty());
    assert!(site.notes_in("users.sqlite3").is_empty());

    // Signing out: plexer clears its cookie, and the next request is the sign-in page again.
    let token = csrf_token(&alice.get("/"));
    let out = alice.post_form("/logout/", &[("csrfmiddlewaretoken", &token)]);
    assert_eq!(out.status, 302, "{}", out.text());
    assert_eq!(alice.cookie("plexer_account"), None);
    assert!(alice.get("/").text().contains("<h1>Sign in</h1>"));
}
