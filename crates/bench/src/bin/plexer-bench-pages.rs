//! `plexer-bench-pages [--plexer PATH] [--php-fpm PATH] [--php-cgi PATH] [--nginx PATH]
//! [--python PATH] [--seconds N] [--rounds N] [--page php|django] [--php-ini NAME=VALUE]...`:
//! plexer's hop on real pages (issue 15), printed
//! as the markdown tables of docs/benchmarks.md ("Real pages").
//!
//! Five servers behind the same nginx, each with the same number of workers:
//! 1. php-fpm (`pm = static`) running `pages/table.php`, an HTML table of 3,000 rows;
//! 2. `plexer serve` → php-cgi running the same page;
//! 3. `plexer spawn` → php-cgi: nginx reaches the same php-cgi workers on their shared socket
//!    itself, no hop. Not a goal's side: it splits the gap between 1 and 2 into what php-cgi
//!    costs beside php-fpm and what the hop costs;
//! 4. `plexer spawn` → Django's hello view under flup: nginx reaches flup's workers on their
//!    shared socket itself, no hop;
//! 5. `plexer serve` → the same flup workers;
//! 6. and 7. `plexer serve` → php-cgi and → flup again with `scheduling: normal`: what the
//!    default, `batch`, changes (crates/server/src/scheduling.rs).
//!
//! OPcache is on for both PHP sides (Debian's php.ini and conf.d are the same for php-cgi and
//! php-fpm). Before the rounds, every server is warmed and asked for its page's `?check`, whose
//! answer is printed: for PHP whether OPcache is on and has cached the page, and the page's own
//! CPU time; for Django its version. The CPU per request measured from `/proc` in the rounds
//! shows the same from outside.
//!
//! Then each server with and without nginx's upstream keepalive, in interleaved rounds (every
//! cell once per round, the order rotated each round), a fresh nginx per cell; a cell is a
//! closed loop of kept-alive HTTP/1.1 clients for a fixed time after a short warm-up, every
//! request given a deadline (`plexer_bench::nginx_cell`). The goals are judged on the medians
//! of the rounds, and each round's ratio is printed beside them.
//!
//! Last, a small request beside the page: the PHP page with 16 clients and, at the same time,
//! Django's hello view with one client, through plexer with either scheduling and through
//! php-fpm and flup without plexer, in interleaved rounds: the latency `scheduling: batch`
//! costs a request that waits for a busy core, beside what it gains the page.
//!
//! `--page` measures one page's servers only (to profile them, say). `--php-ini` overrides a
//! php.ini setting for every PHP side alike (`-d NAME=VALUE`), to see what a setting changes:
//! `output_buffering=65536` makes PHP write its output in records of 64 KiB rather than 8 KiB.
//!
//! `plexer` should be a release build; by default it is looked for next to this binary.
//! Progress goes to stderr, the tables to stdout.

use std::error::Error;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use plexer_bench::nginx::{self, Nginx};
use plexer_bench::nginx_cell::{self, Cell, CellPlan, Medians, on_off};
use plexer_bench::pages::{self, PhpCheck};
use plexer_bench::php_fpm::{self, FpmPm, PhpFpm};
use plexer_bench::plexer_cli::{self, PlexerProcess, ServeShape};
use plexer_bench::timing::human;
use plexer_bench::{binaries, machine};
use plexer_tests::load::{self, LoadPlan};

type Result<T, E = Box<dyn Error>> = std::result::Result<T, E>;

/// Workers of every server.
const WORKERS: usize = 4;
/// Client connections of a cell.
const CONNECTIONS: usize = 16;
/// Not measured, before each cell: connections opened, workers and caches warm.
const WARM_UP: Duration = Duration::from_millis(500);
/// Once per server before the rounds, before its check: Django loads its URLs and middleware
/// at the first request, OPcache compiles the page at the first request of each worker.
const FIRST_WARM_UP: Duration = Duration::from_secs(2);
/// A request not answered within this is a timeout.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(2);
/// Issue 15: plexer's side at least this times the direct side's throughput (and, for PHP
/// with keepalive on, above php-fpm's with no timeout).
const GOAL_AT_LEAST: f64 = 0.97;

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("plexer-bench-pages: {err}");
            ExitCode::FAILURE
        }
    }
}

