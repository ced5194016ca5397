//! `plexer spawn` does what spawn-fcgi does (bind, socket owner and mode, N workers on one
//! socket) and what it cannot: replace dead workers, recycle them, take the workers down with
//! it even when killed with SIGKILL, and stop an application whose processes share a database
//! connection.

use std::net::TcpListener;
use std::os::unix::net::UnixListener;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use plexer_tests::ownership::assert_owner_group_mode;
// A worker that exited is not running, though it is a child until plexer reaps it.
use plexer_tests::log_events::{Event, find};
use plexer_tests::procfs::{children_of, running};
use plexer_tests::wait::wait_until;
use plexer_tests::{CgiResponse, HelloAnswer, PlexerRequest, Running, Scratch, build, run};

const DEADLINE: Duration = Duration::from_secs(10);

/// `plexer spawn -s SOCK ARGS -- APP` on a new socket path, running until dropped.
fn spawn(scratch: &Scratch, args: &[&str], app: &[&str]) -> (Running, PathBuf) {
    spawn_at(scratch, scratch.socket_path("app"), args, app)
}

fn spawn_at(scratch: &Scratch, socket: PathBuf, args: &[&str], app: &[&str]) -> (Running, PathBuf) {
    let mut command = Command::new(build::plexer());
    command
        .arg("spawn")
        .arg("-s")
        .arg(&socket)
        .args(args)
        .arg("--")
        .args(app);
    let running = Running::spawn(
        "plexer spawn",
        &mut command,
        &scratch.unique("spawn", "log"),
    );
    (running, socket)
}

fn hello() -> String {
    build::hello().to_string_lossy().into_owned()
}

fn get(socket: &Path) -> HelloAnswer {
    let finished = PlexerRequest::new(format!("unix:{}", socket.display()), "/").run();
    finished.assert_success();
    HelloAnswer::parse(&CgiResponse::parse(&finished.stdout).body)
}

fn wait_for_workers(spawned: &Running, count: usize) -> Vec<u32> {
    wait_until(
        &format!("{count} workers run"),
        || children_of(spawned.pid()).len() == count,
        DEADLINE,
    );
    children_of(spawned.pid())
}

#[test]
fn workers_share_one_socket_and_a_killed_one_is_replaced() {
    let scratch = Scratch::new();
    let (spawned, socket) = spawn(&scratch, &["-F", "2"], &[&hello()]);
    let workers = wait_for_workers(&spawned, 2);
    let mut served: Vec<u32> = (0..6).map(|_| get(&socket).pid()).collect();
    served.sort_unstable();
    served.dedup();
    assert!(
        served.iter().all(|pid| workers.contains(pid)),
        "{served:?} vs {workers:?}"
    );

    kill(Pid::from_raw(workers[0] as i32), Signal::SIGKILL).unwrap();
    wait_until(
        "the killed worker is replaced",
        || {
            let now = children_of(spawned.pid());
            now.len() == 2 && !now.contains(&workers[0])
        },
        DEADLINE,
    );
    assert_ne!(get(&socket).pid(), workers[0]);
}

#[test]
fn the_socket_gets_the_owner_group_and_mode_asked_for() {
    if !nix::unistd::Uid::effective().is_root() {
        return; // chown needs root; CI runs as root
    }
    let scratch = Scratch::new();
    let (spawned, socket) = spawn(
        &scratch,
        &["-U", "nobody", "-G", "nogroup", "-M", "0640"],
        &[&hello()],
    );
    wait_for_workers(&spawned, 1);
    assert_owner_group_mode(&socket, "nobody", "nogroup", 0o640);
}

#[test]
fn a_live_socket_is_refused_and_a_stale_one_replaced() {
    let scratch = Scratch::new();
    let stale = scratch.socket_path("app");
    drop(UnixListener::bind(&stale).unwrap()); // leaves the socket file behind
    let (spawned, socket) = spawn_at(&scratch, stale, &[], &[&hello()]);
    wait_for_workers(&spawned, 1);
    get(&socket);

    // Bounded: a second spawn that took the live socket over would run until killed.
    let mut second = Command::new(build::plexer());
    second
        .arg("spawn")
        .arg("-s")
        .arg(&socket)
        .arg("--")
        .arg(hello());
    let second = run(&mut second, b"", DEADLINE);
    assert!(!second.status.success());
    let stderr = second.stderr_text();
    assert!(stderr.contains("is in use by a running server"), "{stderr}");
    get(&socket); // the first one still serves
}

