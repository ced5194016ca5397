//! `plexer-bench-front [--plexer PATH] [--hello PATH] [--php-fpm PATH] [--php-cgi PATH]
//! [--nginx PATH] [--seconds N] [--rounds N] [--relays-only]`: what the plexer's hop costs behind nginx, in one
//! run, printed as the markdown tables of docs/benchmarks.md ("The plexer's hop").
//!
//! The servers behind the same nginx, each with the same number of workers:
//! 1. `plexer serve` → `hello`: nginx → plexer → a worker, one hop more;
//! 2. `plexer spawn` → `hello`: nginx → the workers' shared socket, spawn-fcgi's model;
//! 3. php-fpm (`pm = static`) running a tiny PHP script;
//! 4. `plexer serve` → `php-cgi` running the same script;
//! 5. `plexer serve` → `hello` with `threads: 2`, and with `scheduling: normal` (what the
//!    default, `batch`, changes);
//! 6. nginx's stream module and HAProxy (tcp) as generic relays in front of the shared
//!    socket of 2, the hop's reference.
//!
//! Each with and without nginx's upstream keepalive, in interleaved rounds (every cell once per
//! round, the order rotated each round), a fresh nginx per cell. A cell is a closed loop of
//! kept-alive HTTP/1.1 clients for a fixed time after a short warm-up, every request given a
//! deadline; then the same with one client, for the latency of a request alone. The CPU time
//! of the load generator (this process), of nginx and of the server with its workers is read
//! from `/proc` around each cell.
//!
//! `--relays-only` measures only what the relay table needs (plexer serve with either
//! scheduling, the shared socket, the nginx stream relay, HAProxy): more rounds of those in
//! the same time, for a quieter comparison on a shared machine.
//!
//! `plexer` and `hello` should be release builds; by default they are looked for next to this
//! binary. Progress goes to stderr, the tables to stdout.

use std::error::Error;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use plexer_bench::nginx;
use plexer_bench::nginx_cell::{self, Cell, CellPlan, Medians, median, on_off};
use plexer_bench::php_fpm::{self, FpmPm, PhpFpm};
use plexer_bench::plexer_cli::{self, PlexerProcess, ServeShape};
use plexer_bench::relays::{self, Relay};
use plexer_bench::timing::human;
use plexer_bench::{binaries, machine};

type Result<T, E = Box<dyn Error>> = std::result::Result<T, E>;

/// Workers of every server.
const WORKERS: usize = 4;
/// Client connections of a throughput cell.
const CONNECTIONS: usize = 16;
/// Not measured: connections opened, workers and caches warm.
const WARM_UP: Duration = Duration::from_millis(500);
/// A request not answered within this is a timeout.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(2);
/// The one-client cell, for the latency of a request alone.
const ALONE: Duration = Duration::from_secs(2);
/// The goals the hop is held to (issue 4).
const GOAL_THROUGHPUT_LOSS: f64 = 0.15;
const GOAL_MEDIAN_ADDED: Duration = Duration::from_micros(50);

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("plexer-bench-front: {err}");
            ExitCode::FAILURE
        }
    }
}

const USAGE: &str = "usage: plexer-bench-front [--plexer PATH] [--hello PATH] [--php-fpm PATH] \
                     [--php-cgi PATH] [--nginx PATH] [--seconds N] [--rounds N] [--relays-only]";

struct Args {
    plexer: PathBuf,
    hello: PathBuf,
    php_fpm: Option<PathBuf>,
    php_cgi: Option<PathBuf>,
    nginx: PathBuf,
    cell: Duration,
    rounds: usize,
    relays_only: bool,
}

