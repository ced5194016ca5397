//! The seeds' own bug, as a new user meets it: a flup prefork app (the server Django's
//! `runfcgi` used) that connects to its database at import, before flup forks its children.
//! Nothing is declared: the audit finds the database by the process that answers (PostgreSQL
//! on a port other than 5432, Redis on a socket named `cache.sock`), by the socket's peer,
//! and an SQLite file by one open file shared. `--audit strict` stops the pool within 5 s of
//! the fork, naming the database and where it is. What is shared on purpose (the listening
//! socket, a syslog datagram socket) and what each child opens after the fork is not reported.

use std::os::unix::net::UnixDatagram;
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use plexer_tests::django::venv_python;
use plexer_tests::log_events::{Event, events, find};
use plexer_tests::procfs::children_of;
use plexer_tests::wait::wait_until;
use plexer_tests::{
    PlexerRequest, PlexerServe, Postgres, Redis, Running, Scratch, ServeSetup, build, examples,
};

/// From the children's fork to the pool stopped.
const STOP_WITHIN: Duration = Duration::from_secs(5);

fn app() -> PathBuf {
    examples::repo_root().join("tests/apps/flup_prefork_app.py")
}

/// `plexer spawn --audit MODE -F 1 -- python flup_prefork_app.py` with `env` for the app.
fn spawn(scratch: &Scratch, name: &str, mode: &str, env: &[(&str, String)]) -> (Running, PathBuf) {
    let socket = scratch.socket_path(name);
    let mut command = Command::new(build::plexer());
    command
        .arg("spawn")
        .arg("-s")
        .arg(&socket)
        .args(["-F", "1", "--audit", mode, "--log-format", "json", "--"])
        .arg(venv_python())
        .arg(app())
        .envs(env.iter().map(|(k, v)| (k, v)));
    let running = Running::spawn(name, &mut command, &scratch.unique(name, "log"));
    (running, socket)
}

/// When the worker (flup's parent) has forked its two children.
fn wait_for_fork(spawned: &mut Running) -> Instant {
    let mut worker = None;
    wait_until(
        "flup forks its two children",
        || {
            if let Some(status) = spawned.try_exit() {
                panic!(
                    "plexer spawn exited before the fork ({status:?}):\n{}",
                    spawned.log()
                );
            }
            worker = children_of(spawned.pid()).first().copied();
            worker.is_some_and(|worker| children_of(worker).len() >= 2)
        },
        Duration::from_secs(20),
    );
    Instant::now()
}

/// Runs the app with `env` under `--audit strict` and returns the log once plexer has stopped
/// it, asserting it did so within [`STOP_WITHIN`] of the fork.
fn stopped(scratch: &Scratch, name: &str, env: &[(&str, String)]) -> String {
    let (mut spawned, _socket) = spawn(scratch, name, "strict", env);
    let forked = wait_for_fork(&mut spawned);
    let status = spawned.wait_exit(STOP_WITHIN + Duration::from_secs(2));
    let took = forked.elapsed();
    let log = spawned.log();
    assert!(
        status.is_some_and(|s| !s.success()),
        "{name}: still running:\n{log}"
    );
    assert!(
        took <= STOP_WITHIN,
        "{name}: stopped after {took:?}:\n{log}"
    );
    // The error plexer spawn exits with: its last words, for the operator.
    assert!(
        log.contains("(audit: strict stopped the workers)"),
        "{name}:\n{log}"
    );
    eprintln!("{name}: stopped {took:?} after the fork");
    log
}

fn assert_names(log: &str, what: &[&str]) {
    for text in what {
        assert!(log.contains(text), "the finding names {text:?}:\n{log}");
    }
}