#[test]
fn no_worker_outlives_a_spawn_killed_with_sigkill() {
    let scratch = Scratch::new();
    let (mut spawned, _socket) = spawn(&scratch, &["-F", "3"], &[&hello()]);
    let workers = wait_for_workers(&spawned, 3);
    spawned.kill(); // SIGKILL: plexer gets no chance to stop them itself
    wait_until(
        "every worker died with plexer",
        || workers.iter().all(|&pid| !running(pid)),
        DEADLINE,
    );
}

#[test]
fn sigterm_lets_the_requests_in_flight_finish() {
    let scratch = Scratch::new();
    let (mut spawned, socket) = spawn(&scratch, &["-F", "2"], &[&hello()]);
    let workers = wait_for_workers(&spawned, 2);
    let addr = format!("unix:{}", socket.display());
    let slow: Vec<_> = (0..2)
        .map(|_| {
            let addr = addr.clone();
            std::thread::spawn(move || PlexerRequest::new(addr, "/?sleep=1500").run())
        })
        .collect();
    std::thread::sleep(Duration::from_millis(400)); // both are being served now
    spawned.signal(Signal::SIGTERM);
    for request in slow {
        let finished = request.join().unwrap();
        finished.assert_success();
        let answer = HelloAnswer::parse(&CgiResponse::parse(&finished.stdout).body);
        assert!(workers.contains(&answer.pid()));
    }
    let status = spawned.wait_exit(DEADLINE).expect("plexer spawn stops");
    assert!(status.success(), "{}", spawned.log());
    assert!(workers.iter().all(|&pid| !running(pid)));
    assert!(!socket.exists(), "the socket is gone");
}

#[test]
fn max_requests_recycles_each_worker() {
    let scratch = Scratch::new();
    let (spawned, socket) = spawn(&scratch, &["--max-requests", "2"], &[&hello()]);
    wait_for_workers(&spawned, 1);
    let pids: Vec<u32> = (0..5).map(|_| get(&socket).pid()).collect();
    assert_eq!(pids[0], pids[1]);
    assert_ne!(pids[1], pids[2]);
    assert_eq!(pids[2], pids[3]);
    assert_ne!(pids[3], pids[4]);
}

/// A stand-in for an application that imports, connects to its database and then forks, as
/// Django under flup's prefork server did: two processes of the pool share one connection.
fn connect_then_fork(port: u16) -> Vec<String> {
    let script = format!(
        "import os, socket, time\n\
         db = socket.create_connection(('127.0.0.1', {port}))\n\
         os.fork()\n\
         time.sleep(60)\n"
    );
    vec!["python3".into(), "-c".into(), script]
}

#[test]
fn the_audit_stops_an_app_whose_processes_share_a_database_connection() {
    let scratch = Scratch::new();
    let database = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = database.local_addr().unwrap().port().to_string();
    let app = connect_then_fork(database.local_addr().unwrap().port());
    let app: Vec<&str> = app.iter().map(String::as_str).collect();
    let (mut spawned, _socket) = spawn(&scratch, &["--database", &port], &app);
    let status = spawned
        .wait_exit(DEADLINE)
        .expect("audit: strict stops plexer spawn");
    assert_eq!(status.code(), Some(1), "{}", spawned.log());
    let log = spawned.log();
    assert!(log.contains("is shared by pids"), "{log}");
    assert!(log.contains(&format!("127.0.0.1:{port}")), "{log}");
    assert!(log.contains("audit: strict stopped the workers"), "{log}");
}

