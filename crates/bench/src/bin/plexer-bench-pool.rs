//! `plexer-bench-pool [--hello PATH] [--php-fpm PATH]`: plexer's supervisor beside php-fpm,
//! in one run, printed as the markdown tables of docs/benchmarks.md ("Supervisor (issue 3)").
//!
//! 1. Spawn to first served request: an ondemand pool of `hello` with no worker, from
//!    `acquire()` to hello's answer; the same on an idle worker; php-fpm ondemand with no
//!    child, from `connect()` to the answer of a trivial PHP script, right after its start and
//!    after it scaled to zero; and on an idle child.
//! 2. A burst of 40 parallel 6-second requests against pm dynamic (start 2, min_spare 1,
//!    max_spare 3, max_children 64): the wall time to the last answer and the worker count
//!    over time, plexer first, then php-fpm.
//! 3. The cost of one fork-safety audit of this process with a few and with 200 descriptors
//!    (with and without sockets, and the floor of reading the kernel's socket tables), of one
//!    hello worker, and `shared_db_handles` over a pool of 4 workers.
//!
//! Both servers are talked to with the `fastcgi-client` crate, over unix sockets under a
//! temporary directory. `hello` should be a release build (`cargo build --release -p
//! plexer-fcgi --example hello`); by default it is looked for next to this binary, in
//! `examples/`. Progress goes to stderr, the tables to stdout.

use std::error::Error;
use std::fs::File;
use std::io::{self, Write};
use std::net::{TcpListener, TcpStream, UdpSocket};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use nix::unistd::Pid;
use plexer_bench::php_fpm::{self, FpmPm, PhpFpm};
use plexer_bench::supervised::{self, HelloPool, wait_until};
use plexer_bench::timing::{Summary, human, ratio};
use plexer_bench::{binaries, fcgi_get, machine};
use plexer_prefork::audit::{AuditPolicy, AuditRound, audit_process, shared_db_handles};
use plexer_prefork::pool::{Pm, PoolSettings};
use plexer_prefork::supervisor::Supervisor;
use plexer_tests::procfs;

type Result<T, E = Box<dyn Error>> = std::result::Result<T, E>;

/// Timed repetitions of each cold start (after one untimed run that fills the page cache).
const COLD_RUNS: usize = 30;
/// php-fpm scales to zero only after `pm.process_idle_timeout` (whole seconds) and its
/// once-a-second maintenance, so each of these runs costs about 2 s.
const FPM_SCALED_DOWN_RUNS: usize = 6;
const WARM_RUNS: usize = 30;
const AUDIT_RUNS: usize = 200;
/// The burst: this many parallel requests, each sleeping this long.
const BURST: usize = 40;
const BURST_SLEEP_MS: u64 = 6000;
/// How often the worker count is sampled during a burst.
const SAMPLE_EVERY: Duration = Duration::from_millis(100);
/// No burst may take longer than this (php-fpm took 23.9 s in the research).
const BURST_LIMIT: Duration = Duration::from_secs(60);
/// pm dynamic for both bursts.
const DYN_START: usize = 2;
const DYN_MIN_SPARE: usize = 1;
const DYN_MAX_SPARE: usize = 3;
const DYN_MAX_CHILDREN: usize = 64;

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("plexer-bench-pool: {err}");
            ExitCode::FAILURE
        }
    }
}

struct Args {
    hello: PathBuf,
    php_fpm: Option<PathBuf>,
}

fn parse_args() -> Result<Args> {
    let mut hello = None;
    let mut php_fpm = None;
    let mut args = std::env::args_os().skip(1);
    while let Some(arg) = args.next() {
        match arg.to_str() {
            Some("--hello") => hello = args.next().map(PathBuf::from),
            Some("--php-fpm") => php_fpm = args.next().map(PathBuf::from),
            _ => {
                return Err(format!(
                    "unknown argument {arg:?}\nusage: plexer-bench-pool [--hello PATH] \
                     [--php-fpm PATH]"
                )
                .into());
            }
        }
    }
    let hello = binaries::find(hello, "examples/hello", binaries::BUILD_HELLO)?;
    Ok(Args {
        hello,
        php_fpm: php_fpm.or_else(php_fpm::find),
    })
}