fn parse_args() -> Result<Args> {
    let mut paths: [Option<PathBuf>; 5] = Default::default();
    let (mut seconds, mut rounds) = (5u64, 3usize);
    let mut relays_only = false;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let slot = match arg.as_str() {
            "--plexer" => 0,
            "--hello" => 1,
            "--php-fpm" => 2,
            "--php-cgi" => 3,
            "--nginx" => 4,
            "--relays-only" => {
                relays_only = true;
                continue;
            }
            "--seconds" | "--rounds" => {
                let value = binaries::count_option(&arg, args.next())?;
                if arg == "--seconds" {
                    seconds = value;
                } else {
                    rounds = value as usize;
                }
                continue;
            }
            _ => return Err(format!("unknown argument {arg:?}\n{USAGE}").into()),
        };
        let value = args.next().ok_or_else(|| format!("{arg} takes a path"))?;
        paths[slot] = Some(PathBuf::from(value));
    }
    let [plexer, hello, php_fpm, php_cgi, nginx] = paths;
    let with_usage = |why: String| format!("{why}\n{USAGE}");
    let plexer = binaries::find(plexer, "plexer", binaries::BUILD_PLEXER).map_err(with_usage)?;
    let hello =
        binaries::find(hello, "examples/hello", binaries::BUILD_HELLO).map_err(with_usage)?;
    let nginx = nginx::given_or_found(nginx)?;
    let php_cgi = php_cgi.or_else(|| {
        let path = PathBuf::from("/usr/bin/php-cgi");
        path.is_file().then_some(path)
    });
    Ok(Args {
        plexer,
        hello,
        php_fpm: php_fpm.or_else(php_fpm::find),
        php_cgi,
        nginx,
        cell: Duration::from_secs(seconds),
        rounds,
        relays_only,
    })
}

/// The servers compared, in the order of the tables.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Backend {
    ServeHello,
    /// `scheduling: normal`: what `batch` (the default) changes.
    ServeHelloNormal,
    ServeHelloTwoThreads,
    SpawnHello,
    NginxStreamHello,
    HaproxyHello,
    PhpFpm,
    ServePhpCgi,
}

impl Backend {
    const ALL: [Self; 8] = [
        Self::ServeHello,
        Self::ServeHelloNormal,
        Self::ServeHelloTwoThreads,
        Self::SpawnHello,
        Self::NginxStreamHello,
        Self::HaproxyHello,
        Self::PhpFpm,
        Self::ServePhpCgi,
    ];

    fn label(self) -> &'static str {
        match self {
            Self::ServeHello => "nginx → plexer serve → hello",
            Self::ServeHelloNormal => "nginx → plexer serve (scheduling: normal) → hello",
            Self::ServeHelloTwoThreads => "nginx → plexer serve (threads: 2) → hello",
            Self::SpawnHello => "nginx → plexer spawn → hello (shared socket)",
            Self::NginxStreamHello => "nginx → nginx stream relay → plexer spawn → hello",
            Self::HaproxyHello => "nginx → HAProxy (tcp) → plexer spawn → hello",
            Self::PhpFpm => "nginx → php-fpm → PHP script",
            Self::ServePhpCgi => "nginx → plexer serve → php-cgi → PHP script",
        }
    }

    /// Whether the relay table (`print_relays`) needs this setup.
    fn in_relay_table(self) -> bool {
        matches!(
            self,
            Self::ServeHello
                | Self::ServeHelloNormal
                | Self::SpawnHello
                | Self::NginxStreamHello
                | Self::HaproxyHello
        )
    }
}

/// A started server: the socket nginx connects to and the processes whose trees do the work.
enum Running {
    Plexer(PlexerProcess),
    Fpm(PhpFpm),
    /// A generic relay in front of the workers' shared socket (`plexer spawn`).
    Relayed(Relay, PlexerProcess),
}

impl Running {
    fn socket(&self) -> &Path {
        match self {
            Self::Plexer(p) => &p.socket,
            Self::Fpm(f) => f.socket(),
            Self::Relayed(relay, _) => &relay.socket,
        }
    }

    /// The roots of the process trees whose CPU time is the server's.
    fn pids(&self) -> Vec<u32> {
        match self {
            Self::Plexer(p) => vec![p.server.pid()],
            Self::Fpm(f) => vec![f.pid().as_raw() as u32],
            Self::Relayed(relay, behind) => vec![relay.server.pid(), behind.server.pid()],
        }
    }
}

