//! The supervisor runs pools of real `hello` processes: respawn after SIGKILL, recycling after
//! max_requests, killing only a stuck worker, ondemand scale to zero, a dynamic pool growing
//! for a burst at once, a drain that lets requests finish, and no database connection of the
//! supervisor reaching a worker; and helpers (the slowlog's dumpers) started and reaped beside
//! the workers, a hung one killed with what it started.
//!
//! Each test plays the plexer's part: it acquires a worker, talks FastCGI to the worker's
//! private socket with the `fastcgi-client` crate, and releases it with the outcome.
//!
//! The supervisor reaps with `waitpid(-1)` and makes its process a subreaper, so each test needs
//! a process of its own: run these with nextest (`make test` does).

use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::time::{Duration, Instant};

use fastcgi_client::{Client, Params, Request, io};
use plexer_prefork::audit::{AuditPolicy, TcpEndpoint, audit_process, shared_db_handles};
use plexer_prefork::pool::{Outcome, Pm, PoolSettings, PoolState, WorkerState};
use plexer_prefork::spawn::WorkerCommand;
use plexer_prefork::supervisor::{PoolHandle, Sockets, Supervisor};
use plexer_tests::procfs;
use plexer_tests::{CgiResponse, HelloAnswer, Postgres, Scratch, build};
use tokio::net::UnixStream;

const DEADLINE: Duration = Duration::from_secs(10);

fn settings(pm: Pm, max_children: usize) -> PoolSettings {
    PoolSettings {
        pm,
        max_children,
        max_requests: 0,
        max_requests_jitter: 0,
        ..PoolSettings::default()
    }
}

fn start_pool(scratch: &Scratch, settings: PoolSettings) -> (Supervisor, PoolHandle) {
    let supervisor = Supervisor::start().expect("the supervisor starts");
    let command = WorkerCommand {
        program: build::hello().to_owned(),
        ..WorkerCommand::default()
    };
    let pool = supervisor
        .add_pool(
            "test",
            settings,
            command,
            Sockets::PerWorker(scratch.path().join("workers")),
        )
        .expect("the pool starts");
    (supervisor, pool)
}

/// One GET to a worker's socket; hello's answer. The connection is kept alive (as plexer keeps
/// it): fastcgi-client writes a second empty STDIN record, and on a connection hello closes
/// right after its answer that write could fail with EPIPE.
async fn get(socket: &Path, uri: &str) -> std::io::Result<HelloAnswer> {
    let stream = UnixStream::connect(socket).await?;
    let (path, query) = uri.split_once('?').unwrap_or((uri, ""));
    let params = Params::default()
        .request_method("GET")
        .request_uri(uri.to_owned())
        .query_string(query.to_owned())
        .script_name(path.to_owned());
    let request = Request::new(params, io::Cursor::new(Vec::new()));
    let response = Client::new_keep_alive_tokio(stream)
        .execute(request)
        .await
        .map_err(std::io::Error::other)?;
    let stdout = response.stdout.unwrap_or_default();
    Ok(HelloAnswer::parse(&CgiResponse::parse(&stdout).body))
}

/// Acquires a worker, sends one request, releases the worker as done.
async fn serve(pool: &PoolHandle, uri: &str) -> HelloAnswer {
    let lease = tokio::time::timeout(DEADLINE, pool.acquire())
        .await
        .expect("a worker in time")
        .expect("the pool serves");
    let answer = tokio::time::timeout(DEADLINE, get(lease.socket(), uri))
        .await
        .expect("hello answered in time")
        .expect("hello answered");
    lease.release(Outcome::Done);
    answer
}