fn run() -> Result<()> {
    let args = parse_args()?;
    let out = &mut io::stdout().lock();
    // The audit runs first, before the runtime exists, so that "about 10 descriptors" is this
    // process as it starts.
    eprintln!("audit: {AUDIT_RUNS} runs with few descriptors, then with about 200");
    let audits = measure_own_audits()?;

    let scratch = tempfile::Builder::new()
        .prefix("plexer-bench-pool.")
        .tempdir()?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let result = runtime.block_on(measure_all(&args, scratch.path(), audits, out));
    // Whatever happened, nothing of ours may outlive the run.
    drop(runtime);
    result
}

/// One audit row: what was audited, how many descriptors, the timings.
struct AuditRow {
    what: String,
    descriptors: String,
    summary: Option<Summary>,
}

fn measure_own_audits() -> Result<Vec<AuditRow>> {
    let policy = AuditPolicy::new();
    let own = || audit_process(None, &policy).map(|r| r.descriptors().len());
    let mut rows = Vec::new();
    // The descriptors this process holds while `summary` was measured ("—" for the floor).
    let mut row = |what: &str, descriptors: Option<usize>, summary| {
        rows.push(AuditRow {
            what: what.to_owned(),
            descriptors: descriptors.map_or("—".to_owned(), |n| n.to_string()),
            summary,
        });
    };
    let fds = || Some(procfs::own_fd_count());
    row(
        "`audit_process(None, …)`, this process",
        fds(),
        time_audits(own)?,
    );

    // About 200 descriptors, none a socket: the audit then reads no socket table.
    let mut null_files = Vec::new();
    while procfs::own_fd_count() < 200 && null_files.len() < 1000 {
        null_files.push(File::open("/dev/null")?);
    }
    row(
        "`audit_process(None, …)`, this process, /dev/null only",
        fds(),
        time_audits(own)?,
    );
    drop(null_files);

    // One socket is enough to make the audit read the socket tables.
    let pair = UnixStream::pair()?;
    row(
        "`audit_process(None, …)`, this process, one unix socket pair",
        fds(),
        time_audits(own)?,
    );
    drop(pair);

    // About 200: a few sockets of each kind the audit classifies, then /dev/null.
    let mut held: Vec<Box<dyn std::any::Any>> = Vec::new();
    for _ in 0..4 {
        held.push(Box::new(UnixStream::pair()?));
    }
    let listener = TcpListener::bind("127.0.0.1:0")?;
    for _ in 0..3 {
        let client = TcpStream::connect(listener.local_addr()?)?;
        let (server, _) = listener.accept()?;
        held.push(Box::new((client, server)));
    }
    held.push(Box::new(listener));
    held.push(Box::new(UdpSocket::bind("127.0.0.1:0")?));
    let mut bounded = 0;
    while procfs::own_fd_count() < 200 && bounded < 1000 {
        held.push(Box::new(File::open("/dev/null")?));
        bounded += 1;
    }
    row(
        "`audit_process(None, …)`, this process, 16 sockets and /dev/null",
        fds(),
        time_audits(own)?,
    );

    // The floor of any audit that holds a socket: reading the kernel's tables, no parsing.
    let tables = ["tcp", "tcp6", "udp", "udp6", "unix"];
    let read_tables = || {
        tables.iter().try_fold(0, |bytes, table| {
            std::fs::read(format!("/proc/self/net/{table}")).map(|t| bytes + t.len())
        })
    };
    row(
        "floor: reading /proc/self/net/{tcp,tcp6,udp,udp6,unix}, no parsing",
        None,
        time_audits(read_tables)?,
    );
    let tcp_only = || std::fs::read("/proc/self/net/tcp").map(|t| t.len());
    row(
        "of which /proc/self/net/tcp alone",
        None,
        time_audits(tcp_only)?,
    );
    drop(held);
    Ok(rows)
}

/// Runs `audit` AUDIT_RUNS times; every run must succeed.
fn time_audits<E: Error + 'static>(
    mut audit: impl FnMut() -> Result<usize, E>,
) -> Result<Option<Summary>> {
    let mut samples = Vec::with_capacity(AUDIT_RUNS);
    for _ in 0..AUDIT_RUNS {
        let started = Instant::now();
        let seen = audit()?;
        samples.push(started.elapsed());
        std::hint::black_box(seen);
    }
    Ok(Summary::of(&mut samples))
}

/// Why php-fpm rows are missing, or the program to run.
type Fpm<'a> = std::result::Result<&'a Path, String>;

