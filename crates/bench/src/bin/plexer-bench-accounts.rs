//! Live accounts, measured (issue 5): the time from `plexer accounts add` to the first request
//! that account serves; the time to apply a directory of 1,000 new account files; and the
//! plexer's memory and routing cost with 10,000 accounts registered (ondemand, idle) beside
//! one with 10, both running in the same run and measured in alternating batches.
//!
//! `plexer-bench-accounts [--plexer PATH] [--hello PATH]` prints markdown tables for
//! docs/benchmarks.md. `plexer` and `hello` should be release builds; by default they are looked
//! for next to this binary.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use plexer_bench::guard::Server;
use plexer_bench::timed_run::timed_run;
use plexer_bench::timing::{Summary, human};
use plexer_bench::{binaries, routed};
use plexer_server::control::client;
use plexer_server::control::protocol::Request as Control;
use plexer_server::cookie::Keys;

/// A line of the tables, on stdout (progress goes to stderr).
macro_rules! table {
    ($($arg:tt)*) => {
        writeln!(std::io::stdout().lock(), $($arg)*).expect("stdout is writable")
    };
}

const ADDS: usize = 20;
const FILES: usize = 1_000;
const MANY: usize = 10_000;
const BATCH: usize = 200;
const BATCHES: usize = 10;
/// The longest a plexer may take to load its accounts (10,000 of them at the start).
const LOAD_TIMEOUT: Duration = Duration::from_secs(120);
/// The longest one `plexer accounts add` may take.
const ADD_TIMEOUT: Duration = Duration::from_secs(10);
/// The longest until an added account serves its first request.
const FIRST_SERVED_TIMEOUT: Duration = Duration::from_secs(30);

/// `--plexer PATH --hello PATH`.
type Args = binaries::PlexerAndHello;

/// A `plexer serve` in a directory of its own, stopped on drop (its log is in that directory).
struct Plexer {
    /// Before `dir`: fields drop in order, so the server stops before its directory goes.
    server: Server,
    dir: tempfile::TempDir,
    keys: Keys,
}

impl Plexer {
    /// Writes the config and `accounts` account files, starts plexer, and waits until the
    /// control socket answers with every account loaded.
    fn start(args: &Args, accounts: usize) -> (Self, Duration) {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let root = dir.path();
        std::fs::create_dir(root.join("accounts.d")).unwrap();
        std::fs::write(root.join("secret"), "bench-secret-".repeat(4)).unwrap();
        // plexer refuses a secret every user may read.
        let private = std::os::unix::fs::PermissionsExt::from_mode(0o600);
        std::fs::set_permissions(root.join("secret"), private).unwrap();
        std::fs::write(root.join("accounts.d/login.yaml"), "{}\n").unwrap();
        for i in 0..accounts {
            write_account(root, &format!("a{i}"));
        }
        std::fs::write(
            root.join("plexer.yaml"),
            format!(
                "listen: unix:{root}/plexer.sock\naccounts_dir: accounts.d\nruntime_dir: run\n\
                 secret_file: secret\nlogin: {{ account: login }}\npool:\n  command: [{hello}]\n  \
                 pm: ondemand\n  max_children: 2\n  idle_timeout: 60s\n",
                root = root.display(),
                hello = args.hello.display()
            ),
        )
        .unwrap();
        let started = Instant::now();
        let mut command = plexer_tests::build::serve_command(&args.plexer);
        command
            .arg("-c")
            .arg(root.join("plexer.yaml"))
            .env("RUST_LOG", "warn");
        let server = Server::spawn("plexer serve", &mut command, &root.join("plexer.log"))
            .unwrap_or_else(|err| panic!("{err}"));
        let keys = Keys::load(&root.join("secret")).unwrap();
        let mut plexer = Self { server, dir, keys };
        plexer.wait_for_accounts(accounts + 1, LOAD_TIMEOUT);
        (plexer, started.elapsed())
    }

    fn root(&self) -> &Path {
        self.dir.path()
    }

    fn control(&self) -> PathBuf {
        self.root().join("run/control.sock")
    }

    fn socket(&self) -> PathBuf {
        self.root().join("plexer.sock")
    }