const USAGE: &str = "usage: plexer-bench-pages [--plexer PATH] [--php-fpm PATH] [--php-cgi PATH] \
                     [--nginx PATH] [--python PATH] [--seconds N] [--rounds N] \
                     [--page php|django] [--php-ini NAME=VALUE]...";

struct Args {
    plexer: PathBuf,
    php_fpm: Option<PathBuf>,
    php_cgi: Option<PathBuf>,
    nginx: PathBuf,
    /// The virtualenv's Python with Django and flup, or why there is none.
    python: Result<PathBuf, String>,
    cell: Duration,
    rounds: usize,
    /// Only this page's servers, when given.
    only: Option<Page>,
    /// php.ini settings given to every PHP side alike, as `NAME=VALUE`.
    php_ini: Vec<String>,
}

fn parse_args() -> Result<Args> {
    let mut paths: [Option<PathBuf>; 5] = Default::default();
    let (mut seconds, mut rounds) = (5u64, 5usize);
    let mut only = None;
    let mut php_ini = Vec::new();
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let slot = match arg.as_str() {
            "--plexer" => 0,
            "--php-fpm" => 1,
            "--php-cgi" => 2,
            "--nginx" => 3,
            "--python" => 4,
            "--php-ini" => {
                let setting = args.next().filter(|s| s.contains('='));
                php_ini.push(setting.ok_or("--php-ini takes NAME=VALUE")?);
                continue;
            }
            "--page" => {
                only = match args.next().as_deref() {
                    Some("php") => Some(Page::Php),
                    Some("django") => Some(Page::Django),
                    _ => return Err(format!("--page takes php or django\n{USAGE}").into()),
                };
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
    let [plexer, php_fpm, php_cgi, nginx, python] = paths;
    let plexer = binaries::find(plexer, "plexer", binaries::BUILD_PLEXER)
        .map_err(|why| format!("{why}\n{USAGE}"))?;
    let nginx = nginx::given_or_found(nginx)?;
    let php_cgi = php_cgi.or_else(|| {
        let path = PathBuf::from("/usr/bin/php-cgi");
        path.is_file().then_some(path)
    });
    Ok(Args {
        plexer,
        php_fpm: php_fpm.or_else(php_fpm::find),
        php_cgi,
        nginx,
        python: python.map_or_else(pages::venv_python, Ok),
        cell: Duration::from_secs(seconds),
        rounds,
        only,
        php_ini,
    })
}

/// The servers compared, in the order of the tables.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Backend {
    PhpFpm,
    ServePhpCgi,
    SpawnPhpCgi,
    /// `plexer serve` with `scheduling: normal`: what `batch` (the default) changes.
    ServePhpCgiNormal,
    SpawnDjango,
    ServeDjango,
    ServeDjangoNormal,
}

impl Backend {
    const ALL: [Self; 7] = [
        Self::PhpFpm,
        Self::ServePhpCgi,
        Self::SpawnPhpCgi,
        Self::ServePhpCgiNormal,
        Self::SpawnDjango,
        Self::ServeDjango,
        Self::ServeDjangoNormal,
    ];

    fn label(self) -> &'static str {
        match self {
            Self::PhpFpm => "nginx → php-fpm → table.php",
            Self::ServePhpCgi => "nginx → plexer serve → php-cgi → table.php",
            Self::SpawnPhpCgi => "nginx → php-cgi (shared socket) → table.php",
            Self::ServePhpCgiNormal => {
                "nginx → plexer serve (scheduling: normal) → php-cgi → table.php"
            }
            Self::SpawnDjango => "nginx → flup (Django hello), shared socket",
            Self::ServeDjango => "nginx → plexer serve → flup (Django hello)",
            Self::ServeDjangoNormal => {
                "nginx → plexer serve (scheduling: normal) → flup (Django hello)"
            }
        }
    }

    /// How a `plexer serve` of this setup relays.
    fn shape(self) -> ServeShape {
        match self {
            Self::ServePhpCgiNormal | Self::ServeDjangoNormal => {
                ServeShape::workers(WORKERS).normal_scheduling()
            }
            _ => ServeShape::workers(WORKERS),
        }
    }

    fn page(self) -> Page {
        match self {
            Self::PhpFpm | Self::ServePhpCgi | Self::SpawnPhpCgi | Self::ServePhpCgiNormal => {
                Page::Php
            }
            Self::SpawnDjango | Self::ServeDjango | Self::ServeDjangoNormal => Page::Django,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Page {
    Php,
    Django,
}

impl Page {
    /// What the clients ask for; nginx sends every request to the page's script.
    fn path(self) -> &'static str {
        match self {
            Self::Php => "/table.php",
            Self::Django => "/hello/",
        }
    }
}

/// A started server: the socket nginx connects to and the process tree that does the work.
enum Running {
    Plexer(PlexerProcess),
    Fpm(PhpFpm),
}

impl Running {
    fn socket(&self) -> &Path {
        match self {
            Self::Plexer(p) => &p.socket,
            Self::Fpm(f) => f.socket(),
        }
    }

    fn pid(&self) -> u32 {
        match self {
            Self::Plexer(p) => p.server.pid(),
            Self::Fpm(f) => f.pid().as_raw() as u32,
        }
    }
}

/// The page files, written into the run's directory.
struct Scripts {
    php: PathBuf,
    django: PathBuf,
}

impl Scripts {
    fn of(&self, page: Page) -> &Path {
        match page {
            Page::Php => &self.php,
            Page::Django => &self.django,
        }
    }
}

fn run() -> Result<()> {
    let args = parse_args()?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let dir = tempfile::Builder::new()
        .prefix("plexer-bench-pages-")
        .tempdir()?;
    runtime.block_on(async {
        // Interrupted, the run unwinds so that every server it started is stopped by its guard.
        tokio::select! {
            done = measure_all(&args, dir.path()) => done,
            signal = plexer_bench::guard::interrupted() => Err(format!("stopped by {signal}; servers stopped").into()),
        }
    })
}

async fn measure_all(args: &Args, dir: &Path) -> Result<()> {
    let scripts = Scripts {
        php: dir.join("table.php"),
        django: dir.join("django_hello.py"),
    };
    std::fs::write(&scripts.php, pages::TABLE_PHP)?;
    std::fs::write(&scripts.django, pages::DJANGO_HELLO)?;
    let out = &mut io::stdout().lock();
    print_header(out, args)?;
    let servers = start_all(out, args, &scripts, dir).await?;
    writeln!(
        out,
        "Every server: {WORKERS} workers, never recycled. Load: {CONNECTIONS} kept-alive \
         HTTP/1.1 clients for {} per cell after {} of warm-up; each request {} at most. {} \
         rounds, interleaved.\n",
        human(args.cell),
        human(WARM_UP),
        human(REQUEST_TIMEOUT),
        args.rounds
    )?;
    let results = run_rounds(args, &servers, &scripts, dir).await?;
    print_cells(out, &servers, &results)?;
    print_goals(out, &servers, &results)?;
    let beside = run_beside(args, &servers, &scripts, dir).await?;
    print_beside(out, &beside)?;
    // Other work on a shared machine shows here: the figures are only as good as this is low.
    writeln!(
        out,
        "\nLoad average at the end: {}",
        machine::load_average()
    )?;
    Ok(())
}

fn print_header(out: &mut impl Write, args: &Args) -> io::Result<()> {
    writeln!(
        out,
        "Machine: {}, load average {} at start",
        machine::describe(),
        machine::load_average()
    )?;
    writeln!(out, "plexer: {}", args.plexer.display())?;
    for (name, program) in [("php-fpm", &args.php_fpm), ("php-cgi", &args.php_cgi)] {
        if let Some(program) = program {
            let version = php_fpm::version(program);
            writeln!(out, "{name}: {} ({version})", program.display())?;
        }
    }
    if !args.php_ini.is_empty() {
        writeln!(
            out,
            "php.ini overridden for every PHP side: {}",
            args.php_ini.join(", ")
        )?;
    }
    Ok(())
}

/// Starts and checks every server the run measures, in the order of [`Backend::ALL`]; one
/// that cannot start or fails its check is printed as not measured and left out (`None`).
async fn start_all(
    out: &mut impl Write,
    args: &Args,
    scripts: &Scripts,
    dir: &Path,
) -> Result<Vec<(Backend, Option<Running>)>> {
    let mut servers = Vec::new();
    for backend in Backend::ALL {
        if args.only.is_some_and(|page| page != backend.page()) {
            servers.push((backend, None));
            continue;
        }
        eprintln!("starting: {}", backend.label());
        let started = async {
            let server = start(backend, args, scripts, &dir.join(format!("{backend:?}"))).await?;
            let said = check(backend, args, &server, scripts, dir).await?;
            Ok::<_, Box<dyn Error>>((server, said))
        };
        match started.await {
            Ok((server, said)) => {
                writeln!(out, "{}: check: {said}", backend.label())?;
                servers.push((backend, Some(server)));
            }
            Err(why) => {
                writeln!(out, "{}: not measured: {why}", backend.label())?;
                servers.push((backend, None));
            }
        }
    }
    Ok(servers)
}

/// Every cell of every round: `results[backend][keepalive][round]`.
async fn run_rounds(
    args: &Args,
    servers: &[(Backend, Option<Running>)],
    scripts: &Scripts,
    dir: &Path,
) -> Result<Vec<[Vec<Cell>; 2]>> {
    let mut results: Vec<[Vec<Cell>; 2]> =
        Backend::ALL.iter().map(|_| Default::default()).collect();
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
                let plan = cell_plan(args, scripts, (*backend, server), CONNECTIONS, keepalive);
                let cell_dir = dir.join(format!("nginx-{round}-{index}-{keepalive}"));
                let cell = nginx_cell::measure(&plan, &cell_dir).await?;
                results[index][usize::from(keepalive)].push(cell);
            }
        }
    }
    Ok(results)
}

