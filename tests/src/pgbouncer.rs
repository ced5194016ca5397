//! PgBouncer (Debian's package) in front of a test's [`Postgres`], in transaction pooling
//! mode: the pooler a registry node must recognise, since a session in transaction mode cannot
//! LISTEN (its notifications go to whichever server connection the pooler picked). It listens
//! on a unix socket in the scratch directory only, trusts the `postgres` user, runs as the
//! `postgres` user (PgBouncer refuses root), and is killed with the guard.

use std::path::PathBuf;
use std::time::Duration;

use crate::postgres::{Postgres, as_postgres};
use crate::{Running, Scratch, tools, wait};

/// A running PgBouncer.
pub struct PgBouncer {
    dir: PathBuf,
    port: u16,
    _server: Running,
}

impl PgBouncer {
    /// Starts PgBouncer in transaction mode in front of `postgres`'s database `postgres`.
    pub fn start_in_transaction_mode(scratch: &Scratch, postgres: &Postgres) -> Self {
        let program = tools::find("pgbouncer")
            .or_else(|| Some(PathBuf::from("/usr/sbin/pgbouncer")).filter(|p| p.exists()))
            .unwrap_or_else(|| tools::require("pgbouncer", "pgbouncer"));
        let dir = scratch.join("pgbouncer");
        std::fs::create_dir_all(&dir).expect("create PgBouncer's directory");
        let port = crate::addr::free_port();
        std::fs::write(dir.join("userlist.txt"), "\"postgres\" \"\"\n").expect("write userlist");
        let ini = format!(
            "[databases]\npostgres = host={pg_dir} port={pg_port} dbname=postgres user=postgres\n\
             [pgbouncer]\nlisten_addr =\nlisten_port = {port}\nunix_socket_dir = {dir}\n\
             auth_type = trust\nauth_file = {dir}/userlist.txt\npool_mode = transaction\n\
             logfile =\npidfile =\n",
            pg_dir = postgres.socket_dir().display(),
            pg_port = postgres.port(),
            dir = dir.display(),
        );
        let config = dir.join("pgbouncer.ini");
        std::fs::write(&config, ini).expect("write pgbouncer.ini");
        if nix::unistd::Uid::effective().is_root() {
            let user = nix::unistd::User::from_name("postgres")
                .expect("read the user database")
                .expect("the postgres user exists (Debian's postgresql package)");
            for path in [dir.clone(), dir.join("userlist.txt"), config.clone()] {
                nix::unistd::chown(&path, Some(user.uid), Some(user.gid))
                    .expect("chown for postgres");
            }
        }
        let mut command = as_postgres(&program);
        command.arg(&config);
        let mut server = Running::spawn(
            "pgbouncer",
            &mut command,
            &scratch.unique("pgbouncer", "log"),
        );
        let socket = dir.join(format!(".s.PGSQL.{port}"));
        wait::wait_until(
            "PgBouncer listens",
            || {
                server.assert_running();
                socket.exists()
            },
            Duration::from_secs(10),
        );
        Self {
            dir,
            port,
            _server: server,
        }
    }

    /// Runs `sql` with psql through the pooler (as another client of it would); its output, or
    /// `None` when psql failed.
    pub fn query(&self, sql: &str) -> Option<String> {
        let mut psql = std::process::Command::new(tools::require("psql", "postgresql-client"));
        psql.arg("-h")
            .arg(&self.dir)
            .arg("-p")
            .arg(self.port.to_string())
            .args(["-U", "postgres", "-d", "postgres", "-At", "-c", sql]);
        let finished = crate::run(&mut psql, b"", Duration::from_secs(30));
        finished
            .status
            .success()
            .then(|| finished.stdout_text().trim().to_owned())
    }

    /// A libpq connection string to the database `postgres` through the pooler.
    pub fn conninfo(&self) -> String {
        format!(
            "host={} port={} user=postgres dbname=postgres",
            self.dir.display(),
            self.port
        )
    }
}