#[test]
fn strict_stops_a_pool_sharing_any_database_opened_at_import() {
    let scratch = Scratch::new();
    let postgres = Postgres::start_on_tcp(&scratch);
    let redis = Redis::start(&scratch);
    let port = postgres.port().to_string();
    assert_ne!(port, "5432");

    let log = stopped(
        &scratch,
        "pg-tcp",
        &[
            ("OPEN", "pg".into()),
            ("PGHOST", "127.0.0.1".into()),
            ("PGPORT", port.clone()),
        ],
    );
    assert_names(
        &log,
        &[
            &format!("-> 127.0.0.1:{port} (PostgreSQL: postgres, pid"),
            "is shared by pids",
        ],
    );

    // libpq's default on Debian: the unix socket, as Django uses with an empty HOST.
    let log = stopped(
        &scratch,
        "pg-unix",
        &[
            ("OPEN", "pg".into()),
            ("PGHOST", postgres.socket_dir().display().to_string()),
            ("PGPORT", port),
        ],
    );
    assert_names(
        &log,
        &[&format!(
            "unix-socket connection to {} (PostgreSQL",
            postgres.socket().display()
        )],
    );

    let log = stopped(
        &scratch,
        "redis-tcp",
        &[
            ("OPEN", "redis_tcp".into()),
            ("REDIS_PORT", redis.port().to_string()),
        ],
    );
    assert_names(
        &log,
        &[&format!(
            "-> 127.0.0.1:{} (Redis: redis-server, pid",
            redis.port()
        )],
    );

    let log = stopped(
        &scratch,
        "redis-unix",
        &[
            ("OPEN", "redis_unix".into()),
            ("REDIS_SOCKET", redis.socket().display().to_string()),
        ],
    );
    assert_names(
        &log,
        &[&format!(
            "connection to {} (Redis: redis-server, pid",
            redis.socket().display()
        )],
    );

    let database = scratch.join("app.db");
    let log = stopped(
        &scratch,
        "sqlite",
        &[
            ("OPEN", "sqlite".into()),
            ("SQLITE_PATH", database.display().to_string()),
        ],
    );
    assert_names(
        &log,
        &[&format!(
            "SQLite database {} is one open file shared by pids",
            database.display()
        )],
    );
}

/// The fix the message asks for, and what is safe to share: served for 15 s, nothing said.
#[test]
fn connections_opened_after_fork_and_safe_sharing_are_left_alone() {
    let scratch = Scratch::new();
    let postgres = Postgres::start_on_tcp(&scratch);
    let redis = Redis::start(&scratch);
    let syslog_path = scratch.join("syslog.sock");
    let _syslog = UnixDatagram::bind(&syslog_path).unwrap();
    let env = [
        ("OPEN", "pg,redis_tcp,redis_unix,sqlite".into()),
        ("WHEN", "after_fork".into()),
        ("PGHOST", "127.0.0.1".into()),
        ("PGPORT", postgres.port().to_string()),
        ("REDIS_PORT", redis.port().to_string()),
        ("REDIS_SOCKET", redis.socket().display().to_string()),
        ("SQLITE_PATH", scratch.join("app.db").display().to_string()),
        ("LISTENER", "1".into()),
        ("SYSLOG_SOCKET", syslog_path.display().to_string()),
    ];
    let (mut spawned, socket) = spawn(&scratch, "after-fork", "strict", &env);
    let forked = wait_for_fork(&mut spawned);
    let mut served = 0;
    while forked.elapsed() < Duration::from_secs(15) {
        let answer = PlexerRequest::new(format!("unix:{}", socket.display()), "/").run();
        answer.assert_success();
        assert!(
            answer.stdout_text().contains("served by"),
            "{}",
            answer.stdout_text()
        );
        served += 1;
        std::thread::sleep(Duration::from_millis(500));
    }
    spawned.assert_running();
    let log = spawned.log();
    let said =
        |e: &Event| e.level() == "WARN" || e.level() == "ERROR" || e.field("finding").is_some();
    assert!(!events(&log).iter().any(said), "{log}");
    assert!(served >= 20, "served {served}");
}

/// A shared connection to a server that is no database: warned about, naming who answers,
/// and the pool serves on.
#[test]
fn a_shared_connection_to_anything_else_is_a_warning() {
    let scratch = Scratch::new();
    let peer = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = peer.local_addr().unwrap().port();
    let env = [("OPEN", "peer_tcp".into()), ("PEER_PORT", port.to_string())];
    let (mut spawned, socket) = spawn(&scratch, "peer", "strict", &env);
    wait_for_fork(&mut spawned);
    let warned = |e: &Event| e.level() == "WARN" && e.field("finding").is_some();
    wait_until(
        "the audit warns",
        || find(&spawned.log(), warned).is_some(),
        STOP_WITHIN,
    );
    let finding = find(&spawned.log(), warned)
        .unwrap()
        .text("finding")
        .unwrap();
    let me = std::process::id();
    assert!(
        finding.contains(&format!("-> 127.0.0.1:{port} (answered by "))
            && finding.contains(&format!("pid {me}"))
            && finding.contains("is shared by pids"),
        "{finding}"
    );
    PlexerRequest::new(format!("unix:{}", socket.display()), "/")
        .run()
        .assert_success();
    spawned.assert_running();
}

