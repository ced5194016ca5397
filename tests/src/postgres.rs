//! A real PostgreSQL server (Debian's package), private to one test: a fresh cluster in the
//! scratch directory, listening on a unix socket there (`DIR/.s.PGSQL.5432`) and, when asked,
//! on 127.0.0.1 at a free port (then the socket is `DIR/.s.PGSQL.PORT`), with trust
//! authentication for the `postgres` user. It is killed with the guard.
//!
//! initdb and postgres refuse to run as root, so as root (CI) they run as the `postgres` user
//! the package creates, and the directory is handed to it.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use crate::{Running, Scratch, run, wait};

/// Where Debian installs the server programs.
fn pg_bin(program: &str) -> PathBuf {
    let versions = std::fs::read_dir("/usr/lib/postgresql")
        .expect("PostgreSQL is installed (make test installs Debian's postgresql)");
    let mut dirs: Vec<PathBuf> = versions.flatten().map(|e| e.path()).collect();
    dirs.sort();
    dirs.last()
        .expect("a PostgreSQL version under /usr/lib/postgresql")
        .join("bin")
        .join(program)
}

/// How long PostgreSQL may take to answer one message of a session.
const ANSWER_TIMEOUT: Duration = Duration::from_secs(10);

/// A running PostgreSQL server.
pub struct Postgres {
    dir: PathBuf,
    port: u16,
    _server: Running,
}

fn as_postgres(program: &Path) -> Command {
    if nix::unistd::Uid::effective().is_root() {
        let mut command = Command::new("runuser");
        command.args(["-u", "postgres", "--"]).arg(program);
        command
    } else {
        Command::new(program)
    }
}

impl Postgres {
    /// A server on its unix socket only, at PostgreSQL's default port number.
    pub fn start(scratch: &Scratch) -> Self {
        Self::start_listening(scratch, None)
    }

    /// A server on 127.0.0.1 at a free port (never 5432), and on its unix socket.
    pub fn start_on_tcp(scratch: &Scratch) -> Self {
        Self::start_listening(scratch, Some(crate::addr::free_port()))
    }

    fn start_listening(scratch: &Scratch, tcp_port: Option<u16>) -> Self {
        let port = tcp_port.unwrap_or(5432);
        let listen = if tcp_port.is_some() { "127.0.0.1" } else { "" };
        let dir = scratch.join("postgres");
        std::fs::create_dir_all(&dir).expect("create the cluster directory");
        if nix::unistd::Uid::effective().is_root() {
            let user = nix::unistd::User::from_name("postgres")
                .expect("read the user database")
                .expect("the postgres user exists (Debian's postgresql package)");
            for path in [scratch.path(), dir.as_path()] {
                nix::unistd::chown(path, Some(user.uid), Some(user.gid))
                    .expect("chown for postgres");
            }
        }
        let data = dir.join("data");
        let mut initdb = as_postgres(&pg_bin("initdb"));
        initdb
            .arg("-D")
            .arg(&data)
            .args(["-A", "trust", "-U", "postgres", "--no-sync"]);
        run(&mut initdb, b"", Duration::from_secs(60)).assert_success();
        let mut postgres = as_postgres(&pg_bin("postgres"));
        postgres
            .arg("-D")
            .arg(&data)
            .arg("-k")
            .arg(&dir)
            .arg("-p")
            .arg(port.to_string())
            .arg("-c")
            .arg(format!("listen_addresses={listen}"))
            .args(["-c", "fsync=off"]);
        let mut server = Running::spawn(
            "postgres",
            &mut postgres,
            &scratch.unique("postgres", "log"),
        );
        // A server that failed to start fails the wait at once, with its log.
        let socket = dir.join(format!(".s.PGSQL.{port}"));
        wait::wait_until(
            "PostgreSQL listens",
            || {
                server.assert_running();
                socket.exists()
            },
            Duration::from_secs(30),
        );
        // The socket exists before the server takes sessions ("the database system is starting
        // up"): ready means a query answers.
        wait::wait_until(
            "PostgreSQL answers queries",
            || {
                server.assert_running();
                psql(&dir, port, "select 1").is_some()
            },
            Duration::from_secs(30),
        );
        Self {
            dir,
            port,
            _server: server,
        }
    }

    /// The socket directory (`host` for libpq, `-h` for psql).
    pub fn socket_dir(&self) -> &Path {
        &self.dir
    }

    /// The port: 5432, or the TCP port of [`Postgres::start_on_tcp`].
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The socket itself.
    pub fn socket(&self) -> PathBuf {
        self.dir.join(format!(".s.PGSQL.{}", self.port))
    }

    /// Opens a session as `postgres` the way any client library does: a StartupMessage
    /// (protocol 3.0) on the unix socket, then the server's first answer, which must be an
    /// authentication message ('R'). The session lives as long as the stream, whose reads and
    /// writes time out after ANSWER_TIMEOUT.
    pub fn session(&self) -> std::os::unix::net::UnixStream {
        use std::io::{Read, Write};
        let mut stream =
            std::os::unix::net::UnixStream::connect(self.socket()).expect("connect to PostgreSQL");
        stream
            .set_read_timeout(Some(ANSWER_TIMEOUT))
            .and_then(|()| stream.set_write_timeout(Some(ANSWER_TIMEOUT)))
            .expect("set the session's timeouts");
        let mut body = 196_608u32.to_be_bytes().to_vec();
        for part in ["user", "postgres", "database", "postgres"] {
            body.extend_from_slice(part.as_bytes());
            body.push(0);
        }
        body.push(0);
        let mut message = u32::try_from(body.len() + 4)
            .unwrap()
            .to_be_bytes()
            .to_vec();
        message.extend_from_slice(&body);
        stream
            .write_all(&message)
            .expect("send the startup message");
        let mut tag = [0u8; 1];
        stream.read_exact(&mut tag).expect("PostgreSQL answers");
        if tag[0] != b'R' {
            let mut rest = vec![0u8; 512];
            let n = stream.read(&mut rest).unwrap_or(0);
            panic!(
                "PostgreSQL refused the session ({:?}): {}",
                tag[0] as char,
                String::from_utf8_lossy(&rest[..n])
            );
        }
        stream
    }

    /// Runs one SQL statement with psql and returns its unaligned output.
    pub fn query(&self, sql: &str) -> String {
        self.try_query(sql)
            .unwrap_or_else(|| panic!("psql failed to run {sql:?}"))
    }

    fn try_query(&self, sql: &str) -> Option<String> {
        psql(&self.dir, self.port, sql)
    }
}

/// Runs `sql` with psql on the server whose socket is in `dir`; its output, or `None` if psql
/// failed.
fn psql(dir: &Path, port: u16, sql: &str) -> Option<String> {
    let mut psql = Command::new("psql");
    psql.arg("-h")
        .arg(dir)
        .arg("-p")
        .arg(port.to_string())
        .args(["-U", "postgres", "-d", "postgres", "-At", "-c", sql]);
    let finished = run(&mut psql, b"", Duration::from_secs(30));
    finished
        .status
        .success()
        .then(|| String::from_utf8_lossy(&finished.stdout).trim().to_owned())
}
