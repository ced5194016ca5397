//! `plexer-bench-bodies`: a 1 GiB download and a 1 GiB upload through nginx → plexer serve →
//! hello beside nginx → hello directly (`plexer spawn`, the workers' shared socket), and how
//! much plexer's memory grew (issue 15: at least 0.8× the direct throughput, RSS growth under
//! 16 MiB). Rounds interleave the two paths; one HTTP/1.1 client, the body streamed.
//!
//! nginx buffers both ways as deployed by default (`fastcgi_request_buffering`,
//! `fastcgi_buffering` on): the upload is written to its temporary file before it goes on, the
//! download may be. That is the same for both paths.

use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{Ipv4Addr, TcpStream};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use plexer_bench::nginx::{self, Nginx};
use plexer_bench::plexer_cli::{self, PlexerProcess, ServeShape};

type Result<T> = std::result::Result<T, Box<dyn std::error::Error>>;

const SIZE: u64 = 1 << 30;
const ROUNDS: usize = 3;
const WORKERS: usize = 2;

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("plexer-bench-bodies: {err}");
            ExitCode::FAILURE
        }
    }
}

fn run() -> Result<()> {
    let plexer_bench::binaries::PlexerAndHello { plexer, hello } =
        plexer_bench::binaries::PlexerAndHello::from_args();
    let nginx_program = nginx::given_or_found(None)?;
    let dir = tempfile::tempdir()?;
    let served = plexer_cli::serve(
        &plexer,
        &dir.path().join("serve"),
        &[&hello],
        ServeShape::workers(WORKERS),
        &[],
    )?;
    let direct = plexer_cli::spawn(&plexer, &dir.path().join("spawn"), &[&hello], WORKERS, &[])?;
    let script = dir.path().join("none.php");
    let paths: [(&str, &PlexerProcess); 2] = [("plexer serve", &served), ("direct", &direct)];
    let mut fronts = Vec::new();
    for (i, (_, server)) in paths.iter().enumerate() {
        let front_dir = dir.path().join(format!("nginx-{i}"));
        fronts.push(Nginx::start(
            &nginx_program,
            &front_dir,
            &server.socket,
            &script,
            false,
        )?);
    }
    let rss_before = plexer_tests::procfs::rss_kib(served.server.pid()).unwrap_or(0);
    let mut rss_peak = rss_before;
    // [path][download, upload] → MB/s per round
    let mut rates = [[Vec::new(), Vec::new()], [Vec::new(), Vec::new()]];
    for round in 0..ROUNDS {
        for (i, front) in fronts.iter().enumerate() {
            eprintln!("round {}/{ROUNDS}: {}", round + 1, paths[i].0);
            let sampler = RssSampler::start(served.server.pid());
            rates[i][0].push(mb_per_s(download(front.port)?));
            rates[i][1].push(mb_per_s(upload(front.port)?));
            rss_peak = rss_peak.max(sampler.stop());
        }
    }
    let median = |v: &[f64]| {
        let mut v = v.to_vec();
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    let out = &mut io::stdout().lock();
    writeln!(
        out,
        "\n### 1 GiB bodies through nginx, {ROUNDS} interleaved rounds (MB/s, median and each round)\n"
    )?;
    writeln!(
        out,
        "| body | plexer serve | direct | serve ÷ direct | goal |"
    )?;
    writeln!(out, "|---|---|---|---:|---|")?;
    for (k, body) in ["download", "upload"].iter().enumerate() {
        let (s, d) = (median(&rates[0][k]), median(&rates[1][k]));
        let show = |v: &[f64]| {
            v.iter()
                .map(|r| format!("{r:.0}"))
                .collect::<Vec<_>>()
                .join(" / ")
        };
        let ratio = s / d;
        writeln!(
            out,
            "| {body} | {s:.0} ({}) | {d:.0} ({}) | {ratio:.2}× | at least 0.8×: {} |",
            show(&rates[0][k]),
            show(&rates[1][k]),
            if ratio >= 0.8 { "met" } else { "missed" }
        )?;
    }
    let growth = rss_peak.saturating_sub(rss_before) as f64 / 1024.0;
    writeln!(
        out,
        "\nplexer serve RSS: {:.1} MiB before, {:.1} MiB at most while the bodies passed: grew {growth:.1} MiB (goal under 16 MiB: {})",
        rss_before as f64 / 1024.0,
        rss_peak as f64 / 1024.0,
        if growth < 16.0 { "met" } else { "missed" }
    )?;
    Ok(())
}

fn mb_per_s(took: Duration) -> f64 {
    SIZE as f64 / 1e6 / took.as_secs_f64()
}

fn connect(port: u16) -> io::Result<TcpStream> {
    let stream = TcpStream::connect((Ipv4Addr::LOCALHOST, port))?;
    stream.set_read_timeout(Some(Duration::from_secs(120)))?;
    Ok(stream)
}

/// GET of a 1 GiB answer (hello's `bytes=N`), read to its end; the time it took.
fn download(port: u16) -> Result<Duration> {
    let started = Instant::now();
    let mut stream = connect(port)?;
    write!(
        stream,
        "GET /big?bytes={SIZE} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"
    )?;
    let mut reader = BufReader::with_capacity(256 * 1024, stream);
    let status = read_head(&mut reader)?;
    if !status.contains(" 200") {
        return Err(format!("download: {status}").into());
    }
    let got = io::copy(&mut reader, &mut io::sink())?;
    if got < SIZE {
        return Err(format!("download: {got} of {SIZE} bytes").into());
    }
    Ok(started.elapsed())
}

/// POST of a 1 GiB body, streamed; hello answers its length.
fn upload(port: u16) -> Result<Duration> {
    let started = Instant::now();
    let mut stream = connect(port)?;
    write!(
        stream,
        "POST /upload HTTP/1.1\r\nHost: localhost\r\nContent-Length: {SIZE}\r\n\
         Content-Type: application/octet-stream\r\nConnection: close\r\n\r\n"
    )?;
    let chunk = vec![b'x'; 256 * 1024];
    let mut left = SIZE;
    while left > 0 {
        let n = left.min(chunk.len() as u64) as usize;
        stream.write_all(&chunk[..n])?;
        left -= n as u64;
    }
    let mut reader = BufReader::new(stream);
    let status = read_head(&mut reader)?;
    let mut body = String::new();
    reader.read_to_string(&mut body)?;
    if !status.contains(" 200") || !body.contains(&format!("body_bytes: {SIZE}")) {
        return Err(format!("upload: {status}: {body}").into());
    }
    Ok(started.elapsed())
}

/// Reads the HTTP head; returns its status line.
fn read_head(reader: &mut impl BufRead) -> io::Result<String> {
    let mut status = String::new();
    reader.read_line(&mut status)?;
    let mut line = String::new();
    loop {
        line.clear();
        if reader.read_line(&mut line)? == 0 || line == "\r\n" {
            return Ok(status.trim().to_owned());
        }
    }
}

/// The highest RSS of a process while something runs, read every 20 ms.
struct RssSampler {
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    thread: std::thread::JoinHandle<u64>,
}

impl RssSampler {
    fn start(pid: u32) -> Self {
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let flag = std::sync::Arc::clone(&stop);
        let thread = std::thread::spawn(move || {
            let mut peak = 0;
            while !flag.load(std::sync::atomic::Ordering::Relaxed) {
                peak = peak.max(plexer_tests::procfs::rss_kib(pid).unwrap_or(0));
                std::thread::sleep(Duration::from_millis(20));
            }
            peak
        });
        Self { stop, thread }
    }

    fn stop(self) -> u64 {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        self.thread.join().unwrap_or(0)
    }
}