/// A small request's latency while the page takes every core: the PHP page with
/// [`CONNECTIONS`] clients and, at the same time, Django's hello view with one client, through
/// the servers of one setup. What `scheduling: batch` costs a request that must wait for a
/// core, beside what it gains the page.
struct Beside {
    what: &'static str,
    page: Backend,
    small: Backend,
}

const BESIDE: [Beside; 3] = [
    Beside {
        what: "plexer serve (scheduling: batch, the default)",
        page: Backend::ServePhpCgi,
        small: Backend::ServeDjango,
    },
    Beside {
        what: "plexer serve (scheduling: normal)",
        page: Backend::ServePhpCgiNormal,
        small: Backend::ServeDjangoNormal,
    },
    Beside {
        what: "php-fpm and flup, no plexer",
        page: Backend::PhpFpm,
        small: Backend::SpawnDjango,
    },
];

/// Each setup of [`BESIDE`] whose servers run, with its (page, small request) cells, one per
/// round, upstream keepalive off, the order rotated each round.
async fn run_beside<'a>(
    args: &Args,
    servers: &[(Backend, Option<Running>)],
    scripts: &Scripts,
    dir: &Path,
) -> Result<Vec<(&'a Beside, Vec<(Cell, Cell)>)>> {
    let running = |b: Backend| {
        servers
            .iter()
            .find(|(backend, _)| *backend == b)
            .and_then(|(_, server)| server.as_ref())
    };
    let setups: Vec<_> = BESIDE
        .iter()
        .filter_map(|setup| Some((setup, running(setup.page)?, running(setup.small)?)))
        .collect();
    let mut results: Vec<_> = setups
        .iter()
        .map(|(setup, ..)| (*setup, Vec::new()))
        .collect();
    for round in 0..args.rounds {
        for k in 0..setups.len() {
            let index = (k + round) % setups.len();
            let (setup, page, small) = setups[index];
            eprintln!(
                "round {}/{}: beside each other, {}",
                round + 1,
                args.rounds,
                setup.what
            );
            let (page_plan, small_plan) = (
                cell_plan(args, scripts, (setup.page, page), CONNECTIONS, false),
                cell_plan(args, scripts, (setup.small, small), 1, false),
            );
            let (page_dir, small_dir) = (
                dir.join(format!("beside-{round}-{index}-page")),
                dir.join(format!("beside-{round}-{index}-small")),
            );
            let (page_cell, small_cell) = tokio::join!(
                nginx_cell::measure(&page_plan, &page_dir),
                nginx_cell::measure(&small_plan, &small_dir)
            );
            results[index].1.push((page_cell?, small_cell?));
        }
    }
    Ok(results)
}