#[test]
fn audit_warn_logs_the_shared_connection_and_keeps_running() {
    let scratch = Scratch::new();
    let database = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = database.local_addr().unwrap().port();
    let app = connect_then_fork(port);
    let app: Vec<&str> = app.iter().map(String::as_str).collect();
    let (mut spawned, _socket) = spawn(
        &scratch,
        &[
            "--database",
            &port.to_string(),
            "--audit",
            "warn",
            "--log-format",
            "json",
        ],
        &app,
    );
    let warned = |e: &Event| e.has("audit", "warn") && e.level() == "WARN";
    wait_until(
        "the audit warns",
        || find(&spawned.log(), warned).is_some(),
        DEADLINE,
    );
    let finding = find(&spawned.log(), warned)
        .unwrap()
        .text("finding")
        .unwrap();
    assert!(finding.contains(&format!("127.0.0.1:{port}")), "{finding}");
    spawned.assert_running();
}

#[test]
fn sighup_starts_new_workers_and_lets_the_old_ones_finish_their_requests() {
    let scratch = Scratch::new();
    let (mut spawned, socket) = spawn(&scratch, &["-F", "2", "--log-format", "json"], &[&hello()]);
    let old = wait_for_workers(&spawned, 2);
    let addr = format!("unix:{}", socket.display());
    let slow = std::thread::spawn(move || PlexerRequest::new(addr, "/?sleep=2000").run());
    std::thread::sleep(Duration::from_millis(300)); // being served now
    spawned.signal(Signal::SIGHUP);
    wait_until(
        "the old workers are gone",
        || old.iter().all(|&pid| !running(pid)),
        DEADLINE,
    );
    let finished = slow.join().unwrap();
    finished.assert_success();
    let answered_by = HelloAnswer::parse(&CgiResponse::parse(&finished.stdout).body).pid();
    assert!(old.contains(&answered_by), "the old worker finished it");
    let new = wait_for_workers(&spawned, 2);
    assert!(new.iter().all(|pid| !old.contains(pid)), "{old:?} {new:?}");
    assert!(new.contains(&get(&socket).pid()));
    // SIGUSR1 (reopen logs, for php-fpm's users) changes nothing.
    spawned.signal(Signal::SIGUSR1);
    wait_until(
        "SIGUSR1 is logged",
        || find(&spawned.log(), |e| e.has("signal", "SIGUSR1")).is_some(),
        DEADLINE,
    );
    assert!(new.contains(&get(&socket).pid()));
    spawned.assert_running();
}

#[test]
fn sighup_keeps_the_old_workers_when_the_new_ones_fail() {
    let scratch = Scratch::new();
    let healthy = scratch.join("healthy");
    std::fs::write(&healthy, "").unwrap();
    // Starts hello while the file exists, and fails at once after.
    let app = format!("[ -e '{}' ] && exec '{}'", healthy.display(), hello());
    let args = ["-F", "2", "--log-format", "json"];
    let (mut spawned, socket) = spawn(&scratch, &args, &["/bin/sh", "-c", &app]);
    let old = wait_for_workers(&spawned, 2);
    // Both must have found the file and become hello before it goes.
    wait_until(
        "both workers run hello",
        || {
            old.iter().all(|pid| {
                std::fs::read_to_string(format!("/proc/{pid}/comm"))
                    .is_ok_and(|comm| comm.trim() == "hello")
            })
        },
        DEADLINE,
    );
    std::fs::remove_file(&healthy).unwrap();
    spawned.signal(Signal::SIGHUP);
    wait_until(
        "the failed restart is logged",
        || {
            let kept = |e: &Event| e.has("signal", "SIGHUP") && e.has("old_workers", "serve on");
            find(&spawned.log(), kept).is_some()
        },
        DEADLINE,
    );
    let mut left: Vec<u32> = children_of(spawned.pid())
        .into_iter()
        .filter(|&pid| running(pid))
        .collect();
    left.sort_unstable();
    let mut old_sorted = old.clone();
    old_sorted.sort_unstable();
    assert_eq!(left, old_sorted, "only the old workers run");
    assert!(old.contains(&get(&socket).pid()));
    spawned.assert_running();
}
