//! A small HTTP client for the tests: one request per connection, read to the end, as HTTP/1.0
//! ([`request`]) or HTTP/1.1 with a chunked response decoded ([`request11`]). Enough to drive
//! nginx and the dev front, with no dependency that could hide a behaviour; [`raw`] sends a
//! request head exactly as the test wrote it.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

/// How long one read or write of a request may block.
const IO_TIMEOUT: Duration = Duration::from_secs(30);

/// An HTTP response.
#[derive(Debug)]
pub struct HttpResponse {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl HttpResponse {
    /// The first header `name`, without case.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn headers_named(&self, name: &str) -> Vec<&str> {
        self.headers
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
            .collect()
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// Sends `method path` as HTTP/1.0 with `headers` and `body` to 127.0.0.1:`port`.
pub fn request(
    port: u16,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> HttpResponse {
    let raw = exchange("HTTP/1.0", port, method, path, headers, body);
    parse(&raw)
}

/// Sends `method path` as HTTP/1.1 (with `Connection: close`) and decodes the response body,
/// chunked or not.
pub fn request11(
    port: u16,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> HttpResponse {
    let raw = exchange("HTTP/1.1", port, method, path, headers, body);
    parse_dechunked(&raw)
}

/// Sends `head` (a whole request head, blank line included) exactly as written, for requests
/// the other functions would not write: an absolute-form request line, a `Host` of the test's
/// own. The head should ask for `Connection: close`; a chunked response body is decoded.
pub fn raw(port: u16, head: &str) -> HttpResponse {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).expect("connect to the HTTP server");
    stream
        .set_read_timeout(Some(IO_TIMEOUT))
        .and_then(|()| stream.set_write_timeout(Some(IO_TIMEOUT)))
        .expect("set the read and write timeouts");
    stream
        .write_all(head.as_bytes())
        .expect("send the request head");
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).expect("read the response");
    parse_dechunked(&raw)
}

/// The response in `raw`, its body decoded when it came chunked.
fn parse_dechunked(raw: &[u8]) -> HttpResponse {
    let mut response = parse(raw);
    let chunked = response
        .header("Transfer-Encoding")
        .is_some_and(|te| te.eq_ignore_ascii_case("chunked"));
    if chunked {
        response.body = dechunk(&response.body);
    }
    response
}

/// Sends the request and returns the response's bytes as they came, up to the connection's
/// end: for tests that look at how a response ended.
pub fn exchange(
    version: &str,
    port: u16,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Vec<u8> {
    let request = Request {
        version,
        method,
        path,
        headers,
        body,
    };
    try_exchange(port, &request, IO_TIMEOUT).unwrap_or_else(|err| {
        panic!("{method} {path} to the HTTP server on port {port} failed: {err}")
    })
}

/// A GET of `path` as HTTP/1.0, as [`get`] sends it, that returns what went wrong instead of
/// panicking, and gives up after `timeout` without a byte: for load loops that count failures
/// while a server goes away.
pub fn try_get(
    port: u16,
    path: &str,
    headers: &[(&str, &str)],
    timeout: Duration,
) -> std::io::Result<HttpResponse> {
    let request = Request {
        version: "HTTP/1.0",
        method: "GET",
        path,
        headers,
        body: b"",
    };
    let raw = try_exchange(port, &request, timeout)?;
    if !raw.windows(4).any(|w| w == b"\r\n\r\n") {
        return Err(std::io::Error::new(
            std::io::ErrorKind::UnexpectedEof,
            format!("the response ended before its head did: {raw:?}"),
        ));
    }
    Ok(parse(&raw))
}

#[derive(Clone, Copy)]
struct Request<'a> {
    version: &'a str,
    method: &'a str,
    path: &'a str,
    headers: &'a [(&'a str, &'a str)],
    body: &'a [u8],
}

fn try_exchange(port: u16, request: &Request<'_>, timeout: Duration) -> std::io::Result<Vec<u8>> {
    let Request {
        version,
        method,
        path,
        headers,
        body,
    } = *request;
    let mut stream = TcpStream::connect(("127.0.0.1", port))?;
    // A server that stops reading (one that refused the body, say) must fail the write, not
    // hang it.
    stream.set_read_timeout(Some(timeout))?;
    stream.set_write_timeout(Some(timeout))?;
    let mut head = format!("{method} {path} {version}\r\nHost: localhost\r\nConnection: close\r\n");
    for (name, value) in headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    let chunked = headers
        .iter()
        .any(|(name, _)| name.eq_ignore_ascii_case("Transfer-Encoding"));
    if !chunked && (!body.is_empty() || method == "POST") {
        head.push_str(&format!("Content-Length: {}\r\n", body.len()));
    }
    head.push_str("\r\n");
    stream.write_all(head.as_bytes())?;
    stream.write_all(body)?;
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw)?;
    Ok(raw)
}

/// The data of a chunked body (RFC 9112 §7.1); panics on a malformed or unfinished one.
fn dechunk(mut body: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(body.len());
    loop {
        let line_end = body
            .windows(2)
            .position(|w| w == b"\r\n")
            .expect("a chunk size line");
        let line = std::str::from_utf8(&body[..line_end]).expect("an ASCII chunk size");
        let size_text = line.split(';').next().unwrap_or_default().trim();
        let size = usize::from_str_radix(size_text, 16)
            .unwrap_or_else(|_| panic!("bad chunk size line {line:?}"));
        body = &body[line_end + 2..];
        if size == 0 {
            return out;
        }
        assert!(body.len() >= size + 2, "the chunked body is cut short");
        out.extend_from_slice(&body[..size]);
        assert_eq!(&body[size..size + 2], b"\r\n", "a chunk ends with CRLF");
        body = &body[size + 2..];
    }
}

pub fn get(port: u16, path: &str, headers: &[(&str, &str)]) -> HttpResponse {
    request(port, "GET", path, headers, b"")
}

fn parse(raw: &[u8]) -> HttpResponse {
    let end = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .unwrap_or_else(|| {
            panic!(
                "no end of the response head in {:?}",
                String::from_utf8_lossy(raw)
            )
        });
    let head = String::from_utf8_lossy(&raw[..end]);
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap_or_default();
    let status = status_line
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("bad status line {status_line:?}"));
    let headers = lines
        .filter_map(|line| line.split_once(':'))
        .map(|(n, v)| (n.trim().to_owned(), v.trim().to_owned()))
        .collect();
    HttpResponse {
        status,
        headers,
        body: raw[end + 4..].to_vec(),
    }
}