async fn measure_all(
    args: &Args,
    dir: &Path,
    mut audits: Vec<AuditRow>,
    out: &mut impl Write,
) -> Result<()> {
    let supervisor = Supervisor::start()?;
    let fpm: Fpm<'_> = args.php_fpm.as_deref().ok_or_else(|| {
        "php-fpm is not installed (no php-fpm8.2 or php-fpm on the PATH, nothing in \
         /usr/sbin/php-fpm*): `apt-get install php-fpm`"
            .to_owned()
    });
    let script = dir.join("index.php");
    std::fs::write(&script, php_fpm::SCRIPT)?;

    writeln!(out, "Machine: {}", machine::describe())?;
    writeln!(out, "hello: {}", args.hello.display())?;
    match fpm {
        Ok(program) => writeln!(
            out,
            "php-fpm: {} ({})",
            program.display(),
            php_fpm::version(program)
        )?,
        Err(ref why) => writeln!(out, "php-fpm: not measured: {why}")?,
    }
    writeln!(
        out,
        "Client for both: fastcgi-client 0.12 over unix sockets; one tokio current_thread \
         runtime.\n"
    )?;

    // 1. Spawn to first served request.
    eprintln!("plexer: {COLD_RUNS} cold starts of an ondemand hello pool");
    let plexer_cold = plexer_cold(&supervisor, &args.hello, dir).await?;
    eprintln!("plexer: {WARM_RUNS} requests to an idle worker");
    let plexer_warm = plexer_warm(&supervisor, &args.hello, dir).await?;
    let fpm_cold = match fpm {
        Ok(program) => {
            eprintln!("php-fpm: {COLD_RUNS} cold starts (a fresh master each)");
            fpm_cold_after_start(program, dir, &script)
                .await
                .map_err(|e| e.to_string())
        }
        Err(ref why) => Err(why.clone()),
    };
    let fpm_idle = match fpm {
        Ok(program) => {
            eprintln!(
                "php-fpm: {FPM_SCALED_DOWN_RUNS} cold starts after scaling to zero, then \
                 {WARM_RUNS} warm requests"
            );
            fpm_scaled_down_and_warm(program, dir, &script)
                .await
                .map_err(|e| e.to_string())
        }
        Err(ref why) => Err(why.clone()),
    };
    print_first_request(
        out,
        plexer_cold,
        plexer_warm,
        fpm_cold.as_ref(),
        fpm_idle.as_ref(),
    )?;

    // 2. The burst, plexer then php-fpm.
    eprintln!("plexer: burst of {BURST} × {BURST_SLEEP_MS} ms against pm dynamic");
    let plexer_burst = plexer_burst(&supervisor, &args.hello, dir).await?;
    let fpm_burst = match fpm {
        Ok(program) => {
            eprintln!("php-fpm: burst of {BURST} × {BURST_SLEEP_MS} ms against pm dynamic");
            fpm_burst(program, dir, &script)
                .await
                .map_err(|e| e.to_string())
        }
        Err(ref why) => Err(why.clone()),
    };
    print_burst(out, &plexer_burst, fpm_burst.as_ref())?;

    // 3. Audits of other processes.
    eprintln!("audit: a pool of 4 hello workers");
    audits.extend(pool_audits(&supervisor, &args.hello, dir).await?);
    print_audits(out, &audits)?;
    Ok(())
}

fn settings(pm: Pm, max_children: usize) -> PoolSettings {
    PoolSettings {
        pm,
        max_children,
        max_requests: 0,
        max_requests_jitter: 0,
        queue_timeout: supervised::REQUEST_TIMEOUT,
        ..PoolSettings::default()
    }
}

fn pid_in(answer: &[u8]) -> Option<u32> {
    let text = String::from_utf8_lossy(answer);
    let at = text.find("pid: ")?;
    text[at + 5..]
        .split(|c: char| !c.is_ascii_digit())
        .next()?
        .parse()
        .ok()
}

/// From `acquire()` on a pool with no worker to hello's answer, each time after the pool
/// scaled back to zero.
async fn plexer_cold(supervisor: &Supervisor, hello: &Path, dir: &Path) -> Result<Summary> {
    let idle_timeout = Duration::from_millis(100);
    let pool = HelloPool::start(
        supervisor,
        hello,
        dir,
        "cold",
        settings(Pm::Ondemand { idle_timeout }, 4),
    )?;
    let mut samples = Vec::with_capacity(COLD_RUNS);
    let mut last: Option<u32> = None;
    for run in 0..=COLD_RUNS {
        wait_until("the pool scaled to zero", Duration::from_secs(10), || {
            pool.pids().is_empty() && last.is_none_or(|pid| !procfs::running(pid))
        })
        .await?;
        let started = Instant::now();
        let answer = pool.serve("/cold").await?;
        let took = started.elapsed();
        last = pid_in(&answer);
        // Run 0 only brings hello into the page cache.
        if run > 0 {
            samples.push(took);
        }
    }
    pool.drain().await;
    Summary::of(&mut samples).ok_or_else(|| "no samples".into())
}

