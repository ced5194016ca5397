//! `hello`: the FastCGI responder every plexer test and benchmark runs as its backend.
//!
//! Started the way spawn-fcgi and php-fpm start applications (descriptor 0 a listening socket),
//! it serves there; otherwise `--socket ADDR` binds `unix:/path` or `tcp:HOST:PORT`. It serves
//! one request at a time, as php-cgi does, and answers `text/plain`:
//!
//! ```text
//! pid: 4242
//! account: bob          (the PLEXER_ACCOUNT param, or -)
//! user: bob             (the PLEXER_USER param, or -)
//! uri: /some/path?x=1
//! requests: 3           (served by this process, this one included)
//! greeting: hi          (its HELLO_GREETING environment variable, or -: shows an account's env)
//! body_bytes: 5         (POST body length)
//! body_fnv1a64: ...     (FNV-1a 64 of the POST body, in hex)
//! ```
//!
//! The same pid and account also go out as `X-Hello-Pid` and `X-Hello-Account` headers.
//! Query parameters make it misbehave on purpose:
//! - `sleep=MS` waits before answering;
//! - `crash=1` writes half a response and exits, mid-request;
//! - `stderr=TEXT` writes TEXT to the FastCGI STDERR stream;
//! - `log=TEXT` writes TEXT to the process's own stderr (the pipe a supervisor logs), as is;
//! - `set_cookie=TEXT` answers with a `Set-Cookie: TEXT` header of the app's own;
//! - `bytes=N` answers with exactly N bytes of body (`abc…z` repeated) instead of the text;
//! - `login=NAME` answers with `X-Plexer-User: NAME` (a login app choosing the account),
//!   `logout=1` with `X-Plexer-Logout: 1`.
//!
//! Asked in the AUTHORIZER role (FastCGI §6.3, plexer's `route.by: authorizer`), it decides by
//! its cookie `hello_session=ACCOUNT` or `hello_session=ACCOUNT:USER`: `Status: 200` with
//! `Variable-PLEXER_ACCOUNT` (and `Variable-PLEXER_USER`), `Variable-HELLO_AUTHORIZED_BY: PID`
//! for the app, and two variables plexer must drop (`Variable-HTTP_X_FORGED`,
//! `Variable-PLEXER_SECRET`). Without the cookie: a 200 naming no account for paths under
//! `/login`, else `302` to `/login`; `deny=401` answers a `401` with a `WWW-Authenticate`
//! challenge, `garbage=1` an answer that is not CGI, and `sleep=MS` waits first.
//!
//! Like php-cgi, it exits with status 0 once it has served `PHP_FCGI_MAX_REQUESTS` requests
//! (checked when a connection ends), so that a supervisor recycles it.

use std::io::{self, Read};
use std::process::ExitCode;
use std::time::Duration;

use plexer_fcgi::blocking::{Listener, Request, Stream, serve_connection};
use plexer_fcgi::{Address, Role, ServerConfig};

const USAGE: &str = "usage: hello [--socket unix:/path | tcp:HOST:PORT]\n\
    Serves FastCGI on descriptor 0 when it is a listening socket (spawn-fcgi, php-fpm, \
    plexer spawn), otherwise on --socket.";

