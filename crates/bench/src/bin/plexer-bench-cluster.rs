//! Many nodes, one registry, measured (issue 14), on a private PostgreSQL (Debian's, on a unix
//! socket in a temporary directory, killed with this process's guards):
//! 1. propagation: two nodes share one table; `accounts add aN` through node one's control
//!    socket, timed to its answer and, from the same moment, to the first request node two
//!    routes to aN (requests sent back to back with aN's cookie until hello answers as aN;
//!    ondemand, so that includes starting aN's first worker on node two);
//! 2. a node started with 10,000 accounts in the table beside the same node with 10,000 files
//!    in an accounts_dir, in alternating rounds: from the spawn until the control socket lists
//!    all of them, and the node's VmRSS then.
//!
//! `plexer-bench-cluster [--plexer PATH] [--hello PATH]` prints markdown tables for
//! docs/benchmarks.md. `plexer` and `hello` should be release builds; by default they are
//! looked for next to this binary.

use std::io::Write;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use plexer_bench::registry_node::{Node, Registry, TABLE};
use plexer_bench::timing::{Summary, human};
use plexer_bench::{binaries, machine, routed};
use plexer_server::control::client;
use plexer_server::control::protocol::{AddAccount, Request as Control};
use plexer_tests::{Postgres, Scratch};

/// A line of the tables, on stdout (progress goes to stderr).
macro_rules! table {
    ($($arg:tt)*) => {
        writeln!(std::io::stdout().lock(), $($arg)*).expect("stdout is writable")
    };
}

/// Accounts added in the propagation benchmark, unless [`PROPAGATION_BUDGET`] runs out first.
const ADDS: usize = 200;
/// How long the propagation benchmark may run: it stops adding when this is spent.
const PROPAGATION_BUDGET: Duration = Duration::from_secs(180);
/// The longest an added account may take to serve on the other node before the benchmark
/// fails: ten times the goal, so a miss is measured rather than fatal.
const SERVED_TIMEOUT: Duration = Duration::from_secs(10);
/// The goals for propagation.
const GOAL_MEDIAN: Duration = Duration::from_millis(100);
const GOAL_ALWAYS: Duration = Duration::from_secs(1);

/// Accounts a node starts with in the second benchmark.
const MANY: usize = 10_000;
/// Rounds of each kind of node, alternating.
const ROUNDS: usize = 4;
/// The longest a node may take to list its accounts.
const LOAD_TIMEOUT: Duration = Duration::from_secs(120);

/// `--plexer PATH --hello PATH`.
type Args = binaries::PlexerAndHello;

fn main() {
    let args = Args::from_args();
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    table!(
        "Machine: {}, load average {} at start, Unix time {now}\n",
        machine::describe(),
        machine::load_average()
    );
    let scratch = Scratch::new();
    let postgres = Postgres::start(&scratch);
    table!("PostgreSQL: {}\n", postgres.query("select version()"));
    propagation(&args, &postgres);
    start_with_many(&args, &postgres);
    // Other work on a shared machine shows here: the figures are only as good as this is low.
    table!("\nLoad average at the end: {}", machine::load_average());
}

/// A node of the shared table, once its control socket answers.
fn table_node(args: &Args, postgres: &Postgres, name: &str, accounts: usize) -> Node {
    let registry = Registry::Table { postgres, name };
    let mut node = Node::spawn(&args.plexer, &args.hello, registry)
        .unwrap_or_else(|err| panic!("cannot start node {name}: {err}"));
    node.wait_for_accounts(accounts, LOAD_TIMEOUT)
        .unwrap_or_else(|err| panic!("{err}"));
    node
}

/// `accounts add NAME` through `node`'s control socket, as `plexer accounts add` sends it.
fn add(node: &Node, name: &str) {
    let request = Control::Add(AddAccount {
        name: name.to_owned(),
        ..AddAccount::default()
    });
    let answer = client::call(&node.control(), &request)
        .unwrap_or_else(|err| panic!("accounts add {name}: {err}\n{}", node.server.log()));
    assert!(
        answer.ok,
        "accounts add {name} refused: {}\n{}",
        answer.message,
        node.server.log()
    );
}

/// Requests to `node` with `name`'s cookie, back to back (a pause would count in the time
/// measured), until hello answers as `name`.
fn first_served(rt: &tokio::runtime::Runtime, node: &mut Node, name: &str) {
    let cookie = node.cookie(name);
    let socket = node.socket();
    let deadline = Instant::now() + SERVED_TIMEOUT;
    while rt
        .block_on(routed::served_by(&socket, &cookie))
        .ok()
        .as_deref()
        != Some(name)
    {
        node.server
            .check_running(&format!("serving {name}"))
            .unwrap_or_else(|err| panic!("{err}"));
        assert!(
            Instant::now() < deadline,
            "{name} was not served within {SERVED_TIMEOUT:?}\n{}",
            node.server.log()
        );
    }
}