/// `acquire()` and one request on an idle worker.
async fn plexer_warm(supervisor: &Supervisor, hello: &Path, dir: &Path) -> Result<Summary> {
    let idle_timeout = Duration::from_secs(60);
    let pool = HelloPool::start(
        supervisor,
        hello,
        dir,
        "warm",
        settings(Pm::Ondemand { idle_timeout }, 4),
    )?;
    pool.serve("/first").await?;
    let mut samples = Vec::with_capacity(WARM_RUNS);
    for _ in 0..WARM_RUNS {
        let started = Instant::now();
        pool.serve("/warm").await?;
        samples.push(started.elapsed());
    }
    pool.drain().await;
    Summary::of(&mut samples).ok_or_else(|| "no samples".into())
}

/// From `connect()` to the answer, on a php-fpm ondemand master that has just started (no
/// child yet); a fresh master each run.
async fn fpm_cold_after_start(program: &Path, dir: &Path, script: &Path) -> Result<Summary> {
    let pm = FpmPm::Ondemand {
        max_children: 4,
        idle_timeout_s: 10,
    };
    let mut samples = Vec::with_capacity(COLD_RUNS);
    for run in 0..=COLD_RUNS {
        let fpm = PhpFpm::start(program, &dir.join(format!("fpm-cold-{run}")), "cold", pm).await?;
        let children = fpm.workers();
        if children != 0 {
            return Err(format!("php-fpm ondemand started with {children} children").into());
        }
        let started = Instant::now();
        timed_get(fpm.socket(), "/index.php", script).await?;
        let took = started.elapsed();
        drop(fpm);
        if run > 0 {
            samples.push(took);
        }
    }
    Summary::of(&mut samples).ok_or_else(|| "no samples".into())
}

/// One master: cold requests after it scaled to zero, then warm requests to an idle child.
async fn fpm_scaled_down_and_warm(
    program: &Path,
    dir: &Path,
    script: &Path,
) -> Result<(Summary, Summary)> {
    let pm = FpmPm::Ondemand {
        max_children: 4,
        idle_timeout_s: 1,
    };
    let fpm = PhpFpm::start(program, &dir.join("fpm-idle"), "idle", pm).await?;
    // Compiles the script into OPcache; every later run finds it there.
    timed_get(fpm.socket(), "/index.php", script).await?;
    let mut cold = Vec::with_capacity(FPM_SCALED_DOWN_RUNS);
    for _ in 0..FPM_SCALED_DOWN_RUNS {
        wait_until("php-fpm scaled to zero", Duration::from_secs(10), || {
            fpm.workers() == 0
        })
        .await?;
        let started = Instant::now();
        timed_get(fpm.socket(), "/index.php", script).await?;
        cold.push(started.elapsed());
    }
    let mut warm = Vec::with_capacity(WARM_RUNS);
    for _ in 0..WARM_RUNS {
        let started = Instant::now();
        timed_get(fpm.socket(), "/index.php", script).await?;
        warm.push(started.elapsed());
    }
    drop(fpm);
    Ok((
        Summary::of(&mut cold).ok_or("no samples")?,
        Summary::of(&mut warm).ok_or("no samples")?,
    ))
}

async fn timed_get(socket: &Path, uri: &str, script: &Path) -> Result<Vec<u8>> {
    let answer = tokio::time::timeout(
        supervised::REQUEST_TIMEOUT,
        fcgi_get::get(socket, uri, script),
    )
    .await
    .map_err(|_| {
        format!(
            "no answer to {uri} within {:?}",
            supervised::REQUEST_TIMEOUT
        )
    })??;
    Ok(answer)
}

