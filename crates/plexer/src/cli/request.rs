//! `plexer request`: a FastCGI client like libfcgi's cgi-fcgi, on plexer's own codec.
//!
//! It sends one RESPONDER request with the CGI params a web server would send for `URI`, streams
//! the body from `--body`, prints the application's STDOUT (the CGI response as sent) to stdout
//! and its STDERR to stderr, and fails, naming the problem, on anything but a complete request.
//! The body is written on a second thread while the response is read on this one, so an
//! application that answers before reading all of a large body cannot deadlock it.

use std::fs::File;
use std::io::{self, IoSlice, Read, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::thread;

use anyhow::{Context, bail};
use bytes::{Buf, Bytes};
use clap::Args;
use plexer_fcgi::blocking::Stream;
use plexer_fcgi::{
    Address, ClientConnection, ClientEvent, Limits, Outbox, Params, ProtocolStatus, RecordType,
    RequestParams, Role,
};

#[derive(Debug, Args)]
pub(crate) struct RequestArgs {
    /// Where the FastCGI server listens: unix:/path, tcp:HOST:PORT, or a bare path.
    #[arg(long, value_name = "ADDR")]
    connect: String,
    /// Adds or replaces a param (repeatable), e.g. -p SCRIPT_FILENAME=/srv/index.php.
    #[arg(short = 'p', long = "param", value_name = "NAME=VALUE")]
    params: Vec<String>,
    /// Sends a cookie: `NAME=VALUE` as is, or a bare value as the routing cookie plexer_account.
    #[arg(long, value_name = "VALUE")]
    cookie: Option<String>,
    /// The request method (default GET, or POST with --body).
    #[arg(short = 'X', long = "method", value_name = "METHOD")]
    method: Option<String>,
    /// Sends this file as the request body (`-` for standard input).
    #[arg(long, value_name = "FILE")]
    body: Option<PathBuf>,
    /// The request URI, path and query: /index.php?x=1.
    #[arg(value_name = "URI")]
    uri: String,
}

pub(crate) fn run(args: RequestArgs) -> anyhow::Result<ExitCode> {
    let address: Address = args.connect.parse()?;
    let body = open_body(args.body.as_deref())?;
    let params = cgi_params(&args, body.as_ref().map(|b| b.len))?;
    let stream =
        Stream::connect(&address).with_context(|| format!("cannot connect to {address}"))?;

    let mut conn = ClientConnection::new(Limits::default());
    let id = conn.begin_request(Role::Responder, false, &params)?;
    let mut writer = stream.try_clone()?;
    write_all(&mut writer, conn.outbox()).with_context(|| format!("writing to {address}"))?;
    let sender = thread::spawn(move || send_body(writer, id, body));

    let outcome = read_response(stream, &mut conn);
    // A body the application never read fails to send; that is the application's right (§6.2),
    // so a send error only matters when the response failed too.
    let sent = sender.join().expect("the body sender does not panic");
    let (app_status, protocol_status) = match (outcome, sent) {
        (Ok(end), _) => end,
        (Err(err), Err(send_err)) => {
            return Err(err.context(format!("while sending the body: {send_err}")));
        }
        (Err(err), Ok(())) => return Err(err),
    };
    if protocol_status != ProtocolStatus::RequestComplete {
        bail!(
            "the application refused the request: END_REQUEST with protocol status {protocol_status:?}"
        );
    }
    tracing::debug!(app_status, "request complete");
    Ok(ExitCode::SUCCESS)
}

struct Body {
    reader: Box<dyn Read + Send>,
    len: u64,
}

fn open_body(path: Option<&std::path::Path>) -> anyhow::Result<Option<Body>> {
    let Some(path) = path else {
        return Ok(None);
    };
    if path.as_os_str() == "-" {
        // CONTENT_LENGTH must be known before the body is sent, so stdin is read first.
        let mut all = Vec::new();
        io::stdin()
            .read_to_end(&mut all)
            .context("reading the body from stdin")?;
        let len = all.len() as u64;
        return Ok(Some(Body {
            reader: Box::new(io::Cursor::new(all)),
            len,
        }));
    }
    let file =
        File::open(path).with_context(|| format!("cannot open body file {}", path.display()))?;
    let len = file.metadata()?.len();
    Ok(Some(Body {
        reader: Box::new(file),
        len,
    }))
}

/// The params nginx's `fastcgi_params` would send for this request, then the user's `-p`.
fn cgi_params(args: &RequestArgs, body_len: Option<u64>) -> anyhow::Result<Params> {
    if !args.uri.starts_with('/') {
        bail!("the URI must start with '/': {:?}", args.uri);
    }
    let method = match (&args.method, body_len) {
        (Some(method), _) => method.to_ascii_uppercase(),
        (None, Some(_)) => "POST".into(),
        (None, None) => "GET".into(),
    };
    let path = args
        .uri
        .split_once('?')
        .map_or(args.uri.as_str(), |(path, _)| path);
    let local = std::net::SocketAddr::from(([127, 0, 0, 1], 80));
    let mut params = RequestParams {
        software: "plexer-request",
        protocol: "HTTP/1.1",
        scheme: "http",
        method: &method,
        uri: &args.uri,
        server_name: "localhost",
        server: local,
        remote: std::net::SocketAddr::from(([127, 0, 0, 1], 0)),
        script_name: path,
        document_uri: path.to_owned().into(),
        path_info: None,
        content_length: body_len,
        content_type: if body_len.is_some() {
            "application/octet-stream".into()
        } else {
            Bytes::new()
        },
    }
    .params();
    params.push("HTTP_HOST", "localhost");
    if let Some(cookie) = &args.cookie {
        let header = if cookie.contains('=') {
            cookie.clone()
        } else {
            // `--cookie VALUE` without `=` is the routing cookie, by its default name.
            let name = plexer_server::config::Route::default().cookie;
            format!("{name}={cookie}")
        };
        params.set("HTTP_COOKIE", header);
    }
    for param in &args.params {
        let Some((name, value)) = param.split_once('=') else {
            bail!("-p takes NAME=VALUE, got {param:?}");
        };
        params.set(name.to_owned(), value.to_owned());
    }
    Ok(params)
}

/// Streams the body as STDIN records, then the empty record that ends it.
fn send_body(mut stream: Stream, id: u16, body: Option<Body>) -> io::Result<()> {
    let mut outbox = Outbox::new();
    if let Some(mut body) = body {
        let mut chunk = vec![0u8; 64 * 1024];
        loop {
            let n = body.reader.read(&mut chunk)?;
            if n == 0 {
                break;
            }
            outbox.push_stream(RecordType::Stdin, id, Bytes::copy_from_slice(&chunk[..n]));
            write_all(&mut stream, &mut outbox)?;
        }
    }
    outbox.push_stream_end(RecordType::Stdin, id);
    write_all(&mut stream, &mut outbox)
}

fn write_all(stream: &mut Stream, outbox: &mut Outbox) -> io::Result<()> {
    while outbox.has_remaining() {
        let mut slices = [IoSlice::new(&[]); 32];
        let count = outbox.io_slices(&mut slices);
        match stream.write_vectored(&slices[..count]) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => outbox.advance(n),
            Err(err) if err.kind() == io::ErrorKind::Interrupted => {}
            Err(err) => return Err(err),
        }
    }
    Ok(())
}

