//! What every round trip carries: one nginx-like request and a response of a given size, plus
//! their wire bytes for the canned peers.
//!
//! The wire bytes are framed here by hand rather than by plexer-fcgi, so the canned peers owe
//! nothing to the codec under test. The response is framed as php-fpm frames it: STDOUT
//! records of at most 65535 bytes padded to a multiple of 8, the empty STDOUT record, then
//! END_REQUEST.

use std::borrow::Cow;

use bytes::{BufMut, Bytes, BytesMut};

/// The request id nginx always uses, and so every side here.
pub const REQUEST_ID: u16 = 1;

pub(crate) const BEGIN_REQUEST: u8 = 1;
pub(crate) const END_REQUEST: u8 = 3;
const PARAMS: u8 = 4;
pub(crate) const STDIN: u8 = 5;
pub(crate) const STDOUT: u8 = 6;
const MAX_CONTENT: usize = 0xffff;

/// The params nginx sends for `GET /index.php?page=2` with Debian's `fastcgi_params` and a
/// browser's usual headers: 30 pairs, about 1 KiB encoded.
pub const NGINX_PARAMS: &[(&str, &str)] = &[
    ("QUERY_STRING", "page=2"),
    ("REQUEST_METHOD", "GET"),
    ("CONTENT_TYPE", ""),
    ("CONTENT_LENGTH", ""),
    ("SCRIPT_NAME", "/index.php"),
    ("REQUEST_URI", "/index.php?page=2"),
    ("DOCUMENT_URI", "/index.php"),
    ("DOCUMENT_ROOT", "/srv/www/accounts/acme/public"),
    ("SERVER_PROTOCOL", "HTTP/1.1"),
    ("REQUEST_SCHEME", "https"),
    ("HTTPS", "on"),
    ("GATEWAY_INTERFACE", "CGI/1.1"),
    ("SERVER_SOFTWARE", "nginx/1.26.3"),
    ("REMOTE_ADDR", "203.0.113.54"),
    ("REMOTE_PORT", "51844"),
    ("REMOTE_USER", ""),
    ("SERVER_ADDR", "192.0.2.10"),
    ("SERVER_PORT", "443"),
    ("SERVER_NAME", "app.example.com"),
    ("REDIRECT_STATUS", "200"),
    ("SCRIPT_FILENAME", "/srv/www/accounts/acme/public/index.php"),
    ("PATH_INFO", ""),
    ("HTTP_HOST", "app.example.com"),
    (
        "HTTP_USER_AGENT",
        "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0",
    ),
    (
        "HTTP_ACCEPT",
        "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8",
    ),
    ("HTTP_ACCEPT_LANGUAGE", "en-GB,en;q=0.5"),
    ("HTTP_ACCEPT_ENCODING", "gzip, deflate, br, zstd"),
    (
        "HTTP_COOKIE",
        "plexer_account=acme.1763683200.Zm9vYmFyYmF6cXV4cXV1eGNvcmdlZ3JhdWx0; sessionid=8f14e45fceea167a5a36dedd4bea2543",
    ),
    ("HTTP_REFERER", "https://app.example.com/index.php?page=1"),
    ("HTTP_CONNECTION", "keep-alive"),
];

/// The CGI header block every response starts with.
const RESPONSE_HEAD: &[u8] = b"Status: 200 OK\r\nContent-Type: text/html; charset=UTF-8\r\n\r\n";

/// One request and one response, in every form the sides under test and the peers need.
#[derive(Debug, Clone)]
pub struct Workload {
    /// The application's whole STDOUT: the CGI header block, then a body of filler.
    pub stdout: Bytes,
    /// BEGIN_REQUEST (responder, keep the connection), PARAMS, its end, the empty STDIN.
    pub request_wire: Bytes,
    /// STDOUT records, the empty STDOUT, END_REQUEST (complete, status 0).
    pub response_wire: Bytes,
}

impl Workload {
    /// A workload whose response carries `stdout_len` bytes of STDOUT, header block included.
    pub fn new(stdout_len: usize) -> Self {
        assert!(
            stdout_len >= RESPONSE_HEAD.len(),
            "the header block alone is longer"
        );
        let mut stdout = BytesMut::with_capacity(stdout_len);
        stdout.put_slice(RESPONSE_HEAD);
        stdout.extend((0..stdout_len - RESPONSE_HEAD.len()).map(|i| b"0123456789abcdef"[i % 16]));
        let stdout = stdout.freeze();

        let mut request = BytesMut::new();
        put_record(&mut request, BEGIN_REQUEST, &[0, 1, 1, 0, 0, 0, 0, 0]);
        let mut params = BytesMut::new();
        for (name, value) in NGINX_PARAMS {
            put_pair(&mut params, name.as_bytes(), value.as_bytes());
        }
        put_record(&mut request, PARAMS, &params);
        put_record(&mut request, PARAMS, &[]);
        put_record(&mut request, STDIN, &[]);

        let mut response = BytesMut::with_capacity(stdout_len + stdout_len / 4096 + 64);
        for chunk in stdout.chunks(MAX_CONTENT) {
            put_record(&mut response, STDOUT, chunk);
        }
        put_record(&mut response, STDOUT, &[]);
        put_record(&mut response, END_REQUEST, &[0, 0, 0, 0, 0, 0, 0, 0]);

        Self {
            stdout,
            request_wire: request.freeze(),
            response_wire: response.freeze(),
        }
    }

    /// The response size as a benchmark parameter: `100 B`, `1 MiB`.
    pub fn label(&self) -> String {
        match self.stdout.len() {
            n if n >= 1 << 20 && n % (1 << 20) == 0 => format!("{} MiB", n >> 20),
            n if n >= 1 << 10 && n % (1 << 10) == 0 => format!("{} KiB", n >> 10),
            n => format!("{n} B"),
        }
    }

    /// The request params for plexer-fcgi.
    pub fn plexer_params(&self) -> plexer_fcgi::Params {
        NGINX_PARAMS.iter().copied().collect()
    }

    /// The request params for fastcgi-client: the same pairs, borrowed, none of its defaults.
    pub fn fastcgi_client_params(&self) -> fastcgi_client::Params<'static> {
        let mut params = fastcgi_client::Params::default();
        params.clear();
        for (name, value) in NGINX_PARAMS {
            params.insert(Cow::Borrowed(*name), Cow::Borrowed(*value));
        }
        params
    }
}

/// Appends one record for [`REQUEST_ID`], padded to a multiple of 8 as §3.3 recommends.
fn put_record(dst: &mut BytesMut, record_type: u8, content: &[u8]) {
    let padding = content.len().wrapping_neg() & 7;
    dst.put_slice(&[1, record_type]);
    dst.put_u16(REQUEST_ID);
    dst.put_u16(content.len() as u16);
    dst.put_slice(&[padding as u8, 0]);
    dst.put_slice(content);
    dst.put_bytes(0, padding);
}

/// Appends one name-value pair (§3.4).
fn put_pair(dst: &mut BytesMut, name: &[u8], value: &[u8]) {
    for len in [name.len(), value.len()] {
        if len < 128 {
            dst.put_u8(len as u8);
        } else {
            dst.put_u32(len as u32 | 0x8000_0000);
        }
    }
    dst.put_slice(name);
    dst.put_slice(value);
}
