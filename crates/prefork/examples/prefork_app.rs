//! `prefork_app`: a FastCGI app on plexer-prefork's prefork server, to show (and test) the
//! fork-safety audit with a real database.
//!
//! ```text
//! prefork_app --socket unix:/path.sock [-F N] (--postgres DIR | --sqlite FILE) --open-in preload|post-fork
//! ```
//!
//! `--postgres DIR` opens a session with the PostgreSQL server whose socket is
//! `DIR/.s.PGSQL.5432` (a real startup exchange, as user postgres); `--sqlite FILE` opens an
//! SQLite database file. With `--open-in preload` it does so before forking, the way Django
//! under flup did at import, and the prefork server refuses to fork; with `post-fork` each
//! worker opens its own, and they serve. Answers: `pid: N` and `database: open`.

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::process::ExitCode;

use plexer_fcgi::blocking::{Listener, serve_connection};
use plexer_fcgi::{Address, ServerConfig};
use plexer_prefork::prefork::Prefork;

/// Whatever keeps the database open; held for as long as the process serves.
enum Database {
    Postgres(#[allow(dead_code)] UnixStream),
    Sqlite(#[allow(dead_code)] std::fs::File),
}

struct Args {
    socket: Address,
    workers: usize,
    postgres: Option<PathBuf>,
    sqlite: Option<PathBuf>,
    in_preload: bool,
}

fn main() -> ExitCode {
    let args = match parse_args() {
        Ok(args) => args,
        Err(message) => {
            eprintln!("prefork_app: {message}");
            return ExitCode::from(2);
        }
    };
    let listener = match Listener::bind(&args.socket) {
        Ok(Listener::Unix(listener)) => std::os::fd::OwnedFd::from(listener),
        Ok(Listener::Tcp(listener)) => std::os::fd::OwnedFd::from(listener),
        Err(err) => {
            eprintln!("prefork_app: cannot bind {}: {err}", args.socket);
            return ExitCode::FAILURE;
        }
    };
    // The mistake this example exists to show: a connection opened before the fork.
    let preloaded = if args.in_preload {
        match open(&args) {
            Ok(db) => Some(db),
            Err(err) => {
                eprintln!("prefork_app: {err}");
                return ExitCode::FAILURE;
            }
        }
    } else {
        None
    };
    let served = Prefork::new(listener, args.workers).run(|listener| {
        // post_fork: each worker opens its own connection.
        let _db = if preloaded.is_none() {
            match open(&args) {
                Ok(db) => Some(db),
                Err(err) => {
                    eprintln!("prefork_app: worker cannot open the database: {err}");
                    return 1;
                }
            }
        } else {
            None
        };
        serve(listener)
    });
    match served {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("prefork_app: {err}");
            ExitCode::FAILURE
        }
    }
}

fn serve(listener: &std::os::fd::OwnedFd) -> i32 {
    let listener = match listener
        .try_clone()
        .and_then(Listener::from_listening_fd)
        .map(|l| l.expect("a listening socket"))
    {
        Ok(listener) => listener,
        Err(err) => {
            eprintln!("prefork_app: {err}");
            return 1;
        }
    };
    loop {
        let Ok(stream) = listener.accept() else {
            continue;
        };
        let _ = serve_connection(stream, &ServerConfig::default(), |request| {
            let text = format!("pid: {}\ndatabase: open\n", std::process::id());
            request.write_stdout(format!("Content-Type: text/plain\r\n\r\n{text}").as_bytes())
        });
    }
}

fn open(args: &Args) -> std::io::Result<Database> {
    if let Some(dir) = &args.postgres {
        return postgres_session(dir).map(Database::Postgres);
    }
    let path = args
        .sqlite
        .as_ref()
        .expect("parse_args requires one database");
    std::fs::File::open(path).map(Database::Sqlite)
}

/// Connects and starts a session: StartupMessage (protocol 3.0, user postgres), then reads the
/// server's first answer, an authentication message ('R').
fn postgres_session(dir: &std::path::Path) -> std::io::Result<UnixStream> {
    let mut stream = UnixStream::connect(dir.join(".s.PGSQL.5432"))?;
    let mut body = Vec::new();
    body.extend_from_slice(&196_608u32.to_be_bytes()); // protocol 3.0
    for part in ["user", "postgres", "database", "postgres"] {
        body.extend_from_slice(part.as_bytes());
        body.push(0);
    }
    body.push(0);
    let mut message = ((body.len() + 4) as u32).to_be_bytes().to_vec();
    message.extend_from_slice(&body);
    stream.write_all(&message)?;
    let mut tag = [0u8; 1];
    stream.read_exact(&mut tag)?;
    if tag[0] != b'R' {
        return Err(std::io::Error::other(format!(
            "PostgreSQL answered {:?}, not an authentication message",
            tag[0] as char
        )));
    }
    Ok(stream)
}

fn parse_args() -> Result<Args, String> {
    let mut args = Args {
        socket: Address::Unix(PathBuf::new()),
        workers: 2,
        postgres: None,
        sqlite: None,
        in_preload: false,
    };
    let mut socket = None;
    let mut open_in = None;
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || it.next().ok_or(format!("{flag} needs a value"));
        match flag.as_str() {
            "--socket" => socket = Some(value()?.parse().map_err(|e| format!("{e}"))?),
            "-F" => args.workers = value()?.parse().map_err(|e| format!("-F: {e}"))?,
            "--postgres" => args.postgres = Some(value()?.into()),
            "--sqlite" => args.sqlite = Some(value()?.into()),
            "--open-in" => open_in = Some(value()?),
            other => return Err(format!("unknown argument {other:?}")),
        }
    }
    args.socket = socket.ok_or("--socket is required")?;
    if args.postgres.is_some() == args.sqlite.is_some() {
        return Err("give one of --postgres DIR and --sqlite FILE".into());
    }
    args.in_preload = match open_in.as_deref() {
        Some("preload") => true,
        Some("post-fork") => false,
        _ => return Err("--open-in takes preload or post-fork".into()),
    };
    Ok(args)
}