/// A cell: `connections` clients of `backend`'s page on `server`, behind a fresh nginx.
fn cell_plan<'p>(
    args: &'p Args,
    scripts: &'p Scripts,
    (backend, server): (Backend, &'p Running),
    connections: usize,
    keepalive: bool,
) -> CellPlan<'p> {
    CellPlan {
        nginx: &args.nginx,
        upstream: server.socket(),
        script: scripts.of(backend.page()),
        path: backend.page().path(),
        keepalive,
        connections,
        warm_up: WARM_UP,
        duration: args.cell,
        request_timeout: REQUEST_TIMEOUT,
        server_pids: vec![server.pid()],
    }
}

fn print_beside(out: &mut impl Write, beside: &[(&Beside, Vec<(Cell, Cell)>)]) -> io::Result<()> {
    if beside.is_empty() {
        return Ok(());
    }
    writeln!(
        out,
        "\n### A small request beside the page (medians over the rounds; upstream keepalive \
         off)\n\nThe PHP page with {CONNECTIONS} clients and, at the same time, Django's hello \
         view with one client, through the servers of one setup.\n"
    )?;
    writeln!(
        out,
        "| setup | PHP page: requests/s | Django hello beside it: p50 | p99 | each round's p99 | \
         timeouts (page / hello) |"
    )?;
    writeln!(out, "|---|---:|---:|---:|---|---:|")?;
    for (setup, cells) in beside {
        let pages = Medians::of(cells.iter().map(|(page, _)| page));
        let small = Medians::of(cells.iter().map(|(_, small)| small));
        let each: Vec<String> = cells
            .iter()
            .map(|(_, small)| small.p99.map_or("—".into(), human))
            .collect();
        let timeouts = |f: fn(&(Cell, Cell)) -> u64| cells.iter().map(f).sum::<u64>();
        writeln!(
            out,
            "| {} | {} | {} | {} | {} | {} / {} |",
            setup.what,
            pages.per_second.map_or("—".into(), |r| format!("{r:.0}")),
            small.p50.map_or("—".into(), human),
            small.p99.map_or("—".into(), human),
            each.join(" / "),
            timeouts(|(page, _)| page.timeouts),
            timeouts(|(_, small)| small.timeouts),
        )?;
    }
    Ok(())
}