async fn wait_until(what: &str, mut cond: impl FnMut() -> bool) {
    let start = Instant::now();
    while !cond() {
        assert!(start.elapsed() < DEADLINE, "timed out waiting until {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A zombie counts as alive: the supervisor reaps promptly, so gone means reaped.
fn alive(pid: u32) -> bool {
    procfs::exists(pid)
}

fn worker_pids(pool: &PoolHandle) -> Vec<u32> {
    pool.status()
        .workers
        .iter()
        .filter_map(|w| w.pid)
        .map(|p| p.as_raw() as u32)
        .collect()
}

#[tokio::test]
async fn a_worker_killed_with_sigkill_is_respawned() {
    let scratch = Scratch::new();
    let (_supervisor, pool) = start_pool(&scratch, settings(Pm::Static, 2));
    wait_until("two workers run", || worker_pids(&pool).len() == 2).await;
    let victim = serve(&pool, "/").await.pid();
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(victim as i32),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    wait_until("the killed worker is replaced", || {
        let pids = worker_pids(&pool);
        pids.len() == 2 && !pids.contains(&victim)
    })
    .await;
    assert!(!alive(victim), "the killed worker was reaped");
    assert_eq!(pool.status().stats.failures, 1);
    let answer = serve(&pool, "/after").await;
    assert_ne!(answer.pid(), victim);
}

#[tokio::test]
async fn max_requests_recycles_a_worker_after_its_limit() {
    let scratch = Scratch::new();
    let mut s = settings(Pm::Static, 1);
    s.max_requests = 3;
    let (_supervisor, pool) = start_pool(&scratch, s);
    let mut pids = Vec::new();
    for i in 0..7 {
        pids.push(serve(&pool, &format!("/{i}")).await.pid());
    }
    // 3 requests per worker: three different processes served 3 + 3 + 1.
    assert_eq!(pids[0], pids[2]);
    assert_ne!(pids[2], pids[3]);
    assert_eq!(pids[3], pids[5]);
    assert_ne!(pids[5], pids[6]);
    assert_eq!(pool.status().stats.failures, 0, "a recycle is no failure");
}

#[tokio::test]
async fn max_requests_jitter_gives_workers_different_limits() {
    let scratch = Scratch::new();
    let mut s = settings(Pm::Static, 6);
    s.max_requests = 100;
    s.max_requests_jitter = 100;
    let (_supervisor, pool) = start_pool(&scratch, s);
    let mut limits: Vec<u64> = pool.status().workers.iter().map(|w| w.limit).collect();
    assert!(limits.iter().all(|l| (100..=200).contains(l)), "{limits:?}");
    limits.sort_unstable();
    limits.dedup();
    assert!(
        limits.len() > 1,
        "six workers do not share one limit: {limits:?}"
    );
}

#[tokio::test]
async fn a_timed_out_request_kills_only_the_stuck_worker() {
    let scratch = Scratch::new();
    let (_supervisor, pool) = start_pool(&scratch, settings(Pm::Static, 2));
    wait_until("two workers run", || worker_pids(&pool).len() == 2).await;
    let stuck = pool.acquire().await.unwrap();
    let stuck_pid = stuck.pid().unwrap().as_raw() as u32;
    let request = get(stuck.socket(), "/?sleep=30000");
    // The plexer's request_timeout, here 300 ms.
    assert!(
        tokio::time::timeout(Duration::from_millis(300), request)
            .await
            .is_err()
    );
    stuck.release(Outcome::TimedOut);
    let other = serve(&pool, "/").await;
    assert_ne!(other.pid(), stuck_pid, "the other worker still serves");
    wait_until("the stuck worker is gone", || !alive(stuck_pid)).await;
    assert!(alive(other.pid()), "only the stuck worker was killed");
}

#[tokio::test]
async fn ondemand_scales_to_zero_and_comes_back() {
    let scratch = Scratch::new();
    let pm = Pm::Ondemand {
        idle_timeout: Duration::from_millis(300),
    };
    let (_supervisor, pool) = start_pool(&scratch, settings(pm, 2));
    assert!(worker_pids(&pool).is_empty(), "no worker before a request");
    let first = serve(&pool, "/").await.pid();
    wait_until("the idle worker is stopped", || {
        pool.status().workers.is_empty() && !alive(first)
    })
    .await;
    let second = serve(&pool, "/").await.pid();
    assert_ne!(first, second, "a new worker for the next request");
    assert_eq!(pool.status().stats.failures, 0);
}

#[tokio::test]
async fn a_burst_grows_a_dynamic_pool_at_once() {
    let scratch = Scratch::new();
    let pm = Pm::Dynamic {
        start: 1,
        min_spare: 1,
        max_spare: 2,
    };
    let (_supervisor, pool) = start_pool(&scratch, settings(pm, 10));
    let started = Instant::now();
    let requests: Vec<_> = (0..10)
        .map(|i| {
            let pool = pool.clone();
            tokio::spawn(async move { serve(&pool, &format!("/{i}?sleep=1000")).await })
        })
        .collect();
    let mut pids = Vec::new();
    for request in requests {
        pids.push(request.await.unwrap().pid());
    }
    let took = started.elapsed();
    pids.sort_unstable();
    pids.dedup();
    assert_eq!(
        pids.len(),
        10,
        "ten workers served the ten requests side by side"
    );
    // Ten 1-second requests: about 1 s when the pool grows at once (php-fpm's +1 a second
    // would take several). Generous for a loaded 2-core machine.
    assert!(took < Duration::from_millis(3500), "took {took:?}");
}

#[tokio::test]
async fn a_drain_lets_requests_in_flight_finish_then_stops_every_worker() {
    let scratch = Scratch::new();
    let (_supervisor, pool) = start_pool(&scratch, settings(Pm::Static, 2));
    wait_until("two workers run", || worker_pids(&pool).len() == 2).await;
    let all = worker_pids(&pool);
    let lease = pool.acquire().await.unwrap();
    let in_flight = tokio::spawn(async move {
        let answer = get(lease.socket(), "/?sleep=500").await;
        lease.release(Outcome::Done);
        answer
    });
    tokio::time::sleep(Duration::from_millis(100)).await;
    tokio::time::timeout(DEADLINE, pool.drain(Duration::from_secs(5)))
        .await
        .expect("the drain ends");
    let answer = in_flight
        .await
        .unwrap()
        .expect("the request in flight finished");
    assert!(all.contains(&answer.pid()));
    assert_eq!(pool.status().state, PoolState::Stopped);
    for pid in all {
        assert!(!alive(pid), "worker {pid} stopped");
    }
    assert!(
        pool.acquire().await.is_err(),
        "a stopped pool serves nothing"
    );
}

#[tokio::test]
async fn the_supervisors_database_connection_never_reaches_a_worker() {
    let scratch = Scratch::new();
    // A stand-in database: a listener whose port the policy calls a database port, and a
    // connection to it that the supervising process holds while it starts workers.
    let database = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = database.local_addr().unwrap().port();
    let held = TcpStream::connect(("127.0.0.1", port)).unwrap();
    let policy = AuditPolicy::new().database_endpoint(TcpEndpoint::Port(port), "test database");

    let own = audit_process(None, &policy).unwrap();
    assert!(
        !own.is_clean(),
        "the supervisor does hold the connection:\n{own}"
    );

    let (_supervisor, pool) = start_pool(&scratch, settings(Pm::Static, 2));
    wait_until("two workers run", || {
        let status = pool.status();
        status.workers.len() == 2 && status.workers.iter().all(|w| w.state == WorkerState::Idle)
    })
    .await;
    for pid in worker_pids(&pool) {
        let report = audit_process(Some(nix::unistd::Pid::from_raw(pid as i32)), &policy).unwrap();
        assert!(
            report.is_clean(),
            "worker {pid} inherited a database handle:\n{report}"
        );
    }
    drop(held);
}

#[tokio::test]
async fn a_real_postgres_session_of_the_supervisor_never_reaches_a_worker() {
    let scratch = Scratch::new();
    let postgres = Postgres::start(&scratch);
    let session = postgres.session();
    let own = nix::unistd::getpid();
    let policy = AuditPolicy::new();
    let report = audit_process(None, &policy).unwrap();
    assert!(
        report
            .findings()
            .iter()
            .any(|f| f.to_string().contains(".s.PGSQL.5432")),
        "the supervisor holds a PostgreSQL session:\n{report}"
    );

    let (_supervisor, pool) = start_pool(&scratch, settings(Pm::Static, 3));
    wait_until("three workers run", || worker_pids(&pool).len() == 3).await;
    serve(&pool, "/").await;
    let mut pids = vec![own];
    pids.extend(
        worker_pids(&pool)
            .into_iter()
            .map(|p| nix::unistd::Pid::from_raw(p as i32)),
    );
    let shared = shared_db_handles(&pids, &policy).unwrap();
    assert!(
        shared.is_empty(),
        "a worker holds the supervisor's session: {shared:?}"
    );

    // The control: a child handed the session on purpose is caught, so the check above can fail.
    let mut leaked = std::process::Command::new("sleep")
        .arg("10")
        .stdin(std::process::Stdio::from(std::os::fd::OwnedFd::from(
            session.try_clone().unwrap(),
        )))
        .spawn()
        .unwrap();
    let child = nix::unistd::Pid::from_raw(leaked.id() as i32);
    let caught = shared_db_handles(&[own, child], &policy).unwrap();
    let _ = leaked.kill();
    let _ = leaked.wait();
    assert_eq!(caught.len(), 1, "the deliberately shared session is found");
    drop(session);
}

/// All a helper printed, on stdout and stderr alike, until its output closes.
async fn helper_output(helper: &mut plexer_prefork::supervisor::Helper) -> String {
    use tokio::io::AsyncReadExt;
    let fd = helper.take_output().expect("the output, once");
    let mut pipe = tokio::net::unix::pipe::Receiver::from_owned_fd(fd).unwrap();
    let mut out = Vec::new();
    pipe.read_to_end(&mut out).await.unwrap();
    String::from_utf8(out).unwrap()
}

#[tokio::test]
async fn helpers_exit_comes_back_and_a_hung_one_is_killed_with_its_children() {
    let scratch = Scratch::new();
    let (supervisor, pool) = start_pool(&scratch, settings(Pm::Static, 1));
    let args = |list: &[&str]| {
        list.iter()
            .map(Into::into)
            .collect::<Vec<std::ffi::OsString>>()
    };
    let mut helper = supervisor
        .spawn_helper(
            "sh".as_ref(),
            &args(&["-c", "echo out; echo err >&2; exit 3"]),
        )
        .expect("sh starts");
    assert_eq!(helper_output(&mut helper).await, "out\nerr\n");
    let exit = tokio::time::timeout(DEADLINE, helper.exited())
        .await
        .unwrap();
    assert_eq!(exit, Some(plexer_prefork::pool::Exit::Code(3)));
    // A program that does not exist: refused at once, and nothing for the reaper to lose.
    let missing = supervisor.spawn_helper("/nonexistent/dumper".as_ref(), &[]);
    assert_eq!(missing.unwrap_err().kind(), std::io::ErrorKind::NotFound);
    // A helper that hangs, with a child of its own: both go with the kill.
    let mut hung = supervisor
        .spawn_helper("sh".as_ref(), &args(&["-c", "sleep 30 & echo $!; wait"]))
        .expect("sh starts");
    let fd = hung.take_output().unwrap();
    let mut pipe = tokio::net::unix::pipe::Receiver::from_owned_fd(fd).unwrap();
    let mut line = vec![0u8; 32];
    let n = tokio::io::AsyncReadExt::read(&mut pipe, &mut line)
        .await
        .unwrap();
    let child: u32 = String::from_utf8_lossy(&line[..n]).trim().parse().unwrap();
    assert!(alive(child));
    hung.kill();
    let exit = tokio::time::timeout(DEADLINE, hung.exited()).await.unwrap();
    assert_eq!(exit, Some(plexer_prefork::pool::Exit::Signal(9)));
    wait_until("the helper's child is gone", || !alive(child)).await;
    // The pool's worker was never taken for a helper, nor a helper's exit for a worker's.
    let answer = serve(&pool, "/after-helpers").await;
    assert_eq!(
        answer.fields.get("uri").map(String::as_str),
        Some("/after-helpers")
    );
}