/// `plexer serve` with `audit: strict` and no `audit_databases`: the account is stopped and
/// says why; the others serve on.
#[test]
fn serve_stops_an_account_sharing_its_database_found_by_what_answers() {
    let scratch = Scratch::new();
    let postgres = Postgres::start(&scratch);
    let forky = format!(
        "users: [forky]\npm: static\nmax_children: 1\naudit: strict\ncommand: [{python:?}, \
         {app:?}]\nenv: {{ OPEN: pg, PGHOST: {host:?}, PGPORT: \"5432\" }}\n",
        python = venv_python().display().to_string(),
        app = app().display().to_string(),
        host = postgres.socket_dir().display().to_string(),
    );
    let plexer = PlexerServe::start(
        &scratch,
        ServeSetup {
            accounts: &[("login", "{}"), ("bob", "users: [bob]"), ("forky", &forky)],
            args: &["--log-format", "json"],
            ..ServeSetup::default()
        },
    );
    let stopped = |e: &Event| e.has("stopped_by", "audit") && e.has("account", "forky");
    wait_until(
        "the audit stops forky",
        || find(&plexer.log(), stopped).is_some(),
        Duration::from_secs(20),
    );
    let finding = find(&plexer.log(), stopped)
        .unwrap()
        .text("finding")
        .unwrap();
    let expected = format!(
        "unix-socket connection to {} (PostgreSQL: postgres, pid ",
        postgres.socket().display()
    );
    assert!(finding.contains(&expected), "{finding}");
    let (response, _) = plexer.get(Some(&plexer.cookie("forky")), "/");
    assert_eq!(response.status(), Some("503 Service Unavailable"));
    assert_eq!(plexer.account_of(Some(&plexer.cookie("bob"))), "bob");
}

/// `plexer audit-fds --pid` on a process holding one of each: every one named by what answers.
#[test]
fn audit_fds_names_each_database_by_what_answers() {
    let scratch = Scratch::new();
    let postgres = Postgres::start_on_tcp(&scratch);
    let redis = Redis::start(&scratch);
    let database = scratch.join("app.db");
    let script = format!(
        "import socket, sqlite3, sys, time, psycopg2, redis\n\
         held = [psycopg2.connect(host='127.0.0.1', port={pg}, dbname='postgres', user='postgres'),\n\
         \x20       psycopg2.connect(host={dir:?}, port={pg}, dbname='postgres', user='postgres'),\n\
         \x20       redis.Redis(host='127.0.0.1', port={rport}), redis.Redis(unix_socket_path={rsock:?}),\n\
         \x20       sqlite3.connect({db:?})]\n\
         held[2].ping(); held[3].ping(); held[4].execute('create table t (x)')\n\
         print('ready', flush=True)\n\
         time.sleep(60)\n",
        pg = postgres.port(),
        dir = postgres.socket_dir().display().to_string(),
        rport = redis.port(),
        rsock = redis.socket().display().to_string(),
        db = database.display().to_string(),
    );
    let mut command = Command::new(venv_python());
    command.args(["-c", &script]);
    let holder = Running::spawn("holder", &mut command, &scratch.unique("holder", "log"));
    wait_until(
        "the holder connects",
        || holder.log().contains("ready"),
        Duration::from_secs(20),
    );

    let mut audit = Command::new(build::plexer());
    audit.args(["audit-fds", "--pid", &holder.pid().to_string()]);
    let finished = plexer_tests::run(&mut audit, b"", Duration::from_secs(20));
    let listing = finished.stdout_text();
    assert_eq!(finished.code(), Some(1), "findings exit 1:\n{listing}");
    let pg = postgres.port();
    for expected in [
        format!("-> 127.0.0.1:{pg} (answered by postgres, pid"),
        format!(
            "connection to {} (answered by postgres, pid",
            postgres.socket().display()
        ),
        format!(
            "-> 127.0.0.1:{} (answered by redis-server, pid",
            redis.port()
        ),
        format!(
            "connection to {} (answered by redis-server, pid",
            redis.socket().display()
        ),
        format!(
            "is the SQLite database {} opened before fork",
            database.display()
        ),
    ] {
        assert!(listing.contains(&expected), "{expected:?} in:\n{listing}");
    }
    assert_eq!(
        listing.matches("(PostgreSQL: postgres, pid").count(),
        2,
        "{listing}"
    );
    assert_eq!(
        listing.matches("(Redis: redis-server, pid").count(),
        2,
        "{listing}"
    );
}
