//! `plexer-bench-authorizer`: what routing by an authorizer costs a request beside routing by
//! the signed cookie (issue 12). Three `plexer serve` processes, each with the accounts login,
//! auth and bob (one hello worker each, `pm: static`):
//! - `cookie`: `route.by: cookie`, requests carry bob's signed routing cookie;
//! - `authorizer, cached`: `route.by: authorizer` with `authorizer.cache`, every request after
//!   the first a cache hit;
//! - `authorizer, no cache`: every request one FastCGI round trip to the authorizer's worker.
//!
//! One client sends GETs one after another on one kept FastCGI connection; rounds interleave
//! the three. The table gives, per request, plexer's own CPU time (every thread's, from
//! /proc/PID/task/*/schedstat, in nanoseconds: the cost routing adds, and far less noisy on a
//! shared machine than latency) and the latency the client saw, as medians of the rounds, and
//! each one's difference from `cookie`.

use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};
use std::time::{Duration, Instant};

use plexer_bench::guard::Server;
use plexer_fcgi::{ClientConnection, ClientEvent, Limits, Outbox, Params, Role};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::UnixStream;

type Result<T> = std::result::Result<T, Box<dyn std::error::Error>>;

const REQUESTS: usize = 2000;
const ROUNDS: usize = 7;

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("plexer-bench-authorizer: {err}");
            ExitCode::FAILURE
        }
    }
}

/// One `plexer serve` and the cookie its requests carry.
struct Setup {
    name: &'static str,
    server: Server,
    socket: PathBuf,
    cookie: String,
}

fn run() -> Result<()> {
    let plexer_bench::binaries::PlexerAndHello { plexer, hello } =
        plexer_bench::binaries::PlexerAndHello::from_args();
    let dir = tempfile::tempdir()?;
    let modes: [(&str, &str); 3] = [
        ("cookie", "route: { by: cookie }\n"),
        (
            "authorizer, cached",
            "route: { by: authorizer }\nauthorizer: { account: auth, cache: { cookie: hello_session, ttl: 1h } }\n",
        ),
        (
            "authorizer, no cache",
            "route: { by: authorizer }\nauthorizer: { account: auth }\n",
        ),
    ];
    let mut setups = Vec::new();
    for (i, (name, route)) in modes.into_iter().enumerate() {
        setups.push(start(
            &plexer,
            &hello,
            &dir.path().join(i.to_string()),
            name,
            route,
        )?);
    }
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let mut per_request: Vec<Vec<f64>> = vec![Vec::new(); setups.len()];
    let mut cpu_per_request: Vec<Vec<f64>> = vec![Vec::new(); setups.len()];
    runtime.block_on(async {
        for setup in &setups {
            time_requests(setup, 200).await?; // warm: workers, connections, the cache
        }
        for _ in 0..ROUNDS {
            for (i, setup) in setups.iter().enumerate() {
                let cpu_before = cpu_ns(setup.server.pid());
                let took = time_requests(setup, REQUESTS).await?;
                let cpu = cpu_ns(setup.server.pid()).saturating_sub(cpu_before);
                per_request[i].push(took.as_secs_f64() * 1e6 / REQUESTS as f64);
                cpu_per_request[i].push(cpu as f64 / 1e3 / REQUESTS as f64);
            }
        }
        Ok::<(), Box<dyn std::error::Error>>(())
    })?;
    print_table(&setups, &cpu_per_request, &per_request)?;
    for setup in &mut setups {
        setup.server.check_running("the end of the benchmark")?;
    }
    Ok(())
}

fn start(
    plexer: &Path,
    hello: &Path,
    dir: &Path,
    name: &'static str,
    route: &str,
) -> Result<Setup> {
    std::fs::create_dir_all(dir.join("accounts.d"))?;
    for (account, text) in [("login", "{}"), ("auth", "{}"), ("bob", "users: [bob]")] {
        std::fs::write(dir.join(format!("accounts.d/{account}.yaml")), text)?;
    }
    std::fs::write(
        dir.join("secret"),
        format!("{}\n", "bench-secret-".repeat(4)),
    )?;
    std::fs::set_permissions(
        dir.join("secret"),
        std::os::unix::fs::PermissionsExt::from_mode(0o600),
    )?;
    let socket = dir.join("plexer.sock");
    let config = format!(
        "listen: unix:{}\naccounts_dir: accounts.d\nruntime_dir: run\nsecret_file: secret\n\
         login: {{ account: login }}\n{route}pool:\n  command: [{:?}]\n  pm: static\n  \
         max_children: 1\n  max_requests: 0\n  audit: \"off\"\n",
        socket.display(),
        hello.display().to_string(),
    );
    let config_path = dir.join("plexer.yaml");
    std::fs::write(&config_path, config)?;
    let mut command = plexer_tests::build::serve_command(plexer);
    command.arg("-c").arg(&config_path);
    let mut server = Server::spawn(name, &mut command, &dir.join("plexer.log"))?;
    server.wait_ready("listening", || {
        std::os::unix::net::UnixStream::connect(&socket).is_ok()
    })?;
    let cookie = match route.contains("authorizer") {
        true => "hello_session=bob".to_owned(),
        false => {
            let signed = Command::new(plexer)
                .args(["cookie", "sign", "bob", "-c"])
                .arg(&config_path)
                .output()?;
            let value = String::from_utf8(signed.stdout)?.trim().to_owned();
            format!("plexer_account={value}")
        }
    };
    Ok(Setup {
        name,
        server,
        socket,
        cookie,
    })
}

