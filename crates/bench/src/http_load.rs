//! The front benchmark's load generator: N kept-alive HTTP/1.1 connections to 127.0.0.1, each
//! sending `GET` after `GET` (closed loop: the next request leaves when the answer is in)
//! until the time is up, all driven by one task each on the caller's `current_thread` tokio
//! runtime. One thread and raw TCP keep its own CPU cost small, so that on a 2-core machine it
//! does not take the cores it is measuring; the caller measures that cost.
//!
//! The idea is that of the tests' `load` module (one thread per connection there): a request
//! not answered within the timeout counts as a timeout and its connection is opened anew;
//! counts are kept per connection, so that starved connections show; every answered request's
//! latency is kept.

use std::io;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// What to send, on how many connections, for how long.
#[derive(Clone, Debug)]
pub struct Plan {
    pub addr: SocketAddr,
    pub path: String,
    pub connections: usize,
    /// No request starts after this much time.
    pub duration: Duration,
    pub request_timeout: Duration,
}

/// What one connection saw.
#[derive(Clone, Debug, Default)]
pub struct Tally {
    pub ok: u64,
    pub timeouts: u64,
    pub errors: u64,
    pub first_error: Option<String>,
    pub latencies: Vec<Duration>,
}

/// What a run saw.
#[derive(Debug)]
pub struct Report {
    pub connections: Vec<Tally>,
    pub elapsed: Duration,
}

impl Report {
    pub fn ok(&self) -> u64 {
        self.connections.iter().map(|c| c.ok).sum()
    }

    pub fn timeouts(&self) -> u64 {
        self.connections.iter().map(|c| c.timeouts).sum()
    }

    pub fn errors(&self) -> u64 {
        self.connections.iter().map(|c| c.errors).sum()
    }

    pub fn first_error(&self) -> Option<&str> {
        self.connections
            .iter()
            .find_map(|c| c.first_error.as_deref())
    }

    /// Connections that got at least one answer.
    pub fn progressed(&self) -> usize {
        self.connections.iter().filter(|c| c.ok > 0).count()
    }

    pub fn per_second(&self) -> f64 {
        self.ok() as f64 / self.elapsed.as_secs_f64()
    }

    /// Latencies of the answered requests, sorted.
    pub fn sorted_latencies(&self) -> Vec<Duration> {
        let mut all: Vec<Duration> = self
            .connections
            .iter()
            .flat_map(|c| c.latencies.iter().copied())
            .collect();
        all.sort_unstable();
        all
    }
}

/// The latency at quantile `q` of `sorted` (nearest rank).
pub fn quantile(sorted: &[Duration], q: f64) -> Option<Duration> {
    if sorted.is_empty() {
        return None;
    }
    let rank = ((sorted.len() as f64 * q).ceil() as usize).clamp(1, sorted.len());
    Some(sorted[rank - 1])
}

/// Runs `plan` on the current runtime, all connections at once.
pub async fn run(plan: &Plan) -> Report {
    let request = format!("GET {} HTTP/1.1\r\nHost: localhost\r\n\r\n", plan.path).into_bytes();
    let started = Instant::now();
    let stop_at = started + plan.duration;
    let tasks: Vec<_> = (0..plan.connections)
        .map(|_| {
            let request = request.clone();
            let (addr, timeout) = (plan.addr, plan.request_timeout);
            tokio::spawn(async move { client(addr, &request, timeout, stop_at).await })
        })
        .collect();
    let mut connections = Vec::with_capacity(tasks.len());
    for task in tasks {
        connections.push(task.await.unwrap_or_else(|err| Tally {
            errors: 1,
            first_error: Some(format!("the client task failed: {err}")),
            ..Tally::default()
        }));
    }
    Report {
        connections,
        elapsed: started.elapsed(),
    }
}