fn main() -> ExitCode {
    let listener = match listener_from_args(std::env::args().skip(1)) {
        Ok(listener) => listener,
        Err(message) => {
            eprintln!("hello: {message}\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    let max_requests: Option<u64> = std::env::var("PHP_FCGI_MAX_REQUESTS")
        .ok()
        .and_then(|n| n.parse().ok())
        .filter(|&n| n > 0);
    let mut served: u64 = 0;
    loop {
        if max_requests.is_some_and(|max| served >= max) {
            return ExitCode::SUCCESS;
        }
        let stream = match listener.accept() {
            Ok(stream) => stream,
            Err(err) => {
                eprintln!("hello: accept failed: {err}");
                std::thread::sleep(Duration::from_millis(100));
                continue;
            }
        };
        let result = serve_connection(stream, &ServerConfig::default(), |request| {
            served += 1;
            respond(request, served)
        });
        if let Err(err) = result {
            eprintln!("hello: connection ended: {err}");
        }
    }
}

fn listener_from_args(mut args: impl Iterator<Item = String>) -> Result<Listener, String> {
    match (args.next().as_deref(), args.next()) {
        (Some("--socket"), Some(addr)) => {
            let addr: Address = addr.parse().map_err(|err| format!("{err}"))?;
            Listener::bind(&addr).map_err(|err| format!("cannot bind {addr}: {err}"))
        }
        (None, _) => Listener::from_fd0()
            .map_err(|err| format!("cannot inspect descriptor 0: {err}"))?
            .ok_or_else(|| "descriptor 0 is not a listening socket and no --socket given".into()),
        (Some(other), _) => Err(format!("unexpected argument {other:?}")),
    }
}

fn respond(request: &mut Request<'_, Stream>, served: u64) -> io::Result<()> {
    let query = request.param("QUERY_STRING").unwrap_or_default().to_owned();
    let arg = |name: &str| query_arg(&query, name);

    if let Some(text) = arg("stderr") {
        request.write_stderr(text.as_bytes())?;
    }
    if let Some(text) = arg("log") {
        io::Write::write_all(&mut io::stderr().lock(), text.as_bytes())?;
    }
    if let Some(ms) = arg("sleep").and_then(|ms| ms.parse().ok()) {
        std::thread::sleep(Duration::from_millis(ms));
    }
    if request.head().role == Role::Authorizer {
        return authorize(request, arg("deny").is_some(), arg("garbage").is_some());
    }

    // Only the body's length and hash are answered, so a 1 GiB upload needs no 1 GiB here.
    let (mut body_len, mut body_hash) = (0u64, FNV_OFFSET);
    let mut chunk = [0u8; 16 * 1024];
    loop {
        let n = request.read(&mut chunk)?;
        if n == 0 {
            break;
        }
        body_len += n as u64;
        body_hash = fnv1a64(body_hash, &chunk[..n]);
    }

    let pid = std::process::id();
    let account = request.param("PLEXER_ACCOUNT").unwrap_or("-").to_owned();
    let user = request.param("PLEXER_USER").unwrap_or("-").to_owned();
    let uri = request.param("REQUEST_URI").unwrap_or("-").to_owned();

    let mut head = format!("Content-Type: text/plain\r\nX-Hello-Pid: {pid}\r\n");
    head += &format!("X-Hello-Account: {account}\r\n");
    if let Some(name) = arg("login") {
        head += &format!("X-Plexer-User: {name}\r\n");
    }
    if let Some(cookie) = arg("set_cookie") {
        head += &format!("Set-Cookie: {cookie}\r\n");
    }
    if arg("logout").is_some() {
        head += "X-Plexer-Logout: 1\r\n";
    }

    if arg("crash").is_some() {
        request.write_stdout(format!("{head}\r\npid: {pid}\ncrashing mid-request\n").as_bytes())?;
        request.flush()?;
        std::process::exit(3);
    }

    if let Some(size) = arg("bytes").and_then(|n| n.parse::<u64>().ok()) {
        request.write_stdout(format!("{head}Content-Length: {size}\r\n\r\n").as_bytes())?;
        return write_pattern(request, size);
    }

    let greeting = std::env::var("HELLO_GREETING").unwrap_or_else(|_| "-".into());
    let mut text = format!(
        "pid: {pid}\naccount: {account}\nuser: {user}\nuri: {uri}\nrequests: {served}\n\
         greeting: {greeting}\n"
    );
    // What an authorizer passed on, and what it must not have (plexer drops those).
    for name in ["HELLO_AUTHORIZED_BY", "HTTP_X_FORGED", "PLEXER_SECRET"] {
        if let Some(value) = request.param(name) {
            text += &format!("{}: {value}\n", name.to_ascii_lowercase());
        }
    }
    if body_len > 0 || request.param("REQUEST_METHOD") == Some("POST") {
        text += &format!("body_bytes: {body_len}\nbody_fnv1a64: {body_hash:016x}\n");
    }
    request.write_stdout(format!("{head}\r\n{text}").as_bytes())
}

/// Answers in the AUTHORIZER role, by the `hello_session` cookie (see the module docs).
fn authorize(request: &mut Request<'_, Stream>, deny: bool, garbage: bool) -> io::Result<()> {
    if garbage {
        return request.write_stdout(b"this is not a CGI head\x01\r\n\r\n");
    }
    if deny {
        return request.write_stdout(
            b"Status: 401 Unauthorized\r\nWWW-Authenticate: Basic realm=\"hello\"\r\n\r\nsign in\n",
        );
    }
    let cookies = request.param("HTTP_COOKIE").unwrap_or_default();
    let session = cookies
        .split(';')
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == "hello_session")
        .map(|(_, value)| value.to_owned());
    let uri = request.param("REQUEST_URI").unwrap_or("/").to_owned();
    let Some(session) = session else {
        return match uri.starts_with("/login") {
            true => request.write_stdout(b"Status: 200\r\n\r\n"),
            false => request.write_stdout(b"Status: 302 Found\r\nLocation: /login\r\n\r\n"),
        };
    };
    let (account, user) = session.split_once(':').unwrap_or((&session, ""));
    let mut head = format!("Status: 200\r\nVariable-PLEXER_ACCOUNT: {account}\r\n");
    if !user.is_empty() {
        head += &format!("Variable-PLEXER_USER: {user}\r\n");
    }
    head += &format!("Variable-HELLO_AUTHORIZED_BY: {}\r\n", std::process::id());
    head += "Variable-HTTP_X_FORGED: yes\r\nVariable-PLEXER_SECRET: x\r\n\r\n";
    request.write_stdout(head.as_bytes())
}

/// Streams `size` bytes of `abc…z` in 64 KiB pieces, so a large response costs no memory.
fn write_pattern(request: &mut Request<'_, Stream>, size: u64) -> io::Result<()> {
    // 65520 bytes: a multiple of 26 that fits one record (65535), so each write is one record.
    let piece: Vec<u8> = (b'a'..=b'z').cycle().take(26 * 2520).collect();
    let mut left = size;
    while left > 0 {
        let n = left.min(piece.len() as u64) as usize;
        request.write_stdout(&piece[..n])?;
        left -= n as u64;
    }
    Ok(())
}

/// The FNV-1a 64-bit hash: a checksum anyone can recompute in a line of any language.
const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;

/// FNV-1a 64 of `bytes`, continuing from `hash` (start with [`FNV_OFFSET`]).
fn fnv1a64(hash: u64, bytes: &[u8]) -> u64 {
    bytes.iter().fold(hash, |hash, &b| {
        (hash ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

/// The percent-decoded value of `name` in a query string.
fn query_arg(query: &str, name: &str) -> Option<String> {
    query.split('&').find_map(|pair| {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        (key == name).then(|| percent_decode(value))
    })
}

fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = bytes
            .get(i + 1..i + 3)
            .filter(|h| h.iter().all(u8::is_ascii_hexdigit))
            .and_then(|h| std::str::from_utf8(h).ok())
            .and_then(|h| u8::from_str_radix(h, 16).ok());
        match (bytes[i], hex) {
            (b'%', Some(byte)) => {
                out.push(byte);
                i += 3;
            }
            (b'+', _) => {
                out.push(b' ');
                i += 1;
            }
            (byte, _) => {
                out.push(byte);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}