fn print_first_request(
    out: &mut impl Write,
    plexer_cold: Summary,
    plexer_warm: Summary,
    fpm_cold: std::result::Result<&Summary, &String>,
    fpm_idle: std::result::Result<&(Summary, Summary), &String>,
) -> io::Result<()> {
    writeln!(out, "### Spawn to first served request\n")?;
    writeln!(
        out,
        "| server | case | runs | median | min | p90 | max | plexer ÷ php-fpm (median time) |"
    )?;
    writeln!(out, "|---|---|---:|---:|---:|---:|---:|---:|")?;
    let row = |out: &mut dyn Write, server: &str, case: &str, s: &Summary, vs: String| {
        writeln!(
            out,
            "| {server} | {case} | {} | {} | {} | {} | {} | {vs} |",
            s.runs,
            human(s.median),
            human(s.min),
            human(s.p90),
            human(s.max)
        )
    };
    let missing = |out: &mut dyn Write, server: &str, case: &str, why: &str| {
        writeln!(
            out,
            "| {server} | {case} | 0 | not measured: {} | | | | |",
            first_line(why)
        )
    };
    let fpm_cold_median = fpm_cold.ok().map(|s| s.median);
    let fpm_idle_median = fpm_idle.ok().map(|(cold, _)| cold.median);
    let fpm_warm_median = fpm_idle.ok().map(|(_, warm)| warm.median);
    let cold_case = "cold: `acquire()` on a pool with no worker → answer";
    row(
        out,
        "plexer, ondemand, hello",
        cold_case,
        &plexer_cold,
        format!(
            "{} (after start), {} (after scale to zero)",
            ratio(Some(plexer_cold.median), fpm_cold_median),
            ratio(Some(plexer_cold.median), fpm_idle_median)
        ),
    )?;
    let fpm_server = "php-fpm, ondemand, trivial script";
    match fpm_cold {
        Ok(s) => row(
            out,
            fpm_server,
            "cold: `connect()` right after the master started → answer",
            s,
            "—".into(),
        )?,
        Err(why) => missing(out, fpm_server, "cold, right after start", why)?,
    }
    match fpm_idle {
        Ok((cold, _)) => row(
            out,
            fpm_server,
            "cold: `connect()` after it scaled to zero → answer",
            cold,
            "—".into(),
        )?,
        Err(why) => missing(out, fpm_server, "cold, after scale to zero", why)?,
    }
    row(
        out,
        "plexer, ondemand, hello",
        "warm: `acquire()` + request on an idle worker",
        &plexer_warm,
        ratio(Some(plexer_warm.median), fpm_warm_median),
    )?;
    match fpm_idle {
        Ok((_, warm)) => row(
            out,
            fpm_server,
            "warm: request to an idle child",
            warm,
            "—".into(),
        )?,
        Err(why) => missing(out, fpm_server, "warm", why)?,
    }
    writeln!(out)?;
    let mut reasons: Vec<&String> = [fpm_cold.err(), fpm_idle.err()]
        .into_iter()
        .flatten()
        .collect();
    reasons.dedup();
    for why in reasons {
        writeln!(
            out,
            "php-fpm not measured:\n\n```text\n{}\n```\n",
            why.trim_end()
        )?;
    }
    Ok(())
}

/// The first line of a reason, for a table cell.
fn first_line(why: &str) -> &str {
    why.lines().next().unwrap_or_default()
}

/// What one burst showed.
struct BurstResult {
    /// From the launch to each answer, sorted.
    answers: Vec<Duration>,
    failures: Vec<String>,
    /// (since the launch, workers)
    samples: Vec<(Duration, usize)>,
    /// Wall-clock time of the launch, to place php-fpm's log lines.
    launched_at: SystemTime,
    /// php-fpm's log lines about spawning.
    spawn_log: Vec<String>,
}

impl BurstResult {
    fn last(&self) -> Option<Duration> {
        self.answers.last().copied()
    }

    fn peak(&self) -> usize {
        self.samples.iter().map(|&(_, n)| n).max().unwrap_or(0)
    }

    fn first_reaching(&self, workers: usize) -> Option<Duration> {
        self.samples
            .iter()
            .find(|&&(_, n)| n >= workers)
            .map(|&(at, _)| at)
    }

    /// The worker count sampled last at or before `at`.
    fn workers_at(&self, at: Duration) -> Option<usize> {
        self.samples
            .iter()
            .take_while(|&&(t, _)| t <= at)
            .last()
            .map(|&(_, n)| n)
    }
}