async fn client(addr: SocketAddr, request: &[u8], timeout: Duration, stop_at: Instant) -> Tally {
    let mut tally = Tally::default();
    let mut conn: Option<Conn> = None;
    while Instant::now() < stop_at {
        let sent = Instant::now();
        let exchange = async {
            if conn.is_none() {
                let stream = TcpStream::connect(addr).await?;
                stream.set_nodelay(true)?;
                conn = Some(Conn::new(stream));
            }
            let c = conn.as_mut().expect("connected above");
            c.exchange(request).await
        };
        match tokio::time::timeout(timeout, exchange).await {
            Ok(Ok(Answer { status: 200, keep })) => {
                tally.ok += 1;
                tally.latencies.push(sent.elapsed());
                if !keep {
                    conn = None;
                }
            }
            Ok(Ok(Answer { status, .. })) => {
                note_error(&mut tally, format!("HTTP status {status}"));
                conn = None;
            }
            Ok(Err(err)) => {
                note_error(&mut tally, err.to_string());
                conn = None;
                // A refused or reset connection fails at once: do not spin on it.
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            Err(_) => {
                tally.timeouts += 1;
                conn = None;
            }
        }
    }
    tally
}

fn note_error(tally: &mut Tally, why: String) {
    tally.errors += 1;
    tally.first_error.get_or_insert(why);
}

struct Answer {
    status: u16,
    keep: bool,
}

/// A kept-alive connection and the bytes read past the last response.
struct Conn {
    stream: TcpStream,
    buf: Vec<u8>,
}

impl Conn {
    fn new(stream: TcpStream) -> Self {
        Self {
            stream,
            buf: Vec::with_capacity(16 * 1024),
        }
    }

    async fn exchange(&mut self, request: &[u8]) -> io::Result<Answer> {
        self.stream.write_all(request).await?;
        let head_end = loop {
            if let Some(end) = find(&self.buf, b"\r\n\r\n") {
                break end + 4;
            }
            self.fill().await?;
        };
        let head = parse_head(&self.buf[..head_end])?;
        self.buf.drain(..head_end);
        match head.length {
            Some(length) => self.skip(length).await?,
            None if head.chunked => self.skip_chunked().await?,
            None => {
                return Err(io::Error::other(
                    "a response with neither Content-Length nor a chunked body",
                ));
            }
        }
        Ok(Answer {
            status: head.status,
            keep: !head.close,
        })
    }

    async fn fill(&mut self) -> io::Result<()> {
        if self.stream.read_buf(&mut self.buf).await? == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "the server closed the connection",
            ));
        }
        Ok(())
    }

    async fn skip(&mut self, mut length: usize) -> io::Result<()> {
        loop {
            let n = length.min(self.buf.len());
            self.buf.drain(..n);
            length -= n;
            if length == 0 {
                return Ok(());
            }
            self.fill().await?;
        }
    }

    /// `SIZE\r\n DATA\r\n` … `0\r\n\r\n` (nginx sends no trailers).
    async fn skip_chunked(&mut self) -> io::Result<()> {
        loop {
            let line_end = loop {
                if let Some(end) = find(&self.buf, b"\r\n") {
                    break end;
                }
                self.fill().await?;
            };
            let line = std::str::from_utf8(&self.buf[..line_end]).unwrap_or_default();
            let size = usize::from_str_radix(line.split(';').next().unwrap_or_default().trim(), 16)
                .map_err(|_| {
                    io::Error::new(
                        io::ErrorKind::InvalidData,
                        format!("bad chunk size line {line:?}"),
                    )
                })?;
            self.buf.drain(..line_end + 2);
            self.skip(size + 2).await?;
            if size == 0 {
                return Ok(());
            }
        }
    }
}

struct Head {
    status: u16,
    length: Option<usize>,
    chunked: bool,
    close: bool,
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

fn parse_head(raw: &[u8]) -> io::Result<Head> {
    let text = std::str::from_utf8(raw)
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidData, "a response head not in UTF-8"))?;
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
    fn nginx_heads_are_read() {
        let head = parse_head(
            b"HTTP/1.1 200 OK\r\nServer: nginx\r\nTransfer-Encoding: chunked\r\n\
              Connection: keep-alive\r\n\r\n",
        )
        .unwrap();
        assert_eq!(head.status, 200);
        assert!(head.chunked && !head.close && head.length.is_none());
    }

    #[test]
    fn quantiles_are_nearest_rank() {
        let sorted: Vec<Duration> = (1..=10).map(Duration::from_millis).collect();
        assert_eq!(quantile(&sorted, 0.5), Some(Duration::from_millis(5)));
        assert_eq!(quantile(&sorted, 0.99), Some(Duration::from_millis(10)));
        assert_eq!(quantile(&[], 0.5), None);
    }
}