async fn start(backend: Backend, args: &Args, scripts: &Scripts, dir: &Path) -> Result<Running> {
    let python = || args.python.as_deref().map_err(|why| why.clone());
    // php-cgi, with `-d NAME=VALUE` for each --php-ini.
    let ini_args: Vec<PathBuf> = args
        .php_ini
        .iter()
        .flat_map(|setting| [PathBuf::from("-d"), PathBuf::from(setting)])
        .collect();
    let php_cgi_command = || {
        let program = args
            .php_cgi
            .as_deref()
            .ok_or("php-cgi is not installed: `apt-get install php-cgi`")?;
        Ok::<_, &str>(
            std::iter::once(program)
                .chain(ini_args.iter().map(PathBuf::as_path))
                .collect::<Vec<_>>(),
        )
    };
    Ok(match backend {
        Backend::PhpFpm => {
            let program = args.php_fpm.as_deref().ok_or(
                "php-fpm is not installed (no php-fpm8.2 or php-fpm on the PATH, nothing in \
                 /usr/sbin/php-fpm*): `apt-get install php-fpm`",
            )?;
            let pm = FpmPm::Static {
                max_children: WORKERS,
            };
            Running::Fpm(PhpFpm::start_with_ini(program, dir, "pages", pm, &args.php_ini).await?)
        }
        Backend::ServePhpCgi | Backend::ServePhpCgiNormal => {
            // php-cgi's own recycling (500 requests by default) off, as php-fpm's is.
            let env = [("PHP_FCGI_MAX_REQUESTS", "0")];
            Running::Plexer(plexer_cli::serve(
                &args.plexer,
                dir,
                &php_cgi_command()?,
                backend.shape(),
                &env,
            )?)
        }
        Backend::SpawnPhpCgi => {
            let env = [("PHP_FCGI_MAX_REQUESTS", "0")];
            Running::Plexer(plexer_cli::spawn(
                &args.plexer,
                dir,
                &php_cgi_command()?,
                WORKERS,
                &env,
            )?)
        }
        Backend::SpawnDjango => {
            let command = [python()?, scripts.django.as_path()];
            Running::Plexer(plexer_cli::spawn(
                &args.plexer,
                dir,
                &command,
                WORKERS,
                &[],
            )?)
        }
        Backend::ServeDjango | Backend::ServeDjangoNormal => {
            let command = [python()?, scripts.django.as_path()];
            Running::Plexer(plexer_cli::serve(
                &args.plexer,
                dir,
                &command,
                backend.shape(),
                &[],
            )?)
        }
    })
}

