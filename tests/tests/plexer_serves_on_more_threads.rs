//! `threads: N`: N threads, each with a runtime of its own, accept on the listen socket and
//! relay what they accepted; they share the accounts, the workers (and the connections kept to
//! them) and the stop's drain.

use std::time::Duration;

use plexer_tests::{PlexerServe, Scratch, ServeSetup};

fn two_threads(scratch: &Scratch) -> PlexerServe {
    PlexerServe::start(
        scratch,
        ServeSetup {
            accounts: &[("login", "{}"), ("bob", "users: [bob]\nmax_children: 8")],
            config_extra: "login: { account: login }\nthreads: 2\n",
            ..ServeSetup::default()
        },
    )
}

/// CPU time of plexer's thread named `name`, in nanoseconds, if it has one.
fn thread_cpu_ns(pid: u32, name: &str) -> Option<u64> {
    std::fs::read_dir(format!("/proc/{pid}/task"))
        .ok()?
        .flatten()
        .find(|task| {
            std::fs::read_to_string(task.path().join("comm")).is_ok_and(|comm| comm.trim() == name)
        })
        .and_then(|task| std::fs::read_to_string(task.path().join("schedstat")).ok())
        .and_then(|stat| stat.split_whitespace().next()?.parse().ok())
}

#[test]
fn a_second_thread_accepts_and_relays_beside_the_first() {
    let scratch = Scratch::new();
    let plexer = two_threads(&scratch);
    let before = thread_cpu_ns(plexer.pid(), "plexer-1").expect("a thread named plexer-1");
    let cookie = plexer.cookie("bob");
    std::thread::scope(|s| {
        for _ in 0..16 {
            s.spawn(|| {
                for _ in 0..25 {
                    assert_eq!(plexer.account_of(Some(&cookie)), "bob");
                }
            });
        }
    });
    let after = thread_cpu_ns(plexer.pid(), "plexer-1").unwrap();
    assert!(
        after - before > 1_000_000,
        "plexer-1 relayed some of the 400 requests: {} ns of CPU",
        after - before
    );
}

#[test]
fn sigterm_lets_every_threads_requests_finish() {
    let scratch = Scratch::new();
    let mut plexer = two_threads(&scratch);
    let cookie = plexer.cookie("bob");
    let answers = std::thread::scope(|s| {
        let slow: Vec<_> = (0..6)
            .map(|_| s.spawn(|| plexer.get(Some(&cookie), "/slow?sleep=1500").1))
            .collect();
        std::thread::sleep(Duration::from_millis(500));
        plexer.process.signal(nix::sys::signal::Signal::SIGTERM);
        slow.into_iter()
            .map(|handle| handle.join().unwrap())
            .collect::<Vec<_>>()
    });
    for answer in answers {
        assert_eq!(answer.get("account"), "bob");
    }
    let status = plexer.process.wait_exit(Duration::from_secs(10));
    assert_eq!(status.and_then(|s| s.code()), Some(0), "{}", plexer.log());
}
