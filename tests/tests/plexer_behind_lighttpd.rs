//! plexer behind a real lighttpd (Debian's, on the shipped examples/lighttpd snippet), with
//! three accounts running `hello`: each request lands on its own account's workers by cookie,
//! the login app's choice becomes a signed cookie that routes, and a 20 MiB upload, which
//! lighttpd buffers to a temporary file first, reaches the worker intact.
//!
//! lighttpd differs from nginx in two ways that matter here: it opens a new connection to plexer
//! for every request (mod_fastcgi never sets FCGI_KEEP_CONN), and it reads a request body in
//! whole, to `server.upload-dirs`, before it passes the request on.

use std::time::Duration;

use plexer_tests::http::{self, HttpResponse};
use plexer_tests::{HelloAnswer, Lighttpd, fnv1a64, pattern_bytes, wait_for};

const TWENTY_MIB: usize = 20 << 20;

type Site = plexer_tests::Site<Lighttpd>;

fn get(site: &Site, path: &str, headers: &[(&str, &str)]) -> (HttpResponse, HelloAnswer) {
    let response = http::get(site.port(), path, headers);
    assert_eq!(response.status, 200, "GET {path}: {}", response.text());
    let answer = HelloAnswer::parse(&response.body);
    (response, answer)
}

#[test]
fn each_request_lands_on_the_account_of_its_cookie() {
    let site = Site::behind_lighttpd();
    let bob = site.plexer.cookie("bob");
    let sue = site.plexer.cookie("sue");
    let mut pids = std::collections::HashMap::new();
    for round in 0..5 {
        for (cookie, account) in [(&bob, "bob"), (&sue, "sue")] {
            let (response, answer) = get(&site, &format!("/r{round}"), &[("Cookie", cookie)]);
            assert_eq!(answer.get("account"), account, "round {round}");
            assert_eq!(answer.get("uri"), format!("/r{round}"));
            assert_eq!(response.header("X-Hello-Account"), Some(account));
            pids.entry(account)
                .or_insert_with(Vec::new)
                .push(answer.pid());
        }
    }
    assert!(
        pids["bob"].iter().all(|pid| !pids["sue"].contains(pid)),
        "no worker serves both accounts: {pids:?}"
    );

    // Without a cookie, or with a header that claims an account, the login app answers.
    for headers in [vec![], vec![("X-Plexer-Account", "bob")]] {
        let (_, answer) = get(&site, "/page", &headers);
        assert_eq!(answer.get("account"), "login", "{headers:?}");
    }
}

#[test]
fn the_login_apps_choice_becomes_a_cookie_that_routes_to_that_account() {
    let site = Site::behind_lighttpd();
    let (response, answer) = get(&site, "/signin?login=bob", &[]);
    assert_eq!(answer.get("account"), "login");
    assert_eq!(
        response.header("X-Plexer-User"),
        None,
        "plexer removes the login header"
    );
    let set_cookie = response.header("Set-Cookie").expect("a routing cookie");
    assert!(
        set_cookie.starts_with("plexer_account=bob.")
            && set_cookie.contains("HttpOnly")
            && set_cookie.contains("SameSite=Lax"),
        "{set_cookie}"
    );
    let cookie = set_cookie.split(';').next().unwrap().to_owned();

    let (_, answer) = get(&site, "/notes", &[("Cookie", &cookie)]);
    assert_eq!(answer.get("account"), "bob");
    // A tenant's app cannot choose an account.
    let (response, _) = get(&site, "/x?login=sue", &[("Cookie", &cookie)]);
    assert_eq!(response.header("Set-Cookie"), None);
    assert_eq!(response.header("X-Plexer-User"), None);
}

#[test]
fn a_twenty_mib_upload_is_buffered_by_lighttpd_and_reaches_the_worker_intact() {
    let site = Site::behind_lighttpd();
    let sue = site.plexer.cookie("sue");
    let port = site.port();
    let body = pattern_bytes(TWENTY_MIB, 11);
    let expected_fnv = format!("{:016x}", fnv1a64(&body));
    // hello waits 1.5 s before it reads the body, so the upload is still in flight, and
    // lighttpd's temporary file still there, while the test looks for it.
    let upload = std::thread::spawn(move || {
        http::request(
            port,
            "POST",
            "/upload?sleep=1500",
            &[
                ("Cookie", &sue),
                ("Content-Type", "application/octet-stream"),
            ],
            &body,
        )
    });
    let upload_dir = &site.front.upload_dir;
    let buffered = wait_for(
        || std::fs::read_dir(upload_dir).is_ok_and(|mut files| files.next().is_some()),
        Duration::from_secs(10),
    );
    let response = upload.join().expect("the upload thread");
    assert_eq!(response.status, 200, "{}", response.text());
    let answer = HelloAnswer::parse(&response.body);
    assert_eq!(answer.get("account"), "sue");
    assert_eq!(answer.body_bytes(), TWENTY_MIB as u64);
    assert_eq!(answer.body_fnv1a64(), expected_fnv);

    assert!(
        buffered,
        "lighttpd buffered the body under server.upload-dirs"
    );
    let left: Vec<_> = std::fs::read_dir(upload_dir)
        .expect("read the upload dir")
        .collect();
    assert!(left.is_empty(), "lighttpd left {left:?} in its upload dir");
}