/// Launches BURST requests at once with `request` and samples `workers` until the last one
/// is answered (or BURST_LIMIT passed).
async fn burst<F>(
    mut workers: impl FnMut() -> usize,
    request: impl Fn(usize) -> F,
) -> Result<BurstResult>
where
    F: Future<Output = Result<Vec<u8>, String>> + 'static,
{
    let launched_at = SystemTime::now();
    let started = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..BURST {
        let request = request(i);
        tasks.spawn_local(async move {
            let result = request.await;
            (started.elapsed(), result)
        });
    }
    let mut samples = vec![(Duration::ZERO, workers())];
    let mut answers = Vec::with_capacity(BURST);
    let mut failures = Vec::new();
    let mut tick = tokio::time::interval(SAMPLE_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let deadline = tokio::time::sleep(BURST_LIMIT);
    tokio::pin!(deadline);
    while !tasks.is_empty() {
        tokio::select! {
            joined = tasks.join_next() => match joined {
                Some(Ok((at, Ok(_)))) => answers.push(at),
                Some(Ok((_, Err(err)))) => failures.push(err),
                Some(Err(err)) => failures.push(format!("task failed: {err}")),
                None => break,
            },
            _ = tick.tick() => samples.push((started.elapsed(), workers())),
            () = &mut deadline => {
                failures.push(format!("{} requests unanswered after {BURST_LIMIT:?}", tasks.len()));
                tasks.abort_all();
                break;
            }
        }
    }
    samples.push((started.elapsed(), workers()));
    answers.sort_unstable();
    Ok(BurstResult {
        answers,
        failures,
        samples,
        launched_at,
        spawn_log: Vec::new(),
    })
}

fn burst_settings() -> PoolSettings {
    settings(
        Pm::Dynamic {
            start: DYN_START,
            min_spare: DYN_MIN_SPARE,
            max_spare: DYN_MAX_SPARE,
        },
        DYN_MAX_CHILDREN,
    )
}

async fn plexer_burst(supervisor: &Supervisor, hello: &Path, dir: &Path) -> Result<BurstResult> {
    let pool = HelloPool::start(supervisor, hello, dir, "burst", burst_settings())?;
    wait_until(
        "the dynamic pool runs its start workers",
        Duration::from_secs(10),
        || pool.idle_pids().len() == DYN_START,
    )
    .await?;
    let handle = pool.handle().clone();
    let local = tokio::task::LocalSet::new();
    let result = local
        .run_until(burst(
            || pool.live_workers(),
            |i| {
                let handle = handle.clone();
                async move {
                    let uri = format!("/burst/{i}?sleep={BURST_SLEEP_MS}");
                    supervised::serve(&handle, &uri)
                        .await
                        .map_err(|e| e.to_string())
                }
            },
        ))
        .await?;
    pool.drain().await;
    Ok(result)
}

async fn fpm_burst(program: &Path, dir: &Path, script: &Path) -> Result<BurstResult> {
    let pm = FpmPm::Dynamic {
        start: DYN_START,
        min_spare: DYN_MIN_SPARE,
        max_spare: DYN_MAX_SPARE,
        max_children: DYN_MAX_CHILDREN,
    };
    let fpm = PhpFpm::start(program, &dir.join("fpm-burst"), "burst", pm).await?;
    wait_until(
        "php-fpm runs its start_servers",
        Duration::from_secs(10),
        || fpm.workers() == DYN_START,
    )
    .await?;
    let socket = fpm.socket().to_owned();
    let local = tokio::task::LocalSet::new();
    let mut result = local
        .run_until(burst(
            || fpm.workers(),
            |_| {
                let socket = socket.clone();
                let script = script.to_owned();
                async move {
                    let uri = format!("/index.php?sleep={BURST_SLEEP_MS}");
                    timed_get(&socket, &uri, &script)
                        .await
                        .map_err(|e| e.to_string())
                }
            },
        ))
        .await?;
    result.spawn_log = fpm
        .log()
        .lines()
        .filter(|l| l.contains("spawning") || l.contains("max_children"))
        .map(str::to_owned)
        .collect();
    drop(fpm);
    Ok(result)
}

fn clock(at: SystemTime) -> String {
    let since = at.duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = since.as_secs() % 86_400;
    format!(
        "{:02}:{:02}:{:02}.{:03} UTC",
        secs / 3600,
        secs / 60 % 60,
        secs % 60,
        since.subsec_millis()
    )
}

fn print_burst(
    out: &mut impl Write,
    plexer: &BurstResult,
    fpm: std::result::Result<&BurstResult, &String>,
) -> io::Result<()> {
    writeln!(
        out,
        "### Burst: {BURST} parallel {}-second requests, pm dynamic (start {DYN_START}, \
         min_spare {DYN_MIN_SPARE}, max_spare {DYN_MAX_SPARE}, max_children {DYN_MAX_CHILDREN})\n",
        BURST_SLEEP_MS / 1000
    )?;
    writeln!(
        out,
        "| server | answered | first answer | median answer | last answer (wall time) | peak \
         workers | {BURST} workers reached at | plexer ÷ php-fpm (wall time) |"
    )?;
    writeln!(out, "|---|---:|---:|---:|---:|---:|---:|---:|")?;
    let row = |out: &mut dyn Write, server: &str, r: &BurstResult, vs: String| {
        let at = |d: Option<Duration>| d.map_or("—".to_owned(), human);
        writeln!(
            out,
            "| {server} | {}/{BURST} | {} | {} | {} | {} | {} | {vs} |",
            r.answers.len(),
            at(r.answers.first().copied()),
            at(r.answers.get(r.answers.len() / 2).copied()),
            at(r.last()),
            r.peak(),
            at(r.first_reaching(BURST)),
        )
    };
    row(
        out,
        "plexer, hello `?sleep=6000`",
        plexer,
        ratio(plexer.last(), fpm.ok().and_then(BurstResult::last)),
    )?;
    match fpm {
        Ok(r) => row(out, "php-fpm, `usleep(6000000)`", r, "—".into())?,
        Err(why) => writeln!(
            out,
            "| php-fpm | not measured: {} | | | | | | |",
            first_line(why)
        )?,
    }
    writeln!(out)?;
    if let Err(why) = fpm {
        writeln!(
            out,
            "php-fpm not measured:\n\n```text\n{}\n```\n",
            why.trim_end()
        )?;
    }
    for (name, r) in [("plexer", Ok(plexer)), ("php-fpm", fpm)] {
        if let Ok(r) = r
            && !r.failures.is_empty()
        {
            writeln!(out, "{name} failures: {}\n", r.failures.join("; "))?;
        }
    }

    // Workers over time, sampled every SAMPLE_EVERY.
    writeln!(
        out,
        "Workers over time (processes; sampled every {} ms):\n",
        SAMPLE_EVERY.as_millis()
    )?;
    writeln!(out, "| since launch | plexer | php-fpm |")?;
    writeln!(out, "|---:|---:|---:|")?;
    let end = plexer
        .last()
        .max(fpm.ok().and_then(BurstResult::last))
        .unwrap_or(BURST_LIMIT);
    let mut marks = vec![
        Duration::ZERO,
        Duration::from_millis(100),
        Duration::from_millis(250),
        Duration::from_millis(500),
    ];
    let whole = end.as_secs() + 1;
    marks.extend((1..=whole).map(Duration::from_secs));
    for at in marks {
        let count = |r: &BurstResult| {
            if r.last().is_some_and(|last| at > last + SAMPLE_EVERY) {
                "(done)".to_owned()
            } else {
                r.workers_at(at).map_or("—".to_owned(), |n| n.to_string())
            }
        };
        let fpm_count = fpm.ok().map_or("—".to_owned(), count);
        writeln!(
            out,
            "| {:.2} s | {} | {fpm_count} |",
            at.as_secs_f64(),
            count(plexer)
        )?;
    }
    writeln!(out)?;
    if let Ok(r) = fpm {
        writeln!(
            out,
            "php-fpm's log about spawning ({} lines; burst launched at {}):\n",
            r.spawn_log.len(),
            clock(r.launched_at)
        )?;
        writeln!(out, "```text")?;
        for line in &r.spawn_log {
            writeln!(out, "{line}")?;
        }
        writeln!(out, "```\n")?;
    }
    Ok(())
}

async fn pool_audits(supervisor: &Supervisor, hello: &Path, dir: &Path) -> Result<Vec<AuditRow>> {
    let pool = HelloPool::start(supervisor, hello, dir, "audit", settings(Pm::Static, 8))?;
    wait_until("8 hello workers are idle", Duration::from_secs(10), || {
        pool.idle_pids().len() == 8
    })
    .await?;
    let pids: Vec<Pid> = pool.idle_pids();
    let four = &pids[..4];
    let policy = AuditPolicy::new();
    let descriptors = audit_process(Some(pids[0]), &policy)?.descriptors().len();
    let one = time_audits(|| audit_process(Some(pids[0]), &policy).map(|r| r.descriptors().len()))?;
    let shared = time_audits(|| shared_db_handles(four, &policy).map(|found| found.len()))?;
    let round = time_audits(|| {
        AuditRound::start()
            .audit_pool(&pids, &policy)
            .map(|f| f.len())
    })?;
    pool.drain().await;

    let forked = ForkedSockets::start(8)?;
    let sharing = time_audits(|| {
        AuditRound::start()
            .audit_pool(&[forked.leader()], &policy)
            .map(|found| found.len())
    })?;
    let found = AuditRound::start().audit_pool(&[forked.leader()], &policy)?;
    drop(forked);
    Ok(vec![
        AuditRow {
            what: "`audit_process(Some(pid), …)`, one hello worker".to_owned(),
            descriptors: descriptors.to_string(),
            summary: one,
        },
        AuditRow {
            what: "`shared_db_handles` over 4 workers of a static pool".to_owned(),
            descriptors: format!("4 × {descriptors}"),
            summary: shared,
        },
        AuditRow {
            what: "pool audit (`AuditRound::start` + `audit_pool`), 8 hello workers".to_owned(),
            descriptors: format!("8 × {descriptors}"),
            summary: round,
        },
        AuditRow {
            what: format!(
                "pool audit, a python3 parent and 7 forked children sharing a TCP connection, a \
                 unix socket pair and a UDP socket ({} found)",
                found.len()
            ),
            descriptors: "8 × 8".to_owned(),
            summary: sharing,
        },
    ])
}

/// A python3 process that opens a TCP connection (to a listener of ours), a unix socket pair
/// and a UDP socket, then forks `processes - 1` children that keep them: the pool audit's
/// worst case, where every socket is held by every process and is classified.
struct ForkedSockets {
    child: std::process::Child,
    _listener: TcpListener,
}

impl ForkedSockets {
    fn start(processes: usize) -> Result<Self> {
        use std::io::{BufRead, BufReader};
        use std::os::unix::process::CommandExt;
        let listener = TcpListener::bind("127.0.0.1:0")?;
        let port = listener.local_addr()?.port();
        let script = format!(
            "import os, socket, sys, time\n\
             c = socket.create_connection(('127.0.0.1', {port}))\n\
             a, b = socket.socketpair()\n\
             u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); u.bind(('127.0.0.1', 0))\n\
             for _ in range({children}):\n\
             \x20   if os.fork() == 0:\n\
             \x20       time.sleep(300); os._exit(0)\n\
             print('ready', flush=True)\n\
             time.sleep(300)\n",
            children = processes - 1
        );
        let mut child = std::process::Command::new("python3")
            .args(["-c", &script])
            .stdout(std::process::Stdio::piped())
            .process_group(0)
            .spawn()?;
        let mut line = String::new();
        BufReader::new(child.stdout.take().expect("piped")).read_line(&mut line)?;
        if line.trim() != "ready" {
            return Err("the python3 sockets process did not start".into());
        }
        Ok(ForkedSockets {
            child,
            _listener: listener,
        })
    }

    fn leader(&self) -> Pid {
        Pid::from_raw(self.child.id() as i32)
    }
}

impl Drop for ForkedSockets {
    fn drop(&mut self) {
        // The children are in the parent's process group, which it leads.
        let _ = nix::sys::signal::killpg(self.leader(), nix::sys::signal::Signal::SIGKILL);
        let _ = self.child.wait();
    }
}

fn print_audits(out: &mut impl Write, rows: &[AuditRow]) -> io::Result<()> {
    writeln!(
        out,
        "### The cost of one audit (`AuditPolicy::new()`, {AUDIT_RUNS} runs each)\n"
    )?;
    writeln!(out, "| audit | descriptors | median | min | p90 | max |")?;
    writeln!(out, "|---|---:|---:|---:|---:|---:|")?;
    for row in rows {
        match &row.summary {
            Some(s) => writeln!(
                out,
                "| {} | {} | {} | {} | {} | {} |",
                row.what,
                row.descriptors,
                human(s.median),
                human(s.min),
                human(s.p90),
                human(s.max)
            )?,
            None => writeln!(
                out,
                "| {} | {} | no runs | | | |",
                row.what, row.descriptors
            )?,
        }
    }
    writeln!(out)
}
