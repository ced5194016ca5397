//! A real PostgreSQL server (Debian's package), private to one test: a fresh cluster in the
//! scratch directory, listening on a unix socket there (`DIR/.s.PGSQL.5432`) and, when asked,
//! on 127.0.0.1 at a free port (then the socket is `DIR/.s.PGSQL.PORT`), with trust
//! authentication for the `postgres` user. For the cluster tests it also listens on the
//! root-side ends of test namespaces' links, and lets those links' clients in
//! ([`Postgres::start_on_addresses`]); it can be stopped and started again on the same data
//! ([`Postgres::stop`], [`Postgres::start_again`]). It is killed with the guard.
//!
//! initdb and postgres refuse to run as root, so as root (CI) they run as the `postgres` user
//! the package creates, and the directory is handed to it.

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use crate::netns::Subnet;
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
    data: PathBuf,
    port: u16,
    /// `listen_addresses`, as given to the server.
    listen: String,
    log: PathBuf,
    /// `None` while stopped ([`Postgres::stop`]).
    server: Option<Running>,
}

pub(crate) fn as_postgres(program: &Path) -> Command {
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
        Self::start_listening(scratch, 5432, &[], &[])
    }

    /// A server on 127.0.0.1 at a free port (never 5432), and on its unix socket.
    pub fn start_on_tcp(scratch: &Scratch) -> Self {
        Self::start_on_addresses(scratch, &[], &[])
    }

    /// A server on 127.0.0.1 and on `addresses` (the root-side ends of test namespaces'
    /// links, [`crate::netns::Netns::host`]) at a free port, and on its unix socket; clients
    /// from `clients` (the namespaces' links) may sign in as `postgres` without a password, as
    /// local ones may. The addresses must exist when it starts, and when it starts again.
    pub fn start_on_addresses(
        scratch: &Scratch,
        addresses: &[Ipv4Addr],
        clients: &[Subnet],
    ) -> Self {
        let mut listen = vec![Ipv4Addr::LOCALHOST];
        listen.extend_from_slice(addresses);
        Self::start_listening(scratch, crate::addr::free_port(), &listen, clients)
    }

    fn start_listening(
        scratch: &Scratch,
        port: u16,
        listen: &[Ipv4Addr],
        clients: &[Subnet],
    ) -> Self {
        let listen = listen
            .iter()
            .map(Ipv4Addr::to_string)
            .collect::<Vec<_>>()
            .join(",");
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
        allow_clients(&data, clients);
        let mut postgres = Self {
            dir,
            data,
            port,
            listen,
            log: scratch.unique("postgres", "log"),
            server: None,
        };
        postgres.start_again();
        postgres
    }

    /// Starts the server again on the same data directory, addresses and port, after
    /// [`stop`](Self::stop); returns once it answers queries.
    pub fn start_again(&mut self) {
        assert!(self.server.is_none(), "PostgreSQL is already running");
        let mut postgres = as_postgres(&pg_bin("postgres"));
        postgres
            .arg("-D")
            .arg(&self.data)
            .arg("-k")
            .arg(&self.dir)
            .arg("-p")
            .arg(self.port.to_string())
            .arg("-c")
            .arg(format!("listen_addresses={}", self.listen))
            .args(["-c", "fsync=off"]);
        let mut server = Running::spawn("postgres", &mut postgres, &self.log);
        // A server that failed to start fails the wait at once, with its log.
        let socket = self.socket();
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
                psql(&self.dir, self.port, "select 1").is_some()
            },
            Duration::from_secs(30),
        );
        self.server = Some(server);
    }

    /// Stops the server as an operator would (`pg_ctl stop -m fast`: sessions are cut, the
    /// data is kept) and waits until it has exited; [`start_again`](Self::start_again) brings
    /// it back. Signalled through pg_ctl rather than the guard's process, since that is
    /// runuser's, which would turn a SIGINT into a SIGTERM (a "smart" shutdown that waits for
    /// every session to end).
    pub fn stop(&mut self) {
        let mut server = self.server.take().expect("PostgreSQL is running");
        let mut pg_ctl = as_postgres(&pg_bin("pg_ctl"));
        pg_ctl
            .arg("stop")
            .arg("-D")
            .arg(&self.data)
            .args(["-m", "fast", "-w", "-t", "30"]);
        run(&mut pg_ctl, b"", Duration::from_secs(40)).assert_success();
        assert!(
            server.wait_exit(Duration::from_secs(10)).is_some(),
            "PostgreSQL's runuser did not exit after pg_ctl stop"
        );
    }

    /// Whether the server is running (not [`stop`](Self::stop)ped).
    pub fn is_running(&self) -> bool {
        self.server.is_some()
    }

    /// A libpq URL to this server through `host`, one of its TCP addresses, as user and
    /// database `postgres`.
    pub fn url(&self, host: Ipv4Addr) -> String {
        format!("postgresql://postgres@{host}:{}/postgres", self.port)
    }

    /// The socket directory (`host` for libpq, `-h` for psql).
    pub fn socket_dir(&self) -> &Path {
        &self.dir
    }

    /// The port: 5432, or the TCP port of [`Postgres::start_on_tcp`] and
    /// [`Postgres::start_on_addresses`].
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

/// Appends `host` lines to the cluster's pg_hba.conf so that `postgres` may connect from
/// `clients` without a password (initdb's `-A trust` only covers the loopback addresses).
fn allow_clients(data: &Path, clients: &[Subnet]) {
    use std::io::Write;
    let hba = data.join("pg_hba.conf");
    let mut file = std::fs::File::options()
        .append(true)
        .open(&hba)
        .unwrap_or_else(|err| panic!("open {}: {err}", hba.display()));
    for client in clients {
        writeln!(file, "host all postgres {client} trust").expect("write pg_hba.conf");
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