fn run() -> Result<()> {
    let args = parse_args()?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let dir = tempfile::Builder::new()
        .prefix("plexer-bench-front-")
        .tempdir()?;
    runtime.block_on(async {
        // Interrupted, the run unwinds so that every server it started is stopped by its guard:
        // they run in process groups of their own, which a terminal's Ctrl-C does not reach.
        tokio::select! {
            done = measure_all(&args, dir.path()) => done,
            signal = plexer_bench::guard::interrupted() => Err(format!("stopped by {signal}; servers stopped").into()),
        }
    })
}

async fn measure_all(args: &Args, dir: &Path) -> Result<()> {
    let script = dir.join("bench.php");
    std::fs::write(&script, php_fpm::SCRIPT)?;
    let out = &mut io::stdout().lock();
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    writeln!(
        out,
        "Machine: {}, load average {} at start, Unix time {now}",
        machine::describe(),
        machine::load_average()
    )?;
    writeln!(out, "plexer: {}", args.plexer.display())?;
    writeln!(out, "hello: {}", args.hello.display())?;
    writeln!(
        out,
        "nginx: {} ({})",
        args.nginx.display(),
        version(&args.nginx, "-v")
    )?;

    let mut servers = Vec::new();
    for backend in Backend::ALL {
        if args.relays_only && !backend.in_relay_table() {
            servers.push((backend, None));
            continue;
        }
        eprintln!("starting: {}", backend.label());
        let started = start(backend, args, &dir.join(format!("{backend:?}"))).await;
        match &started {
            Ok(_) => {}
            Err(why) => writeln!(out, "{}: not measured: {why}", backend.label())?,
        }
        servers.push((backend, started.ok()));
    }
    if let Some(fpm) = &args.php_fpm {
        writeln!(
            out,
            "php-fpm: {} ({})",
            fpm.display(),
            php_fpm::version(fpm)
        )?;
    }
    writeln!(
        out,
        "Every server: {WORKERS} workers, never recycled. Load: {CONNECTIONS} kept-alive \
         HTTP/1.1 clients for {} per cell after {} of warm-up, then 1 client for {}; each \
         request {} at most. {} rounds, interleaved.\n",
        human(args.cell),
        human(WARM_UP),
        human(ALONE),
        human(REQUEST_TIMEOUT),
        args.rounds
    )?;

    // results[backend][keepalive][round]: (the loaded cell, the one-client cell)
    let mut results: Vec<[Vec<(Cell, Cell)>; 2]> = Backend::ALL
        .iter()
        .map(|_| [Vec::new(), Vec::new()])
        .collect();
    for round in 0..args.rounds {
        for keepalive in [false, true] {
            for k in 0..servers.len() {
                // Rotated each round, so that no setup always runs first or last.
                let index = (k + round) % servers.len();
                let (backend, Some(server)) = &servers[index] else {
                    continue;
                };
                eprintln!(
                    "round {}/{}: {}, upstream keepalive {}",
                    round + 1,
                    args.rounds,
                    backend.label(),
                    on_off(keepalive)
                );
                let cell_dir = dir.join(format!("nginx-{round}-{index}-{keepalive}"));
                let loaded = cell(args, server, &script, keepalive, CONNECTIONS, args.cell);
                let loaded = nginx_cell::measure(&loaded, &cell_dir).await?;
                let alone = cell(args, server, &script, keepalive, 1, ALONE);
                let alone = nginx_cell::measure(&alone, &cell_dir.with_extension("alone")).await?;
                results[index][usize::from(keepalive)].push((loaded, alone));
            }
        }
    }
    print_tables(out, &servers, &results)?;
    print_relays(out, &servers, &results)?;
    // Other work on a shared machine shows here: the figures are only as good as this is low.
    writeln!(
        out,
        "\nLoad average at the end: {}",
        machine::load_average()
    )?;
    Ok(())
}

