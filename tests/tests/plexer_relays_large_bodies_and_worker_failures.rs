//! Behind nginx, plexer relays a 50 MiB upload and a 50 MiB download with bounded memory, and a
//! worker killed mid-request costs that request a 502 and no other request anything.

use std::time::Duration;

use plexer_tests::{HelloAnswer, Nginx, PlexerServe, Scratch, ServeSetup, fnv1a64, pattern_bytes};
use plexer_tests::{http, procfs};

const FIFTY_MIB: usize = 50 << 20;

#[test]
fn fifty_mib_each_way_pass_with_bounded_memory() {
    let scratch = Scratch::new();
    let plexer = PlexerServe::start(&scratch, ServeSetup::default());
    let nginx = Nginx::start(&scratch, &plexer.socket);
    let bob = plexer.cookie("bob");

    let body = pattern_bytes(FIFTY_MIB, 7);
    let up = http::request(nginx.port, "POST", "/upload", &[("Cookie", &bob)], &body);
    assert_eq!(up.status, 200, "{}", up.text());
    let answer = HelloAnswer::parse(&up.body);
    assert_eq!(answer.body_bytes(), FIFTY_MIB as u64);
    assert_eq!(answer.body_fnv1a64(), format!("{:016x}", fnv1a64(&body)));

    let down = http::get(
        nginx.port,
        &format!("/download?bytes={FIFTY_MIB}"),
        &[("Cookie", &bob)],
    );
    assert_eq!(down.status, 200);
    assert_eq!(down.body.len(), FIFTY_MIB);
    assert!(down.body.starts_with(b"abcdefghijklmnopqrstuvwxyz"));

    // The relay holds at most a few high-water marks, not the bodies.
    let rss = procfs::rss_kib(plexer.pid()).expect("plexer's VmRSS");
    assert!(
        rss < 40 * 1024,
        "plexer's RSS is {rss} KiB after 100 MiB relayed"
    );
}

#[test]
fn a_worker_killed_mid_request_gives_that_request_a_502_and_no_other() {
    let scratch = Scratch::new();
    let plexer = PlexerServe::start(&scratch, ServeSetup::default());
    let nginx = Nginx::start(&scratch, &plexer.socket);
    let bob = plexer.cookie("bob");
    let sue = plexer.cookie("sue");
    let port = nginx.port;
    let slow_cookie = bob.clone();
    let slow = std::thread::spawn(move || {
        http::get(port, "/slow?sleep=3000", &[("Cookie", &slow_cookie)])
    });
    // Find bob's busy worker on the status page and kill it.
    let mut victim = None;
    for _ in 0..100 {
        let status = http::get(port, "/plexer-status?json&full", &[]).text();
        if let Some(at) = status.find("\"state\":\"busy\"") {
            let before = &status[..at];
            let pid_at = before.rfind("\"pid\":").unwrap() + 6;
            let pid: i32 = before[pid_at..].split(',').next().unwrap().parse().unwrap();
            victim = Some(pid);
            break;
        }
        std::thread::sleep(Duration::from_millis(30));
    }
    let victim = victim.expect("bob's worker became busy");
    let during = http::get(port, "/during", &[("Cookie", &sue)]);
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(victim),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    let cut = slow.join().unwrap();
    assert_eq!(cut.status, 502, "{}", cut.text());
    assert_eq!(during.status, 200);
    // The account recovers: the next request gets a fresh worker.
    let after = http::get(port, "/after", &[("Cookie", &bob)]);
    assert_eq!(after.status, 200, "{}", after.text());
    assert_ne!(HelloAnswer::parse(&after.body).pid(), victim as u32);
    assert_eq!(
        HelloAnswer::parse(&http::get(port, "/", &[("Cookie", &sue)]).body).get("account"),
        "sue"
    );
}
