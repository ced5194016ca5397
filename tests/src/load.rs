//! A small, bounded HTTP/1.1 load generator, for the tests and for the front benchmark: N
//! kept-alive connections to 127.0.0.1, each sending `GET` after `GET` (closed loop: the next
//! request leaves when the answer is in) until the run's time is up. Every request has a
//! deadline; one that passes it counts as a timeout, and that connection is dropped and opened
//! again (its state is unknown), as a browser would.
//!
//! All connections are tasks on one `current_thread` tokio runtime: one thread and raw TCP keep
//! the generator's own CPU cost small, so that on a 2-core machine it does not take the cores
//! it loads, and the benchmark can measure that cost. A test calls [`run`], which makes the
//! runtime; the benchmark calls [`drive`] on its own.
//!
//! It counts per connection ([`LoadReport`]) and keeps the latency of every answered request.
//! It stops by itself: no request starts after `duration`, and none waits longer than
//! `request_timeout`.

mod http1;
mod report;

use std::io;
use std::net::{Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use http1::Framing;
pub use report::{ConnectionTally, LoadReport};

/// What to send, how many connections, and for how long.
#[derive(Clone, Debug)]
pub struct LoadPlan {
    /// The HTTP server's port on 127.0.0.1.
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

/// Runs `plan` on a `current_thread` runtime of its own; returns when every connection has
/// stopped (at most `duration + request_timeout` later).
pub fn run(plan: &LoadPlan) -> LoadReport {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime for the load")
        .block_on(drive(plan))
}

/// Runs `plan` on the caller's runtime, all connections started together.
pub async fn drive(plan: &LoadPlan) -> LoadReport {
    let request = request_bytes(plan);
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, plan.port));
    let started = Instant::now();
    let stop_at = started + plan.duration;
    let tasks: Vec<_> = (0..plan.connections)
        .map(|_| {
            let request = request.clone();
            let timeout = plan.request_timeout;
            tokio::spawn(async move { client(addr, &request, timeout, stop_at).await })
        })
        .collect();
    let mut connections = Vec::with_capacity(tasks.len());
    for task in tasks {
        connections.push(task.await.unwrap_or_else(|err| {
            let mut tally = ConnectionTally::default();
            tally.note_error(format!("the client task failed: {err}"));
            tally
        }));
    }
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

/// How the server answered one request.
struct Answer {
    status: u16,
    keep: bool,
}

/// One client connection's loop: request after request on one kept-alive connection, a new
/// connection after a timeout, an error or a `Connection: close`.
async fn client(
    addr: SocketAddr,
    request: &[u8],
    timeout: Duration,
    stop_at: Instant,
) -> ConnectionTally {
    let mut tally = ConnectionTally::default();
    let mut conn: Option<Conn> = None;
    while Instant::now() < stop_at {
        let sent = Instant::now();
        // The deadline covers the connect too, when the connection is new.
        let exchange = async {
            if conn.is_none() {
                let stream = TcpStream::connect(addr).await?;
                stream.set_nodelay(true)?;
                conn = Some(Conn::new(stream));
            }
            conn.as_mut()
                .expect("connected above")
                .exchange(request)
                .await
        };
        let failed = match tokio::time::timeout(timeout, exchange).await {
            Ok(Ok(Answer { status: 200, keep })) => {
                tally.ok += 1;
                tally.latencies.push(sent.elapsed());
                if !keep {
                    conn = None;
                }
                false
            }
            Ok(Ok(Answer { status, .. })) => {
                tally.note_error(format!("HTTP status {status}"));
                true
            }
            Ok(Err(err)) => {
                tally.note_error(err.to_string());
                true
            }
            Err(_) => {
                tally.timeouts += 1;
                conn = None;
                false
            }
        };
        if failed {
            conn = None;
            // A refused or reset connection, or an error page, comes back at once: do not
            // spin on it.
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
    tally
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

    /// Sends `request` and reads its whole response, body skipped.
    async fn exchange(&mut self, request: &[u8]) -> io::Result<Answer> {
        self.stream.write_all(request).await?;
        let head_end = loop {
            if let Some(end) = http1::head_end(&self.buf) {
                break end;
            }
            self.fill().await?;
        };
        let head = http1::parse_head(&self.buf[..head_end])?;
        self.buf.drain(..head_end);
        match head.framing {
            Framing::Chunked => self.skip_chunked().await?,
            Framing::Length(length) => self.skip(length).await?,
            Framing::Unframed => {
                return Err(io::Error::other(
                    "a keep-alive response without Content-Length or a chunked body",
                ));
            }
        }
        Ok(Answer {
            status: head.status,
            keep: !head.close,
        })
    }

    /// Reads more bytes into the buffer.
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

    /// Skips a chunked body: `SIZE\r\n DATA\r\n` … `0\r\n\r\n` (nginx sends no trailers).
    async fn skip_chunked(&mut self) -> io::Result<()> {
        loop {
            let line_end = loop {
                if let Some(end) = http1::find(&self.buf, b"\r\n") {
                    break end;
                }
                self.fill().await?;
            };
            let size = http1::chunk_size(&self.buf[..line_end])?;
            self.buf.drain(..line_end + 2);
            // The chunk's data and its CRLF; the last chunk is followed by an empty line.
            self.skip(size + 2).await?;
            if size == 0 {
                return Ok(());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::io::{Read, Write};
    use std::net::TcpListener;

    use super::*;

    /// A server on one kept-alive connection that answers its requests in turn with a
    /// chunked body, a Content-Length body, and both (which RFC 9112 frames as chunked).
    fn serve_mixed_framing() -> u16 {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        std::thread::spawn(move || {
            let (mut stream, _) = listener.accept().unwrap();
            let answers: [&[u8]; 3] = [
                b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n",
                b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nabc",
                b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n\
                  5\r\nabcde\r\n0\r\n\r\n",
            ];
            let (mut buf, mut n) = (Vec::new(), 0);
            let mut chunk = [0u8; 1024];
            // Ends when the client drops the connection.
            while let Ok(read @ 1..) = stream.read(&mut chunk) {
                buf.extend_from_slice(&chunk[..read]);
                while let Some(end) = http1::head_end(&buf) {
                    buf.drain(..end);
                    if stream.write_all(answers[n % answers.len()]).is_err() {
                        return;
                    }
                    n += 1;
                }
            }
        });
        port
    }

    #[test]
    fn one_connection_stays_in_step_across_body_framings() {
        let report = run(&LoadPlan {
            port: serve_mixed_framing(),
            path: "/".into(),
            headers: vec![("Cookie".into(), "a=b".into())],
            connections: 1,
            duration: Duration::from_millis(200),
            request_timeout: Duration::from_secs(2),
        });
        assert!(report.ok() >= 3, "{}", report.summary());
        assert_eq!(
            (report.timeouts(), report.errors()),
            (0, 0),
            "{:?}",
            report.first_error()
        );
    }
}