async fn start(backend: Backend, args: &Args, dir: &Path) -> Result<Running> {
    let hello = args.hello.as_path();
    Ok(match backend {
        Backend::ServeHello => Running::Plexer(plexer_cli::serve(
            &args.plexer,
            dir,
            &[hello],
            ServeShape::workers(WORKERS),
            &[],
        )?),
        Backend::ServeHelloNormal => Running::Plexer(plexer_cli::serve(
            &args.plexer,
            dir,
            &[hello],
            ServeShape::workers(WORKERS).normal_scheduling(),
            &[],
        )?),
        Backend::ServeHelloTwoThreads => Running::Plexer(plexer_cli::serve(
            &args.plexer,
            dir,
            &[hello],
            ServeShape::workers(WORKERS).threads(2),
            &[],
        )?),
        Backend::SpawnHello => Running::Plexer(plexer_cli::spawn(
            &args.plexer,
            dir,
            &[hello],
            WORKERS,
            &[],
        )?),
        Backend::NginxStreamHello | Backend::HaproxyHello => {
            let behind = plexer_cli::spawn(&args.plexer, dir, &[hello], WORKERS, &[])?;
            let relay_dir = dir.join("relay");
            let relay = match backend {
                Backend::NginxStreamHello => {
                    relays::nginx_stream(&args.nginx, &relay_dir, &behind.socket)?
                }
                _ => relays::haproxy(&relay_dir, &behind.socket)?,
            };
            Running::Relayed(relay, behind)
        }
        Backend::PhpFpm => {
            let program = args.php_fpm.as_deref().ok_or(
                "php-fpm is not installed (no php-fpm8.2 or php-fpm on the PATH, nothing in \
                 /usr/sbin/php-fpm*): `apt-get install php-fpm`",
            )?;
            let pm = FpmPm::Static {
                max_children: WORKERS,
            };
            Running::Fpm(PhpFpm::start(program, dir, "front", pm).await?)
        }
        Backend::ServePhpCgi => {
            let program = args
                .php_cgi
                .as_deref()
                .ok_or("php-cgi is not installed: `apt-get install php-cgi`")?;
            // php-cgi's own recycling (500 requests by default) off, as for the others.
            let env = [("PHP_FCGI_MAX_REQUESTS", "0")];
            Running::Plexer(plexer_cli::serve(
                &args.plexer,
                dir,
                &[program],
                ServeShape::workers(WORKERS),
                &env,
            )?)
        }
    })
}

/// One cell's plan: `connections` clients for `duration` through a fresh nginx in front of
/// `server`.
fn cell<'a>(
    args: &'a Args,
    server: &'a Running,
    script: &'a Path,
    keepalive: bool,
    connections: usize,
    duration: Duration,
) -> CellPlan<'a> {
    CellPlan {
        nginx: &args.nginx,
        upstream: server.socket(),
        script,
        path: "/bench.php?page=2",
        keepalive,
        connections,
        warm_up: WARM_UP,
        duration,
        request_timeout: REQUEST_TIMEOUT,
        server_pids: server.pids(),
    }
}

