//! A small, bounded HTTP/1.1 load generator for the tests: N client connections, each a thread
//! with its own kept-alive `TcpStream` to 127.0.0.1, sending `GET` after `GET` until the
//! run's time is up. Every request has a deadline; one that passes it counts as a timeout,
//! and that connection is dropped and opened again (its state is unknown), as a browser would.
//!
//! It counts per connection, so a test can tell "every connection made progress" from "a few
//! connections did all the work while the rest starved", and keeps the latency of every
//! answered request. It stops by itself: no request starts after `duration`, and none waits
//! longer than `request_timeout`.

use std::io::{self, Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::thread;
use std::time::{Duration, Instant};

/// What to send, how many connections, and for how long.
#[derive(Clone, Debug)]
pub struct LoadPlan {
    pub port: u16,
    pub path: String,
    /// Extra request headers (a routing cookie, say).
    pub headers: Vec<(String, String)>,
    pub connections: usize,
    /// No request starts after this much time.
    pub duration: Duration,
    /// A request not answered within this counts as a timeout.
    pub request_timeout: Duration,
}

/// What one client connection saw.
#[derive(Clone, Debug, Default)]
pub struct ConnectionTally {
    /// Requests answered with a 200.
    pub ok: u64,
    pub timeouts: u64,
    /// Anything else: refused or reset connections, non-200 answers, unreadable responses.
    pub errors: u64,
    pub first_error: Option<String>,
    /// The time to each 200 answer, from the first byte sent.
    pub latencies: Vec<Duration>,
}

/// What a whole run saw.
#[derive(Debug)]
pub struct LoadReport {
    pub connections: Vec<ConnectionTally>,
    pub elapsed: Duration,
}

impl LoadReport {
    pub fn ok(&self) -> u64 {
        self.connections.iter().map(|c| c.ok).sum()
    }

    pub fn timeouts(&self) -> u64 {
        self.connections.iter().map(|c| c.timeouts).sum()
    }

    pub fn errors(&self) -> u64 {
        self.connections.iter().map(|c| c.errors).sum()
    }

    /// Connections that got at least one answer.
    pub fn progressed(&self) -> usize {
        self.connections.iter().filter(|c| c.ok > 0).count()
    }

    /// Connections that saw at least one request time out.
    pub fn starved(&self) -> usize {
        self.connections.iter().filter(|c| c.timeouts > 0).count()
    }

    /// The first error any connection saw, for a failure message.
    pub fn first_error(&self) -> Option<&str> {
        self.connections
            .iter()
            .find_map(|c| c.first_error.as_deref())
    }

    /// The latency at quantile `q` (0.0 to 1.0) of the answered requests, nearest rank.
    pub fn latency(&self, q: f64) -> Option<Duration> {
        let mut all: Vec<Duration> = self
            .connections
            .iter()
            .flat_map(|c| c.latencies.iter().copied())
            .collect();
        if all.is_empty() {
            return None;
        }
        all.sort_unstable();
        let rank = ((all.len() as f64 * q).ceil() as usize).clamp(1, all.len());
        Some(all[rank - 1])
    }

    /// One line for a test's output: counts, throughput, latencies.
    pub fn summary(&self) -> String {
        let ms = |d: Option<Duration>| d.map_or("-".into(), |d| format!("{:.1} ms", ms_of(d)));
        format!(
            "{} answered ({:.0}/s), {} timed out, {} errors, {}/{} connections made progress, \
             {} saw a timeout, latency p50 {} p99 {} max {}",
            self.ok(),
            self.ok() as f64 / self.elapsed.as_secs_f64(),
            self.timeouts(),
            self.errors(),
            self.progressed(),
            self.connections.len(),
            self.starved(),
            ms(self.latency(0.5)),
            ms(self.latency(0.99)),
            ms(self.latency(1.0)),
        )
    }
}

fn ms_of(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

/// Runs `plan`: one thread per connection, all started together; returns when every one has
/// stopped (at most `duration + request_timeout` and a connect timeout later).
pub fn run(plan: &LoadPlan) -> LoadReport {
    let request = request_bytes(plan);
    let started = Instant::now();
    let stop_at = started + plan.duration;
    let threads: Vec<_> = (0..plan.connections)
        .map(|n| {
            let request = request.clone();
            let port = plan.port;
            let timeout = plan.request_timeout;
            thread::Builder::new()
                .name(format!("load-{n}"))
                .spawn(move || client(port, &request, timeout, stop_at))
                .expect("start a load thread")
        })
        .collect();
    let connections = threads
        .into_iter()
        .map(|t| t.join().expect("a load thread panicked"))
        .collect();
    LoadReport {
        connections,
        elapsed: started.elapsed(),
    }
}

fn request_bytes(plan: &LoadPlan) -> Vec<u8> {
    let mut head = format!("GET {} HTTP/1.1\r\nHost: localhost\r\n", plan.path);
    for (name, value) in &plan.headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    head.push_str("\r\n");
    head.into_bytes()
}

/// How one request ended.
enum Outcome {
    Ok { keep: bool },
    TimedOut,
    Failed(String),
}

/// One client connection's loop: request after request on one kept-alive connection, a new
/// connection after a timeout, an error or a `Connection: close`.
fn client(port: u16, request: &[u8], timeout: Duration, stop_at: Instant) -> ConnectionTally {
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    let mut tally = ConnectionTally::default();
    let mut conn: Option<Conn> = None;
    while Instant::now() < stop_at {
        let sent = Instant::now();
        let deadline = sent + timeout;
        let outcome = match conn.as_mut() {
            Some(c) => c.exchange(request, deadline),
            None => match TcpStream::connect_timeout(&addr, timeout) {
                Ok(stream) => {
                    let _ = stream.set_nodelay(true);
                    conn.insert(Conn::new(stream)).exchange(request, deadline)
                }
                Err(err) if is_timeout(&err) => Outcome::TimedOut,
                Err(err) => Outcome::Failed(format!("connect: {err}")),
            },
        };
        match outcome {
            Outcome::Ok { keep } => {
                tally.ok += 1;
                tally.latencies.push(sent.elapsed());
                if !keep {
                    conn = None;
                }
            }
            Outcome::TimedOut => {
                tally.timeouts += 1;
                conn = None;
            }
            Outcome::Failed(why) => {
                tally.errors += 1;
                tally.first_error.get_or_insert(why);
                conn = None;
                // A refused or reset connection fails at once: do not spin on it.
                thread::sleep(Duration::from_millis(10));
            }
        }
    }
    tally
}

fn is_timeout(err: &io::Error) -> bool {
    matches!(
        err.kind(),
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
    )
}

/// A kept-alive connection and the bytes read past the last response.
struct Conn {
    stream: TcpStream,
    buf: Vec<u8>,
}

/// A response head's parts the client acts on.
struct Head {
    status: u16,
    length: Option<usize>,
    chunked: bool,
    close: bool,
}

impl Conn {
    fn new(stream: TcpStream) -> Self {
        Self {
            stream,
            buf: Vec::with_capacity(4096),
        }
    }

    fn exchange(&mut self, request: &[u8], deadline: Instant) -> Outcome {
        match self.try_exchange(request, deadline) {
            Ok(outcome) => outcome,
            Err(err) if is_timeout(&err) => Outcome::TimedOut,
            Err(err) => Outcome::Failed(err.to_string()),
        }
    }

    fn try_exchange(&mut self, request: &[u8], deadline: Instant) -> io::Result<Outcome> {
        self.stream.set_write_timeout(Some(remaining(deadline)?))?;
        self.stream.write_all(request)?;
        let head_end = loop {
            if let Some(end) = find(&self.buf, b"\r\n\r\n") {
                break end + 4;
            }
            self.fill(deadline)?;
        };
        let head = parse_head(&self.buf[..head_end])?;
        self.buf.drain(..head_end);
        if head.chunked {
            self.skip_chunked(deadline)?;
        } else {
            let length = head.length.ok_or_else(|| {
                io::Error::other("a keep-alive response without Content-Length or chunked body")
            })?;
            self.skip(length, deadline)?;
        }
        if head.status != 200 {
            return Ok(Outcome::Failed(format!("HTTP status {}", head.status)));
        }
        Ok(Outcome::Ok { keep: !head.close })
    }

    /// Reads more bytes into the buffer, waiting at most until `deadline`.
    fn fill(&mut self, deadline: Instant) -> io::Result<()> {
        self.stream.set_read_timeout(Some(remaining(deadline)?))?;
        let mut chunk = [0u8; 16 * 1024];
        let n = self.stream.read(&mut chunk)?;
        if n == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "the server closed the connection",
            ));
        }
        self.buf.extend_from_slice(&chunk[..n]);
        Ok(())
    }

    fn skip(&mut self, mut length: usize, deadline: Instant) -> io::Result<()> {
        loop {
            let n = length.min(self.buf.len());
            self.buf.drain(..n);
            length -= n;
            if length == 0 {
                return Ok(());
            }
            self.fill(deadline)?;
        }
    }

    /// Skips a chunked body: `SIZE\r\n DATA\r\n` … `0\r\n\r\n` (no trailers from nginx).
    fn skip_chunked(&mut self, deadline: Instant) -> io::Result<()> {
        loop {
            let line_end = loop {
                if let Some(end) = find(&self.buf, b"\r\n") {
                    break end;
                }
                self.fill(deadline)?;
            };
            let line = String::from_utf8_lossy(&self.buf[..line_end]);
            let size_text = line.split(';').next().unwrap_or_default().trim();
            let size = usize::from_str_radix(size_text, 16).map_err(|_| {
                io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!("bad chunk size line {line:?}"),
                )
            })?;
            self.buf.drain(..line_end + 2);
            // The chunk's data and its CRLF; the last chunk is followed by an empty line.
            self.skip(size + 2, deadline)?;
            if size == 0 {
                return Ok(());
            }
        }
    }
}

