//! `plexer accounts add` and `reload` look the pool's `user:` up (NSS: LDAP, NIS, files) and
//! read the account file; that work runs off the thread that relays requests, so a lookup
//! that takes seconds holds up only the change that asked for it, never the other tenants.

use std::time::{Duration, Instant};

use plexer_tests::slow_lookup::SlowLookup;
use plexer_tests::{PlexerServe, Scratch, ServeSetup, wait_until};

#[test]
fn a_slow_user_lookup_in_add_or_reload_does_not_stall_other_requests() {
    let scratch = Scratch::new();
    let lookup = SlowLookup::build(&scratch);
    let plexer = PlexerServe::start_with_env(&scratch, ServeSetup::default(), lookup.env());
    let bob = plexer.cookie("bob");
    assert_eq!(plexer.account_of(Some(&bob)), "bob");
    let changes: [&[&str]; 2] = [
        &["add", "carol", "--user", "carol", "--set", "user=root"],
        &["reload", "carol"],
    ];
    for change in changes {
        lookup.hold();
        std::thread::scope(|s| {
            let changing = s.spawn(|| plexer.accounts(change));
            wait_until(
                "plexer looks the user up",
                || lookup.entered(),
                Duration::from_secs(10),
            );
            let request = s.spawn(|| plexer.account_of(Some(&bob)));
            let deadline = Instant::now() + Duration::from_secs(5);
            while !request.is_finished() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(10));
            }
            let answered_during_lookup = request.is_finished() && !changing.is_finished();
            // Released before any assertion, so a failure does not wait out the gate.
            lookup.release();
            assert!(
                answered_during_lookup,
                "`plexer accounts {}` stalled a request of another account while it looked \
                 a user up",
                change.join(" ")
            );
            assert_eq!(request.join().unwrap(), "bob");
            changing.join().unwrap().assert_success();
        });
    }
    assert_eq!(plexer.account_of(Some(&plexer.cookie("carol"))), "carol");
}