fn print_tables(
    out: &mut impl Write,
    servers: &[(Backend, Option<Running>)],
    results: &[[Vec<(Cell, Cell)>; 2]],
) -> io::Result<()> {
    writeln!(
        out,
        "### {CONNECTIONS} clients, {WORKERS} workers (medians over the rounds)\n"
    )?;
    writeln!(out, "{}", nginx_cell::TABLE_HEAD)?;
    for (index, (backend, server)) in servers.iter().enumerate() {
        if server.is_none() {
            continue;
        }
        for keepalive in [false, true] {
            let cells: Vec<&Cell> = results[index][usize::from(keepalive)]
                .iter()
                .map(|(loaded, _)| loaded)
                .collect();
            let row = nginx_cell::table_row(backend.label(), keepalive, &cells, CONNECTIONS);
            writeln!(out, "{row}")?;
        }
    }
    for (index, (backend, _)) in servers.iter().enumerate() {
        for keepalive in [false, true] {
            for (round, (loaded, _)) in results[index][usize::from(keepalive)].iter().enumerate() {
                if let Some(why) = &loaded.first_error {
                    writeln!(
                        out,
                        "\nFirst error, {}, keepalive {}, round {}: {why}",
                        backend.label(),
                        on_off(keepalive),
                        round + 1
                    )?;
                }
            }
        }
    }

    writeln!(
        out,
        "\n### 1 client: a request alone (medians over the rounds)\n"
    )?;
    writeln!(
        out,
        "| setup | upstream keepalive | requests/s | p50 | p99 | timeouts |"
    )?;
    writeln!(out, "|---|---|---:|---:|---:|---:|")?;
    for (index, (backend, server)) in servers.iter().enumerate() {
        if server.is_none() {
            continue;
        }
        for keepalive in [false, true] {
            let cells = results[index][usize::from(keepalive)]
                .iter()
                .map(|(_, a)| a);
            let m = Medians::of(cells.clone());
            writeln!(
                out,
                "| {} | {} | {} | {} | {} | {} |",
                backend.label(),
                on_off(keepalive),
                m.per_second.map_or("—".into(), |r| format!("{r:.0}")),
                opt(m.p50),
                opt(m.p99),
                cells.map(|c| c.timeouts).sum::<u64>(),
            )?;
        }
    }

    writeln!(
        out,
        "\n### The hop: plexer serve against the same workers without it\n"
    )?;
    writeln!(
        out,
        "| workers | upstream keepalive | throughput, {CONNECTIONS} clients (serve ÷ direct) | \
         p50 added, {CONNECTIONS} clients | p50 added, 1 client | goal: under {:.0} % and {} |",
        GOAL_THROUGHPUT_LOSS * 100.0,
        human(GOAL_MEDIAN_ADDED)
    )?;
    writeln!(out, "|---|---|---:|---:|---:|---|")?;
    let pairs = [
        ("hello", Backend::ServeHello, Backend::SpawnHello),
        (
            "hello, scheduling: normal",
            Backend::ServeHelloNormal,
            Backend::SpawnHello,
        ),
        (
            "hello, threads: 2",
            Backend::ServeHelloTwoThreads,
            Backend::SpawnHello,
        ),
        ("PHP", Backend::ServePhpCgi, Backend::PhpFpm),
    ];
    for (name, with_hop, direct) in pairs {
        let find = |b: Backend| Backend::ALL.iter().position(|&x| x == b);
        let (Some(h), Some(d)) = (find(with_hop), find(direct)) else {
            continue;
        };
        if servers[h].1.is_none() || servers[d].1.is_none() {
            continue;
        }
        for keepalive in [false, true] {
            let k = usize::from(keepalive);
            let loaded = |i: usize| Medians::of(results[i][k].iter().map(|(l, _)| l));
            let alone = |i: usize| Medians::of(results[i][k].iter().map(|(_, a)| a));
            let (hl, dl, ha, da) = (loaded(h), loaded(d), alone(h), alone(d));
            let ratio = hl.per_second.zip(dl.per_second).map(|(a, b)| a / b);
            let added = |a: Option<Duration>, b: Option<Duration>| {
                a.zip(b).map(|(a, b)| a.as_secs_f64() - b.as_secs_f64())
            };
            let loaded_added = added(hl.p50, dl.p50);
            let alone_added = added(ha.p50, da.p50);
            let timeouts: u64 = results[d][k].iter().map(|(l, _)| l.timeouts).sum();
            let verdict = match (ratio, alone_added) {
                _ if timeouts > 0 => {
                    format!("not comparable: {timeouts} requests timed out without plexer")
                }
                (Some(r), Some(a)) => {
                    let loss_ok = 1.0 - r < GOAL_THROUGHPUT_LOSS;
                    let lat_ok = a < GOAL_MEDIAN_ADDED.as_secs_f64();
                    format!(
                        "throughput {}, latency alone {}",
                        if loss_ok { "met" } else { "missed" },
                        if lat_ok { "met" } else { "missed" }
                    )
                }
                _ => "—".into(),
            };
            writeln!(
                out,
                "| {name} | {} | {} | {} | {} | {verdict} |",
                on_off(keepalive),
                ratio.map_or("—".into(), |r| format!(
                    "{r:.2}× ({:+.0} %)",
                    (r - 1.0) * 100.0
                )),
                signed_micros(loaded_added),
                signed_micros(alone_added),
            )?;
        }
    }
    Ok(())
}

