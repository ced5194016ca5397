//! The promise of live accounts, under load: requests flow through a real nginx to several
//! accounts while other accounts are added and removed, the busy ones reloaded, their files
//! touched, and SIGHUP arrives; every request to an account that existed throughout succeeds
//! on that account's workers, and the plexer's descriptors and memory do not grow with the
//! churn.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;
use plexer_tests::{Nginx, PlexerServe, Scratch, ServeSetup, wait_for};
use plexer_tests::{http, procfs};

const LOAD_FOR: Duration = Duration::from_secs(4);
const CLIENTS: usize = 4;
const CHURN_EVERY: Duration = Duration::from_millis(200);
const ROUNDS: usize = 10;
/// How long clients may run past the longest churn, should the stop flag never come.
const CLIENT_GRACE: Duration = Duration::from_secs(10);

struct Site {
    plexer: PlexerServe,
    nginx: Nginx,
    stable: Vec<(&'static str, String)>,
}

/// What one phase of load and churn did.
struct Phase {
    served: usize,
    rounds: usize,
    failures: Vec<String>,
}

/// Sets the flag when dropped, so that the client threads stop when the churn ends, also by a
/// panic: the scope joins them before the panic goes on.
struct StopOnDrop<'a>(&'a AtomicBool);

impl Drop for StopOnDrop<'_> {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Relaxed);
    }
}

/// Requests to the stable accounts from CLIENTS threads while the accounts churn: at least
/// `min_for` and `min_rounds` rounds, at most three times `min_for`. Temporary accounts are
/// named from `first_round` on.
fn load_while_churning(
    site: &Site,
    first_round: usize,
    min_for: Duration,
    min_rounds: usize,
) -> Phase {
    let (plexer, stable) = (&site.plexer, &site.stable);
    let stop = AtomicBool::new(false);
    let served = AtomicUsize::new(0);
    let failures = std::sync::Mutex::new(Vec::new());
    // The churn stops by 3 × min_for; the clients' own bound only matters if the flag is
    // never set.
    let clients_until = Instant::now() + 3 * min_for + CLIENT_GRACE;
    let rounds = std::thread::scope(|s| {
        let _stop_clients = StopOnDrop(&stop);
        for client in 0..CLIENTS {
            let (stop, served, failures, port) = (&stop, &served, &failures, site.nginx.port);
            s.spawn(move || {
                let more = |n: usize| {
                    !stop.load(Ordering::Relaxed) && n < 100_000 && Instant::now() < clients_until
                };
                let mut n = client;
                while more(n) {
                    let (name, cookie) = &stable[n % stable.len()];
                    let path = format!("/load/{client}/{n}");
                    let response = http::get(port, &path, &[("Cookie", cookie)]);
                    let landed = response.header("X-Hello-Account");
                    if response.status != 200 || landed != Some(*name) {
                        failures.lock().unwrap().push(format!(
                            "{path} for {name}: {} on {landed:?}: {}",
                            response.status,
                            response.text()
                        ));
                    }
                    served.fetch_add(1, Ordering::Relaxed);
                    n += CLIENTS;
                }
            });
        }
        let started = Instant::now();
        let mut round = first_round;
        while (started.elapsed() < min_for || round - first_round < min_rounds)
            && started.elapsed() < 3 * min_for
        {
            let temporary = format!("tmp{round}");
            plexer
                .accounts(&["add", &temporary, "--user", &temporary])
                .assert_success();
            if round > first_round {
                plexer
                    .accounts(&["remove", &format!("tmp{}", round - 1)])
                    .assert_success();
            }
            let busy = stable[round % stable.len()].0;
            plexer.accounts(&["reload", busy]).assert_success();
            // A touched file reloads through the watcher.
            let touched = stable[(round + 1) % stable.len()].0;
            std::fs::File::options()
                .append(true)
                .open(plexer.account_file(touched))
                .unwrap()
                .set_modified(std::time::SystemTime::now())
                .unwrap();
            if round % 5 == 4 {
                plexer.process.signal(Signal::SIGHUP);
            }
            round += 1;
            std::thread::sleep(CHURN_EVERY);
        }
        plexer
            .accounts(&["remove", &format!("tmp{}", round - 1)])
            .assert_success();
        round - first_round
    });
    Phase {
        served: served.into_inner(),
        rounds,
        failures: failures.into_inner().unwrap(),
    }
}

/// Waits until every worker idled out (idle_timeout 1s), then counts the plexer's descriptors
/// and memory: what is left is the plexer's own and nginx's kept-alive connections.
fn settled(site: &Site) -> (usize, u64) {
    let pid = site.plexer.pid();
    assert!(
        // Unreaped workers count: they are not gone yet.
        wait_for(
            || procfs::children_of(pid).is_empty(),
            Duration::from_secs(15)
        ),
        "the workers did not idle out: {} left",
        procfs::children_of(pid).len()
    );
    (procfs::open_fds(pid), procfs::rss_kib(pid).unwrap_or(0))
}

#[test]
fn requests_to_stable_accounts_never_fail_while_accounts_churn() {
    let scratch = Scratch::new();
    let plexer = PlexerServe::start(
        &scratch,
        ServeSetup {
            accounts: &[
                ("login", "{}"),
                ("bob", "users: [bob]"),
                ("sue", "users: [sue]"),
                ("amy", "users: [amy]"),
            ],
            pool_extra: "  idle_timeout: 1s\n",
            ..ServeSetup::default()
        },
    );
    let nginx = Nginx::start(&scratch, &plexer.socket);
    let stable = ["bob", "sue", "amy"]
        .into_iter()
        .map(|name| (name, plexer.cookie(name)))
        .collect();
    let site = Site {
        plexer,
        nginx,
        stable,
    };
    // A first, shorter phase opens what load opens (nginx's kept-alive connections); the
    // second one must not add to it.
    let warm = load_while_churning(&site, 0, LOAD_FOR / 4, 3);
    assert!(warm.failures.is_empty(), "{:?}", warm.failures);
    let (fds_before, rss_before) = settled(&site);
    let phase = load_while_churning(&site, warm.rounds, LOAD_FOR, ROUNDS);
    let failures = &phase.failures;
    assert!(
        failures.is_empty(),
        "{} of {} requests failed, e.g. {:?}\n{}",
        failures.len(),
        phase.served,
        &failures[..failures.len().min(5)],
        site.plexer.log()
    );
    assert!(
        phase.rounds >= ROUNDS,
        "only {} rounds of churn",
        phase.rounds
    );
    assert!(phase.served >= 200, "only {} requests", phase.served);
    eprintln!(
        "{} requests, {} rounds of add+remove+reload+touch, 0 failed",
        phase.served, phase.rounds
    );
    let (fds_after, rss_after) = settled(&site);
    eprintln!(
        "plexer: {fds_before} -> {fds_after} descriptors, {rss_before} -> {rss_after} KiB RSS"
    );
    assert!(
        fds_after <= fds_before + 2,
        "descriptors grew with the churn: {fds_before} -> {fds_after}"
    );
    assert!(
        rss_after < rss_before + 8 * 1024,
        "memory grew with the churn: {rss_before} -> {rss_after} KiB"
    );
    let left = std::fs::read_dir(site.plexer.path("run/workers"))
        .unwrap()
        .count();
    assert!(
        left <= 4,
        "{left} worker socket directories left (login and three stable accounts)"
    );
}