fn propagation(args: &Args, postgres: &Postgres) {
    let one = table_node(args, postgres, "one", 0);
    let mut two = table_node(args, postgres, "two", 0);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime");
    // Not counted: the first statements of each session, and the first workers started.
    add(&one, "warm");
    first_served(&rt, &mut two, "warm");

    let (mut returned, mut reached) = (Vec::new(), Vec::new());
    let started = Instant::now();
    for i in 1..=ADDS {
        if started.elapsed() > PROPAGATION_BUDGET {
            eprintln!("propagation: budget spent after {} adds", i - 1);
            break;
        }
        let name = format!("a{i}");
        let issued = Instant::now();
        // Node two is polled while node one still works on the add: it may route the
        // account before node one answers.
        let took = std::thread::scope(|scope| {
            let adding = scope.spawn(|| {
                add(&one, &name);
                issued.elapsed()
            });
            first_served(&rt, &mut two, &name);
            reached.push(issued.elapsed());
            adding.join().expect("the add does not panic")
        });
        returned.push(took);
    }
    let summary = |samples: &mut Vec<Duration>| Summary::of(samples).expect("one add or more");
    let (returned, reached) = (summary(&mut returned), summary(&mut reached));
    table!(
        "Propagation: `accounts add aN` through node one's control socket, two nodes sharing \
         table {TABLE} (check_interval 1s), pm ondemand\n"
    );
    table!(
        "| from the add issued on node one until | adds | p50 | p90 | p99 | max | p50 ÷ goal {} | max ÷ goal {} |",
        human(GOAL_MEDIAN),
        human(GOAL_ALWAYS)
    );
    table!("|---|---|---|---|---|---|---|---|");
    for (what, s) in [
        (
            "the add returns on node one (committed, applied there)",
            returned,
        ),
        (
            "node two routes aN's first request (includes its worker's start)",
            reached,
        ),
    ] {
        table!(
            "| {what} | {} | {} | {} | {} | {} | {:.2} | {:.2} |",
            s.runs,
            human(s.median),
            human(s.p90),
            human(s.p99),
            human(s.max),
            s.median.as_secs_f64() / GOAL_MEDIAN.as_secs_f64(),
            s.max.as_secs_f64() / GOAL_ALWAYS.as_secs_f64(),
        );
    }
}

/// One round's figures for one kind of node.
struct Start {
    took: Duration,
    rss_kib: u64,
}

fn start_with_many(args: &Args, postgres: &Postgres) {
    // The propagation nodes are gone; the table now holds exactly MANY accounts, a1..=aN, as
    // the accounts_dir node's files do.
    postgres.query(&format!("truncate {TABLE}"));
    postgres.query(&format!(
        "insert into {TABLE} (name, spec) select 'a' || i, '{{}}' from generate_series(1, {MANY}) i"
    ));
    let (mut in_table, mut in_dir) = (Vec::new(), Vec::new());
    for round in 1..=ROUNDS {
        for (kind, starts) in [("table", &mut in_table), ("dir", &mut in_dir)] {
            let name = format!("many{round}");
            let registry = match kind {
                "table" => Registry::Table {
                    postgres,
                    name: &name,
                },
                _ => Registry::Dir { files: MANY },
            };
            let mut node = Node::spawn(&args.plexer, &args.hello, registry)
                .unwrap_or_else(|err| panic!("cannot start the {kind} node: {err}"));
            node.wait_for_accounts(MANY, LOAD_TIMEOUT)
                .unwrap_or_else(|err| panic!("{err}"));
            let took = node.spawned_at.elapsed();
            let rss_kib = node.rss_kib().expect("the node's /proc/PID/status");
            eprintln!(
                "round {round}, {kind}: {} to list {MANY}, {:.1} MiB",
                human(took),
                rss_kib as f64 / 1024.0
            );
            starts.push(Start { took, rss_kib });
        }
    }
    table!(
        "\nA node started with {MANY} accounts, {ROUNDS} rounds of each, alternating \
         (table, dir, table, dir, …)\n"
    );
    table!(
        "| accounts in | start until `list` shows all: median | min | max | VmRSS then: median | min | max |"
    );
    table!("|---|---|---|---|---|---|---|");
    let mut medians = Vec::new();
    for (label, starts) in [
        ("the PostgreSQL table", &in_table),
        ("an accounts_dir of files", &in_dir),
    ] {
        let mut took: Vec<Duration> = starts.iter().map(|s| s.took).collect();
        let took = Summary::of(&mut took).expect("one round or more");
        let mut rss: Vec<u64> = starts.iter().map(|s| s.rss_kib).collect();
        rss.sort_unstable();
        let rss_median = median_kib(&rss);
        let mib = |kib: u64| format!("{:.1} MiB", kib as f64 / 1024.0);
        table!(
            "| {label} | {} | {} | {} | {} | {} | {} |",
            human(took.median),
            human(took.min),
            human(took.max),
            mib(rss_median),
            mib(rss[0]),
            mib(rss[rss.len() - 1]),
        );
        medians.push((took.median, rss_median));
    }
    let [(table_took, table_rss), (dir_took, dir_rss)] = medians[..] else {
        unreachable!("two kinds of node")
    };
    table!(
        "| table ÷ dir | {:.2}× | | | {:.2}× | | |",
        table_took.as_secs_f64() / dir_took.as_secs_f64(),
        table_rss as f64 / dir_rss as f64
    );
}

/// The median of sorted figures (the mean of the middle two of an even count).
fn median_kib(sorted: &[u64]) -> u64 {
    let n = sorted.len();
    if n % 2 == 1 {
        sorted[n / 2]
    } else {
        (sorted[n / 2 - 1] + sorted[n / 2]) / 2
    }
}