fn signed_micros(seconds: Option<f64>) -> String {
    seconds.map_or("—".into(), |s| format!("{:+.0} µs", s * 1e6))
}

/// Goal of issue 15: plexer's added CPU per request at most this times the nginx stream
/// relay's (it parses and routes every request, and still makes fewer syscalls).
const GOAL_AGAINST_STREAM: f64 = 0.9;

/// The hop beside the generic relays: the CPU per request of the whole run (load generator,
/// nginx, relay or plexer, workers) minus that of nginx straight to the workers, and the
/// throughput, medians of the rounds.
fn print_relays(
    out: &mut impl Write,
    servers: &[(Backend, Option<Running>)],
    results: &[[Vec<(Cell, Cell)>; 2]],
) -> io::Result<()> {
    let index = |b: Backend| {
        Backend::ALL
            .iter()
            .position(|&x| x == b)
            .filter(|&i| servers[i].1.is_some())
    };
    let Some(direct) = index(Backend::SpawnHello) else {
        return Ok(());
    };
    writeln!(
        out,
        "\n### The hop beside the best relay ({CONNECTIONS} clients, medians over the rounds)\n"
    )?;
    writeln!(
        out,
        "| hop | upstream keepalive | CPU per request, whole run | added over direct | requests/s | ÷ direct |"
    )?;
    writeln!(out, "|---|---|---:|---:|---:|---:|")?;
    let total = |i: usize, k: usize| {
        let cells = results[i][k].iter().map(|(loaded, _)| loaded);
        median(cells.filter_map(|c| c.total_cpu_per_request().map(|d| d.as_secs_f64() * 1e6)))
    };
    let hops = [
        Backend::ServeHello,
        Backend::ServeHelloNormal,
        Backend::NginxStreamHello,
        Backend::HaproxyHello,
    ];
    for keepalive in [false, true] {
        let k = usize::from(keepalive);
        let (base, base_rate) = (
            total(direct, k),
            Medians::of(results[direct][k].iter().map(|(l, _)| l)).per_second,
        );
        let mut added = Vec::new();
        for hop in hops {
            let Some(i) = index(hop) else { continue };
            let cpu = total(i, k);
            let extra = cpu.zip(base).map(|(c, b)| c - b);
            let rate = Medians::of(results[i][k].iter().map(|(l, _)| l)).per_second;
            let ratio = rate.zip(base_rate).map(|(r, b)| r / b);
            writeln!(
                out,
                "| {} | {} | {} | {} | {} | {} |",
                hop.label(),
                on_off(keepalive),
                cpu.map_or("—".into(), |c| format!("{c:.1} µs")),
                extra.map_or("—".into(), |e| format!("{e:+.1} µs")),
                rate.map_or("—".into(), |r| format!("{r:.0}")),
                ratio.map_or("—".into(), |r| format!("{r:.2}×")),
            )?;
            added.push((hop, extra));
        }
        let of = |b: Backend| added.iter().find(|(h, _)| *h == b).and_then(|(_, e)| *e);
        if let (Some(plexer), Some(stream)) =
            (of(Backend::ServeHello), of(Backend::NginxStreamHello))
        {
            let verdict = if plexer <= GOAL_AGAINST_STREAM * stream {
                "met"
            } else {
                "missed"
            };
            writeln!(
                out,
                "| plexer's added CPU ÷ the nginx stream relay's, keepalive {} | | | {:.2}× (goal at most {GOAL_AGAINST_STREAM}×: {verdict}) | | |",
                on_off(keepalive),
                plexer / stream
            )?;
        }
    }
    Ok(())
}

fn opt(d: Option<Duration>) -> String {
    d.map_or("—".into(), human)
}

/// The first line a program prints for `flag` (nginx prints its version on stderr).
fn version(program: &Path, flag: &str) -> String {
    std::process::Command::new(program)
        .arg(flag)
        .output()
        .ok()
        .and_then(|out| {
            let text = [out.stdout, out.stderr].concat();
            String::from_utf8_lossy(&text)
                .lines()
                .next()
                .map(str::to_owned)
        })
        .unwrap_or_else(|| "unknown version".to_owned())
}
