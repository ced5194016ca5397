//! The prefork server (plexer-prefork's library for Rust FastCGI apps) against a real
//! PostgreSQL server and a real SQLite file: a connection opened before the fork, the way
//! Django under flup opened it at import, makes it refuse to fork and say how to fix it; the
//! same app opening its connection in post_fork runs, one session per worker.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use plexer_tests::wait::wait_until_listening;
use plexer_tests::{CgiResponse, PlexerRequest, Postgres, Running, Scratch, build, run};

const DEADLINE: Duration = Duration::from_secs(20);

fn prefork_app(socket: &Path, database: &[&str], open_in: &str) -> Command {
    let mut command = Command::new(build::prefork_app());
    command
        .arg("--socket")
        .arg(format!("unix:{}", socket.display()))
        .args(["-F", "2"])
        .args(database)
        .args(["--open-in", open_in]);
    command
}

fn refused(mut command: Command) -> String {
    let finished = run(&mut command, b"", DEADLINE);
    assert_eq!(finished.status.code(), Some(1), "{finished:?}");
    String::from_utf8_lossy(&finished.stderr).into_owned()
}

/// Starts the app and returns the pids that answered a few requests.
fn serving(scratch: &Scratch, mut command: Command, socket: &Path) -> (Running, Vec<String>) {
    let app = Running::spawn("prefork_app", &mut command, &scratch.unique("app", "log"));
    wait_until_listening("the app listens", socket, DEADLINE);
    let pids = (0..4)
        .map(|_| {
            let finished = PlexerRequest::new(format!("unix:{}", socket.display()), "/").run();
            finished.assert_success();
            let body = CgiResponse::parse(&finished.stdout).body_text();
            assert!(body.contains("database: open"), "{body}");
            body.lines().next().unwrap_or_default().to_owned()
        })
        .collect();
    (app, pids)
}

#[test]
fn a_postgres_session_opened_before_fork_is_refused_with_the_fix() {
    let scratch = Scratch::new();
    let postgres = Postgres::start(&scratch);
    let socket = scratch.socket_path("app");
    let dir = postgres.socket_dir().to_string_lossy().into_owned();
    let stderr = refused(prefork_app(&socket, &["--postgres", &dir], "preload"));
    // Named by its socket and by the server that answers it.
    let expected = format!(
        "is a unix-socket connection to {} (PostgreSQL: postgres, pid ",
        postgres.socket().display()
    );
    assert!(stderr.contains(&expected), "{stderr}");
    assert!(
        stderr.contains(") opened before fork; open it in post_fork"),
        "{stderr}"
    );
    assert!(stderr.contains("fd "), "{stderr}");
}

#[test]
fn postgres_sessions_opened_in_post_fork_serve_one_per_worker() {
    let scratch = Scratch::new();
    let postgres = Postgres::start(&scratch);
    let socket = scratch.socket_path("app");
    let dir = postgres.socket_dir().to_string_lossy().into_owned();
    let (_app, _pids) = serving(
        &scratch,
        prefork_app(&socket, &["--postgres", &dir], "post-fork"),
        &socket,
    );
    // Each worker connects in its post_fork, which may still be under way when the app serves.
    let count = || {
        postgres.query(
            "select count(*) from pg_stat_activity \
             where backend_type = 'client backend' and pid <> pg_backend_pid()",
        )
    };
    plexer_tests::wait_for(|| count() == "2", DEADLINE);
    assert_eq!(count(), "2", "one session per worker, none inherited");
}

fn sqlite_database(scratch: &Scratch) -> String {
    let path = scratch.join("app.db");
    let mut sqlite = Command::new("sqlite3");
    sqlite
        .arg(&path)
        .arg("create table notes(body text); insert into notes values ('x');");
    run(&mut sqlite, b"", DEADLINE).assert_success();
    path.to_string_lossy().into_owned()
}

#[test]
fn an_sqlite_database_opened_before_fork_is_refused() {
    let scratch = Scratch::new();
    let database = sqlite_database(&scratch);
    let socket = scratch.socket_path("app");
    let stderr = refused(prefork_app(&socket, &["--sqlite", &database], "preload"));
    let expected =
        format!("is the SQLite database {database} opened before fork; open it in post_fork");
    assert!(stderr.contains(&expected), "{stderr}");
}

#[test]
fn an_sqlite_database_opened_in_post_fork_serves() {
    let scratch = Scratch::new();
    let database = sqlite_database(&scratch);
    let socket = scratch.socket_path("app");
    let (_app, pids) = serving(
        &scratch,
        prefork_app(&socket, &["--sqlite", &database], "post-fork"),
        &socket,
    );
    assert!(pids.iter().all(|p| p.starts_with("pid: ")), "{pids:?}");
}