/// Warms `server` behind a fresh nginx and asks its page's `?check`; returns what to print.
async fn check(
    backend: Backend,
    args: &Args,
    server: &Running,
    scripts: &Scripts,
    dir: &Path,
) -> Result<String> {
    let page = backend.page();
    let nginx_dir = dir.join(format!("check-{backend:?}"));
    let nginx = Nginx::start(
        &args.nginx,
        &nginx_dir,
        server.socket(),
        scripts.of(page),
        false,
    )?;
    let warm = load::drive(&LoadPlan {
        port: nginx.port,
        path: page.path().to_owned(),
        headers: Vec::new(),
        connections: CONNECTIONS,
        duration: FIRST_WARM_UP,
        request_timeout: REQUEST_TIMEOUT,
    })
    .await;
    if warm.ok() == 0 {
        return Err(format!(
            "no request was answered while warming up: {:?}\nnginx's error log:\n{}",
            warm.first_error(),
            std::fs::read_to_string(nginx_dir.join("error.log")).unwrap_or_default()
        )
        .into());
    }
    let check_path = format!("{}?check", page.path());
    // A blocking GET: the servers are other processes, nothing on this runtime must run.
    Ok(match page {
        Page::Php => {
            let said = PhpCheck::ask(nginx.port, &check_path)?;
            format!(
                "{} with OPcache on, {} hits in the answering worker's cache; the page is {} \
                 bytes and took {} of CPU in the worker (median of 50 renders, getrusage)",
                said.sapi,
                said.opcache_hits,
                said.page_bytes,
                human(said.page_cpu)
            )
        }
        Page::Django => format!(
            "Django {} under flup's fcgi_single WSGIServer",
            pages::django_version(nginx.port, &check_path)?
        ),
    })
}