    /// How many accounts plexer lists (the control client has a read timeout of its own).
    fn accounts(control: &Path) -> usize {
        client::call(control, &Control::List)
            .ok()
            .and_then(|r| r.data)
            .and_then(|d| d.as_array().map(Vec::len))
            .unwrap_or(0)
    }

    fn wait_for_accounts(&mut self, count: usize, within: Duration) {
        let control = self.control();
        self.server
            .wait_until(&format!("{count} accounts loaded"), within, || {
                Self::accounts(&control) >= count
            })
            .unwrap_or_else(|err| panic!("{err}"));
    }

    fn cookie(&self, account: &str) -> String {
        routed::cookie(&self.keys, account)
    }

    fn rss_kib(&self) -> u64 {
        plexer_tests::procfs::rss_kib(self.server.pid()).unwrap_or(0)
    }
}

fn write_account(root: &Path, name: &str) {
    std::fs::write(
        root.join(format!("accounts.d/{name}.yaml")),
        format!("users: [{name}]\n"),
    )
    .unwrap();
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// Sends GETs for `account` until one lands there, one right after the other: a pause
/// between them would count in the time measured.
fn first_served(rt: &tokio::runtime::Runtime, plexer: &mut Plexer, account: &str) {
    let cookie = plexer.cookie(account);
    let socket = plexer.socket();
    let deadline = Instant::now() + FIRST_SERVED_TIMEOUT;
    while rt
        .block_on(routed::served_by(&socket, &cookie))
        .ok()
        .as_deref()
        != Some(account)
    {
        let what = format!("serving {account}");
        plexer
            .server
            .check_running(&what)
            .unwrap_or_else(|err| panic!("{err}"));
        assert!(Instant::now() < deadline, "{account} never served");
    }
}

fn row(what: &str, summary: Option<Summary>) -> String {
    match summary {
        Some(s) => format!(
            "| {what} | {} | {} | {} | {} |",
            s.runs,
            human(s.median),
            human(s.p90),
            human(s.max)
        ),
        None => format!("| {what} | 0 | - | - | - |"),
    }
}

fn main() {
    let args = Args::from_args();
    let rt = runtime();

    // 1. `plexer accounts add` to the first request served, and the command alone.
    let (mut plexer, _) = Plexer::start(&args, 10);
    let (mut to_first, mut command) = (Vec::new(), Vec::new());
    for i in 0..ADDS {
        let name = format!("new{i}");
        let started = Instant::now();
        let mut add = Command::new(&args.plexer);
        add.args(["accounts", "--control"])
            .arg(plexer.control())
            .args(["add", &name, "--user", &name])
            .stdout(Stdio::null());
        let (status, took) = timed_run(&mut add, ADD_TIMEOUT).unwrap_or_else(|err| panic!("{err}"));
        assert!(status.success(), "plexer accounts add {name}");
        command.push(took);
        first_served(&rt, &mut plexer, &name);
        to_first.push(started.elapsed());
    }
    table!("| step | runs | median | p90 | max |\n|---|---|---|---|---|");
    table!(
        "{}",
        row("`plexer accounts add` returns", Summary::of(&mut command))
    );
    table!(
        "{}",
        row(
            "`add` to its first request served (ondemand: includes the worker's spawn)",
            Summary::of(&mut to_first)
        )
    );

    // 2. A directory of 1,000 new account files, applied by the watcher.
    let mut applied = Vec::new();
    for round in 0..3 {
        let started = Instant::now();
        for i in 0..FILES {
            write_account(plexer.root(), &format!("f{round}x{i}"));
        }
        let written = started.elapsed();
        plexer.wait_for_accounts(11 + ADDS + (round + 1) * FILES, LOAD_TIMEOUT);
        applied.push(started.elapsed());
        eprintln!(
            "1,000 files: written in {written:?}, applied in {:?}",
            started.elapsed()
        );
    }
    table!(
        "{}",
        row(
            "1,000 new account files written until all are routable (watcher)",
            Summary::of(&mut applied)
        )
    );
    drop(plexer);

    // 3. 10,000 accounts beside 10: memory, start-up, and the routing cost per request.
    let (mut small, small_start) = Plexer::start(&args, 10);
    let (mut large, large_start) = Plexer::start(&args, MANY);
    for plexer in [&mut small, &mut large] {
        first_served(&rt, plexer, "a7");
    }
    let (mut small_lat, mut large_lat) = (Vec::new(), Vec::new());
    for _ in 0..BATCHES {
        for (plexer, samples) in [(&small, &mut small_lat), (&large, &mut large_lat)] {
            let cookie = plexer.cookie("a7");
            for _ in 0..BATCH {
                let started = Instant::now();
                let account = rt
                    .block_on(routed::served_by(&plexer.socket(), &cookie))
                    .unwrap();
                samples.push(started.elapsed());
                assert_eq!(account, "a7");
            }
        }
    }
    let (small_rss, large_rss) = (small.rss_kib(), large.rss_kib());
    table!(
        "\n| plexer with | start until every account is routable | RSS (idle, ondemand) | request p50 | p90 |"
    );
    table!("|---|---|---|---|---|");
    for (label, start, rss, samples) in [
        ("10 accounts", small_start, small_rss, &mut small_lat),
        ("10,000 accounts", large_start, large_rss, &mut large_lat),
    ] {
        let s = Summary::of(samples).unwrap();
        table!(
            "| {label} | {} | {:.1} MiB | {} | {} |",
            human(start),
            rss as f64 / 1024.0,
            human(s.median),
            human(s.p90)
        );
    }
    table!(
        "\nper account registered: {:.1} KiB",
        (large_rss as f64 - small_rss as f64) / (MANY - 10) as f64
    );
    drop(small);
    requests_while_files_change(&rt, &large);
}

/// How long one account file change every [`CHANGE_EVERY`] takes to be a reload of one account.
const CHANGE_EVERY: Duration = Duration::from_millis(100);
/// How long requests are timed, with and without the changes.
const CHANGING_FOR: Duration = Duration::from_secs(6);

/// Step 4, requests while account files change, with 10,000 accounts: each change is a
/// reload, and each reload starts a worker for its probe from a plexer of 55 MiB. Sequential GETs to a warm
/// account, timed for [`CHANGING_FOR`] with nobody touching a file, then while a thread
/// rewrites one account file every [`CHANGE_EVERY`].
fn requests_while_files_change(rt: &tokio::runtime::Runtime, plexer: &Plexer) {
    let cookie = plexer.cookie("a7");
    let timed = |samples: &mut Vec<Duration>| {
        let started = Instant::now();
        while started.elapsed() < CHANGING_FOR {
            let sent = Instant::now();
            let account = rt
                .block_on(routed::served_by(&plexer.socket(), &cookie))
                .unwrap();
            samples.push(sent.elapsed());
            assert_eq!(account, "a7");
        }
    };
    let mut quiet = Vec::new();
    timed(&mut quiet);
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let root = plexer.root().to_owned();
    let changer = {
        let stop = std::sync::Arc::clone(&stop);
        std::thread::spawn(move || {
            let mut changes = 0usize;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let name = format!("a{}", 100 + changes % 1000);
                let file = root.join(format!("accounts.d/{name}.yaml"));
                std::fs::write(&file, format!("users: [{name}]\n# change {changes}\n")).unwrap();
                changes += 1;
                std::thread::sleep(CHANGE_EVERY);
            }
            changes
        })
    };
    let mut changing = Vec::new();
    timed(&mut changing);
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let changes = changer.join().unwrap();
    table!(
        "\n| 10,000 accounts, sequential GETs for {CHANGING_FOR:?} | requests | p50 | p99 | p99.9 | max | over 5 ms |"
    );
    table!("|---|---|---|---|---|---|---|");
    for (label, samples) in [
        ("no file changes".to_owned(), &mut quiet),
        (
            format!("{changes} account files changed, one every {CHANGE_EVERY:?}"),
            &mut changing,
        ),
    ] {
        samples.sort();
        let at =
            |per_mille: usize| samples[(samples.len() * per_mille / 1000).min(samples.len() - 1)];
        let (p99, p999) = (at(990), at(999));
        let slow = samples
            .iter()
            .filter(|d| **d > Duration::from_millis(5))
            .count();
        let s = Summary::of(samples).unwrap();
        table!(
            "| {label} | {} | {} | {} | {} | {} | {slow} |",
            s.runs,
            human(s.median),
            human(p99),
            human(p999),
            human(s.max)
        );
    }
}