fn remaining(deadline: Instant) -> io::Result<Duration> {
    let left = deadline.saturating_duration_since(Instant::now());
    if left.is_zero() {
        return Err(io::ErrorKind::TimedOut.into());
    }
    Ok(left)
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

fn parse_head(raw: &[u8]) -> io::Result<Head> {
    let text = String::from_utf8_lossy(raw);
    let mut lines = text.split("\r\n");
    let status_line = lines.next().unwrap_or_default();
    let status = status_line
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::InvalidData,
                format!("bad status line {status_line:?}"),
            )
        })?;
    let mut head = Head {
        status,
        length: None,
        chunked: false,
        close: status_line.starts_with("HTTP/1.0"),
    };
    for (name, value) in lines.filter_map(|l| l.split_once(':')) {
        let value = value.trim();
        if name.eq_ignore_ascii_case("content-length") {
            head.length = value.parse().ok();
        } else if name.eq_ignore_ascii_case("transfer-encoding") {
            head.chunked = value.eq_ignore_ascii_case("chunked");
        } else if name.eq_ignore_ascii_case("connection") {
            head.close = value.eq_ignore_ascii_case("close");
        }
    }
    Ok(head)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_chunked_head_is_read() {
        let head = parse_head(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n").unwrap();
        assert!(head.chunked && !head.close && head.status == 200);
    }

    #[test]
    fn quantiles_are_nearest_rank() {
        let tally = ConnectionTally {
            ok: 4,
            latencies: [4, 1, 3, 2].map(Duration::from_millis).to_vec(),
            ..ConnectionTally::default()
        };
        let report = LoadReport {
            connections: vec![tally, ConnectionTally::default()],
            elapsed: Duration::from_secs(1),
        };
        assert_eq!(report.latency(0.5), Some(Duration::from_millis(2)));
        assert_eq!(report.latency(1.0), Some(Duration::from_millis(4)));
        assert_eq!(report.progressed(), 1);
    }
}