/// Sends `count` GETs one after another on one kept connection; checks each reached bob.
async fn time_requests(setup: &Setup, count: usize) -> Result<Duration> {
    let mut stream = UnixStream::connect(&setup.socket).await?;
    let mut conn = ClientConnection::new(Limits::default());
    let params: Params = [
        ("REQUEST_METHOD", "GET"),
        ("REQUEST_URI", "/bench"),
        ("DOCUMENT_URI", "/bench"),
        ("QUERY_STRING", ""),
        ("SERVER_NAME", "localhost"),
        ("REMOTE_ADDR", "127.0.0.1"),
        ("HTTP_COOKIE", setup.cookie.as_str()),
    ]
    .into_iter()
    .map(|(name, value)| (name.to_owned(), value.to_owned()))
    .collect();
    let started = Instant::now();
    for _ in 0..count {
        let id = conn.begin_request(Role::Responder, true, &params)?;
        conn.stdin_end(id)?;
        write_outbox(&mut stream, conn.outbox()).await?;
        let mut stdout = Vec::new();
        'answer: loop {
            while let Some(event) = conn.poll_event()? {
                match event {
                    ClientEvent::Stdout { data, .. } => stdout.extend_from_slice(&data),
                    ClientEvent::End { .. } => break 'answer,
                    _ => {}
                }
            }
            conn.read_buf().reserve(16 * 1024);
            if stream.read_buf(conn.read_buf()).await? == 0 {
                return Err(format!("{}: plexer closed the connection", setup.name).into());
            }
        }
        if !stdout.windows(12).any(|w| w == b"account: bob") {
            let text = String::from_utf8_lossy(&stdout);
            return Err(format!("{}: the answer is not bob's: {text}", setup.name).into());
        }
    }
    Ok(started.elapsed())
}

async fn write_outbox(stream: &mut UnixStream, outbox: &mut Outbox) -> std::io::Result<()> {
    while !outbox.is_empty() {
        let mut slices = [std::io::IoSlice::new(&[]); 16];
        let count = outbox.io_slices(&mut slices);
        let written = stream.write_vectored(&slices[..count]).await?;
        bytes::Buf::advance(outbox, written);
    }
    Ok(())
}

fn median(values: &[f64]) -> f64 {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    sorted[sorted.len() / 2]
}

fn print_table(setups: &[Setup], cpu: &[Vec<f64>], latency: &[Vec<f64>]) -> std::io::Result<()> {
    use std::io::Write;
    let out = &mut std::io::stdout().lock();
    let (cpu_cookie, latency_cookie) = (median(&cpu[0]), median(&latency[0]));
    writeln!(
        out,
        "\n### Routing by the authorizer beside the cookie ({ROUNDS} interleaved rounds of \
         {REQUESTS} sequential GETs on one kept connection)\n"
    )?;
    writeln!(
        out,
        "| route | plexer CPU µs/request, median (min–max) | beside cookie | latency µs, median | beside cookie |"
    )?;
    writeln!(out, "|---|---|---|---|---|")?;
    for ((setup, cpu), latency) in setups.iter().zip(cpu).zip(latency) {
        let (min, max) = cpu
            .iter()
            .fold((f64::MAX, 0f64), |(lo, hi), v| (lo.min(*v), hi.max(*v)));
        let (cpu, latency) = (median(cpu), median(latency));
        writeln!(
            out,
            "| {} | {cpu:.2} ({min:.2}–{max:.2}) | {:+.2} | {latency:.1} | {:+.1} |",
            setup.name,
            cpu - cpu_cookie,
            latency - latency_cookie
        )?;
    }
    Ok(())
}

/// CPU time of every thread of process `pid` so far, in nanoseconds (schedstat's first field).
fn cpu_ns(pid: u32) -> u64 {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return 0;
    };
    tasks
        .flatten()
        .filter_map(|task| std::fs::read_to_string(task.path().join("schedstat")).ok())
        .filter_map(|stat| stat.split_whitespace().next()?.parse::<u64>().ok())
        .sum()
}
