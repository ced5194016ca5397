//! The Django example behind plexer and a real lighttpd, the front the seed's question used
//! (seeds/002): a user signs in, lands on their tenant, and adds a note there. It also shows
//! that the shipped lighttpd snippet's `fix-root-scriptname` hands Django the path: the note's
//! POST to /notes/ reaches the add view, not the list at /.

use plexer_tests::django::{DjangoSite, account_shown, csrf_token, sign_in_to_tenant};
use plexer_tests::{Browser, Lighttpd, Scratch};

#[test]
fn a_tenant_signs_in_and_adds_a_note_through_lighttpd() {
    let scratch = Scratch::new();
    let site = DjangoSite::start(&scratch);
    let lighttpd = Lighttpd::start(&scratch, &site.plexer.socket);

    let mut grace = Browser::new(lighttpd.port);
    sign_in_to_tenant(&mut grace, "grace", "globex");

    let home = grace.get("/");
    assert_eq!(account_shown(&home), "globex");
    let token = csrf_token(&home);
    let added = grace.post_form(
        "/notes/",
        &[
            ("csrfmiddlewaretoken", &token),
            ("text", "Globex: hammock day"),
        ],
    );
    assert_eq!(added.status, 302, "{}", added.text());
    assert!(grace.get("/").text().contains("Globex: hammock day"));
    assert_eq!(grace.get("/no-such-page").status, 404);

    assert_eq!(site.notes_in("globex.sqlite3"), ["Globex: hammock day"]);
    assert!(site.notes_in("acme.sqlite3").is_empty());
}