/// Copies STDOUT and STDERR out until END_REQUEST; returns its statuses.
fn read_response(
    mut stream: Stream,
    conn: &mut ClientConnection,
) -> anyhow::Result<(u32, ProtocolStatus)> {
    let mut stdout = io::stdout().lock();
    let mut stderr = io::stderr().lock();
    let mut chunk = vec![0u8; 64 * 1024];
    loop {
        while let Some(event) = conn.poll_event()? {
            match event {
                ClientEvent::Stdout { data, .. } => stdout.write_all(&data)?,
                ClientEvent::Stderr { data, .. } => stderr.write_all(&data)?,
                ClientEvent::End {
                    app_status,
                    protocol_status,
                    ..
                } => {
                    stdout.flush()?;
                    return Ok((app_status, protocol_status));
                }
                ClientEvent::Values(_) | ClientEvent::UnknownType(_) => {}
            }
        }
        let n = match stream.read(&mut chunk) {
            Ok(n) => n,
            Err(err) if err.kind() == io::ErrorKind::Interrupted => continue,
            Err(err) => return Err(err).context("reading the response"),
        };
        if n == 0 {
            conn.on_eof().map_err(plexer_fcgi::Error::from)?;
            bail!("the application closed the connection before END_REQUEST");
        }
        conn.receive(&chunk[..n]);
    }
}