fn print_cells(
    out: &mut impl Write,
    servers: &[(Backend, Option<Running>)],
    results: &[[Vec<Cell>; 2]],
) -> io::Result<()> {
    writeln!(
        out,
        "### Real pages: {CONNECTIONS} clients, {WORKERS} workers (medians over the rounds)\n"
    )?;
    writeln!(out, "{}", nginx_cell::TABLE_HEAD)?;
    for (index, (backend, server)) in servers.iter().enumerate() {
        if server.is_none() {
            continue;
        }
        for keepalive in [false, true] {
            let cells: Vec<&Cell> = results[index][usize::from(keepalive)].iter().collect();
            let row = nginx_cell::table_row(backend.label(), keepalive, &cells, CONNECTIONS);
            writeln!(out, "{row}")?;
        }
    }
    for (index, (backend, _)) in servers.iter().enumerate() {
        for keepalive in [false, true] {
            for (round, cell) in results[index][usize::from(keepalive)].iter().enumerate() {
                if let Some(why) = &cell.first_error {
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
    Ok(())
}

/// What each comparison must show (issue 15).
#[derive(Clone, Copy, Debug)]
enum Goal {
    /// plexer's throughput at least this times the direct side's.
    AtLeast(f64),
    /// Above the direct side's, and not one request of plexer's timed out.
    AboveWithoutTimeouts,
}

impl Goal {
    fn describe(self) -> String {
        match self {
            Self::AtLeast(r) => format!("at least {r}×"),
            Self::AboveWithoutTimeouts => "above 1×, 0 timeouts through plexer".into(),
        }
    }

    fn met(self, ratio: f64, plexer_timeouts: u64) -> bool {
        match self {
            Self::AtLeast(r) => ratio >= r,
            Self::AboveWithoutTimeouts => ratio > 1.0 && plexer_timeouts == 0,
        }
    }
}

/// Two setups side by side: the first's requests/s over the second's, with one keepalive
/// setting; `goal: Err(why)` for a row that only explains another.
struct Comparison {
    what: &'static str,
    ours: Backend,
    theirs: Backend,
    keepalive: bool,
    goal: Result<Goal, &'static str>,
}

const GAP: &str = "where the PHP gap comes from";
const SCHEDULING: &str = "what scheduling: batch gives";

const COMPARISONS: [Comparison; 12] = [
    Comparison {
        what: "PHP table: plexer serve → php-cgi ÷ php-fpm",
        ours: Backend::ServePhpCgi,
        theirs: Backend::PhpFpm,
        keepalive: false,
        goal: Ok(Goal::AtLeast(GOAL_AT_LEAST)),
    },
    Comparison {
        what: "PHP table: plexer serve → php-cgi ÷ php-fpm",
        ours: Backend::ServePhpCgi,
        theirs: Backend::PhpFpm,
        keepalive: true,
        goal: Ok(Goal::AboveWithoutTimeouts),
    },
    Comparison {
        what: "Django hello: plexer serve → flup ÷ flup",
        ours: Backend::ServeDjango,
        theirs: Backend::SpawnDjango,
        keepalive: false,
        goal: Ok(Goal::AtLeast(GOAL_AT_LEAST)),
    },
    Comparison {
        what: "Django hello: plexer serve → flup ÷ flup",
        ours: Backend::ServeDjango,
        theirs: Backend::SpawnDjango,
        keepalive: true,
        goal: Ok(Goal::AtLeast(GOAL_AT_LEAST)),
    },
    // Where the PHP gap comes from: php-cgi beside php-fpm, and the hop alone.
    Comparison {
        what: "PHP table: php-cgi (shared socket) ÷ php-fpm",
        ours: Backend::SpawnPhpCgi,
        theirs: Backend::PhpFpm,
        keepalive: false,
        goal: Err(GAP),
    },
    Comparison {
        what: "PHP table: php-cgi (shared socket) ÷ php-fpm",
        ours: Backend::SpawnPhpCgi,
        theirs: Backend::PhpFpm,
        keepalive: true,
        goal: Err(GAP),
    },
    Comparison {
        what: "PHP table: plexer serve → php-cgi ÷ php-cgi (shared socket)",
        ours: Backend::ServePhpCgi,
        theirs: Backend::SpawnPhpCgi,
        keepalive: false,
        goal: Err(GAP),
    },
    Comparison {
        what: "PHP table: plexer serve → php-cgi ÷ php-cgi (shared socket)",
        ours: Backend::ServePhpCgi,
        theirs: Backend::SpawnPhpCgi,
        keepalive: true,
        goal: Err(GAP),
    },
    // What `scheduling: batch` (the default) gives over the kernel's normal policy.
    Comparison {
        what: "PHP table: plexer serve ÷ plexer serve (scheduling: normal)",
        ours: Backend::ServePhpCgi,
        theirs: Backend::ServePhpCgiNormal,
        keepalive: false,
        goal: Err(SCHEDULING),
    },
    Comparison {
        what: "PHP table: plexer serve ÷ plexer serve (scheduling: normal)",
        ours: Backend::ServePhpCgi,
        theirs: Backend::ServePhpCgiNormal,
        keepalive: true,
        goal: Err(SCHEDULING),
    },
    Comparison {
        what: "Django hello: plexer serve ÷ plexer serve (scheduling: normal)",
        ours: Backend::ServeDjango,
        theirs: Backend::ServeDjangoNormal,
        keepalive: false,
        goal: Err(SCHEDULING),
    },
    Comparison {
        what: "Django hello: plexer serve ÷ plexer serve (scheduling: normal)",
        ours: Backend::ServeDjango,
        theirs: Backend::ServeDjangoNormal,
        keepalive: true,
        goal: Err(SCHEDULING),
    },
];

fn print_goals(
    out: &mut impl Write,
    servers: &[(Backend, Option<Running>)],
    results: &[[Vec<Cell>; 2]],
) -> io::Result<()> {
    writeln!(
        out,
        "\n### Real pages against the goals (medians over the rounds; each round's ratio is \
         of the cells of one round)\n"
    )?;
    writeln!(
        out,
        "| comparison | upstream keepalive | requests/s ratio | each round's ratio | CPU per \
         request, whole run: added | timeouts: first / second | errors: first / second | goal \
         | verdict |"
    )?;
    writeln!(out, "|---|---|---:|---|---:|---:|---:|---|---|")?;
    let index = |b: Backend| {
        Backend::ALL
            .iter()
            .position(|&x| x == b)
            .filter(|&i| servers[i].1.is_some())
    };
    for c in &COMPARISONS {
        let (Some(o), Some(t)) = (index(c.ours), index(c.theirs)) else {
            continue;
        };
        let k = usize::from(c.keepalive);
        let (oc, tc) = (&results[o][k], &results[t][k]);
        let rate = |cells: &[Cell]| Medians::of(cells.iter()).per_second;
        let ratio = rate(oc).zip(rate(tc)).map(|(a, b)| a / b);
        let each: Vec<String> = oc
            .iter()
            .zip(tc)
            .map(|(a, b)| format!("{:.3}", a.per_second / b.per_second))
            .collect();
        let cpu = |cells: &[Cell]| {
            nginx_cell::median_duration(cells.iter().map(Cell::total_cpu_per_request))
        };
        let added = cpu(oc)
            .zip(cpu(tc))
            .map(|(a, b)| (a.as_secs_f64() - b.as_secs_f64()) * 1e6);
        let sum = |cells: &[Cell], f: fn(&Cell) -> u64| cells.iter().map(f).sum::<u64>();
        let our_timeouts = sum(oc, |c| c.timeouts);
        let verdict = match (c.goal, ratio) {
            (Ok(goal), Some(r)) if goal.met(r, our_timeouts) => "met",
            (Ok(_), Some(_)) => "missed",
            _ => "—",
        };
        writeln!(
            out,
            "| {} | {} | {} | {} | {} | {our_timeouts} / {} | {} / {} | {} | {verdict} |",
            c.what,
            on_off(c.keepalive),
            ratio.map_or("—".into(), |r| format!("{r:.3}×")),
            each.join(" / "),
            added.map_or("—".into(), |a| format!("{a:+.0} µs")),
            sum(tc, |c| c.timeouts),
            sum(oc, |c| c.errors),
            sum(tc, |c| c.errors),
            c.goal
                .map_or_else(|why| format!("none: {why}"), Goal::describe),
        )?;
    }
    Ok(())
}
